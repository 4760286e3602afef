//! [`TypedProducer`]: sends values of one type, encoded by a codec.

use std::marker::PhantomData;
use std::time::Duration;

use crate::broker::topic::Topic;
use crate::client::produce::producer::Producer;
use crate::client::produce::send_error::{SendTimeoutError, TrySendError};
use crate::client::typed::codec::{Bincode, Encoder};
use crate::client::typed::typed_send_error::{TypedSendTimeoutError, TypedTrySendError};
use crate::error::{Error, Result};
use crate::storage::record::{IntoBytes, Record, RecordId};

/// Sends values of type `T`, encoded by an [`Encoder`] (a producer needs
/// only that half of a [`Codec`](crate::Codec): with the default
/// [`Bincode`], `T: Serialize` is enough). Made by
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

impl<T, C: Encoder<T>> TypedProducer<T, C> {
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
    /// [`Backlog`](crate::Backlog) limit: on a full backlog the value comes
    /// back in [`TypedTrySendError::Full`], nothing sent.
    ///
    /// ```
    /// use millpond::{Backlog, Broker, TopicConfig, TypedTrySendError};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-typedtry-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default().max_backlog(Backlog::Records(1)))?;
    /// let _slow = topic.group("slow")?.join()?;
    /// let p = topic.typed_producer::<u32>();
    /// assert!(p.try_send(1).is_ok());
    /// assert!(matches!(p.try_send(2), Err(TypedTrySendError::Full(2)))); // full: 2 is yours again
    /// # drop(_slow); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_send(&self, value: T) -> std::result::Result<RecordId, TypedTrySendError<T>> {
        let bytes = self.encode(&value).map_err(TypedTrySendError::Failed)?;
        match self.producer.try_send(Record::new(bytes)) {
            Ok(id) => Ok(id),
            Err(TrySendError::Full(_)) => Err(TypedTrySendError::Full(value)),
            Err(e) => Err(TypedTrySendError::Failed(e.into_error())),
        }
    }

    /// Like [`send`](TypedProducer::send), but waits at most `timeout` for
    /// room under a [`Backlog`](crate::Backlog) limit: on a timeout the value
    /// comes back in [`TypedSendTimeoutError::Timeout`], nothing sent.
    ///
    /// ```
    /// use millpond::{Backlog, Broker, TopicConfig, TypedSendTimeoutError};
    /// use std::time::Duration;
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-typedsto-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default().max_backlog(Backlog::Records(1)))?;
    /// let _slow = topic.group("slow")?.join()?;
    /// let p = topic.typed_producer::<u32>();
    /// assert!(p.send_timeout(1, Duration::from_millis(10)).is_ok());
    /// let late = p.send_timeout(2, Duration::from_millis(10));
    /// assert!(matches!(late, Err(TypedSendTimeoutError::Timeout(2))));
    /// # drop(_slow); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_timeout(&self, value: T, timeout: Duration) -> std::result::Result<RecordId, TypedSendTimeoutError<T>> {
        let bytes = self.encode(&value).map_err(TypedSendTimeoutError::Failed)?;
        match self.producer.send_timeout(Record::new(bytes), timeout) {
            Ok(id) => Ok(id),
            Err(SendTimeoutError::Timeout(_)) => Err(TypedSendTimeoutError::Timeout(value)),
            Err(e) => Err(TypedSendTimeoutError::Failed(e.into_error())),
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
        self.send_batch_with(values, |_, record| record)
    }

    /// Encodes and sends many `(key, value)` pairs as one batch: each record
    /// goes to its key's partition, as with
    /// [`send_keyed`](TypedProducer::send_keyed), and the whole batch is
    /// stored or none of it (see [`Producer::send_batch`]).
    ///
    /// ```
    /// use millpond::{Broker, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-typedbatchkey-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default().partitions(4))?;
    /// let p = topic.typed_producer::<u64>();
    /// let ids = p.send_batch_keyed([("alice", &10), ("bob", &20), ("alice", &30)])?;
    /// // The same key, the same partition, in order.
    /// assert_eq!(ids[0].partition, ids[2].partition);
    /// assert!(ids[0].offset < ids[2].offset);
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_batch_keyed<'v, K: IntoBytes<'v>>(
        &self,
        items: impl IntoIterator<Item = (K, &'v T)>,
    ) -> Result<Vec<RecordId>>
    where
        T: 'v,
    {
        let records = items
            .into_iter()
            .map(|(key, value)| Ok(Record::new(self.encode(value)?).key(key)))
            .collect::<Result<Vec<_>>>()?;
        self.producer.send_batch(records)
    }

    /// Encodes and sends many values as one batch, each record finished by
    /// `build` from its value (a key, a partition, headers, a timestamp).
    ///
    /// ```
    /// use millpond::{Broker, StartFrom, TopicConfig};
    /// use serde::Serialize;
    ///
    /// #[derive(Serialize)] // a producer needs only Serialize
    /// struct Reading { sensor: u32, celsius: f32 }
    ///
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-typedbatchwith-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("readings", TopicConfig::default().partitions(2))?;
    /// let readings = [Reading { sensor: 0, celsius: 20.5 }, Reading { sensor: 1, celsius: 19.0 }];
    /// let ids = topic
    ///     .typed_producer::<Reading>()
    ///     .send_batch_with(&readings, |r, record| record.partition(r.sensor).header("unit", "C"))?;
    /// assert_eq!((ids[0].partition, ids[1].partition), (0, 1));
    /// let m = topic.consumer_of(&[1], StartFrom::Earliest)?.recv()?;
    /// assert_eq!(m.header("unit"), Some(&b"C"[..]));
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_batch_with<'v>(
        &self,
        values: impl IntoIterator<Item = &'v T>,
        mut build: impl FnMut(&'v T, Record<'v>) -> Record<'v>,
    ) -> Result<Vec<RecordId>>
    where
        T: 'v,
    {
        let records =
            values.into_iter().map(|v| Ok(build(v, Record::new(self.encode(v)?)))).collect::<Result<Vec<_>>>()?;
        self.producer.send_batch(records)
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

impl Topic {
    /// A producer of values of type `T`, encoded with [`Bincode`](Bincode).
    ///
    /// See [`TypedProducer`] for an example.
    pub fn typed_producer<T: serde::Serialize>(&self) -> TypedProducer<T> {
        TypedProducer::new(self.producer(), Bincode)
    }

    /// A producer of values of type `T`, encoded with `codec`.
    ///
    /// ```
    /// use millpond::{Bincode, Broker, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-typedwithc-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.typed_producer_with::<String, _>(Bincode).send(&"hi".to_string())?;
    /// assert_eq!(topic.typed_consumer_with::<String, _>(StartFrom::Earliest, Bincode)?.recv()?.value, "hi");
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn typed_producer_with<T, C: Encoder<T>>(&self, codec: C) -> TypedProducer<T, C> {
        TypedProducer::new(self.producer(), codec)
    }
}
