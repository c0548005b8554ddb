//! Restart policy of a member's connection: when to reconnect, and when to
//! stop trying and park the member.
//!
//! actix's `Supervisor` restarts an actor each time it stops, immediately,
//! without limit, and not at all after a panic (`docs/invariants.md#supervisor-limits`: a
//! member with its backend down restarted ~129,000 times in 4.7 s). So the
//! member actor does not lean on it for reconnecting; it asks a
//! [`RestartTracker`] instead. The tracker is plain, deterministic logic: no
//! actix, no tokio, no I/O. The caller passes the current time in as an
//! [`Instant`] and the randomness comes from a seeded generator, so every
//! decision can be replayed in a unit test.
//!
//! # Semantics
//!
//! * **What is a restart.** Each failure of a READY connection, and each
//!   failed reconnect attempt (connect, handshake or `register`), is one
//!   restart; the member actor reports it with [`RestartTracker::on_failure`]
//!   and waits as the returned [`Decision`] says.
//! * **Intensity (Erlang/OTP style).** If *more than* `max_restarts` restarts
//!   happened within the last `restart_window` (a sliding window; a restart
//!   exactly `restart_window` ago has aged out), the member is **parked**
//!   (the circuit opens): the decision is `Park { probe_after:
//!   park_probe_interval }`. A member that cannot stay up should stop costing
//!   connect attempts and log lines and be reported degraded, rather than be
//!   hammered forever. So `max_restarts` failures within the window are
//!   retried, and the next one parks; `max_restarts == 0` parks at the first
//!   failure; a zero `restart_window` never parks (unless `max_restarts` is
//!   0), because no earlier restart is ever inside it.
//! * **Parked.** A parked member stays parked. The actor probes it every
//!   `park_probe_interval`; a failed probe (`on_failure` while parked) answers
//!   `Park` again and neither grows the restart history nor the
//!   consecutive-failure count: probing is the slow path, not restarting.
//! * **Backoff.** While not parked, the n-th consecutive failure waits
//!   `backoff_initial * 2^(n - 1)`, capped at `backoff_max` (the doubling
//!   saturates instead of overflowing). Then **jitter**: the delay is
//!   multiplied by a factor drawn uniformly from `[1 - jitter, 1 + jitter]`
//!   and clamped to `[0, backoff_max]`. Several zeoraids (cooperative
//!   cluster mode) and several of one zeoraid's reconnect paths lose the
//!   same member at the same moment; without jitter they would all come back
//!   in lockstep and hit the recovering ZEO server as a thundering herd at
//!   every backoff step. For the same reason production code seeds each
//!   tracker differently (e.g. with `fastrand::u64(..)`); tests fix the seed.
//! * **Ready.** [`RestartTracker::on_ready`] (the connection came up and
//!   `register` succeeded) resets the consecutive-failure count, so the next
//!   failure retries after about `backoff_initial`, and clears the parked
//!   state (a successful probe closes the circuit). It does **not** forget the
//!   restarts inside the window: a member that flaps connect → fail →
//!   connect → fail ... still reaches the intensity limit and is parked,
//!   even though each reconnect succeeded. Likewise, a member that fails
//!   again soon after a successful probe is parked again at once, until its
//!   earlier restarts have aged out of the window.
//! * **Bounded memory.** Only the timestamps inside the window are kept, and
//!   at most `max_restarts + 1` of them (more cannot change a decision), so
//!   [`RestartTracker::restarts_in_window`] saturates at `max_restarts + 1`.
//!
//! No value of the policy makes the tracker panic: zero durations, a zero
//! `max_restarts`, `backoff_initial > backoff_max`, out-of-range or NaN
//! `jitter` (clamped to `0.0..=1.0`, NaN as 0), `Duration::MAX`, and
//! billions of consecutive failures are all handled. Validating the operator's
//! configuration is the daemon's job (`src/config`), not this module's.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How a member's connection is restarted before the member is parked.
///
/// The daemon's config model uses this type directly (`[restart]` and
/// `[members.restart]` are validated into it), so there is one definition
/// and one set of defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestartPolicy {
    /// Restarts allowed within `restart_window`; one more parks the member.
    pub max_restarts: u32,
    /// Length of the sliding window the restarts are counted in.
    pub restart_window: Duration,
    /// Delay before the first reconnect after a failure; doubled for every
    /// further consecutive failure.
    pub backoff_initial: Duration,
    /// Upper bound of every reconnect delay, jitter included.
    pub backoff_max: Duration,
    /// Fraction (0.0-1.0) by which each delay is randomly stretched or
    /// shrunk, so zeoraids losing the same member do not reconnect in
    /// lockstep.
    pub jitter: f64,
    /// How often a parked member is probed to see whether it is back.
    pub park_probe_interval: Duration,
}

impl RestartPolicy {
    /// 5 restarts in 60 s, backoff 250 ms doubling up to 30 s, 20 % jitter,
    /// a parked member probed every 30 s (the daemon's defaults).
    pub const DEFAULT: RestartPolicy = RestartPolicy {
        max_restarts: 5,
        restart_window: Duration::from_secs(60),
        backoff_initial: Duration::from_millis(250),
        backoff_max: Duration::from_secs(30),
        jitter: 0.2,
        park_probe_interval: Duration::from_secs(30),
    };
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy::DEFAULT
    }
}

impl std::fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "max {} restarts in {:?}, backoff {:?}..{:?} jitter {}, park probe every {:?}",
            self.max_restarts,
            self.restart_window,
            self.backoff_initial,
            self.backoff_max,
            self.jitter,
            self.park_probe_interval,
        )
    }
}

/// What the member actor does after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Reconnect after this delay.
    Retry { after: Duration },
    /// The member is parked (degraded): stop reconnecting and only probe it
    /// after this delay.
    Park { probe_after: Duration },
}

/// Restart bookkeeping of one member's connection; owned by that member's
/// actor. See the module documentation for the semantics.
#[derive(Debug, Clone)]
pub struct RestartTracker {
    policy: RestartPolicy,
    rng: fastrand::Rng,
    /// Times of the restarts inside the window, oldest first; at most
    /// `max_restarts + 1` entries.
    history: VecDeque<Instant>,
    /// Failures since the connection was last ready (drives the backoff).
    consecutive: u32,
    /// Restarts ever counted (failed probes of a parked member excluded).
    total: u64,
    parked: bool,
}

impl RestartTracker {
    /// A tracker with no restarts yet. `rng_seed` feeds the jitter; give
    /// every tracker (and every zeoraid process) a different one in
    /// production, or the jitter would be correlated across them.
    pub fn new(policy: RestartPolicy, rng_seed: u64) -> Self {
        RestartTracker {
            policy,
            rng: fastrand::Rng::with_seed(rng_seed),
            history: VecDeque::new(),
            consecutive: 0,
            total: 0,
            parked: false,
        }
    }

    /// The policy this tracker applies.
    pub fn policy(&self) -> &RestartPolicy {
        &self.policy
    }

    /// Records a failure (a READY connection lost, a reconnect attempt or a
    /// probe failed) at `now` and says what to do next.
    pub fn on_failure(&mut self, now: Instant) -> Decision {
        let park = Decision::Park {
            probe_after: self.policy.park_probe_interval,
        };
        if self.parked {
            // A failed probe: the circuit stays open; it is not a restart.
            return park;
        }
        self.total = self.total.saturating_add(1);
        self.consecutive = self.consecutive.saturating_add(1);
        self.forget_old(now);
        self.history.push_back(now);
        // Entries beyond max_restarts + 1 cannot change a decision; dropping
        // the oldest keeps memory bounded even if a member flaps for a long
        // time inside one window.
        let keep = (self.policy.max_restarts as usize).saturating_add(1);
        while self.history.len() > keep {
            self.history.pop_front();
        }
        if self.history.len() > self.policy.max_restarts as usize {
            self.parked = true;
            return park;
        }
        Decision::Retry {
            after: self.jittered(backoff_base(&self.policy, self.consecutive)),
        }
    }

    /// The connection came up (`register` succeeded) at `now`: the backoff
    /// starts over and a parked member is unparked, but the restarts inside
    /// the window still count, so flapping is still caught.
    pub fn on_ready(&mut self, now: Instant) {
        self.consecutive = 0;
        self.parked = false;
        self.forget_old(now);
    }

    /// Restarts within the window ending at `now` (at most
    /// `max_restarts + 1`, see the module documentation).
    pub fn restarts_in_window(&self, now: Instant) -> u32 {
        let n = self.history.iter().filter(|&&t| self.in_window(t, now)).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Restarts since the tracker was created; failed probes of a parked
    /// member are not restarts and are not counted.
    pub fn total_restarts(&self) -> u64 {
        self.total
    }

    /// Whether the member is parked (circuit open, only probed).
    pub fn is_parked(&self) -> bool {
        self.parked
    }

    /// Failures since the connection was last ready (not counting failed
    /// probes while parked).
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive
    }

    fn in_window(&self, t: Instant, now: Instant) -> bool {
        // `saturating_duration_since` instead of `now - window`: no Instant
        // arithmetic that could panic on a huge window, and a timestamp
        // "from the future" (a caller passing a stale `now`) counts as fresh.
        now.saturating_duration_since(t) < self.policy.restart_window
    }

    fn forget_old(&mut self, now: Instant) {
        let window = self.policy.restart_window;
        // `retain` rather than popping from the front, so a caller whose
        // Instants are not monotonic cannot leave stale entries behind.
        self.history
            .retain(|&t| now.saturating_duration_since(t) < window);
    }

    fn jittered(&mut self, base: Duration) -> Duration {
        let max = self.policy.backoff_max;
        let jitter = self.policy.jitter;
        // NaN fails the comparison and means "no jitter", like 0.
        let jitter = if jitter > 0.0 { jitter.min(1.0) } else { 0.0 };
        if jitter == 0.0 || base.is_zero() {
            // Exact: no float round trip, and no random draw wasted.
            return base.min(max);
        }
        let (low, high) = (1.0 - jitter, 1.0 + jitter);
        let factor = (low + 2.0 * jitter * self.rng.f64()).clamp(low, high);
        // `try_from_secs_f64` instead of `mul_f64`: a delay near
        // `Duration::MAX` stretched by the factor overflows, which is an
        // error to saturate here, not a panic.
        Duration::try_from_secs_f64(base.as_secs_f64() * factor)
            .unwrap_or(max)
            .min(max)
    }
}

/// `backoff_initial * 2^(consecutive - 1)`, capped at `backoff_max`; the
/// doubling saturates at the cap instead of overflowing.
fn backoff_base(policy: &RestartPolicy, consecutive: u32) -> Duration {
    let initial = policy.backoff_initial;
    if initial.is_zero() {
        return Duration::ZERO;
    }
    let doubled = 2u32
        .checked_pow(consecutive.saturating_sub(1))
        .and_then(|factor| initial.checked_mul(factor));
    match doubled {
        Some(delay) => delay.min(policy.backoff_max),
        None => policy.backoff_max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: u64 = 0x5eed_2ea1d;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// 100 ms .. 10 s, no jitter, 5 restarts in 60 s, probe every 30 s.
    fn exact_policy() -> RestartPolicy {
        RestartPolicy {
            max_restarts: 5,
            restart_window: secs(60),
            backoff_initial: ms(100),
            backoff_max: secs(10),
            jitter: 0.0,
            park_probe_interval: secs(30),
        }
    }

    fn retry_after(decision: Decision) -> Duration {
        match decision {
            Decision::Retry { after } => after,
            other => panic!("expected Retry, got {other:?}"),
        }
    }

    #[test]
    fn default_matches_daemon_defaults() {
        let p = RestartPolicy::default();
        assert_eq!(p.max_restarts, 5);
        assert_eq!(p.restart_window, secs(60));
        assert_eq!(p.backoff_initial, ms(250));
        assert_eq!(p.backoff_max, secs(30));
        assert_eq!(p.jitter, 0.2);
        assert_eq!(p.park_probe_interval, secs(30));
    }

    #[test]
    fn backoff_grows_exponentially_up_to_the_cap() {
        let policy = RestartPolicy {
            max_restarts: 100,
            ..exact_policy()
        };
        let mut tracker = RestartTracker::new(policy, SEED);
        let t0 = Instant::now();
        let delays: Vec<Duration> = (0..10)
            .map(|i| retry_after(tracker.on_failure(t0 + ms(i))))
            .collect();
        let expected = [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000].map(ms);
        assert_eq!(delays, expected);
        assert_eq!(tracker.consecutive_failures(), 10);
        assert_eq!(tracker.total_restarts(), 10);
    }

    #[test]
    fn jitter_zero_gives_exact_values() {
        let mut tracker = RestartTracker::new(exact_policy(), SEED);
        let t0 = Instant::now();
        assert_eq!(tracker.on_failure(t0), Decision::Retry { after: ms(100) });
        assert_eq!(tracker.on_failure(t0), Decision::Retry { after: ms(200) });
        assert_eq!(tracker.on_failure(t0), Decision::Retry { after: ms(400) });
    }

    #[test]
    fn jitter_stays_within_bounds_over_many_draws() {
        for jitter in [0.2, 0.5, 1.0] {
            let policy = RestartPolicy {
                max_restarts: u32::MAX,
                jitter,
                ..exact_policy()
            };
            let mut tracker = RestartTracker::new(policy, SEED);
            let t0 = Instant::now();
            let mut distinct = std::collections::HashSet::new();
            for i in 0..5_000u32 {
                // Restart the backoff now and then so both the growing and
                // the capped delays are drawn.
                if i % 10 == 0 {
                    tracker.on_ready(t0);
                }
                let after = retry_after(tracker.on_failure(t0));
                let base = backoff_base(&policy, tracker.consecutive_failures());
                let low = base.mul_f64(1.0 - jitter);
                let high = base.mul_f64(1.0 + jitter).min(policy.backoff_max);
                assert!(
                    low <= after && after <= high,
                    "jitter {jitter}: {after:?} outside [{low:?}, {high:?}] (base {base:?})"
                );
                distinct.insert(after);
            }
            // The factor is actually random, not stuck at one end.
            assert!(
                distinct.len() > 1_000,
                "jitter {jitter}: only {} delays",
                distinct.len()
            );
        }
    }

    #[test]
    fn same_seed_same_delays_different_seed_different_delays() {
        let policy = RestartPolicy {
            jitter: 0.5,
            ..exact_policy()
        };
        let t0 = Instant::now();
        let run = |seed| {
            let mut tracker = RestartTracker::new(policy, seed);
            (0..5).map(|_| tracker.on_failure(t0)).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn max_restarts_within_window_retry_then_the_next_parks() {
        let mut tracker = RestartTracker::new(exact_policy(), SEED);
        let t0 = Instant::now();
        for i in 0..5 {
            assert!(matches!(tracker.on_failure(t0 + secs(i)), Decision::Retry { .. }));
            assert!(!tracker.is_parked());
        }
        assert_eq!(tracker.restarts_in_window(t0 + secs(5)), 5);
        assert_eq!(
            tracker.on_failure(t0 + secs(5)),
            Decision::Park {
                probe_after: secs(30)
            }
        );
        assert!(tracker.is_parked());
        assert_eq!(tracker.restarts_in_window(t0 + secs(5)), 6);
        assert_eq!(tracker.total_restarts(), 6);
    }

    #[test]
    fn failures_spread_wider_than_the_window_never_park() {
        // 5 allowed per 60 s; one every 12 s keeps exactly 5 in any window,
        // because a restart exactly 60 s old has aged out.
        let mut tracker = RestartTracker::new(exact_policy(), SEED);
        let t0 = Instant::now();
        for i in 0..100 {
            let now = t0 + secs(12 * i);
            assert!(
                matches!(tracker.on_failure(now), Decision::Retry { .. }),
                "failure {i}"
            );
            assert!(tracker.restarts_in_window(now) <= 5);
        }
        assert!(!tracker.is_parked());
        assert_eq!(tracker.total_restarts(), 100);
        // ... and memory stays bounded.
        assert!(tracker.history.len() <= 6);
    }

    #[test]
    fn restarts_age_out_of_the_window() {
        let mut tracker = RestartTracker::new(exact_policy(), SEED);
        let t0 = Instant::now();
        for _ in 0..3 {
            tracker.on_failure(t0);
        }
        assert_eq!(tracker.restarts_in_window(t0 + secs(59)), 3);
        assert_eq!(tracker.restarts_in_window(t0 + secs(60)), 0);
    }

    #[test]
    fn parked_failed_probe_stays_parked_without_growing_history() {
        let policy = RestartPolicy {
            max_restarts: 2,
            ..exact_policy()
        };
        let mut tracker = RestartTracker::new(policy, SEED);
        let t0 = Instant::now();
        tracker.on_failure(t0);
        tracker.on_failure(t0);
        assert_eq!(
            tracker.on_failure(t0),
            Decision::Park {
                probe_after: secs(30)
            }
        );
        let (total, consecutive) = (tracker.total_restarts(), tracker.consecutive_failures());
        for probe in 1..=10 {
            let now = t0 + secs(30 * probe);
            assert_eq!(
                tracker.on_failure(now),
                Decision::Park {
                    probe_after: secs(30)
                }
            );
            assert!(tracker.is_parked());
        }
        assert_eq!(tracker.total_restarts(), total);
        assert_eq!(tracker.consecutive_failures(), consecutive);
        // The window has long passed; probes added nothing to it.
        assert_eq!(tracker.restarts_in_window(t0 + secs(300)), 0);
    }

    #[test]
    fn on_ready_after_park_clears_parked_and_resets_backoff() {
        let mut tracker = RestartTracker::new(exact_policy(), SEED);
        let t0 = Instant::now();
        for _ in 0..6 {
            tracker.on_failure(t0);
        }
        assert!(tracker.is_parked());
        // A probe succeeds once the restarts have aged out of the window.
        let probe_ok = t0 + secs(90);
        tracker.on_ready(probe_ok);
        assert!(!tracker.is_parked());
        assert_eq!(tracker.consecutive_failures(), 0);
        assert_eq!(tracker.restarts_in_window(probe_ok), 0);
        assert_eq!(
            tracker.on_failure(probe_ok + secs(1)),
            Decision::Retry { after: ms(100) }
        );
        assert_eq!(
            tracker.on_failure(probe_ok + secs(2)),
            Decision::Retry { after: ms(200) }
        );
    }

    #[test]
    fn failing_soon_after_a_successful_probe_parks_again() {
        let mut tracker = RestartTracker::new(exact_policy(), SEED);
        let t0 = Instant::now();
        for _ in 0..6 {
            tracker.on_failure(t0);
        }
        tracker.on_ready(t0 + secs(30));
        assert!(!tracker.is_parked());
        assert_eq!(
            tracker.on_failure(t0 + secs(31)),
            Decision::Park {
                probe_after: secs(30)
            }
        );
        assert!(tracker.history.len() <= 6);
    }

    #[test]
    fn flapping_with_successful_reconnects_still_parks() {
        // connect -> fail -> reconnect ok -> fail ...: every reconnect
        // succeeds, so the backoff never grows, but the restarts in the
        // window still add up.
        let mut tracker = RestartTracker::new(exact_policy(), SEED);
        let t0 = Instant::now();
        for i in 0..5 {
            let fail = t0 + secs(2 * i);
            assert_eq!(
                tracker.on_failure(fail),
                Decision::Retry { after: ms(100) },
                "flap {i}"
            );
            tracker.on_ready(fail + secs(1));
            assert_eq!(tracker.consecutive_failures(), 0);
        }
        assert_eq!(tracker.restarts_in_window(t0 + secs(10)), 5);
        assert_eq!(
            tracker.on_failure(t0 + secs(10)),
            Decision::Park {
                probe_after: secs(30)
            }
        );
        assert!(tracker.is_parked());
    }

    #[test]
    fn huge_consecutive_counts_saturate_without_panic() {
        for n in [31, 32, 33, 64, 1_000, u32::MAX] {
            assert_eq!(backoff_base(&exact_policy(), n), secs(10), "n = {n}");
        }
        assert_eq!(backoff_base(&exact_policy(), 0), ms(100));

        let policy = RestartPolicy {
            max_restarts: u32::MAX,
            jitter: 1.0,
            backoff_max: Duration::MAX,
            ..exact_policy()
        };
        let mut tracker = RestartTracker::new(policy, SEED);
        tracker.consecutive = u32::MAX - 1;
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(matches!(tracker.on_failure(t0), Decision::Retry { .. }));
        }
        assert_eq!(tracker.consecutive_failures(), u32::MAX);

        // A maximal delay stretched by the jitter saturates at the cap.
        let policy = RestartPolicy {
            backoff_initial: Duration::MAX,
            ..policy
        };
        let mut tracker = RestartTracker::new(policy, SEED);
        for _ in 0..100 {
            assert!(retry_after(tracker.on_failure(t0)) <= Duration::MAX);
        }
    }

    #[test]
    fn max_restarts_zero_parks_at_the_first_failure() {
        let policy = RestartPolicy {
            max_restarts: 0,
            ..exact_policy()
        };
        let mut tracker = RestartTracker::new(policy, SEED);
        let t0 = Instant::now();
        assert_eq!(
            tracker.on_failure(t0),
            Decision::Park {
                probe_after: secs(30)
            }
        );
        assert!(tracker.is_parked());
        assert_eq!(tracker.total_restarts(), 1);
    }

    #[test]
    fn odd_values_do_not_panic() {
        let t0 = Instant::now();
        // All zero: no window, so never parked; zero delays.
        let zero = RestartPolicy {
            max_restarts: 1,
            restart_window: Duration::ZERO,
            backoff_initial: Duration::ZERO,
            backoff_max: Duration::ZERO,
            jitter: 0.5,
            park_probe_interval: Duration::ZERO,
        };
        let mut tracker = RestartTracker::new(zero, SEED);
        for _ in 0..10 {
            assert_eq!(
                tracker.on_failure(t0),
                Decision::Retry {
                    after: Duration::ZERO
                }
            );
        }
        assert_eq!(tracker.restarts_in_window(t0), 0);

        // Initial above the cap, out-of-range and NaN jitter.
        for jitter in [f64::NAN, -1.0, 7.0, f64::INFINITY] {
            let policy = RestartPolicy {
                backoff_initial: secs(20),
                jitter,
                ..exact_policy()
            };
            let mut tracker = RestartTracker::new(policy, SEED);
            assert!(retry_after(tracker.on_failure(t0)) <= secs(10), "jitter {jitter}");
        }

        // A huge window and a stale `now` (before the recorded restarts).
        let policy = RestartPolicy {
            restart_window: Duration::MAX,
            ..exact_policy()
        };
        let mut tracker = RestartTracker::new(policy, SEED);
        tracker.on_failure(t0 + secs(10));
        assert_eq!(tracker.restarts_in_window(t0), 1);
        tracker.on_failure(t0);
        tracker.on_ready(t0);
        assert_eq!(tracker.restarts_in_window(t0 + secs(1)), 2);
    }
}
