//! Shared helpers for millpond's criterion benches: payloads, temporary
//! directories, a broker "rig" whose topic is recreated before the disk it uses
//! grows past a budget, chunked timing for `iter_custom`, and a raw
//! memory-mapped file sink used as the lower bound for appends.
//!
//! Every bench runs millpond and its in-memory baseline (crossbeam-channel, or
//! a raw `memcpy` into a mapped file) in the same criterion group, so the
//! figures of one run can be compared directly.

#![allow(dead_code)] // each bench binary uses a different subset

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{BenchmarkGroup, SamplingMode, Throughput, measurement::WallTime};
use memmap2::{MmapMut, MmapOptions};
use millpond::{Broker, Producer, Topic, TopicConfig};

/// Size of every record's value.
pub(crate) const RECORD_BYTES: usize = 100;
/// Records per `send_batch`.
pub(crate) const BATCH: usize = 1_000;
/// Bytes a single-record frame takes on disk (format v2), at most: a frame
/// header of 9 to 15 bytes (varints), 3 bytes of record fields, the value.
pub(crate) const SINGLE_FRAME_BYTES: u64 = 18 + RECORD_BYTES as u64;
/// Bytes a frame of [`BATCH`] records takes on disk, at most: a frame
/// header of up to 51 bytes, then per record 6 or 7 bytes of fields and the value.
pub(crate) const BATCH_FRAME_BYTES: u64 = 51 + (7 + RECORD_BYTES as u64) * BATCH as u64;
/// Segment size of the bench topics: large, so rolls are rare (but they do
/// happen inside the timed region, as they would in production).
pub(crate) const SEGMENT_BYTES: u64 = 256 << 20;
/// Disk a rig's topic may use before it is deleted and recreated (outside the
/// timed region).
pub(crate) const DISK_BUDGET: u64 = 1 << 30;

/// A deterministic, non-zero 100-byte value.
pub(crate) fn payload(seed: u64) -> [u8; RECORD_BYTES] {
    let mut p = [0u8; RECORD_BYTES];
    for (i, b) in p.iter_mut().enumerate() {
        *b = (seed.wrapping_mul(31).wrapping_add(i as u64 * 7) % 251) as u8 + 1;
    }
    p
}

/// Cheap "use" of a received value: touches its first and last bytes, so a
/// zero-copy read really reads the mapped memory.
#[inline(always)]
pub(crate) fn touch(v: &[u8]) -> u64 {
    u64::from(v[0]) + u64::from(v[v.len() - 1])
}

/// Applies the settings every bench group shares: few samples, a modest
/// measurement time, equal-sized samples, and throughput in records.
pub(crate) fn configure(group: &mut BenchmarkGroup<'_, WallTime>, records_per_iter: u64) {
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(records_per_iter));
}

/// Runs `iters` iterations as chunks of at most `chunk`, timing each with
/// `timed(n)` and summing. Work between chunks (draining a channel, rotating
/// a topic) stays outside the measurement.
pub(crate) fn chunked(iters: u64, chunk: u64, mut timed: impl FnMut(u64) -> Duration) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(chunk);
        total += timed(n);
        left -= n;
    }
    total
}

/// A unique directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(label: &str) -> TempDir {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("millpond-bench-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create bench temp dir");
        TempDir(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A broker in a temporary directory with one single-partition topic, which
/// is deleted and recreated (outside timing) whenever the next chunk of
/// writes would take the topic past [`DISK_BUDGET`].
pub(crate) struct Rig {
    // Field order matters: the broker must close before its directory goes.
    topic: Topic,
    producer: Producer,
    broker: Broker,
    generation: u32,
    /// Bytes appended to the current topic (an estimate from frame sizes).
    written: u64,
    config: TopicConfig,
    _dir: TempDir,
}

impl Rig {
    pub(crate) fn new(label: &str) -> Rig {
        let dir = TempDir::new(label);
        let broker = Broker::open(dir.path()).expect("open broker");
        let config = TopicConfig::default().partitions(1).segment_bytes(SEGMENT_BYTES);
        let topic = broker.create_topic("bench-0", config.clone()).expect("create topic");
        let producer = topic.producer();
        Rig { topic, producer, broker, generation: 0, written: 0, config, _dir: dir }
    }

    pub(crate) fn topic(&self) -> &Topic {
        &self.topic
    }

    pub(crate) fn producer(&self) -> &Producer {
        &self.producer
    }

    /// Makes room for `bytes` more: recreates the topic if they would take it
    /// past the budget. Returns whether it did (consumers of the old topic
    /// must then be recreated). Call it outside the timed region, with every
    /// consumer of the topic dropped if it may rotate.
    pub(crate) fn reserve(&mut self, bytes: u64) -> bool {
        let rotate = self.written > 0 && self.written + bytes > DISK_BUDGET;
        if rotate {
            self.rotate();
        }
        self.written += bytes;
        rotate
    }

    /// Whether `reserve(bytes)` would recreate the topic.
    pub(crate) fn would_rotate(&self, bytes: u64) -> bool {
        self.written > 0 && self.written + bytes > DISK_BUDGET
    }

    fn rotate(&mut self) {
        let old = format!("bench-{}", self.generation);
        self.generation += 1;
        let new = format!("bench-{}", self.generation);
        self.broker.delete_topic(&old).expect("delete topic");
        self.topic = self.broker.create_topic(&new, self.config.clone()).expect("recreate topic");
        self.producer = self.topic.producer();
        self.written = 0;
    }
}

/// The lower bound for appending: `memcpy` into a shared, read-write mapping
/// of a preallocated file, as a segment is.
///
/// A `fresh` sink writes every byte into never-touched pages, with the same
/// file pattern as a [`Rig`]: a new preallocated [`SEGMENT_BYTES`] file when
/// one is full, and all of them deleted together once they reach
/// [`DISK_BUDGET`] (all outside timing). That matters on VMs, where the cost
/// of a first touch depends on how recently the kernel freed the page. A
/// non-fresh sink reuses one file whose pages are already faulted in, so it
/// measures the copy alone.
pub(crate) struct MmapSink {
    dir: TempDir,
    map: MmapMut,
    pos: usize,
    fresh: bool,
    /// Files created so far; the live ones are `first_live..files`.
    files: u64,
    first_live: u64,
}

impl MmapSink {
    pub(crate) fn new(label: &str, fresh: bool) -> MmapSink {
        let dir = TempDir::new(label);
        let map = new_mapping(&dir, 0);
        let mut sink = MmapSink { dir, map, pos: 0, fresh, files: 1, first_live: 0 };
        if !fresh {
            // Fault every page in once, so the measurement is the copy alone.
            sink.map.fill(1);
        }
        sink
    }

    /// Makes room for `len` contiguous bytes (outside timing): a new file
    /// for a fresh sink (first deleting the old ones if they reached the
    /// budget), back to the start for a warm one.
    pub(crate) fn reserve(&mut self, len: usize) {
        assert!(len <= SEGMENT_BYTES as usize);
        if self.pos + len <= self.map.len() {
            return;
        }
        if self.fresh {
            if (self.files - self.first_live) * SEGMENT_BYTES >= DISK_BUDGET {
                for n in self.first_live..self.files {
                    std::fs::remove_file(self.dir.path().join(format!("{n}.raw"))).expect("remove raw file");
                }
                self.first_live = self.files;
            }
            self.map = new_mapping(&self.dir, self.files);
            self.files += 1;
        }
        self.pos = 0;
    }

    /// Copies `bytes` at the current position (room must be reserved).
    #[inline]
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        self.map[self.pos..self.pos + bytes.len()].copy_from_slice(bytes);
        self.pos += bytes.len();
    }
}

/// Creates `<dir>/<n>.raw`, preallocated (fallocate, like a segment) to
/// [`SEGMENT_BYTES`], and maps it read-write.
fn new_mapping(dir: &TempDir, n: u64) -> MmapMut {
    use std::os::fd::AsRawFd;
    let path = dir.path().join(format!("{n}.raw"));
    let file = File::options().read(true).write(true).create_new(true).open(&path).expect("create raw file");
    // SAFETY: a plain syscall on a descriptor we own; no memory is passed.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, SEGMENT_BYTES as libc::off_t) };
    assert_eq!(rc, 0, "posix_fallocate failed: {}", std::io::Error::from_raw_os_error(rc));
    // SAFETY: the file was just created by this process in a private temp
    // directory, and nothing else opens, truncates or writes it while mapped.
    unsafe { MmapOptions::new().len(SEGMENT_BYTES as usize).map_mut(&file) }.expect("map raw file")
}
