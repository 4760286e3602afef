//! The Kafka bridge (cargo feature `kafka`): records flow from a local topic
//! to an Apache Kafka topic, or from Kafka into a local topic, through
//! `rdkafka` (librdkafka, built from source; no system library needed).
//!
//! What the bridge guarantees is documented on
//! [`KafkaBridge`](crate::KafkaBridge), where users see it.

pub(crate) mod inbound;
pub(crate) mod kafka_bridge;
pub(crate) mod outbound;
pub(crate) mod pacing;
pub(crate) mod reason;
pub(crate) mod settings;
pub(crate) mod stats;
