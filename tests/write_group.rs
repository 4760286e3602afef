//! The write group (`src/storage/partition_log/write_group.rs`): producers
//! contending for one partition are combined into shared frames, and each
//! still gets exactly its own record's offset, in its own send order, or an
//! error for a record that was not written.
//!
//! Every sender thread's value names the thread and its sequence number, so
//! that a record read back at an offset says whose it is.

mod support;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use millpond::{Broker, Error, FsyncPolicy, Record, TopicConfig};
use support::dir::TempDir;
use support::frames::frames;
use support::layout::segment_files;
use support::records::{Stored, read_all};
use support::wait::{answer_within, spawn_answer};

const THREADS: u64 = 4;

fn value(t: u64, seq: u64) -> Vec<u8> {
    format!("thread-{t:02}-seq-{seq:08}").into_bytes()
}

/// `(thread, seq)` of a value written by [`value`].
fn parse(v: &[u8]) -> (u64, u64) {
    let s = std::str::from_utf8(v).unwrap();
    let t = s["thread-".len().."thread-".len() + 2].parse().unwrap();
    let seq = s[s.len() - 8..].parse().unwrap();
    (t, seq)
}

/// `THREADS` threads, started together, each sending `sends` records to
/// partition 0; returns each thread's offsets, in send order.
fn contend(topic: &millpond::Topic, sends: u64) -> Vec<Vec<u64>> {
    let start = Arc::new(Barrier::new(THREADS as usize));
    let senders: Vec<_> = (0..THREADS)
        .map(|t| {
            let producer = topic.producer();
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                (0..sends)
                    .map(|seq| producer.send(Record::new(value(t, seq)).partition(0)).unwrap().offset)
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    senders.into_iter().map(|h| h.join().unwrap()).collect()
}

/// Checks that the log holds every thread's records exactly once, at the
/// offsets their sends returned, and nothing else.
fn check_offsets(stored: &[Stored], offsets: &[Vec<u64>]) {
    let total: usize = offsets.iter().map(Vec::len).sum();
    assert_eq!(stored.len(), total, "every record is stored once, nothing more");
    for (i, s) in stored.iter().enumerate() {
        assert_eq!(s.offset, i as u64, "offsets are dense");
    }
    for (t, mine) in offsets.iter().enumerate() {
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "thread {t}'s records are stored in its send order");
        for (seq, &offset) in mine.iter().enumerate() {
            let at = stored[offset as usize].value.as_deref().unwrap();
            assert_eq!(
                parse(at),
                (t as u64, seq as u64),
                "the offset thread {t}'s send {seq} returned holds its record"
            );
        }
    }
}

/// How many frames partition 0 of `topic` holds, over all its segments.
fn frame_count(dir: &std::path::Path, topic: &str) -> usize {
    segment_files(dir, topic, 0).iter().map(|path| frames(&std::fs::read(path).unwrap()).len()).sum()
}

#[test]
fn contending_producers_each_get_the_offset_of_their_own_record_exactly_once_in_send_order() {
    let tmp = TempDir::new("wg-offsets");
    let broker = Broker::open(tmp.path()).unwrap();
    // Small segments: groups are also split at segment ends.
    let topic =
        broker.create_topic("t", TopicConfig::default().segment_bytes(64 << 10).max_record_bytes(1024)).unwrap();
    let offsets = contend(&topic, 5_000);
    check_offsets(&read_all(&topic), &offsets);
    assert!(segment_files(tmp.path(), "t", 0).len() > 2, "the records span several segments");
    drop(topic);
    drop(broker);
    let broker = Broker::open(tmp.path()).unwrap();
    assert!(broker.recovery_report().is_empty());
    check_offsets(&read_all(&broker.topic("t").unwrap()), &offsets);
}

#[test]
fn contending_producers_share_frames() {
    let tmp = TempDir::new("wg-frames");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().segment_bytes(16 << 20)).unwrap();
    // Rounds until a round combined records: one round of 4 × 20,000 sends
    // on two busy cores contends many times over; the retries only keep a
    // freak schedule from failing the test.
    let mut sent = 0;
    for round in 0..5 {
        let before = frame_count(tmp.path(), "t");
        let offsets = contend(&topic, 20_000);
        let records: usize = offsets.iter().map(Vec::len).sum();
        sent += records;
        let written = frame_count(tmp.path(), "t") - before;
        assert!(written <= records, "no record is written twice");
        eprintln!("round {round}: {records} records in {written} frames");
        if written < records {
            assert_eq!(topic.high_watermark(0).unwrap(), sent as u64);
            return;
        }
    }
    panic!("4 threads × 20,000 sends to one partition, 5 times over, never shared a frame");
}

#[test]
fn fsync_always_with_contending_producers_keeps_every_acknowledged_record_across_a_reopen() {
    let tmp = TempDir::new("wg-always");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().fsync(FsyncPolicy::Always)).unwrap();
    let offsets = contend(&topic, 200);
    check_offsets(&read_all(&topic), &offsets);
    // Not closed: dropped, so nothing but the sends' own syncs made the
    // records durable.
    drop(topic);
    drop(broker);
    let broker = Broker::open(tmp.path()).unwrap();
    check_offsets(&read_all(&broker.topic("t").unwrap()), &offsets);
}

#[test]
fn close_during_contending_sends_answers_every_producer_and_keeps_exactly_the_acknowledged_records() {
    let tmp = TempDir::new("wg-close");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic =
        broker.create_topic("t", TopicConfig::default().segment_bytes(64 << 10).max_record_bytes(1024)).unwrap();
    let start = Arc::new(Barrier::new(THREADS as usize + 1));
    let senders: Vec<_> = (0..THREADS)
        .map(|t| {
            let producer = topic.producer();
            let start = Arc::clone(&start);
            spawn_answer(move || {
                start.wait();
                let mut acked = Vec::new();
                for seq in 0.. {
                    match producer.send(Record::new(value(t, seq)).partition(0)) {
                        Ok(id) => acked.push(id.offset),
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
    // Every sender is answered: a follower queued as the partition closed
    // gets `Closed` from whoever releases the lock next.
    let offsets: Vec<Vec<u64>> = senders.iter().map(|rx| answer_within(rx, "a sender's answer after close")).collect();
    assert!(offsets.iter().any(|o| !o.is_empty()));
    drop(topic);
    let broker = Broker::open(tmp.path()).unwrap();
    assert!(broker.recovery_report().is_empty(), "a close while sending leaves a clean log");
    check_offsets(&read_all(&broker.topic("t").unwrap()), &offsets);
}
