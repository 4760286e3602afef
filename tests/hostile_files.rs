//! Hostile files: arbitrary and mutated bytes in every file millpond reads.
//!
//! A valid broker directory is built once per test (a 2-partition topic with
//! several sealed segments, multi-record frames, keys, tombstones, headers
//! and a consumer group's committed offsets). Each proptest case copies it,
//! damages one file, and then opens the broker and reads everything it can
//! (consumers from the start, from every segment base and from a timestamp,
//! a group member, `verify`, `stats`, a new send). Whatever happens:
//!
//! - nothing panics (errors are fine: they are typed);
//! - every message returned is exactly the record originally written at
//!   that partition and offset, so a record that fails its CRC (or a record
//!   spliced in from elsewhere) is never handed out;
//! - offsets returned by one consumer only increase.

mod support;

use std::cell::Cell;
use std::collections::HashMap;
use std::path::Path;

use millpond::{AutoCommit, Broker, Record, StartFrom, TopicConfig};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use support::dir::TempDir;
use support::frames::frame_bounds;
use support::layout::{index_path, meta_path, offsets_path, segment_bases, segment_path};
use support::records::{Spec, Stored};
use support::tree::copy_tree;

const TOPIC: &str = "t";
const GROUP: &str = "g";

/// A valid broker directory and everything written to it.
struct Template {
    tmp: TempDir,
    model: HashMap<(u32, u64), Stored>,
    /// Cases whose damaged directory opened.
    opened: Cell<u64>,
    /// Messages read (and checked) over all cases.
    messages: Cell<u64>,
}

impl Template {
    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    fn build() -> Template {
        let tmp = TempDir::new("hostile-template");
        let broker = Broker::open(tmp.path()).unwrap();
        let cfg =
            TopicConfig::default().partitions(2).segment_bytes(4096).max_record_bytes(1024).index_interval_bytes(512);
        let topic = broker.create_topic(TOPIC, cfg).unwrap();
        let p = topic.producer();
        let spec = |i: u64, partition: u32| {
            let ts = 1_700_000_000_000 + (i as i64) * 1000;
            let s = match i % 9 {
                0 => Spec::value(format!("keyless-{i}"), ts),
                4 => Spec::tombstone(format!("key-{}", i % 5), ts),
                _ => Spec::keyed(format!("key-{}", i % 5), format!("value-{i}-{}", "v".repeat((i % 90) as usize)), ts),
            };
            let s = if i.is_multiple_of(3) { s.header("n", i.to_string()).header("h2", vec![0u8, 1, 2]) } else { s };
            s.in_partition(partition)
        };
        let mut model = HashMap::new();
        let mut i = 0;
        // Partition 0: single sends and batches (multi-record frames), over
        // several segments (format 2's frames are small: 240 records make
        // four). Partition 1: a few records.
        while i < 240 {
            if i % 20 < 10 {
                let s = spec(i, 0);
                let id = p.send(s.record()).unwrap();
                model.insert((0, id.offset), s.stored(id));
                i += 1;
            } else {
                let batch: Vec<Spec> = (i..i + 5).map(|j| spec(j, 0)).collect();
                let ids = p.send_batch(batch.iter().map(Spec::record)).unwrap();
                for (s, id) in batch.iter().zip(ids) {
                    model.insert((0, id.offset), s.stored(id));
                }
                i += 5;
            }
        }
        for j in 0..12 {
            let s = spec(1000 + j, 1);
            let id = p.send(s.record()).unwrap();
            model.insert((1, id.offset), s.stored(id));
        }
        // Committed offsets, twice, so there is a `.prev` file too.
        let mut m = topic.group(GROUP).unwrap().auto_commit(AutoCommit::Off).join().unwrap();
        m.try_recv().unwrap();
        m.commit_offsets(&[(0, 5), (1, 2)]).unwrap();
        m.commit_offsets(&[(0, 7), (1, 3)]).unwrap();
        m.close().unwrap();
        drop((p, topic));
        broker.close().unwrap();
        drop(broker);
        let t = Template { tmp, model, opened: Cell::new(0), messages: Cell::new(0) };
        assert!(segment_bases(t.dir(), TOPIC, 0).len() >= 4, "the template needs sealed segments");
        t
    }

    /// Prints what the cases did and checks they got past `open`.
    fn summary(&self, what: &str) {
        let (opened, messages) = (self.opened.get(), self.messages.get());
        eprintln!("{what}: {opened} damaged directories opened, {messages} messages read and checked");
        assert!(opened > 0, "{what}: no damaged directory ever opened: the test proves nothing");
        assert!(messages > 0, "{what}: no message was ever read: the test proves nothing");
    }

    /// A fresh copy of the template.
    fn copy(&self) -> TempDir {
        let case = TempDir::new("hostile-case");
        copy_tree(self.dir(), case.path());
        case
    }

    fn check_message(&self, m: &millpond::Message, last: &mut HashMap<u32, u64>) {
        let got = Stored::of(m);
        match self.model.get(&(got.partition, got.offset)) {
            Some(want) => assert_eq!(&got, want, "a returned record differs from the one written there"),
            None => panic!("a record that was never written was returned: {got:?}"),
        }
        if let Some(prev) = last.insert(got.partition, got.offset) {
            assert!(got.offset > prev, "offsets went backwards: {prev} then {}", got.offset);
        }
    }

    /// Reads with `try_recv` until caught up or an error; checks every message.
    fn read(&self, mut recv: impl FnMut() -> millpond::Result<Option<millpond::Message>>) -> usize {
        let mut last = HashMap::new();
        let mut n = 0;
        // More than the model holds would mean something is returned twice.
        while n <= self.model.len() {
            match recv() {
                Ok(Some(m)) => {
                    self.check_message(&m, &mut last);
                    n += 1;
                    self.messages.set(self.messages.get() + 1);
                }
                Ok(None) | Err(_) => return n,
            }
        }
        panic!("more messages than were ever written");
    }

    /// Opens the (damaged) directory and exercises every read path; counts
    /// the cases that opened and the messages read, so that a test cannot
    /// pass by never getting past `open`.
    fn exercise(&self, dir: &Path) {
        let Ok(broker) = Broker::open(dir) else { return }; // a typed error is a fine answer
        self.opened.set(self.opened.get() + 1);
        let _ = broker.recovery_report();
        let _ = broker.verify();
        for name in broker.topics() {
            let Ok(topic) = broker.topic(&name) else { continue };
            let _ = topic.stats();
            let _ = topic.verify();
            if let Ok(mut c) = topic.consumer(StartFrom::Earliest) {
                self.read(|| c.try_recv());
            }
            for p in 0..topic.partitions() {
                let bases = if dir.join("topics").join(&name).join(p.to_string()).is_dir() {
                    segment_bases(dir, &name, p)
                } else {
                    Vec::new()
                };
                for from in bases.iter().copied().chain([3, 17, 41]) {
                    if let Ok(mut c) = topic.consumer_of(&[p], StartFrom::Offset(from)) {
                        self.read(|| c.try_recv());
                    }
                }
            }
            if let Ok(mut c) = topic.consumer(StartFrom::Timestamp(1_700_000_000_000 + 50_000)) {
                self.read(|| c.try_recv());
            }
            let group = topic.group(GROUP).map(|g| g.auto_commit(AutoCommit::Off));
            if let Ok(group) = group {
                let _ = group.committed();
                let _ = group.lag();
                if let Ok(mut m) = group.join() {
                    self.read(|| m.try_recv());
                }
            }
            // The log still takes writes, and gives them back.
            if let Ok(id) = topic.producer().send(Record::new("after damage").partition(0)) {
                let mut c = topic.consumer_of(&[0], StartFrom::Offset(id.offset)).unwrap();
                let m = c.try_recv().unwrap().expect("the new record is readable");
                assert_eq!((m.offset(), m.value()), (id.offset, &b"after damage"[..]));
            }
        }
        let _ = broker.verify();
        let _ = broker.close();
    }
}

/// How a file is damaged.
#[derive(Debug, Clone)]
enum Mutation {
    /// Replaced by arbitrary bytes.
    Replace(Vec<u8>),
    /// Bytes XORed with non-zero masks (positions modulo the length).
    Flip(Vec<(u32, u8)>),
    /// Cut to `n % (len + 1)` bytes.
    Truncate(u32),
    /// Garbage appended.
    Extend(Vec<u8>),
    /// A range zeroed (a torn write).
    Zero(u32, u16),
    /// A whole valid frame of another segment written over a frame boundary
    /// of this file (valid CRC, wrong place).
    SpliceFrame(u16, u16),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..6000).prop_map(Mutation::Replace),
        proptest::collection::vec((any::<u32>(), 1..=255u8), 1..8).prop_map(Mutation::Flip),
        any::<u32>().prop_map(Mutation::Truncate),
        proptest::collection::vec(any::<u8>(), 1..300).prop_map(Mutation::Extend),
        (any::<u32>(), 1..600u16).prop_map(|(p, n)| Mutation::Zero(p, n)),
        (any::<u16>(), any::<u16>()).prop_map(|(a, b)| Mutation::SpliceFrame(a, b)),
    ]
}

fn apply(m: &Mutation, bytes: &mut Vec<u8>, donor: &[u8]) {
    match m {
        Mutation::Replace(b) => *bytes = b.clone(),
        Mutation::Flip(flips) => {
            if !bytes.is_empty() {
                let len = bytes.len();
                for &(p, x) in flips {
                    bytes[p as usize % len] ^= x;
                }
            }
        }
        Mutation::Truncate(n) => bytes.truncate(*n as usize % (bytes.len() + 1)),
        Mutation::Extend(tail) => bytes.extend_from_slice(tail),
        Mutation::Zero(p, n) => {
            if !bytes.is_empty() {
                let start = *p as usize % bytes.len();
                let end = (start + usize::from(*n)).min(bytes.len());
                bytes[start..end].fill(0);
            }
        }
        Mutation::SpliceFrame(from, to) => {
            let donors = frame_bounds(donor);
            let targets = frame_bounds(bytes);
            if donors.is_empty() || targets.is_empty() {
                return;
            }
            let (ds, dl) = donors[usize::from(*from) % donors.len()];
            let (ts, _) = targets[usize::from(*to) % targets.len()];
            let frame = &donor[ds..ds + dl];
            if bytes.len() < ts + dl {
                bytes.resize(ts + dl, 0);
            }
            bytes[ts..ts + dl].copy_from_slice(frame);
        }
    }
}

/// Rewrites the trailing little-endian CRC-32 of a file whose last 4 bytes
/// checksum everything before them (index and offsets files).
fn fix_trailing_crc(bytes: &mut [u8]) {
    if bytes.len() >= 4 {
        let (body, crc) = bytes.split_at_mut(bytes.len() - 4);
        crc.copy_from_slice(&crc32fast::hash(body).to_le_bytes());
    }
}

fn runner() -> TestRunner {
    let cases = if support::soak() { 1024 } else { 48 };
    TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() })
}

fn damage(path: &Path, m: &Mutation, donor: &[u8], fix_crc: bool) {
    let mut bytes = std::fs::read(path).unwrap_or_default();
    apply(m, &mut bytes, donor);
    if fix_crc {
        fix_trailing_crc(&mut bytes);
    }
    std::fs::write(path, bytes).unwrap();
}

/// Damages segment number `which` of partition 0 (`None`: the last, active
/// one), with or without its index, and exercises the broker.
fn hostile_segment(which: Option<usize>, keep_index: bool) {
    let t = Template::build();
    let bases = segment_bases(t.dir(), TOPIC, 0);
    let base = which.map_or(*bases.last().unwrap(), |i| bases[i]);
    // Frames to splice in come from another segment of the partition.
    let donor_base = if base == bases[2] { bases[1] } else { bases[2] };
    let donor = std::fs::read(segment_path(t.dir(), TOPIC, 0, donor_base)).unwrap();
    runner()
        .run(&mutation(), |m| {
            let case = t.copy();
            damage(&segment_path(case.path(), TOPIC, 0, base), &m, &donor, false);
            if !keep_index {
                let _ = std::fs::remove_file(index_path(case.path(), TOPIC, 0, base));
            }
            t.exercise(case.path());
            Ok(())
        })
        .unwrap();
    t.summary(&format!("segment {which:?} (keep index: {keep_index})"));
}

#[test]
fn hostile_active_segment_never_panics_nor_returns_a_record_not_written_there() {
    hostile_segment(None, false);
}

#[test]
fn hostile_sealed_segment_with_its_index_never_panics_nor_returns_a_record_not_written_there() {
    hostile_segment(Some(1), true);
}

#[test]
fn hostile_sealed_segment_without_an_index_never_panics_nor_returns_a_record_not_written_there() {
    hostile_segment(Some(1), false);
}

#[test]
fn hostile_index_file_never_panics_nor_returns_a_record_not_written_there() {
    let t = Template::build();
    let bases = segment_bases(t.dir(), TOPIC, 0);
    let other_index = std::fs::read(index_path(t.dir(), TOPIC, 0, bases[2])).unwrap();
    // With `fix_crc`, the damaged index passes its checksum: the contents lie.
    runner()
        .run(&(mutation(), any::<bool>(), 0..3usize), |(m, fix_crc, which)| {
            let case = t.copy();
            let base = bases[which];
            damage(&index_path(case.path(), TOPIC, 0, base), &m, &other_index, fix_crc);
            t.exercise(case.path());
            Ok(())
        })
        .unwrap();
    t.summary("index");
}

/// Reads a bincode-2 (standard configuration) varint at `at`: its value and
/// the position after it.
fn varint(b: &[u8], at: usize) -> Option<(u64, usize)> {
    let tag = *b.get(at)?;
    let le = |n: usize| -> Option<(u64, usize)> {
        let raw = b.get(at + 1..at + 1 + n)?;
        let mut v = [0u8; 8];
        v[..n.min(8)].copy_from_slice(&raw[..n.min(8)]);
        Some((u64::from_le_bytes(v), at + 1 + n))
    };
    match tag {
        0..=250 => Some((u64::from(tag), at + 1)),
        251 => le(2),
        252 => le(4),
        253 => le(8),
        _ => None,
    }
}

/// Whether a (CRC-valid) damaged `topic.meta` would make the broker
/// allocate an unreasonable amount of disk (many partitions of huge
/// segments): such configs are valid, so they are skipped, not opened.
fn too_costly(meta: &[u8]) -> bool {
    let payload = meta.get(16..).unwrap_or_default();
    let Some((partitions, at)) = varint(payload, 0) else { return false };
    let Some((segment_bytes, _)) = varint(payload, at) else { return false };
    partitions > 64 || partitions.saturating_mul(segment_bytes) > 16 << 20
}

#[test]
fn hostile_topic_meta_never_panics_nor_returns_a_record_not_written_there() {
    let t = Template::build();
    runner()
        .run(&(mutation(), any::<bool>()), |(m, fix_crc)| {
            let case = t.copy();
            let path = meta_path(case.path(), TOPIC);
            let mut bytes = std::fs::read(&path).unwrap();
            apply(&m, &mut bytes, &[]);
            if fix_crc && bytes.len() >= 16 {
                // topic.meta: crc32 of the payload (bytes 16..) at 12..16.
                let crc = crc32fast::hash(&bytes[16..]).to_le_bytes();
                bytes[12..16].copy_from_slice(&crc);
                let len = (bytes.len() - 16) as u32;
                bytes[8..12].copy_from_slice(&len.to_le_bytes());
            }
            prop_assume!(!too_costly(&bytes));
            std::fs::write(&path, bytes).unwrap();
            t.exercise(case.path());
            Ok(())
        })
        .unwrap();
    t.summary("topic.meta");
}

#[test]
fn hostile_group_offsets_file_never_panics_nor_returns_a_record_not_written_there() {
    let t = Template::build();
    let current = offsets_path(t.dir(), GROUP, TOPIC);
    assert!(current.exists(), "the template has committed offsets");
    let mut prev = current.clone().into_os_string();
    prev.push(".prev");
    assert!(Path::new(&prev).exists(), "the template has a previous offsets file");
    runner()
        .run(&(mutation(), any::<bool>(), 0..3u8), |(m, fix_crc, prev_mode)| {
            let case = t.copy();
            let path = offsets_path(case.path(), GROUP, TOPIC);
            let mut prev = path.clone().into_os_string();
            prev.push(".prev");
            match prev_mode {
                0 => {}                                          // a good .prev to fall back on
                1 => std::fs::remove_file(&prev).unwrap(),       // none
                _ => damage(Path::new(&prev), &m, &[], fix_crc), // damaged as well
            }
            damage(&path, &m, &[], fix_crc);
            t.exercise(case.path());
            Ok(())
        })
        .unwrap();
    t.summary("group offsets");
}
