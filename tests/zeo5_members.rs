//! ZEO 5 members: an array of a ZEO 6.2 member (`zeo1`) and a ZEO 5.4.1 /
//! ZODB 5.8.1 member (`zeo2`, runzeo from the ZEO 5 environment), both
//! FileStorage with blobs, in front of real ZODB clients.
//!
//! Each test commits through zeoraid with two ZODB databases whose
//! ClientStorages have blob caches of their own (not shared with the
//! servers): objects, a blob written and rewritten, an undo; the second
//! database sees each commit through the invalidation zeoraid forwards and
//! downloads each blob revision. Then the members are compared record for
//! record and blob for blob (`tests/python/conformance/mirror.py`).
//!
//! Recovery runs both ways: the ZEO 5 member recovered from the ZEO 6
//! member and the reverse, first incrementally (the member was down while
//! the array committed), then fully (its storage and blobs wiped); the
//! recovered member then serves alone, the other one killed.

mod common;

use common::array::{Array, ArrayOptions};
use common::runzeo::{protocol_announcement, repo_root, run_python, run_python_ok, RunZeo};
use serde_json::Value as Json;
use std::process::Command;
use std::time::Duration;

/// Bound for a client session, a comparison of the members, a recovery.
const WITHIN: Duration = Duration::from_secs(60);

/// Bound for zeoraid to see a member go or come back.
const STATE_WITHIN: Duration = Duration::from_secs(15);

/// The index of the ZEO 5 member in [`mixed_array`].
const ZEO5: usize = 1;

/// The index of the ZEO 6 member in [`mixed_array`].
const ZEO6: usize = 0;

/// A client session through zeoraid (ZEO 6.2 / ZODB 6.4 client): checks
/// what earlier sessions left (their tags in argv[3], comma-separated),
/// then writes its own objects and blob under its tag, each change seen
/// by a second database through an invalidation.
const SESSION: &str = r#"
import sys, tempfile, time, ZEO, transaction
from ZODB.blob import Blob
from persistent.mapping import PersistentMapping
port, tag = int(sys.argv[1]), sys.argv[2]
earlier = [t for t in sys.argv[3].split(',') if t]

def db():
    return ZEO.DB(('127.0.0.1', port), blob_dir=tempfile.mkdtemp(), shared_blob_dir=False, wait_timeout=30)

def content(t, version):
    return (b'blob %s version %d ' % (t.encode(), version)) * 2000

def blob_of(root, t):
    with root['blob_' + t].open() as f:
        return f.read()

def seen(db, tid):
    # The invalidation of `tid` reached the other database: its storage's
    # last transaction moves only with the callbacks zeoraid forwards.
    deadline = time.monotonic() + 20
    while db.storage.lastTransaction() < tid:
        assert time.monotonic() < deadline, 'no invalidation for %s' % tid.hex()
        time.sleep(0.02)

def commit(note):
    t = transaction.get()
    t.note(note)
    t.commit()
    return a.lastTransaction()

a, b = db(), db()
tm_b = transaction.TransactionManager()
ca, cb = a.open(), b.open(tm_b)
ra, rb = ca.root(), cb.root()
for t in earlier:
    assert rb['m_' + t]['x'] == 2 and 'y' not in rb['m_' + t], (t, dict(rb['m_' + t]))
    assert blob_of(rb, t) == content(t, 2), t
ra['m_' + tag] = PersistentMapping(x=1)
ra['blob_' + tag] = Blob(content(tag, 1))
seen(b, commit(tag + ' created'))
cb.sync()
assert rb['m_' + tag]['x'] == 1 and blob_of(rb, tag) == content(tag, 1)
ra['m_' + tag]['x'] = 2
with ra['blob_' + tag].open('w') as f:
    f.write(content(tag, 2))
seen(b, commit(tag + ' changed'))
cb.sync()
assert rb['m_' + tag]['x'] == 2 and blob_of(rb, tag) == content(tag, 2)
ra['m_' + tag]['y'] = 'undone'
commit(tag + ' to undo')
a.undo(a.undoLog(0, 1)[0]['id'])
seen(b, commit(tag + ' undo'))
cb.sync()
assert 'y' not in rb['m_' + tag]
print(a.lastTransaction().hex())
a.close()
b.close()
"#;

/// Exits 0 if the members at argv[1:] hold identical histories (blob
/// files included), else 1 with the first difference.
const MIRROR: &str = r#"
import sys
sys.path.insert(0, sys.argv[1])
from conformance import mirror
addrs = [('127.0.0.1', int(p)) for p in sys.argv[2:]]
mirror.wait_identical(addrs, timeout=15)
"#;

/// zeo1 runs ZEO 6.2, zeo2 ZEO 5.4.1, both speaking pickle (Z5);
/// automatic recovery as soon as a member is back.
fn mixed_array() -> Array {
    mixed_array_with(ArrayOptions::new(2))
}

/// [`mixed_array`] with more control over the members and zeoraid.
fn mixed_array_with(mut options: ArrayOptions) -> Array {
    options.zeo5_members = vec![ZEO5];
    options.tables = "[recovery]\nstable_for = \"0s\"\n".to_string();
    let array = Array::start_with(options);
    array.wait_all_members_up(STATE_WITHIN);
    assert_eq!(zeo_version(&array.members()[ZEO6]), "6.2");
    assert_eq!(zeo_version(&array.members()[ZEO5]), "5.4.1");
    array
}

/// The ZEO version of the Python a running member was started with.
fn zeo_version(member: &RunZeo) -> String {
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", member.pid())).expect("the member's cmdline");
    let python = String::from_utf8_lossy(cmdline.split(|b| *b == 0).next().unwrap_or_default()).into_owned();
    let output = Command::new(&python)
        .args(["-c", "import importlib.metadata as m; print(m.version('ZEO'))"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(output.status.success(), "{python}: {output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Runs [`SESSION`] through zeoraid; returns its last tid.
fn session(array: &Array, tag: &str, earlier: &[&str]) -> String {
    let port = array.addr().port().to_string();
    let earlier = earlier.join(",");
    let output = run_python(SESSION, &[&port, tag, &earlier], WITHIN);
    assert!(
        output.status.success(),
        "session {tag} failed ({}):\n{}\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        array.context()
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Both members hold the same transactions, records and blob files.
fn assert_members_identical(array: &Array) {
    let tests_python = repo_root().join("tests").join("python");
    let ports: Vec<String> = array.members().iter().map(|m| m.port().to_string()).collect();
    let mut args = vec![tests_python.to_str().expect("a UTF-8 path")];
    args.extend(ports.iter().map(String::as_str));
    run_python_ok(MIRROR, &args, WITHIN);
}

fn member_status(array: &Array, index: usize) -> Json {
    array.raid_status()["members"][index].clone()
}

/// Kills member `index` and waits until zeoraid has seen it go.
fn kill_member(array: &mut Array, index: usize) {
    array.members_mut()[index].kill9();
    array.wait_status("the member seen gone", STATE_WITHIN, |s| {
        s["members"][index]["connected"] == false && s["status"] == "degraded"
    });
}

/// Removes the FileStorage files and the blob directory of a killed member.
fn wipe_storage(member: &RunZeo) {
    let stem = member
        .storage_path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    for entry in std::fs::read_dir(member.data_dir()).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with(&stem) {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    std::fs::remove_dir_all(member.blob_dir().expect("a blob dir")).unwrap();
}

/// Restarts member `index` and waits until zeoraid recovered it from the
/// other member, by a full copy or not as `full` says.
fn restart_and_recover(array: &mut Array, index: usize, full: bool) {
    let name = format!("zeo{}", index + 1);
    let source = format!("zeo{}", 2 - index);
    let mark = array.log_mark();
    array.members_mut()[index].restart();
    let verified = array.wait_for_log(mark, WITHIN, "recovery verified", |l| {
        l["msg"] == "recovery verified the member's history" && l["member"] == name.as_str()
    });
    assert_eq!(verified["full_copy"], full, "{verified}");
    let recovered = array.wait_for_log(mark, WITHIN, "member recovered", |l| {
        l["msg"] == "member recovered" && l["member"] == name.as_str()
    });
    assert_eq!(recovered["source"], source.as_str(), "{recovered}");
    array.wait_all_members_up(STATE_WITHIN);
}

/// Recovers member `target` from the other one, incrementally and fully,
/// then lets it serve alone.
fn recover_both_kinds(target: usize) {
    let mut array = mixed_array();
    let source = 1 - target;
    session(&array, "before", &[]);
    assert_members_identical(&array);

    kill_member(&mut array, target);
    session(&array, "missed", &["before"]);
    restart_and_recover(&mut array, target, false);
    assert_members_identical(&array);

    kill_member(&mut array, target);
    wipe_storage(&array.members()[target]);
    restart_and_recover(&mut array, target, true);
    assert_members_identical(&array);

    kill_member(&mut array, source);
    let status = member_status(&array, target);
    assert_eq!(status["state"], "optimal", "{status}");
    session(&array, "alone", &["before", "missed"]);
}

#[test]
fn a_zeo5_member_beside_a_zeo6_member_mirrors_commits_blobs_and_undo() {
    let array = mixed_array();
    let first = session(&array, "first", &[]);
    let second = session(&array, "second", &["first"]);
    assert!(second > first, "{first} then {second}");
    assert_members_identical(&array);
    for member in array.members() {
        let status = member.ruok();
        assert_eq!(
            status["1"]["last-transaction"],
            second.as_str(),
            "{member:?}: {status}"
        );
    }
}

/// Both members announce `M5` (`msgpack true`): zeoraid speaks msgpack to
/// the ZEO 5 member as to the ZEO 6 one.
#[test]
fn a_zeo5_member_speaking_msgpack_mirrors_commits_and_blobs() {
    let mut options = ArrayOptions::new(2);
    options.member_options = options.member_options.msgpack();
    let array = mixed_array_with(options);
    for member in array.members() {
        let announced = protocol_announcement(member.addr(), STATE_WITHIN).expect("an announcement");
        assert_eq!(announced, b"M5", "{member:?}");
    }
    session(&array, "msgpack", &[]);
    assert_members_identical(&array);
}

#[test]
fn a_zeo5_member_is_recovered_from_a_zeo6_member_and_serves_alone() {
    recover_both_kinds(ZEO5);
}

#[test]
fn a_zeo6_member_is_recovered_from_a_zeo5_member_and_serves_alone() {
    recover_both_kinds(ZEO6);
}
