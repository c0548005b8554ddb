//! zeoraid's actors (see ARCHITECTURE.md §3). Each owns one piece of state;
//! the others ask it with messages.
//!
//! - [`member`]: one per configured ZEO server; owns the connection to it.
//! - [`controller`]: one; owns the RAID state, the commit lock, the members.
//! - [`session`]: one per client connection; the server side of ZEO.
//! - [`metrics`]: the Prometheus metrics the actors update; [`metrics::render`]
//!   for `GET /metrics`.
//!
//! The recovery actor follows in issue 8.

pub mod controller;
pub mod member;
pub mod metrics;
pub mod session;
pub mod tid;
pub mod voting;
mod wire;
