"""ZEO's InvalidationTests: several clients (and threads) updating one
BTree concurrently, checking that every client sees every other's
commits (invalidations) and that the tree is consistent afterwards.

ZEO runs them in ZEO/tests/testConnection.py on top of
ConnectionTests.CommonSetupTearDown, whose `openClientStorage` opens the
clients (`TestClientStorage`, persistent cache files) to the server that
`startServer` started. We keep that base and its client setup unchanged
and only let `startServer` start our fixture's cluster instead of ZEO's
in-process forker. The server-lifecycle tests of ConnectionTests
(stopping, restarting, read-only servers) are in test_connection.py.
"""

from ZEO.tests import ConnectionTests
from ZEO.tests import InvalidationTests

from . import relstorage_exclusions
from .base import ConformanceFixture, for_targets


class InvalidationTests_(ConformanceFixture,
                         ConnectionTests.CommonSetupTearDown,
                         InvalidationTests.InvalidationTests):
    __test__ = False

    def startServer(self, create=1, index=0, read_only=0, ro_svr=0,
                    keep=None, path=None, **kw):
        # CommonSetupTearDown.setUp calls this once for server 0; the
        # invalidation tests need nothing else.
        if (create, index, read_only, ro_svr, path, kw) != (1, 0, 0, 0,
                                                            None, {}):
            raise NotImplementedError(
                "only the default server of CommonSetupTearDown.setUp")
        cluster = self.clusters.start()
        self._servers.append(lambda: None)  # the fixture stops it
        self.addr[index] = cluster.addr


for_targets(globals(), InvalidationTests_,
            excluded=relstorage_exclusions.excluded(InvalidationTests_))
