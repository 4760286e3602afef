//! The Kafka bridge (cargo feature `kafka`): records flow from a local topic
//! to an Apache Kafka topic, or from Kafka into a local topic, through
//! `rdkafka` (librdkafka, built from source; no system library needed).
//!
//! # Guarantees
//!
//! Both directions are at-least-once, and nothing acknowledged on one side
//! is lost:
//!
//! | direction | order of events per batch |
//! | --- | --- |
//! | [`KafkaBridge::to_kafka`](crate::KafkaBridge::to_kafka) | poll a batch as a local consumer group → produce it to Kafka → wait until Kafka acknowledged every record (`acks=all`) → commit the local offsets |
//! | [`KafkaBridge::from_kafka`](crate::KafkaBridge::from_kafka) | poll a batch as a Kafka consumer group → append it locally and flush → commit the Kafka offsets |
//!
//! A crash, a stop, or a failure between the last two steps re-sends the
//! batch later (a duplicate, never a loss). Keys, values, tombstones,
//! headers and timestamps are carried both ways (Kafka treats a timestamp
//! of 0 as unset and stamps the record with its send time).
//!
//! # Partitions
//!
//! Partition `p` maps to partition `p` on the other side when it has more
//! than `p` partitions, else to `p % partitions` (the bridge reads the Kafka
//! topic's partition count before its first batch, retrying until it can).
//! Give both sides the same number of partitions to keep per-partition order
//! end to end.
//!
//! # Failures
//!
//! Errors from Kafka (broker down, topic missing, timeouts) never stop the
//! bridge: the batch is retried with exponential back-off (up to 5 s) and the
//! error is visible in [`BridgeStats::last_error`](crate::BridgeStats::last_error)
//! and `retries`. Errors of the local log (the broker closed, a full disk)
//! stop the bridge; they are returned by
//! [`KafkaBridge::stop`](crate::KafkaBridge::stop).

pub(crate) mod inbound;
pub(crate) mod kafka_bridge;
pub(crate) mod outbound;
pub(crate) mod pacing;
pub(crate) mod reason;
pub(crate) mod settings;
pub(crate) mod stats;
