//! [`KafkaBridge`]: the handle of a running bridge in either direction,
//! which starts its thread, reports its progress and stops it.

use std::sync::Arc;

use crate::bridge::kafka::inbound::start_inbound;
use crate::bridge::kafka::outbound::start_outbound;
use crate::bridge::kafka::settings::KafkaSettings;
use crate::bridge::kafka::stats::{BridgeStats, Status};
use crate::broker::topic::Topic;
use crate::error::Result;
use crate::storage::background::Worker;

/// A running bridge between a local topic and a Kafka topic, on a thread of
/// its own (cargo feature `kafka`), through `rdkafka` (librdkafka, built
/// from source; no system library needed).
///
/// # Guarantees
///
/// Both directions are at-least-once, and nothing acknowledged on one side
/// is lost:
///
/// | direction | order of events per batch |
/// | --- | --- |
/// | [`KafkaBridge::to_kafka`](crate::KafkaBridge::to_kafka) | poll a batch as a local consumer group → produce it to Kafka → wait until Kafka acknowledged every record (`acks=all`) → commit the local offsets |
/// | [`KafkaBridge::from_kafka`](crate::KafkaBridge::from_kafka) | poll a batch as a Kafka consumer group → append it locally and flush → commit the Kafka offsets |
///
/// A crash, a stop, or a failure between the last two steps re-sends the
/// batch later (a duplicate, never a loss). Keys, values, tombstones,
/// headers and timestamps are carried both ways (Kafka treats a timestamp
/// of 0 as unset and stamps the record with its send time).
///
/// # Partitions
///
/// Partition `p` maps to partition `p` on the other side when it has more
/// than `p` partitions, else to `p % partitions` (the bridge reads the Kafka
/// topic's partition count before its first batch, retrying until it can).
/// Give both sides the same number of partitions to keep per-partition order
/// end to end.
///
/// # Failures
///
/// Errors from Kafka (broker down, topic missing, timeouts) never stop the
/// bridge: the batch is retried with exponential back-off (up to 5 s) and the
/// error is visible in [`BridgeStats::last_error`](crate::BridgeStats::last_error)
/// and `retries`. Errors of the local log (the broker closed, a full disk)
/// stop the bridge; they are returned by
/// [`KafkaBridge::stop`](crate::KafkaBridge::stop).
///
/// # Examples
///
/// ```no_run
/// use millpond::{Broker, KafkaBridge, KafkaSettings, Record, TopicConfig};
/// let broker = Broker::open("./data")?;
/// let orders = broker.create_topic("orders", TopicConfig::default().partitions(3))?;
/// let kafka = KafkaSettings::new("kafka-1:9092");
/// // Local orders flow on to the cluster's "orders" topic...
/// let out = KafkaBridge::to_kafka(&orders, "kafka-out", &kafka, "orders")?;
/// orders.producer().send(Record::new("order-1").key("customer-7"))?;
/// // ...and the cluster's "payments" come in to a local topic.
/// let payments = broker.create_topic("payments", TopicConfig::default().partitions(3))?;
/// let inbound = KafkaBridge::from_kafka(&kafka, "payments", "millpond-in", &payments)?;
/// println!("{:?} {:?}", out.stats(), inbound.stats());
/// assert!(out.is_running() && inbound.is_running()); // Kafka errors do not stop them
/// out.stop()?;
/// inbound.stop()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct KafkaBridge {
    status: Arc<Status>,
    worker: Worker,
}

impl std::fmt::Debug for KafkaBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBridge").field("stats", &self.stats()).finish()
    }
}

impl KafkaBridge {
    /// Starts moving `local`'s records to the Kafka topic `kafka_topic`,
    /// reading `local` as consumer group `group`.
    ///
    /// See [`KafkaBridge`] for an example.
    pub fn to_kafka(local: &Topic, group: &str, kafka: &KafkaSettings, kafka_topic: &str) -> Result<KafkaBridge> {
        let (status, worker) = start_outbound(local, group, kafka, kafka_topic)?;
        Ok(KafkaBridge { status, worker })
    }

    /// Starts moving the Kafka topic `kafka_topic`'s records into `local`,
    /// reading Kafka as consumer group `kafka_group` (from the earliest
    /// offset the first time).
    ///
    /// See [`KafkaBridge`] for an example.
    pub fn from_kafka(
        kafka: &KafkaSettings,
        kafka_topic: &str,
        kafka_group: &str,
        local: &Topic,
    ) -> Result<KafkaBridge> {
        let (status, worker) = start_inbound(kafka, kafka_topic, kafka_group, local)?;
        Ok(KafkaBridge { status, worker })
    }

    /// Records moved, retries, and the last Kafka error.
    ///
    /// See [`KafkaBridge`] for an example.
    pub fn stats(&self) -> BridgeStats {
        self.status.snapshot()
    }

    /// Whether the bridge thread is running.
    ///
    /// See [`KafkaBridge`] for an example.
    pub fn is_running(&self) -> bool {
        self.worker.is_running()
    }

    /// Stops the bridge (a batch not yet committed is moved again by the
    /// next bridge) and returns the local error that stopped it early, if any.
    ///
    /// See [`KafkaBridge`] for an example.
    pub fn stop(mut self) -> Result<()> {
        self.worker.halt()
    }
}
