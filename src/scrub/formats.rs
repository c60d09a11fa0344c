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
