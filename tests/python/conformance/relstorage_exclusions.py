"""Tests that cannot apply to targets with a RelStorage member, and why.

Each reason is a way RelStorage 4.3 behind a ZEO 6 server answers
differently from FileStorage; most show without zeoraid too (on the
`runzeo-pg` / `runzeo-sqlite` targets, and in
tests/python/test_relstorage_members.py). Behind zeoraid the difference
makes the members' answers or contents differ, which zeoraid refuses
(a vote the members disagree on is aborted with ClientStorageError, a
member whose vote failed where the other's succeeded is degraded) and
the mirror check then reports. README.md lists the same per test.

Test names: `Suite.method` for the unittest suites (`excluded(suite)`
gives for_targets their skips), `test_function` or `test_function[case]`
for plain pytest tests (`skip_if_excluded(target, name)`). Every test
listed runs on the FileStorage targets.
"""

import pytest

from .cluster import member_kinds
from .member_storage import RELSTORAGE_SQLITE, is_relstorage

UNDO = (
    "undo: RelStorage 4.3's undo() returns None where ZEO 6's server "
    "unpacks (tid, oids), so every undo fails on a RelStorage member at "
    "the vote (TypeError; through a plain runzeo as well, "
    "test_relstorage_members.py); zeoraid degrades that member (as failed, "
    "recovery brings it back later) and the members differ at the test's "
    "end")

WRITE_CONFLICT = (
    "concurrent writers: RelStorage 4.3 behind a ZEO server fails some "
    "votes under concurrent writers with CacheConsistencyError (also on "
    "runzeo-pg), among them votes the FileStorage member accepts; zeoraid "
    "then commits on the FileStorage member and degrades the RelStorage "
    "member as failed (recovery brings it back later), so the members "
    "differ at the test's end. Where every member refused and one with a "
    "ConflictError, the client gets that conflict and retries "
    "(controller/vote.rs refused_with_a_conflict)")

DELETE_OBJECT = (
    "deleteObject (IExternalGC): RelStorage 4.3 does not offer "
    "deleteObject in a transaction begun with a given tid (its Restore "
    "phase copies a misspelt `deletObject`: AttributeError at the vote), "
    "which is how zeoraid begins every member's transaction (the same "
    "tid on all); the test also expects len() to count objects, which "
    "RelStorage's does not (0)")

SQLITE_ABORT_AFTER_VOTE = (
    "a transaction aborted in or after its vote (a conflict found at the "
    "vote, tpc_abort after the vote, a client gone after its vote): "
    "RelStorage 4.3 on SQLite keeps the (empty) transaction of a given-tid "
    "transaction aborted after its vote started "
    "(test_relstorage_members.py), a transaction the FileStorage member "
    "does not have; zeoraid finds it and degrades the SQLite member as "
    "diverged (tests/abort_after_vote.rs), but the members still differ, "
    "which the comparison after every test refuses")

UNDO_LOG = (
    "undoInfo/undoLog entries: FileStorage's carry a 'size', RelStorage's "
    "do not; zeoraid answers them from one member in turn, and the test "
    "compares the answers of two calls")

_UNDO_TESTS = [
    "RevisionStorage.testLoadBeforeUndo",
    "IteratorStorage.testUndoZombie",
    "PackableUndoStorage.testPackUndoLog",
    "PackableUndoStorage.testPackUnlinkedFromRoot",
    "ConflictResolvingTransUndoStorage.testUndoConflictResolution",
    "ConflictResolvingTransUndoStorage.testUndoUnresolvable",
    "TransUndoStorageWithCache.checkUndoInvalidation",
    "RecoveryStorage.testRestoreWithMultipleObjectsInUndoRedo",
    "RecoveryStorage.testRestoreWithMultipleUndoRedo",
    # undoes the source's last transaction before its manual restore
    "RecoveryStorage.testRestoreAcrossPack",
] + [f"TransactionalUndoStorage.{m}" for m in (
    "testCreationUndoneGetTid", "testPackAfterUndoDeletion",
    "testPackAfterUndoManyTimes", "testSimpleTransactionalUndo",
    "testTransactionalUndoAfterPack",
    "testTransactionalUndoAfterPackWithObjectUnlinkFromRoot",
    "testTransactionalUndoIterator", "testTwoObjectUndo",
    "testTwoObjectUndoAgain", "testTwoObjectUndoAtOnce",
    "testUndoCreationBranch1", "testUndoCreationBranch2",
    "testUndoMultipleConflictResolution",
    "testUndoMultipleConflictResolutionReversed", "testNotUndoable",
)] + [f"test_blob_suite[ClientStorageNonSharedBlobs:testblob."
      f"ClientStorageNonSharedBlobsBlobUndoTests.{m}]" for m in (
          "testRedo", "testRedoOfCreation", "testUndo",
          "testUndoAfterConsumption", "testUndoWithoutPreviousVersion")]

_WRITE_CONFLICT_TESTS = [
    "test_concurrent_writers_mirror",
    "BasicStorage.test_race_load_vs_external_invalidate",
    "MTStorage.test7ZODBThreads",
    "PackableStorage.testPackLotsWhileWriting",
    "PackableStorage.testPackNowWhileWriting",
    "PackableStorage.testPackWhileWriting",
] + [f"InvalidationTests.{m}" for m in (
    "checkConcurrentLargeUpdates", "checkConcurrentUpdates19Storages",
    "checkConcurrentUpdates1Storage", "checkConcurrentUpdates2Storages",
    "checkConcurrentUpdates2StoragesMT",
    "checkConcurrentUpdates2Storages_emulated")]

# test name -> reason, for targets with any RelStorage member
RELSTORAGE = {
    **{name: UNDO for name in _UNDO_TESTS},
    **{name: WRITE_CONFLICT for name in _WRITE_CONFLICT_TESTS},
    "TransactionalUndoStorage.testIndicesInUndoInfo": UNDO_LOG,
    "TransactionalUndoStorage.testIndicesInUndoLog": UNDO_LOG,
    "test_blob_suite[IExternalGC:IExternalGC_test]": DELETE_OBJECT,
}

# test name -> reason, for targets with a RelStorage-on-SQLite member
SQLITE = {name: SQLITE_ABORT_AFTER_VOTE for name in [
    "BasicStorage.testAbortAfterVote",
    "BasicStorage.testConflicts",
    "MTStorage.test2ZODBThreads",
    "ConflictResolvingStorage.testBuggyResolve1",
    "ConflictResolvingStorage.testBuggyResolve2",
    "ConflictResolvingStorage.testUnresolvable",
    "CommitLockVoteTests.checkCommitLockVoteAbort",
    "CommitLockVoteTests.checkCommitLockVoteClose",
    "ThreadTests.checkDisconnectedOnThread2Close",
    "ThreadTests.checkSecondBeginFails",
    "test_blob_suite[ClientStorageNonSharedBlobs:blob_transaction_txt]",
    "test_blob_suite[ClientStorageNonSharedBlobs:testblob."
    "savepoint_commits_without_invalidations_out_of_order]",
    "test_zeo_doctest[invalidate_client_cache_entry_on_server_commit_error]",
]}


def has_relstorage(target):
    return any(is_relstorage(kind) for kind in member_kinds(target))


def skips(target):
    """{test name: reason} of the tests that cannot apply to target."""
    found = {}
    if has_relstorage(target):
        found.update(RELSTORAGE)
    if RELSTORAGE_SQLITE in member_kinds(target):
        found.update(SQLITE)
    return found


def excluded(suite):
    """for_targets' `excluded` for a unittest suite class: its methods
    listed here, each skipped on the targets it cannot apply to."""
    names = {f"{suite.__name__.rstrip('_')}.{m}": m for m in dir(suite)}
    result = {}
    for table, applies in ((RELSTORAGE, lambda t: not has_relstorage(t)),
                           (SQLITE, lambda t: RELSTORAGE_SQLITE
                            not in member_kinds(t))):
        for name, reason in table.items():
            if name in names:
                result[names[name]] = (applies, reason)
    return result


def skip_if_excluded(target, name):
    """In a plain pytest test: skip it on target if it is listed."""
    reason = skips(target).get(name)
    if reason is not None:
        pytest.skip(reason)
