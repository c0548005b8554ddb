//! zeoraid under systemd: the notification protocol (READY, RELOADING,
//! STOPPING, STATUS) as systemd receives it, on a datagram socket this
//! test binds where systemd would (`NOTIFY_SOCKET`); journald's priority
//! prefixes on the log lines; the shipped unit file as `systemd-analyze`
//! reads it. Members are real runzeo servers.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::array::{Array, ArrayOptions};
use common::ctl::ctl;

/// Bound for each notification the test waits for.
const NOTIFY_WAIT: Duration = Duration::from_secs(30);

/// systemd's end of the notification socket.
struct ServiceManager {
    socket: UnixDatagram,
    _dir: tempfile::TempDir,
    path: String,
}

impl ServiceManager {
    fn bind() -> ServiceManager {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        ServiceManager {
            socket,
            path: path.to_string_lossy().into_owned(),
            _dir: dir,
        }
    }

    /// The next notification that has a line `wanted` (e.g. "READY=1"),
    /// as its lines; earlier ones are skipped (STATUS updates).
    fn wait_for(&self, wanted: &str) -> Vec<String> {
        self.next_where(wanted, |lines| lines.iter().any(|l| l == wanted))
    }

    /// The next STATUS line `pred` accepts.
    fn wait_for_status(&self, pred: impl Fn(&str) -> bool) -> String {
        let lines = self.next_where("a matching STATUS", |lines| {
            lines.iter().filter_map(|l| l.strip_prefix("STATUS=")).any(&pred)
        });
        status_line(&lines).to_owned()
    }

    /// The next notification `pred` accepts, as its lines.
    fn next_where(&self, what: &str, pred: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + NOTIFY_WAIT;
        let mut seen = Vec::new();
        let mut buffer = [0u8; 4096];
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            self.socket
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let Ok(n) = self.socket.recv(&mut buffer) else {
                break;
            };
            let lines: Vec<String> = String::from_utf8_lossy(&buffer[..n])
                .lines()
                .map(str::to_owned)
                .collect();
            if pred(&lines) {
                return lines;
            }
            seen.push(lines);
        }
        panic!("no notification with {what} within {NOTIFY_WAIT:?}; got {seen:?}");
    }
}

fn status_line(lines: &[String]) -> &str {
    lines
        .iter()
        .find_map(|l| l.strip_prefix("STATUS="))
        .unwrap_or_else(|| panic!("no STATUS= in {lines:?}"))
}

#[test]
fn systemd_hears_ready_reloads_status_changes_and_stopping() {
    let manager = ServiceManager::bind();
    let mut options = ArrayOptions::new(2);
    options.env.push(("NOTIFY_SOCKET".into(), manager.path.clone()));
    let mut array = Array::start_with(options);

    let ready = manager.wait_for("READY=1");
    assert!(status_line(&ready).starts_with("optimal"), "{ready:?}");

    // A reload systemd asked for (SIGHUP): RELOADING with the monotonic
    // time systemd requires, then READY.
    array.signal_zeoraid(libc::SIGHUP);
    let reloading = manager.wait_for("RELOADING=1");
    assert!(
        reloading.iter().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading:?}"
    );
    let reloaded = manager.wait_for("READY=1");
    assert_eq!(status_line(&reloaded), "reload applied");

    // A rejected configuration: `systemctl reload` runs `ctl reload`
    // (the unit's ExecReload), which must fail; systemd hears READY again.
    let path = array.config_path().to_path_buf();
    let good = fs::read_to_string(&path).unwrap();
    fs::write(&path, format!("{good}\nno_such_key = 1\n")).unwrap();
    let http = format!("http://{}", array.http_addr());
    let rejected = ctl(&["--url", &http, "reload"], &[]);
    assert_eq!(
        rejected.code, 2,
        "stdout {} stderr {}",
        rejected.stdout, rejected.stderr
    );
    manager.wait_for("RELOADING=1");
    let after_rejection = manager.wait_for("READY=1");
    assert!(
        status_line(&after_rejection).starts_with("reload rejected"),
        "{after_rejection:?}"
    );
    fs::write(&path, good).unwrap();

    // The STATUS line follows the array: a member lost shows up in it.
    array.members_mut()[1].kill9();
    let degraded = manager.wait_for_status(|status| status.starts_with("degraded"));
    assert!(degraded.contains("zeo2"), "{degraded}");

    array.signal_zeoraid(libc::SIGTERM);
    let stopping = manager.wait_for("STOPPING=1");
    assert!(status_line(&stopping).starts_with("draining"), "{stopping:?}");
    assert!(array.wait_zeoraid_exit(NOTIFY_WAIT).success());
}

/// With stderr on journald's stream (systemd names it in JOURNAL_STREAM),
/// every line starts with its priority, so `journalctl -p err` works.
#[test]
fn log_lines_carry_journald_priorities_on_the_journal_stream() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("zeoraid.toml");
    // One member nobody listens on: zeoraid starts with it failed, which
    // logs warnings and errors beside the info lines.
    let unused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nstate_dir = \"{state}\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
             [log]\nformat = \"term\"\n[timeouts]\nconnect = \"300ms\"\n\
             [[members]]\nname = \"zeo1\"\naddress = \"{unused}\"\n",
            state = dir.path().join("state").display()
        ),
    )
    .unwrap();
    let stderr_path = dir.path().join("stderr");
    let stderr = fs::File::create(&stderr_path).unwrap();
    let meta = stderr.metadata().unwrap();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_zeoraid"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .env_remove("ZEORAID_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let read = || fs::read_to_string(&stderr_path).unwrap();
    let started = common::faults::wait_until(Duration::from_secs(30), || read().contains("zeoraid started"));
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let exited = daemon.wait().unwrap();
    let text = read();
    assert!(started, "zeoraid did not start:\n{text}");
    assert!(exited.success(), "{exited:?}\n{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines
            .iter()
            .all(|l| l.len() > 3 && l.starts_with('<') && l.as_bytes()[2] == b'>'),
        "a line without a priority prefix:\n{text}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("<6>zeoraid started")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<3>") || l.starts_with("<4>") || l.starts_with("<2>")),
        "no warning or error for the missing member:\n{text}"
    );
}

/// The unit file shipped for operators is one systemd accepts, with the
/// installed binary's path replaced by the one built here.
#[test]
fn the_shipped_unit_file_verifies() {
    let unit = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/zeoraid.service")).unwrap();
    assert!(unit.contains("Type=notify"), "{unit}");
    assert!(unit.contains("ExecReload=/usr/bin/zeoraid ctl"), "{unit}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zeoraid.service");
    fs::write(
        &path,
        unit.replace("/usr/bin/zeoraid", env!("CARGO_BIN_EXE_zeoraid")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze (installed by scripts/system-packages)");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
