//! Spool recovery after damage: the input decodes into records written to a segment (bodies
//! may hold serialized records framed with guessed salts or the previous format) and damage
//! applied to its bytes (overwrites, a truncation). Properties, checked by
//! `scrubgate::spool::format::check_damage_property` (the unit test
//! `damage_never_surfaces_unwritten_records_nor_hides_intact_ones` runs the same): never
//! panics, every record read back was written at that offset with those bytes, and every
//! record whose bytes were not touched is read back. The raw input is scanned as a segment too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scrubgate::spool::format::check_damage_property;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = check_damage_property(data) {
        panic!("{violation}");
    }
});
