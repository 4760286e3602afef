//! Typed topics: [`TypedProducer`] and [`TypedConsumer`] encode and decode
//! values through a [`Codec`] ([`Bincode`] by default).

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::consumer::Consumer;
use crate::error::{Error, Result};
use crate::group::GroupMember;
use crate::producer::Producer;
use crate::record::{Message, Record, RecordId};

/// Turns values into bytes and back. Implement it to plug in another format
/// (JSON, protobuf, a hand-written layout).
///
/// # Examples
///
/// ```
/// use millpond::Codec;
///
/// /// A codec for UTF-8 text.
/// #[derive(Clone, Copy, Default)]
/// struct Utf8;
///
/// impl Codec<String> for Utf8 {
///     fn encode(&self, value: &String, out: &mut Vec<u8>) -> Result<(), String> {
///         out.extend_from_slice(value.as_bytes());
///         Ok(())
///     }
///     fn decode(&self, bytes: &[u8]) -> Result<String, String> {
///         String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())
///     }
/// }
///
/// let mut buf = Vec::new();
/// Utf8.encode(&"hé".to_string(), &mut buf).unwrap();
/// assert_eq!(Utf8.decode(&buf).unwrap(), "hé");
/// assert!(Utf8.decode(&[0xff]).is_err());
/// ```
pub trait Codec<T> {
    /// Appends the encoding of `value` to `out`, or says why it cannot.
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> std::result::Result<(), String>;
    /// Decodes a value from `bytes`, or says why it cannot.
    fn decode(&self, bytes: &[u8]) -> std::result::Result<T, String>;
}

/// The default codec: bincode 2 (standard configuration) through serde.
///
/// # Examples
///
/// ```
/// use millpond::{Bincode, Codec};
/// let mut buf = Vec::new();
/// Bincode.encode(&(1u32, "two".to_string()), &mut buf).unwrap();
/// let back: (u32, String) = Bincode.decode(&buf).unwrap();
/// assert_eq!(back, (1, "two".to_string()));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Bincode;

impl<T: Serialize + DeserializeOwned> Codec<T> for Bincode {
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> std::result::Result<(), String> {
        bincode::serde::encode_into_std_write(value, out, bincode::config::standard())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn decode(&self, bytes: &[u8]) -> std::result::Result<T, String> {
        let (value, used) =
            bincode::serde::decode_from_slice(bytes, bincode::config::standard()).map_err(|e| e.to_string())?;
        if used != bytes.len() {
            return Err(format!("{} trailing bytes after the value", bytes.len() - used));
        }
        Ok(value)
    }
}

/// A decoded value with the message it came from (partition, offset, key,
/// headers, timestamp).
///
/// See [`TypedConsumer`] for an example.
#[derive(Debug, Clone)]
pub struct TypedMessage<T> {
    /// The decoded value.
    pub value: T,
    /// The raw message.
    pub message: Message,
}

/// Sends values of type `T`, encoded by a [`Codec`]. Made by
/// [`Topic::typed_producer`](crate::Topic::typed_producer).
///
/// # Examples
///
/// ```
/// use millpond::{Broker, StartFrom, TopicConfig};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// struct Order { id: u64, amount_cents: u64 }
///
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-typed-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let topic = broker.create_topic("orders", TopicConfig::default())?;
/// let producer = topic.typed_producer::<Order>();
/// producer.send_keyed("customer-7", &Order { id: 1, amount_cents: 1250 })?;
/// producer.send(&Order { id: 2, amount_cents: 99 })?; // no key
/// let mut consumer = topic.typed_consumer::<Order>(StartFrom::Earliest)?;
/// let m = consumer.recv()?;
/// assert_eq!(m.value, Order { id: 1, amount_cents: 1250 });
/// assert_eq!(m.message.key(), Some(&b"customer-7"[..]));
/// assert_eq!(consumer.recv()?.value.id, 2);
/// # drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TypedProducer<T, C = Bincode> {
    producer: Producer,
    codec: C,
    _values: PhantomData<fn(&T)>,
}

impl<T, C: Clone> Clone for TypedProducer<T, C> {
    fn clone(&self) -> Self {
        TypedProducer { producer: self.producer.clone(), codec: self.codec.clone(), _values: PhantomData }
    }
}

impl<T, C> std::fmt::Debug for TypedProducer<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedProducer").field("producer", &self.producer).finish()
    }
}

impl<T, C: Codec<T>> TypedProducer<T, C> {
    pub(crate) fn new(producer: Producer, codec: C) -> Self {
        TypedProducer { producer, codec, _values: PhantomData }
    }

    fn encode(&self, value: &T) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.codec
            .encode(value, &mut buf)
            .map_err(|reason| Error::Encode { topic: self.producer.topic().name().to_string(), reason })?;
        Ok(buf)
    }

    /// Encodes and sends `value` (partition by round-robin).
    ///
    /// See [`TypedProducer`] for an example.
    pub fn send(&self, value: &T) -> Result<RecordId> {
        self.producer.send(Record::new(self.encode(value)?))
    }

    /// Encodes and sends `value` with `key` (same key, same partition).
    ///
    /// See [`TypedProducer`] for an example.
    pub fn send_keyed(&self, key: impl AsRef<[u8]>, value: &T) -> Result<RecordId> {
        self.producer.send(Record::new(self.encode(value)?).key(key.as_ref()))
    }

    /// Encodes `value` and sends it with whatever else `build` adds to the
    /// record (headers, timestamp, partition, key).
    ///
    /// ```
    /// use millpond::{Broker, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-typedwith-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.typed_producer::<u64>().send_with(&42, |r| r.header("unit", "cents").timestamp(7))?;
    /// let m = topic.typed_consumer::<u64>(StartFrom::Earliest)?.recv()?;
    /// assert_eq!((m.value, m.message.header("unit"), m.message.timestamp()), (42, Some(&b"cents"[..]), 7));
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_with<'a>(&self, value: &T, build: impl FnOnce(Record<'a>) -> Record<'a>) -> Result<RecordId> {
        self.producer.send(build(Record::new(self.encode(value)?)))
    }

    /// Like [`send`](TypedProducer::send), but never waits for room under a
    /// [`Backlog`](crate::Backlog) limit: `Ok(None)` means the backlog is
    /// full and nothing was sent (the value is still yours).
    ///
    /// ```
    /// use millpond::{Backlog, Broker, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-typedtry-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default().max_backlog(Backlog::Records(1)))?;
    /// let _slow = topic.group("slow")?.join()?;
    /// let p = topic.typed_producer::<u32>();
    /// assert!(p.try_send(&1)?.is_some());
    /// assert!(p.try_send(&2)?.is_none()); // full
    /// # drop(_slow); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_send(&self, value: &T) -> Result<Option<RecordId>> {
        match self.producer.try_send(Record::new(self.encode(value)?)) {
            Ok(id) => Ok(Some(id)),
            Err(crate::TrySendError::Full(_)) => Ok(None),
            Err(e) => Err(e.into_error()),
        }
    }

    /// Like [`send`](TypedProducer::send), but waits at most `timeout` for
    /// room under a [`Backlog`](crate::Backlog) limit: `Ok(None)` means it
    /// timed out and nothing was sent.
    ///
    /// ```
    /// use millpond::{Backlog, Broker, TopicConfig};
    /// use std::time::Duration;
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-typedsto-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default().max_backlog(Backlog::Records(1)))?;
    /// let _slow = topic.group("slow")?.join()?;
    /// let p = topic.typed_producer::<u32>();
    /// assert!(p.send_timeout(&1, Duration::from_millis(10))?.is_some());
    /// assert!(p.send_timeout(&2, Duration::from_millis(10))?.is_none());
    /// # drop(_slow); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_timeout(&self, value: &T, timeout: Duration) -> Result<Option<RecordId>> {
        match self.producer.send_timeout(Record::new(self.encode(value)?), timeout) {
            Ok(id) => Ok(Some(id)),
            Err(crate::SendTimeoutError::Timeout(_)) => Ok(None),
            Err(e) => Err(e.into_error()),
        }
    }

    /// Encodes and sends many values as one batch (see [`Producer::send_batch`]).
    ///
    /// ```
    /// use millpond::{Broker, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-typedbatch-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let ids = broker.create_topic("t", TopicConfig::default())?.typed_producer::<u32>().send_batch(&[1, 2, 3])?;
    /// assert_eq!(ids.len(), 3);
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_batch<'v>(&self, values: impl IntoIterator<Item = &'v T>) -> Result<Vec<RecordId>>
    where
        T: 'v,
    {
        let encoded = values.into_iter().map(|v| self.encode(v)).collect::<Result<Vec<_>>>()?;
        self.producer.send_batch(encoded.into_iter().map(Record::new))
    }

    /// The untyped producer underneath (for flush and raw records).
    ///
    /// ```
    /// use millpond::{Broker, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-typedinner-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let p = broker.create_topic("t", TopicConfig::default())?.typed_producer::<u32>();
    /// p.send(&1)?;
    /// p.inner().flush()?;
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn inner(&self) -> &Producer {
        &self.producer
    }
}

/// Where a [`TypedConsumer`] gets its messages: an independent [`Consumer`]
/// or a [`GroupMember`]. Sealed: those two are all there is.
///
/// # Examples
///
/// ```
/// use millpond::{Broker, Source, StartFrom, TopicConfig, TypedConsumer};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-source-{}", std::process::id()));
/// // One function for typed reading from either kind of source.
/// fn total<S: Source>(c: &mut TypedConsumer<u64, millpond::Bincode, S>) -> millpond::Result<u64> {
///     c.try_iter().map(|m| m.map(|m| m.value)).sum()
/// }
/// let broker = Broker::open(&dir)?;
/// let topic = broker.create_topic("amounts", TopicConfig::default())?;
/// topic.typed_producer::<u64>().send_batch(&[1, 2, 3])?;
/// assert_eq!(total(&mut topic.typed_consumer(StartFrom::Earliest)?)?, 6);
/// let member = topic.group("sum")?.join()?;
/// assert_eq!(total(&mut TypedConsumer::new(member, millpond::Bincode))?, 6);
/// # drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Source: sealed::Sealed {
    #[doc(hidden)]
    fn source_try_recv(&mut self) -> Result<Option<Message>>;
    #[doc(hidden)]
    fn source_recv_deadline(&mut self, deadline: Instant) -> Result<Option<Message>>;
    #[doc(hidden)]
    fn source_recv(&mut self) -> Result<Message>;
    #[doc(hidden)]
    fn source_topic(&self) -> &str;
    #[doc(hidden)]
    fn source_poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<Message>>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::Consumer {}
    impl Sealed for crate::GroupMember {}
}

impl Source for Consumer {
    fn source_try_recv(&mut self) -> Result<Option<Message>> {
        self.try_recv()
    }
    fn source_recv_deadline(&mut self, deadline: Instant) -> Result<Option<Message>> {
        self.recv_deadline(deadline)
    }
    fn source_recv(&mut self) -> Result<Message> {
        self.recv()
    }
    fn source_topic(&self) -> &str {
        self.topic().name()
    }
    fn source_poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<Message>> {
        self.poll(max, timeout)
    }
}

impl Source for GroupMember {
    fn source_try_recv(&mut self) -> Result<Option<Message>> {
        self.try_recv()
    }
    fn source_recv_deadline(&mut self, deadline: Instant) -> Result<Option<Message>> {
        self.recv_deadline(deadline)
    }
    fn source_recv(&mut self) -> Result<Message> {
        self.recv()
    }
    fn source_topic(&self) -> &str {
        self.topic().name()
    }
    fn source_poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<Message>> {
        self.poll(max, timeout)
    }
}

/// Receives values of type `T`, decoded by a [`Codec`], from a [`Consumer`]
/// or a [`GroupMember`].
///
/// A record that fails to decode is returned as [`Error::Decode`] with its
/// partition and offset; the consumer has already moved past it, so the
/// next call goes on with the following record (skip it, log it, or send it
/// to a dead-letter topic).
///
/// # Examples
///
/// ```
/// use millpond::{Broker, Error, Record, StartFrom, TopicConfig};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-typedcons-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let topic = broker.create_topic("readings", TopicConfig::default())?;
/// topic.typed_producer::<f64>().send(&21.5)?;
/// topic.producer().send(Record::new("not a float"))?; // a bad record
/// topic.typed_producer::<f64>().send(&22.0)?;
///
/// let mut c = topic.typed_consumer::<f64>(StartFrom::Earliest)?;
/// assert_eq!(c.recv()?.value, 21.5);
/// assert!(matches!(c.recv(), Err(Error::Decode { partition: 0, offset: 1, .. })));
/// assert_eq!(c.recv()?.value, 22.0); // went on after the bad record
/// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TypedConsumer<T, C = Bincode, S = Consumer> {
    source: S,
    codec: C,
    _values: PhantomData<fn() -> T>,
}

impl<T, C, S: std::fmt::Debug> std::fmt::Debug for TypedConsumer<T, C, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedConsumer").field("source", &self.source).finish()
    }
}

impl<T, C: Codec<T>, S: Source> TypedConsumer<T, C, S> {
    /// Wraps a consumer or group member with a codec.
    ///
    /// ```
    /// use millpond::{Bincode, Broker, StartFrom, TopicConfig, TypedConsumer};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-typednew-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// let member = topic.group("g")?.join()?;
    /// let mut typed: TypedConsumer<u32, Bincode, _> = TypedConsumer::new(member, Bincode);
    /// assert!(typed.try_recv()?.is_none());
    /// # drop(typed); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(source: S, codec: C) -> Self {
        TypedConsumer { source, codec, _values: PhantomData }
    }

    fn decode(&self, message: Message) -> Result<TypedMessage<T>> {
        match self.codec.decode(message.value()) {
            Ok(value) => Ok(TypedMessage { value, message }),
            Err(reason) => Err(Error::Decode {
                topic: self.source.source_topic().to_string(),
                partition: message.partition(),
                offset: message.offset(),
                reason,
            }),
        }
    }

    /// See [`Consumer::try_recv`]; decode failures are [`Error::Decode`].
    ///
    /// See [`TypedConsumer::new`] for an example.
    pub fn try_recv(&mut self) -> Result<Option<TypedMessage<T>>> {
        match self.source.source_try_recv()? {
            Some(m) => self.decode(m).map(Some),
            None => Ok(None),
        }
    }

    /// See [`Consumer::recv`]; decode failures are [`Error::Decode`].
    ///
    /// See [`TypedConsumer`] for an example.
    pub fn recv(&mut self) -> Result<TypedMessage<T>> {
        let m = self.source.source_recv()?;
        self.decode(m)
    }

    /// See [`Consumer::recv_timeout`]; decode failures are [`Error::Decode`].
    ///
    /// ```
    /// use millpond::{Broker, StartFrom, TopicConfig};
    /// use std::time::Duration;
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-typedto-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let mut c = broker.create_topic("t", TopicConfig::default())?.typed_consumer::<u8>(StartFrom::Latest)?;
    /// assert!(c.recv_timeout(Duration::from_millis(5))?.is_none());
    /// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<TypedMessage<T>>> {
        let deadline =
            Instant::now().checked_add(timeout).unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365));
        match self.source.source_recv_deadline(deadline)? {
            Some(m) => self.decode(m).map(Some),
            None => Ok(None),
        }
    }

    /// Waits up to `timeout` for the first record, then returns it with
    /// every record available at once, up to `max` (see [`Consumer::poll`]).
    /// Each item is decoded separately, so one bad record does not hide the
    /// others.
    ///
    /// ```
    /// use millpond::{Broker, StartFrom, TopicConfig};
    /// use std::time::Duration;
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-typedpoll-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.typed_producer::<u32>().send_batch(&[1, 2, 3])?;
    /// let mut c = topic.typed_consumer::<u32>(StartFrom::Earliest)?;
    /// let values: Vec<u32> = c.poll(10, Duration::from_millis(10))?.into_iter().map(|m| m.map(|m| m.value)).collect::<Result<_, _>>()?;
    /// assert_eq!(values, [1, 2, 3]);
    /// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<Result<TypedMessage<T>>>> {
        // One receive call on the source, so a group member's auto-commit
        // never covers records this call is still gathering.
        let messages = self.source.source_poll(max, timeout)?;
        Ok(messages.into_iter().map(|m| self.decode(m)).collect())
    }

    /// A blocking iterator over decoded values, like [`Consumer::iter`]: it
    /// ends when the broker closes or the topic is deleted; a record that
    /// does not decode is yielded as [`Error::Decode`] and the iterator goes
    /// on.
    ///
    /// ```
    /// use millpond::{Broker, Error, Record, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-typediter-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.typed_producer::<u32>().send_batch(&[1, 2])?;
    /// topic.producer().send(Record::new(vec![0xfc]))?; // a u32 cut short
    /// let mut c = topic.typed_consumer::<u32>(StartFrom::Earliest)?;
    /// let closer = broker.clone();
    /// let closing = std::thread::spawn(move || { std::thread::sleep(std::time::Duration::from_millis(50)); closer.close() });
    /// let got: Vec<Result<u32, Error>> = c.iter().map(|m| m.map(|m| m.value)).collect();
    /// assert!(matches!(got[..], [Ok(1), Ok(2), Err(Error::Decode { offset: 2, .. })]));
    /// closing.join().expect("closed")?; // close finished writing before the directory goes
    /// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter(&mut self) -> TypedIter<'_, T, C, S> {
        TypedIter { consumer: self, fuse: crate::consumer::ErrorFuse::default() }
    }

    /// A non-blocking iterator over the decoded values available now, like
    /// [`Consumer::try_iter`]; decode failures are yielded as
    /// [`Error::Decode`].
    ///
    /// ```
    /// use millpond::{Broker, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-typedtryiter-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.typed_producer::<String>().send_batch(&["a".to_string(), "b".to_string()])?;
    /// let mut c = topic.typed_consumer::<String>(StartFrom::Earliest)?;
    /// let values: Vec<String> = c.try_iter().map(|m| m.map(|m| m.value)).collect::<Result<_, _>>()?;
    /// assert_eq!(values, ["a", "b"]);
    /// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_iter(&mut self) -> TypedTryIter<'_, T, C, S> {
        TypedTryIter { consumer: self, fuse: crate::consumer::ErrorFuse::default() }
    }

    /// The consumer or group member underneath (to seek, commit, ...).
    ///
    /// ```
    /// use millpond::{Bincode, Broker, TopicConfig, TypedConsumer};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-typedsrc-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.typed_producer::<u32>().send(&5)?;
    /// let mut typed = TypedConsumer::<u32, _, _>::new(topic.group("g")?.join()?, Bincode);
    /// assert_eq!(typed.recv()?.value, 5);
    /// typed.source_mut().commit()?;
    /// # drop(typed); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn source_mut(&mut self) -> &mut S {
        &mut self.source
    }

    /// Unwraps the consumer or group member.
    ///
    /// ```
    /// use millpond::{Broker, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-typedinto-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let c = broker.create_topic("t", TopicConfig::default())?.typed_consumer::<u8>(StartFrom::Earliest)?;
    /// let raw = c.into_inner();
    /// assert_eq!(raw.assignment(), [0]);
    /// # drop(raw); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_inner(self) -> S {
        self.source
    }
}

/// Blocking iterator from [`TypedConsumer::iter`]: ends when the broker
/// closes or the topic is deleted; other errors (including
/// [`Error::Decode`]) are yielded as `Err`.
///
/// See [`TypedConsumer::iter`] for an example.
pub struct TypedIter<'c, T, C = Bincode, S = Consumer> {
    consumer: &'c mut TypedConsumer<T, C, S>,
    fuse: crate::consumer::ErrorFuse,
}

impl<T, C, S: std::fmt::Debug> std::fmt::Debug for TypedIter<'_, T, C, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedIter").field("consumer", &self.consumer).finish()
    }
}

impl<T, C: Codec<T>, S: Source> Iterator for TypedIter<'_, T, C, S> {
    type Item = Result<TypedMessage<T>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.fuse.next(|| crate::consumer::blocking_item(self.consumer.recv()))
    }
}

/// Non-blocking iterator from [`TypedConsumer::try_iter`]: ends when nothing
/// more is available (or the broker closed); other errors (including
/// [`Error::Decode`]) are yielded as `Err`.
///
/// See [`TypedConsumer::try_iter`] for an example.
pub struct TypedTryIter<'c, T, C = Bincode, S = Consumer> {
    consumer: &'c mut TypedConsumer<T, C, S>,
    fuse: crate::consumer::ErrorFuse,
}

impl<T, C, S: std::fmt::Debug> std::fmt::Debug for TypedTryIter<'_, T, C, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedTryIter").field("consumer", &self.consumer).finish()
    }
}

impl<T, C: Codec<T>, S: Source> Iterator for TypedTryIter<'_, T, C, S> {
    type Item = Result<TypedMessage<T>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.fuse.next(|| crate::consumer::available_item(self.consumer.try_recv()))
    }
}
