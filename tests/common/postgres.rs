//! A PostgreSQL server for RelStorage members, started by a test.
//!
//! [`Postgres::start`] runs Debian's `postgresql` binaries (found under
//! `/usr/lib/postgresql/*/bin`, installed by `scripts/system-packages`,
//! never a system service): `initdb` into a private temporary directory,
//! then `postgres` on a free loopback port with its Unix socket in that
//! directory, trusting local connections. PostgreSQL refuses to run as
//! root, so when the test runs as root both run as `nobody` (through
//! `setpriv`), the directory chowned to it. [`Postgres::create_database`]
//! makes one database per member and answers its RelStorage `dsn`.
//!
//! Every wait is bounded. Dropping a [`Postgres`] stops the server
//! (SIGQUIT, the immediate shutdown; SIGKILL if it outlives the bound) and
//! removes the directory. Missing binaries fail the test with a message
//! naming `scripts/system-packages`.

use super::runzeo::{free_port, read_lossy, tail};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Bound for `postgres` to accept connections.
const STARTUP: Duration = Duration::from_secs(60);

/// Bound for `postgres` to exit once told to.
const SHUTDOWN: Duration = Duration::from_secs(10);

/// Spawn attempts when the chosen port turns out to be taken.
const START_ATTEMPTS: usize = 5;

/// The unprivileged account PostgreSQL runs as when the test runs as root.
const UNPRIVILEGED: (&str, &str) = ("nobody", "nogroup");

/// See the module documentation.
pub struct Postgres {
    bin: PathBuf,
    port: u16,
    child: Option<Child>,
    log_path: PathBuf,
    // Removed after `Drop::drop` has stopped the server.
    dir: tempfile::TempDir,
}

impl Postgres {
    /// Initialises a cluster and starts it; panics (with its log) if it
    /// does not accept connections within a minute, or if PostgreSQL is
    /// not installed.
    pub fn start() -> Postgres {
        let bin = postgres_bin();
        let dir = tempfile::Builder::new()
            .prefix("postgres-")
            .tempdir()
            .expect("create a tempdir for PostgreSQL");
        let data = dir.path().join("data");
        let log_path = dir.path().join("postgres.log");
        give_to_postgres_user(dir.path());
        let initdb = as_postgres_user(bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdin(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(
            initdb.status.success(),
            "initdb failed ({}):\n{}{}",
            initdb.status,
            String::from_utf8_lossy(&initdb.stdout),
            String::from_utf8_lossy(&initdb.stderr)
        );
        let mut server = Postgres {
            bin,
            port: 0,
            child: None,
            log_path,
            dir,
        };
        for _ in 0..START_ATTEMPTS {
            server.port = free_port().expect("a free port");
            if server.spawn_ready() {
                return server;
            }
        }
        panic!("PostgreSQL did not start:\n{}", server.log_tail());
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates the database `name` and answers the `dsn` a `<postgresql>`
    /// section of RelStorage connects to it with.
    pub fn create_database(&self, name: &str) -> String {
        let created = Command::new(self.bin.join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                name,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run createdb");
        assert!(
            created.status.success(),
            "createdb {name} failed: {}\n{}",
            String::from_utf8_lossy(&created.stderr),
            self.log_tail()
        );
        format!(
            "dbname='{name}' user='postgres' host='127.0.0.1' port='{}'",
            self.port
        )
    }

    /// The tail of the server's log.
    pub fn log_tail(&self) -> String {
        tail(&read_lossy(&self.log_path), 4000).to_string()
    }

    /// Spawns `postgres` on `self.port`; whether it accepts connections
    /// in time (if not, it has been killed).
    fn spawn_ready(&mut self) -> bool {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open postgres.log");
        let stderr = log.try_clone().expect("dup postgres.log");
        let child = as_postgres_user(self.bin.join("postgres"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-p", &self.port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", self.dir.path().display()))
            .args(["-c", "fsync=off", "-c", "max_connections=200"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .expect("spawn postgres");
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP;
        while Instant::now() < deadline {
            if self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok())
                .flatten()
                .is_some()
            {
                self.child = None;
                return false;
            }
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-t", "2"])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return true;
            }
            thread::sleep(Duration::from_millis(100));
        }
        self.stop();
        false
    }

    fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            super::runzeo::stop_child(child, libc::SIGQUIT, SHUTDOWN);
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        if thread::panicking() {
            eprintln!(
                "PostgreSQL on port {} dropped during a panic; its log:\n{}",
                self.port,
                self.log_tail()
            );
        }
    }
}

/// The directory of `initdb`, `postgres`, `createdb` (the newest version
/// installed); panics naming the script that installs them.
fn postgres_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists() && bin.join("postgres").exists())
        .collect();
    found.sort_by_key(|p| version_of(p));
    found.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): RelStorage members on \
             PostgreSQL need Debian's postgresql package; run scripts/system-packages"
        )
    })
}

/// `/usr/lib/postgresql/15/bin` → 15.
fn version_of(bin: &Path) -> u32 {
    bin.parent()
        .and_then(Path::file_name)
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn running_as_root() -> bool {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() == 0 }
}

/// A command for `program` running as the cluster's owner: through
/// `setpriv` as `nobody` when the test runs as root, as is otherwise.
fn as_postgres_user(program: PathBuf) -> Command {
    if !running_as_root() {
        return Command::new(program);
    }
    let mut wrapped = Command::new("setpriv");
    wrapped
        .arg(format!("--reuid={}", UNPRIVILEGED.0))
        .arg(format!("--regid={}", UNPRIVILEGED.1))
        .arg("--clear-groups")
        .arg(program);
    wrapped
}

/// Makes `dir` the unprivileged account's when the test runs as root.
fn give_to_postgres_user(dir: &Path) {
    if !running_as_root() {
        return;
    }
    let owner = Command::new("chown")
        .arg(format!("{}:{}", UNPRIVILEGED.0, UNPRIVILEGED.1))
        .arg(dir)
        .status()
        .expect("run chown");
    assert!(owner.success(), "chown {} failed", dir.display());
}
