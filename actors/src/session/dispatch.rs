//! What a session does with each ZEO method (`docs/zeo-protocol.md#methods`) and with
//! each message from the controller: checks that apply to every call, then
//! a route to the file of the method's family, as `zeo/src/methods/` groups
//! them: [`registration`](super::registration) (the session family),
//! [`reads`](super::reads), [`commit`](super::commit),
//! [`undo_pack`](super::undo_pack), [`iteration`](super::iteration), and
//! the `raid_*` calls in [`management`](super::management).

use super::reads::as_is;
use super::*;
use crate::controller as ctl;
use zeo::methods::Request;
use zeo::CodecError;

/// Why an asynchronous call was not taken: the error a sync caller gets,
/// and the reason logged when an async caller's connection is closed.
pub(super) struct Refusal {
    pub error: ZeoError,
    pub reason: String,
}

impl Refusal {
    pub fn new(error: ZeoError, reason: &str) -> Refusal {
        Refusal {
            error,
            reason: reason.to_owned(),
        }
    }

    pub fn transaction(problem: &str) -> Refusal {
        Refusal::new(
            ZeoError::StorageTransactionError(vec![Value::str(problem)]),
            problem,
        )
    }

    pub fn not_async(request: &Request) -> Refusal {
        let problem = format!("{} is not an asynchronous method", request.name());
        Refusal::new(ZeoError::ValueError(problem.clone()), &problem)
    }
}

impl ClientSession {
    pub(super) fn on_call(
        &mut self,
        ctx: &mut Context<Self>,
        msgid: MsgId,
        oneway: bool,
        name: &str,
        args: &Value,
    ) {
        if !self.registered && name != "register" {
            return self.close(ctx, &format!("{name} called before register"));
        }
        // Nothing callable from a client reaches a member: the decoder
        // already refused every global but a few data classes; an object
        // node left over (other than the ZopeUndo.Prefix filter of undoInfo,
        // which zeoraid evaluates itself) is refused too.
        if forwards_an_object(name, args) {
            let problem = format!("{name}: pickled objects are not accepted in arguments");
            if oneway {
                return self.close(ctx, &problem);
            }
            return self.error(msgid, ZeoError::ValueError(problem));
        }
        let request = match Request::decode(name, args) {
            // Served whatever the array's state: operators need them most
            // when it has failed.
            Ok(Request::Raid { name, args }) if !oneway => {
                return self.on_management(ctx, msgid, &name, &args);
            }
            Ok(Request::Raid { .. }) | Err(CodecError::UnknownMethod(_)) => {
                return self.close(ctx, &format!("unknown method {name:?}"));
            }
            Ok(request) => request,
            Err(e) if oneway => return self.close(ctx, &format!("bad asynchronous call: {e}")),
            Err(e) => return self.error(msgid, argument_error(&e)),
        };
        // Once the array has failed in `close` mode every call gets the
        // reason; only what ends a transaction still goes through (a vote
        // that succeeded must be finished or aborted on the members).
        if let Serving::Closed(reason) = &self.serving {
            let ends_a_transaction = matches!(
                request,
                Request::Register(_) | Request::TpcFinish(_) | Request::TpcAbort(_)
            );
            if !oneway && !ends_a_transaction {
                return self.error(msgid, ZeoError::unavailable(reason));
            }
        }
        if request.is_oneway() {
            // ZEO answers any sync call, even of a method clients send
            // asynchronously (tests do: `iterator_gc` through `_call`), and
            // closes the connection when an async call fails (no reply
            // possible).
            match self.on_async(request) {
                Ok(()) if !oneway => self.reply(msgid, Value::None),
                Ok(()) => {}
                Err(refusal) if oneway => self.close(ctx, &refusal.reason),
                Err(refusal) => self.error(msgid, refusal.error),
            }
        } else {
            self.on_request(ctx, msgid, request)
        }
    }

    /// A load, a store, or a call that ends a transaction, the calls a
    /// proxy relays most, read without a value tree ([`zeo::fast_path`]) when it passes the checks
    /// [`Self::on_call`] would make; false (nothing done) otherwise, and
    /// the generic path makes those checks and answers.
    pub(super) fn on_fast_frame(
        &mut self,
        ctx: &mut Context<Self>,
        encoding: Encoding,
        frame: &Bytes,
    ) -> bool {
        if !self.registered {
            return false;
        }
        if let Some(store) = zeo::fast_path::read_storea_call(encoding, frame) {
            if let Err(refusal) = self.on_async(Request::Storea(store)) {
                self.close(ctx, &refusal.reason);
            }
            return true;
        }
        if matches!(self.serving, Serving::Closed(_)) {
            return false;
        }
        if let Some((msgid, load)) = zeo::fast_path::read_load_before_call(encoding, frame) {
            self.load_before(ctx, msgid, load);
            return true;
        }
        let Some((msgid, request)) = zeo::fast_path::read_txn_call(encoding, frame) else {
            return false;
        };
        self.on_request(ctx, msgid, request);
        true
    }

    /// The methods ZEO clients send asynchronously: buffered or applied at
    /// once, never answered themselves.
    fn on_async(&mut self, request: Request) -> Result<(), Refusal> {
        match request {
            Request::SetClientLabel(l) => self.set_label(l.label),
            Request::IteratorGc(gc) => self.iterator_gc(gc.iids),
            // Every other asynchronous method belongs to a transaction.
            other => return self.on_transaction_call(other),
        }
        Ok(())
    }

    fn on_request(&mut self, ctx: &mut Context<Self>, msgid: MsgId, request: Request) {
        let coop = self.cluster_mode == ClusterMode::Coop;
        match request {
            Request::Register(r) => self.register(ctx, msgid, r),
            Request::GetInfo => self.ask(ctx, msgid, self.controller.send(ctl::GetInfo), Ok),
            Request::LastTransaction => self.last_transaction(ctx, msgid),
            Request::ServerStatus => self.ask(ctx, msgid, self.controller.send(ctl::ServerStatus), Ok),
            Request::Ping => self.reply(msgid, Value::None),
            Request::LoadBefore(load) => self.load_before(ctx, msgid, load),
            Request::LoadSerial(_) if coop => self.read_voted(ctx, msgid, request, None),
            Request::UndoInfo(u) if matches!(&u.spec, Value::Dict(items) if !items.is_empty()) => {
                self.undo_info_filtered(ctx, msgid, u)
            }
            Request::GetInvalidations(_)
            | Request::LoadSerial(_)
            | Request::GetTid(_)
            | Request::History(_)
            | Request::RecordIternext(_)
            | Request::UndoLog(_)
            | Request::UndoInfo(_) => self.read(ctx, msgid, request, None, as_is, Vec::new()),
            Request::SendBlob(s) => self.send_blob(ctx, msgid, s.oid, s.serial),
            Request::IteratorStart(_) => self.iterator_start(ctx, msgid, request),
            Request::IteratorNext(n) => self.iterator_next(ctx, msgid, n.iid),
            Request::IteratorRecordNext(n) => self.iterator_record_next(ctx, msgid, n.riid),
            Request::IteratorRecordStart(s) => self.iterator_record_start(ctx, msgid, s.txn_iid, s.tid),
            Request::NewOids(n) => self.new_oids(ctx, msgid, n.n),
            Request::NewOid(_) => self.new_oid(msgid),
            Request::Pack(p) => self.pack(msgid, p),
            Request::Vote(v) => self.vote(msgid, v.id),
            Request::TpcFinish(f) => self.tpc_finish(msgid, f.id),
            Request::TpcAbort(a) => self.tpc_abort(msgid, a.id),
            // Asynchronous methods are handled by `on_async`.
            _ => {}
        }
    }

    pub(super) fn on_controller(&mut self, msg: ToSession) {
        match msg {
            ToSession::Registered { msgid, result } => self.on_registered(msgid, result),
            ToSession::Voted { msgid, result } => self.on_voted(msgid, result),
            ToSession::Finished { msgid, result } => self.on_finished(msgid, result),
            ToSession::Aborted { msgid } => self.on_aborted(msgid),
            ToSession::Packed { msgid, result } => self.on_packed(msgid, result),
            ToSession::Info(info) => self.on_info(info),
            ToSession::Invalidate { tid, oids } => self.on_invalidate(tid, oids),
            ToSession::Serving {
                readers,
                serving,
                cluster_mode,
            } => self.on_serving(readers, serving, cluster_mode),
        }
    }
}

/// What a client gets for arguments that do not decode: a `TypeError` for
/// a wrong count, a `ValueError` for a wrong argument, as Python raises.
fn argument_error(e: &CodecError) -> ZeoError {
    let class = if matches!(e, CodecError::Arity { .. }) {
        "TypeError"
    } else {
        "ValueError"
    };
    ZeoError::Other {
        class: format!("builtins.{class}"),
        payload: Value::tuple([Value::str(e.to_string())]),
    }
}

/// Whether a pickled object is in the arguments that could reach a member:
/// all of them, except an `undoInfo` dict spec, which zeoraid evaluates
/// itself (`undo_filter`).
fn forwards_an_object(name: &str, args: &Value) -> bool {
    match (name, args.as_seq()) {
        ("undoInfo", Some([first, last, Value::Dict(items)])) if !items.is_empty() => {
            contains_object(first) || contains_object(last)
        }
        _ => contains_object(args),
    }
}

fn contains_object(v: &Value) -> bool {
    match v {
        Value::Global { .. } | Value::Reduce { .. } | Value::Object { .. } => true,
        Value::Tuple(items) | Value::List(items) => items.iter().any(contains_object),
        Value::Dict(items) => items
            .iter()
            .any(|(k, v)| contains_object(k) || contains_object(v)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix() -> Value {
        Value::Object {
            class: Box::new(Value::Global {
                module: "ZopeUndo.Prefix".into(),
                name: "Prefix".into(),
            }),
            args: Box::new(Value::Tuple(vec![])),
            state: None,
        }
    }

    #[test]
    fn only_an_undo_info_dict_spec_may_hold_objects() {
        let spec = Value::Dict(vec![(Value::str("user_name"), prefix())]);
        let args = |spec: Value| Value::tuple([Value::Int(0), Value::Int(-20), spec]);
        assert!(!forwards_an_object("undoInfo", &args(spec.clone())));
        assert!(
            forwards_an_object("undoInfo", &args(Value::List(vec![prefix()]))),
            "not a dict spec"
        );
        assert!(forwards_an_object(
            "undoInfo",
            &Value::tuple([prefix(), Value::Int(-20), spec])
        ));
        assert!(forwards_an_object("ping", &Value::tuple([prefix()])));
        assert!(!forwards_an_object("ping", &Value::tuple([])));
    }
}
