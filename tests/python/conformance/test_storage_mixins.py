"""ZODB's and ZEO's storage test mixins against a remote server.

ZEO runs these remotely in ZEO/tests/testZEO.py as one class per server
configuration (`GenericTests` + `FullGenericTests`). Here each mixin is its
own suite (`RemoteStorageCase` + the mixin) so that a failure through
zeoraid names the area it is in; the test bodies are the installed
packages' own. The ZEO-specific helpers that testZEO's `GenericTests`
adds for all of its mixins are taken over from it unchanged (see
`Remote` below); where testZEO adjusts one mixin, the suite says so.

Every test gets fresh servers (see conftest.py / cluster.py); on zeoraid
targets the members' mirror is checked after each test.
"""

from ZEO.tests import Cache
from ZEO.tests import CommitLockTests
from ZEO.tests import IterationTests
from ZEO.tests import ThreadTests
from ZEO.tests import testZEO
from ZODB.tests import BasicStorage
from ZODB.tests import ConflictResolution
from ZODB.tests import HistoryStorage
from ZODB.tests import IteratorStorage
from ZODB.tests import MTStorage
from ZODB.tests import PackableStorage
from ZODB.tests import PersistentStorage
from ZODB.tests import ReadOnlyStorage
from ZODB.tests import RevisionStorage
from ZODB.tests import Synchronization
from ZODB.tests import TransactionalUndoStorage

from . import relstorage_exclusions
from .base import RemoteStorageCase, for_targets


class Remote(RemoteStorageCase):
    """RemoteStorageCase plus what testZEO.GenericTests gives all of its
    mixins."""

    __test__ = False

    # Reopen the client, read-only if asked (ReadOnlyStorage,
    # PersistentStorage).
    open = testZEO.GenericTests.open
    # A competing commit from a second client, not a second thread on the
    # same client (BasicStorage's tid-ordering tests).
    _do_store_in_separate_thread = \
        testZEO.GenericTests._do_store_in_separate_thread


# --- ZODB's mixins -----------------------------------------------------------

class BasicStorage_(Remote, BasicStorage.BasicStorage):
    __test__ = False
    # ZEO's own sortKey check (ClientStorage: "<storage>:<server addr>").
    checkSortKey = testZEO.GenericTests.checkSortKey


class Synchronization_(Remote, Synchronization.SynchronizedStorage):
    __test__ = False


class MTStorage_(Remote, MTStorage.MTStorage):
    __test__ = False


class RevisionStorage_(Remote, RevisionStorage.RevisionStorage):
    __test__ = False


class TransactionalUndoStorage_(
        Remote, TransactionalUndoStorage.TransactionalUndoStorage):
    __test__ = False


class PackableStorage_(Remote, PackableStorage.PackableStorage):
    __test__ = False


class PackableUndoStorage_(Remote, PackableStorage.PackableUndoStorage):
    __test__ = False

    def testPackUndoLog(self):
        # As testZEO.FullGenericTests.checkPackUndoLog: the test is run
        # without its time_monotonically_increases decorator, because a
        # faked client clock cannot move the server's clock.
        PackableStorage.PackableUndoStorage.testPackUndoLog.__wrapped__(self)


class IteratorStorage_(Remote, IteratorStorage.IteratorStorage):
    __test__ = False


class ExtendedIteratorStorage_(
        Remote, IteratorStorage.ExtendedIteratorStorage):
    # iterator(start, stop); ZODB runs it on FileStorage, ZEO's own suite
    # does not, but ClientStorage supports it.
    __test__ = False


class HistoryStorage_(Remote, HistoryStorage.HistoryStorage):
    __test__ = False


class ConflictResolvingStorage_(
        Remote, ConflictResolution.ConflictResolvingStorage):
    __test__ = False


class ConflictResolvingTransUndoStorage_(
        Remote, ConflictResolution.ConflictResolvingTransUndoStorage):
    __test__ = False
    # A helper this mixin borrows from TransactionalUndoStorage (testZEO
    # composes both into one class).
    _begin_undos_vote = \
        TransactionalUndoStorage.TransactionalUndoStorage._begin_undos_vote


class PersistentStorage_(Remote, PersistentStorage.PersistentStorage):
    __test__ = False


class ReadOnlyStorage_(Remote, ReadOnlyStorage.ReadOnlyStorage):
    __test__ = False


# --- ZEO's client mixins (testZEO's GenericTests / FullGenericTests) -------

class CommitLockVoteTests_(Remote, CommitLockTests.CommitLockVoteTests):
    __test__ = False


class ThreadTests_(Remote, ThreadTests.ThreadTests):
    __test__ = False


class MiscZEOTests_(Remote, testZEO.MiscZEOTests):
    __test__ = False


class TransUndoStorageWithCache_(Remote, Cache.TransUndoStorageWithCache):
    __test__ = False
    # A helper this mixin borrows from TransactionalUndoStorage (testZEO
    # composes both into one class).
    _begin_undos_vote = \
        TransactionalUndoStorage.TransactionalUndoStorage._begin_undos_vote


class IterationTests_(Remote, IterationTests.IterationTests):
    __test__ = False


SUITES = [
    BasicStorage_, Synchronization_, MTStorage_, RevisionStorage_,
    TransactionalUndoStorage_, PackableStorage_, PackableUndoStorage_,
    IteratorStorage_, ExtendedIteratorStorage_, HistoryStorage_,
    ConflictResolvingStorage_, ConflictResolvingTransUndoStorage_,
    PersistentStorage_, ReadOnlyStorage_, CommitLockVoteTests_,
    ThreadTests_, MiscZEOTests_, TransUndoStorageWithCache_,
    IterationTests_,
]

for _suite in SUITES:
    for_targets(globals(), _suite,
                excluded=relstorage_exclusions.excluded(_suite))
