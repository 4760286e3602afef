//! Exactly-once: transactions, records sent to any partitions of any topics, and a
//! consumer group's positions, committed all together or not at all
//! ([`Transaction`](crate::Transaction)), and what a commit tells
//! ([`Committed`](crate::Committed)). The commit itself is the broker's
//! (`broker/transactions.rs`).

pub(crate) mod committed;
pub(crate) mod transaction;
