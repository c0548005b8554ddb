//! The recovery actor: brings one member (the target) up to date from an
//! optimal member (the source), while clients keep committing to the
//! array (`docs/invariants.md#recovery-prefix`, ARCHITECTURE.md §4.5). It talks only to the two
//! member actors; the controller drives it and owns what it means.
//!
//! ```text
//!  start ──▶ verifying ──▶ copying ◀───────────── CatchUp ──┐
//!               │            │ a pass copied < caught_up_below,
//!               │            │ or more than half the pass before
//!     Refused ◀─┘            ▼ (first pass: a missed pack is   │
//!                        caught-up  applied to the target)     │
//!                            │ ▲ ───────────────────────────────┘
//!  CopyTail{until, budget}   ▼ │  (also cuts a running pass short;
//!                        copying-tail   a spent budget answers
//!                                       `complete: false`)
//!  SyncOids: any time after verifying.  Stop: after the transaction in flight.
//!  SourceFailed / TargetFailed from any phase: the actor stops.
//! ```
//!
//! 1. **Verify** (`verify.rs`): where the target's history ends (T); empty →
//!    full copy; otherwise its window of recent transactions must equal
//!    the source's at the same tids, or the recovery is refused and
//!    nothing is written.
//! 2. **Copy** (`copier.rs`): passes over the source from T+1, one
//!    transaction per step, each replayed with its original tid and
//!    committed (or aborted) before the next; throttled between steps.
//!    A pass that found fewer than `caught_up_below` transactions reports
//!    [`RecoveryEvent::CaughtUp`] and the actor waits.
//! 3. **Final step**, driven by the caller under its commit lock:
//!    [`CopyTail`] copies what committed since (a new pass bounded by
//!    `until`, unthrottled), [`SyncOids`] brings the target's oid counter
//!    in step. The caller then marks the member optimal and [`Stop`]s the
//!    actor.
//!
//! The copier (the cursor and the two members) is lent to one future at a
//! time: a step, the verification, or a tail. Messages arriving meanwhile
//! are noted and acted on when it comes back, so a transaction is never
//! cut in half by a `Stop` or a `CopyTail`.

mod blob;
pub(crate) mod copier;
mod error;
mod messages;
pub(crate) mod pace;
pub(crate) mod storages;
pub(crate) mod verify;

pub use blob::is_blob_record;
pub use error::RecoveryError;
pub use messages::{
    CatchUp, CopyTail, GetStatus, Progress, RecoveryEvent, RecoveryPhase, RecoverySettings, Stop, SyncOids,
    TailCopied, VerifyWindow,
};
pub use pace::Throttle;
pub(crate) use storages::has_interface;

use crate::member::{Call, MemberActor};
use crate::tid::unix_seconds;
use actix::prelude::*;
use copier::{Copied, Copier};
use pace::{Pacer, Rates};
use slog::{info, warn, Logger};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use zeo::methods::{NewOids, Pack, Request};
use zeo::reply::Reply;
use zeo::types::{Oid, Tid};
use zeo::Value;

/// How far back the reported rates look.
const RATE_WINDOW: Duration = Duration::from_secs(10);

pub struct RecoveryActor {
    settings: RecoverySettings,
    events: Recipient<RecoveryEvent>,
    log: Logger,
    member: Arc<str>,
    /// `None` while a future has it.
    copier: Option<Copier>,
    phase: RecoveryPhase,
    pacer: Pacer,
    counters: Counters,
    rates: Rates,
    /// Transactions copied by the current pass.
    pass_copied: u64,
    /// Transactions copied by the pass before (`None` in the first).
    previous_pass: Option<u64>,
    /// The pack the target missed, until it is packed the same way.
    pack_pending: Option<f64>,
    /// Bumped to cancel a scheduled step (throttle wait).
    generation: u64,
    pending_tail: Option<PendingTail>,
    stop_reason: Option<String>,
    last_logged: Instant,
}

struct Counters {
    started: Instant,
    started_from: Tid,
    transactions: u64,
    bytes: u64,
    blobs: u64,
    missing_blobs: u64,
    last_copied: Tid,
    source_last: Tid,
    /// Where `fraction_done` is measured from: the target's last
    /// transaction, or for a full copy the first one copied (measured from
    /// tid zero, the year 1900, any copy would be 99 % done at once).
    progress_base: Tid,
}

struct PendingTail {
    until: Tid,
    budget: Option<Duration>,
    arrived: Instant,
    reply: oneshot::Sender<Result<TailCopied, RecoveryError>>,
}

impl RecoveryActor {
    pub fn new(settings: RecoverySettings, events: Recipient<RecoveryEvent>, log: Logger) -> RecoveryActor {
        let member: Arc<str> = Arc::from(settings.member.as_str());
        let log =
            log.new(slog::o!("member" => settings.member.clone(), "source" => settings.source_name.clone()));
        let spool_dir = settings.spool_dir.clone().unwrap_or_else(std::env::temp_dir);
        let copier = Copier::new(
            member.clone(),
            Arc::from(settings.source_name.as_str()),
            settings.source.clone(),
            settings.target.clone(),
            spool_dir,
            log.clone(),
        );
        let now = Instant::now();
        let pack_pending = settings.missed_pack;
        RecoveryActor {
            pacer: Pacer::new(settings.throttle),
            settings,
            events,
            log,
            member,
            copier: Some(copier),
            phase: RecoveryPhase::Verifying,
            counters: Counters {
                started: now,
                started_from: Tid::ZERO,
                transactions: 0,
                bytes: 0,
                blobs: 0,
                missing_blobs: 0,
                last_copied: Tid::ZERO,
                progress_base: Tid::ZERO,
                source_last: Tid::ZERO,
            },
            rates: Rates::new(RATE_WINDOW),
            pass_copied: 0,
            previous_pass: None,
            pack_pending,
            generation: 0,
            pending_tail: None,
            stop_reason: None,
            last_logged: now,
        }
    }

    fn emit(&self, event: RecoveryEvent) {
        self.events.do_send(event);
    }

    fn progress(&self) -> Progress {
        let c = &self.counters;
        let estimate = self.rates.estimate(unix_seconds(c.source_last));
        let span = unix_seconds(c.source_last) - unix_seconds(c.progress_base);
        let done = unix_seconds(c.last_copied) - unix_seconds(c.progress_base);
        let fraction_done = if c.last_copied >= c.source_last {
            1.0
        } else if c.progress_base == Tid::ZERO || c.last_copied == c.started_from || span <= 0.0 {
            0.0
        } else {
            (done / span).clamp(0.0, 1.0)
        };
        Progress {
            phase: self.phase,
            source: self.settings.source_name.clone(),
            started_from_tid: c.started_from,
            copied_transactions: c.transactions,
            copied_bytes: c.bytes,
            copied_blobs: c.blobs,
            blobs_missing_on_source: c.missing_blobs,
            last_copied_tid: c.last_copied,
            source_last_tid: c.source_last,
            fraction_done,
            rate_tps: estimate.transactions_per_second,
            rate_bytes_per_second: estimate.bytes_per_second,
            eta_seconds: estimate.eta_seconds,
            elapsed_seconds: c.started.elapsed().as_secs_f64(),
        }
    }

    fn emit_progress(&self) {
        self.emit(RecoveryEvent::Progress {
            member: self.member.to_string(),
            progress: self.progress(),
        });
    }

    fn log_progress(&mut self, what: &str) {
        let p = self.progress();
        info!(self.log, "{}", what;
            "phase" => p.phase.as_str(),
            "copied_transactions" => p.copied_transactions,
            "copied_bytes" => p.copied_bytes,
            "last_copied_tid" => p.last_copied_tid.to_hex(),
            "source_last_tid" => p.source_last_tid.to_hex(),
            "done_percent" => format!("{:.1}", p.fraction_done * 100.0),
            "rate_tps" => format!("{:.1}", p.rate_tps),
            "rate_bytes_per_second" => format!("{:.0}", p.rate_bytes_per_second),
            "eta_seconds" => p.eta_seconds.map_or_else(|| "unknown".to_owned(), |s| format!("{s:.0}")));
        self.last_logged = Instant::now();
    }

    fn account(&mut self, copied: &Copied) {
        let c = &mut self.counters;
        c.transactions += 1;
        c.bytes += copied.bytes;
        c.blobs += copied.blobs;
        c.missing_blobs += copied.missing_blobs;
        c.last_copied = copied.tid;
        if c.progress_base == Tid::ZERO {
            c.progress_base = copied.tid;
        }
        if c.source_last < copied.tid {
            c.source_last = copied.tid;
        }
        self.rates
            .observe(Instant::now(), c.transactions, c.bytes, unix_seconds(copied.tid));
    }

    fn take_copier(&mut self) -> Copier {
        self.copier
            .take()
            .expect("the copier is lent to one future at a time")
    }

    /// Phase 1, then copying.
    fn start_verify(&mut self, ctx: &mut Context<Self>) {
        let copier = self.take_copier();
        let (window, full) = (self.settings.verify_window, self.settings.full);
        let missed_pack = self.settings.missed_pack;
        let work = async move {
            let result = verify::verify(&copier, window, full, missed_pack).await;
            (copier, result)
        };
        ctx.spawn(work.into_actor(self).map(|(mut copier, result), act, ctx| {
            let verified = match result {
                Ok(verified) => verified,
                Err(e) => {
                    act.copier = Some(copier);
                    return act.fail(e, ctx);
                }
            };
            copier.target_last = verified.target_last;
            copier.target_storage = verified.target;
            act.copier = Some(copier);
            let c = &mut act.counters;
            c.started_from = verified.target_last;
            c.progress_base = verified.target_last;
            c.last_copied = verified.target_last;
            c.source_last = verified.source_last;
            act.rates
                .observe(Instant::now(), 0, 0, unix_seconds(verified.target_last));
            if verified.target_last != verified.reported_last {
                warn!(act.log, "the target's history ends before the last tid it reports (a transaction in flight when it crashed was truncated); copying from where it really ends";
                    "reported_last_tid" => verified.reported_last.to_hex(),
                    "target_last_tid" => verified.target_last.to_hex());
            }
            info!(act.log, "recovery verified";
                "target_last_tid" => verified.target_last.to_hex(),
                "source_last_tid" => verified.source_last.to_hex(),
                "compared_transactions" => verified.compared,
                "full_copy" => verified.full_copy);
            act.emit(RecoveryEvent::Verified {
                member: act.member.to_string(),
                target_last_tid: verified.target_last,
                source_last_tid: verified.source_last,
                compared_transactions: verified.compared,
                full_copy: verified.full_copy,
            });
            if verified.full_copy {
                // A copy of the packed source is packed already.
                act.pack_pending = None;
            }
            act.phase = RecoveryPhase::Copying;
            act.pass_copied = 0;
            act.next(ctx);
        }));
    }

    /// Packs the target at the time of the pack it missed, now that it
    /// has every transaction up to that time (a pass has ended, and
    /// passes begin after the pack): the same pack of the same history,
    /// so it ends as the source. The copier is lent to the pack like to
    /// a step (a `Stop` waits for it); then a fresh pass copies what
    /// committed meanwhile, judged on its own.
    fn pack_target(&mut self, t: f64, ctx: &mut Context<Self>) {
        info!(self.log, "recovery packs the target as the array was packed while it was away"; "pack_time" => t);
        let copier = self.take_copier();
        let target = self.settings.target.clone();
        let pack = Request::Pack(Pack {
            t,
            wait: Value::Bool(true),
        });
        let work = async move { (copier, target.send(Call(pack)).await) };
        ctx.spawn(work.into_actor(self).map(move |(copier, answer), act, ctx| {
            act.copier = Some(copier);
            let reason = match answer {
                Ok(Ok(_)) => {
                    act.pack_pending = None;
                    info!(act.log, "recovery packed the target"; "pack_time" => t);
                    act.pass_copied = 0;
                    act.previous_pass = None;
                    return act.schedule(Duration::ZERO, ctx);
                }
                Ok(Err(e)) => format!("pack failed: {e}"),
                Err(e) => format!("member actor unreachable: {e}"),
            };
            act.fail(RecoveryError::Target { reason }, ctx);
        }));
    }

    /// What to do now that the copier is back: stop, the tail, or the
    /// next step of the stream.
    fn next(&mut self, ctx: &mut Context<Self>) {
        if self.stop_reason.is_some() {
            return self.finish_stop(ctx);
        }
        if self.pending_tail.is_some() {
            return self.start_tail(ctx);
        }
        if self.phase == RecoveryPhase::Copying {
            self.step(ctx);
        }
    }

    /// The next step after `delay` (the throttle); a `Stop` or `CopyTail`
    /// that arrived meanwhile is acted on at once.
    fn schedule(&mut self, delay: Duration, ctx: &mut Context<Self>) {
        self.generation += 1;
        if delay.is_zero() || self.stop_reason.is_some() || self.pending_tail.is_some() {
            return self.next(ctx);
        }
        let generation = self.generation;
        ctx.run_later(delay, move |act, ctx| {
            if act.generation == generation && act.copier.is_some() {
                act.next(ctx);
            }
        });
    }

    /// Copies one transaction of the stream.
    fn step(&mut self, ctx: &mut Context<Self>) {
        let mut copier = self.take_copier();
        let started = Instant::now();
        let work = async move {
            let result = copier.copy_next_of_pass().await;
            (copier, result)
        };
        ctx.spawn(work.into_actor(self).map(move |(copier, result), act, ctx| {
            act.copier = Some(copier);
            // A pass opened: how far the source was then.
            let result = result.map(|(copied, source_last)| {
                if let Some(tid) = source_last {
                    act.counters.source_last = act.counters.source_last.max(tid);
                }
                copied
            });
            match result {
                Ok(Some(copied)) => {
                    act.account(&copied);
                    act.pass_copied += 1;
                    if act.outpaced() {
                        return act.caught_up(
                            "recovery not gaining on the writers: the rest is for the final step",
                            ctx,
                        );
                    }
                    let delay = act.pacer.delay_after(started, copied.bytes, Instant::now());
                    act.schedule(delay, ctx);
                }
                Ok(None) => act.pass_ended(ctx),
                Err(e) => act.fail(e, ctx),
            }
        }));
    }

    fn pass_ended(&mut self, ctx: &mut Context<Self>) {
        if let Some(t) = self.pack_pending {
            return self.pack_target(t, ctx);
        }
        if self.pass_copied >= self.settings.caught_up_below {
            // Another pass: what committed meanwhile.
            self.previous_pass = Some(self.pass_copied);
            self.pass_copied = 0;
            return self.schedule(Duration::ZERO, ctx);
        }
        self.caught_up("recovery caught up", ctx);
    }

    /// Each pass copies what committed during the one before, so passes
    /// shrink only while the stream outruns the writers. A pass that has
    /// already copied more than half as many as the one before is not shrinking
    /// fast enough to end (a throttled copy under a steady write load
    /// never would): it is cut short and the rest is left to the final
    /// step, which the caller runs in slices.
    fn outpaced(&self) -> bool {
        self.pass_copied >= self.settings.caught_up_below
            && self
                .previous_pass
                .is_some_and(|before| self.pass_copied * 2 > before)
    }

    fn caught_up(&mut self, why: &str, ctx: &mut Context<Self>) {
        self.previous_pass = None;
        self.phase = RecoveryPhase::CaughtUp;
        let c = &self.counters;
        if c.source_last < c.last_copied {
            self.counters.source_last = c.last_copied;
        }
        self.log_progress(why);
        self.emit_progress();
        self.emit(RecoveryEvent::CaughtUp {
            member: self.member.to_string(),
            last_copied_tid: self.counters.last_copied,
            source_last_tid: self.counters.source_last,
            copied_transactions: self.counters.transactions,
        });
        // A CopyTail or Stop that arrived during the last step.
        self.next(ctx);
    }

    fn start_tail(&mut self, ctx: &mut Context<Self>) {
        let Some((until, budget)) = self.pending_tail.as_ref().map(|t| (t.until, t.budget)) else {
            return;
        };
        self.generation += 1;
        self.phase = RecoveryPhase::CopyingTail;
        let mut copier = self.take_copier();
        if copier.target_last > until {
            let last = copier.target_last;
            self.copier = Some(copier);
            self.phase = RecoveryPhase::CaughtUp;
            return self.answer_tail(Err(RecoveryError::InvalidState(format!(
                "the target is already at {last}, after the requested {until}"
            ))));
        }
        let deadline = budget.map(|b| Instant::now() + b);
        let work = async move {
            let result = copier.copy_until(until, deadline).await;
            (copier, result)
        };
        ctx.spawn(work.into_actor(self).map(move |(copier, result), act, ctx| {
            let target_last = copier.target_last;
            act.copier = Some(copier);
            match result {
                Ok((copied, complete)) => {
                    for c in &copied {
                        act.account(c);
                    }
                    act.counters.source_last = act.counters.source_last.max(until);
                    act.phase = RecoveryPhase::CaughtUp;
                    let arrived = act.pending_tail.as_ref().map_or_else(Instant::now, |t| t.arrived);
                    let answer = TailCopied {
                        transactions: copied.len() as u64,
                        bytes: copied.iter().map(|c| c.bytes).sum(),
                        last_tid: target_last,
                        complete,
                        recovery_total: act.counters.transactions,
                        elapsed: arrived.elapsed(),
                    };
                    let kv = slog::o!(
                        "complete" => complete,
                        "transactions" => answer.transactions,
                        "bytes" => answer.bytes,
                        "last_tid" => answer.last_tid.to_hex(),
                        "until" => until.to_hex(),
                        "elapsed_ms" => answer.elapsed.as_millis() as u64);
                    // A slice of a longer tail is routine (many a second):
                    // only the complete tail is worth an info line.
                    if complete {
                        info!(act.log, "recovery tail copied"; kv);
                    } else {
                        slog::debug!(act.log, "recovery tail slice copied"; kv);
                    }
                    act.answer_tail(Ok(answer));
                    act.emit_progress();
                    act.next(ctx);
                }
                Err(e) => {
                    warn!(act.log, "recovery failed copying the tail"; "error" => %e);
                    act.stop_reason
                        .get_or_insert_with(|| format!("copying the tail failed: {e}"));
                    act.answer_tail(Err(e));
                    act.finish_stop(ctx);
                }
            }
        }));
    }

    fn answer_tail(&mut self, result: Result<TailCopied, RecoveryError>) {
        if let Some(tail) = self.pending_tail.take() {
            let _ = tail.reply.send(result);
        }
    }

    /// A failure of the background work: reported as an event, then stop.
    fn fail(&mut self, error: RecoveryError, ctx: &mut Context<Self>) {
        match &error {
            RecoveryError::Refused { reason } => warn!(self.log, "recovery refused"; "reason" => reason),
            other => warn!(self.log, "recovery failed"; "error" => %other,
                "copied_transactions" => self.counters.transactions,
                "last_copied_tid" => self.counters.last_copied.to_hex()),
        }
        self.stop_reason.get_or_insert_with(|| error.to_string());
        self.answer_tail(Err(error.clone()));
        self.emit(RecoveryEvent::failure(self.member.to_string(), error));
        self.finish_stop(ctx);
    }

    /// Releases the stream iterator, fails a pending tail, stops.
    fn finish_stop(&mut self, ctx: &mut Context<Self>) {
        if let Some(copier) = self.copier.as_mut() {
            copier.close_stream();
        }
        let reason = self
            .stop_reason
            .clone()
            .unwrap_or_else(|| "recovery ended".to_owned());
        self.answer_tail(Err(RecoveryError::Stopped(reason)));
        ctx.stop();
    }

    /// Every progress interval while copying: ask the source how far it
    /// is, report, and log now and then.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        if !matches!(self.phase, RecoveryPhase::Copying | RecoveryPhase::CopyingTail) {
            return;
        }
        let source = self.settings.source.clone();
        let ask = async move { source.send(Call(Request::LastTransaction)).await };
        ctx.spawn(ask.into_actor(self).map(|answer, act, _ctx| {
            if let Ok(Ok(Reply::LastTransaction(tid))) = answer {
                act.counters.source_last = act.counters.source_last.max(tid);
            }
            act.emit_progress();
            if act.last_logged.elapsed() >= act.settings.log_interval {
                act.log_progress("recovery progress");
            }
        }));
    }
}

impl Actor for RecoveryActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let s = &self.settings;
        info!(self.log, "recovery started";
            "verify_window" => ?s.verify_window,
            "full" => s.full,
            "max_transactions_per_second" => s.throttle.max_transactions_per_second.map_or(0, |n| n.get()),
            "max_bytes_per_second" => s.throttle.max_bytes_per_second.map_or(0, |n| n.get()));
        ctx.run_interval(self.settings.progress_interval, |act, ctx| act.tick(ctx));
        self.start_verify(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.answer_tail(Err(RecoveryError::Stopped("the recovery actor stopped".into())));
        info!(self.log, "recovery stopped";
            "reason" => self.stop_reason.as_deref().unwrap_or("the actor's mailbox closed"),
            "copied_transactions" => self.counters.transactions,
            "last_copied_tid" => self.counters.last_copied.to_hex());
    }
}

impl Handler<CatchUp> for RecoveryActor {
    type Result = ();

    fn handle(&mut self, _: CatchUp, ctx: &mut Context<Self>) {
        if self.phase == RecoveryPhase::CaughtUp && self.copier.is_some() && self.pending_tail.is_none() {
            self.phase = RecoveryPhase::Copying;
            self.pass_copied = 0;
            self.schedule(Duration::ZERO, ctx);
        }
    }
}

impl Handler<CopyTail> for RecoveryActor {
    type Result = ResponseFuture<Result<TailCopied, RecoveryError>>;

    fn handle(&mut self, msg: CopyTail, ctx: &mut Context<Self>) -> Self::Result {
        let refuse = |e: RecoveryError| -> Self::Result { Box::pin(async move { Err(e) }) };
        match self.phase {
            RecoveryPhase::Verifying => {
                return refuse(RecoveryError::InvalidState(
                    "CopyTail before the recovery was verified".into(),
                ))
            }
            RecoveryPhase::Stopping => return refuse(RecoveryError::Stopped("stopping".into())),
            _ if self.pending_tail.is_some() || self.phase == RecoveryPhase::CopyingTail => {
                return refuse(RecoveryError::InvalidState(
                    "a CopyTail is already running".into(),
                ))
            }
            _ => {}
        }
        let (reply, answer) = oneshot::channel();
        self.pending_tail = Some(PendingTail {
            until: msg.until,
            budget: msg.budget,
            arrived: Instant::now(),
            reply,
        });
        if self.copier.is_some() {
            // Idle or waiting for the throttle: start now.
            self.start_tail(ctx);
        }
        // Otherwise the step in flight starts it when it is done.
        Box::pin(async move {
            answer
                .await
                .unwrap_or_else(|_| Err(RecoveryError::Stopped("the recovery actor stopped".into())))
        })
    }
}

impl Handler<SyncOids> for RecoveryActor {
    type Result = ResponseFuture<Result<Oid, RecoveryError>>;

    fn handle(&mut self, msg: SyncOids, _ctx: &mut Context<Self>) -> Self::Result {
        if self.phase == RecoveryPhase::Verifying {
            return Box::pin(async {
                Err(RecoveryError::InvalidState(
                    "SyncOids before the recovery was verified".into(),
                ))
            });
        }
        let target = self.settings.target.clone();
        let member = self.member.clone();
        let log = self.log.clone();
        Box::pin(async move {
            let result = sync_oids(&target, &member, msg.at_least).await;
            match &result {
                Ok(last) => info!(log, "recovery synced the oid counter";
                    "at_least" => msg.at_least.to_hex(), "last_allocated" => last.to_hex()),
                Err(e) => warn!(log, "recovery could not sync the oid counter"; "error" => %e),
            }
            result
        })
    }
}

/// `new_oids` on the target until it hands out an oid at or past
/// `at_least` (oids are only allocated, never stored: harmless).
async fn sync_oids(target: &Addr<MemberActor>, member: &str, at_least: Oid) -> Result<Oid, RecoveryError> {
    let fail = |reason: String| RecoveryError::Target { reason };
    let mut last: Option<Oid> = None;
    loop {
        let answer = target
            .send(Call(Request::NewOids(NewOids { n: Some(100) })))
            .await
            .map_err(|e| fail(format!("{member}: member actor gone: {e}")))?
            .map_err(|e| fail(format!("new_oids: {e}")))?;
        let Reply::NewOids(oids) = answer else {
            return Err(fail(format!(
                "{member}: unexpected answer to new_oids: {answer:?}"
            )));
        };
        let Some(&highest) = oids.iter().max() else {
            return Err(fail(format!("{member}: new_oids returned no oids")));
        };
        if last.is_some_and(|l| highest <= l) {
            return Err(fail(format!(
                "{member}: new_oids does not advance (at {highest})"
            )));
        }
        last = Some(highest);
        if highest >= at_least {
            return Ok(highest);
        }
    }
}

impl Handler<Stop> for RecoveryActor {
    type Result = ();

    fn handle(&mut self, msg: Stop, ctx: &mut Context<Self>) {
        info!(self.log, "recovery stopping"; "reason" => &msg.reason);
        self.stop_reason = Some(msg.reason);
        if self.copier.is_some() {
            self.generation += 1;
            self.finish_stop(ctx);
        } else {
            // The future holding the copier finishes its transaction first.
            self.phase = RecoveryPhase::Stopping;
        }
    }
}

impl Handler<GetStatus> for RecoveryActor {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.progress())
    }
}
