//! The unsafe boundary: a memory-mapped segment file.
//!
//! Everything in millpond that touches mapped memory goes through
//! [`MappedFile`]: the `unsafe` that maps and reads or writes mapped bytes
//! lives here and in `segment.rs`, which enforces the contracts stated
//! below, plus the one call into `Segment::append` on the write path
//! (`partition_log/append.rs`, under the writer lock). The crate's other
//! `unsafe` blocks are plain system calls that pass no mapped memory:
//! `posix_fallocate`, `posix_fadvise` and `lseek` in `fsutil.rs`, `sched_setscheduler` in
//! `prefault.rs`, and the futex calls and atomic words of the wake file's
//! small mapping in `wake_file.rs`. Every block carries a `// SAFETY:` comment (the
//! `clippy::undocumented_unsafe_blocks` lint enforces it).
//!
//! # What makes the mapping sound
//!
//! A memory map is only as safe as the promise that nobody else changes the
//! file underneath it. millpond relies on:
//!
//! 1. **One writer for the directory.** `Broker::open` takes an exclusive
//!    lock on `millpond.lock`; no other millpond broker, in this process or
//!    another, maps the same files for writing. Read-only brokers
//!    (`Broker::open_read_only`, in any process) map them read-only and
//!    keep contracts 2 to 4 from the outside: they learn what is published
//!    by checking frames read with `pread` (`partition_log/tail.rs`), and
//!    read through the mapping only what they checked. Tools that edit
//!    segment files while a broker has them open void this guarantee (as
//!    with LMDB/heed).
//! 2. **Append-only bytes.** A segment's bytes below its published
//!    `committed` length are never written again while the file is mapped.
//!    Recovery truncates and zeroes a damaged tail *before* any reader exists.
//! 3. **One writer.** Bytes at or above `committed` are written only by the
//!    holder of the partition's writer lock, and readers never look there.
//! 4. **No access past the file end.** A sealed segment is trimmed to exactly
//!    its committed length; the mapping may be longer than the file afterwards,
//!    but nothing reads or writes past `committed`, so the pages that would
//!    raise SIGBUS are never touched. A read-only follower maps the segment
//!    it follows over the largest size a segment can have, and publishes as
//!    `committed` only frames that `pread` returned, which are in the file
//!    and stay there (the writer trims only to its own committed length, at
//!    or past them): it, too, never touches a page past the file's end. Preallocation uses `fallocate`, so writes
//!    into the mapping never meet a sparse hole on a full disk (which would
//!    also raise SIGBUS).

use std::fs::File;
use std::io;

use memmap2::{MmapOptions, MmapRaw};

/// A shared, read-write (or read-only) mapping of a whole segment file.
pub(crate) struct MappedFile {
    map: MmapRaw,
    len: usize,
}

impl MappedFile {
    /// Maps the first `len` bytes of `file` read-write and shared, so writes
    /// reach the page cache (and survive a process crash) immediately.
    pub(crate) fn map_read_write(file: &File, len: usize) -> io::Result<MappedFile> {
        let map = MmapOptions::new().len(len).map_raw(file)?;
        Ok(MappedFile { map, len })
    }

    /// Maps the first `len` bytes of `file` read-only.
    pub(crate) fn map_read_only(file: &File, len: usize) -> io::Result<MappedFile> {
        if len == 0 {
            // mmap(2) refuses zero-length mappings. An empty sealed segment has
            // nothing to read (committed = 0), so an anonymous page stands in.
            let map = MmapOptions::new().len(1).map_anon()?;
            return Ok(MappedFile { map: map.into(), len: 0 });
        }
        let map = MmapOptions::new().len(len).map_raw_read_only(file)?;
        Ok(MappedFile { map, len })
    }

    /// Asks the kernel not to map pages around the ones this mapping faults
    /// in (`MADV_RANDOM`, which turns off fault-around and read-ahead): a
    /// follower's mapping of a segment another process writes must not
    /// lock, in the writer's process's way, the pages just past the
    /// writer's, which the writer is about to fault in itself. Only a hint:
    /// a failure changes nothing that is correct.
    pub(crate) fn advise_no_fault_around(&self) {
        let _ = self.map.advise(memmap2::Advice::Random); // a hint; see above
    }

    /// Length of the mapping in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Borrows `len` mapped bytes starting at `start`.
    ///
    /// # Safety
    ///
    /// `start + len <= self.len()`, and no one writes to these bytes while the
    /// returned slice lives (contract 2 above: they are below `committed`, or
    /// the caller holds the writer lock and no reader can see them yet).
    pub(crate) unsafe fn slice(&self, start: usize, len: usize) -> &[u8] {
        debug_assert!(start.checked_add(len).is_some_and(|end| end <= self.len));
        // SAFETY: the caller guarantees the range lies inside the mapping,
        // which lives as long as `self`, and that nothing writes to it while
        // the slice lives.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(start), len) }
    }

    /// Mutably borrows `len` mapped bytes starting at `start`.
    ///
    /// # Safety
    ///
    /// `start + len <= self.len()`, the mapping is read-write, and the caller
    /// has exclusive access to these bytes while the slice lives: it holds the
    /// partition's writer lock and the range is at or above the published
    /// `committed` length, so no reader forms a reference to it (contract 3).
    #[allow(clippy::mut_from_ref)] // exclusivity is the caller's contract, stated above
    pub(crate) unsafe fn slice_mut(&self, start: usize, len: usize) -> &mut [u8] {
        debug_assert!(start.checked_add(len).is_some_and(|end| end <= self.len));
        // SAFETY: in bounds and exclusive by the caller's contract; the
        // mapping is writable (only segments opened for append call this).
        unsafe { std::slice::from_raw_parts_mut(self.map.as_mut_ptr().add(start), len) }
    }

    /// Synchronously writes `len` bytes from `start` back to the file (msync).
    pub(crate) fn flush_range(&self, start: usize, len: usize) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        self.map.flush_range(start, len)
    }
}
