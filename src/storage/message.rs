//! [`Message`]: what a consumer receives, a stored record that keeps its
//! segment mapped.

use std::fmt;

use crate::storage::bytes_debug::BytesDebug;
use crate::storage::headers::Headers;
use crate::storage::message_ref::MessageRef;
use crate::storage::segment::MappedBytes;

/// What a consumer receives: a stored record with its partition and offset.
///
/// The key, value and headers are borrowed straight from the memory-mapped
/// segment (no copy); a `Message` keeps its segment mapped while it lives, even
/// if retention deletes the file. `Message` is `Send + Sync` and cheap to clone.
///
/// # Examples
///
/// ```
/// use millpond::{Broker, Record, StartFrom, TopicConfig};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-message-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let topic = broker.create_topic("t", TopicConfig::default())?;
/// topic.producer().send(Record::new("v").key("k").header("h", "1").timestamp(7))?;
/// let m = topic.consumer(StartFrom::Earliest)?.recv()?;
/// assert_eq!(m.value(), b"v");
/// assert_eq!(m.key(), Some(&b"k"[..]));
/// assert_eq!(m.header("h"), Some(&b"1"[..]));
/// assert_eq!((m.partition(), m.offset(), m.timestamp()), (0, 0, 7));
/// # drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Message {
    pub(crate) partition: u32,
    pub(crate) offset: u64,
    pub(crate) timestamp: i64,
    /// The frame body the record lies in; the ranges below index into it.
    pub(crate) body: MappedBytes,
    pub(crate) key: Option<(u32, u32)>,
    pub(crate) value: Option<(u32, u32)>,
    pub(crate) headers: (u32, u32),
    pub(crate) header_count: u16,
}

impl Message {
    /// The partition this message was read from.
    ///
    /// See [`Message`] for an example.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// Its offset within the partition.
    ///
    /// See [`Message`] for an example.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Its timestamp in milliseconds since the Unix epoch.
    ///
    /// See [`Message`] for an example.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// The key, if the record had one.
    ///
    /// See [`Message`] for an example.
    pub fn key(&self) -> Option<&[u8]> {
        self.view().key()
    }

    /// The value; empty for a tombstone (see [`Message::is_tombstone`]).
    ///
    /// See [`Message`] for an example.
    pub fn value(&self) -> &[u8] {
        self.view().value()
    }

    /// Whether the record was a tombstone (a key with no value).
    ///
    /// ```
    /// use millpond::{Broker, Record, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-tomb-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.producer().send(Record::tombstone("k"))?;
    /// assert!(topic.consumer(StartFrom::Earliest)?.recv()?.is_tombstone());
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    /// The headers, in the order they were added.
    ///
    /// ```
    /// use millpond::{Broker, Record, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-headers-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.producer().send(Record::new("v").header("a", "1").header("b", "2"))?;
    /// let m = topic.consumer(StartFrom::Earliest)?.recv()?;
    /// let names: Vec<&str> = m.headers().map(|(name, _)| name).collect();
    /// assert_eq!(names, ["a", "b"]);
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn headers(&self) -> Headers<'_> {
        self.view().headers()
    }

    /// The value of the first header with this name.
    ///
    /// See [`Message`] for an example.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.view().header(name)
    }

    /// This message as a [`MessageRef`], so one handler
    /// can take what both [`Consumer::try_recv`](crate::Consumer::try_recv)
    /// and [`Consumer::try_recv_ref`](crate::Consumer::try_recv_ref) return.
    ///
    /// ```
    /// use millpond::{Broker, MessageRef, Record, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-view-{}", std::process::id()));
    /// fn total(m: MessageRef<'_>) -> usize { m.value().len() }
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.producer().send(Record::new("abc"))?;
    /// let m = topic.consumer(StartFrom::Earliest)?.recv()?;
    /// assert_eq!(total(m.view()), 3);
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn view(&self) -> MessageRef<'_> {
        MessageRef {
            partition: self.partition,
            offset: self.offset,
            timestamp: self.timestamp,
            body: self.body.as_slice(),
            key: self.key,
            value: self.value,
            headers: self.headers,
            header_count: self.header_count,
        }
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("partition", &self.partition)
            .field("offset", &self.offset)
            .field("timestamp", &self.timestamp)
            .field("key", &self.key().map(BytesDebug))
            .field("value", &BytesDebug(self.value()))
            .field("headers", &self.header_count)
            .finish()
    }
}
