//! The cluster's etcd layer against a real etcd: the election actor and
//! the array state's etcd store (`zeoraid_actors::cluster`).

mod common;

use actix::prelude::*;
use common::etcd::Etcd;
use std::time::Duration;
use tokio::sync::watch;
use zeoraid_actors::cluster::election::Election;
use zeoraid_actors::cluster::{
    Advertised, ClusterSettings, ClusterView, EtcdStore, Leadership, Resign, Role, WaitLeadership, WatchView,
};
use zeoraid_actors::state::{ArrayRecord, StateError, StateStore};

/// One `/health`-style probe of etcd's client URL, bounded.
fn answers(url: &str) -> bool {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_millis(500)))
        .proxy(None)
        .build()
        .into();
    agent.get(&format!("{url}/health")).call().is_ok()
}

#[test]
fn the_etcd_harness_stops_freezes_and_returns_on_the_same_data() {
    let mut etcd = Etcd::start();
    let url = etcd.url();
    assert!(answers(&url), "{}", etcd.context());
    etcd.sigstop();
    assert!(!answers(&url), "a frozen etcd does not answer");
    etcd.sigcont();
    assert!(answers(&url), "{}", etcd.context());
    etcd.stop();
    assert!(!answers(&url), "a stopped etcd does not answer");
    etcd.start_again();
    assert_eq!(etcd.url(), url, "the same client URL");
    assert!(answers(&url), "{}", etcd.context());
    etcd.kill9();
    etcd.start_again();
    assert!(answers(&url), "{}", etcd.context());
}

/// The lease TTL of these tests: etcd's shortest (it refuses shorter ones
/// with its default heartbeat and election timeout).
const LEASE_TTL: Duration = Duration::from_secs(2);

/// Bound for a first election on a fresh etcd.
const ELECTED_WITHIN: Duration = Duration::from_secs(20);

fn settings(etcd: &Etcd, name: &str) -> ClusterSettings {
    ClusterSettings {
        endpoints: vec![etcd.url()],
        name: name.into(),
        lease_ttl: LEASE_TTL,
        prefix: "/zeoraid-test".into(),
        advertised: Advertised {
            name: name.into(),
            listen: format!("127.0.0.1:1{name}"),
            http: format!("127.0.0.1:2{name}"),
        },
    }
}

/// An election actor and its views.
async fn candidate(etcd: &Etcd, name: &str) -> (Addr<Election>, watch::Receiver<ClusterView>) {
    let log = slog::Logger::root(slog::Discard, slog::o!());
    let election = Election::new(settings(etcd, name), log).start();
    let view = election
        .send(WatchView)
        .await
        .expect("the election actor answers");
    (election, view)
}

/// The first view that satisfies `wanted`, within `limit`.
async fn view_where(
    view: &mut watch::Receiver<ClusterView>,
    limit: Duration,
    wanted: impl FnMut(&ClusterView) -> bool,
) -> ClusterView {
    let found = tokio::time::timeout(limit, async {
        view.wait_for(wanted).await.map(|found| found.clone())
    })
    .await;
    match found {
        Ok(Ok(found)) => found,
        Ok(Err(_)) => panic!("the election actor is gone; last view {:?}", view.borrow()),
        Err(_) => panic!("no such view within {limit:?}; last view {:?}", view.borrow()),
    }
}

/// Two zeoraids on one etcd: (the leader, the standby), each with its view,
/// once the standby's view names the leader.
async fn elect_one_of_two(etcd: &Etcd) -> [(Addr<Election>, watch::Receiver<ClusterView>); 2] {
    let mut zr1 = candidate(etcd, "zr1").await;
    let mut zr2 = candidate(etcd, "zr2").await;
    let first = tokio::select! {
        v = view_where(&mut zr1.1, ELECTED_WITHIN, |v| v.role == Role::Leader) => v,
        v = view_where(&mut zr2.1, ELECTED_WITHIN, |v| v.role == Role::Leader) => v,
    };
    let (mut leader, mut standby) = if first.name == "zr1" {
        (zr1, zr2)
    } else {
        (zr2, zr1)
    };
    let named = view_where(&mut standby.1, ELECTED_WITHIN, |v| v.role == Role::Standby).await;
    assert_eq!(
        named.leader.as_ref().map(|l| l.name.as_str()),
        Some(first.name.as_str())
    );
    assert_eq!(named.epoch, first.epoch, "{named:?} {first:?}");
    assert_eq!(
        leader.1.borrow_and_update().role,
        Role::Leader,
        "exactly one leads"
    );
    [leader, standby]
}

async fn leadership(election: &Addr<Election>) -> Leadership {
    election
        .send(WaitLeadership)
        .await
        .expect("the election actor answers")
        .expect("elected")
}

fn record(generation: u64) -> ArrayRecord {
    ArrayRecord {
        generation,
        ..ArrayRecord::first_start(["zeo1", "zeo2"])
    }
}

/// Run a (blocking) state store call off the actors' thread.
async fn blocking<T: Send + 'static>(call: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(call)
        .await
        .expect("the call did not panic")
}

#[actix_rt::test]
async fn of_two_zeoraids_exactly_one_leads_and_the_other_names_it() {
    let etcd = Etcd::start();
    let [(leader, view), _standby] = elect_one_of_two(&etcd).await;
    let won = leadership(&leader).await;
    assert_eq!(Some(won.epoch), view.borrow().epoch);
    assert!(won.lease.proven(), "a leader's lease is proven");
}

#[actix_rt::test]
async fn a_resigning_leader_hands_over_and_its_stale_epoch_writes_nothing() {
    let etcd = Etcd::start();
    let [(old, mut old_view), (new, mut new_view)] = elect_one_of_two(&etcd).await;
    let stale = leadership(&old).await;
    old.send(Resign).await.expect("the election actor answers");
    let deposed = view_where(&mut old_view, LEASE_TTL, |v| v.role == Role::Deposed).await;
    assert!(!stale.lease.proven(), "{deposed:?}");
    // Revoked: no wait for the TTL, only for the campaign to notice.
    let elected = view_where(&mut new_view, LEASE_TTL, |v| v.role == Role::Leader).await;
    let current = leadership(&new).await;
    assert!(
        current.epoch > stale.epoch,
        "{elected:?} after epoch {}",
        stale.epoch
    );

    let (settings, refused) = (settings(&etcd, "zr"), stale.clone());
    let written = blocking(move || {
        let mut store = EtcdStore::open(&settings, &current).expect("open");
        store.save(&record(1)).expect("the leader writes");
        let mut stale_store = EtcdStore::open(&settings, &refused).expect("open");
        let error = stale_store
            .save(&record(2))
            .expect_err("a deposed leader cannot write");
        assert!(matches!(error, StateError::Deposed { .. }), "{error}");
        assert!(error.to_string().contains("no longer the leader"), "{error}");
        store.load().expect("load")
    })
    .await;
    assert_eq!(
        written,
        Some(record(1)),
        "the deposed leader's write left no trace"
    );
}

#[actix_rt::test]
async fn a_frozen_etcd_deposes_the_leader_within_the_lease_ttl() {
    let etcd = Etcd::start();
    let [(leader, mut view), _standby] = elect_one_of_two(&etcd).await;
    let lease = leadership(&leader).await.lease;
    etcd.sigstop();
    let frozen = std::time::Instant::now();
    let until = lease.valid_until().expect("proven while etcd answered");
    assert!(
        until < frozen + LEASE_TTL,
        "never proven past the TTL from the last answer"
    );
    let deposed = view_where(&mut view, LEASE_TTL, |v| v.role == Role::Deposed).await;
    assert!(!lease.proven(), "{deposed:?}");
    assert!(
        deposed
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("no longer proven"),
        "{deposed:?}"
    );
    etcd.sigcont();
}

#[actix_rt::test]
async fn the_etcd_store_saves_and_loads_an_array_record() {
    let etcd = Etcd::start();
    let (election, _view) = candidate(&etcd, "zr1").await;
    let won = tokio::time::timeout(ELECTED_WITHIN, leadership(&election))
        .await
        .expect("elected alone");
    let settings = settings(&etcd, "zr1");
    let (first, loaded) = blocking(move || {
        let mut store = EtcdStore::open(&settings, &won).expect("open");
        let first = store.load().expect("load");
        store.save(&record(7)).expect("save");
        (
            first,
            EtcdStore::open(&settings, &won)
                .expect("open")
                .load()
                .expect("load"),
        )
    })
    .await;
    assert_eq!(first, None, "a fresh etcd holds no array state");
    assert_eq!(loaded, Some(record(7)));
}
