//! `scrubgate audit export`: records in a time window (and optionally one project) as JSON
//! or CSV for compliance reviews. Reads the same files `verify` does; exports only what the
//! records hold, so it cannot reveal more than the trail itself.

use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::record::AuditRecord;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON array of records.
    Json,
    /// One row per item (one row for records without items).
    Csv,
}

/// Which records to export: `since <= ts < until`, and the project if given.
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    pub project: Option<u64>,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot read {file}: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{file}:{line}: not a valid audit record (run `scrubgate audit verify`)")]
    BadRecord { file: PathBuf, line: u64 },
    #[error("cannot write the export: {0}")]
    Write(#[source] io::Error),
}

/// Parses `2024-05-01` (midnight UTC) or an RFC 3339 timestamp.
///
/// # Errors
/// A message saying which forms are accepted.
pub fn parse_time(value: &str) -> Result<OffsetDateTime, String> {
    if let Ok(ts) = OffsetDateTime::parse(value, &Rfc3339) {
        return Ok(ts);
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(value, date_format)
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| "expected YYYY-MM-DD or an RFC 3339 timestamp".to_owned())
}

impl ExportFilter {
    pub(crate) fn accepts(&self, record: &AuditRecord) -> bool {
        if self.project.is_some() && record.project_id != self.project {
            return false;
        }
        let Ok(ts) = OffsetDateTime::parse(&record.ts, &Rfc3339) else {
            return false;
        };
        self.since.is_none_or(|s| ts >= s) && self.until.is_none_or(|u| ts < u)
    }
}

/// Writes the matching records of `files` to `out`; returns how many records matched.
///
/// # Errors
/// An unreadable file, a line that is not a record, or a failed write.
pub fn export(
    files: &[PathBuf],
    filter: &ExportFilter,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<u64, ExportError> {
    let mut exporter = Exporter::begin(format, out)?;
    for file in files {
        for_each_record(file, |record| {
            if filter.accepts(&record) {
                exporter.write(&record)?;
            }
            Ok(())
        })?;
    }
    exporter.finish()
}

/// Writes records one by one in an export format, wherever they come from (files or
/// PostgreSQL), so both exports are the same bytes for the same records.
pub struct Exporter<'a> {
    format: ExportFormat,
    out: &'a mut dyn Write,
    count: u64,
}

impl<'a> Exporter<'a> {
    /// Writes the opening (`[` or the CSV header).
    ///
    /// # Errors
    /// The write failed.
    pub fn begin(format: ExportFormat, out: &'a mut dyn Write) -> Result<Self, ExportError> {
        match format {
            ExportFormat::Json => out.write_all(b"[").map_err(ExportError::Write)?,
            ExportFormat::Csv => out
                .write_all(CSV_HEADER.as_bytes())
                .map_err(ExportError::Write)?,
        }
        Ok(Self {
            format,
            out,
            count: 0,
        })
    }

    /// Writes one record.
    ///
    /// # Errors
    /// The write failed.
    pub fn write(&mut self, record: &AuditRecord) -> Result<(), ExportError> {
        match self.format {
            ExportFormat::Json => {
                if self.count > 0 {
                    self.out.write_all(b",").map_err(ExportError::Write)?;
                }
                self.out.write_all(b"\n").map_err(ExportError::Write)?;
                serde_json::to_writer(&mut *self.out, record)
                    .map_err(|e| ExportError::Write(e.into()))?;
            }
            ExportFormat::Csv => write_csv_rows(self.out, record).map_err(ExportError::Write)?,
        }
        self.count += 1;
        Ok(())
    }

    /// Writes the closing and returns how many records were written.
    ///
    /// # Errors
    /// The write failed.
    pub fn finish(self) -> Result<u64, ExportError> {
        if self.format == ExportFormat::Json {
            self.out.write_all(b"\n]\n").map_err(ExportError::Write)?;
        }
        Ok(self.count)
    }
}

pub(crate) fn for_each_record(
    file: &Path,
    mut each: impl FnMut(AuditRecord) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    let read_error = |source| ExportError::Read {
        file: file.to_path_buf(),
        source,
    };
    let reader = BufReader::new(std::fs::File::open(file).map_err(read_error)?);
    for (index, line) in reader.split(b'\n').enumerate() {
        let line = line.map_err(read_error)?;
        if line.is_empty() {
            continue;
        }
        let record: AuditRecord =
            serde_json::from_slice(&line).map_err(|_| ExportError::BadRecord {
                file: file.to_path_buf(),
                line: index as u64 + 1,
            })?;
        each(record)?;
    }
    Ok(())
}

const CSV_HEADER: &str = "ts,request_id,endpoint,project_id,event_id,status,outcome,error,upstream,item_index,item_type,item_size,decision,reason,rule,redactions,redaction_rules\n";

fn write_csv_rows(out: &mut dyn Write, record: &AuditRecord) -> io::Result<()> {
    let upstream = match &record.upstream {
        None => String::new(),
        Some(super::UpstreamRecord::Status(status)) => status.to_string(),
        Some(super::UpstreamRecord::Spooled) => "spooled".to_owned(),
        Some(super::UpstreamRecord::Sending) => "sending".to_owned(),
        Some(super::UpstreamRecord::Error(kind)) => kind.clone(),
    };
    let outcome = serde_json::to_value(record.outcome)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let common = [
        record.ts.clone(),
        record.request_id.clone(),
        record.endpoint.clone(),
        record.project_id.map(|p| p.to_string()).unwrap_or_default(),
        record.event_id.clone().unwrap_or_default(),
        record.status.to_string(),
        outcome,
        record.error.clone().unwrap_or_default(),
        upstream,
    ];
    let write_row = |out: &mut dyn Write, rest: [String; 8]| -> io::Result<()> {
        let fields: Vec<String> = common
            .iter()
            .chain(rest.iter())
            .map(|f| csv_field(f))
            .collect();
        out.write_all(fields.join(",").as_bytes())?;
        out.write_all(b"\n")
    };
    if record.items.is_empty() {
        return write_row(out, Default::default());
    }
    for (index, item) in record.items.iter().enumerate() {
        let total: u64 = item.redactions.iter().map(|r| u64::from(r.count)).sum();
        let mut rules: Vec<&str> = item.redactions.iter().map(|r| r.rule.as_str()).collect();
        rules.sort_unstable();
        rules.dedup();
        write_row(
            out,
            [
                index.to_string(),
                item.item_type.clone(),
                item.size.to_string(),
                item.decision.clone(),
                item.reason.clone().unwrap_or_default(),
                item.rule.clone().unwrap_or_default(),
                total.to_string(),
                rules.join(";"),
            ],
        )?;
    }
    Ok(())
}

/// RFC 4180 quoting, plus a leading `'` for cells a spreadsheet would run as a formula.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}
