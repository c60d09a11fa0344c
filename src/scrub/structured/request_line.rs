//! Request targets and relative URLs inside text: access-log lines
//! (`10.0.0.5 - - [22/Nov/2026] "POST /checkout?note=… HTTP/1.1" 200`, as the Python SDK's
//! logging integration sends them), redirects (`next=/login?email=…`), route messages. A
//! URL with a scheme is the URL detector's; a path with a query at a word boundary is
//! scrubbed here like a relative URL field ([`super::url::scrub_relative`]): the path
//! decoded and scanned, each query key through the key rules, each value decoded first.

use crate::scrub::walk::{Cx, Engine};

use super::url::{is_relative_url, scrub_relative, trim_url_end};

/// Scrubs every relative URL with a query in `text`; `None` if nothing changed.
pub(crate) fn scrub_targets(eng: &Engine, text: &str, key: &str, cx: &mut Cx) -> Option<String> {
    let b = text.as_bytes();
    memchr::memchr(b'?', b)?;
    let mut out = String::new();
    let mut last = 0usize;
    // A `/` inside a target already read starts nothing new (its tail is the same target's,
    // and reading every tail again would be quadratic in a long one).
    let mut read_to = 0usize;
    for start in memchr::memchr_iter(b'/', b) {
        if start < read_to || !target_starts(b, start) {
            continue;
        }
        let mut end = start;
        while end < b.len() && !is_target_end(b.get(end).copied().unwrap_or(b' ')) {
            end += 1;
        }
        read_to = end;
        let Some(target) = text.get(start..end).map(trim_url_end) else {
            continue;
        };
        let has_pairs = target
            .split_once('?')
            .is_some_and(|(_, query)| query.contains('='));
        if !has_pairs || !is_relative_url(target) {
            continue;
        }
        let Some(new) = eng.nested(cx, |cx| scrub_relative(eng, target, key, cx)) else {
            continue;
        };
        out.push_str(text.get(last..start).unwrap_or(""));
        out.push_str(&new);
        last = start + target.len();
    }
    if last == 0 {
        return None;
    }
    out.push_str(text.get(last..).unwrap_or(""));
    (out != text).then_some(out)
}

/// A target starts with one `/` (not `//`, the authority of a URL) after a blank, a quote,
/// a bracket or a `=` / `,` (`next=/…`), or at the start.
fn target_starts(b: &[u8], at: usize) -> bool {
    let before = at.checked_sub(1).and_then(|p| b.get(p)).copied();
    let boundary = before.is_none_or(|c| {
        c.is_ascii_whitespace()
            || matches!(c, b'"' | b'\'' | b'`' | b'(' | b'[' | b'<' | b'=' | b',')
    });
    boundary && b.get(at + 1) != Some(&b'/')
}

fn is_target_end(c: u8) -> bool {
    c.is_ascii_whitespace() || matches!(c, b'"' | b'\'' | b'`' | b'<' | b'>')
}
