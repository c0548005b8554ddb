//! `listen` on a Unix socket path: a real Python ZEO ClientStorage given
//! the path commits and reads through zeoraid to real runzeo members; the
//! socket file takes `listen_mode`, survives a crash as a stale file the
//! next start replaces, and is removed by a clean shutdown; a path in use
//! or that is not a socket stops the start and is left alone.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::array::{start_members, Daemon, LogShared, DEFAULT_STARTUP_TIMEOUT};
use common::faults::wait_until;
use common::http;
use common::runzeo::{python, run_python_ok, RunZeo, RunZeoOptions};
use serde_json::Value as Json;

const PYTHON_WAIT: Duration = Duration::from_secs(60);
const EXIT_WAIT: Duration = Duration::from_secs(30);

/// Commits `root["unix"] = VALUE` through the socket at PATH, reads it
/// back through a second ClientStorage, prints its pid and the tid, then
/// keeps both connections open until a line arrives on stdin.
const COMMIT_AND_HOLD: &str = r#"
import os, sys, ZEO
path, value = sys.argv[1], sys.argv[2]
db = ZEO.DB(path, wait_timeout=30)
with db.transaction() as conn:
    conn.root()["unix"] = value
reader = ZEO.DB(path, wait_timeout=30)
with reader.transaction() as conn:
    assert conn.root()["unix"] == value, conn.root()["unix"]
print(os.getpid(), db.lastTransaction().hex(), flush=True)
sys.stdin.readline()
reader.close()
db.close()
"#;

/// Prints `root["unix"]` as served at ADDR: a socket path or host:port.
const READ: &str = r#"
import sys, ZEO
addr = sys.argv[1]
if "/" not in addr:
    host, port = addr.rsplit(":", 1)
    addr = (host, int(port))
db = ZEO.DB(addr, wait_timeout=30)
with db.transaction() as conn:
    print(conn.root()["unix"])
db.close()
"#;

/// zeoraid in front of `members`, told to listen on `socket`.
struct UnixFront {
    dir: tempfile::TempDir,
    socket: PathBuf,
    config: PathBuf,
    log: Arc<LogShared>,
    daemon: Option<Daemon>,
}

impl UnixFront {
    fn new(members: &[RunZeo], listen_mode: &str) -> UnixFront {
        let dir = tempfile::Builder::new()
            .prefix("zr-unixlisten-")
            .tempdir()
            .unwrap();
        let socket = dir.path().join("zeoraid.sock");
        let mut config = format!(
            "listen = \"{}\"\nlisten_mode = \"{listen_mode}\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
             [log]\nformat = \"json\"\n",
            socket.display()
        );
        for (i, member) in members.iter().enumerate() {
            config.push_str(&format!(
                "[[members]]\nname = \"zeo{}\"\naddress = \"{}\"\n",
                i + 1,
                member.addr()
            ));
        }
        let path = dir.path().join("zeoraid.toml");
        std::fs::write(&path, config).unwrap();
        UnixFront {
            dir,
            socket,
            config: path,
            log: Arc::default(),
            daemon: None,
        }
    }

    fn spawn(&mut self) -> usize {
        let since = self.log.mark();
        let binary = Path::new(env!("CARGO_BIN_EXE_zeoraid"));
        self.daemon = Some(Daemon::spawn(binary, &self.config, self.dir.path(), &[], &self.log).unwrap());
        since
    }

    /// Starts zeoraid and waits for "zeoraid started"; answers that line.
    fn start(&mut self) -> Json {
        let since = self.spawn();
        let started = self
            .log
            .try_wait(since, DEFAULT_STARTUP_TIMEOUT, |l| l["msg"] == "zeoraid started");
        started.unwrap_or_else(|| panic!("zeoraid did not start\n{}", self.log.tail().join("\n")))
    }

    /// Starts zeoraid, expecting it to exit on its own with a line that
    /// contains `expected`.
    fn start_refused(&mut self, expected: &str) -> Json {
        let since = self.spawn();
        let exited = wait_until(EXIT_WAIT, || !self.daemon.as_mut().unwrap().running());
        assert!(exited, "zeoraid did not exit\n{}", self.log.tail().join("\n"));
        self.daemon.take().unwrap().kill();
        let line = self.log.find(since, |l| l.to_string().contains(expected));
        line.unwrap_or_else(|| panic!("no line with {expected:?}\n{}", self.log.tail().join("\n")))
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = self.daemon.as_ref().expect("running").pid();
        // SAFETY: kill only sends a signal to the process we spawned.
        assert_eq!(unsafe { libc::kill(pid as libc::pid_t, signal) }, 0);
    }

    fn wait_exit(&mut self) {
        let daemon = self.daemon.as_mut().expect("running");
        assert!(
            wait_until(EXIT_WAIT, || !daemon.running()),
            "zeoraid did not stop"
        );
        self.daemon.take().unwrap().kill();
    }

    fn socket_text(&self) -> &str {
        self.socket.to_str().unwrap()
    }
}

impl Drop for UnixFront {
    fn drop(&mut self) {
        if let Some(daemon) = self.daemon.take() {
            daemon.kill();
        }
    }
}

fn is_socket(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

/// Runs [`COMMIT_AND_HOLD`]; while its two connections are open, checks
/// zeoraid shows them as Unix peers with the client's pid and uid (the
/// debug view's sessions and the log). Answers the tid committed.
fn commit_through(front: &UnixFront, http_addr: std::net::SocketAddr, value: &str) -> String {
    let mut client = Command::new(python())
        .args(["-c", COMMIT_AND_HOLD, front.socket_text(), value])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(client.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let (pid, tid) = line.trim().split_once(' ').unwrap_or_else(|| {
        let _ = client.kill();
        panic!("the client failed: {line:?}\n{}", front.log.tail().join("\n"))
    });
    // SAFETY: getuid has no preconditions.
    let peer = format!("unix pid {pid} uid {}", unsafe { libc::getuid() });
    let sessions = http::get(http_addr, "/actors").json()["sessions"].clone();
    let shown = sessions
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["snapshot"]["peer"] == peer.as_str());
    assert_eq!(shown.count(), 2, "sessions {sessions}");
    assert!(
        front
            .log
            .find(0, |l| l["msg"] == "client connected"
                && l["peer"] == peer.as_str())
            .is_some(),
        "no \"client connected\" with peer {peer:?}\n{}",
        front.log.tail().join("\n")
    );
    client.stdin.take().unwrap().write_all(b"\n").unwrap();
    let status = client.wait().unwrap();
    assert!(status.success(), "the client failed: {status}");
    tid.to_owned()
}

#[test]
fn a_zeo_client_commits_and_reads_through_a_unix_socket_that_outlives_a_crash_but_not_a_clean_stop() {
    let members = start_members(2, &RunZeoOptions::new(), &[]);
    let mut front = UnixFront::new(&members, "0600");
    let started = front.start();
    assert_eq!(started["listen"], front.socket_text());
    let mode = std::fs::metadata(&front.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "listen_mode");
    let http_addr = started["http"].as_str().unwrap().parse().unwrap();

    let tid = commit_through(&front, http_addr, "first");
    for member in &members {
        assert_eq!(member.last_transaction(), tid, "on every member");
        let seen = run_python_ok(READ, &[&member.addr().to_string()], PYTHON_WAIT);
        assert_eq!(seen.trim(), "first");
    }

    // A crash leaves the socket file behind, nothing listening on it.
    front.daemon.take().unwrap().kill();
    assert!(is_socket(&front.socket), "SIGKILL cannot remove the file");
    let since = front.log.mark();
    front.start();
    assert!(
        front
            .log
            .find(since, |l| l["msg"]
                .as_str()
                .is_some_and(|m| m.starts_with("removed a stale socket file")))
            .is_some(),
        "{}",
        front.log.tail().join("\n")
    );
    let seen = run_python_ok(READ, &[front.socket_text()], PYTHON_WAIT);
    assert_eq!(seen.trim(), "first", "served again after the crash");

    front.signal(libc::SIGTERM);
    front.wait_exit();
    assert!(!front.socket.exists(), "a clean stop removes the socket file");
}

#[test]
fn a_socket_path_in_use_or_not_a_socket_stops_the_start_and_is_left_alone() {
    let members = start_members(1, &RunZeoOptions::new(), &[]);
    let mut front = UnixFront::new(&members, "0660");

    let other = UnixListener::bind(&front.socket).unwrap();
    front.start_refused("something already listens there");
    assert!(
        UnixStream::connect(&front.socket).is_ok(),
        "the other listener still answers"
    );
    drop(other);

    std::fs::remove_file(&front.socket).unwrap();
    std::fs::write(&front.socket, "not a socket").unwrap();
    front.start_refused("the path exists and is not a socket");
    assert_eq!(std::fs::read_to_string(&front.socket).unwrap(), "not a socket");
    std::fs::remove_file(&front.socket).unwrap();

    // Nothing in the way any more: it starts.
    front.start();
    assert!(is_socket(&front.socket));
}
