"""Failure semantics of zeoraid against real runzeo members and
real ZEO clients (ClientStorage / ZODB.DB), through the daemon binary.

Faults are real: a member is killed with SIGKILL (its sockets close at
once), frozen with SIGSTOP (its sockets stay open and nothing answers, so
only zeoraid's deadlines notice) and started again on the same port with
the same data. What is checked:

  test_kill_members_one_by_one_under_load
      kill -9 one member of three under 4 concurrent writers: no writer
      sees an error, the member is degraded with a reason, every
      acknowledged commit is on each remaining member (loadSerial at its
      tid gives the value written) and the remaining members are
      identical. A second kill: still serving. The last: fail mode
      "close": every call that reaches zeoraid gets a ClientStorageError
      naming the reason, at once; a new client cannot register. A member
      restarted on its own data: the array stays failed, that member is
      never read from, calls still get the error.
  test_sigstop_member_under_load
      SIGSTOP one member of three under write load with 2 s deadlines:
      the writers' commits go on within the deadline plus slack (so the
      member was left out of the commit path) and see no error, the
      member is degraded; after SIGCONT it reconnects and stays degraded,
      and its own load counter shows no read reaches it.
  test_read_only_coop_after_two_of_three_fail
      fail_mode "read-only" + cluster_mode "coop": two of three killed,
      the array has failed; reads go on, writes get ReadOnlyError.
  test_read_only_single_reads_from_a_restarted_member
      fail_mode "read-only" + "single", 2 members both killed with no
      commit in between: a read gets an error at once (no member to read
      from); one restarted: reads come from it again, writes get
      ReadOnlyError, the array stays failed.
  test_stopped_client_after_its_vote
      a ClientStorage votes and SIGSTOPs itself: another client's commit
      completes within [timeouts] transaction (2 s) plus slack, the
      members stay optimal and identical; after SIGCONT the stopped
      client's tpc_finish raises StorageTransactionError naming the
      setting.
  test_close_coop_fails_when_the_majority_is_lost
      fail_mode "close" + cluster_mode "coop", 3 members: one killed,
      writes go on; a second killed: the array has failed, calls get the
      error at once, nothing hangs.

Every wait is bounded and polls for its condition; a failure carries the
tail of zeoraid's log and the array status (`with_logs`).
"""

import functools
import json
import logging
import signal
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.request

import pytest
import transaction
import ZODB
from ZEO.ClientStorage import ClientStorage
from ZEO.Exceptions import ClientDisconnected, ClientStorageError
from ZODB.POSException import ReadOnlyError
from ZODB.tests.MinPO import MinPO

from conformance import mirror, workload
from conformance.cluster import ClusterSet, zeoprobe

STORAGE = "1"

# The workload: small, so the file runs in well under two minutes.
WRITERS = 4
COMMITS = 30               # per writer
FAULT_AFTER = 20           # acknowledged commits before the fault
WORKLOAD_TIMEOUT = 90      # seconds for one whole workload

# Bounded waits (seconds).
STATUS_TIMEOUT = 15        # zeoraid's status reaches an expected state
CONNECT_TIMEOUT = 20       # a ClientStorage connects (wait_timeout)
ERROR_WITHIN = 10          # a call on a failed array gets its error
HTTP_TIMEOUT = 20          # one request to the HTTP endpoint
CALL_TIMEOUT = 30          # any other client operation through zeoraid
STAYS_FOR = 3              # how long a state is watched to stay as it is
SHORT_DEADLINE = 2         # [timeouts] call / commit of the SIGSTOP test
DEADLINE_SLACK = 4         # detection may take this much longer

# Members killed on purpose must come back fast when they are restarted,
# and never be parked; slow-member detection is switched off so that a
# stall of this small machine cannot degrade a member the test did not
# touch (it is not what these tests are about).
BASE_OPTIONS = """\
[restart]
backoff_initial = "100ms"
backoff_max = "500ms"
max_restarts = 100000
restart_window = "1s"
park_probe_interval = "500ms"

[slow_member]
enabled = false
"""


def zeoraid_options(cluster_mode="single", fail_mode="close",
                    call="10s", commit="10s", transaction="30s",
                    zeo_admin_calls="status"):
    """zeoraid.toml lines for a test. The 10 s deadlines (the SIGSTOP test
    sets 2 s) are far below the defaults, yet long enough that a busy
    machine never trips them: a kill -9 is noticed at once anyway.
    zeo_admin_calls = "all" lets the test call raid_disable & co. over ZEO."""
    return (f'cluster_mode = "{cluster_mode}"\n'
            f'fail_mode = "{fail_mode}"\n'
            f'zeo_admin_calls = "{zeo_admin_calls}"\n\n'
            f'[timeouts]\ncall = "{call}"\ncommit = "{commit}"\n'
            f'transaction = "{transaction}"\n\n'
            + BASE_OPTIONS)


# -- the cluster and its diagnostics --------------------------------------

def poll(fetch, predicate, what, timeout, shown):
    """Call fetch() every 50 ms until predicate(answer) holds; returns the
    answer. A fetch that fails (the server is busy restarting) counts as not
    yet. Fails after `timeout` seconds, showing the last answer."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = fetch()
        except (OSError, ValueError, AssertionError) as err:
            last = f"({shown} failed: {err!r})"
        else:
            if predicate(last):
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what}; "
                f"last {shown}: {json.dumps(last, indent=1, default=str)}")
        time.sleep(0.05)


class Raid:
    """One zeoraid with its members, for one test; every process is
    stopped after the test (the `raid` fixture)."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.clusterset = None
        self.cluster = None
        self.clients = []

    def start(self, members, **options):
        self.clusterset = ClusterSet(f"zeoraid-{members}", self.tmp_path)
        self.cluster = self.clusterset.start(
            zeoraid_options=zeoraid_options(**options))
        return self.cluster

    @property
    def addr(self):
        return self.cluster.addr

    # clients closed after the test, also when it failed
    def storage(self, **kw):
        kw.setdefault("wait_timeout", CONNECT_TIMEOUT)
        storage = ClientStorage(self.addr, storage=STORAGE, **kw)
        self.clients.append(storage)
        return storage

    def db(self):
        db = bounded(lambda: ZODB.DB(self.storage()), "opening a DB",
                     CONNECT_TIMEOUT + CALL_TIMEOUT)
        self.clients.append(db)
        return db

    def close_clients(self):
        for client in reversed(self.clients):
            try:
                client.close()
            except Exception:
                pass
        self.clients = []

    def stop(self):
        try:
            self.close_clients()
        finally:
            if self.clusterset is not None:
                self.clusterset.stop()

    # -- status -----------------------------------------------------------
    def status(self):
        """zeoraid's array status, from its ruok answer."""
        return zeoprobe.ruok(self.addr, 5.0)[STORAGE]["raid"]

    def member_status(self, name, status=None):
        status = status or self.status()
        for m in status["members"]:
            if m["name"] == name:
                return m
        raise AssertionError(f"no member {name} in the status: {status}")

    def wait_status(self, predicate, what, timeout=STATUS_TIMEOUT):
        """Poll the status until predicate(status) holds; returns it."""
        return poll(self.status, predicate, what, timeout, "status")

    # -- the HTTP endpoint ----------------------------------------------------
    @property
    def conf(self):
        """The zeoraid.toml the cluster runs with."""
        return self.cluster.front.dir / "zeoraid.toml"

    def http_addr(self):
        return tomllib.loads(self.conf.read_text())["http"]["listen"]

    def http(self, method, path):
        """(status code, JSON body) of one request to the endpoint."""
        request = urllib.request.Request(
            f"http://{self.http_addr()}{path}", method=method,
            data=b"" if method == "POST" else None)
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def member_loads(self, name):
        """The member's own count of loads (runzeo's ruok, asked
        directly, not through zeoraid)."""
        member = self.cluster.member(name)
        return zeoprobe.ruok(member.addr, 5.0)[STORAGE]["loads"]

    def diagnostics(self, lines=80):
        """The array status, zeoraid's log tail (without the sessions of
        the test's own status probes) and the members' log tails."""
        parts = []
        cluster = self.cluster
        if cluster is None:
            return "(no cluster started)"
        if cluster.front is not None:
            try:
                parts.append(f"array status: {self.status()}")
            except Exception as err:
                parts.append(f"array status: ruok failed: {err!r}")
            log = [line for line in
                   cluster.front.log_tail(100000).splitlines()
                   if not _log_noise(line)]
            parts.append(f"--- zeoraid log {cluster.front.log} (last "
                         f"{lines} lines; status probes and failed "
                         f"reconnect attempts left out):")
            parts += log[-lines:]
        for m in cluster.members:
            tail = [line for line in m.log_tail(40).splitlines()
                    if line.strip() != "------"]
            parts.append(f"--- member {m.name} ({m.address}) log {m.log}:")
            parts += tail[-12:]
        return "\n".join(parts)


def _log_noise(line):
    """zeoraid log lines of the test's own ruok probes, and of reconnect
    attempts to a member that is down (two lines every half second)."""
    return ("ruok answered" in line
            or "INFO client connected" in line
            or "from: backing-off, to: connecting" in line
            or ("to: backing-off" in line and "Connection refused" in line))


@pytest.fixture
def raid(tmp_path):
    r = Raid(tmp_path)
    try:
        yield r
    finally:
        r.stop()


def with_logs(test):
    """A failing test's error carries zeoraid's status and log tails."""
    @functools.wraps(test)
    def run(*args, raid, **kwargs):
        try:
            return test(*args, raid=raid, **kwargs)
        except Exception as err:
            what = str(err) if isinstance(err, AssertionError) \
                else f"{type(err).__name__}: {err}"
            raise AssertionError(
                f"{what}\n\n--- zeoraid diagnostics ---\n"
                f"{raid.diagnostics()}") from err
    return run


def degraded(name):
    """Predicate: member `name` is degraded."""
    def check(status):
        return any(m["name"] == name and m["state"] == "degraded"
                   for m in status["members"])
    return check


def states(status):
    return {m["name"]: m["state"] for m in status["members"]}


# -- what clients see -----------------------------------------------------

def bounded(call, what, timeout=CALL_TIMEOUT):
    """call() in a thread of its own, waited for at most timeout seconds:
    a ZEO client waits for a reply without any limit once it is
    connected, so a call zeoraid never answers would hang the test. Its
    result or exception is passed on; a hang fails the test (the thread
    is left behind and ends when the servers are stopped)."""
    outcome = {}

    def run():
        try:
            outcome["result"] = call()
        except BaseException as err:
            outcome["error"] = err

    thread = threading.Thread(target=run, name=f"bounded: {what}",
                              daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise AssertionError(f"{what}: no answer within {timeout}s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")


def expect_unavailable(call, reason, what):
    """call() must raise the ClientStorageError zeoraid sends once the
    array has failed in close mode (ZEO raises it as
    ServerException('ZEO.Exceptions.ClientStorageError', (reason,)))
    within ERROR_WITHIN seconds."""
    started = time.monotonic()
    with pytest.raises(ClientStorageError) as info:
        bounded(call, what, ERROR_WITHIN)
    elapsed = time.monotonic() - started
    err = info.value
    print(f"{what}: {err!r} after {elapsed * 1000:.0f} ms")
    assert elapsed < ERROR_WITHIN, f"{what}: error after {elapsed:.1f}s"
    assert not isinstance(err, ClientDisconnected), (
        f"{what}: the client was disconnected instead of told: {err!r}")
    assert err.args[:1] == ("ZEO.Exceptions.ClientStorageError",), (
        f"{what}: {err!r}")
    assert reason in str(err.args[1][0]), (
        f"{what}: {err!r} does not name the reason {reason!r}")
    return elapsed


def expect_read_only(call, what):
    started = time.monotonic()
    with pytest.raises(ReadOnlyError):
        bounded(call, what, ERROR_WITHIN)
    elapsed = time.monotonic() - started
    assert elapsed < ERROR_WITHIN, f"{what}: error after {elapsed:.1f}s"


class RegisterFailures(logging.Handler):
    """Collects the registration failures a ClientStorage logs (it keeps
    retrying and only raises ClientDisconnected at its wait_timeout)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages = []

    def emit(self, record):
        message = record.getMessage()
        if message.startswith("Registration or cache validation failed"):
            self.messages.append(message)


def expect_register_refused(raid, reason):
    """A new ClientStorage cannot register: it gives up at its
    wait_timeout with ClientDisconnected, having been told the reason."""
    logger = logging.getLogger("ZEO.asyncio.client")
    handler = RegisterFailures()
    logger.addHandler(handler)
    started = time.monotonic()
    try:
        with pytest.raises(ClientDisconnected):
            bounded(lambda: ClientStorage(raid.addr, storage=STORAGE,
                                          wait_timeout=2),
                    "a new client registering", ERROR_WITHIN)
    finally:
        logger.removeHandler(handler)
    elapsed = time.monotonic() - started
    assert elapsed < ERROR_WITHIN, f"register: gave up after {elapsed:.1f}s"
    assert handler.messages, "the client logged no registration failure"
    assert all("ZEO.Exceptions.ClientStorageError" in m and reason in m
               for m in handler.messages), handler.messages


def commit_change(db, key, value):
    """Set root[key] = MinPO(value) in a connection of its own; returns
    the tid."""
    return bounded(lambda: _commit_change(db, key, value),
                   f"commit of {key}")


def _commit_change(db, key, value):
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    try:
        root = conn.root()
        if key in root:
            root[key].value = value
        else:
            root[key] = MinPO(value)
        tm.commit()
        return root[key]._p_serial
    finally:
        tm.abort()
        conn.close()


def read_values(raid, keys):
    """{key: root[key].value} read through zeoraid by a fresh client (an
    empty cache: every object is loaded from a member)."""
    return bounded(lambda: _read_values(raid, keys), f"reading {keys}")


def _read_values(raid, keys):
    db = raid.db()
    conn = db.open()
    try:
        root = conn.root()
        return {k: root[k].value for k in keys}
    finally:
        conn.close()
        db.close()


def assert_holds(storage, name, acked):
    """`storage` (a client of member `name`) holds every acknowledged
    commit as written (loadSerial at its tid)."""
    for tid, values in acked:
        for oid, value in values.items():
            data = storage.loadSerial(oid, tid)
            got = workload.record_state(data)["value"]
            assert got == value, (
                f"member {name}: oid {oid.hex()} at tid {tid.hex()} "
                f"holds {got!r}, acknowledged {value!r}")


def check_members_hold(raid, names, acked):
    """Each named member, asked directly, holds every acknowledged commit
    as written, ends at the last one, and they are identical."""
    last = max(tid for tid, _ in acked)
    for name in names:
        member = raid.cluster.member(name)
        storage = ClientStorage(member.addr, storage=STORAGE, read_only=True,
                                wait_timeout=CONNECT_TIMEOUT)
        try:
            assert_holds(storage, name, acked)
            assert storage.lastTransaction() == last, (
                f"member {name} ends at {storage.lastTransaction().hex()}, "
                f"the last acknowledged commit is {last.hex()}")
        finally:
            storage.close()
    mirror.wait_identical([raid.cluster.member(n).addr for n in names],
                          timeout=15)


# -- the tests ------------------------------------------------------------

@with_logs
def test_kill_members_one_by_one_under_load(raid):
    raid.start(3)  # single, close
    assert raid.status()["status"] == "optimal"

    # 1. kill -9 m2 under a concurrent write load.
    load = workload.Workload(raid.addr, WRITERS, COMMITS, WORKLOAD_TIMEOUT,
                             wait_timeout=CONNECT_TIMEOUT)
    load.wait_acked(FAULT_AFTER)
    raid.cluster.kill_member("m2")
    acked = load.finish()

    status = raid.wait_status(degraded("m2"), "m2 degraded")
    assert status["status"] == "degraded", status
    assert status["reason"] is None, status
    assert states(status) == {"m1": "optimal", "m2": "degraded",
                              "m3": "optimal"}, status
    m2 = raid.member_status("m2", status)
    assert m2["kind"] == "failed", m2
    assert m2["reason"], m2
    assert not m2["connected"], m2
    # Commits went on without it: it missed one.
    assert m2["first_missed_tid"] is not None, m2
    print(f"killed m2: {m2['reason']}")

    check_members_hold(raid, ["m1", "m3"], acked)

    # 2. kill m3: one member left, still serving writes and reads.
    db = raid.db()
    raid.cluster.kill_member("m3")
    tid = commit_change(db, "after-m3", "written with m1 alone")
    status = raid.wait_status(degraded("m3"), "m3 degraded")
    assert status["status"] == "degraded", status
    assert states(status) == {"m1": "optimal", "m2": "degraded",
                              "m3": "degraded"}, status
    assert read_values(raid, ["after-m3", "shared"]) == {
        "after-m3": "written with m1 alone", "shared": len(acked)}
    assert tid > acked[-1][0]

    # A client connected before the array fails, with a transaction's
    # object loaded, for the calls afterwards.
    storage = raid.storage()
    conn = db.open(transaction.TransactionManager())
    oid = conn.root()["after-m3"]._p_oid
    conn.root()["after-m3"].value = "never committed"

    # 3. kill m1, the last member: fail mode "close".
    raid.cluster.kill_member("m1")
    failed_since = time.monotonic()
    status = raid.wait_status(lambda s: s["status"] == "failed",
                              "the array failed", timeout=ERROR_WITHIN)
    reason = status["reason"]
    assert reason.startswith("no optimal member left: the array has failed"), \
        status
    # m1 still holds every acknowledged transaction: the array waits for it.
    assert "waiting for m1 " in reason, status
    assert status["fail_mode"] == "close", status
    assert all(m["state"] == "degraded" and m["kind"] == "failed"
               and m["reason"] for m in status["members"]), status
    assert time.monotonic() - failed_since < ERROR_WITHIN

    def close_mode_errors(what):
        expect_unavailable(storage.ping, reason, f"{what}: ping")
        expect_unavailable(storage.server_status, reason,
                           f"{what}: server_status")
        expect_unavailable(lambda: storage.loadSerial(oid, tid), reason,
                           f"{what}: loadSerial")
        expect_unavailable(lambda: storage.loadBefore(oid, tid), reason,
                           f"{what}: loadBefore")
        # A write is refused at its vote, and the client can go on.
        expect_unavailable(conn.transaction_manager.commit, reason,
                           f"{what}: commit")
        conn.transaction_manager.abort()
        conn.root()["after-m3"].value = "never committed"
        expect_register_refused(raid, reason)

    close_mode_errors("after the last member died")

    # 4. Start m1 again (same port, same data). No commit was acknowledged
    # since it was lost (the votes above were refused), so it still holds
    # every acknowledged transaction: it is optimal again as soon as it
    # reconnects, with no copy and no restart of zeoraid. m2 and m3 missed
    # commits and stay degraded.
    raid.cluster.restart_member("m1")
    status = raid.wait_status(lambda s: s["status"] != "failed",
                              "m1 optimal again")
    assert states(status) == {"m1": "optimal", "m2": "degraded",
                              "m3": "degraded"}, status
    assert status["reason"] is None, status
    conn.transaction_manager.abort()
    conn.close()
    assert read_values(raid, ["after-m3", "shared"]) == {
        "after-m3": "written with m1 alone", "shared": len(acked)}


@with_logs
def test_sigstop_member_under_load(raid):
    deadline = f"{SHORT_DEADLINE}s"
    raid.start(3, call=deadline, commit=deadline)

    load = workload.Workload(raid.addr, WRITERS, COMMITS, WORKLOAD_TIMEOUT,
                             wait_timeout=CONNECT_TIMEOUT)
    load.wait_acked(FAULT_AFTER)
    # No status probe while m2 is stopped: zeoraid's ruok asks every
    # member for its server_status, so polling it would detect the stall
    # itself. What is measured is the write path: every commit waits for
    # every optimal member's vote, so commits acknowledged after the stop
    # show that m2 was left out.
    before = load.acked_count()
    raid.cluster.pause_member("m2")
    paused_at = time.monotonic()
    load.wait_acked(before + WRITERS + 1,
                    timeout=SHORT_DEADLINE + DEADLINE_SLACK)
    went_on_after = time.monotonic() - paused_at
    status = raid.status()
    m2 = raid.member_status("m2", status)
    assert m2["state"] == "degraded", status
    assert m2["kind"] == "failed", m2
    assert m2["reason"], m2
    print(f"writers went on {went_on_after:.2f}s after SIGSTOP (deadlines "
          f"{SHORT_DEADLINE}s); m2: {m2['reason']}")
    acked = load.finish()

    status = raid.status()
    assert status["status"] == "degraded", status
    assert states(status) == {"m1": "optimal", "m2": "degraded",
                              "m3": "optimal"}, status
    # The writers went on after it was degraded: it missed commits.
    assert raid.member_status("m2", status)["first_missed_tid"] is not None
    check_members_hold(raid, ["m1", "m3"], acked)

    # SIGCONT: the member answers again and zeoraid reconnects to it; it
    # stays degraded (it missed commits).
    raid.cluster.resume_member("m2")
    raid.wait_status(lambda s: raid.member_status("m2", s)["connected"],
                     "m2 connected again after SIGCONT")
    watch_until = time.monotonic() + STAYS_FOR
    while time.monotonic() < watch_until:
        status = raid.status()
        assert states(status) == {"m1": "optimal", "m2": "degraded",
                                  "m3": "optimal"}, status
        assert status["status"] == "degraded", status
        m2 = raid.member_status("m2", status)
        assert m2["kind"] in ("failed", "behind"), m2
        assert m2["first_missed_tid"] is not None, m2
        time.sleep(0.1)

    # Never read from: reads through zeoraid by fresh clients (empty
    # caches) reach the optimal members only.
    before = {n: raid.member_loads(n) for n in ("m1", "m2", "m3")}
    keys = ["shared"] + [f"w{i}" for i in range(WRITERS)]
    for _ in range(3):
        values = read_values(raid, keys)
        assert values["shared"] == len(acked)
    after = {n: raid.member_loads(n) for n in ("m1", "m2", "m3")}
    assert after["m2"] == before["m2"], (before, after)
    served = (after["m1"] - before["m1"]) + (after["m3"] - before["m3"])
    assert served >= 3 * (len(keys) + 1), (before, after)
    print(f"m2 after SIGCONT: {raid.member_status('m2', status)}")


@with_logs
def test_read_only_coop_after_two_of_three_fail(raid):
    raid.start(3, cluster_mode="coop", fail_mode="read-only")
    db = raid.db()
    expected = {}
    for i in range(5):
        commit_change(db, f"k{i}", i)
        expected[f"k{i}"] = i

    raid.cluster.kill_member("m1")
    raid.wait_status(degraded("m1"), "m1 degraded")
    # Two of three are a majority: still taking writes.
    commit_change(db, "k5", 5)
    expected["k5"] = 5
    assert raid.status()["status"] == "degraded"

    raid.cluster.kill_member("m2")
    status = raid.wait_status(lambda s: s["status"] == "failed",
                              "the array failed")
    assert status["reason"].startswith(
        "only 1 of 3 members are optimal, coop mode needs 2: the array has "
        "failed"), status
    # m2 missed nothing: the array waits for it (m1 missed k5).
    assert "waiting for m2 " in status["reason"], status
    assert status["fail_mode"] == "read-only", status
    assert states(status) == {"m1": "degraded", "m2": "degraded",
                              "m3": "optimal"}, status

    # Reads go on, from a fresh client (nothing cached)...
    assert read_values(raid, list(expected)) == expected
    # ...and writes get ReadOnlyError: a change of an existing object (at
    # the vote) from a client connected before, and a new object from a
    # new client.
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    conn.root()["k0"].value = "refused"
    expect_read_only(tm.commit, "commit of a change")
    tm.abort()
    conn.close()
    fresh = raid.db()
    expect_read_only(lambda: commit_change(fresh, "new", 1),
                     "commit of a new object")
    assert read_values(raid, list(expected)) == expected
    assert raid.status()["status"] == "failed"


@with_logs
def test_read_only_single_reads_from_a_restarted_member(raid):
    raid.start(2, fail_mode="read-only")
    db = raid.db()
    expected = {}
    for i in range(5):
        commit_change(db, f"k{i}", i)
        expected[f"k{i}"] = i
    db.close()

    # Both die, no commit in between: neither missed a transaction.
    raid.cluster.kill_member("m1")
    raid.cluster.kill_member("m2")
    status = raid.wait_status(
        lambda s: s["status"] == "failed"
        and states(s) == {"m1": "degraded", "m2": "degraded"},
        "the array failed")
    assert status["reason"].startswith(
        "no optimal member left: the array has failed"), status
    # Neither missed a transaction: the array waits for both.
    assert "waiting for m1, m2 " in status["reason"], status
    assert all(m["first_missed_tid"] is None for m in status["members"])

    # With no member up, a read fails with an error, promptly.
    storage = raid.storage()
    started = time.monotonic()
    with pytest.raises(ClientStorageError) as info:
        bounded(lambda: storage.load(b"\0" * 8), "load", ERROR_WITHIN)
    assert not isinstance(info.value, ClientDisconnected), info.value
    assert time.monotonic() - started < ERROR_WITHIN
    print(f"read with no member up: {info.value!r}")

    # m2 comes back with all the data: it holds every acknowledged
    # transaction, so it is optimal again at once (no copy) and the array
    # serves reads from it, and writes again.
    raid.cluster.restart_member("m2")
    status = raid.wait_status(lambda s: s["status"] != "failed",
                              "m2 optimal again")
    assert states(status) == {"m1": "degraded", "m2": "optimal"}, status
    assert read_values(raid, list(expected)) == expected
    assert raid.member_loads("m2") >= len(expected)
    fresh = raid.db()
    commit_change(fresh, "k0", "written with m2 alone")
    expected["k0"] = "written with m2 alone"
    assert read_values(raid, list(expected)) == expected
    fresh.close()


@with_logs
def test_close_coop_fails_when_the_majority_is_lost(raid):
    raid.start(3, cluster_mode="coop", fail_mode="close")
    db = raid.db()
    commit_change(db, "k", 0)

    raid.cluster.kill_member("m3")
    raid.wait_status(degraded("m3"), "m3 degraded")
    tid = commit_change(db, "k", 1)
    assert read_values(raid, ["k"]) == {"k": 1}
    status = raid.status()
    assert status["status"] == "degraded", status

    storage = raid.storage()
    conn = db.open(transaction.TransactionManager())
    oid = conn.root()["k"]._p_oid
    conn.root()["k"].value = "never committed"

    raid.cluster.kill_member("m2")
    status = raid.wait_status(lambda s: s["status"] == "failed",
                              "the array failed", timeout=ERROR_WITHIN)
    reason = status["reason"]
    assert reason.startswith("only 1 of 3 members are optimal, coop mode "
                             "needs 2: the array has failed"), status
    # m2 missed nothing since it was lost: the array waits for it.
    assert "waiting for m2 " in reason, status
    assert states(status) == {"m1": "optimal", "m2": "degraded",
                              "m3": "degraded"}, status
    loads = raid.member_loads("m1")

    expect_unavailable(storage.ping, reason, "ping")
    expect_unavailable(lambda: storage.loadSerial(oid, tid), reason,
                       "loadSerial")
    expect_unavailable(lambda: storage.loadBefore(oid, tid), reason,
                       "loadBefore")
    expect_unavailable(conn.transaction_manager.commit, reason, "commit")
    conn.transaction_manager.abort()
    conn.close()
    expect_register_refused(raid, reason)
    # m1 is up, optimal and holds the data, but a failed array in close
    # mode serves nothing: no read went to it.
    assert raid.member_loads("m1") == loads


# A client that votes and then stops itself (SIGSTOP) in the middle of
# two-phase commit; after SIGCONT it tries to finish and prints what
# happened.
STOPPED_CLIENT = """
import os, signal, sys
from ZEO.ClientStorage import ClientStorage
from ZODB.Connection import TransactionMetaData
from ZODB.utils import z64
host, port = sys.argv[1].rsplit(":", 1)
storage = ClientStorage((host, int(port)), storage="1", wait_timeout=20)
oid = storage.new_oid()
txn = TransactionMetaData()
storage.tpc_begin(txn)
storage.store(oid, z64, b"stopped client", "", txn)
storage.tpc_vote(txn)
print("voted", flush=True)
os.kill(os.getpid(), signal.SIGSTOP)
try:
    storage.tpc_finish(txn)
    print("finished")
except Exception as err:
    print("refused", type(err).__name__, err)
    storage.tpc_abort(txn)
storage.close()
"""


def process_stopped(pid):
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "T"


@with_logs
def test_stopped_client_after_its_vote(raid):
    raid.start(2, transaction=f"{SHORT_DEADLINE}s")
    host, port = raid.addr
    stopped = subprocess.Popen(
        [sys.executable, "-c", STOPPED_CLIENT, f"{host}:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        poll(lambda: process_stopped(stopped.pid), bool,
             "the client to vote and stop itself", CALL_TIMEOUT, "stopped")
        # Opening the DB commits the root object: held back too.
        started = time.monotonic()
        db = raid.db()
        tid = bounded(lambda: _commit_change(db, "other", 1),
                      "a commit beside the stopped client",
                      SHORT_DEADLINE + DEADLINE_SLACK + 10)
        took = time.monotonic() - started
        print(f"the other commit took {took:.2f}s "
              f"([timeouts] transaction {SHORT_DEADLINE}s)")
        assert took < SHORT_DEADLINE + DEADLINE_SLACK + 10
    finally:
        stopped.send_signal(signal.SIGCONT)
        try:
            output, _ = stopped.communicate(timeout=CALL_TIMEOUT)
        except subprocess.TimeoutExpired:
            stopped.kill()
            raise
    assert "voted" in output, output
    assert "refused StorageTransactionError" in output, output
    assert "[timeouts] transaction" in output, output
    status = raid.status()
    assert status["status"] == "optimal", status
    check_members_hold(raid, ["m1", "m2"], [(tid, {})])
