//! Bad input (DESIGN.md, "Bad input"): every case gets a typed error and
//! leaves the log, and the directory, as they were.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use millpond::{Broker, BrokerConfig, Error, FsyncPolicy, Record, StartFrom, Topic, TopicConfig};
use support::child::{self, Monitored};
use support::dir::TempDir;
use support::frames::{SEGMENT_OVERHEAD, record_size};
use support::layout::{meta_path, partition_dir};
use support::rng::pattern;
use support::tree::tree;

fn open(dir: &TempDir) -> Broker {
    Broker::open(dir.path()).unwrap()
}

/// High watermarks of every partition.
fn watermarks(topic: &Topic) -> Vec<u64> {
    (0..topic.partitions()).map(|p| topic.high_watermark(p).unwrap()).collect()
}

/// Every value stored in the topic, by partition.
fn contents(topic: &Topic) -> Vec<Vec<Vec<u8>>> {
    (0..topic.partitions())
        .map(|p| {
            let mut c = topic.consumer_of(&[p], StartFrom::Earliest).unwrap();
            c.try_iter().map(|m| m.unwrap().value().to_vec()).collect()
        })
        .collect()
}

#[test]
fn invalid_topic_names_are_refused_and_create_nothing_on_disk() {
    let dir = TempDir::new("bad-names");
    let broker = open(&dir);
    let before = tree(dir.path());
    let long = "x".repeat(250);
    let names =
        ["", ".", "..", "a/b", "a\0b", long.as_str(), "naïve", "../escape", "/abs", "a\\b", "with space", "tab\t"];
    for name in names {
        match broker.create_topic(name, TopicConfig::default()) {
            Err(Error::InvalidName { kind: "topic", name: n, reason }) => {
                assert_eq!(n, name);
                assert!(!reason.is_empty());
            }
            other => panic!("create_topic({name:?}) returned {other:?}, expected InvalidName"),
        }
        assert!(
            matches!(broker.delete_topic(name), Err(Error::InvalidName { kind: "topic", .. })),
            "delete_topic({name:?})"
        );
        assert!(matches!(broker.topic(name), Err(Error::UnknownTopic { .. })), "topic({name:?})");
        assert_eq!(tree(dir.path()), before, "create_topic({name:?}) left something on disk");
    }
    assert!(broker.topics().is_empty());
    for ok in ["..x", "A.b_c-9", "-", "_"] {
        broker.create_topic(ok, TopicConfig::default()).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
    }
    assert_eq!(broker.topics().len(), 4);
}

#[test]
fn longest_valid_topic_name_of_249_chars_is_accepted() {
    // Kafka's limit, which millpond adopts: 249 characters is valid. The
    // name becomes a directory name, and staging it must not push it over
    // the file system's 255-byte limit.
    let dir = TempDir::new("long-name");
    let broker = open(&dir);
    for len in [200, 240, 245, 249] {
        let name = format!("{len}-{}", "x".repeat(len - 4));
        assert_eq!(name.len(), len);
        let topic =
            broker.create_topic(&name, TopicConfig::default()).unwrap_or_else(|e| panic!("{len}-char name: {e}"));
        topic.producer().send(Record::new("x")).unwrap();
        broker.delete_topic(&name).unwrap_or_else(|e| panic!("delete {len}-char name: {e}"));
    }
}

#[test]
fn record_over_max_record_bytes_is_refused_and_nothing_appended() {
    let dir = TempDir::new("too-large");
    let broker = open(&dir);
    let topic = broker.create_topic("t", TopicConfig::default().partitions(2).max_record_bytes(1000)).unwrap();
    let p = topic.producer();
    p.send(Record::new("first").partition(0)).unwrap();
    // The size counted (`support::frames::record_size`): 20 bytes for the
    // length, offset and timestamp fields at their widest, a byte for the
    // missing key, two for the value's length, one for the header count: a
    // 976-byte value is exactly the limit.
    assert_eq!(record_size(None, Some(976), &[]), 1000);
    p.send(Record::new(vec![7u8; 976]).partition(1)).unwrap();
    let before = (watermarks(&topic), contents(&topic));
    assert_eq!(before.0, [1, 1]);

    let cases: Vec<(Record<'_>, usize)> = vec![
        (Record::new(vec![7u8; 977]), 1001),
        (Record::new(vec![7u8; 970]).key(vec![1u8; 7]), 1001),
        (Record::new(vec![7u8; 900]).header("h", vec![0u8; 100]), 1027),
        (Record::new(vec![0u8; 1 << 20]), (1 << 20) + 25),
    ];
    for (record, size) in cases {
        match p.send(record.clone()) {
            Err(Error::RecordTooLarge { size: s, max: 1000, topic }) => assert_eq!((s, topic.as_str()), (size, "t")),
            other => panic!("send of a {size}-byte record returned {other:?}"),
        }
        // In a batch, one oversized record fails the whole batch.
        let batch = vec![Record::new("ok").partition(0), record, Record::new("ok too").partition(1)];
        assert!(matches!(p.send_batch(batch), Err(Error::RecordTooLarge { .. })));
        assert_eq!((watermarks(&topic), contents(&topic)), before, "nothing was appended");
    }
    // And the log is intact across a reopen.
    drop((p, topic));
    drop(broker);
    let broker = open(&dir);
    let topic = broker.topic("t").unwrap();
    assert_eq!((watermarks(&topic), contents(&topic)), before);
}

#[test]
fn header_name_longer_than_the_format_allows_is_an_invalid_record() {
    let dir = TempDir::new("long-header");
    let broker = open(&dir);
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    let name = "h".repeat(65_536);
    let r = topic.producer().send(Record::new("v").header(name.as_str(), "x"));
    assert!(matches!(r, Err(Error::InvalidRecord { .. })), "{r:?}");
    let batch = vec![Record::new("fine"), Record::new("v").header(name.as_str(), "x")];
    assert!(matches!(topic.producer().send_batch(batch), Err(Error::InvalidRecord { .. })));
    assert_eq!(watermarks(&topic), [0]);
    // The longest allowed name works.
    let ok = "h".repeat(65_535);
    topic.producer().send(Record::new("v").header(ok.as_str(), "x")).unwrap();
    let m = topic.consumer(StartFrom::Earliest).unwrap().try_recv().unwrap().unwrap();
    assert_eq!(m.header(&ok), Some(&b"x"[..]));
}

#[test]
fn explicit_partition_out_of_range_is_refused() {
    let dir = TempDir::new("bad-partition");
    let broker = open(&dir);
    let topic = broker.create_topic("t", TopicConfig::default().partitions(4)).unwrap();
    let p = topic.producer();
    p.send(Record::new("a").partition(3)).unwrap();
    for bad in [4, 5, u32::MAX] {
        match p.send(Record::new("x").partition(bad)) {
            Err(Error::InvalidPartition { partition, partitions: 4, .. }) => assert_eq!(partition, bad),
            other => panic!("partition {bad}: {other:?}"),
        }
        let batch = vec![Record::new("y").partition(0), Record::new("x").partition(bad)];
        assert!(matches!(p.send_batch(batch), Err(Error::InvalidPartition { .. })));
        assert!(matches!(topic.high_watermark(bad), Err(Error::InvalidPartition { .. })));
        assert!(matches!(topic.log_start(bad), Err(Error::InvalidPartition { .. })));
        assert!(matches!(topic.consumer_of(&[0, bad], StartFrom::Earliest), Err(Error::InvalidPartition { .. })));
    }
    assert_eq!(watermarks(&topic), [0, 0, 0, 1]);
    let mut c = topic.consumer_of(&[1], StartFrom::Earliest).unwrap();
    assert!(
        matches!(c.seek(0, 0), Err(Error::InvalidPartition { partition: 0, .. })),
        "seek on an unassigned partition"
    );
    assert!(matches!(c.position(2), Err(Error::InvalidPartition { .. })));
}

#[test]
fn recreating_topic_with_other_config_is_refused_and_same_config_returns_it() {
    let dir = TempDir::new("config-mismatch");
    let cfg = TopicConfig::default().partitions(3).segment_bytes(1 << 20).max_record_bytes(4096);
    let broker = open(&dir);
    broker.create_topic("t", cfg.clone()).unwrap().producer().send(Record::new("kept")).unwrap();
    let meta = std::fs::read(meta_path(dir.path(), "t")).unwrap();
    check_mismatches(&dir, &broker, &cfg, &meta);
    broker.close().unwrap();
    // The config persisted: the same answers after a reopen.
    let broker = open(&dir);
    check_mismatches(&dir, &broker, &cfg, &meta);
}

fn check_mismatches(dir: &TempDir, broker: &Broker, cfg: &TopicConfig, meta: &[u8]) {
    let others = [
        cfg.clone().partitions(4),
        cfg.clone().segment_bytes(2 << 20),
        cfg.clone().max_record_bytes(4097),
        cfg.clone().index_interval_bytes(1),
        cfg.clone().fsync(FsyncPolicy::Always),
        TopicConfig::default(),
    ];
    for other in &others {
        match broker.create_topic("t", other.clone()) {
            Err(Error::TopicConfigMismatch { topic, difference }) => {
                assert_eq!(topic, "t");
                assert!(!difference.is_empty());
            }
            r => panic!("re-creating with {other:?} returned {r:?}"),
        }
    }
    let same = broker.create_topic("t", cfg.clone()).unwrap();
    assert_eq!((same.config(), same.partitions()), (cfg, 3));
    assert_eq!(broker.topic("t").unwrap().config(), cfg);
    assert_eq!(contents(&same).concat(), [b"kept".to_vec()]);
    assert_eq!(std::fs::read(meta_path(dir.path(), "t")).unwrap(), meta, "topic.meta unchanged");
}

#[test]
fn invalid_configs_are_refused_and_create_nothing() {
    let dir = TempDir::new("bad-config");
    let broker = open(&dir);
    let before = tree(dir.path());
    let bad = [
        TopicConfig::default().partitions(0),
        TopicConfig::default().partitions(10_001),
        TopicConfig::default().segment_bytes(0),
        TopicConfig::default().segment_bytes(4095).max_record_bytes(100),
        TopicConfig::default().segment_bytes((1 << 31) + 1),
        TopicConfig::default().max_record_bytes(0),
        // max_record_bytes, plus the 64-byte segment header and a frame
        // header of at most 51 bytes, must fit in a segment.
        TopicConfig::default().segment_bytes(8192).max_record_bytes(8192),
        TopicConfig::default().segment_bytes(8192).max_record_bytes(8192 - SEGMENT_OVERHEAD as u32 + 1),
        TopicConfig::default().segment_bytes(8192).max_record_bytes(u32::MAX),
        TopicConfig::default().index_interval_bytes(0),
        TopicConfig::default().fsync(FsyncPolicy::EveryN(0)),
        TopicConfig::default().fsync(FsyncPolicy::Interval(Duration::ZERO)),
    ];
    for (i, cfg) in bad.into_iter().enumerate() {
        match broker.create_topic(&format!("t{i}"), cfg.clone()) {
            Err(Error::InvalidConfig { reason }) => assert!(!reason.is_empty()),
            other => panic!("{cfg:?} returned {other:?}"),
        }
        assert_eq!(tree(dir.path()), before, "{cfg:?} left something on disk");
    }
    // The boundaries are accepted.
    let edge = 8192 - SEGMENT_OVERHEAD as u32;
    broker.create_topic("edge", TopicConfig::default().segment_bytes(8192).max_record_bytes(edge)).unwrap();
    let min = 4096 - SEGMENT_OVERHEAD as u32;
    broker.create_topic("min", TopicConfig::default().segment_bytes(4096).max_record_bytes(min)).unwrap();
}

/// Creates a topic with some records, closes the broker and returns the
/// topic.meta path, its bytes and the records.
fn topic_with_meta(dir: &TempDir) -> (std::path::PathBuf, Vec<u8>, Vec<Vec<Vec<u8>>>) {
    let broker = open(dir);
    let topic = broker.create_topic("t", TopicConfig::default().partitions(2)).unwrap();
    topic.producer().send_batch((0..10).map(|i| Record::new(format!("{i}")))).unwrap();
    let stored = contents(&topic);
    drop(topic);
    broker.close().unwrap();
    let path = meta_path(dir.path(), "t");
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes, stored)
}

/// `Broker::open` with `fail_on_damaged_topic(true)`: a damaged topic makes
/// the whole open fail. (By default the healthy topics open and the damaged
/// one is listed in `Broker::damaged_topics`; see tests/damaged_topics.rs.)
fn open_strict(dir: &Path) -> millpond::Result<Broker> {
    Broker::open_with(dir, BrokerConfig::default().fail_on_damaged_topic(true))
}

#[test]
fn corrupt_topic_meta_makes_open_fail_with_corrupt_metadata() {
    let dir = TempDir::new("bad-meta");
    let (path, good, stored) = topic_with_meta(&dir);
    let mut damaged: Vec<(&str, Vec<u8>)> = Vec::new();
    for pos in [0, 4, 9, 13, good.len() / 2, good.len() - 1] {
        let mut b = good.clone();
        b[pos] ^= 0x20;
        damaged.push(("flipped byte", b));
    }
    damaged.push(("truncated header", good[..10].to_vec()));
    damaged.push(("truncated payload", good[..good.len() - 1].to_vec()));
    damaged.push(("empty", Vec::new()));
    damaged.push(("trailing bytes", [good.as_slice(), b"junk"].concat()));
    damaged.push(("garbage", pattern(5, good.len())));
    for (what, bytes) in damaged {
        std::fs::write(&path, &bytes).unwrap();
        let before = tree(dir.path());
        match open_strict(dir.path()) {
            Err(Error::CorruptMetadata { path: p, reason }) => {
                assert_eq!(p, path, "{what}");
                assert!(!reason.is_empty());
            }
            other => panic!("{what}: Broker::open returned {other:?}, expected CorruptMetadata"),
        }
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{what}: the metadata file was changed");
        assert_eq!(tree(dir.path()), before, "{what}: files were added or removed");
    }
    // Restored, everything is as it was (and the failed opens left no lock).
    std::fs::write(&path, &good).unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    assert_eq!(contents(&broker.topic("t").unwrap()), stored);
}

#[test]
fn missing_topic_meta_is_an_error_not_a_panic() {
    let dir = TempDir::new("no-meta");
    let (path, good, _) = topic_with_meta(&dir);
    std::fs::remove_file(&path).unwrap();
    let r = open_strict(dir.path());
    assert!(r.is_err(), "opened a topic without its metadata: {r:?}");
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("topic.meta"), "the error names the file: {msg}");
    std::fs::write(&path, good).unwrap();
    Broker::open(dir.path()).unwrap();
}

#[test]
fn foreign_files_in_the_broker_directory_are_ignored() {
    let dir = TempDir::new("foreign");
    let (_, _, stored) = topic_with_meta(&dir);
    let part = partition_dir(dir.path(), "t", 0);
    for stray in ["notes.txt", "123.log", "abc.log", "00000000000000000000.log.bak", "0000000000000000000x.log"] {
        std::fs::write(part.join(stray), b"not a segment").unwrap();
    }
    std::fs::create_dir_all(dir.join("topics").join("not a topic")).unwrap();
    std::fs::write(dir.join("topics").join("stray-file"), b"?").unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    assert_eq!(broker.topics(), ["t"]);
    assert_eq!(broker.recovery_report(), vec![]);
    assert_eq!(contents(&broker.topic("t").unwrap()), stored);
}

#[test]
fn second_open_of_a_locked_directory_in_the_same_process_is_locked() {
    let dir = TempDir::new("locked-same");
    let broker = open(&dir);
    broker.create_topic("t", TopicConfig::default()).unwrap().producer().send(Record::new("x")).unwrap();
    let before = tree(dir.path());
    for _ in 0..3 {
        match Broker::open(dir.path()) {
            Err(Error::Locked { path }) => assert_eq!(path, dir.join("millpond.lock")),
            other => panic!("second open returned {other:?}"),
        }
    }
    assert_eq!(tree(dir.path()), before);
    // The first broker is unaffected, and after it closes the directory opens.
    broker.topic("t").unwrap().producer().send(Record::new("y")).unwrap();
    drop(broker);
    let broker = open(&dir);
    assert_eq!(watermarks(&broker.topic("t").unwrap()), [2]);
}

const LOCK_CHILD: &str = "lock_child_holds_or_tries_the_lock";

/// Child entry point: in role `hold` it opens the broker in its directory,
/// prints `@@HOLDING` and keeps it open until stdin closes; in role `try`
/// it prints `@@RESULT <outcome>` for one open attempt.
#[test]
#[ignore = "entry point of the child process the lock tests spawn; does nothing on its own"]
fn lock_child_holds_or_tries_the_lock() {
    let Some(mode) = child::role() else { return };
    let dir = child::dir();
    let mut out = std::io::stdout().lock();
    if mode == "hold" {
        let broker = Broker::open(&dir).expect("child: open");
        writeln!(out, "\n@@HOLDING").unwrap();
        out.flush().unwrap();
        let mut rest = String::new();
        let _ = std::io::stdin().read_line(&mut rest); // returns at EOF
        drop(broker);
    } else {
        let outcome = match Broker::open(&dir) {
            Ok(_) => "opened".to_string(),
            Err(Error::Locked { .. }) => "locked".to_string(),
            Err(e) => format!("error {e}"),
        };
        writeln!(out, "\n@@RESULT {outcome}").unwrap();
        out.flush().unwrap();
    }
}

fn lock_child(dir: &Path, mode: &str) -> Monitored {
    Monitored::spawn(child::command(LOCK_CHILD, mode, dir).stdin(Stdio::piped()))
}

/// Reads the child's stdout until a line containing `marker`; returns it
/// from the marker on.
fn wait_for(child: &mut Monitored, marker: &str) -> String {
    child.expect_line(marker, Duration::from_secs(60), drop, &format!("the child never printed {marker}"))
}

#[test]
fn open_of_a_directory_locked_by_another_process_is_locked() {
    let dir = TempDir::new("locked-other");
    open(&dir).create_topic("t", TopicConfig::default()).unwrap();

    // Another process holds it: we get Locked.
    let mut holder = lock_child(dir.path(), "hold");
    wait_for(&mut holder, "@@HOLDING");
    match Broker::open(dir.path()) {
        Err(Error::Locked { path }) => assert_eq!(path, dir.join("millpond.lock")),
        other => panic!("open of a directory another process holds returned {other:?}"),
    }
    drop(holder.stdin()); // lets the holder exit
    assert!(holder.wait().status.success());
    let broker = Broker::open(dir.path()).expect("the lock is released when the holder exits");

    // We hold it: another process gets Locked.
    let mut trier = lock_child(dir.path(), "try");
    assert_eq!(wait_for(&mut trier, "@@RESULT"), "@@RESULT locked");
    assert!(trier.wait().status.success());
    drop(broker);
    let mut trier = lock_child(dir.path(), "try");
    assert_eq!(wait_for(&mut trier, "@@RESULT"), "@@RESULT opened");
    assert!(trier.wait().status.success());
}

#[test]
fn unknown_topic_is_refused() {
    let dir = TempDir::new("unknown-topic");
    let broker = open(&dir);
    broker.create_topic("known", TopicConfig::default()).unwrap();
    match broker.topic("unknown") {
        Err(Error::UnknownTopic { topic }) => assert_eq!(topic, "unknown"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(broker.delete_topic("unknown"), Err(Error::UnknownTopic { .. })));
    assert_eq!(broker.topics(), ["known"]);
    // A deleted topic is unknown afterwards, and its handles say so.
    let known = broker.topic("known").unwrap();
    broker.delete_topic("known").unwrap();
    assert!(matches!(broker.topic("known"), Err(Error::UnknownTopic { .. })));
    assert!(matches!(known.producer().send(Record::new("x")), Err(Error::TopicDeleted { .. })));
    assert!(matches!(known.consumer(StartFrom::Earliest), Err(Error::TopicDeleted { .. })));
}

#[test]
fn seek_out_of_range_is_refused_and_leaves_the_position() {
    let dir = TempDir::new("seek-range");
    let broker = open(&dir);
    let topic = broker.create_topic("t", TopicConfig::default().partitions(2)).unwrap();
    topic.producer().send_batch((0..10).map(|i| Record::new(format!("{i}")).partition(0))).unwrap();
    let mut c = topic.consumer(StartFrom::Earliest).unwrap();
    c.seek(0, 4).unwrap();
    for bad in [11, 12, u64::MAX] {
        match c.seek(0, bad) {
            Err(Error::OffsetOutOfRange { partition: 0, offset, start: 0, end: 10, .. }) => assert_eq!(offset, bad),
            other => panic!("seek to {bad}: {other:?}"),
        }
        assert_eq!(c.position(0).unwrap(), 4, "a failed seek leaves the position");
    }
    assert!(matches!(c.seek(1, 1), Err(Error::OffsetOutOfRange { partition: 1, start: 0, end: 0, .. })));
    assert_eq!(c.try_recv().unwrap().unwrap().value(), b"4");
    c.seek(0, 10).unwrap(); // the high watermark itself is a valid position
    assert!(c.try_recv().unwrap().is_none());
}

#[test]
fn start_from_offset_beyond_the_end_is_out_of_range() {
    let dir = TempDir::new("start-range");
    let broker = open(&dir);
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    topic.producer().send_batch((0..10).map(|i| Record::new(format!("{i}")))).unwrap();
    for bad in [11, 1000, u64::MAX] {
        match topic.consumer(StartFrom::Offset(bad)) {
            Err(Error::OffsetOutOfRange { offset, start: 0, end: 10, .. }) => assert_eq!(offset, bad),
            other => panic!("StartFrom::Offset({bad}): {other:?}"),
        }
    }
    let mut c = topic.consumer(StartFrom::Offset(10)).unwrap();
    assert!(c.try_recv().unwrap().is_none());
    topic.producer().send(Record::new("10")).unwrap();
    assert_eq!(c.try_recv().unwrap().unwrap().offset(), 10);
}

#[test]
fn closed_broker_refuses_with_closed() {
    let dir = TempDir::new("closed");
    let broker = open(&dir);
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    broker.close().unwrap();
    broker.close().unwrap(); // idempotent
    assert!(broker.is_closed());
    assert!(matches!(broker.create_topic("u", TopicConfig::default()), Err(Error::Closed)));
    assert!(matches!(broker.topic("t"), Err(Error::Closed)));
    assert!(matches!(broker.delete_topic("t"), Err(Error::Closed)));
    assert!(matches!(topic.producer().send(Record::new("x")), Err(Error::Closed)));
    assert!(matches!(topic.producer().flush(), Err(Error::Closed)));
    // And the directory is released for the next owner.
    drop(broker);
    assert_eq!(open(&dir).topics(), ["t"]);
}

#[test]
fn open_of_a_path_that_is_a_file_is_an_error() {
    let dir = TempDir::new("file-path");
    let file = dir.join("not-a-dir");
    std::fs::write(&file, b"hello").unwrap();
    match Broker::open(&file) {
        Err(Error::Io { path, .. }) => assert!(path.starts_with(&file), "{}", path.display()),
        other => panic!("opening a file as a broker directory returned {other:?}"),
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"hello");
}

#[test]
fn opening_an_empty_path_is_invalid_config_and_creates_nothing_in_the_current_directory() {
    // `Path::new("")` would otherwise mean the current directory.
    let ours = ["millpond.lock", "topics", "groups", "trash"];
    let present = || ours.iter().filter(|n| Path::new(n).exists()).count();
    let before = present();
    match Broker::open("") {
        Err(Error::InvalidConfig { reason }) => assert!(reason.contains("empty"), "{reason}"),
        other => panic!("Broker::open(\"\") returned {other:?}, expected InvalidConfig"),
    }
    assert_eq!(present(), before, "Broker::open(\"\") created files in the current directory");
}
