//! The Kafka bridge (feature `kafka`).

pub(crate) mod kafka;
