//! The members' fence against a leader that does not know it was deposed.
//!
//! A leader whose clock stopped with its virtual machine still believes
//! its lease valid when it runs again. zeoraid cannot be made to believe
//! that on demand, so the old leader here runs with the test-only
//! `ZEORAID_TEST_TRUST_EXPIRED_LEASE=1` (it trusts its lease for ever and
//! does not step down when it lapses): only the members' fence (every
//! commit checks the root object's serial, which the new leader's takeover
//! moved) stands between it and the members. Real etcd, real members.

mod common;

use common::cluster::{Cluster, ClusterOptions, LEASE_TTL};
use common::records::mapping_record;
use std::time::Duration;
use zeo::exceptions::ZeoError;
use zeo::methods::{Request, Vote};
use zeo::types::Tid;

/// Bound for an election and takeover.
const LEADER: Duration = Duration::from_secs(20);

/// Bound for the deposed leader to step down and come back as a standby.
const SETTLE: Duration = Duration::from_secs(30);

/// zr1 trusts its lease for ever and is frozen past it; zr2 takes over;
/// zr1, resumed, still believes it leads and a client of it votes: every
/// member refuses the vote (`ReadConflictError` on the root), the client
/// gets that conflict, nothing lands, and zr1 steps down and returns as a
/// standby.
#[test]
fn a_leader_deposed_without_knowing_it_is_refused_by_every_member_then_steps_down() {
    let options = ClusterOptions::new(2, 2).env(0, "ZEORAID_TEST_TRUST_EXPIRED_LEASE", "1");
    let mut cluster = Cluster::start(options);
    // zr1 starts first, but which one wins is etcd's choice: the test
    // needs zr1 (the one that trusts its lease) to lead.
    let old = cluster.wait_leader(LEADER);
    if old != 0 {
        cluster.kill9(old);
        cluster.restart(old);
        assert_eq!(
            cluster.wait_leader(LEADER + LEASE_TTL),
            0,
            "zr1 leads once zr2 is gone"
        );
    }
    let old = 0;
    let mut deposed = cluster.client(old);
    let before = deposed.new_oid();
    deposed.commit(&[(before, Tid::ZERO, &mapping_record(16, 0x11))]);

    cluster.sigstop(old);
    // zr2 is elected only once zr1's lease expired in etcd (wait_leader
    // skips the frozen zr1).
    let new = cluster.wait_leader(LEADER);
    assert_eq!(new, 1, "zr2 took over");
    cluster.sigcont(old);

    let oid = deposed.new_oid();
    let marked = mapping_record(64, 0xEE);
    let txn = deposed.begin();
    deposed.store(&txn, oid, Tid::ZERO, &marked);
    let voted = deposed.try_call(Request::Vote(Vote { id: txn }));
    match &voted {
        Ok(Err(ZeoError::ReadConflictError(conflict))) => {
            assert_eq!(conflict.oid, Some(zeo::types::Oid::ZERO), "{conflict:?}")
        }
        other => panic!(
            "the deposed leader's vote was not refused by the fence: {other:?}\n{}",
            cluster.context()
        ),
    }
    for m in 0..cluster.members().len() {
        let revision = cluster.member_client(m).load(oid);
        assert!(
            !matches!(&revision, Ok(Some(r)) if r.data[..] == marked[..]),
            "the deposed leader's transaction is on zeo{}",
            m + 1
        );
    }
    let stepped = cluster.wait_role(old, "standby", SETTLE);
    assert_eq!(stepped["leader"], "zr2", "{stepped}");
    assert_eq!(cluster.wait_leader(SETTLE), new);
    cluster.assert_members_identical();
}
