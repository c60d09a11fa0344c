//! The compliance report over PostgreSQL: the records of every instance in the window, every
//! chain verified, and retention as the database recorded it.

use super::chain::{for_each_record, verify_postgres};
use super::PgError;
use crate::audit::export::ExportFilter;
use crate::audit::report::{
    ChainRow, DroppedPartition, Generated, Report, ReportBuilder, Retention,
};

/// Builds the report.
///
/// # Errors
/// The database failed or a row's line is not a record.
pub async fn report_postgres(
    client: &mut tokio_postgres::Client,
    filter: &ExportFilter,
    generated: Generated,
) -> Result<Report, PgError> {
    let mut builder = ReportBuilder::new(filter.clone());
    for_each_record(client, filter, |record| {
        builder.add(record);
        Ok(())
    })
    .await?;
    let chains = verify_postgres(client, None)
        .await?
        .into_iter()
        .map(|report| ChainRow {
            chain: format!("instance {}", report.instance_id),
            intact: report.status.is_intact(),
            records: report.records,
            head: report.head_hash.clone(),
            detail: report.to_string(),
        })
        .collect();
    let days: i32 = client
        .query_one(
            "SELECT retention_days FROM scrubgate_audit.audit_settings",
            &[],
        )
        .await?
        .get(0);
    let oldest: Option<String> = client
        .query_one(
            "SELECT to_char(min(ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM scrubgate_audit.audit_log",
            &[],
        )
        .await?
        .get(0);
    let text = "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'";
    let dropped = client
        .query(
            &format!(
                "SELECT partition_name, to_char(range_start AT TIME ZONE 'UTC', {text}),
                        to_char(range_end AT TIME ZONE 'UTC', {text}),
                        to_char(dropped_at AT TIME ZONE 'UTC', {text})
                 FROM scrubgate_audit.audit_retention ORDER BY range_start"
            ),
            &[],
        )
        .await?
        .iter()
        .map(|row| DroppedPartition {
            name: row.get(0),
            range_start: row.get(1),
            range_end: row.get(2),
            dropped_at: row.get(3),
        })
        .collect();
    let retention = Retention {
        retention_days: u32::try_from(days).ok(),
        oldest_record: oldest,
        dropped,
        note: "Whole months past the period are dropped and recorded in audit_retention."
            .to_owned(),
    };
    Ok(builder.finish(generated, chains, retention))
}
