//! The Kafka bridge against a real Kafka-protocol broker (Tansu).
//!
//! Built only with `--features kafka`. Start the broker first:
//! `scripts/kafka-broker.sh start` (`.ci/run` does), which listens on
//! `MILLPOND_KAFKA_BOOTSTRAP` (default `127.0.0.1:19092`). When the broker
//! cannot be reached these tests fail; they never skip.
#![cfg(feature = "kafka")]

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use millpond::{Broker, KafkaBridge, KafkaSettings, StartFrom, Topic, TopicConfig};
use support::dir::TempDir;
use support::kafka::{bootstrap, fill, settings, wait_for};

/// Creates a Kafka topic with a unique name, failing the test if the broker
/// is unreachable.
fn kafka_topic(prefix: &str, partitions: u32) -> String {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("{prefix}-{}-{n}", std::process::id());
    settings()
        .create_topic(&name, partitions)
        .unwrap_or_else(|e| panic!("cannot create a topic on the Kafka broker at {}: {e}", bootstrap()));
    name
}

type Content = BTreeMap<u32, Vec<(Option<Vec<u8>>, Vec<u8>, Vec<(String, Vec<u8>)>, i64)>>;

fn content(topic: &Topic) -> Content {
    let mut out = Content::new();
    for m in topic.consumer(StartFrom::Earliest).unwrap().try_iter() {
        let m = m.unwrap();
        out.entry(m.partition()).or_default().push((
            m.key().map(<[u8]>::to_vec),
            m.value().to_vec(),
            m.headers().map(|(n, v)| (n.to_string(), v.to_vec())).collect(),
            m.timestamp(),
        ));
    }
    out
}

/// Every record of `want` is in `got`, in order per partition (at-least-once:
/// `got` may hold repeats of a re-sent batch).
fn assert_delivered(want: &Content, got: &Content) {
    for (p, records) in want {
        let copied = got.get(p).map(Vec::as_slice).unwrap_or_default();
        let mut it = copied.iter();
        for r in records {
            assert!(it.any(|c| c == r), "partition {p}: record {r:?} missing or out of order");
        }
    }
}

#[test]
fn round_trip_local_to_kafka_to_local_keeps_keys_headers_and_timestamps() {
    let tmp = TempDir::new("kafka-round-trip");
    let broker = Broker::open(tmp.path()).unwrap();
    let source = broker.create_topic("source", TopicConfig::default().partitions(2)).unwrap();
    let sink = broker.create_topic("sink", TopicConfig::default().partitions(2)).unwrap();
    let topic = kafka_topic("round-trip", 2);
    let n = 100_000;
    fill(&source, 0, n);
    let start = Instant::now();
    let out = KafkaBridge::to_kafka(&source, "to-kafka", &settings(), &topic).unwrap();
    let inbound = KafkaBridge::from_kafka(&settings(), &topic, &format!("{topic}-in"), &sink).unwrap();
    wait_for("records to arrive back", Duration::from_secs(240), || sink.stats().records() >= n);
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "kafka round trip: {n} records in {secs:.2} s ({:.0} records/s); out {:?}, in {:?}",
        n as f64 / secs,
        out.stats(),
        inbound.stats()
    );
    out.stop().unwrap();
    inbound.stop().unwrap();
    assert_delivered(&content(&source), &content(&sink));
}

#[test]
fn bridge_stopped_and_restarted_mid_stream_loses_nothing() {
    let tmp = TempDir::new("kafka-restart");
    let broker = Broker::open(tmp.path()).unwrap();
    let source = broker.create_topic("source", TopicConfig::default().partitions(2)).unwrap();
    let sink = broker.create_topic("sink", TopicConfig::default().partitions(2)).unwrap();
    let topic = kafka_topic("restart", 2);
    fill(&source, 0, 20_000);
    let out = KafkaBridge::to_kafka(&source, "to-kafka", &settings(), &topic).unwrap();
    wait_for("some records to move", Duration::from_secs(60), || out.stats().transferred > 0);
    out.stop().unwrap();
    fill(&source, 20_000, 10_000);
    let out = KafkaBridge::to_kafka(&source, "to-kafka", &settings(), &topic).unwrap();
    let group = format!("{topic}-in");
    let inbound = KafkaBridge::from_kafka(&settings(), &topic, &group, &sink).unwrap();
    wait_for("a few records to come in", Duration::from_secs(60), || sink.stats().records() > 0);
    inbound.stop().unwrap(); // the inbound side restarts too
    let inbound = KafkaBridge::from_kafka(&settings(), &topic, &group, &sink).unwrap();
    wait_for("every record", Duration::from_secs(120), || sink.stats().records() >= 30_000);
    out.stop().unwrap();
    inbound.stop().unwrap();
    assert_delivered(&content(&source), &content(&sink));
}

#[test]
fn bridge_rides_out_an_unreachable_broker_and_delivers_everything_once_it_is_back() {
    // A bridge pointed at a port with no broker: it must retry with back-off,
    // report the error, keep every record uncommitted, and deliver them all
    // once a broker answers (here: the same records re-routed by a second
    // bridge of the same group, proving nothing was committed early).
    let tmp = TempDir::new("kafka-down");
    let broker = Broker::open(tmp.path()).unwrap();
    let source = broker.create_topic("source", TopicConfig::default().partitions(2)).unwrap();
    let sink = broker.create_topic("sink", TopicConfig::default().partitions(2)).unwrap();
    fill(&source, 0, 5_000);
    let dead = KafkaSettings::new("127.0.0.1:1").set("message.timeout.ms", "1000").set("socket.timeout.ms", "1000");
    let out = KafkaBridge::to_kafka(&source, "to-kafka", &dead, "nowhere").unwrap();
    wait_for("the error to be reported", Duration::from_secs(60), || out.stats().retries > 0);
    let stats = out.stats();
    assert!(stats.last_error.is_some(), "{stats:?}");
    assert_eq!(stats.transferred, 0);
    out.stop().unwrap();
    let topic = kafka_topic("down", 2);
    let out = KafkaBridge::to_kafka(&source, "to-kafka", &settings(), &topic).unwrap();
    let inbound = KafkaBridge::from_kafka(&settings(), &topic, &format!("{topic}-in"), &sink).unwrap();
    wait_for("every record", Duration::from_secs(120), || sink.stats().records() >= 5_000);
    out.stop().unwrap();
    inbound.stop().unwrap();
    assert_delivered(&content(&source), &content(&sink));
}
