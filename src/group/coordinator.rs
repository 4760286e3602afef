//! The in-process group coordinator: membership, partition assignment,
//! partition ownership and committed offsets of one consumer group on one
//! topic.
//!
//! # Assignment and ownership
//!
//! The *target* assignment is Kafka's range assignment: members sorted by
//! join order, partitions `0..n` cut into contiguous ranges, the first
//! `n % members` members getting one extra. It is recomputed whenever a
//! member joins or leaves, and the group's `generation` is bumped so members
//! notice at their next receive call.
//!
//! *Ownership* is what makes "no partition is read by two members" hold
//! during a rebalance: a member reads a partition only while it owns it. A
//! member gives up the partitions it lost (first committing, if configured)
//! before another can take them; a member whose new partition is still owned
//! waits for the release (which bumps the generation again and wakes it).
//!
//! # Commits
//!
//! Every commit is a request queued in order (see `group/commit_queue.rs`)
//! and checked twice: when it is made (so a blocking commit reports a bad
//! partition or offset at once) and again when its offsets file is written,
//! under the `store` lock that releasing a partition and leaving also take.
//! So a request never commits a partition its member no longer owns: one
//! revoked, released or left meanwhile ends it with `NotAssigned` (or
//! `NotAMember`), and nothing of it is written. Requests queued together
//! are written together, the later ones' offsets winning.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::group::commit_queue::{CommitQueue, CommitRequest, Completion, copy_error};
use crate::group::commit_thread::{CommitThread, ScheduledWrite};
use crate::group::offsets::{Committed, OffsetsFile};
use crate::storage::health::{BackgroundError, BackgroundTask};
use crate::storage::notify::Notifier;
use crate::storage::transaction_log::TransactionLog;
use crate::topic::group_progress::GroupProgress;
use crate::topic::state::TopicState;

/// One consumer group's state for one topic.
pub(crate) struct GroupState {
    pub(crate) name: String,
    pub(crate) topic: Arc<TopicState>,
    file: OffsetsFile,
    /// Serializes writers of the offsets file (commits and close), so the
    /// slow part of a commit (two fsyncs and renames, ~10 ms on our test
    /// disk) runs without `inner`, which every member's receive call takes.
    /// Lock order: `store` before `inner`. Releasing partitions and leaving
    /// take it too, so ownership cannot change while a commit is written.
    store: Mutex<()>,
    inner: Mutex<Inner>,
    /// Commit requests not yet written.
    commits: CommitQueue,
    /// The broker's commit thread, which writes asynchronous commits.
    committer: Arc<CommitThread>,
    /// Bumped on every change members must react to.
    generation: AtomicU64,
    /// Orders commit requests and transactions' offsets (see `next_seq`).
    request_seq: AtomicU64,
    /// Wakes members blocked in a receive call when the generation changes.
    pub(crate) notifier: Notifier,
    /// Members now, readable without the lock (for back-pressure).
    /// Committed offset per partition, `u64::MAX` for none, readable
    /// without the lock (for back-pressure).
    /// Member count and committed offsets, lock-free for back-pressure.
    pub(crate) progress: Arc<GroupProgress>,
}

#[derive(Default)]
struct Inner {
    next_member: u64,
    /// Member ids in join order.
    members: Vec<u64>,
    target: BTreeMap<u64, Vec<u32>>,
    owner: BTreeMap<u32, u64>,
    committed: Option<BTreeMap<u32, u64>>,
    /// Damage found in the offsets file when it was loaded (fell back to `.prev`).
    load_warning: Option<String>,
    /// Whether the current offsets file is the damaged one (so the next
    /// commit must not rotate it into `.prev`).
    current_damaged: bool,
    /// `committed` holds a transaction's offsets not yet in the file.
    file_behind: bool,
    /// The transaction log entries of the commits whose offsets `committed`
    /// holds and the file not yet, and the log: settled for this group by
    /// the next successful write of the file.
    txn_unwritten: Vec<u64>,
    txn_log: Option<Arc<TransactionLog>>,
    /// A write of the file is running without `inner`; and the offsets
    /// transactions applied meanwhile, which it must not undo.
    writing: bool,
    txn_touched: Vec<(u32, u64)>,
    /// Per partition, when a transaction last applied an offset (see
    /// [`CommitRequest::seq`]).
    txn_seq: BTreeMap<u32, u64>,
    /// Set when the broker closed or the topic was deleted: no more commits.
    closed: Option<Error>,
}

/// What writing a batch of commit requests came to, told once the locks
/// are released (see `GroupState::deliver`).
struct Written {
    /// Each request's outcome.
    outcomes: Vec<(Arc<Completion>, Result<()>)>,
    /// For the broker's health record: the file was written (a failure of
    /// asynchronous commits is no longer current), or a write for
    /// asynchronous requests failed; `None` when nothing was written.
    health: Option<std::result::Result<(), BackgroundError>>,
}

impl Written {
    /// Every request of `batch` refused with (a copy of) `reason`.
    fn refused(batch: Vec<CommitRequest>, reason: &Error) -> Written {
        Written { outcomes: batch.into_iter().map(|r| (r.done, Err(copy_error(reason)))).collect(), health: None }
    }
}

/// A transaction's hold on a group (see [`GroupState::hold_for_transaction`]).
pub(crate) struct TransactionHold<'a> {
    state: &'a GroupState,
    inner: parking_lot::MutexGuard<'a, Inner>,
}

impl TransactionHold<'_> {
    /// Checks that `member` may commit `offsets` now, as a commit would.
    pub(crate) fn check(&self, member: u64, offsets: &[(u32, u64)]) -> Result<()> {
        self.state.check_against(&self.inner, member, offsets)
    }

    /// A committed transaction's `offsets` (checked by
    /// [`check`](TransactionHold::check) under this hold), its entry `entry`
    /// in `txn_log`: committed at once, and written to the offsets file by
    /// the commit thread once the caller, after releasing the hold, calls
    /// [`GroupState::schedule_write`] (which may write on the calling
    /// thread). The write settles the entry for this group.
    pub(crate) fn apply(&mut self, offsets: &[(u32, u64)], txn_log: &Arc<TransactionLog>, entry: u64) {
        let state = self.state;
        let inner = &mut *self.inner;
        match state.committed_loaded(inner) {
            Ok(committed) => committed.extend(offsets.iter().copied()),
            // Left unsettled: recovery applies the offsets at the next open.
            Err(_) => return,
        }
        inner.file_behind = true;
        inner.txn_unwritten.push(entry);
        if inner.writing {
            inner.txn_touched.extend(offsets.iter().copied());
        }
        inner.txn_log.get_or_insert_with(|| Arc::clone(txn_log));
        state.publish_committed(&offsets.iter().copied().collect());
        // The offsets are in `committed` already: the request only asks
        // for a write (so a later reset or commit is never undone by it).
        let seq = state.next_seq();
        for &(p, _) in offsets {
            inner.txn_seq.insert(p, seq);
        }
        let request = CommitRequest {
            member: 0,
            offsets: vec![],
            background: true,
            transactional: true,
            seq,
            done: Completion::pending(),
        };
        state.commits.push(request, false);
    }
}

impl ScheduledWrite for GroupState {
    /// Writes what is queued, as the commit thread does when this group is
    /// handed to it.
    fn write_scheduled(&self) {
        self.commits.unschedule();
        self.write_queued();
    }
}

/// Kafka's range assignment of `partitions` over `members` (in order).
pub(crate) fn range_assignment(members: &[u64], partitions: u32) -> BTreeMap<u64, Vec<u32>> {
    let mut out = BTreeMap::new();
    let m = members.len() as u32;
    if m == 0 {
        return out;
    }
    let (per, extra) = (partitions / m, partitions % m);
    let mut next = 0;
    for (i, &member) in members.iter().enumerate() {
        let count = per + u32::from((i as u32) < extra);
        out.insert(member, (next..next + count).collect());
        next += count;
    }
    out
}

impl GroupState {
    pub(crate) fn new(
        name: &str,
        topic: Arc<TopicState>,
        file: OffsetsFile,
        committer: Arc<CommitThread>,
    ) -> GroupState {
        let topic_partitions = topic.partitions.len();
        GroupState {
            name: name.to_string(),
            topic,
            file,
            store: Mutex::new(()),
            inner: Mutex::new(Inner::default()),
            commits: CommitQueue::default(),
            committer,
            generation: AtomicU64::new(1),
            request_seq: AtomicU64::new(0),
            notifier: Notifier::default(),
            progress: Arc::new(GroupProgress::new(topic_partitions)),
        }
    }

    fn publish_committed(&self, offsets: &BTreeMap<u32, u64>) {
        for (&p, &o) in offsets {
            self.progress.set_committed(p, o);
        }
        // Producers held back by this group's backlog may go on now.
        for log in &self.topic.partitions {
            log.space.notify();
        }
    }

    /// The next number in the order of this group's commit requests and
    /// transactions' offsets.
    fn next_seq(&self) -> u64 {
        self.request_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// The current generation (`Acquire`: pairs with the bump's `Release`).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::Release);
        self.notifier.notify();
    }

    fn partitions(&self) -> u32 {
        self.topic.partitions.len() as u32
    }

    /// Loads the committed offsets on first use.
    fn committed_loaded<'a>(&self, inner: &'a mut Inner) -> Result<&'a mut BTreeMap<u32, u64>> {
        if inner.committed.is_none() {
            let loaded = self.file.load(self.partitions())?;
            inner.current_damaged = loaded.fell_back.is_some();
            inner.load_warning = loaded.fell_back.map(|e| e.to_string());
            // A commit made past the end of its epoch covered records a
            // crash lost; their offsets were handed out again to new records,
            // which the group must not skip: it resumes where the epoch ended.
            let offsets: BTreeMap<u32, u64> = loaded
                .offsets
                .iter()
                .map(|(&p, c)| {
                    let resume = self.topic.partitions.get(p as usize).map_or(c.offset, |log| {
                        let resume = log.resume_point(c.offset, c.epoch);
                        if resume != c.offset {
                            log::warn!(
                                "millpond: group {:?} topic {:?} partition {p}: committed offset {} lies past the \
                                 end of its epoch {} (records lost in a crash); resuming at {resume}",
                                self.name,
                                self.topic.name,
                                c.offset,
                                c.epoch
                            );
                        }
                        resume
                    });
                    (p, resume)
                })
                .collect();
            self.publish_committed(&offsets);
            inner.committed = Some(offsets);
        }
        Ok(inner.committed.get_or_insert_with(BTreeMap::new))
    }

    /// Adds a member, returning its id.
    pub(crate) fn join(&self) -> Result<u64> {
        let mut inner = self.inner.lock();
        self.committed_loaded(&mut inner)?;
        let id = inner.next_member;
        inner.next_member += 1;
        inner.members.push(id);
        inner.target = range_assignment(&inner.members, self.partitions());
        self.progress.set_members(inner.members.len());
        drop(inner);
        self.bump();
        self.publish_committed(&BTreeMap::new());
        Ok(id)
    }

    /// Removes a member and everything it owned, after writing the commits
    /// queued so far (its asynchronous ones among them, which would
    /// otherwise fail with `NotAMember`): what it acknowledged before
    /// leaving is committed when it has left.
    pub(crate) fn leave(&self, member: u64) {
        let store = self.store.lock();
        let queued = self.commits.take_all();
        let written = (!queued.is_empty()).then(|| self.write_batch(queued));
        let mut inner = self.inner.lock();
        inner.members.retain(|&m| m != member);
        inner.owner.retain(|_, &mut m| m != member);
        inner.target = range_assignment(&inner.members, self.partitions());
        self.progress.set_members(inner.members.len());
        drop(inner);
        drop(store);
        if let Some(written) = written {
            self.deliver(written);
        }
        self.bump();
        self.publish_committed(&BTreeMap::new());
    }

    /// The partitions `member` should own now.
    pub(crate) fn target(&self, member: u64) -> Vec<u32> {
        self.inner.lock().target.get(&member).cloned().unwrap_or_default()
    }

    /// Releases `partitions` owned by `member` (after any commit being
    /// written now: its requests for them still queued then fail with
    /// `NotAssigned`).
    pub(crate) fn release(&self, member: u64, partitions: &[u32]) {
        let _store = self.store.lock();
        let mut inner = self.inner.lock();
        for p in partitions {
            if inner.owner.get(p) == Some(&member) {
                inner.owner.remove(p);
            }
        }
        drop(inner);
        self.bump();
    }

    /// Takes ownership of `partition` for `member` if it is free and still
    /// in the member's target; returns its committed offset (`Some(None)`
    /// when there is none), or `None` if it cannot be taken yet.
    pub(crate) fn try_acquire(&self, member: u64, partition: u32) -> Result<Option<Option<u64>>> {
        let mut inner = self.inner.lock();
        let wanted = inner.target.get(&member).is_some_and(|t| t.contains(&partition));
        if !wanted || inner.owner.contains_key(&partition) {
            return Ok(None);
        }
        inner.owner.insert(partition, member);
        let committed = self.committed_loaded(&mut inner)?.get(&partition).copied();
        Ok(Some(committed))
    }

    /// Commits `offsets` for partitions `member` owns, durably when it
    /// returns. Each offset must be at most the partition's high watermark;
    /// on error nothing is committed. Queued behind the asynchronous
    /// requests made before it, and written with them (by this thread, or
    /// by the commit thread if it is writing them already).
    pub(crate) fn commit(&self, member: u64, offsets: &[(u32, u64)]) -> Result<()> {
        self.check_request(member, offsets)?;
        let done = Completion::pending();
        let request = CommitRequest {
            member,
            offsets: offsets.to_vec(),
            background: false,
            transactional: false,
            seq: self.next_seq(),
            done: Arc::clone(&done),
        };
        self.commits.push(request, false);
        self.write_queued();
        done.wait()
    }

    /// Holds the group while a transaction checks and commits its offsets:
    /// no ownership changes and no commit applies meanwhile (lock order:
    /// groups, then partitions' writers). Its offsets file may be being
    /// written meanwhile: the write keeps what the transaction applies.
    pub(crate) fn hold_for_transaction(&self) -> TransactionHold<'_> {
        TransactionHold { state: self, inner: self.inner.lock() }
    }

    /// After the offsets file was written with everything `committed`
    /// holds (`store` held): the transactions whose offsets it now holds
    /// are settled for this group, on disk before anything else may write
    /// the file (so recovery never applies them over a later change).
    fn settle_written(&self, inner: &mut Inner) {
        inner.file_behind = false;
        let entries = std::mem::take(&mut inner.txn_unwritten);
        if let Some(log) = inner.txn_log.clone()
            && let Err(entries) = self.settle(&log, entries)
        {
            inner.txn_unwritten.splice(0..0, entries);
        }
    }

    /// Marks `entries` settled for this group, synced (see
    /// [`settle_written`](GroupState::settle_written)). On failure they are
    /// returned, to be settled by the next write (until then recovery would
    /// apply their offsets again).
    fn settle(&self, log: &TransactionLog, entries: Vec<u64>) -> std::result::Result<(), Vec<u64>> {
        match log.settle(&entries, Some((&self.name, &self.topic.name)), true) {
            Ok(()) => Ok(()),
            Err(e) => {
                log::warn!(
                    "millpond: group {:?} topic {:?}: could not mark transactions settled (the next write of the \
                     offsets file tries again): {e}",
                    self.name,
                    self.topic.name
                );
                Err(entries)
            }
        }
    }

    /// Has what is queued written by the commit thread (see
    /// [`apply_transactional`](GroupState::apply_transactional)).
    pub(crate) fn schedule_write(self: &Arc<Self>) {
        if self.commits.schedule() {
            self.committer.schedule(Arc::clone(self) as Arc<dyn ScheduledWrite>);
        }
    }

    /// At open, a committed transaction's `offsets` that the offsets file
    /// may not hold (its commit was not settled for this group, so nothing
    /// wrote the file after it): written now.
    pub(crate) fn roll_forward(&self, offsets: &[(u32, u64)]) -> Result<()> {
        let _store = self.store.lock();
        let mut inner = self.inner.lock();
        let mut next = self.committed_loaded(&mut inner)?.clone();
        for &(p, o) in offsets {
            if p < self.partitions() {
                next.insert(p, o.min(self.topic.partitions[p as usize].high_watermark()));
            }
        }
        self.file.store(&self.with_epochs(&next), inner.current_damaged)?;
        inner.current_damaged = false;
        self.publish_committed(&next);
        inner.committed = Some(next);
        Ok(())
    }

    /// Queues a commit of `offsets` for `member`, written by the commit
    /// thread; the outcome arrives in the returned completion. Checked now
    /// and again when written.
    pub(crate) fn commit_async(self: &Arc<Self>, member: u64, offsets: &[(u32, u64)]) -> Arc<Completion> {
        if let Err(e) = self.check_request(member, offsets) {
            return Completion::ready(Err(e));
        }
        let done = Completion::pending();
        let request = CommitRequest {
            member,
            offsets: offsets.to_vec(),
            background: true,
            transactional: false,
            seq: self.next_seq(),
            done: Arc::clone(&done),
        };
        if self.commits.push(request, true) {
            self.committer.schedule(Arc::clone(self) as Arc<dyn ScheduledWrite>);
        }
        done
    }

    /// Takes every queued request and writes them in one file write.
    fn write_queued(&self) {
        let store = self.store.lock();
        let batch = self.commits.take_all();
        if batch.is_empty() {
            return;
        }
        let written = self.write_batch(batch);
        drop(store);
        self.deliver(written);
    }

    /// Tells the outcomes of a batch: to the health record, then to each
    /// request. Outside the locks: the background-error callback and a
    /// woken waiter may commit again at once.
    fn deliver(&self, written: Written) {
        let health = &self.committer.health;
        match written.health {
            Some(Ok(())) => health.resolved_group(BackgroundTask::Commit, &self.name, &self.topic.name),
            Some(Err(failure)) => health.report(failure),
            None => {}
        }
        for (done, outcome) in written.outcomes {
            done.complete(outcome);
        }
    }

    /// Checks a request against the group as it is now: open, made by a
    /// member, for partitions it owns, offsets within the log.
    fn check_request(&self, member: u64, offsets: &[(u32, u64)]) -> Result<()> {
        let inner = self.inner.lock();
        self.check_against(&inner, member, offsets)
    }

    fn check_against(&self, inner: &Inner, member: u64, offsets: &[(u32, u64)]) -> Result<()> {
        if let Some(e) = Self::closed_error(inner) {
            return Err(e);
        }
        // Deleted but not closed yet: nothing may be written for it any more.
        if self.topic.deleted.load(Ordering::SeqCst) {
            return Err(Error::TopicDeleted { topic: self.topic.name.to_string() });
        }
        if !inner.members.contains(&member) {
            return Err(Error::NotAMember { topic: self.topic.name.to_string(), group: self.name.clone() });
        }
        for &(p, o) in offsets {
            if inner.owner.get(&p) != Some(&member) {
                return Err(Error::NotAssigned {
                    topic: self.topic.name.to_string(),
                    group: self.name.clone(),
                    partition: p,
                });
            }
            let log = &self.topic.partitions[p as usize];
            if o > log.high_watermark() {
                return Err(log.out_of_range(o));
            }
        }
        Ok(())
    }

    /// Applies `batch` in order — each request checked again, a refused one
    /// contributing nothing — and writes the result in one file write.
    /// Called with `store` held. Returns each request's outcome.
    ///
    /// Only the file write happens without `inner`: writers are serialized
    /// by `store`, so none can change `committed` meanwhile, and no
    /// partition can be released or member leave meanwhile either (both
    /// take `store`).
    fn write_batch(&self, batch: Vec<CommitRequest>) -> Written {
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut accepted = Vec::with_capacity(batch.len());
        let mut inner = self.inner.lock();
        let loaded = match self.committed_loaded(&mut inner) {
            Ok(committed) => committed.clone(),
            Err(e) => return Written::refused(batch, &e),
        };
        let mut next = loaded.clone();
        let mut background = false;
        for request in batch {
            let checked = if request.transactional {
                // Checked when the transaction committed; in `committed` since.
                Self::closed_error(&inner).map_or(Ok(()), Err)
            } else {
                self.check_against(&inner, request.member, &request.offsets)
            };
            match checked {
                Ok(()) => {
                    // A request older than a transaction's offset for a
                    // partition does not undo it.
                    let newer = |&&(p, _): &&(u32, u64)| inner.txn_seq.get(&p).is_none_or(|&t| t < request.seq);
                    next.extend(request.offsets.iter().filter(newer).copied());
                    background |= request.background;
                    accepted.push(request.done);
                }
                Err(e) => outcomes.push((request.done, Err(e))),
            }
        }
        if next == loaded && !inner.file_behind {
            outcomes.extend(accepted.into_iter().map(|done| (done, Ok(()))));
            return Written { outcomes, health: None };
        }
        let current_damaged = inner.current_damaged;
        // The transactions whose offsets this write holds; those applied
        // while it runs (without `inner`) are for the next write.
        let settling = std::mem::take(&mut inner.txn_unwritten);
        inner.writing = true;
        drop(inner);
        // Each commit carries the epoch of the last record it covers.
        let with_epochs = self.with_epochs(&next);
        let written = self.file.store(&with_epochs, current_damaged);
        let mut inner = self.inner.lock();
        inner.writing = false;
        let touched = std::mem::take(&mut inner.txn_touched);
        let health = match &written {
            Ok(()) => {
                inner.current_damaged = false;
                // Transactions applied meanwhile stay in `committed`.
                next.extend(touched);
                inner.file_behind = !inner.txn_unwritten.is_empty();
                self.publish_committed(&next);
                inner.committed = Some(next);
                let log = inner.txn_log.clone();
                drop(inner);
                // Still under `store`: settled before anything else may
                // write the file.
                if let Some(log) = log
                    && let Err(settling) = self.settle(&log, settling)
                {
                    let mut inner = self.inner.lock();
                    inner.txn_unwritten.splice(0..0, settling);
                    inner.file_behind = true;
                }
                Some(Ok(()))
            }
            // Nobody may be looking at an asynchronous request's outcome:
            // reported too.
            Err(e) => {
                inner.txn_unwritten.splice(0..0, settling);
                drop(inner);
                // Nobody may be looking at an asynchronous request's
                // outcome: reported too.
                background.then(|| {
                    Err(BackgroundError::new(BackgroundTask::Commit, copy_error(e))
                        .of_group(&self.name, &self.topic.name))
                })
            }
        };
        outcomes.extend(accepted.into_iter().map(|done| {
            let outcome = match &written {
                Ok(()) => Ok(()),
                Err(e) => Err(copy_error(e)),
            };
            (done, outcome)
        }));
        Written { outcomes, health }
    }

    /// The error for a group that is closed, if it is.
    fn closed_error(inner: &Inner) -> Option<Error> {
        inner.closed.as_ref().map(|reason| match reason {
            Error::TopicDeleted { topic } => Error::TopicDeleted { topic: topic.clone() },
            _ => Error::Closed,
        })
    }

    /// `GroupActive` unless the group has no members.
    fn check_inactive(&self, inner: &Inner) -> Result<()> {
        if inner.members.is_empty() {
            return Ok(());
        }
        Err(Error::GroupActive {
            topic: self.topic.name.to_string(),
            group: self.name.clone(),
            members: inner.members.len(),
        })
    }

    /// Whether the group exists: it has members or committed offsets.
    pub(crate) fn exists(&self) -> Result<bool> {
        let mut inner = self.inner.lock();
        Ok(!inner.members.is_empty() || !self.committed_loaded(&mut inner)?.is_empty())
    }

    /// Sets the committed offsets of the partitions in `offsets` (each at
    /// most its high watermark), as an operator's reset: only while the
    /// group has no members, so no member's position disagrees with it.
    /// Partitions not named keep theirs.
    pub(crate) fn reset(&self, offsets: &BTreeMap<u32, u64>) -> Result<()> {
        let _store = self.store.lock();
        let mut inner = self.inner.lock();
        if let Some(e) = Self::closed_error(&inner) {
            return Err(e);
        }
        self.check_inactive(&inner)?;
        for (&p, &o) in offsets {
            let log = self.topic.partitions.get(p as usize).ok_or_else(|| Error::InvalidPartition {
                topic: self.topic.name.to_string(),
                partition: p,
                partitions: self.partitions(),
            })?;
            if o > log.high_watermark() {
                return Err(log.out_of_range(o));
            }
        }
        let mut next = self.committed_loaded(&mut inner)?.clone();
        next.extend(offsets.iter().map(|(&p, &o)| (p, o)));
        let with_epochs = self.with_epochs(&next);
        // Held across the write (unlike a commit's): no member may join
        // and read the old offsets while the new ones are being stored.
        self.file.store(&with_epochs, inner.current_damaged)?;
        inner.current_damaged = false;
        self.settle_written(&mut inner);
        self.publish_committed(&next);
        inner.committed = Some(next);
        Ok(())
    }

    /// Deletes the group's committed offsets on this topic, on disk too
    /// (moved to `doomed`, in the broker's trash, as the atomic step), only
    /// while it has no members. The group can be joined again
    /// afterwards, starting by its offset-reset policy.
    pub(crate) fn delete(&self, doomed: &std::path::Path) -> Result<()> {
        let _store = self.store.lock();
        let mut inner = self.inner.lock();
        if let Some(e) = Self::closed_error(&inner) {
            return Err(e);
        }
        self.check_inactive(&inner)?;
        self.file.delete_into(doomed)?;
        for p in 0..self.partitions() {
            self.progress.set_committed(p, u64::MAX);
        }
        inner.committed = Some(BTreeMap::new());
        inner.load_warning = None;
        inner.current_damaged = false;
        // Transactions' offsets not written yet are deleted with the rest.
        self.settle_written(&mut inner);
        Ok(())
    }

    /// Each member's target partitions, by member id.
    pub(crate) fn assignment(&self) -> BTreeMap<u64, Vec<u32>> {
        self.inner.lock().target.clone()
    }

    /// `offsets` with the epoch of the last record each one covers.
    fn with_epochs(&self, offsets: &BTreeMap<u32, u64>) -> BTreeMap<u32, Committed> {
        offsets
            .iter()
            .map(|(&p, &offset)| {
                let epoch =
                    self.topic.partitions.get(p as usize).map_or(0, |log| log.epoch_of(offset.saturating_sub(1)));
                (p, Committed { offset, epoch })
            })
            .collect()
    }

    /// Stops the group for good (broker closed or topic deleted): no commit
    /// writes the offsets file after this returns, and waiting members wake.
    ///
    /// Commits requested before are not lost: when the broker closes, they
    /// are written before this returns (with the one being written now, if
    /// any); when the topic is deleted, they end with `TopicDeleted`. Later
    /// requests are refused with the same error.
    pub(crate) fn close(&self, reason: Error) {
        // Waits for a commit writing the file right now.
        let store = self.store.lock();
        let pending = self.commits.close(&reason);
        let written = if matches!(reason, Error::Closed) {
            self.write_batch(pending)
        } else {
            // The topic is deleted, its groups' offsets with it: nothing of
            // a transaction is left to apply for it.
            self.settle_written(&mut self.inner.lock());
            Written::refused(pending, &reason)
        };
        self.inner.lock().closed = Some(reason);
        drop(store);
        self.deliver(written);
        self.notifier.close();
    }

    /// The committed offsets (loading them if needed).
    pub(crate) fn committed(&self) -> Result<BTreeMap<u32, u64>> {
        let mut inner = self.inner.lock();
        // Another process commits a followed topic's groups: read them as
        // they are now.
        if self.topic.partitions.first().is_some_and(|p| p.is_follower()) {
            inner.committed = None;
        }
        Ok(self.committed_loaded(&mut inner)?.clone())
    }

    /// Damage found when loading the offsets file, if `.prev` was used.
    pub(crate) fn load_warning(&self) -> Option<String> {
        self.inner.lock().load_warning.clone()
    }

    /// Number of members.
    pub(crate) fn member_count(&self) -> usize {
        self.inner.lock().members.len()
    }

    /// Who owns which partition now.
    pub(crate) fn owners(&self) -> BTreeMap<u32, u64> {
        self.inner.lock().owner.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_assignment_splits_partitions_contiguously() {
        let a = range_assignment(&[10, 11, 12], 7);
        assert_eq!(a[&10], [0, 1, 2]);
        assert_eq!(a[&11], [3, 4]);
        assert_eq!(a[&12], [5, 6]);
    }

    #[test]
    fn range_assignment_with_more_members_than_partitions() {
        let a = range_assignment(&[1, 2, 3], 2);
        assert_eq!(a[&1], [0]);
        assert_eq!(a[&2], [1]);
        assert!(a[&3].is_empty());
        assert!(range_assignment(&[], 4).is_empty());
    }

    #[test]
    fn range_assignment_covers_every_partition_once() {
        for members in 1..9u64 {
            for parts in 0..20 {
                let ids: Vec<u64> = (0..members).collect();
                let mut all: Vec<u32> = range_assignment(&ids, parts).into_values().flatten().collect();
                all.sort_unstable();
                assert_eq!(all, (0..parts).collect::<Vec<_>>());
            }
        }
    }
}
