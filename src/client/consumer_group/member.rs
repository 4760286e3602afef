//! [`GroupMember`]: one member of a consumer group — a consumer of the
//! partitions the group gives it, that commits its positions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::broker::topic::Topic;
use crate::client::consume::consumer::Consumer;
use crate::client::consume::iter::{Iter, TryIter};
use crate::client::consume::poll_future::PollFuture;
use crate::client::consume::recv_future::RecvFuture;
use crate::client::consume::stream::MessageStream;
use crate::client::consume::waiting::WaitStrategy;
use crate::client::consume::wakeup::WakeupHandle;
use crate::client::consumer_group::commit_handle::CommitHandle;
use crate::client::consumer_group::committer::Committer;
use crate::client::consumer_group::membership::Membership;
use crate::client::consumer_group::rebalance::RebalanceEvent;
use crate::error::{Error, Result};
use crate::group::commit_queue::Completion;
use crate::group::coordinator::GroupState;
use crate::storage::batch::Batch;
use crate::storage::message::Message;
use crate::storage::message_ref::MessageRef;

/// A member of a consumer group: a consumer with the same receive API as an
/// independent [`Consumer`], reading only the partitions the group assigns
/// it, plus commits. Made by [`Group::join`](crate::Group::join).
///
/// Group changes take effect at the start of each receive call. Dropping the
/// member leaves the group (committing first under auto-commit);
/// [`close`](GroupMember::close) does the same and reports errors.
///
/// # Examples
///
/// The receive calls, positions and lag of a member:
///
/// ```
/// use millpond::{AutoCommit, Broker, Record, TopicConfig};
/// use std::time::{Duration, Instant};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-member-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let topic = broker.create_topic("jobs", TopicConfig::default())?;
/// topic.producer().send_batch((0..10).map(|i| Record::new(format!("job-{i}"))))?;
/// let group = topic.group("workers")?.auto_commit(AutoCommit::Off);
/// let mut m = group.join()?;
///
/// assert_eq!(m.recv()?.value(), b"job-0");                                   // blocks until one is there
/// assert!(m.recv_timeout(Duration::from_millis(10))?.is_some());            // job-1
/// assert!(m.recv_deadline(Instant::now() + Duration::from_millis(10))?.is_some()); // job-2
/// assert_eq!(m.recv_ref()?.value(), b"job-3");                              // borrowed, no copy
/// assert!(m.recv_ref_timeout(Duration::from_millis(10))?.is_some());        // job-4
/// assert_eq!(m.poll(3, Duration::from_millis(10))?.len(), 3);               // jobs 5-7
/// assert_eq!((m.position(0)?, m.positions()), (8, vec![(0, 8)]));
/// assert_eq!(m.lag(), 2);                                                   // not yet received
/// assert_eq!(m.try_iter().count(), 2);                                      // jobs 8-9
/// m.commit()?;
/// assert_eq!(group.lag()?[0].lag, 0);
///
/// // `iter` blocks for more; it ends when the broker closes.
/// let closer = broker.clone();
/// let closing = std::thread::spawn(move || { std::thread::sleep(Duration::from_millis(20)); closer.close() });
/// assert_eq!(m.iter().count(), 0);
/// closing.join().expect("closed")?;
/// # drop((m, group, topic, broker)); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct GroupMember {
    consumer: Consumer,
}

/// A member's group, id, positions and revocation fence, for a transaction.
pub(crate) type TransactionParts = (Arc<GroupState>, u64, Vec<(u32, u64)>, Arc<std::sync::atomic::AtomicU64>);

impl std::fmt::Debug for GroupMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupMember").field("positions", &self.consumer.positions()).finish()
    }
}

impl GroupMember {
    /// The member reading through `consumer`, which carries its membership.
    pub(crate) fn new(consumer: Consumer) -> GroupMember {
        GroupMember { consumer }
    }

    fn membership(&self) -> Result<&Membership> {
        self.consumer.membership.as_deref().ok_or(Error::Closed)
    }

    /// For a transaction's [`commit_offsets`](crate::Transaction::commit_offsets):
    /// the group, this member's id and its positions now.
    pub(crate) fn transaction_parts(&mut self) -> Result<TransactionParts> {
        if let Some(e) = self.consumer.topic().unusable() {
            return Err(e);
        }
        self.consumer.sync_group()?;
        let m = self.membership()?;
        if let Some(reason) = m.commits_on_its_own() {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "group {:?}: a member whose offsets a transaction commits must not commit them itself: {reason}",
                    m.group_name()
                ),
            });
        }
        let (state, id) = m.committer_parts();
        let fence = m.fence();
        Ok((state, id, self.consumer.positions(), fence))
    }

    /// Installs a listener told of every rebalance: partitions revoked
    /// (before they are given up) and assigned (after they are taken).
    ///
    /// See [`RebalanceEvent`] for an example.
    pub fn on_rebalance(&mut self, listener: impl FnMut(&RebalanceEvent<'_>) + Send + 'static) {
        if let Some(m) = self.consumer.membership.as_mut() {
            m.set_listener(Box::new(listener));
        }
    }

    /// Commits the member's position in every partition it owns: everything
    /// received so far counts as processed. Durable when it returns; it is
    /// written after the asynchronous commits requested before it (with
    /// them, in one file write), so it is never overwritten by them.
    ///
    /// See [`Group`](crate::Group) for an example.
    pub fn commit(&mut self) -> Result<()> {
        self.consumer.sync_group()?;
        let positions = self.consumer.positions();
        self.commit_offsets(&positions)
    }

    /// Commits explicit `(partition, next offset to read)` pairs. Each
    /// partition must be owned by this member ([`Error::NotAssigned`]) and
    /// each offset at most the high watermark ([`Error::OffsetOutOfRange`]);
    /// on error nothing is committed.
    ///
    /// ```
    /// use millpond::{AutoCommit, Broker, Error, Record, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-commitoff-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default().partitions(2))?;
    /// topic.producer().send_batch((0..5).map(|i| Record::new(format!("{i}")).partition(0)))?;
    /// let group = topic.group("g")?.auto_commit(AutoCommit::Off);
    /// let mut m = group.join()?;
    /// m.try_recv()?; // takes the partitions
    /// m.commit_offsets(&[(0, 3)])?;
    /// assert_eq!(group.committed()?[&0], 3);
    /// assert!(matches!(m.commit_offsets(&[(0, 6)]), Err(Error::OffsetOutOfRange { .. })));
    /// assert!(matches!(m.commit_offsets(&[(9, 0)]), Err(Error::NotAssigned { .. })));
    /// # drop(m); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn commit_offsets(&mut self, offsets: &[(u32, u64)]) -> Result<()> {
        if let Some(e) = self.consumer.topic().unusable() {
            return Err(e);
        }
        let m = self.membership()?;
        m.commit(offsets)
    }

    /// Commits the member's positions now without waiting for the file
    /// write (rdkafka's `CommitMode::Async`): the positions are taken at the
    /// call, the write (fsyncs and renames) runs on the broker's
    /// `millpond-commit` thread, and receive calls go on delivering
    /// meanwhile. Await the returned [`CommitHandle`], [`wait`](CommitHandle::wait)
    /// on it, or drop it to ignore the outcome.
    ///
    /// At-least-once as with [`commit`](GroupMember::commit): a crash
    /// before the write leaves the previous commit, so records are
    /// re-delivered, never skipped. Commits queued together are written
    /// together, the latest offset per partition winning (many requests,
    /// one file write); a later request is never overwritten by an earlier
    /// one. A partition revoked before the write is not committed: the
    /// handle ends with [`Error::NotAssigned`] (its position was committed
    /// by the revocation itself, unless
    /// [`commit_on_revoke(false)`](crate::Group::commit_on_revoke)).
    ///
    /// ```
    /// use millpond::{AutoCommit, Broker, Record, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-commitasync-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.producer().send_batch((0..100).map(|i| Record::new(format!("{i}"))))?;
    /// let group = topic.group("g")?.auto_commit(AutoCommit::Off);
    /// let mut member = group.join()?;
    /// let mut last = None;
    /// while let Some(_m) = member.try_recv()? {
    ///     // handle(_m), then acknowledge without waiting for the disk
    ///     last = Some(member.commit_async());
    /// }
    /// futures::executor::block_on(last.unwrap())?; // the last one covers them all
    /// assert_eq!(group.committed()?[&0], 100);
    /// # drop((member, group, topic, broker)); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn commit_async(&self) -> CommitHandle {
        self.commit_offsets_async(&self.consumer.positions())
    }

    /// Commits explicit `(partition, next offset to read)` pairs without
    /// waiting for the file write (see [`commit_async`](GroupMember::commit_async)).
    /// The same checks as [`commit_offsets`](GroupMember::commit_offsets)
    /// are made at the call and again when the file is written; a failed
    /// one ends the handle with its error and commits nothing of the
    /// request.
    ///
    /// See [`CommitHandle::wait`] for an example.
    pub fn commit_offsets_async(&self, offsets: &[(u32, u64)]) -> CommitHandle {
        if let Some(e) = self.consumer.topic().unusable() {
            return CommitHandle::new(Completion::ready(Err(e)));
        }
        CommitHandle::new(match self.membership() {
            Ok(m) => m.commit_async(offsets),
            Err(e) => Completion::ready(Err(e)),
        })
    }

    /// A `Send + Sync + Clone` handle that commits for this member from any
    /// thread or task (see [`Committer`]), so an async handler can
    /// acknowledge what it processed. Its commits fail with
    /// [`Error::NotAMember`] once this member has left the group.
    ///
    /// See [`Committer`] for an example.
    pub fn committer(&self) -> Committer {
        Committer::new(self.membership().ok().map(Membership::committer_parts))
    }

    /// Leaves the group, committing first under auto-commit, and reports
    /// any error (dropping does the same silently).
    ///
    /// ```
    /// use millpond::{Broker, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-mclose-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let g = broker.create_topic("t", TopicConfig::default())?.group("g")?;
    /// g.join()?.close()?;
    /// assert_eq!(g.members(), 0);
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(mut self) -> Result<()> {
        self.consumer.leave_group(true)
    }

    /// The topic this member reads.
    ///
    /// ```
    /// use millpond::{Broker, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-mtopic-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let m = broker.create_topic("t", TopicConfig::default())?.group("g")?.join()?;
    /// assert_eq!(m.topic().name(), "t");
    /// # drop(m); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn topic(&self) -> &Topic {
        self.consumer.topic()
    }

    /// The partitions this member reads now.
    ///
    /// See [`RebalanceEvent`] for an example.
    pub fn assignment(&self) -> Vec<u32> {
        self.consumer.assignment()
    }

    /// `(partition, position)` for every owned partition (see
    /// [`Consumer::positions`]).
    ///
    /// See [`GroupMember`] for an example.
    pub fn positions(&self) -> Vec<(u32, u64)> {
        self.consumer.positions()
    }

    /// Next offset to read in an owned `partition` (see [`Consumer::position`]).
    ///
    /// See [`GroupMember`] for an example.
    pub fn position(&self, partition: u32) -> Result<u64> {
        self.consumer.position(partition)
    }

    /// Moves an owned partition's position (see [`Consumer::seek`]).
    ///
    /// See [`Consumer::seek`] for an example.
    pub fn seek(&mut self, partition: u32, offset: u64) -> Result<()> {
        if !self.consumer.assignment().contains(&partition) {
            let m = self.membership()?;
            return Err(Error::NotAssigned {
                topic: self.consumer.topic().name().to_string(),
                group: m.group_name().to_string(),
                partition,
            });
        }
        self.consumer.seek(partition, offset)
    }

    /// Moves every owned partition's position back to the group's committed
    /// offset (a partition without one: as the group's
    /// [`OffsetReset`](crate::OffsetReset) says): to process again what was
    /// received since the last commit — after a [`Transaction`](crate::Transaction)
    /// carrying this member's positions was aborted or failed, say.
    ///
    /// ```
    /// use millpond::{AutoCommit, Broker, Record, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-member-seekcommitted-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.producer().send_batch((0..5).map(|i| Record::new(format!("{i}"))))?;
    /// let mut m = topic.group("g")?.auto_commit(AutoCommit::Off).commit_on_revoke(false).join()?;
    /// m.recv()?;
    /// m.commit()?; // one record processed
    /// assert_eq!(m.try_iter().count(), 4);
    /// m.seek_to_committed()?;
    /// assert_eq!(m.position(0)?, 1);
    /// # drop((m, topic, broker)); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn seek_to_committed(&mut self) -> Result<()> {
        let (state, _) = self.membership()?.committer_parts();
        let committed = state.committed()?;
        let reset = self.membership()?.reset();
        for p in self.consumer.assignment() {
            match committed.get(&p) {
                Some(&o) => self.consumer.seek(p, o)?,
                None => match reset {
                    crate::client::consumer_group::policy::OffsetReset::Latest => {
                        let end = self.consumer.topic().high_watermark(p)?;
                        self.consumer.seek(p, end)?
                    }
                    _ => {
                        let start = self.consumer.topic().log_start(p)?;
                        self.consumer.seek(p, start)?
                    }
                },
            }
        }
        Ok(())
    }

    /// Moves every owned partition's position to its earliest stored offset
    /// (see [`Consumer::seek_to_beginning`]): to process the group's
    /// partitions again.
    ///
    /// ```
    /// use millpond::{AutoCommit, Broker, Record, TopicConfig, WaitStrategy};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-member-seek-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.producer().send_batch((0..5).map(|i| Record::new(format!("{i}"))))?;
    /// let mut m = topic.group("g")?.auto_commit(AutoCommit::Off).join()?.wait_strategy(WaitStrategy::Yield);
    /// assert_eq!(m.try_iter().count(), 5);
    /// m.seek_to_beginning()?;
    /// assert_eq!(m.position(0)?, 0);
    /// m.seek_to_end()?;
    /// assert_eq!(m.position(0)?, 5);
    /// # drop((m, topic, broker)); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn seek_to_beginning(&mut self) -> Result<()> {
        self.consumer.seek_to_beginning()
    }

    /// Moves every owned partition's position to its high watermark (see
    /// [`Consumer::seek_to_end`]): to skip the backlog.
    ///
    /// See [`GroupMember::seek_to_beginning`] for an example.
    pub fn seek_to_end(&mut self) -> Result<()> {
        self.consumer.seek_to_end()
    }

    /// Sets how this member waits for records (see
    /// [`Consumer::wait_strategy`]).
    ///
    /// See [`GroupMember::seek_to_beginning`] for an example.
    pub fn wait_strategy(mut self, wait: WaitStrategy) -> Self {
        self.consumer = self.consumer.wait_strategy(wait);
        self
    }

    /// Records not yet received in the owned partitions (see [`Consumer::lag`]).
    ///
    /// See [`GroupMember`] for an example.
    pub fn lag(&self) -> u64 {
        self.consumer.lag()
    }

    /// See [`Consumer::try_recv`].
    ///
    /// See [`Group`](crate::Group) for an example.
    pub fn try_recv(&mut self) -> Result<Option<Message>> {
        self.consumer.try_recv()
    }

    /// See [`Consumer::recv`].
    ///
    /// See [`GroupMember`] for an example.
    pub fn recv(&mut self) -> Result<Message> {
        self.consumer.recv()
    }

    /// See [`Consumer::try_recv_ref`]: the record borrowed from the mapped
    /// log, with no copy.
    ///
    /// ```
    /// use millpond::{AutoCommit, Broker, Record, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-member-ref-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.producer().send_batch((0..10).map(|i| Record::new(vec![i as u8])))?;
    /// let group = topic.group("sum")?.auto_commit(AutoCommit::Off);
    /// let mut member = group.join()?;
    /// let mut sum = 0u32;
    /// while let Some(m) = member.try_recv_ref()? {
    ///     sum += u32::from(m.value()[0]);
    /// }
    /// member.commit()?; // commits what was received, as with `try_recv`
    /// assert_eq!(sum, 45);
    /// assert_eq!(group.committed()?[&0], 10);
    /// # drop((member, group, topic, broker)); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_recv_ref(&mut self) -> Result<Option<MessageRef<'_>>> {
        self.consumer.try_recv_ref()
    }

    /// See [`Consumer::recv_ref`].
    ///
    /// See [`GroupMember`] for an example.
    pub fn recv_ref(&mut self) -> Result<MessageRef<'_>> {
        self.consumer.recv_ref()
    }

    /// See [`Consumer::recv_ref_timeout`].
    ///
    /// See [`GroupMember`] for an example.
    pub fn recv_ref_timeout(&mut self, timeout: Duration) -> Result<Option<MessageRef<'_>>> {
        self.consumer.recv_ref_timeout(timeout)
    }

    /// See [`Consumer::recv_timeout`].
    ///
    /// See [`GroupMember`] for an example.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Message>> {
        self.consumer.recv_timeout(timeout)
    }

    /// See [`Consumer::recv_deadline`].
    ///
    /// See [`GroupMember`] for an example.
    pub fn recv_deadline(&mut self, deadline: Instant) -> Result<Option<Message>> {
        self.consumer.recv_deadline(deadline)
    }

    /// See [`Consumer::poll`].
    ///
    /// See [`GroupMember`] for an example.
    pub fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<Message>> {
        self.consumer.poll(max, timeout)
    }

    /// See [`Consumer::poll_ref`]: a [`Batch`](crate::Batch) of records
    /// borrowed from the mapped log. A `commit` after handling it commits
    /// the whole batch.
    ///
    /// ```
    /// use millpond::{AutoCommit, Broker, Record, TopicConfig};
    /// use std::time::Duration;
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-member-pollref-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.producer().send_batch((0..10).map(|i| Record::new(vec![i as u8])))?;
    /// let group = topic.group("sum")?.auto_commit(AutoCommit::Off);
    /// let mut member = group.join()?;
    /// let sum: u32 = member.poll_ref(100, Duration::from_millis(10))?.map(|m| u32::from(m.value()[0])).sum();
    /// member.commit()?; // the whole batch
    /// assert_eq!(sum, 45);
    /// assert_eq!(group.lag()?[0].lag, 0);
    /// # drop((member, group, topic, broker)); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn poll_ref(&mut self, max: usize, timeout: Duration) -> Result<Batch<'_>> {
        self.consumer.poll_ref(max, timeout)
    }

    /// The async form of [`recv`](GroupMember::recv) (see
    /// [`Consumer::recv_async`]): group changes take effect at the start of
    /// each poll, as at the start of each blocking receive, and a rebalance
    /// wakes the waiting task as it wakes a blocked thread. Cancel-safe:
    /// dropping the future takes no record, so nothing is committed for it.
    ///
    /// ```
    /// use millpond::{AutoCommit, Broker, Record, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-member-recvasync-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("jobs", TopicConfig::default())?;
    /// let group = topic.group("workers")?.auto_commit(AutoCommit::Off);
    /// let mut member = group.join()?;
    /// let producer = topic.producer();
    /// let sender = std::thread::spawn(move || producer.send(Record::new("job-1")));
    /// let m = futures::executor::block_on(member.recv_async())?;
    /// assert_eq!(m.value(), b"job-1");
    /// member.commit()?;
    /// assert_eq!(group.committed()?[&0], 1);
    /// sender.join().unwrap()?;
    /// # drop((member, group, topic, broker)); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_async(&mut self) -> RecvFuture<'_> {
        self.consumer.recv_async()
    }

    /// The async form of [`poll`](GroupMember::poll) (see
    /// [`Consumer::poll_async`]). A `commit` after handling the batch
    /// commits all of it.
    ///
    /// ```
    /// use millpond::{AutoCommit, Broker, Record, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-member-pollasync-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.producer().send_batch((0..10).map(|i| Record::new(vec![i as u8])))?;
    /// let group = topic.group("sum")?.auto_commit(AutoCommit::Off);
    /// let mut member = group.join()?;
    /// let batch = futures::executor::block_on(member.poll_async(100))?;
    /// member.commit()?;
    /// assert_eq!(batch.iter().map(|m| u32::from(m.value()[0])).sum::<u32>(), 45);
    /// assert_eq!(group.lag()?[0].lag, 0);
    /// # drop((member, group, topic, broker)); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn poll_async(&mut self, max: usize) -> PollFuture<'_> {
        self.consumer.poll_async(max)
    }

    /// The async form of [`iter`](GroupMember::iter): a
    /// [`futures_core::Stream`] of owned records (see [`Consumer::stream`]),
    /// ending when the broker closes.
    ///
    /// ```
    /// use futures::StreamExt;
    /// use millpond::{AutoCommit, Broker, Record, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-member-stream-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default().partitions(2))?;
    /// topic.producer().send_batch((0..4).map(|i| Record::new(format!("{i}"))))?;
    /// let mut member = topic.group("g")?.auto_commit(AutoCommit::Off).join()?;
    /// let closer = broker.clone();
    /// let closing = std::thread::spawn(move || { std::thread::sleep(std::time::Duration::from_millis(50)); closer.close() });
    /// let received = futures::executor::block_on(member.stream().count());
    /// assert_eq!(received, 4); // then the stream ended: the broker closed
    /// closing.join().expect("closed")?;
    /// # drop((member, topic, broker)); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stream(&mut self) -> MessageStream<'_> {
        self.consumer.stream()
    }

    /// See [`Consumer::iter`].
    ///
    /// See [`GroupMember`] for an example.
    pub fn iter(&mut self) -> Iter<'_> {
        self.consumer.iter()
    }

    /// See [`Consumer::try_iter`].
    ///
    /// See [`GroupMember`] for an example.
    pub fn try_iter(&mut self) -> TryIter<'_> {
        self.consumer.try_iter()
    }

    /// A handle that wakes this member out of a blocking or async receive
    /// from another thread ([`Error::Interrupted`]), to stop it without
    /// closing the broker (see [`Consumer::wakeup_handle`]).
    ///
    /// See [`WakeupHandle`](crate::WakeupHandle) for an example.
    pub fn wakeup_handle(&self) -> WakeupHandle {
        self.consumer.wakeup_handle()
    }

    /// The membership, for the channel bridge.
    pub(crate) fn membership_mut(&mut self) -> Option<&mut Membership> {
        self.consumer.membership.as_deref_mut()
    }
}

#[cfg(test)]
mod tests {
    use crate::{Broker, Error, TopicConfig};
    use std::time::Duration;

    #[test]
    fn a_pending_async_receive_registers_once_with_its_partitions_and_its_group() {
        use std::future::Future;
        let dir = std::env::temp_dir().join(format!("millpond-unit-member-async-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let broker = Broker::open(&dir).unwrap();
        let topic = broker.create_topic("t", TopicConfig::default().partitions(2)).unwrap();
        let mut m = topic.group("g").unwrap().join().unwrap();
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let counts = |m: &super::GroupMember| {
            let group = m.consumer.membership.as_ref().unwrap().notifier().registered();
            let parts: Vec<usize> = (0..2).map(|p| topic.partition_log(p).unwrap().notifier.registered()).collect();
            (parts, group)
        };
        let mut f = m.recv_async();
        for _ in 0..50 {
            assert!(std::pin::Pin::new(&mut f).poll(&mut cx).is_pending());
        }
        drop(f);
        assert_eq!(counts(&m), (vec![0, 0], 0), "dropped: nothing left registered");
        let mut f = m.recv_async();
        assert!(std::pin::Pin::new(&mut f).poll(&mut cx).is_pending());
        assert!(std::pin::Pin::new(&mut f).poll(&mut cx).is_pending());
        drop(f);
        let mut f = m.poll_async(10);
        assert!(std::pin::Pin::new(&mut f).poll(&mut cx).is_pending());
        // While `f` borrows the member, the partitions' notifiers are
        // reached through the topic.
        assert!(std::pin::Pin::new(&mut f).poll(&mut cx).is_pending());
        let parts: Vec<usize> = (0..2).map(|p| topic.partition_log(p).unwrap().notifier.registered()).collect();
        assert_eq!(parts, [1, 1], "one registration per partition, however often polled");
        drop(f);
        assert_eq!(counts(&m), (vec![0, 0], 0));
        drop((m, topic, broker));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn member_without_partitions_wakes_when_the_broker_closes() {
        let dir = std::env::temp_dir().join(format!("millpond-unit-idle-member-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let broker = Broker::open(&dir).unwrap();
        let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
        let group = topic.group("g").unwrap();
        let mut busy = group.join().unwrap();
        busy.try_recv().unwrap(); // takes the only partition
        let mut idle = group.join().unwrap();
        let (tx, rx) = crossbeam_channel::bounded(1);
        let waiter = std::thread::spawn(move || {
            let r = idle.recv();
            tx.send(matches!(r, Err(Error::Closed))).unwrap();
        });
        std::thread::sleep(Duration::from_millis(50));
        broker.close().unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(true), "idle member did not wake with Closed");
        waiter.join().unwrap();
        drop(busy);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn panicking_rebalance_listener_still_releases_the_members_partitions() {
        let dir = std::env::temp_dir().join(format!("millpond-unit-panicky-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let broker = Broker::open(&dir).unwrap();
        let topic = broker.create_topic("t", TopicConfig::default().partitions(2)).unwrap();
        topic.producer().send(crate::Record::new("x").partition(1)).unwrap();
        let group = topic.group("g").unwrap();
        let t = std::thread::spawn({
            let group = group.clone();
            move || {
                let mut m = group.join().unwrap();
                m.on_rebalance(|_| panic!("listener bug"));
                let _ = m.try_recv(); // panics inside the listener
            }
        });
        assert!(t.join().is_err(), "the listener panicked");
        assert_eq!(group.members(), 0, "the unwound member left the group");
        let mut other = group.join().unwrap();
        let m = other.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(m.map(|m| m.value().to_vec()), Some(b"x".to_vec()), "its partitions were released");
        drop(other);
        drop(broker);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn member_dropped_while_panicking_does_not_commit_the_failed_record() {
        let dir = std::env::temp_dir().join(format!("millpond-unit-panicdrop-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let broker = Broker::open(&dir).unwrap();
        let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
        topic.producer().send(crate::Record::new("poison")).unwrap();
        let group = topic.group("g").unwrap().auto_commit(crate::AutoCommit::Interval(Duration::ZERO));
        let g2 = group.clone();
        let t = std::thread::spawn(move || {
            let mut m = g2.join().unwrap();
            let _msg = m.recv().unwrap();
            panic!("handling failed");
        });
        assert!(t.join().is_err());
        assert_eq!(group.committed().unwrap().get(&0).copied().unwrap_or(0), 0, "the failed record stays uncommitted");
        drop(broker);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_caught_panic_in_the_rebalance_listener_still_hands_the_partitions_on() {
        let dir = std::env::temp_dir().join(format!("millpond-unit-caught-listener-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let broker = Broker::open(&dir).unwrap();
        let topic = broker.create_topic("t", TopicConfig::default().partitions(2)).unwrap();
        topic.producer().send(crate::Record::new("x").partition(1)).unwrap();
        let group = topic.group("g").unwrap();
        let mut a = group.join().unwrap();
        a.on_rebalance(|_| panic!("listener bug"));
        // A worker pool catches the panic and keeps the member.
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| a.try_recv()));
        assert!(caught.is_err(), "the listener panicked");
        assert_eq!(group.members(), 0, "the member whose listener panicked left the group");
        let mut b = group.join().unwrap();
        let m = b.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(m.map(|m| m.value().to_vec()), Some(b"x".to_vec()), "another member got its partitions");
        drop((a, b));
        drop(broker);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
