//! Phase 1: may this target be copied onto, and from where?
//!
//! - An empty target (last tid zero) gets a full copy.
//! - `full` is refused for a non-empty target: zeoraid never deletes data.
//! - Otherwise the target's most recent transactions (the window) are
//!   compared with the source's transactions at the same tids, record by
//!   record. The window's first tid comes from `undoLog(0, -n)` on the
//!   target (FileStorage's undo ids are the base64 of the tid); `undoLog`
//!   lists only undoable transactions and stops at a pack, so the window
//!   may be shorter, but the target's last transaction is always in it.
//!
//! What is compared, per transaction: tid, status, user, description,
//! extension; per record: oid, tid, data, and the back-pointer `data_txn`.
//! Records are compared in oid order, the last record of each object only:
//! a FileStorage keeps every record a client sent in a transaction (a ZEO
//! client sends a blob's record twice), RelStorage keeps one per object,
//! and a load sees the last. A copy reproduces the order of a transaction
//! written through ZEO, but not necessarily of one written to a
//! FileStorage directly. `data_txn` is compared only where both members
//! give one: it is how a FileStorage shares an earlier record's data (an
//! undo), RelStorage stores the data again and gives none, and the data
//! is compared either way. Nor is it compared for blob records: a blob can
//! only be copied as a full record (with its blob file), never as a
//! back-pointer.
//!
//! A target that missed a pack of the array (`missed_pack`) is compared
//! leniently before the pack time: a pack removes non-current revisions,
//! and whole transactions left without records, from the source, and
//! marks the transactions it went through with status 'p'. There a
//! transaction the source lacks is accepted (it still counts as the
//! target's), and within a transaction every record of the source must be
//! on the target with the same data (back-pointers not compared: a pack
//! may have replaced one by its data); the target may have more. After the
//! pack time the comparison is exact.

use super::blob::is_blob_record;
use super::copier::{Copier, Side};
use super::error::RecoveryError;
use super::messages::VerifyWindow;
use super::storages::{check_storages, TargetStorage};
use crate::tid::unix_seconds;
use zeo::methods::{Request, UndoLog};
use zeo::reply::{DataRecord, Reply, TxnRecord};
use zeo::types::Tid;

/// What phase 1 found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Verified {
    /// The last transaction the target really has: copying starts after it.
    pub target_last: Tid,
    /// What the target's `lastTransaction` said (see [`verify`]).
    pub reported_last: Tid,
    pub source_last: Tid,
    pub compared: u64,
    pub full_copy: bool,
    /// How to write onto the target (`storages.rs`).
    pub target: TargetStorage,
}

/// Phase 1. The target's `lastTransaction` is where its history *probably*
/// ends: a FileStorage that was killed between a vote and `tpc_finish`
/// truncates the unfinished transaction when it is reopened, but still
/// reports that transaction's tid as its last. So the end is established
/// by the comparison itself: the target's history may stop short of its
/// reported last tid (it is then behind, and copying starts after the
/// last transaction it really has), but a transaction the source lacks
/// (unless before a pack the target missed), or a hole before later
/// transactions, refuses.
pub(crate) async fn verify(
    c: &Copier,
    window: VerifyWindow,
    full: bool,
    missed_pack: Option<f64>,
) -> Result<Verified, RecoveryError> {
    let packed = |tid: Tid| missed_pack.is_some_and(|t| unix_seconds(tid) <= t);
    let reported = c.last_transaction(Side::Target).await?;
    let source_last = c.last_transaction(Side::Source).await?;
    let target = check_storages(c).await?;
    let empty = |compared| Verified {
        target_last: Tid::ZERO,
        reported_last: reported,
        source_last,
        compared,
        full_copy: true,
        target,
    };
    if reported == Tid::ZERO {
        return Ok(empty(0));
    }
    if full {
        return Err(RecoveryError::Refused {
            reason: format!(
                "a full copy needs an empty member, and {} holds transactions up to {reported}; \
                 zeoraid never deletes data: wipe its storage (Data.fs and blob directory) first",
                c.member
            ),
        });
    }
    let start = match window {
        VerifyWindow::All => None,
        VerifyWindow::Last(n) => Some(window_start(c, n, reported).await?),
    };
    let mut outcome = compare(c, start, source_last, &packed).await?;
    if outcome.last_matched.is_none() && start.is_some() {
        // None of the window is on the target: its reported last tid names
        // a transaction it does not have, and only its whole history tells
        // where it ends.
        outcome = compare(c, None, source_last, &packed).await?;
    }
    Ok(match outcome.last_matched {
        Some(target_last) => Verified {
            target_last,
            reported_last: reported,
            source_last,
            compared: outcome.compared,
            full_copy: false,
            target,
        },
        None => empty(outcome.compared),
    })
}

/// The oldest tid of the target's `n` most recent undoable transactions;
/// `last` if `undoLog` does not tell.
async fn window_start(c: &Copier, n: usize, last: Tid) -> Result<Tid, RecoveryError> {
    let n = i64::try_from(n.max(1)).unwrap_or(i64::MAX);
    let log = Request::UndoLog(UndoLog { first: 0, last: -n });
    let entries = match c.call(Side::Target, log).await? {
        Reply::UndoLog(entries) => entries,
        other => return Err(c.unexpected(Side::Target, "undoLog", &other)),
    };
    let oldest = entries
        .iter()
        .filter_map(|e| e.dict_get("id"))
        .filter_map(|id| id.as_bytes().and_then(|b| decode_undo_id(b)))
        .filter(|tid| *tid <= last)
        .min();
    Ok(oldest.unwrap_or(last))
}

/// FileStorage's undo id: `base64.encodebytes(tid)` without its newline.
pub(crate) fn decode_undo_id(id: &[u8]) -> Option<Tid> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let text: Vec<u8> = id.iter().copied().filter(|c| !c.is_ascii_whitespace()).collect();
    if text.len() != 12 || !text.ends_with(b"=") {
        return None;
    }
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut out = Vec::with_capacity(8);
    for &c in &text[..11] {
        bits = (bits << 6) | value(c)?;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    Tid::from_slice(&out)
}

struct Compared {
    compared: u64,
    /// The last transaction both have (`None`: the target has none of
    /// the compared range).
    last_matched: Option<Tid>,
}

/// Walks both histories from `start` in step to the end of the target's;
/// the first difference refuses. The target's history may end before its
/// reported last tid (see [`verify`]), or after it: a RelStorage server
/// answers `lastTransaction` from its own view, which a transaction its
/// storage kept after zeoraid aborted it (RelStorage on SQLite) does not
/// move, so only the history itself shows such a transaction.
async fn compare(
    c: &Copier,
    start: Option<Tid>,
    source_last: Tid,
    packed: &dyn Fn(Tid) -> bool,
) -> Result<Compared, RecoveryError> {
    let mut target = c.iterator(Side::Target, start, None).await?;
    let mut source = c.iterator(Side::Source, start, None).await?;
    let mut done = Compared {
        compared: 0,
        last_matched: None,
    };
    // The source's next transaction, read ahead: with a missed pack the
    // target may have transactions in between.
    let mut next_source = c.next_txn(Side::Source, &mut source).await?;
    loop {
        // Each answer comes from the connection its iterator was opened
        // on (calls on a replaced one fail): a `None` is the history's end.
        let t = c.next_txn(Side::Target, &mut target).await?;
        // The target's history ends here (with the source's, or it is behind).
        let Some(t) = t else { return Ok(done) };
        let before_pack = packed(t.tid);
        if next_source.as_ref().is_none_or(|s| t.tid < s.tid) {
            if before_pack {
                // The pack the target missed removed it from the source.
                done.last_matched = Some(t.tid);
                continue;
            }
            return Err(source_lacks(c, t.tid, source_last));
        }
        let s = next_source.take().expect("checked");
        if t.tid > s.tid {
            return Err(RecoveryError::Refused {
                reason: format!(
                    "{} lacks transaction {} that {} has, but has later ones ({}): it diverged",
                    c.member, s.tid, c.source_name, t.tid
                ),
            });
        }
        // A pack marks the transactions it went through with status 'p'.
        let marked_by_the_pack = before_pack && s.status == "p";
        let s = if marked_by_the_pack {
            TxnRecord {
                status: t.status.clone(),
                ..s
            }
        } else {
            s
        };
        if let Some(reason) = txn_difference((&c.member, &t), (&c.source_name, &s)) {
            return Err(RecoveryError::Refused { reason });
        }
        let t_records = c.records(Side::Target, &target, t.tid).await?;
        let s_records = c.records(Side::Source, &source, s.tid).await?;
        let difference = if before_pack {
            records_missing(&t_records, &s_records)
        } else {
            record_difference(&t_records, &s_records)
        };
        if let Some(reason) = difference {
            return Err(RecoveryError::Refused {
                reason: format!(
                    "transaction {} differs between {} and {}: {reason}",
                    t.tid, c.member, c.source_name
                ),
            });
        }
        done.compared += 1;
        done.last_matched = Some(t.tid);
        next_source = c.next_txn(Side::Source, &mut source).await?;
    }
}

fn source_lacks(c: &Copier, tid: Tid, source_last: Tid) -> RecoveryError {
    let reason = if tid > source_last {
        format!(
            "{} has transaction {tid} after the last transaction of {} ({source_last}): it diverged",
            c.member, c.source_name
        )
    } else {
        format!(
            "{} lacks transaction {tid} that {} has: it diverged",
            c.source_name, c.member
        )
    };
    RecoveryError::Refused { reason }
}

/// Compares the metadata of two transactions at the same tid, each
/// with the name of the member it came from (recovery: target and
/// source; the scrub: any two members).
pub(crate) fn txn_difference(
    (t_name, t): (&str, &TxnRecord),
    (s_name, s): (&str, &TxnRecord),
) -> Option<String> {
    let fields: [(&str, String, String); 4] = [
        ("status", format!("{:?}", t.status), format!("{:?}", s.status)),
        ("user", format!("{:?}", t.user), format!("{:?}", s.user)),
        (
            "description",
            format!("{:?}", t.description),
            format!("{:?}", s.description),
        ),
        (
            "extension",
            format!("{:?}", t.extension),
            format!("{:?}", s.extension),
        ),
    ];
    let equal = [
        t.status == s.status,
        t.user == s.user,
        t.description == s.description,
        t.extension == s.extension,
    ];
    fields
        .iter()
        .zip(equal)
        .find(|(_, eq)| !eq)
        .map(|((name, tv, sv), _)| {
            format!(
                "transaction {} differs: its {name} is {tv} on {t_name} and {sv} on {s_name}",
                t.tid
            )
        })
}

/// Compares two transactions' records (see the module documentation);
/// names the first difference.
pub(crate) fn record_difference(target: &[DataRecord], source: &[DataRecord]) -> Option<String> {
    let sorted = |records: &[DataRecord]| {
        let mut r = last_record_of_each_object(records);
        r.sort_by_key(|r| r.oid);
        r
    };
    let (t, s) = (sorted(target), sorted(source));
    for (a, b) in t.iter().zip(&s) {
        if a.oid != b.oid {
            let oid = a.oid.min(b.oid);
            let (has, lacks) = if a.oid < b.oid {
                ("target", "source")
            } else {
                ("source", "target")
            };
            return Some(format!("the {has} has a record of oid {oid} the {lacks} lacks"));
        }
        if a.tid != b.tid {
            return Some(format!("oid {}: record tid {} vs {}", a.oid, a.tid, b.tid));
        }
        if a.data != b.data {
            return Some(format!(
                "oid {}: data differs ({} vs {})",
                a.oid,
                describe(a.data.as_deref()),
                describe(b.data.as_deref())
            ));
        }
        let blob = a.data.as_deref().is_some_and(is_blob_record);
        let both_point_back = a.data_txn.is_some() && b.data_txn.is_some();
        if !blob && both_point_back && a.data_txn != b.data_txn {
            return Some(format!(
                "oid {}: back-pointer (data_txn) {:?} vs {:?}",
                a.oid, a.data_txn, b.data_txn
            ));
        }
    }
    if t.len() != s.len() {
        let (longer, has) = if t.len() > s.len() {
            (&t, "target")
        } else {
            (&s, "source")
        };
        let extra = &longer[t.len().min(s.len())];
        return Some(format!(
            "the {has} has more records ({} vs {}), the first extra one of oid {}",
            t.len().max(s.len()),
            t.len().min(s.len()),
            extra.oid
        ));
    }
    None
}

/// A transaction's records with only the last one of each object (what a
/// load at that transaction sees), in their order: a FileStorage keeps
/// every record a client sent (a ZEO client sends a blob's record twice),
/// RelStorage one per object.
fn last_record_of_each_object(records: &[DataRecord]) -> Vec<DataRecord> {
    let last: std::collections::HashMap<_, usize> =
        records.iter().enumerate().map(|(i, r)| (r.oid, i)).collect();
    records
        .iter()
        .enumerate()
        .filter(|(i, r)| last.get(&r.oid) == Some(i))
        .map(|(_, r)| r.clone())
        .collect()
}

/// Before a pack the target missed: every record of the source must be on
/// the target with the same data; the target may have more (revisions
/// the pack removed). Names the first record that is not.
pub(crate) fn records_missing(target: &[DataRecord], source: &[DataRecord]) -> Option<String> {
    source.iter().find_map(|s| {
        let same_oid: Vec<&DataRecord> = target.iter().filter(|t| t.oid == s.oid).collect();
        match same_oid.iter().find(|t| t.tid == s.tid && t.data == s.data) {
            Some(_) => None,
            None if same_oid.is_empty() => Some(format!(
                "the source has a record of oid {} the target lacks",
                s.oid
            )),
            None => Some(format!(
                "oid {}: data differs ({} on the target, {} on the source)",
                s.oid,
                describe(same_oid[0].data.as_deref()),
                describe(s.data.as_deref())
            )),
        }
    })
}

/// A record's data for a message: its size and a checksum (FNV-1a).
fn describe(data: Option<&[u8]>) -> String {
    match data {
        None => "no data (creation undone)".to_owned(),
        Some(d) => {
            let hash = d.iter().fold(0xcbf29ce484222325u64, |h, &b| {
                (h ^ b as u64).wrapping_mul(0x100000001b3)
            });
            format!("{} bytes, fnv {hash:016x}", d.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use zeo::types::P64;

    #[test]
    fn undo_ids_decode_to_tids() {
        // An undo id of capture s06.
        let tid = decode_undo_id(b"BA0+Ha/3WkQ=").unwrap();
        assert_eq!(tid.to_hex(), "040d3e1daff75a44");
        assert_eq!(decode_undo_id(b"AAAAAAAAAAE=").unwrap(), P64::from_u64(1));
        assert_eq!(decode_undo_id(b"AAAAAAAAAAE=\n"), Some(P64::from_u64(1)));
        assert_eq!(decode_undo_id(b"AAAA"), None);
        assert_eq!(decode_undo_id(b"AAAAAAAAAA*="), None);
    }

    fn rec(oid: u64, tid: u64, data: &'static [u8], data_txn: Option<u64>) -> DataRecord {
        DataRecord {
            oid: P64::from_u64(oid),
            tid: P64::from_u64(tid),
            data: Some(Bytes::from_static(data)),
            data_txn: data_txn.map(P64::from_u64),
        }
    }

    const BLOB: &[u8] = b"\x80\x03cZODB.blob\nBlob\nq\x00.\x80\x03N.";

    #[test]
    fn equal_records_in_any_oid_order() {
        let a = [rec(1, 9, b"x", None), rec(2, 9, b"y", Some(5))];
        let b = [rec(2, 9, b"y", Some(5)), rec(1, 9, b"x", None)];
        assert_eq!(record_difference(&a, &b), None);
    }

    #[test]
    fn differences_are_named() {
        let base = [rec(1, 9, b"x", None), rec(2, 9, b"y", None)];
        let data = [rec(1, 9, b"x", None), rec(2, 9, b"z", None)];
        let msg = record_difference(&data, &base).unwrap();
        assert!(
            msg.starts_with("oid 0x0000000000000002: data differs (1 bytes, fnv"),
            "{msg}"
        );
        let extra = [
            rec(1, 9, b"x", None),
            rec(2, 9, b"y", None),
            rec(3, 9, b"w", None),
        ];
        let msg = record_difference(&extra, &base).unwrap();
        assert!(msg.contains("the target has more records (3 vs 2)"), "{msg}");
        assert!(msg.contains("0x0000000000000003"), "{msg}");
        let other = [rec(1, 9, b"x", None), rec(4, 9, b"y", None)];
        let msg = record_difference(&base, &other).unwrap();
        assert_eq!(
            msg,
            "the target has a record of oid 0x0000000000000002 the source lacks"
        );
        let bp = [rec(1, 9, b"x", Some(3)), rec(2, 9, b"y", None)];
        let other_bp = [rec(1, 9, b"x", Some(4)), rec(2, 9, b"y", None)];
        let msg = record_difference(&bp, &other_bp).unwrap();
        assert!(msg.contains("back-pointer"), "{msg}");
    }

    #[test]
    fn storages_without_back_pointers_or_repeated_records_compare_equal() {
        // A FileStorage: an undo as a back-pointer, a blob's record twice.
        let filestorage = [
            rec(1, 9, b"x", Some(3)),
            rec(2, 9, b"y", None),
            rec(2, 9, b"z", None),
        ];
        // RelStorage: the data again, one record per object.
        let relstorage = [rec(2, 9, b"z", None), rec(1, 9, b"x", None)];
        assert_eq!(record_difference(&filestorage, &relstorage), None);
        assert_eq!(record_difference(&relstorage, &filestorage), None);
        // The last record of an object is what counts.
        let other_last = [rec(1, 9, b"x", None), rec(2, 9, b"y", None)];
        let msg = record_difference(&filestorage, &other_last).unwrap();
        assert!(msg.starts_with("oid 0x0000000000000002: data differs"), "{msg}");
    }

    #[test]
    fn before_a_missed_pack_the_target_may_hold_more_but_not_other_records() {
        let packed_source = [rec(2, 9, b"y", None)];
        // The pack removed oid 1's revision and replaced a back-pointer.
        let target = [rec(1, 9, b"x", None), rec(2, 9, b"y", Some(5))];
        assert_eq!(records_missing(&target, &packed_source), None);
        assert_eq!(records_missing(&target, &[]), None);
        let changed = [rec(2, 9, b"z", None)];
        let msg = records_missing(&target, &changed).unwrap();
        assert!(msg.starts_with("oid 0x0000000000000002: data differs"), "{msg}");
        let lacking = [rec(3, 9, b"w", None)];
        assert_eq!(
            records_missing(&target, &lacking).unwrap(),
            "the source has a record of oid 0x0000000000000003 the target lacks"
        );
    }

    #[test]
    fn blob_back_pointers_are_not_compared() {
        let source = [rec(1, 9, BLOB, Some(4)), rec(1, 9, BLOB, Some(4))];
        let target = [rec(1, 9, BLOB, Some(4)), rec(1, 9, BLOB, None)];
        assert_eq!(record_difference(&target, &source), None);
    }
}
