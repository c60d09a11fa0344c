//! The envelope format (protocol §3.1): parse exactly like Relay, and serialize so that an
//! envelope nobody touched comes out byte-identical.
//!
//! Every header and payload keeps its raw bytes next to its parsed form. Only parts that were
//! changed through a setter are re-encoded; that is how "items that need no change are
//! forwarded byte-identical" holds without a diff step.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::item_type::ItemType;

/// Limits the parser enforces while reading; anything past them is a client error.
#[derive(Debug, Clone)]
pub struct EnvelopeLimits {
    /// Relay rejects envelopes with more than 500 items (`too many individual items`).
    pub max_items: usize,
}

impl Default for EnvelopeLimits {
    fn default() -> Self {
        Self { max_items: 500 }
    }
}

/// Why an envelope could not be parsed. Display texts are fixed, short and never contain
/// payload bytes, so they can go into a 400 response and a log line as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("empty envelope")]
    Empty,
    #[error("invalid envelope header")]
    InvalidHeader,
    #[error("invalid item header")]
    InvalidItemHeader,
    #[error("item header without type")]
    MissingItemType,
    #[error("invalid item length")]
    InvalidLength,
    #[error("missing newline after header or payload")]
    MissingNewline,
    #[error("unexpected end of file")]
    UnexpectedEof,
    #[error("too many individual items")]
    TooManyItems,
    #[error("envelope contains internal items")]
    InternalItem,
    #[error("more than one event item")]
    DuplicateEventItem,
    #[error("container item_count does not match its items")]
    ItemCountMismatch,
}

/// The first line of an envelope. Unknown keys are kept and re-emitted in order.
#[derive(Debug, Clone)]
pub struct EnvelopeHeader {
    raw: Bytes,
    fields: Map<String, Value>,
    dirty: bool,
}

/// One item: its header (kept raw and parsed) and its payload bytes.
#[derive(Debug, Clone)]
pub struct Item {
    item_type: ItemType,
    raw_header: Bytes,
    header: Map<String, Value>,
    payload: Bytes,
    dirty: bool,
    /// False only for an item header that ended the body without a `\n` (an empty item at
    /// EOF), so that serializing it does not add one (found by fuzzing).
    header_newline: bool,
}

/// A parsed envelope. Serializing it back with [`Envelope::to_bytes`] reproduces the input
/// exactly when nothing was changed (including whether it ended with a newline).
#[derive(Debug, Clone)]
pub struct Envelope {
    header: EnvelopeHeader,
    items: Vec<Item>,
    trailing_newline: bool,
}

// === impl Envelope ===

impl Envelope {
    /// Parses a decompressed envelope body.
    ///
    /// # Errors
    /// Any framing violation of protocol §3.1, more items than `limits.max_items`, an
    /// `integration` item, or more than one event-like item.
    pub fn parse(body: Bytes, limits: &EnvelopeLimits) -> Result<Self, EnvelopeError> {
        let (fields, raw, mut pos) = match read_header(&body, 0) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return Err(EnvelopeError::Empty),
            Err(HeaderError::Json) => return Err(EnvelopeError::InvalidHeader),
            Err(HeaderError::MissingNewline) => return Err(EnvelopeError::MissingNewline),
        };
        let header = EnvelopeHeader {
            raw,
            fields,
            dirty: false,
        };
        let mut trailing_newline = pos > 0 && body.get(pos - 1) == Some(&b'\n');
        let mut items = Vec::new();
        let mut event_like = 0usize;
        while pos < body.len() {
            let (item, next, terminated) = read_item(&body, pos)?;
            if item.item_type == ItemType::Integration {
                return Err(EnvelopeError::InternalItem);
            }
            if item.item_type.is_event_like() {
                event_like += 1;
                if event_like > 1 {
                    return Err(EnvelopeError::DuplicateEventItem);
                }
            }
            items.push(item);
            if items.len() > limits.max_items {
                return Err(EnvelopeError::TooManyItems);
            }
            trailing_newline = terminated;
            pos = next;
        }
        Ok(Self {
            header,
            items,
            trailing_newline,
        })
    }

    /// Builds an envelope from parts, e.g. when the legacy store endpoint wraps a bare event.
    pub fn from_parts(header: Map<String, Value>, items: Vec<Item>) -> Self {
        Self {
            header: EnvelopeHeader::new(header),
            items,
            trailing_newline: true,
        }
    }

    /// Serializes the envelope: untouched headers and payloads as their original bytes,
    /// changed ones re-encoded as compact JSON with a recomputed `length`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let payload_total: usize = self.items.iter().map(|i| i.payload.len() + 64).sum();
        let mut out = Vec::with_capacity(self.header.raw.len() + payload_total + 16);
        if self.header.dirty {
            write_json(&mut out, &self.header.fields);
        } else {
            out.extend_from_slice(&self.header.raw);
        }
        if self.items.is_empty() {
            if self.trailing_newline {
                out.push(b'\n');
            }
            return out;
        }
        out.push(b'\n');
        let last = self.items.len() - 1;
        for (index, item) in self.items.iter().enumerate() {
            if item.dirty {
                let mut header = item.header.clone();
                header.insert("length".into(), Value::from(item.payload.len()));
                write_json(&mut out, &header);
            } else {
                out.extend_from_slice(&item.raw_header);
            }
            if item.dirty || item.header_newline {
                out.push(b'\n');
            }
            out.extend_from_slice(&item.payload);
            if index != last || self.trailing_newline {
                out.push(b'\n');
            }
        }
        out
    }

    pub fn header(&self) -> &EnvelopeHeader {
        &self.header
    }

    pub fn header_mut(&mut self) -> &mut EnvelopeHeader {
        &mut self.header
    }

    pub fn items(&self) -> &[Item] {
        &self.items
    }

    pub fn items_mut(&mut self) -> &mut [Item] {
        &mut self.items
    }

    /// Removes every item for which `keep` returns false, preserving order.
    pub fn retain_items(&mut self, keep: impl FnMut(&Item) -> bool) {
        self.items.retain(keep);
    }

    pub fn push_item(&mut self, item: Item) {
        self.items.push(item);
    }

    pub fn take_items(&mut self) -> Vec<Item> {
        std::mem::take(&mut self.items)
    }

    /// The envelope's event id (header `event_id`), if it has a valid one.
    pub fn event_id(&self) -> Option<&str> {
        self.header.get_str("event_id")
    }
}

/// A header's fields, its raw bytes, and where the next part starts.
type ParsedHeader = (Map<String, Value>, Bytes, usize);

enum HeaderError {
    Json,
    MissingNewline,
}

/// Reads one single-line JSON object starting at `pos` (after optional JSON whitespace).
/// Returns the object, its raw bytes (including that whitespace) and the position after the
/// `\n` that must follow it
/// (or the end of the body). `Ok(None)` means only whitespace was left.
fn read_header(body: &Bytes, pos: usize) -> Result<Option<ParsedHeader>, HeaderError> {
    let rest = &body[pos..];
    let Some(skip) = rest
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    else {
        return Ok(None);
    };
    let start = pos + skip;
    let mut stream =
        serde_json::Deserializer::from_slice(&body[start..]).into_iter::<Map<String, Value>>();
    let fields = match stream.next() {
        Some(Ok(fields)) => fields,
        Some(Err(_)) | None => return Err(HeaderError::Json),
    };
    let end = start + stream.byte_offset();
    // The skipped whitespace stays part of the raw header, so an untouched envelope with blank
    // lines or leading tabs still serializes byte-identically (found by fuzzing).
    let raw = body.slice(pos..end);
    match body.get(end) {
        None => Ok(Some((fields, raw, end))),
        Some(b'\n') => Ok(Some((fields, raw, end + 1))),
        Some(_) => Err(HeaderError::MissingNewline),
    }
}

/// Reads one item starting at `pos`; returns it and the position after its payload's
/// terminating `\n` (or the end of the body), and whether such a `\n` was there.
fn read_item(body: &Bytes, pos: usize) -> Result<(Item, usize, bool), EnvelopeError> {
    let (header, raw_header, payload_start) = match read_header(body, pos) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => return Err(EnvelopeError::UnexpectedEof),
        Err(HeaderError::Json) => return Err(EnvelopeError::InvalidItemHeader),
        Err(HeaderError::MissingNewline) => return Err(EnvelopeError::MissingNewline),
    };
    let item_type = match header.get("type") {
        Some(Value::String(name)) => ItemType::parse(name),
        _ => return Err(EnvelopeError::MissingItemType),
    };
    let header_ended_at_eof = payload_start == body.len() && body.last() != Some(&b'\n');
    let length = match header.get("length") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or(EnvelopeError::InvalidLength)?,
        ),
    };
    let (payload, next) = match length {
        Some(len) => {
            if header_ended_at_eof && len > 0 {
                return Err(EnvelopeError::UnexpectedEof);
            }
            let end = payload_start
                .checked_add(len)
                .ok_or(EnvelopeError::InvalidLength)?;
            if end > body.len() {
                return Err(EnvelopeError::UnexpectedEof);
            }
            let next = match body.get(end) {
                None => end,
                Some(b'\n') => end + 1,
                Some(_) => return Err(EnvelopeError::MissingNewline),
            };
            (body.slice(payload_start..end), next)
        }
        None => {
            let rest = &body[payload_start..];
            match rest.iter().position(|b| *b == b'\n') {
                Some(nl) => (
                    body.slice(payload_start..payload_start + nl),
                    payload_start + nl + 1,
                ),
                None => (body.slice(payload_start..), body.len()),
            }
        }
    };
    let item = Item {
        item_type,
        raw_header,
        header,
        payload,
        dirty: false,
        header_newline: !header_ended_at_eof,
    };
    let terminated =
        next > payload_start + item.payload.len() && body.get(next - 1) == Some(&b'\n');
    Ok((item, next, terminated))
}

fn write_json(out: &mut Vec<u8>, map: &Map<String, Value>) {
    // Serializing a map of JSON values into a Vec cannot fail.
    if serde_json::to_writer(&mut *out, map).is_err() {
        out.extend_from_slice(b"{}");
    }
}

// === impl EnvelopeHeader ===

impl EnvelopeHeader {
    /// A new header from fields; it is serialized from the fields (it has no raw form).
    pub fn new(fields: Map<String, Value>) -> Self {
        Self {
            raw: Bytes::new(),
            fields,
            dirty: true,
        }
    }

    pub fn fields(&self) -> &Map<String, Value> {
        &self.fields
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.get(key)
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(Value::as_str)
    }

    /// Sets a key; the header will be re-encoded on serialization.
    pub fn set(&mut self, key: &str, value: Value) {
        self.fields.insert(key.to_owned(), value);
        self.dirty = true;
    }

    /// Removes a key (order of the rest is kept). Returns whether it was present.
    pub fn remove(&mut self, key: &str) -> bool {
        let removed = self.fields.shift_remove(key).is_some();
        self.dirty |= removed;
        removed
    }

    /// Mutable access to all fields; marks the header as changed.
    pub fn fields_mut(&mut self) -> &mut Map<String, Value> {
        self.dirty = true;
        &mut self.fields
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }
}

// === impl Item ===

impl Item {
    /// A new item of `item_type` with `payload`; `length` is written on serialization.
    pub fn new(item_type: ItemType, payload: Bytes) -> Self {
        let mut header = Map::new();
        header.insert("type".into(), Value::String(item_type.as_str().to_owned()));
        Self {
            item_type,
            raw_header: Bytes::new(),
            header,
            payload,
            dirty: true,
            header_newline: true,
        }
    }

    pub fn item_type(&self) -> &ItemType {
        &self.item_type
    }

    pub fn header(&self) -> &Map<String, Value> {
        &self.header
    }

    pub fn header_str(&self, key: &str) -> Option<&str> {
        self.header.get(key).and_then(Value::as_str)
    }

    /// The `content_type` header, if any.
    pub fn content_type(&self) -> Option<&str> {
        self.header_str("content_type")
    }

    /// The attachment `filename` header, if any. It may itself be PII.
    pub fn filename(&self) -> Option<&str> {
        self.header_str("filename")
    }

    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Replaces the payload; the header's `length` is recomputed on serialization.
    pub fn set_payload(&mut self, payload: Bytes) {
        self.payload = payload;
        self.dirty = true;
    }

    /// Sets an item header key (e.g. `item_count` after a container changed).
    pub fn set_header(&mut self, key: &str, value: Value) {
        self.header.insert(key.to_owned(), value);
        self.dirty = true;
    }

    /// Removes an item header key (e.g. a PII-bearing `filename`).
    pub fn remove_header(&mut self, key: &str) -> bool {
        let removed = self.header.shift_remove(key).is_some();
        self.dirty |= removed;
        removed
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Envelope, EnvelopeError> {
        Envelope::parse(
            Bytes::copy_from_slice(s.as_bytes()),
            &EnvelopeLimits::default(),
        )
    }

    fn round_trip(s: &str) {
        let env = parse(s).unwrap();
        assert_eq!(String::from_utf8(env.to_bytes()).unwrap(), s);
    }

    #[test]
    fn untouched_envelopes_round_trip_byte_identical() {
        round_trip("{}");
        round_trip("{}\n");
        round_trip("{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\", \"x\" : 1}\n{\"type\":\"event\",\"length\":7}\n{\"a\":1}\n");
        round_trip(
            "{}\n{\"type\":\"attachment\",\"length\":3}\na\nb\n{\"type\":\"session\"}\n{\"x\":2}",
        );
        round_trip("{}\n{\"type\":\"attachment\"}\n");
    }

    /// Fuzzing regression (`fuzz/artifacts/envelope/crash-8d7be8e1…`): whitespace before the
    /// envelope header or between items was skipped by the parser and lost on serialization.
    #[test]
    fn skipped_whitespace_round_trips() {
        round_trip("\t\t\t{\"event_id\":\"784197\"}\n{\"type\":\"event\"}\n{}");
        round_trip("{}\n\n\r\n \t{\"type\":\"event\"}\n{}\n");
        round_trip("  {}");
    }

    /// Fuzzing regression (`fuzz/artifacts/envelope/crash-ff65e02f…`): an item header that
    /// ends the body without a newline came back with one.
    #[test]
    fn item_header_at_eof_round_trips() {
        round_trip("{}\n{\"type\":\"sjson\",\"length.\":4223}");
        round_trip("{}\n{\"type\":\"event\",\"length\":0}");
        round_trip("{}\n{\"type\":\"event\"}\n");
        let mut env = parse("{}\n{\"type\":\"event\"}").unwrap();
        env.items_mut()[0].set_payload(Bytes::from_static(b"{}"));
        assert_eq!(
            String::from_utf8(env.to_bytes()).unwrap(),
            "{}\n{\"type\":\"event\",\"length\":2}\n{}"
        );
        let mut env = parse("\t{}\n\n{\"type\":\"event\"}\n{\"a\":1}\n").unwrap();
        env.items_mut()[0].set_payload(Bytes::from_static(b"{}"));
        assert_eq!(
            String::from_utf8(env.to_bytes()).unwrap(),
            "\t{}\n{\"type\":\"event\",\"length\":2}\n{}\n",
            "a re-encoded item header drops the blank line"
        );
    }

    #[test]
    fn framing_rules() {
        let env = parse("{}\n{\"type\":\"attachment\",\"length\":3}\na\nb\n{\"type\":\"event\"}\n{\"m\":\"x\"}\r\n").unwrap();
        assert_eq!(env.items().len(), 2);
        assert_eq!(&env.items()[0].payload()[..], b"a\nb");
        assert_eq!(&env.items()[1].payload()[..], b"{\"m\":\"x\"}\r");
        let blank_lines = parse("{}\n\n{\"type\":\"event\"}\n{}\n").unwrap();
        assert_eq!(blank_lines.items().len(), 1);
        let at_eof = parse("{}\n{\"type\":\"attachment\"}").unwrap();
        assert!(at_eof.items()[0].payload().is_empty());
    }

    #[test]
    fn relay_parse_errors() {
        assert_eq!(parse("").unwrap_err(), EnvelopeError::Empty);
        assert_eq!(parse("nope").unwrap_err(), EnvelopeError::InvalidHeader);
        assert_eq!(parse("{} \n").unwrap_err(), EnvelopeError::MissingNewline);
        assert_eq!(parse("{}\r\n").unwrap_err(), EnvelopeError::MissingNewline);
        assert_eq!(
            parse("{}\n{\"type\":\"event\"}\n{}\n\n").unwrap_err(),
            EnvelopeError::UnexpectedEof
        );
        assert_eq!(
            parse("{}\n{\"length\":2}\nab").unwrap_err(),
            EnvelopeError::MissingItemType
        );
        assert_eq!(
            parse("{}\n{\"type\":\"event\",\"length\":9}\nab").unwrap_err(),
            EnvelopeError::UnexpectedEof
        );
        assert_eq!(
            parse("{}\n{\"type\":\"event\",\"length\":1}\nab").unwrap_err(),
            EnvelopeError::MissingNewline
        );
        assert_eq!(
            parse("{}\n{\"type\":\"event\",\"length\":-1}\nab").unwrap_err(),
            EnvelopeError::InvalidLength
        );
        assert_eq!(
            parse("{}\n[1]\n").unwrap_err(),
            EnvelopeError::InvalidItemHeader
        );
        assert_eq!(
            parse("{}\n{\"type\":\"integration\"}\n{}").unwrap_err(),
            EnvelopeError::InternalItem
        );
        assert_eq!(
            parse("{}\n{\"type\":\"event\"}\n{}\n{\"type\":\"transaction\"}\n{}").unwrap_err(),
            EnvelopeError::DuplicateEventItem
        );
        let many = format!("{{}}\n{}", "{\"type\":\"session\"}\n{}\n".repeat(501));
        assert_eq!(parse(&many).unwrap_err(), EnvelopeError::TooManyItems);
    }

    #[test]
    fn changed_items_get_a_recomputed_length() {
        let mut env = parse("{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\"}\n{\"type\":\"event\",\"length\":7}\n{\"a\":1}\n{\"type\":\"session\"}\n{}").unwrap();
        env.items_mut()[0].set_payload(Bytes::from_static(b"{\"a\":\"[Filtered]\"}"));
        assert_eq!(
            String::from_utf8(env.to_bytes()).unwrap(),
            "{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\"}\n{\"type\":\"event\",\"length\":18}\n{\"a\":\"[Filtered]\"}\n{\"type\":\"session\"}\n{}"
        );
    }
}
