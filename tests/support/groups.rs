//! The consumer-group tests' own reader and writer of the committed-offsets
//! file format, independent of the crate's: the tests check the crate's
//! files against the format as documented, not against the crate itself.

use std::collections::BTreeMap;
use std::path::Path;

use super::layout::{offsets_path, prev_offsets_path};

/// CRC-32 (IEEE, reflected), written out here so the tests check the
/// crate's files with an implementation of their own.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// Encodes an offsets file in version 1 (no names, no epochs), which
/// millpond still reads: its commits count as epoch 0.
pub fn encode_offsets(offsets: &BTreeMap<u32, u64>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"MPGO");
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(offsets.len() as u32).to_le_bytes());
    for (p, o) in offsets {
        out.extend_from_slice(&p.to_le_bytes());
        out.extend_from_slice(&o.to_le_bytes());
    }
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Encodes an offsets file in version 2, as the crate documents it: the
/// group's and topic's names, then `(partition, offset, epoch)` entries.
pub fn encode_offsets_v2(group: &str, topic: &str, offsets: &BTreeMap<u32, (u64, u32)>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"MPGO");
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(offsets.len() as u32).to_le_bytes());
    out.extend_from_slice(&(group.len() as u16).to_le_bytes());
    out.extend_from_slice(&(topic.len() as u16).to_le_bytes());
    out.extend_from_slice(group.as_bytes());
    out.extend_from_slice(topic.as_bytes());
    for (p, (o, e)) in offsets {
        out.extend_from_slice(&p.to_le_bytes());
        out.extend_from_slice(&o.to_le_bytes());
        out.extend_from_slice(&e.to_le_bytes());
    }
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes an offsets file (version 1 or 2) to its offsets; `None` if it
/// is damaged in any way.
pub fn decode_offsets(bytes: &[u8]) -> Option<BTreeMap<u32, u64>> {
    if bytes.len() < 16 {
        return None;
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32(body).to_le_bytes() != crc || &body[..4] != b"MPGO" {
        return None;
    }
    let version = u16::from_le_bytes(body[4..6].try_into().ok()?);
    let count = u32::from_le_bytes(body[8..12].try_into().ok()?) as usize;
    let (entries, size) = match version {
        1 => (&body[12..], 12),
        2 => {
            let g = u16::from_le_bytes(body.get(12..14)?.try_into().ok()?) as usize;
            let t = u16::from_le_bytes(body.get(14..16)?.try_into().ok()?) as usize;
            (body.get(16 + g + t..)?, 16)
        }
        _ => return None,
    };
    if entries.len() != count * size {
        return None;
    }
    let mut out = BTreeMap::new();
    for e in entries.chunks_exact(size) {
        let p = u32::from_le_bytes(e[..4].try_into().ok()?);
        let o = u64::from_le_bytes(e[4..12].try_into().ok()?);
        out.insert(p, o);
    }
    Some(out)
}

/// The committed offsets on disk, read the way the crate documents it: the
/// current file, else (missing) `.prev`, else nothing. Panics if the file
/// that should be used is damaged: a commit is atomic, so a crash must never
/// leave it so.
pub fn read_committed(dir: &Path, group: &str, topic: &str) -> BTreeMap<u32, u64> {
    for path in [offsets_path(dir, group, topic), prev_offsets_path(dir, group, topic)] {
        match std::fs::read(&path) {
            Ok(bytes) => {
                return decode_offsets(&bytes)
                    .unwrap_or_else(|| panic!("{} is damaged ({} bytes)", path.display(), bytes.len()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("cannot read {}: {e}", path.display()),
        }
    }
    BTreeMap::new()
}
