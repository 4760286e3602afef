//! Temporary directories.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Keeps every [`TempDir`] when set (to anything).
pub const KEEP_ENV: &str = "MILLPOND_KEEP_TEST_DIRS";
/// The name the tests used for [`KEEP_ENV`] before; still honoured.
pub const KEEP_ENV_OLD: &str = "MILLPOND_KEEP_TMP";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh, empty directory under `std::env::temp_dir()`, removed with
/// everything in it when dropped, unless `MILLPOND_KEEP_TEST_DIRS` is set.
///
/// The name holds the label, the process id, a per-process counter and the
/// current nanoseconds, and the directory is created only if it did not
/// exist: parallel tests and concurrent test binaries never share one.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a new empty directory whose name contains `label`.
    pub fn new(label: &str) -> TempDir {
        let root = std::env::temp_dir();
        std::fs::create_dir_all(&root).unwrap_or_else(|e| panic!("cannot create {}: {e}", root.display()));
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
            let path = root.join(format!("millpond-test-{label}-{}-{n}-{nanos}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => return TempDir { path },
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("cannot create {}: {e}", path.display()),
            }
        }
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
        if std::env::var_os(KEEP_ENV).is_some() || std::env::var_os(KEEP_ENV_OLD).is_some() {
            eprintln!("keeping {}", self.path.display());
            return;
        }
        if std::thread::panicking() {
            eprintln!("removing {} of a failed test ({KEEP_ENV}=1 keeps it)", self.path.display());
        }
        let _ = std::fs::remove_dir_all(&self.path); // best effort: a leftover temp dir fails nothing
    }
}
