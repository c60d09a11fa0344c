//! HL7 v2 messages inside any string: an interface engine's frame variable, a log line
//! quoting the message it failed on. The segment and field decide what is PHI (PID-5 is a
//! name, PID-7 a birth date, IN1-36 a policy number), not a regex over flat text: a
//! compact `19750608` or a `DOE^JANE` name means nothing to the text detectors.
//!
//! The message is cut at its own delimiters (MSH-1 and MSH-2), every PHI field's
//! components become the class label (`[name]^[name]`), free-text fields (OBX-5, NTE-3)
//! and every other field go through the value detectors, and MSH/EVN are kept. The
//! result has the same segments, fields, components and delimiters: still a message an
//! HL7 parser reads. Escape sequences (`\F\`, `\S\`, …) are decoded before a field is
//! judged; a field that stays is written back with its original bytes.

use crate::scrub::keys::KeyClass;
use crate::scrub::walk::{Cx, Engine};

/// What a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldRule {
    /// Every component is PHI of this class.
    Class(KeyClass),
    /// A provider (XCN: id, family, given, …): names redacted when the config says so.
    Provider,
    /// Free text: the value detectors and clinical rules.
    Text,
    /// Kept as is (timestamps, message control, codes).
    Keep,
}

/// The PHI fields of the segments that carry a person, by segment and field number
/// (HL7 v2.5.1 chapter 3 and 6 field definitions).
fn field_rule(segment: &str, field: usize) -> FieldRule {
    use FieldRule::{Class, Keep, Provider, Text};
    use KeyClass::{Account, Address, Dob, Insurance, Mrn, Name, Phone, Ssn};
    match (segment, field) {
        ("MSH" | "EVN", _) => Keep,
        // Patient identification.
        ("PID", 2 | 3 | 4 | 21) => Class(Mrn),
        ("PID", 5 | 6 | 9) => Class(Name),
        ("PID", 7 | 29) => Class(Dob),
        ("PID", 11 | 12) => Class(Address),
        ("PID", 13 | 14 | 40) => Class(Phone),
        ("PID", 18) => Class(Account),
        ("PID", 19) => Class(Ssn),
        ("PID", 20) => Class(Mrn),
        ("PID", 23) => Class(Address),
        // Additional demographics: the primary care provider.
        ("PD1", 4) => Provider,
        // Next of kin / associated parties.
        ("NK1", 2 | 30) => Class(Name),
        ("NK1", 4 | 32) => Class(Address),
        ("NK1", 5 | 6 | 31 | 40) => Class(Phone),
        ("NK1", 16) => Class(Dob),
        ("NK1", 33) => Class(Mrn),
        ("NK1", 37) => Class(Ssn),
        // Guarantor.
        ("GT1", 2) => Class(Account),
        ("GT1", 3 | 4 | 16) => Class(Name),
        ("GT1", 5 | 17) => Class(Address),
        ("GT1", 6 | 7 | 18) => Class(Phone),
        ("GT1", 8) => Class(Dob),
        ("GT1", 12) => Class(Ssn),
        ("GT1", 19) => Class(Mrn),
        // Insurance.
        ("IN1", 8 | 36 | 49) => Class(Insurance),
        ("IN1", 16) => Class(Name),
        ("IN1", 18) => Class(Dob),
        ("IN1", 19) => Class(Address),
        ("IN2", 1 | 6 | 8) => Class(Insurance),
        ("IN2", 2) => Class(Ssn),
        // Visit: the visit number identifies the stay; doctors per config.
        ("PV1", 19 | 50) => Class(Account),
        ("PV1", 7 | 8 | 9 | 17 | 52) => Provider,
        ("ORC", 12) | ("OBR", 16 | 32 | 33 | 34) => Provider,
        // Observation values and notes are free text.
        ("OBX", 5) | ("NTE", 3) => Text,
        _ => Text,
    }
}

/// The delimiters a message declares in MSH-1 and MSH-2.
#[derive(Debug, Clone, Copy)]
struct Delimiters {
    field: char,
    component: char,
    repetition: char,
    escape: Option<char>,
    subcomponent: Option<char>,
}

/// Where the first message in `text` starts: an `MSH` followed by a field separator and
/// at least three encoding characters, or (a log quoting the segment it failed on) a
/// segment that carries a person (`PID|1||…`) with the standard delimiters; either at the
/// start of the text or of a line, or after a blank, a quote, `:` or `=`.
pub(crate) fn find(text: &str) -> Option<usize> {
    let header = super::find_at_line_start(text, "MSH", |rest| delimiters(rest).is_some());
    let bare = find_bare_segment(text);
    match (header, bare) {
        (Some(h), Some(b)) => Some(h.min(b)),
        (h, b) => h.or(b),
    }
}

/// Segments that carry a person, recognised without their message header.
const PERSON_SEGMENTS: [&[u8]; 7] = [b"PID", b"PD1", b"NK1", b"GT1", b"IN1", b"IN2", b"PV1"];

/// The first person segment with the standard delimiters (`PID|…`, at least four `|` on
/// its line) at a line start. Such a segment's id is followed by a `|`, so only the three
/// bytes before each `|` are looked at: one `memchr` pass over text with no `|` at all,
/// which is nearly every string.
fn find_bare_segment(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    for bar in memchr::memchr_iter(b'|', bytes) {
        let Some(at) = bar.checked_sub(3) else {
            continue;
        };
        let Some(id) = bytes.get(at..bar) else {
            continue;
        };
        if !PERSON_SEGMENTS.contains(&id) || !super::starts_line(text, at) {
            continue;
        }
        let line = text
            .get(at..)
            .and_then(|rest| rest.split(['\r', '\n']).next());
        let line = line.unwrap_or("");
        if memchr::memchr_iter(b'|', line.as_bytes()).count() >= 4 {
            return Some(at);
        }
    }
    None
}

/// The delimiters of a segment quoted without its header: HL7's defaults.
const STANDARD: Delimiters = Delimiters {
    field: '|',
    component: '^',
    repetition: '~',
    escape: Some('\\'),
    subcomponent: Some('&'),
};

fn delimiters(msh: &str) -> Option<Delimiters> {
    let mut chars = msh.get(3..)?.chars();
    let field = chars.next()?;
    let enc: Vec<char> = chars.take_while(|c| *c != field).take(5).collect();
    let usable = |c: char| !c.is_alphanumeric() && !c.is_whitespace();
    if !usable(field) || enc.len() < 2 || !enc.iter().all(|c| usable(*c) && *c != field) {
        return None;
    }
    Some(Delimiters {
        field,
        component: enc[0],
        repetition: enc[1],
        escape: enc.get(2).copied(),
        subcomponent: enc.get(3).copied(),
    })
}

/// A segment line: three capitals or digits, then the field separator (or nothing).
fn is_segment(line: &str, d: &Delimiters) -> bool {
    let b = line.as_bytes();
    b.len() >= 3
        && b[..3]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        && b[0].is_ascii_uppercase()
        && line[3..].chars().next().is_none_or(|c| c == d.field)
}

/// What the config adds to the field table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Hl7Options {
    /// Doctors' names in provider fields (PV1-7, ORC-12, …) are redacted too.
    pub(crate) redact_providers: bool,
    /// Site-specific PHI fields (`ZPI-4`): segment and field number.
    pub(crate) phi_fields: Vec<(String, usize)>,
}

impl Hl7Options {
    fn rule(&self, segment: &str, field: usize) -> FieldRule {
        if self
            .phi_fields
            .iter()
            .any(|(s, f)| s == segment && *f == field)
        {
            return FieldRule::Class(KeyClass::Custom);
        }
        field_rule(segment, field)
    }
}

/// Parses `SEG-N` (`ZPI-4`) for [`Hl7Options::phi_fields`].
pub(crate) fn parse_field_ref(s: &str) -> Option<(String, usize)> {
    let (seg, n) = s.split_once('-')?;
    let valid = seg.len() == 3
        && seg
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && seg.as_bytes()[0].is_ascii_uppercase();
    let n: usize = n.parse().ok().filter(|n| *n >= 1)?;
    valid.then(|| (seg.to_owned(), n))
}

/// Scrubs the HL7 message in `text` starting at `start` (from [`find`]); the text before
/// it and every line after it that is not a segment are scanned as text. `None` if nothing changed.
///
/// A message inside a string literal (a Python `repr()` of a frame variable, a log line
/// that escaped its control characters: `'MSH|^~\\&|…\rPID|…'`) has its segment breaks
/// written as the escapes `\r` and `\n` and its escape character doubled; it is read as
/// the literal's value and written back escaped the same way.
pub(crate) fn scrub(
    eng: &Engine,
    text: &str,
    start: usize,
    key: &str,
    opts: &Hl7Options,
    cx: &mut Cx,
) -> Option<String> {
    if let Some(lit) = Literal::at(text, start, |decoded| {
        let d = if decoded.starts_with("MSH") {
            delimiters(decoded)
        } else {
            Some(STANDARD)
        };
        d.is_some_and(|d| {
            decoded
                .split(['\r', '\n'])
                .skip(1)
                .any(|line| line.len() > 3 && is_segment(line, &d))
        })
    }) {
        return lit.scrub_within(eng, text, start, key, cx, |decoded, cx| {
            scrub_message(eng, decoded, 0, key, opts, cx)
        });
    }
    scrub_message(eng, text, start, key, opts, cx)
}

/// A message written inside a string literal, from the message's first byte to the
/// literal's closing quote (or the text's end): its value, with the escapes of Python's
/// `repr()` and of JSON/JavaScript strings decoded (`\\ \' \" \n \r \t \xNN \uNNNN`).
/// Shared with the X12 reader, whose interchanges are quoted the same way.
pub(super) struct Literal {
    /// The literal's value from the message on.
    pub(super) decoded: String,
    /// Where the literal part ends in the text (its closing quote, or the text's end).
    pub(super) end: usize,
    quote: Option<char>,
}

impl Literal {
    /// `text` with the literal's value (from `start`) scrubbed by `scrub` and written back
    /// escaped, and the text around it scanned by the value detectors; `None` if nothing
    /// changed.
    pub(super) fn scrub_within(
        &self,
        eng: &Engine,
        text: &str,
        start: usize,
        key: &str,
        cx: &mut Cx,
        scrub: impl FnOnce(&str, &mut Cx) -> Option<String>,
    ) -> Option<String> {
        let mut out = String::with_capacity(text.len() + 16);
        let mut changed = super::push_scanned(eng, text.get(..start)?, key, &mut out, cx);
        match scrub(&self.decoded, cx) {
            Some(new) => {
                out.push_str(&self.encode(&new));
                changed = true;
            }
            None => out.push_str(text.get(start..self.end)?),
        }
        changed |= super::push_scanned(eng, text.get(self.end..)?, key, &mut out, cx);
        changed.then_some(out)
    }

    /// The literal that `text[start..]` is part of, if it writes a line break as an
    /// escape (and holds no raw one), and `ok` holds of its value.
    pub(super) fn at(text: &str, start: usize, ok: impl Fn(&str) -> bool) -> Option<Literal> {
        let rest = text.get(start..)?;
        if !rest.contains("\\r") && !rest.contains("\\n") {
            return None;
        }
        let quote = text[..start]
            .chars()
            .next_back()
            .filter(|c| matches!(c, '\'' | '"'));
        let mut decoded = String::with_capacity(rest.len());
        let mut escaped_break = false;
        let mut chars = rest.char_indices();
        let mut end = text.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\r' | '\n' => return None,
                c if Some(c) == quote => {
                    end = start + i;
                    break;
                }
                '\\' => {
                    let Some((_, n)) = chars.next() else {
                        decoded.push(c);
                        break;
                    };
                    match n {
                        'n' => {
                            decoded.push('\n');
                            escaped_break = true;
                        }
                        'r' => {
                            decoded.push('\r');
                            escaped_break = true;
                        }
                        't' => decoded.push('\t'),
                        '\\' | '\'' | '"' => decoded.push(n),
                        'x' | 'u' => {
                            let width = if n == 'x' { 2 } else { 4 };
                            let digits: String =
                                chars.clone().take(width).map(|(_, c)| c).collect();
                            match u32::from_str_radix(&digits, 16)
                                .ok()
                                .and_then(char::from_u32)
                            {
                                Some(ch) if digits.len() == width => {
                                    decoded.push(ch);
                                    for _ in 0..width {
                                        chars.next();
                                    }
                                }
                                _ => {
                                    decoded.push('\\');
                                    decoded.push(n);
                                }
                            }
                        }
                        _ => {
                            decoded.push('\\');
                            decoded.push(n);
                        }
                    }
                }
                c => decoded.push(c),
            }
        }
        (escaped_break && ok(&decoded)).then_some(Literal {
            decoded,
            end,
            quote,
        })
    }

    /// `value` written back as the literal wrote it.
    pub(super) fn encode(&self, value: &str) -> String {
        let mut out = String::with_capacity(value.len() + 16);
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if Some(c) == self.quote => {
                    out.push('\\');
                    out.push(c);
                }
                c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                    out.push_str(&format!("\\x{:02x}", u32::from(c)));
                }
                c => out.push(c),
            }
        }
        out
    }
}

/// [`scrub`] of a message as it is (not inside a literal).
fn scrub_message(
    eng: &Engine,
    text: &str,
    start: usize,
    key: &str,
    opts: &Hl7Options,
    cx: &mut Cx,
) -> Option<String> {
    let rest = text.get(start..)?;
    let d = if rest.starts_with("MSH") {
        delimiters(rest)?
    } else {
        STANDARD
    };
    let mut out = String::with_capacity(text.len() + 16);
    let mut changed = super::push_scanned(eng, &text[..start], key, &mut out, cx);
    let body = &text[start..];
    let mut rest = body;
    while !rest.is_empty() {
        let end = rest.find(['\r', '\n']).unwrap_or(rest.len());
        let line = &rest[..end];
        let sep_len = if rest[end..].starts_with("\r\n") {
            2
        } else {
            usize::from(end < rest.len())
        };
        let sep = &rest[end..end + sep_len];
        // A line that is not a segment (a log's own text, a broken line) is text; the
        // segments after it are still segments.
        let new = if is_segment(line, &d) {
            scrub_segment(eng, line, &d, key, opts, cx)
        } else {
            eng.scrub_text(line, key, cx)
        };
        match new {
            Some(n) => {
                out.push_str(&n);
                changed = true;
            }
            None => out.push_str(line),
        }
        out.push_str(sep);
        rest = &rest[end + sep.len()..];
    }
    changed.then_some(out)
}

fn scrub_segment(
    eng: &Engine,
    line: &str,
    d: &Delimiters,
    key: &str,
    opts: &Hl7Options,
    cx: &mut Cx,
) -> Option<String> {
    let name = line.get(..3)?;
    if matches!(name, "MSH" | "EVN") {
        return None;
    }
    let mut out = String::with_capacity(line.len() + 16);
    let mut changed = false;
    for (i, field) in line.split(d.field).enumerate() {
        if i > 0 {
            out.push(d.field);
        }
        if i == 0 || field.is_empty() {
            out.push_str(field);
            continue;
        }
        let rule = opts.rule(name, i);
        match scrub_field(eng, field, rule, d, key, opts, cx) {
            Some(new) => {
                out.push_str(&new);
                changed = true;
            }
            None => out.push_str(field),
        }
    }
    changed.then_some(out)
}

/// One field: each repetition, component and subcomponent judged by the field's rule.
fn scrub_field(
    eng: &Engine,
    field: &str,
    rule: FieldRule,
    d: &Delimiters,
    key: &str,
    opts: &Hl7Options,
    cx: &mut Cx,
) -> Option<String> {
    match rule {
        FieldRule::Keep => None,
        FieldRule::Text => {
            // Free text keeps its structure characters: scan the decoded text of each
            // component so a delimiter never ends up inside a label.
            map_components(field, d, |_, part| {
                let decoded = unescape(part, d);
                eng.scrub_text(&decoded, key, cx)
            })
        }
        FieldRule::Class(class) => map_components(field, d, |index, part| {
            let decoded = unescape(part, d);
            if decoded.trim().is_empty() || !holds_value(class, index) {
                return eng.scrub_text(&decoded, key, cx);
            }
            eng.redact_class(class, &decoded, cx)
        }),
        FieldRule::Provider => map_components(field, d, |index, part| {
            let decoded = unescape(part, d);
            if decoded.trim().is_empty() {
                return None;
            }
            // XCN: 1 is the id (an NPI is a public registry number), 2–7 the name.
            if opts.redact_providers && (1..=6).contains(&index) {
                eng.redact_class(KeyClass::Name, &decoded, cx)
            } else {
                eng.scrub_text(&decoded, key, cx)
            }
        }),
    }
}

/// Whether component `index` of a field of `class` holds the person's value: an id
/// field (CX) keeps its assigning authority and type code (`^^^HOSP^MR`), a phone
/// (XTN) its use and equipment codes (`^PRN^PH`); names, addresses and dates are the
/// person's in every component.
fn holds_value(class: KeyClass, index: usize) -> bool {
    match class {
        KeyClass::Mrn | KeyClass::Account | KeyClass::Insurance | KeyClass::Ssn => index == 0,
        KeyClass::Phone => matches!(index, 0 | 3 | 5 | 6 | 7 | 11),
        _ => true,
    }
}

/// Applies `f(component index, text)` to every leaf of a field (repetitions, components,
/// subcomponents), keeping the delimiters; `None` if no leaf changed.
fn map_components(
    field: &str,
    d: &Delimiters,
    mut f: impl FnMut(usize, &str) -> Option<String>,
) -> Option<String> {
    let mut out = String::with_capacity(field.len() + 8);
    let mut changed = false;
    for (r, rep) in field.split(d.repetition).enumerate() {
        if r > 0 {
            out.push(d.repetition);
        }
        for (c, comp) in rep.split(d.component).enumerate() {
            if c > 0 {
                out.push(d.component);
            }
            let subs: Vec<&str> = match d.subcomponent {
                Some(s) => comp.split(s).collect(),
                None => vec![comp],
            };
            for (s, sub) in subs.iter().enumerate() {
                if s > 0 {
                    if let Some(sc) = d.subcomponent {
                        out.push(sc);
                    }
                }
                match (!sub.is_empty()).then(|| f(c, sub)).flatten() {
                    Some(new) => {
                        out.push_str(&escape(&new, d));
                        changed = true;
                    }
                    None => out.push_str(sub),
                }
            }
        }
    }
    changed.then_some(out)
}

/// Decodes the standard escapes (`\F\ \S\ \T\ \R\ \E\`); others stay as written.
fn unescape(s: &str, d: &Delimiters) -> String {
    let Some(e) = d.escape else {
        return s.to_owned();
    };
    if !s.contains(e) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find(e) {
        out.push_str(&rest[..at]);
        let after = &rest[at + e.len_utf8()..];
        let Some(close) = after.find(e) else {
            out.push_str(&rest[at..]);
            return out;
        };
        let code = &after[..close];
        match code {
            "F" => out.push(d.field),
            "S" => out.push(d.component),
            "R" => out.push(d.repetition),
            "E" => out.push(e),
            "T" => out.extend(d.subcomponent),
            _ => {
                out.push(e);
                out.push_str(code);
                out.push(e);
            }
        }
        rest = &after[close + e.len_utf8()..];
    }
    out.push_str(rest);
    out
}

/// Escapes delimiters in a replacement (a scanned free-text value that kept some of them).
fn escape(s: &str, d: &Delimiters) -> String {
    let Some(e) = d.escape else {
        return s
            .chars()
            .map(|c| {
                if c == d.field || c == d.component || c == d.repetition {
                    ' '
                } else {
                    c
                }
            })
            .collect();
    };
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let code = if c == d.field {
            Some('F')
        } else if c == d.component {
            Some('S')
        } else if c == d.repetition {
            Some('R')
        } else if c == e {
            Some('E')
        } else if Some(c) == d.subcomponent {
            Some('T')
        } else {
            None
        };
        match code {
            Some(code) => {
                out.push(e);
                out.push(code);
                out.push(e);
            }
            None => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_messages_at_line_starts_only() {
        assert_eq!(find("MSH|^~\\&|A|B"), Some(0));
        assert_eq!(find("parse failed: MSH|^~\\&|A"), Some(14));
        assert_eq!(find("XMSH|^~\\&|A"), None);
        assert_eq!(find("MSH is a segment"), None);
        assert_eq!(find("MSH|"), None);
        assert_eq!(
            find("error in segment PID|1||123^^^H^MR||DOE^JANE"),
            Some(17)
        );
        assert_eq!(find("PID|1"), None);
        assert_eq!(find("RAPID|1||2||3"), None);
    }

    #[test]
    fn escapes_round_trip() {
        let Some(d) = delimiters("MSH|^~\\&|") else {
            panic!("delimiters");
        };
        assert_eq!(unescape("A\\S\\B\\F\\C\\E\\", &d), "A^B|C\\");
        assert_eq!(escape("A^B|C\\", &d), "A\\S\\B\\F\\C\\E\\");
        assert_eq!(unescape("odd \\X0D\\ stays", &d), "odd \\X0D\\ stays");
    }

    #[test]
    fn literals_are_read_and_written_back() {
        // A Python repr() of a message: segment breaks and the escape character escaped.
        let text = "raw = 'MSH|^~\\\\&|A|B\\rPID|1||123^^^H^MR||O\\'BRIEN^JANE\\r' (2 lines)";
        let Some(start) = text.find("MSH") else {
            panic!("no MSH");
        };
        let Some(lit) = Literal::at(text, start, |_| true) else {
            panic!("not read as a literal");
        };
        assert_eq!(
            lit.decoded,
            "MSH|^~\\&|A|B\rPID|1||123^^^H^MR||O'BRIEN^JANE\r"
        );
        assert_eq!(&text[lit.end..], "' (2 lines)");
        assert_eq!(lit.encode(&lit.decoded), &text[start..lit.end]);
        // JSON and \x escapes decode too.
        let Some(lit) = Literal::at("MSH|^~\\\\&|A\\nPID|1 \\x41\\u00e9", 0, |_| true) else {
            panic!("not read as a literal");
        };
        assert_eq!(lit.decoded, "MSH|^~\\&|A\nPID|1 A\u{e9}");
        // Raw line breaks, no escaped break, or `ok` saying no: not a literal.
        assert!(Literal::at("MSH|^~\\&|A\rPID|1 \\n", 0, |_| true).is_none());
        assert!(Literal::at("MSH|^~\\\\&|A|B", 0, |_| true).is_none());
        assert!(Literal::at("MSH|^~\\\\&|A\\rPID|1", 0, |_| false).is_none());
    }

    #[test]
    fn field_refs() {
        assert_eq!(parse_field_ref("ZPI-4"), Some(("ZPI".to_owned(), 4)));
        assert_eq!(parse_field_ref("zpi-4"), None);
        assert_eq!(parse_field_ref("ZPI-0"), None);
        assert_eq!(parse_field_ref("ZPI4"), None);
    }

    #[test]
    fn segments_are_three_capitals_and_the_separator() {
        let Some(d) = delimiters("MSH|^~\\&|") else {
            panic!("delimiters");
        };
        assert!(is_segment("PID|1||123", &d));
        assert!(is_segment("ZP1|x", &d));
        assert!(is_segment("PV1", &d));
        assert!(!is_segment("pid|1", &d));
        assert!(!is_segment("Patient|x", &d));
    }
}
