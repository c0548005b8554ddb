//! The certificates in force: read from the files `[tls]` and
//! `[members.tls]` name when the daemon starts and again on every reload.
//!
//! A reload first reads every file ([`TlsMaterial::prepare`]); any problem
//! rejects the reload and the certificates in force stay. Only once the
//! reload is applied are the new ones installed, into holders the client
//! listener and the member actors already share: the next connection uses
//! them, the connections already made keep theirs.

use crate::config::{self, Config};
use rustls::{ClientConfig, ServerConfig};
use std::collections::HashMap;
use std::sync::Arc;
use zeoraid_actors::member::MemberTls;
use zeoraid_actors::tls::{self as certs, Reloadable, TlsError};

/// A certificate file that cannot be used, with the table that names it.
#[derive(Debug, thiserror::Error)]
#[error("{table}: {source}")]
pub struct TlsFileError {
    table: String,
    #[source]
    source: Box<TlsError>,
}

/// The holders in force: the client listener's, and one per member name.
#[derive(Default)]
pub struct TlsMaterial {
    front: Option<Reloadable<ServerConfig>>,
    members: HashMap<String, Reloadable<ClientConfig>>,
}

/// Certificates read for a configuration, not installed yet.
#[derive(Default)]
pub struct PreparedTls {
    front: Option<Arc<ServerConfig>>,
    /// A member's settings (its holder: the one in force for a member of
    /// that name, a new one otherwise) and its new client configuration.
    members: HashMap<String, (MemberTls, Arc<ClientConfig>)>,
}

impl TlsMaterial {
    /// Reads every certificate, key and CA `config` names.
    pub fn prepare(&self, config: &Config) -> Result<PreparedTls, TlsFileError> {
        let front = match &config.tls {
            None => None,
            Some(tls) => Some(
                certs::server_config(&tls.identity, tls.client_ca.as_deref()).map_err(in_table("[tls]"))?,
            ),
        };
        let mut members = HashMap::new();
        for member in &config.members {
            let Some(tls) = &member.tls else { continue };
            let client = certs::client_config(&tls.ca, tls.identity.as_ref())
                .map_err(in_table(format!("[members.tls] of {}", member.name)))?;
            let holder = self
                .members
                .get(&member.name)
                .cloned()
                .unwrap_or_else(|| Reloadable::new(client.clone()));
            let settings = MemberTls {
                server_name: certs::server_name(&tls.server_name).expect("validated with the configuration"),
                config: holder,
            };
            members.insert(member.name.clone(), (settings, client));
        }
        Ok(PreparedTls { front, members })
    }

    /// Puts `prepared` in force for the next connections.
    pub fn install(&mut self, prepared: PreparedTls) {
        match (&self.front, prepared.front) {
            (Some(holder), Some(config)) => holder.replace(config),
            (None, Some(config)) => self.front = Some(Reloadable::new(config)),
            // Without `[tls]` now, the listener goes on as it started
            // (reported as needing a restart).
            (_, None) => {}
        }
        self.members = prepared
            .members
            .into_iter()
            .map(|(name, (settings, config))| {
                settings.config.replace(config);
                (name, settings.config)
            })
            .collect();
    }

    /// The client listener's holder, when it speaks TLS.
    pub fn front(&self) -> Option<Reloadable<ServerConfig>> {
        self.front.clone()
    }
}

fn in_table(table: impl Into<String>) -> impl FnOnce(TlsError) -> TlsFileError {
    move |source| TlsFileError {
        table: table.into(),
        source: Box::new(source),
    }
}

impl PreparedTls {
    /// The TLS settings of `member`, when it speaks TLS.
    pub fn member(&self, member: &config::Member) -> Option<MemberTls> {
        self.members
            .get(&member.name)
            .map(|(settings, _)| settings.clone())
    }
}
