//! Consumer groups: rebalancing without overlap, independence of groups,
//! at-least-once restarts, offset reset policies, lag and stats, bad input,
//! damaged offsets files, and blocked members waking up.
//!
//! Commits are durable (two fsyncs each), so the tests that commit after
//! every record keep their record counts small.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use millpond::{
    AutoCommit, Broker, Error, Group, GroupMember, OffsetReset, RebalanceKind, Record, StartFrom, Topic, TopicConfig,
};
use support::dir::TempDir;
use support::groups::{decode_offsets, encode_offsets, encode_offsets_v2, read_committed};
use support::layout::{offsets_path, prev_offsets_path, segment_files};
use support::wait::{HANG, answer_within, spawn_answer, wait_until};

/// Sends `count` records to each of `partitions`, value `"<p>-<o>"`.
fn fill(topic: &Topic, partitions: &[u32], count: u64) {
    let producer = topic.producer();
    for &p in partitions {
        let first = topic.high_watermark(p).unwrap();
        producer.send_batch((first..first + count).map(|o| Record::new(format!("{p}-{o}")).partition(p))).unwrap();
    }
}

/// Everything a member can take now, as `(partition, offset)`.
fn drain(member: &mut GroupMember) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    while let Some(m) = member.try_recv().unwrap() {
        assert_eq!(m.value(), format!("{}-{}", m.partition(), m.offset()).as_bytes());
        out.push((m.partition(), m.offset()));
    }
    out
}

fn lag_by_partition(group: &Group) -> BTreeMap<u32, u64> {
    group.lag().unwrap().into_iter().map(|l| (l.partition, l.lag)).collect()
}

// ---------------------------------------------------------------------------
// (1) Rebalancing
// ---------------------------------------------------------------------------

/// One entry of the rebalance test's journal; its index is a global sequence
/// number (entries are pushed under one mutex).
#[derive(Debug, Clone)]
enum Event {
    Processed { member: u32, partition: u32, offset: u64 },
    Assigned { member: u32, positions: Vec<(u32, u64)> },
    Revoked { member: u32, positions: Vec<(u32, u64)> },
}

type Journal = Arc<Mutex<Vec<Event>>>;

/// A member's loop: process (journal) each record, then commit it. Leaves
/// (with `close`) after `leave_after` records, or when `stop` is set.
fn run_member(
    mut member: GroupMember,
    label: u32,
    journal: Journal,
    processed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    leave_after: Option<u64>,
) -> u64 {
    let j = Arc::clone(&journal);
    member.on_rebalance(move |e| {
        let positions = e.positions().to_vec();
        assert_eq!(e.partitions(), positions.iter().map(|&(p, _)| p).collect::<Vec<_>>());
        let event = if e.kind() == RebalanceKind::Revoked {
            Event::Revoked { member: label, positions }
        } else {
            Event::Assigned { member: label, positions }
        };
        j.lock().unwrap().push(event);
    });
    let mut mine = 0;
    while !stop.load(Ordering::SeqCst) && leave_after.is_none_or(|n| mine < n) {
        if let Some(m) = member.recv_timeout(Duration::from_millis(20)).unwrap() {
            journal.lock().unwrap().push(Event::Processed {
                member: label,
                partition: m.partition(),
                offset: m.offset(),
            });
            member.commit().unwrap();
            mine += 1;
            processed.fetch_add(1, Ordering::SeqCst);
        }
    }
    member.close().unwrap();
    mine
}

#[test]
fn rebalance_on_leave_and_join_hands_partitions_over_without_overlap_or_duplicates() {
    const PARTITIONS: u32 = 6;
    const PER_PARTITION: u64 = 40;
    const TOTAL: u64 = PARTITIONS as u64 * PER_PARTITION;
    const LEAVER: u32 = 1;
    const LIMIT: Duration = Duration::from_secs(90);

    let dir = TempDir::new("rebalance");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("jobs", TopicConfig::default().partitions(PARTITIONS)).unwrap();
    let group = topic.group("workers").unwrap().auto_commit(AutoCommit::Off);

    let journal: Journal = Arc::default();
    let processed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    // A producer running alongside, spreading records over the whole run.
    let producer = {
        let p = topic.producer();
        std::thread::spawn(move || {
            for round in 0..PER_PARTITION {
                p.send_batch((0..PARTITIONS).map(|part| Record::new(format!("{part}-{round}")).partition(part)))
                    .unwrap();
                std::thread::sleep(Duration::from_millis(25));
            }
        })
    };

    // Three members joined before any receives, so they start on their
    // final ranges; member 1 leaves after 15 records.
    let members: Vec<GroupMember> = (0..3).map(|_| group.join().unwrap()).collect();
    let mut threads = Vec::new();
    for (label, member) in (0u32..).zip(members) {
        let (j, n, s) = (Arc::clone(&journal), Arc::clone(&processed), Arc::clone(&stop));
        let leave_after = (label == LEAVER).then_some(15);
        threads.push((label, std::thread::spawn(move || run_member(member, label, j, n, s, leave_after))));
    }

    wait_until(LIMIT, "member 1 leaving", || threads[1].1.is_finished());
    assert!(processed.load(Ordering::SeqCst) < TOTAL, "member 1 must leave mid-stream");
    wait_until(LIMIT, "half the records processed", || processed.load(Ordering::SeqCst) >= TOTAL / 2);
    assert!(processed.load(Ordering::SeqCst) < TOTAL, "member 3 must join mid-stream");
    let newcomer = group.join().unwrap();
    {
        let (j, n, s) = (Arc::clone(&journal), Arc::clone(&processed), Arc::clone(&stop));
        threads.push((3, std::thread::spawn(move || run_member(newcomer, 3, j, n, s, None))));
    }
    wait_until(LIMIT, "every record processed", || processed.load(Ordering::SeqCst) >= TOTAL);
    stop.store(true, Ordering::SeqCst);
    producer.join().unwrap();
    let mut per_member = BTreeMap::new();
    for (label, t) in threads {
        per_member.insert(label, t.join().unwrap());
    }
    assert_eq!(per_member[&LEAVER], 15);
    assert!(per_member[&3] > 0, "the newcomer got work: {per_member:?}");
    assert_eq!(per_member.values().sum::<u64>(), TOTAL);

    assert_eq!(group.members(), 0);
    assert!(group.owners().is_empty());
    let committed = group.committed().unwrap();
    assert_eq!(committed, (0..PARTITIONS).map(|p| (p, PER_PARTITION)).collect::<BTreeMap<_, _>>());
    assert!(group.lag().unwrap().iter().all(|l| l.lag == 0));

    // Analyse the journal.
    let events = journal.lock().unwrap().clone();
    let mut by_partition: BTreeMap<u32, Vec<(u64, usize, u32)>> = BTreeMap::new();
    for (seq, e) in events.iter().enumerate() {
        if let Event::Processed { member, partition, offset } = *e {
            by_partition.entry(partition).or_default().push((offset, seq, member));
        }
    }
    let assigned_at = |member: u32, p: u32, o: u64, after: usize, before: usize| {
        events[after..before].iter().any(
            |e| matches!(e, Event::Assigned { member: m, positions } if *m == member && positions.contains(&(p, o))),
        )
    };
    let revoked_at = |member: u32, p: u32, o: u64, after: usize, before: usize| {
        events[after..before].iter().any(
            |e| matches!(e, Event::Revoked { member: m, positions } if *m == member && positions.contains(&(p, o))),
        )
    };
    for p in 0..PARTITIONS {
        let mut v = by_partition.remove(&p).unwrap_or_default();
        v.sort_unstable();
        // Exactly once: offsets 0..PER_PARTITION, each once.
        let offsets: Vec<u64> = v.iter().map(|&(o, _, _)| o).collect();
        assert_eq!(offsets, (0..PER_PARTITION).collect::<Vec<_>>(), "partition {p}: not exactly once");
        // Processing never overlaps: in offset order, the global sequence
        // only increases, so no member touched the partition while another
        // was still working through it.
        for w in v.windows(2) {
            assert!(w[0].1 < w[1].1, "partition {p}: offset {} processed before offset {}", w[1].0, w[0].0);
        }
        // The first owner was assigned it at offset 0.
        let (_, first_seq, first_member) = v[0];
        assert!(assigned_at(first_member, p, 0, 0, first_seq), "partition {p}: no assignment at 0 before processing");
        // Owners change only at hand-overs, at most once per rebalance
        // (one leave, one join).
        let mut changes = 0;
        for w in v.windows(2) {
            let ((_, seq_a, a), (o, seq_b, b)) = (w[0], w[1]);
            if a == b {
                continue;
            }
            changes += 1;
            assert!(
                assigned_at(b, p, o, seq_a, seq_b),
                "partition {p}: member {b} took over at {o} without assignment"
            );
            if a != LEAVER {
                assert!(
                    revoked_at(a, p, o, seq_a, seq_b),
                    "partition {p}: member {a} gave it up at {o} without revoke"
                );
            }
        }
        assert!(changes <= 2, "partition {p} changed hands {changes} times over two rebalances: {v:?}");
    }
}

#[test]
fn revoked_partition_is_not_read_by_its_new_owner_until_the_old_one_gives_it_up() {
    let dir = TempDir::new("handover");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().partitions(2)).unwrap();
    fill(&topic, &[0, 1], 10);
    for commit_on_revoke in [true, false] {
        let name = format!("g-{commit_on_revoke}");
        let group = topic.group(&name).unwrap().auto_commit(AutoCommit::Off).commit_on_revoke(commit_on_revoke);
        let mut a = group.join().unwrap();
        // A takes both partitions and reads three records of partition 1.
        let mut from_1 = 0;
        while from_1 < 3 {
            if a.try_recv().unwrap().unwrap().partition() == 1 {
                from_1 += 1;
            }
        }
        assert_eq!(a.assignment(), [0, 1]);
        let a_owner = group.owners()[&1];
        let mut b = group.join().unwrap();
        // B's target is partition 1, but A has not given it up yet.
        assert!(b.try_recv().unwrap().is_none(), "B read partition 1 while A still owned it");
        assert!(b.assignment().is_empty());
        assert_eq!(group.owners()[&1], a_owner);
        // A's next receive call gives it up (committing first, if asked to).
        let m = a.try_recv().unwrap().unwrap();
        assert_eq!(m.partition(), 0);
        assert_eq!(a.assignment(), [0]);
        assert!(!group.owners().contains_key(&1));
        assert_eq!(group.committed().unwrap().get(&1).copied(), commit_on_revoke.then_some(3));
        // B now takes it: where A left off, or from the last commit (none:
        // the log start), re-delivering A's three uncommitted records.
        let m = b.try_recv().unwrap().unwrap();
        assert_eq!((m.partition(), m.offset()), (1, if commit_on_revoke { 3 } else { 0 }));
        assert_eq!(b.assignment(), [1]);
        assert_ne!(group.owners()[&1], a_owner);
    }
}

// ---------------------------------------------------------------------------
// (2) Several groups
// ---------------------------------------------------------------------------

#[test]
fn groups_on_one_topic_are_independent_and_each_sees_every_record() {
    let dir = TempDir::new("independent");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("events", TopicConfig::default().partitions(3)).unwrap();
    fill(&topic, &[0, 1, 2], 30);
    let all: BTreeSet<(u32, u64)> = (0..3).flat_map(|p| (0..30).map(move |o| (p, o))).collect();

    let mut groups = Vec::new();
    for (name, size) in [("audit", 1), ("billing", 2), ("search", 3)] {
        // The first member takes every partition at `join` and gives some
        // up as the others join: no commits at those revocations, so only
        // the explicit commits below count.
        let group = topic.group(name).unwrap().auto_commit(AutoCommit::Off).commit_on_revoke(false);
        let mut members: Vec<GroupMember> = (0..size).map(|_| group.join().unwrap()).collect();
        let mut seen = Vec::new();
        let mut per_member = vec![Vec::new(); size];
        loop {
            let before = seen.len();
            for (i, m) in members.iter_mut().enumerate() {
                let got = drain(m);
                per_member[i].extend(got.iter().copied());
                seen.extend(got);
            }
            if seen.len() == before {
                break;
            }
        }
        let unique: BTreeSet<(u32, u64)> = seen.iter().copied().collect();
        assert_eq!(unique.len(), seen.len(), "group {name} received a record twice");
        assert_eq!(unique, all, "group {name} did not see every record");
        for (i, got) in per_member.iter().enumerate() {
            assert!(!got.is_empty(), "group {name}: member {i} got nothing");
        }
        groups.push((group, members));
    }

    // Commits of one group do not move another's.
    let [(audit, _), (billing, billing_members), (search, search_members)] = &mut groups[..] else {
        unreachable!("three groups")
    };
    for m in billing_members.iter_mut() {
        m.commit().unwrap();
    }
    assert!(billing.lag().unwrap().iter().all(|l| l.lag == 0));
    assert_eq!(billing.committed().unwrap(), [(0, 30), (1, 30), (2, 30)].into_iter().collect());
    search_members[0].commit().unwrap(); // owns partition 0 only
    assert_eq!(search.committed().unwrap(), [(0, 30)].into_iter().collect());
    assert_eq!(lag_by_partition(search), [(0, 0), (1, 30), (2, 30)].into_iter().collect());
    assert!(audit.committed().unwrap().is_empty());
    assert_eq!(audit.lag().unwrap().iter().map(|l| l.lag).sum::<u64>(), 90);

    // New records reach every group.
    fill(&topic, &[1], 1);
    for (group, members) in &mut groups {
        let got: Vec<(u32, u64)> = members.iter_mut().flat_map(drain).collect();
        assert_eq!(got, [(1, 30)], "group {}", group.name());
    }
}

// ---------------------------------------------------------------------------
// (3) At-least-once restarts
// ---------------------------------------------------------------------------

#[test]
fn member_dropped_without_commit_has_its_uncommitted_records_redelivered() {
    let dir = TempDir::new("redeliver");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    fill(&topic, &[0], 20);
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off);

    let mut first = group.join().unwrap();
    for o in 0..6 {
        assert_eq!(first.recv().unwrap().offset(), o);
    }
    first.commit().unwrap();
    for o in 6..10 {
        assert_eq!(first.recv().unwrap().offset(), o);
    }
    drop(first); // "crashes" with 6..10 received but not committed
    assert_eq!(group.committed().unwrap(), [(0, 6)].into_iter().collect());
    assert_eq!(group.members(), 0);

    let mut second = group.join().unwrap();
    assert_eq!(drain(&mut second), (6..20).map(|o| (0, o)).collect::<Vec<_>>());
}

#[test]
fn close_with_auto_commit_off_commits_nothing() {
    let dir = TempDir::new("closeoff");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    fill(&topic, &[0], 5);
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off);
    let mut m = group.join().unwrap();
    assert_eq!(drain(&mut m).len(), 5);
    m.close().unwrap();
    assert!(group.committed().unwrap().is_empty());
    assert!(!offsets_path(dir.path(), "g", "t").exists());
    assert_eq!(drain(&mut group.join().unwrap()).len(), 5, "everything is delivered again");
}

#[test]
fn auto_commit_interval_commits_when_the_member_is_dropped_or_closed() {
    let dir = TempDir::new("autodrop");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    fill(&topic, &[0], 20);
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Interval(Duration::from_secs(3600)));

    let mut m = group.join().unwrap();
    for o in 0..10 {
        assert_eq!(m.recv().unwrap().offset(), o);
    }
    assert!(group.committed().unwrap().is_empty(), "the interval has not passed");
    drop(m);
    assert_eq!(group.committed().unwrap(), [(0, 10)].into_iter().collect());

    let mut m = group.join().unwrap();
    for o in 10..15 {
        assert_eq!(m.recv().unwrap().offset(), o);
    }
    m.close().unwrap();
    assert_eq!(group.committed().unwrap(), [(0, 15)].into_iter().collect());
    assert_eq!(read_committed(dir.path(), "g", "t"), [(0, 15)].into_iter().collect());

    let mut m = group.join().unwrap();
    assert_eq!(drain(&mut m), (15..20).map(|o| (0, o)).collect::<Vec<_>>());
}

#[test]
fn poll_with_auto_commit_never_commits_records_it_has_not_returned_yet() {
    let dir = TempDir::new("pollcommit");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    fill(&topic, &[0], 10);
    // An interval that has always elapsed: a commit at every receive call
    // (as with the default 5 s interval elapsing during a long poll).
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Interval(Duration::ZERO));
    let mut m = group.join().unwrap();
    let batch = m.poll(100, Duration::from_millis(100)).unwrap();
    assert_eq!(batch.len(), 10);
    // Documented: auto-commit covers the records returned *before* the
    // receive call. None of the ten has been processed yet. (It is written
    // off the receiving thread: wait for it, then check it never got past.)
    wait_until(HANG, "the auto-commit at the poll", || group.committed().unwrap().contains_key(&0));
    let committed = group.committed().unwrap().get(&0).copied();
    // Crash before processing the batch: the member never commits or leaves,
    // and a new broker (as after a restart) takes over the directory.
    std::mem::forget(m);
    broker.close().unwrap();
    drop((group, topic, broker));
    let broker = Broker::open(dir.path()).unwrap();
    let group = broker.topic("t").unwrap().group("g").unwrap();
    let mut again = group.join().unwrap();
    let redelivered = drain(&mut again);
    assert_eq!(
        redelivered.first(),
        Some(&(0, 0)),
        "records returned by poll but never processed were lost after a crash: committed {committed:?} before \
         the caller saw the batch"
    );
    assert_eq!(committed, Some(0));
}

#[test]
fn member_of_a_deleted_topic_cannot_resurrect_its_committed_offsets() {
    let dir = TempDir::new("deleted");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    fill(&topic, &[0], 10);
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Interval(Duration::ZERO));
    let mut old = group.join().unwrap();
    for _ in 0..6 {
        old.try_recv().unwrap().unwrap();
    }
    // Auto-commits are written off the receiving thread.
    wait_until(HANG, "the auto-commit of 5", || group.committed().unwrap().get(&0) == Some(&5));
    broker.delete_topic("t").unwrap();
    assert!(!offsets_path(dir.path(), "g", "t").exists(), "the topic's offsets go with it");
    assert!(!prev_offsets_path(dir.path(), "g", "t").exists());

    // The old member may still read what it can reach (as after a close),
    // then gets TopicDeleted; it must not commit for the deleted topic.
    let mut rest = Vec::new();
    let end = loop {
        match old.try_recv() {
            Ok(Some(m)) => rest.push(m.offset()),
            other => break other,
        }
        assert!(rest.len() <= 4, "read past the deleted topic's end");
    };
    assert!(matches!(end, Err(Error::TopicDeleted { .. })), "after {rest:?}: {end:?}");
    assert!(matches!(old.commit(), Err(Error::TopicDeleted { .. })));
    assert!(matches!(group.join(), Err(Error::TopicDeleted { .. })));
    drop(old);
    assert!(!offsets_path(dir.path(), "g", "t").exists(), "a member of the deleted topic wrote its offsets back");

    // A topic re-created under the same name starts the group afresh.
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    fill(&topic, &[0], 10);
    let group = topic.group("g").unwrap();
    assert!(group.committed().unwrap().is_empty(), "stale offsets: {:?}", group.committed());
    let mut fresh = group.join().unwrap();
    assert_eq!(drain(&mut fresh), (0..10).map(|o| (0, o)).collect::<Vec<_>>());
}

#[test]
fn member_writes_no_offsets_after_the_broker_closes() {
    let dir = TempDir::new("closedcommit");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    fill(&topic, &[0], 10);
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Interval(Duration::ZERO));
    let mut m = group.join().unwrap();
    for _ in 0..4 {
        m.try_recv().unwrap().unwrap();
    }
    let path = offsets_path(dir.path(), "g", "t");
    // Auto-commits are written off the receiving thread.
    wait_until(HANG, "the auto-commit of 3", || group.committed().unwrap().get(&0) == Some(&3));
    let before = std::fs::read(&path).unwrap();
    assert_eq!(decode_offsets(&before), Some([(0, 3)].into_iter().collect()));
    broker.close().unwrap();
    // The directory is no longer ours (its lock is released): whatever the
    // member still reads, it must not write offsets any more.
    let mut read_after_close = 0;
    while let Ok(Some(_)) = m.try_recv() {
        read_after_close += 1;
        assert!(read_after_close <= 6);
    }
    assert!(matches!(m.try_recv(), Err(Error::Closed)));
    assert!(matches!(m.commit(), Err(Error::Closed)));
    drop(m);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "offsets written after close (read {read_after_close} records after close)"
    );
}

#[test]
fn auto_commit_interval_commits_records_returned_before_the_receive_call() {
    let dir = TempDir::new("autorecv");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    fill(&topic, &[0], 10);
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Interval(Duration::ZERO));
    let mut m = group.join().unwrap();
    for o in 0..3 {
        assert_eq!(m.try_recv().unwrap().unwrap().offset(), o);
        // Requested at the start of this call and written off this thread:
        // the records returned before it, never the one just returned.
        wait_until(HANG, "the auto-commit", || group.committed().unwrap().get(&0).is_some_and(|&c| c >= o));
        assert_eq!(group.committed().unwrap().get(&0), Some(&o));
    }
    // A crash now re-delivers only record 2, the one returned by the last call.
    std::mem::forget(m); // no drop, no leave, no commit: like a crash
    assert_eq!(read_committed(dir.path(), "g", "t"), [(0, 2)].into_iter().collect());
}

// ---------------------------------------------------------------------------
// (4) Offset reset
// ---------------------------------------------------------------------------

#[test]
fn offset_reset_earliest_starts_a_new_group_at_the_log_start() {
    let dir = TempDir::new("earliest");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().partitions(2)).unwrap();
    fill(&topic, &[0, 1], 4);
    let mut m = topic.group("new").unwrap().offset_reset(OffsetReset::Earliest).join().unwrap();
    let mut got = drain(&mut m);
    got.sort_unstable();
    assert_eq!(got, [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3)]);
}

#[test]
fn offset_reset_latest_skips_existing_records_but_a_commit_takes_precedence() {
    let dir = TempDir::new("latest");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    fill(&topic, &[0], 5);
    let group = topic.group("g").unwrap().offset_reset(OffsetReset::Latest).auto_commit(AutoCommit::Off);
    let mut m = group.join().unwrap();
    assert!(m.try_recv().unwrap().is_none(), "old records skipped");
    assert_eq!(m.positions(), [(0, 5)]);
    assert_eq!(lag_by_partition(&group), [(0, 0)].into_iter().collect(), "Latest: no lag without a commit");
    fill(&topic, &[0], 1);
    assert_eq!(m.recv().unwrap().offset(), 5);
    m.commit().unwrap();
    drop(m);

    fill(&topic, &[0], 3);
    let mut m = group.join().unwrap();
    assert_eq!(drain(&mut m), [(0, 6), (0, 7), (0, 8)], "resumes at the commit, not at the end");
}

#[test]
fn offset_reset_fail_refuses_partitions_without_a_committed_offset() {
    let dir = TempDir::new("fail");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().partitions(2)).unwrap();
    fill(&topic, &[0, 1], 5);
    let strict = topic.group("g").unwrap().offset_reset(OffsetReset::Fail).auto_commit(AutoCommit::Off);

    let mut m = strict.join().unwrap();
    for _ in 0..2 {
        match m.try_recv() {
            Err(Error::NoCommittedOffset { topic, group, partition }) => {
                assert_eq!((topic.as_str(), group.as_str()), ("t", "g"));
                assert!(partition < 2);
            }
            other => panic!("expected NoCommittedOffset, got {other:?}"),
        }
    }
    assert!(matches!(m.recv_timeout(Duration::from_millis(10)), Err(Error::NoCommittedOffset { .. })));
    assert!(matches!(m.recv(), Err(Error::NoCommittedOffset { .. })), "recv must fail, not block");
    drop(m);
    assert!(strict.committed().unwrap().is_empty(), "a refused member commits nothing");

    // Once offsets are committed (by a lenient member of the same group), a
    // Fail member resumes from them.
    let lenient = topic.group("g").unwrap().auto_commit(AutoCommit::Off);
    let mut l = lenient.join().unwrap();
    l.try_recv().unwrap();
    l.commit_offsets(&[(0, 2), (1, 4)]).unwrap();
    l.close().unwrap();
    let mut m = strict.join().unwrap();
    let mut got = drain(&mut m);
    got.sort_unstable();
    assert_eq!(got, [(0, 2), (0, 3), (0, 4), (1, 4)]);
}

#[test]
fn committed_offset_beyond_the_log_end_is_reset_by_policy() {
    let dir = TempDir::new("beyond");
    {
        let broker = Broker::open(dir.path()).unwrap();
        let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
        fill(&topic, &[0], 10);
    }
    // Offsets from elsewhere (a restored backup, say) point past the end.
    let bogus = encode_offsets(&[(0, 1000)].into_iter().collect());
    for g in ["early", "late", "strict"] {
        let path = offsets_path(dir.path(), g, "t");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bogus).unwrap();
    }
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.topic("t").unwrap();

    let mut early = topic.group("early").unwrap().offset_reset(OffsetReset::Earliest).join().unwrap();
    assert_eq!(early.try_recv().unwrap().unwrap().offset(), 0);
    let mut late = topic.group("late").unwrap().offset_reset(OffsetReset::Latest).join().unwrap();
    assert!(late.try_recv().unwrap().is_none());
    assert_eq!(late.positions(), [(0, 10)]);
    let strict_group = topic.group("strict").unwrap().offset_reset(OffsetReset::Fail);
    let mut strict = strict_group.join().unwrap();
    match strict.try_recv() {
        Err(Error::OffsetOutOfRange { partition: 0, offset: 1000, start: 0, end: 10, .. }) => {}
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }
    assert_eq!(strict_group.committed().unwrap(), [(0, 1000)].into_iter().collect(), "nothing rewritten");
}

// ---------------------------------------------------------------------------
// (5) Lag and stats
// ---------------------------------------------------------------------------

#[test]
fn lag_is_high_watermark_minus_committed_offset_per_partition() {
    let dir = TempDir::new("lag");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().partitions(3)).unwrap();
    fill(&topic, &[0], 10);
    fill(&topic, &[1], 20);
    fill(&topic, &[2], 5);
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off);
    // A group nobody joined and nothing committed for has no lag to report.
    assert!(matches!(group.lag(), Err(Error::GroupNotFound { .. })));

    let mut m = group.join().unwrap();
    assert_eq!(lag_by_partition(&group), [(0, 10), (1, 20), (2, 5)].into_iter().collect());
    m.try_recv().unwrap();
    m.commit_offsets(&[(0, 4), (1, 20)]).unwrap();
    let lag = group.lag().unwrap();
    assert_eq!(lag.len(), 3);
    for l in &lag {
        let hw = topic.high_watermark(l.partition).unwrap();
        assert_eq!(l.high_watermark, hw);
        assert_eq!(l.committed, group.committed().unwrap().get(&l.partition).copied());
        assert_eq!(l.lag, hw - l.committed.unwrap_or(0), "partition {}", l.partition);
    }
    assert_eq!(lag_by_partition(&group), [(0, 6), (1, 0), (2, 5)].into_iter().collect());

    // Lag follows new records and new commits.
    fill(&topic, &[1], 3);
    assert_eq!(lag_by_partition(&group)[&1], 3);
    m.commit_offsets(&[(1, 22)]).unwrap();
    assert_eq!(lag_by_partition(&group)[&1], 1);
    drain(&mut m);
    m.commit().unwrap();
    assert!(group.lag().unwrap().iter().all(|l| l.lag == 0 && Some(l.high_watermark) == l.committed));

    // A group reading from the end has no lag until records arrive.
    let latest = topic.group("tail").unwrap().offset_reset(OffsetReset::Latest);
    let _tail = latest.join().unwrap();
    assert!(latest.lag().unwrap().iter().all(|l| l.lag == 0 && l.committed.is_none()));
}

#[test]
fn topic_stats_report_records_bytes_segments_and_high_watermarks() {
    let dir = TempDir::new("stats");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker
        .create_topic("t", TopicConfig::default().partitions(3).segment_bytes(4096).max_record_bytes(1024))
        .unwrap();
    let producer = topic.producer();
    for i in 0..40 {
        producer.send(Record::new(vec![i as u8; 300]).partition(0)).unwrap();
    }
    producer.send_batch((0..2).map(|_| Record::new("small").partition(1))).unwrap();

    let stats = topic.stats();
    assert_eq!(stats.topic, "t");
    assert_eq!(stats.partitions.len(), 3);
    for (i, s) in stats.partitions.iter().enumerate() {
        assert_eq!(s.partition, i as u32);
        assert_eq!(s.high_watermark, topic.high_watermark(s.partition).unwrap());
        assert_eq!(s.log_start, topic.log_start(s.partition).unwrap());
        assert_eq!(s.records, s.high_watermark - s.log_start);
        assert!(s.segments >= 1);
    }
    let (p0, p1, p2) = (&stats.partitions[0], &stats.partitions[1], &stats.partitions[2]);
    assert_eq!((p0.high_watermark, p1.high_watermark, p2.high_watermark), (40, 2, 0));
    assert_eq!((p0.records, p1.records, p2.records), (40, 2, 0));
    assert!(p0.segments >= 3, "40 x 300 bytes in 4 KiB segments: {p0:?}");
    assert_eq!((p1.segments, p2.segments), (1, 1));
    assert!(p0.bytes >= 40 * 300, "{p0:?}");
    assert!(p1.bytes >= 2 * 5 && p1.bytes < 4096, "{p1:?}");
    assert_eq!(stats.records(), 42);
    assert_eq!(stats.bytes(), p0.bytes + p1.bytes + p2.bytes);
}

// ---------------------------------------------------------------------------
// (6) Bad input
// ---------------------------------------------------------------------------

#[test]
fn invalid_group_names_are_refused_and_create_nothing() {
    let dir = TempDir::new("names");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    let long = "x".repeat(250);
    for bad in ["", ".", "..", "a/b", "../escape", "/abs", "a\\b", "with space", "nul\0", "naïve", long.as_str()] {
        match topic.group(bad) {
            Err(Error::InvalidName { kind: "group", name, .. }) => assert_eq!(name, bad),
            other => panic!("group name {bad:?}: expected InvalidName, got {other:?}"),
        }
    }
    let groups_dir = dir.join("groups");
    let leftovers = std::fs::read_dir(&groups_dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(leftovers, 0, "refused names left something in {}", groups_dir.display());
    assert!(!dir.join("escape").exists());

    // The limits themselves are fine.
    let longest = "y".repeat(249);
    for ok in ["a", "A.b_c-9", "..x", longest.as_str()] {
        let group = topic.group(ok).unwrap();
        assert_eq!(group.name(), ok);
        group.join().unwrap().close().unwrap();
    }
}

#[test]
fn commit_beyond_the_high_watermark_is_refused_and_commits_nothing() {
    let dir = TempDir::new("beyondhw");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().partitions(2)).unwrap();
    fill(&topic, &[0], 5);
    fill(&topic, &[1], 3);
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off);
    let mut m = group.join().unwrap();
    m.try_recv().unwrap();
    m.commit_offsets(&[(0, 2), (1, 1)]).unwrap();
    let path = offsets_path(dir.path(), "g", "t");
    let before = std::fs::read(&path).unwrap();

    match m.commit_offsets(&[(0, 4), (1, 4)]) {
        Err(Error::OffsetOutOfRange { partition: 1, offset: 4, end: 3, .. }) => {}
        other => panic!("expected OffsetOutOfRange for partition 1, got {other:?}"),
    }
    assert!(matches!(m.commit_offsets(&[(0, 6)]), Err(Error::OffsetOutOfRange { partition: 0, .. })));
    assert!(matches!(m.commit_offsets(&[(0, u64::MAX)]), Err(Error::OffsetOutOfRange { .. })));
    assert_eq!(group.committed().unwrap(), [(0, 2), (1, 1)].into_iter().collect(), "nothing committed");
    assert_eq!(std::fs::read(&path).unwrap(), before, "offsets file untouched");

    // The high watermark itself is a valid commit ("everything read").
    m.commit_offsets(&[(0, 5), (1, 3)]).unwrap();
    assert_eq!(group.committed().unwrap(), [(0, 5), (1, 3)].into_iter().collect());
}

#[test]
fn commit_for_a_partition_not_owned_is_refused_and_commits_nothing() {
    let dir = TempDir::new("notowned");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().partitions(2)).unwrap();
    fill(&topic, &[0, 1], 3);
    // No commit when `a` gives partition 1 up: only refused commits here.
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off).commit_on_revoke(false);
    let mut a = group.join().unwrap();
    let mut b = group.join().unwrap();
    // `a` took both partitions at `join`; `b` owns partition 1 only once
    // `a` has let it go, at `a`'s next receive call.
    assert!(matches!(b.commit_offsets(&[(1, 1)]), Err(Error::NotAssigned { partition: 1, .. })));
    a.try_recv().unwrap();
    b.try_recv().unwrap();
    assert_eq!((a.assignment(), b.assignment()), (vec![0], vec![1]));

    match a.commit_offsets(&[(0, 1), (1, 1)]) {
        Err(Error::NotAssigned { topic, group, partition: 1 }) => {
            assert_eq!((topic.as_str(), group.as_str()), ("t", "g"))
        }
        other => panic!("expected NotAssigned for partition 1, got {other:?}"),
    }
    assert!(matches!(a.commit_offsets(&[(7, 0)]), Err(Error::NotAssigned { partition: 7, .. })));
    assert!(matches!(b.commit_offsets(&[(1, 1), (0, 1)]), Err(Error::NotAssigned { partition: 0, .. })));
    assert!(group.committed().unwrap().is_empty(), "a refused commit must commit nothing");
    assert!(!offsets_path(dir.path(), "g", "t").exists());

    a.commit_offsets(&[(0, 1)]).unwrap();
    b.commit_offsets(&[(1, 2)]).unwrap();
    assert_eq!(group.committed().unwrap(), [(0, 1), (1, 2)].into_iter().collect());
}

#[test]
fn seek_on_a_partition_not_owned_is_refused_with_not_assigned() {
    let dir = TempDir::new("seek");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().partitions(2)).unwrap();
    fill(&topic, &[0, 1], 5);
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off);
    let mut a = group.join().unwrap();
    let mut b = group.join().unwrap();
    a.try_recv().unwrap();
    b.try_recv().unwrap();
    // A may move its own partition...
    a.seek(0, 3).unwrap();
    assert_eq!(a.position(0).unwrap(), 3);
    // ...but not B's, nor one that does not exist (Error::NotAssigned is
    // documented as the error for seeking a partition not owned).
    match a.seek(1, 0) {
        Err(Error::NotAssigned { partition: 1, .. }) => {}
        other => panic!("seek on partition 1 (owned by B): expected NotAssigned, got {other:?}"),
    }
    assert!(a.seek(9, 0).is_err());
    assert_eq!(a.assignment(), [0]);
    assert_eq!(b.positions(), [(1, 1)], "B's position is untouched");
}

// ---------------------------------------------------------------------------
// (7) Damaged offsets files
// ---------------------------------------------------------------------------

/// Creates topic "t" (2 partitions x 20 records) and group "g" with two
/// commits: `.prev` holds {0: 5, 1: 5}, the current file {0: 12, 1: 9}.
/// Returns the bytes of both files; the broker is closed.
fn two_commits(dir: &TempDir) -> (Vec<u8>, Vec<u8>) {
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().partitions(2)).unwrap();
    fill(&topic, &[0, 1], 20);
    let mut m = topic.group("g").unwrap().auto_commit(AutoCommit::Off).join().unwrap();
    assert_eq!(drain(&mut m).len(), 40);
    m.commit_offsets(&[(0, 5), (1, 5)]).unwrap();
    m.commit_offsets(&[(0, 12), (1, 9)]).unwrap();
    drop(m);
    broker.close().unwrap();
    let current = std::fs::read(offsets_path(dir.path(), "g", "t")).unwrap();
    let prev = std::fs::read(prev_offsets_path(dir.path(), "g", "t")).unwrap();
    // The documented format (version 2), checked with an independent
    // encoder: every record was written in the partitions' first epoch.
    assert_eq!(current, encode_offsets_v2("g", "t", &[(0, (12, 1)), (1, (9, 1))].into_iter().collect()));
    assert_eq!(prev, encode_offsets_v2("g", "t", &[(0, (5, 1)), (1, (5, 1))].into_iter().collect()));
    (current, prev)
}

fn prev_map() -> BTreeMap<u32, u64> {
    [(0, 5), (1, 5)].into_iter().collect()
}

/// Reopens the broker and checks that group "g" fell back to `.prev`: a
/// warning, the previous offsets, and a member that resumes there
/// (re-delivering, never skipping).
fn assert_falls_back_to_prev(dir: &TempDir, what: &str) {
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.topic("t").unwrap();
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off);
    let mut m = group.join().unwrap_or_else(|e| panic!("{what}: join failed: {e}"));
    let warning = group.offsets_warning().unwrap_or_else(|| panic!("{what}: no warning"));
    assert!(warning.contains("offsets"), "{what}: warning {warning:?} does not name the file");
    assert_eq!(group.committed().unwrap(), prev_map(), "{what}");
    let mut got = drain(&mut m);
    got.sort_unstable();
    let expected: Vec<(u32, u64)> = (0..2).flat_map(|p| (5..20).map(move |o| (p, o))).collect();
    assert_eq!(got, expected, "{what}: must resume at the previous commit");
    drop(m);
    broker.close().unwrap();
}

#[test]
fn every_flipped_byte_in_the_offsets_file_falls_back_to_prev() {
    let dir = TempDir::new("flip");
    let (current, _prev) = two_commits(&dir);
    let path = offsets_path(dir.path(), "g", "t");
    for i in 0..current.len() {
        let mut bad = current.clone();
        bad[i] ^= 0x10;
        std::fs::write(&path, &bad).unwrap();
        let broker = Broker::open(dir.path()).unwrap();
        let group = broker.topic("t").unwrap().group("g").unwrap();
        assert_eq!(group.committed().unwrap(), prev_map(), "byte {i} flipped");
        assert!(group.offsets_warning().is_some(), "byte {i} flipped: no warning");
        broker.close().unwrap();
    }
}

#[test]
fn corrupt_offsets_file_falls_back_to_prev_and_redelivers_without_skipping() {
    let dir = TempDir::new("corrupt");
    let (current, _prev) = two_commits(&dir);
    let path = offsets_path(dir.path(), "g", "t");
    let mut bad = current.clone();
    bad[22] ^= 0xFF; // inside partition 0's offset (after the 16-byte header and the names "g", "t")
    std::fs::write(&path, &bad).unwrap();
    assert_falls_back_to_prev(&dir, "flipped byte");

    // A new commit repairs the group: no warning after the next reopen.
    let broker = Broker::open(dir.path()).unwrap();
    let group = broker.topic("t").unwrap().group("g").unwrap().auto_commit(AutoCommit::Off);
    let mut m = group.join().unwrap();
    assert_eq!(drain(&mut m).len(), 30);
    m.commit().unwrap();
    drop(m);
    broker.close().unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    let group = broker.topic("t").unwrap().group("g").unwrap();
    assert_eq!(group.committed().unwrap(), [(0, 20), (1, 20)].into_iter().collect());
    assert_eq!(group.offsets_warning(), None);
}

#[test]
fn torn_offsets_file_falls_back_to_prev() {
    let dir = TempDir::new("torn");
    let (current, _prev) = two_commits(&dir);
    let path = offsets_path(dir.path(), "g", "t");
    for len in [0, 1, 15, current.len() / 2, current.len() - 4, current.len() - 1] {
        std::fs::write(&path, &current[..len]).unwrap();
        assert_falls_back_to_prev(&dir, &format!("offsets file torn at {len} bytes"));
    }
    // Torn with garbage appended (a longer, stale tail) is damage too.
    let mut longer = current.clone();
    longer.extend_from_slice(&[0; 12]);
    std::fs::write(&path, &longer).unwrap();
    assert_falls_back_to_prev(&dir, "offsets file with a stale tail");
}

#[test]
fn missing_offsets_file_after_a_crash_between_renames_uses_prev() {
    let dir = TempDir::new("missing");
    two_commits(&dir);
    std::fs::remove_file(offsets_path(dir.path(), "g", "t")).unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    let group = broker.topic("t").unwrap().group("g").unwrap().auto_commit(AutoCommit::Off);
    let mut m = group.join().unwrap();
    assert_eq!(group.committed().unwrap(), prev_map());
    let mut got = drain(&mut m);
    got.sort_unstable();
    assert_eq!(got.first(), Some(&(0, 5)));
    assert_eq!(got.len(), 30);
}

/// With both files damaged, the group refuses to start (no guessing, no
/// panic), while the topic itself stays readable.
fn assert_group_refuses_to_start(dir: &TempDir, what: &str) {
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.topic("t").unwrap();
    let group = topic.group("g").unwrap();
    let expected = offsets_path(dir.path(), "g", "t");
    match group.join() {
        Err(Error::CorruptMetadata { path, .. }) => assert_eq!(path, expected, "{what}"),
        other => panic!("{what}: expected CorruptMetadata, got {other:?}"),
    }
    assert!(matches!(group.committed(), Err(Error::CorruptMetadata { .. })), "{what}");
    assert!(matches!(group.lag(), Err(Error::CorruptMetadata { .. })), "{what}");
    assert!(matches!(group.join(), Err(Error::CorruptMetadata { .. })), "{what}: second join");
    assert_eq!(group.members(), 0, "{what}: a failed join left a member behind");
    assert_eq!(topic.consumer(StartFrom::Earliest).unwrap().try_iter().count(), 40, "{what}");
    // Other groups are unaffected.
    let other = topic.group("other").unwrap().auto_commit(AutoCommit::Off);
    assert_eq!(drain(&mut other.join().unwrap()).len(), 40, "{what}");
    broker.close().unwrap();
}

#[test]
fn corrupt_offsets_and_prev_make_join_fail_with_corrupt_metadata() {
    let dir = TempDir::new("bothbad");
    let (current, prev) = two_commits(&dir);
    let (path, prev_path) = (offsets_path(dir.path(), "g", "t"), prev_offsets_path(dir.path(), "g", "t"));
    let (mut a, mut b) = (current.clone(), prev.clone());
    a[20] ^= 1;
    b[3] ^= 1;
    std::fs::write(&path, &a).unwrap();
    std::fs::write(&prev_path, &b).unwrap();
    assert_group_refuses_to_start(&dir, "both flipped");

    std::fs::remove_file(&prev_path).unwrap();
    assert_group_refuses_to_start(&dir, "current flipped, no prev");
}

#[test]
fn torn_offsets_and_prev_make_join_fail_with_corrupt_metadata() {
    let dir = TempDir::new("bothtorn");
    let (current, prev) = two_commits(&dir);
    std::fs::write(offsets_path(dir.path(), "g", "t"), &current[..current.len() - 6]).unwrap();
    std::fs::write(prev_offsets_path(dir.path(), "g", "t"), &prev[..7]).unwrap();
    assert_group_refuses_to_start(&dir, "both torn");
}

// ---------------------------------------------------------------------------
// (8) Blocked members
// ---------------------------------------------------------------------------

#[test]
fn member_blocked_in_recv_wakes_when_a_leaving_member_hands_it_a_partition_with_data() {
    let dir = TempDir::new("wakeleave");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().partitions(2)).unwrap();
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off);
    let mut a = group.join().unwrap();
    let mut b = group.join().unwrap();
    assert!(a.try_recv().unwrap().is_none());
    assert!(b.try_recv().unwrap().is_none());
    assert_eq!((a.assignment(), b.assignment()), (vec![0], vec![1]));
    fill(&topic, &[1], 3); // only B's partition has data

    let rx = spawn_answer(move || {
        let m = a.recv().map(|m| (m.partition(), m.offset()));
        (m, a.assignment())
    });
    std::thread::sleep(Duration::from_millis(50)); // let it block (not required for correctness)
    b.close().unwrap();
    let (m, assignment) = answer_within(&rx, "the blocked member receiving the handed-over partition");
    assert_eq!(m.unwrap(), (1, 0));
    assert_eq!(assignment, [0, 1]);
}

#[test]
fn member_blocked_in_recv_gives_up_a_partition_a_blocked_newcomer_is_waiting_for() {
    let dir = TempDir::new("wakejoin");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().partitions(2)).unwrap();
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off);
    let mut a = group.join().unwrap();
    let revoked = Arc::new(Mutex::new(Vec::new()));
    let r = Arc::clone(&revoked);
    a.on_rebalance(move |e| {
        if e.kind() == RebalanceKind::Revoked {
            r.lock().unwrap().extend_from_slice(e.partitions());
        }
    });
    assert!(a.try_recv().unwrap().is_none());
    assert_eq!(a.assignment(), [0, 1]);

    // A blocks on its (empty) partitions.
    let a_rx = spawn_answer(move || (a.recv().map(|m| (m.partition(), m.offset())), a));
    std::thread::sleep(Duration::from_millis(20));
    // B joins and blocks too: its partition 1 is still A's.
    let mut b = group.join().unwrap();
    // (Each thread hands its member back, so it stays in the group: a
    // dropped B would give partition 1 back to A, which would then rightly
    // re-deliver B's uncommitted record.)
    let b_rx = spawn_answer(move || (b.recv().map(|m| (m.partition(), m.offset())), b));
    // A must wake, give partition 1 up, and B must wake and take it.
    wait_until(HANG, "partition 1 moving from A to B", || {
        let owners = group.owners();
        owners.len() == 2 && owners[&0] != owners[&1]
    });
    assert_eq!(*revoked.lock().unwrap(), [1]);
    fill(&topic, &[1], 1);
    let (got, b) = answer_within(&b_rx, "B receiving from partition 1");
    assert_eq!(got.unwrap(), (1, 0));
    fill(&topic, &[0], 1);
    let (got, a) = answer_within(&a_rx, "A receiving from partition 0");
    assert_eq!(got.unwrap(), (0, 0));
    assert_eq!((a.assignment(), b.assignment()), (vec![0], vec![1]));
}

#[test]
fn member_blocked_in_recv_wakes_with_closed_when_the_broker_closes() {
    let dir = TempDir::new("wakeclose");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().partitions(2)).unwrap();
    let mut m = topic.group("g").unwrap().join().unwrap();
    assert!(m.try_recv().unwrap().is_none());
    let rx = spawn_answer(move || m.recv().map(|m| m.offset()));
    std::thread::sleep(Duration::from_millis(20));
    broker.close().unwrap();
    assert!(matches!(answer_within(&rx, "the blocked member waking on close"), Err(Error::Closed)));
}

#[test]
fn member_without_partitions_blocked_in_recv_wakes_with_closed_when_the_broker_closes() {
    let dir = TempDir::new("wakeclose0");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    let group = topic.group("g").unwrap();
    let mut owner = group.join().unwrap();
    let mut idle = group.join().unwrap();
    assert!(owner.try_recv().unwrap().is_none());
    assert!(idle.try_recv().unwrap().is_none());
    assert!(idle.assignment().is_empty(), "one partition, two members: the second gets none");
    let rx = spawn_answer(move || idle.recv().map(|m| m.offset()));
    std::thread::sleep(Duration::from_millis(20));
    broker.close().unwrap();
    assert!(matches!(answer_within(&rx, "the partition-less member waking on close"), Err(Error::Closed)));
    drop(owner);
}

#[test]
fn concurrent_commits_of_several_members_all_persist() {
    let tmp = TempDir::new("concurrent-commits");
    {
        let broker = Broker::open(tmp.path()).unwrap();
        let topic = broker.create_topic("t", TopicConfig::default().partitions(4)).unwrap();
        fill(&topic, &[0, 1, 2, 3], 200);
        let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off);
        let mut members: Vec<GroupMember> = (0..4).map(|_| group.join().unwrap()).collect();
        // Each member takes its one partition at its first receive call.
        for m in &mut members {
            wait_until(HANG, "a member got its partition", || {
                m.try_recv().unwrap();
                m.assignment().len() == 1
            });
        }
        let threads: Vec<_> = members
            .into_iter()
            .map(|mut m| {
                std::thread::spawn(move || {
                    let p = m.assignment()[0];
                    // Commit one record at a time, racing the other members.
                    for offset in 1..=40u64 {
                        m.commit_offsets(&[(p, offset)]).unwrap();
                    }
                    m
                })
            })
            .collect();
        let members: Vec<GroupMember> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let want: BTreeMap<u32, u64> = (0..4).map(|p| (p, 40)).collect();
        assert_eq!(group.committed().unwrap(), want, "no commit lost another member's");
        drop(members);
    }
    // And the same after a restart: every member's last commit is on disk.
    let broker = Broker::open(tmp.path()).unwrap();
    let group = broker.topic("t").unwrap().group("g").unwrap();
    assert_eq!(group.committed().unwrap(), (0..4).map(|p| (p, 40)).collect::<BTreeMap<u32, u64>>());
}

/// One partition whose oldest segment cannot be opened (here: a file grown
/// past any size millpond writes) is reported to the member that gets it —
/// once, while the failure stays the same — and the member reads its other
/// partitions to the end, as independent consumers of them do.
#[test]
fn group_member_keeps_reading_healthy_partitions_when_one_is_damaged() {
    let tmp = TempDir::new("damaged-partition");
    {
        let broker = Broker::open(tmp.path()).unwrap();
        let cfg = TopicConfig::default().partitions(3).segment_bytes(4096).max_record_bytes(1024);
        let topic = broker.create_topic("t", cfg).unwrap();
        let producer = topic.producer();
        for p in 0..3 {
            // 200-byte values: several segments per partition.
            producer.send_batch((0..40).map(|i| Record::new(vec![i as u8; 200]).partition(p))).unwrap();
        }
        broker.close().unwrap();
    }
    for p in 0..3 {
        assert!(segment_files(tmp.path(), "t", p).len() > 1, "partition {p} has a sealed segment");
    }
    let damaged = &segment_files(tmp.path(), "t", 0)[0];
    std::fs::OpenOptions::new().write(true).open(damaged).unwrap().set_len((1 << 31) + 1).unwrap();

    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.topic("t").unwrap();
    let mut healthy: Vec<(u32, u64)> = topic
        .consumer_of(&[1, 2], StartFrom::Earliest)
        .unwrap()
        .try_iter()
        .map(|m| m.map(|m| (m.partition(), m.offset())))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(healthy.len(), 80, "independent consumers read the healthy partitions");
    healthy.sort_unstable();

    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off);
    let mut member = group.join().unwrap();
    let mut got = Vec::new();
    let mut errors = Vec::new();
    for item in member.try_iter().take(1000) {
        match item {
            Ok(m) => got.push((m.partition(), m.offset())),
            Err(e) => errors.push(e),
        }
    }
    got.sort_unstable();
    assert_eq!(got, healthy, "the member read every record of the healthy partitions");
    assert_eq!(errors.len(), 1, "the damaged partition is reported once: {errors:?}");
    match &errors[0] {
        Error::Corrupt { partition: 0, path, .. } => assert_eq!(path, damaged),
        other => panic!("expected Corrupt for partition 0, got {other:?}"),
    }
    assert!(member.try_recv().unwrap().is_none(), "nothing more, and no error repeated");
    assert_eq!(member.assignment(), [1, 2], "it reads the partitions it could open");
    member.commit().unwrap();
    let committed = group.committed().unwrap();
    assert_eq!((committed.get(&0), committed[&1], committed[&2]), (None, 40, 40), "partition 0 keeps its offset");
    // The damaged partition stays this member's: no other member gets it
    // while it is a member (its other partitions are shared as usual).
    let mut other = group.join().unwrap();
    assert!(other.try_recv().unwrap().is_none());
    assert!(member.try_recv().unwrap().is_none());
    assert!(!other.assignment().contains(&0));
}

/// A member with no partitions (more members than partitions) blocked in
/// any receive call wakes when the broker closes or the topic is deleted,
/// with the error every other blocked receiver gets.
#[test]
fn group_member_without_partitions_wakes_on_close() {
    for delete in [false, true] {
        let tmp = TempDir::new("idle-member-close");
        let broker = Broker::open(tmp.path()).unwrap();
        let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
        let group = topic.group("g").unwrap();
        let mut busy = group.join().unwrap();
        assert!(busy.try_recv().unwrap().is_none()); // takes the only partition
        let idle: Vec<GroupMember> = (0..3).map(|_| group.join().unwrap()).collect();
        let answers: Vec<_> = idle
            .into_iter()
            .enumerate()
            .map(|(form, mut m)| {
                spawn_answer(move || {
                    let r = match form {
                        0 => m.recv().map(|_| ()),
                        1 => m.recv_timeout(Duration::from_secs(3600)).map(|_| ()),
                        _ => m.poll(10, Duration::from_secs(3600)).map(|_| ()),
                    };
                    (form, m.assignment(), r)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50)); // let them park (not an assertion)
        if delete {
            broker.delete_topic("t").unwrap();
        } else {
            broker.close().unwrap();
        }
        for rx in &answers {
            let (form, assignment, r) = answer_within(rx, "an idle member waking on close");
            assert!(assignment.is_empty(), "form {form}: it had no partitions");
            match r {
                Err(Error::Closed) if !delete => {}
                Err(Error::TopicDeleted { .. }) if delete => {}
                other => panic!("form {form} delete={delete}: expected the closing error, got {other:?}"),
            }
        }
        drop(busy);
    }
}
