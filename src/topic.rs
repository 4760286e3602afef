//! [`Topic`]: a named stream split into partitions, and [`TopicStats`].

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::broker::Shared;
use crate::config::{StartFrom, TopicConfig};
use crate::consumer::Consumer;
use crate::error::{Error, Result};
use crate::group::Group;
use crate::log::PartitionLog;
use crate::producer::Producer;
use crate::typed::{Codec, TypedConsumer, TypedProducer};
use crate::verify::VerifyReport;

/// The state of one open topic.
pub(crate) struct TopicInner {
    pub(crate) name: Arc<str>,
    pub(crate) config: TopicConfig,
    pub(crate) dir: PathBuf,
    pub(crate) partitions: Vec<Arc<PartitionLog>>,
    pub(crate) deleted: AtomicBool,
    /// Spreads new producers' round-robin starting points.
    pub(crate) producer_seq: AtomicU32,
    /// The consumer groups of this topic (weak: a group holds its topic).
    pub(crate) groups: parking_lot::RwLock<Vec<std::sync::Weak<crate::coordinator::GroupState>>>,
}

impl TopicInner {
    pub(crate) fn new(name: Arc<str>, config: TopicConfig, dir: PathBuf, partitions: Vec<Arc<PartitionLog>>) -> Self {
        TopicInner {
            name,
            config,
            dir,
            partitions,
            deleted: AtomicBool::new(false),
            producer_seq: AtomicU32::new(0),
            groups: parking_lot::RwLock::new(Vec::new()),
        }
    }
}

/// A named stream of records, split into partitions. A cheap handle (`Clone`,
/// `Send + Sync`) from [`Broker::create_topic`](crate::Broker::create_topic)
/// or [`Broker::topic`](crate::Broker::topic).
///
/// # Examples
///
/// ```
/// use millpond::{Broker, Record, StartFrom, TopicConfig};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-topicty-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let topic = broker.create_topic("clicks", TopicConfig::default().partitions(2))?;
/// assert_eq!((topic.name(), topic.partitions()), ("clicks", 2));
/// let producer = topic.producer();
/// producer.send(Record::new("a").partition(0))?;
/// producer.send(Record::new("b").partition(1))?;
/// assert_eq!(topic.high_watermark(0)?, 1);
/// let mut consumer = topic.consumer(StartFrom::Earliest)?;
/// assert_eq!(consumer.try_iter().count(), 2);
/// # drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Topic {
    pub(crate) inner: Arc<TopicInner>,
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topic").field("name", &self.name()).field("partitions", &self.partitions()).finish()
    }
}

/// Per-partition figures from [`Topic::stats`].
///
/// # Examples
///
/// See [`TopicStats`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionStats {
    /// The partition.
    pub partition: u32,
    /// The earliest offset still stored.
    pub log_start: u64,
    /// One past the last record.
    pub high_watermark: u64,
    /// Records stored (`high_watermark - log_start`; compaction gaps included).
    pub records: u64,
    /// Bytes of segment data on disk.
    pub bytes: u64,
    /// Number of segment files.
    pub segments: usize,
}

/// A topic's size and extent, per partition.
///
/// # Examples
///
/// ```
/// use millpond::{Broker, Record, TopicConfig};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-stats-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let topic = broker.create_topic("t", TopicConfig::default())?;
/// topic.producer().send_batch((0..10).map(|i| Record::new(format!("{i}"))))?;
/// let stats = topic.stats();
/// assert_eq!(stats.records(), 10);
/// assert!(stats.bytes() >= 10 * 27, "each record is framed: 26 bytes of header and its value");
/// assert_eq!(stats.partitions[0].high_watermark, 10);
/// assert_eq!(stats.partitions[0].segments, 1);
/// # drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicStats {
    /// The topic.
    pub topic: String,
    /// One entry per partition, in order.
    pub partitions: Vec<PartitionStats>,
}

impl TopicStats {
    /// Records stored over all partitions.
    ///
    /// See [`TopicStats`] for an example.
    pub fn records(&self) -> u64 {
        self.partitions.iter().map(|p| p.records).sum()
    }

    /// Bytes stored over all partitions.
    ///
    /// See [`TopicStats`] for an example.
    pub fn bytes(&self) -> u64 {
        self.partitions.iter().map(|p| p.bytes).sum()
    }
}

impl Topic {
    pub(crate) fn new(inner: Arc<TopicInner>, shared: Arc<Shared>) -> Topic {
        Topic { inner, shared }
    }

    /// The topic's name.
    ///
    /// See [`Topic`] for an example.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The number of partitions.
    ///
    /// See [`Topic`] for an example.
    pub fn partitions(&self) -> u32 {
        self.inner.partitions.len() as u32
    }

    /// The topic's config.
    ///
    /// ```
    /// use millpond::{Broker, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-tcfg-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let cfg = TopicConfig::default().partitions(2);
    /// assert_eq!(broker.create_topic("t", cfg.clone())?.config(), &cfg);
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn config(&self) -> &TopicConfig {
        &self.inner.config
    }

    /// A new producer for this topic.
    ///
    /// See [`Producer`] for an example.
    pub fn producer(&self) -> Producer {
        Producer::new(self.clone())
    }

    /// A producer of values of type `T`, encoded with [`Bincode`](crate::Bincode).
    ///
    /// See [`TypedProducer`] for an example.
    pub fn typed_producer<T: serde::Serialize + serde::de::DeserializeOwned>(&self) -> TypedProducer<T> {
        TypedProducer::new(self.producer(), crate::Bincode)
    }

    /// A producer of values of type `T`, encoded with `codec`.
    ///
    /// ```
    /// use millpond::{Bincode, Broker, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-typedwithc-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.typed_producer_with::<String, _>(Bincode).send(&"hi".to_string())?;
    /// assert_eq!(topic.typed_consumer_with::<String, _>(StartFrom::Earliest, Bincode)?.recv()?.value, "hi");
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn typed_producer_with<T, C: Codec<T>>(&self, codec: C) -> TypedProducer<T, C> {
        TypedProducer::new(self.producer(), codec)
    }

    /// An independent consumer of values of type `T`, decoded with
    /// [`Bincode`](crate::Bincode).
    ///
    /// See [`TypedConsumer`] for an example.
    pub fn typed_consumer<T: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        from: StartFrom,
    ) -> Result<TypedConsumer<T>> {
        Ok(TypedConsumer::new(self.consumer(from)?, crate::Bincode))
    }

    /// An independent consumer of values of type `T`, decoded with `codec`.
    ///
    /// See [`Topic::typed_producer_with`] for an example.
    pub fn typed_consumer_with<T, C: Codec<T>>(&self, from: StartFrom, codec: C) -> Result<TypedConsumer<T, C>> {
        Ok(TypedConsumer::new(self.consumer(from)?, codec))
    }

    /// A new independent consumer of all partitions, starting at `from`.
    ///
    /// See [`Consumer`] for an example.
    pub fn consumer(&self, from: StartFrom) -> Result<Consumer> {
        Consumer::new(self.clone(), (0..self.partitions()).collect(), from)
    }

    /// A new independent consumer of the given partitions only (Kafka's
    /// `assign`), starting at `from`.
    ///
    /// ```
    /// use millpond::{Broker, Record, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-consof-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default().partitions(3))?;
    /// topic.producer().send(Record::new("p1").partition(1))?;
    /// topic.producer().send(Record::new("p2").partition(2))?;
    /// let mut c = topic.consumer_of(&[2], StartFrom::Earliest)?;
    /// assert_eq!(c.try_recv()?.unwrap().value(), b"p2");
    /// assert!(c.try_recv()?.is_none());
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn consumer_of(&self, partitions: &[u32], from: StartFrom) -> Result<Consumer> {
        for &p in partitions {
            self.partition_log(p)?;
        }
        let mut ps = partitions.to_vec();
        ps.sort_unstable();
        ps.dedup();
        Consumer::new(self.clone(), ps, from)
    }

    /// The consumer group `name` on this topic (Kafka's `group.id`): join it
    /// to share the partitions with the other members and resume from the
    /// group's committed offsets. Fails with [`Error::InvalidName`] for a
    /// name outside `[A-Za-z0-9._-]{1,249}` (or `.`/`..`).
    ///
    /// See [`Group`] for an example.
    pub fn group(&self, name: &str) -> Result<Group> {
        crate::names::validate("group", name)?;
        if let Some(e) = self.unusable() {
            return Err(e);
        }
        Ok(Group::new(self.clone(), self.shared.group_state(name, &self.inner)))
    }

    /// One past the last record of `partition`.
    ///
    /// See [`Topic`] for an example.
    pub fn high_watermark(&self, partition: u32) -> Result<u64> {
        Ok(self.partition_log(partition)?.high_watermark())
    }

    /// The earliest offset still stored in `partition`.
    ///
    /// ```
    /// use millpond::{Broker, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-logstart-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// assert_eq!(broker.create_topic("t", TopicConfig::default())?.log_start(0)?, 0);
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn log_start(&self, partition: u32) -> Result<u64> {
        Ok(self.partition_log(partition)?.log_start())
    }

    /// Records, bytes, segments and offsets per partition.
    ///
    /// See [`TopicStats`] for an example.
    pub fn stats(&self) -> TopicStats {
        TopicStats {
            topic: self.name().to_string(),
            partitions: self
                .inner
                .partitions
                .iter()
                .map(|p| {
                    let log_start = p.log_start();
                    let high_watermark = p.high_watermark();
                    PartitionStats {
                        partition: p.partition(),
                        log_start,
                        high_watermark,
                        records: high_watermark.saturating_sub(log_start),
                        bytes: p.size_bytes(),
                        segments: p.segment_count(),
                    }
                })
                .collect(),
        }
    }

    /// Applies the topic's retention limits now (the background thread also
    /// does, about every second): deletes the oldest sealed segments outside
    /// them and returns how many were deleted.
    ///
    /// ```
    /// use millpond::{Broker, Record, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-retention-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let cfg = TopicConfig::default().segment_bytes(4096).max_record_bytes(1024).retention_bytes(8192);
    /// let topic = broker.create_topic("t", cfg)?;
    /// topic.producer().send_batch((0..200).map(|_| Record::new(vec![7u8; 200])))?;
    /// topic.enforce_retention()?;
    /// let stats = topic.stats();
    /// assert!(stats.partitions[0].log_start > 0);         // old segments are gone
    /// assert_eq!(stats.partitions[0].high_watermark, 200); // offsets are never reused
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn enforce_retention(&self) -> Result<u64> {
        if let Some(e) = self.unusable() {
            return Err(e);
        }
        let now = crate::record::now_millis();
        let mut deleted = 0;
        for p in &self.inner.partitions {
            deleted += p.apply_retention(now)?;
        }
        Ok(deleted)
    }

    /// Compacts a [`CleanupPolicy::Compact`](crate::CleanupPolicy::Compact)
    /// topic now (the background thread also does, after segments roll and
    /// about every 30 s); does nothing for other topics.
    ///
    /// See [`CompactionReport`](crate::CompactionReport) for an example.
    pub fn compact(&self) -> Result<crate::CompactionReport> {
        if let Some(e) = self.unusable() {
            return Err(e);
        }
        let now = crate::record::now_millis();
        let mut report = crate::CompactionReport::default();
        for p in &self.inner.partitions {
            report.merge(p.compact(now)?);
        }
        Ok(report)
    }

    /// Reads and checksums every frame of this topic (see
    /// [`Broker::verify`](crate::Broker::verify)).
    ///
    /// See [`VerifyReport`] for an example.
    pub fn verify(&self) -> Result<VerifyReport> {
        crate::verify::verify_topic(&self.inner)
    }

    /// Makes everything appended to this topic durable (msync + fsync).
    ///
    /// ```
    /// use millpond::{Broker, Record, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-tflush-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.producer().send(Record::new("x"))?;
    /// topic.flush()?;
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn flush(&self) -> Result<()> {
        for p in &self.inner.partitions {
            p.flush()?;
        }
        Ok(())
    }

    /// The partition's log, or `InvalidPartition`.
    pub(crate) fn partition_log(&self, partition: u32) -> Result<&Arc<PartitionLog>> {
        self.inner.partitions.get(partition as usize).ok_or_else(|| Error::InvalidPartition {
            topic: self.name().to_string(),
            partition,
            partitions: self.partitions(),
        })
    }

    /// Why this topic can no longer be used, if it cannot.
    pub(crate) fn unusable(&self) -> Option<Error> {
        if self.inner.deleted.load(Ordering::SeqCst) {
            Some(Error::TopicDeleted { topic: self.name().to_string() })
        } else if self.shared.is_closed() {
            Some(Error::Closed)
        } else {
            None
        }
    }
}
