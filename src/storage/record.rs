//! [`Record`] (what a producer sends), [`Message`] (what a consumer receives),
//! [`RecordId`] and [`IntoBytes`].

use std::borrow::Cow;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::storage::segment::MappedBytes;

/// Conversion of the usual byte containers into a key, value or header value
/// without copying borrowed data.
///
/// Implemented for `&[u8]`, `&[u8; N]`, `Vec<u8>`, `&Vec<u8>`, `&str`,
/// `String`, `&String` and `Cow<[u8]>`.
///
/// # Examples
///
/// ```
/// use millpond::Record;
/// let a = Record::new(b"bytes");
/// let b = Record::new("text");
/// let c = Record::new(vec![1u8, 2, 3]);
/// assert_eq!(a.value_bytes(), Some(&b"bytes"[..]));
/// assert_eq!(b.value_bytes(), Some(&b"text"[..]));
/// assert_eq!(c.value_bytes(), Some(&[1u8, 2, 3][..]));
/// ```
pub trait IntoBytes<'a> {
    /// Converts into a borrowed or owned byte string.
    fn into_bytes(self) -> Cow<'a, [u8]>;
}

impl<'a> IntoBytes<'a> for &'a [u8] {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self)
    }
}
impl<'a, const N: usize> IntoBytes<'a> for &'a [u8; N] {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Borrowed(&self[..])
    }
}
impl<'a> IntoBytes<'a> for Vec<u8> {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Owned(self)
    }
}
impl<'a> IntoBytes<'a> for &'a Vec<u8> {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self.as_slice())
    }
}
impl<'a> IntoBytes<'a> for &'a str {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self.as_bytes())
    }
}
impl<'a> IntoBytes<'a> for String {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Owned(self.into_bytes())
    }
}
impl<'a> IntoBytes<'a> for &'a String {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self.as_bytes())
    }
}
impl<'a> IntoBytes<'a> for Cow<'a, [u8]> {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        self
    }
}

/// The current time in milliseconds since the Unix epoch, the unit of every
/// millpond timestamp.
///
/// # Examples
///
/// ```
/// assert!(millpond::now_millis() > 1_600_000_000_000);
/// ```
pub fn now_millis() -> i64 {
    // Seconds and sub-second millis separately: `as_millis` divides a u128,
    // a measurable share of a small `send`.
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs())
            .ok()
            .and_then(|s| s.checked_mul(1000))
            .map_or(i64::MAX, |ms| ms.saturating_add(i64::from(d.subsec_millis()))),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// What a producer sends: a value, and optionally a key, headers, a timestamp
/// and an explicit partition.
///
/// A `Record` borrows its bytes where it can, so sending from a buffer the
/// caller keeps costs no allocation. A record with a key and no value
/// ([`Record::tombstone`]) marks the key deleted for compacted topics.
///
/// # Examples
///
/// ```
/// use millpond::Record;
/// let r = Record::new(b"order-1")
///     .key(b"customer-7")
///     .header("trace-id", b"abc123")
///     .timestamp(1_700_000_000_000)
///     .partition(2);
/// assert_eq!(r.key_bytes(), Some(&b"customer-7"[..]));
/// assert_eq!(r.partition_hint(), Some(2));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub(crate) key: Option<Cow<'a, [u8]>>,
    pub(crate) value: Option<Cow<'a, [u8]>>,
    pub(crate) headers: Vec<(Cow<'a, str>, Cow<'a, [u8]>)>,
    pub(crate) timestamp: Option<i64>,
    pub(crate) partition: Option<u32>,
}

impl fmt::Debug for Record<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("key", &self.key.as_deref().map(BytesDebug))
            .field("value", &self.value.as_deref().map(BytesDebug))
            .field("headers", &self.headers.len())
            .field("timestamp", &self.timestamp)
            .field("partition", &self.partition)
            .finish()
    }
}

impl<'a> Record<'a> {
    /// A record with this value.
    ///
    /// ```
    /// let r = millpond::Record::new("hello");
    /// assert_eq!(r.value_bytes(), Some(&b"hello"[..]));
    /// ```
    pub fn new(value: impl IntoBytes<'a>) -> Self {
        Record { key: None, value: Some(value.into_bytes()), headers: Vec::new(), timestamp: None, partition: None }
    }

    /// A tombstone: a key with no value, which deletes the key in a compacted topic.
    ///
    /// ```
    /// let r = millpond::Record::tombstone("user-1");
    /// assert!(r.value_bytes().is_none());
    /// ```
    pub fn tombstone(key: impl IntoBytes<'a>) -> Self {
        Record { key: Some(key.into_bytes()), value: None, headers: Vec::new(), timestamp: None, partition: None }
    }

    /// Sets the key. Records with the same key go to the same partition
    /// (unless a partition is given explicitly), stably across restarts.
    ///
    /// ```
    /// let r = millpond::Record::new("v").key("k");
    /// assert_eq!(r.key_bytes(), Some(&b"k"[..]));
    /// ```
    pub fn key(mut self, key: impl IntoBytes<'a>) -> Self {
        self.key = Some(key.into_bytes());
        self
    }

    /// Adds a header. Names need not be unique; order is kept.
    ///
    /// ```
    /// let r = millpond::Record::new("v").header("a", b"1").header("b", "2");
    /// assert_eq!(r.header_count(), 2);
    /// ```
    pub fn header(mut self, name: impl Into<Cow<'a, str>>, value: impl IntoBytes<'a>) -> Self {
        self.headers.push((name.into(), value.into_bytes()));
        self
    }

    /// Sets the timestamp in milliseconds since the Unix epoch (default: the
    /// time of `send`).
    ///
    /// ```
    /// let r = millpond::Record::new("v").timestamp(42);
    /// assert_eq!(r.timestamp_millis(), Some(42));
    /// ```
    pub fn timestamp(mut self, millis: i64) -> Self {
        self.timestamp = Some(millis);
        self
    }

    /// Sends to this partition instead of choosing one.
    ///
    /// ```
    /// let r = millpond::Record::new("v").partition(3);
    /// assert_eq!(r.partition_hint(), Some(3));
    /// ```
    pub fn partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// The key, if set.
    ///
    /// ```
    /// assert_eq!(millpond::Record::new("v").key_bytes(), None);
    /// ```
    pub fn key_bytes(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }

    /// The value; `None` for a tombstone.
    ///
    /// ```
    /// assert_eq!(millpond::Record::new("v").value_bytes(), Some(&b"v"[..]));
    /// ```
    pub fn value_bytes(&self) -> Option<&[u8]> {
        self.value.as_deref()
    }

    /// The number of headers.
    ///
    /// ```
    /// assert_eq!(millpond::Record::new("v").header_count(), 0);
    /// ```
    pub fn header_count(&self) -> usize {
        self.headers.len()
    }

    /// The explicit timestamp, if set.
    ///
    /// ```
    /// assert_eq!(millpond::Record::new("v").timestamp_millis(), None);
    /// ```
    pub fn timestamp_millis(&self) -> Option<i64> {
        self.timestamp
    }

    /// The explicit partition, if set.
    ///
    /// ```
    /// assert_eq!(millpond::Record::new("v").partition_hint(), None);
    /// ```
    pub fn partition_hint(&self) -> Option<u32> {
        self.partition
    }
}

/// Where a record was stored: its partition and offset.
///
/// # Examples
///
/// ```
/// use millpond::{Broker, Record, TopicConfig};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-recordid-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let topic = broker.create_topic("t", TopicConfig::default())?;
/// let id = topic.producer().send(Record::new("x"))?;
/// assert_eq!((id.partition, id.offset), (0, 0));
/// # drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId {
    /// The partition the record went to.
    pub partition: u32,
    /// Its offset in that partition.
    pub offset: u64,
}

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

/// `len` bytes of `bytes` from `start`, or nothing if out of range (never
/// happens for a decoded record; this keeps the accessors panic-free).
pub(crate) fn range_of(bytes: &[u8], (start, len): (u32, u32)) -> &[u8] {
    let start = start as usize;
    bytes.get(start..start + len as usize).unwrap_or(&[])
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

    /// This message as a [`MessageRef`](crate::MessageRef), so one handler
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
    pub fn view(&self) -> crate::MessageRef<'_> {
        crate::MessageRef {
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

/// Iterator over a [`Message`]'s headers as `(name, value)` pairs.
///
/// See [`Message::headers`] for an example.
#[derive(Debug, Clone)]
pub struct Headers<'m> {
    pub(crate) rest: &'m [u8],
    pub(crate) remaining: u16,
}

impl<'m> Iterator for Headers<'m> {
    type Item = (&'m str, &'m [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        // The header block was validated when the record was decoded
        // (`frame::decode_record`), so these reads stay in bounds; on any
        // surprise the iterator simply ends instead of panicking.
        let (name, value, rest) = crate::storage::frame::split_header(self.rest)?;
        self.rest = rest;
        Some((name, value))
    }
}

/// Debug-prints bytes as a string when they are UTF-8, else as a length.
pub(crate) struct BytesDebug<'a>(pub(crate) &'a [u8]);

impl fmt::Debug for BytesDebug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(self.0) {
            Ok(s) if s.len() <= 64 => write!(f, "{s:?}"),
            _ => write!(f, "<{} bytes>", self.0.len()),
        }
    }
}
