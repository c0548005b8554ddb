//! The front ZEO listener: accepts application connections and hands each
//! to its own client-session actor. The listener itself holds no state.

use slog::{error, Logger};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use zeoraid_actors::controller::Controller;
use zeoraid_actors::session::{ClientSession, SessionSettings};

pub async fn serve(
    listener: TcpListener,
    settings: Arc<SessionSettings>,
    controller: actix::Addr<Controller>,
    log: Logger,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                ClientSession::start(stream, peer, settings.clone(), controller.clone(), &log);
            }
            // Out of file descriptors and the like: keep serving the
            // connections we have and try again shortly.
            Err(e) => {
                error!(log, "accept failed"; "error" => %e);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
