//! `Cookie` and `Set-Cookie` values, parsed per cookie: `a=1; b=2`. A cookie whose name is
//! sensitive (session handles, `patient_email`, …) has its value replaced; other values
//! go through the value detectors. `Set-Cookie` attributes (`Path`, `Expires`, …) are kept.

use crate::scrub::walk::{Cx, Engine};

const ATTRIBUTES: &[&str] = &[
    "path",
    "domain",
    "expires",
    "max-age",
    "secure",
    "httponly",
    "samesite",
    "priority",
    "partitioned",
];

/// Scrubs one cookie header value; `None` if nothing changed.
pub(crate) fn scrub_cookies(eng: &Engine, header: &str, cx: &mut Cx) -> Option<String> {
    let mut changed = false;
    let mut out = String::with_capacity(header.len());
    for (i, piece) in header.split(';').enumerate() {
        if i > 0 {
            out.push(';');
        }
        let trimmed = piece.trim_start();
        let lead = &piece[..piece.len() - trimmed.len()];
        out.push_str(lead);
        let Some((name, value)) = trimmed.split_once('=') else {
            if trimmed.is_empty() || ATTRIBUTES.contains(&trimmed.to_ascii_lowercase().as_str()) {
                out.push_str(trimmed);
            } else {
                // A bare value with no name: nothing tells us it is harmless.
                match eng.redact_rule(
                    crate::scrub::detectors::builtin::Structural::Cookie,
                    trimmed,
                    cx,
                ) {
                    Some(v) => {
                        changed = true;
                        out.push_str(&v);
                    }
                    None => out.push_str(trimmed),
                }
            }
            continue;
        };
        out.push_str(name);
        out.push('=');
        let lower = name.trim().to_ascii_lowercase();
        if i > 0 && ATTRIBUTES.contains(&lower.as_str()) {
            out.push_str(value);
            continue;
        }
        match eng.scrub_cookie_value(name.trim(), value, cx) {
            Some(v) => {
                changed = true;
                out.push_str(&v);
            }
            None => out.push_str(value),
        }
    }
    changed.then_some(out)
}
