//! The on-disk spool: every envelope scrubgate acknowledges asynchronously is a record here
//! until the upstream has it. It is the write-ahead log (written before the 2xx goes out, so
//! a SIGKILL loses nothing acknowledged) and the outage buffer (replayed oldest-first).
//!
//! # Format
//!
//! An append-only log of segment files `seg-<20-digit sequence>.log`, each up to
//! `spool.segment_bytes` (a record larger than that gets a segment of its own). Every record
//! is framed as
//!
//! ```text
//! [u32 LE length of the rest][u32 LE crc32 of the rest][rest = kind u8, payload]
//! ```
//!
//! - kind 1, envelope: `[u64 LE written-at ms][SpoolMeta JSON]\n[scrubbed envelope]`
//! - kind 2, completion: `[u64 LE segment][u64 LE offset][u8 outcome]`, marking the envelope
//!   record at (segment, offset) delivered (1), dropped (2) or expired (3).
//!
//! A record id is (segment sequence, byte offset). Writing an envelope is one `writev` (head
//! and body, the body not copied) to the active (newest) segment under the spool's mutex; completions are appended to the active
//! segment too, so there is one file to write and no companion log. With `spool.fsync`, a
//! writer waits for a group commit: one `fdatasync` covers every record written before it
//! started, so concurrent writers share it.
//!
//! # Space
//!
//! The live state (pending records, per-segment live counts) is kept in memory. A segment is
//! deleted (one unlink) when all of its envelope records are completed and every older
//! segment it holds completions for is already gone, so a completion never disappears before
//! the record it completes. `spool.max_bytes` caps the bytes of segment files on disk, which
//! include completed records until their segment is deleted: conservative (the real disk use),
//! never less than the pending bytes. To keep that overhead small for small caps, segments are
//! at most `max_bytes / 8`.
//!
//! # Recovery
//!
//! At start the segments are scanned in order. A torn tail (the newest segment ending in a
//! partial record: a crash during a write) is truncated. A record whose CRC does not match in
//! the middle of a segment is skipped and counted; a length that cannot be right ends the
//! scan of that segment (counted). Every envelope record without a completion is pending and
//! is replayed oldest first. Delivery is at least once: an envelope whose completion was not
//! written (crash between the upstream's 2xx and the append) is sent again after a restart.
//!
//! Spools of the previous format (one `<ms>-<seq>-<rand>.env` file per envelope) are imported
//! once at start: each file becomes a record of the new log (keeping its age), then the file
//! is deleted. Only scrubbed envelopes and metadata without payload values are ever written.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// `[spool]` in the config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolSettings {
    /// Directory for the spool's segment files (created if missing).
    pub dir: PathBuf,
    /// Cap on the segment files' total size; when full, new envelopes get 503 with
    /// `Retry-After` (the SDK keeps its copy) instead of being dropped silently.
    pub max_bytes: u64,
    /// Envelopes older than this are dropped undelivered (Sentry would discard very old
    /// events anyway).
    pub max_age_secs: u64,
    /// Size at which the active segment file is closed and a new one started.
    pub segment_bytes: u64,
    /// fdatasync the segment (group commit) before acknowledging. Off: durable against a
    /// process crash (page cache), not against a power loss.
    pub fsync: bool,
}

/// Smallest and largest accepted `spool.segment_bytes`.
pub const SEGMENT_BYTES_RANGE: (u64, u64) = (64 * 1024, 1024 * 1024 * 1024);

impl Default for SpoolSettings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("./scrubgate-spool"),
            max_bytes: 1024 * 1024 * 1024,
            max_age_secs: 24 * 3600,
            segment_bytes: 16 * 1024 * 1024,
            fsync: false,
        }
    }
}

/// Where a spooled envelope goes and how to present it; stored before the body of its
/// record. Holds no payload values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpoolMeta {
    /// Upstream base URL (empty for the file sink).
    pub base: String,
    pub public_key: String,
    pub project_id: u64,
    pub dsn: String,
    pub sentry_client: Option<String>,
    pub user_agent: Option<String>,
    pub event_id: Option<String>,
    /// Rate-limit categories of the items, to drop the envelope if they become limited.
    #[serde(default)]
    pub categories: Vec<String>,
    /// The configured project the envelope was accepted for: its `public_key` as the SDK
    /// used it. Delivery resolves the destination from the config current at send time, so
    /// a corrected `upstream.url` or `upstream_dsn` also redirects what is already spooled.
    /// Absent in records of older versions: those go to the destination stored above.
    #[serde(default)]
    pub sdk_public_key: Option<String>,
    /// The configured project's `project_id` (with `sdk_public_key`).
    #[serde(default)]
    pub sdk_project_id: Option<u64>,
}

/// Where a record starts: its segment's sequence number and its byte offset there. Sorting
/// ids is sorting by write order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId {
    pub segment: u64,
    pub offset: u64,
}

impl std::fmt::Display for RecordId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.segment, self.offset)
    }
}

/// Why a spooled envelope is finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    Delivered = 1,
    /// Rejected by the upstream, dropped for a rate limit, or unreadable.
    Dropped = 2,
    Expired = 3,
}

/// A spooled envelope read back.
#[derive(Debug, Clone)]
pub struct Spooled {
    pub id: RecordId,
    pub meta: SpoolMeta,
    pub body: Bytes,
}

/// Why an envelope could not be spooled or read.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool is full")]
    Full,
    #[error("spool I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("spool record is corrupt")]
    Corrupt,
}

/// What [`Spool::open`] found on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    pub segments: usize,
    /// Envelope records without a completion, queued for delivery.
    pub pending: usize,
    /// Envelope records already completed (their segment not yet deleted).
    pub completed: usize,
    /// Records skipped for a bad CRC or content, or segment scans ended by a bad length.
    pub corrupt: usize,
    /// Bytes cut off torn tails.
    pub truncated_bytes: u64,
    /// Files of the previous one-file-per-envelope format imported into the log.
    pub imported: usize,
}

impl Recovered {
    /// Counts and logs a record recovery could not use (`what` names the defect, never
    /// the content).
    fn skip_corrupt(&mut self, segment: u64, offset: usize, what: &'static str) {
        self.corrupt += 1;
        tracing::error!(segment, offset, defect = what, "spool record skipped");
    }
}

const KIND_ENVELOPE: u8 = 1;
const KIND_COMPLETION: u8 = 2;
const HEADER: usize = 8;
const COMPLETION_REST: usize = 1 + 8 + 8 + 1;
const SEGMENT_PREFIX: &str = "seg-";
const SEGMENT_SUFFIX: &str = ".log";
const LEGACY_SUFFIX: &str = ".env";

/// A pending envelope record.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// Framed size in bytes.
    size: u64,
    born_ms: u64,
}

#[derive(Debug, Default)]
struct Segment {
    /// File length as far as we wrote or verified it.
    bytes: u64,
    /// Envelope records not yet completed.
    live: u64,
    /// Older segments this one holds completions for (it must outlive them).
    refs: BTreeSet<u64>,
}

#[derive(Debug)]
struct Active {
    seq: u64,
    file: std::sync::Arc<File>,
}

#[derive(Debug, Default)]
struct State {
    active: Option<Active>,
    next_seq: u64,
    segments: BTreeMap<u64, Segment>,
    pending: BTreeMap<RecordId, Pending>,
    pending_bytes: u64,
    disk_bytes: u64,
    /// Records written so far; the ticket a writer waits on for its group commit.
    written: u64,
}

#[derive(Debug, Default)]
struct SyncState {
    synced: u64,
    failed: u64,
    syncing: bool,
}

/// The spool: segment log plus in-memory index.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    max_age: Duration,
    segment_limit: u64,
    fsync: bool,
    state: Mutex<State>,
    sync: Mutex<SyncState>,
    synced: Condvar,
    recovered: Recovered,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn segment_name(seq: u64) -> String {
    format!("{SEGMENT_PREFIX}{seq:020}{SEGMENT_SUFFIX}")
}

fn segment_seq(name: &str) -> Option<u64> {
    name.strip_prefix(SEGMENT_PREFIX)?
        .strip_suffix(SEGMENT_SUFFIX)?
        .parse()
        .ok()
}

/// Frames `rest` (kind + payload) into one buffer.
fn frame(rest_len: usize, fill: impl FnOnce(&mut Vec<u8>)) -> Result<Vec<u8>, SpoolError> {
    let len = u32::try_from(rest_len).map_err(|_| SpoolError::Corrupt)?;
    let mut record = Vec::with_capacity(HEADER + rest_len);
    record.extend_from_slice(&len.to_le_bytes());
    record.extend_from_slice(&[0; 4]);
    fill(&mut record);
    debug_assert_eq!(record.len(), HEADER + rest_len);
    let crc = crc32fast::hash(&record[HEADER..]);
    record[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(record)
}

/// An envelope record: the framed head (header, kind, age, metadata line) and the body,
/// written together with one `writev` so the body is not copied.
struct EnvelopeRecord<'a> {
    head: Vec<u8>,
    body: &'a [u8],
}

impl EnvelopeRecord<'_> {
    fn len(&self) -> usize {
        self.head.len() + self.body.len()
    }

    #[cfg(test)]
    fn to_vec(&self) -> Vec<u8> {
        [&self.head[..], self.body].concat()
    }
}

fn envelope_record<'a>(
    born_ms: u64,
    meta: &SpoolMeta,
    body: &'a [u8],
) -> Result<EnvelopeRecord<'a>, SpoolError> {
    let meta = serde_json::to_vec(meta).map_err(|_| SpoolError::Corrupt)?;
    let rest = 1 + 8 + meta.len() + 1 + body.len();
    let len = u32::try_from(rest).map_err(|_| SpoolError::Corrupt)?;
    let mut head = Vec::with_capacity(HEADER + rest - body.len());
    head.extend_from_slice(&len.to_le_bytes());
    head.extend_from_slice(&[0; 4]);
    head.push(KIND_ENVELOPE);
    head.extend_from_slice(&born_ms.to_le_bytes());
    head.extend_from_slice(&meta);
    head.push(b'\n');
    let mut crc = crc32fast::Hasher::new();
    crc.update(&head[HEADER..]);
    crc.update(body);
    head[4..8].copy_from_slice(&crc.finalize().to_le_bytes());
    Ok(EnvelopeRecord { head, body })
}

/// Writes every byte of `parts` (one `writev` unless the kernel takes less).
fn write_all_vectored(mut file: &File, parts: &[&[u8]]) -> std::io::Result<()> {
    let mut slices: Vec<std::io::IoSlice<'_>> =
        parts.iter().map(|p| std::io::IoSlice::new(p)).collect();
    let mut slices = &mut slices[..];
    std::io::IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => std::io::IoSlice::advance_slices(&mut slices, n),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

fn completion_record(id: RecordId, outcome: Completion) -> Result<Vec<u8>, SpoolError> {
    frame(COMPLETION_REST, |r| {
        r.push(KIND_COMPLETION);
        r.extend_from_slice(&id.segment.to_le_bytes());
        r.extend_from_slice(&id.offset.to_le_bytes());
        r.push(outcome as u8);
    })
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let slice = bytes.get(at..at + 8)?;
    let mut buf = [0; 8];
    buf.copy_from_slice(slice);
    Some(u64::from_le_bytes(buf))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let slice = bytes.get(at..at + 4)?;
    let mut buf = [0; 4];
    buf.copy_from_slice(slice);
    Some(u32::from_le_bytes(buf))
}

/// A decoded record body (after the CRC check).
enum Decoded {
    Envelope { born_ms: u64 },
    Completion(RecordId),
}

fn decode_rest(rest: &[u8]) -> Option<Decoded> {
    match *rest.first()? {
        KIND_ENVELOPE => {
            let born_ms = u64_at(rest, 1)?;
            // The metadata line must be there; it is parsed when the record is read.
            rest.get(9..)?.iter().position(|b| *b == b'\n')?;
            Some(Decoded::Envelope { born_ms })
        }
        KIND_COMPLETION if rest.len() == COMPLETION_REST => {
            let segment = u64_at(rest, 1)?;
            let offset = u64_at(rest, 9)?;
            matches!(rest[17], 1..=3).then_some(Decoded::Completion(RecordId { segment, offset }))
        }
        _ => None,
    }
}

/// Splits an envelope record's rest (after the CRC check) into metadata and body.
fn parse_envelope(id: RecordId, rest: Bytes) -> Result<Spooled, SpoolError> {
    if rest.first() != Some(&KIND_ENVELOPE) || rest.len() < 9 {
        return Err(SpoolError::Corrupt);
    }
    let newline = rest[9..]
        .iter()
        .position(|b| *b == b'\n')
        .ok_or(SpoolError::Corrupt)?
        + 9;
    let meta: SpoolMeta =
        serde_json::from_slice(&rest[9..newline]).map_err(|_| SpoolError::Corrupt)?;
    Ok(Spooled {
        id,
        meta,
        body: rest.slice(newline + 1..),
    })
}

// === impl Spool ===

impl Spool {
    /// Opens (creating) the directory, recovers the segment log, imports files of the
    /// previous format and deletes half-written leftovers, so a restart resumes where the
    /// last process stopped.
    ///
    /// # Errors
    /// The directory or a segment cannot be created, read or truncated.
    pub fn open(settings: &SpoolSettings) -> std::io::Result<Self> {
        std::fs::create_dir_all(&settings.dir)?;
        let mut segments = Vec::new();
        let mut legacy = Vec::new();
        for entry in std::fs::read_dir(&settings.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                let _ = std::fs::remove_file(entry.path());
            } else if let Some(seq) = segment_seq(&name) {
                segments.push(seq);
            } else if name.ends_with(LEGACY_SUFFIX) {
                legacy.push(name);
            }
        }
        segments.sort_unstable();
        legacy.sort_unstable();
        let mut spool = Self {
            dir: settings.dir.clone(),
            max_bytes: settings.max_bytes,
            max_age: Duration::from_secs(settings.max_age_secs),
            segment_limit: settings.segment_bytes.min(settings.max_bytes / 8).max(1),
            fsync: settings.fsync,
            state: Mutex::new(State::default()),
            sync: Mutex::new(SyncState::default()),
            synced: Condvar::new(),
            recovered: Recovered::default(),
        };
        let mut recovered = Recovered::default();
        {
            let mut state = lock(&spool.state);
            let last = segments.last().copied();
            for &seq in &segments {
                spool.recover_segment(&mut state, seq, Some(seq) == last, &mut recovered)?;
            }
            state.next_seq = last.map_or(0, |s| s + 1);
            recovered.segments = state.segments.len();
            recovered.pending = state.pending.len();
            spool.sweep(&mut state);
        }
        recovered.imported = spool.import_legacy(&legacy, &mut recovered)?;
        spool.recovered = recovered;
        Ok(spool)
    }

    /// Reads one segment into the index. Never appends to it: the next write starts a new
    /// segment.
    fn recover_segment(
        &self,
        state: &mut State,
        seq: u64,
        newest: bool,
        recovered: &mut Recovered,
    ) -> std::io::Result<()> {
        let path = self.dir.join(segment_name(seq));
        let data = std::fs::read(&path)?;
        let file_len = data.len() as u64;
        let mut segment = Segment::default();
        let mut offset = 0usize;
        let mut torn_at = None;
        while offset < data.len() {
            let Some(len) = u32_at(&data, offset).map(|l| l as usize) else {
                torn_at = Some(offset);
                break;
            };
            let Some(crc) = u32_at(&data, offset + 4) else {
                torn_at = Some(offset);
                break;
            };
            let end = offset + HEADER + len;
            if len == 0 || end > data.len() {
                if newest {
                    torn_at = Some(offset);
                } else {
                    recovered.skip_corrupt(seq, offset, "bad record length; rest of the segment");
                }
                break;
            }
            let rest = &data[offset + HEADER..end];
            if crc32fast::hash(rest) != crc {
                if newest && end == data.len() {
                    torn_at = Some(offset);
                } else {
                    recovered.skip_corrupt(seq, offset, "bad checksum");
                }
                offset = end;
                continue;
            }
            let id = RecordId {
                segment: seq,
                offset: offset as u64,
            };
            match decode_rest(rest) {
                Some(Decoded::Envelope { born_ms }) => {
                    let size = (HEADER + len) as u64;
                    state.pending.insert(id, Pending { size, born_ms });
                    state.pending_bytes += size;
                    segment.live += 1;
                }
                Some(Decoded::Completion(target)) => {
                    if let Some(done) = state.pending.remove(&target) {
                        state.pending_bytes -= done.size;
                        recovered.completed += 1;
                        if target.segment == seq {
                            segment.live = segment.live.saturating_sub(1);
                        } else {
                            if let Some(owner) = state.segments.get_mut(&target.segment) {
                                owner.live = owner.live.saturating_sub(1);
                            }
                            segment.refs.insert(target.segment);
                        }
                    }
                }
                None => {
                    recovered.skip_corrupt(seq, offset, "unknown record shape");
                }
            }
            offset = end;
        }
        let mut bytes = file_len;
        if let Some(at) = torn_at {
            let file = OpenOptions::new().write(true).open(&path)?;
            file.set_len(at as u64)?;
            recovered.truncated_bytes += file_len - at as u64;
            bytes = at as u64;
            tracing::warn!(
                segment = seq,
                offset = at,
                cut_bytes = file_len - at as u64,
                "torn tail of the spool segment truncated"
            );
        }
        segment.bytes = bytes;
        state.disk_bytes += bytes;
        state.segments.insert(seq, segment);
        Ok(())
    }

    /// Imports files of the one-file-per-envelope format: appended to the log with their
    /// original age, made durable, then deleted.
    fn import_legacy(&self, names: &[String], recovered: &mut Recovered) -> std::io::Result<usize> {
        if names.is_empty() {
            return Ok(0);
        }
        let mut imported = 0;
        let mut state = lock(&self.state);
        for name in names {
            let path = self.dir.join(name);
            let data = std::fs::read(&path)?;
            let parsed = data.iter().position(|b| *b == b'\n').and_then(|newline| {
                serde_json::from_slice::<SpoolMeta>(&data[..newline])
                    .ok()
                    .map(|meta| (meta, &data[newline + 1..]))
            });
            let Some((meta, body)) = parsed else {
                recovered.corrupt += 1;
                tracing::error!("corrupt spool file of the previous format removed");
                let _ = std::fs::remove_file(&path);
                continue;
            };
            let born_ms = name
                .split('-')
                .next()
                .and_then(|m| m.parse().ok())
                .unwrap_or_else(now_ms);
            let record = envelope_record(born_ms, &meta, body).map_err(std::io::Error::other)?;
            self.append_envelope(&mut state, &record, born_ms)?;
            imported += 1;
        }
        if let Some(active) = &state.active {
            active.file.sync_data()?;
            File::open(&self.dir)?.sync_all()?;
        }
        drop(state);
        for name in names {
            let _ = std::fs::remove_file(self.dir.join(name));
        }
        if imported > 0 {
            tracing::info!(imported, "spool files of the previous format imported");
        }
        Ok(imported)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What the start-up scan found.
    pub fn recovered(&self) -> &Recovered {
        &self.recovered
    }

    /// (pending envelopes, bytes of segment files on disk). The bytes are what
    /// `spool.max_bytes` caps; they include completed records until their segment is
    /// deleted.
    pub fn usage(&self) -> (u64, u64) {
        let state = lock(&self.state);
        (state.pending.len() as u64, state.disk_bytes)
    }

    /// Framed bytes of the pending envelope records.
    pub fn pending_bytes(&self) -> u64 {
        lock(&self.state).pending_bytes
    }

    /// Whether a new envelope of `len` bytes would fit.
    pub fn has_room(&self, len: u64) -> bool {
        lock(&self.state).disk_bytes.saturating_add(len) <= self.max_bytes
    }

    /// Appends one envelope and (with `fsync`) waits for its group commit; returns its id.
    /// Blocking: call from a blocking thread.
    ///
    /// # Errors
    /// [`SpoolError::Full`] past `max_bytes`, or an I/O error.
    pub fn write(&self, meta: &SpoolMeta, body: &[u8]) -> Result<RecordId, SpoolError> {
        let born_ms = now_ms();
        let record = envelope_record(born_ms, meta, body)?;
        let (id, ticket) = {
            let mut state = lock(&self.state);
            let size = record.len() as u64;
            if state.disk_bytes.saturating_add(size) > self.max_bytes {
                // The active segment may be all completed records: start over.
                self.reclaim_active(&mut state);
                if state.disk_bytes.saturating_add(size) > self.max_bytes {
                    return Err(SpoolError::Full);
                }
            }
            let id = self.append_envelope(&mut state, &record, born_ms)?;
            (id, state.written)
        };
        if self.fsync {
            if let Err(error) = self.wait_durable(ticket) {
                // Not acknowledged: the SDK retries, so this copy must not be delivered too.
                self.complete(id, Completion::Dropped);
                return Err(SpoolError::Io(error));
            }
        }
        Ok(id)
    }

    /// Makes a written record eligible for delivery and replay.
    // stub: replaced by the spool-framing branch
    pub fn release(&self, _id: RecordId) -> Result<(), SpoolError> {
        Ok(())
    }

    fn append_envelope(
        &self,
        state: &mut State,
        record: &EnvelopeRecord<'_>,
        born_ms: u64,
    ) -> std::io::Result<RecordId> {
        let size = record.len() as u64;
        let id = self.append(state, &[&record.head, record.body])?;
        state.pending.insert(id, Pending { size, born_ms });
        state.pending_bytes += size;
        if let Some(segment) = state.segments.get_mut(&id.segment) {
            segment.live += 1;
        }
        Ok(id)
    }

    /// Appends a framed record to the active segment (rolling over or creating it first).
    fn append(&self, state: &mut State, parts: &[&[u8]]) -> std::io::Result<RecordId> {
        let size: u64 = parts.iter().map(|p| p.len() as u64).sum();
        let rollover = state.active.as_ref().is_some_and(|active| {
            let len = state.segments.get(&active.seq).map_or(0, |s| s.bytes);
            len > 0 && len + size > self.segment_limit
        });
        if rollover {
            self.close_active(state)?;
        }
        if state.active.is_none() {
            self.create_active(state)?;
        }
        let Some(active) = &state.active else {
            return Err(std::io::Error::other("no active spool segment"));
        };
        let seq = active.seq;
        let file = std::sync::Arc::clone(&active.file);
        let offset = state.segments.get(&seq).map_or(0, |s| s.bytes);
        if let Err(error) = write_all_vectored(&file, parts) {
            // Never leave half a record: cut it off, or give up on this segment.
            if file.set_len(offset).is_err() {
                state.active = None;
            }
            return Err(error);
        }
        if let Some(segment) = state.segments.get_mut(&seq) {
            segment.bytes += size;
        }
        state.disk_bytes += size;
        state.written += 1;
        Ok(RecordId {
            segment: seq,
            offset,
        })
    }

    fn create_active(&self, state: &mut State) -> std::io::Result<()> {
        let seq = state.next_seq;
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(self.dir.join(segment_name(seq)))?;
        if self.fsync {
            File::open(&self.dir)?.sync_all()?;
        }
        state.next_seq += 1;
        state.segments.insert(seq, Segment::default());
        state.active = Some(Active {
            seq,
            file: std::sync::Arc::new(file),
        });
        Ok(())
    }

    /// Closes the active segment (durable first, with `fsync`: the group commit only syncs
    /// the active file) and deletes whatever became deletable.
    fn close_active(&self, state: &mut State) -> std::io::Result<()> {
        if let Some(active) = &state.active {
            if self.fsync {
                active.file.sync_data()?;
            }
        }
        state.active = None;
        self.sweep(state);
        Ok(())
    }

    /// Deletes the active segment when nothing in it is needed any more.
    fn reclaim_active(&self, state: &mut State) {
        let Some(seq) = state.active.as_ref().map(|a| a.seq) else {
            return;
        };
        if deletable(state, seq) {
            state.active = None;
            self.sweep(state);
        }
    }

    /// Deletes, oldest first, every segment that is not active, has no pending record and
    /// holds no completion for a segment still on disk.
    fn sweep(&self, state: &mut State) {
        let active = state.active.as_ref().map(|a| a.seq);
        loop {
            let victim = state
                .segments
                .keys()
                .copied()
                .find(|&seq| Some(seq) != active && deletable(state, seq));
            let Some(seq) = victim else {
                return;
            };
            if let Some(segment) = state.segments.remove(&seq) {
                state.disk_bytes = state.disk_bytes.saturating_sub(segment.bytes);
            }
            match std::fs::remove_file(self.dir.join(segment_name(seq))) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    tracing::warn!(segment = seq, error = %error, "cannot delete a completed spool segment");
                }
            }
        }
    }

    /// Waits until record `ticket` is covered by an fdatasync; the first waiter syncs for
    /// everyone who wrote before it started (group commit).
    fn wait_durable(&self, ticket: u64) -> std::io::Result<()> {
        let mut sync = lock(&self.sync);
        loop {
            if ticket <= sync.synced {
                return Ok(());
            }
            if ticket <= sync.failed {
                return Err(std::io::Error::other("spool fdatasync failed"));
            }
            if sync.syncing {
                sync = self
                    .synced
                    .wait(sync)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            sync.syncing = true;
            drop(sync);
            // Records of earlier segments were synced when their segment was closed.
            let (target, file) = {
                let state = lock(&self.state);
                (
                    state.written,
                    state
                        .active
                        .as_ref()
                        .map(|a| std::sync::Arc::clone(&a.file)),
                )
            };
            let result = file.map_or(Ok(()), |file| file.sync_data());
            sync = lock(&self.sync);
            sync.syncing = false;
            match &result {
                Ok(()) => sync.synced = sync.synced.max(target),
                Err(error) => {
                    tracing::error!(error = %error, "spool fdatasync failed");
                    sync.failed = sync.failed.max(target);
                }
            }
            self.synced.notify_all();
        }
    }

    /// Reads a pending envelope back.
    ///
    /// # Errors
    /// Not pending (already completed), I/O errors, or a record that fails its checks.
    pub fn read(&self, id: RecordId) -> Result<Spooled, SpoolError> {
        let size = lock(&self.state)
            .pending
            .get(&id)
            .map(|p| p.size)
            .ok_or_else(|| SpoolError::Io(std::io::ErrorKind::NotFound.into()))?;
        let file = File::open(self.dir.join(segment_name(id.segment)))?;
        let size = usize::try_from(size).map_err(|_| SpoolError::Corrupt)?;
        let mut data = vec![0; size];
        file.read_exact_at(&mut data, id.offset)?;
        let len = u32_at(&data, 0).ok_or(SpoolError::Corrupt)? as usize;
        let crc = u32_at(&data, 4).ok_or(SpoolError::Corrupt)?;
        if HEADER + len != size || crc32fast::hash(&data[HEADER..]) != crc {
            return Err(SpoolError::Corrupt);
        }
        parse_envelope(id, Bytes::from(data).slice(HEADER..))
    }

    /// Marks a pending envelope finished: appends a completion record and deletes the
    /// segments that no longer hold anything needed. Nothing happens for an id that is not
    /// pending. A failed append is logged; the envelope is then sent again after a restart
    /// (at least once).
    pub fn complete(&self, id: RecordId, outcome: Completion) {
        let mut state = lock(&self.state);
        let Some(done) = state.pending.remove(&id) else {
            return;
        };
        state.pending_bytes -= done.size;
        let result = completion_record(id, outcome)
            .map_err(std::io::Error::other)
            .and_then(|record| self.append(&mut state, &[&record]));
        match result {
            Ok(at) if at.segment != id.segment => {
                if let Some(segment) = state.segments.get_mut(&at.segment) {
                    segment.refs.insert(id.segment);
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::error!(error = %error, record = %id, "cannot append a spool completion; the envelope may be sent again after a restart");
            }
        }
        let emptied = state.segments.get_mut(&id.segment).is_some_and(|segment| {
            segment.live = segment.live.saturating_sub(1);
            segment.live == 0
        });
        if emptied {
            self.sweep(&mut state);
        }
    }

    /// Up to `limit` pending ids, oldest first, skipping `busy` ones.
    pub fn oldest(&self, busy: &HashSet<RecordId>, limit: usize) -> Vec<RecordId> {
        lock(&self.state)
            .pending
            .keys()
            .filter(|id| !busy.contains(id))
            .take(limit)
            .copied()
            .collect()
    }

    /// Drops envelopes older than `max_age_secs` (a completion each); returns how many.
    pub fn expire(&self, busy: &HashSet<RecordId>) -> usize {
        let cutoff =
            now_ms().saturating_sub(u64::try_from(self.max_age.as_millis()).unwrap_or(u64::MAX));
        let old: Vec<RecordId> = lock(&self.state)
            .pending
            .iter()
            .filter(|(id, p)| p.born_ms < cutoff && !busy.contains(id))
            .map(|(id, _)| *id)
            .collect();
        for id in &old {
            self.complete(*id, Completion::Expired);
        }
        old.len()
    }

    /// Deletes the active segment if nothing in it is needed any more, so an idle proxy
    /// leaves an empty directory. Called now and then (the replayer's tick), not per record.
    pub fn maintain(&self) {
        let mut state = lock(&self.state);
        self.reclaim_active(&mut state);
    }

    /// Whether a file can be created in the directory now (for `/readyz`).
    pub fn is_writable(&self) -> bool {
        let probe = self
            .dir
            .join(format!(".probe-{}.tmp", uuid::Uuid::new_v4().simple()));
        let ok = std::fs::write(&probe, b"").is_ok();
        let _ = std::fs::remove_file(&probe);
        ok && self.has_room(1)
    }
}

/// A segment may go when it has no pending record and every segment it holds completions
/// for is gone.
fn deletable(state: &State, seq: u64) -> bool {
    state.segments.get(&seq).is_some_and(|segment| {
        segment.live == 0
            && segment
                .refs
                .iter()
                .all(|r| *r == seq || !state.segments.contains_key(r))
    })
}

#[cfg(test)]
mod tests;
