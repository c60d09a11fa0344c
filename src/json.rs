//! A borrowed, order-keeping JSON tree for the scrub hot path.
//!
//! `serde_json::Value` costs most of the scrub time: every string is unescaped into its own
//! allocation, every object is an `IndexMap` with hashed keys, and every string is escaped
//! again on the way out. [`Node`] borrows from the input instead: strings without escapes
//! are slices of it, strings keep their raw (still escaped) text so an untouched string is
//! written back verbatim, numbers are their raw text, and objects are plain vectors of
//! members in input order.
//!
//! Objects keep duplicate keys (the scrubber must see every value, a duplicate key must not
//! hide one); lookups return the last member with a key, as serde_json does.
//!
//! The grammar accepted is serde_json's (RFC 8259, nesting limited to 127 levels, numbers
//! out of `f64` range rejected): what one rejects, the other rejects too.

use std::borrow::Cow;

mod differential;
mod parse;
mod write;

#[cfg(test)]
mod tests;

pub use parse::{parse, parse_bytes, JsonError};
pub use write::{to_string, to_vec, write_compact};

/// The differential check against serde_json: public (but hidden) so the
/// `json_differential` fuzz target and `cargo test` run the same property.
#[doc(hidden)]
pub use differential::{check_against_serde_json, same_value, Verdict};

/// A JSON value borrowing from the text it was parsed from.
#[derive(Debug, Clone, PartialEq)]
pub enum Node<'a> {
    Null,
    Bool(bool),
    /// The number's text as written in the input (validated against the JSON grammar).
    Number(Cow<'a, str>),
    Str(Text<'a>),
    Array(Vec<Node<'a>>),
    Object(Object<'a>),
}

/// A JSON string: its decoded value and, while it is unchanged, its raw escaped text.
#[derive(Debug, Clone)]
pub struct Text<'a> {
    /// The bytes between the quotes in the input; `None` once the value was set.
    raw: Option<&'a str>,
    value: Cow<'a, str>,
}

/// A JSON object: members in input order, duplicates kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Object<'a> {
    entries: Vec<(Text<'a>, Node<'a>)>,
}

impl<'a> Text<'a> {
    /// A string with no raw text: it is escaped when written.
    pub fn new(value: impl Into<Cow<'a, str>>) -> Self {
        Self {
            raw: None,
            value: value.into(),
        }
    }

    /// A parsed string: `raw` is the escaped input text, `value` its decoding.
    pub(crate) fn parsed(raw: &'a str, value: Cow<'a, str>) -> Self {
        Self {
            raw: Some(raw),
            value,
        }
    }

    /// The decoded value.
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// The raw escaped text from the input, if the value was not changed since.
    pub fn raw(&self) -> Option<&'a str> {
        self.raw
    }

    /// Replaces the value; the raw text is dropped (the new value is escaped when written).
    pub fn set(&mut self, value: impl Into<Cow<'a, str>>) {
        self.value = value.into();
        self.raw = None;
    }

    /// The decoded value, owned.
    pub fn into_string(self) -> String {
        self.value.into_owned()
    }

    /// A copy that borrows nothing.
    pub fn into_owned(self) -> Text<'static> {
        Text {
            raw: None,
            value: Cow::Owned(self.value.into_owned()),
        }
    }
}

impl PartialEq for Text<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl PartialEq<str> for Text<'_> {
    fn eq(&self, other: &str) -> bool {
        self.value == other
    }
}

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.value
    }
}

impl<'a> From<&'a str> for Text<'a> {
    fn from(value: &'a str) -> Self {
        Self::new(value)
    }
}

impl From<String> for Text<'_> {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl<'a> Object<'a> {
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn from_entries(entries: Vec<(Text<'a>, Node<'a>)>) -> Self {
        Self { entries }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of the last member named `key`.
    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| v)
    }

    /// The value of the last member named `key`, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node<'a>> {
        self.entries
            .iter_mut()
            .rev()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k.as_str() == key)
    }

    /// Removes every member named `key` (the others keep their order); returns the value
    /// of the last one.
    pub fn remove(&mut self, key: &str) -> Option<Node<'a>> {
        let mut last = None;
        let mut i = 0;
        while i < self.entries.len() {
            if self.entries[i].0.as_str() == key {
                last = Some(self.entries.remove(i).1);
            } else {
                i += 1;
            }
        }
        last
    }

    /// Sets the last member named `key` to `value`, or appends a member; returns the
    /// value replaced.
    pub fn insert(&mut self, key: impl Into<Text<'a>>, value: Node<'a>) -> Option<Node<'a>> {
        let key = key.into();
        match self.get_mut(key.as_str()) {
            Some(slot) => Some(std::mem::replace(slot, value)),
            None => {
                self.entries.push((key, value));
                None
            }
        }
    }

    /// Appends a member without looking for an existing one.
    pub fn push(&mut self, key: impl Into<Text<'a>>, value: Node<'a>) {
        self.entries.push((key.into(), value));
    }

    pub fn iter(&self) -> std::slice::Iter<'_, (Text<'a>, Node<'a>)> {
        self.entries.iter()
    }

    /// Members with mutable values (keys stay as they are).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&Text<'a>, &mut Node<'a>)> {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// Keeps the members `keep` answers `true` for, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&Text<'a>, &mut Node<'a>) -> bool) {
        self.entries.retain_mut(|(k, v)| keep(k, v));
    }

    /// Removes the members at the given positions (ascending).
    pub(crate) fn remove_indices(&mut self, indices: &[usize]) {
        if indices.is_empty() {
            return;
        }
        let mut next = indices.iter().copied().peekable();
        let mut i = 0usize;
        self.entries.retain(|_| {
            let drop = next.peek() == Some(&i);
            if drop {
                next.next();
            }
            i += 1;
            !drop
        });
    }

    /// A copy that borrows nothing.
    pub fn into_owned(self) -> Object<'static> {
        Object {
            entries: self
                .entries
                .into_iter()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        }
    }
}

impl<'a> Node<'a> {
    /// A string node (escaped when written).
    pub fn string(value: impl Into<Cow<'a, str>>) -> Self {
        Self::Str(Text::new(value))
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(t) => Some(t.as_str()),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&Object<'a>> {
        match self {
            Self::Object(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_object_mut(&mut self) -> Option<&mut Object<'a>> {
        match self {
            Self::Object(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Vec<Node<'a>>> {
        match self {
            Self::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }

    pub fn is_string(&self) -> bool {
        matches!(self, Self::Str(_))
    }

    pub fn is_object(&self) -> bool {
        matches!(self, Self::Object(_))
    }

    pub fn is_array(&self) -> bool {
        matches!(self, Self::Array(_))
    }

    /// The member `key` of an object (the last one of that name); `None` for non-objects.
    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        self.as_object().and_then(|o| o.get(key))
    }

    /// A copy that borrows nothing.
    pub fn into_owned(self) -> Node<'static> {
        match self {
            Self::Null => Node::Null,
            Self::Bool(b) => Node::Bool(b),
            Self::Number(n) => Node::Number(Cow::Owned(n.into_owned())),
            Self::Str(t) => Node::Str(t.into_owned()),
            Self::Array(items) => Node::Array(items.into_iter().map(Node::into_owned).collect()),
            Self::Object(o) => Node::Object(o.into_owned()),
        }
    }

    /// The same value as a tree of its own (numbers in serde_json's formatting).
    pub fn from_value(value: &serde_json::Value) -> Node<'static> {
        use serde_json::Value;
        match value {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Bool(*b),
            Value::Number(n) => Node::Number(Cow::Owned(n.to_string())),
            Value::String(s) => Node::Str(Text::new(s.clone())),
            Value::Array(items) => Node::Array(items.iter().map(Node::from_value).collect()),
            Value::Object(map) => Node::Object(Object {
                entries: map
                    .iter()
                    .map(|(k, v)| (Text::new(k.clone()), Node::from_value(v)))
                    .collect(),
            }),
        }
    }

    /// The same value as a `serde_json::Value` (duplicate keys: the last value wins, at the
    /// first one's position, as when serde_json parses the text).
    pub fn to_value(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => Value::Bool(*b),
            Self::Number(n) => serde_json::from_str::<serde_json::Number>(n)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            Self::Str(t) => Value::String(t.as_str().to_owned()),
            Self::Array(items) => Value::Array(items.iter().map(Node::to_value).collect()),
            Self::Object(o) => {
                let mut map = serde_json::Map::with_capacity(o.len());
                for (k, v) in o.iter() {
                    map.insert(k.as_str().to_owned(), v.to_value());
                }
                Value::Object(map)
            }
        }
    }
}
