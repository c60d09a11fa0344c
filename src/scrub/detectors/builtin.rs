//! The built-in value detectors, in priority order (on identical spans the earlier wins).
//!
//! Patterns are written with `\d` and `\b` for readability; [`super::asciify`] turns them
//! into ASCII classes and ASCII word boundaries before compiling.

use super::validate::Validator;
use super::{Check, HitKind, Strength};
use crate::scrub::Method;

/// Which profiles enable a detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tier {
    /// Secrets: both profiles.
    Secret,
    /// PHI/PII: `hipaa` only.
    Phi,
    /// Off unless enabled in `[scrub.detectors.<rule>]` (or by a dedicated switch).
    Optional,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Builtin {
    pub(crate) rule: &'static str,
    pub(crate) label: &'static str,
    pub(crate) method: Method,
    pub(crate) pattern: &'static str,
    pub(crate) check: Check,
    pub(crate) context: Option<(&'static [&'static str], usize)>,
    pub(crate) shrink: bool,
    pub(crate) isolated: bool,
    /// Only the match's last path segment (after its last `/` or `\`) is the value: what a
    /// capture group would say, found without the capture engine.
    pub(crate) last_segment: bool,
    pub(crate) kind: HitKind,
    pub(crate) tier: Tier,
    /// How much a hit says when it overlaps another detector's ([`Strength`]).
    pub(crate) strength: Strength,
}

/// What a check says about a hit, unless the detector says otherwise ([`strength`]).
const fn default_strength(check: Check) -> Strength {
    match check {
        Check::Validator(v) if v.is_checksum() => Strength::Checksum,
        Check::Validator(_) | Check::Mac | Check::BirthDate => Strength::Shaped,
        Check::SecretValue => Strength::Container,
        Check::HasDigit
        | Check::PathId
        | Check::HomeUser
        | Check::GivenNameFirst
        | Check::AccountNumber => Strength::Context,
        Check::None | Check::FullName => Strength::Weak,
    }
}

const fn det(
    rule: &'static str,
    label: &'static str,
    pattern: &'static str,
    check: Check,
    tier: Tier,
) -> Builtin {
    Builtin {
        rule,
        label,
        method: Method::Replace,
        pattern,
        check,
        context: None,
        shrink: false,
        isolated: false,
        last_segment: false,
        kind: HitKind::Redact,
        tier,
        strength: default_strength(check),
    }
}

const fn strength(mut b: Builtin, strength: Strength) -> Builtin {
    b.strength = strength;
    b
}

const fn with_context(mut b: Builtin, words: &'static [&'static str], window: usize) -> Builtin {
    b.context = Some((words, window));
    b
}

const fn shrinking(mut b: Builtin) -> Builtin {
    b.shrink = true;
    b
}

const fn last_segment(mut b: Builtin) -> Builtin {
    b.last_segment = true;
    b
}

const fn isolated(mut b: Builtin) -> Builtin {
    b.isolated = true;
    b
}

const SSN_WORDS: &[&str] = &[
    "ssn",
    "social security",
    "ss#",
    "ss no",
    "soc sec",
    "socsec",
];
/// Birth context: `dob`, `d.o.b.`, `date of birth`, `date_of_birth`, `birthdate`,
/// `birth date`, `birthday`, `born`, `b.` (`Jane Roe (b. 8 Jun 1975)`), `bday`, `b-day`.
const DOB_WORDS: &[&str] = &["dob", "d.o.b", "born", "birth", "bday", "b-day", "b."];
const PHONE_WORDS: &[&str] = &[
    "phone", "tel", "mobile", "cell", "fax", "call", "sms", "contact",
];

use Validator as V;

/// Every built-in detector.
pub(crate) const BUILTINS: &[Builtin] = &[
    // URLs first: their parts are scrubbed structurally.
    Builtin {
        kind: HitKind::Url,
        strength: Strength::Container,
        ..det(
            "url",
            "url",
            r"(?i)\b[a-z][a-z0-9+.-]{1,20}://[^\s<>`]+",
            Check::None,
            Tier::Secret,
        )
    },
    strength(
        det(
            "private_key",
            "private-key",
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?s:.)*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\z)",
            Check::None,
            Tier::Secret,
        ),
        Strength::Container,
    ),
    strength(
        det(
            "jwt",
            "jwt",
            r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",
            Check::None,
            Tier::Secret,
        ),
        Strength::Container,
    ),
    det(
        "bearer",
        "token",
        r"(?i)\bbearer[ \t]+([a-z0-9._~+/=-]{8,})",
        Check::SecretValue,
        Tier::Secret,
    ),
    strength(
        det(
            "aws_key",
            "aws-key",
            r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|APKA)[A-Z0-9]{16}\b",
            Check::None,
            Tier::Secret,
        ),
        Strength::Container,
    ),
    strength(
        det(
            "github_token",
            "github-token",
            r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b",
            Check::None,
            Tier::Secret,
        ),
        Strength::Container,
    ),
    strength(
        det(
            "slack_token",
            "slack-token",
            r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
            Check::None,
            Tier::Secret,
        ),
        Strength::Container,
    ),
    strength(
        det(
            "stripe_key",
            "stripe-key",
            r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}",
            Check::None,
            Tier::Secret,
        ),
        Strength::Container,
    ),
    det(
        "secret_pair",
        "secret",
        r#"(?i)\b(?:[a-z0-9]+[_.-])*(?:password|passwd|pwd|passphrase|secret|token|api[_-]?key|apikey|access[_-]?key|secret[_-]?key|private[_-]?key|client[_-]?secret|authorization|credentials?)["']?[ \t]*(?:=|:)[ \t]*(?:(?:bearer|basic|digest|token)[ \t]+)?(?:"([^"\n]+)"|'([^'\n]+)'|([^\s"'&,;)]+))"#,
        Check::SecretValue,
        Tier::Secret,
    ),
    isolated(shrinking(det(
        "card",
        "card",
        r"\b\d(?:[ -]?\d){12,18}\b",
        Check::Validator(V::Card),
        Tier::Phi,
    ))),
    shrinking(det(
        "iban",
        "iban",
        r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b",
        Check::Validator(V::Iban),
        Tier::Phi,
    )),
    isolated(det(
        "ssn",
        "ssn",
        r"\b\d{3}-\d{2}-\d{4}\b|\b\d{3} \d{2} \d{4}\b",
        Check::Validator(V::Ssn),
        Tier::Phi,
    )),
    isolated(with_context(
        det(
            "ssn",
            "ssn",
            r"\b\d{9}\b",
            Check::Validator(V::Ssn),
            Tier::Phi,
        ),
        SSN_WORDS,
        24,
    )),
    strength(
        det(
            "email",
            "email",
            r"(?i)\b[a-z0-9][a-z0-9._%+-]*(?:@|%40)[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*\.[a-z]{2,24}\b",
            Check::None,
            Tier::Phi,
        ),
        Strength::Shaped,
    ),
    with_context(
        det(
            "dob",
            "dob",
            // ISO and numeric (`1975-06-08`, `06/08/1975`, `6/8/75`, `08.06.1975`),
            // compact (`19750608`), month first (`Jun 8, 1975`, `Jul 11 1957`,
            // `November 22, 1970`) and day first (`08-Jun-1975`, `8 Jun 1975`,
            // `8th of June, 1975`).
            r"(?i)\b(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.](?:\d{4}|\d{2})|\d{8}|(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?[-/ \t]+\d{1,2}(?:st|nd|rd|th)?,?[-/ \t]+\d{4}|\d{1,2}(?:st|nd|rd|th)?(?:[ \t]+of)?[-/. \t]+(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?,?[-/. \t]+(?:\d{4}|\d{2}))\b",
            Check::BirthDate,
            Tier::Phi,
        ),
        DOB_WORDS,
        40,
    ),
    isolated(det(
        "us_date",
        "dob",
        r"\b(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01])/(?:19|20)\d{2}\b",
        Check::Validator(V::Date),
        Tier::Optional,
    )),
    isolated(det(
        "phone",
        "phone",
        r"(?:\+1[-. ]?|\b1[-. ])?(?:\(\d{3}\)[-. ]?|\b\d{3}[-. ])\d{3}[-. ]\d{4}\b|\+1\d{10}\b|\+[2-9]\d{0,2}(?:[-. ]?\d){6,13}\b",
        Check::Validator(V::Phone),
        Tier::Phi,
    )),
    isolated(with_context(
        det(
            "phone",
            "phone",
            r"\b[2-9]\d{9}\b",
            Check::Validator(V::Phone),
            Tier::Phi,
        ),
        PHONE_WORDS,
        16,
    )),
    det(
        "ipv6",
        "ip",
        r"(?i)(?:[0-9a-f]{0,4}:){2,6}(?:\d{1,3}\.){3}\d{1,3}|(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}(?:%[0-9a-z._-]+)?",
        Check::Validator(V::Ipv6),
        Tier::Phi,
    ),
    det(
        "ipv4",
        "ip",
        r"\b\d{1,3}(?:\.\d{1,3}){3}\b",
        Check::Validator(V::Ipv4),
        Tier::Phi,
    ),
    det(
        "mac",
        "mac",
        r"(?i)\b[0-9a-f]{2}(?:[:-][0-9a-f]{2}){5}\b",
        Check::Mac,
        Tier::Phi,
    ),
    det(
        "mrn",
        "mrn",
        r"(?i)\b(?:mrn|medical[ _-]?record(?:[ _-]?(?:number|no|num|id))?|chart[ _-]?(?:number|no|id)|patient[ _-]?(?:id|number|no))\.?[ \t]*(?:#|:|=|is)?[ \t]*#?[ \t]*([a-z]{0,4}-?\d[a-z0-9-]{2,19})\b",
        Check::HasDigit,
        Tier::Phi,
    ),
    // Member, subscriber, policy, group and plan numbers after their context words, in
    // every common shape: `XKJ123456789`, `W123456789`, `123456789-01`, `GRP-00123`,
    // `ABC 1234 5678` (groups after a space start with a digit, so the next word is not
    // taken). `group id` alone is a Unix or Kafka group; `grp` is only insurance.
    det(
        "insurance_id",
        "member-id",
        r"(?i)(?:\b(?:member|mbr|subscriber|beneficiary|insurance|insured|policy|policyholder|medicaid|medicare|(?:health[ _-]?)?plan|coverage)[ _-]?(?:(?:id|identifier|number|nbr|no|num)\b|#)|\b(?:group|grp)[ _-]?(?:(?:number|nbr|no|num)\b|#)|\bgrp\b|\brx[ _-]?(?:bin|pcn|grp|group|id)\b)\.?[ \t]*(?:#|:|=|is)?[ \t]*#?[ \t]*([a-z0-9][a-z0-9-]{1,24}(?:[ ]\d[a-z0-9-]{2,11}){0,3})\b",
        Check::HasDigit,
        Tier::Phi,
    ),
    // Bank account numbers after their context words (`account number`, `acct #`,
    // `bank account`, `checking account`), and routing numbers after `routing` or `ABA`
    // with the ABA check digit. A bare `account` is not enough: `account 42` is an id.
    det(
        "account_number",
        "account",
        r"(?i)(?:\b(?:bank[ _-]?)?(?:account|acct|a/c)[ _-]?(?:(?:number|nbr|no|num)\b|#)|\bacct\b|\b(?:bank|checking|savings|deposit)[ _-]?(?:account|acct)\b)\.?[ \t]*(?:#|:|=|is)?[ \t]*#?[ \t]*(\d(?:[ -]?\d){3,19})\b",
        Check::AccountNumber,
        Tier::Phi,
    ),
    det(
        "routing_number",
        "account",
        r"(?i)\b(?:routing|aba|rtn|transit)(?:[ _-]?(?:number|nbr|no|num|routing|transit)\b|[ _-]?#)*\.?[ \t]*(?:#|:|=|is)?[ \t]*#?[ \t]*(\d{9})\b",
        Check::Validator(V::AbaRouting),
        Tier::Phi,
    ),
    det(
        "npi",
        "npi",
        r"(?i)\bnpi(?:[ \t]*(?:number|no|#|:|=|is))*[ \t]*#?[ \t]*(\d{10})\b",
        Check::Validator(V::Npi),
        Tier::Phi,
    ),
    det(
        "dea",
        "dea",
        r"\b[A-Z][A-Z9]\d{7}\b",
        Check::Validator(V::Dea),
        Tier::Phi,
    ),
    det(
        "address",
        "address",
        r"\b\d{1,6}(?:[ \t]+(?:[NSEW]\.?|North|South|East|West))?(?:[ \t]+[A-Z][A-Za-z0-9'-]*){1,4}[ \t]+(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Ter|Circle|Cir|Parkway|Pkwy|Highway|Hwy|Square|Sq|Trail|Trl)\b\.?(?:[ \t]+(?:NW|NE|SW|SE|N|S|E|W)\b)?(?:,?[ \t]+(?:Apt|Apartment|Suite|Ste|Unit|#)\.?[ \t]*#?[A-Za-z0-9-]+)?",
        Check::None,
        Tier::Phi,
    ),
    isolated(det(
        "zip4",
        "zip",
        r"\b\d{5}-\d{4}\b",
        Check::None,
        Tier::Phi,
    )),
    // Honorifics are written `Dr`/`DR`, not `dr`: lower case they are units and words
    // (`15.6 ms. Use 50 ms`, `12 pt Arial`), and `MS` in capitals is Microsoft (`MS Office`).
    strength(
        det(
            "person_name",
            "name",
            r#"(?:\b(?i:patient)|\b(?:Pt|PT|Mr|MR|Mrs|MRS|Ms|Miss|MISS|Mx|MX|Dr|DR))\.?[ \t]+([A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)?(?:[ \t]+[A-Z]\.)?(?:[ \t]+[A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)?){0,2})\b"#,
            Check::None,
            Tier::Phi,
        ),
        Strength::Context,
    ),
    // Weak contexts: `name:` (source lines say `name: "Optional[str]" = None`) and `results
    // of` / `record for` (`the results of Python objects`). The name must start with a known
    // given name.
    det(
        "person_name",
        "name",
        r#"(?:\b(?i:name)[ \t]*[:=][ \t]*["']?|\b(?i:chart|record|appointment|prescription|referral|admission|discharge|visit|results)[ \t]+(?i:for|of)[ \t]+)([A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)?(?:[ \t]+[A-Z]\.)?(?:[ \t]+[A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)?){0,2})\b"#,
        Check::GivenNameFirst,
        Tier::Phi,
    ),
    // After `person_name`, which wins on the same span: a name with no context word.
    isolated(shrinking(det(
        "full_name",
        "name",
        r"\b[A-Z][a-z]+(?:[A-Z][a-z]+)?(?:[ \t]+[A-Z]\.?)?(?:[ \t]+[A-Z][A-Za-z']*[a-z](?:-[A-Z][A-Za-z']*[a-z])?){1,2}\b",
        Check::FullName,
        Tier::Phi,
    ))),
    last_segment(det(
        "home_path",
        "user",
        r#"(?i)(?:/Users/|/home/|\b[a-z]:[\\/]Users[\\/]|\b[a-z]:[\\/]Documents and Settings[\\/])[^/\\\s"'\[\]<>:]+"#,
        Check::HomeUser,
        Tier::Phi,
    )),
    last_segment(det(
        "path_id",
        "id",
        r#"(?i)/(?:patients?|members?|subscribers?|persons?|people|mrns?|beneficiar(?:y|ies)|users?|customers?|accounts?)/[^/?#\s"'<>\[][^/?#\s"'<>]*"#,
        Check::PathId,
        Tier::Phi,
    )),
];

/// Rules that are not text detectors but can be configured the same way.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StructuralRule {
    pub(crate) rule: &'static str,
    pub(crate) label: &'static str,
    pub(crate) method: Method,
    pub(crate) keep_last: usize,
}

const fn rule(rule: &'static str, label: &'static str, method: Method) -> StructuralRule {
    StructuralRule {
        rule,
        label,
        method,
        keep_last: 4,
    }
}

/// The structural rules, a closed set: the walk names a rule by its variant, so a rule it
/// asks for always exists (a misspelt one is a compile error, not a value passed through),
/// and the engine keeps one action per variant, indexed by the variant itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Structural {
    UserId,
    UserEmail,
    UserUsername,
    UserName,
    SessionDid,
    ClientIp,
    ClientMeta,
    UserGeo,
    SqlLiteral,
    UrlPassword,
    Cookie,
    NameEcho,
    Unsettled,
    MetaValue,
}

impl Structural {
    pub(crate) const COUNT: usize = 14;

    /// Every rule, in declaration order: `ALL[r as usize] == r` (checked at compile time
    /// below), so an array indexed by `r as usize` can never drift from the rules.
    pub(crate) const ALL: [Self; Self::COUNT] = [
        Self::UserId,
        Self::UserEmail,
        Self::UserUsername,
        Self::UserName,
        Self::SessionDid,
        Self::ClientIp,
        Self::ClientMeta,
        Self::UserGeo,
        Self::SqlLiteral,
        Self::UrlPassword,
        Self::Cookie,
        Self::NameEcho,
        Self::Unsettled,
        Self::MetaValue,
    ];

    /// Name (as in the config and the audit trail), replacement label and default method.
    pub(crate) const fn spec(self) -> StructuralRule {
        match self {
            Self::UserId => rule("user_id", "user", Method::Hash),
            Self::UserEmail => rule("user_email", "email", Method::Hash),
            Self::UserUsername => rule("user_username", "username", Method::Hash),
            Self::UserName => rule("user_name", "name", Method::Replace),
            Self::SessionDid => rule("session_did", "user", Method::Hash),
            Self::ClientIp => rule("client_ip", "ip", Method::Remove),
            Self::ClientMeta => rule("client_meta", "meta", Method::Remove),
            Self::UserGeo => rule("user_geo", "geo", Method::Remove),
            Self::SqlLiteral => rule("sql_literal", "?", Method::Replace),
            Self::UrlPassword => rule("url_password", "password", Method::Replace),
            Self::Cookie => rule("cookie", "Filtered", Method::Replace),
            Self::NameEcho => rule("name_echo", "name", Method::Replace),
            Self::Unsettled => rule("unsettled", "Filtered", Method::Replace),
            Self::MetaValue => rule("meta_value", "Filtered", Method::Remove),
        }
    }

    pub(crate) const fn name(self) -> &'static str {
        self.spec().rule
    }

    /// Rules that `secrets-only` leaves off: session and user ids are what the SDK sends.
    pub(crate) const fn user_identity(self) -> bool {
        matches!(
            self,
            Self::UserId
                | Self::UserEmail
                | Self::UserUsername
                | Self::UserName
                | Self::SessionDid
                | Self::UserGeo
        )
    }
}

const _: () = {
    let mut i = 0;
    while i < Structural::COUNT {
        assert!(
            Structural::ALL[i] as usize == i,
            "Structural::ALL out of order"
        );
        i += 1;
    }
};
