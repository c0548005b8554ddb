//! Choosing transaction ids as ZODB does: a tid is a `TimeStamp` (UTC
//! minutes since 1900 in the high 4 bytes, the second's fraction in units
//! of 60/2^32 s in the low 4 bytes), made strictly later than the previous
//! one. Tids must stay time-like: `pack(t)`, `undoLog` and `history` read
//! times out of them.
//!
//! zeoraid chooses every tid itself (`docs/invariants.md#tid-order`): a ZEO server does
//! not reject a `tpc_begin` tid lower than its last one, it silently commits
//! out of order.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use zeo::types::{Tid, P64};

/// The highest tid a transaction may commit with: just below ZODB's
/// `maxtid` (`7fff..ff`). A client loads the current revision with
/// `loadBefore(oid, maxtid)`, which never sees a revision at or above
/// `maxtid`, and reads "as of" a transaction at its tid + 1.
pub const LAST_USABLE: Tid = P64([0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]);

/// The tid for a transaction committing at `now`, strictly greater than
/// `last`; `None` when no usable tid is greater than `last`. Never wraps
/// and never repeats a tid: the array's tids only grow.
pub fn next_tid(now: SystemTime, last: Tid) -> Option<Tid> {
    let candidate = timestamp(now);
    let next = if candidate > last {
        candidate
    } else {
        Tid::from_u64(last.as_u64().checked_add(1)?)
    };
    (next <= LAST_USABLE).then_some(next)
}

/// The latest tid a client may ask for at `now`: `skew` in the future.
/// A time past what a tid can express (the year 10 000 and beyond) allows
/// every tid.
pub fn latest_explicit(now: SystemTime, skew: Duration) -> Tid {
    now.checked_add(skew).map_or(Tid::from_u64(u64::MAX), timestamp)
}

/// ZODB's `TimeStamp(*time.gmtime(t)[:5] + (t % 60,))`.
pub fn timestamp(now: SystemTime) -> Tid {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let of_day = secs % 86_400;
    let (hour, minute) = (of_day / 3600, (of_day % 3600) / 60);
    let minutes = ((((year - 1900) as u64 * 12 + month - 1) * 31 + day - 1) * 24 + hour) * 60 + minute;
    let seconds = (of_day % 60) as f64 + since_epoch.subsec_nanos() as f64 / 1e9;
    // ZODB: sec / SCONV with SCONV = 60 / 2^32, truncated.
    let fraction = ((seconds / 60.0) * 4_294_967_296.0) as u64;
    if minutes > 0xffff_ffff {
        // Past the last minute a tid can express: the highest tid, never a
        // wrapped (low) one.
        return Tid::from_u64(u64::MAX);
    }
    Tid::from_u64((minutes << 32) | fraction.min(0xffff_ffff))
}

/// When `tid` was committed, in seconds since the Unix epoch (the inverse
/// of [`timestamp`]); for showing how far a member lags behind the array.
pub fn unix_seconds(tid: Tid) -> f64 {
    let raw = tid.as_u64();
    let (minutes, fraction) = (raw >> 32, raw & 0xffff_ffff);
    let minute = minutes % 60;
    let hour = (minutes / 60) % 24;
    let day = (minutes / (60 * 24)) % 31 + 1;
    let month = (minutes / (60 * 24 * 31)) % 12 + 1;
    let year = (minutes / (60 * 24 * 31 * 12)) as i64 + 1900;
    let days = days_from_civil(year, month, day);
    let seconds = fraction as f64 * 60.0 / 4_294_967_296.0;
    (days * 86_400) as f64 + (hour * 3600 + minute * 60) as f64 + seconds
}

/// (year, month, day) to days since 1970-01-01 (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u64, day: u64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let (month, day) = (month as i64, day as i64);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u64, u64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u64;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u64;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Tids as operators read them in JSON answers: 16 hex digits
/// (`#[serde(with = "crate::tid::hex")]`).
pub mod hex {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};
    use zeo::types::Tid;

    pub fn serialize<S: Serializer>(tid: &Tid, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&tid.to_hex())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Tid, D::Error> {
        let digits = String::deserialize(d)?;
        if digits.len() != 16 {
            return Err(D::Error::custom(format!(
                "a tid is 16 hex digits, not {digits:?}"
            )));
        }
        u64::from_str_radix(&digits, 16)
            .map(Tid::from_u64)
            .map_err(|e| D::Error::custom(format!("a tid is 16 hex digits, not {digits:?}: {e}")))
    }
}

/// `Option<Tid>` as 16 hex digits or nothing (`#[serde(with)]`).
pub mod opt_hex {
    use serde::{Deserialize, Deserializer, Serializer};
    use zeo::types::Tid;

    pub fn serialize<S: Serializer>(tid: &Option<Tid>, s: S) -> Result<S::Ok, S::Error> {
        match tid {
            Some(tid) => super::hex::serialize(tid, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Tid>, D::Error> {
        #[derive(Deserialize)]
        struct Hex(#[serde(with = "super::hex")] Tid);
        Ok(Option::<Hex>::deserialize(d)?.map(|Hex(tid)| tid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    #[test]
    fn hex_round_trips_and_refuses_other_lengths() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Shown(#[serde(with = "hex")] Tid);
        let tid = Shown(Tid::from_u64(0x03ff_0000_0000_0001));
        let json = serde_json::to_string(&tid).unwrap();
        assert_eq!(json, "\"03ff000000000001\"");
        assert_eq!(serde_json::from_str::<Shown>(&json).unwrap(), tid);
        assert!(serde_json::from_str::<Shown>("\"03ff\"").is_err());
        assert!(serde_json::from_str::<Shown>("\"03ff00000000000g\"").is_err());
    }

    #[test]
    fn matches_zodb_timestamps() {
        // Python: TimeStamp(*time.gmtime(t)[:5] + (t % 60,)).raw().hex()
        assert_eq!(timestamp(at(0, 0)).to_hex(), "023c2b0000000000");
        // t = 951827696.25: 2000-02-29 12:34:56.25 UTC
        let t = 951_827_696;
        assert_eq!(civil_from_days(t / 86_400), (2000, 2, 29));
        assert_eq!(timestamp(at(t as u64, 250_000_000)).to_hex(), "0332b0d2f0000000");
    }

    #[test]
    fn unix_seconds_inverts_timestamp() {
        for (secs, nanos) in [(0, 0), (951_827_696, 250_000_000), (1_795_724_623, 668_348_000)] {
            let back = unix_seconds(timestamp(at(secs, nanos)));
            let want = secs as f64 + nanos as f64 / 1e9;
            assert!((back - want).abs() < 1e-6, "{secs}.{nanos}: {back}");
        }
        for days in [-1000, 0, 59, 60, 11_016, 20_000] {
            assert_eq!(days_from_civil_check(days), days);
        }
    }

    fn days_from_civil_check(days: i64) -> i64 {
        let (y, m, d) = civil_from_days(days);
        days_from_civil(y, m, d)
    }

    #[test]
    fn next_tid_is_strictly_increasing_even_when_the_clock_is_behind() {
        let now = at(1_700_000_000, 0);
        let t1 = next_tid(now, Tid::ZERO).unwrap();
        assert_eq!(t1, timestamp(now));
        let t2 = next_tid(now, t1).unwrap();
        assert_eq!(t2.as_u64(), t1.as_u64() + 1);
        let future = Tid::from_u64(timestamp(at(1_800_000_000, 0)).as_u64());
        assert_eq!(next_tid(now, future).unwrap().as_u64(), future.as_u64() + 1);
    }

    #[test]
    fn next_tid_runs_out_instead_of_wrapping_or_repeating() {
        let now = at(1_700_000_000, 0);
        let near_the_end = Tid::from_u64(LAST_USABLE.as_u64() - 1);
        assert_eq!(next_tid(now, near_the_end), Some(LAST_USABLE));
        assert_eq!(next_tid(now, LAST_USABLE), None);
        assert_eq!(next_tid(now, P64::MAX_TID), None);
        assert_eq!(next_tid(now, Tid::from_u64(u64::MAX)), None);
    }

    #[test]
    fn times_past_the_last_tid_saturate() {
        let year_20000 = at(18_000 * 365 * 86_400, 0);
        assert_eq!(timestamp(year_20000), Tid::from_u64(u64::MAX));
        let now = at(1_700_000_000, 0);
        assert_eq!(latest_explicit(now, Duration::MAX), Tid::from_u64(u64::MAX));
        let hour_ahead = latest_explicit(now, Duration::from_secs(3600));
        assert_eq!(hour_ahead, timestamp(at(1_700_003_600, 0)));
    }
}
