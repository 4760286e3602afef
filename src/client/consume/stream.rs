//! [`MessageStream`]: a consumer's records as a `futures_core::Stream`, the
//! async form of [`Consumer::iter`].

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_core::Stream;

use crate::client::consume::consumer::Consumer;
use crate::client::consume::iter::{ErrorFuse, blocking_item};
use crate::client::consume::task_wait::TaskWait;
use crate::error::Result;
use crate::storage::message::Message;

/// A [`Stream`] of owned records from [`Consumer::stream`] (and
/// [`GroupMember::stream`](crate::GroupMember::stream)): the async form of
/// the blocking [`Iter`](crate::Iter), ending and failing as it does.
///
/// It yields every record in order per partition, taking the partitions in
/// turn. It ends when the broker closes or the topic is deleted, once the
/// stored records are read; other errors are yielded as `Err`, and an error
/// that would come again at once (damage the consumer cannot move past)
/// ends it instead of being yielded twice; [`Error::Lagged`](crate::Error::Lagged)
/// is yielded and the stream goes on. Cancel-safe like
/// [`RecvFuture`](crate::RecvFuture): a `next()` dropped before it resolves
/// takes no record, and dropping the stream leaves no waker behind.
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use millpond::{Broker, Record, StartFrom, TopicConfig};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-stream-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let topic = broker.create_topic("t", TopicConfig::default())?;
/// topic.producer().send_batch((0..3).map(|i| Record::new(format!("{i}"))))?;
/// let mut c = topic.consumer(StartFrom::Earliest)?;
/// let closer = broker.clone();
/// let closing = std::thread::spawn(move || { std::thread::sleep(std::time::Duration::from_millis(50)); closer.close() });
/// let values: Vec<Vec<u8>> = futures::executor::block_on(c.stream().map(|m| m.map(|m| m.value().to_vec())).collect::<Vec<_>>())
///     .into_iter()
///     .collect::<Result<_, _>>()?;
/// assert_eq!(values, [b"0", b"1", b"2"]); // ended when the broker closed
/// closing.join().expect("closed")?;
/// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct MessageStream<'c> {
    wait: TaskWait<'c>,
    fuse: ErrorFuse,
}

impl<'c> MessageStream<'c> {
    pub(crate) fn new(consumer: &'c mut Consumer) -> MessageStream<'c> {
        MessageStream { wait: TaskWait::new(consumer), fuse: ErrorFuse::default() }
    }

    /// The name of the topic being read (for the typed form's errors).
    pub(crate) fn topic_name(&mut self) -> &str {
        self.wait.consumer().topic().name()
    }
}

impl Stream for MessageStream<'_> {
    type Item = Result<Message>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        let this = self.get_mut();
        if this.fuse.ended() {
            return Poll::Ready(None);
        }
        let received = ready!(this.wait.poll_message(cx));
        Poll::Ready(this.fuse.pass(blocking_item(received)))
    }
}

impl Consumer {
    /// The records as a [`futures_core::Stream`] of owned messages: the
    /// async form of [`iter`](Consumer::iter), for any executor (see
    /// [`MessageStream`]).
    ///
    /// ```
    /// use futures::StreamExt;
    /// use millpond::{Broker, Record, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-cstream-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default().partitions(2))?;
    /// let mut c = topic.consumer(StartFrom::Earliest)?;
    /// let producer = topic.producer();
    /// let sender = std::thread::spawn(move || producer.send_batch((0..10).map(|i| Record::new(format!("{i}")))));
    /// let got = futures::executor::block_on(c.stream().take(10).count());
    /// assert_eq!(got, 10);
    /// sender.join().unwrap()?;
    /// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stream(&mut self) -> MessageStream<'_> {
        MessageStream::new(self)
    }
}
