//! [`super::Scrubber::compile`] in named steps. Each step either checks one part of the
//! settings or builds one part of the engine, and each failure names the setting and,
//! where there is one, the rule: a config that compiles has no rule that can silently
//! keep a value.

use std::collections::{HashMap, HashSet};

use super::detectors::builtin::{Structural, Tier, BUILTINS};
use super::detectors::validate::Validator;
use super::detectors::{
    Check, DetectorSpec, HitKind, Scanner, ScannerError, Scope, Strength, CUSTOM_PATTERN_SIZE_LIMIT,
};
use super::formats::{hl7, Formats};
use super::hashing::FxBuild;
use super::keys::{KeyClass, KeyMatcher};
use super::redact::{self, Action, Redactor};
use super::rule_table::RuleTable;
use super::walk::{Engine, KnownKeys};
use super::{profile, HashKey, Method, ProfileName, RuleOverride, ScrubConfigError, ScrubSettings};

/// Size limit of a built-in pattern's compiled program.
const BUILTIN_SIZE_LIMIT: usize = 32 << 20;

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ScrubConfigError {
    ScrubConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

/// The whole compilation, step by step.
pub(super) fn compile(
    settings: &ScrubSettings,
    hash_key: HashKey,
) -> Result<Engine, ScrubConfigError> {
    let redactor = redactor(settings, hash_key)?;
    let known = rule_names();
    check_overrides(settings, &known)?;
    let cx = Actions {
        settings,
        redactor: &redactor,
    };
    let (deny, safe, cookie_names) = key_matchers(settings)?;
    let formats = formats(settings)?;
    let mut specs = builtin_specs(&cx);
    let builtin_count = specs.len();
    specs.extend(custom_specs(settings, &known, &redactor)?);
    let rule_at: Vec<String> = specs.iter().map(|s| s.rule.clone()).collect();
    let mut scanner =
        Scanner::compile(specs).map_err(|error| scanner_error(error, builtin_count, &rule_at))?;
    let rules = structural_rules(&cx);
    let class_actions = class_actions(&cx);
    let labels = Labels::collect(
        &redactor,
        scanner
            .actions()
            .chain(rules.actions())
            .chain(class_actions.values()),
    );
    scanner.set_inert(
        &labels.sorted(),
        &labels.pseudonym_prefixes,
        redact::HASH_HEX_LEN,
    );
    let cookies_allowlisted = cx.hipaa() && cx.enabled("cookie") != Some(false);
    let echo_enabled = cx.echo_enabled();
    let person_compound_keys = cx.hipaa();
    let mut engine = Engine {
        scanner,
        rules,
        echo_enabled,
        class_actions,
        deny,
        safe,
        cookie_names,
        redactor,
        label_max_len: labels.max_len(),
        label_first: labels.first_bytes(),
        labels: labels.replacements,
        phi_rules: phi_rules(),
        patient_rules: patient_rules()?,
        cookies_allowlisted,
        person_compound_keys,
        formats,
        structural: profile::SCHEMA_FIELDS.iter().copied().collect(),
        known_keys: KnownKeys::default(),
    };
    engine.seed_known_keys(profile::COMMON_KEYS);
    Ok(engine)
}

/// Step 1: how replacements are written and hashed.
fn redactor(settings: &ScrubSettings, hash_key: HashKey) -> Result<Redactor, ScrubConfigError> {
    if settings.label_format.is_empty() {
        return Err(invalid("label_format", "must not be empty"));
    }
    Redactor::new(&settings.label_format, hash_key).map_err(|problem| invalid("hash_key", problem))
}

/// Every rule name an override or a custom pattern can clash with.
fn rule_names() -> HashSet<String> {
    let mut known: HashSet<String> = BUILTINS.iter().map(|b| b.rule.to_owned()).collect();
    known.extend(Structural::ALL.iter().map(|r| r.name().to_owned()));
    known.extend(KeyClass::ALL.iter().map(|c| c.rule().to_owned()));
    known.insert("echo".to_owned());
    known
}

/// Step 2: `[scrub.detectors.<rule>]` names a rule that exists and sets nothing empty.
fn check_overrides(
    settings: &ScrubSettings,
    known: &HashSet<String>,
) -> Result<(), ScrubConfigError> {
    for (rule, o) in &settings.detectors {
        if !known.contains(rule) {
            return Err(ScrubConfigError::UnknownRule { rule: rule.clone() });
        }
        if o.label.as_deref() == Some("") {
            return Err(invalid(
                format!("detectors.{rule}.label"),
                "must not be empty",
            ));
        }
    }
    Ok(())
}

/// Step 3: the key denylist (profile plus `sensitive_keys`), the allowlist and the secret
/// cookie names.
fn key_matchers(
    settings: &ScrubSettings,
) -> Result<(KeyMatcher, KeyMatcher, KeyMatcher), ScrubConfigError> {
    let mut deny = KeyMatcher::default();
    for key in profile::SECRET_KEYS {
        deny.add(key, KeyClass::Secret);
    }
    if settings.profile == ProfileName::Hipaa {
        for (class, list) in profile::HIPAA_KEYS {
            for key in *list {
                deny.add(key, *class);
            }
        }
    }
    for (i, key) in settings.sensitive_keys.iter().enumerate() {
        if !deny.add(key, KeyClass::Custom) {
            return Err(invalid(format!("sensitive_keys[{i}]"), "empty key"));
        }
    }
    let mut safe = KeyMatcher::default();
    for (i, key) in settings.safe_keys.iter().enumerate() {
        if !safe.add(key, KeyClass::Custom) {
            return Err(invalid(format!("safe_keys[{i}]"), "empty key"));
        }
    }
    let mut cookie_names = KeyMatcher::default();
    for name in profile::SECRET_COOKIE_NAMES {
        cookie_names.add(&format!("={name}"), KeyClass::Secret);
    }
    Ok((deny, safe, cookie_names))
}

/// Step 3b: `[scrub.formats]`, with each site field checked (`ZPI-4`).
fn formats(settings: &ScrubSettings) -> Result<Formats, ScrubConfigError> {
    let f = &settings.formats;
    let hl7 = if f.hl7 {
        let mut phi_fields = Vec::new();
        for (i, field) in f.hl7_phi_fields.iter().enumerate() {
            let parsed = hl7::parse_field_ref(field).ok_or_else(|| {
                invalid(
                    format!("formats.hl7_phi_fields[{i}]"),
                    "expected a segment and field number such as `ZPI-4`",
                )
            })?;
            phi_fields.push(parsed);
        }
        Some(hl7::Hl7Options {
            redact_providers: f.redact_providers,
            phi_fields,
        })
    } else {
        None
    };
    Ok(Formats {
        hl7,
        x12: f.x12,
        fhir: f.fhir,
        cda: f.cda,
        redact_providers: f.redact_providers,
    })
}

/// The settings as they bear on one rule: its override and its action.
struct Actions<'a> {
    settings: &'a ScrubSettings,
    redactor: &'a Redactor,
}

impl Actions<'_> {
    fn hipaa(&self) -> bool {
        self.settings.profile == ProfileName::Hipaa
    }

    fn over(&self, rule: &str) -> Option<&RuleOverride> {
        self.settings.detectors.get(rule)
    }

    fn enabled(&self, rule: &str) -> Option<bool> {
        self.over(rule).and_then(|o| o.enabled)
    }

    /// A rule's action: its defaults, with the override's method, label and mask length.
    fn action(&self, rule: &str, method: Method, label: &str) -> Action {
        let o = self.over(rule);
        self.redactor.action(
            rule,
            o.and_then(|o| o.method).unwrap_or(method),
            o.and_then(|o| o.label.as_deref()).unwrap_or(label),
            o.and_then(|o| o.keep_last).unwrap_or(4),
        )
    }

    fn echo_enabled(&self) -> bool {
        self.enabled("echo") != Some(false) && self.hipaa()
    }
}

/// Step 4: the built-in detectors the profile and the overrides turn on.
fn builtin_specs(cx: &Actions<'_>) -> Vec<DetectorSpec> {
    let mut specs = Vec::new();
    for b in BUILTINS {
        let default_on = match b.tier {
            Tier::Secret => true,
            Tier::Phi => cx.hipaa(),
            Tier::Optional => b.rule == "us_date" && cx.settings.dates_as_dob,
        };
        if !cx.enabled(b.rule).unwrap_or(default_on) {
            continue;
        }
        specs.push(DetectorSpec {
            rule: b.rule.to_owned(),
            pattern: b.source().into_owned(),
            check: b.check,
            context: b.context,
            key_words: b.key_words,
            shrink: b.shrink,
            isolated: b.isolated,
            last_segment: b.last_segment,
            kind: b.kind,
            scope: None,
            strength: b.strength,
            size_limit: BUILTIN_SIZE_LIMIT,
            custom: false,
            action: cx.action(b.rule, b.method, b.label),
        });
    }
    specs
}

/// Step 5: `[[scrub.patterns]]`, each with a unique name, a regex and its scope.
fn custom_specs(
    settings: &ScrubSettings,
    known: &HashSet<String>,
    redactor: &Redactor,
) -> Result<Vec<DetectorSpec>, ScrubConfigError> {
    let mut specs = Vec::new();
    let mut names: HashSet<&str> = HashSet::new();
    for (i, p) in settings.patterns.iter().enumerate() {
        if p.name.trim().is_empty() {
            return Err(invalid(format!("patterns[{i}].name"), "must not be empty"));
        }
        if known.contains(&p.name) || !names.insert(p.name.as_str()) {
            return Err(invalid(
                format!("patterns[{i}].name"),
                format!("`{}` is already a rule name", p.name),
            ));
        }
        if p.regex.is_empty() {
            return Err(invalid(format!("patterns[{i}].regex"), "must not be empty"));
        }
        let keys = if p.keys.is_empty() {
            None
        } else {
            let mut m = KeyMatcher::default();
            for (j, k) in p.keys.iter().enumerate() {
                if !m.add(k, KeyClass::Custom) {
                    return Err(invalid(format!("patterns[{i}].keys[{j}]"), "empty key"));
                }
            }
            Some(m)
        };
        let paths: Vec<Vec<String>> = p
            .paths
            .iter()
            .map(|path| path.split('.').map(str::to_owned).collect())
            .collect();
        let scope = (keys.is_some() || !paths.is_empty()).then_some(Scope { keys, paths });
        specs.push(DetectorSpec {
            rule: p.name.clone(),
            pattern: p.regex.clone(),
            check: p.validator.map_or(Check::None, Check::Validator),
            context: None,
            key_words: &[],
            shrink: false,
            isolated: false,
            last_segment: false,
            kind: HitKind::Redact,
            scope,
            // A rule the operator wrote for their own data: as strong as a shape check,
            // and a checksum when it has one.
            strength: if p.validator.is_some_and(Validator::is_checksum) {
                Strength::Checksum
            } else {
                Strength::Shaped
            },
            size_limit: CUSTOM_PATTERN_SIZE_LIMIT,
            custom: true,
            action: redactor.action(
                &p.name,
                p.method,
                p.label.as_deref().unwrap_or(&p.name),
                p.keep_last.unwrap_or(4),
            ),
        });
    }
    Ok(specs)
}

/// Step 6 (the scanner's own errors): the failing pattern named by its rule and by the
/// setting it came from.
fn scanner_error(error: ScannerError, builtin_count: usize, rules: &[String]) -> ScrubConfigError {
    match error {
        ScannerError::Pattern { index, problem } => {
            let rule = rules.get(index).cloned().unwrap_or_else(|| "?".to_owned());
            let key = match index.checked_sub(builtin_count) {
                Some(custom) => format!("patterns[{custom}].regex"),
                None => format!("detectors.{rule}"),
            };
            ScrubConfigError::Pattern { rule, key, problem }
        }
        ScannerError::SetTooBig(problem) => invalid(
            "patterns",
            format!("the patterns together are too big: {problem}"),
        ),
    }
}

/// Step 7: the structural rules (key-driven rules such as `password_field`), each with
/// its action and on/off state.
fn structural_rules(cx: &Actions<'_>) -> RuleTable {
    RuleTable::build(
        |r| {
            let spec = r.spec();
            let mut a = cx.action(spec.rule, spec.method, spec.label);
            if cx.over(spec.rule).and_then(|o| o.keep_last).is_none() {
                a.keep_last = spec.keep_last;
            }
            a
        },
        |r| {
            let enabled = cx.enabled(r.name());
            // secrets-only: session ids and user ids are what the SDK sends; leave them
            // unless the config turns them on.
            if !cx.hipaa() && r.user_identity() {
                enabled == Some(true)
            } else {
                enabled != Some(false)
            }
        },
    )
}

type ClassActions = HashMap<KeyClass, Action, FxBuild>;

/// Step 8: what each key class of the denylist does.
fn class_actions(cx: &Actions<'_>) -> ClassActions {
    let mut actions = ClassActions::default();
    for class in KeyClass::ALL {
        if cx.enabled(class.rule()) == Some(false) {
            continue;
        }
        actions.insert(
            class,
            cx.action(class.rule(), Method::Replace, class.label()),
        );
    }
    actions
}

/// The rules whose redactions are PHI, not secrets or network data: the PHI detectors,
/// the person's key classes, and echoes of them.
fn phi_rules() -> HashSet<String, FxBuild> {
    let mut rules: HashSet<String, FxBuild> = BUILTINS
        .iter()
        .filter(|b| b.tier == Tier::Phi)
        .map(|b| b.rule.to_owned())
        .collect();
    for class in KeyClass::ALL {
        if !matches!(class, KeyClass::Secret | KeyClass::Custom | KeyClass::Ip) {
            rules.insert(class.rule().to_owned());
        }
    }
    rules.insert("echo".to_owned());
    rules
}

/// Detector rules that name a patient or already hold their clinical details.
const PATIENT_DETECTOR_RULES: &[&str] = &[
    "person_name",
    "full_name",
    "mrn",
    "dob",
    "ssn",
    "address",
    "condition",
    "medication",
];

/// The rules whose redactions name a patient: the detectors above and the key classes of
/// a person's identity and health (not email, phone or network data, which any app's
/// user has). A name here that no built-in detector has is an error, not a rule that
/// never fires.
fn patient_rules() -> Result<HashSet<String, FxBuild>, ScrubConfigError> {
    let mut rules = HashSet::default();
    for rule in PATIENT_DETECTOR_RULES {
        if !BUILTINS.iter().any(|b| b.rule == *rule) {
            return Err(ScrubConfigError::UnknownRule {
                rule: (*rule).to_owned(),
            });
        }
        rules.insert((*rule).to_owned());
    }
    for class in [
        KeyClass::Name,
        KeyClass::Ssn,
        KeyClass::Dob,
        KeyClass::Address,
        KeyClass::Mrn,
        KeyClass::Insurance,
        KeyClass::Clinical,
    ] {
        rules.insert(class.rule().to_owned());
    }
    Ok(rules)
}

/// Step 9: every text a rule can leave behind, so that scrubbing is idempotent: a label
/// or pseudonym already in a payload is never redacted again.
struct Labels {
    replacements: HashSet<String, FxBuild>,
    pseudonym_prefixes: Vec<String>,
}

impl Labels {
    fn collect<'a>(redactor: &Redactor, actions: impl Iterator<Item = &'a Action>) -> Self {
        let mut replacements: HashSet<String, FxBuild> = HashSet::default();
        replacements.insert("[Filtered]".to_owned());
        let mut pseudonym_prefixes: Vec<String> = Vec::new();
        for a in actions {
            match a.method {
                Method::Replace => {
                    replacements.insert(a.replacement.clone());
                }
                Method::Hash => {
                    let prefix = redactor.pseudonym_prefix(&a.label);
                    if !pseudonym_prefixes.contains(&prefix) {
                        pseudonym_prefixes.push(prefix);
                    }
                }
                _ => {}
            }
        }
        Self {
            replacements,
            pseudonym_prefixes,
        }
    }

    fn sorted(&self) -> Vec<String> {
        let mut all: Vec<String> = self.replacements.iter().cloned().collect();
        all.sort();
        all
    }

    fn max_len(&self) -> usize {
        self.replacements.iter().map(String::len).max().unwrap_or(0)
    }

    fn first_bytes(&self) -> [bool; 256] {
        let mut first = [false; 256];
        for l in &self.replacements {
            if let Some(&b) = l.as_bytes().first() {
                first[usize::from(b)] = true;
            }
        }
        first
    }
}
