//! Recovery between members of different storages, through a real zeoraid
//! with real runzeo members: a FileStorage member recovered from a
//! RelStorage source and the reverse (RelStorage on PostgreSQL and on
//! SQLite), incremental (the member was disabled for some commits) and
//! full (an empty member, `recover?full=true`), with blobs, undone
//! transactions and an empty transaction. After each recovery a scrub
//! finds the members identical, the source is stopped, and a ZODB client
//! reads everything back through zeoraid from the recovered member alone:
//! objects, every revision in their history, blobs and the undo log.
//! Also: a FileStorage that missed a pack of RelStorage, a blob whose
//! current revision a RelStorage target packed, and a history-free
//! RelStorage member, refused with the reason.

mod common;

use common::array::{assert_scrub_finds_them_identical, Array, ArrayOptions};
use common::postgres::Postgres;
use common::records::ROOT_RECORD;
use common::runzeo::{run_python_ok, RunZeoOptions};
use serde_json::Value as Json;
use std::time::Duration;
use zeo::types::{Oid, Tid};

/// Bound for a recovery of a few dozen transactions, or a scrub, to end.
const ENDS: Duration = Duration::from_secs(90);

/// A ZODB 6 client through zeoraid. `write TAG undo|no-undo`: commits
/// under keys starting with TAG: a mapping with several revisions, a blob
/// written twice, with `undo` an object and a blob whose creation is
/// undone, a change that is undone and a blob change that is undone; an
/// empty transaction (begun, voted and finished with no record); every
/// transaction with extension metadata.
/// `pack`: packs the database as of now. `touch TAG`: writes a new
/// revision of TAG's blob.
/// `read`: prints one JSON document of what the client sees: every
/// object of the root, every revision of each (history and loadSerial),
/// blob contents, the undo log and the last transaction.
const CLIENT: &str = r#"
import hashlib, json, sys, tempfile, time
import transaction, ZEO
from ZODB.blob import Blob
from persistent.mapping import PersistentMapping
from ZODB.Connection import TransactionMetaData

host, port = sys.argv[1].rsplit(':', 1)
mode = sys.argv[2]
db = ZEO.DB((host, int(port)), blob_dir=tempfile.mkdtemp(), shared_blob_dir=False, wait_timeout=30)
storage = db.storage

def commit(note):
    txn = transaction.get()
    txn.note(note)
    txn.setExtendedInfo('by', 'recovery_storage_kinds')
    transaction.commit()

def undo_last():
    db.undo(db.undoLog(0, 1)[0]['id'])
    commit('undo')

def blob_text(blob):
    with blob.open('r') as f:
        return f.read()

if mode == 'pack':
    db.pack(time.time())
elif mode == 'touch':
    conn = db.open()
    with conn.root()[sys.argv[3] + '-blob'].open('w') as f:
        f.write(b'a new revision of an old blob')
    commit(sys.argv[3] + ' blob touched')
    conn.close()
elif mode == 'write':
    tag, undo = sys.argv[3], sys.argv[4] == 'undo'
    conn = db.open()
    root = conn.root()
    root[tag + '-map'] = PersistentMapping(v=0)
    root[tag + '-blob'] = Blob((tag + ' first blob ' * 500).encode())
    commit(tag + ' create')
    for i in range(1, 4):
        root[tag + '-map']['v'] = i
        commit('%s v=%d' % (tag, i))
    with root[tag + '-blob'].open('w') as f:
        f.write((tag + ' second blob ' * 700).encode())
    commit(tag + ' blob rewritten')
    if undo:
        root[tag + '-gone'] = PersistentMapping(x=1)
        root[tag + '-gone-blob'] = Blob(b'undone blob')
        commit(tag + ' to be undone')
        undo_last()
        root[tag + '-map']['v'] = 99
        commit(tag + ' v=99, undone')
        undo_last()
        with root[tag + '-blob'].open('w') as f:
            f.write(b'a blob change that is undone')
        commit(tag + ' blob change, undone')
        undo_last()
    txn = TransactionMetaData(description=(tag + ' empty').encode())
    storage.tpc_begin(txn)
    storage.tpc_vote(txn)
    storage.tpc_finish(txn)
    conn.close()
else:
    conn = db.open()
    root = conn.root()
    seen = {}
    for key in sorted(root.keys()):
        obj = root[key]
        revisions = []
        for entry in storage.history(obj._p_oid, size=1000):
            data = storage.loadSerial(obj._p_oid, entry['tid'])
            revisions.append([entry['tid'].hex(), hashlib.sha256(data or b'').hexdigest()])
        value = blob_text(obj).decode() if isinstance(obj, Blob) else dict(obj)
        seen[key] = {'value': value, 'revisions': revisions}
    text = lambda v: v.decode() if isinstance(v, bytes) else v
    undo_log = [[text(e['id']), text(e['description'])] for e in db.undoLog(0, 1000)]
    print(json.dumps({'objects': seen, 'undo_log': undo_log,
                      'last': storage.lastTransaction().hex()}, sort_keys=True))
    conn.close()
db.close()
"#;

/// Commits the workload under `tag`; with `undo`, its undone transactions
/// too (see [`CLIENT`]).
fn write(array: &Array, tag: &str, undo: bool) {
    let undo = if undo { "undo" } else { "no-undo" };
    run_python_ok(
        CLIENT,
        &[&array.addr().to_string(), "write", tag, undo],
        Duration::from_secs(120),
    );
}

fn read(array: &Array) -> Json {
    let out = run_python_ok(
        CLIENT,
        &[&array.addr().to_string(), "read"],
        Duration::from_secs(120),
    );
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("the client printed {out:?}: {e}"))
}

fn member<'a>(status: &'a Json, name: &str) -> &'a Json {
    status["members"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == name))
        .unwrap_or_else(|| panic!("no member {name} in {status}"))
}

fn array_of(zeo1: RunZeoOptions, zeo2: RunZeoOptions) -> Array {
    let mut options = ArrayOptions::new(2);
    options.member_kinds = vec![Some(zeo1.blobs()), Some(zeo2.blobs())];
    options.tables = "[recovery]\nauto = false\n".into();
    Array::start_with(options)
}

/// Recovers `name` (`?full=true` for a full copy) and waits until it is
/// optimal; its `last_recovery`.
fn recover(array: &Array, name: &str, full: bool) -> String {
    let query = if full { "?full=true" } else { "" };
    array.post_ok(&format!("/members/{name}/recover{query}"));
    let status = array.wait_status(&format!("{name} optimal"), ENDS, |s| {
        member(s, name)["state"] == "optimal"
    });
    member(&status, name)["last_recovery"].to_string()
}

/// Stops member `index` and reads everything back through zeoraid from
/// the other one alone: it must serve what both served.
fn assert_serves_alone(array: &mut Array, index: usize, both: &Json, recovery: &str) {
    let name = format!("zeo{}", index + 1);
    array.members_mut()[index].kill9();
    array.wait_status(&format!("{name} out"), ENDS, |s| {
        member(s, &name)["state"] != "optimal"
    });
    let alone = read(array);
    assert_eq!(
        &alone, both,
        "the recovered member alone serves other data than both did (recovery: {recovery})"
    );
}

/// What both members serve (at least one workload's mapping and blob).
fn read_both(array: &Array) -> Json {
    let both = read(array);
    assert!(
        both["objects"].as_object().is_some_and(|o| o.len() >= 2),
        "{both}"
    );
    both
}

/// zeo1 a FileStorage, zeo2 `relstorage`. The undone transactions are
/// committed while zeo2 is disabled: a ZEO 6.2 server cannot undo on
/// RelStorage 4 (ARCHITECTURE.md, "Members of other storages"). Then:
/// zeo2 recovered incrementally from the FileStorage (blobs, undo records
/// as back-pointers, an empty transaction); the FileStorage stopped,
/// zeo2 serves alone; the FileStorage emptied and copied in full from
/// RelStorage; zeo2 stopped, the FileStorage serves alone.
fn incremental_to_relstorage_then_full_back(relstorage: RunZeoOptions) {
    let mut array = array_of(RunZeoOptions::new(), relstorage);
    create_root(&array);
    write(&array, "before", false);
    array.post_ok("/members/zeo2/disable");
    write(&array, "while-disabled", true);
    let recovery = recover(&array, "zeo2", false);
    assert_scrub_finds_them_identical(&array, ENDS);
    let both = read_both(&array);
    assert_serves_alone(&mut array, 0, &both, &recovery);

    array.members_mut()[0].restart_empty();
    let recovery = recover(&array, "zeo1", true);
    assert_scrub_finds_them_identical(&array, ENDS);
    assert_serves_alone(&mut array, 1, &both, &recovery);
}

/// zeo1 `relstorage`, zeo2 a FileStorage. zeo1 disabled while empty, the
/// workload with undone transactions on the FileStorage alone, zeo1
/// copied in full from it; then zeo2 disabled, more commits on
/// RelStorage alone, zeo2 recovered incrementally from RelStorage; zeo1
/// stopped, the FileStorage serves alone.
fn full_to_relstorage_then_incremental_back(relstorage: RunZeoOptions) {
    let mut array = array_of(relstorage, RunZeoOptions::new());
    array.post_ok("/members/zeo1/disable");
    write(&array, "first", true);
    recover(&array, "zeo1", true);
    array.post_ok("/members/zeo2/disable");
    write(&array, "second", false);
    let recovery = recover(&array, "zeo2", false);
    assert_scrub_finds_them_identical(&array, ENDS);
    let both = read_both(&array);
    assert_serves_alone(&mut array, 0, &both, &recovery);
}

/// Commits the root object through zeoraid, so the first ZODB client
/// finds one. Without it, the client's load of the missing root may go to
/// the RelStorage member, and RelStorage 4.3 on PostgreSQL answers it
/// with a `POSKeyError` carrying its connection objects, which ZEO cannot
/// pickle: the client gets "Couldn't pickle response" instead of the
/// `POSKeyError` that makes it create the root.
fn create_root(array: &Array) {
    let mut client = array.client();
    let txn = client.begin();
    client.store(&txn, Oid::ZERO, Tid::ZERO, ROOT_RECORD);
    client.vote(&txn).expect("the root's vote");
    client.finish(&txn).expect("the root's commit");
}

fn sqlite() -> RunZeoOptions {
    RunZeoOptions::new().relstorage_sqlite()
}

#[test]
fn filestorage_to_relstorage_on_postgresql_incrementally_and_back_in_full() {
    let postgres = Postgres::start();
    incremental_to_relstorage_then_full_back(
        RunZeoOptions::new().relstorage_postgres(&postgres.create_database("zeo2")),
    );
}

#[test]
fn filestorage_to_relstorage_on_sqlite_in_full_and_back_incrementally() {
    full_to_relstorage_then_incremental_back(sqlite());
}

/// Recovers `name` and waits until the recovery has ended without making
/// it optimal; its `last_recovery`.
fn recovery_refused(array: &Array, name: &str) -> String {
    let since = array.log_mark();
    array.post_ok(&format!("/members/{name}/recover"));
    let status = array.wait_status(&format!("{name}'s recovery refused"), ENDS, |s| {
        member(s, name)["last_recovery"]
            .as_str()
            .is_some_and(|r| r.starts_with("refused"))
    });
    assert_ne!(member(&status, name)["state"], "optimal", "{status}");
    let line = array.wait_for_log(since, ENDS, "recovery ended", |l| {
        l["msg"] == "recovery ended" && l["member"] == name
    });
    let reason = member(&status, name)["last_recovery"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(line["outcome"], reason, "{line}");
    reason
}

/// A history-free RelStorage keeps only current records: recovery
/// refuses it as a target and as a source, naming it, and copies nothing.
#[test]
fn a_history_free_relstorage_member_is_refused_as_target_and_as_source() {
    let array = array_of(RunZeoOptions::new(), sqlite().history_free());
    create_root(&array);
    array.post_ok("/members/zeo2/disable");
    write(&array, "missed", false);
    let held = array.members()[1].last_transaction();
    let reason = recovery_refused(&array, "zeo2");
    assert!(
        reason.contains("zeo2 (the target) keeps no history") && reason.contains("history-free RelStorage"),
        "{reason}"
    );
    assert_eq!(array.members()[1].last_transaction(), held, "nothing was copied");

    let array = array_of(sqlite().history_free(), RunZeoOptions::new());
    create_root(&array);
    array.post_ok("/members/zeo2/disable");
    write(&array, "missed", false);
    let reason = recovery_refused(&array, "zeo2");
    assert!(reason.contains("zeo1 (the source) keeps no history"), "{reason}");
}

/// A FileStorage member that missed a pack of a RelStorage source: its
/// recovery compares the history before the pack leniently, copies the
/// rest, packs it the same way, and it ends as the source (the scrub finds
/// them identical) and serves the same objects, blobs and undo log alone.
#[test]
fn a_filestorage_member_that_missed_a_pack_of_relstorage_is_recovered_and_packed() {
    let mut array = array_of(sqlite(), RunZeoOptions::new());
    create_root(&array);
    write(&array, "before", false);
    array.post_ok("/members/zeo2/disable");
    write(&array, "during", false);
    run_python_ok(
        CLIENT,
        &[&array.addr().to_string(), "pack"],
        Duration::from_secs(120),
    );
    write(&array, "after", false);
    let recovery = recover(&array, "zeo2", false);
    assert_scrub_finds_them_identical(&array, ENDS);
    // After a pack, RelStorage's `history` leaves out the transactions the
    // pack went through and FileStorage's does not (ARCHITECTURE.md,
    // "Members of other storages"): what is compared is the rest.
    let both = without_revisions(read_both(&array));
    array.members_mut()[0].kill9();
    array.wait_status("zeo1 out", ENDS, |s| member(s, "zeo1")["state"] != "optimal");
    assert_eq!(without_revisions(read(&array)), both, "recovery: {recovery}");
}

fn without_revisions(mut read: Json) -> Json {
    for object in read["objects"]
        .as_object_mut()
        .into_iter()
        .flat_map(|o| o.values_mut())
    {
        object.as_object_mut().map(|o| o.remove("revisions"));
    }
    read
}

/// A RelStorage member that was packed, then missed a new revision of a
/// blob whose current revision is in a packed transaction: the blob's
/// upload names the member's current serial, which its `history` no
/// longer lists (it leaves out packed transactions), so it comes from
/// `loadBefore`; the recovery completes and the member serves alone.
#[test]
fn a_blob_whose_revision_relstorage_packed_is_recovered_onto_it() {
    let mut array = array_of(RunZeoOptions::new(), sqlite());
    create_root(&array);
    write(&array, "old", false);
    run_python_ok(
        CLIENT,
        &[&array.addr().to_string(), "pack"],
        Duration::from_secs(120),
    );
    array.post_ok("/members/zeo2/disable");
    run_python_ok(
        CLIENT,
        &[&array.addr().to_string(), "touch", "old"],
        Duration::from_secs(120),
    );
    let recovery = recover(&array, "zeo2", false);
    assert_scrub_finds_them_identical(&array, ENDS);
    let both = without_revisions(read_both(&array));
    array.members_mut()[0].kill9();
    array.wait_status("zeo1 out", ENDS, |s| member(s, "zeo1")["state"] != "optimal");
    let alone = without_revisions(read(&array));
    assert_eq!(
        alone["objects"]["old-blob"]["value"],
        "a new revision of an old blob"
    );
    assert_eq!(alone, both, "recovery: {recovery}");
}

/// A pack through a FileStorage + RelStorage array started beside a ZODB
/// client that writes (which of the two reaches the commit lock first is
/// the scheduler's choice; either way the members must agree): both
/// members pack under the commit lock, the writes commit on both before or
/// after it, the scrub finds them identical, and the RelStorage member
/// alone serves what both served.
#[test]
fn a_pack_with_writers_on_a_filestorage_and_relstorage_array_leaves_them_identical() {
    let mut array = array_of(RunZeoOptions::new(), sqlite());
    create_root(&array);
    write(&array, "old", false);
    write(&array, "older", false);
    let addr = array.addr().to_string();
    let packer =
        std::thread::spawn(move || run_python_ok(CLIENT, &[&addr, "pack"], Duration::from_secs(120)));
    write(&array, "live", false);
    packer.join().expect("the pack's client");
    write(&array, "after", false);
    assert_scrub_finds_them_identical(&array, ENDS);
    let both = without_revisions(read_both(&array));
    assert!(both["objects"]["live-blob"].is_object(), "{both}");
    array.members_mut()[0].kill9();
    array.wait_status("zeo1 out", ENDS, |s| member(s, "zeo1")["state"] != "optimal");
    assert_eq!(without_revisions(read(&array)), both, "zeo2 (RelStorage) alone");
}
