//! A real single-node etcd for integration tests.
//!
//! [`Etcd::start`] runs `etcd` from `PATH` (Debian's `etcd-server`, 3.4)
//! with its data directory in a private temporary directory, on two free
//! loopback ports (client and peer), and returns once `GET /health` on the
//! client URL answers. A test can then stop it ([`Etcd::stop`],
//! [`Etcd::kill9`]), bring it back on the same data and ports
//! ([`Etcd::start_again`], "etcd returns"), or freeze it
//! ([`Etcd::sigstop`], [`Etcd::sigcont`]).
//!
//! Every wait is bounded. Dropping an [`Etcd`] kills (SIGKILL, which also
//! ends a stopped process) and reaps it, also while a test unwinds from a
//! panic, then removes the temporary directory. etcd's output goes to
//! `etcd.log` there; its tail is part of every panic message of this module.

use super::runzeo::{free_port, read_lossy, signal, tail};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Bound for etcd to answer `/health` after it was spawned.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Bound for one `/health` probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Bound for etcd to exit after SIGTERM (SIGKILL after that).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How often readiness and exit are polled.
const POLL: Duration = Duration::from_millis(50);

/// Spawn attempts on fresh ports when a chosen port was taken meanwhile.
const START_ATTEMPTS: usize = 5;

/// How many bytes of `etcd.log` panic messages show.
const LOG_TAIL: usize = 6000;

/// One etcd server (running, stopped or killed) with its data directory.
pub struct Etcd {
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
    log_path: PathBuf,
    // Removed when the fields are dropped, after `Drop::drop` reaped etcd.
    dir: tempfile::TempDir,
}

impl Etcd {
    /// Start etcd and wait until it is healthy; panics (with its log) if it
    /// does not come up.
    pub fn start() -> Etcd {
        let dir = tempfile::Builder::new()
            .prefix("etcd-")
            .tempdir()
            .expect("create a tempdir for etcd");
        let log_path = dir.path().join("etcd.log");
        let mut etcd = Etcd {
            client_port: 0,
            peer_port: 0,
            child: None,
            log_path,
            dir,
        };
        for attempt in 1..=START_ATTEMPTS {
            etcd.client_port = free_port().expect("a free port for etcd's clients");
            etcd.peer_port = free_port().expect("a free port for etcd's peers");
            match etcd.spawn_ready() {
                Ok(()) => return etcd,
                Err(err) if err.contains("address already in use") && attempt < START_ATTEMPTS => {
                    // Its first start on these ports failed: start afresh.
                    let _ = std::fs::remove_dir_all(etcd.data_dir());
                }
                Err(err) => panic!("etcd did not start: {err}\n{}", etcd.context()),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// The client URL (`http://127.0.0.1:PORT`), for the `[cluster] etcd` list.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// Stop etcd with SIGTERM and wait for it to exit (SIGKILL after a
    /// bound). No-op if it is not running.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal(child.id(), libc::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while !matches!(child.try_wait(), Ok(Some(_))) {
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            thread::sleep(POLL);
        }
    }

    /// Kill etcd with SIGKILL and reap it. No-op if it is not running.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start etcd again on the same data directory and ports (after
    /// [`Etcd::stop`] or [`Etcd::kill9`]); returns once it is healthy.
    pub fn start_again(&mut self) {
        self.kill9();
        if let Err(err) = self.spawn_ready() {
            panic!("etcd did not start again: {err}\n{}", self.context());
        }
    }

    /// Freeze etcd: its ports stay open, nothing is answered.
    pub fn sigstop(&self) {
        signal(self.running_pid("sigstop"), libc::SIGSTOP);
    }

    /// Resume etcd after [`Etcd::sigstop`].
    pub fn sigcont(&self) {
        signal(self.running_pid("sigcont"), libc::SIGCONT);
    }

    /// The tail of etcd's log, for panic messages.
    pub fn context(&self) -> String {
        format!(
            "--- tail of {} ---\n{}",
            self.log_path.display(),
            tail(&read_lossy(&self.log_path), LOG_TAIL)
        )
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    fn running_pid(&self, what: &str) -> u32 {
        match &self.child {
            Some(child) => child.id(),
            None => panic!("{what}: etcd on {} is not running", self.url()),
        }
    }

    /// Spawn etcd and wait for `/health`; on failure it is killed and the
    /// error says why (its log holds the rest).
    fn spawn_ready(&mut self) -> Result<(), String> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| format!("cannot open {}: {e}", self.log_path.display()))?;
        let stderr = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new("etcd")
            .args(self.arguments())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot run etcd (is etcd-server installed?): {e}"))?;
        self.child = Some(child);
        let ready = self.wait_healthy();
        if ready.is_err() {
            self.kill9();
        }
        ready
    }

    fn arguments(&self) -> Vec<String> {
        let client = self.url();
        let peer = self.peer_url();
        vec![
            "--name".into(),
            "default".into(),
            "--data-dir".into(),
            path_arg(&self.data_dir()),
            "--listen-client-urls".into(),
            client.clone(),
            "--advertise-client-urls".into(),
            client,
            "--listen-peer-urls".into(),
            peer.clone(),
            "--initial-advertise-peer-urls".into(),
            peer.clone(),
            "--initial-cluster".into(),
            format!("default={peer}"),
        ]
    }

    fn wait_healthy(&mut self) -> Result<(), String> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(PROBE_TIMEOUT))
            .proxy(None)
            .build()
            .into();
        let url = format!("{}/health", self.url());
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                let log = read_lossy(&self.log_path);
                return Err(format!("etcd exited ({status}): {}", tail(&log, 300)));
            }
            if let Ok(mut answer) = agent.get(&url).call() {
                let body = answer.body_mut().read_to_string().unwrap_or_default();
                if body.contains(r#""health":"true""#) {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("{url} not healthy within {STARTUP_TIMEOUT:?}"));
            }
            thread::sleep(POLL);
        }
    }
}

fn path_arg(path: &Path) -> String {
    path.to_str().expect("a UTF-8 temporary path").to_string()
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill9();
        if thread::panicking() {
            eprintln!(
                "Etcd on {} dropped during a panic; {}",
                self.url(),
                self.context()
            );
        }
    }
}
