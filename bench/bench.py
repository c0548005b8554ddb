"""zeoraid side by side with plain ZEO: the project's benchmark.

    bench/run [--members 1,2,3] [--rounds 5] [--duration 1.2] [--workloads a,b]
              [--idle-clients 100] [--soak 0] [--recovery 2000] [--floor]
              [--link-delay-us 500] [--leader] [--tls] [--blob-memory] [--out DIR]

For each member count it starts, on tmpfs, one plain `runzeo` (the
reference), N `runzeo` members and zeoraid in front of them (the target),
and runs bench/zeo_bench.py against both, interleaved round by round (see
docs/performance.md). zeoraid's own process is the one passed as `--target-pids`,
so the CPU columns are zeoraid's CPU per operation, not its members'.

With --floor, before the member counts, one more comparison: the floor any
proxy has on this machine. examples/tcp_relay (a do-nothing byte relay on a
current-thread runtime, built by bench/run) in front of its own fresh
`runzeo` is the target, against the same plain reference, with the same
workloads, rounds and duration, and the relay's pid as `--target-pids`.
Its ratio is what the extra loopback hop alone costs; the rest of zeoraid's
gap is zeoraid's own work. Then zeoraid with 1 member against that relay
(in front of its own runzeo), side by side in the same rounds: the first
target's ratio, +p50 and CPU per operation measured directly, since two
blocks run minutes apart see a machine whose speed drifts.

With --link-delay-us US, members on other hosts: examples/link_delay adds
US microseconds each way in front of each member, and in front of a fresh
runzeo that is the reference of this profile. First that linked runzeo
against the plain one (what the link itself costs, measured on its own),
then zeoraid with --link-members (1,2,3) linked members against it, with
--link-workloads.

With --mirror, zeoraid with 2 members against zeoraid with 1 member, side
by side in the same rounds, on --mirror-workloads: the mirroring target
measured directly.

With --leader, the multi-zeoraid leader (a [cluster] zeoraid elected on an
etcd started here, a standby zeoraid beside it) against a single zeoraid,
side by side, one member each. With --tls, zeoraid speaking TLS to its
clients and to its member (certificates made with openssl) against a
runzeo speaking TLS, one member.

At the end, every target of the performance issue is checked against the
figures of this run (bench/targets.py) and printed: met, not met, or not
measured when its profile was not asked for.

Then, with the last member count:
  * RSS of zeoraid before and after 100 idle client connections
    (handshake, register, get_info, lastTransaction: what an idle
    ClientStorage holds);
  * with --soak S: a mixed run of S seconds, zeoraid's RSS sampled every
    10 s (growth = last sample minus the first after warm-up);
  * with --recovery K: K one-object commits written to a 1-member array,
    an empty member added by reload and recovered, unthrottled, while 4
    raw writers keep committing: recovery transactions/s and MB/s, and
    the writers' commits/s during recovery against before it;
  * with --blob-memory: zeoraid's peak memory for a 1 GB blob commit with
    2 members and for 100 clients reading a 100 MB blob at once
    (bench/blob_memory.py; `--members "" --idle-clients 0 --blob-memory`
    runs only that).

Everything is written to --out (default bench/results/<time>/): each
zeo_bench JSON, and summary.json / summary.md with one table per member
count, the relay floor's table and the extra measurements. Nothing here is
a test: no threshold is asserted, the numbers are for docs/performance.md.
"""

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import zeo_bench  # noqa: E402  (the side-by-side driver, also used as a library)
import blob_memory  # noqa: E402
import targets  # noqa: E402

WORKLOADS = list(zeo_bench.WORKLOADS)


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for pid %d" % pid)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Processes:
    """Every process this run starts; all are stopped at exit, whatever happens."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []

    def start(self, name, argv, **kw):
        logf = open(os.path.join(self.workdir, name + ".log"), "ab")
        p = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, **kw)
        self.procs.append((name, p))
        return p

    def stop(self, p, timeout=10):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop_all(self):
        for _, p in reversed(self.procs):
            self.stop(p)
        self.procs = []


@contextlib.contextmanager
def scratch(name):
    """A working directory on tmpfs (no fsync is measured) and the
    processes started there: all stopped, and the directory removed, at
    the end whatever happens."""
    workdir = "/dev/shm/%s-%d" % (name, os.getpid())
    os.makedirs(workdir)
    procs = Processes(workdir)
    try:
        yield workdir, procs
    finally:
        procs.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)


class Array:
    """N runzeo members on tmpfs and one zeoraid in front of them."""

    def __init__(self, procs, python, zeoraid_bin, workdir, n_members, link=None,
                 cluster=None, name=None, tls=None):
        """`link`: (link_delay binary, delay µs): each member behind its
        own delaying relay, as if on another host. `cluster`: an etcd URL:
        zeoraid runs with a [cluster] table (the elected leader serves).
        `tls`: the Certificates: clients, zeoraid and members speak TLS."""
        self.procs, self.python, self.bin = procs, python, zeoraid_bin
        self.link, self.cluster, self.tls = link, cluster, tls
        self.dir = os.path.join(workdir, name or "array%d" % n_members)
        os.makedirs(self.dir)
        self.members = []  # (name, port zeoraid connects to, Popen)
        self.links = []  # the members' link_delay processes
        for i in range(n_members):
            self.add_member_server("m%d" % (i + 1))
        self.port, self.http_port = free_port(), free_port()
        self.config = os.path.join(self.dir, "zeoraid.toml")
        self.throttle_tps = 0
        self.write_config([m[0] for m in self.members])
        self.start()
        self.wait_status("optimal", 30)

    def start(self):
        self.proc = self.procs.start("zeoraid-" + os.path.basename(self.dir),
                                     [self.bin, "serve", "--config", self.config])
        wait_listening(self.proc, "zeoraid", self.port)

    def stop(self):
        """zeoraid, then its members."""
        for p in [self.proc] + getattr(self, "standbys", []) + self.links:
            self.procs.stop(p)
        for _, _, p in self.members:
            self.procs.stop(p)

    def start_standby(self):
        """A second zeoraid with this array's config but its own name and
        HTTP port: in a cluster it stands by while this one leads."""
        config = os.path.join(self.dir, "standby.toml")
        with open(self.config) as fh:
            text = fh.read()
        text = text.replace("127.0.0.1:%d" % self.http_port, "127.0.0.1:%d" % free_port())
        text = text.replace('name = "%s"' % os.path.basename(self.dir),
                            'name = "%s-standby"' % os.path.basename(self.dir))
        text = text.replace(os.path.join(self.dir, "spool"), os.path.join(self.dir, "spool-standby"))
        with open(config, "w") as fh:
            fh.write(text)
        self.standbys = [self.procs.start("standby-" + os.path.basename(self.dir),
                                          [self.bin, "serve", "--config", config])]

    def restart(self):
        """Recovery settings apply only at a restart (see `zeoraid reload`)."""
        self.procs.stop(self.proc)
        self.start()

    def add_member_server(self, name):
        port = free_port()
        d = os.path.join(self.dir, name)
        os.makedirs(d)
        p = start_runzeo(self.procs, self.python, name + "-" + os.path.basename(self.dir), d, port,
                         self.tls)
        if self.link:
            port, link = start_link(self.procs, self.link,
                                    name + "-link-" + os.path.basename(self.dir), port)
            self.links.append(link)
        self.members.append((name, port, p))
        return port

    def write_config(self, names):
        ports = {m[0]: m[1] for m in self.members}
        lines = [
            'listen = "127.0.0.1:%d"' % self.port, 'storage = "1"',
            'spool_dir = "%s"' % os.path.join(self.dir, "spool"),
            "[http]", 'listen = "127.0.0.1:%d"' % self.http_port,
            "[log]", 'level = "info"',
            "[recovery]", "auto = false",
            "max_transactions_per_second = %d" % self.throttle_tps,
        ]
        if self.cluster:
            lines += ["[cluster]", 'etcd = ["%s"]' % self.cluster,
                      'name = "%s"' % os.path.basename(self.dir),
                      'prefix = "/bench/%s"' % os.path.basename(self.dir)]
        if self.tls:
            lines += ["[tls]", 'certificate = "%s"' % self.tls.server_cert,
                      'key = "%s"' % self.tls.server_key]
        for name in names:
            lines += ["[[members]]", 'name = "%s"' % name,
                      'address = "127.0.0.1:%d"' % ports[name]]
            if self.tls:
                lines += ["[members.tls]", 'ca = "%s"' % self.tls.ca,
                          'certificate = "%s"' % self.tls.client_cert,
                          'key = "%s"' % self.tls.client_key]
        with open(self.config, "w") as fh:
            fh.write("\n".join(lines) + "\n")

    def http(self, path, method="GET"):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.http_port, path),
                                     method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def wait_status(self, want, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if self.http("/status").get("status") == want:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("array did not become %s within %ss" % (want, timeout))


def start_runzeo(procs, python, name, d, port, tls=None):
    """A runzeo with a FileStorage in `d`; with `tls` it speaks TLS only
    and asks clients for a certificate signed by the CA."""
    runzeo = os.path.join(os.path.dirname(python), "runzeo")
    if tls:
        config = os.path.join(d, "zeo.conf")
        with open(config, "w") as fh:
            fh.write("<zeo>\n  address 127.0.0.1:%d\n  <ssl>\n    certificate %s\n"
                     "    key %s\n    authenticate %s\n  </ssl>\n</zeo>\n"
                     "<filestorage>\n  path %s\n</filestorage>\n"
                     % (port, tls.server_cert, tls.server_key, tls.ca, os.path.join(d, "Data.fs")))
        p = procs.start(name, [runzeo, "-C", config])
    else:
        p = procs.start(name, [runzeo, "-a", "127.0.0.1:%d" % port,
                               "-f", os.path.join(d, "Data.fs")])
    wait_listening(p, name, port)
    return p


class Certificates:
    """A CA, a server certificate for 127.0.0.1 and a client certificate,
    made with openssl in `d`."""

    def __init__(self, d):
        os.makedirs(d)
        self.ca, ca_key = os.path.join(d, "ca.pem"), os.path.join(d, "ca.key")
        self.server_cert, self.server_key = os.path.join(d, "server.pem"), os.path.join(d, "server.key")
        self.client_cert, self.client_key = os.path.join(d, "client.pem"), os.path.join(d, "client.key")
        self._openssl(d, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-nodes", "-days", "2", "-subj", "/CN=zeoraid bench CA",
                      "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                      "-keyout", ca_key, "-out", self.ca)
        for cert, key, cn, ext in (
                (self.server_cert, self.server_key, "127.0.0.1", "subjectAltName=IP:127.0.0.1"),
                (self.client_cert, self.client_key, "bench client", "extendedKeyUsage=clientAuth")):
            csr = cert + ".csr"
            self._openssl(d, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                          "-subj", "/CN=" + cn, "-keyout", key, "-out", csr)
            extfile = cert + ".ext"
            with open(extfile, "w") as fh:
                fh.write(ext + "\n")
            self._openssl(d, "x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", ca_key,
                          "-CAcreateserial", "-days", "2", "-extfile", extfile, "-out", cert)

    @staticmethod
    def _openssl(d, *args):
        subprocess.run(["openssl"] + list(args), cwd=d, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def env(self):
        """What zeo_bench (and this process's probes) read to speak TLS."""
        return json.dumps({"ca": self.ca, "cert": self.client_cert, "key": self.client_key})


def start_link(procs, link, name, upstream_port):
    """examples/link_delay in front of `upstream_port`; returns its port and process."""
    link_bin, delay_us = link
    port = free_port()
    p = procs.start(name, [link_bin, "127.0.0.1:%d" % port, "127.0.0.1:%d" % upstream_port,
                           str(delay_us)])
    wait_listening(p, name, port)
    return port, p


def start_etcd(procs, workdir):
    """etcd in `workdir` on free loopback ports; returns its client URL."""
    client, peer = "http://127.0.0.1:%d" % free_port(), "http://127.0.0.1:%d" % free_port()
    p = procs.start("etcd", ["etcd", "--name", "bench", "--data-dir", os.path.join(workdir, "etcd"),
                             "--listen-client-urls", client, "--advertise-client-urls", client,
                             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                             "--initial-cluster", "bench=" + peer])
    deadline = time.time() + 30
    while time.time() < deadline:
        if p.poll() is not None:
            raise RuntimeError("etcd exited with %s (see etcd.log)" % p.returncode)
        try:
            with urllib.request.urlopen(client + "/health", timeout=2) as r:
                if b'"health":"true"' in r.read():
                    return client
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("etcd not healthy within 30 s")


def wait_listening(p, name, port, timeout=30):
    """Until the server answers register; fails at once if it exited."""
    deadline = time.time() + timeout
    while True:
        if p.poll() is not None:
            raise RuntimeError("%s exited with %s (see its log)" % (name, p.returncode))
        try:
            return zeo_bench.probe(("127.0.0.1", port), "1", 5)
        except zeo_bench.Unreachable:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def run_zeo_bench(python, target, reference, target_pid, reference_pid, a, out):
    argv = [python, os.path.join(HERE, "zeo_bench.py"),
            "--target", "127.0.0.1:%d" % target, "--reference", "127.0.0.1:%d" % reference,
            "--target-pids", str(target_pid), "--reference-pids", str(reference_pid),
            "--rounds", str(a.rounds), "--duration", str(a.duration),
            "--workloads", a.workloads, "--json", out]
    if a.wait_idle:
        argv += ["--wait-idle", str(a.wait_idle)]
    if getattr(a, "ssl", None):
        argv += ["--ssl-ca", a.ssl.ca, "--ssl-cert", a.ssl.client_cert, "--ssl-key", a.ssl.client_key]
    log("zeo_bench -> %s" % out)
    rc = subprocess.call(argv, stdout=sys.stderr)
    if rc == 2:
        raise RuntimeError("zeo_bench could not reach a server (exit 2)")
    with open(out) as fh:
        return json.load(fh), rc


def idle_clients(port, pid, n):
    """RSS of zeoraid before and after n idle, registered client connections."""
    before = rss_kb(pid)
    conns = []
    try:
        for _ in range(n):
            c = zeo_bench.RawConn(("127.0.0.1", port))
            c.call("register", "1", False)
            c.call("get_info")
            c.call("lastTransaction")
            conns.append(c)
        time.sleep(1.0)  # let the daemon settle its per-connection buffers
        after = rss_kb(pid)
    finally:
        for c in conns:
            c.close()
    return {"clients": n, "rss_before_kb": before, "rss_with_clients_kb": after,
            "per_client_kb": round((after - before) / n, 1)}


def soak(python, arr, seconds, workdir):
    """A mixed load for `seconds`, sampling zeoraid's RSS every 10 s."""
    port, pid = arr.port, arr.proc.pid
    commits_before = arr.http("/details")["commits"]
    samples = []
    argv = [python, os.path.join(HERE, "zeo_bench.py"), "--target", "127.0.0.1:%d" % port,
            "--reference", "127.0.0.1:%d" % port, "--rounds", "1000000",
            "--duration", "5", "--workloads", "write_10obj_c4,read_c4,zodb_mixed_c2"]
    t0 = time.time()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(workdir, "soak.log"), "w"))
    try:
        while time.time() - t0 < seconds:
            samples.append((round(time.time() - t0), rss_kb(pid)))
            time.sleep(10)
    finally:
        p.terminate()
        p.wait(30)
    warm = [s for s in samples if s[0] >= 60] or samples
    commits = arr.http("/details")["commits"] - commits_before
    if p.returncode not in (0, -signal.SIGTERM) or commits == 0:
        raise RuntimeError("the soak's load did not run (exit %s, %d commits; see soak.log)"
                           % (p.returncode, commits))
    return {"seconds": seconds, "samples_kb": samples, "commits": commits,
            "rss_first_after_warmup_kb": warm[0][1], "rss_last_kb": samples[-1][1],
            "rss_max_kb": max(s[1] for s in samples),
            "growth_kb": samples[-1][1] - warm[0][1]}


class Writers:
    """n raw connections committing one-object transactions as fast as they can."""

    def __init__(self, port, n):
        self.port = port
        self.stop = threading.Event()
        self.errors = []
        self.counts = [0] * n  # commits per writer
        # a real 300-byte PersistentMapping record, as the benchmark writes
        _, self.record, _ = zeo_bench.setup_corpus(("127.0.0.1", port), "1", 10, 30)
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(n)]
        for t in self.threads:
            t.start()

    def run(self, i):
        try:
            c = zeo_bench.RawConn(("127.0.0.1", self.port))
            c.call("register", "1", False)
            oid = c.call("new_oids")[0]
            record = self.record
            serial = b"\0" * 8
            txn = 1000 + i
            while not self.stop.is_set():
                c.sock.sendall(c.frame(0, True, "tpc_begin", (txn, b"", b"", {}, None, " ")))
                c.sock.sendall(c.frame(0, True, "storea", (oid, serial, record, txn)))
                c.call("vote", txn)
                serial = c.call("tpc_finish", txn)
                self.counts[i] += 1
            c.close()
        except Exception as e:  # reported in the results, not swallowed
            self.errors.append(repr(e))

    def rate_over(self, seconds):
        c0, t0 = sum(self.counts), time.time()
        time.sleep(seconds)
        return (sum(self.counts) - c0) / (time.time() - t0)

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def add_member(arr, name, throttle_tps):
    """Adds an empty member to the array by a reload; waits until zeoraid knows it."""
    arr.add_member_server(name)
    restart = throttle_tps != arr.throttle_tps
    arr.throttle_tps = throttle_tps
    arr.write_config([m[0] for m in arr.members])
    if restart:
        arr.restart()
    else:
        arr.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 30
    while time.time() < deadline:
        # Recovery needs the member connected (409 Conflict before).
        if any(m["name"] == name and m["connected"] for m in arr.http("/details")["members"]):
            return
        time.sleep(0.1)
    raise RuntimeError("zeoraid did not add and connect %s" % name)


def recover(arr, name, timeout=1800, until=None):
    """Starts recovering `name`; returns (seconds until optimal, last progress,
    outcome, details). `until()` is called once per poll (e.g. to stop writers)."""
    t0 = time.time()
    arr.http("/members/%s/recover" % name, method="POST")
    last = None
    while time.time() - t0 < timeout:
        if until:
            until()
        details = arr.http("/details")
        m = {x["name"]: x for x in details["members"]}[name]
        if m.get("recovery"):
            last = m["recovery"]
        if m["state"] == "optimal":
            return time.time() - t0, last, m.get("last_recovery"), details
        if m["state"] != "recovering" and m.get("last_recovery"):
            raise RuntimeError("recovery of %s failed: %s" % (name, m["last_recovery"]))
        time.sleep(0.05)
    raise RuntimeError("recovery of %s did not finish within %ss" % (name, timeout))


def recovery_cost(procs, python, zeoraid_bin, workdir, k):
    """What a recovery costs: its copy rate, and the writers' commit rate
    while it runs.

    1. k one-object commits go to a 1-member array (4 raw writers); an empty
       member m2 is added and recovered with nothing else running: the copy
       rate (transactions/s, MB/s).
    2. With the 4 writers committing as fast as they can: m3 is added and
       recovered unthrottled (the default), the writers' commits/s measured
       over 10 s before and 10 s during the copy; then the writers stop so
       that the recovery can finish (4 unpaced writers commit faster than a
       recovery copies: see docs/performance.md).
    3. The same with m4 at a throttle of 100 transactions/s.
    """
    os.makedirs(workdir + "/rec")
    arr = Array(procs, python, zeoraid_bin, workdir + "/rec", 1)
    out = {"transactions_before": k}
    w = Writers(arr.port, 4)
    deadline = time.time() + 600
    while sum(w.counts) < k and time.time() < deadline:
        time.sleep(0.2)
    w.close()
    add_member(arr, "m2", 0)
    took, last, outcome, details = recover(arr, "m2")
    # A fast copy may end between two polls: then every committed
    # transaction was copied (m2 started empty).
    # m2 started empty: every transaction the array committed was copied.
    progress = (last or {}).get("progress") or {}
    copied = details["commits"]
    out["alone"] = {"seconds": round(took, 2), "last_progress": last, "outcome": outcome,
                    "copied_transactions": copied,
                    "transactions_per_second": round(copied / took, 1),
                    "progress_rate_tps": progress.get("rate_tps"),
                    "progress_rate_megabytes_per_second": (
                        round(progress["rate_bytes_per_second"] / 1e6, 3)
                        if progress.get("rate_bytes_per_second") else None)}
    log("recovery alone: %s" % out["alone"])
    for name, throttle in (("m3", 0), ("m4", 100)):
        add_member(arr, name, throttle)
        w = Writers(arr.port, 4)
        before = w.rate_over(10)
        t0 = time.time()
        arr.http("/members/%s/recover" % name, method="POST")
        during = w.rate_over(10)
        m = {x["name"]: x for x in arr.http("/details")["members"]}[name]
        progress = (m.get("recovery") or {}).get("progress") or {}
        w.close()
        arr.http("/members/%s/disable" % name, method="POST")  # stops the recovery
        out["throttle_%d" % throttle] = {
            "writers_commits_s_before": round(before, 1),
            "writers_commits_s_during": round(during, 1),
            "drop_percent": round(100 * (1 - during / before), 1) if before else None,
            "recovery_copied_tps": round(progress.get("copied_transactions", 0)
                                         / max(progress.get("elapsed_seconds", 0), 1e-9), 1),
            "recovery_state_after_10s": m["state"],
            "writer_errors": w.errors, "measured_for_s": round(time.time() - t0, 1)}
        log("recovery throttle %d: %s" % (throttle, out["throttle_%d" % throttle]))
    out["array"] = {k2: v for k2, v in details.items() if k2 != "members"}
    return out


def table(summary, name, ref="plain ZEO"):
    """The markdown table of one zeo_bench summary: `ref` against `name`."""
    out = ["| workload | %(r)s ops/s | %(n)s ops/s | ratio (range) | p50 ms %(r)s / %(n)s | "
           "p99 ms %(r)s / %(n)s | +p50 µs | %(n)s CPU µs/op |" % {"n": name, "r": ref},
           "| --- | ---: | ---: | --- | --- | --- | ---: | ---: |"]
    for wl, s in summary.items():
        t, r = s.get("target"), s.get("reference")
        if not t or not r:
            out.append("| %s | failed | | | | | | |" % wl)
            continue
        rng = s.get("paired_ratios") or []
        out.append("| %s | %.0f | %.0f | %s (%s) | %.2f / %.2f | %.2f / %.2f | %s | %s |" % (
            wl, r["ops_s_median"], t["ops_s_median"],
            "-" if s["ratio"] is None else "%.2f" % s["ratio"],
            "%.2f–%.2f" % (min(rng), max(rng)) if rng else "-",
            r["p50_ms"], t["p50_ms"], r["p99_ms"], t["p99_ms"],
            "-" if s["added_p50_us"] is None else "%.0f" % s["added_p50_us"],
            "-" if t.get("srv_cpu_us_per_op") is None else "%.1f" % t["srv_cpu_us_per_op"]))
    out.append("")
    return out


def markdown(results):
    out = []
    for n, doc in sorted(results["arrays"].items()):
        out.append("### %s member%s\n" % (n, "" if n == "1" else "s"))
        out += table(doc["summary"], "zeoraid")
    # (result, heading, the target's name, the reference's name)
    side_by_side = (
        ("floor", "relay floor (do-nothing byte relay in front of 1 runzeo)", "relay", "plain ZEO"),
        ("vs_floor", "zeoraid (1 member) against the relay floor, side by side", "zeoraid", "relay"),
        ("mirroring", "2 members against 1 member, side by side", "2 members", "1 member"),
        ("leader", "the multi-zeoraid leader (reference: a single zeoraid, 1 member each)",
         "leader", "single"),
        ("tls", "TLS on both sides, 1 member (reference: plain runzeo with TLS)",
         "zeoraid", "TLS runzeo"),
    )
    for key, heading, name, ref in side_by_side:
        if key in results:
            out.append("### %s\n" % heading)
            out += table(results[key]["summary"], name, ref)
    if "link" in results:
        link = results["link"]
        out.append("### members on other hosts: the link alone (%d µs each way) against plain ZEO\n"
                   % link["delay_us"])
        out += table(link["alone"]["summary"], "linked runzeo")
        for n, doc in sorted(link["arrays"].items()):
            out.append("### %s linked member%s against a linked runzeo\n" % (n, "" if n == "1" else "s"))
            out += table(doc["summary"], "zeoraid", "linked runzeo")
    for key in ("idle_clients", "soak", "recovery", "blob_memory"):
        if key in results:
            out.append("%s: `%s`\n" % (key, json.dumps(results[key])))
    return "\n".join(out)


def start_floor(procs, python, relay_bin, d, name):
    """examples/tcp_relay in front of a fresh runzeo in `d`: (the relay's
    process, its port, the runzeo's process)."""
    os.makedirs(d)
    upstream_port, port = free_port(), free_port()
    upstream = start_runzeo(procs, python, name + "-runzeo", d, upstream_port)
    relay = procs.start(name + "-relay", [relay_bin, "127.0.0.1:%d" % port,
                                          "127.0.0.1:%d" % upstream_port])
    # If it never listens, the run ends here and scratch() stops both.
    wait_listening(relay, "tcp_relay", port)
    return relay, port, upstream


def relay_floor(procs, python, relay_bin, workdir, ref_port, ref_pid, a):
    """examples/tcp_relay in front of a fresh runzeo, against the reference."""
    relay, port, upstream = start_floor(procs, python, relay_bin,
                                        os.path.join(workdir, "floor"), "floor")
    try:
        doc, rc = run_zeo_bench(python, port, ref_port, relay.pid, ref_pid, a,
                                os.path.join(a.out, "zeo_bench_floor.json"))
    finally:
        procs.stop(relay)
        procs.stop(upstream)
    return {"summary": doc["summary"], "exit": rc}


def zeoraid_vs_floor(procs, python, relay_bin, workdir, a):
    """zeoraid with 1 member against the relay in front of its own runzeo,
    side by side in the same rounds: the first target's figures measured
    directly (ratio, +p50 and CPU per operation against the floor), not
    derived from two blocks run minutes apart on a machine whose speed
    drifts."""
    d = os.path.join(workdir, "vs-floor")
    relay, port, upstream = start_floor(procs, python, relay_bin, d, "vs-floor")
    arr = None
    try:
        arr = Array(procs, python, a.zeoraid, d, 1)
        doc, rc = run_zeo_bench(python, arr.port, port, arr.proc.pid, relay.pid, a,
                                os.path.join(a.out, "zeo_bench_vs_floor.json"))
    finally:
        if arr:
            arr.stop()
        procs.stop(relay)
        procs.stop(upstream)
    return {"summary": doc["summary"], "exit": rc}


def mirroring_side_by_side(procs, python, workdir, a):
    """zeoraid with 2 members against zeoraid with 1 member, side by side
    in the same rounds (the mirroring target measured directly, for the
    reason zeoraid_vs_floor gives), on the mirroring workloads."""
    one = two = None
    ma = argparse.Namespace(**vars(a))
    ma.workloads = a.mirror_workloads
    try:
        one = Array(procs, python, a.zeoraid, workdir, 1, name="mirror1")
        two = Array(procs, python, a.zeoraid, workdir, 2, name="mirror2")
        doc, rc = run_zeo_bench(python, two.port, one.port, two.proc.pid, one.proc.pid, ma,
                                os.path.join(a.out, "zeo_bench_mirroring.json"))
    finally:
        for arr in (one, two):
            if arr:
                arr.stop()
    return {"summary": doc["summary"], "exit": rc}


def link_profile(procs, python, a, workdir, ref_port, ref_pid):
    """Members on other hosts: each member behind its own link_delay, and
    the reference (a fresh runzeo) behind the same kind of link. First the
    delayed reference against the plain one (what the link costs, on its
    own), then zeoraid with 1, 2, 3 delayed members against the delayed
    reference."""
    d = os.path.join(workdir, "link")
    os.makedirs(d)
    link = (a.link_delay_bin, a.link_delay_us)
    upstream_port = free_port()
    upstream = start_runzeo(procs, python, "link-runzeo", d, upstream_port)
    port, relay = start_link(procs, link, "link-reference", upstream_port)
    la = argparse.Namespace(**vars(a))
    la.workloads = a.link_workloads
    out = {"delay_us": a.link_delay_us, "arrays": {}}
    try:
        doc, rc = run_zeo_bench(python, port, ref_port, relay.pid, ref_pid, la,
                                os.path.join(a.out, "zeo_bench_link_alone.json"))
        out["alone"] = {"summary": doc["summary"], "exit": rc}
        for n in [int(x) for x in a.link_members.split(",") if x]:
            arr = Array(procs, python, a.zeoraid, d, n, link=link)
            try:
                doc, rc = run_zeo_bench(python, arr.port, port, arr.proc.pid, relay.pid, la,
                                        os.path.join(a.out, "zeo_bench_link_%dmembers.json" % n))
            finally:
                arr.stop()
            out["arrays"][str(n)] = {"summary": doc["summary"], "exit": rc}
    finally:
        procs.stop(relay)
        procs.stop(upstream)
    return out


def tls_profile(procs, python, a, workdir):
    """TLS on both sides: clients to zeoraid and zeoraid to its member,
    against a plain runzeo speaking TLS to its clients (1 member)."""
    d = os.path.join(workdir, "tls")
    os.makedirs(d)
    certs = Certificates(os.path.join(d, "certs"))
    os.environ[zeo_bench.SSL_ENV] = certs.env()
    zeo_bench._ssl_context.clear()
    try:
        ref_dir = os.path.join(d, "reference")
        os.makedirs(ref_dir)
        ref_port = free_port()
        ref = start_runzeo(procs, python, "tls-reference", ref_dir, ref_port, certs)
        arr = Array(procs, python, a.zeoraid, d, 1, tls=certs)
        ta = argparse.Namespace(**vars(a))
        ta.ssl = certs
        try:
            doc, rc = run_zeo_bench(python, arr.port, ref_port, arr.proc.pid, ref.pid, ta,
                                    os.path.join(a.out, "zeo_bench_tls.json"))
        finally:
            arr.stop()
            procs.stop(ref)
    finally:
        del os.environ[zeo_bench.SSL_ENV]
        zeo_bench._ssl_context.clear()
    return {"summary": doc["summary"], "exit": rc}


def leader_profile(procs, python, a, workdir):
    """The multi-zeoraid leader against a single zeoraid, side by side:
    each with one member of its own; the leader elected on a local etcd,
    with a standby zeoraid beside it (same members, same etcd)."""
    d = os.path.join(workdir, "leader")
    os.makedirs(d)
    etcd = start_etcd(procs, d)
    single = Array(procs, python, a.zeoraid, d, 1, name="single")
    leader = Array(procs, python, a.zeoraid, d, 1, cluster=etcd, name="leader")
    leader.start_standby()
    try:
        doc, rc = run_zeo_bench(python, leader.port, single.port, leader.proc.pid,
                                single.proc.pid, a, os.path.join(a.out, "zeo_bench_leader.json"))
    finally:
        leader.stop()
        single.stop()
    return {"summary": doc["summary"], "exit": rc}


def save(results, out):
    """Written after every phase, so that a later failure loses nothing."""
    with open(os.path.join(out, "summary.json"), "w") as fh:
        json.dump(results, fh, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", default="1,2,3")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=1.2)
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--wait-idle", type=float, default=0)
    ap.add_argument("--idle-clients", type=int, default=100)
    ap.add_argument("--soak", type=int, default=0, metavar="S")
    ap.add_argument("--recovery", type=int, default=0, metavar="K")
    ap.add_argument("--blob-memory", action="store_true")
    ap.add_argument("--blob-commit-mb", type=int, default=1024)
    ap.add_argument("--blob-read-mb", type=int, default=100)
    ap.add_argument("--blob-readers", type=int, default=100)
    ap.add_argument("--floor", action="store_true",
                    help="also measure a do-nothing byte relay in front of 1 runzeo")
    ap.add_argument("--mirror", action="store_true",
                    help="also measure 2 members against 1 member side by side")
    ap.add_argument("--mirror-workloads", default="write_1obj_c1,write_1obj_c4")
    ap.add_argument("--link-delay-us", type=int, default=0, metavar="US",
                    help="also run the members-on-other-hosts profile: each member, and the "
                    "reference, behind a link adding US microseconds each way")
    ap.add_argument("--link-members", default="1,2,3")
    ap.add_argument("--link-workloads",
                    default="write_1obj_c1,write_1obj_c4,write_10obj_c4,read_c1")
    ap.add_argument("--leader", action="store_true",
                    help="also measure the multi-zeoraid leader against a single zeoraid")
    ap.add_argument("--tls", action="store_true",
                    help="also measure TLS on both sides against a plain runzeo with TLS")
    ap.add_argument("--link-delay-bin", default=os.path.join(ROOT, "target/release/examples/link_delay"))
    ap.add_argument("--zeoraid", default=os.path.join(ROOT, "target/release/zeoraid"))
    ap.add_argument("--tcp-relay", default=os.path.join(ROOT, "target/release/examples/tcp_relay"))
    ap.add_argument("--out", default=os.path.join(HERE, "results", time.strftime("%Y%m%d-%H%M%S")))
    a = ap.parse_args()
    python = sys.executable
    os.makedirs(a.out, exist_ok=True)
    results = {"machine": {"cpus": os.cpu_count(), "uname": " ".join(os.uname()),
                           "loadavg_start": os.getloadavg()},
               "arrays": {}}
    with scratch("zeoraid-bench") as (workdir, procs):
        ref_dir = os.path.join(workdir, "reference")
        os.makedirs(ref_dir)
        ref_port = free_port()
        ref = start_runzeo(procs, python, "reference", ref_dir, ref_port)
        if a.floor:
            # First, while nothing else runs: no idle array beside it.
            results["floor"] = relay_floor(procs, python, a.tcp_relay, workdir,
                                           ref_port, ref.pid, a)
            save(results, a.out)
            results["vs_floor"] = zeoraid_vs_floor(procs, python, a.tcp_relay, workdir, a)
            save(results, a.out)
        arr = None
        for n in [int(x) for x in a.members.split(",") if x]:
            if arr:
                arr.stop()
            arr = Array(procs, python, a.zeoraid, workdir, n)
            doc, rc = run_zeo_bench(python, arr.port, ref_port, arr.proc.pid, ref.pid, a,
                                    os.path.join(a.out, "zeo_bench_%dmembers.json" % n))
            results["arrays"][str(n)] = {"summary": doc["summary"], "exit": rc}
            save(results, a.out)
        profiles = (
            ("mirroring", a.mirror,
             lambda: mirroring_side_by_side(procs, python, workdir, a)),
            ("link", a.link_delay_us,
             lambda: link_profile(procs, python, a, workdir, ref_port, ref.pid)),
            ("leader", a.leader, lambda: leader_profile(procs, python, a, workdir)),
            ("tls", a.tls, lambda: tls_profile(procs, python, a, workdir)),
        )
        for key, wanted, profile in profiles:
            if not wanted:
                continue
            if arr:  # each profile starts its own servers: no idle array beside them
                arr.stop()
                arr = None
            results[key] = profile()
            save(results, a.out)
        if a.idle_clients:
            # On a fresh zeoraid: after a workload, the allocator still holds
            # (and returns lazily) what the workload used.
            if arr:
                arr.stop()
            idle = Array(procs, python, a.zeoraid, workdir + "/idle", 1)
            results["idle_clients"] = idle_clients(idle.port, idle.proc.pid, a.idle_clients)
            log("idle clients: %s" % results["idle_clients"])
            save(results, a.out)
            arr = idle
        if a.soak and arr:
            results["soak"] = soak(python, arr, a.soak, workdir)
            log("soak: growth %s kB" % results["soak"]["growth_kb"])
            save(results, a.out)
        if a.recovery:
            procs.stop_all()
            results["recovery"] = recovery_cost(procs, python, a.zeoraid, workdir, a.recovery)
            log("recovery: %s" % results["recovery"])
        if a.blob_memory:
            procs.stop_all()
            blob_dir = "/tmp/zeoraid-blob-memory-%d" % os.getpid()
            os.makedirs(blob_dir)
            try:
                results["blob_memory"] = blob_memory.measure(procs, python, a.zeoraid, blob_dir, a)
            finally:
                shutil.rmtree(blob_dir, ignore_errors=True)
            save(results, a.out)
    results["machine"]["loadavg_end"] = os.getloadavg()
    results["targets"] = targets.evaluate(results)
    save(results, a.out)
    md = markdown(results) + "\n" + "\n".join(targets.markdown(results["targets"]))
    with open(os.path.join(a.out, "summary.md"), "w") as fh:
        fh.write(md + "\n")
    print(md)
    log("results in %s" % a.out)


if __name__ == "__main__":
    main()
