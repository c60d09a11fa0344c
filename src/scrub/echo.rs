//! Finds the echo values (names and ids collected under their own keys) wherever else they
//! appear in the event.
//!
//! The values differ in every event, so whatever searches for them is built on every scrub
//! call. An Aho-Corasick automaton cost ~93,000 instructions to build for the usual one to
//! ten short values, about a tenth of scrubbing a typical SDK envelope. Here building is
//! lowercasing each value and making a `memmem` finder for it, and a search lowercases the
//! haystack once and runs each finder over it, so both cost about as much as the text.
//!
//! The matches are exactly those of Aho-Corasick's non-overlapping `find_iter` with
//! `MatchKind::LeftmostLongest` and `ascii_case_insensitive` (the tests use it as the
//! oracle), so the labels put in an event did not change with the matcher.

use memchr::memmem::Finder;

/// The echo values of one scrub call, ready to be searched for.
#[derive(Debug)]
pub(crate) struct EchoMatcher {
    patterns: Vec<Pattern>,
    /// No haystack shorter than this can hold a match, so it is not even lowercased.
    shortest: usize,
    /// The current haystack, ASCII-lowercased (same length, same byte offsets); reused so
    /// that searching a string allocates nothing.
    lower: Vec<u8>,
    /// Per pattern, where its next occurrence in the current haystack is.
    next: Vec<Next>,
}

#[derive(Debug)]
struct Pattern {
    /// Searches for the ASCII-lowercased value.
    finder: Finder<'static>,
    /// The value's index in the list given to [`EchoMatcher::new`].
    id: usize,
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
    /// keeps one. A value equal to an earlier one but for ASCII case is left out too: the
    /// earlier one always wins the tie, as in Aho-Corasick.
    pub(crate) fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut patterns: Vec<Pattern> = Vec::new();
        for (id, value) in values.into_iter().enumerate() {
            let lower = value.to_ascii_lowercase();
            if lower.is_empty()
                || patterns
                    .iter()
                    .any(|p| p.finder.needle() == lower.as_bytes())
            {
                continue;
            }
            let finder = Finder::new(lower.as_bytes()).into_owned();
            patterns.push(Pattern { finder, id });
        }
        let shortest = patterns
            .iter()
            .map(|p| p.finder.needle().len())
            .min()
            .unwrap_or(usize::MAX);
        Self {
            patterns,
            shortest,
            lower: Vec::new(),
            next: Vec::new(),
        }
    }

    /// The non-overlapping matches in `haystack`, left to right: the leftmost start wins,
    /// then the longest value at that start; the search goes on at the end of each match.
    pub(crate) fn find_iter(&mut self, haystack: &str) -> Matches<'_> {
        self.lower.clear();
        self.next.clear();
        if haystack.len() < self.shortest {
            self.next.resize(self.patterns.len(), Next::Never);
        } else {
            self.lower.extend_from_slice(haystack.as_bytes());
            self.lower.make_ascii_lowercase();
            self.next.resize(self.patterns.len(), Next::Unknown);
        }
        Matches {
            matcher: self,
            pos: 0,
        }
    }
}

/// The iterator of [`EchoMatcher::find_iter`].
#[derive(Debug)]
pub(crate) struct Matches<'m> {
    matcher: &'m mut EchoMatcher,
    /// Where the search goes on: the end of the last match.
    pos: usize,
}

impl Iterator for Matches<'_> {
    type Item = EchoMatch;

    fn next(&mut self) -> Option<EchoMatch> {
        let EchoMatcher {
            patterns,
            lower,
            next,
            ..
        } = &mut *self.matcher;
        let mut best: Option<EchoMatch> = None;
        for (pattern, next) in patterns.iter().zip(next.iter_mut()) {
            let Some(start) = next_start(pattern, lower, self.pos, next) else {
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
        self.pos = found.end;
        Some(found)
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
    use super::{EchoMatch, EchoMatcher};
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
