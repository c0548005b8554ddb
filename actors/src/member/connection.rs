//! One connection to a member: establishing it (TCP or Unix socket,
//! handshake, `register`, `get_info`) and the two tasks that move its bytes.
//!
//! The actor never awaits network I/O in a handler: establishing runs as a
//! spawned future (a `ctx.wait` here would leave the member unanswerable for
//! the whole outage), the reader task forwards frames to the actor's mailbox,
//! and the writer task drains an ordered queue, so writes keep the order in
//! which the actor handled the calls.

use super::error::MemberError;
use super::settings::{MemberAddress, MemberSettings};
use crate::metrics::{self, Peer};
use futures::StreamExt;
use std::io;
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio_util::codec::FramedRead;
use zeo::encoding::Encoding;
use zeo::exceptions::ZeoError;
use zeo::framing::{encode_frame, FrameCodec};
use zeo::handshake::{client_reply, Protocol};
use zeo::message::{Message, MsgId};
use zeo::methods::{Register, Request};
use zeo::reply::Reply;
use zeo::types::Tid;
use zeo::{CodecError, Value};

pub(crate) use crate::wire::{ByteWriter, FrameReader};

/// A connected, registered member.
pub(crate) struct Established {
    pub reader: FrameReader,
    pub writer: ByteWriter,
    pub protocol: Protocol,
    pub last_tid: Tid,
    pub info: Value,
}

/// Opens the socket (TCP with `TCP_NODELAY`: every ZEO call is a small
/// request waiting for a reply, Nagle would add latency to each).
pub(crate) async fn open(settings: &MemberSettings) -> io::Result<(FrameReader, ByteWriter)> {
    let codec = FrameCodec::new(settings.max_frame);
    match &settings.address {
        MemberAddress::Tcp(hostport) => {
            let stream = tokio::net::TcpStream::connect(hostport.as_str()).await?;
            stream.set_nodelay(true)?;
            let (r, w) = stream.into_split();
            Ok((
                FramedRead::new(Box::new(r) as Box<dyn AsyncRead + Unpin>, codec),
                Box::new(w),
            ))
        }
        MemberAddress::Unix(path) => {
            let stream = tokio::net::UnixStream::connect(path).await?;
            let (r, w) = stream.into_split();
            Ok((
                FramedRead::new(Box::new(r) as Box<dyn AsyncRead + Unpin>, codec),
                Box::new(w),
            ))
        }
    }
}

/// The client side of the handshake, then `register` and `get_info`
/// pipelined (as ClientStorage does).
pub(crate) async fn handshake(
    settings: &MemberSettings,
    mut reader: FrameReader,
    mut writer: ByteWriter,
) -> Result<Established, MemberError> {
    let member = settings.name.as_str();
    let protocol_error = |error: CodecError| MemberError::Protocol {
        member: member.to_owned(),
        error,
    };
    let closed = || MemberError::Unavailable {
        member: member.to_owned(),
        reason: "connection closed during the handshake".into(),
    };
    let announcement = reader.next().await.ok_or_else(closed)?.map_err(protocol_error)?;
    metrics::bytes_in(Peer::Member).inc_by(announcement.len() as u64 + metrics::FRAME_HEADER);
    let (protocol, answer) = client_reply(&announcement, settings.allow_msgpack).map_err(protocol_error)?;
    let encoding = Encoding::from(protocol);
    let register = Request::Register(Register {
        storage: settings.storage.clone(),
        read_only: settings.read_only,
    });
    let mut out = encode_frame(&answer).map_err(protocol_error)?.to_vec();
    for (id, request) in [(1, register), (2, Request::GetInfo)] {
        let frame = encoding
            .encode_frame(&request.to_message(MsgId::int(id)).into_value())
            .map_err(protocol_error)?;
        out.extend_from_slice(&frame);
    }
    writer.write_all(&out).await.map_err(|e| io_error(member, e))?;
    metrics::bytes_out(Peer::Member).inc_by(out.len() as u64);

    let (mut last_tid, mut info) = (None, None);
    while last_tid.is_none() || info.is_none() {
        let frame = reader.next().await.ok_or_else(closed)?.map_err(protocol_error)?;
        metrics::bytes_in(Peer::Member).inc_by(frame.len() as u64 + metrics::FRAME_HEADER);
        let msg =
            Message::from_value(encoding.decode(&frame).map_err(protocol_error)?).map_err(protocol_error)?;
        match msg {
            Message::Reply { msgid, result } if msgid == MsgId::int(1) => {
                match Reply::decode("register", &result).map_err(protocol_error)? {
                    Reply::Register(Some(tid)) => last_tid = Some(tid),
                    other => {
                        return Err(protocol_error(CodecError::Reply {
                            method: "register".into(),
                            problem: format!("expected a tid, got {other:?}"),
                        }))
                    }
                }
            }
            Message::Reply { msgid, result } if msgid == MsgId::int(2) => info = Some(result),
            Message::ErrorReply { msgid, error } if msgid == MsgId::int(1) => {
                let error = ZeoError::from_value(&error).map_err(protocol_error)?;
                return Err(MemberError::Register {
                    member: member.to_owned(),
                    error,
                });
            }
            Message::ErrorReply { error, .. } => {
                let error = ZeoError::from_value(&error).map_err(protocol_error)?;
                return Err(MemberError::Application {
                    member: member.to_owned(),
                    error,
                });
            }
            // Nothing else is expected before register completes; a heartbeat
            // or stray callback is harmless.
            _ => {}
        }
    }
    Ok(Established {
        reader,
        writer,
        protocol,
        last_tid: last_tid.expect("loop ends with a tid"),
        info: info.expect("loop ends with info"),
    })
}

pub(crate) fn io_error(member: &str, e: io::Error) -> MemberError {
    MemberError::Unavailable {
        member: member.to_owned(),
        reason: format!("I/O error: {e}"),
    }
}
