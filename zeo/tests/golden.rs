//! Golden tests: every frame of the 17 real captured ZEO sessions, in both
//! directions, decodes into the typed layer; re-encoding the typed message and
//! decoding it again gives an equal message. Replies are typed by the method of
//! the call with the same msgid on the same connection.

mod capture;

use bytes::Bytes;
use capture::{all_frames, Dir, Frame, Kind};
use std::collections::HashMap;
use zeo::callbacks::Callback;
use zeo::encoding::Encoding;
use zeo::exceptions::ZeoError;
use zeo::handshake::{server_accept, server_announcement, ClientHello, Protocol};
use zeo::message::{Message, MsgId};
use zeo::methods::Request;
use zeo::reply::Reply;
use zeo::{CodecError, PickleError};

/// A frame decoded all the way down.
#[derive(Debug, PartialEq)]
enum Typed {
    Request(MsgId, bool, Request),
    Callback(Callback),
    Reply(MsgId, Reply),
    Error(MsgId, ZeoError),
    Heartbeat,
}

fn decode_typed(
    enc: Encoding,
    payload: &Bytes,
    dir: Dir,
    pending: &mut HashMap<MsgId, String>,
) -> Result<Typed, CodecError> {
    let msg = Message::from_value(enc.decode(payload)?)?;
    Ok(match msg {
        Message::Heartbeat => Typed::Heartbeat,
        Message::Call {
            msgid,
            oneway,
            name,
            args,
            ..
        } => match dir {
            Dir::ClientToServer => {
                let req = Request::decode(&name, &args)?;
                if !oneway {
                    pending.insert(msgid.clone(), name);
                }
                Typed::Request(msgid, oneway, req)
            }
            Dir::ServerToClient => Typed::Callback(Callback::decode(&name, &args)?),
        },
        Message::Reply { msgid, result } => {
            let method = pending
                .get(&msgid)
                .cloned()
                .ok_or_else(|| CodecError::Envelope(format!("reply to unknown msgid {msgid:?}")))?;
            Typed::Reply(msgid, Reply::decode(&method, &result)?)
        }
        Message::ErrorReply { msgid, error } => Typed::Error(msgid, ZeoError::from_value(&error)?),
    })
}

fn encode_typed(t: &Typed) -> Message {
    match t {
        Typed::Request(msgid, oneway, req) => {
            let mut m = req.to_message(msgid.clone());
            if let Message::Call { oneway: o, .. } = &mut m {
                *o = *oneway;
            }
            m
        }
        Typed::Callback(cb) => cb.to_message(),
        Typed::Reply(msgid, reply) => Message::reply(msgid.clone(), reply.to_value()),
        Typed::Error(msgid, err) => Message::error_reply(msgid.clone(), err.to_value()),
        Typed::Heartbeat => Message::Heartbeat,
    }
}

/// Frames that real ZEO itself refuses; our decoder must refuse them with a typed error.
fn expected_failure(f: &Frame, e: &CodecError) -> bool {
    f.file == "s15_cross_encoding"
        && matches!(
            e,
            CodecError::Pickle(PickleError::UnsupportedProtocol { protocol: 4 })
        )
}

#[test]
fn every_captured_frame_decodes_into_the_typed_layer_and_roundtrips() {
    let frames = all_frames();
    let mut counts: HashMap<&'static str, usize> = HashMap::new();
    let mut pending: HashMap<(String, String), HashMap<MsgId, String>> = HashMap::new();
    for f in &frames {
        let key = (f.file.clone(), f.conn.clone());
        let enc = match f.kind {
            Kind::Handshake => {
                if f.dir == Dir::ServerToClient {
                    let proto = match f.payload.as_ref() {
                        b"Z5" => Protocol::Z5,
                        b"M5" => Protocol::M5,
                        other => panic!("{}:{}: announcement {other:?}", f.file, f.line),
                    };
                    assert_eq!(server_announcement(proto), f.payload);
                } else {
                    match server_accept(&f.payload) {
                        Ok(ClientHello::Speak(_)) | Ok(ClientHello::Ruok) => {}
                        // Z4 (s11) and Z6 (s15) are refused by ZEO 6 too.
                        Err(CodecError::Handshake(_)) if matches!(f.payload.as_ref(), b"Z4" | b"Z6") => {}
                        other => panic!("{}:{}: handshake {other:?}", f.file, f.line),
                    }
                }
                *counts.entry("handshake").or_default() += 1;
                continue;
            }
            Kind::RuokJson => {
                let text = std::str::from_utf8(&f.payload).expect("ruok answer is text");
                assert!(
                    text.starts_with('{') && text.contains("last-transaction"),
                    "{text}"
                );
                *counts.entry("ruok").or_default() += 1;
                continue;
            }
            Kind::Pickle => Encoding::Pickle,
            Kind::Msgpack => Encoding::Msgpack,
        };
        let pend = pending.entry(key).or_default();
        let typed = match decode_typed(enc, &f.payload, f.dir, pend) {
            Ok(t) => t,
            Err(e) if expected_failure(f, &e) => {
                *counts.entry("refused as ZEO refuses").or_default() += 1;
                continue;
            }
            Err(e) => panic!("{}:{} ({:?} {:?}): {e}", f.file, f.line, f.conn, f.dir),
        };
        let bytes = enc
            .encode(&encode_typed(&typed).to_value())
            .expect("typed message encodes");
        // Decode the re-encoded bytes with a fresh copy of the pending map
        // (the reply of the first decode consumed nothing, so it still maps).
        let again = decode_typed(enc, &bytes, f.dir, &mut pend.clone())
            .unwrap_or_else(|e| panic!("{}:{}: re-encoded frame does not decode: {e}", f.file, f.line));
        assert_eq!(again, typed, "{}:{}: typed roundtrip", f.file, f.line);
        let kind = match typed {
            Typed::Request(..) => "request",
            Typed::Callback(_) => "callback",
            Typed::Reply(..) => "reply",
            Typed::Error(..) => "error reply",
            Typed::Heartbeat => "heartbeat",
        };
        *counts.entry(kind).or_default() += 1;
    }
    let total: usize = counts.values().sum();
    assert_eq!(total, frames.len(), "every frame accounted for: {counts:?}");
    assert!(
        frames.len() >= 780,
        "expected about 800 captured frames, found {}",
        frames.len()
    );
    for kind in [
        "request",
        "reply",
        "callback",
        "error reply",
        "heartbeat",
        "handshake",
        "ruok",
        "refused as ZEO refuses",
    ] {
        assert!(
            counts.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} frames seen: {counts:?}"
        );
    }
}

#[test]
fn zeo_encoded_replies_and_callbacks_reencode_byte_identically() {
    // Server-side frames are what zeoraid will send to ClientStorage: our bytes
    // for the typed message must equal runzeo's, for both encodings.
    let mut pending: HashMap<(String, String), HashMap<MsgId, String>> = HashMap::new();
    let mut checked = 0;
    for f in all_frames() {
        let enc = match f.kind {
            Kind::Pickle => Encoding::Pickle,
            Kind::Msgpack => Encoding::Msgpack,
            _ => continue,
        };
        let pend = pending.entry((f.file.clone(), f.conn.clone())).or_default();
        let Ok(typed) = decode_typed(enc, &f.payload, f.dir, pend) else {
            continue;
        };
        if f.dir == Dir::ServerToClient {
            let bytes = enc.encode(&encode_typed(&typed).to_value()).unwrap();
            assert_eq!(
                hex::encode(&bytes),
                hex::encode(&f.payload),
                "{}:{}",
                f.file,
                f.line
            );
            checked += 1;
        }
    }
    assert!(checked > 300, "only {checked} server frames checked");
}
