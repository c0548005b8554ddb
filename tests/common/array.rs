//! A whole zeoraid array for integration tests: N real `runzeo` members
//! (each with a blob directory) and the `zeoraid` binary in front of them.
//!
//! [`Array::start`] starts the members (in parallel), writes a config into
//! a private temporary directory (`listen = "127.0.0.1:0"`, JSON logs,
//! short restart backoffs) and starts `zeoraid serve`; it returns once
//! zeoraid logged "zeoraid started", whose `listen` field gives the port
//! it really listens on. [`Array::restart_zeoraid`] starts it again on the
//! same port with the same members.
//!
//! zeoraid's stderr (one JSON object per line) is read by a thread into a
//! shared list; [`Array::wait_for_log`] waits, bounded, for a line that
//! matches. Lines that are not JSON are kept as `{"raw": "<line>"}`.
//!
//! Every wait is bounded. Dropping the [`Array`] kills zeoraid (SIGKILL)
//! and then the members, also while a test unwinds from a panic; zeoraid's
//! log tail is printed to stderr in that case.
//!
//! For network faults a member can be reached through a
//! [`Relay`](super::faults::Relay) ([`ArrayOptions::relayed`],
//! [`Array::relay`]); for members that start with data, each can start on
//! a copy of a FileStorage file ([`ArrayOptions::member_storages`]).
//!
//! The checks the RAID tests share are here too: [`Array::commit_probe`]
//! commits through zeoraid and [`Array::assert_serving`] proves that
//! zeoraid still serves a new client and that earlier commits are on every
//! member.

use super::faults::Relay;
use super::rawclient::RawClient;
use super::records::ROOT_RECORD;
use super::runzeo::{ruok, RunZeo, RunZeoOptions};
use serde_json::Value as Json;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use zeo::types::{Oid, Tid};

/// Default bound for zeoraid to log "zeoraid started".
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Default bound for [`Array::wait_for_log`] callers that have no better one.
pub const LOG_WAIT: Duration = Duration::from_secs(15);

/// How many log lines panic messages and drop-during-panic show.
const LOG_TAIL_LINES: usize = 60;

/// Bound for zeoraid's stderr reader to finish after the process was reaped.
const READER_JOIN: Duration = Duration::from_secs(5);

/// Start attempts on a fixed port that turns out to be taken.
const RESTART_ATTEMPTS: usize = 5;

/// What [`Array::start_with`] starts.
#[derive(Clone, Debug)]
pub struct ArrayOptions {
    /// Number of `runzeo` members (`zeo1`, `zeo2`, ...).
    pub members: usize,
    /// How each member is started (default: storage `"1"` with blobs).
    pub member_options: RunZeoOptions,
    /// The zeoraid binary (default: the one Cargo built for these tests).
    pub binary: PathBuf,
    /// Extra top-level TOML lines, e.g. `msgpack = true`.
    pub top_level: Vec<String>,
    /// The body of the `[restart]` table.
    pub restart: String,
    /// `[log] level`.
    pub log_level: String,
    /// Name the members `localhost:PORT` in the config instead of
    /// `127.0.0.1:PORT` (resolved by zeoraid at each connect).
    pub members_by_host_name: bool,
    /// Extra TOML in each member's table, after its name and address,
    /// e.g. a `[members.tls]` table.
    pub member_table: String,
    /// Extra TOML appended after the members, e.g. `"[timeouts]\ncall = \"5s\"\n"`.
    pub tables: String,
    /// Bound for each zeoraid start.
    pub startup_timeout: Duration,
    /// Member `i` starts on a copy of `member_storages[i]` (a FileStorage
    /// file) when that is `Some`; members without an entry start empty.
    pub member_storages: Vec<Option<PathBuf>>,
    /// Indexes of the members zeoraid reaches through a [`Relay`] of their
    /// own (its config names the relay's address), for network faults:
    /// [`Array::relay`]. The others are reached directly.
    pub relayed: Vec<usize>,
    /// `[http] token`: admin requests need `Authorization: Bearer TOKEN`.
    pub http_token: Option<String>,
    /// `[http] token_for_reads`: the read routes need the token too.
    pub http_token_for_reads: bool,
    /// Environment variables zeoraid is started with (besides the
    /// test's own, less every `ZEORAID_*` one).
    pub env: Vec<(String, String)>,
    /// Indexes of the members that run ZEO 5.4 ([`RunZeoOptions::zeo5`]);
    /// the others run ZEO 6.2.
    pub zeo5_members: Vec<usize>,
    /// Member `i` starts with `member_kinds[i]` instead of
    /// `member_options` when that is `Some` (e.g. a RelStorage member
    /// beside FileStorage ones).
    pub member_kinds: Vec<Option<RunZeoOptions>>,
}

impl ArrayOptions {
    pub fn new(members: usize) -> ArrayOptions {
        ArrayOptions {
            members,
            member_options: RunZeoOptions::new().blobs(),
            binary: PathBuf::from(env!("CARGO_BIN_EXE_zeoraid")),
            top_level: Vec::new(),
            restart: "backoff_initial = \"50ms\"\nbackoff_max = \"200ms\"\npark_probe_interval = \"300ms\"\n"
                .to_string(),
            log_level: "info".to_string(),
            tables: String::new(),
            member_table: String::new(),
            members_by_host_name: false,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            member_storages: Vec::new(),
            relayed: Vec::new(),
            http_token: None,
            http_token_for_reads: false,
            env: Vec::new(),
            zeo5_members: Vec::new(),
            member_kinds: Vec::new(),
        }
    }

    /// How member `i` is started: its [`ArrayOptions::member_kinds`] entry
    /// or [`ArrayOptions::member_options`], with its initial storage and
    /// ZEO version.
    pub fn options_of_member(&self, i: usize) -> RunZeoOptions {
        let base = match self.member_kinds.get(i) {
            Some(Some(kind)) => kind.clone(),
            _ => self.member_options.clone(),
        };
        let mut options = with_initial_storage(base, &self.member_storages, i);
        options.zeo5 |= self.zeo5_members.contains(&i);
        options
    }
}

/// One commit made through zeoraid by [`Array::commit_probe`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub oid: Oid,
    pub tid: Tid,
    pub data: Vec<u8>,
}

/// A zeoraid's log lines (all its starts), shared with the stderr reader
/// threads: one JSON object per line.
#[derive(Default)]
pub struct LogShared {
    lines: Mutex<Vec<Json>>,
    grew: Condvar,
}

impl LogShared {
    pub fn lines(&self) -> MutexGuard<'_, Vec<Json>> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(&self, line: Json) {
        self.lines().push(line);
        self.grew.notify_all();
    }

    /// The number of lines so far.
    pub fn mark(&self) -> usize {
        self.lines().len()
    }

    /// The first line from index `since` on that matches, if any (no wait).
    pub fn find(&self, since: usize, pred: impl Fn(&Json) -> bool) -> Option<Json> {
        self.lines().iter().skip(since).find(|l| pred(l)).cloned()
    }

    /// Waits up to `within` for a line from index `since` on that matches.
    pub fn try_wait(&self, since: usize, within: Duration, pred: impl Fn(&Json) -> bool) -> Option<Json> {
        let deadline = Instant::now() + within;
        let mut lines = self.lines();
        let mut checked = since;
        loop {
            if let Some(line) = lines.iter().skip(checked).find(|l| pred(l)) {
                return Some(line.clone());
            }
            checked = checked.max(lines.len());
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            lines = match self.grew.wait_timeout(lines, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// The last [`LOG_TAIL_LINES`] lines, one JSON text each.
    pub fn tail(&self) -> Vec<String> {
        let lines = self.lines();
        lines
            .iter()
            .skip(lines.len().saturating_sub(LOG_TAIL_LINES))
            .map(Json::to_string)
            .collect()
    }
}

/// A running `zeoraid serve` whose stderr a thread reads into a [`LogShared`].
pub struct Daemon {
    child: Child,
    reader: Option<JoinHandle<()>>,
}

impl Daemon {
    /// `binary serve --config config` in `dir`, with `env` and none of the
    /// test's own `ZEORAID_*` variables (ZEORAID_LOG, ZEORAID_LISTEN, ...
    /// must not reconfigure it).
    pub fn spawn(
        binary: &Path,
        config: &Path,
        dir: &Path,
        env: &[(String, String)],
        log: &Arc<LogShared>,
    ) -> Result<Daemon, String> {
        let mut command = Command::new(binary);
        command
            .args(["serve", "--config"])
            .arg(config)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ZEORAID_") {
                command.env_remove(key);
            }
        }
        command.envs(env.iter().map(|(k, v)| (k, v)));
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot spawn {}: {e}", binary.display()))?;
        let stderr = child.stderr.take().expect("piped stderr");
        let reader = spawn_log_reader(stderr, Arc::clone(log));
        Ok(Daemon {
            child,
            reader: Some(reader),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it still runs (reaps it if it exited).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL, reap, and collect the rest of its stderr.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let deadline = Instant::now() + READER_JOIN;
            while !reader.is_finished() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(5));
            }
            if reader.is_finished() {
                let _ = reader.join();
            }
        }
    }
}

/// See the module documentation.
pub struct Array {
    options: ArrayOptions,
    addr: SocketAddr,
    /// Where zeoraid's HTTP endpoint listens (from "zeoraid started").
    http_addr: Option<SocketAddr>,
    daemon: Option<Daemon>,
    starts: usize,
    log: Arc<LogShared>,
    config_path: PathBuf,
    // Dropped after `Drop::drop` killed zeoraid: the relays, the members,
    // then the directory holding the config.
    /// `relays[i]`: the relay in front of member `i`, if it is relayed.
    relays: Vec<Option<Relay>>,
    members: Vec<RunZeo>,
    dir: tempfile::TempDir,
}

impl Array {
    /// `members` runzeo servers with blobs and zeoraid in front; panics
    /// (with zeoraid's log) if anything does not come up in time.
    pub fn start(members: usize) -> Array {
        Array::start_with(ArrayOptions::new(members))
    }

    /// [`Array::start`] with more control.
    pub fn start_with(options: ArrayOptions) -> Array {
        let members = start_members_with(options.members, |i| options.options_of_member(i));
        let relays = Relay::in_front_of(&members, &options.relayed);
        let dir = tempfile::Builder::new()
            .prefix("zeoraid-array-")
            .tempdir()
            .expect("create a tempdir");
        let config_path = dir.path().join("zeoraid.toml");
        let mut array = Array {
            options,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            http_addr: None,
            daemon: None,
            starts: 0,
            log: Arc::new(LogShared::default()),
            config_path,
            relays,
            members,
            dir,
        };
        if let Err(e) = array.spawn_zeoraid(None) {
            panic!("zeoraid did not start: {e}\n{}", array.context());
        }
        array
    }

    /// Where zeoraid listens for ZEO clients.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where zeoraid's HTTP management endpoint listens (the `http` field
    /// of its "zeoraid started" line); panics if it did not say.
    pub fn http_addr(&self) -> SocketAddr {
        match self.http_addr {
            Some(addr) => addr,
            None => panic!("zeoraid did not log its http address\n{}", self.context()),
        }
    }

    /// The members, in config order (`zeo1` first).
    pub fn members(&self) -> &[RunZeo] {
        &self.members
    }

    /// The relay between zeoraid and member `index`; panics unless the
    /// member is in [`ArrayOptions::relayed`].
    pub fn relay(&self, index: usize) -> &Relay {
        match self.relays.get(index) {
            Some(Some(relay)) => relay,
            _ => panic!("member {index} is not relayed (ArrayOptions::relayed)"),
        }
    }

    /// The members, to kill or restart them.
    pub fn members_mut(&mut self) -> &mut [RunZeo] {
        &mut self.members
    }

    /// The config zeoraid runs with (rewritten at every start).
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The array's private directory (config; removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// How often zeoraid was started (1 + restarts).
    pub fn starts(&self) -> usize {
        self.starts
    }

    /// zeoraid's process id, if it runs.
    pub fn zeoraid_pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(Daemon::pid)
    }

    /// Whether zeoraid is still running (reaps it if it exited).
    pub fn zeoraid_running(&mut self) -> bool {
        self.daemon.as_mut().is_some_and(Daemon::running)
    }

    /// Panics (with the log tail) unless zeoraid is running.
    pub fn assert_zeoraid_alive(&mut self) {
        if !self.zeoraid_running() {
            panic!("zeoraid is not running any more\n{}", self.context());
        }
    }

    /// zeoraid's resident set size in KiB (`VmRSS`), if it runs.
    pub fn zeoraid_rss_kib(&self) -> Option<u64> {
        self.zeoraid_proc_status_kib("VmRSS")
    }

    /// A memory field of zeoraid's `/proc/PID/status` in KiB (`VmRSS`,
    /// `VmData`, `VmSize`, ...), if it runs. `VmData` also counts memory
    /// that was reserved but never touched.
    pub fn zeoraid_proc_status_kib(&self, field: &str) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.zeoraid_pid()?)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Kills zeoraid (SIGKILL) and waits until it is reaped; the members
    /// keep running. No-op if it is not running.
    pub fn kill_zeoraid(&mut self) {
        if let Some(daemon) = self.daemon.take() {
            daemon.kill();
        }
    }

    /// Sends zeoraid `sig` (e.g. `libc::SIGTERM`, `libc::SIGHUP`); panics
    /// unless it runs.
    pub fn signal_zeoraid(&self, sig: libc::c_int) {
        let pid = self
            .zeoraid_pid()
            .unwrap_or_else(|| panic!("zeoraid is not running\n{}", self.context()));
        super::runzeo::signal(pid, sig);
    }

    /// Waits (bounded) for zeoraid to exit by itself and returns its exit
    /// status; panics if it still runs after `within`.
    pub fn wait_zeoraid_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            let exited = match self.daemon.as_mut() {
                Some(d) => d.child.try_wait().expect("try_wait on zeoraid"),
                None => panic!("zeoraid was not started"),
            };
            if let Some(status) = exited {
                // Reaped: collect the rest of its log like a kill does.
                if let Some(daemon) = self.daemon.take() {
                    daemon.kill();
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "zeoraid still running after {within:?}\n{}",
                self.context()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills zeoraid and starts it again on the same port with the same
    /// members; returns once it logged "zeoraid started" again.
    pub fn restart_zeoraid(&mut self) {
        self.kill_zeoraid();
        let port = self.addr.port();
        let mut last = String::new();
        for _ in 0..RESTART_ATTEMPTS {
            match self.spawn_zeoraid(Some(port)) {
                Ok(()) => return,
                Err(e) if e.contains("in use") => {
                    last = e;
                    thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("zeoraid did not restart: {e}\n{}", self.context()),
            }
        }
        panic!(
            "zeoraid did not restart on port {port}: {last}\n{}",
            self.context()
        );
    }

    /// Kills zeoraid and tries once to start it again on the same port:
    /// the reason it did not start, if it did not (for the refusals).
    pub fn try_restart_zeoraid(&mut self) -> Result<(), String> {
        self.kill_zeoraid();
        let port = self.addr.port();
        self.spawn_zeoraid(Some(port))
    }

    /// Waits (bounded) until the array status satisfies `pred`; panics
    /// with the last status and the context otherwise.
    pub fn wait_status(&self, what: &str, within: Duration, pred: impl Fn(&Json) -> bool) -> Json {
        let deadline = Instant::now() + within;
        loop {
            let status = self.raid_status();
            if pred(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "not {what} within {within:?}: {status}\n{}",
                self.context()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    // ----- logs ---------------------------------------------------------

    /// Every log line so far, all starts.
    pub fn log_lines(&self) -> Vec<Json> {
        self.log.lines().clone()
    }

    /// The number of log lines so far: pass it to [`Array::wait_for_log`]
    /// to look only at what comes after this point.
    pub fn log_mark(&self) -> usize {
        self.log.mark()
    }

    /// The first line from index `since` on that matches, if any (no wait).
    pub fn find_log(&self, since: usize, pred: impl Fn(&Json) -> bool) -> Option<Json> {
        self.log.find(since, pred)
    }

    /// Waits up to `within` for a line from index `since` on that matches;
    /// panics (naming `what`, with the log tail) if none comes.
    pub fn wait_for_log(
        &self,
        since: usize,
        within: Duration,
        what: &str,
        pred: impl Fn(&Json) -> bool,
    ) -> Json {
        match self.try_wait_for_log(since, within, pred) {
            Some(line) => line,
            None => panic!("no log line {what} within {within:?}\n{}", self.context()),
        }
    }

    /// [`Array::wait_for_log`] that returns `None` instead of panicking.
    pub fn try_wait_for_log(
        &self,
        since: usize,
        within: Duration,
        pred: impl Fn(&Json) -> bool,
    ) -> Option<Json> {
        self.log.try_wait(since, within, pred)
    }

    /// Waits for the "closing client connection" line of the session whose
    /// peer is `client` (a [`RawClient::local_addr`]); returns it.
    pub fn wait_for_close_log(&self, since: usize, client: SocketAddr) -> Json {
        let peer = client.to_string();
        self.wait_for_log(since, LOG_WAIT, &format!("closing the session of {peer}"), |l| {
            l["msg"] == "closing client connection" && l["peer"] == peer.as_str()
        })
    }

    /// The last lines of the log and the config, for panic messages.
    pub fn context(&self) -> String {
        let tail = self.log.tail();
        format!(
            "--- {} ---\n{}--- last {} zeoraid log lines ---\n{}",
            self.config_path.display(),
            fs::read_to_string(&self.config_path).unwrap_or_default(),
            tail.len(),
            tail.join("\n")
        )
    }

    // ----- status -------------------------------------------------------

    /// The array part of zeoraid's `ruok` answer: `{"status": "optimal" |
    /// "degraded" | "failed", "last_tid": ..., "members": [{"name",
    /// "state", "connected", "reason", ...}]}`.
    pub fn raid_status(&self) -> Json {
        match ruok(self.addr, Duration::from_secs(5)) {
            Ok(mut status) => status["1"]["raid"].take(),
            Err(e) => panic!("ruok to zeoraid on {} failed: {e}\n{}", self.addr, self.context()),
        }
    }

    /// `POST path` on the management endpoint, which must answer 200; its
    /// JSON body.
    pub fn post_ok(&self, path: &str) -> Json {
        let answer = super::http::request(self.http_addr(), "POST", path, None);
        assert_eq!(
            answer.code,
            200,
            "POST {path}: {}\n{}",
            answer.body,
            self.context()
        );
        answer.json()
    }

    /// The controller's part of `GET /actors` (the debug view).
    pub fn controller_view(&self) -> Json {
        let answer = super::http::get(self.http_addr(), "/actors");
        assert_eq!(
            answer.code,
            200,
            "GET /actors: {}\n{}",
            answer.body,
            self.context()
        );
        answer.json()["controller"].take()
    }

    /// Whether every member is optimal and connected, per zeoraid's `ruok`.
    pub fn all_members_up(&self) -> bool {
        let status = self.raid_status();
        status["status"] == "optimal"
            && status["members"]
                .as_array()
                .is_some_and(|ms| ms.iter().all(|m| m["connected"] == true))
    }

    /// Waits up to `within` until every member is optimal and connected
    /// (polling `ruok`); panics with the status and the log otherwise.
    pub fn wait_all_members_up(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.all_members_up() {
            if Instant::now() >= deadline {
                panic!(
                    "members not all up within {within:?}: {}\n{}",
                    self.raid_status(),
                    self.context()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    // ----- shared checks ------------------------------------------------

    /// A new client of zeoraid, registered with storage `"1"`.
    /// `client`'s connection is closed with no reply or error reply on it,
    /// within `within`, and zeoraid logged why; returns the logged reason.
    pub fn assert_closed_without_reply(
        &self,
        client: &mut RawClient,
        since: usize,
        within: Duration,
    ) -> String {
        let peer = client.local_addr();
        let messages = client.expect_closed(within);
        assert!(
            messages.iter().all(|m| !matches!(
                m,
                zeo::message::Message::Reply { .. } | zeo::message::Message::ErrorReply { .. }
            )),
            "a reply came before the close: {messages:?}"
        );
        let line = self.wait_for_close_log(since, peer);
        line["reason"].as_str().unwrap_or_default().to_owned()
    }

    pub fn client(&self) -> RawClient {
        RawClient::connect_registered(self.addr)
    }

    /// A client connected straight to member `index` (not through
    /// zeoraid), registered with its storage.
    pub fn member_client(&self, index: usize) -> RawClient {
        let member = &self.members[index];
        let mut client = RawClient::connect(member.addr());
        client.register(member.storage_name());
        client
    }

    /// Commits one new object through zeoraid (a new client); returns what
    /// was committed.
    pub fn commit_probe(&self) -> Probe {
        let mut client = self.client();
        let oid = client.new_oid();
        let data = ROOT_RECORD.to_vec();
        let tid = client.commit(&[(oid, Tid::ZERO, &data)]);
        Probe { oid, tid, data }
    }

    /// Panics unless `probe` is the current revision of its object on
    /// every member, read from each member directly.
    pub fn assert_on_every_member(&self, probe: &Probe) {
        for (i, member) in self.members.iter().enumerate() {
            let mut client = self.member_client(i);
            match client.load(probe.oid) {
                Ok(Some(r)) => {
                    assert_eq!(
                        r.start,
                        probe.tid,
                        "member {} ({}): wrong revision of {}",
                        i + 1,
                        member.addr(),
                        probe.oid
                    );
                    assert_eq!(
                        &r.data[..],
                        &probe.data[..],
                        "member {}: wrong data for {}",
                        i + 1,
                        probe.oid
                    );
                    assert_eq!(r.end, None, "member {}: {} is not current", i + 1, probe.oid);
                }
                other => panic!(
                    "member {} ({}) lost {} committed in {}: {other:?}",
                    i + 1,
                    member.addr(),
                    probe.oid,
                    probe.tid
                ),
            }
        }
    }

    /// zeoraid still runs and serves a new client (register, commit, load
    /// back through zeoraid), and every earlier probe is on every member.
    /// Returns the new commit.
    pub fn assert_serving(&mut self, earlier: &[&Probe]) -> Probe {
        self.assert_zeoraid_alive();
        let probe = self.commit_probe();
        let mut client = self.client();
        match client.load(probe.oid) {
            Ok(Some(r)) => {
                assert_eq!(r.start, probe.tid);
                assert_eq!(&r.data[..], &probe.data[..]);
            }
            other => panic!("load through zeoraid after a commit: {other:?}"),
        }
        for p in earlier.iter().copied().chain([&probe]) {
            self.assert_on_every_member(p);
        }
        probe
    }

    // ----- starting -----------------------------------------------------

    fn config(&self, port: Option<u16>) -> String {
        let o = &self.options;
        let mut config = format!("listen = \"127.0.0.1:{}\"\n", port.unwrap_or(0));
        for line in &o.top_level {
            config.push_str(line);
            config.push('\n');
        }
        config.push_str("\n[http]\nlisten = \"127.0.0.1:0\"\n");
        if let Some(token) = &o.http_token {
            config.push_str(&format!("token = \"{token}\"\n"));
        }
        if o.http_token_for_reads {
            config.push_str("token_for_reads = true\n");
        }
        config.push_str(&format!(
            "\n[log]\nformat = \"json\"\nlevel = \"{}\"\n",
            o.log_level
        ));
        config.push_str(&format!("\n[restart]\n{}\n", o.restart));
        for (i, member) in self.members.iter().enumerate() {
            let address = match self.relays.get(i) {
                Some(Some(relay)) => relay.addr(),
                _ => member.addr(),
            };
            let address = match o.members_by_host_name {
                true => format!("localhost:{}", address.port()),
                false => address.to_string(),
            };
            config.push_str(&format!(
                "[[members]]\nname = \"zeo{}\"\naddress = \"{}\"\n{}\n",
                i + 1,
                address,
                o.member_table
            ));
        }
        config.push_str(&o.tables);
        config
    }

    /// Writes the config, spawns zeoraid and waits for "zeoraid started".
    /// On failure the process is killed and the reason returned.
    fn spawn_zeoraid(&mut self, port: Option<u16>) -> Result<(), String> {
        fs::write(&self.config_path, self.config(port))
            .map_err(|e| format!("cannot write {}: {e}", self.config_path.display()))?;
        self.starts += 1;
        let since = self.log_mark();
        self.log.push(serde_json::json!({
            "harness": format!("=== starting zeoraid (start {}) ===", self.starts)
        }));
        self.daemon = Some(Daemon::spawn(
            &self.options.binary,
            &self.config_path,
            self.dir.path(),
            &self.options.env,
            &self.log,
        )?);

        let within = self.options.startup_timeout;
        let deadline = Instant::now() + within;
        loop {
            let started = self.try_wait_for_log(since, Duration::from_millis(50), |l| {
                l["msg"] == "zeoraid started"
            });
            if let Some(line) = started {
                let listen = line["listen"].as_str().unwrap_or_default();
                return match listen.parse::<SocketAddr>() {
                    Ok(addr) => {
                        self.addr = addr;
                        self.http_addr = line["http"].as_str().and_then(|h| h.parse().ok());
                        Ok(())
                    }
                    Err(e) => {
                        self.kill_zeoraid();
                        Err(format!(
                            "\"zeoraid started\" has no usable listen field ({e}): {line}"
                        ))
                    }
                };
            }
            if !self.zeoraid_running() {
                self.kill_zeoraid();
                let why = self
                    .find_log(since, |l| {
                        l["level"] == "CRIT" || l["level"] == "ERRO" || l.get("raw").is_some()
                    })
                    .map(|l| l.to_string())
                    .unwrap_or_default();
                return Err(format!("zeoraid exited before it was ready: {why}"));
            }
            if Instant::now() >= deadline {
                self.kill_zeoraid();
                return Err(format!("no \"zeoraid started\" within {within:?}"));
            }
        }
    }
}

impl Drop for Array {
    fn drop(&mut self) {
        self.kill_zeoraid();
        if thread::panicking() {
            eprintln!(
                "Array on {} dropped during a panic:\n{}",
                self.addr,
                self.context()
            );
        }
        // The members are killed when the fields are dropped.
    }
}

/// Starts `n` members in parallel (member `i` on a copy of `storages[i]`
/// if there is one); if one fails, the others are killed (dropped) and the
/// failure is re-raised.
pub fn start_members(n: usize, options: &RunZeoOptions, storages: &[Option<PathBuf>]) -> Vec<RunZeo> {
    start_members_with(n, |i| with_initial_storage(options.clone(), storages, i))
}

/// `options` starting on a copy of `storages[i]` if there is one.
fn with_initial_storage(mut options: RunZeoOptions, storages: &[Option<PathBuf>], i: usize) -> RunZeoOptions {
    if let Some(Some(storage)) = storages.get(i) {
        options.initial_storage = Some(storage.clone());
    }
    options
}

/// Starts `n` members in parallel, member `i` with `options_of(i)`; fails
/// as [`start_members`] does.
pub fn start_members_with(n: usize, options_of: impl Fn(usize) -> RunZeoOptions) -> Vec<RunZeo> {
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let options = options_of(i);
            thread::spawn(move || RunZeo::start(options))
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(JoinHandle::join).collect();
    let mut members = Vec::with_capacity(n);
    let mut failure = None;
    for result in results {
        match result {
            Ok(member) => members.push(member),
            Err(panic) => failure = failure.or(Some(panic)),
        }
    }
    if let Some(panic) = failure {
        drop(members);
        std::panic::resume_unwind(panic);
    }
    members
}

fn spawn_log_reader(stderr: ChildStderr, log: Arc<LogShared>) -> JoinHandle<()> {
    thread::Builder::new()
        .name("zeoraid-stderr".into())
        .spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let parsed =
                    serde_json::from_str(&line).unwrap_or_else(|_| serde_json::json!({ "raw": line }));
                log.push(parsed);
            }
        })
        .expect("spawn the zeoraid stderr reader")
}

/// `config` (a zeoraid.toml) without the `[[members]]` table of `name`.
pub fn without_member(config: &str, name: &str) -> String {
    // Blocks: a table header and the lines up to the next header.
    let mut blocks: Vec<Vec<&str>> = vec![Vec::new()];
    for line in config.lines() {
        if line.starts_with('[') {
            blocks.push(Vec::new());
        }
        blocks.last_mut().expect("a block").push(line);
    }
    let named = format!("name = \"{name}\"");
    blocks
        .into_iter()
        .filter(|b| !(b.first() == Some(&"[[members]]") && b.contains(&named.as_str())))
        .flatten()
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Runs a scrub through the HTTP endpoint and waits up to `within` for it
/// to end; panics unless it finished, found the members consistent, and
/// left every member optimal.
pub fn assert_scrub_finds_them_identical(array: &Array, within: Duration) {
    let answer = super::http::request(array.http_addr(), "POST", "/scrub", None);
    assert_eq!(
        answer.code,
        200,
        "POST /scrub: {}\n{}",
        answer.body,
        array.context()
    );
    let mut details = Json::Null;
    let ended = super::faults::wait_until(within, || {
        details = super::http::get(array.http_addr(), "/details").json();
        details["scrub"]["running"] == false && details["scrub"]["last_result"].is_string()
    });
    assert!(ended, "the scrub did not end: {details}\n{}", array.context());
    let result = details["scrub"]["last_result"].as_str().unwrap_or_default();
    assert!(result.starts_with("finished"), "{details}\n{}", array.context());
    assert_ne!(details["inconsistent"], true, "{details}");
    for member in details["members"].as_array().into_iter().flatten() {
        assert_eq!(member["state"], "optimal", "{details}");
    }
}
