//! Several zeoraids with one configuration, elected on a real etcd, in
//! front of real members, with a real ZEO client given every zeoraid
//! address (`common::writer`): one leader serves, the others wait without
//! listening; when the leader dies, freezes or loses etcd, another takes
//! over and nothing the client was told is committed is lost.
//!
//! The oracle is the client's own record of acknowledged commits: at the
//! end every member holds each of them, and the members are identical.

mod common;

use common::cluster::{accepts_tcp, Cluster, ClusterOptions, RoleSampler, LEASE_TTL};
use common::http::get;
use common::records::mapping_record;
use common::writer::{monotonic_now, Writer};
use std::thread;
use std::time::{Duration, Instant};
use zeo::methods::{Request, TpcFinish, Vote};
use zeo::reply::Reply;
use zeo::types::Tid;

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

/// The leader frozen past its lease, under load, while a client of it has
/// a transaction stored but not voted: another is elected while it is
/// frozen; resumed, the frozen one finds itself deposed, steps down and
/// comes back as a standby; its transaction is on no member; no `/status`
/// ever shows two leaders; nothing acknowledged is lost.
///
/// The new leader may serve only after the frozen one resumed: if it froze
/// between a vote and its finish it holds the members' storage locks, and
/// ZEO 6.2 releases them only when its connections close (its own
/// `transaction-timeout` never does, ARCHITECTURE.md §9).
#[test]
fn a_frozen_leader_is_replaced_and_once_resumed_is_a_standby_whose_transaction_lands_nowhere() {
    let mut cluster = cluster();
    let old = cluster.wait_leader(FIRST_LEADER);
    let sampler = RoleSampler::start(&cluster);
    let writer = Writer::start(&cluster.client_addrs());
    writer.wait_acks(10, WRITES);

    // A transaction of the old leader's term, waiting for its vote.
    let mut stale = cluster.client(old);
    let oid = stale.new_oid();
    let marked = mapping_record(64, 0xEE);
    let txn = stale.begin();
    stale.store(&txn, oid, Tid::ZERO, &marked);

    let frozen = Instant::now();
    cluster.sigstop(old);
    let voting = thread::spawn(move || {
        let voted = stale.try_call(Request::Vote(Vote { id: txn.clone() }));
        let finished = match voted {
            Ok(Ok(Reply::Vote(_))) => Some(stale.try_call(Request::TpcFinish(TpcFinish { id: txn }))),
            _ => None,
        };
        (format!("{voted:?}"), finished.map(|f| format!("{f:?}")))
    });

    // Elected while the old one is frozen (serving may wait for it).
    let elected = Instant::now() + takeover_bound();
    let new = loop {
        let leading = (0..cluster.zeoraids().len())
            .filter(|&i| i != old)
            .find(|&i| cluster.zeoraid(i).status().is_some_and(|s| s["role"] == "leader"));
        if let Some(new) = leading {
            break new;
        }
        assert!(
            Instant::now() < elected,
            "no standby elected\n{}",
            cluster.context()
        );
        thread::sleep(Duration::from_millis(100));
    };
    // Frozen for several lease periods. (The client stays connected to the
    // frozen leader meanwhile: ZEO has no keepalive.)
    while frozen.elapsed() < LEASE_TTL * 4 {
        thread::sleep(Duration::from_millis(100));
    }
    let since = cluster.zeoraid(old).log().mark();
    cluster.sigcont(old);
    assert!(
        cluster
            .zeoraid(old)
            .log()
            .try_wait(since, SETTLE, |l| l["msg"] == "stepping down")
            .is_some(),
        "the resumed leader logged no \"stepping down\"\n{}",
        cluster.context()
    );
    assert_eq!(cluster.wait_leader(SETTLE), new, "the elected one serves");
    let status = cluster.wait_role(old, "standby", SETTLE);
    assert_eq!(status["leader"], cluster.zeoraid(new).name.as_str(), "{status}");
    writer.wait_more_acks(10, WRITES);

    let (voted, finished) = voting.join().expect("the stale client's thread");
    assert!(
        finished
            .as_deref()
            .is_none_or(|f| !f.starts_with("Ok(Ok(TpcFinish")),
        "a transaction of the deposed leader was committed: vote {voted}, finish {finished:?}"
    );
    for m in 0..cluster.members().len() {
        let revision = cluster.member_client(m).load(oid);
        let landed = matches!(&revision, Ok(Some(r)) if r.data[..] == marked[..]);
        assert!(!landed, "the deposed leader's transaction is on zeo{}", m + 1);
    }

    assert_nothing_lost(&cluster, new, writer);
    let rounds = sampler.assert_never_two_leaders();
    assert!(rounds.len() > 10, "only {} rounds of /status", rounds.len());
}

/// etcd frozen for several lease periods: the leader acknowledges nothing
/// once its lease can no longer be proven (at most a TTL after the last
/// keepalive that etcd answered, so at most a TTL after the freeze), steps
/// down, nobody leads while etcd is gone, and commits resume once it is
/// back.
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
