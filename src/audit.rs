//! The audit trail: exactly one append-only, hash-chained JSONL record per received request,
//! saying what scrubgate did (items, decisions, reasons, redactions by path and rule,
//! upstream outcome) without ever holding a payload value. Identifiers (public key, client
//! IP) are HMACs under the scrubber's key.
//!
//! **Fail closed:** if a record cannot be written, the request is answered 503 (the SDK
//! retries) and nothing is forwarded; the failure is logged and counted. The pipeline asks
//! [`AuditGuard::preflight`] before forwarding and [`AuditGuard::finish`] before answering.
//!
//! Files rotate by size and by UTC day; the chain continues across files, and rotated
//! files older than `retention_days` (six years by default, HIPAA) are deleted, never the
//! active one. [`verify_files`] checks a trail, [`export()`] extracts records for reviews.
//!
//! Must not know HTTP or payloads: it receives ids, labels and scrub reports.

mod export;
mod files;
mod guard;
pub mod postgres;
mod record;
pub mod report;
mod verify;
mod writer;

use std::path::PathBuf;
use std::sync::mpsc;

use serde::{Deserialize, Serialize};

pub use export::{export, parse_time, ExportError, ExportFilter, ExportFormat, Exporter};
pub use files::{rotated_files, trail};
pub use guard::{AuditGuard, RequestStart};
pub use record::{
    compact_redactions, line_hash, safe_path, AuditRecord, CandidateChangeRecord, CandidateRecord,
    DiscardedRecord, ItemRecord, Outcome, Pseudonymizer, RedactionRecord, SdkInfo, UpstreamRecord,
    GENESIS,
};
pub use verify::{expand, verify_files, Broken, Problem, VerifyReport};

use crate::scrub::HashKey;
use writer::{Message, Writer};

/// `[audit]` in the config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// The active JSONL file; rotated files sit next to it.
    pub path: PathBuf,
    /// `file` (default), `stdout` (one JSON line per record on stdout, apart from the
    /// operational logs on stderr), or `both`.
    pub sink: SinkKind,
    /// When records reach the disk: `always` (before the request is answered), `interval`
    /// (at most `fsync_interval_ms` after), or `never` (left to the OS).
    pub fsync: FsyncPolicy,
    pub fsync_interval_ms: u64,
    /// Rotate when the active file would grow past this.
    pub rotate_max_bytes: u64,
    /// Rotate on the first record of a new UTC day.
    pub rotate_daily: bool,
    /// Rotated files older than this are deleted (HIPAA: six years).
    pub retention_days: u32,
    /// How often the shipped head of this replica's chain is anchored (PostgreSQL).
    pub anchor_interval_secs: u64,
    /// `[audit.postgres]`: shipping the trail to PostgreSQL.
    pub postgres: postgres::PostgresSettings,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            path: PathBuf::from("scrubgate-audit.jsonl"),
            sink: SinkKind::File,
            fsync: FsyncPolicy::Always,
            fsync_interval_ms: 1000,
            rotate_max_bytes: 100 * 1024 * 1024,
            rotate_daily: true,
            retention_days: 2190,
            anchor_interval_secs: 60,
            postgres: postgres::PostgresSettings::default(),
        }
    }
}

/// Where records go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    File,
    Stdout,
    Both,
}

/// When records are synced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    Always,
    Interval,
    Never,
}

/// The audit sink failed. Carries the I/O error kind (for metrics) and the operating
/// system's message with the trail's configured path (for the log, so an operator reads
/// `no space left on device` instead of guessing). Never anything from a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    #[error("audit sink unavailable: {detail}")]
    Io {
        kind: std::io::ErrorKind,
        detail: String,
    },
    #[error("audit writer stopped")]
    WriterGone,
}

impl AuditError {
    fn io(error: std::io::Error) -> Self {
        Self::Io {
            kind: error.kind(),
            detail: error.to_string(),
        }
    }

    /// The error with the file it happened on.
    fn at(path: &std::path::Path, error: &std::io::Error) -> Self {
        Self::Io {
            kind: error.kind(),
            detail: format!("{}: {error}", path.display()),
        }
    }

    /// The I/O error kind, when there is one (metrics).
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            Self::Io { kind, .. } => Some(*kind),
            Self::WriterGone => None,
        }
    }
}

impl AuditSettings {
    /// Checks values that would make the trail unusable.
    ///
    /// # Errors
    /// `(key, problem)`, the key relative to `[audit]`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.sink != SinkKind::Stdout && self.path.as_os_str().is_empty() {
            return Err(("path".into(), "required for the file sink".into()));
        }
        if self.sink != SinkKind::Stdout && self.path.extension().is_none() {
            return Err((
                "path".into(),
                "needs an extension (e.g. .jsonl); rotated files are named <stem>.<time>.<n>.<ext>"
                    .into(),
            ));
        }
        if self.rotate_max_bytes < 4096 {
            return Err(("rotate_max_bytes".into(), "must be at least 4096".into()));
        }
        if self.retention_days == 0 {
            return Err(("retention_days".into(), "must be at least 1".into()));
        }
        if self.fsync == FsyncPolicy::Interval && self.fsync_interval_ms == 0 {
            return Err(("fsync_interval_ms".into(), "must be positive".into()));
        }
        if self.anchor_interval_secs == 0 {
            return Err(("anchor_interval_secs".into(), "must be positive".into()));
        }
        if self.postgres.enabled && self.sink == SinkKind::Stdout {
            return Err((
                "postgres.enabled".into(),
                "needs the file sink: the local file is the write-ahead log it ships from".into(),
            ));
        }
        self.postgres
            .validate()
            .map_err(|(key, problem)| (format!("postgres.{key}"), problem))?;
        if self.postgres.enabled {
            // So that `check-config` passing still means `serve` starts.
            let url = self.postgres.url().map_err(|error| {
                let key = if matches!(error, postgres::PgError::UrlFile(_)) {
                    "postgres.url_file"
                } else {
                    "postgres.enabled"
                };
                (key.to_owned(), error.to_string())
            })?;
            url.parse::<tokio_postgres::Config>().map_err(|_| {
                (
                    "postgres.enabled".to_owned(),
                    "the database URL does not parse (postgres://user:password@host:port/db?sslmode=require)"
                        .to_owned(),
                )
            })?;
        }
        Ok(())
    }
}

/// A handle to the trail's writer thread. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditLog {
    sender: mpsc::Sender<Message>,
    faults: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// What the PostgreSQL shipper reports, when `[audit.postgres]` is enabled.
    shipping: Option<std::sync::Arc<postgres::ShipStatus>>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Message::Write(..) => "Write",
            Message::Probe(_) => "Probe",
            Message::ProbeWrite(_) => "ProbeWrite",
        })
    }
}

// === impl AuditLog ===

impl AuditLog {
    /// Opens the sinks, resumes the chain from disk, applies retention once and starts the
    /// writer thread.
    ///
    /// # Errors
    /// The file cannot be created or read, or the thread cannot be started.
    pub fn open(settings: &AuditSettings) -> Result<Self, AuditError> {
        let faults = std::sync::Arc::default();
        let writer = Writer::open(settings, std::sync::Arc::clone(&faults))?;
        if settings.sink != SinkKind::Stdout {
            writer::apply_retention(
                &settings.path,
                settings.retention_days,
                time::OffsetDateTime::now_utc(),
            );
        }
        let (sender, receiver) = mpsc::channel();
        std::thread::Builder::new()
            .name("scrubgate-audit".to_owned())
            .spawn(move || writer.run(receiver))
            .map_err(AuditError::io)?;
        let shipping = settings.postgres.enabled.then(|| {
            std::sync::Arc::new(postgres::ShipStatus::new(settings.postgres.instance_id()))
        });
        Ok(Self {
            sender,
            faults,
            shipping,
        })
    }

    /// The shipper's status (`/readyz` detail), when shipping to PostgreSQL is enabled.
    pub fn shipping(&self) -> Option<&std::sync::Arc<postgres::ShipStatus>> {
        self.shipping.as_ref()
    }

    /// Fault injection for tests without a real full disk (no root for a tmpfs): while
    /// `on`, every append and readiness probe fails with "no space left on device".
    #[doc(hidden)]
    pub fn inject_write_faults(&self, on: bool) {
        self.faults.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether a record could be written now, proven by writing (for `/readyz`).
    ///
    /// # Errors
    /// The trail's file system refuses a page-sized write, or the file cannot be reopened.
    pub async fn probe_write(&self) -> Result<(), AuditError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.sender
            .send(Message::ProbeWrite(reply))
            .map_err(|_| AuditError::WriterGone)?;
        answer.await.map_err(|_| AuditError::WriterGone)?
    }

    /// Opens a guard for one request.
    pub fn guard(&self, hash_key: &HashKey, start: &RequestStart<'_>) -> AuditGuard {
        AuditGuard::new(self.clone(), Pseudonymizer::new(hash_key.clone()), start)
    }

    /// Appends `record` (its `prev` is filled in) and waits for the result.
    ///
    /// # Errors
    /// The record is not on disk.
    pub async fn write(&self, record: AuditRecord) -> Result<(), AuditError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.sender
            .send(Message::Write(Box::new(record), Some(reply)))
            .map_err(|_| AuditError::WriterGone)?;
        answer.await.map_err(|_| AuditError::WriterGone)?
    }

    /// Appends `record` without waiting (the `Drop` path). A failure is logged by the writer.
    pub fn write_detached(&self, record: AuditRecord) {
        if self
            .sender
            .send(Message::Write(Box::new(record), None))
            .is_err()
        {
            tracing::error!("audit writer stopped: an aborted request's record is lost");
        }
    }

    /// Whether the sink can take a record right now.
    ///
    /// # Errors
    /// The file is gone and cannot be recreated, or the last write failed and reopening did
    /// not help.
    pub async fn probe(&self) -> Result<(), AuditError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.sender
            .send(Message::Probe(reply))
            .map_err(|_| AuditError::WriterGone)?;
        answer.await.map_err(|_| AuditError::WriterGone)?
    }
}

/// The compliance report over trail files: the records in the filter's window, and the
/// chain of the whole trail verified.
///
/// # Errors
/// An unreadable file or a line that is not a record.
pub fn report_files(
    files: &[PathBuf],
    filter: &ExportFilter,
    generated: report::Generated,
    retention_days: Option<u32>,
) -> Result<report::Report, ExportError> {
    let mut builder = report::ReportBuilder::new(filter.clone());
    for file in files {
        export::for_each_record(file, |record| {
            builder.add(&record);
            Ok(())
        })?;
    }
    let chain = match verify_files(files) {
        Ok(verified) => report::ChainRow {
            chain: files
                .last()
                .map(|f| f.display().to_string())
                .unwrap_or_default(),
            intact: true,
            records: verified.records,
            head: verified.head,
            detail: if verified.starts_at_genesis {
                "intact from the first record ever written".to_owned()
            } else {
                "intact from a record whose predecessors were removed (retention)".to_owned()
            },
        },
        Err(broken) => report::ChainRow {
            chain: broken.file.display().to_string(),
            intact: false,
            records: 0,
            head: String::new(),
            detail: broken.to_string(),
        },
    };
    let retention = report::Retention {
        retention_days,
        oldest_record: None,
        dropped: Vec::new(),
        note: "Rotated files past retention are deleted at rotation; the deletions are logged, not recorded in the trail.".to_owned(),
    };
    Ok(builder.finish(generated, vec![chain], retention))
}

#[cfg(test)]
mod tests;
