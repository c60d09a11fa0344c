//! Where the trail lives on disk: the active file and its rotated siblings, named so that
//! sorting by name is sorting by time: `<stem>.<YYYYMMDDTHHMMSSZ>.<seq>.<ext>`.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use time::{Date, OffsetDateTime, PrimitiveDateTime};

const STAMP_FORMAT: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");

/// `(stem, extension)` of the active file's name: `audit.jsonl` → `("audit", "jsonl")`.
fn name_parts(active: &Path) -> (String, String) {
    let stem = active
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = active
        .extension()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    (stem, ext)
}

fn dir_of(active: &Path) -> PathBuf {
    match active.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The name for rotating `active` at `now`; `seq` tells apart rotations within a second.
pub fn rotated_path(active: &Path, now: OffsetDateTime, seq: u32) -> PathBuf {
    let (stem, ext) = name_parts(active);
    let stamp = now.format(STAMP_FORMAT).unwrap_or_default();
    dir_of(active).join(format!("{stem}.{stamp}.{seq:03}.{ext}"))
}

/// When a rotated file of `active` was rotated, or `None` if `name` is not one of them.
pub fn rotated_at(active: &Path, name: &str) -> Option<OffsetDateTime> {
    let (stem, ext) = name_parts(active);
    let rest = name.strip_prefix(&format!("{stem}."))?;
    let rest = rest.strip_suffix(&format!(".{ext}"))?;
    let (stamp, seq) = rest.split_once('.')?;
    if seq.len() != 3 || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    PrimitiveDateTime::parse(stamp, STAMP_FORMAT)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

/// Rotated siblings of `active`, oldest first.
///
/// # Errors
/// The directory cannot be listed.
pub fn rotated_files(active: &Path) -> io::Result<Vec<PathBuf>> {
    let dir = dir_of(active);
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(error) => return Err(error),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if rotated_at(active, &name).is_some() {
            found.push(dir.join(name));
        }
    }
    found.sort();
    Ok(found)
}

/// The whole trail of `active` in chain order: rotated files, then the active file.
///
/// # Errors
/// The directory cannot be listed.
pub fn trail(active: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = rotated_files(active)?;
    if active.exists() {
        files.push(active.to_path_buf());
    }
    Ok(files)
}

/// The last line of `path` (without its newline) and whether the file ends with a newline.
/// Reads backwards in chunks so a large file costs only its tail.
///
/// # Errors
/// The file cannot be read.
pub fn last_line(path: &Path) -> io::Result<Option<(Vec<u8>, bool)>> {
    let mut file = File::open(path)?;
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(None);
    }
    const CHUNK: u64 = 64 * 1024;
    let mut tail: Vec<u8> = Vec::new();
    let mut pos = len;
    loop {
        let start = pos.saturating_sub(CHUNK);
        let mut chunk = vec![0u8; (pos - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&tail);
        tail = chunk;
        pos = start;
        let ends_with_newline = tail.last() == Some(&b'\n');
        let body = if ends_with_newline {
            &tail[..tail.len() - 1]
        } else {
            &tail[..]
        };
        if let Some(newline) = body.iter().rposition(|b| *b == b'\n') {
            return Ok(Some((body[newline + 1..].to_vec(), ends_with_newline)));
        }
        if pos == 0 {
            return Ok(Some((body.to_vec(), ends_with_newline)));
        }
    }
}

/// The UTC day a file was last written, for daily rotation after a restart.
pub fn modified_day(file: &File) -> Option<Date> {
    let modified = file.metadata().ok()?.modified().ok()?;
    Some(OffsetDateTime::from(modified).date())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_names_sort_by_time_and_parse_back() {
        let active = Path::new("/var/log/sg/audit.jsonl");
        let t = time::macros::datetime!(2024-01-02 03:04:05 UTC);
        let a = rotated_path(active, t, 0);
        let b = rotated_path(active, t, 1);
        let c = rotated_path(active, t + time::Duration::seconds(1), 0);
        assert_eq!(
            a.to_string_lossy(),
            "/var/log/sg/audit.20240102T030405Z.000.jsonl"
        );
        assert!(a < b && b < c);
        let name = a.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        assert_eq!(rotated_at(active, name), Some(t));
        assert_eq!(rotated_at(active, "audit.jsonl"), None);
        assert_eq!(rotated_at(active, "other.20240102T030405Z.000.jsonl"), None);
    }

    #[test]
    fn last_line_reads_across_chunks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.jsonl");
        let long = "x".repeat(200_000);
        std::fs::write(&path, format!("first\n{long}\n")).expect("write");
        let (line, complete) = last_line(&path).expect("read").expect("non-empty");
        assert_eq!(line.len(), 200_000);
        assert!(complete);
        std::fs::write(&path, "one\ntwo-partial").expect("write");
        let (line, complete) = last_line(&path).expect("read").expect("non-empty");
        assert_eq!(line, b"two-partial");
        assert!(!complete);
        std::fs::write(&path, "").expect("write");
        assert!(last_line(&path).expect("read").is_none());
    }
}
