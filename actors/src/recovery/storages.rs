//! What recovery must know about the storages behind the source and the
//! target, read from each member's `get_info` before anything is copied
//! (ARCHITECTURE.md, "Members of other storages").
//!
//! - **Blobs**: a source with blobs needs a target with blobs, else every
//!   blob upload would fail with a closed connection, far from the cause.
//! - **History**: a storage that does not support undo keeps no history
//!   (a history-free RelStorage). Its iterator lists only the current
//!   records, grouped by the transaction that wrote them last, so as a
//!   source it would hand out a history with holes, and as a target it
//!   would drop every older revision the copy writes and no longer match
//!   the source. Both are refused, naming the member.
//! - **One record per object and transaction**: RelStorage keeps one row
//!   per object and transaction, where a FileStorage keeps every record a
//!   client sent (a ZEO client stores a blob's record twice: `storea`,
//!   then the upload). Onto such a target only the last record of each
//!   object is copied: a `restore` and an upload of the same object in one
//!   transaction would collide there.

use super::copier::{Copier, Side};
use super::error::RecoveryError;
use zeo::methods::Request;
use zeo::reply::Reply;
use zeo::Value;

/// What the target is like, as far as copying onto it differs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TargetStorage {
    /// Keeps one record per object and transaction (RelStorage).
    pub one_record_per_object: bool,
}

/// One member's `get_info`, as far as recovery cares.
struct Capabilities {
    blobs: bool,
    keeps_history: bool,
    one_record_per_object: bool,
}

impl Capabilities {
    fn of(info: &Value) -> Capabilities {
        Capabilities {
            blobs: has_interface(info, "IBlobStorage"),
            keeps_history: info.dict_get("supportsUndo").is_some_and(Value::is_truthy),
            one_record_per_object: has_interface(info, "IRelStorage"),
        }
    }
}

/// Refuses a pair of members recovery cannot copy between (see the module
/// documentation); otherwise tells how to write onto the target.
pub(crate) async fn check_storages(c: &Copier) -> Result<TargetStorage, RecoveryError> {
    let source = capabilities(c, Side::Source).await?;
    let target = capabilities(c, Side::Target).await?;
    for (name, side, caps) in [
        (&c.source_name, "source", &source),
        (&c.member, "target", &target),
    ] {
        if !caps.keeps_history {
            return Err(RecoveryError::Refused {
                reason: format!(
                    "{name} (the {side}) keeps no history (its storage does not support undo, e.g. a \
                     history-free RelStorage): recovery copies the history transaction by transaction, \
                     which such a storage can neither give nor keep; use history-preserving storages for \
                     every member"
                ),
            });
        }
    }
    if source.blobs && !target.blobs {
        return Err(RecoveryError::Refused {
            reason: format!(
                "{} stores blobs but {} has no blob directory",
                c.source_name, c.member
            ),
        });
    }
    Ok(TargetStorage {
        one_record_per_object: target.one_record_per_object,
    })
}

async fn capabilities(c: &Copier, side: Side) -> Result<Capabilities, RecoveryError> {
    match c.call(side, Request::GetInfo).await? {
        Reply::GetInfo(info) => Ok(Capabilities::of(&info)),
        other => Err(c.unexpected(side, "get_info", &other)),
    }
}

/// Whether `get_info`'s `interfaces` name `name` (in any module).
pub(crate) fn has_interface(info: &Value, name: &str) -> bool {
    let Some(interfaces) = info.dict_get("interfaces").and_then(Value::as_seq) else {
        return false;
    };
    interfaces.iter().any(|i| match i.as_seq() {
        Some([_, n]) => n.as_str() == Some(name),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(interfaces: &[(&str, &str)], supports_undo: bool) -> Value {
        let pair = |m: &str, n: &str| Value::tuple([Value::str(m), Value::str(n)]);
        Value::Dict(vec![
            (
                Value::str("interfaces"),
                Value::tuple(interfaces.iter().map(|(m, n)| pair(m, n))),
            ),
            (Value::str("supportsUndo"), Value::Bool(supports_undo)),
        ])
    }

    #[test]
    fn interfaces_are_read_from_get_info() {
        let info = info(
            &[
                ("ZODB.interfaces", "IBlobStorage"),
                ("ZODB.interfaces", "IStorage"),
            ],
            true,
        );
        assert!(has_interface(&info, "IBlobStorage"));
        assert!(!has_interface(&info, "IBlobStorageRestoreable"));
        assert!(!has_interface(&Value::Dict(vec![]), "IBlobStorage"));
    }

    #[test]
    fn relstorage_and_history_free_storages_are_told_apart() {
        let filestorage = Capabilities::of(&info(&[("ZODB.interfaces", "IBlobStorage")], true));
        assert!(filestorage.blobs && filestorage.keeps_history && !filestorage.one_record_per_object);
        let relstorage = Capabilities::of(&info(&[("relstorage.interfaces", "IRelStorage")], true));
        assert!(relstorage.keeps_history && relstorage.one_record_per_object);
        let history_free = Capabilities::of(&info(&[("relstorage.interfaces", "IRelStorage")], false));
        assert!(!history_free.keeps_history);
        assert!(!Capabilities::of(&Value::Dict(vec![])).keeps_history);
    }
}
