//! [`WakeFile`]: `millpond.wake`, the small shared mapping that carries
//! wake-ups from the writer process to read-only readers in other
//! processes.
//!
//! # Layout (one 4 KiB page)
//!
//! ```text
//! 0      8 bytes   magic "MPWAKE\0\x01"
//! 128    u32       the bell: a futex word; bumped when an armed slot is published to
//! 256 + 64 * i     u32 slot i (i < 60): non-zero while a reader waits for a partition that hashes to it
//! ```
//!
//! Every word sits on a cache line of its own, so a reader arming a slot
//! never touches a line the writer's other slots use.
//!
//! # Why no wake-up is lost
//!
//! The same argument as the in-process notifier's (`storage/notify.rs`),
//! with the slot for the count of waiters and the bell for the condition
//! variable. A reader *arms* its partition's slot (a `SeqCst` swap), issues
//! a `SeqCst` fence, loads the bell, and only then looks for new frames
//! (`pread`) before it sleeps on the bell with `FUTEX_WAIT`, which returns
//! at once if the bell is no longer what it loaded. The writer publishes a
//! frame, issues a `SeqCst` fence (the one in `Notifier::notify`), and then
//! loads the slot: if it is armed, the writer disarms it (a swap, so only
//! one writer thread pays), bumps the bell and calls `FUTEX_WAKE`. Either
//! the reader's look sees the frame, or the writer sees the armed slot; and
//! a bump that lands between the reader's load of the bell and its wait
//! makes the wait return at once.
//!
//! A writer with no reader waiting pays one load of a line nobody writes.
//!
//! # What a reader trusts
//!
//! Nothing in this file is data: a reader decides what to return only from
//! the segment files, by their checksums. A damaged, foreign or missing
//! wake file, a writer that never rings (an older version, or none
//! running), or a reader that cannot open it read-write (another user, a
//! read-only file system) only costs latency: every wait is bounded (see
//! `FOLLOW_POLL` in `storage/partition_log/follow.rs`) and ends in a fresh
//! look at the files.
//!
//! Arming a slot is the one thing a read-only reader writes, and only into
//! this file, never into the log, the topics or the groups.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering, fence};
use std::time::Duration;

use memmap2::{MmapOptions, MmapRaw};

use crate::error::{Error, Result};
use crate::storage::fsutil;
use crate::storage::segment_header::TopicId;

/// The wake file's name in the broker directory.
pub(crate) const WAKE_FILE: &str = "millpond.wake";

const LEN: usize = 4 << 10;
const MAGIC: &[u8; 8] = b"MPWAKE\0\x01";
const BELL_AT: usize = 128;
const SLOTS_AT: usize = 256;
const SLOT_STRIDE: usize = 64;
/// Partitions hash into this many slots; two partitions sharing one only
/// cost each other's readers a spurious wake-up.
pub(crate) const SLOTS: usize = (LEN - SLOTS_AT) / SLOT_STRIDE;

/// How long a follower's consumer sleeps at most before it looks at the
/// files again, with a wake file to be rung through (a writer that does not
/// ring, or rings a file that was replaced, costs at most this much).
pub(crate) const POLL_WITH_BELL: Duration = Duration::from_millis(100);
/// The same without a wake file (none there, or not writable by this
/// process): how often a waiting follower polls the files.
pub(crate) const POLL_WITHOUT_BELL: Duration = Duration::from_millis(10);

/// One partition's slot in a wake file.
#[derive(Debug, Clone)]
pub(crate) struct WakeSlot {
    pub(crate) file: Arc<WakeFile>,
    pub(crate) slot: usize,
}

impl WakeSlot {
    /// The writer's half (see [`WakeFile::published`]).
    #[inline]
    pub(crate) fn published(&self) {
        self.file.published(self.slot);
    }

    /// The reader's half (see [`WakeFile::arm`]): the bell value to wait on.
    pub(crate) fn arm(&self) -> u32 {
        self.file.arm(self.slot)
    }
}

/// `millpond.wake`, mapped.
pub(crate) struct WakeFile {
    map: MmapRaw,
    path: PathBuf,
}

impl std::fmt::Debug for WakeFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WakeFile").field("path", &self.path).finish()
    }
}

impl WakeFile {
    /// Opens the broker's wake file for the writer, creating it (or giving
    /// a damaged or foreign one a fresh header) as needed. A symlink in its
    /// place is [`Error::Symlink`].
    pub(crate) fn open_for_writer(dir: &Path) -> Result<WakeFile> {
        let path = dir.join(WAKE_FILE);
        if fsutil::is_symlink(&path) {
            return Err(Error::Symlink { op: "open wake file", path });
        }
        let file = fsutil::new_file_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(Error::io_at("open wake file", &path))?;
        let meta = file.metadata().map_err(Error::io_at("stat wake file", &path))?;
        if !meta.is_file() {
            return Err(Error::io("open wake file", &path, std::io::Error::other("not a regular file")));
        }
        if meta.len() < LEN as u64 {
            // Only ever grown: a reader's mapping of it must stay backed.
            file.set_len(LEN as u64).map_err(Error::io_at("size wake file", &path))?;
        }
        let wake = WakeFile::map(&file, path)?;
        if wake.magic() != *MAGIC {
            // SAFETY: the range is inside the mapping (LEN bytes, checked
            // above). Readers only ever access the words after the magic,
            // atomically; the magic bytes are written by the writer only.
            unsafe { std::ptr::copy_nonoverlapping(MAGIC.as_ptr(), wake.map.as_mut_ptr(), MAGIC.len()) };
        }
        Ok(wake)
    }

    /// Opens the wake file for a read-only reader: `None` if there is none,
    /// or it is not one (wrong size or magic, a symlink, not a regular
    /// file), or this process may not write it. Never creates it.
    pub(crate) fn open_for_reader(dir: &Path) -> Option<WakeFile> {
        let path = dir.join(WAKE_FILE);
        let file = fsutil::open_read_write(&path).ok()?;
        let meta = file.metadata().ok()?;
        if !meta.is_file() || meta.len() < LEN as u64 {
            return None;
        }
        let wake = WakeFile::map(&file, path).ok()?;
        (wake.magic() == *MAGIC).then_some(wake)
    }

    fn map(file: &File, path: PathBuf) -> Result<WakeFile> {
        let map = MmapOptions::new().len(LEN).map_raw(file).map_err(Error::io_at("map wake file", &path))?;
        Ok(WakeFile { map, path })
    }

    fn magic(&self) -> [u8; 8] {
        let mut m = [0u8; 8];
        // SAFETY: the first 8 bytes lie inside the mapping (LEN bytes); a
        // racing write by another process can only make the copy garbage,
        // which the caller compares and rejects.
        unsafe { std::ptr::copy_nonoverlapping(self.map.as_ptr(), m.as_mut_ptr(), m.len()) };
        m
    }

    /// The 32-bit word at byte `at` of the mapping.
    fn word(&self, at: usize) -> &AtomicU32 {
        debug_assert!(at.is_multiple_of(4) && at + 4 <= LEN);
        // SAFETY: `at` is 4-aligned and in bounds (all callers pass
        // constants from the layout above), the mapping is page-aligned and
        // lives as long as `self`, and `AtomicU32` has `u32`'s layout. Every
        // process accesses these words only atomically; whatever value
        // another process leaves in one is only a hint (module docs).
        unsafe { &*self.map.as_ptr().add(at).cast::<AtomicU32>() }
    }

    fn bell(&self) -> &AtomicU32 {
        self.word(BELL_AT)
    }

    fn slot(&self, slot: usize) -> &AtomicU32 {
        self.word(SLOTS_AT + (slot % SLOTS) * SLOT_STRIDE)
    }

    /// The slot of partition `partition` of the topic whose id is `topic`.
    pub(crate) fn slot_of(topic: &TopicId, partition: u32) -> usize {
        // FNV-1a: stable across processes and versions, unlike std's hasher.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in topic.iter().chain(partition.to_le_bytes().iter()) {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        (h % SLOTS as u64) as usize
    }

    /// The writer's half: called after a frame of a partition in `slot` was
    /// published *and* a `SeqCst` fence issued (`Notifier::notify`'s).
    #[inline]
    pub(crate) fn published(&self, slot: usize) {
        let armed = self.slot(slot);
        if armed.load(Ordering::Relaxed) != 0 && armed.swap(0, Ordering::SeqCst) != 0 {
            self.ring();
        }
    }

    /// The reader's half, before it looks for new frames: arms `slot` and
    /// returns the bell's value to wait on.
    pub(crate) fn arm(&self, slot: usize) -> u32 {
        self.slot(slot).swap(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        self.bell().load(Ordering::SeqCst)
    }

    /// The bell's value now (after arming, for a second partition).
    pub(crate) fn bell_value(&self) -> u32 {
        fence(Ordering::SeqCst);
        self.bell().load(Ordering::SeqCst)
    }

    /// Bumps the bell and wakes every process sleeping on it.
    pub(crate) fn ring(&self) {
        self.bell().fetch_add(1, Ordering::SeqCst);
        futex::wake_all(self.bell());
    }

    /// Sleeps until the bell is rung after it read `seen`, or `timeout`
    /// passes, or a spurious wake-up: the caller looks again in any case.
    pub(crate) fn wait(&self, seen: u32, timeout: Duration) {
        futex::wait(self.bell(), seen, timeout);
    }
}

/// The futex calls, shared (not `FUTEX_PRIVATE_FLAG`): the word is in a
/// file mapping, and the sleepers are in other processes.
#[cfg(target_os = "linux")]
mod futex {
    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    pub(super) fn wait(word: &AtomicU32, seen: u32, timeout: Duration) {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: FUTEX_WAIT reads the aligned u32 at `word` (which lives
        // for the call) and compares it with `seen`; `ts` is a valid
        // relative timeout for the call's duration. Its result (woken,
        // EAGAIN, ETIMEDOUT, EINTR) needs no handling: callers look again.
        unsafe {
            libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT, seen, &ts as *const libc::timespec);
        }
    }

    pub(super) fn wake_all(word: &AtomicU32) {
        // SAFETY: FUTEX_WAKE only uses the address of the aligned u32 at
        // `word` as a key; it reads and writes no memory.
        unsafe {
            libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
        }
    }
}

/// Without futexes, a wait is a sleep for its timeout: readers poll.
#[cfg(not(target_os = "linux"))]
mod futex {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    pub(super) fn wait(word: &AtomicU32, seen: u32, timeout: Duration) {
        if word.load(Ordering::SeqCst) == seen {
            std::thread::sleep(timeout);
        }
    }

    pub(super) fn wake_all(_: &AtomicU32) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("millpond-wake-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_reader_finds_no_wake_file_until_a_writer_makes_one() {
        let d = tmp("absent");
        assert!(WakeFile::open_for_reader(&d).is_none());
        assert!(!d.join(WAKE_FILE).exists(), "the reader created nothing");
        drop(WakeFile::open_for_writer(&d).unwrap());
        assert!(WakeFile::open_for_reader(&d).is_some());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_foreign_file_is_not_a_wake_file_for_readers_and_is_reset_by_the_writer() {
        let d = tmp("foreign");
        std::fs::write(d.join(WAKE_FILE), vec![7u8; LEN]).unwrap();
        assert!(WakeFile::open_for_reader(&d).is_none());
        drop(WakeFile::open_for_writer(&d).unwrap());
        assert!(WakeFile::open_for_reader(&d).is_some());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_symlinked_wake_file_is_refused() {
        let d = tmp("symlink");
        let outside = tmp("symlink-target");
        std::os::unix::fs::symlink(outside.join("x"), d.join(WAKE_FILE)).unwrap();
        assert!(matches!(WakeFile::open_for_writer(&d), Err(Error::Symlink { .. })));
        assert!(WakeFile::open_for_reader(&d).is_none());
        assert!(!outside.join("x").exists(), "nothing created through the link");
        std::fs::remove_dir_all(&d).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }

    #[test]
    fn publishing_to_an_armed_slot_wakes_a_sleeper_through_another_mapping() {
        let d = tmp("wake");
        let writer = WakeFile::open_for_writer(&d).unwrap();
        let reader = Arc::new(WakeFile::open_for_reader(&d).unwrap());
        let slot = WakeFile::slot_of(&[1; 16], 3);
        let seen = reader.arm(slot);
        let r = Arc::clone(&reader);
        let start = Instant::now();
        let t = std::thread::spawn(move || r.wait(seen, Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(20));
        writer.published(slot);
        t.join().unwrap();
        assert!(start.elapsed() < Duration::from_secs(20), "woken, not timed out");
        // Disarmed by the wake: the next publish does not ring.
        let bell = reader.bell_value();
        writer.published(slot);
        assert_eq!(reader.bell_value(), bell);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_ring_between_arming_and_waiting_is_not_lost() {
        let d = tmp("early");
        let writer = WakeFile::open_for_writer(&d).unwrap();
        let reader = WakeFile::open_for_reader(&d).unwrap();
        let seen = reader.arm(5);
        writer.published(5);
        let start = Instant::now();
        reader.wait(seen, Duration::from_secs(30));
        assert!(start.elapsed() < Duration::from_secs(20));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
