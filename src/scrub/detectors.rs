//! Value detectors: patterns found anywhere in free text, each with a validator.
//!
//! All detectors (built-in and custom) are compiled once into one [`RegexSet`]; a string is
//! scanned by the set in a single pass, and only the detectors that matched run their own
//! regex to find the exact spans, which then go through the validator. Every regex uses
//! ASCII word boundaries so the lazy DFA stays usable on any text, and the regex crate keeps
//! matching linear in the text length.

mod address;
pub(crate) mod builtin;
pub(crate) mod clinical;
pub(crate) mod names;
mod prescan;
pub(crate) mod validate;

use super::redact::Action;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

use super::keys::{KeyMatcher, Tokens};
use prescan::Prescan;
use validate::Validator;

/// Size limit for one custom pattern (the regex crate's compiled program size).
pub(crate) const CUSTOM_PATTERN_SIZE_LIMIT: usize = 1 << 20;
const BUILTIN_SIZE_LIMIT: usize = 32 << 20;
/// Lazy-DFA cache of the combined detector search, per thread.
const SET_CACHE_CAPACITY: usize = 16 << 20;
/// Lazy-DFA cache of the one-pass prescan, per thread. Varied PHI-heavy traffic needs
/// ~20 MB of states: at 4 MiB the cache was cleared and rebuilt all the time, and building
/// states was three quarters of the engine's work on the dense mix (`BENCHMARKS.md`,
/// "Prescan cache"). The cache grows only as states are made; text built to need a new
/// state at every byte still makes the prescan give up (the clear-count rule below), and the
/// `RegexSet` then searches it as it always did.
const PRESCAN_CACHE_CAPACITY: usize = 32 << 20;

/// What the detector checks beyond its regex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    None,
    Validator(Validator),
    /// Separators consistent, not all zero.
    Mac,
    /// Hex digits in one case with both a digit and a letter (`DC57BB62AC00`,
    /// `f4d4.7163.2907`): a hardware address, not a number or a word.
    HexId,
    /// Not a placeholder or an existing label.
    SecretValue,
    /// Contains a digit (ids after keywords).
    HasDigit,
    /// Four to eight letters and digits with at least one of each: a licence plate, not
    /// a count (`plate 2`) or a word.
    PlateLike,
    /// A path id: has a digit or `@`, not a route placeholder.
    PathId,
    /// Not a shared/system home folder.
    HomeUser,
    /// A known given name followed by known surnames ([`names`]).
    FullName,
    /// Starts with a known given name ([`names::starts_with_given_name`]).
    GivenNameFirst,
    /// A name after a word for a person's role ([`names::is_role_name`]).
    RoleName,
    /// A name after `name:` written `Last, First` or with non-ASCII letters
    /// ([`names::is_written_name`]).
    WrittenName,
    /// A lower-case name after a role word ([`names::is_lower_name`]).
    LowerName,
    /// A date a living person was born on ([`validate::birth_date`]).
    BirthDate,
    /// A bank account number ([`validate::account_number`]).
    AccountNumber,
    /// A bank account number that is not nine digits (which are a routing number's, and
    /// judged by its checksum).
    AccountNotRouting,
    /// A random-looking token, not a placeholder ([`validate::random_token`]).
    RandomToken,
    /// Letters with digits or signs, not a placeholder: what a password looks like
    /// (`S@epper465`), not a word (`reset`, `policy`).
    PasswordLike,
    /// A list of diagnoses or of drugs from the compiled-in dictionaries
    /// ([`clinical::is_phrase_list`]).
    Clinical(clinical::Clinical),
}

/// How much a detector's hit says, for choosing between overlapping candidates: a hit
/// that a checksum confirmed beats one that only has the right shape, which beats one
/// found only by a context word, which beats a bare shape (`94107-1234`, a capitalised
/// word pair). So `(415)%20867-5309` is one phone number, not `(415)%` and a ZIP+4 code,
/// and `+44 4111 1111 1111 1111` keeps its card whole. Declared weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Strength {
    /// A shape and no check (`zip4`, `address`, `full_name`).
    Weak,
    /// An id after a context word (`mrn`, `insurance_id`, `person_name`, paths).
    Context,
    /// A shape with a range or format check (`ssn`, `phone`, `email`, dates, IPs).
    Shaped,
    /// A checksum (`card`, `iban`, `npi`, `dea`, routing numbers).
    Checksum,
    /// Holds other values and is scrubbed as a whole or part by part: URLs, secrets,
    /// private keys, tokens.
    Container,
}

/// What a hit means to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HitKind {
    /// Redact the span with the detector's action.
    Redact,
    /// A URL: parse and scrub its parts.
    Url,
}

/// Where a custom pattern applies.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scope {
    pub(crate) keys: Option<KeyMatcher>,
    pub(crate) paths: Vec<Vec<String>>,
}

impl Scope {
    pub(crate) fn allows(&self, key: &str, path: &str) -> bool {
        let key_ok = match &self.keys {
            None => true,
            Some(m) => {
                let mut t = Tokens::default();
                t.split(key);
                m.find(&mut t).is_some()
            }
        };
        let path_ok = self.paths.is_empty()
            || self.paths.iter().any(|p| {
                let segs: Vec<&str> = path.split('.').collect();
                path_glob(p, &segs)
            });
        key_ok && path_ok
    }
}

fn path_glob(pat: &[String], segs: &[&str]) -> bool {
    match pat.split_first() {
        None => segs.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=segs.len()).any(|i| path_glob(rest, &segs[i..]))
        }
        Some((first, rest)) => match segs.split_first() {
            Some((seg, more)) => (first == "*" || first == seg) && path_glob(rest, more),
            None => false,
        },
    }
}

/// One compiled detector.
#[derive(Debug)]
pub(crate) struct Detector {
    regex: Regex,
    /// Whether a capture group (the first that participates, or the one named `redact`)
    /// is the part to redact.
    group: Option<usize>,
    check: Check,
    /// Keywords that must appear shortly before the match (lowercase), and how far back.
    context: Option<(&'static [&'static str], usize)>,
    /// More words that give the same context when they name the key the value sits under
    /// (a form's `To=4155550123`), beside the context words themselves.
    key_words: &'static [&'static str],
    /// Try shorter candidates ending at separators if the whole one fails validation.
    shrink: bool,
    /// Reject matches glued to other digits (`555-12-3456-7`).
    isolated: bool,
    /// Redact only the match's last path segment (see `Builtin::last_segment`).
    last_segment: bool,
    pub(crate) kind: HitKind,
    pub(crate) scope: Option<Scope>,
    custom: bool,
    strength: Strength,
    /// How this detector's hits are redacted: carried by the detector itself, so a hit
    /// can never find a missing or another detector's action.
    action: Action,
}

/// A validated span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) detector: usize,
}

/// All detectors and their combined prefilter set.
#[derive(Debug)]
pub(crate) struct Scanner {
    /// Which detectors match a string, in one pass; `None` if the lazy DFA could not take
    /// the patterns, and then `set` answers alone.
    prescan: Option<Prescan>,
    /// The same question asked of the regex crate: the fallback when the prescan gives up.
    set: RegexSet,
    /// Custom patterns may match anything, so the cheap byte prefilter is off.
    has_custom: bool,
    /// No detector is limited to some keys or paths: a scan's hits depend on the text
    /// alone, so the walker may reuse them for a repeated string.
    pub(crate) text_only: bool,
    pub(crate) detectors: Vec<Detector>,
    /// Text scrubgate writes itself (labels, pseudonyms).
    inert: Inert,
}

/// What scrubgate itself writes into text: redaction labels (`[dob]`, `[Filtered]`) and
/// pseudonyms (`user:k1:0123456789abcdef`). A second pass over scrubbed text must find
/// nothing new, so these are never a hit and never keyword context: `[dob]` is not the word
/// "dob" before a date, and a pseudonym's hex is not a card number.
#[derive(Debug, Default)]
struct Inert {
    finder: Option<AhoCorasick>,
    /// Per pattern: how many hex digits follow it (pseudonym prefixes), 0 for labels.
    hex_after: Vec<usize>,
}

impl Inert {
    /// Spans of `text` that scrubgate wrote, in order.
    fn spans(&self, text: &str) -> Vec<(usize, usize)> {
        let Some(finder) = &self.finder else {
            return Vec::new();
        };
        let mut spans = Vec::new();
        for m in finder.find_iter(text) {
            let hex = self
                .hex_after
                .get(m.pattern().as_usize())
                .copied()
                .unwrap_or(0);
            if hex == 0 {
                spans.push((m.start(), m.end()));
                continue;
            }
            let tail = text.as_bytes().get(m.end()..m.end() + hex);
            if tail.is_some_and(|t| t.iter().all(u8::is_ascii_hexdigit)) {
                spans.push((m.start(), m.end() + hex));
            }
        }
        spans
    }
}

fn inside(spans: &[(usize, usize)], start: usize, end: usize) -> bool {
    spans.iter().any(|&(s, e)| s <= start && end <= e)
}

/// The pattern source of a detector, before compiling.
#[derive(Debug, Clone)]
pub(crate) struct DetectorSpec {
    /// Rule name, for error messages.
    #[allow(dead_code)]
    pub(crate) rule: String,
    pub(crate) pattern: String,
    pub(crate) check: Check,
    pub(crate) context: Option<(&'static [&'static str], usize)>,
    pub(crate) key_words: &'static [&'static str],
    pub(crate) shrink: bool,
    pub(crate) isolated: bool,
    pub(crate) last_segment: bool,
    pub(crate) kind: HitKind,
    pub(crate) scope: Option<Scope>,
    pub(crate) strength: Strength,
    pub(crate) size_limit: usize,
    /// A user pattern (disables the byte prefilter).
    pub(crate) custom: bool,
    pub(crate) action: Action,
}

/// Makes a pattern DFA-friendly: ASCII digits and ASCII word boundaries.
pub(crate) fn asciify(pattern: &str) -> String {
    pattern.replace("\\d", "[0-9]").replace("\\b", "(?-u:\\b)")
}

/// Why the detectors could not be compiled, naming the pattern where there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScannerError {
    /// Pattern `index` (in the order given to [`Scanner::compile`]) does not compile.
    Pattern { index: usize, problem: String },
    /// Every pattern compiles, but together they exceed the regex set's size limit.
    SetTooBig(String),
}

impl Scanner {
    /// The action of detector `detector` (an index from one of this scanner's hits).
    pub(crate) fn action(&self, detector: usize) -> Option<&Action> {
        self.detectors.get(detector).map(|d| &d.action)
    }

    /// Every detector's action, for the label and pseudonym tables.
    pub(crate) fn actions(&self) -> impl Iterator<Item = &Action> {
        self.detectors.iter().map(|d| &d.action)
    }

    /// Compiles every spec. The error names the spec's index and the regex error.
    pub(crate) fn compile(specs: Vec<DetectorSpec>) -> Result<Self, ScannerError> {
        let mut detectors = Vec::with_capacity(specs.len());
        let mut patterns = Vec::with_capacity(specs.len());
        for (i, spec) in specs.into_iter().enumerate() {
            let pattern = asciify(&spec.pattern);
            let regex = RegexBuilder::new(&pattern)
                .size_limit(spec.size_limit)
                .build()
                .map_err(|e| ScannerError::Pattern {
                    index: i,
                    problem: e.to_string(),
                })?;
            let group = if let Some(idx) = regex.capture_names().position(|n| n == Some("redact")) {
                Some(idx)
            } else if regex.captures_len() > 1 {
                Some(0)
            } else {
                None
            };
            patterns.push(pattern);
            detectors.push(Detector {
                regex,
                group,
                check: spec.check,
                context: spec.context,
                key_words: spec.key_words,
                shrink: spec.shrink,
                isolated: spec.isolated,
                last_segment: spec.last_segment,
                kind: spec.kind,
                scope: spec.scope,
                custom: spec.custom,
                strength: spec.strength,
                action: spec.action,
            });
        }
        let set = RegexSetBuilder::new(&patterns)
            .size_limit(BUILTIN_SIZE_LIMIT)
            .dfa_size_limit(SET_CACHE_CAPACITY)
            .build()
            .map_err(|e| ScannerError::SetTooBig(e.to_string()))?;
        let prescan = Prescan::build(&patterns, BUILTIN_SIZE_LIMIT, PRESCAN_CACHE_CAPACITY);
        let has_custom = detectors.iter().any(|d| d.custom);
        let text_only = detectors.iter().all(|d| d.scope.is_none());
        Ok(Self {
            prescan,
            set,
            has_custom,
            text_only,
            detectors,
            inert: Inert::default(),
        })
    }

    /// Teaches the scanner what scrubgate writes: `labels` (replacement texts) and
    /// `pseudonym_prefixes` (`label:keyid:`, followed by `hex_len` hex digits).
    pub(crate) fn set_inert(
        &mut self,
        labels: &[String],
        pseudonym_prefixes: &[String],
        hex_len: usize,
    ) {
        let mut patterns: Vec<&str> = Vec::new();
        let mut hex_after = Vec::new();
        for label in labels.iter().filter(|l| !l.is_empty()) {
            patterns.push(label);
            hex_after.push(0);
        }
        for prefix in pseudonym_prefixes.iter().filter(|p| !p.is_empty()) {
            patterns.push(prefix);
            hex_after.push(hex_len);
        }
        let finder = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .ok()
            .filter(|_| !patterns.is_empty());
        self.inert = Inert { finder, hex_after };
    }

    /// Spans of `text` that scrubgate wrote (labels, pseudonyms): the echo pass never
    /// matches into them.
    /// Whether `key` is context to any detector ([`key_names_context`]): then a value's
    /// hits under it may differ from the same value's under another key.
    pub(crate) fn key_gives_context(&self, key: &str) -> bool {
        let Some(spaced) = spaced_key(key) else {
            return false;
        };
        self.detectors.iter().any(|d| {
            d.context
                .is_some_and(|(words, _)| spaced_names_context(&spaced, words, d.key_words))
        })
    }

    /// The action of the enabled detector that reads `list`'s phrases after a context
    /// word; `None` when it is off (then no phrase of that list is redacted anywhere).
    pub(crate) fn clinical_action(&self, list: clinical::Clinical) -> Option<&Action> {
        self.detectors
            .iter()
            .find(|d| matches!(d.check, Check::Clinical(l) if l == list))
            .map(|d| &d.action)
    }

    pub(crate) fn inert_spans(&self, text: &str) -> Vec<(usize, usize)> {
        self.inert.spans(text)
    }

    /// Finds every validated, non-overlapping hit in `text`, in order.
    pub(crate) fn scan(&self, text: &str, key: &str, path: &str, hits: &mut Vec<Hit>) {
        self.scan_with(text, key, path, hits, true);
    }

    /// [`Self::scan`], optionally without skipping the detectors after a hit over the whole
    /// text (for the test that holds the two together).
    fn scan_with(
        &self,
        text: &str,
        key: &str,
        path: &str,
        hits: &mut Vec<Hit>,
        skip_after_whole: bool,
    ) {
        hits.clear();
        if text.len() < 4 || self.detectors.is_empty() {
            return;
        }
        if !self.has_custom && !may_hold_data(text) {
            return;
        }
        self.candidates(text, key, path, hits, skip_after_whole, false);
        // Text outside a URL can still be percent- or form-encoded (`123%20Main%20St`,
        // `(415)%20867-5309`, `Maria+Gonzalez` in a file name or a cache key). The
        // decoded text is searched too and its hits mapped back onto the encoded bytes,
        // so the whole encoded value is redacted and no detector takes half of it.
        if let Some(decoded) = Decoded::of(text) {
            let mut more = Vec::new();
            self.candidates(&decoded.text, key, path, &mut more, false, true);
            hits.extend(more.into_iter().filter_map(|h| {
                Some(Hit {
                    start: decoded.original(h.start)?,
                    end: decoded.original(h.end)?,
                    detector: h.detector,
                })
            }));
        }
        let detectors = &self.detectors;
        resolve_overlaps(hits, |d| {
            detectors.get(d).map_or(Strength::Weak, |det| det.strength)
        });
    }

    /// Every validated candidate of every matching detector in `text`, overlapping ones
    /// included, less those inside text scrubgate wrote. `decoded`: `text` is a decoded
    /// copy, whose URL hits are left to the URL parser of the encoded original.
    fn candidates(
        &self,
        text: &str,
        key: &str,
        path: &str,
        hits: &mut Vec<Hit>,
        skip_after_whole: bool,
        decoded: bool,
    ) {
        let mut matched = Vec::new();
        self.matching_detectors(text, &mut matched);
        if matched.is_empty() {
            return;
        }
        let inert = self.inert.spans(text);
        // A hit of the strongest kind over the whole text that survives the inert filter
        // (a string that is one URL) is the only hit `resolve_overlaps` can keep: nothing
        // is stronger or longer, and it wins a tie against every later detector. The
        // detectors after it are skipped.
        let mut whole = false;
        for &index in &matched {
            if whole {
                break;
            }
            let Some(det) = self.detectors.get(index) else {
                continue;
            };
            if decoded && det.kind == HitKind::Url {
                continue;
            }
            if let Some(scope) = &det.scope {
                if !scope.allows(key, path) {
                    continue;
                }
            }
            match det.group {
                None if det.shrink || det.isolated => {
                    // Short numeric candidates: after a rejected one, look again from the
                    // next character, so `123-45-6789 4111 1111 1111 1111` (one candidate
                    // with mixed separators) still yields the card inside it. Candidates are
                    // at most a few dozen bytes, so this stays linear.
                    let mut pos = 0usize;
                    while pos <= text.len() {
                        let Some(m) = det.regex.find_at(text, pos) else {
                            break;
                        };
                        if let Some((s, e)) = det.accept(text, key, m.start(), m.end(), &inert) {
                            hits.push(Hit {
                                start: s,
                                end: e,
                                detector: index,
                            });
                            if skip_after_whole && det.covers_whole(text, s, e, &inert) {
                                whole = true;
                                break;
                            }
                            pos = e.max(m.start() + 1);
                        } else {
                            pos = m.start()
                                + text[m.start()..].chars().next().map_or(1, char::len_utf8);
                        }
                        while pos < text.len() && !text.is_char_boundary(pos) {
                            pos += 1;
                        }
                    }
                }
                None => {
                    for m in det.regex.find_iter(text) {
                        let start = if det.last_segment {
                            m.as_str()
                                .rfind(['/', '\\'])
                                .map_or(m.start(), |i| m.start() + i + 1)
                        } else {
                            m.start()
                        };
                        if start == m.end() {
                            continue;
                        }
                        if let Some((s, e)) = det.accept(text, key, start, m.end(), &inert) {
                            hits.push(Hit {
                                start: s,
                                end: e,
                                detector: index,
                            });
                            if skip_after_whole && det.covers_whole(text, s, e, &inert) {
                                whole = true;
                                break;
                            }
                        }
                    }
                }
                // A clinical context may open what another context's words took in
                // (`Patient has a history of asthma`: `patient has` takes `a history of
                // asthma`, which is no diagnosis). After a rejected candidate the search
                // resumes where its words began, after an accepted one where it ended.
                Some(named) if matches!(det.check, Check::Clinical(_)) => {
                    let mut pos = 0usize;
                    while pos < text.len() {
                        let Some(caps) = det.regex.captures_at(text, pos) else {
                            break;
                        };
                        let Some(m) = caps.get(named.max(1)) else {
                            break;
                        };
                        let whole = caps.get(0).map_or(m.end(), |w| w.end());
                        pos = match det.accept(text, key, m.start(), m.end(), &inert) {
                            Some((s, e)) => {
                                hits.push(Hit {
                                    start: s,
                                    end: e,
                                    detector: index,
                                });
                                e.max(m.start() + 1)
                            }
                            None if m.start() > caps.get(0).map_or(0, |w| w.start()) => m.start(),
                            None => whole.max(pos + 1),
                        };
                        while pos < text.len() && !text.is_char_boundary(pos) {
                            pos += 1;
                        }
                    }
                }
                Some(named) => {
                    for caps in det.regex.captures_iter(text) {
                        let m = if named > 0 {
                            caps.get(named)
                        } else {
                            caps.iter().skip(1).flatten().next()
                        };
                        let Some(m) = m else { continue };
                        if m.start() == m.end() {
                            continue;
                        }
                        if let Some((s, e)) = det.accept(text, key, m.start(), m.end(), &inert) {
                            hits.push(Hit {
                                start: s,
                                end: e,
                                detector: index,
                            });
                            if skip_after_whole && det.covers_whole(text, s, e, &inert) {
                                whole = true;
                                break;
                            }
                        }
                    }
                }
            }
        }
        if !inert.is_empty() {
            let detectors = &self.detectors;
            hits.retain(|h| {
                detectors
                    .get(h.detector)
                    .is_some_and(|d| d.kind == HitKind::Url)
                    || !inside(&inert, h.start, h.end)
            });
        }
    }
}

/// A percent- or form-decoded copy of a text, with the way back to the original bytes.
/// Only escapes of printable ASCII are decoded (`%20`, `%28`, `%2C`, …), and `+` only
/// between two letters, digits or brackets (`123+Main+St`, `(415)+867-5309`), so every
/// decoded byte is one character and a format string's `%02d` or an expression's
/// `a + b` stays as it is.
struct Decoded {
    text: String,
    /// Per byte of `text`, where it starts in the original; one more entry for the end.
    starts: Vec<usize>,
}

impl Decoded {
    /// `None` when there is nothing to decode.
    fn of(original: &str) -> Option<Self> {
        let bytes = original.as_bytes();
        let has_escape = memchr::memchr(b'%', bytes).is_some();
        let has_plus = memchr::memchr(b'+', bytes).is_some();
        if !has_escape && !has_plus {
            return None;
        }
        let mut text = Vec::with_capacity(bytes.len());
        let mut starts = Vec::with_capacity(bytes.len() + 1);
        let mut changed = false;
        let mut i = 0usize;
        while let Some(&b) = bytes.get(i) {
            if b == b'%' {
                if let Some(c) = escaped_ascii(bytes.get(i + 1..i + 3)) {
                    text.push(c);
                    starts.push(i);
                    changed = true;
                    i += 3;
                    continue;
                }
            }
            if b == b'+' && plus_joins(text.last().copied(), bytes.get(i + 1).copied()) {
                text.push(b' ');
                starts.push(i);
                changed = true;
                i += 1;
                continue;
            }
            text.push(b);
            starts.push(i);
            i += 1;
        }
        starts.push(bytes.len());
        if !changed {
            return None;
        }
        // Only ASCII bytes were written in place of ASCII escapes: still UTF-8.
        let text = String::from_utf8(text).ok()?;
        Some(Self { text, starts })
    }

    /// The original offset of decoded offset `i` (a character boundary of the decoded
    /// text, which is a character boundary of the original too).
    fn original(&self, i: usize) -> Option<usize> {
        self.starts.get(i).copied()
    }
}

/// The byte a `%XX` escape stands for, if it is printable ASCII.
fn escaped_ascii(hex: Option<&[u8]>) -> Option<u8> {
    let hex = hex?;
    let digit = |b: u8| char::from(b).to_digit(16);
    let value = digit(*hex.first()?)? * 16 + digit(*hex.get(1)?)?;
    let byte = u8::try_from(value).ok()?;
    (0x20..0x7f).contains(&byte).then_some(byte)
}

/// Whether a `+` between `before` (already decoded) and `after` reads as a form-encoded
/// space: a letter, a digit or the end of a clause (`)`, `,`, `.`, `:`) before it, and a
/// letter, a digit, `(` or `#` after it. `a + b`, `C++` and `+1 415…` stay as they are.
fn plus_joins(before: Option<u8>, after: Option<u8>) -> bool {
    before.is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b')' | b',' | b'.' | b':'))
        && after.is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'(' | b'#'))
}

impl Scanner {
    /// The indices of the detectors whose regex matches somewhere in `text`, ascending.
    fn matching_detectors(&self, text: &str, matched: &mut Vec<usize>) {
        // Most strings hold no candidate at all; the regex crate's own search loop says so
        // fastest, and stops at the first candidate of those that do.
        matched.clear();
        if !self.set.is_match(text) {
            return;
        }
        if let Some(prescan) = &self.prescan {
            if prescan.matches(text, matched) {
                return;
            }
        }
        matched.clear();
        matched.extend(self.set.matches(text).iter());
    }

    /// The prescan's answer (`None` if it gave up) and the regex crate's, for the tests
    /// that hold the two together.
    #[cfg(test)]
    pub(crate) fn set_matches(&self, text: &str) -> (Option<Vec<usize>>, Vec<usize>) {
        let mut fast = Vec::new();
        let complete = self
            .prescan
            .as_ref()
            .is_some_and(|p| p.matches(text, &mut fast));
        (
            complete.then_some(fast),
            self.set.matches(text).iter().collect(),
        )
    }

    /// The hits of `text` with and without skipping after a whole-text hit.
    #[cfg(test)]
    pub(crate) fn hits_with_and_without_skip(&self, text: &str) -> (Vec<Hit>, Vec<Hit>) {
        let (mut fast, mut full) = (Vec::new(), Vec::new());
        self.scan_with(text, "note", "note", &mut fast, true);
        self.scan_with(text, "note", "note", &mut full, false);
        (fast, full)
    }

    #[cfg(test)]
    pub(crate) fn has_prescan(&self) -> bool {
        self.prescan.is_some()
    }
}

/// Every built-in detector needs a digit, one of `@ : / \\ = % -`, or an upper-case letter
/// (names after a title, `eyJ…`, `AKIA…`) somewhere in the text, except the names in lower
/// case after a role word (`cardholder ryan nguyen`), which need that word
/// ([`LOWER_CASE_TRIGGERS`]); lower-case prose without any of them (`production`, `info`,
/// `app.py`) skips the regex set altogether.
fn may_hold_data(text: &str) -> bool {
    text.bytes().any(|b| {
        b.is_ascii_digit()
            || b.is_ascii_uppercase()
            || matches!(b, b'@' | b':' | b'/' | b'\\' | b'=' | b'%' | b'-')
    }) || (text.len() >= 10 && lower_case_triggers().is_none_or(|ac| ac.is_match(text)))
}

/// The words before a name in lower case (the `LowerName` detector's contexts), before a
/// password and before a diagnosis or a drug: kept in step with those patterns by hand, which
/// `every_lower_case_name_context_passes_the_prefilter` checks (a word
/// missing here would turn that detector off for all-lower-case strings).
pub(crate) const LOWER_CASE_TRIGGERS: &[&str] = &[
    "holder",
    "beneficiary",
    "payee",
    "guarantor",
    "subscriber",
    "guardian",
    "caregiver",
    "kin",
    "contact",
    "spouse",
    "insured",
    "party",
    "dependent",
    "patient",
    "recipient",
    "applicant",
    "for",
    "of",
    "dear",
    "name",
    "password",
    "passphrase",
    "passcode",
    // The clinical contexts of `condition` and `medication`.
    "diagnos",
    "dx",
    "hx",
    "pmh",
    "history",
    "assessment",
    "impression",
    "suffer",
    "treat",
    "admitted",
    "present",
    "complain",
    "positive",
    "condition",
    "comorbid",
    "problem",
    "allerg",
    "prescri",
    "rx",
    "taking",
    "takes",
    "took",
    "started",
    "switched",
    "continue",
    "medication",
    "meds",
    "dose",
    "refill",
    "pt ",
    "onset",
    "rule",
    "referr",
    "known",
    "suspect",
    "worsen",
    "symptom",
    "signs",
    "exacerbation",
    "discontinu",
    "stopp",
    "dispensed",
    "administered",
    "given",
    "increased",
    "decreased",
    "order",
    "claim",
    "auth",
];

fn lower_case_triggers() -> Option<&'static AhoCorasick> {
    static TRIGGERS: std::sync::OnceLock<Option<AhoCorasick>> = std::sync::OnceLock::new();
    TRIGGERS
        .get_or_init(|| {
            AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .build(LOWER_CASE_TRIGGERS)
                .ok()
        })
        .as_ref()
}
/// Chooses among overlapping candidates: the strongest ([`Strength`]) wins, then the
/// longer (the whole match over a part of it), then the earlier, then the detector listed
/// first. The kept hits are returned in text order and never overlap.
fn resolve_overlaps(hits: &mut Vec<Hit>, strength: impl Fn(usize) -> Strength) {
    if hits.len() < 2 {
        return;
    }
    hits.sort_by(|a, b| {
        strength(b.detector)
            .cmp(&strength(a.detector))
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(a.start.cmp(&b.start))
            .then(a.detector.cmp(&b.detector))
    });
    // Kept hits by start; they never overlap, so a new hit can only overlap the kept hit
    // that starts last before it ends.
    let mut kept: std::collections::BTreeMap<usize, Hit> = std::collections::BTreeMap::new();
    for h in hits.iter() {
        let clash = kept
            .range(..h.end)
            .next_back()
            .is_some_and(|(_, k)| k.end > h.start);
        if !clash {
            kept.insert(h.start, *h);
            continue;
        }
        // A weaker candidate that holds every kept hit it overlaps whole (an address
        // `742 Evergreen Terrace` around a path id `742`) takes their place: keeping the
        // part would leave the rest of the value in the text.
        let overlapping: Vec<usize> = kept
            .range(..h.end)
            .filter(|(_, k)| k.end > h.start)
            .map(|(s, _)| *s)
            .collect();
        let holds_all = overlapping.iter().all(|s| {
            kept.get(s).is_some_and(|k| {
                h.start <= k.start && k.end <= h.end && (k.start, k.end) != (h.start, h.end)
            })
        });
        if holds_all && strength(h.detector) != Strength::Container {
            for s in overlapping {
                kept.remove(&s);
            }
            kept.insert(h.start, *h);
        }
    }
    hits.clear();
    hits.extend(kept.into_values());
}

impl Detector {
    /// Whether the accepted hit `start..end` spans all of `text` and is not dropped later
    /// as text scrubgate wrote (URL hits never are).
    fn covers_whole(&self, text: &str, start: usize, end: usize, inert: &[(usize, usize)]) -> bool {
        self.strength == Strength::Container
            && start == 0
            && end == text.len()
            && (self.kind == HitKind::Url || !inside(inert, start, end))
    }

    /// Validates a candidate span; may shrink it. Returns the accepted span.
    fn accept(
        &self,
        text: &str,
        key: &str,
        start: usize,
        end: usize,
        inert: &[(usize, usize)],
    ) -> Option<(usize, usize)> {
        if let Some((words, window)) = self.context {
            // The context is before the value in its text, or it is the key the text
            // sits under (`{"contact": "4155550123"}`, `To=4155550123`) when the value
            // opens the text.
            let in_context = near_keyword(text, start, window, words, inert)
                || (start <= window && key_names_context(key, words, self.key_words));
            if !in_context {
                return None;
            }
        }
        if self.check_span(text, start, end) {
            return Some((start, end));
        }
        if self.shrink {
            let candidate = text.get(start..end)?;
            let mut ends: Vec<usize> = candidate
                .char_indices()
                .filter(|(_, c)| {
                    *c == ' '
                        || *c == '-'
                        || (matches!(*c, ',' | ';') && matches!(self.check, Check::Clinical(_)))
                })
                .map(|(i, _)| start + i)
                .collect();
            ends.reverse();
            for e in ends {
                if self.check_span(text, start, e) {
                    return Some((start, e));
                }
            }
        }
        None
    }

    fn check_span(&self, text: &str, start: usize, end: usize) -> bool {
        let Some(s) = text.get(start..end) else {
            return false;
        };
        let before = text.get(..start).and_then(|t| t.chars().next_back());
        let after = text.get(end..).unwrap_or("");
        if self.isolated && !isolated(text, start, end) {
            return false;
        }
        // `%20867-5309`: the `20` belongs to an escape, not to the candidate (the
        // decoded copy of the text is searched as well).
        if before == Some('%') && s.bytes().take(2).filter(u8::is_ascii_hexdigit).count() == 2 {
            return false;
        }
        match self.check {
            Check::None => true,
            Check::Validator(v) => match v {
                Validator::Luhn => validate::luhn(s),
                Validator::Card => validate::card(s),
                Validator::Ssn => validate::ssn(s),
                Validator::Iban => validate::iban(s),
                Validator::Npi => validate::npi(s),
                Validator::Dea => validate::dea(s),
                Validator::Phone => {
                    // `DE89 3704 0044 0532 0130 01`: a `00` group inside a longer run of
                    // digit groups is not an international prefix.
                    let inside_groups = s.starts_with("00")
                        && text
                            .get(..start)
                            .unwrap_or("")
                            .trim_end_matches([' ', '-', '.'])
                            .ends_with(|c: char| c.is_ascii_digit());
                    !inside_groups && validate::phone(s)
                }
                Validator::Ipv4 => validate::ipv4(s, text.get(..start).unwrap_or(""), after),
                Validator::Ipv6 => validate::ipv6(s, before, after),
                Validator::Date => validate::date(s),
                Validator::AbaRouting => validate::aba_routing(s),
                Validator::Vin => validate::vin(s),
            },
            Check::Mac => {
                let seps: Vec<u8> = s.bytes().filter(|b| *b == b':' || *b == b'-').collect();
                seps.windows(2).all(|w| w[0] == w[1])
                    && s.bytes().any(|b| b.is_ascii_alphanumeric() && b != b'0')
            }
            Check::SecretValue => {
                let quote = before.filter(|c| *c == '"' || *c == '\'');
                let quoted = quote.is_some_and(|q| after.starts_with(q));
                secret_value(s, quoted)
                    && (quoted || !passes_itself(text.get(..start).unwrap_or(""), s))
            }
            Check::HasDigit => s.bytes().any(|b| b.is_ascii_digit()),
            Check::Clinical(list) => clinical::is_phrase_list(s, list),
            Check::PlateLike => {
                let alnum = s.bytes().filter(u8::is_ascii_alphanumeric).count();
                (4..=8).contains(&alnum)
                    && s.bytes().any(|b| b.is_ascii_digit())
                    && s.bytes().any(|b| b.is_ascii_alphabetic())
            }
            Check::PasswordLike => {
                let v = s.trim_end_matches(['.', ',', ';', ':', ')', '!', '?']);
                secret_value(v, false)
                    && v.bytes().any(|b| b.is_ascii_alphabetic())
                    && v.bytes().any(|b| !b.is_ascii_alphabetic())
                    && !v.contains("://")
                    && !is_code_reference(v)
            }
            Check::HexId => {
                let hex = s.bytes().filter(u8::is_ascii_hexdigit);
                let (mut digit, mut lower, mut upper) = (false, false, false);
                for b in hex {
                    digit |= b.is_ascii_digit();
                    lower |= b.is_ascii_lowercase();
                    upper |= b.is_ascii_uppercase();
                }
                digit && (lower != upper)
            }
            Check::PathId => {
                !s.starts_with([':', '{', '[', '<', '*', '$', '%'])
                    && s.bytes().any(|b| b.is_ascii_digit() || b == b'@')
            }
            Check::FullName => names::is_full_name(s),
            Check::GivenNameFirst => names::starts_with_given_name(s),
            Check::RoleName => names::is_role_name(s),
            Check::WrittenName => names::is_written_name(s),
            Check::LowerName => names::is_lower_name(s),
            Check::BirthDate => validate::birth_date(s),
            Check::AccountNumber => validate::account_number(s),
            Check::AccountNotRouting => {
                validate::account_number(s) && s.bytes().filter(u8::is_ascii_digit).count() != 9
            }
            Check::RandomToken => {
                validate::random_token(s)
                    && secret_value(s, true)
                    && !names_a_lookup_key(text.get(..start).unwrap_or(""))
            }
            Check::HomeUser => !matches!(
                s.to_ascii_lowercase().as_str(),
                "shared" | "public" | "default" | "all users"
            ),
        }
    }
}

/// A number not glued to more digits by `-` or `.` and not inside a word.
fn isolated(text: &str, start: usize, end: usize) -> bool {
    let glued = |near: &mut std::str::Chars<'_>, reversed: bool| -> bool {
        let mut next = || {
            if reversed {
                near.next_back()
            } else {
                near.next()
            }
        };
        match (next(), next()) {
            (Some(c), _) if c.is_alphanumeric() || c == '_' => true,
            (Some(c), Some(d)) => (c == '-' || c == '.' || c == '/') && d.is_ascii_digit(),
            _ => false,
        }
    };
    let mut before = text.get(..start).unwrap_or("").chars();
    let mut after = text.get(end..).unwrap_or("").chars();
    !glued(&mut before, true) && !glued(&mut after, false)
}

/// `idempotency key …`, `cache key …`: keys that look things up, not credentials.
fn names_a_lookup_key(before: &str) -> bool {
    const LOOKUP: &[&str] = &[
        "idempotency",
        "cache",
        "dedup",
        "dedupe",
        "deduplication",
        "partition",
        "primary",
        "foreign",
        "sort",
        "routing",
        "lookup",
        "object",
        "storage",
        "s3",
    ];
    let tail = before
        .get(before.len().saturating_sub(40)..)
        .unwrap_or(before);
    let lower = tail.to_ascii_lowercase();
    let mut words = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .rev();
    // `start` is the token's (`idempotency key |…`) or the match's (`idempotency |key …`).
    match words.next() {
        Some("key" | "keys") => words.next().is_some_and(|w| LOOKUP.contains(&w)),
        Some(w) => LOOKUP.contains(&w),
        None => false,
    }
}

/// A value after `*` that is a mask keeping a tail (`****1234`) or a splat of a name
/// (`*args`, `**kwargs`), not a secret that happens to open with `*` (`*fPws5suM2Ti4E`).
pub(crate) fn masked_or_splat(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('*') else {
        return false;
    };
    let rest = rest.trim_start_matches('*');
    rest.bytes().all(|c| c.is_ascii_digit())
        || rest.bytes().all(|c| c.is_ascii_alphabetic() || c == b'_')
}

fn secret_value(s: &str, quoted: bool) -> bool {
    let v = s.trim();
    // A label, also with the sentence's punctuation after it (`token=[Filtered].`): a
    // value redacted before, which a second pass must leave as the first left it.
    let bare = v.trim_end_matches(['.', ',', ';', ':', '!', '?', ')']);
    if v.is_empty() || bare.starts_with('[') && bare.ends_with(']') {
        return false;
    }
    let lower = v.to_ascii_lowercase();
    !matches!(
        lower.as_str(),
        "%s" | "?"
            | "null"
            | "none"
            | "nil"
            | "undefined"
            | "true"
            | "false"
            | "{}"
            | "''"
            | "new"
            | "await"
            // Encodings handed to the same calls (`Buffer.from(password, 'base64')`).
            | "utf8"
            | "utf-8"
            | "base64"
            | "base64url"
            | "hex"
            | "ascii"
            | "latin1"
            | "binary"
    ) && !v.starts_with(['$', '{', ':', '%', '<', '=', '>', '`'])
        && !masked_or_splat(v)
        && !v.chars().all(|c| c == '*' || c == 'x' || c == 'X')
        && !is_type_name(&lower)
        && (quoted || !is_code_reference(v))
}

/// A type in an annotation or a signature (`password: str`, `token: "Optional[str]"`).
fn is_type_name(lower: &str) -> bool {
    matches!(
        lower,
        "str" | "string" | "bytes" | "int" | "bool" | "any" | "number" | "object"
    ) || ["optional[", "union[", "list[", "dict[", "str |"]
        .iter()
        .any(|p| lower.starts_with(p))
}

/// Source lines in frames assign expressions, not secrets: `token = _scope.set(new)`,
/// `self.secret_key = parts.password`, `password = os.environ[`. An unquoted value is code
/// when it is a call, an index into a named value (`auth[2]`), or a dotted path of
/// identifiers that starts at a well-known object
/// (`self.`, `os.`, `settings.`, …) or ends at a secret-named attribute (`parts.password`).
/// Anything else (`password=correct.horse` in a log line) and every quoted literal stays a
/// secret.
fn is_code_reference(v: &str) -> bool {
    if v.contains('(') {
        return true;
    }
    let (path, indexed) = match v.split_once('[') {
        Some((path, _)) => (path, true),
        None => (v, false),
    };
    let identifier = |seg: &str| {
        seg.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    if !path.split('.').all(identifier) {
        return false;
    }
    if indexed {
        return true;
    }
    if !path.contains('.') {
        return false;
    }
    let first = path.split('.').next().unwrap_or("");
    let last = path.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    matches!(
        first,
        "self" | "cls" | "this" | "os" | "process" | "settings" | "config" | "env" | "app"
    ) || [
        "pass",
        "pwd",
        "secret",
        "token",
        "key",
        "credential",
        "auth",
    ]
    .iter()
    .any(|w| last.contains(w))
}

/// `next_token=next_token`, `self.password = password`, `"password": password`: a variable
/// handed on under its own name is code, not a secret. `before` is the text up to the value.
fn passes_itself(before: &str, value: &str) -> bool {
    let key_end = before
        .trim_end_matches([' ', '\t'])
        .strip_suffix(['=', ':'])
        .unwrap_or("")
        .trim_end_matches([' ', '\t'])
        .trim_end_matches(['"', '\'']);
    let before_key = key_end.trim_end_matches(|c: char| c.is_ascii_alphanumeric() || c == '_');
    let key = key_end.get(before_key.len()..).unwrap_or("");
    !key.is_empty() && key.eq_ignore_ascii_case(value.trim().trim_end_matches(['}', ']']))
}

/// Whether one of `words` (lowercase) occurs in the `window` bytes before `start`, outside
/// the `inert` spans (labels and pseudonyms scrubgate wrote), and at the start of a word:
/// after a character that is not a letter, or as the next word of a camelCase key
/// (`patientDOB`, `dateOfBirth`). So `dob` is not found in `adobe`, `born` not in
/// `stubborn`, `tel` not in `hotel`.
/// Whether a key's words (`contact`, `sms_to`, `callbackPhone`, `To`) hold one of a
/// detector's context words or its key-only words.
fn key_names_context(key: &str, words: &[&str], key_words: &[&str]) -> bool {
    spaced_key(key).is_some_and(|spaced| spaced_names_context(&spaced, words, key_words))
}

/// `key` as lower-case words (`callbackPhone` → `callback phone`); `None` for no key or
/// one too long to be a name.
fn spaced_key(key: &str) -> Option<String> {
    if key.is_empty() || key.len() > 64 {
        return None;
    }
    let mut spaced = String::with_capacity(key.len() + 8);
    let mut prev_lower = false;
    for c in key.chars() {
        if c.is_ascii_uppercase() && prev_lower {
            spaced.push(' ');
        }
        prev_lower = c.is_ascii_lowercase();
        spaced.push(if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            ' '
        });
    }
    Some(spaced)
}

fn spaced_names_context(spaced: &str, words: &[&str], key_words: &[&str]) -> bool {
    let key_word = |w: &&str| spaced.split(' ').any(|part| part == *w);
    near_keyword(spaced, spaced.len(), spaced.len(), words, &[]) || key_words.iter().any(key_word)
}

pub(crate) fn near_keyword(
    text: &str,
    start: usize,
    window: usize,
    words: &[&str],
    inert: &[(usize, usize)],
) -> bool {
    let mut from = start.saturating_sub(window);
    while from > 0 && !text.is_char_boundary(from) {
        from -= 1;
    }
    let Some(before) = text.get(from..start) else {
        return false;
    };
    let lower = before.to_ascii_lowercase();
    let raw = before.as_bytes();
    let word_start = |i: usize| match i.checked_sub(1).and_then(|p| raw.get(p)) {
        None => {
            from == 0
                || !text
                    .as_bytes()
                    .get(from - 1)
                    .is_some_and(u8::is_ascii_alphabetic)
        }
        Some(prev) if !prev.is_ascii_alphabetic() => true,
        Some(prev) => prev.is_ascii_lowercase() && raw.get(i).is_some_and(u8::is_ascii_uppercase),
    };
    words.iter().any(|w| {
        lower
            .match_indices(w)
            .any(|(i, _)| word_start(i) && !inside(inert, from + i, from + i + w.len()))
    })
}

#[cfg(test)]
mod tests;
