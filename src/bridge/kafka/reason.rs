//! The text of a Kafka failure: what the bridge was doing and what Kafka
//! said, as carried by [`Error::Kafka`](crate::Error::Kafka) and
//! [`BridgeStats::last_error`](crate::BridgeStats::last_error).

/// `"{what}: {e}"`.
pub(crate) fn kafka_error(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}
