"""Blob storage tests against a remote server, as ZEO runs them
(ZEO/tests/testZEO.py):

- `CommonBlobTests` + `BlobAdaptedFileStorageTests.checkStoreAndLoadBlob`:
  storeBlob/loadBlob through a ClientStorage with its own blob cache;
  checkStoreAndLoadBlob also reads the blob from the server's blob
  directory (on a zeoraid target: the first member's).
- `CommonBlobTests` with a *shared* blob directory (testZEO's
  `BlobWritableCacheTests`): the client writes into the server's own blob
  directory. Only on `runzeo`: see README.md.
- ZODB's reusable blob suite (`ZODB.tests.testblob.storage_reusable_suite`:
  the blob_connection/importexport/transaction doctests, testblob's
  doctests and `BlobUndoTests`) with a factory that starts a fresh cluster
  per storage name, as testZEO's `ServerManagingClientStorage` starts a
  server; the shared-blob-directory variant only on `runzeo`.
- `IExternalGC.test` (ZODB.tests.PackableStorage.IExternalGC_suite) with
  members configured `pack-gc false`, as testZEO runs it.

The doctests and `BlobUndoTests` come as a unittest suite; each case is
run by one pytest test (`test_blob_suite`), inside the fresh-servers
fixture.
"""

import contextlib
import ctypes
import os
import unittest

import pytest
import ZEO.ClientStorage
from ZEO.ClientStorage import ClientStorage
from ZEO.tests import testZEO
from ZODB.tests import PackableStorage
from ZODB.tests import testblob

from . import relstorage_exclusions
from .base import for_targets, is_zeoraid, run_case
from .test_storage_mixins import Remote


# --- CommonBlobTests ---------------------------------------------------------

class BlobStorage_(Remote, testZEO.CommonBlobTests):
    __test__ = False
    checkStoreAndLoadBlob = \
        testZEO.BlobAdaptedFileStorageTests.checkStoreAndLoadBlob


class SharedBlobDir_(Remote, testZEO.CommonBlobTests):
    __test__ = False
    blob_cache_dir = None
    shared_blob_dir = True


for_targets(globals(), BlobStorage_,
            excluded=relstorage_exclusions.excluded(BlobStorage_))
SHARED_BLOB_DIR = ("shared blob directory: the client writes blobs into "
                   "the server's own blob directory; only with a plain "
                   "runzeo (see README.md)")

for_targets(globals(), SharedBlobDir_, applies=lambda t: not is_zeoraid(t),
            reason=SHARED_BLOB_DIR)


# --- reusable suites driven by a storage factory ----------------------------

# The ClusterSet of the running test; the factories start clusters in it.
_running = {}


def _clusters():
    return _running["clusters"]


def non_shared_factory(name, blob_dir):
    """testZEO.ServerManagingClientStorage(name, blob_dir): a server per
    storage name, the client with its own blob cache."""
    cluster = _clusters().get_or_start(name)
    return ClientStorage(cluster.addr, blob_dir=blob_dir)


def shared_factory(name, blob_dir):
    """testZEO.create_storage_shared: the server's blob directory is the
    client's."""
    blob_dir = os.path.abspath(blob_dir)
    cluster = _clusters().get_or_start(name, blob_dir=blob_dir)
    return ClientStorage(cluster.addr, blob_dir=blob_dir,
                         shared_blob_dir=True)


class ExternalGCClientStorage(ClientStorage):
    # The body of testZEO.ServerManagingClientStorageForIExternalGCTest.pack.
    def pack(self, t=None, referencesf=None):
        ClientStorage.pack(self, t, referencesf, wait=True)
        # Packing doesn't clear old versions out of zeo client caches,
        # so we'll clear the caches.
        self._cache.clear()
        ZEO.ClientStorage._check_blob_cache_size(self.blob_dir, 0)


def external_gc_factory():
    """testZEO's factory for IExternalGC.test: members with pack-gc false."""
    cluster = _clusters().get_or_start(
        "data", storage_options="pack-gc false")
    return ExternalGCClientStorage(cluster.addr, blob_dir="blobs")


def _flatten(suite):
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            yield from _flatten(test)
        else:
            yield test


def _cases(suite_name, suite, layer=None):
    cases = []
    for case in _flatten(suite):
        cases.append((suite_name, case.id().replace("ZODB.tests.", ""),
                      case, layer))
    return cases


def _reusable(prefix, factory):
    suite = testblob.storage_reusable_suite(prefix, factory)
    return _cases(prefix, suite, suite.layer)


CASES = (
    _reusable("ClientStorageNonSharedBlobs", non_shared_factory)
    + _reusable("ClientStorageSharedBlobs", shared_factory)
    + _cases("IExternalGC",
             PackableStorage.IExternalGC_suite(external_gc_factory))
)


def _applies(suite_name, target):
    return not (suite_name == "ClientStorageSharedBlobs"
                and is_zeoraid(target))


@contextlib.contextmanager
def without_dac_override():
    """As root, drop CAP_DAC_OVERRIDE from this thread's effective
    capabilities for the duration, so that opening a read-only file for
    writing fails as it does for any other user (blob_transaction.txt
    checks that committed blob files cannot be opened for writing; root
    could). Child processes are unaffected: exec gives root its full
    effective set again. A no-op when not root or not on Linux."""
    if os.geteuid() != 0:
        yield
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        yield
        return

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32),
                    ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    LINUX_CAPABILITY_VERSION_3 = 0x20080522
    CAP_DAC_OVERRIDE = 1
    header = Header(LINUX_CAPABILITY_VERSION_3, 0)
    data = (Data * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        yield
        return
    saved = data[0].effective
    data[0].effective = saved & ~(1 << CAP_DAC_OVERRIDE)
    dropped = libc.capset(ctypes.byref(header), data) == 0
    try:
        yield
    finally:
        if dropped:
            data[0].effective = saved
            libc.capset(ctypes.byref(header), data)


@pytest.mark.parametrize(
    "suite_name,case_id,case,layer",
    [pytest.param(*c, id=f"{c[0]}:{c[1]}") for c in CASES])
def test_blob_suite(clusters, target, suite_name, case_id, case, layer):
    if not _applies(suite_name, target):
        pytest.skip(SHARED_BLOB_DIR)
    relstorage_exclusions.skip_if_excluded(
        target, f"test_blob_suite[{suite_name}:{case_id}]")
    _running["clusters"] = clusters
    try:
        # The suite's layer (MonotonicallyIncreasingTimeMinimalTestLayer)
        # gives each test a client clock that always moves forward.
        with without_dac_override():
            run_case(case, layer)
    finally:
        _running.clear()
