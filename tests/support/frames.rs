//! Segment files as `src/storage/segment_header.rs` and
//! `src/storage/frame.rs` document them (on-disk format version 2), for
//! the tests that aim damage at byte positions: one frame walker instead
//! of a copy in every file.
//!
//! A segment is a 64-byte header, then frames. A frame is `body_len` (a
//! LEB128 varint), a one-byte length check, a `u32` CRC, then `body_len`
//! bytes: an attributes byte (version 2 in the high four bits; bit 0 = a
//! single record), the header's varints, and the records.

/// Bytes of the segment header; the first frame starts here.
pub const SEGMENT_HEADER: usize = 64;
/// The most bytes a frame header takes.
pub const MAX_FRAME_HEADER: usize = 51;
/// What `max_record_bytes` counts besides a record's key, value and
/// headers: its length, offset and timestamp fields at their widest.
pub const RECORD_FIELDS: usize = 20;
/// `segment_bytes` must be at least `max_record_bytes` plus this.
pub const SEGMENT_OVERHEAD: usize = SEGMENT_HEADER + MAX_FRAME_HEADER;

/// Bytes of `v` as a varint.
pub fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// The varint at `at` and its width.
pub fn varint(bytes: &[u8], at: usize) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for i in 0..10 {
        let b = *bytes.get(at + i)?;
        v |= u64::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// The length check byte of a body length (never 0).
pub fn len_check(body_len: u32) -> u8 {
    let mut h = body_len ^ 0x6D69_6C6C;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    (h % 255) as u8 + 1
}

/// Where one frame lies in a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Position of its first byte (the length field).
    pub start: usize,
    /// Bytes of the whole frame.
    pub len: usize,
    /// Bytes of the length field.
    pub len_bytes: usize,
    /// Bytes before its records (the frame header).
    pub header_len: usize,
}

impl Frame {
    /// One past its last byte.
    pub fn end(&self) -> usize {
        self.start + self.len
    }

    /// Position of its CRC field.
    pub fn crc_at(&self) -> usize {
        self.start + self.len_bytes + 1
    }

    /// Position of its attributes byte (the first the CRC covers).
    pub fn attributes_at(&self) -> usize {
        self.crc_at() + 4
    }

    /// Position of its first record.
    pub fn records_at(&self) -> usize {
        self.start + self.header_len
    }
}

/// The frame at `pos`, if its length passes its check, its attributes byte
/// is version 2's and it ends within `bytes`.
pub fn frame_at(bytes: &[u8], pos: usize) -> Option<Frame> {
    let (body_len, n) = varint(bytes, pos)?;
    let body_len = u32::try_from(body_len).ok()?;
    if *bytes.get(pos + n)? != len_check(body_len) || body_len == 0 {
        return None;
    }
    let attributes_at = pos + n + 5;
    let len = n + 5 + body_len as usize;
    let attributes = *bytes.get(attributes_at)?;
    if attributes >> 4 != 2 || pos + len > bytes.len() {
        return None;
    }
    let fields = if attributes & 1 == 1 { 2 } else { 5 };
    let mut at = attributes_at + 1;
    for _ in 0..fields {
        at += varint(bytes, at)?.1;
    }
    Some(Frame { start: pos, len, len_bytes: n, header_len: at - pos })
}

/// The frames of a segment's bytes, from just after its header up to the
/// first position that does not hold a frame (the zero tail, damage) or
/// the end.
pub fn frames(bytes: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut pos = SEGMENT_HEADER;
    while let Some(f) = frame_at(bytes, pos) {
        out.push(f);
        pos = f.end();
    }
    out
}

/// `(start, len)` of each frame of a segment's bytes (see [`frames`]).
pub fn frame_bounds(bytes: &[u8]) -> Vec<(usize, usize)> {
    frames(bytes).iter().map(|f| (f.start, f.len)).collect()
}

/// What `max_record_bytes` counts for a record with a key of `key` bytes
/// (if any), a value of `value` bytes (if any, else a tombstone) and
/// headers of `(name, value)` lengths.
pub fn record_size(key: Option<usize>, value: Option<usize>, headers: &[(usize, usize)]) -> usize {
    let optional = |n: Option<usize>| n.map_or(1, |n| varint_len(n as u64 + 1) + n);
    RECORD_FIELDS
        + optional(key)
        + optional(value)
        + varint_len(headers.len() as u64)
        + headers.iter().map(|&(n, v)| varint_len(n as u64) + n + varint_len(v as u64) + v).sum::<usize>()
}
