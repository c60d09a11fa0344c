//! What a candidate rule set would change: the redactions it would add or no longer make,
//! by rule and path pattern, counted, never with a value. The candidate scrubs its own copy
//! of the envelope, so the bytes that are forwarded cannot depend on it.

use std::collections::BTreeMap;

use crate::decide::Policy;
use crate::decode::Envelope;
use crate::scrub::{Redaction, Scrubber};

use super::{scrub_envelope, EnvelopeReport};

/// One rule at one path pattern, and how many values more (or fewer) it would redact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleChange {
    pub rule: String,
    /// The redaction path as the audit record writes it, with array indices as `*`.
    pub path: String,
    pub count: u64,
}

/// The candidate's differences from the active rules for one envelope (or event).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CandidateDiff {
    /// sha256 of the candidate's `[scrub]` (see [`crate::config::Candidate::hash`]).
    pub hash: String,
    /// Redactions the candidate would make that the active rules do not.
    pub added: Vec<RuleChange>,
    /// Redactions the active rules make that the candidate would not.
    pub removed: Vec<RuleChange>,
}

impl CandidateDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }

    pub fn added_total(&self) -> u64 {
        self.added.iter().map(|c| c.count).sum()
    }

    pub fn removed_total(&self) -> u64 {
        self.removed.iter().map(|c| c.count).sum()
    }
}

/// Scrubs a copy of `input` (the envelope as it was before the active scrub) with
/// `candidate` and compares its redactions with `active`'s.
pub fn compare_envelope(
    input: &Envelope,
    candidate: &Scrubber,
    policy: &Policy,
    active: &EnvelopeReport,
    hash: &str,
) -> CandidateDiff {
    let mut copy = input.clone();
    let shadow = scrub_envelope(&mut copy, candidate, policy);
    let mut diff = diff(
        active.all_redactions().map(|(_, r)| r),
        shadow.all_redactions().map(|(_, r)| r),
    );
    hash.clone_into(&mut diff.hash);
    diff
}

/// Compares two sets of redactions, summed per rule and path pattern. A redaction that
/// only changes its method (mask instead of replace) is no difference here: the value
/// stays hidden either way.
pub fn diff<'a>(
    active: impl Iterator<Item = &'a Redaction>,
    candidate: impl Iterator<Item = &'a Redaction>,
) -> CandidateDiff {
    let mut counts: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for redaction in active {
        counts.entry(key(redaction)).or_default().0 += u64::from(redaction.count);
    }
    for redaction in candidate {
        counts.entry(key(redaction)).or_default().1 += u64::from(redaction.count);
    }
    let mut out = CandidateDiff::default();
    for ((rule, path), (active, candidate)) in counts {
        let (list, count) = if candidate > active {
            (&mut out.added, candidate - active)
        } else if active > candidate {
            (&mut out.removed, active - candidate)
        } else {
            continue;
        };
        list.push(RuleChange { rule, path, count });
    }
    out
}

fn key(redaction: &Redaction) -> (String, String) {
    (redaction.rule.clone(), path_pattern(&redaction.path))
}

/// The audit record's safe form of a redaction path ([`crate::audit::safe_path`]) with every
/// array index as `*`: one line per place in the payload's shape, however many frames or
/// breadcrumbs it repeats over.
pub fn path_pattern(path: &str) -> String {
    crate::audit::report::indexes_as_stars(&crate::audit::safe_path(path))
}

/// `scrubgate scrub --compare`'s account of a difference: one line per rule and path
/// pattern (`+` added, `-` removed) and a summary line. Never values.
pub fn summary(diff: &CandidateDiff) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for (sign, changes) in [("+", &diff.added), ("-", &diff.removed)] {
        for change in changes {
            let _ = writeln!(
                out,
                "{sign} {} <- {} ({}x)",
                change.path, change.rule, change.count
            );
        }
    }
    let _ = writeln!(
        out,
        "candidate: {} redaction(s) added, {} removed",
        diff.added_total(),
        diff.removed_total()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrub::Method;

    fn redaction(path: &str, rule: &str, count: u32) -> Redaction {
        Redaction {
            path: path.to_owned(),
            rule: rule.to_owned(),
            method: Method::Replace,
            count,
        }
    }

    #[test]
    fn differences_are_summed_per_rule_and_path_pattern() {
        let active = [
            redaction("user.email", "email", 1),
            redaction(
                "exception.values.0.stacktrace.frames.3.vars.password",
                "password",
                1,
            ),
            redaction(
                "exception.values.0.stacktrace.frames.4.vars.password",
                "password",
                1,
            ),
        ];
        let candidate = [
            redaction("user.email", "email", 1),
            redaction(
                "exception.values.0.stacktrace.frames.3.vars.password",
                "password",
                1,
            ),
            redaction("extra.favourite_colour", "sensitive_key", 2),
            redaction("extra.Alice Smith", "sensitive_key", 1),
        ];
        let diff = diff(active.iter(), candidate.iter());
        let change = |rule: &str, path: &str, count| RuleChange {
            rule: rule.into(),
            path: path.into(),
            count,
        };
        assert_eq!(
            diff.added,
            vec![
                change("sensitive_key", "extra.*", 1),
                change("sensitive_key", "extra.favourite_colour", 2),
            ]
        );
        assert_eq!(
            diff.removed,
            vec![change(
                "password",
                "exception.values.*.stacktrace.frames.*.vars.password",
                1
            )]
        );
        assert_eq!(
            summary(&diff),
            "+ extra.* <- sensitive_key (1x)\n\
             + extra.favourite_colour <- sensitive_key (2x)\n\
             - exception.values.*.stacktrace.frames.*.vars.password <- password (1x)\n\
             candidate: 3 redaction(s) added, 1 removed\n"
        );
    }

    #[test]
    fn a_method_change_alone_is_no_difference() {
        let active = [redaction("user.email", "email", 1)];
        let mut masked = redaction("user.email", "email", 1);
        masked.method = Method::Mask;
        assert!(diff(active.iter(), [masked].iter()).is_empty());
    }
}
