//! What the scrub fuzz targets share: one scrubber with the default profile and a fixed key,
//! and the switch that turns the idempotence assertion off.

use std::sync::OnceLock;

use scrubgate::scrub::{HashKey, ScrubSettings, Scrubber};

pub fn scrubber() -> &'static Scrubber {
    static SCRUBBER: OnceLock<Scrubber> = OnceLock::new();
    SCRUBBER.get_or_init(|| {
        let key = HashKey {
            id: "fuzz".to_owned(),
            secret: b"fuzzing-key-0123456789".to_vec(),
        };
        Scrubber::compile(&ScrubSettings::default(), key).expect("default settings compile")
    })
}

/// `FUZZ_SKIP_IDEMPOTENCE=1` keeps fuzzing for panics and invalid JSON once an idempotence
/// bug is known and reported (libFuzzer stops at the first failure).
pub fn check_idempotence() -> bool {
    static CHECK: OnceLock<bool> = OnceLock::new();
    *CHECK.get_or_init(|| std::env::var_os("FUZZ_SKIP_IDEMPOTENCE").is_none())
}
