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
pub(crate) fn push_encoded(out: &mut String, new_value: &str, raw: &str) {
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

/// Whether `s` is shaped like `k=v&k2=v2` (no whitespace, every piece has `=`, every key
/// made of URL-safe characters). One pass over the bytes: the walker asks this of every
/// string holding a `&`, and a split-per-piece version was ~9 % of a dense event's scrub.
pub(crate) fn looks_like_form(s: &str) -> bool {
    if s.is_empty() || s.starts_with(['{', '[']) {
        return false;
    }
    let mut seen_eq = false;
    let mut in_key = true;
    let mut key_len = 0usize;
    let mut non_ascii = false;
    for &b in s.as_bytes() {
        match b {
            b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r' => return false,
            b'&' => {
                if in_key && key_len > 0 {
                    return false;
                }
                in_key = true;
                key_len = 0;
            }
            b'=' if in_key => {
                if key_len == 0 {
                    return false;
                }
                in_key = false;
                seen_eq = true;
            }
            _ if in_key => {
                if !FORM_KEY_BYTE[usize::from(b)] {
                    return false;
                }
                key_len += 1;
            }
            _ => non_ascii |= b >= 0x80,
        }
    }
    if in_key && key_len > 0 || !seen_eq {
        return false;
    }
    // Keys are ASCII by now; a value may still hold Unicode whitespace (U+00A0, U+2028).
    !(non_ascii && s.contains(char::is_whitespace))
}

/// Bytes a form key may hold: ASCII letters, digits and `_.-[]%+$@!*(),`.
const FORM_KEY_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric();
        b += 1;
    }
    let extra = b"_.-[]%+$@!*(),";
    let mut i = 0;
    while i < extra.len() {
        table[extra[i] as usize] = true;
        i += 1;
    }
    table
};

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
            None => {
                let scanned = eng.scrub_string_settled(&value, &name, cx);
                let text = scanned.as_deref().unwrap_or(&value);
                eng.judge_string(text, &name, cx).or(scanned)
            }
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

#[cfg(test)]
mod tests {
    use super::looks_like_form;
    use proptest::prelude::*;

    /// The definition, written piece by piece: the one-pass version must agree with it.
    fn by_pieces(s: &str) -> bool {
        !s.is_empty()
            && s.contains('=')
            && !s.contains(char::is_whitespace)
            && !s.starts_with(['{', '['])
            && s.split('&').all(|p| {
                p.is_empty()
                    || p.split_once('=').is_some_and(|(k, _)| {
                        !k.is_empty()
                            && k.bytes().all(|b| {
                                b.is_ascii_alphanumeric() || b"_.-[]%+$@!*(),".contains(&b)
                            })
                    })
            })
    }

    #[test]
    fn form_shapes() {
        for (s, form) in [
            ("a=1&b=2", true),
            ("a=1&&b=", true),
            ("&a=1&", true),
            ("q=a b", false),
            ("q=a\u{a0}b", false),
            ("q=a\u{b}b", false),
            ("a=1&b", false),
            ("=1&b=2", false),
            ("é=1", false),
            ("k=é&x[0]=1", true),
            ("{a=1}", false),
            ("&&", false),
            ("", false),
        ] {
            assert_eq!(looks_like_form(s), form, "{s:?}");
            assert_eq!(by_pieces(s), form, "{s:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
        #[test]
        fn one_pass_agrees_with_the_definition(s in "[a=&_ \\[{%.é\u{a0}\u{2028}\t1-]{0,12}") {
            prop_assert_eq!(looks_like_form(&s), by_pieces(&s));
        }
    }
}
