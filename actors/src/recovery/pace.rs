//! Pure arithmetic of a copy: the throttle (how long to wait before the
//! next transaction) and the rates and ETA reported as progress.

use std::collections::VecDeque;
use std::num::NonZeroU64;
use std::time::{Duration, Instant};

/// The configured rate limits; `None` = unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Throttle {
    pub max_transactions_per_second: Option<NonZeroU64>,
    pub max_bytes_per_second: Option<NonZeroU64>,
}

impl Throttle {
    pub const UNLIMITED: Throttle = Throttle {
        max_transactions_per_second: None,
        max_bytes_per_second: None,
    };

    /// The time a transaction of `bytes` bytes "costs" under the limits.
    fn cost(&self, bytes: u64) -> Duration {
        let per_txn = self.max_transactions_per_second.map_or(Duration::ZERO, |tps| {
            Duration::from_secs_f64(1.0 / tps.get() as f64)
        });
        let per_bytes = self.max_bytes_per_second.map_or(Duration::ZERO, |bps| {
            Duration::from_secs_f64(bytes as f64 / bps.get() as f64)
        });
        per_txn.max(per_bytes)
    }
}

/// Spaces transactions so that neither limit is exceeded: each transaction
/// books `cost` after the later of its own start and the end of the
/// previous booking. A copy slower than the limits never waits, and time
/// spent idle (caught up) is not saved up as credit for a burst.
#[derive(Debug)]
pub struct Pacer {
    throttle: Throttle,
    booked_until: Option<Instant>,
}

impl Pacer {
    pub fn new(throttle: Throttle) -> Pacer {
        Pacer {
            throttle,
            booked_until: None,
        }
    }

    /// After a transaction of `bytes` bytes that started at `started`:
    /// how long to wait (from `now`) before starting the next one.
    pub fn delay_after(&mut self, started: Instant, bytes: u64, now: Instant) -> Duration {
        let cost = self.throttle.cost(bytes);
        if cost.is_zero() {
            return Duration::ZERO;
        }
        let base = self.booked_until.map_or(started, |b| b.max(started));
        let until = base + cost;
        self.booked_until = Some(until);
        until.saturating_duration_since(now)
    }
}

/// One observation of the copy's counters.
#[derive(Clone, Copy, Debug)]
struct Sample {
    at: Instant,
    transactions: u64,
    bytes: u64,
    /// Commit time of the last copied transaction (its tid), in seconds.
    tid_seconds: f64,
}

/// Rates over a sliding window of recent samples, and the ETA they imply.
///
/// The ETA is measured in *history time*: tids are timestamps, so the
/// distance from the last copied tid to the source's last tid is known in
/// seconds of history without counting transactions, and the copy advances
/// through history at a measurable number of history-seconds per second.
#[derive(Debug)]
pub struct Rates {
    window: Duration,
    samples: VecDeque<Sample>,
}

/// What [`Rates::estimate`] returns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub transactions_per_second: f64,
    pub bytes_per_second: f64,
    /// `None` while there is no rate yet.
    pub eta_seconds: Option<f64>,
}

impl Rates {
    pub fn new(window: Duration) -> Rates {
        Rates {
            window,
            samples: VecDeque::new(),
        }
    }

    pub fn observe(&mut self, at: Instant, transactions: u64, bytes: u64, tid_seconds: f64) {
        self.samples.push_back(Sample {
            at,
            transactions,
            bytes,
            tid_seconds,
        });
        // Keep one sample older than the window as the baseline.
        while self.samples.len() > 2 && at.duration_since(self.samples[1].at) >= self.window {
            self.samples.pop_front();
        }
    }

    /// Rates between the oldest kept sample and the newest; the ETA to
    /// reach `source_last_seconds` (0 once there).
    pub fn estimate(&self, source_last_seconds: f64) -> Estimate {
        let (Some(first), Some(last)) = (self.samples.front(), self.samples.back()) else {
            return Estimate {
                transactions_per_second: 0.0,
                bytes_per_second: 0.0,
                eta_seconds: None,
            };
        };
        let remaining = source_last_seconds - last.tid_seconds;
        let dt = last.at.duration_since(first.at).as_secs_f64();
        if dt <= 0.0 {
            return Estimate {
                transactions_per_second: 0.0,
                bytes_per_second: 0.0,
                eta_seconds: (remaining <= 0.0).then_some(0.0),
            };
        }
        let history_per_second = (last.tid_seconds - first.tid_seconds) / dt;
        let eta_seconds = if remaining <= 0.0 {
            Some(0.0)
        } else if history_per_second > 0.0 {
            Some(remaining / history_per_second)
        } else {
            None
        };
        Estimate {
            transactions_per_second: (last.transactions - first.transactions) as f64 / dt,
            bytes_per_second: (last.bytes - first.bytes) as f64 / dt,
            eta_seconds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(tps: u64, bps: u64) -> Throttle {
        Throttle {
            max_transactions_per_second: NonZeroU64::new(tps),
            max_bytes_per_second: NonZeroU64::new(bps),
        }
    }

    #[test]
    fn unlimited_never_waits() {
        let mut p = Pacer::new(Throttle::UNLIMITED);
        let t = Instant::now();
        for _ in 0..10 {
            assert_eq!(p.delay_after(t, 1 << 30, t), Duration::ZERO);
        }
    }

    #[test]
    fn transactions_per_second_spaces_starts() {
        let mut p = Pacer::new(throttle(20, 0));
        let t0 = Instant::now();
        // Copies that take no time: each one waits 50 ms after the previous start.
        let mut start = t0;
        for _ in 0..40 {
            let delay = p.delay_after(start, 100, start);
            start += delay;
        }
        assert_eq!(start - t0, Duration::from_millis(2000));
    }

    #[test]
    fn bytes_per_second_dominates_for_large_transactions() {
        let mut p = Pacer::new(throttle(1000, 1_000_000));
        let t0 = Instant::now();
        // 500 KB at 1 MB/s: half a second; the tps limit alone would be 1 ms.
        assert_eq!(p.delay_after(t0, 500_000, t0), Duration::from_millis(500));
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(p.delay_after(t1, 10, t1), Duration::from_millis(1));
    }

    #[test]
    fn slow_copies_and_idle_time_earn_no_credit() {
        let mut p = Pacer::new(throttle(10, 0));
        let t0 = Instant::now();
        // The copy itself took 300 ms: more than the 100 ms booked, no wait.
        assert_eq!(
            p.delay_after(t0, 0, t0 + Duration::from_millis(300)),
            Duration::ZERO
        );
        // After a minute idle the next transaction still books 100 ms from its start.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(p.delay_after(later, 0, later), Duration::from_millis(100));
    }

    #[test]
    fn rates_and_eta_over_history_time() {
        let mut r = Rates::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(r.estimate(100.0).eta_seconds, None);
        r.observe(t0, 0, 0, 0.0);
        r.observe(t0 + Duration::from_secs(2), 200, 4000, 10.0);
        let e = r.estimate(110.0);
        assert_eq!(e.transactions_per_second, 100.0);
        assert_eq!(e.bytes_per_second, 2000.0);
        // 5 s of history per second, 100 s of history left.
        assert_eq!(e.eta_seconds, Some(20.0));
        // At the source's last tid: done.
        assert_eq!(r.estimate(10.0).eta_seconds, Some(0.0));
    }

    #[test]
    fn rates_window_slides() {
        let mut r = Rates::new(Duration::from_secs(10));
        let t0 = Instant::now();
        // Fast at first, then 1 transaction per second.
        r.observe(t0, 0, 0, 0.0);
        r.observe(t0 + Duration::from_secs(1), 1000, 0, 1.0);
        for i in 2..=30u64 {
            r.observe(t0 + Duration::from_secs(i), 1000 + (i - 1), 0, i as f64);
        }
        let e = r.estimate(100.0);
        assert!((e.transactions_per_second - 1.0).abs() < 1e-9, "{e:?}");
    }
}
