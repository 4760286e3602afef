//! Transactions under attack: a process killed after a commit and
//! recovery re-applying its group offsets over what happened since
//! (a topic deleted and created again, an operator's reset, a group
//! deleted), and a rebalance in the middle of a consume-transform-produce
//! transaction. Each of those tests was written against a defect an
//! adversarial review found, and failed then. One more, a read-only
//! follower facing a transactional frame larger than the topic's
//! segments, passed from the start and stays as a guard.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use millpond::{AutoCommit, Broker, Record, ResetTo, StartFrom, Topic, TopicConfig};
use support::child::{self, Monitored};
use support::dir::TempDir;

const WAIT: Duration = Duration::from_secs(5);

/// Runs this test binary's test `test` as a child in `role`, waits for it
/// to print `ready`, and kills it with SIGKILL: no close, so the
/// transaction log keeps its commits unsettled, as after any crash.
fn run_child_then_kill(test: &str, role: &str, dir: &Path) {
    let mut m = Monitored::spawn(&mut child::command(test, role, dir));
    let mut lines = Vec::new();
    m.expect_line("ready", Duration::from_secs(60), |l| lines.push(l), "the child never got ready");
    m.kill9();
}

/// The child's last act: say so, and wait to be killed.
fn ready_and_wait() -> ! {
    println!("ready");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Topic `in` with ten records, topic `out`; a member of group `g` reads
/// them all and a transaction writes one record to `out` and commits the
/// member's position (10). Returns once the commit thread wrote it.
fn consume_ten_in_a_transaction(broker: &Broker) -> Topic {
    let input = broker.create_topic("in", TopicConfig::default()).unwrap();
    let out = broker.create_topic("out", TopicConfig::default()).unwrap();
    input.producer().send_batch((0..10).map(|i| Record::new(format!("{i}")))).unwrap();
    let group = input.group("g").unwrap().auto_commit(AutoCommit::Off).commit_on_revoke(false);
    let mut member = group.join().unwrap();
    let mut read = 0;
    while read < 10 {
        read += member.poll(100, Duration::from_millis(50)).unwrap().len();
    }
    let mut txn = broker.transaction().unwrap();
    txn.send(&out, Record::new("derived")).unwrap();
    txn.commit_offsets(&mut member).unwrap();
    txn.commit().unwrap();
    assert_eq!(group.committed().unwrap(), BTreeMap::from([(0, 10)]));
    // The commit thread writes the offsets file within milliseconds.
    std::thread::sleep(Duration::from_millis(300));
    drop(member);
    input
}

/// A committed transaction's group offsets name their topic only by name.
/// After the topic is deleted and created again, a crash leaves the
/// commit unsettled, and recovery applies the old topic's offsets to the
/// new topic's group of the same name: a group that never read the new
/// topic starts past its first records, which it never sees.
#[test]
fn a_crash_after_a_topic_is_recreated_does_not_give_its_groups_the_old_topics_offsets() {
    const TEST: &str = "a_crash_after_a_topic_is_recreated_does_not_give_its_groups_the_old_topics_offsets";
    if child::role().is_some() {
        let broker = Broker::open(child::dir()).unwrap();
        drop(consume_ten_in_a_transaction(&broker));
        broker.delete_topic("in").unwrap();
        let fresh = broker.create_topic("in", TopicConfig::default()).unwrap();
        fresh.producer().send_batch((0..5).map(|i| Record::new(format!("new-{i}")))).unwrap();
        assert!(fresh.group("g").unwrap().committed().unwrap().is_empty());
        ready_and_wait();
    }
    let tmp = TempDir::new("txh-recreated");
    run_child_then_kill(TEST, "writer", tmp.path());
    let broker = Broker::open(tmp.path()).unwrap();
    let fresh = broker.topic("in").unwrap();
    assert_eq!(fresh.high_watermark(0).unwrap(), 5);
    let committed = fresh.group("g").unwrap().committed().unwrap();
    assert!(
        committed.is_empty(),
        "group g never committed on the new topic `in`, yet after the crash it is at {committed:?} (the deleted topic's \
         transaction offsets): its first records would be skipped"
    );
}

/// An operator rewinds a group (`reset_offsets`) after a transaction
/// committed its offsets; a crash before the transaction log's next
/// settled mark (written only every 256 commits, or at close) makes
/// recovery apply the transaction's offsets again, and "advance-only"
/// moves the group forward over the reset.
#[test]
fn a_crash_does_not_undo_a_reset_made_after_a_transaction() {
    const TEST: &str = "a_crash_does_not_undo_a_reset_made_after_a_transaction";
    if child::role().is_some() {
        let broker = Broker::open(child::dir()).unwrap();
        let input = consume_ten_in_a_transaction(&broker);
        let group = input.group("g").unwrap();
        assert_eq!(group.reset_offsets(ResetTo::Earliest).unwrap(), BTreeMap::from([(0, 0)]));
        assert_eq!(group.committed().unwrap(), BTreeMap::from([(0, 0)]));
        ready_and_wait();
    }
    let tmp = TempDir::new("txh-reset");
    run_child_then_kill(TEST, "writer", tmp.path());
    let broker = Broker::open(tmp.path()).unwrap();
    let committed = broker.topic("in").unwrap().group("g").unwrap().committed().unwrap();
    assert_eq!(
        committed,
        BTreeMap::from([(0, 0)]),
        "the reset to the earliest offset returned Ok before the crash, but recovery moved the group forward again"
    );
}

/// As above, for `Group::delete`: the deleted group comes back after a
/// crash, at the transaction's offsets.
#[test]
fn a_crash_does_not_bring_back_a_group_deleted_after_a_transaction() {
    const TEST: &str = "a_crash_does_not_bring_back_a_group_deleted_after_a_transaction";
    if child::role().is_some() {
        let broker = Broker::open(child::dir()).unwrap();
        let input = consume_ten_in_a_transaction(&broker);
        let group = input.group("g").unwrap();
        group.delete().unwrap();
        assert!(!group.exists().unwrap());
        ready_and_wait();
    }
    let tmp = TempDir::new("txh-gdelete");
    run_child_then_kill(TEST, "writer", tmp.path());
    let broker = Broker::open(tmp.path()).unwrap();
    let input = broker.topic("in").unwrap();
    let group = input.group("g").unwrap();
    assert!(
        !group.exists().unwrap(),
        "group g was deleted before the crash, yet it exists after recovery, at {:?}; groups: {:?}",
        group.committed().unwrap(),
        input.groups().unwrap()
    );
}

/// Small segments, as the read-only tests use them.
fn small_segments() -> TopicConfig {
    TopicConfig::default().segment_bytes(4096).max_record_bytes(512)
}

/// A transaction's share goes in frames of up to 256 KiB, whatever the
/// topic's `segment_bytes` (its segment is made as large as it needs). A
/// read-only follower believes no frame length past `segment_bytes`, so it
/// never reads such a frame: the committed records stay invisible to it
/// (until the writer happens to roll again, when the follower reopens the
/// segment as a sealed one and trusts its index).
#[test]
fn a_follower_reads_a_committed_share_larger_than_the_topics_segments() {
    let tmp = TempDir::new("txh-follower-large");
    let w = Broker::open(tmp.path()).unwrap();
    let t = w.create_topic("t", small_segments()).unwrap();
    t.producer().send(Record::new("before")).unwrap();
    let r = Broker::open_read_only(tmp.path()).unwrap();
    let mut c = r.topic("t").unwrap().consumer(StartFrom::Earliest).unwrap();
    assert_eq!(c.recv_timeout(WAIT).unwrap().unwrap().value(), b"before");
    let mut txn = w.transaction().unwrap();
    txn.send_batch(&t, (0..30).map(|i| Record::new(format!("{i:0>400}")))).unwrap();
    txn.commit().unwrap();
    assert_eq!(t.high_watermark(0).unwrap(), 32);
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while got.len() < 30 && Instant::now() < deadline {
        if let Some(m) = c.recv_timeout(Duration::from_millis(100)).unwrap() {
            got.push(m.offset());
        }
    }
    assert_eq!(got.len(), 30, "the follower received offsets {got:?} of the 30 committed records within {WAIT:?}");
}

/// The consume-transform-produce loop of the `Transaction` docs polls
/// several times per transaction. A rebalance between two polls takes a
/// partition away (its new owner processes it from the last committed
/// offset and commits), and the partition comes back before
/// `commit_offsets`: the member owns it again when the transaction
/// commits, so the commit succeeds — with output derived from records
/// the other member processed too. The docs promise that a member that
/// lost a partition in a rebalance meanwhile fails the commit, "so nothing
/// is processed twice into the output"; Kafka fences this by the group's
/// generation.
#[test]
fn a_partition_lost_and_regained_during_a_transaction_is_not_processed_twice() {
    let tmp = TempDir::new("txh-rebalance");
    let broker = Broker::open(tmp.path()).unwrap();
    let input = broker.create_topic("in", TopicConfig::default().partitions(2)).unwrap();
    let out = broker.create_topic("out", TopicConfig::default()).unwrap();
    for p in 0..2 {
        input.producer().send_batch((0..5).map(|i| Record::new(format!("{p}-{i}")).partition(p))).unwrap();
    }
    let group = input.group("g").unwrap().auto_commit(AutoCommit::Off).commit_on_revoke(false);
    let transform = |txn: &mut millpond::Transaction, m: &millpond::Message| {
        txn.send(&out, Record::new(m.value().to_vec())).unwrap();
    };
    let mut a = group.join().unwrap();
    let mut txn_a = broker.transaction().unwrap();
    let mut read = 0;
    while read < 10 {
        for m in a.poll(100, Duration::from_millis(50)).unwrap() {
            transform(&mut txn_a, &m);
            read += 1;
        }
    }
    // B joins; A's next poll gives partition 1 up; B takes it, processes
    // it in its own transaction, commits and leaves.
    let mut b = group.join().unwrap();
    let deadline = Instant::now() + WAIT;
    let mut b_read = 0;
    let mut txn_b = broker.transaction().unwrap();
    while b_read < 5 && Instant::now() < deadline {
        for m in a.poll(100, Duration::from_millis(10)).unwrap() {
            transform(&mut txn_a, &m);
        }
        for m in b.poll(100, Duration::from_millis(10)).unwrap() {
            transform(&mut txn_b, &m);
            b_read += 1;
        }
    }
    assert_eq!(b_read, 5, "B took partition 1 over and read it from the start");
    txn_b.commit_offsets(&mut b).unwrap();
    txn_b.commit().unwrap();
    drop(b);
    // A takes partition 1 back, at B's committed offset.
    let deadline = Instant::now() + WAIT;
    while a.assignment() != vec![0, 1] && Instant::now() < deadline {
        for m in a.poll(100, Duration::from_millis(10)).unwrap() {
            transform(&mut txn_a, &m);
        }
    }
    assert_eq!(a.assignment(), vec![0, 1]);
    txn_a.commit_offsets(&mut a).unwrap();
    let committed = txn_a.commit();
    let mut values: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    let mut c = out.consumer(StartFrom::Earliest).unwrap();
    for m in c.poll(1000, Duration::from_millis(100)).unwrap() {
        *values.entry(m.value().to_vec()).or_default() += 1;
    }
    let twice: Vec<String> =
        values.iter().filter(|&(_, &n)| n > 1).map(|(v, _)| String::from_utf8_lossy(v).into_owned()).collect();
    assert!(
        twice.is_empty(),
        "A's commit returned {:?} although A lost partition 1 during its transaction: records {twice:?} were \
         processed into the output twice",
        committed.map(|c| c.records())
    );
}
