//! A full disk, for real.
//!
//! 1. `RLIMIT_FSIZE` (always runs): in a child process (this test binary
//!    re-run with `--exact`), the file-size limit is lowered below the
//!    segment size, with `SIGXFSZ` ignored, so preallocating the next
//!    segment fails with `EFBIG`. The log must answer `Error::DiskFull`
//!    saying what failed, show nothing partial, keep every acknowledged
//!    record, and accept sends again once the limit is raised.
//! 2. A tiny tmpfs (when `mount` is permitted): fill it up, get
//!    `Error::DiskFull` (`ENOSPC`), free space by deleting a ballast file and
//!    then a topic, and sends succeed again.

mod support;

use std::path::PathBuf;

use millpond::{Broker, Error, Record, TopicConfig};
use support::child;
use support::dir::TempDir;
use support::layout::{segment_bases, segment_path};
use support::records::{Spec, Stored, by_position, read_all, send_all};
use support::tmpfs::Tmpfs;
use support::tree::tree;

const SEGMENT: u64 = 64 << 10;
/// Below the segment size: preallocating a new segment fails, while the
/// small files (metadata, indexes, offsets) still fit.
const FSIZE_LIMIT: u64 = 32 << 10;

fn config() -> TopicConfig {
    TopicConfig::default().segment_bytes(SEGMENT).max_record_bytes(8 << 10)
}

/// A 1000-byte record `i`.
fn rec(i: u64) -> Spec {
    let mut value = format!("record-{i:08}-").into_bytes();
    value.resize(1000, b'0' + (i % 10) as u8);
    Spec::value(value, 1_700_000_000_000 + i as i64)
}

/// Lowers this process's soft file-size limit, with SIGXFSZ ignored so the
/// kernel reports `EFBIG` instead of killing the process.
fn limit_file_size(bytes: u64) {
    // SAFETY: ignoring a signal and setting a resource limit of this
    // process; no memory is shared with the kernel beyond the struct read.
    unsafe {
        assert_ne!(libc::signal(libc::SIGXFSZ, libc::SIG_IGN), libc::SIG_ERR);
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut lim), 0);
        lim.rlim_cur = bytes as libc::rlim_t;
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0, "setrlimit");
    }
}

/// Raises the soft file-size limit back to the hard limit.
fn unlimit_file_size() {
    // SAFETY: as in `limit_file_size`.
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0, "setrlimit");
    }
}

/// Runs `test_name` as a child with `role` and asserts it succeeded.
fn run_child(test_name: &str, role: &str) {
    let tmp = TempDir::new(role);
    let out = child::command(test_name, role, &tmp.join("broker")).output().expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stdout.lines().filter(|l| l.contains("CHILD:")) {
        eprintln!("{line}");
    }
    assert!(
        out.status.success() && stdout.contains("CHILD-OK"),
        "child {role} failed ({:?})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
}

/// Sends `rec(i)` for i = from, from+1, ... until a send fails; returns the
/// records stored and the error.
fn send_until_error(p: &millpond::Producer, from: u64, max: u64) -> (Vec<Stored>, Error) {
    let mut stored = Vec::new();
    for i in from..from + max {
        let spec = rec(i);
        match p.send(spec.record()) {
            Ok(id) => stored.push(spec.stored(id)),
            Err(e) => return (stored, e),
        }
    }
    panic!("{max} sends and no error: the disk never filled up");
}

fn expect_disk_full(e: &Error) -> (&'static str, PathBuf, Option<i32>) {
    match e {
        Error::DiskFull { op, path, source } => (*op, path.clone(), source.raw_os_error()),
        other => panic!("expected Error::DiskFull, got {other:?} ({other})"),
    }
}

// ---------------------------------------------------------------------------
// RLIMIT_FSIZE.

const RLIMIT_TEST: &str = "disk_full_from_rlimit_fsize_is_reported_leaves_nothing_partial_and_sends_resume";

#[test]
fn disk_full_from_rlimit_fsize_is_reported_leaves_nothing_partial_and_sends_resume() {
    match child::role().as_deref() {
        Some("rlimit") => rlimit_child(),
        Some(_) => {}
        None => run_child(RLIMIT_TEST, "rlimit"),
    }
}

fn rlimit_child() {
    let dir = child::dir();
    let broker = Broker::open(&dir).unwrap();
    let topic = broker.create_topic("t", config()).unwrap();
    let p = topic.producer();
    limit_file_size(FSIZE_LIMIT);

    // The active segment was preallocated before the limit: sends fill it,
    // and the first roll fails.
    let (mut stored, err) = send_until_error(&p, 0, 1000);
    let acked = stored.len() as u64;
    assert!(acked > 10, "the preallocated segment takes records: {acked}");
    let (op, path, errno) = expect_disk_full(&err);
    println!("CHILD: rlimit: after {acked} records: {err}");
    assert_eq!(errno, Some(libc::EFBIG), "EFBIG maps to DiskFull");
    assert_eq!(path, segment_path(&dir, "t", 0, acked), "the error names the segment it could not make");
    assert!(op.contains("preallocate"), "the error says what failed: {op}");
    let msg = err.to_string();
    assert!(msg.contains("no space") && msg.contains(&path.display().to_string()), "message: {msg}");

    // Nothing partial: same high watermark, no half-made segment file, the
    // old segment still active, everything acknowledged readable.
    let check_unchanged = |stored: &[Stored]| {
        assert_eq!(topic.high_watermark(0).unwrap(), acked);
        assert_eq!(segment_bases(&dir, "t", 0), [0], "no new segment file is left behind");
        assert_eq!(read_all(&topic), stored);
        assert!(broker.verify().unwrap().is_clean());
    };
    check_unchanged(&stored);
    // Still full: every kind of send fails the same way and changes nothing
    // (the partition is not poisoned: a full disk is retried, not fatal).
    expect_disk_full(&p.send(rec(acked).record()).unwrap_err());
    let batch: Vec<Spec> = (acked..acked + 3).map(rec).collect();
    expect_disk_full(&p.send_batch(batch.iter().map(Spec::record)).unwrap_err());
    check_unchanged(&stored);
    // flush() has nothing to allocate and works.
    p.flush().unwrap();

    // Space again: sends succeed, at the next offset, rolling a new segment.
    unlimit_file_size();
    let more: Vec<Spec> = (acked..acked + 100).map(rec).collect();
    let ids: Vec<u64> = more.iter().map(|s| p.send(s.record()).unwrap().offset).collect();
    assert_eq!(ids, (acked..acked + 100).collect::<Vec<_>>(), "no offset is skipped or reused");
    stored.extend(more.iter().zip(&ids).map(|(s, &o)| s.stored(millpond::RecordId { partition: 0, offset: o })));
    assert!(segment_bases(&dir, "t", 0).len() >= 2, "the roll that failed now succeeds");
    assert_eq!(read_all(&topic), stored);
    assert!(broker.verify().unwrap().is_clean());
    drop((p, topic));
    broker.close().unwrap();
    drop(broker);

    let broker = Broker::open(&dir).unwrap();
    assert!(broker.recovery_report().is_empty());
    assert_eq!(read_all(&broker.topic("t").unwrap()), stored);
    println!("CHILD-OK");
}

const CONTENDED_TEST: &str = "contending_producers_on_a_full_disk_each_get_disk_full_or_their_record_stored";

/// Four producers on one partition, so that most sends are written by
/// another thread's send (the write group): when the roll fails, each send
/// gets `DiskFull` or its record stored at the offset it was told, and
/// nothing else is stored.
#[test]
fn contending_producers_on_a_full_disk_each_get_disk_full_or_their_record_stored() {
    match child::role().as_deref() {
        Some("rlimit-contended") => contended_child(),
        Some(_) => {}
        None => run_child(CONTENDED_TEST, "rlimit-contended"),
    }
}

fn contended_child() {
    let dir = child::dir();
    let broker = Broker::open(&dir).unwrap();
    let topic = broker.create_topic("t", config()).unwrap();
    limit_file_size(FSIZE_LIMIT);
    let start = std::sync::Arc::new(std::sync::Barrier::new(4));
    let senders: Vec<_> = (0..4u64)
        .map(|t| {
            let p = topic.producer();
            let start = std::sync::Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                let (stored, err) = send_until_error(&p, t * 100_000, 1000);
                expect_disk_full(&err);
                // Still full: a few more sends fail the same way.
                for i in 0..5 {
                    expect_disk_full(&p.send(rec(t * 100_000 + 50_000 + i).record()).unwrap_err());
                }
                stored
            })
        })
        .collect();
    let stored: Vec<Stored> = senders.into_iter().flat_map(|h| h.join().unwrap()).collect();
    let stored = by_position(stored);
    println!("CHILD: rlimit-contended: {} records acknowledged", stored.len());
    assert!(stored.len() > 10, "the preallocated segment takes records");
    assert_eq!(topic.high_watermark(0).unwrap(), stored.len() as u64, "only acknowledged records are stored");
    assert_eq!(read_all(&topic), stored, "each acknowledged record is at the offset its send returned");
    assert_eq!(segment_bases(&dir, "t", 0), [0], "no new segment file is left behind");
    unlimit_file_size();
    let more = rec(999_999);
    let id = topic.producer().send(more.record()).unwrap();
    assert_eq!(id.offset, stored.len() as u64, "no offset is skipped");
    println!("CHILD-OK");
}

const CREATE_TEST: &str = "create_topic_on_a_full_disk_is_disk_full_leaves_nothing_behind_and_can_be_retried";

/// `Broker::create_topic` promises "On error nothing is left on disk".
///
/// (Regression: the staged directory used to stay behind in `topics/<name>`
/// when preallocating the first segment failed.)
#[test]
fn create_topic_on_a_full_disk_is_disk_full_leaves_nothing_behind_and_can_be_retried() {
    match child::role().as_deref() {
        Some("rlimit-create") => create_child(),
        Some(_) => {}
        None => run_child(CREATE_TEST, "rlimit-create"),
    }
}

fn create_child() {
    let dir = child::dir();
    let broker = Broker::open(&dir).unwrap();
    limit_file_size(FSIZE_LIMIT);
    let err = broker.create_topic("t", config()).unwrap_err();
    println!("CHILD: create_topic: {err}");
    expect_disk_full(&err);
    assert!(broker.topics().is_empty());
    let left: Vec<PathBuf> = tree(&dir.join("topics"));
    let trash: Vec<PathBuf> = tree(&dir.join("trash"));
    unlimit_file_size();
    // Retrying once there is space must work in this same broker.
    let retried = broker.create_topic("t", config());
    println!("CHILD: files left: {left:?}; retry: {:?}", retried.as_ref().map(|t| t.name().to_string()));
    // And a topic whose creation failed must not appear after a restart.
    let _ = broker.delete_topic("t");
    drop(retried);
    broker.close().unwrap();
    drop(broker);
    let broker = Broker::open(&dir).unwrap();
    println!("CHILD: topics after reopen: {:?}", broker.topics());
    drop(broker);

    assert!(left.is_empty(), "a failed create_topic left files behind: {left:?}");
    assert!(trash.is_empty(), "a failed create_topic left files in the trash: {trash:?}");
    // Retry from scratch now that nothing is left.
    std::fs::remove_dir_all(&dir).unwrap();
    let broker = Broker::open(&dir).unwrap();
    limit_file_size(FSIZE_LIMIT);
    expect_disk_full(&broker.create_topic("t", config()).unwrap_err());
    unlimit_file_size();
    let topic = broker.create_topic("t", config()).unwrap_or_else(|e| panic!("create_topic once there is space: {e}"));
    topic.producer().send(Record::new("works")).unwrap();
    println!("CHILD-OK");
}

const OVERSIZED_TEST: &str = "oversized_batch_hitting_a_full_disk_leaves_nothing_partial";

/// `Error::DiskFull` promises "Nothing partial became visible". A batch
/// larger than a segment is split at segment boundaries; when the roll in
/// the middle fails, the part already written must not be visible either.
///
/// (Regression: the frames before the failed roll used to be published.)
#[test]
fn oversized_batch_hitting_a_full_disk_leaves_nothing_partial() {
    match child::role().as_deref() {
        Some("rlimit-oversized") => oversized_child(),
        Some(_) => {}
        None => run_child(OVERSIZED_TEST, "rlimit-oversized"),
    }
}

fn oversized_child() {
    let dir = child::dir();
    let broker = Broker::open(&dir).unwrap();
    let topic = broker.create_topic("t", config()).unwrap();
    let p = topic.producer();
    let before = send_all(&p, &(0..5).map(rec).collect::<Vec<_>>());
    limit_file_size(FSIZE_LIMIT);
    // ~100 KiB: more than a whole 64 KiB segment.
    let batch: Vec<Spec> = (5..105).map(rec).collect();
    let result = p.send_batch(batch.iter().map(Spec::record));
    let hw = topic.high_watermark(0).unwrap();
    println!("CHILD: oversized batch: {:?}; high watermark {hw}", result.as_ref().map(Vec::len));
    let err = result.expect_err("the batch needs a new segment, which cannot be made");
    expect_disk_full(&err);
    assert_eq!(hw, 5, "DiskFull, yet {} records of the failed batch are visible", hw - 5);
    assert_eq!(read_all(&topic), before);
    println!("CHILD-OK");
}

const MULTI_TEST: &str = "multi_partition_batch_hitting_a_full_disk_leaves_nothing_partial";

/// The same promise for a batch spread over two partitions, one of which
/// needs a new segment.
///
/// (Regression: partitions used to be appended one by one, so earlier ones
/// were published before a later one failed.)
#[test]
fn multi_partition_batch_hitting_a_full_disk_leaves_nothing_partial() {
    match child::role().as_deref() {
        Some("rlimit-multi") => multi_child(),
        Some(_) => {}
        None => run_child(MULTI_TEST, "rlimit-multi"),
    }
}

fn multi_child() {
    let dir = child::dir();
    let broker = Broker::open(&dir).unwrap();
    // How many records fill a segment: send until the first roll.
    let probe = broker.create_topic("probe", config()).unwrap();
    let mut capacity = 0;
    while segment_bases(&dir, "probe", 0).len() == 1 {
        capacity = probe.producer().send(rec(capacity).record()).unwrap().offset;
    }
    drop(probe);
    broker.delete_topic("probe").unwrap();
    // Partition 1's segment is full; partition 0 has room.
    let topic = broker.create_topic("t", config().partitions(2)).unwrap();
    let p = topic.producer();
    send_all(&p, &(0..capacity).map(|i| rec(i).in_partition(1)).collect::<Vec<_>>());
    assert_eq!(segment_bases(&dir, "t", 1).len(), 1);
    limit_file_size(FSIZE_LIMIT);
    let batch = [rec(1000).in_partition(0), rec(1001).in_partition(1), rec(1002).in_partition(1)];
    let result = p.send_batch(batch.iter().map(Spec::record));
    let hws = (topic.high_watermark(0).unwrap(), topic.high_watermark(1).unwrap());
    println!("CHILD: two-partition batch: {:?}; high watermarks {hws:?}", result.as_ref().map(Vec::len));
    expect_disk_full(&result.expect_err("partition 1 needs a new segment"));
    assert_eq!(hws, (0, capacity), "DiskFull, yet part of the failed batch is visible");
    println!("CHILD-OK");
}

// ---------------------------------------------------------------------------
// A tiny tmpfs.

#[test]
fn tiny_tmpfs_fills_up_with_disk_full_and_sends_resume_once_space_is_freed() {
    let tmp = TempDir::new("tmpfs");
    let mount = match Tmpfs::mount(&tmp.join("mnt"), "1m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("SKIPPED tiny_tmpfs...: mounting a tmpfs is not permitted here: {why}");
            return;
        }
    };
    let dir = mount.path.join("broker");
    {
        let broker = Broker::open(&dir).unwrap();
        let topic = broker.create_topic("t", config()).unwrap();
        let filler = broker.create_topic("filler", config()).unwrap();
        // Space to free later: a ballast file and a whole topic.
        std::fs::write(mount.path.join("ballast"), vec![1u8; 192 << 10]).unwrap();
        send_all(&filler.producer(), &(0..150).map(rec).collect::<Vec<_>>());
        drop(filler);

        let p = topic.producer();
        let (mut stored, err) = send_until_error(&p, 0, 10_000);
        let (op, path, errno) = expect_disk_full(&err);
        eprintln!("tmpfs full after {} records: {err}", stored.len());
        assert_eq!(errno, Some(libc::ENOSPC));
        assert!(path.starts_with(&dir), "the error names a file of the broker: {}", path.display());
        assert!(!op.is_empty());
        let acked = stored.len() as u64;
        let bases = segment_bases(&dir, "t", 0);
        let check_unchanged = |stored: &[Stored]| {
            assert_eq!(topic.high_watermark(0).unwrap(), acked, "nothing partial is visible");
            assert_eq!(segment_bases(&dir, "t", 0), bases, "no half-made segment is left");
            assert_eq!(read_all(&topic), stored, "every acknowledged record is readable");
            assert!(broker.verify().unwrap().is_clean());
        };
        check_unchanged(&stored);
        expect_disk_full(&p.send(rec(acked).record()).unwrap_err());
        check_unchanged(&stored);

        // Free the ballast: sends succeed again until the disk is full again.
        std::fs::remove_file(mount.path.join("ballast")).unwrap();
        let (more, err) = send_until_error(&p, acked, 10_000);
        expect_disk_full(&err);
        assert!(more.len() > 100, "freeing 192 KiB makes room for more records: {}", more.len());
        assert_eq!(more[0].offset, acked, "offsets continue without a gap");
        stored.extend(more);
        let acked = stored.len() as u64;
        assert_eq!(topic.high_watermark(0).unwrap(), acked);

        // Free a topic: sends succeed again.
        broker.delete_topic("filler").unwrap();
        let specs: Vec<Spec> = (acked..acked + 80).map(rec).collect();
        for s in &specs {
            let id = p.send(s.record()).unwrap_or_else(|e| panic!("send after deleting a topic: {e}"));
            stored.push(s.stored(id));
        }
        assert_eq!(read_all(&topic), stored);
        assert!(broker.verify().unwrap().is_clean());
        drop((p, topic));
        broker.close().unwrap();
        drop(broker);
        // And it all survives a reopen on the (still small) file system.
        let broker = Broker::open(&dir).unwrap();
        assert!(broker.recovery_report().is_empty());
        assert_eq!(by_position(read_all(&broker.topic("t").unwrap())), stored);
    }
    drop(mount);
}

/// `close` on a full disk: once the data is synced, failing to write the
/// active segment's index (derived data, rebuilt by the next open's scan)
/// is no error of the close, which used to report it as `DiskFull`.
#[test]
fn close_on_a_full_disk_succeeds_once_the_data_is_synced() {
    let tmp = TempDir::new("tmpfs-close");
    let mount = match Tmpfs::mount(&tmp.join("mnt"), "1m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("SKIPPED close_on_a_full_disk...: mounting a tmpfs is not permitted here: {why}");
            return;
        }
    };
    let dir = mount.path.join("broker");
    let stored = {
        let broker = Broker::open(&dir).unwrap();
        let topic = broker.create_topic("t", config()).unwrap();
        let (stored, err) = send_until_error(&topic.producer(), 0, 10_000);
        expect_disk_full(&err);
        // Fill what little is left, so not even an index fits.
        let mut ballast = Vec::new();
        for i in 0.. {
            match std::fs::write(mount.path.join(format!("ballast-{i}")), vec![1u8; 512]) {
                Ok(()) => ballast.push(i),
                Err(_) => break,
            }
        }
        drop(topic);
        broker.close().unwrap_or_else(|e| panic!("close reported an error although the data is synced: {e}"));
        stored
    };
    let broker = Broker::open(&dir).unwrap();
    assert_eq!(read_all(&broker.topic("t").unwrap()), stored, "every acknowledged record survives");
    drop(broker);
    drop(mount);
}

/// The index that `close` could not write on a full disk is no error of
/// the close, but it is a failure the application hears of: a typed
/// `BackgroundError` naming the partition, once.
#[test]
fn an_index_that_cannot_be_written_at_close_is_reported_as_a_background_error() {
    let tmp = TempDir::new("tmpfs-close-report");
    let mount = match Tmpfs::mount(&tmp.join("mnt"), "1m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("SKIPPED an_index_that_cannot...: mounting a tmpfs is not permitted here: {why}");
            return;
        }
    };
    let dir = mount.path.join("broker");
    let seen: std::sync::Arc<std::sync::Mutex<Vec<millpond::BackgroundError>>> = Default::default();
    let sink = std::sync::Arc::clone(&seen);
    let config_with_callback =
        millpond::BrokerConfig::default().on_background_error(move |e| sink.lock().unwrap().push(e.clone()));
    let broker = Broker::open_with(&dir, config_with_callback).unwrap();
    let topic = broker.create_topic("t", config()).unwrap();
    let (_, err) = send_until_error(&topic.producer(), 0, 10_000);
    expect_disk_full(&err);
    for i in 0.. {
        if std::fs::write(mount.path.join(format!("ballast-{i}")), vec![1u8; 512]).is_err() {
            break;
        }
    }
    drop(topic);
    broker.close().unwrap();
    let seen = seen.lock().unwrap().clone();
    let index: Vec<_> = seen.iter().filter(|e| e.task == millpond::BackgroundTask::SegmentIndex).collect();
    // The close's failure is there; a roll while the disk filled may have
    // failed to write its index too (how much room is left when depends on
    // every other file's size). Each failure is reported once.
    assert!(!index.is_empty(), "the index failure is reported: {seen:?}");
    let paths: std::collections::BTreeSet<String> = index.iter().map(|e| e.error.to_string()).collect();
    assert_eq!(paths.len(), index.len(), "each index failure reported once: {seen:?}");
    for failure in &index {
        assert_eq!((failure.topic.as_deref(), failure.partition), (Some("t"), Some(0)));
        assert!(matches!(*failure.error, Error::DiskFull { .. }), "the cause is the full disk: {}", failure.error);
    }
    drop(broker);
    drop(mount);
}
