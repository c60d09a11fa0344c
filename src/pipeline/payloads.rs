//! Scrubbing for the payloads that are not plain JSON items but may be forwarded under an
//! explicit relaxation: text/JSON attachments and zlib-compressed rrweb replay recordings.
//! Each function either returns the scrubbed bytes with a report, or a [`DropReason`]: a
//! payload that cannot be read is dropped, never forwarded raw.
//!
//! Every function takes the envelope's [`EchoSet`] and a [`Pass`]: the first pass scrubs
//! the payload (and adds what it removes to the set); an echo pass only removes the values
//! the set learnt after the first (see `scrub_envelope`).

use std::io::{Read, Write};

use crate::decide::{DropReason, TextKind};
use crate::json::{self, JsonError, Node};
use crate::scrub::{EchoSet, PayloadKind, ScrubReport, Scrubber};
use bytes::Bytes;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use flate2::Compression;

/// Relay's `max_replay_uncompressed_size`: a recording that inflates past this is dropped.
const MAX_REPLAY_INFLATED_BYTES: u64 = 100 * 1024 * 1024;

/// The result of scrubbing one payload: `None` bytes means unchanged.
pub(crate) type Scrubbed = Result<(Option<Bytes>, ScrubReport), DropReason>;

/// Which part of the scrub a payload gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    /// The whole scrub (the first time the payload is seen).
    Scrub,
    /// Only the echo values, for a payload scrubbed before the envelope learnt some.
    Echo,
}

impl Pass {
    pub(crate) fn run(
        self,
        scrubber: &Scrubber,
        kind: PayloadKind,
        node: &mut Node<'_>,
        echo: &mut EchoSet,
    ) -> ScrubReport {
        match self {
            Pass::Scrub => scrubber.scrub_item(kind, node, echo),
            Pass::Echo => scrubber.echo_item(kind, node, echo),
        }
    }
}

/// JSON bytes through `pass`, re-serialized only if something changed (`None`: keep the
/// original bytes).
pub(crate) fn scrub_json(
    payload: &[u8],
    kind: PayloadKind,
    scrubber: &Scrubber,
    echo: &mut EchoSet,
    pass: Pass,
) -> Result<(Option<Vec<u8>>, ScrubReport), JsonError> {
    let mut node = json::parse_bytes(payload)?;
    let report = pass.run(scrubber, kind, &mut node, echo);
    if report.is_empty() {
        return Ok((None, report));
    }
    Ok((Some(json::to_vec(&node, payload.len())), report))
}

/// Scrubs a text or JSON attachment.
pub(crate) fn scrub_text(
    payload: &[u8],
    kind: TextKind,
    scrubber: &Scrubber,
    echo: &mut EchoSet,
    pass: Pass,
) -> Scrubbed {
    match kind {
        TextKind::Json => {
            let (bytes, report) = scrub_json(payload, PayloadKind::Generic, scrubber, echo, pass)
                .map_err(|_| DropReason::InvalidJson)?;
            Ok((bytes.map(Bytes::from), report))
        }
        TextKind::Plain => {
            let text = std::str::from_utf8(payload).map_err(|_| DropReason::InvalidPayload)?;
            let mut node = Node::string(text);
            let report = pass.run(scrubber, PayloadKind::Generic, &mut node, echo);
            if report.is_empty() {
                return Ok((None, report));
            }
            match node {
                Node::Str(text) => Ok((Some(Bytes::from(text.into_string().into_bytes())), report)),
                // The engine replaced the whole string with something else: keep its JSON.
                other => Ok((Some(Bytes::from(json::to_vec(&other, 0))), report)),
            }
        }
    }
}

/// Scrubs a file name header value (file names can hold user names: `/Users/alice/…`).
pub(crate) fn scrub_string(
    value: &str,
    scrubber: &Scrubber,
    echo: &mut EchoSet,
    pass: Pass,
) -> (Option<String>, ScrubReport) {
    let mut node = Node::string(value);
    let report = pass.run(scrubber, PayloadKind::Generic, &mut node, echo);
    if report.is_empty() {
        return (None, report);
    }
    match node {
        Node::Str(s) => (Some(s.into_string()), report),
        _ => (Some("[Filtered]".to_owned()), report),
    }
}

/// Scrubs a replay recording: `{"segment_id":N}\n` followed by an rrweb JSON array, zlib
/// compressed unless it starts with `[`. Text nodes, attributes and everything else in the
/// array go through the scrubber like any JSON.
pub(crate) fn scrub_replay_recording(
    payload: &[u8],
    scrubber: &Scrubber,
    echo: &mut EchoSet,
    pass: Pass,
) -> Scrubbed {
    let newline = payload
        .iter()
        .position(|b| *b == b'\n')
        .ok_or(DropReason::InvalidPayload)?;
    let (header, body) = (&payload[..newline], &payload[newline + 1..]);
    json::parse_bytes(header).map_err(|_| DropReason::InvalidPayload)?;
    let compressed = body.first() != Some(&b'[');
    let json = if compressed {
        let mut inflated = Vec::new();
        ZlibDecoder::new(body)
            .take(MAX_REPLAY_INFLATED_BYTES + 1)
            .read_to_end(&mut inflated)
            .map_err(|_| DropReason::InvalidPayload)?;
        if inflated.len() as u64 > MAX_REPLAY_INFLATED_BYTES {
            return Err(DropReason::InvalidPayload);
        }
        inflated
    } else {
        body.to_vec()
    };
    let (json, report) = scrub_json(&json, PayloadKind::Generic, scrubber, echo, pass)
        .map_err(|_| DropReason::InvalidJson)?;
    let Some(json) = json else {
        return Ok((None, report));
    };
    let mut out = Vec::with_capacity(header.len() + 1 + json.len() / 2);
    out.extend_from_slice(header);
    out.push(b'\n');
    if compressed {
        let mut encoder = ZlibEncoder::new(out, Compression::default());
        encoder
            .write_all(&json)
            .map_err(|_| DropReason::InvalidPayload)?;
        out = encoder.finish().map_err(|_| DropReason::InvalidPayload)?;
    } else {
        out.extend_from_slice(&json);
    }
    Ok((Some(Bytes::from(out)), report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrub::{HashKey, ScrubSettings};
    use serde_json::Value;

    fn scrubber() -> Scrubber {
        let key = HashKey {
            id: "test".to_owned(),
            secret: vec![7; 32],
        };
        Scrubber::compile(&ScrubSettings::default(), key).expect("default scrubber")
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).expect("in-memory write");
        encoder.finish().expect("in-memory finish")
    }

    #[test]
    fn json_attachment_is_scrubbed_and_keeps_its_shape() {
        let (bytes, report) = scrub_text(
            br#"{"password":"hunter2","ok":1}"#,
            TextKind::Json,
            &scrubber(),
            &mut EchoSet::new(),
            Pass::Scrub,
        )
        .expect("scrubs");
        let value: Value = serde_json::from_slice(&bytes.expect("changed")).expect("json");
        assert_eq!(value["ok"], 1);
        assert_ne!(value["password"], "hunter2");
        assert!(!report.is_empty());
    }

    #[test]
    fn broken_text_attachments_are_dropped() {
        assert_eq!(
            scrub_text(
                b"{not json",
                TextKind::Json,
                &scrubber(),
                &mut EchoSet::new(),
                Pass::Scrub
            )
            .err(),
            Some(DropReason::InvalidJson)
        );
        assert_eq!(
            scrub_text(
                &[0xff, 0xfe, 0x00],
                TextKind::Plain,
                &scrubber(),
                &mut EchoSet::new(),
                Pass::Scrub
            )
            .err(),
            Some(DropReason::InvalidPayload)
        );
        let (bytes, _) = scrub_text(
            b"plain log line",
            TextKind::Plain,
            &scrubber(),
            &mut EchoSet::new(),
            Pass::Scrub,
        )
        .expect("ok");
        assert!(bytes.is_none(), "clean text stays byte-identical");
    }

    #[test]
    fn replay_recording_is_inflated_scrubbed_and_deflated() {
        let rrweb = br#"[{"type":2,"data":{"node":{"attributes":{"data-token":"abc123"},"textContent":"hi"}}}]"#;
        let mut payload = br#"{"segment_id":0}"#.to_vec();
        payload.push(b'\n');
        payload.extend(zlib(rrweb));
        let (bytes, report) =
            scrub_replay_recording(&payload, &scrubber(), &mut EchoSet::new(), Pass::Scrub)
                .expect("scrubs");
        let bytes = bytes.expect("changed");
        assert!(!report.is_empty());
        let newline = bytes.iter().position(|b| *b == b'\n').expect("header line");
        assert_eq!(&bytes[..newline], br#"{"segment_id":0}"#);
        let mut inflated = String::new();
        ZlibDecoder::new(&bytes[newline + 1..])
            .read_to_string(&mut inflated)
            .expect("valid zlib");
        assert!(!inflated.contains("abc123"));
        assert!(inflated.contains("textContent"));
    }

    #[test]
    fn corrupt_replay_recordings_are_dropped() {
        let s = scrubber();
        assert_eq!(
            scrub_replay_recording(b"no newline", &s, &mut EchoSet::new(), Pass::Scrub).err(),
            Some(DropReason::InvalidPayload)
        );
        assert_eq!(
            scrub_replay_recording(
                b"{\"segment_id\":0}\n\x78\x9cgarbage",
                &s,
                &mut EchoSet::new(),
                Pass::Scrub
            )
            .err(),
            Some(DropReason::InvalidPayload)
        );
        assert_eq!(
            scrub_replay_recording(
                b"{\"segment_id\":0}\n[oops",
                &s,
                &mut EchoSet::new(),
                Pass::Scrub
            )
            .err(),
            Some(DropReason::InvalidJson)
        );
    }
}
