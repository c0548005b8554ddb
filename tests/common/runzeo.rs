//! Real `runzeo` servers for integration tests.
//!
//! [`RunZeo::start`] spawns the ZEO server of the project's Python
//! environment (`python -m ZEO.runzeo`, ZEO 6.2 / ZODB 6.4 as pinned in
//! `scripts/requirements.txt`) on a free loopback port, serving one
//! FileStorage (optionally with a blob directory) that lives in a private
//! temporary directory.  [`RunZeo::start`] returns once the server answers
//! the `ruok` status probe, so a test can use it right away.
//!
//! Which Python is used: `$ZEORAID_PYTHON` if set (`scripts/test` sets it),
//! otherwise `<repo>/.venv/bin/python`; when that venv has no `runzeo` yet,
//! `scripts/python-env` is run once per test process to create it.  A ZEO
//! 5.4 server ([`RunZeoOptions::zeo5`]) runs from the ZEO 5 environment the
//! same way: `$ZEORAID_PYTHON_ZEO5`, else `<repo>/.venv-zeo5/bin/python`,
//! else `scripts/python-env --zeo5` creates it ([`zeo5_python`]).
//!
//! Every wait is bounded.  Dropping a [`RunZeo`] kills (SIGKILL) and reaps
//! the server, also while a test unwinds from a panic, so no `runzeo`
//! outlives its test; it then removes the temporary directory.  The
//! server's output goes to `runzeo.log` in that directory; its tail is part
//! of every panic message of this module and is printed to stderr when a
//! `RunZeo` is dropped during a panic.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// `last-transaction` of a storage that has never committed.
pub const NO_TRANSACTION: &str = "0000000000000000";

/// Default bound for a server to come up (spawn until `ruok` answers).
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Default bound for one `ruok` probe.
pub const DEFAULT_RUOK_TIMEOUT: Duration = Duration::from_secs(5);

/// How often readiness and exit conditions are polled.
const POLL: Duration = Duration::from_millis(50);

/// Spawn attempts when the chosen port turns out to be taken.
const START_ATTEMPTS: usize = 5;

/// How many bytes of `runzeo.log` panic messages show.
const LOG_TAIL: usize = 6000;

/// The largest ZEO frame `ruok` accepts (the status JSON is a few hundred
/// bytes per storage).
const MAX_FRAME: usize = 16 * 1024 * 1024;

/// What kind of server [`RunZeo::start`] runs.
#[derive(Debug, Clone)]
pub struct RunZeoOptions {
    /// Name of the served storage (`<filestorage NAME>`); ZEO's default
    /// and ZODB clients' default is `"1"`.
    pub storage_name: String,
    /// Give the FileStorage a blob directory (`blob-dir`).
    pub blobs: bool,
    /// `msgpack true`: the server announces and speaks M5 instead of Z5.
    /// When false, `msgpack false` is written explicitly, so
    /// `$ZEO_MSGPACK` of the environment has no effect.
    pub msgpack: bool,
    /// `read-only true` in the `<zeo>` section.
    pub read_only: bool,
    /// Listen on this port instead of a free one chosen at start.
    pub port: Option<u16>,
    /// Extra `key value` lines for the `<zeo>` section, for example
    /// `("transaction-timeout", "5")` or
    /// `("client-conflict-resolution", "true")`.
    pub zeo_settings: Vec<(String, String)>,
    /// Bound for one start (spawn until `ruok` answers).
    pub startup_timeout: Duration,
    /// Start on a copy of this FileStorage file (copied to `data.fs` before
    /// the first start) instead of an empty storage, e.g. a storage a test
    /// wrote with ZODB itself.  `None` (default): empty.
    pub initial_storage: Option<PathBuf>,
    /// An `<ssl>` section in `<zeo>`: the server speaks TLS only (and
    /// requires client certificates signed by `authenticate`). Readiness
    /// is then its "listening" log line alone: `ruok` speaks plain TCP.
    pub ssl: Option<RunZeoSsl>,
    /// Run ZEO 5.4.1 / ZODB 5.8.1's runzeo (the ZEO 5 environment) instead
    /// of the main environment's ZEO 6.2.
    pub zeo5: bool,
    /// What the server serves: a FileStorage (default) or RelStorage.
    pub storage: StorageKind,
    /// RelStorage only: `keep-history false` (no history, no undo).
    pub history_free: bool,
}

/// The storage a member's runzeo serves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum StorageKind {
    /// `<filestorage>`: `data.fs` (and `blobs/`) in the member's directory.
    #[default]
    FileStorage,
    /// `<relstorage>` on SQLite, its database in `sqlite/` of the member's
    /// directory; blobs in the database (`shared-blob-dir false`, `blobs/`
    /// is the cache).
    RelStorageSqlite,
    /// `<relstorage>` on PostgreSQL: the `dsn` of a database (see
    /// `postgres::Postgres::create_database`); blobs in the database.
    RelStoragePostgres { dsn: String },
}

/// runzeo's `<ssl>` section: the server's certificate and key, and the CA
/// (file) its clients' certificates must be signed by.
#[derive(Clone, Debug)]
pub struct RunZeoSsl {
    pub certificate: PathBuf,
    pub key: PathBuf,
    pub authenticate: PathBuf,
}

impl Default for RunZeoOptions {
    fn default() -> Self {
        RunZeoOptions {
            storage_name: "1".to_string(),
            blobs: false,
            msgpack: false,
            read_only: false,
            port: None,
            zeo_settings: Vec::new(),
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            initial_storage: None,
            ssl: None,
            zeo5: false,
            storage: StorageKind::FileStorage,
            history_free: false,
        }
    }
}

impl RunZeoOptions {
    /// A plain server: storage `"1"`, no blobs, Z5 (pickle), writable.
    pub fn new() -> Self {
        Self::default()
    }

    /// With a blob directory.
    pub fn blobs(mut self) -> Self {
        self.blobs = true;
        self
    }

    /// Speaking msgpack (M5).
    pub fn msgpack(mut self) -> Self {
        self.msgpack = true;
        self
    }

    /// A read-only server.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Listen on a fixed port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Serve the storage under another name than `"1"`.
    pub fn storage_name(mut self, name: &str) -> Self {
        self.storage_name = name.to_string();
        self
    }

    /// Add a `key value` line to the `<zeo>` section.
    pub fn zeo_setting(mut self, key: &str, value: &str) -> Self {
        self.zeo_settings.push((key.to_string(), value.to_string()));
        self
    }

    /// Speak TLS (see [`RunZeoOptions::ssl`]).
    pub fn ssl(mut self, ssl: RunZeoSsl) -> Self {
        self.ssl = Some(ssl);
        self
    }

    /// A ZEO 5.4 server (see [`RunZeoOptions::zeo5`]).
    pub fn zeo5(mut self) -> Self {
        self.zeo5 = true;
        self
    }

    /// Serve RelStorage on SQLite instead of a FileStorage.
    pub fn relstorage_sqlite(mut self) -> Self {
        self.storage = StorageKind::RelStorageSqlite;
        self
    }

    /// Serve RelStorage on the PostgreSQL database `dsn`.
    pub fn relstorage_postgres(mut self, dsn: &str) -> Self {
        self.storage = StorageKind::RelStoragePostgres { dsn: dsn.to_string() };
        self
    }

    /// A history-free RelStorage (`keep-history false`).
    pub fn history_free(mut self) -> Self {
        self.history_free = true;
        self
    }

    /// Start on a copy of the FileStorage file `path` (see
    /// [`RunZeoOptions::initial_storage`]).
    pub fn initial_storage(mut self, path: &Path) -> Self {
        self.initial_storage = Some(path.to_path_buf());
        self
    }
}

/// Why a server could not be started.
#[derive(Debug)]
pub struct RunZeoError {
    /// What went wrong, with the tail of `runzeo.log` where there is one.
    pub message: String,
    /// The server could not bind its port (worth another try elsewhere).
    pub addr_in_use: bool,
}

impl fmt::Display for RunZeoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RunZeoError {}

impl RunZeoError {
    fn new(message: String) -> Self {
        RunZeoError {
            message,
            addr_in_use: false,
        }
    }
}

/// One running (or killed, see [`RunZeo::kill9`]) `runzeo` process with its
/// storage.  See the module documentation.
pub struct RunZeo {
    options: RunZeoOptions,
    addr: SocketAddr,
    child: Option<Child>,
    pid: u32,
    starts: usize,
    config_path: PathBuf,
    log_path: PathBuf,
    // Removed when the fields are dropped, that is after `Drop::drop` has
    // reaped the process that writes into it.
    dir: tempfile::TempDir,
}

impl fmt::Debug for RunZeo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunZeo")
            .field("addr", &self.addr)
            .field("pid", &self.pid)
            .field("running", &self.child.is_some())
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl RunZeo {
    /// Start a server and wait until it answers `ruok`; panics (with the
    /// server's log) if it cannot be started within
    /// `options.startup_timeout` (per attempt, at most 5 attempts when the
    /// chosen port is taken by someone else).
    pub fn start(options: RunZeoOptions) -> RunZeo {
        match RunZeo::try_start(options) {
            Ok(server) => server,
            Err(err) => panic!("RunZeo::start failed: {err}"),
        }
    }

    /// [`RunZeo::start`] that returns the error instead of panicking.
    pub fn try_start(options: RunZeoOptions) -> Result<RunZeo, RunZeoError> {
        let python = server_python(&options).to_path_buf();
        let dir = tempfile::Builder::new()
            .prefix("runzeo-")
            .tempdir()
            .map_err(|e| RunZeoError::new(format!("cannot create a tempdir: {e}")))?;
        let log_path = dir.path().join("runzeo.log");
        let config_path = dir.path().join("zeo.conf");
        if options.storage == StorageKind::RelStorageSqlite {
            fs::create_dir(dir.path().join("sqlite"))
                .map_err(|e| RunZeoError::new(format!("cannot create the SQLite directory: {e}")))?;
        }
        if let Some(source) = &options.initial_storage {
            fs::copy(source, dir.path().join("data.fs")).map_err(|e| {
                RunZeoError::new(format!("cannot copy the storage {}: {e}", source.display()))
            })?;
        }
        let mut last_err = None;
        for _ in 0..START_ATTEMPTS {
            let port = match options.port {
                Some(port) => port,
                None => free_port().map_err(|e| RunZeoError::new(format!("cannot find a free port: {e}")))?,
            };
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            fs::write(&config_path, zconfig(&options, addr, dir.path()))
                .map_err(|e| RunZeoError::new(format!("cannot write {}: {e}", config_path.display())))?;
            match spawn_ready(&python, &config_path, &log_path, addr, &options) {
                Ok(child) => {
                    let pid = child.id();
                    return Ok(RunZeo {
                        options,
                        addr,
                        child: Some(child),
                        pid,
                        starts: 1,
                        config_path,
                        log_path,
                        dir,
                    });
                }
                Err(err) if err.addr_in_use && options.port.is_none() => last_err = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last_err.unwrap_or_else(|| RunZeoError::new("no start attempt was made".into())))
    }

    /// The address the server listens on (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Process id of the most recently started `runzeo` (still the same
    /// value after [`RunZeo::kill9`], until the next [`RunZeo::restart`]).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// How often a process was started for this server (1 + restarts).
    pub fn starts(&self) -> usize {
        self.starts
    }

    /// The options the server was started with.
    pub fn options(&self) -> &RunZeoOptions {
        &self.options
    }

    /// The served storage's name (`"1"` by default).
    pub fn storage_name(&self) -> &str {
        &self.options.storage_name
    }

    /// The private directory holding the config, the log, the FileStorage
    /// and the blob directory; removed on drop.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The FileStorage file (`data_dir()/data.fs`).
    pub fn storage_path(&self) -> PathBuf {
        self.dir.path().join("data.fs")
    }

    /// Kill the server, delete its storage (a FileStorage's `data.fs` and
    /// its index, lock and temporary files; a RelStorage on SQLite's
    /// database directory) and its blob directory, and start it again on
    /// the same port: an empty member, as an operator makes one for a full
    /// copy. Panics for a RelStorage member on PostgreSQL.
    pub fn restart_empty(&mut self) {
        self.kill9();
        match &self.options.storage {
            StorageKind::FileStorage => {
                for suffix in ["", ".index", ".lock", ".tmp"] {
                    let file = self.dir.path().join(format!("data.fs{suffix}"));
                    if let Err(e) = fs::remove_file(&file) {
                        assert!(
                            e.kind() == io::ErrorKind::NotFound,
                            "cannot remove {}: {e}",
                            file.display()
                        );
                    }
                }
            }
            StorageKind::RelStorageSqlite => {
                let database = self.dir.path().join("sqlite");
                fs::remove_dir_all(&database)
                    .and_then(|()| fs::create_dir(&database))
                    .unwrap_or_else(|e| panic!("cannot empty {}: {e}", database.display()));
            }
            StorageKind::RelStoragePostgres { .. } => {
                panic!("restart_empty wipes a FileStorage or a RelStorage on SQLite only")
            }
        }
        if let Some(blobs) = self.blob_dir().filter(|b| b.exists()) {
            fs::remove_dir_all(&blobs).unwrap_or_else(|e| panic!("cannot remove {}: {e}", blobs.display()));
        }
        self.restart();
    }

    /// The blob directory, if the server has one.
    pub fn blob_dir(&self) -> Option<PathBuf> {
        self.options.blobs.then(|| self.dir.path().join("blobs"))
    }

    /// The ZConfig file runzeo was started with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Where runzeo's stdout and stderr go (all starts, appended).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The whole of `runzeo.log` (lossy UTF-8).
    pub fn log(&self) -> String {
        read_lossy(&self.log_path)
    }

    /// Whether the process is still alive (a stopped process counts as
    /// alive).  Reaps it if it has exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(Ok(Some(_))) | Some(Err(_)) => {
                self.child = None;
                false
            }
            None => false,
        }
    }

    /// Kill the server with SIGKILL and reap it: no clean shutdown, the
    /// port is closed once this returns.  No-op if it is not running.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Fails only if the child is already reaped; `wait` then
            // returns at once.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stop the server cleanly with SIGTERM and wait up to `timeout` for it
    /// to exit (SIGKILL after that).  Returns its exit status, or `None`
    /// if it had to be killed or was not running.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.take()?;
        stop_child(child, libc::SIGTERM, timeout)
    }

    /// Freeze the server with SIGSTOP: it keeps its port open, the kernel
    /// still accepts connections, but nothing is answered.
    pub fn sigstop(&self) {
        signal(self.running_pid("sigstop"), libc::SIGSTOP);
    }

    /// Resume a server frozen with [`RunZeo::sigstop`].
    pub fn sigcont(&self) {
        signal(self.running_pid("sigcont"), libc::SIGCONT);
    }

    /// Kill the server if it runs and start it again on the same port with
    /// the same storage and options; returns once it answers `ruok`.
    /// Panics (with the log) if it does not come back.
    pub fn restart(&mut self) {
        if let Err(err) = self.try_restart() {
            panic!("RunZeo::restart failed: {err}");
        }
    }

    /// [`RunZeo::restart`] that returns the error instead of panicking.
    /// Retries a bounded number of times while the port is still taken.
    pub fn try_restart(&mut self) -> Result<(), RunZeoError> {
        self.kill9();
        let python = server_python(&self.options).to_path_buf();
        let mut last_err = None;
        for _ in 0..START_ATTEMPTS {
            match spawn_ready(
                &python,
                &self.config_path,
                &self.log_path,
                self.addr,
                &self.options,
            ) {
                Ok(child) => {
                    self.pid = child.id();
                    self.child = Some(child);
                    self.starts += 1;
                    return Ok(());
                }
                Err(err) if err.addr_in_use => {
                    last_err = Some(err);
                    thread::sleep(Duration::from_millis(200));
                }
                Err(err) => return Err(err),
            }
        }
        Err(last_err.unwrap_or_else(|| RunZeoError::new("no restart attempt was made".into())))
    }

    /// The server's status as the `ruok` probe returns it:
    /// `{"<storage>": {"last-transaction": "<16 hex>", "connections": N, ...}}`.
    /// Panics (with the log) if the probe fails.
    pub fn ruok(&self) -> serde_json::Value {
        match self.try_ruok() {
            Ok(value) => value,
            Err(err) => panic!(
                "ruok to runzeo on {} failed: {err}\n{}",
                self.addr,
                self.context()
            ),
        }
    }

    /// One `ruok` probe bounded by [`DEFAULT_RUOK_TIMEOUT`].
    pub fn try_ruok(&self) -> io::Result<serde_json::Value> {
        ruok(self.addr, DEFAULT_RUOK_TIMEOUT)
    }

    /// One `ruok` probe bounded by `timeout`.
    pub fn try_ruok_timeout(&self, timeout: Duration) -> io::Result<serde_json::Value> {
        ruok(self.addr, timeout)
    }

    /// The served storage's `last-transaction` (16 hex digits) per `ruok`.
    pub fn last_transaction(&self) -> String {
        let status = self.ruok();
        match status[self.storage_name()]["last-transaction"].as_str() {
            Some(tid) => tid.to_string(),
            None => panic!(
                "ruok of {} has no last-transaction for storage {:?}: {status}",
                self.addr,
                self.storage_name()
            ),
        }
    }

    /// Config and log tail, for panic messages.
    pub fn context(&self) -> String {
        format!(
            "--- {} ---\n{}--- tail of {} ---\n{}",
            self.config_path.display(),
            read_lossy(&self.config_path),
            self.log_path.display(),
            tail(&self.log(), LOG_TAIL)
        )
    }

    fn running_pid(&self, what: &str) -> u32 {
        match &self.child {
            Some(child) => child.id(),
            None => panic!("{what}: runzeo on {} is not running", self.addr),
        }
    }
}

impl Drop for RunZeo {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL also ends a SIGSTOPped process.
            let _ = child.kill();
            let _ = child.wait();
        }
        if thread::panicking() {
            eprintln!(
                "RunZeo on {} dropped during a panic; its log:\n{}",
                self.addr,
                self.context()
            );
        }
    }
}

/// Send one `ruok` probe to a ZEO server (or anything that speaks the ZEO
/// handshake, zeoraid included): read the server's protocol announcement
/// frame (`Z5`/`M5`), send the frame `ruok`, read one frame of ASCII JSON.
/// All of it bounded by `timeout`.  Needs no pickle.
pub fn ruok(addr: SocketAddr, timeout: Duration) -> io::Result<serde_json::Value> {
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_nodelay(true)?;
    let announcement = read_frame(&mut stream, deadline)?;
    if announcement.is_empty() || announcement.len() > 16 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected protocol announcement {announcement:?}"),
        ));
    }
    stream.set_write_timeout(Some(remaining(deadline)?))?;
    stream.write_all(b"\x00\x00\x00\x04ruok")?;
    let body = read_frame(&mut stream, deadline)?;
    serde_json::from_slice(&body).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "ruok answer is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&body)
            ),
        )
    })
}

/// Connect and read the server's protocol announcement frame (`b"Z5"` for
/// pickle, `b"M5"` for msgpack), bounded by `timeout`, then hang up.
pub fn protocol_announcement(addr: SocketAddr, timeout: Duration) -> io::Result<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    read_frame(&mut stream, deadline)
}

fn remaining(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(io::Error::new(io::ErrorKind::TimedOut, "ruok timed out"))
    } else {
        Ok(left)
    }
}

fn read_exact_by(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        stream.set_read_timeout(Some(remaining(deadline)?))?;
        match stream.read(&mut buf[done..]) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed mid-frame",
                ))
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn read_frame(stream: &mut TcpStream, deadline: Instant) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    read_exact_by(stream, &mut len, deadline)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes"),
        ));
    }
    let mut body = vec![0u8; len];
    read_exact_by(stream, &mut body, deadline)?;
    Ok(body)
}

/// A loopback port that was free a moment ago (bind to port 0, read the
/// port, close).  Someone else may take it before it is used: callers
/// retry.
pub fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// The repository root (the root package's manifest directory).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Python that has ZEO/ZODB: `$ZEORAID_PYTHON`, else
/// `<repo>/.venv/bin/python`, running `scripts/python-env` first (once per
/// process, serialised across processes by a lock file) when the venv has
/// no `runzeo`.  Panics if there is none to be had.
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| find_python(&MAIN_ENV))
}

/// The Python of the ZEO 5 environment (ZEO 5.4.1 / ZODB 5.8.1):
/// `$ZEORAID_PYTHON_ZEO5`, else `<repo>/.venv-zeo5/bin/python`, running
/// `scripts/python-env --zeo5` first when that venv has no `runzeo`.
pub fn zeo5_python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| find_python(&ZEO5_ENV))
}

/// The Python whose runzeo serves a server started with `options`.
fn server_python(options: &RunZeoOptions) -> &'static Path {
    if options.zeo5 {
        zeo5_python()
    } else {
        python()
    }
}

/// Where one of the project's Python environments is and how it is made.
struct PythonEnv {
    /// The variable that names its python, overriding the rest.
    variable: &'static str,
    /// Its directory below the repository root.
    venv: &'static str,
    /// The arguments of `scripts/python-env` that create it.
    script_args: &'static [&'static str],
}

const MAIN_ENV: PythonEnv = PythonEnv {
    variable: "ZEORAID_PYTHON",
    venv: ".venv",
    script_args: &[],
};

const ZEO5_ENV: PythonEnv = PythonEnv {
    variable: "ZEORAID_PYTHON_ZEO5",
    venv: ".venv-zeo5",
    script_args: &["--zeo5"],
};

fn find_python(env: &PythonEnv) -> PathBuf {
    if let Some(python) = std::env::var_os(env.variable).filter(|p| !p.is_empty()) {
        let python = PathBuf::from(python);
        assert!(
            python.exists(),
            "{}={} does not exist (run scripts/python-env, or unset it)",
            env.variable,
            python.display()
        );
        return python;
    }
    let venv_bin = repo_root().join(env.venv).join("bin");
    if venv_bin.join("runzeo").exists() {
        return venv_bin.join("python");
    }
    // Parallel test processes (nextest) must not build the venv at the
    // same time: hold an exclusive lock while running the script.
    let lock_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-env.lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", lock_path.display()));
    flock(&lock);
    if venv_bin.join("runzeo").exists() {
        return venv_bin.join("python");
    }
    let script = repo_root().join("scripts").join("python-env");
    let output = Command::new("bash")
        .arg(&script)
        .args(env.script_args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        output.status.success(),
        "{} {:?} failed ({}):\n{}{}",
        script.display(),
        env.script_args,
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let python = PathBuf::from(stdout.lines().last().unwrap_or("").trim());
    assert!(
        python.exists(),
        "{} printed no usable python path: {stdout:?}",
        script.display()
    );
    python
    // The lock is released when `lock` is dropped here.
}

fn flock(file: &File) {
    use std::os::unix::io::AsRawFd;
    loop {
        // SAFETY: flock on a file descriptor that `file` keeps open.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc == 0 {
            return;
        }
        let err = io::Error::last_os_error();
        assert!(err.kind() == io::ErrorKind::Interrupted, "flock failed: {err}");
    }
}

/// Run the project Python on an inline script (`python -c SCRIPT ARGS...`),
/// bounded by `timeout` (killed after that).  Returns the output, whatever
/// the exit status.
pub fn run_python(script: &str, args: &[&str], timeout: Duration) -> Output {
    let mut child = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("PYTHONUNBUFFERED", "1")
        .env_remove("ZEO_MSGPACK")
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python().display()));
    let mut stdout_pipe = child.stdout.take().expect("piped stdout");
    let mut stderr_pipe = child.stderr.take().expect("piped stderr");
    let stdout = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout_pipe.read_to_end(&mut buf);
        buf
    });
    let stderr = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr_pipe.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(POLL),
            _ => {
                let _ = child.kill();
                let status = child.wait().expect("wait for killed python");
                let stderr = String::from_utf8_lossy(&stderr.join().unwrap_or_default()).into_owned();
                panic!("python script timed out after {timeout:?}; stderr:\n{stderr}\nstatus {status}");
            }
        }
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// [`run_python`] that panics unless the script exits 0; returns stdout.
pub fn run_python_ok(script: &str, args: &[&str], timeout: Duration) -> String {
    let output = run_python(script, args, timeout);
    assert!(
        output.status.success(),
        "python script failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn zconfig(options: &RunZeoOptions, addr: SocketAddr, dir: &Path) -> String {
    let mut zeo = format!(
        "<zeo>\n  address {addr}\n  msgpack {}\n  read-only {}\n",
        options.msgpack, options.read_only
    );
    for (key, value) in &options.zeo_settings {
        zeo.push_str(&format!("  {key} {value}\n"));
    }
    if let Some(ssl) = &options.ssl {
        zeo.push_str(&format!(
            "  <ssl>\n    certificate {}\n    key {}\n    authenticate {}\n  </ssl>\n",
            ssl.certificate.display(),
            ssl.key.display(),
            ssl.authenticate.display()
        ));
    }
    zeo.push_str("</zeo>\n\n");
    zeo + &storage_section(options, dir)
}

/// The storage's ZConfig section (with `%import relstorage` for RelStorage).
fn storage_section(options: &RunZeoOptions, dir: &Path) -> String {
    let blob_dir = |key: &str| match options.blobs {
        true => format!("  {key} {}\n", dir.join("blobs").display()),
        false => String::new(),
    };
    let adapter = match &options.storage {
        StorageKind::FileStorage => {
            return format!(
                "<filestorage {}>\n  path {}\n{}</filestorage>\n",
                options.storage_name,
                dir.join("data.fs").display(),
                blob_dir("blob-dir")
            );
        }
        StorageKind::RelStorageSqlite => format!(
            "  <sqlite3>\n    data-dir {}\n  </sqlite3>\n",
            dir.join("sqlite").display()
        ),
        StorageKind::RelStoragePostgres { dsn } => {
            format!("  <postgresql>\n    dsn {dsn}\n  </postgresql>\n")
        }
    };
    format!(
        "%import relstorage\n<relstorage {}>\n  keep-history {}\n{}{}{}</relstorage>\n",
        options.storage_name,
        !options.history_free,
        blob_dir("blob-dir"),
        match options.blobs {
            true => "  shared-blob-dir false\n",
            false => "",
        },
        adapter
    )
}

/// Spawn runzeo and wait until it is ready: it has logged that it listens
/// on `addr` (so the bound port is ours, not another process's) and it
/// answers `ruok`.  On failure the process is killed and reaped.
fn spawn_ready(
    python: &Path,
    config: &Path,
    log_path: &Path,
    addr: SocketAddr,
    options: &RunZeoOptions,
) -> Result<Child, RunZeoError> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(|e| RunZeoError::new(format!("cannot open {}: {e}", log_path.display())))?;
    let offset = log.metadata().map(|m| m.len()).unwrap_or(0) as usize;
    let mut header = &log;
    let _ = writeln!(header, "=== harness: starting runzeo on {addr} ===");
    let stderr = log
        .try_clone()
        .map_err(|e| RunZeoError::new(format!("cannot dup log fd: {e}")))?;
    let mut child = Command::new(python)
        .args(["-m", "ZEO.runzeo", "-C"])
        .arg(config)
        .current_dir(config.parent().unwrap_or(Path::new("/")))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(stderr)
        .env("PYTHONUNBUFFERED", "1")
        .env_remove("ZEO_MSGPACK")
        .spawn()
        .map_err(|e| RunZeoError::new(format!("cannot spawn {} -m ZEO.runzeo: {e}", python.display())))?;

    let listening = format!("listening on ('{}', {})", addr.ip(), addr.port());
    let deadline = Instant::now() + options.startup_timeout;
    let mut last_probe_err = None;
    loop {
        let log_now = read_from(log_path, offset);
        let this_start = log_now.as_str();
        match child.try_wait() {
            Ok(Some(status)) => {
                return Err(RunZeoError {
                    addr_in_use: this_start.contains("already in use"),
                    message: format!(
                        "runzeo on {addr} exited with {status} before it was ready\n--- {} ---\n{}--- log of this start ---\n{}",
                        config.display(),
                        read_lossy(config),
                        tail(this_start, LOG_TAIL)
                    ),
                });
            }
            Ok(None) => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(RunZeoError::new(format!("cannot poll runzeo: {e}")));
            }
        }
        if this_start.contains(&listening) && options.ssl.is_some() {
            return Ok(child);
        }
        if this_start.contains(&listening) {
            match ruok(addr, Duration::from_secs(2)) {
                Ok(_) => return Ok(child),
                Err(e) => last_probe_err = Some(e),
            }
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(RunZeoError::new(format!(
                "runzeo on {addr} was not ready after {:?} (last ruok error: {})\n--- {} ---\n{}--- log of this start ---\n{}",
                options.startup_timeout,
                last_probe_err.map_or("none, it never logged that it listens".to_string(), |e| e.to_string()),
                config.display(),
                read_lossy(config),
                tail(&read_from(log_path, offset), LOG_TAIL)
            )));
        }
        thread::sleep(POLL);
    }
}

/// Sends `sig` to `child` and waits up to `timeout` for it to exit; kills
/// it (SIGKILL) if it has not. Its exit status, `None` when it was killed.
pub fn stop_child(mut child: Child, sig: libc::c_int, timeout: Duration) -> Option<ExitStatus> {
    signal(child.id(), sig);
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(POLL);
    }
}

pub fn signal(pid: u32, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    // SAFETY: kill(2) with the pid of a child we have not reaped yet.
    let rc = unsafe { libc::kill(pid, sig) };
    assert!(
        rc == 0,
        "kill({pid}, {sig}) failed: {}",
        io::Error::last_os_error()
    );
}

/// Whether a process with this pid exists (`kill -0`).
pub fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The whole file (lossy UTF-8), empty if it cannot be read.
pub fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The file from byte `offset` on (lossy UTF-8).
fn read_from(path: &Path, offset: usize) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(b.get(offset..).unwrap_or_default()).into_owned())
        .unwrap_or_default()
}

/// The last `max` bytes of `text` (from a character boundary).
pub fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Every file below `dir` whose name ends in `suffix` (a server's blob
/// files: `.blob`).
pub fn files_under(dir: &Path, suffix: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if path.to_string_lossy().ends_with(suffix) {
                found.push(path);
            }
        }
    }
    found
}
