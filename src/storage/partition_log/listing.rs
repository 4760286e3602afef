//! Listing a partition directory: which files are segments, and at which
//! base offsets. Used by the writer's open and by a read-only follower.

use std::path::Path;

use crate::error::{Error, Result};
use crate::storage::segment::{self, PartitionId};

/// Parses `<20 digits><suffix>` into the base offset the digits name (which
/// may be beyond any offset millpond writes: the caller checks).
pub(crate) fn parse_base(name: &str, suffix: &str) -> Option<u128> {
    let digits = name.strip_suffix(suffix)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Lists the partition directory `dir`: the segment bases, sorted, and the
/// names of every other entry. A symlinked segment is [`Error::Symlink`];
/// a segment named beyond the largest offset is `Corrupt`.
pub(crate) fn list_segments(dir: &Path, id: &PartitionId) -> Result<(Vec<u64>, Vec<String>)> {
    let mut bases = Vec::new();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(Error::io_at("list partition directory", dir))? {
        let entry = entry.map_err(Error::io_at("list partition directory", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = parse_base(name, ".log") {
            let path = entry.path();
            if entry.file_type().map_err(Error::io_at("stat segment", &path))?.is_symlink() {
                return Err(Error::Symlink { op: "open segment", path });
            }
            let Some(base) = u64::try_from(base).ok().filter(|&b| b <= segment::MAX_OFFSET) else {
                return Err(Error::Corrupt {
                    topic: id.topic.to_string(),
                    partition: id.partition,
                    path,
                    position: 0,
                    reason: format!(
                        "segment name {name} is beyond the largest offset millpond writes ({})",
                        segment::MAX_OFFSET
                    ),
                });
            };
            bases.push(base);
        } else {
            names.push(name.to_string());
        }
    }
    bases.sort_unstable();
    Ok((bases, names))
}
