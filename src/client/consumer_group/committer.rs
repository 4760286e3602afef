//! [`Committer`]: a handle that commits for a group member from any thread
//! or task.

use std::sync::Arc;

use crate::client::consumer_group::commit_handle::CommitHandle;
use crate::error::{Error, Result};
use crate::group::commit_queue::Completion;
use crate::group::coordinator::GroupState;

/// Commits offsets on behalf of one [`GroupMember`](crate::GroupMember)
/// from any thread or task: made by
/// [`GroupMember::committer`](crate::GroupMember::committer), `Clone +
/// Send + Sync`, so the handlers a member hands records to can acknowledge
/// what they processed while the member goes on receiving.
///
/// Its commits are the member's: each partition must be owned by the member
/// when the call is made and still when the offsets are written
/// ([`Error::NotAssigned`] otherwise, and nothing of that request is
/// committed), and they are queued in one order with the member's own
/// commits (a later request is never overwritten by an earlier one). The
/// ones queued when the member leaves the group (closed or dropped) are
/// written as it leaves; later ones fail with [`Error::NotAMember`]. A committer does not keep the broker open; after
/// it closes, commits fail with [`Error::Closed`].
///
/// # Examples
///
/// A worker thread acknowledges what it handled; the member keeps receiving:
///
/// ```
/// use millpond::{AutoCommit, Broker, Error, Record, TopicConfig};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-committer-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let topic = broker.create_topic("jobs", TopicConfig::default())?;
/// topic.producer().send_batch((0..10).map(|i| Record::new(format!("job-{i}"))))?;
/// let group = topic.group("workers")?.auto_commit(AutoCommit::Off);
/// let mut member = group.join()?;
///
/// let (tx, rx) = crossbeam_channel::unbounded::<millpond::Message>();
/// let committer = member.committer();
/// let worker = std::thread::spawn(move || -> millpond::Result<()> {
///     for m in rx {
///         // handle(m), then acknowledge it
///         committer.commit_offsets(&[(m.partition(), m.offset() + 1)])?;
///     }
///     Ok(())
/// });
/// while let Some(m) = member.try_recv()? {
///     tx.send(m).unwrap();
/// }
/// drop(tx);
/// worker.join().unwrap()?;
/// assert_eq!(group.committed()?[&0], 10);
///
/// let late = member.committer();
/// drop(member); // left the group
/// assert!(matches!(late.commit_offsets(&[(0, 10)]), Err(Error::NotAMember { .. })));
/// # drop((group, topic, broker)); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Committer {
    /// The member's group and id; `None` for a member that had already
    /// left when the committer was asked for.
    member: Option<(Arc<GroupState>, u64)>,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Committer");
        if let Some((state, id)) = &self.member {
            d.field("group", &state.name).field("topic", &&*state.topic.name).field("member", id);
        }
        d.finish()
    }
}

impl Committer {
    pub(crate) fn new(member: Option<(Arc<GroupState>, u64)>) -> Committer {
        Committer { member }
    }

    /// Queues a commit of `(partition, next offset to read)` pairs and
    /// returns at once; the [`CommitHandle`] resolves when they are durable
    /// (or refused). See [`GroupMember::commit_offsets_async`](crate::GroupMember::commit_offsets_async).
    ///
    /// ```
    /// use millpond::{AutoCommit, Broker, Record, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-committer-async-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.producer().send_batch((0..4).map(|i| Record::new(vec![i])))?;
    /// let group = topic.group("g")?.auto_commit(AutoCommit::Off);
    /// let member = group.join()?;
    /// let committer = member.committer();
    /// let acked = std::thread::spawn(move || {
    ///     futures::executor::block_on(committer.commit_offsets_async(&[(0, 4)]))
    /// });
    /// acked.join().unwrap()?;
    /// assert_eq!(group.committed()?[&0], 4);
    /// # drop((member, group, topic, broker)); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn commit_offsets_async(&self, offsets: &[(u32, u64)]) -> CommitHandle {
        CommitHandle::new(match &self.member {
            Some((state, id)) => state.commit_async(*id, offsets),
            None => Completion::ready(Err(Error::Closed)),
        })
    }

    /// Commits `(partition, next offset to read)` pairs, durable when it
    /// returns (after the commits requested before it). See
    /// [`GroupMember::commit_offsets`](crate::GroupMember::commit_offsets).
    ///
    /// See [`Committer`] for an example.
    pub fn commit_offsets(&self, offsets: &[(u32, u64)]) -> Result<()> {
        match &self.member {
            Some((state, id)) => state.commit(*id, offsets),
            None => Err(Error::Closed),
        }
    }
}
