//! The scrub: a throttled background check that the optimal members
//! really hold the same history, as md's `check` and a ZFS scrub do. It
//! talks only to the member actors; the controller starts it (one at a
//! time), hears from it through one `Recipient<ScrubEvent>`, and decides
//! what a mismatch means (`controller/scrubbing.rs`). Nothing is repaired.
//!
//! ```text
//!  start ──▶ step ──▶ (throttle) ──▶ step ──▶ … ──▶ Finished
//!              │ a member differs from the majority: Diverged, go on without it
//!              │ no majority: Inconsistent (stops)
//!              └ a read fails, or fewer than 2 members left: Failed (stops)
//! ```
//!
//! Each member gets an iterator over `[from, to]` bound to its current
//! connection, opened and read as recovery reads a source
//! (`recovery/copier.rs`); a step reads every member's next transaction
//! with all its records at once and judges them (`compare.rs`). A member
//! whose next transaction is later than the others' lacks theirs; its read
//! is kept for the next step. Each blob record's file is downloaded from
//! every member and compared by size and SHA-256 (hashed as it streams,
//! nothing kept), and counted by the bytes throttle.

mod compare;
mod messages;

pub use messages::{ScrubEvent, ScrubProgress, ScrubSettings, StopScrub};

use crate::member::MemberError;
use crate::recovery::copier::{Copier, OpenIterator, Side};
use crate::recovery::is_blob_record;
use crate::recovery::pace::{Pacer, Rates};
use crate::tid::unix_seconds;
use actix::prelude::*;
use compare::{judge, BlobFile, Read, Verdict};
use slog::{error, info, Logger};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zeo::reply::DataRecord;
use zeo::types::Oid;
use zeo::types::Tid;

/// How far back the reported rates look.
const RATE_WINDOW: Duration = Duration::from_secs(10);

/// One member as the scrub reads it.
struct Reader {
    name: Arc<str>,
    copier: Copier,
    iterator: Option<OpenIterator>,
    /// Its next transaction, read but not yet judged (`Some(None)`: its
    /// history has ended).
    pending: Option<Option<Read>>,
}

impl Reader {
    /// Reads the member's next transaction unless one is pending.
    async fn fill(&mut self, from: Tid, to: Tid) -> Result<(), String> {
        if self.pending.is_some() {
            return Ok(());
        }
        let copier = &self.copier;
        let it = match &mut self.iterator {
            Some(it) => it,
            None => {
                let it = copier.iterator(Side::Source, Some(from), Some(to)).await;
                self.iterator.insert(it.map_err(|e| e.to_string())?)
            }
        };
        let read = match copier
            .next_txn(Side::Source, it)
            .await
            .map_err(|e| e.to_string())?
        {
            None => None,
            Some(txn) => {
                let records = copier.records(Side::Source, it, txn.tid).await;
                let records = records.map_err(|e| e.to_string())?;
                let blobs = self.blobs(txn.tid, &records).await?;
                Some(Read { txn, records, blobs })
            }
        };
        self.pending = Some(read);
        Ok(())
    }

    /// The blob file of each oid with a blob record in the transaction
    /// `tid`, downloaded and hashed as it streams, as recovery checks the
    /// files it copies.
    async fn blobs(&self, tid: Tid, records: &[DataRecord]) -> Result<Vec<BlobFile>, String> {
        let mut oids: Vec<Oid> = records
            .iter()
            .filter(|r| r.data.as_deref().is_some_and(is_blob_record))
            .map(|r| r.oid)
            .collect();
        oids.sort();
        oids.dedup();
        let mut blobs = Vec::with_capacity(oids.len());
        for oid in oids {
            let (described, size) = match self.copier.blob_digest(Side::Source, oid, tid).await {
                Ok(digest) => (digest.to_string(), digest.size),
                Err(MemberError::Application { .. }) => ("no blob file".to_owned(), 0),
                Err(e) => return Err(format!("sendBlob of {oid} at {tid}: {e}")),
            };
            blobs.push(BlobFile { oid, described, size });
        }
        Ok(blobs)
    }
}

pub struct ScrubActor {
    settings: ScrubSettings,
    events: Recipient<ScrubEvent>,
    log: Logger,
    /// `None` while a step has them.
    readers: Option<Vec<Reader>>,
    pacer: Pacer,
    rates: Rates,
    started: Instant,
    next: Tid,
    transactions: u64,
    bytes: u64,
    mismatches: u64,
    since_checkpoint: u64,
    last_progress: Instant,
    stop_reason: Option<String>,
}

impl ScrubActor {
    pub fn new(settings: ScrubSettings, events: Recipient<ScrubEvent>, log: Logger) -> ScrubActor {
        let log = log.new(slog::o!("scrub_to" => settings.to.to_hex()));
        let readers = settings
            .members
            .iter()
            .map(|(name, addr)| Reader {
                name: name.clone(),
                copier: Copier::reader(name.clone(), addr.clone(), log.clone()),
                iterator: None,
                pending: None,
            })
            .collect();
        let now = Instant::now();
        ScrubActor {
            pacer: Pacer::new(settings.throttle),
            rates: Rates::new(RATE_WINDOW),
            next: settings.from,
            settings,
            events,
            log,
            readers: Some(readers),
            started: now,
            transactions: 0,
            bytes: 0,
            mismatches: 0,
            since_checkpoint: 0,
            last_progress: now,
            stop_reason: None,
        }
    }

    fn progress(&self) -> ScrubProgress {
        let (from, to) = (self.settings.from, self.settings.to);
        let span = unix_seconds(to) - unix_seconds(from);
        let done = unix_seconds(self.next) - unix_seconds(from);
        let fraction_done = if self.next > to {
            1.0
        } else if span <= 0.0 {
            0.0
        } else {
            (done / span).clamp(0.0, 1.0)
        };
        let estimate = self.rates.estimate(unix_seconds(to));
        let members = self.readers.as_ref().map_or_else(Vec::new, |readers| {
            readers.iter().map(|r| r.name.to_string()).collect()
        });
        ScrubProgress {
            from,
            to,
            next: self.next,
            members,
            transactions: self.transactions,
            bytes: self.bytes,
            mismatches: self.mismatches,
            fraction_done,
            rate_tps: estimate.transactions_per_second,
            eta_seconds: estimate.eta_seconds,
            elapsed_seconds: self.started.elapsed().as_secs_f64(),
        }
    }

    /// Reads every member's next transaction, then judges them.
    fn step(&mut self, ctx: &mut Context<Self>) {
        if let Some(reason) = self.stop_reason.take() {
            return self.fail(reason, ctx);
        }
        let mut readers = self
            .readers
            .take()
            .expect("the readers are lent to one step at a time");
        let (from, to) = (self.settings.from, self.settings.to);
        let started = Instant::now();
        let work = async move {
            let filled = futures::future::join_all(readers.iter_mut().map(|r| r.fill(from, to))).await;
            let failed = filled.into_iter().find_map(Result::err);
            (readers, failed)
        };
        ctx.spawn(work.into_actor(self).map(move |(readers, failed), act, ctx| {
            act.readers = Some(readers);
            match failed {
                Some(reason) => act.fail(format!("a member failed a read: {reason}"), ctx),
                None => act.judge_step(started, ctx),
            }
        }));
    }

    fn judge_step(&mut self, started: Instant, ctx: &mut Context<Self>) {
        let readers = self.readers.as_mut().expect("back from the step");
        let names: Vec<Arc<str>> = readers.iter().map(|r| r.name.clone()).collect();
        let reads: Vec<Option<&Read>> = readers
            .iter()
            .map(|r| r.pending.as_ref().and_then(Option::as_ref))
            .collect();
        let verdict = judge(&names, &reads);
        let (tid, bytes) = match &verdict {
            Verdict::End => return self.finish(ctx),
            Verdict::Same { tid } | Verdict::Majority { tid, .. } | Verdict::NoMajority { tid, .. } => {
                (*tid, reads.iter().flatten().map(|r| r.bytes()).max().unwrap_or(0))
            }
        };
        match verdict {
            Verdict::NoMajority { reason, .. } => return self.inconsistent(tid, reason, ctx),
            Verdict::Majority { differing, .. } => self.diverged(tid, differing),
            _ => {}
        }
        // The transactions at `tid` are judged; later ones stay pending.
        for reader in self.readers.as_mut().expect("still here") {
            if reader
                .pending
                .as_ref()
                .is_some_and(|p| p.as_ref().is_some_and(|r| r.txn.tid == tid))
            {
                reader.pending = None;
            }
        }
        self.account(tid, bytes);
        if self.readers.as_ref().is_some_and(|r| r.len() < 2) {
            return self.fail("fewer than 2 members left to compare".into(), ctx);
        }
        let delay = self.pacer.delay_after(started, bytes, Instant::now());
        ctx.run_later(delay, |act, ctx| act.step(ctx));
    }

    fn account(&mut self, tid: Tid, bytes: u64) {
        self.transactions += 1;
        self.bytes += bytes;
        self.since_checkpoint += 1;
        self.next = Tid::from_u64(tid.as_u64().saturating_add(1));
        self.rates
            .observe(Instant::now(), self.transactions, self.bytes, unix_seconds(tid));
        let checkpoint = self.since_checkpoint >= self.settings.checkpoint_every;
        if checkpoint || self.last_progress.elapsed() >= self.settings.progress_interval {
            self.since_checkpoint = 0;
            self.last_progress = Instant::now();
            self.events.do_send(ScrubEvent::Progress(self.progress()));
        }
    }

    /// The members that differ from the majority leave the scrub; the
    /// controller degrades them.
    fn diverged(&mut self, tid: Tid, differing: Vec<(usize, String)>) {
        let readers = self.readers.as_mut().expect("back from the step");
        let names: Vec<Arc<str>> = readers.iter().map(|r| r.name.clone()).collect();
        for (i, reason) in &differing {
            self.mismatches += 1;
            let member = names[*i].to_string();
            error!(self.log, "scrub: member differs from the majority"; "member" => &member,
                "tid" => tid.to_hex(), "reason" => reason);
            self.events.do_send(ScrubEvent::Diverged {
                member,
                tid,
                reason: format!("scrub: {reason}"),
            });
        }
        let gone: Vec<usize> = differing.iter().map(|(i, _)| *i).collect();
        let mut index = 0;
        readers.retain(|_| {
            index += 1;
            !gone.contains(&(index - 1))
        });
    }

    fn inconsistent(&mut self, tid: Tid, reason: String, ctx: &mut Context<Self>) {
        self.mismatches += 1;
        error!(self.log, "scrub: the members differ and no majority tells which is right";
            "tid" => tid.to_hex(), "reason" => &reason);
        self.events.do_send(ScrubEvent::Inconsistent {
            tid,
            reason,
            progress: self.progress(),
        });
        ctx.stop();
    }

    fn finish(&mut self, ctx: &mut Context<Self>) {
        self.next = Tid::from_u64(self.settings.to.as_u64().saturating_add(1));
        let progress = self.progress();
        info!(self.log, "scrub finished"; "transactions" => progress.transactions,
            "mismatches" => progress.mismatches, "elapsed_seconds" => format!("{:.1}", progress.elapsed_seconds));
        self.events.do_send(ScrubEvent::Finished(progress));
        ctx.stop();
    }

    fn fail(&mut self, reason: String, ctx: &mut Context<Self>) {
        error!(self.log, "scrub stopped"; "reason" => &reason, "next_tid" => self.next.to_hex());
        self.events.do_send(ScrubEvent::Failed {
            reason,
            progress: self.progress(),
        });
        ctx.stop();
    }
}

impl Actor for ScrubActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        info!(self.log, "scrub started"; "from" => self.settings.from.to_hex(),
            "members" => ?self.settings.members.iter().map(|(n, _)| &**n).collect::<Vec<_>>());
        self.step(ctx);
    }
}

impl Handler<StopScrub> for ScrubActor {
    type Result = ();

    /// Acted on before the next step (a step in flight finishes first).
    fn handle(&mut self, msg: StopScrub, _ctx: &mut Context<Self>) {
        self.stop_reason = Some(msg.reason);
    }
}
