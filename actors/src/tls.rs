//! TLS material for both sides of zeoraid: the server configuration of the
//! client listener and the client configuration of a member connection,
//! read from PEM files, and the [`Reloadable`] holder through which a
//! reload hands new certificates to the next connection while the
//! connections already made keep theirs.
//!
//! rustls with the ring provider, chosen explicitly rather than through
//! the process-wide default, so another crate enabling a second provider
//! cannot make the builders ambiguous.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Why certificates or a key could not be used; every variant names the
/// file, so an operator knows which one to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {}: {problem}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        problem: String,
    },
    #[error("{what} {} holds no PEM certificate", path.display())]
    NoCertificate { what: &'static str, path: PathBuf },
    #[error("CA certificate in {} is not usable: {source}", path.display())]
    BadCa {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("certificate {} with key {}: {source}", certificate.display(), key.display())]
    CertificateKey {
        certificate: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("client CA {}: {problem}", path.display())]
    ClientVerifier { path: PathBuf, problem: String },
}

/// A certificate chain and the file of its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// The TLS configuration of the client listener: `identity` is what
/// clients see; with `client_ca`, each client must present a certificate
/// signed by it.
pub fn server_config(identity: &Identity, client_ca: Option<&Path>) -> Result<Arc<ServerConfig>, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(path)?), provider())
                .build()
                .map_err(|e| TlsError::ClientVerifier {
                    path: path.to_owned(),
                    problem: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let (chain, key) = read_identity(identity)?;
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|source| identity_error(identity, source))?;
    Ok(Arc::new(config))
}

/// The TLS configuration of a member connection: the member's certificate
/// must be signed by `ca`; `identity` is the client certificate a ZEO
/// server's `<ssl> authenticate` asks for.
pub fn client_config(ca: &Path, identity: Option<&Identity>) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots(ca)?);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(identity) => {
            let (chain, key) = read_identity(identity)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|source| identity_error(identity, source))?
        }
    };
    Ok(Arc::new(config))
}

/// The name a member's certificate must carry: `text` as an IP address or
/// a DNS name.
pub fn server_name(text: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(text.to_owned())
        .map_err(|e| format!("{text:?} is not a host name or IP address: {e}"))
}

/// ring, whose provider rustls marks deprecated for lacking post-quantum
/// key exchange: aws-lc-rs would bring it at the price of a C build of its
/// own, and ZEO's Python clients (OpenSSL) negotiate classic groups anyway.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for certificate in certificates("CA file", path)? {
        roots.add(certificate).map_err(|source| TlsError::BadCa {
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(roots)
}

fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read_error = |problem: String| TlsError::Read {
        what,
        path: path.to_owned(),
        problem,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| read_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_error(e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            what,
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

fn read_identity(
    identity: &Identity,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let chain = certificates("certificate", &identity.certificate)?;
    let key = PrivateKeyDer::from_pem_file(&identity.key).map_err(|e| TlsError::Read {
        what: "key",
        path: identity.key.clone(),
        problem: e.to_string(),
    })?;
    Ok((chain, key))
}

fn identity_error(identity: &Identity, source: rustls::Error) -> TlsError {
    TlsError::CertificateKey {
        certificate: identity.certificate.clone(),
        key: identity.key.clone(),
        source,
    }
}

/// A TLS configuration that a reload replaces: each new connection takes
/// the current one, a connection already made keeps the one it started
/// with. Clones share the holder; equality is the holder's identity, so
/// settings that share it compare equal whatever certificate is in force.
pub struct Reloadable<T>(Arc<RwLock<Arc<T>>>);

impl<T> Reloadable<T> {
    pub fn new(config: Arc<T>) -> Self {
        Reloadable(Arc::new(RwLock::new(config)))
    }

    /// The configuration in force, for one new connection.
    pub fn current(&self) -> Arc<T> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn replace(&self, config: Arc<T>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = config;
    }
}

impl<T> Clone for Reloadable<T> {
    fn clone(&self) -> Self {
        Reloadable(self.0.clone())
    }
}

impl<T> PartialEq for Reloadable<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl<T> std::fmt::Debug for Reloadable<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reloadable(..)")
    }
}
