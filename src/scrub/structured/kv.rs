//! Keys inside text: `key=value`, `key: value`, `'key': 'value'`, `"key": "value"` and
//! `key => value` in free text, Python reprs (`Patient(mrn='A123', dob=datetime.date(1975,
//! 6, 8))`, `{'ssn': '…'}`), JavaScript `util.inspect` output (`Patient { mrn: 'A1' }`),
//! logfmt lines and JSON fragments. Every key is classified exactly as a JSON key is
//! ([`Engine::key_class`]: the profile's denylist, `sensitive_keys`, `safe_keys`), and a value
//! under a sensitive key is redacted with that class's action, so `mrn='A123'` in a repr and
//! `{"mrn": "A123"}` in JSON both become `[mrn]`. A plain `name` is a person's name where a
//! JSON `name` would be: in an object named for a person (`Patient(…)`, `user={…}`) or next
//! to a PHI key.
//!
//! Text is also where source code travels (frames' context lines), and code assigns
//! expressions, not data: `email = user.email`, `token = get_token()`, `f(name=name)`. So a
//! value counts only when it is data ([`Pair::value`]):
//!
//! - a quoted literal, unless it is a placeholder, a template, a type name or the key's own
//!   name (`'%s'`, `'{email}'`, `'Optional[str]'`, `email='email'`);
//! - a number of two digits or more, anything with an `@`, or an id (`A123`, `MRN-0042`:
//!   digits and no lower case, or at least as many digits as letters);
//! - a call that builds a value from literals (`datetime.date(1975, 6, 8)`,
//!   `Decimal('1.00')`: the callee is a type, every argument a literal), taken whole;
//! - a list, tuple, dict or inspected object made only of literals: every literal in it,
//!   as JSON containers under a sensitive key lose every leaf;
//! - a bare word (`user=jdoe`) only where logfmt puts one: `=` with no space on either side,
//!   outside any brackets, followed by the end of the line or the next `key=`, and not a
//!   keyword, a variable handed on under its own name or class (`email=user_email`) or a
//!   path into code (`self.x`, `request.y`).
//!
//! Pairs shaped like code are not read at all: an assignment (`x = …`, with blanks around
//! `=`), the keyword arguments of a lower-case call (`connect(address=…)`) or a line of them
//! (`    address=('0.0.0.0', 1),`). Reprs, dicts, logfmt and JSON never write pairs that way,
//! and in the Python standard library such lines are constants and defaults
//! (`SERVER_AUTH = '1.3.6.1…'`, `username = 'anonymous'`), not people.
//!
//! Keys in text are far noisier than JSON keys (`'CC': 'clang'`, `"phone": "☎"`), so a
//! value must also look like its class's data: digits for the classes of numbers and dates
//! (phone, SSN, date of birth, MRN, member id, account, card, NPI, DEA, IP), an `@` for an
//! email, a token (eight characters or more, no blanks, a digit or both cases) for a
//! secret; and it must not just name the key again (`"streetAddress"` under
//! `STREET_ADDRESS`). Values found in text are not echoed through the event: a default in a
//! source line (`name='default'`) would otherwise replace every `default` in the payload.

use std::collections::{HashMap, HashSet};

use crate::scrub::hashing::FxBuild;
use crate::scrub::keys::KeyClass;
use crate::scrub::walk::{Cx, Engine};

/// Longest key (in bytes) read as a key.
const MAX_KEY_LEN: usize = 64;
/// Longest name read before a group (`Patient(`, `datetime.date(`).
const MAX_IDENT_LEN: usize = 128;
/// Deeper nesting than this inside one value is not judged: the value is left to the
/// detectors (a repr is rarely deeper; hostile text can be much deeper).
const MAX_VALUE_DEPTH: usize = 16;

/// Scrubs every `key<sep>value` pair of `text` whose key is sensitive; `None` if nothing
/// changed. `key` is the JSON key the text sits under (it names the top level, as the
/// enclosing object's key does for a JSON `name`).
pub(crate) fn scrub_pairs(eng: &Engine, text: &str, key: &str, cx: &mut Cx) -> Option<String> {
    let b = text.as_bytes();
    memchr::memchr2(b'=', b':', b)?;
    let mut pairs = find_pairs(eng, text, cx);
    if pairs.is_empty() {
        return None;
    }
    let lexed = Lexed::new(b);
    lexed.assign_groups(&mut pairs);
    let mut person_groups = PersonGroups::default();
    let judge = Judge {
        eng,
        text,
        lexed: &lexed,
    };
    let mut spans: Vec<Span> = Vec::new();
    for i in 0..pairs.len() {
        let Some(p) = pairs.get(i) else { continue };
        let class = match p.class {
            Some(class) => class,
            None => {
                // A bare `name`: a person's name only in a person's context.
                if !person_groups.holds(&judge, &pairs, i, key, cx) {
                    continue;
                }
                KeyClass::Name
            }
        };
        if p.code_shaped(&lexed, b) {
            continue;
        }
        let mut leaves = Vec::new();
        judge.value(p, class, &mut leaves, cx);
        // A key inside a string literal (not a quoted key: the literal is the key): its
        // value ends with that literal.
        let limit = match lexed.string_around(p.key_start) {
            Some((q, end)) if !(q + 1 == p.key_start && end == p.key_end + 1) => end - 1,
            _ => b.len(),
        };
        let key_text = text.get(p.key_start..p.key_end).unwrap_or("");
        spans.extend(
            leaves
                .into_iter()
                .filter(|&(start, end)| {
                    end <= limit
                        && text.get(start..end).is_some_and(|v| {
                            let quoted = start
                                .checked_sub(1)
                                .and_then(|q| b.get(q))
                                .is_some_and(|&c| is_quote(c));
                            let passphrase = quoted && says_password(key_text);
                            shaped_like(class, v, passphrase) && !names_key(v, key_text)
                        })
                })
                .map(|(start, end)| Span { start, end, class }),
        );
    }
    if spans.is_empty() {
        return None;
    }
    // Outer values first; a pair inside a value already redacted whole is skipped.
    spans.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    let mut out = String::with_capacity(text.len());
    let mut last = 0usize;
    let mut changed = false;
    for s in spans {
        if s.start < last {
            continue;
        }
        let Some(original) = text.get(s.start..s.end) else {
            continue;
        };
        let Some(new) = eng.redact_class_in_text(s.class, original, false, cx) else {
            continue;
        };
        out.push_str(text.get(last..s.start).unwrap_or(""));
        out.push_str(&new);
        last = s.end;
        changed = true;
    }
    if !changed {
        return None;
    }
    out.push_str(text.get(last..).unwrap_or(""));
    (out != text).then_some(out)
}

/// One value (or one literal inside a value) to redact.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    class: KeyClass,
}

/// The separator between a key and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sep {
    /// `=`
    Eq,
    /// `:`
    Colon,
    /// `=>`
    Arrow,
}

/// A `key<sep>value` found in text whose key is sensitive, or a bare `name`.
#[derive(Debug, Clone)]
struct Pair {
    key_start: usize,
    key_end: usize,
    /// Where the last part of a dotted key starts (`key_start` if there is no dot).
    attr_start: usize,
    sep: Sep,
    /// Blanks between the key and the separator, and between the separator and the value.
    spaced: bool,
    value_start: usize,
    class: Option<KeyClass>,
    /// The innermost bracket group holding the key, if any ([`Lexed::groups`]).
    group: Option<usize>,
}

impl Pair {
    /// An assignment or a keyword argument in source code (`x = …`, `f(x=…)`, a line
    /// `    x=…,` of a call split over lines), as opposed to a repr, a dict, a logfmt line or
    /// a JSON fragment.
    fn code_shaped(&self, lexed: &Lexed, b: &[u8]) -> bool {
        if self.sep == Sep::Eq && self.spaced {
            return true;
        }
        if self.sep == Sep::Eq
            && self.group.is_none()
            && (kwarg_line(b, self) || lexed.stray_close.is_some_and(|c| c > self.key_start))
        {
            return true;
        }
        match self.group.and_then(|g| lexed.groups.get(g)) {
            Some(g) if g.open_byte == b'(' => {
                let callee = ident_before(b, g.open);
                callee.is_some_and(|(s, e)| {
                    let last = last_segment(&b[s..e]);
                    last.first().is_some_and(u8::is_ascii_lowercase) && !is_value_type(&b[s..e])
                })
            }
            _ => false,
        }
    }
}

/// A line holding one keyword argument of a call split over lines: nothing before the key
/// on its line, and a `,` or `(` after the value ends it.
fn kwarg_line(b: &[u8], p: &Pair) -> bool {
    // Only blanks back to the start of the line (the scan stops at the first other byte).
    let mut i = p.key_start;
    while i > 0 && b.get(i - 1).copied().is_some_and(is_blank) {
        i -= 1;
    }
    if i > 0 && b.get(i - 1) != Some(&b'\n') {
        return false;
    }
    let line_end = memchr::memchr(b'\n', b.get(p.value_start..).unwrap_or(&[]))
        .map_or(b.len(), |n| p.value_start + n);
    let mut e = line_end;
    while e > p.value_start && b.get(e - 1).is_some_and(|&c| is_blank(c) || c == b'\r') {
        e -= 1;
    }
    e > p.value_start && matches!(b.get(e - 1), Some(b',' | b'('))
}

/// A key that names a password itself (`userPassword`, `passphrase`), not a cookie, a
/// signature or a session, whose quoted values in code are mostly names (`'session'`).
fn says_password(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    ["password", "passwd", "passphrase", "passcode", "pwd"]
        .iter()
        .any(|w| lower.contains(w))
        // `pass` as the key's last word (`pass`, `db_pass`, `dbPass`), not `bypass`.
        || lower == "pass"
        || [ "_pass", "-pass", ".pass"].iter().any(|e| lower.ends_with(e))
        || key.ends_with("Pass")
}

/// Whether `value` looks like data of `class` at all: digits for the classes of numbers
/// and dates, an `@` for an email, a token for a secret (see the module docs). A quoted
/// value under a password's key ([`says_password`]) is the password whatever its letters
/// (`userPassword: 'sunshine-freedom-purple-coffee'`), unless it has blanks (`password: 'is
/// too short'` is a validation message) or is a dotted path or a constant's name
/// (`password_field: 'hashed_password'`, `PASSWORD_MODE: 'STRICT'`).
fn shaped_like(class: KeyClass, value: &str, passphrase: bool) -> bool {
    let v = value.trim();
    let digit = v.bytes().any(|c| c.is_ascii_digit());
    match class {
        KeyClass::Phone
        | KeyClass::Ssn
        | KeyClass::Dob
        | KeyClass::Mrn
        | KeyClass::Insurance
        | KeyClass::Account
        | KeyClass::Card
        | KeyClass::Npi
        | KeyClass::Dea
        | KeyClass::Ip
        | KeyClass::Mac => digit,
        KeyClass::Email => v.contains('@') || v.contains("%40"),
        KeyClass::Secret => {
            let cased = v.bytes().any(|c| c.is_ascii_uppercase())
                && v.bytes().any(|c| c.is_ascii_lowercase());
            let blank = v.contains(char::is_whitespace);
            let code_name = v.bytes().all(|c| is_ident_byte(c) || c == b'.')
                && (v.contains(['.', '_']) || !v.bytes().any(|c| c.is_ascii_lowercase()));
            (passphrase && v.len() >= 6 && !blank && !code_name)
                || (v.len() >= 8 && !blank && (digit || cased))
        }
        KeyClass::Name | KeyClass::Address | KeyClass::Clinical | KeyClass::Custom => !v.is_empty(),
    }
}

/// A value that only names its key again, as field mappings write them
/// (`NameOID.STREET_ADDRESS: "streetAddress"`, `email: 'email'`): compared on letters and
/// digits, ignoring case.
fn names_key(value: &str, key: &str) -> bool {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    let v = norm(value);
    !v.is_empty() && (v == norm(key) || v == norm(last_str_segment(key)))
}

fn last_str_segment(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

// === finding pairs ===

/// Bytes a bare key is made of.
fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b'$'
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$'
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_quote(b: u8) -> bool {
    matches!(b, b'\'' | b'"' | b'`')
}

/// Bytes after which a key, a string or a URL may start: a key glued to a word before it
/// (`x.email=`, `a-b=`) is part of that word.
pub(crate) fn is_boundary(b: u8) -> bool {
    b.is_ascii_whitespace()
        || matches!(
            b,
            b'(' | b'['
                | b'{'
                | b','
                | b';'
                | b'&'
                | b'?'
                | b'|'
                | b'<'
                | b'$'
                | b'\''
                | b'"'
                | b'`'
        )
}

fn boundary_before(b: &[u8], at: usize) -> bool {
    at == 0 || b.get(at - 1).copied().is_some_and(is_boundary)
}

/// The pairs of `text` whose key is sensitive or a bare `name`, in order.
fn find_pairs(eng: &Engine, text: &str, cx: &mut Cx) -> Vec<Pair> {
    let b = text.as_bytes();
    let mut pairs = Vec::new();
    for i in memchr::memchr2_iter(b'=', b':', b) {
        let Some((sep, sep_end)) = separator_at(b, i) else {
            continue;
        };
        let Some((key_start, key_end, blank_before)) = key_before_sep(b, i, sep) else {
            continue;
        };
        let mut value_start = sep_end;
        while b.get(value_start).copied().is_some_and(is_blank) {
            value_start += 1;
        }
        let blank_after = value_start > sep_end;
        if value_start >= b.len() || matches!(b.get(value_start), Some(b'\n' | b'\r')) {
            continue;
        }
        // `k=v` and `k = v` are pairs; `k= v` and `k =v` are neither (a value cut off, an
        // argument list `x =1`), which also keeps `k= next=1` from reading `next=1` as the
        // value once `k`'s value was removed.
        if sep == Sep::Eq && blank_before != blank_after {
            continue;
        }
        // `key: value` in prose is a record only at its start (of the text, a line, an
        // item): `not an iban: DE89…` says something about the value, it does not file it.
        if sep == Sep::Colon
            && !b.get(value_start).copied().is_some_and(opens_literal)
            && !starts_record(b, key_start)
        {
            continue;
        }
        let Some(key) = text.get(key_start..key_end) else {
            continue;
        };
        // A dotted key is a path: its last part is the key, the rest the object it
        // belongs to (`patient.name`, `NameOID.STREET_ADDRESS`, `user.email`).
        // When the last part says nothing, the path as a whole may (`mrn.id`,
        // `medical.record.number`).
        let attr = last_str_segment(key);
        let class = eng.key_class(attr, cx).or_else(|| {
            // Only a lower-case path: `NameOID.STREET_ADDRESS` and
            // `SignatureAlgorithmOID.RSA_WITH_SHA256` are constants in code.
            let path = attr.len() < key.len() && !key.bytes().any(|b| b.is_ascii_uppercase());
            path.then(|| eng.key_class(key, cx)).flatten()
        });
        if class.is_none() && !eng.is_bare_name_key(attr, cx) {
            continue;
        }
        pairs.push(Pair {
            key_start,
            key_end,
            attr_start: key_end - attr.len(),
            sep,
            spaced: blank_before || blank_after,
            value_start,
            class,
            group: None,
        });
    }
    pairs
}

/// A value that is a literal or a container by its first byte (a quote or a bracket).
fn opens_literal(c: u8) -> bool {
    is_quote(c) || matches!(c, b'[' | b'{' | b'(')
}

/// Whether a key at `at` (a quoted key: its opening quote) starts a record: it is the
/// first thing in the text, on its line or in its list, after blanks.
fn starts_record(b: &[u8], at: usize) -> bool {
    let mut i = at;
    if i > 0 && b.get(i - 1).copied().is_some_and(is_quote) {
        i -= 1;
    }
    while i > 0 && b.get(i - 1).copied().is_some_and(is_blank) {
        i -= 1;
    }
    i == 0
        || b.get(i - 1)
            .is_some_and(|c| matches!(c, b'\n' | b'\r' | b',' | b';' | b'{' | b'(' | b'[' | b'|'))
}

/// The separator at `i` (a `=` or `:`) and where it ends, unless it is part of an operator
/// (`==`, `!=`, `+=`, `::`, `:=`) or of a URL (`http://`), or a colon glued to a bare word
/// (`sha256:ab12`, `10:30`, `C:\`).
fn separator_at(b: &[u8], i: usize) -> Option<(Sep, usize)> {
    let prev = i.checked_sub(1).and_then(|p| b.get(p)).copied();
    let next = b.get(i + 1).copied();
    match b.get(i)? {
        b'=' => {
            if next == Some(b'=') || prev.is_some_and(|p| b"=!<>+-*/%&|^~:".contains(&p)) {
                return None;
            }
            if next == Some(b'>') {
                return Some((Sep::Arrow, i + 2));
            }
            Some((Sep::Eq, i + 1))
        }
        b':' => {
            if prev == Some(b':') || matches!(next, Some(b':' | b'=')) {
                return None;
            }
            match next {
                Some(n) if is_blank(n) => Some((Sep::Colon, i + 1)),
                Some(n) if is_quote(n) || matches!(n, b'[' | b'{') => {
                    // Glued (`"ssn":"…"`, `{a:'x'}`): only after a quoted key or inside a
                    // bracket, as minified JSON and inspect output write it.
                    (prev.is_some_and(is_quote) || prev.is_some_and(is_ident_byte))
                        .then_some((Sep::Colon, i + 1))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// The key ending before the separator at `sep_at`: `(start, end, blanks before the
/// separator)`. Quoted keys (`'ssn'`, `"ssn"`) are returned without their quotes.
fn key_before_sep(b: &[u8], sep_at: usize, sep: Sep) -> Option<(usize, usize, bool)> {
    let mut end = sep_at;
    if sep != Sep::Colon {
        while end > 0 && b.get(end - 1).copied().is_some_and(is_blank) {
            end -= 1;
        }
    }
    let blank = end < sep_at;
    if sep == Sep::Arrow {
        // A Ruby symbol key: `:ssn => '…'`.
        if let Some(start) = symbol_key_start(b, end) {
            return Some((start, end, blank));
        }
    }
    let (start, end) = key_ending_at(b, end)?;
    Some((start, end, blank))
}

/// The start of the bare name of a symbol `:name` ending at `end`.
fn symbol_key_start(b: &[u8], end: usize) -> Option<usize> {
    let mut start = end;
    while start > 0 && b.get(start - 1).copied().is_some_and(is_ident_byte) {
        start -= 1;
    }
    let colon = start.checked_sub(1)?;
    (start < end
        && b.get(start).is_some_and(u8::is_ascii_alphabetic)
        && b.get(colon) == Some(&b':')
        && boundary_before(b, colon))
    .then_some(start)
}

/// The key (bare or quoted) whose last byte is at `end - 1`.
fn key_ending_at(b: &[u8], end: usize) -> Option<(usize, usize)> {
    let last = *b.get(end.checked_sub(1)?)?;
    if is_quote(last) {
        let inner_end = end - 1;
        let from = inner_end.saturating_sub(MAX_KEY_LEN + 1);
        let open = b.get(from..inner_end)?.iter().rposition(|&c| c == last)? + from;
        let inner = b.get(open + 1..inner_end)?;
        let printable = inner
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b' '));
        if inner.is_empty() || !printable || !boundary_before(b, open) {
            return None;
        }
        return Some((open + 1, inner_end));
    }
    let mut start = end;
    while start > 0
        && end - start <= MAX_KEY_LEN
        && b.get(start - 1).copied().is_some_and(is_key_byte)
    {
        start -= 1;
    }
    if end - start > MAX_KEY_LEN {
        return None;
    }
    while start < end && matches!(b.get(start), Some(b'.' | b'-')) {
        start += 1;
    }
    let first = *b.get(start)?;
    let trailing = b.get(end - 1).is_some_and(|&c| c == b'.' || c == b'-');
    if start >= end || !(first.is_ascii_alphabetic() || first == b'_') || trailing {
        return None;
    }
    if !boundary_before(b, start) {
        return None;
    }
    Some((start, end))
}

/// The bare identifier path (`datetime.date`, `Patient`) ending right at `end`.
fn ident_before(b: &[u8], end: usize) -> Option<(usize, usize)> {
    let mut start = end;
    while start > 0
        && end - start < MAX_IDENT_LEN
        && b.get(start - 1)
            .copied()
            .is_some_and(|c| is_ident_byte(c) || c == b'.')
    {
        start -= 1;
    }
    while start < end && b.get(start) == Some(&b'.') {
        start += 1;
    }
    (start < end && b.get(start).copied().is_some_and(is_ident_start)).then_some((start, end))
}

/// The last dotted segment of an identifier path.
fn last_segment(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&c| c == b'.') {
        Some(dot) => path.get(dot + 1..).unwrap_or(&[]),
        None => path,
    }
}

// === brackets and strings ===

/// Where a string literal may start: a quote (after an optional `b`/`r`/`u`/`f` prefix) at
/// a boundary or after a separator (`k='v'`, `k:"v"`, `k=>'v'`). An apostrophe inside a word (`don't`, `Patient's`) starts nothing.
/// Returns the position of the quote.
fn string_start(b: &[u8], at: usize) -> Option<usize> {
    let c = *b.get(at)?;
    let opens = |at: usize| {
        at == 0
            || b.get(at - 1)
                .copied()
                .is_some_and(|p| is_boundary(p) || matches!(p, b'=' | b':' | b'>'))
    };
    if is_quote(c) {
        return opens(at).then_some(at);
    }
    let mut q = at;
    while q < at + 2 && b.get(q).is_some_and(|c| b"bBrRuUfF".contains(c)) {
        q += 1;
    }
    (q > at && b.get(q).copied().is_some_and(is_quote) && opens(at)).then_some(q)
}

/// The string literal whose quote is at `open`: `(inner_end, end)`. Backslash escapes; a
/// literal left open (a repr cut short by the SDK) runs to the end of its line.
fn string_end(b: &[u8], open: usize) -> (usize, usize) {
    let q = b.get(open).copied().unwrap_or(b'"');
    let mut i = open + 1;
    while i < b.len() {
        match b.get(i).copied() {
            Some(b'\\') => i += 2,
            Some(c) if c == q => return (i, i + 1),
            Some(b'\n') if q != b'`' => return (i, i),
            _ => i += 1,
        }
    }
    (b.len(), b.len())
}

/// A bracket group: `(…)`, `[…]` or `{…}`.
#[derive(Debug, Clone, Copy)]
struct Group {
    open: usize,
    /// The position of the closing bracket, or the text's length if it never closes.
    close: usize,
    open_byte: u8,
}

/// The bracket groups of a text, found in one pass that skips string literals, in order of
/// their opening bracket.
#[derive(Debug)]
struct Lexed {
    groups: Vec<Group>,
    /// String literals: `(opening quote, end after the closing quote)`, in order.
    strings: Vec<(usize, usize)>,
    /// The last `)` that closes nothing: before it, the text is the middle of a call opened
    /// before the text (a line of a call split over lines).
    stray_close: Option<usize>,
}

impl Lexed {
    fn new(b: &[u8]) -> Self {
        let mut groups: Vec<Group> = Vec::new();
        let mut strings = Vec::new();
        let mut stray_close = None;
        let mut stack: Vec<usize> = Vec::new();
        let mut i = 0usize;
        while i < b.len() {
            if let Some(q) = string_start(b, i) {
                let end = string_end(b, q).1.max(i + 1);
                strings.push((q, end));
                i = end;
                continue;
            }
            let c = b.get(i).copied().unwrap_or(0);
            match c {
                b'(' | b'[' | b'{' => {
                    stack.push(groups.len());
                    groups.push(Group {
                        open: i,
                        close: b.len(),
                        open_byte: c,
                    });
                }
                b')' | b']' | b'}' => {
                    let opener = match c {
                        b')' => b'(',
                        b']' => b'[',
                        _ => b'{',
                    };
                    let found = stack
                        .iter()
                        .rposition(|&g| groups.get(g).is_some_and(|g| g.open_byte == opener));
                    if let Some(depth) = found {
                        for g in stack.drain(depth..) {
                            if let Some(g) = groups.get_mut(g) {
                                g.close = i;
                            }
                        }
                    } else if c == b')' {
                        stray_close = Some(i);
                    }
                }
                _ => {}
            }
            i += 1;
        }
        Self {
            groups,
            strings,
            stray_close,
        }
    }

    /// The string literal holding position `at` (not at its opening quote).
    fn string_around(&self, at: usize) -> Option<(usize, usize)> {
        let upto = self.strings.partition_point(|&(q, _)| q < at);
        let &(q, end) = self.strings.get(upto.checked_sub(1)?)?;
        (at < end).then_some((q, end))
    }

    /// Sets each pair's group: the innermost group holding its key. One sweep over groups
    /// and pairs, both in order (groups nest: closing one closes those inside it).
    fn assign_groups(&self, pairs: &mut [Pair]) {
        let mut stack: Vec<usize> = Vec::new();
        let mut next = 0usize;
        for p in pairs.iter_mut() {
            let at = p.key_start;
            while let Some(g) = self.groups.get(next).filter(|g| g.open < at) {
                while stack
                    .last()
                    .and_then(|&s| self.groups.get(s))
                    .is_some_and(|s| s.close < g.open)
                {
                    stack.pop();
                }
                stack.push(next);
                next += 1;
            }
            while stack
                .last()
                .and_then(|&s| self.groups.get(s))
                .is_some_and(|s| s.close < at)
            {
                stack.pop();
            }
            p.group = stack.last().copied();
        }
    }

    /// The group opening at `at`.
    fn opening_at(&self, at: usize) -> Option<Group> {
        let i = self.groups.partition_point(|g| g.open < at);
        self.groups.get(i).filter(|g| g.open == at).copied()
    }
}

/// What names a group: the callee of `Name(…)`, the class of an inspected `Name { … }`, or
/// the key whose value it is (`patient={…}`, `'patient': {…}`).
fn group_name(b: &[u8], g: &Group) -> Option<(usize, usize)> {
    if g.open_byte != b'[' {
        if let Some(name) = ident_before(b, g.open) {
            return Some(name);
        }
    }
    if g.open_byte == b'{' && g.open > 0 && b.get(g.open - 1) == Some(&b' ') {
        if let Some(name) = ident_before(b, g.open - 1) {
            return Some(name);
        }
    }
    // The key before a separator before the group.
    let mut at = g.open;
    while at > 0 && b.get(at - 1).copied().is_some_and(is_blank) {
        at -= 1;
    }
    let sep_at = match (
        at.checked_sub(2).and_then(|i| b.get(i)),
        b.get(at.checked_sub(1)?),
    ) {
        (Some(b'='), Some(b'>')) => at - 2,
        (_, Some(b'=' | b':')) => at - 1,
        _ => return None,
    };
    let mut end = sep_at;
    while end > 0 && b.get(end - 1).copied().is_some_and(is_blank) {
        end -= 1;
    }
    key_ending_at(b, end)
}

/// Which groups make a bare `name` a person's name, worked out once per group: a text
/// with many `name` pairs asks for the same few groups again and again.
#[derive(Debug, Default)]
struct PersonGroups {
    /// Whether each group asked about is a person's (`None`: the top level). Unkeyed:
    /// the keys are positions in the text.
    known: HashMap<Option<usize>, bool, FxBuild>,
    /// The groups holding a PHI key, found on first use.
    phi: Option<HashSet<Option<usize>, FxBuild>>,
}

impl PersonGroups {
    /// Whether the bare `name` of pair `i` is a person's name: the object its dotted key
    /// belongs to, its group (or, at the top, the JSON key) names a person, or a sibling in
    /// the same group is PHI, as for a JSON object.
    fn holds(
        &mut self,
        judge: &Judge<'_>,
        pairs: &[Pair],
        i: usize,
        json_key: &str,
        cx: &mut Cx,
    ) -> bool {
        let (eng, text, lexed) = (judge.eng, judge.text, judge.lexed);
        let Some(p) = pairs.get(i) else {
            return false;
        };
        let owner = p
            .attr_start
            .checked_sub(1)
            .filter(|&dot| dot > p.key_start)
            .and_then(|dot| text.get(p.key_start..dot));
        if owner.is_some_and(|o| eng.names_a_person(o, cx)) {
            return true;
        }
        if let Some(&known) = self.known.get(&p.group) {
            return known;
        }
        let named = match p.group.and_then(|g| lexed.groups.get(g)) {
            None => eng.key_names_a_person(json_key, cx),
            Some(g) => group_name(text.as_bytes(), g)
                .and_then(|(s, e)| text.get(s..e))
                .is_some_and(|name| eng.names_a_person(name, cx)),
        };
        let phi = self.phi.get_or_insert_with(|| {
            pairs
                .iter()
                .filter(|q| q.class.is_some_and(Engine::is_phi_sibling))
                .map(|q| q.group)
                .collect()
        });
        let person = named || phi.contains(&p.group);
        self.known.insert(p.group, person);
        person
    }
}

// === judging values ===

/// Keyword literals: nothing to redact, and no sign of code either.
fn is_keyword_literal(s: &[u8]) -> bool {
    matches!(
        s,
        b"None"
            | b"True"
            | b"False"
            | b"null"
            | b"true"
            | b"false"
            | b"undefined"
            | b"nil"
            | b"NaN"
            | b"Infinity"
            | b"-Infinity"
            | b"..."
            | b"\xe2\x80\xa6"
    )
}

/// A number, a date or a phone number: digits and `.-/:+` only, at least two digits.
fn is_numeric(s: &[u8]) -> bool {
    let starts = match s {
        [b'+' | b'-', d, ..] => d.is_ascii_digit(),
        [d, ..] => d.is_ascii_digit(),
        [] => false,
    };
    starts
        && s.iter().filter(|c| c.is_ascii_digit()).count() >= 2
        && s.iter()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'-' | b'/' | b':' | b'+'))
}

/// A number literal as code and reprs write it (`42`, `-1.5`, `0x1F`, `1e5`, `10L`, `100ms`):
/// a few letters at most after the digits, so a token that starts with a digit
/// (`4dUXKTqbh63MoHGR-mG0…`) is not taken for one.
fn is_number_literal(s: &[u8]) -> bool {
    let digits = match s {
        [b'+' | b'-', rest @ ..] => rest,
        _ => s,
    };
    if let Some(hex) = digits
        .strip_prefix(b"0x")
        .or_else(|| digits.strip_prefix(b"0X"))
    {
        return !hex.is_empty() && hex.iter().all(|c| c.is_ascii_hexdigit() || *c == b'_');
    }
    digits.first().is_some_and(u8::is_ascii_digit)
        && digits.iter().filter(|c| c.is_ascii_alphabetic()).count() <= 3
        && digits
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'+' | b':'))
}

/// An id: letters and digits (and `-_./`), with no lower case (`A123`, `MRN-0042`) or at
/// least as many digits as letters (`ab12345`).
fn is_id(s: &[u8]) -> bool {
    let digits = s.iter().filter(|c| c.is_ascii_digit()).count();
    let letters = s.iter().filter(|c| c.is_ascii_alphabetic()).count();
    let lower = s.iter().any(u8::is_ascii_lowercase);
    digits > 0
        && letters > 0
        && s.first().is_some_and(u8::is_ascii_alphanumeric)
        && s.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'/'))
        && (!lower || digits >= letters)
}

/// Types in annotations and signatures (`email: str`, `email: 'Optional[str]'`).
fn is_type_name(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    matches!(
        lower.as_str(),
        "str"
            | "string"
            | "bytes"
            | "int"
            | "integer"
            | "bool"
            | "boolean"
            | "any"
            | "number"
            | "object"
            | "float"
            | "date"
            | "datetime"
            | "text"
            | "varchar"
            | "uuid"
            | "email"
    ) || ["optional[", "union[", "list[", "dict[", "str |", "typing."]
        .iter()
        .any(|p| lower.starts_with(p))
}

/// A quoted value that stands for a value rather than being one: a placeholder, a
/// template, a mask, a type, a null.
fn is_placeholder(s: &str) -> bool {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let template = t.find('{').is_some_and(|open| {
        t.get(open + 1..)
            .and_then(|rest| rest.bytes().next())
            .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
            && t.get(open..).is_some_and(|rest| rest.contains('}'))
    });
    let pattern = [
        "\\d", "\\w", "\\s", "\\b", "]+", "]*", "]{", ".*", ".+", "(?",
    ]
    .iter()
    .any(|p| t.contains(p));
    t.is_empty()
        || template
        || pattern
        || !t.chars().any(char::is_alphanumeric)
        || matches!(
            lower.as_str(),
            "%s" | "%d" | "?" | "null" | "none" | "nil" | "undefined"
        )
        || t.starts_with(['{', '$', ':', '%', '<'])
        || crate::scrub::detectors::masked_or_splat(t)
        || t.contains("${")
        || t.contains("%(")
        || (t.bytes().any(|c| matches!(c, b'x' | b'X' | b'*' | b'#'))
            && t.bytes()
                .all(|c| matches!(c, b'x' | b'X' | b'*' | b'#' | b'-' | b'.' | b'/' | b' ')))
        || is_type_name(t)
}

/// A callee that builds a value rather than computing one: a class (`Decimal`, `UUID`,
/// `Patient`) or a `datetime` constructor. (`os.environ.get('X')` has literal arguments
/// too, and is code.)
fn is_value_type(callee: &[u8]) -> bool {
    let last = last_segment(callee);
    if last.first().is_some_and(u8::is_ascii_uppercase) {
        return true;
    }
    let first = callee.split(|&c| c == b'.').next().unwrap_or(&[]);
    let single = !callee.contains(&b'.');
    matches!(
        last,
        b"date" | b"datetime" | b"time" | b"timedelta" | b"timezone"
    ) && (single || first == b"datetime")
}

/// Words of Python and JavaScript that start an expression: a value that is one is code.
fn is_code_keyword(w: &str) -> bool {
    matches!(
        w,
        "lambda"
            | "function"
            | "new"
            | "await"
            | "async"
            | "not"
            | "yield"
            | "return"
            | "if"
            | "else"
            | "for"
            | "in"
            | "is"
            | "and"
            | "or"
            | "def"
            | "class"
            | "import"
            | "from"
            | "typeof"
            | "void"
            | "delete"
            | "this"
            | "self"
            | "super"
    )
}

/// Paths into code: a value starting here is a variable, never data.
const CODE_ROOTS: &[&[u8]] = &[
    b"self",
    b"cls",
    b"this",
    b"os",
    b"sys",
    b"process",
    b"settings",
    b"config",
    b"conf",
    b"env",
    b"app",
    b"request",
    b"req",
    b"ctx",
    b"context",
    b"options",
    b"opts",
    b"args",
    b"kwargs",
    b"params",
    b"props",
    b"state",
    b"window",
    b"document",
    b"data",
    b"form",
];

/// Judges values; reads the text through the lexed groups.
struct Judge<'a> {
    eng: &'a Engine,
    text: &'a str,
    lexed: &'a Lexed,
}

impl Judge<'_> {
    fn bytes(&self) -> &[u8] {
        self.text.as_bytes()
    }

    /// The spans to redact in `p`'s value.
    fn value(&self, p: &Pair, class: KeyClass, leaves: &mut Vec<(usize, usize)>, cx: &mut Cx) {
        let b = self.bytes();
        let v = p.value_start;
        // A label written by an earlier pass (`[ssn]`) is never read again.
        if b.get(v) == Some(&b'[') {
            if let Some(g) = self.lexed.opening_at(v) {
                if self
                    .text
                    .get(v..(g.close + 1).min(b.len()))
                    .is_some_and(|l| self.eng.is_label(l))
                {
                    return;
                }
            }
        }
        if let Some(q) = string_start(b, v) {
            let (inner_end, _) = string_end(b, q);
            let Some(inner) = self.text.get(q + 1..inner_end) else {
                return;
            };
            if self.quoted_is_data(inner, p) {
                leaves.push((q + 1, inner_end));
            }
            return;
        }
        if let Some(g) = self.lexed.opening_at(v) {
            let mut found = Vec::new();
            if self.group_literals(&g, 0, &mut found) {
                leaves.extend(found);
            }
            return;
        }
        if b.get(v).copied().is_some_and(is_ident_start) {
            let mut e = v;
            while b
                .get(e)
                .copied()
                .is_some_and(|c| is_ident_byte(c) || c == b'.')
            {
                e += 1;
            }
            match b.get(e) {
                Some(b'(') => {
                    if let Some(g) = self.lexed.opening_at(e) {
                        if self.data_call(v, e, &g, 0) {
                            leaves.push((v, (g.close + 1).min(b.len())));
                        }
                    }
                    return;
                }
                Some(b'[') => return,
                Some(b' ') if b.get(e + 1) == Some(&b'{') => {
                    // util.inspect: `Patient { mrn: 'A1' }`.
                    if let Some(g) = self.lexed.opening_at(e + 1) {
                        let mut found = Vec::new();
                        if self.group_literals(&g, 0, &mut found) {
                            leaves.extend(found);
                        }
                    }
                    return;
                }
                _ => {}
            }
        }
        let mut end = bare_end(b, v);
        // `pass=Dragon206& user=x`: in a logfmt line a `&` ends no value (in a query it
        // would, and the next `key=` would follow it).
        if class == KeyClass::Secret && b.get(end) == Some(&b'&') {
            let word_end = b
                .get(end..)
                .and_then(|rest| rest.iter().position(u8::is_ascii_whitespace))
                .map_or(b.len(), |n| end + n);
            if !b.get(end..word_end).unwrap_or(&[]).contains(&b'=') {
                end = word_end;
            }
        }
        if let Some(token) = self.text.get(v..end) {
            if self.bare_is_data(token, p, class, cx) {
                leaves.push((v, v + token.len()));
            }
        }
    }

    fn quoted_is_data(&self, inner: &str, p: &Pair) -> bool {
        let key = self.text.get(p.key_start..p.key_end).unwrap_or("");
        !is_placeholder(inner)
            && !self.eng.is_label(inner.trim())
            && !inner.trim().eq_ignore_ascii_case(key)
    }

    /// An unquoted token (already without trailing sentence punctuation).
    fn bare_is_data(&self, token: &str, p: &Pair, class: KeyClass, cx: &mut Cx) -> bool {
        let t = token.as_bytes();
        let Some(&first) = t.first() else {
            return false;
        };
        if is_keyword_literal(t)
            || self.eng.is_label(token)
            || b"$*&!%:{?=<>~^|\\#'\"`".contains(&first)
            || (first == b'-' && t.get(1).is_some_and(u8::is_ascii_alphabetic))
        {
            return false;
        }
        if is_numeric(t) || t.contains(&b'@') || is_id(t) {
            return true;
        }
        if is_number_literal(t) {
            // `count=5`: a number below ten identifies nobody.
            return false;
        }
        // A bare word: data only where logfmt writes one.
        let logfmt = p.sep == Sep::Eq && !p.spaced && p.group.is_none();
        if !logfmt
            || t.contains(&b'(')
            || t.contains(&b'[')
            || is_code_keyword(token)
            || !self.pair_or_end_after(p.value_start + token.len())
        {
            return false;
        }
        let key = self.text.get(p.key_start..p.key_end).unwrap_or("");
        let is_path = t.iter().all(|&c| is_ident_byte(c) || c == b'.');
        if is_path {
            let root = t.split(|&c| c == b'.').next().unwrap_or(&[]);
            let last = std::str::from_utf8(last_segment(t)).unwrap_or("");
            if token.eq_ignore_ascii_case(key)
                || last.eq_ignore_ascii_case(key)
                || (t.contains(&b'.') && CODE_ROOTS.contains(&root))
                || self.eng.key_class(last, cx) == Some(class)
            {
                return false;
            }
        }
        true
    }

    /// Whether what follows a logfmt value at `at` is the end of the line or the next
    /// `key=`: `token=lambda item: …` is code.
    fn pair_or_end_after(&self, at: usize) -> bool {
        let b = self.bytes();
        let mut i = at;
        while b.get(i).copied().is_some_and(is_blank) {
            i += 1;
        }
        match b.get(i) {
            None | Some(b'\n' | b'\r') => true,
            Some(_) if i == at => false,
            Some(_) => {
                let mut k = i;
                while b.get(k).copied().is_some_and(is_key_byte) {
                    k += 1;
                }
                k > i && b.get(k) == Some(&b'=')
            }
        }
    }

    /// Whether every element of group `g` is a literal; the literals' spans go to `out`.
    fn group_literals(&self, g: &Group, depth: usize, out: &mut Vec<(usize, usize)>) -> bool {
        if depth > MAX_VALUE_DEPTH || g.close >= self.bytes().len() {
            return false;
        }
        elements(self.bytes(), self.lexed, g)
            .into_iter()
            .all(|(s, e)| self.element_literals(s, e, depth, out))
    }

    /// Whether `start..end` (one element of a container) is a literal, a container of
    /// literals, a value-building call or a `key: literal` member; its literals go to `out`.
    fn element_literals(
        &self,
        start: usize,
        end: usize,
        depth: usize,
        out: &mut Vec<(usize, usize)>,
    ) -> bool {
        let b = self.bytes();
        let (mut s, mut e) = (start, end);
        while s < e && b.get(s).is_some_and(u8::is_ascii_whitespace) {
            s += 1;
        }
        while e > s && b.get(e - 1).is_some_and(u8::is_ascii_whitespace) {
            e -= 1;
        }
        let Some(el) = b.get(s..e) else {
            return false;
        };
        if el.is_empty() || is_keyword_literal(el) {
            return true;
        }
        if let Some(elt) = self.text.get(s..e) {
            if self.eng.is_label(elt) {
                return true;
            }
        }
        // A member: `key: value`, `'key': value`, `key=value`, `key => value`.
        if let Some(v) = member_value_start(b, s, e) {
            return self.element_literals(v, e, depth, out);
        }
        if let Some(q) = string_start(b, s) {
            let (inner_end, end_q) = string_end(b, q);
            if end_q != e {
                return false;
            }
            let inner = self.text.get(q + 1..inner_end).unwrap_or("");
            if !is_placeholder(inner) && !self.eng.is_label(inner.trim()) {
                out.push((q + 1, inner_end));
            }
            return true;
        }
        if is_number_literal(el) {
            // A number below ten (a port 0, a flag 1) identifies nobody.
            if is_numeric(el) || el.iter().any(u8::is_ascii_alphabetic) {
                out.push((s, e));
            }
            return true;
        }
        // Opaque reprs: `<object at 0x…>`, inspect's `[Object]` / `[Function: f]`.
        if el.first() == Some(&b'<') && el.last() == Some(&b'>') {
            return true;
        }
        if let Some(g) = self.lexed.opening_at(s) {
            if g.close + 1 != e {
                return false;
            }
            if el.first() == Some(&b'[') && el.get(1).is_some_and(u8::is_ascii_uppercase) {
                let inner = &el[1..el.len() - 1];
                if inner
                    .iter()
                    .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b' ' | b':' | b'*' | b'_'))
                {
                    return true;
                }
            }
            return self.group_literals(&g, depth + 1, out);
        }
        if b.get(s).copied().is_some_and(is_ident_start) {
            let mut n = s;
            while b
                .get(n)
                .copied()
                .is_some_and(|c| is_ident_byte(c) || c == b'.')
            {
                n += 1;
            }
            if let Some(g) = self.lexed.opening_at(n) {
                if g.close + 1 == e && b.get(n) == Some(&b'(') {
                    if self.data_call(s, n, &g, depth + 1) {
                        out.push((s, e));
                        return true;
                    }
                    return false;
                }
            }
            if b.get(n) == Some(&b' ') {
                if let Some(g) = self.lexed.opening_at(n + 1) {
                    if g.close + 1 == e && g.open_byte == b'{' {
                        return self.group_literals(&g, depth + 1, out);
                    }
                }
            }
        }
        false
    }

    /// `callee(args)` builds a value: the callee is a type and every argument a literal.
    fn data_call(&self, callee_start: usize, callee_end: usize, g: &Group, depth: usize) -> bool {
        let callee = self.bytes().get(callee_start..callee_end).unwrap_or(&[]);
        if !is_value_type(callee) || g.close == g.open + 1 {
            return false;
        }
        let mut scratch = Vec::new();
        self.group_literals(g, depth, &mut scratch)
    }
}

/// The elements of group `g`, split at its own commas (not those inside strings or inner
/// groups), without surrounding blanks.
fn elements(b: &[u8], lexed: &Lexed, g: &Group) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = g.open + 1;
    let mut i = start;
    let trimmed = |s: usize, e: usize| {
        let (mut s, mut e) = (s, e);
        while s < e && b.get(s).is_some_and(u8::is_ascii_whitespace) {
            s += 1;
        }
        while e > s && b.get(e - 1).is_some_and(u8::is_ascii_whitespace) {
            e -= 1;
        }
        (s, e)
    };
    while i <= g.close {
        if i == g.close || b.get(i) == Some(&b',') {
            out.push(trimmed(start, i));
            start = i + 1;
            i += 1;
            continue;
        }
        if let Some(q) = string_start(b, i) {
            i = string_end(b, q).1.max(i + 1);
            continue;
        }
        if let Some(inner) = lexed.opening_at(i) {
            i = inner.close + 1;
            continue;
        }
        i += 1;
    }
    out
}

/// A list or tuple repr held in a string (`"('Jane Doe', '536-22-8471')"`, the parameters
/// of a SQL statement): the items at the given positions are redacted with their class, a
/// quoted item inside its quotes; `None` if nothing changed.
pub(crate) fn redact_repr_items(
    eng: &Engine,
    text: &str,
    positions: &[(usize, KeyClass)],
    positional: usize,
    cx: &mut Cx,
) -> Option<String> {
    let b = text.as_bytes();
    let open = b.iter().position(|c| !c.is_ascii_whitespace())?;
    let lexed = Lexed::new(b);
    let g = lexed.opening_at(open)?;
    let closed = g.close < b.len()
        && b.get(g.close + 1..)
            .is_some_and(|rest| rest.iter().all(u8::is_ascii_whitespace));
    if !matches!(g.open_byte, b'(' | b'[') || !closed {
        return None;
    }
    let mut items = elements(b, &lexed, &g);
    // `('A1',)`: a one-item tuple's trailing comma ends no second item.
    if items.len() > 1 && items.last().is_some_and(|&(s, e)| s == e) {
        items.pop();
    }
    if items.len() != positional {
        return None;
    }
    let mut spans: Vec<(usize, usize, KeyClass)> = Vec::new();
    for &(n, class) in positions {
        let Some(&(s, e)) = items.get(n) else {
            continue;
        };
        let span = match string_start(b, s) {
            Some(q) if string_end(b, q).1 == e => (q + 1, string_end(b, q).0),
            _ => (s, e),
        };
        if span.0 < span.1 && !is_keyword_literal(b.get(span.0..span.1).unwrap_or(&[])) {
            spans.push((span.0, span.1, class));
        }
    }
    spans.sort_by_key(|s| s.0);
    let mut out = String::with_capacity(text.len());
    let mut last = 0usize;
    for (s, e, class) in spans {
        let Some(original) = text.get(s..e) else {
            continue;
        };
        if s < last {
            continue;
        }
        if let Some(new) = eng.redact_class_in_text(class, original, true, cx) {
            out.push_str(text.get(last..s).unwrap_or(""));
            out.push_str(&new);
            last = e;
        }
    }
    if last == 0 {
        return None;
    }
    out.push_str(text.get(last..).unwrap_or(""));
    Some(out)
}

/// Where the value of a member `key<sep>value` spanning `s..e` starts, if it is one.
fn member_value_start(b: &[u8], s: usize, e: usize) -> Option<usize> {
    // The key: quoted or bare, then the separator.
    let mut i = s;
    if let Some(q) = string_start(b, s) {
        let (_, end) = string_end(b, q);
        i = end;
    } else {
        while i < e && b.get(i).copied().is_some_and(is_key_byte) {
            i += 1;
        }
        if i == s {
            return None;
        }
    }
    while i < e && b.get(i).copied().is_some_and(is_blank) {
        i += 1;
    }
    let after = match (b.get(i), b.get(i + 1)) {
        (Some(b'='), Some(b'>')) => i + 2,
        (Some(b'='), n) if n != Some(&b'=') => i + 1,
        (Some(b':'), n) if n != Some(&b':') => i + 1,
        _ => return None,
    };
    let mut v = after;
    while v < e && b.get(v).copied().is_some_and(is_blank) {
        v += 1;
    }
    (v < e).then_some(v)
}

/// The end of an unquoted value starting at `v`: the next blank or delimiter, without the
/// sentence punctuation that ends a line of prose (`mrn: 12345.`).
fn bare_end(b: &[u8], v: usize) -> usize {
    let mut e = v;
    while let Some(&c) = b.get(e) {
        if c.is_ascii_whitespace() || b",;&)]}\"'`<>|".contains(&c) {
            break;
        }
        e += 1;
    }
    while e > v && b.get(e - 1).is_some_and(|c| b".:!?".contains(c)) {
        e -= 1;
    }
    e
}

#[cfg(test)]
mod tests;
