//! [`TypedStream`]: the stream of [`TypedConsumer::stream`], a
//! [`MessageStream`] whose records are decoded by a codec.

use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_core::Stream;

use crate::client::consume::stream::MessageStream;
use crate::client::typed::codec::{Bincode, Decoder};
use crate::client::typed::typed_message::TypedMessage;
use crate::error::Result;

/// A [`Stream`] of decoded values from
/// [`TypedConsumer::stream`](crate::TypedConsumer::stream): the async form
/// of [`TypedIter`](crate::TypedIter). It ends when the broker closes or
/// the topic is deleted, as [`MessageStream`] does; a record that does not
/// decode is yielded as [`Error::Decode`](crate::Error::Decode) and the
/// stream goes on past it.
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use millpond::{Broker, StartFrom, TopicConfig, TypedStream};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-typedstreamtype-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let topic = broker.create_topic("t", TopicConfig::default())?;
/// topic.typed_producer::<u64>().send_batch(&[1, 2, 3])?;
/// let mut c = topic.typed_consumer::<u64>(StartFrom::Earliest)?;
/// let closer = broker.clone();
/// let closing = std::thread::spawn(move || { std::thread::sleep(std::time::Duration::from_millis(50)); closer.close() });
/// let values: TypedStream<'_, u64> = c.stream();
/// let total: u64 = futures::executor::block_on(values.map(|m| m.map_or(0, |m| m.value)).fold(0, |a, v| async move { a + v }));
/// assert_eq!(total, 6); // then it ended: the broker closed
/// closing.join().expect("closed")?;
/// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct TypedStream<'c, T, C = Bincode> {
    inner: MessageStream<'c>,
    codec: &'c C,
    _values: PhantomData<fn() -> T>,
}

impl<'c, T, C> TypedStream<'c, T, C> {
    pub(crate) fn new(inner: MessageStream<'c>, codec: &'c C) -> Self {
        TypedStream { inner, codec, _values: PhantomData }
    }
}

impl<T, C> std::fmt::Debug for TypedStream<'_, T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedStream").field("inner", &self.inner).finish()
    }
}

impl<T, C: Decoder<T>> Stream for TypedStream<'_, T, C> {
    type Item = Result<TypedMessage<T>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let item = ready!(Pin::new(&mut this.inner).poll_next(cx));
        Poll::Ready(item.map(|received| TypedMessage::decode(this.codec, this.inner.topic_name(), received?)))
    }
}
