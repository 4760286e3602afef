//! Stopping a partition: closing it (synced and trimmed, for a broker
//! shutting down) or abandoning it (files untouched, for a deleted topic).

use crate::error::{Error, Result};
use crate::storage::health::{BackgroundError, BackgroundTask};
use crate::storage::partition_log::state::PartitionLog;

impl PartitionLog {
    /// Stops the partition: syncs, trims the active segment (so reopening
    /// needs no tail scan), refuses further writes with `reason`, and wakes
    /// every waiting consumer.
    ///
    /// Only a failed sync is an error: once the data is synced, a failure
    /// to write the active segment's index (say, on a full disk) loses
    /// nothing, since the next open scans the segment instead; it is reported (`BackgroundTask::SegmentIndex`).
    pub(crate) fn close(&self, reason: Error) -> Result<()> {
        if self.is_follower() {
            // Nothing of a follower's is written: only wake its consumers.
            self.notifier.close();
            self.space.close();
            return Ok(());
        }
        let mut w = self.lock_writer();
        if w.closed.is_some() {
            return Ok(());
        }
        let result = if w.poisoned.is_none() {
            self.sync_locked(&mut w).and_then(|()| {
                if let Err(e) = w.active.finish(&self.dir) {
                    // Its data is synced; the next open scans it instead.
                    let failure = BackgroundError::new(BackgroundTask::SegmentIndex, e);
                    self.health.report(failure.on(self.topic_name(), self.partition()));
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
        self.lock_writer().closed = Some(reason);
        // Waits for any load, retention or compaction using paths to finish.
        *self.gone.write() = true;
        self.notifier.close();
        self.space.close();
    }
}
