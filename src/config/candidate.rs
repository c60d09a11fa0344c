//! Candidate rule sets: a project's next `[scrub]`, run beside the active one on a sample of
//! its envelopes so a rule change can be judged on real traffic before it decides what
//! leaves. Loaded and compiled with the rest of the config (and so reloaded on SIGHUP), with
//! the same errors as the main `[scrub]`, each naming the candidate's file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use super::{report, ConfigError};
use crate::scrub::{HashKey, ScrubSettings, Scrubber};

/// `[candidates]`: how much traffic the candidate rule sets see.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CandidateSettings {
    /// The fraction of a candidate project's envelopes (0 to 1) also scrubbed by its
    /// candidate: each sampled envelope costs a second scrub, so this bounds the price.
    pub sample_rate: f64,
}

impl Default for CandidateSettings {
    fn default() -> Self {
        Self { sample_rate: 0.1 }
    }
}

impl CandidateSettings {
    /// # Errors
    /// `(key, problem)` for a rate that is not a number between 0 and 1.
    pub fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        if !(0.0..=1.0).contains(&self.sample_rate) {
            return Err((
                "sample_rate",
                "must be a number from 0 (never) to 1 (always)",
            ));
        }
        Ok(())
    }

    /// Whether this envelope is one of the sample. A rate of 0 never samples and 1 always
    /// does, so tests (and operators) can rely on either.
    pub fn sampled(&self) -> bool {
        if self.sample_rate >= 1.0 {
            return true;
        }
        self.sample_rate > 0.0 && rand::random::<f64>() < self.sample_rate
    }
}

/// A candidate file as written: one `[scrub]` table, nothing else.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CandidateFile {
    pub scrub: ScrubSettings,
}

/// A compiled candidate rule set.
#[derive(Debug)]
pub struct Candidate {
    /// The file it came from, as configured.
    pub path: PathBuf,
    pub scrubber: Scrubber,
    /// sha256 (hex) of the candidate's effective `[scrub]`, so an audit reader can tell
    /// which version of the candidate produced a difference.
    pub hash: String,
}

/// Reads and compiles the candidate at `path`. It hashes with the active HMAC key (its own
/// `hash_key_env` and `hash_key_file` are not read): pseudonyms are not compared, and one
/// key per process keeps the secret handling in one place.
///
/// # Errors
/// A missing file, a syntax, type or unknown-key error, or a rule that does not compile;
/// every message starts with the file's path.
pub fn load(path: &Path, hash_key: HashKey) -> Result<Candidate, String> {
    if !path.is_file() {
        return Err(format!("{}: file does not exist", path.display()));
    }
    let file: CandidateFile = Figment::from(Serialized::defaults(CandidateFile::default()))
        .merge(Toml::file_exact(path))
        .extract()
        .map_err(|error| with_file(path, &report::describe(error)))?;
    let scrubber = Scrubber::compile(&file.scrub, hash_key).map_err(|error| {
        format!(
            "{}: scrub.{}: {}",
            path.display(),
            error.key(),
            error.problem()
        )
    })?;
    use sha2::Digest;
    let canonical = serde_json::to_vec(&file.scrub).unwrap_or_default();
    Ok(Candidate {
        path: path.to_owned(),
        scrubber,
        hash: hex::encode(sha2::Sha256::digest(&canonical)),
    })
}

/// figment names the file (with its line) in most messages, but not in all of them.
fn with_file(path: &Path, message: &str) -> String {
    let shown = path.display().to_string();
    message
        .lines()
        .map(|line| {
            if line.starts_with(&shown) {
                line.to_owned()
            } else {
                format!("{shown}: {line}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Compiles each distinct candidate file once, however many projects name it.
#[derive(Debug, Default)]
pub(super) struct Loader {
    loaded: HashMap<PathBuf, Arc<Candidate>>,
}

impl Loader {
    pub(super) fn get(
        &mut self,
        key: &str,
        path: &Path,
        hash_key: &HashKey,
    ) -> Result<Arc<Candidate>, ConfigError> {
        if let Some(candidate) = self.loaded.get(path) {
            return Ok(Arc::clone(candidate));
        }
        let candidate = Arc::new(
            load(path, hash_key.clone()).map_err(|problem| ConfigError::invalid(key, problem))?,
        );
        self.loaded.insert(path.to_owned(), Arc::clone(&candidate));
        Ok(candidate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_is_never_at_zero_always_at_one_and_about_the_rate_between() {
        let at = |sample_rate| CandidateSettings { sample_rate };
        assert!((0..1000).all(|_| !at(0.0).sampled()));
        assert!((0..1000).all(|_| at(1.0).sampled()));
        let hits = (0..10_000).filter(|_| at(0.1).sampled()).count();
        // 10 000 draws at p = 0.1: mean 1000, sd 30; this range is over 6 sd wide.
        assert!((800..=1200).contains(&hits), "{hits}");
    }

    #[test]
    fn rates_outside_zero_to_one_are_refused() {
        for rate in [-0.1, 1.01, f64::NAN, f64::INFINITY] {
            assert!(CandidateSettings { sample_rate: rate }.validate().is_err());
        }
        for rate in [0.0, 0.5, 1.0] {
            assert!(CandidateSettings { sample_rate: rate }.validate().is_ok());
        }
    }
}
