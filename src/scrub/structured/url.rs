//! URLs: `scheme://[user[:password]@]host[:port][/path][?query][#fragment]`, scrubbed part by
//! part and re-assembled byte for byte where nothing changed. The password becomes a label,
//! the user name, path and fragment are scanned by the value detectors (the path after
//! percent-decoding, [`super::encoded`]), the query goes through [`super::query`]. The host
//! is kept.

use crate::scrub::walk::{Cx, Engine};

/// Scrubs one URL; `None` if nothing changed.
pub(crate) fn scrub_url(eng: &Engine, url: &str, key: &str, cx: &mut Cx) -> Option<String> {
    let scheme_end = url.find("://")?;
    let (scheme, rest) = url.split_at(scheme_end + 3);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let mut changed = false;
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    match authority.rfind('@') {
        Some(at) => {
            let (userinfo, host) = authority.split_at(at);
            let (user, password) = match userinfo.find(':') {
                Some(c) => (&userinfo[..c], Some(&userinfo[c + 1..])),
                None => (userinfo, None),
            };
            match eng.scrub_text(user, key, cx) {
                Some(u) => {
                    changed = true;
                    out.push_str(&u);
                }
                None => out.push_str(user),
            }
            if let Some(password) = password {
                out.push(':');
                // A template's placeholder (`{}`, `%s`, `${DB_PASSWORD}`) is no password:
                // the log template keeps it, and its parameter is judged as one.
                let redacted = if is_placeholder(password) {
                    None
                } else {
                    eng.redact_rule(
                        crate::scrub::detectors::builtin::Structural::UrlPassword,
                        password,
                        cx,
                    )
                };
                match redacted {
                    Some(p) => {
                        changed = true;
                        out.push_str(&p);
                    }
                    None => out.push_str(password),
                }
            }
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    let (path_and_query, fragment) = match tail.find('#') {
        Some(h) => (&tail[..h], Some(&tail[h + 1..])),
        None => (tail, None),
    };
    let (path, query) = match path_and_query.find('?') {
        Some(q) => (&path_and_query[..q], Some(&path_and_query[q + 1..])),
        None => (path_and_query, None),
    };
    match super::encoded::scrub_decoded(eng, path, key, cx) {
        Some(p) => {
            changed = true;
            out.push_str(&p);
        }
        None => out.push_str(path),
    }
    if let Some(query) = query {
        out.push('?');
        match super::query::scrub_query(eng, query, key, cx) {
            Some(q) => {
                changed = true;
                out.push_str(&q);
            }
            None => out.push_str(query),
        }
    }
    if let Some(fragment) = fragment {
        out.push('#');
        let scrubbed = if fragment.contains('=') && !fragment.contains(' ') {
            super::query::scrub_query(eng, fragment, key, cx)
        } else {
            eng.scrub_text(fragment, key, cx)
        };
        match scrubbed {
            Some(f) => {
                changed = true;
                out.push_str(&f);
            }
            None => out.push_str(fragment),
        }
    }
    changed.then_some(out)
}

/// A relative URL (`/path?query#fragment`, as in breadcrumb `from`/`to`); `None` if
/// unchanged.
pub(crate) fn scrub_relative(eng: &Engine, url: &str, key: &str, cx: &mut Cx) -> Option<String> {
    let (path, query) = url.split_once('?')?;
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    let new_path = super::encoded::scrub_decoded(eng, path, key, cx);
    let new_query = super::query::scrub_query(eng, query, key, cx);
    if new_path.is_none() && new_query.is_none() {
        return None;
    }
    let mut out = new_path.unwrap_or_else(|| path.to_owned());
    out.push('?');
    out.push_str(new_query.as_deref().unwrap_or(query));
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    Some(out)
}

/// A path with a query and no whitespace: `/search?q=…`.
pub(crate) fn is_relative_url(s: &str) -> bool {
    s.starts_with('/') && s.contains('?') && !s.contains(char::is_whitespace)
}

/// Drops trailing punctuation that belongs to the sentence, not the URL; closing brackets
/// only when unbalanced (`(see http://x/a)` vs `http://x/?q=[Filtered]`).
pub(crate) fn trim_url_end(url: &str) -> &str {
    let mut end = url.len();
    loop {
        let s = &url[..end];
        let Some(c) = s.chars().next_back() else {
            return s;
        };
        let drop = match c {
            '.' | ',' | ';' | ':' | '!' | '?' | '\'' | '"' => true,
            ')' => !closes_open(bracket_scope(s), '(', ')'),
            ']' => !closes_open(bracket_scope(s), '[', ']'),
            '}' => !closes_open(bracket_scope(s), '{', '}'),
            _ => false,
        };
        if !drop {
            return s;
        }
        end -= c.len_utf8();
    }
}

/// Where a closing bracket at the end of a URL must find its opener to belong to the URL:
/// in a URL with a query or fragment, the last key or value (`?q=[Filtered]`), else the
/// whole URL (`http://x/(a)`). Scoping it to the last value keeps the boundary where it
/// was after that value is redacted: a value `]` that closed `card[` in `?card[=]]]` would
/// otherwise become a balanced label, and every later pass would pull one more `]` into
/// the URL.
pub(crate) fn bracket_scope(url: &str) -> &str {
    if !url.contains(['?', '#']) {
        return url;
    }
    match url.rfind(['?', '&', '=', '#']) {
        Some(at) => &url[at + 1..],
        None => url,
    }
}

/// Whether the last character of `s` (a `close`) closes an `open` before it. Scanned left
/// to right so a stray `close` earlier on (`http://1.2.3.4]:80/?q=[Filtered]`) does not
/// make the final one look unbalanced: trimming it would make every pass append one more.
pub(crate) fn closes_open(s: &str, open: char, close: char) -> bool {
    let mut chars = s.chars();
    chars.next_back();
    let mut depth = 0usize;
    for c in chars {
        if c == open {
            depth += 1;
        } else if c == close {
            depth = depth.saturating_sub(1);
        }
    }
    depth > 0
}

/// A template placeholder in a URL's password slot: `{}`, `{0}`, `{password}`, `%s`,
/// `%(password)s`, `${DB_PASSWORD}`.
fn is_placeholder(s: &str) -> bool {
    let ident = |t: &str| t.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
    (s.starts_with('{') && s.ends_with('}') && ident(&s[1..s.len() - 1]))
        || (s.starts_with("${") && s.ends_with('}') && s.len() > 3 && ident(&s[2..s.len() - 1]))
        || s == "%s"
        || (s.starts_with("%(") && (s.ends_with(")s") || s.ends_with(")d")))
}
