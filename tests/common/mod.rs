//! Shared helpers for the root package's integration tests.
//!
//! Use from a test file in `tests/` with `mod common;` and then
//! `use common::runzeo::{RunZeo, RunZeoOptions};` (real servers) or
//! `use common::faults::{Behavior, FakeServer, Relay};` (injected faults),
//! `use common::array::Array;` (zeoraid in front of real members),
//! `use common::rawclient::RawClient;` (a frame-level ZEO client),
//! `use common::http;` (requests to zeoraid's HTTP endpoint),
//! `use common::etcd::Etcd;` (a real single-node etcd),
//! `use common::ctl::ctl;` (runs `zeoraid ctl`),
//! `use common::cluster::Cluster;` (several zeoraids elected on etcd),
//! `use common::tls::Pki;` (certificates and TLS clients) and
//! `use common::writer::Writer;` (a ZEO client's write load, recording
//! what it was told is committed).
//! Each integration test binary uses only some of these helpers, hence the
//! `dead_code` allowance.
#![allow(dead_code)]

pub mod array;
pub mod cluster;
pub mod ctl;
pub mod etcd;
pub mod faults;
pub mod http;
pub mod postgres;
pub mod rawclient;
pub mod records;
pub mod runzeo;
pub mod tls;
pub mod writer;
