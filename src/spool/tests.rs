use super::*;

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

/// Framed size of an envelope record with `meta()` and a body of `body` bytes.
fn record_size(body: usize) -> u64 {
    (HEADER + 1 + 8 + serde_json::to_vec(&meta()).unwrap().len() + 1 + body) as u64
}

const COMPLETION_SIZE: u64 = (HEADER + COMPLETION_REST) as u64;

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn seg(seq: u64) -> String {
    segment_name(seq)
}

/// Writes `body-0` … `body-{n-1}` into a spool in `dir`, closes it, returns their ids.
fn write_bodies(dir: &Path, n: usize) -> Vec<RecordId> {
    let spool = Spool::open(&settings(dir, 1 << 20)).unwrap();
    (0..n)
        .map(|i| {
            spool
                .write(&meta(), format!("body-{i}").as_bytes())
                .unwrap()
        })
        .collect()
}

fn body(spool: &Spool, id: RecordId) -> Vec<u8> {
    spool.read(id).unwrap().body.to_vec()
}

#[test]
fn records_are_framed_with_length_and_crc() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
    let a = spool.write(&meta(), b"{}\nbody-a").unwrap();
    let b = spool.write(&meta(), b"{}\nbody-b").unwrap();
    assert_eq!(
        a,
        RecordId {
            segment: 0,
            offset: 0
        }
    );
    assert_eq!(
        b,
        RecordId {
            segment: 0,
            offset: record_size(9)
        }
    );
    let data = std::fs::read(dir.path().join(seg(0))).unwrap();
    assert_eq!(data.len() as u64, 2 * record_size(9));
    let len = u32::from_le_bytes(data[0..4].try_into().unwrap()) as usize;
    assert_eq!(len as u64, record_size(9) - HEADER as u64);
    let crc = u32::from_le_bytes(data[4..8].try_into().unwrap());
    assert_eq!(crc, crc32fast::hash(&data[8..8 + len]));
    assert_eq!(data[8], KIND_ENVELOPE);
    let meta_end = 17 + data[17..].iter().position(|b| *b == b'\n').unwrap();
    let stored: SpoolMeta = serde_json::from_slice(&data[17..meta_end]).unwrap();
    assert_eq!(stored, meta());
    assert_eq!(&data[meta_end + 1..8 + len], b"{}\nbody-a");
    let read = spool.read(a).unwrap();
    assert_eq!(read.meta, meta());
    assert_eq!(read.id, a);
    assert_eq!(&read.body[..], b"{}\nbody-a");
    assert_eq!(body(&spool, b), b"{}\nbody-b");
    assert_eq!(spool.usage(), (2, 2 * record_size(9)));
    assert_eq!(spool.pending_bytes(), 2 * record_size(9));

    // A completion is a fixed-size record naming the envelope.
    spool.complete(a, Completion::Delivered);
    let data = std::fs::read(dir.path().join(seg(0))).unwrap();
    let at = (2 * record_size(9)) as usize;
    assert_eq!(data.len(), at + COMPLETION_SIZE as usize);
    assert_eq!(data[at + 8], KIND_COMPLETION);
    assert_eq!(u64_at(&data, at + 9), Some(0));
    assert_eq!(u64_at(&data, at + 17), Some(0));
    assert_eq!(data[at + 25], Completion::Delivered as u8);
    assert_eq!(spool.usage(), (1, 2 * record_size(9) + COMPLETION_SIZE));
    assert!(matches!(spool.read(a), Err(SpoolError::Io(_))), "completed");
    // Completing twice writes nothing more.
    spool.complete(a, Completion::Delivered);
    assert_eq!(spool.usage(), (1, 2 * record_size(9) + COMPLETION_SIZE));
}

#[test]
fn a_bad_checksum_in_the_middle_is_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let ids = write_bodies(dir.path(), 3);
    let path = dir.path().join(seg(0));
    let mut data = std::fs::read(&path).unwrap();
    let last_byte_of_second = (ids[2].offset - 1) as usize;
    data[last_byte_of_second] ^= 0xff;
    std::fs::write(&path, &data).unwrap();
    let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
    assert_eq!(
        spool.recovered(),
        &Recovered {
            segments: 1,
            pending: 2,
            completed: 0,
            corrupt: 1,
            truncated_bytes: 0,
            imported: 0,
        }
    );
    assert_eq!(spool.oldest(&HashSet::new(), 10), vec![ids[0], ids[2]]);
    assert_eq!(body(&spool, ids[0]), b"body-0");
    assert_eq!(body(&spool, ids[2]), b"body-2");
    // New records go to a new segment; the old one is never appended to.
    let next = spool.write(&meta(), b"body-3").unwrap();
    assert_eq!(
        next,
        RecordId {
            segment: 1,
            offset: 0
        }
    );
}

#[test]
fn a_torn_tail_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let ids = write_bodies(dir.path(), 2);
    let path = dir.path().join(seg(0));
    let good = std::fs::read(&path).unwrap();
    // A crash in the middle of the third write: header and part of the payload.
    let partial = envelope_record(now_ms(), &meta(), b"body-2")
        .unwrap()
        .to_vec();
    let mut torn = good.clone();
    torn.extend_from_slice(&partial[..20]);
    std::fs::write(&path, &torn).unwrap();
    let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
    assert_eq!(spool.recovered().truncated_bytes, 20);
    assert_eq!(spool.recovered().corrupt, 0);
    assert_eq!(spool.recovered().pending, 2);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        good,
        "cut back to the last record"
    );
    assert_eq!(spool.oldest(&HashSet::new(), 10), ids);
    assert_eq!(spool.usage(), (2, good.len() as u64));
    drop(spool);

    // Only 3 bytes of a header; then a full-length record whose bytes never made it.
    for tail in [partial[..3].to_vec(), {
        let mut zeroed = partial.clone();
        zeroed[HEADER..].fill(0);
        zeroed
    }] {
        let mut torn = good.clone();
        torn.extend_from_slice(&tail);
        std::fs::write(&path, &torn).unwrap();
        let spool = Spool::open(&settings(dir.path(), 1 << 20)).unwrap();
        assert_eq!(spool.recovered().truncated_bytes, tail.len() as u64);
        assert_eq!(spool.recovered().pending, 2);
        assert_eq!(std::fs::read(&path).unwrap(), good);
    }
}

#[test]
fn segments_roll_over_and_are_deleted_when_all_their_records_are_complete() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(dir.path(), 1 << 20);
    let size = record_size(100);
    // Three envelopes fit in a segment; the fourth starts the next one.
    settings.segment_bytes = 3 * size + COMPLETION_SIZE;
    let spool = Spool::open(&settings).unwrap();
    let ids: Vec<RecordId> = (0..4)
        .map(|_| spool.write(&meta(), &[b'x'; 100]).unwrap())
        .collect();
    assert_eq!(
        ids[2],
        RecordId {
            segment: 0,
            offset: 2 * size
        }
    );
    assert_eq!(
        ids[3],
        RecordId {
            segment: 1,
            offset: 0
        }
    );
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
    assert_eq!(spool.usage(), (1, 4 * size + 3 * COMPLETION_SIZE));
    // Fill segment 1 so that the next write rolls to segment 2.
    let more: Vec<RecordId> = (0..2)
        .map(|_| spool.write(&meta(), &[b'y'; 100]).unwrap())
        .collect();
    assert_eq!(
        more[1],
        RecordId {
            segment: 2,
            offset: 0
        }
    );
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
    assert_eq!(spool.usage(), (0, size + 3 * COMPLETION_SIZE));
    spool.maintain();
    assert!(
        files(dir.path()).is_empty(),
        "an idle, complete spool is empty"
    );
    assert_eq!(spool.usage(), (0, 0));
    let next = spool.write(&meta(), b"z").unwrap();
    assert_eq!(
        next,
        RecordId {
            segment: 3,
            offset: 0
        }
    );
}

#[test]
fn a_segment_outlives_the_records_it_holds_completions_for_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(dir.path(), 1 << 20);
    let size = record_size(10);
    settings.segment_bytes = 2 * size;
    let spool = Spool::open(&settings).unwrap();
    let a = spool.write(&meta(), b"aaaaaaaaaa").unwrap();
    let b = spool.write(&meta(), b"bbbbbbbbbb").unwrap();
    let c = spool.write(&meta(), b"cccccccccc").unwrap();
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
    // A spool of the previous format with one old envelope and one fresh one.
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
    assert_eq!(spool.recovered().corrupt, 1);
    assert_eq!(
        files(dir.path()),
        vec![seg(0)],
        "old files imported, then deleted"
    );
    let imported = spool.oldest(&HashSet::new(), 10);
    assert_eq!(imported.len(), 2);
    let (old, fresh) = (imported[0], imported[1]);
    assert_eq!(body(&spool, old), b"old-body");
    assert_eq!(body(&spool, fresh), b"fresh-body");
    let delivered = spool.write(&meta(), b"delivered").unwrap();
    let pending = spool.write(&meta(), b"pending").unwrap();
    let busy = spool.write(&meta(), b"busy").unwrap();
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
            corrupt: 0,
            truncated_bytes: 0,
            imported: 0,
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
    // Segments are at most max_bytes / 8: here one envelope each.
    let spool = Spool::open(&settings(dir.path(), 3 * size)).unwrap();
    let a = spool.write(&meta(), &[b'x'; 100]).unwrap();
    let b = spool.write(&meta(), &[b'x'; 100]).unwrap();
    assert_eq!((a.segment, b.segment), (0, 1));
    assert!(spool.has_room(size));
    assert!(!spool.has_room(size + 1));
    assert!(matches!(
        spool.write(&meta(), &[b'x'; 101]),
        Err(SpoolError::Full)
    ));
    assert_eq!(spool.usage(), (2, 2 * size));
    // a's completion starts segment 2; segment 0 is deleted.
    spool.complete(a, Completion::Delivered);
    assert_eq!(files(dir.path()), vec![seg(1), seg(2)]);
    assert_eq!(spool.usage(), (1, size + COMPLETION_SIZE));
    let c = spool.write(&meta(), &[b'x'; 100]).unwrap();
    let d = spool.write(&meta(), &[b'x'; 100]).unwrap();
    assert_eq!(files(dir.path()), vec![seg(1), seg(3), seg(4)]);
    assert_eq!(spool.usage(), (3, 3 * size));
    assert!(matches!(spool.write(&meta(), b""), Err(SpoolError::Full)));
    // Completion records count until their segment is deleted (conservative)…
    spool.complete(b, Completion::Delivered);
    assert_eq!(spool.usage(), (2, 2 * size + COMPLETION_SIZE));
    assert!(!spool.has_room(size));
    // …and a write that does not fit first gives back an active segment that holds
    // nothing needed.
    let e = spool.write(&meta(), &[b'e'; 100]).unwrap();
    assert_eq!(spool.usage(), (3, 3 * size));
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
                        let id = spool
                            .write(&meta(), format!("t{t}-n{n}").as_bytes())
                            .unwrap();
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
    assert_eq!(lock(&spool.sync).synced, 400, "every record covered");
    for (id, expected) in &written {
        assert_eq!(body(&spool, *id), expected.as_bytes());
    }
    drop(spool);
    let spool = Spool::open(&settings(dir.path(), 1 << 30)).unwrap();
    assert_eq!(spool.recovered().pending, 400);
}
