//! What a member tells its subscriber (the controller), in arrival order.

use super::snapshot::ConnState;
use actix::Message;
use std::sync::Arc;
use zeo::callbacks::Callback;
use zeo::types::Tid;
use zeo::Value;

#[derive(Clone, Debug, Message)]
#[rtype(result = "()")]
pub enum MemberEvent {
    /// A server→client callback (`invalidateTransaction`, `info`),
    /// forwarded exactly in the order the member sent them. Blob streams
    /// are not: they go only to the `SendBlob` that asked for them.
    Callback { member: Arc<str>, callback: Callback },
    /// The connection changed state, with the reason; on `ready`, what the
    /// member said when it registered.
    State {
        member: Arc<str>,
        state: ConnState,
        reason: String,
        connected: Option<Connected>,
    },
}

/// What a member reported when its connection became ready.
#[derive(Clone, Debug)]
pub struct Connected {
    /// `register`'s answer: the member's last committed tid.
    pub last_tid: Tid,
    /// The member's `get_info` dict (interfaces, sizes).
    pub info: Value,
}
