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

    /// Encodes one message as a complete frame (length prefix + payload):
    /// the payload is written after a reserved header in one buffer, so a
    /// relayed frame is built without a second allocation and copy.
    pub fn encode_frame(&self, v: &Value) -> Result<Bytes, CodecError> {
        // Room for a typical message with a small record; bigger ones grow.
        let mut out = Vec::with_capacity(1024);
        out.extend_from_slice(&[0; crate::framing::HEADER_LEN]);
        match self {
            Encoding::Pickle => crate::pickle::encode_into(v, &mut out)?,
            Encoding::Msgpack => crate::msgpack::encode_into(v, &mut out)?,
        }
        let len = crate::framing::check_encodable(&out[crate::framing::HEADER_LEN..])?;
        out[..crate::framing::HEADER_LEN].copy_from_slice(&len.to_be_bytes());
        Ok(Bytes::from(out))
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

    /// The heartbeat (`docs/zeo-protocol.md#heartbeat`) in both encodings.
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
    fn a_frame_is_the_length_then_the_payload() {
        let record = Value::Tuple(vec![
            Value::Bytes(Bytes::from(vec![7u8; 300])),
            Value::str("loadBefore"),
            heartbeat(),
        ]);
        for encoding in [Encoding::Pickle, Encoding::Msgpack] {
            let payload = encoding.encode(&record).unwrap();
            let frame = encoding.encode_frame(&record).unwrap();
            assert_eq!(
                frame,
                crate::framing::encode_frame(&payload).unwrap(),
                "{encoding:?}"
            );
            assert_eq!(&frame[..4], &(payload.len() as u32).to_be_bytes());
        }
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
