//! File-system helpers: opening without following symlinks, atomic
//! replacement, directory fsync, preallocation.
//!
//! Every file millpond opens goes through [`new_file_options`],
//! [`open_read`], [`open_read_write`] or [`read_file`], which add
//! `O_NOFOLLOW`: a symlink planted in the broker directory (the last path
//! component) is refused with [`Error::Symlink`] instead of being followed
//! to a file outside it. Directories are checked with [`check_real_dir`]
//! before millpond reads or writes below them.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Permissions of every file millpond creates: owner read-write, others
/// read-only, never world-writable (the process umask may narrow it further).
#[cfg(unix)]
pub(crate) const FILE_MODE: u32 = 0o644;
/// Permissions of every directory millpond creates.
#[cfg(unix)]
pub(crate) const DIR_MODE: u32 = 0o755;

/// Opens options for a new file with millpond's permissions, refusing to
/// follow a symlink in the last component.
pub(crate) fn new_file_options() -> OpenOptions {
    let mut o = nofollow_options();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(FILE_MODE);
    }
    o
}

/// `OpenOptions` with `O_NOFOLLOW` (and `O_CLOEXEC`, which std adds).
fn nofollow_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NOFOLLOW);
    }
    o
}

/// Opens an existing file for reading without following a symlink.
///
/// With `O_NONBLOCK` too, which changes nothing for a regular file but keeps
/// a FIFO planted in a segment's place from blocking the open (the caller's
/// checks then refuse it as not a regular file).
pub(crate) fn open_read(path: &Path) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    o.read(true).open(path)
}

/// Opens an existing file for reading and writing without following a symlink.
pub(crate) fn open_read_write(path: &Path) -> std::io::Result<File> {
    nofollow_options().read(true).write(true).open(path)
}

/// Reads a whole file without following a symlink (`std::fs::read` would).
pub(crate) fn read_file(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut f = open_read(path)?;
    let mut out = Vec::new();
    f.read_to_end(&mut out)?;
    Ok(out)
}

/// `N` random bytes from the kernel (`/dev/urandom`), for identities such
/// as a topic's id.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    use std::io::Read;
    let path = Path::new("/dev/urandom");
    let mut out = [0u8; N];
    open_read(path).and_then(|mut f| f.read_exact(&mut out)).map_err(Error::io_at("read random bytes", path))?;
    Ok(out)
}

/// Fails with [`Error::Symlink`] if `path` is a symlink, and with an I/O
/// error if it is missing or not a directory; `what` names it in the error.
pub(crate) fn check_real_dir(path: &Path, what: &'static str) -> Result<()> {
    let meta = fs::symlink_metadata(path).map_err(Error::io_at(what, path))?;
    if meta.file_type().is_symlink() {
        return Err(Error::Symlink { op: what, path: path.to_path_buf() });
    }
    if !meta.is_dir() {
        return Err(Error::io(what, path, std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory")));
    }
    Ok(())
}

/// Whether `path` exists and is a symlink (a dangling one included).
pub(crate) fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// A `DirBuilder` with millpond's permissions.
fn dir_builder() -> fs::DirBuilder {
    let mut b = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(DIR_MODE);
    }
    b
}

/// Creates `dir` and its missing parents with millpond's permissions.
pub(crate) fn create_dir_all(dir: &Path) -> Result<()> {
    dir_builder().recursive(true).create(dir).map_err(Error::io_at("create directory", dir))
}

/// Creates the directory `dir` with millpond's permissions; an entry
/// already there (a planted directory, a symlink) is an error, never
/// written into.
pub(crate) fn create_new_dir(dir: &Path) -> Result<()> {
    dir_builder().create(dir).map_err(Error::io_at("create directory", dir))
}

/// fsyncs a directory, making the creation, removal or renaming of its
/// entries durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    let d = open_dir(dir).map_err(Error::io_at("open directory for fsync", dir))?;
    d.sync_all().map_err(Error::io_at("fsync directory", dir))
}

/// Removes the file (or symlink: never its target) at `path` if it is there;
/// a file already gone is no error. `op` names the removal in the error.
pub(crate) fn remove_if_present(path: &Path, op: &'static str) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(op, path, e)),
    }
}

/// Opens a directory (for fsync) without following a symlink.
fn open_dir(dir: &Path) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY);
    }
    o.open(dir)
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Replaces `path` with `bytes` atomically: writes a temporary file beside
/// it, fsyncs it, renames it over `path` and fsyncs the directory. A crash
/// leaves either the old or the new contents, never a mix.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let mut f =
        new_file_options().write(true).create(true).truncate(true).open(&tmp).map_err(Error::io_at("create", &tmp))?;
    f.write_all(bytes).map_err(Error::io_at("write", &tmp))?;
    f.sync_all().map_err(Error::io_at("fsync", &tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(Error::io_at("rename into place", path))?;
    if let Some(dir) = path.parent() {
        fsync_dir(dir)?;
    }
    Ok(())
}

/// Replaces `path` with `bytes` by rename, without fsync: for derived data
/// (indexes) that is checksummed and rebuilt when missing or bad.
pub(crate) fn write_replace_unsynced(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let mut f =
        new_file_options().write(true).create(true).truncate(true).open(&tmp).map_err(Error::io_at("create", &tmp))?;
    f.write_all(bytes).map_err(Error::io_at("write", &tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(Error::io_at("rename into place", path))
}

/// Reserves real disk blocks for the first `len` bytes of `file`, so later
/// writes through a mapping cannot hit a full disk (which would raise SIGBUS).
pub(crate) fn preallocate(file: &File, len: u64, path: &Path) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let len_off = libc::off_t::try_from(len).map_err(|_| Error::InvalidConfig {
            reason: format!("segment of {len} bytes is too large for this platform"),
        })?;
        // SAFETY: plain syscall on a file descriptor we own; no memory is passed.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len_off) };
        if rc != 0 {
            return Err(Error::io("preallocate", path, std::io::Error::from_raw_os_error(rc)));
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        // Without fallocate, write zeros so the blocks are really allocated.
        use std::io::{Seek, SeekFrom};
        let current = file.metadata().map_err(Error::io_at("stat", path))?.len();
        if current >= len {
            return Ok(());
        }
        let mut f = file;
        f.seek(SeekFrom::Start(current)).map_err(Error::io_at("seek", path))?;
        let zeros = vec![0u8; 1 << 16];
        let mut left = len - current;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            f.write_all(&zeros[..n]).map_err(Error::io_at("preallocate", path))?;
            left -= n as u64;
        }
        Ok(())
    }
}

/// Asks the kernel to bring `[start, start + len)` of `file` into the page
/// cache now (`posix_fadvise(POSIX_FADV_WILLNEED)`), on the calling thread's
/// time. A hint: it changes no byte, and its failure changes nothing.
pub(crate) fn advise_willneed(file: &File, start: u64, len: u64) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(off), Ok(len)) = (libc::off_t::try_from(start), libc::off_t::try_from(len)) else {
            return Ok(());
        };
        // SAFETY: plain syscall on a file descriptor we own; no memory is passed.
        let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), off, len, libc::POSIX_FADV_WILLNEED) };
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, start, len);
        Ok(())
    }
}

/// The ranges of `[from, to)` of `file` that may hold data, as the file
/// system reports them (`SEEK_DATA` / `SEEK_HOLE`): holes of a sparse file
/// and the unwritten extents `fallocate` leaves on ext4 and XFS are left
/// out, so recovery reads what was written, not the whole preallocated
/// segment. Where the file system cannot say, the whole range is returned.
pub(crate) fn data_ranges(file: &File, from: u64, to: u64) -> Vec<(u64, u64)> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        let mut out = Vec::new();
        let mut pos = from;
        while pos < to {
            let Ok(at) = libc::off_t::try_from(pos) else { return vec![(from, to)] };
            // SAFETY: lseek on a descriptor we own; no memory is passed.
            let data = unsafe { libc::lseek(fd, at, libc::SEEK_DATA) };
            if data < 0 {
                return match std::io::Error::last_os_error().raw_os_error() {
                    Some(libc::ENXIO) => out, // no data after `pos`
                    _ => vec![(from, to)],    // not supported here: assume data
                };
            }
            // SAFETY: as above.
            let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
            if hole < 0 {
                return vec![(from, to)];
            }
            let (start, end) = (data as u64, (hole as u64).min(to));
            if start >= to {
                break;
            }
            if end > start {
                out.push((start, end));
            }
            pos = end.max(start + 1);
        }
        out
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        vec![(from, to)]
    }
}
