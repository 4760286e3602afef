//! Helpers for the fault-tolerance tests (durability, compaction crashes,
//! full disks, hostile files, names and paths): temporary directories, the
//! paths of millpond's files, a deterministic generator, reading helpers and
//! re-running the current test binary as a child process.

#![allow(dead_code)] // each test crate uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use millpond::{Consumer, Message};

/// A fresh, unique directory under `std::env::temp_dir()`, removed (with
/// everything in it) when dropped. `MILLPOND_KEEP_TMP=1` keeps it.
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
        let path = std::env::temp_dir().join(format!("millpond-fault-{label}-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    /// Takes ownership of an existing directory (for example one a parent
    /// process created for a child).
    pub fn adopt(path: PathBuf) -> TempDir {
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

/// Whether the long variants should run (`MILLPOND_SOAK=1`).
pub fn soak() -> bool {
    std::env::var("MILLPOND_SOAK").is_ok_and(|v| v == "1")
}

// ---------------------------------------------------------------------------
// On-disk layout (see DESIGN.md, "On disk").

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

/// `<dir>/groups/<group>/<topic>/offsets`.
pub fn offsets_path(dir: &Path, group: &str, topic: &str) -> PathBuf {
    dir.join("groups").join(group).join(topic).join("offsets")
}

/// The bases of the partition's segment files, oldest first.
pub fn segment_bases(dir: &Path, topic: &str, partition: u32) -> Vec<u64> {
    let pdir = partition_dir(dir, topic, partition);
    let mut out: Vec<u64> = std::fs::read_dir(&pdir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", pdir.display()))
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let digits = name.strip_suffix(".log")?;
            (digits.len() == 20).then(|| digits.parse().ok()).flatten()
        })
        .collect();
    out.sort_unstable();
    out
}

/// File names in the partition directory that end with `suffix`.
pub fn files_ending(dir: &Path, topic: &str, partition: u32, suffix: &str) -> Vec<String> {
    let pdir = partition_dir(dir, topic, partition);
    let mut out: Vec<String> = std::fs::read_dir(&pdir)
        .map(|rd| rd.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.ends_with(suffix)).collect())
        .unwrap_or_default();
    out.sort();
    out
}

/// Every path under `root` (files and directories, not `root` itself), sorted.
pub fn tree(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            out.push(p.clone());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &mut out);
    out.sort();
    out
}

/// Copies a directory tree (regular files and directories only).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("cannot create {}: {e}", to.display()));
    for e in std::fs::read_dir(from).unwrap_or_else(|e| panic!("cannot list {}: {e}", from.display())) {
        let e = e.expect("directory entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap_or_else(|err| panic!("cannot copy {}: {err}", e.path().display()));
        }
    }
}

// ---------------------------------------------------------------------------
// Deterministic data.

/// Knuth's MMIX linear congruential generator: deterministic and seedable,
/// good enough for kill delays, sizes and garbage bytes (no `rand`).
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

/// A record as the tests remember it: what was written at an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub partition: u32,
    pub offset: u64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    /// `None` for a tombstone.
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Stored {
    /// Everything observable about a received message.
    pub fn of(m: &Message) -> Stored {
        Stored {
            partition: m.partition(),
            offset: m.offset(),
            timestamp: m.timestamp(),
            key: m.key().map(<[u8]>::to_vec),
            value: (!m.is_tombstone()).then(|| m.value().to_vec()),
            headers: m.headers().map(|(n, v)| (n.to_string(), v.to_vec())).collect(),
        }
    }
}

/// Reads with `try_recv` until the consumer is caught up (`Ok(None)`),
/// panicking on an error. At most `cap` messages.
pub fn drain(c: &mut Consumer, cap: usize) -> Vec<Message> {
    let mut out = Vec::new();
    while out.len() < cap {
        match c.try_recv() {
            Ok(Some(m)) => out.push(m),
            Ok(None) => break,
            Err(e) => panic!("unexpected error while reading after {} messages: {e}", out.len()),
        }
    }
    out
}

/// Polls `f` every 20 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// Child processes: the test binary re-runs one of its own tests.

/// The environment variable naming the role of a child process.
pub const CHILD_ENV: &str = "MILLPOND_FAULT_CHILD";
/// The environment variable passing a directory to a child process.
pub const CHILD_DIR_ENV: &str = "MILLPOND_FAULT_DIR";

/// The role this process was started with, if it is a child.
pub fn child_role() -> Option<String> {
    std::env::var(CHILD_ENV).ok()
}

/// A command re-running exactly the test `test_name` of the current test
/// binary as a child with `role` and `dir` in its environment.
pub fn child_command(test_name: &str, role: &str, dir: &Path) -> Command {
    let exe = std::env::current_exe().expect("current test binary");
    let mut cmd = Command::new(exe);
    cmd.args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, role)
        .env(CHILD_DIR_ENV, dir)
        .stdin(Stdio::null());
    cmd
}

/// The directory passed to this child process.
pub fn child_dir() -> PathBuf {
    PathBuf::from(std::env::var_os(CHILD_DIR_ENV).expect("child started without a directory"))
}

// ---------------------------------------------------------------------------
// Records the tests send and remember.

/// What a test sends, kept so that it can check what comes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub key: Option<Vec<u8>>,
    /// `None` for a tombstone.
    pub value: Option<Vec<u8>>,
    pub timestamp: i64,
    pub headers: Vec<(String, Vec<u8>)>,
    /// An explicit partition, if any.
    pub partition: Option<u32>,
}

impl Spec {
    /// A keyless record with `value` at `timestamp`.
    pub fn value(value: impl Into<Vec<u8>>, timestamp: i64) -> Spec {
        Spec { key: None, value: Some(value.into()), timestamp, headers: Vec::new(), partition: None }
    }

    /// A keyed record.
    pub fn keyed(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>, timestamp: i64) -> Spec {
        Spec { key: Some(key.into()), ..Spec::value(value, timestamp) }
    }

    /// A tombstone for `key`.
    pub fn tombstone(key: impl Into<Vec<u8>>, timestamp: i64) -> Spec {
        Spec { key: Some(key.into()), value: None, timestamp, headers: Vec::new(), partition: None }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Spec {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Sends to `partition` explicitly.
    pub fn in_partition(mut self, partition: u32) -> Spec {
        self.partition = Some(partition);
        self
    }

    /// The record to send (borrowing this spec's bytes).
    pub fn record(&self) -> millpond::Record<'_> {
        let mut r = match &self.value {
            Some(v) => millpond::Record::new(v.as_slice()),
            None => millpond::Record::tombstone(self.key.as_deref().expect("a tombstone has a key")),
        };
        if let (Some(k), Some(_)) = (&self.key, &self.value) {
            r = r.key(k.as_slice());
        }
        for (n, v) in &self.headers {
            r = r.header(n.as_str(), v.as_slice());
        }
        if let Some(p) = self.partition {
            r = r.partition(p);
        }
        r.timestamp(self.timestamp)
    }

    /// What a consumer must receive for this record stored at `id`.
    pub fn stored(&self, id: millpond::RecordId) -> Stored {
        Stored {
            partition: id.partition,
            offset: id.offset,
            timestamp: self.timestamp,
            key: self.key.clone(),
            value: self.value.clone(),
            headers: self.headers.clone(),
        }
    }
}

/// Sends every spec one by one, returning what was stored.
pub fn send_all(p: &millpond::Producer, specs: &[Spec]) -> Vec<Stored> {
    specs
        .iter()
        .map(|s| {
            let id = p.send(s.record()).unwrap_or_else(|e| panic!("send failed: {e}"));
            s.stored(id)
        })
        .collect()
}

/// Everything a fresh consumer reads from the earliest offset (panics on
/// errors), as [`Stored`] values.
pub fn read_all(topic: &millpond::Topic) -> Vec<Stored> {
    let mut c = topic.consumer(millpond::StartFrom::Earliest).expect("consumer");
    drain(&mut c, usize::MAX).iter().map(Stored::of).collect()
}

/// Sorts by (partition, offset), the order the tests compare in.
pub fn by_position(mut v: Vec<Stored>) -> Vec<Stored> {
    v.sort_by_key(|s| (s.partition, s.offset));
    v
}

/// A tmpfs mounted for the test, unmounted on drop.
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` at `path`, or says why it cannot.
    pub fn mount(path: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "millpond-test"])
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Tmpfs { path: path.to_path_buf() })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.path).status().is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status(); // lazy, as a last resort
        }
    }
}
