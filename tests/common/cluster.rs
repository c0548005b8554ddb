//! Several zeoraids with one configuration in front of the same real
//! members, elected on a real etcd: the harness of the failover tests.
//!
//! [`Cluster::start`] starts etcd ([`Etcd`]), the `runzeo` members (without
//! ZEO's `transaction-timeout`, as operators should run ZEO 6.2: it never
//! releases the lock it times out, ARCHITECTURE.md §9), writes ONE config with a `[cluster]` table into a
//! private temporary directory and starts every zeoraid on it. The
//! zeoraids differ only by environment overrides: `ZEORAID_LISTEN`,
//! `ZEORAID_HTTP__LISTEN`, `ZEORAID_CLUSTER__NAME` (`zr1`, `zr2`, ...),
//! `ZEORAID_STATE_DIR` and `ZEORAID_SPOOL_DIR`. Their addresses are fixed
//! at the first start (clients are given every client address), so a
//! restart comes back on the same ones.
//!
//! A standby does not listen on the client address; every zeoraid answers
//! `GET /status` with its `role`, the `epoch` and the `leader`'s name.
//! [`Cluster::wait_leader`] polls those (bounded) until exactly one of the
//! zeoraids that run answers "leader" and accepts clients.
//! [`RoleSampler`] keeps polling in the background, so a test can check
//! that two zeoraids never both said they lead.
//!
//! Faults: [`Cluster::kill9`], [`Cluster::sigstop`] / [`Cluster::sigcont`],
//! [`Cluster::restart`] of a zeoraid, the members' relays
//! ([`ClusterOptions::relayed`]) and etcd itself ([`Cluster::etcd`]).
//!
//! Every wait is bounded. Dropping the [`Cluster`] kills every zeoraid
//! (SIGKILL, which also ends a stopped one), then the relays, the members
//! and etcd; during a panic it prints every zeoraid's log tail.

use super::array::{start_members, Daemon, LogShared};
use super::etcd::Etcd;
use super::faults::Relay;
use super::http::{request, try_request, Answer};
use super::rawclient::RawClient;
use super::runzeo::{free_port, ruok, signal, RunZeo, RunZeoOptions};
use super::writer::Ack;
use serde_json::Value as Json;
use std::collections::BTreeSet;
use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use zeo::types::Tid;

/// `[cluster] lease_ttl` of the tests.
pub const LEASE_TTL: Duration = Duration::from_secs(2);

/// Bound for a zeoraid to answer `/status` after it was spawned.
const STARTUP: Duration = Duration::from_secs(30);

/// Bound for one `/status` probe: a frozen zeoraid must not stall a poll.
const PROBE: Duration = Duration::from_millis(500);

/// How often roles are polled.
const POLL: Duration = Duration::from_millis(50);

/// What [`Cluster::start`] starts.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Number of zeoraids (`zr1`, `zr2`, ...).
    pub zeoraids: usize,
    /// Number of `runzeo` members (`zeo1`, `zeo2`, ...).
    pub members: usize,
    /// Indexes of the members every zeoraid reaches through one
    /// [`Relay`] (the config names the relay's address).
    pub relayed: Vec<usize>,
    /// Extra TOML appended to the config, e.g. `"[recovery]\nauto = false\n"`.
    pub tables: String,
    /// Extra environment of one zeoraid (by index), e.g. a test-only knob.
    pub env: Vec<(usize, String, String)>,
}

impl ClusterOptions {
    pub fn new(zeoraids: usize, members: usize) -> ClusterOptions {
        ClusterOptions {
            zeoraids,
            members,
            relayed: Vec::new(),
            tables: String::new(),
            env: Vec::new(),
        }
    }

    /// Sets `key=value` in the environment of zeoraid `i` only.
    pub fn env(mut self, i: usize, key: &str, value: &str) -> ClusterOptions {
        self.env.push((i, key.to_owned(), value.to_owned()));
        self
    }
}

/// One zeoraid process of the cluster (running, frozen or killed).
pub struct Zeoraid {
    pub name: String,
    /// Its client address (it listens there only while it leads).
    pub listen: SocketAddr,
    pub http: SocketAddr,
    env: Vec<(String, String)>,
    daemon: Option<Daemon>,
    frozen: bool,
    log: Arc<LogShared>,
}

impl Zeoraid {
    /// Its log, every start (a re-execution continues on the same stderr).
    pub fn log(&self) -> &LogShared {
        &self.log
    }

    pub fn pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(Daemon::pid)
    }

    /// Running and not frozen: expected to answer.
    pub fn is_live(&mut self) -> bool {
        !self.frozen && self.daemon.as_mut().is_some_and(Daemon::running)
    }

    /// `GET /status`, or `None` if it does not answer within a short bound.
    pub fn status(&self) -> Option<Json> {
        try_status(self.http)
    }

    /// Its `/status` role, if it answers.
    pub fn role(&self) -> Option<String> {
        self.status()?["role"].as_str().map(str::to_owned)
    }

    /// Whether something accepts a ZEO handshake on its client address.
    pub fn serves_clients(&self) -> bool {
        ruok(self.listen, Duration::from_secs(1)).is_ok()
    }
}

/// See the module documentation.
pub struct Cluster {
    options: ClusterOptions,
    config_path: PathBuf,
    zeoraids: Vec<Zeoraid>,
    // Dropped after `Drop::drop` killed the zeoraids: the relays, the
    // members, etcd, then the directory holding the config.
    relays: Vec<Option<Relay>>,
    members: Vec<RunZeo>,
    etcd: Etcd,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts everything; returns once every zeoraid answers `/status`
    /// (not necessarily once one leads: [`Cluster::wait_leader`]).
    pub fn start(options: ClusterOptions) -> Cluster {
        let etcd = Etcd::start();
        let member_options = RunZeoOptions::new().blobs();
        let members = start_members(options.members, &member_options, &[]);
        let relays = Relay::in_front_of(&members, &options.relayed);
        let dir = tempfile::Builder::new()
            .prefix("zeoraid-cluster-")
            .tempdir()
            .expect("create a tempdir");
        let config_path = dir.path().join("zeoraid.toml");
        let zeoraids = (1..=options.zeoraids)
            .map(|n| {
                let extra = options.env.iter().filter(|(i, _, _)| *i == n - 1);
                new_zeoraid(n, &dir, extra.map(|(_, k, v)| (k.clone(), v.clone())))
            })
            .collect();
        let mut cluster = Cluster {
            options,
            config_path,
            zeoraids,
            relays,
            members,
            etcd,
            dir,
        };
        fs::write(&cluster.config_path, cluster.config()).expect("write the cluster config");
        for i in 0..cluster.zeoraids.len() {
            cluster.spawn(i);
        }
        for i in 0..cluster.zeoraids.len() {
            cluster.wait_answering(i);
        }
        cluster
    }

    /// The one config every zeoraid reads.
    fn config(&self) -> String {
        let mut config = String::from(
            "# One file for every zeoraid; each gets its addresses and name from the environment.\n\
             listen = \"127.0.0.1:1\"\n\n[http]\nlisten = \"127.0.0.1:1\"\n\n\
             [log]\nformat = \"json\"\nlevel = \"info\"\n\n\
             [restart]\nbackoff_initial = \"50ms\"\nbackoff_max = \"200ms\"\npark_probe_interval = \"300ms\"\n\n\
             [timeouts]\ntransaction = \"2s\"\ncommit = \"1s\"\n\n",
        );
        config.push_str(&format!(
            "[cluster]\netcd = [\"{}\"]\nlease_ttl = \"{}s\"\n\n",
            self.etcd.url(),
            LEASE_TTL.as_secs()
        ));
        for (i, member) in self.members.iter().enumerate() {
            let address = match &self.relays[i] {
                Some(relay) => relay.addr(),
                None => member.addr(),
            };
            config.push_str(&format!(
                "[[members]]\nname = \"zeo{}\"\naddress = \"{address}\"\n\n",
                i + 1
            ));
        }
        config.push_str(&self.options.tables);
        config
    }

    fn spawn(&mut self, i: usize) {
        let binary = PathBuf::from(env!("CARGO_BIN_EXE_zeoraid"));
        let zeoraid = &mut self.zeoraids[i];
        zeoraid.log.push(serde_json::json!({
            "harness": format!("=== starting {} ===", zeoraid.name)
        }));
        let daemon = Daemon::spawn(
            &binary,
            &self.config_path,
            self.dir.path(),
            &zeoraid.env,
            &zeoraid.log,
        );
        zeoraid.daemon = Some(daemon.unwrap_or_else(|e| panic!("{e}")));
        zeoraid.frozen = false;
    }

    /// Waits until zeoraid `i` answers `/status`.
    fn wait_answering(&mut self, i: usize) {
        let deadline = Instant::now() + STARTUP;
        while self.zeoraids[i].status().is_none() {
            let running = self.zeoraids[i].daemon.as_mut().is_some_and(Daemon::running);
            assert!(
                running && Instant::now() < deadline,
                "zr{} does not answer /status (running: {running})\n{}",
                i + 1,
                self.context()
            );
            thread::sleep(POLL);
        }
    }

    // ----- parts ------------------------------------------------------------

    /// The one configuration file every zeoraid reads.
    pub fn config_path(&self) -> &std::path::Path {
        &self.config_path
    }

    /// Sends `signal` to zeoraid `i`.
    pub fn signal(&self, i: usize, signal: libc::c_int) {
        let pid = self.zeoraids[i].pid().expect("zeoraid runs");
        // SAFETY: kill(2) on a child this harness started and has not reaped.
        assert_eq!(unsafe { libc::kill(pid as libc::pid_t, signal) }, 0);
    }

    pub fn zeoraid(&self, i: usize) -> &Zeoraid {
        &self.zeoraids[i]
    }

    pub fn zeoraids(&self) -> &[Zeoraid] {
        &self.zeoraids
    }

    /// Every zeoraid's client address: what a ZEO client is given.
    pub fn client_addrs(&self) -> Vec<SocketAddr> {
        self.zeoraids.iter().map(|z| z.listen).collect()
    }

    pub fn members(&self) -> &[RunZeo] {
        &self.members
    }

    pub fn members_mut(&mut self) -> &mut [RunZeo] {
        &mut self.members
    }

    /// The relay in front of member `index` (see [`ClusterOptions::relayed`]).
    pub fn relay(&self, index: usize) -> &Relay {
        match &self.relays[index] {
            Some(relay) => relay,
            None => panic!("member {index} is not relayed"),
        }
    }

    pub fn etcd(&mut self) -> &mut Etcd {
        &mut self.etcd
    }

    /// A client of member `index` directly (not through a zeoraid).
    pub fn member_client(&self, index: usize) -> RawClient {
        let mut client = RawClient::connect(self.members[index].addr());
        client.register(self.members[index].storage_name());
        client
    }

    /// A registered client of zeoraid `i` (it must lead).
    pub fn client(&self, i: usize) -> RawClient {
        RawClient::connect_registered(self.zeoraids[i].listen)
    }

    // ----- faults -----------------------------------------------------------

    /// SIGKILL zeoraid `i` and reap it.
    pub fn kill9(&mut self, i: usize) {
        if let Some(daemon) = self.zeoraids[i].daemon.take() {
            daemon.kill();
        }
        self.zeoraids[i].frozen = false;
    }

    /// Freeze zeoraid `i`: its sockets stay open, nothing is answered.
    pub fn sigstop(&mut self, i: usize) {
        signal(self.running_pid(i), libc::SIGSTOP);
        self.zeoraids[i].frozen = true;
    }

    pub fn sigcont(&mut self, i: usize) {
        signal(self.running_pid(i), libc::SIGCONT);
        self.zeoraids[i].frozen = false;
    }

    /// Kills zeoraid `i` (if it runs) and starts it again with the same
    /// name and addresses; returns once it answers `/status`.
    pub fn restart(&mut self, i: usize) {
        self.kill9(i);
        self.spawn(i);
        self.wait_answering(i);
    }

    fn running_pid(&self, i: usize) -> u32 {
        self.zeoraids[i]
            .pid()
            .unwrap_or_else(|| panic!("zr{} is not running", i + 1))
    }

    // ----- roles ------------------------------------------------------------

    /// Waits until exactly one live zeoraid says it leads and it accepts
    /// clients, and no other live one says so; returns its index.
    pub fn wait_leader(&mut self, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let mut leaders = Vec::new();
            for i in 0..self.zeoraids.len() {
                if self.zeoraids[i].is_live() && self.zeoraids[i].role().as_deref() == Some("leader") {
                    leaders.push(i);
                }
            }
            if let [leader] = leaders[..] {
                if self.zeoraids[leader].serves_clients() {
                    return leader;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no single leader serving within {within:?} (leaders: {leaders:?})\n{}",
                self.context()
            );
            thread::sleep(POLL);
        }
    }

    /// Waits until zeoraid `i` answers `/status` with `role`; returns it.
    pub fn wait_role(&self, i: usize, role: &str, within: Duration) -> Json {
        let deadline = Instant::now() + within;
        loop {
            let status = self.zeoraids[i].status();
            if let Some(status) = status.as_ref().filter(|s| s["role"] == role) {
                return status.clone();
            }
            assert!(
                Instant::now() < deadline,
                "zr{} not {role} within {within:?}: {status:?}\n{}",
                i + 1,
                self.context()
            );
            thread::sleep(POLL);
        }
    }

    /// `GET /details` of zeoraid `i`.
    pub fn details(&self, i: usize) -> Json {
        let answer = request(self.zeoraids[i].http, "GET", "/details", None);
        assert_eq!(answer.code, 200, "/details of zr{}: {}", i + 1, answer.body);
        answer.json()
    }

    /// `POST path` on zeoraid `i`'s management endpoint.
    pub fn post(&self, i: usize, path: &str) -> Answer {
        request(self.zeoraids[i].http, "POST", path, None)
    }

    /// Waits until zeoraid `i`'s `/details` satisfies `pred`; returns them.
    /// No answer counts as not yet: a standby elected leader restarts its
    /// management endpoint, so a poll at that moment finds it closed or
    /// has its connection reset.
    pub fn wait_details(&self, i: usize, what: &str, within: Duration, pred: impl Fn(&Json) -> bool) -> Json {
        let deadline = Instant::now() + within;
        loop {
            let details = try_request(self.zeoraids[i].http, "GET", "/details", None, PROBE)
                .ok()
                .filter(|answer| answer.code == 200)
                .and_then(|answer| serde_json::from_str(&answer.body).ok())
                .unwrap_or(Json::Null);
            if !details.is_null() && pred(&details) {
                return details;
            }
            assert!(
                Instant::now() < deadline,
                "zr{} not {what} within {within:?}: {details}\n{}",
                i + 1,
                self.context()
            );
            thread::sleep(POLL);
        }
    }

    // ----- the oracle -------------------------------------------------------

    /// Panics unless every member holds every acknowledged transaction,
    /// with the object it created.
    pub fn assert_acknowledged_everywhere(&self, acks: &[Ack]) {
        for m in 0..self.members.len() {
            let held: BTreeSet<(Tid, Tid)> = self
                .member_client(m)
                .history()
                .iter()
                .flat_map(|(txn, records)| records.iter().map(move |r| (txn.tid, r.oid)))
                .collect();
            let lost: Vec<&Ack> = acks.iter().filter(|a| !held.contains(&(a.tid, a.oid))).collect();
            assert!(
                lost.is_empty(),
                "zeo{} lacks {} of {} acknowledged commits, first {:?}\n{}",
                m + 1,
                lost.len(),
                acks.len(),
                lost.first(),
                self.context()
            );
        }
    }

    /// Panics unless every member holds the same history, transaction by
    /// transaction and record by record.
    pub fn assert_members_identical(&self) {
        let first = self.member_client(0).history();
        for m in 1..self.members.len() {
            let other = self.member_client(m).history();
            assert_eq!(
                first.len(),
                other.len(),
                "zeo1 and zeo{}: number of transactions",
                m + 1
            );
            for ((t1, r1), (t2, r2)) in first.iter().zip(&other) {
                assert_eq!(t1, t2, "zeo1 and zeo{}: transaction metadata", m + 1);
                assert_eq!(r1, r2, "zeo1 and zeo{}: records of {}", m + 1, t1.tid);
            }
        }
    }

    /// Every zeoraid's log tail, the config and etcd's log tail.
    pub fn context(&self) -> String {
        let mut context = format!(
            "--- {} ---\n{}",
            self.config_path.display(),
            fs::read_to_string(&self.config_path).unwrap_or_default()
        );
        for z in &self.zeoraids {
            let tail = z.log.tail();
            context.push_str(&format!(
                "--- last {} lines of {} ---\n{}\n",
                tail.len(),
                z.name,
                tail.join("\n")
            ));
        }
        context + &self.etcd.context()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.zeoraids.len() {
            self.kill9(i);
        }
        if thread::panicking() {
            eprintln!("Cluster dropped during a panic:\n{}", self.context());
        }
    }
}

fn new_zeoraid(n: usize, dir: &tempfile::TempDir, extra: impl Iterator<Item = (String, String)>) -> Zeoraid {
    let name = format!("zr{n}");
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port().expect("a free port")));
    let http = SocketAddr::from(([127, 0, 0, 1], free_port().expect("a free port")));
    let own = dir.path().join(&name);
    let mut env = vec![
        ("ZEORAID_LISTEN".to_owned(), listen.to_string()),
        ("ZEORAID_HTTP__LISTEN".to_owned(), http.to_string()),
        ("ZEORAID_CLUSTER__NAME".to_owned(), name.clone()),
        (
            "ZEORAID_STATE_DIR".to_owned(),
            own.join("state").display().to_string(),
        ),
        (
            "ZEORAID_SPOOL_DIR".to_owned(),
            own.join("spool").display().to_string(),
        ),
    ];
    env.extend(extra);
    Zeoraid {
        name,
        listen,
        http,
        env,
        daemon: None,
        frozen: false,
        log: Arc::new(LogShared::default()),
    }
}

fn try_status(http: SocketAddr) -> Option<Json> {
    let answer = try_request(http, "GET", "/status", None, PROBE).ok()?;
    serde_json::from_str(&answer.body).ok()
}

/// Whether anything accepts a TCP connection on `addr` (a standby must not).
pub fn accepts_tcp(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// One poll of every zeoraid's `/status`: its role and epoch, `None` for
/// one that did not answer.
pub type Round = Vec<Option<(String, Option<i64>)>>;

/// Polls every zeoraid's `/status` in the background until stopped.
pub struct RoleSampler {
    stop: Arc<AtomicBool>,
    rounds: Arc<Mutex<Vec<Round>>>,
    thread: Option<JoinHandle<()>>,
}

impl RoleSampler {
    pub fn start(cluster: &Cluster) -> RoleSampler {
        let https: Vec<SocketAddr> = cluster.zeoraids.iter().map(|z| z.http).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, rounds) = (Arc::clone(&stop), Arc::clone(&rounds));
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let round: Round = https
                        .iter()
                        .map(|&http| {
                            let status = try_status(http)?;
                            Some((status["role"].as_str()?.to_owned(), status["epoch"].as_i64()))
                        })
                        .collect();
                    rounds.lock().unwrap_or_else(|p| p.into_inner()).push(round);
                    thread::sleep(POLL);
                }
            })
        };
        RoleSampler {
            stop,
            rounds,
            thread: Some(thread),
        }
    }

    /// Stops polling; panics if some round had two zeoraids saying they
    /// lead. Returns the rounds.
    pub fn assert_never_two_leaders(mut self) -> Vec<Round> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the sampler thread");
        }
        let rounds = std::mem::take(&mut *self.rounds.lock().unwrap_or_else(|p| p.into_inner()));
        for round in &rounds {
            let leaders = round
                .iter()
                .filter(|r| matches!(r, Some((role, _)) if role == "leader"))
                .count();
            assert!(leaders <= 1, "two zeoraids said they lead at once: {round:?}");
        }
        rounds
    }
}

impl Drop for RoleSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
