//! [`TopicConfig`] and [`Backlog`]: the settings of one topic, persisted in
//! its `topic.meta`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::storage::partition_log::settings::LogSettings;
use crate::storage::policy::{CleanupPolicy, FsyncPolicy};
use crate::storage::segment::MAX_SEGMENT_BYTES;

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
/// assert_eq!(bounded.get_max_backlog(), Backlog::Records(10_000));
/// assert_eq!(TopicConfig::default().get_max_backlog(), Backlog::Unbounded);
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
/// | `max_record_bytes` | 1 MiB | largest encoded record (key + value + headers, their varint lengths, and 20 bytes for the record's length, offset and timestamp fields); plus 115 bytes (the segment header and the largest frame header) it must fit in `segment_bytes` |
/// | `index_interval_bytes` | 4 KiB | bytes between entries of the sparse offset index |
/// | `fsync` | [`FsyncPolicy::Never`] | durability against machine crashes |
/// | `retention_bytes` | none | per partition: delete the oldest sealed segments while the rest still hold at least this many bytes |
/// | `retention` | none | delete the oldest sealed segments whose newest record timestamp is older than this |
/// | `cleanup` | [`CleanupPolicy::Delete`] | [`CleanupPolicy::Compact`] keeps the latest record per key in sealed segments |
/// | `max_backlog` | [`Backlog::Unbounded`] | hold producers back when consumer groups fall this far behind |
/// | `tombstone_retention` | 24 h | how long a compacted topic keeps a tombstone (by the timestamp of its segment's newest record) |
///
/// Each setting has one name: its builder method (`partitions(4)`) and,
/// with `get_`, its getter (`get_partitions()`), as `std::process::Command`
/// does; [`BrokerConfig`](crate::BrokerConfig) follows the same rule.
///
/// Retention deletes whole sealed segments, never the active one, so a
/// partition keeps at least its active segment; it runs in the broker's
/// maintenance thread (every 250 ms, so also soon after each roll) and on
/// [`Topic::enforce_retention`](crate::Topic::enforce_retention). Offsets are
/// never reused: the log start moves forward. A reader still reading a deleted
/// segment finishes it safely (the mapping outlives the file).
///
/// # Examples
///
/// ```
/// use millpond::TopicConfig;
/// let cfg = TopicConfig::default().partitions(4).segment_bytes(8 << 20);
/// assert_eq!(cfg.get_partitions(), 4);
/// assert_eq!(cfg.get_segment_bytes(), 8 << 20);
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

impl TopicConfig {
    /// Sets the number of partitions.
    ///
    /// ```
    /// let cfg = millpond::TopicConfig::default().partitions(8);
    /// assert_eq!(cfg.get_partitions(), 8);
    /// ```
    pub fn partitions(mut self, n: u32) -> Self {
        self.partitions = n;
        self
    }

    /// Sets the size segment files are preallocated to (4 KiB ..= 2 GiB).
    ///
    /// ```
    /// let cfg = millpond::TopicConfig::default().segment_bytes(1 << 20);
    /// assert_eq!(cfg.get_segment_bytes(), 1 << 20);
    /// ```
    pub fn segment_bytes(mut self, n: u64) -> Self {
        self.segment_bytes = n;
        self
    }

    /// Sets the largest accepted encoded record size.
    ///
    /// ```
    /// let cfg = millpond::TopicConfig::default().max_record_bytes(4096);
    /// assert_eq!(cfg.get_max_record_bytes(), 4096);
    /// ```
    pub fn max_record_bytes(mut self, n: u32) -> Self {
        self.max_record_bytes = n;
        self
    }

    /// Sets the number of bytes between sparse index entries.
    ///
    /// ```
    /// let cfg = millpond::TopicConfig::default().index_interval_bytes(1024);
    /// assert_eq!(cfg.get_index_interval_bytes(), 1024);
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
    /// assert_eq!(cfg.get_fsync(), FsyncPolicy::EveryN(100));
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
    /// assert_eq!(cfg.get_retention_bytes(), Some(1 << 30));
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
    /// assert_eq!(cfg.get_retention(), Some(Duration::from_secs(604_800)));
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
    /// assert_eq!(cfg.get_cleanup(), CleanupPolicy::Compact);
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
    /// assert_eq!(cfg.get_tombstone_retention(), Duration::from_secs(60));
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
    /// assert_eq!(cfg.get_max_backlog(), Backlog::Bytes(64 << 20));
    /// ```
    pub fn max_backlog(mut self, limit: Backlog) -> Self {
        self.max_backlog = limit;
        self
    }

    /// The backlog bound.
    ///
    /// See [`Backlog`] for an example.
    pub fn get_max_backlog(&self) -> Backlog {
        self.max_backlog
    }

    /// The [`CleanupPolicy`].
    ///
    /// ```
    /// use millpond::{CleanupPolicy, TopicConfig};
    /// assert_eq!(TopicConfig::default().get_cleanup(), CleanupPolicy::Delete);
    /// ```
    pub fn get_cleanup(&self) -> CleanupPolicy {
        self.cleanup
    }

    /// How long compaction keeps tombstones.
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(millpond::TopicConfig::default().get_tombstone_retention(), Duration::from_secs(86_400));
    /// ```
    pub fn get_tombstone_retention(&self) -> Duration {
        self.tombstone_retention
    }

    /// The size-based retention limit per partition, if any.
    ///
    /// ```
    /// assert_eq!(millpond::TopicConfig::default().get_retention_bytes(), None);
    /// ```
    pub fn get_retention_bytes(&self) -> Option<u64> {
        self.retention_bytes
    }

    /// The age-based retention limit, if any.
    ///
    /// ```
    /// assert_eq!(millpond::TopicConfig::default().get_retention(), None);
    /// ```
    pub fn get_retention(&self) -> Option<Duration> {
        self.retention
    }

    /// The number of partitions.
    ///
    /// ```
    /// assert_eq!(millpond::TopicConfig::default().get_partitions(), 1);
    /// ```
    pub fn get_partitions(&self) -> u32 {
        self.partitions
    }

    /// The segment preallocation size in bytes.
    ///
    /// ```
    /// assert_eq!(millpond::TopicConfig::default().get_segment_bytes(), 64 << 20);
    /// ```
    pub fn get_segment_bytes(&self) -> u64 {
        self.segment_bytes
    }

    /// The largest accepted encoded record size in bytes.
    ///
    /// ```
    /// assert_eq!(millpond::TopicConfig::default().get_max_record_bytes(), 1 << 20);
    /// ```
    pub fn get_max_record_bytes(&self) -> u32 {
        self.max_record_bytes
    }

    /// Bytes between sparse index entries.
    ///
    /// ```
    /// assert_eq!(millpond::TopicConfig::default().get_index_interval_bytes(), 4096);
    /// ```
    pub fn get_index_interval_bytes(&self) -> u32 {
        self.index_interval_bytes
    }

    /// The [`FsyncPolicy`].
    ///
    /// ```
    /// use millpond::{FsyncPolicy, TopicConfig};
    /// assert_eq!(TopicConfig::default().get_fsync(), FsyncPolicy::Never);
    /// ```
    pub fn get_fsync(&self) -> FsyncPolicy {
        self.fsync
    }

    /// Renamed [`get_max_backlog`](Self::get_max_backlog) (one rule for every getter: the
    /// setting's builder name with `get_`); see it for an example.
    #[deprecated(since = "0.2.0", note = "renamed `get_max_backlog`")]
    pub fn backlog_limit(&self) -> Backlog {
        self.get_max_backlog()
    }

    /// Renamed [`get_cleanup`](Self::get_cleanup) (one rule for every getter: the
    /// setting's builder name with `get_`); see it for an example.
    #[deprecated(since = "0.2.0", note = "renamed `get_cleanup`")]
    pub fn cleanup_policy(&self) -> CleanupPolicy {
        self.get_cleanup()
    }

    /// Renamed [`get_tombstone_retention`](Self::get_tombstone_retention) (one rule for every getter: the
    /// setting's builder name with `get_`); see it for an example.
    #[deprecated(since = "0.2.0", note = "renamed `get_tombstone_retention`")]
    pub fn tombstone_retention_age(&self) -> Duration {
        self.get_tombstone_retention()
    }

    /// Renamed [`get_retention_bytes`](Self::get_retention_bytes) (one rule for every getter: the
    /// setting's builder name with `get_`); see it for an example.
    #[deprecated(since = "0.2.0", note = "renamed `get_retention_bytes`")]
    pub fn retention_size(&self) -> Option<u64> {
        self.get_retention_bytes()
    }

    /// Renamed [`get_retention`](Self::get_retention) (one rule for every getter: the
    /// setting's builder name with `get_`); see it for an example.
    #[deprecated(since = "0.2.0", note = "renamed `get_retention`")]
    pub fn retention_age(&self) -> Option<Duration> {
        self.get_retention()
    }

    /// Renamed [`get_partitions`](Self::get_partitions) (one rule for every getter: the
    /// setting's builder name with `get_`); see it for an example.
    #[deprecated(since = "0.2.0", note = "renamed `get_partitions`")]
    pub fn partition_count(&self) -> u32 {
        self.get_partitions()
    }

    /// Renamed [`get_segment_bytes`](Self::get_segment_bytes) (one rule for every getter: the
    /// setting's builder name with `get_`); see it for an example.
    #[deprecated(since = "0.2.0", note = "renamed `get_segment_bytes`")]
    pub fn segment_size(&self) -> u64 {
        self.get_segment_bytes()
    }

    /// Renamed [`get_max_record_bytes`](Self::get_max_record_bytes) (one rule for every getter: the
    /// setting's builder name with `get_`); see it for an example.
    #[deprecated(since = "0.2.0", note = "renamed `get_max_record_bytes`")]
    pub fn max_record_size(&self) -> u32 {
        self.get_max_record_bytes()
    }

    /// Renamed [`get_index_interval_bytes`](Self::get_index_interval_bytes) (one rule for every getter: the
    /// setting's builder name with `get_`); see it for an example.
    #[deprecated(since = "0.2.0", note = "renamed `get_index_interval_bytes`")]
    pub fn index_interval(&self) -> u32 {
        self.get_index_interval_bytes()
    }

    /// Renamed [`get_fsync`](Self::get_fsync) (one rule for every getter: the
    /// setting's builder name with `get_`); see it for an example.
    #[deprecated(since = "0.2.0", note = "renamed `get_fsync`")]
    pub fn fsync_policy(&self) -> FsyncPolicy {
        self.get_fsync()
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
        let headers = crate::storage::segment_header::LEN + crate::storage::frame::MAX_HEADER_LEN;
        let max_frame = crate::storage::frame::max_single_record_frame(self.max_record_bytes as usize)
            + crate::storage::segment_header::LEN;
        if self.max_record_bytes == 0 || max_frame as u64 > self.segment_bytes {
            return bad(format!(
                "max_record_bytes must be at least 1 and, plus {headers} bytes of segment and frame headers, fit in segment_bytes ({}); got {} (lower max_record_bytes along with segment_bytes)",
                self.segment_bytes, self.max_record_bytes
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

/// The settings the storage engine needs, taken from a topic's config.
impl From<&TopicConfig> for LogSettings {
    fn from(c: &TopicConfig) -> Self {
        LogSettings {
            segment_bytes: c.segment_bytes,
            index_interval: c.index_interval_bytes,
            fsync: c.fsync,
            retention_bytes: c.retention_bytes,
            retention: c.retention,
            cleanup: c.cleanup,
            tombstone_retention: c.tombstone_retention,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(deprecated)]
    fn the_renamed_getters_still_answer_as_before() {
        let c = TopicConfig::default()
            .partitions(3)
            .segment_bytes(1 << 20)
            .max_record_bytes(4096)
            .index_interval_bytes(512)
            .fsync(FsyncPolicy::EveryN(7))
            .retention_bytes(9 << 20)
            .retention(Duration::from_secs(60))
            .cleanup(CleanupPolicy::Compact)
            .tombstone_retention(Duration::from_secs(5))
            .max_backlog(Backlog::Records(11));
        assert_eq!((c.partition_count(), c.get_partitions()), (3, 3));
        assert_eq!((c.segment_size(), c.get_segment_bytes()), (1 << 20, 1 << 20));
        assert_eq!((c.max_record_size(), c.get_max_record_bytes()), (4096, 4096));
        assert_eq!((c.index_interval(), c.get_index_interval_bytes()), (512, 512));
        assert_eq!((c.fsync_policy(), c.get_fsync()), (FsyncPolicy::EveryN(7), FsyncPolicy::EveryN(7)));
        assert_eq!((c.retention_size(), c.get_retention_bytes()), (Some(9 << 20), Some(9 << 20)));
        let minute = Some(Duration::from_secs(60));
        assert_eq!((c.retention_age(), c.get_retention()), (minute, minute));
        assert_eq!((c.cleanup_policy(), c.get_cleanup()), (CleanupPolicy::Compact, CleanupPolicy::Compact));
        let five = Duration::from_secs(5);
        assert_eq!((c.tombstone_retention_age(), c.get_tombstone_retention()), (five, five));
        assert_eq!((c.backlog_limit(), c.get_max_backlog()), (Backlog::Records(11), Backlog::Records(11)));
    }
}
