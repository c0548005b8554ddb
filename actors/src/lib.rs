//! zeoraid's actors (see ARCHITECTURE.md §3). Each owns one piece of state;
//! the others ask it with messages.
//!
//! - [`cluster`]: several zeoraids: the election on etcd, the lease, the
//!   array state in etcd.
//! - [`member`]: one per configured ZEO server; owns the connection to it.
//! - [`controller`]: one; owns the RAID state, the commit lock, the members.
//! - [`session`]: one per client connection; the server side of ZEO.
//! - [`recovery`]: one per recovering member; copies the transactions it
//!   missed from an optimal member.
//! - [`transaction`]: a client's transaction as buffered until its vote,
//!   and blobs spooled to disk (by sessions and recovery).
//! - [`metrics`]: the Prometheus metrics the actors update; [`metrics::render`]
//!   for `GET /metrics`.
//! - [`status`]: the words for the array's and the members' states that the
//!   metrics, the HTTP answers and `zeoraid ctl` share.

pub mod cluster;
pub mod controller;
pub mod member;
pub mod metrics;
pub mod recovery;
pub mod scrub;
pub mod session;
pub mod state;
pub mod status;
pub mod tid;
pub mod tls;
pub mod token;
pub mod transaction;
pub mod voting;
mod wire;
