"""Fresh ZEO servers for the conformance suite: a plain runzeo, or N runzeo
members with the zeoraid daemon in front.

A *target* names what the tests talk to:

  runzeo      one runzeo (FileStorage + blob directory): the reference
  zeoraid-N   N runzeo members, each with its own FileStorage and blob
              directory, and `zeoraid serve` in front of them
  zeoraid-K1+K2+...
              one runzeo member per storage kind K (`fs` FileStorage, `pg`
              RelStorage on PostgreSQL, `sqlite` RelStorage on SQLite; see
              member_storage.py), in that order (m1, m2, ...), and zeoraid
              in front: `zeoraid-fs+pg`, `zeoraid-fs+sqlite`
  runzeo-K    one runzeo serving storage kind K: `runzeo-pg`,
              `runzeo-sqlite` (what a RelStorage behind a plain ZEO
              server does, to tell RelStorage's ways from zeoraid's)

`Cluster` is one running instance of a target: `addr` is where a
`ClientStorage` connects, `members` the runzeo servers holding the data
(for `runzeo`, the one server itself); a front started on a given Unix
socket path has that path (a str) as `addr`. `ClusterSet` starts clusters for
one test and stops them all, also when the test failed.

Every process is started in its own session (process group) and ended by
its group id: SIGTERM, then SIGKILL after a bounded wait. Every wait is
bounded; readiness is polled, never assumed after a sleep. Everything
listens on 127.0.0.1 only.
"""

import ctypes
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader
from pathlib import Path

from .member_storage import (
    FILESTORAGE, SHORT_NAMES, MemberStorage, is_relstorage)

ROOT = Path(__file__).resolve().parents[3]

# Which targets the suite runs against: ZEORAID_CONFORMANCE_TARGETS, a
# comma-separated list of target names. THE DEFAULT LIVES HERE: a plain
# runzeo, arrays of 2 and 3 FileStorage members, and arrays of a
# FileStorage member beside a RelStorage member (what of the suite runs on
# those: README.md, Runtime).
DEFAULT_TARGETS = ("runzeo,zeoraid-2,zeoraid-3,"
                   "zeoraid-fs+pg,zeoraid-fs+sqlite")
ALL_TARGETS = ("runzeo", "zeoraid-2", "zeoraid-3", "zeoraid-fs+pg",
               "zeoraid-fs+sqlite")

# Bounded waits (seconds).
SERVER_READY_TIMEOUT = 30      # a runzeo answers ruok / zeoraid answers ping
STOP_TIMEOUT = 15              # SIGTERM -> exit, before SIGKILL
START_ATTEMPTS = 3             # a free port can be taken before we bind it

STORAGE_NAME = "1"


def selected_targets():
    raw = os.environ.get("ZEORAID_CONFORMANCE_TARGETS", "").strip()
    names = [t.strip() for t in (raw or DEFAULT_TARGETS).split(",")
             if t.strip()]
    for name in names:
        member_count(name)  # validates
    return names


def member_count(target):
    """Members behind a target; 0 means the target is a plain runzeo."""
    front, kinds = _parse_target(target)
    return len(kinds) if front == "zeoraid" else 0


def member_kinds(target):
    """The storage kind of each server holding the target's data, in
    member order (m1, m2, ...); for a plain runzeo, its own."""
    return _parse_target(target)[1]


def _parse_target(target):
    """("runzeo" | "zeoraid", [storage kind, ...])."""
    front, _, rest = target.partition("-")
    if front == "runzeo" and not rest:
        return front, [FILESTORAGE]
    if front == "runzeo" and rest in SHORT_NAMES:
        return front, [SHORT_NAMES[rest]]
    if front == "zeoraid" and rest.isdigit() and int(rest) >= 1:
        return front, [FILESTORAGE] * int(rest)
    if front == "zeoraid" and rest and all(
            k in SHORT_NAMES for k in rest.split("+")):
        return front, [SHORT_NAMES[k] for k in rest.split("+")]
    raise ValueError(
        f"unknown conformance target {target!r} (ZEORAID_CONFORMANCE_TARGETS"
        f" takes a comma-separated list of: runzeo, runzeo-K, zeoraid-N, "
        f"zeoraid-K+K..., K one of {', '.join(SHORT_NAMES)})")


def zeoraid_binary():
    env = os.environ.get("ZEORAID_BIN")
    path = Path(env) if env else ROOT / "target" / "debug" / "zeoraid"
    if not path.is_file() or not os.access(path, os.X_OK):
        raise RuntimeError(
            f"zeoraid binary {path} not found; run `cargo build` (or set "
            f"ZEORAID_BIN); scripts/test builds it in its cargo test step")
    return path


def _load_zeoprobe():
    path = ROOT / "scripts" / "zeoprobe"
    loader = SourceFileLoader("zeoprobe", str(path))
    module = module_from_spec(spec_from_loader("zeoprobe", loader))
    loader.exec_module(module)
    return module


zeoprobe = _load_zeoprobe()


_handed_out = set()


def free_port():
    """A loopback port nobody listens on now and that this process has not
    handed out before: picked ports are only bound later (by a runzeo or
    zeoraid process), so the kernel may offer the same free port twice in
    a row; a member and zeoraid's HTTP endpoint must not get the same one."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def _die_with_parent():
    """preexec_fn: the child gets SIGTERM if pytest dies (even by SIGKILL),
    so no server outlives an interrupted run."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except Exception:  # not Linux: the teardown still stops it
        pass


def spawn(argv, log_path, env=None, **popen):
    """popen: further subprocess.Popen arguments (cwd, user, ...)."""
    log = open(log_path, "ab")
    try:
        return subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, env=env,
            preexec_fn=_die_with_parent, **popen)
    finally:
        log.close()


def stop_processes(procs, timeout=STOP_TIMEOUT):
    """SIGTERM each process group, wait (bounded), SIGKILL what is left."""
    procs = [p for p in procs if p is not None]
    for proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.01))
        except subprocess.TimeoutExpired:
            pass
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass


def address_text(addr):
    """addr as configuration files write it: host:port, or a Unix socket
    path (a str, as ClientStorage takes it)."""
    if isinstance(addr, str):
        return addr
    return f"{addr[0]}:{addr[1]}"


def connect(addr, timeout):
    """A connected socket to addr: (host, port) or a Unix socket path."""
    if not isinstance(addr, str):
        return socket.create_connection(addr, timeout=timeout)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(addr)
    except BaseException:
        sock.close()
        raise
    return sock


def _member_ready(member):
    """A runzeo answers ruok; one on a Unix socket path (a plain runzeo
    target given one) a client's ping (zeoprobe speaks TCP only)."""
    if isinstance(member.addr, str):
        client_ping(member.addr, timeout=5)
    else:
        zeoprobe.ruok(member.addr, 2.0)


def announcement(addr, timeout=2.0):
    """Connect and read the server's protocol announcement frame."""
    with connect(addr, timeout) as sock:
        (length,) = struct.unpack(">I", _read_exact(sock, 4))
        if not 0 < length <= 16:
            raise ValueError(f"announcement frame of {length} bytes")
        return _read_exact(sock, length)


def _read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


def client_ping(addr, timeout):
    """Open a ZEO ClientStorage, ping the server, close. Raises if the
    server does not serve the storage within timeout. (A read-only server
    refuses a read-write registration: the client falls back.)"""
    from ZEO.ClientStorage import ClientStorage
    client = ClientStorage(addr, storage=STORAGE_NAME, wait=True,
                           wait_timeout=timeout, min_disconnect_poll=0.1,
                           read_only_fallback=True)
    try:
        client.ping()
    finally:
        client.close()


class StartError(RuntimeError):
    pass


def _signal_group(proc, signum):
    """Send signum to the process group of proc (started in a session of
    its own by spawn)."""
    try:
        os.killpg(proc.pid, signum)
    except ProcessLookupError:
        pass


def _tail(path, lines=40):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class Server:
    """One started process: a runzeo or a zeoraid."""

    def __init__(self, name, kind, addr, proc, log, dir):
        self.name, self.kind, self.addr = name, kind, addr
        self.proc, self.log, self.dir = proc, log, dir

    @property
    def address(self):
        return address_text(self.addr)

    def log_tail(self, lines=40):
        return _tail(self.log, lines)


class Member(Server):
    """A runzeo holding a full copy of the data."""

    blob_dir = None  # set when started
    paused = False   # SIGSTOPped by Cluster.pause_member
    python = sys.executable  # zeo5_python() for a ZEO 5 member
    storage = None   # its MemberStorage (kind, database)

    @property
    def data_fs(self):
        return self.dir / "Data.fs"

    def runzeo_argv(self):
        return runzeo_argv(self.dir / "runzeo.conf", self.storage, self.python)


def zeo5_python():
    """The python of the ZEO 5.4 / ZODB 5.8 environment: $ZEORAID_PYTHON_ZEO5
    (scripts/test sets it), else <repo>/.venv-zeo5/bin/python, created by
    `scripts/python-env --zeo5` if it is not there yet."""
    env = os.environ.get("ZEORAID_PYTHON_ZEO5")
    if env:
        return Path(env)
    python = ROOT / ".venv-zeo5" / "bin" / "python"
    if not (python.parent / "runzeo").exists():
        made = subprocess.run(
            ["bash", str(ROOT / "scripts" / "python-env"), "--zeo5"],
            capture_output=True, text=True, timeout=600)
        if made.returncode != 0:
            raise StartError(f"scripts/python-env --zeo5 failed:\n"
                             f"{made.stdout}{made.stderr}")
        python = Path(made.stdout.strip().splitlines()[-1])
    return python


def runzeo_config(addr, dir, storage_options="", blob_dir=None,
                  zeo_options="", storage_conf=None, storage=None):
    """storage_options: extra ZConfig lines for the storage section;
    zeo_options: extra lines for the <zeo> section (server options such
    as `invalidation-queue-size 2`); storage_conf: a storage section of
    the caller's instead of the FileStorage; storage: the member's
    MemberStorage (default: a FileStorage in dir)."""
    zeo = (f"<zeo>\n  address {address_text(addr)}\n  {zeo_options}\n"
           f"</zeo>\n")
    if storage_conf is not None:
        return zeo + storage_conf + "\n"
    storage = storage or MemberStorage(FILESTORAGE, dir, dir.name)
    return zeo + storage.section(STORAGE_NAME, blob_dir or dir / "blobs",
                                 storage_options)


def runzeo_argv(conf, storage=None, python=sys.executable):
    """The command starting a runzeo with config file conf; a RelStorage
    member's runzeo sends RelStorage's POSKeyError as ZODB's own (see
    contrib/relstorage/runzeo.py, shipped for deployments)."""
    if storage is not None and is_relstorage(storage.kind):
        return [str(python), str(ROOT / "contrib" / "relstorage" / "runzeo.py"),
                "-C", str(conf)]
    return [str(python), "-m", "ZEO.runzeo", "-C", str(conf)]


def zeoraid_config(addr, http_addr, members, dir, options=""):
    """The zeoraid.toml of a cluster. options: extra TOML lines, placed
    after the top-level keys written here and before the [http] table, so
    they may set top-level keys (cluster_mode = "coop") and then open
    tables of their own ([timeouts] ...)."""
    lines = [
        "# written by tests/python/conformance/cluster.py",
        f'listen = "{address_text(addr)}"',
        f'storage = "{STORAGE_NAME}"',
        f'spool_dir = "{dir / "spool"}"',
    ]
    if options.strip():
        lines += ["", "# zeoraid_options of the test", options.strip()]
    lines += [
        "",
        "[http]",
        f'listen = "{http_addr[0]}:{http_addr[1]}"',
    ]
    for m in members:
        lines += ["", "[[members]]", f'name = "{m.name}"',
                  f'address = "{m.address}"']
    return "\n".join(lines) + "\n"


def _wait_all(servers, ready, timeout, what):
    """Poll ready(server) for every server until all are ready. Returns
    the servers whose process exited before they were ready (so that the
    caller can retry them on another port); raises StartError on time-out."""
    deadline = time.monotonic() + timeout
    pending = list(servers)
    exited = []
    last_err = {}
    while pending:
        for server in list(pending):
            if server.proc.poll() is not None:
                pending.remove(server)
                exited.append(server)
                continue
            try:
                ready(server)
            except Exception as err:  # not ready yet
                last_err[server.name] = err
            else:
                pending.remove(server)
        if not pending:
            break
        if time.monotonic() >= deadline:
            details = "\n".join(
                f"--- {s.name} ({s.address}): last error "
                f"{last_err.get(s.name)!r}; log {s.log}:\n{s.log_tail()}"
                for s in pending)
            raise StartError(
                f"{what} not ready within {timeout}s:\n{details}")
        time.sleep(0.05)
    return exited


def _address_in_use(server):
    # runzeo (asyncio) says "address already in use", the OS message
    # "Address already in use", Rust's error kind "AddrInUse".
    log = server.log_tail(200).lower()
    return "address already in use" in log or "addrinuse" in log


class Cluster:
    """One running target: `addr` for clients, `members` holding the data,
    `front` the zeoraid (None for a plain runzeo)."""

    def __init__(self, target, name, dir, storage_options="",
                 blob_dir=None, zeoraid_options="", zeo_options="",
                 addr=None, storage_conf=None, zeo5_members=()):
        self.target, self.name, self.dir = target, name, Path(dir)
        # The members ("m2", ...) that run ZEO 5.4's runzeo.
        self.zeo5_members = tuple(zeo5_members)
        self.storage_options = storage_options
        self.zeoraid_options = zeoraid_options
        self.zeo_options = zeo_options
        self.storage_conf = storage_conf
        if storage_conf is not None and member_count(target):
            raise ValueError("a storage_conf of its own is for runzeo only")
        # The front's address when the caller chose it (a client already
        # knows it); None: a free port.
        self.given_addr = addr
        if blob_dir is not None and member_count(target) > 1:
            raise ValueError("a given blob directory serves one member only")
        self.given_blob_dir = blob_dir
        self.members = []
        self.front = None
        self.processes = []
        self.stopped = False
        # Each member's storage by member name, made once (a retried start
        # on another port keeps it) and released when the cluster stops.
        self.storages = {}

    # -- where things are ----------------------------------------------------
    @property
    def addr(self):
        server = self.front or self.members[0]
        return server.addr

    @property
    def blob_dir(self):
        """The first member's server-side blob directory."""
        return str(self.members[0].blob_dir)

    @property
    def member_addrs(self):
        return [m.addr for m in self.members]

    @property
    def member_storage_kinds(self):
        # A member added by hand (tests/python/test_recovery_array.py) has
        # no MemberStorage: a FileStorage.
        return [m.storage.kind if m.storage else FILESTORAGE
                for m in self.members]

    def logs(self):
        return [s for s in [self.front, *self.members] if s is not None]

    # -- lifecycle -----------------------------------------------------------
    def start(self):
        try:
            count = member_count(self.target)
            self._start_members(max(count, 1))
            if count:
                self._start_zeoraid()
            else:
                _wait_all([self.members[0]], self._front_ready,
                          SERVER_READY_TIMEOUT, "runzeo")
        except BaseException:
            self.stop()
            raise
        return self

    def _member_storage(self, name, dir):
        if name not in self.storages:
            kinds = member_kinds(self.target)
            self.storages[name] = MemberStorage(
                kinds[int(name[1:]) - 1], dir, name)
        return self.storages[name]

    def _start_members(self, count):
        names = [f"m{i + 1}" for i in range(count)]
        for attempt in range(START_ATTEMPTS):
            starting = []
            for name in names:
                dir = self.dir / name
                dir.mkdir(parents=True, exist_ok=True)
                storage = self._member_storage(name, dir)
                if self.given_addr and not member_count(self.target):
                    addr = self.given_addr  # a plain runzeo is the front
                else:
                    addr = ("127.0.0.1", free_port())
                conf = dir / "runzeo.conf"
                blob_dir = Path(self.given_blob_dir or dir / "blobs")
                conf.write_text(runzeo_config(addr, dir,
                                              self.storage_options,
                                              blob_dir, self.zeo_options,
                                              self.storage_conf, storage))
                member = Member(name, "runzeo", addr, None,
                                dir / "runzeo.log", dir)
                member.blob_dir = blob_dir
                member.storage = storage
                if name in self.zeo5_members:
                    member.python = zeo5_python()
                member.proc = proc = spawn(member.runzeo_argv(), member.log)
                self.processes.append(proc)
                starting.append(member)
            exited = _wait_all(starting, _member_ready,
                               SERVER_READY_TIMEOUT,
                               f"{self.target} member runzeo")
            self.members += [m for m in starting if m not in exited]
            names = [m.name for m in exited]
            if not names:
                break
            if not all(_address_in_use(m) for m in exited) \
                    or (self.given_addr and not member_count(self.target)):
                raise StartError("runzeo exited at start:\n" + "\n".join(
                    f"--- {m.name}: {m.log}:\n{m.log_tail()}"
                    for m in exited))
        else:
            raise StartError(f"no free port for runzeo in {START_ATTEMPTS}"
                             f" attempts")
        self.members.sort(key=lambda m: m.name)

    def _start_zeoraid(self):
        binary = zeoraid_binary()
        dir = self.dir / "zeoraid"
        (dir / "spool").mkdir(parents=True, exist_ok=True)
        # The daemon reads ZEORAID_<KEY> overrides; keep the suite's own
        # variables away from it.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("ZEORAID_CONFORMANCE", "ZEORAID_BIN"))}
        for attempt in range(START_ATTEMPTS):
            addr = self.given_addr or ("127.0.0.1", free_port())
            http = ("127.0.0.1", free_port())
            conf = dir / "zeoraid.toml"
            conf.write_text(zeoraid_config(addr, http, self.members, dir,
                                           self.zeoraid_options))
            proc = spawn([str(binary), "serve", "--config", str(conf)],
                         dir / "zeoraid.log", env=env)
            self.processes.append(proc)
            front = Server("zeoraid", "zeoraid", addr, proc,
                           dir / "zeoraid.log", dir)
            if not _wait_all([front], self._front_ready,
                             SERVER_READY_TIMEOUT, "zeoraid"):
                self.front = front
                return
            if not _address_in_use(front) or self.given_addr:
                raise StartError(
                    f"zeoraid exited at start (exit code "
                    f"{proc.returncode}); {front.log}:\n{front.log_tail()}")
        raise StartError(f"no free port for zeoraid in {START_ATTEMPTS} "
                         f"attempts")

    @staticmethod
    def _front_ready(server):
        # What any ZEO client needs: the protocol announcement, then a
        # registered storage that answers a call.
        announced = announcement(server.addr)
        if announced[:1] not in (b"Z", b"M"):
            raise ValueError(f"unexpected announcement {announced!r}")
        client_ping(server.addr, timeout=5)

    # -- faults on one member (same port, same data) ------------------------
    def member(self, name):
        """The member called name ("m1", "m2", ...)."""
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(f"no member {name!r} in {self.target} "
                       f"({', '.join(m.name for m in self.members)})")

    def kill_member(self, name):
        """kill -9 the member's process group and reap it (bounded)."""
        member = self.member(name)
        _signal_group(member.proc, signal.SIGKILL)
        member.proc.wait(timeout=STOP_TIMEOUT)
        member.paused = False
        return member

    def pause_member(self, name):
        """SIGSTOP the member: its sockets stay open, it answers nothing."""
        member = self.member(name)
        _signal_group(member.proc, signal.SIGSTOP)
        member.paused = True
        return member

    def resume_member(self, name):
        """SIGCONT a paused member."""
        member = self.member(name)
        _signal_group(member.proc, signal.SIGCONT)
        member.paused = False
        return member

    def restart_member(self, name, timeout=SERVER_READY_TIMEOUT):
        """Start a (killed) member again with its own configuration: the
        same port and the same data. Returns when it answers ruok."""
        member = self.member(name)
        if member.proc.poll() is None:
            raise RuntimeError(f"member {name} is still running")
        proc = spawn(member.runzeo_argv(), member.log)
        self.processes.append(proc)
        member.proc = proc
        member.paused = False
        exited = _wait_all([member], lambda m: zeoprobe.ruok(m.addr, 2.0),
                           timeout, f"restarted member {name}")
        if exited:
            raise StartError(
                f"restarted member {name} exited (exit code "
                f"{proc.returncode}); {member.log}:\n{member.log_tail()}")
        return member

    # -- the front stopped and started again; members reconfigured ---------
    # What ZEO's own tests call stopping and starting "the server" again.
    # On zeoraid-N the front is zeoraid and its members go on running with
    # their data; on runzeo the front is the runzeo itself (its data stays
    # on disk).
    def _front_server(self):
        return self.front or self.members[0]

    @property
    def front_running(self):
        return self._front_server().proc.poll() is None

    def stop_front(self):
        """Stop the front (SIGTERM, bounded; SIGKILL if it does not end)."""
        stop_processes([self._front_server().proc])

    def _write_member_conf(self, member):
        (member.dir / "runzeo.conf").write_text(runzeo_config(
            member.addr, member.dir, self.storage_options, member.blob_dir,
            self.zeo_options, self.storage_conf, member.storage))

    def reconfigure_members(self, zeo_options=None, storage_options=None):
        """Give the members other <zeo> / <filestorage> option lines, their
        data kept: with the front stopped, each running member is stopped,
        its runzeo.conf rewritten, and started again (ruok). On runzeo the
        member is the front: start_front starts it with the new lines."""
        if self.front_running:
            raise RuntimeError(f"the front of {self.name} is running")
        if zeo_options is not None:
            self.zeo_options = zeo_options
        if storage_options is not None:
            self.storage_options = storage_options
        for member in self.members:
            running = member.proc.poll() is None
            if running:
                stop_processes([member.proc])
            self._write_member_conf(member)
            if running:
                self.restart_member(member.name)

    def start_front(self, addr=None):
        """Start the stopped front again on `addr` (default: where it was),
        with the same members and data. Returns when a client is served."""
        server = self._front_server()
        if server.proc.poll() is None:
            raise RuntimeError(f"the front of {self.name} is still running")
        addr = tuple(addr or server.addr)
        if self.front is None:
            server.addr = addr
            self._write_member_conf(server)
            argv = server.runzeo_argv()
            env = None
        else:
            conf = self.front.dir / "zeoraid.toml"
            if addr != server.addr:
                text = conf.read_text()
                old = f'\nlisten = "{server.address}"\n'
                assert old in text, text
                conf.write_text(text.replace(
                    old, f'\nlisten = "{addr[0]}:{addr[1]}"\n', 1))
                server.addr = addr
            argv = [str(zeoraid_binary()), "serve", "--config", str(conf)]
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith(("ZEORAID_CONFORMANCE",
                                        "ZEORAID_BIN"))}
        server.proc = spawn(argv, server.log, env=env)
        self.processes.append(server.proc)
        if _wait_all([server], self._front_ready, SERVER_READY_TIMEOUT,
                     f"{self.name}: front started again"):
            raise StartError(
                f"{self.name}: front started again exited (exit code "
                f"{server.proc.returncode}); {server.log}:\n"
                f"{server.log_tail()}")
        return server

    def stop(self):
        # A paused member would not handle SIGTERM: let it go on first.
        for member in self.members:
            if member.paused and member.proc.poll() is None:
                _signal_group(member.proc, signal.SIGCONT)
                member.paused = False
        # The front first, so that it does not see its members vanish.
        front = [self.front.proc] if self.front else []
        stop_processes(front)
        stop_processes([p for p in self.processes if p not in front])
        self.stopped = True
        while self.storages:
            self.storages.popitem()[1].release()


class ClusterSet:
    """The clusters one test uses; `stop()` ends every process started."""

    def __init__(self, target, dir):
        self.target = target
        self.dir = Path(dir)
        self.clusters = {}
        self.expired = False
        self._lock = threading.RLock()

    def start(self, name="main", storage_options="", blob_dir=None,
              zeoraid_options="", zeo_options="", addr=None, target=None,
              storage_conf=None, zeo5_members=()):
        """Start a fresh cluster. storage_options: extra ZConfig lines for
        the members' <filestorage>; blob_dir: the (only) member's blob
        directory instead of one of its own; zeoraid_options: extra TOML
        lines for zeoraid.toml (see zeoraid_config); zeo_options: extra
        lines for the members' <zeo> section; addr: the front's address
        (default: a free port). target="runzeo" with storage_conf (a
        ZConfig storage section): a plain runzeo serving that storage
        instead of a cluster of the set's target (e.g. a ZEO server whose
        storage is a <zeoclient> of a cluster); zeo5_members: the members
        ("m1", ...) run by ZEO 5.4's runzeo (zeo5_python())."""
        with self._lock:
            if self.expired:
                raise StartError("the test ran out of time (see "
                                 "ZEORAID_CONFORMANCE_TEST_TIMEOUT)")
            if name in self.clusters:
                raise ValueError(f"cluster {name!r} already started")
            cluster = Cluster(target or self.target, name, self.dir / name,
                              storage_options, blob_dir, zeoraid_options,
                              zeo_options, addr, storage_conf, zeo5_members)
            self.clusters[name] = cluster
            return cluster.start()

    def get_or_start(self, name, **options):
        """The cluster of that name, started if it is not yet."""
        if name in self.clusters:
            return self.clusters[name]
        return self.start(name, **options)

    def __iter__(self):
        return iter(self.clusters.values())

    def describe_logs(self, lines=60):
        parts = []
        for cluster in self:
            for server in cluster.logs():
                parts.append(f"--- {cluster.name}/{server.name} "
                             f"({server.kind} {server.address}) "
                             f"{server.log}:\n{server.log_tail(lines)}")
        return "\n".join(parts)

    def expire(self):
        """The watchdog: stop every server now, so that a test stuck in a
        client waiting on a server ends; no cluster starts after this."""
        with self._lock:
            self.expired = True
            self.stop()

    def stop(self):
        errors = []
        for cluster in list(self.clusters.values()):
            try:
                cluster.stop()
            except Exception as err:  # stop the others all the same
                errors.append(err)
        if errors:
            raise errors[0]
