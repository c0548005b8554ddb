//! The words operators read for the state of the array and its members,
//! as types: the controller decides them, the metrics label their series
//! with them, the HTTP answers and `ruok` carry them as JSON strings, and
//! `zeoraid ctl` reads them back. Each word is written once, here: its
//! serde name and [`as_str`](ArrayState::as_str) come from the same
//! literal, so the JSON, the metric labels and the log lines cannot drift
//! apart.
//!
//! A leaf module: it imports no actor.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An enum of words with its serde names, `ALL` (every word, in the order
/// declared), `as_str`, `Display` and the word as a log value, all from one
/// list of `Variant = "word"`.
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$variant_meta:meta])* $variant:ident = $word:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$variant_meta])* #[serde(rename = $word)] $variant,)+
        }

        impl $name {
            /// Every value, in the order declared.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word operators see (in JSON, metric labels and logs).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl slog::Value for $name {
            fn serialize(
                &self,
                _record: &slog::Record<'_>,
                key: slog::Key,
                serializer: &mut dyn slog::Serializer,
            ) -> slog::Result {
                serializer.emit_str(key, self.as_str())
            }
        }
    };
}

vocabulary! {
    /// The array as a whole.
    pub enum ArrayState {
        /// Every member is optimal.
        Optimal = "optimal",
        /// Some member is not optimal, and none is recovering.
        Degraded = "degraded",
        /// Some member is being recovered.
        Recovering = "recovering",
        /// Fewer optimal members than the cluster mode's quorum (or none
        /// connected at startup): writes are refused.
        Failed = "failed",
    }
}

vocabulary! {
    /// One member's place in the array.
    pub enum MemberState {
        /// Gets reads and writes.
        Optimal = "optimal",
        /// Degraded, with a recovery bringing it back.
        Recovering = "recovering",
        /// Gets neither reads nor writes until it is recovered.
        Degraded = "degraded",
    }
}

vocabulary! {
    /// Why a member left the array. Only a member that merely stopped
    /// answering (`Failed`, `Slow`) and missed no transaction can still
    /// serve reads once the array has failed in `read-only` mode; one that
    /// is behind or answered differently never does.
    pub enum DegradeKind {
        /// Disconnected, timed out, broke the protocol, or failed a call.
        Failed = "failed",
        /// Holds fewer transactions than the array (found at startup or reconnect).
        Behind = "behind",
        /// Answered differently from the majority of the members.
        Diverged = "diverged",
        /// Answered far slower than its peers (the slow-member policy).
        Slow = "slow",
        /// Taken out by an operator (`POST /members/NAME/disable`).
        Disabled = "disabled",
        /// Added by a configuration reload: its data is unknown.
        Added = "added",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The serde name of every word is its `as_str`, both ways.
    fn round_trips<T>(all: &[T], words: &[&str])
    where
        T: Copy + fmt::Display + PartialEq + fmt::Debug + Serialize + serde::de::DeserializeOwned,
    {
        let shown: Vec<String> = all.iter().map(T::to_string).collect();
        assert_eq!(shown, words);
        for value in all {
            let json = serde_json::to_string(value).unwrap();
            assert_eq!(json, format!("\"{value}\""));
            assert_eq!(serde_json::from_str::<T>(&json).unwrap(), *value);
        }
    }

    #[test]
    fn words_operators_see() {
        round_trips(ArrayState::ALL, &["optimal", "degraded", "recovering", "failed"]);
        round_trips(MemberState::ALL, &["optimal", "recovering", "degraded"]);
        round_trips(
            DegradeKind::ALL,
            &["failed", "behind", "diverged", "slow", "disabled", "added"],
        );
        assert!(serde_json::from_str::<ArrayState>("\"fine\"").is_err());
    }
}
