//! Opening a partition: listing its directory, removing what a crash left
//! between two steps, recovering the active segment, and building the
//! [`PartitionLog`].

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::storage::health::Health;
use crate::storage::notify::Notifier;
use crate::storage::partition_log::listing::{list_segments, parse_base};
use crate::storage::partition_log::settings::LogSettings;
use crate::storage::partition_log::state::{Opened, PartitionLog, Slot};
use crate::storage::policy::{CleanupPolicy, RecoveryMode};
use crate::storage::prefault::Prefaulter;
use crate::storage::record::now_millis;
use crate::storage::recovery_event::RecoveryEvent;
use crate::storage::segment::{PartitionId, Segment};
use crate::storage::segment_header::TopicId;
use crate::storage::{epochs, fsutil, segment};

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
            if !segment::is_unwritten(&path, id, last)? {
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

    /// Opens (creating if needed) the partition in `dir` of the topic whose
    /// id is `topic_id`, recovering its active segment. A transaction left
    /// open at its end is kept and given its commit marker when
    /// `committed(transaction id, its records' end)` says the transaction
    /// log holds its commit, and aborted otherwise.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn open(
        dir: &Path,
        topic: Arc<str>,
        topic_id: TopicId,
        partition: u32,
        settings: LogSettings,
        mode: RecoveryMode,
        prefault: Option<Prefaulter>,
        health: Arc<Health>,
        committed: &dyn Fn(u64, u64) -> bool,
    ) -> Result<(PartitionLog, Option<RecoveryEvent>)> {
        let id = PartitionId { topic, partition, topic_id };
        let existed = match fsutil::check_real_dir(dir, "open partition directory") {
            Ok(()) => true,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        fsutil::create_dir_all(dir)?;
        // One listing (opening must not cost more per sealed segment than
        // it has to): segment bases, and the strays a crash can leave
        // between two steps (see `is_stray`), which are removed.
        let (mut bases, names) = list_segments(dir, &id)?;
        let known: std::collections::HashSet<u128> = bases.iter().map(|&b| u128::from(b)).collect();
        for name in names.iter().filter(|n| is_stray(n, &known)) {
            fsutil::remove_if_present(&dir.join(name), "remove stray file")?;
        }
        Self::drop_unwritten_trailing_segments(dir, &id, &settings, &mut bases)?;
        let epochs = epochs::EpochHistory::load(dir)?;
        // A segment created now, before this session's first append begins
        // its epoch, is stamped with the latest epoch (0 if none).
        let epoch = epochs.epoch_of(u64::MAX);
        let now = now_millis();
        // A fresh partition's new directory entries (its first segment, and
        // the directory itself if it is new) are made durable by its first
        // sync, not here: until something is synced there is nothing a
        // machine crash could lose, and opening stays cheap. After such a
        // crash, a partition without its directory or segment is created
        // afresh, empty, as here.
        let mut fresh = (false, false);
        let (active, event, pending_marker) = match bases.last() {
            None => {
                let seg = Segment::create(dir, 0, settings.segment_bytes, id.clone(), epoch, now)?;
                bases.push(0);
                fresh = (true, !existed);
                (seg, None, None)
            }
            Some(&last) => Segment::recover_active(
                dir,
                last,
                settings.segment_bytes,
                settings.index_interval,
                mode,
                id.clone(),
                epoch,
                now,
                committed,
            )?,
        };
        let active = Arc::new(active);
        let slots: Vec<Arc<Slot>> = bases
            .iter()
            .map(|&base| {
                let seg = (base == active.base_offset).then(|| Arc::clone(&active));
                Arc::new(Slot { base, seg: Mutex::new(seg) })
            })
            .collect();
        let log = PartitionLog::assemble(Opened {
            id,
            dir: dir.to_path_buf(),
            settings,
            // The first write asks for the pages after it.
            prepared: active.committed(),
            active,
            slots,
            fresh,
            closed: None,
            notifier: Notifier::default(),
            prefault,
            health,
            epochs,
            follower: None,
        });
        if let Some(txn) = pending_marker {
            log.append_recovered_marker(txn)?;
        }
        Ok((log, event))
    }
}
