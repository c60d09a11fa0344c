//! The echo set of one envelope (every value a rule removed, with the replacement it got)
//! and the matcher that finds those values wherever else they appear.
//!
//! The values differ in every envelope, so whatever searches for them is built per
//! envelope. An Aho-Corasick automaton cost ~93,000 instructions to build for the usual one
//! to ten short values, about a tenth of scrubbing a typical SDK envelope. So for a few
//! values building is lowercasing each value and making a `memmem` finder for it, and a
//! search lowercases the haystack once and runs each finder over it, so both cost about as
//! much as the text. Each finder is a pass over the text, though, so past
//! [`FINDERS_UP_TO`] values one automaton (one pass whatever the number of values) is
//! cheaper, and the matcher builds that instead. Either way it is built once per set of
//! values and reused for every item of the envelope until a value is added.
//!
//! The matches are exactly those of Aho-Corasick's non-overlapping `find_iter` with
//! `MatchKind::LeftmostLongest` and `ascii_case_insensitive` (the tests use it as the
//! oracle), so the labels put in an event do not depend on which search ran.

use std::collections::HashSet;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use memchr::memmem::Finder;

use super::hashing::KeyedBuild;
use super::Method;

/// Up to this many values, one `memmem` finder per value; beyond, one automaton. An
/// automaton over nine or ten values cost ~230,000 instructions to build on the SDK
/// captures, more than the finders' extra passes over an envelope's strings.
const FINDERS_UP_TO: usize = 16;

/// At most this many distinct values are echoed per envelope: the set, the automaton and
/// the search stay bounded whatever an envelope holds. A value beyond the cap is still
/// redacted where a rule finds it, just not looked for elsewhere ([`EchoSet::not_echoed`]
/// counts these).
pub(crate) const MAX_ECHO_VALUES: usize = 256;
/// At most this many bytes of values per envelope (the same bound in bytes: 256 values of
/// the longest kind would be 256 KiB).
pub(crate) const MAX_ECHO_BYTES: usize = 32 * 1024;

/// Every value removed so far in one envelope, with the replacement its first removal
/// wrote, to be removed wherever else it appears in the envelope (every item, every
/// string). Carried from item to item by the caller ([`super::Scrubber::scrub_item`]);
/// [`super::Scrubber::scrub`] uses a fresh one per call.
///
/// Its `Debug` shows counts only: the values are payload data.
#[derive(Default)]
pub struct EchoSet {
    values: Vec<EchoValue>,
    /// The ASCII-lowercased values, for the duplicate check (the search ignores ASCII case,
    /// so values equal but for it are one value). Keyed: the values are the sender's.
    seen: HashSet<Box<str>, KeyedBuild>,
    bytes: usize,
    not_echoed: u64,
    /// The matcher for `values[..built_for]`, rebuilt when values were added since.
    matcher: Option<EchoMatcher>,
    built_for: usize,
}

/// One value and what its first removal wrote instead.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct EchoValue {
    pub(crate) value: String,
    pub(crate) replacement: String,
    /// The first removal's method: the echo is reported with it.
    pub(crate) method: Method,
}

impl std::fmt::Debug for EchoSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoSet")
            .field("values", &self.values.len())
            .field("bytes", &self.bytes)
            .field("not_echoed", &self.not_echoed)
            .finish_non_exhaustive()
    }
}

impl EchoSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many values are echoed. It only grows, so a caller that remembers it after
    /// scrubbing an item knows whether values were added since (and the item must be
    /// searched for them: [`super::Scrubber::echo_item`]).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Values that were redacted but not echoed because the set was full
    /// ([`MAX_ECHO_VALUES`], [`MAX_ECHO_BYTES`]); a value redacted several times counts
    /// each time.
    pub fn not_echoed(&self) -> u64 {
        self.not_echoed
    }

    /// Adds `value` (already judged worth echoing) unless a value equal but for ASCII case
    /// is in the set (the first keeps its replacement) or the set is full.
    pub(crate) fn insert(&mut self, value: &str, replacement: &str, method: Method) {
        if value.is_empty() {
            return;
        }
        let lower = value.to_ascii_lowercase();
        if self.seen.contains(lower.as_str()) {
            return;
        }
        if self.values.len() >= MAX_ECHO_VALUES || self.bytes + value.len() > MAX_ECHO_BYTES {
            self.not_echoed += 1;
            return;
        }
        self.bytes += value.len();
        self.seen.insert(lower.into_boxed_str());
        self.values.push(EchoValue {
            value: value.to_owned(),
            replacement: replacement.to_owned(),
            method,
        });
    }

    /// The matcher for every value now in the set, and the values (indexed by
    /// [`EchoMatch::pattern`]).
    pub(crate) fn matcher(&mut self) -> (&mut EchoMatcher, &[EchoValue]) {
        if self.built_for != self.values.len() {
            // Finders for a few values grow with the set (each value its own finder);
            // an automaton, or finders grown past their limit, are built anew.
            let grown = self.values.len() <= FINDERS_UP_TO
                && self.matcher.as_mut().is_some_and(|m| {
                    let new = self.values.iter().skip(self.built_for);
                    m.push_finders(new.map(|v| v.value.as_str()), self.built_for)
                });
            if !grown {
                self.matcher = None;
            }
            self.built_for = self.values.len();
        }
        let values = &self.values;
        let matcher = self
            .matcher
            .get_or_insert_with(|| EchoMatcher::new(values.iter().map(|v| v.value.as_str())));
        (matcher, values)
    }
}

/// A set of values, ready to be searched for.
pub(crate) struct EchoMatcher {
    search: Search,
    /// No haystack shorter than this can hold a match, so it is not even looked at.
    shortest: usize,
    /// The current haystack, ASCII-lowercased (same length, same byte offsets); reused so
    /// that searching a string allocates nothing. Finders only.
    lower: Vec<u8>,
    /// Per pattern, where its next occurrence in the current haystack is. Finders only.
    next: Vec<Next>,
}

/// The matcher holds payload values: its `Debug` shows none of them.
impl std::fmt::Debug for EchoMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.search {
            Search::Finders(p) => format!("finders({})", p.len()),
            Search::Automaton { .. } => "automaton".to_owned(),
        };
        f.debug_struct("EchoMatcher")
            .field("search", &kind)
            .finish_non_exhaustive()
    }
}

enum Search {
    Finders(Vec<Pattern>),
    /// One automaton over every value (its pattern ids are the values' indices).
    Automaton(AhoCorasick),
}

struct Pattern {
    /// Searches for the ASCII-lowercased value.
    finder: Finder<'static>,
    /// The value's index in the list given to [`EchoMatcher::new`].
    id: usize,
}

/// Appends a finder for each value not already searched for (empty values and values equal
/// but for ASCII case to an earlier one never match), and returns the values it was given.
fn add_finders<'a>(
    patterns: &mut Vec<Pattern>,
    values: impl Iterator<Item = &'a str>,
    first_id: usize,
) -> Vec<&'a str> {
    let mut given = Vec::new();
    for (offset, value) in values.enumerate() {
        given.push(value);
        let lower = value.to_ascii_lowercase();
        if lower.is_empty()
            || patterns
                .iter()
                .any(|p| p.finder.needle() == lower.as_bytes())
        {
            continue;
        }
        let finder = Finder::new(lower.as_bytes()).into_owned();
        patterns.push(Pattern {
            finder,
            id: first_id + offset,
        });
    }
    given
}

/// What is known of a pattern's next occurrence in the current haystack. Occurrences are
/// only ever looked for at or after the end of the last match, which only moves forward, so
/// an occurrence found once stays the next one until a match ends past its start, and a
/// pattern found nowhere is never looked for again in that haystack.
#[derive(Debug, Clone, Copy)]
enum Next {
    Unknown,
    At(usize),
    Never,
}

/// One occurrence: byte offsets into the haystack (always on char boundaries, since both
/// sides are whole UTF-8 strings and only ASCII letters are folded), and the index of the
/// value in the list given to [`EchoMatcher::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EchoMatch {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) pattern: usize,
}

impl EchoMatcher {
    /// Empty values are left out: they would match everywhere, and the collector never
    /// keeps one. A value equal to an earlier one but for ASCII case never matches: the
    /// earlier one always wins the tie, as in Aho-Corasick.
    pub(crate) fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let values: Vec<&str> = values.into_iter().collect();
        let shortest = values
            .iter()
            .map(|v| v.len())
            .filter(|&n| n > 0)
            .min()
            .unwrap_or(usize::MAX);
        let search = if values.len() > FINDERS_UP_TO {
            Self::automaton(&values)
        } else {
            None
        };
        let search = search.unwrap_or_else(|| Search::Finders(Self::finders(&values)));
        Self {
            search,
            shortest,
            lower: Vec::new(),
            next: Vec::new(),
        }
    }

    fn finders(values: &[&str]) -> Vec<Pattern> {
        let mut patterns: Vec<Pattern> = Vec::new();
        add_finders(&mut patterns, values.iter().copied(), 0);
        patterns
    }

    /// Adds `values` (their ids counted from `first_id`) to a matcher of finders, exactly
    /// as if it had been built with them; `false` (nothing changed) for an automaton.
    fn push_finders<'a>(&mut self, values: impl Iterator<Item = &'a str>, first_id: usize) -> bool {
        let Search::Finders(patterns) = &mut self.search else {
            return false;
        };
        for value in add_finders(patterns, values, first_id) {
            if !value.is_empty() {
                self.shortest = self.shortest.min(value.len());
            }
        }
        true
    }

    /// `None` if the automaton cannot be built (it then falls back to finders, which give
    /// the same matches, only slower). Empty values are replaced by a pattern that cannot
    /// occur in a `str`, so pattern ids stay the values' indices.
    fn automaton(values: &[&str]) -> Option<Search> {
        const NEVER: &[u8] = &[0xff];
        let patterns = values
            .iter()
            .map(|v| if v.is_empty() { NEVER } else { v.as_bytes() });
        AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .build(patterns)
            .ok()
            .map(Search::Automaton)
    }

    /// The non-overlapping matches in `haystack`, left to right: the leftmost start wins,
    /// then the longest value at that start; the search goes on at the end of each match.
    pub(crate) fn find_iter<'m, 'h>(&'m mut self, haystack: &'h str) -> Matches<'m, 'h> {
        if haystack.len() < self.shortest {
            return Matches(Iter::None);
        }
        match &self.search {
            Search::Automaton(_) => {}
            Search::Finders(patterns) => {
                let count = patterns.len();
                self.lower.clear();
                self.lower.extend_from_slice(haystack.as_bytes());
                self.lower.make_ascii_lowercase();
                self.next.clear();
                self.next.resize(count, Next::Unknown);
            }
        }
        let EchoMatcher {
            search,
            lower,
            next,
            ..
        } = self;
        Matches(match search {
            Search::Automaton(ac) => Iter::Automaton(ac.find_iter(haystack)),
            Search::Finders(patterns) => Iter::Finders {
                patterns,
                lower,
                next,
                pos: 0,
            },
        })
    }
}

/// The iterator of [`EchoMatcher::find_iter`].
pub(crate) struct Matches<'m, 'h>(Iter<'m, 'h>);

enum Iter<'m, 'h> {
    None,
    Automaton(aho_corasick::FindIter<'m, 'h>),
    Finders {
        patterns: &'m [Pattern],
        lower: &'m [u8],
        next: &'m mut [Next],
        /// Where the search goes on: the end of the last match.
        pos: usize,
    },
}

impl Iterator for Matches<'_, '_> {
    type Item = EchoMatch;

    fn next(&mut self) -> Option<EchoMatch> {
        match &mut self.0 {
            Iter::None => None,
            Iter::Automaton(it) => it.next().map(|m| EchoMatch {
                start: m.start(),
                end: m.end(),
                pattern: m.pattern().as_usize(),
            }),
            Iter::Finders {
                patterns,
                lower,
                next,
                pos,
            } => {
                let mut best: Option<EchoMatch> = None;
                for (pattern, next) in patterns.iter().zip(next.iter_mut()) {
                    let Some(start) = next_start(pattern, lower, *pos, next) else {
                        continue;
                    };
                    let end = start + pattern.finder.needle().len();
                    if best.is_none_or(|b| start < b.start || (start == b.start && end > b.end)) {
                        best = Some(EchoMatch {
                            start,
                            end,
                            pattern: pattern.id,
                        });
                    }
                }
                let found = best?;
                *pos = found.end;
                Some(found)
            }
        }
    }
}

/// Where `pattern` next occurs in `haystack` at or after `pos`, looking it up only when
/// what `next` remembers is unknown or now behind `pos`.
fn next_start(pattern: &Pattern, haystack: &[u8], pos: usize, next: &mut Next) -> Option<usize> {
    match *next {
        Next::Never => return None,
        Next::At(at) if at >= pos => return Some(at),
        Next::Unknown | Next::At(_) => {}
    }
    let found = haystack
        .get(pos..)
        .and_then(|rest| pattern.finder.find(rest))
        .map(|i| pos + i);
    *next = found.map_or(Next::Never, Next::At);
    found
}

#[cfg(test)]
mod tests {
    use super::{EchoMatch, EchoMatcher, EchoSet, Method};
    use aho_corasick::{AhoCorasickBuilder, AhoCorasickKind, MatchKind};
    use proptest::prelude::*;

    /// The automaton the walker used to build on every call: the oracle.
    fn oracle(patterns: &[&str], haystack: &str) -> Vec<EchoMatch> {
        let ac = AhoCorasickBuilder::new()
            .kind(Some(AhoCorasickKind::NoncontiguousNFA))
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(patterns)
            .expect("small pattern sets build");
        ac.find_iter(haystack)
            .map(|m| EchoMatch {
                start: m.start(),
                end: m.end(),
                pattern: m.pattern().as_usize(),
            })
            .collect()
    }

    fn found(patterns: &[&str], haystack: &str) -> Vec<(usize, usize, usize)> {
        let mut m = EchoMatcher::new(patterns.iter().copied());
        let got: Vec<EchoMatch> = m.find_iter(haystack).collect();
        assert_eq!(
            got,
            oracle(patterns, haystack),
            "{patterns:?} in {haystack:?}"
        );
        got.iter().map(|m| (m.start, m.end, m.pattern)).collect()
    }

    #[test]
    fn ignores_ascii_case_on_both_sides() {
        assert_eq!(found(&["John Smith"], "hi JOHN smith!"), vec![(3, 13, 0)]);
        assert_eq!(found(&["JOHN"], "john"), vec![(0, 4, 0)]);
    }

    #[test]
    fn compares_non_ascii_exactly() {
        assert_eq!(found(&["José"], "JOSÉ josé"), vec![(6, 11, 0)]);
        assert_eq!(found(&["ÉMILE"], "émile Émile"), vec![(7, 13, 0)]);
        assert_eq!(found(&["straße"], "STRASSE STRAßE"), vec![(8, 15, 0)]);
    }

    #[test]
    fn the_longest_wins_at_the_same_start() {
        assert_eq!(
            found(&["bob", "bobby"], "bobby bob"),
            vec![(0, 5, 1), (6, 9, 0)]
        );
        assert_eq!(
            found(&["bobby", "bob"], "bobby bob"),
            vec![(0, 5, 0), (6, 9, 1)]
        );
    }

    #[test]
    fn the_leftmost_wins_over_a_longer_one_later() {
        // "ann" starts first, so "anne marie" (starting inside it) is never seen.
        assert_eq!(
            found(&["anne marie", "joann"], "joanne marie"),
            vec![(0, 5, 1)]
        );
        assert_eq!(found(&["bc", "abcd"], "abcd"), vec![(0, 4, 1)]);
        assert_eq!(found(&["abc", "bcdef"], "abcdef"), vec![(0, 3, 0)]);
    }

    #[test]
    fn self_overlapping_values_do_not_overlap() {
        assert_eq!(found(&["aa"], "aaaa"), vec![(0, 2, 0), (2, 4, 0)]);
        assert_eq!(found(&["aa"], "aaaaa"), vec![(0, 2, 0), (2, 4, 0)]);
        assert_eq!(found(&["aba"], "ababa aba"), vec![(0, 3, 0), (6, 9, 0)]);
        assert_eq!(found(&["aa", "aaa"], "aaaaa"), vec![(0, 3, 1), (3, 5, 0)]);
    }

    #[test]
    fn the_first_of_values_equal_but_for_case_wins() {
        assert_eq!(found(&["Bob", "bob", "BOB"], "bOb"), vec![(0, 3, 0)]);
        assert_eq!(found(&["bob", "Bob"], "BOB"), vec![(0, 3, 0)]);
    }

    #[test]
    fn short_and_empty_haystacks_have_no_match() {
        assert_eq!(found(&["abcd", "abc"], "ab"), vec![]);
        assert_eq!(found(&["abc"], ""), vec![]);
        assert_eq!(found(&[], "abc"), vec![]);
    }

    #[test]
    fn the_matcher_is_reused_across_haystacks() {
        let mut m = EchoMatcher::new(["smith", "42"]);
        assert_eq!(m.find_iter("Mr Smith, 42").count(), 2);
        assert_eq!(m.find_iter("x").count(), 0);
        assert_eq!(m.find_iter("SMITH").count(), 1);
        assert_eq!(m.find_iter("nothing here").count(), 0);
    }

    #[test]
    fn many_values_take_the_automaton_and_match_the_same() {
        let values: Vec<String> = (0..20).map(|i| format!("v{i}x")).collect();
        let patterns: Vec<&str> = values.iter().map(String::as_str).collect();
        let m = EchoMatcher::new(patterns.iter().copied());
        assert!(matches!(m.search, super::Search::Automaton(_)));
        assert_eq!(
            found(&patterns, "V1X v19x v2x-v10x"),
            vec![(0, 3, 1), (4, 8, 19), (9, 12, 2), (13, 17, 10)]
        );
    }

    #[test]
    fn the_set_folds_case_keeps_the_first_and_caps() {
        use super::{MAX_ECHO_BYTES, MAX_ECHO_VALUES};
        let mut set = EchoSet::new();
        set.insert("Hunter2", "[a]", Method::Replace);
        set.insert("HUNTER2", "[b]", Method::Hash);
        set.insert("", "[c]", Method::Replace);
        assert_eq!(set.len(), 1);
        let (m, values) = set.matcher();
        assert_eq!(m.find_iter("x hunter2").count(), 1);
        assert_eq!(values[0].replacement, "[a]");
        for i in 1..MAX_ECHO_VALUES + 10 {
            set.insert(&format!("value-{i}"), "[x]", Method::Replace);
        }
        assert_eq!(set.len(), MAX_ECHO_VALUES);
        assert_eq!(set.not_echoed(), 10);
        let mut big = EchoSet::new();
        let long = "y".repeat(1000);
        for i in 0..40 {
            big.insert(&format!("{i:03}{long}"), "[x]", Method::Replace);
        }
        assert_eq!(big.len(), MAX_ECHO_BYTES / 1003);
        assert_eq!(big.not_echoed(), 40 - (MAX_ECHO_BYTES / 1003) as u64);
    }

    fn patterns() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec("[aAbB\u{e9}\u{c9}ß -]{1,5}", 1..6)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        #[test]
        fn agrees_with_aho_corasick(
            patterns in patterns(),
            haystacks in prop::collection::vec("[aAbB\u{e9}\u{c9}ß -]{0,24}", 1..4),
        ) {
            let patterns: Vec<&str> = patterns.iter().map(String::as_str).collect();
            let mut m = EchoMatcher::new(patterns.iter().copied());
            for haystack in &haystacks {
                let got: Vec<EchoMatch> = m.find_iter(haystack).collect();
                prop_assert_eq!(got, oracle(&patterns, haystack), "{:?} in {:?}", patterns, haystack);
            }
        }

        #[test]
        fn a_set_grown_value_by_value_matches_as_one_built_at_once(
            patterns in prop::collection::vec("[aAbB\u{e9}\u{c9}ß -]{1,5}", 1..14),
            haystacks in prop::collection::vec("[aAbB\u{e9}\u{c9}ß -]{0,24}", 1..4),
        ) {
            let mut set = EchoSet::new();
            for (i, p) in patterns.iter().enumerate() {
                set.insert(p, &format!("[{i}]"), Method::Replace);
                // Search after every insert, so finders grow where they can.
                let (m, _) = set.matcher();
                let _ = m.find_iter("warm").count();
            }
            let values: Vec<String> = set.values.iter().map(|v| v.value.clone()).collect();
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            for haystack in &haystacks {
                let (m, _) = set.matcher();
                let got: Vec<EchoMatch> = m.find_iter(haystack).collect();
                prop_assert_eq!(got, oracle(&values, haystack), "{:?} in {:?}", values, haystack);
            }
        }

        #[test]
        fn the_automaton_agrees_with_aho_corasick(
            patterns in prop::collection::vec("[aAbB\u{e9}\u{c9}ß -]{1,5}", 9..24),
            haystacks in prop::collection::vec("[aAbB\u{e9}\u{c9}ß -]{0,24}", 1..4),
        ) {
            let patterns: Vec<&str> = patterns.iter().map(String::as_str).collect();
            let mut m = EchoMatcher::new(patterns.iter().copied());
            for haystack in &haystacks {
                let got: Vec<EchoMatch> = m.find_iter(haystack).collect();
                prop_assert_eq!(got, oracle(&patterns, haystack), "{:?} in {:?}", patterns, haystack);
            }
        }

        #[test]
        fn agrees_with_aho_corasick_on_any_text(
            patterns in prop::collection::vec(any::<String>(), 1..4),
            haystack in any::<String>(),
        ) {
            let patterns: Vec<&str> = patterns.iter().map(String::as_str).filter(|p| !p.is_empty()).collect();
            let mut m = EchoMatcher::new(patterns.iter().copied());
            let got: Vec<EchoMatch> = m.find_iter(&haystack).collect();
            prop_assert_eq!(got, oracle(&patterns, &haystack));
        }

        #[test]
        fn finds_values_planted_in_any_text(
            value in "[a-zA-Z0-9\u{e9} ]{3,12}",
            before in any::<String>(),
            after in any::<String>(),
        ) {
            let haystack = format!("{before}{}{after}", value.to_ascii_uppercase());
            let patterns = [value.as_str()];
            let mut m = EchoMatcher::new(patterns);
            let got: Vec<EchoMatch> = m.find_iter(&haystack).collect();
            prop_assert!(!got.is_empty());
            prop_assert_eq!(got, oracle(&patterns, &haystack));
        }
    }
}
