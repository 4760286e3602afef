//! The sparse offset/time index of a segment, and its file `<base>.index`.
//!
//! One entry is kept every `index_interval_bytes` of frames. Each entry names
//! a frame by its base offset (relative to the segment) and byte position, and
//! records the largest record timestamp seen *before* that frame, so both
//! offset and timestamp look-ups can start scanning from an entry instead of
//! from the segment's start.
//!
//! # File layout (little-endian)
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..4 | magic `"MPIX"` |
//! | 4..8 | version `u32` = 1 |
//! | 8..12 | entry count `u32` |
//! | 12..16 | reserved, 0 |
//! | 16..24 | `valid_bytes: u64` — committed length of the segment |
//! | 24..32 | `next_offset: u64` — one past the segment's last record |
//! | 32..40 | `max_timestamp: i64` — largest timestamp in the segment |
//! | 40..40+16n | entries: `rel_offset: u32`, `position: u32`, `max_ts_before: i64` |
//! | last 4 | `crc32` of everything before it |
//!
//! The index is derived data: a missing or damaged index file is rebuilt by
//! scanning (and checksumming) its segment, so the file is written with a
//! rename but not fsynced.

use std::path::Path;

use crate::error::{Error, Result};

const MAGIC: &[u8; 4] = b"MPIX";
const VERSION: u32 = 1;
const FIXED: usize = 40;
const ENTRY: usize = 16;

/// One sparse index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    /// Base offset of the frame, minus the segment's base offset.
    pub rel_offset: u32,
    /// Byte position of the frame in the segment.
    pub position: u32,
    /// Largest record timestamp in the segment before this frame
    /// (`i64::MIN` if none).
    pub max_ts_before: i64,
}

/// A segment's index: entries plus the facts a sealed segment needs to be
/// opened without reading it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct SegmentIndex {
    pub entries: Vec<IndexEntry>,
    pub valid_bytes: u64,
    pub next_offset: u64,
    pub max_timestamp: i64,
}

impl SegmentIndex {
    /// The entry to start scanning from to find `offset` (relative to the
    /// segment base): the last entry whose frame starts at or before it.
    pub(crate) fn lookup_offset(entries: &[IndexEntry], rel_offset: u64) -> Option<IndexEntry> {
        let i = entries.partition_point(|e| u64::from(e.rel_offset) <= rel_offset);
        i.checked_sub(1).map(|i| entries[i])
    }

    /// The entry to start scanning from to find the first record with a
    /// timestamp at or after `ts`: the last entry before which every record
    /// is older than `ts`.
    pub(crate) fn lookup_timestamp(entries: &[IndexEntry], ts: i64) -> Option<IndexEntry> {
        let i = entries.partition_point(|e| e.max_ts_before < ts);
        i.checked_sub(1).map(|i| entries[i])
    }

    /// Serializes to the file layout above.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FIXED + ENTRY * self.entries.len() + 4);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&self.valid_bytes.to_le_bytes());
        out.extend_from_slice(&self.next_offset.to_le_bytes());
        out.extend_from_slice(&self.max_timestamp.to_le_bytes());
        for e in &self.entries {
            out.extend_from_slice(&e.rel_offset.to_le_bytes());
            out.extend_from_slice(&e.position.to_le_bytes());
            out.extend_from_slice(&e.max_ts_before.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses and checks an index file's bytes. `path` is for the error.
    pub(crate) fn decode(bytes: &[u8], path: &Path) -> Result<SegmentIndex> {
        let bad = |reason: &str| Error::CorruptMetadata { path: path.to_path_buf(), reason: reason.to_string() };
        if bytes.len() < FIXED + 4 {
            return Err(bad("index file too short"));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        let le4 = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let le8 = |b: &[u8]| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        if crc32fast::hash(body) != le4(crc) {
            return Err(bad("index checksum mismatch"));
        }
        if &body[0..4] != MAGIC {
            return Err(bad("not an index file (bad magic)"));
        }
        if le4(&body[4..8]) != VERSION {
            return Err(bad("unknown index version"));
        }
        let count = le4(&body[8..12]) as usize;
        if body.len() != FIXED + count.saturating_mul(ENTRY) {
            return Err(bad("index entry count does not match its length"));
        }
        let mut entries = Vec::with_capacity(count);
        for chunk in body[FIXED..].chunks_exact(ENTRY) {
            entries.push(IndexEntry {
                rel_offset: le4(&chunk[0..4]),
                position: le4(&chunk[4..8]),
                max_ts_before: le8(&chunk[8..16]) as i64,
            });
        }
        let ordered = entries.windows(2).all(|w| {
            w[0].rel_offset < w[1].rel_offset
                && w[0].position < w[1].position
                && w[0].max_ts_before <= w[1].max_ts_before
        });
        if !ordered {
            return Err(bad("index entries out of order"));
        }
        let index = SegmentIndex {
            entries,
            valid_bytes: le8(&body[16..24]),
            next_offset: le8(&body[24..32]),
            max_timestamp: le8(&body[32..40]) as i64,
        };
        if index.entries.last().is_some_and(|e| u64::from(e.position) >= index.valid_bytes) {
            return Err(bad("index entry points past the segment's end"));
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> SegmentIndex {
        SegmentIndex {
            entries: vec![
                IndexEntry { rel_offset: 0, position: 0, max_ts_before: i64::MIN },
                IndexEntry { rel_offset: 40, position: 4100, max_ts_before: 50 },
                IndexEntry { rel_offset: 90, position: 8300, max_ts_before: 80 },
            ],
            valid_bytes: 9000,
            next_offset: 1100,
            max_timestamp: 99,
        }
    }

    #[test]
    fn index_round_trips_through_its_file_format() {
        let idx = sample();
        let bytes = idx.encode();
        assert_eq!(SegmentIndex::decode(&bytes, Path::new("x.index")).unwrap(), idx);
    }

    #[test]
    fn index_lookup_finds_the_frame_at_or_before_an_offset() {
        let e = sample().entries;
        assert_eq!(SegmentIndex::lookup_offset(&e, 0).unwrap().position, 0);
        assert_eq!(SegmentIndex::lookup_offset(&e, 39).unwrap().position, 0);
        assert_eq!(SegmentIndex::lookup_offset(&e, 40).unwrap().position, 4100);
        assert_eq!(SegmentIndex::lookup_offset(&e, 1000).unwrap().position, 8300);
        assert_eq!(SegmentIndex::lookup_offset(&[], 5), None);
    }

    #[test]
    fn index_lookup_by_time_starts_before_the_first_newer_record() {
        let e = sample().entries;
        // Every record before position 4100 is older than 51.
        assert_eq!(SegmentIndex::lookup_timestamp(&e, 51).unwrap().position, 4100);
        assert_eq!(SegmentIndex::lookup_timestamp(&e, 50).unwrap().position, 0);
        assert_eq!(SegmentIndex::lookup_timestamp(&e, 1000).unwrap().position, 8300);
    }

    #[test]
    fn damaged_index_file_is_refused() {
        let mut bytes = sample().encode();
        bytes[45] ^= 1;
        assert!(matches!(SegmentIndex::decode(&bytes, Path::new("x")), Err(Error::CorruptMetadata { .. })));
        assert!(SegmentIndex::decode(&bytes[..10], Path::new("x")).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_index_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = SegmentIndex::decode(&bytes, Path::new("fuzz.index"));
        }
    }
}
