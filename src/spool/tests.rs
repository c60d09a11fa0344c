use super::*;
use format::{encode_record, RECORD_HEAD, RECORD_MARKER};

fn meta() -> SpoolMeta {
    SpoolMeta {
        base: "http://127.0.0.1:1".into(),
        public_key: "k".into(),
        project_id: 1,
        dsn: "http://k@127.0.0.1:1/1".into(),
        sentry_client: Some("sentry.python/2.75.0".into()),
        user_agent: None,
        event_id: Some("e".into()),
        categories: vec!["error".into()],
        sdk_public_key: None,
        sdk_project_id: None,
    }
}

fn settings(dir: &Path, max_bytes: u64) -> SpoolSettings {
    SpoolSettings {
        dir: dir.to_owned(),
        max_bytes,
        max_age_secs: 3600,
        segment_bytes: 16 * 1024 * 1024,
        fsync: true,
    }
}

/// Bytes of a segment's file header.
const H: u64 = FILE_HEADER_LEN as u64;

/// Framed size of an envelope record with `meta()` and a body of `body` bytes.
fn record_size(body: usize) -> u64 {
    (RECORD_HEAD + 1 + 8 + serde_json::to_vec(&meta()).unwrap().len() + 1 + body) as u64
}

const COMPLETION_SIZE: u64 = (RECORD_HEAD + COMPLETION_REST) as u64;

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != QUARANTINE_DIR)
        .collect();
    names.sort();
    names
}

fn seg(seq: u64) -> String {
    segment_name(seq)
}

fn id(segment: u64, offset: u64) -> RecordId {
    RecordId { segment, offset }
}

/// Writes and releases one envelope: what an acknowledged envelope looks like.
fn put(spool: &Spool, body: &[u8]) -> RecordId {
    let id = spool.write(&meta(), body).unwrap();
    spool.release(id).unwrap();
    id
}

/// Writes and releases `body-0` … `body-{n-1}` into a spool in `dir`, closes it, returns
/// their ids.
fn write_bodies(dir: &Path, n: usize) -> Vec<RecordId> {
    let spool = Spool::open(&settings(dir, 1 << 20)).unwrap();
    (0..n)
        .map(|i| put(&spool, format!("body-{i}").as_bytes()))
        .collect()
}

fn body(spool: &Spool, id: RecordId) -> Vec<u8> {
    spool.read(id).unwrap().body.to_vec()
}

/// Bodies of every deliverable record, oldest first.
fn bodies(spool: &Spool) -> Vec<String> {
    spool
        .oldest(&HashSet::new(), usize::MAX)
        .into_iter()
        .map(|id| String::from_utf8(body(spool, id)).unwrap())
        .collect()
}

fn expected_bodies(range: std::ops::Range<usize>, except: &[usize]) -> Vec<String> {
    range
        .filter(|i| !except.contains(i))
        .map(|i| format!("body-{i}"))
        .collect()
}

/// Overwrites the length field of the record at `at`.
fn damage_length(path: &Path, at: RecordId, value: u32) -> Vec<u8> {
    let mut data = std::fs::read(path).unwrap();
    let at = at.offset as usize + 4;
    data[at..at + 4].copy_from_slice(&value.to_le_bytes());
    std::fs::write(path, &data).unwrap();
    data
}

fn quarantined(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(QUARANTINE_DIR).join(name)).unwrap()
}

fn salt_of(path: &Path) -> u64 {
    format::u64_at(&std::fs::read(path).unwrap(), 8).unwrap()
}

/// A record of the previous format: `[len][crc32][rest]`.
fn legacy_record(rest: &[u8]) -> Vec<u8> {
    let mut record = (rest.len() as u32).to_le_bytes().to_vec();
    record.extend_from_slice(&crc32fast::hash(rest).to_le_bytes());
    record.extend_from_slice(rest);
    record
}

fn envelope_rest(born_ms: u64, body: &[u8]) -> Vec<u8> {
    let record = envelope_record(born_ms, &meta(), body).unwrap();
    [&record.head[..], body].concat()
}

#[test]
fn records_are_framed_with_marker_length_salted_check_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
    let a = spool.write(&meta(), b"{}\nbody-a").unwrap();
    let b = spool.write(&meta(), b"{}\nbody-b").unwrap();
    assert_eq!(a, id(0, H));
    assert_eq!(b, id(0, H + record_size(9)));
    let path = dir.path().join(seg(0));
    let data = std::fs::read(&path).unwrap();
    assert_eq!(data.len() as u64, H + 2 * record_size(9));
    // File header: magic, salt, CRC of the salt.
    assert_eq!(&data[..8], b"SGSPOOL2");
    let salt = u64::from_le_bytes(data[8..16].try_into().unwrap());
    assert_eq!(
        u32::from_le_bytes(data[16..20].try_into().unwrap()),
        crc32fast::hash(&salt.to_le_bytes())
    );
    // Record: marker, length, check over salt + length + rest seeded with the salt, state.
    let r = &data[20..];
    assert_eq!(r[..4], RECORD_MARKER);
    let len = u32::from_le_bytes(r[4..8].try_into().unwrap());
    assert_eq!(u64::from(len), record_size(9) - RECORD_HEAD as u64);
    let rest = &r[13..13 + len as usize];
    let mut expected = crc32fast::Hasher::new_with_initial((salt ^ (salt >> 32)) as u32);
    expected.update(&salt.to_le_bytes());
    expected.update(&len.to_le_bytes());
    expected.update(rest);
    assert_eq!(
        u32::from_le_bytes(r[8..12].try_into().unwrap()),
        expected.finalize()
    );
    assert_eq!(r[12], HELD, "written held");
    assert_eq!(rest[0], KIND_ENVELOPE);
    let meta_end = 9 + rest[9..].iter().position(|b| *b == b'\n').unwrap();
    let stored: SpoolMeta = serde_json::from_slice(&rest[9..meta_end]).unwrap();
    assert_eq!(stored, meta());
    assert_eq!(&rest[meta_end + 1..], b"{}\nbody-a");
    assert_eq!(spool.usage(), (2, H + 2 * record_size(9)));
    assert_eq!(spool.pending_bytes(), 2 * record_size(9));

    // Release overwrites the one state byte in place: same length, nothing else changed.
    spool.release(a).unwrap();
    let released = std::fs::read(&path).unwrap();
    assert_eq!(released.len(), data.len());
    let state_at = (a.offset as usize) + STATE_AT;
    assert_eq!(released[state_at], RELEASED);
    let mut same = released.clone();
    same[state_at] = HELD;
    assert_eq!(same, data);
    let read = spool.read(a).unwrap();
    assert_eq!(read.meta, meta());
    assert_eq!(read.id, a);
    assert_eq!(&read.body[..], b"{}\nbody-a");
    assert_eq!(body(&spool, b), b"{}\nbody-b", "held records can be read");
    assert!(matches!(spool.release(a), Err(SpoolError::NotHeld)));
    assert!(matches!(spool.release(id(0, 7)), Err(SpoolError::NotHeld)));

    // A completion is a fixed-size record naming the envelope.
    spool.complete(a, Completion::Delivered);
    let data = std::fs::read(&path).unwrap();
    let at = (H + 2 * record_size(9)) as usize;
    assert_eq!(data.len(), at + COMPLETION_SIZE as usize);
    assert_eq!(data[at..at + 4], RECORD_MARKER);
    assert_eq!(data[at + 12], RELEASED);
    assert_eq!(data[at + 13], KIND_COMPLETION);
    assert_eq!(format::u64_at(&data, at + 14), Some(0));
    assert_eq!(format::u64_at(&data, at + 22), Some(H));
    assert_eq!(data[at + 30], Completion::Delivered as u8);
    assert_eq!(spool.usage(), (1, H + 2 * record_size(9) + COMPLETION_SIZE));
    assert!(matches!(spool.read(a), Err(SpoolError::Io(_))), "completed");
    // Completing twice writes nothing more.
    spool.complete(a, Completion::Delivered);
    assert_eq!(spool.usage(), (1, H + 2 * record_size(9) + COMPLETION_SIZE));
    assert!(matches!(spool.release(a), Err(SpoolError::NotHeld)));
}

#[test]
fn a_damaged_length_in_an_older_segment_loses_one_record_and_quarantines_the_file() {
    for bad_len in [0xFFFF_FF00, 3, 0] {
        let dir = tempfile::tempdir().unwrap();
        let ids = write_bodies(dir.path(), 19);
        // A second process: its records go to segment 1, so segment 0 is an older one.
        let later = {
            let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
            put(&spool, b"body-later")
        };
        assert_eq!(later.segment, 1);
        let path = dir.path().join(seg(0));
        let damaged = damage_length(&path, ids[9], bad_len);

        let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
        assert_eq!(
            spool.recovered(),
            &Recovered {
                segments: 2,
                pending: 19,
                completed: 0,
                lost_envelopes: 1,
                damaged_segments: 1,
                quarantined: vec![(seg(0), 1)],
                unconfirmed: 0,
                truncated_bytes: 0,
                imported: 0,
            },
            "length {bad_len:#x}"
        );
        assert_eq!(
            quarantined(dir.path(), &seg(0)),
            damaged,
            "moved byte for byte"
        );
        // The 18 intact records were copied to a fresh segment 2, in their order.
        assert_eq!(files(dir.path()), vec![seg(1), seg(2)]);
        let mut expected = vec!["body-later".to_owned()];
        expected.extend(expected_bodies(0..19, &[9]));
        assert_eq!(bodies(&spool), expected);
        assert_eq!(
            spool.pending_bytes(),
            record_size(10) + 9 * record_size(6) + 9 * record_size(7)
        );
        drop(spool);

        // The copies are durable and released; nothing is lost twice.
        let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
        assert_eq!(spool.recovered().pending, 19);
        assert_eq!(spool.recovered().lost_envelopes, 0);
        assert!(spool.recovered().quarantined.is_empty());
        assert_eq!(bodies(&spool), expected);
    }
}

#[test]
fn a_damaged_length_in_the_newest_segment_is_not_truncated_away() {
    let dir = tempfile::tempdir().unwrap();
    let ids = write_bodies(dir.path(), 19);
    let path = dir.path().join(seg(0));
    let damaged = damage_length(&path, ids[9], 0x7FFF_FFFF);
    let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
    assert_eq!(
        spool.recovered(),
        &Recovered {
            segments: 1,
            pending: 18,
            completed: 0,
            lost_envelopes: 1,
            damaged_segments: 1,
            quarantined: vec![(seg(0), 1)],
            unconfirmed: 0,
            truncated_bytes: 0,
            imported: 0,
        }
    );
    assert_eq!(quarantined(dir.path(), &seg(0)), damaged);
    assert_eq!(files(dir.path()), vec![seg(1)]);
    assert_eq!(bodies(&spool), expected_bodies(0..19, &[9]));
    let copies = 9 * record_size(6) + 9 * record_size(7);
    assert_eq!(spool.usage(), (18, H + copies));
    // New records go to the copies' segment, after them.
    assert_eq!(put(&spool, b"next"), id(1, H + copies));
}

#[test]
fn a_second_damaged_file_of_the_same_name_does_not_overwrite_the_first() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..2 {
        let ids = write_bodies(dir.path(), 3);
        assert_eq!(ids[0].segment, 0, "an emptied spool starts over at 0");
        damage_length(&dir.path().join(seg(0)), ids[1], 1);
        let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
        let name = if round == 0 {
            seg(0)
        } else {
            format!("{}.1", seg(0))
        };
        assert_eq!(spool.recovered().quarantined, vec![(name, 1)]);
        for id in spool.oldest(&HashSet::new(), 10) {
            spool.complete(id, Completion::Delivered);
        }
        spool.maintain();
        assert!(files(dir.path()).is_empty());
    }
    assert_eq!(
        files(&dir.path().join(QUARANTINE_DIR)),
        vec![seg(0), format!("{}.1", seg(0))]
    );
}

#[test]
fn a_torn_tail_is_truncated_and_nothing_else_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let ids = write_bodies(dir.path(), 2);
    let path = dir.path().join(seg(0));
    let good = std::fs::read(&path).unwrap();
    let salt = salt_of(&path);
    // A crash in the middle of the third write: header and half the record.
    let partial = encode_record(salt, HELD, &envelope_rest(now_ms(), b"body-2")).unwrap();
    let half = partial.len() / 2;
    // Only 3 bytes of a head; then a full-length record whose bytes never made it.
    let mut zeroed = partial.clone();
    zeroed[RECORD_HEAD..].fill(0);
    for tail in [partial[..half].to_vec(), partial[..3].to_vec(), zeroed] {
        let mut torn = good.clone();
        torn.extend_from_slice(&tail);
        std::fs::write(&path, &torn).unwrap();
        let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
        assert_eq!(
            spool.recovered(),
            &Recovered {
                segments: 1,
                pending: 2,
                truncated_bytes: tail.len() as u64,
                ..Recovered::default()
            }
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            good,
            "cut back to the last record"
        );
        assert!(!dir.path().join(QUARANTINE_DIR).exists());
        assert_eq!(spool.oldest(&HashSet::new(), 10), ids);
        assert_eq!(spool.usage(), (2, good.len() as u64));
    }
}

#[test]
fn a_segment_with_damage_and_a_torn_tail_is_quarantined_whole() {
    let dir = tempfile::tempdir().unwrap();
    let ids = write_bodies(dir.path(), 3);
    let path = dir.path().join(seg(0));
    damage_length(&path, ids[1], 9);
    let mut data = std::fs::read(&path).unwrap();
    data.extend_from_slice(&RECORD_MARKER[..3]);
    std::fs::write(&path, &data).unwrap();
    let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
    assert_eq!(
        spool.recovered().lost_envelopes,
        1,
        "the tail is not counted"
    );
    assert_eq!(spool.recovered().truncated_bytes, 0);
    assert_eq!(quarantined(dir.path(), &seg(0)), data, "tail included");
    assert_eq!(bodies(&spool), ["body-0", "body-2"]);
}

#[test]
fn a_destroyed_file_header_keeps_the_whole_segment_in_quarantine() {
    let dir = tempfile::tempdir().unwrap();
    write_bodies(dir.path(), 4);
    let path = dir.path().join(seg(0));
    let mut data = std::fs::read(&path).unwrap();
    data[..FILE_HEADER_LEN].fill(0);
    std::fs::write(&path, &data).unwrap();
    let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
    // Without the salt no record can be trusted; nothing is cut, the file is kept.
    assert_eq!(
        spool.recovered(),
        &Recovered {
            segments: 1,
            lost_envelopes: 4,
            damaged_segments: 1,
            quarantined: vec![(seg(0), 4)],
            ..Recovered::default()
        }
    );
    assert_eq!(quarantined(dir.path(), &seg(0)), data);
    assert!(files(dir.path()).is_empty());
}

#[test]
fn a_damaged_magic_alone_costs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_bodies(dir.path(), 4);
    let path = dir.path().join(seg(0));
    let mut data = std::fs::read(&path).unwrap();
    data[..8].copy_from_slice(b"XXXXXXXX");
    std::fs::write(&path, &data).unwrap();
    let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
    assert_eq!(spool.recovered().lost_envelopes, 0);
    assert_eq!(spool.recovered().quarantined, vec![(seg(0), 0)]);
    assert_eq!(bodies(&spool), expected_bodies(0..4, &[]));
}

#[test]
fn a_torn_file_header_of_the_newest_segment_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let ids = write_bodies(dir.path(), 2);
    // A crash right after the next segment was created.
    std::fs::write(dir.path().join(seg(1)), &b"SGSPOOL2\x01\x02"[..]).unwrap();
    let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
    assert_eq!(spool.recovered().truncated_bytes, 10);
    assert_eq!(spool.recovered().lost_envelopes, 0);
    assert!(spool.recovered().quarantined.is_empty());
    assert_eq!(spool.oldest(&HashSet::new(), 10), ids);
    assert_eq!(
        files(dir.path()),
        vec![seg(0)],
        "the empty segment is deleted"
    );
}

#[test]
fn a_damaged_completion_costs_no_envelope_and_at_worst_a_second_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let d = {
        let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
        put(&spool, b"body-a");
        let b = put(&spool, b"body-b");
        put(&spool, b"body-c");
        spool.complete(b, Completion::Delivered);
        put(&spool, b"body-d")
    };
    let completion = id(0, d.offset - COMPLETION_SIZE);
    let path = dir.path().join(seg(0));
    let damaged = damage_length(&path, completion, 0xFFFF);
    let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
    assert_eq!(
        spool.recovered(),
        &Recovered {
            segments: 1,
            pending: 4,
            completed: 0,
            lost_envelopes: 0,
            damaged_segments: 1,
            quarantined: vec![(seg(0), 0)],
            unconfirmed: 0,
            truncated_bytes: 0,
            imported: 0,
        }
    );
    assert_eq!(quarantined(dir.path(), &seg(0)), damaged);
    // b's completion is gone with it: b is sent again (at least once).
    assert_eq!(bodies(&spool), ["body-a", "body-b", "body-c", "body-d"]);
}

#[test]
fn completions_a_damaged_segment_holds_for_older_segments_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = {
        let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
        (put(&spool, b"body-a"), put(&spool, b"body-b"))
    };
    let c = {
        let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
        // a's completion lands in segment 1, between c and d.
        let c = put(&spool, b"body-c");
        spool.complete(a, Completion::Delivered);
        put(&spool, b"body-d");
        c
    };
    assert_eq!((a.segment, b.segment, c.segment), (0, 0, 1));
    let path = dir.path().join(seg(1));
    let damaged = damage_length(&path, c, 5);
    let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
    assert_eq!(spool.recovered().completed, 1);
    assert_eq!(spool.recovered().lost_envelopes, 1);
    assert_eq!(spool.recovered().quarantined, vec![(seg(1), 1)]);
    assert_eq!(quarantined(dir.path(), &seg(1)), damaged);
    assert_eq!(files(dir.path()), vec![seg(0), seg(2)]);
    assert_eq!(bodies(&spool), ["body-b", "body-d"]);
    // Segment 2 holds d's copy and a's completion: a never comes back.
    assert_eq!(
        spool.usage(),
        (2, 2 * H + 3 * record_size(6) + COMPLETION_SIZE)
    );
    drop(spool);
    let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
    assert_eq!(spool.recovered().completed, 1);
    assert_eq!(bodies(&spool), ["body-b", "body-d"]);
    spool.complete(b, Completion::Delivered);
    assert_eq!(files(dir.path()), vec![seg(2), seg(3)], "segment 0 went");
}

#[test]
fn records_serialized_inside_a_body_never_surface_after_damage() {
    // What an attacker can put in a payload: records framed like ours with salts it may
    // guess, held and released, and a record of the previous format. Only a record with the
    // segment's own salt (random, never exposed) would validate.
    let rest = envelope_rest(1, b"{}\nfake");
    let mut payload = b"{\"x\":\"".to_vec();
    for salt in [0, 1, u64::MAX, 0x5347_5350_4f4f_4c32] {
        payload.extend_from_slice(&encode_record(salt, RELEASED, &rest).unwrap());
        payload.extend_from_slice(&encode_record(salt, HELD, &rest).unwrap());
    }
    payload.extend_from_slice(&legacy_record(&rest));
    payload.extend_from_slice(b"\"}");
    let fakes = 8;
    // Damage the enclosing record's length (the scan cannot skip its payload) and, in a
    // second round, one byte of its body (the length still says where its payload ends).
    for damage_len in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
        let x = put(&spool, b"body-x");
        let evil = put(&spool, &payload);
        let y = put(&spool, b"body-y");
        drop(spool);
        let path = dir.path().join(seg(0));
        if damage_len {
            damage_length(&path, evil, 0xFFFF_FFFF);
        } else {
            let mut data = std::fs::read(&path).unwrap();
            data[(y.offset - 3) as usize] ^= 0x20;
            std::fs::write(&path, &data).unwrap();
        }
        let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
        let lost = if damage_len { 1 + fakes } else { 1 };
        assert_eq!(spool.recovered().lost_envelopes, lost, "{damage_len}");
        assert_eq!(spool.recovered().pending, 2);
        assert_eq!(bodies(&spool), ["body-x", "body-y"]);
        // The scan of the quarantined file found exactly the two real records.
        let scan = format::scan(&quarantined(dir.path(), &seg(0)));
        let offsets: Vec<u64> = scan.records.iter().map(|r| r.offset as u64).collect();
        assert_eq!(offsets, vec![x.offset, y.offset]);
    }
}

#[test]
fn held_records_are_invisible_to_oldest_and_expire_until_released() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(dir.path(), 1 << 20);
    settings.max_age_secs = 0;
    let spool = Spool::open(&settings).unwrap();
    let a = spool.write(&meta(), b"body-a").unwrap();
    let b = put(&spool, b"body-b");
    let c = spool.write(&meta(), b"body-c").unwrap();
    assert_eq!(spool.oldest(&HashSet::new(), 10), vec![b]);
    assert_eq!(
        spool.usage(),
        (3, H + 3 * record_size(6)),
        "held ones count"
    );
    assert_eq!(spool.pending_bytes(), 3 * record_size(6));
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(spool.expire(&HashSet::new()), 1, "only the released one");
    assert_eq!(spool.oldest(&HashSet::new(), 10), vec![]);
    assert_eq!(spool.usage().0, 2);
    spool.release(a).unwrap();
    assert_eq!(spool.oldest(&HashSet::new(), 10), vec![a]);
    assert!(matches!(spool.release(a), Err(SpoolError::NotHeld)));
    // An envelope whose audit record failed: dropped while held.
    spool.complete(c, Completion::Dropped);
    assert!(matches!(spool.release(c), Err(SpoolError::NotHeld)));
    assert_eq!(spool.usage().0, 1);
    assert_eq!(spool.pending_bytes(), record_size(6));
    assert_eq!(spool.expire(&HashSet::new()), 1);
    assert_eq!(spool.usage().0, 0);
    drop(spool);
    let spool = Spool::open(&settings).unwrap();
    assert_eq!(
        spool.recovered(),
        &Recovered {
            segments: 1,
            completed: 3,
            ..Recovered::default()
        }
    );
}

#[test]
fn unreleased_held_records_are_dropped_at_start_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let b = {
        let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
        spool.write(&meta(), b"body-a").unwrap();
        let b = put(&spool, b"body-b");
        spool.write(&meta(), b"body-c").unwrap();
        b
    };
    let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
    assert_eq!(
        spool.recovered(),
        &Recovered {
            segments: 1,
            pending: 1,
            unconfirmed: 2,
            ..Recovered::default()
        }
    );
    assert_eq!(spool.oldest(&HashSet::new(), 10), vec![b]);
    // Their completions (dropped) are in a new segment, so they stay dropped.
    assert_eq!(files(dir.path()), vec![seg(0), seg(1)]);
    assert_eq!(
        spool.usage(),
        (1, 2 * H + 3 * record_size(6) + 2 * COMPLETION_SIZE)
    );
    assert_eq!(spool.pending_bytes(), record_size(6));
    drop(spool);
    let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
    assert_eq!(
        spool.recovered(),
        &Recovered {
            segments: 2,
            pending: 1,
            completed: 2,
            ..Recovered::default()
        }
    );
    assert_eq!(body(&spool, b), b"body-b");
}

#[test]
fn a_release_survives_a_restart_also_in_a_closed_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(dir.path(), 1 << 20);
    // One envelope per segment: the release of `a` patches a segment that is not active.
    settings.segment_bytes = H + record_size(6);
    let (a, b) = {
        let spool = Spool::open(&settings).unwrap();
        let a = spool.write(&meta(), b"body-a").unwrap();
        let b = spool.write(&meta(), b"body-b").unwrap();
        assert_eq!((a.segment, b.segment), (0, 1));
        spool.release(a).unwrap();
        assert_eq!(spool.oldest(&HashSet::new(), 10), vec![a]);
        (a, b)
    };
    let data = std::fs::read(dir.path().join(seg(0))).unwrap();
    assert_eq!(data[a.offset as usize + STATE_AT], RELEASED);
    let spool = Spool::open(&settings).unwrap();
    assert_eq!(spool.recovered().pending, 1);
    assert_eq!(spool.recovered().unconfirmed, 1, "b was never released");
    assert_eq!(spool.oldest(&HashSet::new(), 10), vec![a]);
    assert_eq!(body(&spool, a), b"body-a");
    assert!(matches!(spool.read(b), Err(SpoolError::Io(_))));
}

#[test]
fn a_state_byte_that_is_neither_held_nor_released_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let ids = write_bodies(dir.path(), 3);
    let path = dir.path().join(seg(0));
    let mut data = std::fs::read(&path).unwrap();
    data[ids[1].offset as usize + STATE_AT] = 0;
    std::fs::write(&path, &data).unwrap();
    let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
    assert_eq!(spool.recovered().lost_envelopes, 1);
    assert_eq!(spool.recovered().quarantined, vec![(seg(0), 1)]);
    assert_eq!(bodies(&spool), ["body-0", "body-2"]);
}

#[test]
fn segments_of_the_previous_format_are_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = legacy_record(&envelope_rest(now_ms(), b"old-a"));
    let b_at = data.len() as u64;
    data.extend_from_slice(&legacy_record(&envelope_rest(now_ms(), b"old-b")));
    data.extend_from_slice(&legacy_record(&completion_rest(id(0, 0), 1)));
    std::fs::write(dir.path().join(seg(0)), &data).unwrap();
    let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
    assert_eq!(
        spool.recovered(),
        &Recovered {
            segments: 1,
            pending: 1,
            completed: 1,
            ..Recovered::default()
        }
    );
    let b = id(0, b_at);
    assert_eq!(spool.oldest(&HashSet::new(), 10), vec![b], "released");
    assert_eq!(body(&spool, b), b"old-b");
    assert_eq!(spool.usage(), (1, data.len() as u64));
    let next = put(&spool, b"new");
    assert_eq!(next, id(1, H), "new records go to a new-format segment");
    spool.complete(b, Completion::Delivered);
    assert_eq!(files(dir.path()), vec![seg(1)]);
    drop(spool);
    let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
    assert_eq!(spool.oldest(&HashSet::new(), 10), vec![next]);
    assert_eq!(body(&spool, next), b"new");
}

#[test]
fn a_bad_checksum_in_a_segment_of_the_previous_format_costs_that_record_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = Vec::new();
    for name in ["body-0", "body-1", "body-2"] {
        data.extend_from_slice(&legacy_record(&envelope_rest(now_ms(), name.as_bytes())));
    }
    let last_byte_of_second = 2 * data.len() / 3 - 1;
    data[last_byte_of_second] ^= 0xff;
    std::fs::write(dir.path().join(seg(0)), &data).unwrap();
    let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
    assert_eq!(
        spool.recovered(),
        &Recovered {
            segments: 1,
            pending: 2,
            lost_envelopes: 1,
            damaged_segments: 1,
            quarantined: vec![(seg(0), 1)],
            ..Recovered::default()
        }
    );
    assert_eq!(quarantined(dir.path(), &seg(0)), data);
    assert_eq!(bodies(&spool), ["body-0", "body-2"]);
    assert_eq!(files(dir.path()), vec![seg(1)]);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    /// The fuzz target's property (fuzz/fuzz_targets/spool_segment.rs), so CI runs it.
    #[test]
    fn damage_never_surfaces_unwritten_records_nor_hides_intact_ones(
        input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)
    ) {
        proptest::prop_assert_eq!(format::check_damage_property(&input), Ok(()));
    }
}

#[test]
fn segments_roll_over_and_are_deleted_when_all_their_records_are_complete() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(dir.path(), 1 << 20);
    let size = record_size(100);
    // Three envelopes fit in a segment; the fourth starts the next one.
    settings.segment_bytes = H + 3 * size + COMPLETION_SIZE;
    let spool = Spool::open(&settings).unwrap();
    let ids: Vec<RecordId> = (0..4).map(|_| put(&spool, &[b'x'; 100])).collect();
    assert_eq!(ids[2], id(0, H + 2 * size));
    assert_eq!(ids[3], id(1, H));
    assert_eq!(files(dir.path()), vec![seg(0), seg(1)]);
    // Completions go to the active segment 1 and refer back to segment 0.
    spool.complete(ids[0], Completion::Delivered);
    spool.complete(ids[1], Completion::Dropped);
    spool.complete(ids[3], Completion::Delivered);
    assert_eq!(
        files(dir.path()),
        vec![seg(0), seg(1)],
        "ids[2] still pending"
    );
    assert_eq!(spool.usage(), (1, 2 * H + 4 * size + 3 * COMPLETION_SIZE));
    // Fill segment 1 so that the next write rolls to segment 2.
    let more: Vec<RecordId> = (0..2).map(|_| put(&spool, &[b'y'; 100])).collect();
    assert_eq!(more[1], id(2, H));
    // The last record of segment 0 completes: segment 0 goes, and with it segment 1, whose
    // own records are complete and whose completions named only segment 0.
    spool.complete(ids[2], Completion::Delivered);
    assert_eq!(
        files(dir.path()),
        vec![seg(1), seg(2)],
        "segment 1 still holds the pending more[0]"
    );
    spool.complete(more[0], Completion::Delivered);
    assert_eq!(files(dir.path()), vec![seg(2)]);
    spool.complete(more[1], Completion::Delivered);
    assert_eq!(files(dir.path()), vec![seg(2)], "the active segment stays");
    assert_eq!(spool.usage(), (0, H + size + 3 * COMPLETION_SIZE));
    spool.maintain();
    assert!(
        files(dir.path()).is_empty(),
        "an idle, complete spool is empty"
    );
    assert_eq!(spool.usage(), (0, 0));
    let next = put(&spool, b"z");
    assert_eq!(next, id(3, H));
}

#[test]
fn a_segment_outlives_the_records_it_holds_completions_for_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(dir.path(), 1 << 20);
    let size = record_size(10);
    settings.segment_bytes = H + 2 * size;
    let spool = Spool::open(&settings).unwrap();
    let a = put(&spool, b"aaaaaaaaaa");
    let b = put(&spool, b"bbbbbbbbbb");
    let c = put(&spool, b"cccccccccc");
    assert_eq!((a.segment, b.segment, c.segment), (0, 0, 1));
    // a's completion lands in segment 1; c completes, so segment 1 has no pending record,
    // but it must stay while segment 0 (with b pending) exists.
    spool.complete(a, Completion::Delivered);
    spool.complete(c, Completion::Delivered);
    drop(spool);
    let spool = Spool::open(&settings).unwrap();
    assert_eq!(spool.recovered().pending, 1);
    assert_eq!(spool.recovered().completed, 2);
    assert_eq!(files(dir.path()), vec![seg(0), seg(1)]);
    assert_eq!(spool.oldest(&HashSet::new(), 10), vec![b]);
    spool.complete(b, Completion::Delivered);
    // b's completion went to the new segment 2 (active); 0 and 1 are gone.
    assert_eq!(files(dir.path()), vec![seg(2)]);
    drop(spool);
    let spool = Spool::open(&settings).unwrap();
    assert_eq!(spool.recovered().pending, 0);
    assert!(
        files(dir.path()).is_empty(),
        "fully complete at start: deleted"
    );
}

#[test]
fn restart_recovers_pending_records_but_not_completed_or_expired_ones() {
    let dir = tempfile::tempdir().unwrap();
    // A spool of the one-file-per-envelope format with one old envelope and one fresh one.
    let old_name = "0000000000001-000000-aaaaaaaa.env";
    let fresh_ms = now_ms() - 1000;
    let fresh_name = format!("{fresh_ms:013}-000001-bbbbbbbb.env");
    let mut old_file = serde_json::to_vec(&meta()).unwrap();
    old_file.extend_from_slice(b"\nold-body");
    std::fs::write(dir.path().join(old_name), &old_file).unwrap();
    let mut fresh_file = serde_json::to_vec(&meta()).unwrap();
    fresh_file.extend_from_slice(b"\nfresh-body");
    std::fs::write(dir.path().join(&fresh_name), &fresh_file).unwrap();
    std::fs::write(dir.path().join("broken.env"), b"no metadata line").unwrap();
    std::fs::write(dir.path().join("x.env.tmp"), b"half").unwrap();

    let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
    assert_eq!(spool.recovered().imported, 2);
    assert_eq!(spool.recovered().lost_envelopes, 1);
    assert_eq!(
        files(dir.path()),
        vec![seg(0)],
        "old files imported, then deleted"
    );
    // Imported envelopes were acknowledged long ago: released.
    let imported = spool.oldest(&HashSet::new(), 10);
    assert_eq!(imported.len(), 2);
    let (old, fresh) = (imported[0], imported[1]);
    assert_eq!(body(&spool, old), b"old-body");
    assert_eq!(body(&spool, fresh), b"fresh-body");
    let delivered = put(&spool, b"delivered");
    let pending = put(&spool, b"pending");
    let busy = put(&spool, b"busy");
    spool.complete(delivered, Completion::Delivered);
    // The old import is past max_age (its age came along); a busy record is left alone.
    assert_eq!(spool.expire(&HashSet::from([busy])), 1);
    assert_eq!(
        spool.oldest(&HashSet::new(), 10),
        vec![fresh, pending, busy]
    );
    drop(spool);

    let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
    assert_eq!(
        spool.recovered(),
        &Recovered {
            segments: 1,
            pending: 3,
            completed: 2,
            ..Recovered::default()
        }
    );
    assert_eq!(
        spool.oldest(&HashSet::new(), 10),
        vec![fresh, pending, busy]
    );
    assert_eq!(spool.oldest(&HashSet::from([fresh]), 1), vec![pending]);
    assert_eq!(body(&spool, fresh), b"fresh-body");
    assert_eq!(body(&spool, pending), b"pending");
    assert_eq!(spool.read(busy).unwrap().meta, meta());
    assert_eq!(
        spool.pending_bytes(),
        record_size(10) + record_size(7) + record_size(4)
    );
}

#[test]
fn a_full_spool_refuses_until_space_is_given_back() {
    let dir = tempfile::tempdir().unwrap();
    let size = record_size(100);
    // A segment of one envelope, header included.
    let seg_bytes = H + size;
    // Segments are at most max_bytes / 8: here one envelope each.
    let spool = Spool::open(&settings(dir.path(), 3 * seg_bytes)).unwrap();
    let a = put(&spool, &[b'x'; 100]);
    let b = put(&spool, &[b'x'; 100]);
    assert_eq!((a.segment, b.segment), (0, 1));
    assert!(spool.has_room(seg_bytes));
    assert!(!spool.has_room(seg_bytes + 1));
    // The new segment's header counts: this one would end 1 byte past the cap.
    assert!(matches!(
        spool.write(&meta(), &[b'x'; 101]),
        Err(SpoolError::Full)
    ));
    assert_eq!(spool.usage(), (2, 2 * seg_bytes));
    // a's completion starts segment 2; segment 0 is deleted.
    spool.complete(a, Completion::Delivered);
    assert_eq!(files(dir.path()), vec![seg(1), seg(2)]);
    assert_eq!(spool.usage(), (1, seg_bytes + H + COMPLETION_SIZE));
    let c = put(&spool, &[b'x'; 100]);
    let d = put(&spool, &[b'x'; 100]);
    assert_eq!(files(dir.path()), vec![seg(1), seg(3), seg(4)]);
    assert_eq!(spool.usage(), (3, 3 * seg_bytes));
    assert!(matches!(spool.write(&meta(), b""), Err(SpoolError::Full)));
    // Completion records count until their segment is deleted (conservative)…
    spool.complete(b, Completion::Delivered);
    assert_eq!(spool.usage(), (2, 2 * seg_bytes + H + COMPLETION_SIZE));
    assert!(!spool.has_room(seg_bytes));
    // …and a write that does not fit first gives back an active segment that holds
    // nothing needed.
    let e = put(&spool, &[b'e'; 100]);
    assert_eq!(spool.usage(), (3, 3 * seg_bytes));
    assert_eq!(files(dir.path()), vec![seg(3), seg(4), seg(6)]);
    assert_eq!(body(&spool, c), vec![b'x'; 100]);
    assert_eq!(body(&spool, d), vec![b'x'; 100]);
    assert_eq!(body(&spool, e), vec![b'e'; 100]);
}

#[test]
fn concurrent_writers_share_group_commits() {
    let dir = tempfile::tempdir().unwrap();
    let spool = std::sync::Arc::new(Spool::open(&settings(dir.path(), 1 << 30)).unwrap());
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let spool = std::sync::Arc::clone(&spool);
            std::thread::spawn(move || {
                (0..50)
                    .map(|n| {
                        let id = put(&spool, format!("t{t}-n{n}").as_bytes());
                        (id, format!("t{t}-n{n}"))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let written: Vec<(RecordId, String)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert_eq!(written.len(), 400);
    assert_eq!(
        lock(&spool.sync).synced,
        800,
        "every write and release covered"
    );
    for (id, expected) in &written {
        assert_eq!(body(&spool, *id), expected.as_bytes());
    }
    drop(spool);
    let spool = Spool::open(&settings(dir.path(), 1 << 30)).unwrap();
    assert_eq!(spool.recovered().pending, 400);
    assert_eq!(spool.recovered().unconfirmed, 0);
}
