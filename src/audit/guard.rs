//! [`AuditGuard`]: exactly one record per request. The guard is opened as soon as a request
//! is routed; whatever path the request takes, it either [`AuditGuard::finish`]es (and the
//! caller learns whether the record is on disk) or is dropped, in which case `Drop` hands an
//! `aborted` record to the writer. hyper drops the handler future when a client disconnects
//! and unwinding drops it on a panic, so no path can skip the record.

use std::net::IpAddr;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::record::{
    compact_redactions, safe_event_id, safe_sdk_token, AuditRecord, CandidateRecord,
    DiscardedRecord, ItemRecord, Outcome, Pseudonymizer, SdkInfo, UpstreamRecord, RECORD_VERSION,
};
use super::{AuditError, AuditLog};
use crate::scrub::ScrubReport;

/// What is known when a request arrives.
#[derive(Debug, Clone)]
pub struct RequestStart<'a> {
    pub request_id: &'a str,
    pub endpoint: &'static str,
    pub client_ip: Option<IpAddr>,
    pub policy_hash: &'a str,
}

/// The per-request audit guard. `#[must_use]`: dropping it on purpose records `aborted`.
#[must_use = "dropping the guard records the request as aborted"]
#[derive(Debug)]
pub struct AuditGuard {
    log: AuditLog,
    pseudonymizer: Pseudonymizer,
    record: Option<AuditRecord>,
    /// The outcome of a successful request, set once the pipeline knows it.
    outcome: Option<Outcome>,
}

// === impl AuditGuard ===

impl AuditGuard {
    pub(super) fn new(
        log: AuditLog,
        pseudonymizer: Pseudonymizer,
        start: &RequestStart<'_>,
    ) -> Self {
        // Microseconds: what PostgreSQL's timestamptz keeps, three bytes fewer per record.
        let now = OffsetDateTime::now_utc();
        let ts = now
            .replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
            .unwrap_or(now)
            .format(&Rfc3339)
            .unwrap_or_default();
        let record = AuditRecord {
            v: RECORD_VERSION,
            ts,
            request_id: start.request_id.to_owned(),
            endpoint: start.endpoint.to_owned(),
            project_id: None,
            public_key_hmac: None,
            client_ip_hmac: start.client_ip.map(|ip| pseudonymizer.client_ip(ip)),
            hash_key_id: pseudonymizer.key_id().to_owned(),
            sdk: None,
            event_id: None,
            policy_hash: start.policy_hash.to_owned(),
            status: 0,
            outcome: Outcome::Aborted,
            error: None,
            header_redactions: Vec::new(),
            items: Vec::new(),
            client_report: Vec::new(),
            candidate: None,
            upstream: None,
            prev: String::new(),
        };
        Self {
            log,
            pseudonymizer,
            record: Some(record),
            outcome: None,
        }
    }

    fn record(&mut self) -> Option<&mut AuditRecord> {
        self.record.as_mut()
    }

    /// The authenticated project and the public key it came with (stored as an HMAC).
    pub fn set_project(&mut self, project_id: u64, public_key: &str) {
        let digest = self.pseudonymizer.public_key(public_key);
        if let Some(record) = self.record() {
            record.project_id = Some(project_id);
            record.public_key_hmac = Some(digest);
        }
    }

    /// The SDK, from the envelope header or `sentry_client`; odd-looking values are dropped.
    pub fn set_sdk(&mut self, name: &str, version: Option<&str>) {
        if let (Some(record), Some(name)) = (self.record.as_mut(), safe_sdk_token(name)) {
            record.sdk = Some(SdkInfo {
                name,
                version: version.and_then(safe_sdk_token),
            });
        }
    }

    pub fn set_event_id(&mut self, event_id: &str) {
        if let Some(record) = self.record() {
            record.event_id = safe_event_id(event_id);
        }
    }

    /// What scrubbing and the policy did.
    pub fn set_items(
        &mut self,
        header: &ScrubReport,
        items: Vec<ItemRecord>,
        client_report: Vec<DiscardedRecord>,
    ) {
        if let Some(record) = self.record() {
            record.header_redactions = compact_redactions(&header.redactions);
            record.items = items;
            record.client_report = client_report;
        }
    }

    /// The candidate rules' differences, for a sampled envelope.
    pub fn set_candidate(&mut self, candidate: CandidateRecord) {
        if let Some(record) = self.record() {
            record.candidate = Some(candidate);
        }
    }

    pub fn set_upstream(&mut self, upstream: UpstreamRecord) {
        if let Some(record) = self.record() {
            record.upstream = Some(upstream);
        }
    }

    /// The outcome to record if the request succeeds.
    pub fn set_outcome(&mut self, outcome: Outcome) {
        self.outcome = Some(outcome);
    }

    /// Fails fast when the sink is known to be unusable, so nothing is forwarded for a
    /// request whose record cannot be written.
    ///
    /// # Errors
    /// The sink cannot be written.
    pub async fn preflight(&self) -> Result<(), AuditError> {
        self.log.probe().await
    }

    /// Writes the record and waits until it is written (and synced, per `fsync`).
    /// `outcome` overrides the one set with [`AuditGuard::set_outcome`] (errors); without
    /// either, the request counts as forwarded.
    ///
    /// # Errors
    /// The record could not be written: the caller must answer 503.
    pub async fn finish(
        mut self,
        status: u16,
        outcome: Option<Outcome>,
        error: Option<&str>,
    ) -> Result<(), AuditError> {
        let Some(mut record) = self.record.take() else {
            return Ok(());
        };
        record.status = status;
        record.outcome = outcome.or(self.outcome).unwrap_or(Outcome::Forwarded);
        record.error = error.map(str::to_owned);
        self.log.write(record).await
    }
}

impl AuditGuard {
    /// Writes the record now, before the envelope is handed to the upstream (sync mode),
    /// with `status` 0: the answer is not known yet (it is the upstream's). Later calls to
    /// [`AuditGuard::finish`] and setters do nothing: one record per request.
    ///
    /// # Errors
    /// The record could not be written: nothing may be sent, the caller answers 503.
    pub async fn finish_before_send(&mut self, status: u16) -> Result<(), AuditError> {
        let Some(mut record) = self.record.take() else {
            return Ok(());
        };
        record.status = status;
        record.outcome = self.outcome.unwrap_or(Outcome::Forwarded);
        self.log.write(record).await
    }

    /// Whether the record has been written already.
    pub fn is_finished(&self) -> bool {
        self.record.is_none()
    }
}

impl Drop for AuditGuard {
    fn drop(&mut self) {
        if let Some(mut record) = self.record.take() {
            record.status = 0;
            record.outcome = Outcome::Aborted;
            self.log.write_detached(record);
        }
    }
}
