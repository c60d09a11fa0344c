//! Clinical phrases anywhere in a payload that names a patient. A diagnosis or a drug
//! needs a context word (`diagnosed with`, `started on`) to be read as PHI in text of
//! unknown origin, since the same words are code elsewhere (`cold start`). Once a payload
//! has named a patient (their name, record number, birth date, SSN, address, insurance
//! or clinical keys), its prose is about them: `underlying sleep apnea` in a breadcrumb of
//! that event is their condition, with or without the word before it.

use crate::json::Node;

use super::super::detectors::clinical::find_phrases;
use super::{Cx, Engine, PayloadKind};

impl Engine {
    /// After a payload's walk: if it named a patient, every dictionary phrase standing as
    /// words of prose in its strings is redacted as its detector would, and then the
    /// payload is walked again (a label can change how a string reads), as a second scrub
    /// would. Whether it changed anything.
    pub(super) fn clinical_round(
        &self,
        kind: PayloadKind,
        value: &mut Node<'_>,
        cx: &mut Cx,
    ) -> bool {
        let names_patient = cx
            .report
            .redactions
            .iter()
            .any(|r| self.patient_rules.contains(&r.rule));
        if !names_patient {
            return false;
        }
        let before = cx.changes();
        cx.path.clear();
        self.clinical_walk(value, cx);
        if cx.changes() == before {
            return false;
        }
        self.walk_kind(kind, value, cx);
        true
    }

    fn clinical_walk(&self, value: &mut Node<'_>, cx: &mut Cx) {
        match value {
            Node::Str(s) => {
                if let Some(new) = self.clinical_string(s.as_str(), cx) {
                    s.set(new);
                }
            }
            Node::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = cx.push_index(i);
                    self.clinical_walk(item, cx);
                    cx.pop(len);
                }
            }
            Node::Object(map) => {
                for (k, item) in map.iter_mut() {
                    // A string of one word holds no prose (and most strings of an event are
                    // such: ids, enums, timestamps), so it is passed over before its key is
                    // even looked up.
                    let prose = |s: &str| s.trim().contains([' ', '\t']);
                    if item.as_str().is_some_and(|s| !prose(s)) || self.is_schema_value(k, item, cx)
                    {
                        continue;
                    }
                    let len = cx.push(k);
                    self.clinical_walk(item, cx);
                    cx.pop(len);
                }
            }
            Node::Number(_) | Node::Null | Node::Bool(_) => {}
        }
    }

    /// `s` with its phrases redacted; `None` if it held none. Text scrubgate wrote
    /// (labels, pseudonyms) is never matched into.
    fn clinical_string(&self, s: &str, cx: &mut Cx) -> Option<String> {
        if s.len() < 3 || self.is_label(s) {
            return None;
        }
        let found = find_phrases(s);
        if found.is_empty() {
            return None;
        }
        let inert = self.scanner.inert_spans(s);
        let mut out = String::with_capacity(s.len());
        let mut last = 0usize;
        for phrase in found {
            if inert
                .iter()
                .any(|&(a, b)| phrase.start < b && a < phrase.end)
            {
                continue;
            }
            let Some(action) = self.scanner.clinical_action(phrase.list) else {
                continue;
            };
            let (Some(before), Some(value)) =
                (s.get(last..phrase.start), s.get(phrase.start..phrase.end))
            else {
                continue;
            };
            out.push_str(before);
            out.push_str(&self.redactor.apply(action, value));
            last = phrase.end;
            cx.record(&action.rule, action.method, 1);
        }
        if last == 0 {
            return None;
        }
        out.push_str(s.get(last..).unwrap_or(""));
        Some(out)
    }
}
