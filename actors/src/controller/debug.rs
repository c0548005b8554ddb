//! The debug view (`GET /actors`): the controller's own state and every
//! other actor's snapshot, each asked in parallel with a bound so that one
//! stuck actor shows up as such instead of hanging the view.

use super::*;
use crate::member::Snapshot;
use futures::future::join_all;
use std::time::{Duration, Instant};

impl Handler<ActorsSnapshot> for Controller {
    type Result = ResponseActFuture<Self, ActorsView>;

    fn handle(&mut self, msg: ActorsSnapshot, _ctx: &mut Context<Self>) -> Self::Result {
        let within = msg.within;
        let members = join_all(self.members.iter().map(|slot| {
            let name = slot.name.to_string();
            let addr = slot.addr.clone();
            async move {
                match addr {
                    Some(addr) => ask(name, addr.send(Snapshot), within).await,
                    None => ActorReport {
                        name,
                        answered_in_us: None,
                        snapshot: None,
                        error: Some("not started".into()),
                    },
                }
            }
        }));
        let sessions = join_all(self.sessions.iter().map(|(id, addr)| {
            ask(
                format!("session {}", id.0),
                addr.snapshot.send(SessionSnapshotRequest),
                within,
            )
        }));
        let controller = self.view();
        Box::pin(
            async move { (members.await, sessions.await) }
                .into_actor(self)
                .map(move |(members, sessions), _, _| ActorsView {
                    controller,
                    members,
                    sessions,
                }),
        )
    }
}

/// Asks one actor for its snapshot, within a bound.
async fn ask<T>(
    name: String,
    request: impl std::future::Future<Output = Result<T, MailboxError>>,
    within: Duration,
) -> ActorReport<T> {
    let asked = Instant::now();
    let (snapshot, error) = match tokio::time::timeout(within, request).await {
        Ok(Ok(snapshot)) => (Some(snapshot), None),
        Ok(Err(e)) => (None, Some(format!("actor unreachable: {e}"))),
        Err(_) => (
            None,
            Some(format!(
                "no answer within {within:?}: its mailbox is stuck or very deep"
            )),
        ),
    };
    ActorReport {
        name,
        answered_in_us: snapshot.as_ref().map(|_| asked.elapsed().as_micros() as u64),
        snapshot,
        error,
    }
}

impl Controller {
    fn view(&self) -> ControllerView {
        ControllerView {
            uptime_seconds: self
                .stats
                .start
                .and_then(|s| s.elapsed().ok())
                .map_or(0.0, |d| d.as_secs_f64()),
            status: self.array_status(),
            last_tid: self.last_tid.to_hex(),
            commit_lock: self.lock.commit().map(|c| LockView {
                session: c.session.0,
                tid: c.tid.to_hex(),
                voted: c.voted,
                participants: c
                    .participants
                    .iter()
                    .filter_map(|&id| Some(self.members[self.index_of(id)?].name.to_string()))
                    .collect(),
                held_for_ms: c.since.elapsed().as_millis() as u64,
            }),
            finishing_tid: self.lock.finishing().map(|t| t.to_hex()),
            votes_waiting: self.lock.votes_waiting(),
            packs_waiting: self.lock.packs_waiting(),
            packing: self.lock.packing(),
            reloads_waiting: self.lock.reloads_waiting(),
            draining: self.lock.draining(),
            sessions: self.sessions.len(),
            restarts: 0,
            commit_p99_us: self
                .members
                .iter()
                .enumerate()
                .map(|(i, m)| (m.name.to_string(), self.slow.p99(i).map(|d| d.as_micros() as u64)))
                .collect(),
        }
    }
}
