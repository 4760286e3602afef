//! [`GroupProgress`]: how far a consumer group has come, published
//! lock-free for the floors that must not wait on the group's lock
//! (back-pressure on the producer's path reads it before each send).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// A group's member count and committed offsets, one atomic per partition.
pub(crate) struct GroupProgress {
    live_members: AtomicUsize,
    /// `u64::MAX`: nothing committed on that partition.
    committed: Vec<AtomicU64>,
}

impl GroupProgress {
    /// Progress of a group with no member and no commit, over `partitions`.
    pub(crate) fn new(partitions: usize) -> GroupProgress {
        GroupProgress {
            live_members: AtomicUsize::new(0),
            committed: (0..partitions).map(|_| AtomicU64::new(u64::MAX)).collect(),
        }
    }

    /// Whether the group has at least one member.
    pub(crate) fn is_active(&self) -> bool {
        self.live_members.load(Ordering::Acquire) > 0
    }

    /// Publishes the group's member count.
    pub(crate) fn set_members(&self, n: usize) {
        self.live_members.store(n, Ordering::Release);
    }

    /// The committed offset of `partition`, if the group committed one.
    pub(crate) fn committed(&self, partition: u32) -> Option<u64> {
        let o = self.committed.get(partition as usize)?.load(Ordering::Acquire);
        (o != u64::MAX).then_some(o)
    }

    /// Publishes a committed offset.
    pub(crate) fn set_committed(&self, partition: u32, offset: u64) {
        if let Some(slot) = self.committed.get(partition as usize) {
            slot.store(offset, Ordering::Release);
        }
    }
}
