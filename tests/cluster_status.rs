//! What operators see of a standby: its HTTP endpoint
//! (`zeoraid::http::start_standby`) in an actix system of the test's own,
//! fed by a watch channel the test drives by hand (no etcd, no members),
//! and `zeoraid ctl` against it (its Nagios codes and texts for a standby,
//! the leader's address on a refused admin call).
//!
//! Everything listens on loopback; every wait is bounded and polls for its
//! condition.

mod common;

use common::ctl::CtlRun;
use common::faults::wait_until;
use common::http::{get, request};
use serde_json::{json, Value as Json};
use std::net::{SocketAddr, TcpListener};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use zeoraid::http::{start_standby, StandbySettings};
use zeoraid_actors::cluster::{Advertised, ClusterView, Role};
use zeoraid_actors::token::Token;

/// Bound for the endpoint to start, stop, or show a new view.
const WAIT: Duration = Duration::from_secs(15);

const TOKEN: &str = "s3cret";

/// The cluster metrics are the process's, and every standby endpoint sets
/// them from its own view: the tests take turns.
static TURNS: Mutex<()> = Mutex::new(());

fn my_turn() -> MutexGuard<'static, ()> {
    TURNS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A standby's endpoint running on a thread of its own (an actix system);
/// stopped when dropped.
struct Standby {
    addr: SocketAddr,
    view: watch::Sender<ClusterView>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Standby {
    fn start(first: ClusterView) -> Standby {
        let (view, receiver) = watch::channel(first);
        let (started, addr) = mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let log = slog::Logger::root(slog::Discard, slog::o!());
                let settings = StandbySettings {
                    listen: "127.0.0.1:0".parse().expect("an address"),
                    token: Some(Token::new(TOKEN.to_string())),
                    token_for_reads: false,
                };
                // No standby loop reads the reloads here (as once it was
                // elected and takes over): `POST /reload` is refused too.
                let (reloads, _) = tokio::sync::mpsc::channel(1);
                let endpoint = start_standby(settings, receiver, reloads, &log).expect("bind the endpoint");
                started.send(endpoint.addr()).expect("the test waits");
                // The test dropping its sender stops the endpoint too.
                let _ = stopped.await;
                endpoint.stop(true).await;
            });
        });
        let addr = addr.recv_timeout(WAIT).expect("the endpoint started");
        Standby {
            addr,
            view,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Stops the endpoint and waits until it has.
    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the endpoint's thread ended cleanly");
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Standby {
    fn drop(&mut self) {
        self.stop();
    }
}

fn zeoraid(name: &str, port: u16) -> Advertised {
    Advertised {
        name: name.into(),
        listen: format!("127.0.0.1:{port}"),
        http: format!("127.0.0.1:{}", port + 1),
    }
}

fn standby_of(leader: Option<Advertised>) -> ClusterView {
    ClusterView {
        role: if leader.is_some() {
            Role::Standby
        } else {
            Role::Candidate
        },
        name: "zr1".into(),
        epoch: leader.as_ref().map(|_| 7),
        leader,
        reason: None,
    }
}

/// The value of an unlabelled or singly labelled sample of `/metrics`.
fn metric(addr: SocketAddr, sample: &str) -> Option<f64> {
    let text = get(addr, "/metrics").body;
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.trim().parse().ok())
}

/// `zeoraid ctl --url URL ARGS`.
fn ctl(url: &str, args: &[&str]) -> CtlRun {
    let args: Vec<&str> = ["--url", url].iter().chain(args).copied().collect();
    common::ctl::ctl(&args, &[])
}

#[test]
fn a_standby_answers_reads_from_the_view_and_refuses_admin_calls_naming_the_leader() {
    let _turn = my_turn();
    let standby = Standby::start(standby_of(Some(zeoraid("zr2", 8200))));
    let addr = standby.addr;

    let status = get(addr, "/status");
    assert_eq!(status.code, 200, "{}", status.body);
    assert_eq!(
        status.json(),
        json!({"status": "standby", "summary": "standby, leader zr2 (epoch 7)",
               "role": "standby", "epoch": 7, "leader": "zr2"})
    );
    let details = get(addr, "/details");
    assert_eq!(details.code, 200, "{}", details.body);
    assert_eq!(
        details.json(),
        json!({"status": "standby", "summary": "standby, leader zr2 (epoch 7)",
               "role": "standby", "epoch": 7, "leader": "zr2", "name": "zr1",
               "leader_http": "127.0.0.1:8201", "leader_listen": "127.0.0.1:8200",
               "role_reason": null})
    );
    assert_eq!(get(addr, "/healthz").code, 200);
    let ready = get(addr, "/readyz");
    assert_eq!(ready.code, 503, "no client may be sent to a standby");
    assert_eq!(ready.json()["status"], "standby");
    let actors = get(addr, "/actors");
    assert_eq!(actors.code, 200, "{}", actors.body);
    assert_eq!(actors.json()["election"]["leader"]["name"], "zr2");
    assert!(
        actors.json().get("controller").is_none(),
        "a standby has no controller"
    );

    for path in [
        "/members/zeo1/disable",
        "/members/zeo1/recover",
        "/members/zeo1/force-optimal?confirm=true",
        "/reload",
    ] {
        let refused = request(addr, "POST", path, Some(TOKEN));
        assert_eq!(refused.code, 409, "{path}: {}", refused.body);
        let body = refused.json();
        assert_eq!(body["leader"], "zr2", "{path}: {body}");
        assert_eq!(body["leader_http"], "127.0.0.1:8201", "{path}: {body}");
        assert_eq!(body["role"], "standby", "{path}: {body}");
        let error = body["error"].as_str().expect("an error message");
        assert!(error.contains("http://127.0.0.1:8201"), "{path}: {error}");
    }
    let unauthorized = request(addr, "POST", "/reload", None);
    assert_eq!(
        unauthorized.code, 401,
        "the token is checked first: {}",
        unauthorized.body
    );

    // The metrics follow the view.
    assert!(
        wait_until(WAIT, || metric(addr, "zeoraid_cluster_role{role=\"standby\"}")
            == Some(1.0)),
        "{}",
        get(addr, "/metrics").body
    );
    assert_eq!(metric(addr, "zeoraid_cluster_epoch"), Some(7.0));
    assert!(metric(addr, "zeoraid_cluster_takeovers_total").is_some());

    // The leader is lost: no leader known.
    standby.view.send_replace(standby_of(None));
    assert!(wait_until(WAIT, || get(addr, "/status").json()["leader"].is_null()));
    let status = get(addr, "/status").json();
    assert_eq!(status["role"], "candidate", "{status}");
    assert_eq!(
        status["summary"], "standby, no leader known (candidate)",
        "{status}"
    );
    let refused = request(addr, "POST", "/members/zeo1/disable", Some(TOKEN));
    assert_eq!(refused.code, 409, "{}", refused.body);
    assert!(refused.json()["leader"].is_null(), "{}", refused.body);
    assert!(
        refused.json()["error"]
            .as_str()
            .unwrap_or_default()
            .contains("no leader is known"),
        "{}",
        refused.body
    );
    assert!(
        wait_until(WAIT, || {
            metric(addr, "zeoraid_cluster_role{role=\"candidate\"}") == Some(1.0)
                && metric(addr, "zeoraid_cluster_role{role=\"standby\"}") == Some(0.0)
                && metric(addr, "zeoraid_cluster_epoch") == Some(0.0)
        }),
        "{}",
        get(addr, "/metrics").body
    );
}

#[test]
fn ctl_shows_a_standby_and_where_its_leader_is() {
    let _turn = my_turn();
    let standby = Standby::start(standby_of(Some(zeoraid("zr2", 8200))));
    let url = standby.url();

    let run = ctl(&url, &["status"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "ZEORAID OK - standby, leader zr2 (epoch 7)\n"),
        "{}",
        run.stderr
    );
    let run = ctl(&url, &["details"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("cluster: zr1 is standby, epoch 7; leader zr2 at http://127.0.0.1:8201"),
        "{}",
        run.stdout
    );
    let run = ctl(&url, &["--json", "status"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json: Json = serde_json::from_str(&run.stdout).expect("ctl --json prints JSON");
    assert_eq!(json["role"], "standby");
    assert_eq!(json["leader"], "zr2");
    assert_eq!(json["epoch"], 7);

    for args in [
        &["--token", TOKEN, "disable", "zeo1"][..],
        &["--token", TOKEN, "recover", "zeo1"][..],
        &["--token", TOKEN, "reload"][..],
    ] {
        let run = ctl(&url, args);
        assert_eq!(run.code, 2, "{args:?}: {}{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains("refused (HTTP 409)")
                && run
                    .stderr
                    .contains("ask the leader zr2: zeoraid ctl --url http://127.0.0.1:8201"),
            "{args:?}: {}",
            run.stderr
        );
    }

    standby.view.send_replace(standby_of(None));
    assert!(wait_until(WAIT, || get(standby.addr, "/status").json()["leader"].is_null()));
    let run = ctl(&url, &["status"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (2, "ZEORAID CRITICAL - standby, no leader known (candidate)\n"),
        "{}",
        run.stderr
    );
    let run = ctl(&url, &["--token", TOKEN, "disable", "zeo1"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("knows no leader yet"), "{}", run.stderr);
}

#[test]
fn a_stopped_standby_endpoint_frees_its_address_for_the_leaders() {
    let _turn = my_turn();
    let mut standby = Standby::start(standby_of(Some(zeoraid("zr2", 8200))));
    let addr = standby.addr;
    assert_eq!(get(addr, "/healthz").code, 200);
    standby.stop();
    // The leader's endpoint binds the same address right away.
    let rebound = TcpListener::bind(addr);
    assert!(rebound.is_ok(), "{addr} still taken: {rebound:?}");
}
