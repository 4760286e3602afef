//! Where millpond keeps its files (DESIGN.md, "On disk").

use std::path::{Path, PathBuf};

/// `<dir>/topics/<topic>`.
pub fn topic_dir(dir: &Path, topic: &str) -> PathBuf {
    dir.join("topics").join(topic)
}

/// `<dir>/topics/<topic>/<partition>`.
pub fn partition_dir(dir: &Path, topic: &str, partition: u32) -> PathBuf {
    topic_dir(dir, topic).join(partition.to_string())
}

/// `<dir>/topics/<topic>/topic.meta`.
pub fn meta_path(dir: &Path, topic: &str) -> PathBuf {
    topic_dir(dir, topic).join("topic.meta")
}

/// `<dir>/topics/<topic>/<partition>/<base>.log`.
pub fn segment_path(dir: &Path, topic: &str, partition: u32, base: u64) -> PathBuf {
    partition_dir(dir, topic, partition).join(format!("{base:020}.log"))
}

/// `<dir>/topics/<topic>/<partition>/<base>.index`.
pub fn index_path(dir: &Path, topic: &str, partition: u32, base: u64) -> PathBuf {
    partition_dir(dir, topic, partition).join(format!("{base:020}.index"))
}

/// The index file beside `segment` (`<base>.log` -> `<base>.index`).
pub fn index_of(segment: &Path) -> PathBuf {
    segment.with_extension("index")
}

/// `<dir>/groups/<group>/<topic>/offsets`.
pub fn offsets_path(dir: &Path, group: &str, topic: &str) -> PathBuf {
    dir.join("groups").join(group).join(topic).join("offsets")
}

/// `<dir>/groups/<group>/<topic>/offsets.prev`.
pub fn prev_offsets_path(dir: &Path, group: &str, topic: &str) -> PathBuf {
    dir.join("groups").join(group).join(topic).join("offsets.prev")
}

/// The bases of the partition's segment files (`<20 digits>.log`), oldest
/// first.
pub fn segment_bases(dir: &Path, topic: &str, partition: u32) -> Vec<u64> {
    bases_with_ext(dir, topic, partition, ".log")
}

/// The partition's segment files, oldest first.
pub fn segment_files(dir: &Path, topic: &str, partition: u32) -> Vec<PathBuf> {
    segment_bases(dir, topic, partition).into_iter().map(|b| segment_path(dir, topic, partition, b)).collect()
}

/// The partition's index files (`<20 digits>.index`), oldest first.
pub fn index_files(dir: &Path, topic: &str, partition: u32) -> Vec<PathBuf> {
    bases_with_ext(dir, topic, partition, ".index").into_iter().map(|b| index_path(dir, topic, partition, b)).collect()
}

/// The active (last) segment file of a partition.
pub fn active_segment(dir: &Path, topic: &str, partition: u32) -> PathBuf {
    segment_files(dir, topic, partition).pop().expect("a partition always has a segment")
}

/// File names in the partition directory that end with `suffix`, sorted
/// (none if the directory is missing).
pub fn files_ending(dir: &Path, topic: &str, partition: u32, suffix: &str) -> Vec<String> {
    let pdir = partition_dir(dir, topic, partition);
    let mut out: Vec<String> = std::fs::read_dir(&pdir)
        .map(|rd| rd.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.ends_with(suffix)).collect())
        .unwrap_or_default();
    out.sort();
    out
}

fn bases_with_ext(dir: &Path, topic: &str, partition: u32, ext: &str) -> Vec<u64> {
    let pdir = partition_dir(dir, topic, partition);
    let mut out: Vec<u64> = std::fs::read_dir(&pdir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", pdir.display()))
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let digits = name.strip_suffix(ext)?;
            (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok()).flatten()
        })
        .collect();
    out.sort_unstable();
    out
}
