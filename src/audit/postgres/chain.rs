//! `audit verify --postgres` and `audit export --postgres`: the chains as the database holds
//! them, read through server-side cursors so a six-year table streams in constant memory.
//!
//! Per instance, rows are walked in `seq` order. A row is good when its `line` hashes to its
//! `hash`, its columns say what its line says, its `prev_hash` is the previous row's `hash`,
//! and its `seq` is the previous plus one. The first row that is not names the problem:
//! a missing `seq` is a deleted row (a gap), two rows with one `seq` a fork, a row whose
//! columns or line were changed an edit. Anchors then show what a chain alone cannot: a
//! tail cut off (an anchor past the last row) or rewritten (an anchor whose row now has
//! another hash).

use std::collections::HashMap;
use std::fmt;
use std::io::Write;

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::PgError;
use crate::audit::export::{ExportFilter, ExportFormat, Exporter};
use crate::audit::record::{line_hash, AuditRecord};

const PAGE: i32 = 2000;

/// One chain's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub instance_id: String,
    pub records: u64,
    pub first_seq: u64,
    pub head_seq: u64,
    pub head_hash: String,
    pub anchors: u64,
    pub status: ChainStatus,
}

/// What is wrong with a chain, at the first bad `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainStatus {
    Intact,
    /// `seq` is missing (rows deleted); the next present one is `next`.
    Gap {
        seq: u64,
        next: u64,
    },
    /// Two different rows carry `seq`.
    Fork {
        seq: u64,
    },
    /// The row at `seq` was changed: its line or its columns.
    Edited {
        seq: u64,
        what: &'static str,
    },
    /// The row at `seq` does not chain to the row before it.
    Unchained {
        seq: u64,
    },
    /// An anchor names `seq` with another hash than the row has now.
    AnchorMismatch {
        seq: u64,
    },
    /// An anchor names `seq`, past the last row: the tail was cut off.
    Truncated {
        anchored_seq: u64,
    },
}

impl ChainStatus {
    /// What `verify --postgres` exits 0 on.
    pub fn is_intact(&self) -> bool {
        *self == Self::Intact
    }
}

impl fmt::Display for ChainReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = &self.instance_id;
        match &self.status {
            ChainStatus::Intact => write!(
                f,
                "OK: instance {id}: {} record(s), seq {}..{}, chain intact, {} anchor(s) match; head {}",
                self.records, self.first_seq, self.head_seq, self.anchors, self.head_hash
            ),
            ChainStatus::Gap { seq, next } => write!(
                f,
                "TAMPERED: instance {id}: seq {seq} is missing (next present: {next}): rows were deleted"
            ),
            ChainStatus::Fork { seq } => write!(
                f,
                "TAMPERED: instance {id}: seq {seq} has two different records: the chain forked \
                 (two writers with one instance_id, or an inserted record)"
            ),
            ChainStatus::Edited { seq, what } => {
                write!(f, "TAMPERED: instance {id}: seq {seq} was edited ({what})")
            }
            ChainStatus::Unchained { seq } => write!(
                f,
                "TAMPERED: instance {id}: seq {seq} does not chain to seq {}: that record was edited, \
                 or records were replaced",
                seq.saturating_sub(1)
            ),
            ChainStatus::AnchorMismatch { seq } => write!(
                f,
                "TAMPERED: instance {id}: seq {seq} no longer has the hash anchored for it: the record \
                 was rewritten after it was anchored"
            ),
            ChainStatus::Truncated { anchored_seq } => write!(
                f,
                "TAMPERED: instance {id}: seq {anchored_seq} was anchored but the chain ends at seq {}: \
                 the newest records were deleted",
                self.head_seq
            ),
        }
    }
}

/// The previous row while walking.
struct Last {
    seq: u64,
    hash: String,
}

/// Verifies every chain (or only `instance`).
///
/// # Errors
/// The database failed (not a tampered chain: that is a report).
pub async fn verify_postgres(
    client: &mut tokio_postgres::Client,
    instance: Option<&str>,
) -> Result<Vec<ChainReport>, PgError> {
    let instances: Vec<String> = client
        .query(
            "SELECT instance_id FROM scrubgate_audit.audit_log WHERE $1::text IS NULL OR instance_id = $1
             UNION SELECT instance_id FROM scrubgate_audit.audit_anchor WHERE $1::text IS NULL OR instance_id = $1
             ORDER BY 1",
            &[&instance],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let dropped = client
        .query_one(
            "SELECT EXISTS (SELECT FROM scrubgate_audit.audit_retention)",
            &[],
        )
        .await?
        .get::<_, bool>(0);
    let mut reports = Vec::new();
    for id in instances {
        reports.push(verify_chain(client, &id, dropped).await?);
    }
    Ok(reports)
}

async fn verify_chain(
    client: &mut tokio_postgres::Client,
    id: &str,
    dropped: bool,
) -> Result<ChainReport, PgError> {
    let anchors: HashMap<u64, String> = client
        .query(
            "SELECT seq, hash FROM scrubgate_audit.audit_anchor WHERE instance_id = $1",
            &[&id],
        )
        .await?
        .iter()
        .map(|row| (u64::try_from(row.get::<_, i64>(0)).unwrap_or(0), row.get(1)))
        .collect();
    let mut report = ChainReport {
        instance_id: id.to_owned(),
        records: 0,
        first_seq: 0,
        head_seq: 0,
        head_hash: String::new(),
        anchors: 0,
        status: ChainStatus::Intact,
    };
    let transaction = client.transaction().await?;
    transaction
        .execute(
            "DECLARE chain NO SCROLL CURSOR FOR
             SELECT seq, hash, prev_hash, line,
                    to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
                    request_id, endpoint, project_id, outcome, status, error, event_id,
                    hash_key_id, policy_hash, public_key_hmac, client_ip_hmac,
                    sdk, upstream, header_redactions, items, client_report
             FROM scrubgate_audit.audit_log WHERE instance_id = $1 ORDER BY seq, hash",
            &[&id],
        )
        .await?;
    let mut last: Option<Last> = None;
    'pages: loop {
        let rows = transaction
            .query(&format!("FETCH {PAGE} FROM chain"), &[])
            .await?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let seq = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
            let hash: String = row.get(1);
            let prev: String = row.get(2);
            let line: String = row.get(3);
            if let Some(problem) = check_row(row, &last, seq, &hash, &prev, &line, dropped) {
                report.status = problem;
                break 'pages;
            }
            if let Some(anchored) = anchors.get(&seq) {
                if *anchored != hash {
                    report.status = ChainStatus::AnchorMismatch { seq };
                    break 'pages;
                }
                report.anchors += 1;
            }
            if last.is_none() {
                report.first_seq = seq;
            }
            report.records += 1;
            report.head_seq = seq;
            report.head_hash.clone_from(&hash);
            last = Some(Last { seq, hash });
        }
    }
    transaction.commit().await?;
    if report.status.is_intact() {
        if let Some(anchored_seq) = anchors
            .keys()
            .copied()
            .filter(|s| *s > report.head_seq)
            .max()
        {
            report.status = ChainStatus::Truncated { anchored_seq };
        }
    }
    Ok(report)
}

/// The problem with this row given the row before it, if any.
fn check_row(
    row: &tokio_postgres::Row,
    last: &Option<Last>,
    seq: u64,
    hash: &str,
    prev: &str,
    line: &str,
    dropped_by_retention: bool,
) -> Option<ChainStatus> {
    if let Some(last) = last {
        if seq == last.seq {
            return Some(ChainStatus::Fork { seq });
        }
        if seq != last.seq + 1 {
            return Some(ChainStatus::Gap {
                seq: last.seq + 1,
                next: seq,
            });
        }
    } else if seq != 1 && !dropped_by_retention {
        // A chain whose first months were dropped by retention starts later; otherwise its
        // first rows were deleted.
        return Some(ChainStatus::Gap { seq: 1, next: seq });
    }
    if line_hash(line.as_bytes()) != hash {
        return Some(ChainStatus::Edited {
            seq,
            what: "its record line no longer matches its hash",
        });
    }
    if !columns_match(row, line, prev) {
        return Some(ChainStatus::Edited {
            seq,
            what: "its columns no longer match its record line",
        });
    }
    if let Some(last) = last {
        if prev != last.hash {
            return Some(ChainStatus::Unchained { seq });
        }
    }
    None
}

/// Whether the row's columns say what its line says (a column edited in place, with the
/// line left alone, is caught here).
fn columns_match(row: &tokio_postgres::Row, line: &str, prev: &str) -> bool {
    let Ok(record) = serde_json::from_str::<Value>(line) else {
        // A damaged line (shipped as is, columns empty): the chain check still applies.
        return prev.is_empty() && row.get::<_, Option<String>>(5).is_none();
    };
    let text = |key: &str| record.get(key).and_then(Value::as_str).map(str::to_owned);
    let same_ts = match (
        record.get("ts").and_then(Value::as_str),
        row.get::<_, Option<String>>(4),
    ) {
        (Some(a), Some(b)) => match (
            OffsetDateTime::parse(a, &Rfc3339),
            OffsetDateTime::parse(&b, &Rfc3339),
        ) {
            (Ok(a), Ok(b)) => (a - b).whole_microseconds().abs() < 1,
            _ => false,
        },
        _ => false,
    };
    let json = |index: usize| row.get::<_, Option<Value>>(index);
    let field = |key: &str| match record.get(key) {
        None | Some(Value::Null) => None,
        Some(value) => Some(value.clone()),
    };
    same_ts
        && text("prev").as_deref() == Some(prev)
        && row.get::<_, Option<String>>(5) == text("request_id")
        && row.get::<_, Option<String>>(6) == text("endpoint")
        && row.get::<_, Option<i64>>(7) == record.get("project_id").and_then(Value::as_i64)
        && row.get::<_, Option<String>>(8) == text("outcome")
        && row.get::<_, Option<i32>>(9).map(i64::from)
            == record.get("status").and_then(Value::as_i64)
        && row.get::<_, Option<String>>(10) == text("error")
        && row.get::<_, Option<String>>(11) == text("event_id")
        && row.get::<_, Option<String>>(12) == text("hash_key_id")
        && row.get::<_, Option<String>>(13) == text("policy_hash")
        && row.get::<_, Option<String>>(14) == text("public_key_hmac")
        && row.get::<_, Option<String>>(15) == text("client_ip_hmac")
        && json(16) == field("sdk")
        && json(17) == field("upstream")
        && json(18) == field("header_redactions")
        && json(19) == field("items")
        && json(20) == field("client_report")
}

/// Writes the records in the window, across all instances, in time order; returns how many.
///
/// # Errors
/// The database failed, a row's line is not a record, or the write failed.
pub async fn export_postgres(
    client: &mut tokio_postgres::Client,
    filter: &ExportFilter,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<u64, PgError> {
    let write_error = |e: crate::audit::ExportError| PgError::Chain(e.to_string());
    let mut exporter = Exporter::begin(format, out).map_err(write_error)?;
    for_each_record(client, filter, |record| {
        exporter.write(record).map_err(write_error)
    })
    .await?;
    exporter.finish().map_err(write_error)
}

/// Calls `each` with every record in the window, across all instances, in time order.
///
/// # Errors
/// The database failed, a row's line is not a record, or `each` failed.
pub(super) async fn for_each_record(
    client: &mut tokio_postgres::Client,
    filter: &ExportFilter,
    mut each: impl FnMut(&AuditRecord) -> Result<(), PgError>,
) -> Result<(), PgError> {
    let format_ts = |ts: Option<OffsetDateTime>| ts.and_then(|t| t.format(&Rfc3339).ok());
    let since = format_ts(filter.since);
    let until = format_ts(filter.until);
    let project = filter.project.map(|p| i64::try_from(p).unwrap_or(i64::MAX));
    let transaction = client.transaction().await?;
    transaction
        .execute(
            "DECLARE records NO SCROLL CURSOR FOR
             SELECT instance_id, seq, line FROM scrubgate_audit.audit_log
             WHERE ($1::text IS NULL OR ts >= $1::text::timestamptz)
               AND ($2::text IS NULL OR ts < $2::text::timestamptz)
               AND ($3::bigint IS NULL OR project_id = $3)
             ORDER BY ts, instance_id, seq",
            &[&since, &until, &project],
        )
        .await?;
    loop {
        let rows = transaction
            .query(&format!("FETCH {PAGE} FROM records"), &[])
            .await?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let line: String = row.get(2);
            let record: AuditRecord = serde_json::from_str(&line).map_err(|_| {
                PgError::Chain(format!(
                    "instance {} seq {}: not a valid audit record (run `scrubgate audit verify --postgres`)",
                    row.get::<_, String>(0),
                    row.get::<_, i64>(1)
                ))
            })?;
            each(&record)?;
        }
    }
    transaction.commit().await?;
    Ok(())
}
