//! A `WakeupHandle` stops a consumer or group member waiting in a receive,
//! from another thread or task, without closing the broker and without
//! losing or skipping a record.

mod support;

use std::time::Duration;

use millpond::{Broker, Error, Record, StartFrom, TopicConfig, WaitStrategy};
use support::dir::TempDir;

/// Long enough that only a wake-up can explain an early return.
const LONG: Duration = Duration::from_secs(30);

#[test]
fn a_blocked_recv_returns_interrupted_and_the_consumer_goes_on() {
    let tmp = TempDir::new("wakeup-blocked");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    for wait in [WaitStrategy::SpinThenPark, WaitStrategy::Yield, WaitStrategy::BusySpin] {
        let mut consumer = topic.consumer(StartFrom::Latest).unwrap().wait_strategy(wait);
        let wakeup = consumer.wakeup_handle();
        let worker = std::thread::spawn(move || {
            let first = consumer.recv_timeout(LONG).map(|m| m.map(|m| m.offset()));
            (first, consumer)
        });
        std::thread::sleep(Duration::from_millis(30)); // let it park
        let start = std::time::Instant::now();
        wakeup.wake();
        let (first, mut consumer) = worker.join().unwrap();
        assert!(matches!(first, Err(Error::Interrupted)), "{wait:?}: {first:?}");
        assert!(start.elapsed() < LONG, "{wait:?}: woken by the handle, not the timeout");
        // The broker is open and the consumer still works.
        let id = topic.producer().send(Record::new("after")).unwrap();
        assert_eq!(consumer.recv_timeout(LONG).unwrap().unwrap().offset(), id.offset);
    }
    assert!(!broker.is_closed());
}

#[test]
fn a_wake_before_the_receive_interrupts_the_next_wait_once_after_what_is_there() {
    let tmp = TempDir::new("wakeup-early");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    topic.producer().send(Record::new("waiting")).unwrap();
    let mut consumer = topic.consumer(StartFrom::Earliest).unwrap();
    let wakeup = consumer.wakeup_handle();
    wakeup.wake();
    wakeup.wake(); // two wakes before a wait count once
    // The record that is there comes first: nothing is skipped.
    assert_eq!(consumer.recv().unwrap().value(), b"waiting");
    assert!(matches!(consumer.recv(), Err(Error::Interrupted)));
    // Delivered: the next wait waits again (here, until its timeout).
    assert!(consumer.recv_timeout(Duration::from_millis(20)).unwrap().is_none());
    assert!(consumer.try_recv().unwrap().is_none(), "a non-blocking receive is not interrupted");
}

#[test]
fn a_group_member_waiting_without_partitions_is_woken() {
    let tmp = TempDir::new("wakeup-member");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    let group = topic.group("g").unwrap();
    let _first = group.join().unwrap(); // holds the only partition
    let mut idle = group.join().unwrap();
    assert!(idle.assignment().is_empty());
    let wakeup = idle.wakeup_handle();
    let worker = std::thread::spawn(move || idle.recv().map(|m| m.offset()));
    std::thread::sleep(Duration::from_millis(30));
    wakeup.wake();
    assert!(matches!(worker.join().unwrap(), Err(Error::Interrupted)));
}

#[test]
fn an_async_receive_is_woken_too() {
    let tmp = TempDir::new("wakeup-async");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    let mut consumer = topic.consumer(StartFrom::Latest).unwrap();
    let wakeup = consumer.wakeup_handle();
    let waker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        wakeup.wake();
    });
    let got = futures::executor::block_on(consumer.recv_async());
    assert!(matches!(got, Err(Error::Interrupted)), "{got:?}");
    waker.join().unwrap();
    topic.producer().send(Record::new("x")).unwrap();
    assert_eq!(futures::executor::block_on(consumer.recv_async()).unwrap().value(), b"x");
}

#[test]
fn a_wake_aimed_at_a_consumer_in_a_channel_does_not_end_the_channel() {
    let tmp = TempDir::new("wakeup-channel");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    let consumer = topic.consumer(StartFrom::Latest).unwrap();
    let wakeup = consumer.wakeup_handle();
    let channel = consumer.into_channel(8);
    std::thread::sleep(Duration::from_millis(30)); // the bridge thread waits
    wakeup.wake();
    std::thread::sleep(Duration::from_millis(30));
    let id = topic.producer().send(Record::new("still flowing")).unwrap();
    let m = channel.receiver().recv_timeout(LONG).unwrap().unwrap();
    assert_eq!((m.offset(), m.value()), (id.offset, &b"still flowing"[..]));
}
