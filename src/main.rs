//! The `scrubgate` command line. Every subcommand loads and validates the config the same way,
//! so `check-config` passing means `serve` will start.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// glibc malloc was about a fifth of the proxy's CPU profile under load (many short-lived
/// JSON values per request); mimalloc's thread-local free lists cut that (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use scrubgate::config::{Config, CONFIG_PATH_ENV};

/// A Sentry-compatible ingest proxy that scrubs PII/PHI before events leave your network.
#[derive(Debug, Parser)]
#[command(name = "scrubgate", version, about)]
struct Cli {
    /// Config file (TOML). Environment variables `SCRUBGATE_…` (with `__` for nesting)
    /// override it.
    #[arg(long, short, global = true, env = CONFIG_PATH_ENV, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy until SIGTERM/SIGINT.
    Serve,
    /// Scrub one envelope offline (a file or `-` for stdin) and print the result to stdout.
    Scrub {
        /// The envelope to scrub, or `-` for stdin.
        #[arg(value_name = "FILE|-")]
        input: String,
        /// Print what was redacted, by path and rule (never the values), to stderr.
        #[arg(long)]
        explain: bool,
        /// Instead of the scrubbed output, print what the candidate rule set in this file (a
        /// `[scrub]` table) would redact differently from the config's: `+` added, `-`
        /// removed, per path pattern and rule, never values.
        #[arg(long, value_name = "CANDIDATE.toml", conflicts_with = "explain")]
        compare: Option<PathBuf>,
    },
    /// Validate the config and print the effective settings with secrets masked.
    CheckConfig,
    /// Run golden-file scrubbing fixtures: every subfolder of DIR holds `input.envelope` (or
    /// `input.json`), `expected.envelope` (or `expected.json`) and optionally a `config.toml`
    /// overlay. Fixtures always use a fixed test HMAC key.
    Test {
        /// Rewrite the expected files from the current output.
        #[arg(long)]
        update: bool,
        /// Fixture directory.
        #[arg(default_value = "fixtures")]
        dir: PathBuf,
    },
    /// Check or export the audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Verify the hash chain of audit files (each with its rotated siblings); exits 1 and
    /// names the first broken record on tampering. For files it needs no config (`--config` is ignored),
    /// so a reviewer can verify a copied trail anywhere; with --postgres it reads `[audit]`.
    Verify {
        /// Verify the chains in PostgreSQL (URL from SCRUBGATE_AUDIT_DATABASE_URL or
        /// `audit.postgres.url_file`) instead of files: every instance, gaps, forks, edits and
        /// anchors.
        #[arg(long)]
        postgres: bool,
        /// With --postgres: only this instance's chain.
        #[arg(long, requires = "postgres")]
        instance: Option<String>,
        /// Audit files (the active file pulls in its rotated files).
        #[arg(
            required_unless_present = "postgres",
            conflicts_with = "postgres",
            value_name = "PATH"
        )]
        paths: Vec<PathBuf>,
    },
    /// A compliance report over the trail files or PostgreSQL: outcomes and redactions over
    /// time, drops by reason, projects, redacted path patterns, chain verification, retention
    /// and the policies in force; one self-contained HTML page, or JSON.
    Report {
        /// Inclusive start: YYYY-MM-DD (UTC) or an RFC 3339 timestamp.
        #[arg(long)]
        since: Option<String>,
        /// Exclusive end: YYYY-MM-DD (UTC) or an RFC 3339 timestamp.
        #[arg(long)]
        until: Option<String>,
        /// Only this project id.
        #[arg(long)]
        project: Option<u64>,
        #[arg(long, value_enum, default_value = "html")]
        format: ReportFormatArg,
        /// Write here instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Read the records from PostgreSQL (all instances).
        #[arg(long)]
        postgres: bool,
        /// Audit files; default: `audit.path` from the config, with its rotated files.
        #[arg(value_name = "PATH", conflicts_with = "postgres")]
        paths: Vec<PathBuf>,
    },
    /// Create or upgrade the PostgreSQL schema (tables, partitions functions, roles); run by
    /// an operator with a role that may create them, never implicitly at start.
    Migrate,
    /// Ship the local trail to PostgreSQL now and exit (a final flush, or a backfill); `serve`
    /// does this continuously when `audit.postgres.enabled`.
    Ship,
    /// Export records in a time window for a compliance review.
    Export {
        /// Inclusive start: YYYY-MM-DD (UTC) or an RFC 3339 timestamp.
        #[arg(long)]
        since: Option<String>,
        /// Exclusive end: YYYY-MM-DD (UTC) or an RFC 3339 timestamp.
        #[arg(long)]
        until: Option<String>,
        #[arg(long, value_enum, default_value = "json")]
        format: ExportFormatArg,
        /// Only this project id.
        #[arg(long)]
        project: Option<u64>,
        /// Read the records from PostgreSQL (all instances, in time order).
        #[arg(long)]
        postgres: bool,
        /// Audit files; default: `audit.path` from the config, with its rotated files.
        #[arg(value_name = "PATH", conflicts_with = "postgres")]
        paths: Vec<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ReportFormatArg {
    Html,
    /// The HTML page printed by headless Chromium (needs `chromium`).
    Pdf,
    Json,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ExportFormatArg {
    Json,
    Csv,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let path = cli.config.as_deref();
    match cli.command {
        // Fixtures and audit files need no [[projects]]: they load only the settings they use.
        Command::Test { dir, update } => test_fixtures(path, &dir, update),
        Command::Audit { command } => audit(&command, path),
        Command::Serve => with_config(path, Config::load, |config, warnings| {
            serve(config, cli.config.clone(), &warnings)
        }),
        Command::CheckConfig => with_config(path, Config::load, |config, warnings| {
            print_warnings(&warnings);
            print!("{}", config.to_masked_toml());
            eprintln!("configuration OK ({} project(s))", config.projects.len());
            ExitCode::SUCCESS
        }),
        // Offline scrubbing needs no [[projects]]: without a config it runs on the built-in
        // defaults (the `hipaa` profile).
        Command::Scrub {
            input,
            explain,
            compare,
        } => with_config(path, Config::load_offline, |config, warnings| {
            print_warnings(&warnings);
            if let Some(candidate) = compare {
                return compare_candidate(&config, &candidate, &input);
            }
            if config.hash_key_is_ephemeral {
                eprintln!("scrubgate: note: no HMAC key configured (SCRUBGATE_HASH_KEY or scrub.hash_key_file): pseudonyms use a random key for this run");
            }
            scrub(&config, &input, explain)
        }),
    }
}

/// Runs `command` on the configuration `load` builds, with warnings about the environment,
/// or exits 2 naming what is wrong with it.
fn with_config(
    path: Option<&std::path::Path>,
    load: impl FnOnce(Option<&std::path::Path>) -> Result<Config, scrubgate::config::ConfigError>,
    command: impl FnOnce(Config, Vec<String>) -> ExitCode,
) -> ExitCode {
    match load(path) {
        Ok(config) => {
            let known = [config.file.scrub.hash_key_env.as_str()];
            let warnings =
                scrubgate::config::unknown_env_vars(std::env::vars().map(|(name, _)| name), &known);
            command(config, warnings)
        }
        Err(error) => {
            eprintln!("scrubgate: invalid configuration: {error}");
            ExitCode::from(2)
        }
    }
}

fn print_warnings(warnings: &[String]) {
    for warning in warnings {
        eprintln!("scrubgate: warning: {warning}");
    }
}

/// Threads for blocking work (spool appends and reads, file delivery, large scrubs). Each
/// thread keeps its own allocator heap, so tokio's default of up to 512 let a burst of
/// concurrent spool writes leave ~100 MB behind in idle threads (peak RSS 242 MB → 111 MB in
/// the drain-after-burst load of BENCHMARKS.md); spool writes are group-committed, so 16
/// writers waiting on one `fdatasync` cost no throughput.
const BLOCKING_THREADS: usize = 16;

fn serve(config: Config, path: Option<PathBuf>, warnings: &[String]) -> ExitCode {
    scrubgate::logging::init(&config.file.log);
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("scrubgate: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(scrubgate::app::run(config, path)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error, "cannot start");
            eprintln!("scrubgate: {error}");
            ExitCode::FAILURE
        }
    }
}

/// A file's bytes, or stdin's for `-`.
fn read_input(input: &str) -> Result<Vec<u8>, ExitCode> {
    let mut body = Vec::new();
    let read = if input == "-" {
        std::io::stdin().read_to_end(&mut body).map(|_| ())
    } else {
        std::fs::read(input).map(|bytes| body = bytes)
    };
    match read {
        Ok(()) => Ok(body),
        Err(error) => {
            eprintln!("scrubgate: cannot read {input}: {error}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// `scrub --compare`: the same input through the config's rules and the candidate's, and
/// only the difference printed (the server records the same for sampled envelopes).
fn compare_candidate(config: &Config, candidate: &std::path::Path, input: &str) -> ExitCode {
    use scrubgate::pipeline::candidate;
    let candidate = match scrubgate::config::load_candidate(candidate, config.hash_key.clone()) {
        Ok(candidate) => candidate,
        Err(error) => {
            eprintln!("scrubgate: invalid candidate: {error}");
            return ExitCode::from(2);
        }
    };
    let body = match read_input(input) {
        Ok(body) => body,
        Err(code) => return code,
    };
    let diff = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(event) if event.is_object() => {
            let kind = scrubgate::fixtures::guess_kind(&event);
            let active = config.scrubber.scrub_value(kind, &mut event.clone());
            let shadow = candidate.scrubber.scrub_value(kind, &mut event.clone());
            candidate::diff(active.redactions.iter(), shadow.redactions.iter())
        }
        _ => {
            let limits = scrubgate::decode::EnvelopeLimits {
                max_items: config.file.limits.max_envelope_items,
            };
            let input_envelope = match scrubgate::decode::Envelope::parse(body.into(), &limits) {
                Ok(envelope) => envelope,
                Err(error) => {
                    eprintln!("scrubgate: {input}: {error}");
                    return ExitCode::FAILURE;
                }
            };
            let mut envelope = input_envelope.clone();
            let active = scrubgate::pipeline::scrub_envelope(
                &mut envelope,
                &config.scrubber,
                &config.policy,
            );
            candidate::compare_envelope(
                &input_envelope,
                &candidate.scrubber,
                &config.policy,
                &active,
                &candidate.hash,
            )
        }
    };
    if std::io::stdout()
        .lock()
        .write_all(candidate::summary(&diff).as_bytes())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn scrub(config: &Config, input: &str, explain: bool) -> ExitCode {
    let body = match read_input(input) {
        Ok(body) => body,
        Err(code) => return code,
    };
    if let Ok(mut event) = serde_json::from_slice::<serde_json::Value>(&body) {
        // A bare event (or other payload) JSON rather than an envelope.
        if event.is_object() {
            let kind = scrubgate::fixtures::guess_kind(&event);
            let report = config.scrubber.scrub_value(kind, &mut event);
            let mut out = serde_json::to_vec(&event).unwrap_or_default();
            out.push(b'\n');
            if std::io::stdout().lock().write_all(&out).is_err() {
                return ExitCode::FAILURE;
            }
            if explain {
                for r in &report.redactions {
                    eprintln!(
                        "{} <- {} ({}, {}x)",
                        r.path,
                        r.rule,
                        r.method.as_str(),
                        r.count
                    );
                }
                eprintln!("{} redaction(s)", report.total());
            }
            return ExitCode::SUCCESS;
        }
    }
    let limits = scrubgate::decode::EnvelopeLimits {
        max_items: config.file.limits.max_envelope_items,
    };
    let mut envelope = match scrubgate::decode::Envelope::parse(body.into(), &limits) {
        Ok(envelope) => envelope,
        Err(error) => {
            eprintln!("scrubgate: {input}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let report =
        scrubgate::pipeline::scrub_envelope(&mut envelope, &config.scrubber, &config.policy);
    let mut stdout = std::io::stdout().lock();
    if stdout.write_all(&envelope.to_bytes()).is_err() {
        return ExitCode::FAILURE;
    }
    if explain {
        eprint!("{}", scrubgate::pipeline::explain(&report));
    }
    ExitCode::SUCCESS
}

fn test_fixtures(
    config: Option<&std::path::Path>,
    dir: &std::path::Path,
    update: bool,
) -> ExitCode {
    let base = match scrubgate::config::load_file(config) {
        Ok(file) => file,
        Err(error) => {
            eprintln!("scrubgate: invalid configuration: {error}");
            return ExitCode::from(2);
        }
    };
    let summary = match scrubgate::fixtures::run_dir(dir, &base, update) {
        Ok(summary) => summary,
        Err(error) => {
            eprintln!("scrubgate: {error}");
            return ExitCode::from(2);
        }
    };
    for case in &summary.cases {
        use scrubgate::fixtures::CaseOutcome;
        match &case.outcome {
            CaseOutcome::Passed => {}
            CaseOutcome::Updated => println!("updated {}", case.name),
            CaseOutcome::Failed(diff) => {
                println!("FAIL {} (- expected, + actual)", case.name);
                print!("{diff}");
            }
            CaseOutcome::Error(problem) => println!("ERROR {}: {problem}", case.name),
        }
    }
    println!("{}", summary.line());
    if summary.failed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The `--since/--until/--project` filter, or exit 2 naming the bad flag.
fn audit_filter(
    since: Option<&str>,
    until: Option<&str>,
    project: Option<u64>,
) -> Result<scrubgate::audit::ExportFilter, ExitCode> {
    let parse = |value: Option<&str>, flag: &str| match value {
        None => Ok(None),
        Some(v) => scrubgate::audit::parse_time(v)
            .map(Some)
            .map_err(|problem| format!("--{flag}: {problem}")),
    };
    match (parse(since, "since"), parse(until, "until")) {
        (Ok(since), Ok(until)) => Ok(scrubgate::audit::ExportFilter {
            since,
            until,
            project,
        }),
        (Err(problem), _) | (_, Err(problem)) => {
            eprintln!("scrubgate: {problem}");
            Err(ExitCode::from(2))
        }
    }
}

fn report_files(
    config: Option<&std::path::Path>,
    paths: &[PathBuf],
    filter: &scrubgate::audit::ExportFilter,
    mut generated: scrubgate::audit::report::Generated,
) -> Result<scrubgate::audit::report::Report, ExitCode> {
    use scrubgate::audit;
    let settings = scrubgate::config::load_file(config).map(|file| file.audit);
    let paths = if paths.is_empty() {
        match &settings {
            Ok(settings) => vec![settings.path.clone()],
            Err(error) => {
                eprintln!("scrubgate: invalid configuration: {error}");
                return Err(ExitCode::from(2));
            }
        }
    } else {
        paths.to_vec()
    };
    let files = audit::expand(&paths).map_err(|error| {
        eprintln!("scrubgate: cannot list audit files: {error}");
        ExitCode::from(2)
    })?;
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    generated.source = format!("audit files {} ({} file(s))", names.join(", "), files.len());
    let retention = settings.ok().map(|s| s.retention_days);
    audit::report_files(&files, filter, generated, retention).map_err(|error| {
        eprintln!("scrubgate: {error}");
        ExitCode::FAILURE
    })
}

fn write_report(
    report: &scrubgate::audit::report::Report,
    format: ReportFormatArg,
    output: Option<&std::path::Path>,
) -> ExitCode {
    let bytes = match format {
        ReportFormatArg::Html => scrubgate::audit::report::render_html(report).into_bytes(),
        ReportFormatArg::Json => {
            let mut text = serde_json::to_string_pretty(report).unwrap_or_default();
            text.push('\n');
            text.into_bytes()
        }
        ReportFormatArg::Pdf => {
            let html = scrubgate::audit::report::render_html(report);
            match scrubgate::audit::report::html_to_pdf(&html) {
                Ok(pdf) => pdf,
                Err(error) => {
                    eprintln!("scrubgate: {error}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    let written = match output {
        Some(path) => std::fs::write(path, bytes),
        None => std::io::stdout().lock().write_all(&bytes),
    };
    match written {
        Ok(()) => {
            eprintln!("{} record(s) in the report", report.totals.records);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("scrubgate: cannot write the report: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `scrubgate audit …`. Needs no valid config: a reviewer can verify a copied trail anywhere.
fn audit(command: &AuditCommand, config: Option<&std::path::Path>) -> ExitCode {
    use scrubgate::audit;
    match command {
        AuditCommand::Verify {
            postgres: true,
            instance,
            ..
        } => audit_pg::verify(config, instance.as_deref()),
        AuditCommand::Migrate => audit_pg::migrate(config),
        AuditCommand::Report {
            since,
            until,
            project,
            format,
            output,
            postgres,
            paths,
        } => {
            let filter = match audit_filter(since.as_deref(), until.as_deref(), *project) {
                Ok(filter) => filter,
                Err(code) => return code,
            };
            let generated = audit::report::Generated {
                by: format!("scrubgate {}", env!("CARGO_PKG_VERSION")),
                command: std::env::args().collect::<Vec<_>>().join(" "),
                at: time::OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                source: String::new(),
            };
            let report = if *postgres {
                audit_pg::report(config, &filter, generated)
            } else {
                report_files(config, paths, &filter, generated)
            };
            match report {
                Ok(report) => write_report(&report, *format, output.as_deref()),
                Err(code) => code,
            }
        }
        AuditCommand::Ship => audit_pg::ship(config),
        AuditCommand::Verify { paths, .. } => {
            let files = match audit::expand(paths) {
                Ok(files) => files,
                Err(error) => {
                    eprintln!("scrubgate: cannot list audit files: {error}");
                    return ExitCode::from(2);
                }
            };
            match audit::verify_files(&files) {
                Ok(report) => {
                    let start = if report.starts_at_genesis {
                        "from the first record ever written"
                    } else {
                        "from a record whose predecessors were removed (retention)"
                    };
                    println!(
                        "OK: {} record(s) in {} file(s), chain intact {start}; head {}",
                        report.records,
                        report.files.len(),
                        report.head
                    );
                    ExitCode::SUCCESS
                }
                Err(broken) => {
                    eprintln!("TAMPERED: {broken}");
                    ExitCode::FAILURE
                }
            }
        }
        AuditCommand::Export {
            since,
            until,
            format,
            project,
            postgres,
            paths,
        } => {
            let parse = |value: &Option<String>, flag: &str| match value {
                None => Ok(None),
                Some(v) => audit::parse_time(v)
                    .map(Some)
                    .map_err(|problem| format!("--{flag}: {problem}")),
            };
            let filter = match (parse(since, "since"), parse(until, "until")) {
                (Ok(Some(since)), Ok(Some(until))) if since >= until => {
                    eprintln!("scrubgate: --since must be before --until");
                    return ExitCode::from(2);
                }
                (Ok(since), Ok(until)) => audit::ExportFilter {
                    since,
                    until,
                    project: *project,
                },
                (Err(problem), _) | (_, Err(problem)) => {
                    eprintln!("scrubgate: {problem}");
                    return ExitCode::from(2);
                }
            };
            let format = match format {
                ExportFormatArg::Json => audit::ExportFormat::Json,
                ExportFormatArg::Csv => audit::ExportFormat::Csv,
            };
            if *postgres {
                return audit_pg::export(config, &filter, format);
            }
            let files = if paths.is_empty() {
                let path = match scrubgate::config::load_file(config) {
                    Ok(file) => file.audit.path,
                    Err(error) => {
                        eprintln!("scrubgate: invalid configuration: {error}");
                        return ExitCode::from(2);
                    }
                };
                audit::expand(&[path])
            } else {
                audit::expand(paths)
            };
            let files = match files {
                Ok(files) => files,
                Err(error) => {
                    eprintln!("scrubgate: cannot list audit files: {error}");
                    return ExitCode::from(2);
                }
            };
            // Checked before the first byte of output: a failed export must not leave a
            // half-written `[` for a script to mistake for an empty result.
            if let Some(problem) = unreadable(&files) {
                eprintln!("scrubgate: {problem}");
                return ExitCode::from(2);
            }
            let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
            let result = audit::export(&files, &filter, format, &mut stdout).and_then(|n| {
                stdout
                    .flush()
                    .map(|()| n)
                    .map_err(audit::ExportError::Write)
            });
            match result {
                Ok(count) => {
                    eprintln!("{count} record(s) exported");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("scrubgate: {error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The first audit file that cannot be opened for reading, described.
fn unreadable(files: &[PathBuf]) -> Option<String> {
    if files.is_empty() {
        return Some("no audit files to export".to_owned());
    }
    files.iter().find_map(|file| {
        std::fs::File::open(file)
            .err()
            .map(|error| format!("cannot read audit file {}: {error}", file.display()))
    })
}

/// `scrubgate audit … --postgres`, `audit migrate` and `audit ship`: the database commands.
/// They read `[audit]` from the config if there is one (no `[[projects]]` needed) and the URL
/// from `SCRUBGATE_AUDIT_DATABASE_URL` or `audit.postgres.url_file`. Exit 2 when the
/// database cannot be used, 1 when a chain is broken.
mod audit_pg {
    use std::io::Write;
    use std::path::Path;
    use std::process::ExitCode;

    use scrubgate::audit::{self, postgres, AuditSettings};

    fn settings(config: Option<&Path>) -> Result<AuditSettings, ExitCode> {
        match scrubgate::config::load_file(config) {
            Ok(file) => Ok(file.audit),
            Err(error) => {
                eprintln!("scrubgate: invalid configuration: {error}");
                Err(ExitCode::from(2))
            }
        }
    }

    fn block_on<F: std::future::Future<Output = ExitCode>>(future: F) -> ExitCode {
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime.block_on(future),
            Err(error) => {
                eprintln!("scrubgate: cannot start the runtime: {error}");
                ExitCode::FAILURE
            }
        }
    }

    fn failed(error: &postgres::PgError) -> ExitCode {
        eprintln!("scrubgate: {error}");
        ExitCode::from(2)
    }

    pub fn migrate(config: Option<&Path>) -> ExitCode {
        let settings = match settings(config) {
            Ok(settings) => settings,
            Err(code) => return code,
        };
        block_on(async move {
            let mut client = match postgres::connect(&settings.postgres).await {
                Ok(client) => client,
                Err(error) => return failed(&error),
            };
            let days = settings
                .postgres
                .retention_days
                .unwrap_or(settings.retention_days);
            match postgres::migrate(&mut client, days).await {
                Ok(applied) if applied.is_empty() => {
                    println!("schema up to date (retention {days} days)");
                    ExitCode::SUCCESS
                }
                Ok(applied) => {
                    let list: Vec<String> = applied.iter().map(ToString::to_string).collect();
                    println!(
                        "applied migration(s) {} (retention {days} days)",
                        list.join(", ")
                    );
                    ExitCode::SUCCESS
                }
                Err(error) => failed(&error),
            }
        })
    }

    pub fn ship(config: Option<&Path>) -> ExitCode {
        let settings = match settings(config) {
            Ok(settings) => settings,
            Err(code) => return code,
        };
        block_on(async move {
            match postgres::ship_once(&settings).await {
                Ok(count) => {
                    println!(
                        "{count} record(s) shipped for instance {}",
                        settings.postgres.instance_id()
                    );
                    ExitCode::SUCCESS
                }
                Err(error) => failed(&error),
            }
        })
    }

    pub fn verify(config: Option<&Path>, instance: Option<&str>) -> ExitCode {
        let settings = match settings(config) {
            Ok(settings) => settings,
            Err(code) => return code,
        };
        block_on(async move {
            let mut client = match postgres::connect(&settings.postgres).await {
                Ok(client) => client,
                Err(error) => return failed(&error),
            };
            let reports = match postgres::verify_postgres(&mut client, instance).await {
                Ok(reports) => reports,
                Err(error) => return failed(&error),
            };
            if reports.is_empty() {
                println!("no chains in PostgreSQL");
            }
            let mut intact = true;
            for report in &reports {
                if report.status.is_intact() {
                    println!("{report}");
                } else {
                    intact = false;
                    eprintln!("{report}");
                }
            }
            if intact {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        })
    }

    pub fn report(
        config: Option<&Path>,
        filter: &audit::ExportFilter,
        mut generated: audit::report::Generated,
    ) -> Result<audit::report::Report, ExitCode> {
        let settings = settings(config)?;
        generated.source = "PostgreSQL (every instance)".to_owned();
        let mut result = Err(ExitCode::from(2));
        let code = block_on(async {
            let mut client = match postgres::connect(&settings.postgres).await {
                Ok(client) => client,
                Err(error) => return failed(&error),
            };
            match postgres::report_postgres(&mut client, filter, generated).await {
                Ok(report) => {
                    result = Ok(report);
                    ExitCode::SUCCESS
                }
                Err(error) => failed(&error),
            }
        });
        result.map_err(|_| code)
    }

    pub fn export(
        config: Option<&Path>,
        filter: &audit::ExportFilter,
        format: audit::ExportFormat,
    ) -> ExitCode {
        let settings = match settings(config) {
            Ok(settings) => settings,
            Err(code) => return code,
        };
        block_on(async move {
            let mut client = match postgres::connect(&settings.postgres).await {
                Ok(client) => client,
                Err(error) => return failed(&error),
            };
            let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
            let result = postgres::export_postgres(&mut client, filter, format, &mut stdout).await;
            match result.map(|count| (count, stdout.flush())) {
                Ok((count, Ok(()))) => {
                    eprintln!("{count} record(s) exported");
                    ExitCode::SUCCESS
                }
                Ok((_, Err(error))) => {
                    eprintln!("scrubgate: cannot write the export: {error}");
                    ExitCode::FAILURE
                }
                Err(error) => failed(&error),
            }
        })
    }
}
