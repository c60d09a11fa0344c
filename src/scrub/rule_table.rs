//! One action per structural rule, indexed by the rule itself. The walk used to look
//! rules up by name in a map, and a name that was not there (a typo, a rule renamed in one
//! place only) silently kept the value; with a closed enum and an array there is no name
//! to get wrong and no lookup that can miss.

use super::detectors::builtin::Structural;
use super::redact::Action;

/// The compiled structural rules: each one's action and whether it is on.
#[derive(Debug)]
pub(crate) struct RuleTable {
    actions: [Action; Structural::COUNT],
    enabled: [bool; Structural::COUNT],
}

impl RuleTable {
    /// `action` and `enabled` are asked once per rule.
    pub(crate) fn build(
        action: impl FnMut(Structural) -> Action,
        enabled: impl FnMut(Structural) -> bool,
    ) -> Self {
        Self {
            actions: Structural::ALL.map(action),
            enabled: Structural::ALL.map(enabled),
        }
    }

    pub(crate) fn action(&self, rule: Structural) -> &Action {
        &self.actions[rule as usize]
    }

    pub(crate) fn enabled(&self, rule: Structural) -> bool {
        self.enabled[rule as usize]
    }

    pub(crate) fn actions(&self) -> impl Iterator<Item = &Action> {
        self.actions.iter()
    }
}
