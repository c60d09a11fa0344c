//! Which credential a request carries (protocol §2). Exactly one source may be present:
//! `X-Sentry-Auth`, `Authorization` (Sentry or Basic), or `sentry_*` query parameters. The
//! envelope header `dsn` is the fallback the caller handles once the body is read.

use http::HeaderMap;

use crate::decode::auth::{parse_auth_header, parse_query};
use crate::decode::{AuthError, AuthPairs};

/// Why the request's credentials are unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialError {
    Multiple,
    Bad(AuthError),
}

/// The one credential in the request headers or query, if any.
///
/// # Errors
/// Two or more sources ([`CredentialError::Multiple`]), or one that does not parse.
pub fn request_credentials(
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Option<AuthPairs>, CredentialError> {
    let mut found: Vec<AuthPairs> = Vec::new();
    for name in ["x-sentry-auth", "authorization"] {
        for value in headers.get_all(name) {
            let Ok(value) = value.to_str() else {
                return Err(CredentialError::Bad(AuthError::BadHeader));
            };
            let parsed = if name == "x-sentry-auth" && !starts_with_sentry(value) {
                None
            } else {
                parse_auth_header(value).map_err(CredentialError::Bad)?
            };
            found.extend(parsed);
        }
    }
    if let Some(query) = query {
        found.extend(parse_query(query).map_err(CredentialError::Bad)?);
    }
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(CredentialError::Multiple),
    }
}

fn starts_with_sentry(value: &str) -> bool {
    value.len() >= 7 && value[..7].eq_ignore_ascii_case("sentry ")
}
