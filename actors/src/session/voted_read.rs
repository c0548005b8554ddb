//! Coop mode's voted reads: a read of a given revision (`loadBefore`,
//! `loadSerial`) goes to every reader at once and the answers are voted
//! (`docs/invariants.md#vote-majority`): the majority's answer is the client's, and a member
//! that answered otherwise holds different data, so the controller
//! degrades it. Without a strict majority (two members that disagree) the
//! read fails with a `ClientStorageError`: which member is right cannot be
//! told, and guessing could hand the client data that was never committed.
//!
//! Only reads whose answer is fixed once the client may ask them are
//! voted: `loadBefore` is clamped to what the client has seen, so members
//! that are mid-commit agree on it too, except for the end of the
//! revision (`end` is not compared; the newest one known is kept).
//! Reads of moving state (history, undo logs, iterators) go to one member.

use super::answers::{failure, member_answer};
use super::reads::fix_up_load;
use super::*;
use crate::controller::DegradeKind;
use crate::member::Call;
use crate::metrics::{self, LoadOutcome};
use crate::voting::{self, Rule, Verdict};
use futures::future::join_all;
use slog::error;
use std::hash::{Hash, Hasher};
use zeo::methods::Request;
use zeo::reply::Reply;

type ReadAnswer = Result<Reply, ZeoError>;

impl ClientSession {
    pub(super) fn read_voted(
        &mut self,
        ctx: &mut Context<Self>,
        msgid: MsgId,
        request: Request,
        load: Option<u64>,
    ) {
        let members = self.readers.clone();
        if members.is_empty() {
            return self.no_reader_for(msgid, load);
        }
        let calls: Vec<_> = members.iter().map(|m| m.send(Call(request.clone()))).collect();
        ctx.spawn(join_all(calls).into_actor(self).map(move |results, act, _| {
            let what = describe_request(&request);
            let mut answers: Vec<(Addr<MemberActor>, ReadAnswer)> = Vec::new();
            for (member, result) in members.into_iter().zip(results) {
                if let Some(reason) = failure(&result) {
                    act.report(&member, DegradeKind::Failed, format!("{what} failed: {reason}"));
                    continue;
                }
                answers.push((member, member_answer(result)));
            }
            let result = match voting::decide(answers, same_answer, Rule::StrictMajority, |_| false) {
                Verdict::Winner {
                    answer,
                    agreeing,
                    outvoted,
                } => {
                    for (member, theirs) in &outvoted {
                        let reason = format!(
                            "{what} answered {} where the majority answered {}",
                            summary(theirs),
                            summary(&answer)
                        );
                        act.report(member, DegradeKind::Diverged, reason);
                    }
                    newest_end(answer, &agreeing)
                }
                Verdict::NoWinner(groups) if groups.is_empty() => Err(ZeoError::unavailable(
                    "no member could answer the read: the array has failed",
                )),
                Verdict::NoWinner(groups) => {
                    let answers: Vec<String> = groups
                        .iter()
                        .map(|g| format!("{} member(s): {}", g.len(), summary(&g[0].1)))
                        .collect();
                    error!(act.log, "members disagree on a read and no majority decides"; "read" => &what,
                        "answers" => ?answers);
                    Err(ZeoError::unavailable(&format!(
                        "the members disagree on {what} and no majority decides; refusing to guess"
                    )))
                }
            };
            if load.is_some() {
                metrics::load(if result.is_ok() {
                    LoadOutcome::Ok
                } else {
                    LoadOutcome::Error
                });
            }
            let invalidated_by = act.finish_load(load);
            let result = result.map(|reply| fix_up_load(reply, invalidated_by, act.last_seen).to_value());
            act.answer(msgid, result);
        }));
    }
}

/// Equal answers; for `loadBefore` the end of the revision is not
/// compared (a member that finished a commit the client has not been told
/// about yet knows the end, the others do not).
fn same_answer(a: &ReadAnswer, b: &ReadAnswer) -> bool {
    match (a, b) {
        (Ok(Reply::LoadBefore(Some(x))), Ok(Reply::LoadBefore(Some(y)))) => {
            x.data == y.data && x.start == y.start
        }
        _ => a == b,
    }
}

/// The winning `loadBefore` with the newest end any agreeing member knew.
fn newest_end(answer: ReadAnswer, agreeing: &[(Addr<MemberActor>, ReadAnswer)]) -> ReadAnswer {
    let Ok(Reply::LoadBefore(Some(mut revision))) = answer else {
        return answer;
    };
    for (_, theirs) in agreeing {
        if let Ok(Reply::LoadBefore(Some(r))) = theirs {
            revision.end = match (revision.end, r.end) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
    }
    Ok(Reply::LoadBefore(Some(revision)))
}

fn describe_request(request: &Request) -> String {
    match request {
        Request::LoadBefore(l) => format!("loadBefore({}, {})", l.oid, l.tid),
        Request::LoadSerial(l) => format!("loadSerial({}, {})", l.oid, l.serial),
        other => other.name().to_string(),
    }
}

/// An answer in a log line: revisions by tid, size and a digest, not
/// their bytes.
fn summary(answer: &ReadAnswer) -> String {
    let digest = |data: &[u8]| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        data.hash(&mut h);
        h.finish()
    };
    match answer {
        Ok(Reply::LoadBefore(Some(r))) => format!(
            "revision {} ({} bytes, digest {:016x})",
            r.start,
            r.data.len(),
            digest(&r.data)
        ),
        Ok(Reply::LoadBefore(None)) => "no revision".to_string(),
        Ok(Reply::LoadSerial(data)) => format!("{} bytes, digest {:016x}", data.len(), digest(data)),
        Ok(other) => format!("{other:?}"),
        Err(e) => format!("error {e}"),
    }
}
