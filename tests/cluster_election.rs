//! The cluster's etcd layer against a real etcd: the election actor and
//! the array state's etcd store (`zeoraid_actors::cluster`).

mod common;

use common::etcd::Etcd;
use std::time::Duration;

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
