//! [`VerifyReport`]: what [`Broker::verify`](crate::Broker::verify) and
//! [`Topic::verify`](crate::Topic::verify) found.

use crate::error::{Error, Result};
use crate::topic::state::TopicState;

/// The result of checksumming every frame of a topic or broker.
///
/// Damage is listed, each as an [`Error::Corrupt`] naming the topic,
/// partition, file and byte position; the rest of the log stays readable and
/// consumers get the same error when they reach a damaged frame, never wrong
/// data.
///
/// # Examples
///
/// ```
/// use millpond::{Broker, Record, TopicConfig};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-vreport-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let topic = broker.create_topic("t", TopicConfig::default().partitions(2))?;
/// topic.producer().send_batch((0..10).map(|i| Record::new(format!("{i}"))))?;
/// let report = topic.verify()?;
/// assert!(report.is_clean());
/// assert_eq!((report.records, report.segments), (10, 2));
/// # drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Segments checked.
    pub segments: u64,
    /// Frames that passed every check.
    pub frames: u64,
    /// Records in those frames.
    pub records: u64,
    /// Every damaged place found.
    pub damage: Vec<Error>,
}

impl VerifyReport {
    /// Whether nothing was damaged.
    ///
    /// See [`VerifyReport`] for an example.
    pub fn is_clean(&self) -> bool {
        self.damage.is_empty()
    }

    pub(crate) fn merge(&mut self, other: VerifyReport) {
        self.segments += other.segments;
        self.frames += other.frames;
        self.records += other.records;
        self.damage.extend(other.damage);
    }
}

/// Verifies every partition of one topic.
pub(crate) fn verify_topic(topic: &TopicState) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    for p in &topic.partitions {
        let check = p.verify()?;
        report.merge(VerifyReport {
            segments: check.segments,
            frames: check.frames,
            records: check.records,
            damage: check.damage,
        });
    }
    Ok(report)
}
