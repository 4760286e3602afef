//! [`Membership`]: a member's side of its group — at the start of each
//! receive call it follows the group's assignment by updating the member's
//! [`CursorSet`], commits when due, and reports what it met.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::consume::cursor_set::CursorSet;
use crate::client::consumer_group::policy::{AutoCommit, OffsetReset};
use crate::client::consumer_group::rebalance::{Listener, RebalanceEvent, RebalanceKind};
use crate::error::{Error, Result};
use crate::group::commit_queue::Completion;
use crate::group::coordinator::GroupState;
use crate::storage::notify::Notifier;
use crate::storage::partition_log::state::PartitionLog;

/// A member's group state, kept inside its consumer.
pub(crate) struct Membership {
    state: Arc<GroupState>,
    id: u64,
    /// The group generation this member last synchronized with.
    seen: u64,
    reset: OffsetReset,
    auto_commit: AutoCommit,
    commit_on_revoke: bool,
    last_commit: Instant,
    /// The last interval auto-commit, written off this thread: its positions
    /// (not requested again while unchanged) and its outcome, a failure of
    /// which the next receive call returns.
    auto_pending: Option<AutoPending>,
    listener: Option<Listener>,
    /// Partitions taken before a listener was installed (at `join`), told
    /// to the listener when it is.
    unannounced: Vec<(u32, u64)>,
    /// Reports not yet returned, one per receive call (see `sync`):
    /// `Error::Lagged` for committed offsets retention deleted, and the
    /// errors of partitions that could not be opened.
    lagged: Vec<Error>,
    /// Partitions this member owns but could not open, retried now and then
    /// (see [`Unopened`]).
    unopened: BTreeMap<u32, Unopened>,
    /// A partition given up (revoked) while records of it were received and
    /// not committed, plus one; 0 for none. A transaction carrying this
    /// member's positions must not commit then: its output may hold records
    /// the partition's next owner processes again. Shared with
    /// transactions (see [`Membership::fence`]).
    revoked_uncommitted: Arc<std::sync::atomic::AtomicU64>,
    /// Where each owned partition's cursor started when this member took
    /// it: a position still there received nothing of it.
    taken_at: BTreeMap<u32, u64>,
}

/// An interval auto-commit requested: the positions, and its completion.
type AutoPending = (Vec<(u32, u64)>, Arc<Completion>);

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
    /// The membership of member `id`, which just joined the group `state`.
    pub(crate) fn new(
        state: Arc<GroupState>,
        id: u64,
        reset: OffsetReset,
        auto_commit: AutoCommit,
        commit_on_revoke: bool,
    ) -> Membership {
        Membership {
            state,
            id,
            seen: 0,
            reset,
            auto_commit,
            commit_on_revoke,
            last_commit: Instant::now(),
            auto_pending: None,
            listener: None,
            unannounced: Vec::new(),
            lagged: Vec::new(),
            unopened: BTreeMap::new(),
            revoked_uncommitted: Arc::default(),
            taken_at: BTreeMap::new(),
        }
    }

    /// The group's name.
    pub(crate) fn group_name(&self) -> &str {
        &self.state.name
    }

    /// Installs the rebalance listener, replacing any earlier one. The
    /// partitions taken before it was installed (at `join`) are told to it
    /// at the start of the next receive call, where a listener's panic is
    /// handled like any other (the member leaves the group).
    pub(crate) fn set_listener(&mut self, listener: Listener) {
        self.listener = Some(listener);
    }

    /// Hands commits over to a [`MemberChannel`](crate::MemberChannel):
    /// no more commits of positions (auto or on revocation), since the
    /// positions run ahead of what the application has handled; returns
    /// the auto-commit policy it had and the listener installed so far.
    pub(crate) fn hand_over_commits(&mut self) -> (AutoCommit, Option<Listener>) {
        let auto = std::mem::replace(&mut self.auto_commit, AutoCommit::Off);
        self.commit_on_revoke = false;
        (auto, self.listener.take())
    }

    /// Commits `offsets` for this member (durable when it returns, after
    /// the member's asynchronous commits made before).
    pub(crate) fn commit(&self, offsets: &[(u32, u64)]) -> Result<()> {
        self.state.commit(self.id, offsets)
    }

    /// Queues a commit of `offsets` for this member, written by the
    /// broker's commit thread.
    pub(crate) fn commit_async(&self, offsets: &[(u32, u64)]) -> Arc<Completion> {
        self.state.commit_async(self.id, offsets)
    }

    /// The group and this member's id, for a `Committer`.
    pub(crate) fn committer_parts(&self) -> (Arc<GroupState>, u64) {
        (Arc::clone(&self.state), self.id)
    }

    /// The flag a transaction checks before committing this member's
    /// positions (see `revoked_uncommitted`).
    pub(crate) fn fence(&self) -> Arc<std::sync::atomic::AtomicU64> {
        Arc::clone(&self.revoked_uncommitted)
    }

    /// Why this member's offsets cannot go into a transaction, if they
    /// cannot: a member that commits on its own (by interval, or when a
    /// partition is revoked) would commit positions past records whose
    /// output is still in an open transaction.
    pub(crate) fn commits_on_its_own(&self) -> Option<&'static str> {
        if self.auto_commit != AutoCommit::Off {
            Some("auto_commit is on; join with auto_commit(AutoCommit::Off)")
        } else if self.commit_on_revoke {
            Some("commit_on_revoke is on; join with commit_on_revoke(false)")
        } else {
            None
        }
    }

    /// The group's policy for a position that is not (or no longer) in the log.
    pub(crate) fn reset(&self) -> OffsetReset {
        self.reset
    }

    /// Whether the group changed since this member last looked.
    pub(crate) fn changed(&self) -> bool {
        self.state.generation() != self.seen
    }

    /// The group's notifier, to be woken when the group changes.
    pub(crate) fn notifier(&self) -> &Notifier {
        &self.state.notifier
    }

    /// Tells the rebalance listener about partitions just given to this
    /// member (nothing when `assigned` is empty), or keeps them to tell a
    /// listener installed later. Returns the seeks the listener asked for.
    fn announce_assigned(&mut self, assigned: &[(u32, u64)]) -> Vec<(u32, u64)> {
        if assigned.is_empty() {
            return Vec::new();
        }
        let Some(listener) = self.listener.as_mut() else {
            self.unannounced.extend_from_slice(assigned);
            return Vec::new();
        };
        let partitions: Vec<u32> = assigned.iter().map(|&(p, _)| p).collect();
        let event = RebalanceEvent {
            kind: RebalanceKind::Assigned,
            partitions: &partitions,
            positions: assigned,
            state: &self.state,
            member: self.id,
            seeks: Default::default(),
        };
        listener(&event);
        event.seeks.into_inner()
    }

    /// Moves `cursors` where the listener asked (partitions the member no
    /// longer owns are skipped: their new owner starts them).
    fn apply_seeks(cursors: &mut CursorSet, seeks: Vec<(u32, u64)>) -> Result<()> {
        for (p, offset) in seeks {
            if cursors.assignment().contains(&p) {
                cursors.seek(p, offset)?;
            }
        }
        Ok(())
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

impl Membership {
    /// Applies group changes to `cursors` (see [`Membership::apply`]) and
    /// returns the first report not yet returned. Called at the start of
    /// every receive call.
    pub(crate) fn sync(&mut self, cursors: &mut CursorSet) -> Result<()> {
        self.apply(cursors)?;
        match self.lagged.pop() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// At `join`: takes the partitions that are free now, so a member
    /// starts with its assignment rather than at its first receive call.
    /// Whatever this has to report waits for that call: reports stay
    /// queued, and a refusal of the reset policy (`OffsetReset::Fail`)
    /// leaves the group changed, so the first receive call meets it again.
    pub(crate) fn take_initial_assignment(&mut self, cursors: &mut CursorSet) {
        if let Err(e) = self.apply(cursors) {
            log::debug!("millpond: group {:?}: assignment at join deferred: {e}", self.state.name);
        }
    }

    /// Tells a listener installed since `join` what the member took then,
    /// gives up revoked partitions (committing first if configured), takes
    /// newly assigned free ones, applies the listener's seeks, and
    /// auto-commits.
    fn apply(&mut self, cursors: &mut CursorSet) -> Result<()> {
        if self.listener.is_some() && !self.unannounced.is_empty() {
            let unannounced = std::mem::take(&mut self.unannounced);
            let seeks = self.announce_assigned(&unannounced);
            Self::apply_seeks(cursors, seeks)?;
        }
        if cursors.topic().unusable().is_some() {
            // Closed or deleted: no rebalancing or committing any more; what
            // is already assigned can still be read to its end.
            return Ok(());
        }
        if self.changed() {
            let generation = self.state.generation();
            let target = self.state.target(self.id);
            let owned = cursors.assignment();
            // Unopened partitions nobody was told of: given up silently.
            let lost: Vec<u32> = self.unopened.keys().copied().filter(|p| !target.contains(p)).collect();
            for p in &lost {
                self.unopened.remove(p);
            }
            if !lost.is_empty() {
                self.state.release(self.id, &lost);
            }
            let revoked: Vec<u32> = owned.iter().copied().filter(|p| !target.contains(p)).collect();
            if !revoked.is_empty() {
                let positions: Vec<(u32, u64)> =
                    cursors.positions().into_iter().filter(|(p, _)| revoked.contains(p)).collect();
                // Taken and lost before any listener heard of them: nothing to tell.
                self.unannounced.retain(|(p, _)| !revoked.contains(p));
                if let Some(listener) = self.listener.as_mut() {
                    listener(&RebalanceEvent {
                        kind: RebalanceKind::Revoked,
                        partitions: &revoked,
                        positions: &positions,
                        state: &self.state,
                        member: self.id,
                        seeks: Default::default(),
                    });
                }
                // Received and not committed: moved since taken, and not
                // where the group's commit is.
                let uncommitted = |&&(p, o): &&(u32, u64)| {
                    self.taken_at.get(&p) != Some(&o) && self.state.progress.committed(p) != Some(o)
                };
                if !self.commit_on_revoke
                    && let Some(&(p, _)) = positions.iter().find(uncommitted)
                {
                    self.revoked_uncommitted.store(u64::from(p) + 1, std::sync::atomic::Ordering::Release);
                }
                let committed = if self.commit_on_revoke { self.state.commit(self.id, &positions) } else { Ok(()) };
                for &p in &revoked {
                    cursors.remove(p);
                    self.taken_at.remove(&p);
                }
                // Released even if the commit failed, so the group goes on;
                // the new owner then re-reads from the last good commit.
                self.state.release(self.id, &revoked);
                committed?;
            }
            let mut assigned = Vec::new();
            let fresh: Vec<u32> =
                target.into_iter().filter(|p| !owned.contains(p) && !self.unopened.contains_key(p)).collect();
            // Whatever was taken before a failure (a refusal of the reset
            // policy, say) is still announced: it is read from now on.
            let taken = (|| {
                for p in fresh {
                    let Some(committed) = self.state.try_acquire(self.id, p)? else { continue };
                    self.open_assigned(cursors, p, committed, &mut assigned)?;
                }
                self.reopen(cursors, true, &mut assigned)
            })();
            if let Err(e) = taken {
                self.unannounced.extend_from_slice(&assigned);
                return Err(e);
            }
            self.seen = generation;
            let seeks = self.announce_assigned(&assigned);
            Self::apply_seeks(cursors, seeks)?;
        } else if !self.unopened.is_empty() {
            let mut assigned = Vec::new();
            if let Err(e) = self.reopen(cursors, false, &mut assigned) {
                self.unannounced.extend_from_slice(&assigned);
                return Err(e);
            }
            let seeks = self.announce_assigned(&assigned);
            Self::apply_seeks(cursors, seeks)?;
        }
        // A failed auto-commit is returned once, by the first receive call
        // after it is known; the next one commits the positions again. One
        // refused because a partition was revoked before it was written
        // (possible with `commit_on_revoke(false)`) is not an error of the
        // application's: the next one commits the partitions still owned.
        if let Some(failed) = self.auto_pending.as_ref().and_then(|(_, done)| done.failure()) {
            self.auto_pending = None;
            if !matches!(failed, Error::NotAssigned { .. }) {
                return Err(failed);
            }
        }
        if let AutoCommit::Interval(every) = self.auto_commit
            && self.last_commit.elapsed() >= every
        {
            // Asynchronous, so this receive call does not wait for the
            // fsync. The positions are taken now: they cover only records
            // returned before this call, so a crash before the write
            // re-delivers, never skips.
            let positions = cursors.positions();
            if self.auto_pending.as_ref().is_none_or(|(last, _)| *last != positions) {
                let done = self.state.commit_async(self.id, &positions);
                self.auto_pending = Some((positions, done));
            }
            self.last_commit = Instant::now();
        }
        Ok(())
    }

    /// Starts reading partition `p`, just acquired with `committed`, where
    /// the reset policy says; adds it to `assigned`. If it cannot be opened,
    /// the member keeps it as unopened and the failure is reported. If the
    /// policy refuses (`OffsetReset::Fail`), the partition is released and
    /// the refusal returned, as every receive call does until it changes.
    fn open_assigned(
        &mut self,
        cursors: &mut CursorSet,
        p: u32,
        committed: Option<u64>,
        assigned: &mut Vec<(u32, u64)>,
    ) -> Result<()> {
        let log = Arc::clone(cursors.topic().partition_log(p)?);
        let start = match start_offset(&log, &self.state.name, committed, self.reset) {
            Ok(start) => start,
            Err(refused) => {
                self.unopened.remove(&p);
                self.state.release(self.id, &[p]);
                return Err(refused);
            }
        };
        match log.cursor_at(start) {
            Ok(c) => {
                // A committed offset retention deleted: reported, one per
                // receive call, once the assignment is complete (the member
                // reads on from where its reset policy put it).
                if let Some(from) = committed.filter(|&o| o < c.position() && o < log.log_start()) {
                    self.lagged.push(Error::Lagged {
                        topic: log.topic_name().to_string(),
                        partition: p,
                        from,
                        resumed_at: c.position(),
                    });
                }
                assigned.push((p, c.position()));
                self.taken_at.insert(p, c.position());
                cursors.add(c);
            }
            Err(e) => {
                let reported = e.to_string();
                let again = self.unopened.get(&p).is_some_and(|u| u.reported == reported);
                self.unopened.insert(p, Unopened { committed, reported, tried: Instant::now() });
                if !again {
                    self.lagged.push(e);
                }
            }
        }
        Ok(())
    }

    /// Tries again to open the partitions the member owns but could not
    /// open: all of them after a rebalance (`now`), else those last tried
    /// [`REOPEN_EVERY`] ago. A failure is reported again only when it
    /// changed.
    fn reopen(&mut self, cursors: &mut CursorSet, now: bool, assigned: &mut Vec<(u32, u64)>) -> Result<()> {
        let due: Vec<(u32, Option<u64>)> = self
            .unopened
            .iter()
            .filter(|(_, u)| now || u.tried.elapsed() >= REOPEN_EVERY)
            .map(|(&p, u)| (p, u.committed))
            .collect();
        for (p, committed) in due {
            let before = assigned.len();
            self.open_assigned(cursors, p, committed, assigned)?;
            if assigned.len() > before {
                self.unopened.remove(&p);
            }
        }
        Ok(())
    }

    /// Leaves the group: commits `cursors`' positions first if auto-commit
    /// is on and `commit` is true. Called by `GroupMember::close` and when
    /// the consumer drops.
    pub(crate) fn leave(self: Box<Self>, cursors: &CursorSet, commit: bool) -> Result<()> {
        let result = if commit && self.auto_commit != AutoCommit::Off && cursors.topic().unusable().is_none() {
            self.state.commit(self.id, &cursors.positions())
        } else {
            Ok(())
        };
        drop(self); // leaves the group (Membership's Drop)
        result
    }
}
