"""RecoveryStorage: copyTransactionsFrom / restore from one remote storage
into another, as ZEO runs it (testZEO.FileStorageRecoveryTests: source and
destination are two ClientStorages to two servers).

Here both are clusters of the test's target: on a zeoraid target the
destination is a second zeoraid array, so `restore` (tpc_begin with a
given tid and status) goes through zeoraid too, and both arrays' members
are mirror-checked after the test.
"""

import tempfile

from ZEO.ClientStorage import ClientStorage
from ZEO.tests import testZEO
from ZODB.tests import RecoveryStorage

from . import relstorage_exclusions
from .base import RemoteStorageCase, for_targets


class RecoveryStorage_(RemoteStorageCase, RecoveryStorage.RecoveryStorage):
    __test__ = False

    def _new_storage(self, name):
        # The body of testZEO.FileStorageRecoveryTests._new_storage, with
        # the server from our fixture.
        cluster = self.clusters.start(name)
        blob_cache_dir = tempfile.mkdtemp(dir='.')
        storage = ClientStorage(
            cluster.addr, '1', cache_size=20000000,
            min_disconnect_poll=0.5, wait=1,
            wait_timeout=60, blob_dir=blob_cache_dir)
        storage.registerDB(testZEO.DummyDB())
        return storage

    def setUp(self):
        RemoteStorageCase.setUp(self)
        self._dst = self._new_storage("dest")

    def tearDown(self):
        self._dst.close()
        RemoteStorageCase.tearDown(self)


for_targets(globals(), RecoveryStorage_,
            excluded=relstorage_exclusions.excluded(RecoveryStorage_))

