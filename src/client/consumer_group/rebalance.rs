//! [`RebalanceEvent`]: what a member's rebalance listener is told when
//! partitions are taken away or handed over.

use std::cell::RefCell;

use crate::error::{Error, Result};
use crate::group::coordinator::GroupState;

/// Whether a [`RebalanceEvent`] takes partitions away or hands them over.
///
/// See [`RebalanceEvent`] for an example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RebalanceKind {
    /// The member is about to lose these partitions.
    Revoked,
    /// The member has just been given these partitions.
    Assigned,
}

/// What a rebalance listener ([`GroupMember::on_rebalance`](crate::GroupMember::on_rebalance)) is told.
///
/// On [`RebalanceKind::Revoked`], the member still owns the partitions, so
/// the listener can [`commit`](RebalanceEvent::commit) offsets for them (for
/// example after waiting for records it handed to other threads).
///
/// # Examples
///
/// ```
/// use millpond::{Broker, RebalanceKind, Record, TopicConfig};
/// use std::sync::{Arc, Mutex};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-rebalance-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let topic = broker.create_topic("t", TopicConfig::default().partitions(2))?;
/// let log = Arc::new(Mutex::new(Vec::new()));
/// let seen = Arc::clone(&log);
/// let mut a = topic.group("g")?.join()?; // takes both partitions
/// // A listener installed after `join` hears of what it took at the next
/// // receive call.
/// a.on_rebalance(move |e| seen.lock().unwrap().push((e.kind(), e.partitions().to_vec())));
/// let mut b = topic.group("g")?.join()?; // partition 1 is b's once a lets it go
/// a.try_recv()?; // gives partition 1 up
/// b.try_recv()?; // takes it
/// assert_eq!(a.assignment(), [0]);
/// assert_eq!(b.assignment(), [1]);
/// assert_eq!(*log.lock().unwrap(), [(RebalanceKind::Assigned, vec![0, 1]), (RebalanceKind::Revoked, vec![1])]);
/// # drop((a, b)); drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RebalanceEvent<'a> {
    pub(crate) kind: RebalanceKind,
    pub(crate) partitions: &'a [u32],
    pub(crate) positions: &'a [(u32, u64)],
    pub(crate) state: &'a GroupState,
    pub(crate) member: u64,
    /// Positions the listener asked for with [`RebalanceEvent::seek`],
    /// applied by the member once the listener returns.
    pub(crate) seeks: RefCell<Vec<(u32, u64)>>,
}

impl std::fmt::Debug for RebalanceEvent<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RebalanceEvent")
            .field("kind", &self.kind)
            .field("partitions", &self.partitions)
            .field("positions", &self.positions)
            .finish()
    }
}

impl RebalanceEvent<'_> {
    /// Revoked or assigned.
    ///
    /// See [`RebalanceEvent`] for an example.
    pub fn kind(&self) -> RebalanceKind {
        self.kind
    }

    /// The partitions concerned.
    ///
    /// See [`RebalanceEvent`] for an example.
    pub fn partitions(&self) -> &[u32] {
        self.partitions
    }

    /// `(partition, position)` of each partition concerned: for revoked
    /// partitions, the offset after the last record the member received; for
    /// assigned ones, where it starts reading.
    ///
    /// See [`RebalanceEvent::commit`] for an example.
    pub fn positions(&self) -> &[(u32, u64)] {
        self.positions
    }

    /// Commits offsets for partitions the member still owns (for revoked
    /// partitions: until the listener returns).
    ///
    /// ```
    /// use millpond::{AutoCommit, Broker, RebalanceKind, Record, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-rebalance-commit-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default().partitions(2))?;
    /// topic.producer().send_batch((0..4).map(|i| Record::new(format!("{i}")).partition(1)))?;
    /// let group = topic.group("g")?.auto_commit(AutoCommit::Off).commit_on_revoke(false);
    /// let mut a = group.join()?;
    /// // Before giving a partition up, commit where the member got to in it.
    /// a.on_rebalance(|e| {
    ///     if e.kind() == RebalanceKind::Revoked {
    ///         e.commit(e.positions()).expect("still owned until the listener returns");
    ///     }
    /// });
    /// while a.try_recv()?.is_some() {} // owns both; reads partition 1 to offset 4
    /// let mut b = group.join()?;
    /// a.try_recv()?; // gives partition 1 up: the listener commits (1, 4)
    /// assert_eq!(group.committed()?[&1], 4);
    /// b.try_recv()?; // takes partition 1 at the committed offset
    /// assert_eq!(b.position(1)?, 4);
    /// # drop((a, b, group, topic, broker)); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn commit(&self, offsets: &[(u32, u64)]) -> Result<()> {
        self.state.commit(self.member, offsets)
    }

    /// On [`RebalanceKind::Assigned`]: start reading `partition` (one of
    /// this event's) at `offset` instead of where the group would have
    /// started it (Kafka's seek in `onPartitionsAssigned`: for example at
    /// offsets the application keeps with its own state). The member moves
    /// there before it returns a record of that partition.
    /// [`Error::NotAssigned`] for a partition this event does not hand over
    /// (or on a revocation), [`Error::OffsetOutOfRange`] for an offset
    /// outside the partition's log.
    ///
    /// ```
    /// use millpond::{Broker, RebalanceKind, Record, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-rebalance-seek-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.producer().send_batch((0..10u8).map(|i| Record::new(vec![i])))?;
    /// let mut m = topic.group("g")?.join()?;
    /// // The application's own store says it has processed up to offset 7.
    /// m.on_rebalance(|e| {
    ///     if e.kind() == RebalanceKind::Assigned {
    ///         e.seek(0, 7).expect("partition 0 is handed over");
    ///     }
    /// });
    /// assert_eq!(m.recv()?.value(), &[7]);
    /// # drop((m, topic, broker)); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn seek(&self, partition: u32, offset: u64) -> Result<()> {
        if self.kind != RebalanceKind::Assigned || !self.partitions.contains(&partition) {
            return Err(Error::NotAssigned {
                topic: self.state.topic.name.to_string(),
                group: self.state.name.clone(),
                partition,
            });
        }
        let log = &self.state.topic.partitions[partition as usize];
        if offset < log.log_start() || offset > log.high_watermark() {
            return Err(log.out_of_range(offset));
        }
        self.seeks.borrow_mut().push((partition, offset));
        Ok(())
    }
}

pub(crate) type Listener = Box<dyn FnMut(&RebalanceEvent<'_>) + Send>;
