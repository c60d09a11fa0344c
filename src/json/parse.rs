//! The parser: strict RFC 8259 with serde_json's limits, borrowing strings and numbers from
//! the input.

use std::borrow::Cow;

use super::{Node, Object, Text};

/// Strings are scanned eight bytes at a time this far before `memchr` takes over.
const SHORT_STRING: usize = 64;

/// The bytes that end the plain part of a string: `"`, `\` and control characters.
const SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The first `"`, `\\` or control character in `bytes` from `from` on. Eight bytes at a
/// time: per byte, `b - 0x20`, `(b ^ '"') - 1` and `(b ^ '\\') - 1` borrow into the high bit
/// exactly when `b` is below 0x20, a quote or a backslash (bytes with the high bit set never
/// match). Borrows only spill upwards, so the lowest flagged byte is a true match.
fn find_special(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        let hits =
            (x.wrapping_sub(ONES * 0x20) | quote.wrapping_sub(ONES) | backslash.wrapping_sub(ONES))
                & !x
                & HIGHS;
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if SPECIAL[usize::from(b)] {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// serde_json's recursion limit: 127 nested arrays/objects parse, 128 do not.
const MAX_DEPTH: usize = 128;

/// Why a text is not JSON. Carries a byte offset and a fixed message, never input text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{message} at byte {position}")]
pub struct JsonError {
    pub position: usize,
    pub message: &'static str,
}

/// Parses one JSON value (whitespace around it allowed, nothing else).
///
/// # Errors
/// The first place where `text` is not JSON, or nesting deeper than serde_json allows.
pub fn parse(text: &str) -> Result<Node<'_>, JsonError> {
    let mut p = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        depth: 0,
        items: Vec::new(),
        members: Vec::new(),
    };
    p.skip_ws();
    let node = p.value()?;
    p.skip_ws();
    if p.pos != p.bytes.len() {
        return Err(p.err("trailing characters"));
    }
    Ok(node)
}

/// [`parse`] for bytes: UTF-8 is validated once, up front.
///
/// # Errors
/// Invalid UTF-8, or whatever [`parse`] reports.
pub fn parse_bytes(bytes: &[u8]) -> Result<Node<'_>, JsonError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(text),
        Err(e) => Err(JsonError {
            position: e.valid_up_to(),
            message: "invalid UTF-8",
        }),
    }
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
    /// Scratch stacks: the elements of the arrays and objects being parsed, moved into a
    /// vector of the exact size when the container closes (no regrowth per container).
    items: Vec<Node<'a>>,
    members: Vec<(Text<'a>, Node<'a>)>,
}

impl<'a> Parser<'a> {
    fn err(&self, message: &'static str) -> JsonError {
        JsonError {
            position: self.pos,
            message,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    fn value(&mut self) -> Result<Node<'a>, JsonError> {
        match self.peek() {
            Some(b'"') => {
                self.pos += 1;
                self.string().map(Node::Str)
            }
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b't') => self.literal(b"true", Node::Bool(true)),
            Some(b'f') => self.literal(b"false", Node::Bool(false)),
            Some(b'n') => self.literal(b"null", Node::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err("expected value")),
            None => Err(self.err("EOF while parsing a value")),
        }
    }

    fn literal(&mut self, word: &'static [u8], node: Node<'a>) -> Result<Node<'a>, JsonError> {
        if self.bytes.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(node)
        } else {
            Err(self.err("expected value"))
        }
    }

    fn enter(&mut self) -> Result<(), JsonError> {
        self.depth += 1;
        if self.depth >= MAX_DEPTH {
            return Err(self.err("recursion limit exceeded"));
        }
        self.pos += 1;
        Ok(())
    }

    fn array(&mut self) -> Result<Node<'a>, JsonError> {
        self.enter()?;
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Node::Array(Vec::new()));
        }
        let start = self.items.len();
        loop {
            let item = self.value()?;
            self.items.push(item);
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                Some(b']') => {
                    self.pos += 1;
                    break;
                }
                Some(_) => return Err(self.err("expected `,` or `]`")),
                None => return Err(self.err("EOF while parsing a list")),
            }
        }
        self.depth -= 1;
        Ok(Node::Array(self.items.drain(start..).collect()))
    }

    fn object(&mut self) -> Result<Node<'a>, JsonError> {
        self.enter()?;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Node::Object(Object::new()));
        }
        let start = self.members.len();
        loop {
            match self.peek() {
                Some(b'"') => self.pos += 1,
                Some(_) => return Err(self.err("key must be a string")),
                None => return Err(self.err("EOF while parsing an object")),
            }
            let key = self.string()?;
            self.skip_ws();
            match self.peek() {
                Some(b':') => self.pos += 1,
                Some(_) => return Err(self.err("expected `:`")),
                None => return Err(self.err("EOF while parsing an object")),
            }
            self.skip_ws();
            let value = self.value()?;
            self.members.push((key, value));
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                Some(_) => return Err(self.err("expected `,` or `}`")),
                None => return Err(self.err("EOF while parsing an object")),
            }
        }
        self.depth -= 1;
        Ok(Node::Object(Object::from_entries(
            self.members.drain(start..).collect(),
        )))
    }

    /// A string whose opening quote was consumed; leaves `pos` after the closing quote.
    fn string(&mut self) -> Result<Text<'a>, JsonError> {
        let start = self.pos;
        // Most strings (keys, short values) are short: eight bytes at a time in a register
        // is cheaper than a `memchr` call for them. Longer ones continue with `memchr`.
        let short_end = (start + SHORT_STRING).min(self.bytes.len());
        let mut end = find_special(&self.bytes[..short_end], start).unwrap_or(short_end);
        if end == short_end {
            let Some(found) = memchr::memchr2(b'"', b'\\', &self.bytes[end..]) else {
                self.pos = self.bytes.len();
                return Err(self.err("EOF while parsing a string"));
            };
            self.check_controls(end, end + found)?;
            end += found;
        } else if self.bytes[end] < 0x20 {
            self.pos = end;
            return Err(self.err("control character in string"));
        }
        if self.bytes[end] == b'"' {
            self.pos = end + 1;
            // `start` and `end` are next to ASCII bytes, so they are char boundaries.
            let s = self.slice(start, end)?;
            return Ok(Text::parsed(s, Cow::Borrowed(s)));
        }
        // Escapes: decode into a new string.
        let mut out = String::with_capacity(end - start + 16);
        out.push_str(self.slice(start, end)?);
        self.pos = end;
        loop {
            // At a backslash.
            self.pos += 1;
            let Some(esc) = self.peek() else {
                return Err(self.err("EOF while parsing a string"));
            };
            self.pos += 1;
            match esc {
                b'"' => out.push('"'),
                b'\\' => out.push('\\'),
                b'/' => out.push('/'),
                b'b' => out.push('\u{8}'),
                b'f' => out.push('\u{c}'),
                b'n' => out.push('\n'),
                b'r' => out.push('\r'),
                b't' => out.push('\t'),
                b'u' => {
                    let c = self.unicode_escape()?;
                    out.push(c);
                }
                _ => {
                    self.pos -= 1;
                    return Err(self.err("invalid escape"));
                }
            }
            let from = self.pos;
            let Some(found) = memchr::memchr2(b'"', b'\\', &self.bytes[from..]) else {
                self.pos = self.bytes.len();
                return Err(self.err("EOF while parsing a string"));
            };
            let to = from + found;
            self.check_controls(from, to)?;
            out.push_str(self.slice(from, to)?);
            self.pos = to;
            if self.bytes[to] == b'"' {
                self.pos = to + 1;
                let raw = self.slice(start, to)?;
                return Ok(Text::parsed(raw, Cow::Owned(out)));
            }
        }
    }

    fn slice(&self, from: usize, to: usize) -> Result<&'a str, JsonError> {
        self.text
            .get(from..to)
            .ok_or_else(|| self.err("invalid string"))
    }

    /// Control characters must be escaped inside strings.
    fn check_controls(&mut self, from: usize, to: usize) -> Result<(), JsonError> {
        let seg = &self.bytes[from..to];
        let mut offset = 0;
        for chunk in seg.chunks(64) {
            // Branch-free per chunk so it vectorizes; the exact place only on error.
            if chunk.iter().fold(false, |acc, &b| acc | (b < 0x20)) {
                let i = chunk.iter().position(|&b| b < 0x20).unwrap_or(0);
                self.pos = from + offset + i;
                return Err(self.err("control character in string"));
            }
            offset += chunk.len();
        }
        Ok(())
    }

    fn hex4(&mut self) -> Result<u16, JsonError> {
        let Some(digits) = self.bytes.get(self.pos..self.pos + 4) else {
            self.pos = self.bytes.len();
            return Err(self.err("EOF while parsing a string"));
        };
        let mut n = 0u16;
        for &d in digits {
            let v = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return Err(self.err("invalid \\u escape")),
            };
            n = (n << 4) | u16::from(v);
        }
        self.pos += 4;
        Ok(n)
    }

    /// After `\u`: one code point, surrogate pairs joined, lone surrogates rejected.
    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                    return Err(self.err("lone leading surrogate in hex escape"));
                }
                self.pos += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(self.err("lone leading surrogate in hex escape"));
                }
                0x10000 + ((u32::from(first) - 0xD800) << 10) + (u32::from(second) - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.err("lone trailing surrogate in hex escape")),
            other => u32::from(other),
        };
        char::from_u32(code).ok_or_else(|| self.err("invalid unicode code point"))
    }

    fn digits(&mut self) -> usize {
        let from = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - from
    }

    fn number(&mut self) -> Result<Node<'a>, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let int_len = match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                1
            }
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.err("invalid number")),
        };
        let mut exact = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            exact = false;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
        }
        let text = self.slice(start, self.pos)?;
        // Without an exponent, fewer than 300 integer digits cannot leave f64's range.
        if (!exact || int_len >= 300) && !text.parse::<f64>().is_ok_and(f64::is_finite) {
            self.pos = start;
            return Err(self.err("number out of range"));
        }
        Ok(Node::Number(Cow::Borrowed(text)))
    }
}
