//! [`PartitionLog`]: one partition's state (its segment list, the writer's
//! state behind the writer lock, the published offsets), with its cheap
//! accessors and the check that it still takes writes. Opening, appending,
//! syncing, closing and reading are in the sibling files.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::storage::epochs;
use crate::storage::health::Health;
use crate::storage::notify::Notifier;
use crate::storage::padded::CachePadded;
use crate::storage::partition_log::group_queue::WriteGroup;
use crate::storage::partition_log::settings::LogSettings;
use crate::storage::partition_log::tail::Follower;
use crate::storage::prefault::Prefaulter;
use crate::storage::segment::{PartitionId, Segment};
use crate::storage::wake_file::WakeSlot;

/// A segment's place in the partition: loaded lazily for sealed segments, so
/// opening a partition reads only its active segment.
pub(crate) struct Slot {
    pub(crate) base: u64,
    pub(crate) seg: Mutex<Option<Arc<Segment>>>,
}

/// State owned by the holder of the writer lock.
pub(crate) struct Writer {
    pub(crate) active: Arc<Segment>,
    pub(crate) next_offset: u64,
    /// Position of the last index entry in the active segment.
    pub(crate) last_index_pos: Option<u32>,
    /// Largest timestamp appended to the active segment so far.
    pub(crate) max_ts: i64,
    /// Bytes of the active segment already msynced.
    pub(crate) synced_to: u32,
    /// Bytes of the active segment already handed to the pre-fault thread.
    pub(crate) prepared: u32,
    /// Records appended since the last sync (for `EveryN`).
    pub(crate) unsynced_records: u64,
    /// Sealed segment files not yet fsynced (paths, so that no file
    /// descriptor or mapping is kept alive for them).
    pub(crate) pending: Vec<PathBuf>,
    /// Whether files were created in the directory since the last sync.
    pub(crate) dir_dirty: bool,
    /// The partition directory itself is new: the next sync also syncs the
    /// topic directory that holds it.
    pub(crate) parent_dirty: bool,
    pub(crate) last_sync: Instant,
    /// Set when the broker closed or the topic was deleted.
    pub(crate) closed: Option<Error>,
    /// Set when a sync failed; the partition refuses writes from then on.
    pub(crate) poisoned: Option<String>,
    /// The epoch this session writes in, once its first append started it
    /// (see [`epochs`]).
    pub(crate) epoch: Option<u32>,
}

/// One partition: an ordered, append-only log of segments.
pub(crate) struct PartitionLog {
    pub(crate) id: PartitionId,
    pub(crate) dir: PathBuf,
    pub(crate) settings: LogSettings,
    /// The writer lock. Taken by `append_one` directly (`try_lock`: the
    /// write group's leader election) and everywhere else through
    /// `lock_writer`, whose guard serves queued followers when it drops
    /// (see `partition_log/write_group.rs`).
    pub(crate) writer: Mutex<Writer>,
    /// Producers waiting for the holder of the writer lock to write their
    /// records (followers of a write group); on lines of its own, since
    /// contending producers write it.
    pub(crate) group: CachePadded<WriteGroup>,
    pub(crate) slots: RwLock<Vec<Arc<Slot>>>,
    /// Written on every append: on lines of its own (see `CachePadded`).
    pub(crate) high_watermark: CachePadded<AtomicU64>,
    pub(crate) log_start: AtomicU64,
    /// Read on every append and polled by waiting consumers: on lines of
    /// its own, away from what appends write.
    pub(crate) notifier: CachePadded<Notifier>,
    /// Wakes producers held back by a bounded backlog when consumers commit.
    pub(crate) space: CachePadded<Notifier>,
    /// `true` once the topic was deleted: from then on nothing may touch the
    /// partition's files by path (a re-created topic of the same name owns
    /// them). Lazy loads, retention and compaction hold it for reading while
    /// they use paths; deletion takes it for writing.
    pub(crate) gone: RwLock<bool>,
    /// Serializes retention and compaction runs (background thread and explicit calls).
    pub(crate) maintenance_lock: Mutex<()>,
    /// Set when a roll happened since the last retention run.
    pub(crate) rolled: std::sync::atomic::AtomicBool,
    /// Prepares the active segment's pages ahead of the writer, if enabled.
    pub(crate) prefault: Option<Prefaulter>,
    /// Where failures that no call returns (a sealed segment left without
    /// its index) are reported.
    pub(crate) health: Arc<Health>,
    /// The partition's epochs (see [`epochs`]).
    pub(crate) epochs: epochs::EpochHistory,
    /// The next offset when this session opened the partition: where the
    /// previous session's epoch ended.
    pub(crate) session_start: u64,
    /// Set when another process writes this partition and this one only
    /// follows it (see `partition_log/follower.rs`).
    pub(crate) follower: Option<Follower>,
    /// The writer's side of the wake file: rung after publishing when a
    /// reader in another process waits (see `storage/wake_file.rs`).
    pub(crate) wake: Option<WakeSlot>,
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

/// What an open has found of a partition: everything a [`PartitionLog`]
/// starts with that is not the same for every open.
pub(crate) struct Opened {
    pub(crate) id: PartitionId,
    pub(crate) dir: PathBuf,
    pub(crate) settings: LogSettings,
    /// The segment appended to (for a follower: the tail it reads).
    pub(crate) active: Arc<Segment>,
    /// Every segment's slot, oldest first; the first's base is the log start.
    pub(crate) slots: Vec<Arc<Slot>>,
    /// Bytes of the active segment already handed to the pre-fault thread.
    pub(crate) prepared: u32,
    /// Files were created in the directory, and the directory itself (see
    /// [`Writer::dir_dirty`], [`Writer::parent_dirty`]).
    pub(crate) fresh: (bool, bool),
    /// Why writes are refused from the start (a follower's `ReadOnly`).
    pub(crate) closed: Option<Error>,
    pub(crate) notifier: Notifier,
    pub(crate) prefault: Option<Prefaulter>,
    pub(crate) health: Arc<Health>,
    pub(crate) epochs: epochs::EpochHistory,
    pub(crate) follower: Option<Follower>,
}

impl PartitionLog {
    /// The partition log an open found, with the writer's state and the
    /// published offsets taken from its active segment.
    pub(crate) fn assemble(o: Opened) -> PartitionLog {
        let next_offset = o.active.next_offset();
        let writer = Writer {
            last_index_pos: o.active.index_entries().last().map(|e| e.position),
            max_ts: o.active.max_timestamp(),
            synced_to: 0,
            prepared: o.prepared,
            active: o.active,
            next_offset,
            unsynced_records: 0,
            pending: Vec::new(),
            dir_dirty: o.fresh.0,
            parent_dirty: o.fresh.1,
            last_sync: Instant::now(),
            closed: o.closed,
            poisoned: None,
            epoch: None,
        };
        PartitionLog {
            id: o.id,
            dir: o.dir,
            settings: o.settings,
            writer: Mutex::new(writer),
            group: CachePadded::default(),
            log_start: AtomicU64::new(o.slots.first().map_or(0, |s| s.base)),
            slots: RwLock::new(o.slots),
            high_watermark: CachePadded::new(AtomicU64::new(next_offset)),
            notifier: CachePadded::new(o.notifier),
            space: CachePadded::default(),
            gone: RwLock::new(false),
            maintenance_lock: Mutex::new(()),
            rolled: std::sync::atomic::AtomicBool::new(false),
            prefault: o.prefault,
            health: o.health,
            epochs: o.epochs,
            session_start: next_offset,
            follower: o.follower,
            wake: None,
        }
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

    /// Whether the partition was abandoned (its topic deleted).
    pub(crate) fn is_gone(&self) -> bool {
        *self.gone.read()
    }

    /// The earliest offset still stored.
    pub(crate) fn log_start(&self) -> u64 {
        self.log_start.load(Ordering::Acquire)
    }

    /// Number of segment files.
    pub(crate) fn segment_count(&self) -> usize {
        self.slots.read().len()
    }

    /// All segments' bases, oldest first.
    pub(crate) fn segment_bases(&self) -> Vec<u64> {
        self.slots.read().iter().map(|s| s.base).collect()
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
        // A follower's writer is another process, whose epoch may still
        // run: what it committed stands (a follower never resumes from it).
        if epoch == 0 || self.is_follower() {
            return offset;
        }
        // An epoch that no later one follows ended where this session
        // started, unless it is this session's own (still running).
        let end = self.epochs.end_of(epoch).or_else(|| {
            let w = self.lock_writer();
            (w.epoch != Some(epoch)).then_some(self.session_start)
        });
        match end {
            Some(end) if offset > end => end,
            _ => offset,
        }
    }

    /// Wakes the consumers waiting for this partition after an append: in
    /// this process, and, through the wake file, in others.
    #[inline]
    pub(crate) fn notify_consumers(&self) {
        self.notifier.notify();
        if let Some(wake) = &self.wake {
            wake.published();
        }
    }

    /// `Ok` if the partition takes writes: neither closed nor poisoned.
    pub(crate) fn error_if_unwritable(&self, w: &Writer) -> Result<()> {
        if let Some(closed) = &w.closed {
            return Err(match closed {
                Error::TopicDeleted { topic } => Error::TopicDeleted { topic: topic.clone() },
                Error::ReadOnly { op, path } => Error::ReadOnly { op, path: path.clone() },
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
}
