use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::path::PathBuf;
use std::time::Duration;

use super::*;

const MEMBERS: &str = r#"
[[members]]
name = "zeo1"
address = "127.0.0.1:9001"

[[members]]
name = "zeo2"
address = "127.0.0.1:9002"
"#;

fn parse_env(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    from_toml_str(text, "test.toml", &Environment::from_vars(vars.iter().copied()))
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_env(text, &[])
}

fn tcp_listen(text: &str) -> ListenAddress {
    ListenAddress::Tcp(text.parse::<SocketAddr>().unwrap())
}

fn ok(text: &str) -> Config {
    parse(text).unwrap_or_else(|e| panic!("expected a valid config, got: {e}"))
}

/// The validation problems, rendered "key: message".
fn problems_env(text: &str, vars: &[(&str, &str)]) -> Vec<String> {
    match parse_env(text, vars) {
        Err(ConfigError::Invalid { problems, .. }) => problems.iter().map(ToString::to_string).collect(),
        Err(other) => panic!("expected validation problems, got: {other}"),
        Ok(_) => panic!("expected validation problems, config was accepted"),
    }
}

fn problems(text: &str) -> Vec<String> {
    problems_env(text, &[])
}

/// Asserts there is exactly one problem and it starts with `expected`.
fn assert_problem(text: &str, expected: &str) {
    let found = problems(text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with(expected),
        "expected {expected:?}, got {found:#?}"
    );
}

fn parse_error(text: &str, vars: &[(&str, &str)]) -> String {
    match parse_env(text, vars) {
        Err(err @ ConfigError::Parse { .. }) => err.to_string(),
        Err(other) => panic!("expected a parse error, got: {other}"),
        Ok(_) => panic!("expected a parse error, config was accepted"),
    }
}

fn with_members(text: &str) -> String {
    format!("{text}\n{MEMBERS}")
}

// --- parsing and defaults -------------------------------------------------

#[test]
fn minimal_config_gets_every_default() {
    let c = ok(MEMBERS);
    assert_eq!(c.listen, tcp_listen("127.0.0.1:8100"));
    assert_eq!(c.storage, "1");
    assert_eq!(c.cluster_mode, ClusterMode::Single);
    assert_eq!(c.fail_mode, FailMode::Close);
    assert!(!c.msgpack);
    assert_eq!(c.max_frame_size, 256 * 1024 * 1024);
    assert_eq!(c.spool_dir, std::env::temp_dir());
    assert_eq!(c.timeouts, DEFAULT_TIMEOUTS);
    assert_eq!(c.limits, DEFAULT_LIMITS);
    assert_eq!(c.restart, DEFAULT_RESTART);
    assert_eq!(c.recovery, DEFAULT_RECOVERY);
    assert_eq!(c.slow_member, DEFAULT_SLOW_MEMBER);
    assert_eq!(c.http.listen, "127.0.0.1:8101".parse::<SocketAddr>().unwrap());
    assert_eq!(c.http.token, None);
    assert_eq!(c.log, DEFAULT_LOG);
    assert_eq!(c.members.len(), 2);
    assert_eq!(c.members[0].name, "zeo1");
    assert_eq!(
        c.members[0].address,
        MemberAddress::Tcp {
            host: "127.0.0.1".into(),
            port: 9001
        }
    );
    assert_eq!(c.members[0].restart, DEFAULT_RESTART);
}

#[test]
fn full_config_parses_every_option() {
    let c = ok(r#"
        listen = "0.0.0.0:8200"
        storage = "main"
        cluster_mode = "coop"
        fail_mode = "read-only"
        msgpack = true
        max_frame_size = 1048576
        spool_dir = "/var/spool/zeoraid"

        [timeouts]
        connect = "1s"
        call = "250ms"
        commit = "1m30s"
        pack = "2h"
        transaction = "20s"
        handshake = "3s"

        [limits]
        max_client_connections = 50
        client_backlog = 1048576
        transaction_memory = 0
        explicit_tid_skew = "5m"
        blob_downloads_per_session = 4

        [restart]
        max_restarts = 3
        restart_window = "2m"
        backoff_initial = "100ms"
        backoff_max = "10s"
        jitter = 0.5
        park_probe_interval = "1m"

        [recovery]
        max_transactions_per_second = 100
        max_bytes_per_second = 0
        auto = false
        stable_for = "0s"
        final_step_slice = "20ms"
        final_step_timeout = "3s"

        [slow_member]
        enabled = false
        window = 500
        factor = 3.5
        min_latency = "1s"

        [http]
        listen = "[::1]:8201"
        token = "s3cret"

        [log]
        format = "json"
        level = "trace"

        [[members]]
        name = "a"
        address = "zeo-a.example.com:9001"

        [[members]]
        name = "b"
        address = "/run/zeo/b.sock"
        msgpack = false
        storage = "1"

        [[members]]
        name = "c"
        address = "[::1]:9003"
    "#);
    let storages: Vec<&str> = c.members.iter().map(|m| m.storage.as_str()).collect();
    assert_eq!(
        storages,
        ["main", "1", "main"],
        "members register the array's storage unless told otherwise"
    );
    let msgpack: Vec<bool> = c.members.iter().map(|m| m.msgpack).collect();
    assert_eq!(
        msgpack,
        [true, false, true],
        "members speak M5 unless told not to"
    );
    assert_eq!(c.listen, tcp_listen("0.0.0.0:8200"));
    assert_eq!(c.storage, "main");
    assert_eq!(c.cluster_mode, ClusterMode::Coop);
    assert_eq!(c.fail_mode, FailMode::ReadOnly);
    assert!(c.msgpack);
    assert_eq!(c.max_frame_size, 1_048_576);
    assert_eq!(c.spool_dir, PathBuf::from("/var/spool/zeoraid"));
    assert_eq!(
        c.timeouts,
        Timeouts {
            connect: Duration::from_secs(1),
            call: Duration::from_millis(250),
            commit: Duration::from_secs(90),
            pack: Duration::from_secs(7200),
            transaction: Duration::from_secs(20),
            handshake: Duration::from_secs(3),
        }
    );
    assert_eq!(
        c.limits,
        Limits {
            max_client_connections: 50,
            client_backlog: 1_048_576,
            transaction_memory: 0,
            explicit_tid_skew: Duration::from_secs(300),
            blob_downloads_per_session: 4,
        }
    );
    assert_eq!(
        c.restart,
        RestartPolicy {
            max_restarts: 3,
            restart_window: Duration::from_secs(120),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            jitter: 0.5,
            park_probe_interval: Duration::from_secs(60),
        }
    );
    assert_eq!(
        c.recovery,
        Recovery {
            max_transactions_per_second: NonZeroU64::new(100),
            max_bytes_per_second: None,
            auto: false,
            stable_for: Duration::ZERO,
            final_step_slice: Duration::from_millis(20),
            final_step_timeout: Duration::from_secs(3),
        }
    );
    assert_eq!(
        c.slow_member,
        SlowPolicy {
            enabled: false,
            window: 500,
            factor: 3.5,
            min_latency: Duration::from_secs(1),
        }
    );
    assert_eq!(c.http.listen, "[::1]:8201".parse::<SocketAddr>().unwrap());
    assert_eq!(c.http.token.as_deref(), Some("s3cret"));
    assert_eq!(
        c.log,
        LogSettings {
            format: LogFormat::Json,
            level: LogLevel::Trace
        }
    );
    let addresses: Vec<String> = c.members.iter().map(|m| m.address.to_string()).collect();
    assert_eq!(
        addresses,
        ["zeo-a.example.com:9001", "/run/zeo/b.sock", "[::1]:9003"]
    );
    assert_eq!(
        c.members[1].address,
        MemberAddress::Unix(PathBuf::from("/run/zeo/b.sock"))
    );
    // Every member inherits the global policy when it has no override.
    assert!(c.members.iter().all(|m| m.restart == c.restart));
}

#[test]
fn shipped_quick_start_config_is_valid() {
    let c = ok(include_str!("../../config/zeoraid.toml"));
    assert_eq!(c.listen, tcp_listen("127.0.0.1:8100"));
    assert_eq!(c.http.listen, "127.0.0.1:8101".parse::<SocketAddr>().unwrap());
    assert_eq!(c.storage, "1");
    let addresses: Vec<String> = c.members.iter().map(|m| m.address.to_string()).collect();
    assert_eq!(addresses, ["127.0.0.1:9001", "127.0.0.1:9002"]);
}

/// The reference file documents defaults; this keeps its values and the
/// code's defaults from drifting apart.
#[test]
fn shipped_reference_config_is_valid_and_shows_the_defaults() {
    let c = ok(include_str!("../../config/reference.toml"));
    let d = ok(MEMBERS);
    assert_eq!(c.listen, d.listen);
    assert_eq!(c.storage, d.storage);
    assert_eq!(c.cluster_mode, d.cluster_mode);
    assert_eq!(c.fail_mode, d.fail_mode);
    assert_eq!(c.msgpack, d.msgpack);
    assert_eq!(c.max_frame_size, d.max_frame_size);
    assert_eq!(c.spool_dir, d.spool_dir);
    assert_eq!(c.state_dir, d.state_dir);
    assert_eq!(c.timeouts, d.timeouts);
    assert_eq!(c.limits, d.limits);
    assert_eq!(c.restart, d.restart);
    assert_eq!(c.recovery, d.recovery);
    assert_eq!(c.scrub, d.scrub);
    assert_eq!(c.slow_member, d.slow_member);
    assert_eq!(c.http, d.http);
    assert_eq!(c.zeo_admin_calls, d.zeo_admin_calls);
    assert_eq!(c.log, d.log);
    // Its second member demonstrates the override merge.
    assert_eq!(c.members[0].restart, DEFAULT_RESTART);
    assert_eq!(c.members[1].restart.max_restarts, 10);
    assert_eq!(c.members[1].restart.backoff_max, Duration::from_secs(60));
    assert_eq!(
        c.members[1].restart.backoff_initial,
        DEFAULT_RESTART.backoff_initial
    );
}

#[test]
fn load_reads_the_file_and_names_it_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("z.toml");
    std::fs::write(&path, MEMBERS).unwrap();
    assert_eq!(
        load_with_env(&path, &Environment::default())
            .unwrap()
            .members
            .len(),
        2
    );

    std::fs::write(&path, "cluster_mode = \"x\"\n").unwrap();
    let err = load_with_env(&path, &Environment::default()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("invalid config {}: 2 problems", path.display())),
        "{err}"
    );

    let missing = dir.path().join("missing.toml");
    let err = load_with_env(&missing, &Environment::default()).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(
        err.to_string()
            .starts_with(&format!("cannot read config {}", missing.display())),
        "{err}"
    );
}

#[test]
fn summary_names_members_and_addresses() {
    assert_eq!(
        ok(MEMBERS).summary(),
        "2 members (zeo1 at 127.0.0.1:9001, zeo2 at 127.0.0.1:9002), listen 127.0.0.1:8100, \
         storage \"1\", cluster_mode single, fail_mode close, http 127.0.0.1:8101"
    );
}

#[test]
fn http_debug_redacts_the_token() {
    let c = ok(&with_members("[http]\ntoken = \"s3cret\""));
    let shown = format!("{:?}", c.http);
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("redacted"), "{shown}");
}

// --- serde-level errors ---------------------------------------------------

#[test]
fn unknown_top_level_key_is_an_error() {
    let err = parse_error(&with_members("listne = \"127.0.0.1:1\""), &[]);
    assert!(
        err.starts_with("invalid config test.toml: unknown field `listne`"),
        "{err}"
    );
}

#[test]
fn unknown_nested_key_names_its_table() {
    let err = parse_error(&with_members("[timeouts]\nconect = \"5s\""), &[]);
    assert!(
        err.contains("timeouts: unknown field `conect`, expected one of `connect`"),
        "{err}"
    );
}

#[test]
fn unknown_key_in_member_restart_names_the_member() {
    let text = "[[members]]\nname = \"a\"\naddress = \"h:1\"\n[members.restart]\njiter = 0.1";
    let err = parse_error(text, &[]);
    assert!(err.contains("members[0].restart: unknown field `jiter`"), "{err}");
}

#[test]
fn wrong_type_names_the_key_in_toml_terms() {
    let err = parse_error(&with_members("max_frame_size = \"big\""), &[]);
    assert!(
        err.contains("max_frame_size: invalid type: string \"big\", expected an integer"),
        "{err}"
    );
    let err = parse_error("members = 3", &[]);
    assert!(
        err.contains("members: invalid type: integer `3`, expected an array"),
        "{err}"
    );
    let err = parse_error(&with_members("log = \"debug\""), &[]);
    assert!(
        err.contains("log: invalid type: string \"debug\", expected a table"),
        "{err}"
    );
    let err = parse_error(&with_members("[restart]\njitter = \"x\""), &[]);
    assert!(
        err.contains("restart.jitter: invalid type: string \"x\", expected a number"),
        "{err}"
    );
}

#[test]
fn toml_syntax_error_shows_the_position() {
    let err = parse_error("listen = [", &[]);
    assert!(err.contains("line 1, column"), "{err}");
}

#[test]
fn key_paths_are_dotted_after_indexes() {
    assert_eq!(dotted("members[0]restart"), "members[0].restart");
    assert_eq!(dotted("members[0].restart"), "members[0].restart");
    assert_eq!(dotted("a[1][2]b"), "a[1][2].b");
    assert_eq!(dotted("http"), "http");
}

// --- environment overrides ------------------------------------------------

#[test]
fn env_overrides_file_values_and_nested_keys() {
    let c = parse_env(
        &with_members("listen = \"127.0.0.1:1\"\n[http]\nlisten = \"127.0.0.1:2\""),
        &[
            ("ZEORAID_LISTEN", "127.0.0.1:3"),
            ("ZEORAID_HTTP__LISTEN", "127.0.0.1:4"),
            ("ZEORAID_LOG__LEVEL", "debug"),
            ("ZEORAID_LOG__FORMAT", "json"),
            ("ZEORAID_RESTART__MAX_RESTARTS", "9"),
            ("ZEORAID_RESTART__JITTER", "0.75"),
            ("ZEORAID_TIMEOUTS__CALL", "3s"),
            ("ZEORAID_MSGPACK", "true"),
            ("ZEORAID_STORAGE", "2"),
            ("ZEORAID_HTTP__TOKEN", "t"),
            ("UNRELATED", "x"),
        ],
    )
    .unwrap();
    assert_eq!(c.listen, tcp_listen("127.0.0.1:3"));
    assert_eq!(c.http.listen, "127.0.0.1:4".parse::<SocketAddr>().unwrap());
    assert_eq!(c.log.level, LogLevel::Debug);
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(c.restart.max_restarts, 9);
    assert_eq!(c.restart.jitter, 0.75);
    assert_eq!(c.timeouts.call, Duration::from_secs(3));
    assert!(c.msgpack);
    assert_eq!(c.storage, "2");
    assert_eq!(c.http.token.as_deref(), Some("t"));
    // Members inherit a global policy that came from the environment.
    assert_eq!(c.members[0].restart.max_restarts, 9);
}

#[test]
fn env_overrides_the_slow_member_table() {
    let c = parse_env(
        &with_members("[slow_member]\nfactor = 5.0\nwindow = 200"),
        &[
            ("ZEORAID_SLOW_MEMBER__FACTOR", "20"),
            ("ZEORAID_SLOW_MEMBER__ENABLED", "false"),
            ("ZEORAID_SLOW_MEMBER__MIN_LATENCY", "1s500ms"),
        ],
    )
    .unwrap();
    assert_eq!(
        c.slow_member,
        SlowPolicy {
            enabled: false,
            // Kept from the file: only what a variable names is overridden.
            window: 200,
            factor: 20.0,
            min_latency: Duration::from_millis(1500),
        }
    );
    assert_eq!(
        problems_env(MEMBERS, &[("ZEORAID_SLOW_MEMBER__WINDOW", "5")]),
        ["slow_member.window: must be between 10 and 100000 commits \
          (over fewer, the p99 is just the slowest commit), got 5"]
    );
    let err = parse_error(MEMBERS, &[("ZEORAID_SLOW_MEMBER__FACTOR", "fast")]);
    assert!(
        err.contains("slow_member.factor (from ZEORAID_SLOW_MEMBER__FACTOR): invalid type"),
        "{err}"
    );
    let err = parse_error(MEMBERS, &[("ZEORAID_SLOW_MEMBER__FACTR", "2")]);
    assert!(err.contains("slow_member: unknown field `factr`"), "{err}");
}

#[test]
fn env_variables_of_other_tools_are_ignored() {
    let c = parse_env(
        MEMBERS,
        &[
            ("ZEORAID_PYTHON", "/usr/bin/python3"),
            ("ZEORAID_CONFIG", "elsewhere.toml"),
        ],
    )
    .unwrap();
    assert_eq!(c, ok(MEMBERS));
}

/// `TOP_LEVEL_KEYS` decides which variables reach the `config` crate;
/// serde's own list of `RawConfig` fields is the truth it must match.
#[test]
fn top_level_keys_match_the_raw_config_fields() {
    let err = parse_error("not_a_key = 1", &[]);
    let listed: Vec<String> = raw::TOP_LEVEL_KEYS.iter().map(|k| format!("`{k}`")).collect();
    assert!(
        err.contains(&format!("expected one of {}", listed.join(", "))),
        "{err}"
    );
}

#[test]
fn env_values_are_validated_like_file_values() {
    assert_eq!(
        problems_env(MEMBERS, &[("ZEORAID_HTTP__LISTEN", "nope")]),
        ["http.listen: expected host:port (an IP address or a host name) such as \"127.0.0.1:8101\", got \"nope\""]
    );
}

#[test]
fn empty_env_values_count_as_unset() {
    let c = parse_env(MEMBERS, &[("ZEORAID_LISTEN", ""), ("ZEORAID_LOG", "")]).unwrap();
    assert_eq!(c.listen, tcp_listen("127.0.0.1:8100"));
    assert_eq!(c.log, DEFAULT_LOG);
}

#[test]
fn env_type_error_names_the_variable() {
    let err = parse_error(MEMBERS, &[("ZEORAID_MAX_FRAME_SIZE", "abc")]);
    assert!(
        err.contains("max_frame_size (from ZEORAID_MAX_FRAME_SIZE): invalid type"),
        "{err}"
    );
}

#[test]
fn unknown_env_key_lists_the_overrides_in_effect() {
    let err = parse_error(MEMBERS, &[("ZEORAID_HTTP__LISTN", "127.0.0.1:1")]);
    assert!(err.contains("http: unknown field `listn`"), "{err}");
    assert!(
        err.contains("(environment overrides in effect: ZEORAID_HTTP__LISTN)"),
        "{err}"
    );
}

#[test]
fn zeoraid_log_sets_level_format_or_both() {
    let level = |v: &str| parse_env(MEMBERS, &[("ZEORAID_LOG", v)]).unwrap().log;
    assert_eq!(
        level("debug"),
        LogSettings {
            format: LogFormat::Term,
            level: LogLevel::Debug
        }
    );
    assert_eq!(
        level("json"),
        LogSettings {
            format: LogFormat::Json,
            level: LogLevel::Info
        }
    );
    assert_eq!(
        level("json,debug"),
        LogSettings {
            format: LogFormat::Json,
            level: LogLevel::Debug
        }
    );
    assert_eq!(
        level(" TRACE , term "),
        LogSettings {
            format: LogFormat::Term,
            level: LogLevel::Trace
        }
    );
    assert_eq!(level("warn").level, LogLevel::Warning);
    assert_eq!(level("journald").format, LogFormat::Journald);
}

#[test]
fn zeoraid_log_wins_over_file_and_nested_variables() {
    let c = parse_env(
        &with_members("[log]\nlevel = \"error\"\nformat = \"json\""),
        &[("ZEORAID_LOG__LEVEL", "info"), ("ZEORAID_LOG", "debug")],
    )
    .unwrap();
    assert_eq!(c.log.level, LogLevel::Debug);
    // Only what ZEORAID_LOG names is overridden.
    assert_eq!(c.log.format, LogFormat::Json);
}

#[test]
fn zeoraid_log_rejects_garbage_and_repeats() {
    let found = problems_env(MEMBERS, &[("ZEORAID_LOG", "loud")]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("ZEORAID_LOG: \"loud\" is neither a level"),
        "{found:?}"
    );
    assert_eq!(
        problems_env(MEMBERS, &[("ZEORAID_LOG", "debug,info")]),
        ["ZEORAID_LOG: more than one level in \"debug,info\""]
    );
    assert_eq!(
        problems_env(MEMBERS, &[("ZEORAID_LOG", "json,term")]),
        ["ZEORAID_LOG: more than one format in \"json,term\""]
    );
}

// --- per-member restart overrides -----------------------------------------

#[test]
fn member_restart_overrides_merge_over_the_global_policy() {
    let c = ok(r#"
        [restart]
        max_restarts = 3
        backoff_max = "10s"

        [[members]]
        name = "a"
        address = "h:1"
        [members.restart]
        max_restarts = 7
        jitter = 0.0

        [[members]]
        name = "b"
        address = "h:2"
    "#);
    let a = c.members[0].restart;
    assert_eq!(a.max_restarts, 7);
    assert_eq!(a.jitter, 0.0);
    // Inherited from [restart] ...
    assert_eq!(a.backoff_max, Duration::from_secs(10));
    // ... or from the defaults where [restart] is silent too.
    assert_eq!(a.backoff_initial, DEFAULT_RESTART.backoff_initial);
    assert_eq!(a.restart_window, DEFAULT_RESTART.restart_window);
    assert_eq!(a.park_probe_interval, DEFAULT_RESTART.park_probe_interval);
    assert_eq!(c.members[1].restart, c.restart);
    assert_eq!(c.restart.max_restarts, 3);
}

#[test]
fn member_restart_override_can_set_every_key() {
    let c = ok(r#"
        [[members]]
        name = "a"
        address = "h:1"
        [members.restart]
        max_restarts = 2
        restart_window = "5m"
        backoff_initial = "1s"
        backoff_max = "2s"
        jitter = 1.0
        park_probe_interval = "10s"
    "#);
    assert_eq!(
        c.members[0].restart,
        RestartPolicy {
            max_restarts: 2,
            restart_window: Duration::from_secs(300),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(2),
            jitter: 1.0,
            park_probe_interval: Duration::from_secs(10),
        }
    );
    assert_eq!(c.restart, DEFAULT_RESTART);
}

#[test]
fn member_override_blamed_for_conflict_with_inherited_value() {
    let text = r#"
        [restart]
        backoff_initial = "5s"

        [[members]]
        name = "a"
        address = "h:1"
        [members.restart]
        backoff_max = "1s"
    "#;
    assert_eq!(
        problems(text),
        [
            "members[0].restart.backoff_max: backoff_initial 5s is greater than backoff_max 1s \
          (inherited from restart.backoff_initial)"
        ]
    );
}

#[test]
fn member_override_problems_use_the_member_key_path() {
    let text = r#"
        [[members]]
        name = "a"
        address = "h:1"
        [[members]]
        name = "b"
        address = "h:2"
        [members.restart]
        jitter = 2.0
        max_restarts = 0
        restart_window = "soon"
    "#;
    assert_eq!(
        problems(text),
        [
            "members[1].restart.max_restarts: must be at least 1 (0 would park the member on its first failure)",
            "members[1].restart.jitter: must be between 0.0 and 1.0, got 2",
            "members[1].restart.restart_window: invalid duration \"soon\": expected a number before the unit",
        ]
    );
}

// --- validation rules -----------------------------------------------------

#[test]
fn at_least_one_member() {
    assert_problem("", "members: at least one member is required");
    assert_problem("members = []", "members: at least one member is required");
}

#[test]
fn member_names_are_unique() {
    let text = r#"
        [[members]]
        name = "zeo1"
        address = "h:1"
        [[members]]
        name = "zeo1"
        address = "h:2"
    "#;
    assert_eq!(
        problems(text),
        ["members[1].name: \"zeo1\" is already used by members[0]"]
    );
}

#[test]
fn member_name_is_required_non_empty_and_plain() {
    assert_problem("[[members]]\naddress = \"h:1\"", "members[0].name: missing");
    assert_problem(
        "[[members]]\nname = \"\"\naddress = \"h:1\"",
        "members[0].name: must not be empty",
    );
    assert_problem(
        "[[members]]\nname = \"zeo 1\"\naddress = \"h:1\"",
        "members[0].name: may contain only ASCII letters, digits, '.', '_' and '-', got \"zeo 1\"",
    );
    ok("[[members]]\nname = \"Zeo_1.a-b\"\naddress = \"h:1\"");
}

#[test]
fn member_address_is_required() {
    assert_problem(
        "[[members]]\nname = \"a\"",
        "members[0].address: missing (expected host:port or a Unix socket path)",
    );
}

#[test]
fn bad_member_address_names_index_and_value() {
    let text = r#"
        [[members]]
        name = "zeo1"
        address = "127.0.0.1:9001"
        [[members]]
        name = "zeo2"
        address = "x"
    "#;
    assert_eq!(
        problems(text),
        ["members[1].address: expected host:port or a Unix socket path, got \"x\""]
    );
}

#[test]
fn member_address_forms() {
    let tcp = |host: &str, port| {
        Ok(MemberAddress::Tcp {
            host: host.into(),
            port,
        })
    };
    assert_eq!(parse_member_address("127.0.0.1:9001"), tcp("127.0.0.1", 9001));
    assert_eq!(parse_member_address("[::1]:9001"), tcp("::1", 9001));
    assert_eq!(
        parse_member_address("Zeo1.Example:9001"),
        tcp("zeo1.example", 9001)
    );
    assert_eq!(parse_member_address("localhost:1"), tcp("localhost", 1));
    assert_eq!(
        parse_member_address("/run/zeo.sock"),
        Ok(MemberAddress::Unix("/run/zeo.sock".into()))
    );
    assert_eq!(
        parse_member_address("./zeo.sock"),
        Ok(MemberAddress::Unix("./zeo.sock".into()))
    );
    for bad in ["", "x", "host", ":9001", "host:", "::1:9001", "-h:1", "a b:1"] {
        assert_eq!(
            parse_member_address(bad),
            Err(format!("expected host:port or a Unix socket path, got {bad:?}")),
            "{bad}"
        );
    }
    assert_eq!(
        parse_member_address("host:99999"),
        Err("port must be 1-65535, got \"99999\" in \"host:99999\"".into())
    );
    assert_eq!(
        parse_member_address("host:0"),
        Err("port must be 1-65535, got \"0\" in \"host:0\"".into())
    );
    assert_eq!(
        parse_member_address("127.0.0.1:0"),
        Err("port must be 1-65535, got 0 in \"127.0.0.1:0\"".into())
    );
    let long = format!("/{}", "a".repeat(107));
    assert!(parse_member_address(&long)
        .unwrap_err()
        .starts_with("Unix socket path is 108 bytes, longer than the 107"));
}

#[test]
fn member_addresses_are_unique() {
    let text = r#"
        [[members]]
        name = "a"
        address = "ZEO:9001"
        [[members]]
        name = "b"
        address = "zeo:9001"
    "#;
    assert_eq!(
        problems(text),
        ["members[1].address: \"zeo:9001\" is already used by members[0]"]
    );
    let text = r#"
        [[members]]
        name = "a"
        address = "/run/z.sock"
        [[members]]
        name = "b"
        address = "/run/z.sock"
    "#;
    assert_problem(
        text,
        "members[1].address: \"/run/z.sock\" is already used by members[0]",
    );
}

#[test]
fn member_must_not_be_zeoraid_itself() {
    assert_problem(
        "listen = \"127.0.0.1:9001\"\n[[members]]\nname = \"a\"\naddress = \"127.0.0.1:9001\"",
        "members[0].address: \"127.0.0.1:9001\" is zeoraid's own listen address",
    );
}

#[test]
fn listen_addresses_must_parse() {
    assert_problem(
        &with_members("listen = \"localhost\""),
        "listen: expected host:port (an IP address or a host name) or a Unix socket path such as \"127.0.0.1:8100\", got \"localhost\"",
    );
    assert_problem(
        &with_members("[http]\nlisten = \"8101\""),
        "http.listen: expected host:port (an IP address or a host name) such as \"127.0.0.1:8101\", got \"8101\"",
    );
    let unknown = problems(&with_members("listen = \"no-such-host.invalid:8100\""));
    assert!(
        unknown[0].starts_with("listen: expected host:port (an IP address or a host name) or a Unix socket path such as \"127.0.0.1:8100\", got \"no-such-host.invalid:8100\": "),
        "{unknown:?}"
    );
    // Port 0 (pick a free port) is legitimate for tests.
    ok(&with_members(
        "listen = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"",
    ));
}

#[test]
fn listen_takes_a_host_name_resolved_when_read() {
    let c = parse(&with_members(
        "listen = \"localhost:8100\"\n[http]\nlisten = \"localhost:0\"",
    ))
    .unwrap();
    assert_eq!(c.listen, tcp_listen("127.0.0.1:8100"));
    assert!(c.http.listen.ip().is_loopback());
}

#[test]
fn http_and_zeo_listen_must_differ() {
    assert_problem(
        &with_members("listen = \"127.0.0.1:8100\"\n[http]\nlisten = \"127.0.0.1:8100\""),
        "http.listen: 127.0.0.1:8100 is also the ZEO listen address",
    );
}

#[test]
fn an_invalid_listen_does_not_cause_follow_up_problems() {
    let text = r#"
        listen = "bogus"
        [http]
        listen = "127.0.0.1:8100"
        [[members]]
        name = "a"
        address = "127.0.0.1:8100"
    "#;
    assert_eq!(problems(text).len(), 1, "{:?}", problems(text));
}

#[test]
fn cluster_mode_and_fail_mode_are_enums() {
    assert_problem(
        &with_members("cluster_mode = \"multi\""),
        "cluster_mode: expected \"single\" or \"coop\", got \"multi\"",
    );
    assert_problem(
        &with_members("fail_mode = \"readonly\""),
        "fail_mode: expected \"close\" or \"read-only\", got \"readonly\"",
    );
}

#[test]
fn storage_must_not_be_empty() {
    assert_problem(&with_members("storage = \"\""), "storage: must not be empty");
    assert_problem(
        "[[members]]\nname = \"a\"\naddress = \"127.0.0.1:9001\"\nstorage = \"\"",
        "members[0].storage: must not be empty",
    );
}

#[test]
fn max_frame_size_must_hold_a_blob_chunk() {
    // 60 000 bytes: a 59 000-byte blob chunk would fit, its envelope may not.
    assert_problem(
        &with_members("max_frame_size = 60000"),
        "max_frame_size: must be between 65536 and 4294967295 bytes (at least a ZEO blob chunk \
         with its envelope; frames have a 32-bit length), got 60000",
    );
    assert_eq!(ok(&with_members("max_frame_size = 65536")).max_frame_size, 65_536);
}

#[test]
fn spool_dir_must_not_be_empty() {
    assert_problem(&with_members("spool_dir = \"\""), "spool_dir: must not be empty");
}

#[test]
fn max_frame_size_must_fit_a_zeo_frame() {
    assert_problem(
        &with_members("max_frame_size = 10"),
        "max_frame_size: must be between 65536 and 4294967295 bytes",
    );
    assert_problem(
        &with_members("max_frame_size = 4294967296"),
        "max_frame_size: must be between 65536 and 4294967295 bytes",
    );
    assert_eq!(
        ok(&with_members("max_frame_size = 4294967295")).max_frame_size,
        4_294_967_295
    );
}

#[test]
fn timeouts_must_be_valid_positive_durations() {
    assert_problem(
        &with_members("[timeouts]\ncall = \"5x\""),
        "timeouts.call: invalid duration \"5x\": unknown unit \"x\"",
    );
    assert_problem(
        &with_members("[timeouts]\nconnect = \"30\""),
        "timeouts.connect: invalid duration \"30\": missing unit after 30",
    );
    assert_problem(
        &with_members("[timeouts]\ncommit = \"0s\""),
        "timeouts.commit: must be greater than 0s",
    );
    assert_problem(
        &with_members("[timeouts]\npack = \"0ms\""),
        "timeouts.pack: must be greater than 0s",
    );
}

#[test]
fn explicit_tid_skew_is_a_duration_an_hour_by_default() {
    assert_eq!(ok(MEMBERS).limits.explicit_tid_skew, Duration::from_secs(3600));
    let none = ok(&with_members("[limits]\nexplicit_tid_skew = \"0s\""));
    assert_eq!(none.limits.explicit_tid_skew, Duration::ZERO);
    assert_problem(
        &with_members("[limits]\nexplicit_tid_skew = \"60\""),
        "limits.explicit_tid_skew: invalid duration \"60\": missing unit after 60",
    );
}

#[test]
fn jitter_must_be_a_fraction() {
    for bad in ["-0.1", "1.5", "nan", "inf"] {
        let found = problems(&with_members(&format!("[restart]\njitter = {bad}")));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("restart.jitter: must be between 0.0 and 1.0"),
            "{found:?}"
        );
    }
    ok(&with_members("[restart]\njitter = 0"));
    ok(&with_members("[restart]\njitter = 1"));
}

#[test]
fn backoff_initial_must_not_exceed_backoff_max() {
    assert_problem(
        &with_members("[restart]\nbackoff_initial = \"10s\"\nbackoff_max = \"1s\""),
        "restart.backoff_initial: backoff_initial 10s is greater than backoff_max 1s",
    );
    assert_problem(
        &with_members("[restart]\nbackoff_initial = \"1m\""),
        "restart.backoff_initial: backoff_initial 1m is greater than backoff_max 30s (the default)",
    );
    assert_problem(
        &with_members("[restart]\nbackoff_max = \"100ms\""),
        "restart.backoff_max: backoff_initial 250ms is greater than backoff_max 100ms (the default)",
    );
    ok(&with_members(
        "[restart]\nbackoff_initial = \"1s\"\nbackoff_max = \"1s\"",
    ));
}

#[test]
fn max_restarts_must_be_at_least_one() {
    assert_problem(
        &with_members("[restart]\nmax_restarts = 0"),
        "restart.max_restarts: must be at least 1",
    );
}

#[test]
fn restart_durations_must_be_positive() {
    for key in [
        "restart_window",
        "backoff_initial",
        "backoff_max",
        "park_probe_interval",
    ] {
        assert_problem(
            &with_members(&format!("[restart]\n{key} = \"0s\"")),
            &format!("restart.{key}: must be greater than 0s"),
        );
    }
}

#[test]
fn recovery_zero_rates_mean_unthrottled() {
    let c = ok(&with_members(
        "[recovery]\nmax_transactions_per_second = 0\nmax_bytes_per_second = 1048576",
    ));
    assert_eq!(c.recovery.max_transactions_per_second, None);
    assert_eq!(c.recovery.max_bytes_per_second, NonZeroU64::new(1_048_576));
    assert_problem(
        &with_members("[recovery]\nstable_for = \"later\""),
        "recovery.stable_for: invalid duration \"later\"",
    );
    assert_problem(
        &with_members("[recovery]\nfinal_step_slice = \"0s\""),
        "recovery.final_step_slice: must be greater than 0s",
    );
    assert_problem(
        &with_members("[recovery]\nfinal_step_slice = \"2s\"\nfinal_step_timeout = \"2s\""),
        "recovery.final_step_timeout: must be longer than recovery.final_step_slice",
    );
}

#[test]
fn scrub_is_throttled_and_unscheduled_by_default() {
    let c = ok(MEMBERS);
    assert_eq!(c.scrub, ScrubPolicy::default());
    assert_eq!(c.scrub.interval, None);
    assert_eq!(c.scrub.throttle.max_transactions_per_second, NonZeroU64::new(200));
    assert_eq!(c.scrub.throttle.max_bytes_per_second, NonZeroU64::new(10_000_000));
    let c = ok(&with_members(
        "[scrub]\ninterval = \"7d\"\nmax_transactions_per_second = 0\nmax_bytes_per_second = 1048576",
    ));
    assert_eq!(c.scrub.interval, Some(Duration::from_secs(7 * 86400)));
    assert_eq!(
        c.scrub.throttle.max_transactions_per_second, None,
        "0 = unthrottled"
    );
    assert_eq!(c.scrub.throttle.max_bytes_per_second, NonZeroU64::new(1_048_576));
    assert_eq!(
        ok(&with_members("[scrub]\ninterval = \"0s\"")).scrub.interval,
        None
    );
    assert_problem(
        &with_members("[scrub]\ninterval = \"weekly\""),
        "scrub.interval: invalid duration \"weekly\"",
    );
    let unknown = parse_error(&with_members("[scrub]\nevery = \"1d\""), &[]);
    assert!(unknown.contains("scrub: unknown field `every`"), "{unknown}");
}

#[test]
fn slow_member_defaults_are_conservative() {
    assert_eq!(
        DEFAULT_SLOW_MEMBER,
        SlowPolicy {
            enabled: true,
            window: 100,
            factor: 10.0,
            min_latency: Duration::from_millis(250),
        }
    );
    // Switching it off leaves the other values at their defaults.
    let c = ok(&with_members("[slow_member]\nenabled = false"));
    assert_eq!(
        c.slow_member,
        SlowPolicy {
            enabled: false,
            ..DEFAULT_SLOW_MEMBER
        }
    );
}

#[test]
fn slow_member_window_holds_a_p99() {
    for bad in [0, 9, 100_001, u64::MAX >> 1] {
        assert_eq!(
            problems(&with_members(&format!("[slow_member]\nwindow = {bad}"))),
            [format!(
                "slow_member.window: must be between 10 and 100000 commits \
                 (over fewer, the p99 is just the slowest commit), got {bad}"
            )]
        );
    }
    for good in [10, 100_000] {
        let c = ok(&with_members(&format!("[slow_member]\nwindow = {good}")));
        assert_eq!(c.slow_member.window, good);
    }
    let err = parse_error(&with_members("[slow_member]\nwindow = \"many\""), &[]);
    assert!(
        err.contains("slow_member.window: invalid type: string \"many\", expected an integer"),
        "{err}"
    );
}

#[test]
fn slow_member_factor_is_greater_than_one() {
    for (bad, shown) in [
        ("1.0", "1"),
        ("0.5", "0.5"),
        ("-2", "-2"),
        ("0", "0"),
        ("nan", "NaN"),
        ("inf", "inf"),
    ] {
        assert_eq!(
            problems(&with_members(&format!("[slow_member]\nfactor = {bad}"))),
            [format!(
                "slow_member.factor: must be a number greater than 1.0, got {shown}"
            )],
            "{bad}"
        );
    }
    assert_eq!(
        ok(&with_members("[slow_member]\nfactor = 1.01"))
            .slow_member
            .factor,
        1.01
    );
    // A whole number is a number too.
    assert_eq!(
        ok(&with_members("[slow_member]\nfactor = 4")).slow_member.factor,
        4.0
    );
    let err = parse_error(&with_members("[slow_member]\nfactor = \"x\""), &[]);
    assert!(
        err.contains("slow_member.factor: invalid type: string \"x\", expected a number"),
        "{err}"
    );
}

#[test]
fn slow_member_min_latency_is_a_positive_duration() {
    assert_problem(
        &with_members("[slow_member]\nmin_latency = \"0ms\""),
        "slow_member.min_latency: must be greater than 0s",
    );
    assert_problem(
        &with_members("[slow_member]\nmin_latency = \"250\""),
        "slow_member.min_latency: invalid duration \"250\": missing unit after 250",
    );
    assert_eq!(
        ok(&with_members("[slow_member]\nmin_latency = \"2s\""))
            .slow_member
            .min_latency,
        Duration::from_secs(2)
    );
}

#[test]
fn slow_member_keys_are_checked() {
    let err = parse_error(&with_members("[slow_member]\nwindw = 50"), &[]);
    assert!(
        err.contains("slow_member: unknown field `windw`, expected one of `enabled`, `window`, `factor`, `min_latency`"),
        "{err}"
    );
    // The config crate reads "no", "off" and the like as false; not this.
    let err = parse_error(&with_members("[slow_member]\nenabled = \"maybe\""), &[]);
    assert!(
        err.contains("slow_member.enabled: invalid type: string \"maybe\", expected a boolean"),
        "{err}"
    );
    let err = parse_error(&with_members("slow_member = true"), &[]);
    assert!(
        err.contains("slow_member: invalid type: boolean `true`, expected a table"),
        "{err}"
    );
    // Every problem in the table at once.
    let text = "[slow_member]\nwindow = 1\nfactor = 1.0\nmin_latency = \"0s\"";
    let keys: Vec<String> = problems(&with_members(text))
        .iter()
        .map(|p| p.split(": ").next().unwrap().to_owned())
        .collect();
    assert_eq!(
        keys,
        [
            "slow_member.window",
            "slow_member.factor",
            "slow_member.min_latency"
        ]
    );
}

#[test]
fn token_must_not_be_empty_when_set() {
    for bad in ["\"\"", "\"  \""] {
        assert_problem(
            &with_members(&format!("[http]\ntoken = {bad}")),
            "http.token: must not be empty when set",
        );
    }
}

#[test]
fn zeo_admin_calls_defaults_to_status_and_takes_three_values() {
    assert_eq!(ok(&with_members("")).zeo_admin_calls, ZeoAdminCalls::Status);
    for (text, mode) in [
        ("status", ZeoAdminCalls::Status),
        ("all", ZeoAdminCalls::All),
        ("none", ZeoAdminCalls::None),
    ] {
        let config = ok(&with_members(&format!("zeo_admin_calls = \"{text}\"")));
        assert_eq!(config.zeo_admin_calls, mode);
    }
    assert_problem(
        &with_members("zeo_admin_calls = \"yes\""),
        "zeo_admin_calls: expected \"status\", \"all\" or \"none\", got \"yes\"",
    );
}

#[test]
fn token_for_reads_needs_a_token() {
    assert!(!ok(&with_members("")).http.token_for_reads);
    let c = ok(&with_members("[http]\ntoken = \"t\"\ntoken_for_reads = true"));
    assert!(c.http.token_for_reads);
    assert_problem(
        &with_members("[http]\ntoken_for_reads = true"),
        "http.token_for_reads: needs http.token",
    );
}

#[test]
fn log_format_and_level_are_checked() {
    assert_problem(
        &with_members("[log]\nformat = \"xml\""),
        "log.format: expected \"term\", \"json\" or \"journald\", got \"xml\"",
    );
    assert_problem(
        &with_members("[log]\nlevel = \"verbose\""),
        "log.level: expected \"trace\", \"debug\", \"info\", \"warning\", \"error\" or \"critical\", got \"verbose\"",
    );
    for (text, level) in [
        ("trace", LogLevel::Trace),
        ("debug", LogLevel::Debug),
        ("info", LogLevel::Info),
        ("warning", LogLevel::Warning),
        ("warn", LogLevel::Warning),
        ("error", LogLevel::Error),
        ("critical", LogLevel::Critical),
    ] {
        let c = ok(&with_members(&format!("[log]\nlevel = \"{text}\"")));
        assert_eq!(c.log.level, level, "{text}");
    }
}

#[test]
fn client_limits_refuse_zero_connections_and_a_backlog_in_the_wrong_unit() {
    let found = problems(&with_members(
        "[limits]\nmax_client_connections = 0\nclient_backlog = 16\n[timeouts]\ntransaction = \"0s\"",
    ));
    let keys: Vec<&str> = found.iter().map(|p| p.split(": ").next().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "timeouts.transaction",
            "limits.max_client_connections",
            "limits.client_backlog"
        ]
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"
        listen = "nope"
        cluster_mode = "multi"
        fail_mode = "readonly"
        [timeouts]
        call = "5x"
        [restart]
        jitter = 1.5
        [slow_member]
        factor = 0.5
        [http]
        token = ""
        [log]
        level = "loud"
        [[members]]
        name = "zeo1"
        address = "127.0.0.1:9001"
        [[members]]
        name = "zeo1"
        address = "x"
    "#;
    let found = problems(text);
    let keys: Vec<&str> = found.iter().map(|p| p.split(": ").next().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "listen",
            "cluster_mode",
            "fail_mode",
            "timeouts.call",
            "restart.jitter",
            "slow_member.factor",
            "http.token",
            "log.level",
            "members[1].name",
            "members[1].address",
        ]
    );
    let err = parse(text).unwrap_err().to_string();
    assert!(
        err.starts_with("invalid config test.toml: 10 problems\n  listen: "),
        "{err}"
    );
}

#[test]
fn cluster_defaults_and_env_overrides() {
    let text = format!("[cluster]\netcd = [\"http://127.0.0.1:2379\"]\n{MEMBERS}");
    let c = parse_env(&text, &[("ZEORAID_CLUSTER__NAME", "zr2")]).unwrap();
    let cluster = c.cluster.expect("[cluster] given");
    assert_eq!(cluster.etcd, ["http://127.0.0.1:2379"]);
    assert_eq!(cluster.name, "zr2");
    assert_eq!(cluster.lease_ttl, std::time::Duration::from_secs(5));
    assert_eq!(cluster.prefix, "/zeoraid");
    assert!(ok(MEMBERS).cluster.is_none(), "no [cluster]: alone");
}

#[test]
fn cluster_settings_are_validated() {
    let text = format!(
        "[cluster]\netcd = [\"https://e:2379\", \"http://\"]\nlease_ttl = \"1500ms\"\nname = \" \"\nprefix = \"/a/\"\n{MEMBERS}"
    );
    let found = problems(&text);
    for key in [
        "cluster.etcd: expected http://host:port, got \"https://e:2379\"",
        "cluster.etcd: expected http://host:port, got \"http://\"",
        "cluster.lease_ttl: must be whole seconds, at least 2s",
        "cluster.name: must not be empty",
        "cluster.prefix: must be a non-empty key prefix",
    ] {
        assert!(found.iter().any(|p| p.starts_with(key)), "{key} not in {found:?}");
    }
    let none = format!("[cluster]\n{MEMBERS}");
    assert_problem(&none, "cluster.etcd: must list at least one etcd client URL");
}

// --- TLS ------------------------------------------------------------------

#[test]
fn tls_tables_name_their_files_and_default_the_server_name_to_the_host() {
    let c = ok(r#"
        [tls]
        certificate = "/etc/zeoraid/server.pem"
        key = "/etc/zeoraid/server.key"
        client_ca = "/etc/zeoraid/clients.pem"
        [[members]]
        name = "zeo1"
        address = "zeo1.example:8100"
        [members.tls]
        ca = "/etc/zeoraid/ca.pem"
        certificate = "/etc/zeoraid/client.pem"
        key = "/etc/zeoraid/client.key"
        [[members]]
        name = "zeo2"
        address = "10.0.0.2:8100"
        [members.tls]
        ca = "/etc/zeoraid/ca.pem"
        server_name = "zeo2.example"
        [[members]]
        name = "zeo3"
        address = "10.0.0.3:8100"
    "#);
    let front = c.tls.expect("[tls]");
    assert_eq!(
        front.identity.certificate,
        PathBuf::from("/etc/zeoraid/server.pem")
    );
    assert_eq!(front.client_ca, Some(PathBuf::from("/etc/zeoraid/clients.pem")));
    let zeo1 = c.members[0].tls.as_ref().expect("zeo1 speaks TLS");
    assert_eq!(zeo1.server_name, "zeo1.example");
    assert_eq!(
        zeo1.identity.as_ref().map(|i| i.key.clone()),
        Some(PathBuf::from("/etc/zeoraid/client.key"))
    );
    let zeo2 = c.members[1].tls.as_ref().expect("zeo2 speaks TLS");
    assert_eq!(zeo2.server_name, "zeo2.example");
    assert_eq!(zeo2.identity, None);
    assert_eq!(c.members[2].tls, None);
    assert_eq!(ok(MEMBERS).tls, None);
}

#[test]
fn tls_tables_report_what_is_missing_or_incoherent() {
    assert_problem(
        &with_members("[tls]\ncertificate = \"s.pem\""),
        "tls.key: missing",
    );
    assert_problem(
        "[[members]]\nname = \"a\"\naddress = \"127.0.0.1:9001\"\n[members.tls]\ncertificate = \"c.pem\"\nkey = \"c.key\"",
        "members[0].tls.ca: missing",
    );
    assert_problem(
        "[[members]]\nname = \"a\"\naddress = \"127.0.0.1:9001\"\n[members.tls]\nca = \"ca.pem\"\nkey = \"c.key\"",
        "members[0].tls.certificate: missing",
    );
    assert_problem(
        "[[members]]\nname = \"a\"\naddress = \"/run/zeo.sock\"\n[members.tls]\nca = \"ca.pem\"",
        "members[0].tls.server_name: required for a member on a Unix socket",
    );
    assert_problem(
        "[[members]]\nname = \"a\"\naddress = \"127.0.0.1:9001\"\n[members.tls]\nca = \"ca.pem\"\nserver_name = \"not a name\"",
        "members[0].tls.server_name:",
    );
}

#[test]
fn relative_tls_paths_belong_to_the_configuration_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("z.toml");
    let text = "[tls]\ncertificate = \"s.pem\"\nkey = \"/abs/s.key\"\n\
                [[members]]\nname = \"a\"\naddress = \"127.0.0.1:9001\"\n[members.tls]\nca = \"ca.pem\"\n";
    std::fs::write(&path, text).unwrap();
    let c = load_with_env(&path, &Environment::default()).unwrap();
    let front = c.tls.expect("[tls]");
    assert_eq!(front.identity.certificate, dir.path().join("s.pem"));
    assert_eq!(front.identity.key, PathBuf::from("/abs/s.key"));
    assert_eq!(c.members[0].tls.as_ref().unwrap().ca, dir.path().join("ca.pem"));
}

#[test]
fn blob_downloads_per_session_is_sixteen_by_default_and_at_least_one() {
    assert_eq!(ok(MEMBERS).limits.blob_downloads_per_session, 16);
    assert_problem(
        &with_members("[limits]\nblob_downloads_per_session = 0"),
        "limits.blob_downloads_per_session: must be between 1 and 1024, got 0",
    );
}

#[test]
fn listen_takes_a_unix_socket_path() {
    let c = ok(&with_members(
        "listen = \"/run/zeoraid/zeo.sock\"\nlisten_mode = \"0660\"",
    ));
    assert_eq!(
        c.listen,
        ListenAddress::Unix(PathBuf::from("/run/zeoraid/zeo.sock"))
    );
    assert_eq!(c.listen_mode, Some(0o660));
    assert!(
        c.summary().contains("listen /run/zeoraid/zeo.sock,"),
        "{}",
        c.summary()
    );
    let relative = ok(&with_members("listen = \"./zeo.sock\""));
    assert_eq!(relative.listen, ListenAddress::Unix(PathBuf::from("./zeo.sock")));
    assert_eq!(relative.listen_mode, None, "default: as the umask leaves it");
    let from_env = parse_env(
        MEMBERS,
        &[("ZEORAID_LISTEN", "/tmp/z.sock"), ("ZEORAID_LISTEN_MODE", "600")],
    )
    .unwrap();
    assert_eq!(from_env.listen, ListenAddress::Unix(PathBuf::from("/tmp/z.sock")));
    assert_eq!(from_env.listen_mode, Some(0o600));
}

#[test]
fn a_unix_listen_path_is_checked() {
    let long = format!("/{}", "s".repeat(107));
    assert_problem(
        &with_members(&format!("listen = \"{long}\"")),
        &format!("listen: Unix socket path is 108 bytes, longer than the 107 the kernel accepts: \"{long}\""),
    );
    assert_problem(
        "listen = \"/tmp/zeo.sock\"\n[[members]]\nname = \"a\"\naddress = \"/tmp/zeo.sock\"",
        "members[0].address: \"/tmp/zeo.sock\" is zeoraid's own listen address",
    );
    // A member on another socket, and an HTTP port, are fine beside it.
    ok("listen = \"/tmp/zeo.sock\"\n[http]\nlisten = \"127.0.0.1:8100\"\n[[members]]\nname = \"a\"\naddress = \"/tmp/member.sock\"");
}

#[test]
fn listen_mode_is_octal_and_only_for_a_unix_socket() {
    for bad in ["", "0680", "1777", "rw-rw----", "-1"] {
        assert_problem(
            &with_members(&format!("listen = \"/tmp/z.sock\"\nlisten_mode = \"{bad}\"")),
            &format!("listen_mode: expected octal permission bits such as \"0660\", got \"{bad}\""),
        );
    }
    assert_problem(
        &with_members("listen = \"127.0.0.1:8100\"\nlisten_mode = \"0660\""),
        "listen_mode: only applies when listen is a Unix socket path",
    );
    assert_eq!(
        ok(&with_members("listen = \"/tmp/z.sock\"\nlisten_mode = \"0777\"")).listen_mode,
        Some(0o777)
    );
}

#[test]
fn tls_on_a_unix_listen_path_is_refused() {
    let text = with_members("listen = \"/tmp/z.sock\"\n[tls]\ncertificate = \"s.pem\"\nkey = \"s.key\"");
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("tls: zeoraid does not speak TLS on a Unix socket listen path"),
        "{found:?}"
    );
}

#[test]
fn a_changed_listen_or_listen_mode_needs_a_restart() {
    let old = ok(&with_members("listen = \"/tmp/z.sock\""));
    let moved = ok(&with_members("listen = \"127.0.0.1:8100\""));
    let chmod = ok(&with_members("listen = \"/tmp/z.sock\"\nlisten_mode = \"0600\""));
    assert_eq!(crate::reload::needs_restart(&old, &moved), ["listen"]);
    assert_eq!(crate::reload::needs_restart(&old, &chmod), ["listen_mode"]);
}
