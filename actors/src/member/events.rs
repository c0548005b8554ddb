//! What a member tells its subscriber (the controller), in arrival order.

use super::snapshot::ConnState;
use actix::Message;
use std::sync::Arc;
use zeo::callbacks::Callback;

#[derive(Clone, Debug, Message)]
#[rtype(result = "()")]
pub enum MemberEvent {
    /// A server→client callback (`invalidateTransaction`, `info`, blob
    /// chunks), forwarded exactly in the order the member sent them.
    Callback { member: Arc<str>, callback: Callback },
    /// The connection changed state, with the reason.
    State {
        member: Arc<str>,
        state: ConnState,
        reason: String,
    },
}
