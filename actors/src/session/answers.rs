//! How a session turns other actors' answers into the client's: the
//! controller's and the reloader's futures ([`ClientSession::ask`]), a
//! member's answers ([`member_answer`], [`failure`]), and the report of a
//! member that failed a read. Every family of methods uses these.

use super::*;
use crate::controller::{self as ctl, DegradeKind};
use crate::member::MemberError;

impl ClientSession {
    /// Answers the client from a controller future.
    pub(super) fn ask<T: 'static>(
        &mut self,
        ctx: &mut Context<Self>,
        msgid: MsgId,
        fut: impl std::future::Future<Output = Result<T, MailboxError>> + 'static,
        shape: impl FnOnce(T) -> Result<Value, ZeoError> + 'static,
    ) {
        self.ask_actor(ctx, msgid, "controller", fut, move |_, answer| shape(answer));
    }

    /// Answers the client from another actor's future; `who` names that
    /// actor in the error the client gets when it cannot be reached.
    pub(super) fn ask_actor<T: 'static>(
        &mut self,
        ctx: &mut Context<Self>,
        msgid: MsgId,
        who: &'static str,
        fut: impl std::future::Future<Output = Result<T, MailboxError>> + 'static,
        shape: impl FnOnce(&mut ClientSession, T) -> Result<Value, ZeoError> + 'static,
    ) {
        ctx.spawn(fut.into_actor(self).map(move |result, act, _| {
            let result = result
                .map_err(|e| ZeoError::unavailable(&format!("{who} unreachable: {e}")))
                .and_then(|answer| shape(act, answer));
            act.answer(msgid, result);
        }));
    }

    /// Tells the controller a member failed or was outvoted; it decides.
    pub(super) fn report(&self, member: &Addr<MemberActor>, kind: DegradeKind, reason: String) {
        self.controller.do_send(ctl::MemberMisbehaved {
            member: member.clone(),
            kind,
            reason,
        });
    }
}

/// A member's answer as the client gets it: an error reply of the member
/// is the client's error reply; a member or mailbox failure becomes
/// [`ZeoError::unavailable`].
pub(super) fn member_answer<T>(result: Result<Result<T, MemberError>, MailboxError>) -> Result<T, ZeoError> {
    match result {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(MemberError::Application { error, .. })) => Err(error),
        Ok(Err(e)) => Err(ZeoError::unavailable(&e.to_string())),
        Err(e) => Err(ZeoError::unavailable(&format!("member actor unreachable: {e}"))),
    }
}

/// The member failure in a member's answer, if it is one (not an
/// application error, which is an answer).
pub(super) fn failure<T>(result: &Result<Result<T, MemberError>, MailboxError>) -> Option<String> {
    match result {
        Ok(Err(e)) if e.is_member_failure() => Some(e.to_string()),
        Err(e) => Some(format!("member actor unreachable: {e}")),
        _ => None,
    }
}

/// What a read gets when the array has no member left to read from.
pub(super) fn no_reader() -> ZeoError {
    ZeoError::unavailable("no member to read from: the array has failed")
}
