//! [`Batch`]: records received together, borrowed from the mapped log.

use crate::storage::cursor::Cursor;
use crate::storage::cursor::Found;
use crate::storage::message_ref::MessageRef;

/// Records that [`Consumer::poll_ref`](crate::Consumer::poll_ref) received
/// in one call: consecutive records of one partition, borrowed straight
/// from its memory-mapped segment (see [`MessageRef`]).
///
/// A batch is the fastest way to read: the consumer finds the records in
/// one pass, with no allocation (it reuses one buffer), no copy and no
/// reference count per record. Iterate it for [`MessageRef`]s; it borrows
/// the consumer, so the consumer reads on once the batch is dropped. The
/// consumer's position already covers every record in the batch, so a
/// group member's `commit` after handling the batch commits all of it;
/// records of a batch dropped before they were all handled count as
/// received too (as with [`poll`](crate::Consumer::poll)), and the next
/// auto-commit covers them.
///
/// # Examples
///
/// ```
/// use millpond::{Broker, Record, StartFrom, TopicConfig};
/// use std::time::Duration;
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-batch-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let topic = broker.create_topic("t", TopicConfig::default())?;
/// topic.producer().send_batch((0..1000).map(|i| Record::new(format!("{i}"))))?;
///
/// let mut c = topic.consumer(StartFrom::Earliest)?;
/// let (mut count, mut bytes) = (0, 0);
/// loop {
///     let batch = c.poll_ref(256, Duration::from_millis(10))?;
///     if batch.is_empty() {
///         break; // nothing more arrived within the timeout
///     }
///     assert!(batch.len() <= 256);
///     for m in batch {
///         count += 1;
///         bytes += m.value().len();
///     }
/// }
/// assert_eq!((count, bytes), (1000, 2890));
/// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Batch<'a> {
    cursor: Option<&'a Cursor>,
    found: std::slice::Iter<'a, Found>,
}

impl<'a> Batch<'a> {
    /// A batch of the records `found` by `cursor` (which has not moved
    /// since).
    pub(crate) fn new(cursor: &'a Cursor, found: &'a [Found]) -> Batch<'a> {
        Batch { cursor: Some(cursor), found: found.iter() }
    }

    /// A batch with nothing in it.
    pub(crate) fn empty() -> Batch<'a> {
        Batch { cursor: None, found: [].iter() }
    }

    /// Records left in the batch.
    ///
    /// See [`Batch`] for an example.
    pub fn len(&self) -> usize {
        self.found.len()
    }

    /// Whether no record is left (a [`poll_ref`](crate::Consumer::poll_ref)
    /// that timed out returns an empty batch).
    ///
    /// See [`Batch`] for an example.
    pub fn is_empty(&self) -> bool {
        self.found.len() == 0
    }

    /// The partition the records come from (`None` for an empty batch).
    /// (Not named `partition`, which `Iterator` already uses.)
    ///
    /// ```
    /// use millpond::{Broker, Record, StartFrom, TopicConfig};
    /// use std::time::Duration;
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-batch-part-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default().partitions(3))?;
    /// topic.producer().send(Record::new("x").partition(2))?;
    /// let mut c = topic.consumer(StartFrom::Earliest)?;
    /// assert_eq!(c.poll_ref(10, Duration::ZERO)?.from_partition(), Some(2));
    /// assert_eq!(c.poll_ref(10, Duration::ZERO)?.from_partition(), None);
    /// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_partition(&self) -> Option<u32> {
        self.cursor.map(|c| c.log().partition())
    }
}

impl<'a> Iterator for Batch<'a> {
    type Item = MessageRef<'a>;

    #[inline]
    fn next(&mut self) -> Option<MessageRef<'a>> {
        let found = self.found.next()?;
        self.cursor.map(|c| c.view(found))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.found.size_hint()
    }
}

impl ExactSizeIterator for Batch<'_> {}
