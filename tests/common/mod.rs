//! Shared helpers for the root package's integration tests.
//!
//! Use from a test file in `tests/` with `mod common;` and then
//! `use common::runzeo::{RunZeo, RunZeoOptions};` (real servers) or
//! `use common::faults::{Behavior, FakeServer, Relay};` (injected faults).
//! Each integration test binary uses only some of these helpers, hence the
//! `dead_code` allowance.
#![allow(dead_code)]

pub mod faults;
pub mod records;
pub mod runzeo;
