//! Validators: checksums and range checks that keep detector false positives down. All are
//! linear in the candidate's length and never panic.

use serde::{Deserialize, Serialize};

/// A validator usable by custom `[[scrub.patterns]]` rules too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Validator {
    /// Luhn checksum over the digits.
    Luhn,
    /// A payment card: 13–19 digits, a known brand prefix, one separator style, Luhn.
    Card,
    /// US SSN ranges: area not 000/666/9xx, group not 00, serial not 0000.
    Ssn,
    /// IBAN: country length and mod-97.
    Iban,
    /// NPI: 10 digits, Luhn with the 80840 prefix.
    Npi,
    /// DEA registration number check digit.
    Dea,
    /// NANP or E.164 phone number digit counts.
    Phone,
    /// IPv4 address that is not loopback/unspecified and not part of a longer dotted number.
    Ipv4,
    /// IPv6 address (zones and IPv4-mapped forms allowed), not loopback/unspecified.
    Ipv6,
    /// A plausible calendar date.
    Date,
    /// A US bank routing (ABA) number: 9 digits with the ABA check digit.
    AbaRouting,
    /// A vehicle identification number: 17 characters without I, O or Q, with the North
    /// American check digit in position 9.
    Vin,
}

impl Validator {
    /// Whether the validator checks a check digit or checksum (a strong signal when two
    /// detectors' candidates overlap).
    pub(crate) const fn is_checksum(self) -> bool {
        matches!(
            self,
            Self::Luhn
                | Self::Card
                | Self::Iban
                | Self::Npi
                | Self::Dea
                | Self::AbaRouting
                | Self::Vin
        )
    }
}

fn digits(s: &str) -> Vec<u8> {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect()
}

pub(crate) fn luhn_digits(d: &[u8]) -> bool {
    if d.is_empty() {
        return false;
    }
    let mut sum = 0u32;
    for (i, &x) in d.iter().rev().enumerate() {
        let mut v = u32::from(x);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum % 10 == 0
}

pub(crate) fn luhn(s: &str) -> bool {
    luhn_digits(&digits(s))
}

/// A card number: digits with at most one kind of separator (space or dash).
pub(crate) fn card(s: &str) -> bool {
    let seps: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_digit()).collect();
    if seps.windows(2).any(|w| w[0] != w[1]) {
        return false;
    }
    let d = digits(s);
    if !(13..=19).contains(&d.len()) {
        return false;
    }
    let prefix = |n: usize| -> u32 { d.iter().take(n).fold(0u32, |a, &x| a * 10 + u32::from(x)) };
    let len = d.len();
    let brand = match d[0] {
        4 => matches!(len, 13 | 16 | 19),
        5 => {
            (51..=55).contains(&prefix(2)) && len == 16
                || (50..=59).contains(&prefix(2)) && len >= 16
        }
        2 => (2221..=2720).contains(&prefix(4)) && len == 16,
        3 => {
            matches!(prefix(2), 34 | 37) && len == 15
                || (3528..=3589).contains(&prefix(4)) && (16..=19).contains(&len)
                || (300..=305).contains(&prefix(3)) && len >= 14
                || matches!(prefix(2), 36 | 38 | 39) && len >= 14
        }
        6 => {
            prefix(4) == 6011
                || prefix(2) == 65
                || (644..=649).contains(&prefix(3))
                || prefix(2) == 62
                || (56..=69).contains(&prefix(2))
        }
        _ => false,
    };
    brand && luhn_digits(&d)
}

pub(crate) fn ssn(s: &str) -> bool {
    let d = digits(s);
    if d.len() != 9 {
        return false;
    }
    let area = u32::from(d[0]) * 100 + u32::from(d[1]) * 10 + u32::from(d[2]);
    let group = u32::from(d[3]) * 10 + u32::from(d[4]);
    let serial = d[5..].iter().fold(0u32, |a, &x| a * 10 + u32::from(x));
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

/// IBAN lengths by country (ISO 13616 registry, the common part).
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NL", 18),
    ("NO", 15),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("SA", 24),
    ("SC", 31),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
];

pub(crate) fn iban(s: &str) -> bool {
    let compact: Vec<u8> = s
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| b.to_ascii_uppercase())
        .collect();
    if compact.len() < 15 || compact.len() > 34 || !compact.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    let country = std::str::from_utf8(&compact[..2]).unwrap_or("");
    match IBAN_LENGTHS.iter().find(|(c, _)| *c == country) {
        Some(&(_, len)) if len == compact.len() => {}
        _ => return false,
    }
    if !compact[2..4].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut rem = 0u32;
    for &b in compact[4..].iter().chain(&compact[..4]) {
        if b.is_ascii_digit() {
            rem = (rem * 10 + u32::from(b - b'0')) % 97;
        } else {
            let v = u32::from(b - b'A') + 10;
            rem = (rem * 100 + v) % 97;
        }
    }
    rem == 1
}

pub(crate) fn npi(s: &str) -> bool {
    let d = digits(s);
    if d.len() != 10 || !matches!(d[0], 1 | 2) {
        return false;
    }
    let mut full = vec![8, 0, 8, 4, 0];
    full.extend_from_slice(&d);
    luhn_digits(&full)
}

pub(crate) fn dea(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 9 || !b[0].is_ascii_uppercase() || !b[2..].iter().all(u8::is_ascii_digit) {
        return false;
    }
    if !b"ABCDEFGHJKLMPRSTUX".contains(&b[0]) {
        return false;
    }
    if !(b[1].is_ascii_uppercase() || b[1] == b'9') {
        return false;
    }
    let d: Vec<u32> = b[2..].iter().map(|x| u32::from(x - b'0')).collect();
    let check = (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10;
    check == d[6]
}

pub(crate) fn phone(s: &str) -> bool {
    let d = digits(s);
    let trimmed = s.trim_start();
    if trimmed.starts_with('+') && !trimmed.starts_with("+1") {
        return (8..=15).contains(&d.len());
    }
    // `0044 7880 974636`: the international prefix dialled as `00`.
    if trimmed.starts_with("00") && trimmed.contains([' ', '-', '.']) {
        return (10..=17).contains(&d.len());
    }
    let nanp: &[u8] = match d.len() {
        10 => &d,
        11 if d[0] == 1 => &d[1..],
        _ => return false,
    };
    // Area code 2–9; N11 service codes are not personal numbers.
    nanp[0] >= 2 && !(nanp[1] == 1 && nanp[2] == 1)
}

/// A VIN (ISO 3779 as used in North America, 49 CFR 565): 17 characters of `A`–`Z` but
/// `I`, `O`, `Q` and digits, letters and digits both, and position 9 the check digit (the
/// transliterated values weighted 8-7-6-5-4-3-2-10-0-9-8-7-6-5-4-3-2, sum mod 11, 10
/// written `X`).
pub(crate) fn vin(s: &str) -> bool {
    const WEIGHTS: [u32; 17] = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];
    let upper = s.to_ascii_uppercase();
    let b = upper.as_bytes();
    if b.len() != 17 || !b.iter().any(u8::is_ascii_digit) || !b.iter().any(u8::is_ascii_uppercase) {
        return false;
    }
    // Written in lower case (a URL, a normalised column), a VIN keeps one case throughout
    // and ends in its serial digits; a random lower-case id of 17 characters passes the
    // check digit one time in eleven and rarely has both.
    let lower = s.bytes().any(|c| c.is_ascii_lowercase());
    if lower
        && (s.bytes().any(|c| c.is_ascii_uppercase()) || !b[13..].iter().all(u8::is_ascii_digit))
    {
        return false;
    }
    let value = |c: u8| -> Option<u32> {
        match c {
            b'0'..=b'9' => Some(u32::from(c - b'0')),
            b'A'..=b'H' => Some(u32::from(c - b'A') + 1),
            b'J'..=b'N' => Some(u32::from(c - b'J') + 1),
            b'P' => Some(7),
            b'R' => Some(9),
            b'S'..=b'Z' => Some(u32::from(c - b'S') + 2),
            _ => None,
        }
    };
    let mut sum = 0u32;
    for (c, w) in b.iter().zip(WEIGHTS) {
        let Some(v) = value(*c) else {
            return false;
        };
        sum += v * w;
    }
    let check = match sum % 11 {
        10 => b'X',
        d => b'0' + d as u8,
    };
    b.get(8) == Some(&check)
}

/// A US bank routing number: 9 digits, weights 3-7-1, sum a multiple of 10, and a first
/// pair that the Federal Reserve assigns (00–12, 21–32, 61–72, 80).
pub(crate) fn aba_routing(s: &str) -> bool {
    let d = digits(s);
    if d.len() != 9 || s.bytes().any(|b| !b.is_ascii_digit()) {
        return false;
    }
    let prefix = d[0] * 10 + d[1];
    if !matches!(prefix, 0..=12 | 21..=32 | 61..=72 | 80) || d.iter().all(|&x| x == 0) {
        return false;
    }
    let sum: u32 = d
        .iter()
        .zip([3u32, 7, 1, 3, 7, 1, 3, 7, 1])
        .map(|(&x, w)| u32::from(x) * w)
        .sum();
    sum % 10 == 0
}

/// A bank account number after its context word: 4 to 17 digits (US accounts; others
/// are IBANs), not one digit repeated (`0000`, a placeholder).
pub(crate) fn account_number(s: &str) -> bool {
    let d = digits(s);
    (4..=17).contains(&d.len()) && d.iter().any(|&x| x != d[0])
}

/// A random-looking token (an API key, a session id, a signature): 16 or more characters,
/// with digits in at least two places, whose characters switch between lower case, upper
/// case and digits often, as random text does (at least once per four neighbouring pairs:
/// a random base-62 string switches at about 3 in 5, random hex at about 1 in 2).
/// Identifiers, versions and words (`cache_manager_registry_v2`, `x86_64-linux-gnu`,
/// `1.2.3-beta.4`, `ThisIsACamelCaseName2`) switch rarely or hold one number. With digits
/// in one place only, 24 characters and switches at 2 in 5 are asked; with none, 32 and
/// 9 in 20 (`lkvosNYLvrLkxpNQVzfjMDCvs6zEwxrAvw` switches at 14 in 33;
/// `getUserAccountSettingsForTenantById` at 12 in 34), or 20 and 7 in 20 when capitals
/// stand side by side in three places or more, as random letters do.
pub(crate) fn random_token(s: &str) -> bool {
    #[derive(PartialEq, Clone, Copy)]
    enum Class {
        Lower,
        Upper,
        Digit,
        Other,
    }
    let class = |b: u8| match b {
        b'a'..=b'z' => Class::Lower,
        b'A'..=b'Z' => Class::Upper,
        b'0'..=b'9' => Class::Digit,
        _ => Class::Other,
    };
    let bytes = s.as_bytes();
    if bytes.len() < 16 {
        return false;
    }
    let digit_runs = bytes
        .iter()
        .enumerate()
        .filter(|&(i, b)| {
            b.is_ascii_digit() && (i == 0 || !bytes.get(i - 1).is_some_and(u8::is_ascii_digit))
        })
        .count();
    let letters = bytes.iter().filter(|b| b.is_ascii_alphabetic()).count();
    if letters == 0 {
        return false;
    }
    // Digits in fewer than two places: random only when long, and switching between the
    // cases as often as random letters do (camel case switches once per word).
    let (min_len, mut ratio) = match digit_runs {
        0 => (20, 45),
        1 => (24, 40),
        _ => (16, 25),
    };
    // Random letters also put capitals side by side, in several places (`fXCxdLXbaKXd…`:
    // `XC`, `LX`, `KX`, …); camel case does so once per acronym (`handleHTTPRequest`).
    if digit_runs == 0 {
        let capital_runs = bytes
            .iter()
            .enumerate()
            .filter(|&(i, b)| {
                b.is_ascii_uppercase()
                    && bytes.get(i + 1).is_some_and(u8::is_ascii_uppercase)
                    && !(i > 0 && bytes.get(i - 1).is_some_and(u8::is_ascii_uppercase))
            })
            .count();
        if capital_runs >= 3 {
            ratio = 35;
        } else if bytes.len() < 32 {
            return false;
        }
    }
    if bytes.len() < min_len {
        return false;
    }
    let mut switches = 0usize;
    let mut pairs = 0usize;
    for w in bytes.windows(2) {
        let (a, b) = (class(w[0]), class(w[1]));
        if a == Class::Other || b == Class::Other {
            continue;
        }
        pairs += 1;
        if a != b {
            switches += 1;
        }
    }
    pairs >= 12 && switches * 100 >= pairs * ratio
}

/// `s` is the candidate, `before`/`after` the characters around it in the text.
pub(crate) fn ipv4(s: &str, head: &str, after: &str) -> bool {
    let before = head.chars().next_back();
    if before == Some('/') {
        // A whole path segment (`/geo/203.0.113.42`, `GET /203.0.113.42`), not a product
        // version (`Chrome/120.1.2.3`).
        if !is_path_segment(head, after) {
            return false;
        }
    } else if matches!(before, Some(c) if c == '.' || c.is_alphanumeric() || c == '-' || c == '_') {
        return false;
    }
    if s.ends_with(".0.0") {
        // 131.0.0.0: a version number, or a network, not a host.
        return false;
    }
    let mut next = after.chars();
    match next.next() {
        Some('.') if next.next().is_some_and(|c| c.is_ascii_digit()) => return false,
        Some(c) if c.is_alphanumeric() || c == '-' || c == '_' => return false,
        _ => {}
    }
    let Ok(addr) = s.parse::<std::net::Ipv4Addr>() else {
        return false;
    };
    !(addr.is_loopback() || addr.is_unspecified() || addr.is_broadcast())
}

/// Whether the text after `head` (which ends in `/`) up to `after` is a whole segment of a
/// path: the `/` starts the path or follows an earlier segment, and the segment ends the
/// path or is followed by another separator.
fn is_path_segment(head: &str, after: &str) -> bool {
    let ends = after.chars().next().is_none_or(|c| {
        matches!(c, '/' | '?' | '#' | '"' | '\'' | ')' | ',' | ';') || c.is_whitespace()
    });
    let parent = &head[..head.len() - 1];
    let segment_start = parent.rfind(|c: char| c == '/' || c.is_whitespace());
    let starts = match segment_start {
        // `/geo/…`: the parent segment itself follows a `/`.
        Some(i) => parent[i..].starts_with('/') || parent.len() == i + 1,
        // `/203.0.113.42` at the very start, or `GET /…`.
        None => parent.is_empty(),
    } || parent.ends_with(char::is_whitespace)
        || parent.is_empty();
    ends && starts
}

pub(crate) fn ipv6(s: &str, before: Option<char>, after: &str) -> bool {
    if matches!(before, Some(c) if c.is_alphanumeric() || c == ':' || c == '.' || c == '_') {
        return false;
    }
    if after
        .chars()
        .next()
        .is_some_and(|c| c.is_alphanumeric() || c == ':' || c == '_')
    {
        return false;
    }
    let addr_part = s.split('%').next().unwrap_or(s);
    let Ok(addr) = addr_part.parse::<std::net::Ipv6Addr>() else {
        return false;
    };
    if addr.is_loopback() || addr.is_unspecified() {
        return false;
    }
    let groups = addr_part.split(':').filter(|g| !g.is_empty()).count();
    addr_part.bytes().any(|b| b.is_ascii_digit()) || groups >= 4
}

/// A date in any of the forms the DOB detector finds, with plausible month and day.
pub(crate) fn date(s: &str) -> bool {
    let nums: Vec<u32> = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.parse().ok())
        .collect();
    let has_month_name = s.bytes().any(|b| b.is_ascii_alphabetic());
    match (has_month_name, nums.as_slice()) {
        (true, [a, b]) => {
            let (day, year) = if *a > 31 { (*b, *a) } else { (*a, *b) };
            (1..=31).contains(&day) && (1900..=2100).contains(&year)
        }
        (false, [a, b, c]) => {
            if *a > 31 {
                // year first
                (1..=12).contains(b) && (1..=31).contains(c)
            } else {
                // M/D/Y or D.M.Y
                let year_ok = *c <= 99 || (1900..=2100).contains(c);
                let md = ((1..=12).contains(a) && (1..=31).contains(b))
                    || ((1..=12).contains(b) && (1..=31).contains(a));
                year_ok && md
            }
        }
        _ => false,
    }
}

/// A date of birth in any common rendering (`1975-06-08`, `06/08/1975`, `6/8/75`,
/// `08.06.1975`, `08-Jun-1975`, `8 Jun 1975`, `Jun 8, 1975`, `November 22, 1970`,
/// `19750608`): a real calendar day, in a year from 1900 to this one (two-digit years
/// aside). Numeric dates are read month first or day first, whichever is a real day.
pub(crate) fn birth_date(s: &str) -> bool {
    // `1981-12-10T00:00:00.000Z`: a date serialised as midnight (JavaScript's `Date`).
    let s = s.split_once("T00:00:00").map_or(s, |(date, _)| date);
    let month_name = month_named(s);
    let nums: Vec<&str> = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .collect();
    let value = |p: &str| p.parse::<u32>().ok();
    match (month_name, nums.as_slice()) {
        (Some(m), [a, b]) => {
            // `Jun 8, 1975` or `8 Jun 1975`: the day comes first among the numbers.
            match (value(a), value(b)) {
                (Some(d), Some(y)) => birth_ymd(year_of(y, b.len()), m, d),
                _ => false,
            }
        }
        (None, [a, b, c]) if a.len() == 4 => match (value(a), value(b), value(c)) {
            (Some(y), Some(m), Some(d)) => birth_ymd(Some(y), m, d),
            _ => false,
        },
        (None, [a, b, c]) if a.len() <= 2 && b.len() <= 2 => match (value(a), value(b), value(c)) {
            (Some(a), Some(b), Some(y)) => {
                let y = year_of(y, c.len());
                birth_ymd(y, a, b) || birth_ymd(y, b, a)
            }
            _ => false,
        },
        (None, [compact]) if compact.len() == 8 => {
            let part = |r: std::ops::Range<usize>| compact.get(r).and_then(value);
            let ymd = match (part(0..4), part(4..6), part(6..8)) {
                (Some(y), Some(m), Some(d)) => birth_ymd(Some(y), m, d),
                _ => false,
            };
            let mdy = match (part(0..2), part(2..4), part(4..8)) {
                (Some(a), Some(b), Some(y)) => birth_ymd(Some(y), a, b) || birth_ymd(Some(y), b, a),
                _ => false,
            };
            ymd || mdy
        }
        _ => false,
    }
}

/// A four-digit year as written; a two-digit one stands for some year, `None`: any
/// century is plausible. Other lengths are no year.
fn year_of(value: u32, digits: usize) -> Option<u32> {
    match digits {
        2 => None,
        4 => Some(value),
        _ => Some(0),
    }
}

/// Whether `month`/`day` is a real day of `year` (any year when `None`), and the year one
/// a living person was born in.
fn birth_ymd(year: Option<u32>, month: u32, day: u32) -> bool {
    let leap = year.is_none_or(|y| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day) && year.is_none_or(|y| (1900..=current_year()).contains(&y))
}

/// The month a date names in words (`Jun`, `June`, `Sept.`), 1–12; `None` if it names none
/// or something that is not a month (`Junk`).
fn month_named(s: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let word: String = s
        .chars()
        .skip_while(|c| !c.is_ascii_alphabetic())
        .take_while(char::is_ascii_alphabetic)
        .collect::<String>()
        .to_ascii_lowercase();
    let word = word.as_str();
    let word = match word {
        // Ordinal suffixes come after digits, never first: `8th of June`.
        "st" | "nd" | "rd" | "th" => {
            let rest = s
                .split(|c: char| !c.is_ascii_alphabetic())
                .map(str::to_ascii_lowercase)
                .find(|w| w.len() >= 3)?;
            return month_named(&rest);
        }
        "sept" => "sep",
        w => w,
    };
    if word.len() < 3 {
        return None;
    }
    MONTHS
        .iter()
        .position(|m| m.starts_with(word))
        .and_then(|i| u32::try_from(i + 1).ok())
}

/// This year (UTC), from the system clock once per process: a birth year after it is a
/// mistake or not a birth date.
pub(crate) fn current_year() -> u32 {
    static YEAR: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *YEAR.get_or_init(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        civil_year(secs / 86_400)
    })
}

/// The proleptic Gregorian year of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_year(days: u64) -> u32 {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month_from_march = mp;
    let year = yoe + era * 400 + u64::from(month_from_march >= 10);
    u32::try_from(year).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards() {
        assert!(card("4111 1111 1111 1111"));
        assert!(card("4242-4242-4242-4242"));
        assert!(card("5555555555554444"));
        assert!(card("2223003122003222")); // Mastercard 2-series
        assert!(card("378282246310005")); // Amex
        assert!(card("3530111333300000")); // JCB
        assert!(card("6011111111111117")); // Discover
        assert!(card("36227206271667")); // Diners 14
        assert!(!card("4111 1111 1111 1112")); // Luhn fails
        assert!(!card("4111-1111 1111-1111")); // mixed separators
        assert!(!card("1795348108307")); // a millisecond timestamp
        assert!(!card("9111111111111111"));
    }

    #[test]
    fn ssns() {
        assert!(ssn("219-09-9999"));
        assert!(ssn("123 45 6789"));
        assert!(!ssn("000-12-3456"));
        assert!(!ssn("666-12-3456"));
        assert!(!ssn("912-12-3456"));
        assert!(!ssn("123-00-4567"));
        assert!(!ssn("123-45-0000"));
    }

    #[test]
    fn ibans() {
        assert!(iban("DE89 3704 0044 0532 0130 00"));
        assert!(iban("GB82WEST12345698765432"));
        assert!(!iban("DE89 3704 0044 0532 0130 01"));
        assert!(!iban("XX89370400440532013000"));
        assert!(!iban("DE8937040044053201300"));
    }

    #[test]
    fn npis_and_deas() {
        assert!(npi("1234567893"));
        assert!(!npi("1234567890"));
        assert!(!npi("3234567893"));
        assert!(dea("AB1234563"));
        assert!(!dea("AB1234567"));
        assert!(!dea("IB1234563"));
    }

    #[test]
    fn vins() {
        // Check digit 9 (position 9 of `1M8GDM9AXKP042788`, the example in 49 CFR 565's
        // worked calculation) and X.
        assert!(vin("1M8GDM9AXKP042788"));
        // Digits alone are a number, not a VIN.
        assert!(!vin("11111111111111111"));
        assert!(!vin("1M8GDM9A1KP042788"));
        assert!(!vin("1M8GDM9AXKP04278O"));
        assert!(!vin("ABCDEFGHJKLMNPRST"));
        // Lower case: one case throughout, serial digits at the end.
        assert!(vin("1m8gdm9axkp042788"));
        assert!(!vin("1m8gdM9axkp042788"));
        assert!(!vin("1m8gdm9axkp04278a"));
    }

    #[test]
    fn phones() {
        assert!(phone("(555) 010-4477"));
        assert!(phone("+1-555-010-4477"));
        assert!(phone("+44 20 7946 0958"));
        assert!(phone("0044 7880 974636"));
        assert!(phone("0033 1 94 22 82 83"));
        assert!(!phone("0012345678"));
        assert!(!phone("155-010-4477"));
        assert!(!phone("411-555-0100"));
        assert!(!phone("+12"));
    }

    #[test]
    fn ips() {
        assert!(ipv4("203.0.113.42", "", ""));
        assert!(!ipv4("127.0.0.1", "", ""));
        assert!(!ipv4("11.3.244.8", "", "-node.38"));
        assert!(!ipv4("1.2.3.4", "x.", ""));
        assert!(!ipv4("1.2.3.4", "", ".5"));
        // A path segment, but not a product's version.
        assert!(ipv4("203.0.113.42", "GET /geo/", ""));
        assert!(ipv4(
            "203.0.113.42",
            "https://h.example/api/blocklist/",
            "?x=1"
        ));
        assert!(ipv4("203.0.113.42", "/", "/details"));
        assert!(!ipv4("120.1.2.3", "Mozilla/5.0 Chrome/", " Safari"));
        assert!(!ipv4("120.1.2.3", "Chrome/", ""));
        assert!(!ipv4("203.0.113.42", "/geo/", "x"));
        assert!(ipv6("2001:db8::1", None, ""));
        assert!(ipv6("fe80::1%eth0", None, ""));
        assert!(ipv6("::ffff:192.0.2.1", None, ""));
        assert!(!ipv6("::1", None, ""));
        assert!(!ipv6("10:35:58", None, ""));
        assert!(!ipv6("ab::cd", None, ""));
    }

    #[test]
    fn dates() {
        assert!(date("1984-03-12"));
        assert!(date("03/12/1984"));
        assert!(date("12.03.1984"));
        assert!(date("March 12, 1984"));
        assert!(date("12 Mar 1984"));
        assert!(!date("1984-13-12"));
        assert!(!date("99/99/1984"));
    }

    #[test]
    fn birth_dates_in_every_rendering() {
        for d in [
            "1975-06-08",
            "1975/6/8",
            "06/08/1975",
            "6/8/75",
            "08.06.1975",
            "31/12/1975",
            "08-Jun-1975",
            "8 Jun 1975",
            "8th of June, 1975",
            "Jun 8, 1975",
            "Jul 11 1957",
            "November 22, 1970",
            "Sept. 3, 1948",
            "19750608",
            "06081975",
            "29.02.1976",
        ] {
            assert!(birth_date(d), "{d}");
        }
        for d in [
            "1975-13-08",
            "1975-02-30",
            "29.02.1975",
            "1899-12-31",
            "2999-01-01",
            "Junk 8, 1975",
            "19751308",
            "12345678",
            "13/13/1975",
        ] {
            assert!(!birth_date(d), "{d}");
        }
    }

    #[test]
    fn routing_and_account_numbers() {
        assert!(aba_routing("021000021")); // JPMorgan Chase, NY
        assert!(aba_routing("011000015")); // Federal Reserve Bank of Boston
        assert!(aba_routing("121000358"));
        assert!(!aba_routing("021000022"));
        assert!(!aba_routing("000000000"));
        assert!(!aba_routing("991000021"));
        assert!(!aba_routing("02100002"));
        assert!(account_number("000123456789"));
        assert!(account_number("1234-5678"));
        assert!(!account_number("123"));
        assert!(!account_number("0000"));
        assert!(!account_number("123456789012345678"));
    }

    #[test]
    fn random_tokens() {
        for t in [
            "8f3Kd9sLq2Wm7Zx1Vb6Nc4Hj",
            "e3b0c44298fc1c149afbf4c8996fb924",
            "7c373a13-b19e-44ec-8c60-79bbdb7e08ee",
            "a1b2c3d4e5f6a7b8c9d0",
            "lkvosNYLvrLkxpNQVzfjMDCvs6zEwxrAvw",
            "QxvHtRmKpWzLbNfJdYcVgTsQeArUoPiMk",
            "fXCxdLXbaKXdaEeUIOOxnjci",
        ] {
            assert!(random_token(t), "{t}");
        }
        for t in [
            "cache_manager_registry_v2",
            "x86_64-linux-gnu",
            "1.2.3-beta.4+build.567",
            "0123456789abcdef",
            "abcdefghijklmnopqrstuvwxyz",
            "2024-03-01T10-00-00",
            "short1A",
            "ThisIsACamelCaseName2",
            "getUserAccountSettingsForTenantById",
            "Base64UrlEncodedStringParser",
            "handleHTTPRequestWithRetryPolicy",
            "parseHTTPHeaderValueForURL",
            "getIdByKeyAndValue",
        ] {
            assert!(!random_token(t), "{t}");
        }
    }

    #[test]
    fn civil_years() {
        assert_eq!(civil_year(0), 1970);
        assert_eq!(civil_year(10_956), 1999); // 1999-12-31
        assert_eq!(civil_year(10_957), 2000);
        assert_eq!(civil_year(20_818), 2026); // 2026-12-31
        assert_eq!(civil_year(20_819), 2027);
        assert!(current_year() >= 2026);
    }
}
