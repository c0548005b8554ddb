//! zeoraid, a RAID-1 proxy for ZODB's ZEO servers: clients talk ZEO to
//! zeoraid, which mirrors every transaction to N real ZEO servers.
//!
//! A library as well as a binary so integration tests and later tools
//! (`zeoraid ctl`) share the config model and logging setup with the
//! daemon instead of duplicating them.

pub mod cli;
mod cluster;
pub mod config;
pub mod ctl;
pub mod daemon;
pub mod front;
pub mod http;
pub mod listen;
pub mod logging;
pub mod manual;
pub mod members;
pub mod panics;
pub mod reload;
pub mod systemd;
pub mod tls;
