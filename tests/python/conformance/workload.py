"""A concurrent write workload through one ZEO address, shared by the
conformance and failure tests.

`Workload(addr, writers, commits, timeout)` starts `writers` threads, each
with its own ClientStorage and DB, committing `commits` transactions (or
fewer, if `stop()` is called first): each
increments a shared counter (so writers conflict and retry) and sets the
writer's own object to (writer, n). Every acknowledged commit is recorded
as (tid, {oid: value written}); `finish()` joins the writers and checks
that none saw an error, that no tid was acknowledged twice and that the
counter values acknowledged are exactly 1..N in tid order.

The values recorded are those written, never read back after the commit:
by then a later commit's invalidation may already have refreshed the
shared counter (the connection processes invalidations when its
transaction completes).
"""

import random
import threading
import time
from io import BytesIO

import transaction
import ZODB
from ZEO.ClientStorage import ClientStorage
from ZODB.POSException import ConflictError
from ZODB.tests.MinPO import MinPO
from ZODB._compat import Unpickler

MAX_ATTEMPTS = 200   # per transaction, conflicts included
JOIN_SLACK = 30      # seconds past the deadline a writer may take to stop


def record_state(data):
    """The state of a ZODB data record (a class pickle, then the state)."""
    unpickler = Unpickler(BytesIO(data))
    unpickler.persistent_load = lambda ref: ref
    unpickler.load()
    return unpickler.load()


class Writer(threading.Thread):

    def __init__(self, workload, number):
        super().__init__(name=f"writer-{number}", daemon=True)
        self.workload, self.number = workload, number
        self.acked = []      # (tid, {oid: value}) per acknowledged commit
        self.conflicts = 0
        self.error = None

    def run(self):
        try:
            self._run()
        except BaseException as err:  # reported by finish()
            self.error = err

    def _run(self):
        load = self.workload
        db = load.db()
        tm = transaction.TransactionManager()
        conn = db.open(tm)
        try:
            for n in range(load.commits):
                if load.stopping.is_set():
                    break
                self._commit(conn, tm, n)
                if load.pace:
                    # Load shaping, not synchronisation: without a pause
                    # one writer can win the shared counter again and
                    # again while the others starve in conflict retries.
                    load.stopping.wait(random.uniform(0, load.pace))
        finally:
            conn.close()
            db.close()

    def _commit(self, conn, tm, n):
        for attempt in range(MAX_ATTEMPTS):
            if time.monotonic() > self.workload.deadline:
                raise TimeoutError(f"{self.name}: out of time at commit {n}")
            tm.begin()
            root = conn.root()
            shared, mine = root["shared"], root[f"w{self.number}"]
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
                shared._p_oid: written_count,
                mine._p_oid: (self.number, n),
            }))
            return
        raise AssertionError(f"{self.name}: commit {n} still conflicting "
                             f"after {MAX_ATTEMPTS} attempts")


class Workload:

    def __init__(self, addr, writers, commits, timeout, wait_timeout=60,
                 storage="1", pace=0.0):
        """pace: each writer pauses a random 0..pace seconds after each
        commit."""
        self.addr, self.commits = addr, commits
        self.storage, self.wait_timeout = storage, wait_timeout
        self.pace = pace
        self.stopping = threading.Event()
        db = self.db()
        try:
            conn = db.open()
            root = conn.root()
            root["shared"] = MinPO(0)
            for i in range(writers):
                root[f"w{i}"] = MinPO(None)
            transaction.commit()
            conn.close()
        finally:
            db.close()
        self.deadline = time.monotonic() + timeout
        self.writers = [Writer(self, i) for i in range(writers)]
        for w in self.writers:
            w.start()

    def db(self):
        return ZODB.DB(ClientStorage(self.addr, storage=self.storage,
                                     wait_timeout=self.wait_timeout))

    def stop(self):
        """Writers stop after the commit they are in."""
        self.stopping.set()

    def errors(self):
        return [f"{w.name}: {w.error!r}" for w in self.writers if w.error]

    def acked_count(self):
        return sum(len(w.acked) for w in self.writers)

    @property
    def conflicts(self):
        return sum(w.conflicts for w in self.writers)

    def wait_acked(self, count, timeout=None):
        """Wait until count commits are acknowledged (at most timeout
        seconds, or until the workload's deadline)."""
        deadline = self.deadline if timeout is None \
            else time.monotonic() + timeout
        while self.acked_count() < count:
            assert not self.errors(), self.errors()
            assert time.monotonic() < deadline, (
                f"only {self.acked_count()} commits acknowledged, "
                f"waiting for {count}")
            time.sleep(0.01)

    def finish(self):
        """Join the writers; check that none saw an error and that the
        acknowledged commits are consistent. Returns them, tid ordered."""
        for w in self.writers:
            w.join(max(self.deadline - time.monotonic(), 0) + JOIN_SLACK)
        stuck = [w.name for w in self.writers if w.is_alive()]
        assert not stuck, f"writers still running: {stuck}"
        assert not self.errors(), f"writers saw errors: {self.errors()}"
        acked = sorted((a for w in self.writers for a in w.acked),
                       key=lambda a: a[0])
        if not self.stopping.is_set():
            assert len(acked) == len(self.writers) * self.commits
        tids = [tid for tid, _ in acked]
        assert len(set(tids)) == len(tids), "a tid was acknowledged twice"
        # Every commit incremented the counter exactly once: the counter
        # values acknowledged are 1..N, in tid order.
        shared = [v for _, values in acked for v in values.values()
                  if isinstance(v, int)]
        assert shared == list(range(1, len(acked) + 1))
        return acked
