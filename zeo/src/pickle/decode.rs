//! The pickle decoder: an explicit stack machine over protocols 0 to 3.
//!
//! It never recurses on input structure: nesting lives in `stack`/`marks`,
//! and every container records its depth so the bound is checked where the
//! container is built. Opcodes introduced by protocol 4 and later, and the
//! Python 2 string opcodes, are rejected like unknown opcodes: ZEO's
//! unpickler does not accept protocol 4 either.

use super::Limits;
use crate::error::PickleError;
use crate::value::Value;
use bytes::Bytes;
use num_bigint::BigInt;
use std::collections::HashMap;

/// Longest LONG1/LONG4 payload we accept (a 1024-byte int is ~2466 decimal
/// digits: far beyond any ZEO value, far below a costly conversion).
const MAX_LONG_BYTES: usize = 1024;
/// Longest text line (protocol 0 ints, floats, memo keys, global names).
const MAX_LINE: usize = 4096;

/// A value on the stack, with the nesting depth of its deepest container.
struct Slot {
    value: Value,
    depth: usize,
}

/// Where a memo entry lives: still on the stack (a container may keep
/// growing until it is consumed), or copied out once it left the stack.
enum Memo {
    OnStack(usize),
    Done(Value, usize),
}

struct Decoder<'a> {
    data: &'a Bytes,
    pos: usize,
    limits: &'a Limits,
    stack: Vec<Slot>,
    marks: Vec<usize>,
    memo: HashMap<u32, Memo>,
    /// Memo keys whose value is still on the stack, in stack order.
    live_memo: Vec<(usize, u32)>,
    copied: usize,
    values: usize,
}

/// Decodes one complete pickle (`data` must end right after its STOP).
pub fn decode_with(data: &Bytes, limits: &Limits) -> Result<Value, PickleError> {
    let mut d = Decoder {
        data,
        pos: 0,
        limits,
        // A ZEO message's stack is a handful of values deep: sized once
        // instead of grown (growing was 3 % of a relayed load's instructions).
        stack: Vec::with_capacity(16),
        marks: Vec::with_capacity(4),
        memo: HashMap::new(),
        live_memo: Vec::new(),
        copied: 0,
        values: 0,
    };
    d.run()
}

impl<'a> Decoder<'a> {
    fn run(&mut self) -> Result<Value, PickleError> {
        loop {
            let at = self.pos;
            // let-else, not `ok_or`: an error built and dropped for every opcode
            // showed in the profile.
            let Some(&op) = self.data.get(at) else {
                return Err(PickleError::MissingStop);
            };
            self.pos += 1;
            match op {
                0x80 => {
                    let protocol = self.byte()?;
                    if protocol > 3 {
                        return Err(PickleError::UnsupportedProtocol { protocol });
                    }
                }
                b'.' => return self.stop(at),
                b'(' => {
                    if self.marks.len() >= self.limits.max_depth {
                        return Err(PickleError::TooDeep {
                            limit: self.limits.max_depth,
                            offset: at,
                        });
                    }
                    self.marks.push(self.stack.len());
                }
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                b'J' => {
                    let b = self.array::<4>()?;
                    self.push(Value::Int(i32::from_le_bytes(b) as i64))?;
                }
                b'K' => {
                    let b = self.byte()?;
                    self.push(Value::Int(b as i64))?;
                }
                b'M' => {
                    let b = self.array::<2>()?;
                    self.push(Value::Int(u16::from_le_bytes(b) as i64))?;
                }
                0x8a => {
                    let n = self.byte()? as usize;
                    self.long(n, at)?;
                }
                0x8b => {
                    let n = self.u32()? as usize;
                    self.long(n, at)?;
                }
                b'I' => {
                    let line = self.line()?;
                    let v = match line.as_str() {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        s => parse_int(s).ok_or_else(|| malformed(at, "bad INT literal"))?,
                    };
                    self.push(v)?;
                }
                b'L' => {
                    let line = self.line()?;
                    let s = line.strip_suffix('L').unwrap_or(&line);
                    let v = parse_int(s).ok_or_else(|| malformed(at, "bad LONG literal"))?;
                    self.push(v)?;
                }
                b'F' => {
                    let line = self.line()?;
                    let f = line
                        .trim()
                        .parse::<f64>()
                        .map_err(|_| malformed(at, "bad FLOAT literal"))?;
                    self.push(Value::Float(f))?;
                }
                b'G' => {
                    let b = self.array::<8>()?;
                    self.push(Value::Float(f64::from_be_bytes(b)))?;
                }
                b'C' => {
                    let n = self.byte()? as usize;
                    let b = self.take(n)?;
                    self.push(Value::Bytes(b))?;
                }
                b'B' => {
                    let n = self.u32()? as usize;
                    let b = self.take(n)?;
                    self.push(Value::Bytes(b))?;
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let b = self.slice(n)?;
                    let s = std::str::from_utf8(b).map_err(|_| malformed(at, "string is not UTF-8"))?;
                    self.push(Value::Str(s.to_owned()))?;
                }
                b'V' => {
                    let raw = self.line_bytes()?;
                    let s = raw_unicode_escape(&raw).ok_or_else(|| malformed(at, "bad UNICODE literal"))?;
                    self.push(Value::Str(s))?;
                }
                b')' => self.push(Value::Tuple(Vec::new()))?,
                b']' => self.push(Value::List(Vec::new()))?,
                b'}' => self.push(Value::Dict(Vec::new()))?,
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let items = self.pop_n(n, at)?;
                    self.push_container(Value::Tuple, items, at)?;
                }
                b't' => {
                    let items = self.pop_mark(at)?;
                    self.push_container(Value::Tuple, items, at)?;
                }
                b'l' => {
                    let items = self.pop_mark(at)?;
                    self.push_container(Value::List, items, at)?;
                }
                b'd' => {
                    let items = self.pop_mark(at)?;
                    let pairs = pairs(items, at)?;
                    self.push_dict(pairs, at)?;
                }
                b'a' => {
                    let item = self.pop_n(1, at)?;
                    self.extend_list(item, at)?;
                }
                b'e' => {
                    let items = self.pop_mark(at)?;
                    self.extend_list(items, at)?;
                }
                b's' => {
                    let items = self.pop_n(2, at)?;
                    self.extend_dict(items, at)?;
                }
                b'u' => {
                    let items = self.pop_mark(at)?;
                    self.extend_dict(items, at)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    if !(self.limits.allow_global)(&module, &name) {
                        return Err(PickleError::ForbiddenGlobal {
                            module,
                            name,
                            offset: at,
                        });
                    }
                    self.push(Value::Global { module, name })?;
                }
                b'R' => {
                    let mut two = self.pop_n(2, at)?;
                    let args = two.pop().expect("pop_n(2) returned two slots");
                    let callable = two.pop().expect("pop_n(2) returned two slots");
                    let depth = 1 + callable.depth.max(args.depth);
                    let value = match dict_from_pairs(&callable.value, args.value) {
                        Ok(dict) => dict,
                        Err(args) => Value::Reduce {
                            callable: Box::new(callable.value),
                            args: Box::new(args),
                        },
                    };
                    self.push_checked(value, depth, at)?;
                }
                0x81 => {
                    let mut two = self.pop_n(2, at)?;
                    let args = two.pop().expect("pop_n(2) returned two slots");
                    let class = two.pop().expect("pop_n(2) returned two slots");
                    let depth = 1 + class.depth.max(args.depth);
                    self.push_checked(
                        Value::Object {
                            class: Box::new(class.value),
                            args: Box::new(args.value),
                            state: None,
                        },
                        depth,
                        at,
                    )?;
                }
                b'b' => {
                    let state = self.pop_n(1, at)?.pop().expect("pop_n(1) returned one slot");
                    let target = self.top_mut(at)?;
                    match &mut target.value {
                        Value::Object {
                            state: slot @ None, ..
                        } => {
                            *slot = Some(Box::new(state.value));
                            target.depth = target.depth.max(state.depth + 1);
                        }
                        _ => return Err(malformed(at, "BUILD on something that is not a new object")),
                    }
                    self.check_depth(self.stack.len() - 1, at)?;
                }
                b'0' => {
                    if self.marks.last() == Some(&self.stack.len()) {
                        self.marks.pop();
                    } else {
                        self.pop_n(1, at)?;
                    }
                }
                b'1' => {
                    self.pop_mark(at)?;
                }
                b'2' => {
                    let top = self.top_mut(at)?;
                    let (v, depth) = (top.value.clone(), top.depth);
                    self.charge_copy(&v)?;
                    self.push_checked(v, depth, at)?;
                }
                b'p' => {
                    let key = self.memo_key_line(at)?;
                    self.memo_put(key, at)?;
                }
                b'q' => {
                    let key = self.byte()? as u32;
                    self.memo_put(key, at)?;
                }
                b'r' => {
                    let key = self.u32()?;
                    self.memo_put(key, at)?;
                }
                b'g' => {
                    let key = self.memo_key_line(at)?;
                    self.memo_get(key, at)?;
                }
                b'h' => {
                    let key = self.byte()? as u32;
                    self.memo_get(key, at)?;
                }
                b'j' => {
                    let key = self.u32()?;
                    self.memo_get(key, at)?;
                }
                opcode => return Err(PickleError::UnknownOpcode { opcode, offset: at }),
            }
        }
    }

    fn stop(&mut self, at: usize) -> Result<Value, PickleError> {
        if self.pos != self.data.len() {
            return Err(PickleError::TrailingBytes { offset: self.pos });
        }
        if !self.marks.is_empty() || self.stack.len() != 1 {
            return Err(malformed(
                at,
                "STOP with a stack that does not hold exactly one value",
            ));
        }
        Ok(self.stack.pop().expect("stack holds one value").value)
    }

    // ---- input ----

    fn byte(&mut self) -> Result<u8, PickleError> {
        let Some(&b) = self.data.get(self.pos) else {
            return Err(PickleError::Truncated { offset: self.pos });
        };
        self.pos += 1;
        Ok(b)
    }

    /// Takes `n` bytes as a zero-copy slice of the frame.
    fn take(&mut self, n: usize) -> Result<Bytes, PickleError> {
        let start = self.pos;
        self.slice(n)?;
        Ok(self.data.slice(start..self.pos))
    }

    /// Takes `n` bytes, borrowed: for what is read and dropped at once
    /// (a `Bytes` slice would cost a reference count up and down).
    fn slice(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        let data: &'a [u8] = self.data;
        let end = self.pos.checked_add(n).filter(|&e| e <= data.len());
        let Some(end) = end else {
            return Err(PickleError::Truncated { offset: self.pos });
        };
        let b = &data[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        let b = self.slice(N)?;
        Ok(b.try_into().expect("slice(N) is N bytes long"))
    }

    fn u32(&mut self) -> Result<u32, PickleError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn line_bytes(&mut self) -> Result<Vec<u8>, PickleError> {
        let rest = &self.data[self.pos..];
        let limit = rest.len().min(MAX_LINE);
        let nl = rest[..limit].iter().position(|&b| b == b'\n');
        let nl = nl.ok_or_else(|| {
            if limit == MAX_LINE {
                malformed(self.pos, "text argument too long")
            } else {
                PickleError::Truncated { offset: self.pos }
            }
        })?;
        let line = rest[..nl].to_vec();
        self.pos += nl + 1;
        Ok(line)
    }

    fn line(&mut self) -> Result<String, PickleError> {
        let at = self.pos;
        let raw = self.line_bytes()?;
        String::from_utf8(raw).map_err(|_| malformed(at, "text argument is not UTF-8"))
    }

    fn memo_key_line(&mut self, at: usize) -> Result<u32, PickleError> {
        self.line()?
            .trim()
            .parse::<u32>()
            .map_err(|_| malformed(at, "bad memo key"))
    }

    fn long(&mut self, n: usize, at: usize) -> Result<(), PickleError> {
        if n > MAX_LONG_BYTES {
            return Err(malformed(at, "integer too long"));
        }
        let b = self.slice(n)?;
        self.push(Value::from_bigint(BigInt::from_signed_bytes_le(b)))?;
        Ok(())
    }

    // ---- stack ----

    fn push(&mut self, value: Value) -> Result<(), PickleError> {
        self.count_value()?;
        self.stack.push(Slot { value, depth: 0 });
        Ok(())
    }

    /// Every value costs ~48 bytes however few bytes of pickle produced it
    /// (`N` is one byte): the count bounds memory at a fixed multiple of the limit.
    fn count_value(&mut self) -> Result<(), PickleError> {
        self.values += 1;
        if self.values > self.limits.max_values {
            return Err(PickleError::TooManyValues {
                limit: self.limits.max_values,
            });
        }
        Ok(())
    }

    fn push_checked(&mut self, value: Value, depth: usize, at: usize) -> Result<(), PickleError> {
        if depth > self.limits.max_depth {
            return Err(PickleError::TooDeep {
                limit: self.limits.max_depth,
                offset: at,
            });
        }
        self.stack.push(Slot { value, depth });
        Ok(())
    }

    fn push_container(
        &mut self,
        make: fn(Vec<Value>) -> Value,
        items: Vec<Slot>,
        at: usize,
    ) -> Result<(), PickleError> {
        let depth = 1 + items.iter().map(|s| s.depth).max().unwrap_or(0);
        self.push_checked(make(items.into_iter().map(|s| s.value).collect()), depth, at)
    }

    fn push_dict(&mut self, pairs: Vec<(Slot, Slot)>, at: usize) -> Result<(), PickleError> {
        let depth = 1 + pairs.iter().map(|(k, v)| k.depth.max(v.depth)).max().unwrap_or(0);
        let items = pairs.into_iter().map(|(k, v)| (k.value, v.value)).collect();
        self.push_checked(Value::Dict(items), depth, at)
    }

    fn top_mut(&mut self, at: usize) -> Result<&mut Slot, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(malformed(at, "stack underflow"));
        }
        Ok(self.stack.last_mut().expect("stack is not empty"))
    }

    fn check_depth(&self, index: usize, at: usize) -> Result<(), PickleError> {
        if self.stack[index].depth > self.limits.max_depth {
            return Err(PickleError::TooDeep {
                limit: self.limits.max_depth,
                offset: at,
            });
        }
        Ok(())
    }

    /// Pops the top `n` values (not crossing the innermost MARK).
    fn pop_n(&mut self, n: usize, at: usize) -> Result<Vec<Slot>, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() < floor + n {
            return Err(malformed(at, "stack underflow"));
        }
        let from = self.stack.len() - n;
        Ok(self.drain_from(from))
    }

    /// Pops everything above the innermost MARK, and the MARK.
    fn pop_mark(&mut self, at: usize) -> Result<Vec<Slot>, PickleError> {
        let from = self
            .marks
            .pop()
            .ok_or_else(|| malformed(at, "no MARK on the stack"))?;
        Ok(self.drain_from(from))
    }

    /// Removes stack entries from `from` on. Memo entries that point at them
    /// are copied out first: after this the values live inside a parent.
    fn drain_from(&mut self, from: usize) -> Vec<Slot> {
        while let Some(&(index, key)) = self.live_memo.last() {
            if index < from {
                break;
            }
            self.live_memo.pop();
            let slot = &self.stack[index];
            self.memo.insert(key, Memo::Done(slot.value.clone(), slot.depth));
        }
        self.stack.split_off(from)
    }

    fn extend_list(&mut self, items: Vec<Slot>, at: usize) -> Result<(), PickleError> {
        let target = self.top_mut(at)?;
        let Value::List(list) = &mut target.value else {
            return Err(malformed(at, "APPEND(S) to something that is not a list"));
        };
        for item in items {
            target.depth = target.depth.max(item.depth + 1);
            list.push(item.value);
        }
        self.check_depth(self.stack.len() - 1, at)
    }

    fn extend_dict(&mut self, items: Vec<Slot>, at: usize) -> Result<(), PickleError> {
        let new = pairs(items, at)?;
        let target = self.top_mut(at)?;
        let Value::Dict(dict) = &mut target.value else {
            return Err(malformed(at, "SETITEM(S) on something that is not a dict"));
        };
        // Pairs are kept as on the wire, repeated keys included: lookups take
        // the last one (Python's semantics), re-encoding is a fixed point, and
        // inserting stays O(1) whatever the dict's size.
        for (k, v) in new {
            target.depth = target.depth.max(k.depth.max(v.depth) + 1);
            dict.push((k.value, v.value));
        }
        self.check_depth(self.stack.len() - 1, at)
    }

    // ---- memo (only pickles from other producers than ZEO use it) ----

    fn memo_put(&mut self, key: u32, at: usize) -> Result<(), PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(malformed(at, "PUT with an empty stack"));
        }
        let index = self.stack.len() - 1;
        self.memo.insert(key, Memo::OnStack(index));
        self.live_memo.push((index, key));
        Ok(())
    }

    fn memo_get(&mut self, key: u32, at: usize) -> Result<(), PickleError> {
        let (value, depth) = match self.memo.get(&key) {
            Some(Memo::OnStack(index)) => {
                let slot = &self.stack[*index];
                (slot.value.clone(), slot.depth)
            }
            Some(Memo::Done(v, depth)) => (v.clone(), *depth),
            None => return Err(malformed(at, "memo key not found")),
        };
        self.charge_copy(&value)?;
        self.push_checked(value, depth, at)
    }

    fn charge_copy(&mut self, v: &Value) -> Result<(), PickleError> {
        self.copied = self.copied.saturating_add(weight(v));
        if self.copied > self.limits.max_copied {
            return Err(PickleError::TooManyValues {
                limit: self.limits.max_copied,
            });
        }
        Ok(())
    }
}

/// `builtins.dict(pairs)` is interpreted as the dict it builds, as data:
/// ZODB clients pickle transaction extensions of dict subclasses that way
/// (their `__reduce__`), and a ZEO server unpickles them to a plain dict.
/// Nothing is called; any other shape stays a `Reduce` node (`Err` gives
/// the arguments back).
fn dict_from_pairs(callable: &Value, args: Value) -> Result<Value, Value> {
    let is_dict =
        matches!(callable, Value::Global { module, name } if module == "builtins" && name == "dict");
    if !is_dict {
        return Err(args);
    }
    let pairs = match &args {
        Value::Tuple(a) if a.is_empty() => return Ok(Value::Dict(Vec::new())),
        Value::Tuple(a) if a.len() == 1 => a[0].as_seq(),
        _ => None,
    };
    let Some(pairs) = pairs else { return Err(args) };
    let items: Option<Vec<(Value, Value)>> = pairs
        .iter()
        .map(|pair| match pair.as_seq() {
            Some([k, v]) => Some((k.clone(), v.clone())),
            _ => None,
        })
        .collect();
    items.map(Value::Dict).ok_or(args)
}

/// Nodes plus string bytes of a value (its cost when copied). Recursion is
/// bounded by the decoder's depth limit.
fn weight(v: &Value) -> usize {
    1 + match v {
        Value::Str(s) => s.len(),
        Value::Tuple(items) | Value::List(items) => items.iter().map(weight).sum(),
        Value::Dict(items) => items.iter().map(|(k, v)| weight(k) + weight(v)).sum(),
        Value::Reduce { callable, args } => weight(callable) + weight(args),
        Value::Object { class, args, state } => {
            weight(class) + weight(args) + state.as_deref().map_or(0, weight)
        }
        _ => 0,
    }
}

fn pairs(items: Vec<Slot>, at: usize) -> Result<Vec<(Slot, Slot)>, PickleError> {
    if !items.len().is_multiple_of(2) {
        return Err(malformed(at, "odd number of dict items"));
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

fn malformed(offset: usize, reason: &str) -> PickleError {
    PickleError::Malformed {
        offset,
        reason: reason.to_owned(),
    }
}

fn parse_int(s: &str) -> Option<Value> {
    let s = s.trim();
    if let Ok(i) = s.parse::<i64>() {
        return Some(Value::Int(i));
    }
    if s.len() > MAX_LONG_BYTES * 3 {
        return None;
    }
    s.parse::<BigInt>().ok().map(Value::from_bigint)
}

/// Python's `raw-unicode-escape` codec, used by protocol 0's UNICODE opcode:
/// latin-1 bytes where `\uXXXX` and `\UXXXXXXXX` stand for code points.
fn raw_unicode_escape(raw: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        let digits = match (b, raw.get(i + 1)) {
            (b'\\', Some(b'u')) => 4,
            (b'\\', Some(b'U')) => 8,
            _ => 0,
        };
        if digits == 0 {
            out.push(b as char);
            i += 1;
            continue;
        }
        let hex = raw.get(i + 2..i + 2 + digits)?;
        let code = u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
        out.push(char::from_u32(code)?);
        i += 2 + digits;
    }
    Some(out)
}
