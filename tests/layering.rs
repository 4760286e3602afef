//! The source layout's fitness test: it reads `src/` and fails when the
//! layering decays.
//!
//! The crate is built in floors, each a folder that may import only its own
//! floor, the floors below it, and `crate::error`:
//!
//! | floor | folder | holds |
//! | --- | --- | --- |
//! | 0 | `storage/` | the engine: segments, frames, partition logs, records, the notifier |
//! | 1 | `topic/` | topic config, names, metadata, shared topic state |
//! | 2 | `group/` | group coordination and committed offsets |
//! | 3 | `broker/` | the directory, shared broker state, maintenance, the `Topic` handle |
//! | 4 | `client/` | producers, consumers, groups' client API, typed topics |
//! | 5 | `bridge/` | background workers: mirrors, the Kafka bridge |
//!
//! What is checked, on every `crate::` path in code (comments, strings and
//! `#[cfg(test)] mod tests` blocks aside):
//!
//! 1. it starts with a module (`crate::storage::...`), never with an item
//!    re-exported by the crate root (`crate::Record`): the façade is not a
//!    dependency of what it exports;
//! 2. it does not lead to a higher floor;
//! 3. the graph of file-to-file imports has no cycle;
//! 4. no `super::` paths (a file says where what it uses lives);
//! 5. `lib.rs` holds docs, `mod` lines and `pub use` only; a `mod.rs` holds
//!    docs and `mod` lines only;
//! 6. no file has more than 600 lines of code (comments, blank lines and
//!    tests aside) unless its first lines say why (`//! Longer than 600
//!    lines because ...`);
//! 7. library code never writes to the host's stdout or stderr
//!    (`println!`, `eprintln!`, `print!`, `eprint!`, `dbg!`): diagnostics go
//!    through the `log` facade.
//!
//! `src/bin/` holds the `millpond` command-line tool: a crate of its own
//! above every floor, which uses the library's public API only (it cannot
//! reach anything else) and whose job is to print. Its `crate::` paths
//! name its own modules, so rules 1, 2, 5 and 7 do not apply to it; rules
//! 3 (no cycle among its files), 4 and 6 do.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// File (as its module path) to the files it imports.
type Graph = BTreeMap<Vec<String>, BTreeSet<Vec<String>>>;

const FLOORS: [&str; 6] = ["storage", "topic", "group", "broker", "client", "bridge"];
const MAX_CODE_LINES: usize = 600;

/// A source file, read and stripped down to the code the rules look at.
struct Source {
    /// Module path: `["storage", "segment"]`; `[]` for lib.rs.
    module: Vec<String>,
    /// Path relative to the crate root, for messages.
    shown: String,
    /// The raw text, for the top-of-file reason.
    raw: String,
    /// Code lines (comments and strings blanked, test modules dropped),
    /// with their 1-based line numbers.
    code: Vec<(usize, String)>,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts
}

/// Blanks `//` comments and string literals (so neither can hold a path
/// the rules see), and drops everything from a `#[cfg(test)]` module on.
fn code_lines(raw: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = raw.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim();
        if trimmed.starts_with("#[cfg(") && trimmed.contains("test") {
            // A test module (or test-only item) runs to the end of the file
            // when it is `mod tests`; a single test-only item is skipped
            // up to its end.
            let next = lines.get(i + 1).map(|l| l.trim()).unwrap_or("");
            if next.starts_with("mod ") && next.ends_with('{') {
                break;
            }
        }
        let mut code = String::new();
        let mut chars = line.chars().peekable();
        let mut in_str = false;
        while let Some(c) = chars.next() {
            if in_str {
                if c == '\\' {
                    chars.next();
                } else if c == '"' {
                    in_str = false;
                    code.push('"');
                }
                continue;
            }
            match c {
                '/' if chars.peek() == Some(&'/') => break,
                '"' => {
                    in_str = true;
                    code.push('"');
                }
                '\'' => {
                    // A char literal such as '"' must not open a string.
                    let rest: String = chars.clone().take(3).collect();
                    if rest.starts_with("\"'") || rest.starts_with("\\\"") {
                        chars.next();
                        chars.next();
                        if rest.starts_with("\\\"") {
                            chars.next();
                        }
                        code.push_str("' '");
                    } else {
                        code.push(c);
                    }
                }
                _ => code.push(c),
            }
        }
        out.push((i + 1, code));
        i += 1;
    }
    out
}

fn read_sources() -> Vec<Source> {
    let root = src_dir();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files
        .into_iter()
        .map(|path| {
            let rel = path.strip_prefix(&root).unwrap().to_path_buf();
            let raw = std::fs::read_to_string(&path).unwrap();
            Source { module: module_of(&rel), shown: format!("src/{}", rel.display()), code: code_lines(&raw), raw }
        })
        .collect()
}

/// Every `crate::a::b::C` path in `code`, as its segments, with `use`
/// groups (`crate::a::{b::C, d}`) expanded.
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `$crate::` or an identifier ending in "crate"
        }
        expand(rest, Vec::new(), &mut out);
    }
    out
}

/// Reads one path (or `use` tree) at the start of `text` after `prefix`.
fn expand(text: &str, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut segs = prefix;
    let mut t = text;
    loop {
        let ident: String = t.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if ident.is_empty() {
            if let Some(inner) = t.strip_prefix('{') {
                for part in split_group(inner) {
                    expand(part.trim(), segs.clone(), out);
                }
                return;
            }
            break;
        }
        segs.push(ident.clone());
        t = &t[ident.len()..];
        match t.strip_prefix("::") {
            Some(after) => t = after,
            None => break,
        }
    }
    if !segs.is_empty() && segs.last().map(String::as_str) != Some("self") {
        out.push(segs);
    } else if segs.len() > 1 {
        segs.pop();
        out.push(segs);
    }
}

/// The top-level, comma-separated parts of a `{...}` group (the text
/// after the opening brace, up to its matching close).
fn split_group(inner: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                parts.push(&inner[start..i]);
                return parts.into_iter().filter(|p| !p.trim().is_empty()).collect();
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// Joins each `use` statement onto one line, so a group split over lines
/// is read whole; other lines stay as they are.
fn statements(code: &[(usize, String)]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (n, line) in code {
        if let Some((start, text)) = open.as_mut() {
            text.push(' ');
            text.push_str(line.trim());
            if line.contains(';') {
                out.push((*start, std::mem::take(text)));
                open = None;
            }
            continue;
        }
        let t = line.trim_start();
        if (t.starts_with("use ") || t.starts_with("pub use ") || t.starts_with("pub(crate) use ")) && !t.contains(';')
        {
            open = Some((*n, line.trim().to_string()));
        } else {
            out.push((*n, line.clone()));
        }
    }
    if let Some(o) = open {
        out.push(o);
    }
    out
}

/// Whether `word` occurs in `text` not as the tail of a longer name
/// (`print!` is not found in `eprint!`).
fn contains_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(at, _)| !text[..at].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_'))
}

/// The module (a prefix of `path`) that a file defines: the longest one.
fn target_module<'a>(path: &[String], modules: &'a BTreeSet<Vec<String>>) -> Option<&'a Vec<String>> {
    (1..=path.len()).rev().find_map(|n| modules.get(&path[..n]))
}

fn floor(module: &[String]) -> Option<usize> {
    FLOORS.iter().position(|f| module.first().map(String::as_str) == Some(*f))
}

/// Every violation, as `file:line: what`.
fn violations() -> (Vec<String>, Graph) {
    let sources = read_sources();
    let modules: BTreeSet<Vec<String>> = sources.iter().map(|s| s.module.clone()).collect();
    let mut found = Vec::new();
    let mut graph: Graph = BTreeMap::new();
    for s in &sources {
        let is_lib = s.module.is_empty();
        let is_bin = s.shown.starts_with("src/bin/");
        let is_mod_rs = s.shown.ends_with("/mod.rs");
        let here = floor(&s.module);
        let mut shape_reported = false;
        graph.entry(s.module.clone()).or_default();
        for (n, stmt) in statements(&s.code) {
            let t = stmt.trim();
            if t.contains("super::") {
                found.push(format!("{}:{n}: `super::` path; name the module from `crate::`", s.shown));
            }
            if is_bin {
                // The binary's own modules, by their path in the binary crate.
                for path in crate_paths(t) {
                    let mut target = s.module[..2].to_vec();
                    target.push(path[0].clone());
                    if target != s.module && modules.contains(&target) {
                        graph.get_mut(&s.module).unwrap().insert(target);
                    }
                }
                continue;
            }
            for macro_name in ["println!", "eprintln!", "print!", "eprint!", "dbg!"] {
                if contains_word(t, macro_name) {
                    found.push(format!(
                        "{}:{n}: `{macro_name}` writes to the host's terminal; use the log facade",
                        s.shown
                    ));
                }
            }
            if is_lib {
                let allowed = t.is_empty()
                    || t.starts_with("#")
                    || t.starts_with("mod ")
                    || t.starts_with("pub use ")
                    || t == "pub struct ReadmeDoctests;";
                if !allowed && !shape_reported {
                    shape_reported = true;
                    found.push(format!("{}:{n}: lib.rs holds docs, `mod` lines and `pub use` only: `{t}`", s.shown));
                }
                continue;
            }
            if is_mod_rs {
                let allowed =
                    t.is_empty() || t.starts_with("#") || t.starts_with("mod ") || t.starts_with("pub(crate) mod ");
                if !allowed && !shape_reported {
                    shape_reported = true;
                    found.push(format!("{}:{n}: a mod.rs holds docs and `mod` lines only: `{t}`", s.shown));
                }
            }
            for path in crate_paths(t) {
                let first = path[0].as_str();
                if first == "error" {
                    if here.is_none() && s.module != ["error"] {
                        continue;
                    }
                    graph.get_mut(&s.module).unwrap().insert(vec!["error".to_string()]);
                    continue;
                }
                let Some(target) = target_module(&path, &modules) else {
                    found.push(format!(
                        "{}:{n}: `crate::{}` goes through the crate root's re-exports; use the module path",
                        s.shown,
                        path.join("::")
                    ));
                    continue;
                };
                if s.module == ["error"] {
                    found.push(format!("{}:{n}: error.rs is below every floor and imports none", s.shown));
                }
                if let (Some(from), Some(to)) = (here, floor(target))
                    && to > from
                {
                    found.push(format!(
                        "{}:{n}: `{}` ({}) imports `crate::{}` from a higher floor ({})",
                        s.shown,
                        s.module.join("::"),
                        FLOORS[from],
                        path.join("::"),
                        FLOORS[to]
                    ));
                }
                if target != &s.module {
                    graph.get_mut(&s.module).unwrap().insert(target.clone());
                }
            }
        }
        let code_count = s.code.iter().filter(|(_, l)| !l.trim().is_empty()).count();
        let reason = s.raw.lines().take(10).any(|l| l.starts_with("//! Longer than 600 lines because"));
        if code_count > MAX_CODE_LINES && !reason {
            found.push(format!(
                "{}: {code_count} lines of code (over {MAX_CODE_LINES}); split it by concept or say why at its top",
                s.shown
            ));
        }
    }
    for cycle in cycles(&graph) {
        let names: Vec<String> = cycle.iter().map(|m| m.join("::")).collect();
        found.push(format!("import cycle: {}", names.join(" -> ")));
    }
    (found, graph)
}

/// The strongly connected components of more than one file (Tarjan).
fn cycles(graph: &Graph) -> Vec<Vec<Vec<String>>> {
    struct State<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g Vec<String>, usize>,
        low: BTreeMap<&'g Vec<String>, usize>,
        stack: Vec<&'g Vec<String>>,
        on_stack: BTreeSet<&'g Vec<String>>,
        next: usize,
        out: Vec<Vec<Vec<String>>>,
    }
    fn visit<'g>(st: &mut State<'g>, v: &'g Vec<String>) {
        st.index.insert(v, st.next);
        st.low.insert(v, st.next);
        st.next += 1;
        st.stack.push(v);
        st.on_stack.insert(v);
        let graph = st.graph;
        for w in graph.get(v).into_iter().flatten() {
            let Some((w, _)) = graph.get_key_value(w) else { continue };
            if !st.index.contains_key(w) {
                visit(st, w);
                let lw = st.low[w];
                let lv = st.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if st.on_stack.contains(w) {
                let iw = st.index[w];
                let lv = st.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if st.low[v] == st.index[v] {
            let mut component = Vec::new();
            loop {
                let w = st.stack.pop().unwrap();
                st.on_stack.remove(w);
                component.push(w.clone());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                st.out.push(component);
            }
        }
    }
    let mut st = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !st.index.contains_key(v) {
            visit(&mut st, v);
        }
    }
    st.out
}

#[test]
fn every_import_goes_down_the_floors_and_none_closes_a_cycle() {
    let (found, _) = violations();
    assert!(found.is_empty(), "the layout decayed:\n{}", found.join("\n"));
}

#[test]
fn the_checker_sees_an_upward_import_a_cycle_and_a_root_reexport() {
    // The rules would be worthless if the parser missed paths: check it on
    // text shaped like the real thing.
    let code = code_lines(
        "use crate::storage::{cursor::Cursor, record::{Message, Record}};\n\
         // use crate::bridge::mirror::Mirror; (a comment: not seen)\n\
         let s = \"crate::client::x\"; let t = crate::topic::state::TopicState::new();\n\
         use crate::Record;\n",
    );
    let joined: Vec<Vec<String>> = statements(&code).iter().flat_map(|(_, l)| crate_paths(l)).collect();
    let shown: Vec<String> = joined.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        shown,
        [
            "storage::cursor::Cursor",
            "storage::record::Message",
            "storage::record::Record",
            "topic::state::TopicState::new",
            "Record"
        ]
    );
    let mut graph = BTreeMap::new();
    let a = vec!["a".to_string()];
    let b = vec!["b".to_string()];
    graph.insert(a.clone(), BTreeSet::from([b.clone()]));
    graph.insert(b.clone(), BTreeSet::from([a.clone()]));
    assert_eq!(cycles(&graph), vec![vec![a, b]]);
}

#[test]
fn every_floor_folder_exists_and_holds_code() {
    let (_, graph) = violations();
    for f in FLOORS {
        let files = graph.keys().filter(|m| m.first().map(String::as_str) == Some(f)).count();
        assert!(files > 0, "floor {f} has no files: the table in this test's docs is out of date");
    }
}
