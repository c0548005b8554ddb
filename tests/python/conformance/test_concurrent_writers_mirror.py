"""A concurrent workload through one target: WRITERS clients (each its own
ClientStorage and DB, in its own thread) commit COMMITS transactions each.
Every transaction increments a shared counter (so writers conflict and
retry) and sets the writer's own object to (writer, n). Each writer
records what was acknowledged: the tid of every successful commit and the
values it wrote.

Then: the members are identical (mirror check), and every acknowledged
commit is readable from every member directly, with the values written
(loadSerial at the acknowledged tid), and the counter ends at the number
of commits.
"""

import threading
import time
from io import BytesIO

import transaction
import ZODB
from ZEO.ClientStorage import ClientStorage
from ZODB.POSException import ConflictError
from ZODB.tests.MinPO import MinPO
from ZODB._compat import Unpickler

from . import mirror

WRITERS = 4
COMMITS = 50
MAX_ATTEMPTS = 200        # per transaction, conflicts included
WORKLOAD_TIMEOUT = 240    # seconds for the whole workload


def record_state(data):
    """The state of a ZODB data record (a class pickle, then the state)."""
    unpickler = Unpickler(BytesIO(data))
    unpickler.persistent_load = lambda ref: ref
    unpickler.load()
    return unpickler.load()


def client(addr):
    return ClientStorage(addr, wait_timeout=60)


class Writer(threading.Thread):

    def __init__(self, number, addr, deadline):
        super().__init__(name=f"writer-{number}", daemon=True)
        self.number, self.addr, self.deadline = number, addr, deadline
        self.acked = []      # (tid, {oid: value}) per acknowledged commit
        self.conflicts = 0
        self.error = None

    def run(self):
        try:
            self._run()
        except BaseException as err:  # reported by the test
            self.error = err

    def _run(self):
        db = ZODB.DB(client(self.addr))
        tm = transaction.TransactionManager()
        conn = db.open(tm)
        try:
            for n in range(COMMITS):
                self._commit(conn, tm, n)
        finally:
            conn.close()
            db.close()

    def _commit(self, conn, tm, n):
        for attempt in range(MAX_ATTEMPTS):
            if time.monotonic() > self.deadline:
                raise TimeoutError(f"{self.name}: out of time at commit {n}")
            tm.begin()
            root = conn.root()
            shared, mine = root["shared"], root[f"w{self.number}"]
            # The values written are kept here: after the commit, a later
            # commit's invalidation may already have refreshed `shared`
            # (the connection processes invalidations when the transaction
            # completes), so reading it back would report someone else's
            # value.
            written_count = shared.value + 1
            shared.value = written_count
            mine.value = (self.number, n)
            try:
                tm.commit()
            except ConflictError:
                tm.abort()
                self.conflicts += 1
                continue
            # Only this writer changes `mine`: its serial is the new tid.
            self.acked.append((mine._p_serial, {
                shared._p_oid: ("shared", written_count),
                mine._p_oid: ("mine", (self.number, n)),
            }))
            return
        raise AssertionError(f"{self.name}: commit {n} still conflicting "
                             f"after {MAX_ATTEMPTS} attempts")


def test_concurrent_writers_mirror(clusters, target):
    cluster = clusters.start()
    db = ZODB.DB(client(cluster.addr))
    try:
        conn = db.open()
        root = conn.root()
        root["shared"] = MinPO(0)
        for i in range(WRITERS):
            root[f"w{i}"] = MinPO(None)
        transaction.commit()
        conn.close()
    finally:
        db.close()

    deadline = time.monotonic() + WORKLOAD_TIMEOUT
    writers = [Writer(i, cluster.addr, deadline) for i in range(WRITERS)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(max(deadline - time.monotonic(), 0) + 30)
    stuck = [w.name for w in writers if w.is_alive()]
    assert not stuck, f"writers still running: {stuck}"
    errors = [f"{w.name}: {w.error!r}" for w in writers if w.error]
    assert not errors, errors

    acked = [a for w in writers for a in w.acked]
    assert len(acked) == WRITERS * COMMITS
    tids = [tid for tid, _ in acked]
    assert len(set(tids)) == len(tids), "a tid was acknowledged twice"
    # Every commit incremented the counter exactly once: the counter values
    # acknowledged are 1..N, in tid order.
    counts = [values for _, values in sorted(acked)]
    shared_values = [v for values in counts
                     for kind, v in values.values() if kind == "shared"]
    assert shared_values == list(range(1, len(acked) + 1))

    # The members are identical...
    mirror.wait_identical(cluster.member_addrs, timeout=30)

    # ...and each holds every acknowledged commit, as written.
    for member in cluster.members:
        storage = ClientStorage(member.addr, read_only=True, wait_timeout=30)
        try:
            for tid, values in acked:
                for oid, (kind, value) in values.items():
                    data = storage.loadSerial(oid, tid)
                    got = record_state(data)["value"]
                    assert got == value, (
                        f"member {member.name}: oid {oid.hex()} at tid "
                        f"{tid.hex()} holds {got!r}, acknowledged {value!r}")
            assert storage.lastTransaction() == max(tids)
        finally:
            storage.close()
    print(f"{target}: {len(acked)} commits, "
          f"{sum(w.conflicts for w in writers)} conflicts retried")
