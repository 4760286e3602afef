//! [`CommitHandle`]: the completion of an asynchronous commit — a future,
//! a blocking wait, or nothing at all if dropped.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::error::Result;
use crate::group::commit_queue::Completion;

/// The completion of an asynchronous commit
/// ([`GroupMember::commit_async`](crate::GroupMember::commit_async),
/// [`GroupMember::commit_offsets_async`](crate::GroupMember::commit_offsets_async),
/// [`Committer::commit_offsets_async`](crate::Committer::commit_offsets_async)),
/// rdkafka's `CommitMode::Async`.
///
/// The commit is queued when the call returns and written by the broker's
/// `millpond-commit` thread; the handle resolves with `Ok(())` once the
/// offsets are durable (temporary file, fsync, rename, directory fsync),
/// or with the error that refused or failed them:
///
/// - [`Error::NotAssigned`](crate::Error::NotAssigned): a partition is not
///   the member's — when the call was made, or by the time the file was
///   written (revoked meanwhile); nothing of the request was committed;
/// - [`Error::NotAMember`](crate::Error::NotAMember): requested after the
///   member left the group (through a [`Committer`](crate::Committer));
///   commits queued when it leaves are written as it leaves;
/// - [`Error::OffsetOutOfRange`](crate::Error::OffsetOutOfRange): an offset
///   past the high watermark;
/// - [`Error::Closed`](crate::Error::Closed) /
///   [`Error::TopicDeleted`](crate::Error::TopicDeleted): requested after the
///   broker closed or the topic was deleted (a commit requested *before*
///   [`Broker::close`](crate::Broker::close) is written before `close`
///   returns; one pending when its topic is deleted ends with
///   `TopicDeleted`);
/// - the I/O error of the file write (also reported as a
///   [`BackgroundError`](crate::BackgroundError) of task
///   [`BackgroundTask::Commit`](crate::BackgroundTask::Commit)).
///
/// Use it as a [`Future`] (`.await` it on any executor: it keeps its task's
/// [`Waker`](std::task::Waker), no runtime needed), block on it with
/// [`wait`](CommitHandle::wait), or drop it: the commit goes ahead either
/// way. Requests queued together are written together, the latest offset
/// per partition winning, so many cost one file write, and a later request
/// is never overwritten by an earlier one. Polling it again after it
/// resolved gives the same outcome again.
///
/// # Examples
///
/// ```
/// use millpond::{AutoCommit, Broker, Record, TopicConfig};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-commithandle-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let topic = broker.create_topic("jobs", TopicConfig::default())?;
/// topic.producer().send_batch((0..3).map(|i| Record::new(format!("job-{i}"))))?;
/// let group = topic.group("workers")?.auto_commit(AutoCommit::Off);
/// let mut member = group.join()?;
///
/// member.recv()?;
/// let first = member.commit_async(); // returns at once; the fsync runs elsewhere
/// member.recv()?;                    // delivery goes on meanwhile
/// futures::executor::block_on(first)?;
/// assert!(group.committed()?[&0] >= 1);
///
/// member.recv()?;
/// member.commit_async().wait()?;     // or block on it
/// assert_eq!(group.committed()?[&0], 3);
/// # drop((member, group, topic, broker)); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[must_use = "the commit goes ahead even if the handle is dropped; drop it explicitly to ignore the outcome"]
pub struct CommitHandle {
    done: Arc<Completion>,
}

impl CommitHandle {
    pub(crate) fn new(done: Arc<Completion>) -> CommitHandle {
        CommitHandle { done }
    }

    /// Blocks the calling thread until the commit is durable or failed.
    ///
    /// ```
    /// use millpond::{AutoCommit, Broker, Record, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-commitwait-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.producer().send(Record::new("a"))?;
    /// let group = topic.group("g")?.auto_commit(AutoCommit::Off);
    /// let member = group.join()?;
    /// member.commit_offsets_async(&[(0, 1)]).wait()?;
    /// assert_eq!(group.committed()?[&0], 1);
    /// # drop((member, group, topic, broker)); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait(self) -> Result<()> {
        self.done.wait()
    }

    /// Whether the outcome is known (a [`wait`](CommitHandle::wait) would
    /// not block).
    ///
    /// ```
    /// use millpond::{AutoCommit, Broker, Error, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-commitfinished-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// let member = topic.group("g")?.auto_commit(AutoCommit::Off).join()?;
    /// // A partition the member does not own: refused at once.
    /// let refused = member.commit_offsets_async(&[(7, 0)]);
    /// assert!(refused.is_finished());
    /// assert!(matches!(refused.wait(), Err(Error::NotAssigned { partition: 7, .. })));
    /// # drop((member, topic, broker)); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_finished(&self) -> bool {
        self.done.is_done()
    }
}

impl Future for CommitHandle {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.done.poll(cx)
    }
}
