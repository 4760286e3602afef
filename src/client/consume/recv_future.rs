//! [`RecvFuture`]: the future of [`Consumer::recv_async`], the async form
//! of [`Consumer::recv`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::client::consume::consumer::Consumer;
use crate::client::consume::task_wait::TaskWait;
use crate::error::Result;
use crate::storage::message::Message;

/// The future of [`Consumer::recv_async`] (and
/// [`GroupMember::recv_async`](crate::GroupMember::recv_async)): the next
/// record, waited for without holding a thread.
///
/// It resolves as [`Consumer::recv`] returns: with the next record, or with
/// [`Error::Closed`](crate::Error::Closed) or
/// [`Error::TopicDeleted`](crate::Error::TopicDeleted) once every stored
/// record is read and nothing more can arrive, or with the error `recv`
/// would return. It works on any executor: while there is nothing to read,
/// its task's [`Waker`](std::task::Waker) waits in the same list as blocked
/// threads, and a producer's append wakes it.
///
/// **Cancel-safe**: the consumer's position moves past a record only when
/// a poll returns it, so dropping the future while it waits (a timeout, the
/// losing branch of a `select!`) loses nothing and moves nothing; the next
/// receive of any kind returns that same next record. Dropping it also
/// removes its waker from the partitions' wait lists.
///
/// # Examples
///
/// ```
/// use millpond::{Broker, Record, StartFrom, TopicConfig};
/// use std::future::Future;
/// use std::task::{Context, Waker};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-recvfuture-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let topic = broker.create_topic("jobs", TopicConfig::default())?;
/// let mut consumer = topic.consumer(StartFrom::Earliest)?;
///
/// // Polled once with nothing there, then dropped: nothing is lost.
/// let mut waiting = consumer.recv_async();
/// assert!(std::pin::Pin::new(&mut waiting).poll(&mut Context::from_waker(Waker::noop())).is_pending());
/// drop(waiting);
///
/// topic.producer().send(Record::new("job-1"))?;
/// let m = futures::executor::block_on(consumer.recv_async())?;
/// assert_eq!((m.offset(), m.value()), (0, &b"job-1"[..]));
/// # drop(consumer); drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct RecvFuture<'c> {
    wait: TaskWait<'c>,
}

impl<'c> RecvFuture<'c> {
    pub(crate) fn new(consumer: &'c mut Consumer) -> RecvFuture<'c> {
        RecvFuture { wait: TaskWait::new(consumer) }
    }

    /// The name of the topic being read (for the typed forms' errors).
    pub(crate) fn topic_name(&mut self) -> &str {
        self.wait.consumer().topic().name()
    }
}

impl Future for RecvFuture<'_> {
    type Output = Result<Message>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Message>> {
        self.get_mut().wait.poll_message(cx)
    }
}

impl Consumer {
    /// Waits for the next record without blocking the thread: the async
    /// form of [`recv`](Consumer::recv), for any executor (tokio,
    /// `futures::executor`, smol, ...; the crate depends on none).
    ///
    /// Cancel-safe (see [`RecvFuture`]): dropping the future before it
    /// resolves loses no record, so it can be raced against a timer or a
    /// shutdown signal, e.g. `tokio::time::timeout(d, c.recv_async())`.
    /// A blocking receive still works inside async code as before.
    ///
    /// ```
    /// use millpond::{Broker, Record, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-recvasync-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("jobs", TopicConfig::default())?;
    /// let mut consumer = topic.consumer(StartFrom::Latest)?;
    /// let producer = topic.producer();
    /// let worker = std::thread::spawn(move || {
    ///     std::thread::sleep(std::time::Duration::from_millis(10));
    ///     producer.send(Record::new("late"))
    /// });
    /// let m = futures::executor::block_on(consumer.recv_async())?; // waits for it
    /// assert_eq!(m.value(), b"late");
    /// worker.join().unwrap()?;
    ///
    /// // After the broker closes, the stored records are read, then `Closed`.
    /// broker.close()?;
    /// assert!(matches!(futures::executor::block_on(consumer.recv_async()), Err(millpond::Error::Closed)));
    /// # drop(consumer); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_async(&mut self) -> RecvFuture<'_> {
        RecvFuture::new(self)
    }
}
