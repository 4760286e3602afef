//! Following a partition that another process writes: the read-only
//! [`PartitionLog`] of `Broker::open_read_only`.
//!
//! A follower never writes, truncates, renames or deletes anything, and
//! takes no lock the writer takes. It learns what is published only from
//! the segment files:
//!
//! - **Frames past its known end** of the partition's last segment (the
//!   *tail*) are read with `pread` and checked like recovery checks them
//!   (length, checksum, every record, offsets in sequence). A frame the
//!   writer is still writing fails the check and is "not yet"; a torn tail
//!   left by a crashed writer is the same, until a new writer recovers the
//!   log (zeroing it) and writes there. Only checked frames are published
//!   to this process's cursors, which read them through a read-only
//!   mapping: the bytes are in the file (`pread` read them) and are never
//!   written again (mmap.rs, contracts 2 and 4), so no cursor touches a
//!   page past the file's end, even while the writer trims the segment.
//! - **A roll**: the writer writes only its last segment, so once a later
//!   segment holds a checked frame the tail is final. The follower then
//!   reads the tail to its end once more, and moves to the last later
//!   segment that holds a checked frame (segments in between, emptied by
//!   compaction, are sealed ones). It looks for a later segment at once
//!   when the tail's file ends exactly at its frames (the writer trims a
//!   segment it seals), and otherwise every 50 ms while nothing new comes
//!   (a writer that could not write the index, and so did not trim). A
//!   segment created but never written can still be removed by a
//!   recovering writer, which then goes on appending to the old tail:
//!   moving only to a segment with a frame keeps the follower on the
//!   segment the writer really writes.
//! - **Retention** shows as a sealed segment's file missing: the segment
//!   list is read again (also at every roll), and cursors get `Lagged` as
//!   in-process ones do.
//! - **The topic's deletion** shows, at the 50 ms look, as the tail's path
//!   no longer naming the tail's file, with no later segment: the partition
//!   is closed with `TopicDeleted`.
//!
//! Sealed segments (every segment before the tail when it was found) are
//! opened as the writer's own process opens them (`Segment::open_sealed`):
//! they are trimmed, indexed and never written again.
//!
//! Who looks: a cursor at the tail's published end asks for more
//! ([`PartitionLog::catch_up`]) before it reports "nothing yet", so every
//! receive form sees new frames; a consumer that goes to sleep first arms
//! the partition's slot in the wake file (`storage/wake_file.rs`), which
//! the writer rings after publishing.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::storage::epochs;
use crate::storage::health::Health;
use crate::storage::notify::{Across, Notifier};
use crate::storage::partition_log::listing::list_segments;
use crate::storage::partition_log::settings::LogSettings;
use crate::storage::partition_log::state::{Opened, PartitionLog, Slot};
use crate::storage::partition_log::tail::{Follower, Tail};
use crate::storage::segment::{self, PartitionId, Segment};
use crate::storage::segment_header::TopicId;

impl PartitionLog {
    /// Opens partition `partition` (in `dir`) of a topic another process
    /// may be writing, for reading only (see the module docs): nothing is
    /// created, changed or removed, and the last segment's frames are
    /// checked in memory. `broker_dir` names the broker in the `ReadOnly`
    /// error writes get; `across` is how its consumers wait for the writer
    /// process (see `storage/notify.rs`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn open_read_only(
        dir: &Path,
        broker_dir: &Path,
        topic: Arc<str>,
        topic_id: TopicId,
        partition: u32,
        settings: LogSettings,
        health: Arc<Health>,
        across: Across,
    ) -> Result<PartitionLog> {
        let id = PartitionId { topic, partition, topic_id };
        crate::storage::fsutil::check_real_dir(dir, "open partition directory")?;
        let (bases, _) = list_segments(dir, &id)?;
        let max_frame = settings.segment_bytes as usize;
        // The tail is the last segment holding a checked frame (or the
        // first segment): segments after it were created ahead of records
        // not yet written, and are followed once they hold one.
        let mut found = None;
        for (i, &base) in bases.iter().enumerate().rev() {
            match Segment::open_followed(dir, base, id.clone(), settings.segment_bytes)? {
                Some((seg, file)) => {
                    let mut tail = Tail::new(Arc::new(seg), file, settings.index_interval);
                    if tail.read_frames(max_frame)? || i == 0 {
                        tail.publish();
                        found = Some((i, tail));
                        break;
                    }
                }
                None if i == 0 => break,
                None => {}
            }
        }
        let Some((last, tail)) = found else {
            return Err(Error::Corrupt {
                topic: id.topic.to_string(),
                partition,
                path: dir.to_path_buf(),
                position: 0,
                reason: "the partition has no segment with a header yet (being created, or damaged)".into(),
            });
        };
        let slots: Vec<Arc<Slot>> = bases[..=last]
            .iter()
            .map(|&base| {
                let seg = (base == tail.seg.base_offset).then(|| Arc::clone(&tail.seg));
                Arc::new(Slot { base, seg: Mutex::new(seg) })
            })
            .collect();
        Ok(PartitionLog::assemble(Opened {
            id,
            dir: dir.to_path_buf(),
            settings,
            active: Arc::clone(&tail.seg),
            slots,
            prepared: 0,
            fresh: (false, false),
            closed: Some(Error::ReadOnly { op: "write to a partition", path: broker_dir.to_path_buf() }),
            notifier: Notifier::following(across),
            prefault: None,
            health,
            epochs: epochs::EpochHistory::load(dir)?,
            follower: Some(Follower { tail: Mutex::new(tail) }),
        }))
    }

    /// Whether this partition is another process's, followed read-only.
    #[inline]
    pub(crate) fn is_follower(&self) -> bool {
        self.follower.is_some()
    }

    /// For a follower: looks for frames the writer published since the
    /// last look, and for a roll to a later segment, and makes what it
    /// finds visible (waking this process's waiting consumers). Returns
    /// whether anything changed. For the writer's own process, `Ok(false)`.
    ///
    /// It waits for a look another reader of this process is making (a
    /// consumer that armed its wake-up slot must look after arming, not
    /// rely on a look that began before it).
    pub(crate) fn catch_up(&self) -> Result<bool> {
        let Some(follower) = &self.follower else { return Ok(false) };
        let mut tail = follower.tail.lock();
        self.catch_up_locked(&mut tail)
    }

    /// [`PartitionLog::catch_up`], then also reads the segment list again
    /// (for the log start after retention), so that what it reports is
    /// the files' state now: for `stats`, a new consumer's start, a seek, a
    /// lag.
    pub(crate) fn catch_up_fully(&self) -> Result<()> {
        if self.follower.is_none() {
            return Ok(());
        }
        self.catch_up()?;
        self.forget_deleted_segments()
    }

    pub(crate) fn catch_up_locked(&self, tail: &mut Tail) -> Result<bool> {
        let max_frame = self.settings.segment_bytes as usize;
        let mut changed = false;
        loop {
            let found = tail.read_frames(max_frame)?;
            if found {
                tail.publish();
                self.high_watermark.store(tail.scanner.stable().next_offset, Ordering::Release);
                changed = true;
            }
            // At the file's end, look for the next segment now; otherwise
            // now and then (see the module docs).
            let slow = !found && tail.slow_probe_due();
            if !(tail.at_file_end || slow) || !self.roll_followed(tail, slow)? {
                break;
            }
            changed = true;
        }
        if changed {
            self.notifier.notify();
        }
        Ok(changed)
    }

    /// Moves the tail to a later segment if the writer wrote one (see the
    /// module docs). `slow`: the 50 ms look, which also lists the directory
    /// (for a gap retention left) and checks that the topic still exists.
    fn roll_followed(&self, tail: &mut Tail, slow: bool) -> Result<bool> {
        let base = tail.seg.base_offset;
        let mut next = tail.scanner.next_offset;
        // A sealed segment's index gives its next offset even where no
        // record is left (compaction's gaps).
        if tail.at_file_end
            && let Some(index) = segment::read_index(&segment::index_path(&self.dir, base))
            && index.valid_bytes == tail.scanner.pos as u64
        {
            next = next.max(index.next_offset);
        }
        let named = next > base && std::fs::symlink_metadata(segment::log_path(&self.dir, next)).is_ok();
        // At a new end of the file, list once even without a segment named
        // for the next offset: retention may have deleted it.
        let new_end = tail.at_file_end && tail.listed_at != Some(tail.scanner.pos);
        if !named && !slow && !new_end {
            return Ok(false);
        }
        tail.listed_at = Some(tail.scanner.pos);
        let (bases, _) = list_segments(&self.dir, &self.id).or_else(|e| match e {
            // The partition directory is gone: the topic was deleted.
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => Ok((Vec::new(), Vec::new())),
            e => Err(e),
        })?;
        let later: Vec<u64> = bases.iter().copied().filter(|&b| b > base).collect();
        // The last later segment holding a checked frame is the writer's.
        let mut fresh = None;
        for &b in later.iter().rev() {
            let opened = match Segment::open_followed(&self.dir, b, self.id.clone(), self.settings.segment_bytes) {
                Ok(Some(opened)) => opened,
                Ok(None) => continue,
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let mut t = Tail::new(Arc::new(opened.0), opened.1, self.settings.index_interval);
            if t.read_frames(self.settings.segment_bytes as usize)? {
                fresh = Some(t);
                break;
            }
        }
        let Some(mut fresh) = fresh else {
            if slow && self.tail_file_is_gone(tail) {
                self.abandon(Error::TopicDeleted { topic: self.id.topic.to_string() });
            }
            return Ok(false);
        };
        // The tail is final now: read it to its end before leaving it.
        if tail.read_frames(self.settings.segment_bytes as usize)? {
            tail.publish();
        }

        fresh.publish();
        let new_base = fresh.seg.base_offset;
        // A gap between the tail and the new segment may be one the listing
        // missed (a directory read does not see every entry created while it
        // runs): list again, now that every segment before the new one
        // exists, so the segments in between are there for cursors to read
        // (and a real gap is retention's, reported as `Lagged`).
        let (bases, later) = if new_base > tail.scanner.next_offset {
            let (again, _) = list_segments(&self.dir, &self.id)?;
            let later: Vec<u64> = again.iter().copied().filter(|&b| b > base).collect();
            (again, later)
        } else {
            (bases, later)
        };
        {
            // As the writer does: the new segments are listed before the
            // old one is marked sealed, so a cursor at its end finds them.
            let mut slots = self.slots.write();
            for &b in later.iter().filter(|&&b| b < new_base) {
                slots.push(Arc::new(Slot { base: b, seg: Mutex::new(None) }));
            }
            slots.push(Arc::new(Slot { base: new_base, seg: Mutex::new(Some(Arc::clone(&fresh.seg))) }));
            // The old tail is opened again, as a sealed segment mapped to
            // its length, by whoever reads it next; cursors on it keep it.
            if let Some(old) = slots.iter().find(|s| s.base == base) {
                *old.seg.lock() = None;
            }
            // Retention may have taken sealed segments, the old tail too.
            self.keep_listed(&mut slots, new_base, &bases);
        }
        self.high_watermark.store(fresh.scanner.stable().next_offset, Ordering::Release);
        let old = std::mem::replace(tail, fresh);
        old.seg.mark_sealed();
        Ok(true)
    }

    /// Whether the tail's path no longer names the tail's file (unlinked or
    /// replaced): with no later segment, the topic was deleted.
    fn tail_file_is_gone(&self, tail: &Tail) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Ok(ours) = tail.file.metadata() else { return false };
        match std::fs::symlink_metadata(&tail.seg.path) {
            Ok(m) => m.ino() != ours.ino() || m.dev() != ours.dev(),
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        }
    }

    /// For a follower (`verify`): bytes past the last valid frame of the
    /// tail that stay invalid, looked at three times 20 ms apart so that a
    /// frame the writer is writing is not taken for damage. Such bytes are a
    /// torn tail a crash left (a writer's recovery will drop them) or
    /// damage; a read-only broker repairs neither.
    pub(crate) fn tail_damage(&self) -> Result<Option<Error>> {
        let Some(follower) = &self.follower else { return Ok(None) };
        for attempt in 0..3 {
            let mut tail = follower.tail.lock();
            self.catch_up_locked(&mut tail)?;
            let Some((pos, e)) = tail.stop else { return Ok(None) };
            if attempt == 2 {
                let reason = format!(
                    "{e}; the bytes after the last valid frame are a torn tail or damage (a writer's recovery would \
                     drop them; this read-only broker changed nothing)"
                );
                return Ok(Some(Error::Corrupt {
                    topic: self.id.topic.to_string(),
                    partition: self.id.partition,
                    path: tail.seg.path.clone(),
                    position: pos as u64,
                    reason,
                }));
            }
            drop(tail);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(None)
    }

    /// For a follower: drops from the segment list the sealed segments
    /// whose files are gone (retention deleted them) and moves the log
    /// start up. A partition directory that is gone means the topic was
    /// deleted: the partition is closed with `TopicDeleted`.
    pub(crate) fn forget_deleted_segments(&self) -> Result<()> {
        if self.follower.is_none() {
            return Ok(());
        }
        let bases = match list_segments(&self.dir, &self.id) {
            Ok((bases, _)) => bases,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                self.abandon(Error::TopicDeleted { topic: self.id.topic.to_string() });
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let mut slots = self.slots.write();
        let tail_base = slots.last().map_or(0, |s| s.base);
        self.keep_listed(&mut slots, tail_base, &bases);
        Ok(())
    }

    /// Keeps in `slots` the segments from `from` on and those before it
    /// still in the listing `bases` (sorted), and moves the log start to
    /// the first one kept.
    fn keep_listed(&self, slots: &mut Vec<Arc<Slot>>, from: u64, bases: &[u64]) {
        slots.retain(|s| s.base >= from || bases.binary_search(&s.base).is_ok());
        if let Some(first) = slots.first() {
            self.log_start.store(first.base, Ordering::Release);
        }
    }
}
