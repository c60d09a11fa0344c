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

/// The first occurrence of `id` at the start of `text` or of a line, or after a blank, a
/// quote, `:` or `=`, for which `ok` holds of the text from there. The search is a
/// `memchr` for the id's first byte (an upper-case letter or `<`, rare in everyday text)
/// and a compare: cheaper on the short strings that make up most events than building a
/// substring searcher per call.
pub(crate) fn find_at_line_start(text: &str, id: &str, ok: impl Fn(&str) -> bool) -> Option<usize> {
    let bytes = text.as_bytes();
    let first = *id.as_bytes().first()?;
    memchr::memchr_iter(first, bytes).find(|&at| {
        bytes.get(at..at + id.len()) == Some(id.as_bytes())
            && starts_line(text, at)
            && text.get(at..).is_some_and(&ok)
    })
}

/// Whether a format's first id at byte `at` (a char boundary) starts a line: the text's
/// start, or after a blank, a quote, `:` or `=`.
pub(crate) fn starts_line(text: &str, at: usize) -> bool {
    at == 0
        || text
            .get(..at)
            .and_then(|before| before.chars().next_back())
            .is_some_and(|c| c.is_whitespace() || matches!(c, '"' | '\'' | ':' | '='))
}
