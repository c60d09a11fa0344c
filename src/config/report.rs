//! Config load errors and environment mistakes, told the way a person fixes them: the file
//! and line (or the environment variable) and the key as written, with the closest valid key
//! for a typo. figment's own messages name its profile (`default.server.listne`) and list
//! every valid key, which helps nobody find the line.

use std::path::Path;

use figment::error::Kind;
use figment::Source;

use super::ConfigFile;

/// The environment variable prefix for settings (`SCRUBGATE_SECTION__KEY`).
pub const ENV_PREFIX: &str = "SCRUBGATE_";
/// Image or package defaults (`SCRUBGATE_DEFAULTS__SECTION__KEY`): below the config file, so
/// a mounted file always wins over them.
pub const ENV_DEFAULTS_PREFIX: &str = "SCRUBGATE_DEFAULTS__";

/// One line per problem figment found.
pub fn describe(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|error| describe_one(&error))
        .collect::<Vec<_>>()
        .join("\n")
}

fn describe_one(error: &figment::Error) -> String {
    let mut path: Vec<&str> = error.path.iter().map(String::as_str).collect();
    // For an unknown key, figment's path may or may not end with the key itself.
    if let Kind::UnknownField(found, _) = &error.kind {
        if path.last() != Some(&found.as_str()) {
            path.push(found);
        }
    }
    let key = display_key(&path);
    let problem = match &error.kind {
        Kind::UnknownField(found, expected) => {
            let mut text = format!("unknown key `{found}`");
            if let Some(close) = closest(found, expected) {
                text.push_str(&format!("; did you mean `{close}`?"));
            }
            text
        }
        Kind::UnknownVariant(found, expected) => {
            let mut text = format!("unknown value `{found}`");
            match closest(found, expected) {
                Some(close) => text.push_str(&format!("; did you mean `{close}`?")),
                None => text.push_str(&format!("; expected one of: {}", expected.join(", "))),
            }
            text
        }
        other => other.to_string(),
    };
    let source = error.metadata.as_ref().and_then(|md| md.source.as_ref());
    // figment names an environment provider "`PREFIX` environment variable(s)".
    let env_prefix = error
        .metadata
        .as_ref()
        .filter(|md| md.name.contains("environment"))
        .map(|md| match md.name.split('`').nth(1) {
            Some(prefix) if prefix.starts_with(ENV_PREFIX) => prefix.to_owned(),
            _ => ENV_PREFIX.to_owned(),
        });
    let location = match source {
        Some(Source::File(file)) => Some(match line_of(file, &path) {
            Some(line) => format!("{}:{line}", file.display()),
            None => file.display().to_string(),
        }),
        _ => env_prefix.map(|prefix| format!("environment variable {}", env_name(&prefix, &path))),
    };
    match (location, key.is_empty()) {
        (Some(location), false) => format!("{location}: {key}: {problem}"),
        (Some(location), true) => format!("{location}: {problem}"),
        (None, false) => format!("{key}: {problem}"),
        (None, true) => problem,
    }
}

/// `projects.0.public_key` as written in messages elsewhere: `projects[0].public_key`.
fn display_key(path: &[&str]) -> String {
    let mut out = String::new();
    for part in path {
        if part.bytes().all(|b| b.is_ascii_digit()) && !part.is_empty() {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

fn env_name(prefix: &str, path: &[&str]) -> String {
    let joined: Vec<String> = path.iter().map(|p| p.to_ascii_uppercase()).collect();
    format!("{prefix}{}", joined.join("__"))
}

/// The 1-based line where `path`'s last key is set, found by following `[table]` headers.
/// Approximate on purpose (no dotted keys, inline tables): a hint, not a parser.
fn line_of(file: &Path, path: &[&str]) -> Option<usize> {
    let text = std::fs::read_to_string(file).ok()?;
    let named: Vec<&str> = path
        .iter()
        .copied()
        .filter(|p| !p.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    let (key, table) = named.split_last()?;
    let table = table.join(".");
    let mut current = String::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[') {
            let name = header.trim_start_matches('[');
            let name = name.split(']').next().unwrap_or_default();
            current = name.split('.').map(str::trim).collect::<Vec<_>>().join(".");
            if current == named.join(".") {
                return Some(index + 1);
            }
            continue;
        }
        let Some((name, _)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim().trim_matches('"');
        if current == table && name == *key {
            return Some(index + 1);
        }
    }
    None
}

/// The valid name closest to a typo, if it is close enough to be what was meant.
pub fn closest<'a>(found: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let found = found.to_ascii_lowercase();
    candidates
        .iter()
        .map(|candidate| (edit_distance(&found, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= (candidate.len() / 3).max(2))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance over bytes (keys are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitute.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

/// `SCRUBGATE_*` variables that are neither a setting nor one scrubgate reads otherwise:
/// most likely a setting with one underscore where two belong (`SCRUBGATE_SERVER_LISTEN`),
/// which would otherwise be ignored without a word. Variables with `__` need no check: an
/// unknown key there is already an error.
pub fn unknown_env_vars(
    vars: impl IntoIterator<Item = String>,
    also_known: &[&str],
) -> Vec<String> {
    let sections = sections();
    let section_names: Vec<&str> = sections.iter().map(String::as_str).collect();
    let mut warnings = Vec::new();
    for name in vars {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if rest.contains("__")
            || name == super::CONFIG_PATH_ENV
            || also_known.contains(&name.as_str())
        {
            continue;
        }
        let lower = rest.to_ascii_lowercase();
        let hint = section_names
            .iter()
            .find(|section| {
                lower
                    .strip_prefix(**section)
                    .is_some_and(|tail| tail.starts_with('_') && tail.len() > 1)
            })
            .map(|section| {
                let key = &rest[section.len() + 1..];
                format!(
                    "; settings take two underscores between section and key: {ENV_PREFIX}{}__{key}",
                    section.to_ascii_uppercase()
                )
            })
            .unwrap_or_default();
        warnings.push(format!(
            "environment variable {name} is not a scrubgate setting and is ignored{hint}"
        ));
    }
    warnings.sort();
    warnings
}

/// The top-level sections of the config file, from its defaults (so a new section is known
/// without a list to keep in step).
fn sections() -> Vec<String> {
    match toml::Value::try_from(ConfigFile::default()) {
        Ok(toml::Value::Table(table)) => table.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_key_is_suggested_only_when_close() {
        let keys = ["listen", "tunnel_path", "max_connections"];
        assert_eq!(closest("listne", &keys), Some("listen"));
        assert_eq!(closest("LISTEN", &keys), Some("listen"));
        assert_eq!(closest("max_conections", &keys), Some("max_connections"));
        assert_eq!(closest("bogus_key", &keys), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn keys_display_array_indices_like_validation_errors() {
        assert_eq!(
            display_key(&["projects", "0", "public_key"]),
            "projects[0].public_key"
        );
        assert_eq!(
            env_name(ENV_PREFIX, &["server", "listne"]),
            "SCRUBGATE_SERVER__LISTNE"
        );
    }

    #[test]
    fn env_vars_with_one_underscore_are_reported_with_the_fix() {
        let vars = [
            "SCRUBGATE_SERVER_LISTEN",
            "SCRUBGATE_SERVER__LISTEN",
            "SCRUBGATE_CONFIG",
            "SCRUBGATE_HASH_KEY",
            "SCRUBGATE_DEFAULTS__SERVER__LISTEN",
            "SCRUBGATE_WHATEVER",
            "PATH",
        ]
        .map(str::to_owned);
        assert_eq!(
            unknown_env_vars(vars, &["SCRUBGATE_HASH_KEY"]),
            vec![
                "environment variable SCRUBGATE_SERVER_LISTEN is not a scrubgate setting and is ignored; settings take two underscores between section and key: SCRUBGATE_SERVER__LISTEN".to_owned(),
                "environment variable SCRUBGATE_WHATEVER is not a scrubgate setting and is ignored".to_owned(),
            ]
        );
    }

    #[test]
    fn the_line_of_a_key_follows_table_headers() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[server]\nlisten = \"x\"\n\n[upstream]\nlisten = 1\n\n[[projects]]\npublic_key = \"k\"\n",
        )
        .unwrap();
        assert_eq!(line_of(&file, &["upstream", "listen"]), Some(5));
        assert_eq!(line_of(&file, &["server", "listen"]), Some(2));
        assert_eq!(line_of(&file, &["projects", "0", "public_key"]), Some(8));
        assert_eq!(line_of(&file, &["sever"]), None);
    }
}
