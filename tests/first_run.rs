//! What a new user meets first, tried as they would: config mistakes in the file and the
//! environment, offline scrubbing without a config, `audit export` on a wrong path, the
//! README's commands against `--help`, and the Docker build files.

use std::path::Path;

use crate::util;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn run(args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = util::binary();
    command
        .args(args)
        .env_remove("SCRUBGATE_CONFIG")
        .env_remove("SCRUBGATE_HASH_KEY");
    for (k, v) in envs {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

const PROJECT: &str =
    "[[projects]]\npublic_key = \"e12d836b15bb49d7bbf99e64295d995b\"\nproject_id = 1\n";

#[test]
fn config_errors_name_file_line_and_the_closest_key_without_figment_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "c.toml",
        &format!("[server]\ntunnel_path = \"/t\"\nlistne = \"0.0.0.0:3000\"\n\n{PROJECT}"),
    );
    let (code, _, stderr) = run(&["check-config", "--config", &path], &[]);
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        format!("scrubgate: invalid configuration: {path}:3: server.listne: unknown key `listne`; did you mean `listen`?\n")
    );
    let path = write(
        dir.path(),
        "d.toml",
        &format!("[delivery]\nmode = \"asynk\"\n\n{PROJECT}"),
    );
    let (code, _, stderr) = run(&["check-config", "--config", &path], &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains(&format!(
            "{path}:2: delivery.mode: unknown value `asynk`; did you mean `async`?"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("default."), "{stderr}");
    // A mistyped key in the environment names the variable.
    let good = write(dir.path(), "good.toml", PROJECT);
    let (code, _, stderr) = run(
        &["check-config", "--config", &good],
        &[("SCRUBGATE_SERVER__LISTNE", "0.0.0.0:3000")],
    );
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        "scrubgate: invalid configuration: environment variable SCRUBGATE_SERVER__LISTNE: server.listne: unknown key `listne`; did you mean `listen`?\n"
    );
    let (code, _, stderr) = run(
        &["check-config", "--config", &good],
        &[("SCRUBGATE_DEFAULTS__SERVER__LISTNE", "0.0.0.0:3000")],
    );
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        "scrubgate: invalid configuration: environment variable SCRUBGATE_DEFAULTS__SERVER__LISTNE: server.listne: unknown key `listne`; did you mean `listen`?\n"
    );
}

#[test]
fn a_scrubgate_variable_that_is_no_setting_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.toml", PROJECT);
    let (code, stdout, stderr) = run(
        &["check-config", "--config", &good],
        &[("SCRUBGATE_SERVER_LISTEN", "0.0.0.0:4000")],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("scrubgate: warning: environment variable SCRUBGATE_SERVER_LISTEN is not a scrubgate setting and is ignored; settings take two underscores between section and key: SCRUBGATE_SERVER__LISTEN\n"),
        "{stderr}"
    );
    assert!(stdout.contains("listen = \"127.0.0.1:3000\""), "{stdout}");
    // The variables scrubgate reads itself are no such mistake.
    let (code, _, stderr) = run(
        &["check-config", "--config", &good],
        &[("SCRUBGATE_HASH_KEY", "0123456789abcdef0123")],
    );
    assert_eq!(code, 0);
    assert!(!stderr.contains("warning"), "{stderr}");
}

#[test]
fn image_defaults_sit_below_the_config_file_and_the_environment_above_it() {
    let dir = tempfile::tempdir().unwrap();
    let defaults = ("SCRUBGATE_DEFAULTS__SERVER__LISTEN", "0.0.0.0:3000");
    let listen = |stdout: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with("listen = "))
            .unwrap()
            .to_owned()
    };
    // The image's own config (the example) leaves listen to the image default.
    let example = format!("{ROOT}/config.toml.example");
    let (code, stdout, stderr) = run(&["check-config", "--config", &example], &[defaults]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(listen(&stdout), "listen = \"0.0.0.0:3000\"");
    // A mounted config's value wins over the image default...
    let mounted = write(
        dir.path(),
        "mounted.toml",
        &format!("[server]\nlisten = \"127.0.0.1:4000\"\n\n{PROJECT}"),
    );
    let (_, stdout, _) = run(&["check-config", "--config", &mounted], &[defaults]);
    assert_eq!(listen(&stdout), "listen = \"127.0.0.1:4000\"");
    // ...and an explicit environment override wins over both.
    let (_, stdout, _) = run(
        &["check-config", "--config", &mounted],
        &[defaults, ("SCRUBGATE_SERVER__LISTEN", "127.0.0.1:5000")],
    );
    assert_eq!(listen(&stdout), "listen = \"127.0.0.1:5000\"");
}

#[test]
fn scrub_without_a_config_uses_the_built_in_defaults() {
    let input = format!("{ROOT}/fixtures/python-exception-with-locals/input.envelope");
    let (code, stdout, stderr) = run(&["scrub", &input], &[]);
    assert_eq!(code, 0, "{stderr}");
    let envelope =
        scrubgate::decode::Envelope::parse(stdout.clone().into_bytes().into(), &Default::default())
            .unwrap();
    assert_eq!(envelope.items().len(), 1);
    for planted in ["alice@example.com", "4111 1111 1111 1111"] {
        assert!(!stdout.contains(planted), "{planted} survived");
    }
    assert!(stderr.contains("no HMAC key configured"), "{stderr}");
    // A config without [[projects]] is fine for scrubbing too.
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "scrub.toml", "[log]\nlevel = \"warn\"\n");
    let (code, stdout, stderr) = run(&["scrub", "--config", &path, &input], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains("alice@example.com"));
}

#[test]
fn audit_export_checks_its_inputs_before_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.jsonl");
    let missing = missing.to_str().unwrap();
    let (code, stdout, stderr) = run(&["audit", "export", missing], &[]);
    assert_eq!(code, 2);
    assert_eq!(stdout, "", "nothing written before the error");
    assert!(
        stderr.contains(&format!("cannot read audit file {missing}")),
        "{stderr}"
    );
    let empty = write(dir.path(), "audit.jsonl", "");
    let (code, stdout, stderr) = run(
        &[
            "audit",
            "export",
            "--since",
            "2026-02-01",
            "--until",
            "2026-01-01",
            &empty,
        ],
        &[],
    );
    assert_eq!(code, 2);
    assert_eq!(stdout, "");
    assert_eq!(stderr, "scrubgate: --since must be before --until\n");
    let (code, stdout, _) = run(&["audit", "export", &empty], &[]);
    assert_eq!(code, 0);
    assert_eq!(stdout, "[\n]\n");
}

/// One README row's flags and positional arguments, or `--help`'s.
#[derive(Debug, PartialEq)]
struct Usage {
    flags: Vec<String>,
    /// `(name, required)`.
    positionals: Vec<(String, bool)>,
}

fn readme_usage(row: &str) -> Usage {
    let mut flags = Vec::new();
    let mut positionals = Vec::new();
    let mut rest = row;
    while let Some(start) = rest.find(|c: char| !c.is_whitespace()) {
        rest = &rest[start..];
        let (token, after) = if rest.starts_with('[') {
            let end = rest.find(']').unwrap() + 1;
            (&rest[..end], &rest[end..])
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        };
        rest = after;
        let optional = token.starts_with('[');
        let inner = token.trim_start_matches('[').trim_end_matches(']');
        if inner.starts_with("--") {
            flags.push(inner.split(' ').next().unwrap().to_owned());
        } else {
            let name = inner.trim_end_matches('…').replace("\\|", "|");
            positionals.push((name, !optional));
        }
    }
    flags.sort();
    Usage { flags, positionals }
}

fn help_usage(help: &str) -> Usage {
    let usage = help
        .lines()
        .find_map(|l| l.strip_prefix("Usage: "))
        .unwrap();
    let positionals = usage
        .split(' ')
        .filter(|t| *t != "[OPTIONS]" && (t.starts_with('<') || t.starts_with('[')))
        .map(|t| {
            let t = t.trim_end_matches("...");
            (
                t.trim_matches(|c| "<>[]".contains(c)).to_owned(),
                t.starts_with('<'),
            )
        })
        .collect();
    let mut flags: Vec<String> = help
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let l = l
                .strip_prefix("-")
                .filter(|_| l.chars().nth(2) == Some(','))
                .map_or(l, |_| l[3..].trim_start());
            l.starts_with("--")
                .then(|| l.split([' ', '=']).next().unwrap().to_owned())
        })
        .filter(|f| f != "--help" && f != "--version")
        .collect();
    flags.sort();
    Usage { flags, positionals }
}

#[test]
fn the_readme_commands_agree_with_help() {
    let readme = std::fs::read_to_string(format!("{ROOT}/README.md")).unwrap();
    let rows: Vec<&str> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `scrubgate "))
        .map(|l| &l[..l.find("` |").unwrap()])
        .collect();
    let subcommands = [
        "serve",
        "scrub",
        "check-config",
        "test",
        "audit verify",
        "audit export",
        "audit report",
        "audit migrate",
        "audit ship",
    ];
    assert_eq!(rows.len(), subcommands.len(), "{rows:?}");
    for (row, sub) in rows.iter().zip(subcommands) {
        let args = row.strip_prefix(sub).unwrap_or_else(|| panic!("{row}"));
        let mut argv: Vec<&str> = sub.split(' ').collect();
        argv.push("--help");
        let (code, help, _) = run(&argv, &[]);
        assert_eq!(code, 0);
        let mut documented = readme_usage(args);
        let actual = help_usage(&help);
        // `audit verify` takes the global --config but ignores it; the README says so.
        if sub == "audit verify" {
            assert!(help.contains("`--config` is ignored"), "{help}");
            assert!(readme.contains("Needs no config (`--config` is ignored)"));
            documented.flags.push("--config".to_owned());
            documented.flags.sort();
        }
        assert_eq!(
            documented, actual,
            "README row `{row}` vs {sub} --help:\n{help}"
        );
    }
}

#[test]
fn docker_build_context_and_healthcheck() {
    let dockerfile = std::fs::read_to_string(format!("{ROOT}/Dockerfile")).unwrap();
    let ignore = std::fs::read_to_string(format!("{ROOT}/.dockerignore")).unwrap();
    // .dockerignore semantics: patterns in order, `!` re-includes, the last match wins.
    let patterns: Vec<(bool, &str)> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.strip_prefix('!') {
            Some(rest) => (false, rest.trim_end_matches('/')),
            None => (true, l.trim_end_matches('/')),
        })
        .collect();
    let ignored = |path: &str| {
        let mut ignored = false;
        for (exclude, pattern) in &patterns {
            let pattern = pattern.trim_start_matches("**/");
            let hit = path == pattern
                || path.starts_with(&format!("{pattern}/"))
                || path.contains(&format!("/{pattern}/"));
            if hit {
                ignored = *exclude;
            }
        }
        ignored
    };
    assert!(ignored("target"), "target/ must stay out of the context");
    assert!(ignored("target/debug/scrubgate"));
    assert!(ignored("fuzz/target/x"));
    assert!(ignored(".git"));
    // The prebuilt image's binary is the one exception.
    const PREBUILT: &str = "target/release/scrubgate";
    assert!(!ignored(PREBUILT));
    // Everything the build copies from the context exists (the prebuilt binary once built)
    // and is not ignored.
    let mut copied = Vec::new();
    for line in dockerfile.lines().filter(|l| l.starts_with("COPY ")) {
        if line.contains("--from=") {
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().skip(1).collect();
        for source in &parts[..parts.len() - 1] {
            assert!(
                *source == PREBUILT || Path::new(ROOT).join(source).exists(),
                "{source} missing"
            );
            assert!(!ignored(source), "{source} is copied but ignored");
            copied.push(*source);
        }
    }
    assert_eq!(
        copied,
        [
            "Cargo.toml",
            "Cargo.lock",
            "src",
            "benches",
            "tests",
            "config.toml.example",
            PREBUILT
        ]
    );
    // The default target (the last stage) compiles scrubgate in the build stage.
    let stages: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(stages.last(), Some(&"FROM runtime AS image"));
    assert!(dockerfile
        .ends_with("COPY --from=build /src/target/release/scrubgate /usr/local/bin/scrubgate\n"));
    // The health check asks the admin listener, plain HTTP on loopback, at its default.
    let admin = scrubgate::config::AdminSettings::default().listen;
    assert!(
        dockerfile.contains(&format!("\"http://{admin}/healthz\"")),
        "{dockerfile}"
    );
    // An image default must not override a mounted config.
    assert!(!dockerfile
        .lines()
        .any(|l| !l.starts_with('#') && l.contains("SCRUBGATE_SERVER__LISTEN")));
    assert!(dockerfile.contains("SCRUBGATE_DEFAULTS__SERVER__LISTEN=0.0.0.0:3000"));
    assert!(dockerfile.contains("\nUSER 10001:10001\n"));
    // The README's docker run says where its config comes from.
    let readme = std::fs::read_to_string(format!("{ROOT}/README.md")).unwrap();
    assert!(readme.contains("cp config.toml.example config.toml"));
}
