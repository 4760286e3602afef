//! The Kafka bridge while the Kafka broker itself stops and comes back.
//!
//! A test binary of its own because it stops the shared Tansu broker: cargo
//! runs test binaries one after another, so no other Kafka test is running
//! meanwhile. Built only with `--features kafka`; needs the broker that
//! `scripts/kafka-broker.sh start` runs (`.ci/run` does), and leaves it
//! running.
#![cfg(feature = "kafka")]

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use millpond::{Broker, KafkaBridge, KafkaSettings, StartFrom, Topic, TopicConfig};
use support::dir::TempDir;
use support::kafka::{fill, wait_for};

/// Quick reconnects, so the test does not wait out librdkafka's defaults.
fn settings() -> KafkaSettings {
    support::kafka::settings()
        .set("socket.timeout.ms", "5000")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "500")
        .set("message.timeout.ms", "5000")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("topic.metadata.refresh.interval.ms", "1000")
}

fn broker_script(action: &str) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka-broker.sh");
    let status = Command::new("bash").arg(script).arg(action).status().expect("run scripts/kafka-broker.sh");
    assert!(status.success(), "scripts/kafka-broker.sh {action} failed: {status}");
}

/// `seq` header values per partition, in order.
fn seqs(topic: &Topic) -> BTreeMap<u32, Vec<u64>> {
    let mut out: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for m in topic.consumer(StartFrom::Earliest).unwrap().try_iter() {
        let m = m.unwrap();
        let seq = std::str::from_utf8(m.header("seq").unwrap()).unwrap().parse().unwrap();
        out.entry(m.partition()).or_default().push(seq);
    }
    out
}

#[test]
fn bridges_survive_a_kafka_broker_restart_and_the_outbound_loses_nothing_it_held() {
    let tmp = TempDir::new("kafka-broker-restart");
    let broker = Broker::open(tmp.path()).unwrap();
    let source = broker.create_topic("source", TopicConfig::default().partitions(2)).unwrap();
    let sink = broker.create_topic("sink", TopicConfig::default().partitions(2)).unwrap();
    let kafka_topic = format!("broker-restart-{}", std::process::id());
    settings().create_topic(&kafka_topic, 2).expect("the Kafka broker is up");

    let out = KafkaBridge::to_kafka(&source, "to-kafka", &settings(), &kafka_topic).unwrap();
    let inbound = KafkaBridge::from_kafka(&settings(), &kafka_topic, "from-kafka", &sink).unwrap();
    fill(&source, 0, 2_000);
    wait_for("the first records to come back", Duration::from_secs(120), || sink.stats().records() >= 2_000);

    // The broker goes away while both bridges run; records keep arriving
    // locally meanwhile.
    broker_script("stop");
    fill(&source, 2_000, 2_000);
    wait_for("the outbound bridge to notice", Duration::from_secs(60), || out.stats().retries > 0);
    assert!(out.is_running() && inbound.is_running(), "Kafka errors never stop a bridge");

    // It comes back empty (Tansu here keeps everything in memory), so the
    // topic is created again; the bridges reconnect by themselves.
    broker_script("start");
    settings().create_topic(&kafka_topic, 2).expect("the Kafka broker is back");
    fill(&source, 4_000, 1_000);
    let report = std::cell::Cell::new(Instant::now() + Duration::from_secs(10));
    let progress = |what: &str| {
        if Instant::now() > report.get() {
            eprintln!("{what}: sink {}, out {:?}, in {:?}", sink.stats().records(), out.stats(), inbound.stats());
            report.set(Instant::now() + Duration::from_secs(10));
        }
    };
    // Outbound: everything it held during the outage, and what came after,
    // is acknowledged by the restarted broker and committed locally.
    wait_for("the outbound bridge to deliver what it held", Duration::from_secs(120), || {
        progress("outbound");
        out.stats().transferred >= 5_000
    });
    // Inbound: the same bridge resumes and moves records again: by itself,
    // or, when its consumer stalled behind the topic without a word (seen
    // after this in-memory broker came back empty), by re-creating it. How
    // much of the topic it sees depends on the race between its fetch
    // position from before the restart and the refilled topic: a broker that
    // lost its log regresses offsets, which no client can make up for.
    let before = inbound.stats().transferred;
    fill(&source, 5_000, 1_000);
    wait_for("the inbound bridge to resume", Duration::from_secs(120), || {
        progress("inbound");
        inbound.stats().transferred > before
    });
    wait_for("the outbound bridge to deliver the rest", Duration::from_secs(120), || {
        progress("outbound");
        out.stats().transferred >= 6_000
    });
    assert!(out.is_running() && inbound.is_running());
    out.stop().unwrap();
    inbound.stop().unwrap();

    // Nothing the outbound bridge held was lost: the restarted broker's topic
    // holds every record from the outage on (2,000..6,000), in order per
    // partition (at-least-once: repeats allowed). A fresh inbound bridge,
    // reading the topic from its start, brings them into a second topic.
    let check = broker.create_topic("check", TopicConfig::default().partitions(2)).unwrap();
    let reader = KafkaBridge::from_kafka(&settings(), &kafka_topic, "check-reader", &check).unwrap();
    wait_for("the restarted broker's records", Duration::from_secs(120), || check.stats().records() >= 4_000);
    reader.stop().unwrap();
    let got = seqs(&check);
    for (p, sent) in seqs(&source) {
        let received = got.get(&p).cloned().unwrap_or_default();
        let mut it = received.iter();
        for s in sent.into_iter().filter(|&s| s >= 2_000) {
            assert!(it.any(|&r| r == s), "partition {p}: record {s} missing or out of order");
        }
    }
}
