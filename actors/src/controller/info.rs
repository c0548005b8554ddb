//! What zeoraid tells clients about "its storage": `get_info` (from which
//! ClientStorage switches blobs, undo, iteration and restore on or off) and
//! `server_status`.

use super::*;

impl Controller {
    /// The first optimal member's `get_info` dict, with the capabilities
    /// narrowed to what *every* optimal member has: a client must not use a
    /// feature (blobs, undo) that one mirror lacks.
    fn merged_info(&self) -> Value {
        let infos: Vec<&Value> = self
            .members
            .iter()
            .filter(|m| m.optimal())
            .filter_map(|m| m.info.as_ref())
            .collect();
        let Some(Value::Dict(first)) = infos.first().copied() else {
            return Value::Dict(vec![
                (Value::str("name"), Value::str("zeoraid")),
                (Value::str("interfaces"), Value::Tuple(vec![])),
            ]);
        };
        let interfaces = |info: &Value| -> Vec<Value> {
            info.dict_get("interfaces")
                .and_then(Value::as_seq)
                .map(<[Value]>::to_vec)
                .unwrap_or_default()
        };
        let all = |key: &str| {
            infos
                .iter()
                .all(|i| i.dict_get(key).is_some_and(Value::is_truthy))
        };
        let common: Vec<Value> = interfaces(infos[0])
            .into_iter()
            .filter(|iface| infos.iter().all(|info| interfaces(info).contains(iface)))
            .collect();
        let merged = first
            .iter()
            .map(|(k, v)| {
                let v = match k.as_str() {
                    Some("interfaces") => Value::Tuple(common.clone()),
                    Some("supportsUndo") => Value::Bool(all("supportsUndo")),
                    Some("supports_record_iternext") => Value::Bool(all("supports_record_iternext")),
                    Some("name") => {
                        Value::str(format!("zeoraid {:?} over {} members", self.storage, infos.len()))
                    }
                    _ => v.clone(),
                };
                (k.clone(), v)
            })
            .collect();
        Value::Dict(merged)
    }

    /// ZEO's `server_status` keys. `loads` and `stores` are counted where
    /// they happen, by the members: each load goes to one member (summed),
    /// each store to every member (the largest count).
    fn server_status(&self, member_statuses: &[Value]) -> Value {
        let count = |s: &Value, key: &str| s.dict_get(key).and_then(Value::as_i64).unwrap_or(0);
        let loads: i64 = member_statuses.iter().map(|s| count(s, "loads")).sum();
        let stores = member_statuses
            .iter()
            .map(|s| count(s, "stores"))
            .max()
            .unwrap_or(0);
        let start = self
            .stats
            .start
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        let active = usize::from(self.lock.commit().is_some())
            + usize::from(self.lock.finishing().is_some())
            + self.lock.votes_waiting();
        let entries: Vec<(&str, Value)> = vec![
            ("connections", Value::Int(self.sessions.len() as i64)),
            ("loads", Value::Int(loads)),
            ("stores", Value::Int(stores)),
            ("commits", Value::Int(self.stats.commits as i64)),
            ("aborts", Value::Int(self.stats.aborts as i64)),
            ("active_txns", Value::Int(active as i64)),
            ("lock_time", Value::None),
            ("conflicts", Value::Int(self.stats.conflicts as i64)),
            ("conflicts_resolved", Value::Int(0)),
            ("start", Value::str(format!("{} (unix time)", start.unwrap_or(0)))),
            ("waiting", Value::Int(self.lock.votes_waiting() as i64)),
            ("timeout-thread-is-alive", Value::str("stub")),
            ("last-transaction", Value::str(self.last_tid.to_hex())),
            ("raid-status", Value::str(self.array_status().as_str())),
        ];
        Value::Dict(entries.into_iter().map(|(k, v)| (Value::str(k), v)).collect())
    }
}

impl Handler<GetInfo> for Controller {
    type Result = MessageResult<GetInfo>;

    fn handle(&mut self, _: GetInfo, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.merged_info())
    }
}

/// How long `server_status` waits for each member's counters.
const MEMBER_STATUS_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);

impl Handler<ServerStatus> for Controller {
    type Result = ResponseActFuture<Self, Value>;

    fn handle(&mut self, _: ServerStatus, _ctx: &mut Context<Self>) -> Self::Result {
        // Counters only: a member that does not answer promptly is left
        // out rather than holding up a status probe (`ruok`) for a whole
        // call deadline; its own deadline still degrades it.
        let calls: Vec<_> = self
            .readers()
            .into_iter()
            .map(|m| {
                let call = m.send(crate::member::Call(zeo::methods::Request::ServerStatus));
                async move { tokio::time::timeout(MEMBER_STATUS_WITHIN, call).await.ok() }
            })
            .collect();
        Box::pin(
            futures::future::join_all(calls)
                .into_actor(self)
                .map(|results, act, _| {
                    let statuses: Vec<Value> = results
                        .into_iter()
                        .filter_map(|r| match r {
                            Some(Ok(Ok(zeo::reply::Reply::ServerStatus(status)))) => Some(status),
                            _ => None,
                        })
                        .collect();
                    act.server_status(&statuses)
                }),
        )
    }
}
