//! The differential check of our parser against serde_json, shared by the
//! `json_differential` fuzz target and the unit tests (so CI runs the very property the
//! fuzzer runs). Our parser is a security boundary: whatever it accepts the scrubber walks
//! and forwards, so a text it reads differently from serde_json (which Sentry-side
//! consumers resemble) could hide a value from scrubbing.
//!
//! What must agree, for any bytes:
//! - the accept/reject decision ([`super::parse_bytes`] against
//!   `serde_json::from_slice::<Value>`);
//! - for accepted input, the values: our tree converted to a `Value` is equal to serde_json's,
//!   compared strictly ([`same_value`]: key order, and number representation as well as
//!   value);
//! - our serializer's output ([`super::to_vec`]) re-parsed by serde_json is that same value,
//!   and re-parsed by us is the same tree.
//!
//! Intentional differences, and how the check accounts for each (none is skipped):
//! - Duplicate keys: our objects keep every member (the scrubber must see every value);
//!   serde_json keeps the last value at the first occurrence's position. The conversion
//!   collapses duplicates exactly that way (`Map::insert`), so the last value is compared;
//!   the members it drops are still checked by the round trip through our own parser.
//! - Numbers: we keep the number's text verbatim (written back as it came); serde_json keeps
//!   a `u64`, `i64` or `f64`. Each number text is parsed by serde_json's own number parser
//!   (with the crate's `float_roundtrip` feature, as the `Value` parse uses) and the
//!   representation and bits must match; a text that parser rejects is reported, never
//!   mapped to some default. Our output text may therefore differ from serde_json's (`1E5`
//!   stays `1E5`), which is why output is compared as re-parsed values, not bytes.
//! - Error messages and positions are ours; only the decision is compared.
//! - Nesting depth: no difference (127 levels parse, 128 do not, in both); not special-cased.

use serde_json::{Map, Number, Value};

use super::{parse_bytes, to_vec, Node};

/// What both parsers decided about an input they agree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    Rejected,
}

/// Runs the differential check on `input`.
///
/// # Errors
/// A description of the first divergence found (which parser said what, or the path of the
/// first differing value). The description may contain input text: it is for fuzzing and
/// tests, never for logs.
pub fn check_against_serde_json(input: &[u8]) -> Result<Verdict, String> {
    let ours = parse_bytes(input);
    let theirs = serde_json::from_slice::<Value>(input);
    let (node, value) = match (ours, theirs) {
        (Err(_), Err(_)) => return Ok(Verdict::Rejected),
        (Ok(_), Err(e)) => return Err(format!("we accept, serde_json rejects ({e})")),
        (Err(e), Ok(_)) => return Err(format!("serde_json accepts, we reject ({e})")),
        (Ok(node), Ok(value)) => (node, value),
    };
    let converted = to_serde_value(&node, "$")?;
    same_value(&converted, &value, "$").map_err(|e| format!("tree: {e}"))?;

    let written = to_vec(&node, input.len());
    let reparsed = serde_json::from_slice::<Value>(&written)
        .map_err(|e| format!("serde_json rejects our output ({e})"))?;
    same_value(&reparsed, &value, "$").map_err(|e| format!("written: {e}"))?;
    let again = parse_bytes(&written).map_err(|e| format!("we reject our own output ({e})"))?;
    if again != node {
        return Err("our output parses back to a different tree".to_owned());
    }
    Ok(Verdict::Accepted)
}

/// Our tree as serde_json would have built it: duplicate keys collapse onto the first
/// position with the last value, number texts go through serde_json's number parser.
fn to_serde_value(node: &Node<'_>, path: &str) -> Result<Value, String> {
    Ok(match node {
        Node::Null => Value::Null,
        Node::Bool(b) => Value::Bool(*b),
        Node::Number(text) => {
            Value::Number(serde_json::from_str::<Number>(text).map_err(|e| {
                format!("{path}: number text {text:?} rejected by serde_json ({e})")
            })?)
        }
        Node::Str(t) => Value::String(t.as_str().to_owned()),
        Node::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| to_serde_value(item, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Node::Object(o) => {
            let mut map = Map::with_capacity(o.len());
            for (k, v) in o.iter() {
                let value = to_serde_value(v, &format!("{path}.{:?}", k.as_str()))?;
                map.insert(k.as_str().to_owned(), value);
            }
            Value::Object(map)
        }
    })
}

/// Strict equality: `Value`'s own `==` ignores object key order (its `IndexMap` compares as
/// a map) and `-0.0 == 0.0`; here key order matters, numbers must have the same
/// representation (`u64`, `i64` or `f64`) and floats the same bits.
///
/// # Errors
/// The path of the first difference, with both values.
#[doc(hidden)]
pub fn same_value(ours: &Value, theirs: &Value, path: &str) -> Result<(), String> {
    let differ = || Err(format!("{path}: ours {ours} , serde_json {theirs}"));
    match (ours, theirs) {
        (Value::Null, Value::Null) => Ok(()),
        (Value::Bool(a), Value::Bool(b)) if a == b => Ok(()),
        (Value::Number(a), Value::Number(b)) => {
            let same = match (a.as_u64(), a.as_i64(), a.as_f64()) {
                (Some(x), _, _) => b.as_u64() == Some(x),
                (None, Some(x), _) => !b.is_u64() && b.as_i64() == Some(x),
                (None, None, Some(x)) => {
                    b.is_f64() && b.as_f64().map(f64::to_bits) == Some(x.to_bits())
                }
                (None, None, None) => false,
            };
            if same {
                Ok(())
            } else {
                differ()
            }
        }
        (Value::String(a), Value::String(b)) if a == b => Ok(()),
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .try_for_each(|(i, (x, y))| same_value(x, y, &format!("{path}[{i}]"))),
        (Value::Object(a), Value::Object(b)) if a.len() == b.len() => {
            a.iter().zip(b).try_for_each(|((ka, va), (kb, vb))| {
                if ka == kb {
                    same_value(va, vb, &format!("{path}.{ka:?}"))
                } else {
                    Err(format!("{path}: key order: ours {ka:?}, serde_json {kb:?}"))
                }
            })
        }
        _ => differ(),
    }
}
