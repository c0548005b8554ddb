//! The disaster override with real members: `force-optimal` is refused
//! while a member holds every acknowledged transaction; when the one that
//! does is gone for good, it first names what may be lost and changes
//! nothing, then, confirmed, makes the array go on from the member that is
//! left, records it in the array state and the log, and a restart keeps it
//! so; the member that held more is never served again.

mod common;

use common::array::Array;
use common::http::request;
use common::records::ROOT_RECORD;
use serde_json::Value as Json;
use std::process::Command;
use std::time::Duration;
use zeo::types::Tid;

/// Bound for a restarted member to reconnect (its restart policy backs off).
const REJOIN: Duration = Duration::from_secs(30);

fn state(array: &Array) -> Json {
    let path = array.dir().join("state").join("array.json");
    let text = std::fs::read_to_string(path).expect("the state file");
    serde_json::from_str(&text).expect("the state file is JSON")
}

fn force(array: &Array, member: &str, query: &str) -> common::http::Answer {
    let path = format!("/members/{member}/force-optimal{query}");
    request(array.http_addr(), "POST", &path, None)
}

/// `zeoraid ctl --url URL force-optimal ARGS`: exit code, stdout, stderr.
fn ctl_force(array: &Array, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_zeoraid"))
        .args(["ctl", "--timeout", "20", "--url"])
        .arg(format!("http://{}", array.http_addr()))
        .arg("force-optimal")
        .args(args)
        .env_remove("ZEORAID_URL")
        .env_remove("ZEORAID_TOKEN")
        .output()
        .expect("run zeoraid ctl");
    (
        output.status.code().expect("ctl exited"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn force_optimal_is_refused_while_a_member_holds_everything() {
    let array = Array::start(2);
    let before = state(&array);
    for confirm in ["", "?confirm=true"] {
        let answer = force(&array, "zeo2", confirm);
        assert_eq!(answer.code, 409, "{}", answer.body);
        let error = answer.error();
        assert!(
            error.contains("zeo1, zeo2 are optimal and hold every acknowledged transaction"),
            "{error}"
        );
    }
    assert_eq!(force(&array, "zeo9", "").code, 404);
    let misspelt = force(&array, "zeo2", "?confrim=true");
    assert_eq!(misspelt.code, 400, "{}", misspelt.body);
    assert_eq!(state(&array), before, "nothing was written");
    assert_eq!(array.raid_status()["status"], "optimal");
}

/// zeo2 misses t2 and t3 while it is down; zeoraid and zeo1 stop, and
/// zeo1 is "gone for good": zeoraid restarted with zeo2 only waits for
/// zeo1 until an operator forces zeo2.
#[test]
fn forcing_the_member_left_names_what_may_be_lost_then_serves_its_history() {
    let mut array = Array::start(2);
    let mut client = array.client();
    let oid = client.new_oid();
    let t1 = client.commit(&[(oid, Tid::ZERO, ROOT_RECORD)]);
    array.members_mut()[1].kill9();
    let t2 = client.commit(&[(oid, t1, ROOT_RECORD)]);
    // Not written to the state: zeo2 had already missed a transaction.
    let t3 = client.commit(&[(oid, t2, ROOT_RECORD)]);
    drop(client);
    array.kill_zeoraid();
    array.members_mut()[0].kill9();
    array.members_mut()[1].restart();
    array.restart_zeoraid();
    let status = array.raid_status();
    assert_eq!(status["status"], "failed", "{status}\n{}", array.context());
    assert!(
        status["reason"].as_str().unwrap().contains("waiting for zeo1"),
        "{status}"
    );
    let before = state(&array);

    // Unconfirmed: what may be lost, and nothing changes.
    let answer = force(&array, "zeo2", "");
    assert_eq!(answer.code, 409, "{}", answer.body);
    let lost = answer.error();
    for part in [
        format!("go on from zeo2's last tid {t1}"),
        "only zeo1 (not connected) holds every acknowledged transaction".to_string(),
        format!("after tid {t1} up to tid {t2} at least"),
        "possibly later ones acknowledged after the array state was last written".to_string(),
        "zeo1 would be marked diverged".to_string(),
        "Nothing was changed".to_string(),
        "?confirm=true".to_string(),
    ] {
        assert!(lost.contains(&part), "{part:?} not in {lost}");
    }
    let (code, stdout, stderr) = ctl_force(&array, &["zeo2"]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("after tid {t1} up to tid {t2} at least")),
        "{stderr}"
    );
    assert!(stderr.contains("--yes"), "{stderr}");
    assert_eq!(state(&array), before, "nothing was written");
    assert_eq!(array.raid_status()["status"], "failed");

    // Confirmed.
    let mark = array.log_mark();
    let (code, stdout, stderr) = ctl_force(&array, &["zeo2", "--yes"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("zeo2 forced optimal"), "{stdout}");
    let logged = array.wait_for_log(mark, Duration::from_secs(5), "forced", |l| {
        l["msg"] == "member forced optimal by operator"
    });
    assert_eq!(logged["level"], "ERRO", "{logged}");
    assert_eq!(logged["lost_after_tid"], t1.to_hex(), "{logged}");
    let status = array.raid_status();
    assert_eq!(status["status"], "degraded", "{status}");
    assert_eq!(status["last_tid"], t1.to_hex(), "{status}");
    assert_eq!(status["members"][1]["state"], "optimal", "{status}");
    let zeo1 = &status["members"][0];
    assert_eq!(zeo1["kind"], "diverged", "{status}");
    assert!(
        zeo1["reason"]
            .as_str()
            .unwrap()
            .contains("zeo2 was forced optimal"),
        "{status}"
    );
    let recorded = state(&array);
    let forced = &recorded["forced"][0];
    assert_eq!(forced["member"], "zeo2", "{recorded}");
    assert_eq!(forced["lost_after_tid"], t1.to_hex(), "{recorded}");
    assert_eq!(forced["lost_up_to_at_least_tid"], t2.to_hex(), "{recorded}");
    assert_eq!(forced["held_only_by"], serde_json::json!(["zeo1"]), "{recorded}");
    assert_eq!(forced["diverged"], serde_json::json!(["zeo1"]), "{recorded}");
    assert_eq!(recorded["members"]["zeo1"]["degraded"]["kind"], "diverged");
    assert!(
        recorded["members"]["zeo2"].get("degraded").is_none(),
        "{recorded}"
    );

    // The array serves zeo2's history and goes on from it.
    let mut client = array.client();
    assert_eq!(client.last_transaction(), t1);
    assert_eq!(client.load(oid).expect("load").expect("a revision").start, t1);
    let t4 = client.commit(&[(oid, t1, ROOT_RECORD)]);
    drop(client);

    // A restart keeps it so, and zeo1 coming back (holding t2, t3) is
    // never served.
    array.restart_zeoraid();
    let status = array.raid_status();
    assert_eq!(status["status"], "degraded", "{status}\n{}", array.context());
    assert_eq!(status["members"][1]["state"], "optimal", "{status}");
    assert_eq!(status["last_tid"], t4.to_hex(), "{status}");
    assert_eq!(state(&array)["forced"].as_array().map(Vec::len), Some(1));
    array.members_mut()[0].restart();
    let status = array.wait_status("zeo1 connected", REJOIN, |s| s["members"][0]["connected"] == true);
    assert_eq!(status["members"][0]["kind"], "diverged", "{status}");
    assert_eq!(status["members"][0]["last_tid"], t3.to_hex(), "{status}");
    let mut client = array.client();
    assert_eq!(client.last_transaction(), t4);
    assert_eq!(client.load(oid).expect("load").expect("a revision").start, t4);
}
