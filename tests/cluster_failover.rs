//! Several zeoraids with one configuration, elected on a real etcd, in
//! front of real members, with a real ZEO client given every zeoraid
//! address (`common::writer`): one leader serves, the others wait without
//! listening; when the leader dies, freezes or loses etcd, another takes
//! over and nothing the client was told is committed is lost.
//!
//! The oracle is the client's own record of acknowledged commits: at the
//! end every member holds each of them, and the members are identical.

mod common;

use common::cluster::{accepts_tcp, Cluster, ClusterOptions, LEASE_TTL};
use common::http::get;
use common::writer::{monotonic_now, Writer};
use std::thread;
use std::time::{Duration, Instant};

/// Bound for the first election and takeover of a fresh cluster.
const FIRST_LEADER: Duration = Duration::from_secs(20);

/// Bound for the client to get commits acknowledged again.
const WRITES: Duration = Duration::from_secs(20);

/// Bound for a degraded member to be recovered (automatic recovery) and
/// for a restarted zeoraid to settle.
const SETTLE: Duration = Duration::from_secs(30);

/// A takeover after a death needs the lease to expire (its TTL) and the
/// campaign, the state load and the fence on every member: a few seconds.
fn takeover_bound() -> Duration {
    LEASE_TTL + Duration::from_secs(6)
}

/// Three zeoraids, two members.
fn cluster() -> Cluster {
    Cluster::start(ClusterOptions::new(3, 2))
}

/// Stops the load, waits until the leader's array is optimal again (a
/// member degraded by the failover is recovered automatically) and checks
/// the oracle.
fn assert_nothing_lost(cluster: &Cluster, leader: usize, writer: Writer) {
    let acks = writer.stop();
    assert!(!acks.is_empty(), "nothing was acknowledged");
    cluster.wait_details(leader, "optimal", SETTLE, |d| d["status"] == "optimal");
    cluster.assert_acknowledged_everywhere(&acks);
    cluster.assert_members_identical();
}

#[test]
fn exactly_one_leader_serves_and_a_client_given_every_address_commits_through_it() {
    let mut cluster = cluster();
    let leader = cluster.wait_leader(FIRST_LEADER);
    let leading = cluster.zeoraid(leader).status().expect("the leader answers");
    assert_eq!(leading["role"], "leader", "{leading}");
    assert_eq!(
        leading["leader"],
        cluster.zeoraid(leader).name.as_str(),
        "{leading}"
    );
    let epoch = leading["epoch"].as_i64().expect("an epoch");
    assert_eq!(get(cluster.zeoraid(leader).http, "/readyz").code, 200);

    for (i, zeoraid) in cluster
        .zeoraids()
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != leader)
    {
        let status = cluster.wait_role(i, "standby", SETTLE);
        assert_eq!(
            status["leader"],
            cluster.zeoraid(leader).name.as_str(),
            "{status}"
        );
        assert_eq!(status["epoch"].as_i64(), Some(epoch), "{status}");
        assert_eq!(get(zeoraid.http, "/readyz").code, 503, "a standby is not ready");
        assert!(
            !accepts_tcp(zeoraid.listen),
            "standby {} listens on its client address",
            zeoraid.name
        );
    }

    let writer = Writer::start(&cluster.client_addrs());
    writer.wait_acks(20, WRITES);
    assert_nothing_lost(&cluster, leader, writer);
}

#[test]
fn the_leader_killed_under_load_is_replaced_nothing_is_lost_and_it_returns_as_a_standby() {
    let mut cluster = cluster();
    let old = cluster.wait_leader(FIRST_LEADER);
    let writer = Writer::start(&cluster.client_addrs());
    writer.wait_acks(10, WRITES);

    let killed = Instant::now();
    cluster.kill9(old);
    let new = cluster.wait_leader(takeover_bound());
    assert_ne!(new, old);
    let took = killed.elapsed();
    writer.wait_more_acks(10, WRITES);

    cluster.restart(old);
    let status = cluster.wait_role(old, "standby", SETTLE);
    assert_eq!(status["leader"], cluster.zeoraid(new).name.as_str(), "{status}");
    assert!(
        !accepts_tcp(cluster.zeoraid(old).listen),
        "the restarted one listens"
    );
    assert_eq!(cluster.wait_leader(SETTLE), new, "the restart changed nothing");
    assert_nothing_lost(&cluster, new, writer);
    eprintln!("a new leader served {took:?} after the kill");
}

#[test]
fn with_etcd_frozen_no_commit_is_acknowledged_past_the_lease_and_writes_resume_when_it_returns() {
    let mut cluster = cluster();
    let old = cluster.wait_leader(FIRST_LEADER);
    let writer = Writer::start(&cluster.client_addrs());
    writer.wait_acks(10, WRITES);

    let since = cluster.zeoraid(old).log().mark();
    let frozen_at = monotonic_now();
    cluster.etcd().sigstop();
    let stepped_down = cluster
        .zeoraid(old)
        .log()
        .try_wait(since, takeover_bound(), |l| l["msg"] == "stepping down");
    assert!(
        stepped_down.is_some(),
        "the leader did not step down\n{}",
        cluster.context()
    );
    while monotonic_now() < frozen_at + 3.0 * LEASE_TTL.as_secs_f64() {
        thread::sleep(Duration::from_millis(100));
    }
    for (i, zeoraid) in cluster.zeoraids().iter().enumerate() {
        let role = zeoraid.role();
        assert_ne!(role.as_deref(), Some("leader"), "zr{} leads without etcd", i + 1);
        assert!(
            !accepts_tcp(zeoraid.listen),
            "{} serves clients without etcd",
            zeoraid.name
        );
    }
    let resumed_at = monotonic_now();
    cluster.etcd().sigcont();

    let new = cluster.wait_leader(takeover_bound() + Duration::from_secs(5));
    writer.wait_more_acks(10, WRITES);
    let deadline = frozen_at + LEASE_TTL.as_secs_f64();
    let late: Vec<_> = writer
        .acks()
        .into_iter()
        .filter(|a| a.at > deadline && a.at < resumed_at)
        .collect();
    assert!(
        late.is_empty(),
        "{} commit(s) acknowledged after the lease could not be proven any more (etcd frozen at {frozen_at:.3}, \
         lease at most until {deadline:.3}): {late:?}",
        late.len()
    );
    assert_nothing_lost(&cluster, new, writer);
}
