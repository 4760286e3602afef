//! Local mirroring: a topic copied into a topic of another broker.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use millpond::{Broker, Error, Message, Mirror, Record, StartFrom, Topic, TopicConfig};
use support::dir::TempDir;
use support::wait::{poll_until, wait_until};

/// Everything about a message except its offset, per partition in order.
type Content = BTreeMap<u32, Vec<(Option<Vec<u8>>, Vec<u8>, bool, Vec<(String, Vec<u8>)>, i64)>>;

fn content(topic: &Topic) -> Content {
    let mut out = Content::new();
    for m in topic.consumer(StartFrom::Earliest).unwrap().try_iter() {
        let m: Message = m.unwrap();
        let headers = m.headers().map(|(n, v)| (n.to_string(), v.to_vec())).collect();
        out.entry(m.partition()).or_default().push((
            m.key().map(<[u8]>::to_vec),
            m.value().to_vec(),
            m.is_tombstone(),
            headers,
            m.timestamp(),
        ));
    }
    out
}

fn fill(topic: &Topic, from: u64, n: u64) {
    let p = topic.producer();
    p.send_batch((from..from + n).map(|i| {
        let r = if i % 50 == 49 { Record::tombstone(format!("k{}", i % 13)) } else { Record::new(format!("v{i}")) };
        r.key(format!("k{}", i % 13)).header("seq", i.to_string()).header("src", "primary").timestamp(1_000 + i as i64)
    }))
    .unwrap();
}

fn wait_caught_up(mirror: &Mirror) {
    let caught_up = poll_until(Duration::from_secs(30), || mirror.lag().unwrap() == 0);
    assert!(caught_up, "mirror did not catch up: {:?}", mirror.error());
}

#[test]
fn mirror_copies_partition_key_headers_timestamp_and_tombstones() {
    let tmp = TempDir::new("mirror-copy");
    let a = Broker::open(tmp.join("a")).unwrap();
    let b = Broker::open(tmp.join("b")).unwrap();
    let src = a.create_topic("events", TopicConfig::default().partitions(3)).unwrap();
    let dst = b.create_topic("events", TopicConfig::default().partitions(3)).unwrap();
    fill(&src, 0, 3_000);
    let mirror = Mirror::start(&src, &dst, "mirror").unwrap();
    fill(&src, 3_000, 2_000); // while it runs
    wait_caught_up(&mirror);
    assert_eq!(mirror.mirrored(), 5_000);
    mirror.stop().unwrap();
    assert_eq!(content(&src), content(&dst));
}

#[test]
fn mirror_resumes_after_a_stop_without_loss_or_duplicates() {
    let tmp = TempDir::new("mirror-resume");
    let a = Broker::open(tmp.join("a")).unwrap();
    let b = Broker::open(tmp.join("b")).unwrap();
    let src = a.create_topic("t", TopicConfig::default().partitions(2)).unwrap();
    let dst = b.create_topic("t", TopicConfig::default().partitions(2)).unwrap();
    fill(&src, 0, 1_000);
    let mirror = Mirror::start(&src, &dst, "m").unwrap();
    wait_caught_up(&mirror);
    mirror.stop().unwrap();
    fill(&src, 1_000, 1_000); // written while no mirror runs
    let mirror = Mirror::start(&src, &dst, "m").unwrap();
    wait_caught_up(&mirror);
    assert_eq!(mirror.mirrored(), 1_000, "the restarted mirror copies only what is new");
    mirror.stop().unwrap();
    assert_eq!(content(&src), content(&dst));
}

#[test]
fn mirror_interrupted_by_a_closed_broker_loses_nothing_after_reopen() {
    let tmp = TempDir::new("mirror-interrupted");
    {
        let a = Broker::open(tmp.join("a")).unwrap();
        let b = Broker::open(tmp.join("b")).unwrap();
        let src = a.create_topic("t", TopicConfig::default().partitions(2)).unwrap();
        let dst = b.create_topic("t", TopicConfig::default().partitions(2)).unwrap();
        fill(&src, 0, 20_000);
        let mirror = Mirror::start(&src, &dst, "m").unwrap();
        wait_until(Duration::from_secs(30), "the mirror copying a first record", || mirror.mirrored() > 0);
        b.close().unwrap(); // the destination goes away mid-stream
        // The mirror may already have copied everything and be waiting for
        // more; new source records make it reach the closed destination.
        fill(&src, 20_000, 1_000);
        let stopped = poll_until(Duration::from_secs(30), || !mirror.is_running());
        assert!(stopped, "the mirror did not notice its destination closed");
        let err = mirror.stop().unwrap_err();
        assert!(matches!(err, Error::Closed), "{err:?}");
    }
    let a = Broker::open(tmp.join("a")).unwrap();
    let b = Broker::open(tmp.join("b")).unwrap();
    let (src, dst) = (a.topic("t").unwrap(), b.topic("t").unwrap());
    let mirror = Mirror::start(&src, &dst, "m").unwrap();
    wait_caught_up(&mirror);
    mirror.stop().unwrap();
    // At-least-once: every source record is in the destination, in order
    // per partition; only the batch in flight at the interruption may repeat.
    let (want, got) = (content(&src), content(&dst));
    for (p, records) in &want {
        let copied = &got[p];
        assert!(copied.len() >= records.len() && copied.len() <= records.len() + 1_000, "partition {p}");
        let mut it = copied.iter();
        for r in records {
            assert!(it.any(|c| c == r), "partition {p}: a record is missing or out of order");
        }
    }
}

#[test]
fn mirror_refuses_a_destination_with_another_partition_count() {
    let tmp = TempDir::new("mirror-mismatch");
    let a = Broker::open(tmp.join("a")).unwrap();
    let b = Broker::open(tmp.join("b")).unwrap();
    let src = a.create_topic("t", TopicConfig::default().partitions(2)).unwrap();
    let dst = b.create_topic("t", TopicConfig::default().partitions(3)).unwrap();
    assert!(matches!(Mirror::start(&src, &dst, "m"), Err(Error::InvalidConfig { .. })));
    assert!(matches!(Mirror::start(&src, &src, "bad/name"), Err(Error::InvalidName { .. })));
}

#[test]
fn mirror_behind_the_source_retention_counts_what_it_could_not_copy_and_goes_on() {
    let tmp = TempDir::new("mirror-retention");
    let a = Broker::open(tmp.join("a")).unwrap();
    let b = Broker::open(tmp.join("b")).unwrap();
    let cfg = TopicConfig::default().segment_bytes(4096).max_record_bytes(1024).retention_bytes(3 * 4096);
    let src = a.create_topic("t", cfg).unwrap();
    let dst = b.create_topic("t", TopicConfig::default()).unwrap();
    let p = src.producer();
    let send = |range: std::ops::Range<u32>| {
        for i in range {
            p.send(Record::new(format!("{i:0>200}"))).unwrap();
        }
    };
    send(0..10);
    let mirror = Mirror::start(&src, &dst, "m").unwrap();
    wait_caught_up(&mirror);
    mirror.stop().unwrap();
    // While no mirror runs, retention deletes records it never copied.
    send(10..300);
    src.enforce_retention().unwrap();
    let start = src.log_start(0).unwrap();
    assert!(start > 10);
    let mirror = Mirror::start(&src, &dst, "m").unwrap();
    wait_caught_up(&mirror);
    assert_eq!(mirror.skipped(), start - 10, "the records retention took are counted, not hidden");
    assert_eq!(mirror.mirrored(), 300 - start);
    mirror.stop().unwrap();
    let copied: Vec<String> = dst
        .consumer(StartFrom::Earliest)
        .unwrap()
        .try_iter()
        .map(|m| String::from_utf8(m.unwrap().value().to_vec()).unwrap())
        .collect();
    let want: Vec<String> = (0..10).chain(start as u32..300).map(|i| format!("{i:0>200}")).collect();
    assert_eq!(copied, want);
}
