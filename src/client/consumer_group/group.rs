//! Consumer groups: [`Group`], [`GroupMember`], committed offsets and
//! rebalancing.
//!
//! A group is named; its members share a topic's partitions, and its
//! committed offsets persist under `<dir>/groups/<group>/<topic>/offsets`, so
//! a member that dies and comes back resumes where the group left off.
//!
//! # Delivery guarantees
//!
//! | mode | what is committed | guarantee |
//! | --- | --- | --- |
//! | [`AutoCommit::Interval`] (default, 5 s) | at the start of a receive call, at most once per interval: the position after the last record returned *before* that call | at-least-once, provided each record is processed before the next receive call (the usual loop); a crash re-delivers at most the records received since the last commit |
//! | [`AutoCommit::Off`] + [`GroupMember::commit`] after processing | what you commit | at-least-once; a crash re-delivers the records received since your last commit |
//! | [`AutoCommit::Off`] + commit *before* processing | what you commit | at-most-once |
//!
//! Committing is durable when it returns (temporary file, fsync, rename,
//! directory fsync). Dropping a member with auto-commit enabled commits its
//! positions; dropping one with `AutoCommit::Off` commits nothing.
//!
//! # Damaged partitions
//!
//! A partition that cannot be opened when a member is given it (a damaged
//! or unreadable segment) does not stop the member: its receive call
//! reports the error once, and it reads its other partitions. It keeps the
//! partition (so no other member reads it, and its committed offset stays
//! as it was) without reading it, tries to open it again at every
//! rebalance and at most once a second, and reports a failure again only
//! when it differs from the last one. Damage met while reading an open
//! partition is reported each time a receive call reaches that partition
//! (as for a [`Consumer`]); the others are read in turn meanwhile.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::broker::topic::Topic;
use crate::client::consume::consumer::Consumer;
use crate::error::{Error, Result};
use crate::group::coordinator::GroupState;
use crate::storage::message::Message;
use crate::storage::partition_log::state::PartitionLog;

/// Where a group member starts reading a partition that has no committed
/// offset, or whose committed offset is no longer in the log (deleted by
/// retention) or beyond its end; and where it goes on when retention
/// deletes records it has not read yet.
///
/// Records lost to retention are never skipped silently: with `Earliest`
/// or `Latest` the member's receive call returns [`Error::Lagged`] once,
/// naming the offsets it missed, and the next call reads on from the log
/// start (or the high watermark); with `Fail` it returns
/// [`Error::OffsetOutOfRange`] and stays where it is until it seeks.
///
/// # Examples
///
/// ```
/// use millpond::OffsetReset;
/// assert_eq!(OffsetReset::default(), OffsetReset::Earliest);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OffsetReset {
    /// The earliest offset still stored (default: a new group misses nothing).
    #[default]
    Earliest,
    /// The high watermark: only records appended from now on.
    Latest,
    /// Refuse: the receive call returns [`Error::NoCommittedOffset`] or
    /// [`Error::OffsetOutOfRange`].
    Fail,
}

/// When a group member commits its positions by itself.
///
/// See the [module documentation](crate::Group) for the guarantee each
/// mode gives.
///
/// # Examples
///
/// ```
/// use millpond::AutoCommit;
/// use std::time::Duration;
/// assert_eq!(AutoCommit::default(), AutoCommit::Interval(Duration::from_secs(5)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AutoCommit {
    /// Never; call [`GroupMember::commit`] or [`GroupMember::commit_offsets`].
    Off,
    /// At the start of a receive call, when this long has passed since the
    /// last commit, and when the member is dropped.
    Interval(Duration),
}

impl Default for AutoCommit {
    fn default() -> Self {
        AutoCommit::Interval(Duration::from_secs(5))
    }
}

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

/// What a rebalance listener ([`GroupMember::on_rebalance`]) is told.
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
/// let mut a = topic.group("g")?.join()?;
/// a.on_rebalance(move |e| seen.lock().unwrap().push((e.kind(), e.partitions().to_vec())));
/// a.try_recv()?; // takes both partitions
/// let mut b = topic.group("g")?.join()?;
/// a.try_recv()?; // gives partition 1 up
/// b.try_recv()?; // takes it
/// assert_eq!(a.assignment(), [0]);
/// assert_eq!(b.assignment(), [1]);
/// assert_eq!(*log.lock().unwrap(), [(RebalanceKind::Assigned, vec![0, 1]), (RebalanceKind::Revoked, vec![1])]);
/// # drop((a, b)); drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RebalanceEvent<'a> {
    kind: RebalanceKind,
    partitions: &'a [u32],
    positions: &'a [(u32, u64)],
    state: &'a GroupState,
    member: u64,
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
}

type Listener = Box<dyn FnMut(&RebalanceEvent<'_>) + Send>;

/// A member's group state, kept inside its [`Consumer`].
pub(crate) struct Membership {
    state: Arc<GroupState>,
    id: u64,
    /// The group generation this member last synchronized with.
    seen: u64,
    reset: OffsetReset,
    auto_commit: AutoCommit,
    commit_on_revoke: bool,
    last_commit: Instant,
    listener: Option<Listener>,
    /// Reports not yet returned, one per receive call (see `sync_with`):
    /// `Error::Lagged` for committed offsets retention deleted, and the
    /// errors of partitions that could not be opened.
    lagged: Vec<Error>,
    /// Partitions this member owns but could not open, retried now and then
    /// (see [`Unopened`]).
    unopened: BTreeMap<u32, Unopened>,
}

/// How often a member tries again to open a partition it owns but could
/// not open (also at every rebalance).
const REOPEN_EVERY: Duration = Duration::from_secs(1);

/// A partition a member owns but could not open (a damaged or unreadable
/// segment): the member keeps it, so no other member reads it meanwhile and
/// its committed offset stays as it was, and reads its other partitions.
struct Unopened {
    /// Its committed offset when it was acquired.
    committed: Option<u64>,
    /// The failure last reported, so the same one is reported once.
    reported: String,
    /// When opening it was last tried.
    tried: Instant,
}

impl Drop for Membership {
    /// Leaving the group however the membership ends — closed, dropped, or
    /// unwound by a panicking rebalance listener — so its partitions are
    /// released and the other members are not left waiting for them.
    fn drop(&mut self) {
        self.state.leave(self.id);
    }
}

impl Membership {
    /// The group's policy for a position that is not (or no longer) in the log.
    pub(crate) fn reset(&self) -> OffsetReset {
        self.reset
    }

    /// Whether the group changed since this member last looked.
    pub(crate) fn changed(&self) -> bool {
        self.state.generation() != self.seen
    }

    /// The group's notifier, to be woken when the group changes.
    pub(crate) fn notifier(&self) -> &crate::storage::notify::Notifier {
        &self.state.notifier
    }
}

/// Tells the member's rebalance listener, if any, about partitions it was
/// just given (nothing when `assigned` is empty).
fn announce_assigned(m: &mut Membership, assigned: &[(u32, u64)]) {
    if assigned.is_empty() {
        return;
    }
    let partitions: Vec<u32> = assigned.iter().map(|&(p, _)| p).collect();
    if let Some(listener) = m.listener.as_mut() {
        listener(&RebalanceEvent {
            kind: RebalanceKind::Assigned,
            partitions: &partitions,
            positions: assigned,
            state: &m.state,
            member: m.id,
        });
    }
}

/// Where to start reading `log` given its committed offset.
fn start_offset(log: &PartitionLog, group: &str, committed: Option<u64>, reset: OffsetReset) -> Result<u64> {
    let (start, end) = (log.log_start(), log.high_watermark());
    match (committed, reset) {
        (Some(o), _) if (start..=end).contains(&o) => Ok(o),
        (_, OffsetReset::Earliest) => Ok(start),
        (_, OffsetReset::Latest) => Ok(end),
        (Some(o), OffsetReset::Fail) => Err(log.out_of_range(o)),
        (None, OffsetReset::Fail) => Err(Error::NoCommittedOffset {
            topic: log.topic_name().to_string(),
            group: group.to_string(),
            partition: log.partition(),
        }),
    }
}

impl Consumer {
    /// Applies group changes: gives up revoked partitions (committing first
    /// if configured), takes newly assigned free ones, and auto-commits.
    pub(crate) fn sync_group(&mut self) -> Result<()> {
        if self.topic().unusable().is_some() {
            // Closed or deleted: no rebalancing or committing any more; what
            // is already assigned can still be read to its end.
            return Ok(());
        }
        let Some(mut m) = self.membership.take() else { return Ok(()) };
        let result = self.sync_with(&mut m);
        self.membership = Some(m);
        result
    }

    fn sync_with(&mut self, m: &mut Membership) -> Result<()> {
        if m.changed() {
            let generation = m.state.generation();
            let target = m.state.target(m.id);
            let owned = self.assignment();
            // Unopened partitions nobody was told of: given up silently.
            let lost: Vec<u32> = m.unopened.keys().copied().filter(|p| !target.contains(p)).collect();
            for p in &lost {
                m.unopened.remove(p);
            }
            if !lost.is_empty() {
                m.state.release(m.id, &lost);
            }
            let revoked: Vec<u32> = owned.iter().copied().filter(|p| !target.contains(p)).collect();
            if !revoked.is_empty() {
                let positions: Vec<(u32, u64)> =
                    self.positions().into_iter().filter(|(p, _)| revoked.contains(p)).collect();
                if let Some(listener) = m.listener.as_mut() {
                    listener(&RebalanceEvent {
                        kind: RebalanceKind::Revoked,
                        partitions: &revoked,
                        positions: &positions,
                        state: &m.state,
                        member: m.id,
                    });
                }
                let committed = if m.commit_on_revoke { m.state.commit(m.id, &positions) } else { Ok(()) };
                for &p in &revoked {
                    self.remove_cursor(p);
                }
                // Released even if the commit failed, so the group goes on;
                // the new owner then re-reads from the last good commit.
                m.state.release(m.id, &revoked);
                committed?;
            }
            let mut assigned = Vec::new();
            let fresh: Vec<u32> =
                target.into_iter().filter(|p| !owned.contains(p) && !m.unopened.contains_key(p)).collect();
            for p in fresh {
                let Some(committed) = m.state.try_acquire(m.id, p)? else { continue };
                self.open_assigned(m, p, committed, &mut assigned)?;
            }
            self.reopen(m, true, &mut assigned)?;
            m.seen = generation;
            announce_assigned(m, &assigned);
        } else if !m.unopened.is_empty() {
            let mut assigned = Vec::new();
            self.reopen(m, false, &mut assigned)?;
            announce_assigned(m, &assigned);
        }
        if let AutoCommit::Interval(every) = m.auto_commit
            && m.last_commit.elapsed() >= every
        {
            m.state.commit(m.id, &self.positions())?;
            m.last_commit = Instant::now();
        }
        match m.lagged.pop() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Starts reading partition `p`, just acquired with `committed`, where
    /// the reset policy says; adds it to `assigned`. If it cannot be opened,
    /// the member keeps it as unopened and the failure is reported. If the
    /// policy refuses (`OffsetReset::Fail`), the partition is released and
    /// the refusal returned, as every receive call does until it changes.
    fn open_assigned(
        &mut self,
        m: &mut Membership,
        p: u32,
        committed: Option<u64>,
        assigned: &mut Vec<(u32, u64)>,
    ) -> Result<()> {
        let log = Arc::clone(self.topic().partition_log(p)?);
        let start = match start_offset(&log, &m.state.name, committed, m.reset) {
            Ok(start) => start,
            Err(refused) => {
                m.unopened.remove(&p);
                m.state.release(m.id, &[p]);
                return Err(refused);
            }
        };
        match log.cursor_at(start) {
            Ok(c) => {
                // A committed offset retention deleted: reported, one per
                // receive call, once the assignment is complete (the member
                // reads on from where its reset policy put it).
                if let Some(from) = committed.filter(|&o| o < c.position() && o < log.log_start()) {
                    m.lagged.push(Error::Lagged {
                        topic: log.topic_name().to_string(),
                        partition: p,
                        from,
                        resumed_at: c.position(),
                    });
                }
                assigned.push((p, c.position()));
                self.add_cursor(c);
            }
            Err(e) => {
                let reported = e.to_string();
                let again = m.unopened.get(&p).is_some_and(|u| u.reported == reported);
                m.unopened.insert(p, Unopened { committed, reported, tried: Instant::now() });
                if !again {
                    m.lagged.push(e);
                }
            }
        }
        Ok(())
    }

    /// Tries again to open the partitions the member owns but could not
    /// open: all of them after a rebalance (`now`), else those last tried
    /// [`REOPEN_EVERY`] ago. A failure is reported again only when it
    /// changed.
    fn reopen(&mut self, m: &mut Membership, now: bool, assigned: &mut Vec<(u32, u64)>) -> Result<()> {
        let due: Vec<(u32, Option<u64>)> = m
            .unopened
            .iter()
            .filter(|(_, u)| now || u.tried.elapsed() >= REOPEN_EVERY)
            .map(|(&p, u)| (p, u.committed))
            .collect();
        for (p, committed) in due {
            let before = assigned.len();
            self.open_assigned(m, p, committed, assigned)?;
            if assigned.len() > before {
                m.unopened.remove(&p);
            }
        }
        Ok(())
    }

    /// Leaves the group: commits first if auto-commit is on and `commit` is
    /// true. Called by `GroupMember::close` and when the consumer drops.
    pub(crate) fn leave_group(&mut self, commit: bool) -> Result<()> {
        let Some(m) = self.membership.take() else { return Ok(()) };
        let result = if commit && m.auto_commit != AutoCommit::Off && self.topic().unusable().is_none() {
            m.state.commit(m.id, &self.positions())
        } else {
            Ok(())
        };
        drop(m); // leaves the group (Membership's Drop)
        result
    }
}

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
    /// partitions at its first receive call. Fails with
    /// [`Error::CorruptMetadata`] if the offsets file and its previous
    /// version are both damaged.
    ///
    /// See [`Group`] for an example.
    pub fn join(&self) -> Result<GroupMember> {
        if let Some(e) = self.topic.unusable() {
            return Err(e);
        }
        let id = self.state.join()?;
        let mut consumer = Consumer::new(self.topic.clone(), Vec::new(), crate::StartFrom::Earliest)?;
        consumer.membership = Some(Box::new(Membership {
            state: Arc::clone(&self.state),
            id,
            seen: 0,
            reset: self.reset,
            auto_commit: self.auto_commit,
            commit_on_revoke: self.commit_on_revoke,
            last_commit: Instant::now(),
            listener: None,
            lagged: Vec::new(),
            unopened: BTreeMap::new(),
        }));
        Ok(GroupMember { consumer })
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
    ///
    /// See [`Group`] for an example.
    pub fn lag(&self) -> Result<Vec<PartitionLag>> {
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
    /// let mut m = g.join()?;
    /// assert!(g.owners().is_empty()); // partitions are taken at the first receive call
    /// m.try_recv()?;
    /// assert_eq!(g.owners().len(), 2);
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

/// A member of a consumer group: a consumer with the same receive API as an
/// independent [`Consumer`], reading only the partitions the group assigns
/// it, plus commits. Made by [`Group::join`].
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

impl std::fmt::Debug for GroupMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupMember").field("positions", &self.consumer.positions()).finish()
    }
}

impl GroupMember {
    fn membership(&self) -> Result<&Membership> {
        self.consumer.membership.as_deref().ok_or(Error::Closed)
    }

    /// Installs a listener told of every rebalance: partitions revoked
    /// (before they are given up) and assigned (after they are taken).
    ///
    /// See [`RebalanceEvent`] for an example.
    pub fn on_rebalance(&mut self, listener: impl FnMut(&RebalanceEvent<'_>) + Send + 'static) {
        if let Some(m) = self.consumer.membership.as_mut() {
            m.listener = Some(Box::new(listener));
        }
    }

    /// Commits the member's position in every partition it owns: everything
    /// received so far counts as processed.
    ///
    /// See [`Group`] for an example.
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
        m.state.commit(m.id, offsets)
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
                group: m.state.name.clone(),
                partition,
            });
        }
        self.consumer.seek(partition, offset)
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
    pub fn wait_strategy(mut self, wait: crate::WaitStrategy) -> Self {
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
    /// See [`Group`] for an example.
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
    pub fn try_recv_ref(&mut self) -> Result<Option<crate::MessageRef<'_>>> {
        self.consumer.try_recv_ref()
    }

    /// See [`Consumer::recv_ref`].
    ///
    /// See [`GroupMember`] for an example.
    pub fn recv_ref(&mut self) -> Result<crate::MessageRef<'_>> {
        self.consumer.recv_ref()
    }

    /// See [`Consumer::recv_ref_timeout`].
    ///
    /// See [`GroupMember`] for an example.
    pub fn recv_ref_timeout(&mut self, timeout: Duration) -> Result<Option<crate::MessageRef<'_>>> {
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
    pub fn poll_ref(&mut self, max: usize, timeout: Duration) -> Result<crate::Batch<'_>> {
        self.consumer.poll_ref(max, timeout)
    }

    /// See [`Consumer::iter`].
    ///
    /// See [`GroupMember`] for an example.
    pub fn iter(&mut self) -> crate::Iter<'_> {
        self.consumer.iter()
    }

    /// See [`Consumer::try_iter`].
    ///
    /// See [`GroupMember`] for an example.
    pub fn try_iter(&mut self) -> crate::TryIter<'_> {
        self.consumer.try_iter()
    }
}

impl Topic {
    /// The consumer group `name` on this topic (Kafka's `group.id`): join it
    /// to share the partitions with the other members and resume from the
    /// group's committed offsets. Fails with [`Error::InvalidName`] for a
    /// name outside `[A-Za-z0-9._-]{1,249}` (or `.`/`..`).
    ///
    /// See [`Group`] for an example.
    pub fn group(&self, name: &str) -> Result<Group> {
        crate::topic::names::validate("group", name)?;
        if let Some(e) = self.unusable() {
            return Err(e);
        }
        Ok(Group::new(self.clone(), self.shared.group_state(name, &self.inner)))
    }
}

#[cfg(test)]
mod tests {
    use crate::{Broker, Error, TopicConfig};
    use std::time::Duration;

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
}
