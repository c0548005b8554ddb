"""zeoraid's peak memory with large blobs (bench/run --blob-memory).

Two measurements, each on a fresh zeoraid in front of members with blob
directories, on disk (not tmpfs: the blobs are large):

  * one client commits one blob of --blob-commit-mb (default 1024) MB
    through an array of 2 members;
  * --blob-readers (default 100) clients, each with its own blob cache,
    load the same blob of --blob-read-mb (default 100) MB at the same time
    (1 member; zeoraid restarted after the upload, so the peak is the
    reads' alone).

The figure is zeoraid's VmHWM (peak resident set) from /proc, before and
after. Nothing is asserted: the numbers are for docs/performance.md.
"""

import os
import shutil
import threading
import time

import bench


def start_blob_runzeo(procs, python, name, d, port):
    """runzeo with a FileStorage and a blob directory (a config file: the
    command line has no blob option)."""
    conf = os.path.join(d, "zeo.conf")
    with open(conf, "w") as fh:
        fh.write("<zeo>\n  address 127.0.0.1:%d\n</zeo>\n"
                 "<filestorage>\n  path %s\n  blob-dir %s\n</filestorage>\n"
                 % (port, os.path.join(d, "Data.fs"), os.path.join(d, "blobs")))
    runzeo = os.path.join(os.path.dirname(python), "runzeo")
    p = procs.start(name, [runzeo, "-C", conf])
    bench.wait_listening(p, name, port)
    return p


class BlobArray(bench.Array):
    """bench.Array whose members keep blobs."""

    def add_member_server(self, name):
        port = bench.free_port()
        d = os.path.join(self.dir, name)
        os.makedirs(d)
        p = start_blob_runzeo(self.procs, self.python, name + "-" + os.path.basename(self.dir), d, port)
        self.members.append((name, port, p))
        return port


def peak_kb(pid):
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM for pid %d" % pid)


def client(port, blob_dir):
    import ZEO.ClientStorage
    return ZEO.ClientStorage.ClientStorage(("127.0.0.1", port), blob_dir=blob_dir,
                                           shared_blob_dir=False, wait_timeout=60)


def commit_blob(port, workdir, megabytes):
    """Commits one blob of `megabytes` MB; returns (oid, serial)."""
    import transaction
    import ZODB
    from ZODB.blob import Blob
    storage = client(port, os.path.join(workdir, "writer-cache"))
    db = ZODB.DB(storage)
    try:
        conn = db.open()
        blob = Blob()
        block = os.urandom(1 << 20)
        with blob.open("w") as fh:
            for i in range(megabytes):
                fh.write(block[i % 256:] + block[:i % 256])
        conn.root()["blob"] = blob
        transaction.commit()
        return blob._p_oid, storage.lastTransaction()
    finally:
        db.close()
        shutil.rmtree(os.path.join(workdir, "writer-cache"), ignore_errors=True)


def read_concurrently(port, workdir, oid, serial, readers):
    """`readers` clients load the blob at the same moment; returns the
    seconds the slowest took and how many read the whole file."""
    storages = [client(port, os.path.join(workdir, "reader-%d" % i)) for i in range(readers)]
    barrier = threading.Barrier(readers)
    sizes, errors = [], []

    def read(storage):
        barrier.wait()
        try:
            sizes.append(os.path.getsize(storage.loadBlob(oid, serial)))
        except Exception as e:  # reported, not raised: the peak is still measured
            errors.append(repr(e))

    threads = [threading.Thread(target=read, args=(s,)) for s in storages]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.time() - t0
    for i, s in enumerate(storages):
        s.close()
        shutil.rmtree(os.path.join(workdir, "reader-%d" % i), ignore_errors=True)
    return took, sizes, errors


def measure(procs, python, zeoraid_bin, workdir, a):
    out = {}
    arr = BlobArray(procs, python, zeoraid_bin, os.path.join(workdir, "commit"), 2)
    try:
        before = peak_kb(arr.proc.pid)
        t0 = time.time()
        commit_blob(arr.port, arr.dir, a.blob_commit_mb)
        out["commit"] = {"members": 2, "blob_mb": a.blob_commit_mb,
                         "seconds": round(time.time() - t0, 1),
                         "zeoraid_peak_kb_before": before,
                         "zeoraid_peak_kb": peak_kb(arr.proc.pid)}
    finally:
        arr.stop()
        shutil.rmtree(arr.dir, ignore_errors=True)
    bench.log("blob commit: %s" % out["commit"])
    arr = BlobArray(procs, python, zeoraid_bin, os.path.join(workdir, "read"), 1)
    try:
        oid, serial = commit_blob(arr.port, arr.dir, a.blob_read_mb)
        arr.restart()
        before = peak_kb(arr.proc.pid)
        took, sizes, errors = read_concurrently(arr.port, arr.dir, oid, serial, a.blob_readers)
        out["read"] = {"members": 1, "readers": a.blob_readers, "blob_mb": a.blob_read_mb,
                       "seconds": round(took, 1),
                       "whole_files": sum(1 for s in sizes if s == a.blob_read_mb << 20),
                       "sizes_read": sorted(set(sizes)),
                       "errors": errors[:3],
                       "zeoraid_peak_kb_before": before,
                       "zeoraid_peak_kb": peak_kb(arr.proc.pid)}
    finally:
        arr.stop()
        shutil.rmtree(arr.dir, ignore_errors=True)
    bench.log("blob reads: %s" % out["read"])
    return out
