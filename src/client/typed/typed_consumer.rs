//! [`TypedConsumer`] and its iterators: receive values of one type, decoded by a codec.

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use crate::broker::topic::Topic;
use crate::client::consume::consumer::Consumer;
use crate::client::consume::start_from::StartFrom;
use crate::client::typed::codec::{Bincode, Decoder};
use crate::client::typed::source::Source;
use crate::client::typed::typed_message::TypedMessage;
use crate::client::typed::typed_poll_future::TypedPollFuture;
use crate::client::typed::typed_recv_future::TypedRecvFuture;
use crate::client::typed::typed_stream::TypedStream;
use crate::error::Result;
use crate::storage::message::Message;

/// Receives values of type `T`, decoded by a [`Decoder`] (the half of a
/// [`Codec`](crate::Codec) a consumer needs), from a [`Consumer`]
/// or a [`GroupMember`](crate::GroupMember).
///
/// A record that fails to decode is returned as [`Error::Decode`](crate::Error::Decode) with its
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

impl<T, C: Decoder<T>, S: Source> TypedConsumer<T, C, S> {
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
        TypedMessage::decode(&self.codec, self.source.source_topic(), message)
    }

    /// See [`Consumer::try_recv`]; decode failures are [`Error::Decode`](crate::Error::Decode).
    ///
    /// See [`TypedConsumer::new`] for an example.
    pub fn try_recv(&mut self) -> Result<Option<TypedMessage<T>>> {
        match self.source.source_try_recv()? {
            Some(m) => self.decode(m).map(Some),
            None => Ok(None),
        }
    }

    /// See [`Consumer::recv`]; decode failures are [`Error::Decode`](crate::Error::Decode).
    ///
    /// See [`TypedConsumer`] for an example.
    pub fn recv(&mut self) -> Result<TypedMessage<T>> {
        let m = self.source.source_recv()?;
        self.decode(m)
    }

    /// See [`Consumer::recv_timeout`]; decode failures are [`Error::Decode`](crate::Error::Decode).
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

    /// The async form of [`recv`](TypedConsumer::recv) (see
    /// [`Consumer::recv_async`]); decode failures are [`Error::Decode`](crate::Error::Decode),
    /// and the consumer has moved past the bad record, as for `recv`.
    ///
    /// ```
    /// use millpond::{Broker, Error, Record, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-typedrecvasync-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("readings", TopicConfig::default())?;
    /// let mut c = topic.typed_consumer::<f64>(StartFrom::Earliest)?;
    /// topic.producer().send(Record::new("not a float"))?;
    /// topic.typed_producer::<f64>().send(&21.5)?;
    /// futures::executor::block_on(async {
    ///     assert!(matches!(c.recv_async().await, Err(Error::Decode { offset: 0, .. })));
    ///     assert_eq!(c.recv_async().await?.value, 21.5);
    ///     Ok::<(), Error>(())
    /// })?;
    /// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_async(&mut self) -> TypedRecvFuture<'_, T, C> {
        TypedRecvFuture::new(self.source.source_recv_async(), &self.codec)
    }

    /// The async form of [`poll`](TypedConsumer::poll) (see
    /// [`Consumer::poll_async`]): each item decoded separately.
    ///
    /// ```
    /// use millpond::{Broker, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-typedpollasync-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.typed_producer::<u32>().send_batch(&[1, 2, 3])?;
    /// let mut c = topic.typed_consumer::<u32>(StartFrom::Earliest)?;
    /// let batch = futures::executor::block_on(c.poll_async(10))?;
    /// let values: Vec<u32> = batch.into_iter().map(|m| m.map(|m| m.value)).collect::<Result<_, _>>()?;
    /// assert_eq!(values, [1, 2, 3]);
    /// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn poll_async(&mut self, max: usize) -> TypedPollFuture<'_, T, C> {
        TypedPollFuture::new(self.source.source_poll_async(max), &self.codec)
    }

    /// The async form of [`iter`](TypedConsumer::iter): a
    /// [`futures_core::Stream`] of decoded values that ends when the broker
    /// closes; a record that does not decode is yielded as
    /// [`Error::Decode`](crate::Error::Decode) and the stream goes on.
    ///
    /// ```
    /// use futures::StreamExt;
    /// use millpond::{Broker, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-typedstream-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// let mut c = topic.typed_consumer::<String>(StartFrom::Earliest)?;
    /// let producer = topic.typed_producer::<String>();
    /// let sender = std::thread::spawn(move || producer.send_batch(&["a".to_string(), "b".to_string()]));
    /// let values: Vec<String> = futures::executor::block_on(c.stream().take(2).map(|m| m.map(|m| m.value)).collect::<Vec<_>>())
    ///     .into_iter()
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(values, ["a", "b"]);
    /// sender.join().unwrap()?;
    /// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stream(&mut self) -> TypedStream<'_, T, C> {
        TypedStream::new(self.source.source_stream(), &self.codec)
    }

    /// A blocking iterator over decoded values, like [`Consumer::iter`]: it
    /// ends when the broker closes or the topic is deleted; a record that
    /// does not decode is yielded as [`Error::Decode`](crate::Error::Decode) and the iterator goes
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
        TypedIter { consumer: self, fuse: crate::client::consume::iter::ErrorFuse::default() }
    }

    /// A non-blocking iterator over the decoded values available now, like
    /// [`Consumer::try_iter`]; decode failures are yielded as
    /// [`Error::Decode`](crate::Error::Decode).
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
        TypedTryIter { consumer: self, fuse: crate::client::consume::iter::ErrorFuse::default() }
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
/// [`Error::Decode`](crate::Error::Decode)) are yielded as `Err`.
///
/// See [`TypedConsumer::iter`] for an example.
pub struct TypedIter<'c, T, C = Bincode, S = Consumer> {
    consumer: &'c mut TypedConsumer<T, C, S>,
    fuse: crate::client::consume::iter::ErrorFuse,
}

impl<T, C, S: std::fmt::Debug> std::fmt::Debug for TypedIter<'_, T, C, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedIter").field("consumer", &self.consumer).finish()
    }
}

impl<T, C: Decoder<T>, S: Source> Iterator for TypedIter<'_, T, C, S> {
    type Item = Result<TypedMessage<T>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.fuse.next(|| crate::client::consume::iter::blocking_item(self.consumer.recv()))
    }
}

/// Non-blocking iterator from [`TypedConsumer::try_iter`]: ends when nothing
/// more is available (or the broker closed); other errors (including
/// [`Error::Decode`](crate::Error::Decode)) are yielded as `Err`.
///
/// See [`TypedConsumer::try_iter`] for an example.
pub struct TypedTryIter<'c, T, C = Bincode, S = Consumer> {
    consumer: &'c mut TypedConsumer<T, C, S>,
    fuse: crate::client::consume::iter::ErrorFuse,
}

impl<T, C, S: std::fmt::Debug> std::fmt::Debug for TypedTryIter<'_, T, C, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedTryIter").field("consumer", &self.consumer).finish()
    }
}

impl<T, C: Decoder<T>, S: Source> Iterator for TypedTryIter<'_, T, C, S> {
    type Item = Result<TypedMessage<T>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.fuse.next(|| crate::client::consume::iter::available_item(self.consumer.try_recv()))
    }
}

impl Topic {
    /// An independent consumer of values of type `T`, decoded with
    /// [`Bincode`](Bincode).
    ///
    /// See [`TypedConsumer`] for an example.
    pub fn typed_consumer<T: serde::de::DeserializeOwned>(&self, from: StartFrom) -> Result<TypedConsumer<T>> {
        Ok(TypedConsumer::new(self.consumer(from)?, Bincode))
    }

    /// An independent consumer of values of type `T`, decoded with `codec`.
    ///
    /// See [`Topic::typed_producer_with`] for an example.
    pub fn typed_consumer_with<T, C: Decoder<T>>(&self, from: StartFrom, codec: C) -> Result<TypedConsumer<T, C>> {
        Ok(TypedConsumer::new(self.consumer(from)?, codec))
    }
}
