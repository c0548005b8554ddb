//! Slow-member ("gray failure") detection: a member that still answers,
//! but far slower than its peers, holds every commit back, because a
//! commit waits for every optimal member. Nothing else degrades it: it
//! never misses a deadline by much, never disconnects, never answers
//! wrongly.
//!
//! The controller records each member's own time to answer the commit
//! phases of zeoraid's commits ([`SlowDetector::record`]) and asks for a
//! [`SlowDetector::verdict`] over the optimal members. Like the restart
//! tracker this is plain logic: no actix, no clock, no I/O, so every
//! decision can be replayed in a unit test.
//!
//! # Why it is conservative
//!
//! Degrading a healthy member costs a full recovery and, worse, a replica,
//! so a false positive is far more expensive than a slow commit. Hence:
//!
//! * Only the p99 over a full window counts (nearest rank: with 100 samples
//!   the 99th smallest), so one stall (a GC pause, a page-cache miss) is
//!   not enough; a member must be slow again and again.
//! * A member is compared with the *slowest* of its peers, not their
//!   average: if two members are both slow, the cause is more likely shared
//!   (the network, the load) than one member's fault, and nobody is judged.
//!   It follows that at most one member can be slow at a time.
//! * It must exceed `factor` times that peer *and* an absolute floor
//!   (`min_latency`): 2 ms against 0.1 ms is a large ratio that no
//!   application notices.
//! * At least two members need a full window, so a member that just came
//!   back (its samples [`forget`](SlowDetector::forget)-ed) is neither judged
//!   nor used as the yardstick until it has answered a full window again.
//!
//! The verdict does not know the array's quorum: the caller must not
//! degrade a slow member when that would leave too few optimal members
//! (a slow array is better than a failed one).
//!
//! No policy value makes the detector panic (a zero window counts as one
//! sample, a NaN factor never judges); validating the operator's
//! configuration is the daemon's job (`src/config`).

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

/// When a member counts as slow. The daemon's config model uses this type
/// directly (`[slow_member]`), so there is one definition and one set of
/// defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlowPolicy {
    /// Judging can be switched off; latencies are still measured, so the
    /// status output shows what the policy would see before it is enabled.
    pub enabled: bool,
    /// How many of a member's latest commits its p99 is taken over. Larger
    /// windows react later and forgive more single stalls.
    pub window: usize,
    /// How many times the slowest peer's p99 a member's p99 must exceed.
    pub factor: f64,
    /// A p99 at or below this is never slow, whatever the ratio.
    pub min_latency: Duration,
}

impl SlowPolicy {
    /// On, over the last 100 commits, 10 times the slowest peer and at
    /// least 250 ms: only a member that makes commits visibly slow for
    /// the applications is degraded.
    pub const DEFAULT: SlowPolicy = SlowPolicy {
        enabled: true,
        window: 100,
        factor: 10.0,
        min_latency: Duration::from_millis(250),
    };
}

impl Default for SlowPolicy {
    fn default() -> Self {
        SlowPolicy::DEFAULT
    }
}

impl fmt::Display for SlowPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.enabled {
            return f.write_str("off");
        }
        write!(
            f,
            "commit p99 over {} commits above {:.1}x the slowest peer's and above {}",
            self.window,
            self.factor,
            Short(self.min_latency)
        )
    }
}

/// A member found slow, with the numbers behind the verdict (for the log
/// line and the member's degraded reason).
#[derive(Debug, Clone, PartialEq)]
pub struct Slow {
    pub member: usize,
    /// The member's commit p99 over its window.
    pub p99: Duration,
    /// The highest p99 among the other optimal members with a full window.
    pub peers_p99: Duration,
    /// The degraded reason, starting with "slow:".
    pub reason: String,
}

/// Each member's latest commit-phase latencies, and the verdict over them.
#[derive(Debug, Clone)]
pub struct SlowDetector {
    policy: SlowPolicy,
    /// Never 0, so "full" always means at least one sample.
    window: usize,
    /// Per member index, oldest sample first, at most `window` long.
    samples: Vec<VecDeque<Duration>>,
}

impl SlowDetector {
    pub fn new(policy: SlowPolicy, members: usize) -> Self {
        SlowDetector {
            policy,
            window: policy.window.max(1),
            samples: vec![VecDeque::new(); members],
        }
    }

    /// One answer of `member` to a commit phase; the oldest sample drops
    /// out once the window is full. Unknown members are ignored, so a
    /// caller racing a member list change cannot make this panic.
    pub fn record(&mut self, member: usize, latency: Duration) {
        let window = self.window;
        if let Some(ring) = self.samples.get_mut(member) {
            if ring.len() == window {
                ring.pop_front();
            }
            ring.push_back(latency);
        }
    }

    /// Drops a member's samples. Called when it is degraded or comes back:
    /// latencies from before a gap (a restart, a recovery) say nothing
    /// about the member now.
    pub fn forget(&mut self, member: usize) {
        if let Some(ring) = self.samples.get_mut(member) {
            ring.clear();
        }
    }

    /// The member's p99 (nearest rank) over a full window; `None` until it
    /// has answered `window` commits since it was last forgotten.
    pub fn p99(&self, member: usize) -> Option<Duration> {
        let ring = self.samples.get(member)?;
        if ring.len() < self.window {
            return None;
        }
        let mut sorted: Vec<Duration> = ring.iter().copied().collect();
        // ceil(0.99 * n) in integers: 99 of 100, 10 of 10.
        let rank = (sorted.len() * 99).div_ceil(100);
        let (_, nth, _) = sorted.select_nth_unstable(rank - 1);
        Some(*nth)
    }

    /// The slowest of the `optimal` members, if it is slow by the policy
    /// (see the module documentation); `None` when disabled, when fewer
    /// than two of them have a full window, or when nobody is slow.
    /// Duplicate and unknown indexes are ignored.
    pub fn verdict(&self, optimal: &[usize]) -> Option<Slow> {
        // Nobody to compare with: skip the percentiles (4 % of a commit's
        // instructions with one member).
        if !self.policy.enabled || optimal.len() < 2 {
            return None;
        }
        let mut judged: Vec<(usize, Duration)> = Vec::with_capacity(optimal.len());
        for &member in optimal {
            if judged.iter().any(|&(m, _)| m == member) {
                continue;
            }
            if let Some(p99) = self.p99(member) {
                judged.push((member, p99));
            }
        }
        if judged.len() < 2 {
            return None;
        }
        // Against the maximum of the others, only the slowest member can
        // ever exceed `factor` (> 1) times its peers, so judging it alone
        // is enough.
        let slowest = (0..judged.len()).max_by_key(|&i| judged[i].1)?;
        let (member, p99) = judged[slowest];
        let peers_p99 = judged
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != slowest)
            .map(|(_, &(_, p))| p)
            .max()?;
        // Integral nanoseconds are exact in an f64 up to ~104 days, so the
        // boundary (exactly `factor` times) is not slow, as documented.
        let limit = self.policy.factor * peers_p99.as_nanos() as f64;
        let over_factor = p99.as_nanos() as f64 > limit;
        if !(over_factor && p99 > self.policy.min_latency) {
            return None;
        }
        let ratio = if peers_p99.is_zero() {
            String::new()
        } else {
            format!("{:.1}x ", p99.as_secs_f64() / peers_p99.as_secs_f64())
        };
        let reason = format!(
            "slow: commit p99 {} over {} commits, {ratio}the slowest peer's {} (limit {:.1}x and {})",
            Short(p99),
            self.window,
            Short(peers_p99),
            self.policy.factor,
            Short(self.policy.min_latency),
        );
        Some(Slow {
            member,
            p99,
            peers_p99,
            reason,
        })
    }
}

/// A latency as an operator reads it: whole microseconds below 1 ms, whole
/// milliseconds below 10 s, then tenths of seconds (`Duration`'s `Debug`
/// prints every nanosecond).
struct Short(Duration);

impl fmt::Display for Short {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = (self.0.as_nanos() + 500) / 1_000;
        if micros < 1_000 {
            write!(f, "{micros}µs")
        } else if micros < 10_000_000 {
            write!(f, "{}ms", (micros + 500) / 1_000)
        } else {
            write!(f, "{:.1}s", self.0.as_secs_f64())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn policy(window: usize, factor: f64, min_latency: Duration) -> SlowPolicy {
        SlowPolicy {
            enabled: true,
            window,
            factor,
            min_latency,
        }
    }

    /// Fills `member`'s window with `latency`.
    fn fill(d: &mut SlowDetector, member: usize, latency: Duration) {
        for _ in 0..d.window {
            d.record(member, latency);
        }
    }

    /// A detector whose members each have a full window of one latency.
    fn steady(policy: SlowPolicy, latencies: &[Duration]) -> SlowDetector {
        let mut d = SlowDetector::new(policy, latencies.len());
        for (member, &latency) in latencies.iter().enumerate() {
            fill(&mut d, member, latency);
        }
        d
    }

    #[test]
    fn default_is_on_and_conservative() {
        let p = SlowPolicy::default();
        assert_eq!(p, SlowPolicy::DEFAULT);
        assert!(p.enabled);
        assert_eq!(p.window, 100);
        assert_eq!(p.factor, 10.0);
        assert_eq!(p.min_latency, ms(250));
    }

    #[test]
    fn a_clearly_slow_member_is_found_with_its_numbers() {
        let d = steady(SlowPolicy::DEFAULT, &[ms(20), ms(900), ms(30)]);
        let slow = d.verdict(&[0, 1, 2]).expect("member 1 is slow");
        assert_eq!(slow.member, 1);
        assert_eq!(slow.p99, ms(900));
        assert_eq!(slow.peers_p99, ms(30));
        assert_eq!(
            slow.reason,
            "slow: commit p99 900ms over 100 commits, 30.0x the slowest peer's 30ms \
             (limit 10.0x and 250ms)"
        );
    }

    #[test]
    fn disabled_never_judges_but_still_measures() {
        let d = steady(
            SlowPolicy {
                enabled: false,
                ..SlowPolicy::DEFAULT
            },
            &[ms(1), ms(10_000)],
        );
        assert_eq!(d.verdict(&[0, 1]), None);
        assert_eq!(d.p99(1), Some(ms(10_000)));
    }

    #[test]
    fn needs_full_windows() {
        let mut d = SlowDetector::new(SlowPolicy::DEFAULT, 2);
        for _ in 0..99 {
            d.record(0, ms(1));
            d.record(1, ms(5_000));
        }
        assert_eq!(d.p99(0), None);
        assert_eq!(d.verdict(&[0, 1]), None);
        // The fast member's window fills first: still no peer to compare.
        d.record(0, ms(1));
        assert_eq!(d.p99(0), Some(ms(1)));
        assert_eq!(d.verdict(&[0, 1]), None);
        d.record(1, ms(5_000));
        assert_eq!(d.verdict(&[0, 1]).map(|s| s.member), Some(1));
    }

    #[test]
    fn needs_two_optimal_members() {
        let d = steady(SlowPolicy::DEFAULT, &[ms(1), ms(5_000)]);
        assert_eq!(d.verdict(&[1]), None);
        assert_eq!(d.verdict(&[]), None);
        // The same member twice is still one member, not its own peer.
        assert_eq!(d.verdict(&[1, 1]), None);
    }

    #[test]
    fn only_the_given_optimal_members_count() {
        // Member 0 is fast but degraded: without it, nobody is judged.
        let d = steady(SlowPolicy::DEFAULT, &[ms(1), ms(5_000), ms(4_000)]);
        assert_eq!(d.verdict(&[1, 2]), None);
        assert_eq!(d.verdict(&[0, 1]).map(|s| s.member), Some(1));
    }

    #[test]
    fn unknown_members_are_ignored() {
        let mut d = steady(SlowPolicy::DEFAULT, &[ms(1), ms(5_000)]);
        d.record(7, ms(1));
        d.forget(7);
        assert_eq!(d.p99(7), None);
        assert_eq!(d.verdict(&[0, 1, 7]).map(|s| s.member), Some(1));
    }

    #[test]
    fn factor_boundary_is_not_slow() {
        let p = policy(10, 10.0, ms(1));
        // Exactly 10x is not over 10x.
        assert_eq!(steady(p, &[ms(10), ms(100)]).verdict(&[0, 1]), None);
        let just_over = ms(100) + Duration::from_nanos(1);
        let slow = steady(p, &[ms(10), just_over]).verdict(&[0, 1]).unwrap();
        assert_eq!(slow.member, 1);
        assert_eq!(slow.p99, just_over);
        assert_eq!(slow.peers_p99, ms(10));
        // A smaller factor judges what a larger one forgives.
        assert_eq!(steady(p, &[ms(10), ms(50)]).verdict(&[0, 1]), None);
        let p3 = policy(10, 3.0, ms(1));
        assert_eq!(
            steady(p3, &[ms(10), ms(50)]).verdict(&[0, 1]).map(|s| s.member),
            Some(1)
        );
    }

    #[test]
    fn min_latency_is_a_floor() {
        let p = policy(10, 10.0, ms(250));
        // 100x slower, but 100 ms is not noticeable.
        assert_eq!(steady(p, &[ms(1), ms(100)]).verdict(&[0, 1]), None);
        // Exactly the floor is not over it.
        assert_eq!(steady(p, &[ms(1), ms(250)]).verdict(&[0, 1]), None);
        let slow = steady(p, &[ms(1), ms(251)]).verdict(&[0, 1]).unwrap();
        assert_eq!(slow.member, 1);
    }

    #[test]
    fn the_slowest_of_several_is_judged_against_the_slowest_peer() {
        let d = steady(SlowPolicy::DEFAULT, &[ms(10), ms(40), ms(2_000), ms(20)]);
        let slow = d.verdict(&[0, 1, 2, 3]).unwrap();
        assert_eq!(slow.member, 2);
        assert_eq!(slow.peers_p99, ms(40));
        // Not slow against a peer that is itself slowish (2000 < 10 x 300).
        let d = steady(SlowPolicy::DEFAULT, &[ms(10), ms(300), ms(2_000)]);
        assert_eq!(d.verdict(&[0, 1, 2]), None);
    }

    #[test]
    fn two_slow_members_are_not_judged() {
        // Both are far over 10x the fast one, but each is within 10x of the
        // other: more likely a shared cause than two failing members.
        let d = steady(SlowPolicy::DEFAULT, &[ms(10), ms(2_000), ms(1_500)]);
        assert_eq!(d.verdict(&[0, 1, 2]), None);
    }

    #[test]
    fn forget_resets_the_window() {
        let mut d = steady(SlowPolicy::DEFAULT, &[ms(1), ms(5_000)]);
        assert!(d.verdict(&[0, 1]).is_some());
        d.forget(1);
        assert_eq!(d.p99(1), None);
        assert_eq!(d.verdict(&[0, 1]), None);
        // Back and fast: a full window of new samples, nothing of the old.
        fill(&mut d, 1, ms(2));
        assert_eq!(d.p99(1), Some(ms(2)));
        assert_eq!(d.verdict(&[0, 1]), None);
    }

    #[test]
    fn a_single_outlier_does_not_make_p99_slow() {
        let mut d = steady(SlowPolicy::DEFAULT, &[ms(10), ms(10)]);
        d.record(1, ms(60_000));
        // Nearest rank over 100 samples is the 99th smallest: the outlier
        // is the 100th.
        assert_eq!(d.p99(1), Some(ms(10)));
        assert_eq!(d.verdict(&[0, 1]), None);
        // A second one in the same window is the p99.
        d.record(1, ms(60_000));
        assert_eq!(d.p99(1), Some(ms(60_000)));
        assert_eq!(d.verdict(&[0, 1]).map(|s| s.member), Some(1));
    }

    #[test]
    fn old_samples_leave_the_window() {
        let mut d = steady(SlowPolicy::DEFAULT, &[ms(10), ms(10)]);
        d.record(1, ms(60_000));
        d.record(1, ms(60_000));
        assert!(d.verdict(&[0, 1]).is_some());
        // 99 fast answers later only one slow answer is left in the window.
        for _ in 0..99 {
            d.record(1, ms(10));
        }
        assert_eq!(d.p99(1), Some(ms(10)));
        assert_eq!(d.verdict(&[0, 1]), None);
        // And after 100 no slow one at all.
        d.record(1, ms(10));
        assert_eq!(d.p99(1), Some(ms(10)));
    }

    #[test]
    fn p99_is_nearest_rank() {
        let mut d = SlowDetector::new(policy(100, 10.0, ms(1)), 1);
        // Recorded out of order: 1..=100 ms.
        for n in (1..=100).rev() {
            d.record(0, ms(n));
        }
        assert_eq!(d.p99(0), Some(ms(99)));
        // With a window of 10, ceil(9.9) = 10: the largest sample.
        let mut d = SlowDetector::new(policy(10, 10.0, ms(1)), 1);
        for n in 1..=10 {
            d.record(0, ms(n));
        }
        assert_eq!(d.p99(0), Some(ms(10)));
        // 200 samples: rank 198.
        let mut d = SlowDetector::new(policy(200, 10.0, ms(1)), 1);
        for n in 1..=200 {
            d.record(0, ms(n));
        }
        assert_eq!(d.p99(0), Some(ms(198)));
    }

    #[test]
    fn degenerate_policies_do_not_panic() {
        // A zero window is one sample.
        let d = steady(policy(0, 10.0, ms(1)), &[ms(1), ms(100)]);
        assert_eq!(d.p99(0), Some(ms(1)));
        assert_eq!(d.verdict(&[0, 1]).map(|s| s.member), Some(1));
        // A NaN or infinite factor never judges.
        for factor in [f64::NAN, f64::INFINITY] {
            let d = steady(policy(10, factor, ms(1)), &[ms(1), ms(100_000)]);
            assert_eq!(d.verdict(&[0, 1]), None, "{factor}");
        }
        // Peers answering in no time at all: the floor still applies.
        let d = steady(policy(10, 10.0, ms(1)), &[Duration::ZERO, ms(2)]);
        let slow = d.verdict(&[0, 1]).unwrap();
        assert_eq!(
            slow.reason,
            "slow: commit p99 2ms over 10 commits, the slowest peer's 0µs (limit 10.0x and 1ms)"
        );
        let d = steady(policy(10, 10.0, ms(1)), &[Duration::MAX, Duration::MAX]);
        assert_eq!(d.verdict(&[0, 1]), None);
        // No members at all.
        assert_eq!(SlowDetector::new(SlowPolicy::DEFAULT, 0).verdict(&[0]), None);
    }

    #[test]
    fn latencies_are_shown_rounded() {
        let show = |d: Duration| Short(d).to_string();
        assert_eq!(show(Duration::from_micros(1_499)), "1ms");
        assert_eq!(show(Duration::from_nanos(812_400_000)), "812ms");
        assert_eq!(show(Duration::from_nanos(999_400)), "999µs");
        assert_eq!(show(Duration::from_nanos(999_600)), "1ms");
        assert_eq!(show(Duration::from_micros(250)), "250µs");
        assert_eq!(show(Duration::from_millis(9_999)), "9999ms");
        assert_eq!(show(Duration::from_millis(12_340)), "12.3s");
    }

    #[test]
    fn policy_display() {
        assert_eq!(
            SlowPolicy::DEFAULT.to_string(),
            "commit p99 over 100 commits above 10.0x the slowest peer's and above 250ms"
        );
        let off = SlowPolicy {
            enabled: false,
            ..SlowPolicy::DEFAULT
        };
        assert_eq!(off.to_string(), "off");
    }
}
