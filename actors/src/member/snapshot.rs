//! The observable state of a member actor (shown by the debug endpoint).

use serde::{Deserialize, Serialize};
use std::time::SystemTime;

/// The connection lifecycle: connecting → handshaking → ready, and on any
/// failure backing-off (then connecting again) or, past the restart
/// intensity, parked (probed slowly until a probe succeeds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnState {
    Connecting,
    Handshaking,
    Ready,
    BackingOff,
    Parked,
    /// The actor was told to stop.
    Stopped,
}

impl ConnState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnState::Connecting => "connecting",
            ConnState::Handshaking => "handshaking",
            ConnState::Ready => "ready",
            ConnState::BackingOff => "backing-off",
            ConnState::Parked => "parked",
            ConnState::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for ConnState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct LastError {
    pub message: String,
    pub at: SystemTime,
}

#[derive(Clone, Debug, Serialize)]
pub struct MemberSnapshot {
    pub name: String,
    pub address: String,
    pub state: ConnState,
    pub since: SystemTime,
    /// Restarts counted against the restart intensity right now.
    pub restarts_in_window: u32,
    pub total_restarts: u64,
    pub last_error: Option<LastError>,
    pub in_flight: usize,
    /// Last tid seen from this member (register, invalidations, commits), hex.
    pub last_tid: Option<String>,
    /// Exponentially weighted round-trip time of calls, in microseconds.
    pub rtt_ewma_us: Option<u64>,
    /// `Z5` or `M5` once a connection was established.
    pub protocol: Option<String>,
    /// When a backing-off or parked member tries again.
    pub next_attempt_in_ms: Option<u64>,
}
