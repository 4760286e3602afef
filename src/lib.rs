//! # millpond
//!
//! Apache Kafka's model as an embeddable crate: producers publish records to
//! named, persistent topics; consumers read them at their own pace. Neither
//! knows the other. Each topic is a memory-mapped, segmented, checksummed log
//! on disk, so the buffer between your services survives restarts and
//! crashes, and a slow consumer holds back nobody.
//!
//! ## A tour
//!
//! ```
//! use millpond::{Broker, Record, StartFrom, TopicConfig};
//! use std::time::Duration;
//! # let dir = std::env::temp_dir().join(format!("millpond-doc-tour-{}", std::process::id()));
//!
//! // A broker owns one directory: it creates it or recovers what is there.
//! let broker = Broker::open(&dir)?;
//!
//! // A topic is split into partitions; each is an ordered, append-only log.
//! let orders = broker.create_topic("orders", TopicConfig::default().partitions(4))?;
//!
//! // Producers are cheap to clone and share between threads. A key picks the
//! // partition (stably), so one customer's orders stay in order.
//! let producer = orders.producer();
//! let id = producer.send(Record::new("order-1").key("customer-7").header("source", "web"))?;
//! producer.send_batch((2..=100).map(|i| Record::new(format!("order-{i}"))))?;
//! producer.flush()?; // a durability barrier against power loss
//!
//! // Consumers are independent readers with their own positions.
//! let mut consumer = orders.consumer(StartFrom::Earliest)?;
//! let batch = consumer.poll(500, Duration::from_millis(10))?;
//! assert_eq!(batch.len(), 100);
//! let first = batch.iter().find(|m| m.partition() == id.partition && m.offset() == id.offset).unwrap();
//! assert_eq!(first.header("source"), Some(&b"web"[..]));
//!
//! // Nothing more: try_recv never blocks; recv_timeout gives up in time.
//! assert!(consumer.try_recv()?.is_none());
//! assert!(consumer.recv_timeout(Duration::from_millis(5))?.is_none());
//!
//! // The fastest way to read: batches borrowed straight from the mapped
//! // log, with no copy and no allocation per record.
//! let mut reader = orders.consumer(StartFrom::Earliest)?;
//! let mut bytes = 0;
//! loop {
//!     let batch = reader.poll_ref(1000, Duration::ZERO)?; // one partition's records
//!     if batch.is_empty() {
//!         break;
//!     }
//!     bytes += batch.map(|m| m.value().len()).sum::<usize>();
//! }
//! assert_eq!(bytes, 9 * 7 + 90 * 8 + 9); // "order-1".."order-9", "order-10".."order-99", "order-100"
//!
//! // Everything survives a restart.
//! drop((consumer, reader, producer, orders));
//! drop(broker);
//! let broker = Broker::open(&dir)?;
//! let mut again = broker.topic("orders")?.consumer(StartFrom::Earliest)?;
//! assert_eq!(again.try_iter().count(), 100);
//! # drop(again); drop(broker); std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Guarantees
//!
//! | event | what survives |
//! | --- | --- |
//! | `send` returned `Ok` | the record is visible to consumers and survives a crash of the process |
//! | `flush` returned `Ok` (or the [`FsyncPolicy`] synced) | everything sent before it survives a crash of the machine |
//! | crash while writing | recovery truncates the torn tail; no torn or corrupt record is ever returned |
//! | a failed msync/fsync | the partition refuses further writes ([`Error::Poisoned`]) |
//!
//! ## Where to go next
//!
//! - [`Broker`]: the directory, its lock, topic administration, recovery.
//! - [`Producer`]: partitioning, batching, durability.
//! - [`Consumer`]: the receive methods, seeking, the channel bridge;
//!   [`MessageRef`] and [`Batch`] for zero-copy reads.
//! - The storage format is documented in the source (`src/log/frame.rs`,
//!   `src/log/index.rs`, `src/meta.rs`).

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod backpressure;
mod batch;
mod broker;
mod channel;
mod config;
mod consumer;
mod coordinator;
mod error;
mod fsutil;
mod group;
#[cfg(feature = "kafka")]
mod kafka;
pub(crate) mod log;
mod message_ref;
mod meta;
mod mirror;
mod names;
mod notify;
mod offsets;
mod padded;
mod partitioner;
mod producer;
mod record;
mod recovery;
mod send_error;
mod topic;
mod typed;
mod verify;
mod worker;

pub use batch::Batch;
pub use broker::Broker;
pub use channel::ConsumerChannel;
pub use config::{
    Backlog, BrokerConfig, CleanupPolicy, FsyncPolicy, RecoveryMode, StartFrom, TopicConfig, WaitStrategy,
};
pub use consumer::{Consumer, Iter, TryIter};
pub use error::{Error, Result};
pub use group::{AutoCommit, Group, GroupMember, OffsetReset, PartitionLag, RebalanceEvent, RebalanceKind};
#[cfg(feature = "kafka")]
pub use kafka::{BridgeStats, KafkaBridge, KafkaSettings};
pub use log::compaction::CompactionReport;
pub use message_ref::MessageRef;
pub use mirror::Mirror;
pub use producer::Producer;
pub use record::{Headers, IntoBytes, Message, Record, RecordId, now_millis};
pub use recovery::{DamagedTopic, RecoveryEvent};
pub use send_error::{SendTimeoutError, TrySendError};
pub use topic::{PartitionStats, Topic, TopicStats};
pub use typed::{Bincode, Codec, Source, TypedConsumer, TypedIter, TypedMessage, TypedProducer, TypedTryIter};
pub use verify::VerifyReport;

/// The README's examples, run as doc tests so they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
