//! [`TopicStats`] and [`PartitionStats`]: a topic's size and extent.

use crate::topic::state::TopicState;

/// Per-partition figures from [`Topic::stats`](crate::Topic::stats).
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
    /// Records stored (`high_watermark - log_start`: offsets, so compaction
    /// gaps and transactions' commit markers are included).
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
/// // A 64-byte segment header, then one frame: its header, and per record
/// // six bytes of fields and the value.
/// assert!(stats.bytes() >= 64 + 10 * 7, "each record is framed");
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

impl TopicState {
    /// Records, bytes, segments and offsets per partition, as they are now.
    pub(crate) fn stats(&self) -> TopicStats {
        TopicStats {
            topic: self.name.to_string(),
            partitions: self
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
}
