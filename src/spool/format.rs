//! Byte layout of spool segment files and the reader recovery uses, over plain byte slices.
//!
//! Kept free of files and of the spool's state so that the fuzzer (`fuzz/fuzz_targets/
//! spool_segment.rs`) and the property test drive exactly the code that recovery runs. It is
//! `pub` only for them (`#[doc(hidden)]`); the spool is the only real user.
//!
//! # Current format
//!
//! ```text
//! file header: "SGSPOOL2" [u64 LE salt] [u32 LE crc32 of the salt]
//! record:      [marker F1 'S' 'G' 9E] [u32 LE len] [u32 LE check] [u8 state] [rest: len bytes]
//!              rest = kind u8, payload
//! ```
//!
//! `check` is a CRC-32 started from the segment's random salt and run over the salt, the
//! length field and `rest`: a damaged length fails it like a damaged payload, and a record
//! serialized inside an envelope body (the payload is attacker-controlled) cannot validate,
//! because its author cannot know the salt of the segment it ends up in. The header's CRC
//! covers only the salt so that a damaged magic alone still leaves the salt usable.
//!
//! `state` is outside the check so that releasing a held envelope is an in-place overwrite of
//! one byte (no file growth, so no `ENOSPC`): [`HELD`] when appended, [`RELEASED`] once the
//! envelope may be delivered. Any other value is damage. The two values differ in every bit.
//!
//! # Resynchronisation
//!
//! A record is accepted only when marker, length, check, state and the shape of `rest` all
//! hold. After an invalid record the reader searches forward for the next marker at which a
//! valid record starts and continues there, so damage costs only the records it touches.
//!
//! # Previous format
//!
//! Segments without the file header are read with the previous reader, unchanged:
//! `[u32 LE len][u32 LE crc32 of rest][rest]`, every record released, a bad length ending the
//! scan of the file.

use std::ops::Range;

use memchr::memmem;

/// First bytes of a current-format segment.
pub const FILE_MAGIC: &[u8; 8] = b"SGSPOOL2";
/// Magic, salt, CRC of the salt.
pub const FILE_HEADER_LEN: usize = 20;
/// Sync marker at the start of every record; what the reader searches for after damage.
pub const RECORD_MARKER: [u8; 4] = [0xF1, b'S', b'G', 0x9E];
/// Marker, length, check, state.
pub const RECORD_HEAD: usize = 13;
/// Offset of the state byte within a record.
pub const STATE_AT: usize = 12;
/// State byte of an envelope that must not be delivered yet.
pub const HELD: u8 = 0xA5;
/// State byte of a deliverable envelope (and of every completion).
pub const RELEASED: u8 = 0x5A;
/// `rest` kind of an envelope record.
pub const KIND_ENVELOPE: u8 = 1;
/// `rest` kind of a completion record.
pub const KIND_COMPLETION: u8 = 2;
/// Size of a completion record's `rest`: kind, segment, offset, outcome.
pub const COMPLETION_REST: usize = 1 + 8 + 8 + 1;
/// Record head of the previous format: length and CRC.
pub const LEGACY_HEAD: usize = 8;

/// What a file's first bytes say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// Intact current-format header with this salt.
    Current(u64),
    /// The magic is damaged but the salt and its CRC are intact: records are readable, the
    /// file is still damaged.
    MagicDamaged(u64),
    /// No header: a segment of the previous format.
    Legacy,
    /// Magic present but the salt fails its CRC, or no valid header but a record marker
    /// where the first record of a current-format segment starts: no record can be
    /// validated, and the file is not of the previous format.
    Unreadable,
    /// Shorter than a header and a prefix of one: a crash right after the file was created.
    Torn,
    /// Zero bytes.
    Empty,
}

impl Header {
    /// The salt records are checked against, when known.
    pub fn salt(self) -> Option<u64> {
        match self {
            Self::Current(salt) | Self::MagicDamaged(salt) => Some(salt),
            _ => None,
        }
    }
}

/// A valid record found by [`scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Where the record starts (its id's offset).
    pub offset: usize,
    /// One past its last byte.
    pub end: usize,
    /// Whether the state byte says [`HELD`] (always false in the previous format).
    pub held: bool,
    /// Range of `rest` (kind and payload) in the scanned bytes.
    pub rest: Range<usize>,
}

/// A stretch of bytes that holds no valid record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Where it lies in the scanned bytes: from an invalid record up to the next valid one
    /// (or end of file).
    pub range: Range<usize>,
    /// Envelope records it probably held (see [`scan`]).
    pub lost: usize,
}

/// Everything [`scan`] found in one segment's bytes, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    pub header: Header,
    pub records: Vec<Found>,
    pub damage: Vec<Damage>,
}

impl Scan {
    /// The damage at the very end of the file, if the file ends in damage. Recovery cuts it
    /// off the newest segment as a torn tail (a crash during a write); it never holds a valid
    /// record, because the scan only ends a damaged stretch at end of file when the search
    /// for the next valid record failed.
    pub fn trailing(&self, file_len: usize) -> Option<&Damage> {
        if matches!(self.header, Header::Unreadable) {
            // Not a torn write: the whole file is unreadable and must be kept.
            return None;
        }
        self.damage.last().filter(|d| d.range.end == file_len)
    }
}

/// A decoded `rest` (after its check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    Envelope {
        born_ms: u64,
    },
    Completion {
        segment: u64,
        offset: u64,
        outcome: u8,
    },
}

/// The shape check of `rest`: an envelope has its age and a metadata line, a completion its
/// exact size and a known outcome.
pub fn decode_rest(rest: &[u8]) -> Option<Decoded> {
    match *rest.first()? {
        KIND_ENVELOPE => {
            let born_ms = u64_at(rest, 1)?;
            // The metadata line must be there; it is parsed when the record is read.
            memchr::memchr(b'\n', rest.get(9..)?)?;
            Some(Decoded::Envelope { born_ms })
        }
        KIND_COMPLETION if rest.len() == COMPLETION_REST => {
            let segment = u64_at(rest, 1)?;
            let offset = u64_at(rest, 9)?;
            let outcome = rest[17];
            matches!(outcome, 1..=3).then_some(Decoded::Completion {
                segment,
                offset,
                outcome,
            })
        }
        _ => None,
    }
}

/// The 20-byte header of a new segment.
pub fn file_header(salt: u64) -> [u8; FILE_HEADER_LEN] {
    let mut header = [0; FILE_HEADER_LEN];
    header[..8].copy_from_slice(FILE_MAGIC);
    header[8..16].copy_from_slice(&salt.to_le_bytes());
    header[16..].copy_from_slice(&crc32fast::hash(&salt.to_le_bytes()).to_le_bytes());
    header
}

/// Length and unsalted CRC of a record's `rest`, computed before the salt is known (outside
/// the spool's lock); [`record_head`] combines it with the salt in O(log n).
#[derive(Clone)]
pub struct RestSum {
    len: u32,
    crc: crc32fast::Hasher,
}

impl RestSum {
    /// `None` when the parts do not fit a u32 length.
    pub fn new(parts: &[&[u8]]) -> Option<Self> {
        let len = parts.iter().try_fold(0u32, |sum, part| {
            sum.checked_add(u32::try_from(part.len()).ok()?)
        })?;
        let mut crc = crc32fast::Hasher::new();
        for part in parts {
            crc.update(part);
        }
        Some(Self { len, crc })
    }

    /// Framed size of the record.
    pub fn framed_len(&self) -> u64 {
        RECORD_HEAD as u64 + u64::from(self.len)
    }
}

/// The check of a record: CRC-32 seeded with the salt, over salt, length field and `rest`.
fn check(salt: u64, len: u32, rest: &crc32fast::Hasher) -> u32 {
    let seed = (salt ^ (salt >> 32)) as u32;
    let mut crc = crc32fast::Hasher::new_with_initial(seed);
    crc.update(&salt.to_le_bytes());
    crc.update(&len.to_le_bytes());
    crc.combine(rest);
    crc.finalize()
}

/// The 13-byte head that goes before `rest`.
pub fn record_head(salt: u64, state: u8, rest: &RestSum) -> [u8; RECORD_HEAD] {
    let mut head = [0; RECORD_HEAD];
    head[..4].copy_from_slice(&RECORD_MARKER);
    head[4..8].copy_from_slice(&rest.len.to_le_bytes());
    head[8..12].copy_from_slice(&check(salt, rest.len, &rest.crc).to_le_bytes());
    head[STATE_AT] = state;
    head
}

/// One whole record (head and `rest`) in a buffer; `None` past a u32 length.
pub fn encode_record(salt: u64, state: u8, rest: &[u8]) -> Option<Vec<u8>> {
    let sum = RestSum::new(&[rest])?;
    let mut record = record_head(salt, state, &sum).to_vec();
    record.extend_from_slice(rest);
    Some(record)
}

/// Reads every valid record of a segment's bytes, and the damaged stretches between them.
///
/// `lost` of a stretch estimates the envelope records it held: the markers in it, walked in
/// order, skipping the ones inside a record whose length field is plausible (its payload),
/// counting only those that do not look like a completion record; a stretch without any
/// marker counts 1 (the marker itself was hit). A stretch whose markers all look like
/// completions counts 0: no envelope is lost, its envelope may be sent again.
pub fn scan(data: &[u8]) -> Scan {
    let header = read_header(data);
    match header {
        Header::Current(salt) | Header::MagicDamaged(salt) => scan_current(data, header, salt),
        Header::Legacy => scan_legacy(data),
        Header::Unreadable => Scan {
            header,
            records: Vec::new(),
            damage: vec![Damage {
                range: 0..data.len(),
                lost: lost_in(data, FILE_HEADER_LEN.min(data.len())..data.len()),
            }],
        },
        Header::Torn => Scan {
            header,
            records: Vec::new(),
            damage: vec![Damage {
                range: 0..data.len(),
                lost: 0,
            }],
        },
        Header::Empty => Scan {
            header,
            records: Vec::new(),
            damage: Vec::new(),
        },
    }
}

fn read_header(data: &[u8]) -> Header {
    if data.is_empty() {
        return Header::Empty;
    }
    if data.len() < FILE_HEADER_LEN {
        let magic = &FILE_MAGIC[..data.len().min(FILE_MAGIC.len())];
        if data.starts_with(magic) {
            return Header::Torn;
        }
        return Header::Legacy;
    }
    let salt_ok = u64_at(data, 8)
        .filter(|salt| u32_at(data, 16) == Some(crc32fast::hash(&salt.to_le_bytes())));
    match (data.starts_with(FILE_MAGIC), salt_ok) {
        (true, Some(salt)) => Header::Current(salt),
        (true, None) => Header::Unreadable,
        (false, Some(salt)) => Header::MagicDamaged(salt),
        // A segment of the previous format has its first record's age there, never a marker.
        (false, None) if data[FILE_HEADER_LEN..].starts_with(&RECORD_MARKER) => Header::Unreadable,
        (false, None) => Header::Legacy,
    }
}

/// The valid record starting exactly at `at`, if there is one.
pub fn record_at(data: &[u8], salt: u64, at: usize) -> Option<Found> {
    let head = data.get(at..at.checked_add(RECORD_HEAD)?)?;
    if head[..4] != RECORD_MARKER {
        return None;
    }
    let len = u32_at(head, 4)?;
    let held = match head[STATE_AT] {
        HELD => true,
        RELEASED => false,
        _ => return None,
    };
    let start = at + RECORD_HEAD;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    let rest = data.get(start..end)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(rest);
    if Some(check(salt, len, &crc)) != u32_at(head, 8) {
        return None;
    }
    match decode_rest(rest)? {
        Decoded::Completion { .. } if held => None,
        _ => Some(Found {
            offset: at,
            end,
            held,
            rest: start..end,
        }),
    }
}

fn scan_current(data: &[u8], header: Header, salt: u64) -> Scan {
    let finder = memmem::Finder::new(&RECORD_MARKER);
    let mut records = Vec::new();
    let mut damage = Vec::new();
    let mut pos = FILE_HEADER_LEN;
    while pos < data.len() {
        if let Some(found) = record_at(data, salt, pos) {
            pos = found.end;
            records.push(found);
            continue;
        }
        let next = finder
            .find_iter(&data[pos + 1..])
            .find_map(|at| record_at(data, salt, pos + 1 + at));
        let end = next.as_ref().map_or(data.len(), |found| found.offset);
        damage.push(Damage {
            range: pos..end,
            lost: lost_in(data, pos..end),
        });
        match next {
            Some(found) => {
                pos = found.end;
                records.push(found);
            }
            None => break,
        }
    }
    if matches!(header, Header::MagicDamaged(_)) {
        damage.insert(
            0,
            Damage {
                range: 0..FILE_MAGIC.len(),
                lost: 0,
            },
        );
    }
    Scan {
        header,
        records,
        damage,
    }
}

fn lost_in(data: &[u8], range: Range<usize>) -> usize {
    let region = &data[range.clone()];
    let mut markers = 0;
    let mut envelopes = 0;
    let mut skip_to = 0;
    for at in memmem::find_iter(region, &RECORD_MARKER) {
        if at < skip_to {
            continue;
        }
        markers += 1;
        let len = u32_at(region, at + 4).and_then(|l| usize::try_from(l).ok());
        // The kind byte, not the length: a completion whose length was hit is still one.
        if region.get(at + RECORD_HEAD) != Some(&KIND_COMPLETION) {
            envelopes += 1;
        }
        if let Some(end) = len.and_then(|l| (at + RECORD_HEAD).checked_add(l)) {
            if end <= region.len() {
                skip_to = end;
            }
        }
    }
    if markers == 0 {
        1
    } else {
        envelopes
    }
}

/// The previous format's reader, unchanged in what it accepts: a record is skipped on a bad
/// CRC or shape, a length that cannot be right ends the file.
fn scan_legacy(data: &[u8]) -> Scan {
    let mut records = Vec::new();
    let mut damage = Vec::new();
    let mut offset = 0usize;
    while offset < data.len() {
        let (Some(len), Some(crc)) = (u32_at(data, offset), u32_at(data, offset + 4)) else {
            damage.push(Damage {
                range: offset..data.len(),
                lost: 1,
            });
            break;
        };
        let start = offset + LEGACY_HEAD;
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| start.checked_add(len))
            .filter(|end| len != 0 && *end <= data.len());
        let Some(end) = end else {
            damage.push(Damage {
                range: offset..data.len(),
                lost: 1,
            });
            break;
        };
        let rest = &data[start..end];
        if crc32fast::hash(rest) == crc && decode_rest(rest).is_some() {
            records.push(Found {
                offset,
                end,
                held: false,
                rest: start..end,
            });
        } else {
            damage.push(Damage {
                range: offset..end,
                lost: 1,
            });
        }
        offset = end;
    }
    Scan {
        header: Header::Legacy,
        records,
        damage,
    }
}

pub fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let slice = bytes.get(at..at.checked_add(8)?)?;
    let mut buf = [0; 8];
    buf.copy_from_slice(slice);
    Some(u64::from_le_bytes(buf))
}

pub fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let slice = bytes.get(at..at.checked_add(4)?)?;
    let mut buf = [0; 4];
    buf.copy_from_slice(slice);
    Some(u32::from_le_bytes(buf))
}

/// The property the fuzzer (`fuzz/fuzz_targets/spool_segment.rs`) and a unit test check,
/// kept here so both run the same code. `input` decodes into records to write (salt, state,
/// kind and bytes, envelope bodies possibly holding serialized records framed with another
/// salt or the previous format) and damage (overwritten bytes, a truncation) applied to the
/// segment's bytes. Then [`scan`] must return only records that were written, at their
/// offsets and with their bytes, and every record none of whose bytes was touched, as long
/// as the salt survived. The segment's salt comes from a hash of the whole input, so the
/// input cannot contain records valid under it (an attacker cannot know it either).
/// `input` itself is scanned too (no panic on arbitrary bytes).
///
/// # Errors
/// A description of the first violation (never reached unless the reader is wrong).
pub fn check_damage_property(input: &[u8]) -> Result<(), String> {
    use std::hash::{Hash, Hasher};

    let _ = scan(input);
    let mut hasher = std::hash::DefaultHasher::new();
    input.hash(&mut hasher);
    let salt = hasher.finish();
    let mut bytes = input.iter().copied();
    let mut next = move || bytes.next().unwrap_or(0);
    let mut data = file_header(salt).to_vec();
    // (offset, end, held, rest) of each record written.
    let mut written: Vec<(usize, usize, bool, Vec<u8>)> = Vec::new();
    for _ in 0..next() % 24 {
        let flags = next();
        let held = flags & 1 == 1 && flags & 2 == 0;
        let rest = if flags & 2 == 0 {
            let mut rest = vec![KIND_ENVELOPE];
            rest.extend((0..8).map(|_| next()));
            rest.extend_from_slice(b"{}\n");
            rest.extend((0..next() % 64).map(|_| next()));
            if flags & 4 != 0 {
                // A record framed with a salt derived from the input, i.e. a guess.
                let guess = u64::from_le_bytes([next(), next(), next(), next(), 0, 0, 0, 0]);
                let mut fake = vec![KIND_ENVELOPE];
                fake.extend_from_slice(&[next(); 8]);
                fake.extend_from_slice(b"{}\nfake");
                if let Some(record) = encode_record(guess, RELEASED, &fake) {
                    rest.extend_from_slice(&record);
                }
            }
            if flags & 8 != 0 {
                // A record of the previous format.
                let fake = completion_like(&mut next);
                rest.extend_from_slice(&(fake.len() as u32).to_le_bytes());
                rest.extend_from_slice(&crc32fast::hash(&fake).to_le_bytes());
                rest.extend_from_slice(&fake);
            }
            rest
        } else {
            completion_like(&mut next)
        };
        let state = if held { HELD } else { RELEASED };
        let record = encode_record(salt, state, &rest).ok_or("record too large")?;
        let offset = data.len();
        data.extend_from_slice(&record);
        written.push((offset, data.len(), held, rest));
    }
    let mut touched: Vec<Range<usize>> = Vec::new();
    for _ in 0..next() % 4 {
        let op = next();
        let at = usize::from(u16::from_le_bytes([next(), next()])) % (data.len() + 1);
        if op % 5 == 0 {
            data.truncate(at);
        } else {
            let len = usize::from(next() % 8) + 1;
            let end = (at + len).min(data.len());
            for byte in &mut data[at..end] {
                *byte = next();
            }
            touched.push(at..end);
        }
    }
    let salt_intact =
        data.len() >= FILE_HEADER_LEN && !touched.iter().any(|t| t.start < 20 && t.end > 8);
    let found = scan(&data);
    let mut last_end = 0;
    for record in &found.records {
        let Some((_, _, held, rest)) = written
            .iter()
            .find(|(offset, end, _, _)| *offset == record.offset && *end == record.end)
        else {
            return Err(format!("record at {} was never written", record.offset));
        };
        if data.get(record.rest.clone()) != Some(&rest[..]) {
            return Err(format!("record at {} read back other bytes", record.offset));
        }
        let state_touched = touched
            .iter()
            .any(|t| t.contains(&(record.offset + STATE_AT)));
        if record.held != *held && !state_touched {
            return Err(format!("record at {} changed state", record.offset));
        }
        if record.offset < last_end {
            return Err(format!("record at {} overlaps the previous", record.offset));
        }
        last_end = record.end;
    }
    if salt_intact {
        for (offset, end, _, _) in &written {
            let intact =
                *end <= data.len() && !touched.iter().any(|t| t.start < *end && t.end > *offset);
            if intact && !found.records.iter().any(|r| r.offset == *offset) {
                return Err(format!("intact record at {offset} not read back"));
            }
        }
    }
    Ok(())
}

/// A completion's `rest` from the input.
fn completion_like(next: &mut impl FnMut() -> u8) -> Vec<u8> {
    let mut rest = vec![KIND_COMPLETION];
    rest.extend((0..16).map(|_| next()));
    rest.push(1 + next() % 3);
    rest
}
