//! The message encoding of a connection, chosen by the handshake: Z5 (pickle)
//! or M5 (msgpack). Everything above this module works on [`Value`]s and
//! does not care which one is on the wire.

use bytes::Bytes;

use crate::error::CodecError;
use crate::handshake::Protocol;
use crate::value::Value;

/// How the messages of one connection are encoded.
///
/// Kept apart from [`Protocol`] (the handshake id) because the codec is what
/// the message layer needs; the two convert into each other losslessly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Z5: pickle protocol 3, see [`crate::pickle`].
    Pickle,
    /// M5: msgpack, see [`crate::msgpack`].
    Msgpack,
}

impl Encoding {
    /// Decodes one frame payload. Byte strings in the result may share memory
    /// with `payload` (no copy of record data).
    pub fn decode(&self, payload: &Bytes) -> Result<Value, CodecError> {
        match self {
            Encoding::Pickle => Ok(crate::pickle::decode(payload)?),
            Encoding::Msgpack => crate::msgpack::decode_bytes(payload),
        }
    }

    /// Encodes one message into a frame payload (without the length prefix).
    pub fn encode(&self, v: &Value) -> Result<Bytes, CodecError> {
        match self {
            Encoding::Pickle => Ok(Bytes::from(crate::pickle::encode(v)?)),
            Encoding::Msgpack => Ok(Bytes::from(crate::msgpack::encode(v)?)),
        }
    }

    /// The handshake id that selects this encoding.
    pub fn protocol(self) -> Protocol {
        Protocol::from(self)
    }
}

impl From<Protocol> for Encoding {
    fn from(p: Protocol) -> Encoding {
        match p {
            Protocol::Z5 => Encoding::Pickle,
            Protocol::M5 => Encoding::Msgpack,
        }
    }
}

impl From<Encoding> for Protocol {
    fn from(e: Encoding) -> Protocol {
        match e {
            Encoding::Pickle => Protocol::Z5,
            Encoding::Msgpack => Protocol::M5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The heartbeat (protocol doc §1.6) in both encodings.
    fn heartbeat() -> Value {
        Value::tuple([Value::Int(-1), Value::Int(0), Value::str(".reply"), Value::None])
    }

    #[test]
    fn protocol_mapping() {
        assert_eq!(Encoding::from(Protocol::Z5), Encoding::Pickle);
        assert_eq!(Encoding::from(Protocol::M5), Encoding::Msgpack);
        assert_eq!(Encoding::Pickle.protocol(), Protocol::Z5);
        assert_eq!(Encoding::Msgpack.protocol(), Protocol::M5);
    }

    #[test]
    fn msgpack_dispatch() {
        let wire = Encoding::Msgpack.encode(&heartbeat()).unwrap();
        assert_eq!(&wire[..], b"\x94\xff\x00\xa6.reply\xc0");
        assert_eq!(Encoding::Msgpack.decode(&wire).unwrap(), heartbeat());
    }

    #[test]
    fn pickle_dispatch() {
        // [C s11]: the heartbeat frame's payload.
        let wire = Bytes::from_static(b"\x80\x03(J\xff\xff\xff\xffK\x00X\x06\x00\x00\x00.replyNt.");
        assert_eq!(Encoding::Pickle.decode(&wire).unwrap(), heartbeat());
        assert_eq!(Encoding::Pickle.encode(&heartbeat()).unwrap(), wire);
    }

    #[test]
    fn errors_carry_the_encoding() {
        let garbage = Bytes::from_static(b"\xc1");
        assert!(matches!(
            Encoding::Msgpack.decode(&garbage),
            Err(CodecError::Msgpack(_))
        ));
        assert!(matches!(
            Encoding::Pickle.decode(&garbage),
            Err(CodecError::Pickle(_))
        ));
    }
}
