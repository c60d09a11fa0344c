//! Clusters: a record that already holds two or more PHI values is a record about a
//! person, so its remaining fields that look like a date, a long digit run, an
//! identifier or a personal name are that person's too, whatever their key says (or when
//! there is no key: array elements, CSV and pipe-delimited fields, path segments).
//!
//! Decoys stay: timestamps (a time of day, unix times), UUIDs and hex digests, versions,
//! and fields whose key says what they are (`created_at`, `status`, `order_id`, …).

use crate::json::{Node, Object};
use crate::scrub::detectors::{names, validate};

use super::*;

/// PHI values a record must already hold to be judged as a cluster.
const MIN_PHI_FIELDS: usize = 2;
/// An array with more items than this is a list, not a record.
const MAX_RECORD_ITEMS: usize = 32;
/// A field longer than this is text, not a value.
const MAX_FIELD_LEN: usize = 64;
/// Key words that say what a field is when it is not about the person.
const DECOY_KEY_WORDS: &[&str] = &[
    "created",
    "updated",
    "modified",
    "deleted",
    "timestamp",
    "time",
    "ts",
    "at",
    "version",
    "status",
    "state",
    "type",
    "kind",
    "level",
    "count",
    "total",
    "duration",
    "ms",
    "seconds",
    "sku",
    "order",
    "build",
    "release",
    "trace",
    "span",
    "event",
    "request",
    "uuid",
    "guid",
    "hash",
    "sha",
    "etag",
    "port",
    "code",
    "line",
    "lineno",
    "column",
    "size",
    "bytes",
    "len",
    "length",
    "amount",
    "price",
    "currency",
    "method",
    "route",
    "op",
    "env",
    "environment",
    "region",
    "host",
    "service",
    "module",
    "function",
    "file",
    "path",
    "cart",
    "invoice",
    "ticket",
    "product",
    "item",
    "job",
    "batch",
    "txn",
    "transaction",
    "payment",
    "receipt",
    "shipment",
    "tracking",
    "confirmation",
    "error",
    "errno",
    "reason",
];

impl Engine {
    /// Whether redactions recorded since `before` include a PHI rule.
    pub(super) fn added_phi(&self, cx: &Cx, before: usize) -> bool {
        cx.report
            .redactions
            .get(before..)
            .is_some_and(|new| new.iter().any(|r| self.phi_rules.contains(&r.rule)))
    }

    /// Whether `value` already is a PHI label (not the secrets' `[Filtered]`).
    fn holds_phi_label(&self, value: &Node<'_>) -> bool {
        value
            .as_str()
            .is_some_and(|s| !s.is_empty() && s != "[Filtered]" && self.is_label(s))
    }

    /// An object's members after the walk: `phi[i]` says whether member `i` held PHI.
    pub(super) fn judge_cluster_members(
        &self,
        map: &mut Object<'_>,
        phi: &[bool],
        removed_phi: usize,
        cx: &mut Cx,
    ) {
        let held = removed_phi
            + phi
                .iter()
                .zip(map.iter())
                .filter(|(p, (_, v))| **p || self.holds_phi_label(v))
                .count();
        if held < MIN_PHI_FIELDS {
            return;
        }
        for (i, (key, value)) in map.iter_mut().enumerate() {
            if phi.get(i).copied().unwrap_or(true) || self.decoy_key(key, cx) {
                continue;
            }
            let len = cx.push(key);
            self.judge_cluster_value(value, cx);
            cx.pop(len);
        }
    }

    /// An array's elements after the walk (a tuple, a row).
    pub(super) fn judge_cluster_items(&self, items: &mut [Node<'_>], phi: &[bool], cx: &mut Cx) {
        // A record has a few fields; a long array is a list (log lines, source lines), and
        // two PHI values among hundreds say nothing about the rest.
        if items.len() > MAX_RECORD_ITEMS {
            return;
        }
        let held = phi
            .iter()
            .zip(items.iter())
            .filter(|(p, v)| **p || self.holds_phi_label(v))
            .count();
        if held < MIN_PHI_FIELDS {
            return;
        }
        for (i, value) in items.iter_mut().enumerate() {
            if phi.get(i).copied().unwrap_or(true) {
                continue;
            }
            let len = cx.push_index(i);
            self.judge_cluster_value(value, cx);
            cx.pop(len);
        }
    }

    fn judge_cluster_value(&self, value: &mut Node<'_>, cx: &mut Cx) {
        let text = match value {
            Node::Str(s) => s.to_string(),
            Node::Number(n) => n.to_string(),
            _ => return,
        };
        let Some(class) = cluster_class(&text) else {
            return;
        };
        if let Some(new) = self.redact_class(class, &text, cx) {
            *value = Node::string(new);
        }
    }

    fn decoy_key(&self, key: &str, cx: &mut Cx) -> bool {
        cx.tokens.split(key);
        self.structural.contains_key(key) || DECOY_KEY_WORDS.iter().any(|w| cx.tokens.contains(w))
    }

    /// Delimited records in a string, after the string's own scan: a CSV or pipe export
    /// (one record a line, perhaps under a header line), a path, a file name
    /// (`[name]_[name]_1975-06-08.pdf`). Under a header, each field is judged by its
    /// column's name as a JSON key would be (`mrn`, `dob`, `last_name`); in any record
    /// holding two PHI values, the other fields are judged by shape. `None` if nothing
    /// changed.
    pub(super) fn judge_cluster_fields(&self, text: &str, cx: &mut Cx) -> Option<String> {
        if text.len() < 8 {
            return None;
        }
        // An HL7 message is judged field by field by its own parser, and so is an X12
        // interchange, whatever its separators. Asked only of text that reads as records.
        let is_format = || {
            (self.formats.hl7.is_some() && crate::scrub::formats::hl7::find(text).is_some())
                || (self.formats.x12 && crate::scrub::formats::x12::find(text).is_some())
        };
        // Lines end in newlines, or in `\n` escapes where a repr or a log wrote the text
        // (`'MRN|LAST|FIRST\n3160645035|DOE|JANE'` in a frame variable).
        let sep = if text.contains('\n') {
            "\n"
        } else if text.contains("\\n") {
            "\\n"
        } else {
            if (!text.contains('[') && !may_be_record(text)) || is_format() {
                return None;
            }
            let delim = record_delimiter(text)?;
            return self.judge_record(text, delim, None, cx);
        };
        let mut lines = text.split(sep);
        let first = lines.next().unwrap_or("");
        let header = header_columns(first);
        if header.is_none() && !text.contains('[') && !text.split(sep).any(may_be_record) {
            return None;
        }
        if is_format() {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut changed = false;
        out.push_str(first);
        if header.is_none() {
            if let Some(new) =
                record_delimiter(first).and_then(|d| self.judge_record(first, d, None, cx))
            {
                out.clear();
                out.push_str(&new);
                changed = true;
            }
        }
        for line in lines {
            out.push_str(sep);
            let judged = match &header {
                Some((delim, columns)) if line.split(*delim).count() == columns.len() => {
                    self.judge_record(line, *delim, Some(columns), cx)
                }
                _ => record_delimiter(line).and_then(|d| self.judge_record(line, d, None, cx)),
            };
            match judged {
                Some(new) => {
                    out.push_str(&new);
                    changed = true;
                }
                None => out.push_str(line),
            }
        }
        changed.then_some(out)
    }

    /// One record: fields under a PHI column get their class; when the record then holds
    /// two PHI values (labels, or a given name and a surname in adjacent fields), the other
    /// fields are judged by shape. The labels this writes are judged again by the rounds of
    /// `judge_string`, as the next scrub would.
    fn judge_record(
        &self,
        text: &str,
        delim: char,
        header: Option<&[String]>,
        cx: &mut Cx,
    ) -> Option<String> {
        let mut fields: Vec<String> = text.split(delim).map(str::to_owned).collect();
        let mut changed = false;
        if let Some(columns) = header {
            for (field, column) in fields.iter_mut().zip(columns) {
                let core = field_core(field, delim).to_owned();
                if core.is_empty() || self.is_label(&core) {
                    continue;
                }
                let Some(class) = self.key_class(column, cx) else {
                    continue;
                };
                if let Some(new) = self.redact_class(class, &core, cx) {
                    *field = field.replacen(&core, &new, 1);
                    changed = true;
                }
            }
        }
        let label = |f: &str| {
            let core = field_core(f, delim);
            !core.is_empty() && core != "[Filtered]" && self.is_label(core)
        };
        let labels = fields.iter().filter(|f| label(f)).count();
        let name_pairs = fields
            .windows(2)
            .filter(|w| {
                let (a, b) = (field_core(&w[0], delim), field_core(&w[1], delim));
                record_name_pair(a, b)
            })
            .count();
        // Values whose shape alone says PHI once a name stands beside them.
        let shaped = if name_pairs > 0 && labels + 1 < MIN_PHI_FIELDS {
            fields
                .iter()
                .filter(|f| {
                    matches!(
                        cluster_class(field_core(f, delim)),
                        Some(KeyClass::Dob | KeyClass::Ssn | KeyClass::Phone | KeyClass::Card)
                    )
                })
                .count()
        } else {
            0
        };
        let listed_record = labels + name_pairs.min(1) + shaped >= MIN_PHI_FIELDS;
        // In a record that is about a person already, two adjacent fields written as names
        // are that person's name even when the lists do not hold them (`Kuznetsov,Aditi`).
        let strong = labels
            + fields
                .iter()
                .filter(|f| {
                    matches!(
                        cluster_class(field_core(f, delim)),
                        Some(KeyClass::Dob | KeyClass::Ssn | KeyClass::Phone | KeyClass::Card)
                    )
                })
                .count();
        let unlisted_pairs: Vec<usize> = if strong >= MIN_PHI_FIELDS {
            fields
                .windows(2)
                .enumerate()
                .filter(|(_, w)| {
                    let (a, b) = (field_core(&w[0], delim), field_core(&w[1], delim));
                    name_shaped(a) && name_shaped(b) && !self.is_label(a) && !self.is_label(b)
                })
                .map(|(i, _)| i)
                .collect()
        } else {
            Vec::new()
        };
        let is_record = listed_record || !unlisted_pairs.is_empty();
        // A path is a record of its segments, and each segment may be a file name with
        // fields of its own.
        if !is_record && delim != '/' {
            return changed.then(|| fields.join(&delim.to_string()));
        }
        let fields_core: Vec<String> = fields
            .iter()
            .map(|f| field_core(f, delim).to_owned())
            .collect();
        for (i, field) in fields.iter_mut().enumerate() {
            // A leading record type (`PID`, `ROW`, `IN1`) names the record, not a person.
            let record_type = i == 0
                && field.len() == 3
                && field.starts_with(|c: char| c.is_ascii_uppercase())
                && field
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
            if record_type || label(field) {
                continue;
            }
            let core = field_core(field, delim).to_owned();
            if core.is_empty() {
                continue;
            }
            let class = if is_record {
                cluster_class(&core).or_else(|| {
                    let neighbour = |j: Option<usize>| {
                        j.and_then(|j| fields_core.get(j))
                            .is_some_and(|n| record_name_pair(&core, n))
                    };
                    let in_unlisted_pair = unlisted_pairs.contains(&i)
                        || i.checked_sub(1)
                            .is_some_and(|j| unlisted_pairs.contains(&j));
                    (record_name_word(&core)
                        || neighbour(i.checked_sub(1))
                        || neighbour(Some(i + 1))
                        || in_unlisted_pair)
                        .then_some(KeyClass::Name)
                })
            } else {
                None
            };
            let replaced = match class {
                Some(class) => self.redact_class(class, &core, cx),
                // A path segment may be a file name with fields of its own.
                None if delim == '/' => self.judge_cluster_fields(field, cx),
                None => None,
            };
            if let Some(new) = replaced {
                *field = if class.is_some() {
                    field.replacen(&core, &new, 1)
                } else {
                    new
                };
                changed = true;
            }
        }
        changed.then(|| fields.join(&delim.to_string()))
    }
}

/// Path segments that announce a secret in the next segment (`/reset-password/<token>`).
const SECRET_PATH_WORDS: &[&str] = &[
    "verification",
    "confirm",
    "confirmation",
    "invitation",
    "activate",
    "activation",
    "unsubscribe",
    "login",
    "signin",
    "auth",
    "share",
    "download",
];

/// Path segments whose next segment is a secret whatever its shape, hex included: routes
/// that take one (`/reset-password/<token>`, `/hooks/<secret>`) and collections of
/// credentials (`/api/keys/<key>/revoke`). They announce a secret too.
const CREDENTIAL_PATH_WORDS: &[&str] = &[
    "reset",
    "password",
    "verify",
    "invite",
    "magic",
    "hook",
    "hooks",
    "webhook",
    "webhooks",
    "key",
    "keys",
    "apikeys",
    "token",
    "tokens",
    "secret",
    "secrets",
    "credential",
    "credentials",
    "session",
    "sessions",
];

impl Engine {
    /// A URL path (in a URL, a route, a transaction name `GET /directory/jane-doe`): a
    /// segment that is a person's name written as a slug (`jane-doe`, `maria_gonzalez`)
    /// becomes `[name]`, and an opaque token after a segment that announces one
    /// (`/reset-password/f8Kq…`) becomes the secret label. `None` if nothing changed.
    pub(super) fn judge_path_segments(&self, text: &str, cx: &mut Cx) -> Option<String> {
        let start = text.find('/')?;
        let path_end = text[start..]
            .find(['?', '#', ' ', '\t', '\n'])
            .map_or(text.len(), |e| start + e);
        let path = &text[start..path_end];
        if path.len() < 4 {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        out.push_str(&text[..start]);
        let mut changed = false;
        let mut previous = "";
        for (i, segment) in path.split('/').enumerate() {
            if i > 0 {
                out.push('/');
            }
            let class = if names_devices(previous) && is_hardware_address(segment) {
                Some(KeyClass::Mac)
            } else if slug_is_name(segment)
                || (names_people(previous) && slug_has_name_word(segment))
            {
                Some(KeyClass::Name)
            } else if (is_opaque_token(segment)
                || is_hex_key(segment) && names_credentials(previous))
                && announces_secret(previous)
            {
                Some(KeyClass::Secret)
            } else {
                None
            };
            match class.and_then(|c| self.redact_class(c, segment, cx)) {
                Some(new) => {
                    out.push_str(&new);
                    changed = true;
                }
                None => out.push_str(segment),
            }
            previous = segment;
        }
        out.push_str(&text[path_end..]);
        changed.then_some(out)
    }
}

impl Engine {
    /// File names about a person (`5713225091_yoon_david.hl7`,
    /// `/uploads/89-59-2283_horvat_steven.pdf`): when a file name's stem holds a given name
    /// and a surname side by side (in either order, in any case), the pair is that
    /// person's name and its other fields that look like a date or an identifier are
    /// theirs too. `None` if nothing changed.
    pub(super) fn judge_file_names(&self, text: &str, cx: &mut Cx) -> Option<String> {
        let mut out = String::new();
        let mut last = 0;
        for (start, word) in file_name_candidates(text) {
            let Some(new) = self.judge_file_name(word, cx) else {
                continue;
            };
            out.push_str(&text[last..start]);
            out.push_str(&new);
            last = start + word.len();
        }
        if last == 0 {
            return None;
        }
        out.push_str(&text[last..]);
        Some(out)
    }

    fn judge_file_name(&self, stem: &str, cx: &mut Cx) -> Option<String> {
        let delim = if stem.contains('_') { '_' } else { '-' };
        let parts: Vec<&str> = stem.split(delim).collect();
        if !(2..=10).contains(&parts.len()) {
            return None;
        }
        let mut classes: Vec<Option<KeyClass>> = vec![None; parts.len()];
        let (mut labels, mut pair, mut loose_pair, mut shaped) = (0, false, false, 0);
        let mut i = 0;
        while i < parts.len() {
            let part = parts[i];
            if part.is_empty() {
                i += 1;
                continue;
            }
            if self.is_label(part) {
                labels += 1;
                i += 1;
                continue;
            }
            if let Some(n) = date_across(&parts[i..]) {
                classes[i..i + n].fill(Some(KeyClass::Dob));
                shaped += 1;
                i += n;
                continue;
            }
            if let Some(next) = parts.get(i + 1) {
                let strict = lower_name_pair(part, next);
                if strict || loose_name_pair(part, next) {
                    pair |= strict;
                    loose_pair |= !strict;
                    classes[i] = Some(KeyClass::Name);
                    classes[i + 1] = Some(KeyClass::Name);
                    i += 2;
                    continue;
                }
            }
            if let Some(class) = cluster_class(part).filter(|c| *c != KeyClass::Name) {
                classes[i] = Some(class);
                shaped += 1;
            }
            i += 1;
        }
        // About a person: a known name, a label already written, or a given name beside
        // an unknown word together with a date or an identifier.
        let about_person = pair || labels > 0 || (loose_pair && shaped > 0);
        if !about_person || classes.iter().all(Option::is_none) {
            return None;
        }
        Some(self.write_parts(&parts, &classes, &delim.to_string(), cx, false))
    }

    /// `parts` joined by `sep`, each run of parts of one class replaced by one redaction
    /// of their joined text; written as a slug when `slug`.
    fn write_parts(
        &self,
        parts: &[&str],
        classes: &[Option<KeyClass>],
        sep: &str,
        cx: &mut Cx,
        slug: bool,
    ) -> String {
        let mut out = String::new();
        let mut i = 0;
        while i < parts.len() {
            if i > 0 {
                out.push_str(sep);
            }
            let Some(class) = classes.get(i).copied().flatten() else {
                out.push_str(parts[i]);
                i += 1;
                continue;
            };
            let mut j = i + 1;
            // A name's two words and a date's three parts are one value; ids stay apart,
            // but in a slug an id's dashed groups are one too.
            while j < parts.len()
                && classes.get(j).copied().flatten() == Some(class)
                && (slug || matches!(class, KeyClass::Name | KeyClass::Dob))
            {
                j += 1;
            }
            let value = parts[i..j].join(sep);
            let label = self
                .redact_class(class, &value, cx)
                .unwrap_or_else(|| value.clone());
            if slug {
                out.push_str(&slugged(&label));
            } else {
                out.push_str(&label);
            }
            i = j;
        }
        out
    }

    /// A check-in's monitor slug names a job (`nightly-export`), so what varies in it is
    /// data: a date, a run of six or more digits or an id holding one
    /// (`welcome-call-mr6648721`), a given name and surname pair
    /// (`eligibility-sync-keith-sasaki`). Each is replaced by its label written as a slug
    /// (`nightly-export-dob`), since Sentry takes only slug characters there. `None` if
    /// nothing changed.
    pub(super) fn judge_slug(&self, slug: &str, cx: &mut Cx) -> Option<String> {
        // Labels the detectors already wrote (`patient-[ssn]-sync`) become slug words.
        let unbracketed = slug.contains('[').then(|| {
            slug.split(['[', ']'])
                .filter(|p| !p.is_empty())
                .collect::<String>()
        });
        let slug = unbracketed.as_deref().unwrap_or(slug);
        let parts: Vec<&str> = slug.split(['-', '_']).collect();
        let mut classes: Vec<Option<KeyClass>> = vec![None; parts.len()];
        let mut i = 0;
        while i < parts.len() {
            // A job's run date is recent (`billing-sync-2024-03-01`); a date ten years old or
            // more in a job's name is a person's.
            if let Some(n) = date_across(&parts[i..]).filter(|_| old_year(parts[i])) {
                classes[i..i + n].fill(Some(KeyClass::Dob));
                i += n;
                continue;
            }
            if parts
                .get(i + 1)
                .is_some_and(|next| lower_name_pair(parts[i], next))
            {
                classes[i] = Some(KeyClass::Name);
                classes[i + 1] = Some(KeyClass::Name);
                i += 2;
                continue;
            }
            // `37-96-7439`: an id written in dashed groups of digits.
            if let Some(n) =
                digit_groups(&parts[i..]).filter(|_| date_across(&parts[i..]).is_none())
            {
                // An SSN or a phone number written the same way keeps its own label.
                let class = match cluster_class(&parts[i..i + n].join("-")) {
                    Some(c @ (KeyClass::Ssn | KeyClass::Phone)) => c,
                    _ => KeyClass::Mrn,
                };
                classes[i..i + n].fill(Some(class));
                i += n;
                continue;
            }
            let part = parts[i];
            let digits = part.bytes().filter(u8::is_ascii_digit).count();
            if digits >= 5 && part.len() <= 24 && !(digits == 4 && part.len() == 4) {
                if !is_compact_date(part) {
                    classes[i] = Some(KeyClass::Mrn);
                } else if part.get(..4).is_some_and(old_year) {
                    classes[i] = Some(KeyClass::Dob);
                }
            }
            i += 1;
        }
        if classes.iter().all(Option::is_none) {
            return unbracketed;
        }
        let sep = if slug.contains('-') { "-" } else { "_" };
        Some(self.write_parts(&parts, &classes, sep, cx, true))
    }

    /// URLs written without a scheme inside text (`foo.bar/endpoint?token=…`,
    /// `api/v1/x?ssn=…`): each query goes through the query rules as a URL's would.
    /// `None` if nothing changed.
    pub(super) fn scrub_schemeless_queries(
        &self,
        text: &str,
        key: &str,
        cx: &mut Cx,
    ) -> Option<String> {
        let mut out = String::with_capacity(text.len());
        let mut changed = false;
        let mut last = 0;
        for (start, word) in text
            .split_whitespace()
            .map(|w| (w.as_ptr() as usize - text.as_ptr() as usize, w))
        {
            let Some(q) = word.find('?') else {
                continue;
            };
            let (before, query) = (&word[..q], &word[q + 1..]);
            if word.contains("://")
                || !before.contains(['/', '.'])
                || !query.contains('=')
                || before.starts_with('/')
            {
                continue;
            }
            let query = query.trim_end_matches(['.', ',', ';', ')', '"', '\'']);
            if let Some(new) = crate::scrub::structured::query::scrub_query(self, query, key, cx) {
                let at = start + q + 1;
                out.push_str(&text[last..at]);
                out.push_str(&new);
                last = at + query.len();
                changed = true;
            }
        }
        if !changed {
            return None;
        }
        out.push_str(&text[last..]);
        Some(out)
    }
}

/// `jane-doe`, `maria_gonzalez`, `mary-ann-smith`: two or three lower-case words that
/// read as a given name and surnames.
fn slug_is_name(segment: &str) -> bool {
    if segment.len() < 5 || segment.len() > 40 {
        return false;
    }
    let words: Vec<&str> = segment.split(['-', '_']).collect();
    if !(2..=3).contains(&words.len())
        || !words
            .iter()
            .all(|w| w.len() >= 2 && w.bytes().all(|b| b.is_ascii_lowercase()))
    {
        return false;
    }
    let capitalised: Vec<String> = words
        .iter()
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    names::is_full_name(&capitalised.join(" "))
}

/// A collection of people in a path (`/patients/`, `/directory/`, `/caregivers/`): its
/// members are people, so a slug of two or three words with a known name word in it is a
/// name (`/caregivers/seoyeon_singh`).
fn names_people(segment: &str) -> bool {
    const WORDS: &[&str] = &[
        "patients",
        "patient",
        "members",
        "people",
        "persons",
        "directory",
        "caregivers",
        "providers",
        "doctors",
        "physicians",
        "nurses",
        "staff",
        "employees",
        "users",
        "customers",
        "contacts",
        "profiles",
        "profile",
        "residents",
        "students",
        "clients",
        "guardians",
        "dependents",
        "beneficiaries",
        "subscribers",
        "applicants",
    ];
    WORDS.contains(&segment.to_ascii_lowercase().as_str())
}

/// Two or three lower-case words joined by `-` or `_`, one of them a known given name or
/// surname.
fn slug_has_name_word(segment: &str) -> bool {
    let words: Vec<&str> = segment.split(['-', '_']).collect();
    (2..=3).contains(&words.len())
        && words
            .iter()
            .all(|w| w.len() >= 2 && w.bytes().all(|b| b.is_ascii_lowercase()))
        && words.iter().any(|w| names::is_name_word(w))
}

/// 16 or more characters of letters and digits (base64url-ish) with both: not a word,
/// not a number, not a hex digest (trace ids and hashes are routes' own).
fn is_opaque_token(segment: &str) -> bool {
    segment.len() >= 16
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='))
        && segment.bytes().any(|b| b.is_ascii_digit())
        && segment.bytes().any(|b| b.is_ascii_alphabetic())
        && !segment.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// 20 or more hex digits: a key or session id under a collection of credentials
/// (`/api/keys/46f4…/revoke`), a digest anywhere else.
fn is_hex_key(segment: &str) -> bool {
    segment.len() >= 20 && segment.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A path segment for devices or their pairing (`/api/pair/406898C66055`,
/// `/devices/ee7a885f90bc/telemetry`).
fn names_devices(segment: &str) -> bool {
    matches!(
        segment.to_ascii_lowercase().as_str(),
        "pair"
            | "pairing"
            | "unpair"
            | "device"
            | "devices"
            | "mac"
            | "macs"
            | "bluetooth"
            | "wifi"
            | "sensor"
            | "sensors"
            | "monitor"
            | "monitors"
            | "pump"
            | "pumps"
    )
}

/// Twelve hex digits in one case with a digit and a letter: a bare hardware address.
fn is_hardware_address(segment: &str) -> bool {
    segment.len() == 12
        && segment.bytes().all(|b| b.is_ascii_hexdigit())
        && segment.bytes().any(|b| b.is_ascii_digit())
        && segment.bytes().any(|b| b.is_ascii_alphabetic())
        && (segment.bytes().all(|b| !b.is_ascii_lowercase())
            || segment.bytes().all(|b| !b.is_ascii_uppercase()))
}

/// A collection of credentials or a route that takes one ([`CREDENTIAL_PATH_WORDS`]).
fn names_credentials(segment: &str) -> bool {
    segment
        .split(['-', '_', '.'])
        .any(|w| CREDENTIAL_PATH_WORDS.contains(&w.to_ascii_lowercase().as_str()))
}

fn announces_secret(segment: &str) -> bool {
    names_credentials(segment)
        || segment
            .split(['-', '_', '.'])
            .any(|w| SECRET_PATH_WORDS.contains(&w.to_ascii_lowercase().as_str()))
}

/// A field without the blanks and quotes around it, and without a file name's
/// extension.
fn field_core(field: &str, delim: char) -> &str {
    let core = field.trim().trim_matches(|c| c == '"' || c == '\'');
    match core.rsplit_once('.') {
        Some((stem, ext))
            if delim == '_'
                && (1..=4).contains(&ext.len())
                && ext.bytes().all(|b| b.is_ascii_alphabetic()) =>
        {
            stem
        }
        _ => core,
    }
}

/// A header line: two or more column names (`last_name,first_name,mrn,dob`), the
/// delimiter, and the names.
fn header_columns(line: &str) -> Option<(char, Vec<String>)> {
    let delim = ['|', '\t', ',', ';']
        .into_iter()
        .max_by_key(|d| line.matches(*d).count())
        .filter(|d| line.contains(*d))?;
    let columns: Vec<String> = line
        .split(delim)
        .map(|c| c.trim().trim_matches(['"', '\'']).to_owned())
        .collect();
    let key_like = |c: &String| {
        !c.is_empty()
            && c.len() <= 40
            && c.starts_with(|ch: char| ch.is_ascii_alphabetic())
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b' ' | b'-'))
            && (c.bytes().any(|b| b.is_ascii_lowercase())
                || c.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
    };
    (columns.len() >= 2 && columns.iter().all(key_like)).then_some((delim, columns))
}

/// A record field that is a personal name word: capitalised (`Gonzalez`) or in
/// capitals (`GUPTA`, as exports write them) and a known given name or surname, but
/// not a word a log or protocol writes in capitals.
fn record_name_word_allowed(s: &str) -> bool {
    !RECORD_CAPITALS.contains(&s)
}

const RECORD_CAPITALS: &[&str] = &[
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "INFO", "WARN", "WARNING", "ERROR",
    "DEBUG", "TRACE", "FATAL", "OK", "TRUE", "FALSE", "NULL", "NONE", "YES", "NO", "MALE",
    "FEMALE", "ACTIVE", "PENDING", "PAID", "FAILED", "SUCCESS", "USD", "EUR",
];

/// Two capital letters in a record are a code (a state, a qualifier such as X12's `TE`,
/// `EM`, `IC`, a sex), not a name: a name in capitals has three letters or more here.
fn is_capital_code(s: &str) -> bool {
    s.len() <= 2 && s.bytes().all(|b| b.is_ascii_uppercase())
}

fn record_name_word(s: &str) -> bool {
    if s.len() < 2 || s.len() > 30 || RECORD_CAPITALS.contains(&s) || is_capital_code(s) {
        return false;
    }
    let upper = s.chars().all(|c| c.is_uppercase() || c == '-' || c == '\'');
    let capitalised = s.starts_with(char::is_uppercase)
        && s.chars()
            .skip(1)
            .all(|c| c.is_lowercase() || c == '-' || c == '\'');
    if !(upper || capitalised) {
        return false;
    }
    // The name lists are ASCII: a capitalised word with other letters (`Çelik`, `Peña`)
    // is judged by its shape alone.
    if !s.is_ascii() {
        return s.chars().filter(|c| c.is_alphabetic()).count() >= 2;
    }
    let word = if upper {
        let mut w = String::with_capacity(s.len());
        for (i, part) in s.split('-').enumerate() {
            if i > 0 {
                w.push('-');
            }
            let mut chars = part.chars();
            if let Some(c) = chars.next() {
                w.push(c);
                w.extend(chars.map(|c| c.to_ascii_lowercase()));
            }
        }
        w
    } else {
        s.to_owned()
    };
    word.split('-').all(names::is_name_word)
}

/// The stems of file names in `text` (`yoon_david` in `/a/b/yoon_david.pdf`): the last
/// path segment of a run without blanks or quotes, with an extension of one to five
/// letters or digits, whose stem has a `_` or `-`.
fn file_name_candidates(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split(|c: char| {
        c.is_whitespace()
            || matches!(
                c,
                '"' | '\'' | '(' | ')' | ',' | ';' | '<' | '>' | '`' | '='
            )
    })
    .filter_map(move |run| {
        let at = run.as_ptr() as usize - text.as_ptr() as usize;
        let name_start = run.rfind(['/', '\\']).map_or(0, |i| i + 1);
        let name = &run[name_start..];
        let (stem, ext) = name.rsplit_once('.')?;
        let ext_ok = (1..=5).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_alphanumeric());
        (ext_ok && stem.len() >= 5 && stem.contains(['_', '-']) && stem.len() <= 96)
            .then_some((at + name_start, stem))
    })
}

/// A given name and a surname side by side in a file name, in either order and in any
/// case (`yoon_david`, `Doe-Jane`).
fn lower_name_pair(a: &str, b: &str) -> bool {
    let title = |w: &str| {
        let mut c = w.chars();
        c.next()
            .map(|f| f.to_uppercase().collect::<String>() + &c.as_str().to_lowercase())
            .unwrap_or_default()
    };
    let word = |w: &str| (2..=24).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_alphabetic());
    if !word(a) || !word(b) {
        return false;
    }
    let (a, b) = (title(a), title(b));
    names::is_full_name(&format!("{a} {b}")) || names::is_full_name(&format!("{b} {a}"))
}

/// A label or pseudonym as slug characters: `[dob]` → `dob`, `user:715230cb` →
/// `user-715230cb`.
fn slugged(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    for c in label.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        out.push_str("redacted");
    }
    out
}

/// Two or three parts of digits only (two or more each) that make eight or more digits
/// together: an id written in groups (`37-96-7439`); the number of parts.
fn digit_groups(parts: &[&str]) -> Option<usize> {
    let run = parts
        .iter()
        .take(3)
        .take_while(|p| p.len() >= 2 && p.bytes().all(|b| b.is_ascii_digit()))
        .count();
    let digits: usize = parts.iter().take(run).map(|p| p.len()).sum();
    (run >= 2 && digits >= 8).then_some(run)
}

/// A four-digit year at least ten years before this one.
fn old_year(year: &str) -> bool {
    year.parse::<u32>()
        .is_ok_and(|y| y + 10 <= validate::current_year())
}

/// `1987-11-27` spread over three parts of a name split at `-`: the number of parts.
fn date_across(parts: &[&str]) -> Option<usize> {
    let [y, m, d] = parts.get(..3)? else {
        return None;
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let date = format!("{y}-{m}-{d}");
    (is_date_shape(&date) && validate::date(&date)).then_some(3)
}

/// A known given name beside a word that could be a surname the lists do not hold
/// (`khumalo_raymond`), in any case and either order.
fn loose_name_pair(a: &str, b: &str) -> bool {
    let word = |w: &str| {
        (2..=24).contains(&w.len())
            && w.bytes().all(|c| c.is_ascii_alphabetic() || c == b'-')
            && w.bytes().filter(u8::is_ascii_alphabetic).count() >= 2
    };
    let given = |w: &str| names::is_common_given_name(w);
    // A given name that is often a word (`jordan`) counts beside a known surname.
    let paired = |g: &str, other: &str| {
        given(g) || (names::starts_with_given_name(g) && names::is_name_word(other))
    };
    // Beside a date or an id in a file name, any known given name or surname vouches for
    // its neighbour (`caruso_noa_19420807`, `MR4015066_fitzgerald_katarzyna`).
    let known = |w: &str| {
        w.split('-')
            .all(|p| !p.is_empty() && names::is_name_word(p))
    };
    word(a) && word(b) && (paired(a, b) || paired(b, a) || known(a) || known(b))
}

/// A line that may be a delimited record with no label in it yet: three or more `|` or
/// `,` (`958638|KUZNETSOV|ROGER|11/07/1957|U`).
fn may_be_record(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() >= 12
        && (memchr::memchr_iter(b'|', b).count() >= 3 || memchr::memchr_iter(b',', b).count() >= 3)
}

/// Two adjacent fields that read as a person's name (`KUZNETSOV|ROGER`, `Hughes,Dmitri`):
/// both written as names, one of them a known given name or surname. The other may be a
/// name the American lists do not hold.
fn record_name_pair(a: &str, b: &str) -> bool {
    name_shaped(a) && name_shaped(b) && (record_name_word(a) || record_name_word(b))
}

/// A capitalised or capital word of letters (`Dmitri`, `KUZNETSOV`, `Çelik`), not a
/// capital keyword; surnames as people write them count too: a capital after an
/// apostrophe, a hyphen or `Mc`/`Mac` (`O'Brien`, `McKay`), several words (`Mac Giolla`),
/// and lower-case particles before them (`van Dijk`, `de la Cruz`).
fn name_shaped(s: &str) -> bool {
    let letters = s.chars().filter(|c| c.is_alphabetic()).count();
    if !(2..=30).contains(&letters)
        || !s
            .chars()
            .all(|c| c.is_alphabetic() || matches!(c, '-' | '\'' | ' '))
        || s.contains("  ")
        || s.split(' ').count() > 3
        || !record_name_word_allowed(s)
    {
        return false;
    }
    if s.chars().all(|c| !c.is_alphabetic() || c.is_uppercase()) {
        return s.starts_with(char::is_uppercase) && !is_capital_code(s);
    }
    let words: Vec<&str> = s.split(' ').collect();
    let first_name_word = words
        .iter()
        .position(|w| !SURNAME_PARTICLES.contains(w))
        .unwrap_or(words.len());
    first_name_word < words.len()
        && words[first_name_word..]
            .iter()
            .all(|w| capitalised_name_word(w))
}

/// Lower-case words that open a surname (`van Dijk`, `de la Cruz`, `bin Laden`).
const SURNAME_PARTICLES: &[&str] = &[
    "van", "von", "der", "den", "de", "da", "del", "della", "di", "du", "la", "le", "dos", "das",
    "ter", "ten", "bin", "al", "el",
];

/// `Gonzalez`, `O'Brien`, `Smith-Jones`, `McKay`, `MacArthur`: a capital first, then lower
/// case except right after `'`, `-` or a `Mc`/`Mac` prefix.
fn capitalised_name_word(w: &str) -> bool {
    if !w.starts_with(char::is_uppercase) {
        return false;
    }
    let mut prev = ' ';
    w.char_indices().skip(1).all(|(i, c)| {
        let ok = !c.is_alphabetic()
            || c.is_lowercase()
            || matches!(prev, '\'' | '-')
            || (i == 2 && w.starts_with("Mc"))
            || (i == 3 && w.starts_with("Mac"));
        prev = c;
        ok
    })
}

/// The delimiter of a record: the most frequent of `|`, tab, `,`, `;` (at least two of
/// them), else `/` for a path, else `_` for a file name without blanks.
fn record_delimiter(text: &str) -> Option<char> {
    let best = [b'|', b'\t', b',', b';']
        .into_iter()
        .map(|d| {
            (
                memchr::memchr_iter(d, text.as_bytes()).count(),
                char::from(d),
            )
        })
        .max_by_key(|(n, _)| *n)
        .filter(|(n, _)| *n >= 2)
        .map(|(_, d)| d);
    if best.is_some() {
        return best;
    }
    if text.contains(char::is_whitespace) {
        return None;
    }
    if text.matches('/').count() >= 2 {
        return Some('/');
    }
    (text.matches('_').count() >= 2).then_some('_')
}

/// What a field of a PHI record is, by its shape alone; `None` for what reads as a
/// timestamp, a UUID or digest, a version, or ordinary text.
pub(super) fn cluster_class(s: &str) -> Option<KeyClass> {
    let s = s.trim();
    if s.is_empty() || s.len() > MAX_FIELD_LEN {
        return None;
    }
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    let letters = s.bytes().filter(u8::is_ascii_alphabetic).count();
    // A time of day or a timestamp.
    if s.contains(':') && digits > 0 {
        return None;
    }
    if is_date_shape(s) && validate::date(s) {
        return Some(KeyClass::Dob);
    }
    if is_compact_date(s) {
        return Some(KeyClass::Dob);
    }
    if letters == 0 && digits >= 6 {
        if s.bytes()
            .any(|b| !(b.is_ascii_digit() || matches!(b, b'-' | b' ' | b'.')))
        {
            return None;
        }
        // A version or a decimal number, not an identifier.
        if s.contains('.') && !s.contains(['-', ' ']) {
            return None;
        }
        if is_unix_time(s) {
            return None;
        }
        return Some(match digits {
            9 if validate::ssn(s) => KeyClass::Ssn,
            10 | 11 if validate::phone(s) => KeyClass::Phone,
            13..=19 if validate::card(s) => KeyClass::Card,
            _ => KeyClass::Mrn,
        });
    }
    if digits >= 2 && letters >= 1 && s.len() >= 5 && s.len() <= 24 {
        let ident = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
        let hexy = s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') && s.len() >= 16;
        let version =
            s.starts_with(['v', 'V']) && s[1..].bytes().all(|b| b.is_ascii_digit() || b == b'.');
        return (ident && !hexy && !version).then_some(KeyClass::Mrn);
    }
    if digits == 0 && reads_as_person(s) {
        return Some(KeyClass::Name);
    }
    None
}

/// Digits and date separators, or a month name with a day and year: the shapes a date
/// field takes (`1975-06-08`, `06/08/1975`, `8.6.1975`, `08-Jun-1975`, `Jun 8, 1975`,
/// `19750608`).
fn is_date_shape(s: &str) -> bool {
    let numeric = s
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'/' | b'.'))
        && s.bytes().filter(|b| !b.is_ascii_digit()).count() == 2;
    if numeric {
        // A four-digit year first or last (`2.14.3` is a version), or `6/8/75`.
        let parts: Vec<&str> = s.split(['-', '/', '.']).collect();
        let four = |p: Option<&&str>| p.is_some_and(|p| p.len() == 4);
        return four(parts.first()) || four(parts.last()) || (s.contains('/') && !s.contains('.'));
    }
    if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
        return false; // Compact dates are judged as digit runs unless they parse below.
    }
    let lower = s.to_ascii_lowercase();
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let has_month = lower
        .split(|c: char| !c.is_ascii_alphabetic())
        .any(|w| w.len() >= 3 && MONTHS.iter().any(|m| w.starts_with(m)));
    has_month
        && s.bytes().filter(u8::is_ascii_digit).count() >= 3
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b' ' | b',' | b'-' | b'.' | b'/'))
}

/// `YYYYMMDD` with a plausible birth year, month and day.
fn is_compact_date(s: &str) -> bool {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|p| p.parse::<u32>().ok());
    matches!(
        (num(0..4), num(4..6), num(6..8)),
        (Some(1900..=2030), Some(1..=12), Some(1..=31))
    )
}

/// A unix time in seconds or milliseconds between 2001 and 2036.
fn is_unix_time(s: &str) -> bool {
    let Ok(n) = s.parse::<u64>() else {
        return false;
    };
    (1_000_000_000..2_100_000_000).contains(&n)
        || (1_000_000_000_000..2_100_000_000_000).contains(&n)
}

/// A capitalised given name or surname alone (`Jane`, `Doe`), or a given name and
/// surnames (`Maria Gonzalez`); `Internal Server Error` is not one.
fn reads_as_person(s: &str) -> bool {
    let words: Vec<&str> = s.split_whitespace().collect();
    if words.is_empty() || words.len() > 3 {
        return false;
    }
    let shaped = words.iter().all(|w| {
        let mut chars = w.chars();
        // Capitalised, not in capitals (`OK`, `GET`, `POST` are words, not names).
        chars.next().is_some_and(|c| c.is_ascii_uppercase())
            && w.len() >= 2
            && w.bytes().any(|b| b.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_alphabetic() || matches!(c, '\'' | '-' | '.'))
    });
    shaped
        && match words.as_slice() {
            [one] => names::is_name_word(one),
            _ => names::is_full_name(s),
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_judged_by_shape() {
        assert_eq!(cluster_class("1975-06-08"), Some(KeyClass::Dob));
        assert_eq!(cluster_class("06/08/1975"), Some(KeyClass::Dob));
        assert_eq!(cluster_class("08-Jun-1975"), Some(KeyClass::Dob));
        assert_eq!(cluster_class("Jun 8, 1975"), Some(KeyClass::Dob));
        assert_eq!(cluster_class("536-22-8471"), Some(KeyClass::Ssn));
        assert_eq!(cluster_class("00482913"), Some(KeyClass::Mrn));
        assert_eq!(cluster_class("19750608"), Some(KeyClass::Dob));
        assert_eq!(cluster_class("A1234567"), Some(KeyClass::Mrn));
        assert_eq!(cluster_class("Gonzalez"), Some(KeyClass::Name));
        assert_eq!(cluster_class("Maria Gonzalez"), Some(KeyClass::Name));
    }

    #[test]
    fn surnames_as_people_write_them() {
        for name in [
            "O'Brien",
            "McKay",
            "MacArthur",
            "Smith-Jones",
            "van Dijk",
            "de la Cruz",
            "Mac Giolla",
            "KUZNETSOV",
            "Çelik",
        ] {
            assert!(name_shaped(name), "{name}");
        }
        for not_name in [
            "iPhone",
            "McDONALDS",
            "van",
            "de la",
            "eBay",
            "JavaScript",
            "O'",
            "GET",
        ] {
            assert!(!name_shaped(not_name), "{not_name}");
        }
        assert!(record_name_pair("O'Brien", "Kathleen"));
        assert!(record_name_pair("van Dijk", "Jose"));
        // Two capitals are a code in a record (X12 `PER|IC|…|TE|…|EM|…`, states, sex).
        for code in ["TE", "EM", "IC", "IL", "F"] {
            assert!(!name_shaped(code), "{code}");
            assert!(!record_name_word(code), "{code}");
        }
    }

    #[test]
    fn decoys_are_not_phi() {
        for decoy in [
            "2024-03-01T10:35:58Z",
            "10:35",
            "1764000000",
            "1764000000123",
            "2.14.3",
            "v1.2.3",
            "3.14159",
            "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
            "550e8400-e29b-41d4-a716-446655440000",
            "200",
            "12345",
            "active",
            "OK",
            "Internal Server Error",
            "",
        ] {
            assert_eq!(cluster_class(decoy), None, "{decoy}");
        }
    }

    #[test]
    fn path_segments() {
        assert!(slug_is_name("jane-doe"));
        assert!(slug_is_name("maria_gonzalez"));
        assert!(!slug_is_name("user-profile"));
        assert!(!slug_is_name("api"));
        assert!(!slug_is_name("Jane-Doe-2"));
        assert!(is_opaque_token("f8Kq2LmZ9xP4wR7tY3nB"));
        assert!(!is_opaque_token("0f1e2d3c4b5a69788796a5b4c3d2e1f0"));
        assert!(!is_opaque_token("settings"));
        assert!(announces_secret("reset-password"));
        assert!(!announces_secret("users"));
    }

    #[test]
    fn delimiters() {
        assert_eq!(record_delimiter("a|b|c"), Some('|'));
        assert_eq!(record_delimiter("a,b,c|d"), Some(','));
        assert_eq!(record_delimiter("/patients/x/y"), Some('/'));
        assert_eq!(record_delimiter("doe_jane_x.pdf"), Some('_'));
        assert_eq!(record_delimiter("one two"), None);
    }
}
