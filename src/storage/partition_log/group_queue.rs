//! The write group's parts: the queue of followers ([`WriteGroup`]), a
//! follower's queued record ([`QueuedRecord`], an owned copy whose buffers
//! are reused), and the completion [`Slot`] a leader hands its result
//! through. How leaders and followers use them, and why no follower waits
//! forever, is in `partition_log/write_group.rs`.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use std::thread::{self, Thread};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::storage::record::Record;

/// How many times a follower checks its slot, with a spin hint between
/// checks, before it parks: briefly, because a spinning follower takes a
/// core the leader may need. With four producers on two cores, 64 spins
/// and 4 yields before parking gave 0.59 of the sends per second of the
/// plain lock, parking at once 0.81.
const SPINS: u32 = 16;

/// One partition's queue of followers.
#[derive(Default)]
pub(crate) struct WriteGroup {
    /// Followers' entries, in arrival order.
    queue: Mutex<Vec<Entry>>,
    /// How many entries `queue` holds. Changed only in `queue`'s mutex;
    /// read without it by the holder of the writer lock and, after each
    /// unlock, by the releaser (see "No lost wake-up" in `write_group.rs`).
    queued: AtomicUsize,
}

impl WriteGroup {
    /// Whether no follower is queued. For the holder of the writer lock: a
    /// follower that queues after this load is served by the check that
    /// follows the unlock.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.queued.load(Ordering::Relaxed) == 0
    }

    /// The check after an unlock of the writer lock: whether followers are
    /// queued. The fence pairs with the one in [`WriteGroup::push`]: see
    /// "No lost wake-up" in `write_group.rs`. A fence and a load, not a
    /// read-modify-write of `queued`: the load leaves its cache line shared,
    /// where an RMW after every send made it bounce between the cores of
    /// contending producers (25% fewer sends per second).
    #[inline]
    pub(crate) fn queued_after_unlock(&self) -> bool {
        fence(Ordering::SeqCst);
        self.queued.load(Ordering::Relaxed) != 0
    }

    /// Queues a follower's entry. The caller then tries the writer lock;
    /// the fence orders this entry's count before that attempt (see
    /// [`WriteGroup::queued_after_unlock`]).
    pub(crate) fn push(&self, entry: Entry) {
        {
            let mut queue = self.queue.lock();
            queue.push(entry);
            self.queued.fetch_add(1, Ordering::Relaxed);
        }
        fence(Ordering::SeqCst);
    }

    /// Takes every queued entry. For the holder of the writer lock.
    pub(crate) fn take(&self) -> Vec<Entry> {
        let mut queue = self.queue.lock();
        let taken = std::mem::take(&mut *queue);
        self.queued.fetch_sub(taken.len(), Ordering::Relaxed);
        taken
    }
}

/// A follower's record, queued for the leader to write.
pub(crate) struct Entry {
    pub(crate) record: QueuedRecord,
    /// Its encoded size (`frame::record_len`), checked by the producer.
    pub(crate) size: usize,
    pub(crate) slot: Arc<Slot>,
    /// Set by the leader while it holds the lock; handed over after.
    pub(crate) result: Option<Result<u64>>,
}

/// An owned copy of a [`Record`] whose buffers are reused from one send to
/// the next: keys, values and header values in `bytes`, header names in
/// `names`, as ranges.
#[derive(Default)]
pub(crate) struct QueuedRecord {
    bytes: Vec<u8>,
    names: String,
    key: Option<(usize, usize)>,
    value: Option<(usize, usize)>,
    headers: Vec<((usize, usize), (usize, usize))>,
    timestamp: Option<i64>,
}

impl QueuedRecord {
    /// Copies `r` into this record's buffers.
    pub(crate) fn fill(&mut self, r: &Record<'_>) {
        self.bytes.clear();
        self.names.clear();
        self.headers.clear();
        fn put(bytes: &mut Vec<u8>, b: &[u8]) -> (usize, usize) {
            bytes.extend_from_slice(b);
            (bytes.len() - b.len(), bytes.len())
        }
        self.key = r.key.as_deref().map(|k| put(&mut self.bytes, k));
        self.value = r.value.as_deref().map(|v| put(&mut self.bytes, v));
        for (name, value) in &r.headers {
            self.names.push_str(name);
            let name = (self.names.len() - name.len(), self.names.len());
            self.headers.push((name, put(&mut self.bytes, value)));
        }
        self.timestamp = r.timestamp;
    }

    /// The record, borrowing this copy's bytes. Its partition is not kept:
    /// the producer already chose it.
    pub(crate) fn as_record(&self) -> Record<'_> {
        let bytes = |(s, e): (usize, usize)| Cow::Borrowed(&self.bytes[s..e]);
        Record {
            key: self.key.map(bytes),
            value: self.value.map(bytes),
            headers: self.headers.iter().map(|&((s, e), v)| (Cow::Borrowed(&self.names[s..e]), bytes(v))).collect(),
            timestamp: self.timestamp,
            partition: None,
        }
    }
}

/// Where a leader hands a follower its result: one per thread, reused.
pub(crate) struct Slot {
    /// Set (`Release`) by the leader once `outcome` holds the result; reset
    /// by the follower before it queues again.
    done: AtomicBool,
    outcome: Mutex<Outcome>,
    /// The follower's thread, to unpark.
    thread: Thread,
}

#[derive(Default)]
struct Outcome {
    result: Option<Result<u64>>,
    /// The record's buffers, back from the leader for the next send.
    spare: QueuedRecord,
}

impl Slot {
    fn new() -> Arc<Slot> {
        Arc::new(Slot { done: AtomicBool::new(false), outcome: Mutex::default(), thread: thread::current() })
    }

    /// This thread's slot, reused by each of its sends (a thread has at
    /// most one record queued: its `send` waits for it). A thread being
    /// torn down, whose slot is gone, gets a fresh one.
    pub(crate) fn mine() -> Arc<Slot> {
        SLOT.try_with(Arc::clone).unwrap_or_else(|_| Slot::new())
    }

    /// Prepares the slot for a new record: returns the buffers of its last
    /// one and marks it not done. No leader can see the slot until the
    /// entry holding it is pushed, which publishes this store (the queue's
    /// mutex).
    pub(crate) fn arm(&self) -> QueuedRecord {
        self.done.store(false, Ordering::Relaxed);
        std::mem::take(&mut self.outcome.lock().spare)
    }

    /// The result a leader left, once [`Slot::wait`] returned.
    pub(crate) fn result(&self) -> Result<u64> {
        let result = self.outcome.lock().result.take();
        // A completed slot holds its result (`Entry`'s drop always sets one).
        result.unwrap_or(Err(Error::ThreadPanicked { what: "write group's leader" }))
    }

    /// Waits until a leader completed this slot: a brief spin, then parks.
    /// A stray unpark (from a leader that completed the slot's previous
    /// use) only makes `park` return early.
    pub(crate) fn wait(&self) {
        for _ in 0..SPINS {
            if self.done.load(Ordering::Acquire) {
                return;
            }
            std::hint::spin_loop();
        }
        while !self.done.load(Ordering::Acquire) {
            thread::park();
        }
    }

    /// Hands the follower its result and its buffers back, and wakes it.
    pub(crate) fn complete(&self, result: Result<u64>, record: QueuedRecord) {
        {
            let mut outcome = self.outcome.lock();
            outcome.result = Some(result);
            outcome.spare = record;
        }
        // The follower may return, and queue its next record in this slot,
        // as soon as it sees `done`; what follows touches only `thread`,
        // which never changes, through the `Arc` this leader still holds.
        self.done.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

thread_local! {
    static SLOT: Arc<Slot> = Slot::new();
}

impl Drop for Entry {
    /// Every entry leaves the queue through here, so every follower is
    /// answered: with the result its leader set or, if the leader unwound
    /// from a panic before it did, an error, never a wait for ever.
    fn drop(&mut self) {
        let result = self.result.take().unwrap_or(Err(Error::ThreadPanicked { what: "write group's leader" }));
        self.slot.complete(result, std::mem::take(&mut self.record));
    }
}

/// Hands each follower of a written group its result, after the lock was
/// released (dropping an entry completes it).
pub(crate) fn complete(entries: Vec<Entry>) {
    drop(entries);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_dropped_without_a_result_answers_its_follower_with_an_error() {
        let slot = Slot::mine();
        let record = slot.arm();
        drop(Entry { record, size: 1, slot: Arc::clone(&slot), result: None });
        slot.wait(); // returns at once: the slot was completed
        assert!(matches!(slot.result(), Err(Error::ThreadPanicked { .. })));
    }

    #[test]
    fn an_entry_dropped_with_its_result_hands_it_over() {
        let slot = Slot::mine();
        let record = slot.arm();
        drop(Entry { record, size: 1, slot: Arc::clone(&slot), result: Some(Ok(41)) });
        slot.wait();
        assert_eq!(slot.result().unwrap(), 41);
    }
}
