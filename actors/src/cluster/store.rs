//! The array state in etcd (`[cluster]`), written only under the leader's
//! epoch.
//!
//! `load` reads `settings.state_key()`: the same JSON [`ArrayRecord`] as
//! the state file. `save` is one etcd transaction: if the campaign key's
//! create revision still equals the epoch, put the record; else
//! [`StateError::Deposed`], and nothing is written. A deposed leader can
//! therefore never overwrite what its successor wrote, however late its
//! write arrives. Both are bounded by the lease's TTL; `save` returns once
//! etcd acknowledged (etcd acknowledges a write once a majority of its
//! members persisted it).
//!
//! [`StateStore`] is synchronous (the controller saves on its own thread,
//! as it fsyncs the file), and the etcd client is async: it runs on a
//! thread of its own with its own single-threaded runtime, which ends when
//! the store is dropped.

use super::client::{bounded, connect};
use super::{ClusterSettings, Leadership};
use crate::state::{ArrayRecord, StateError, StateStore};
use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

pub struct EtcdStore {
    location: String,
    epoch: i64,
    limit: Duration,
    requests: UnboundedSender<Request>,
}

/// One call, answered on its own channel.
enum Request {
    Load(mpsc::Sender<Result<Option<Vec<u8>>, String>>),
    /// Answered `Ok(false)` when the epoch's key no longer leads.
    Save(Vec<u8>, mpsc::Sender<Result<bool, String>>),
}

/// What the etcd thread needs to know.
struct Target {
    state_key: String,
    campaign_key: Vec<u8>,
    epoch: i64,
    limit: Duration,
}

impl EtcdStore {
    pub fn open(settings: &ClusterSettings, leadership: &Leadership) -> Result<EtcdStore, StateError> {
        let location = format!("etcd {:?} {}", settings.endpoints, settings.state_key());
        let etcd_error = |reason: String| StateError::Etcd {
            location: location.clone(),
            reason,
        };
        let target = Target {
            state_key: settings.state_key(),
            campaign_key: leadership.key.clone(),
            epoch: leadership.epoch,
            limit: settings.lease_ttl,
        };
        let (requests, inbox) = tokio::sync::mpsc::unbounded_channel();
        let (connected, outcome) = mpsc::channel();
        let settings_for_thread = settings.clone();
        std::thread::Builder::new()
            .name("etcd-store".into())
            .spawn(move || run(settings_for_thread, target, inbox, connected))
            .map_err(|e| etcd_error(format!("cannot start the etcd client's thread: {e}")))?;
        outcome
            .recv()
            .unwrap_or_else(|_| Err("the etcd client's thread ended".into()))
            .map_err(&etcd_error)?;
        Ok(EtcdStore {
            location,
            epoch: leadership.epoch,
            limit: settings.lease_ttl,
            requests,
        })
    }

    /// Send a request and wait for its answer, at most the TTL.
    fn call<T>(
        &self,
        request: impl FnOnce(mpsc::Sender<Result<T, String>>) -> Request,
    ) -> Result<T, StateError> {
        let (reply, answer) = mpsc::channel();
        let answered = match self.requests.send(request(reply)) {
            Ok(()) => answer.recv_timeout(self.limit).map_err(|e| match e {
                mpsc::RecvTimeoutError::Timeout => format!("no answer within {:?}", self.limit),
                mpsc::RecvTimeoutError::Disconnected => "the etcd client's thread ended".to_string(),
            }),
            Err(_) => Err("the etcd client's thread ended".to_string()),
        };
        answered
            .and_then(|result| result)
            .map_err(|reason| self.etcd_error(reason))
    }

    fn etcd_error(&self, reason: String) -> StateError {
        StateError::Etcd {
            location: self.location.clone(),
            reason,
        }
    }
}

impl StateStore for EtcdStore {
    fn load(&mut self) -> Result<Option<ArrayRecord>, StateError> {
        let Some(text) = self.call(Request::Load)? else {
            return Ok(None);
        };
        serde_json::from_slice(&text).map(Some).map_err(|e| {
            self.etcd_error(format!(
                "the array state is unreadable ({e}): zeoraid will not guess which members hold the \
                 acknowledged transactions. Restore the key from a backup; or, only if every member is \
                 known to hold the same transactions, delete it to start afresh"
            ))
        })
    }

    fn save(&mut self, record: &ArrayRecord) -> Result<(), StateError> {
        let text = serde_json::to_vec_pretty(record).expect("the record serializes");
        match self.call(|reply| Request::Save(text, reply))? {
            true => Ok(()),
            false => Err(StateError::Deposed {
                location: self.location.clone(),
                epoch: self.epoch,
            }),
        }
    }

    fn location(&self) -> String {
        self.location.clone()
    }
}

/// The etcd thread: connect, say whether that worked, then answer
/// requests until the store is dropped.
fn run(
    settings: ClusterSettings,
    target: Target,
    inbox: UnboundedReceiver<Request>,
    connected: mpsc::Sender<Result<(), String>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = connected.send(Err(format!("cannot start the etcd client's runtime: {e}")));
            return;
        }
    };
    runtime.block_on(async move {
        match connect(&settings).await {
            Ok(client) => {
                let _ = connected.send(Ok(()));
                serve(client, target, inbox).await;
            }
            Err(reason) => {
                let _ = connected.send(Err(reason));
            }
        }
    });
}

/// Answer requests until the store is dropped (the runtime meanwhile
/// keeps the connection alive).
async fn serve(mut client: Client, target: Target, mut inbox: UnboundedReceiver<Request>) {
    while let Some(request) = inbox.recv().await {
        match request {
            Request::Load(reply) => {
                let found = bounded(target.limit, "read", client.get(target.state_key.clone(), None)).await;
                let _ = reply.send(found.map(|found| found.kvs().first().map(|kv| kv.value().to_vec())));
            }
            Request::Save(text, reply) => {
                let _ = reply.send(save(&mut client, &target, text).await);
            }
        }
    }
}

/// Put the record if the campaign key was still created at the epoch.
async fn save(client: &mut Client, target: &Target, text: Vec<u8>) -> Result<bool, String> {
    let guarded = Txn::new()
        .when([Compare::create_revision(
            target.campaign_key.clone(),
            CompareOp::Equal,
            target.epoch,
        )])
        .and_then([TxnOp::put(target.state_key.clone(), text, None)]);
    let done = bounded(target.limit, "write", client.txn(guarded)).await?;
    Ok(done.succeeded())
}
