//! The etcd client as the election and the store use it: one connection
//! setup, every unary call bounded by the lease's TTL.

use super::ClusterSettings;
use etcd_client::{Client, ConnectOptions};
use std::future::Future;
use std::time::Duration;

/// A client for `settings.endpoints`. It connects lazily (an unreachable
/// etcd fails the first call, not this); HTTP/2 pings notice a dead or
/// frozen connection within about a third of the TTL. No request timeout
/// is set on the channel: the campaign and the streams wait as long as
/// they must, and unary calls are bounded by [`bounded`].
pub async fn connect(settings: &ClusterSettings) -> Result<Client, String> {
    let ping = settings.lease_ttl / 3;
    let options = ConnectOptions::new()
        .with_connect_timeout(settings.lease_ttl)
        .with_keep_alive(ping, ping)
        .with_keep_alive_while_idle(true);
    Client::connect(&settings.endpoints, Some(options))
        .await
        .map_err(|e| e.to_string())
}

/// `call`, given at most `limit`; its error or the timeout as a sentence.
pub async fn bounded<T>(
    limit: Duration,
    what: &str,
    call: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {limit:?}")),
    }
}
