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
//! ## Async
//!
//! Every receive has an async form on any executor, and commits can be
//! written off the consuming task (see the README's Async section and
//! `examples/async_service.rs`):
//!
//! ```
//! use millpond::{AutoCommit, Broker, Record, TopicConfig};
//! # let dir = std::env::temp_dir().join(format!("millpond-doc-tour-async-{}", std::process::id()));
//! let broker = Broker::open(&dir)?;
//! let events = broker.create_topic("events", TopicConfig::default())?;
//! events.producer().send(Record::new("placed"))?;
//! let mut member = events.group("billing")?.auto_commit(AutoCommit::Off).join()?;
//! futures::executor::block_on(async {
//!     let m = member.recv_async().await?; // waits without holding a thread
//!     assert_eq!(m.value(), b"placed");
//!     member.commit_async().await // the fsync runs on the broker's commit thread
//! })?;
//! # drop((member, events, broker)); std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Exactly-once
//!
//! A [`Transaction`] sends records to any partitions of any topics and adds
//! a group member's positions; [`Transaction::commit`] makes all of it
//! visible and committed together, or nothing of it, across crashes:
//!
//! ```
//! use millpond::{AutoCommit, Broker, Record, TopicConfig};
//! # let dir = std::env::temp_dir().join(format!("millpond-doc-tour-txn-{}", std::process::id()));
//! let broker = Broker::open(&dir)?;
//! let orders = broker.create_topic("orders", TopicConfig::default())?;
//! let invoices = broker.create_topic("invoices", TopicConfig::default().partitions(2))?;
//! orders.producer().send(Record::new("order-1").key("customer-7"))?;
//! let group = orders.group("invoicing")?.auto_commit(AutoCommit::Off).commit_on_revoke(false);
//! let mut member = group.join()?;
//! let order = member.recv()?;
//! let mut txn = broker.transaction()?;
//! txn.send(&invoices, Record::new(format!("invoice for {:?}", order.value())).key("customer-7"))?;
//! txn.commit_offsets(&mut member)?; // the order counts as handled only if the invoice is there
//! txn.commit()?;
//! assert_eq!(group.committed()?[&0], 1);
//! # drop((member, group, orders, invoices, broker)); std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Readers in other processes
//!
//! One process writes a directory; any number of others read it live,
//! changing nothing ([`Broker::open_read_only`]):
//!
//! ```
//! use millpond::{Broker, Record, StartFrom, TopicConfig};
//! # let dir = std::env::temp_dir().join(format!("millpond-doc-tour-ro-{}", std::process::id()));
//! let writer = Broker::open(&dir)?;
//! let logs = writer.create_topic("logs", TopicConfig::default())?;
//! let reader = Broker::open_read_only(&dir)?; // usually another process
//! let mut tail = reader.topic("logs")?.consumer(StartFrom::Latest)?;
//! logs.producer().send(Record::new("disk 91% full"))?;
//! assert_eq!(tail.recv()?.value(), b"disk 91% full");
//! # drop((tail, reader, logs, writer)); std::fs::remove_dir_all(&dir)?;
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
//! | [`Transaction::commit`] returned `Ok` | all its records are visible and its group offsets committed; a crash before that leaves none of it, on any partition |
//!
//! ## Where to go next
//!
//! - [`Broker`]: the directory, its lock, topic administration, recovery;
//!   [`Broker::open_read_only`] for readers beside the writer.
//! - [`Producer`]: partitioning, batching, durability.
//! - [`Consumer`]: the receive methods (blocking and async), seeking, the
//!   channel bridge, [`WakeupHandle`]; [`MessageRef`] and [`Batch`] for
//!   zero-copy reads.
//! - [`Group`] and [`GroupMember`]: consumer groups, commits (blocking,
//!   [`GroupMember::commit_async`], a [`Committer`]), rebalances, and what
//!   an operator does with a group ([`Group::describe`],
//!   [`Group::reset_offsets`], [`Group::delete`]).
//! - [`Transaction`]: exactly-once consume-transform-produce.
//! - The on-disk formats are byte tables in the source: frames
//!   (`src/storage/frame.rs`), segment indexes (`src/storage/index.rs`),
//!   epoch histories (`src/storage/epochs.rs`), topic metadata
//!   (`src/topic/meta.rs`) and committed offsets (`src/group/offsets.rs`).
//!
//! ## The command-line tool
//!
//! With the `cli` feature (on by default; `default-features = false`
//! leaves it out) the crate builds `millpond`, Kafka's operator tools for
//! one directory: `topics`, `describe`, `consume`, `produce`, `groups`,
//! `group reset-offsets`, `dump` and `verify` (see the README). It uses
//! only this crate's public API; [`SegmentDump`] is the library side of
//! its `dump`: one segment file read on its own, without a broker or its
//! lock, frame by frame.
//!
//! ## Where the code lives
//!
//! The source is in floors, each a folder that imports only the floors
//! below it (a test, `tests/layering.rs`, checks this and that no import
//! cycle exists): `storage` < `topic` < `group` < `broker` < `client` <
//! `bridge`, with `error` shared by all.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod bridge;
mod broker;
mod client;
mod error;
mod group;
mod storage;
mod topic;

#[cfg(feature = "kafka")]
pub use bridge::kafka::{kafka_bridge::KafkaBridge, settings::KafkaSettings, stats::BridgeStats};
pub use bridge::mirror::Mirror;
pub use broker::config::BrokerConfig;
pub use broker::damaged_topic::DamagedTopic;
pub use broker::open::Broker;
pub use broker::topic::Topic;
pub use client::consume::channel::ConsumerChannel;
pub use client::consume::consumer::Consumer;
pub use client::consume::iter::{Iter, TryIter};
pub use client::consume::poll_future::PollFuture;
pub use client::consume::recv_future::RecvFuture;
pub use client::consume::start_from::StartFrom;
pub use client::consume::stream::MessageStream;
pub use client::consume::waiting::WaitStrategy;
pub use client::consume::wakeup::WakeupHandle;
pub use client::consumer_group::commit_handle::CommitHandle;
pub use client::consumer_group::committer::Committer;
pub use client::consumer_group::group::{Group, PartitionLag};
pub use client::consumer_group::group_admin::{GroupDescription, MemberDescription, ResetTo};
pub use client::consumer_group::member::GroupMember;
pub use client::consumer_group::member_channel::{Acker, MemberChannel};
pub use client::consumer_group::policy::{AutoCommit, OffsetReset};
pub use client::consumer_group::rebalance::{RebalanceEvent, RebalanceKind};
pub use client::exactly_once::committed::{Committed, CommittedPart};
pub use client::exactly_once::transaction::Transaction;
pub use client::produce::producer::Producer;
pub use client::produce::send_error::{SendTimeoutError, TrySendError};
pub use client::produce::send_future::SendFuture;
pub use client::typed::codec::{Bincode, Codec, Decoder, Encoder};
pub use client::typed::source::Source;
pub use client::typed::typed_consumer::{TypedConsumer, TypedIter, TypedTryIter};
pub use client::typed::typed_message::TypedMessage;
pub use client::typed::typed_poll_future::TypedPollFuture;
pub use client::typed::typed_producer::TypedProducer;
pub use client::typed::typed_recv_future::TypedRecvFuture;
pub use client::typed::typed_send_error::{TypedSendTimeoutError, TypedTrySendError};
pub use client::typed::typed_stream::TypedStream;
pub use error::{Error, Result};
pub use storage::batch::Batch;
pub use storage::headers::Headers;
pub use storage::health::{BackgroundError, BackgroundTask};
pub use storage::message::Message;
pub use storage::message_ref::MessageRef;
pub use storage::partition_log::compaction::CompactionReport;
pub use storage::policy::{CleanupPolicy, FsyncPolicy, RecoveryMode};
pub use storage::record::{IntoBytes, Record, RecordId, now_millis};
pub use storage::recovery_event::RecoveryEvent;
pub use storage::segment_dump::{
    DumpEntry, DumpFrames, DumpedFrame, DumpedRecord, SegmentDump, SegmentEnd, SegmentInfo,
};
pub use topic::config::{Backlog, TopicConfig};
pub use topic::stats::{PartitionStats, TopicStats};
pub use topic::verify::VerifyReport;

/// The README's examples, run as doc tests so they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
