//! How a record writes its redactions since format version 2: one JSON object per item,
//! keyed by path pattern, each holding the rules that fired there and their counts —
//! `{"breadcrumbs.*.message": {"email": 2, "user_id": {"hash": 1}}}`. A count alone means
//! the rule replaced (the method of nearly every rule); any other method names itself. A path
//! is written once however many rules fired under it, which is most of what made version 1
//! records (one `{path, rule, method, count}` object per entry) twice the size.
//!
//! Reading accepts both shapes, so `audit verify`, `export` and `report` read a trail that
//! spans the upgrade. The in-memory form stays a list of [`RedactionRecord`]s in the order
//! written; [`super::compact_redactions`] groups them by path before they are written, so a
//! record read back equals the record written.

use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserializer, Serializer};

use super::RedactionRecord;

/// The method a bare count stands for.
const DEFAULT_METHOD: &str = "replace";

/// Writes `entries` grouped by path, in the order each path first occurs.
///
/// # Errors
/// Only the serializer's own.
pub fn serialize<S: Serializer>(
    entries: &[RedactionRecord],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut paths: Vec<(&str, Vec<&RedactionRecord>)> = Vec::new();
    for entry in entries {
        match paths.iter_mut().find(|(path, _)| *path == entry.path) {
            Some((_, group)) => group.push(entry),
            None => paths.push((&entry.path, vec![entry])),
        }
    }
    let mut map = serializer.serialize_map(Some(paths.len()))?;
    for (path, group) in &paths {
        map.serialize_entry(path, &RulesAt(group))?;
    }
    map.end()
}

/// The rules under one path: `{rule: count}` or `{rule: {method: count}}`.
struct RulesAt<'a>(&'a [&'a RedactionRecord]);

impl serde::Serialize for RulesAt<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut rules: Vec<(&str, Vec<&RedactionRecord>)> = Vec::new();
        for entry in self.0 {
            match rules.iter_mut().find(|(rule, _)| *rule == entry.rule) {
                Some((_, group)) => group.push(entry),
                None => rules.push((&entry.rule, vec![entry])),
            }
        }
        let mut map = serializer.serialize_map(Some(rules.len()))?;
        for (rule, group) in &rules {
            match group.as_slice() {
                [only] if only.method == DEFAULT_METHOD => {
                    map.serialize_entry(rule, &only.count)?
                }
                _ => map.serialize_entry(rule, &MethodsOf(group))?,
            }
        }
        map.end()
    }
}

/// One rule's counts by method, for a rule that did not only replace.
struct MethodsOf<'a>(&'a [&'a RedactionRecord]);

impl serde::Serialize for MethodsOf<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for entry in self.0 {
            map.serialize_entry(&entry.method, &entry.count)?;
        }
        map.end()
    }
}

/// Reads version 2 (an object by path) or version 1 (a list of entries).
///
/// # Errors
/// The value is neither shape, or a count is not a `u32`.
pub fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<RedactionRecord>, D::Error> {
    deserializer.deserialize_any(EntriesVisitor)
}

struct EntriesVisitor;

impl<'de> Visitor<'de> for EntriesVisitor {
    type Value = Vec<RedactionRecord>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("redactions: an object by path, or a list of {path, rule, method, count}")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(entry) = seq.next_element::<RedactionRecord>()? {
            out.push(entry);
        }
        Ok(out)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(path) = map.next_key::<String>()? {
            map.next_value_seed(RulesSeed {
                path: &path,
                out: &mut out,
            })?;
        }
        Ok(out)
    }
}

/// Reads the rules under one path straight into the output list.
struct RulesSeed<'a> {
    path: &'a str,
    out: &'a mut Vec<RedactionRecord>,
}

impl<'de> de::DeserializeSeed<'de> for RulesSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RulesSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of rule names and counts")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(rule) = map.next_key::<String>()? {
            match map.next_value::<Counts>()? {
                Counts::Replaced(count) => self.out.push(RedactionRecord {
                    path: self.path.to_owned(),
                    rule,
                    method: DEFAULT_METHOD.to_owned(),
                    count,
                }),
                Counts::ByMethod(methods) => {
                    for (method, count) in methods {
                        self.out.push(RedactionRecord {
                            path: self.path.to_owned(),
                            rule: rule.clone(),
                            method,
                            count,
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

/// A bare count (replaced) or counts by method.
enum Counts {
    Replaced(u32),
    ByMethod(Vec<(String, u32)>),
}

impl<'de> de::Deserialize<'de> for Counts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CountsVisitor)
    }
}

struct CountsVisitor;

impl<'de> Visitor<'de> for CountsVisitor {
    type Value = Counts;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a count, or an object of methods and counts")
    }

    fn visit_u64<E: de::Error>(self, count: u64) -> Result<Counts, E> {
        u32::try_from(count)
            .map(Counts::Replaced)
            .map_err(|_| E::custom("redaction count out of range"))
    }

    fn visit_i64<E: de::Error>(self, count: i64) -> Result<Counts, E> {
        u32::try_from(count)
            .map(Counts::Replaced)
            .map_err(|_| E::custom("redaction count out of range"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Counts, A::Error> {
        let mut methods = Vec::new();
        while let Some((method, count)) = map.next_entry::<String, u32>()? {
            methods.push((method, count));
        }
        Ok(Counts::ByMethod(methods))
    }
}
