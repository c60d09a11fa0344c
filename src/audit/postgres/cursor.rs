//! The shipper's place in the local trail: an open file (which keeps working when the writer
//! renames it at rotation), the byte offset after the last shipped line, and that line's
//! `seq` and hash. Only complete lines (ending in a newline) are read, so a record the
//! writer is still appending is never shipped half.
//!
//! The database is the authority on what was shipped: at start the cursor is placed after
//! the line whose hash is the newest row's `hash` for this instance. A small state file next
//! to the trail remembers where that line was, so finding it costs one read instead of a
//! scan of years of files; without it (or if it disagrees) the trail is scanned by hash.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::audit::files;
use crate::audit::record::line_hash;

/// One complete line read from the trail, not shipped yet.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub start: u64,
    pub end: u64,
    pub line: Vec<u8>,
    pub hash: String,
}

/// The state file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SavedPosition {
    pub instance_id: String,
    pub file: PathBuf,
    pub line_start: u64,
    pub offset: u64,
    pub seq: u64,
    pub hash: String,
}

pub(super) struct Cursor {
    file: File,
    path: PathBuf,
    inode: u64,
    /// The next byte to read.
    pub offset: u64,
    /// Where the last shipped line starts (for the state file).
    pub line_start: u64,
    /// `seq` of the last shipped line; 0 before the first.
    pub seq: u64,
    /// Hash of the last shipped line; empty before the first.
    pub hash: String,
}

/// Where the state file of `active` lives.
pub(super) fn state_path(active: &Path) -> PathBuf {
    let name = active
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    active.with_file_name(format!(".{name}.pgship"))
}

fn inode(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.ino())
}

impl Cursor {
    fn open(path: &Path, offset: u64) -> io::Result<Self> {
        let file = File::open(path)?;
        let inode = file.metadata()?.ino();
        Ok(Self {
            file,
            path: path.to_path_buf(),
            inode,
            offset,
            line_start: 0,
            seq: 0,
            hash: String::new(),
        })
    }

    /// The position to save once everything up to here is in the database.
    pub fn saved(&self, instance_id: &str) -> SavedPosition {
        SavedPosition {
            instance_id: instance_id.to_owned(),
            file: self.path.clone(),
            line_start: self.line_start,
            offset: self.offset,
            seq: self.seq,
            hash: self.hash.clone(),
        }
    }

    /// Marks `entries` (read by [`Cursor::read_batch`]) as shipped.
    pub fn advance(&mut self, entries: &[Entry]) {
        if let Some(last) = entries.last() {
            self.offset = last.end;
            self.line_start = last.start;
            self.seq += entries.len() as u64;
            self.hash.clone_from(&last.hash);
        }
    }

    /// Up to `max` complete lines after the cursor (without moving it). Follows rotation: at
    /// the end of a file that is no longer the active one, moves to the next file of the
    /// trail (only when nothing is pending, which is when this is called).
    pub fn read_batch(&mut self, active: &Path, max: usize) -> io::Result<Vec<Entry>> {
        let entries = read_lines(&self.file, self.offset, max)?;
        if !entries.is_empty() {
            return Ok(entries);
        }
        if inode(active) == Some(self.inode) {
            return Ok(entries);
        }
        // Our file was rotated away: read what was appended before the rename, then move on.
        let entries = read_lines(&self.file, self.offset, max)?;
        if !entries.is_empty() {
            return Ok(entries);
        }
        let trail = files::trail(active)?;
        let position = trail.iter().position(|p| inode(p) == Some(self.inode));
        let next = match position {
            Some(i) => trail.get(i + 1).cloned(),
            // Our file is gone (retention, or removed by hand): continue with the file whose
            // first record chains to the last one shipped, never a guess.
            None => trail
                .iter()
                .find(|path| first_prev(path).is_some_and(|prev| prev == self.hash))
                .cloned(),
        };
        let Some(next) = next else {
            return Ok(entries);
        };
        let (seq, hash, line_start) = (self.seq, self.hash.clone(), self.line_start);
        *self = Self::open(&next, 0)?;
        self.seq = seq;
        self.hash = hash;
        self.line_start = line_start;
        read_lines(&self.file, 0, max)
    }

    /// The next unshipped line, if it is short enough to peek at cheaply (for the lag's age).
    pub fn peek_line(&self) -> Option<Vec<u8>> {
        let mut buffer = vec![0u8; 16 * 1024];
        let read = self.file.read_at(&mut buffer, self.offset).ok()?;
        let end = memchr::memchr(b'\n', &buffer[..read])?;
        buffer.truncate(end);
        Some(buffer)
    }

    /// Bytes of the trail after the cursor: the shipper's lag.
    pub fn lag_bytes(&self, active: &Path) -> u64 {
        let ours = self.file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut lag = ours.saturating_sub(self.offset);
        if inode(active) != Some(self.inode) {
            let trail = files::trail(active).unwrap_or_default();
            let mut after = false;
            for path in trail {
                let Ok(meta) = std::fs::metadata(&path) else {
                    continue;
                };
                if after {
                    lag += meta.len();
                } else if meta.ino() == self.inode {
                    after = true;
                }
            }
        }
        lag
    }

    /// Places a cursor after the line hashed `last` (`seq`), or at the start of the trail when
    /// nothing was shipped yet. Tries the saved position first.
    ///
    /// # Errors
    /// The trail cannot be read, or it does not hold that line (`Ok(None)`).
    pub fn locate(
        active: &Path,
        last: Option<(u64, &str)>,
        saved: Option<&SavedPosition>,
    ) -> io::Result<Option<Self>> {
        let trail = files::trail(active)?;
        let Some((seq, last_hash)) = last else {
            return match trail.first() {
                Some(first) => Self::open(first, 0).map(Some),
                None => {
                    // No file yet: the writer creates the active file at start.
                    Self::open(active, 0).map(Some)
                }
            };
        };
        if let Some(saved) = saved.filter(|s| s.seq <= seq) {
            if let Some(mut cursor) = Self::at_saved(&trail, saved)? {
                if cursor.scan_to(&trail, last_hash)? {
                    cursor.seq = seq;
                    return Ok(Some(cursor));
                }
            }
        }
        // One pass over the whole trail, oldest file first.
        if let Some(first) = trail.first() {
            let mut cursor = Self::open(first, 0)?;
            if cursor.scan_to(&trail, last_hash)? {
                cursor.seq = seq;
                return Ok(Some(cursor));
            }
        }
        Ok(None)
    }

    /// A cursor at the saved position, if the line saved there is still there (in the saved
    /// file, or under its rotated name).
    fn at_saved(trail: &[PathBuf], saved: &SavedPosition) -> io::Result<Option<Self>> {
        let mut candidates: Vec<&PathBuf> = trail.iter().filter(|p| **p == saved.file).collect();
        candidates.extend(trail.iter().rev().filter(|p| **p != saved.file));
        for path in candidates {
            let Ok(file) = File::open(path) else {
                continue;
            };
            let length = saved.offset.saturating_sub(saved.line_start);
            if length == 0 || length > 64 * 1024 * 1024 {
                return Ok(None);
            }
            let mut line = vec![0u8; length as usize];
            if file.read_exact_at(&mut line, saved.line_start).is_err() {
                continue;
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            if line_hash(&line) == saved.hash {
                let mut cursor = Self::open(path, saved.offset)?;
                cursor.line_start = saved.line_start;
                cursor.hash.clone_from(&saved.hash);
                return Ok(Some(cursor));
            }
        }
        Ok(None)
    }

    /// Moves forward through this file and the later files of `trail` until just after the
    /// line hashed `target` (true), or to the end without finding it (false). When the
    /// cursor already stands after that line, it stays.
    fn scan_to(&mut self, trail: &[PathBuf], target: &str) -> io::Result<bool> {
        if self.hash == target {
            return Ok(true);
        }
        let first = trail.iter().position(|p| inode(p) == Some(self.inode));
        let Some(first) = first else {
            return Ok(false);
        };
        for (index, path) in trail.iter().enumerate().skip(first) {
            let offset = if index == first { self.offset } else { 0 };
            let mut file = File::open(path)?;
            file.seek(SeekFrom::Start(offset))?;
            let mut reader = BufReader::new(file);
            let mut position = offset;
            let mut line = Vec::new();
            loop {
                line.clear();
                let read = reader.read_until(b'\n', &mut line)?;
                if read == 0 || line.last() != Some(&b'\n') {
                    break;
                }
                let start = position;
                position += read as u64;
                line.pop();
                if line_hash(&line) == target {
                    let seq = self.seq;
                    *self = Self::open(path, position)?;
                    self.seq = seq;
                    self.line_start = start;
                    self.hash = target.to_owned();
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

/// The `prev` of the first record of `path`.
fn first_prev(path: &Path) -> Option<String> {
    #[derive(Deserialize)]
    struct Prev {
        prev: String,
    }
    let file = File::open(path).ok()?;
    let mut line = Vec::new();
    BufReader::new(file).read_until(b'\n', &mut line).ok()?;
    serde_json::from_slice::<Prev>(&line).ok().map(|p| p.prev)
}

/// A batch stops growing past this many bytes of lines: a batch is held three times over (the
/// bytes, the text, the driver's buffer), and records with many redactions are large.
const MAX_BATCH_BYTES: usize = 2 * 1024 * 1024;

/// Reads up to `max` complete lines of `file` from `offset` (fewer past
/// [`MAX_BATCH_BYTES`]).
fn read_lines(file: &File, offset: u64, max: usize) -> io::Result<Vec<Entry>> {
    const CHUNK: usize = 1024 * 1024;
    const MAX_LINE: usize = 64 * 1024 * 1024;
    let mut entries = Vec::new();
    let mut position = offset;
    let mut size = CHUNK;
    let mut bytes = 0;
    while entries.len() < max && bytes < MAX_BATCH_BYTES {
        let mut buffer = vec![0u8; size];
        let mut filled = 0;
        let mut handle = file;
        handle.seek(SeekFrom::Start(position))?;
        while filled < buffer.len() {
            let read = handle.read(&mut buffer[filled..])?;
            if read == 0 {
                break;
            }
            filled += read;
        }
        buffer.truncate(filled);
        let mut consumed = 0;
        while entries.len() < max && bytes < MAX_BATCH_BYTES {
            let Some(newline) = memchr::memchr(b'\n', &buffer[consumed..]) else {
                break;
            };
            bytes += newline;
            let line = buffer[consumed..consumed + newline].to_vec();
            let start = position + consumed as u64;
            consumed += newline + 1;
            entries.push(Entry {
                start,
                end: position + consumed as u64,
                hash: line_hash(&line),
                line,
            });
        }
        if consumed == 0 {
            // No complete line in this chunk: either the end of what is written, or a line
            // longer than the chunk.
            if filled == size && size < MAX_LINE {
                size *= 4;
                continue;
            }
            break;
        }
        position += consumed as u64;
        if filled < size {
            break;
        }
    }
    Ok(entries)
}

/// Reads the saved position, if any and for this instance.
pub(super) fn load_state(active: &Path, instance_id: &str) -> Option<SavedPosition> {
    let text = std::fs::read(state_path(active)).ok()?;
    let saved: SavedPosition = serde_json::from_slice(&text).ok()?;
    (saved.instance_id == instance_id).then_some(saved)
}

/// Writes the position atomically (temp file + rename). Losing it costs a scan, never a
/// record: the database decides what was shipped.
pub(super) fn save_state(active: &Path, saved: &SavedPosition) -> io::Result<()> {
    let path = state_path(active);
    let temp = path.with_extension("tmp");
    let bytes = serde_json::to_vec(saved).map_err(io::Error::other)?;
    std::fs::write(&temp, bytes)?;
    std::fs::rename(&temp, &path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(path: &Path, lines: &[&str]) {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        for line in lines {
            file.write_all(line.as_bytes()).expect("write");
        }
    }

    fn texts(entries: &[Entry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| String::from_utf8_lossy(&e.line).into_owned())
            .collect()
    }

    #[test]
    fn reads_complete_lines_only_and_follows_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let active = dir.path().join("audit.jsonl");
        append(&active, &["a\n", "b\n", "c"]);
        let mut cursor = Cursor::locate(&active, None, None)
            .expect("locate")
            .expect("found");
        let batch = cursor.read_batch(&active, 10).expect("read");
        assert_eq!(texts(&batch), ["a", "b"]);
        cursor.advance(&batch);
        assert_eq!((cursor.seq, cursor.offset), (2, 4));
        assert!(cursor.read_batch(&active, 10).expect("read").is_empty());
        assert_eq!(cursor.lag_bytes(&active), 1);
        // The writer finishes the line, then rotates; the new file gets two more.
        append(&active, &["\n", "d\n"]);
        let rotated = files::rotated_path(&active, time::OffsetDateTime::now_utc(), 0);
        std::fs::rename(&active, &rotated).expect("rotate");
        append(&active, &["e\n", "f\n"]);
        let batch = cursor.read_batch(&active, 1).expect("read");
        assert_eq!(texts(&batch), ["c"]);
        cursor.advance(&batch);
        let batch = cursor.read_batch(&active, 10).expect("read");
        assert_eq!(texts(&batch), ["d"]);
        cursor.advance(&batch);
        assert_eq!(cursor.lag_bytes(&active), 4);
        let batch = cursor.read_batch(&active, 10).expect("read");
        assert_eq!(texts(&batch), ["e", "f"]);
        cursor.advance(&batch);
        assert_eq!((cursor.seq, cursor.lag_bytes(&active)), (6, 0));
        assert_eq!(cursor.hash, line_hash(b"f"));
    }

    #[test]
    fn locates_the_last_shipped_line_by_hash_with_or_without_saved_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let active = dir.path().join("audit.jsonl");
        let rotated = files::rotated_path(&active, time::OffsetDateTime::now_utc(), 0);
        append(&rotated, &["one\n", "two\n"]);
        append(&active, &["three\n", "four\n"]);
        let three = line_hash(b"three");
        // Without a state file: scanned across files.
        let cursor = Cursor::locate(&active, Some((3, &three)), None)
            .expect("locate")
            .expect("found");
        assert_eq!((cursor.seq, cursor.offset, cursor.line_start), (3, 6, 0));
        assert_eq!(cursor.path, active);
        // With one: the same place, found by one read, and saved/loaded round trip.
        let saved = cursor.saved("pod");
        save_state(&active, &saved).expect("save");
        assert_eq!(load_state(&active, "pod"), Some(saved.clone()));
        assert_eq!(load_state(&active, "other-pod"), None);
        let cursor = Cursor::locate(&active, Some((3, &three)), Some(&saved))
            .expect("locate")
            .expect("found");
        assert_eq!((cursor.seq, cursor.offset), (3, 6));
        // The database is ahead of the state file: scan on from it.
        let four = line_hash(b"four");
        let cursor = Cursor::locate(&active, Some((4, &four)), Some(&saved))
            .expect("locate")
            .expect("found");
        assert_eq!((cursor.seq, cursor.offset), (4, 11));
        // A hash the trail does not hold: not found (another writer, or a replaced trail).
        let other = line_hash(b"elsewhere");
        assert!(Cursor::locate(&active, Some((9, &other)), Some(&saved))
            .expect("locate")
            .is_none());
    }
}
