//! The built-in value detectors, in priority order (on identical spans the earlier wins).
//!
//! Patterns are written with `\d` and `\b` for readability; [`super::asciify`] turns them
//! into ASCII classes and ASCII word boundaries before compiling.

use super::clinical::Clinical;
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
    /// Words that give the context only as the key the value sits under.
    pub(crate) key_words: &'static [&'static str],
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
impl Builtin {
    /// The pattern to compile, with its word lists written out ([`super::address`]).
    pub(crate) fn source(&self) -> std::borrow::Cow<'static, str> {
        super::address::expand(self.pattern)
    }
}

const fn default_strength(check: Check) -> Strength {
    match check {
        Check::Validator(v) if v.is_checksum() => Strength::Checksum,
        Check::Validator(_) | Check::Mac | Check::HexId | Check::BirthDate => Strength::Shaped,
        Check::SecretValue | Check::RandomToken | Check::PasswordLike => Strength::Container,
        Check::HasDigit
        | Check::PlateLike
        | Check::PathId
        | Check::RoleName
        | Check::WrittenName
        | Check::LowerName
        | Check::HomeUser
        | Check::GivenNameFirst
        | Check::AccountNumber
        | Check::AccountNotRouting
        | Check::Clinical(_) => Strength::Context,
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
        key_words: &[],
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

const fn with_key_words(mut b: Builtin, words: &'static [&'static str]) -> Builtin {
    b.key_words = words;
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

/// Words before a bare hardware address.
const MAC_WORDS: &[&str] = &[
    "mac",
    "bssid",
    "hwaddr",
    "hw addr",
    "hw_addr",
    "hw-addr",
    "hardware address",
    "ethernet",
    "wifi",
    "wi-fi",
    "bluetooth",
];
const SSN_WORDS: &[&str] = &[
    "tin:",
    "tin ",
    "tin#",
    "tin=",
    "itin",
    "taxpayer",
    "tax id",
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

/// The start of a street address: house number, optional directional, the street's name
/// words and the space before its suffix.
macro_rules! addr_head {
    () => {
        r"\b\d{1,6}(?:-\d{1,5})?[A-Za-z]?(?:[ \t]+(?:[NS][EW]\b|[NSEW]\.?|North|South|East|West|NORTH|SOUTH|EAST|WEST))?(?:[ \t]+(?:[A-Z][A-Za-z0-9'-]*|\d{1,3}(?:st|nd|rd|th|ST|ND|RD|TH))){1,4}[ \t]+"
    };
}

/// A directional after the suffix (`NW`).
macro_rules! addr_dir {
    () => {
        r"(?:[ \t]+(?:NW|NE|SW|SE|N|S|E|W)\b\.?)"
    };
}

/// A secondary unit: a USPS designator and its number (`Apt 4B`, `Ste. 200`), one that
/// stands alone (`Rear`), `# 3`, or an ordinal floor (`Fifth Floor`). A designator's
/// number has a digit or is one or two letters (`Apt B`), so `Unit Tests` is no unit.
macro_rules! addr_unit {
    () => {
        r"(?:,?[ \t]+(?:(?:{UNIT})\b\.?[ \t]*#?[ \t]*(?:[A-Za-z]{0,3}-?\d[A-Za-z0-9-]{0,6}|[A-Za-z]{1,2})\b|(?:{UNIT_ALONE})\b\.?|#[ \t]*[A-Za-z0-9-]{1,8}\b|(?:\d{1,3}(?:st|nd|rd|th)|First|Second|Third|Fourth|Fifth|Sixth|Seventh|Eighth|Ninth|Tenth)[ \t]+(?:Floor|FLOOR)\b))"
    };
}

/// `, City, ST 12345-6789` (the ZIP code optional; the commas too when there is one).
macro_rules! addr_city {
    () => {
        r"(?:,[ \t]*[A-Z][A-Za-z.'-]+(?:[ \t]+[A-Z][A-Za-z.'-]+){0,2},?[ \t]+(?:{STATE})\b(?:[ \t]+\d{5}(?:-\d{4})?\b)?|[ \t]+[A-Z][A-Za-z.'-]+(?:[ \t]+[A-Z][A-Za-z.'-]+){0,2},?[ \t]+(?:{STATE})[ \t]+\d{5}(?:-\d{4})?\b)"
    };
}

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
    // Known vendor prefixes, each with the length and alphabet of its body: Google OAuth
    // access (`ya29.`) and refresh (`1//0`) tokens and API keys (`AIza`), GitLab (`glpat-`
    // and its kin), Slack app tokens and webhook paths, Stripe webhook secrets, npm,
    // SendGrid, Twilio, OpenAI, Anthropic, Hugging Face, DigitalOcean, Shopify, Mailgun,
    // Mailchimp, PyPI, Atlassian, Square, Postman, Linear, Sentry, Doppler, Databricks,
    // Grafana, New Relic, HashiCorp Vault, Telegram bots, age keys, Azure storage keys.
    strength(
        det(
            "vendor_token",
            "token",
            concat!(
                r"\bya29\.[0-9A-Za-z_-]{20,}",
                r"|\b1//0[0-9A-Za-z_-]{40,}",
                r"|\bAIza[0-9A-Za-z_-]{35}",
                r"|\bgl(?:pat|dt|rt|ptt|cbt|imt|soat|oas|ft|agent)-[0-9A-Za-z_-]{20,}",
                r"|\bxapp-\d-[A-Z0-9]+-\d+-[a-z0-9]+",
                r"|\bxox[ec]-[A-Za-z0-9-]{20,}",
                r"|\bT[A-Z0-9]{8,12}/B[A-Z0-9]{8,12}/[A-Za-z0-9]{24}\b",
                r"|\bwhsec_[A-Za-z0-9+/=]{24,}",
                r"|\bnpm_[A-Za-z0-9]{36}\b",
                r"|\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}\b",
                r"|\bSK[0-9a-f]{32}\b",
                r"|\bsk-(?:proj-|svcacct-|admin-|ant-(?:api|admin)\d{2}-)?[A-Za-z0-9_-]{32,}",
                r"|\bhf_[A-Za-z]{34}\b",
                r"|\bdo[opr]_v1_[a-f0-9]{64}\b",
                r"|\bshp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}\b",
                r"|\bkey-[0-9a-f]{32}\b",
                r"|\b[0-9a-f]{32}-us\d{1,2}\b",
                r"|\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}",
                r"|\bATATT3[A-Za-z0-9_=-]{100,}",
                r"|\bsq0(?:atp|csp)-[0-9A-Za-z_-]{22,}",
                r"|\bPMAK-[a-f0-9]{24}-[a-f0-9]{34}\b",
                r"|\blin_api_[A-Za-z0-9]{40}\b",
                r"|\bsntry[su]_[A-Za-z0-9+/=_-]{30,}",
                r"|\bdp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,}",
                r"|\bdapi[a-f0-9]{32}\b",
                r"|\bgl(?:c|sa)_[A-Za-z0-9+/=_]{32,}",
                r"|\bNRAK-[A-Z0-9]{27}\b",
                r"|\bhv[sb]\.[A-Za-z0-9_-]{90,}",
                r"|\b\d{8,10}:AA[0-9A-Za-z_-]{33}\b",
                r"|\bAGE-SECRET-KEY-1[0-9A-Z]{58}\b",
                r"|\bAccountKey=[A-Za-z0-9+/]{86}==",
            ),
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
    // A password in prose: quoted after the word (`Password 'x' does not meet policy`,
    // `set_password(user, 'x')`), or a word of letters with digits or signs right after it
    // (`passphrase S@epper465 rejected`). A password's length does not make it safe.
    det(
        "password_text",
        "secret",
        r#"(?i:(?:\b|_)(?:password|passwd|passphrase|passcode))(?:\([^'"`\n)]{0,20}?|[ \t]+(?:(?:is|was|of|for|value)[ \t]+)?)['"`]([^'"`\s]{1,128})['"`]"#,
        Check::SecretValue,
        Tier::Secret,
    ),
    det(
        "password_text",
        "secret",
        r#"(?i:\b(?:password|passwd|passphrase|passcode))[ \t]+([^\s'"`]{6,128})"#,
        Check::PasswordLike,
        Tier::Secret,
    ),
    // A random-looking string after a secret's context word, in prose as well as in
    // `key=value` (`auth key 8f3Kd9sLq2Wm7Zx1Vb6Nc4Hj`, `Invalid API key provided: …`,
    // `session 7c373a13-…`): up to two lower-case words may stand between them. The
    // candidate must look random ([`validate::random_token`]), not like an identifier
    // (`cache_manager_registry_v2`) or a version.
    strength(
        det(
            "context_token",
            "token",
            r#"(?i:\b(?:tokens?|bearer|secrets?|api[_ -]?keys?|apikeys?|access[_ -]?keys?|keys?|auth|authorization|passphrase|credentials?|signature|session(?:[_ -]?id)?|sid)\b)(?:[ \t]*[:=#][ \t]*|[ \t]+)(?:[a-z]{1,12}(?:[ \t]*[:=#])?[ \t]+){0,2}["'`]?([A-Za-z0-9+/=_~-][A-Za-z0-9+/=_.~-]{14,510}[A-Za-z0-9+/=_~-])"#,
            Check::RandomToken,
            Tier::Secret,
        ),
        Strength::Container,
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
            // ISO and numeric (`1975-06-08`, `06/08/1975`, `6/8/75`, `08.06.1975`), a
            // date serialised as midnight (`1975-06-08T00:00:00.000Z`),
            // compact (`19750608`), month first (`Jun 8, 1975`, `Jul 11 1957`,
            // `November 22, 1970`) and day first (`08-Jun-1975`, `8 Jun 1975`,
            // `8th of June, 1975`).
            r"(?i)\b(?:\d{4}-\d{1,2}-\d{1,2}T00:00:00(?:\.0{1,9})?(?:Z|[+-]00:?00)?|\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.](?:\d{4}|\d{2})|\d{8}|(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?[-/ \t]+\d{1,2}(?:st|nd|rd|th)?,?[-/ \t]+\d{4}|\d{1,2}(?:st|nd|rd|th)?(?:[ \t]+of)?[-/. \t]+(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?,?[-/. \t]+(?:\d{4}|\d{2}))\b",
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
        r"(?:\+1[-. ]?|\b1[-. ])?(?:\(\d{3}\)[-. ]?|\b\d{3}[-. ])\d{3}[-. ]\d{4}\b|\+1\d{10}\b|\+[2-9]\d{0,2}(?:[-. ]?\d){6,13}\b|\b00[1-9]\d{0,2}[-. ]\d(?:[-. ]?\d){5,12}\b",
        Check::Validator(V::Phone),
        Tier::Phi,
    )),
    // A form's or an API's recipient (`To=4155550123`, Twilio's `From`): the key alone.
    isolated(with_key_words(
        with_context(
            det(
                "phone",
                "phone",
                r"\b[2-9]\d{9}\b",
                Check::Validator(V::Phone),
                Tier::Phi,
            ),
            PHONE_WORDS,
            16,
        ),
        &["to", "from", "recipient", "msisdn", "callee", "caller"],
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
    // Cisco's dotted form (`f4d4.7163.2907`), and the bare twelve digits after a word
    // that says what they are (`BSSID 3c51eb0bfb13`): alone, twelve hex digits are as
    // often a short commit or a container id.
    det(
        "mac",
        "mac",
        r"(?i)\b[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}\b",
        Check::HexId,
        Tier::Phi,
    ),
    with_context(
        det(
            "mac",
            "mac",
            r"(?i)\b[0-9a-f]{12}\b",
            Check::HexId,
            Tier::Phi,
        ),
        MAC_WORDS,
        32,
    ),
    det(
        "mrn",
        "mrn",
        r"(?i)\b(?:mrn|medical[ _-]?record(?:[ _-]?(?:number|no|num|id))?|chart[ _-]?(?:number|no|id)|patient[ _-]?(?:id|number|no))\.?[ \t]*(?:#|:|=|is)?[ \t]*#?[ \t]*([a-z]{0,4}-?\d[a-z0-9-]{2,19})\b",
        Check::HasDigit,
        Tier::Phi,
    ),
    // Vehicle identifiers (Safe Harbor L) anywhere: the check digit carries it. Driver's
    // licences (Safe Harbor K) after their context words, in the states' shapes (one or two
    // letters and digits, or digits alone; 5–15 characters with a digit).
    det(
        "vin",
        "vin",
        r"(?i)\b[A-HJ-NPR-Z0-9]{17}\b",
        Check::Validator(V::Vin),
        Tier::Phi,
    ),
    det(
        "drivers_license",
        "license",
        r"(?:(?i:\bdriver'?s?[ _-]?(?:licen[cs]e|lic))|\bDLN?\b)[ \t]*(?i:#|no\.?|number|num)?[ \t]*[:=#]?[ \t]*((?i:[a-z]{0,2})[ -]?\d[\d -]{3,13}\d|(?i:[a-z])\d{3}-\d{4}-\d{4}(?:-\d{2})?)\b",
        Check::HasDigit,
        Tier::Phi,
    ),
    // Professional and state licences after their words (`medical license G12345`,
    // `RN license # RN-1234567`, `state license: A123456`, `lic #MD123456`): a word of
    // letters then digits, or digits alone, 5–16 characters. `licensed under MIT` and
    // `Apache License 2.0` carry no such value.
    det(
        "license_number",
        "license",
        r"(?i)(?:\blicen[cs](?:e|ure)|\blic\b)[ \t]*(?:#|no\.?|number|num|nbr|id)?[ \t]*[:=#]?[ \t]*#?[ \t]*((?:[a-z]{1,3}[ -]?)?\d(?:[ -]?\d){4,15})\b",
        Check::HasDigit,
        Tier::Phi,
    ),
    // Licence plates after their words (`plate 7ABC123`, `license plate ABC-1234`,
    // `tag number GX4-R123`): upper-case letters and digits with a digit, 4–8 of them.
    det(
        "license_plate",
        "plate",
        r"(?:(?i:\bplate)(?i:[ _-]?(?:number|no\.?|num|#))?|(?i:\btag)(?i:[ _-]?(?:number|no\.?|num|#)))[ \t]*[:=#]?[ \t]*\b([A-Z0-9]{1,4}[ -]?[A-Z0-9]{1,5})\b",
        Check::PlateLike,
        Tier::Phi,
    ),
    // Device serial numbers, IMEIs, UDIDs and UDIs after their words (`device serial
    // C02XK0ABJGH5`, `S/N: SN-44821-X`, `IMEI 35 209900 176148 1`, `UDI (01)…(21)…`): a
    // token with a digit, 6–64 characters, or digit groups, or GS1 parenthesised fields.
    det(
        "device_serial",
        "serial",
        r"(?:(?i:\bserial)(?i:[ _-]?(?:number|no\.?|num|nbr|#))?|\bS/N\b|(?i:\bs/n)|\bSN\b|(?i:\bimei|\budid|\budi|\bdevice[ _-]?id))[ \t]*[:=#]?[ \t]*#?[ \t]*((?:\(\d{2,4}\)[A-Za-z0-9-]{1,30}){2,6}|\d{2}(?: \d{4,8}){2,3}(?: \d)?|[A-Za-z0-9][A-Za-z0-9-]{4,62}[A-Za-z0-9])",
        Check::HasDigit,
        Tier::Phi,
    ),
    // A chart by its number in prose (`Could not load chart 000956294`, `chart #H4399899`,
    // `EHR chart 71-98-3032`): five digits or more, so `chart 2` and a Helm chart's
    // `1.2.3` stay.
    det(
        "mrn",
        "mrn",
        r"(?i)\bchart[ \t]*(?:#|:|no\.?|number)?[ \t]*#?[ \t]*([a-z]{0,3}-?\d[\d-]{4,14}\d)\b",
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
        r"(?i)(?:\b(?:member|mbr|subscriber|beneficiary|insurance|insured|policy|policyholder|medicaid|medicare|(?:health[ _-]?)?plan|coverage)[ _-]?(?:(?:id|identifier|number|nbr|no|num)\b|#)|\b(?:mbi|hicn)\b|\b(?:group|grp)[ _-]?(?:(?:number|nbr|no|num)\b|#)|\bgrp\b|\brx[ _-]?(?:bin|pcn|grp|group|id)\b)\.?[ \t]*(?:#|:|=|is)?[ \t]*#?[ \t]*([a-z0-9][a-z0-9-]{1,24}(?:[ ]\d[a-z0-9-]{2,11}){0,3})\b",
        Check::HasDigit,
        Tier::Phi,
    ),
    // Bank account numbers after their context words (`account number`, `acct #`,
    // `bank account`, `checking account`), and routing numbers after `routing` or `ABA`
    // with the ABA check digit. A bare `account` is not enough: `account 42` is an id.
    det(
        "account_number",
        "account",
        r"(?i)(?:\b(?:bank[ _-]?)?(?:account|acct|a/c)[ _-]?(?:(?:number|nbr|no|num)\b|#)|\bacct\b|\b(?:bank|checking|savings|deposit|dda|ach|payout)[ _-]?(?:account|acct)\b)\.?[ \t]*(?:#|:|=|is)?[ \t]*#?[ \t]*(\d(?:[ -]?\d){3,19})\b",
        Check::AccountNumber,
        Tier::Phi,
    ),
    // After a routing word, a number of another length than a routing number's nine
    // digits is a bank number all the same (`RTN 50753350 rejected`); nine digits must
    // pass the ABA check below.
    det(
        "account_number",
        "account",
        r"(?i)\b(?:routing|aba|rtn)(?:[ _-]?(?:number|nbr|no|num)\b)?\.?[ \t]*(?:#|:|=|is)?[ \t]*#?[ \t]*(\d(?:[ -]?\d){3,19})\b",
        Check::AccountNotRouting,
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
    // Street addresses: a house number (`1600`, `221B`, `123-45`), an optional
    // directional, one to four capitalised words or ordinals (`Baker`, `W 42nd`) and a
    // USPS street suffix, then optionally a directional, a unit (`Apt 4B`, `Suite 200`,
    // `# 3`, `Fifth Floor`) and a city with its state and ZIP code. The suffix lists are in
    // `address.rs`.
    det(
        "address",
        "address",
        concat!(
            addr_head!(),
            r"(?:{STREET})\b\.?",
            addr_dir!(),
            "?",
            addr_unit!(),
            "?",
            addr_city!(),
            "?"
        ),
        Check::None,
        Tier::Phi,
    ),
    // Suffixes that are everyday words (`Park`, `Run`, `Point`) need a directional, a
    // unit or a city and state after them.
    det(
        "address",
        "address",
        concat!(
            addr_head!(),
            r"(?:{STREET_WORD})\b\.?(?:",
            addr_dir!(),
            addr_unit!(),
            "?",
            addr_city!(),
            "?|",
            addr_unit!(),
            addr_city!(),
            "?|",
            addr_city!(),
            ")"
        ),
        Check::None,
        Tier::Phi,
    ),
    det(
        "address",
        "address",
        concat!(
            r"\b(?:(?:P\.?[ \t]?O\.?|Post[ \t]+Office|POST[ \t]+OFFICE)[ \t]*(?:Box|BOX)|POB)[ \t]+\d{1,6}\b",
            addr_city!(),
            "?"
        ),
        Check::None,
        Tier::Phi,
    ),
    // After words that say an address follows (`lives at`, `ship to:`, `ship_to=`,
    // `deliver to`), a house number and capitalised words are one, whatever the suffix
    // (`1290 Willow Path`, `38051 W Sycamore Cv`), with the city line when it follows.
    strength(
        det(
            "address",
            "address",
            concat!(
                r"(?:(?i:\b(?:lives|living|resides|residing|located)[ \t]+at|\b(?:ship(?:ping)?|deliver(?:y)?|mail(?:ing)?|bill(?:ing)?|send)[ \t_-]?to\b|\b(?:home|mailing|billing|shipping|patient|postal|residential|physical|delivery|service|member|street|permanent|current|previous|new|primary)[ \t_-]?address\b|\baddress[ \t]+(?:is|of)|\b(?:address|addr|street)(?:[ \t_-]?line[ \t_-]?[12])?[ \t]*[:=])[ \t]*[:=]?[ \t]*|\b(?:Address|ADDRESS|Street|STREET)[ \t]+)",
                r"(\d{1,6}[A-Za-z]?(?:[ \t]+(?:[NS][EW]\b|[NSEW]\.?|North|South|East|West|NORTH|SOUTH|EAST|WEST))?(?:[ \t]+[A-Z][A-Za-z'-]*){1,4}",
                addr_unit!(),
                "?",
                addr_city!(),
                r"?(?:(?:\n|\\n)[A-Z][A-Za-z.' -]+,[ \t]*(?:{STATE})[ \t]+\d{5}(?:-\d{4})?)?)\b"
            ),
            Check::None,
            Tier::Phi,
        ),
        Strength::Context,
    ),
    // No suffix (`El Camino Real`, `Broadway`), but the whole line: a house number and
    // capitalised words, then `, City, ST 12345`.
    det(
        "address",
        "address",
        concat!(
            r"\b\d{1,6}(?:-\d{1,5})?[A-Za-z]?(?:[ \t]+(?:[NS][EW]\b|[NSEW]\.?|North|South|East|West|NORTH|SOUTH|EAST|WEST))?(?:[ \t]+[A-Z][A-Za-z'-]*){1,4}",
            r",[ \t]*[A-Z][A-Za-z.'-]+(?:[ \t]+[A-Z][A-Za-z.'-]+){0,2},[ \t]+(?:{STATE})[ \t]+\d{5}(?:-\d{4})?\b"
        ),
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
    // Diagnoses and drugs: dictionary phrases (see `clinical.rs`) right after a clinical
    // context word, never bare (`cold start`, `stroke width`, `on iron` in code stay).
    // A list after one context word goes as one span (`hx of asthma, copd and gerd`).
    strength(
        shrinking(det(
            "condition",
            "condition",
            concat!(
                r"(?i:\b(?:diagnos(?:is|es|ed)|dx|ddx|history[ \t]+of|hx[ \t]+of|h/o|pmh|past[ \t]+medical[ \t]+history|assessment|impression|suffer(?:s|ed|ing)?[ \t]+from|treated[ \t]+for|treatment[ \t]+for|admitted[ \t]+(?:for|with)|present(?:s|ed|ing)?[ \t]+with|complain(?:s|ed|ing)?[ \t]+of|c/o|positive[ \t]+for|conditions?|comorbid(?:it(?:y|ies))?|problem[ \t]+list|new[ \t]+onset|r/o|rul(?:e|ed)[ \t]+out|referr(?:al|ed)[ \t]+for|known|suspected|worsening|symptoms[ \t]+of|signs[ \t]+of|exacerbation[ \t]+of|chief[ \t]+complaint|reason[ \t]+for[ \t]+visit|allerg(?:ic|y|ies)(?:[ \t]+to)?|(?:patient|pt)(?:'s|[ \t]+(?:has|had|with|reports|denies|developed))|[A-TV-Z][0-9][0-9AB](?:\.[0-9A-TV-Z]{1,4})?)\b(?:[ \t]+(?:with|of|as|for)\b)?[ \t]*[:=-]?[ \t]*(?:(?:an?|the|known)[ \t]+)?)",
                r"([A-Za-z][A-Za-z0-9'/-]*(?:[,;]?[ \t]+[A-Za-z0-9][A-Za-z0-9'/-]*(?:\.[0-9]+[A-Za-z%]*)?){0,11})"
            ),
            Check::Clinical(Clinical::Condition),
            Tier::Phi,
        )),
        Strength::Context,
    ),
    strength(
        shrinking(det(
            "medication",
            "medication",
            concat!(
                r"(?i:\b(?:prescribed|prescription(?:[ \t]+for)?|rx|taking|takes|took|started[ \t]+on|restarted[ \t]+on|switched[ \t]+to|continue(?:[ \t]+on)?|discontinu(?:e|ed|ing)|stopp(?:ed|ing)|dispensed|administered|given|increased|decreased|(?:refill|claim|order|prior[ \t]+auth(?:orization)?)(?:[ \t]+request)?[ \t]+for|medications?|meds|dose[ \t]+of|refill(?:[ \t]+(?:for|of))?|allerg(?:ic|y|ies)(?:[ \t]+to)?|(?:patient|pt)[ \t]+(?:is[ \t]+)?on|on)\b(?:[ \t]+(?:with|of|on)\b)?[ \t]*[:=-]?[ \t]*)",
                r"([A-Za-z][A-Za-z0-9'/-]*(?:[,;]?[ \t]+[A-Za-z0-9][A-Za-z0-9'/%-]*(?:\.[0-9]+[A-Za-z%/]*)?){0,11})"
            ),
            Check::Clinical(Clinical::Medication),
            Tier::Phi,
        )),
        Strength::Context,
    ),
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
    // Weak contexts: `name:` (source lines say `name: "Optional[str]" = None`), `results
    // of` / `record for` (`the results of Python objects`) and the people around a patient
    // or an account by role (`Guarantor: Maria Gonzalez`, `emergency contact John Smith`).
    // The name must start with a known given name.
    det(
        "person_name",
        "name",
        r#"(?:\b(?i:name)[ \t]*[:=][ \t]*["']?|\b(?i:chart|record|appointment|prescription|referral|admission|discharge|visit|results)[ \t]+(?i:for|of)[ \t]+|\b(?i:account[ \t]+holder|beneficiary|payee|guarantor|subscriber|guardian|caregiver|next[ \t]+of[ \t]+kin|emergency[ \t]+contact|spouse|insured|policy[ \t]?holder|card[ \t]?holder|responsible[ \t]+party)(?:[ \t]+(?i:name|is|was))?[ \t]*[:=,-]?[ \t]*["']?)([A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)?(?:[ \t]+[A-Z]\.)?(?:[ \t]+[A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)?){0,2})\b"#,
        Check::GivenNameFirst,
        Tier::Phi,
    ),
    // The same contexts with the name in capitals, `Last, First`, or letters beyond
    // ASCII (`emergency contact JORDAN JACKSON`, `account holder Smirnov, Omar`,
    // `Dr. ÖZTÜRK, ANASTASIA`), checked against the name lists word by word.
    strength(
        shrinking(det(
            "person_name",
            "name",
            concat!(
                r#"(?:\b(?i:account[ \t]+holder|beneficiary|payee|guarantor|subscriber|guardian|caregiver|next[ \t]+of[ \t]+kin|emergency[ \t]+contact|spouse|insured|policy[ \t]?holder|card[ \t]?holder|responsible[ \t]+party|dependent|patient|recipient|applicant)(?:[ \t]+(?i:name|is|was))?[ \t]*[:=,-]?[ \t]*["']?|\b(?i:chart|record|appointment|prescription|referral|admission|discharge|visit|results)[ \t]+(?i:for|of)[ \t]+|\b(?:Pt|PT|Mr|MR|Mrs|MRS|Ms|Miss|MISS|Mx|MX|Dr|DR)\.?[ \t]+|\bDear[ \t]+)"#,
                r"(\p{Lu}[\p{L}]*(?:['-]\p{Lu}?\p{L}+)?(?:,?[ \t]+(?:\p{Lu}\.[ \t]+)?\p{Lu}[\p{L}]*(?:['-]\p{Lu}?\p{L}+)?){1,2})\b"
            ),
            Check::RoleName,
            Tier::Phi,
        )),
        Strength::Context,
    ),
    // In lower case (`cardholder ryan nguyen`, `chart for christina yamada`): a known given
    // name and a known surname, as lower-case words are mostly words.
    strength(
        det(
            "person_name",
            "name",
            r#"(?:\b(?i:account[ \t]+holder|beneficiary|payee|guarantor|subscriber|guardian|caregiver|next[ \t]+of[ \t]+kin|emergency[ \t]+contact|spouse|insured|policy[ \t]?holder|card[ \t]?holder|responsible[ \t]+party|dependent|patient|recipient|applicant)(?:[ \t]+(?i:name|is|was))?[ \t]*[:=,-]?[ \t]*["']?|\b(?i:chart|record|appointment|prescription|referral|admission|discharge|visit|results)[ \t]+(?i:for|of)[ \t]+|\b(?i:dear|name)[ \t]*[:=]?[ \t]+)(\p{Ll}[\p{Ll}'-]+[ \t]+\p{Ll}[\p{Ll}'-]+)\b"#,
            Check::LowerName,
            Tier::Phi,
        ),
        Strength::Context,
    ),
    shrinking(det(
        "person_name",
        "name",
        r#"\b(?i:name)[ \t]*[:=][ \t]*["']?(\p{Lu}[\p{L}]*(?:['-]\p{Lu}?\p{L}+)?(?:,?[ \t]+(?:\p{Lu}\.[ \t]+)?\p{Lu}[\p{L}]*(?:['-]\p{Lu}?\p{L}+)?){1,2})\b"#,
        Check::WrittenName,
        Tier::Phi,
    )),
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
        r#"(?i)/(?:by[-_])?(?:patients?|members?|applicants?|eligibility|subscribers?|persons?|people|mrns?|beneficiar(?:y|ies)|users?|customers?|accounts?|vehicles?|vins?|plates?|devices?|serials?)/[^/?#\s"'<>\[][^/?#\s"'<>]*"#,
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
