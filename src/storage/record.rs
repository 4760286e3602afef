//! [`Record`] (what a producer sends), [`RecordId`] (where it was stored),
//! [`IntoBytes`] (what a key, value or header value can be made from) and
//! [`now_millis`] (the clock of every timestamp).

use std::borrow::Cow;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::storage::bytes_debug::BytesDebug;

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
    /// The same record owning its bytes, to outlive what it borrowed.
    pub(crate) fn into_owned(self) -> Record<'static> {
        let own = |c: Cow<'a, [u8]>| Cow::Owned(c.into_owned());
        Record {
            key: self.key.map(own),
            value: self.value.map(own),
            headers: self
                .headers
                .into_iter()
                .map(|(n, v)| (Cow::Owned(n.into_owned()), Cow::Owned(v.into_owned())))
                .collect(),
            timestamp: self.timestamp,
            partition: self.partition,
        }
    }

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
