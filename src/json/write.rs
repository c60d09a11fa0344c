//! Compact serialization. Unchanged strings are copied from their raw input text; new ones
//! are escaped exactly as serde_json escapes them.

use super::{Node, Text};

/// Serializes `node` compactly into a buffer sized from `size_hint` (the input's length:
/// scrubbing rarely grows a payload much).
pub fn to_vec(node: &Node<'_>, size_hint: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size_hint.saturating_add(size_hint / 16).max(64));
    write_compact(node, &mut out);
    out
}

/// Serializes `node` compactly into a `String`.
pub fn to_string(node: &Node<'_>) -> String {
    let mut out = Vec::new();
    write_compact(node, &mut out);
    // Only valid UTF-8 is ever written: `&str` slices and ASCII.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `node` as compact JSON.
pub fn write_compact(node: &Node<'_>, out: &mut Vec<u8>) {
    match node {
        Node::Null => out.extend_from_slice(b"null"),
        Node::Bool(true) => out.extend_from_slice(b"true"),
        Node::Bool(false) => out.extend_from_slice(b"false"),
        Node::Number(n) => out.extend_from_slice(n.as_bytes()),
        Node::Str(t) => write_text(t, out),
        Node::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_compact(item, out);
            }
            out.push(b']');
        }
        Node::Object(o) => {
            out.push(b'{');
            for (i, (k, v)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_text(k, out);
                out.push(b':');
                write_compact(v, out);
            }
            out.push(b'}');
        }
    }
}

fn write_text(text: &Text<'_>, out: &mut Vec<u8>) {
    out.push(b'"');
    match text.raw() {
        Some(raw) => out.extend_from_slice(raw.as_bytes()),
        None => escape_into(text.as_str(), out),
    }
    out.push(b'"');
}

/// 0: copied as is; `u`: `\u00XX`; anything else: a backslash and that byte.
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0A] = b'n';
    t[0x0C] = b'f';
    t[0x0D] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Escapes `s` as serde_json does: `"`, `\` and control characters only.
pub(crate) fn escape_into(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc = ESCAPE[usize::from(b)];
        if esc == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[run..i]);
        if esc == b'u' {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xF)],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', esc]);
        }
        run = i + 1;
    }
    out.extend_from_slice(&bytes[run..]);
}
