//! The storage engine's policies: when bytes reach the disk
//! ([`FsyncPolicy`]), what happens to old records ([`CleanupPolicy`]), and
//! what recovery does with a torn tail ([`RecoveryMode`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

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
/// assert_eq!(accounts.get_cleanup(), CleanupPolicy::Compact);
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
    /// Refuse to open ([`Error::Corrupt`](crate::Error::Corrupt)) rather than
    /// drop anything, leaving the files untouched for inspection.
    FailOnCorruptTail,
}
