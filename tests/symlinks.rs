//! millpond never follows a symlink planted inside the broker directory and
//! never touches anything outside it (DESIGN.md, "On disk"): not through the
//! lock file, `topics/`, `groups/`, `trash/`, a topic directory, its
//! `topic.meta` or a partition directory. Only the broker directory itself
//! may be a symlink (the user's choice).

mod support;

use std::os::unix::fs::symlink;
use std::path::Path;

use millpond::{Broker, Error, Record, TopicConfig};
use support::dir::TempDir;
use support::records::sorted_values as values;
use support::tree::snapshot;

/// Small segments, so snapshots of whole topics stay cheap.
fn cfg() -> TopicConfig {
    TopicConfig::default().segment_bytes(64 << 10).max_record_bytes(4096)
}

/// A broker directory holding topic `name` (2 partitions, 10 records), closed.
fn broker_with_topic(label: &str, name: &str) -> TempDir {
    let dir = TempDir::new(label);
    let broker = Broker::open(dir.path()).unwrap();
    let t = broker.create_topic(name, cfg().partitions(2)).unwrap();
    t.producer().send_batch((0..10).map(|i| Record::new(format!("{name}-{i}")))).unwrap();
    drop(t);
    broker.close().unwrap();
    dir
}

/// `broker.topic(name)`, `create_topic` and `delete_topic` all say the topic
/// is damaged, and `damaged_topics` lists it with a `Symlink` error.
fn assert_damaged_by_symlink(broker: &Broker, name: &str, link: &Path) {
    let damaged = broker.damaged_topics();
    assert_eq!(damaged.len(), 1, "{damaged:?}");
    assert_eq!(damaged[0].name, name);
    assert_eq!(damaged[0].path, broker.dir().join("topics").join(name));
    match &*damaged[0].error {
        Error::Symlink { path, .. } => assert_eq!(path, link),
        other => panic!("expected Symlink, got {other:?}"),
    }
    assert!(!broker.topics().contains(&name.to_string()));
    for (what, r) in [
        ("topic", broker.topic(name).map(drop)),
        ("create_topic", broker.create_topic(name, cfg().partitions(2)).map(drop)),
        ("delete_topic", broker.delete_topic(name)),
    ] {
        match r {
            Err(Error::TopicDamaged { topic, reason, .. }) => {
                assert_eq!(topic, name, "{what}");
                assert!(reason.contains("symbolic link"), "{what}: {reason}");
            }
            other => panic!("{what}({name:?}) returned {other:?}, expected TopicDamaged"),
        }
    }
}

#[test]
fn dangling_lock_symlink_is_a_typed_error_and_its_target_is_not_created() {
    let dir = TempDir::new("sym-lock");
    let outside = TempDir::new("sym-lock-outside");
    let target = outside.join("created-through-the-lock");
    let lock = dir.join("millpond.lock");
    symlink(&target, &lock).unwrap();
    match Broker::open(dir.path()) {
        Err(Error::Symlink { path, .. }) => assert_eq!(path, lock),
        other => panic!("expected Symlink, got {other:?}"),
    }
    assert!(std::fs::symlink_metadata(&target).is_err(), "the lock's target was created outside");
    assert_eq!(snapshot(outside.path()), vec![]);
    // A lock symlink to an existing outside file: not opened, truncated or locked.
    std::fs::remove_file(&lock).unwrap();
    std::fs::write(&target, b"precious").unwrap();
    symlink(&target, &lock).unwrap();
    assert!(matches!(Broker::open(dir.path()), Err(Error::Symlink { .. })));
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
}

#[test]
fn symlinked_topic_meta_is_never_read_nor_written_and_the_topic_is_reported_damaged() {
    let dir = broker_with_topic("sym-meta", "t");
    {
        let broker = Broker::open(dir.path()).unwrap();
        broker.create_topic("u", cfg()).unwrap().producer().send(Record::new("u-0")).unwrap();
    }
    // topic.meta moved outside (a valid file for "t": following it would work).
    let outside = TempDir::new("sym-meta-outside");
    let meta = dir.join("topics/t/topic.meta");
    std::fs::rename(&meta, outside.join("topic.meta")).unwrap();
    symlink(outside.join("topic.meta"), &meta).unwrap();
    let before = snapshot(outside.path());

    let broker = Broker::open(dir.path()).unwrap();
    assert_eq!(broker.topics(), ["u"]);
    assert_eq!(values(&broker, "u"), [b"u-0".to_vec()]);
    assert_damaged_by_symlink(&broker, "t", &meta);
    broker.topic("u").unwrap().producer().send(Record::new("u-1")).unwrap();
    broker.close().unwrap();

    assert_eq!(snapshot(outside.path()), before, "the outside topic.meta was touched");
    assert!(std::fs::symlink_metadata(&meta).unwrap().file_type().is_symlink(), "the link is left alone");
}

#[test]
fn symlinked_topic_directory_is_reported_damaged_and_the_outside_directory_stays_unchanged() {
    // A real topic "t" in another broker directory, linked in as topics/t.
    let outside = broker_with_topic("sym-topicdir-outside", "t");
    let dir = TempDir::new("sym-topicdir");
    {
        let broker = Broker::open(dir.path()).unwrap();
        broker.create_topic("u", cfg()).unwrap();
    }
    let link = dir.join("topics/t");
    symlink(outside.join("topics/t"), &link).unwrap();
    let before = snapshot(outside.path());

    let broker = Broker::open(dir.path()).unwrap();
    assert_eq!(broker.topics(), ["u"]);
    assert_damaged_by_symlink(&broker, "t", &link);
    broker.topic("u").unwrap().producer().send(Record::new("u-0")).unwrap();
    broker.flush().unwrap();
    assert!(broker.verify().unwrap().is_clean());
    broker.close().unwrap();

    assert_eq!(snapshot(outside.path()), before, "the outside topic directory was touched");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link is left alone");
}

#[test]
fn symlinked_partition_directory_is_reported_damaged_and_not_followed() {
    let dir = broker_with_topic("sym-partdir", "t");
    let outside = TempDir::new("sym-partdir-outside");
    let part = dir.join("topics/t/1");
    std::fs::rename(&part, outside.join("1")).unwrap();
    symlink(outside.join("1"), &part).unwrap();
    let before = snapshot(outside.path());

    let broker = Broker::open(dir.path()).unwrap();
    assert_damaged_by_symlink(&broker, "t", &part);
    broker.close().unwrap();
    assert_eq!(snapshot(outside.path()), before, "the outside partition directory was touched");
}

#[test]
fn symlink_in_trash_is_unlinked_and_its_outside_target_left_untouched() {
    let dir = TempDir::new("sym-trash");
    drop(Broker::open(dir.path()).unwrap());
    let outside = TempDir::new("sym-trash-outside");
    std::fs::create_dir_all(outside.join("sub")).unwrap();
    std::fs::write(outside.join("sub/file"), b"keep me").unwrap();
    std::fs::write(outside.join("file"), b"keep me too").unwrap();
    symlink(outside.path(), dir.join("trash/1.0")).unwrap();
    symlink(outside.join("file"), dir.join("trash/1.1")).unwrap();
    symlink(outside.join("missing"), dir.join("trash/1.2")).unwrap();
    let before = snapshot(outside.path());

    let broker = Broker::open(dir.path()).unwrap();
    assert_eq!(snapshot(outside.path()), before, "emptying the trash followed a symlink");
    assert_eq!(snapshot(&dir.join("trash")), vec![], "the links themselves are removed");
    // Creating and deleting topics (both go through the trash) still work.
    broker.create_topic("t", cfg()).unwrap().producer().send(Record::new("x")).unwrap();
    broker.delete_topic("t").unwrap();
    broker.close().unwrap();
    assert_eq!(snapshot(outside.path()), before);
}

#[test]
fn symlinked_topics_groups_or_trash_directory_is_refused_and_the_outside_left_untouched() {
    for sub in ["topics", "groups", "trash"] {
        // The outside directory looks like the real thing (another broker's).
        let outside = broker_with_topic("sym-sub-outside", "t");
        let dir = TempDir::new("sym-sub");
        symlink(outside.join(sub), dir.join(sub)).unwrap();
        let before = snapshot(outside.path());
        match Broker::open(dir.path()) {
            Err(Error::Symlink { path, .. }) => assert_eq!(path, dir.join(sub), "{sub}"),
            other => panic!("{sub}: expected Symlink, got {other:?}"),
        }
        assert_eq!(snapshot(outside.path()), before, "{sub}: the outside directory was touched");
        // A dangling one is refused too, and nothing is created at its target.
        std::fs::remove_file(dir.join(sub)).unwrap();
        symlink(outside.join("nowhere"), dir.join(sub)).unwrap();
        assert!(matches!(Broker::open(dir.path()), Err(Error::Symlink { .. })), "{sub}");
        assert!(std::fs::symlink_metadata(outside.join("nowhere")).is_err(), "{sub}: created the target");
    }
}

#[test]
fn delete_topic_does_not_follow_a_symlinked_group_directory() {
    let dir = broker_with_topic("sym-group", "t");
    // Outside: what a group directory holding offsets of "t" looks like.
    let outside = TempDir::new("sym-group-outside");
    std::fs::create_dir_all(outside.join("t")).unwrap();
    std::fs::write(outside.join("t/offsets"), b"not millpond's").unwrap();
    symlink(outside.path(), dir.join("groups/g")).unwrap();
    let before = snapshot(outside.path());

    let broker = Broker::open(dir.path()).unwrap();
    let deleted = broker.delete_topic("t");
    assert_eq!(snapshot(outside.path()), before, "delete_topic removed offsets through a symlink");
    deleted.unwrap();
    broker.close().unwrap();
}

#[test]
fn broker_directory_itself_may_be_a_symlink() {
    let real = broker_with_topic("sym-root-real", "t");
    let links = TempDir::new("sym-root-links");
    let link = links.join("broker");
    symlink(real.path(), &link).unwrap();
    let broker = Broker::open(&link).unwrap();
    assert_eq!(broker.damaged_topics().len(), 0);
    assert_eq!(values(&broker, "t").len(), 10);
    broker.create_topic("u", cfg()).unwrap().producer().send(Record::new("u")).unwrap();
    broker.delete_topic("t").unwrap();
    broker.close().unwrap();
    assert_eq!(Broker::open(real.path()).unwrap().topics(), ["u"]);
}
