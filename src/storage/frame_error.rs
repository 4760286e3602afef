//! [`FrameError`]: why bytes are not a valid frame or record.

/// Why bytes are not a valid frame or record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// Fewer bytes than the header or the body need.
    Short,
    /// The bytes are zero: the preallocated, never-written tail.
    Zero,
    /// The length check does not match (a torn or garbage length).
    BadLength,
    /// Unknown format version or flags (the attributes byte).
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
            FrameError::BadLength => f.write_str("frame length fails its check (torn write?)"),
            FrameError::BadMagic(m) => write!(f, "unknown frame format version or flags {m:#04x}"),
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
