//! The verdict on one step of a scrub: every member's next transaction,
//! read in lockstep, judged against the others. Pure: the actor
//! ([`super`]) reads, this module decides.
//!
//! The step's tid is the lowest next tid of any member; a member whose
//! next transaction is later (or whose history ended) lacks it. Members
//! are grouped by what they hold at that tid (the metadata and records
//! compared as recovery's verification compares them, `recovery/verify.rs`):
//! one group per distinct answer, and one for the members that lack it.
//! A group of more than half the members is the majority and the others
//! differ from it; without one nobody can be told right.

use crate::recovery::verify::{record_difference, txn_difference};
use std::sync::Arc;
use zeo::reply::{DataRecord, TxnRecord};
use zeo::types::{Oid, Tid};

/// One member's transaction with all its records and blob files.
#[derive(Clone, Debug)]
pub(crate) struct Read {
    pub txn: TxnRecord,
    pub records: Vec<DataRecord>,
    /// The blob file of each oid with a blob record, in oid order.
    pub blobs: Vec<BlobFile>,
}

/// A blob file as one member serves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BlobFile {
    pub oid: Oid,
    /// Its size and SHA-256, or that the member has none.
    pub described: String,
    pub size: u64,
}

impl Read {
    /// What the throttle counts: the records' data and the blob files.
    pub fn bytes(&self) -> u64 {
        let records: u64 = self
            .records
            .iter()
            .map(|r| r.data.as_ref().map_or(0, |d| d.len() as u64))
            .sum();
        records + self.blobs.iter().map(|b| b.size).sum::<u64>()
    }
}

/// What a step found.
#[derive(Debug, PartialEq)]
pub(crate) enum Verdict {
    /// Every member's history has ended.
    End,
    /// Every member holds the same transaction at `tid`.
    Same { tid: Tid },
    /// The members at these positions differ from the majority, each
    /// with the reason.
    Majority {
        tid: Tid,
        differing: Vec<(usize, String)>,
    },
    /// No group holds a majority: why.
    NoMajority { tid: Tid, reason: String },
}

/// Judges the members' next transactions (`None`: its history ended).
pub(crate) fn judge(names: &[Arc<str>], reads: &[Option<&Read>]) -> Verdict {
    let Some(tid) = reads.iter().flatten().map(|r| r.txn.tid).min() else {
        return Verdict::End;
    };
    let at_tid = |i: usize| reads[i].filter(|r| r.txn.tid == tid);
    // Each group: its members; the first one represents it. Group 0 is
    // the members that lack the transaction.
    let mut groups: Vec<Vec<usize>> = vec![Vec::new()];
    for i in 0..reads.len() {
        let Some(read) = at_tid(i) else {
            groups[0].push(i);
            continue;
        };
        let same = groups.iter().skip(1).position(|g| {
            let other = at_tid(g[0]).expect("a group of holders");
            difference((&names[i], read), (&names[g[0]], other)).is_none()
        });
        match same {
            Some(g) => groups[g + 1].push(i),
            None => groups.push(vec![i]),
        }
    }
    if groups.iter().filter(|g| !g.is_empty()).count() == 1 {
        return Verdict::Same { tid };
    }
    let majority = groups.iter().position(|g| g.len() * 2 > reads.len());
    let describe = |i: usize, j: usize| -> String {
        match (at_tid(i), at_tid(j)) {
            (None, _) => format!("{} lacks transaction {tid} that {} has", names[i], names[j]),
            (Some(_), None) => format!("{} has transaction {tid} that {} lacks", names[i], names[j]),
            (Some(a), Some(b)) => difference((&names[i], a), (&names[j], b)).unwrap_or_default(),
        }
    };
    match majority {
        Some(m) => {
            let reference = groups[m][0];
            let differing = (0..reads.len())
                .filter(|i| !groups[m].contains(i))
                .map(|i| (i, describe(i, reference)))
                .collect();
            Verdict::Majority { tid, differing }
        }
        None => {
            let mut firsts = groups.iter().filter(|g| !g.is_empty()).map(|g| g[0]);
            let (a, b) = (
                firsts.next().expect("two groups"),
                firsts.next().expect("two groups"),
            );
            let names_of = |g: &Vec<usize>| g.iter().map(|&i| &*names[i]).collect::<Vec<_>>().join(", ");
            let sides: Vec<String> = groups.iter().filter(|g| !g.is_empty()).map(names_of).collect();
            Verdict::NoMajority {
                tid,
                reason: format!("{} differ at tid {tid}: {}", sides.join(" and "), describe(a, b)),
            }
        }
    }
}

/// The first difference between two members' transactions at the same tid.
fn difference((a_name, a): (&str, &Read), (b_name, b): (&str, &Read)) -> Option<String> {
    if let Some(reason) = txn_difference((a_name, &a.txn), (b_name, &b.txn)) {
        return Some(reason);
    }
    if let Some(reason) = record_difference(&a.records, &b.records) {
        return Some(format!(
            "transaction {} differs between {a_name} and {b_name} ({a_name} as the target, \
             {b_name} as the source): {reason}",
            a.txn.tid
        ));
    }
    // Same records, so the same blob oids in the same order.
    a.blobs.iter().zip(&b.blobs).find(|(x, y)| x != y).map(|(x, y)| {
        format!(
            "transaction {}: the blob file of oid {} is {} on {a_name} and {} on {b_name}",
            a.txn.tid, x.oid, x.described, y.described
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use zeo::types::P64;
    use zeo::Value;

    fn read(tid: u64, records: &[(u64, &'static [u8])]) -> Read {
        Read {
            txn: TxnRecord {
                tid: P64::from_u64(tid),
                status: " ".into(),
                user: Value::bytes(&b""[..]),
                description: Value::bytes(&b""[..]),
                extension: Value::Dict(vec![]),
            },
            records: records
                .iter()
                .map(|&(oid, data)| DataRecord {
                    oid: P64::from_u64(oid),
                    tid: P64::from_u64(tid),
                    data: Some(Bytes::from_static(data)),
                    data_txn: None,
                })
                .collect(),
            blobs: Vec::new(),
        }
    }

    fn names(n: usize) -> Vec<Arc<str>> {
        (1..=n).map(|i| Arc::from(format!("zeo{i}").as_str())).collect()
    }

    #[test]
    fn identical_members_agree_and_histories_end() {
        let a = read(5, &[(1, b"x")]);
        let b = read(5, &[(1, b"x")]);
        assert_eq!(
            judge(&names(2), &[Some(&a), Some(&b)]),
            Verdict::Same {
                tid: P64::from_u64(5)
            }
        );
        assert_eq!(judge(&names(2), &[None, None]), Verdict::End);
    }

    #[test]
    fn the_member_with_other_data_is_outvoted() {
        let a = read(5, &[(1, b"x")]);
        let c = read(5, &[(1, b"y")]);
        let Verdict::Majority { tid, differing } = judge(&names(3), &[Some(&a), Some(&c), Some(&a)]) else {
            panic!("a majority");
        };
        assert_eq!(tid, P64::from_u64(5));
        assert_eq!(differing.len(), 1);
        assert_eq!(differing[0].0, 1);
        assert!(
            differing[0].1.contains("oid 0x0000000000000001"),
            "{}",
            differing[0].1
        );
        assert!(
            differing[0].1.contains("between zeo2 and zeo1"),
            "{}",
            differing[0].1
        );
    }

    #[test]
    fn an_extra_transaction_on_one_member_is_outvoted() {
        let extra = read(4, &[(1, b"x")]);
        let next = read(5, &[(2, b"y")]);
        let Verdict::Majority { tid, differing } =
            judge(&names(3), &[Some(&next), Some(&next), Some(&extra)])
        else {
            panic!("a majority");
        };
        assert_eq!(tid, P64::from_u64(4));
        assert_eq!(
            differing,
            vec![(
                2,
                format!("zeo3 has transaction {} that zeo1 lacks", P64::from_u64(4))
            )]
        );
        // A member whose history ended early lacks the rest.
        let Verdict::Majority { differing, .. } = judge(&names(3), &[Some(&next), None, Some(&next)]) else {
            panic!("a majority");
        };
        assert_eq!(differing[0].0, 1);
        assert!(
            differing[0].1.starts_with("zeo2 lacks transaction"),
            "{}",
            differing[0].1
        );
    }

    #[test]
    fn a_damaged_blob_file_is_outvoted() {
        let blob = |described: &str| BlobFile {
            oid: P64::from_u64(1),
            described: described.into(),
            size: 3,
        };
        let mut a = read(5, &[(1, b"x")]);
        a.blobs.push(blob("3 bytes, sha256 aa"));
        let mut damaged = a.clone();
        damaged.blobs[0] = blob("3 bytes, sha256 bb");
        assert_eq!(a.bytes(), 4);
        let Verdict::Majority { differing, .. } = judge(&names(3), &[Some(&a), Some(&a), Some(&damaged)])
        else {
            panic!("a majority");
        };
        assert_eq!(differing[0].0, 2);
        assert!(
            differing[0].1.ends_with(
                "the blob file of oid 0x0000000000000001 is 3 bytes, sha256 bb on zeo3 and 3 bytes, \
                 sha256 aa on zeo1"
            ),
            "{}",
            differing[0].1
        );
    }

    #[test]
    fn two_members_that_differ_have_no_majority() {
        let a = read(5, &[(1, b"x")]);
        let b = read(5, &[(1, b"y")]);
        let Verdict::NoMajority { tid, reason } = judge(&names(2), &[Some(&a), Some(&b)]) else {
            panic!("no majority");
        };
        assert_eq!(tid, P64::from_u64(5));
        assert!(reason.starts_with("zeo1 and zeo2 differ at tid"), "{reason}");
        assert!(reason.contains("oid 0x0000000000000001"), "{reason}");
        let c = read(5, &[(1, b"z")]);
        assert!(matches!(
            judge(&names(3), &[Some(&a), Some(&b), Some(&c)]),
            Verdict::NoMajority { .. }
        ));
    }
}
