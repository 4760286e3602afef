//! Pre-faulting: preparing the pages of the active segment ahead of the
//! writer, on a thread of its own.
//!
//! The first write to each fresh page of a shared file mapping costs a page
//! fault in which the kernel allocates a page-cache page and zeroes it (on
//! the VMs we measure on, the host may also have to back that memory first),
//! then asks the filesystem to make it writable (`page_mkwrite`). `perf`
//! put about half of a single `send` there: more than copying the record.
//! Chronicle Queue's answer is a "pretoucher"; ours is one thread per broker
//! that asks the kernel to bring the next few MiB of each active segment
//! into the page cache with `posix_fadvise(POSIX_FADV_WILLNEED)`, so the
//! allocation and zeroing happen on that thread and the writer's fault only
//! maps a page that is already there. The thread runs in the `SCHED_IDLE`
//! class, only on a core nobody else needs. It is on by default
//! (`BrokerConfig::prefault_bytes`, 4 MiB; 0 turns it off).
//!
//! # Why not `MADV_POPULATE_WRITE`
//!
//! The first version populated the page tables themselves
//! (`madvise(MADV_POPULATE_WRITE)`, which also saves the writer the minor
//! fault). It raised throughput but also the p99 produce-to-consume latency
//! from tens of microseconds to about a millisecond, which is why it was
//! opt-in. The cause is the address space's lock: populating holds the
//! process's mmap lock (for reading) while it faults each page in, and a
//! thread at idle priority can be preempted while it holds it. Any `mmap`,
//! `munmap` or `mremap` in the process (a segment roll mapping its
//! successor, a reader mapping a sealed segment, the allocator returning a
//! large block) then waits for it as a writer of the lock, and every page
//! fault behind that writer (the producer's next fresh page) waits too: a
//! priority inversion through the kernel. `fadvise` works on the file's page
//! cache, not the address space, and takes no mmap lock, so the producer
//! can never queue behind the idle thread.
//!
//! # Why this cannot change what a reader or the writer sees
//!
//! `POSIX_FADV_WILLNEED` only starts reading the range into the page cache:
//! it writes no byte. The range lies at or above the segment's published
//! length, where only the writer writes and readers never look (mmap.rs,
//! contracts 2 and 3); the file is preallocated there, so the pages read as
//! the zeros they are. A page the writer has meanwhile written is already
//! in the page cache and is left alone. The thread keeps only a `Weak`
//! reference to a segment it is asked to prepare; advice on a range that a
//! seal has just trimmed away does nothing. Pre-faulting is an
//! optimization, never needed for correctness. (While it advises a step it
//! holds a strong reference, so the last `Arc` of a segment, and so its
//! unmapping, can end up on this thread: harmless.)
//!
//! # Cost
//!
//! The pages are page cache, not heap, and clean: until the writer writes
//! them they are not dirty, so writeback never writes them and the kernel
//! can reclaim them under memory pressure (the writer then faults its own
//! pages, as without pre-faulting). At most one window per partition that is
//! being written; partitions that are never written are never pre-faulted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};

use crate::error::{Error, Result};
use crate::storage::background::spawn_thread;
use crate::storage::health::{BackgroundError, BackgroundTask, Health};
use crate::storage::segment::Segment;

/// Requests waiting for the thread; more are dropped (the writer then
/// faults its own pages, as it would without pre-faulting).
const QUEUE: usize = 256;

/// Advise in steps of this many bytes, so a segment sealed meanwhile is
/// noticed quickly.
const STEP: usize = 256 << 10;

/// The smallest and largest window: below a few pages every `send` would
/// make a request; above this, one request would hold the thread (and a
/// broker close waiting for it) for long.
pub(crate) const MIN_AHEAD: u32 = 64 << 10;
/// See [`MIN_AHEAD`].
pub(crate) const MAX_AHEAD: u32 = 64 << 20;

/// Prepare `[start, end)` of the segment.
struct Request {
    seg: Weak<Segment>,
    start: usize,
    end: usize,
}

/// A handle for asking the broker's pre-fault thread to prepare pages.
/// Cheap to clone; requests after the thread stopped are ignored.
#[derive(Clone)]
pub(crate) struct Prefaulter {
    tx: Sender<Request>,
    /// Set by [`Prefaulter::stop`]; the thread checks it between steps, so
    /// it stops within one step however many requests are queued.
    stopped: Arc<AtomicBool>,
    /// How far ahead of the writer pages are prepared (bytes).
    ahead: u32,
}

impl std::fmt::Debug for Prefaulter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefaulter").field("ahead", &self.ahead).finish()
    }
}

impl Prefaulter {
    /// Starts the thread. `ahead` is how many bytes beyond the writer's
    /// position to keep prepared (clamped to `MIN_AHEAD..=MAX_AHEAD`).
    /// Returns `None` where the kernel cannot pre-fault (not Linux): there
    /// a thread would only cost.
    /// A failure of the thread (a kernel that cannot pre-fault) goes to
    /// `health`.
    pub(crate) fn start(ahead: u32, health: Arc<Health>) -> Result<Option<(Prefaulter, JoinHandle<()>)>> {
        if !cfg!(target_os = "linux") {
            return Ok(None);
        }
        let (tx, rx) = bounded(QUEUE);
        let stopped = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stopped);
        let handle = spawn_thread("millpond-prefault".into(), move || run(&rx, &flag, &health))?;
        Ok(Some((Prefaulter { tx, stopped, ahead: ahead.clamp(MIN_AHEAD, MAX_AHEAD) }, handle)))
    }

    /// Tells the thread to stop; it does within one step (256 KiB), dropping
    /// whatever is still queued. Join its handle to wait for it.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        // Wake it if it waits for a request (a full queue means it is busy
        // and will see the flag at its next step).
        let _ = self.tx.try_send(Request { seg: Weak::new(), start: 0, end: 0 });
    }

    /// Called by the writer (holding the writer lock) after it wrote up to
    /// byte `end` of `seg`, whose pages up to `*prepared` were already
    /// requested. Requests the next window when the writer comes within
    /// half a window of the end of what was requested.
    #[inline]
    pub(crate) fn after_write(&self, seg: &Arc<Segment>, end: u32, prepared: &mut u32) {
        let half = self.ahead / 2;
        if end.saturating_add(half) <= *prepared {
            return;
        }
        let cap = seg.capacity();
        let start = (*prepared).max(end);
        let stop = end.saturating_add(self.ahead).min(cap);
        if stop <= start {
            *prepared = cap; // nothing left to prepare in this segment
            return;
        }
        let request = Request { seg: Arc::downgrade(seg), start: start as usize, end: stop as usize };
        match self.tx.try_send(request) {
            Ok(()) => *prepared = stop,
            // The thread is busy or gone: the writer faults its own pages.
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {}
        }
    }
}

/// Puts the calling thread in Linux's `SCHED_IDLE` class: it runs only on
/// a core that nothing else wants, so preparing pages never delays a
/// producer or a consumer (on a busy machine the writer simply faults its
/// own pages, as without pre-faulting).
fn run_only_when_idle() {
    // Still correct if this fails, only less polite to other threads: said
    // in the log, not reported as a failure.
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `sched_setscheduler` reads `param`, a valid local that
        // outlives the call; pid 0 names the calling thread, and SCHED_IDLE
        // with priority 0 is a valid policy for an unprivileged thread. It
        // touches no memory of ours.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        if rc != 0 {
            log::info!("millpond: pre-fault thread keeps normal priority: {}", std::io::Error::last_os_error());
        }
    }
}

fn run(rx: &Receiver<Request>, stopped: &AtomicBool, health: &Health) {
    run_only_when_idle();
    while let Ok(Request { seg, start, end }) = rx.recv() {
        let mut at = start;
        while at < end && !stopped.load(Ordering::Acquire) {
            let Some(seg) = seg.upgrade() else { break };
            if seg.is_sealed() {
                break;
            }
            let len = STEP.min(end - at);
            match seg.advise_willneed(at, len) {
                Ok(()) => at += len,
                // A file system that refuses the advice: say so once and
                // stop; writers fault their own pages as before.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) || e.raw_os_error() == Some(libc::ESPIPE) => {
                    let e = Error::io("pre-fault pages (POSIX_FADV_WILLNEED; pre-faulting is off)", &seg.path, e);
                    health.report(BackgroundError::new(BackgroundTask::Prefault, e));
                    return;
                }
                Err(_) => break, // trimmed meanwhile: nothing left to prepare
            }
        }
        if stopped.load(Ordering::Acquire) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_os = "linux")]
    use crate::storage::resident::{cached_kib, resident_kib};
    use crate::storage::segment::PartitionId;
    use std::sync::Arc;

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("millpond-prefault-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn requests_follow_the_writer_one_window_ahead() {
        let dir = temp_dir("window");
        let id = PartitionId { topic: Arc::from("t"), partition: 0, topic_id: [0; 16] };
        let seg = Arc::new(Segment::create(&dir, 0, 1 << 20, id, 0, 0).unwrap());
        let (p, handle) = Prefaulter::start(256 << 10, Arc::default()).unwrap().unwrap();
        let mut prepared = 0;
        p.after_write(&seg, 100, &mut prepared);
        assert_eq!(prepared, 100 + (256 << 10), "the first write asks for a window beyond it");
        let before = prepared;
        p.after_write(&seg, 1000, &mut prepared);
        assert_eq!(prepared, before, "no new request while more than half a window is prepared");
        p.after_write(&seg, (1 << 20) - 10, &mut prepared);
        assert_eq!(prepared, 1 << 20, "requests stop at the segment's end");
        p.after_write(&seg, 1 << 20, &mut prepared);
        assert_eq!(prepared, 1 << 20);
        p.stop();
        handle.join().unwrap();
        // After the thread ended, requests are ignored rather than failing.
        let mut prepared = 0;
        p.after_write(&seg, 0, &mut prepared);
        drop(seg);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn stop_drops_queued_requests_instead_of_working_through_them() {
        let dir = temp_dir("stop");
        let segs: Vec<Arc<Segment>> = (0..8)
            .map(|i| {
                let id = PartitionId { topic: Arc::from("t"), partition: 0, topic_id: [0; 16] };
                Arc::new(Segment::create(&dir, i * 1000, 64 << 20, id, 0, 0).unwrap())
            })
            .collect();
        let (p, handle) = Prefaulter::start(MAX_AHEAD, Arc::default()).unwrap().unwrap();
        for seg in &segs {
            let mut prepared = 0;
            p.after_write(seg, 0, &mut prepared); // queues 64 MiB each
            assert_eq!(prepared, 64 << 20);
        }
        p.stop();
        handle.join().unwrap();
        // Half a GiB was queued; stopping dropped the queue, so the last
        // segments were never touched.
        let cached = cached_kib(&segs[7].path);
        assert!(cached <= 64, "only the header of the last segment is cached: {cached} KiB");
        drop(segs);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_window_is_clamped() {
        let (p, handle) = Prefaulter::start(1, Arc::default()).unwrap().unwrap();
        assert_eq!(p.ahead, MIN_AHEAD);
        p.stop();
        handle.join().unwrap();
        let (p, handle) = Prefaulter::start(u32::MAX, Arc::default()).unwrap().unwrap();
        assert_eq!(p.ahead, MAX_AHEAD);
        p.stop();
        handle.join().unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn advice_brings_the_pages_into_the_page_cache() {
        let dir = temp_dir("resident");
        let id = PartitionId { topic: Arc::from("t"), partition: 0, topic_id: [0; 16] };
        let seg = Segment::create(&dir, 0, 4 << 20, id, 0, 0).unwrap();
        let header = cached_kib(&seg.path);
        assert!(header <= 64, "a fresh segment has only its header cached: {header} KiB");
        seg.advise_willneed(0, 2 << 20).unwrap();
        // The advice starts the reads; on a preallocated file there is
        // nothing to read, but give the kernel a moment all the same.
        let mut resident = 0;
        for _ in 0..200 {
            resident = cached_kib(&seg.path);
            if resident >= 2048 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // At least the advised 2 MiB; large folios may bring in a little
        // more. None of it is mapped yet: the writer's fault maps it.
        assert!((2048..4096 + header).contains(&resident), "{resident} KiB cached");
        assert_eq!(resident_kib(&seg.path), 0, "advice maps nothing");
        drop(seg);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn advice_leaves_the_bytes_as_they_were() {
        let dir = temp_dir("bytes");
        let id = PartitionId { topic: Arc::from("t"), partition: 0, topic_id: [0; 16] };
        let seg = Segment::create(&dir, 0, 1 << 20, id, 0, 0).unwrap();
        let before = seg.raw_bytes_for_test().to_vec();
        assert!(before[crate::storage::segment::DATA_START as usize..].iter().all(|&b| b == 0));
        seg.advise_willneed(0, 1 << 20).unwrap();
        assert_eq!(seg.raw_bytes_for_test(), &before[..]);
        drop(seg);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
