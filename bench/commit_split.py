"""Where a mirrored commit's time goes: the client's wait against the members'.

    .venv/bin/python bench/commit_split.py [--members 1,2,3] [--link-delay-us 0]
                                           [--commits 500]

For each member count: N runzeo members on tmpfs (each behind
examples/link_delay when --link-delay-us is given), zeoraid in front, and
one raw connection committing one-object transactions one after the other
(tpc_begin and storea sent at once, then vote and tpc_finish waited for,
as ClientStorage does). Printed per member count, in milliseconds:

  * the client's mean wait for `vote` and for `tpc_finish`;
  * each member's mean time for the same call, as zeoraid timed it (from
    the moment it sent the call to the member's answer: the member's work
    plus the link), from zeoraid's `zeoraid_member_call_duration_seconds`;
  * zeoraid's own share: the client's wait minus the slowest member's.

If zeoraid asked the members one after the other, the client's wait would
be the sum of the members' times; if in parallel, their maximum plus
zeoraid's own share. The means cover the same commits on both sides (the
metrics are read before and after).
"""

import argparse
import os
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import zeo_bench  # noqa: E402
import blob_memory  # noqa: E402  (imports bench as the module every tool shares)

bench = blob_memory.bench
METHODS = ("vote", "tpc_finish")


def member_calls(arr):
    """{(member, method): (sum seconds, count)} from zeoraid's metrics."""
    out = {}
    url = "http://127.0.0.1:%d/metrics" % arr.http_port
    with urllib.request.urlopen(url, timeout=10) as r:
        for line in r.read().decode().splitlines():
            if not line.startswith("zeoraid_member_call_duration_seconds_"):
                continue
            name, value = line.rsplit(" ", 1)
            labels = dict(kv.split("=", 1) for kv in name[name.index("{") + 1:-1].split(","))
            member, method = labels["member"].strip('"'), labels["method"].strip('"')
            if method not in METHODS:
                continue
            total, count = out.get((member, method), (0.0, 0))
            if name.startswith("zeoraid_member_call_duration_seconds_sum"):
                out[(member, method)] = (float(value), count)
            elif name.startswith("zeoraid_member_call_duration_seconds_count"):
                out[(member, method)] = (total, int(float(value)))
    return out


def commit_loop(port, commits):
    """Mean client wait for vote and for tpc_finish, in seconds."""
    c = zeo_bench.RawConn(("127.0.0.1", port))
    try:
        c.call("register", "1", False)
        oid = c.call("new_oids")[0]
        _, record, _ = zeo_bench.setup_corpus(("127.0.0.1", port), "1", 10, 30)
        serial, waits = b"\0" * 8, {m: 0.0 for m in METHODS}
        for _ in range(commits):
            c.sock.sendall(c.frame(0, True, "tpc_begin", (7, b"", b"", {}, None, " "))
                           + c.frame(0, True, "storea", (oid, serial, record, 7)))
            t0 = time.perf_counter()
            c.call("vote", 7)
            t1 = time.perf_counter()
            serial = c.call("tpc_finish", 7)
            waits["vote"] += t1 - t0
            waits["tpc_finish"] += time.perf_counter() - t1
        return {m: w / commits for m, w in waits.items()}
    finally:
        c.close()


def split(a, n, workdir, procs):
    link = (a.link_delay_bin, a.link_delay_us) if a.link_delay_us else None
    arr = bench.Array(procs, sys.executable, a.zeoraid, workdir, n, link=link)
    try:
        commit_loop(arr.port, 50)  # warm-up: connections, caches, the corpus
        before = member_calls(arr)
        client = commit_loop(arr.port, a.commits)
        after = member_calls(arr)
    finally:
        arr.stop()
    rows = []
    for method in METHODS:
        members = {}
        for (member, m), (total, count) in after.items():
            if m == method:
                t0, c0 = before.get((member, m), (0.0, 0))
                members[member] = (total - t0) / max(count - c0, 1)
        slowest = max(members.values())
        rows.append("  %-10s client %.3f ms | members %s | zeoraid's own %.3f ms" % (
            method, client[method] * 1000,
            ", ".join("%s %.3f" % (k, v * 1000) for k, v in sorted(members.items())),
            (client[method] - slowest) * 1000))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", default="1,2,3")
    ap.add_argument("--link-delay-us", type=int, default=0)
    ap.add_argument("--commits", type=int, default=500)
    ap.add_argument("--zeoraid", default=os.path.join(ROOT, "target/release/zeoraid"))
    ap.add_argument("--link-delay-bin", default=os.path.join(ROOT, "target/release/examples/link_delay"))
    a = ap.parse_args()
    with bench.scratch("zeoraid-commit-split") as (workdir, procs):
        for n in [int(x) for x in a.members.split(",") if x]:
            print("%d member%s, link delay %d us each way, %d commits:" % (
                n, "" if n == 1 else "s", a.link_delay_us, a.commits))
            for row in split(a, n, workdir, procs):
                print(row)


if __name__ == "__main__":
    main()
