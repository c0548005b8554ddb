"""The mirror checker itself (mirror.py), on two independent plain runzeo
servers that we fill with `restore` (the same tids on both), so that we
control exactly what differs. Independent of the selected targets."""

import pytest
from ZEO.ClientStorage import ClientStorage
from ZODB.Connection import TransactionMetaData
from ZODB.tests.MinPO import MinPO
from ZODB.tests.StorageTestBase import zodb_pickle
from ZODB.utils import p64

from . import mirror
from .base import clusters_for_test


@pytest.fixture
def two_servers(request, tmp_path):
    with clusters_for_test(request, "runzeo", tmp_path) as clusters:
        a = clusters.start("a")
        b = clusters.start("b")
        storages = [ClientStorage(c.addr, wait_timeout=30,
                                  blob_dir=str(tmp_path / f"cache-{c.name}"))
                    for c in (a, b)]
        try:
            yield [a.addr, b.addr], storages, [a, b]
        finally:
            for s in storages:
                s.close()


TID1 = p64(0x03F0000000000001)
TID2 = p64(0x03F0000000000002)
OID = p64(1)


def restore(storage, tid, records, user="u", description="d",
            extension=None):
    """Commit a transaction with a given tid, as recovery does."""
    t = TransactionMetaData(user=user, description=description,
                            extension=extension or {})
    storage.tpc_begin(t, tid, " ")
    for oid, data in records:
        storage.restore(oid, tid, data, "", None, t)
    storage.tpc_vote(t)
    storage.tpc_finish(t)


def data(value):
    return zodb_pickle(MinPO(value))


def test_identical(two_servers):
    addrs, storages, _ = two_servers
    assert mirror.first_difference(addrs) is None  # both empty
    for s in storages:
        restore(s, TID1, [(OID, data(1))], extension={"x": 1})
        restore(s, TID2, [(OID, data(2)), (p64(2), data(3))])
    assert mirror.first_difference(addrs) is None
    mirror.wait_identical(addrs, timeout=5)


def test_missing_transaction(two_servers):
    addrs, storages, _ = two_servers
    for s in storages:
        restore(s, TID1, [(OID, data(1))])
    restore(storages[0], TID2, [(OID, data(2))])
    diff = mirror.first_difference(addrs)
    assert "last transactions differ" in diff
    # Without the last-transaction shortcut the walk names the tid.
    diff = _walk(addrs)
    assert "after 1 identical transactions" in diff
    assert TID2.hex() in diff
    with pytest.raises(mirror.Difference):
        mirror.wait_identical(addrs, timeout=0.5)


def test_metadata_difference(two_servers):
    addrs, storages, _ = two_servers
    restore(storages[0], TID1, [(OID, data(1))], user="alice")
    restore(storages[1], TID1, [(OID, data(1))], user="bob")
    diff = mirror.first_difference(addrs)
    assert "user differs" in diff and "alice" in diff and "bob" in diff


def test_extension_difference(two_servers):
    addrs, storages, _ = two_servers
    restore(storages[0], TID1, [(OID, data(1))], extension={"k": 1})
    restore(storages[1], TID1, [(OID, data(1))], extension={"k": 2})
    assert "extension differs" in mirror.first_difference(addrs)


def test_record_data_difference(two_servers):
    addrs, storages, _ = two_servers
    restore(storages[0], TID1, [(OID, data(1))])
    restore(storages[1], TID1, [(OID, data(2))])
    diff = mirror.first_difference(addrs)
    assert "record #0" in diff and "data differs" in diff


def test_record_count_difference(two_servers):
    addrs, storages, _ = two_servers
    restore(storages[0], TID1, [(OID, data(1)), (p64(2), data(1))])
    restore(storages[1], TID1, [(OID, data(1))])
    assert "record count differs" in mirror.first_difference(addrs)


def test_blob_content_difference(two_servers):
    import pickle
    from ZODB.blob import Blob, FilesystemHelper
    addrs, storages, clusters = two_servers
    # A blob record as ZODB writes it: the class, then the (empty) state.
    record = pickle.dumps(Blob, 3) + pickle.dumps(None, 3)
    for s in storages:
        restore(s, TID1, [(OID, record)])
    # ZEO cannot restore a blob file; put each server's file in place in
    # its blob directory (both are local), with different contents.
    for cluster, content in zip(clusters, (b"one", b"two")):
        helper = FilesystemHelper(cluster.blob_dir)
        helper.create()
        helper.createPathForOID(OID)
        with open(helper.getBlobFilename(OID, TID1), "wb") as f:
            f.write(content)
    diff = mirror.first_difference(addrs)
    assert "blob differs" in diff


def _walk(addrs):
    storages = [mirror._open(a, None) for a in addrs]
    try:
        return mirror.compare_storages([mirror._name(a) for a in addrs],
                                       storages)
    finally:
        for s in storages:
            s.close()


