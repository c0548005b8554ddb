//! `zeoraid ctl`: talks to a running daemon's HTTP endpoint (see
//! `crate::http`) and prints what it answered, for people (default) or
//! scripts (`--json`).
//!
//! Exit codes are those of a Nagios/Icinga plugin, so `zeoraid ctl status`
//! is a check command as it is:
//!
//! | code | status/details | disable/reload |
//! |---|---|---|
//! | 0 OK | optimal; a standby that knows its leader | done (`recover --wait`: the member is optimal) |
//! | 1 WARNING | degraded or recovering; a standby elected, still taking over | `recover --wait`: not optimal within `--timeout` |
//! | 2 CRITICAL | failed; a standby that knows no leader; a deposed leader | refused (the reason is printed, and on a standby where the leader's endpoint is); `recover --wait`: the recovery ended otherwise |
//! | 3 UNKNOWN | daemon unreachable, or an answer that makes no sense | daemon unreachable |
//!
//! Where the endpoint is: `--url`, else `--config FILE`'s `[http] listen`,
//! else `$ZEORAID_URL`, else `http://127.0.0.1:8101` (the default listen).
//! The token (for disable/reload, and for every read when the daemon has
//! `[http] token_for_reads`): `--token` / `$ZEORAID_TOKEN`, else the
//! config file's `[http] token`.
//!
//! Like `cli.rs`, this module writes to stdout/stderr directly: it is
//! user-facing output of a short-lived command, not the daemon's log.

mod cluster;
mod follow;
mod nagios;

use crate::config;
use crate::http::{ErrorBody, MemberActionDone, ScrubStarted};
use clap::{Args, Subcommand};
use cluster::DetailsReply;
use serde::de::DeserializeOwned;
use serde_json::{json, Value as Json};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};
use zeoraid_actors::controller::{ArrayStatus, MemberStatus, ReloadReport};
use zeoraid_actors::status::ArrayState;

/// Nagios plugin exit codes.
pub const OK: u8 = 0;
pub const WARNING: u8 = 1;
pub const CRITICAL: u8 = 2;
pub const UNKNOWN: u8 = 3;

/// The endpoint of a daemon started with the default `[http] listen`.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8101";

/// Bound for status and details (a Nagios check should not hang).
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound for disable and reload: a reload waits for the commit lock,
/// which a transaction holds for at most the commit deadline (2 min by
/// default).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(150);

#[derive(Debug, Args)]
pub struct CtlArgs {
    /// Base URL of zeoraid's HTTP endpoint [default: $ZEORAID_URL, else
    /// http://127.0.0.1:8101]
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,
    /// Take the endpoint (`[http] listen`) and the token (`[http] token`) from
    /// the daemon's config file (ZEORAID_* overrides applied).
    #[arg(long, global = true, short, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Bearer token for disable and reload.
    #[arg(
        long,
        global = true,
        value_name = "TOKEN",
        env = "ZEORAID_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Print the daemon's JSON answer instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Give up after this many seconds [default: 10 for status and details,
    /// 150 for disable, recover and reload; 600 for the wait of recover --wait].
    #[arg(long, global = true, value_name = "SECONDS")]
    pub timeout: Option<f64>,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// The array's status as one Nagios-style line with perfdata (optimal
    /// members, each member's lag); the exit code says it too (0 optimal,
    /// 1 degraded/recovering, 2 failed, 3 unknown), moved by the thresholds.
    Status(nagios::Thresholds),
    /// The array and a table of its members; same exit codes as status.
    Details,
    /// Take a member out of the array now ("disabled by operator").
    Disable {
        /// The member's name, as in the config.
        name: String,
    },
    /// Start recovering a degraded member from an optimal one (one that is
    /// not connected reconnects now and recovers once connected); progress
    /// shows in `details`, or with `--wait`.
    Recover {
        /// The member's name, as in the config.
        name: String,
        /// Copy everything (only accepted for an empty member).
        #[arg(long)]
        full: bool,
        /// Then wait until the member is optimal, showing progress: exit 0
        /// once it is, 2 if its recovery ended otherwise, 1 if `--timeout`
        /// (default 600 s) ran out first.
        #[arg(long)]
        wait: bool,
    },
    /// Make the daemon re-read its config file (as SIGHUP does) and show
    /// what changed.
    Reload,
    /// Disaster override: when the members holding every acknowledged
    /// transaction are gone for good, go on from this connected degraded
    /// member; the others that may hold more are marked diverged. Without
    /// `--yes` it only prints what may be lost (and exits 2).
    ForceOptimal {
        /// The member's name, as in the config.
        name: String,
        /// Do it: the transactions printed without `--yes` may be lost.
        #[arg(long)]
        yes: bool,
    },
    /// Start comparing the optimal members' histories (progress and the
    /// result show in `details`): a member that differs from the majority
    /// is degraded as diverged; with no majority the array is flagged
    /// inconsistent (status WARNING). Nothing is repaired.
    Scrub {
        /// The first tid compared, 16 hex digits [default: where an
        /// interrupted scrub stopped, else the beginning].
        #[arg(long, value_name = "TID", value_parser = parse_tid)]
        from: Option<String>,
        /// The last tid compared, 16 hex digits [default: the array's last tid].
        #[arg(long, value_name = "TID", value_parser = parse_tid)]
        to: Option<String>,
    },
}

/// A tid as the daemon takes it: 16 hex digits.
fn parse_tid(text: &str) -> Result<String, String> {
    if text.len() == 16 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(format!("a tid is 16 hex digits, not {text:?}"))
    }
}

/// `/scrub[?from=TID][&to=TID]`.
fn scrub_path(from: Option<&str>, to: Option<&str>) -> String {
    let query: Vec<String> = [("from", from), ("to", to)]
        .into_iter()
        .filter_map(|(key, tid)| Some(format!("{key}={}", tid?)))
        .collect();
    match query.is_empty() {
        true => "/scrub".to_owned(),
        false => format!("/scrub?{}", query.join("&")),
    }
}

/// The `message` of a disable or recover answer.
fn admin_message(answer: &MemberActionDone) -> String {
    answer.message.clone()
}

/// What a command line clap refused becomes: `--help` and `--version`
/// print and exit 0; a usage error exits 3 (UNKNOWN) for `zeoraid ctl`,
/// as a Nagios plugin must (clap's own 2 would read as CRITICAL), and
/// clap's 2 for the other subcommands.
pub fn exit_on_usage_error(error: clap::Error) -> ! {
    let is_ctl = std::env::args_os().nth(1).is_some_and(|a| a == "ctl");
    if !is_ctl || !error.use_stderr() {
        error.exit();
    }
    let _ = error.print();
    std::process::exit(i32::from(UNKNOWN));
}

/// Runs one `zeoraid ctl` command; returns its exit code.
pub fn main(args: &CtlArgs) -> ExitCode {
    ExitCode::from(run(args))
}

fn run(args: &CtlArgs) -> u8 {
    let target = match Target::resolve(args) {
        Ok(target) => target,
        Err(message) => {
            eprintln!("zeoraid ctl: {message}");
            return UNKNOWN;
        }
    };
    match &args.command {
        CtlCommand::Status(thresholds) => nagios::status(&target, args, thresholds),
        CtlCommand::Details => read::<DetailsReply>(&target, args, "/details"),
        CtlCommand::Disable { name } => admin(
            &target,
            args,
            &member_path(name, "disable", None),
            &format!("disable {name}"),
            admin_message,
        ),
        CtlCommand::Recover { name, full, wait } => {
            let accepted = admin(
                &target,
                args,
                &member_path(name, "recover", full.then_some("full=true")),
                &format!("recover {name}"),
                admin_message,
            );
            match accepted {
                OK if *wait => follow::recovery(&target, name, timeout(args, follow::WAIT_TIMEOUT)),
                code => code,
            }
        }
        CtlCommand::Reload => admin(&target, args, "/reload", "reload", reload_answer),
        CtlCommand::Scrub { from, to } => admin(
            &target,
            args,
            &scrub_path(from.as_deref(), to.as_deref()),
            "scrub",
            |started: &ScrubStarted| started.message.clone(),
        ),
        CtlCommand::ForceOptimal { name, yes } => admin(
            &target,
            args,
            &member_path(name, "force-optimal", yes.then_some("confirm=true")),
            &format!("force-optimal {name}"),
            admin_message,
        ),
    }
}

/// `/members/NAME/ACTION[?QUERY]`.
fn member_path(name: &str, action: &str, query: Option<&str>) -> String {
    let query = query.map_or_else(String::new, |q| format!("?{q}"));
    format!("/members/{}/{action}{query}", encode_segment(name))
}

/// Where the daemon is and how to authenticate.
#[derive(Debug)]
struct Target {
    base: String,
    token: Option<String>,
}

impl Target {
    fn resolve(args: &CtlArgs) -> Result<Target, String> {
        let from_file = match &args.config {
            Some(path) => Some(config::load(path).map_err(|e| format!("{e}"))?),
            None => None,
        };
        let base = match (&args.url, &from_file) {
            (Some(url), _) => url.clone(),
            (None, Some(config)) => url_for(config.http.listen),
            (None, None) => std::env::var("ZEORAID_URL")
                .ok()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| DEFAULT_URL.to_string()),
        };
        let base = base.trim_end_matches('/').to_string();
        if !base.starts_with("http://") {
            return Err(format!(
                "--url must be an http:// URL (the endpoint speaks plain HTTP), got {base:?}"
            ));
        }
        let token = args
            .token
            .clone()
            .filter(|t| !t.is_empty())
            .or_else(|| from_file.and_then(|c| c.http.token));
        Ok(Target { base, token })
    }
}

/// The URL of a daemon listening on `listen`: a wildcard address is
/// reached on loopback.
fn url_for(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, listen.port()))
}

/// Percent-encodes a path segment (member names are plain ASCII words,
/// but a typo should produce a 404, not another route).
fn encode_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// An HTTP answer: status code and body.
struct Answer {
    code: u16,
    body: String,
}

impl Answer {
    fn json(&self) -> Option<Json> {
        serde_json::from_str(&self.body).ok()
    }

    /// The [`ErrorBody`]'s message (with where the leader is, when a
    /// standby refused), or the body as it is.
    fn error_message(&self) -> String {
        match (serde_json::from_str::<ErrorBody>(&self.body), self.json()) {
            (Ok(body), _) => match &body.not_leader {
                Some(not_leader) => format!("{}{}", body.error, cluster::leader_hint(not_leader)),
                None => body.error,
            },
            (Err(_), Some(j)) => j.to_string(),
            (Err(_), None) => self.body.trim().to_string(),
        }
    }
}

fn request(target: &Target, method: &str, path: &str, timeout: Duration) -> Result<Answer, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        // The endpoint is the operator's own daemon: no proxy from the
        // environment between them.
        .proxy(None)
        .build()
        .into();
    let url = format!("{}{path}", target.base);
    // The token goes with reads too: `[http] token_for_reads` may ask for it.
    let authorization = target.token.as_ref().map(|token| format!("Bearer {token}"));
    let result = match method {
        "POST" => {
            let mut request = agent.post(&url);
            if let Some(value) = &authorization {
                request = request.header("Authorization", value);
            }
            request.send_empty()
        }
        _ => {
            let mut request = agent.get(&url);
            if let Some(value) = &authorization {
                request = request.header("Authorization", value);
            }
            request.call()
        }
    };
    let mut response = result.map_err(|e| format!("cannot reach zeoraid at {}: {e}", target.base))?;
    let code = response.status().as_u16();
    let body = response
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("cannot read zeoraid's answer from {url}: {e}"))?;
    Ok(Answer { code, body })
}

fn timeout(args: &CtlArgs, default: Duration) -> Duration {
    args.timeout
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(default, Duration::from_secs_f64)
}

/// What `status` and `details` read: an answer that says the array's
/// state, or a standby's role (`cluster.rs`).
trait StatusAnswer: DeserializeOwned {
    /// The Nagios exit code.
    fn code(&self) -> u8;
    /// The text printed for people.
    fn text(&self, now: SystemTime) -> String;
}

/// `details`: GET, print, exit with the status's code.
fn read<T: StatusAnswer>(target: &Target, args: &CtlArgs, path: &str) -> u8 {
    match fetch::<T>(target, args, path) {
        Ok((json, typed)) => {
            if args.json {
                print_json(&json);
            } else {
                print!("{}", typed.text(SystemTime::now()));
            }
            typed.code()
        }
        Err(code) => code,
    }
}

/// GET `path` and its answer as `T`. When there is none (unreachable, an
/// error status, not JSON, not a `T`) it prints why as UNKNOWN (`--json`:
/// `{"status": "unknown", "error"}`, so a script always reads JSON) and
/// returns [`UNKNOWN`] as the error.
fn fetch<T: DeserializeOwned>(target: &Target, args: &CtlArgs, path: &str) -> Result<(Json, T), u8> {
    let unknown = |message: String| {
        if args.json {
            print_json(&json!({"status": "unknown", "error": message}));
        } else {
            println!("ZEORAID UNKNOWN - {message}");
        }
        UNKNOWN
    };
    let answer = request(target, "GET", path, timeout(args, READ_TIMEOUT)).map_err(unknown)?;
    if answer.code != 200 {
        let why = format!("HTTP {} from {path}: {}", answer.code, answer.error_message());
        return Err(unknown(why));
    }
    let Some(json) = answer.json() else {
        return Err(unknown(format!(
            "answer from {path} is not JSON: {}",
            answer.body.trim()
        )));
    };
    match T::deserialize(&json) {
        Ok(typed) => Ok((json, typed)),
        Err(_) => Err(unknown(format!("unexpected answer from {path}: {json}"))),
    }
}

/// The Nagios exit code of an array status.
pub fn exit_code(status: ArrayState) -> u8 {
    match status {
        ArrayState::Optimal => OK,
        ArrayState::Degraded | ArrayState::Recovering => WARNING,
        ArrayState::Failed => CRITICAL,
    }
}

/// The exit code of an array status, WARNING at least while a scrub
/// found the members inconsistent (no majority: nobody was degraded).
pub fn array_code(status: ArrayState, inconsistent: &Option<String>) -> u8 {
    let code = exit_code(status);
    match inconsistent {
        Some(_) if code == OK => WARNING,
        _ => code,
    }
}

fn nagios_word(code: u8) -> &'static str {
    match code {
        OK => "OK",
        WARNING => "WARNING",
        CRITICAL => "CRITICAL",
        _ => "UNKNOWN",
    }
}

/// `ZEORAID OK - optimal: 2 of 2 members optimal`.
fn status_line(code: u8, summary: &str) -> String {
    format!("ZEORAID {} - {summary}", nagios_word(code))
}

/// The status line, the array's numbers, and a table of the members.
fn details_text(array: &ArrayStatus, now: SystemTime) -> String {
    format!(
        "{}\n{}",
        status_line(array_code(array.status, &array.inconsistent), &array.summary),
        details_body(array, now)
    )
}

/// The array's numbers and a table of the members.
fn details_body(array: &ArrayStatus, now: SystemTime) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "cluster mode {}, fail mode {}, last tid {}, {} of {} members optimal (quorum {})",
        array.cluster_mode,
        array.fail_mode,
        array.last_tid,
        array.optimal,
        array.members.len(),
        array.quorum,
    );
    let _ = writeln!(
        out,
        "{} commits, {} aborts, {} conflicts, {} clients connected",
        array.commits, array.aborts, array.conflicts, array.clients,
    );
    let _ = writeln!(
        out,
        "array state: generation {}, {}",
        array.state_generation, array.state_location
    );
    if let Some(reason) = &array.reason {
        let _ = writeln!(out, "failed because: {reason}");
    }
    let header = [
        "MEMBER",
        "ADDRESS",
        "STATE",
        "CONNECTION",
        "LAST TID",
        "LAG",
        "FAILURES",
        "REASON",
    ];
    let mut rows = vec![header.map(str::to_string)];
    rows.extend(array.members.iter().map(|m| member_row(m, now)));
    out.push_str(&table(&rows));
    out
}

/// One member's line of the details table.
fn member_row(m: &MemberStatus, now: SystemTime) -> [String; 8] {
    let progress = m.recovery.as_ref().and_then(|r| r.progress.as_ref());
    let state = match (m.kind, progress) {
        (_, Some(progress)) => format!(
            "recovering {:.0}% ({} txn, eta {})",
            progress.fraction_done * 100.0,
            progress.copied_transactions,
            progress
                .eta_seconds
                .map_or_else(|| "-".to_string(), |s| format!("{s:.0}s"))
        ),
        (Some(kind), None) => format!("{} ({kind})", m.state),
        (None, None) => m.state.to_string(),
    };
    let connection = if m.connected {
        m.connection.to_string()
    } else {
        format!("{} (down)", m.connection)
    };
    let txns = m.lag_transactions;
    let secs = m.lag_seconds.unwrap_or(0.0);
    let lag = if txns == 0 && secs <= 0.0 {
        "-".to_string()
    } else {
        format!("{txns} txn, {secs:.1}s")
    };
    let reason = match (&m.reason, m.degraded_since) {
        (Some(reason), Some(since)) => format!("{reason} (for {})", ago(since, now)),
        (Some(reason), None) => reason.clone(),
        (None, _) => String::new(),
    };
    [
        m.name.clone(),
        m.address.clone(),
        state,
        connection,
        m.last_tid.clone().unwrap_or_else(|| "-".to_string()),
        lag,
        m.failures.to_string(),
        reason,
    ]
}

/// The rows in columns two spaces apart, the last column unpadded.
fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let widths: Vec<usize> = (0..N)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[c]);
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// How long ago `since` (seconds since the epoch) was: "3s", "4m05s", "2h10m".
fn ago(since: f64, now: SystemTime) -> String {
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let secs = (now - since).max(0.0) as u64;
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// A leader applies a reload; a standby checks the file it will lead with.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum ReloadAnswer {
    Applied(ReloadReport),
    Standby(crate::http::StandbyReloaded),
}

fn reload_answer(answer: &ReloadAnswer) -> String {
    match answer {
        ReloadAnswer::Applied(report) => reload_summary(report),
        ReloadAnswer::Standby(reloaded) if reloaded.needs_restart.is_empty() => reloaded.message.clone(),
        ReloadAnswer::Standby(reloaded) => format!(
            "{}; needs a restart: {}",
            reloaded.message,
            reloaded.needs_restart.join(", ")
        ),
    }
}

fn reload_summary(report: &ReloadReport) -> String {
    let list = |names: &[String]| {
        if names.is_empty() {
            "-".to_string()
        } else {
            names.join(", ")
        }
    };
    let outcome = &report.outcome;
    let mut line = format!(
        "reload applied: added {}; removed {}; replaced {}; unchanged {}",
        list(&outcome.added),
        list(&outcome.removed),
        list(&outcome.replaced),
        list(&outcome.unchanged)
    );
    if !outcome.settings_changed.is_empty() {
        let _ = write!(line, "; settings changed: {}", list(&outcome.settings_changed));
    }
    if !report.needs_restart.is_empty() {
        let _ = write!(
            line,
            "; changed but only read at startup (restart zeoraid to apply): {}",
            list(&report.needs_restart)
        );
    }
    line
}

/// `disable` and `reload`: POST, print the outcome; 0 done, 2 refused,
/// 3 unreachable or an answer that makes no sense.
fn admin<T: DeserializeOwned>(
    target: &Target,
    args: &CtlArgs,
    path: &str,
    what: &str,
    describe: fn(&T) -> String,
) -> u8 {
    let answer = match request(target, "POST", path, timeout(args, ADMIN_TIMEOUT)) {
        Ok(answer) => answer,
        Err(message) => {
            eprintln!("zeoraid ctl: {what}: {message}");
            return UNKNOWN;
        }
    };
    let json = answer.json();
    if args.json {
        if let Some(json) = &json {
            print_json(json);
        }
    }
    match (answer.code, &json) {
        (200, Some(json)) => match T::deserialize(json) {
            Ok(done) => {
                if !args.json {
                    println!("{}", describe(&done));
                }
                OK
            }
            Err(_) => {
                eprintln!("zeoraid ctl: {what}: unexpected answer: {json}");
                UNKNOWN
            }
        },
        (200, None) => {
            eprintln!("zeoraid ctl: {what}: answer is not JSON: {}", answer.body.trim());
            UNKNOWN
        }
        (code, _) => {
            eprintln!(
                "zeoraid ctl: {what} refused (HTTP {code}): {}",
                answer.error_message()
            );
            CRITICAL
        }
    }
}

fn print_json(json: &Json) {
    match serde_json::to_string_pretty(json) {
        Ok(text) => println!("{text}"),
        Err(_) => println!("{json}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code(ArrayState::Optimal), 0);
        assert_eq!(exit_code(ArrayState::Degraded), 1);
        assert_eq!(exit_code(ArrayState::Recovering), 1);
        assert_eq!(exit_code(ArrayState::Failed), 2);
        let unknown = serde_json::from_value::<cluster::StatusReply>(json!({"status": "???", "summary": ""}));
        assert!(unknown.is_err(), "an unknown status is no answer (exit code 3)");
    }

    #[test]
    fn nagios_line() {
        let j = json!({"status": "optimal", "summary": "optimal: 2 of 2 members optimal"});
        let line = serde_json::from_value::<cluster::StatusReply>(j).unwrap();
        assert_eq!(
            line.text(SystemTime::now()),
            "ZEORAID OK - optimal: 2 of 2 members optimal\n"
        );
        assert_eq!(
            status_line(CRITICAL, "failed: no member left"),
            "ZEORAID CRITICAL - failed: no member left"
        );
        let j = json!({"status": "optimal", "summary": "optimal: 2 of 2 members optimal; inconsistent: zeo1 \
            and zeo2 differ", "inconsistent": "zeo1 and zeo2 differ"});
        let line = serde_json::from_value::<cluster::StatusReply>(j).unwrap();
        assert_eq!(line.code(), WARNING, "an inconsistent array is a WARNING");
        assert!(line
            .text(SystemTime::now())
            .starts_with("ZEORAID WARNING - optimal"));
        let inconsistent = Some("zeo1 and zeo2 differ".to_owned());
        assert_eq!(array_code(ArrayState::Failed, &inconsistent), CRITICAL);
        assert_eq!(array_code(ArrayState::Optimal, &None), OK);
    }

    #[test]
    fn scrub_paths() {
        assert_eq!(scrub_path(None, None), "/scrub");
        assert_eq!(
            scrub_path(Some("03e0000000000001"), None),
            "/scrub?from=03e0000000000001"
        );
        assert_eq!(
            scrub_path(Some("0000000000000000"), Some("03e0000000000001")),
            "/scrub?from=0000000000000000&to=03e0000000000001"
        );
        assert_eq!(parse_tid("03E0000000000001"), Ok("03e0000000000001".to_owned()));
        assert!(parse_tid("12").is_err());
    }

    #[test]
    fn urls() {
        assert_eq!(url_for("0.0.0.0:8101".parse().unwrap()), "http://127.0.0.1:8101");
        assert_eq!(url_for("[::]:8101".parse().unwrap()), "http://[::1]:8101");
        assert_eq!(url_for("10.1.2.3:81".parse().unwrap()), "http://10.1.2.3:81");
        assert_eq!(encode_segment("zeo-1.a_b"), "zeo-1.a_b");
        assert_eq!(encode_segment("a/b c"), "a%2Fb%20c");
        assert_eq!(member_path("zeo1", "recover", None), "/members/zeo1/recover");
        assert_eq!(
            member_path("zeo 2", "force-optimal", Some("confirm=true")),
            "/members/zeo%202/force-optimal?confirm=true"
        );
    }

    #[test]
    fn details_table() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let j = json!({
            "status": "degraded", "summary": "degraded: 1 of 2 members optimal (zeo2 disabled)",
            "reason": null, "cluster_mode": "single", "fail_mode": "close", "last_tid": "03ff",
            "optimal": 1, "quorum": 1, "commits": 5, "aborts": 1, "conflicts": 0, "clients": 2,
            "longest_recovery_block_ms": 0,
            "state_generation": 12, "state_location": "/var/lib/zeoraid/state/array.json",
            "members": [
                {"name": "zeo1", "address": "127.0.0.1:9001", "state": "optimal", "kind": null,
                 "reason": null, "degraded_since": null, "connected": true, "connection": "ready",
                 "last_tid": "03ff", "lag_transactions": 0, "lag_seconds": 0.0, "failures": 0},
                {"name": "zeo2", "address": "127.0.0.1:9002", "state": "degraded", "kind": "disabled",
                 "reason": "disabled by operator", "degraded_since": 925.0, "connected": true,
                 "connection": "ready", "last_tid": "03fe", "lag_transactions": 3, "lag_seconds": 1.25,
                 "failures": 0}
            ]
        });
        let text = details_text(&serde_json::from_value(j).unwrap(), now);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "ZEORAID WARNING - degraded: 1 of 2 members optimal (zeo2 disabled)"
        );
        assert!(
            lines[1].contains("cluster mode single, fail mode close"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("5 commits, 1 aborts, 0 conflicts, 2 clients"),
            "{text}"
        );
        assert_eq!(
            lines[3],
            "array state: generation 12, /var/lib/zeoraid/state/array.json"
        );
        assert!(lines[4].starts_with("MEMBER"), "{text}");
        assert!(lines[5].starts_with("zeo1  "), "{text}");
        assert!(
            lines[6].contains("degraded (disabled)")
                && lines[6].contains("3 txn, 1.2s")
                && lines[6].ends_with("disabled by operator (for 1m15s)"),
            "{text}"
        );
    }

    #[test]
    fn reload_line() {
        let j = json!({"added": ["zeo3"], "removed": [], "replaced": [], "unchanged": ["zeo1", "zeo2"],
                       "settings_changed": [], "needs_restart": ["http"]});
        assert_eq!(
            reload_summary(&serde_json::from_value(j).unwrap()),
            "reload applied: added zeo3; removed -; replaced -; unchanged zeo1, zeo2; \
             changed but only read at startup (restart zeoraid to apply): http"
        );
    }
}
