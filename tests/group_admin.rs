//! What an operator does with consumer groups: list, describe, reset
//! offsets, delete; a member's partitions from `join` on; seeking from the
//! rebalance listener. Each test checks the files too where the operation
//! writes them.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use millpond::{AutoCommit, Broker, Error, RebalanceKind, Record, ResetTo, StartFrom, TopicConfig};
use support::dir::TempDir;

fn offsets_dir(root: &std::path::Path, group: &str, topic: &str) -> std::path::PathBuf {
    root.join("groups").join(group).join(topic)
}

fn fill(topic: &millpond::Topic, partition: u32, n: u64, ts0: i64) {
    let p = topic.producer();
    for i in 0..n {
        p.send(Record::new(format!("{partition}-{i}")).partition(partition).timestamp(ts0 + i as i64)).unwrap();
    }
}

#[test]
fn groups_are_listed_from_disk_and_from_members_never_through_a_symlink() {
    let tmp = TempDir::new("groups-list");
    {
        let broker = Broker::open(tmp.path()).unwrap();
        let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
        fill(&topic, 0, 3, 0);
        let mut m = topic.group("billing").unwrap().auto_commit(AutoCommit::Off).join().unwrap();
        m.recv().unwrap();
        m.commit().unwrap();
    }
    // A directory that is not a group's offsets, and a symlinked group.
    std::fs::create_dir_all(tmp.path().join("groups").join("stray").join("t")).unwrap();
    let elsewhere = TempDir::new("groups-list-elsewhere");
    std::fs::create_dir_all(elsewhere.path().join("t")).unwrap();
    std::fs::write(elsewhere.path().join("t").join("offsets"), b"not ours").unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), tmp.path().join("groups").join("linked")).unwrap();

    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.topic("t").unwrap();
    assert_eq!(topic.groups().unwrap(), ["billing"], "committed in an earlier run; nothing else");
    let _live = topic.group("audit").unwrap().join().unwrap();
    assert_eq!(topic.groups().unwrap(), ["audit", "billing"], "a group with a member is listed too");
    let linked = topic.describe_group("linked");
    assert!(matches!(linked, Err(Error::Symlink { .. })), "a symlinked group is refused, not read: {linked:?}");
    assert_eq!(std::fs::read(elsewhere.path().join("t").join("offsets")).unwrap(), b"not ours");
}

#[test]
fn describing_a_group_shows_members_assignment_from_join_and_lag() {
    let tmp = TempDir::new("groups-describe");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().partitions(3)).unwrap();
    for p in 0..3 {
        fill(&topic, p, 10, 0);
    }
    let err = topic.describe_group("nobody").unwrap_err();
    assert!(matches!(&err, Error::GroupNotFound { group, topic } if group == "nobody" && topic == "t"));
    assert!(matches!(topic.group("nobody").unwrap().lag(), Err(Error::GroupNotFound { .. })));
    assert!(!offsets_dir(tmp.path(), "nobody", "t").exists(), "asking creates nothing");

    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off);
    let mut m = group.join().unwrap();
    // Partitions are the member's from `join` on, before any receive call.
    assert_eq!(m.assignment(), [0, 1, 2]);
    let d = group.describe().unwrap();
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].partitions, [0, 1, 2]);
    assert!(d.partitions.iter().all(|l| l.lag == 10 && l.committed.is_none()));
    for _ in 0..4 {
        m.recv().unwrap();
    }
    m.commit().unwrap();
    let d = topic.describe_group("g").unwrap();
    assert_eq!(d.partitions.iter().map(|l| l.lag).sum::<u64>(), 26);
    drop(m);
    // No members, but committed offsets: the group still exists.
    assert!(group.exists().unwrap());
    assert!(group.describe().unwrap().members.is_empty());
}

#[test]
fn resetting_offsets_moves_where_the_next_member_starts_and_survives_a_restart() {
    let tmp = TempDir::new("groups-reset");
    {
        let broker = Broker::open(tmp.path()).unwrap();
        let topic = broker.create_topic("t", TopicConfig::default().partitions(2)).unwrap();
        fill(&topic, 0, 10, 1_000);
        fill(&topic, 1, 10, 2_000);
        let group = topic.group("g").unwrap();
        assert_eq!(group.reset_offsets(ResetTo::Latest).unwrap(), [(0, 10), (1, 10)].into_iter().collect());
        assert_eq!(group.reset_offsets(ResetTo::Earliest).unwrap(), [(0, 0), (1, 0)].into_iter().collect());
        assert_eq!(group.reset_offsets(ResetTo::Offset(99)).unwrap(), [(0, 10), (1, 10)].into_iter().collect());
        let at = group.reset_offsets(ResetTo::Timestamp(2_003)).unwrap();
        assert_eq!(at, [(0, 10), (1, 3)].into_iter().collect(), "the first record at or after the time");
        assert_eq!(group.reset_partition_offsets(&[0], ResetTo::Offset(6)).unwrap()[&0], 6);
        assert!(matches!(group.reset_partition_offsets(&[5], ResetTo::Earliest), Err(Error::InvalidPartition { .. })));

        // Not while a member reads: the offsets and the file stay as they were.
        let member = group.join().unwrap();
        let file = offsets_dir(tmp.path(), "g", "t").join("offsets");
        let before = std::fs::read(&file).unwrap();
        let err = group.reset_offsets(ResetTo::Earliest).unwrap_err();
        assert!(matches!(err, Error::GroupActive { members: 1, .. }), "{err}");
        assert_eq!(std::fs::read(&file).unwrap(), before);
        assert_eq!(group.committed().unwrap(), [(0, 6), (1, 3)].into_iter().collect());
        drop(member);
    }
    // Durable: a new process's member starts where the reset put the group.
    let broker = Broker::open(tmp.path()).unwrap();
    let mut m = broker.topic("t").unwrap().group("g").unwrap().join().unwrap();
    let mut firsts = std::collections::BTreeMap::new();
    while let Some(msg) = m.try_recv().unwrap() {
        firsts.entry(msg.partition()).or_insert(msg.offset());
    }
    assert_eq!(firsts, [(0, 6), (1, 3)].into_iter().collect());
}

#[test]
fn deleting_a_group_removes_its_offsets_for_that_topic_only() {
    let tmp = TempDir::new("groups-delete");
    let broker = Broker::open(tmp.path()).unwrap();
    let a = broker.create_topic("a", TopicConfig::default()).unwrap();
    let b = broker.create_topic("b", TopicConfig::default()).unwrap();
    fill(&a, 0, 5, 0);
    fill(&b, 0, 5, 0);
    for topic in [&a, &b] {
        topic.group("g").unwrap().reset_offsets(ResetTo::Latest).unwrap();
    }
    let group = a.group("g").unwrap();
    let member = group.join().unwrap();
    assert!(matches!(group.delete(), Err(Error::GroupActive { .. })), "not while it has members");
    drop(member);
    group.delete().unwrap();
    assert!(!offsets_dir(tmp.path(), "g", "a").exists());
    assert!(offsets_dir(tmp.path(), "g", "b").join("offsets").exists(), "topic b's offsets are kept");
    assert!(a.groups().unwrap().is_empty());
    assert_eq!(b.groups().unwrap(), ["g"]);
    assert!(matches!(group.delete(), Err(Error::GroupNotFound { .. })));
    // Joining again starts a new group, by its reset policy (earliest).
    let mut again = a.group("g").unwrap().auto_commit(AutoCommit::Off).join().unwrap();
    assert_eq!(again.recv().unwrap().offset(), 0);
    drop(again);
    b.group("g").unwrap().delete().unwrap();
    assert!(!tmp.path().join("groups").join("g").exists(), "the last topic's offsets take the group directory");
    drop((broker, a, b, group));
    // Gone after a restart too.
    let broker = Broker::open(tmp.path()).unwrap();
    assert!(broker.topic("b").unwrap().groups().unwrap().is_empty());
}

#[test]
fn a_rebalance_listener_can_seek_the_partitions_it_is_given() {
    let tmp = TempDir::new("groups-seek");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().partitions(2)).unwrap();
    fill(&topic, 0, 10, 0);
    fill(&topic, 1, 10, 0);
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off);
    let mut a = group.join().unwrap();
    let refused = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&refused);
    a.on_rebalance(move |e| {
        if e.kind() == RebalanceKind::Assigned {
            // The application's own store: resume partition 0 at 7, 1 at 2.
            for &p in e.partitions() {
                e.seek(p, if p == 0 { 7 } else { 2 }).unwrap();
            }
            seen.lock().unwrap().push(matches!(e.seek(9, 0), Err(Error::NotAssigned { .. })));
            seen.lock().unwrap().push(matches!(e.seek(0, 11), Err(Error::OffsetOutOfRange { .. })));
        } else {
            seen.lock().unwrap().push(matches!(e.seek(0, 0), Err(Error::NotAssigned { .. })));
        }
    });
    let mut firsts = std::collections::BTreeMap::new();
    while let Some(m) = a.recv_timeout(Duration::from_millis(100)).unwrap() {
        firsts.entry(m.partition()).or_insert(m.offset());
    }
    assert_eq!(firsts, [(0, 7), (1, 2)].into_iter().collect());
    // A second member: `a` gives partition 1 up (a revocation cannot seek;
    // it commits where `a` got to), and the new owner, without a listener,
    // starts there.
    let mut b = group.join().unwrap();
    a.try_recv().unwrap();
    assert!(b.try_recv().unwrap().is_none());
    assert_eq!(b.position(1).unwrap(), 10);
    assert!(refused.lock().unwrap().iter().all(|&ok| ok), "{:?}", refused.lock().unwrap());
    assert_eq!(refused.lock().unwrap().len(), 3);
    // A plain consumer is unaffected by any of this.
    assert_eq!(topic.consumer(StartFrom::Earliest).unwrap().try_iter().count(), 20);
}
