//! `Broker::open_read_only`: a reader beside the writer (here in the same
//! process, with its own mappings and no shared state; `read_only_processes.rs`
//! runs them as separate processes). It changes nothing on disk, refuses
//! every write with `ReadOnly`, follows live appends across rolls, reports
//! retention as `Lagged`, never returns a torn frame, and goes on when a
//! new writer recovers the log.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use millpond::{AutoCommit, Broker, BrokerConfig, Error, Record, ResetTo, StartFrom, TopicConfig, WaitStrategy};
use support::dir::TempDir;
use support::layout::active_segment;
use support::tree::{Entry, snapshot};

const WAIT: Duration = Duration::from_secs(20);

/// Every entry under `dir`, with the wake file's bytes left out: arming a
/// slot there is the one thing a waiting reader writes (its size is kept).
fn snapshot_without_wake(dir: &Path) -> Vec<(std::path::PathBuf, Entry)> {
    snapshot(dir)
        .into_iter()
        .map(|(p, e)| match e {
            Entry::File(bytes) if p.file_name().is_some_and(|n| n == "millpond.wake") => {
                (p, Entry::File(vec![0; bytes.len()]))
            }
            other => (p, other),
        })
        .collect()
}

fn small_segments() -> TopicConfig {
    TopicConfig::default().segment_bytes(4096).max_record_bytes(512)
}

#[test]
fn a_read_only_broker_creates_changes_and_deletes_nothing() {
    let tmp = TempDir::new("ro-untouched");
    {
        let w = Broker::open(tmp.path()).unwrap();
        let t = w.create_topic("t", small_segments().partitions(2)).unwrap();
        t.producer().send_batch((0..200u32).map(|i| Record::new(i.to_le_bytes().to_vec()))).unwrap();
        let g = t.group("g").unwrap().auto_commit(AutoCommit::Off);
        let mut m = g.join().unwrap();
        m.poll(50, Duration::from_millis(100)).unwrap();
        m.commit().unwrap();
        m.close().unwrap();
        // A torn tail left behind, as by a crash: a reader must not repair it.
        let seg = active_segment(tmp.path(), "t", 0);
        let mut f = std::fs::OpenOptions::new().append(true).open(seg).unwrap();
        std::io::Write::write_all(&mut f, &[0xAB; 100]).unwrap();
    }
    let before = snapshot_without_wake(tmp.path());
    let r = Broker::open_read_only(tmp.path()).unwrap();
    assert_eq!(r.topics(), ["t"]);
    let t = r.topic("t").unwrap();
    let mut c = t.consumer(StartFrom::Earliest).unwrap();
    let got = c.poll(1000, Duration::from_millis(200)).unwrap();
    assert_eq!(got.len(), 200);
    assert!(c.recv_timeout(Duration::from_millis(150)).unwrap().is_none(), "the torn tail is not a record");
    assert_eq!(t.groups().unwrap(), ["g"]);
    let _ = t.stats();
    assert!(r.verify().is_ok());
    drop((c, t));
    r.close().unwrap();
    assert_eq!(snapshot_without_wake(tmp.path()), before, "nothing in the directory changed");
}

#[test]
fn every_write_through_a_read_only_broker_is_read_only_and_changes_nothing() {
    let tmp = TempDir::new("ro-writes");
    let w = Broker::open(tmp.path()).unwrap();
    let t = w.create_topic("t", TopicConfig::default()).unwrap();
    t.producer().send(Record::new("one")).unwrap();
    let before = snapshot_without_wake(tmp.path());
    let r = Broker::open_read_only(tmp.path()).unwrap();
    let rt = r.topic("t").unwrap();
    let is_read_only = |res: Result<(), Error>, what: &str| match res {
        Err(Error::ReadOnly { path, .. }) => assert_eq!(path, tmp.path(), "{what}"),
        other => panic!("{what}: expected ReadOnly, got {other:?}"),
    };
    is_read_only(rt.producer().send(Record::new("x")).map(drop), "send");
    is_read_only(rt.producer().send_batch([Record::new("x")]).map(drop), "send_batch");
    is_read_only(futures::executor::block_on(rt.producer().send_async(Record::new("x"))).map(drop), "send_async");
    is_read_only(r.create_topic("new", TopicConfig::default()).map(drop), "create_topic");
    is_read_only(r.delete_topic("t"), "delete_topic");
    is_read_only(r.flush(), "broker flush");
    is_read_only(rt.flush(), "topic flush");
    is_read_only(rt.enforce_retention().map(drop), "enforce_retention");
    is_read_only(rt.compact().map(drop), "compact");
    let g = rt.group("g").unwrap();
    is_read_only(g.join().map(drop), "join");
    is_read_only(g.reset_offsets(ResetTo::Earliest).map(drop), "reset_offsets");
    is_read_only(g.reset_partition_offsets(&[0], ResetTo::Latest).map(drop), "reset_partition_offsets");
    is_read_only(g.delete(), "delete group");
    drop((g, rt, r));
    assert_eq!(snapshot_without_wake(tmp.path()), before);
    // The writer never noticed.
    assert_eq!(t.producer().send(Record::new("two")).unwrap().offset, 1);
}

#[test]
fn read_only_never_creates_a_broker() {
    let tmp = TempDir::new("ro-missing");
    let typo = tmp.path().join("no").join("broker");
    assert!(matches!(Broker::open_read_only(&typo), Err(Error::BrokerNotFound { .. })));
    assert!(!tmp.path().join("no").exists());
    std::fs::create_dir(tmp.path().join("empty")).unwrap();
    let err = Broker::open_with(tmp.path().join("empty"), BrokerConfig::default().read_only(true)).unwrap_err();
    assert!(matches!(err, Error::BrokerNotFound { .. }), "{err}");
    assert_eq!(std::fs::read_dir(tmp.path().join("empty")).unwrap().count(), 0);
}

#[test]
fn a_reader_follows_live_appends_across_segment_rolls_in_order() {
    let tmp = TempDir::new("ro-follow");
    let w = Broker::open(tmp.path()).unwrap();
    let t = w.create_topic("t", small_segments()).unwrap();
    let r = Broker::open_read_only(tmp.path()).unwrap();
    let mut c = r.topic("t").unwrap().consumer(StartFrom::Earliest).unwrap();
    const N: u32 = 3000;
    let writer = std::thread::spawn(move || {
        let p = t.producer();
        for i in 0..N {
            p.send(Record::new(i.to_le_bytes().to_vec())).unwrap();
            if i % 97 == 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        t
    });
    for i in 0..N {
        let m = c.recv_timeout(WAIT).unwrap().unwrap_or_else(|| panic!("record {i} never arrived"));
        assert_eq!((m.offset(), m.value()), (u64::from(i), &i.to_le_bytes()[..]));
    }
    let t = writer.join().unwrap();
    assert!(t.stats().partitions[0].segments > 10, "the records spanned many segments");
    assert!(c.try_recv().unwrap().is_none());
    assert_eq!(r.topic("t").unwrap().high_watermark(0).unwrap(), u64::from(N));
}

#[test]
fn every_receive_form_sees_new_records() {
    let tmp = TempDir::new("ro-forms");
    let w = Broker::open(tmp.path()).unwrap();
    let t = w.create_topic("t", small_segments()).unwrap();
    let r = Broker::open_read_only(tmp.path()).unwrap();
    let rt = r.topic("t").unwrap();
    let mut nonblocking = rt.consumer(StartFrom::Latest).unwrap();
    let mut zero_copy = rt.consumer(StartFrom::Latest).unwrap();
    let mut spinning = rt.consumer(StartFrom::Latest).unwrap().wait_strategy(WaitStrategy::BusySpin);
    let mut polling = rt.consumer(StartFrom::Latest).unwrap();
    let mut asynchronous = rt.consumer(StartFrom::Latest).unwrap();
    assert!(nonblocking.try_recv().unwrap().is_none());
    let p = t.producer();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        p.send(Record::new("new")).unwrap();
    });
    let got = futures::executor::block_on(asynchronous.recv_async()).unwrap();
    assert_eq!(got.value(), b"new");
    sender.join().unwrap();
    assert_eq!(spinning.recv_timeout(WAIT).unwrap().unwrap().value(), b"new");
    assert_eq!(zero_copy.recv_ref_timeout(WAIT).unwrap().unwrap().value(), b"new");
    assert_eq!(polling.poll(10, WAIT).unwrap().len(), 1);
    let deadline = Instant::now() + WAIT;
    let m = loop {
        if let Some(m) = nonblocking.try_recv().unwrap() {
            break m;
        }
        assert!(Instant::now() < deadline, "try_recv never saw the record");
    };
    assert_eq!(m.offset(), 0);
}

#[test]
fn an_async_reader_is_woken_by_the_writer_on_a_multi_thread_runtime() {
    let tmp = TempDir::new("ro-tokio");
    let w = Broker::open(tmp.path()).unwrap();
    let t = w.create_topic("t", TopicConfig::default().partitions(3)).unwrap();
    let r = Broker::open_read_only(tmp.path()).unwrap();
    let mut c = r.topic("t").unwrap().consumer(StartFrom::Earliest).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async move {
        let p = t.producer();
        let sender = tokio::spawn(async move {
            for i in 0..300u32 {
                p.send(Record::new(i.to_le_bytes().to_vec()).partition(i % 3)).unwrap();
                if i % 10 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        });
        let mut seen = 0;
        while seen < 300 {
            tokio::time::timeout(WAIT, c.recv_async()).await.expect("woken").unwrap();
            seen += 1;
        }
        sender.await.unwrap();
    });
}

#[test]
fn retention_deleting_what_a_reader_was_about_to_read_is_lagged() {
    let tmp = TempDir::new("ro-lagged");
    let w = Broker::open(tmp.path()).unwrap();
    let t = w.create_topic("t", small_segments().retention_bytes(8192)).unwrap();
    t.producer().send_batch((0..20u32).map(|i| Record::new(vec![i as u8; 200]))).unwrap();
    let r = Broker::open_read_only(tmp.path()).unwrap();
    let mut c = r.topic("t").unwrap().consumer(StartFrom::Earliest).unwrap();
    assert_eq!(c.recv().unwrap().offset(), 0);
    t.producer().send_batch((0..400u32).map(|i| Record::new(vec![i as u8; 200]))).unwrap();
    t.enforce_retention().unwrap();
    let start = t.log_start(0).unwrap();
    assert!(start > 40);
    let mut lagged = None;
    for _ in 0..1000 {
        match c.recv_timeout(WAIT) {
            Ok(Some(_)) => continue,
            Err(Error::Lagged { from, resumed_at, .. }) => {
                lagged = Some((from, resumed_at));
                break;
            }
            other => panic!("expected Lagged, got {other:?}"),
        }
    }
    let (from, resumed_at) = lagged.expect("Lagged reported");
    assert!(from < resumed_at && resumed_at <= start, "{from}..{resumed_at} vs log start {start}");
    assert_eq!(r.topic("t").unwrap().log_start(0).unwrap(), start);
    // The consumer decides: it goes on from where the log now starts.
    let mut c = r.topic("t").unwrap().consumer(StartFrom::Earliest).unwrap();
    assert_eq!(c.recv().unwrap().offset(), start);
}

#[test]
fn a_torn_tail_is_skipped_not_repaired_and_a_new_writer_is_followed() {
    let tmp = TempDir::new("ro-torn");
    {
        let w = Broker::open(tmp.path()).unwrap();
        w.create_topic("t", TopicConfig::default())
            .unwrap()
            .producer()
            .send_batch([Record::new("a"), Record::new("b")])
            .unwrap();
    }
    let seg = active_segment(tmp.path(), "t", 0);
    let len = std::fs::metadata(&seg).unwrap().len();
    // A frame header claiming more than is there, then garbage: a torn write.
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut f, &[0x40, 0, 0, 0, 2, 0x99, 0x98, 0x97]).unwrap();
    drop(f);
    let r = Broker::open_read_only(tmp.path()).unwrap();
    let mut c = r.topic("t").unwrap().consumer(StartFrom::Earliest).unwrap();
    assert_eq!(c.recv().unwrap().value(), b"a");
    assert_eq!(c.recv().unwrap().value(), b"b");
    assert!(c.recv_timeout(Duration::from_millis(100)).unwrap().is_none());
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), len + 8, "the reader repaired nothing");
    // A new writer recovers the log (dropping the torn bytes) and appends.
    let w = Broker::open(tmp.path()).unwrap();
    assert_eq!(w.recovery_report().len(), 1);
    w.topic("t").unwrap().producer().send(Record::new("c")).unwrap();
    let m = c.recv_timeout(WAIT).unwrap().expect("the new writer's record");
    assert_eq!((m.offset(), m.value()), (2, &b"c"[..]));
}

#[test]
fn a_reader_opened_with_no_writer_follows_the_writer_that_starts_later() {
    let tmp = TempDir::new("ro-later");
    drop(Broker::open(tmp.path()).unwrap().create_topic("t", small_segments()).unwrap());
    let r = Broker::open_read_only(tmp.path()).unwrap();
    let mut c = r.topic("t").unwrap().consumer(StartFrom::Earliest).unwrap();
    let handle = std::thread::spawn({
        let dir = tmp.path().to_path_buf();
        move || {
            std::thread::sleep(Duration::from_millis(100));
            let w = Broker::open(&dir).unwrap();
            let t = w.topic("t").unwrap();
            t.producer().send_batch((0..100u32).map(|i| Record::new(vec![i as u8; 100]))).unwrap();
            // A topic the reader has never seen.
            w.create_topic("later", TopicConfig::default()).unwrap().producer().send(Record::new("hi")).unwrap();
        }
    });
    for i in 0..100u64 {
        assert_eq!(c.recv_timeout(WAIT).unwrap().expect("record").offset(), i);
    }
    handle.join().unwrap();
    assert!(r.topics().contains(&"later".to_string()));
    let mut later = r.topic("later").unwrap().consumer(StartFrom::Earliest).unwrap();
    assert_eq!(later.recv().unwrap().value(), b"hi");
}

#[test]
fn groups_committed_offsets_and_lag_are_read_as_the_writer_commits() {
    let tmp = TempDir::new("ro-groups");
    let w = Broker::open(tmp.path()).unwrap();
    let t = w.create_topic("t", TopicConfig::default().partitions(2)).unwrap();
    t.producer().send_batch((0..10u32).map(|i| Record::new("x").partition(i % 2))).unwrap();
    let g = t.group("billing").unwrap().auto_commit(AutoCommit::Off);
    let mut m = g.join().unwrap();
    m.poll(4, Duration::from_millis(200)).unwrap();
    m.commit().unwrap();
    let r = Broker::open_read_only(tmp.path()).unwrap();
    let rt = r.topic("t").unwrap();
    assert_eq!(rt.groups().unwrap(), ["billing"]);
    let lag: u64 = rt.group("billing").unwrap().lag().unwrap().iter().map(|l| l.lag).sum();
    assert_eq!(lag, 6);
    m.poll(10, Duration::from_millis(200)).unwrap();
    m.commit().unwrap();
    t.producer().send(Record::new("y").partition(0)).unwrap();
    let lag: Vec<(u32, Option<u64>, u64)> = rt
        .group("billing")
        .unwrap()
        .lag()
        .unwrap()
        .iter()
        .map(|l| (l.partition, l.committed, l.high_watermark))
        .collect();
    assert_eq!(lag, [(0, Some(5), 6), (1, Some(5), 5)]);
    let described = rt.describe_group("billing").unwrap();
    assert!(format!("{described:?}").contains("billing"));
}

#[test]
fn a_waiting_reader_is_woken_promptly_with_and_without_the_wake_file() {
    for without_wake_file in [false, true] {
        let tmp = TempDir::new("ro-wake");
        let w = Broker::open(tmp.path()).unwrap();
        let t = w.create_topic("t", TopicConfig::default()).unwrap();
        if without_wake_file {
            std::fs::remove_file(tmp.path().join("millpond.wake")).unwrap();
        }
        let r = Broker::open_read_only(tmp.path()).unwrap();
        let mut c = r.topic("t").unwrap().consumer(StartFrom::Latest).unwrap();
        for i in 0..20u64 {
            let p = t.producer();
            let sender = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(5));
                p.send(Record::new("x")).unwrap();
            });
            let m = c.recv_timeout(WAIT).unwrap().expect("woken");
            assert_eq!(m.offset(), i);
            sender.join().unwrap();
        }
    }
}

#[test]
fn a_reader_closed_wakes_its_blocked_consumer() {
    let tmp = TempDir::new("ro-close");
    let w = Broker::open(tmp.path()).unwrap();
    w.create_topic("t", TopicConfig::default()).unwrap();
    let r = Broker::open_read_only(tmp.path()).unwrap();
    let mut c = r.topic("t").unwrap().consumer(StartFrom::Latest).unwrap();
    let closer = std::thread::spawn({
        let r = r.clone();
        move || {
            std::thread::sleep(Duration::from_millis(50));
            r.close().unwrap();
        }
    });
    let start = Instant::now();
    assert!(matches!(c.recv(), Err(Error::Closed)));
    assert!(start.elapsed() < WAIT);
    closer.join().unwrap();
}
