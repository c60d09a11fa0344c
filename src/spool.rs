//! The on-disk spool: every envelope scrubgate acknowledges asynchronously is a file here
//! until the upstream has it. It is the write-ahead log (written before the 2xx goes out, so
//! a SIGKILL loses nothing acknowledged) and the outage buffer (replayed oldest-first).
//!
//! One file per envelope, written to a temporary name and renamed, so a crash leaves either
//! a complete file or a `.tmp` leftover that `open` deletes. Only scrubbed envelopes are ever
//! written here. Names start with a zero-padded millisecond timestamp, so sorting names is
//! sorting by age.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// `[spool]` in the config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolSettings {
    /// Directory for spooled envelopes (created if missing).
    pub dir: PathBuf,
    /// Total size cap; when full, new envelopes get 503 with `Retry-After` (the SDK keeps
    /// its copy) instead of being dropped silently.
    pub max_bytes: u64,
    /// Envelopes older than this are deleted undelivered (Sentry would discard very old
    /// events anyway).
    pub max_age_secs: u64,
    /// fsync every file and the directory before acknowledging. Off: durable against a
    /// process crash (page cache), not against a power loss.
    pub fsync: bool,
}

impl Default for SpoolSettings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("./scrubgate-spool"),
            max_bytes: 1024 * 1024 * 1024,
            max_age_secs: 24 * 3600,
            fsync: false,
        }
    }
}

/// Where a spooled envelope goes and how to present it; stored in the file's first line.
/// Holds no payload values.
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
    /// Rate-limit categories of the items, to drop the file if they become limited.
    #[serde(default)]
    pub categories: Vec<String>,
}

/// A spooled envelope read back.
#[derive(Debug, Clone)]
pub struct Spooled {
    pub name: String,
    pub meta: SpoolMeta,
    pub body: Bytes,
}

/// Why an envelope could not be spooled.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool is full")]
    Full,
    #[error("spool I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("spool file is corrupt")]
    Corrupt,
}

/// The spool directory with its size accounting.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    max_age: Duration,
    fsync: bool,
    used_bytes: AtomicU64,
    files: AtomicU64,
    seq: AtomicU64,
}

const SUFFIX: &str = ".env";

impl Spool {
    /// Opens (creating) the directory, deletes half-written leftovers and counts what is
    /// there, so a restart resumes where the last process stopped.
    ///
    /// # Errors
    /// The directory cannot be created or read.
    pub fn open(settings: &SpoolSettings) -> std::io::Result<Self> {
        std::fs::create_dir_all(&settings.dir)?;
        let mut used = 0;
        let mut files = 0;
        for entry in std::fs::read_dir(&settings.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                let _ = std::fs::remove_file(entry.path());
            } else if name.ends_with(SUFFIX) {
                used += entry.metadata().map(|m| m.len()).unwrap_or(0);
                files += 1;
            }
        }
        Ok(Self {
            dir: settings.dir.clone(),
            max_bytes: settings.max_bytes,
            max_age: Duration::from_secs(settings.max_age_secs),
            fsync: settings.fsync,
            used_bytes: AtomicU64::new(used),
            files: AtomicU64::new(files),
            seq: AtomicU64::new(0),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// (files, bytes) currently spooled.
    pub fn usage(&self) -> (u64, u64) {
        (
            self.files.load(Ordering::Relaxed),
            self.used_bytes.load(Ordering::Relaxed),
        )
    }

    /// Whether a new envelope of `len` bytes would fit.
    pub fn has_room(&self, len: u64) -> bool {
        self.used_bytes.load(Ordering::Relaxed).saturating_add(len) <= self.max_bytes
    }

    /// Writes one envelope; returns its file name. Blocking: call from a blocking thread.
    ///
    /// # Errors
    /// [`SpoolError::Full`] past `max_bytes`, or an I/O error.
    pub fn write(&self, meta: &SpoolMeta, body: &[u8]) -> Result<String, SpoolError> {
        let mut header = serde_json::to_vec(meta).map_err(|_| SpoolError::Corrupt)?;
        header.push(b'\n');
        let len = (header.len() + body.len()) as u64;
        self.reserve(len)?;
        let name = self.next_name();
        let result = self.write_file(&name, &header, body);
        match result {
            Ok(()) => {
                self.files.fetch_add(1, Ordering::Relaxed);
                Ok(name)
            }
            Err(error) => {
                self.used_bytes.fetch_sub(len, Ordering::Relaxed);
                Err(SpoolError::Io(error))
            }
        }
    }

    fn reserve(&self, len: u64) -> Result<(), SpoolError> {
        let mut current = self.used_bytes.load(Ordering::Relaxed);
        loop {
            let next = current.saturating_add(len);
            if next > self.max_bytes {
                return Err(SpoolError::Full);
            }
            match self.used_bytes.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => current = actual,
            }
        }
    }

    fn next_name(&self) -> String {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) % 1_000_000;
        let random = &uuid::Uuid::new_v4().simple().to_string()[..8];
        format!("{millis:013}-{seq:06}-{random}{SUFFIX}")
    }

    fn write_file(&self, name: &str, header: &[u8], body: &[u8]) -> std::io::Result<()> {
        let tmp = self.dir.join(format!("{name}.tmp"));
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(header)?;
        file.write_all(body)?;
        if self.fsync {
            file.sync_all()?;
        }
        drop(file);
        std::fs::rename(&tmp, self.dir.join(name))?;
        if self.fsync {
            std::fs::File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Reads a spooled envelope back.
    ///
    /// # Errors
    /// I/O errors, or a file whose first line is not our metadata.
    pub fn read(&self, name: &str) -> Result<Spooled, SpoolError> {
        let data = std::fs::read(self.dir.join(name))?;
        let newline = data
            .iter()
            .position(|b| *b == b'\n')
            .ok_or(SpoolError::Corrupt)?;
        let meta: SpoolMeta =
            serde_json::from_slice(&data[..newline]).map_err(|_| SpoolError::Corrupt)?;
        let body = Bytes::from(data).slice(newline + 1..);
        Ok(Spooled {
            name: name.to_owned(),
            meta,
            body,
        })
    }

    /// Deletes a delivered (or finally rejected) envelope.
    pub fn remove(&self, name: &str) {
        let path = self.dir.join(name);
        let len = std::fs::metadata(&path).map(|m| m.len()).ok();
        if std::fs::remove_file(&path).is_ok() {
            if let Some(len) = len {
                self.used_bytes.fetch_sub(
                    len.min(self.used_bytes.load(Ordering::Relaxed)),
                    Ordering::Relaxed,
                );
            }
            self.files.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Up to `limit` spooled names, oldest first, skipping `busy` ones.
    pub fn oldest(&self, busy: &HashSet<String>, limit: usize) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(SUFFIX) && !busy.contains(n))
            .collect();
        names.sort_unstable();
        names.truncate(limit);
        names
    }

    /// Deletes envelopes older than `max_age_secs`; returns how many.
    pub fn expire(&self, busy: &HashSet<String>) -> usize {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let cutoff = now.saturating_sub(self.max_age.as_millis());
        let mut removed = 0;
        for name in self.oldest(busy, usize::MAX) {
            let born: u128 = name
                .split('-')
                .next()
                .and_then(|m| m.parse().ok())
                .unwrap_or(now);
            if born >= cutoff {
                break;
            }
            self.remove(&name);
            removed += 1;
        }
        removed
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

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> SpoolMeta {
        SpoolMeta {
            base: "http://127.0.0.1:1".into(),
            public_key: "k".into(),
            project_id: 1,
            dsn: "http://k@127.0.0.1:1/1".into(),
            sentry_client: Some("sentry.python/2.75.0".into()),
            user_agent: None,
            event_id: Some("e".into()),
            categories: vec!["error".into()],
        }
    }

    fn settings(dir: &Path, max_bytes: u64) -> SpoolSettings {
        SpoolSettings {
            dir: dir.to_owned(),
            max_bytes,
            max_age_secs: 3600,
            fsync: true,
        }
    }

    #[test]
    fn write_read_remove_and_resume() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
        let a = spool.write(&meta(), b"{}\nbody-a").unwrap();
        let b = spool.write(&meta(), b"{}\nbody-b").unwrap();
        assert!(a < b, "names sort by age");
        let read = spool.read(&a).unwrap();
        assert_eq!(read.meta, meta());
        assert_eq!(&read.body[..], b"{}\nbody-a");
        assert_eq!(spool.usage().0, 2);
        std::fs::write(dir.path().join("x.env.tmp"), b"half").unwrap();
        let reopened = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
        assert_eq!(reopened.usage(), spool.usage());
        assert!(!dir.path().join("x.env.tmp").exists());
        assert_eq!(
            reopened.oldest(&HashSet::new(), 10),
            vec![a.clone(), b.clone()]
        );
        assert_eq!(
            reopened.oldest(&HashSet::from([a.clone()]), 10),
            vec![b.clone()]
        );
        reopened.remove(&a);
        reopened.remove(&b);
        assert_eq!(reopened.usage(), (0, 0));
    }

    #[test]
    fn full_spool_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&settings(dir.path(), 400)).unwrap();
        spool.write(&meta(), &[b'x'; 100]).unwrap();
        assert!(matches!(
            spool.write(&meta(), &[b'x'; 300]),
            Err(SpoolError::Full)
        ));
        assert_eq!(spool.usage().0, 1);
    }

    #[test]
    fn expiry_deletes_only_old_files() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
        let fresh = spool.write(&meta(), b"new").unwrap();
        std::fs::write(
            dir.path().join("0000000000001-000000-aaaaaaaa.env"),
            b"{}\nold",
        )
        .unwrap();
        let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
        assert_eq!(spool.expire(&HashSet::new()), 1);
        assert_eq!(spool.oldest(&HashSet::new(), 10), vec![fresh]);
    }
}
