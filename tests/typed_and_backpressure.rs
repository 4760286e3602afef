//! Typed topics (codecs, decode failures, typed group members) and bounded
//! back-pressure (`Backlog`, `send` / `send_timeout` / `try_send`).

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;
use millpond::{
    AutoCommit, Backlog, Bincode, Broker, Decoder, Encoder, Error, Record, SendTimeoutError, StartFrom, Topic,
    TopicConfig, TrySendError, TypedConsumer, TypedSendTimeoutError, TypedTrySendError,
};
use serde::{Deserialize, Serialize};
use support::dir::TempDir;

/// Generous bound for anything that must eventually happen.
const EVENTUALLY: Duration = Duration::from_secs(30);
/// How long a thread is given to (wrongly) get past a full backlog.
const SETTLE: Duration = Duration::from_millis(150);

fn bounded(broker: &Broker, name: &str, limit: Backlog) -> Topic {
    broker.create_topic(name, TopicConfig::default().max_backlog(limit)).unwrap()
}

// ---------------------------------------------------------------- typed

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Status {
    Pending,
    Shipped { carrier: String },
    Cancelled(u32),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    customer: String,
    lines: Vec<(String, u32)>,
    note: Option<String>,
    total: f64,
    status: Status,
}

fn order(id: u64) -> Order {
    Order {
        id,
        customer: format!("customer-{}", id % 3),
        lines: (0..id % 4).map(|i| (format!("sku-{i}"), i as u32 + 1)).collect(),
        note: id.is_multiple_of(2).then(|| "gift wrap ✓".to_string()),
        total: id as f64 * 1.25,
        status: match id % 3 {
            0 => Status::Pending,
            1 => Status::Shipped { carrier: "owl".into() },
            _ => Status::Cancelled(id as u32),
        },
    }
}

#[test]
fn typed_round_trip_of_a_serde_struct() {
    let dir = TempDir::new("roundtrip");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("orders", TopicConfig::default().partitions(3)).unwrap();
    let producer = topic.typed_producer::<Order>();
    let mut consumer = topic.typed_consumer::<Order>(StartFrom::Earliest).unwrap();

    let a = producer.send(&order(1)).unwrap();
    let b = producer.send_keyed("customer-2", &order(2)).unwrap();
    let c = producer.send_with(&order(3), |r| r.header("trace", "t-3").timestamp(42).partition(2)).unwrap();
    assert_eq!(c.partition, 2);
    let batch: Vec<Order> = (4..20).map(order).collect();
    let ids = producer.send_batch(&batch).unwrap();
    assert_eq!(ids.len(), 16);

    let mut got = Vec::new();
    while let Some(m) = consumer.try_recv().unwrap() {
        got.push(m);
    }
    assert_eq!(got.len(), 19);
    let by_id = |id: u64| got.iter().find(|m| m.value.id == id).unwrap();
    for id in 1..20 {
        assert_eq!(by_id(id).value, order(id));
    }
    assert_eq!((by_id(1).message.partition(), by_id(1).message.offset()), (a.partition, a.offset));
    assert_eq!(by_id(2).message.key(), Some(&b"customer-2"[..]));
    assert_eq!(by_id(2).message.partition(), b.partition);
    let third = &by_id(3).message;
    assert_eq!((third.header("trace"), third.timestamp(), third.partition()), (Some(&b"t-3"[..]), 42, 2));
    // The value bytes are plain bincode: readable by any Bincode codec.
    let raw: Order = Bincode.decode(third.value()).unwrap();
    assert_eq!(raw, order(3));
}

/// A text codec for points: `"x,y"`. Refuses to encode points off the grid.
#[derive(Clone, Copy, Default)]
struct PointCsv;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Point {
    x: i32,
    y: i32,
}

impl Encoder<Point> for PointCsv {
    fn encode(&self, p: &Point, out: &mut Vec<u8>) -> Result<(), String> {
        if p.x.abs() > 1000 || p.y.abs() > 1000 {
            return Err(format!("{p:?} is off the grid"));
        }
        out.extend_from_slice(format!("{},{}", p.x, p.y).as_bytes());
        Ok(())
    }
}

impl Decoder<Point> for PointCsv {
    fn decode(&self, bytes: &[u8]) -> Result<Point, String> {
        let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
        let (x, y) = text.split_once(',').ok_or_else(|| format!("no comma in {text:?}"))?;
        Ok(Point { x: x.parse().map_err(|e| format!("x: {e}"))?, y: y.parse().map_err(|e| format!("y: {e}"))? })
    }
}

#[test]
fn custom_codec_round_trip_and_encode_failure() {
    let dir = TempDir::new("codec");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("points", TopicConfig::default()).unwrap();
    let producer = topic.typed_producer_with::<Point, _>(PointCsv);
    let points: Vec<Point> = (-5..5).map(|i| Point { x: i * 100, y: -i }).collect();
    for p in &points {
        producer.send(p).unwrap();
    }
    // An encode failure is Error::Encode and sends nothing.
    let err = producer.send(&Point { x: 5000, y: 0 }).unwrap_err();
    assert!(matches!(&err, Error::Encode { topic, reason } if topic == "points" && reason.contains("off the grid")));
    assert_eq!(topic.high_watermark(0).unwrap(), points.len() as u64);

    // The bytes on the wire are the codec's.
    let raw = topic.consumer(StartFrom::Earliest).unwrap().recv().unwrap();
    assert_eq!(raw.value(), b"-500,5");

    let mut consumer = topic.typed_consumer_with::<Point, _>(StartFrom::Earliest, PointCsv).unwrap();
    let got: Vec<Point> = std::iter::from_fn(|| consumer.try_recv().unwrap()).map(|m| m.value).collect();
    assert_eq!(got, points);
}

#[test]
fn decode_failure_names_partition_and_offset_and_the_consumer_goes_on() {
    let dir = TempDir::new("decode");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("orders", TopicConfig::default().partitions(2)).unwrap();
    let typed = topic.typed_producer::<Order>();
    let raw = topic.producer();
    typed.send_with(&order(1), |r| r.partition(1)).unwrap(); // p1 @0
    raw.send(Record::new("definitely not an order").partition(1)).unwrap(); // p1 @1
    typed.send_with(&order(2), |r| r.partition(1)).unwrap(); // p1 @2
    // A valid Order followed by trailing bytes is not an Order either.
    let mut trailing = Vec::new();
    Bincode.encode(&order(3), &mut trailing).unwrap();
    trailing.extend_from_slice(b"junk");
    raw.send(Record::new(trailing).partition(0)).unwrap(); // p0 @0
    typed.send_with(&order(4), |r| r.partition(0)).unwrap(); // p0 @1

    let mut consumer = topic.typed_consumer::<Order>(StartFrom::Earliest).unwrap();
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        match consumer.recv_timeout(Duration::from_secs(5)) {
            Ok(Some(m)) => good.push(m.value.id),
            Err(Error::Decode { topic, partition, offset, reason }) => {
                assert_eq!(topic, "orders");
                assert!(!reason.is_empty());
                bad.push((partition, offset));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    good.sort_unstable();
    bad.sort_unstable();
    assert_eq!(good, [1, 2, 4]);
    assert_eq!(bad, [(0, 0), (1, 1)]);
    assert!(consumer.try_recv().unwrap().is_none());
    // The consumer underneath has moved past every record, bad ones included.
    let inner = consumer.into_inner();
    assert_eq!(inner.positions(), [(0, 2), (1, 3)]);
}

#[test]
fn typed_consumer_over_a_group_member_commits_through_source_mut() {
    let dir = TempDir::new("typedgroup");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("orders", TopicConfig::default()).unwrap();
    let producer = topic.typed_producer::<Order>();
    for id in 0..5 {
        producer.send(&order(id)).unwrap();
    }
    topic.producer().send(Record::new("garbage")).unwrap(); // offset 5
    for id in 5..10 {
        producer.send(&order(id)).unwrap();
    }
    let group = topic.group("billing").unwrap().auto_commit(AutoCommit::Off);

    let mut typed = TypedConsumer::<Order, _, _>::new(group.join().unwrap(), Bincode);
    for id in 0..5 {
        assert_eq!(typed.recv().unwrap().value, order(id));
    }
    // Past the bad record (reported, then skipped), then commit.
    assert!(matches!(typed.recv(), Err(Error::Decode { offset: 5, .. })));
    assert_eq!(typed.recv().unwrap().value, order(5));
    typed.source_mut().commit().unwrap();
    assert_eq!(group.committed().unwrap()[&0], 7);
    // Received but not committed: delivered again to the next member.
    assert_eq!(typed.recv().unwrap().value, order(6));
    drop(typed);

    let mut again = TypedConsumer::<Order, _, _>::new(group.join().unwrap(), Bincode);
    let rest: Vec<u64> = std::iter::from_fn(|| again.try_recv().unwrap()).map(|m| m.value.id).collect();
    assert_eq!(rest, [6, 7, 8, 9]);
    again.source_mut().commit().unwrap();
    assert_eq!(group.lag().unwrap()[0].lag, 0);
    again.into_inner().close().unwrap();
}

#[test]
fn typed_iterators_yield_decode_failures_and_go_on() {
    let dir = TempDir::new("typediter");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("orders", TopicConfig::default().partitions(2)).unwrap();
    let producer = topic.typed_producer::<Order>();
    for id in 0..6 {
        producer.send_keyed("k", &order(id)).unwrap();
    }
    topic.producer().send(Record::new("garbage").key("k")).unwrap();
    producer.send_keyed("k", &order(6)).unwrap();
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off);

    // try_iter over a group member: every value, the bad record as an Err.
    let mut typed = TypedConsumer::<Order, _, _>::new(group.join().unwrap(), Bincode);
    let got: Vec<Result<u64, Error>> = typed.try_iter().map(|m| m.map(|m| m.value.id)).collect();
    assert_eq!(got.len(), 8);
    assert_eq!(got.iter().filter(|r| matches!(r, Err(Error::Decode { offset: 6, .. }))).count(), 1);
    let ids: Vec<u64> = got.into_iter().filter_map(Result::ok).collect();
    assert_eq!(ids, [0, 1, 2, 3, 4, 5, 6]);
    typed.source_mut().commit().unwrap();
    assert_eq!(group.lag().unwrap().iter().map(|l| l.lag).sum::<u64>(), 0);

    // iter blocks for new values and ends when the broker closes.
    let mut blocking = topic.typed_consumer::<Order>(StartFrom::Latest).unwrap();
    let (late, closer) = (producer.clone(), broker.clone());
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        late.send(&order(42)).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        closer.close().unwrap();
    });
    let seen: Vec<u64> = blocking.iter().map(|m| m.unwrap().value.id).collect();
    assert_eq!(seen, [42]);
    writer.join().unwrap();
}

// ---------------------------------------------------------- back-pressure

#[test]
fn send_blocks_on_a_full_backlog_until_the_group_commits() {
    let dir = TempDir::new("sendblocks");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = bounded(&broker, "t", Backlog::Records(2));
    let mut member = topic.group("g").unwrap().auto_commit(AutoCommit::Off).join().unwrap();
    let producer = topic.producer();
    producer.send(Record::new("0")).unwrap();
    producer.send(Record::new("1")).unwrap(); // the backlog is now full

    let returned = Arc::new(AtomicBool::new(false));
    let (tx, rx) = crossbeam_channel::bounded(1);
    let blocked = {
        let (producer, returned) = (producer.clone(), Arc::clone(&returned));
        std::thread::spawn(move || {
            let result = producer.send(Record::new("2"));
            returned.store(true, Ordering::SeqCst);
            let _ = tx.send(result);
        })
    };
    // Receiving alone makes no room: only a commit does.
    assert_eq!(member.recv().unwrap().value(), b"0");
    std::thread::sleep(SETTLE);
    assert!(!returned.load(Ordering::SeqCst), "send returned although the backlog was full");
    assert_eq!(topic.high_watermark(0).unwrap(), 2);

    member.commit().unwrap(); // committed offset 1: the backlog drops to 1
    let id = rx.recv_timeout(EVENTUALLY).expect("the commit did not wake the blocked producer").unwrap();
    assert_eq!(id.offset, 2);
    assert!(returned.load(Ordering::SeqCst));
    blocked.join().unwrap();
}

#[test]
fn send_timeout_gives_the_record_back_after_the_timeout() {
    let dir = TempDir::new("sendtimeout");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = bounded(&broker, "t", Backlog::Records(1));
    let _member = topic.group("g").unwrap().join().unwrap();
    let producer = topic.producer();
    producer.send(Record::new("first")).unwrap();

    let timeout = Duration::from_millis(60);
    let start = Instant::now();
    let err = producer.send_timeout(Record::new("second").key("k").header("h", "v"), timeout).unwrap_err();
    assert!(start.elapsed() >= timeout, "gave up after {:?}", start.elapsed());
    let SendTimeoutError::Timeout(record) = err else { panic!("expected Timeout, got {err:?}") };
    assert_eq!(record.value_bytes(), Some(&b"second"[..]));
    assert_eq!(record.key_bytes(), Some(&b"k"[..]));
    assert_eq!(record.header_count(), 1);
    assert_eq!(topic.high_watermark(0).unwrap(), 1); // nothing was written
    // With room, the same call succeeds at once.
    let roomy = bounded(&broker, "roomy", Backlog::Records(10));
    let _m = roomy.group("g").unwrap().join().unwrap();
    assert_eq!(roomy.producer().send_timeout(record, timeout).unwrap().offset, 0);
}

#[test]
fn try_send_returns_full_with_the_record_at_once() {
    let dir = TempDir::new("trysend");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = bounded(&broker, "t", Backlog::Records(1));
    let mut member = topic.group("g").unwrap().auto_commit(AutoCommit::Off).join().unwrap();
    let producer = topic.producer();
    producer.try_send(Record::new("first")).unwrap();

    let start = Instant::now();
    let err = producer.try_send(Record::new("second").key("k")).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5), "try_send waited {:?}", start.elapsed());
    let TrySendError::Full(record) = err else { panic!("expected Full, got {err:?}") };
    assert_eq!((record.value_bytes(), record.key_bytes()), (Some(&b"second"[..]), Some(&b"k"[..])));
    assert!(matches!(producer.try_send(record.clone()).unwrap_err().into_error(), Error::Full));

    member.recv().unwrap();
    member.commit().unwrap();
    let id = producer.try_send(record).unwrap();
    assert_eq!(id.offset, 1);
}

#[test]
fn no_lost_wake_ups_with_many_producers_on_a_tiny_backlog() {
    const PRODUCERS: u64 = 4;
    const EACH: u64 = 10;
    for limit in 1..=3 {
        let dir = TempDir::new("wakeups");
        let broker = Broker::open(dir.path()).unwrap();
        let topic = bounded(&broker, "t", Backlog::Records(limit));
        let mut member = topic.group("g").unwrap().auto_commit(AutoCommit::Off).join().unwrap();
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let (producer, done_tx) = (topic.producer(), done_tx.clone());
                std::thread::spawn(move || {
                    for i in 0..EACH {
                        producer.send(Record::new(format!("{p}:{i}"))).unwrap();
                    }
                    done_tx.send(p).unwrap();
                })
            })
            .collect();

        let deadline = Instant::now() + EVENTUALLY;
        let mut seen = HashSet::new();
        while (seen.len() as u64) < PRODUCERS * EACH {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = member
                .recv_timeout(left)
                .unwrap()
                .unwrap_or_else(|| panic!("limit {limit}: stuck after {} records (a lost wake-up?)", seen.len()));
            assert!(seen.insert(m.value().to_vec()), "delivered twice: {m:?}");
            member.commit().unwrap(); // wakes the producers held back
        }
        let mut finished = HashSet::new();
        while finished.len() < PRODUCERS as usize {
            match done_rx.recv_deadline(deadline) {
                Ok(p) => {
                    finished.insert(p);
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("limit {limit}: producers {finished:?} of {PRODUCERS} finished")
                }
                Err(RecvTimeoutError::Disconnected) => panic!("limit {limit}: a producer panicked"),
            }
        }
        for p in producers {
            p.join().unwrap();
        }
        for p in 0..PRODUCERS {
            for i in 0..EACH {
                assert!(seen.contains(format!("{p}:{i}").as_bytes()));
            }
        }
        assert!(member.try_recv().unwrap().is_none());
    }
}

#[test]
fn closing_the_broker_wakes_a_blocked_producer_with_closed() {
    let dir = TempDir::new("close");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = bounded(&broker, "t", Backlog::Records(1));
    let member = topic.group("g").unwrap().join().unwrap();
    let producer = topic.producer();
    producer.send(Record::new("first")).unwrap();

    let (tx, rx) = crossbeam_channel::bounded(2);
    let blocked_send = {
        let (producer, tx) = (producer.clone(), tx.clone());
        std::thread::spawn(move || tx.send(("send", producer.send(Record::new("x")).err())).unwrap())
    };
    let blocked_timeout = {
        let producer = producer.clone();
        std::thread::spawn(move || {
            let r = producer.send_timeout(Record::new("y"), Duration::from_secs(3600));
            tx.send(("send_timeout", r.err().map(|e| e.into_error()))).unwrap()
        })
    };
    std::thread::sleep(SETTLE);
    assert!(rx.try_recv().is_err(), "a producer got past the full backlog");

    broker.close().unwrap();
    for _ in 0..2 {
        let (which, err) = rx.recv_timeout(EVENTUALLY).expect("closing the broker did not wake a blocked producer");
        assert!(matches!(err, Some(Error::Closed)), "{which} ended with {err:?}");
    }
    blocked_send.join().unwrap();
    blocked_timeout.join().unwrap();
    drop(member);
}

#[test]
fn nothing_blocks_without_an_active_group() {
    let dir = TempDir::new("nogroup");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = bounded(&broker, "t", Backlog::Records(1));
    let producer = topic.producer();
    // No group at all.
    for i in 0..50 {
        producer.try_send(Record::new(format!("{i}"))).unwrap();
    }
    producer.send(Record::new("more")).unwrap();
    producer.send_timeout(Record::new("more"), Duration::ZERO).unwrap();

    // A group whose only member left is not active either.
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off);
    group.join().unwrap().close().unwrap();
    assert_eq!(group.members(), 0);
    producer.try_send(Record::new("still free")).unwrap();

    // Once a member joins, its group (having committed nothing) bounds the topic...
    let member = group.join().unwrap();
    assert!(matches!(producer.try_send(Record::new("held back")), Err(TrySendError::Full(_))));

    // ...and when the last member leaves, a blocked producer goes on.
    let (tx, rx) = crossbeam_channel::bounded(1);
    let blocked = {
        let producer = producer.clone();
        std::thread::spawn(move || tx.send(producer.send(Record::new("waiting"))).unwrap())
    };
    std::thread::sleep(SETTLE);
    assert!(rx.try_recv().is_err(), "send got past the full backlog");
    drop(member);
    rx.recv_timeout(EVENTUALLY).expect("the last member leaving did not release the producer").unwrap();
    blocked.join().unwrap();
}

#[test]
fn a_bytes_backlog_holds_producers_back_like_a_records_backlog() {
    let dir = TempDir::new("bytes");
    let broker = Broker::open(dir.path()).unwrap();
    // The byte backlog is measured from the index entry at or before the
    // committed offset, so the index is kept fine-grained here.
    let config = TopicConfig::default().max_backlog(Backlog::Bytes(4096)).index_interval_bytes(64);
    let topic = broker.create_topic("t", config).unwrap();
    let mut member = topic.group("g").unwrap().auto_commit(AutoCommit::Off).join().unwrap();
    let producer = topic.producer();
    let value = vec![7u8; 200];

    let mut sent = 0;
    let record = loop {
        match producer.try_send(Record::new(value.as_slice())) {
            Ok(_) => sent += 1,
            Err(TrySendError::Full(record)) => break record,
            Err(e) => panic!("{e}"),
        }
        assert!(sent < 100, "4 KiB of 200-byte records never filled the backlog");
    };
    assert!((10..=30).contains(&sent), "{sent} records of 200 bytes filled a 4096-byte backlog");
    let err = producer.send_timeout(record, Duration::from_millis(30)).unwrap_err();
    assert!(matches!(err, SendTimeoutError::Timeout(r) if r.value_bytes() == Some(&value[..])));

    // A blocked send is released by a commit.
    let (tx, rx) = crossbeam_channel::bounded(1);
    let blocked = {
        let (producer, value) = (producer.clone(), value.clone());
        std::thread::spawn(move || tx.send(producer.send(Record::new(value))).unwrap())
    };
    std::thread::sleep(SETTLE);
    assert!(rx.try_recv().is_err(), "send got past the full byte backlog");
    for _ in 0..sent / 2 {
        member.recv().unwrap();
    }
    member.commit().unwrap();
    let id = rx.recv_timeout(EVENTUALLY).expect("the commit did not wake the blocked producer").unwrap();
    assert_eq!(id.offset, sent);
    blocked.join().unwrap();
}

/// A `Backlog::Bytes` limit smaller than the index interval frees up once
/// the group has committed everything (the sparse index must not keep a
/// phantom backlog alive).
#[test]
fn bytes_backlog_below_the_index_interval_frees_up_when_caught_up() {
    let dir = TempDir::new("bytes-small");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().max_backlog(Backlog::Bytes(1024))).unwrap();
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off);
    let mut member = group.join().unwrap();
    member.try_recv().unwrap(); // take the partition
    let producer = topic.producer();
    let mut sent = 0;
    while producer.try_send(Record::new(vec![1u8; 100])).is_ok() {
        sent += 1;
        assert!(sent < 1000, "the byte limit never filled");
    }
    while member.try_recv().unwrap().is_some() {}
    member.commit().unwrap();
    assert!(
        producer.send_timeout(Record::new(vec![2u8; 100]), Duration::from_secs(10)).is_ok(),
        "caught up, yet the producer is still held back"
    );
}

/// A type that can only be written: a typed producer needs no `Deserialize`.
#[derive(Serialize)]
struct WriteOnly<'a> {
    label: &'a str,
    n: u32,
}

#[test]
fn a_typed_producer_needs_only_serialize() {
    let dir = TempDir::new("typed-serialize-only");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    topic.typed_producer::<WriteOnly<'_>>().send(&WriteOnly { label: "x", n: 7 }).unwrap();
    // Read back as a type with the same shape that can be decoded.
    let back: (String, u32) =
        Bincode.decode(topic.consumer(StartFrom::Earliest).unwrap().recv().unwrap().value()).unwrap();
    assert_eq!(back, ("x".to_string(), 7));
}

#[test]
fn typed_try_send_and_send_timeout_hand_the_value_back_when_full() {
    let dir = TempDir::new("typed-full");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().max_backlog(Backlog::Records(1))).unwrap();
    let _slow = topic.group("slow").unwrap().join().unwrap();
    let p = topic.typed_producer::<Order>();
    p.try_send(order(1)).unwrap();
    let second = order(2);
    match p.try_send(second.clone()) {
        Err(TypedTrySendError::Full(back)) => assert_eq!(back, second),
        other => panic!("expected Full with the value, got {other:?}"),
    }
    match p.send_timeout(second.clone(), Duration::from_millis(20)) {
        Err(TypedSendTimeoutError::Timeout(back)) => assert_eq!(back, second),
        other => panic!("expected Timeout with the value, got {other:?}"),
    }
    assert_eq!(topic.high_watermark(0).unwrap(), 1, "nothing was sent while full");
}

#[test]
fn typed_batches_with_keys_and_partitions_are_stored_whole_and_in_order() {
    let dir = TempDir::new("typed-batch-keys");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().partitions(4)).unwrap();
    let p = topic.typed_producer::<u32>();
    let values: Vec<u32> = (0..100).collect();
    let keys: Vec<String> = values.iter().map(|v| format!("key-{}", v % 5)).collect();
    let ids = p.send_batch_keyed(keys.iter().map(String::as_str).zip(&values)).unwrap();
    assert_eq!(ids.len(), 100);
    // One key, one partition; within it the batch's order.
    for k in 0..5 {
        let mine: Vec<_> = ids.iter().enumerate().filter(|(i, _)| i % 5 == k).map(|(_, id)| *id).collect();
        assert!(mine.iter().all(|id| id.partition == mine[0].partition), "key-{k} spread over partitions");
        assert!(mine.windows(2).all(|w| w[0].offset < w[1].offset), "key-{k} out of order");
    }
    let mut c = topic.typed_consumer::<u32>(StartFrom::Earliest).unwrap();
    let mut got: Vec<u32> = c.try_iter().map(|m| m.unwrap().value).collect();
    got.sort_unstable();
    assert_eq!(got, values);

    // Explicit partitions through send_batch_with.
    let ids = p.send_batch_with(&[10, 11, 12, 13], |v, r| r.partition(v % 4)).unwrap();
    assert_eq!(ids.iter().map(|id| id.partition).collect::<Vec<_>>(), vec![2, 3, 0, 1]);
}

#[test]
fn a_typed_batch_with_a_value_that_cannot_be_encoded_sends_nothing() {
    let dir = TempDir::new("typed-batch-encode");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    let p = topic.typed_producer_with::<Point, _>(PointCsv);
    let points = [Point { x: 1, y: 2 }, Point { x: 5000, y: 0 }, Point { x: 3, y: 4 }];
    let err = p.send_batch_keyed(points.iter().map(|pt| ("k", pt))).unwrap_err();
    assert!(matches!(err, Error::Encode { .. }), "{err}");
    assert!(matches!(p.try_send(Point { x: 9999, y: 0 }), Err(TypedTrySendError::Failed(Error::Encode { .. }))));
    assert_eq!(topic.high_watermark(0).unwrap(), 0, "nothing of the batch was stored");
}
