"""A PostgreSQL server for RelStorage members, started by the suite itself.

One server per pytest session, started on first use (only runs that
select a `+pg` target pay for it): `initdb` and `postgres` from Debian's
`postgresql` package (/usr/lib/postgresql/<version>/bin, not on PATH;
scripts/system-packages installs it without creating a system cluster),
in a temporary directory, listening on a free 127.0.0.1 port and on a
Unix socket in that directory. PostgreSQL refuses to run as root: when
the suite runs as root, the server runs as `nobody` (the directory is
chowned to it). Authentication is `trust` (loopback only, a throwaway
cluster). Durability settings are off (fsync, synchronous_commit,
full_page_writes): a crash of the test machine loses nothing anyone
needs, and a commit costs no disk flush.

Every member gets a database of its own (`create_database`), copied from
a template in which RelStorage's schema is already installed (installing
it takes longer than copying it), and dropped when the member is done
(`drop_database`). The session fixture in conftest.py stops the server
and removes its directory at the end.

If the binaries are missing the tests that need them fail (never skip)
with a message naming scripts/system-packages.
"""

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

SUPERUSER = "zeoraid"
TEMPLATE_DB = "relstorage_template"
READY_TIMEOUT = 60          # initdb + first start can be slow on a busy box
STATEMENT_TIMEOUT = 60      # psycopg2 connect timeout / bounded waits
UNPRIVILEGED = ("nobody", "nogroup")
# The system's temporary directory, taken before any test runs: ZODB's
# test set-up points `tempfile` at a directory of the test's own, which
# the unprivileged server user could not enter.
SYSTEM_TMP = tempfile.gettempdir()


class PostgresMissing(RuntimeError):
    pass


def binaries():
    """The directory with initdb and postgres: the newest
    /usr/lib/postgresql/*/bin, else the one on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if
                   Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise PostgresMissing(
        "PostgreSQL's initdb/postgres not found (looked in "
        "/usr/lib/postgresql/*/bin and PATH): the RelStorage-on-PostgreSQL "
        "targets need Debian's `postgresql` package; run "
        "scripts/system-packages (as root or with sudo), or leave the `+pg` "
        "targets out of ZEORAID_CONFORMANCE_TARGETS")


def _run_as():
    """Popen keyword arguments that drop root to an unprivileged user
    (PostgreSQL will not run as root); none when not root."""
    if os.geteuid() != 0:
        return {}
    user, group = UNPRIVILEGED
    return {"user": user, "group": group, "extra_groups": []}


class PostgresServer:
    """A running throwaway PostgreSQL cluster."""

    def __init__(self):
        self.dir = None
        self.proc = None
        self.port = None
        self._lock = threading.Lock()
        self._count = 0

    # -- lifecycle -----------------------------------------------------------
    def start(self):
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self):
        from .cluster import free_port, spawn
        bindir = binaries()
        # Not under pytest's tmp_path: that is private to root (0700) and
        # the server may run as nobody.
        self.dir = Path(tempfile.mkdtemp(prefix="zeoraid-pg-",
                                         dir=SYSTEM_TMP))
        data = self.dir / "data"
        log = self.dir / "postgres.log"
        as_user = _run_as()
        if as_user:
            uid = pwd.getpwnam(as_user["user"]).pw_uid
            os.chown(self.dir, uid, -1)
        init = subprocess.run(
            [str(bindir / "initdb"), "-D", str(data), "-U", SUPERUSER,
             "-A", "trust", "-E", "UTF8", "--no-sync",
             "--locale", "C"],
            capture_output=True, text=True, timeout=READY_TIMEOUT,
            cwd=self.dir, **as_user)
        if init.returncode:
            raise RuntimeError(f"initdb failed ({init.returncode}):\n"
                               f"{init.stdout}\n{init.stderr}")
        self.port = free_port()
        self.proc = spawn(
            [str(bindir / "postgres"), "-D", str(data),
             "-p", str(self.port), "-k", str(self.dir),
             "-c", "listen_addresses=127.0.0.1",
             "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "max_connections=300",
             "-c", "max_prepared_transactions=300"],
            log, cwd=self.dir, **as_user)
        self._wait_ready(log)
        self._create_template()
        return self

    def _wait_ready(self, log):
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"postgres exited ({self.proc.returncode}):\n"
                    f"{log.read_text(errors='replace')[-3000:]}")
            try:
                self.connect("postgres").close()
                return
            except Exception as err:
                if time.monotonic() >= deadline:
                    raise RuntimeError(
                        f"postgres not ready within {READY_TIMEOUT}s: "
                        f"{err!r}\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)

    def _create_template(self):
        """A database holding RelStorage's (history-preserving) schema,
        which every member's database is copied from."""
        self._execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
        from relstorage.adapters.postgresql import PostgreSQLAdapter
        from relstorage.options import Options
        from relstorage.storage import RelStorage
        options = Options(keep_history=True)
        adapter = PostgreSQLAdapter(dsn=self.dsn(TEMPLATE_DB),
                                    options=options)
        RelStorage(adapter, options=options).close()

    def stop(self):
        from .cluster import stop_processes
        if self.proc is not None:
            stop_processes([self.proc])
            self.proc = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    # -- databases -----------------------------------------------------------
    def dsn(self, dbname):
        return (f"dbname='{dbname}' user='{SUPERUSER}' host='127.0.0.1' "
                f"port='{self.port}'")

    def connect(self, dbname):
        import psycopg2
        conn = psycopg2.connect(self.dsn(dbname),
                                connect_timeout=STATEMENT_TIMEOUT)
        conn.autocommit = True
        return conn

    def _execute(self, sql):
        conn = self.connect("postgres")
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    def create_database(self, hint):
        """A fresh database with RelStorage's schema; returns its name."""
        with self._lock:
            self._count += 1
            name = f"m{self._count}_{''.join(c for c in hint if c.isalnum())}"
            name = name[:60].lower()
        self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
        return name

    def drop_database(self, name):
        """Drop it, ending any connection still open to it (a killed
        member's backend may linger)."""
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_server = None
_start_error = None
_server_lock = threading.Lock()


def server():
    """The session's PostgreSQL server, started on first use. A start
    that failed is not tried again in this session: every later caller
    gets its error."""
    global _server, _start_error
    with _server_lock:
        if _start_error is not None:
            raise _start_error
        if _server is None:
            try:
                _server = PostgresServer().start()
            except Exception as err:
                _start_error = err
                raise
        return _server


def stop_server():
    """Stop the session's server if one was started (the session fixture
    in conftest.py calls this at the end)."""
    global _server
    with _server_lock:
        if _server is not None:
            _server.stop()
            _server = None
