//! [`Committed`]: where a committed transaction's records went.

/// What [`Transaction::commit`](crate::Transaction::commit) returns: where
/// the transaction's records went, one [`CommittedPart`] per partition it
/// wrote to (sorted by topic, then partition). Each part's records have
/// consecutive offsets from [`first_offset`](CommittedPart::first_offset);
/// the offset after them holds the transaction's commit marker, which no
/// consumer returns.
///
/// # Examples
///
/// ```
/// use millpond::{Broker, Record, TopicConfig};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-committed-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let topic = broker.create_topic("t", TopicConfig::default().partitions(2))?;
/// let mut txn = broker.transaction()?;
/// txn.send(&topic, Record::new("a").partition(1))?;
/// txn.send(&topic, Record::new("b").partition(1))?;
/// txn.send(&topic, Record::new("c").partition(0))?;
/// let done = txn.commit()?;
/// assert_eq!(done.records(), 3);
/// let parts: Vec<_> = done.parts().iter().map(|p| (p.topic(), p.partition(), p.first_offset(), p.records())).collect();
/// assert_eq!(parts, vec![("t", 0, 0, 1), ("t", 1, 0, 2)]);
/// assert_eq!(topic.high_watermark(1)?, 3); // two records and the marker
/// # drop(topic); drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Committed {
    pub(crate) parts: Vec<CommittedPart>,
}

/// One partition's records of a committed transaction (see [`Committed`]).
///
/// See [`Committed`] for an example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedPart {
    pub(crate) topic: String,
    pub(crate) partition: u32,
    pub(crate) first_offset: u64,
    pub(crate) records: u64,
}

impl Committed {
    /// Each partition's part, sorted by topic, then partition.
    ///
    /// See [`Committed`] for an example.
    pub fn parts(&self) -> &[CommittedPart] {
        &self.parts
    }

    /// How many records the transaction wrote, in all.
    ///
    /// See [`Committed`] for an example.
    pub fn records(&self) -> u64 {
        self.parts.iter().map(|p| p.records).sum()
    }
}

impl CommittedPart {
    /// The topic.
    ///
    /// See [`Committed`] for an example.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition.
    ///
    /// See [`Committed`] for an example.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// The first record's offset.
    ///
    /// See [`Committed`] for an example.
    pub fn first_offset(&self) -> u64 {
        self.first_offset
    }

    /// How many records went to this partition (at consecutive offsets).
    ///
    /// See [`Committed`] for an example.
    pub fn records(&self) -> u64 {
        self.records
    }
}
