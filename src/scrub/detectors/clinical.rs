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

use std::collections::HashSet;
use std::sync::LazyLock;

const CONDITIONS: &str = include_str!("clinical/conditions.txt");
const MEDICATIONS: &str = include_str!("clinical/medications.txt");

/// The longest phrase in either list, in words.
const MAX_PHRASE_WORDS: usize = 6;

type PhraseSet = HashSet<&'static str, foldhash::fast::FixedState>;

static CONDITION_SET: LazyLock<PhraseSet> = LazyLock::new(|| phrase_set(CONDITIONS));
static MEDICATION_SET: LazyLock<PhraseSet> = LazyLock::new(|| phrase_set(MEDICATIONS));

fn phrase_set(list: &'static str) -> PhraseSet {
    let lines = memchr::memchr_iter(b'\n', list.as_bytes()).count();
    let mut set = PhraseSet::with_capacity_and_hasher(lines, Default::default());
    set.extend(list.lines().filter(|l| !l.is_empty()));
    set
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
    let lower = span.to_ascii_lowercase();
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
}
