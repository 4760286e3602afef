//! Concurrency: many producers and independent consumers on one topic,
//! wake-ups of blocked consumers on close, `recv_timeout` deadlines, and the
//! crossbeam channel bridge.
//!
//! Hangs are detected with generous channel timeouts (a blocked thread must
//! report back within seconds), never with upper bounds on elapsed time.

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, after, bounded, never, select};
use millpond::{Broker, Consumer, Error, Message, Record, RecordId, StartFrom, TopicConfig, WaitStrategy};
use support::dir::TempDir;
use support::wait::{HANG, poll_until};

const PRODUCERS: u32 = 4;
const PER_PRODUCER: u64 = 25_000;
const TOTAL: u64 = PRODUCERS as u64 * PER_PRODUCER;
const PARTITIONS: u32 = 4;

/// The value producer `p` sends as its record number `seq`: a header byte,
/// the sequence number and a tail whose length and bytes derive from both,
/// so a torn or misplaced read is detected.
fn value(p: u32, seq: u64) -> Vec<u8> {
    let tail = (seq % 48) as usize;
    let mut v = Vec::with_capacity(9 + tail);
    v.push(p as u8);
    v.extend_from_slice(&seq.to_le_bytes());
    v.extend((0..tail).map(|i| (seq as u8).wrapping_add(i as u8) ^ (p as u8).wrapping_mul(37)));
    v
}

/// Parses and checks a value made by [`value`].
fn parse(m: &Message) -> (u32, u64) {
    let v = m.value();
    assert!(v.len() >= 9, "short value at {}/{}: {v:?}", m.partition(), m.offset());
    let p = u32::from(v[0]);
    let seq = u64::from_le_bytes(v[1..9].try_into().expect("8 bytes"));
    assert!(p < PRODUCERS && seq < PER_PRODUCER, "bad value at {}/{}", m.partition(), m.offset());
    assert_eq!(v, value(p, seq).as_slice(), "value of producer {p} seq {seq} is damaged");
    (p, seq)
}

/// What one consumer saw: for each partition, `(producer, seq)` by offset.
type Seen = Vec<Vec<(u32, u64)>>;

/// Receives `TOTAL` records with `next`, checking order as they arrive.
fn consume(mut next: impl FnMut() -> Vec<Message>) -> Seen {
    let mut by_partition: Seen = vec![Vec::new(); PARTITIONS as usize];
    let mut last_seq = vec![vec![None::<u64>; PRODUCERS as usize]; PARTITIONS as usize];
    let mut seen: HashSet<(u32, u64)> = HashSet::with_capacity(TOTAL as usize);
    let mut n = 0;
    while n < TOTAL {
        for m in next() {
            let part = m.partition() as usize;
            assert_eq!(
                m.offset(),
                by_partition[part].len() as u64,
                "offsets in partition {part} are dense and increasing"
            );
            let (p, seq) = parse(&m);
            assert!(seen.insert((p, seq)), "producer {p} seq {seq} received twice");
            let last = &mut last_seq[part][p as usize];
            assert!(last.is_none_or(|l| l < seq), "producer {p}: seq {seq} after {last:?} in partition {part}");
            *last = Some(seq);
            by_partition[part].push((p, seq));
            n += 1;
        }
    }
    by_partition
}

#[test]
fn four_producers_two_consumers_see_every_record_exactly_once_in_order() {
    let rounds = if support::soak() { 50 } else { 1 };
    for _ in 0..rounds {
        mpmc_round();
    }
}

fn mpmc_round() {
    let dir = TempDir::new("mpmc");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker
        .create_topic(
            "events",
            TopicConfig::default().partitions(PARTITIONS).segment_bytes(256 * 1024).max_record_bytes(4096),
        )
        .unwrap();

    // Consumers start first, so they read while records are being written
    // and segments roll underneath them.
    let c1 = topic.consumer(StartFrom::Earliest).unwrap();
    let c2 = topic.consumer(StartFrom::Earliest).unwrap().wait_strategy(WaitStrategy::Yield);
    let (done_tx, done_rx) = bounded::<(usize, Seen)>(2);
    let tx = done_tx.clone();
    let blocking = thread::spawn(move || {
        let mut c = c1;
        let seen = consume(|| vec![c.recv().expect("recv")]);
        assert!(c.try_recv().expect("try_recv").is_none(), "more records than were sent");
        tx.send((1, seen)).unwrap();
    });
    let tx = done_tx;
    let timed = thread::spawn(move || {
        let mut c = c2;
        let mut flip = false;
        let seen = consume(|| {
            flip = !flip;
            if flip {
                c.recv_timeout(Duration::from_millis(5)).expect("recv_timeout").into_iter().collect()
            } else {
                c.poll(64, Duration::from_millis(5)).expect("poll")
            }
        });
        tx.send((2, seen)).unwrap();
    });

    let start = Arc::new(Barrier::new(PRODUCERS as usize));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let producer = topic.producer();
            let start = Arc::clone(&start);
            thread::spawn(move || -> Vec<RecordId> {
                start.wait();
                let mut ids = Vec::with_capacity(PER_PRODUCER as usize);
                let mut seq = 0;
                while seq < PER_PRODUCER {
                    match p {
                        // Keyless single sends: round-robin.
                        0 => ids.push(producer.send(Record::new(value(p, seq))).unwrap()),
                        // Keyed sends: each key sticks to one partition.
                        1 => {
                            let key = format!("key-{}", seq % 16);
                            ids.push(producer.send(Record::new(value(p, seq)).key(key)).unwrap());
                        }
                        // Keyless batches of 1..=32: sticky partition per batch.
                        2 => {
                            let n = (seq % 32 + 1).min(PER_PRODUCER - seq);
                            let batch = (seq..seq + n).map(|s| Record::new(value(p, s)));
                            ids.extend(producer.send_batch(batch).unwrap());
                            seq += n - 1;
                        }
                        // Batches spread over explicit partitions.
                        _ => {
                            let n = 24.min(PER_PRODUCER - seq);
                            let batch = (seq..seq + n).map(|s| Record::new(value(p, s)).partition((s % 4) as u32));
                            ids.extend(producer.send_batch(batch).unwrap());
                            seq += n - 1;
                        }
                    }
                    seq += 1;
                }
                ids
            })
        })
        .collect();
    let ids: Vec<Vec<RecordId>> = producers.into_iter().map(|h| h.join().expect("producer panicked")).collect();

    let mut results = Vec::new();
    for _ in 0..2 {
        match done_rx.recv_timeout(Duration::from_secs(120)) {
            Ok(r) => results.push(r),
            Err(e) => panic!("a consumer did not receive all {TOTAL} records: {e:?}"),
        }
    }
    blocking.join().unwrap();
    timed.join().unwrap();

    // Both consumers saw the same log, and every id `send` returned points
    // at the record that was sent.
    let (a, b) = (&results[0].1, &results[1].1);
    assert_eq!(a, b, "two consumers of one log saw different records");
    for (p, ids) in ids.iter().enumerate() {
        assert_eq!(ids.len() as u64, PER_PRODUCER);
        for (seq, id) in ids.iter().enumerate() {
            assert_eq!(a[id.partition as usize][id.offset as usize], (p as u32, seq as u64), "record at {id:?}");
        }
    }
    let stats = topic.stats();
    for (part, s) in stats.partitions.iter().enumerate() {
        assert_eq!(s.high_watermark, a[part].len() as u64);
    }
    assert!(stats.partitions.iter().all(|s| s.segments > 1), "segments rolled during the test: {stats:?}");
    // Keyed records kept to one partition per key.
    for key in 0..16u64 {
        let parts: HashSet<u32> = ids[1].iter().skip(key as usize).step_by(16).map(|id| id.partition).collect();
        assert_eq!(parts.len(), 1, "key-{key} went to partitions {parts:?}");
    }
}

/// Runs `c.recv()` on a thread, forwarding every outcome; the thread ends
/// after the first error.
fn spawn_receiver(mut c: Consumer) -> (crossbeam_channel::Receiver<Result<u64, Error>>, thread::JoinHandle<()>) {
    let (tx, rx) = bounded(16);
    let h = thread::spawn(move || {
        loop {
            match c.recv() {
                Ok(m) => tx.send(Ok(m.offset())).unwrap(),
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
    });
    (rx, h)
}

/// Gives a freshly started receiver time to spin down and park. Not a timing
/// assertion: the tests pass either way, but this makes them exercise the
/// parked path rather than the spinning one.
fn let_it_park() {
    thread::sleep(Duration::from_millis(50));
}

#[test]
fn close_wakes_consumer_blocked_in_recv_with_closed() {
    for wait in [WaitStrategy::SpinThenPark, WaitStrategy::Yield, WaitStrategy::BusySpin] {
        let dir = TempDir::new("close-wakes");
        let broker = Broker::open(dir.path()).unwrap();
        let topic = broker.create_topic("t", TopicConfig::default().partitions(3)).unwrap();
        let (rx, h) = spawn_receiver(topic.consumer(StartFrom::Latest).unwrap().wait_strategy(wait));
        let_it_park();
        assert!(rx.try_recv().is_err(), "{wait:?}: recv returned with nothing to read");
        broker.close().unwrap();
        match rx.recv_timeout(HANG) {
            Ok(Err(Error::Closed)) => {}
            Ok(other) => panic!("{wait:?}: blocked recv returned {other:?}, expected Err(Closed)"),
            Err(_) => panic!("{wait:?}: a consumer blocked in recv() was not woken by Broker::close"),
        }
        h.join().unwrap();
        assert!(matches!(topic.producer().send(Record::new("late")), Err(Error::Closed)));
        assert!(matches!(topic.consumer(StartFrom::Earliest), Err(Error::Closed)));
    }
}

#[test]
fn dropping_every_broker_handle_leaves_a_blocked_consumer_working() {
    let dir = TempDir::new("drop-keeps");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().partitions(2)).unwrap();
    let producer = topic.producer();
    let closer = broker.clone();
    let (rx, h) = spawn_receiver(topic.consumer(StartFrom::Earliest).unwrap());

    // Dropping Broker handles closes nothing while other handles live: the
    // blocked consumer keeps its broker open and goes on receiving.
    drop((broker, topic));
    let_it_park();
    producer.send(Record::new("still open").partition(1)).unwrap();
    match rx.recv_timeout(HANG) {
        Ok(Ok(0)) => {}
        other => panic!("expected the record at offset 0, got {other:?}"),
    }
    let_it_park();
    assert!(rx.try_recv().is_err(), "nothing woke the consumer meanwhile");

    // Only an explicit close (or the last handle going) stops it.
    closer.close().unwrap();
    match rx.recv_timeout(HANG) {
        Ok(Err(Error::Closed)) => {}
        Ok(other) => panic!("blocked recv returned {other:?}, expected Err(Closed)"),
        Err(_) => panic!("a consumer blocked in recv() was not woken by Broker::close"),
    }
    h.join().unwrap();
    // The lock is released: the directory can be opened again at once.
    let again = Broker::open(dir.path()).unwrap();
    assert_eq!(again.topic("t").unwrap().high_watermark(1).unwrap(), 1);
}

#[test]
fn close_wakes_consumers_blocked_in_recv_timeout_and_iter() {
    let dir = TempDir::new("close-wakes-timeout");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    topic.producer().send_batch((0..3).map(|i| Record::new(format!("{i}")))).unwrap();

    let mut timed = topic.consumer(StartFrom::Latest).unwrap();
    let mut iterating = topic.consumer(StartFrom::Earliest).unwrap();
    let (tx, rx) = bounded(2);
    let tx2 = tx.clone();
    let h1 =
        thread::spawn(move || tx.send(("timeout", timed.recv_timeout(Duration::from_secs(3600)).map(|m| m.is_some()))));
    let h2 = thread::spawn(move || {
        let values: Vec<Vec<u8>> = iterating.iter().map(|m| m.unwrap().value().to_vec()).collect();
        tx2.send(("iter", Ok(values == [b"0", b"1", b"2"])))
    });
    let_it_park();
    broker.close().unwrap();
    for _ in 0..2 {
        match rx.recv_timeout(HANG) {
            Ok(("timeout", r)) => assert!(matches!(r, Err(Error::Closed)), "recv_timeout returned {r:?}"),
            Ok(("iter", r)) => assert!(matches!(r, Ok(true)), "iter yielded the wrong records or failed: {r:?}"),
            other => panic!("a blocked consumer was not woken by close: {other:?}"),
        }
    }
    h1.join().unwrap().unwrap();
    h2.join().unwrap().unwrap();
}

#[test]
fn records_stored_before_close_stay_readable_then_closed() {
    let dir = TempDir::new("read-after-close");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().partitions(2)).unwrap();
    let mut c = topic.consumer(StartFrom::Earliest).unwrap();
    topic.producer().send_batch((0..5).map(|i| Record::new(format!("{i}")).partition(i % 2))).unwrap();
    broker.close().unwrap();
    let mut got = 0;
    loop {
        match c.try_recv() {
            Ok(Some(_)) => got += 1,
            Ok(None) => panic!("try_recv after close must end with Err(Closed), not Ok(None)"),
            Err(Error::Closed) => break,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(got, 5);
    assert!(matches!(c.recv(), Err(Error::Closed)));
}

#[test]
fn recv_timeout_returns_none_no_earlier_than_its_timeout() {
    let dir = TempDir::new("recv-timeout");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().partitions(2)).unwrap();
    topic.producer().send(Record::new("old")).unwrap();
    for wait in [WaitStrategy::SpinThenPark, WaitStrategy::Yield, WaitStrategy::BusySpin] {
        let mut c = topic.consumer(StartFrom::Latest).unwrap().wait_strategy(wait);
        for ms in [0u64, 1, 7, 30, 80] {
            let timeout = Duration::from_millis(ms);
            let start = Instant::now();
            let r = c.recv_timeout(timeout).unwrap();
            let elapsed = start.elapsed();
            assert!(r.is_none(), "{wait:?}: recv_timeout({ms} ms) returned {r:?}");
            assert!(elapsed >= timeout, "{wait:?}: recv_timeout({ms} ms) gave up after {elapsed:?}");

            let start = Instant::now();
            let deadline = start + timeout;
            assert!(c.recv_deadline(deadline).unwrap().is_none());
            assert!(Instant::now() >= deadline, "{wait:?}: recv_deadline returned before its deadline");

            let start = Instant::now();
            assert!(c.poll(10, timeout).unwrap().is_empty());
            assert!(start.elapsed() >= timeout, "{wait:?}: poll({ms} ms) gave up early");
        }
    }
}

#[test]
fn recv_timeout_returns_a_record_that_arrives_while_waiting() {
    let dir = TempDir::new("recv-timeout-arrives");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().partitions(3)).unwrap();
    let mut c = topic.consumer(StartFrom::Latest).unwrap();
    let producer = topic.producer();
    let h = thread::spawn(move || {
        thread::sleep(Duration::from_millis(30));
        producer.send(Record::new("late").partition(2)).unwrap()
    });
    let m = c.recv_timeout(HANG).unwrap().expect("a record sent during the wait is returned");
    assert_eq!((m.partition(), m.offset(), m.value()), (2, 0, &b"late"[..]));
    assert_eq!(h.join().unwrap(), RecordId { partition: 2, offset: 0 });
}

/// Receives from a channel bridge until `n` records arrived (or a hang).
fn take(rx: &crossbeam_channel::Receiver<millpond::Result<Message>>, n: usize) -> Vec<Message> {
    (0..n)
        .map(|i| match rx.recv_timeout(HANG) {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => panic!("channel yielded an error: {e}"),
            Err(e) => panic!("channel delivered only {i} of {n} records: {e:?}"),
        })
        .collect()
}

#[test]
fn channel_bridge_delivers_every_record_in_order() {
    const N: u64 = 10_000;
    let dir = TempDir::new("bridge-all");
    let broker = Broker::open(dir.path()).unwrap();
    let cfg = TopicConfig::default().partitions(3).segment_bytes(64 * 1024).max_record_bytes(1024);
    let topic = broker.create_topic("t", cfg).unwrap();
    let producer = topic.producer();
    producer.send_batch((0..N / 2).map(|i| Record::new(i.to_le_bytes().to_vec()))).unwrap();
    let bridge = topic.consumer(StartFrom::Earliest).unwrap().into_channel(16);
    let h = thread::spawn(move || {
        for i in N / 2..N {
            producer.send(Record::new(i.to_le_bytes().to_vec())).unwrap();
        }
    });
    let got = take(bridge.receiver(), N as usize);
    h.join().unwrap();
    let mut next = [0u64; 3];
    let mut seen = HashSet::new();
    for m in &got {
        let p = m.partition() as usize;
        assert_eq!(m.offset(), next[p], "partition {p} in order, no gaps");
        next[p] += 1;
        assert!(seen.insert(u64::from_le_bytes(m.value().try_into().unwrap())), "duplicate");
    }
    assert_eq!(seen.len() as u64, N);
    let mut consumer = bridge.stop().expect("bridge thread ended cleanly");
    for p in 0..3 {
        assert_eq!(consumer.position(p).unwrap(), topic.high_watermark(p).unwrap());
    }
    assert!(consumer.try_recv().unwrap().is_none());
}

fn text(m: Message) -> String {
    String::from_utf8(m.value().to_vec()).unwrap()
}

#[test]
fn channel_bridge_works_with_select() {
    let dir = TempDir::new("bridge-select");
    let broker = Broker::open(dir.path()).unwrap();
    let orders = broker.create_topic("orders", TopicConfig::default().partitions(2)).unwrap();
    let payments = broker.create_topic("payments", TopicConfig::default()).unwrap();
    let order_rx = orders.consumer(StartFrom::Earliest).unwrap().into_channel(4);
    let payment_rx = payments.consumer(StartFrom::Earliest).unwrap().into_channel(4);
    let (own_tx, own_rx) = bounded::<u32>(4);
    let (op, pp) = (orders.producer(), payments.producer());
    let h = thread::spawn(move || {
        for i in 0..300u32 {
            op.send(Record::new(format!("order-{i}"))).unwrap();
            if i % 3 == 0 {
                pp.send(Record::new(format!("payment-{i}"))).unwrap();
            }
            if i % 30 == 0 {
                own_tx.send(i).unwrap();
            }
        }
    });
    let (mut o, mut p, mut own) = (Vec::new(), Vec::new(), Vec::new());
    let deadline = after(Duration::from_secs(30));
    let done = never();
    while o.len() < 300 || p.len() < 100 || own.len() < 10 {
        // Our own channel disconnects once the producer thread ends.
        let own_or_done = if own.len() < 10 { &own_rx } else { &done };
        select! {
            recv(order_rx.receiver()) -> m => o.push(text(m.unwrap().unwrap())),
            recv(payment_rx.receiver()) -> m => p.push(text(m.unwrap().unwrap())),
            recv(own_or_done) -> m => own.push(m.unwrap()),
            recv(deadline) -> _ => panic!("select! stalled: {} orders, {} payments, {} own", o.len(), p.len(), own.len()),
        }
    }
    h.join().unwrap();
    let mut o_sorted = o.clone();
    o_sorted.sort();
    o_sorted.dedup();
    assert_eq!(o_sorted.len(), 300, "every order exactly once");
    assert_eq!(p, (0..300).step_by(3).map(|i| format!("payment-{i}")).collect::<Vec<_>>());
    assert_eq!(own, (0..300).step_by(30).collect::<Vec<_>>());
}

/// After `stop`, the records the caller received, the records still
/// buffered in the channel and the records the returned consumer reads next
/// are exactly the log, once each, in order.
fn check_stop(label: &str, n: u64, received: Vec<Message>, bridge: millpond::ConsumerChannel) {
    let rx = bridge.receiver().clone();
    let mut consumer = bridge.stop().expect("bridge thread ended cleanly");
    let buffered: Vec<Message> = rx.try_iter().map(|m| m.unwrap()).collect();
    assert!(
        matches!(rx.recv_timeout(HANG), Err(RecvTimeoutError::Disconnected)),
        "{label}: the channel disconnects once the bridge stopped"
    );
    let position = consumer.position(0).unwrap();
    assert_eq!(
        position,
        (received.len() + buffered.len()) as u64,
        "{label}: consumer positioned after the last forwarded record"
    );
    let rest: Vec<Message> = consumer.try_iter().map(|m| m.unwrap()).collect();
    let offsets: Vec<u64> = received.iter().chain(&buffered).chain(&rest).map(Message::offset).collect();
    assert_eq!(offsets, (0..n).collect::<Vec<_>>(), "{label}: every record exactly once, in order");
}

#[test]
fn channel_bridge_stop_returns_consumer_positioned_after_last_forwarded_record() {
    let dir = TempDir::new("bridge-stop");
    let broker = Broker::open(dir.path()).unwrap();

    // The bridge is blocked on a full channel when stopped.
    let t = broker.create_topic("full", TopicConfig::default()).unwrap();
    t.producer().send_batch((0..1000).map(|i| Record::new(format!("{i}")))).unwrap();
    let bridge = t.consumer(StartFrom::Earliest).unwrap().into_channel(8);
    assert!(poll_until(HANG, || bridge.receiver().len() >= 8), "the bridge never filled its channel");
    let_it_park();
    check_stop("full channel", 1000, Vec::new(), bridge);

    // The bridge is blocked waiting for records when stopped.
    let t = broker.create_topic("idle", TopicConfig::default()).unwrap();
    t.producer().send_batch((0..5).map(|i| Record::new(format!("{i}")))).unwrap();
    let bridge = t.consumer(StartFrom::Earliest).unwrap().into_channel(64);
    let got = take(bridge.receiver(), 5);
    let_it_park();
    check_stop("idle", 5, got, bridge);

    // Stopped in the middle of a stream, at varying points.
    for round in 0..6u64 {
        let t = broker.create_topic(&format!("racing-{round}"), TopicConfig::default()).unwrap();
        let producer = t.producer();
        let bridge = t.consumer(StartFrom::Earliest).unwrap().into_channel(1 + round as usize * 3);
        let h = thread::spawn(move || {
            for i in 0..2000 {
                producer.send(Record::new(format!("{i}"))).unwrap();
            }
        });
        let got = take(bridge.receiver(), 100 * round as usize);
        h.join().unwrap();
        check_stop(&format!("racing {round}"), 2000, got, bridge);
    }
}

#[test]
fn channel_bridge_disconnects_when_broker_closes() {
    let dir = TempDir::new("bridge-close");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    topic.producer().send(Record::new("one")).unwrap();
    let bridge = topic.consumer(StartFrom::Earliest).unwrap().into_channel(4);
    assert_eq!(take(bridge.receiver(), 1)[0].value(), b"one");
    let_it_park();
    broker.close().unwrap();
    match bridge.receiver().recv_timeout(HANG) {
        Err(RecvTimeoutError::Disconnected) => {}
        other => panic!("expected the channel to disconnect on close, got {other:?}"),
    }
    // Dropping the bridge joins its (finished) thread without hanging.
    let (tx, rx) = bounded(1);
    thread::spawn(move || {
        drop(bridge);
        tx.send(()).unwrap();
    });
    rx.recv_timeout(HANG).expect("dropping a ConsumerChannel hung");
}

#[test]
fn consumers_never_see_records_beyond_the_high_watermark() {
    // The high watermark is "one past the last record visible to
    // consumers": a consumer that has received offset o must find the high
    // watermark above o. Batches larger than a segment are written as
    // several frames with a roll in between, which widens any window in
    // which a record is readable before the high watermark covers it.
    let dir = TempDir::new("hw-visibility");
    let broker = Broker::open(dir.path()).unwrap();
    let cfg = TopicConfig::default().segment_bytes(16 * 1024).max_record_bytes(4096);
    let topic = broker.create_topic("t", cfg).unwrap();
    let producer = topic.producer();
    const BATCHES: u64 = 60;
    let writer = thread::spawn(move || {
        for b in 0..BATCHES {
            // ~40 KiB per batch: spans three segments.
            producer.send_batch((0..40).map(|i| Record::new(vec![(b + i) as u8; 1000]))).unwrap();
        }
    });
    let mut c = topic.consumer(StartFrom::Earliest).unwrap().wait_strategy(WaitStrategy::Yield);
    let mut ahead = Vec::new();
    for expected in 0..BATCHES * 40 {
        let m = c.recv_timeout(HANG).unwrap().expect("records keep coming");
        assert_eq!(m.offset(), expected);
        let hw = topic.high_watermark(0).unwrap();
        if hw <= m.offset() {
            ahead.push((m.offset(), hw));
        }
    }
    writer.join().unwrap();
    assert!(
        ahead.is_empty(),
        "{} records were received before the high watermark covered them, e.g. (offset, high watermark) {:?}",
        ahead.len(),
        &ahead[..ahead.len().min(5)]
    );
}

#[test]
fn close_during_concurrent_sends_keeps_exactly_the_acknowledged_records() {
    let dir = TempDir::new("close-while-sending");
    let broker = Broker::open(dir.path()).unwrap();
    let cfg = TopicConfig::default().partitions(3).segment_bytes(32 * 1024).max_record_bytes(1024);
    let topic = broker.create_topic("t", cfg).unwrap();
    let start = Arc::new(Barrier::new(4));
    let senders: Vec<_> = (0..3u32)
        .map(|t| {
            let producer = topic.producer();
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                let mut acked = Vec::new();
                for seq in 0u64.. {
                    let r = if seq % 4 == 3 {
                        producer.send_batch((0..5).map(|i| Record::new(value(t, seq * 8 + i))))
                    } else {
                        producer.send(Record::new(value(t, seq * 8))).map(|id| vec![id])
                    };
                    match r {
                        Ok(ids) => acked.extend(ids),
                        Err(Error::Closed) => return acked,
                        Err(e) => panic!("sender {t}: {e}"),
                    }
                }
                unreachable!()
            })
        })
        .collect();
    start.wait();
    thread::sleep(Duration::from_millis(50));
    broker.close().unwrap();
    let mut acked: Vec<RecordId> = senders.into_iter().flat_map(|h| h.join().unwrap()).collect();
    assert!(!acked.is_empty());
    drop(topic);
    let broker = Broker::open(dir.path()).unwrap();
    assert_eq!(broker.recovery_report(), vec![], "a close while sending leaves a clean log");
    let topic = broker.topic("t").unwrap();
    acked.sort();
    for p in 0..3 {
        let offsets: Vec<u64> = acked.iter().filter(|id| id.partition == p).map(|id| id.offset).collect();
        let hw = topic.high_watermark(p).unwrap();
        assert_eq!(offsets, (0..hw).collect::<Vec<_>>(), "partition {p}: exactly the acknowledged offsets are stored");
        let mut c = topic.consumer_of(&[p], StartFrom::Earliest).unwrap();
        assert_eq!(c.try_iter().count() as u64, hw);
    }
}

/// A busy partition never starves a quiet one: receive calls take the
/// partitions in turn, so a record in a quiet partition is returned within
/// one round of the others, however deep their backlog; also while a
/// producer keeps the busy partition full.
#[test]
fn a_busy_partition_never_starves_a_quiet_one() {
    let tmp = TempDir::new("fairness");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().partitions(3)).unwrap();
    let producer = topic.producer();
    producer.send_batch((0..20_000u64).map(|i| Record::new(value(0, i)).partition(0))).unwrap();
    producer.send_batch((0..5u64).map(|i| Record::new(value(1, i)).partition(1))).unwrap();

    // Backlog: the five quiet records come within the first ten receives.
    let mut c = topic.consumer(StartFrom::Earliest).unwrap();
    let first: Vec<u32> = (0..10).map(|_| c.try_recv().unwrap().unwrap().partition()).collect();
    assert_eq!(first.iter().filter(|&&p| p == 1).count(), 5, "taken in turn: {first:?}");

    // Live: a thread floods partition 0 while partition 2 gets a record now
    // and then; each is received within a few calls of being sent.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let (producer, stop) = (producer.clone(), Arc::clone(&stop));
        thread::spawn(move || {
            let mut i = 20_000u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                producer.send_batch((i..i + 100).map(|j| Record::new(value(0, j)).partition(0))).unwrap();
                i += 100;
            }
        })
    };
    for i in 0..20u64 {
        producer.send(Record::new(value(2, i)).partition(2)).unwrap();
        let mut calls = 0;
        loop {
            calls += 1;
            let m = c.recv().unwrap();
            if m.partition() == 2 {
                assert_eq!(parse(&m), (2, i));
                break;
            }
        }
        // Partitions 0 and 1 may each come first once (1 is drained by now).
        assert!(calls <= 3, "record {i} of the quiet partition waited {calls} receive calls");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flood.join().unwrap();
}

/// A consumer of no partitions has no partition notifier of its own to be
/// woken by; closing the broker (or deleting the topic) must still wake it
/// blocked in `recv`, with the error every other blocked receiver gets.
#[test]
fn consumer_of_no_partitions_wakes_on_close() {
    for wait in [WaitStrategy::SpinThenPark, WaitStrategy::Yield, WaitStrategy::BusySpin] {
        for delete in [false, true] {
            let dir = TempDir::new("no-partitions-close");
            let broker = Broker::open(dir.path()).unwrap();
            let topic = broker.create_topic("t", TopicConfig::default().partitions(2)).unwrap();
            let mut idle = topic.consumer_of(&[], StartFrom::Earliest).unwrap().wait_strategy(wait);
            assert!(idle.assignment().is_empty());
            assert!(idle.try_recv().unwrap().is_none());
            let (rx, h) = spawn_receiver(idle);
            let_it_park();
            // Records elsewhere in the topic are not this consumer's.
            topic.producer().send(Record::new("not yours").partition(1)).unwrap();
            let_it_park();
            assert!(rx.try_recv().is_err(), "{wait:?}: recv returned with nothing to read");
            if delete {
                broker.delete_topic("t").unwrap();
            } else {
                broker.close().unwrap();
            }
            match rx.recv_timeout(HANG) {
                Ok(Err(Error::Closed)) if !delete => {}
                Ok(Err(Error::TopicDeleted { .. })) if delete => {}
                Ok(other) => panic!("{wait:?} delete={delete}: blocked recv returned {other:?}"),
                Err(_) => {
                    panic!("{wait:?} delete={delete}: a consumer of no partitions blocked in recv() was not woken")
                }
            }
            h.join().unwrap();
        }
    }
}
