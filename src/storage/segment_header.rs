//! The segment header: the first bytes of every segment file (format
//! version 2), saying whose segment it is and what its frames are relative to.
//!
//! # Layout (little-endian)
//!
//! | bytes | field | notes |
//! | --- | --- | --- |
//! | 0..4 | magic `"MPSG"` | |
//! | 4..6 | `version: u16` | [`VERSION`] = 2 |
//! | 6..8 | `header_len: u16` | [`LEN`] = 64; frames start here |
//! | 8..24 | `topic_id: [u8; 16]` | the topic's random id, from `topic.meta` |
//! | 24..28 | `partition: u32` | |
//! | 28..36 | `base_offset: u64` | the offset in the file's name; frame offsets are deltas from it |
//! | 36..40 | `epoch: u32` | the writer epoch the segment was created in (0: none begun yet) |
//! | 40..48 | `base_timestamp: i64` | ms since the Unix epoch; frame timestamps are deltas from it |
//! | 48..60 | reserved | 0 |
//! | 60..64 | `crc: u32` | `crc32(bytes 0..60) ^ CRC_MASK` |
//!
//! A segment whose header does not match its place (the topic id in
//! `topic.meta`, the partition of its directory, the base offset of its
//! name) is refused as `Error::Corrupt`, and never changed. A segment of
//! format version 1 (no header: it starts with a frame whose magic byte
//! `0xB1` is at byte 12) is `Error::UnsupportedFormat`.

use crate::storage::frame::Origin;

/// Bytes of a segment header; the first frame starts here.
pub(crate) const LEN: usize = 64;
/// The segment format version written and read.
pub(crate) const VERSION: u16 = 2;
const MAGIC: &[u8; 4] = b"MPSG";
/// XOR mask of the header checksum.
const CRC_MASK: u32 = 0x7365_676D; // "segm"
/// Where format version 1 put its first frame's magic byte, and the byte.
const V1_MAGIC_AT: usize = 12;
const V1_MAGIC: u8 = 0xB1;

/// A topic's identity: 16 random bytes chosen when it is created.
pub(crate) type TopicId = [u8; 16];

/// The fields of a segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub topic_id: TopicId,
    pub partition: u32,
    pub base_offset: u64,
    pub epoch: u32,
    pub base_timestamp: i64,
}

/// Why the first bytes of a segment are not its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The bytes are zero (or there are none): nothing was ever written.
    Missing,
    /// A segment of an older format version.
    Unsupported(u16),
    /// Anything else, with the reason.
    Corrupt(String),
}

impl SegmentHeader {
    /// What the segment's frames are relative to.
    pub(crate) fn origin(&self) -> Origin {
        let bytes = self.encode();
        let crc_seed = u32::from_le_bytes([bytes[LEN - 4], bytes[LEN - 3], bytes[LEN - 2], bytes[LEN - 1]]);
        Origin { base_offset: self.base_offset, base_timestamp: self.base_timestamp, crc_seed }
    }

    /// The header's bytes.
    pub(crate) fn encode(&self) -> [u8; LEN] {
        let mut out = [0u8; LEN];
        out[0..4].copy_from_slice(MAGIC);
        out[4..6].copy_from_slice(&VERSION.to_le_bytes());
        out[6..8].copy_from_slice(&(LEN as u16).to_le_bytes());
        out[8..24].copy_from_slice(&self.topic_id);
        out[24..28].copy_from_slice(&self.partition.to_le_bytes());
        out[28..36].copy_from_slice(&self.base_offset.to_le_bytes());
        out[36..40].copy_from_slice(&self.epoch.to_le_bytes());
        out[40..48].copy_from_slice(&self.base_timestamp.to_le_bytes());
        let crc = crc32fast::hash(&out[..LEN - 4]) ^ CRC_MASK;
        out[LEN - 4..].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Reads the header at the start of a segment's bytes, checking it
    /// belongs to `topic_id`'s partition `partition` at `base_offset`.
    pub(crate) fn decode(
        bytes: &[u8],
        topic_id: &TopicId,
        partition: u32,
        base_offset: u64,
    ) -> Result<SegmentHeader, Refusal> {
        let head = &bytes[..bytes.len().min(LEN)];
        if head.iter().all(|&b| b == 0) {
            return Err(Refusal::Missing);
        }
        if &head[..head.len().min(4)] != MAGIC {
            if bytes.get(V1_MAGIC_AT) == Some(&V1_MAGIC) {
                return Err(Refusal::Unsupported(1));
            }
            return Err(Refusal::Corrupt("not a millpond segment (bad magic)".into()));
        }
        let Some(head) = bytes.get(..LEN) else {
            return Err(Refusal::Corrupt(format!("the segment header is cut short ({} bytes)", bytes.len())));
        };
        let u16_at = |at: usize| u16::from_le_bytes([head[at], head[at + 1]]);
        let u32_at = |at: usize| u32::from_le_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
        let u64_at = |at: usize| u64::from(u32_at(at)) | u64::from(u32_at(at + 4)) << 32;
        let version = u16_at(4);
        let crc_ok = crc32fast::hash(&head[..LEN - 4]) ^ CRC_MASK == u32_at(LEN - 4);
        if crc_ok && version != VERSION {
            return Err(Refusal::Unsupported(version));
        }
        if !crc_ok {
            return Err(Refusal::Corrupt("segment header checksum mismatch".into()));
        }
        if usize::from(u16_at(6)) != LEN || head[48..60].iter().any(|&b| b != 0) {
            return Err(Refusal::Corrupt("segment header has an unknown length or reserved bytes set".into()));
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&head[8..24]);
        let header = SegmentHeader {
            topic_id: id,
            partition: u32_at(24),
            base_offset: u64_at(28),
            epoch: u32_at(36),
            base_timestamp: u64_at(40) as i64,
        };
        if header.topic_id != *topic_id {
            return Err(Refusal::Corrupt(format!(
                "the segment belongs to another topic (id {}, this topic's is {}): copied from another topic's directory?",
                hex(&header.topic_id),
                hex(topic_id)
            )));
        }
        if header.partition != partition {
            return Err(Refusal::Corrupt(format!(
                "the segment belongs to partition {}, not {partition}: moved from another partition's directory?",
                header.partition
            )));
        }
        if header.base_offset != base_offset {
            return Err(Refusal::Corrupt(format!(
                "the segment starts at offset {}, but its file name says {base_offset}: renamed or swapped?",
                header.base_offset
            )));
        }
        Ok(header)
    }
}

/// `id` in hexadecimal.
pub(crate) fn hex(id: &TopicId) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const H: SegmentHeader =
        SegmentHeader { topic_id: [7; 16], partition: 3, base_offset: 1000, epoch: 2, base_timestamp: -5 };

    #[test]
    fn header_round_trips_and_checks_its_place() {
        let bytes = H.encode();
        assert_eq!(SegmentHeader::decode(&bytes, &[7; 16], 3, 1000), Ok(H));
        for (id, p, base) in [([8; 16], 3, 1000), ([7; 16], 4, 1000), ([7; 16], 3, 999)] {
            assert!(matches!(SegmentHeader::decode(&bytes, &id, p, base), Err(Refusal::Corrupt(_))));
        }
    }

    #[test]
    fn zero_v1_and_damaged_headers_are_told_apart() {
        assert_eq!(SegmentHeader::decode(&[0; 100], &[7; 16], 3, 1000), Err(Refusal::Missing));
        assert_eq!(SegmentHeader::decode(&[], &[7; 16], 3, 1000), Err(Refusal::Missing));
        let mut v1 = [0u8; 60];
        v1[0] = 5;
        v1[12] = V1_MAGIC;
        assert_eq!(SegmentHeader::decode(&v1, &[7; 16], 3, 1000), Err(Refusal::Unsupported(1)));
        let mut bytes = H.encode();
        bytes[30] ^= 1;
        assert!(matches!(SegmentHeader::decode(&bytes, &[7; 16], 3, 1000), Err(Refusal::Corrupt(_))));
        assert!(matches!(SegmentHeader::decode(&H.encode()[..40], &[7; 16], 3, 1000), Err(Refusal::Corrupt(_))));
    }

    proptest! {
        #[test]
        fn arbitrary_header_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = SegmentHeader::decode(&bytes, &[0; 16], 0, 0);
        }
    }
}
