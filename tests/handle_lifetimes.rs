//! Every handle keeps its broker open: a topic, producer, consumer, group or
//! group member outlives the `Broker` it came from and goes on working; the
//! broker closes (flushes, unlocks) when the last handle goes, or at once on
//! an explicit `Broker::close`, after which every handle says so.

mod support;

use std::time::Duration;

use millpond::{Broker, Error, Record, StartFrom, TopicConfig};
use support::dir::TempDir;

#[test]
fn a_topic_from_a_temporary_broker_is_usable() {
    let tmp = TempDir::new("lifetime-temp");
    // The broker is a temporary: only the topic survives this statement.
    let topic = Broker::open(tmp.path()).unwrap().create_topic("t", TopicConfig::default()).unwrap();
    let id = topic.producer().send(Record::new("kept")).unwrap();
    assert_eq!(id.offset, 0);
    let mut consumer = topic.consumer(StartFrom::Earliest).unwrap();
    assert_eq!(consumer.recv_timeout(Duration::from_secs(5)).unwrap().unwrap().value(), b"kept");
    // Still open: the directory is locked.
    assert!(matches!(Broker::open(tmp.path()), Err(Error::Locked { .. })));
}

#[test]
fn the_broker_closes_when_its_last_handle_goes() {
    let tmp = TempDir::new("lifetime-last");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    let producer = topic.producer();
    let consumer = topic.consumer(StartFrom::Earliest).unwrap();
    drop((broker, topic));
    // The producer and consumer still hold it open.
    producer.send(Record::new("after the broker")).unwrap();
    assert!(matches!(Broker::open(tmp.path()), Err(Error::Locked { .. })));
    drop(producer);
    assert!(matches!(Broker::open(tmp.path()), Err(Error::Locked { .. })), "the consumer still holds it");
    drop(consumer);
    // The last handle closed it: the lock is free and the record was kept.
    let broker = Broker::open(tmp.path()).unwrap();
    let mut c = broker.topic("t").unwrap().consumer(StartFrom::Earliest).unwrap();
    assert_eq!(c.try_recv().unwrap().unwrap().value(), b"after the broker");
}

#[test]
fn a_blocked_consumer_keeps_receiving_after_the_broker_handle_drops() {
    let tmp = TempDir::new("lifetime-blocked");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    let mut consumer = topic.consumer(StartFrom::Earliest).unwrap();
    let producer = topic.producer();
    let reader = std::thread::spawn(move || consumer.recv().map(|m| m.value().to_vec()));
    drop((broker, topic));
    std::thread::sleep(Duration::from_millis(20));
    producer.send(Record::new("late")).unwrap();
    assert_eq!(reader.join().unwrap().unwrap(), b"late");
}

#[test]
fn group_members_keep_the_broker_open_and_commit_into_it() {
    let tmp = TempDir::new("lifetime-group");
    let mut member = {
        let broker = Broker::open(tmp.path()).unwrap();
        let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
        topic.producer().send(Record::new("one")).unwrap();
        topic.group("g").unwrap().join().unwrap()
    };
    let m = member.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(m.value(), b"one");
    member.commit().unwrap();
    drop(member);
    let broker = Broker::open(tmp.path()).unwrap();
    let group = broker.topic("t").unwrap().group("g").unwrap();
    assert_eq!(group.committed().unwrap().get(&0), Some(&1));
}

#[test]
fn an_explicit_close_stops_every_handle_and_says_so() {
    let tmp = TempDir::new("lifetime-close");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    let producer = topic.producer();
    let mut consumer = topic.consumer(StartFrom::Latest).unwrap();
    let waiting = std::thread::spawn(move || consumer.recv().map(|m| m.offset()));
    std::thread::sleep(Duration::from_millis(20));
    broker.close().unwrap();
    let e = producer.send(Record::new("x")).unwrap_err();
    assert!(matches!(e, Error::Closed));
    assert!(e.to_string().contains("Broker::close"), "the error names the close: {e}");
    assert!(matches!(waiting.join().unwrap(), Err(Error::Closed)), "a blocked consumer wakes with Closed");
    // Closed means unlocked, even with handles still alive.
    drop(Broker::open(tmp.path()).unwrap());
    drop((producer, topic));
}
