//! The dictionary behind the `full_name` detector: a person's name in free text with no
//! context word in front of it (`Could not bill Maria Gonzalez`), which `person_name`
//! cannot see.
//!
//! A capitalised word pair is a name only if its first word is a known given name and every
//! word after it (a middle initial aside) a known surname. The lists are the US Census
//! Bureau's 1990 name frequency files (public domain): 5,163 given names, 88,799 surnames,
//! upper case, sorted, one per line in `names/`. Surnames include many English words
//! (`Server`, `Test`, `Payment`, `Gold`), so the given name carries the decision; given names
//! that are also everyday words, months, places or brands (`Will`, `May`, `Grant`, `Virginia`,
//! `Mercedes`) are left out, since `Grant Access` or `Virginia Beach` are more often text
//! than people. A name behind a context word (`patient Grant Hill`) is still found by
//! `person_name`, which also uses the given names to tell `name: Maria` from
//! `name: Optional` ([`starts_with_given_name`]).
//!
//! The lists lie in the binary as text; the first lookup builds one hash set of each
//! (93,962 entries pointing into that text: ~25 M instructions, once per process). A binary
//! search over the text, which built nothing, cost ~350 instructions a lookup, a tenth of a
//! name-heavy envelope's scrub; the set costs ~40.

use std::collections::HashSet;
use std::sync::LazyLock;

const GIVEN_NAMES: &str = include_str!("names/first.txt");
const SURNAMES: &str = include_str!("names/last.txt");

/// Given names that are function words (`In Progress`, `My Account`, `So Long`): never taken
/// for a name, not even after `name:`.
const NEVER_A_NAME: &[&str] = &[
    "AN", "BEE", "DOT", "ERA", "HA", "IN", "LE", "MA", "MAN", "MY", "OK", "PA", "SEE", "SO", "SUN",
    "TU", "UN",
];

/// Given names that are more often an everyday word, month, place or brand in software text:
/// a name only after a context word (`name: Grant Hill`).
const OFTEN_NOT_A_NAME: &[&str] = &[
    "ADA",
    "ALEXA",
    "ALPHA",
    "AMBER",
    "ANGEL",
    "APRIL",
    "ART",
    "AUGUST",
    "AUGUSTA",
    "AURORA",
    "AUSTIN",
    "AUTUMN",
    "BILL",
    "BRANDY",
    "BUCK",
    "BUD",
    "CANDY",
    "CAROLINA",
    "CHARITY",
    "CHARLOTTE",
    "CHASE",
    "CHELSEA",
    "CHERRY",
    "CHRISTIAN",
    "CLAY",
    "CLEVELAND",
    "COLUMBUS",
    "CRYSTAL",
    "DAKOTA",
    "DALLAS",
    "DARWIN",
    "DAWN",
    "DELL",
    "DELTA",
    "DENVER",
    "DESTINY",
    "DIAMOND",
    "DUSTY",
    "EARNEST",
    "EASTER",
    "ECHO",
    "FAITH",
    "FLORENCE",
    "FOREST",
    "GALE",
    "GAY",
    "GEORGIA",
    "GINGER",
    "GRACE",
    "GRANT",
    "HARMONY",
    "HELENA",
    "HOLLY",
    "HOPE",
    "HOUSTON",
    "IRIS",
    "IVY",
    "JACKSON",
    "JORDAN",
    "JOY",
    "JUNE",
    "KIA",
    "KING",
    "KIT",
    "LADY",
    "LANCE",
    "LANE",
    "LIBERTY",
    "LILY",
    "LINCOLN",
    "LONG",
    "MAC",
    "MADISON",
    "MAJOR",
    "MARK",
    "MAX",
    "MAY",
    "MELODY",
    "MERCEDES",
    "MERCY",
    "MILES",
    "MISS",
    "MISTY",
    "NOBLE",
    "NOVA",
    "OLIVE",
    "OMEGA",
    "ORLANDO",
    "PARIS",
    "PAT",
    "PATIENCE",
    "PEARL",
    "PENNY",
    "PORSCHE",
    "PRECIOUS",
    "PRINCE",
    "QUEEN",
    "RICH",
    "ROSE",
    "ROYAL",
    "RUBY",
    "RUSTY",
    "SAGE",
    "SANDY",
    "SAVANNAH",
    "SHERMAN",
    "SIERRA",
    "SON",
    "SPRING",
    "STAR",
    "STERLING",
    "SUMMER",
    "SUNDAY",
    "SUNNY",
    "SYDNEY",
    "TRINITY",
    "TROY",
    "VAN",
    "VENUS",
    "VICTORIA",
    "VIOLET",
    "VIRGINIA",
    "WILL",
];

/// The longest word looked up; longer ones are not in either list.
const MAX_WORD: usize = 24;

/// `word` upper-cased without apostrophes (`O'Brien` → `OBRIEN`, as the Census lists spell
/// it), or `None` if it is too long to be in them.
fn folded(word: &str, buf: &mut [u8; MAX_WORD]) -> Option<usize> {
    let mut len = 0;
    for b in word.bytes().filter(|&b| b != b'\'') {
        *buf.get_mut(len)? = b.to_ascii_uppercase();
        len += 1;
    }
    Some(len)
}

/// A name list's lines as a hash set, built on first use (a few milliseconds, once per
/// process): a lookup hashes the word once, where a binary search over the list's text
/// read about seventeen lines and cost ten times as much.
type LineSet = HashSet<&'static [u8], foldhash::fast::FixedState>;

static GIVEN_SET: LazyLock<LineSet> = LazyLock::new(|| line_set(GIVEN_NAMES));
static SURNAME_SET: LazyLock<LineSet> = LazyLock::new(|| line_set(SURNAMES));

fn line_set(list: &'static str) -> LineSet {
    let lines = memchr::memchr_iter(b'\n', list.as_bytes()).count();
    let mut set = LineSet::with_capacity_and_hasher(lines, Default::default());
    set.extend(list.lines().map(str::as_bytes));
    set
}

/// Whether `key` is one of `list`'s lines.
fn contains_line(list: &LineSet, key: &[u8]) -> bool {
    list.contains(key)
}

/// Looks `word` up, folded (see [`folded`]), with `found`; false if it is too long.
fn with_folded(word: &str, found: impl FnOnce(&[u8]) -> bool) -> bool {
    let mut buf = [0u8; MAX_WORD];
    folded(word, &mut buf).is_some_and(|len| found(&buf[..len]))
}

fn listed(list: &LineSet, word: &str) -> bool {
    with_folded(word, |key| contains_line(list, key))
}

fn is_given_name(word: &str, after_context: bool) -> bool {
    with_folded(word, |key| {
        let excluded = |list: &[&str]| list.binary_search_by(|n| n.as_bytes().cmp(key)).is_ok();
        contains_line(&GIVEN_SET, key)
            && !excluded(NEVER_A_NAME)
            && (after_context || !excluded(OFTEN_NOT_A_NAME))
    })
}

/// Whether `candidate`, found after the weak context `name:` / `name=`, starts with a known
/// given name. Source lines and docs say `name: "Optional[str]" = None` and
/// `name="My Span"`, and a `person_name` hit is echoed through the whole event, so without
/// this check `None` and `Optional` became `[name]` everywhere.
pub(crate) fn starts_with_given_name(candidate: &str) -> bool {
    candidate
        .split([' ', '\t'])
        .next()
        .is_some_and(|first| is_given_name(first, true))
}

/// Whether `word` is a known given name that is not often an ordinary word.
pub(crate) fn is_common_given_name(word: &str) -> bool {
    is_given_name(word, false)
}

fn is_surname(word: &str) -> bool {
    listed(&SURNAME_SET, word)
        || (word.contains('-') && word.split('-').all(|part| listed(&SURNAME_SET, part)))
}

/// Whether one capitalised word is a known given name (not one that is often an ordinary
/// word) or surname: how a lone field of a record full of PHI is recognised as a name.
pub(crate) fn is_name_word(word: &str) -> bool {
    is_given_name(word, false) || is_surname(word)
}

/// Whether `candidate` (a match of the `full_name` pattern: capitalised words separated by
/// blanks, perhaps with a middle initial) is a given name followed by surnames.
pub(crate) fn is_full_name(candidate: &str) -> bool {
    let mut words = candidate.split([' ', '\t']).filter(|w| !w.is_empty());
    let Some(given) = words.next() else {
        return false;
    };
    if !is_given_name(given, false) {
        return false;
    }
    let mut surnames = 0;
    for word in words {
        let initial = word.len() == 1 || (word.len() == 2 && word.ends_with('.'));
        if initial {
            continue;
        }
        if !is_surname(word) {
            return false;
        }
        surnames += 1;
    }
    surnames > 0
}

/// Words that read as a name's shape in capitals (`JORDAN JACKSON NOT VERIFIED`) but end
/// it: a name after a role word never runs into these.
const NOT_IN_A_NAME: &[&str] = &[
    "A", "AN", "AND", "ARE", "AS", "AT", "BE", "BY", "FOR", "FROM", "HAS", "HAD", "IN", "IS", "IT",
    "NO", "NOT", "OF", "ON", "OR", "THE", "TO", "WAS", "WITH",
];

/// Whether `candidate`, found right after a word for a person's role (`emergency contact
/// JORDAN JACKSON`, `account holder Smirnov, Omar`, `Dr. ÖZTÜRK, ANASTASIA`), is that
/// person's name: two or three capitalised or capital words, at least one of them a known
/// given name or surname or written with letters the lists cannot hold (`Łukasz`), and at
/// most one unknown word: the lists are American and miss `Henrik`, `Adaeze` or
/// `Smirnov`. Of three words the unknown one must stand in the given name's place (first,
/// or after the comma of `Last, First`): a word that follows a known name unknown
/// (`JORDAN JACKSON UNREACHABLE`) is not part of it.
pub(crate) fn is_role_name(candidate: &str) -> bool {
    // `Maria Gonzalez, DOB …` shrunk to `Maria Gonzalez,`: the comma ends the name.
    if candidate.ends_with(',') {
        return false;
    }
    let comma = candidate.find(',');
    let words: Vec<(usize, &str)> = candidate
        .split([' ', '\t', ','])
        .filter(|w| !w.is_empty())
        .filter(|w| !(w.chars().count() == 2 && w.ends_with('.')))
        .map(|w| (w.as_ptr() as usize - candidate.as_ptr() as usize, w))
        .collect();
    if words.len() < 2 || words.len() > 3 {
        return false;
    }
    let mut known = 0;
    let mut unknown = Vec::new();
    for (i, (at, word)) in words.iter().enumerate() {
        let mut upper = [0u8; MAX_WORD];
        if folded(word, &mut upper).is_some_and(|n| {
            NOT_IN_A_NAME
                .iter()
                .any(|stop| stop.as_bytes() == &upper[..n])
        }) {
            return false;
        }
        if !word.is_ascii() || is_given_name(word, true) || is_surname(word) {
            known += 1;
        } else {
            unknown.push((i, *at));
        }
    }
    // In three words the unknown one must stand where a given name does; in two, the
    // other word vouches for it.
    let given_place = |i: usize, at: usize| {
        words.len() == 2
            || match comma {
                Some(c) => at > c && i == 1,
                None => i == 0,
            }
    };
    known >= 1 && unknown.len() <= 1 && unknown.iter().all(|&(i, at)| given_place(i, at))
}

/// Whether `candidate`, found after the weak context `name:` / `name=`, is a name written
/// `Last, First` with a known given name, or with letters the lists cannot hold
/// (`Ramón Sasaki`): forms that code (`name: Optional`) does not take.
pub(crate) fn is_written_name(candidate: &str) -> bool {
    if !is_role_name(candidate) {
        return false;
    }
    match candidate.split_once(',') {
        Some((_, first)) => first
            .split([' ', '\t'])
            .find(|w| !w.is_empty())
            .is_some_and(|w| !w.is_ascii() || is_given_name(w, true)),
        None => !candidate.is_ascii(),
    }
}

/// Whether `candidate`, two lower-case words after a role word (`cardholder ryan
/// nguyen`), is a known given name and a known surname: in lower case the lists must hold
/// both (`patient record updated` is not a name).
pub(crate) fn is_lower_name(candidate: &str) -> bool {
    let mut words = candidate.split([' ', '\t']).filter(|w| !w.is_empty());
    match (words.next(), words.next()) {
        (Some(given), Some(surname)) => {
            given.is_ascii()
                && is_given_name(given, false)
                && (!surname.is_ascii() || is_surname(surname))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_after_a_role_word() {
        for name in [
            "JORDAN JACKSON",
            "Henrik Russell",
            "Smirnov, Omar",
            "HUANG, GABRIEL",
            "ÖZTÜRK, ANASTASIA",
            "Sebastián Gupta",
            "Maria J. Gonzalez",
        ] {
            assert!(is_role_name(name), "{name}");
        }
        for not in [
            "Jordan Jackson Unreachable",
            "Internal",
            "NOT VERIFIED",
            "Jackson Is",
            "Frobnicate Quux",
        ] {
            assert!(!is_role_name(not), "{not}");
        }
        assert!(is_lower_name("ryan nguyen"));
        assert!(is_lower_name("jonathan müller"));
        assert!(!is_lower_name("record updated"));
        assert!(!is_lower_name("is required"));
        assert!(is_written_name("Fitzgerald, Łukasz"));
        assert!(is_written_name("Smith, Maria"));
        assert!(is_written_name("Ramón Sasaki"));
        assert!(!is_written_name("Internal Server"));
        assert!(!is_written_name("Server, Error"));
    }

    #[test]
    fn lists_are_sorted_upper_case_and_unique() {
        for list in [GIVEN_NAMES, SURNAMES] {
            let lines: Vec<&str> = list.lines().collect();
            assert!(lines.windows(2).all(|w| w[0] < w[1]));
            assert!(lines
                .iter()
                .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_uppercase())));
        }
        assert_eq!(GIVEN_NAMES.lines().count(), 5163);
        assert_eq!(SURNAMES.lines().count(), 88799);
        for excluded in [NEVER_A_NAME, OFTEN_NOT_A_NAME] {
            assert!(excluded.windows(2).all(|w| w[0] < w[1]));
            assert!(excluded
                .iter()
                .all(|n| GIVEN_NAMES.lines().any(|l| l == *n)));
        }
        assert!(!NEVER_A_NAME.iter().any(|n| OFTEN_NOT_A_NAME.contains(n)));
    }

    #[test]
    fn every_entry_is_found_and_its_neighbours_are_not() {
        for (list, set) in [(GIVEN_NAMES, &*GIVEN_SET), (SURNAMES, &*SURNAME_SET)] {
            let all: std::collections::HashSet<&str> = list.lines().collect();
            assert_eq!(set.len(), all.len());
            for line in list.lines() {
                assert!(contains_line(set, line.as_bytes()), "{line}");
                let after = format!("{line}A");
                assert_eq!(
                    contains_line(set, after.as_bytes()),
                    all.contains(after.as_str()),
                    "{after}"
                );
            }
            for absent in [
                "",
                "A",
                "AAAAAAAAAAAAAAAAAAAAAAAA",
                "ZZZZZZZZZZZZ",
                "MAR IA",
            ] {
                assert!(!contains_line(set, absent.as_bytes()), "{absent}");
            }
        }
    }

    #[test]
    fn full_names() {
        for yes in [
            "Maria Gonzalez",
            "John Smith",
            "John Q. Smith",
            "Jennifer Lopez Garcia",
            "Patrick O'Brien",
            "Mary Smith-Jones",
            "Ronald McDonald",
            "Wei Li",
        ] {
            assert!(is_full_name(yes), "{yes}");
        }
        for no in [
            "Internal Server",
            "Grant Access",
            "Virginia Beach",
            "Will Smith",
            "Mark Payment",
            "John",
            "John Q.",
            "John Zzyzxqv",
            "Hello World",
            "Maria Gonzalez Requested",
            "Averyveryveryverylongname Smith",
            "In Progress",
            "My Account",
            "So Long",
        ] {
            assert!(!is_full_name(no), "{no}");
        }
    }

    #[test]
    fn given_name_after_a_name_label() {
        for yes in ["Pat Smith", "Grant", "Maria", "Will Turner"] {
            assert!(starts_with_given_name(yes), "{yes}");
        }
        for no in [
            "None",
            "Optional",
            "The name",
            "My Span",
            "Get user data",
            "Any",
            "",
        ] {
            assert!(!starts_with_given_name(no), "{no}");
        }
    }
}
