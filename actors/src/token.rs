//! The one comparison of a secret token (the HTTP bearer token, and the
//! token a ZEO management call carries): in constant time, so that how
//! long a refusal takes does not tell an attacker how many leading bytes
//! of a guess were right.

use std::fmt;
use subtle::ConstantTimeEq;

/// A secret token; its `Debug` never shows it, so no log line or panic
/// message can.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(token: String) -> Token {
        Token(token)
    }

    /// Whether `given` is this token, compared in constant time.
    pub fn accepts(&self, given: &str) -> bool {
        self.accepts_bytes(given.as_bytes())
    }

    /// Whether `given` is this token's bytes, compared in constant time.
    pub fn accepts_bytes(&self, given: &[u8]) -> bool {
        matches(given, self.0.as_bytes())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Whether `given` is the `expected` token. The time taken depends only on
/// the lengths (a wrong length is refused at once: the length of a token is
/// not the secret), never on where the bytes differ.
pub fn matches(given: &[u8], expected: &[u8]) -> bool {
    given.ct_eq(expected).into()
}

#[cfg(test)]
mod tests {
    use super::{matches, Token};

    #[test]
    fn debug_does_not_show_the_token() {
        let token = Token::new("s3cret".into());
        assert!(token.accepts("s3cret"));
        assert!(!format!("{token:?}").contains("s3cret"));
    }

    #[test]
    fn equal_tokens_match_and_others_do_not() {
        assert!(matches(b"secret", b"secret"));
        assert!(!matches(b"secreT", b"secret"));
        assert!(!matches(b"secret2", b"secret"));
        assert!(!matches(b"secre", b"secret"));
        assert!(!matches(b"", b"secret"));
        assert!(!matches(b"\xff", b"\x00\x00"));
    }
}
