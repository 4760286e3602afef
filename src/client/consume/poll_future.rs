//! [`PollFuture`]: the future of [`Consumer::poll_async`], the async form
//! of [`Consumer::poll`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use crate::client::consume::consumer::Consumer;
use crate::client::consume::task_wait::TaskWait;
use crate::error::Result;
use crate::storage::message::Message;

/// The future of [`Consumer::poll_async`] (and
/// [`GroupMember::poll_async`](crate::GroupMember::poll_async)): waits for
/// a first record, then resolves with it and every record available at
/// once, up to `max` in all, as [`Consumer::poll`] does.
///
/// It has no timeout of its own (a timer belongs to the executor): wrap it
/// in the executor's, e.g. `tokio::time::timeout`. It is cancel-safe like
/// [`RecvFuture`](crate::RecvFuture): records are taken only by the poll
/// that resolves it, all in that one poll, so dropping it before then loses
/// nothing.
///
/// # Examples
///
/// ```
/// use millpond::{Broker, Record, StartFrom, TopicConfig};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-pollfuture-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let topic = broker.create_topic("t", TopicConfig::default())?;
/// topic.producer().send_batch((0..800).map(|i| Record::new(format!("{i}"))))?;
/// let mut c = topic.consumer(StartFrom::Earliest)?;
/// let first = futures::executor::block_on(c.poll_async(500))?;
/// let rest = futures::executor::block_on(c.poll_async(500))?;
/// assert_eq!((first.len(), rest.len()), (500, 300));
/// assert_eq!(rest[0].offset(), 500);
/// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct PollFuture<'c> {
    wait: TaskWait<'c>,
    max: usize,
}

impl PollFuture<'_> {
    /// The name of the topic being read (for the typed form's errors).
    pub(crate) fn topic_name(&mut self) -> &str {
        self.wait.consumer().topic().name()
    }
}

impl Future for PollFuture<'_> {
    type Output = Result<Vec<Message>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Vec<Message>>> {
        let this = self.get_mut();
        if this.max == 0 {
            return Poll::Ready(Ok(Vec::new()));
        }
        let first = ready!(this.wait.poll_message(cx))?;
        Poll::Ready(Ok(this.wait.consumer().gather(first, this.max)))
    }
}

impl Consumer {
    /// Waits without blocking the thread for a first record, then returns
    /// it with every record available at once, up to `max` in all: the
    /// async form of [`poll`](Consumer::poll) (Kafka's `poll`), less the
    /// timeout, which the executor's timer gives (see [`PollFuture`]). With
    /// `max == 0` it resolves at once, empty. The batch ends early, and the
    /// next receive reports the error, exactly as for `poll`.
    ///
    /// ```
    /// use millpond::{Broker, Record, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-pollasync-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// let mut c = topic.consumer(StartFrom::Earliest)?;
    /// let producer = topic.producer();
    /// let sender = std::thread::spawn(move || producer.send_batch((0..3).map(|i| Record::new(format!("{i}")))));
    /// let mut got = 0;
    /// while got < 3 {
    ///     got += futures::executor::block_on(c.poll_async(100))?.len();
    /// }
    /// sender.join().unwrap()?;
    /// assert!(futures::executor::block_on(c.poll_async(0))?.is_empty());
    /// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn poll_async(&mut self, max: usize) -> PollFuture<'_> {
        PollFuture { wait: TaskWait::new(self), max }
    }
}
