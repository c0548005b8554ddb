//! The fast path (`zeo::fast_path`) against the real captures: every
//! `loadBefore` and `storea` a real `ZEO.ClientStorage` sent is read by it
//! as the generic path reads it, every reply a real runzeo sent to a load
//! is what it writes, byte for byte, and so is every store; the same for
//! `vote`, `tpc_finish` and `tpc_abort`, and the server's answers to them.

mod capture;

use capture::{all_frames, Dir, Kind};
use std::collections::HashMap;
use zeo::encoding::Encoding;
use zeo::fast_path::{
    read_load_before_call, read_load_before_result, read_reply_start, read_storea_call,
    read_tpc_finish_result, read_txn_call, read_vote_result, write_load_before_reply, write_storea_call,
    write_txn_call,
};
use zeo::message::{Message, MsgId};
use zeo::methods::Request;
use zeo::reply::Reply;

#[test]
fn every_captured_load_takes_the_fast_path_with_the_generic_meaning() {
    let mut loads: HashMap<(String, String, MsgId), ()> = HashMap::new();
    let (mut calls, mut replies, mut errors, mut stores) = (0, 0, 0, 0);
    for frame in all_frames() {
        if frame.kind != Kind::Pickle || !frame.zeo_encoder {
            continue;
        }
        let message = Message::from_value(Encoding::Pickle.decode(&frame.payload).unwrap()).unwrap();
        let key = |msgid: &MsgId| (frame.file.clone(), frame.conn.clone(), msgid.clone());
        match (frame.dir, message) {
            (
                Dir::ClientToServer,
                Message::Call {
                    msgid,
                    name,
                    args,
                    oneway,
                    ..
                },
            ) => {
                if name == "storea" {
                    let store = read_storea_call(Encoding::Pickle, &frame.payload)
                        .unwrap_or_else(|| panic!("{}:{} store not read", frame.file, frame.line));
                    let written = write_storea_call(Encoding::Pickle, &store).unwrap();
                    assert_eq!(&written[4..], &frame.payload[..], "{}:{}", frame.file, frame.line);
                    assert_eq!(Request::Storea(store), Request::decode(&name, &args).unwrap());
                    stores += 1;
                    continue;
                }
                assert!(read_storea_call(Encoding::Pickle, &frame.payload).is_none());
                let fast = read_load_before_call(Encoding::Pickle, &frame.payload);
                if name != "loadBefore" || oneway {
                    assert!(
                        fast.is_none(),
                        "{}:{} {name} read as a load",
                        frame.file,
                        frame.line
                    );
                    continue;
                }
                let (fast_id, load) =
                    fast.unwrap_or_else(|| panic!("{}:{} not read", frame.file, frame.line));
                assert_eq!(fast_id, msgid);
                assert_eq!(Request::LoadBefore(load), Request::decode(&name, &args).unwrap());
                loads.insert(key(&msgid), ());
                calls += 1;
            }
            (Dir::ServerToClient, Message::Reply { msgid, result })
                if loads.remove(&key(&msgid)).is_some() =>
            {
                let Reply::LoadBefore(result) = Reply::decode("loadBefore", &result).unwrap() else {
                    unreachable!()
                };
                let written = write_load_before_reply(Encoding::Pickle, &msgid, &result).unwrap();
                assert_eq!(&written[4..], &frame.payload[..], "{}:{}", frame.file, frame.line);
                // The same reply with the int msgid zeoraid gives a member.
                let to_zeoraid =
                    write_load_before_reply(Encoding::Pickle, &MsgId::int(1234), &result).unwrap();
                let payload = to_zeoraid.slice(4..);
                let (id, at) = read_reply_start(Encoding::Pickle, &payload).unwrap();
                assert_eq!(id, 1234);
                assert_eq!(read_load_before_result(&payload, at), Some(result));
                replies += 1;
            }
            (Dir::ServerToClient, Message::ErrorReply { msgid, error })
                if loads.remove(&key(&msgid)).is_some() =>
            {
                // A POSKeyError, as a member would send it to zeoraid: the
                // generic way.
                let to_zeoraid = Message::error_reply(MsgId::int(1234), error).into_value();
                let payload = Encoding::Pickle.encode(&to_zeoraid).unwrap();
                assert!(read_reply_start(Encoding::Pickle, &payload).is_none());
                errors += 1;
            }
            _ => {}
        }
    }
    assert!(
        replies >= 3 && errors >= 1,
        "{replies} replies, {errors} error replies"
    );
    assert_eq!(replies + errors, calls, "every load answered");
    assert!(stores >= 10, "{stores} stores");
}

#[test]
fn every_captured_transaction_end_takes_the_fast_path_with_the_generic_meaning() {
    let txn_calls = ["vote", "tpc_finish", "tpc_abort"];
    let mut asked: HashMap<(String, String, MsgId), String> = HashMap::new();
    let (mut calls, mut answers) = (0, 0);
    for frame in all_frames() {
        if frame.kind != Kind::Pickle || !frame.zeo_encoder {
            continue;
        }
        let at = format!("{}:{}", frame.file, frame.line);
        let message = Message::from_value(Encoding::Pickle.decode(&frame.payload).unwrap()).unwrap();
        let key = |msgid: &MsgId| (frame.file.clone(), frame.conn.clone(), msgid.clone());
        match (frame.dir, message) {
            (
                Dir::ClientToServer,
                Message::Call {
                    msgid, name, args, ..
                },
            ) => {
                let fast = read_txn_call(Encoding::Pickle, &frame.payload);
                if !txn_calls.contains(&name.as_str()) {
                    assert!(fast.is_none(), "{at}: {name} read as a transaction call");
                    continue;
                }
                let (fast_id, request) = fast.unwrap_or_else(|| panic!("{at}: {name} not read"));
                assert_eq!(fast_id, msgid, "{at}");
                assert_eq!(request, Request::decode(&name, &args).unwrap(), "{at}");
                let id = msgid.as_int().expect("ClientStorage's msgids are ints");
                let written = write_txn_call(Encoding::Pickle, id, &request).unwrap();
                assert_eq!(&written[4..], &frame.payload[..], "{at}");
                asked.insert(key(&msgid), name);
                calls += 1;
            }
            (Dir::ServerToClient, Message::Reply { msgid, result }) => {
                let Some(method) = asked.remove(&key(&msgid)) else {
                    continue;
                };
                let generic = Reply::decode(&method, &result).unwrap();
                let (id, start) = read_reply_start(Encoding::Pickle, &frame.payload).unwrap();
                assert_eq!(Some(id), msgid.as_int());
                let fast = match method.as_str() {
                    "vote" => read_vote_result(&frame.payload, start).map(Reply::Vote),
                    "tpc_finish" => read_tpc_finish_result(&frame.payload, start).map(Reply::TpcFinish),
                    _ => None,
                };
                match fast {
                    Some(fast) => {
                        assert_eq!(fast, generic, "{at}");
                        answers += 1;
                    }
                    // Resolved conflicts (oids to invalidate) go the
                    // generic way; a plain answer never does.
                    None => assert!(
                        method == "tpc_abort" || matches!(&generic, Reply::Vote(v) if !v.is_empty()),
                        "{at}: {generic:?} not read"
                    ),
                }
            }
            _ => {}
        }
    }
    assert!(
        calls >= 10 && answers >= 10,
        "{calls} calls, {answers} answers read"
    );
}
