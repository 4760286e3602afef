//! Zero-copy receiving (`try_recv_ref`, `recv_ref`, `recv_ref_timeout`):
//! the same records, in the same order, with the same positions and group
//! commits as the owned `Message` API.

mod support;

use std::time::{Duration, Instant};

use millpond::{AutoCommit, Broker, Error, Message, MessageRef, Record, StartFrom, TopicConfig};
use support::dir::TempDir;
use support::frames::frames;
use support::layout::segment_files;
use support::rng::{Lcg, pattern};

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

#[test]
fn poll_ref_batches_come_from_one_partition_in_order_and_cover_every_record_once() {
    let tmp = TempDir::new("ref-batches");
    let broker = Broker::open(tmp.path()).unwrap();
    let cfg = TopicConfig::default().partitions(3).segment_bytes(32 << 10).max_record_bytes(4096);
    let topic = broker.create_topic("t", cfg).unwrap();
    let producer = topic.producer();
    for i in 0..5_000u32 {
        let r = Record::new(i.to_le_bytes().to_vec()).partition(i % 3);
        if i % 7 == 0 {
            producer.send_batch([r]).unwrap();
        } else {
            producer.send(r).unwrap();
        }
    }
    let mut c = topic.consumer(StartFrom::Earliest).unwrap();
    let mut next_offset = [0u64; 3];
    let mut partitions_in_turn = Vec::new();
    let mut total = 0;
    loop {
        let batch = c.poll_ref(100, Duration::ZERO).unwrap();
        if batch.is_empty() {
            assert_eq!(batch.from_partition(), None);
            break;
        }
        assert!(batch.len() <= 100);
        let p = batch.from_partition().unwrap();
        partitions_in_turn.push(p);
        for m in batch {
            assert_eq!(m.partition(), p, "a batch holds one partition");
            assert_eq!(m.offset(), next_offset[p as usize], "in order, nothing skipped");
            let i = u32::from_le_bytes(m.value().try_into().unwrap());
            assert_eq!(i % 3, p);
            next_offset[p as usize] += 1;
            total += 1;
        }
    }
    assert_eq!(total, 5_000);
    assert_eq!(c.positions(), vec![(0, 1667), (1, 1667), (2, 1666)]);
    // Batches take the partitions in turn, as every receive call does.
    assert_eq!(&partitions_in_turn[..3], &[0, 1, 2]);
}

#[test]
fn poll_ref_waits_for_the_first_record_then_takes_what_is_there() {
    let tmp = TempDir::new("ref-poll-wait");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    let mut c = topic.consumer(StartFrom::Earliest).unwrap();
    let start = Instant::now();
    assert!(c.poll_ref(10, Duration::from_millis(30)).unwrap().is_empty());
    assert!(start.elapsed() >= Duration::from_millis(30));
    assert!(c.poll_ref(0, Duration::from_secs(5)).unwrap().is_empty(), "max 0 returns at once");

    let producer = topic.producer();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        producer.send_batch((0..5).map(|i| Record::new(format!("v{i}")))).unwrap();
    });
    let values: Vec<Vec<u8>> = c.poll_ref(10, Duration::from_secs(30)).unwrap().map(|m| m.value().to_vec()).collect();
    assert_eq!(values, [b"v0", b"v1", b"v2", b"v3", b"v4"]);
    sender.join().unwrap();
}

/// A topic "t" of 120 one-record frames (value `[i; 50]`) whose first,
/// sealed segment has the third frame damaged. Returns that frame's position.
fn write_with_damaged_third_frame(tmp: &TempDir) -> usize {
    {
        let broker = Broker::open(tmp.path()).unwrap();
        let cfg = TopicConfig::default().segment_bytes(4096).max_record_bytes(1024);
        let topic = broker.create_topic("t", cfg).unwrap();
        let producer = topic.producer();
        // 120 (60 in format 1): about 66 of these frames fill a 4 KiB segment.
        for i in 0..120u8 {
            producer.send(Record::new(vec![i; 50])).unwrap(); // one frame each
        }
        broker.close().unwrap();
    }
    // One frame per record (their headers' varints vary a little in
    // width); damage the third one's value.
    let segments = segment_files(tmp.path(), "t", 0);
    assert!(segments.len() >= 2, "precondition: the first segment is sealed");
    let first = &segments[0];
    let mut bytes = std::fs::read(first).unwrap();
    let walked = frames(&bytes);
    assert_eq!(walked.last().unwrap().end(), bytes.len(), "a sealed segment holds whole frames");
    let third = walked[2];
    bytes[third.end() - 10] ^= 0xff;
    std::fs::write(first, &bytes).unwrap();
    third.start
}

#[test]
fn poll_ref_ends_a_batch_before_a_damaged_frame_and_reports_it_next() {
    let tmp = TempDir::new("ref-damage");
    let third_frame_at = write_with_damaged_third_frame(&tmp);
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.topic("t").unwrap();
    let mut c = topic.consumer(StartFrom::Earliest).unwrap();
    let got: Vec<u64> = c.poll_ref(10, Duration::ZERO).unwrap().map(|m| m.offset()).collect();
    assert_eq!(got, [0, 1], "the batch ends before the damaged frame");
    match c.poll_ref(10, Duration::ZERO) {
        Err(Error::Corrupt { position, .. }) => assert_eq!(position, third_frame_at as u64),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(c.position(0).unwrap(), 2, "the position stays before the damage");
}

#[test]
fn owned_poll_returns_what_it_gathered_before_a_damaged_frame() {
    let tmp = TempDir::new("poll-damage");
    write_with_damaged_third_frame(&tmp);
    let broker = Broker::open(tmp.path()).unwrap();
    let mut c = broker.topic("t").unwrap().consumer(StartFrom::Earliest).unwrap();
    let got: Vec<u64> = c.poll(10, Duration::ZERO).unwrap().iter().map(Message::offset).collect();
    assert_eq!(got, [0, 1], "the records before the damage are delivered, not dropped");
    assert!(matches!(c.poll(10, Duration::ZERO), Err(Error::Corrupt { .. })));
    assert_eq!(c.position(0).unwrap(), 2);
}
