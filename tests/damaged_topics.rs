//! One damaged topic does not take the broker down: `Broker::open` opens the
//! healthy topics and lists the others in `Broker::damaged_topics`, leaving
//! their files exactly as they are; files know whose they are, so a
//! `topic.meta` copied from another topic, or partition directories its
//! metadata does not account for, are reported rather than served.

mod support;

use millpond::{Broker, BrokerConfig, Error, Record, TopicConfig};
use support::dir::TempDir;
use support::layout::meta_path as meta;
use support::records::sorted_values as values;
use support::tree::tree;

fn cfg() -> TopicConfig {
    TopicConfig::default().segment_bytes(64 << 10).max_record_bytes(4096).partitions(2)
}

/// A closed broker directory with topics `names`, each with 10 records.
fn broker_with(label: &str, names: &[&str], config: TopicConfig) -> TempDir {
    let dir = TempDir::new(label);
    let broker = Broker::open(dir.path()).unwrap();
    for name in names {
        let t = broker.create_topic(name, config.clone()).unwrap();
        t.producer().send_batch((0..10).map(|i| Record::new(format!("{name}-{i}")))).unwrap();
    }
    broker.close().unwrap();
    dir
}

fn expected(topic: &str) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = (0..10).map(|i| format!("{topic}-{i}").into_bytes()).collect();
    v.sort();
    v
}

/// `topic`, `create_topic` and `delete_topic` of `name` all fail with
/// `TopicDamaged` naming it and its directory.
fn assert_refused_as_damaged(broker: &Broker, name: &str) {
    let path = broker.dir().join("topics").join(name);
    for (what, r) in [
        ("topic", broker.topic(name).map(drop)),
        ("create_topic", broker.create_topic(name, cfg()).map(drop)),
        ("delete_topic", broker.delete_topic(name)),
    ] {
        match r {
            Err(Error::TopicDamaged { topic, path: p, reason }) => {
                assert_eq!((topic.as_str(), &p), (name, &path), "{what}");
                assert!(!reason.is_empty(), "{what}");
            }
            other => panic!("{what}({name:?}) returned {other:?}, expected TopicDamaged"),
        }
    }
}

#[test]
fn one_corrupt_topic_meta_leaves_the_other_topics_usable() {
    let dir = broker_with("damaged-one", &["a", "b", "c"], cfg());
    let path = meta(dir.path(), "b");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    let before = tree(dir.path());

    let broker = Broker::open(dir.path()).unwrap();
    assert_eq!(broker.topics(), ["a", "c"]);
    assert_eq!(values(&broker, "a"), expected("a"));
    assert_eq!(values(&broker, "c"), expected("c"));
    let damaged = broker.damaged_topics();
    assert_eq!(damaged.len(), 1, "{damaged:?}");
    assert_eq!((damaged[0].name.as_str(), &damaged[0].path), ("b", &dir.join("topics/b")));
    match &*damaged[0].error {
        Error::CorruptMetadata { path: p, .. } => assert_eq!(p, &path),
        other => panic!("expected CorruptMetadata, got {other:?}"),
    }
    assert_refused_as_damaged(&broker, "b");
    broker.topic("a").unwrap().producer().send(Record::new("more")).unwrap();
    broker.close().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "the damaged topic.meta was changed");
    assert_eq!(tree(dir.path()), before, "files were added or removed");
}

#[test]
fn stray_entries_with_topic_names_are_reported_and_left_alone() {
    let dir = broker_with("damaged-stray", &["a"], cfg());
    let topics = dir.join("topics");
    std::fs::create_dir(topics.join("empty")).unwrap();
    std::fs::create_dir(topics.join("notes")).unwrap();
    std::fs::write(topics.join("notes/readme.txt"), b"mine").unwrap();
    std::fs::write(topics.join("plain-file"), b"also mine").unwrap();
    std::fs::create_dir(topics.join("not a topic name")).unwrap();
    let before = tree(dir.path());

    let broker = Broker::open(dir.path()).unwrap();
    assert_eq!(broker.topics(), ["a"]);
    let names: Vec<String> = broker.damaged_topics().into_iter().map(|d| d.name).collect();
    // Entries whose names millpond would never create are not reported.
    assert_eq!(names, ["empty", "notes", "plain-file"]);
    for name in ["empty", "notes", "plain-file"] {
        assert_refused_as_damaged(&broker, name);
    }
    broker.close().unwrap();
    assert_eq!(tree(dir.path()), before, "a stray entry was changed");
    assert_eq!(std::fs::read_dir(topics.join("empty")).unwrap().count(), 0, "create_topic filled the stray dir");
    assert_eq!(std::fs::read(topics.join("notes/readme.txt")).unwrap(), b"mine");
    assert_eq!(std::fs::read(topics.join("plain-file")).unwrap(), b"also mine");
}

#[test]
fn missing_topic_meta_is_reported_naming_the_file() {
    let dir = broker_with("damaged-nometa", &["a", "b"], cfg());
    std::fs::remove_file(meta(dir.path(), "b")).unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    assert_eq!(broker.topics(), ["a"]);
    let damaged = broker.damaged_topics();
    assert_eq!(damaged.len(), 1);
    assert!(damaged[0].error.to_string().contains("topic.meta"), "{}", damaged[0].error);
    assert_refused_as_damaged(&broker, "b");
}

#[test]
fn topic_meta_copied_from_another_topic_is_corrupt_metadata() {
    let dir = broker_with("damaged-foreign", &["a", "b"], cfg());
    let foreign = std::fs::read(meta(dir.path(), "a")).unwrap();
    std::fs::write(meta(dir.path(), "b"), &foreign).unwrap();
    let before = tree(dir.path());

    let broker = Broker::open(dir.path()).unwrap();
    assert_eq!(broker.topics(), ["a"]);
    assert_eq!(values(&broker, "a"), expected("a"));
    let damaged = broker.damaged_topics();
    assert_eq!(damaged.len(), 1, "{damaged:?}");
    assert_eq!(damaged[0].name, "b");
    match &*damaged[0].error {
        Error::CorruptMetadata { path, reason } => {
            assert_eq!(path, &meta(dir.path(), "b"));
            assert!(reason.contains("\"a\""), "the reason names the owner: {reason}");
        }
        other => panic!("expected CorruptMetadata, got {other:?}"),
    }
    assert_refused_as_damaged(&broker, "b");
    broker.close().unwrap();
    assert_eq!(std::fs::read(meta(dir.path(), "b")).unwrap(), foreign);
    assert_eq!(tree(dir.path()), before);
}

#[test]
fn partition_directories_beyond_the_partition_count_are_reported_not_ignored() {
    let dir = broker_with("damaged-extra", &["t"], cfg().partitions(3));
    // The same topic's metadata, but for one partition (as if replaced by
    // an older copy): partitions 1 and 2 would silently vanish.
    let other = broker_with("damaged-extra-other", &["t"], cfg().partitions(1));
    let one = std::fs::read(meta(other.path(), "t")).unwrap();
    std::fs::write(meta(dir.path(), "t"), &one).unwrap();
    let before = tree(dir.path());

    let broker = Broker::open(dir.path()).unwrap();
    assert!(broker.topics().is_empty());
    let damaged = broker.damaged_topics();
    assert_eq!(damaged.len(), 1, "{damaged:?}");
    match &*damaged[0].error {
        Error::CorruptMetadata { path, reason } => {
            assert_eq!(path, &meta(dir.path(), "t"));
            assert!(reason.contains("1, 2"), "the reason lists the partitions: {reason}");
        }
        other => panic!("expected CorruptMetadata, got {other:?}"),
    }
    assert_refused_as_damaged(&broker, "t");
    broker.close().unwrap();
    assert_eq!(tree(dir.path()), before, "the extra partitions were touched");
}

#[test]
fn strict_config_refuses_to_open_a_directory_with_a_damaged_topic() {
    let dir = broker_with("damaged-strict", &["a", "b"], cfg());
    std::fs::write(meta(dir.path(), "b"), b"garbage").unwrap();
    let strict = BrokerConfig::default().fail_on_damaged_topic(true);
    match Broker::open_with(dir.path(), strict.clone()) {
        Err(Error::CorruptMetadata { path, .. }) => assert_eq!(path, meta(dir.path(), "b")),
        other => panic!("expected CorruptMetadata, got {other:?}"),
    }
    std::fs::remove_file(meta(dir.path(), "b")).unwrap();
    std::fs::remove_dir_all(dir.join("topics/b")).unwrap();
    let broker = Broker::open_with(dir.path(), strict).unwrap();
    assert_eq!(broker.topics(), ["a"]);
}

/// Rewrites a version-3 `topic.meta` of topic `name` as the version-1 file
/// millpond 0.1 wrote: the same config, without the trailing name and id.
fn as_version_1(v3: &[u8], name: &str) -> Vec<u8> {
    assert_eq!(&v3[4..6], &3u16.to_le_bytes(), "a version-3 file");
    let suffix: Vec<u8> = [&[name.len() as u8][..], name.as_bytes()].concat();
    let without_id = &v3[16..v3.len() - 16];
    let payload = without_id.strip_suffix(suffix.as_slice()).expect("v3 ends with the topic name and id");
    let mut out = v3[..16].to_vec();
    out[4..6].copy_from_slice(&1u16.to_le_bytes());
    out[8..12].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    out[12..16].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

#[test]
fn version_1_topic_meta_of_the_previous_release_is_an_unsupported_format() {
    // Format 1 directories (millpond 0.1) are never misread: the topic is
    // reported with a typed error naming the version, and left as it is.
    let dir = broker_with("damaged-v1", &["t", "u"], cfg());
    let v1 = as_version_1(&std::fs::read(meta(dir.path(), "t")).unwrap(), "t");
    std::fs::write(meta(dir.path(), "t"), &v1).unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    let damaged = broker.damaged_topics();
    assert_eq!(damaged.len(), 1);
    match &*damaged[0].error {
        Error::UnsupportedFormat { path, found: 1, supported: 3 } => assert_eq!(path, &meta(dir.path(), "t")),
        other => panic!("expected UnsupportedFormat, got {other:?}"),
    }
    assert!(damaged[0].error.to_string().contains("version 1"), "{}", damaged[0].error);
    assert_eq!(values(&broker, "u"), expected("u"), "the other topic opens");
    broker.close().unwrap();
    assert_eq!(std::fs::read(meta(dir.path(), "t")).unwrap(), v1, "opening does not rewrite it");
}

#[test]
fn version_1_segment_is_an_unsupported_format_and_left_as_it_is() {
    let dir = broker_with("damaged-v1-segment", &["t"], cfg());
    // A format-1 segment starts with a frame: `body_len`, `len_check`,
    // `crc`, then the magic byte 0xB1 at byte 12.
    let seg = support::layout::segment_path(dir.path(), "t", 0, 0);
    let mut v1 = vec![0u8; 4096];
    v1[0] = 60;
    v1[4..12].copy_from_slice(&[0x5a; 8]);
    v1[12] = 0xB1;
    std::fs::write(&seg, &v1).unwrap();
    for config in [BrokerConfig::default(), BrokerConfig::default().recovery(millpond::RecoveryMode::FailOnCorruptTail)]
    {
        match Broker::open_with(dir.path(), config) {
            Err(e @ Error::UnsupportedFormat { .. }) => {
                let Error::UnsupportedFormat { path, found, supported } = &e else { unreachable!() };
                assert_eq!((path, *found, *supported), (&seg, 1, 2));
                assert!(e.to_string().contains("version 1"), "{e}");
            }
            other => panic!("expected UnsupportedFormat, got {other:?}"),
        }
        assert_eq!(std::fs::read(&seg).unwrap(), v1, "the segment is left as it is");
    }
}

#[test]
fn unknown_topic_meta_version_is_reported_naming_the_version() {
    let dir = broker_with("damaged-v9", &["t"], cfg());
    let mut bytes = std::fs::read(meta(dir.path(), "t")).unwrap();
    bytes[4..6].copy_from_slice(&9u16.to_le_bytes());
    std::fs::write(meta(dir.path(), "t"), &bytes).unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    match &*broker.damaged_topics()[0].error {
        Error::CorruptMetadata { reason, .. } => assert!(reason.contains("version 9"), "{reason}"),
        other => panic!("expected CorruptMetadata, got {other:?}"),
    }
}
