//! The frame: the unit written to a segment, holding a batch of records under
//! one header and one CRC.
//!
//! # Frame layout (little-endian)
//!
//! | bytes | field | notes |
//! | --- | --- | --- |
//! | 0..4 | `body_len: u32` | bytes after the 40-byte header |
//! | 4..8 | `len_check: u32` | `fmix32(body_len ^ LEN_MASK)` (murmur3's finalizer, a bijection): a torn or garbage length is caught before it is trusted |
//! | 8..12 | `crc: u32` | `crc32(bytes 12..40+body_len) ^ CRC_MASK` |
//! | 12 | `magic: u8` | format version, [`MAGIC_V1`] |
//! | 13 | `attributes: u8` | reserved, 0 |
//! | 14..16 | reserved `u16` | 0 |
//! | 16..24 | `base_offset: u64` | offset of the first record |
//! | 24..28 | `record_count: u32` | at least 1 |
//! | 28..32 | `last_offset_delta: u32` | last record's offset minus `base_offset` |
//! | 32..40 | `max_timestamp: i64` | largest record timestamp in the frame |
//! | 40.. | records | `record_count` records, below |
//!
//! Both checks involve a non-zero constant, so the zero-filled preallocated
//! tail of a segment never validates as a frame (sled's trick): an all-zero
//! header fails `len_check` and has magic 0.
//!
//! # Record layout
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..4 | `len: u32` — bytes of this record after this field |
//! | 4..8 | `offset_delta: u32` |
//! | 8..16 | `timestamp: i64` (ms since the Unix epoch) |
//! | 16..20 | `key_len: i32` (-1 = no key) then the key bytes |
//! | .. | `value_len: i32` (-1 = tombstone) then the value bytes |
//! | .. | `header_count: u16`, then per header `name_len: u16`, name (UTF-8), `value_len: u32`, value |
//!
//! Offsets inside a frame are increasing but need not be dense, so a compacted
//! frame can keep the original offsets of the records it retains.

use crate::storage::record::Record;

/// Bytes in a frame header.
pub(crate) const HEADER_LEN: usize = 40;
/// Fixed bytes of a record besides its key, value and headers.
pub(crate) const RECORD_OVERHEAD: usize = 26;
/// Fixed bytes of one header besides its name and value.
const HEADER_ENTRY_OVERHEAD: usize = 6;
/// The frame format version written by this crate.
pub(crate) const MAGIC_V1: u8 = 0xB1;
/// XOR mask of the length checksum.
const LEN_MASK: u32 = 0x6D69_6C6C; // "mill"
/// XOR mask of the frame checksum.
const CRC_MASK: u32 = 0x706F_6E64; // "pond"

/// The validated fixed part of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub body_len: u32,
    pub crc: u32,
    pub base_offset: u64,
    pub record_count: u32,
    pub last_offset_delta: u32,
    pub max_timestamp: i64,
}

impl FrameHeader {
    /// Checks that the frame's offsets lie in `[segment_base, limit)`.
    pub(crate) fn check_range(&self, segment_base: u64, limit: Option<u64>) -> Result<(), FrameError> {
        let next = self.base_offset.checked_add(u64::from(self.last_offset_delta) + 1);
        let inside = self.base_offset >= segment_base && next.is_some_and(|n| limit.is_none_or(|l| n <= l));
        if inside {
            Ok(())
        } else {
            Err(FrameError::OutOfRange {
                base_offset: self.base_offset,
                next_offset: next.unwrap_or(u64::MAX),
                segment_base,
                limit,
            })
        }
    }

    /// Total frame length, header included.
    pub(crate) fn frame_len(&self) -> usize {
        HEADER_LEN + self.body_len as usize
    }

    /// The offset one past the frame's last record.
    pub(crate) fn next_offset(&self) -> u64 {
        self.base_offset + u64::from(self.last_offset_delta) + 1
    }
}

/// Why bytes are not a valid frame or record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// Fewer bytes than the header or the body need.
    Short,
    /// The bytes are zero: the preallocated, never-written tail.
    Zero,
    /// The length checksum does not match (a torn or garbage length).
    BadLength,
    /// Unknown format version.
    BadMagic(u8),
    /// A header field is impossible (zero records, offsets out of order...).
    BadHeader(&'static str),
    /// The frame checksum does not match.
    BadCrc,
    /// A record inside a checksummed frame is malformed.
    BadRecord(&'static str),
    /// A checksummed frame whose offsets lie outside its segment's range
    /// (below the segment's base offset, or at or past the next segment's):
    /// a misplaced or renamed file, never a torn write.
    OutOfRange {
        /// The frame's first offset.
        base_offset: u64,
        /// One past the frame's last offset.
        next_offset: u64,
        /// The segment's base offset.
        segment_base: u64,
        /// The next segment's base offset, if there is one.
        limit: Option<u64>,
    },
    /// A sealed segment's records end before the next segment's first
    /// offset: whole frames are missing.
    MissingOffsets {
        /// One past the segment's last record.
        next_offset: u64,
        /// The next segment's base offset.
        expected: u64,
    },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Short => f.write_str("frame is cut short"),
            FrameError::Zero => f.write_str("zero bytes where a frame should start"),
            FrameError::BadLength => f.write_str("frame length fails its checksum (torn write?)"),
            FrameError::BadMagic(m) => write!(f, "unknown frame format version {m:#04x}"),
            FrameError::BadHeader(why) => write!(f, "bad frame header: {why}"),
            FrameError::BadCrc => f.write_str("frame CRC mismatch"),
            FrameError::BadRecord(why) => write!(f, "malformed record: {why}"),
            FrameError::OutOfRange { base_offset, next_offset, segment_base, limit } => {
                write!(
                    f,
                    "frame holds offsets {base_offset}..{next_offset}, outside its segment (from {segment_base}"
                )?;
                match limit {
                    Some(l) => write!(f, " to {l}): a misplaced or renamed segment file"),
                    None => f.write_str(" on): a misplaced or renamed segment file"),
                }
            }
            FrameError::MissingOffsets { next_offset, expected } => write!(
                f,
                "the segment's records end at offset {next_offset} but the next segment starts at {expected}: \
                 frames are missing"
            ),
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn i32_at(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}
fn i64_at(b: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The length check: murmur3's 32-bit finalizer of the length XOR a mask.
/// The finalizer is a bijection with `fmix(0) = 0`, so every length has
/// exactly one valid check value, a garbage or half-written length matches
/// its check with probability 2^-32, and an all-zero header never passes
/// (the mask is non-zero). It costs a few instructions where a CRC of four
/// bytes costs about a hundred, on every append and every read.
fn len_check(len_bytes: &[u8]) -> u32 {
    let mut h = u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) ^ LEN_MASK;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// Encoded size of one record.
pub(crate) fn record_len(r: &Record<'_>) -> usize {
    RECORD_OVERHEAD
        + r.key.as_ref().map_or(0, |k| k.len())
        + r.value.as_ref().map_or(0, |v| v.len())
        + r.headers.iter().map(|(n, v)| HEADER_ENTRY_OVERHEAD + n.len() + v.len()).sum::<usize>()
}

/// Size of a frame holding one record of the largest allowed size.
pub(crate) fn max_single_record_frame(max_record_bytes: usize) -> usize {
    HEADER_LEN.saturating_add(max_record_bytes)
}

/// Checks the parts of a record whose width is limited by the format.
pub(crate) fn check_record_shape(r: &Record<'_>) -> Result<(), &'static str> {
    if r.headers.len() > usize::from(u16::MAX) {
        return Err("more than 65535 headers");
    }
    if r.headers.iter().any(|(n, _)| n.len() > usize::from(u16::MAX)) {
        return Err("a header name is longer than 65535 bytes");
    }
    Ok(())
}

/// Reads and checks a frame header at the start of `bytes` (which extends at
/// most to the end of committed or valid data). Does not check the body CRC.
pub(crate) fn read_header(bytes: &[u8]) -> Result<FrameHeader, FrameError> {
    let Some(head) = bytes.get(..HEADER_LEN) else {
        if bytes.iter().all(|&b| b == 0) {
            return Err(FrameError::Zero);
        }
        return Err(FrameError::Short);
    };
    let body_len = u32_at(head, 0).ok_or(FrameError::Short)?;
    let check = u32_at(head, 4).ok_or(FrameError::Short)?;
    if check != len_check(&head[0..4]) {
        if head.iter().all(|&b| b == 0) {
            return Err(FrameError::Zero);
        }
        return Err(FrameError::BadLength);
    }
    let magic = head[12];
    if magic != MAGIC_V1 {
        return Err(FrameError::BadMagic(magic));
    }
    let header = FrameHeader {
        body_len,
        crc: u32_at(head, 8).ok_or(FrameError::Short)?,
        base_offset: u64_at(head, 16).ok_or(FrameError::Short)?,
        record_count: u32_at(head, 24).ok_or(FrameError::Short)?,
        last_offset_delta: u32_at(head, 28).ok_or(FrameError::Short)?,
        max_timestamp: i64_at(head, 32).ok_or(FrameError::Short)?,
    };
    if header.record_count == 0 {
        return Err(FrameError::BadHeader("zero records"));
    }
    if u64::from(header.last_offset_delta) + 1 < u64::from(header.record_count) {
        return Err(FrameError::BadHeader("more records than offsets"));
    }
    if (body_len as usize) < header.record_count as usize * RECORD_OVERHEAD {
        return Err(FrameError::BadHeader("body too small for its records"));
    }
    if header.base_offset.checked_add(u64::from(header.last_offset_delta) + 1).is_none() {
        return Err(FrameError::BadHeader("offset overflow"));
    }
    if bytes.len() < header.frame_len() {
        return Err(FrameError::Short);
    }
    Ok(header)
}

/// Checks the CRC of a whole frame (`frame` is exactly `header.frame_len()` bytes).
pub(crate) fn check_crc(header: &FrameHeader, frame: &[u8]) -> Result<(), FrameError> {
    let covered = frame.get(12..header.frame_len()).ok_or(FrameError::Short)?;
    if crc32fast::hash(covered) ^ CRC_MASK == header.crc { Ok(()) } else { Err(FrameError::BadCrc) }
}

/// Reads and fully validates the frame at the start of `bytes`: header, CRC,
/// and the structure of every record. Used by recovery and index rebuilds.
pub(crate) fn validate_frame(bytes: &[u8]) -> Result<FrameHeader, FrameError> {
    let header = read_header(bytes)?;
    let frame = &bytes[..header.frame_len()];
    check_crc(&header, frame)?;
    let body = &frame[HEADER_LEN..];
    let mut pos = 0;
    let mut prev_delta: Option<u32> = None;
    for _ in 0..header.record_count {
        let rec = decode_record(body, pos)?;
        if prev_delta.is_some_and(|p| rec.offset_delta <= p) {
            return Err(FrameError::BadRecord("offsets not increasing"));
        }
        if rec.offset_delta > header.last_offset_delta {
            return Err(FrameError::BadRecord("offset beyond the frame's last offset"));
        }
        prev_delta = Some(rec.offset_delta);
        pos = rec.end;
    }
    if pos != body.len() {
        return Err(FrameError::BadRecord("bytes left over after the last record"));
    }
    if prev_delta != Some(header.last_offset_delta) {
        return Err(FrameError::BadRecord("last record's offset differs from the header"));
    }
    Ok(header)
}

/// Where a decoded record's parts lie, as positions within the frame body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordView {
    pub offset_delta: u32,
    pub timestamp: i64,
    /// `(start, len)` of the key, if any.
    pub key: Option<(u32, u32)>,
    /// `(start, len)` of the value; `None` for a tombstone.
    pub value: Option<(u32, u32)>,
    /// `(start, len)` of the header block.
    pub headers: (u32, u32),
    pub header_count: u16,
    /// Position just past this record.
    pub end: usize,
}

fn optional_bytes(body: &[u8], at: usize, limit: usize) -> Result<(Option<(u32, u32)>, usize), FrameError> {
    let len = i32_at(body, at).ok_or(FrameError::BadRecord("length field cut short"))?;
    let start = at + 4;
    if len == -1 {
        return Ok((None, start));
    }
    let len = usize::try_from(len).map_err(|_| FrameError::BadRecord("negative length"))?;
    let end =
        start.checked_add(len).filter(|&e| e <= limit).ok_or(FrameError::BadRecord("field overruns its record"))?;
    Ok((Some((start as u32, len as u32)), end))
}

/// Decodes the record starting at `pos` in a frame body, checking every
/// length against the record's own bounds. Never panics on any input.
pub(crate) fn decode_record(body: &[u8], pos: usize) -> Result<RecordView, FrameError> {
    let len = u32_at(body, pos).ok_or(FrameError::BadRecord("record length cut short"))? as usize;
    let end = (pos + 4)
        .checked_add(len)
        .filter(|&e| e <= body.len())
        .ok_or(FrameError::BadRecord("record overruns its frame"))?;
    if len < RECORD_OVERHEAD - 4 {
        return Err(FrameError::BadRecord("record shorter than its fixed fields"));
    }
    let offset_delta = u32_at(body, pos + 4).ok_or(FrameError::BadRecord("cut short"))?;
    let timestamp = i64_at(body, pos + 8).ok_or(FrameError::BadRecord("cut short"))?;
    let (key, at) = optional_bytes(body, pos + 16, end)?;
    let (value, at) = optional_bytes(body, at, end)?;
    let header_count =
        u16_at(body, at).filter(|_| at + 2 <= end).ok_or(FrameError::BadRecord("header count cut short"))?;
    let headers_start = at + 2;
    let mut rest = body.get(headers_start..end).ok_or(FrameError::BadRecord("cut short"))?;
    for _ in 0..header_count {
        let (_, _, r) = split_header(rest).ok_or(FrameError::BadRecord("malformed header"))?;
        rest = r;
    }
    if !rest.is_empty() {
        return Err(FrameError::BadRecord("bytes left over after the headers"));
    }
    Ok(RecordView {
        offset_delta,
        timestamp,
        key,
        value,
        headers: (headers_start as u32, (end - headers_start) as u32),
        header_count,
        end,
    })
}

/// Splits one header `(name, value)` off the front of a header block.
pub(crate) fn split_header(b: &[u8]) -> Option<(&str, &[u8], &[u8])> {
    let name_len = usize::from(u16_at(b, 0)?);
    let name = b.get(2..2 + name_len)?;
    let value_len = u32_at(b, 2 + name_len)? as usize;
    let value_start = 6 + name_len;
    let value = b.get(value_start..value_start.checked_add(value_len)?)?;
    let name = std::str::from_utf8(name).ok()?;
    Some((name, value, &b[value_start + value_len..]))
}

/// Writes one record at the start of `out`, returning the bytes written.
/// `out` must be at least `record_len(r)` long.
fn encode_record(out: &mut [u8], r: &Record<'_>, offset_delta: u32, timestamp: i64) -> usize {
    let total = record_len(r);
    let out = &mut out[..total];
    out[0..4].copy_from_slice(&((total - 4) as u32).to_le_bytes());
    out[4..8].copy_from_slice(&offset_delta.to_le_bytes());
    out[8..16].copy_from_slice(&timestamp.to_le_bytes());
    let mut at = 16;
    for field in [r.key.as_deref(), r.value.as_deref()] {
        match field {
            None => {
                out[at..at + 4].copy_from_slice(&(-1i32).to_le_bytes());
                at += 4;
            }
            Some(bytes) => {
                out[at..at + 4].copy_from_slice(&(bytes.len() as i32).to_le_bytes());
                at += 4;
                out[at..at + bytes.len()].copy_from_slice(bytes);
                at += bytes.len();
            }
        }
    }
    out[at..at + 2].copy_from_slice(&(r.headers.len() as u16).to_le_bytes());
    at += 2;
    for (name, value) in &r.headers {
        out[at..at + 2].copy_from_slice(&(name.len() as u16).to_le_bytes());
        at += 2;
        out[at..at + name.len()].copy_from_slice(name.as_bytes());
        at += name.len();
        out[at..at + 4].copy_from_slice(&(value.len() as u32).to_le_bytes());
        at += 4;
        out[at..at + value.len()].copy_from_slice(value);
        at += value.len();
    }
    debug_assert_eq!(at, total);
    total
}

/// Encodes a frame of `records` (with dense offsets from `base_offset`) into
/// `out`, which must be exactly `HEADER_LEN + Σ record_len` bytes. Records
/// without a timestamp get `now`. Returns the frame's header.
pub(crate) fn encode_frame<'r, 'a: 'r>(
    out: &mut [u8],
    base_offset: u64,
    records: impl Iterator<Item = &'r Record<'a>>,
    now: i64,
) -> FrameHeader {
    let mut at = HEADER_LEN;
    let mut count: u32 = 0;
    let mut max_ts = i64::MIN;
    for r in records {
        let ts = r.timestamp.unwrap_or(now);
        max_ts = max_ts.max(ts);
        at += encode_record(&mut out[at..], r, count, ts);
        count += 1;
    }
    debug_assert!(count > 0 && at == out.len());
    let body_len = (at - HEADER_LEN) as u32;
    out[0..4].copy_from_slice(&body_len.to_le_bytes());
    let check = len_check(&out[0..4]);
    out[4..8].copy_from_slice(&check.to_le_bytes());
    out[12] = MAGIC_V1;
    out[13] = 0;
    out[14..16].copy_from_slice(&0u16.to_le_bytes());
    out[16..24].copy_from_slice(&base_offset.to_le_bytes());
    out[24..28].copy_from_slice(&count.to_le_bytes());
    out[28..32].copy_from_slice(&(count - 1).to_le_bytes());
    out[32..40].copy_from_slice(&max_ts.to_le_bytes());
    let crc = crc32fast::hash(&out[12..at]) ^ CRC_MASK;
    out[8..12].copy_from_slice(&crc.to_le_bytes());
    FrameHeader { body_len, crc, base_offset, record_count: count, last_offset_delta: count - 1, max_timestamp: max_ts }
}

/// Writes a frame from already-encoded record bytes with explicit offset
/// deltas (used when rewriting frames). `body` must hold `record_count`
/// encoded records whose deltas end at `last_offset_delta`.
pub(crate) fn frame_from_body(
    base_offset: u64,
    record_count: u32,
    last_offset_delta: u32,
    max_ts: i64,
    body: &[u8],
) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_LEN + body.len()];
    out[0..4].copy_from_slice(&(body.len() as u32).to_le_bytes());
    let check = len_check(&out[0..4]);
    out[4..8].copy_from_slice(&check.to_le_bytes());
    out[12] = MAGIC_V1;
    out[16..24].copy_from_slice(&base_offset.to_le_bytes());
    out[24..28].copy_from_slice(&record_count.to_le_bytes());
    out[28..32].copy_from_slice(&last_offset_delta.to_le_bytes());
    out[32..40].copy_from_slice(&max_ts.to_le_bytes());
    out[HEADER_LEN..].copy_from_slice(body);
    let crc = crc32fast::hash(&out[12..]) ^ CRC_MASK;
    out[8..12].copy_from_slice(&crc.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(records: &[Record<'_>], base: u64) -> Vec<u8> {
        let len = HEADER_LEN + records.iter().map(record_len).sum::<usize>();
        let mut out = vec![0u8; len];
        encode_frame(&mut out, base, records.iter(), 1234);
        out
    }

    #[test]
    fn frame_round_trips_key_value_headers_and_timestamps() {
        let records = [
            Record::new(b"v1").key(b"k1").header("h", b"x").timestamp(10),
            Record::new(b"").timestamp(5),
            Record::tombstone(b"gone"),
        ];
        let bytes = encode(&records, 100);
        let h = validate_frame(&bytes).unwrap();
        assert_eq!((h.base_offset, h.record_count, h.last_offset_delta), (100, 3, 2));
        assert_eq!(h.next_offset(), 103);
        assert_eq!(h.max_timestamp, 1234);
        let body = &bytes[HEADER_LEN..];
        let r0 = decode_record(body, 0).unwrap();
        let (ks, kl) = r0.key.unwrap();
        assert_eq!(&body[ks as usize..(ks + kl) as usize], b"k1");
        let (vs, vl) = r0.value.unwrap();
        assert_eq!(&body[vs as usize..(vs + vl) as usize], b"v1");
        assert_eq!((r0.timestamp, r0.header_count), (10, 1));
        let (hs, hl) = r0.headers;
        let (n, v, rest) = split_header(&body[hs as usize..(hs + hl) as usize]).unwrap();
        assert_eq!((n, v, rest.len()), ("h", &b"x"[..], 0));
        let r1 = decode_record(body, r0.end).unwrap();
        assert_eq!((r1.key, r1.value.map(|v| v.1), r1.offset_delta), (None, Some(0), 1));
        let r2 = decode_record(body, r1.end).unwrap();
        assert_eq!((r2.value, r2.timestamp), (None, 1234));
    }

    #[test]
    fn zero_bytes_never_validate_as_a_frame() {
        assert_eq!(read_header(&[0u8; 4096]), Err(FrameError::Zero));
        assert_eq!(read_header(&[0u8; 10]), Err(FrameError::Zero));
    }

    #[test]
    fn torn_length_is_caught_before_it_is_trusted() {
        let mut bytes = encode(&[Record::new(b"hello")], 0);
        bytes[1] ^= 0x40; // the length now claims a huge body
        assert_eq!(read_header(&bytes), Err(FrameError::BadLength));
    }

    #[test]
    fn flipped_body_byte_fails_crc() {
        let mut bytes = encode(&[Record::new(b"hello")], 0);
        let last = bytes.len() - 3;
        bytes[last] ^= 1;
        assert_eq!(validate_frame(&bytes), Err(FrameError::BadCrc));
    }

    #[test]
    fn frame_cut_short_is_short() {
        let bytes = encode(&[Record::new(b"hello world")], 0);
        assert_eq!(read_header(&bytes[..bytes.len() - 1]), Err(FrameError::Short));
        assert_eq!(read_header(&bytes[..20]), Err(FrameError::Short));
    }

    #[test]
    fn unknown_magic_is_refused() {
        let mut bytes = encode(&[Record::new(b"x")], 0);
        bytes[12] = 0x02;
        assert_eq!(read_header(&bytes), Err(FrameError::BadMagic(2)));
    }

    #[test]
    fn sparse_offsets_inside_a_frame_are_accepted() {
        // Two records at deltas 0 and 5 (as compaction would leave them).
        let mut body = vec![0u8; record_len(&Record::new(b"a")) * 2];
        let n = encode_record(&mut body, &Record::new(b"a"), 0, 1);
        encode_record(&mut body[n..], &Record::new(b"b"), 5, 2);
        let frame = frame_from_body(10, 2, 5, 2, &body);
        let h = validate_frame(&frame).unwrap();
        assert_eq!(h.next_offset(), 16);
    }

    #[test]
    fn record_overrunning_its_frame_is_malformed_not_a_panic() {
        let mut body = vec![0u8; record_len(&Record::new(b"abc"))];
        encode_record(&mut body, &Record::new(b"abc"), 0, 1);
        body[16..20].copy_from_slice(&1000i32.to_le_bytes()); // key length beyond the record
        let frame = frame_from_body(0, 1, 0, 1, &body);
        assert!(matches!(validate_frame(&frame), Err(FrameError::BadRecord(_))));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = read_header(&bytes);
            let _ = validate_frame(&bytes);
            let _ = decode_record(&bytes, 0);
            let _ = split_header(&bytes);
        }

        #[test]
        fn encoded_frames_validate_and_decode_back(
            recs in proptest::collection::vec(
                (proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
                 proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
                 proptest::collection::vec(("[a-z]{0,8}", proptest::collection::vec(any::<u8>(), 0..16)), 0..3),
                 any::<i64>()),
                1..8),
            base in 0u64..1 << 40,
        ) {
            let records: Vec<Record<'_>> = recs.iter().map(|(k, v, hs, ts)| {
                let mut r = match v { Some(v) => Record::new(v.as_slice()), None => Record::tombstone(b"k") };
                r.key = k.as_deref().map(std::borrow::Cow::Borrowed).or(r.key);
                for (n, hv) in hs { r = r.header(n.as_str(), hv.as_slice()); }
                r.timestamp(*ts)
            }).collect();
            let bytes = encode(&records, base);
            let h = validate_frame(&bytes).unwrap();
            prop_assert_eq!(h.record_count as usize, records.len());
            let body = &bytes[HEADER_LEN..];
            let mut pos = 0;
            for (i, r) in records.iter().enumerate() {
                let v = decode_record(body, pos).unwrap();
                prop_assert_eq!(v.offset_delta as usize, i);
                prop_assert_eq!(Some(v.timestamp), r.timestamp);
                let get = |range: Option<(u32, u32)>| range.map(|(s, l)| &body[s as usize..(s + l) as usize]);
                prop_assert_eq!(get(v.key), r.key.as_deref());
                prop_assert_eq!(get(v.value), r.value.as_deref());
                pos = v.end;
            }
        }
    }
}
