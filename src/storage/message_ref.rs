//! [`MessageRef`]: a received record borrowed straight from the mapped log.

use std::fmt;

use crate::storage::bytes_debug::BytesDebug;
use crate::storage::headers::Headers;

/// A record as [`Consumer::try_recv_ref`](crate::Consumer::try_recv_ref)
/// returns it: its key, value and headers borrowed straight from the
/// memory-mapped segment, with no copy and no reference count.
///
/// A [`Message`](crate::Message) keeps its segment mapped on its own (an
/// `Arc`), so it can be stored or sent to another thread. A `MessageRef`
/// instead borrows the consumer, which keeps the segment mapped; that makes
/// receiving cheaper, and the borrow checker makes sure it is gone before
/// the consumer reads on. Use it on hot read paths that handle each record
/// in place; [`Message::view`](crate::Message::view) turns a `Message` into
/// one, so a handler can take both.
///
/// # Examples
///
/// ```
/// use millpond::{Broker, Record, StartFrom, TopicConfig};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-msgref-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let topic = broker.create_topic("t", TopicConfig::default())?;
/// topic.producer().send_batch((0..3).map(|i| Record::new(format!("v{i}")).key("k").header("h", "1")))?;
///
/// let mut c = topic.consumer(StartFrom::Earliest)?;
/// let mut bytes = 0;
/// while let Some(m) = c.try_recv_ref()? {
///     assert_eq!((m.partition(), m.offset() < 3, m.timestamp() > 0), (0, true, true));
///     assert_eq!((m.key(), m.header("h")), (Some(&b"k"[..]), Some(&b"1"[..])));
///     bytes += m.value().len(); // read in place, never copied
/// }
/// assert_eq!(bytes, 6);
/// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Keeping a `MessageRef` while reading on does not compile; copy what you
/// need, or use [`try_recv`](crate::Consumer::try_recv) for owned messages:
///
/// ```compile_fail,E0499
/// # use millpond::{Broker, StartFrom, TopicConfig};
/// # let broker = Broker::open(std::env::temp_dir().join("millpond-doc-msgref-cf"))?;
/// # let topic = broker.create_topic("t", TopicConfig::default())?;
/// let mut c = topic.consumer(StartFrom::Earliest)?;
/// let first = c.try_recv_ref()?;
/// let second = c.try_recv_ref()?; // error: `c` is still borrowed by `first`
/// println!("{first:?} {second:?}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy)]
pub struct MessageRef<'a> {
    pub(crate) partition: u32,
    pub(crate) offset: u64,
    pub(crate) timestamp: i64,
    /// The frame body the record lies in; the ranges below index into it.
    pub(crate) body: &'a [u8],
    pub(crate) key: Option<(u32, u32)>,
    pub(crate) value: Option<(u32, u32)>,
    pub(crate) headers: (u32, u32),
    pub(crate) header_count: u16,
}

/// `len` bytes of `bytes` from `start`, or nothing if out of range (never
/// happens for a decoded record; this keeps the accessors panic-free).
fn range_of(bytes: &[u8], (start, len): (u32, u32)) -> &[u8] {
    let start = start as usize;
    bytes.get(start..start + len as usize).unwrap_or(&[])
}

impl<'a> MessageRef<'a> {
    /// The partition this record was read from.
    ///
    /// See [`MessageRef`] for an example.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// Its offset within the partition.
    ///
    /// See [`MessageRef`] for an example.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Its timestamp in milliseconds since the Unix epoch.
    ///
    /// See [`MessageRef`] for an example.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// The key, if the record had one.
    ///
    /// See [`MessageRef`] for an example.
    pub fn key(&self) -> Option<&'a [u8]> {
        self.key.map(|r| range_of(self.body, r))
    }

    /// The value; empty for a tombstone (see [`MessageRef::is_tombstone`]).
    ///
    /// See [`MessageRef`] for an example.
    pub fn value(&self) -> &'a [u8] {
        self.value.map_or(&[], |r| range_of(self.body, r))
    }

    /// Whether the record was a tombstone (a key with no value).
    ///
    /// ```
    /// use millpond::{Broker, Record, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-msgref-tomb-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.producer().send(Record::tombstone("k"))?;
    /// let mut c = topic.consumer(StartFrom::Earliest)?;
    /// assert!(c.try_recv_ref()?.is_some_and(|m| m.is_tombstone()));
    /// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    /// The headers, in the order they were added.
    ///
    /// ```
    /// use millpond::{Broker, Record, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-msgref-headers-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.producer().send(Record::new("v").header("a", "1").header("b", "2"))?;
    /// let mut c = topic.consumer(StartFrom::Earliest)?;
    /// let m = c.try_recv_ref()?.expect("one record");
    /// let names: Vec<&str> = m.headers().map(|(name, _)| name).collect();
    /// assert_eq!(names, ["a", "b"]);
    /// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn headers(&self) -> Headers<'a> {
        Headers { rest: range_of(self.body, self.headers), remaining: self.header_count }
    }

    /// The value of the first header with this name.
    ///
    /// See [`MessageRef`] for an example.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

impl fmt::Debug for MessageRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageRef")
            .field("partition", &self.partition)
            .field("offset", &self.offset)
            .field("timestamp", &self.timestamp)
            .field("key", &self.key().map(BytesDebug))
            .field("value", &BytesDebug(self.value()))
            .field("headers", &self.header_count)
            .finish()
    }
}
