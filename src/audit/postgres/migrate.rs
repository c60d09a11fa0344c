//! The database schema, as numbered migrations that `scrubgate audit migrate` applies in
//! order, each in its own transaction, under an advisory lock (two replicas migrating at
//! once wait for each other). Never run implicitly at start: the shipper's role may not
//! create tables, and a schema change is a decision an operator makes.
//!
//! Append-only by construction: the writer role can INSERT and SELECT, nothing else, and a
//! trigger rejects UPDATE, DELETE and TRUNCATE on the audit tables for everyone, owner
//! included (an owner can still drop the trigger: that is a DDL change PostgreSQL's own
//! logs show, not a silent edit). Monthly partitions are created and dropped only through
//! two `SECURITY DEFINER` functions, so the writer needs no DDL rights; retention reads its
//! period from a table the writer cannot change.

use super::PgError;

/// Lock key for migrations (`pg_advisory_xact_lock`): "scrubgat" as a number.
const LOCK_KEY: i64 = 0x7363_7275_6267_6174;

/// `(version, name, sql)`, applied in order. Never edit an applied one: add a new one.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[(1, "audit log, anchors, roles", V1)];

const V1: &str = r#"
CREATE SCHEMA IF NOT EXISTS scrubgate_audit;
SET LOCAL search_path = scrubgate_audit, pg_catalog;

CREATE TABLE audit_log (
    instance_id text NOT NULL,
    seq bigint NOT NULL CHECK (seq > 0),
    ts timestamptz NOT NULL,
    request_id text,
    endpoint text,
    project_id bigint,
    outcome text,
    status integer,
    error text,
    public_key_hmac text,
    client_ip_hmac text,
    hash_key_id text,
    policy_hash text,
    event_id text,
    sdk jsonb,
    upstream jsonb,
    header_redactions jsonb,
    items jsonb,
    client_report jsonb,
    prev_hash text NOT NULL,
    hash text NOT NULL,
    line text NOT NULL,
    shipped_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (instance_id, seq, ts)
) PARTITION BY RANGE (ts);
CREATE INDEX audit_log_ts ON audit_log (ts);
CREATE INDEX audit_log_project_ts ON audit_log (project_id, ts);

CREATE TABLE audit_anchor (
    id bigserial PRIMARY KEY,
    instance_id text NOT NULL,
    seq bigint NOT NULL,
    hash text NOT NULL,
    anchored_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_anchor_instance ON audit_anchor (instance_id, seq);

CREATE TABLE audit_retention (
    id bigserial PRIMARY KEY,
    partition_name text NOT NULL,
    range_start timestamptz NOT NULL,
    range_end timestamptz NOT NULL,
    retention_days integer NOT NULL,
    dropped_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE audit_settings (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    retention_days integer NOT NULL CHECK (retention_days > 0)
);
INSERT INTO audit_settings VALUES (true, 2190);

CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'scrubgate audit tables are append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON audit_anchor
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON audit_anchor
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON audit_retention
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON audit_retention
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- The month partition holding `at` (UTC months), created when missing.
CREATE FUNCTION ensure_partition(at timestamptz) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = scrubgate_audit, pg_catalog AS $$
DECLARE
    month timestamp := date_trunc('month', at AT TIME ZONE 'UTC');
    name text := 'audit_log_' || to_char(month, 'YYYYMM');
BEGIN
    IF to_regclass('scrubgate_audit.' || name) IS NULL THEN
        EXECUTE format(
            'CREATE TABLE IF NOT EXISTS scrubgate_audit.%I PARTITION OF scrubgate_audit.audit_log FOR VALUES FROM (%L) TO (%L)',
            name, month AT TIME ZONE 'UTC', (month + interval '1 month') AT TIME ZONE 'UTC');
    END IF;
    RETURN name;
END $$;

-- Drops every month partition that ends before now() - retention_days, and records it.
CREATE FUNCTION apply_retention() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = scrubgate_audit, pg_catalog AS $$
DECLARE
    days integer;
    cutoff timestamptz;
    part record;
    month timestamp;
    dropped integer := 0;
BEGIN
    SELECT retention_days INTO days FROM audit_settings;
    cutoff := now() - make_interval(days => days);
    FOR part IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'scrubgate_audit.audit_log'::regclass
          AND c.relname ~ '^audit_log_[0-9]{6}$'
        ORDER BY c.relname
    LOOP
        month := to_date(substr(part.relname, 11), 'YYYYMM')::timestamp;
        IF (month + interval '1 month') AT TIME ZONE 'UTC' <= cutoff THEN
            EXECUTE format('DROP TABLE scrubgate_audit.%I', part.relname);
            INSERT INTO audit_retention (partition_name, range_start, range_end, retention_days)
                VALUES (part.relname, month AT TIME ZONE 'UTC',
                        (month + interval '1 month') AT TIME ZONE 'UTC', days);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    RETURN dropped;
END $$;

DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'scrubgate_audit_writer') THEN
        CREATE ROLE scrubgate_audit_writer NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'scrubgate_audit_reader') THEN
        CREATE ROLE scrubgate_audit_reader NOLOGIN;
    END IF;
END $$;
REVOKE ALL ON SCHEMA scrubgate_audit FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA scrubgate_audit FROM PUBLIC;
REVOKE ALL ON FUNCTION ensure_partition(timestamptz), apply_retention() FROM PUBLIC;
GRANT USAGE ON SCHEMA scrubgate_audit TO scrubgate_audit_writer, scrubgate_audit_reader;
GRANT SELECT, INSERT ON audit_log, audit_anchor TO scrubgate_audit_writer;
GRANT SELECT ON audit_retention, audit_settings TO scrubgate_audit_writer;
GRANT USAGE ON SEQUENCE audit_anchor_id_seq TO scrubgate_audit_writer;
GRANT EXECUTE ON FUNCTION ensure_partition(timestamptz), apply_retention() TO scrubgate_audit_writer;
GRANT SELECT ON audit_log, audit_anchor, audit_retention, audit_settings TO scrubgate_audit_reader;
"#;

/// Applies the migrations not applied yet and sets the retention period. Returns the
/// versions applied now.
///
/// # Errors
/// A statement failed; that migration's transaction is rolled back.
pub async fn migrate(
    client: &mut tokio_postgres::Client,
    retention_days: u32,
) -> Result<Vec<i32>, PgError> {
    let transaction = client.transaction().await?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await?;
    transaction
        .batch_execute(
            "CREATE SCHEMA IF NOT EXISTS scrubgate_audit;
             CREATE TABLE IF NOT EXISTS scrubgate_audit.schema_migrations (
                 version integer PRIMARY KEY,
                 name text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    let done: Vec<i32> = transaction
        .query("SELECT version FROM scrubgate_audit.schema_migrations", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if done.contains(version) {
            continue;
        }
        transaction.batch_execute(sql).await?;
        transaction
            .execute(
                "INSERT INTO scrubgate_audit.schema_migrations (version, name) VALUES ($1, $2)",
                &[version, name],
            )
            .await?;
        applied.push(*version);
    }
    let days = i32::try_from(retention_days).unwrap_or(i32::MAX);
    transaction
        .execute(
            "UPDATE scrubgate_audit.audit_settings SET retention_days = $1",
            &[&days],
        )
        .await?;
    transaction.commit().await?;
    Ok(applied)
}

/// Drops whole month partitions past the configured retention (see the schema); returns how
/// many. Callable by the writer role, which cannot choose the period.
///
/// # Errors
/// The database refused.
pub async fn apply_retention(client: &tokio_postgres::Client) -> Result<i32, PgError> {
    let row = client
        .query_one("SELECT scrubgate_audit.apply_retention()", &[])
        .await?;
    Ok(row.get(0))
}
