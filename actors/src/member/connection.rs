//! One connection to a member: establishing it (TCP or Unix socket, TLS
//! when configured, handshake, `register`, `get_info`) and the two tasks that move its bytes.
//!
//! The actor never awaits network I/O in a handler: establishing runs as a
//! spawned future (a `ctx.wait` here would leave the member unanswerable for
//! the whole outage), the reader task forwards frames to the actor's mailbox,
//! and the writer task drains an ordered queue, so writes keep the order in
//! which the actor handled the calls.

use super::error::MemberError;
use super::settings::{MemberAddress, MemberSettings, MemberTls};
use crate::metrics::{self, Peer};
use futures::StreamExt;
use std::io;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::FramedRead;
use zeo::encoding::Encoding;
use zeo::exceptions::ZeoError;
use zeo::framing::encode_frame;
use zeo::handshake::{client_reply, Protocol};
use zeo::message::{Message, MsgId};
use zeo::methods::{IteratorGc, IteratorNext, IteratorStart, Register, Request};
use zeo::oversized::{Frame, SkippingFrameCodec};
use zeo::reply::Reply;
use zeo::types::Tid;
use zeo::{CodecError, Value};

pub(crate) use crate::wire::{ByteWriter, MemberFrameReader};

/// A connected, registered member.
pub(crate) struct Established {
    pub reader: MemberFrameReader,
    pub writer: ByteWriter,
    pub protocol: Protocol,
    /// Where the member's history ends (see [`history_end`]).
    pub last_tid: Tid,
    /// What its `register()` said, when that is a transaction it does not
    /// have.
    pub dropped_tid: Option<Tid>,
    pub info: Value,
}

/// Opens the socket (TCP with `TCP_NODELAY`: every ZEO call is a small
/// request waiting for a reply, Nagle would add latency to each), then
/// TLS over it when the member has a `[members.tls]` table.
pub(crate) async fn open(settings: &MemberSettings) -> io::Result<(MemberFrameReader, ByteWriter)> {
    let codec = SkippingFrameCodec::new(settings.max_frame);
    let (reader, writer): (Box<dyn AsyncRead + Unpin>, ByteWriter) = match &settings.address {
        MemberAddress::Tcp(hostport) => {
            let stream = tokio::net::TcpStream::connect(hostport.as_str()).await?;
            stream.set_nodelay(true)?;
            match &settings.tls {
                Some(tls) => split(tls_connect(tls, stream).await?),
                None => {
                    let (r, w) = stream.into_split();
                    (Box::new(r), Box::new(w))
                }
            }
        }
        MemberAddress::Unix(path) => {
            let stream = tokio::net::UnixStream::connect(path).await?;
            match &settings.tls {
                Some(tls) => split(tls_connect(tls, stream).await?),
                None => {
                    let (r, w) = stream.into_split();
                    (Box::new(r), Box::new(w))
                }
            }
        }
    };
    Ok((FramedRead::new(reader, codec), writer))
}

/// The TLS handshake with the certificates in force now (a reload changes
/// them for the next connection); its error says that TLS failed and why
/// (an unknown issuer, a name mismatch), which becomes the member's
/// degraded reason.
async fn tls_connect<S>(tls: &MemberTls, stream: S) -> io::Result<tokio_rustls::client::TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tokio_rustls::TlsConnector::from(tls.config.current())
        .connect(tls.server_name.clone(), stream)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("TLS handshake failed: {e}")))
}

/// A TLS stream's halves (one lock shared by the two, taken per read and
/// write; a plain socket splits without one).
fn split<S>(stream: S) -> (Box<dyn AsyncRead + Unpin>, ByteWriter)
where
    S: AsyncRead + AsyncWrite + 'static,
{
    let (r, w) = tokio::io::split(stream);
    (Box::new(r), Box::new(w))
}

/// The client side of the handshake, then `register` and `get_info`
/// pipelined (as ClientStorage does), then where the member's history
/// really ends ([`history_end`]).
pub(crate) async fn handshake(
    settings: &MemberSettings,
    mut reader: MemberFrameReader,
    mut writer: ByteWriter,
) -> Result<Established, MemberError> {
    let member = settings.name.as_str();
    let protocol_error = |error: CodecError| MemberError::Protocol {
        member: member.to_owned(),
        error,
    };
    let max_frame = reader.decoder().max_frame();
    let announcement = reader
        .next()
        .await
        .ok_or_else(|| closed_during_handshake(member))?
        .and_then(|frame| frame.into_whole(max_frame))
        .map_err(protocol_error)?;
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

    let mut raw = RawCalls {
        member,
        encoding,
        reader: &mut reader,
        writer: &mut writer,
    };
    let (mut reported, mut info) = (None, None);
    while reported.is_none() || info.is_none() {
        match raw.next_message().await? {
            Message::Reply { msgid, result } if msgid == MsgId::int(1) => {
                match Reply::decode("register", &result).map_err(protocol_error)? {
                    Reply::Register(Some(tid)) => reported = Some(tid),
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
    let reported = reported.expect("loop ends with a tid");
    let last_tid = history_end(&mut raw, reported).await?;
    // From now on the member answers calls that may be larger than
    // max_frame_size (`member/oversized.rs`); before, such a frame is a
    // broken server, refused from its header.
    reader.decoder_mut().read_past_oversized();
    Ok(Established {
        reader,
        writer,
        protocol,
        last_tid,
        dropped_tid: (last_tid != reported).then_some(reported),
        info: info.expect("loop ends with info"),
    })
}

fn closed_during_handshake(member: &str) -> MemberError {
    MemberError::Unavailable {
        member: member.to_owned(),
        reason: "connection closed during the handshake".into(),
    }
}

/// Where a member's history ends. `register()` names the last transaction
/// it committed, except after its FileStorage was killed between a vote
/// and `tpc_finish`: reopened, it drops that transaction yet still reports
/// its tid. Taken at its word, such a member would count as holding a
/// transaction it does not have, and serve the older revision beside a
/// member that has it. So that transaction is looked up: when it is not
/// there, the tid just below is reported, which puts the member behind any
/// member that has the transaction and level with those that dropped it
/// too (recovery finds where its history really ends). A member that
/// cannot iterate is taken at its word.
async fn history_end(raw: &mut RawCalls<'_>, reported: Tid) -> Result<Tid, MemberError> {
    if reported == Tid::ZERO {
        return Ok(reported);
    }
    let start = Request::IteratorStart(IteratorStart {
        start: Some(reported),
        stop: Some(reported),
    });
    let iid = match raw.call(3, start).await? {
        Ok(Reply::IteratorStart(iid)) => iid,
        _ => return Ok(reported),
    };
    let found = match raw.call(4, Request::IteratorNext(IteratorNext { iid })).await? {
        Ok(Reply::IteratorNext(Some(txn))) => {
            // The server keeps an iterator until it is exhausted or freed.
            raw.oneway(Request::IteratorGc(IteratorGc { iids: vec![iid] }))
                .await?;
            txn.tid == reported
        }
        Ok(Reply::IteratorNext(None)) => false,
        _ => return Ok(reported),
    };
    Ok(if found {
        reported
    } else {
        Tid::from_u64(reported.as_u64() - 1)
    })
}

/// Messages on a connection that is still being established (no reader
/// and writer tasks yet); calls go one at a time, each waiting for its
/// own reply.
struct RawCalls<'a> {
    member: &'a str,
    encoding: Encoding,
    reader: &'a mut MemberFrameReader,
    writer: &'a mut ByteWriter,
}

impl RawCalls<'_> {
    fn protocol_error(&self, error: CodecError) -> MemberError {
        MemberError::Protocol {
            member: self.member.to_owned(),
            error,
        }
    }

    /// The next message from the member.
    async fn next_message(&mut self) -> Result<Message, MemberError> {
        let max_frame = self.reader.decoder().max_frame();
        let frame = self
            .reader
            .next()
            .await
            .ok_or_else(|| closed_during_handshake(self.member))?
            .and_then(|frame: Frame| frame.into_whole(max_frame))
            .map_err(|e| self.protocol_error(e))?;
        metrics::bytes_in(Peer::Member).inc_by(frame.len() as u64 + metrics::FRAME_HEADER);
        let value = self.encoding.decode(&frame).map_err(|e| self.protocol_error(e))?;
        Message::from_value(value).map_err(|e| self.protocol_error(e))
    }

    async fn send(&mut self, msgid: MsgId, request: Request) -> Result<(), MemberError> {
        let frame = self
            .encoding
            .encode_frame(&request.to_message(msgid).into_value())
            .map_err(|e| self.protocol_error(e))?;
        self.writer
            .write_all(&frame)
            .await
            .map_err(|e| io_error(self.member, e))?;
        metrics::bytes_out(Peer::Member).inc_by(frame.len() as u64);
        Ok(())
    }

    async fn oneway(&mut self, request: Request) -> Result<(), MemberError> {
        self.send(MsgId::ASYNC, request).await
    }

    /// The member's answer to `request` (its error reply as `Err`); a
    /// closed connection or an undecodable answer is the `MemberError`.
    async fn call(&mut self, id: i64, request: Request) -> Result<Result<Reply, ZeoError>, MemberError> {
        let name = request.name().to_owned();
        self.send(MsgId::int(id), request).await?;
        loop {
            match self.next_message().await? {
                Message::Reply { msgid, result } if msgid == MsgId::int(id) => {
                    let reply = Reply::decode(&name, &result).map_err(|e| self.protocol_error(e))?;
                    return Ok(Ok(reply));
                }
                Message::ErrorReply { msgid, error } if msgid == MsgId::int(id) => {
                    let error = ZeoError::from_value(&error).map_err(|e| self.protocol_error(e))?;
                    return Ok(Err(error));
                }
                // Callbacks (invalidations of other clients' commits) are
                // harmless here, as during the handshake.
                _ => {}
            }
        }
    }
}

pub(crate) fn io_error(member: &str, e: io::Error) -> MemberError {
    MemberError::Unavailable {
        member: member.to_owned(),
        reason: format!("I/O error: {e}"),
    }
}
