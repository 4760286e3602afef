//! Retention: deleting a partition's oldest sealed segments by size or age.
//!
//! Only whole sealed segments are deleted, oldest first, and never the
//! active one. The segment leaves the segment list before its files are
//! unlinked; readers still holding it keep reading their mapping, which
//! outlives the file. The log start moves to the next segment's base, so
//! offsets are never reused.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::error::Result;
use crate::storage::fsutil;
use crate::storage::partition_log::state::{PartitionLog, Slot};
use crate::storage::segment::{index_path, log_path};

impl PartitionLog {
    /// Whether this partition has a retention limit.
    pub(crate) fn has_retention(&self) -> bool {
        self.settings.retention_bytes.is_some() || self.settings.retention.is_some()
    }

    /// Whether a segment was rolled since the last retention run.
    pub(crate) fn take_rolled(&self) -> bool {
        self.rolled.swap(false, Ordering::AcqRel)
    }

    /// Bytes the slot's segment takes: its published frames if it is loaded,
    /// else its file's size (from its metadata, without opening it).
    pub(crate) fn slot_bytes(&self, slot: &Slot) -> u64 {
        match &*slot.seg.lock() {
            Some(seg) => u64::from(seg.committed()),
            None => std::fs::metadata(log_path(&self.dir, slot.base)).map_or(0, |m| m.len()),
        }
    }

    /// Deletes the oldest sealed segments that fall outside the retention
    /// limits as of `now_ms`. Returns how many were deleted.
    pub(crate) fn apply_retention(&self, now_ms: i64) -> Result<u64> {
        if !self.has_retention() {
            return Ok(0);
        }
        let _one_at_a_time = self.maintenance_lock.lock();
        let gone = self.gone.read_recursive();
        if *gone {
            return Ok(0);
        }
        let mut deleted = 0;
        loop {
            let slots: Vec<Arc<Slot>> = self.slots.read().clone();
            let [oldest, next, ..] = slots.as_slice() else { break };
            let by_bytes = match self.settings.retention_bytes {
                Some(limit) => {
                    let total: u64 = slots.iter().map(|s| self.slot_bytes(s)).sum();
                    total.saturating_sub(self.slot_bytes(oldest)) >= limit
                }
                None => false,
            };
            let by_age = !by_bytes
                && match self.settings.retention {
                    Some(age) => {
                        let cutoff = now_ms.saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
                        self.load(oldest)?.max_timestamp() < cutoff
                    }
                    None => false,
                };
            if !(by_bytes || by_age) {
                break;
            }
            self.delete_oldest(oldest, next, "delete segment (retention)")?;
            deleted += 1;
        }
        if deleted > 0 {
            // The backlog measured from the log start may have shrunk.
            self.space.notify();
        }
        Ok(deleted)
    }

    /// Deletes the oldest sealed segments whose records all lie before
    /// `offset` (the transaction log's settled entries). Returns how many
    /// were deleted.
    pub(crate) fn delete_segments_before(&self, offset: u64) -> Result<u64> {
        let _one_at_a_time = self.maintenance_lock.lock();
        let gone = self.gone.read_recursive();
        if *gone {
            return Ok(0);
        }
        let mut deleted = 0;
        loop {
            let slots: Vec<Arc<Slot>> = self.slots.read().clone();
            let [oldest, next, ..] = slots.as_slice() else { break };
            if next.base > offset {
                break;
            }
            self.delete_oldest(oldest, next, "delete segment (settled transactions)")?;
            deleted += 1;
        }
        Ok(deleted)
    }

    /// Deletes the oldest segment, `oldest`, whose successor is `next`.
    /// Delisted first, so no reader finds a slot whose file is gone; a file
    /// that then cannot be unlinked reappears at the next open (harmless:
    /// the log start just moves back).
    fn delete_oldest(&self, oldest: &Slot, next: &Slot, op: &'static str) -> Result<()> {
        self.slots.write().retain(|s| s.base != oldest.base);
        self.log_start.store(next.base, Ordering::Release);
        for path in [log_path(&self.dir, oldest.base), index_path(&self.dir, oldest.base)] {
            fsutil::remove_if_present(&path, op)?;
        }
        Ok(())
    }
}
