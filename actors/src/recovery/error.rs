//! Why a recovery stopped, or why a request to it failed.

use thiserror::Error;
use zeo::types::Tid;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecoveryError {
    /// The target's history does not match the source (or a full copy was
    /// asked onto a non-empty member): nothing was written to the target.
    #[error("recovery refused: {reason}")]
    Refused { reason: String },
    /// The source failed or answered something unusable. The target holds
    /// exactly the transactions up to `resume_from` (every replayed
    /// transaction is complete or aborted): a new recovery, from this or
    /// another source, resumes there.
    #[error("source failed: {reason} (the target is complete up to {resume_from}; resume from there)")]
    Source { reason: String, resume_from: Tid },
    /// The target failed, or refused a replayed transaction.
    #[error("target failed: {reason}")]
    Target { reason: String },
    /// The request does not fit the recovery's phase (a caller's mistake).
    #[error("{0}")]
    InvalidState(String),
    /// The recovery was stopped before the request could run.
    #[error("recovery stopped: {0}")]
    Stopped(String),
}
