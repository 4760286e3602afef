//! [`Producer`]: appends records to a topic.

use std::sync::atomic::{AtomicU32, Ordering};

use std::time::{Duration, Instant};

use crate::broker::topic::Topic;
use crate::client::produce::backpressure::Wait;
use crate::client::produce::partitioner;
use crate::client::produce::send_error::{SendTimeoutError, TrySendError};
use crate::error::{Error, Result};
use crate::storage::frame;
use crate::storage::partition_log::state::PartitionLog;
use crate::storage::record::{Record, RecordId};

/// Appends records to a topic's partitions.
///
/// `Producer` is `Clone + Send + Sync`: share one between threads or give
/// each its own clone. Each record's partition is chosen in this order:
///
/// 1. the record's explicit [`partition`](Record::partition);
/// 2. else, if it has a key, Kafka's murmur2 hash of the key modulo the
///    partition count — stable across restarts and machines;
/// 3. else round-robin (per producer) for [`send`](Producer::send), and one
///    partition for a whole [`send_batch`](Producer::send_batch) (Kafka's
///    "sticky" partitioning), moving on at each batch.
///
/// When `send` returns `Ok`, the record is in the shared mapping: visible to
/// consumers at once and safe against the process crashing. [`flush`](Producer::flush)
/// (or the topic's [`FsyncPolicy`](crate::FsyncPolicy)) makes it safe against
/// the machine crashing.
///
/// # Examples
///
/// ```
/// use millpond::{Broker, Record, TopicConfig};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-producer-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let topic = broker.create_topic("orders", TopicConfig::default().partitions(4))?;
/// let producer = topic.producer();
///
/// let id = producer.send(Record::new("order-1").key("customer-7"))?;
/// let again = producer.send(Record::new("order-2").key("customer-7"))?;
/// assert_eq!(id.partition, again.partition); // same key, same partition
///
/// let threads: Vec<_> = (0..4).map(|t| {
///     let p = producer.clone();
///     std::thread::spawn(move || p.send(Record::new(format!("from thread {t}"))))
/// }).collect();
/// for t in threads { t.join().unwrap()?; }
/// producer.flush()?;
/// # drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Producer {
    topic: Topic,
    next_partition: AtomicU32,
}

impl Clone for Producer {
    fn clone(&self) -> Self {
        Producer::new(self.topic.clone())
    }
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").field("topic", &self.topic.name()).finish()
    }
}

impl Producer {
    pub(crate) fn new(topic: Topic) -> Producer {
        // Start each producer at a different partition so that many
        // producers' round-robin sends spread from the first record on.
        let start = topic.inner.producer_seq.fetch_add(1, Ordering::Relaxed);
        Producer { topic, next_partition: AtomicU32::new(start) }
    }

    /// The topic this producer writes to.
    ///
    /// ```
    /// use millpond::{Broker, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-ptopic-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let p = broker.create_topic("t", TopicConfig::default())?.producer();
    /// assert_eq!(p.topic().name(), "t");
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn topic(&self) -> &Topic {
        &self.topic
    }

    pub(crate) fn round_robin(&self) -> u32 {
        self.next_partition.fetch_add(1, Ordering::Relaxed) % self.topic.partitions()
    }

    /// The partition for `record`, with `fallback` for keyless records.
    pub(crate) fn choose(&self, record: &Record<'_>, fallback: impl FnOnce() -> u32) -> Result<u32> {
        let partitions = self.topic.partitions();
        match (record.partition, record.key.as_deref()) {
            (Some(p), _) if p < partitions => Ok(p),
            (Some(p), _) => {
                Err(Error::InvalidPartition { topic: self.topic.name().to_string(), partition: p, partitions })
            }
            (None, Some(key)) => Ok(partitioner::partition_for_key(key, partitions)),
            (None, None) => Ok(fallback()),
        }
    }

    /// Checks a record against the format and the topic's size limit,
    /// returning its encoded size.
    pub(crate) fn check(&self, record: &Record<'_>) -> Result<usize> {
        frame::check_record_shape(record)
            .map_err(|reason| Error::InvalidRecord { topic: self.topic.name().to_string(), reason })?;
        let size = frame::record_len(record);
        let max = self.topic.config().max_record_bytes as usize;
        if size > max {
            return Err(Error::RecordTooLarge { topic: self.topic.name().to_string(), size, max });
        }
        Ok(size)
    }

    /// Appends one record, returning its partition and offset.
    ///
    /// If the topic bounds its backlog ([`Backlog`](crate::Backlog)) and the
    /// partition's is at the limit, this blocks until a consumer group
    /// commits (see [`try_send`](Producer::try_send) and
    /// [`send_timeout`](Producer::send_timeout) for the alternatives).
    ///
    /// Errors: [`Error::RecordTooLarge`], [`Error::InvalidPartition`],
    /// [`Error::DiskFull`] (nothing partial becomes visible),
    /// [`Error::Poisoned`], [`Error::Closed`], [`Error::TopicDeleted`].
    ///
    /// ```
    /// use millpond::{Broker, Error, Record, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-send-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default().max_record_bytes(64))?;
    /// let p = topic.producer();
    /// assert_eq!(p.send(Record::new("small"))?.offset, 0);
    /// let err = p.send(Record::new(vec![0u8; 100])).unwrap_err();
    /// // 100 bytes of value, 3 of its and the missing key's lengths and the header
    /// // count, 20 for the length, offset and timestamp fields at their widest.
    /// assert!(matches!(err, Error::RecordTooLarge { size: 123, max: 64, .. }));
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send(&self, record: Record<'_>) -> Result<RecordId> {
        let size = self.check(&record)?;
        let partition = self.choose(&record, || self.round_robin())?;
        self.topic.wait_for_space(partition, Wait::Forever)?;
        self.append_one(&record, partition, size)
    }

    pub(crate) fn append_one(&self, record: &Record<'_>, partition: u32, size: usize) -> Result<RecordId> {
        let log = self.topic.partition_log(partition)?;
        let offset = log.append_one(record, size)?;
        Ok(RecordId { partition, offset })
    }

    /// Like [`send`](Producer::send), but never waits: if the partition's
    /// backlog is at the topic's [`Backlog`](crate::Backlog) limit, the
    /// record comes back in [`TrySendError::Full`].
    ///
    /// See [`TrySendError`] for an example.
    pub fn try_send<'a>(&self, record: Record<'a>) -> std::result::Result<RecordId, TrySendError<'a>> {
        let size = self.check(&record).map_err(TrySendError::Failed)?;
        let partition = self.choose(&record, || self.round_robin()).map_err(TrySendError::Failed)?;
        match self.topic.wait_for_space(partition, Wait::No) {
            Ok(true) => self.append_one(&record, partition, size).map_err(TrySendError::Failed),
            Ok(false) => Err(TrySendError::Full(record)),
            Err(e) => Err(TrySendError::Failed(e)),
        }
    }

    /// Like [`send`](Producer::send), but waits at most `timeout` for room
    /// under the topic's [`Backlog`](crate::Backlog) limit; on timeout the
    /// record comes back in [`SendTimeoutError::Timeout`].
    ///
    /// See [`SendTimeoutError`] for an example.
    pub fn send_timeout<'a>(
        &self,
        record: Record<'a>,
        timeout: Duration,
    ) -> std::result::Result<RecordId, SendTimeoutError<'a>> {
        let wait = Instant::now().checked_add(timeout).map_or(Wait::Forever, Wait::Until);
        let size = self.check(&record).map_err(SendTimeoutError::Failed)?;
        let partition = self.choose(&record, || self.round_robin()).map_err(SendTimeoutError::Failed)?;
        match self.topic.wait_for_space(partition, wait) {
            Ok(true) => self.append_one(&record, partition, size).map_err(SendTimeoutError::Failed),
            Ok(false) => Err(SendTimeoutError::Timeout(record)),
            Err(e) => Err(SendTimeoutError::Failed(e)),
        }
    }

    /// Appends many records with one lock acquisition and one frame (one
    /// header, one CRC) per partition they go to. Returns their ids in input
    /// order.
    ///
    /// Records for one partition are written as one frame, unless together
    /// they are larger than a whole segment, in which case they are split at
    /// segment boundaries. The batch is all or nothing with respect to bad
    /// input and to running out of space: records are checked, and every
    /// segment the batch needs in every partition is created, before anything
    /// is written.
    ///
    /// ```
    /// use millpond::{Broker, Record, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-batch-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// let ids = topic.producer().send_batch((0..1000).map(|i| Record::new(format!("event {i}"))))?;
    /// assert_eq!(ids.len(), 1000);
    /// assert_eq!(ids[999].offset, 999);
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_batch<'a>(&self, records: impl IntoIterator<Item = Record<'a>>) -> Result<Vec<RecordId>> {
        let records: Vec<Record<'a>> = records.into_iter().collect();
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let sticky = self.round_robin();
        let mut sizes = Vec::with_capacity(records.len());
        let mut parts = Vec::with_capacity(records.len());
        for r in &records {
            sizes.push(self.check(r)?);
            parts.push(self.choose(r, || sticky)?);
        }
        let mut ids = vec![RecordId { partition: 0, offset: 0 }; records.len()];
        if parts.iter().all(|&p| p == parts[0]) {
            self.topic.wait_for_space(parts[0], Wait::Forever)?;
            let refs: Vec<&Record<'a>> = records.iter().collect();
            let first = self.topic.partition_log(parts[0])?.append(&refs, &sizes)?;
            for (i, id) in ids.iter_mut().enumerate() {
                *id = RecordId { partition: parts[0], offset: first + i as u64 };
            }
            return Ok(ids);
        }
        let mut order: Vec<usize> = (0..records.len()).collect();
        order.sort_by_key(|&i| parts[i]); // stable: keeps each partition's input order
        let groups: Vec<&[usize]> = order.chunk_by(|&a, &b| parts[a] == parts[b]).collect();
        for group in &groups {
            self.topic.wait_for_space(parts[group[0]], Wait::Forever)?;
        }
        // All partitions at once: nothing is stored unless everything can be.
        let mut work = Vec::with_capacity(groups.len());
        for group in &groups {
            let log = self.topic.partition_log(parts[group[0]])?;
            let refs: Vec<&Record<'a>> = group.iter().map(|&i| &records[i]).collect();
            let group_sizes: Vec<usize> = group.iter().map(|&i| sizes[i]).collect();
            work.push((&**log, refs, group_sizes));
        }
        let firsts = PartitionLog::append_all(&work)?;
        for (group, first) in groups.iter().zip(firsts) {
            let partition = parts[group[0]];
            for (k, &i) in group.iter().enumerate() {
                ids[i] = RecordId { partition, offset: first + k as u64 };
            }
        }
        Ok(ids)
    }

    /// A durability barrier: everything this topic's producers appended
    /// before the call is msynced and fsynced when it returns `Ok`. A failed
    /// sync poisons the partition ([`Error::Poisoned`] from then on).
    ///
    /// ```
    /// use millpond::{Broker, Record, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-pflush-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let p = broker.create_topic("t", TopicConfig::default())?.producer();
    /// p.send(Record::new("must survive a power cut"))?;
    /// p.flush()?;
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn flush(&self) -> Result<()> {
        self.topic.flush()
    }
}

impl Topic {
    /// A new producer for this topic.
    ///
    /// See [`Producer`] for an example.
    pub fn producer(&self) -> Producer {
        Producer::new(self.clone())
    }
}
