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
    },
    /// Validate the config and print the effective settings with secrets masked.
    CheckConfig,
    /// Run golden-file scrubbing fixtures (arrives with the scrub-engine issue).
    Test {
        /// Fixture directory.
        #[arg(default_value = "fixtures")]
        dir: PathBuf,
    },
    /// Query the audit trail (arrives with the audit issue).
    Audit,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("scrubgate: invalid configuration: {error}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Serve => serve(config, cli.config.clone()),
        Command::CheckConfig => {
            print!("{}", config.to_masked_toml());
            eprintln!("configuration OK ({} project(s))", config.projects.len());
            ExitCode::SUCCESS
        }
        Command::Scrub { input, explain } => scrub(&config, &input, explain),
        Command::Test { .. } | Command::Audit => {
            eprintln!("scrubgate: this subcommand is not available in this build yet");
            ExitCode::from(64)
        }
    }
}

fn serve(config: Config, path: Option<PathBuf>) -> ExitCode {
    scrubgate::logging::init(&config.file.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
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

fn scrub(config: &Config, input: &str, explain: bool) -> ExitCode {
    let mut body = Vec::new();
    let read = if input == "-" {
        std::io::stdin().read_to_end(&mut body).map(|_| ())
    } else {
        std::fs::read(input).map(|bytes| body = bytes)
    };
    if let Err(error) = read {
        eprintln!("scrubgate: cannot read {input}: {error}");
        return ExitCode::FAILURE;
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
