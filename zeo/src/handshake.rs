//! The protocol handshake (`docs/zeo-protocol.md#handshake`, `#ruok`), as pure functions over
//! frame payloads so both the server and the client side can be tested
//! without sockets.
//!
//! The server speaks first with one frame `Z5` (pickle) or `M5` (msgpack).
//! The client answers `<letter>5` (or `ruok` for the status probe). What each
//! side accepts is copied from ZEO 6.2, rule for rule:
//! - server (`server.py:finish_connection`): the client's payload minus its
//!   first byte must be `5`; the codec follows the **client's** letter, not
//!   the one the server announced. ZEO's `encoder()` only knows `Z` and `M`
//!   (anything else trips an assertion), so other letters are rejected here.
//! - client (`client.py:finish_connection`): `version = min(announced[1:], b"5")`
//!   compared as byte strings, must equal `5`; the reply echoes the server's
//!   letter. So `Z6` is answered `Z5`, while `Z4`, `Z3101` and `Z10` are refused.

use std::fmt;

use bytes::Bytes;

use crate::error::CodecError;

/// The only protocol version ZEO 5/6 speak.
const VERSION: &[u8] = b"5";

/// The payload a client sends instead of a protocol id to ask for the server
/// status (`docs/zeo-protocol.md#ruok`).
pub const RUOK: &[u8] = b"ruok";

/// A protocol id as exchanged in the handshake: the encoding letter plus the
/// version, which is always `5`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `Z5`: pickle protocol 3 messages.
    Z5,
    /// `M5`: msgpack messages.
    M5,
}

impl Protocol {
    /// The handshake payload for this protocol.
    pub const fn id(self) -> &'static [u8] {
        match self {
            Protocol::Z5 => b"Z5",
            Protocol::M5 => b"M5",
        }
    }

    /// The encoding letter (`Z` or `M`).
    pub const fn letter(self) -> u8 {
        self.id()[0]
    }

    /// The protocol for an encoding letter; only `Z` and `M` exist.
    pub fn from_letter(letter: u8) -> Option<Protocol> {
        match letter {
            b'Z' => Some(Protocol::Z5),
            b'M' => Some(Protocol::M5),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Z5 => "Z5",
            Protocol::M5 => "M5",
        })
    }
}

/// What a client said in its handshake frame, as seen by a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientHello {
    /// Speak this protocol from now on (the client's `register` call may
    /// already be in the same read).
    Speak(Protocol),
    /// The `ruok` status probe: answer with one [`ruok_reply`] frame, then close.
    Ruok,
}

/// The server's first frame payload (`Z5` or `M5`).
pub fn server_announcement(protocol: Protocol) -> Bytes {
    Bytes::from_static(protocol.id())
}

/// Server side: interprets the client's handshake payload like a ZEO 6
/// server. Any error means "log bad handshake and close without a reply".
pub fn server_accept(client_payload: &[u8]) -> Result<ClientHello, CodecError> {
    if client_payload == RUOK {
        return Ok(ClientHello::Ruok);
    }
    let (letter, version) = match client_payload.split_first() {
        Some((letter, version)) => (*letter, version),
        None => return Err(CodecError::Handshake("empty client handshake".into())),
    };
    if version != VERSION {
        return Err(CodecError::Handshake(format!(
            "client asked for protocol {}; only Z5 and M5 (protocol version 5) are supported",
            show(client_payload)
        )));
    }
    Protocol::from_letter(letter).map(ClientHello::Speak).ok_or_else(|| {
        CodecError::Handshake(format!(
            "client asked for protocol {} with unknown encoding letter; only Z (pickle) and M (msgpack) exist",
            show(client_payload)
        ))
    })
}

/// Client side: given the server's announcement, returns the protocol to
/// speak and the payload of the reply frame, like a ZEO 6 client.
///
/// With `allow_msgpack == false` the reply is `Z5` whatever the server
/// announced. That is not what a Python client does (it echoes the letter),
/// but it is valid: a ZEO server builds its codec from the client's letter,
/// not from its own announcement (`docs/zeo-protocol.md#handshake`; capture s15 c1 shows a
/// client answering `M5` to a `Z5` server and being served in msgpack).
pub fn client_reply(announcement: &[u8], allow_msgpack: bool) -> Result<(Protocol, Bytes), CodecError> {
    let (letter, announced_version) = match announcement.split_first() {
        Some((letter, version)) => (*letter, version),
        None => return Err(CodecError::Handshake("empty server announcement".into())),
    };
    // Python: version = min(protocol_version[1:], b'5') (byte-string order).
    let version = announced_version.min(VERSION);
    if version != VERSION {
        return Err(CodecError::Handshake(format!(
            "server announced protocol {}; this client speaks only protocol version 5 (ZEO 5/6)",
            show(announcement)
        )));
    }
    let announced = Protocol::from_letter(letter).ok_or_else(|| {
        CodecError::Handshake(format!(
            "server announced protocol {} with unknown encoding letter; only Z (pickle) and M (msgpack) exist",
            show(announcement)
        ))
    })?;
    let protocol = if allow_msgpack { announced } else { Protocol::Z5 };
    Ok((protocol, Bytes::from_static(protocol.id())))
}

/// The server's single reply frame to `ruok`: the status JSON as ASCII.
///
/// ZEO sends `json.dumps(...).encode("ascii")`, and `json.dumps` escapes every
/// non-ASCII character as `\uXXXX`; we do the same so the frame is plain
/// ASCII whatever storage names the JSON contains. (Non-ASCII characters can
/// only occur inside JSON strings, where the escape is equivalent.)
pub fn ruok_reply(json: &str) -> Bytes {
    if json.is_ascii() {
        return Bytes::copy_from_slice(json.as_bytes());
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    Bytes::from(out)
}

/// A short printable rendering of untrusted handshake bytes for messages.
fn show(payload: &[u8]) -> String {
    const MAX: usize = 32;
    let shown = &payload[..payload.len().min(MAX)];
    let more = if payload.len() > MAX { "..." } else { "" };
    format!("\"{}\"{more}", shown.escape_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::split_frames;

    fn handshake_error(r: Result<impl fmt::Debug, CodecError>) -> String {
        match r {
            Err(CodecError::Handshake(msg)) => msg,
            other => panic!("expected a handshake error, got {other:?}"),
        }
    }

    #[test]
    fn announcement_payloads() {
        assert_eq!(&server_announcement(Protocol::Z5)[..], b"Z5");
        assert_eq!(&server_announcement(Protocol::M5)[..], b"M5");
        assert_eq!(Protocol::M5.letter(), b'M');
        assert_eq!(Protocol::Z5.to_string(), "Z5");
    }

    #[test]
    fn captured_handshakes() {
        // [C s01 c1]: both directions 00 00 00 02 5a 35.
        let z5 = split_frames(&[0, 0, 0, 2, 0x5a, 0x35]).unwrap();
        assert_eq!(server_accept(&z5[0]), Ok(ClientHello::Speak(Protocol::Z5)));
        assert_eq!(
            client_reply(&z5[0], true),
            Ok((Protocol::Z5, Bytes::from_static(b"Z5")))
        );
        // [C s12 c1]: msgpack server, 00 00 00 02 4d 35 both ways.
        let m5 = split_frames(&[0, 0, 0, 2, 0x4d, 0x35]).unwrap();
        assert_eq!(server_accept(&m5[0]), Ok(ClientHello::Speak(Protocol::M5)));
        assert_eq!(
            client_reply(&m5[0], true),
            Ok((Protocol::M5, Bytes::from_static(b"M5")))
        );
        // [C s11 c2]: 00 00 00 04 72 75 6f 6b = "ruok".
        let ruok = split_frames(&[0, 0, 0, 4, 0x72, 0x75, 0x6f, 0x6b]).unwrap();
        assert_eq!(server_accept(&ruok[0]), Ok(ClientHello::Ruok));
    }

    #[test]
    fn server_follows_the_clients_letter() {
        // [C s15 c1]: the server announced Z5, the client answered M5.
        assert_eq!(server_accept(b"M5"), Ok(ClientHello::Speak(Protocol::M5)));
        assert_eq!(server_accept(b"Z5"), Ok(ClientHello::Speak(Protocol::Z5)));
    }

    #[test]
    fn server_rejects_other_versions_and_garbage() {
        // [C s11 c3] Z4, [C s15 c2] Z6, old ZEO 3 ids, odd lengths and letters.
        for bad in [
            &b"Z4"[..],
            b"Z6",
            b"Z3101",
            b"Z309",
            b"M4",
            b"Z55",
            b"Z",
            b"5",
            b"",
            b"X5",
            b"z5",
            b"RUOK",
            b"ruok\n",
            b"\xff\x005",
        ] {
            let msg = handshake_error(server_accept(bad));
            assert!(!msg.is_empty(), "{bad:?}");
        }
        let msg = handshake_error(server_accept(b"Z4"));
        assert!(msg.contains("\"Z4\"") && msg.contains("Z5"), "{msg}");
        let msg = handshake_error(server_accept(b"X5"));
        assert!(msg.contains("letter"), "{msg}");
        let long = [b'A'; 100];
        let msg = handshake_error(server_accept(&long));
        assert!(msg.len() < 150 && msg.contains("..."), "{msg}");
    }

    #[test]
    fn client_version_rule_is_bytewise_min() {
        // Anything that sorts at or above "5" becomes 5: echoed letter + "5".
        for (announced, reply) in [
            (&b"Z5"[..], &b"Z5"[..]),
            (b"Z6", b"Z5"),
            (b"Z9", b"Z5"),
            (b"Z50", b"Z5"),
            (b"M6", b"M5"),
            (b"Z\xff", b"Z5"),
        ] {
            let (_, got) = client_reply(announced, true).unwrap();
            assert_eq!(&got[..], reply, "{announced:?}");
        }
        // Anything that sorts below "5" is refused: old servers, and "10".
        for bad in [&b"Z4"[..], b"Z3101", b"Z310", b"Z309", b"Z10", b"Z", b"", b"M"] {
            handshake_error(client_reply(bad, true));
        }
        let msg = handshake_error(client_reply(b"Z4", true));
        assert!(msg.contains("\"Z4\""), "{msg}");
        // Unknown letters trip ZEO's encoder assertion; we refuse them.
        handshake_error(client_reply(b"X5", true));
    }

    #[test]
    fn client_without_msgpack_answers_z5() {
        assert_eq!(
            client_reply(b"M5", false),
            Ok((Protocol::Z5, Bytes::from_static(b"Z5")))
        );
        assert_eq!(
            client_reply(b"Z5", false),
            Ok((Protocol::Z5, Bytes::from_static(b"Z5")))
        );
        handshake_error(client_reply(b"M4", false));
    }

    #[test]
    fn ruok_reply_is_ascii_json() {
        let json = r#"{"1": {"connections": 0, "last-transaction": "0000000000000000"}}"#;
        assert_eq!(&ruok_reply(json)[..], json.as_bytes());
        // json.dumps('é€😀') == '"\\u00e9\\u20ac\\ud83d\\ude00"'
        assert_eq!(
            &ruok_reply("{\"é€😀\": 1}")[..],
            &br#"{"\u00e9\u20ac\ud83d\ude00": 1}"#[..]
        );
    }
}
