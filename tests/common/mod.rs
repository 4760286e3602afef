//! Helpers shared by the integration tests: a self-removing temporary
//! directory, paths of millpond's on-disk files, and a small deterministic
//! pseudo-random generator (no `rand`, no `tempfile`).

#![allow(dead_code)] // each test crate uses a different subset

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A fresh, unique directory under `std::env::temp_dir()`, removed (with
/// everything in it) when dropped.
///
/// The name combines the process id, a per-process counter and the current
/// nanoseconds, so parallel tests and concurrent test binaries never collide.
/// Set `MILLPOND_KEEP_TMP=1` to keep the directories for inspection.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl TempDir {
    /// Creates a new empty directory whose name contains `label`.
    pub fn new(label: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!("millpond-test-{label}-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the directory (not created).
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path.join(rel)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("MILLPOND_KEEP_TMP").is_some() {
            eprintln!("keeping {}", self.path.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.path); // best effort: a leftover temp dir fails nothing
    }
}

/// `<dir>/topics/<topic>/<partition>`.
pub fn partition_dir(dir: &Path, topic: &str, partition: u32) -> PathBuf {
    dir.join("topics").join(topic).join(partition.to_string())
}

/// `<dir>/topics/<topic>/topic.meta`.
pub fn meta_path(dir: &Path, topic: &str) -> PathBuf {
    dir.join("topics").join(topic).join("topic.meta")
}

/// The partition's segment files (`<20-digit base>.log`), oldest first.
pub fn segment_files(dir: &Path, topic: &str, partition: u32) -> Vec<PathBuf> {
    files_with_ext(&partition_dir(dir, topic, partition), "log")
}

/// The partition's index files (`<20-digit base>.index`), oldest first.
pub fn index_files(dir: &Path, topic: &str, partition: u32) -> Vec<PathBuf> {
    files_with_ext(&partition_dir(dir, topic, partition), "index")
}

fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .filter(|p| p.file_stem().and_then(|s| s.to_str()).is_some_and(|s| s.len() == 20))
        .collect();
    out.sort();
    out
}

/// The active (last) segment file of a partition.
pub fn active_segment(dir: &Path, topic: &str, partition: u32) -> PathBuf {
    segment_files(dir, topic, partition).pop().expect("a partition always has a segment")
}

/// Every path under `dir`, relative to it, sorted: to check that an
/// operation left nothing behind on disk.
pub fn tree(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries {
            let p = e.expect("directory entry").path();
            out.push(p.strip_prefix(root).expect("under root").to_path_buf());
            if p.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Knuth's MMIX linear congruential generator: deterministic, seedable and
/// good enough to pick sizes, kill points and garbage bytes.
#[derive(Debug, Clone)]
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Lcg {
        let mut g = Lcg(seed ^ 0x9E37_79B9_7F4A_7C15);
        g.next_u64();
        g
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        // The high bits of an LCG are the good ones.
        self.0 ^ (self.0 >> 29)
    }

    /// Uniform-ish in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + (self.next_u64() >> 11) % (hi - lo)
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.range(0, den) < num
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Deterministic bytes for a value of `len` bytes derived from `seed`.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    Lcg::new(seed).fill(&mut v);
    v
}
