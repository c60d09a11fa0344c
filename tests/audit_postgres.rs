//! Issue #21: the audit trail shipped to a real PostgreSQL server (a throwaway cluster per
//! test, see `pg_util`): the schema is append-only for the writer and for the owner, records
//! arrive exactly once across a database restart and a `kill -9` of the proxy, `verify
//! --postgres` names edits, deletions, forks and cut-off tails by `seq`, and retention drops
//! whole old months only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use sha2::Digest;

use crate::pg_util::PgCluster;
use crate::util::{self, ServeProcess, Upstream, PID};

/// Runs `scrubgate ARGS` with the database URL; returns (exit code, stdout, stderr).
fn scrubgate(url: &str, args: &[&str]) -> (i32, String, String) {
    let out = util::binary()
        .args(args)
        .env_remove("SCRUBGATE_CONFIG")
        .env("SCRUBGATE_AUDIT_DATABASE_URL", url)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A chained trail of `timestamps.len()` records (as the proxy writes them) at `path`.
fn synthetic_trail(path: &Path, timestamps: &[String]) {
    let mut prev = "0".repeat(64);
    let mut text = String::new();
    for (i, ts) in timestamps.iter().enumerate() {
        let record = json!({
            "v": 1, "ts": ts, "request_id": format!("req-{i}"), "endpoint": "envelope",
            "project_id": PID, "public_key_hmac": "ab", "client_ip_hmac": "cd",
            "hash_key_id": "k1", "sdk": {"name": "sentry.python", "version": "2.0.0"},
            "event_id": format!("{i:032x}"), "policy_hash": "ph", "status": 200,
            "outcome": "forwarded", "error": null, "header_redactions": [],
            "items": [{"type": "event", "size": 10, "decision": "forward", "reason": null,
                       "rule": null, "redactions": [{"path": "user.email", "rule": "email",
                       "method": "mask", "count": 1}]}],
            "upstream": {"status": 200}, "prev": prev,
        });
        let line = serde_json::to_string(&record).unwrap();
        prev = sha256_hex(line.as_bytes());
        text.push_str(&line);
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

fn now_minus_days(days: i64) -> String {
    (time::OffsetDateTime::now_utc() - time::Duration::days(days))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A config file with `[audit]` for `trail`, shipping as `instance`.
fn audit_config(dir: &Path, trail: &Path, instance: &str, extra: &str) -> PathBuf {
    let path = dir.join(format!("{instance}.toml"));
    std::fs::write(
        &path,
        format!(
            "[audit]\npath = \"{}\"\nanchor_interval_secs = 1\n\n[audit.postgres]\nenabled = true\ninstance_id = \"{instance}\"\nbatch_size = 3\n{extra}",
            trail.display()
        ),
    )
    .unwrap();
    path
}

/// Migrates as the superuser; returns the URL of a login role in the writer group.
async fn migrated(pg: &PgCluster, config: Option<&Path>) -> String {
    let admin = pg.admin_url();
    let mut args = vec!["audit", "migrate"];
    let config_arg;
    if let Some(config) = config {
        config_arg = config.display().to_string();
        args.extend(["--config", &config_arg]);
    }
    let (code, out, err) = scrubgate(&admin, &args);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("applied migration(s) 1"), "{out}");
    pg.login_role("shipper", "scrubgate_audit_writer").await
}

async fn count(client: &tokio_postgres::Client, instance: &str) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM scrubgate_audit.audit_log WHERE instance_id = $1",
            &[&instance],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn migrations_make_the_tables_append_only_for_the_writer_and_the_owner() {
    let Some(pg) = PgCluster::start("migrations_make_the_tables_append_only") else {
        return;
    };
    let writer_url = migrated(&pg, None).await;
    let (code, out, _) = scrubgate(&pg.admin_url(), &["audit", "migrate"]);
    assert_eq!(
        (code, out.trim()),
        (0, "schema up to date (retention 2190 days)")
    );

    // The writer can insert (through the partition function) and read.
    let writer = pg.connect(&writer_url).await;
    writer
        .execute("SELECT scrubgate_audit.ensure_partition(now())", &[])
        .await
        .unwrap();
    writer
        .execute(
            "INSERT INTO scrubgate_audit.audit_log (instance_id, seq, ts, prev_hash, hash, line)
             VALUES ('w', 1, now(), 'p', 'h', '{}')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(count(&writer, "w").await, 1);
    // ... and nothing else.
    for sql in [
        "UPDATE scrubgate_audit.audit_log SET outcome = 'x'",
        "DELETE FROM scrubgate_audit.audit_log",
        "TRUNCATE scrubgate_audit.audit_log",
        "ALTER TABLE scrubgate_audit.audit_log ADD COLUMN note text",
        "ALTER TABLE scrubgate_audit.audit_log DISABLE TRIGGER append_only",
        "DROP TABLE scrubgate_audit.audit_anchor",
        "UPDATE scrubgate_audit.audit_settings SET retention_days = 1",
        "DELETE FROM scrubgate_audit.audit_anchor",
    ] {
        let error = writer.batch_execute(sql).await.expect_err(sql);
        let message = error.as_db_error().map(|e| e.message().to_owned());
        assert!(
            message
                .as_deref()
                .is_some_and(|m| m.contains("permission denied") || m.contains("must be owner")),
            "{sql}: {message:?}"
        );
    }
    // The owner (here a superuser) is stopped by the trigger.
    let admin = pg.admin().await;
    for sql in [
        "UPDATE scrubgate_audit.audit_log SET outcome = 'x'",
        "DELETE FROM scrubgate_audit.audit_log",
        "TRUNCATE scrubgate_audit.audit_log",
    ] {
        let error = admin.batch_execute(sql).await.expect_err(sql);
        let message = error
            .as_db_error()
            .map(|e| e.message().to_owned())
            .unwrap_or_default();
        assert!(message.contains("append-only"), "{sql}: {message}");
    }
    assert_eq!(count(&admin, "w").await, 1);
}

#[tokio::test]
async fn verify_names_edited_deleted_forked_and_cut_off_chains_by_seq() {
    let Some(pg) = PgCluster::start("verify_names_edited_deleted_forked") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let writer = migrated(&pg, None).await;
    let timestamps: Vec<String> = (0..8).map(|i| now_minus_days(8 - i)).collect();
    // One chain per tampering, plus an intact one.
    for instance in ["intact", "edited", "deleted", "forked", "cut", "rewritten"] {
        let trail_dir = dir.path().join(instance);
        std::fs::create_dir(&trail_dir).unwrap();
        let trail = trail_dir.join("audit.jsonl");
        synthetic_trail(&trail, &timestamps);
        let config = audit_config(dir.path(), &trail, instance, "");
        let (code, out, err) = scrubgate(
            &writer,
            &["audit", "ship", "--config", config.to_str().unwrap()],
        );
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(
            out.trim(),
            format!("8 record(s) shipped for instance {instance}")
        );
        // Shipping again sends nothing twice.
        let (code, out, _) = scrubgate(
            &writer,
            &["audit", "ship", "--config", config.to_str().unwrap()],
        );
        assert_eq!(
            (code, out.trim()),
            (0, &*format!("0 record(s) shipped for instance {instance}"))
        );
    }
    // A second trail under an instance_id already in use is refused, not interleaved.
    let other = dir.path().join("other.jsonl");
    synthetic_trail(&other, &timestamps[..3]);
    let config = audit_config(dir.path(), &other, "intact", "");
    let (code, out, err) = scrubgate(
        &writer,
        &["audit", "ship", "--config", config.to_str().unwrap()],
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains(
            "the newest record in PostgreSQL for instance intact is not in the local trail"
        ),
        "{err}"
    );
    let (code, out, err) = scrubgate(&writer, &["audit", "verify", "--postgres"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("OK: instance "))
            .count(),
        6,
        "{out}"
    );
    assert!(
        out.contains("OK: instance intact: 8 record(s), seq 1..8, chain intact, 1 anchor(s) match"),
        "{out}"
    );

    // Tamper as the superuser, past the triggers.
    let admin = pg.admin().await;
    admin
        .batch_execute(
            "SET session_replication_role = replica;
             UPDATE scrubgate_audit.audit_log SET outcome = 'dropped' WHERE instance_id = 'edited' AND seq = 3;
             DELETE FROM scrubgate_audit.audit_log WHERE instance_id = 'deleted' AND seq = 5;
             INSERT INTO scrubgate_audit.audit_log (instance_id, seq, ts, prev_hash, hash, line)
                 SELECT instance_id, seq, ts + interval '1 second', prev_hash, repeat('f', 64), line
                 FROM scrubgate_audit.audit_log WHERE instance_id = 'forked' AND seq = 6;
             DELETE FROM scrubgate_audit.audit_log WHERE instance_id = 'cut' AND seq >= 7;
             UPDATE scrubgate_audit.audit_log
                 SET line = replace(line, '\"forwarded\"', '\"dropped\"'),
                     hash = encode(sha256(convert_to(replace(line, '\"forwarded\"', '\"dropped\"'), 'UTF8')), 'hex'),
                     outcome = 'dropped'
                 WHERE instance_id = 'rewritten' AND seq = 8;",
        )
        .await
        .unwrap();
    let (code, out, err) = scrubgate(&writer, &["audit", "verify", "--postgres"]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with("OK: instance intact: 8 record(s)"), "{out}");
    let expected = [
        "TAMPERED: instance cut: seq 8 was anchored but the chain ends at seq 6: the newest records were deleted",
        "TAMPERED: instance deleted: seq 5 is missing (next present: 6): rows were deleted",
        "TAMPERED: instance edited: seq 3 was edited (its columns no longer match its record line)",
        "TAMPERED: instance forked: seq 6 has two different records",
        "TAMPERED: instance rewritten: seq 8 no longer has the hash anchored for it",
    ];
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), expected.len(), "{err}");
    for (line, expected) in lines.iter().zip(expected) {
        assert!(line.starts_with(expected), "{line}\nexpected: {expected}");
    }
    // One chain at a time.
    let (code, out, _) = scrubgate(
        &writer,
        &["audit", "verify", "--postgres", "--instance", "intact"],
    );
    assert_eq!((code, out.lines().count()), (0, 1));
}

#[tokio::test]
async fn retention_drops_whole_old_months_only_and_records_it() {
    let Some(pg) = PgCluster::start("retention_drops_whole_old_months_only") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let trail = dir.path().join("audit.jsonl");
    let config = audit_config(dir.path(), &trail, "pod-r", "retention_days = 400\n");
    let writer = migrated(&pg, Some(&config)).await;
    // Three records eight years ago, two records 450 days ago, one 100 days ago, two now.
    let days = [2920, 2920, 2920, 450, 450, 100, 0, 0];
    let timestamps: Vec<String> = days.iter().map(|d| now_minus_days(*d)).collect();
    synthetic_trail(&trail, &timestamps);
    let (code, out, err) = scrubgate(
        &writer,
        &["audit", "ship", "--config", config.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out}{err}");
    let admin = pg.admin().await;
    let dropped: Vec<(String, i32)> = admin
        .query(
            "SELECT partition_name, retention_days FROM scrubgate_audit.audit_retention ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let month = |d: i64| {
        let t = time::OffsetDateTime::now_utc() - time::Duration::days(d);
        format!("audit_log_{:04}{:02}", t.year(), u8::from(t.month()))
    };
    assert_eq!(dropped, vec![(month(2920), 400), (month(450), 400)]);
    let seqs: Vec<i64> = admin
        .query(
            "SELECT seq FROM scrubgate_audit.audit_log ORDER BY seq",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(seqs, vec![6, 7, 8]);
    // The chain now starts after the dropped months; that is retention, not tampering.
    let (code, out, err) = scrubgate(&writer, &["audit", "verify", "--postgres"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("3 record(s), seq 6..8, chain intact"), "{out}");
}

async fn post_event(proxy: &ServeProcess, n: usize) -> u16 {
    util::client()
        .post(proxy.url(&format!("/api/{PID}/envelope/")))
        .header("x-sentry-auth", util::auth_header())
        .body(util::event_envelope(
            &format!("{n:032x}"),
            &json!({"message": "m", "user": {"email": "a@b.example"}}),
        ))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn wait_count(client: &tokio_postgres::Client, instance: &str, n: i64) -> i64 {
    for _ in 0..300 {
        let now = count(client, instance).await;
        if now >= n {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    count(client, instance).await
}

#[tokio::test]
async fn records_arrive_exactly_once_across_a_database_restart_and_a_kill_9() {
    let Some(pg) = PgCluster::start("records_arrive_exactly_once") else {
        return;
    };
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let trail = dir.path().join("audit").join("audit.jsonl");
    let writer = migrated(&pg, None).await;
    let config = util::write_config(
        dir.path(),
        &upstream.url(),
        "[audit.postgres]\nenabled = true\ninstance_id = \"pod-0\"\nbatch_size = 1\npoll_interval_ms = 20\n",
    );
    let envs = [
        ("SCRUBGATE_AUDIT__PATH", trail.to_str().unwrap()),
        ("SCRUBGATE_AUDIT_DATABASE_URL", writer.as_str()),
        ("SCRUBGATE_AUDIT__ANCHOR_INTERVAL_SECS", "1"),
        // Rotation every few records, so the shipper follows renamed files too.
        ("SCRUBGATE_AUDIT__ROTATE_MAX_BYTES", "4096"),
    ];
    let admin = pg.admin().await;
    let mut proxy = ServeProcess::start(&config, &envs);
    let mut sent = 0;
    for _ in 0..10 {
        assert_eq!(post_event(&proxy, sent).await, 200);
        sent += 1;
    }
    assert_eq!(wait_count(&admin, "pod-0", 10).await, 10);

    // The database goes away mid-load: ingestion goes on, the lag shows.
    drop(admin);
    pg.stop();
    for _ in 0..30 {
        assert_eq!(post_event(&proxy, sent).await, 200);
        sent += 1;
    }
    let ready: Value =
        serde_json::from_str(&util::get_text(&proxy.admin_url("/readyz")).await).unwrap();
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["audit_shipping"]["instance_id"], "pod-0", "{ready}");
    assert!(
        ready["audit_shipping"]["lag_bytes"].as_u64().unwrap() > 0,
        "{ready}"
    );
    assert_ne!(ready["audit_shipping"]["state"], "ok", "{ready}");

    // It comes back; the proxy is killed while it catches up.
    pg.restart();
    let admin = pg.admin().await;
    // The shipper reconnects within its backoff (at most 30 s).
    let mut shipped = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(45);
    while std::time::Instant::now() < deadline {
        shipped = count(&admin, "pod-0").await;
        if shipped > 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    proxy.child.kill().unwrap();
    proxy.child.wait().unwrap();
    assert!(
        shipped > 10 && shipped < 40,
        "killed mid-ship, at {shipped} of 40"
    );

    // A new process on the same trail resumes where the database says.
    proxy = ServeProcess::start(&config, &envs);
    for _ in 0..5 {
        assert_eq!(post_event(&proxy, sent).await, 200);
        sent += 1;
    }
    let files = scrubgate::audit::trail(&trail).unwrap();
    assert!(files.len() > 3, "rotated: {files:?}");
    let local: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let lines: Vec<&str> = local.lines().collect();
    assert_eq!(lines.len(), sent);
    assert_eq!(wait_count(&admin, "pod-0", sent as i64).await, sent as i64);
    let rows = admin
        .query(
            "SELECT seq, hash, line FROM scrubgate_audit.audit_log WHERE instance_id = 'pod-0' ORDER BY seq",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), sent, "every record exactly once");
    for (i, (row, line)) in rows.iter().zip(&lines).enumerate() {
        assert_eq!(row.get::<_, i64>(0), i as i64 + 1);
        assert_eq!(row.get::<_, String>(1), sha256_hex(line.as_bytes()));
        assert_eq!(row.get::<_, String>(2), *line);
    }
    // The metrics and /readyz agree once caught up.
    let mut ready = Value::Null;
    for _ in 0..100 {
        ready = serde_json::from_str(&util::get_text(&proxy.admin_url("/readyz")).await).unwrap();
        if ready["audit_shipping"]["state"] == "ok" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        ready["audit_shipping"]["shipped_seq"], sent as u64,
        "{ready}"
    );
    assert_eq!(ready["audit_shipping"]["lag_bytes"], 0, "{ready}");
    let metrics = util::get_text(&proxy.admin_url("/metrics")).await;
    assert!(
        metrics.contains("scrubgate_audit_ship_lag_bytes 0"),
        "{metrics}"
    );
    drop(proxy);

    // verify and export over SQL agree with the local trail.
    let (code, out, err) = scrubgate(&writer, &["audit", "verify", "--postgres"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!(
            "OK: instance pod-0: {sent} record(s), seq 1..{sent}, chain intact"
        )),
        "{out}"
    );
    let (code, from_db, err) = scrubgate(
        &writer,
        &["audit", "export", "--postgres", "--format", "csv"],
    );
    assert_eq!(code, 0, "{err}");
    let (code, from_file, err) = scrubgate(
        &writer,
        &[
            "audit",
            "export",
            "--format",
            "csv",
            trail.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(from_db, from_file);
}

/// A CA and a server certificate for 127.0.0.1, as PEM: (ca, leaf, key).
fn pki() -> (String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    (ca.pem(), leaf.pem(), key.serialize_pem())
}

#[tokio::test]
async fn tls_to_the_database_trusts_the_ca_file_and_nothing_unknown() {
    let (ca, leaf, key) = pki();
    let Some(pg) = PgCluster::start_tls("tls_to_the_database", &leaf, &key) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let trail = dir.path().join("audit.jsonl");
    synthetic_trail(&trail, &[now_minus_days(1), now_minus_days(0)]);
    let url = pg.admin_url().replace("sslmode=disable", "sslmode=require");
    // The server's CA is not among the system's roots: refused.
    let untrusted = audit_config(dir.path(), &trail, "no-ca", "");
    let (code, out, err) = scrubgate(
        &url,
        &["audit", "migrate", "--config", untrusted.to_str().unwrap()],
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("certificate"), "{err}");
    // With ca_file it is trusted, for migrate and for shipping (sslmode=require: never in
    // the clear).
    let extra = format!("ca_file = \"{}\"\n", ca_file.display());
    let trusted = audit_config(dir.path(), &trail, "tls", &extra);
    let (code, out, err) = scrubgate(
        &url,
        &["audit", "migrate", "--config", trusted.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = scrubgate(
        &url,
        &["audit", "ship", "--config", trusted.to_str().unwrap()],
    );
    assert_eq!(
        (code, out.trim()),
        (0, "2 record(s) shipped for instance tls"),
        "{err}"
    );
}

#[tokio::test]
async fn the_report_matches_export_from_files_and_from_postgres() {
    let Some(pg) = PgCluster::start("the_report_matches_export") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let trail = dir.path().join("audit.jsonl");
    let config = audit_config(dir.path(), &trail, "pod-report", "");
    let writer = migrated(&pg, Some(&config)).await;
    let timestamps: Vec<String> = (0..8).map(|i| now_minus_days(8 - i)).collect();
    synthetic_trail(&trail, &timestamps);
    let (code, _, err) = scrubgate(
        &writer,
        &["audit", "ship", "--config", config.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    let config = config.to_str().unwrap();
    let trail = trail.to_str().unwrap();
    for source in [vec!["--postgres"], vec![trail]] {
        let mut args = vec!["audit", "report", "--config", config, "--format", "json"];
        args.extend(&source);
        let (code, out, err) = scrubgate(&writer, &args);
        assert_eq!(code, 0, "{err}");
        let report: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(report["totals"]["records"], 8, "{source:?}");
        assert_eq!(report["totals"]["by_outcome"]["forwarded"], 8);
        assert_eq!(report["totals"]["redactions"], 8);
        assert_eq!(
            report["redactions_by_rule"],
            json!([{"name": "email", "count": 8}])
        );
        assert_eq!(
            report["top_paths"],
            json!([{"name": "user.email", "count": 8}])
        );
        assert_eq!(report["timeline"]["granularity"], "day");
        assert_eq!(report["timeline"]["buckets"].as_array().unwrap().len(), 8);
        assert_eq!(report["chains"].as_array().unwrap().len(), 1);
        assert_eq!(report["chains"][0]["intact"], true, "{}", report["chains"]);
        assert_eq!(report["projects"][0]["project_id"], PID);
        assert_eq!(report["policy_hashes"][0]["records"], 8);
        // The window: the last two days only, as export counts them.
        let since = &timestamps[6][..10];
        let mut args = vec![
            "audit", "report", "--config", config, "--format", "json", "--since", since,
        ];
        args.extend(&source);
        let (_, out, _) = scrubgate(&writer, &args);
        let report: Value = serde_json::from_str(&out).unwrap();
        let mut args = vec!["audit", "export", "--config", config, "--since", since];
        args.extend(&source);
        let (_, exported, _) = scrubgate(&writer, &args);
        let exported: Value = serde_json::from_str(&exported).unwrap();
        assert_eq!(
            report["totals"]["records"],
            exported.as_array().unwrap().len()
        );
        assert_eq!(report["totals"]["records"], 2);
    }
    // HTML: self-contained, one data point per day in the charts.
    let html_path = dir.path().join("report.html");
    let args = [
        "audit",
        "report",
        "--config",
        config,
        "--postgres",
        "--output",
        html_path.to_str().unwrap(),
    ];
    let (code, _, err) = scrubgate(&writer, &args);
    assert_eq!((code, err.trim()), (0, "8 record(s) in the report"));
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    for external in ["http://", "https://", "<script", "src=", "@import", "url("] {
        assert!(!html.contains(external), "{external}");
    }
    let outcomes = html
        .split("id=\"outcomes\"")
        .nth(1)
        .unwrap()
        .split("</svg>")
        .next()
        .unwrap();
    assert_eq!(outcomes.matches("<g class=\"bucket\"").count(), 8);
    assert_eq!(
        outcomes
            .matches("data-series=\"forwarded\" data-value=\"1\"")
            .count(),
        8
    );
    assert!(html.contains("every chain intact"));
    assert!(html.contains("instance pod-report"));
}

#[test]
fn the_pdf_report_needs_chromium_and_says_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let trail = dir.path().join("audit.jsonl");
    synthetic_trail(&trail, &[now_minus_days(1), now_minus_days(0)]);
    let pdf = dir.path().join("report.pdf");
    let args = [
        "audit",
        "report",
        "--format",
        "pdf",
        "-o",
        pdf.to_str().unwrap(),
        trail.to_str().unwrap(),
    ];
    let out = util::binary()
        .args(args)
        .env_remove("SCRUBGATE_CONFIG")
        .env_remove("SCRUBGATE_CHROMIUM")
        .env("PATH", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "scrubgate: --format pdf needs Chromium (Debian: apt-get install chromium; or set \
         SCRUBGATE_CHROMIUM to its path); --format html writes the same report"
    );
    assert!(!pdf.exists());
    // Where Chromium is installed, the same command prints the page.
    let Some(chromium) = chromium("the PDF half of the_pdf_report") else {
        return;
    };
    let out = util::binary()
        .args(args)
        .env_remove("SCRUBGATE_CONFIG")
        .env("SCRUBGATE_CHROMIUM", chromium)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read(&pdf).unwrap().starts_with(b"%PDF-"));
}

/// Chromium, when installed (CI installs it and sets SCRUBGATE_TEST_REQUIRE_CHROMIUM=1).
fn chromium(test: &str) -> Option<&'static str> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    if found.is_none() {
        assert!(
            std::env::var("SCRUBGATE_TEST_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
            "SCRUBGATE_TEST_REQUIRE_CHROMIUM=1 but no Chromium installed"
        );
        eprintln!("SKIPPED {test}: no Chromium installed (apt-get install chromium)");
    }
    found
}

#[test]
fn the_html_report_renders_in_chromium_without_console_messages() {
    let Some(chromium) = chromium("the_html_report_renders_in_chromium") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let trail = dir.path().join("audit.jsonl");
    let timestamps: Vec<String> = (0..8).map(|i| now_minus_days(8 - i)).collect();
    synthetic_trail(&trail, &timestamps);
    let html = dir.path().join("report.html");
    let out = util::binary()
        .args([
            "audit",
            "report",
            "-o",
            html.to_str().unwrap(),
            trail.to_str().unwrap(),
        ])
        .env_remove("SCRUBGATE_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(out.status.success());
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    // Console messages (script errors, failed loads) are logged as CONSOLE(…) lines.
    assert!(!log.contains("CONSOLE"), "{log}");
    // The page as Chromium parsed it: one data point per day in both time charts, one bar
    // per rule and drop reason.
    let chart = |id: &str| {
        dom.split(&format!("id=\"{id}\""))
            .nth(1)
            .and_then(|rest| rest.split("</svg>").next())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(chart("outcomes").matches("class=\"bucket\"").count(), 8);
    assert_eq!(chart("redactions").matches("class=\"bucket\"").count(), 8);
    assert_eq!(chart("rules").matches("class=\"row\"").count(), 1);
    assert_eq!(chart("drops").matches("class=\"row\"").count(), 0);
    assert!(dom.contains("every chain intact"));
}

#[test]
fn check_config_refuses_shipping_without_a_database_url() {
    let dir = tempfile::tempdir().unwrap();
    let config = util::write_config(
        dir.path(),
        "http://127.0.0.1:9",
        "[audit.postgres]\nenabled = true\n",
    );
    let check = |envs: &[(&str, &str)]| {
        let mut command = util::binary();
        command
            .args(["check-config", "--config", config.to_str().unwrap()])
            .env_remove("SCRUBGATE_CONFIG")
            .env_remove("SCRUBGATE_AUDIT_DATABASE_URL");
        for (key, value) in envs {
            command.env(key, value);
        }
        let out = command.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        )
    };
    assert_eq!(
        check(&[]),
        (
            Some(2),
            "scrubgate: invalid configuration: audit.postgres.enabled: no database URL: set \
             SCRUBGATE_AUDIT_DATABASE_URL or audit.postgres.url_file"
                .to_owned()
        )
    );
    let (code, err) = check(&[(
        "SCRUBGATE_AUDIT_DATABASE_URL",
        "postgres://a@127.0.0.1:1/db",
    )]);
    assert_eq!(code, Some(0), "{err}");
}

#[tokio::test]
async fn a_stopping_replica_ships_its_last_records_before_it_exits() {
    let Some(pg) = PgCluster::start("a_stopping_replica_ships_its_last_records") else {
        return;
    };
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let trail = dir.path().join("audit").join("audit.jsonl");
    let writer = migrated(&pg, None).await;
    // The background shipper looks only once a minute: only the final pass can ship in time.
    let config = util::write_config(
        dir.path(),
        &upstream.url(),
        "[audit.postgres]\nenabled = true\ninstance_id = \"pod-stop\"\npoll_interval_ms = 60000\n",
    );
    let envs = [
        ("SCRUBGATE_AUDIT__PATH", trail.to_str().unwrap()),
        ("SCRUBGATE_AUDIT_DATABASE_URL", writer.as_str()),
    ];
    let mut proxy = ServeProcess::start(&config, &envs);
    // Let the background shipper find its place and go to sleep.
    for _ in 0..100 {
        if proxy
            .logs()
            .iter()
            .any(|line| line.contains("audit shipper resumes"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for n in 0..5 {
        assert_eq!(post_event(&proxy, n).await, 200);
    }
    let admin = pg.admin().await;
    assert_eq!(count(&admin, "pod-stop").await, 0);
    let status = std::process::Command::new("kill")
        .args(["-TERM", &proxy.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exited = proxy.child.wait().unwrap();
    assert!(exited.success(), "{exited}");
    assert_eq!(count(&admin, "pod-stop").await, 5);
    assert!(proxy.logs().iter().any(|line| {
        line.contains("audit trail shipped to PostgreSQL before exit")
            && line.contains("\"shipped\":5")
    }));
}
