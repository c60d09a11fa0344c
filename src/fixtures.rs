//! Golden-file scrubbing fixtures: `scrubgate test [--config PATH] [--update] DIR`.
//!
//! Every subfolder of `DIR` is one case:
//!
//! - `input.envelope` (a raw envelope) or `input.json` (one bare event or other payload);
//! - `expected.envelope` or `expected.json`: the exact expected output. Envelopes are
//!   compared byte for byte; JSON output is written pretty-printed so diffs stay readable;
//! - optionally `config.toml`: an overlay merged over the base config (`[scrub]`,
//!   `[policy]`, …), e.g. to switch a method or add a pattern.
//!
//! **Hash key.** Pseudonyms depend on the HMAC key, so fixtures always use a fixed test key
//! ([`FIXTURE_HASH_KEY`], key id [`FIXTURE_HASH_KEY_ID`]) and never the environment or the
//! base config's key. An overlay may set `scrub.hash_key_file` (relative to the case folder)
//! to test another key.
//!
//! The runner calls the same code as the server ([`crate::pipeline::scrub_envelope`] and
//! [`crate::scrub::Scrubber::scrub`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use serde_json::Value;

use crate::config::ConfigFile;
use crate::decide::Policy;
use crate::decode::{Envelope, EnvelopeLimits};
use crate::scrub::{HashKey, PayloadKind, Scrubber};

/// The fixed HMAC key fixtures run with.
pub const FIXTURE_HASH_KEY: &[u8] = b"scrubgate-fixture-key-not-secret";
/// Its key id, as it appears in pseudonyms (`user:fixture:…`).
pub const FIXTURE_HASH_KEY_ID: &str = "fixture";

/// How one case went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseOutcome {
    Passed,
    /// The expected file was (re)written by `--update`.
    Updated,
    /// Output differs; a readable line diff.
    Failed(String),
    /// The case could not run (missing files, bad overlay, unparsable input).
    Error(String),
}

/// One case's name and outcome.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub name: String,
    pub outcome: CaseOutcome,
}

/// All cases of a directory.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub cases: Vec<CaseResult>,
}

impl Summary {
    pub fn passed(&self) -> usize {
        self.cases
            .iter()
            .filter(|c| matches!(c.outcome, CaseOutcome::Passed | CaseOutcome::Updated))
            .count()
    }

    pub fn failed(&self) -> usize {
        self.cases.len() - self.passed()
    }

    /// `N passed, M failed`.
    pub fn line(&self) -> String {
        format!("{} passed, {} failed", self.passed(), self.failed())
    }
}

/// The fixture directory could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("cannot read fixture directory {path}: {source}")]
    ReadDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Runs every case under `dir` with `base` as the config the overlays merge over.
///
/// # Errors
/// Only if `dir` cannot be listed; a failing case is reported in the summary.
pub fn run_dir(dir: &Path, base: &ConfigFile, update: bool) -> Result<Summary, FixtureError> {
    let entries = std::fs::read_dir(dir).map_err(|source| FixtureError::ReadDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut folders: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    let mut summary = Summary::default();
    for folder in folders {
        let name = folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let outcome = match run_case(&folder, base, update) {
            Ok(outcome) => outcome,
            Err(problem) => CaseOutcome::Error(problem),
        };
        summary.cases.push(CaseResult { name, outcome });
    }
    Ok(summary)
}

/// Runs one case folder.
///
/// # Errors
/// A description of why the case could not run.
pub fn run_case(folder: &Path, base: &ConfigFile, update: bool) -> Result<CaseOutcome, String> {
    let (scrubber, policy, limits) = compile_case_config(folder, base)?;
    let envelope_in = folder.join("input.envelope");
    let json_in = folder.join("input.json");
    let (actual, expected_path) = if envelope_in.is_file() {
        let body = std::fs::read(&envelope_in).map_err(|e| format!("input.envelope: {e}"))?;
        let mut envelope =
            Envelope::parse(body.into(), &limits).map_err(|e| format!("input.envelope: {e}"))?;
        crate::pipeline::scrub_envelope(&mut envelope, &scrubber, &policy);
        (envelope.to_bytes(), folder.join("expected.envelope"))
    } else if json_in.is_file() {
        let body = std::fs::read(&json_in).map_err(|e| format!("input.json: {e}"))?;
        let mut value: Value =
            serde_json::from_slice(&body).map_err(|e| format!("input.json: {e}"))?;
        scrubber.scrub_value(guess_kind(&value), &mut value);
        let mut out = serde_json::to_vec_pretty(&value).map_err(|e| e.to_string())?;
        out.push(b'\n');
        (out, folder.join("expected.json"))
    } else {
        return Err("no input.envelope or input.json".to_owned());
    };
    if update {
        let existing = std::fs::read(&expected_path).ok();
        if existing.as_deref() == Some(actual.as_slice()) {
            return Ok(CaseOutcome::Passed);
        }
        std::fs::write(&expected_path, &actual)
            .map_err(|e| format!("cannot write {}: {e}", expected_path.display()))?;
        return Ok(CaseOutcome::Updated);
    }
    let expected = std::fs::read(&expected_path).map_err(|e| {
        format!(
            "{}: {e} (run with --update to create it)",
            expected_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        )
    })?;
    if expected == actual {
        Ok(CaseOutcome::Passed)
    } else {
        Ok(CaseOutcome::Failed(diff(
            &readable(&expected),
            &readable(&actual),
        )))
    }
}

/// Which payload kind a bare JSON document is, from its shape.
pub fn guess_kind(value: &Value) -> PayloadKind {
    let ty = value.get("type").and_then(Value::as_str);
    match ty {
        Some("transaction") => PayloadKind::Transaction,
        Some("feedback") => PayloadKind::Feedback,
        Some("replay_event") => PayloadKind::ReplayEvent,
        _ if value.get("aggregates").is_some() => PayloadKind::Sessions,
        _ if value.get("sid").is_some() && value.get("status").is_some() => PayloadKind::Session,
        _ if value.get("items").is_some_and(Value::is_array) => PayloadKind::LogContainer,
        _ if value.get("check_in_id").is_some() => PayloadKind::CheckIn,
        _ => PayloadKind::Event,
    }
}

fn compile_case_config(
    folder: &Path,
    base: &ConfigFile,
) -> Result<(Scrubber, Policy, EnvelopeLimits), String> {
    let overlay = folder.join("config.toml");
    let mut file = base.clone();
    // The base config's key never applies to fixtures (see the module docs).
    file.scrub.hash_key_file = None;
    if overlay.is_file() {
        file = Figment::from(Serialized::defaults(file))
            .merge(Toml::file_exact(&overlay))
            .extract()
            .map_err(|e| format!("config.toml: {e}"))?;
    }
    let key = match &file.scrub.hash_key_file {
        Some(path) => {
            let path = folder.join(path);
            let secret = std::fs::read(&path)
                .map_err(|e| format!("scrub.hash_key_file {}: {e}", path.display()))?;
            let secret = secret.trim_ascii().to_vec();
            use sha2::Digest;
            let id = hex::encode(&sha2::Sha256::digest(&secret)[..4]);
            HashKey { id, secret }
        }
        None => HashKey {
            id: FIXTURE_HASH_KEY_ID.to_owned(),
            secret: FIXTURE_HASH_KEY.to_vec(),
        },
    };
    let scrubber = Scrubber::compile(&file.scrub, key).map_err(|e| e.to_string())?;
    let policy = Policy::compile(&file.policy).map_err(|(k, p)| format!("policy.{k}: {p}"))?;
    let limits = EnvelopeLimits {
        max_items: file.limits.max_envelope_items,
    };
    Ok((scrubber, policy, limits))
}

/// Envelope lines that are JSON are pretty-printed so a diff points at the field.
fn readable(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    for line in text.split('\n') {
        match serde_json::from_str::<Value>(line) {
            Ok(v) if v.is_object() || v.is_array() => {
                let pretty = serde_json::to_string_pretty(&v).unwrap_or_else(|_| line.to_owned());
                out.extend(pretty.lines().map(str::to_owned));
            }
            _ => out.push(line.to_owned()),
        }
    }
    out
}

/// A unified-style line diff (`-` expected, `+` actual) with two lines of context.
pub fn diff(expected: &[String], actual: &[String]) -> String {
    let (n, m) = (expected.len(), actual.len());
    let mut out = String::new();
    if n.saturating_mul(m) > 25_000_000 {
        let _ = writeln!(out, "  (outputs too large to diff: {n} vs {m} lines)");
        return out;
    }
    // LCS table.
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if expected[i] == actual[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && expected[i] == actual[j] {
            ops.push((' ', &expected[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', &expected[i]));
            i += 1;
        } else {
            ops.push(('+', &actual[j]));
            j += 1;
        }
    }
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, (c, _))| *c != ' ')
        .map(|(k, _)| k)
        .collect();
    let mut last_printed: Option<usize> = None;
    for (k, (c, line)) in ops.iter().enumerate() {
        let near = changed.iter().any(|&x| x.abs_diff(k) <= 2);
        if !near {
            continue;
        }
        if let Some(prev) = last_printed {
            if k > prev + 1 {
                let _ = writeln!(out, "  ...");
            }
        }
        let _ = writeln!(out, "  {c} {line}");
        last_printed = Some(k);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(str::to_owned).collect()
    }

    #[test]
    fn diff_shows_changed_lines_with_context() {
        let d = diff(&lines("a\nb\nc\nd\ne\nf\ng"), &lines("a\nb\nc\nX\ne\nf\ng"));
        assert_eq!(d, "    b\n    c\n  - d\n  + X\n    e\n    f\n");
    }

    #[test]
    fn summary_line() {
        let s = Summary {
            cases: vec![
                CaseResult {
                    name: "a".into(),
                    outcome: CaseOutcome::Passed,
                },
                CaseResult {
                    name: "b".into(),
                    outcome: CaseOutcome::Failed(String::new()),
                },
            ],
        };
        assert_eq!(s.line(), "1 passed, 1 failed");
    }
}
