//! `GroupMember::into_channel` commits only what the application
//! acknowledged: on its interval, when a partition is revoked, and when it
//! stops; records still waiting in the channel are never committed.

mod support;

use std::time::Duration;

use millpond::{AutoCommit, Broker, Record, TopicConfig};
use support::dir::TempDir;
use support::wait::poll_until;

const EVENTUALLY: Duration = Duration::from_secs(30);

fn fill(topic: &millpond::Topic, partition: u32, n: u64) {
    topic.producer().send_batch((0..n).map(|i| Record::new(format!("{partition}-{i}")).partition(partition))).unwrap();
}

#[test]
fn only_acknowledged_records_are_committed_never_buffered_ones() {
    let tmp = TempDir::new("member-channel-acked");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    fill(&topic, 0, 20);
    // The group auto-commits positions by itself; through the channel it
    // must commit acknowledgements instead.
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Interval(Duration::from_millis(20)));
    let channel = group.join().unwrap().into_channel(8);
    for _ in 0..5 {
        let m = channel.receiver().recv_timeout(EVENTUALLY).unwrap().unwrap();
        channel.ack(&m);
    }
    // The interval commit covers the acknowledged five, not the records the
    // thread has already put in the channel.
    assert!(poll_until(EVENTUALLY, || group.committed().unwrap().get(&0) == Some(&5)));
    std::thread::sleep(Duration::from_millis(100)); // several more intervals
    assert_eq!(group.committed().unwrap()[&0], 5, "buffered records were committed");
    channel.stop().unwrap();
    assert_eq!(group.committed().unwrap()[&0], 5);
    // The next member resumes at the first record not acknowledged.
    let mut next = group.join().unwrap();
    assert_eq!(next.recv_timeout(EVENTUALLY).unwrap().unwrap().offset(), 5);
}

#[test]
fn a_revoked_partition_is_committed_at_its_acknowledged_offset() {
    let tmp = TempDir::new("member-channel-revoke");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().partitions(2)).unwrap();
    fill(&topic, 0, 10);
    fill(&topic, 1, 10);
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off);
    let channel = group.join().unwrap().into_channel(64);
    let acker = channel.acker();
    // Handle three records of partition 1 (from another thread), leave the
    // rest buffered.
    let mut handled_on_1 = 0;
    while handled_on_1 < 3 {
        let m = channel.receiver().recv_timeout(EVENTUALLY).unwrap().unwrap();
        if m.partition() == 1 {
            let a = acker.clone();
            std::thread::spawn(move || a.ack(&m)).join().unwrap();
            handled_on_1 += 1;
        }
    }
    // A second member takes partition 1: the channel's member gives it up,
    // committing the acknowledged offset (3), not its position (10).
    let mut second = group.join().unwrap();
    let m = (0..)
        .map(|_| second.recv_timeout(Duration::from_millis(50)).unwrap())
        .take(600)
        .flatten()
        .next()
        .expect("the second member got partition 1");
    assert_eq!((m.partition(), m.offset()), (1, 3), "it starts after the acknowledged records");
    assert_eq!(group.committed().unwrap().get(&1), Some(&3));
    drop(channel);
}

#[test]
fn the_channel_disconnects_when_the_broker_closes() {
    let tmp = TempDir::new("member-channel-close");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    let channel = topic.group("g").unwrap().join().unwrap().into_channel(4);
    broker.close().unwrap();
    assert!(channel.receiver().recv_timeout(EVENTUALLY).is_err(), "disconnected, not hanging");
    channel.stop().unwrap();
}
