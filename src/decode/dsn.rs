//! DSNs: `{scheme}://{public_key}[:{secret}]@{host}[:{port}]/[{path}/]{project_id}`.
//!
//! A DSN from an envelope header is attacker-controlled on the tunnel route; the parser is
//! strict so that the caller can compare it with configured projects exactly.

use std::fmt;

/// A parsed DSN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dsn {
    /// `http` or `https`.
    pub scheme: String,
    pub public_key: String,
    pub secret_key: Option<String>,
    /// Host as written (lowercased); IPv6 literals keep their brackets.
    pub host: String,
    pub port: Option<u16>,
    /// Path prefix before the project id, without leading/trailing slashes ("" for none).
    pub path: String,
    pub project_id: u64,
}

/// Why a DSN is not acceptable. Never echoes the DSN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsnError {
    #[error("invalid DSN")]
    Invalid,
    #[error("DSN scheme must be http or https")]
    BadScheme,
    #[error("DSN has no public key")]
    MissingKey,
    #[error("DSN has no valid project id")]
    BadProjectId,
}

impl Dsn {
    /// Parses a DSN string.
    ///
    /// # Errors
    /// Anything that is not an absolute http(s) URL with a public key, a host and a numeric
    /// project id as the last path segment, or that carries a query or fragment.
    pub fn parse(s: &str) -> Result<Self, DsnError> {
        let url = url::Url::parse(s.trim()).map_err(|_| DsnError::Invalid)?;
        let scheme = url.scheme();
        if scheme != "http" && scheme != "https" {
            return Err(DsnError::BadScheme);
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(DsnError::Invalid);
        }
        let public_key = percent_decode(url.username())?;
        if public_key.is_empty() {
            return Err(DsnError::MissingKey);
        }
        let secret_key = match url.password() {
            Some(p) if !p.is_empty() => Some(percent_decode(p)?),
            _ => None,
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or(DsnError::Invalid)?;
        let mut segments: Vec<&str> = url.path().trim_matches('/').split('/').collect();
        let last = segments.pop().unwrap_or("");
        let project_id = last
            .parse::<u64>()
            .ok()
            .filter(|id| *id > 0 && last.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(DsnError::BadProjectId)?;
        if segments.iter().any(|s| s.is_empty()) {
            return Err(DsnError::Invalid);
        }
        Ok(Self {
            scheme: scheme.to_owned(),
            public_key,
            secret_key,
            host: host.to_ascii_lowercase(),
            port: url.port(),
            path: segments.join("/"),
            project_id,
        })
    }

    /// `scheme://host[:port][/path]`: the base that API paths are appended to.
    pub fn origin_with_path(&self) -> String {
        let mut out = format!("{}://{}", self.scheme, self.host);
        if let Some(port) = self.port {
            out.push_str(&format!(":{port}"));
        }
        if !self.path.is_empty() {
            out.push('/');
            out.push_str(&self.path);
        }
        out
    }

    /// `…/api/{project_id}/envelope/` on this DSN's host.
    pub fn envelope_url(&self) -> String {
        format!(
            "{}/api/{}/envelope/",
            self.origin_with_path(),
            self.project_id
        )
    }
}

impl fmt::Display for Dsn {
    /// The canonical DSN string (with the secret key if there is one).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.public_key)?;
        if let Some(secret) = &self.secret_key {
            write!(f, ":{secret}")?;
        }
        write!(f, "@{}", self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        if !self.path.is_empty() {
            write!(f, "/{}", self.path)?;
        }
        write!(f, "/{}", self.project_id)
    }
}

fn percent_decode(s: &str) -> Result<String, DsnError> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| DsnError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_saas_and_self_hosted_dsns() {
        let d =
            Dsn::parse("https://e12d836b15bb49d7bbf99e64295d995b@o1.ingest.sentry.io/42").unwrap();
        assert_eq!(d.public_key, "e12d836b15bb49d7bbf99e64295d995b");
        assert_eq!(d.host, "o1.ingest.sentry.io");
        assert_eq!(d.project_id, 42);
        assert_eq!(
            d.envelope_url(),
            "https://o1.ingest.sentry.io/api/42/envelope/"
        );
        let d = Dsn::parse("http://pub:sec@Sentry.Example.com:9000/sub/path/7").unwrap();
        assert_eq!(d.secret_key.as_deref(), Some("sec"));
        assert_eq!(d.host, "sentry.example.com");
        assert_eq!(d.port, Some(9000));
        assert_eq!(d.path, "sub/path");
        assert_eq!(
            d.to_string(),
            "http://pub:sec@sentry.example.com:9000/sub/path/7"
        );
        assert_eq!(
            d.envelope_url(),
            "http://sentry.example.com:9000/sub/path/api/7/envelope/"
        );
    }

    #[test]
    fn rejects_bad_dsns() {
        assert_eq!(Dsn::parse("not a dsn"), Err(DsnError::Invalid));
        assert_eq!(Dsn::parse("ftp://k@h/1"), Err(DsnError::BadScheme));
        assert_eq!(Dsn::parse("https://h/1"), Err(DsnError::MissingKey));
        assert_eq!(Dsn::parse("https://k@h/abc"), Err(DsnError::BadProjectId));
        assert_eq!(Dsn::parse("https://k@h/"), Err(DsnError::BadProjectId));
        assert_eq!(Dsn::parse("https://k@h/1?x=y"), Err(DsnError::Invalid));
    }
}
