//! The write group: producers that contend for one partition are combined
//! into one frame instead of queuing on its writer lock.
//!
//! The idea is RocksDB's write group (`WriteThread::JoinBatchGroup`: the
//! writer at the head of the queue becomes the leader and writes the whole
//! group's batches as one) and, in spirit, Kafka's `RecordAccumulator`
//! (records for one partition gather into one batch while the previous one
//! is being written). Here the writer lock itself elects the leader:
//!
//! 1. [`PartitionLog::append_one`] (every `send`) tries the writer lock. If
//!    it gets it, it is the *leader*: it writes its record (alone, exactly
//!    as before, when nobody is queued) together with every queued record.
//! 2. If the lock is held, the producer becomes a *follower*: it copies its
//!    record into its thread's reusable `QueuedRecord` buffers, pushes an
//!    `Entry` on the partition's queue, tries the lock once more (the
//!    holder may just have released it), and waits on its completion
//!    `Slot` (a brief spin, then `park`). Those parts are in
//!    `group_queue.rs`.
//! 3. The leader takes the whole queue while holding the lock and writes
//!    its own record and the followers' in one append, so in one frame (or
//!    as few as segment ends require, as for `send_batch`). It publishes the
//!    high watermark and applies the fsync policy for all of them, releases
//!    the lock, and then hands each follower its offset and wakes it.
//! 4. After every release of the writer lock, by anyone (a leader, `flush`,
//!    a `send_batch`, `close`...), the releaser checks the queue again and,
//!    if it is not empty, takes the lock (if it can) and leads a group of
//!    the queued records alone ([`PartitionLog::serve_queued`]).
//!    [`WriterGuard`] does this on drop, so every path that takes the writer
//!    lock must take it through [`PartitionLog::lock_writer`].
//!
//! # Invariants
//!
//! - **Exactly once.** An entry is moved out of the queue once, under the
//!   queue's mutex, by the one leader that writes it; only that leader
//!   completes its slot. A follower never writes its own entry except by
//!   becoming the leader that took it.
//! - **The right offset.** The leader writes its own record first and the
//!   entries in queue order, as one dense run from `first`; entry `k` gets
//!   `first + k` (plus one when the leader had a record of its own).
//! - **Per-producer order.** A producer's `send` returns only once its
//!   record is written (or refused), so a thread has at most one record
//!   queued, and its next record is sent after its previous one got its
//!   offset: it gets a larger one.
//! - **All or nothing, errors unchanged.** The group is one append: the
//!   segments it needs are created before anything is written, so it is
//!   written whole or not at all. If it cannot be written, the leader
//!   writes every record of the group on its own, in order, as if their
//!   sends had taken the lock one after another: each record is then
//!   written or gets the error a send of it alone would have got (a full
//!   disk, a closed or poisoned partition), never a silent loss. If the
//!   group was written but the sync the fsync policy asks for failed, the
//!   partition is poisoned and every member gets an error (the first the
//!   sync's own, the others [`Error::Poisoned`]), as a lone send would.
//! - **Durability.** Followers are completed only after the leader applied
//!   the fsync policy (`PartitionLog::published`) for the whole group: under
//!   `FsyncPolicy::Always` a follower's `send` returns after its record was
//!   synced; under `EveryN(n)` the group's records all count.
//! - **Visibility.** The high watermark and the bytes are published as in
//!   `write_frame`, and `notifier.notify()` runs after the lock is dropped.
//!
//! # No lost wake-up
//!
//! A follower F increments `queued` (in the queue's mutex, with its entry),
//! then issues a `SeqCst` fence, then calls `try_lock`. Every releaser H
//! unlocks, then issues a `SeqCst` fence, then loads `queued`. This is
//! Dekker's pattern, and the two fences are ordered one way or the other
//! (C++20 [atomics.fences]): if F's fence comes first, H's load sees F's
//! increment (or a later value); if H's comes first, F's `try_lock` sees
//! H's unlock (or a later change of the lock). So when F's `try_lock`
//! fails because of H's lock, H's check after unlocking sees F's entry
//! (unless a leader already took it, and then that leader completes it).
//! H then takes the lock and leads the queue, or fails to because another
//! holder H' took it, and the same argument applies to H'. Each link of
//! that chain is a holder that will release and check; one that finds the
//! lock free leads, and a leader takes the whole queue. So no follower
//! waits forever, and followers never wait for the lock itself: only on
//! their own slot. (`loom` models the notifier, not this; the argument is
//! what stands here, with `tests/write_group.rs` exercising it.)

use parking_lot::MutexGuard;

use crate::error::{Error, Result};
use crate::storage::partition_log::group_queue::{Entry, Slot, complete};
use crate::storage::partition_log::state::{PartitionLog, Writer};
use crate::storage::record::{Record, now_millis};

/// The writer lock, held; on drop, unlocks and serves queued followers
/// ([`PartitionLog::serve_queued`]). Every path but a leader's takes the
/// writer lock as one of these, so that no release misses a follower.
pub(crate) struct WriterGuard<'a> {
    log: &'a PartitionLog,
    /// `Some` until dropped.
    guard: Option<MutexGuard<'a, Writer>>,
}

impl std::ops::Deref for WriterGuard<'_> {
    type Target = Writer;

    fn deref(&self) -> &Writer {
        match &self.guard {
            Some(g) => g,
            None => unreachable!("a WriterGuard holds its lock until dropped"),
        }
    }
}

impl std::ops::DerefMut for WriterGuard<'_> {
    fn deref_mut(&mut self) -> &mut Writer {
        match &mut self.guard {
            Some(g) => g,
            None => unreachable!("a WriterGuard holds its lock until dropped"),
        }
    }
}

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        self.log.serve_queued();
    }
}

impl PartitionLog {
    /// Takes the writer lock (blocking), for every path but `append_one`.
    /// Dropping the guard serves followers queued meanwhile.
    pub(crate) fn lock_writer(&self) -> WriterGuard<'_> {
        WriterGuard { log: self, guard: Some(self.writer.lock()) }
    }

    /// Appends one record (of encoded size `size`) and returns its offset:
    /// as the leader of a write group if the writer lock is free, else as
    /// a follower (see the module docs).
    pub(crate) fn append_one(&self, record: &Record<'_>, size: usize) -> Result<u64> {
        // Read the clock before taking the lock, to keep the locked section short.
        let now = now_millis();
        let Some(mut w) = self.writer.try_lock() else { return self.follow(record, size) };
        if self.group.is_empty() {
            // Nobody queued: the path of a lone producer, as before groups.
            let result = self.write_locked(&mut w, &[record], &[size], now);
            let result = result.and_then(|first| self.published(&mut w, first).map(|()| first));
            drop(w);
            self.notify_consumers();
            self.serve_queued();
            return result;
        }
        let mut entries = self.group.take();
        let own = self.write_group(&mut w, Some((record, size)), &mut entries, now);
        drop(w);
        complete(entries);
        self.notify_consumers();
        self.serve_queued();
        own.unwrap_or_else(|| unreachable!("a leader with a record of its own gets its result"))
    }

    /// A follower's side: queue the record, make sure someone serves the
    /// queue, wait for the result.
    fn follow(&self, record: &Record<'_>, size: usize) -> Result<u64> {
        let slot = Slot::mine();
        let mut copy = slot.arm();
        copy.fill(record);
        self.group.push(Entry { record: copy, size, slot: std::sync::Arc::clone(&slot), result: None });
        // The holder may have released the lock since `try_lock` failed; if
        // the lock is free now, lead the queue (which holds this record)
        // ourselves, and check again after releasing it, as every releaser
        // does.
        if let Some(w) = self.writer.try_lock() {
            self.lead_queue(w);
            self.serve_queued();
        }
        slot.wait();
        slot.result()
    }

    /// After an unlock of the writer lock: while followers are queued and
    /// the lock is free, takes it and writes them as a group. If the lock
    /// is held, its holder does this when it releases it.
    pub(crate) fn serve_queued(&self) {
        while self.group.queued_after_unlock() {
            let Some(w) = self.writer.try_lock() else { return };
            self.lead_queue(w);
        }
    }

    /// Writes every queued record as one group, releases the lock, and
    /// completes the followers. The caller checks the queue again after.
    fn lead_queue(&self, mut w: MutexGuard<'_, Writer>) {
        let mut entries = self.group.take();
        if entries.is_empty() {
            return;
        }
        self.write_group(&mut w, None, &mut entries, now_millis());
        drop(w);
        complete(entries);
        self.notify_consumers();
    }

    /// Writes the leader's record (if any) and `entries` as one append,
    /// under the writer lock, and sets each entry's result. Returns the
    /// leader's. See the module docs for the error cases.
    fn write_group(
        &self,
        w: &mut Writer,
        own: Option<(&Record<'_>, usize)>,
        entries: &mut [Entry],
        now: i64,
    ) -> Option<Result<u64>> {
        let views: Vec<Record<'_>> = entries.iter().map(|e| e.record.as_record()).collect();
        let mut refs: Vec<&Record<'_>> = Vec::with_capacity(views.len() + 1);
        let mut sizes = Vec::with_capacity(views.len() + 1);
        if let Some((r, size)) = own {
            refs.push(r);
            sizes.push(size);
        }
        refs.extend(&views);
        sizes.extend(entries.iter().map(|e| e.size));
        let mut results: Vec<Result<u64>> = Vec::with_capacity(refs.len());
        match self.write_locked(w, &refs, &sizes, now) {
            Ok(first) => {
                let mut synced = self.published(w, first).err();
                for k in 0..refs.len() as u64 {
                    results.push(match synced.take() {
                        None if w.poisoned.is_none() => Ok(first + k),
                        None => Err(self.poisoned_error(w)),
                        Some(e) => Err(e),
                    });
                }
            }
            // Nothing was written. The group's error is dropped on purpose:
            // each record is written alone and gets its own result.
            Err(_) => {
                for (r, &size) in refs.iter().zip(&sizes) {
                    let result = self.write_locked(w, &[r], &[size], now);
                    results.push(result.and_then(|first| self.published(w, first).map(|()| first)));
                }
            }
        }
        drop(views);
        let mut results = results.into_iter();
        let own = own.and_then(|_| results.next());
        for (e, result) in entries.iter_mut().zip(results) {
            e.result = Some(result);
        }
        own
    }

    /// The error of a member of a group whose sync failed after another
    /// member got the sync's own error.
    fn poisoned_error(&self, w: &Writer) -> Error {
        Error::Poisoned {
            topic: self.id.topic.to_string(),
            partition: self.id.partition,
            reason: w.poisoned.clone().unwrap_or_default(),
        }
    }
}
