//! Misplaced, renamed, linked, truncated and torn files, each opened in a
//! child process so that a panic, a SIGBUS or a hang is a reported failure
//! rather than a dead test binary.
//!
//! Every test builds a small valid broker directory in the parent, damages
//! it the way one scenario describes (a segment from another partition, a
//! segment renamed to another base or to `u64::MAX`, a symlink to a file
//! outside, a torn first frame, a truncated sealed segment, a deleted newest
//! segment, another topic's `topic.meta`, another group's offsets, a lost
//! unflushed tail), then re-runs this test binary on it (`--exact <test>`).
//! The child opens the broker in the recovery mode it is given and reads
//! everything it can, checking as it goes:
//!
//! - every record returned is exactly the record written at that topic,
//!   partition and offset (values name their topic, partition and offset,
//!   so foreign data can never pass);
//! - a consumer's offsets only increase and `try_iter` terminates;
//! - nothing panics.
//!
//! It prints what it observed (open result, recovery report, verify result,
//! high watermarks, errors met while reading, what a group member receives
//! after new appends) and the parent asserts the scenario's expectation:
//! a typed error, or damage reported (`recovery_report`, `verify`,
//! `Error::Corrupt`) instead of data dropped silently; in strict mode
//! (`RecoveryMode::FailOnCorruptTail`), an error that leaves every file
//! byte-identical. Hangs are caught by a timeout on the child.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use millpond::{AutoCommit, Broker, BrokerConfig, CleanupPolicy, Error, Record, RecoveryMode, StartFrom, TopicConfig};
use support::child;
use support::dir::TempDir;
use support::frames::{SEGMENT_HEADER, frame_at, frames};
use support::layout::{index_path, meta_path, offsets_path, partition_dir, segment_bases, segment_path};
use support::tmpfs::Tmpfs;
use support::tree::{Entry, copy_tree, snapshot, tree};

/// How long a child may take before it counts as hung.
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);
const MODE_ENV: &str = "MILLPOND_MISPLACED_MODE";
/// Record timestamps: old enough that every tombstone has expired.
const BASE_TS: i64 = 1_600_000_000_000;

// ---------------------------------------------------------------------------
// What is written where: a pure function of topic, partition and offset.

/// `(key, value)` of the record at `topic`/`p`/`o`; a `None` value is a tombstone.
fn expected(topic: &str, p: u32, o: u64) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let value = || {
        let mut v = format!("{topic}|p{p}|o{o}|").into_bytes();
        v.resize(v.len() + (o * 7 % 61) as usize, b'a' + (o % 26) as u8);
        Some(v)
    };
    match topic {
        "kv" => {
            let key = Some(format!("key-{:02}", (o * 7) % 50).into_bytes());
            if o % 11 == 5 { (key, None) } else { (key, value()) }
        }
        "kz" => {
            // Values for ten keys, then tombstones for them, then unique keys.
            if o < 200 {
                (Some(format!("z{}", o % 10).into_bytes()), value())
            } else if o < KZ_LIVE_FROM {
                (Some(format!("z{}", o % 10).into_bytes()), None)
            } else {
                (Some(format!("live{o}").into_bytes()), value())
            }
        }
        _ => (o.is_multiple_of(3).then(|| format!("k{}", o % 7).into_bytes()), value()),
    }
}

/// Offsets of topic `kz` from which keys are unique (no longer tombstones).
const KZ_LIVE_FROM: u64 = 1_000_000;

/// The record to send for `topic`/`p`/`o`, with its explicit partition.
fn record(topic: &str, p: u32, o: u64) -> Record<'static> {
    let (key, value) = expected(topic, p, o);
    let r = match value {
        Some(v) => {
            let r = Record::new(v);
            match key {
                Some(k) => r.key(k),
                None => r,
            }
        }
        None => Record::tombstone(key.expect("a tombstone has a key")),
    };
    r.partition(p).timestamp(BASE_TS + o as i64).header("at", format!("{topic}/{p}/{o}"))
}

fn config_of(topic: &str) -> TopicConfig {
    let base = TopicConfig::default().segment_bytes(4096).max_record_bytes(1024).index_interval_bytes(512);
    match topic {
        "t" => base.partitions(2),
        "u" => base.partitions(3).segment_bytes(8192),
        "kv" | "kz" => base.cleanup(CleanupPolicy::Compact).tombstone_retention(Duration::from_millis(1)),
        other => panic!("no such template topic {other}"),
    }
}

/// Appends the next record to `topic`/`p` (offset = high watermark), checking
/// it got the offset the model expects.
fn append(topic: &millpond::Topic, p: u32) -> u64 {
    let o = topic.high_watermark(p).unwrap();
    let id = topic.producer().send(record(topic.name(), p, o)).unwrap();
    assert_eq!((id.partition, id.offset), (p, o), "offsets are dense");
    o
}

/// Appends a batch spanning partitions, every record with an explicit partition.
fn append_batch(topic: &millpond::Topic, parts: &[u32]) {
    let mut next: HashMap<u32, u64> = HashMap::new();
    let records: Vec<Record<'static>> = parts
        .iter()
        .map(|&p| {
            let o = next.entry(p).or_insert_with(|| topic.high_watermark(p).unwrap());
            let r = record(topic.name(), p, *o);
            *o += 1;
            r
        })
        .collect();
    topic.producer().send_batch(records).unwrap();
}

fn segments(topic: &millpond::Topic, p: u32) -> usize {
    topic.stats().partitions[p as usize].segments
}

/// The standard template: topic `t` (2 partitions, several sealed segments
/// each, with the same bases in both partitions), topic `u` (3 partitions),
/// and committed offsets of groups `g` and `h` on `t` and of `g` on `u`.
fn build_template(dir: &Path) {
    let broker = Broker::open(dir).unwrap();
    let t = broker.create_topic("t", config_of("t")).unwrap();
    // Both partitions get the same records at the same offsets' sizes, so
    // their segments roll at the same bases.
    for i in 0..150u64 {
        if i % 10 < 5 {
            append(&t, 0);
            append(&t, 1);
        } else {
            append_batch(&t, &[0, 1, 0, 1]);
        }
    }
    let u = broker.create_topic("u", config_of("u")).unwrap();
    for _ in 0..40 {
        append_batch(&u, &[0, 1, 2]);
    }
    commit(&t, "g", &[(0, 5), (1, 3)]);
    commit(&t, "h", &[(0, 60), (1, 40)]);
    commit(&u, "g", &[(0, 2), (1, 2), (2, 2)]);
    drop((t, u));
    broker.close().unwrap();
}

fn commit(topic: &millpond::Topic, group: &str, offsets: &[(u32, u64)]) {
    let mut m = topic.group(group).unwrap().auto_commit(AutoCommit::Off).join().unwrap();
    m.try_recv().unwrap();
    m.commit_offsets(offsets).unwrap();
    m.close().unwrap();
}

// ---------------------------------------------------------------------------
// Frames, from the documented layout (`src/storage/frame.rs`), walked by
// `support::frames`: a 64-byte segment header, then frames.

/// The byte positions where frames start in `bytes`, followed by the end of
/// the last one (just the end of the segment header if there is no frame).
/// In an active segment the chain stops at the zeroed tail.
fn frame_boundaries(bytes: &[u8]) -> Vec<usize> {
    let walked = frames(bytes);
    let mut out: Vec<usize> = walked.iter().map(|f| f.start).collect();
    out.push(walked.last().map_or(SEGMENT_HEADER, |f| f.end()));
    out
}

/// One past the header of the frame at `start` in the file `path`.
fn frame_header_end(path: &Path, start: usize) -> usize {
    frame_at(&std::fs::read(path).unwrap(), start).expect("a frame").records_at()
}

// ---------------------------------------------------------------------------
// Running a trial in a child process.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Default,
    Strict,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Default => "default",
            Mode::Strict => "strict",
        }
    }
}

/// What a child observed, parsed from its `@@` lines.
#[derive(Debug, Default)]
struct Observed {
    /// `Some(error)` if `Broker::open` failed.
    open_error: Option<String>,
    /// `(topic, partition, dropped_bytes, next_offset)` per recovery event.
    report: Vec<(String, u32, u64, u64)>,
    /// Damage `Broker::verify` listed (or its error).
    verify_damage: Vec<String>,
    /// Errors met by a consumer reading `topic/partition` (first per reader).
    read_errors: Vec<(String, u32, String)>,
    /// Messages read from the start, per `topic/partition`.
    read_count: BTreeMap<(String, u32), u64>,
    /// Errors opening a topic handle.
    topic_errors: Vec<(String, String)>,
    /// `(topic, partition) -> (log_start, high_watermark)`.
    hw: BTreeMap<(String, u32), (u64, u64)>,
    /// Committed offsets per `(group, topic)` (or the error).
    committed: BTreeMap<(String, String), Result<BTreeMap<u32, u64>, String>>,
    /// Offsets of records appended after opening, per `topic/partition`.
    appended: Vec<(String, u32, u64)>,
    /// What a group member received after the appends: `(group, topic, partition, offset, new?)`.
    group_read: Vec<(String, String, u32, u64, bool)>,
    /// Readers whose `try_iter` never ended.
    livelocks: Vec<String>,
    stdout: String,
}

impl Observed {
    /// Every reader's `try_iter` terminated (checked after each test's own
    /// expectation, so that a failure names the more specific defect first).
    fn assert_terminated(&self, what: &str) {
        assert!(self.livelocks.is_empty(), "{what}: try_iter never terminated (livelock): {:?}", self.livelocks);
    }

    fn damage_reported(&self, topic: &str, p: u32) -> bool {
        self.report.iter().any(|(t, q, ..)| t == topic && *q == p)
            || self.verify_damage.iter().any(|d| d.contains(&format!("{topic:?} partition {p}")))
            || self.read_errors.iter().any(|(t, q, _)| t == topic && *q == p)
    }
}

/// Runs the child of `test` on `dir` in `mode`, with `actions` (a
/// comma-separated list the child performs after reading: `append:<topic>:<p>[:<count>]`,
/// `group:<group>:<topic>`), fails on a panic, signal or hang, and returns
/// what it observed.
fn run_trial(test: &str, dir: &Path, mode: Mode, actions: &str) -> Observed {
    let mut child = child::command(test, actions, dir)
        .env(MODE_ENV, mode.name())
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let out_reader = child::capture(child.stdout.take().unwrap());
    let err_reader = child::capture(child.stderr.take().unwrap());
    let status = child::wait_timeout(&mut child, CHILD_TIMEOUT);
    if status.is_none() {
        let _ = child.kill(); // the child we started, by its handle
        let _ = child.wait();
    }
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let Some(status) = status else {
        panic!("{mode:?} child HUNG (killed after {CHILD_TIMEOUT:?})\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    };
    assert!(
        status.success() && stdout.contains("@@DONE"),
        "{mode:?} child failed ({status:?}; a signal means a crash such as SIGBUS)\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    let mut o =
        Observed { stdout: format!("--- child stdout\n{stdout}--- child stderr\n{stderr}"), ..Observed::default() };
    for line in stdout.lines() {
        // The harness prints "test <name> ... " before the child's first line.
        let Some(rest) = line.find("@@").map(|i| &line[i + 2..]) else { continue };
        let f: Vec<&str> = rest.split(' ').collect();
        let num = |i: usize| f[i].parse::<u64>().unwrap();
        match f[0] {
            "OPEN-ERR" => o.open_error = Some(f[1..].join(" ")),
            "REPORT" => o.report.push((f[1].into(), num(2) as u32, num(3), num(4))),
            "DAMAGE" => o.verify_damage.push(f[1..].join(" ")),
            "READ-ERR" => o.read_errors.push((f[1].into(), num(2) as u32, f[3..].join(" "))),
            "READ" => {
                o.read_count.insert((f[1].into(), num(2) as u32), num(3));
            }
            "TOPIC-ERR" => o.topic_errors.push((f[1].into(), f[2..].join(" "))),
            "HW" => {
                o.hw.insert((f[1].into(), num(2) as u32), (num(3), num(4)));
            }
            "COMMITTED" => {
                let v = if f[3] == "ok" {
                    Ok(f[4..]
                        .iter()
                        .filter_map(|e| e.split_once('='))
                        .map(|(p, off)| (p.parse().unwrap(), off.parse().unwrap()))
                        .collect())
                } else {
                    Err(f[4..].join(" "))
                };
                o.committed.insert((f[1].into(), f[2].into()), v);
            }
            "APPENDED" => o.appended.push((f[1].into(), num(2) as u32, num(3))),
            "LIVELOCK" => o.livelocks.push(f[1..].join(" ")),
            "GROUP-READ" => o.group_read.push((f[1].into(), f[2].into(), num(3) as u32, num(4), f[5] == "new")),
            _ => {}
        }
    }
    o
}

/// Every entry under `dir` (but the lock file), with the bytes of files and
/// the targets of links.
fn entries(dir: &Path) -> BTreeMap<PathBuf, Entry> {
    snapshot(dir).into_iter().filter(|(p, _)| p.file_name().is_some_and(|n| n != "millpond.lock")).collect()
}

/// Runs the strict-mode child on a copy of `dir` and asserts the strict
/// expectation: an open error, with every file byte-identical afterwards.
fn expect_strict_refusal(test: &str, dir: &Path, what: &str) -> Observed {
    let copy = TempDir::new("misplaced-strict");
    copy_tree(dir, copy.path());
    fixup_symlinks(dir, copy.path());
    let before = entries(copy.path());
    let o = run_trial(test, copy.path(), Mode::Strict, "");
    assert!(
        o.open_error.is_some(),
        "{what}: RecoveryMode::FailOnCorruptTail opened as if nothing happened (report {:?}, hw {:?})\n{}",
        o.report,
        o.hw,
        o.stdout
    );
    let after = entries(copy.path());
    let changed: Vec<&PathBuf> = before
        .keys()
        .chain(after.keys())
        .filter(|p| before.get(*p) != after.get(*p))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(changed.is_empty(), "{what}: a refused strict open changed files: {changed:?}");
    o
}

/// `copy_tree` copies what symlinks point to; re-create them as links.
fn fixup_symlinks(from: &Path, to: &Path) {
    for p in tree(from) {
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
            let target = std::fs::read_link(&p).unwrap();
            let dest = to.join(p.strip_prefix(from).unwrap());
            let _ = std::fs::remove_file(&dest);
            std::os::unix::fs::symlink(target, dest).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------
// The child.

/// The child's part of every test: open, read everything, act, report.
fn child_main() {
    let dir = child::dir();
    let actions = child::role().unwrap_or_default();
    let mode = std::env::var(MODE_ENV).unwrap_or_default();
    let cfg = if mode == "strict" {
        BrokerConfig::default().recovery(RecoveryMode::FailOnCorruptTail)
    } else {
        BrokerConfig::default()
    };
    let broker = match Broker::open_with(&dir, cfg) {
        Ok(b) => b,
        Err(e) => {
            println!("@@OPEN-ERR {e}");
            println!("@@DONE");
            return;
        }
    };
    for e in broker.recovery_report() {
        println!("@@REPORT {} {} {} {} {}", e.topic, e.partition, e.dropped_bytes, e.next_offset, e.reason);
    }
    match broker.verify() {
        Ok(r) => r.damage.iter().for_each(|d| println!("@@DAMAGE {d}")),
        Err(e) => println!("@@DAMAGE verify failed: {e}"),
    }
    // Topics the broker refused to open are reported, not served.
    for d in broker.damaged_topics() {
        println!("@@TOPIC-ERR {} {}", d.name, d.error);
    }
    for name in broker.topics() {
        let topic = match broker.topic(&name) {
            Ok(t) => t,
            Err(e) => {
                println!("@@TOPIC-ERR {name} {e}");
                continue;
            }
        };
        for p in 0..topic.partitions() {
            let (ls, hw) = (topic.log_start(p).unwrap(), topic.high_watermark(p).unwrap());
            println!("@@HW {name} {p} {ls} {hw}");
            let n = read_checked(&topic, p, StartFrom::Earliest, &format!("{name}/{p} from the start"), true);
            println!("@@READ {name} {p} {n}");
            let pdir = partition_dir(&dir, &name, p);
            let bases = if pdir.is_dir() { segment_bases(&dir, &name, p) } else { vec![] };
            for from in bases.into_iter().chain([1, 7, 33, 101]) {
                read_checked(&topic, p, StartFrom::Offset(from), &format!("{name}/{p} from {from}"), false);
            }
        }
        for group in ["g", "h"] {
            let c = topic.group(group).and_then(|g| g.committed());
            match c {
                Ok(m) => {
                    let list: Vec<String> = m.iter().map(|(p, o)| format!("{p}={o}")).collect();
                    println!("@@COMMITTED {group} {name} ok {}", list.join(" "));
                }
                Err(e) => println!("@@COMMITTED {group} {name} err {e}"),
            }
        }
    }
    for action in actions.split(',').filter(|a| !a.is_empty()) {
        let f: Vec<&str> = action.split(':').collect();
        match f[0] {
            "append" => {
                let topic = match broker.topic(f[1]) {
                    Ok(t) => t,
                    Err(e) => {
                        println!("@@TOPIC-ERR {} {e}", f[1]);
                        continue;
                    }
                };
                let p: u32 = f[2].parse().unwrap();
                let count: u32 = f.get(3).map_or(5, |c| c.parse().unwrap());
                for i in 0..count {
                    let id = topic.producer().send(Record::new(format!("new-{i}")).partition(p)).unwrap();
                    println!("@@APPENDED {} {p} {}", f[1], id.offset);
                }
            }
            "group" => {
                let topic = broker.topic(f[2]).unwrap();
                let mut m = topic.group(f[1]).unwrap().auto_commit(AutoCommit::Off).join().unwrap();
                let mut last: HashMap<u32, u64> = HashMap::new();
                let mut n = 0;
                for item in m.try_iter() {
                    n += 1;
                    if n > 20_000 {
                        println!("@@LIVELOCK group {} on {}: still yielding, last {item:?}", f[1], f[2]);
                        break;
                    }
                    let msg = match item {
                        Ok(msg) => msg,
                        Err(e) => {
                            println!("@@READ-ERR {} {} group {e}", f[2], u32::MAX);
                            break;
                        }
                    };
                    let new = msg.value().starts_with(b"new-");
                    if !new {
                        check(f[2], &msg);
                    }
                    if let Some(prev) = last.insert(msg.partition(), msg.offset()) {
                        assert!(msg.offset() > prev, "group offsets went backwards");
                    }
                    let kind = if new { "new" } else { "old" };
                    println!("@@GROUP-READ {} {} {} {} {kind}", f[1], f[2], msg.partition(), msg.offset());
                }
            }
            other => panic!("unknown action {other}"),
        }
    }
    let _ = broker.close();
    println!("@@DONE");
}

/// Checks a message is exactly what was written at its topic/partition/offset.
fn check(topic: &str, m: &millpond::Message) {
    let (key, value) = expected(topic, m.partition(), m.offset());
    let at = format!("{topic}/{}/{}", m.partition(), m.offset());
    assert_eq!(m.key(), key.as_deref(), "{at}: wrong key: foreign or damaged data was served");
    match value {
        Some(v) => assert!(
            !m.is_tombstone() && m.value() == v.as_slice(),
            "{at}: wrong value {:?}: foreign or damaged data was served",
            String::from_utf8_lossy(m.value())
        ),
        None => assert!(m.is_tombstone(), "{at}: should be a tombstone"),
    }
    let want_header = format!("{topic}/{}/{}", m.partition(), m.offset());
    assert_eq!(m.header("at"), Some(want_header.as_bytes()), "{at}: header names another place: foreign data");
    assert_eq!(m.timestamp(), BASE_TS + m.offset() as i64, "{at}: wrong timestamp");
}

/// Reads `topic/p` with `try_iter` from `from`, checking every message and
/// that positions only increase and the iteration terminates. Prints the
/// first error (if `report`) and returns the messages read.
fn read_checked(topic: &millpond::Topic, p: u32, from: StartFrom, what: &str, report: bool) -> u64 {
    let Ok(mut c) = topic.consumer_of(&[p], from) else { return 0 };
    let mut n = 0u64;
    let mut items = 0u64;
    let mut last: Option<u64> = None;
    let mut first_err = true;
    let mut position = c.position(p).unwrap_or(0);
    for item in c.try_iter() {
        items += 1;
        if items > 20_000 {
            println!("@@LIVELOCK {what}: still yielding after {items} items, last {item:?}");
            break;
        }
        match item {
            Ok(m) => {
                assert_eq!(m.partition(), p, "{what}: a message of another partition");
                check(topic.name(), &m);
                assert!(last.is_none_or(|l| m.offset() > l), "{what}: offset {} after {last:?}", m.offset());
                assert!(m.offset() >= position, "{what}: offset {} before position {position}", m.offset());
                position = m.offset() + 1;
                last = Some(m.offset());
                n += 1;
            }
            Err(e) => {
                if report && first_err {
                    println!("@@READ-ERR {} {p} {e}", topic.name());
                    first_err = false;
                }
                if !matches!(e, Error::Corrupt { .. } | Error::Lagged { .. }) && items > 1000 {
                    panic!("{what}: endless errors: {e}");
                }
            }
        }
    }
    n
}

/// The parent's part of every test is `f`; a child runs `child_main`.
fn trial(f: impl FnOnce()) {
    if child::role().is_some() {
        child_main();
    } else {
        f();
    }
}

fn template() -> TempDir {
    let tmp = TempDir::new("misplaced");
    build_template(tmp.path());
    tmp
}

/// Renames (moving the index along, if any) a segment.
fn rename_segment(dir: &Path, topic: &str, from: (u32, u64), to: (u32, u64)) {
    std::fs::rename(segment_path(dir, topic, from.0, from.1), segment_path(dir, topic, to.0, to.1)).unwrap();
    let (fi, ti) = (index_path(dir, topic, from.0, from.1), index_path(dir, topic, to.0, to.1));
    if fi.exists() {
        std::fs::rename(fi, ti).unwrap();
    }
}

/// The default-mode expectation for misplaced data: the child already
/// checked that nothing foreign was served; here, the damage must have been
/// noticed (an open error, a topic error, or damage reported for `topic/p`).
fn expect_noticed(o: &Observed, topic: &str, p: u32, what: &str) {
    let noticed = o.open_error.is_some() || !o.topic_errors.is_empty() || o.damage_reported(topic, p);
    assert!(noticed, "{what}: nothing reported the damage (no open error, no report, verify clean)\n{}", o.stdout);
    o.assert_terminated(what);
}

// ---------------------------------------------------------------------------
// Segments in the wrong place.

#[test]
fn segment_copied_from_another_partition_is_never_served() {
    const NAME: &str = "segment_copied_from_another_partition_is_never_served";
    trial(|| {
        let tmp = template();
        let d = tmp.path();
        let (b0, b1) = (segment_bases(d, "t", 0), segment_bases(d, "t", 1));
        assert_eq!(b0, b1, "precondition: both partitions roll at the same bases");
        assert!(b0.len() >= 3, "precondition: sealed segments");
        // A sealed segment of partition 1 replaces the same base in
        // partition 0, and partition 1's newest (active) replaces 0's.
        let sealed = b0[1];
        std::fs::copy(segment_path(d, "t", 1, sealed), segment_path(d, "t", 0, sealed)).unwrap();
        let active = *b0.last().unwrap();
        std::fs::copy(segment_path(d, "t", 1, active), segment_path(d, "t", 0, active)).unwrap();
        let o = run_trial(NAME, d, Mode::Default, "");
        expect_noticed(&o, "t", 0, "a segment copied from partition 1 into partition 0");
    });
}

#[test]
fn segments_swapped_between_partitions_are_never_served() {
    const NAME: &str = "segments_swapped_between_partitions_are_never_served";
    trial(|| {
        let tmp = template();
        let d = tmp.path();
        let b = segment_bases(d, "t", 0);
        assert_eq!(b, segment_bases(d, "t", 1), "precondition: same bases");
        let base = b[2];
        let (a, c) = (segment_path(d, "t", 0, base), segment_path(d, "t", 1, base));
        let tmpname = a.with_extension("swap");
        std::fs::rename(&a, &tmpname).unwrap();
        std::fs::rename(&c, &a).unwrap();
        std::fs::rename(&tmpname, &c).unwrap();
        let o = run_trial(NAME, d, Mode::Default, "");
        expect_noticed(&o, "t", 0, "sealed segments swapped between partitions 0 and 1");
        expect_noticed(&o, "t", 1, "sealed segments swapped between partitions 0 and 1");
    });
}

#[test]
fn segment_renamed_to_another_base_is_never_served() {
    const NAME: &str = "segment_renamed_to_another_base_is_never_served";
    trial(|| {
        for shift in [1u64, 3, 1000] {
            let tmp = template();
            let d = tmp.path();
            let b = segment_bases(d, "t", 0);
            // The newest sealed segment moves `shift` offsets up (the
            // active segment stays where it is, unless shifted past it).
            let from = b[b.len() - 2];
            let to = from + shift;
            if b.contains(&to) {
                continue;
            }
            rename_segment(d, "t", (0, from), (0, to));
            let o = run_trial(NAME, d, Mode::Default, "");
            expect_noticed(&o, "t", 0, &format!("segment {from} renamed to base {to}"));
        }
        // The oldest segment renamed to a base that is already past the data.
        let tmp = template();
        let d = tmp.path();
        rename_segment(d, "t", (1, 0), (1, 5));
        let o = run_trial(NAME, d, Mode::Default, "");
        expect_noticed(&o, "t", 1, "segment 0 renamed to base 5");
    });
}

#[test]
fn segment_named_u64_max_gives_a_typed_error_on_open() {
    const NAME: &str = "segment_named_u64_max_gives_a_typed_error_on_open";
    trial(|| {
        for variant in ["copy of a sealed segment", "the active segment renamed", "empty file"] {
            let tmp = template();
            let d = tmp.path();
            let b = segment_bases(d, "t", 0);
            let max = segment_path(d, "t", 0, u64::MAX);
            match variant {
                "copy of a sealed segment" => {
                    std::fs::copy(segment_path(d, "t", 0, b[1]), &max).unwrap();
                }
                "the active segment renamed" => rename_segment(d, "t", (0, *b.last().unwrap()), (0, u64::MAX)),
                _ => std::fs::write(&max, b"").unwrap(),
            }
            let o = run_trial(NAME, d, Mode::Default, "");
            assert!(
                o.open_error.is_some() || !o.topic_errors.is_empty(),
                "{variant} named {}: opened without a typed error\n{}",
                max.display(),
                o.stdout
            );
            o.assert_terminated(variant);
        }
    });
}

#[test]
fn symlinked_segment_is_refused_and_the_outside_file_is_unchanged() {
    const NAME: &str = "symlinked_segment_is_refused_and_the_outside_file_is_unchanged";
    trial(|| {
        for which in ["active", "sealed"] {
            for mode in [Mode::Default, Mode::Strict] {
                let tmp = template();
                let d = tmp.path();
                let outside_dir = TempDir::new("misplaced-outside");
                let b = segment_bases(d, "t", 0);
                let base = if which == "active" { *b.last().unwrap() } else { b[1] };
                let seg = segment_path(d, "t", 0, base);
                // The outside file is a copy of the real segment (so a
                // broker that follows the link would find valid frames),
                // with a garbage tail so that a truncation or zeroing shows.
                let outside = outside_dir.join("precious.log");
                let mut bytes = std::fs::read(&seg).unwrap();
                bytes.extend_from_slice(&[0x5A; 3000]);
                std::fs::write(&outside, &bytes).unwrap();
                std::fs::remove_file(&seg).unwrap();
                std::os::unix::fs::symlink(&outside, &seg).unwrap();
                let o = run_trial(NAME, d, mode, "append:t:0");
                assert_eq!(
                    std::fs::read(&outside).unwrap(),
                    bytes,
                    "{mode:?}, {which} segment symlinked outside: the outside file was changed"
                );
                assert!(
                    o.open_error.is_some() || !o.topic_errors.is_empty(),
                    "{mode:?}, {which} segment symlinked outside: opened without a typed error\n{}",
                    o.stdout
                );
            }
        }
    });
}

// ---------------------------------------------------------------------------
// Torn and zeroed first frames of the newest segment.

/// Builds topic `t` and appends single records to partition 0 until a roll,
/// so that the newest segment holds exactly one frame; then `extra` more.
/// Returns (the newest segment's base, the high watermark).
fn build_fresh_roll(dir: &Path, extra: u64) -> (u64, u64) {
    let broker = Broker::open(dir).unwrap();
    let t = broker.create_topic("t", config_of("t")).unwrap();
    for _ in 0..60 {
        append(&t, 0);
    }
    let before = segments(&t, 0);
    while segments(&t, 0) == before {
        append(&t, 0);
    }
    for _ in 0..extra {
        append(&t, 0);
    }
    assert_eq!(segments(&t, 0), before + 1, "precondition: the extra records fit the fresh segment");
    let hw = t.high_watermark(0).unwrap();
    drop(t);
    broker.close().unwrap();
    (*segment_bases(dir, "t", 0).last().unwrap(), hw)
}

/// Zeroes `[from, to)` of a file.
fn zero_range(path: &Path, from: usize, to: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[from..to].iter_mut().for_each(|b| *b = 0);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn torn_first_frame_of_a_freshly_rolled_segment_is_reported_or_refused() {
    const NAME: &str = "torn_first_frame_of_a_freshly_rolled_segment_is_reported_or_refused";
    trial(|| {
        let tmp = TempDir::new("misplaced-torn");
        let d = tmp.path();
        let (base, hw) = build_fresh_roll(d, 0);
        assert_eq!(hw, base + 1, "precondition: one record in the fresh segment");
        // kill -9 while copying the first frame: the header is written
        // last, so it is still zero while the body already is not.
        let seg = segment_path(d, "t", 0, base);
        let bounds = frame_boundaries(&std::fs::read(&seg).unwrap());
        assert_eq!(bounds.len(), 2, "precondition: exactly one frame: {bounds:?}");
        zero_range(&seg, bounds[0], frame_header_end(&seg, bounds[0]));
        expect_strict_refusal(NAME, d, "torn first frame of a fresh segment");
        let o = run_trial(NAME, d, Mode::Default, "");
        assert!(o.open_error.is_none(), "default mode must repair a torn tail: {:?}", o.open_error);
        assert!(
            o.report.iter().any(|(t, p, dropped, next)| t == "t" && *p == 0 && *dropped > 0 && *next == base),
            "a torn first frame (non-zero body under a zero header) must be reported in recovery_report() \
             with next_offset {base}; got {:?}\n{}",
            o.report,
            o.stdout
        );
        assert_eq!(o.hw.get(&("t".into(), 0)).map(|x| x.1), Some(base), "everything before the torn frame stays");
        o.assert_terminated("torn first frame");
    });
}

#[test]
fn zeroed_first_40_bytes_of_the_newest_segment_with_later_frames_is_reported_or_refused() {
    const NAME: &str = "zeroed_first_40_bytes_of_the_newest_segment_with_later_frames_is_reported_or_refused";
    trial(|| {
        let tmp = TempDir::new("misplaced-zero40");
        let d = tmp.path();
        let (base, hw) = build_fresh_roll(d, 8);
        let seg = segment_path(d, "t", 0, base);
        let bounds = frame_boundaries(&std::fs::read(&seg).unwrap());
        assert!(bounds.len() >= 3, "precondition: several frames: {bounds:?}");
        zero_range(&seg, bounds[0], frame_header_end(&seg, bounds[0]));
        expect_strict_refusal(NAME, d, "zeroed first 40 bytes of the newest segment");
        let o = run_trial(NAME, d, Mode::Default, "");
        if o.open_error.is_none() {
            assert!(
                o.damage_reported("t", 0),
                "records {base}..{hw} of the newest segment were dropped silently (first 40 bytes zeroed, \
                 later frames valid): nothing in recovery_report(), verify clean\n{}",
                o.stdout
            );
            assert!(segment_path(d, "t", 0, base).exists(), "the damaged segment file was removed");
        }
        o.assert_terminated("zeroed first 40 bytes");
    });
}

#[test]
fn compacted_empty_segment_then_torn_first_frame_keeps_the_high_watermark_and_never_reuses_offsets() {
    const NAME: &str =
        "compacted_empty_segment_then_torn_first_frame_keeps_the_high_watermark_and_never_reuses_offsets";
    trial(|| {
        let tmp = TempDir::new("misplaced-kz");
        let d = tmp.path();
        let broker = Broker::open(d).unwrap();
        let kz = broker.create_topic("kz", config_of("kz")).unwrap();
        // Keys z0..z9 get values, then tombstones (long expired) until
        // several segments are full of them and a roll just happened.
        for _ in 0..200 {
            append(&kz, 0);
        }
        let mut rolls = 0;
        let mut before = segments(&kz, 0);
        while rolls < 4 {
            append(&kz, 0);
            if segments(&kz, 0) > before {
                rolls += 1;
                before = segments(&kz, 0);
            }
        }
        let acked = kz.high_watermark(0).unwrap() - 1; // the last record is the torn one
        let report = kz.compact().unwrap();
        let _ = report;
        // A group has consumed and committed everything acknowledged.
        commit(&kz, "g", &[(0, acked)]);
        drop(kz);
        broker.close().unwrap();
        drop(broker);
        let bases = segment_bases(d, "kz", 0);
        let last_sealed = bases[bases.len() - 2];
        let sealed_len = std::fs::metadata(segment_path(d, "kz", 0, last_sealed)).unwrap().len();
        assert_eq!(
            sealed_len, SEGMENT_HEADER as u64,
            "precondition: compaction emptied the newest sealed segment (its header is left)"
        );
        let active = *bases.last().unwrap();
        assert_eq!(active, acked, "precondition: the fresh segment starts with the last record");
        let seg = segment_path(d, "kz", 0, active);
        let bounds = frame_boundaries(&std::fs::read(&seg).unwrap());
        assert_eq!(bounds.len(), 2, "precondition: one frame in the fresh segment");
        zero_range(&seg, bounds[0], frame_header_end(&seg, bounds[0]));

        expect_strict_refusal(NAME, d, "torn first frame after a compacted-empty segment");
        let o = run_trial(NAME, d, Mode::Default, "append:kz:0,group:g:kz");
        let hw = o.hw.get(&("kz".into(), 0)).map(|x| x.1);
        assert!(
            hw.is_some_and(|hw| hw >= acked),
            "the high watermark fell from {} (acknowledged) to {hw:?}\n{}",
            acked,
            o.stdout
        );
        for (_, _, off) in &o.appended {
            assert!(*off >= acked, "new record got offset {off}, below the acknowledged {acked}: offsets reused");
        }
        let new_seen = o.group_read.iter().filter(|r| r.4).count();
        assert_eq!(new_seen, 5, "group g (committed {acked}) must receive all 5 new records\n{}", o.stdout);
        o.assert_terminated("compacted-empty segment then torn frame");
    });
}

// ---------------------------------------------------------------------------
// Truncated sealed segments.

/// Cuts the last frame off the first sealed segment (after `min_base`) that
/// has at least two frames; returns its base.
fn cut_last_frame(dir: &Path, topic: &str, p: u32) -> u64 {
    let bases = segment_bases(dir, topic, p);
    for &b in &bases[..bases.len() - 1] {
        let path = segment_path(dir, topic, p, b);
        let bytes = std::fs::read(&path).unwrap();
        let bounds = frame_boundaries(&bytes);
        if bounds.len() >= 3 && *bounds.last().unwrap() == bytes.len() {
            let cut = bounds[bounds.len() - 2];
            std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(cut as u64).unwrap();
            return b;
        }
    }
    panic!("precondition: no sealed segment of {topic}/{p} with two frames");
}

#[test]
fn truncated_sealed_segment_of_a_compacted_topic_is_reported_by_reader_and_verify() {
    const NAME: &str = "truncated_sealed_segment_of_a_compacted_topic_is_reported_by_reader_and_verify";
    trial(|| {
        let tmp = TempDir::new("misplaced-kvcut");
        let d = tmp.path();
        let broker = Broker::open(d).unwrap();
        let kv = broker.create_topic("kv", config_of("kv")).unwrap();
        for _ in 0..400 {
            append(&kv, 0);
        }
        kv.compact().unwrap();
        drop(kv);
        broker.close().unwrap();
        drop(broker);
        let base = cut_last_frame(d, "kv", 0);
        let o = run_trial(NAME, d, Mode::Default, "");
        assert!(o.open_error.is_none(), "a damaged sealed segment is reported when read, not at open");
        assert!(
            o.verify_damage.iter().any(|x| x.contains("\"kv\" partition 0")),
            "Broker::verify() is clean although sealed segment {base} lost its last frame\n{}",
            o.stdout
        );
        assert!(
            o.read_errors.iter().any(|(t, p, _)| t == "kv" && *p == 0),
            "a consumer read past sealed segment {base}, truncated at a frame boundary, without an error\n{}",
            o.stdout
        );
        o.assert_terminated("truncated compacted segment");
    });
}

#[test]
fn truncated_sealed_segment_of_a_plain_topic_is_reported_by_reader_and_verify() {
    const NAME: &str = "truncated_sealed_segment_of_a_plain_topic_is_reported_by_reader_and_verify";
    trial(|| {
        let tmp = template();
        let d = tmp.path();
        let base = cut_last_frame(d, "t", 0);
        let o = run_trial(NAME, d, Mode::Default, "");
        assert!(o.open_error.is_none(), "a damaged sealed segment is reported when read, not at open");
        assert!(
            o.verify_damage.iter().any(|x| x.contains("\"t\" partition 0")),
            "Broker::verify() is clean although sealed segment {base} lost its last frame\n{}",
            o.stdout
        );
        assert!(
            o.read_errors.iter().any(|(t, p, _)| t == "t" && *p == 0),
            "a consumer read past truncated sealed segment {base} without an error\n{}",
            o.stdout
        );
        o.assert_terminated("truncated plain segment");
    });
}

// ---------------------------------------------------------------------------
// Lost files and lost tails: a group must never skip new records.

#[test]
fn deleted_newest_segment_never_makes_a_group_skip_new_records() {
    const NAME: &str = "deleted_newest_segment_never_makes_a_group_skip_new_records";
    trial(|| {
        let tmp = template();
        let d = tmp.path();
        let b = segment_bases(d, "t", 0);
        let newest = *b.last().unwrap();
        // Group h has processed and committed everything on partition 0.
        {
            let broker = Broker::open(d).unwrap();
            let t = broker.topic("t").unwrap();
            let hw = t.high_watermark(0).unwrap();
            commit(&t, "h", &[(0, hw)]);
            drop(t);
            broker.close().unwrap();
        }
        assert!(newest > 0);
        std::fs::remove_file(segment_path(d, "t", 0, newest)).unwrap();
        let _ = std::fs::remove_file(index_path(d, "t", 0, newest));
        let o = run_trial(NAME, d, Mode::Default, "append:t:0:120,group:h:t");
        if o.open_error.is_some() || !o.topic_errors.is_empty() {
            return; // a typed error is a fine answer
        }
        let new_seen = o.group_read.iter().filter(|r| r.1 == "t" && r.2 == 0 && r.4).count();
        assert_eq!(
            new_seen,
            120,
            "newest segment (base {newest}) deleted: group h must still receive the 120 records appended \
             afterwards (appended at {:?}, committed {:?})\n{}",
            o.appended,
            o.committed.get(&("h".into(), "t".into())),
            o.stdout
        );
        o.assert_terminated("deleted newest segment");
    });
}

#[test]
fn group_never_skips_records_appended_after_a_lost_unflushed_tail() {
    const NAME: &str = "group_never_skips_records_appended_after_a_lost_unflushed_tail";
    trial(|| {
        for how in ["zeroed", "truncated"] {
            let tmp = TempDir::new("misplaced-losttail");
            let d = tmp.path();
            let broker = Broker::open(d).unwrap();
            let t = broker.create_topic("t", config_of("t").segment_bytes(64 << 10)).unwrap();
            for _ in 0..50 {
                append(&t, 0);
            }
            // The group processed and committed all 50 (the commit is
            // fsynced); the log's tail was never flushed.
            commit(&t, "g", &[(0, 50)]);
            drop(t);
            broker.close().unwrap();
            drop(broker);
            // The machine crashes: the unflushed tail from frame 30 on is lost.
            let seg = segment_path(d, "t", 0, 0);
            let bytes = std::fs::read(&seg).unwrap();
            let bounds = frame_boundaries(&bytes);
            assert!(bounds.len() > 31, "precondition: one frame per record: {}", bounds.len());
            let cut = bounds[30];
            if how == "zeroed" {
                zero_range(&seg, cut, bytes.len());
            } else {
                std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(cut as u64).unwrap();
            }
            // 30 new records take the log past the old commit (50) before the
            // member rejoins: resuming at 50 would skip offsets 30..50.
            let o = run_trial(NAME, d, Mode::Default, "append:t:0:30,group:g:t");
            if o.open_error.is_some() {
                continue; // refusing to open is a safe answer
            }
            if let Some(Ok(c)) = o.committed.get(&("g".into(), "t".into()))
                && let Some(hw) = o.hw.get(&("t".into(), 0))
            {
                eprintln!("{how}: hw {hw:?}, committed {c:?} before the appends");
            }
            let new_seen = o.group_read.iter().filter(|r| r.2 == 0 && r.4).count();
            assert_eq!(
                new_seen, 30,
                "tail {how} after offset 30 with group g committed at 50: the 30 records appended afterwards \
                 (offsets {:?}) must reach the group, not be skipped\n{}",
                o.appended, o.stdout
            );
            o.assert_terminated(how);
        }
    });
}

// ---------------------------------------------------------------------------
// Foreign metadata.

#[test]
fn topic_meta_of_another_topic_is_refused_not_served_as_this_topic() {
    const NAME: &str = "topic_meta_of_another_topic_is_refused_not_served_as_this_topic";
    trial(|| {
        let tmp = template();
        let d = tmp.path();
        std::fs::copy(meta_path(d, "u"), meta_path(d, "t")).unwrap();
        let o = run_trial(NAME, d, Mode::Default, "");
        if o.open_error.is_some() || o.topic_errors.iter().any(|(t, _)| t == "t") {
            return;
        }
        // Opened: then topic t must still be topic t (2 partitions, all its records).
        let parts: Vec<u32> = o.hw.keys().filter(|(t, _)| t == "t").map(|k| k.1).collect();
        assert_eq!(parts, [0, 1], "topic t was opened with topic u's metadata (partitions {parts:?})\n{}", o.stdout);
        for p in 0..2 {
            assert!(o.read_count.get(&("t".into(), p)).is_some_and(|&n| n > 0), "topic t/{p} lost its records");
        }
        o.assert_terminated("foreign topic.meta");
    });
}

#[test]
fn offsets_file_of_another_group_or_topic_never_makes_a_group_skip_records() {
    const NAME: &str = "offsets_file_of_another_group_or_topic_never_makes_a_group_skip_records";
    trial(|| {
        // g committed (0: 5, 1: 3) on t; h committed (0: 60, 1: 40); g on u (2, 2, 2).
        for (what, from) in [("group h's offsets", ("h", "t")), ("topic u's offsets", ("g", "u"))] {
            let tmp = template();
            let d = tmp.path();
            let src = std::fs::read(offsets_path(d, from.0, from.1)).unwrap();
            std::fs::write(offsets_path(d, "g", "t"), src).unwrap();
            let o = run_trial(NAME, d, Mode::Default, "");
            if o.open_error.is_some() {
                continue;
            }
            match o.committed.get(&("g".into(), "t".into())) {
                Some(Ok(c)) => {
                    let own: BTreeMap<u32, u64> = [(0, 5), (1, 3)].into();
                    for (p, off) in c {
                        assert!(
                            own.get(p).is_some_and(|o| off <= o),
                            "{what} copied over group g's on topic t: g now resumes at {c:?} instead of at most \
                             {own:?} (it would skip records, or follow a partition t does not have)"
                        );
                    }
                }
                Some(Err(_)) => {} // a typed error
                None => panic!("the child did not report g's offsets on t\n{}", o.stdout),
            }
            o.assert_terminated(what);
        }
    });
}

// ---------------------------------------------------------------------------
// A sparse copy of a crashed broker on a full disk.

#[test]
fn sparse_copy_of_a_broker_on_a_full_disk_gives_typed_errors_not_sigbus() {
    const NAME: &str = "sparse_copy_of_a_broker_on_a_full_disk_gives_typed_errors_not_sigbus";
    if child::role().as_deref() == Some("sparse") {
        // The child: open the sparse copy on the full tmpfs and send until an error.
        let dir = child::dir();
        match Broker::open(&dir) {
            Err(e) => println!("@@OPEN-ERR {e}"),
            Ok(broker) => {
                let t = broker.topic("t").unwrap();
                let p = t.producer();
                let mut sent = 0;
                let err = loop {
                    match p.send(Record::new(vec![7u8; 900]).partition(0)) {
                        Ok(_) => sent += 1,
                        Err(e) => break e,
                    }
                    assert!(sent < 100_000, "the full disk never filled up");
                };
                println!("@@SENT {sent} then {err}");
                assert!(matches!(err, Error::DiskFull { .. }), "expected DiskFull, got {err:?}");
            }
        }
        println!("@@DONE");
        return;
    }
    if child::role().is_some() {
        return;
    }
    let tmp = TempDir::new("misplaced-sparse");
    let mount = match Tmpfs::mount(&tmp.join("mnt"), "2m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("SKIPPED {NAME}: cannot mount a tmpfs here: {why}");
            return;
        }
    };
    // A broker with a big, mostly zero (preallocated) active segment.
    let src = tmp.join("src");
    {
        let broker = Broker::open(&src).unwrap();
        let t = broker.create_topic("t", config_of("t").segment_bytes(1 << 20)).unwrap();
        for _ in 0..20 {
            append(&t, 0);
        }
        // No close: the parent drops it like a crash would leave it.
        drop(t);
        drop(broker);
    }
    let dst = mount.path.join("broker");
    let cp = std::process::Command::new("cp").arg("--sparse=always").arg("-r").arg(&src).arg(&dst).status();
    if !cp.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED {NAME}: cp --sparse=always failed");
        return;
    }
    // Fill the tmpfs.
    {
        use std::io::Write;
        let mut f = std::fs::File::create(mount.path.join("ballast")).unwrap();
        let chunk = vec![1u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }
    let mut child = child::command(NAME, "sparse", &dst);
    let out = child.output().expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("@@DONE"),
        "sparse copy on a full disk: the child failed ({:?}; a signal 7 is SIGBUS)\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    drop(mount);
}
