#!/usr/bin/env python3
"""Instructions zeoraid executes per operation, counted by callgrind: a
measure that, unlike time, does not depend on what else the machine does.

    python bench/instructions.py BINARY [BINARY ...] [--reads N] [--commits N] [--keep DIR]

For each zeoraid BINARY: one runzeo member (FileStorage in a temporary
directory), zeoraid in front of it under `valgrind --tool=callgrind`, then
over one raw ZEO connection (bench/zeo_bench.py's RawConn, which sends what
ClientStorage sends) a warm-up, then N `loadBefore` round trips of one
object, then N one-object commits (async tpc_begin + storea, sync vote and
tpc_finish). Callgrind's counters are zeroed before and dumped after each
workload (callgrind_control), so the counts are the daemon's instructions
(user space, every thread) for that workload only, divided by N.
The last line of stdout is `INSTRUCTIONS {"BINARY": {"load": n, "commit": n}}`.
Needs valgrind; the Python of scripts/python-env (ZEO).
"""

import argparse
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zeo_bench import RawConn, Z64  # noqa: E402

READY_TIMEOUT = 120.0   # zeoraid under callgrind starts ~50x slower
DUMP_TIMEOUT = 60.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_connect(addr, timeout):
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = RawConn(addr, timeout=5)
            conn.call("register", "1", False)
            return conn
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def commit(conn, txid, oid, serial, data):
    frame = conn.frame
    conn.sock.sendall(frame(0, True, "tpc_begin", (txid, b"", b"", {}, None, " "))
                      + frame(0, True, "storea", (oid, serial, data, txid)))
    conn.call("vote", txid)
    return conn.call("tpc_finish", txid)


class Workloads:
    def __init__(self, conn):
        self.conn = conn
        self.oid = conn.call("new_oids")[0]
        self.serial = Z64
        self.txid = 0x7F3A00000000
        self.data = b"x" * 300

    def commits(self, n):
        for _ in range(n):
            self.txid += 16
            self.serial = commit(self.conn, self.txid, self.oid, self.serial, self.data)

    def loads(self, n):
        before = b"\x7f" + b"\xff" * 7
        for _ in range(n):
            answer = self.conn.call("loadBefore", self.oid, before)
            assert answer and len(answer) == 3, answer


def dump(pid, out_prefix):
    """Dumps callgrind's counters of `pid`; returns the instructions."""
    before = set(glob.glob(f"{out_prefix}.*"))
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + DUMP_TIMEOUT
    while time.monotonic() < deadline:
        new = set(glob.glob(f"{out_prefix}.*")) - before
        for path in new:
            text = Path(path).read_text(errors="replace")
            for line in text.splitlines():
                if line.startswith(("totals:", "summary:")):
                    return int(line.split()[1])
        time.sleep(0.2)
    raise RuntimeError(f"no callgrind dump of {pid}")


def measure(binary, reads, commits, python, keep=None):
    with tempfile.TemporaryDirectory(prefix="zr-instr-") as tmp:
        tmp = Path(tmp)
        member_port, port, http = free_port(), free_port(), free_port()
        (tmp / "zeo.conf").write_text(
            f"<zeo>\n address 127.0.0.1:{member_port}\n</zeo>\n"
            f"<filestorage 1>\n path {tmp / 'Data.fs'}\n</filestorage>\n")
        (tmp / "zeoraid.toml").write_text(
            f'listen = "127.0.0.1:{port}"\nstate_dir = "{tmp / "state"}"\n'
            f'[http]\nlisten = "127.0.0.1:{http}"\n[log]\nlevel = "warning"\n'
            f'[[members]]\nname = "zeo1"\naddress = "127.0.0.1:{member_port}"\n')
        member = subprocess.Popen([python, "-m", "ZEO.runzeo", "-C", str(tmp / "zeo.conf")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out_prefix = str(tmp / "callgrind.out")
        zeoraid = None
        try:
            wait_connect(("127.0.0.1", member_port), READY_TIMEOUT).close()
            zeoraid = subprocess.Popen(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_prefix}",
                 binary, "serve", "--config", str(tmp / "zeoraid.toml")],
                stdout=subprocess.DEVNULL, stderr=open(tmp / "zeoraid.log", "w"))
            conn = wait_connect(("127.0.0.1", port), READY_TIMEOUT)
            work = Workloads(conn)
            work.commits(50)
            work.loads(100)
            counts = {}
            for name, run, n in (("load", work.loads, reads), ("commit", work.commits, commits)):
                subprocess.run(["callgrind_control", "-z", str(zeoraid.pid)], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                run(n)
                counts[name] = round(dump(zeoraid.pid, out_prefix) / n)
                if keep:
                    # The newest dump is this workload's: keep it for callgrind_annotate.
                    newest = max(glob.glob(f"{out_prefix}.*"), key=os.path.getmtime)
                    os.makedirs(keep, exist_ok=True)
                    shutil.copy(newest, os.path.join(keep, f"callgrind.{name}"))
            conn.close()
            return counts
        finally:
            for proc in (zeoraid, member):
                if proc is not None:
                    proc.terminate()
                    try:
                        proc.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("binaries", nargs="+")
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--commits", type=int, default=1000)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--keep", metavar="DIR",
                        help="keep each workload's callgrind dump in DIR/<n>/callgrind.<workload> "
                        "(n: the binary's position), for callgrind_annotate")
    a = parser.parse_args()
    results = {}
    for i, binary in enumerate(a.binaries):
        keep = os.path.join(a.keep, str(i)) if a.keep else None
        results[binary] = measure(binary, a.reads, a.commits, a.python, keep)
        print(binary, results[binary], flush=True)
    print("INSTRUCTIONS " + json.dumps(results))


if __name__ == "__main__":
    main()
