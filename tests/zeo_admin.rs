//! The `raid_*` management calls on the ZEO port against real `runzeo`
//! members, in each `zeo_admin_calls` mode, and `[http] token_for_reads`.
//!
//! The ZEO port has no authentication: by default (`"status"`) a client
//! may read the array's status but not disable, recover or reload;
//! `"all"` is gocept.zeoraid's behaviour, with the HTTP token as the last
//! argument of the mutating calls when one is set; `"none"` answers no
//! `raid_*` call. A refusal never touches the members.

mod common;

use common::array::{Array, ArrayOptions};
use common::http::request;
use common::rawclient::RawClient;
use zeo::exceptions::ZeoError;
use zeo::methods::Request;
use zeo::Value;

const TOKEN: &str = "s3cret-t0ken";

fn start(zeo_admin_calls: Option<&str>, token: Option<&str>) -> Array {
    let mut options = ArrayOptions::new(2);
    if let Some(mode) = zeo_admin_calls {
        options.top_level.push(format!("zeo_admin_calls = \"{mode}\""));
    }
    options.http_token = token.map(str::to_string);
    Array::start_with(options)
}

fn call(client: &mut RawClient, name: &str, args: &[&str]) -> Result<Value, ZeoError> {
    client.call_value(name, Value::tuple(args.iter().map(|a| Value::str(*a))))
}

/// The call is refused with a `RuntimeError` whose message holds `expected`.
fn assert_refused(client: &mut RawClient, name: &str, args: &[&str], expected: &str) {
    match call(client, name, args) {
        Err(ZeoError::Other { class, payload }) => {
            assert_eq!(class, "builtins.RuntimeError", "{name}{args:?}: {payload:?}");
            let message = match &payload {
                Value::Tuple(items) => items.first().and_then(Value::as_str).unwrap_or_default(),
                _ => "",
            };
            assert!(message.contains(expected), "{name}{args:?}: {payload:?}");
        }
        other => panic!("{name}{args:?} was not refused: {other:?}"),
    }
}

/// Both members are still optimal and the connection still serves.
fn assert_untouched(array: &Array, client: &mut RawClient) {
    let status = array.raid_status();
    assert_eq!(
        status["status"], "optimal",
        "a refused call changed the array: {status}"
    );
    assert!(client.call(Request::Ping).is_ok());
}

#[test]
fn status_by_default_answers_the_reads_and_refuses_the_mutating_calls() {
    let array = start(None, None);
    let mut client = array.client();
    assert_eq!(
        call(&mut client, "raid_status", &[]).unwrap(),
        Value::str("optimal")
    );
    assert!(matches!(
        call(&mut client, "raid_details", &[]),
        Ok(Value::Dict(_))
    ));
    assert_refused(
        &mut client,
        "raid_disable",
        &["zeo2"],
        "zeo_admin_calls = \"status\"",
    );
    assert_refused(
        &mut client,
        "raid_recover",
        &["zeo2"],
        "zeo_admin_calls = \"status\"",
    );
    assert_refused(&mut client, "raid_reload", &[], "zeo_admin_calls = \"status\"");
    // The tests' panic trigger is an unknown name unless ZEORAID_TEST_PANICS=1.
    match call(&mut client, "raid_panic_for_tests", &[]) {
        Err(ZeoError::Other { class, .. }) => assert_eq!(class, "builtins.AttributeError"),
        other => panic!("raid_panic_for_tests: {other:?}"),
    }
    assert_untouched(&array, &mut client);
}

#[test]
fn none_answers_no_raid_call() {
    let array = start(Some("none"), None);
    let mut client = array.client();
    for (name, args) in [
        ("raid_status", &[][..]),
        ("raid_details", &[][..]),
        ("raid_disable", &["zeo2"][..]),
        ("raid_reload", &[][..]),
    ] {
        assert_refused(&mut client, name, args, "zeo_admin_calls = \"none\"");
    }
    assert_untouched(&array, &mut client);
}

#[test]
fn all_without_a_token_is_gocept_compatible() {
    let array = start(Some("all"), None);
    let mut client = array.client();
    assert_eq!(
        call(&mut client, "raid_disable", &["zeo2"]).unwrap(),
        Value::str("disabled 'zeo2'")
    );
    assert_eq!(
        call(&mut client, "raid_status", &[]).unwrap(),
        Value::str("degraded")
    );
}

#[test]
fn all_with_a_token_needs_it_as_the_last_argument() {
    let array = start(Some("all"), Some(TOKEN));
    let mut client = array.client();
    // Reads carry no token.
    assert_eq!(
        call(&mut client, "raid_status", &[]).unwrap(),
        Value::str("optimal")
    );
    for wrong in [
        &["zeo2"][..],
        &["zeo2", "wrong"][..],
        &["zeo2", "s3cret-t0ke"][..],
    ] {
        assert_refused(&mut client, "raid_disable", wrong, "token");
    }
    assert_refused(&mut client, "raid_reload", &[], "token");
    assert_untouched(&array, &mut client);
    assert!(
        array.log_lines().iter().all(|l| !l.to_string().contains(TOKEN)),
        "the token is in the log"
    );

    assert_eq!(
        call(&mut client, "raid_reload", &[TOKEN]).unwrap(),
        Value::str("reloaded: added [], removed [], replaced [], needs restart []")
    );
    assert_eq!(
        call(&mut client, "raid_disable", &["zeo2", TOKEN]).unwrap(),
        Value::str("disabled 'zeo2'")
    );
    assert_eq!(
        call(&mut client, "raid_status", &[]).unwrap(),
        Value::str("degraded")
    );
}

#[test]
fn token_for_reads_puts_the_reads_behind_the_token_but_not_the_probes() {
    let mut options = ArrayOptions::new(2);
    options.http_token = Some(TOKEN.to_string());
    options.http_token_for_reads = true;
    let array = Array::start_with(options);
    let addr = array.http_addr();
    for path in ["/status", "/details", "/actors", "/metrics"] {
        assert_eq!(
            request(addr, "GET", path, None).code,
            401,
            "{path} without the token"
        );
        assert_eq!(
            request(addr, "GET", path, Some("wrong")).code,
            401,
            "{path}, wrong token"
        );
        assert_eq!(
            request(addr, "GET", path, Some(TOKEN)).code,
            200,
            "{path} with the token"
        );
    }
    assert_eq!(request(addr, "GET", "/healthz", None).code, 200);
    let ready = request(addr, "GET", "/readyz", None);
    assert_eq!(ready.code, 200, "{}", ready.body);
    let body: serde_json::Value = serde_json::from_str(&ready.body).unwrap();
    assert_eq!(body["ready"], true, "{body}");
    assert!(body["summary"].is_null(), "the summary names members: {body}");
}
