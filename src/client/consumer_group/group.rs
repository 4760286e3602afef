//! [`Group`]: a named consumer group on a topic — joining it, its committed
//! offsets and lag.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::broker::topic::Topic;
use crate::client::consume::consumer::Consumer;
use crate::client::consume::start_from::StartFrom;
use crate::client::consumer_group::member::GroupMember;
use crate::client::consumer_group::membership::Membership;
use crate::client::consumer_group::policy::{AutoCommit, OffsetReset};
use crate::error::Result;
use crate::group::coordinator::GroupState;
use crate::topic::names;

/// A consumer group of one topic: a handle to configure members and read
/// the group's committed offsets and lag. Made by [`Topic::group`].
///
/// # Assignment
///
/// Members split the partitions with Kafka's *range* assignment: in join
/// order, each member gets a contiguous range (the first `partitions %
/// members` one more). When a member joins, leaves or is dropped, the
/// ranges are recomputed; each member learns of it at its next receive call
/// (a blocked receive is woken). A member reads a partition only while it
/// owns it, and gives up a revoked partition — committing its position
/// first, unless [`commit_on_revoke(false)`](Group::commit_on_revoke) — before
/// the next owner takes it, so no partition is ever read by two members at
/// once. Several groups on one topic are independent: each sees every record.
///
/// # Examples
///
/// ```
/// use millpond::{AutoCommit, Broker, Record, TopicConfig};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-group-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let orders = broker.create_topic("orders", TopicConfig::default().partitions(4))?;
/// orders.producer().send_batch((0..100).map(|i| Record::new(format!("{i}")).key(format!("{}", i % 10))))?;
///
/// let billing = orders.group("billing")?.auto_commit(AutoCommit::Off);
/// let mut member = billing.join()?;
/// let mut handled = 0;
/// while let Some(m) = member.try_recv()? {
///     handled += 1;          // handle(m)
///     member.commit()?;      // at-least-once: commit after handling
/// #   let _ = m;
/// }
/// assert_eq!(handled, 100);
/// assert_eq!(billing.lag()?.iter().map(|l| l.lag).sum::<u64>(), 0);
///
/// // A restarted member resumes where the group left off.
/// drop(member);
/// orders.producer().send(Record::new("late"))?;
/// let mut again = billing.join()?;
/// assert_eq!(again.try_recv()?.unwrap().value(), b"late");
/// # drop(again); drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Group {
    topic: Topic,
    state: Arc<GroupState>,
    reset: OffsetReset,
    auto_commit: AutoCommit,
    commit_on_revoke: bool,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("name", &self.state.name)
            .field("topic", &self.topic.name())
            .field("members", &self.state.member_count())
            .finish()
    }
}

/// One partition's lag for a group, from [`Group::lag`].
///
/// See [`Group`] for an example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionLag {
    /// The partition.
    pub partition: u32,
    /// The group's committed offset, if any.
    pub committed: Option<u64>,
    /// One past the partition's last record.
    pub high_watermark: u64,
    /// Records the group has not committed: high watermark minus committed
    /// offset (minus the log start when nothing is committed).
    pub lag: u64,
}

impl Group {
    /// The group's coordinator state.
    pub(crate) fn state(&self) -> &Arc<GroupState> {
        &self.state
    }

    /// The topic the group reads.
    pub(crate) fn topic(&self) -> &Topic {
        &self.topic
    }

    pub(crate) fn new(topic: Topic, state: Arc<GroupState>) -> Group {
        Group {
            topic,
            state,
            reset: OffsetReset::default(),
            auto_commit: AutoCommit::default(),
            commit_on_revoke: true,
        }
    }

    /// Sets where members start on partitions without a usable committed
    /// offset (default [`OffsetReset::Earliest`]).
    ///
    /// ```
    /// use millpond::{Broker, OffsetReset, Record, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-reset-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.producer().send(Record::new("old"))?;
    /// let mut m = topic.group("fresh")?.offset_reset(OffsetReset::Latest).join()?;
    /// assert!(m.try_recv()?.is_none());
    /// # drop(m); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn offset_reset(mut self, reset: OffsetReset) -> Self {
        self.reset = reset;
        self
    }

    /// Sets the auto-commit mode of members joined from this handle
    /// (default: every 5 s).
    ///
    /// See [`Group`] for an example.
    pub fn auto_commit(mut self, mode: AutoCommit) -> Self {
        self.auto_commit = mode;
        self
    }

    /// Whether members commit a partition's position when it is revoked by a
    /// rebalance (default `true`).
    ///
    /// ```
    /// use millpond::{Broker, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-revoke-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let g = broker.create_topic("t", TopicConfig::default())?.group("g")?.commit_on_revoke(false);
    /// # drop(g); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn commit_on_revoke(mut self, commit: bool) -> Self {
        self.commit_on_revoke = commit;
        self
    }

    /// The [`OffsetReset`] members of this handle join with.
    ///
    /// ```
    /// # use millpond::{Broker, OffsetReset, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-getreset-{}", std::process::id()));
    /// # let broker = Broker::open(&dir)?;
    /// let group = broker.create_topic("t", TopicConfig::default())?.group("g")?;
    /// assert_eq!(group.get_offset_reset(), OffsetReset::Earliest);
    /// assert_eq!(group.offset_reset(OffsetReset::Latest).get_offset_reset(), OffsetReset::Latest);
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_offset_reset(&self) -> OffsetReset {
        self.reset
    }

    /// The [`AutoCommit`] mode members of this handle join with.
    ///
    /// ```
    /// # use millpond::{AutoCommit, Broker, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-getauto-{}", std::process::id()));
    /// # let broker = Broker::open(&dir)?;
    /// let group = broker.create_topic("t", TopicConfig::default())?.group("g")?.auto_commit(AutoCommit::Off);
    /// assert_eq!(group.get_auto_commit(), AutoCommit::Off);
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_auto_commit(&self) -> AutoCommit {
        self.auto_commit
    }

    /// Whether members of this handle commit before giving up partitions.
    ///
    /// ```
    /// # use millpond::{Broker, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-getrevoke-{}", std::process::id()));
    /// # let broker = Broker::open(&dir)?;
    /// let group = broker.create_topic("t", TopicConfig::default())?.group("g")?;
    /// assert!(group.get_commit_on_revoke());
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_commit_on_revoke(&self) -> bool {
        self.commit_on_revoke
    }

    /// The group's name.
    ///
    /// ```
    /// use millpond::{Broker, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-gname-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// assert_eq!(broker.create_topic("t", TopicConfig::default())?.group("billing")?.name(), "billing");
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// Joins the group: a new member, which takes its share of the
    /// partitions now (those another member still holds, once it lets them
    /// go, at a later receive call). Fails with
    /// [`Error::CorruptMetadata`](crate::Error::CorruptMetadata) if the offsets file and its previous
    /// version are both damaged.
    ///
    /// See [`Group`] for an example.
    pub fn join(&self) -> Result<GroupMember> {
        if let Some(e) = self.topic.unusable() {
            return Err(e);
        }
        self.topic.shared.check_writable("join a group")?;
        let id = self.state.join()?;
        let mut consumer = Consumer::new(self.topic.clone(), Vec::new(), StartFrom::Earliest)?;
        consumer.membership = Some(Box::new(Membership::new(
            Arc::clone(&self.state),
            id,
            self.reset,
            self.auto_commit,
            self.commit_on_revoke,
        )));
        consumer.take_initial_assignment();
        Ok(GroupMember::new(consumer))
    }

    /// The committed offset of each partition that has one.
    ///
    /// ```
    /// use millpond::{AutoCommit, Broker, Record, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-committed-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.producer().send(Record::new("x"))?;
    /// let group = topic.group("g")?.auto_commit(AutoCommit::Off);
    /// let mut m = group.join()?;
    /// m.recv()?;
    /// assert!(group.committed()?.is_empty());
    /// m.commit()?;
    /// assert_eq!(group.committed()?[&0], 1);
    /// # drop(m); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn committed(&self) -> Result<BTreeMap<u32, u64>> {
        self.state.committed()
    }

    /// Per partition: high watermark minus committed offset.
    /// [`Error::GroupNotFound`](crate::Error::GroupNotFound) for a group
    /// that does not exist ([`Group::exists`]: no members, no committed
    /// offsets), rather than a lag it does not have.
    ///
    /// See [`Group`] for an example.
    pub fn lag(&self) -> Result<Vec<PartitionLag>> {
        self.check_exists()?;
        self.lag_of_any()
    }

    /// [`Group::lag`] without the existence check: a group with no members
    /// and no commits lags by its whole reset range (for a mirror, whose
    /// group is its own and known to be meant).
    pub(crate) fn lag_of_any(&self) -> Result<Vec<PartitionLag>> {
        // A read-only broker's: the high watermarks as the files are now.
        self.topic.inner.catch_up()?;
        let committed = self.state.committed()?;
        Ok(self
            .topic
            .inner
            .partitions
            .iter()
            .map(|log| {
                let c = committed.get(&log.partition()).copied();
                let high_watermark = log.high_watermark();
                let from = c.unwrap_or_else(|| match self.reset {
                    OffsetReset::Latest => high_watermark,
                    _ => log.log_start(),
                });
                PartitionLag {
                    partition: log.partition(),
                    committed: c,
                    high_watermark,
                    lag: high_watermark.saturating_sub(from),
                }
            })
            .collect())
    }

    /// The number of members now.
    ///
    /// ```
    /// use millpond::{Broker, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-members-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let g = broker.create_topic("t", TopicConfig::default())?.group("g")?;
    /// let m = g.join()?;
    /// assert_eq!(g.members(), 1);
    /// drop(m);
    /// assert_eq!(g.members(), 0);
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn members(&self) -> usize {
        self.state.member_count()
    }

    /// Which partitions are being read, by member number (for monitoring
    /// and tests): partitions missing from the map are owned by nobody.
    ///
    /// ```
    /// use millpond::{Broker, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-owners-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let g = broker.create_topic("t", TopicConfig::default().partitions(2))?.group("g")?;
    /// let m = g.join()?;
    /// assert_eq!(g.owners().len(), 2); // both partitions are m's from `join` on
    /// # drop(m); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn owners(&self) -> BTreeMap<u32, u64> {
        self.state.owners()
    }

    /// If the offsets file was found damaged when it was loaded and the
    /// previous version was used instead, what was wrong with it. Records
    /// committed since that previous version are delivered again; none are
    /// skipped.
    ///
    /// ```
    /// use millpond::{Broker, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-warn-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let g = broker.create_topic("t", TopicConfig::default())?.group("g")?;
    /// assert_eq!(g.offsets_warning(), None);
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn offsets_warning(&self) -> Option<String> {
        self.state.load_warning()
    }
}

impl Topic {
    /// The consumer group `name` on this topic (Kafka's `group.id`): join it
    /// to share the partitions with the other members and resume from the
    /// group's committed offsets. Fails with [`Error::InvalidName`](crate::Error::InvalidName) for a
    /// name outside `[A-Za-z0-9._-]{1,249}` (or `.`/`..`).
    ///
    /// See [`Group`] for an example.
    pub fn group(&self, name: &str) -> Result<Group> {
        names::validate("group", name)?;
        if let Some(e) = self.unusable() {
            return Err(e);
        }
        Ok(Group::new(self.clone(), self.shared.group_state(name, &self.inner)))
    }
}
