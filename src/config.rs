//! Configuration: [`BrokerConfig`], [`TopicConfig`], [`FsyncPolicy`],
//! [`StartFrom`], [`WaitStrategy`] and [`RecoveryMode`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// When a partition's written bytes are forced to stable storage (msync + fsync).
///
/// Every policy survives a crash of the *process* (`kill -9`): once `send`
/// returns, the record is in the kernel's page cache through the shared
/// mapping. The policies differ in what survives a crash of the *machine*
/// (power loss, kernel panic). [`Producer::flush`](crate::Producer::flush) is a
/// barrier under every policy.
///
/// | policy | survives process crash | survives machine crash |
/// | --- | --- | --- |
/// | `Never` (default) | everything acknowledged | what was flushed, plus what the kernel wrote back on its own |
/// | `EveryN(n)` | everything acknowledged | all but at most the last `n - 1` records per partition |
/// | `Interval(d)` | everything acknowledged | all but at most the last `d` of writes |
/// | `Always` | everything acknowledged | everything acknowledged |
///
/// # Examples
///
/// ```
/// use millpond::{FsyncPolicy, TopicConfig};
/// use std::time::Duration;
/// let durable = TopicConfig::default().fsync(FsyncPolicy::Always);
/// let batched = TopicConfig::default().fsync(FsyncPolicy::Interval(Duration::from_millis(50)));
/// assert_ne!(durable, batched);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub enum FsyncPolicy {
    /// Never sync on the write path; only `flush()` (and sealing during
    /// `flush()`) forces data to disk.
    #[default]
    Never,
    /// Sync after every `n` records appended to a partition.
    EveryN(u64),
    /// Sync a partition's new bytes at least every `d` (by a background thread).
    Interval(Duration),
    /// Sync before `send` returns.
    Always,
}

/// What happens to a topic's old records besides retention.
///
/// # Examples
///
/// ```
/// use millpond::{CleanupPolicy, TopicConfig};
/// let accounts = TopicConfig::default().cleanup(CleanupPolicy::Compact);
/// assert_eq!(accounts.cleanup_policy(), CleanupPolicy::Compact);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub enum CleanupPolicy {
    /// Keep every record until retention deletes its segment (default).
    #[default]
    Delete,
    /// Log compaction: in sealed segments, keep only the latest record of
    /// each key; a tombstone (key, no value) is itself removed once it is
    /// older than `tombstone_retention`. Offsets of kept records never
    /// change; consumers skip the gaps. Records without a key are kept.
    Compact,
}

/// A bound on how far producers may run ahead of consumer groups.
///
/// The backlog of a partition is the distance from the slowest active
/// consumer group's committed offset (a group with at least one member; its
/// log start if it has committed nothing) to the high watermark. When it
/// reaches the limit, [`Producer::send`](crate::Producer::send) blocks until
/// a group commits, [`Producer::send_timeout`](crate::Producer::send_timeout)
/// gives up after its timeout, and [`Producer::try_send`](crate::Producer::try_send)
/// returns `Full` at once. With no active group nothing is held back. The
/// bound is soft: it is checked before each send, so concurrent producers
/// may each add one more record, and a `send_batch` admitted under the limit
/// may exceed it by its own size.
///
/// # Examples
///
/// ```
/// use millpond::{Backlog, TopicConfig};
/// let bounded = TopicConfig::default().max_backlog(Backlog::Records(10_000));
/// assert_eq!(bounded.backlog_limit(), Backlog::Records(10_000));
/// assert_eq!(TopicConfig::default().backlog_limit(), Backlog::Unbounded);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub enum Backlog {
    /// No bound: the disk is the buffer (default).
    #[default]
    Unbounded,
    /// At most this many records per partition.
    Records(u64),
    /// At most about this many bytes per partition (measured from the index
    /// entry at or before the committed offset).
    Bytes(u64),
}

/// Settings of one topic, persisted (checksummed) in its `topic.meta`.
///
/// Re-creating an existing topic with a different `TopicConfig` is an error
/// ([`Error::TopicConfigMismatch`]); re-creating it with the same one returns
/// the existing topic.
///
/// | setting | default | meaning |
/// | --- | --- | --- |
/// | `partitions` | 1 | number of partitions (1..=10,000) |
/// | `segment_bytes` | 64 MiB | size a segment file is preallocated to; a batch larger than a segment is split across segments |
/// | `max_record_bytes` | 1 MiB | largest encoded record (key + value + headers + 26 bytes); plus 40 bytes it must fit in `segment_bytes` |
/// | `index_interval_bytes` | 4 KiB | bytes between entries of the sparse offset index |
/// | `fsync` | [`FsyncPolicy::Never`] | durability against machine crashes |
/// | `retention_bytes` | none | per partition: delete the oldest sealed segments while the rest still hold at least this many bytes |
/// | `retention` | none | delete the oldest sealed segments whose newest record timestamp is older than this |
/// | `cleanup` | [`CleanupPolicy::Delete`] | [`CleanupPolicy::Compact`] keeps the latest record per key in sealed segments |
/// | `max_backlog` | [`Backlog::Unbounded`] | hold producers back when consumer groups fall this far behind |
/// | `tombstone_retention` | 24 h | how long a compacted topic keeps a tombstone (by the timestamp of its segment's newest record) |
///
/// Retention deletes whole sealed segments, never the active one, so a
/// partition keeps at least its active segment; it runs in the broker's
/// background thread (about every second, and soon after each roll) and on
/// [`Topic::enforce_retention`](crate::Topic::enforce_retention). Offsets are
/// never reused: the log start moves forward. A reader still reading a deleted
/// segment finishes it safely (the mapping outlives the file).
///
/// # Examples
///
/// ```
/// use millpond::TopicConfig;
/// let cfg = TopicConfig::default().partitions(4).segment_bytes(8 << 20);
/// assert_eq!(cfg.partition_count(), 4);
/// assert_eq!(cfg.segment_size(), 8 << 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfig {
    pub(crate) partitions: u32,
    pub(crate) segment_bytes: u64,
    pub(crate) max_record_bytes: u32,
    pub(crate) index_interval_bytes: u32,
    pub(crate) fsync: FsyncPolicy,
    pub(crate) retention_bytes: Option<u64>,
    pub(crate) retention: Option<Duration>,
    pub(crate) cleanup: CleanupPolicy,
    pub(crate) tombstone_retention: Duration,
    pub(crate) max_backlog: Backlog,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            partitions: 1,
            segment_bytes: 64 << 20,
            max_record_bytes: 1 << 20,
            index_interval_bytes: 4096,
            fsync: FsyncPolicy::Never,
            retention_bytes: None,
            retention: None,
            cleanup: CleanupPolicy::Delete,
            tombstone_retention: Duration::from_secs(24 * 3600),
            max_backlog: Backlog::Unbounded,
        }
    }
}

/// Largest number of partitions a topic may have.
pub(crate) const MAX_PARTITIONS: u32 = 10_000;
/// Smallest segment size accepted.
pub(crate) const MIN_SEGMENT_BYTES: u64 = 4096;
/// Largest segment size accepted (positions inside a segment are `u32`).
pub(crate) const MAX_SEGMENT_BYTES: u64 = 1 << 31;

impl TopicConfig {
    /// Sets the number of partitions.
    ///
    /// ```
    /// let cfg = millpond::TopicConfig::default().partitions(8);
    /// assert_eq!(cfg.partition_count(), 8);
    /// ```
    pub fn partitions(mut self, n: u32) -> Self {
        self.partitions = n;
        self
    }

    /// Sets the size segment files are preallocated to (4 KiB ..= 2 GiB).
    ///
    /// ```
    /// let cfg = millpond::TopicConfig::default().segment_bytes(1 << 20);
    /// assert_eq!(cfg.segment_size(), 1 << 20);
    /// ```
    pub fn segment_bytes(mut self, n: u64) -> Self {
        self.segment_bytes = n;
        self
    }

    /// Sets the largest accepted encoded record size.
    ///
    /// ```
    /// let cfg = millpond::TopicConfig::default().max_record_bytes(4096);
    /// assert_eq!(cfg.max_record_size(), 4096);
    /// ```
    pub fn max_record_bytes(mut self, n: u32) -> Self {
        self.max_record_bytes = n;
        self
    }

    /// Sets the number of bytes between sparse index entries.
    ///
    /// ```
    /// let cfg = millpond::TopicConfig::default().index_interval_bytes(1024);
    /// assert_eq!(cfg.index_interval(), 1024);
    /// ```
    pub fn index_interval_bytes(mut self, n: u32) -> Self {
        self.index_interval_bytes = n;
        self
    }

    /// Sets the [`FsyncPolicy`].
    ///
    /// ```
    /// use millpond::{FsyncPolicy, TopicConfig};
    /// let cfg = TopicConfig::default().fsync(FsyncPolicy::EveryN(100));
    /// assert_eq!(cfg.fsync_policy(), FsyncPolicy::EveryN(100));
    /// ```
    pub fn fsync(mut self, policy: FsyncPolicy) -> Self {
        self.fsync = policy;
        self
    }

    /// Keeps each partition to about `bytes` by deleting its oldest sealed
    /// segments (see the table above).
    ///
    /// ```
    /// let cfg = millpond::TopicConfig::default().retention_bytes(1 << 30);
    /// assert_eq!(cfg.retention_size(), Some(1 << 30));
    /// ```
    pub fn retention_bytes(mut self, bytes: u64) -> Self {
        self.retention_bytes = Some(bytes);
        self
    }

    /// Deletes sealed segments whose newest record is older than `age`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let cfg = millpond::TopicConfig::default().retention(Duration::from_secs(7 * 24 * 3600));
    /// assert_eq!(cfg.retention_age(), Some(Duration::from_secs(604_800)));
    /// ```
    pub fn retention(mut self, age: Duration) -> Self {
        self.retention = Some(age);
        self
    }

    /// Sets the [`CleanupPolicy`].
    ///
    /// ```
    /// use millpond::{CleanupPolicy, TopicConfig};
    /// let cfg = TopicConfig::default().cleanup(CleanupPolicy::Compact);
    /// assert_eq!(cfg.cleanup_policy(), CleanupPolicy::Compact);
    /// ```
    pub fn cleanup(mut self, policy: CleanupPolicy) -> Self {
        self.cleanup = policy;
        self
    }

    /// Sets how long compaction keeps tombstones (Kafka's `delete.retention.ms`).
    ///
    /// ```
    /// use std::time::Duration;
    /// let cfg = millpond::TopicConfig::default().tombstone_retention(Duration::from_secs(60));
    /// assert_eq!(cfg.tombstone_retention_age(), Duration::from_secs(60));
    /// ```
    pub fn tombstone_retention(mut self, age: Duration) -> Self {
        self.tombstone_retention = age;
        self
    }

    /// Bounds the backlog between producers and consumer groups (see [`Backlog`]).
    ///
    /// ```
    /// use millpond::{Backlog, TopicConfig};
    /// let cfg = TopicConfig::default().max_backlog(Backlog::Bytes(64 << 20));
    /// assert_eq!(cfg.backlog_limit(), Backlog::Bytes(64 << 20));
    /// ```
    pub fn max_backlog(mut self, limit: Backlog) -> Self {
        self.max_backlog = limit;
        self
    }

    /// The backlog bound.
    ///
    /// See [`Backlog`] for an example.
    pub fn backlog_limit(&self) -> Backlog {
        self.max_backlog
    }

    /// The [`CleanupPolicy`].
    ///
    /// ```
    /// use millpond::{CleanupPolicy, TopicConfig};
    /// assert_eq!(TopicConfig::default().cleanup_policy(), CleanupPolicy::Delete);
    /// ```
    pub fn cleanup_policy(&self) -> CleanupPolicy {
        self.cleanup
    }

    /// How long compaction keeps tombstones.
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(millpond::TopicConfig::default().tombstone_retention_age(), Duration::from_secs(86_400));
    /// ```
    pub fn tombstone_retention_age(&self) -> Duration {
        self.tombstone_retention
    }

    /// The size-based retention limit per partition, if any.
    ///
    /// ```
    /// assert_eq!(millpond::TopicConfig::default().retention_size(), None);
    /// ```
    pub fn retention_size(&self) -> Option<u64> {
        self.retention_bytes
    }

    /// The age-based retention limit, if any.
    ///
    /// ```
    /// assert_eq!(millpond::TopicConfig::default().retention_age(), None);
    /// ```
    pub fn retention_age(&self) -> Option<Duration> {
        self.retention
    }

    /// The number of partitions.
    ///
    /// ```
    /// assert_eq!(millpond::TopicConfig::default().partition_count(), 1);
    /// ```
    pub fn partition_count(&self) -> u32 {
        self.partitions
    }

    /// The segment preallocation size in bytes.
    ///
    /// ```
    /// assert_eq!(millpond::TopicConfig::default().segment_size(), 64 << 20);
    /// ```
    pub fn segment_size(&self) -> u64 {
        self.segment_bytes
    }

    /// The largest accepted encoded record size in bytes.
    ///
    /// ```
    /// assert_eq!(millpond::TopicConfig::default().max_record_size(), 1 << 20);
    /// ```
    pub fn max_record_size(&self) -> u32 {
        self.max_record_bytes
    }

    /// Bytes between sparse index entries.
    ///
    /// ```
    /// assert_eq!(millpond::TopicConfig::default().index_interval(), 4096);
    /// ```
    pub fn index_interval(&self) -> u32 {
        self.index_interval_bytes
    }

    /// The [`FsyncPolicy`].
    ///
    /// ```
    /// use millpond::{FsyncPolicy, TopicConfig};
    /// assert_eq!(TopicConfig::default().fsync_policy(), FsyncPolicy::Never);
    /// ```
    pub fn fsync_policy(&self) -> FsyncPolicy {
        self.fsync
    }

    /// Checks every setting is in range.
    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::InvalidConfig { reason });
        if self.partitions == 0 || self.partitions > MAX_PARTITIONS {
            return bad(format!("partitions must be 1..={MAX_PARTITIONS}, got {}", self.partitions));
        }
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&self.segment_bytes) {
            return bad(format!(
                "segment_bytes must be {MIN_SEGMENT_BYTES}..={MAX_SEGMENT_BYTES}, got {}",
                self.segment_bytes
            ));
        }
        let max_frame = crate::log::frame::max_single_record_frame(self.max_record_bytes as usize);
        if self.max_record_bytes == 0 || max_frame as u64 > self.segment_bytes {
            return bad(format!(
                "max_record_bytes must be at least 1 and, plus the {}-byte frame header, fit in segment_bytes ({}); got {} (lower max_record_bytes along with segment_bytes)",
                crate::log::frame::HEADER_LEN,
                self.segment_bytes,
                self.max_record_bytes
            ));
        }
        if self.index_interval_bytes == 0 {
            return bad("index_interval_bytes must be at least 1".into());
        }
        if matches!(self.max_backlog, Backlog::Records(0) | Backlog::Bytes(0)) {
            return bad("max_backlog must be at least 1".into());
        }
        if self.retention.is_some_and(|d| d.is_zero()) {
            return bad("retention must be non-zero".into());
        }
        match self.fsync {
            FsyncPolicy::EveryN(0) => bad("FsyncPolicy::EveryN(0): n must be at least 1".into()),
            FsyncPolicy::Interval(d) if d.is_zero() => {
                bad("FsyncPolicy::Interval: the interval must be non-zero".into())
            }
            _ => Ok(()),
        }
    }

    /// Describes the first setting that differs from `other`, if any.
    pub(crate) fn difference(&self, other: &TopicConfig) -> Option<String> {
        let mut diffs = Vec::new();
        if self.partitions != other.partitions {
            diffs.push(format!("partitions {} vs {}", self.partitions, other.partitions));
        }
        if self.segment_bytes != other.segment_bytes {
            diffs.push(format!("segment_bytes {} vs {}", self.segment_bytes, other.segment_bytes));
        }
        if self.max_record_bytes != other.max_record_bytes {
            diffs.push(format!("max_record_bytes {} vs {}", self.max_record_bytes, other.max_record_bytes));
        }
        if self.index_interval_bytes != other.index_interval_bytes {
            diffs.push(format!("index_interval_bytes {} vs {}", self.index_interval_bytes, other.index_interval_bytes));
        }
        if self.retention_bytes != other.retention_bytes {
            diffs.push(format!("retention_bytes {:?} vs {:?}", self.retention_bytes, other.retention_bytes));
        }
        if self.retention != other.retention {
            diffs.push(format!("retention {:?} vs {:?}", self.retention, other.retention));
        }
        if self.max_backlog != other.max_backlog {
            diffs.push(format!("max_backlog {:?} vs {:?}", self.max_backlog, other.max_backlog));
        }
        if self.cleanup != other.cleanup {
            diffs.push(format!("cleanup {:?} vs {:?}", self.cleanup, other.cleanup));
        }
        if self.tombstone_retention != other.tombstone_retention {
            diffs
                .push(format!("tombstone_retention {:?} vs {:?}", self.tombstone_retention, other.tombstone_retention));
        }
        if self.fsync != other.fsync {
            diffs.push(format!("fsync {:?} vs {:?}", self.fsync, other.fsync));
        }
        if diffs.is_empty() { None } else { Some(format!("existing vs requested: {}", diffs.join(", "))) }
    }
}

/// What recovery does when the active segment ends in a torn or corrupt frame.
///
/// # Examples
///
/// ```
/// use millpond::{BrokerConfig, RecoveryMode};
/// let strict = BrokerConfig::default().recovery(RecoveryMode::FailOnCorruptTail);
/// # let _ = strict;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RecoveryMode {
    /// Truncate the active segment at the first bad frame, zero what follows and
    /// report what was dropped in [`Broker::recovery_report`](crate::Broker::recovery_report).
    /// A process crash can only tear the last, unacknowledged write, so this is
    /// the default.
    #[default]
    TruncateCorruptTail,
    /// Refuse to open ([`Error::Corrupt`]) rather than drop anything, leaving
    /// the files untouched for inspection.
    FailOnCorruptTail,
}

/// Settings of a [`Broker`](crate::Broker) that are not stored on disk.
///
/// # Examples
///
/// ```
/// use millpond::{Broker, BrokerConfig, RecoveryMode};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-brokercfg-{}", std::process::id()));
/// let broker = Broker::open_with(&dir, BrokerConfig::default().recovery(RecoveryMode::TruncateCorruptTail))?;
/// # drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct BrokerConfig {
    pub(crate) recovery: RecoveryMode,
    /// 0: no pre-fault thread.
    pub(crate) prefault_bytes: u32,
    /// Refuse to open when a topic is damaged, instead of listing it.
    pub(crate) fail_on_damaged_topic: bool,
}

impl BrokerConfig {
    /// Sets how many bytes ahead of each partition's writer a background
    /// thread prepares the active segment's pages; `0` (the default) runs
    /// no such thread. 4 MiB is a good value where it helps; other values
    /// are clamped to 64 KiB ..= 64 MiB.
    ///
    /// The first write to a fresh page of a memory-mapped file costs a
    /// page fault (the kernel allocates and zeroes the page): about a third
    /// of a small `send` on our 2-vCPU test VM. With pre-faulting, a broker
    /// thread faults the next pages in with `madvise(MADV_POPULATE_WRITE)`
    /// (Linux 5.14 or later; elsewhere no thread is started) while the producer
    /// is still writing earlier ones. No byte is changed; only partitions
    /// being written are prepared, at most this many bytes beyond their
    /// last write, and the thread runs only on otherwise idle cores
    /// (`SCHED_IDLE`).
    ///
    /// It is off by default because it trades tail latency for throughput:
    /// on two cores it raised single-producer append throughput by about
    /// 1.2× (median of interleaved runs) but also the p99 produce-to-consume
    /// latency at 100k records/s from tens of microseconds to about a
    /// millisecond. Turn it on for bulk ingestion on machines with spare
    /// cores; `cargo run --release --example bench` prints both rates.
    ///
    /// ```
    /// use millpond::{Broker, BrokerConfig, Record, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-prefault-{}", std::process::id()));
    /// // Bulk ingestion on a machine with idle cores: prepare 4 MiB ahead.
    /// let broker = Broker::open_with(&dir, BrokerConfig::default().prefault_bytes(4 << 20))?;
    /// let topic = broker.create_topic("ingest", TopicConfig::default())?;
    /// let producer = topic.producer();
    /// for i in 0..10_000u32 {
    ///     producer.send(Record::new(i.to_le_bytes().to_vec()))?;
    /// }
    /// // Pages are prepared, never changed: what was written reads back.
    /// assert_eq!(topic.consumer(StartFrom::Earliest)?.try_iter().count(), 10_000);
    /// # drop((producer, topic, broker)); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn prefault_bytes(mut self, bytes: u32) -> Self {
        self.prefault_bytes = bytes;
        self
    }

    /// Sets the [`RecoveryMode`] used when opening partitions.
    ///
    /// ```
    /// use millpond::{BrokerConfig, RecoveryMode};
    /// let cfg = BrokerConfig::default().recovery(RecoveryMode::FailOnCorruptTail);
    /// # let _ = cfg;
    /// ```
    pub fn recovery(mut self, mode: RecoveryMode) -> Self {
        self.recovery = mode;
        self
    }

    /// Whether [`Broker::open_with`](crate::Broker::open_with) refuses to
    /// open the directory when one topic cannot be opened (a damaged
    /// `topic.meta`, a stray directory, a symlink), failing with that
    /// topic's error. The default, `false`, opens every healthy topic and
    /// lists the others in [`Broker::damaged_topics`](crate::Broker::damaged_topics);
    /// `true` suits tools that must not run on a partial directory.
    ///
    /// ```
    /// use millpond::{Broker, BrokerConfig, Error, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-faildamaged-{}", std::process::id()));
    /// # drop(Broker::open(&dir)?.create_topic("t", TopicConfig::default())?);
    /// std::fs::write(dir.join("topics/t/topic.meta"), b"garbage")?;
    /// let strict = BrokerConfig::default().fail_on_damaged_topic(true);
    /// assert!(matches!(Broker::open_with(&dir, strict), Err(Error::CorruptMetadata { .. })));
    /// assert_eq!(Broker::open(&dir)?.damaged_topics().len(), 1); // the default opens the rest
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fail_on_damaged_topic(mut self, fail: bool) -> Self {
        self.fail_on_damaged_topic = fail;
        self
    }
}

/// Where a new [`Consumer`](crate::Consumer) starts reading each partition.
///
/// # Examples
///
/// ```
/// use millpond::StartFrom;
/// let from_start = StartFrom::Earliest;
/// let only_new = StartFrom::Latest;
/// let exact = StartFrom::Offset(42);
/// let since = StartFrom::Timestamp(1_700_000_000_000);
/// # let _ = (from_start, only_new, exact, since);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartFrom {
    /// The earliest offset still stored in each partition.
    Earliest,
    /// The high watermark: only records appended from now on.
    Latest,
    /// This offset in every partition; an offset outside
    /// `log start ..= high watermark` is [`Error::OffsetOutOfRange`].
    Offset(u64),
    /// The first record whose timestamp (milliseconds since the Unix epoch) is
    /// at least this, in each partition; the high watermark if there is none.
    Timestamp(i64),
}

/// How a blocked consumer waits for new records.
///
/// Like the LMAX Disruptor's wait strategies: trade CPU for latency.
///
/// # Examples
///
/// ```
/// use millpond::WaitStrategy;
/// assert_eq!(WaitStrategy::default(), WaitStrategy::SpinThenPark);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WaitStrategy {
    /// Spin briefly, then park the thread until a producer wakes it (default;
    /// uses no CPU while idle).
    #[default]
    SpinThenPark,
    /// Spin, then `thread::yield_now()` in a loop: lower latency, burns a core
    /// while idle, still gives the CPU to other runnable threads.
    Yield,
    /// Busy-spin without ever yielding: lowest latency, burns a core.
    BusySpin,
}
