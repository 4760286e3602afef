//! Every partition a member reads was announced to its rebalance
//! listener, even one taken in the same round as a partition its
//! `OffsetReset::Fail` policy refuses (the refusal once returned before the
//! announcement and dropped it; later rounds saw the partition as already
//! owned, so the listener never heard of it).

mod support;

/// What the listener heard: each event's kind and partitions.
type Events = Vec<(RebalanceKind, Vec<u32>)>;

use std::sync::{Arc, Mutex};

use millpond::{AutoCommit, Broker, OffsetReset, RebalanceKind, Record, ResetTo, TopicConfig};
use support::dir::TempDir;

#[test]
fn every_partition_a_member_reads_was_announced_as_assigned() {
    let tmp = TempDir::new("review-join-assigned");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().partitions(2)).unwrap();
    let p = topic.producer();
    for part in 0..2 {
        p.send_batch((0..3u8).map(|i| Record::new(vec![i]).partition(part))).unwrap();
    }
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off).offset_reset(OffsetReset::Fail);
    // Partition 0 has a committed offset, partition 1 none.
    group.reset_partition_offsets(&[0], ResetTo::Offset(1)).unwrap();

    let mut a = group.join().unwrap(); // takes 0, refused 1
    let events: Arc<Mutex<Events>> = Arc::default();
    let seen = Arc::clone(&events);
    a.on_rebalance(move |e| seen.lock().unwrap().push((e.kind(), e.partitions().to_vec())));
    assert!(a.try_recv().is_err(), "partition 1 has no committed offset: refused");
    // Another member takes partition 1 over; a keeps partition 0 only and
    // reads it.
    let _b = group.join().unwrap();
    let mut got = Vec::new();
    for _ in 0..10 {
        if let Ok(Some(m)) = a.try_recv() {
            got.push((m.partition(), m.offset()));
        }
    }
    assert!(got.iter().any(|&(p, _)| p == 0), "a reads partition 0: {got:?}");
    let events = events.lock().unwrap().clone();
    assert!(
        events.iter().any(|(k, ps)| *k == RebalanceKind::Assigned && ps.contains(&0)),
        "a read partition 0 ({got:?}) but its listener never heard it was assigned: {events:?}"
    );
}
