//! Topic and group names become directory and file names, so they must never
//! reach outside the broker directory; and nothing millpond creates may be
//! world-writable.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use millpond::{AutoCommit, Broker, CleanupPolicy, Error, Record, StartFrom, TopicConfig, now_millis};
use support::dir::TempDir;
use support::layout::{meta_path, offsets_path};
use support::records::drain;
use support::tree::tree;

/// Names that must be refused, for topics and groups alike.
fn bad_names() -> Vec<String> {
    let mut v: Vec<String> = [
        "",
        ".",
        "..",
        "/",
        "a/b",
        "../escape",
        "../../../../tmp/escape",
        "/abs",
        "/tmp",
        "./x",
        "a/../b",
        "..\\x",
        "a\\b",
        "a\0b",
        "\0",
        "..\0",
        "naïve",
        "日本語",
        "emoji😀",
        "ｘ",
        "..\u{2044}x",
        "with space",
        "tab\t",
        "new\nline",
        "a:b",
        "a*b",
        "$HOME",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("x".repeat(250));
    v.push("y".repeat(1000));
    v.push(format!("../{}", "z".repeat(300)));
    v
}

/// Names that are valid, however odd they look, and must stay inside.
const ODD_VALID: &[&str] = &["..x", "x..", "...", "....", ".hidden", "-", "_", "-rf", "a.b-c_D9", "0", "CON", "nul"];

#[test]
fn invalid_topic_names_are_refused_and_create_nothing_anywhere() {
    let tmp = TempDir::new("names-topic");
    let broker = Broker::open(tmp.join("broker")).unwrap();
    let before = tree(tmp.path());
    let escape = Path::new("/tmp/escape");
    let escape_existed = escape.exists();
    for name in bad_names() {
        match broker.create_topic(&name, TopicConfig::default()) {
            Err(Error::InvalidName { kind: "topic", name: n, reason }) => {
                assert_eq!(n, name);
                assert!(!reason.is_empty());
            }
            other => panic!("create_topic({name:?}) must be InvalidName, got {other:?}"),
        }
        assert!(matches!(broker.delete_topic(&name), Err(Error::InvalidName { kind: "topic", .. })), "{name:?}");
        assert!(broker.topic(&name).is_err(), "{name:?}");
    }
    assert_eq!(tree(tmp.path()), before, "refused names created files or directories");
    assert!(broker.topics().is_empty());
    assert_eq!(escape.exists(), escape_existed, "\"../../../../tmp/escape\" reached /tmp");
}

#[test]
fn invalid_group_names_are_refused_and_create_nothing_anywhere() {
    let tmp = TempDir::new("names-group");
    let broker = Broker::open(tmp.join("broker")).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    topic.producer().send(Record::new("x")).unwrap();
    let before = tree(tmp.path());
    for name in bad_names() {
        match topic.group(&name) {
            Err(Error::InvalidName { kind: "group", name: n, .. }) => assert_eq!(n, name),
            Err(other) => panic!("group({name:?}) must be InvalidName, got {other:?}"),
            Ok(_) => panic!("group({name:?}) must be InvalidName, got a group"),
        }
    }
    assert_eq!(tree(tmp.path()), before, "refused group names created files or directories");
}

/// Checks that `path` exists and lies directly in `parent` (after resolving
/// any `.`, `..` or links).
fn assert_directly_in(path: &Path, parent: &Path) {
    let real = path.canonicalize().unwrap_or_else(|e| panic!("{} must exist: {e}", path.display()));
    assert_eq!(real.parent(), Some(parent.canonicalize().unwrap().as_path()), "{} escaped", path.display());
}

/// Creates topic `topic` and commits offsets for group `group` on it, then
/// checks where everything landed.
fn use_names(broker: &Broker, dir: &Path, topic_name: &str, group: &str) {
    let topic =
        broker.create_topic(topic_name, TopicConfig::default().segment_bytes(4096).max_record_bytes(1024)).unwrap();
    topic.producer().send_batch((0..3).map(|i| Record::new(format!("{i}")))).unwrap();
    let mut m = topic.group(group).unwrap().auto_commit(AutoCommit::Off).join().unwrap();
    assert_eq!(m.try_recv().unwrap().unwrap().value(), b"0");
    m.commit().unwrap();
    m.commit_offsets(&[(0, 2)]).unwrap();
    m.close().unwrap();
    assert_directly_in(&dir.join("topics").join(topic_name), &dir.join("topics"));
    assert_directly_in(&meta_path(dir, topic_name), &dir.join("topics").join(topic_name));
    assert_directly_in(&dir.join("groups").join(group), &dir.join("groups"));
    assert_directly_in(&dir.join("groups").join(group).join(topic_name), &dir.join("groups").join(group));
    assert_directly_in(&offsets_path(dir, group, topic_name), &dir.join("groups").join(group).join(topic_name));
}

#[test]
fn odd_but_valid_names_like_dotdot_x_stay_inside_the_broker_directory() {
    let tmp = TempDir::new("names-odd");
    let dir = tmp.join("broker");
    {
        let broker = Broker::open(&dir).unwrap();
        for (i, name) in ODD_VALID.iter().enumerate() {
            // Each odd name as a topic, and as a group on another odd topic.
            use_names(&broker, &dir, name, ODD_VALID[(i + 1) % ODD_VALID.len()]);
        }
        let mut names = broker.topics();
        names.sort();
        let mut want: Vec<String> = ODD_VALID.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(names, want);
    }
    // Nothing appeared beside the broker directory.
    let outside: Vec<PathBuf> = tree(tmp.path()).into_iter().filter(|p| !p.starts_with(&dir)).collect();
    assert!(outside.is_empty(), "files outside the broker directory: {outside:?}");
    // Everything reopens under the same names, with the group's offsets.
    let broker = Broker::open(&dir).unwrap();
    for (i, name) in ODD_VALID.iter().enumerate() {
        let topic = broker.topic(name).unwrap();
        let mut c = topic.consumer(StartFrom::Earliest).unwrap();
        assert_eq!(drain(&mut c, 10).len(), 3, "{name}");
        let group = topic.group(ODD_VALID[(i + 1) % ODD_VALID.len()]).unwrap();
        assert_eq!(group.committed().unwrap()[&0], 2, "{name}");
    }
    // Deleting an odd name removes only that topic.
    broker.delete_topic("..x").unwrap();
    assert!(!dir.join("topics").join("..x").exists());
    assert!(dir.join("topics").join("x..").exists() && dir.join("topics").join("...").exists());
    assert_eq!(broker.topics().len(), ODD_VALID.len() - 1);
}

/// Names of 249 characters are documented as valid (1..=249, Kafka's
/// limit), for topics and for groups: every file millpond derives from them
/// (staging directories, `groups/<group>/<topic>/offsets*`) stays within
/// the 255-byte file-name limit.
#[test]
fn longest_valid_names_of_249_characters_work_for_topics_and_groups() {
    let tmp = TempDir::new("names-long");
    let dir = tmp.join("broker");
    let broker = Broker::open(&dir).unwrap();
    let long_topic = "t".repeat(249);
    let long_group = "g".repeat(249);
    let mut failures = Vec::new();
    for (topic, group) in [("short", long_group.as_str()), (long_topic.as_str(), "short")] {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| use_names(&broker, &dir, topic, group)));
        if let Err(e) = result {
            let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
            failures.push(format!("topic of {} chars, group of {} chars: {msg}", topic.len(), group.len()));
        }
    }
    assert!(failures.is_empty(), "valid 249-character names do not work:\n{}", failures.join("\n"));
}

/// Walks everything under `root` (and `root` itself) and returns what is
/// world-writable, with its mode.
fn world_writable(root: &Path) -> Vec<(PathBuf, u32)> {
    std::iter::once(root.to_path_buf())
        .chain(tree(root))
        .filter_map(|p| {
            let mode = std::fs::symlink_metadata(&p).ok()?.permissions().mode();
            (mode & 0o002 != 0).then_some((p, mode & 0o7777))
        })
        .collect()
}

#[test]
fn nothing_millpond_creates_is_world_writable_even_with_umask_0() {
    // With umask 0, whatever mode millpond asks for is what the file gets:
    // a file created with the default 0o666 would be world-writable.
    // SAFETY: umask(2) only changes this process's file-creation mask.
    let old = unsafe { libc::umask(0) };
    let tmp = TempDir::new("names-modes");
    // The mask really is 0: a directory made with the default 0o777 mode is
    // world-writable, so the check below can see the difference.
    assert_ne!(std::fs::metadata(tmp.path()).unwrap().permissions().mode() & 0o002, 0, "umask(0) took effect");
    let dir = tmp.join("broker"); // created by Broker::open
    let mut checks = Vec::new();
    let mut check = |when: &str| checks.push((when.to_string(), world_writable(&dir)));
    {
        let broker = Broker::open(&dir).unwrap();
        check("after open");
        let cfg = TopicConfig::default().segment_bytes(4096).max_record_bytes(1024).partitions(3);
        let plain = broker.create_topic("plain", cfg.clone().retention_bytes(8192)).unwrap();
        let compacted = broker
            .create_topic(
                "compacted",
                cfg.clone().cleanup(CleanupPolicy::Compact).tombstone_retention(Duration::from_secs(1)),
            )
            .unwrap();
        check("after create_topic");
        // Rolls (indexes, sealed segments), retention, compaction.
        let value = vec![7u8; 300];
        plain.producer().send_batch((0..200).map(|_| Record::new(value.as_slice()))).unwrap();
        for i in 0..300 {
            compacted
                .producer()
                .send(Record::new(value.as_slice()).key(format!("k{}", i % 4)).timestamp(now_millis()))
                .unwrap();
        }
        check("after rolling");
        plain.enforce_retention().unwrap();
        compacted.compact().unwrap();
        check("after retention and compaction");
        // Groups: offsets, the previous version.
        for g in ["g1", "g2"] {
            let mut m = plain.group(g).unwrap().auto_commit(AutoCommit::Off).join().unwrap();
            m.try_recv().unwrap();
            m.commit().unwrap();
            m.try_recv().unwrap();
            m.commit().unwrap();
            m.close().unwrap();
        }
        check("after commits");
        let doomed = broker.create_topic("doomed", cfg).unwrap();
        doomed.producer().send(Record::new("x")).unwrap();
        drop(doomed);
        broker.delete_topic("doomed").unwrap();
        broker.flush().unwrap();
        check("after delete_topic");
        broker.close().unwrap();
    }
    let broker = Broker::open(&dir).unwrap();
    broker.topic("plain").unwrap().producer().send(Record::new("after reopen")).unwrap();
    drop(broker);
    check("after reopen and close");
    // SAFETY: restores the mask read above.
    unsafe { libc::umask(old) };

    let all = tree(&dir);
    assert!(all.iter().any(|p| p.extension().is_some_and(|e| e == "index")), "the test made index files");
    assert!(all.iter().any(|p| p.to_string_lossy().ends_with("offsets.prev")), "the test made .prev offsets");
    for (when, bad) in checks {
        assert!(bad.is_empty(), "{when}: world-writable: {bad:?}");
    }
}
