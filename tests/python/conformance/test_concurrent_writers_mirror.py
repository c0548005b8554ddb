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

from ZEO.ClientStorage import ClientStorage

from . import mirror, relstorage_exclusions
from .workload import Workload, record_state

WRITERS = 4
COMMITS = 50
WORKLOAD_TIMEOUT = 240    # seconds for the whole workload


def test_concurrent_writers_mirror(clusters, target):
    relstorage_exclusions.skip_if_excluded(
        target, "test_concurrent_writers_mirror")
    cluster = clusters.start()
    load = Workload(cluster.addr, WRITERS, COMMITS, WORKLOAD_TIMEOUT)
    acked = load.finish()
    tids = [tid for tid, _ in acked]

    # The members are identical...
    mirror.wait_identical(cluster.member_addrs, timeout=30,
                          kinds=cluster.member_storage_kinds)

    # ...and each holds every acknowledged commit, as written.
    for member in cluster.members:
        storage = ClientStorage(member.addr, read_only=True, wait_timeout=30)
        try:
            for tid, values in acked:
                for oid, value in values.items():
                    data = storage.loadSerial(oid, tid)
                    got = record_state(data)["value"]
                    assert got == value, (
                        f"member {member.name}: oid {oid.hex()} at tid "
                        f"{tid.hex()} holds {got!r}, acknowledged {value!r}")
            assert storage.lastTransaction() == max(tids)
        finally:
            storage.close()
    print(f"{target}: {len(acked)} commits, "
          f"{load.conflicts} conflicts retried")
