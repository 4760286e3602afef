//! Durability features: the four fsync policies, retention by size and by
//! age, and log compaction.
//!
//! Power loss cannot be simulated here, so the fsync policies are checked by
//! what they observably do: this test binary interposes `msync(2)` (the call
//! every sync of a segment's mapping goes through) and counts the calls per
//! thread, so the tests can see *when* each policy syncs — after every send,
//! after every n-th record, in the background, or only on `flush()`. Every
//! policy must also read back everything after a reopen.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use millpond::{
    AutoCommit, Broker, CleanupPolicy, Error, FsyncPolicy, OffsetReset, Record, StartFrom, TopicConfig, now_millis,
};
use support::dir::TempDir;
use support::layout::{index_path, segment_bases, segment_path};
use support::records::{Spec, Stored, by_position, drain, read_all, send_all};
use support::wait::poll_until;

/// Counting `msync(2)`: every sync of segment data goes through it.
mod msync_probe {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU64, Ordering};

    thread_local! {
        static ON_THIS_THREAD: Cell<u64> = const { Cell::new(0) };
        static FAIL_NEXT: Cell<bool> = const { Cell::new(false) };
    }

    /// Makes the next msync on the calling thread fail with EIO, as a disk
    /// error would (only this thread: tests run in parallel).
    pub(crate) fn fail_next_on_this_thread() {
        FAIL_NEXT.with(|f| f.set(true));
    }

    /// msync calls made by broker maintenance threads (the `Interval` syncer).
    pub(crate) static BY_MAINTENANCE_THREADS: AtomicU64 = AtomicU64::new(0);

    /// Replaces libc's `msync` for this test binary: counts the call, then
    /// makes the real system call.
    ///
    /// # Safety
    ///
    /// Same contract as `msync(2)`: the caller passes a mapped range.
    #[unsafe(no_mangle)]
    pub(crate) unsafe extern "C" fn msync(
        addr: *mut libc::c_void,
        len: libc::size_t,
        flags: libc::c_int,
    ) -> libc::c_int {
        let _ = ON_THIS_THREAD.try_with(|c| c.set(c.get() + 1)); // not during thread teardown
        if FAIL_NEXT.try_with(|f| f.replace(false)).unwrap_or(false) {
            // SAFETY: errno is thread-local; its location is valid for this thread.
            unsafe { *libc::__errno_location() = libc::EIO };
            return -1;
        }
        let mut name = [0 as libc::c_char; 32];
        // SAFETY: `name` is a writable buffer of the length passed.
        let rc = unsafe { libc::pthread_getname_np(libc::pthread_self(), name.as_mut_ptr(), name.len()) };
        if rc == 0 {
            let name: Vec<u8> = name.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
            // Linux truncates thread names to 15 bytes: "millpond-mainte".
            if name.starts_with(b"millpond-mainte") {
                BY_MAINTENANCE_THREADS.fetch_add(1, Ordering::SeqCst);
            }
        }
        // SAFETY: forwards the caller's arguments unchanged to the system call.
        unsafe { libc::syscall(libc::SYS_msync, addr, len, flags) as libc::c_int }
    }

    /// msync calls made so far by the calling thread.
    pub(crate) fn on_this_thread() -> u64 {
        ON_THIS_THREAD.with(Cell::get)
    }

    /// msync calls made so far by maintenance threads (all brokers).
    pub(crate) fn by_maintenance() -> u64 {
        BY_MAINTENANCE_THREADS.load(Ordering::SeqCst)
    }
}

/// A fixed, old-enough-to-be-recognisable timestamp base for records whose
/// age does not matter.
const TS: i64 = 1_700_000_000_000;

/// Serializes the tests that use `FsyncPolicy::Interval`, so one's background
/// syncs are not counted by the other.
static INTERVAL_TOPICS: std::sync::Mutex<()> = std::sync::Mutex::new(());
const HOUR_MS: i64 = 3_600_000;

/// Small segments (4 KiB) so a few dozen records roll several times.
fn small(cfg: TopicConfig) -> TopicConfig {
    cfg.segment_bytes(4096).max_record_bytes(1024)
}

/// Record `i` of a plain stream: a 200-byte value that names `i`, a key
/// and a header.
fn plain(i: u64) -> Spec {
    let mut value = format!("value-{i:08}-").into_bytes();
    value.resize(200, b'a' + (i % 26) as u8);
    Spec::keyed(format!("key-{}", i % 7), value, TS + i as i64).header("seq", i.to_string())
}

/// Reopens the broker in `dir` and checks that topic `name` has `policy`,
/// holds exactly `expected`, verifies clean, needed no repair, and that the
/// next offset continues after the last one.
fn reopen_and_check(dir: &std::path::Path, name: &str, policy: FsyncPolicy, expected: &[Stored]) {
    let broker = Broker::open(dir).expect("reopen");
    assert!(broker.recovery_report().is_empty(), "a clean close needs no repair: {:?}", broker.recovery_report());
    let topic = broker.topic(name).expect("topic survives reopen");
    assert_eq!(topic.config().get_fsync(), policy, "the fsync policy round-trips through topic.meta");
    assert_eq!(by_position(read_all(&topic)), expected, "everything acknowledged is read back after reopen");
    let report = broker.verify().expect("verify runs");
    assert!(report.is_clean(), "verify after reopen: {:?}", report.damage);
    assert_eq!(report.records, expected.len() as u64);
    let hw = topic.high_watermark(0).unwrap();
    let id = topic.producer().send(Record::new("after reopen").partition(0)).unwrap();
    assert_eq!(id.offset, hw, "offsets continue after reopen");
}

/// Sends `n` plain records one by one to a single-partition topic and
/// returns, for each send, whether it msynced before returning.
fn sends_that_synced(p: &millpond::Producer, range: std::ops::Range<u64>, stored: &mut Vec<Stored>) -> Vec<bool> {
    range
        .map(|i| {
            let before = msync_probe::on_this_thread();
            let spec = plain(i);
            let id = p.send(spec.record()).expect("send");
            stored.push(spec.stored(id));
            msync_probe::on_this_thread() > before
        })
        .collect()
}

#[test]
fn fsync_never_syncs_only_on_flush_and_everything_survives_reopen() {
    let tmp = TempDir::new("fsync-never");
    let mut expected = Vec::new();
    {
        let broker = Broker::open(tmp.path()).unwrap();
        let topic = broker.create_topic("t", small(TopicConfig::default()).fsync(FsyncPolicy::Never)).unwrap();
        let p = topic.producer();
        // 60 records of ~270 bytes: several rolls, none of which syncs.
        let synced = sends_that_synced(&p, 0..60, &mut expected);
        assert!(synced.iter().all(|s| !s), "FsyncPolicy::Never must not sync on the send path: {synced:?}");
        assert!(segment_bases(tmp.path(), "t", 0).len() >= 3, "the test needs sealed segments");
        // flush() is the barrier: it syncs the sealed segments and the active one.
        let before = msync_probe::on_this_thread();
        p.flush().unwrap();
        assert!(msync_probe::on_this_thread() > before, "flush() must msync the written data");
        // Records are visible at once, flush or not.
        assert_eq!(by_position(read_all(&topic)), expected);
        broker.close().unwrap();
    }
    reopen_and_check(tmp.path(), "t", FsyncPolicy::Never, &expected);
}

#[test]
fn fsync_every_n_syncs_after_every_nth_record_and_everything_survives_reopen() {
    let tmp = TempDir::new("fsync-everyn");
    let mut expected = Vec::new();
    {
        let broker = Broker::open(tmp.path()).unwrap();
        let topic = broker.create_topic("t", small(TopicConfig::default()).fsync(FsyncPolicy::EveryN(5))).unwrap();
        let p = topic.producer();
        let synced = sends_that_synced(&p, 0..23, &mut expected);
        let at: Vec<usize> = synced.iter().enumerate().filter(|(_, s)| **s).map(|(i, _)| i + 1).collect();
        assert_eq!(at, [5, 10, 15, 20], "EveryN(5) syncs exactly when the 5th, 10th, ... record is appended");
        // 3 records are unsynced; a batch of 4 brings it to 7 >= 5: one sync.
        let specs: Vec<Spec> = (23..27).map(plain).collect();
        let before = msync_probe::on_this_thread();
        let ids = p.send_batch(specs.iter().map(Spec::record)).unwrap();
        assert!(msync_probe::on_this_thread() > before, "a batch that crosses n records syncs");
        expected.extend(specs.iter().zip(&ids).map(|(s, id)| s.stored(*id)));
        // Counting restarts after a sync: the next 4 single sends do not sync.
        let synced = sends_that_synced(&p, 27..31, &mut expected);
        assert_eq!(synced, [false, false, false, false]);
        let before = msync_probe::on_this_thread();
        topic.flush().unwrap();
        assert!(msync_probe::on_this_thread() > before, "flush() syncs the unsynced remainder");
        assert_eq!(by_position(read_all(&topic)), expected);
        broker.close().unwrap();
    }
    reopen_and_check(tmp.path(), "t", FsyncPolicy::EveryN(5), &expected);
}

#[test]
fn fsync_interval_syncs_in_the_background_without_flush_and_everything_survives_reopen() {
    let _serial = INTERVAL_TOPICS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let tmp = TempDir::new("fsync-interval");
    let policy = FsyncPolicy::Interval(Duration::from_millis(50));
    let mut expected = Vec::new();
    {
        let broker = Broker::open(tmp.path()).unwrap();
        let topic = broker.create_topic("t", small(TopicConfig::default()).fsync(policy)).unwrap();
        let p = topic.producer();
        let background_before = msync_probe::by_maintenance();
        let synced = sends_that_synced(&p, 0..40, &mut expected);
        assert!(synced.iter().all(|s| !s), "Interval never syncs on the send path: {synced:?}");
        // No flush: the maintenance thread must sync by itself.
        assert!(
            poll_until(Duration::from_secs(15), || msync_probe::by_maintenance() > background_before),
            "no background msync within 15 s under FsyncPolicy::Interval(50ms)"
        );
        // With nothing new written, it stops syncing.
        std::thread::sleep(Duration::from_millis(300));
        let idle = msync_probe::by_maintenance();
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(msync_probe::by_maintenance(), idle, "an idle Interval partition is not synced again and again");
        // New data: a new background sync.
        sends_that_synced(&p, 40..45, &mut expected);
        assert!(
            poll_until(Duration::from_secs(15), || msync_probe::by_maintenance() > idle),
            "new records must be synced in the background again"
        );
        // The sync did not poison anything: sends and flush still work.
        sends_that_synced(&p, 45..50, &mut expected);
        p.flush().unwrap();
        assert_eq!(by_position(read_all(&topic)), expected);
        broker.close().unwrap();
    }
    reopen_and_check(tmp.path(), "t", policy, &expected);
}

#[test]
fn fsync_always_syncs_before_every_send_returns_and_everything_survives_reopen() {
    let tmp = TempDir::new("fsync-always");
    let mut expected = Vec::new();
    {
        let broker = Broker::open(tmp.path()).unwrap();
        let topic = broker.create_topic("t", small(TopicConfig::default()).fsync(FsyncPolicy::Always)).unwrap();
        let p = topic.producer();
        let synced = sends_that_synced(&p, 0..40, &mut expected);
        assert!(synced.iter().all(|s| *s), "Always syncs before every send returns: {synced:?}");
        let specs: Vec<Spec> = (40..50).map(plain).collect();
        let before = msync_probe::on_this_thread();
        let ids = p.send_batch(specs.iter().map(Spec::record)).unwrap();
        assert!(msync_probe::on_this_thread() > before, "a batch is synced before send_batch returns");
        expected.extend(specs.iter().zip(&ids).map(|(s, id)| s.stored(*id)));
        p.flush().unwrap();
        assert_eq!(by_position(read_all(&topic)), expected);
        broker.close().unwrap();
    }
    reopen_and_check(tmp.path(), "t", FsyncPolicy::Always, &expected);
}

#[test]
fn fsync_policies_round_trip_on_multi_partition_topics_and_a_different_policy_is_a_mismatch() {
    let _serial = INTERVAL_TOPICS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let tmp = TempDir::new("fsync-roundtrip");
    let policies = [
        ("never", FsyncPolicy::Never),
        ("every", FsyncPolicy::EveryN(3)),
        ("interval", FsyncPolicy::Interval(Duration::from_millis(20))),
        ("always", FsyncPolicy::Always),
    ];
    let cfg = |policy| small(TopicConfig::default()).partitions(3).fsync(policy);
    let mut expected: HashMap<&str, Vec<Stored>> = HashMap::new();
    {
        let broker = Broker::open(tmp.path()).unwrap();
        for (name, policy) in policies {
            let topic = broker.create_topic(name, cfg(policy)).unwrap();
            let specs: Vec<Spec> = (0..45).map(|i| plain(i).in_partition((i % 3) as u32)).collect();
            let mut stored = send_all(&topic.producer(), &specs[..30]);
            let ids = topic.producer().send_batch(specs[30..].iter().map(Spec::record)).unwrap();
            stored.extend(specs[30..].iter().zip(&ids).map(|(s, id)| s.stored(*id)));
            expected.insert(name, by_position(stored));
        }
        broker.flush().unwrap();
    }
    let broker = Broker::open(tmp.path()).unwrap();
    for (name, policy) in policies {
        let topic = broker.topic(name).unwrap();
        assert_eq!(topic.config(), &cfg(policy), "{name}: the whole config round-trips");
        assert_eq!(by_position(read_all(&topic)), expected[name], "{name}: everything is read back");
        // Same config again: the existing topic.
        broker.create_topic(name, cfg(policy)).unwrap();
        // Another fsync policy: refused, and the stored policy stays.
        for (_, other) in policies.iter().filter(|(_, o)| *o != policy) {
            match broker.create_topic(name, cfg(*other)) {
                Err(Error::TopicConfigMismatch { topic, difference }) => {
                    assert_eq!(topic, name);
                    assert!(difference.contains("fsync"), "the difference names the setting: {difference}");
                }
                other => panic!("{name}: re-creating with {other:?} must be TopicConfigMismatch"),
            }
        }
        assert_eq!(broker.topic(name).unwrap().config().get_fsync(), policy);
    }
    assert!(broker.verify().unwrap().is_clean());
}

// ---------------------------------------------------------------------------
// Retention.

/// A 200-byte keyless record `i` at `ts`: every one encodes to the same size,
/// so every sealed segment holds the same number of them.
fn fixed(i: u64, ts: i64) -> Spec {
    let mut value = format!("fixed-{i:08}-").into_bytes();
    value.resize(200, b'x');
    Spec::value(value, ts)
}

fn file_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).len()
}

/// Checks the files of partition 0 against the log start: every segment
/// below it is gone (with its index), the first one left starts at it.
fn assert_files_match_log_start(dir: &std::path::Path, topic: &millpond::Topic, deleted: &[u64]) {
    let start = topic.log_start(0).unwrap();
    let bases = segment_bases(dir, topic.name(), 0);
    assert_eq!(bases[0], start, "the first remaining segment starts at the log start");
    for &b in deleted {
        assert!(!segment_path(dir, topic.name(), 0, b).exists(), "segment {b} must be deleted");
        assert!(!index_path(dir, topic.name(), 0, b).exists(), "index {b} must be deleted");
    }
    assert_eq!(topic.stats().partitions[0].segments, bases.len(), "stats agree with the files");
}

#[test]
fn retention_by_bytes_deletes_whole_oldest_sealed_segments_and_keeps_the_rest_intact() {
    let tmp = TempDir::new("ret-bytes");
    let broker = Broker::open(tmp.path()).unwrap();
    let limit = 10_000;
    let topic = broker.create_topic("t", small(TopicConfig::default()).retention_bytes(limit)).unwrap();
    let specs: Vec<Spec> = (0..100).map(|i| fixed(i, now_millis())).collect();
    let stored = send_all(&topic.producer(), &specs);
    topic.enforce_retention().unwrap(); // (the background thread may have started already)

    let start = topic.log_start(0).unwrap();
    assert!(start > 0, "retention deleted something");
    let bases = segment_bases(tmp.path(), "t", 0);
    assert!(bases.len() >= 2, "{bases:?}");
    // Every segment holds the same number of these records: the log start is
    // a segment boundary (whole segments only), and all before it are gone.
    let per_segment = bases[1] - bases[0];
    assert_eq!(start % per_segment, 0, "the log start {start} is a segment boundary");
    let deleted: Vec<u64> = (0..start).step_by(per_segment as usize).collect();
    assert!(deleted.len() >= 3, "several segments were deleted: {deleted:?}");
    assert_files_match_log_start(tmp.path(), &topic, &deleted);
    assert_eq!(topic.high_watermark(0).unwrap(), 100, "the high watermark does not move");
    // Exactly as much as needed: what is left holds at least `limit` bytes,
    // and without its oldest segment it would hold less.
    let stats = topic.stats().partitions[0].clone();
    let oldest = file_len(&segment_path(tmp.path(), "t", 0, start));
    assert!(stats.bytes >= limit, "retention deleted too much: {} < {limit}", stats.bytes);
    assert!(stats.bytes - oldest < limit, "retention left a deletable segment: {stats:?}");
    assert_eq!(stats.log_start, start);
    assert_eq!(stats.records, 100 - start);
    // Everything from the log start on is intact.
    assert_eq!(read_all(&topic), stored[start as usize..]);
    assert!(broker.verify().unwrap().is_clean());
    // Running it again changes nothing.
    assert_eq!(topic.enforce_retention().unwrap(), 0);
    assert_eq!(topic.log_start(0).unwrap(), start);
}

#[test]
fn retention_never_deletes_the_active_segment_and_offsets_are_never_reused_after_reopen() {
    let tmp = TempDir::new("ret-active");
    let cfg = small(TopicConfig::default()).retention_bytes(1);
    let (start, hw, tail) = {
        let broker = Broker::open(tmp.path()).unwrap();
        let topic = broker.create_topic("t", cfg.clone()).unwrap();
        let specs: Vec<Spec> = (0..70).map(|i| fixed(i, now_millis())).collect();
        let stored = send_all(&topic.producer(), &specs);
        topic.enforce_retention().unwrap();
        // Only the active segment is left, with all its records.
        let bases = segment_bases(tmp.path(), "t", 0);
        assert_eq!(bases.len(), 1, "every sealed segment is over a 1-byte limit, the active one stays");
        let start = topic.log_start(0).unwrap();
        assert_eq!(bases[0], start);
        assert!(start > 0 && start < 70, "the active segment holds the newest records");
        assert_eq!(topic.high_watermark(0).unwrap(), 70);
        let tail = read_all(&topic);
        assert_eq!(tail, stored[start as usize..]);
        (start, 70, tail)
    };
    // After a restart: same log start, same high watermark, and new records
    // get new offsets, never the deleted ones.
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.topic("t").unwrap();
    assert_eq!(topic.log_start(0).unwrap(), start);
    assert_eq!(topic.high_watermark(0).unwrap(), hw);
    assert_eq!(read_all(&topic), tail);
    let id = topic.producer().send(fixed(70, now_millis()).record()).unwrap();
    assert_eq!(id.offset, hw, "offsets are never reused");
    // Roll and delete everything sealed again, then restart once more.
    send_all(&topic.producer(), &(71..120).map(|i| fixed(i, now_millis())).collect::<Vec<_>>());
    topic.enforce_retention().unwrap();
    let start2 = topic.log_start(0).unwrap();
    assert!(start2 > hw);
    drop(topic);
    broker.close().unwrap();
    drop(broker);
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.topic("t").unwrap();
    assert_eq!((topic.log_start(0).unwrap(), topic.high_watermark(0).unwrap()), (start2, 120));
    assert_eq!(topic.producer().send(fixed(120, now_millis()).record()).unwrap().offset, 120);
    assert!(broker.verify().unwrap().is_clean());
}

#[test]
fn retention_by_age_deletes_only_sealed_segments_whose_newest_record_is_too_old() {
    let tmp = TempDir::new("ret-age");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", small(TopicConfig::default()).retention(Duration::from_secs(3600))).unwrap();
    let p = topic.producer();
    let old = now_millis() - 2 * HOUR_MS;
    let mut stored = Vec::new();
    // Old records until the 4th segment starts; it will also get new ones.
    // (Rolls are detected by the newest segment file starting at the record
    // just sent: the background thread may already delete old segments.)
    let mut i = 0;
    let mut rolls = 0;
    let mut first_mixed = None;
    while first_mixed.is_none() {
        let spec = fixed(i, old + i as i64);
        let id = p.send(spec.record()).unwrap();
        stored.push(spec.stored(id));
        if segment_bases(tmp.path(), "t", 0).last() == Some(&id.offset) && id.offset > 0 {
            rolls += 1;
            if rolls == 3 {
                first_mixed = Some(id.offset);
            }
        }
        i += 1;
    }
    let first_mixed = first_mixed.unwrap();
    assert_eq!(*segment_bases(tmp.path(), "t", 0).last().unwrap(), first_mixed);
    // Fresh records: the 4th segment and several more.
    for j in i..i + 80 {
        let spec = fixed(j, now_millis());
        stored.push(spec.stored(p.send(spec.record()).unwrap()));
    }
    let hw = stored.len() as u64;
    topic.enforce_retention().unwrap();
    assert_eq!(topic.log_start(0).unwrap(), first_mixed, "exactly the three all-old segments are deleted");
    assert_eq!(topic.high_watermark(0).unwrap(), hw);
    assert_files_match_log_start(tmp.path(), &topic, &[]);
    assert_eq!(read_all(&topic), stored[first_mixed as usize..]);
    // Nothing else is old enough.
    assert_eq!(topic.enforce_retention().unwrap(), 0);
}

#[test]
fn retention_by_age_keeps_the_active_segment_even_when_everything_is_old() {
    let tmp = TempDir::new("ret-age-active");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", small(TopicConfig::default()).retention(Duration::from_secs(60))).unwrap();
    let old = now_millis() - 10 * HOUR_MS;
    let stored = send_all(&topic.producer(), &(0..50).map(|i| fixed(i, old)).collect::<Vec<_>>());
    topic.enforce_retention().unwrap();
    let bases = segment_bases(tmp.path(), "t", 0);
    assert_eq!(bases.len(), 1, "only the active segment is left");
    assert_eq!(topic.log_start(0).unwrap(), bases[0]);
    assert_eq!(read_all(&topic), stored[bases[0] as usize..], "the active segment's old records stay readable");
}

/// A topic whose retention keeps two sealed segments' worth of `fixed`
/// records: with four sealed segments and a part-filled active one,
/// retention deletes exactly the first two.
fn two_segment_retention_topic(broker: &Broker, dir: &std::path::Path) -> millpond::Topic {
    // Measure how big a sealed segment of `fixed` records is.
    let probe = broker.create_topic("probe", small(TopicConfig::default())).unwrap();
    send_all(&probe.producer(), &(0..40).map(|i| fixed(i, now_millis())).collect::<Vec<_>>());
    let seg_len = file_len(&segment_path(dir, "probe", 0, 0));
    broker.delete_topic("probe").unwrap();
    // Keep two sealed segments' worth: with 4 sealed and a part-filled
    // active one, the first two go.
    broker.create_topic("t", small(TopicConfig::default()).retention_bytes(2 * seg_len)).unwrap()
}

#[test]
fn reader_inside_a_deleted_segment_finishes_it_intact_then_is_told_it_lagged_and_goes_on_at_the_log_start() {
    let tmp = TempDir::new("ret-reader");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = two_segment_retention_topic(&broker, tmp.path());
    let mut stored = Vec::new();
    let p = topic.producer();
    let send = |range: std::ops::Range<u64>, stored: &mut Vec<Stored>| {
        stored.extend(send_all(&p, &range.map(|i| fixed(i, now_millis())).collect::<Vec<_>>()));
    };
    // One sealed segment and a bit: under the limit, nothing is deleted.
    send(0..20, &mut stored);
    let bases = segment_bases(tmp.path(), "t", 0);
    assert_eq!(bases.len(), 2);
    let per_segment = bases[1];
    let mut reader = topic.consumer(StartFrom::Earliest).unwrap();
    let first_three: Vec<millpond::Message> = (0..3).map(|_| reader.try_recv().unwrap().unwrap()).collect();
    assert_eq!(first_three.iter().map(Stored::of).collect::<Vec<_>>(), stored[..3]);
    assert_eq!(topic.log_start(0).unwrap(), 0);

    // Four sealed segments and a part-filled active one: the first two go.
    send(20..4 * per_segment + 5, &mut stored);
    topic.enforce_retention().unwrap();
    let start = topic.log_start(0).unwrap();
    assert_eq!(start, 2 * per_segment, "retention deleted exactly the first two segments");
    assert!(!segment_path(tmp.path(), "t", 0, 0).exists(), "the reader's segment file is gone");

    // Messages received before the deletion are still readable.
    assert_eq!(first_three.iter().map(Stored::of).collect::<Vec<_>>(), stored[..3]);
    // The reader finishes its (deleted) segment intact...
    let in_deleted: Vec<Stored> = (3..per_segment).map(|_| Stored::of(&reader.try_recv().unwrap().unwrap())).collect();
    assert_eq!(in_deleted, &stored[3..per_segment as usize], "the deleted segment is read to its end, intact");
    // ...is told, once, that the second segment was deleted before it read
    // it (never a silent skip)...
    match reader.try_recv() {
        Err(Error::Lagged { partition: 0, from, resumed_at, .. }) => {
            assert_eq!((from, resumed_at), (per_segment, start));
        }
        other => panic!("expected Lagged, got {other:?}"),
    }
    assert_eq!(reader.position(0).unwrap(), start);
    // ...and goes on at the log start, to the end.
    let after: Vec<Stored> = drain(&mut reader, usize::MAX).iter().map(Stored::of).collect();
    assert_eq!(after, &stored[start as usize..], "then it continues at the log start, to the high watermark");
    assert_eq!(reader.position(0).unwrap(), stored.len() as u64);
}

/// A `ConsumerChannel` whose consumer fell behind retention passes
/// `Lagged` on and keeps forwarding from the log start, like a tokio
/// receiver that stays subscribed; it used to stop at the first `Lagged`.
#[test]
fn consumer_channel_behind_retention_reports_lagged_and_goes_on() {
    let tmp = TempDir::new("ret-channel");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = two_segment_retention_topic(&broker, tmp.path());
    let p = topic.producer();
    let mut stored = send_all(&p, &(0..20).map(|i| fixed(i, now_millis())).collect::<Vec<_>>());
    let per_segment = segment_bases(tmp.path(), "t", 0)[1];
    // Capacity 1: once the first record is taken, the thread holds the
    // channel full a few records into the first segment.
    let channel = topic.consumer(StartFrom::Earliest).unwrap().into_channel(1);
    let next = || channel.receiver().recv_timeout(Duration::from_secs(10)).expect("the channel thread stopped");
    let mut offsets = vec![next().unwrap().offset()];
    stored.extend(send_all(&p, &(20..4 * per_segment + 5).map(|i| fixed(i, now_millis())).collect::<Vec<_>>()));
    topic.enforce_retention().unwrap();
    let start = topic.log_start(0).unwrap();
    assert_eq!(start, 2 * per_segment);
    let mut lagged = Vec::new();
    while offsets.last() != Some(&(stored.len() as u64 - 1)) {
        match next() {
            Ok(m) => offsets.push(m.offset()),
            Err(Error::Lagged { from, resumed_at, .. }) => lagged.push((from, resumed_at)),
            Err(e) => panic!("unexpected error from the channel: {e}"),
        }
    }
    assert_eq!(lagged, [(per_segment, start)], "told once which offsets it missed");
    let expected: Vec<u64> = (0..per_segment).chain(start..stored.len() as u64).collect();
    assert_eq!(offsets, expected, "its deleted segment to the end, then from the log start on");
}

/// A group member that fell behind retention: per its `OffsetReset`, told
/// once and moved to the log start (`Earliest`) or the high watermark
/// (`Latest`), or refused until it seeks (`Fail`). Never a silent skip, so
/// a commit never covers records nobody was told about.
#[test]
fn group_member_behind_retention_follows_its_reset_policy() {
    for reset in [OffsetReset::Earliest, OffsetReset::Latest, OffsetReset::Fail] {
        let tmp = TempDir::new("ret-group");
        let broker = Broker::open(tmp.path()).unwrap();
        let topic = two_segment_retention_topic(&broker, tmp.path());
        let p = topic.producer();
        let mut stored = send_all(&p, &(0..20).map(|i| fixed(i, now_millis())).collect::<Vec<_>>());
        let per_segment = segment_bases(tmp.path(), "t", 0)[1];
        // The group has committed offset 0, so every policy starts there.
        let mut first = topic.group("g").unwrap().auto_commit(AutoCommit::Off).join().unwrap();
        first.try_recv().unwrap();
        first.commit_offsets(&[(0, 0)]).unwrap();
        drop(first);
        let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off).offset_reset(reset);
        let mut member = group.join().unwrap();
        for o in 0..per_segment {
            let m = member.try_recv().unwrap();
            assert_eq!(m.map(|m| m.offset()), Some(o), "{reset:?}: the first segment"); // all of it
        }
        stored.extend(send_all(&p, &(20..4 * per_segment + 5).map(|i| fixed(i, now_millis())).collect::<Vec<_>>()));
        topic.enforce_retention().unwrap();
        let (start, end) = (topic.log_start(0).unwrap(), topic.high_watermark(0).unwrap());
        assert!(start > per_segment, "the segment after the member's was deleted");
        match (reset, member.try_recv()) {
            (OffsetReset::Earliest, Err(Error::Lagged { from, resumed_at, .. })) => {
                assert_eq!((from, resumed_at), (per_segment, start));
                let rest: Vec<u64> = member.try_iter().map(|m| m.unwrap().offset()).collect();
                assert_eq!(rest, (start..end).collect::<Vec<_>>());
            }
            (OffsetReset::Latest, Err(Error::Lagged { from, resumed_at, .. })) => {
                assert_eq!((from, resumed_at), (per_segment, end));
                assert!(member.try_recv().unwrap().is_none(), "only records appended from now on");
            }
            (OffsetReset::Fail, Err(Error::OffsetOutOfRange { offset, .. })) => {
                assert_eq!(offset, per_segment);
                assert!(matches!(member.try_recv(), Err(Error::OffsetOutOfRange { .. })), "until it seeks");
                assert_eq!(member.position(0).unwrap(), per_segment);
                member.seek(0, start).unwrap();
                assert_eq!(member.try_recv().unwrap().unwrap().offset(), start);
            }
            (reset, other) => panic!("{reset:?}: unexpected {other:?}"),
        }
        member.commit().unwrap();
        assert!(group.committed().unwrap()[&0] >= start, "{reset:?}: commits only what it was told about");
    }
}

#[test]
fn seek_and_start_offset_below_the_log_start_are_offset_out_of_range() {
    let tmp = TempDir::new("ret-seek");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = two_segment_retention_topic(&broker, tmp.path());
    let stored = send_all(&topic.producer(), &(0..80).map(|i| fixed(i, now_millis())).collect::<Vec<_>>());
    topic.enforce_retention().unwrap();
    let start = topic.log_start(0).unwrap();
    assert!(start > 0);
    let hw = topic.high_watermark(0).unwrap();

    for below in [0, start / 2, start - 1] {
        match topic.consumer(StartFrom::Offset(below)) {
            Err(Error::OffsetOutOfRange { offset, start: s, end, partition: 0, .. }) => {
                assert_eq!((offset, s, end), (below, start, hw));
            }
            other => panic!("StartFrom::Offset({below}) below log start {start}: {other:?}"),
        }
    }
    let mut c = topic.consumer(StartFrom::Offset(start + 2)).unwrap();
    for below in [0, start - 1] {
        assert!(matches!(c.seek(0, below), Err(Error::OffsetOutOfRange { offset, .. }) if offset == below));
        assert_eq!(c.position(0).unwrap(), start + 2, "a refused seek leaves the position unchanged");
    }
    assert!(matches!(c.seek(0, hw + 1), Err(Error::OffsetOutOfRange { .. })));
    c.seek(0, start).unwrap();
    assert_eq!(Stored::of(&c.try_recv().unwrap().unwrap()), stored[start as usize]);
    // Earliest means the new log start.
    let mut e = topic.consumer(StartFrom::Earliest).unwrap();
    assert_eq!(e.try_recv().unwrap().unwrap().offset(), start);
    e.seek_to_beginning().unwrap();
    assert_eq!(e.position(0).unwrap(), start);
}

#[test]
fn group_whose_committed_offset_fell_below_the_log_start_is_told_and_follows_offset_reset() {
    let tmp = TempDir::new("ret-group");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = two_segment_retention_topic(&broker, tmp.path());
    let p = topic.producer();
    let mut stored = send_all(&p, &(0..10).map(|i| fixed(i, now_millis())).collect::<Vec<_>>());
    {
        let mut m = topic.group("g").unwrap().auto_commit(AutoCommit::Off).join().unwrap();
        assert_eq!(m.try_recv().unwrap().unwrap().offset(), 0);
        assert_eq!(m.try_recv().unwrap().unwrap().offset(), 1);
        m.commit().unwrap();
        m.close().unwrap();
    }
    assert_eq!(topic.group("g").unwrap().committed().unwrap()[&0], 2);
    stored.extend(send_all(&p, &(10..90).map(|i| fixed(i, now_millis())).collect::<Vec<_>>()));
    topic.enforce_retention().unwrap();
    let start = topic.log_start(0).unwrap();
    assert!(start > 2, "the committed offset 2 is now below the log start {start}");
    let hw = topic.high_watermark(0).unwrap();

    // Fail: the member is told, with the offset and the valid range.
    {
        let mut m =
            topic.group("g").unwrap().offset_reset(OffsetReset::Fail).auto_commit(AutoCommit::Off).join().unwrap();
        match m.try_recv() {
            Err(Error::OffsetOutOfRange { offset: 2, start: s, end, .. }) => assert_eq!((s, end), (start, hw)),
            other => panic!("OffsetReset::Fail with a deleted committed offset: {other:?}"),
        }
        m.close().unwrap();
    }
    assert_eq!(topic.group("g").unwrap().committed().unwrap()[&0], 2, "a failed reset commits nothing");
    // Latest: told what it missed, then only new records.
    {
        let mut m =
            topic.group("g").unwrap().offset_reset(OffsetReset::Latest).auto_commit(AutoCommit::Off).join().unwrap();
        match m.try_recv() {
            Err(Error::Lagged { partition: 0, from: 2, resumed_at, .. }) => assert_eq!(resumed_at, hw),
            other => panic!("OffsetReset::Latest with a deleted committed offset: {other:?}"),
        }
        assert!(m.try_recv().unwrap().is_none());
        assert_eq!(m.position(0).unwrap(), hw);
        m.close().unwrap();
    }
    // Earliest: told what it missed, then from the log start, everything
    // still stored.
    let mut m =
        topic.group("g").unwrap().offset_reset(OffsetReset::Earliest).auto_commit(AutoCommit::Off).join().unwrap();
    match m.try_recv() {
        Err(Error::Lagged { partition: 0, from: 2, resumed_at, .. }) => assert_eq!(resumed_at, start),
        other => panic!("OffsetReset::Earliest with a deleted committed offset: {other:?}"),
    }
    let mut got = Vec::new();
    while let Some(msg) = m.try_recv().unwrap() {
        got.push(Stored::of(&msg));
    }
    assert_eq!(got, stored[start as usize..]);
}

#[test]
fn background_thread_applies_retention_by_itself() {
    let tmp = TempDir::new("ret-background");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", small(TopicConfig::default()).retention_bytes(4096)).unwrap();
    let stored = send_all(&topic.producer(), &(0..120).map(|i| fixed(i, now_millis())).collect::<Vec<_>>());
    // No enforce_retention(): the broker's maintenance thread must do it.
    let deadline = Duration::from_secs(20);
    assert!(
        poll_until(deadline, || segment_bases(tmp.path(), "t", 0).len() <= 2),
        "the background thread did not apply retention within {deadline:?}: {:?}",
        segment_bases(tmp.path(), "t", 0)
    );
    let start = topic.log_start(0).unwrap();
    assert!(start > 0);
    assert_eq!(topic.high_watermark(0).unwrap(), 120);
    assert_files_match_log_start(tmp.path(), &topic, &[0]);
    assert_eq!(read_all(&topic), stored[start as usize..]);
}

// ---------------------------------------------------------------------------
// Compaction.

fn compacted(cfg: TopicConfig) -> TopicConfig {
    small(cfg).cleanup(CleanupPolicy::Compact)
}

/// Record `i` of a key-value stream over 11 keys: some keyless records,
/// some tombstones, values of varying length, some headers.
fn kv(i: u64, ts: i64) -> Spec {
    if i % 7 == 3 {
        return Spec::value(format!("keyless-{i}"), ts);
    }
    let key = format!("k{}", i % 11);
    if i % 13 == 5 {
        return Spec::tombstone(key, ts);
    }
    let mut value = format!("v{i}-").into_bytes();
    value.resize(20 + (i % 50) as usize, b'0' + (i % 10) as u8);
    let spec = Spec::keyed(key, value, ts);
    if i.is_multiple_of(4) { spec.header("i", i.to_string()) } else { spec }
}

/// What compaction must leave: in offsets below `active_base`, keyless
/// records and the latest record of each key (tombstones not yet expired);
/// everything from `active_base` on.
fn expected_after_compaction(all: &[Stored], active_base: u64) -> Vec<Stored> {
    let mut latest: HashMap<&[u8], u64> = HashMap::new();
    for s in all.iter().filter(|s| s.offset < active_base) {
        if let Some(k) = &s.key {
            latest.insert(k, s.offset);
        }
    }
    all.iter()
        .filter(|s| s.offset >= active_base || s.key.as_deref().is_none_or(|k| latest[k] == s.offset))
        .cloned()
        .collect()
}

/// The latest record of each key in `records`: `Some(value)` or `None` for
/// a tombstone.
fn latest_per_key(records: &[Stored]) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    for s in records {
        if let Some(k) = &s.key {
            out.insert(k.clone(), s.value.clone());
        }
    }
    out
}

#[test]
fn compaction_keeps_the_latest_record_per_key_and_keyless_records_at_their_offsets() {
    let tmp = TempDir::new("compact-latest");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("kv", compacted(TopicConfig::default())).unwrap();
    let specs: Vec<Spec> = (0..400).map(|i| kv(i, now_millis())).collect();
    let all = send_all(&topic.producer(), &specs);
    let report = topic.compact().unwrap();
    assert!(report.bytes_after <= report.bytes_before, "{report:?}");
    let bases = segment_bases(tmp.path(), "kv", 0);
    assert!(bases.len() >= 4, "the test needs sealed segments: {bases:?}");
    let active_base = *bases.last().unwrap();
    let expected = expected_after_compaction(&all, active_base);
    assert!(expected.len() < all.len() / 2, "the stream has plenty to compact away");

    let got = read_all(&topic);
    assert_eq!(got, expected, "exactly the latest per key plus keyless records remain, at their offsets");
    let keyless = |v: &[Stored]| v.iter().filter(|s| s.key.is_none()).count();
    assert_eq!(keyless(&got), keyless(&all), "keyless records are never compacted away");
    assert_eq!(latest_per_key(&got), latest_per_key(&all), "replay gives the same latest state");
    assert_eq!(topic.high_watermark(0).unwrap(), 400, "compaction does not move the high watermark");
    assert_eq!(topic.log_start(0).unwrap(), 0);
    let v = broker.verify().unwrap();
    assert!(v.is_clean(), "verify after compaction: {:?}", v.damage);
    assert_eq!(v.records, got.len() as u64);
    // A second run has nothing left to remove.
    assert_eq!(topic.compact().unwrap().records_removed, 0);
    assert_eq!(read_all(&topic), expected);
}

#[test]
fn tombstones_are_removed_only_once_older_than_tombstone_retention() {
    let tmp = TempDir::new("compact-tombstones");
    let broker = Broker::open(tmp.path()).unwrap();
    let cfg = compacted(TopicConfig::default()).tombstone_retention(Duration::from_secs(3600));
    let topic = broker.create_topic("kv", cfg).unwrap();
    let p = topic.producer();
    let now = now_millis();
    let expired = now - 2 * HOUR_MS; // older than tombstone_retention
    let recent = now - 59 * 60_000; // younger than tombstone_retention
    let mut all = Vec::new();
    let mut send = |spec: Spec| all.push(spec.stored(p.send(spec.record()).unwrap()));
    let fill_until = |segments: usize, ts: i64, send: &mut dyn FnMut(Spec)| {
        let mut i = 0;
        while segment_bases(tmp.path(), "kv", 0).len() < segments {
            send(Spec::value(format!("filler-{ts}-{i}-{}", "f".repeat(150)), ts));
            i += 1;
        }
    };
    // Segment 0, all expired: a, b, c, then a's tombstone.
    send(Spec::keyed("a", "a1", expired));
    send(Spec::keyed("b", "b1", expired));
    send(Spec::keyed("c", "c1", expired));
    send(Spec::tombstone("a", expired));
    fill_until(2, expired, &mut send);
    // Segment 1, recent: b's tombstone and a new c.
    send(Spec::tombstone("b", recent));
    send(Spec::keyed("c", "c2", recent));
    fill_until(3, recent, &mut send);
    // The active segment: a fresh record.
    send(Spec::value("fresh", now_millis()));

    topic.compact().unwrap();
    let got = read_all(&topic);
    let with_key = |k: &[u8]| got.iter().filter(|s| s.key.as_deref() == Some(k)).cloned().collect::<Vec<_>>();
    assert!(with_key(b"a").is_empty(), "a's value and its expired tombstone are both gone: {:?}", with_key(b"a"));
    let b = with_key(b"b");
    assert_eq!(b.len(), 1, "only b's tombstone remains: {b:?}");
    assert!(b[0].value.is_none(), "a tombstone younger than tombstone_retention is kept");
    let c = with_key(b"c");
    assert_eq!(c.iter().map(|s| s.value.clone()).collect::<Vec<_>>(), [Some(b"c2".to_vec())]);
    assert_eq!(got.iter().filter(|s| s.key.is_none()).count(), all.iter().filter(|s| s.key.is_none()).count());
    // Every record left is one that was written, at its offset.
    let by_offset: HashMap<u64, &Stored> = all.iter().map(|s| (s.offset, s)).collect();
    for s in &got {
        assert_eq!(by_offset[&s.offset], s);
    }
    let state = latest_per_key(&got);
    assert_eq!(state.get(&b"b"[..]), Some(&None), "b reads as deleted");
    assert_eq!(state.get(&b"c"[..]), Some(&Some(b"c2".to_vec())));
    assert!(broker.verify().unwrap().is_clean());
}

#[test]
fn consumers_skip_compaction_gaps_and_a_reader_in_an_old_segment_keeps_its_view() {
    let tmp = TempDir::new("compact-gaps");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("kv", compacted(TopicConfig::default())).unwrap();
    let p = topic.producer();
    // Unique keys first: nothing to compact yet (the background thread
    // compacts after every roll), so segment 0 is still as written...
    let unique = |i: u64, v: &str| Spec::keyed(format!("u{i}"), format!("{v}-{i}-{}", "u".repeat(60)), now_millis());
    let mut all = send_all(&p, &(0..40).map(|i| unique(i, "old")).collect::<Vec<_>>());
    // ...when a reader starts in it.
    let mut early = topic.consumer(StartFrom::Earliest).unwrap();
    let first = Stored::of(&early.try_recv().unwrap().unwrap());
    assert_eq!(first, all[0]);
    // Then every unique key is superseded, and a key-value stream follows.
    all.extend(send_all(&p, &(0..40).map(|i| unique(i, "new")).collect::<Vec<_>>()));
    all.extend(send_all(&p, &(0..300).map(|i| kv(i, now_millis())).collect::<Vec<_>>()));
    let by_offset: HashMap<u64, &Stored> = all.iter().map(|s| (s.offset, s)).collect();

    topic.compact().unwrap();
    let active_base = *segment_bases(tmp.path(), "kv", 0).last().unwrap();
    let kept: Vec<u64> = expected_after_compaction(&all, active_base).iter().map(|s| s.offset).collect();
    let removed: Vec<u64> = (0..active_base).filter(|o| !kept.contains(o)).collect();
    assert!(removed.len() > 20);

    // Starting or seeking into a gap gives the next kept record.
    for &gap in removed.iter().step_by(7) {
        let next = *kept.iter().find(|&&o| o > gap).unwrap();
        let mut c = topic.consumer(StartFrom::Offset(gap)).unwrap();
        assert_eq!(Stored::of(&c.try_recv().unwrap().unwrap()), *by_offset[&next], "start in gap {gap}");
        c.seek(0, gap).unwrap();
        assert_eq!(c.try_recv().unwrap().unwrap().offset(), next, "seek into gap {gap}");
    }
    // The early reader never sees anything that was not written at that
    // offset, never goes backwards, and reaches the end.
    let rest = drain(&mut early, usize::MAX);
    let mut last = first.offset;
    for m in &rest {
        assert!(m.offset() > last, "offsets only increase");
        last = m.offset();
        assert_eq!(Stored::of(m), *by_offset[&m.offset()]);
    }
    assert_eq!(last, all.len() as u64 - 1);
    // Every kept record appears to the early reader; and it still reads the
    // segment it was in as it was when it got there (offset 1 is compacted
    // away for everybody else).
    let seen: Vec<u64> = std::iter::once(first.offset).chain(rest.iter().map(|m| m.offset())).collect();
    assert!(kept.iter().all(|o| seen.contains(o)), "no kept record is skipped");
    assert!(removed.contains(&1) && seen.contains(&1), "the early reader keeps its view of its segment");
    let mut fresh = topic.consumer(StartFrom::Earliest).unwrap();
    let now: Vec<u64> = drain(&mut fresh, usize::MAX).iter().map(millpond::Message::offset).collect();
    assert_eq!(now, kept, "a new reader sees only the kept records");
}

#[test]
fn compacted_log_replays_to_the_same_state_after_reopen_and_verifies_clean() {
    let tmp = TempDir::new("compact-reopen");
    let (state, records, hw) = {
        let broker = Broker::open(tmp.path()).unwrap();
        let topic = broker.create_topic("kv", compacted(TopicConfig::default()).partitions(2)).unwrap();
        let specs: Vec<Spec> = (0..500).map(|i| kv(i, now_millis()).in_partition((i % 2) as u32)).collect();
        let all = send_all(&topic.producer(), &specs);
        topic.compact().unwrap();
        // A second round of updates, compacted again.
        let more: Vec<Spec> = (500..700).map(|i| kv(i, now_millis()).in_partition((i % 2) as u32)).collect();
        let all: Vec<Stored> = all.into_iter().chain(send_all(&topic.producer(), &more)).collect();
        topic.compact().unwrap();
        let got = by_position(read_all(&topic));
        assert!(got.len() < all.len());
        for p in 0..2 {
            let of_p: Vec<Stored> = all.iter().filter(|s| s.partition == p).cloned().collect();
            let got_p: Vec<Stored> = got.iter().filter(|s| s.partition == p).cloned().collect();
            assert_eq!(latest_per_key(&got_p), latest_per_key(&of_p), "partition {p}: same latest state");
        }
        let v = broker.verify().unwrap();
        assert!(v.is_clean(), "{:?}", v.damage);
        broker.close().unwrap();
        (latest_per_key(&got), got, [350, 350])
    };
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.topic("kv").unwrap();
    let v = broker.verify().unwrap();
    assert!(v.is_clean(), "verify after reopen: {:?}", v.damage);
    let got = by_position(read_all(&topic));
    assert_eq!(got, records, "the same records at the same offsets after reopen");
    assert_eq!(latest_per_key(&got), state);
    for p in 0..2 {
        assert_eq!(topic.high_watermark(p).unwrap(), hw[p as usize]);
        let id = topic.producer().send(Record::new("next").partition(p)).unwrap();
        assert_eq!(id.offset, hw[p as usize], "offsets continue after compaction and reopen");
    }
}

/// A failed msync is never ignored: the flush reports it, and the partition
/// refuses every later write with `Error::Poisoned` (the kernel may already
/// have dropped the data), while other partitions and readers carry on.
#[test]
fn a_failed_msync_poisons_the_partition_and_says_so() {
    let tmp = TempDir::new("poisoned");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().partitions(2)).unwrap();
    let producer = topic.producer();
    producer.send(Record::new("before").partition(0)).unwrap();

    msync_probe::fail_next_on_this_thread();
    match topic.flush() {
        Err(Error::Io { source, .. }) => assert_eq!(source.raw_os_error(), Some(libc::EIO)),
        other => panic!("the failed msync must be reported, got {other:?}"),
    }
    for attempt in [producer.send(Record::new("after").partition(0)).map(|_| ()), producer.flush()] {
        match attempt {
            Err(Error::Poisoned { topic, partition: 0, reason }) => {
                assert_eq!(topic, "t");
                assert!(reason.contains("msync"), "the reason names what failed: {reason}");
            }
            other => panic!("expected Poisoned, got {other:?}"),
        }
    }
    // Only that partition: the other one still takes writes.
    producer.send(Record::new("elsewhere").partition(1)).unwrap();
    // Readers still see what was acknowledged before.
    let mut c = topic.consumer_of(&[0], StartFrom::Earliest).unwrap();
    assert_eq!(c.try_recv().unwrap().unwrap().value(), b"before");
    assert!(c.try_recv().unwrap().is_none(), "nothing of the refused send");
}

/// Passes record values through unchanged, to read through a
/// `TypedConsumer` in the tests below.
#[derive(Debug, Clone, Copy)]
struct RawBytes;

impl millpond::Encoder<Vec<u8>> for RawBytes {
    fn encode(&self, value: &Vec<u8>, out: &mut Vec<u8>) -> Result<(), String> {
        out.extend_from_slice(value);
        Ok(())
    }
}

impl millpond::Decoder<Vec<u8>> for RawBytes {
    fn decode(&self, bytes: &[u8]) -> Result<Vec<u8>, String> {
        Ok(bytes.to_vec())
    }
}

/// The batch-receiving call forms, each reading partition 0 of topic `t`.
enum Batcher {
    Poll(millpond::Consumer),
    PollRef(millpond::Consumer),
    MemberPoll(millpond::GroupMember),
    MemberPollRef(millpond::GroupMember),
    TypedPoll(millpond::TypedConsumer<Vec<u8>, RawBytes>),
}

impl Batcher {
    fn try_recv_offset(&mut self) -> Option<u64> {
        let m = match self {
            Batcher::Poll(c) | Batcher::PollRef(c) => c.try_recv(),
            Batcher::MemberPoll(m) | Batcher::MemberPollRef(m) => m.try_recv(),
            Batcher::TypedPoll(t) => t.try_recv().map(|m| m.map(|m| m.message)),
        };
        m.unwrap().map(|m| m.offset())
    }

    fn poll_offsets(&mut self) -> Result<Vec<u64>, Error> {
        const MAX: usize = 1000;
        match self {
            Batcher::Poll(c) => Ok(c.poll(MAX, Duration::ZERO)?.iter().map(millpond::Message::offset).collect()),
            Batcher::PollRef(c) => Ok(c.poll_ref(MAX, Duration::ZERO)?.map(|m| m.offset()).collect()),
            Batcher::MemberPoll(m) => Ok(m.poll(MAX, Duration::ZERO)?.iter().map(millpond::Message::offset).collect()),
            Batcher::MemberPollRef(m) => Ok(m.poll_ref(MAX, Duration::ZERO)?.map(|m| m.offset()).collect()),
            Batcher::TypedPoll(t) => {
                Ok(t.poll(MAX, Duration::ZERO)?.into_iter().map(|m| m.unwrap().message.offset()).collect())
            }
        }
    }
}

/// `poll` (and every other batch form) gathers records until one fails:
/// when the failure is `Lagged` — retention deleted the next records, and
/// the position has already jumped to the log start — the batch gathered so
/// far is returned and the *next* call reports the `Lagged`, once; reading
/// then goes on at `resumed_at`. Never a silent jump over deleted records.
#[test]
fn poll_reports_lagged_after_returning_gathered_records() {
    type MakeBatcher = fn(&millpond::Topic) -> Batcher;
    let forms: [(&str, MakeBatcher); 5] = [
        ("Consumer::poll", |t| Batcher::Poll(t.consumer(StartFrom::Earliest).unwrap())),
        ("Consumer::poll_ref", |t| Batcher::PollRef(t.consumer(StartFrom::Earliest).unwrap())),
        ("GroupMember::poll", |t| {
            Batcher::MemberPoll(t.group("g").unwrap().auto_commit(AutoCommit::Off).join().unwrap())
        }),
        ("GroupMember::poll_ref", |t| {
            Batcher::MemberPollRef(t.group("g").unwrap().auto_commit(AutoCommit::Off).join().unwrap())
        }),
        ("TypedConsumer::poll", |t| Batcher::TypedPoll(t.typed_consumer_with(StartFrom::Earliest, RawBytes).unwrap())),
    ];
    for (form, make) in forms {
        let tmp = TempDir::new("poll-lagged");
        let broker = Broker::open(tmp.path()).unwrap();
        let topic = two_segment_retention_topic(&broker, tmp.path());
        let p = topic.producer();
        send_all(&p, &(0..20).map(|i| fixed(i, now_millis())).collect::<Vec<_>>());
        let per_segment = segment_bases(tmp.path(), "t", 0)[1];
        let mut reader = make(&topic);
        for o in 0..3 {
            assert_eq!(reader.try_recv_offset(), Some(o), "{form}");
        }
        send_all(&p, &(20..4 * per_segment + 5).map(|i| fixed(i, now_millis())).collect::<Vec<_>>());
        topic.enforce_retention().unwrap();
        let (start, end) = (topic.log_start(0).unwrap(), topic.high_watermark(0).unwrap());
        assert!(start > per_segment, "{form}: the segment after the reader's was deleted");

        // Read with the batch form only, recording every outcome.
        let mut offsets = Vec::new();
        let mut lagged = Vec::new();
        for _ in 0..100 {
            match reader.poll_offsets() {
                Ok(batch) if batch.is_empty() => break,
                Ok(batch) => offsets.extend(batch),
                Err(Error::Lagged { partition: 0, from, resumed_at, .. }) => {
                    lagged.push((offsets.len(), from, resumed_at));
                }
                Err(e) => panic!("{form}: unexpected error {e}"),
            }
        }
        let expected: Vec<u64> = (3..per_segment).chain(start..end).collect();
        assert_eq!(offsets, expected, "{form}: every record still stored, none twice");
        assert_eq!(
            lagged,
            [((per_segment - 3) as usize, per_segment, start)],
            "{form}: Lagged reported exactly once, right where the records stop"
        );
    }
}

/// A segment file whose records lie below the base offset its name gives
/// (a copy put in the wrong place) is reported as damage, or as a gap
/// (`Lagged`). Whatever the log reports, a reader's position only moves
/// forward: it never reads the same records again, and a `try_iter` over
/// the partition ends. (A guard: the storage engine reports this file as
/// `Corrupt` already; the consumer's own rule, never to follow a `Lagged`
/// backwards, is proven by the unit tests in `src/consumer.rs`.)
#[test]
fn misplaced_segment_never_moves_a_reader_backwards() {
    let tmp = TempDir::new("misplaced-segment");
    let per_segment = {
        let broker = Broker::open(tmp.path()).unwrap();
        let topic = broker.create_topic("t", small(TopicConfig::default())).unwrap();
        // 80 (50 in format 1, whose frames were larger): four segments.
        send_all(&topic.producer(), &(0..80).map(|i| fixed(i, TS)).collect::<Vec<_>>());
        broker.close().unwrap();
        segment_bases(tmp.path(), "t", 0)[1]
    };
    assert!(segment_bases(tmp.path(), "t", 0).len() >= 4, "three sealed segments and an active one");
    // The third segment's file is replaced by a copy of the first: records
    // 0..per_segment in a file whose name says they start at 2*per_segment.
    let third = 2 * per_segment;
    std::fs::copy(segment_path(tmp.path(), "t", 0, 0), segment_path(tmp.path(), "t", 0, third)).unwrap();
    let index = |base: u64| segment_path(tmp.path(), "t", 0, base).with_extension("index");
    std::fs::copy(index(0), index(third)).unwrap();

    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.topic("t").unwrap();
    let hw = topic.high_watermark(0).unwrap();
    for group in [false, true] {
        let mut consumer;
        let mut member;
        let items: Box<dyn Iterator<Item = Result<millpond::Message, Error>>> = if group {
            member = topic.group("g").unwrap().auto_commit(AutoCommit::Off).join().unwrap();
            Box::new(member.try_iter())
        } else {
            consumer = topic.consumer(StartFrom::Earliest).unwrap();
            Box::new(consumer.try_iter())
        };
        let mut last: Option<u64> = None;
        let mut results = 0;
        for item in items.take(10 * hw as usize) {
            results += 1;
            match item {
                Ok(m) => {
                    assert!(last.is_none_or(|l| m.offset() > l), "group={group}: offset {} after {last:?}", m.offset());
                    last = Some(m.offset());
                }
                // Reported (and the reader stays put, or jumps forward):
                // reading on must not go backwards either.
                Err(Error::Lagged { from, resumed_at, .. }) => {
                    assert!(resumed_at > from, "group={group}: Lagged backwards {from} -> {resumed_at}");
                }
                Err(Error::Corrupt { .. } | Error::PositionRegressed { .. }) => break,
                Err(e) => panic!("group={group}: unexpected {e}"),
            }
        }
        assert!(results < 10 * hw as usize, "group={group}: try_iter over {hw} records did not end");
    }
}
