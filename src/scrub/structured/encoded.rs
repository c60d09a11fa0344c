//! Percent-encoded text: a URL path (`/patients/123%20Main%20St`), or an encoded run inside
//! free text (`note%3DJane%20Doe%20DOB%201975-06-08`), is decoded before the detectors and
//! the key rules see it, or `Jane%20Doe` would never read as a name. What changed is encoded
//! again, so a URL stays a URL; the bytes before and after the changed part are kept as the
//! sender wrote them, and labels stay readable (`note%3D[name]%20DOB%20[dob]`), as in
//! [`super::query`].

use crate::scrub::walk::{Cx, Engine};

/// A decoded text and, for each of its bytes, where that byte came from in the original.
#[derive(Debug)]
struct Decoded {
    text: String,
    /// `origin[i]` is the offset in the original of the byte `text[i]` was decoded from;
    /// one more entry, the original's length, ends it.
    origin: Vec<usize>,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The byte a `%XX` escape at `i` stands for.
fn escape_at(b: &[u8], i: usize) -> Option<u8> {
    if b.get(i) != Some(&b'%') {
        return None;
    }
    Some(hex(*b.get(i + 1)?)? << 4 | hex(*b.get(i + 2)?)?)
}

/// Whether `s` holds at least one `%XX` escape.
pub(crate) fn has_escape(s: &str) -> bool {
    let b = s.as_bytes();
    memchr::memchr_iter(b'%', b).any(|i| escape_at(b, i).is_some())
}

/// Decodes `%XX` escapes (and `+` as a blank when `plus`); `None` if nothing was escaped or
/// the result is not UTF-8.
fn decode(s: &str, plus: bool) -> Option<Decoded> {
    let b = s.as_bytes();
    let mut bytes = Vec::with_capacity(b.len());
    let mut origin = Vec::with_capacity(b.len() + 1);
    let mut escaped = false;
    let mut i = 0usize;
    while let Some(&c) = b.get(i) {
        origin.push(i);
        if let Some(byte) = escape_at(b, i) {
            bytes.push(byte);
            escaped = true;
            i += 3;
        } else if c == b'+' && plus {
            bytes.push(b' ');
            escaped = true;
            i += 1;
        } else {
            bytes.push(c);
            i += 1;
        }
    }
    origin.push(b.len());
    if !escaped {
        return None;
    }
    let text = String::from_utf8(bytes).ok()?;
    Some(Decoded { text, origin })
}

/// `new` is `decoded` with some parts replaced: writes `raw` (what `decoded` was decoded
/// from) with only the part between the common prefix and the common suffix encoded anew.
fn reencode(raw: &str, decoded: &Decoded, new: &str) -> Option<String> {
    let old = decoded.text.as_str();
    let (ob, nb) = (old.as_bytes(), new.as_bytes());
    let mut prefix = ob.iter().zip(nb).take_while(|(a, b)| a == b).count();
    while !old.is_char_boundary(prefix) || !new.is_char_boundary(prefix) {
        prefix -= 1;
    }
    let room = ob.len().min(nb.len()) - prefix;
    let mut suffix = ob
        .iter()
        .rev()
        .zip(nb.iter().rev())
        .take(room)
        .take_while(|(a, b)| a == b)
        .count();
    while !old.is_char_boundary(ob.len() - suffix) || !new.is_char_boundary(nb.len() - suffix) {
        suffix -= 1;
    }
    let raw_start = *decoded.origin.get(prefix)?;
    let raw_end = *decoded.origin.get(ob.len() - suffix)?;
    let raw_middle = raw.get(raw_start..raw_end)?;
    let new_middle = new.get(prefix..nb.len() - suffix)?;
    let mut out = String::with_capacity(raw.len() + new_middle.len());
    out.push_str(raw.get(..raw_start)?);
    super::query::push_encoded(&mut out, new_middle, raw_middle);
    out.push_str(raw.get(raw_end..)?);
    Some(out)
}

/// A URL path (or any text that may be percent-encoded) scanned as free text after
/// decoding; `None` if unchanged.
pub(crate) fn scrub_decoded(eng: &Engine, s: &str, key: &str, cx: &mut Cx) -> Option<String> {
    let Some(decoded) = decode(s, false).filter(|d| readable(&d.text)) else {
        return eng.scrub_text(s, key, cx);
    };
    let new = eng.scrub_text(&decoded.text, key, cx)?;
    reencode(s, &decoded, &new)
}

/// Text, not bytes: escapes of control characters (`%02d` in a format string decodes to
/// `\x02d`) mean the run was never encoded text.
fn readable(s: &str) -> bool {
    !s.bytes()
        .any(|c| c.is_ascii_control() && !matches!(c, b'\t' | b'\n' | b'\r'))
}

/// Every percent-encoded run of `text` (a stretch without blanks or quotes holding a `%XX`
/// escape), decoded, scrubbed as a string of its own and encoded again; `None` if nothing
/// changed. URLs are left to the URL parser, which decodes their parts itself.
pub(crate) fn scrub_runs(eng: &Engine, text: &str, key: &str, cx: &mut Cx) -> Option<String> {
    if !has_escape(text) {
        return None;
    }
    let b = text.as_bytes();
    let mut out = String::new();
    let mut last = 0usize;
    let mut i = 0usize;
    while i < b.len() {
        if is_run_end(b.get(i).copied().unwrap_or(b' ')) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_run_end(b.get(i).copied().unwrap_or(b' ')) {
            i += 1;
        }
        let Some(run) = text.get(start..i) else {
            continue;
        };
        if !has_escape(run) || run.contains("://") || super::url::is_relative_url(run) {
            continue;
        }
        let Some(new) = eng.nested(cx, |cx| scrub_run(eng, run, key, cx)) else {
            continue;
        };
        out.push_str(text.get(last..start).unwrap_or(""));
        out.push_str(&new);
        last = i;
    }
    if last == 0 {
        return None;
    }
    out.push_str(text.get(last..).unwrap_or(""));
    (out != text).then_some(out)
}

fn is_run_end(c: u8) -> bool {
    c.is_ascii_whitespace() || matches!(c, b'"' | b'\'' | b'`' | b'<' | b'>')
}

/// One run: decoded (`+` as a blank too when it reads as a form, `a=b+c`), scrubbed like
/// any string (it may be a form, a relative URL, JSON or text) and encoded again.
fn scrub_run(eng: &Engine, run: &str, key: &str, cx: &mut Cx) -> Option<String> {
    let mut decoded = decode(run, false)?;
    if decoded.text.contains('=') && run.contains('+') {
        decoded = decode(run, true)?;
    }
    if !readable(&decoded.text) {
        return None;
    }
    let new = eng.scrub_string_settled(&decoded.text, key, cx)?;
    reencode(run, &decoded, &new)
}

#[cfg(test)]
mod tests {
    use super::{decode, reencode};

    fn roundtrip(raw: &str, plus: bool, edit: impl Fn(&str) -> String) -> String {
        let d = decode(raw, plus).expect("has escapes");
        let new = edit(&d.text);
        reencode(raw, &d, &new).expect("re-encodes")
    }

    #[test]
    fn only_the_changed_middle_is_encoded_again() {
        assert_eq!(
            roundtrip("note%3DJane%20Doe%20DOB%201975-06-08", false, |t| t
                .replace("Jane Doe", "[name]")
                .replace("1975-06-08", "[dob]")),
            "note%3D[name]%20DOB%20[dob]"
        );
        assert_eq!(
            roundtrip("/patients/123%20Main%20St/chart", false, |t| t
                .replace("123 Main St", "[address]")),
            "/patients/[address]/chart"
        );
        // What the sender escaped stays escaped in the new middle; `+` was a blank.
        assert_eq!(
            roundtrip("a=Jane+Doe%3Bx+y", true, |t| t
                .replace("Jane Doe;x", "[name];x")),
            "a=[name]%3Bx+y"
        );
        // Non-ASCII on either side of the change keeps its boundaries.
        assert_eq!(
            roundtrip("%C3%A9t%C3%A9%20Jane%20Doe", false, |t| t
                .replace("Jane Doe", "[name]")),
            "%C3%A9t%C3%A9%20[name]"
        );
    }

    #[test]
    fn nothing_escaped_or_not_utf8_is_not_decoded() {
        assert!(decode("plain text", false).is_none());
        assert!(decode("100%", false).is_none());
        assert!(decode("%ff%fe", false).is_none());
        assert_eq!(
            decode("a+b%2B", true).map(|d| d.text),
            Some("a b+".to_owned())
        );
    }
}
