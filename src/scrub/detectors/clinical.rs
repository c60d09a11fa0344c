//! The dictionaries behind the `condition` and `medication` detectors: a diagnosis or a
//! drug in free text (`dx: type 2 diabetes`, `started on metformin 500 mg`), which no
//! shape gives away. A clinical phrase alone is not PHI (`cold start`, `stroke width`,
//! `iron` are code), so the detectors only ask these lists about the words right after a
//! clinical context word (`diagnosed with`, `history of`, `allergic to`, `prescribed`).
//!
//! The lists are made by `scripts/clinical-dicts` from public-domain sources (ICD-10-CM
//! for conditions; see `clinical/README.md`), lower case, one phrase per line, one-word
//! entries that are common words in source code left out. They lie in the binary as text;
//! the first lookup builds one hash set of each.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::LazyLock;

const CONDITIONS: &str = include_str!("clinical/conditions.txt");
const MEDICATIONS: &str = include_str!("clinical/medications.txt");

/// The longest phrase in either list, in words.
const MAX_PHRASE_WORDS: usize = 6;

type PhraseSet = HashSet<Cow<'static, str>, foldhash::fast::FixedState>;

static CONDITION_SET: LazyLock<PhraseSet> = LazyLock::new(|| phrase_set(CONDITIONS));
static MEDICATION_SET: LazyLock<PhraseSet> = LazyLock::new(|| phrase_set(MEDICATIONS));
/// The first word of every phrase of either list (and of its other spellings): a word
/// not in it starts no phrase, so most words of a text cost one lookup.
static FIRST_WORDS: LazyLock<PhraseSet> = LazyLock::new(|| {
    let mut set = PhraseSet::default();
    for phrase in CONDITION_SET.iter().chain(MEDICATION_SET.iter()) {
        let first = phrase.split(' ').next().unwrap_or("");
        if !set.contains(first) {
            set.insert(Cow::Owned(first.to_owned()));
        }
    }
    set
});

/// Each phrase as listed, and as it is also written: hyphens dropped or spaced
/// (`gastro-esophageal`, `gastroesophageal`, `gastro esophageal`) and possessives without
/// their apostrophe or `'s` (`parkinson's`, `parkinsons`, `parkinson`).
fn phrase_set(list: &'static str) -> PhraseSet {
    let lines = memchr::memchr_iter(b'\n', list.as_bytes()).count();
    let mut set = PhraseSet::with_capacity_and_hasher(lines + lines / 8, Default::default());
    for phrase in list.lines().filter(|l| !l.is_empty()) {
        set.insert(Cow::Borrowed(phrase));
        for variant in spellings(phrase) {
            set.insert(Cow::Owned(variant));
        }
    }
    set
}

/// The other ways `phrase` is commonly written (see [`phrase_set`]).
fn spellings(phrase: &str) -> Vec<String> {
    let mut out = Vec::new();
    // Only between parts of three letters or more: `retin-a` written without its hyphen
    // is the word `retina`, and `matrix-m` spaced is `matrix m`.
    let parts_long = phrase
        .split([' ', '-'])
        .all(|part| part.len() >= 3 || part.is_empty());
    if phrase.contains('-') && parts_long {
        out.push(phrase.replace('-', ""));
        out.push(phrase.replace('-', " "));
    }
    if phrase.contains("'s") {
        out.push(phrase.replace("'s", "s"));
        out.push(phrase.replace("'s", ""));
    }
    out.retain(|v| !v.is_empty() && v != phrase);
    out
}

/// Which list a span is read against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Clinical {
    Condition,
    Medication,
}

/// Words that join the items of a list (`asthma and copd`, `aspirin/clopidogrel`).
const JOINERS: &[&str] = &["and", "or", "&", "/", "+", "plus"];

/// Dose forms and units that may follow a drug's name and strength (`metformin 500 mg
/// tablet`); they belong to the medication and go with it.
const DOSE_WORDS: &[&str] = &[
    "mg",
    "mcg",
    "g",
    "ml",
    "l",
    "unit",
    "units",
    "iu",
    "meq",
    "mmol",
    "%",
    "tab",
    "tabs",
    "tablet",
    "tablets",
    "cap",
    "caps",
    "capsule",
    "capsules",
    "er",
    "xr",
    "xl",
    "sr",
    "dr",
    "ec",
    "odt",
    "inhaler",
    "patch",
    "injection",
    "solution",
    "suspension",
    "cream",
    "ointment",
    "drops",
    "spray",
    "syrup",
    "puff",
    "puffs",
];

/// Whether `span` is a list of one or more phrases of `list` (each a whole phrase,
/// separated by a comma, a semicolon or a joining word; medications may carry a strength
/// and a dose form), and nothing else. Case is ignored.
pub(crate) fn is_phrase_list(span: &str, list: Clinical) -> bool {
    let set: &PhraseSet = match list {
        Clinical::Condition => &CONDITION_SET,
        Clinical::Medication => &MEDICATION_SET,
    };
    if span.is_empty() || span.len() > 400 || span.ends_with([',', ';', '-', '/']) {
        return false;
    }
    let lower = span.to_ascii_lowercase().replace('\u{2019}', "'");
    // Words, and whether a comma or semicolon ended each.
    let mut words: Vec<(&str, bool)> = Vec::new();
    for raw in lower.split([' ', '\t']).filter(|w| !w.is_empty()) {
        let word = raw.trim_end_matches([',', ';']);
        if word.is_empty() {
            match words.last_mut() {
                Some(last) => last.1 = true,
                None => return false,
            }
            continue;
        }
        words.push((word, word.len() < raw.len()));
    }
    let mut i = 0usize;
    let mut phrases = 0usize;
    let mut buf = String::with_capacity(64);
    while i < words.len() {
        // The longest phrase starting at word `i`.
        let mut end = None;
        let longest = (words.len() - i).min(MAX_PHRASE_WORDS);
        for n in (1..=longest).rev() {
            // A comma inside a phrase ends it.
            if words[i..i + n - 1].iter().any(|(_, sep)| *sep) {
                continue;
            }
            buf.clear();
            for (k, (w, _)) in words[i..i + n].iter().enumerate() {
                if k > 0 {
                    buf.push(' ');
                }
                buf.push_str(w);
            }
            if set.contains(buf.as_str()) {
                end = Some(i + n);
                break;
            }
        }
        let Some(mut next) = end else {
            return false;
        };
        phrases += 1;
        if list == Clinical::Medication {
            while let Some((w, sep)) = words.get(next) {
                if !is_dose_word(w) || words[next - 1].1 {
                    break;
                }
                next += 1;
                if *sep {
                    break;
                }
            }
        }
        i = next;
        if i == words.len() {
            break;
        }
        // What joins this item to the next: its own trailing comma, or a joining word.
        if !words[i - 1].1 {
            if !JOINERS.contains(&words[i].0) || words[i].1 {
                return false;
            }
            i += 1;
            if i == words.len() {
                return false;
            }
        }
    }
    phrases > 0
}

/// A strength (`500`, `0.5`, `500mg`, `10mg/ml`, `2.5%`) or a dose form or unit.
fn is_dose_word(w: &str) -> bool {
    if DOSE_WORDS.contains(&w) {
        return true;
    }
    let digits = w
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    if digits == 0 || !w.starts_with(|c: char| c.is_ascii_digit()) {
        return false;
    }
    let unit = w.get(digits..).unwrap_or("");
    unit.is_empty() || unit.split('/').all(|u| DOSE_WORDS.contains(&u))
}

/// A dictionary phrase standing as words of its own in free text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Phrase {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) list: Clinical,
}

/// Text longer than this is not searched for phrases anywhere (a scan's limits are the
/// detectors' own; this pass only runs on payloads that name a patient).
const MAX_FIND_LEN: usize = 64 * 1024;

/// Every phrase of either list that stands in `text` as whole words of prose, left to
/// right, the longest at each word, none overlapping: for text in a payload that already
/// names a patient, where a diagnosis needs no context word to be theirs. Words glued to
/// an identifier (`asthma_flag`, `lib/asthma.rs`, `gout=1`) are not prose and never
/// match; a string of one word is a value, not prose (`mode: delirium`). One word alone
/// is a common word too often (`key tremor`, `enum value cancer`): it is a phrase only
/// as an abbreviation in capitals (`CHF`, `COPD`), or with a word of a disease's course
/// beside it (`severe asthma`, `asthma (chronic)`, `gout flare`); a drug's name is a made-up
/// word, and stands alone from six letters (`metoprolol`), shorter with its strength after it
/// (`Yaz 28 tabs`).
pub(crate) fn find_phrases(text: &str) -> Vec<Phrase> {
    let mut found = Vec::new();
    if text.len() > MAX_FIND_LEN
        || !text.bytes().any(|b| b.is_ascii_alphabetic())
        || !text.trim().contains([' ', '\t'])
    {
        return found;
    }
    let words = prose_words(text);
    let mut key = String::with_capacity(64);
    let mut i = 0usize;
    while i < words.len() {
        key.clear();
        push_lower(
            &mut key,
            text.get(words[i].start..words[i].end).unwrap_or(""),
        );
        if !words[i].open || !FIRST_WORDS.contains(key.as_str()) {
            i += 1;
            continue;
        }
        let mut matched = None;
        let longest = (words.len() - i).min(MAX_PHRASE_WORDS);
        for n in (1..=longest).rev() {
            let (first, last) = (words[i], words[i + n - 1]);
            if !first.open || !last.close {
                continue;
            }
            // Only blanks inside a phrase.
            if words[i..i + n]
                .windows(2)
                .any(|w| !blank(text.get(w[0].end..w[1].start).unwrap_or("x")))
            {
                continue;
            }
            let span = text.get(first.start..last.end).unwrap_or("");
            key.clear();
            for (k, w) in words[i..i + n].iter().enumerate() {
                if k > 0 {
                    key.push(' ');
                }
                push_lower(&mut key, text.get(w.start..w.end).unwrap_or(""));
            }
            let list = if CONDITION_SET.contains(key.as_str()) {
                Clinical::Condition
            } else if MEDICATION_SET.contains(key.as_str()) {
                Clinical::Medication
            } else {
                continue;
            };
            // Abbreviations in capitals name conditions (`CHF`); a drug in capitals is
            // as often a constant (`'YAZ'`).
            let abbreviation = list == Clinical::Condition
                && span.len() >= 3
                && !span.bytes().any(|b| b.is_ascii_lowercase());
            // One word in quotes of its own is a literal of code (`fmt == 'viread'`).
            let quoted = n == 1
                && {
                    let before = text[..first.start].chars().next_back();
                    let after = text[last.end..].chars().next();
                    matches!((before, after), (Some(b), Some(a)) if b == a && matches!(a, '\'' | '"' | '`'))
                };
            if quoted || (n == 1 && !abbreviation && !single_word_cue(text, &words, i, list)) {
                continue;
            }
            matched = Some((n, list));
            break;
        }
        match matched {
            Some((n, list)) => {
                found.push(Phrase {
                    start: words[i].start,
                    end: words[i + n - 1].end,
                    list,
                });
                i += n;
            }
            None => i += 1,
        }
    }
    found
}

/// Words of a disease's course: one beside a one-word condition makes it a diagnosis.
const COURSE_WORDS: &[&str] = &[
    "acute",
    "chronic",
    "severe",
    "mild",
    "moderate",
    "recurrent",
    "persistent",
    "uncontrolled",
    "controlled",
    "worsening",
    "exacerbation",
    "flare",
    "flare-up",
    "episode",
    "attack",
    "stage",
    "remission",
    "relapse",
    "symptoms",
];

/// A one-word drug name this long needs no strength beside it.
const MIN_LONE_DRUG_LEN: usize = 6;

/// Whether the one-word phrase at word `i` has its cue (see [`find_phrases`]): a course
/// word right before or after it (only blanks, brackets, a comma or a colon between), or
/// for a drug, a strength right after it.
fn single_word_cue(text: &str, words: &[Word], i: usize, list: Clinical) -> bool {
    let near = |a: Word, b: Word| {
        text.get(a.end..b.start)
            .is_some_and(|gap| gap.bytes().all(|c| b" \t(),:".contains(&c)) && !gap.is_empty())
    };
    let word_at = |j: usize| {
        words
            .get(j)
            .and_then(|w| text.get(w.start..w.end))
            .map(str::to_ascii_lowercase)
    };
    match list {
        Clinical::Condition => {
            let before = i
                .checked_sub(1)
                .filter(|&j| near(words[j], words[i]))
                .and_then(word_at);
            let after = words
                .get(i + 1)
                .filter(|w| near(words[i], **w))
                .and_then(|_| word_at(i + 1));
            [before, after]
                .iter()
                .flatten()
                .any(|w| COURSE_WORDS.contains(&w.as_str()))
        }
        // Drug names are made-up words (`metoprolol`, `Lantus`), not English: a long one
        // stands alone; a short one needs its strength after it.
        Clinical::Medication => {
            words[i].end - words[i].start >= MIN_LONE_DRUG_LEN
                || words
                    .get(i + 1)
                    .filter(|w| near(words[i], **w))
                    .and_then(|_| word_at(i + 1))
                    .is_some_and(|w| {
                        is_dose_word(&w) && w.starts_with(|c: char| c.is_ascii_digit())
                    })
        }
    }
}

/// Appends `word` as the lists spell it: lower case, `’` as `'`.
fn push_lower(key: &mut String, word: &str) {
    key.extend(word.chars().map(|c| match c {
        '\u{2019}' => '\'',
        c => c.to_ascii_lowercase(),
    }));
}

/// A word of [`find_phrases`]: its bytes, and whether it may open or close a phrase
/// (nothing but a blank, a bracket, a quote or punctuation of prose beside it).
#[derive(Debug, Clone, Copy)]
struct Word {
    start: usize,
    end: usize,
    open: bool,
    close: bool,
}

fn prose_words(text: &str) -> Vec<Word> {
    let bytes = text.as_bytes();
    let mut words = Vec::new();
    let mut i = 0usize;
    while i < bytes.len() {
        if !word_byte(bytes, i) {
            i += 1;
            continue;
        }
        let mut start = i;
        while i < bytes.len() && word_byte(bytes, i) {
            i += if bytes[i] == 0xE2 { 3 } else { 1 };
        }
        let mut end = i.min(bytes.len());
        // Quotes and hyphens at a word's edges are not part of it.
        while start < end && matches!(bytes[start], b'\'' | b'-' | 0xE2) {
            start += if bytes[start] == 0xE2 { 3 } else { 1 };
        }
        while start < end && matches!(bytes[end - 1], b'\'' | b'-' | 0x99) {
            end -= if bytes[end - 1] == 0x99 { 3 } else { 1 };
        }
        if start >= end || !text.is_char_boundary(start) || !text.is_char_boundary(end) {
            continue;
        }
        // A capital after a small letter (`viRead`, `iPhone`) makes an identifier.
        let camel = bytes[start..end]
            .windows(2)
            .any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase());
        let before = text[..start].chars().next_back();
        let after = text[end..].chars().next();
        let open =
            !camel && before.is_none_or(|c| c.is_whitespace() || "([{\"'\u{2019},;:".contains(c));
        let close = !camel
            && match after {
                None => true,
                Some('.' | '?' | '!') => text[end + 1..]
                    .chars()
                    .next()
                    .is_none_or(|c| !c.is_alphanumeric() && c != '_'),
                Some(c) => c.is_whitespace() || ")]}\"'\u{2019},;:".contains(c),
            };
        words.push(Word {
            start,
            end,
            open,
            close,
        });
    }
    words
}

/// ASCII letters and digits, `'`, `-`, and the typographic apostrophe `’`.
fn word_byte(bytes: &[u8], i: usize) -> bool {
    match bytes[i] {
        b if b.is_ascii_alphanumeric() || b == b'\'' || b == b'-' => true,
        0xE2 => bytes.get(i + 1..i + 3) == Some(&[0x80, 0x99]),
        _ => false,
    }
}

fn blank(gap: &str) -> bool {
    !gap.is_empty() && gap.bytes().all(|b| b == b' ' || b == b'\t')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(s: &str) -> bool {
        is_phrase_list(s, Clinical::Condition)
    }

    fn med(s: &str) -> bool {
        is_phrase_list(s, Clinical::Medication)
    }

    #[test]
    fn a_list_of_whole_phrases_is_accepted_and_anything_more_is_not() {
        assert!(cond("hypertension"));
        assert!(cond("Type 2 Diabetes"));
        assert!(cond("hypertension, asthma and copd"));
        assert!(cond("asthma; hypertension"));
        assert!(!cond("hypertension since 2019"));
        assert!(!cond("hypertension,"));
        assert!(!cond("hypertension and"));
        assert!(!cond("start"));
        assert!(!cond(""));
    }

    #[test]
    fn a_medication_carries_its_strength_and_form() {
        assert!(med("metformin"));
        assert!(med("metformin 500 mg"));
        assert!(med("Metformin 500mg tablets"));
        assert!(med("lisinopril 10 mg, atorvastatin 40mg"));
        assert!(med("aspirin and clopidogrel"));
        assert!(!med("metformin twice daily"));
        assert!(!med("500 mg"));
    }

    #[test]
    fn strengths_are_numbers_with_units() {
        for w in ["500", "0.5", "500mg", "10mg/ml", "2.5%"] {
            assert!(is_dose_word(w), "{w}");
        }
        for w in ["daily", "v2", "mg500", "500kg"] {
            assert!(!is_dose_word(w), "{w}");
        }
    }

    fn phrases(text: &str) -> Vec<(&str, Clinical)> {
        find_phrases(text)
            .into_iter()
            .map(|p| (&text[p.start..p.end], p.list))
            .collect()
    }

    #[test]
    fn phrases_are_found_as_whole_words_of_prose() {
        assert_eq!(
            phrases("underlying sleep apnea, on metformin 500 mg and yaz"),
            vec![
                ("sleep apnea", Clinical::Condition),
                ("metformin", Clinical::Medication)
            ]
        );
        assert_eq!(
            phrases("Alzheimer\u{2019}s disease exacerbation (chronic)."),
            vec![("Alzheimer\u{2019}s disease", Clinical::Condition)]
        );
        assert_eq!(
            phrases("comorbid gastroesophageal reflux disease and Parkinsons disease"),
            vec![
                ("gastroesophageal reflux disease", Clinical::Condition),
                ("Parkinsons disease", Clinical::Condition)
            ]
        );
        assert_eq!(
            phrases("follow-up for CHF"),
            vec![("CHF", Clinical::Condition)]
        );
        assert_eq!(
            phrases("asthma (chronic), severe gout"),
            vec![
                ("asthma", Clinical::Condition),
                ("gout", Clinical::Condition)
            ]
        );
    }

    #[test]
    fn words_glued_to_identifiers_and_short_lower_case_words_are_not_phrases() {
        for text in [
            "delirium",
            "enum value cancer unknown",
            "key tremor of the pedal",
            "fmt == 'viread' here",
            "'viPeek32', 'viRead', 'viPoke8'",
            "the matrix M is antisymmetric",
            "enable 'png', 'retina', 'jpeg'",
            "'YAZ': ('yaz_addinfo',",
            "asthma_flag",
            "lib/asthma.rs",
            "gout=1",
            "asthma.py",
            "a chf b",
            "tic tac toe",
            "#asthma",
            "[condition]",
        ] {
            assert!(phrases(text).is_empty(), "{text}");
        }
    }

    #[test]
    fn spellings_cover_hyphens_and_possessives() {
        assert!(cond("gastroesophageal reflux disease"));
        assert!(cond("gastro esophageal reflux disease"));
        assert!(cond("Parkinson disease"));
        assert!(cond("Parkinson\u{2019}s disease"));
    }
}
