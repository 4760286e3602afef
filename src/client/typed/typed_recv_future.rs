//! [`TypedRecvFuture`]: the future of [`TypedConsumer::recv_async`], a
//! [`RecvFuture`] whose record is decoded by a codec.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use crate::client::consume::recv_future::RecvFuture;
use crate::client::typed::codec::{Bincode, Decoder};
use crate::client::typed::typed_message::TypedMessage;
use crate::error::Result;

/// The future of [`TypedConsumer::recv_async`](crate::TypedConsumer::recv_async):
/// the next record, decoded. Cancel-safe like [`RecvFuture`], which it
/// wraps: the record is taken and decoded by the poll that resolves it.
///
/// # Examples
///
/// ```
/// use millpond::{Broker, StartFrom, TopicConfig, TypedRecvFuture};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-typedrecvfuture-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let topic = broker.create_topic("t", TopicConfig::default())?;
/// topic.typed_producer::<u32>().send(&7)?;
/// let mut c = topic.typed_consumer::<u32>(StartFrom::Earliest)?;
/// let next: TypedRecvFuture<'_, u32> = c.recv_async();
/// assert_eq!(futures::executor::block_on(next)?.value, 7);
/// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct TypedRecvFuture<'c, T, C = Bincode> {
    inner: RecvFuture<'c>,
    codec: &'c C,
    _values: PhantomData<fn() -> T>,
}

impl<'c, T, C> TypedRecvFuture<'c, T, C> {
    pub(crate) fn new(inner: RecvFuture<'c>, codec: &'c C) -> Self {
        TypedRecvFuture { inner, codec, _values: PhantomData }
    }
}

impl<T, C> std::fmt::Debug for TypedRecvFuture<'_, T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedRecvFuture").field("inner", &self.inner).finish()
    }
}

impl<T, C: Decoder<T>> Future for TypedRecvFuture<'_, T, C> {
    type Output = Result<TypedMessage<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let message = ready!(Pin::new(&mut this.inner).poll(cx))?;
        Poll::Ready(TypedMessage::decode(this.codec, this.inner.topic_name(), message))
    }
}
