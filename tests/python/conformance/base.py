"""Glue between ZODB's/ZEO's unittest-style storage tests and our servers.

`RemoteStorageCase` is ZEO's own `GenericTestBase` (ZEO/tests/testZEO.py:
a `StorageTestBase` whose `setUp` opens a `ClientStorage` to a server and
whose `tearDown` closes it), except that the server is not started by
ZEO's in-process forker but by our per-test fixture: a fresh cluster of
the test's *target* (see cluster.py), stopped after the test, with the
members' mirror checked in between.

The test bodies are the installed packages' own, unmodified. A suite is a
class `RemoteStorageCase + mixin`; `for_targets()` turns it into one
concrete pytest-collected class per selected target, e.g.
`BasicStorage_runzeo`, `BasicStorage_zeoraid_2`.

pytest collects only `test*` methods; ZEO's mixins name theirs `check*`
(ZEO's runner loads both prefixes). `for_targets()` therefore exposes each
`checkFoo` as `testFoo` (or `test_checkFoo` if `testFoo` exists): the same
function object, only reachable under a second name.
"""

import contextlib
import os
import re
import tempfile
import threading
import unittest

import pytest
from ZEO.ClientStorage import ClientStorage
from ZEO.tests import testZEO
from ZODB.tests import StorageTestBase

from . import mirror
from .cluster import ClusterSet, member_count, member_kinds, \
    selected_targets

# zope.testrunner's test levels: ZODB marks long-running tests level 2
# (@long_test); zope-testrunner, and so ZODB's and ZEO's own CI, skips them
# unless asked (--at-level/--all). So does this suite, unless
# ZEORAID_CONFORMANCE_LEVEL is raised (e.g. to 2).
LEVEL = int(os.environ.get("ZEORAID_CONFORMANCE_LEVEL", "1"))

# The watchdog: a test still running after this many seconds gets its
# servers stopped, so that clients waiting on them fail instead of
# waiting out their own (long) timeouts; the test then errors.
# The longest test takes about 11 s on runzeo (30 s for the level-2 one).
TEST_TIMEOUT = float(os.environ.get("ZEORAID_CONFORMANCE_TEST_TIMEOUT",
                                    "120"))

# How long members may take to converge after a test before the mirror
# check fails (a member may still be finishing the last commit or a pack).
MIRROR_TIMEOUT = 15


def check_mirrors(clusters):
    """Every (running) cluster's members hold identical transactions."""
    for cluster in clusters:
        if len(cluster.members) > 1 and not cluster.stopped:
            mirror.wait_identical(cluster.member_addrs, MIRROR_TIMEOUT,
                                  cluster.member_storage_kinds)


def run_case(case, layer=None):
    """Run one unittest case (a doctest, or a TestCase instance from a
    suite that ZODB/ZEO build with a factory) inside the current pytest
    test, with the per-test part of its zope.testrunner layer, and turn
    its outcome into pytest's."""
    result = unittest.TestResult()
    if layer is not None:
        layer.testSetUp()
    try:
        case.run(result)
    finally:
        if layer is not None:
            layer.testTearDown()
    problems = result.errors + result.failures
    if problems:
        pytest.fail("\n".join(text for _, text in problems), pytrace=False)
    if result.skipped:
        pytest.skip(result.skipped[0][1])
    assert result.testsRun == 1


@contextlib.contextmanager
def clusters_for_test(request, target, dir):
    """The per-test server lifecycle shared by the fixtures: yields an
    empty ClusterSet that the test starts clusters in; after the test,
    checks every cluster's mirror (also after a failed test: a difference
    is worth knowing either way), then stops every process (always, also
    when setup, the test or the check failed)."""
    clusters = ClusterSet(target, dir)
    watchdog = threading.Timer(TEST_TIMEOUT, clusters.expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        yield clusters
        watchdog.cancel()
        if clusters.expired:
            raise AssertionError(
                f"the test ran longer than {TEST_TIMEOUT}s "
                f"(ZEORAID_CONFORMANCE_TEST_TIMEOUT); its servers were "
                f"stopped")
        check_mirrors(clusters)
    finally:
        watchdog.cancel()
        try:
            failed = any(getattr(request.node, f"rep_{when}", None) is not None
                         and getattr(request.node, f"rep_{when}").failed
                         for when in ("setup", "call"))
            if failed:
                print(f"server logs of {request.node.nodeid}:\n"
                      f"{clusters.describe_logs()}")
        finally:
            clusters.stop()


class ConformanceFixture:
    """Mixin for unittest-style suites: each test gets `self.clusters`, a
    fresh ClusterSet of the class's target, in which setUp starts the
    clusters it needs."""

    __test__ = False   # only the per-target subclasses are collected
    target = None      # set by for_targets()
    clusters = None    # a ClusterSet, set by the fixture for each test

    @pytest.fixture(autouse=True)
    def _conformance_clusters(self, request, tmp_path):
        with clusters_for_test(request, self.target, tmp_path) as clusters:
            self.clusters = clusters
            yield


class RemoteStorageCase(ConformanceFixture, testZEO.GenericTestBase):
    """testZEO.GenericTestBase with the server from our fixture."""

    __test__ = False
    cluster = None     # the cluster self._storage talks to

    # Options for the main cluster's FileStorages (ZConfig lines), and
    # for its runzeo servers' <zeo> sections.
    storage_options = ""
    zeo_options = ""

    def setUp(self):
        # As GenericTestBase.setUp, but the server comes from the fixture.
        StorageTestBase.StorageTestBase.setUp(self)
        self._servers = []  # GenericTestBase.tearDown stops these: none
        self.cluster = self.clusters.start(
            storage_options=self.storage_options,
            zeo_options=self.zeo_options)
        if self.shared_blob_dir:
            # The client writes into the server's own blob directory.
            self.blob_cache_dir = self.cluster.blob_dir
        elif not self.blob_cache_dir:
            self.blob_cache_dir = tempfile.mkdtemp(
                'blob_cache', dir=os.path.abspath(os.getcwd()))
        # Where tests look for the server's copy of a blob.
        self.blobdir = self.cluster.blob_dir
        self._storage = self._wrap_client(
            ClientStorage(
                self.cluster.addr, '1', cache_size=20000000,
                min_disconnect_poll=0.5, wait=1,
                wait_timeout=60, blob_dir=self.blob_cache_dir,
                shared_blob_dir=self.shared_blob_dir,
                **self._client_options()),
        )
        self._storage.registerDB(testZEO.DummyDB())


def _level_skips(cls, aliases):
    skips = {}
    names = [n for n in dir(cls) if n.startswith("test")] + list(aliases)
    for name in names:
        func = aliases.get(name) or getattr(cls, name)
        level = getattr(func, "level", 1)
        if callable(func) and isinstance(level, int) and level > LEVEL:
            skips[name] = unittest.skip(
                f"long test (zope.testrunner level {level}); run it with "
                f"ZEORAID_CONFORMANCE_LEVEL={level}")(func)
    return skips


def _check_aliases(cls):
    aliases = {}
    for name in dir(cls):
        if not name.startswith("check"):
            continue
        if not callable(getattr(cls, name)):
            continue
        alias = "test" + name[len("check"):]
        if hasattr(cls, alias):
            alias = "test_" + name
        aliases[alias] = getattr(cls, name)
    return aliases


def for_targets(namespace, suite, applies=None, reason=None, excluded=None,
                targets=None):
    """Put one concrete subclass of `suite` per selected target into
    `namespace` (a test module's globals()), named e.g.
    `BasicStorage_zeoraid_2`.

    `applies`: a predicate on the target name, for suites that cannot run
    against every target; on the others the class is skipped with
    `reason` (see README.md), so that the gap shows in every run.
    `excluded`: the same for single tests, {method name: (applies,
    reason)}; the method is skipped (under every name pytest sees) on the
    targets where applies(target) is false. `targets`: these instead of
    the selected targets."""
    made = []
    for target in selected_targets() if targets is None else targets:
        suffix = re.sub(r"\W", "_", target)  # zeoraid-fs+pg: zeoraid_fs_pg
        name = f"{suite.__name__.rstrip('_')}_{suffix}"
        attrs = {"__test__": True, "target": target,
                 "__module__": namespace["__name__"],
                 "__qualname__": name}
        aliases = _check_aliases(suite)
        attrs.update(aliases)
        attrs.update(_level_skips(suite, aliases))
        for method, (test_applies, why) in (excluded or {}).items():
            func = getattr(suite, method)
            if not test_applies(target):
                for alias in [method] + [a for a, f in aliases.items()
                                         if f is func]:
                    attrs[alias] = unittest.skip(why)(func)
        cls = type(suite)(name, (suite,), attrs)
        if applies is not None and not applies(target):
            cls = unittest.skip(reason)(cls)
        namespace[name] = cls
        made.append(cls)
    return made


def is_zeoraid(target):
    return member_count(target) > 0


# test_connection.py runs on a target mixing storage kinds (zeoraid-fs+pg,
# ...) only when ZEORAID_CONFORMANCE_MIXED=all: it takes long, and what
# it does to zeoraid (server lifecycle) does not depend on the members'
# storage (README.md, Runtime).
MIXED_ALL = os.environ.get("ZEORAID_CONFORMANCE_MIXED", "") == "all"


def runs_by_default(target):
    """False for a target mixing storage kinds, unless
    ZEORAID_CONFORMANCE_MIXED=all."""
    return MIXED_ALL or len(set(member_kinds(target))) < 2
