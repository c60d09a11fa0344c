//! The single writer of the trail. One thread owns the chain head and the sinks, so records
//! are appended in one order and each `prev` is the hash of the line written just before.
//! Requests hand it records over a channel and wait for the answer (fail closed); a guard
//! dropped without an answer hands its `aborted` record over without waiting.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use time::{Date, OffsetDateTime};

use super::files;
use super::record::{line_hash, AuditRecord, GENESIS};
use super::{AuditError, AuditSettings, FsyncPolicy, SinkKind};

/// A message to the writer thread.
pub(super) enum Message {
    Write(
        Box<AuditRecord>,
        Option<tokio::sync::oneshot::Sender<Result<(), AuditError>>>,
    ),
    Probe(tokio::sync::oneshot::Sender<Result<(), AuditError>>),
    /// For `/readyz`: prove that bytes can be written next to the trail right now.
    ProbeWrite(tokio::sync::oneshot::Sender<Result<(), AuditError>>),
}

/// The writer's state.
pub(super) struct Writer {
    settings: AuditSettings,
    file: Option<FileSink>,
    stdout: bool,
    head: String,
    last_fsync: Instant,
    /// Set by a failed write; the next write or probe reopens the file first.
    broken: bool,
    /// Test hook: while set, every append fails as on a full disk.
    faults: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

struct FileSink {
    path: PathBuf,
    file: File,
    len: u64,
    inode: u64,
    day: Date,
}

// === impl Writer ===

impl Writer {
    /// Opens the sinks and resumes the chain from the last line on disk.
    pub(super) fn open(
        settings: &AuditSettings,
        faults: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Result<Self, AuditError> {
        let mut head = GENESIS.to_owned();
        let file = match settings.sink {
            SinkKind::Stdout => None,
            SinkKind::File | SinkKind::Both => {
                let path = settings.path.clone();
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(AuditError::io)?;
                }
                let mut sink = FileSink::open(&path)?;
                let trail = files::trail(&path).map_err(AuditError::io)?;
                for candidate in trail.iter().rev() {
                    if let Some((line, complete)) =
                        files::last_line(candidate).map_err(AuditError::io)?
                    {
                        if !complete && candidate == &path {
                            // A crash cut the last record short: end its line so the next
                            // record starts cleanly; `verify` will report the damaged line.
                            sink.append(b"\n")?;
                        }
                        head = line_hash(&line);
                        break;
                    }
                }
                Some(sink)
            }
        };
        Ok(Self {
            settings: settings.clone(),
            file,
            stdout: matches!(settings.sink, SinkKind::Stdout | SinkKind::Both),
            head,
            last_fsync: Instant::now(),
            broken: false,
            faults,
        })
    }

    /// Runs until every sender is gone.
    ///
    /// Group commit: every record already waiting is appended, then one fsync covers them
    /// all before any of their requests is answered. With `fsync = "always"` a record is
    /// still durable before its request gets its 2xx, but the fsync cost is shared by all
    /// requests that arrived meanwhile instead of serializing them (one fsync per record
    /// capped throughput at about 1 / fsync latency).
    pub(super) fn run(mut self, receiver: mpsc::Receiver<Message>) {
        const MAX_BATCH: usize = 1024;
        while let Ok(first) = receiver.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(message) => batch.push(message),
                    Err(_) => break,
                }
            }
            let mut answers = Vec::with_capacity(batch.len());
            let mut appended = false;
            for message in batch {
                match message {
                    Message::Write(record, reply) => {
                        let result = self.append(*record);
                        appended |= result.is_ok();
                        answers.push((reply, result));
                    }
                    Message::Probe(reply) => answers.push((Some(reply), self.check())),
                    Message::ProbeWrite(reply) => {
                        let result = self.check().and_then(|()| self.probe_write());
                        answers.push((Some(reply), result));
                    }
                }
            }
            if appended {
                if let Err(error) = self.sync_if_due() {
                    for (_, result) in &mut answers {
                        if result.is_ok() {
                            *result = Err(error.clone());
                        }
                    }
                }
            }
            for (reply, result) in answers {
                if let Err(error) = &result {
                    tracing::error!(error = %error, "audit record could not be written");
                }
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
        }
        if let Some(sink) = &self.file {
            let _ = sink.file.sync_all();
        }
    }

    /// Makes sure the file we append to is the one at the configured path: it may have been
    /// moved or deleted (by hand or an external logrotate), or a previous write failed.
    fn check(&mut self) -> Result<(), AuditError> {
        let Some(sink) = &mut self.file else {
            return Ok(());
        };
        let same = std::fs::metadata(&sink.path)
            .map(|m| m.ino() == sink.inode)
            .unwrap_or(false);
        if self.broken || !same {
            *sink = FileSink::open(&sink.path)?;
            self.broken = false;
        }
        Ok(())
    }

    /// Writes and removes a page-sized file beside the trail: reopening the trail (what
    /// [`Writer::check`] does) succeeds on a full disk, a write does not.
    fn probe_write(&mut self) -> Result<(), AuditError> {
        let Some(sink) = &self.file else {
            return Ok(());
        };
        let name = sink
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let probe = sink.path.with_file_name(format!(".{name}.probe.tmp"));
        let result = if self.faults.load(std::sync::atomic::Ordering::SeqCst) {
            Err(io::Error::from(io::ErrorKind::StorageFull))
        } else {
            crate::fs_probe::write_probe(&probe, crate::fs_probe::MIN_BYTES)
        };
        let _ = std::fs::remove_file(&probe);
        result.map_err(|error| AuditError::at(&probe, &error))
    }

    /// Appends one record (chained to the previous line); durability comes from
    /// [`Writer::sync_if_due`] after the batch.
    fn append(&mut self, mut record: AuditRecord) -> Result<(), AuditError> {
        self.check()?;
        record.prev = self.head.clone();
        let mut line = record.to_line().map_err(|_| AuditError::Io {
            kind: io::ErrorKind::InvalidData,
            detail: "record could not be serialised".to_owned(),
        })?;
        let hash = line_hash(&line);
        line.push(b'\n');
        let now = OffsetDateTime::now_utc();
        if let Some(sink) = &mut self.file {
            let too_big =
                sink.len > 0 && sink.len + line.len() as u64 > self.settings.rotate_max_bytes;
            let new_day = self.settings.rotate_daily && sink.len > 0 && sink.day != now.date();
            if too_big || new_day {
                if let Err(error) = rotate(sink, &self.settings, now) {
                    self.broken = true;
                    return Err(error);
                }
            }
            let appended = if self.faults.load(std::sync::atomic::Ordering::SeqCst) {
                Err(AuditError::at(
                    &sink.path,
                    &io::Error::from(io::ErrorKind::StorageFull),
                ))
            } else {
                sink.append(&line)
            };
            if let Err(error) = appended {
                self.broken = true;
                return Err(error);
            }
        }
        self.head = hash;
        if self.stdout {
            let mut stdout = io::stdout().lock();
            stdout
                .write_all(&line)
                .and_then(|()| stdout.flush())
                .map_err(AuditError::io)?;
        }
        Ok(())
    }
}

impl Writer {
    /// fsyncs the file per the policy. A failure leaves the lines in the file (the chain
    /// moves on) but not known durable, so their requests fail closed.
    fn sync_if_due(&mut self) -> Result<(), AuditError> {
        let Some(sink) = &mut self.file else {
            return Ok(());
        };
        let due = match self.settings.fsync {
            FsyncPolicy::Always => true,
            FsyncPolicy::Interval => {
                self.last_fsync.elapsed() >= Duration::from_millis(self.settings.fsync_interval_ms)
            }
            FsyncPolicy::Never => false,
        };
        if !due {
            return Ok(());
        }
        self.last_fsync = Instant::now();
        sink.file.sync_data().map_err(|error| {
            self.broken = true;
            AuditError::at(&sink.path, &error)
        })
    }
}

// === impl FileSink ===

impl FileSink {
    fn open(path: &Path) -> Result<Self, AuditError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|error| AuditError::at(path, &error))?;
        let metadata = file
            .metadata()
            .map_err(|error| AuditError::at(path, &error))?;
        let day = if metadata.len() > 0 {
            files::modified_day(&file).unwrap_or_else(|| OffsetDateTime::now_utc().date())
        } else {
            OffsetDateTime::now_utc().date()
        };
        Ok(Self {
            path: path.to_path_buf(),
            len: metadata.len(),
            inode: metadata.ino(),
            file,
            day,
        })
    }

    /// Appends all of `bytes` or nothing: a short write is cut back off so the file never
    /// keeps half a record.
    fn append(&mut self, bytes: &[u8]) -> Result<(), AuditError> {
        if let Err(error) = self.file.write_all(bytes) {
            let _ = self.file.set_len(self.len);
            return Err(AuditError::at(&self.path, &error));
        }
        self.len += bytes.len() as u64;
        Ok(())
    }
}

/// Renames the active file to its rotated name, starts a new one and applies retention.
/// The chain head is untouched, so the new file's first `prev` names the old file's last
/// record.
fn rotate(
    sink: &mut FileSink,
    settings: &AuditSettings,
    now: OffsetDateTime,
) -> Result<(), AuditError> {
    sink.file.sync_all().map_err(AuditError::io)?;
    let mut seq = 0;
    let mut target = files::rotated_path(&sink.path, now, seq);
    while target.exists() && seq < 999 {
        seq += 1;
        target = files::rotated_path(&sink.path, now, seq);
    }
    std::fs::rename(&sink.path, &target).map_err(AuditError::io)?;
    *sink = FileSink::open(&sink.path)?;
    apply_retention(&sink.path, settings.retention_days, now);
    tracing::info!(rotated_to = %target.display(), "audit file rotated");
    Ok(())
}

/// Deletes rotated files whose rotation time is older than `retention_days`. Never the
/// active file, never a file that is not one of ours. Returns how many were deleted.
pub(super) fn apply_retention(active: &Path, retention_days: u32, now: OffsetDateTime) -> usize {
    let Ok(rotated) = files::rotated_files(active) else {
        return 0;
    };
    let cutoff = now - time::Duration::days(i64::from(retention_days));
    let mut deleted = 0;
    for path in rotated {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let rotated_at = name.and_then(|n| files::rotated_at(active, &n));
        if rotated_at.is_some_and(|at| at < cutoff) {
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    deleted += 1;
                    tracing::info!(file = %path.display(), "audit file past retention deleted");
                }
                Err(error) => {
                    tracing::warn!(file = %path.display(), error = %error, "cannot delete audit file past retention");
                }
            }
        }
    }
    deleted
}
