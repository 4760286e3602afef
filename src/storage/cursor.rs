//! [`Cursor`]: a reader's position in one partition.
//!
//! A cursor holds the segment it reads (an `Arc`, so retention can delete the
//! file underneath it), the byte position of the next frame, and the frame it
//! is in the middle of. It never takes the writer lock: it loads the
//! segment's committed length (`Acquire`) and reads only below it.
//!
//! The [`PartitionLog`] methods that make cursors live here too, next to
//! what they make, so that the partition log's files never import this one.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::storage::frame;
use crate::storage::index;
use crate::storage::message::Message;
use crate::storage::message_ref::MessageRef;
use crate::storage::partition_log::state::PartitionLog;
use crate::storage::segment::{self, MappedBytes, Segment};

/// A record found by a cursor: where it lies in the cursor's current
/// segment, without holding the segment. Turned into a [`Message`] (which
/// holds the segment) or a [`MessageRef`] (which borrows the cursor).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Found {
    offset: u64,
    timestamp: i64,
    body_start: u32,
    body_end: u32,
    key: Option<(u32, u32)>,
    value: Option<(u32, u32)>,
    headers: (u32, u32),
    header_count: u16,
}

/// The frame a cursor is reading records from.
#[derive(Debug, Clone, Copy)]
struct FrameState {
    /// Byte position of the frame (for error messages).
    frame_pos: u32,
    body_start: u32,
    body_end: u32,
    /// Position of the next record, relative to the body.
    rec_pos: u32,
    remaining: u32,
    /// The frame's header (its base offset, timestamps, layout).
    header: frame::FrameHeader,
}

/// A position in one partition, and the means to read forward from it.
pub(crate) struct Cursor {
    log: Arc<PartitionLog>,
    seg: Arc<Segment>,
    /// Byte position of the next frame to read in `seg`.
    pos: u32,
    /// The offset the next returned message will have at least.
    next_offset: u64,
    frame: Option<FrameState>,
}

impl std::fmt::Debug for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursor")
            .field("partition", &self.log.partition())
            .field("next_offset", &self.next_offset)
            .finish()
    }
}

impl Cursor {
    /// A cursor reading `seg` from frame position `pos`, returning records
    /// from `offset` on (earlier ones in the first frames are skipped).
    pub(crate) fn new(log: Arc<PartitionLog>, seg: Arc<Segment>, pos: u32, offset: u64) -> Cursor {
        Cursor { log, seg, pos, next_offset: offset, frame: None }
    }

    /// The partition log this cursor reads.
    pub(crate) fn log(&self) -> &Arc<PartitionLog> {
        &self.log
    }

    /// The offset of the next record this cursor will return (Kafka's
    /// "position").
    pub(crate) fn position(&self) -> u64 {
        self.next_offset
    }

    /// Whether a call to `next` might return something without waiting: the
    /// cheap check the wait loop polls.
    ///
    /// At the end of what a follower's partition published (another
    /// process writes it), this looks at the files for more first.
    pub(crate) fn may_have_data(&self) -> bool {
        let here =
            || self.frame.is_some_and(|f| f.remaining > 0) || self.pos < self.seg.committed() || self.seg.is_sealed();
        // A failure to look is for the next read to report: say "maybe".
        here() || (self.log.is_follower() && self.log.catch_up().unwrap_or(true) && here())
    }

    /// The record `found` (just returned by this cursor) as a [`Message`],
    /// which keeps its segment mapped.
    pub(crate) fn message(&self, found: &Found) -> Message {
        Message {
            partition: self.log.partition(),
            offset: found.offset,
            timestamp: found.timestamp,
            body: MappedBytes::new(Arc::clone(&self.seg), found.body_start, found.body_end),
            key: found.key,
            value: found.value,
            headers: found.headers,
            header_count: found.header_count,
        }
    }

    /// The record `found` (just returned by [`Cursor::next_found`], with the
    /// cursor not moved since) as a view borrowing this cursor's segment.
    #[inline]
    pub(crate) fn view(&self, found: &Found) -> MessageRef<'_> {
        MessageRef {
            partition: self.log.partition(),
            offset: found.offset,
            timestamp: found.timestamp,
            body: self.seg.committed_slice(found.body_start, found.body_end),
            key: found.key,
            value: found.value,
            headers: found.headers,
            header_count: found.header_count,
        }
    }

    /// Where the next record lies, or `None` if the cursor is at the high
    /// watermark. The record is in the cursor's current segment.
    #[inline]
    pub(crate) fn next_found(&mut self) -> Result<Option<Found>> {
        loop {
            if let Some(m) = self.next_found_in_segment()? {
                return Ok(Some(m));
            }
            // At the end of what is published in this segment. A follower
            // looks at the files for more (or a roll) before it says so.
            if !self.seg.is_sealed() {
                if self.log.is_follower() && self.log.catch_up()? {
                    continue;
                }
                return Ok(None);
            }
            if self.pos < self.seg.committed() {
                continue; // a last frame was published just before sealing
            }
            if let Some(damage) = self.seg.damage() {
                return Err(damage);
            }
            let after = match self.log.segment_after(self.seg.base_offset) {
                // Retention removed the next segment as we reached it: look again.
                Err(Error::OffsetOutOfRange { .. }) => continue,
                other => other?,
            };
            match after {
                // Retention deleted the segments between this one and the
                // next one still stored: report it rather than skip (the
                // consumer decides where to go on). In a compacted topic,
                // gaps between segments are compaction's, and expected.
                Some(next) if next.base_offset > self.next_offset && !self.log.is_compacted() => {
                    return Err(Error::Lagged {
                        topic: self.log.topic_name().to_string(),
                        partition: self.log.partition(),
                        from: self.next_offset,
                        resumed_at: next.base_offset,
                    });
                }
                Some(next) => {
                    self.next_offset = self.next_offset.max(next.base_offset);
                    self.seg = next;
                    self.pos = 0;
                    self.frame = None;
                }
                None => return Ok(None),
            }
        }
    }

    /// Appends to `out` where the next records of the current segment lie,
    /// at most `max` of them, stopping early at the end of what is published
    /// or at a record that does not decode (which the next read reports, as
    /// the cursor stays before it).
    pub(crate) fn fill_in_segment(&mut self, max: usize, out: &mut Vec<Found>) {
        for _ in 0..max {
            match self.next_found_in_segment() {
                Ok(Some(found)) => out.push(found),
                Ok(None) | Err(_) => return,
            }
        }
    }

    /// The next record within the current segment only.
    pub(crate) fn next_in_segment(&mut self) -> Result<Option<Message>> {
        Ok(self.next_found_in_segment()?.map(|f| self.message(&f)))
    }

    #[inline]
    fn next_found_in_segment(&mut self) -> Result<Option<Found>> {
        loop {
            if let Some(f) = &mut self.frame {
                if f.remaining > 0 {
                    let body = self.seg.committed_slice(f.body_start, f.body_end);
                    let rec = frame::decode_record(body, f.rec_pos as usize, &f.header)
                        .map_err(|e| self.seg.corrupt(f.frame_pos, e))?;
                    f.rec_pos = rec.end as u32;
                    f.remaining -= 1;
                    let offset = f.header.base_offset + u64::from(rec.offset_delta);
                    if offset < self.next_offset {
                        continue; // before the position a seek asked for
                    }
                    self.next_offset = offset + 1;
                    let last_of_txn = f.remaining == 0 && f.header.txn.is_some();
                    let found = Found {
                        offset,
                        timestamp: rec.timestamp,
                        body_start: f.body_start,
                        body_end: f.body_end,
                        key: rec.key,
                        value: rec.value,
                        headers: rec.headers,
                        header_count: rec.header_count,
                    };
                    if last_of_txn {
                        self.step_over_marker();
                    }
                    return Ok(Some(found));
                }
                // Offsets removed by compaction at the end of a frame are skipped.
                self.next_offset = self.next_offset.max(f.header.next_offset());
                self.frame = None;
            }
            let end = self.seg.committed();
            // Frames start after the segment header.
            self.pos = self.pos.max(segment::DATA_START);
            if self.pos >= end {
                return Ok(None);
            }
            let header = self.seg.frame_at(self.pos, end)?;
            let frame_pos = self.pos;
            self.pos += header.frame_len() as u32;
            if header.next_offset() <= self.next_offset {
                continue; // the whole frame lies before the position
            }
            if header.control {
                // A transaction's commit marker: no record, but its offset.
                self.next_offset = header.next_offset();
                continue;
            }
            self.frame = Some(FrameState {
                frame_pos,
                body_start: frame_pos + header.header_len,
                body_end: frame_pos + header.len,
                rec_pos: 0,
                remaining: header.record_count,
                header,
            });
        }
    }
}

impl Cursor {
    /// After a transaction's last record in a frame: moves past the commit
    /// marker that follows it, if it is published, so that the position
    /// (and what a group commits) covers the whole transaction at once and
    /// a consumer that read everything shows no lag.
    #[cold]
    fn step_over_marker(&mut self) {
        let end = self.seg.committed();
        let Some(f) = self.frame.take() else { return };
        self.next_offset = self.next_offset.max(f.header.next_offset());
        if self.pos < end
            && let Ok(h) = self.seg.frame_at(self.pos, end)
            && h.control
        {
            self.pos += h.frame_len() as u32;
            self.next_offset = h.next_offset();
        }
    }
}

impl PartitionLog {
    /// The first offset whose record has a timestamp at or after `ts`, or the
    /// high watermark if there is none.
    pub(crate) fn offset_for_timestamp(self: &Arc<Self>, ts: i64) -> Result<u64> {
        let hw = self.high_watermark();
        for base in self.segment_bases() {
            let seg = match self.segment_for(base) {
                Ok(seg) => seg,
                Err(Error::OffsetOutOfRange { .. }) => continue, // deleted meanwhile
                Err(e) => return Err(e),
            };
            if seg.max_timestamp() < ts {
                continue;
            }
            let start = index::SegmentIndex::lookup_timestamp(&seg.index_entries(), ts);
            let (pos, offset) =
                start.map_or((0, seg.base_offset), |e| (e.position, seg.base_offset + u64::from(e.rel_offset)));
            let mut cursor = Cursor::new(Arc::clone(self), seg, pos, offset);
            while let Some(m) = cursor.next_in_segment()? {
                if m.timestamp() >= ts {
                    return Ok(m.offset());
                }
            }
        }
        Ok(hw)
    }

    /// A cursor positioned at `offset` (which must be within
    /// `log_start..=high_watermark`).
    pub(crate) fn cursor_at(self: &Arc<Self>, offset: u64) -> Result<Cursor> {
        if offset < self.log_start() || offset > self.high_watermark() {
            return Err(self.out_of_range(offset));
        }
        let seg = self.segment_for(offset)?;
        let pos = index::SegmentIndex::lookup_offset(&seg.index_entries(), offset - seg.base_offset)
            .map_or(0, |e| e.position);
        Ok(Cursor::new(Arc::clone(self), seg, pos, offset))
    }
}
