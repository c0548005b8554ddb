//! The `zeoraid` binary as an operator meets it: `check-config` verdicts
//! and exit codes, and `serve` starting and stopping on signals.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

/// Generous for a loaded CI machine; the happy path takes milliseconds.
const STARTUP: Duration = Duration::from_secs(30);
const SHUTDOWN: Duration = Duration::from_secs(10);

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The binary with no inherited `ZEORAID_*` variables, so a developer's
/// shell cannot change the outcome.
fn zeoraid() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zeoraid"));
    for (key, _) in std::env::vars_os() {
        if key
            .to_str()
            .is_some_and(|k| k.to_ascii_uppercase().starts_with("ZEORAID_"))
        {
            cmd.env_remove(key);
        }
    }
    cmd.env("NO_COLOR", "1").stdin(Stdio::null());
    cmd
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command) -> Outcome {
    let out = cmd.output().expect("run zeoraid");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn check_config(path: &Path) -> Outcome {
    run(zeoraid().arg("check-config").arg(path))
}

/// Writes `text` to a config file inside a fresh temporary directory.
fn write_config(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zeoraid.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// Port 0 everywhere, so these tests keep passing once `serve` really
/// binds its listeners.
const SERVE_CONFIG: &str = r#"
listen = "127.0.0.1:0"
[http]
listen = "127.0.0.1:0"
[[members]]
name = "zeo1"
address = "127.0.0.1:9001"
[[members]]
name = "zeo2"
address = "127.0.0.1:9002"
"#;

fn assert_rejected(text: &str, expected: &[&str]) {
    let (_dir, path) = write_config(text);
    let out = check_config(&path);
    assert_eq!(out.code, Some(2), "stderr: {}", out.stderr);
    assert!(out.stdout.is_empty(), "stdout: {}", out.stdout);
    assert!(
        out.stderr.contains(&format!("invalid config {}", path.display())),
        "stderr: {}",
        out.stderr
    );
    for needle in expected {
        assert!(
            out.stderr.contains(needle),
            "expected {needle:?} in stderr:\n{}",
            out.stderr
        );
    }
}

// --- check-config ---------------------------------------------------------

#[test]
fn quick_start_config_is_ok() {
    let out = check_config(&repo_file("config/zeoraid.toml"));
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert!(
        out.stdout.starts_with(
            "config OK: 2 members (zeo1 at 127.0.0.1:9001, zeo2 at 127.0.0.1:9002), \
             listen 127.0.0.1:8100, storage \"1\""
        ),
        "stdout: {}",
        out.stdout
    );
}

#[test]
fn reference_config_is_ok() {
    let out = check_config(&repo_file("config/reference.toml"));
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert!(out.stdout.starts_with("config OK: 2 members"), "{}", out.stdout);
}

#[test]
fn bad_member_address_is_named() {
    assert_rejected(
        r#"
        [[members]]
        name = "zeo1"
        address = "127.0.0.1:9001"
        [[members]]
        name = "zeo2"
        address = "x"
        "#,
        &["members[1].address: expected host:port or a Unix socket path, got \"x\""],
    );
}

#[test]
fn bad_cluster_mode_is_named() {
    assert_rejected(
        &format!("cluster_mode = \"multi\"\n{SERVE_CONFIG}"),
        &["cluster_mode: expected \"single\" or \"coop\", got \"multi\""],
    );
}

#[test]
fn unknown_key_is_named() {
    assert_rejected(
        &format!("{SERVE_CONFIG}\n[timeouts]\nconect = \"5s\"\n"),
        &["timeouts: unknown field `conect`", "`connect`"],
    );
}

#[test]
fn missing_members_is_named() {
    assert_rejected(
        "listen = \"127.0.0.1:8100\"\n",
        &["members: at least one member is required"],
    );
}

#[test]
fn duplicate_member_names_are_named() {
    assert_rejected(
        r#"
        [[members]]
        name = "zeo1"
        address = "127.0.0.1:9001"
        [[members]]
        name = "zeo1"
        address = "127.0.0.1:9002"
        "#,
        &["members[1].name: \"zeo1\" is already used by members[0]"],
    );
}

#[test]
fn every_problem_is_printed() {
    assert_rejected(
        r#"
        cluster_mode = "multi"
        fail_mode = "never"
        [restart]
        jitter = 3.0
        [[members]]
        name = "zeo1"
        address = "x"
        "#,
        &[
            "4 problems",
            "cluster_mode: ",
            "fail_mode: expected \"close\" or \"read-only\", got \"never\"",
            "restart.jitter: must be between 0.0 and 1.0, got 3",
            "members[0].address: ",
        ],
    );
}

#[test]
fn environment_overrides_are_checked_too() {
    let (_dir, path) = write_config(SERVE_CONFIG);
    let out = run(zeoraid()
        .env("ZEORAID_HTTP__LISTEN", "nowhere")
        .arg("check-config")
        .arg(&path));
    assert_eq!(out.code, Some(2), "stderr: {}", out.stderr);
    assert!(
        out.stderr.contains("http.listen: expected host:port"),
        "{}",
        out.stderr
    );

    // ZEORAID_PYTHON belongs to the test scripts, not to zeoraid.
    let out = run(zeoraid()
        .env("ZEORAID_PYTHON", "/usr/bin/python3")
        .env("ZEORAID_HTTP__LISTEN", "127.0.0.1:7777")
        .arg("check-config")
        .arg(&path));
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert!(out.stdout.contains("http 127.0.0.1:7777"), "{}", out.stdout);
}

#[test]
fn unreadable_file_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = check_config(&dir.path().join("missing.toml"));
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("cannot read config"), "{}", out.stderr);
}

// --- help, version, usage -------------------------------------------------

#[test]
fn help_lists_the_subcommands() {
    let out = run(zeoraid().arg("--help"));
    assert_eq!(out.code, Some(0));
    assert!(out.stdout.contains("serve"), "{}", out.stdout);
    assert!(out.stdout.contains("check-config"), "{}", out.stdout);
}

#[test]
fn version_is_the_crate_version_and_the_commit() {
    let out = run(zeoraid().arg("--version"));
    assert_eq!(out.code, Some(0));
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("git (the tests run in a checkout)");
    let commit = String::from_utf8(head.stdout).unwrap();
    let version = out.stdout.trim();
    let expected = format!("zeoraid {} (commit {}", env!("CARGO_PKG_VERSION"), commit.trim());
    // "-dirty" follows the commit when the checkout has local changes.
    assert!(
        version.starts_with(&expected) && version.ends_with(')'),
        "{version} is not {expected}...)"
    );
}

#[test]
fn missing_subcommand_or_argument_is_a_usage_error() {
    assert_eq!(run(&mut zeoraid()).code, Some(2));
    assert_eq!(run(zeoraid().arg("serve")).code, Some(2));
    assert_eq!(run(zeoraid().arg("check-config")).code, Some(2));
}

// --- serve ----------------------------------------------------------------

/// A running `serve`, with its stderr lines forwarded to a channel so the
/// test can wait for a specific log line instead of sleeping.
struct Daemon {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Daemon {
    fn spawn(cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn zeoraid serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Daemon {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn wait_for_line(&mut self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("no line containing {needle:?}; got:\n{}", self.seen.join("\n"));
                }
            }
        }
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: plain kill(2) on our own child; no memory is involved.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }

    /// Polls for exit with a deadline, then drains the remaining stderr.
    fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "zeoraid did not exit within {within:?}; stderr so far:\n{}",
                    self.seen.join("\n")
                );
            }
            thread::sleep(Duration::from_millis(10));
        };
        // The pipe closes when the process exits, ending the reader thread.
        self.seen.extend(self.lines.iter());
        status
    }

    fn output(&self) -> String {
        self.seen.join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn serve_until(sig: libc::c_int, name: &str) {
    let (_dir, path) = write_config(SERVE_CONFIG);
    let mut daemon = Daemon::spawn(zeoraid().arg("serve").arg("--config").arg(&path));
    daemon.wait_for_line("zeoraid started", STARTUP);
    daemon.signal(sig);
    let status = daemon.wait_exit(SHUTDOWN);
    assert_eq!(status.code(), Some(0), "stderr:\n{}", daemon.output());
    let out = daemon.output();
    assert!(out.contains("starting zeoraid"), "{out}");
    assert!(out.contains("members: 2"), "{out}");
    assert!(out.contains("shutting down"), "{out}");
    assert!(out.contains(&format!("signal: {name}")), "{out}");
}

#[test]
fn serve_stops_cleanly_on_sigterm() {
    serve_until(libc::SIGTERM, "SIGTERM");
}

#[test]
fn serve_stops_cleanly_on_sigint() {
    serve_until(libc::SIGINT, "SIGINT");
}

#[test]
fn serve_logs_json_when_zeoraid_log_says_so() {
    let (_dir, path) = write_config(SERVE_CONFIG);
    let mut daemon = Daemon::spawn(
        zeoraid()
            .env("ZEORAID_LOG", "json,debug")
            .arg("serve")
            .arg("--config")
            .arg(&path),
    );
    daemon.wait_for_line("zeoraid started", STARTUP);
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(SHUTDOWN).code(), Some(0));
    let records: Vec<serde_json::Value> = daemon
        .seen
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let start = records
        .iter()
        .find(|r| r["msg"] == "starting zeoraid")
        .expect("startup record");
    assert_eq!(start["members"], 2);
    assert_eq!(start["storage"], "1");
    assert!(
        records.iter().any(|r| r["level"] == "DEBG"),
        "debug level from ZEORAID_LOG: {records:?}"
    );
    let stop = records
        .iter()
        .position(|r| r["msg"] == "shutting down")
        .expect("shutdown record");
    assert_eq!(records[stop]["signal"], "SIGTERM");
    // After it, an orderly shutdown: nothing above INFO, and it ends with
    // the daemon's last line.
    let after = &records[stop + 1..];
    assert!(
        after.iter().all(|r| r["level"] == "INFO" || r["level"] == "DEBG"),
        "{after:?}"
    );
    assert_eq!(
        after.last().map(|r| &r["msg"]),
        Some(&serde_json::json!("zeoraid stopped")),
        "{after:?}"
    );
}

#[test]
fn serve_refuses_a_broken_config() {
    let (_dir, path) = write_config("cluster_mode = \"multi\"\n");
    let mut daemon = Daemon::spawn(zeoraid().arg("serve").arg("--config").arg(&path));
    let status = daemon.wait_exit(SHUTDOWN);
    assert_eq!(status.code(), Some(2), "stderr:\n{}", daemon.output());
    let out = daemon.output();
    assert!(out.contains("cluster_mode: expected"), "{out}");
    assert!(out.contains("members: at least one member"), "{out}");
    assert!(!out.contains("starting zeoraid"), "{out}");
    assert!(!out.contains("zeoraid started"), "{out}");
}

/// `check-config` reads the certificate files `[tls]` names, as a start or
/// a reload would.
#[test]
fn check_config_reads_the_tls_files() {
    let text = format!("{SERVE_CONFIG}\n[tls]\ncertificate = \"missing.pem\"\nkey = \"missing.key\"\n");
    let (dir, path) = write_config(&text);
    let out = check_config(&path);
    assert_eq!(
        out.code,
        Some(2),
        "stdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
    let missing = dir.path().join("missing.pem");
    assert!(
        out.stderr.contains("[tls]") && out.stderr.contains(&*missing.display().to_string()),
        "stderr: {}",
        out.stderr
    );
}
