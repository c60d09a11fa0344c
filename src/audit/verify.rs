//! `scrubgate audit verify`: walks the hash chain through every file of a trail and names the
//! first record that does not fit.
//!
//! A chain proves order and integrity *after* its first record: the first record found is
//! taken as the anchor (the genesis record, or the first record after files deleted by
//! retention). Deleting records at the very end cannot be seen from the file alone, so the
//! report prints the head hash for the operator to keep elsewhere.

use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::files;
use super::record::{line_hash, GENESIS};

/// A chain that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub files: Vec<PathBuf>,
    pub records: u64,
    /// True if the first record is the genesis record; false if earlier files were removed.
    pub starts_at_genesis: bool,
    /// Hash of the last record: keep it to detect later truncation.
    pub head: String,
}

/// The first broken record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub file: PathBuf,
    /// 1-based line number within `file`.
    pub line: u64,
    pub problem: Problem,
}

/// What is wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Unreadable(String),
    NotJson,
    MissingPrev,
    /// `prev` is not the hash of the record before it.
    ChainBroken {
        previous: Option<(PathBuf, u64)>,
    },
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file.display(), self.line)?;
        match &self.problem {
            Problem::Unreadable(error) => write!(f, "cannot read the file: {error}"),
            Problem::NotJson => write!(f, "not a valid audit record (damaged or edited line)"),
            Problem::MissingPrev => write!(f, "record has no \"prev\" hash"),
            Problem::ChainBroken { previous: Some((file, line)) } => write!(
                f,
                "\"prev\" does not match the record before it ({}:{line}): that record was edited, or records were deleted or reordered",
                file.display()
            ),
            Problem::ChainBroken { previous: None } => {
                write!(f, "\"prev\" does not match the record before it")
            }
        }
    }
}

/// Expands each path to its whole trail (rotated siblings first) and removes duplicates,
/// keeping chain order.
///
/// # Errors
/// A directory cannot be listed.
pub fn expand(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = Vec::new();
    for path in paths {
        let is_rotated = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
            n.split('.').nth(1).is_some_and(|stamp| {
                stamp.len() == 16 && stamp.ends_with('Z') && stamp.as_bytes()[8] == b'T'
            })
        });
        let mut expanded = if is_rotated {
            vec![path.clone()]
        } else {
            files::rotated_files(path)?
        };
        expanded.push(path.clone());
        for file in expanded {
            if !out.contains(&file) {
                out.push(file);
            }
        }
    }
    Ok(out)
}

/// Verifies `files` as one chain, in the order given.
///
/// # Errors
/// The first broken record.
pub fn verify_files(files: &[PathBuf]) -> Result<VerifyReport, Broken> {
    let mut previous: Option<(String, PathBuf, u64)> = None;
    let mut records = 0;
    let mut starts_at_genesis = true;
    for file in files {
        verify_file(file, &mut previous, &mut records, &mut starts_at_genesis)?;
    }
    Ok(VerifyReport {
        files: files.to_vec(),
        records,
        starts_at_genesis,
        head: previous.map_or_else(|| GENESIS.to_owned(), |(hash, _, _)| hash),
    })
}

fn verify_file(
    file: &Path,
    previous: &mut Option<(String, PathBuf, u64)>,
    records: &mut u64,
    starts_at_genesis: &mut bool,
) -> Result<(), Broken> {
    let broken = |line, problem| Broken {
        file: file.to_path_buf(),
        line,
        problem,
    };
    let handle = std::fs::File::open(file)
        .map_err(|e| broken(0, Problem::Unreadable(e.kind().to_string())))?;
    let mut reader = BufReader::new(handle);
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| broken(number + 1, Problem::Unreadable(e.kind().to_string())))?;
        if read == 0 {
            return Ok(());
        }
        number += 1;
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        let value: Value =
            serde_json::from_slice(&line).map_err(|_| broken(number, Problem::NotJson))?;
        let prev = value
            .get("prev")
            .and_then(Value::as_str)
            .ok_or_else(|| broken(number, Problem::MissingPrev))?;
        match previous {
            None => *starts_at_genesis = prev == GENESIS,
            Some((hash, prev_file, prev_line)) => {
                if prev != hash {
                    return Err(broken(
                        number,
                        Problem::ChainBroken {
                            previous: Some((prev_file.clone(), *prev_line)),
                        },
                    ));
                }
            }
        }
        *previous = Some((line_hash(&line), file.to_path_buf(), number));
        *records += 1;
    }
}
