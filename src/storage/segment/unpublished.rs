//! Writing frames into a segment without publishing them, and publishing
//! them later at once: a transaction's share (see
//! `partition_log/transaction.rs`).

use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::storage::frame::FrameHeader;
use crate::storage::segment::Segment;

impl Segment {
    /// Writes a frame at `pos` (at or above the committed length) without
    /// publishing it: readers in this process never read past the committed
    /// length, so they see nothing of it until [`Segment::publish`]. A
    /// transaction writes its frames so, and publishes them after its
    /// decision. Returns the frame's header.
    ///
    /// # Safety
    ///
    /// The caller holds the partition's writer lock, which is the only way
    /// to reach this method for the active segment, and `[pos, pos + len)`
    /// lies at or above the committed length and inside the writable space.
    pub(crate) unsafe fn write_unpublished(
        &self,
        pos: u32,
        len: usize,
        encode: impl FnOnce(&mut [u8]) -> FrameHeader,
    ) -> FrameHeader {
        debug_assert!(!self.is_sealed());
        debug_assert!(pos >= self.published.committed.load(Ordering::Relaxed));
        debug_assert!(pos as usize + len <= self.writable as usize);
        // SAFETY: the range lies at or above `committed`, which readers never
        // read past, and the caller holds the writer lock, so this is the only
        // reference to it (mmap.rs, contract 3).
        let buf = unsafe { self.map.slice_mut(pos as usize, len) };
        let header = encode(buf);
        debug_assert!(header.frame_len() <= len);
        header
    }

    /// Publishes frames written by [`Segment::write_unpublished`] up to
    /// `end`, whose records end at `next_offset` with timestamps up to
    /// `max_timestamp`. Only the writer (holding its lock) calls it.
    pub(crate) fn publish(&self, end: u32, next_offset: u64, max_timestamp: i64) {
        debug_assert!(end >= self.published.committed.load(Ordering::Relaxed) && end <= self.writable);
        if max_timestamp > self.published.max_timestamp.load(Ordering::Relaxed) {
            self.published.max_timestamp.store(max_timestamp, Ordering::Relaxed);
        }
        self.published.next_offset.store(next_offset, Ordering::Release);
        // Release: a reader that sees the new length also sees the frames' bytes.
        self.published.committed.store(end, Ordering::Release);
    }

    /// Zeroes unpublished bytes `[from, to)`: frames written for a
    /// transaction that will not commit (writer lock held, as for
    /// [`Segment::write_unpublished`]).
    pub(crate) fn zero_unpublished(&self, from: u32, to: u32) {
        debug_assert!(from >= self.published.committed.load(Ordering::Relaxed) && to <= self.writable);
        if to > from {
            // SAFETY: as in `write_unpublished`: above `committed`, under the writer lock.
            unsafe { self.map.slice_mut(from as usize, (to - from) as usize) }.fill(0);
        }
    }

    /// msyncs bytes `[from, to)`, published or not.
    pub(crate) fn sync_bytes(&self, from: u32, to: u32) -> Result<()> {
        if to > from {
            self.map
                .flush_range(from as usize, (to - from) as usize)
                .map_err(Error::io_at("msync segment", &self.path))?;
        }
        Ok(())
    }
}
