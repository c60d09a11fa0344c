//! C-CDA / CDA R2 documents (`<ClinicalDocument …>`) inside any string. The header's
//! person elements say what each value is: inside `recordTarget` (the patient), a
//! `guardian`, or a related person (`relatedEntity`, `associatedEntity` of a participant
//! or informant), `given`/`family` are a name, `addr` parts an address below the state,
//! `telecom/@value` a phone or an email, `id/@extension` an identifier and
//! `birthTime/@value` a birth date. Every other text node (section `<text>` narratives
//! included) goes through the value detectors. Tags, attributes and document order stay,
//! so the result is the same document with labels in it.

use crate::scrub::keys::KeyClass;
use crate::scrub::walk::{Cx, Engine};

/// Elements whose subtree describes a person whose data is PHI.
const PERSON_SCOPES: &[&str] = &[
    "recordTarget",
    "guardian",
    "relatedEntity",
    "associatedEntity",
    "relatedSubject",
];

/// Where a CDA document starts in `text`: the root element `ClinicalDocument`, with or
/// without a namespace prefix (`<cda:ClinicalDocument xmlns:cda="urn:hl7-org:v3">`: XML
/// Namespaces 1.0 lets a document bind the CDA namespace to any prefix, and the element
/// is the same).
pub(crate) fn find(text: &str) -> Option<usize> {
    const ROOT: &str = "ClinicalDocument";
    let bytes = text.as_bytes();
    memchr::memchr_iter(b'<', bytes).find(|&at| {
        let Some(tag) = text.get(at + 1..) else {
            return false;
        };
        // An optional prefix: an XML name (letters, digits, `_`, `-`, `.`) and a colon.
        let colon = tag.as_bytes().iter().take(33).position(|&b| b == b':');
        let name = match colon {
            Some(colon)
                if colon > 0
                    && colon <= 32
                    && tag[..colon].starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    && tag[..colon]
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')) =>
            {
                &tag[colon + 1..]
            }
            _ => tag,
        };
        name.starts_with(ROOT)
            && name[ROOT.len()..]
                .chars()
                .next()
                .is_some_and(|after| after.is_whitespace() || after == '>')
    })
}

/// The class of a text node by its element, inside a person scope.
fn text_class(element: &str) -> Option<KeyClass> {
    match element {
        "given" | "family" | "prefix" | "suffix" | "name" => Some(KeyClass::Name),
        "streetAddressLine" | "city" | "postalCode" | "county" | "houseNumber" | "streetName"
        | "unitID" | "censusTract" => Some(KeyClass::Address),
        _ => None,
    }
}

/// The class of an attribute by its element and name, inside a person scope.
fn attribute_class(element: &str, attribute: &str, value: &str) -> Option<KeyClass> {
    match (element, attribute) {
        ("telecom", "value") if value.starts_with("mailto:") => Some(KeyClass::Email),
        ("telecom", "value") => Some(KeyClass::Phone),
        ("id", "extension") => Some(KeyClass::Mrn),
        ("birthTime" | "deceasedTime", "value") => Some(KeyClass::Dob),
        _ => None,
    }
}

/// Scrubs the document in `text` from `start` (from [`find`]); text before it is
/// scanned as text. `None` if nothing changed.
pub(crate) fn scrub(
    eng: &Engine,
    text: &str,
    start: usize,
    key: &str,
    cx: &mut Cx,
) -> Option<String> {
    let mut out = String::with_capacity(text.len() + 16);
    let mut changed = super::push_scanned(eng, &text[..start], key, &mut out, cx);
    // Open elements, and how many of them are person scopes.
    let mut stack: Vec<&str> = Vec::new();
    let mut person_depth = 0usize;
    let mut rest = &text[start..];
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            changed |= push_text(
                eng,
                rest,
                stack.last().copied(),
                person_depth > 0,
                key,
                &mut out,
                cx,
            );
            break;
        };
        let (node_text, tail) = rest.split_at(lt);
        changed |= push_text(
            eng,
            node_text,
            stack.last().copied(),
            person_depth > 0,
            key,
            &mut out,
            cx,
        );
        // Comments, CDATA, processing instructions and doctypes are copied whole.
        let special_end = if tail.starts_with("<!--") {
            tail.find("-->").map(|e| e + 3)
        } else if tail.starts_with("<![CDATA[") {
            tail.find("]]>").map(|e| e + 3)
        } else if tail.starts_with("<?") || tail.starts_with("<!") {
            tail.find('>').map(|e| e + 1)
        } else {
            None
        };
        if let Some(end) = special_end {
            out.push_str(&tail[..end]);
            rest = &tail[end..];
            continue;
        }
        let Some(gt) = tail.find('>') else {
            // An unterminated tag: the rest is text.
            changed |= push_text(eng, tail, None, person_depth > 0, key, &mut out, cx);
            break;
        };
        let tag = &tail[..=gt];
        rest = &tail[gt + 1..];
        if let Some(name) = tag.strip_prefix("</") {
            let name = name.trim_end_matches('>').trim();
            let local = local_name(name);
            if let Some(pos) = stack.iter().rposition(|n| *n == local) {
                for closed in stack.drain(pos..) {
                    if PERSON_SCOPES.contains(&closed) {
                        person_depth = person_depth.saturating_sub(1);
                    }
                }
            }
            out.push_str(tag);
            continue;
        }
        let inner = tag[1..tag.len() - 1].trim_end_matches('/');
        let self_closing = tag.ends_with("/>");
        let name_end = inner
            .find(|c: char| c.is_whitespace())
            .unwrap_or(inner.len());
        let local = local_name(&inner[..name_end]);
        let opens_person = PERSON_SCOPES.contains(&local);
        let in_person = person_depth > 0 || opens_person;
        match in_person
            .then(|| scrub_attributes(eng, tag, local, cx))
            .flatten()
        {
            Some(new) => {
                out.push_str(&new);
                changed = true;
            }
            None => out.push_str(tag),
        }
        if !self_closing {
            stack.push(local);
            if opens_person {
                person_depth += 1;
            }
        }
        if stack.len() > 512 {
            // Deeper than any real document: the rest is treated as text.
            changed |= push_text(eng, rest, None, person_depth > 0, key, &mut out, cx);
            break;
        }
    }
    changed.then_some(out)
}

fn local_name(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

/// A text node: a person element's value by its class, anything else through the
/// detectors. Returns whether it changed.
fn push_text(
    eng: &Engine,
    node: &str,
    element: Option<&str>,
    in_person: bool,
    key: &str,
    out: &mut String,
    cx: &mut Cx,
) -> bool {
    let trimmed = node.trim();
    if trimmed.is_empty() {
        out.push_str(node);
        return false;
    }
    let class = element.filter(|_| in_person).and_then(text_class);
    let new = match class {
        Some(class) => eng.redact_class(class, trimmed, cx),
        None => eng.scrub_text(trimmed, key, cx),
    };
    match new {
        Some(new) => {
            let at = node.find(trimmed).unwrap_or(0);
            out.push_str(&node[..at]);
            out.push_str(&escape_text(&new));
            out.push_str(&node[at + trimmed.len()..]);
            true
        }
        None => {
            out.push_str(node);
            false
        }
    }
}

/// A person element's attributes (`value`, `extension`) by class; `None` if unchanged.
fn scrub_attributes(eng: &Engine, tag: &str, element: &str, cx: &mut Cx) -> Option<String> {
    let mut out = String::with_capacity(tag.len() + 8);
    let mut changed = false;
    let mut rest = tag;
    // attr="value" or attr='value'
    while let Some(eq) = rest.find('=') {
        let (before, after) = rest.split_at(eq);
        let attribute = before
            .rsplit(|c: char| c.is_whitespace())
            .next()
            .unwrap_or("")
            .trim();
        let quote = after[1..].chars().next();
        let Some(q) = quote.filter(|c| *c == '"' || *c == '\'') else {
            break;
        };
        let value_start = eq + 2;
        let Some(len) = rest[value_start..].find(q) else {
            break;
        };
        let value = &rest[value_start..value_start + len];
        out.push_str(&rest[..value_start]);
        let mut class = attribute_class(element, local_name(attribute), value);
        // The SSA's OID names a social security number.
        if class == Some(KeyClass::Mrn) && tag.contains("\"2.16.840.1.113883.4.1\"") {
            class = Some(KeyClass::Ssn);
        }
        match class.and_then(|class| eng.redact_class(class, value, cx)) {
            Some(new) => {
                out.push_str(&escape_text(&new).replace('"', "&quot;"));
                changed = true;
            }
            None => out.push_str(value),
        }
        rest = &rest[value_start + len..];
    }
    out.push_str(rest);
    changed.then_some(out)
}

/// Keeps a replacement from opening or closing a tag. `&` stays: the text around a
/// label keeps its own entities (`&amp;`) as written.
fn escape_text(s: &str) -> String {
    if !s.contains(['<', '>']) {
        return s.to_owned();
    }
    s.replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_documents() {
        assert_eq!(
            find("<?xml?><ClinicalDocument xmlns='urn:hl7-org:v3'>"),
            Some(7)
        );
        assert_eq!(find("<ClinicalDocumentType>"), None);
        assert_eq!(find("no document"), None);
        // The CDA namespace bound to a prefix.
        assert_eq!(
            find("<?xml?>\n<cda:ClinicalDocument xmlns:cda=\"urn:hl7-org:v3\">"),
            Some(8)
        );
        assert_eq!(find("<hl7:ClinicalDocument>"), Some(0));
        assert_eq!(find("<a b=\"x:ClinicalDocument \">"), None);
        assert_eq!(find("<cda:ClinicalDocumentType>"), None);
    }

    #[test]
    fn classes() {
        assert_eq!(text_class("family"), Some(KeyClass::Name));
        assert_eq!(text_class("state"), None);
        assert_eq!(
            attribute_class("telecom", "value", "mailto:a@b.c"),
            Some(KeyClass::Email)
        );
        assert_eq!(attribute_class("id", "root", "2.16.840.1"), None);
    }
}
