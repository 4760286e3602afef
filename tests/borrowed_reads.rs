//! Zero-copy receiving (`try_recv_ref`, `recv_ref`, `recv_ref_timeout`):
//! the same records, in the same order, with the same positions and group
//! commits as the owned `Message` API.

mod common;

use std::time::{Duration, Instant};

use common::{Lcg, TempDir, pattern};
use millpond::{AutoCommit, Broker, Error, Message, MessageRef, Record, StartFrom, TopicConfig};

/// Everything a consumer can see of one record.
type Seen = (u32, u64, i64, Option<Vec<u8>>, Vec<u8>, bool, Vec<(String, Vec<u8>)>);

fn seen(m: MessageRef<'_>) -> Seen {
    let headers = m.headers().map(|(n, v)| (n.to_string(), v.to_vec())).collect();
    (
        m.partition(),
        m.offset(),
        m.timestamp(),
        m.key().map(<[u8]>::to_vec),
        m.value().to_vec(),
        m.is_tombstone(),
        headers,
    )
}

#[test]
fn borrowed_and_owned_reads_see_the_same_records_across_segments_and_partitions() {
    let tmp = TempDir::new("ref-same");
    let broker = Broker::open(tmp.path()).unwrap();
    // Small segments, so reads cross many sealed segments.
    let cfg = TopicConfig::default().partitions(3).segment_bytes(16 << 10).max_record_bytes(4096);
    let topic = broker.create_topic("t", cfg).unwrap();
    let producer = topic.producer();
    let mut rng = Lcg::new(7);
    for i in 0..3_000u64 {
        let key = format!("k{}", rng.range(0, 40));
        let mut r = if rng.chance(1, 20) {
            Record::tombstone(key.clone())
        } else {
            Record::new(pattern(i, rng.range(0, 600) as usize))
        };
        r = r.key(key).timestamp(1_000 + i as i64);
        if rng.chance(1, 3) {
            r = r.header("seq", i.to_string()).header("empty", "");
        }
        if rng.chance(1, 10) {
            producer.send_batch([r, Record::new("batched").header("b", "1")]).unwrap();
        } else {
            producer.send(r).unwrap();
        }
    }
    assert!(topic.stats().partitions.iter().all(|p| p.segments > 3), "the reads cross sealed segments");

    let mut owned = topic.consumer(StartFrom::Earliest).unwrap();
    let mut borrowed = topic.consumer(StartFrom::Earliest).unwrap();
    let mut n = 0;
    loop {
        let a: Option<Message> = owned.try_recv().unwrap();
        let b = borrowed.try_recv_ref().unwrap().map(seen);
        assert_eq!(a.as_ref().map(|m| seen(m.view())), b, "record {n}");
        if a.is_none() {
            break;
        }
        n += 1;
    }
    assert_eq!(n as u64, (0..3).map(|p| topic.high_watermark(p).unwrap()).sum::<u64>());
    assert_eq!(owned.positions(), borrowed.positions());
}

#[test]
fn recv_ref_waits_for_a_record_and_recv_ref_timeout_honours_its_timeout() {
    let tmp = TempDir::new("ref-wait");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    let mut c = topic.consumer(StartFrom::Earliest).unwrap();

    let start = Instant::now();
    assert!(c.recv_ref_timeout(Duration::from_millis(30)).unwrap().is_none());
    assert!(start.elapsed() >= Duration::from_millis(30));

    let producer = topic.producer();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        producer.send(Record::new("late").key("k")).unwrap();
    });
    let m = c.recv_ref().unwrap();
    assert_eq!((m.offset(), m.key(), m.value()), (0, Some(&b"k"[..]), &b"late"[..]));
    sender.join().unwrap();
    assert_eq!(c.position(0).unwrap(), 1);
}

#[test]
fn recv_ref_returns_closed_when_the_broker_closes() {
    let tmp = TempDir::new("ref-closed");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    let mut c = topic.consumer(StartFrom::Earliest).unwrap();
    let closer = broker.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        closer.close().unwrap();
    });
    assert!(matches!(c.recv_ref(), Err(Error::Closed)));
    t.join().unwrap();
}

#[test]
fn a_group_member_reading_by_reference_commits_what_it_received() {
    let tmp = TempDir::new("ref-group");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().partitions(2)).unwrap();
    topic.producer().send_batch((0..100u32).map(|i| Record::new(i.to_le_bytes().to_vec()))).unwrap();
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off);
    let mut member = group.join().unwrap();
    let mut sum = 0u32;
    for _ in 0..60 {
        let m = member.try_recv_ref().unwrap().expect("records are there");
        sum += u32::from_le_bytes(m.value().try_into().unwrap());
    }
    member.commit().unwrap();
    drop(member);
    // A new member resumes after the 60 committed records: the other 40.
    let mut next = group.join().unwrap();
    let mut rest = 0;
    while let Some(m) = next.recv_ref_timeout(Duration::from_millis(10)).unwrap() {
        sum += u32::from_le_bytes(m.value().try_into().unwrap());
        rest += 1;
    }
    assert_eq!(rest, 40);
    assert_eq!(sum, (0..100).sum::<u32>(), "every record once");
}
