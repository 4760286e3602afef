//! Bridging to a real Kafka cluster: local orders flow out to a Kafka topic,
//! and the same Kafka topic flows back in to another local topic, through
//! the `kafka` feature's `KafkaBridge`.
//!
//! Needs a Kafka-protocol broker: `scripts/kafka-broker.sh start`, then
//! `cargo run --release --features kafka --example kafka_bridge`
//! (`MILLPOND_KAFKA_BOOTSTRAP` overrides `127.0.0.1:19092`). It checks that
//! every order came back with its key, headers and timestamp.

use std::path::Path;
use std::time::{Duration, Instant};

use millpond::{Broker, KafkaBridge, KafkaSettings, Record, StartFrom, TopicConfig};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Order timestamps (milliseconds since the epoch; Kafka treats 0 as unset).
const BASE_TS: i64 = 1_700_000_000_000;

fn run(dir: &Path, bootstrap: &str, kafka_topic: &str, orders: u64) -> Result<f64, BoxError> {
    let broker = Broker::open(dir)?;
    let local = broker.create_topic("orders", TopicConfig::default().partitions(1))?;
    let back = broker.create_topic("orders-from-kafka", TopicConfig::default().partitions(1))?;
    local.producer().send_batch((0..orders).map(|i| {
        Record::new(format!("order-{i}"))
            .key(format!("customer-{}", i % 10))
            .header("source", "web")
            .timestamp(BASE_TS + i as i64)
    }))?;
    let kafka = KafkaSettings::new(bootstrap);
    kafka.create_topic(kafka_topic, 1)?;
    let start = Instant::now();
    let out = KafkaBridge::to_kafka(&local, "kafka-out", &kafka, kafka_topic)?;
    let inbound = KafkaBridge::from_kafka(&kafka, kafka_topic, "millpond-in", &back)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while back.stats().records() < orders {
        if Instant::now() > deadline {
            return Err(format!("only {} of {orders} came back; out {:?}", back.stats().records(), out.stats()).into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let secs = start.elapsed().as_secs_f64();
    out.stop()?;
    inbound.stop()?;
    let mut c = back.consumer(StartFrom::Earliest)?;
    for i in 0..orders {
        let m = c.try_recv()?.ok_or("missing record")?;
        if m.value() != format!("order-{i}").as_bytes()
            || m.key() != Some(format!("customer-{}", i % 10).as_bytes())
            || m.header("source") != Some(b"web")
            || m.timestamp() != BASE_TS + i as i64
        {
            return Err(format!("record {i} came back changed: {m:?}").into());
        }
    }
    Ok(secs)
}

fn main() -> Result<(), BoxError> {
    let bootstrap = std::env::var("MILLPOND_KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:19092".into());
    let dir = std::env::temp_dir().join(format!("millpond-kafka-bridge-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let topic = format!("millpond-orders-{}", std::process::id());
    let orders = 100_000;
    let result = run(&dir, &bootstrap, &topic, orders);
    let _ = std::fs::remove_dir_all(&dir);
    let secs = result?;
    println!(
        "{orders} orders out to Kafka ({bootstrap}) and back in {secs:.2} s ({:.0} records/s)",
        orders as f64 / secs
    );
    println!("ok: every order came back with its key, headers and timestamp");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn orders_go_out_to_kafka_and_come_back_intact() {
        let bootstrap = std::env::var("MILLPOND_KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:19092".into());
        let dir = std::env::temp_dir().join(format!("millpond-kafka-bridge-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let topic = format!("millpond-example-{}", std::process::id());
        let result = super::run(&dir, &bootstrap, &topic, 2_000);
        let _ = std::fs::remove_dir_all(&dir);
        result.unwrap();
    }
}
