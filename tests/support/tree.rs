//! Directory trees: listing, snapshotting and copying them, never following
//! a symbolic link.

use std::path::{Path, PathBuf};

/// Every path under `root` (files, directories and links, not `root`
/// itself), sorted; the entries of a linked directory are not listed. A
/// missing or unreadable directory lists nothing.
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

/// What a [`snapshot`] records of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
}

/// Every entry under `root` (as [`tree`] lists them, sorted) with the bytes
/// of files and the targets of links: equal snapshots mean nothing was
/// touched. Panics if `root` is not a directory it can read.
pub fn snapshot(root: &Path) -> Vec<(PathBuf, Entry)> {
    std::fs::read_dir(root).unwrap_or_else(|e| panic!("cannot list {}: {e}", root.display()));
    tree(root)
        .into_iter()
        .map(|p| {
            let meta = std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("cannot stat {}: {e}", p.display()));
            let entry = if meta.file_type().is_symlink() {
                Entry::Link(std::fs::read_link(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display())))
            } else if meta.is_dir() {
                Entry::Dir
            } else {
                Entry::File(std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display())))
            };
            (p, entry)
        })
        .collect()
}

/// Copies a directory tree (regular files and directories only; a link is
/// copied as what it points to).
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
