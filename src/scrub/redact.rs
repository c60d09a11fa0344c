//! Redaction methods: what a matched value becomes.
//!
//! - `replace`: a label, formatted by `label_format` (`[{label}]` → `[email]`; a format
//!   without `{label}`/`{LABEL}` is one fixed text for every rule, e.g. `[Filtered]`).
//! - `mask`: every letter and digit but the last `keep_last` becomes `*`; separators stay.
//! - `hash`: `label:keyid:hex`, an HMAC-SHA256 of the value (keyed by the configured
//!   secret) cut to 16 hex digits. The key id says which key made it, so keys can rotate.
//! - `remove`: the text disappears (for whole values: the key is removed).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{HashKey, Method};

/// How one rule redacts.
#[derive(Debug, Clone)]
pub(crate) struct Action {
    pub(crate) rule: String,
    pub(crate) method: Method,
    /// The formatted replacement text for `replace`.
    pub(crate) replacement: String,
    /// The raw label, used as the pseudonym prefix for `hash`.
    pub(crate) label: String,
    pub(crate) keep_last: usize,
}

/// The label format and the HMAC key.
#[derive(Clone)]
pub(crate) struct Redactor {
    format: String,
    key: HashKey,
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("format", &self.format)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Length of the hex part of a pseudonym (64 bits).
pub(crate) const HASH_HEX_LEN: usize = 16;

impl Redactor {
    pub(crate) fn new(format: &str, key: HashKey) -> Result<Self, String> {
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(&key.secret)
            .map_err(|_| "the HMAC key is not usable".to_owned())?;
        Ok(Self {
            format: format.to_owned(),
            key,
            mac,
        })
    }

    pub(crate) fn format_label(&self, label: &str) -> String {
        self.format
            .replace("{label}", label)
            .replace("{LABEL}", &label.to_uppercase())
    }

    pub(crate) fn action(
        &self,
        rule: &str,
        method: Method,
        label: &str,
        keep_last: usize,
    ) -> Action {
        Action {
            rule: rule.to_owned(),
            method,
            replacement: self.format_label(label),
            label: label.to_owned(),
            keep_last,
        }
    }

    /// The pseudonym of `value` under `label`.
    pub(crate) fn pseudonym(&self, label: &str, value: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(label.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        let hex = hex::encode(&digest[..HASH_HEX_LEN / 2]);
        format!("{label}:{}:{hex}", self.key.id)
    }

    /// What every pseudonym under `label` starts with (before the hex digits).
    pub(crate) fn pseudonym_prefix(&self, label: &str) -> String {
        format!("{label}:{}:", self.key.id)
    }

    /// Whether `value` already is a pseudonym made by this key with this label.
    pub(crate) fn is_pseudonym(&self, label: &str, value: &str) -> bool {
        let Some(rest) = value.strip_prefix(label) else {
            return false;
        };
        let Some(rest) = rest.strip_prefix(':') else {
            return false;
        };
        let Some(hex) = rest
            .strip_prefix(self.key.id.as_str())
            .and_then(|r| r.strip_prefix(':'))
        else {
            return false;
        };
        hex.len() == HASH_HEX_LEN && hex.bytes().all(|b| b.is_ascii_hexdigit())
    }

    /// What `original` becomes under `action`.
    pub(crate) fn apply(&self, action: &Action, original: &str) -> String {
        match action.method {
            Method::Replace => action.replacement.clone(),
            Method::Mask => mask(original, action.keep_last),
            Method::Hash => {
                if self.is_pseudonym(&action.label, original) {
                    original.to_owned()
                } else {
                    self.pseudonym(&action.label, original)
                }
            }
            Method::Remove => String::new(),
        }
    }
}

/// Replaces every alphanumeric character except the last `keep_last` ones with `*`.
pub(crate) fn mask(value: &str, keep_last: usize) -> String {
    let total = value.chars().filter(|c| c.is_alphanumeric()).count();
    let mut seen = 0usize;
    value
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                seen += 1;
                if seen + keep_last > total {
                    c
                } else {
                    '*'
                }
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(format: &str) -> Redactor {
        Redactor::new(
            format,
            HashKey {
                id: "k1".into(),
                secret: b"0123456789abcdef".to_vec(),
            },
        )
        .unwrap()
    }

    #[test]
    fn label_formats() {
        assert_eq!(redactor("[{label}]").format_label("ssn"), "[ssn]");
        assert_eq!(
            redactor("[{LABEL}-REDACTED]").format_label("ssn"),
            "[SSN-REDACTED]"
        );
        assert_eq!(redactor("[Filtered]").format_label("ssn"), "[Filtered]");
    }

    #[test]
    fn masks_keep_separators_and_last_digits() {
        assert_eq!(mask("4111 1111 1111 1111", 4), "**** **** **** 1111");
        assert_eq!(mask("**** **** **** 1111", 4), "**** **** **** 1111");
        assert_eq!(mask("ab", 4), "ab");
        assert_eq!(mask("secret", 0), "******");
    }

    #[test]
    fn pseudonyms_are_stable_keyed_and_recognised() {
        let r = redactor("[{label}]");
        let a = r.pseudonym("user", "8812");
        assert_eq!(a, r.pseudonym("user", "8812"));
        assert_ne!(a, r.pseudonym("email", "8812"));
        assert!(a.starts_with("user:k1:"));
        assert_eq!(a.len(), "user:k1:".len() + HASH_HEX_LEN);
        assert!(r.is_pseudonym("user", &a));
        assert!(!r.is_pseudonym("email", &a));
        let other = Redactor::new(
            "[{label}]",
            HashKey {
                id: "k2".into(),
                secret: b"fedcba9876543210".to_vec(),
            },
        )
        .unwrap();
        assert_ne!(other.pseudonym("user", "8812")[8..], a[8..]);
    }
}
