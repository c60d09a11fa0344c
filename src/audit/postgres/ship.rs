//! The shipper: a background task that copies the local trail into PostgreSQL, batch by
//! batch, and never makes a request wait or fail. Each line becomes one row with this
//! replica's `instance_id` and the next `seq`; the insert ignores rows already there, so a
//! batch resent after a crash, a cut connection or an ambiguous commit is harmless, and a
//! row already there with a *different* hash (two replicas sharing an `instance_id`, or a
//! replaced local trail) stops shipping with an error instead of silently skipping.
//!
//! While the database is down the shipper retries with backoff and its lag grows (metric and
//! `/readyz` detail); the local trail keeps every record meanwhile.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::cursor::{self, Cursor, Entry};
use super::{PgError, PostgresSettings};
use crate::audit::AuditSettings;
use crate::metrics::Metrics;

/// How often retention runs (it also runs once when the shipper first connects).
const RETENTION_EVERY: Duration = Duration::from_secs(6 * 3600);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

const INSERT: &str = "
INSERT INTO scrubgate_audit.audit_log (instance_id, seq, ts, request_id, endpoint, project_id,
    outcome, status, error, public_key_hmac, client_ip_hmac, hash_key_id, policy_hash, event_id,
    sdk, upstream, header_redactions, items, client_report, prev_hash, hash, line)
SELECT $1, b.seq, b.ts::timestamptz, j->>'request_id', j->>'endpoint', (j->>'project_id')::bigint,
    j->>'outcome', (j->>'status')::integer, j->>'error', j->>'public_key_hmac', j->>'client_ip_hmac',
    j->>'hash_key_id', j->>'policy_hash', j->>'event_id', NULLIF(j->'sdk', 'null'),
    NULLIF(j->'upstream', 'null'), j->'header_redactions', j->'items', j->'client_report',
    b.prev, b.hash, b.line
FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::boolean[])
    AS b(seq, ts, prev, hash, line, ok)
CROSS JOIN LATERAL (SELECT CASE WHEN b.ok THEN b.line::jsonb END AS j) AS parsed
ON CONFLICT (instance_id, seq, ts) DO NOTHING";

/// What `/readyz` and the metrics say about shipping. Shared with the request side, which
/// only reads it.
#[derive(Debug)]
pub struct ShipStatus {
    instance_id: String,
    lag_bytes: AtomicU64,
    lag_seconds: AtomicU64,
    shipped_seq: AtomicU64,
    failing: AtomicBool,
}

impl ShipStatus {
    /// Starts as "ok" with no lag: the shipper reports within one poll interval.
    pub fn new(instance_id: String) -> Self {
        Self {
            instance_id,
            lag_bytes: AtomicU64::new(0),
            lag_seconds: AtomicU64::new(0),
            shipped_seq: AtomicU64::new(0),
            failing: AtomicBool::new(false),
        }
    }

    /// The `audit_shipping` detail of `/readyz`. Informational: shipping never makes the
    /// replica unready, since requests do not depend on it.
    pub fn detail(&self) -> serde_json::Value {
        let lag_bytes = self.lag_bytes.load(Ordering::Relaxed);
        let state = if self.failing.load(Ordering::Relaxed) {
            "failing"
        } else if lag_bytes > 0 {
            "behind"
        } else {
            "ok"
        };
        json!({
            "state": state,
            "instance_id": self.instance_id,
            "shipped_seq": self.shipped_seq.load(Ordering::Relaxed),
            "lag_bytes": lag_bytes,
            "lag_seconds": self.lag_seconds.load(Ordering::Relaxed),
        })
    }

    /// The chain this replica writes (logs and the `/readyz` detail name it).
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }
}

/// The fields of a line the shipper needs before the database parses the rest.
#[derive(Deserialize)]
struct Head {
    ts: String,
    prev: String,
}

/// A failed step: a closed kind for metrics, and the error for the log.
struct StepError(&'static str, PgError);

/// Owns the cursor and the pending batch; one per replica, so `seq` has one writer.
pub struct Shipper {
    active: PathBuf,
    settings: PostgresSettings,
    pool: deadpool_postgres::Pool,
    status: Arc<ShipStatus>,
    metrics: Option<Arc<Metrics>>,
    cursor: Option<Cursor>,
    pending: Vec<Entry>,
    /// `ts` of the last shipped line: a damaged line (no readable `ts`) is filed under it.
    last_ts: Option<String>,
    months: HashSet<String>,
    anchor_every: Duration,
    anchored: Option<(Instant, u64)>,
    retention_at: Option<Instant>,
}

impl Shipper {
    /// A shipper for the trail at `audit.path`. Connects lazily.
    ///
    /// # Errors
    /// No URL, an invalid URL, or an unusable `ca_file`: configuration problems that retrying
    /// would not fix.
    pub fn new(
        audit: &AuditSettings,
        status: Arc<ShipStatus>,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<Self, PgError> {
        let settings = audit.postgres.clone();
        let url = settings.url()?;
        let pool = super::pool(&url, settings.ca_file.as_deref(), settings.pool_size)?;
        Ok(Self {
            active: audit.path.clone(),
            settings,
            pool,
            status,
            metrics,
            cursor: None,
            pending: Vec::new(),
            last_ts: None,
            months: HashSet::new(),
            anchor_every: Duration::from_secs(audit.anchor_interval_secs.max(1)),
            anchored: None,
            retention_at: None,
        })
    }

    /// Runs until the runtime stops.
    pub fn spawn(mut self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let poll = Duration::from_millis(self.settings.poll_interval_ms);
            let mut backoff = Duration::from_secs(1);
            loop {
                match self.step().await {
                    Ok(0) => {
                        self.status.failing.store(false, Ordering::Relaxed);
                        backoff = Duration::from_secs(1);
                        self.housekeeping(false).await;
                        self.report_lag();
                        tokio::time::sleep(poll).await;
                    }
                    Ok(_) => {
                        self.status.failing.store(false, Ordering::Relaxed);
                        backoff = Duration::from_secs(1);
                        self.report_lag();
                    }
                    Err(StepError(kind, error)) => {
                        self.status.failing.store(true, Ordering::Relaxed);
                        if let Some(metrics) = &self.metrics {
                            metrics.audit_ship_error(kind);
                        }
                        if kind == "chain" {
                            // Not an outage: a second writer or a replaced trail, which
                            // retrying will not fix.
                            tracing::error!(
                                kind,
                                error = %error,
                                "audit records cannot be shipped to PostgreSQL; they stay in the local trail"
                            );
                        } else {
                            tracing::warn!(
                                kind,
                                error = %error,
                                retry_in_secs = backoff.as_secs(),
                                "audit records cannot be shipped to PostgreSQL yet; they stay in the local trail"
                            );
                        }
                        // Keep the lag current while waiting: it is what an operator watches
                        // during an outage.
                        let until = Instant::now() + backoff;
                        loop {
                            self.report_lag();
                            let left = until.saturating_duration_since(Instant::now());
                            if left.is_zero() {
                                break;
                            }
                            tokio::time::sleep(left.min(poll.max(Duration::from_millis(250))))
                                .await;
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        })
    }

    fn report_lag(&self) {
        let bytes = self
            .cursor
            .as_ref()
            .map_or(0, |cursor| cursor.lag_bytes(&self.active));
        let next = match self.pending.first() {
            Some(entry) => Some(entry.line.clone()),
            None if bytes > 0 => self.cursor.as_ref().and_then(Cursor::peek_line),
            None => None,
        };
        let seconds = next
            .and_then(|line| serde_json::from_slice::<Head>(&line).ok())
            .and_then(|head| OffsetDateTime::parse(&head.ts, &Rfc3339).ok())
            .map_or(0, |ts| {
                u64::try_from((OffsetDateTime::now_utc() - ts).whole_seconds()).unwrap_or(0)
            });
        self.status.lag_bytes.store(bytes, Ordering::Relaxed);
        self.status.lag_seconds.store(seconds, Ordering::Relaxed);
        if let Some(metrics) = &self.metrics {
            metrics.audit_ship_lag(bytes, seconds);
        }
    }

    /// Ships at most one batch; `Ok(0)` when caught up.
    async fn step(&mut self) -> Result<usize, StepError> {
        let client = self
            .pool
            .get()
            .await
            .map_err(|e| StepError("connect", e.into()))?;
        if self.cursor.is_none() {
            self.locate(&client).await?;
        }
        if self.pending.is_empty() {
            self.read().await?;
        }
        if self.pending.is_empty() {
            return Ok(0);
        }
        let count = self.pending.len();
        self.insert(&client).await?;
        let entries = std::mem::take(&mut self.pending);
        if let Some(cursor) = &mut self.cursor {
            cursor.advance(&entries);
            self.status.shipped_seq.store(cursor.seq, Ordering::Relaxed);
            let saved = cursor.saved(self.status.instance_id());
            if let Err(error) = cursor::save_state(&self.active, &saved) {
                tracing::debug!(error = %error, "audit shipper position not saved (a restart will look it up)");
            }
        }
        Ok(count)
    }

    /// Places the cursor after the newest row the database holds for this instance.
    async fn locate(&mut self, client: &deadpool_postgres::Object) -> Result<(), StepError> {
        let instance = self.status.instance_id().to_owned();
        let last = client
            .query_opt(
                "SELECT seq, hash, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')
                 FROM scrubgate_audit.audit_log WHERE instance_id = $1 ORDER BY seq DESC LIMIT 1",
                &[&instance],
            )
            .await
            .map_err(|e| StepError("connect", e.into()))?
            .map(|row| {
                let seq: i64 = row.get(0);
                let hash: String = row.get(1);
                let ts: String = row.get(2);
                (u64::try_from(seq).unwrap_or(0), hash, ts)
            });
        let active = self.active.clone();
        let saved = cursor::load_state(&active, &instance);
        let wanted = last.as_ref().map(|(seq, hash, _)| (*seq, hash.clone()));
        let found = tokio::task::spawn_blocking(move || {
            Cursor::locate(
                &active,
                wanted.as_ref().map(|(seq, hash)| (*seq, hash.as_str())),
                saved.as_ref(),
            )
        })
        .await
        .map_err(|e| StepError("trail", PgError::Trail(std::io::Error::other(e))))?
        .map_err(|e| StepError("trail", PgError::Trail(e)))?;
        match found {
            Some(cursor) => {
                tracing::info!(
                    instance_id = %instance,
                    shipped_seq = cursor.seq,
                    "audit shipper resumes after the last record in PostgreSQL"
                );
                self.status.shipped_seq.store(cursor.seq, Ordering::Relaxed);
                self.last_ts = last.map(|(_, _, ts)| ts);
                self.cursor = Some(cursor);
                Ok(())
            }
            None => Err(StepError(
                "chain",
                PgError::Chain(format!(
                    "the newest record in PostgreSQL for instance {instance} is not in the local trail at {}: \
                     another replica may use the same audit.postgres.instance_id, or this trail was replaced; \
                     give this replica its own instance_id",
                    self.active.display()
                )),
            )),
        }
    }

    async fn read(&mut self) -> Result<(), StepError> {
        let Some(mut cursor) = self.cursor.take() else {
            return Ok(());
        };
        let active = self.active.clone();
        let max = self.settings.batch_size;
        let (cursor, entries) = tokio::task::spawn_blocking(move || {
            let entries = cursor.read_batch(&active, max);
            (cursor, entries)
        })
        .await
        .map_err(|e| StepError("trail", PgError::Trail(std::io::Error::other(e))))?;
        self.cursor = Some(cursor);
        self.pending = entries.map_err(|e| StepError("trail", PgError::Trail(e)))?;
        Ok(())
    }

    /// Inserts the pending batch, creating month partitions first.
    async fn insert(&mut self, client: &deadpool_postgres::Object) -> Result<(), StepError> {
        let Some(cursor) = &self.cursor else {
            return Ok(());
        };
        let first_seq = cursor.seq + 1;
        let mut previous = cursor.hash.clone();
        let mut last_ts = self.last_ts.clone();
        let n = self.pending.len();
        let (mut seqs, mut tss, mut prevs, mut hashes, mut lines, mut oks) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for (i, entry) in self.pending.iter().enumerate() {
            let head = serde_json::from_slice::<Head>(&entry.line)
                .ok()
                .filter(|head| OffsetDateTime::parse(&head.ts, &Rfc3339).is_ok());
            let line = String::from_utf8_lossy(&entry.line).into_owned();
            // Parsing `Head` checked the whole line's syntax (unknown fields are skipped, not
            // trusted), so PostgreSQL's `::jsonb` will accept it.
            let ok = head.is_some();
            let (ts, prev) = match head {
                Some(head) => (head.ts, head.prev),
                None => {
                    let ts = last_ts.clone().unwrap_or_else(|| {
                        OffsetDateTime::now_utc()
                            .format(&Rfc3339)
                            .unwrap_or_default()
                    });
                    tracing::warn!(
                        seq = first_seq + i as u64,
                        "damaged audit line shipped as is (verify reports it)"
                    );
                    (ts, String::new())
                }
            };
            if !previous.is_empty() && prev != previous {
                tracing::warn!(
                    seq = first_seq + i as u64,
                    "audit record does not chain to the line before it in the local trail (verify reports it)"
                );
            }
            previous.clone_from(&entry.hash);
            last_ts = Some(ts.clone());
            seqs.push(i64::try_from(first_seq + i as u64).unwrap_or(i64::MAX));
            tss.push(ts);
            prevs.push(prev);
            hashes.push(entry.hash.clone());
            lines.push(line);
            oks.push(ok);
        }
        let mut new_months: Vec<(String, String)> = Vec::new();
        for ts in &tss {
            let month = month_of(ts);
            if !self.months.contains(&month) && !new_months.iter().any(|(m, _)| *m == month) {
                new_months.push((month, ts.clone()));
            }
        }
        for (month, ts) in new_months {
            client
                .execute(
                    "SELECT scrubgate_audit.ensure_partition($1::text::timestamptz)",
                    &[&ts],
                )
                .await
                .map_err(|e| StepError("insert", e.into()))?;
            self.months.insert(month);
        }
        let instance = self.status.instance_id().to_owned();
        let inserted = client
            .execute(
                INSERT,
                &[&instance, &seqs, &tss, &prevs, &hashes, &lines, &oks],
            )
            .await
            .map_err(|e| StepError("insert", e.into()))?;
        if inserted < n as u64 {
            // Some rows were there already: a resend after an ambiguous commit is fine; a
            // different record under the same seq is a second writer on this chain.
            let rows = client
                .query(
                    "SELECT seq, hash FROM scrubgate_audit.audit_log
                     WHERE instance_id = $1 AND seq >= $2 AND seq <= $3",
                    &[&instance, &seqs[0], &seqs[n - 1]],
                )
                .await
                .map_err(|e| StepError("insert", e.into()))?;
            let present: HashSet<(i64, String)> =
                rows.iter().map(|row| (row.get(0), row.get(1))).collect();
            if let Some(i) = (0..n).find(|i| !present.contains(&(seqs[*i], hashes[*i].clone()))) {
                return Err(StepError(
                    "chain",
                    PgError::Chain(format!(
                        "PostgreSQL already holds a different record for instance {instance} seq {}: \
                         another replica may use the same audit.postgres.instance_id",
                        seqs[i]
                    )),
                ));
            }
        }
        self.last_ts = last_ts;
        if let Some(metrics) = &self.metrics {
            metrics.audit_shipped(inserted);
        }
        Ok(())
    }

    /// Anchors the shipped head when due (or `now`), and applies retention when due.
    async fn housekeeping(&mut self, now: bool) {
        let Some(cursor) = &self.cursor else {
            return;
        };
        let (seq, hash) = (cursor.seq, cursor.hash.clone());
        let due = match self.anchored {
            None => true,
            Some((at, anchored_seq)) => {
                anchored_seq != seq && (now || at.elapsed() >= self.anchor_every)
            }
        };
        let Ok(client) = self.pool.get().await else {
            return;
        };
        if due && seq > 0 {
            let instance = self.status.instance_id().to_owned();
            let seq_sql = i64::try_from(seq).unwrap_or(i64::MAX);
            match client
                .execute(
                    "INSERT INTO scrubgate_audit.audit_anchor (instance_id, seq, hash) VALUES ($1, $2, $3)",
                    &[&instance, &seq_sql, &hash],
                )
                .await
            {
                Ok(_) => {
                    tracing::info!(instance_id = %instance, seq, head = %hash, "audit chain anchored");
                    self.anchored = Some((Instant::now(), seq));
                }
                Err(error) => tracing::warn!(error = %error, "audit anchor not written; retried later"),
            }
        }
        if self
            .retention_at
            .is_none_or(|at| at.elapsed() >= RETENTION_EVERY)
        {
            self.retention_at = Some(Instant::now());
            match super::apply_retention(&client).await {
                Ok(0) => {}
                Ok(dropped) => {
                    self.months.clear();
                    tracing::info!(
                        partitions = dropped,
                        "audit partitions past retention dropped (recorded in audit_retention)"
                    );
                }
                Err(error) => tracing::warn!(error = %error, "audit retention not applied"),
            }
        }
    }
}

/// `YYYY-MM` (UTC) of an RFC 3339 timestamp: the partition it goes to.
fn month_of(ts: &str) -> String {
    OffsetDateTime::parse(ts, &Rfc3339)
        .map(|t| {
            let t = t.to_offset(time::UtcOffset::UTC);
            format!("{:04}-{:02}", t.year(), u8::from(t.month()))
        })
        .unwrap_or_default()
}

/// Ships everything the trail holds now, anchors the head and returns how many lines were
/// shipped (`scrubgate audit ship`: a final flush, or a backfill).
///
/// # Errors
/// The database or the trail failed; what was shipped stays shipped.
pub async fn ship_once(audit: &AuditSettings) -> Result<u64, PgError> {
    let status = Arc::new(ShipStatus::new(audit.postgres.instance_id()));
    let mut shipper = Shipper::new(audit, status, None)?;
    let mut total = 0;
    loop {
        match shipper.step().await {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(StepError(_, error)) => return Err(error),
        }
    }
    shipper.housekeeping(true).await;
    Ok(total)
}
