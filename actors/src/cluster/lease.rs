//! The leader's proof that its etcd lease is still valid.
//!
//! etcd expires a lease TTL after the last keepalive it received; the
//! leader cannot see that moment, only the keepalives it sent and the
//! answers it got. So it counts its lease valid until the *send* time of
//! the last answered keepalive plus the TTL minus a margin, on the
//! monotonic clock: a paused process, a slow network or a lost answer
//! only shorten what it believes, never lengthen it. The [`Election`]
//! actor (the only writer) moves that deadline; the controller reads it
//! before it acknowledges a commit.
//!
//! [`Election`]: super::Election

use std::time::Instant;
use tokio::sync::watch;

/// Read side: cheap to clone, read on every vote and finish.
#[derive(Clone, Debug)]
pub struct LeaseClock(watch::Receiver<Option<Instant>>);

/// Write side, owned by the election actor.
#[derive(Debug)]
pub struct LeaseWriter(watch::Sender<Option<Instant>>);

/// A new clock, not proven until the first answered keepalive.
pub fn lease_clock() -> (LeaseWriter, LeaseClock) {
    let (tx, rx) = watch::channel(None);
    (LeaseWriter(tx), LeaseClock(rx))
}

impl LeaseClock {
    /// The lease is proven valid now.
    pub fn proven(&self) -> bool {
        self.valid_until().is_some_and(|until| Instant::now() < until)
    }

    /// Until when the lease is proven, if it ever was.
    pub fn valid_until(&self) -> Option<Instant> {
        *self.0.borrow()
    }

    /// Resolves once the proof is withdrawn (or the writer is gone).
    pub async fn withdrawn(&mut self) {
        let _ = self.0.wait_for(|until| until.is_none()).await;
    }
}

impl LeaseWriter {
    /// A keepalive sent at `sent` was answered with `ttl`: valid until
    /// `sent + ttl - margin` (never moved backwards by a late answer to an
    /// older keepalive).
    pub fn proven_until(&self, until: Instant) {
        self.0.send_modify(|current| {
            if current.is_none_or(|c| c < until) {
                *current = Some(until);
            }
        });
    }

    /// No more proof: the lease is lost, revoked or not renewed in time.
    pub fn withdraw(&self) {
        self.0.send_replace(None);
    }

    pub fn clock(&self) -> LeaseClock {
        LeaseClock(self.0.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn proven_only_until_the_deadline_and_never_moved_back() {
        let (writer, clock) = lease_clock();
        assert!(!clock.proven(), "not proven before any keepalive");
        let later = Instant::now() + Duration::from_secs(60);
        writer.proven_until(later);
        assert!(clock.proven());
        writer.proven_until(Instant::now() + Duration::from_secs(1));
        assert_eq!(
            clock.valid_until(),
            Some(later),
            "an older answer does not shorten it"
        );
        writer.proven_until(Instant::now() - Duration::from_secs(1));
        assert_eq!(clock.valid_until(), Some(later));
        writer.withdraw();
        assert!(!clock.proven());
    }

    #[test]
    fn a_deadline_in_the_past_is_not_proven() {
        let (writer, clock) = lease_clock();
        writer.proven_until(Instant::now());
        assert!(!clock.proven());
    }
}
