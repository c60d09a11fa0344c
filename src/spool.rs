//! The on-disk spool: every envelope scrubgate acknowledges asynchronously is a record here
//! until the upstream has it. It is the write-ahead log (written before the 2xx goes out, so
//! a SIGKILL loses nothing acknowledged) and the outage buffer (replayed oldest-first).
//!
//! # Format
//!
//! An append-only log of segment files `seg-<20-digit sequence>.log`, each up to
//! `spool.segment_bytes` (a record larger than that gets a segment of its own). A segment
//! starts with a 20-byte header (`SGSPOOL2`, a random 8-byte salt, the salt's CRC); every
//! record is framed as
//!
//! ```text
//! [marker F1 'S' 'G' 9E][u32 LE len][u32 LE check][u8 state][rest = kind u8, payload]
//! ```
//!
//! - kind 1, envelope: `[u64 LE written-at ms][SpoolMeta JSON]\n[scrubbed envelope]`
//! - kind 2, completion: `[u64 LE segment][u64 LE offset][u8 outcome]`, marking the envelope
//!   record at (segment, offset) delivered (1), dropped (2) or expired (3).
//!
//! `check` is a CRC-32 seeded with the segment's salt over the salt, the length field and
//! `rest`, so a damaged length is detected, and a record serialized inside an envelope body
//! (attacker-controlled bytes) never validates: its author cannot know the salt. The byte
//! layout and the reader live in [`format`].
//!
//! A record id is (segment sequence, byte offset). Writing an envelope is one `writev` (head
//! and body, the body not copied) to the active (newest) segment under the spool's mutex;
//! completions are appended to the active segment too, so there is one file to write and no
//! companion log. With `spool.fsync`, [`Spool::release`] waits for a group commit: one
//! `fdatasync` covers every record written or released before it started, so concurrent
//! writers share it.
//!
//! # Held and released envelopes
//!
//! [`Spool::write`] appends an envelope *held*: pending, but not handed out by
//! [`Spool::oldest`] nor expired, because the proxy must not deliver an envelope before its
//! audit record is durable. [`Spool::release`] makes it deliverable by overwriting the state
//! byte in place (`pwrite`, outside the check), which needs no file growth and so cannot fail
//! for a full disk. A held envelope found at start without a completion was never
//! acknowledged to its SDK (the 2xx goes out after the release): it is completed as dropped
//! and counted in [`Recovered::unconfirmed`], never delivered.
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
//! At start the segments are scanned in order ([`format::scan`]). After a record that fails
//! any check (marker, length, check, state, shape) the scan searches forward for the next
//! marker at which a valid record starts and goes on from there, so damage costs only the
//! records it hit. A torn tail (the newest segment ending in bytes that hold no valid record:
//! a crash during a write) is truncated; nothing else is ever cut.
//!
//! A segment with damage anywhere else is *quarantined*: whatever it still provides (its
//! pending envelopes, and its completions for records of older segments still on disk) is
//! appended to a fresh segment and made durable, then the file is moved, byte for byte, to
//! `<spool.dir>/quarantine/` (never deleted) and logged at ERROR with its name and the
//! envelopes it lost. A damaged completion record only means its envelope may be sent again.
//! Every envelope record without a completion is pending and is replayed oldest first.
//! Delivery is at least once: an envelope whose completion was not written (crash between the
//! upstream's 2xx and the append) is sent again after a restart.
//!
//! Segments of the previous record format (no file header; `[u32 len][u32 crc][rest]`, no
//! marker, no state) are read with the previous reader and count as released. Spools of the
//! format before that (one `<ms>-<seq>-<rand>.env` file per envelope) are imported once at
//! start: each file becomes a record of the log (keeping its age), then the file is deleted.
//! Only scrubbed envelopes and metadata without payload values are ever written.

#[doc(hidden)]
pub mod format;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use format::{
    Decoded, RestSum, COMPLETION_REST, FILE_HEADER_LEN, HELD, KIND_COMPLETION, KIND_ENVELOPE,
    LEGACY_HEAD, RELEASED, STATE_AT,
};
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

/// Why an envelope could not be spooled, read or released.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool is full")]
    Full,
    #[error("spool I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("spool record is corrupt")]
    Corrupt,
    /// [`Spool::release`] of an id that is not a held pending envelope (unknown, completed,
    /// or released already).
    #[error("spool record is not held")]
    NotHeld,
}

/// What [`Spool::open`] found on disk. Counts and file names only, never content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Segment files read.
    pub segments: usize,
    /// Released envelope records without a completion, queued for delivery.
    pub pending: usize,
    /// Envelope records already completed (their segment not yet deleted).
    pub completed: usize,
    /// Envelope records lost to damage (an estimate per damaged stretch, see
    /// [`format::scan`]), plus unreadable files of the one-file-per-envelope format.
    pub lost_envelopes: usize,
    /// Segments with damage other than a torn tail.
    pub damaged_segments: usize,
    /// Segment files moved to `quarantine/` (name there, envelopes lost in it).
    pub quarantined: Vec<(String, usize)>,
    /// Held envelopes without a completion: never acknowledged, completed as dropped.
    pub unconfirmed: usize,
    /// Bytes cut off torn tails.
    pub truncated_bytes: u64,
    /// Files of the one-file-per-envelope format imported into the log.
    pub imported: usize,
}

const SEGMENT_PREFIX: &str = "seg-";
const SEGMENT_SUFFIX: &str = ".log";
const LEGACY_SUFFIX: &str = ".env";
/// Subdirectory damaged segments are moved to.
pub const QUARANTINE_DIR: &str = "quarantine";

/// A pending envelope record.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// Framed size in bytes.
    size: u64,
    born_ms: u64,
    /// Not deliverable until released.
    held: bool,
}

#[derive(Debug, Default)]
struct Segment {
    /// File length as far as we wrote or verified it.
    bytes: u64,
    /// Envelope records not yet completed.
    live: u64,
    /// Older segments this one holds completions for (it must outlive them).
    refs: BTreeSet<u64>,
    /// Salt of its records' checks; `None` for a segment of the previous format.
    salt: Option<u64>,
}

#[derive(Debug)]
struct Active {
    seq: u64,
    salt: u64,
    /// Opened for appending: every record goes to the end.
    file: std::sync::Arc<File>,
    /// The same file without `O_APPEND`, for the in-place state byte of a release (Linux
    /// ignores the offset of a `pwrite` on an `O_APPEND` descriptor).
    patch: File,
}

#[derive(Debug, Default)]
struct State {
    active: Option<Active>,
    next_seq: u64,
    segments: BTreeMap<u64, Segment>,
    pending: BTreeMap<RecordId, Pending>,
    pending_bytes: u64,
    disk_bytes: u64,
    /// Records written or released so far; the ticket a writer waits on for its group commit.
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

/// A segment recovery found damaged, kept in memory until its intact records are copied.
struct Damaged {
    seq: u64,
    data: Vec<u8>,
    scan: format::Scan,
    lost: usize,
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

/// An envelope record's `rest`: the head (kind, age, metadata line) and the body, written
/// together with one `writev` so the body is not copied. Its unsalted CRC is computed before
/// the spool's lock is taken.
struct EnvelopeRecord<'a> {
    head: Vec<u8>,
    body: &'a [u8],
    sum: RestSum,
}

impl EnvelopeRecord<'_> {
    /// Framed size.
    fn len(&self) -> u64 {
        self.sum.framed_len()
    }
}

fn envelope_record<'a>(
    born_ms: u64,
    meta: &SpoolMeta,
    body: &'a [u8],
) -> Result<EnvelopeRecord<'a>, SpoolError> {
    let meta = serde_json::to_vec(meta).map_err(|_| SpoolError::Corrupt)?;
    let mut head = Vec::with_capacity(1 + 8 + meta.len() + 1);
    head.push(KIND_ENVELOPE);
    head.extend_from_slice(&born_ms.to_le_bytes());
    head.extend_from_slice(&meta);
    head.push(b'\n');
    let sum = RestSum::new(&[&head, body]).ok_or(SpoolError::Corrupt)?;
    Ok(EnvelopeRecord { head, body, sum })
}

fn completion_rest(id: RecordId, outcome: u8) -> [u8; COMPLETION_REST] {
    let mut rest = [0; COMPLETION_REST];
    rest[0] = KIND_COMPLETION;
    rest[1..9].copy_from_slice(&id.segment.to_le_bytes());
    rest[9..17].copy_from_slice(&id.offset.to_le_bytes());
    rest[17] = outcome;
    rest
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

/// Splits an envelope record's rest (after its checks) into metadata and body.
fn parse_envelope(id: RecordId, rest: Bytes) -> Result<Spooled, SpoolError> {
    if rest.first() != Some(&KIND_ENVELOPE) || rest.len() < 9 {
        return Err(SpoolError::Corrupt);
    }
    let newline = memchr::memchr(b'\n', &rest[9..]).ok_or(SpoolError::Corrupt)? + 9;
    let meta: SpoolMeta =
        serde_json::from_slice(&rest[9..newline]).map_err(|_| SpoolError::Corrupt)?;
    Ok(Spooled {
        id,
        meta,
        body: rest.slice(newline + 1..),
    })
}

/// Syncs a directory so that creates, renames and unlinks in it survive a power loss.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

// === impl Spool ===

impl Spool {
    /// Opens (creating) the directory, recovers the segment log (quarantining damaged
    /// segments, dropping unconfirmed held envelopes), imports files of the one-file-per-
    /// envelope format and deletes half-written leftovers, so a restart resumes where the last
    /// process stopped.
    ///
    /// # Errors
    /// The directory or a segment cannot be created, read, truncated, appended to or moved.
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
            let mut damaged = Vec::new();
            for &seq in &segments {
                let newest = Some(seq) == last;
                if let Some(segment) =
                    spool.recover_segment(&mut state, seq, newest, &mut recovered)?
                {
                    damaged.push(segment);
                }
            }
            state.next_seq = last.map_or(0, |s| s + 1);
            recovered.segments = segments.len();
            let damaged_seqs: BTreeSet<u64> = damaged.iter().map(|d| d.seq).collect();
            recovered.unconfirmed = spool.drop_unconfirmed(&mut state, &damaged_seqs)?;
            spool.quarantine(&mut state, &damaged, &damaged_seqs, &mut recovered)?;
            recovered.pending = state.pending.len();
            spool.sweep(&mut state);
        }
        recovered.imported = spool.import_legacy(&legacy, &mut recovered)?;
        spool.recovered = recovered;
        Ok(spool)
    }

    /// Reads one segment into the index and cuts a torn tail off the newest one. Never
    /// appends to it: the next write starts a new segment. Returns the segment if it is
    /// damaged anywhere else (it is then quarantined).
    fn recover_segment(
        &self,
        state: &mut State,
        seq: u64,
        newest: bool,
        recovered: &mut Recovered,
    ) -> std::io::Result<Option<Damaged>> {
        let path = self.dir.join(segment_name(seq));
        let data = std::fs::read(&path)?;
        let scan = format::scan(&data);
        let mut segment = Segment {
            salt: scan.header.salt(),
            ..Segment::default()
        };
        for found in &scan.records {
            let id = RecordId {
                segment: seq,
                offset: found.offset as u64,
            };
            match format::decode_rest(&data[found.rest.clone()]) {
                Some(Decoded::Envelope { born_ms }) => {
                    let size = (found.end - found.offset) as u64;
                    let held = found.held;
                    state.pending.insert(
                        id,
                        Pending {
                            size,
                            born_ms,
                            held,
                        },
                    );
                    state.pending_bytes += size;
                    segment.live += 1;
                }
                Some(Decoded::Completion {
                    segment: target_segment,
                    offset,
                    ..
                }) => {
                    let target = RecordId {
                        segment: target_segment,
                        offset,
                    };
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
                // The scan only returns records whose shape decodes.
                None => {}
            }
        }
        let file_len = data.len();
        let mut damage = &scan.damage[..];
        let mut bytes = file_len as u64;
        if let Some(tail) = scan.trailing(file_len).filter(|_| newest) {
            // A torn write, not lost data: never counted. Cut off only when nothing else is
            // wrong; a segment with other damage goes to quarantine whole, tail included.
            damage = &damage[..damage.len() - 1];
            if damage.is_empty() {
                let at = tail.range.start;
                let file = OpenOptions::new().write(true).open(&path)?;
                file.set_len(at as u64)?;
                recovered.truncated_bytes += (file_len - at) as u64;
                bytes = at as u64;
                tracing::warn!(
                    segment = seq,
                    offset = at,
                    cut_bytes = file_len - at,
                    "torn tail of the spool segment truncated"
                );
            }
        }
        segment.bytes = bytes;
        state.disk_bytes += bytes;
        state.segments.insert(seq, segment);
        if damage.is_empty() {
            return Ok(None);
        }
        let lost = damage.iter().map(|d| d.lost).sum();
        recovered.damaged_segments += 1;
        recovered.lost_envelopes += lost;
        Ok(Some(Damaged {
            seq,
            data,
            scan,
            lost,
        }))
    }

    /// Completes as dropped every held envelope found at start: it was never acknowledged
    /// (the 2xx follows the release), so its SDK still has it. Those in damaged segments are
    /// simply not copied out of them. Returns how many.
    fn drop_unconfirmed(
        &self,
        state: &mut State,
        damaged: &BTreeSet<u64>,
    ) -> std::io::Result<usize> {
        let held: Vec<RecordId> = state
            .pending
            .iter()
            .filter(|(_, p)| p.held)
            .map(|(id, _)| *id)
            .collect();
        for id in &held {
            if let Some(done) = state.pending.remove(id) {
                state.pending_bytes -= done.size;
            }
            if let Some(segment) = state.segments.get_mut(&id.segment) {
                segment.live = segment.live.saturating_sub(1);
            }
            if !damaged.contains(&id.segment) {
                self.append_completion(state, *id, Completion::Dropped)?;
            }
        }
        if !held.is_empty() {
            tracing::warn!(
                unconfirmed = held.len(),
                "held spool envelopes were never released (no acknowledgement went out); dropped"
            );
        }
        Ok(held.len())
    }

    /// Copies what the damaged segments still provide to the active segment, makes that
    /// durable, then moves the damaged files to `quarantine/`.
    fn quarantine(
        &self,
        state: &mut State,
        damaged: &[Damaged],
        damaged_seqs: &BTreeSet<u64>,
        recovered: &mut Recovered,
    ) -> std::io::Result<()> {
        if damaged.is_empty() {
            return Ok(());
        }
        for segment in damaged {
            self.copy_intact(state, segment, damaged_seqs)?;
        }
        // The copies must be durable before the originals leave the log.
        if let Some(active) = &state.active {
            active.file.sync_data()?;
        }
        sync_dir(&self.dir)?;
        let quarantine = self.dir.join(QUARANTINE_DIR);
        std::fs::create_dir_all(&quarantine)?;
        for segment in damaged {
            let name = segment_name(segment.seq);
            let target = unused_name(&quarantine, &name);
            std::fs::rename(self.dir.join(&name), quarantine.join(&target))?;
            if let Some(gone) = state.segments.remove(&segment.seq) {
                state.disk_bytes = state.disk_bytes.saturating_sub(gone.bytes);
            }
            tracing::error!(
                file = %name,
                quarantined_as = %target,
                lost_envelopes = segment.lost,
                "damaged spool segment moved to quarantine; its intact records were kept"
            );
            recovered.quarantined.push((target, segment.lost));
        }
        sync_dir(&quarantine)?;
        sync_dir(&self.dir)
    }

    /// Appends a damaged segment's pending envelopes (re-keyed) and its completions for
    /// records of older, intact segments to the active segment.
    fn copy_intact(
        &self,
        state: &mut State,
        segment: &Damaged,
        damaged: &BTreeSet<u64>,
    ) -> std::io::Result<()> {
        for found in &segment.scan.records {
            let rest = &segment.data[found.rest.clone()];
            match format::decode_rest(rest) {
                Some(Decoded::Envelope { .. }) => {
                    let old = RecordId {
                        segment: segment.seq,
                        offset: found.offset as u64,
                    };
                    let Some(pending) = state.pending.remove(&old) else {
                        continue;
                    };
                    state.pending_bytes -= pending.size;
                    let sum = RestSum::new(&[rest])
                        .ok_or_else(|| std::io::Error::other("spool record too large to copy"))?;
                    self.append_envelope(state, &sum, &[rest], pending.born_ms, false)?;
                }
                Some(Decoded::Completion {
                    segment: target_segment,
                    offset,
                    outcome,
                }) => {
                    let target = RecordId {
                        segment: target_segment,
                        offset,
                    };
                    if target_segment != segment.seq
                        && !damaged.contains(&target_segment)
                        && state.segments.contains_key(&target_segment)
                    {
                        self.append_completion_raw(state, target, outcome)?;
                    }
                }
                None => {}
            }
        }
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
            let parsed = memchr::memchr(b'\n', &data).and_then(|newline| {
                serde_json::from_slice::<SpoolMeta>(&data[..newline])
                    .ok()
                    .map(|meta| (meta, &data[newline + 1..]))
            });
            let Some((meta, body)) = parsed else {
                recovered.lost_envelopes += 1;
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
            self.append_envelope(
                &mut state,
                &record.sum,
                &[&record.head, record.body],
                born_ms,
                false,
            )?;
            imported += 1;
        }
        if let Some(active) = &state.active {
            active.file.sync_data()?;
            sync_dir(&self.dir)?;
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

    /// What the start-up scan found: counts for logs and metrics
    /// (`recovered().lost_envelopes`, `recovered().quarantined`), never content.
    pub fn recovered(&self) -> &Recovered {
        &self.recovered
    }

    /// (pending envelopes, held ones included; bytes of segment files on disk). The bytes
    /// are what `spool.max_bytes` caps; they include completed records until their segment
    /// is deleted.
    pub fn usage(&self) -> (u64, u64) {
        let state = lock(&self.state);
        (state.pending.len() as u64, state.disk_bytes)
    }

    /// Framed bytes of the pending envelope records, held ones included.
    pub fn pending_bytes(&self) -> u64 {
        lock(&self.state).pending_bytes
    }

    /// Whether a new envelope of `len` bytes would fit.
    pub fn has_room(&self, len: u64) -> bool {
        lock(&self.state).disk_bytes.saturating_add(len) <= self.max_bytes
    }

    /// Appends one envelope, *held*: pending, counted in the usage, but neither handed out
    /// by [`Spool::oldest`] nor expired until [`Spool::release`]; [`Spool::complete`] with
    /// [`Completion::Dropped`] removes it. Does not wait for an fdatasync: the release does,
    /// and its group commit covers this record too (an unreleased record is dropped at the
    /// next start anyway). Blocking: call from a blocking thread.
    ///
    /// # Errors
    /// [`SpoolError::Full`] past `max_bytes`, or an I/O error.
    pub fn write(&self, meta: &SpoolMeta, body: &[u8]) -> Result<RecordId, SpoolError> {
        let born_ms = now_ms();
        let record = envelope_record(born_ms, meta, body)?;
        let mut state = lock(&self.state);
        let size = record.len();
        if !self.fits(&state, size) {
            // The active segment may be all completed records: start over.
            self.reclaim_active(&mut state);
            if !self.fits(&state, size) {
                return Err(SpoolError::Full);
            }
        }
        let parts: [&[u8]; 2] = [&record.head, record.body];
        Ok(self.append_envelope(&mut state, &record.sum, &parts, born_ms, true)?)
    }

    /// Makes a held envelope deliverable: overwrites its state byte in place (no file
    /// growth, so a full disk cannot fail it) and, with `fsync`, waits for a group commit
    /// that also covers the record itself. Only after it returns may the 2xx go out. Blocking:
    /// call from a blocking thread.
    ///
    /// # Errors
    /// [`SpoolError::NotHeld`] for an id that is not a held pending envelope; an I/O error
    /// if the byte cannot be written (the envelope stays held) or synced (the envelope is
    /// then completed as dropped: not acknowledged, the SDK retries).
    pub fn release(&self, id: RecordId) -> Result<(), SpoolError> {
        let (ticket, other_file) = {
            let state = &mut *lock(&self.state);
            if !state.pending.get(&id).is_some_and(|p| p.held) {
                return Err(SpoolError::NotHeld);
            }
            let at = id.offset + STATE_AT as u64;
            let other_file = match state.active.as_ref().filter(|a| a.seq == id.segment) {
                Some(active) => {
                    active.patch.write_all_at(&[RELEASED], at)?;
                    None
                }
                None => {
                    // Its segment was closed since: patch it through its own descriptor.
                    let file = OpenOptions::new()
                        .write(true)
                        .open(self.dir.join(segment_name(id.segment)))?;
                    file.write_all_at(&[RELEASED], at)?;
                    Some(file)
                }
            };
            state.written += 1;
            (state.written, other_file)
        };
        if self.fsync {
            let synced = match &other_file {
                // Closed segments are not in the group commit (it syncs the active file).
                Some(file) => file.sync_data(),
                None => self.wait_durable(ticket),
            };
            if let Err(error) = synced {
                // Not acknowledged: the SDK retries, so this copy must not be delivered too.
                self.complete(id, Completion::Dropped);
                return Err(SpoolError::Io(error));
            }
        }
        if let Some(pending) = lock(&self.state).pending.get_mut(&id) {
            pending.held = false;
        }
        Ok(())
    }

    /// Whether a record of `size` framed bytes fits under `max_bytes`, with the header of the
    /// segment it would have to start.
    fn fits(&self, state: &State, size: u64) -> bool {
        let header = if self.needs_segment(state, size) {
            FILE_HEADER_LEN as u64
        } else {
            0
        };
        state.disk_bytes.saturating_add(size).saturating_add(header) <= self.max_bytes
    }

    /// Whether appending `size` bytes starts a new segment.
    fn needs_segment(&self, state: &State, size: u64) -> bool {
        state.active.as_ref().is_none_or(|active| {
            let len = state.segments.get(&active.seq).map_or(0, |s| s.bytes);
            len > FILE_HEADER_LEN as u64 && len + size > self.segment_limit
        })
    }

    fn append_envelope(
        &self,
        state: &mut State,
        sum: &RestSum,
        rest: &[&[u8]],
        born_ms: u64,
        held: bool,
    ) -> std::io::Result<RecordId> {
        let size = sum.framed_len();
        let id = self.append(state, if held { HELD } else { RELEASED }, sum, rest)?;
        state.pending.insert(
            id,
            Pending {
                size,
                born_ms,
                held,
            },
        );
        state.pending_bytes += size;
        if let Some(segment) = state.segments.get_mut(&id.segment) {
            segment.live += 1;
        }
        Ok(id)
    }

    fn append_completion(
        &self,
        state: &mut State,
        id: RecordId,
        outcome: Completion,
    ) -> std::io::Result<()> {
        self.append_completion_raw(state, id, outcome as u8)
    }

    /// Appends a completion of `id` and records which older segment it refers to.
    fn append_completion_raw(
        &self,
        state: &mut State,
        id: RecordId,
        outcome: u8,
    ) -> std::io::Result<()> {
        let rest = completion_rest(id, outcome);
        let sum = RestSum::new(&[&rest]).ok_or_else(|| std::io::Error::other("unreachable"))?;
        let at = self.append(state, RELEASED, &sum, &[&rest])?;
        if at.segment != id.segment {
            if let Some(segment) = state.segments.get_mut(&at.segment) {
                segment.refs.insert(id.segment);
            }
        }
        Ok(())
    }

    /// Appends a record (head built here with the active segment's salt, then `rest`) to
    /// the active segment, rolling over or creating it first.
    fn append(
        &self,
        state: &mut State,
        record_state: u8,
        sum: &RestSum,
        rest: &[&[u8]],
    ) -> std::io::Result<RecordId> {
        let size = sum.framed_len();
        if state.active.is_some() && self.needs_segment(state, size) {
            self.close_active(state)?;
        }
        if state.active.is_none() {
            self.create_active(state)?;
        }
        let Some(active) = &state.active else {
            return Err(std::io::Error::other("no active spool segment"));
        };
        let seq = active.seq;
        let head = format::record_head(active.salt, record_state, sum);
        let file = std::sync::Arc::clone(&active.file);
        let offset = state.segments.get(&seq).map_or(0, |s| s.bytes);
        let mut parts = Vec::with_capacity(1 + rest.len());
        parts.push(&head[..]);
        parts.extend_from_slice(rest);
        if let Err(error) = write_all_vectored(&file, &parts) {
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

    /// Creates the next segment with its header (a fresh random salt).
    fn create_active(&self, state: &mut State) -> std::io::Result<()> {
        let seq = state.next_seq;
        let path = self.dir.join(segment_name(seq));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        let salt: u64 = rand::random();
        if let Err(error) = (&file).write_all(&format::file_header(salt)) {
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Err(error);
        }
        let patch = OpenOptions::new().write(true).open(&path)?;
        if self.fsync {
            sync_dir(&self.dir)?;
        }
        state.next_seq += 1;
        state.segments.insert(
            seq,
            Segment {
                bytes: FILE_HEADER_LEN as u64,
                salt: Some(salt),
                ..Segment::default()
            },
        );
        state.disk_bytes += FILE_HEADER_LEN as u64;
        state.active = Some(Active {
            seq,
            salt,
            file: std::sync::Arc::new(file),
            patch,
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

    /// Reads a pending envelope back (held or released).
    ///
    /// # Errors
    /// Not pending (already completed), I/O errors, or a record that fails its checks.
    pub fn read(&self, id: RecordId) -> Result<Spooled, SpoolError> {
        let (size, salt) = {
            let state = lock(&self.state);
            let size = state
                .pending
                .get(&id)
                .map(|p| p.size)
                .ok_or_else(|| SpoolError::Io(std::io::ErrorKind::NotFound.into()))?;
            (size, state.segments.get(&id.segment).and_then(|s| s.salt))
        };
        let file = File::open(self.dir.join(segment_name(id.segment)))?;
        let size = usize::try_from(size).map_err(|_| SpoolError::Corrupt)?;
        let mut data = vec![0; size];
        file.read_exact_at(&mut data, id.offset)?;
        let rest = match salt {
            Some(salt) => {
                // The state byte may have been released since; the check does not cover it.
                let found = format::record_at(&data, salt, 0).ok_or(SpoolError::Corrupt)?;
                if found.end != size {
                    return Err(SpoolError::Corrupt);
                }
                found.rest
            }
            None => {
                let len = format::u32_at(&data, 0).ok_or(SpoolError::Corrupt)? as usize;
                let crc = format::u32_at(&data, 4).ok_or(SpoolError::Corrupt)?;
                if LEGACY_HEAD + len != size || crc32fast::hash(&data[LEGACY_HEAD..]) != crc {
                    return Err(SpoolError::Corrupt);
                }
                LEGACY_HEAD..size
            }
        };
        parse_envelope(id, Bytes::from(data).slice(rest))
    }

    /// Marks a pending envelope (held or released) finished: appends a completion record
    /// and deletes the segments that no longer hold anything needed. Nothing happens for an
    /// id that is not pending. A failed append is logged; the envelope is then sent again
    /// after a restart (at least once), or, if it was still held, dropped then.
    pub fn complete(&self, id: RecordId, outcome: Completion) {
        let mut state = lock(&self.state);
        let Some(done) = state.pending.remove(&id) else {
            return;
        };
        state.pending_bytes -= done.size;
        if let Err(error) = self.append_completion(&mut state, id, outcome) {
            tracing::error!(error = %error, record = %id, "cannot append a spool completion; the envelope may be sent again after a restart");
        }
        let emptied = state.segments.get_mut(&id.segment).is_some_and(|segment| {
            segment.live = segment.live.saturating_sub(1);
            segment.live == 0
        });
        if emptied {
            self.sweep(&mut state);
        }
    }

    /// Up to `limit` released pending ids, oldest first, skipping `busy` ones. Held
    /// envelopes are never handed out.
    pub fn oldest(&self, busy: &HashSet<RecordId>, limit: usize) -> Vec<RecordId> {
        lock(&self.state)
            .pending
            .iter()
            .filter(|(id, p)| !p.held && !busy.contains(id))
            .take(limit)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Drops released envelopes older than `max_age_secs` (a completion each); returns how
    /// many. Held envelopes are left to their writer, which releases or drops them.
    pub fn expire(&self, busy: &HashSet<RecordId>) -> usize {
        let cutoff =
            now_ms().saturating_sub(u64::try_from(self.max_age.as_millis()).unwrap_or(u64::MAX));
        let old: Vec<RecordId> = lock(&self.state)
            .pending
            .iter()
            .filter(|(id, p)| !p.held && p.born_ms < cutoff && !busy.contains(id))
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

    /// Whether `bytes` more fit under `max_bytes` and the directory's file system takes
    /// that many bytes now, proven by writing them (for `/readyz`).
    ///
    /// # Errors
    /// [`SpoolError::Full`] at the cap, or the file system's refusal.
    pub fn probe_write(&self, bytes: u64) -> Result<(), SpoolError> {
        if !self.has_room(bytes) {
            return Err(SpoolError::Full);
        }
        let probe = self
            .dir
            .join(format!(".probe-{}.tmp", uuid::Uuid::new_v4().simple()));
        crate::fs_probe::write_probe(&probe, bytes)?;
        Ok(())
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

/// `name`, or `name.1`, `name.2`, … if the quarantine already holds a file of that name
/// (sequence numbers start over once a spool has emptied), so nothing there is overwritten.
fn unused_name(dir: &Path, name: &str) -> String {
    let mut candidate = name.to_owned();
    let mut n = 0u32;
    while dir.join(&candidate).exists() {
        n += 1;
        candidate = format!("{name}.{n}");
    }
    candidate
}

#[cfg(test)]
mod tests;
