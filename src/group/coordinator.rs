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

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::group::offsets::{Committed, OffsetsFile};
use crate::storage::notify::Notifier;
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
    /// Lock order: `store` before `inner`.
    store: Mutex<()>,
    inner: Mutex<Inner>,
    /// Bumped on every change members must react to.
    generation: AtomicU64,
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
    /// Set when the broker closed or the topic was deleted: no more commits.
    closed: Option<Error>,
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
    pub(crate) fn new(name: &str, topic: Arc<TopicState>, file: OffsetsFile) -> GroupState {
        let topic_partitions = topic.partitions.len();
        GroupState {
            name: name.to_string(),
            topic,
            file,
            store: Mutex::new(()),
            inner: Mutex::new(Inner::default()),
            generation: AtomicU64::new(1),
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

    /// Removes a member and everything it owned.
    pub(crate) fn leave(&self, member: u64) {
        let mut inner = self.inner.lock();
        inner.members.retain(|&m| m != member);
        inner.owner.retain(|_, &mut m| m != member);
        inner.target = range_assignment(&inner.members, self.partitions());
        self.progress.set_members(inner.members.len());
        drop(inner);
        self.bump();
        self.publish_committed(&BTreeMap::new());
    }

    /// The partitions `member` should own now.
    pub(crate) fn target(&self, member: u64) -> Vec<u32> {
        self.inner.lock().target.get(&member).cloned().unwrap_or_default()
    }

    /// Releases `partitions` owned by `member`.
    pub(crate) fn release(&self, member: u64, partitions: &[u32]) {
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

    /// Commits `offsets` for partitions `member` owns. Each offset must be
    /// at most the partition's high watermark.
    ///
    /// Only the file write happens without `inner`: commits are serialized
    /// by `store`, so none can change `committed` meanwhile, and the
    /// committing member cannot lose these partitions meanwhile either (it
    /// gives partitions up only in its own receive calls, and it is here).
    pub(crate) fn commit(&self, member: u64, offsets: &[(u32, u64)]) -> Result<()> {
        let _store = self.store.lock();
        let mut inner = self.inner.lock();
        if let Some(e) = Self::closed_error(&inner) {
            return Err(e);
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
        let mut next = self.committed_loaded(&mut inner)?.clone();
        let mut changed = false;
        for &(p, o) in offsets {
            changed |= next.insert(p, o) != Some(o);
        }
        if !changed {
            return Ok(());
        }
        let current_damaged = inner.current_damaged;
        drop(inner);
        // Each commit carries the epoch of the last record it covers.
        let with_epochs = self.with_epochs(&next);
        self.file.store(&with_epochs, current_damaged)?;
        let mut inner = self.inner.lock();
        inner.current_damaged = false;
        self.publish_committed(&next);
        inner.committed = Some(next);
        Ok(())
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
    pub(crate) fn close(&self, reason: Error) {
        // Waits for a commit writing the file right now.
        let _store = self.store.lock();
        self.inner.lock().closed = Some(reason);
        self.notifier.close();
    }

    /// The committed offsets (loading them if needed).
    pub(crate) fn committed(&self) -> Result<BTreeMap<u32, u64>> {
        let mut inner = self.inner.lock();
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
