//! [`SendFuture`]: the async form of [`Producer::send`], for the two cases
//! where a send waits: a partition at its backlog limit, and a topic whose
//! fsync policy is `Always`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::client::produce::producer::Producer;
use crate::error::{Error, Result};
use crate::storage::durable_appender::Completion;
use crate::storage::notify::WaitCell;
use crate::storage::partition_log::state::PartitionLog;
use crate::storage::policy::FsyncPolicy;
use crate::storage::record::{Record, RecordId};

/// The future of [`Producer::send_async`]: the record's id once it is
/// stored (and, for `FsyncPolicy::Always`, synced).
///
/// Where `send` would block, this waits without holding a thread:
///
/// - **a full backlog** ([`Backlog`](crate::Backlog)): the task leaves its
///   waker in the partition's wait list, beside blocked producers, and is
///   woken when a group commits (the same no-lost-wake-up protocol as
///   consumers: register, then re-check);
/// - **`FsyncPolicy::Always`**: the record is handed (copied) to a broker
///   thread that appends it and syncs, and the task is woken when it is
///   durable. Records handed over meanwhile to the same partition go in one
///   frame with one fsync, so many tasks sending durably share their
///   fsyncs.
///
/// Otherwise (the common case) the first poll appends the record, a copy
/// into the mapped log, and is ready at once.
///
/// Cancel-safe until the record is handed over: dropping the future while it
/// waits for room sends nothing. Once handed to the sync thread (an
/// `Always` topic with room) the record is written even if the future is
/// dropped; only the answer is lost.
///
/// # Examples
///
/// ```
/// use millpond::{Broker, FsyncPolicy, Record, StartFrom, TopicConfig};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-sendasync-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let ledger = broker.create_topic("ledger", TopicConfig::default().fsync(FsyncPolicy::Always))?;
/// let producer = ledger.producer();
/// let ids = futures::executor::block_on(async {
///     let a = producer.send_async(Record::new("debit 5")).await?;
///     let b = producer.send_async(Record::new("credit 5")).await?;
///     Ok::<_, millpond::Error>([a, b]) // each synced to disk when it resolved
/// })?;
/// assert_eq!((ids[0].offset, ids[1].offset), (0, 1));
/// assert_eq!(ledger.consumer(StartFrom::Earliest)?.try_iter().count(), 2);
/// # drop((producer, ledger, broker)); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a future does nothing unless awaited"]
pub struct SendFuture<'p, 'r> {
    producer: &'p Producer,
    /// The record, until it is appended or handed over.
    record: Option<Record<'r>>,
    /// `(partition, encoded size)`, chosen at the first poll.
    target: Option<(u32, usize)>,
    /// Where a waiting poll leaves its waker.
    cell: Arc<WaitCell>,
    /// The partition whose space notifier the cell is registered with.
    armed: Option<Arc<PartitionLog>>,
    /// The durable append in flight.
    durable: Option<Arc<Completion>>,
}

impl std::fmt::Debug for SendFuture<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendFuture")
            .field("target", &self.target)
            .field("handed_over", &self.durable.is_some())
            .finish()
    }
}

impl<'p, 'r> SendFuture<'p, 'r> {
    pub(crate) fn new(producer: &'p Producer, record: Record<'r>) -> Self {
        SendFuture {
            producer,
            record: Some(record),
            target: None,
            cell: Arc::new(WaitCell::default()),
            armed: None,
            durable: None,
        }
    }

    fn disarm(&mut self) {
        if let Some(log) = self.armed.take() {
            self.cell.disarm_task(|visit| visit(&log.space));
        }
    }

    /// `Ready(Ok)` once the partition has room, `Ready(Err)` if it never
    /// will (closed, deleted), `Pending` with the waker registered.
    fn poll_room(&mut self, cx: &mut Context<'_>, partition: u32) -> Poll<Result<()>> {
        let topic = self.producer.topic();
        self.disarm();
        if !topic.over_limit(partition) {
            return Poll::Ready(Ok(()));
        }
        let log = Arc::clone(topic.partition_log(partition)?);
        self.cell.arm_task(cx.waker(), |visit| visit(&log.space));
        self.armed = Some(Arc::clone(&log));
        // Re-check after registering: a commit in between is not lost.
        if let Some(e) = topic.unusable().or_else(|| log.space.is_closed().then_some(Error::Closed)) {
            self.disarm();
            return Poll::Ready(Err(e));
        }
        if topic.over_limit(partition) {
            return Poll::Pending;
        }
        self.disarm();
        Poll::Ready(Ok(()))
    }
}

impl Future for SendFuture<'_, '_> {
    type Output = Result<RecordId>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<RecordId>> {
        let this = self.get_mut();
        if let Some(done) = &this.durable {
            let partition = this.target.map_or(0, |(p, _)| p);
            let polled = done.poll(cx).map_ok(|offset| RecordId { partition, offset });
            if polled.is_ready() {
                this.durable = None; // a poll after this one is an error, as on the plain path
            }
            return polled;
        }
        let Some(record) = this.record.as_ref() else { return Poll::Ready(Err(polled_after_completion())) };
        let (partition, size) = match this.target {
            Some(t) => t,
            None => {
                let size = match this.producer.check(record) {
                    Ok(size) => size,
                    Err(e) => return Poll::Ready(Err(e)),
                };
                let partition = match this.producer.choose(record, || this.producer.round_robin()) {
                    Ok(p) => p,
                    Err(e) => return Poll::Ready(Err(e)),
                };
                *this.target.insert((partition, size))
            }
        };
        match this.poll_room(cx, partition) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
        let Some(record) = this.record.take() else { return Poll::Ready(Err(polled_after_completion())) };
        let log = match this.producer.topic().partition_log(partition) {
            Ok(log) => Arc::clone(log),
            Err(e) => return Poll::Ready(Err(e)),
        };
        if log.settings.fsync != FsyncPolicy::Always {
            return Poll::Ready(this.producer.append_one(&record, partition, size));
        }
        match this.producer.topic().shared.submit_durable(log, record.into_owned(), size) {
            Ok(done) => {
                let polled = done.poll(cx).map_ok(|offset| RecordId { partition, offset });
                if polled.is_pending() {
                    this.durable = Some(done);
                }
                polled
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

/// What a [`SendFuture`] polled again after it completed returns.
fn polled_after_completion() -> Error {
    Error::InvalidConfig { reason: "SendFuture polled after it completed".into() }
}

impl Drop for SendFuture<'_, '_> {
    fn drop(&mut self) {
        self.disarm();
    }
}

impl Producer {
    /// The async form of [`send`](Producer::send): waits for room under a
    /// [`Backlog`](crate::Backlog) limit, and for the sync of an
    /// [`FsyncPolicy::Always`](crate::FsyncPolicy::Always) topic, without
    /// holding a thread (see [`SendFuture`]); otherwise it is `send`, ready
    /// at its first poll.
    ///
    /// See [`SendFuture`] for an example.
    pub fn send_async<'r>(&self, record: Record<'r>) -> SendFuture<'_, 'r> {
        SendFuture::new(self, record)
    }
}
