//! A consumer group's committed offsets for one topic:
//! `<dir>/groups/<group>/<topic>/offsets`, replaced atomically. (A directory
//! per topic keeps every file name short, whatever the topic name's length.)
//!
//! Version 2 (written since the epoch fix; version 1 files are still read,
//! their commits counting as epoch 0 and their identity unchecked):
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..4 | magic `"MPGO"` |
//! | 4..6 | version `u16` = 2 |
//! | 6..8 | reserved, 0 |
//! | 8..12 | entry count `u32` |
//! | 12..14 | group name length `u16` (g) |
//! | 14..16 | topic name length `u16` (t) |
//! | 16..16+g+t | the group's name, then the topic's (UTF-8) |
//! | then 16n | entries: `partition: u32`, `offset: u64` (next offset to read), `epoch: u32` (the partition's epoch of the record before `offset`), partitions increasing |
//! | last 4 | `crc32` of everything before it |
//!
//! The names make a file copied from another group or topic `CorruptMetadata`
//! instead of someone else's positions. The epoch lets a member recognise a
//! commit made past records a crash then lost (see `log/epochs.rs`).
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
use crate::storage::fsutil;

const MAGIC: &[u8; 4] = b"MPGO";
const VERSION: u16 = 2;

/// A committed position: the next offset to read, and the epoch of the
/// record before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Committed {
    pub offset: u64,
    pub epoch: u32,
}

/// Encodes committed offsets of `group` for `topic`.
pub(crate) fn encode(group: &str, topic: &str, offsets: &BTreeMap<u32, Committed>) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + group.len() + topic.len() + 16 * offsets.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(offsets.len() as u32).to_le_bytes());
    // Names are at most 249 bytes (names.rs).
    out.extend_from_slice(&(group.len() as u16).to_le_bytes());
    out.extend_from_slice(&(topic.len() as u16).to_le_bytes());
    out.extend_from_slice(group.as_bytes());
    out.extend_from_slice(topic.as_bytes());
    for (p, c) in offsets {
        out.extend_from_slice(&p.to_le_bytes());
        out.extend_from_slice(&c.offset.to_le_bytes());
        out.extend_from_slice(&c.epoch.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes and checks committed offsets of `group` for `topic`, a topic of
/// `partitions` partitions.
pub(crate) fn decode(
    bytes: &[u8],
    group: &str,
    topic: &str,
    partitions: u32,
    path: &Path,
) -> Result<BTreeMap<u32, Committed>> {
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
    let count = u32::from_le_bytes([body[8], body[9], body[10], body[11]]) as usize;
    let (entries, entry_len) = match version {
        1 => (&body[12..], 12),
        2 => {
            let names = body.get(12..16).ok_or_else(|| bad("offsets file is too short for its names".into()))?;
            let g = usize::from(u16::from_le_bytes([names[0], names[1]]));
            let t = usize::from(u16::from_le_bytes([names[2], names[3]]));
            let (file_group, file_topic) = match (body.get(16..16 + g), body.get(16 + g..16 + g + t)) {
                (Some(fg), Some(ft)) => (fg, ft),
                _ => return Err(bad("names run past the end of the offsets file".into())),
            };
            if file_group != group.as_bytes() || file_topic != topic.as_bytes() {
                return Err(bad(format!(
                    "offsets file belongs to group {:?} topic {:?}, not group {group:?} topic {topic:?}",
                    String::from_utf8_lossy(file_group),
                    String::from_utf8_lossy(file_topic)
                )));
            }
            (&body[16 + g + t..], 16)
        }
        other => return Err(bad(format!("unknown offsets version {other}"))),
    };
    if entries.len() != count.saturating_mul(entry_len) {
        return Err(bad("entry count does not match the file length".into()));
    }
    let mut out = BTreeMap::new();
    let mut last: Option<u32> = None;
    for e in entries.chunks_exact(entry_len) {
        let p = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
        let offset = u64::from_le_bytes([e[4], e[5], e[6], e[7], e[8], e[9], e[10], e[11]]);
        let epoch = if entry_len == 16 { u32::from_le_bytes([e[12], e[13], e[14], e[15]]) } else { 0 };
        if last.is_some_and(|l| p <= l) {
            return Err(bad("partitions out of order".into()));
        }
        if p >= partitions {
            return Err(bad(format!("partition {p} does not exist (the topic has {partitions})")));
        }
        last = Some(p);
        out.insert(p, Committed { offset, epoch });
    }
    Ok(out)
}

/// Where a group's offsets for a topic live.
#[derive(Debug, Clone)]
pub(crate) struct OffsetsFile {
    /// `<dir>/groups/<group>/<topic>`.
    dir: PathBuf,
    group: String,
    topic: String,
}

/// What loading found.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub offsets: BTreeMap<u32, Committed>,
    /// Set when the current file was damaged and `.prev` was used instead.
    pub fell_back: Option<Error>,
}

impl OffsetsFile {
    /// The offsets of the group whose directory is `group_dir` (named for
    /// the group) for `topic`.
    pub(crate) fn new(group_dir: PathBuf, topic: &str) -> OffsetsFile {
        let group = group_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        OffsetsFile { dir: group_dir.join(topic), group, topic: topic.to_string() }
    }

    pub(crate) fn path(&self) -> PathBuf {
        self.dir.join("offsets")
    }

    /// `Error::Symlink` (naming `op`) if the group's directory or its
    /// topic directory is a symlink: what lies behind one is not this
    /// broker's, to read, write or delete.
    fn refuse_symlinks(&self, op: &'static str) -> Result<()> {
        for dir in [self.dir.parent(), Some(self.dir.as_path())].into_iter().flatten() {
            if fsutil::is_symlink(dir) {
                return Err(Error::Symlink { op, path: dir.to_path_buf() });
            }
        }
        Ok(())
    }

    fn prev_path(&self) -> PathBuf {
        self.dir.join("offsets.prev")
    }

    fn tmp_path(&self) -> PathBuf {
        self.dir.join("offsets.tmp")
    }

    fn read(&self, path: &Path, partitions: u32) -> Result<Option<BTreeMap<u32, Committed>>> {
        match fsutil::read_file(path) {
            Ok(bytes) => decode(&bytes, &self.group, &self.topic, partitions, path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read committed offsets", path, e)),
        }
    }

    /// Loads the committed offsets, falling back to `.prev` if the current
    /// file is missing (a crash between the two renames) or damaged.
    pub(crate) fn load(&self, partitions: u32) -> Result<Loaded> {
        // Never read through a symlinked group or topic directory: what is
        // there is not this broker's.
        self.refuse_symlinks("read committed offsets")?;
        let current = self.read(&self.path(), partitions);
        match current {
            Ok(Some(offsets)) => Ok(Loaded { offsets, fell_back: None }),
            Ok(None) => {
                let prev = self.read(&self.prev_path(), partitions)?;
                Ok(Loaded { offsets: prev.unwrap_or_default(), fell_back: None })
            }
            Err(damage @ Error::CorruptMetadata { .. }) => match self.read(&self.prev_path(), partitions) {
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
    pub(crate) fn store(&self, offsets: &BTreeMap<u32, Committed>, current_damaged: bool) -> Result<()> {
        // Never create or write below a symlinked group or topic directory.
        self.refuse_symlinks("write committed offsets")?;
        if !std::fs::symlink_metadata(&self.dir).is_ok_and(|m| m.is_dir()) {
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
        f.write_all(&encode(&self.group, &self.topic, offsets)).map_err(Error::io_at("write", &tmp))?;
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

    /// Removes the group's offsets for this topic for good, atomically
    /// under a crash: the topic's directory under the group's is renamed
    /// to `doomed` (an entry of the broker's trash, emptied at every open)
    /// and the group directory fsynced, the one step that commits the
    /// deletion; only then are the files removed, and the group's directory
    /// if nothing else is left in it. A crash leaves the offsets either
    /// whole or gone, never the previous version alone (which loading
    /// would fall back to). Refuses to work below a symlink.
    pub(crate) fn delete_into(&self, doomed: &Path) -> Result<()> {
        let group_dir = self.dir.parent().map(Path::to_path_buf).unwrap_or_default();
        self.refuse_symlinks("delete committed offsets")?;
        match std::fs::symlink_metadata(&self.dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("delete committed offsets", &self.dir, e)),
            Ok(_) => {}
        }
        std::fs::rename(&self.dir, doomed).map_err(Error::io_at("move deleted offsets to trash", &self.dir))?;
        fsutil::fsync_dir(&group_dir)?;
        // Best effort from here: the trash is emptied at the next open.
        let _ = std::fs::remove_dir_all(doomed);
        // Other topics' offsets of the same group keep the directory.
        if std::fs::remove_dir(&group_dir).is_ok()
            && let Some(groups) = group_dir.parent()
        {
            fsutil::fsync_dir(groups)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn committed(pairs: &[(u32, u64, u32)]) -> BTreeMap<u32, Committed> {
        pairs.iter().map(|&(p, offset, epoch)| (p, Committed { offset, epoch })).collect()
    }

    #[test]
    fn offsets_round_trip() {
        let m = committed(&[(0, 5, 1), (3, 1 << 40, 7)]);
        assert_eq!(decode(&encode("g", "t", &m), "g", "t", 4, Path::new("o")).unwrap(), m);
    }

    #[test]
    fn version_1_offsets_are_read_as_epoch_0() {
        let mut v1 = Vec::new();
        v1.extend_from_slice(MAGIC);
        v1.extend_from_slice(&1u16.to_le_bytes());
        v1.extend_from_slice(&0u16.to_le_bytes());
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.extend_from_slice(&2u32.to_le_bytes());
        v1.extend_from_slice(&9u64.to_le_bytes());
        let crc = crc32fast::hash(&v1);
        v1.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(&v1, "g", "t", 4, Path::new("o")).unwrap(), committed(&[(2, 9, 0)]));
    }

    #[test]
    fn offsets_of_another_group_or_topic_are_corrupt() {
        let b = encode("billing", "orders", &committed(&[(0, 5, 1)]));
        for (g, t) in [("audit", "orders"), ("billing", "payments")] {
            assert!(matches!(decode(&b, g, t, 4, Path::new("o")), Err(Error::CorruptMetadata { .. })));
        }
    }

    #[test]
    fn offsets_for_missing_partitions_are_corrupt() {
        let b = encode("g", "t", &committed(&[(7, 5, 1)]));
        assert!(matches!(decode(&b, "g", "t", 4, Path::new("o")), Err(Error::CorruptMetadata { .. })));
    }

    #[test]
    fn flipped_offsets_byte_is_corrupt() {
        let mut b = encode("g", "t", &committed(&[(0, 5, 1)]));
        b[20] ^= 1;
        assert!(matches!(decode(&b, "g", "t", 4, Path::new("o")), Err(Error::CorruptMetadata { .. })));
    }

    proptest! {
        #[test]
        fn arbitrary_offsets_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes, "g", "t", 16, Path::new("fuzz.offsets"));
        }
    }
}
