//! The frame: the unit written to a segment, holding a batch of records under
//! one header and one CRC (format version 2).
//!
//! Integers marked *varint* are unsigned LEB128 (7 bits a byte, low bits
//! first, at most 10 bytes, no trailing zero continuation byte); *zigzag*
//! varints hold signed values (`(v << 1) ^ (v >> 63)`). Offsets are deltas
//! from the segment's base offset and timestamps deltas from the segment
//! header's base timestamp (see `segment_header.rs`), so a frame only means
//! something in the segment it was written to.
//!
//! # Frame layout
//!
//! | bytes | field | notes |
//! | --- | --- | --- |
//! | 1..5 | `body_len`: varint | bytes after the `crc` field, at least 1 |
//! | 1 | `len_check: u8` | `fmix32(body_len ^ LEN_MASK) % 255 + 1` (murmur3's finalizer): never 0, so zero-filled space never checks; a torn or garbage length is caught before it is trusted |
//! | 4 | `crc: u32` LE | CRC-32 of every byte after this field to the end of the frame, started from the segment header's CRC instead of 0, `^ CRC_MASK` |
//! | 1 | `attributes: u8` | version ([`VERSION`] = 2) in the high 4 bits, flags in the low 4: bit 0 = [single record](FLAG_SINGLE), bit 1 = [transactional](FLAG_TRANSACTIONAL), bit 2 = [commit marker](FLAG_CONTROL); bit 3 is 0. Never 0 |
//! | 1..10 | `base_offset_delta`: varint | the frame's base offset minus the segment's base offset |
//! | 1..5 | `record_count`: varint | at least 1; omitted for a single-record frame (1) |
//! | 1..5 | `last_offset_delta`: varint | last record's offset minus the frame's base offset; omitted for a single-record frame (0) |
//! | 1..10 | `base_timestamp_delta`: zigzag varint | the frame's base timestamp minus the segment's base timestamp (wrapping) |
//! | 1..10 | `max_timestamp_delta`: varint | the frame's largest timestamp minus its base timestamp (wrapping); omitted for a single-record frame (0) |
//! | 8 | `transaction: u64` LE | only in a transactional frame: the id of the transaction that wrote it |
//! | .. | records | `record_count` records, below |
//!
//! # Transactions
//!
//! A transaction writes its records on each partition as transactional
//! frames carrying its id, all in one segment, and after its decision a
//! *commit marker*: a single-record frame flagged both transactional and
//! control, with the same id, whose record has no key, the value
//! [`MARKER_COMMIT`] and no headers. The marker takes one offset, as
//! Kafka's do; consumers skip it. Transactional frames are committed
//! exactly when their marker follows them: a reader in another process
//! holds them back until it sees the marker, and recovery either adds the
//! marker (the transaction log holds the decision) or removes frames left
//! without one. Nothing else is ever written between a transaction's
//! frames and its marker.
//!
//! Starting the CRC from the segment header's binds every frame to its
//! segment: offsets and timestamps are stored relative to the segment, so
//! a frame copied into another segment would otherwise validate there at
//! other offsets; instead it fails its CRC, and is never served.
//!
//! A frame's header is 9 to 51 bytes ([`MAX_HEADER_LEN`]), 8 more in a
//! transactional frame; for one record in a fresh segment, 9 to 15. Both checks involve a non-zero constant, so
//! the zero-filled preallocated tail of a segment never validates as a
//! frame (sled's trick): a zero length has a check byte that is not zero.
//!
//! # Record layout
//!
//! | bytes | field | notes |
//! | --- | --- | --- |
//! | 1..5 | `len`: varint | bytes of this record after this field; omitted in a single-record frame (the record runs to the frame's end) |
//! | 1..5 | `offset_delta`: varint | offset minus the frame's base offset; omitted in a single-record frame (0) |
//! | 1..10 | `timestamp_delta`: zigzag varint | timestamp (ms since the Unix epoch) minus the frame's base timestamp; omitted in a single-record frame (0) |
//! | 1..5 | `key_len + 1`: varint | 0 = no key; then the key bytes |
//! | 1..5 | `value_len + 1`: varint | 0 = tombstone; then the value bytes |
//! | 1..3 | `header_count`: varint | at most 65535; then per header: `name_len` varint, name (UTF-8), `value_len` varint, value |
//!
//! A single record of `v` bytes (no key, no headers, `v < 127`) costs
//! `v + 3` bytes in its frame body, and the frame `v + 12` to `v + 18` in all.
//!
//! Offsets inside a frame are increasing but need not be dense, so a compacted
//! frame can keep the original offsets of the records it retains.

use std::borrow::Cow;

pub(crate) use crate::storage::frame_error::FrameError;
use crate::storage::record::Record;

/// The frame format version written and read, in the high bits of the
/// attributes byte.
pub(crate) const VERSION: u8 = 2;
/// Attributes flag: the frame holds one record, at its base offset and base
/// timestamp; the record count, last offset delta, max timestamp delta and
/// the record's length, offset and timestamp fields are omitted.
pub(crate) const FLAG_SINGLE: u8 = 0x01;
/// Attributes flag: the frame was written by a transaction, whose id follows
/// the header's other fields.
pub(crate) const FLAG_TRANSACTIONAL: u8 = 0x02;
/// Attributes flag (with [`FLAG_TRANSACTIONAL`] and [`FLAG_SINGLE`]): the
/// frame is the commit marker of its transaction, not data.
pub(crate) const FLAG_CONTROL: u8 = 0x04;
/// The value of a commit marker's record.
pub(crate) const MARKER_COMMIT: u8 = 1;
/// The most bytes a frame header takes (every varint at its widest).
pub(crate) const MAX_HEADER_LEN: usize = 5 + 1 + 4 + 1 + 10 + 5 + 5 + 10 + 10;
/// The most bytes a transactional frame's header takes (with its id).
pub(crate) const MAX_TXN_HEADER_LEN: usize = MAX_HEADER_LEN + 8;
/// The most bytes a commit marker takes.
pub(crate) const MARKER_LEN: usize = MAX_TXN_HEADER_LEN + 4;
/// The most bytes a record's length, offset and timestamp fields take.
pub(crate) const RECORD_OVERHEAD: usize = 5 + 5 + 10;
/// The fewest bytes a record of a multi-record frame takes.
const MIN_RECORD: usize = 6;
/// The fewest bytes the record of a single-record frame takes.
const MIN_SINGLE_RECORD: usize = 3;
/// XOR mask of the length check.
const LEN_MASK: u32 = 0x6D69_6C6C; // "mill"
/// XOR mask of the frame checksum.
const CRC_MASK: u32 = 0x706F_6E64; // "pond"

/// What frames are relative to: their segment's base offset and base
/// timestamp, from the segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Origin {
    pub base_offset: u64,
    pub base_timestamp: i64,
    /// Where every frame CRC of the segment starts: the segment header's CRC.
    pub crc_seed: u32,
}

fn frame_crc(seed: u32, covered: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(seed);
    h.update(covered);
    h.finalize() ^ CRC_MASK
}

/// The validated header of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    /// Bytes of the whole frame.
    pub len: u32,
    /// Bytes before the records (where the body handed to
    /// [`decode_record`] starts).
    pub header_len: u32,
    /// Where the bytes the CRC covers start.
    crc_from: u32,
    /// The CRC's starting value (the segment's).
    crc_seed: u32,
    pub crc: u32,
    pub single: bool,
    pub base_offset: u64,
    pub record_count: u32,
    pub last_offset_delta: u32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    /// The id of the transaction that wrote the frame, if one did.
    pub txn: Option<u64>,
    /// The frame is a transaction's commit marker, not data.
    pub control: bool,
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
        self.len as usize
    }

    /// The offset one past the frame's last record.
    pub(crate) fn next_offset(&self) -> u64 {
        self.base_offset + u64::from(self.last_offset_delta) + 1
    }
}

/// Bytes of `v` as a varint.
pub(crate) fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Reads forward through bytes, never past their end.
struct Reader<'b> {
    b: &'b [u8],
    at: usize,
}

impl Reader<'_> {
    /// A varint of at most `max_bytes` bytes; `None` if cut short, too long
    /// or not minimal (a trailing zero byte).
    fn varint_max(&mut self, max_bytes: usize) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..max_bytes.min(10) {
            let byte = *self.b.get(self.at + i)?;
            if (i == 9 && byte > 1) || (i > 0 && byte == 0) {
                return None;
            }
            v |= u64::from(byte & 0x7F) << (7 * i);
            if byte & 0x80 == 0 {
                self.at += i + 1;
                return Some(v);
            }
        }
        None
    }

    fn varint(&mut self) -> Option<u64> {
        self.varint_max(10)
    }

    fn varint_u32(&mut self) -> Option<u32> {
        u32::try_from(self.varint_max(5)?).ok()
    }

    /// `n` bytes' `(start, len)`, or `None` if they run past `limit`.
    fn skip(&mut self, n: u64, limit: usize) -> Option<(usize, usize)> {
        let n = usize::try_from(n).ok()?;
        let end = self.at.checked_add(n).filter(|&e| e <= limit)?;
        let start = self.at;
        self.at = end;
        Some((start, n))
    }
}

/// Writes forward into a buffer the caller sized.
struct Put<'b> {
    b: &'b mut [u8],
    at: usize,
}

impl Put<'_> {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.b[self.at] = (v as u8) | 0x80;
            v >>= 7;
            self.at += 1;
        }
        self.b[self.at] = v as u8;
        self.at += 1;
    }

    fn bytes(&mut self, s: &[u8]) {
        self.b[self.at..self.at + s.len()].copy_from_slice(s);
        self.at += s.len();
    }

    /// A `len + 1` varint and the bytes, or a 0 varint for `None`.
    fn optional(&mut self, s: Option<&[u8]>) {
        match s {
            None => self.varint(0),
            Some(s) => {
                self.varint(s.len() as u64 + 1);
                self.bytes(s);
            }
        }
    }
}

/// The length check: murmur3's 32-bit finalizer of the length XOR a mask,
/// folded into 1..=255, so a zero byte never checks. A garbage or
/// half-written length passes with probability 1/255, and then still has
/// to pass the attributes byte, the header's plausibility checks and the
/// CRC. It costs a few instructions where a CRC costs a hundred, on every
/// append and every read.
fn len_check(body_len: u32) -> u8 {
    let mut h = body_len ^ LEN_MASK;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    (h % 255) as u8 + 1
}

fn optional_len(s: Option<&[u8]>) -> usize {
    s.map_or(1, |s| varint_len(s.len() as u64 + 1) + s.len())
}

/// A record's header block: its `(name, value)` pairs, or (when rewriting)
/// the already-encoded block and its count.
#[derive(Clone, Copy)]
enum HeaderBlock<'r> {
    List(&'r [(Cow<'r, str>, Cow<'r, [u8]>)]),
    Raw { count: u16, block: &'r [u8] },
}

impl HeaderBlock<'_> {
    fn count(&self) -> usize {
        match self {
            HeaderBlock::List(l) => l.len(),
            HeaderBlock::Raw { count, .. } => usize::from(*count),
        }
    }

    /// Bytes of the header count and the headers.
    fn len(&self) -> usize {
        let entries = match self {
            HeaderBlock::List(l) => {
                l.iter().map(|(n, v)| varint_len(n.len() as u64) + n.len() + varint_len(v.len() as u64) + v.len()).sum()
            }
            HeaderBlock::Raw { block, .. } => block.len(),
        };
        varint_len(self.count() as u64) + entries
    }

    fn write(&self, put: &mut Put<'_>) {
        put.varint(self.count() as u64);
        match self {
            HeaderBlock::List(l) => {
                for (n, v) in l.iter() {
                    put.varint(n.len() as u64);
                    put.bytes(n.as_bytes());
                    put.varint(v.len() as u64);
                    put.bytes(v);
                }
            }
            HeaderBlock::Raw { block, .. } => put.bytes(block),
        }
    }
}

/// A record as the encoder sees it.
#[derive(Clone, Copy)]
struct Enc<'r> {
    offset_delta: u32,
    timestamp: i64,
    key: Option<&'r [u8]>,
    value: Option<&'r [u8]>,
    headers: HeaderBlock<'r>,
}

impl Enc<'_> {
    /// Bytes after the length field (all of the record, if `single`).
    fn inner_len(&self, single: bool, base_ts: i64) -> usize {
        let fixed = if single {
            0
        } else {
            varint_len(u64::from(self.offset_delta)) + varint_len(zigzag(self.timestamp.wrapping_sub(base_ts)))
        };
        fixed + optional_len(self.key) + optional_len(self.value) + self.headers.len()
    }

    fn len(&self, single: bool, base_ts: i64) -> usize {
        let inner = self.inner_len(single, base_ts);
        if single { inner } else { varint_len(inner as u64) + inner }
    }

    fn write(&self, put: &mut Put<'_>, single: bool, base_ts: i64) {
        if !single {
            put.varint(self.inner_len(false, base_ts) as u64);
            put.varint(u64::from(self.offset_delta));
            put.varint(zigzag(self.timestamp.wrapping_sub(base_ts)));
        }
        put.optional(self.key);
        put.optional(self.value);
        self.headers.write(put);
    }
}

/// An upper bound of one record's encoded size (exact but for its length,
/// offset and timestamp fields, counted at their widest: in a frame of one
/// record they are not written at all).
pub(crate) fn record_len(r: &Record<'_>) -> usize {
    RECORD_OVERHEAD
        + optional_len(r.key.as_deref())
        + optional_len(r.value.as_deref())
        + HeaderBlock::List(&r.headers).len()
}

/// The most bytes a frame holding one record of the largest allowed size takes.
pub(crate) fn max_single_record_frame(max_record_bytes: usize) -> usize {
    MAX_HEADER_LEN.saturating_add(max_record_bytes)
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
/// most to the end of committed or valid data) of a segment whose frames are
/// relative to `origin`. Does not check the CRC.
pub(crate) fn read_header(bytes: &[u8], origin: Origin) -> Result<FrameHeader, FrameError> {
    // Zero-filled space: the first bytes a frame header would hold are zero.
    let zero = || bytes.iter().take(16).all(|&b| b == 0);
    let mut r = Reader { b: bytes, at: 0 };
    let Some(body_len) = r.varint_max(5) else {
        return Err(if zero() {
            FrameError::Zero
        } else if bytes.len() < 5 && bytes.iter().all(|&b| b & 0x80 != 0) {
            FrameError::Short
        } else {
            FrameError::BadLength
        });
    };
    let Some(&check) = bytes.get(r.at) else {
        return Err(if zero() { FrameError::Zero } else { FrameError::Short });
    };
    let body_len = u32::try_from(body_len).map_err(|_| FrameError::BadLength)?;
    if check != len_check(body_len) {
        return Err(if zero() { FrameError::Zero } else { FrameError::BadLength });
    }
    let crc_at = r.at + 1;
    let crc_from = crc_at + 4;
    let len = crc_from.checked_add(body_len as usize).ok_or(FrameError::BadLength)?;
    if len > u32::MAX as usize {
        return Err(FrameError::BadLength);
    }
    if bytes.len() < len {
        return Err(FrameError::Short);
    }
    let crc = u32::from_le_bytes([bytes[crc_at], bytes[crc_at + 1], bytes[crc_at + 2], bytes[crc_at + 3]]);
    let mut r = Reader { b: &bytes[..len], at: crc_from };
    let cut = FrameError::BadHeader("header field cut short or malformed");
    let attributes = *bytes.get(crc_from).ok_or(FrameError::BadHeader("empty frame"))?;
    r.at += 1;
    let flags = attributes & 0x0F;
    let known = FLAG_SINGLE | FLAG_TRANSACTIONAL | FLAG_CONTROL;
    let control = flags & FLAG_CONTROL != 0;
    if attributes >> 4 != VERSION || flags & !known != 0 || (control && flags != known) {
        return Err(FrameError::BadMagic(attributes));
    }
    let single = attributes & FLAG_SINGLE != 0;
    let delta = r.varint().ok_or(cut)?;
    let base_offset = origin.base_offset.checked_add(delta).ok_or(FrameError::BadHeader("offset overflow"))?;
    let (record_count, last_offset_delta) =
        if single { (1, 0) } else { (r.varint_u32().ok_or(cut)?, r.varint_u32().ok_or(cut)?) };
    let base_timestamp = origin.base_timestamp.wrapping_add(unzigzag(r.varint().ok_or(cut)?));
    let max_timestamp =
        if single { base_timestamp } else { base_timestamp.wrapping_add(r.varint().ok_or(cut)? as i64) };
    let txn = if flags & FLAG_TRANSACTIONAL != 0 {
        let id = r.b.get(r.at..r.at + 8).ok_or(cut)?;
        r.at += 8;
        Some(u64::from_le_bytes(id.try_into().map_err(|_| cut)?))
    } else {
        None
    };
    let header = FrameHeader {
        len: len as u32,
        header_len: r.at as u32,
        crc_from: crc_from as u32,
        crc_seed: origin.crc_seed,
        crc,
        single,
        base_offset,
        record_count,
        last_offset_delta,
        base_timestamp,
        max_timestamp,
        txn,
        control,
    };
    if record_count == 0 {
        return Err(FrameError::BadHeader("zero records"));
    }
    if u64::from(last_offset_delta) + 1 < u64::from(record_count) {
        return Err(FrameError::BadHeader("more records than offsets"));
    }
    let min = if single { MIN_SINGLE_RECORD } else { MIN_RECORD };
    if len - r.at < record_count as usize * min {
        return Err(FrameError::BadHeader("body too small for its records"));
    }
    if base_offset.checked_add(u64::from(last_offset_delta) + 1).is_none() {
        return Err(FrameError::BadHeader("offset overflow"));
    }
    Ok(header)
}

/// Checks the CRC of a whole frame (`frame` is at least `header.frame_len()` bytes).
pub(crate) fn check_crc(header: &FrameHeader, frame: &[u8]) -> Result<(), FrameError> {
    let covered = frame.get(header.crc_from as usize..header.frame_len()).ok_or(FrameError::Short)?;
    if frame_crc(header.crc_seed, covered) == header.crc { Ok(()) } else { Err(FrameError::BadCrc) }
}

/// The records of a frame: the bytes [`decode_record`] reads.
pub(crate) fn records_of<'b>(header: &FrameHeader, frame: &'b [u8]) -> &'b [u8] {
    frame.get(header.header_len as usize..header.frame_len()).unwrap_or(&[])
}

/// Reads and fully validates the frame at the start of `bytes`: header, CRC,
/// and the structure of every record. Used by recovery and index rebuilds.
pub(crate) fn validate_frame(bytes: &[u8], origin: Origin) -> Result<FrameHeader, FrameError> {
    let header = read_header(bytes, origin)?;
    check_crc(&header, bytes)?;
    let body = records_of(&header, bytes);
    let mut pos = 0;
    let mut prev_delta: Option<u32> = None;
    for _ in 0..header.record_count {
        let rec = decode_record(body, pos, &header)?;
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
    if header.control {
        let rec = decode_record(body, 0, &header)?;
        let value = rec.value.and_then(|(s, l)| body.get(s as usize..(s + l) as usize));
        if rec.key.is_some() || rec.header_count != 0 || value != Some(&[MARKER_COMMIT][..]) {
            return Err(FrameError::BadRecord("a commit marker's record is not a commit"));
        }
    }
    Ok(header)
}

/// Where a decoded record's parts lie, as positions within the frame's
/// records (see [`records_of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordView {
    pub offset_delta: u32,
    pub timestamp: i64,
    /// `(start, len)` of the key, if any.
    pub key: Option<(u32, u32)>,
    /// `(start, len)` of the value; `None` for a tombstone.
    pub value: Option<(u32, u32)>,
    /// `(start, len)` of the headers (after their count).
    pub headers: (u32, u32),
    pub header_count: u16,
    /// Position just past this record.
    pub end: usize,
}

/// Decodes the record starting at `pos` in the records of the frame
/// `header` describes, checking every length against the record's own
/// bounds. Never panics on any input.
pub(crate) fn decode_record(body: &[u8], pos: usize, header: &FrameHeader) -> Result<RecordView, FrameError> {
    let mut r = Reader { b: body, at: pos };
    let cut = FrameError::BadRecord("field cut short or malformed");
    let (end, offset_delta, timestamp) = if header.single {
        if pos != 0 {
            return Err(FrameError::BadRecord("a single-record frame holds one record"));
        }
        (body.len(), 0, header.base_timestamp)
    } else {
        let len = r.varint_u32().ok_or(FrameError::BadRecord("record length cut short"))?;
        let end =
            r.at.checked_add(len as usize)
                .filter(|&e| e <= body.len())
                .ok_or(FrameError::BadRecord("record overruns its frame"))?;
        let offset_delta = r.varint_u32().filter(|_| r.at <= end).ok_or(cut)?;
        let ts = r.varint().filter(|_| r.at <= end).ok_or(cut)?;
        (end, offset_delta, header.base_timestamp.wrapping_add(unzigzag(ts)))
    };
    let optional = |r: &mut Reader<'_>| -> Result<Option<(u32, u32)>, FrameError> {
        let n = r.varint().filter(|_| r.at <= end).ok_or(cut)?;
        if n == 0 {
            return Ok(None);
        }
        let (s, l) = r.skip(n - 1, end).ok_or(FrameError::BadRecord("field overruns its record"))?;
        Ok(Some((s as u32, l as u32)))
    };
    let key = optional(&mut r)?;
    let value = optional(&mut r)?;
    let header_count = r
        .varint()
        .filter(|_| r.at <= end)
        .and_then(|n| u16::try_from(n).ok())
        .ok_or(FrameError::BadRecord("header count cut short or too large"))?;
    let headers_start = r.at;
    let mut rest = body.get(headers_start..end).ok_or(cut)?;
    for _ in 0..header_count {
        let (_, _, next) = split_header(rest).ok_or(FrameError::BadRecord("malformed header"))?;
        rest = next;
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
    let mut r = Reader { b, at: 0 };
    let name_len = r.varint()?;
    let (ns, nl) = r.skip(name_len, b.len())?;
    let value_len = r.varint()?;
    let (vs, vl) = r.skip(value_len, b.len())?;
    let name = std::str::from_utf8(&b[ns..ns + nl]).ok()?;
    Some((name, &b[vs..vs + vl], &b[r.at..]))
}

/// Writes a frame of `records` at the start of `out` (at least
/// [`MAX_HEADER_LEN`] plus the records' encoded sizes long). Returns its header.
#[inline(always)]
fn encode<'r>(
    out: &mut [u8],
    origin: Origin,
    base_offset: u64,
    records: impl Iterator<Item = Enc<'r>> + Clone,
    txn: Option<u64>,
    control: bool,
) -> FrameHeader {
    let mut count: u32 = 0;
    let mut first: Option<Enc<'r>> = None;
    let mut last_delta = 0;
    let mut max_ts = i64::MIN;
    for r in records.clone() {
        first = first.or(Some(r));
        count += 1;
        last_delta = r.offset_delta;
        max_ts = max_ts.max(r.timestamp);
    }
    let Some(first) = first else { unreachable!("a frame holds at least one record") };
    let single = count == 1 && first.offset_delta == 0;
    let base_ts = first.timestamp;
    let records_len: usize = records.clone().map(|r| r.len(single, base_ts)).sum();
    let offset_delta = base_offset - origin.base_offset;
    let ts_delta = zigzag(base_ts.wrapping_sub(origin.base_timestamp));
    let max_delta = max_ts.wrapping_sub(base_ts) as u64;
    let fields = 1
        + varint_len(offset_delta)
        + varint_len(ts_delta)
        + if single {
            0
        } else {
            varint_len(u64::from(count)) + varint_len(u64::from(last_delta)) + varint_len(max_delta)
        }
        + if txn.is_some() { 8 } else { 0 };
    let body_len = (fields + records_len) as u32;
    let mut put = Put { b: out, at: 0 };
    put.varint(u64::from(body_len));
    put.bytes(&[len_check(body_len)]);
    let crc_at = put.at;
    put.at += 4;
    let crc_from = put.at;
    let flags = if single { FLAG_SINGLE } else { 0 }
        | if txn.is_some() { FLAG_TRANSACTIONAL } else { 0 }
        | if control { FLAG_CONTROL } else { 0 };
    put.bytes(&[VERSION << 4 | flags]);
    put.varint(offset_delta);
    if !single {
        put.varint(u64::from(count));
        put.varint(u64::from(last_delta));
    }
    put.varint(ts_delta);
    if !single {
        put.varint(max_delta);
    }
    if let Some(id) = txn {
        put.bytes(&id.to_le_bytes());
    }
    let header_len = put.at;
    for r in records {
        r.write(&mut put, single, base_ts);
    }
    let len = put.at;
    debug_assert_eq!(len, crc_from + body_len as usize);
    let crc = frame_crc(origin.crc_seed, &out[crc_from..len]);
    out[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
    FrameHeader {
        len: len as u32,
        header_len: header_len as u32,
        crc_from: crc_from as u32,
        crc_seed: origin.crc_seed,
        crc,
        single,
        base_offset,
        record_count: count,
        last_offset_delta: last_delta,
        base_timestamp: base_ts,
        max_timestamp: max_ts,
        txn,
        control,
    }
}

/// Encodes a frame of `records` (with dense offsets from `base_offset`) at
/// the start of `out`, which must be at least `MAX_HEADER_LEN + Σ
/// record_len` bytes; the frame takes [`FrameHeader::frame_len`] of them.
/// Records without a timestamp get `now`. Returns the frame's header.
pub(crate) fn encode_frame<'r, 'a: 'r>(
    out: &mut [u8],
    origin: Origin,
    base_offset: u64,
    records: impl Iterator<Item = &'r Record<'a>> + Clone,
    now: i64,
) -> FrameHeader {
    encode_txn_frame(out, origin, base_offset, records, now, None)
}

/// [`encode_frame`], for the transaction `txn` if it is `Some` (a
/// transactional frame, whose header may take [`MAX_TXN_HEADER_LEN`]).
#[inline]
pub(crate) fn encode_txn_frame<'r, 'a: 'r>(
    out: &mut [u8],
    origin: Origin,
    base_offset: u64,
    records: impl Iterator<Item = &'r Record<'a>> + Clone,
    now: i64,
    txn: Option<u64>,
) -> FrameHeader {
    let encs = records.enumerate().map(move |(i, r)| Enc {
        offset_delta: i as u32,
        timestamp: r.timestamp.unwrap_or(now),
        key: r.key.as_deref(),
        value: r.value.as_deref(),
        headers: HeaderBlock::List(&r.headers),
    });
    encode(out, origin, base_offset, encs, txn, false)
}

/// Encodes the commit marker of transaction `txn` at `offset` (taking one
/// offset) at the start of `out`, which must be at least [`MARKER_LEN`]
/// bytes.
pub(crate) fn encode_marker(out: &mut [u8], origin: Origin, offset: u64, txn: u64, now: i64) -> FrameHeader {
    let value = [MARKER_COMMIT];
    let enc = Enc { offset_delta: 0, timestamp: now, key: None, value: Some(&value), headers: HeaderBlock::List(&[]) };
    encode(out, origin, offset, std::iter::once(enc), Some(txn), true)
}

/// A record read back from a frame, to be written into another one
/// (compaction): its offset, timestamp, key, value and encoded headers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawRecord<'b> {
    pub offset: u64,
    pub timestamp: i64,
    pub key: Option<&'b [u8]>,
    pub value: Option<&'b [u8]>,
    pub header_count: u16,
    /// The headers after their count, as [`RecordView::headers`] locates them.
    pub headers: &'b [u8],
}

impl<'b> RawRecord<'b> {
    /// The record `view` locates in `body` (the records of the frame `header`).
    pub(crate) fn of(header: &FrameHeader, body: &'b [u8], view: &RecordView) -> RawRecord<'b> {
        let get = |(s, l): (u32, u32)| body.get(s as usize..(s + l) as usize).unwrap_or(&[]);
        RawRecord {
            offset: header.base_offset + u64::from(view.offset_delta),
            timestamp: view.timestamp,
            key: view.key.map(get),
            value: view.value.map(get),
            header_count: view.header_count,
            headers: get(view.headers),
        }
    }
}

/// A frame of already-decoded `records` (offsets increasing, the first at
/// the frame's base offset), for rewriting segments.
pub(crate) fn frame_from_records(origin: Origin, records: &[RawRecord<'_>]) -> Vec<u8> {
    let base = records.first().map_or(origin.base_offset, |r| r.offset);
    let encs = records.iter().map(|r| Enc {
        offset_delta: (r.offset - base) as u32,
        timestamp: r.timestamp,
        key: r.key,
        value: r.value,
        headers: HeaderBlock::Raw { count: r.header_count, block: r.headers },
    });
    let bound: usize = encs.clone().map(|e| RECORD_OVERHEAD + e.inner_len(true, 0)).sum();
    let mut out = vec![0u8; MAX_HEADER_LEN + bound];
    let header = encode(&mut out, origin, base, encs, None, false);
    out.truncate(header.frame_len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ORIGIN: Origin = Origin { base_offset: 90, base_timestamp: 1_000, crc_seed: 0x1234_5678 };

    fn encode_at(records: &[Record<'_>], base: u64, origin: Origin) -> Vec<u8> {
        let len = MAX_HEADER_LEN + records.iter().map(record_len).sum::<usize>();
        let mut out = vec![0u8; len];
        let h = encode_frame(&mut out, origin, base, records.iter(), 1234);
        out.truncate(h.frame_len());
        out
    }

    fn encode(records: &[Record<'_>], base: u64) -> Vec<u8> {
        encode_at(records, base, Origin { base_offset: base, ..Origin::default() })
    }

    fn body_of(bytes: &[u8], origin: Origin) -> (FrameHeader, &[u8]) {
        let h = validate_frame(bytes, origin).unwrap();
        (h, records_of(&h, bytes))
    }

    #[test]
    fn frame_round_trips_key_value_headers_and_timestamps() {
        let records = [
            Record::new(b"v1").key(b"k1").header("h", b"x").timestamp(10),
            Record::new(b"").timestamp(5),
            Record::tombstone(b"gone"),
        ];
        let bytes = encode_at(&records, 100, ORIGIN);
        let (h, body) = body_of(&bytes, ORIGIN);
        assert_eq!((h.base_offset, h.record_count, h.last_offset_delta), (100, 3, 2));
        assert_eq!(h.next_offset(), 103);
        assert_eq!(h.max_timestamp, 1234);
        let r0 = decode_record(body, 0, &h).unwrap();
        let (ks, kl) = r0.key.unwrap();
        assert_eq!(&body[ks as usize..(ks + kl) as usize], b"k1");
        let (vs, vl) = r0.value.unwrap();
        assert_eq!(&body[vs as usize..(vs + vl) as usize], b"v1");
        assert_eq!((r0.timestamp, r0.header_count), (10, 1));
        let (hs, hl) = r0.headers;
        let (n, v, rest) = split_header(&body[hs as usize..(hs + hl) as usize]).unwrap();
        assert_eq!((n, v, rest.len()), ("h", &b"x"[..], 0));
        let r1 = decode_record(body, r0.end, &h).unwrap();
        assert_eq!((r1.key, r1.value.map(|v| v.1), r1.offset_delta), (None, Some(0), 1));
        let r2 = decode_record(body, r1.end, &h).unwrap();
        assert_eq!((r2.value, r2.timestamp), (None, 1234));
    }

    #[test]
    fn a_single_100_byte_record_costs_at_most_120_bytes() {
        let value = [7u8; 100];
        // Far from the segment's origin: wide offset and timestamp deltas.
        let origin = Origin { base_offset: 0, base_timestamp: 1_700_000_000_000, crc_seed: 7 };
        let bytes = encode_at(&[Record::new(&value[..]).timestamp(1_700_000_000_000 + 3_600_000)], 5_000_000, origin);
        assert!(bytes.len() <= 120, "{} bytes", bytes.len());
        let (h, body) = body_of(&bytes, origin);
        assert!(h.single);
        assert_eq!((h.base_offset, h.max_timestamp), (5_000_000, 1_700_000_000_000 + 3_600_000));
        let r = decode_record(body, 0, &h).unwrap();
        assert_eq!((r.offset_delta, r.key, r.value.map(|v| v.1)), (0, None, Some(100)));
        // In a fresh segment: 112 bytes.
        assert_eq!(encode(&[Record::new(&value[..]).timestamp(0)], 0).len(), 112);
    }

    #[test]
    fn a_frame_copied_into_another_segment_fails_its_crc() {
        let bytes = encode_at(&[Record::new(b"x").timestamp(5)], 95, ORIGIN);
        assert!(validate_frame(&bytes, ORIGIN).is_ok());
        let elsewhere = Origin { base_offset: 0, crc_seed: 0x8765_4321, ..ORIGIN };
        assert_eq!(validate_frame(&bytes, elsewhere), Err(FrameError::BadCrc));
    }

    #[test]
    fn zero_bytes_never_validate_as_a_frame() {
        assert_eq!(read_header(&[0u8; 4096], ORIGIN), Err(FrameError::Zero));
        assert_eq!(read_header(&[0u8; 10], ORIGIN), Err(FrameError::Zero));
        assert_eq!(read_header(&[], ORIGIN), Err(FrameError::Zero));
        // No length has a zero check byte.
        assert!((0..1u32 << 20).all(|l| len_check(l) != 0));
    }

    #[test]
    fn torn_length_is_caught_before_it_is_trusted() {
        let mut bytes = encode(&[Record::new(b"hello")], 0);
        bytes[0] ^= 0x40; // the length now claims another body
        assert_eq!(read_header(&bytes, Origin::default()), Err(FrameError::BadLength));
    }

    #[test]
    fn flipped_body_byte_fails_crc() {
        let mut bytes = encode(&[Record::new(b"hello")], 0);
        let last = bytes.len() - 3;
        bytes[last] ^= 1;
        assert_eq!(validate_frame(&bytes, Origin::default()), Err(FrameError::BadCrc));
    }

    #[test]
    fn frame_cut_short_is_short() {
        let bytes = encode(&[Record::new(b"hello world")], 0);
        assert_eq!(read_header(&bytes[..bytes.len() - 1], Origin::default()), Err(FrameError::Short));
        assert_eq!(read_header(&bytes[..4], Origin::default()), Err(FrameError::Short));
    }

    #[test]
    fn unknown_magic_is_refused() {
        let mut bytes = encode(&[Record::new(b"x")], 0);
        bytes[6] = 0x12; // the attributes byte: version 1
        assert_eq!(read_header(&bytes, Origin::default()), Err(FrameError::BadMagic(0x12)));
    }

    #[test]
    fn sparse_offsets_inside_a_frame_are_accepted() {
        // Two records at deltas 0 and 5 (as compaction would leave them).
        let raw = |offset, v: &'static [u8]| RawRecord {
            offset,
            timestamp: 1,
            key: None,
            value: Some(v),
            header_count: 0,
            headers: &[],
        };
        let frame = frame_from_records(ORIGIN, &[raw(100, b"a"), raw(105, b"b")]);
        let h = validate_frame(&frame, ORIGIN).unwrap();
        assert_eq!(h.next_offset(), 106);
        // One record kept away from its frame's base is not a single-record frame.
        let frame = frame_from_records(ORIGIN, &[raw(100, b"a")]);
        assert!(validate_frame(&frame, ORIGIN).unwrap().single);
    }

    #[test]
    fn record_overrunning_its_frame_is_malformed_not_a_panic() {
        let raw = RawRecord { offset: 0, timestamp: 1, key: Some(b"abc"), value: None, header_count: 0, headers: &[] };
        let origin = Origin::default();
        let two = [raw, RawRecord { offset: 1, ..raw }];
        let mut frame = frame_from_records(origin, &two);
        let h = read_header(&frame, origin).unwrap();
        // The first record's key length, now beyond the record.
        let at = h.header_len as usize + 3;
        assert_eq!(frame[at], 4);
        frame[at] = 100;
        let crc = frame_crc(0, &frame[h.crc_from as usize..]);
        frame[h.crc_from as usize - 4..h.crc_from as usize].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(validate_frame(&frame, origin), Err(FrameError::BadRecord(_))));
    }

    #[test]
    fn a_transactional_frame_carries_its_id_and_a_marker_is_a_checked_commit() {
        let records = [Record::new(b"a").key(b"k"), Record::new(b"b")];
        let len = MAX_TXN_HEADER_LEN + records.iter().map(record_len).sum::<usize>();
        let mut out = vec![0u8; len];
        let h = encode_txn_frame(&mut out, ORIGIN, 100, records.iter(), 1234, Some(0xDEAD_BEEF_0102_0304));
        out.truncate(h.frame_len());
        let checked = validate_frame(&out, ORIGIN).unwrap();
        assert_eq!((checked.txn, checked.control, checked.record_count), (Some(0xDEAD_BEEF_0102_0304), false, 2));
        let body = records_of(&checked, &out);
        let r1 = decode_record(body, decode_record(body, 0, &checked).unwrap().end, &checked).unwrap();
        assert_eq!(r1.offset_delta, 1);

        let mut marker = vec![0u8; MARKER_LEN];
        let m = encode_marker(&mut marker, ORIGIN, 102, 77, 1300);
        marker.truncate(m.frame_len());
        let checked = validate_frame(&marker, ORIGIN).unwrap();
        assert_eq!((checked.txn, checked.control, checked.single, checked.next_offset()), (Some(77), true, true, 103));
        // A plain frame is neither.
        let plain = encode_at(&records, 100, ORIGIN);
        let h = validate_frame(&plain, ORIGIN).unwrap();
        assert_eq!((h.txn, h.control), (None, false));
    }

    #[test]
    fn a_control_flag_without_the_transactional_one_or_on_data_is_refused() {
        let mut marker = vec![0u8; MARKER_LEN];
        let m = encode_marker(&mut marker, ORIGIN, 102, 77, 1300);
        marker.truncate(m.frame_len());
        let at = m.crc_from as usize;
        for attributes in [
            VERSION << 4 | FLAG_SINGLE | FLAG_CONTROL,
            VERSION << 4 | FLAG_CONTROL | FLAG_TRANSACTIONAL,
            VERSION << 4 | 0x08 | FLAG_SINGLE,
        ] {
            let mut bad = marker.clone();
            bad[at] = attributes;
            assert_eq!(read_header(&bad, ORIGIN), Err(FrameError::BadMagic(attributes)), "{attributes:#x}");
        }
        // A marker whose record is not a commit fails even with a good CRC.
        let value = [9u8];
        let enc =
            Enc { offset_delta: 0, timestamp: 5, key: None, value: Some(&value), headers: HeaderBlock::List(&[]) };
        let mut out = vec![0u8; MARKER_LEN];
        let h = super::encode(&mut out, ORIGIN, 102, std::iter::once(enc), Some(1), true);
        out.truncate(h.frame_len());
        assert!(matches!(validate_frame(&out, ORIGIN), Err(FrameError::BadRecord(_))));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = read_header(&bytes, ORIGIN);
            let _ = validate_frame(&bytes, ORIGIN);
            for single in [false, true] {
                let h = FrameHeader {
                    len: bytes.len() as u32, header_len: 0, crc_from: 0, crc_seed: 0, crc: 0, single, base_offset: 0,
                    record_count: 1, last_offset_delta: 0, base_timestamp: 0, max_timestamp: 0, txn: None,
                    control: false,
                };
                let _ = decode_record(&bytes, 0, &h);
            }
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
            seg_ts in any::<i64>(),
        ) {
            let records: Vec<Record<'_>> = recs.iter().map(|(k, v, hs, ts)| {
                let mut r = match v { Some(v) => Record::new(v.as_slice()), None => Record::tombstone(b"k") };
                r.key = k.as_deref().map(std::borrow::Cow::Borrowed).or(r.key);
                for (n, hv) in hs { r = r.header(n.as_str(), hv.as_slice()); }
                r.timestamp(*ts)
            }).collect();
            let origin = Origin { base_offset: base / 2, base_timestamp: seg_ts, crc_seed: seg_ts as u32 };
            let bytes = encode_at(&records, base, origin);
            prop_assert!(bytes.len() <= MAX_HEADER_LEN + records.iter().map(record_len).sum::<usize>());
            let (h, body) = body_of(&bytes, origin);
            prop_assert_eq!(h.record_count as usize, records.len());
            prop_assert_eq!(h.base_offset, base);
            let mut pos = 0;
            for (i, r) in records.iter().enumerate() {
                let v = decode_record(body, pos, &h).unwrap();
                prop_assert_eq!(v.offset_delta as usize, i);
                prop_assert_eq!(Some(v.timestamp), r.timestamp);
                let get = |range: Option<(u32, u32)>| range.map(|(s, l)| &body[s as usize..(s + l) as usize]);
                prop_assert_eq!(get(v.key), r.key.as_deref());
                prop_assert_eq!(get(v.value), r.value.as_deref());
                prop_assert_eq!(v.header_count as usize, r.headers.len());
                pos = v.end;
            }
            prop_assert_eq!(h.max_timestamp, records.iter().filter_map(|r| r.timestamp).max().unwrap());
        }
    }
}
