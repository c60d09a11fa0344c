//! The hashers of the scrubber's hash maps, and which maps may use which.
//!
//! A map whose keys come from a payload (object keys, string values) uses [`KeyedBuild`],
//! seeded at random. With an unkeyed hash such as FxHash anyone can compute, offline,
//! thousands of distinct keys with one hash value (`tests::fx_colliding_keys` builds
//! 65,536); a JSON object made of them puts every key in one probe chain, so each lookup
//! compares against all the keys before it and one request costs quadratic CPU (hash
//! flooding: 50,000 such keys took 14 times as long to scrub as ordinary keys with FxHash
//! in the key cache). With a secret seed the attacker cannot know which keys collide.
//!
//! Maps whose keys come only from our own config and code (rule names, key classes,
//! labels, the key lists) keep the cheaper unkeyed [`FxBuild`]: a lookup's cost depends on
//! how the stored keys spread, and a payload cannot add to them; a looked-up string only
//! meets the few entries of one probe sequence. Each such map says so where it is declared.

use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::LazyLock;

use foldhash::fast::{FoldHasher, SeedableRandomState};
use foldhash::SharedSeed;

/// The seed every [`KeyedBuild`] shares, drawn once per process from the OS (through
/// `rand`'s thread generator). foldhash's own global seed is derived from addresses and
/// the clock, which a patient attacker could narrow down; this one cannot be.
static PROCESS_SEED: LazyLock<SharedSeed> = LazyLock::new(|| SharedSeed::from_u64(rand::random()));

/// A keyed hash for maps whose keys come from payloads: foldhash's fast variant (its cost
/// against FxHash is in BENCHMARKS.md, "Keyed hash for payload-keyed maps") with a random
/// per-process seed plus a random per-map seed, so that one map's iteration order says
/// nothing about another's probe sequences (copying a map into another one with the same
/// seed can cluster).
///
/// foldhash is "minimally DoS-resistant": an attacker who cannot see hash values or
/// time individual lookups cannot find colliding keys. That is the threat here (one
/// request crafted offline); SipHash would also resist a long interactive timing attack,
/// at a higher cost per key.
#[derive(Debug, Clone)]
pub(crate) struct KeyedBuild(SeedableRandomState);

impl Default for KeyedBuild {
    fn default() -> Self {
        Self(SeedableRandomState::with_seed(
            rand::random(),
            &PROCESS_SEED,
        ))
    }
}

impl BuildHasher for KeyedBuild {
    type Hasher = FoldHasher<'static>;

    #[inline]
    fn build_hasher(&self) -> FoldHasher<'static> {
        self.0.build_hasher()
    }
}

/// The unkeyed hasher of the engine's config-derived tables, looked up several times per
/// string (`disabled_rules`, `class_actions`, `labels`): SipHash showed up at ~4 % of the
/// scrub profile. Never for maps a payload can add keys to (see the module doc).
pub(crate) type FxBuild = BuildHasherDefault<FxHasher>;

/// FxHash: a rotate, xor and multiply per eight bytes. Fast on short keys, and trivially
/// invertible, which is why it is only used where keys are ours.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

/// FxHash's multiplier.
const FX_K: u64 = 0x517c_c1b7_2722_0a95;

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(FX_K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(FX_K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    /// Every test key starts with this: one FxHash word, and no key rule's prefix.
    pub(crate) const KEY_PREFIX: &str = "zzzzzzzz";

    /// `2^stages` distinct keys, [`KEY_PREFIX`] and `16 × stages` lowercase letters, that
    /// all have one FxHash (a Joux multicollision). Each stage is a pair of 16-byte blocks
    /// taking FxHash from one state to one same next state: two first words whose images
    /// differ only in the low five bits of each byte (a birthday search over the other 24
    /// bits), then second words of letters that cancel that difference. A key picks one
    /// block of each pair.
    pub(crate) fn fx_colliding_keys(stages: u32) -> Vec<String> {
        let mut prefix = FxHasher::default();
        prefix.write(KEY_PREFIX.as_bytes());
        let mut state = prefix.finish();
        let mut pairs: Vec<[[u8; 16]; 2]> = Vec::new();
        for _ in 0..stages {
            let r = state.rotate_left(5);
            let mut seen: HashMap<u64, u64> = HashMap::new();
            let mut found = None;
            for i in 0u64..1 << 20 {
                let w1 = u64::from_le_bytes(letters(i));
                let v = ((r ^ w1).wrapping_mul(FX_K)).rotate_left(5);
                let signature = v & 0xe0e0_e0e0_e0e0_e0e0;
                let Some(&other) = seen.get(&signature) else {
                    seen.insert(signature, w1);
                    continue;
                };
                let v_other = ((r ^ other).wrapping_mul(FX_K)).rotate_left(5);
                let diff = (v ^ v_other).to_le_bytes();
                // Per byte, a letter whose xor with the difference is a letter too.
                let w2: Option<Vec<u8>> = diff
                    .iter()
                    .map(|&d| (b'a'..=b'z').find(|a| (a ^ d).is_ascii_lowercase()))
                    .collect();
                if let Some(w2) = w2 {
                    let mut w2_bytes = [0u8; 8];
                    w2_bytes.copy_from_slice(&w2);
                    let w2 = u64::from_le_bytes(w2_bytes);
                    found = Some((w1, w2, other, w2 ^ v ^ v_other, v));
                    break;
                }
            }
            let (w1, w2, other, other_w2, v) = found.expect("a pair within 2^20 candidates");
            let block = |a: u64, b: u64| {
                let mut out = [0u8; 16];
                out[..8].copy_from_slice(&a.to_le_bytes());
                out[8..].copy_from_slice(&b.to_le_bytes());
                out
            };
            pairs.push([block(w1, w2), block(other, other_w2)]);
            state = (v ^ w2).wrapping_mul(FX_K);
        }
        (0..1u64 << stages)
            .map(|n| {
                let mut key = KEY_PREFIX.as_bytes().to_vec();
                for (bit, pair) in pairs.iter().enumerate() {
                    key.extend_from_slice(&pair[usize::from((n >> bit) & 1 == 1)]);
                }
                String::from_utf8(key).expect("letters")
            })
            .collect()
    }

    /// Eight lowercase letters spelling `i` in base 26.
    fn letters(mut i: u64) -> [u8; 8] {
        let mut out = [b'a'; 8];
        for byte in &mut out {
            *byte = b'a' + (i % 26) as u8;
            i /= 26;
        }
        out
    }

    #[test]
    fn keys_crafted_to_collide_under_fxhash_are_spread_by_the_keyed_hasher() {
        let keys = fx_colliding_keys(16);
        assert_eq!(keys.len(), 65_536);
        assert!(keys
            .iter()
            .all(|k| k.len() == 264 && k.bytes().all(|b| b.is_ascii_lowercase())));
        assert_eq!(
            keys.iter().collect::<HashSet<_>>().len(),
            65_536,
            "distinct keys"
        );

        // Under FxHash (the old hasher of these maps) they are one hash value: one probe
        // chain, every lookup a linear scan.
        let fx = FxBuild::default();
        let fx_hashes: HashSet<u64> = keys.iter().map(|k| fx.hash_one(k.as_str())).collect();
        assert_eq!(fx_hashes.len(), 1);

        // Under the keyed hasher they are as many hash values as keys (a collision of two
        // 64-bit values among 65,536 has odds of about 1 in 10^10), and the low 16 bits
        // that pick a bucket in a table this size put at most a handful in one bucket.
        let keyed = KeyedBuild::default();
        let keyed_hashes: Vec<u64> = keys.iter().map(|k| keyed.hash_one(k.as_str())).collect();
        assert_eq!(keyed_hashes.iter().collect::<HashSet<_>>().len(), 65_536);
        let mut buckets: HashMap<u64, usize> = HashMap::new();
        for h in &keyed_hashes {
            *buckets.entry(h & 0xffff).or_default() += 1;
        }
        let fullest = buckets.values().max().copied().unwrap_or(0);
        assert!(fullest <= 16, "fullest bucket holds {fullest}");
    }

    #[test]
    fn every_keyed_map_has_its_own_seed() {
        let (a, b) = (KeyedBuild::default(), KeyedBuild::default());
        assert_ne!(a.hash_one("user_email"), b.hash_one("user_email"));
        // A clone hashes alike: the shared key table is copied with its hasher.
        assert_eq!(a.hash_one("user_email"), a.clone().hash_one("user_email"));
    }
}
