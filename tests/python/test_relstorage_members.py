"""RelStorage members beside a FileStorage member: where RelStorage 4.3
behind a ZEO 6 server answers differently from FileStorage, and what
zeoraid does about it. Each difference here is the reason for exclusions
of the conformance suite on its `zeoraid-fs+pg` / `zeoraid-fs+sqlite`
targets (tests/python/conformance/README.md, Exclusions); if one of these
tests starts failing because RelStorage or ZEO changed, those exclusions
are to be revisited.

Real runzeo members (conformance/cluster.py; RelStorage on a PostgreSQL
server the suite starts itself, conformance/postgres.py), a real zeoraid,
real ZEO clients.
"""

import sqlite3

import pytest
import transaction
from ZEO.ClientStorage import ClientStorage
from ZODB.Connection import TransactionMetaData
from ZODB.utils import p64, z64

from conformance import mirror, postgres
from conformance.base import clusters_for_test
from test_failures import CONNECT_TIMEOUT, degraded, raid  # noqa: F401


@pytest.fixture(scope="module", autouse=True)
def postgres_server():
    """The PostgreSQL server the members' databases live on; stopped after
    this module's tests."""
    postgres.server()
    yield
    postgres.stop_server()


def test_missing_postgresql_fails_naming_the_setup_script(monkeypatch):
    """Without PostgreSQL's binaries the `pg` targets fail (they do not
    skip), and the error says how to install them."""
    monkeypatch.setattr(postgres.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(postgres.shutil, "which", lambda name: None)
    with pytest.raises(postgres.PostgresMissing,
                       match="scripts/system-packages"):
        postgres.binaries()


def _commit_and_undo(db):
    conn = db.open()
    conn.root()["value"] = 1
    transaction.commit()
    conn.root()["value"] = 2
    transaction.commit()
    undone = db.undoLog(0, 1)[0]["id"]
    db.undo(undone)
    transaction.commit()
    conn.close()


def test_undo_fails_on_relstorage_behind_plain_runzeo(request, tmp_path):
    """RelStorage 4.3's undo() returns None where ZEO 6's server unpacks
    (tid, oids): no undo through a plain runzeo serving RelStorage
    succeeds (the vote fails with TypeError)."""
    import ZODB
    with clusters_for_test(request, "runzeo-pg", tmp_path) as clusters:
        cluster = clusters.start()
        db = ZODB.DB(ClientStorage(cluster.addr, wait_timeout=CONNECT_TIMEOUT))
        try:
            with pytest.raises(Exception, match="cannot unpack non-iterable"):
                _commit_and_undo(db)
            transaction.abort()
        finally:
            db.close()


def test_undo_degrades_a_relstorage_member_which_recovery_brings_back(raid):
    """Through zeoraid, the same undo votes on the FileStorage member and
    fails on the RelStorage member (a TypeError inside ZEO's server): the
    client's undo is acknowledged and held by the FileStorage member, the
    RelStorage member is degraded as failed (not diverged: a server
    exception says nothing about its data), and a recovery copies the undo
    into it (as restored records, which RelStorage takes): it ends optimal
    and the members are identical."""
    raid.start("fs+pg")
    db = raid.db()
    _commit_and_undo(db)
    status = raid.wait_status(degraded("m2"), "m2 degraded after the undo")
    m2 = raid.member_status("m2", status)
    assert m2["kind"] == "failed", m2
    assert "TypeError" in m2["reason"], m2
    assert raid.member_status("m1", status)["state"] == "optimal", status
    fs = ClientStorage(raid.cluster.member("m1").addr, read_only=True,
                       wait_timeout=CONNECT_TIMEOUT)
    try:
        assert fs.lastTransaction() == db.lastTransaction()
        assert len(fs.undoLog(0, 10)) == 4  # creation, 2 commits, the undo
    finally:
        fs.close()
    code, body = raid.http("POST", "/members/m2/recover")
    assert code in (200, 202), (code, body)
    raid.wait_status(lambda s: s["status"] == "optimal",
                     "m2 recovered and the array optimal")
    mirror.wait_identical(raid.cluster.member_addrs,
                          kinds=raid.cluster.member_storage_kinds)
    db.close()


def test_sqlite_keeps_a_restore_aborted_after_its_vote(tmp_path):
    """RelStorage 4.3 on SQLite, in a transaction begun with a given tid
    (what zeoraid sends every member, so that all commit the same tid),
    keeps the transaction's (empty) row when it is aborted after its
    vote: a transaction no FileStorage or PostgreSQL member has, which
    lastTransaction() and iterator() then answer. Shown on RelStorage
    itself, without a server."""
    from relstorage.adapters.sqlite.adapter import Sqlite3Adapter
    from relstorage.options import Options
    from relstorage.storage import RelStorage
    options = Options(keep_history=True)
    storage = RelStorage(Sqlite3Adapter(str(tmp_path), {}, options=options),
                         options=options)
    try:
        first = _commit_with_tid(storage, p64(0x0400000000000001), z64)
        txn = TransactionMetaData()
        aborted = p64(0x0400000000000002)
        storage.tpc_begin(txn, aborted)
        storage.store(p64(1), first, b"y", "", txn)
        storage.tpc_vote(txn)
        storage.tpc_abort(txn)
    finally:
        storage.close()
    db = sqlite3.connect(tmp_path / "main.sqlite3")
    try:
        tids = [row[0] for row in db.execute(
            'SELECT tid FROM "transaction" WHERE tid > 0 ORDER BY tid')]
    finally:
        db.close()
    assert tids == [0x0400000000000001, 0x0400000000000002]


def _commit_with_tid(storage, tid, serial):
    txn = TransactionMetaData()
    storage.tpc_begin(txn, tid)
    storage.store(p64(1), serial, b"x", "", txn)
    storage.tpc_vote(txn)
    storage.tpc_finish(txn)
    return tid
