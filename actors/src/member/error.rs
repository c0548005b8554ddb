//! Why a member call did not produce a reply. The split matters to the
//! RAID: an [`MemberError::Application`] error is an *answer* (identical on
//! all healthy members, passed to the client), everything else means the
//! member is failing and the controller degrades it (design notes §4.6).

use std::time::Duration;
use thiserror::Error;
use zeo::exceptions::ZeoError;
use zeo::CodecError;

#[derive(Debug, Clone, Error)]
pub enum MemberError {
    /// The member answered with an error reply (ConflictError, POSKeyError, ...).
    /// The connection is fine.
    #[error("member {member}: {error}")]
    Application { member: String, error: ZeoError },
    /// The member is not connected (connecting, backing off, parked), or the
    /// connection was lost while the call was in flight.
    #[error("member {member} unavailable: {reason}")]
    Unavailable { member: String, reason: String },
    /// No reply within the deadline; the connection is dropped and re-established.
    #[error("member {member}: {method} did not answer within {after:?}")]
    Timeout {
        member: String,
        method: String,
        after: Duration,
    },
    /// The member sent something that is not valid ZEO; the connection is dropped.
    #[error("member {member}: protocol error: {error}")]
    Protocol { member: String, error: CodecError },
    /// `register` was refused (unknown storage, read-only server, ...).
    #[error("member {member}: register refused: {error}")]
    Register { member: String, error: ZeoError },
}

impl MemberError {
    /// True for the failures that make a member unhealthy (not answers).
    pub fn is_member_failure(&self) -> bool {
        !matches!(self, MemberError::Application { .. })
    }

    /// The ZEO error reply, for application errors.
    pub fn application_error(&self) -> Option<&ZeoError> {
        match self {
            MemberError::Application { error, .. } => Some(error),
            _ => None,
        }
    }
}
