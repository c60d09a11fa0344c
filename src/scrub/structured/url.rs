//! URLs: `scheme://[user[:password]@]host[:port][/path][?query][#fragment]`, scrubbed part by
//! part and re-assembled byte for byte where nothing changed. The password becomes a label,
//! the user name, path and fragment are scanned by the value detectors, the query goes
//! through [`super::query`]. The host is kept.

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
                match eng.redact_rule(
                    crate::scrub::detectors::builtin::Structural::UrlPassword,
                    password,
                    cx,
                ) {
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
    match eng.scrub_text(path, key, cx) {
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
    let new_path = eng.scrub_text(path, key, cx);
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
