//! Why a member call did not produce a reply. The split matters to the
//! RAID: an [`MemberError::Application`] error is an *answer* (identical on
//! all healthy members, passed to the client), everything else means the
//! member is failing and the controller degrades it
//! (`docs/invariants.md#client-errors-are-answers`). A reply too large to
//! keep ([`MemberError::ReplyTooLarge`]) is the client's problem too: the
//! member answered what it was asked.

use crate::metrics::CallOutcome;
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
    /// The member's reply was larger than `max_frame_size`: read past and
    /// dropped, the connection is fine. What the client asked for (an
    /// `undoLog` of every transaction, ...) is too much for one reply.
    #[error(
        "member {member}: the reply to {method} has {len} bytes, more than max_frame_size \
         ({max} bytes): ask for less"
    )]
    ReplyTooLarge {
        member: String,
        method: String,
        len: usize,
        max: usize,
    },
    /// `register` was refused (unknown storage, read-only server, ...).
    #[error("member {member}: register refused: {error}")]
    Register { member: String, error: ZeoError },
    /// A call bound to a connection of the member that is gone (it
    /// reconnected since): not sent. The caller's state on that connection
    /// (an iterator) is lost; the member is fine.
    #[error("member {member}: the connection this belonged to is gone (the member reconnected since)")]
    ConnectionGone { member: String },
}

impl MemberError {
    /// True for the failures that make a member unhealthy (not answers).
    pub fn is_member_failure(&self) -> bool {
        !matches!(
            self,
            MemberError::Application { .. }
                | MemberError::ReplyTooLarge { .. }
                | MemberError::ConnectionGone { .. }
        )
    }

    /// The `outcome` label of a call to the member that ended with `result`.
    pub(crate) fn call_outcome<T>(result: &Result<T, MemberError>) -> CallOutcome {
        match result {
            Ok(_) => CallOutcome::Ok,
            Err(MemberError::Application { .. } | MemberError::ReplyTooLarge { .. }) => {
                CallOutcome::ErrorReply
            }
            Err(MemberError::Protocol { .. } | MemberError::Register { .. }) => CallOutcome::Broken,
            Err(MemberError::Timeout { .. }) => CallOutcome::Timeout,
            Err(MemberError::Unavailable { .. } | MemberError::ConnectionGone { .. }) => {
                CallOutcome::Disconnected
            }
        }
    }

    /// The error a client gets for an answer that is its own problem: a
    /// member's error reply as it is; a reply over `max_frame_size` as a
    /// `ClientStorageError` that names neither the member nor the reply's
    /// exact size, so that several members answering the same call alike
    /// agree (a vote's majority compares them). `None` for failures.
    pub fn as_answer(&self) -> Option<ZeoError> {
        match self {
            MemberError::Application { error, .. } => Some(error.clone()),
            MemberError::ReplyTooLarge { method, max, .. } => Some(ZeoError::unavailable(&format!(
                "the reply to {method} is larger than max_frame_size ({max} bytes): ask for less"
            ))),
            _ => None,
        }
    }

    /// The ZEO error reply, for application errors.
    pub fn application_error(&self) -> Option<&ZeoError> {
        match self {
            MemberError::Application { error, .. } => Some(error),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_outcomes() {
        let member = || "zeo1".to_string();
        let outcome = |e: MemberError| MemberError::call_outcome::<()>(&Err(e));
        assert_eq!(MemberError::call_outcome(&Ok(())), CallOutcome::Ok);
        let application = MemberError::Application {
            member: member(),
            error: ZeoError::ReadOnlyError,
        };
        assert_eq!(outcome(application), CallOutcome::ErrorReply);
        let timeout = MemberError::Timeout {
            member: member(),
            method: "vote".into(),
            after: Duration::from_secs(1),
        };
        assert_eq!(outcome(timeout), CallOutcome::Timeout);
        let lost = MemberError::Unavailable {
            member: member(),
            reason: "gone".into(),
        };
        assert_eq!(outcome(lost), CallOutcome::Disconnected);
        let too_large = MemberError::ReplyTooLarge {
            member: member(),
            method: "undoLog".into(),
            len: 2000,
            max: 1024,
        };
        assert!(!too_large.is_member_failure());
        let elsewhere = MemberError::ReplyTooLarge {
            member: "zeo2".into(),
            method: "undoLog".into(),
            len: 2100,
            max: 1024,
        };
        assert_eq!(
            too_large.as_answer(),
            elsewhere.as_answer(),
            "two members answering alike agree"
        );
        assert_eq!(outcome(too_large), CallOutcome::ErrorReply);
    }
}
