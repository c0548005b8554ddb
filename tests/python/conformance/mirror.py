"""Mirroring checker: do ZEO servers hold identical transactions?

Opens a read-only `ClientStorage` to each member directly (not through
zeoraid) and walks `storage.iterator()` in step on all of them. Per
transaction it compares tid, status, user, description and extension;
per data record oid, tid, data and data_txn; for blob records also the
blob file's content (fetched with `loadBlob`). The first difference is
reported with where it is.

Members of different storage kinds (`kinds`: FileStorage beside
RelStorage, see member_storage.py) are compared on what both must agree
on, which is everything above but two things that say how a storage
keeps a record, not what the record is:

- data_txn (the back-pointer): FileStorage answers the tid of the
  transaction whose data a record reuses (an undo, a restore with
  prev_txn) and the data read through it; RelStorage copies the data
  and never answers a back-pointer (its iterator's records always have
  data_txn None). The data are compared all the same.
- the order of the records within a transaction: FileStorage keeps the
  order in which they were stored, RelStorage answers them by oid. Both
  members' records of a transaction are compared sorted by oid.
- an object stored twice in one transaction: FileStorage keeps both
  records (ZODB's Connection stores a new blob's object twice, the
  second time with its file; a plain runzeo does the same), RelStorage one
  state per object and transaction, the last one stored. The last record
  of each oid is compared, which is also what loading it at that
  transaction answers on both.

- the packed mark (status 'p' instead of ' '): a pack marks the
  transactions it went through, but FileStorage marks those it rewrote
  (up to the pack time, with records kept), RelStorage every transaction
  up to the pack time. The records a pack kept are compared all the same.

Members of one kind are compared strictly, in iteration order.

    from conformance.mirror import first_difference, wait_identical
    first_difference([("127.0.0.1", 9001), ("127.0.0.1", 9002)])  # None

From the command line (exit 0 if identical, 1 with the difference):

    .venv/bin/python -m conformance.mirror 127.0.0.1:9001 127.0.0.1:9002
    (run from tests/python)
"""

import hashlib
import os
import shutil
import sys
import tempfile
import time

STORAGE_NAME = "1"
CONNECT_TIMEOUT = 30


class Difference(AssertionError):
    pass


def _fmt_tid(tid):
    return tid.hex() if isinstance(tid, bytes) else repr(tid)


def _name(addr):
    return f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) else str(addr)


def _open(addr, blob_dir):
    from ZEO.ClientStorage import ClientStorage
    return ClientStorage(addr, storage=STORAGE_NAME, read_only=True,
                         wait=True, wait_timeout=CONNECT_TIMEOUT,
                         blob_dir=blob_dir, min_disconnect_poll=0.1)


def _blob_digest(storage, oid, tid):
    try:
        path = storage.loadBlob(oid, tid)
    except Exception as err:  # the same failure on every member is fine
        return ("error", type(err).__name__)
    with open(path, "rb") as f:
        return ("sha256", hashlib.sha256(f.read()).hexdigest())


def _txn_meta(txn, mixed):
    status = txn.status
    if mixed and status == "p":
        status = " "  # the packed mark differs by kind (module's doc)
    return {
        "tid": txn.tid,
        "status": status,
        "user": txn.user,
        "description": txn.description,
        "extension": txn.extension,
    }


def _record(storage, rec):
    from ZODB.blob import is_blob_record
    fields = {
        "oid": rec.oid,
        "tid": rec.tid,
        "data": rec.data,
        "data_txn": rec.data_txn,
    }
    if rec.data is not None and is_blob_record(rec.data):
        fields["blob"] = _blob_digest(storage, rec.oid, rec.tid)
    return fields


_END = object()


def _diff_fields(what, names, values):
    ref = values[0]
    for key in ref:
        for name, other in zip(names[1:], values[1:]):
            if other[key] != ref[key]:
                a, b = ref[key], other[key]
                if key in ("tid", "oid", "data_txn"):
                    a = _fmt_tid(a) if a is not None else None
                    b = _fmt_tid(b) if b is not None else None
                elif key == "data":
                    a = _short(a)
                    b = _short(b)
                return (f"{what}: {key} differs: {names[0]} has {a!r}, "
                        f"{name} has {b!r}")
    return None


def _short(data, limit=80):
    if data is None:
        return None
    if len(data) <= limit:
        return data
    return data[:limit] + b"...(%d bytes, sha256 %s)" % (
        len(data), hashlib.sha256(data).hexdigest()[:16].encode())


def _records(txn, mixed):
    """A transaction's records: in its own order, or the last of each oid
    by oid when storages of different kinds are compared (see the
    module's doc)."""
    if not mixed:
        return iter(txn)
    last = {rec.oid: rec for rec in txn}
    return iter(sorted(last.values(), key=lambda rec: rec.oid))


def compare_storages(names, storages, kinds=None):
    """Walk the storages' iterators in step; return the first difference
    as a string, or None if all hold identical transactions. kinds: each
    storage's kind (e.g. "filestorage", "relstorage-pg"); storages of
    different kinds are compared on what both must agree on (see the
    module's doc)."""
    mixed = kinds is not None and len(set(kinds)) > 1
    iterators = [s.iterator() for s in storages]
    count = 0
    while True:
        txns = [next(it, _END) for it in iterators]
        ended = [t is _END for t in txns]
        if all(ended):
            return None
        if any(ended):
            have = [n for n, e in zip(names, ended) if not e]
            lacking = [n for n, e in zip(names, ended) if e]
            tids = {_fmt_tid(t.tid) for t in txns if t is not _END}
            return (f"after {count} identical transactions, "
                    f"{', '.join(have)} have transaction "
                    f"{', '.join(sorted(tids))} that "
                    f"{', '.join(lacking)} lack (end of iteration)")
        metas = [_txn_meta(t, mixed) for t in txns]
        where = f"transaction #{count} (tid {_fmt_tid(metas[0]['tid'])})"
        diff = _diff_fields(where, names, metas)
        if diff:
            return diff
        record_iters = [_records(t, mixed) for t in txns]
        rcount = 0
        while True:
            recs = [next(it, _END) for it in record_iters]
            rended = [r is _END for r in recs]
            if all(rended):
                break
            if any(rended):
                counts = []
                for n, e in zip(names, rended):
                    counts.append(f"{n} {'ends' if e else 'has more'}")
                return (f"{where}: record count differs after {rcount} "
                        f"records: {', '.join(counts)}")
            fields = [_record(s, r) for s, r in zip(storages, recs)]
            if mixed:  # no back-pointers across kinds (module's doc)
                for f in fields:
                    f.pop("data_txn")
            diff = _diff_fields(
                f"{where}, record #{rcount} (oid "
                f"{_fmt_tid(fields[0]['oid'])})", names, fields)
            if diff:
                return diff
            rcount += 1
        count += 1


def first_difference(addrs, kinds=None):
    """Connect to every address (read-only) and compare. Returns the first
    difference as a string, or None if all are identical. kinds: see
    compare_storages."""
    if len(addrs) < 2:
        return None
    tmp = tempfile.mkdtemp(prefix="zeoraid-mirror-")
    storages = []
    try:
        for i, addr in enumerate(addrs):
            storages.append(_open(addr, os.path.join(tmp, f"blobs{i}")))
        names = [_name(a) for a in addrs]
        last = [s.lastTransaction() for s in storages]
        if len(set(last)) > 1:
            return "last transactions differ: " + ", ".join(
                f"{n} {_fmt_tid(t)}" for n, t in zip(names, last))
        return compare_storages(names, storages, kinds)
    finally:
        for s in storages:
            s.close()
        shutil.rmtree(tmp, ignore_errors=True)


def wait_identical(addrs, timeout=15.0, kinds=None):
    """Poll first_difference until the members are identical (a member may
    still be finishing the last commit or a pack) or timeout seconds pass;
    then raise Difference with the last difference seen. kinds: see
    compare_storages."""
    deadline = time.monotonic() + timeout
    while True:
        diff = first_difference(addrs, kinds)
        if diff is None:
            return
        if time.monotonic() >= deadline:
            raise Difference(
                f"members {', '.join(_name(a) for a in addrs)} are not "
                f"identical after {timeout}s: {diff}")
        time.sleep(0.2)


def _parse(text):
    host, _, port = text.rpartition(":")
    return (host, int(port))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    diff = first_difference([_parse(a) for a in argv])
    if diff is None:
        print("identical")
        return 0
    print(diff)
    return 1


if __name__ == "__main__":
    sys.exit(main())
