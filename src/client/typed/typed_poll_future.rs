//! [`TypedPollFuture`]: the future of [`TypedConsumer::poll_async`], a
//! [`PollFuture`] whose records are decoded one by one.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use crate::client::consume::poll_future::PollFuture;
use crate::client::typed::codec::{Bincode, Decoder};
use crate::client::typed::typed_message::TypedMessage;
use crate::error::Result;

/// The future of [`TypedConsumer::poll_async`](crate::TypedConsumer::poll_async):
/// a batch as [`PollFuture`] gives it, each record decoded separately, so
/// one bad record does not hide the others. Cancel-safe like `PollFuture`.
///
/// # Examples
///
/// ```
/// use millpond::{Broker, Record, StartFrom, TopicConfig, TypedPollFuture};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-typedpollfuture-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let topic = broker.create_topic("t", TopicConfig::default())?;
/// topic.typed_producer::<u32>().send(&1)?;
/// topic.producer().send(Record::new(vec![0xfc]))?; // a u32 cut short
/// topic.typed_producer::<u32>().send(&3)?;
/// let mut c = topic.typed_consumer::<u32>(StartFrom::Earliest)?;
/// let batch: TypedPollFuture<'_, u32> = c.poll_async(10);
/// let got = futures::executor::block_on(batch)?;
/// assert!(matches!(got[..], [Ok(_), Err(millpond::Error::Decode { offset: 1, .. }), Ok(_)]));
/// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct TypedPollFuture<'c, T, C = Bincode> {
    inner: PollFuture<'c>,
    codec: &'c C,
    _values: PhantomData<fn() -> T>,
}

impl<'c, T, C> TypedPollFuture<'c, T, C> {
    pub(crate) fn new(inner: PollFuture<'c>, codec: &'c C) -> Self {
        TypedPollFuture { inner, codec, _values: PhantomData }
    }
}

impl<T, C> std::fmt::Debug for TypedPollFuture<'_, T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedPollFuture").field("inner", &self.inner).finish()
    }
}

impl<T, C: Decoder<T>> Future for TypedPollFuture<'_, T, C> {
    type Output = Result<Vec<Result<TypedMessage<T>>>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let messages = ready!(Pin::new(&mut this.inner).poll(cx))?;
        let topic = this.inner.topic_name();
        Poll::Ready(Ok(messages.into_iter().map(|m| TypedMessage::decode(this.codec, topic, m)).collect()))
    }
}
