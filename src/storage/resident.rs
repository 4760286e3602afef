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
