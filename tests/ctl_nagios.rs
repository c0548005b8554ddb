//! `zeoraid ctl` as operators and monitoring systems run it: a usage error
//! exits 3 (UNKNOWN) as a Nagios plugin must, `--json` answers JSON also
//! when zeoraid is unreachable, `status` prints perfdata and takes
//! thresholds (against a live array of real `runzeo` members),
//! `recover --wait` draws a progress bar on a terminal (a real pseudo
//! terminal, by util-linux's `script`), and the completions and the man
//! page are generated from the command line's definition.
//!
//! Every wait is bounded and polls for its condition.

mod common;

use common::array::{Array, ArrayOptions};
use common::ctl::{ctl, CtlRun};
use common::http::request;
use common::runzeo::free_port;
use serde_json::Value as Json;
use std::process::Command;

/// Transactions zeo2 misses while disabled.
const MISSED: usize = 12;

/// `zeoraid ARGS` (not `ctl`): exit code and stdout.
fn zeoraid(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_zeoraid"))
        .args(args)
        .output()
        .expect("run zeoraid");
    (
        output.status.code().expect("exited"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

fn show(run: &CtlRun) -> String {
    format!(
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        run.code, run.stdout, run.stderr
    )
}

#[test]
fn usage_errors_are_unknown_and_json_answers_when_unreachable() {
    for args in [
        &["--no-such-option", "status"][..],
        &["status", "--critical-below", "many"],
        &["status", "--warning-degraded-for", "10"],
        &["no-such-command"],
    ] {
        let run = ctl(args, &[]);
        assert_eq!(run.code, 3, "ctl {args:?}: {}", show(&run));
        assert!(run.stderr.contains("error:"), "{}", show(&run));
    }
    // Help is no error; the other subcommands keep clap's 2.
    assert_eq!(ctl(&["--help"], &[]).code, 0);
    assert_eq!(zeoraid(&["no-such-command"]).0, 2);

    let url = format!("http://127.0.0.1:{}", free_port().expect("a free port"));
    for command in ["status", "details"] {
        let run = ctl(&["--json", "--url", &url, command], &[]);
        assert_eq!(run.code, 3, "{}", show(&run));
        let json: Json = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&run)));
        assert_eq!(json["status"], "unknown", "{json}");
        assert!(
            json["error"]
                .as_str()
                .unwrap_or_default()
                .contains("cannot reach zeoraid"),
            "{json}"
        );
        let run = ctl(&["--url", &url, command], &[]);
        assert_eq!(run.code, 3, "{}", show(&run));
        assert!(
            run.stdout.starts_with("ZEORAID UNKNOWN - cannot reach"),
            "{}",
            show(&run)
        );
    }
}

#[test]
fn completions_and_man_page_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, script) = zeoraid(&["completions", shell]);
        assert_eq!(code, 0, "{shell}");
        for word in [
            "serve",
            "check-config",
            "ctl",
            "completions",
            "man",
            "force-optimal",
        ] {
            assert!(
                script.contains(word),
                "{shell} completions without {word}:\n{script}"
            );
        }
    }
    assert_ne!(zeoraid(&["completions", "no-such-shell"]).0, 0);
    let (code, page) = zeoraid(&["man"]);
    assert_eq!(code, 0);
    assert!(page.starts_with(".ie") || page.starts_with(".TH"), "{page}");
    assert!(page.contains(".TH zeoraid 1"), "{page}");
    for section in [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH SUBCOMMANDS",
        ".SH \"CTL COMMANDS\"",
    ] {
        assert!(page.contains(section), "no {section}:\n{page}");
    }
    for command in [
        "zeoraid\\-serve",
        "zeoraid\\-check\\-config",
        "zeoraid\\-ctl",
        "zeoraid ctl status",
        "zeoraid ctl recover",
        "zeoraid ctl force\\-optimal",
    ] {
        assert!(
            page.contains(command),
            "the man page does not name {command}:\n{page}"
        );
    }
}

#[test]
fn status_perfdata_thresholds_and_a_recovery_followed_on_a_terminal() {
    let mut options = ArrayOptions::new(2);
    options.tables = "[recovery]\nauto = false\nmax_transactions_per_second = 4\n".to_string();
    let array = Array::start_with(options);
    let url = format!("http://{}", array.http_addr());
    let status = |extra: &[&str]| {
        let mut args = vec!["--url", url.as_str(), "status"];
        args.extend_from_slice(extra);
        ctl(&args, &[])
    };

    let run = status(&[]);
    assert_eq!(run.code, 0, "{}", show(&run));
    assert_eq!(
        run.stdout,
        "ZEORAID OK - optimal: 2 of 2 members optimal | optimal_members=2;;;0;2 \
         'zeo1_lag'=0;;;0 'zeo1_lag_seconds'=0.000s;;;0 'zeo2_lag'=0;;;0 'zeo2_lag_seconds'=0.000s;;;0\n"
    );
    let run = status(&["--critical-below", "3", "--warning-below", "3"]);
    assert_eq!(run.code, 2, "{}", show(&run));
    assert!(
        run.stdout.starts_with("ZEORAID CRITICAL - optimal: 2 of 2")
            && run.stdout.contains("optimal_members=2;3:;3:;0;2 "),
        "{}",
        show(&run)
    );

    // zeo2 out and behind: WARNING, unless within --warning-degraded-for.
    let answer = request(array.http_addr(), "POST", "/members/zeo2/disable", None);
    assert_eq!(answer.code, 200, "{}", answer.body);
    for _ in 0..MISSED {
        array.commit_probe();
    }
    let run = status(&[]);
    assert_eq!(run.code, 1, "{}", show(&run));
    assert!(
        run.stdout
            .starts_with("ZEORAID WARNING - degraded: 1 of 2 members optimal")
            && run.stdout.contains("| optimal_members=1;;;0;2 ")
            && run.stdout.contains(&format!("'zeo2_lag'={MISSED};;;0")),
        "{}",
        show(&run)
    );
    let run = status(&["--warning-degraded-for", "10m"]);
    assert_eq!(run.code, 0, "{}", show(&run));
    assert!(run.stdout.starts_with("ZEORAID OK - degraded"), "{}", show(&run));
    let run = status(&["--warning-degraded-for", "1ms"]);
    assert_eq!(run.code, 1, "{}", show(&run));
    let run = status(&["--warning-degraded-for", "10m", "--critical-below", "2", "--json"]);
    assert_eq!(run.code, 2, "{}", show(&run));
    let json: Json = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&run)));
    assert_eq!(json["status"], "degraded", "{json}");
    assert_eq!(json["check"]["state"], "CRITICAL", "{json}");
    assert_eq!(json["check"]["code"], 2, "{json}");

    // `recover --wait` on a terminal: the throttled copy (about 3 s) drawn
    // as a bar on stderr, between the step lines; exit 0 once optimal.
    let command = format!(
        "{} ctl --url {url} --timeout 60 recover zeo2 --wait",
        env!("CARGO_BIN_EXE_zeoraid")
    );
    let output = Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .env("TERM", "xterm")
        .env("COLUMNS", "120")
        .env_remove("ZEORAID_URL")
        .env_remove("ZEORAID_TOKEN")
        .output()
        .expect("run script (util-linux)");
    let terminal = String::from_utf8_lossy(&output.stdout);
    let context = format!("{terminal:?}\n{}", array.context());
    assert_eq!(output.status.code(), Some(0), "{context}");
    assert!(terminal.contains("zeo2: optimal"), "{context}");
    assert!(
        terminal.contains("copying:") && terminal.contains("txn/s") && terminal.contains('%'),
        "no progress bar: {context}"
    );
    assert!(
        terminal.contains("=>") || terminal.contains("=="),
        "no bar drawn: {context}"
    );
    assert_eq!(status(&[]).code, 0);
}
