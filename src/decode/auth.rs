//! The Sentry auth grammar (protocol §2): `X-Sentry-Auth` / `Authorization: Sentry …` pairs,
//! `Authorization: Basic`, and `sentry_*` query parameters. Deciding which source wins, and
//! whether a key is known, is the caller's job; this only parses.

/// Credentials parsed from one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthPairs {
    /// The public key; never empty.
    pub sentry_key: String,
    /// `sentry_version` (the integer before the first `.`), 7 when absent.
    pub sentry_version: u32,
    /// `sentry_client`, e.g. `sentry.python/2.75.0`.
    pub sentry_client: Option<String>,
}

/// Why a credential could not be parsed. Messages never contain the key or header text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing sentry_key")]
    MissingKey,
    #[error("bad sentry_version")]
    BadVersion,
    #[error("unsupported protocol version ({0})")]
    UnsupportedVersion(u32),
    #[error("bad authorization header")]
    BadHeader,
}

/// Parses an `X-Sentry-Auth` or `Authorization` header value.
///
/// Returns `Ok(None)` when the value does not start with `sentry ` (case-insensitive) and is
/// not `Basic …`: such headers are not Sentry credentials and are ignored.
///
/// # Errors
/// A Sentry header without a usable `sentry_key`, a bad or too-new `sentry_version`, or a
/// Basic header that does not decode to `key:…`.
pub fn parse_auth_header(value: &str) -> Result<Option<AuthPairs>, AuthError> {
    let trimmed = value.trim_start();
    if let Some(rest) = strip_prefix_ignore_case(trimmed, "sentry ") {
        return parse_pairs(rest.split(',').filter_map(|part| {
            let mut kv = part.splitn(2, '=');
            let key = kv.next()?.trim();
            let value = kv.next().unwrap_or("").trim();
            Some((key.to_owned(), value.to_owned()))
        }))
        .map(Some);
    }
    if let Some(rest) = strip_prefix_ignore_case(trimmed, "basic ") {
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .map_err(|_| AuthError::BadHeader)?;
        let text = String::from_utf8(decoded).map_err(|_| AuthError::BadHeader)?;
        let (key, _) = text.split_once(':').ok_or(AuthError::BadHeader)?;
        if key.is_empty() {
            return Err(AuthError::MissingKey);
        }
        return Ok(Some(AuthPairs {
            sentry_key: key.to_owned(),
            sentry_version: DEFAULT_VERSION,
            sentry_client: None,
        }));
    }
    Ok(None)
}

const DEFAULT_VERSION: u32 = 7;

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn parse_pairs(pairs: impl Iterator<Item = (String, String)>) -> Result<AuthPairs, AuthError> {
    let mut key = None;
    let mut version = None;
    let mut client = None;
    for (k, v) in pairs {
        match k.as_str() {
            "sentry_key" => key = Some(v),
            "sentry_version" => version = Some(v),
            "sentry_client" => client = Some(v),
            _ => {}
        }
    }
    let sentry_key = key.filter(|k| !k.is_empty()).ok_or(AuthError::MissingKey)?;
    let sentry_version = match version {
        None => DEFAULT_VERSION,
        Some(v) => {
            let major = v.split('.').next().unwrap_or("");
            major
                .trim()
                .parse::<u32>()
                .map_err(|_| AuthError::BadVersion)?
        }
    };
    if sentry_version > DEFAULT_VERSION {
        return Err(AuthError::UnsupportedVersion(sentry_version));
    }
    Ok(AuthPairs {
        sentry_key,
        sentry_version,
        sentry_client: client.filter(|c| !c.is_empty()),
    })
}

/// Parses the query string (without `?`). Returns `Ok(None)` unless it contains `sentry_`
/// anywhere (that is when Relay treats the query as an auth source).
///
/// # Errors
/// As [`parse_auth_header`].
pub fn parse_query(query: &str) -> Result<Option<AuthPairs>, AuthError> {
    if !query.contains("sentry_") {
        return Ok(None);
    }
    let pairs = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()));
    parse_pairs(pairs).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "e12d836b15bb49d7bbf99e64295d995b";

    #[test]
    fn sentry_header_pairs() {
        let h = format!(
            "Sentry sentry_key={KEY}, sentry_version=7, sentry_client=sentry.python/2.75.0"
        );
        let p = parse_auth_header(&h).unwrap().unwrap();
        assert_eq!(p.sentry_key, KEY);
        assert_eq!(p.sentry_version, 7);
        assert_eq!(p.sentry_client.as_deref(), Some("sentry.python/2.75.0"));
        let lower = format!("sentry sentry_version=6.1,sentry_key={KEY}");
        assert_eq!(
            parse_auth_header(&lower).unwrap().unwrap().sentry_version,
            6
        );
    }

    #[test]
    fn non_sentry_headers_are_ignored() {
        assert_eq!(parse_auth_header("Bearer abc"), Ok(None));
        assert_eq!(parse_auth_header("Sentryx sentry_key=a"), Ok(None));
    }

    #[test]
    fn bad_headers_are_errors() {
        assert_eq!(
            parse_auth_header("Sentry sentry_version=7"),
            Err(AuthError::MissingKey)
        );
        assert_eq!(
            parse_auth_header("Sentry sentry_key="),
            Err(AuthError::MissingKey)
        );
        assert_eq!(
            parse_auth_header(&format!("Sentry sentry_key={KEY}, sentry_version=8")),
            Err(AuthError::UnsupportedVersion(8))
        );
        assert_eq!(
            parse_auth_header(&format!("Sentry sentry_key={KEY}, sentry_version=x")),
            Err(AuthError::BadVersion)
        );
    }

    #[test]
    fn basic_auth() {
        use base64::Engine as _;
        let enc = base64::engine::general_purpose::STANDARD.encode(format!("{KEY}:"));
        let p = parse_auth_header(&format!("Basic {enc}")).unwrap().unwrap();
        assert_eq!(p.sentry_key, KEY);
        assert_eq!(parse_auth_header("Basic !!!"), Err(AuthError::BadHeader));
    }

    #[test]
    fn query_auth() {
        assert_eq!(parse_query("a=b"), Ok(None));
        let q = format!(
            "sentry_key={KEY}&sentry_version=7&sentry_client=sentry.javascript.browser%2F10.0.0"
        );
        let p = parse_query(&q).unwrap().unwrap();
        assert_eq!(p.sentry_key, KEY);
        assert_eq!(
            p.sentry_client.as_deref(),
            Some("sentry.javascript.browser/10.0.0")
        );
        assert_eq!(parse_query("sentry_version=7"), Err(AuthError::MissingKey));
    }
}
