//! A consumer group's committed offsets for one topic:
//! `<dir>/groups/<group>/<topic>/offsets`, replaced atomically. (A directory
//! per topic keeps every file name short, whatever the topic name's length.)
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..4 | magic `"MPGO"` |
//! | 4..6 | version `u16` = 1 |
//! | 6..8 | reserved, 0 |
//! | 8..12 | entry count `u32` |
//! | 12..12+12n | entries: `partition: u32`, `offset: u64` (next offset to read), partitions increasing |
//! | last 4 | `crc32` of everything before it |
//!
//! A commit writes `offsets.tmp`, fsyncs it, renames the current file
//! to `offsets.prev`, renames the new one into place and fsyncs the
//! directory. Loading falls back to `.prev` when the current file is missing
//! or damaged, which can only re-deliver records (the offsets are older),
//! never skip them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fsutil;

const MAGIC: &[u8; 4] = b"MPGO";
const VERSION: u16 = 1;

/// Encodes committed offsets.
pub(crate) fn encode(offsets: &BTreeMap<u32, u64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 12 * offsets.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(offsets.len() as u32).to_le_bytes());
    for (p, o) in offsets {
        out.extend_from_slice(&p.to_le_bytes());
        out.extend_from_slice(&o.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes and checks committed offsets for a topic of `partitions` partitions.
pub(crate) fn decode(bytes: &[u8], partitions: u32, path: &Path) -> Result<BTreeMap<u32, u64>> {
    let bad = |reason: String| Error::CorruptMetadata { path: path.to_path_buf(), reason };
    if bytes.len() < 16 {
        return Err(bad(format!("offsets file is {} bytes, too short", bytes.len())));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(bad("checksum mismatch".into()));
    }
    if &body[0..4] != MAGIC {
        return Err(bad("not an offsets file (bad magic)".into()));
    }
    let version = u16::from_le_bytes([body[4], body[5]]);
    if version != VERSION {
        return Err(bad(format!("unknown offsets version {version}")));
    }
    let count = u32::from_le_bytes([body[8], body[9], body[10], body[11]]) as usize;
    if body.len() != 12 + count.saturating_mul(12) {
        return Err(bad("entry count does not match the file length".into()));
    }
    let mut out = BTreeMap::new();
    let mut last: Option<u32> = None;
    for e in body[12..].chunks_exact(12) {
        let p = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
        let o = u64::from_le_bytes([e[4], e[5], e[6], e[7], e[8], e[9], e[10], e[11]]);
        if last.is_some_and(|l| p <= l) {
            return Err(bad("partitions out of order".into()));
        }
        if p >= partitions {
            return Err(bad(format!("partition {p} does not exist (the topic has {partitions})")));
        }
        last = Some(p);
        out.insert(p, o);
    }
    Ok(out)
}

/// Where a group's offsets for a topic live.
#[derive(Debug, Clone)]
pub(crate) struct OffsetsFile {
    /// `<dir>/groups/<group>/<topic>`.
    dir: PathBuf,
}

/// What loading found.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub offsets: BTreeMap<u32, u64>,
    /// Set when the current file was damaged and `.prev` was used instead.
    pub fell_back: Option<Error>,
}

impl OffsetsFile {
    pub(crate) fn new(group_dir: PathBuf, topic: &str) -> OffsetsFile {
        OffsetsFile { dir: group_dir.join(topic) }
    }

    pub(crate) fn path(&self) -> PathBuf {
        self.dir.join("offsets")
    }

    fn prev_path(&self) -> PathBuf {
        self.dir.join("offsets.prev")
    }

    fn tmp_path(&self) -> PathBuf {
        self.dir.join("offsets.tmp")
    }

    fn read(path: &Path, partitions: u32) -> Result<Option<BTreeMap<u32, u64>>> {
        match std::fs::read(path) {
            Ok(bytes) => decode(&bytes, partitions, path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read committed offsets", path, e)),
        }
    }

    /// Loads the committed offsets, falling back to `.prev` if the current
    /// file is missing (a crash between the two renames) or damaged.
    pub(crate) fn load(&self, partitions: u32) -> Result<Loaded> {
        let current = OffsetsFile::read(&self.path(), partitions);
        match current {
            Ok(Some(offsets)) => Ok(Loaded { offsets, fell_back: None }),
            Ok(None) => {
                let prev = OffsetsFile::read(&self.prev_path(), partitions)?;
                Ok(Loaded { offsets: prev.unwrap_or_default(), fell_back: None })
            }
            Err(damage @ Error::CorruptMetadata { .. }) => match OffsetsFile::read(&self.prev_path(), partitions) {
                Ok(Some(offsets)) => Ok(Loaded { offsets, fell_back: Some(damage) }),
                _ => Err(damage),
            },
            Err(e) => Err(e),
        }
    }

    /// Replaces the committed offsets atomically and durably.
    /// If `current_damaged`, the current file is the damaged one loading
    /// fell back from: it is discarded rather than rotated into `.prev`, so
    /// `.prev` stays a good fallback.
    pub(crate) fn store(&self, offsets: &BTreeMap<u32, u64>, current_damaged: bool) -> Result<()> {
        if !self.dir.is_dir() {
            fsutil::create_dir_all(&self.dir)?;
            // Make the new group and topic directories' entries durable.
            if let Some(group_dir) = self.dir.parent() {
                fsutil::fsync_dir(group_dir)?;
                if let Some(groups) = group_dir.parent() {
                    fsutil::fsync_dir(groups)?;
                }
            }
        }
        let tmp = self.tmp_path();
        let mut f = fsutil::new_file_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(Error::io_at("create", &tmp))?;
        f.write_all(&encode(offsets)).map_err(Error::io_at("write", &tmp))?;
        f.sync_all().map_err(Error::io_at("fsync", &tmp))?;
        drop(f);
        let path = self.path();
        let rotated =
            if current_damaged { std::fs::remove_file(&path) } else { std::fs::rename(&path, self.prev_path()) };
        match rotated {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("keep previous offsets", path, e)),
        }
        std::fs::rename(&tmp, &path).map_err(Error::io_at("rename offsets into place", &path))?;
        fsutil::fsync_dir(&self.dir)
    }

    /// Removes the files (when the topic is deleted).
    pub(crate) fn remove(&self) -> Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove committed offsets", &self.dir, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn offsets_round_trip() {
        let m: BTreeMap<u32, u64> = [(0, 5), (3, 1 << 40)].into_iter().collect();
        assert_eq!(decode(&encode(&m), 4, Path::new("o")).unwrap(), m);
    }

    #[test]
    fn offsets_for_missing_partitions_are_corrupt() {
        let m: BTreeMap<u32, u64> = [(7, 5)].into_iter().collect();
        assert!(matches!(decode(&encode(&m), 4, Path::new("o")), Err(Error::CorruptMetadata { .. })));
    }

    #[test]
    fn flipped_offsets_byte_is_corrupt() {
        let m: BTreeMap<u32, u64> = [(0, 5)].into_iter().collect();
        let mut b = encode(&m);
        b[14] ^= 1;
        assert!(matches!(decode(&b, 4, Path::new("o")), Err(Error::CorruptMetadata { .. })));
    }

    proptest! {
        #[test]
        fn arbitrary_offsets_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes, 16, Path::new("fuzz.offsets"));
        }
    }
}
