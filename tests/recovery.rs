//! Recovery from damaged files: torn and scribbled tails of the active
//! segment, garbage in its zero-filled tail, torn length fields, the strict
//! `RecoveryMode::FailOnCorruptTail`, and damaged sealed segments and
//! indexes.
//!
//! The damage is aimed with the frame walker of `support::frames` (the
//! layout of `src/storage/frame.rs`: a 64-byte segment header, then frames
//! starting with a varint `body_len`).

mod support;

use std::fs::{self, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use millpond::{Broker, BrokerConfig, Error, Record, RecoveryMode, StartFrom, TopicConfig};
use support::dir::TempDir;
use support::frames::{frame_at, frame_bounds};
use support::layout::{active_segment, index_files, partition_dir, segment_files};
use support::rng::Lcg;

const TOPIC: &str = "t";

fn config() -> TopicConfig {
    TopicConfig::default().segment_bytes(1 << 20).max_record_bytes(64 * 1024)
}

/// The value of record `i`: a few dozen to a few hundred non-zero bytes.
fn value(i: u64) -> Vec<u8> {
    format!("record-{i}-{}", "x".repeat((i * 37 % 300) as usize)).into_bytes()
}

/// `(start, len)` of each frame in a segment's bytes, up to the first zero
/// length (the preallocated tail) or the end.
fn frames(bytes: &[u8]) -> Vec<(usize, usize)> {
    frame_bounds(bytes)
}

/// Bytes of the header of the frame at `start` in the segment file `path`.
fn header_len(path: &Path, start: usize) -> usize {
    frame_at(&fs::read(path).unwrap(), start).expect("a frame").header_len
}

/// Writes `n` records to a fresh single-partition topic with one send each
/// (so one frame each), closes the broker and returns the values.
fn write(dir: &Path, cfg: TopicConfig, n: u64) -> Vec<Vec<u8>> {
    let broker = Broker::open(dir).unwrap();
    let topic = broker.create_topic(TOPIC, cfg).unwrap();
    let producer = topic.producer();
    let values: Vec<Vec<u8>> = (0..n).map(value).collect();
    for (i, v) in values.iter().enumerate() {
        let id = producer.send(Record::new(v.as_slice()).partition(0)).unwrap();
        assert_eq!(id.offset, i as u64);
    }
    broker.close().unwrap();
    values
}

/// Every value of partition 0, read from `Earliest`; panics on any error.
fn read_all(broker: &Broker) -> Vec<Vec<u8>> {
    let mut c = broker.topic(TOPIC).unwrap().consumer_of(&[0], StartFrom::Earliest).unwrap();
    let mut out = Vec::new();
    while let Some(m) = c.try_recv().unwrap() {
        assert_eq!(m.offset(), out.len() as u64);
        out.push(m.value().to_vec());
    }
    out
}

/// The whole scenario for one kind of tail damage: `damage` gets the
/// active segment's path and its frames and returns how many records must
/// survive; `dropped` checks the reported `dropped_bytes`.
fn damage_and_recover(
    label: &str,
    damage: impl FnOnce(&Path, &[(usize, usize)]) -> usize,
    dropped: impl FnOnce(u64, &[(usize, usize)]) -> bool,
) {
    let dir = TempDir::new(label);
    let values = write(dir.path(), config(), 40);
    let seg = active_segment(dir.path(), TOPIC, 0);
    let clean = fs::read(&seg).unwrap();
    let fr = frames(&clean);
    assert_eq!(fr.len(), 40, "{label}: one frame per send");
    let (last_start, last_len) = fr[fr.len() - 1];
    assert_eq!(last_start + last_len, clean.len(), "{label}: a clean close trims the active segment");
    let keep = damage(&seg, &fr);
    let damaged = fs::read(&seg).unwrap();
    // Where valid data ends: the first damaged frame, or the end of the frames.
    let valid_end = fr.get(keep).map_or(clean.len(), |f| f.0) as u64;

    // The strict mode refuses to open and leaves the file exactly as it was.
    match Broker::open_with(dir.path(), BrokerConfig::default().recovery(RecoveryMode::FailOnCorruptTail)) {
        Err(Error::Corrupt { partition: 0, path, position, reason, .. }) => {
            assert_eq!(path, seg, "{label}");
            assert_eq!(position, valid_end, "{label}: position of the first bad frame ({reason})");
        }
        other => panic!("{label}: FailOnCorruptTail opened a damaged log: {other:?}"),
    }
    assert!(fs::read(&seg).unwrap() == damaged, "{label}: FailOnCorruptTail changed the segment file");

    // The default mode truncates at the first bad frame and says so.
    let broker = Broker::open(dir.path()).expect("the failed strict open released the lock");
    let report = broker.recovery_report();
    assert_eq!(report.len(), 1, "{label}: {report:?}");
    let e = &report[0];
    assert_eq!((e.topic.as_str(), e.partition, &e.segment), (TOPIC, 0, &seg), "{label}");
    assert_eq!(e.valid_bytes, valid_end, "{label}: {e:?}");
    assert_eq!(e.next_offset, keep as u64, "{label}: {e:?}");
    assert!(e.dropped_bytes > 0 && dropped(e.dropped_bytes, &fr), "{label}: dropped_bytes {e:?}");
    assert!(!e.reason.is_empty());
    let topic = broker.topic(TOPIC).unwrap();
    assert_eq!(topic.high_watermark(0).unwrap(), keep as u64, "{label}");
    assert_eq!(read_all(&broker), values[..keep], "{label}: the log ends at the last intact record");

    // Appends continue right after the last intact record.
    let id = topic.producer().send(Record::new("after recovery").partition(0)).unwrap();
    assert_eq!(id.offset, keep as u64, "{label}");
    let mut expected = values[..keep].to_vec();
    expected.push(b"after recovery".to_vec());
    assert_eq!(read_all(&broker), expected, "{label}");
    drop(topic);
    broker.close().unwrap();

    // A second reopen finds nothing to repair, even in strict mode.
    let broker =
        Broker::open_with(dir.path(), BrokerConfig::default().recovery(RecoveryMode::FailOnCorruptTail)).unwrap();
    assert_eq!(broker.recovery_report(), vec![], "{label}: second reopen");
    assert_eq!(read_all(&broker), expected, "{label}: second reopen");
}

fn write_at(path: &Path, pos: u64, bytes: &[u8]) {
    let mut f = OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(pos)).unwrap();
    f.write_all(bytes).unwrap();
    f.sync_all().unwrap();
}

fn flip(path: &Path, pos: usize, mask: u8) {
    let mut bytes = fs::read(path).unwrap();
    bytes[pos] ^= mask;
    write_at(path, pos as u64, &bytes[pos..=pos]);
}

fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut g = vec![0u8; len];
    Lcg::new(seed).fill(&mut g);
    // Non-zero throughout, so the damaged extent is exact.
    g.iter_mut().for_each(|b| *b |= 1);
    g
}

#[test]
fn recovers_from_segment_truncated_in_the_middle_of_the_last_frame() {
    damage_and_recover(
        "truncated-tail",
        |seg, fr| {
            let (start, len) = fr[fr.len() - 1];
            OpenOptions::new().write(true).open(seg).unwrap().set_len((start + len / 2) as u64).unwrap();
            fr.len() - 1
        },
        |dropped, fr| dropped <= (fr[fr.len() - 1].1 / 2) as u64,
    );
}

#[test]
fn recovers_from_random_bytes_scribbled_over_the_last_frame() {
    damage_and_recover(
        "scribbled-tail",
        |seg, fr| {
            let (start, len) = fr[fr.len() - 1];
            write_at(seg, start as u64, &garbage(7, len));
            fr.len() - 1
        },
        |dropped, fr| dropped == fr[fr.len() - 1].1 as u64,
    );
}

#[test]
fn recovers_from_flipped_byte_in_the_body_of_the_last_frame() {
    damage_and_recover(
        "bad-crc-tail",
        |seg, fr| {
            let (start, len) = fr[fr.len() - 1];
            let header = header_len(seg, start);
            flip(seg, start + header + (len - header) / 2, 0x10);
            fr.len() - 1
        },
        |dropped, fr| dropped <= fr[fr.len() - 1].1 as u64,
    );
}

#[test]
fn recovers_from_garbage_in_the_zero_tail_after_the_last_frame() {
    damage_and_recover(
        "garbage-in-zero-tail",
        |seg, _| {
            // Re-create the preallocated zero tail a crash would leave, with
            // garbage some way into it.
            let len = fs::metadata(seg).unwrap().len();
            OpenOptions::new().write(true).open(seg).unwrap().set_len(len + 64 * 1024).unwrap();
            write_at(seg, len + 5000, &garbage(11, 100));
            40
        },
        |dropped, _| dropped == 5100,
    );
}

#[test]
fn recovers_from_garbage_right_after_the_last_frame() {
    damage_and_recover(
        "garbage-after-last-frame",
        |seg, _| {
            let len = fs::metadata(seg).unwrap().len();
            OpenOptions::new().write(true).open(seg).unwrap().set_len(len + 4096).unwrap();
            write_at(seg, len, &garbage(13, 300));
            40
        },
        |dropped, _| dropped == 300,
    );
}

#[test]
fn recovers_from_torn_length_field_of_the_last_frame() {
    damage_and_recover(
        "torn-length-last",
        |seg, fr| {
            flip(seg, fr[fr.len() - 1].0, 0x40); // the length's first byte: it now claims 64 bytes more or less
            fr.len() - 1
        },
        |dropped, fr| dropped <= fr[fr.len() - 1].1 as u64,
    );
}

#[test]
fn recovers_from_torn_length_field_in_the_middle_truncating_everything_after() {
    damage_and_recover(
        "torn-length-middle",
        |seg, fr| {
            flip(seg, fr[25].0, 0x01); // the length's first byte
            25
        },
        |dropped, fr| {
            let rest = (fr[fr.len() - 1].0 + fr[fr.len() - 1].1 - fr[25].0) as u64;
            dropped <= rest && dropped > rest / 2
        },
    );
}

#[test]
fn fail_on_corrupt_tail_leaves_every_partition_readable_later() {
    // Damage in partition 1 of 2: the strict open fails; the data of both
    // partitions is unchanged, and a default open then repairs only the damage.
    let dir = TempDir::new("strict-two-partitions");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic(TOPIC, config().partitions(2)).unwrap();
    for i in 0..20u64 {
        topic.producer().send(Record::new(value(i)).partition((i % 2) as u32)).unwrap();
    }
    drop(topic);
    broker.close().unwrap();
    let p0 = active_segment(dir.path(), TOPIC, 0);
    let p1 = active_segment(dir.path(), TOPIC, 1);
    let p0_before = fs::read(&p0).unwrap();
    let fr = frames(&fs::read(&p1).unwrap());
    let last = fr[fr.len() - 1].0;
    flip(&p1, last + header_len(&p1, last) + 3, 0xFF);
    let p1_before = fs::read(&p1).unwrap();

    let strict = BrokerConfig::default().recovery(RecoveryMode::FailOnCorruptTail);
    assert!(matches!(Broker::open_with(dir.path(), strict.clone()), Err(Error::Corrupt { partition: 1, .. })));
    assert!(fs::read(&p1).unwrap() == p1_before, "the damaged segment was changed");
    let p0_after = fs::read(&p0).unwrap();
    assert!(p0_after.starts_with(&p0_before), "the valid frames of partition 0 were changed");
    assert!(p0_after[p0_before.len()..].iter().all(|&b| b == 0), "partition 0 gained non-zero bytes");
    // Refusing again is stable.
    assert!(matches!(Broker::open_with(dir.path(), strict), Err(Error::Corrupt { partition: 1, .. })));

    let broker = Broker::open(dir.path()).unwrap();
    let report = broker.recovery_report();
    assert_eq!(report.len(), 1, "{report:?}");
    assert_eq!((report[0].partition, report[0].next_offset), (1, 9));
    let topic = broker.topic(TOPIC).unwrap();
    assert_eq!((topic.high_watermark(0).unwrap(), topic.high_watermark(1).unwrap()), (10, 9));
}

#[test]
fn empty_active_segment_file_is_recovered_as_empty() {
    // A crash right after a roll created the next segment file, before it
    // was preallocated, leaves a zero-length active segment.
    let dir = TempDir::new("zero-length-active");
    let cfg = TopicConfig::default().segment_bytes(8192).max_record_bytes(2048);
    let values = write(dir.path(), cfg.clone(), 100);
    let segs = segment_files(dir.path(), TOPIC, 0);
    assert!(segs.len() >= 2, "rolled: {segs:?}");
    let next = partition_dir(dir.path(), TOPIC, 0).join(format!("{:020}.log", 100));
    fs::File::create(&next).unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    assert_eq!(broker.recovery_report(), vec![]);
    assert_eq!(read_all(&broker), values);
    let topic = broker.topic(TOPIC).unwrap();
    assert_eq!(topic.producer().send(Record::new("next")).unwrap().offset, 100);
    assert_eq!(read_all(&broker).len(), 101);
}

/// Writes records across many small segments with increasing timestamps.
fn write_segments(dir: &Path, n: u64) -> Vec<Vec<u8>> {
    let broker = Broker::open(dir).unwrap();
    let cfg = TopicConfig::default().segment_bytes(8192).max_record_bytes(2048).index_interval_bytes(512);
    let topic = broker.create_topic(TOPIC, cfg).unwrap();
    let producer = topic.producer();
    let values: Vec<Vec<u8>> = (0..n).map(value).collect();
    for (i, v) in values.iter().enumerate() {
        producer.send(Record::new(v.as_slice()).timestamp(1_000 + i as i64 * 10)).unwrap();
    }
    broker.close().unwrap();
    let segs = segment_files(dir, TOPIC, 0);
    assert!(segs.len() >= 5, "expected several segments, got {}", segs.len());
    values
}

/// Reads everything, and from several offsets and timestamps.
fn check_reads(dir: &Path, values: &[Vec<u8>], label: &str) {
    let broker = Broker::open(dir).unwrap();
    assert_eq!(broker.recovery_report(), vec![], "{label}: sealed segments are not recovered");
    assert_eq!(read_all(&broker), values, "{label}");
    let topic = broker.topic(TOPIC).unwrap();
    let n = values.len() as u64;
    for start in [1, 17, n / 3, n / 2 + 1, n - 2] {
        let mut c = topic.consumer(StartFrom::Offset(start)).unwrap();
        let m = c.try_recv().unwrap().unwrap();
        assert_eq!((m.offset(), m.value()), (start, values[start as usize].as_slice()), "{label}: from offset {start}");
        let mut c = topic.consumer(StartFrom::Timestamp(1_000 + start as i64 * 10 - 5)).unwrap();
        let m = c.try_recv().unwrap().unwrap();
        assert_eq!(m.offset(), start, "{label}: from timestamp of {start}");
        c.seek(0, start / 2).unwrap();
        assert_eq!(c.try_recv().unwrap().unwrap().offset(), start / 2, "{label}: seek");
    }
}

#[test]
fn sealed_segment_without_index_file_reads_correctly() {
    let dir = TempDir::new("index-deleted");
    let values = write_segments(dir.path(), 300);
    let indexes = index_files(dir.path(), TOPIC, 0);
    assert!(indexes.len() >= 4, "sealed segments have index files: {indexes:?}");
    for idx in &indexes {
        fs::remove_file(idx).unwrap();
    }
    check_reads(dir.path(), &values, "deleted indexes");
}

#[test]
fn sealed_segment_with_corrupt_index_file_reads_correctly() {
    let dir = TempDir::new("index-corrupt");
    let values = write_segments(dir.path(), 300);
    let indexes = index_files(dir.path(), TOPIC, 0);
    assert!(indexes.len() >= 4);
    for (i, idx) in indexes.iter().enumerate() {
        let mut bytes = fs::read(idx).unwrap();
        match i % 4 {
            0 => {
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0x08;
            }
            1 => bytes.truncate(bytes.len() - 5),
            2 => bytes.clear(),
            _ => bytes = garbage(i as u64, bytes.len()),
        }
        fs::write(idx, bytes).unwrap();
    }
    check_reads(dir.path(), &values, "corrupt indexes");
}

/// A byte flipped inside the body of a frame of a sealed segment: readers
/// get `Error::Corrupt` at that frame, never wrong data.
fn flipped_sealed_body(delete_index: bool) {
    let dir = TempDir::new("sealed-flip");
    let values = write_segments(dir.path(), 300);
    let segs = segment_files(dir.path(), TOPIC, 0);
    let seg = &segs[1];
    let base: u64 = seg.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let fr = frames(&fs::read(seg).unwrap());
    let (start, len) = fr[2];
    let header = header_len(seg, start);
    flip(seg, start + header + (len - header) / 2, 0x04);
    if delete_index {
        fs::remove_file(seg.with_extension("index")).unwrap();
    }
    let label = if delete_index { "flipped body, no index" } else { "flipped body" };

    let broker = Broker::open(dir.path()).unwrap();
    assert_eq!(broker.recovery_report(), vec![], "{label}: opening does not scan sealed segments");
    let topic = broker.topic(TOPIC).unwrap();
    let mut c = topic.consumer(StartFrom::Earliest).unwrap();
    let bad_offset = base + 2;
    for i in 0..bad_offset {
        let m = c.try_recv().unwrap_or_else(|e| panic!("{label}: offset {i}: {e}")).unwrap();
        assert_eq!((m.offset(), m.value()), (i, values[i as usize].as_slice()), "{label}");
    }
    for _ in 0..2 {
        match c.try_recv() {
            Err(Error::Corrupt { partition: 0, path, position, .. }) => {
                assert_eq!((&path, position), (seg, start as u64), "{label}");
            }
            other => panic!("{label}: expected Err(Corrupt) at offset {bad_offset}, got {other:?}"),
        }
        assert_eq!(c.position(0).unwrap(), bad_offset, "{label}: the position stays at the damaged record");
    }
    // Records in later segments are still readable.
    let next_base: u64 = segs[2].file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let mut c = topic.consumer(StartFrom::Offset(next_base)).unwrap();
    assert_eq!(c.try_recv().unwrap().unwrap().value(), values[next_base as usize].as_slice());
}

#[test]
fn sealed_segment_with_flipped_body_byte_gives_corrupt_not_wrong_data() {
    flipped_sealed_body(false);
}

#[test]
fn sealed_segment_with_flipped_body_byte_and_no_index_gives_corrupt_not_wrong_data() {
    flipped_sealed_body(true);
}

#[test]
fn truncated_sealed_segment_gives_corrupt_instead_of_silently_ending() {
    let dir = TempDir::new("sealed-truncated");
    let values = write_segments(dir.path(), 300);
    let segs = segment_files(dir.path(), TOPIC, 0);
    let seg = &segs[1];
    let base: u64 = seg.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let fr = frames(&fs::read(seg).unwrap());
    let (start, len) = fr[fr.len() - 1];
    OpenOptions::new().write(true).open(seg).unwrap().set_len((start + len / 2) as u64).unwrap();

    let broker = Broker::open(dir.path()).unwrap();
    let mut c = broker.topic(TOPIC).unwrap().consumer(StartFrom::Earliest).unwrap();
    let intact = base + fr.len() as u64 - 1;
    for i in 0..intact {
        let m = c.try_recv().unwrap().unwrap();
        assert_eq!((m.offset(), m.value()), (i, values[i as usize].as_slice()));
    }
    match c.try_recv() {
        Err(Error::Corrupt { path, .. }) => assert_eq!(&path, seg),
        other => panic!("expected Err(Corrupt) for the truncated sealed segment, got {other:?}"),
    }
}

#[test]
fn sealed_segment_missing_whole_frames_gives_corrupt_instead_of_skipping_offsets() {
    // The sealed segment's file lost its last two frames exactly at a frame
    // boundary (its index still says how long it was). Reading across must
    // not silently jump from the last surviving record to the next
    // segment's base offset.
    let dir = TempDir::new("sealed-lost-frames");
    let values = write_segments(dir.path(), 300);
    let segs = segment_files(dir.path(), TOPIC, 0);
    let seg = &segs[1];
    let base: u64 = seg.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let fr = frames(&fs::read(seg).unwrap());
    let (cut, _) = fr[fr.len() - 2];
    OpenOptions::new().write(true).open(seg).unwrap().set_len(cut as u64).unwrap();

    let broker = Broker::open(dir.path()).unwrap();
    let mut c = broker.topic(TOPIC).unwrap().consumer(StartFrom::Earliest).unwrap();
    let intact = base + fr.len() as u64 - 2;
    for i in 0..intact {
        let m = c.try_recv().unwrap().unwrap();
        assert_eq!((m.offset(), m.value()), (i, values[i as usize].as_slice()));
    }
    match c.try_recv() {
        Err(Error::Corrupt { path, .. }) => assert_eq!(&path, seg),
        Ok(Some(m)) => panic!(
            "offsets {intact}..{} were silently skipped: the next record returned is offset {}",
            m.offset(),
            m.offset()
        ),
        other => panic!("expected Err(Corrupt) for the shortened sealed segment, got {other:?}"),
    }
}

/// An append that needs several new segments creates them all before
/// writing anything; a crash in between leaves empty, preallocated segments
/// ahead of the data. Reopening must drop them rather than jump the high
/// watermark past offsets that were never written.
#[test]
fn empty_segments_left_ahead_of_the_data_by_a_crash_are_dropped_on_open() {
    let tmp = TempDir::new("empty-ahead");
    let dir = tmp.path();
    {
        let broker = Broker::open(dir).unwrap();
        let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
        topic.producer().send_batch((0..10).map(|i| Record::new(format!("r{i}")))).unwrap();
    }
    let pdir = partition_dir(dir, "t", 0);
    for base in [10u64, 50, 90] {
        let f = fs::File::create(pdir.join(format!("{base:020}.log"))).unwrap();
        f.set_len(64 << 10).unwrap(); // all zero, as preallocation leaves it
    }
    let broker = Broker::open(dir).unwrap();
    let topic = broker.topic("t").unwrap();
    assert_eq!(topic.high_watermark(0).unwrap(), 10, "no offsets may be skipped");
    assert_eq!(topic.producer().send(Record::new("next")).unwrap().offset, 10);
    let values: Vec<Vec<u8>> =
        topic.consumer(StartFrom::Earliest).unwrap().try_iter().map(|m| m.unwrap().value().to_vec()).collect();
    assert_eq!(values.len(), 11);
    assert_eq!(values[10], b"next");
    assert!(broker.verify().unwrap().is_clean());
    assert_eq!(segment_files(dir, "t", 0).len(), 1, "the empty segments are gone");
}
