//! Bridges, the top floor: background workers that move records between a
//! topic and somewhere else — another topic ([`Mirror`](crate::Mirror)) or
//! a Kafka cluster. Imports the client API and the floors below it.

#[cfg(feature = "kafka")]
pub(crate) mod kafka;
pub(crate) mod mirror;
pub(crate) mod worker;
