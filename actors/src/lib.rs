//! zeoraid's actors (see ARCHITECTURE.md §3). Each owns one piece of state;
//! the others ask it with messages.
//!
//! - [`member`]: one per configured ZEO server; owns the connection to it.
//!
//! The controller, client-session and recovery actors follow in issues 5-8.

pub mod member;
