//! X12 005010 EDI (270/271 eligibility, 276/277 claim status, 835 remittance, 837
//! claims) inside any string. The interchange header (ISA) declares the element,
//! component and repetition separators and the segment terminator; each segment is then
//! judged by its id and by the loop it is in: an `NM1` names a person or an organisation,
//! and the `N3`/`N4`/`DMG`/`REF`/`PER` segments after it belong to that entity. A
//! person's names, ids, address, birth date and contacts become class labels; payers'
//! and providers' stay (an NPI is a public registry number). The interchange stays well
//! formed: same segments, same element counts, same separators.

use crate::scrub::keys::KeyClass;
use crate::scrub::walk::{Cx, Engine};

/// The separators an interchange declares (ISA is fixed-width: element separator at
/// byte 3, repetition at 82, component at 104, terminator at 105).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Separators {
    element: char,
    component: char,
    terminator: char,
}

/// Entity identifier codes (NM101) of parties that are not the patient or subscriber:
/// providers, payers, submitters, receivers, facilities.
const NOT_A_PERSON_PARTY: &[&str] = &[
    "1P", "2B", "36", "40", "41", "45", "71", "72", "73", "74", "77", "82", "85", "87", "DK", "DN",
    "DQ", "FA", "GB", "P3", "PE", "PR", "PW", "QB", "TT", "TU", "ZZ",
];

/// Where the first interchange in `text` starts: `ISA` and its element separator, at
/// the start of the text or after a blank or quote, with a plausible fixed-width header.
pub(crate) fn find(text: &str) -> Option<usize> {
    // The header alone is 106 bytes: shorter text cannot hold an interchange.
    if text.len() < 106 {
        return None;
    }
    super::find_at_line_start(text, "ISA", |rest| separators(rest).is_some())
}

fn separators(isa: &str) -> Option<Separators> {
    let b = isa.as_bytes();
    if b.len() < 106 || !isa.is_char_boundary(106) {
        return None;
    }
    let element = char::from(b[3]);
    let component = char::from(b[104]);
    let terminator = char::from(b[105]);
    let usable = |c: char| c.is_ascii() && !c.is_ascii_alphanumeric() && c != ' ';
    // The header has exactly 16 elements before the terminator.
    let header = isa.get(..105)?;
    let elements = header.matches(element).count();
    (usable(element)
        && usable(component)
        && (usable(terminator) || terminator == '\n' || terminator == '\r')
        && element != component
        && element != terminator
        && elements == 16)
        .then_some(Separators {
            element,
            component,
            terminator,
        })
}

/// The entity the segments being read belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Party {
    /// A patient, subscriber or dependent: their data is PHI.
    Person,
    /// A payer, provider or other organisation (or nothing yet).
    Other,
}

/// Scrubs the interchange in `text` starting at `start` (from [`find`]); text before it
/// is scanned as text. `None` if nothing changed.
///
/// An interchange inside a string literal (a Python `repr()` of a frame variable, a log
/// line that escaped its control characters) has its line breaks, the segment terminator
/// or the break after it, written as the escapes `\n` and `\r`: it is read as the
/// literal's value and written back escaped the same way.
pub(crate) fn scrub(
    eng: &Engine,
    text: &str,
    start: usize,
    key: &str,
    cx: &mut Cx,
) -> Option<String> {
    if let Some(lit) = super::hl7::Literal::at(text, start, is_interchange) {
        return lit.scrub_within(eng, text, start, key, cx, |decoded, cx| {
            scrub_interchange(eng, decoded, 0, key, cx)
        });
    }
    scrub_interchange(eng, text, start, key, cx)
}

/// Whether a literal's value is an interchange whose line breaks (the terminator, or a
/// break after it) came from the literal's escapes.
fn is_interchange(decoded: &str) -> bool {
    separators(decoded).is_some_and(|sep| {
        decoded.contains(['\r', '\n'])
            && decoded.split(sep.terminator).skip(1).any(|segment| {
                let segment = segment.trim_start_matches(['\r', '\n']);
                segment.len() > 2 && segment.split(sep.element).next().is_some_and(is_segment_id)
            })
    })
}

/// A segment id: two or three capitals or digits.
fn is_segment_id(id: &str) -> bool {
    (2..=3).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// [`scrub`] of an interchange as it is (not inside a literal).
fn scrub_interchange(
    eng: &Engine,
    text: &str,
    start: usize,
    key: &str,
    cx: &mut Cx,
) -> Option<String> {
    let sep = separators(text.get(start..)?)?;
    let mut out = String::with_capacity(text.len() + 16);
    let mut changed = super::push_scanned(eng, &text[..start], key, &mut out, cx);
    let mut party = Party::Other;
    for (i, segment) in text[start..].split(sep.terminator).enumerate() {
        if i > 0 {
            out.push(sep.terminator);
        }
        // Segments are often one per line: keep the line break with the segment.
        let trimmed = segment.trim_start_matches(['\r', '\n']);
        out.push_str(&segment[..segment.len() - trimmed.len()]);
        match scrub_segment(eng, trimmed, sep, &mut party, key, cx) {
            Some(new) => {
                out.push_str(&new);
                changed = true;
            }
            None => out.push_str(trimmed),
        }
    }
    changed.then_some(out)
}

/// What one element of a segment is, given the party the segment belongs to.
fn element_class(id: &str, index: usize, elements: &[&str], party: Party) -> Option<KeyClass> {
    let person = party == Party::Person;
    let qualifier = |i: usize| elements.get(i).copied().unwrap_or("");
    match (id, index) {
        ("NM1", 3 | 4 | 5 | 7) if person => Some(KeyClass::Name),
        ("NM1", 9) if person => Some(match qualifier(8) {
            "34" => KeyClass::Ssn,
            "MI" | "II" => KeyClass::Insurance,
            _ => KeyClass::Mrn,
        }),
        ("N3", 1 | 2) | ("N4", 1 | 3) if person => Some(KeyClass::Address),
        ("DMG", 2) if person => Some(KeyClass::Dob),
        ("REF", 2) if person => Some(match qualifier(1) {
            "SY" => KeyClass::Ssn,
            "1L" | "6P" | "IG" | "1W" | "23" => KeyClass::Insurance,
            "EJ" => KeyClass::Account,
            _ => KeyClass::Mrn,
        }),
        ("PER", 2) if person => Some(KeyClass::Name),
        ("PER", 4 | 6 | 8) if person => Some(match qualifier(index - 1) {
            "EM" => KeyClass::Email,
            _ => KeyClass::Phone,
        }),
        // The claim's patient control number and the subscriber's group number.
        ("CLM", 1) => Some(KeyClass::Account),
        ("SBR", 3) => Some(KeyClass::Insurance),
        ("CLP", 1) => Some(KeyClass::Account),
        ("CLP", 7) => Some(KeyClass::Mrn),
        // A claim's diagnosis codes are the patient's health information.
        ("HI", _) => Some(KeyClass::Clinical),
        _ => None,
    }
}

/// Segments whose every element stays: envelopes, transaction headers and control
/// numbers, dates and amounts of the transaction itself.
fn kept(id: &str) -> bool {
    matches!(
        id,
        "ISA"
            | "IEA"
            | "GS"
            | "GE"
            | "ST"
            | "SE"
            | "BHT"
            | "BPR"
            | "TRN"
            | "HL"
            | "LX"
            | "SV1"
            | "SV2"
            | "SVC"
            | "AMT"
            | "CAS"
            | "DTP"
            | "DTM"
            | "EB"
            | "INS"
            | "EQ"
            | "STC"
            | "BGN"
            | "PRV"
            | "SBR"
            | "CLP"
            | "CLM"
    )
}

fn scrub_segment(
    eng: &Engine,
    segment: &str,
    sep: Separators,
    party: &mut Party,
    key: &str,
    cx: &mut Cx,
) -> Option<String> {
    let elements: Vec<&str> = segment.split(sep.element).collect();
    let id = elements.first().copied().unwrap_or("");
    let well_formed = is_segment_id(id);
    if !well_formed {
        return eng.scrub_text(segment, key, cx);
    }
    if id == "NM1" {
        let entity = elements.get(1).copied().unwrap_or("");
        let kind = elements.get(2).copied().unwrap_or("");
        *party = if kind == "1" && !NOT_A_PERSON_PARTY.contains(&entity) {
            Party::Person
        } else {
            Party::Other
        };
    }
    let mut out = String::with_capacity(segment.len() + 16);
    let mut changed = false;
    for (i, element) in elements.iter().enumerate() {
        if i > 0 {
            out.push(sep.element);
        }
        let class = if i == 0 || element.is_empty() {
            None
        } else {
            element_class(id, i, &elements, *party)
        };
        let new = match class {
            // A composite's first component is a code list qualifier (`ABK>J45909`).
            Some(class) => map_components(element, sep.component, |c, part| {
                if id == "HI" && c == 0 {
                    return None;
                }
                eng.redact_class(class, part, cx)
            }),
            None if i == 0 || kept(id) || element.is_empty() => None,
            // An organisation's own address and contacts (a clinic, a payer) stay.
            None if *party == Party::Other && matches!(id, "N3" | "N4" | "PER" | "REF") => None,
            // Anything else a person's segment carries goes through the detectors.
            None => map_components(element, sep.component, |_, part| {
                eng.scrub_text(part, key, cx)
            }),
        };
        match new {
            Some(n) => {
                out.push_str(&n);
                changed = true;
            }
            None => out.push_str(element),
        }
    }
    changed.then_some(out)
}

/// Applies `f(index, component)` to each non-empty component; a replacement never carries a separator.
fn map_components(
    element: &str,
    component: char,
    mut f: impl FnMut(usize, &str) -> Option<String>,
) -> Option<String> {
    let mut out = String::with_capacity(element.len() + 8);
    let mut changed = false;
    for (i, part) in element.split(component).enumerate() {
        if i > 0 {
            out.push(component);
        }
        match (!part.trim().is_empty()).then(|| f(i, part)).flatten() {
            Some(new) => {
                out.push_str(&new.replace(component, " "));
                changed = true;
            }
            None => out.push_str(part),
        }
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISA: &str = "ISA*00*          *00*          *ZZ*SUBMITTERID    *ZZ*RECEIVERID     *240301*1035*^*00501*000000001*0*P*:~";

    #[test]
    fn the_header_declares_the_separators() {
        assert_eq!(ISA.len(), 106);
        assert_eq!(
            separators(ISA),
            Some(Separators {
                element: '*',
                component: ':',
                terminator: '~'
            })
        );
        assert_eq!(find(&format!("edi: {ISA}GS*HS~")), Some(5));
        assert_eq!(find("ISA*00*short~"), None);
        assert_eq!(find("VISA*00"), None);
        // A two-byte character where the component separator goes: not an interchange,
        // and no slice inside the character (a fuzz finding).
        let wide = format!("{}\u{181}GS*HS~", &ISA[..104]);
        assert_eq!(separators(&wide), None);
        assert_eq!(find(&wide), None);
    }

    #[test]
    fn interchanges_inside_literals() {
        // A Python repr() of an interchange with a line break after each terminator, and
        // of one whose terminator is the line break.
        let quoted = format!("'{ISA}\\nGS*HS*A*B~\\nNM1*IL*1*DOE*JANE~\\n'");
        let Some(lit) = super::super::hl7::Literal::at(&quoted, 1, is_interchange) else {
            panic!("not read as a literal");
        };
        assert!(lit.decoded.starts_with(&format!("{ISA}\nGS*HS")));
        assert_eq!(lit.end, quoted.len() - 1);
        let lines = ISA.replace('~', "\\n") + "GS*HS*A*B\\nNM1*IL*1*DOE*JANE\\n";
        let Some(lit) = super::super::hl7::Literal::at(&lines, 0, is_interchange) else {
            panic!("not read as a literal");
        };
        assert_eq!(separators(&lit.decoded).map(|s| s.terminator), Some('\n'));
        // No escaped break: the interchange is read as it is.
        assert!(
            super::super::hl7::Literal::at(&format!("{ISA}GS*HS~"), 0, is_interchange).is_none()
        );
    }

    #[test]
    fn persons_and_organisations() {
        let els = ["NM1", "IL", "1", "DOE", "JANE", "", "", "", "MI", "XKJ123"];
        assert_eq!(
            element_class("NM1", 3, &els, Party::Person),
            Some(KeyClass::Name)
        );
        assert_eq!(
            element_class("NM1", 9, &els, Party::Person),
            Some(KeyClass::Insurance)
        );
        assert_eq!(element_class("NM1", 3, &els, Party::Other), None);
        assert_eq!(
            element_class("DMG", 2, &["DMG", "D8", "19750608"], Party::Person),
            Some(KeyClass::Dob)
        );
    }
}
