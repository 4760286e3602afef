//! The storage engine: one [`PartitionLog`] per partition, made of segments.
//!
//! # Write path, step by step
//!
//! 1. The producer encodes nothing up front: it computes the frame's size
//!    and takes the partition's writer lock (the only lock on the path).
//! 2. If the frame does not fit in the active segment, the writer *rolls*:
//!    it creates and preallocates the next segment first (so a full disk
//!    leaves the old one active and untouched), persists the old one's index,
//!    trims it to its length, publishes the new segment in the segment list,
//!    and only then marks the old one sealed.
//! 3. The frame is encoded straight into the mapping above the committed
//!    length, its CRC computed, and the new length published (`Release`).
//! 4. Every `index_interval_bytes` a sparse index entry is added.
//! 5. When the writer comes within half a window of the pages already
//!    prepared, it asks the broker's pre-fault thread to prepare the next
//!    window (a non-blocking channel send; see `storage/prefault.rs`).
//! 6. The high watermark is published, the fsync policy applied, the lock
//!    released, and sleeping consumers woken.
//!
//! Readers ([`Cursor`]) never take the writer lock: they load the committed
//! length (`Acquire`) and decode frames below it, moving to the next segment
//! once a segment is sealed and read to its end.

pub(crate) mod compaction;
mod retention;
mod verify;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::storage::cursor::Cursor;
use crate::storage::fsutil;
use crate::storage::index::IndexEntry;
use crate::storage::notify::Notifier;
use crate::storage::padded::CachePadded;
use crate::storage::policy::{CleanupPolicy, FsyncPolicy, RecoveryMode};
use crate::storage::prefault::Prefaulter;
use crate::storage::record::{Record, now_millis};
use crate::storage::recovery_event::RecoveryEvent;
use crate::storage::segment::{PartitionId, Segment};
use crate::storage::{epochs, frame, index, segment};

/// The settings a partition log needs from its topic's config.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogSettings {
    pub segment_bytes: u64,
    pub index_interval: u32,
    pub fsync: FsyncPolicy,
    pub retention_bytes: Option<u64>,
    pub retention: Option<std::time::Duration>,
    pub cleanup: CleanupPolicy,
    pub tombstone_retention: std::time::Duration,
}

/// A segment's place in the partition: loaded lazily for sealed segments, so
/// opening a partition reads only its active segment.
struct Slot {
    base: u64,
    seg: Mutex<Option<Arc<Segment>>>,
}

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

/// State owned by the holder of the writer lock.
struct Writer {
    active: Arc<Segment>,
    next_offset: u64,
    /// Position of the last index entry in the active segment.
    last_index_pos: Option<u32>,
    /// Largest timestamp appended to the active segment so far.
    max_ts: i64,
    /// Bytes of the active segment already msynced.
    synced_to: u32,
    /// Bytes of the active segment already handed to the pre-fault thread.
    prepared: u32,
    /// Records appended since the last sync (for `EveryN`).
    unsynced_records: u64,
    /// Sealed segment files not yet fsynced (paths, so that no file
    /// descriptor or mapping is kept alive for them).
    pending: Vec<PathBuf>,
    /// Whether files were created in the directory since the last sync.
    dir_dirty: bool,
    last_sync: Instant,
    /// Set when the broker closed or the topic was deleted.
    closed: Option<Error>,
    /// Set when a sync failed; the partition refuses writes from then on.
    poisoned: Option<String>,
    /// The epoch this session writes in, once its first append started it
    /// (see [`epochs`]).
    epoch: Option<u32>,
}

/// One partition: an ordered, append-only log of segments.
pub(crate) struct PartitionLog {
    id: PartitionId,
    dir: PathBuf,
    settings: LogSettings,
    writer: Mutex<Writer>,
    slots: RwLock<Vec<Arc<Slot>>>,
    /// Written on every append: on lines of its own (see `CachePadded`).
    high_watermark: CachePadded<AtomicU64>,
    log_start: AtomicU64,
    /// Read on every append and polled by waiting consumers: on lines of
    /// its own, away from what appends write.
    pub(crate) notifier: CachePadded<Notifier>,
    /// Wakes producers held back by a bounded backlog when consumers commit.
    pub(crate) space: CachePadded<Notifier>,
    /// `true` once the topic was deleted: from then on nothing may touch the
    /// partition's files by path (a re-created topic of the same name owns
    /// them). Lazy loads, retention and compaction hold it for reading while
    /// they use paths; deletion takes it for writing.
    gone: RwLock<bool>,
    /// Serializes retention and compaction runs (background thread and explicit calls).
    maintenance_lock: Mutex<()>,
    /// Set when a roll happened since the last retention run.
    rolled: std::sync::atomic::AtomicBool,
    /// Prepares the active segment's pages ahead of the writer, if enabled.
    prefault: Option<Prefaulter>,
    /// The partition's epochs (see [`epochs`]).
    epochs: epochs::EpochHistory,
    /// The next offset when this session opened the partition: where the
    /// previous session's epoch ended.
    session_start: u64,
}

impl std::fmt::Debug for PartitionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionLog")
            .field("topic", &self.id.topic)
            .field("partition", &self.id.partition)
            .field("high_watermark", &self.high_watermark())
            .finish()
    }
}

/// Parses `<20 digits><suffix>` into the base offset the digits name (which
/// may be beyond any offset millpond writes: the caller checks).
fn parse_base(name: &str, suffix: &str) -> Option<u128> {
    let digits = name.strip_suffix(suffix)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether `name` is a file a crash between two steps can leave in a
/// partition directory, which opening removes: an index without its segment
/// (retention crashed between the two unlinks), a temporary index or epochs
/// file, or a compacted segment that was never swapped in.
fn is_stray(name: &str, bases: &std::collections::HashSet<u128>) -> bool {
    parse_base(name, ".index").is_some_and(|b| !bases.contains(&b))
        || parse_base(name, ".index.tmp").is_some()
        || parse_base(name, ".log.cleaned").is_some()
        || name.strip_suffix(".tmp") == Some(epochs::FILE_NAME)
}

impl PartitionLog {
    /// Removes trailing segments that a crash left with nothing written in
    /// them (every byte zero), where keeping them would leave a hole in the
    /// offsets: a batch's plan creates every segment it needs before
    /// writing, at bases past records that may then never be written.
    ///
    /// Only an entirely zero segment goes, and only when its base lies at or
    /// past the end of the segment before it, which then continues as the
    /// active segment from that end: no offset is lost or skipped. A segment
    /// with any byte written stays (a torn first frame is a torn tail,
    /// recovered and reported); in a compacted topic every trailing segment
    /// stays, since a segment compaction emptied still holds its place in
    /// the offsets (gaps are normal there), so the high watermark never
    /// goes back.
    fn drop_unwritten_trailing_segments(
        dir: &Path,
        id: &PartitionId,
        settings: &LogSettings,
        bases: &mut Vec<u64>,
    ) -> Result<()> {
        if settings.cleanup == CleanupPolicy::Compact {
            return Ok(());
        }
        while let [.., prev, last] = bases[..] {
            let path = segment::log_path(dir, last);
            if !segment::is_entirely_zero(&path)? {
                break;
            }
            let prev_end = match Segment::open_sealed(dir, prev, settings.index_interval, id.clone(), None, false) {
                Ok(seg) => seg.next_offset(),
                Err(_) => break, // cannot tell: keep it, the log start is what it is
            };
            if last < prev_end {
                break; // overlaps its predecessor: not ours to judge here
            }
            std::fs::remove_file(&path).map_err(Error::io_at("remove unwritten trailing segment", &path))?;
            fsutil::remove_if_present(&segment::index_path(dir, last), "remove index of unwritten segment")?;
            bases.pop();
        }
        Ok(())
    }

    /// Opens (creating if needed) the partition in `dir`, recovering its
    /// active segment.
    pub(crate) fn open(
        dir: &Path,
        topic: Arc<str>,
        partition: u32,
        settings: LogSettings,
        mode: RecoveryMode,
        prefault: Option<Prefaulter>,
    ) -> Result<(PartitionLog, Option<RecoveryEvent>)> {
        let id = PartitionId { topic, partition };
        let existed = match fsutil::check_real_dir(dir, "open partition directory") {
            Ok(()) => true,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        fsutil::create_dir_all(dir)?;
        // One listing (opening must not cost more per sealed segment than
        // it has to): segment bases, and the strays a crash can leave
        // between two steps (see `is_stray`), which are removed.
        let mut bases = Vec::new();
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(Error::io_at("list partition directory", dir))? {
            let entry = entry.map_err(Error::io_at("list partition directory", dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(base) = parse_base(name, ".log") {
                let path = entry.path();
                if entry.file_type().map_err(Error::io_at("stat segment", &path))?.is_symlink() {
                    return Err(Error::Symlink { op: "open segment", path });
                }
                let Some(base) = u64::try_from(base).ok().filter(|&b| b <= segment::MAX_OFFSET) else {
                    return Err(Error::Corrupt {
                        topic: id.topic.to_string(),
                        partition: id.partition,
                        path,
                        position: 0,
                        reason: format!(
                            "segment name {name} is beyond the largest offset millpond writes ({})",
                            segment::MAX_OFFSET
                        ),
                    });
                };
                bases.push(base);
            } else {
                names.push(name.to_string());
            }
        }
        let known: std::collections::HashSet<u128> = bases.iter().map(|&b| u128::from(b)).collect();
        for name in names.iter().filter(|n| is_stray(n, &known)) {
            fsutil::remove_if_present(&dir.join(name), "remove stray file")?;
        }
        bases.sort_unstable();
        Self::drop_unwritten_trailing_segments(dir, &id, &settings, &mut bases)?;
        let (active, event) = match bases.last() {
            None => {
                let seg = Segment::create(dir, 0, settings.segment_bytes, id.clone())?;
                bases.push(0);
                fsutil::fsync_dir(dir)?;
                if !existed && let Some(parent) = dir.parent() {
                    fsutil::fsync_dir(parent)?;
                }
                (seg, None)
            }
            Some(&last) => {
                Segment::recover_active(dir, last, settings.segment_bytes, settings.index_interval, mode, id.clone())?
            }
        };
        let epochs = epochs::EpochHistory::load(dir)?;
        let active = Arc::new(active);
        let slots: Vec<Arc<Slot>> = bases
            .iter()
            .map(|&base| {
                let seg = (base == active.base_offset).then(|| Arc::clone(&active));
                Arc::new(Slot { base, seg: Mutex::new(seg) })
            })
            .collect();
        let next_offset = active.next_offset();
        let entries = active.index_entries();
        let writer = Writer {
            last_index_pos: entries.last().map(|e| e.position),
            max_ts: active.max_timestamp(),
            synced_to: 0,
            // The first write asks for the pages after it.
            prepared: active.committed(),
            active,
            next_offset,
            unsynced_records: 0,
            pending: Vec::new(),
            dir_dirty: false,
            last_sync: Instant::now(),
            closed: None,
            poisoned: None,
            epoch: None,
        };
        let log = PartitionLog {
            id,
            dir: dir.to_path_buf(),
            settings,
            writer: Mutex::new(writer),
            log_start: AtomicU64::new(bases[0]),
            slots: RwLock::new(slots),
            high_watermark: CachePadded::new(AtomicU64::new(next_offset)),
            notifier: CachePadded::default(),
            space: CachePadded::default(),
            gone: RwLock::new(false),
            maintenance_lock: Mutex::new(()),
            rolled: std::sync::atomic::AtomicBool::new(false),
            prefault,
            epochs,
            session_start: next_offset,
        };
        Ok((log, event))
    }

    /// The partition number.
    pub(crate) fn partition(&self) -> u32 {
        self.id.partition
    }

    /// The topic's name.
    pub(crate) fn topic_name(&self) -> &str {
        &self.id.topic
    }

    /// One past the last visible record.
    pub(crate) fn high_watermark(&self) -> u64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    /// The earliest offset still stored.
    pub(crate) fn log_start(&self) -> u64 {
        self.log_start.load(Ordering::Acquire)
    }

    /// Number of segment files.
    pub(crate) fn segment_count(&self) -> usize {
        self.slots.read().len()
    }

    /// Bytes of the active segment's published frames plus the sizes of
    /// sealed segment files (from their metadata, without opening them).
    pub(crate) fn size_bytes(&self) -> u64 {
        let slots: Vec<Arc<Slot>> = self.slots.read().clone();
        slots.iter().map(|slot| self.slot_bytes(slot)).sum()
    }

    /// Checks that the partition takes writes and, before this session's
    /// first record, starts its epoch.
    #[inline]
    fn ready_to_write(&self, w: &mut Writer) -> Result<()> {
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

    /// The epoch of the record at `offset` (0: written before epochs were
    /// recorded), for a commit that covers it.
    pub(crate) fn epoch_of(&self, offset: u64) -> u32 {
        self.epochs.epoch_of(offset)
    }

    /// Where a committed `offset` made against `epoch` should resume: the
    /// end of that epoch, if the commit lies past it (the records it covered
    /// were lost in a crash and their offsets handed out again), else the
    /// offset itself. Epoch 0 (a commit from a version 1 offsets file, or of
    /// records older than the epoch history) cannot be checked: the offset
    /// stands, and the group's `OffsetReset` handles one past the log end.
    pub(crate) fn resume_point(&self, offset: u64, epoch: u32) -> u64 {
        if epoch == 0 {
            return offset;
        }
        // An epoch that no later one follows ended where this session
        // started, unless it is this session's own (still running).
        let end = self.epochs.end_of(epoch).or_else(|| {
            let w = self.writer.lock();
            (w.epoch != Some(epoch)).then_some(self.session_start)
        });
        match end {
            Some(end) if offset > end => end,
            _ => offset,
        }
    }

    fn error_if_unwritable(&self, w: &Writer) -> Result<()> {
        if let Some(closed) = &w.closed {
            return Err(match closed {
                Error::TopicDeleted { topic } => Error::TopicDeleted { topic: topic.clone() },
                _ => Error::Closed,
            });
        }
        if let Some(reason) = &w.poisoned {
            return Err(Error::Poisoned {
                topic: self.id.topic.to_string(),
                partition: self.id.partition,
                reason: reason.clone(),
            });
        }
        Ok(())
    }

    /// Appends `records` (whose encoded sizes are `sizes`) as one frame when
    /// they fit in a segment, else as one frame per segment they span.
    /// Returns the offset of the first record. All or nothing: every segment
    /// the records need is created before any record is written, so a full
    /// disk leaves nothing partial.
    pub(crate) fn append(&self, records: &[&Record<'_>], sizes: &[usize]) -> Result<u64> {
        debug_assert_eq!(records.len(), sizes.len());
        // Read the clock before taking the lock, to keep the locked section short.
        let now = now_millis();
        let mut w = self.writer.lock();
        self.ready_to_write(&mut w)?;
        let first = w.next_offset;
        let len = frame::HEADER_LEN + sizes.iter().sum::<usize>();
        if len <= w.active.free() {
            // The common case: one frame in the active segment.
            self.write_frame(&mut w, records, len, now);
        } else {
            let plan = self.plan(&w, sizes)?;
            self.execute(&mut w, records, plan, now);
        }
        let synced = self.published(&mut w, first);
        drop(w);
        self.notifier.notify();
        synced.map(|()| first)
    }

    /// Appends to several partitions at once, all or nothing with respect to
    /// running out of space: the writer locks are taken in partition order
    /// (so concurrent calls cannot deadlock) and every needed segment is
    /// created before anything is written. Returns each part's first offset.
    pub(crate) fn append_all(parts: &[(&PartitionLog, Vec<&Record<'_>>, Vec<usize>)]) -> Result<Vec<u64>> {
        debug_assert!(parts.windows(2).all(|p| p[0].0.partition() < p[1].0.partition()));
        let now = now_millis();
        let mut guards: Vec<_> = parts.iter().map(|(log, _, _)| log.writer.lock()).collect();
        for ((log, _, _), w) in parts.iter().zip(guards.iter_mut()) {
            log.ready_to_write(w)?;
        }
        let mut plans = Vec::with_capacity(parts.len());
        for ((log, _, sizes), w) in parts.iter().zip(&guards) {
            match log.plan(w, sizes) {
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
            log.notifier.notify();
        }
        result.map(|()| firsts)
    }

    /// After records from `first` on were written: publishes the high
    /// watermark and applies the fsync policy.
    fn published(&self, w: &mut Writer, first: u64) -> Result<()> {
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
    fn plan(&self, w: &Writer, sizes: &[usize]) -> Result<Plan> {
        let mut plan = Plan { chunks: Vec::new(), fresh: std::collections::VecDeque::new() };
        let total = frame::HEADER_LEN + sizes.iter().sum::<usize>();
        let mut free = w.active.free();
        let mut i = 0;
        let mut roll_next = false;
        while i < sizes.len() {
            let mut len = frame::HEADER_LEN;
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
                match Segment::create(&self.dir, base, self.settings.segment_bytes, self.id.clone()) {
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
        // SAFETY: we hold the writer lock (`w` is its guard's contents) and
        // the caller checked `len <= w.active.free()`.
        let (pos, header) =
            unsafe { w.active.append(len, |buf| frame::encode_frame(buf, base, records.iter().copied(), now)) };
        if w.last_index_pos.is_none_or(|last| pos - last >= self.settings.index_interval) {
            w.active.push_index(IndexEntry {
                rel_offset: (base - w.active.base_offset) as u32,
                position: pos,
                max_ts_before: w.max_ts,
            });
            w.last_index_pos = Some(pos);
        }
        w.max_ts = w.max_ts.max(header.max_timestamp);
        w.next_offset = header.next_offset();
        if let Some(p) = &self.prefault {
            let Writer { active, prepared, .. } = w;
            p.after_write(active, pos + len as u32, prepared);
        }
    }

    /// Seals the active segment and continues in `new` (created by `plan`
    /// at the next offset).
    fn roll_to(&self, w: &mut Writer, new: Segment) {
        let old = Arc::clone(&w.active);
        let new = Arc::new(new);
        // Persist the old segment's index and trim it. Both are derived or
        // cosmetic: a sealed segment without a valid index, or longer than
        // its data, is rebuilt by a checksummed scan when next opened. So a
        // failure here (say, no space for the index) does not fail the
        // append, whose data is already safe; it is reported.
        if let Err(e) = old.finish(&self.dir) {
            log::warn!("millpond: sealing {} without an index (rebuilt when next opened): {e}", old.path.display());
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

    /// msyncs and fsyncs everything written so far; poisons the partition on
    /// failure.
    fn sync_locked(&self, w: &mut Writer) -> Result<()> {
        let result = (|| -> Result<()> {
            for path in &w.pending {
                // fsync writes back the file's dirty pages, including those
                // dirtied through the shared mapping. A segment deleted by
                // retention meanwhile needs no sync.
                match fsutil::open_read(path) {
                    Ok(f) => f.sync_all().map_err(Error::io_at("fsync sealed segment", path))?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("open sealed segment for fsync", path, e)),
                }
            }
            w.pending.clear();
            w.synced_to = w.active.sync_range(w.synced_to)?;
            if w.dir_dirty {
                fsutil::fsync_dir(&self.dir)?;
                w.dir_dirty = false;
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                w.unsynced_records = 0;
                w.last_sync = Instant::now();
                Ok(())
            }
            Err(e) => {
                w.poisoned = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Makes everything appended so far durable (the `flush` barrier).
    /// The sync holds the writer lock (see [`PartitionLog::sync_if_due`]).
    pub(crate) fn flush(&self) -> Result<()> {
        let mut w = self.writer.lock();
        self.error_if_unwritable(&w)?;
        self.sync_locked(&mut w)
    }

    /// For `FsyncPolicy::Interval`: syncs if there are unsynced records and
    /// the interval has passed since the last sync.
    ///
    /// This sync holds the writer lock, on purpose. Run beside a producer,
    /// an msync write-protects the pages that producer has mapped on another
    /// core, and every page costs a TLB-shootdown IPI (perf: 18% of samples
    /// in `smp_call_function_many_cond` from `ptep_clear_flush`). Measured
    /// with `examples/bench.rs`, `Interval(10 ms)` reached 0.61–0.69 of
    /// `Never` that way, against 0.82–0.88 with the lock held. `flush` syncs
    /// the same way, for the same reason.
    pub(crate) fn sync_if_due(&self) -> Result<()> {
        let FsyncPolicy::Interval(every) = self.settings.fsync else { return Ok(()) };
        let mut w = self.writer.lock();
        if w.closed.is_some() || w.poisoned.is_some() || w.unsynced_records == 0 || w.last_sync.elapsed() < every {
            return Ok(());
        }
        self.sync_locked(&mut w)
    }

    /// Stops the partition: syncs, trims the active segment (so reopening
    /// needs no tail scan), refuses further writes with `reason`, and wakes
    /// every waiting consumer.
    ///
    /// Only a failed sync is an error: once the data is synced, a failure
    /// to write the active segment's index (say, on a full disk) loses
    /// nothing, since the next open scans the segment instead; it is logged.
    pub(crate) fn close(&self, reason: Error) -> Result<()> {
        let mut w = self.writer.lock();
        if w.closed.is_some() {
            return Ok(());
        }
        let result = if w.poisoned.is_none() {
            self.sync_locked(&mut w).and_then(|()| {
                if let Err(e) = w.active.finish(&self.dir) {
                    log::warn!(
                        "millpond: closed {} without writing its index (its data is synced; the next open \
                         scans it instead): {e}",
                        w.active.path.display()
                    );
                }
                w.active.sync_file()
            })
        } else {
            Ok(())
        };
        w.closed = Some(reason);
        drop(w);
        self.notifier.close();
        self.space.close();
        result
    }

    /// Marks the partition closed without touching its files (for a topic
    /// being deleted).
    pub(crate) fn abandon(&self, reason: Error) {
        self.writer.lock().closed = Some(reason);
        // Waits for any load, retention or compaction using paths to finish.
        *self.gone.write() = true;
        self.notifier.close();
        self.space.close();
    }

    fn load(&self, slot: &Slot) -> Result<Arc<Segment>> {
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

    /// All segments' bases, oldest first.
    pub(crate) fn segment_bases(&self) -> Vec<u64> {
        self.slots.read().iter().map(|s| s.base).collect()
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
