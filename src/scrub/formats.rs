//! Healthcare formats found inside strings (HL7 v2, X12 EDI, CDA XML; FHIR JSON is walked by the walker): parsed by their own
//! structure, so the field decides what is PHI, and written back in the same format.

pub(crate) mod cda;
pub(crate) mod hl7;
pub(crate) mod x12;

/// The compiled `[scrub.formats]`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Formats {
    pub(crate) hl7: Option<hl7::Hl7Options>,
    pub(crate) x12: bool,
    pub(crate) fhir: bool,
    pub(crate) cda: bool,
    /// Providers' names (HL7 provider fields, FHIR practitioners) are redacted too.
    pub(crate) redact_providers: bool,
}

/// Appends `text` (what a log line says before the message it quotes) scanned by the
/// value detectors; returns whether it changed.
pub(crate) fn push_scanned(
    eng: &crate::scrub::walk::Engine,
    text: &str,
    key: &str,
    out: &mut String,
    cx: &mut crate::scrub::walk::Cx,
) -> bool {
    match eng.scrub_text(text, key, cx) {
        Some(new) => {
            out.push_str(&new);
            true
        }
        None => {
            out.push_str(text);
            false
        }
    }
}
