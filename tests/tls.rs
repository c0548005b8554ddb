//! TLS on both sides: ZEO clients reach zeoraid over TLS (`[tls]`, client
//! certificates with `client_ca`), zeoraid reaches runzeo members that
//! have an `<ssl>` section (`[members.tls]`), and SIGHUP puts renewed
//! certificates in force without dropping a connected client.
//!
//! Every certificate is made by the test ([`Pki`]); every client is the
//! project Python's (`ZEO.ClientStorage` with an `ssl` context, or a bare
//! `ssl` socket to see which certificate the server presents).

mod common;

use common::array::{Array, ArrayOptions, LOG_WAIT};
use common::faults::wait_until;
use common::http::get;
use common::tls::{probe, tls_table, zeo_commit, Issued, Pki, ZeoClient};
use serde_json::Value as Json;
use std::fs;
use std::time::Duration;

/// How long members may take to come up (optimal) or be judged.
const STATUS_WAIT: Duration = Duration::from_secs(30);

/// The `[tls]` table of a front that requires client certificates.
fn front_table(pki: &Pki, server: &Issued) -> String {
    tls_table("[tls]", "client_ca", Some(pki.ca_path()), Some(server))
}

/// `members` runzeo servers speaking TLS only, with a certificate for
/// 127.0.0.1, each requiring a client certificate from `pki`; zeoraid's
/// `[members.tls]` trusts `member_ca`.
fn tls_members(options: &mut ArrayOptions, pki: &Pki, member_ca: &Pki) {
    tls_members_named(options, pki, member_ca, &["127.0.0.1"]);
}

fn tls_members_named(options: &mut ArrayOptions, pki: &Pki, member_ca: &Pki, names: &[&str]) {
    let (client, _) = pki.issue("zeoraid-client", "zeoraid", &[]);
    options.member_options = options
        .member_options
        .clone()
        .ssl(pki.runzeo_ssl("runzeo", names, pki));
    options.member_table = tls_table("[members.tls]", "ca", Some(member_ca.ca_path()), Some(&client));
}

fn member(array: &Array, name: &str) -> Json {
    let details = get(array.http_addr(), "/details").json();
    details["members"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["name"] == name).cloned())
        .unwrap_or_else(|| panic!("no member {name} in {details}"))
}

fn array_status(array: &Array) -> Json {
    get(array.http_addr(), "/status").json()["status"].clone()
}

fn wait_optimal(array: &Array) {
    assert!(
        wait_until(STATUS_WAIT, || array_status(array) == "optimal"),
        "the TLS members never became optimal: {}\n{}",
        member(array, "zeo1"),
        array.context()
    );
}

/// Two TLS members and a TLS front requiring client certificates, all
/// from `pki`, started and optimal; the front's certificate is named
/// `front_name`. Returns the array, the front's certificate and serial,
/// and a client's certificate.
fn tls_everywhere(pki: &Pki, front_name: &str) -> (Array, Issued, String, Issued) {
    let (server, serial) = pki.issue("zeoraid", front_name, &["127.0.0.1"]);
    let (client, _) = pki.issue("app", "app", &[]);
    let mut options = ArrayOptions::new(2);
    tls_members(&mut options, pki, pki);
    options.top_level.push(front_table(pki, &server));
    let array = Array::start_with(options);
    wait_optimal(&array);
    (array, server, serial, client)
}

#[test]
fn a_zeo_client_commits_and_reads_through_tls_on_both_sides() {
    let pki = Pki::new("zeoraid test CA");
    let (array, _, _, client) = tls_everywhere(&pki, "zeoraid");

    let root = zeo_commit(array.addr(), pki.ca_path(), Some(&client), "greeting", "over TLS");
    assert_eq!(root["greeting"], "over TLS", "{root}");
    // The commit reached both members, over their TLS connections.
    assert_eq!(array_status(&array), "optimal");
    let again = zeo_commit(array.addr(), pki.ca_path(), Some(&client), "second", "commit");
    assert_eq!(again["greeting"], "over TLS", "{again}");
    assert_eq!(again["second"], "commit", "{again}");
}

#[test]
fn a_client_without_a_certificate_is_refused_when_client_ca_is_set() {
    let pki = Pki::new("zeoraid test CA");
    let stranger = Pki::new("another CA");
    let (server, _) = pki.issue("zeoraid", "zeoraid", &["127.0.0.1"]);
    let (client, _) = pki.issue("app", "app", &[]);
    let (foreign, _) = stranger.issue("foreign", "foreign", &[]);
    let mut options = ArrayOptions::new(1);
    options.top_level.push(front_table(&pki, &server));
    let array = Array::start_with(options);

    let admitted = probe(array.addr(), pki.ca_path(), Some(&client));
    assert_eq!(admitted["announced"], true, "{admitted}");

    let since = array.log_mark();
    let anonymous = probe(array.addr(), pki.ca_path(), None);
    assert_ne!(anonymous["announced"], true, "{anonymous}");
    let line = array.wait_for_log(since, LOG_WAIT, "client TLS handshake failed", |l| {
        l["msg"] == "client TLS handshake failed"
    });
    assert!(
        line["error"].as_str().unwrap_or_default().contains("certificate"),
        "{line}"
    );

    let signed_elsewhere = probe(array.addr(), pki.ca_path(), Some(&foreign));
    assert_ne!(signed_elsewhere["announced"], true, "{signed_elsewhere}");
}

#[test]
fn a_member_behind_a_certificate_of_another_ca_is_degraded_with_the_tls_error() {
    let pki = Pki::new("zeoraid test CA");
    let wrong = Pki::new("not the members' CA");
    let mut options = ArrayOptions::new(1);
    tls_members(&mut options, &pki, &wrong);
    let since_start = 0;
    let array = Array::start_with(options);

    let mut seen = Json::Null;
    let degraded = wait_until(STATUS_WAIT, || {
        seen = member(&array, "zeo1");
        seen["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("TLS handshake failed")
    });
    assert!(degraded, "no TLS reason for zeo1: {seen}\n{}", array.context());
    assert!(
        seen["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("UnknownIssuer"),
        "{seen}"
    );
    assert_ne!(seen["state"], "optimal", "{seen}");
    let line = array.wait_for_log(since_start, LOG_WAIT, "a member failure naming TLS", |l| {
        l.to_string().contains("TLS handshake failed") && l["member"] == "zeo1"
    });
    assert!(line.to_string().contains("UnknownIssuer"), "{line}");
}

#[test]
fn sighup_puts_renewed_certificates_in_force_without_dropping_a_client() {
    let pki = Pki::new("zeoraid test CA");
    let (array, server, first_serial, client) = tls_everywhere(&pki, "zeoraid-first");

    let since_connect = array.log_mark();
    let mut connected = ZeoClient::connect(array.addr(), pki.ca_path(), Some(&client));
    let hello = array.wait_for_log(since_connect, LOG_WAIT, "client connected", |l| {
        l["msg"] == "client connected"
    });
    let peer = hello["peer"].clone();
    connected.commit("before", "reload");
    let seen = probe(array.addr(), pki.ca_path(), Some(&client));
    assert_eq!(seen["subject"], "zeoraid-first", "{seen}");
    assert_eq!(seen["serial"], first_serial.as_str(), "{seen}");

    // Renewed in place, as a certificate manager does.
    let (_, renewed_serial) = pki.issue("zeoraid", "zeoraid-renewed", &["127.0.0.1"]);
    let (_, member_client_serial) = pki.issue("zeoraid-client", "zeoraid", &[]);
    let since = array.log_mark();
    array.signal_zeoraid(libc::SIGHUP);
    array.wait_for_log(since, LOG_WAIT, "reload applied", |l| {
        l["msg"] == "reload applied"
    });
    connected.commit("after", "reload");
    let seen = probe(array.addr(), pki.ca_path(), Some(&client));
    assert_eq!(seen["subject"], "zeoraid-renewed", "{seen}");
    assert_eq!(seen["serial"], renewed_serial.as_str(), "{seen}");
    assert_ne!(renewed_serial, member_client_serial);

    // A key that does not match the certificate: the reload is rejected,
    // the renewed certificate stays in force.
    let (other, _) = pki.issue("unrelated", "unrelated", &[]);
    fs::copy(&other.key, &server.key).expect("replace the key");
    let since = array.log_mark();
    array.signal_zeoraid(libc::SIGHUP);
    let rejected = array.wait_for_log(since, LOG_WAIT, "reload rejected", |l| {
        l["msg"] == "reload rejected"
    });
    let why = rejected["error"].as_str().unwrap_or_default();
    assert!(
        why.contains("[tls]") && why.contains(&*server.key.display().to_string()),
        "{rejected}"
    );
    let seen = probe(array.addr(), pki.ca_path(), Some(&client));
    assert_eq!(seen["serial"], renewed_serial.as_str(), "{seen}");
    connected.commit("after", "rejected reload");

    // The client kept its one connection throughout.
    let closed = array.find_log(since_connect, |l| {
        l["peer"] == peer && l["msg"] == "closing client connection"
    });
    assert!(closed.is_none(), "the client was disconnected: {closed:?}");
    assert_eq!(array_status(&array), "optimal");
}

/// A member named by host name is resolved at connect time, and its
/// certificate is checked against that name (`server_name` left out): its
/// certificate carries `localhost` only, not the address it resolves to.
#[test]
fn a_member_named_by_host_name_is_verified_against_that_name() {
    let pki = Pki::new("zeoraid test CA");
    let mut options = ArrayOptions::new(1);
    tls_members_named(&mut options, &pki, &pki, &["localhost"]);
    options.members_by_host_name = true;
    let array = Array::start_with(options);
    wait_optimal(&array);
    let zeo1 = member(&array, "zeo1");
    assert!(
        zeo1["address"]
            .as_str()
            .unwrap_or_default()
            .starts_with("localhost:"),
        "{zeo1}"
    );
}

/// `[members.tls]` files are re-read on SIGHUP too: the members stay
/// connected (commits go on), and a member's next connection uses the new
/// CA, here one that did not sign the member's certificate.
#[test]
fn a_members_reloaded_ca_applies_to_its_next_connection_only() {
    let pki = Pki::new("zeoraid test CA");
    let wrong = Pki::new("not the members' CA");
    let trusted = pki.dir().join("trusted.pem");
    fs::copy(pki.ca_path(), &trusted).expect("copy the CA");
    let mut options = ArrayOptions::new(2);
    tls_members(&mut options, &pki, &pki);
    let (client, _) = pki.issue("zeoraid-client", "zeoraid", &[]);
    options.member_table = tls_table("[members.tls]", "ca", Some(&trusted), Some(&client));
    let mut array = Array::start_with(options);
    wait_optimal(&array);

    fs::copy(wrong.ca_path(), &trusted).expect("replace the CA");
    let since = array.log_mark();
    array.signal_zeoraid(libc::SIGHUP);
    array.wait_for_log(since, LOG_WAIT, "reload applied", |l| {
        l["msg"] == "reload applied"
    });
    array.commit_probe();
    assert_eq!(array_status(&array), "optimal");

    let since = array.log_mark();
    array.members_mut()[0].restart();
    let line = array.wait_for_log(since, LOG_WAIT, "zeo1's reconnect failing on TLS", |l| {
        l["member"] == "zeo1" && l.to_string().contains("TLS handshake failed")
    });
    assert!(line.to_string().contains("UnknownIssuer"), "{line}");
    let zeo2 = member(&array, "zeo2");
    assert_eq!(zeo2["state"], "optimal", "{zeo2}");
}
