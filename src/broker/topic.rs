//! [`Topic`]: the handle of a named stream split into partitions.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::broker::keep_alive::KeepAlive;
use crate::broker::shared::Shared;
use crate::error::{Error, Result};
use crate::storage::partition_log::compaction::CompactionReport;
use crate::storage::partition_log::state::PartitionLog;
use crate::topic::config::TopicConfig;
use crate::topic::state::TopicState;
use crate::topic::stats::TopicStats;
use crate::topic::verify::VerifyReport;

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
    pub(crate) inner: Arc<TopicState>,
    pub(crate) shared: Arc<Shared>,
    /// Keeps the broker open while this handle, or anything taken from it,
    /// lives.
    _alive: Arc<KeepAlive>,
}

impl std::fmt::Debug for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topic").field("name", &self.name()).field("partitions", &self.partitions()).finish()
    }
}

impl Topic {
    pub(crate) fn new(inner: Arc<TopicState>, alive: &Arc<KeepAlive>) -> Topic {
        Topic { inner, shared: Arc::clone(alive.shared()), _alive: Arc::clone(alive) }
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

    /// One past the last record of `partition`.
    ///
    /// See [`Topic`] for an example.
    pub fn high_watermark(&self, partition: u32) -> Result<u64> {
        let log = self.partition_log(partition)?;
        log.catch_up_fully()?; // a read-only broker's: as the files are now
        Ok(log.high_watermark())
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
        let log = self.partition_log(partition)?;
        log.catch_up_fully()?; // a read-only broker's: as the files are now
        Ok(log.log_start())
    }

    /// Records, bytes, segments and offsets per partition.
    ///
    /// See [`TopicStats`] for an example.
    pub fn stats(&self) -> TopicStats {
        // A read-only broker's: as the files are now, as far as they can
        // be read (a failure shows in the next receive).
        let _ = self.inner.catch_up();
        self.inner.stats()
    }

    /// Applies the topic's retention limits now (the background thread also
    /// does, every 250 ms): deletes the oldest sealed segments outside
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
        self.shared.check_writable("enforce retention")?;
        let now = crate::storage::record::now_millis();
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
    /// See [`CompactionReport`](CompactionReport) for an example.
    pub fn compact(&self) -> Result<CompactionReport> {
        if let Some(e) = self.unusable() {
            return Err(e);
        }
        self.shared.check_writable("compact")?;
        let now = crate::storage::record::now_millis();
        let mut report = CompactionReport::default();
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
        self.inner.catch_up()?;
        crate::topic::verify::verify_topic(&self.inner)
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
        self.shared.check_writable("flush")?;
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
