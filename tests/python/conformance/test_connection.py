"""ZEO's connection tests: clients across server stops, restarts, moves
and reconfigurations.

ZEO/tests/ConnectionTests.py (as ZEO/tests/testConnection.py runs it for
FileStorage), testZEO's ZRPCConnectionTests and ClientConflictResolutionTests,
their test bodies unmodified, and the doctests of ZEO that stop, start or
configure servers (DOCTEST_CASES). In
them, a *server* serves the data of a FileStorage *path*; tests start it
(`startServer(create, index, read_only, ro_svr, keep, path)`,
`start_server(...)`, `ZEO.server(...)`), stop it (`shutdownServer(index)`,
`stop_server`, the returned stop function) and start it again, on the
same address or another one, with the data kept or not. `ZEOServers`
maps that onto the test's target:

- On `runzeo` a server is one runzeo; stopping it stops the process, its
  data stay on disk; starting it again starts a runzeo on that data.
- On `zeoraid-N` a server is zeoraid in front of its N members.
  Stopping it stops zeoraid; the members go on running with their data
  (each a full copy). Starting it again starts zeoraid with the same
  configuration and members, on the address asked for.
- `keep` false: when such a server stops, ZEO removes its storage files
  (FileStorage.cleanup), so the next server on that path starts empty.
  Here the cluster holding the data is mirror-checked and stopped, and
  the next server on the path is a fresh cluster. `create` true on a path
  that still has data (ZEO: `create yes`, the file truncated) does the
  same.
- ZEO server options: `invalidation-queue-size` and `invalidation-age`
  decide what a client's quick verification (`getInvalidations`) finds.
  zeoraid forwards getInvalidations to one member (ARCHITECTURE.md,
  4.2), so on zeoraid they are set on the members; a server started
  again with other values restarts the members with them (data kept).
  So is `client-conflict-resolution` (ClientConflictResolutionTests):
  zeoraid passes on its members' conflicts and replays the client's
  resolved transaction (ARCHITECTURE.md). `msgpack` is zeoraid's own
  `msgpack = true`. `read-only` (a read-only server) and
  `transaction-timeout` have no counterpart in zeoraid, and neither has a
  read-only FileStorage (`read_only`): zeoraid registers with its members
  read-write, which read-only members refuse. Tests needing them run on
  `runzeo` only (the `excluded` tests below; README.md).
- A ZEO server whose storage is a <zeoclient> of the server under test
  (zeo-fan-out.test) is a plain runzeo on every target.
- The server's log (`server.log` in the test's directory, which
  TimeoutTests and `dont_log_poskeyerrors_on_server` read) is a symlink
  to the front's log: runzeo's, or zeoraid's.

Clients are ZEO's own (TestClientStorage with its persistent caches in
the test's directory, ZEO.DB, ...).
"""

import doctest
import os
import re

import pytest
import ZEO
import ZODB.tests.util
import zope.testing.setupstack
from ZEO.tests import ConnectionTests
from ZEO.tests import IterationTests
from ZEO.tests import forker
from ZEO.tests import testConnection
from ZEO.tests import testZEO
from ZODB.tests import ConflictResolution
from zope.testing import renormalizing

from .base import ConformanceFixture, RemoteStorageCase, check_mirrors, \
    for_targets, is_zeoraid, run_case, runs_by_default
from .cluster import free_port, selected_targets
from .test_zeo_doctests import PATTERNS


def connection_targets():
    """The selected targets, but of the zeoraid ones only the first
    (default: runzeo, zeoraid-2), and a target mixing storage kinds only
    with ZEORAID_CONFORMANCE_MIXED=all. What these tests do to zeoraid
    (stop it, start it again, move it, restart its members) is the same
    in front of 2 or 3 members, and each zeoraid target costs about a
    minute; run another one with ZEORAID_CONFORMANCE_TARGETS=zeoraid-3."""
    selected = selected_targets()
    zeoraid = [t for t in selected if is_zeoraid(t) and runs_by_default(t)]
    return [t for t in selected if not is_zeoraid(t)] + zeoraid[:1]


TARGETS = connection_targets()

# -- the servers of ZEO's tests on our clusters ------------------------------

# ZEO server options whose effect a client meets through a member when
# the target is zeoraid (getInvalidations is answered by one member).
MEMBER_OPTIONS = ("invalidation-queue-size", "invalidation-age")
# ZEO server options zeoraid offers itself, as zeoraid.toml lines.
FRONT_OPTIONS = {"msgpack": lambda v: f"msgpack = {str(bool(v)).lower()}"}

RO_SERVER = (
    "a read-only server (ZEO server option `read-only`): zeoraid has no "
    "read-only mode to configure (config/reference.toml; fail_mode "
    "\"read-only\" is only how a failed array serves), and read-only "
    "members refuse zeoraid's read-write registration (zeoraid.log: "
    "`register refused: ReadOnlyError`), leaving no optimal member")
RO_STORAGE = (
    "a server whose FileStorage is read-only (startServer(read_only=1)): "
    "zeoraid registers with its members read-write, which members with a "
    "read-only storage refuse (zeoraid.log: `register refused: "
    "ReadOnlyError`), leaving no optimal member")
TXN_TIMEOUT = (
    "the ZEO server option `transaction-timeout` (a client holding the "
    "commit lock longer is disconnected): zeoraid has none (its [timeouts] "
    "bound its own calls to members, config/reference.toml)")
MAPPING_HISTORY = (
    "expects MappingStorage's answer to history(None, None) (POSKeyError, "
    "not logged); testZEO's server for it is a MappingStorage, ours are "
    "FileStorages, whose history(None) fails an assertion in fsIndex "
    "instead (logged as an error): the test depends on the storage type")


class Unsupported(NotImplementedError):
    pass


class ZEOServers:
    """What ZEO's tests call servers, on the clusters of one test.

    `start(path, ...)` serves the data of `path` (a FileStorage path in
    ZEO's tests; here a cluster) on an address and returns the address
    and a stop function. See the module docstring for the mapping."""

    def __init__(self, clusters):
        self.clusters = clusters
        self.zeoraid = is_zeoraid(clusters.target)
        self.data = {}   # path -> the running cluster holding its data
        self.started = 0

    def _configs(self, options, read_only_storage):
        """(<zeo> lines of the members, zeoraid.toml lines, <filestorage>
        lines) for ZEO server options {name: value}."""
        zeo, front = [], []
        for name, value in sorted(options.items()):
            if not self.zeoraid or name in MEMBER_OPTIONS:
                zeo.append(f"{name} {value}")
            elif name in FRONT_OPTIONS:
                front.append(FRONT_OPTIONS[name](value))
            elif name == "read-only":
                raise Unsupported(RO_SERVER)
            elif name == "transaction-timeout":
                raise Unsupported(TXN_TIMEOUT)
            else:
                raise Unsupported(f"ZEO server option {name} on zeoraid")
        if read_only_storage and self.zeoraid:
            raise Unsupported(RO_STORAGE)
        storage = "read-only true" if read_only_storage else ""
        return "\n  ".join(zeo), "\n".join(front), storage

    def start(self, path, addr=None, create=False, keep=True, options=None,
              read_only_storage=False, log=None):
        """Start the server of `path` on addr (None or port 0: a free
        port). create: the data start empty; keep: the data outlive the
        server's stop; options: ZEO server options {name: value};
        read_only_storage: the FileStorage opened read-only; log: a file
        name (in the test's directory) to link to the server's log."""
        zeo, front, storage = self._configs(options or {}, read_only_storage)
        if addr is not None and not addr[1]:
            addr = None
        cluster = self.data.get(path)
        if cluster is not None and cluster.front_running:
            raise RuntimeError(f"{path} is served already (its FileStorage "
                               f"would be locked)")
        if cluster is not None and create:
            self._discard(path)
            cluster = None
        if cluster is None:
            self.started += 1
            name = f"s{self.started}-" + re.sub(r"[^\w.-]", "_", path)
            cluster = self.clusters.start(
                name, storage_options=storage, zeo_options=zeo,
                zeoraid_options=front, addr=addr)
            self.data[path] = cluster
        else:
            if front != cluster.zeoraid_options:
                raise Unsupported("other zeoraid options for a restart")
            if (zeo, storage) != (cluster.zeo_options,
                                  cluster.storage_options):
                cluster.reconfigure_members(zeo, storage)
            # ZEO's port 0 is a new port, also for a server started again.
            cluster.start_front(addr or ("127.0.0.1", free_port()))
        if log:
            _link_log(log, (cluster.front or cluster.members[0]).log)
        done = []

        def stop():
            if not done:
                done.append(True)
                self._stop(path, cluster, keep)

        return cluster.addr, stop

    def start_zeoclient_server(self, storage_conf, addr=None, log=None):
        """A ZEO server whose storage is a <zeoclient> (of the target): a
        plain runzeo on every target. Returns its address and stop."""
        self.started += 1
        cluster = self.clusters.start(
            f"s{self.started}-zeoclient", target="runzeo",
            storage_conf=storage_conf, addr=addr if addr[1] else None)
        if log:
            _link_log(log, cluster.members[0].log)
        return cluster.addr, cluster.stop

    def _stop(self, path, cluster, keep):
        if cluster.stopped:
            return
        cluster.stop_front()
        if not keep:
            self._discard(path)

    def _discard(self, path):
        """ZEO's FileStorage.cleanup: the data of path are gone (the
        cluster holding them is mirror-checked, then stopped)."""
        cluster = self.data.pop(path)
        check_mirrors([cluster])
        cluster.stop()


def _link_log(name, log):
    """The server's log under the name a test reads it by."""
    if os.path.lexists(name):
        os.remove(name)
    os.symlink(log, name)


# -- ConnectionTests.CommonSetupTearDown's servers ---------------------------

class ServerLifecycle(ConformanceFixture):
    """CommonSetupTearDown (ZEO/tests/ConnectionTests.py) with its
    startServer on ZEOServers; everything else of it unchanged
    (openClientStorage, shutdownServer, pollUp/pollDown, tearDown)."""

    __test__ = False
    servers = None

    def setUp(self):
        self.servers = ZEOServers(self.clusters)
        super().setUp()

    def startServer(self, create=1, index=0, read_only=0, ro_svr=0,
                    keep=None, path=None, **kw):
        # The arguments as CommonSetupTearDown.startServer (and its
        # getConfig/getServerConfig) turn them into a server.
        if kw:
            raise Unsupported(f"startServer options {sorted(kw)}")
        if path is None:
            path = "%s.%d" % (self.file, index)
        if keep is None:
            keep = self.keep
        options = {}
        if ro_svr:
            options["read-only"] = "true"
        if self.invq:
            options["invalidation-queue-size"] = self.invq
        if self.timeout:
            options["transaction-timeout"] = self.timeout
        addr, stop = self.servers.start(
            path, self.addr[index], create, keep, options,
            read_only_storage=bool(read_only), log="server.log")
        self._servers.append(stop)
        self.addr[index] = addr


class ConnectionTests_(ServerLifecycle, ConnectionTests.ConnectionTests):
    # testConnection.FileStorageConnectionTests without its InvalidationTests
    # (those are in test_invalidation.py).
    __test__ = False


class ReconnectionTests_(ServerLifecycle, ConnectionTests.ReconnectionTests):
    __test__ = False


class InvqTests_(ServerLifecycle, ConnectionTests.InvqTests):
    __test__ = False


class TimeoutTests_(ServerLifecycle, ConnectionTests.TimeoutTests):
    __test__ = False

    def setUp(self):
        if is_zeoraid(self.target):
            # No transaction timeout (zeoraid has none): what runs here,
            # checkTimeoutOnAbort(NoLock), aborts at once and does not wait
            # for one; the tests that do are excluded below.
            self.timeout = None
        super().setUp()


class ZRPCConnectionTests_(ServerLifecycle, testZEO.ZRPCConnectionTests):
    # testZEO's server here has a MappingStorage; ours a FileStorage. Only
    # checkExceptionLogsAtError depends on that (excluded below).
    __test__ = False


def runzeo_only(reason):
    return (lambda target: not is_zeoraid(target), reason)


for_targets(globals(), ConnectionTests_, targets=TARGETS, excluded={
    "checkReadOnlyServer": runzeo_only(RO_SERVER),
    "checkReadOnlyFallbackReadOnlyServer": runzeo_only(RO_SERVER),
})
for_targets(globals(), ReconnectionTests_, targets=TARGETS, excluded={
    name: runzeo_only(RO_STORAGE) for name in (
        "checkReadOnlyStorage", "checkReadOnlyFallbackReadOnlyStorage",
        "checkReconnectReadOnly", "checkReconnectFallback",
        "checkReconnectUpgrade", "checkReconnectSwitch")
})
for_targets(globals(), InvqTests_, targets=TARGETS)
for_targets(globals(), TimeoutTests_, targets=TARGETS, excluded={
    "checkTimeout": runzeo_only(TXN_TIMEOUT),
    "checkTimeoutAfterVote": runzeo_only(TXN_TIMEOUT),
})
for_targets(globals(), ZRPCConnectionTests_, targets=TARGETS, excluded={
    "checkExceptionLogsAtError": (lambda target: False, MAPPING_HISTORY),
})


# -- a server option: client-side conflict resolution ------------------------

class ClientConflictResolutionTests_(
        RemoteStorageCase, ConflictResolution.ConflictResolvingStorage):
    """testZEO.ClientConflictResolutionTests: ConflictResolvingStorage
    against a server with `client-conflict-resolution true` (the server
    returns conflicts from vote; the client resolves them, stores again
    and votes again). On zeoraid the members have the option: zeoraid
    passes their conflicts on and replays the client's buffer on its
    second vote (ARCHITECTURE.md, "Client-side conflict resolution").
    testZEO's server has a MappingStorage; ours a FileStorage."""
    __test__ = False
    zeo_options = "client-conflict-resolution true"


for_targets(globals(), ClientConflictResolutionTests_, targets=TARGETS)


# -- ZEO's doctests that stop, restart or configure servers -----------------

# testZEO's module doctests run here (the others are in test_zeo_doctests.py
# or listed in README.md).
TESTZEO_DOCTESTS = [
    "dont_log_poskeyerrors_on_server",
    "client_labels",
    "test_server_status",
    "test_ruok",
    "test_runzeo_msgpack_support",
]
# ZEO's doctest files run here.
FILE_DOCTESTS = [
    "drop_cache_rather_than_verify.txt",
    "invalidation-age.txt",
    "new_addr.test",
    "zeo-fan-out.test",
]

RUNZEO_LOG_FORMAT = (
    "reads the server's log for runzeo's own log lines (`INFO "
    "ZEO.StorageServer (test-label-1 ...`); zeoraid logs in its own format")
SERVER_STATUS = (
    "exact server_status()/ruok counters of a server with the ZEO option "
    "`transaction-timeout` ('timeout-thread-is-alive': True): " + TXN_TIMEOUT)

EXCLUDED_DOCTESTS = {
    "client_labels": runzeo_only(RUNZEO_LOG_FORMAT),
    "test_server_status": runzeo_only(SERVER_STATUS),
    "test_ruok": runzeo_only(SERVER_STATUS),
}

# A plain FileStorage as ZEO's doctests spell it, with its path (and a
# blob directory: every server here has one of its own).
FILESTORAGE_CONF = re.compile(
    r"\s*<filestorage( 1)?>\s*path (?P<path>\S+)\s*(blob-dir \S+\s*)?"
    r"</filestorage>\s*$")
# A ZEO client storage (a server that is a client of another one).
ZEOCLIENT_CONF = re.compile(r"\s*<zeoclient>.*</zeoclient>\s*$", re.S)

_running = {}


def _options(zeo_conf):
    """ZEO server options {name: value} from start_server's zeo_conf."""
    if zeo_conf is None:
        return {}
    if not isinstance(zeo_conf, dict):
        raise Unsupported(f"zeo_conf {zeo_conf!r}")
    return {k.replace("_", "-"): v for k, v in zeo_conf.items()}


def zeo_server(path=None, blob_dir=None, storage_conf=None, zeo_conf=None,
               port=0, threaded=True, **kw):
    """ZEO.server (a server that keeps its data), on ZEOServers. Without
    a path ZEO serves a MappingStorage: here a FileStorage of its own."""
    if storage_conf is not None or kw:
        raise Unsupported("ZEO.server with a storage_conf or options")
    servers = _running["servers"]
    if path is None:
        path = f"(mappingstorage {servers.started + 1})"
    return servers.start(path, addr=("127.0.0.1", port), keep=True,
                         options=_options(zeo_conf))


def setUp(test):
    """forker.setUp, with start_server on ZEOServers."""
    ZODB.tests.util.setUp(test)
    servers = _running["servers"]
    stops = []

    def start_server(storage_conf=None, zeo_conf=None, port=None,
                     keep=False, addr=None, path='Data.fs', protocol=None,
                     blob_dir=None, suicide=True, debug=False, log=None,
                     **kw):
        # forker.setUp's start_server and start_zeo_server's arguments.
        if protocol or kw:
            raise Unsupported(f"start_server protocol/options {kw}")
        if port is None:
            port = 0 if addr is None else addr[1]
        elif addr is not None:
            raise TypeError("Can't specify port and addr")
        if not isinstance(port, int):
            raise Unsupported(f"a server on {port!r}")
        if storage_conf is not None and ZEOCLIENT_CONF.match(storage_conf):
            address, stop = servers.start_zeoclient_server(
                storage_conf, ("127.0.0.1", port), log)
            stops.append(stop)
            return address, stop
        if storage_conf is not None:
            match = FILESTORAGE_CONF.match(storage_conf)
            if not match:
                raise Unsupported(f"storage {storage_conf!r}")
            path = match.group("path")
        # blob_dir: every server here has a blob directory of its own.
        address, stop = servers.start(
            path, ("127.0.0.1", port), keep=keep, options=_options(zeo_conf),
            log=log)
        stops.append(stop)
        return address, stop

    def stop_server(stop):
        stop()
        stops.remove(stop)

    def cleanup_servers():
        for stop in list(stops):
            stop()

    zope.testing.setupstack.register(test, cleanup_servers)
    test.globs.update(
        start_server=start_server, stop_server=stop_server,
        wait_until=forker.wait_until, wait_connected=forker.wait_connected,
        wait_disconnected=forker.wait_disconnected)


def _doctest_cases():
    tearDown = zope.testing.setupstack.tearDown
    checker = renormalizing.RENormalizing(PATTERNS)
    suites = [
        # testConnection.test_suite: its doctest has no checker.
        doctest.DocTestSuite(testConnection, setUp=setUp, tearDown=tearDown),
        # testZEO.test_suite: IterationTests with its own checker.
        doctest.DocTestSuite(
            IterationTests, setUp=setUp, tearDown=tearDown,
            checker=renormalizing.RENormalizing((
                (re.compile("ZEO.Exceptions.ClientDisconnected"),
                 "ClientDisconnected"),))),
        doctest.DocTestSuite(testZEO, setUp=setUp, tearDown=tearDown,
                             checker=checker),
        doctest.DocFileSuite(*FILE_DOCTESTS, package="ZEO.tests",
                             setUp=setUp, tearDown=tearDown,
                             checker=checker),
    ]
    wanted = {"invalidations_while_connecting",
              "iterator_sane_after_reconnect", *TESTZEO_DOCTESTS,
              *(name.replace(".", "_")
                for name in FILE_DOCTESTS)}
    cases = {}
    for suite in suites:
        for case in suite:
            name = case.id().split(".")[-1]
            if name in wanted:
                cases[name] = case
    missing = wanted - set(cases)
    assert not missing, f"doctests not found: {missing}"
    return cases


DOCTEST_CASES = _doctest_cases()


@pytest.mark.parametrize("name", sorted(DOCTEST_CASES))
@pytest.mark.parametrize("target", TARGETS)
def test_zeo_doctest(clusters, target, name, monkeypatch):
    applies, reason = EXCLUDED_DOCTESTS.get(name, (None, None))
    if applies is not None and not applies(target):
        pytest.skip(reason)
    _running["servers"] = ZEOServers(clusters)
    monkeypatch.setattr(ZEO, "server", zeo_server)
    try:
        run_case(DOCTEST_CASES[name])
    finally:
        _running.clear()
