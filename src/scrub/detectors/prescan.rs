//! Which detectors can match a string, found in one forward pass of a lazy DFA.
//!
//! `RegexSet::matches` runs an overlapping search that returns to its caller at every match
//! position and starts again from there: a URL is a match of the `url` detector at each of
//! its bytes, an ISO timestamp one of `dob` and `ipv6` at several. That cost ~5,000
//! instructions per string that holds any candidate. Here the DFA is built with
//! `MatchKind::All` and walked byte by byte in a loop of our own: a match state only adds its
//! patterns to a bit set, so the pass costs about the same whatever the text holds. The
//! caller still asks `RegexSet::is_match` first: most strings hold no candidate at all, and
//! the regex crate's unrolled search loop says so faster than this one.
//!
//! The set found is exactly `RegexSet::matches` (the same patterns, the same syntax); a
//! property test holds the two together. Should the lazy DFA ever give up (its cache
//! thrashing on hostile text), [`Prescan::matches`] says so and the caller asks the
//! `RegexSet` instead, so nothing is ever missed.

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::hybrid::LazyStateID;
use regex_automata::nfa::thompson::{self, WhichCaptures};
use regex_automata::util::pool::Pool;
use regex_automata::util::syntax;
use regex_automata::{Input, MatchKind};

type StateFn =
    Box<dyn Fn() -> SearchState + Send + Sync + std::panic::UnwindSafe + std::panic::RefUnwindSafe>;

/// Patterns a match state stands for are read from the lazy DFA (tens of instructions) only
/// the first time that state is met; this many states are remembered per thread.
const MEMO_SLOTS: usize = 1024;

/// With up to this many patterns, a state's patterns fit one `u128` in the memo.
const MEMO_MAX_PATTERNS: usize = 128;

/// The detectors' combined lazy DFA and one search state per thread.
pub(crate) struct Prescan {
    dfa: DFA,
    states: Pool<SearchState, StateFn>,
}

/// One thread's lazy-DFA cache, and what its match states stand for.
pub(crate) struct SearchState {
    cache: Cache,
    memo: Box<[Memo; MEMO_SLOTS]>,
}

/// A match state's patterns as bits. The cache may be cleared mid-search and then hand the
/// same id to another state, so an entry is only trusted within one clear count.
#[derive(Clone, Copy)]
struct Memo {
    sid: LazyStateID,
    clears: usize,
    patterns: u128,
}

impl Memo {
    /// No state has been through the cache `usize::MAX` clears, so this never matches.
    fn empty() -> Self {
        Self {
            sid: LazyStateID::default(),
            clears: usize::MAX,
            patterns: 0,
        }
    }
}

impl std::fmt::Debug for Prescan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prescan")
            .field("patterns", &self.dfa.pattern_len())
            .finish()
    }
}

impl Prescan {
    /// Builds the DFA for `patterns` (already [`super::asciify`]d). `None` when the lazy
    /// DFA cannot take them (a Unicode word boundary in a custom pattern, say): the caller
    /// then keeps using its `RegexSet` alone.
    pub(crate) fn build(
        patterns: &[String],
        nfa_size_limit: usize,
        cache_capacity: usize,
    ) -> Option<Self> {
        let dfa = DFA::builder()
            .configure(
                DFA::config()
                    .match_kind(MatchKind::All)
                    .cache_capacity(cache_capacity)
                    .skip_cache_capacity_check(true)
                    // Give up, as the regex crate's own lazy DFA does, when the cache is
                    // cleared over and over for few bytes searched: text that makes a new
                    // state at nearly every byte is then searched by the `RegexSet`.
                    .minimum_cache_clear_count(Some(3))
                    .minimum_bytes_per_state(Some(10)),
            )
            .syntax(syntax::Config::new())
            .thompson(
                thompson::Config::new()
                    .nfa_size_limit(Some(nfa_size_limit))
                    .which_captures(WhichCaptures::None),
            )
            .build_many(patterns)
            .ok()?;
        let for_states = dfa.clone();
        let create: StateFn = Box::new(move || SearchState {
            cache: for_states.create_cache(),
            memo: Box::new([Memo::empty(); MEMO_SLOTS]),
        });
        Some(Self {
            dfa,
            states: Pool::new(create),
        })
    }

    /// Appends to `found` the index of every pattern that matches somewhere in `text`, in
    /// ascending order without repeats. `false` when the DFA gave up; `found` is then
    /// incomplete and must not be used.
    pub(crate) fn matches(&self, text: &str, found: &mut Vec<usize>) -> bool {
        found.clear();
        let mut state = self.states.get();
        let mut bits = 0u128;
        let ok = self.walk(&mut state, text, &mut bits, found).is_some();
        while bits != 0 {
            found.push(bits.trailing_zeros() as usize);
            bits &= bits - 1;
        }
        if found.len() > 1 {
            found.sort_unstable();
            found.dedup();
        }
        ok
    }

    fn walk(
        &self,
        state: &mut SearchState,
        text: &str,
        bits: &mut u128,
        found: &mut Vec<usize>,
    ) -> Option<()> {
        let dfa = &self.dfa;
        let cache = &mut state.cache;
        // The cache counts the bytes searched, so that it gives up only when it is
        // really making states faster than it uses them (`minimum_bytes_per_state`).
        cache.search_start(0);
        let mut sid = dfa.start_state_forward(cache, &Input::new(text)).ok()?;
        for (at, &byte) in text.as_bytes().iter().enumerate() {
            sid = dfa.next_state(cache, sid, byte).ok()?;
            if sid.is_tagged() {
                if sid.is_match() {
                    self.record(cache, &mut state.memo, sid, bits, found);
                } else if sid.is_dead() {
                    cache.search_finish(at);
                    return Some(());
                } else if sid.is_quit() {
                    return None;
                }
            }
        }
        cache.search_finish(text.len());
        sid = dfa.next_eoi_state(cache, sid).ok()?;
        if sid.is_match() {
            self.record(cache, &mut state.memo, sid, bits, found);
        } else if sid.is_quit() {
            return None;
        }
        Some(())
    }

    /// Adds the patterns of match state `sid`: to `bits` through the memo when they fit a
    /// `u128`, otherwise to `found` one by one.
    fn record(
        &self,
        cache: &Cache,
        memo: &mut [Memo; MEMO_SLOTS],
        sid: LazyStateID,
        bits: &mut u128,
        found: &mut Vec<usize>,
    ) {
        let dfa = &self.dfa;
        if dfa.pattern_len() > MEMO_MAX_PATTERNS {
            for i in 0..dfa.match_len(cache, sid) {
                found.push(dfa.match_pattern(cache, sid, i).as_usize());
            }
            return;
        }
        let clears = cache.clear_count();
        let slot = memo_slot(sid);
        if let Some(entry) = memo.get(slot) {
            if entry.sid == sid && entry.clears == clears {
                *bits |= entry.patterns;
                return;
            }
        }
        let mut patterns = 0u128;
        for i in 0..dfa.match_len(cache, sid) {
            patterns |= 1u128 << dfa.match_pattern(cache, sid, i).as_usize();
        }
        *bits |= patterns;
        if let Some(entry) = memo.get_mut(slot) {
            *entry = Memo {
                sid,
                clears,
                patterns,
            };
        }
    }
}

/// The memo slot of a state id. `LazyStateID` keeps its number private but hashes it as
/// one `u32`, which this hasher keeps and spreads.
fn memo_slot(sid: LazyStateID) -> usize {
    use std::hash::{Hash, Hasher};
    #[derive(Default)]
    struct Spread(u64);
    impl Hasher for Spread {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for &b in bytes {
                self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            }
        }
        fn write_u32(&mut self, n: u32) {
            self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    let mut h = Spread::default();
    sid.hash(&mut h);
    // The top bits of the product are the well-mixed ones.
    (h.finish() >> 54) as usize % MEMO_SLOTS
}
