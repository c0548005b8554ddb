//! `zeoraid serve` starts one member actor per configured member: each
//! connects to its real ZEO server, and every state change is one
//! structured log line with its reason.

mod common;

use common::runzeo::{RunZeo, RunZeoOptions};
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Reads the daemon's JSON log lines on a thread so waits can be bounded.
fn log_lines(stderr: ChildStderr) -> mpsc::Receiver<serde_json::Value> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let parsed = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            if tx.send(parsed).is_err() {
                return;
            }
        }
    });
    rx
}

fn wait_for(
    lines: &mpsc::Receiver<serde_json::Value>,
    within: Duration,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if pred(&line) => return line,
            Ok(_) => {}
            Err(_) => panic!("no log line {what} within {within:?}"),
        }
    }
}

fn is_transition(line: &serde_json::Value, member: &str, to: &str) -> bool {
    line["msg"] == "member state change" && line["member"] == member && line["to"] == to
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_connects_to_every_member_and_logs_each_transition_with_its_reason() {
    let mut zeo1 = RunZeo::start(RunZeoOptions::new());
    let zeo2 = RunZeo::start(RunZeoOptions::new());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("zeoraid.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\n\
             [http]\nlisten = \"127.0.0.1:0\"\n\
             [log]\nformat = \"json\"\nlevel = \"info\"\n\
             [restart]\nbackoff_initial = \"50ms\"\nbackoff_max = \"200ms\"\npark_probe_interval = \"300ms\"\n\
             [[members]]\nname = \"zeo1\"\naddress = \"{}\"\n\
             [[members]]\nname = \"zeo2\"\naddress = \"{}\"\n",
            zeo1.addr(),
            zeo2.addr()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_zeoraid"))
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("ZEORAID_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = log_lines(child.stderr.take().unwrap());
    let daemon = Daemon(child);

    let within = Duration::from_secs(15);
    // Both members become ready, in whichever order.
    let mut ready = std::collections::BTreeMap::new();
    while ready.len() < 2 {
        let line = wait_for(&lines, within, "ready", |l| {
            l["msg"] == "member state change" && l["to"] == "ready"
        });
        ready.insert(line["member"].as_str().unwrap().to_owned(), line);
    }
    for (name, line) in &ready {
        assert!(["zeo1", "zeo2"].contains(&name.as_str()));
        assert!(
            line["reason"]
                .as_str()
                .unwrap()
                .contains("last tid 0x0000000000000000"),
            "{line}"
        );
    }

    // A member that dies is noticed and retried, with the reason logged.
    zeo1.kill9();
    let line = wait_for(&lines, within, "backing-off", |l| {
        is_transition(l, "zeo1", "backing-off")
    });
    assert_eq!(line["from"], "ready");
    assert!(
        line["reason"].as_str().unwrap().contains("reconnecting in"),
        "{line}"
    );
    zeo1.restart();
    wait_for(&lines, within, "ready again", |l| {
        is_transition(l, "zeo1", "ready")
    });

    let mut daemon = daemon;
    unsafe { libc::kill(daemon.0.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(status) = daemon.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "zeoraid did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}
