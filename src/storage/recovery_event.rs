//! [`RecoveryEvent`]: what crash recovery dropped when it opened a
//! partition.

use std::path::PathBuf;

/// One repair made by recovery: the active segment of a partition ended in a
/// torn or corrupt frame, which was truncated and zeroed.
///
/// A process crash (`kill -9`) can only tear the last, unacknowledged write,
/// so after one the dropped bytes never contain an acknowledged record.
///
/// # Examples
///
/// ```
/// use millpond::Broker;
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-recovery-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// for event in broker.recovery_report() {
///     eprintln!("{}/{}: dropped {} bytes ({})", event.topic, event.partition, event.dropped_bytes, event.reason);
/// }
/// assert!(broker.recovery_report().is_empty()); // a fresh directory needs no repair
/// # drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryEvent {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The segment file that was repaired.
    pub segment: PathBuf,
    /// Bytes of valid frames kept at its start.
    pub valid_bytes: u64,
    /// Bytes after them that were not zero and were zeroed.
    pub dropped_bytes: u64,
    /// The partition's high watermark after recovery.
    pub next_offset: u64,
    /// Why the first dropped frame was refused.
    pub reason: String,
}
