//! `new_oids`: oids come from the members, so that every member's counter
//! stays in step with what the array handed out.

use super::*;
use crate::member::Call;
use zeo::exceptions::ZeoError;
use zeo::methods::{self, Request};
use zeo::reply::Reply;
use zeo::types::Oid;

impl Handler<NewOids> for Controller {
    type Result = ResponseActFuture<Self, Result<Vec<Oid>, ZeoError>>;

    /// Asks every optimal member, so their oid counters stay in step, and
    /// hands out the highest list: oids are never handed out twice,
    /// whichever member answered, and no member's counter lags behind one.
    fn handle(&mut self, msg: NewOids, _ctx: &mut Context<Self>) -> Self::Result {
        if let Some(error) = self.write_refusal() {
            return Box::pin(actix::fut::ready(Err(error)));
        }
        let writers: Vec<MemberId> = self
            .writers()
            .into_iter()
            .filter(|&i| self.members[i].connected)
            .map(|i| self.members[i].id)
            .collect();
        let request = Request::NewOids(methods::NewOids {
            n: Some(msg.n as i64),
        });
        let answers = self.fan_out(&writers, Call(request));
        Box::pin(answers.into_actor(self).map(move |results, act, _| {
            let expect = |r| match r {
                Reply::NewOids(oids) => Ok(oids),
                other => Err(Box::new(other)),
            };
            let mut best: Option<Vec<Oid>> = None;
            for a in act.sort_answers(results, "new_oids", expect, None) {
                let oids = a.answer?;
                if best.as_ref().is_none_or(|b| oids.last() > b.last()) {
                    best = Some(oids);
                }
            }
            if let Some(oids) = &best {
                act.note_oids(oids);
            }
            best.ok_or_else(|| ZeoError::unavailable("no member could allocate oids: the array has failed"))
        }))
    }
}
