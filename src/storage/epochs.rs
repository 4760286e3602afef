//! A partition's epoch history, `<partition>/epochs`: Kafka's leader-epoch
//! checkpoint, for one writer.
//!
//! Every writer session of a partition (from an open of the broker to its
//! close or crash) that appends starts a new **epoch** before its first
//! record, at the offset it continues from. A crash can lose records that
//! were acknowledged but not yet synced (a machine crash under
//! `FsyncPolicy::Never`); the next session then hands out the lost offsets
//! again. A group's commit carries the epoch of the last record it covers,
//! so a commit made past the end of its epoch (into records that were lost)
//! is recognised when a member resumes: it goes on at the epoch's end, where
//! the new records start, instead of skipping them (KIP-101, KIP-320).
//!
//! # File layout (little-endian)
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..4 | magic `"MPEP"` |
//! | 4..6 | version `u16` = 1 |
//! | 6..8 | reserved, 0 |
//! | 8..12 | entry count `u32` |
//! | 12..12+12n | entries: `epoch: u32`, `start_offset: u64`; epochs increasing, starts not decreasing |
//! | last 4 | `crc32` of everything before it |
//!
//! Written atomically (temporary file, fsync, rename, directory fsync)
//! before the epoch's first record, so no record of an epoch can outlive the
//! entry that names it. A missing file is an empty history (a partition
//! written before epochs existed: its records and old commits are epoch 0).

use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::storage::fsutil;

const MAGIC: &[u8; 4] = b"MPEP";
const VERSION: u16 = 1;
/// The file's name in the partition directory.
pub(crate) const FILE_NAME: &str = "epochs";

/// One epoch: its number and the first offset written in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Epoch {
    pub epoch: u32,
    pub start: u64,
}

/// The epochs of one partition, oldest first.
#[derive(Debug)]
pub(crate) struct EpochHistory {
    path: PathBuf,
    entries: Mutex<Vec<Epoch>>,
}

fn encode(entries: &[Epoch]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 12 * entries.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        out.extend_from_slice(&e.epoch.to_le_bytes());
        out.extend_from_slice(&e.start.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn decode(bytes: &[u8], path: &Path) -> Result<Vec<Epoch>> {
    let bad = |reason: String| Error::CorruptMetadata { path: path.to_path_buf(), reason };
    if bytes.len() < 16 {
        return Err(bad(format!("epochs file is {} bytes, too short", bytes.len())));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(bad("checksum mismatch".into()));
    }
    if &body[0..4] != MAGIC {
        return Err(bad("not an epochs file (bad magic)".into()));
    }
    let version = u16::from_le_bytes([body[4], body[5]]);
    if version != VERSION {
        return Err(bad(format!("unknown epochs file version {version}")));
    }
    let count = u32::from_le_bytes([body[8], body[9], body[10], body[11]]) as usize;
    if body.len() != 12 + count.saturating_mul(12) {
        return Err(bad("entry count does not match the file length".into()));
    }
    let mut out: Vec<Epoch> = Vec::with_capacity(count);
    for e in body[12..].chunks_exact(12) {
        let epoch = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
        let start = u64::from_le_bytes([e[4], e[5], e[6], e[7], e[8], e[9], e[10], e[11]]);
        if out.last().is_some_and(|l| epoch <= l.epoch || start < l.start) {
            return Err(bad("epochs out of order".into()));
        }
        out.push(Epoch { epoch, start });
    }
    Ok(out)
}

impl EpochHistory {
    /// Loads the history of the partition in `dir`. A missing file is an
    /// empty history; a damaged one is an error (`CorruptMetadata`).
    pub(crate) fn load(dir: &Path) -> Result<EpochHistory> {
        let path = dir.join(FILE_NAME);
        let entries = match fsutil::read_file(&path) {
            Ok(bytes) => decode(&bytes, &path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io("read epochs", path, e)),
        };
        Ok(EpochHistory { path, entries: Mutex::new(entries) })
    }

    /// Starts a new epoch at `start` (the next offset to be written) and
    /// makes it durable. Returns its number.
    pub(crate) fn begin(&self, start: u64) -> Result<u32> {
        let mut entries = self.entries.lock();
        let epoch = entries.last().map_or(1, |l| l.epoch.saturating_add(1));
        let mut next = entries.clone();
        // An earlier epoch that starts at or after `start` never kept a
        // record: everything from `start` on belongs to the new one.
        while next.last().is_some_and(|l| l.start > start) {
            next.pop();
        }
        next.push(Epoch { epoch, start });
        fsutil::write_atomic(&self.path, &encode(&next))?;
        *entries = next;
        Ok(epoch)
    }

    /// The epoch of the record at `offset` (0 if it is older than every
    /// recorded epoch).
    pub(crate) fn epoch_of(&self, offset: u64) -> u32 {
        let entries = self.entries.lock();
        let i = entries.partition_point(|e| e.start <= offset);
        i.checked_sub(1).map_or(0, |i| entries[i].epoch)
    }

    /// Where `epoch` ended: the first offset of the next epoch that follows
    /// it. `None` if `epoch` is the latest one (it has not ended), or newer
    /// than every recorded epoch (the history cannot say).
    pub(crate) fn end_of(&self, epoch: u32) -> Option<u64> {
        let entries = self.entries.lock();
        entries.iter().find(|e| e.epoch > epoch).map(|e| e.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("millpond-epochs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn epochs_persist_and_answer_lookups() {
        let dir = temp_dir("persist");
        let h = EpochHistory::load(&dir).unwrap();
        assert_eq!(h.epoch_of(5), 0);
        assert_eq!(h.begin(0).unwrap(), 1);
        assert_eq!(h.begin(100).unwrap(), 2);
        let h = EpochHistory::load(&dir).unwrap();
        assert_eq!((h.epoch_of(0), h.epoch_of(99), h.epoch_of(100)), (1, 1, 2));
        assert_eq!((h.end_of(0), h.end_of(1), h.end_of(2)), (Some(0), Some(100), None));
        // A session that lost its tail: the next one starts below 100.
        assert_eq!(h.begin(60).unwrap(), 3);
        assert_eq!((h.end_of(1), h.epoch_of(70)), (Some(60), 3));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn damaged_epochs_file_is_corrupt_metadata() {
        let dir = temp_dir("damaged");
        EpochHistory::load(&dir).unwrap().begin(0).unwrap();
        let path = dir.join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[13] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(EpochHistory::load(&dir), Err(Error::CorruptMetadata { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_epochs_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = decode(&bytes, Path::new("epochs"));
        }
    }
}
