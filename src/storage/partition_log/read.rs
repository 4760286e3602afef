//! The read side's segment lookups: the segment that holds an offset (a
//! sealed one loaded on first use), the out-of-range error, and the sizes of
//! what is stored. Cursors are made in `storage/cursor.rs`.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::storage::index;
use crate::storage::partition_log::state::{PartitionLog, Slot};
use crate::storage::segment::Segment;

impl PartitionLog {
    /// The segment of `slot`, opening a sealed one on first use.
    pub(crate) fn load(&self, slot: &Slot) -> Result<Arc<Segment>> {
        let mut guard = slot.seg.lock();
        if let Some(seg) = &*guard {
            return Ok(Arc::clone(seg));
        }
        let gone = self.gone.read_recursive();
        if *gone {
            return Err(Error::TopicDeleted { topic: self.id.topic.to_string() });
        }
        let listed = |log: &PartitionLog| log.slots.read().iter().any(|s| s.base == slot.base);
        if !listed(self) {
            // Deleted by retention after the caller found it.
            return Err(self.out_of_range(slot.base));
        }
        let next_base = {
            let slots = self.slots.read();
            let i = slots.partition_point(|s| s.base <= slot.base);
            slots.get(i).map(|s| s.base)
        };
        let opened = Segment::open_sealed(
            &self.dir,
            slot.base,
            self.settings.index_interval,
            self.id.clone(),
            next_base,
            !self.is_compacted(),
        );
        let seg = match opened {
            Ok(seg) => Arc::new(seg),
            // Retention delisted and unlinked it meanwhile.
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound && !listed(self) => {
                return Err(self.out_of_range(slot.base));
            }
            // A follower learns of retention in another process here: read
            // the segment list again and report as above.
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound && self.is_follower() => {
                drop(gone);
                drop(guard);
                self.forget_deleted_segments()?;
                return Err(self.out_of_range(slot.base));
            }
            Err(e) => return Err(e),
        };
        drop(gone);
        *guard = Some(Arc::clone(&seg));
        Ok(seg)
    }

    /// The segment holding `offset` (the last one whose base is at or below it).
    pub(crate) fn segment_for(&self, offset: u64) -> Result<Arc<Segment>> {
        let slot = {
            let slots = self.slots.read();
            let i = slots.partition_point(|s| s.base <= offset);
            match i.checked_sub(1) {
                Some(i) => Arc::clone(&slots[i]),
                None => return Err(self.out_of_range(offset)),
            }
        };
        self.load(&slot)
    }

    /// The first segment after the one based at `base`, if any.
    pub(crate) fn segment_after(&self, base: u64) -> Result<Option<Arc<Segment>>> {
        let slot = {
            let slots = self.slots.read();
            let i = slots.partition_point(|s| s.base <= base);
            match slots.get(i) {
                Some(s) => Arc::clone(s),
                None => return Ok(None),
            }
        };
        self.load(&slot).map(Some)
    }

    /// An `OffsetOutOfRange` error for this partition.
    pub(crate) fn out_of_range(&self, offset: u64) -> Error {
        Error::OffsetOutOfRange {
            topic: self.id.topic.to_string(),
            partition: self.id.partition,
            offset,
            start: self.log_start(),
            end: self.high_watermark(),
        }
    }

    /// Bytes stored from `offset` to the end (approximate to within one
    /// index interval: measured from the index entry at or before it).
    pub(crate) fn bytes_from(&self, offset: u64) -> u64 {
        let slots: Vec<Arc<Slot>> = self.slots.read().clone();
        let i = slots.partition_point(|s| s.base <= offset).saturating_sub(1);
        let mut total: u64 = slots[i..].iter().map(|s| self.slot_bytes(s)).sum();
        if let Some(first) = slots.get(i)
            && let Ok(seg) = self.load(first)
        {
            let skip = index::SegmentIndex::lookup_offset(&seg.index_entries(), offset.saturating_sub(seg.base_offset))
                .map_or(0, |e| u64::from(e.position));
            total = total.saturating_sub(skip);
        }
        total
    }

    /// Bytes of the active segment's published frames plus the sizes of
    /// sealed segment files (from their metadata, without opening them).
    pub(crate) fn size_bytes(&self) -> u64 {
        let slots: Vec<Arc<Slot>> = self.slots.read().clone();
        slots.iter().map(|slot| self.slot_bytes(slot)).sum()
    }
}
