//! `undoInfo(first, last, specification)` with a filter, evaluated by
//! zeoraid itself.
//!
//! Zope sends filters holding `ZopeUndo.Prefix` objects. Forwarding such an
//! object to a member that does not have ZopeUndo installed makes the member
//! drop zeoraid's connection (its unpickler cannot resolve the class), which
//! would let one client's call knock a shared member connection out. So the
//! filter never leaves zeoraid: it pages through the member's plain
//! `undoLog` and applies the filter as ZODB's `BaseStorage.undoInfo` and
//! `ZopeUndo.Prefix` do.

use super::answers::member_answer;
use crate::member::{Call, MemberActor};
use actix::Addr;
use zeo::exceptions::ZeoError;
use zeo::methods::{Request, UndoLog};
use zeo::reply::Reply;
use zeo::Value;

/// Entries fetched from the member per `undoLog` call.
const PAGE: i64 = 1000;

pub(super) async fn undo_info(
    member: Addr<MemberActor>,
    first: i64,
    last: i64,
    spec: Value,
) -> Result<Value, ZeoError> {
    // FileStorage.undoLog: a negative `last` counts entries after `first`;
    // the window [first, last) is over the *matching* entries.
    let last = if last < 0 {
        first.saturating_sub(last)
    } else {
        last
    };
    let skip = first.max(0) as usize;
    let want = (last - first).max(0) as usize;
    let mut matched = Vec::new();
    let mut offset = 0;
    while matched.len() < skip + want {
        let page = match member_answer(
            member
                .send(Call(Request::UndoLog(UndoLog {
                    first: offset,
                    last: offset + PAGE,
                })))
                .await,
        )? {
            Reply::UndoLog(page) => page,
            other => {
                return Err(ZeoError::unavailable(&format!(
                    "unexpected undoLog answer {other:?}"
                )))
            }
        };
        let complete = (page.len() as i64) < PAGE;
        matched.extend(page.into_iter().filter(|entry| spec_matches(&spec, entry)));
        if complete {
            break;
        }
        offset += PAGE;
    }
    Ok(Value::List(matched.into_iter().skip(skip).take(want).collect()))
}

/// `BaseStorage.undoInfo`'s filter: every key of the spec must be in the
/// entry with an equal value (Python equality; a `Prefix` compares by path).
fn spec_matches(spec: &Value, entry: &Value) -> bool {
    let Value::Dict(items) = spec else { return true };
    items.iter().all(|(key, wanted)| {
        let actual = key.as_str().and_then(|k| entry.dict_get(k));
        match (prefix_path(wanted), actual) {
            (Some(path), Some(actual)) => prefix_matches(&path, actual),
            (None, Some(actual)) => actual == wanted,
            (_, None) => false,
        }
    })
}

/// The path of a `ZopeUndo.Prefix` object (its state is
/// `{'length': n, 'path': [...]}`).
fn prefix_path(v: &Value) -> Option<Vec<String>> {
    let Value::Object {
        class,
        state: Some(state),
        ..
    } = v
    else {
        return None;
    };
    if !matches!(&**class, Value::Global { module, name } if module == "ZopeUndo.Prefix" && name == "Prefix")
    {
        return None;
    }
    let path = state.dict_get("path")?.as_seq()?;
    path.iter().map(|p| p.as_str().map(str::to_owned)).collect()
}

/// `Prefix.__eq__`: the value split on `/` starts with the prefix's path.
fn prefix_matches(path: &[String], actual: &Value) -> bool {
    let text = match actual {
        Value::Str(s) => s.clone(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        _ => return false,
    };
    let parts: Vec<&str> = text.split('/').collect();
    parts.len() >= path.len() && parts.iter().zip(path).all(|(a, b)| a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(path: &[&str]) -> Value {
        Value::Object {
            class: Box::new(Value::Global {
                module: "ZopeUndo.Prefix".into(),
                name: "Prefix".into(),
            }),
            args: Box::new(Value::Tuple(vec![])),
            state: Some(Box::new(Value::Dict(vec![
                (Value::str("length"), Value::Int(path.len() as i64)),
                (
                    Value::str("path"),
                    Value::List(path.iter().map(|p| Value::str(*p)).collect()),
                ),
            ]))),
        }
    }

    fn entry(user: &str) -> Value {
        Value::Dict(vec![(
            Value::str("user_name"),
            Value::bytes(user.as_bytes().to_vec()),
        )])
    }

    #[test]
    fn prefix_filters_compare_path_components_like_zopeundo() {
        let spec = Value::Dict(vec![(Value::str("user_name"), prefix(&["", " admin"]))]);
        assert!(spec_matches(&spec, &entry("/ admin")));
        assert!(spec_matches(&spec, &entry("/ admin/sub")));
        assert!(!spec_matches(&spec, &entry("/ administrator")));
        assert!(!spec_matches(&spec, &entry("/other")));
    }

    #[test]
    fn plain_values_compare_with_python_equality() {
        let spec = Value::Dict(vec![(Value::str("user_name"), Value::bytes(&b"/ alice"[..]))]);
        assert!(spec_matches(&spec, &entry("/ alice")));
        let as_str = Value::Dict(vec![(Value::str("user_name"), Value::str("/ alice"))]);
        assert!(
            !spec_matches(&as_str, &entry("/ alice")),
            "bytes != str, as in Python"
        );
        let missing = Value::Dict(vec![(Value::str("nope"), Value::Int(1))]);
        assert!(!spec_matches(&missing, &entry("/ alice")));
    }
}
