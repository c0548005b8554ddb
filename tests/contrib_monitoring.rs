//! The monitoring files shipped in `contrib/`: the Prometheus alert rules
//! parse (as Prometheus reads them: groups of rules with `alert`, `expr`,
//! `for`, `labels`, `annotations`) and the Grafana dashboard is JSON with
//! a query per panel; and every metric either of them names exists in the
//! `/metrics` of a live zeoraid: a cluster leader (so the cluster series
//! exist) with real `runzeo` members, scraped while a throttled recovery
//! runs (so the recovery series exist) and after it.
//!
//! Every wait is bounded and polls for its condition.

mod common;

use common::cluster::{Cluster, ClusterOptions};
use common::http::request;
use common::records::ROOT_RECORD;
use serde::Deserialize;
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};
use zeo::types::Tid;

/// Bound for the cluster's election and the recovery.
const WAIT: Duration = Duration::from_secs(30);

/// Transactions zeo2 misses while disabled: what the recovery copies.
const MISSED: usize = 12;

/// Names an expression may use that no exporter exports: Prometheus
/// makes `up` itself for every scrape target.
const SYNTHETIC: &[&str] = &["up"];

/// A Prometheus rule file, as far as alerting rules go; unknown keys are
/// errors, so a misspelt `annotation` does not pass unnoticed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleGroup {
    name: String,
    rules: Vec<AlertRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertRule {
    alert: String,
    expr: String,
    #[serde(rename = "for")]
    pending: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

fn contrib(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib").join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The metric names in a PromQL expression: the identifiers of zeoraid's
/// and the process collector's families, and the synthetic ones.
fn metric_names(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| {
            word.starts_with("zeoraid_") || word.starts_with("process_") || SYNTHETIC.contains(word)
        })
        .map(str::to_owned)
        .collect()
}

/// Every sample name (with `_bucket`, `_sum`, `_count`) of one scrape.
fn scraped_names(http: SocketAddr) -> BTreeSet<String> {
    let answer = request(http, "GET", "/metrics", None);
    assert_eq!(answer.code, 200, "{}", answer.body);
    answer
        .body
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// The alert rules: structure, and every expression's metric names.
fn alert_rules() -> Vec<(String, BTreeSet<String>)> {
    let rules: RuleFile = serde_yaml::from_str(&contrib("prometheus/zeoraid-alerts.yml"))
        .unwrap_or_else(|e| panic!("the alert rules do not parse: {e}"));
    let mut found = Vec::new();
    for group in &rules.groups {
        assert!(!group.name.is_empty() && !group.rules.is_empty(), "{group:?}");
        for rule in &group.rules {
            assert!(
                zeoraid::config::parse_duration(&rule.pending).is_ok(),
                "{}: for {:?}",
                rule.alert,
                rule.pending
            );
            let severity = rule.labels.get("severity").map(String::as_str);
            assert!(
                matches!(severity, Some("critical" | "warning")),
                "{}: severity {severity:?}",
                rule.alert
            );
            assert!(rule.annotations.contains_key("summary"), "{}", rule.alert);
            let names = metric_names(&rule.expr);
            assert!(!names.is_empty(), "{}: no metric in {:?}", rule.alert, rule.expr);
            found.push((format!("alert {}", rule.alert), names));
        }
    }
    let alerts: BTreeSet<&str> = rules
        .groups
        .iter()
        .flat_map(|g| g.rules.iter().map(|r| r.alert.as_str()))
        .collect();
    for wanted in [
        "ZeoraidDown",
        "ZeoraidArrayFailed",
        "ZeoraidDegradedForLong",
        "ZeoraidMemberLagging",
        "ZeoraidRecoveryStalled",
        "ZeoraidStandbyWithoutLeader",
    ] {
        assert!(alerts.contains(wanted), "no alert {wanted}: {alerts:?}");
    }
    found
}

/// The dashboard: every panel's queries (and the template's) and their
/// metric names.
fn dashboard_queries() -> Vec<(String, BTreeSet<String>)> {
    let dashboard: Json = serde_json::from_str(&contrib("grafana/zeoraid-dashboard.json"))
        .unwrap_or_else(|e| panic!("the dashboard is not JSON: {e}"));
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10, "{} panels", panels.len());
    let mut found = Vec::new();
    for panel in panels {
        let title = panel["title"].as_str().expect("a title");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title}: no query");
        for target in targets {
            let expr = target["expr"].as_str().expect("expr");
            let names = metric_names(expr);
            assert!(!names.is_empty(), "panel {title}: no metric in {expr:?}");
            found.push((format!("panel {title}"), names));
        }
    }
    for variable in dashboard["templating"]["list"].as_array().expect("templating") {
        if let Some(query) = variable["query"].as_str() {
            found.push((format!("variable {}", variable["name"]), metric_names(query)));
        }
    }
    found
}

#[test]
fn alert_rules_and_dashboard_name_metrics_a_live_zeoraid_exports() {
    let queries: Vec<(String, BTreeSet<String>)> =
        alert_rules().into_iter().chain(dashboard_queries()).collect();

    let mut options = ClusterOptions::new(1, 2);
    options.tables = "[recovery]\nauto = false\nmax_transactions_per_second = 4\n".to_string();
    let mut cluster = Cluster::start(options);
    let leader = cluster.wait_leader(WAIT);
    let http = cluster.zeoraid(leader).http;
    let mut exported = scraped_names(http);

    // Traffic, a member that misses some of it, and its recovery.
    assert_eq!(cluster.post(leader, "/members/zeo2/disable").code, 200);
    let mut client = cluster.client(leader);
    for _ in 0..MISSED {
        let oid = client.new_oid();
        client.commit(&[(oid, Tid::ZERO, ROOT_RECORD)]);
    }
    assert_eq!(cluster.post(leader, "/members/zeo2/recover").code, 200);
    let deadline = Instant::now() + WAIT;
    let mut seen_recovering = false;
    loop {
        let names = scraped_names(http);
        seen_recovering |= names.contains("zeoraid_recovery_copied_bytes");
        exported.extend(names);
        let details = cluster.details(leader);
        let optimal = details["members"]
            .as_array()
            .is_some_and(|ms| ms.iter().all(|m| m["state"] == "optimal"));
        if optimal && seen_recovering {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery seen to its end within {WAIT:?}: {details}\n{}",
            cluster.context()
        );
        thread::sleep(Duration::from_millis(50));
    }
    exported.extend(scraped_names(http));
    exported.extend(SYNTHETIC.iter().map(|s| s.to_string()));

    let mut missing = Vec::new();
    for (what, names) in &queries {
        for name in names.difference(&exported) {
            missing.push(format!("{what}: {name}"));
        }
    }
    assert!(
        missing.is_empty(),
        "metrics named in contrib/ that zeoraid does not export:\n{}\nexported: {exported:?}",
        missing.join("\n")
    );
}

/// Prometheus' own checker reads the rules as Prometheus will: PromQL
/// that parses, durations, templates in the annotations (promtool comes
/// with Debian's `prometheus`, installed by scripts/system-packages).
#[test]
fn promtool_accepts_the_alert_rules() {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/prometheus/zeoraid-alerts.yml");
    let out = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("promtool (scripts/system-packages installs Debian's prometheus)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("SUCCESS"),
        "promtool check rules: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
