//! The Kafka bridge tests' broker and clients (feature "kafka").

use std::time::Duration;

use millpond::{KafkaSettings, Record, Topic};

/// The test broker (`MILLPOND_KAFKA_BOOTSTRAP`, default the one
/// `scripts/kafka-broker.sh start` runs).
pub fn bootstrap() -> String {
    std::env::var("MILLPOND_KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:19092".to_string())
}

/// Client settings that keep the tests quick: short fetch waits.
pub fn settings() -> KafkaSettings {
    KafkaSettings::new(bootstrap()).set("fetch.wait.max.ms", "50").set("socket.timeout.ms", "10000")
}

/// Sends records `from..from + n`: value `value-<i>`, key `key-<i % 101>`,
/// header `seq` = `i`, timestamp `1_700_000_000_000 + i`.
pub fn fill(topic: &Topic, from: u64, n: u64) {
    topic
        .producer()
        .send_batch((from..from + n).map(|i| {
            Record::new(format!("value-{i}"))
                .key(format!("key-{}", i % 101))
                .header("seq", i.to_string())
                .timestamp(1_700_000_000_000 + i as i64)
        }))
        .unwrap();
}

/// [`wait_until`](super::wait::wait_until), printing how long the wait took
/// (seen with `--nocapture`): the bridge tests' progress report.
pub fn wait_for(what: &str, limit: Duration, done: impl FnMut() -> bool) {
    let took = super::wait::wait_until(limit, what, done);
    eprintln!("{what}: {:.1} s", took.as_secs_f64());
}
