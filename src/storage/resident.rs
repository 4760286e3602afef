//! Test helper (Linux): how much of a mapped file is resident in this
//! process, from `/proc/self/smaps`. Compiled into the library's unit tests
//! and, through `#[path]`, into `tests/prefault.rs`, so both read smaps the
//! same way.

use std::path::Path;

/// Resident KiB of this process's mappings of `path`.
///
/// # Panics
///
/// If smaps cannot be read or parsed: this is test code.
pub(crate) fn resident_kib(path: &Path) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("read /proc/self/smaps");
    let name = path.to_str().expect("a UTF-8 path");
    // A mapping's header line starts with its address range, `start-end`.
    let is_header = |line: &str| {
        line.split_whitespace().next().is_some_and(|range| {
            range
                .split_once('-')
                .is_some_and(|(a, b)| !a.is_empty() && a.chars().chain(b.chars()).all(|c| c.is_ascii_hexdigit()))
        })
    };
    let mut in_mapping = false;
    let mut total = 0;
    for line in smaps.lines() {
        if is_header(line) {
            in_mapping = line.ends_with(name);
        } else if in_mapping && let Some(kb) = line.strip_prefix("Rss:") {
            total += kb.trim().trim_end_matches("kB").trim().parse::<u64>().expect("an Rss figure");
        }
    }
    total
}

/// KiB of `path` in the page cache, mapped by this process or not: what
/// `mincore` reports for a fresh read-only mapping of the whole file.
///
/// # Panics
///
/// If the file cannot be opened, mapped or asked about: this is test code.
pub(crate) fn cached_kib(path: &Path) -> u64 {
    let file = std::fs::File::open(path).expect("open the file");
    let len = file.metadata().expect("stat the file").len() as usize;
    if len == 0 {
        return 0;
    }
    // SAFETY: a read-only mapping that this function never reads through;
    // it only hands its address to `mincore`, so a file changed underneath
    // it cannot cause undefined behaviour here.
    let map = unsafe { memmap2::Mmap::map(&file) }.expect("map the file");
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).expect("a page size");
    let mut vec = vec![0u8; len.div_ceil(page)];
    // SAFETY: `map` is a live mapping of `len` bytes starting at a page
    // boundary, and `vec` has one byte for each of its pages, as mincore
    // requires.
    let rc = unsafe { libc::mincore(map.as_ptr() as *mut libc::c_void, len, vec.as_mut_ptr()) };
    assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
    vec.iter().filter(|&&b| b & 1 == 1).count() as u64 * (page as u64 / 1024)
}
