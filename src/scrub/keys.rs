//! Sensitive-key matching on normalised keys.
//!
//! A key is split into lowercase word tokens: `-`, `_`, `.`, spaces and every other
//! non-alphanumeric character separate words, and so do camelCase boundaries
//! (`patientEmail` → `patient email`, `HTTPHeader` → `http header`). A denylist entry is
//! normalised the same way and matches a contiguous run of the key's tokens, either token by
//! token (`api_key` matches `x-api-key`) or glued together (`api_key` matches `apikey`). So
//! `auth` never hits `author`, and `cc` never hits `accept`.
//!
//! Globs: a token `*` matches one or more whole tokens (`x-*-key` matches `x-goog-api-key`),
//! and a `*` inside a token matches within that token (`patient*` matches `patients` and
//! `patientname`).

use std::collections::HashMap;

use super::hashing::FxBuild;

/// The class of data a sensitive key holds: chooses the rule name and the label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum KeyClass {
    Secret,
    Name,
    Email,
    Phone,
    Ssn,
    Dob,
    Address,
    Mrn,
    Insurance,
    Account,
    Card,
    Clinical,
    Npi,
    Dea,
    Ip,
    Mac,
    Custom,
}

impl KeyClass {
    pub(crate) const ALL: [KeyClass; 17] = [
        Self::Secret,
        Self::Name,
        Self::Email,
        Self::Phone,
        Self::Ssn,
        Self::Dob,
        Self::Address,
        Self::Mrn,
        Self::Insurance,
        Self::Account,
        Self::Card,
        Self::Clinical,
        Self::Npi,
        Self::Dea,
        Self::Ip,
        Self::Mac,
        Self::Custom,
    ];

    /// The rule name in reports and in `[scrub.detectors.<rule>]`.
    pub(crate) fn rule(self) -> &'static str {
        match self {
            Self::Secret => "key_secret",
            Self::Name => "key_name",
            Self::Email => "key_email",
            Self::Phone => "key_phone",
            Self::Ssn => "key_ssn",
            Self::Dob => "key_dob",
            Self::Address => "key_address",
            Self::Mrn => "key_mrn",
            Self::Insurance => "key_insurance",
            Self::Account => "key_account",
            Self::Card => "key_card",
            Self::Clinical => "key_clinical",
            Self::Npi => "key_npi",
            Self::Dea => "key_dea",
            Self::Ip => "key_ip",
            Self::Mac => "key_mac",
            Self::Custom => "key_custom",
        }
    }

    /// The default label (before `label_format`).
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Secret | Self::Custom => "Filtered",
            Self::Name => "name",
            Self::Email => "email",
            Self::Phone => "phone",
            Self::Ssn => "ssn",
            Self::Dob => "dob",
            Self::Address => "address",
            Self::Mrn => "mrn",
            Self::Insurance => "member-id",
            Self::Account => "account",
            Self::Card => "card",
            Self::Clinical => "phi",
            Self::Npi => "npi",
            Self::Dea => "dea",
            Self::Ip => "ip",
            Self::Mac => "mac",
        }
    }
}

/// One token of a denylist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TokenPat {
    Lit(String),
    /// `*` alone: one or more whole tokens.
    AnyTokens,
    /// A token with `*` inside, split at the stars.
    Glob(Vec<String>),
}

#[derive(Debug, Clone)]
struct GlobEntry {
    tokens: Vec<TokenPat>,
    class: KeyClass,
}

/// A compiled key list: literal entries in a hash map (looked up by every run of the key's
/// tokens, spaced and glued), glob entries matched token by token.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyMatcher {
    /// Unkeyed, as `exact`: the entries are the config's and the built-in key lists;
    /// payload keys are only looked up.
    literal: HashMap<String, KeyClass, FxBuild>,
    /// Entries written `=word`: match only a key that is exactly that (after normalising).
    exact: HashMap<String, KeyClass, FxBuild>,
    globs: Vec<GlobEntry>,
}

/// A key split into tokens; reused across keys to avoid allocations.
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    buf: String,
    bounds: Vec<(usize, usize)>,
    scratch: String,
}

impl Tokens {
    pub(crate) fn split(&mut self, key: &str) {
        self.buf.clear();
        self.bounds.clear();
        let mut start: Option<usize> = None;
        let mut prev: Option<char> = None;
        let mut iter = key.chars().peekable();
        while let Some(c) = iter.next() {
            if c.is_alphanumeric() {
                if let (Some(s), Some(p)) = (start, prev) {
                    let next_lower = iter.peek().is_some_and(|n| n.is_lowercase());
                    let boundary = (p.is_lowercase() && c.is_uppercase())
                        || (p.is_uppercase() && c.is_uppercase() && next_lower);
                    if boundary {
                        self.bounds.push((s, self.buf.len()));
                        start = None;
                    }
                }
                if start.is_none() {
                    start = Some(self.buf.len());
                }
                if c.is_ascii() {
                    self.buf.push(c.to_ascii_lowercase());
                } else {
                    self.buf.extend(c.to_lowercase());
                }
                prev = Some(c);
            } else {
                if let Some(s) = start.take() {
                    self.bounds.push((s, self.buf.len()));
                }
                prev = None;
            }
        }
        if let Some(s) = start {
            self.bounds.push((s, self.buf.len()));
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.bounds.len()
    }

    pub(crate) fn get(&self, i: usize) -> &str {
        self.bounds
            .get(i)
            .and_then(|&(s, e)| self.buf.get(s..e))
            .unwrap_or("")
    }

    pub(crate) fn last(&self) -> &str {
        if self.bounds.is_empty() {
            ""
        } else {
            self.get(self.bounds.len() - 1)
        }
    }

    pub(crate) fn contains(&self, word: &str) -> bool {
        (0..self.len()).any(|i| self.get(i) == word)
    }

    /// All tokens glued, e.g. `x-api-key` → `xapikey`.
    pub(crate) fn glued(&self) -> String {
        let mut s = String::with_capacity(self.buf.len());
        for i in 0..self.len() {
            s.push_str(self.get(i));
        }
        s
    }
}

impl KeyMatcher {
    /// Adds an entry. Returns `false` if the entry normalises to nothing.
    pub(crate) fn add(&mut self, entry: &str, class: KeyClass) -> bool {
        if let Some(exact) = entry.strip_prefix('=') {
            let mut t = Tokens::default();
            t.split(exact);
            if t.len() == 0 {
                return false;
            }
            self.exact.entry(t.glued()).or_insert(class);
            return true;
        }
        let mut tokens = Vec::new();
        for raw in entry
            .split(|c: char| !c.is_alphanumeric() && c != '*')
            .filter(|t| !t.is_empty())
        {
            // camelCase inside one raw token
            let mut t = Tokens::default();
            if raw.contains('*') {
                if raw == "*" {
                    tokens.push(TokenPat::AnyTokens);
                } else {
                    let lowered = raw.to_lowercase();
                    tokens.push(TokenPat::Glob(
                        lowered.split('*').map(str::to_owned).collect(),
                    ));
                }
                continue;
            }
            t.split(raw);
            for i in 0..t.len() {
                tokens.push(TokenPat::Lit(t.get(i).to_owned()));
            }
        }
        if tokens.is_empty() {
            return false;
        }
        if tokens.iter().all(|t| matches!(t, TokenPat::Lit(_))) {
            let glued: String = tokens
                .iter()
                .filter_map(|t| match t {
                    TokenPat::Lit(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect();
            self.literal.entry(glued).or_insert(class);
        } else {
            self.globs.push(GlobEntry { tokens, class });
        }
        true
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.literal.is_empty() && self.globs.is_empty() && self.exact.is_empty()
    }

    /// The class of the entry matching a run of `tokens`: an exact entry; else the literal
    /// entry whose run ends last, the longest of those (a compound key is named for its
    /// last word: `guardian_phone` is a phone, `beneficiary_id` an id, `payee_name` a
    /// name); else the first glob.
    pub(crate) fn find(&self, tokens: &mut Tokens) -> Option<KeyClass> {
        let n = tokens.len();
        if n == 0 {
            return None;
        }
        if !self.exact.is_empty() {
            let mut scratch = std::mem::take(&mut tokens.scratch);
            scratch.clear();
            for i in 0..n {
                scratch.push_str(tokens.get(i));
            }
            let mut found = self.exact.get(scratch.as_str()).copied();
            // A custom header's `x-` prefix says nothing: `X-SN` is an `sn`, `X-Pin` a `pin`.
            if found.is_none() && n >= 2 && tokens.get(0) == "x" {
                scratch.clear();
                for i in 1..n {
                    scratch.push_str(tokens.get(i));
                }
                found = self.exact.get(scratch.as_str()).copied();
            }
            tokens.scratch = scratch;
            if found.is_some() {
                return found;
            }
        }
        if !self.literal.is_empty() {
            let mut scratch = std::mem::take(&mut tokens.scratch);
            // (end, start, class) of the best run so far: the largest end, then the
            // smallest start.
            let mut best: Option<(usize, usize, KeyClass)> = None;
            for i in 0..n {
                scratch.clear();
                for j in i..n {
                    scratch.push_str(tokens.get(j));
                    if let Some(class) = self.literal.get(scratch.as_str()) {
                        if best.is_none_or(|(end, _, _)| j > end) {
                            best = Some((j, i, *class));
                        }
                    }
                }
            }
            tokens.scratch = scratch;
            if let Some((_, _, class)) = best {
                return Some(class);
            }
        }
        for glob in &self.globs {
            for start in 0..n {
                if match_tokens(&glob.tokens, tokens, start) {
                    return Some(glob.class);
                }
            }
        }
        None
    }
}

/// Whether `pats` matches a run of tokens beginning at `start` (the run may end anywhere).
fn match_tokens(pats: &[TokenPat], tokens: &Tokens, start: usize) -> bool {
    let Some((first, rest)) = pats.split_first() else {
        return true;
    };
    if start >= tokens.len() {
        return false;
    }
    match first {
        TokenPat::Lit(lit) => tokens.get(start) == lit && match_tokens(rest, tokens, start + 1),
        TokenPat::Glob(parts) => {
            glob_token(parts, tokens.get(start)) && match_tokens(rest, tokens, start + 1)
        }
        TokenPat::AnyTokens => {
            (start + 1..=tokens.len()).any(|next| match_tokens(rest, tokens, next))
        }
    }
}

/// `parts` are the pieces of a token split at `*`: `pat*ent` → `["pat", "ent"]`.
fn glob_token(parts: &[String], token: &str) -> bool {
    let Some((first, rest)) = parts.split_first() else {
        return true;
    };
    let Some(mut remaining) = token.strip_prefix(first.as_str()) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return remaining.is_empty();
    };
    for part in middle {
        match remaining.find(part.as_str()) {
            Some(pos) => remaining = &remaining[pos + part.len()..],
            None => return false,
        }
    }
    remaining.ends_with(last.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(key: &str) -> Vec<String> {
        let mut t = Tokens::default();
        t.split(key);
        (0..t.len()).map(|i| t.get(i).to_owned()).collect()
    }

    fn matcher(entries: &[&str]) -> KeyMatcher {
        let mut m = KeyMatcher::default();
        for e in entries {
            assert!(m.add(e, KeyClass::Secret));
        }
        m
    }

    fn hits(m: &KeyMatcher, key: &str) -> bool {
        let mut t = Tokens::default();
        t.split(key);
        m.find(&mut t).is_some()
    }

    #[test]
    fn splits_keys_into_words() {
        assert_eq!(tokens("patientEmail"), ["patient", "email"]);
        assert_eq!(tokens("X-Patient-Phone"), ["x", "patient", "phone"]);
        assert_eq!(tokens("HTTPHeader"), ["http", "header"]);
        assert_eq!(
            tokens("sentry.message.parameter.0"),
            ["sentry", "message", "parameter", "0"]
        );
        assert_eq!(tokens("first name"), ["first", "name"]);
        assert_eq!(tokens("__file__"), ["file"]);
    }

    #[test]
    fn whole_key_entries_take_a_custom_header_prefix() {
        let m = matcher(&["=sn", "=pin"]);
        assert!(hits(&m, "sn"));
        assert!(hits(&m, "X-SN"));
        assert!(hits(&m, "x-pin"));
        assert!(!hits(&m, "x-sn-count"));
        assert!(!hits(&m, "serial-sn"));
        assert!(!hits(&m, "x"));
    }

    #[test]
    fn whole_words_only() {
        let m = matcher(&["auth", "cc", "api_key", "session"]);
        assert!(hits(&m, "auth"));
        assert!(hits(&m, "X-Auth-Token"));
        assert!(!hits(&m, "author"));
        assert!(!hits(&m, "accept"));
        assert!(hits(&m, "cc"));
        assert!(hits(&m, "apiKey"));
        assert!(hits(&m, "apikey"));
        assert!(hits(&m, "x-api-key"));
        assert!(!hits(&m, "sessions"));
    }

    #[test]
    fn a_compound_key_is_named_for_its_last_matching_word() {
        let mut m = KeyMatcher::default();
        m.add("guardian", KeyClass::Name);
        m.add("phone", KeyClass::Phone);
        m.add("beneficiary", KeyClass::Name);
        m.add("beneficiary_id", KeyClass::Insurance);
        let class = |key: &str| {
            let mut t = Tokens::default();
            t.split(key);
            m.find(&mut t)
        };
        assert_eq!(class("guardian_phone"), Some(KeyClass::Phone));
        assert_eq!(class("guardianName"), Some(KeyClass::Name));
        assert_eq!(class("beneficiary_id"), Some(KeyClass::Insurance));
        assert_eq!(class("beneficiaryId"), Some(KeyClass::Insurance));
        assert_eq!(class("primary_beneficiary"), Some(KeyClass::Name));
        assert_eq!(class("guardian_id"), Some(KeyClass::Name));
        assert_eq!(class("order"), None);
    }

    #[test]
    fn globs() {
        let m = matcher(&["*_token", "x-*-key", "patient*"]);
        assert!(hits(&m, "refresh_token"));
        assert!(hits(&m, "csrfToken"));
        assert!(!hits(&m, "token"));
        assert!(hits(&m, "x-goog-api-key"));
        assert!(hits(&m, "X-Custom-Key"));
        assert!(!hits(&m, "x-key"));
        assert!(hits(&m, "patients"));
        assert!(hits(&m, "patientName"));
        assert!(hits(&m, "patientname"));
        assert!(!hits(&m, "impatient"));
    }
}
