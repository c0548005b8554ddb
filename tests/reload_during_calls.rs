//! A reload while calls wait on a member, and what a panic does, against
//! real `runzeo` members.
//!
//! The controller carries members across an await by a stable id: a
//! reload that removes the member a `new_oids` call waits on (its server
//! SIGSTOPped) used to panic the controller with an index out of bounds,
//! and zeoraid went on accepting connections while serving nothing. Now
//! the removed member's late answer is dropped and the others' answer
//! counts. And whatever panics, the process ends with status 70 rather
//! than living on without the actor that died.

mod common;

use common::array::{without_member, Array, ArrayOptions};
use common::faults::wait_until;
use common::http::{get, request};
use serde_json::Value as Json;
use std::fs;
use std::time::Duration;
use zeo::message::Message;
use zeo::methods::{NewOids, Request};
use zeo::reply::Reply;
use zeo::Value;

/// Bound for what the tests wait for.
const WAIT: Duration = Duration::from_secs(15);

/// Calls member `name`'s actor has sent and not yet had answered.
fn in_flight(array: &Array, name: &str) -> u64 {
    let actors = get(array.http_addr(), "/actors").json();
    let members = actors["members"].as_array().cloned().unwrap_or_default();
    members
        .iter()
        .find(|m| m["name"] == name)
        .and_then(|m| m["snapshot"]["in_flight"].as_u64())
        .unwrap_or(0)
}

#[test]
fn a_reload_that_removes_the_member_a_new_oids_waits_on_keeps_the_array_serving() {
    let mut array = Array::start(2);
    let mut client = array.client();
    array.members()[1].sigstop();
    let msgid = client.next_msgid();
    client.send(&Request::NewOids(NewOids { n: Some(3) }).to_message(msgid.clone()));
    assert!(
        wait_until(WAIT, || in_flight(&array, "zeo2") > 0),
        "timed out waiting for new_oids to wait on zeo2\n{}",
        array.context()
    );

    let path = array.config_path().to_path_buf();
    let original = fs::read_to_string(&path).expect("read the config");
    fs::write(&path, without_member(&original, "zeo2")).expect("write the config");
    let answer = request(array.http_addr(), "POST", "/reload", None);
    assert_eq!(answer.code, 200, "{}\n{}", answer.body, array.context());
    assert_eq!(answer.json()["removed"], serde_json::json!(["zeo2"]));
    // zeo2 answers now, too late: its slot is gone.
    array.members()[1].sigcont();

    // The call is answered from zeo1 alone.
    match client.try_read_reply(&msgid) {
        Ok(Ok(value)) => match Reply::decode("new_oids", &value) {
            Ok(Reply::NewOids(oids)) => assert_eq!(oids.len(), 3, "{oids:?}"),
            other => panic!("new_oids: {other:?}"),
        },
        other => panic!("new_oids got no answer: {other:?}\n{}", array.context()),
    }
    array.assert_zeoraid_alive();
    let status = array.raid_status();
    assert_eq!(status["status"], "optimal", "{status}");
    let members: Vec<&Json> = status["members"].as_array().expect("members").iter().collect();
    assert_eq!(members.len(), 1, "{status}");
    assert_eq!(members[0]["name"], "zeo1", "{status}");
    assert_eq!(members[0]["state"], "optimal", "{status}");

    // And it goes on serving: a commit, loaded back.
    let probe = array.commit_probe();
    let mut reader = array.client();
    match reader.load(probe.oid) {
        Ok(Some(r)) => assert_eq!(r.start, probe.tid),
        other => panic!("load after the reload: {other:?}"),
    }
    assert!(array.zeoraid_running());
}

#[test]
fn a_panic_ends_the_daemon_with_status_70_and_a_log_line() {
    let mut options = ArrayOptions::new(1);
    options.env.push(("ZEORAID_TEST_PANICS".into(), "1".into()));
    let mut array = Array::start_with(options);
    let mut client = array.client();
    let msgid = client.next_msgid();
    client.send(&Message::call(msgid, "raid_panic_for_tests", Value::tuple([])));

    let status = array.wait_zeoraid_exit(WAIT);
    assert_eq!(status.code(), Some(70), "{status:?}\n{}", array.context());
    let logged = array
        .find_log(0, |l| l["msg"] == "panic: zeoraid exits")
        .unwrap_or_else(|| panic!("no panic line in the log\n{}", array.context()));
    assert!(
        logged["message"]
            .as_str()
            .unwrap_or_default()
            .contains("raid_panic_for_tests"),
        "{logged}"
    );
}
