//! A segment: one memory-mapped file `<base>.log` of a partition.
//!
//! The writer copies frames into the mapping and then publishes the new end
//! of committed bytes with a `Release` store; readers `Acquire` it and read
//! only below it. A sealed segment is trimmed to its committed length and
//! never written again.
//!
//! Every segment file starts with a [segment header](crate::storage::segment_header)
//! (64 bytes) naming its topic, partition and base offset; frames follow it,
//! and index positions are absolute positions in the file.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::storage::frame::{self, FrameError, FrameHeader, Origin};
use crate::storage::fsutil;
use crate::storage::index::{IndexEntry, SegmentIndex};
use crate::storage::mmap::MappedFile;
use crate::storage::padded::CachePadded;
use crate::storage::policy::RecoveryMode;
use crate::storage::recovery_event::RecoveryEvent;
use crate::storage::scan;
use crate::storage::segment_header::{self, Refusal, SegmentHeader, TopicId};

mod unpublished;

/// Which topic and partition a segment belongs to, for error messages.
#[derive(Debug, Clone)]
pub(crate) struct PartitionId {
    pub topic: Arc<str>,
    pub partition: u32,
    /// The topic's identity, which every segment header repeats.
    pub topic_id: TopicId,
}

/// Where a segment's frames start: just after its header.
pub(crate) const DATA_START: u32 = segment_header::LEN as u32;

/// Reads the header at the start of segment `bytes`, which must belong at
/// `base` of the partition `id`: `Ok(None)` if it is missing (zero, or no
/// bytes), `UnsupportedFormat` for an older format, otherwise `Corrupt`.
fn check_header(bytes: &[u8], path: &Path, id: &PartitionId, base: u64) -> Result<Option<SegmentHeader>> {
    match SegmentHeader::decode(bytes, &id.topic_id, id.partition, base) {
        Ok(h) => Ok(Some(h)),
        Err(Refusal::Missing) => Ok(None),
        Err(Refusal::Unsupported(found)) => {
            Err(Error::UnsupportedFormat { path: path.to_path_buf(), found, supported: segment_header::VERSION })
        }
        Err(Refusal::Corrupt(reason)) => Err(Error::Corrupt {
            topic: id.topic.to_string(),
            partition: id.partition,
            path: path.to_path_buf(),
            position: 0,
            reason: format!("{reason}; the segment was left as it is"),
        }),
    }
}

/// The largest offset a segment may start at (Kafka's offsets are `i64`):
/// far from `u64::MAX`, so offset arithmetic can never overflow.
/// Largest segment size (positions inside a segment are `u32`).
pub(crate) const MAX_SEGMENT_BYTES: u64 = 1 << 31;

pub(crate) const MAX_OFFSET: u64 = i64::MAX as u64;

/// `<dir>/<base>.log` with `base` as 20 digits.
pub(crate) fn log_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

/// `<dir>/<base>.index`.
pub(crate) fn index_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.index"))
}

/// Whether the segment file at `path` (of partition `id`, at `base`) holds
/// no frame at all: its header is its own (or zero) and every byte after it
/// is zero (or there is none). Only such a segment may disappear at
/// recovery without a report; one whose first frame header is zero but
/// which holds other bytes is a torn first frame, recovered (and reported)
/// as a torn tail. Costs a read of the header and the first frame header,
/// then only of the ranges the file system reports as data.
pub(crate) fn is_unwritten(path: &Path, id: &PartitionId, base: u64) -> Result<bool> {
    use std::os::unix::fs::FileExt;
    let f = fsutil::open_read(path).map_err(Error::io_at("open segment", path))?;
    let len = f.metadata().map_err(Error::io_at("stat segment", path))?.len();
    let mut buf = vec![0u8; 1 << 16];
    let head_len = len.min(segment_header::LEN as u64) as usize;
    match f.read_at(&mut buf[..head_len], 0) {
        Ok(n) if n == head_len => {}
        Ok(_) => return Ok(false),
        Err(e) => return Err(Error::io("read segment", path, e)),
    }
    if SegmentHeader::decode(&buf[..head_len], &id.topic_id, id.partition, base).is_err_and(|r| r != Refusal::Missing) {
        return Ok(false);
    }
    let from = segment_header::LEN as u64;
    // The first frame header first: nearly every segment fails here at once.
    let first = (from.min(len), len.min(from + frame::MAX_HEADER_LEN as u64));
    for (start, end) in std::iter::once(first).chain(fsutil::data_ranges(&f, from.min(len), len)) {
        let mut at = start;
        while at < end {
            let n = (end - at).min(buf.len() as u64) as usize;
            let got = match f.read_at(&mut buf[..n], at) {
                Ok(0) => break,
                Ok(got) => got,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("read segment", path, e)),
            };
            if buf[..got].iter().any(|&b| b != 0) {
                return Ok(false);
            }
            at += got as u64;
        }
    }
    Ok(true)
}

/// Writes a segment header at the start of `file`.
fn write_header(file: &File, header: &SegmentHeader, path: &Path) -> Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(&header.encode(), 0).map_err(Error::io_at("write segment header", path))
}

/// Reads `<base>.index` if it is present and intact.
pub(crate) fn read_index(path: &Path) -> Option<SegmentIndex> {
    let bytes = fsutil::read_file(path).ok()?;
    SegmentIndex::decode(&bytes, path).ok()
}

/// Position one past the last non-zero byte of `bytes[from..]` (relative to
/// `from`), looking only at the ranges of `file` (mapped as `bytes`) that
/// the file system reports as data.
fn garbage_len(file: &File, bytes: &[u8], from: usize) -> usize {
    let mut last = 0;
    for (start, end) in fsutil::data_ranges(file, from as u64, bytes.len() as u64) {
        let (start, end) = (start as usize, (end as usize).min(bytes.len()));
        let n = scan::last_nonzero_end(&bytes[start..end]);
        if n > 0 {
            last = start + n - from;
        }
    }
    last
}

/// Refuses a segment file larger than millpond ever writes (positions in
/// a segment are `u32`), before anything maps it.
fn check_file_len(file_len: u64, path: &Path, id: &PartitionId) -> Result<()> {
    if file_len > MAX_SEGMENT_BYTES {
        return Err(Error::Corrupt {
            topic: id.topic.to_string(),
            partition: id.partition,
            path: path.to_path_buf(),
            position: 0,
            reason: format!("segment file is {file_len} bytes, larger than any millpond writes"),
        });
    }
    Ok(())
}

/// The fields of a [`Segment`] its writer updates on every append.
#[derive(Debug)]
struct Published {
    /// Bytes of valid, published frames. Written only by the partition's
    /// writer (`Release`), read by everyone (`Acquire`).
    committed: AtomicU32,
    /// One past the last record published in this segment.
    next_offset: AtomicU64,
    max_timestamp: AtomicI64,
}

impl Published {
    fn new(committed: u32, next_offset: u64, max_timestamp: i64) -> CachePadded<Published> {
        CachePadded::new(Published {
            committed: AtomicU32::new(committed),
            next_offset: AtomicU64::new(next_offset),
            max_timestamp: AtomicI64::new(max_timestamp),
        })
    }
}

/// One segment file and its mapping.
pub(crate) struct Segment {
    pub(crate) base_offset: u64,
    pub(crate) path: PathBuf,
    id: PartitionId,
    /// What the frames are relative to, from the segment header.
    origin: Origin,
    /// The open file, kept for appending segments (trim, fsync); `None` for
    /// sealed segments opened for reading, whose mapping needs no descriptor.
    file: Option<File>,
    map: MappedFile,
    /// What the writer updates on every append, on cache lines of its own:
    /// readers poll `committed`, and the fields they only read (the
    /// mapping's address and length, ...) must not share its line.
    published: CachePadded<Published>,
    sealed: AtomicBool,
    /// Frames of segments read back from disk are checksummed on every read;
    /// frames this process wrote (or recovery already checked) are not.
    verify_reads: bool,
    /// Where a sealed segment's valid data ends early because of damage.
    corrupt_at: Option<(u32, FrameError)>,
    /// The next segment's base offset, when known at open: frames read from
    /// disk must hold offsets in `[base_offset, limit)`.
    limit: Option<u64>,
    /// Bytes the writer may fill: the mapping's length, or, for an active
    /// segment that could not be given real blocks (a full disk at open),
    /// its committed length, so the next append rolls to a new segment
    /// instead of writing into a hole.
    writable: u32,
    index: Mutex<Vec<IndexEntry>>,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("path", &self.path)
            .field("committed", &self.committed())
            .field("sealed", &self.is_sealed())
            .finish()
    }
}

impl Segment {
    /// Creates a new segment file preallocated to `capacity` bytes, holding
    /// only its header (created in `epoch`, timestamps relative to `now`).
    pub(crate) fn create(
        dir: &Path,
        base: u64,
        capacity: u64,
        id: PartitionId,
        epoch: u32,
        now: i64,
    ) -> Result<Segment> {
        let path = log_path(dir, base);
        if base > MAX_OFFSET {
            return Err(Error::Corrupt {
                topic: id.topic.to_string(),
                partition: id.partition,
                path,
                position: 0,
                reason: format!("offset {base} is beyond the largest offset millpond writes ({MAX_OFFSET})"),
            });
        }
        let file = fsutil::new_file_options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(Error::io_at("create segment", &path))?;
        if let Err(e) = fsutil::preallocate(&file, capacity, &path) {
            // Leave no half-made segment behind (a full disk is retried later).
            drop(file);
            let _ = std::fs::remove_file(&path); // best effort: the error below is what matters
            return Err(e);
        }
        let header = SegmentHeader {
            topic_id: id.topic_id,
            partition: id.partition,
            base_offset: base,
            epoch,
            base_timestamp: now,
        };
        // Written like the frames after it: made durable by the first sync
        // of the segment, which starts at byte 0.
        if let Err(e) = write_header(&file, &header, &path) {
            drop(file);
            let _ = std::fs::remove_file(&path); // best effort, as above
            return Err(e);
        }
        let map = MappedFile::map_read_write(&file, capacity as usize).map_err(Error::io_at("map segment", &path))?;
        Ok(Segment {
            base_offset: base,
            path,
            id,
            origin: header.origin(),
            file: Some(file),
            map,
            published: Published::new(DATA_START, base, i64::MIN),
            sealed: AtomicBool::new(false),
            verify_reads: false,
            corrupt_at: None,
            limit: None,
            writable: capacity as u32,
            index: Mutex::new(Vec::new()),
        })
    }

    /// Opens the last segment of a partition for appending: validates every
    /// frame, truncates at the first bad one and zeroes what follows (or, in
    /// `FailOnCorruptTail` mode, refuses and changes nothing), then gives the
    /// whole capacity real blocks (`fallocate`, on every open: a sparse copy
    /// of the directory must not leave holes under the mapping).
    ///
    /// Costs time in proportion to the bytes written, not to the capacity:
    /// the frame scan stops at the first zero header, and the search for
    /// garbage after it reads only what the file system reports as data.
    ///
    /// A checksummed frame whose offsets do not belong in this segment, or
    /// a segment header that is not this segment's, is foreign data, not a
    /// torn write: it is `Error::Corrupt` in both modes, and nothing is
    /// changed. A segment with no header and nothing else (every byte zero:
    /// created just before a crash) is given one, for `epoch` and `now`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn recover_active(
        dir: &Path,
        base: u64,
        capacity: u64,
        index_interval: u32,
        mode: RecoveryMode,
        id: PartitionId,
        epoch: u32,
        now: i64,
        committed: &dyn Fn(u64, u64) -> bool,
    ) -> Result<(Segment, Option<RecoveryEvent>, Option<u64>)> {
        let path = log_path(dir, base);
        let file = fsutil::open_read_write(&path).map_err(Error::io_at("open segment", &path))?;
        let file_len = file.metadata().map_err(Error::io_at("stat segment", &path))?.len();
        check_file_len(file_len, &path, &id)?;
        let capacity = capacity.max(file_len);
        let idx = index_path(dir, base);
        // A seal or clean close that finished left an index describing
        // exactly this file; its next offset counts even where no record
        // is left (a segment compaction emptied keeps its place; see below).
        let index = read_index(&idx).filter(|i| i.valid_bytes == file_len && i.next_offset >= base);
        // Scan through a read-only mapping: in strict mode nothing may change.
        let fresh = SegmentHeader {
            topic_id: id.topic_id,
            partition: id.partition,
            base_offset: base,
            epoch,
            base_timestamp: now,
        };
        let (scan, garbage_end, header) = if file_len == 0 {
            (scan::scan(&[], DATA_START as usize, fresh.origin(), None, index_interval), 0, None)
        } else {
            let map =
                MappedFile::map_read_only(&file, file_len as usize).map_err(Error::io_at("map segment", &path))?;
            // SAFETY: no writer exists: this segment is being opened, is not
            // shared, and the broker's lock keeps other brokers out; the range
            // is the whole mapping.
            let bytes = unsafe { map.slice(0, file_len as usize) };
            match check_header(bytes, &path, &id, base)? {
                Some(header) => {
                    let scan = scan::scan(bytes, DATA_START as usize, header.origin(), None, index_interval);
                    let garbage_end = scan.valid_end + garbage_len(&file, bytes, scan.valid_end);
                    (scan, garbage_end, Some(header))
                }
                None if garbage_len(&file, bytes, 0) == 0 => {
                    (scan::scan(&[], DATA_START as usize, fresh.origin(), None, index_interval), 0, None)
                }
                None => {
                    return Err(Error::Corrupt {
                        topic: id.topic.to_string(),
                        partition: id.partition,
                        path,
                        position: 0,
                        reason: "the segment header is zero but the segment holds data; the segment was left as it is"
                            .into(),
                    });
                }
            }
        };
        let valid_at = scan.valid_end as u64;
        let corrupt = |reason: String| Error::Corrupt {
            topic: id.topic.to_string(),
            partition: id.partition,
            path: path.clone(),
            position: valid_at,
            reason,
        };
        let mut stop_reason = scan.stop.map_or_else(|| "unknown".to_string(), |(_, e)| e.to_string());
        if scan.stopped_at_foreign_frame() {
            return Err(corrupt(format!("{stop_reason}; the segment was left as it is")));
        }
        // A transaction's frames at the end without their commit marker.
        let (scan, pending_marker, aborted) = scan.resolve_open_txn(committed);
        if let Some(reason) = &aborted {
            stop_reason = reason.clone();
        }
        if aborted.is_none() && garbage_end > scan.valid_end && mode == RecoveryMode::FailOnCorruptTail {
            return Err(corrupt(format!("{stop_reason}; {} bytes would be dropped", garbage_end - scan.valid_end)));
        }
        // Real blocks under the whole capacity. On a full disk the segment is
        // still opened, for reading, and made unwritable, so the next append
        // rolls to a new segment and fails there with `DiskFull`.
        let writable_capacity = match fsutil::preallocate(&file, capacity, &path) {
            Ok(()) => true,
            Err(Error::DiskFull { .. }) if file_len > 0 => false,
            Err(e) => return Err(e),
        };
        if header.is_none() {
            write_header(&file, &fresh, &path)?;
        }
        let header = header.unwrap_or(fresh);
        let map_len = if writable_capacity { capacity } else { file_len.max(DATA_START.into()) };
        let map = MappedFile::map_read_write(&file, map_len as usize).map_err(Error::io_at("map segment", &path))?;
        let mut event = None;
        if garbage_end > scan.valid_end {
            // Zero only what holds data: writing into a hole would need a block.
            for (start, end) in fsutil::data_ranges(&file, scan.valid_end as u64, garbage_end as u64) {
                let (start, len) = (start as usize, (end - start) as usize);
                // SAFETY: still unshared (see above); the range is inside the
                // mapping (below `garbage_end <= file_len <= map_len`).
                unsafe { map.slice_mut(start, len) }.fill(0);
                map.flush_range(start, len).map_err(Error::io_at("msync zeroed tail", &path))?;
            }
            event = Some(RecoveryEvent {
                topic: id.topic.to_string(),
                partition: id.partition,
                segment: path.clone(),
                valid_bytes: scan.valid_end as u64,
                dropped_bytes: (garbage_end - scan.valid_end) as u64,
                next_offset: scan.next_offset,
                reason: stop_reason,
            });
        }
        // The index no longer describes a segment that is appended to again.
        fsutil::remove_if_present(&idx, "remove stale index")?;
        // The index's next offset counts only where the data it describes
        // is intact (a segment compaction emptied, or one whose last records
        // it removed); after damage, recovery goes on from the last valid
        // record, as for any torn tail.
        let next_offset = match &index {
            Some(i) if garbage_end == scan.valid_end => i.next_offset.max(scan.next_offset),
            _ => scan.next_offset,
        };
        let writable = if writable_capacity { map_len as u32 } else { scan.valid_end as u32 };
        let segment = Segment {
            base_offset: base,
            path,
            id,
            origin: header.origin(),
            file: Some(file),
            map,
            published: Published::new(scan.valid_end as u32, next_offset, scan.max_timestamp),
            sealed: AtomicBool::new(false),
            verify_reads: false,
            corrupt_at: None,
            limit: None,
            writable,
            index: Mutex::new(scan.entries),
        };
        Ok((segment, event, pending_marker))
    }

    /// Opens a sealed segment for reading, trusting its index file; without a
    /// valid index, scans (and checksums) the segment to rebuild it.
    /// `next_base` is the following segment's base offset; when `dense`
    /// (the topic is not compacted) a segment whose records end before it has
    /// lost frames, which is reported as damage rather than skipped.
    pub(crate) fn open_sealed(
        dir: &Path,
        base: u64,
        index_interval: u32,
        id: PartitionId,
        next_base: Option<u64>,
        dense: bool,
    ) -> Result<Segment> {
        let path = log_path(dir, base);
        let file = fsutil::open_read(&path).map_err(Error::io_at("open segment", &path))?;
        let file_len = file.metadata().map_err(Error::io_at("stat segment", &path))?.len();
        check_file_len(file_len, &path, &id)?;
        let idx_path = index_path(dir, base);
        let index = read_index(&idx_path).filter(|i| i.next_offset >= base);
        // A sealed segment is trimmed to exactly its valid bytes. An index
        // that describes a longer file means the file lost bytes (nothing
        // millpond does shrinks a sealed segment below its index: compaction
        // removes the index before swapping the file); one describing a
        // shorter file is stale (a crash between writing it and trimming).
        let truncated = index.as_ref().is_some_and(|i| i.valid_bytes > file_len);
        let index = index.filter(|i| i.valid_bytes == file_len && i.valid_bytes >= u64::from(DATA_START));
        let map = MappedFile::map_read_only(&file, file_len as usize).map_err(Error::io_at("map segment", &path))?;
        // SAFETY: a sealed segment is never written again; the range is the whole mapping.
        let bytes = unsafe { map.slice(0, map.len()) };
        let header = check_header(bytes, &path, &id, base)?;
        let origin = header.map_or(Origin { base_offset: base, ..Origin::default() }, |h| h.origin());
        let (index, corrupt_at) = match index {
            Some(index) if header.is_some() => (index, None),
            _ if header.is_none() => {
                // Never written: no frame (what that means is decided below,
                // from the next segment's base), or data under a lost header.
                let data = scan::last_nonzero_end(bytes) > 0;
                let index = SegmentIndex {
                    entries: Vec::new(),
                    valid_bytes: file_len.min(u64::from(DATA_START)),
                    next_offset: base,
                    max_timestamp: i64::MIN,
                };
                (index, data.then_some((0, FrameError::BadHeader("the segment header is zero"))))
            }
            _ => {
                let scan = scan::scan(bytes, DATA_START as usize, origin, next_base, index_interval);
                let corrupt_at = match scan.stop {
                    Some((pos, e)) if !scan.ended_cleanly() => Some((pos as u32, e)),
                    _ => None,
                };
                let index = SegmentIndex {
                    entries: scan.entries,
                    valid_bytes: scan.valid_end as u64,
                    next_offset: scan.next_offset,
                    max_timestamp: scan.max_timestamp,
                };
                (index, corrupt_at)
            }
        };
        let corrupt_at = match (truncated, next_base) {
            (true, _) => Some((
                file_len as u32,
                FrameError::BadHeader("the segment file is shorter than its index says: bytes were cut off"),
            )),
            (false, Some(next)) if corrupt_at.is_none() && index.next_offset > next => Some((
                index.valid_bytes as u32,
                FrameError::OutOfRange {
                    base_offset: base,
                    next_offset: index.next_offset,
                    segment_base: base,
                    limit: Some(next),
                },
            )),
            (false, Some(next)) if corrupt_at.is_none() && dense && index.next_offset != next => Some((
                index.valid_bytes as u32,
                FrameError::MissingOffsets { next_offset: index.next_offset, expected: next },
            )),
            _ => corrupt_at,
        };
        drop(file); // the mapping stays valid without the descriptor
        Ok(Segment {
            base_offset: base,
            path,
            id,
            origin,
            file: None,
            writable: map.len() as u32,
            map,
            published: Published::new(index.valid_bytes as u32, index.next_offset, index.max_timestamp),
            sealed: AtomicBool::new(true),
            verify_reads: true,
            corrupt_at,
            limit: next_base,
            index: Mutex::new(index.entries),
        })
    }

    /// Opens segment `base` of a partition that another process writes, for
    /// a read-only follower: the header is read with `pread` (`Ok(None)` if
    /// it is still zero: the segment is being created) and checked, and the
    /// file is mapped read-only over `capacity` (the topic's segment size)
    /// or its length now if that is more: all the writer ever fills, since
    /// it preallocates a segment to exactly that, so the writer growing the
    /// file never needs a new mapping. No frame is published yet: the follower validates
    /// frames by `pread` and publishes them with
    /// [`Segment::publish_followed`], and nothing reads the mapping past
    /// what it published (mmap.rs, contract 4). Returns the open file too,
    /// which the follower reads frames through.
    pub(crate) fn open_followed(
        dir: &Path,
        base: u64,
        id: PartitionId,
        capacity: u64,
    ) -> Result<Option<(Segment, File)>> {
        use std::os::unix::fs::FileExt;
        let path = log_path(dir, base);
        let file = fsutil::open_read(&path).map_err(Error::io_at("open segment", &path))?;
        let meta = file.metadata().map_err(Error::io_at("stat segment", &path))?;
        if !meta.is_file() {
            return Err(Error::io("open segment", &path, std::io::Error::other("not a regular file")));
        }
        check_file_len(meta.len(), &path, &id)?;
        let mut head = [0u8; segment_header::LEN];
        let n = file.read_at(&mut head, 0).map_err(Error::io_at("read segment header", &path))?;
        let Some(header) = check_header(&head[..n], &path, &id, base)? else { return Ok(None) };
        let len = capacity.max(meta.len()).min(MAX_SEGMENT_BYTES) as usize;
        let map = MappedFile::map_read_only(&file, len).map_err(Error::io_at("map segment", &path))?;
        map.advise_no_fault_around();
        let segment = Segment {
            base_offset: base,
            path,
            id,
            origin: header.origin(),
            file: None,
            map,
            published: Published::new(DATA_START, base, i64::MIN),
            sealed: AtomicBool::new(false),
            // Every frame was checked before it was published.
            verify_reads: false,
            corrupt_at: None,
            limit: None,
            writable: 0,
            index: Mutex::new(Vec::new()),
        };
        Ok(Some((segment, file)))
    }

    /// Publishes, for a read-only follower, frames it validated up to
    /// `committed` (through `pread`, so they are in the file: mmap.rs,
    /// contract 4), ending at `next_offset`, with `max_timestamp`.
    pub(crate) fn publish_followed(&self, committed: u32, next_offset: u64, max_timestamp: i64) {
        debug_assert!(self.file.is_none() && committed as usize <= self.map.len());
        self.published.max_timestamp.store(max_timestamp, Ordering::Relaxed);
        self.published.next_offset.store(next_offset, Ordering::Release);
        self.published.committed.store(committed, Ordering::Release);
    }

    /// Bytes of published frames (`Acquire`: everything below is readable).
    pub(crate) fn committed(&self) -> u32 {
        self.published.committed.load(Ordering::Acquire)
    }

    /// What this segment's frames are relative to.
    pub(crate) fn origin(&self) -> Origin {
        self.origin
    }

    /// One past the last record published in this segment.
    pub(crate) fn next_offset(&self) -> u64 {
        self.published.next_offset.load(Ordering::Acquire)
    }

    /// Largest record timestamp in this segment (`i64::MIN` if empty).
    pub(crate) fn max_timestamp(&self) -> i64 {
        self.published.max_timestamp.load(Ordering::Acquire)
    }

    /// The next segment's base offset, if it was known when this segment was
    /// opened from disk.
    pub(crate) fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// Whether the segment is sealed: nothing will be appended to it again.
    pub(crate) fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    /// A copy of the sparse index entries.
    pub(crate) fn index_entries(&self) -> Vec<IndexEntry> {
        self.index.lock().clone()
    }

    /// Borrows published bytes `[start, end)`, clamped to what is committed.
    pub(crate) fn committed_slice(&self, start: u32, end: u32) -> &[u8] {
        let committed = self.committed();
        let end = end.min(committed);
        let start = start.min(end);
        // SAFETY: `start <= end <= committed <= map.len()`; bytes below
        // `committed` are never written again while mapped (mmap.rs, contract 2).
        unsafe { self.map.slice(start as usize, (end - start) as usize) }
    }

    /// Reads the frame header at `pos` (below `end`, a committed length the
    /// caller loaded), checking the CRC if this segment came from disk.
    pub(crate) fn frame_at(&self, pos: u32, end: u32) -> Result<FrameHeader> {
        let bytes = self.committed_slice(pos, end);
        let checked = frame::read_header(bytes, self.origin).and_then(|h| {
            if self.verify_reads {
                frame::check_crc(&h, bytes)?;
                h.check_range(self.base_offset, self.limit)?;
            }
            Ok(h)
        });
        checked.map_err(|e| self.corrupt(pos, e))
    }

    /// An `Error::Corrupt` for this segment at `pos`.
    pub(crate) fn corrupt(&self, pos: u32, e: FrameError) -> Error {
        Error::Corrupt {
            topic: self.id.topic.to_string(),
            partition: self.id.partition,
            path: self.path.clone(),
            position: u64::from(pos),
            reason: e.to_string(),
        }
    }

    /// The damage that ended this sealed segment early, as an error, if any.
    pub(crate) fn damage(&self) -> Option<Error> {
        self.corrupt_at.map(|(pos, e)| self.corrupt(pos, e))
    }

    /// Appends a frame of at most `len` bytes written by `encode` (which
    /// returns its header, saying how long it is), publishing it.
    ///
    /// # Safety
    ///
    /// The caller holds the partition's writer lock, which is the only way
    /// to reach this method for the active segment, and `len` fits in the
    /// free space (`committed + len <= capacity`).
    pub(crate) unsafe fn append(
        &self,
        len: usize,
        encode: impl FnOnce(&mut [u8]) -> FrameHeader,
    ) -> (u32, FrameHeader) {
        let pos = self.published.committed.load(Ordering::Relaxed);
        debug_assert!(!self.is_sealed());
        debug_assert!(pos as usize + len <= self.map.len());
        // SAFETY: the range lies at or above `committed`, which readers never
        // read past, and the caller holds the writer lock, so this is the only
        // reference to it (mmap.rs, contract 3).
        let buf = unsafe { self.map.slice_mut(pos as usize, len) };
        let header = encode(buf);
        debug_assert!(header.frame_len() <= len);
        // Only the writer (holding its lock) stores here: a load and a store
        // do what `fetch_max` would, without a locked instruction.
        if header.max_timestamp > self.published.max_timestamp.load(Ordering::Relaxed) {
            self.published.max_timestamp.store(header.max_timestamp, Ordering::Relaxed);
        }
        self.published.next_offset.store(header.next_offset(), Ordering::Release);
        // Release: a reader that sees the new length also sees the frame's bytes.
        self.published.committed.store(pos + header.len, Ordering::Release);
        (pos, header)
    }

    /// Adds a sparse index entry for a frame already published.
    pub(crate) fn push_index(&self, entry: IndexEntry) {
        self.index.lock().push(entry);
    }

    /// Free bytes left for the writer.
    pub(crate) fn free(&self) -> usize {
        (self.writable as usize).saturating_sub(self.published.committed.load(Ordering::Relaxed) as usize)
    }

    /// Bytes the mapping can hold.
    pub(crate) fn capacity(&self) -> u32 {
        self.map.len() as u32
    }

    /// Asks the kernel to have the page-cache pages of `[start, start + len)`
    /// ready (see `prefault.rs`); the range is clamped to the mapping.
    pub(crate) fn advise_willneed(&self, start: usize, len: usize) -> std::io::Result<()> {
        let end = start.saturating_add(len).min(self.map.len());
        match &self.file {
            Some(f) if start < end => fsutil::advise_willneed(f, start as u64, (end - start) as u64),
            _ => Ok(()),
        }
    }

    /// Every mapped byte, published or not (tests only).
    #[cfg(test)]
    pub(crate) fn raw_bytes_for_test(&self) -> &[u8] {
        // SAFETY: tests call this with no writer active, so nothing writes
        // the mapping while the slice lives; the range is the whole mapping.
        unsafe { self.map.slice(0, self.map.len()) }
    }

    /// msyncs published bytes `[from, committed)`.
    pub(crate) fn sync_range(&self, from: u32) -> Result<u32> {
        let end = self.committed();
        if end > from {
            self.map
                .flush_range(from as usize, (end - from) as usize)
                .map_err(Error::io_at("msync segment", &self.path))?;
        }
        Ok(end)
    }

    /// fsyncs the segment file (data and metadata such as its length).
    pub(crate) fn sync_file(&self) -> Result<()> {
        match &self.file {
            Some(f) => f.sync_all().map_err(Error::io_at("fsync segment", &self.path)),
            None => Ok(()),
        }
    }

    /// Prepares the segment for sealing: persists its index and trims the
    /// file to its committed length. Readers still see it as unsealed until
    /// [`Segment::mark_sealed`].
    pub(crate) fn finish(&self, dir: &Path) -> Result<()> {
        let index = SegmentIndex {
            entries: self.index_entries(),
            valid_bytes: u64::from(self.committed()),
            next_offset: self.next_offset(),
            max_timestamp: self.max_timestamp(),
        };
        fsutil::write_replace_unsynced(&index_path(dir, self.base_offset), &index.encode())?;
        match &self.file {
            Some(f) => f.set_len(u64::from(self.committed())).map_err(Error::io_at("trim segment", &self.path)),
            None => Ok(()), // opened sealed: already trimmed
        }
    }

    /// Marks the segment sealed; readers at its end move to the next one,
    /// which must already be in the partition's segment list.
    pub(crate) fn mark_sealed(&self) {
        self.sealed.store(true, Ordering::Release);
    }
}

/// A byte range of a segment's published data, kept mapped by an `Arc`.
/// Handed to consumers as the backing store of a [`Message`](crate::Message).
#[derive(Clone)]
pub(crate) struct MappedBytes {
    seg: Arc<Segment>,
    start: u32,
    end: u32,
}

impl MappedBytes {
    /// A range of `seg`'s committed bytes.
    pub(crate) fn new(seg: Arc<Segment>, start: u32, end: u32) -> MappedBytes {
        MappedBytes { seg, start, end }
    }

    /// The bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        self.seg.committed_slice(self.start, self.end)
    }
}
