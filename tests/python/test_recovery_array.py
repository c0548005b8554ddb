"""Recovery of array members with real runzeo members, real ZEO
clients (ClientStorage / ZODB.DB) and the zeoraid daemon binary.

A degraded member goes degraded -> recovering(progress) -> optimal; what
is checked, test by test:

  test_recovery_under_write_load
      3 members, automatic recovery (stable_for 1s). kill -9 m2 while 4
      ZODB writers commit; it misses 2000+ transactions (a fifth writer
      commits 2000 as fast as it can meanwhile); it is restarted
      and recovered on its own while the writers keep committing (they
      commit during the recovery and after it). At the end: m2 optimal
      ("recovered from ..."), the array optimal, the writers saw no
      error, every acknowledged commit is on every member (loadSerial at
      its tid gives the value written), the members are identical
      (iterators compared directly, blobs and metadata included), and
      longest_recovery_block_ms is reported.
  test_recovery_gains_on_unpaced_writers
      2 members, automatic recovery throttled to 20 transactions/s while
      2 unpaced writers commit far faster: streaming alone would never
      catch up (each pass copies what committed during the one before).
      The recovery cuts a pass short that is not shrinking and finishes
      under the commit lock in slices, with the waiting commits let
      through between slices: m2 ends optimal while the writers go on
      (they commit during the slices), nothing lost, members identical.
  test_full_copy_of_an_added_member_with_blobs_and_undo
      2 members with blobs; blobs committed, changed, one transaction
      undone. An empty third runzeo is added by editing zeoraid.toml and
      POST /reload (it comes in degraded "added") and recovered with
      POST /members/m3/recover?full=true. Then m1 and m2 are killed and a
      ClientStorage connected directly to m3 reads everything: every
      object, every blob's bytes (current and older revisions), the
      undoLog as the source had it, and it commits a new object. The
      members compare identical except for the documented deviation: the
      undone blob record is a full record on m3 where m1 has a
      back-pointer (data_txn; the undo's size in undoLog).
  test_diverged_member_is_refused
      a transaction written to m2 directly, behind zeoraid's back, while
      m2 is degraded: recovery started by the ZEO call raid_recover is
      refused ("refused: ..." naming the divergence), m2 stays degraded
      and its data is untouched; the array keeps serving.
  test_member_that_missed_a_pack_is_recovered_incrementally
      m2 down while the array packs: its history before the pack time is
      verified leniently, only what it missed is copied, and it is packed
      at the same time: it ends identical to the source.
  test_source_killed_mid_recovery
      3 members, throttled copy: the source (m1) is killed while m3
      recovers from it: m2 takes over as the source and m3 ends optimal,
      identical to m2. m1, restarted, is recovered in turn: all three
      identical, nothing lost.
  test_target_killed_mid_recovery_progress_and_pack
      2 members, throttled copy started by `zeoraid ctl recover`: the
      progress fields move (copied_transactions grows between polls,
      fraction_done between 0 and 1, rate and ETA), the array status is
      "recovering", a pack is refused naming the recovery. The target is
      killed: the recovery stops ("stopped: ..."), the member is
      degraded. Restarted and recovered again (POST), it resumes from
      where its history ends (not from the start), ends optimal and
      identical; /metrics shows the recovery's series while it runs and
      its final step afterwards; a pack is accepted again.
  test_zeoraid_restarted_mid_recovery
      kill -9 zeoraid while it recovers m2 (throttled, automatic); the
      same config started again: m2 comes back degraded (startup
      reconciliation: behind), the recovery resumes on its own from m2's
      last tid, and m2 ends optimal and identical with nothing lost.
  test_flap_damping
      automatic recovery with stable_for 3s: m2 restarted, killed again
      within a second of reconnecting, restarted: the state timeline
      (/details polled every 50 ms) shows no recovery before m2 had been
      connected 3 s in one go, and then the recovery runs and ends
      optimal.

The writers pause 0-30 ms after each commit (load shaping, see
SteadyWriter). Every wait is bounded and polls; a failure carries
zeoraid's log tail and /details (`with_logs`).
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
import transaction
import ZODB
from ZEO.ClientStorage import ClientStorage
from ZODB.blob import Blob
from ZODB.tests.MinPO import MinPO
from ZODB.utils import p64, u64

from conformance import mirror, workload
from conformance.cluster import (
    SERVER_READY_TIMEOUT, Cluster, ClusterSet, Member, StartError, _wait_all,
    free_port, runzeo_config, spawn, zeoprobe, zeoraid_binary)

from test_failures import (
    CONNECT_TIMEOUT, STORAGE, Raid, assert_holds, bounded, poll, with_logs,
    zeoraid_options)

# Bounded waits (seconds).
HTTP_TIMEOUT = 20           # one HTTP request or ctl run
STATE_TIMEOUT = 20          # a member reaches a state zeoraid reports
RECOVERY_TIMEOUT = 60       # a recovery ends
IDENTICAL_TIMEOUT = 15      # members compared until identical
WORKLOAD_TIMEOUT = 100      # the whole write load of the first test

PACE_MAX = 0.03             # a writer's pause after a commit, at most
THROTTLE_TPS = 20           # max_transactions_per_second of throttled tests


# -- the cluster, with recovery settings and the HTTP endpoint --------------

class RecoveryRaid(Raid):

    def start(self, members, recovery="", **options):
        """Start `members` runzeo members and zeoraid; recovery: the lines
        of the [recovery] table."""
        self.clusterset = ClusterSet(f"zeoraid-{members}", self.tmp_path)
        self.cluster = self.clusterset.start(
            zeoraid_options=zeoraid_options(**options)
            + "\n[recovery]\n" + recovery + "\n")
        return self.cluster

    def metrics(self):
        """GET /metrics: {series: value} of the zeoraid_recovery_* lines."""
        with urllib.request.urlopen(f"http://{self.http_addr()}/metrics",
                                    timeout=HTTP_TIMEOUT) as r:
            text = r.read().decode()
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("zeoraid_recovery_")}

    def details(self):
        code, body = self.http("GET", "/details")
        assert code == 200, (code, body)
        return body

    def recover(self, name, full=False):
        """POST /members/NAME/recover; returns the answer's message."""
        path = f"/members/{name}/recover" + ("?full=true" if full else "")
        code, body = self.http("POST", path)
        assert code == 200, (code, body)
        return body["message"]

    def wait_details(self, predicate, what, timeout=STATE_TIMEOUT):
        """Poll /details until predicate(details) holds; returns them."""
        return poll(self.details, predicate, what, timeout, "GET /details")

    # -- processes ------------------------------------------------------------
    def kill_zeoraid(self):
        front = self.cluster.front
        try:
            os.killpg(front.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        front.proc.wait(timeout=15)

    def start_zeoraid_again(self):
        """zeoraid started again with the same config (same ports, same
        members); returns when it serves a client."""
        front = self.cluster.front
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("ZEORAID_CONFORMANCE", "ZEORAID_BIN"))}
        proc = spawn([str(zeoraid_binary()), "serve", "--config",
                      str(self.conf)], front.log, env=env)
        self.cluster.processes.append(proc)
        front.proc = proc
        exited = _wait_all([front], Cluster._front_ready,
                           SERVER_READY_TIMEOUT, "zeoraid started again")
        if exited:
            raise StartError(f"zeoraid started again exited (exit code "
                             f"{proc.returncode}):\n{front.log_tail()}")

    def add_member(self, name):
        """Start an empty runzeo (a blob directory of its own) and add it
        to the cluster's members; zeoraid does not know it yet."""
        dir = self.cluster.dir / name
        dir.mkdir(parents=True)
        for attempt in range(3):
            addr = ("127.0.0.1", free_port())
            conf = dir / "runzeo.conf"
            conf.write_text(runzeo_config(addr, dir, blob_dir=dir / "blobs"))
            proc = spawn([sys.executable, "-m", "ZEO.runzeo", "-C",
                          str(conf)], dir / "runzeo.log")
            self.cluster.processes.append(proc)
            member = Member(name, "runzeo", addr, proc, dir / "runzeo.log",
                            dir)
            member.blob_dir = dir / "blobs"
            if not _wait_all([member], lambda m: zeoprobe.ruok(m.addr, 2.0),
                             SERVER_READY_TIMEOUT, f"new member {name}"):
                self.cluster.members.append(member)
                return member
        raise StartError(f"new member {name} did not start:\n"
                         f"{member.log_tail()}")

    # -- what a member holds, asked directly --------------------------------
    def member_last_tid(self, name):
        member = self.cluster.member(name)
        return bytes.fromhex(
            zeoprobe.ruok(member.addr, 5.0)[STORAGE]["last-transaction"])

    def direct(self, name, **kw):
        """A ClientStorage connected to the member itself (not zeoraid),
        closed after the test."""
        kw.setdefault("wait_timeout", CONNECT_TIMEOUT)
        storage = ClientStorage(self.cluster.member(name).addr,
                                storage=STORAGE, **kw)
        self.clients.append(storage)
        return storage

    def diagnostics(self, lines=80):
        parts = [super().diagnostics(lines)]
        try:
            members = self.details()["members"]
            parts.append("--- /details members:")
            parts += [json.dumps(m) for m in members]
        except Exception as err:
            parts.append(f"--- /details failed: {err!r}")
        return "\n".join(parts)


@pytest.fixture
def raid(tmp_path):
    r = RecoveryRaid(tmp_path)
    try:
        yield r
    finally:
        r.stop()


def member(details, name):
    for m in details["members"]:
        if m["name"] == name:
            return m
    raise AssertionError(f"no member {name} in {details}")


def state_of(name, *states):
    """Predicate on /details: member `name` is in one of `states`."""
    return lambda d: member(d, name)["state"] in states


def connected(name):
    return lambda d: member(d, name)["connected"]


def copied(name, at_least):
    """Predicate: the running recovery of `name` copied at_least
    transactions."""
    def check(d):
        progress = (member(d, name)["recovery"] or {}).get("progress")
        return bool(progress) and \
            progress["copied_transactions"] >= at_least
    return check


def wait_recovered(raid, name, timeout=RECOVERY_TIMEOUT):
    """Wait until member `name` is optimal again; returns /details. Fails
    at once when its recovery ended without success."""
    def check(d):
        m = member(d, name)
        if m["state"] == "optimal":
            return True
        outcome = m["last_recovery"] or ""
        assert m["state"] == "recovering" or not outcome, (
            f"{name}: recovery ended: {outcome}")
        return False
    d = raid.wait_details(check, f"{name} recovered", timeout)
    m = member(d, name)
    assert m["last_recovery"].startswith("recovered from "), m
    assert m["recovery"] is None, m
    return d


# -- writes -------------------------------------------------------------------

def steady_load(addr, writers, max_commits, timeout):
    """workload.Workload's writers (shared counter + own object, conflicts
    retried, acknowledged commits recorded), paced (behind zeoraid 3 of 4
    unpaced writers got no commit in 8 s; against a plain runzeo 1 of 4),
    committing until stopped."""
    return workload.Workload(addr, writers, max_commits, timeout,
                             wait_timeout=CONNECT_TIMEOUT, storage=STORAGE,
                             pace=PACE_MAX)


def commit_many(db, prefix, count, objects=5):
    """count transactions, each setting one of `objects` MinPOs (created
    by the first ones) to (prefix, i); returns [(tid, {oid: value})]."""
    def run():
        tm = transaction.TransactionManager()
        conn = db.open(tm)
        acked = []
        try:
            for i in range(count):
                root = conn.root()
                key = f"{prefix}{i % objects}"
                value = (prefix, i)
                if key in root:
                    root[key].value = value
                else:
                    root[key] = MinPO(value)
                tm.commit()
                acked.append((root[key]._p_serial, {root[key]._p_oid: value}))
            return acked
        finally:
            tm.abort()
            conn.close()
    return bounded(run, f"{count} commits of {prefix}", 30 + count)


def miss_commits(raid, db, name, prefix, count, **kw):
    """kill -9 member `name`, wait until zeoraid has degraded it, then
    commit `count` transactions it misses (commit_many); returns them."""
    raid.cluster.kill_member(name)
    raid.wait_details(state_of(name, "degraded"), f"{name} degraded")
    return commit_many(db, prefix, count, **kw)


def restart_connected(raid, name, what="connected again"):
    """Restart member `name` and wait until zeoraid is connected to it."""
    raid.cluster.restart_member(name)
    raid.wait_details(connected(name), f"{name} {what}")


def check_hold(raid, names, acked):
    """Each named member, asked directly, holds every acknowledged commit
    as written (loadSerial at its tid)."""
    for name in names:
        storage = raid.direct(name, read_only=True)
        try:
            assert_holds(storage, name, acked)
        finally:
            storage.close()


def wait_identical(raid, names):
    mirror.wait_identical([raid.cluster.member(n).addr for n in names],
                          timeout=IDENTICAL_TIMEOUT)


# -- the tests ----------------------------------------------------------------

WRITERS = 4
MISSED = 120                # paced commits m2 misses at least (test 1)
BULK = 2000                 # and unpaced ones, from a fifth writer


@with_logs
def test_recovery_under_write_load(raid):
    raid.start(3, recovery='auto = true\nstable_for = "1s"')
    assert raid.details()["status"] == "optimal"

    load = steady_load(raid.addr, WRITERS, 1000, WORKLOAD_TIMEOUT)
    load.wait_acked(20, timeout=STATE_TIMEOUT)
    raid.cluster.kill_member("m2")
    raid.wait_details(state_of("m2", "degraded"), "m2 degraded")
    killed_at = load.acked_count()
    # Thousands missed: a fifth writer commits BULK transactions as fast
    # as it can while the 4 paced writers go on.
    bulk = commit_many(raid.db(), "bulk", BULK)
    load.wait_acked(killed_at + MISSED, timeout=STATE_TIMEOUT)
    raid.cluster.restart_member("m2")
    restarted_at = load.acked_count()
    missed = restarted_at - killed_at + BULK
    assert missed >= 2000, missed

    # Automatic recovery, observed while the writers go on.
    timeline = []   # (acked, m2 state, array status)
    def observe(d):
        timeline.append((load.acked_count(), member(d, "m2")["state"],
                         d["status"]))
        assert not load.errors(), f"writers saw errors: {load.errors()}"
        outcome = member(d, "m2")["last_recovery"] or ""
        assert not outcome or outcome.startswith("recovered"), outcome
        return member(d, "m2")["state"] == "optimal"
    done = raid.wait_details(observe, "m2 recovered",
                             timeout=RECOVERY_TIMEOUT)
    recovering = [t for t in timeline if t[1] == "recovering"]
    assert recovering, f"m2 never seen recovering: {timeline}"
    assert all(status == "recovering" for _, _, status in recovering), \
        timeline
    during = recovering[-1][0] - recovering[0][0]
    assert during > 0, (
        f"no commit acknowledged while m2 recovered: {recovering}")
    # Writes go on after it is optimal again: they reach m2 too.
    after = load.acked_count()
    load.wait_acked(after + 20, timeout=STATE_TIMEOUT)
    load.stop()
    acked = load.finish() + bulk
    print(f"m2 missed {missed}+ commits; "
          f"{during} acknowledged during its recovery "
          f"({len(recovering)} polls), {len(acked)} in all")

    m2 = member(done, "m2")
    assert m2["last_recovery"].startswith("recovered from m"), m2
    details = raid.details()
    assert details["status"] == "optimal", details
    assert isinstance(details["longest_recovery_block_ms"], int), details
    assert details["longest_recovery_block_ms"] >= 0
    print(f"last_recovery: {m2['last_recovery']}; "
          f"longest_recovery_block_ms {details['longest_recovery_block_ms']}")

    check_hold(raid, ["m1", "m2", "m3"], acked)
    last = max(tid for tid, _ in acked)
    for name in ("m1", "m2", "m3"):
        assert raid.member_last_tid(name) == last, name
    wait_identical(raid, ["m1", "m2", "m3"])


class FloodWriter(threading.Thread):
    """Commits to its own object as fast as it can until stopped (no
    shared object: unpaced writers on one object starve each other)."""

    def __init__(self, db, name):
        super().__init__(name=name, daemon=True)
        self.db, self.stopping = db, threading.Event()
        self.acked, self.error = [], None
        commit_many(db, name, 1, objects=1)      # creates its object

    def run(self):
        tm = transaction.TransactionManager()
        conn = self.db.open(tm)
        try:
            obj = conn.root()[f"{self.name}0"]
            n = 0
            while not self.stopping.is_set():
                n += 1
                obj.value = (self.name, n)
                tm.commit()
                self.acked.append((obj._p_serial, {obj._p_oid: obj.value}))
        except BaseException as err:    # reported by finish()
            self.error = err
        finally:
            tm.abort()
            conn.close()

    def finish(self):
        self.stopping.set()
        self.join(WORKLOAD_TIMEOUT)
        assert not self.is_alive(), f"{self.name} still running"
        assert self.error is None, f"{self.name}: {self.error!r}"
        return self.acked


@with_logs
def test_recovery_gains_on_unpaced_writers(raid):
    raid.start(2, recovery='auto = true\nstable_for = "1s"\n'
                           f'max_transactions_per_second = {THROTTLE_TPS}')
    db = raid.db()
    missed = miss_commits(raid, db, "m2", "missed", 2 * THROTTLE_TPS)
    writers = [FloodWriter(raid.db(), f"flood{i}") for i in range(2)]
    raid.cluster.restart_member("m2")
    # Its first pass (the commits it missed) takes ~2 s throttled; the
    # writers start meanwhile.
    raid.wait_details(state_of("m2", "recovering"), "m2 recovering")
    for w in writers:
        w.start()

    timeline = []   # (monotonic time, commits acknowledged, m2 state)
    def observe(d):
        assert all(w.error is None for w in writers), \
            [repr(w.error) for w in writers]
        m2 = member(d, "m2")
        outcome = m2["last_recovery"] or ""
        assert not outcome or outcome.startswith("recovered"), outcome
        timeline.append((time.monotonic(), sum(len(w.acked) for w in writers),
                         m2["state"]))
        return m2["state"] == "optimal"
    raid.wait_details(observe, "m2 recovered", timeout=RECOVERY_TIMEOUT)
    done = wait_recovered(raid, "m2")
    recovering = [t for t in timeline if t[2] == "recovering"]
    assert len(recovering) >= 2, f"m2 never seen recovering: {timeline}"
    seconds = recovering[-1][0] - recovering[0][0]
    during = recovering[-1][1] - recovering[0][1]
    # The premise: the writers committed faster than the throttled stream
    # copies, so only the final step in slices could close the gap.
    assert during > 2 * THROTTLE_TPS * seconds, (
        f"writers too slow to outpace the copy: {during} commits in "
        f"{seconds:.1f}s")
    before = sum(len(w.acked) for w in writers)
    poll(lambda: sum(len(w.acked) for w in writers),
         lambda n: n >= before + 20, "commits after the recovery",
         STATE_TIMEOUT, "counting")
    acked = missed + [a for w in writers for a in w.finish()]
    last_recovery = member(done, "m2")["last_recovery"]
    print(f"{during} commits in {seconds:.1f}s while m2 recovered; "
          f"{len(acked)} in all; last_recovery: {last_recovery}")

    check_hold(raid, ["m1", "m2"], acked)
    last = max(tid for tid, _ in acked)
    assert raid.member_last_tid("m1") == raid.member_last_tid("m2") == last
    wait_identical(raid, ["m1", "m2"])
    # The recovered member's oid counter was brought in step: asked
    # directly, it hands out no oid the array already used.
    used = max(u64(oid) for _, values in acked for oid in values)
    assert u64(raid.direct("m2").new_oid()) > used


# -- full copy of an added member, blobs and undo -----------------------------

BLOB_1 = b"first revision of blob 1\n" * 100
BLOB_1B = b"second revision of blob 1\n" * 100
BLOB_2 = os.urandom(1024 * 1024 + 17)       # more than one upload chunk
BLOB_2B = b"blob 2, changed and then undone"


def blob_bytes(blob):
    with blob.open("r") as f:
        return f.read()


def write_blob(blob, data):
    with blob.open("w") as f:
        f.write(data)


def ignore_blob_back_pointers(monkeypatch):
    """The mirror checker, told that a blob record may be a full record on
    one member and a back-pointer (data_txn) to the same data on another:
    ZEO has no restoreBlob, so recovery uploads an undone blob record as
    a full record (ARCHITECTURE.md §3.5, "Blobs"). Its data and blob
    content are still compared."""
    record = mirror._record

    def _record(storage, rec):
        fields = record(storage, rec)
        if "blob" in fields:
            fields["data_txn"] = "(not compared for blob records)"
        return fields
    monkeypatch.setattr(mirror, "_record", _record)


@with_logs
def test_full_copy_of_an_added_member_with_blobs_and_undo(raid, tmp_path,
                                                          monkeypatch):
    raid.start(2, recovery="auto = false")
    db = ZODB.DB(raid.storage(blob_dir=str(tmp_path / "client-blobs")))
    raid.clients.append(db)
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    root = conn.root()

    def commit(note):
        tm.get().note(note)
        bounded(tm.commit, f"commit: {note}")

    root["b1"], root["b2"], root["v"] = Blob(BLOB_1), Blob(BLOB_2), MinPO(1)
    commit("create")
    tid_create = root["v"]._p_serial
    write_blob(root["b1"], BLOB_1B)
    root["v"].value = 2
    commit("change b1")
    write_blob(root["b2"], BLOB_2B)
    root["v"].value = 3
    commit("change b2, to be undone")
    tid_undone = root["v"]._p_serial
    undo_id = [u["id"] for u in db.undoLog(0, 10)
               if u["description"] == "change b2, to be undone"][0]
    db.undo(undo_id, tm.get())
    commit("undo")
    tm.begin()  # see the undo's invalidations
    root = conn.root()
    root["after"] = MinPO("after the undo")
    commit("after")
    assert (root["v"].value, blob_bytes(root["b2"])) == (2, BLOB_2)
    oids = {k: root[k]._p_oid for k in ("b1", "b2", "v", "after")}
    conn.close()

    # An empty runzeo, added by a config reload: degraded "added".
    m3 = raid.add_member("m3")
    with raid.conf.open("a") as f:
        f.write(f'\n[[members]]\nname = "m3"\naddress = "{m3.address}"\n')
    code, answer = raid.http("POST", "/reload")
    assert code == 200, answer
    assert answer["added"] == ["m3"], answer
    m = member(raid.details(), "m3")
    assert (m["state"], m["kind"]) == ("degraded", "added"), m
    raid.wait_details(connected("m3"), "m3 connected")

    assert raid.recover("m3", full=True) == "recovering 'm3' from 'm1'"
    done = wait_recovered(raid, "m3")
    print(f"m3: {member(done, 'm3')['last_recovery']}")
    assert done["status"] == "optimal", done
    wait_identical(raid, ["m1", "m2"])
    with pytest.raises(mirror.Difference, match="data_txn differs"):
        mirror.wait_identical([raid.cluster.member(n).addr
                               for n in ("m1", "m3")], timeout=0)
    ignore_blob_back_pointers(monkeypatch)
    wait_identical(raid, ["m1", "m2", "m3"])

    source = raid.direct("m1", read_only=True)
    source_undo = source.undoLog(0, 100)
    source_last = source.lastTransaction()
    used_oids = {rec.oid for txn in source.iterator() for rec in txn}
    source.close()

    # m3 alone serves a client with all the data.
    raid.cluster.kill_member("m1")
    raid.cluster.kill_member("m2")
    alone = raid.direct("m3", blob_dir=str(tmp_path / "m3-client-blobs"))
    assert alone.lastTransaction() == source_last
    db3 = ZODB.DB(alone)
    raid.clients.append(db3)
    tm3 = transaction.TransactionManager()
    conn3 = db3.open(tm3)
    root3 = conn3.root()
    assert root3["v"].value == 2
    assert root3["after"].value == "after the undo"
    assert blob_bytes(root3["b1"]) == BLOB_1B
    assert blob_bytes(root3["b2"]) == BLOB_2
    assert {k: root3[k]._p_oid for k in oids} == oids
    # Older revisions, blobs included.
    for oid, tid, want in [(oids["b1"], tid_create, BLOB_1),
                           (oids["b2"], tid_create, BLOB_2),
                           (oids["b2"], tid_undone, BLOB_2B)]:
        with open(alone.loadBlob(oid, tid), "rb") as f:
            assert f.read() == want, (oid.hex(), tid.hex())
    assert workload.record_state(
        alone.loadSerial(oids["v"], tid_undone))["value"] == 3

    # The undo history as the source had it. 'size' (the transaction's
    # length in Data.fs) may differ: a blob record the source holds as a
    # back-pointer (the undo) is copied as a full record (ARCHITECTURE.md
    # §3.5, "Blobs").
    undo3 = alone.undoLog(0, 100)
    strip = lambda log: [{k: v for k, v in u.items() if k != "size"}
                         for u in log]
    assert strip(undo3) == strip(source_undo), (undo3, source_undo)
    sizes = [(u["description"], a["size"], u["size"])
             for a, u in zip(source_undo, undo3) if a["size"] != u["size"]]
    print(f"undoLog: {len(undo3)} entries; sizes that differ: {sizes}")
    assert [u["description"] for u in undo3][:2] == [b"after", b"undo"]

    # ...and takes a new object, with an oid never used before.
    root3["alone"] = MinPO("written to m3 alone")
    bounded(tm3.commit, "commit on m3 alone")
    assert root3["alone"]._p_oid not in used_oids
    conn3.close()


# -- a diverged member --------------------------------------------------------

@with_logs
def test_diverged_member_is_refused(raid):
    raid.start(2, recovery="auto = false", zeo_admin_calls="all")
    db = raid.db()
    acked = commit_many(db, "a", 5)
    acked += miss_commits(raid, db, "m2", "b", 3)
    restart_connected(raid, "m2")

    # Behind zeoraid's back: a transaction written to m2 directly.
    other = ZODB.DB(raid.direct("m2"))
    raid.clients.append(other)
    bounded(lambda: _commit_root(other, "behind-the-back", 1),
            "commit on m2 directly")
    diverged_tid = raid.member_last_tid("m2")
    assert diverged_tid > acked[4][0]

    storage = raid.storage()
    answer = bounded(lambda: storage._call("raid_recover", "m2"),
                     "raid_recover")
    assert answer == "recovering 'm2' from 'm1'", answer
    d = raid.wait_details(
        lambda d: (member(d, "m2")["last_recovery"] or "").startswith(
            "refused:"), "the recovery of m2 refused")
    m2 = member(d, "m2")
    reason = m2["last_recovery"]
    print(f"m2: {reason}")
    assert m2["state"] == "degraded", m2
    assert m2["recovery"] is None, m2
    assert d["status"] == "degraded", d
    assert "diverged" in reason, reason
    assert diverged_tid.hex() in reason, reason

    # Nothing on m2 was changed, and the array goes on without it.
    assert raid.member_last_tid("m2") == diverged_tid
    acked += commit_many(db, "c", 2)
    assert raid.member_last_tid("m2") == diverged_tid
    assert member(raid.details(), "m2")["state"] == "degraded"
    check_hold(raid, ["m1"], acked)
    details = bounded(lambda: storage._call("raid_details"), "raid_details")
    assert details["m2"].startswith("failed: "), details


def _commit_root(db, key, value):
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    try:
        conn.root()[key] = MinPO(value)
        tm.commit()
    finally:
        conn.close()


@with_logs
def test_member_that_missed_a_pack_is_recovered_incrementally(raid):
    """A member down while the array packed holds old revisions (and whole
    transactions) the packed source no longer has. zeoraid remembers the
    pack it missed: verification is lenient before the pack time (the
    source's records must be on the member, the member may have more),
    only the commits it missed are copied, and the member is then packed
    at the same time: it ends identical to the source, records and all.
    Also: the transactions before the pack are not copied again."""
    raid.start(2, recovery="auto = false")
    db = raid.db()
    acked = commit_many(db, "a", 20, objects=3)
    acked += miss_commits(raid, db, "m2", "b", 10, objects=3)
    storage = raid.storage()
    bounded(lambda: storage.pack(wait=True), "pack while m2 is down")
    after_pack = commit_many(db, "c", 5, objects=3)
    restart_connected(raid, "m2")
    # What m2 lacks: the source's transactions after m2's last (the pack
    # removed some of the ones it missed), not the history before.
    m2_last = u64(raid.member_last_tid("m2"))
    m1 = raid.direct("m1", read_only=True)
    lacking = len(list(m1.iterator(p64(m2_last + 1))))
    everything = len(list(m1.iterator()))
    m1.close()
    assert 5 <= lacking < everything, (lacking, everything)
    assert raid.recover("m2") == "recovering 'm2' from 'm1'"
    done = wait_recovered(raid, "m2")
    assert done["status"] == "optimal", done
    outcome = member(done, "m2")["last_recovery"]
    assert f": {lacking} transaction(s) copied;" in outcome, outcome
    check_hold(raid, ["m1", "m2"], after_pack)
    oids = {oid for _, values in acked + after_pack for oid in values}
    current = {}
    for name in ("m1", "m2"):
        direct = raid.direct(name, read_only=True)
        current[name] = {oid: direct.load(oid) for oid in oids}
        assert direct.lastTransaction() == after_pack[-1][0], name
        direct.close()
    assert current["m1"] == current["m2"]
    wait_identical(raid, ["m1", "m2"])


# -- faults during a recovery -----------------------------------------------

THROTTLED = f"auto = false\nmax_transactions_per_second = {THROTTLE_TPS}"


@with_logs
def test_disabling_a_recovering_member_stops_its_recovery(raid):
    raid.start(2, recovery=THROTTLED)
    db = raid.db()
    commit_many(db, "a", 5)
    miss_commits(raid, db, "m2", "b", 60)
    restart_connected(raid, "m2")
    assert raid.recover("m2") == "recovering 'm2' from 'm1'"
    raid.wait_details(copied("m2", 3), "m2 copying")
    code, body = raid.http("POST", "/members/m2/disable")
    assert (code, body["message"]) == (
        200, "m2 disabled (its recovery was stopped)"), body
    d = raid.wait_details(state_of("m2", "degraded"), "m2 degraded again")
    m2 = member(d, "m2")
    assert (m2["kind"], m2["reason"]) == ("disabled", "disabled by operator")
    assert m2["last_recovery"] == "stopped: disabled by operator", m2
    assert d["status"] == "degraded", d
    # It stays so, and gets no more writes (the copy stopped after its
    # transaction in flight, which is older than anything committed now).
    later = commit_many(db, "c", 3)
    assert member(raid.details(), "m2")["state"] == "degraded"
    assert raid.member_last_tid("m2") < later[0][0]


@with_logs
def test_source_killed_mid_recovery(raid):
    raid.start(3, recovery=THROTTLED)
    db = raid.db()
    acked = commit_many(db, "a", 5)
    acked += miss_commits(raid, db, "m3", "b", 60)
    restart_connected(raid, "m3")

    assert raid.recover("m3") == "recovering 'm3' from 'm1'"
    d = raid.wait_details(copied("m3", 5), "m3 copying from m1")
    assert member(d, "m3")["recovery"]["source"] == "m1"
    raid.cluster.kill_member("m1")
    # Another optimal member takes over as the source.
    d = raid.wait_details(
        lambda d: (member(d, "m3")["recovery"] or {}).get("source") == "m2"
        or member(d, "m3")["state"] != "recovering",
        "m2 the source of m3's recovery")
    acked += commit_many(db, "c", 5)
    done = wait_recovered(raid, "m3")
    assert member(done, "m3")["last_recovery"].startswith(
        "recovered from m2"), member(done, "m3")
    print(f"m3: {member(done, 'm3')['last_recovery']}")
    check_hold(raid, ["m2", "m3"], acked)
    wait_identical(raid, ["m2", "m3"])

    # m1 comes back and is recovered in turn.
    restart_connected(raid, "m1")
    assert member(raid.details(), "m1")["state"] == "degraded"
    assert raid.recover("m1") == "recovering 'm1' from 'm2'"
    done = wait_recovered(raid, "m1")
    assert done["status"] == "optimal", done
    check_hold(raid, ["m1"], acked)
    wait_identical(raid, ["m1", "m2", "m3"])


@with_logs
def test_target_killed_mid_recovery_progress_and_pack(raid):
    raid.start(2, recovery=THROTTLED)
    db = raid.db()
    acked = commit_many(db, "a", 5)
    acked += miss_commits(raid, db, "m2", "b", 60)
    raid.cluster.restart_member("m2")
    before = raid.member_last_tid("m2")
    raid.wait_details(connected("m2"), "m2 connected again")

    run = subprocess.run(
        [str(zeoraid_binary()), "ctl", "--timeout", str(HTTP_TIMEOUT),
         "--config", str(raid.conf), "recover", "m2"],
        capture_output=True, text=True, timeout=HTTP_TIMEOUT + 10)
    assert run.returncode == 0, (run.stdout, run.stderr)
    assert run.stdout == "recovering 'm2' from 'm1'\n", run.stdout

    # The progress fields move.
    d = raid.wait_details(copied("m2", 1), "m2 copying")
    assert d["status"] == "recovering", d
    m2 = member(d, "m2")
    assert m2["state"] == "recovering", m2
    assert m2["recovery"]["source"] == "m1", m2
    p1 = m2["recovery"]["progress"]
    assert p1["source"] == "m1", p1
    assert p1["started_from_tid"] == before.hex(), (p1, before.hex())
    assert 0 < p1["fraction_done"] < 1, p1
    assert p1["copied_bytes"] > 0, p1
    assert p1["last_copied_tid"] < p1["source_last_tid"], p1
    d = raid.wait_details(copied("m2", p1["copied_transactions"] + 1),
                          "m2's recovery progressing")
    p2 = member(d, "m2")["recovery"]["progress"]
    assert p2["copied_transactions"] > p1["copied_transactions"], (p1, p2)
    assert p2["copied_bytes"] > p1["copied_bytes"], (p1, p2)
    assert p2["last_copied_tid"] > p1["last_copied_tid"], (p1, p2)
    assert p1["fraction_done"] < p2["fraction_done"] <= 1, (p1, p2)
    assert 0 < p2["rate_tps"] <= THROTTLE_TPS * 1.5, p2
    assert p2["eta_seconds"] is not None and p2["eta_seconds"] > 0, p2
    print(f"progress: {p1} -> {p2}")
    metrics = raid.metrics()
    series = 'zeoraid_recovery_copied_transactions{member="m2"}'
    assert metrics.get(series, 0) >= p2["copied_transactions"], metrics
    assert 0 < metrics['zeoraid_recovery_fraction_done{member="m2"}'] < 1
    run = subprocess.run(
        [str(zeoraid_binary()), "ctl", "--timeout", str(HTTP_TIMEOUT),
         "--config", str(raid.conf), "details"],
        capture_output=True, text=True, timeout=HTTP_TIMEOUT + 10)
    assert run.returncode == 1, (run.stdout, run.stderr)
    assert "recovering" in run.stdout, run.stdout

    # A pack is refused while the recovery runs, with the reason.
    storage = raid.storage()
    with pytest.raises(Exception) as info:
        bounded(lambda: storage.pack(wait=True), "pack while recovering")
    print(f"pack while recovering: {info.value!r}")
    assert "pack refused: recovery of m2 is running" in str(info.value), \
        repr(info.value)

    # The target dies: the recovery stops, m2 is degraded.
    raid.cluster.kill_member("m2")
    d = raid.wait_details(
        lambda d: member(d, "m2")["state"] == "degraded"
        and (member(d, "m2")["last_recovery"] or "").startswith("stopped:"),
        "m2's recovery stopped")
    print(f"m2 killed: {member(d, 'm2')['last_recovery']}")
    assert d["status"] == "degraded", d
    acked += commit_many(db, "c", 3)

    # Started again, it resumes where its history ends.
    raid.cluster.restart_member("m2")
    middle = raid.member_last_tid("m2")
    assert before < middle < acked[-1][0], (before, middle)
    raid.wait_details(connected("m2"), "m2 connected again")
    assert raid.recover("m2") == "recovering 'm2' from 'm1'"
    d = raid.wait_details(copied("m2", 1), "m2 copying again")
    p3 = member(d, "m2")["recovery"]["progress"]
    assert before < bytes.fromhex(p3["started_from_tid"]) <= middle, p3
    fractions = []
    def watch(d):
        m = member(d, "m2")
        progress = (m["recovery"] or {}).get("progress")
        if progress:
            fractions.append(progress["fraction_done"])
        assert m["state"] in ("recovering", "optimal"), m
        return m["state"] == "optimal"
    d = raid.wait_details(watch, "m2 recovered", timeout=RECOVERY_TIMEOUT)
    assert member(d, "m2")["last_recovery"].startswith("recovered from m1")
    assert fractions == sorted(fractions), fractions
    assert all(0 <= f <= 1 for f in fractions), fractions
    print(f"fraction_done seen: {fractions[0]:.2f} .. {fractions[-1]:.2f}; "
          f"{member(d, 'm2')['last_recovery']}")
    assert d["status"] == "optimal", d
    metrics = raid.metrics()
    assert series not in metrics, metrics
    assert metrics["zeoraid_recovery_final_step_seconds_count"] == 1, metrics
    check_hold(raid, ["m1", "m2"], acked)
    wait_identical(raid, ["m1", "m2"])

    # Done: a pack is accepted again, on both members.
    acked += commit_many(db, "d", 2)
    bounded(lambda: storage.pack(wait=True), "pack after the recovery")
    wait_identical(raid, ["m1", "m2"])


@with_logs
def test_zeoraid_restarted_mid_recovery(raid):
    raid.start(2, recovery=f'auto = true\nstable_for = "2s"\n'
                           f'max_transactions_per_second = {THROTTLE_TPS}')
    db = raid.db()
    acked = commit_many(db, "a", 5)
    acked += miss_commits(raid, db, "m2", "b", 60)
    raid.close_clients()
    raid.cluster.restart_member("m2")
    before = raid.member_last_tid("m2")
    raid.wait_details(copied("m2", 5), "m2 recovering on its own")

    raid.kill_zeoraid()
    middle = raid.member_last_tid("m2")
    assert before < middle < acked[-1][0], (before, middle)
    log_size = raid.cluster.front.log.stat().st_size
    raid.start_zeoraid_again()
    # The array state says m2 is behind (it was recovering from there): it
    # stays degraded, with the kind and reason recorded before the
    # restart, while it recovers...
    d = raid.details()
    m2 = member(d, "m2")
    assert member(d, "m1")["state"] == "optimal", d
    assert m2["state"] in ("degraded", "recovering"), m2
    assert m2["kind"] == "behind", m2
    assert m2["reason"].startswith("reconnected with last tid"), m2
    with raid.cluster.front.log.open() as f:
        f.seek(log_size)
        log = f.read()
    assert 'array state restored' in log and 'degraded: ["m2"]' in log, log
    print(f"after the restart: m2 {m2['state']}, {m2['kind']}: "
          f"{m2['reason']}")
    # ...and recovered on its own, from where its history ends.
    d = raid.wait_details(copied("m2", 1), "m2 recovering again")
    progress = member(d, "m2")["recovery"]["progress"]
    assert before < bytes.fromhex(progress["started_from_tid"]) <= middle, \
        progress
    acked += commit_many(raid.db(), "c", 5)
    done = wait_recovered(raid, "m2")
    assert done["status"] == "optimal", done
    check_hold(raid, ["m1", "m2"], acked)
    wait_identical(raid, ["m1", "m2"])


# -- flap damping -------------------------------------------------------------

STABLE_FOR = 3


class Timeline(threading.Thread):
    """/details polled every 50 ms: (monotonic time, state, connected) of
    one member."""

    def __init__(self, raid, name):
        super().__init__(name="timeline", daemon=True)
        self.raid, self.member = raid, name
        self.samples = []
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            try:
                m = member(self.raid.details(), self.member)
            except Exception:
                pass
            else:
                self.samples.append(
                    (time.monotonic(), m["state"], m["connected"]))
            self.stopping.wait(0.05)

    def stop(self):
        self.stopping.set()
        self.join(HTTP_TIMEOUT)

    def connected_since(self, t):
        """When the member was first seen connected in the connection
        that is still up at time t."""
        since = None
        for when, _, up in self.samples:
            if when > t:
                break
            since = (since or when) if up else None
        return since


@with_logs
def test_flap_damping(raid):
    raid.start(2, recovery=f'auto = true\nstable_for = "{STABLE_FOR}s"')
    db = raid.db()
    acked = commit_many(db, "a", 3)
    acked += miss_commits(raid, db, "m2", "b", 3)

    timeline = Timeline(raid, "m2")
    timeline.start()
    try:
        # Bounce: back, gone again within a second, back.
        raid.cluster.restart_member("m2")
        raid.wait_details(connected("m2"), "m2 connected (1st time)")
        up = time.monotonic()
        raid.cluster.kill_member("m2")
        bounce = time.monotonic() - up
        assert bounce < 1.0, f"m2 was up {bounce:.2f}s"
        raid.wait_details(lambda d: not member(d, "m2")["connected"],
                          "m2 disconnected")
        raid.cluster.restart_member("m2")
        raid.wait_details(connected("m2"), "m2 connected (2nd time)")
        wait_recovered(raid, "m2", timeout=STABLE_FOR + RECOVERY_TIMEOUT)
    finally:
        timeline.stop()

    samples = timeline.samples
    first_recovering = next(
        (s for s in samples if s[1] in ("recovering", "optimal")), None)
    assert first_recovering is not None, samples
    since = timeline.connected_since(first_recovering[0])
    assert since is not None, samples
    waited = first_recovering[0] - since
    print(f"m2 bounced after {bounce:.2f}s; recovery seen {waited:.2f}s "
          f"after its last connection")
    # No recovery before it stayed connected stable_for (less the polling
    # interval and the time the observed connection may have been up
    # before it was seen).
    assert waited >= STABLE_FOR - 0.5, (waited, samples)
    assert waited <= STABLE_FOR + 10, (waited, samples)
    # Both connections scheduled an automatic recovery; one started.
    log = raid.cluster.front.log_tail(100000)
    assert log.count("automatic recovery scheduled, member: m2") == 2, log
    assert log.count("member recovering, member: m2") == 1, log
    check_hold(raid, ["m1", "m2"], acked)
    wait_identical(raid, ["m1", "m2"])
