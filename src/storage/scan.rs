//! Scanning a segment's frames: used to recover the active segment on open
//! and to rebuild the index of a sealed segment whose index file is bad.

use crate::storage::frame::{self, FrameError, FrameHeader, Origin};
use crate::storage::index::IndexEntry;

/// What a scan of a segment's bytes found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scan {
    /// Bytes from the start that hold valid frames.
    pub valid_end: usize,
    /// One past the last valid record's offset (the segment base if none).
    pub next_offset: u64,
    /// Largest timestamp among valid records (`i64::MIN` if none).
    pub max_timestamp: i64,
    /// Sparse index entries for the valid frames.
    pub entries: Vec<IndexEntry>,
    /// Why the scan stopped before the end of `bytes`, if it did: the
    /// position and the failure. `Zero` at the stop means a clean end.
    pub stop: Option<(usize, FrameError)>,
    /// Number of valid frames.
    pub frames: u64,
    /// Number of records in them.
    pub records: u64,
    /// A transaction whose frames end the valid data without their commit
    /// marker: its id, and the scan as it stood just before its first frame
    /// (what is left if recovery aborts it).
    pub open_txn: Option<(u64, Box<Scan>)>,
}

/// Why a scan stops at a frame that breaks the transaction rule (nothing
/// but the open transaction's own frames until its marker): foreign data.
const INSIDE_OPEN_TXN: FrameError = FrameError::BadHeader("a frame inside another transaction's open frames");

impl Scan {
    /// Whether the scan stopped at a frame that passed its checksum but does
    /// not belong where it is (outside the segment's offsets, or out of
    /// sequence): foreign data, which no torn write produces.
    pub(crate) fn stopped_at_foreign_frame(&self) -> bool {
        matches!(
            self.stop,
            Some((_, FrameError::OutOfRange { .. } | FrameError::BadHeader("frame offset out of sequence")))
        ) || matches!(self.stop, Some((_, e)) if e == INSIDE_OPEN_TXN)
    }

    /// Settles a transaction whose frames end the valid data without their
    /// commit marker: kept, with its id returned for the caller to add the
    /// marker, if `committed(id, end of its records)` says the transaction
    /// log holds its commit for exactly these records; else aborted (a crash
    /// before its decision): the scan as it stood before its first frame,
    /// with the reason to report.
    pub(crate) fn resolve_open_txn(
        mut self,
        committed: &dyn Fn(u64, u64) -> bool,
    ) -> (Scan, Option<u64>, Option<String>) {
        let Some((txn, before)) = self.open_txn.take() else { return (self, None, None) };
        if committed(txn, self.next_offset) {
            return (self, Some(txn), None);
        }
        let reason = format!(
            "transaction {txn:016x} was still open when the writer stopped (no commit was decided): \
             its {} records were aborted",
            self.records - before.records
        );
        (*before, None, Some(reason))
    }

    /// Whether the scan ended at clean, zero-filled (never written) space or
    /// exactly at the end of the bytes.
    pub(crate) fn ended_cleanly(&self) -> bool {
        matches!(self.stop, None | Some((_, FrameError::Zero)))
    }
}

/// A scan in progress: where it is and what it has found so far. [`scan`]
/// feeds it a whole segment; a read-only follower (`storage/follow.rs`)
/// feeds it the bytes it reads past its known end, a chunk at a time.
#[derive(Debug, Clone)]
pub(crate) struct Scanner {
    origin: Origin,
    limit: Option<u64>,
    index_interval: u32,
    /// Absolute position of the next frame.
    pub pos: usize,
    pub next_offset: u64,
    pub max_timestamp: i64,
    pub entries: Vec<IndexEntry>,
    last_entry_pos: Option<usize>,
    pub frames: u64,
    pub records: u64,
    /// The transaction whose frames were stepped over without their commit
    /// marker yet, and the scanner as it was before its first frame.
    pub open_txn: Option<(u64, Box<Scanner>)>,
}

impl Scanner {
    /// A scan of a segment whose frames are relative to `origin`, starting
    /// at absolute position `start` (just after the segment header), whose
    /// records must lie below `limit` (the next segment's base); index
    /// entries are made every `index_interval` bytes.
    pub(crate) fn new(origin: Origin, start: usize, limit: Option<u64>, index_interval: u32) -> Scanner {
        Scanner {
            origin,
            limit,
            index_interval,
            pos: start,
            next_offset: origin.base_offset,
            max_timestamp: i64::MIN,
            entries: Vec::new(),
            last_entry_pos: None,
            frames: 0,
            records: 0,
            open_txn: None,
        }
    }

    /// Where the scan stands short of an open transaction: this scanner,
    /// or the one before the open transaction's first frame.
    pub(crate) fn stable(&self) -> &Scanner {
        self.open_txn.as_ref().map_or(self, |(_, before)| before)
    }

    /// Goes back to just before the open transaction's first frame, if one
    /// is open, to check its frames again.
    pub(crate) fn rewind_open_txn(&mut self) {
        if let Some((_, before)) = self.open_txn.take() {
            *self = *before;
        }
    }

    fn to_scan(&self, stop: Option<(usize, FrameError)>) -> Scan {
        Scan {
            valid_end: self.pos,
            next_offset: self.next_offset,
            max_timestamp: self.max_timestamp,
            entries: self.entries.clone(),
            stop,
            frames: self.frames,
            records: self.records,
            open_txn: None,
        }
    }

    /// Validates the frame at the start of `bytes` (which begin at
    /// [`Scanner::pos`]) and, if it is valid and belongs here, accounts for
    /// it and moves past it. On an error nothing changes: the frame is
    /// zero, short, torn, fails its CRC, or has an impossible offset (below
    /// the segment's base, at or past `limit`, or not after the previous
    /// frame).
    pub(crate) fn step(&mut self, bytes: &[u8]) -> Result<FrameHeader, FrameError> {
        let header = frame::validate_frame(bytes, self.origin)?;
        header.check_range(self.origin.base_offset, self.limit)?;
        // Offsets increase; gaps are allowed (compaction leaves them).
        if header.base_offset < self.next_offset {
            return Err(FrameError::BadHeader("frame offset out of sequence"));
        }
        if self.pos > u32::MAX as usize {
            return Err(FrameError::BadHeader("segment larger than 4 GiB"));
        }
        // Nothing but an open transaction's own frames until its marker.
        let open = self.open_txn.as_ref().map(|(id, _)| *id);
        match (open, header.txn) {
            (Some(open), Some(id)) if open != id => return Err(INSIDE_OPEN_TXN),
            (Some(_), None) => return Err(INSIDE_OPEN_TXN),
            (None, Some(id)) if !header.control => {
                let mut before = self.clone();
                before.open_txn = None;
                self.open_txn = Some((id, Box::new(before)));
            }
            // A marker ends its transaction (one found alone is harmless).
            (_, Some(_)) if header.control => self.open_txn = None,
            _ => {}
        }
        if self.last_entry_pos.is_none_or(|last| self.pos - last >= self.index_interval as usize) {
            self.entries.push(IndexEntry {
                rel_offset: (header.base_offset - self.origin.base_offset) as u32,
                position: self.pos as u32,
                max_ts_before: self.max_timestamp,
            });
            self.last_entry_pos = Some(self.pos);
        }
        self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
        self.next_offset = header.next_offset();
        self.pos += header.frame_len();
        self.frames += 1;
        self.records += u64::from(header.record_count);
        Ok(header)
    }
}

/// Validates frames from `start` (just after the segment header) of a
/// segment's `bytes` until the first one that is zero, short, torn, fails
/// its CRC, or has an impossible offset (below the segment's base, at or
/// past `limit` — the next segment's base — or not after the previous
/// frame). Frames are relative to `origin`. Index entries are made every
/// `index_interval` bytes; positions are absolute.
pub(crate) fn scan(bytes: &[u8], start: usize, origin: Origin, limit: Option<u64>, index_interval: u32) -> Scan {
    let mut s = Scanner::new(origin, start, limit, index_interval);
    let mut stop = None;
    while s.pos < bytes.len() {
        if let Err(e) = s.step(&bytes[s.pos..]) {
            stop = Some((s.pos, e));
            break;
        }
    }
    let mut scan = s.to_scan(stop);
    scan.open_txn = s.open_txn.as_ref().map(|(id, before)| (*id, Box::new(before.to_scan(None))));
    scan
}

/// Position one past the last non-zero byte of `bytes`, or 0 if all are zero.
pub(crate) fn last_nonzero_end(bytes: &[u8]) -> usize {
    let mut end = bytes.len();
    // Check 8 bytes at a time from the back; most tails are all zero.
    let chunks = bytes.rchunks_exact(8);
    let rem = chunks.remainder().len();
    for chunk in chunks {
        if chunk.iter().any(|&b| b != 0) {
            let last = chunk.iter().rposition(|&b| b != 0).unwrap_or(0);
            return end - 8 + last + 1;
        }
        end -= 8;
    }
    bytes[..rem].iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::frame::{MAX_HEADER_LEN, encode_frame, record_len};
    use crate::storage::record::Record;

    /// Frames start here, as after a segment header.
    const START: usize = 64;

    fn origin(base: u64) -> Origin {
        Origin { base_offset: base, ..Origin::default() }
    }

    fn scan(bytes: &[u8], base: u64, limit: Option<u64>, interval: u32) -> Scan {
        super::scan(bytes, START, origin(base), limit, interval)
    }

    /// Frames relative to the first frame's base offset.
    fn segment_with(frames: &[(u64, usize)], capacity: usize) -> Vec<u8> {
        let mut out = vec![0u8; capacity];
        let mut pos = START;
        let seg_base = frames[0].0;
        for &(base, n) in frames {
            let recs: Vec<Record<'_>> = (0..n).map(|_| Record::new(b"payload")).collect();
            let len = MAX_HEADER_LEN + recs.iter().map(record_len).sum::<usize>();
            let h = encode_frame(&mut out[pos..pos + len], origin(seg_base), base, recs.iter(), 7);
            out[pos + h.frame_len()..pos + len].fill(0);
            pos += h.frame_len();
        }
        out
    }

    #[test]
    fn scan_stops_cleanly_at_zero_tail() {
        let seg = segment_with(&[(10, 1), (11, 3), (14, 1)], 4096);
        let s = scan(&seg, 10, None, 1);
        assert!(s.ended_cleanly());
        assert_eq!((s.next_offset, s.frames, s.entries.len()), (15, 3, 3));
        assert_eq!(last_nonzero_end(&seg[s.valid_end..]), 0);
    }

    #[test]
    fn scan_reports_torn_last_frame() {
        let mut seg = segment_with(&[(0, 2), (2, 2)], 4096);
        let first = scan(&seg, 0, None, 4096);
        assert_eq!(first.entries[0].position as usize, START);
        let frame_len = (first.valid_end - START) / 2;
        seg[START + frame_len + frame_len / 2] ^= 0xFF;
        let s = scan(&seg, 0, None, 4096);
        assert_eq!(s.next_offset, 2);
        assert!(!s.ended_cleanly());
    }

    #[test]
    fn scan_rejects_frame_below_the_segment_base() {
        // Offsets are stored as deltas from the segment's base, so no frame
        // can claim one below it; a frame from elsewhere claims offsets
        // below its predecessor's end instead, and is refused as foreign.
        let seg = segment_with(&[(5, 2), (5, 1)], 1024);
        let s = scan(&seg, 5, None, 4096);
        assert_eq!((s.valid_end, s.frames), (START + seg_frame_len(&seg), 1));
        assert!(s.stopped_at_foreign_frame());
    }

    #[test]
    fn scan_rejects_frame_at_or_past_the_next_segment() {
        let seg = segment_with(&[(5, 1), (6, 2)], 1024);
        let s = scan(&seg, 5, Some(7), 4096);
        assert_eq!((s.frames, s.next_offset), (1, 6));
        assert!(s.stopped_at_foreign_frame());
    }

    #[test]
    fn scan_accepts_offset_gaps_left_by_compaction() {
        let seg = segment_with(&[(0, 1), (5, 2)], 1024);
        let s = scan(&seg, 0, None, 4096);
        assert!(s.ended_cleanly());
        assert_eq!((s.frames, s.next_offset), (2, 7));
    }

    fn seg_frame_len(seg: &[u8]) -> usize {
        frame::read_header(&seg[START..], Origin { base_offset: 5, ..Origin::default() }).map_or(0, |h| h.frame_len())
    }

    #[test]
    fn last_nonzero_end_finds_garbage_anywhere() {
        let mut b = vec![0u8; 100];
        assert_eq!(last_nonzero_end(&b), 0);
        b[3] = 1;
        assert_eq!(last_nonzero_end(&b), 4);
        b[97] = 1;
        assert_eq!(last_nonzero_end(&b), 98);
        b[99] = 1;
        assert_eq!(last_nonzero_end(&b), 100);
    }
}
