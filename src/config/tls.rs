//! `[tls]` and `[members.tls]`: which files, checked for presence and
//! coherence here; the files themselves are read by the daemon when it
//! starts and on every reload (`crate::tls`), so a certificate renewed on
//! disk is picked up without restarting.

use super::model::{Config, FrontTls, Identity, MemberAddress, MemberTlsFiles};
use super::raw::{RawMemberTls, RawTls};
use super::validate::Problems;
use std::path::{Path, PathBuf};

pub(super) fn front(p: &mut Problems, raw: RawTls) -> FrontTls {
    let identity = required_identity(p, "tls", raw.certificate, raw.key);
    FrontTls {
        identity,
        client_ca: raw.client_ca,
    }
}

/// `address` is the member's, when valid: its host is the default
/// `server_name`.
pub(super) fn member(
    p: &mut Problems,
    prefix: &str,
    raw: RawMemberTls,
    address: Option<&MemberAddress>,
) -> MemberTlsFiles {
    let key = format!("{prefix}.tls");
    let ca = raw.ca.unwrap_or_else(|| {
        p.push(
            format!("{key}.ca"),
            "missing (the CA that signed the member's certificate)",
        );
        PathBuf::new()
    });
    let identity = match (raw.certificate, raw.key) {
        (None, None) => None,
        (certificate, key_file) => Some(required_identity(p, &key, certificate, key_file)),
    };
    let server_name = match (raw.server_name, address) {
        (Some(name), _) => name,
        (None, Some(MemberAddress::Tcp { host, .. })) => host.clone(),
        (None, Some(MemberAddress::Unix(_))) => {
            p.push(
                format!("{key}.server_name"),
                "required for a member on a Unix socket (the name its certificate carries)",
            );
            String::new()
        }
        // The address problem is reported already.
        (None, None) => String::new(),
    };
    if !server_name.is_empty() {
        if let Err(why) = zeoraid_actors::tls::server_name(&server_name) {
            p.push(format!("{key}.server_name"), why);
        }
    }
    MemberTlsFiles {
        ca,
        identity,
        server_name,
    }
}

/// A certificate and its key, both required in the table `key`.
fn required_identity(
    p: &mut Problems,
    key: &str,
    certificate: Option<PathBuf>,
    key_file: Option<PathBuf>,
) -> Identity {
    let mut required = |name: &str, value: Option<PathBuf>, what: &str| {
        value.unwrap_or_else(|| {
            p.push(format!("{key}.{name}"), format!("missing ({what})"));
            PathBuf::new()
        })
    };
    Identity {
        certificate: required("certificate", certificate, "a PEM certificate chain, with key"),
        key: required("key", key_file, "the PEM private key of certificate"),
    }
}

/// Relative TLS paths belong to the configuration, as `state_dir` does.
pub(super) fn resolve_paths(config: &mut Config, base: &Path) {
    let resolve = |path: &mut PathBuf| {
        if path.is_relative() {
            *path = base.join(&*path);
        }
    };
    let resolve_identity = |identity: &mut Identity| {
        resolve(&mut identity.certificate);
        resolve(&mut identity.key);
    };
    if let Some(tls) = &mut config.tls {
        resolve_identity(&mut tls.identity);
        if let Some(ca) = &mut tls.client_ca {
            resolve(ca);
        }
    }
    for member in &mut config.members {
        if let Some(tls) = &mut member.tls {
            resolve(&mut tls.ca);
            if let Some(identity) = &mut tls.identity {
                resolve_identity(identity);
            }
        }
    }
}
