//! Structured strings are parsed, scrubbed part by part and re-assembled, not
//! pattern-matched blindly: URLs (userinfo, path, query, fragment), query strings and
//! form-urlencoded bodies, `Cookie`/`Set-Cookie` values, SQL (literals become `?`).
//! JSON held in a string is handled by the walker (parse, walk, re-encode). Inside free
//! text: keys with their values (`mrn='A123'`, reprs, logfmt), request targets and
//! relative URLs, percent-encoded runs.
//!
//! Every function returns `None` when nothing changed, so callers keep the original
//! string (and its exact bytes).

pub(crate) mod cookie;
pub(crate) mod encoded;
pub(crate) mod kv;
pub(crate) mod query;
pub(crate) mod request_line;
pub(crate) mod sql;
pub(crate) mod sql_params;
pub(crate) mod url;
