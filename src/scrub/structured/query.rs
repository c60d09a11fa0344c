//! Query strings and form-urlencoded bodies: `k=v&k2=v2`. Each key goes through the key
//! denylist; each value (percent-decoded) through the value detectors. Only changed pairs
//! are re-encoded; everything else keeps its original bytes.

use std::borrow::Cow;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

use crate::scrub::walk::{Cx, Engine};

/// Characters encoded when a changed value is written back. Labels such as `[email]` stay
/// readable, like the SDKs' own `[Filtered]`.
const VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'=')
    .add(b'<')
    .add(b'>');

/// Percent-encodes a changed value: non-ASCII, [`VALUE`], and every ASCII character the
/// original value had percent-encoded. A character the sender had to escape (`%3B` inside
/// a cookie, `%29` in a URL in prose) is escaped again, or the rewritten value would split
/// differently on the next read.
fn push_encoded(out: &mut String, new_value: &str, raw: &str) {
    let mut escaped = [false; 128];
    let bytes = raw.as_bytes();
    for (i, _) in raw.match_indices('%') {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            if let Some(slot) = escaped.get_mut(usize::from(byte)) {
                *slot = true;
            }
        }
    }
    for (i, c) in new_value.char_indices() {
        let piece = &new_value[i..i + c.len_utf8()];
        let extra = u8::try_from(c)
            .ok()
            .and_then(|b| escaped.get(usize::from(b)));
        if extra == Some(&true) {
            for b in piece.bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.extend(utf8_percent_encode(piece, VALUE));
        }
    }
}

fn decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let plus = s.replace('+', " ");
    match percent_decode_str(&plus).decode_utf8() {
        Ok(d) => Cow::Owned(d.into_owned()),
        Err(_) => Cow::Owned(plus),
    }
}

/// Whether `s` is shaped like `k=v&k2=v2` (no whitespace, every piece has `=`).
pub(crate) fn looks_like_form(s: &str) -> bool {
    !s.is_empty()
        && s.contains('=')
        && !s.contains(char::is_whitespace)
        && !s.starts_with(['{', '['])
        && s.split('&').all(|p| {
            p.is_empty()
                || p.split_once('=').is_some_and(|(k, _)| {
                    !k.is_empty()
                        && k.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"_.-[]%+$@!*(),".contains(&b))
                })
        })
}

/// Scrubs a query string or form body; `None` if nothing changed.
pub(crate) fn scrub_query(eng: &Engine, query: &str, key: &str, cx: &mut Cx) -> Option<String> {
    let mut changed = false;
    let mut out = String::with_capacity(query.len());
    for (i, piece) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        let Some((k, v)) = piece.split_once('=') else {
            match eng.scrub_text(piece, key, cx) {
                Some(s) => {
                    changed = true;
                    out.push_str(&s);
                }
                None => out.push_str(piece),
            }
            continue;
        };
        let name = decode(k);
        let value = decode(v);
        let new_value = match eng.key_class(&name, cx) {
            Some(class) => eng.redact_class(class, &value, cx),
            None => eng.scrub_string_settled(&value, &name, cx),
        };
        out.push_str(k);
        out.push('=');
        match new_value {
            Some(nv) => {
                changed = true;
                push_encoded(&mut out, &nv, v);
            }
            None => out.push_str(v),
        }
    }
    changed.then_some(out)
}
