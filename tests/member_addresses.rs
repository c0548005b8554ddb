//! Members as operators configure them beyond `127.0.0.1:PORT`: a real
//! runzeo listening on a Unix socket and serving the array's storage under
//! a name of its own (`[[members]] storage`), beside a plain TCP member.

mod common;

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::array::{Array, ArrayOptions};
use common::faults::wait_until;
use common::runzeo::{python, run_python_ok};

const START_WAIT: Duration = Duration::from_secs(60);

/// A runzeo on a Unix socket, serving one FileStorage named `storage`.
struct UnixRunZeo {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl UnixRunZeo {
    fn start(storage: &str) -> UnixRunZeo {
        let dir = tempfile::Builder::new().prefix("zr-unix-").tempdir().unwrap();
        let socket = dir.path().join("zeo.sock");
        let config = dir.path().join("zeo.conf");
        std::fs::write(
            &config,
            format!(
                "<zeo>\n  address {socket}\n</zeo>\n<filestorage {storage}>\n  path {data}\n</filestorage>\n",
                socket = socket.display(),
                data = dir.path().join("Data.fs").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("runzeo.log")).unwrap();
        let child = Command::new(python())
            .args(["-m", "ZEO.runzeo", "-C"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start runzeo");
        let mut server = UnixRunZeo {
            child,
            socket,
            _dir: dir,
        };
        let socket = server.socket.clone();
        let up = wait_until(START_WAIT, || UnixStream::connect(&socket).is_ok());
        assert!(
            up && matches!(server.child.try_wait(), Ok(None)),
            "runzeo on {} did not start",
            socket.display()
        );
        server
    }
}

impl Drop for UnixRunZeo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Commits `root["through"] = VALUE` through ADDR (storage "1") and prints
/// the tid.
const COMMIT: &str = r#"
import sys, ZEO
host, port = sys.argv[1].rsplit(":", 1)
db = ZEO.DB((host, int(port)), wait_timeout=30)
with db.transaction() as conn:
    conn.root()["through"] = sys.argv[2]
print(db.lastTransaction().hex())
db.close()
"#;

/// Reads, from the server on the Unix socket SOCKET serving STORAGE, its
/// last tid and `root["through"]`.
const READ_UNIX: &str = r#"
import sys, ZEO
db = ZEO.DB(sys.argv[1], storage=sys.argv[2], wait_timeout=30, read_only=True)
with db.transaction() as conn:
    print(db.lastTransaction().hex(), conn.root()["through"])
db.close()
"#;

fn array_with(unix: &UnixRunZeo, storage_line: &str) -> Array {
    let mut options = ArrayOptions::new(1);
    options.tables = format!(
        "[[members]]\nname = \"zeo2\"\naddress = \"{}\"\n{storage_line}\n",
        unix.socket.display()
    );
    Array::start_with(options)
}

#[test]
fn a_member_on_a_unix_socket_under_its_own_storage_name_gets_every_commit() {
    let unix = UnixRunZeo::start("main");
    let array = array_with(&unix, "storage = \"main\"");
    array.wait_all_members_up(START_WAIT);

    let tid = run_python_ok(COMMIT, &[&array.addr().to_string(), "mirrored"], START_WAIT);
    let tid = tid.trim();
    let socket = unix.socket.to_string_lossy().into_owned();
    let read = run_python_ok(READ_UNIX, &[&socket, "main"], START_WAIT);
    assert_eq!(read.trim(), format!("{tid} mirrored"));
    assert_eq!(array.members()[0].last_transaction(), tid);
    assert!(array.all_members_up(), "{}", array.raid_status());
}

/// Without `storage`, zeoraid registers the array's name ("1"), which this
/// server does not serve: the member is degraded and the log names the
/// server's refusal.
#[test]
fn a_member_serving_another_name_is_degraded_without_its_storage_setting() {
    let unix = UnixRunZeo::start("main");
    let array = array_with(&unix, "");
    let status = array.wait_status("zeo2 degraded", START_WAIT, |s| {
        s["members"][1]["state"] != "optimal" && s["members"][1]["reason"].is_string()
    });
    assert_eq!(status["members"][0]["state"], "optimal", "{status}");
    // The log says why, in the server's own words.
    let refused = array.find_log(0, |l| {
        l["member"] == "zeo2"
            && l["reason"]
                .as_str()
                .is_some_and(|r| r.contains("register refused") && r.contains("unknown storage: 1"))
    });
    assert!(
        refused.is_some(),
        "no log line names the refused registration\n{}",
        array.context()
    );
}
