//! The append path (steps 1 to 6 of the module docs): planning the frames
//! and the segments an append needs, writing frames into the mapping,
//! rolling to the next segment, and publishing the high watermark.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::Mutex;

use crate::error::Result;
use crate::storage::frame;
use crate::storage::health::{BackgroundError, BackgroundTask};
use crate::storage::index::IndexEntry;
use crate::storage::partition_log::state::{PartitionLog, Slot, Writer};
use crate::storage::policy::FsyncPolicy;
use crate::storage::record::{Record, now_millis};
use crate::storage::segment::{self, Segment};

/// The frames an append will write, and the segments created for it.
struct Plan {
    /// `(first record, end record, frame length, roll first)`.
    chunks: Vec<(usize, usize, usize, bool)>,
    fresh: std::collections::VecDeque<Segment>,
}

impl Plan {
    /// Removes the segments created for an append that will not happen.
    fn discard(self) {
        for seg in self.fresh {
            let path = seg.path.clone();
            drop(seg);
            // Best effort: an empty, unpublished segment left behind is
            // recovered as an empty active segment or removed at the next roll.
            let _ = std::fs::remove_file(path);
        }
    }
}

impl PartitionLog {
    /// Checks that the partition takes writes and, before this session's
    /// first record, starts its epoch.
    #[inline]
    pub(crate) fn ready_to_write(&self, w: &mut Writer) -> Result<()> {
        self.error_if_unwritable(w)?;
        if w.epoch.is_none() {
            self.begin_epoch(w)?;
        }
        Ok(())
    }

    #[cold]
    fn begin_epoch(&self, w: &mut Writer) -> Result<()> {
        w.epoch = Some(self.epochs.begin(w.next_offset)?);
        Ok(())
    }

    /// Appends `records` (whose encoded sizes are `sizes`) as one frame when
    /// they fit in a segment, else as one frame per segment they span.
    /// Returns the offset of the first record. All or nothing: every segment
    /// the records need is created before any record is written, so a full
    /// disk leaves nothing partial. (One record, from `send`, takes the
    /// write group's path instead: `PartitionLog::append_one`.)
    pub(crate) fn append(&self, records: &[&Record<'_>], sizes: &[usize]) -> Result<u64> {
        // Read the clock before taking the lock, to keep the locked section short.
        let now = now_millis();
        let mut w = self.lock_writer();
        let first = self.write_locked(&mut w, records, sizes, now)?;
        let synced = self.published(&mut w, first);
        drop(w);
        self.notify_consumers();
        synced.map(|()| first)
    }

    /// Under the writer lock: writes `records` (of encoded sizes `sizes`)
    /// as [`PartitionLog::append`] describes, all or nothing, and returns
    /// the first one's offset. The caller then calls `published`.
    /// Inlined always: a lone `send` took this path inside one function
    /// before write groups, and a call here cost it 4% more instructions.
    #[inline(always)]
    pub(crate) fn write_locked(
        &self,
        w: &mut Writer,
        records: &[&Record<'_>],
        sizes: &[usize],
        now: i64,
    ) -> Result<u64> {
        debug_assert_eq!(records.len(), sizes.len());
        self.ready_to_write(w)?;
        let first = w.next_offset;
        let len = frame::MAX_HEADER_LEN + sizes.iter().sum::<usize>();
        if len <= w.active.free() {
            // The common case: one frame in the active segment.
            self.write_frame(w, records, len, now);
        } else {
            let plan = self.plan(w, sizes, now)?;
            self.execute(w, records, plan, now);
        }
        Ok(first)
    }

    /// Appends to several partitions at once, all or nothing with respect to
    /// running out of space: the writer locks are taken in partition order
    /// (so concurrent calls cannot deadlock) and every needed segment is
    /// created before anything is written. Returns each part's first offset.
    pub(crate) fn append_all(parts: &[(&PartitionLog, Vec<&Record<'_>>, Vec<usize>)]) -> Result<Vec<u64>> {
        debug_assert!(parts.windows(2).all(|p| p[0].0.partition() < p[1].0.partition()));
        let now = now_millis();
        // Followers queued on these partitions meanwhile are served when
        // the guards drop (`WriterGuard`).
        let mut guards: Vec<_> = parts.iter().map(|(log, _, _)| log.lock_writer()).collect();
        for ((log, _, _), w) in parts.iter().zip(guards.iter_mut()) {
            log.ready_to_write(w)?;
        }
        let mut plans = Vec::with_capacity(parts.len());
        for ((log, _, sizes), w) in parts.iter().zip(&guards) {
            match log.plan(w, sizes, now) {
                Ok(plan) => plans.push(plan),
                Err(e) => {
                    plans.into_iter().for_each(Plan::discard);
                    return Err(e);
                }
            }
        }
        let mut firsts = Vec::with_capacity(parts.len());
        let mut result = Ok(());
        for (((log, records, _), w), plan) in parts.iter().zip(guards.iter_mut()).zip(plans) {
            let first = w.next_offset;
            log.execute(w, records, plan, now);
            if let Err(e) = log.published(w, first) {
                result = result.and(Err(e));
            }
            firsts.push(first);
        }
        drop(guards);
        for (log, _, _) in parts {
            log.notify_consumers();
        }
        result.map(|()| firsts)
    }

    /// After records from `first` on were written: publishes the high
    /// watermark and applies the fsync policy.
    #[inline]
    pub(crate) fn published(&self, w: &mut Writer, first: u64) -> Result<()> {
        self.high_watermark.store(w.next_offset, Ordering::Release);
        w.unsynced_records += w.next_offset - first;
        let due = match self.settings.fsync {
            FsyncPolicy::Always => true,
            FsyncPolicy::EveryN(n) => w.unsynced_records >= n,
            _ => false,
        };
        if due { self.sync_locked(w) } else { Ok(()) }
    }

    /// Works out the frames for records of `sizes` and creates (preallocates)
    /// every new segment they need, without publishing anything. Records go
    /// in one frame when they fit in the active segment or, failing that, in
    /// a fresh one; a batch larger than a segment is split at segment ends.
    fn plan(&self, w: &Writer, sizes: &[usize], now: i64) -> Result<Plan> {
        let mut plan = Plan { chunks: Vec::new(), fresh: std::collections::VecDeque::new() };
        let total = segment::DATA_START as usize + frame::MAX_HEADER_LEN + sizes.iter().sum::<usize>();
        let mut free = w.active.free();
        let mut i = 0;
        let mut roll_next = false;
        while i < sizes.len() {
            let mut len = frame::MAX_HEADER_LEN;
            let mut j = i;
            while j < sizes.len() && len + sizes[j] <= free {
                len += sizes[j];
                j += 1;
            }
            let whole_batch_fits_fresh = total as u64 <= self.settings.segment_bytes;
            if j == i || (j < sizes.len() && i == 0 && !roll_next && whole_batch_fits_fresh) {
                // Not even one fits, or the whole batch would fit in a fresh
                // segment: start a new segment, so the batch stays one frame.
                let base = w.next_offset + i as u64;
                let epoch = w.epoch.unwrap_or(0);
                match Segment::create(&self.dir, base, self.settings.segment_bytes, self.id.clone(), epoch, now) {
                    Ok(seg) => {
                        free = seg.free();
                        plan.fresh.push_back(seg);
                    }
                    Err(e) => {
                        plan.discard();
                        return Err(e);
                    }
                }
                roll_next = true;
                continue;
            }
            // `len` is what the frame may take at most: the planned space.
            plan.chunks.push((i, j, len, roll_next));
            roll_next = false;
            free -= len;
            i = j;
        }
        Ok(plan)
    }

    /// Writes the frames of a plan, rolling into its pre-created segments.
    /// Cannot fail: everything that could was done by [`PartitionLog::plan`].
    fn execute(&self, w: &mut Writer, records: &[&Record<'_>], mut plan: Plan, now: i64) {
        for &(i, j, len, roll) in &plan.chunks {
            if roll && let Some(seg) = plan.fresh.pop_front() {
                self.roll_to(w, seg);
            }
            self.write_frame(w, &records[i..j], len, now);
        }
        debug_assert!(plan.fresh.is_empty());
    }

    fn write_frame(&self, w: &mut Writer, records: &[&Record<'_>], len: usize, now: i64) {
        let base = w.next_offset;
        // Publish the high watermark first (`Release`), so a reader that sees
        // this frame's bytes (`Acquire` on the segment's committed length,
        // stored after this) also sees a high watermark covering it: no
        // consumer ever holds a record at or past the high watermark.
        self.high_watermark.store(base + records.len() as u64, Ordering::Release);
        let origin = w.active.origin();
        // SAFETY: we hold the writer lock (`w` is its guard's contents) and
        // the caller checked `len <= w.active.free()`; the frame takes at
        // most `len` bytes (its header at most `MAX_HEADER_LEN`).
        let (pos, header) =
            unsafe { w.active.append(len, |buf| frame::encode_frame(buf, origin, base, records.iter().copied(), now)) };
        self.index_frame(w, pos, base);
        w.max_ts = w.max_ts.max(header.max_timestamp);
        w.next_offset = header.next_offset();
        if let Some(p) = &self.prefault {
            let Writer { active, prepared, .. } = w;
            p.after_write(active, pos + header.len, prepared);
        }
    }

    /// Adds a sparse index entry for the frame at `pos` (first offset
    /// `base`) of the active segment, if `index_interval_bytes` have passed
    /// since the last one.
    #[inline(always)]
    pub(crate) fn index_frame(&self, w: &mut Writer, pos: u32, base: u64) {
        if w.last_index_pos.is_none_or(|last| pos - last >= self.settings.index_interval) {
            w.active.push_index(IndexEntry {
                rel_offset: (base - w.active.base_offset) as u32,
                position: pos,
                max_ts_before: w.max_ts,
            });
            w.last_index_pos = Some(pos);
        }
    }

    /// Seals the active segment and continues in `new` (created by `plan`
    /// at the next offset).
    pub(crate) fn roll_to(&self, w: &mut Writer, new: Segment) {
        let old = Arc::clone(&w.active);
        let new = Arc::new(new);
        // Persist the old segment's index and trim it. Both are derived or
        // cosmetic: a sealed segment without a valid index, or longer than
        // its data, is rebuilt by a checksummed scan when next opened. So a
        // failure here (say, no space for the index) does not fail the
        // append, whose data is already safe; it is reported (`BackgroundTask::SegmentIndex`, through the broker's health record).
        match old.finish(&self.dir) {
            Ok(()) => self.health.resolved(BackgroundTask::SegmentIndex, self.topic_name(), self.partition()),
            Err(e) => self
                .health
                .report(BackgroundError::new(BackgroundTask::SegmentIndex, e).on(self.topic_name(), self.partition())),
        }
        // Publish the new segment, then seal the old one, so a reader that
        // sees `sealed` finds its successor.
        self.slots.write().push(Arc::new(Slot { base: new.base_offset, seg: Mutex::new(Some(Arc::clone(&new))) }));
        old.mark_sealed();
        w.pending.push(old.path.clone());
        w.active = new;
        w.synced_to = 0;
        w.prepared = 0;
        w.last_index_pos = None;
        w.max_ts = i64::MIN;
        w.dir_dirty = true;
        self.rolled.store(true, Ordering::Release);
    }
}
