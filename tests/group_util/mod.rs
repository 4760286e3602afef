//! Helpers for the consumer-group tests (`tests/groups.rs`,
//! `tests/group_crash.rs`): a self-removing temporary directory, a small
//! deterministic pseudo-random generator, an independent reader and writer of
//! the committed-offsets file format, and "wait at most this long" helpers
//! that turn a hang into a test failure.

#![allow(dead_code)] // each test crate uses a different subset

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long any single wait may take before the test calls it a hang. Never
/// a performance bound: only a guard against blocking forever.
pub const HANG: Duration = Duration::from_secs(10);

/// A fresh, unique directory under `std::env::temp_dir()`, removed when
/// dropped (kept when `MILLPOND_KEEP_TMP` is set).
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!("millpond-gtest-{label}-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

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
        let _ = std::fs::remove_dir_all(&self.path); // best effort
    }
}

/// Knuth's MMIX linear congruential generator (no `rand`).
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
        self.0 ^ (self.0 >> 29)
    }

    /// In `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + (self.next_u64() >> 11) % (hi - lo)
    }
}

/// `<dir>/groups/<group>/<topic>/offsets`.
pub fn offsets_path(dir: &Path, group: &str, topic: &str) -> PathBuf {
    dir.join("groups").join(group).join(topic).join("offsets")
}

/// `<dir>/groups/<group>/<topic>/offsets.prev`.
pub fn prev_offsets_path(dir: &Path, group: &str, topic: &str) -> PathBuf {
    dir.join("groups").join(group).join(topic).join("offsets.prev")
}

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

/// Runs `f` on a new thread; the answer arrives on the returned receiver.
pub fn spawn_answer<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f()); // the test may have given up waiting
    });
    rx
}

/// Waits at most [`HANG`] for an answer; panics with `what` on a hang.
pub fn answer_within<T>(rx: &mpsc::Receiver<T>, what: &str) -> T {
    match rx.recv_timeout(HANG) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("hang: {what} did not happen within {HANG:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the thread waiting for {what} panicked"),
    }
}
