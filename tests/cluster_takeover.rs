//! What a new leader starts from: a transaction of the old leader that
//! reached only some members is reconciled at takeover, and the array
//! state (degraded members with their first missed tid, a pack a member
//! missed, an operator's disable) is read back from etcd after every
//! zeoraid restarted. Real etcd, real members, two zeoraids.

mod common;

use common::cluster::{Cluster, ClusterOptions, LEASE_TTL};
use common::faults::wait_until;
use common::records::ROOT_RECORD;
use serde_json::Value as Json;
use std::time::Duration;
use zeo::methods::{Request, TpcFinish};
use zeo::reply::VoteResult;
use zeo::types::Tid;

/// Bound for an election and takeover.
const LEADER: Duration = Duration::from_secs(20);

/// Bound for a member to reconnect or be recovered.
const SETTLE: Duration = Duration::from_secs(30);

/// Two zeoraids and `members` members, recovery only on request (so that
/// a test sees a member degraded before it is recovered).
fn cluster(members: usize, relayed: Vec<usize>) -> Cluster {
    let mut options = ClusterOptions::new(2, members);
    options.relayed = relayed;
    options.tables = "[recovery]\nauto = false\n".to_owned();
    Cluster::start(options)
}

fn member<'a>(details: &'a Json, name: &str) -> &'a Json {
    details["members"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["name"] == name))
        .unwrap_or_else(|| panic!("no member {name} in {details}"))
}

/// One new object committed through zeoraid `leader`; its tid.
fn commit_one(cluster: &Cluster, leader: usize) -> Tid {
    let mut client = cluster.client(leader);
    let oid = client.new_oid();
    client.commit(&[(oid, Tid::ZERO, ROOT_RECORD)])
}

/// `POST /members/NAME/recover` on the leader, then waits until the array
/// is optimal.
fn recover(cluster: &Cluster, leader: usize, name: &str) -> Json {
    let answer = cluster.post(leader, &format!("/members/{name}/recover"));
    assert_eq!(answer.code, 200, "{}\n{}", answer.body, cluster.context());
    cluster.wait_details(leader, "optimal", SETTLE, |d| d["status"] == "optimal")
}

/// The old leader finished a transaction on zeo1; its `tpc_finish` to zeo2
/// is held in the relay when the old leader dies, and the relay then drops
/// it (zeo2 aborts it when the connection closes). The new leader finds
/// zeo2 behind under the members' locks: zeo2 is degraded with that
/// transaction as its first missed one, its first tid is above it, and a
/// recovery makes the members identical.
#[test]
fn a_transaction_that_reached_one_member_only_is_reconciled_at_takeover() {
    let mut cluster = cluster(2, vec![1]);
    let old = cluster.wait_leader(LEADER);
    let before = commit_one(&cluster, old);

    let mut client = cluster.client(old);
    let oid = client.new_oid();
    let txn = client.begin();
    client.store(&txn, oid, Tid::ZERO, ROOT_RECORD);
    assert!(matches!(client.vote(&txn), Ok(VoteResult::Oids(o)) if o.is_empty()));
    cluster.relay(1).stall();
    // tpc_finish sent, its answer not waited for.
    let msgid = client.next_msgid();
    client.send(&Request::TpcFinish(TpcFinish { id: txn }).to_message(msgid));
    let mut zeo1 = cluster.member_client(0);
    assert!(
        wait_until(SETTLE, || zeo1.last_transaction() > before),
        "zeo1 did not finish the transaction\n{}",
        cluster.context()
    );
    let lost_on_zeo2 = zeo1.last_transaction();
    cluster.kill9(old);
    cluster.relay(1).cut();
    cluster.relay(1).resume();

    let new = cluster.wait_leader(LEASE_TTL + LEADER);
    assert_ne!(new, old);
    assert!(
        cluster.member_client(1).last_transaction() < lost_on_zeo2,
        "the relay let the finish through"
    );
    let zeo2_last = cluster.member_client(1).last_transaction();
    let details = cluster.details(new);
    let zeo2 = member(&details, "zeo2");
    assert_eq!(zeo2["state"], "degraded", "{details}");
    // The first missed tid may be recorded as the first tid after zeo2's
    // last one (what a member found behind gets): the recovery copies from
    // there, so it must not be above the transaction zeo2 lacks.
    let first_missed = zeo2["first_missed_tid"].as_str().expect("a first missed tid");
    assert!(
        zeo2_last.to_hex().as_str() < first_missed && first_missed <= lost_on_zeo2.to_hex().as_str(),
        "zeo2 (last {zeo2_last}) lacks {lost_on_zeo2}: {details}"
    );
    assert_eq!(member(&details, "zeo1")["state"], "optimal", "{details}");

    let after = commit_one(&cluster, new);
    assert!(
        after > lost_on_zeo2,
        "the new leader's tid {after} is not above {lost_on_zeo2}"
    );
    recover(&cluster, new, "zeo2");
    cluster.assert_members_identical();
    let mut reader = cluster.client(new);
    let revision = reader.load(oid).expect("a load").expect("the object");
    assert_eq!(revision.start, lost_on_zeo2);
}

/// zeo2 degraded (down, missing a commit and a pack) and zeo3 disabled by
/// the operator; then every zeoraid is restarted at once. The new leader
/// knows all of it from etcd: zeo2 degraded with the same first missed
/// tid (and, recovered, packed as the array was), zeo3 still disabled.
#[test]
fn after_every_zeoraid_restarted_the_array_state_comes_back_from_etcd() {
    let mut cluster = cluster(3, Vec::new());
    let old = cluster.wait_leader(LEADER);
    commit_one(&cluster, old);
    cluster.members_mut()[1].kill9();
    let missed = commit_one(&cluster, old);
    let disabled = cluster.post(old, "/members/zeo3/disable");
    assert_eq!(disabled.code, 200, "{}", disabled.body);
    cluster.client(old).pack_now();
    commit_one(&cluster, old);
    let before = cluster.details(old);
    assert_eq!(
        member(&before, "zeo2")["first_missed_tid"],
        missed.to_hex(),
        "{before}"
    );

    for i in 0..cluster.zeoraids().len() {
        cluster.kill9(i);
    }
    cluster.members_mut()[1].restart();
    for i in 0..cluster.zeoraids().len() {
        cluster.restart(i);
    }
    let new = cluster.wait_leader(LEASE_TTL + LEADER);
    let details = cluster.wait_details(new, "zeo2 connected", SETTLE, |d| {
        member(d, "zeo2")["connected"] == true
    });
    // zeo3 is behind too: only etcd can say that an operator disabled it.
    for field in ["state", "kind", "reason", "first_missed_tid"] {
        assert_eq!(
            member(&details, "zeo3")[field],
            member(&before, "zeo3")[field],
            "zeo3 {field}: before {before}\nafter {details}"
        );
    }
    assert_eq!(member(&details, "zeo3")["kind"], "disabled", "{details}");
    // zeo2, back behind the array, may now be called "behind" from its
    // last tid on: not after the transaction it was recorded to miss.
    let zeo2 = member(&details, "zeo2");
    assert_eq!(zeo2["state"], "degraded", "{details}");
    let first_missed = zeo2["first_missed_tid"].as_str().expect("a first missed tid");
    assert!(
        first_missed <= missed.to_hex().as_str(),
        "before {before}\nafter {details}"
    );

    let since = cluster.zeoraid(new).log().mark();
    let answer = cluster.post(new, "/members/zeo2/recover");
    assert_eq!(answer.code, 200, "{}", answer.body);
    cluster.wait_details(new, "zeo2 optimal", SETTLE, |d| {
        member(d, "zeo2")["state"] == "optimal"
    });
    let packed = cluster
        .zeoraid(new)
        .log()
        .try_wait(since, SETTLE, |l| l["msg"] == "recovery packed the target");
    assert!(
        packed.is_some(),
        "the pack zeo2 missed was not known after the restart\n{}",
        cluster.context()
    );
}

/// A standby re-reads the configuration on SIGHUP (a rejected file is
/// logged and changes nothing) and takes over with it: a standby that
/// waited long must not lead with the settings it started with.
#[test]
fn a_standby_takes_over_with_the_configuration_it_reread_on_sighup() {
    let mut cluster = cluster(2, Vec::new());
    let leader = cluster.wait_leader(LEADER);
    let standby = 1 - leader;
    assert_eq!(cluster.details(leader)["fail_mode"], "close");
    let path = cluster.config_path().to_path_buf();
    let original = std::fs::read_to_string(&path).unwrap();

    // A broken file: rejected, with the reason in the standby's log.
    std::fs::write(&path, format!("{original}\nno_such_key = 1\n")).unwrap();
    let mark = cluster.zeoraid(standby).log().mark();
    cluster.signal(standby, libc::SIGHUP);
    let rejected = cluster
        .zeoraid(standby)
        .log()
        .try_wait(mark, SETTLE, |l| l["msg"] == "reload rejected");
    assert!(rejected.is_some(), "{}", cluster.context());

    // `systemctl reload` on a standby's host (`ctl reload`, the unit's
    // ExecReload) fails for that file too, and succeeds for a good one.
    let url = format!("http://{}", cluster.zeoraid(standby).http);
    let rejected = common::ctl::ctl(&["--url", &url, "reload"], &[]);
    assert_eq!(rejected.code, 2, "{} {}", rejected.stdout, rejected.stderr);
    assert!(rejected.stderr.contains("no_such_key"), "{}", rejected.stderr);
    std::fs::write(&path, &original).unwrap();
    let checked = common::ctl::ctl(&["--url", &url, "reload"], &[]);
    assert_eq!(checked.code, 0, "{} {}", checked.stdout, checked.stderr);
    assert_eq!(
        checked.stdout.trim(),
        "standby: configuration re-read, applies once elected"
    );

    // A good one: read now, applied once elected.
    std::fs::write(&path, format!("fail_mode = \"read-only\"\n{original}")).unwrap();
    let mark = cluster.zeoraid(standby).log().mark();
    cluster.signal(standby, libc::SIGHUP);
    let reread = cluster.zeoraid(standby).log().try_wait(mark, SETTLE, |l| {
        l["msg"] == "standby: configuration re-read, applies once elected"
    });
    assert!(reread.is_some(), "{}", cluster.context());

    cluster.kill9(leader);
    let details = cluster.wait_details(standby, "the standby serving", LEADER + SETTLE, |d| {
        d["role"] == "leader" && d["fail_mode"].is_string()
    });
    assert_eq!(details["fail_mode"], "read-only", "{details}");
}
