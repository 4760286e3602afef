//! Review of the "transactions hold a group's state" change: failing tests.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use millpond::{AutoCommit, Broker, Error, Record, TopicConfig};
use support::dir::TempDir;

/// A plain async commit requested *before* a transaction (same member,
/// same partition, older offset) is still queued when the transaction
/// applies its offsets straight into `committed`; the commit thread then
/// applies the older request over them, writes the file, and settles the
/// transaction's entry: the group goes back, in memory and after reopen.
#[test]
fn an_older_queued_async_commit_does_not_undo_a_later_transaction() {
    let dir = TempDir::new("rev2-order");
    let mut regressed = Vec::new();
    let mut expected = Vec::new();
    {
        let broker = Broker::open(dir.path()).unwrap();
        let input = broker.create_topic("in", TopicConfig::default()).unwrap();
        let busy = broker.create_topic("busy", TopicConfig::default()).unwrap();
        busy.producer().send(Record::new("x")).unwrap();
        for round in 0..20u64 {
            input.producer().send_batch((0..5).map(|i| Record::new(format!("{i}")))).unwrap();
            let name = format!("g{round}");
            let group = input.group(&name).unwrap().auto_commit(AutoCommit::Off).commit_on_revoke(false);
            let mut member = group.join().unwrap();
            let mut got = 0;
            while got < 5 * (round + 1) {
                got += member.poll(100, Duration::from_millis(20)).unwrap().len() as u64;
            }
            let end = member.position(0).unwrap();
            // Keep the commit thread busy with other groups' fsyncs.
            let mut others = Vec::new();
            for k in 0..8 {
                let m = busy.group(&format!("busy-{round}-{k}")).unwrap().auto_commit(AutoCommit::Off).join().unwrap();
                others.push(m);
            }
            let busy_handles: Vec<_> = others.iter().map(|m| m.commit_offsets_async(&[(0, 1)])).collect();
            // An older commit, then the transaction with the newer position.
            let older = member.commit_offsets_async(&[(0, end - 3)]);
            let mut txn = broker.transaction().unwrap();
            txn.commit_offsets(&mut member).unwrap();
            txn.commit().unwrap();
            older.wait().unwrap();
            for h in busy_handles {
                h.wait().unwrap();
            }
            let committed = group.committed().unwrap();
            if committed.get(&0) != Some(&end) {
                regressed.push((name.clone(), end, committed));
            }
            expected.push((name.clone(), end));
            drop(member);
            drop(others);
        }
    }
    // After a reopen (the transaction's entry was settled by the write).
    let broker = Broker::open(dir.path()).unwrap();
    let input = broker.topic("in").unwrap();
    let mut after_reopen = Vec::new();
    for (name, end) in &expected {
        let c = input.group(name).unwrap().committed().unwrap();
        if c.get(&0) != Some(end) {
            after_reopen.push((name.clone(), *end, c));
        }
    }
    assert!(
        regressed.is_empty() && after_reopen.is_empty(),
        "in memory: {regressed:?}; after reopen: {after_reopen:?}"
    );
    assert!(
        regressed.is_empty(),
        "the transaction's later offsets were undone by an older queued commit: {regressed:?}"
    );
}

/// A member that never received (nor had committed) anything of a
/// partition gives it up at a rebalance: nothing of it can be in its
/// transaction, yet the fence (`committed != Some(position)`, with no
/// commit at all) makes the next transaction fail.
#[test]
fn giving_up_a_partition_never_read_does_not_fence_the_next_transaction() {
    let dir = TempDir::new("rev2-fence");
    let broker = Broker::open(dir.path()).unwrap();
    let input = broker.create_topic("in", TopicConfig::default().partitions(2)).unwrap();
    let out = broker.create_topic("out", TopicConfig::default()).unwrap();
    // Records on partition 0 only.
    input.producer().send_batch((0..5).map(|i| Record::new(format!("{i}")).partition(0))).unwrap();
    let group = input.group("g").unwrap().auto_commit(AutoCommit::Off).commit_on_revoke(false);
    let mut a = group.join().unwrap();
    assert_eq!(a.assignment(), vec![0, 1]);
    let mut got = 0;
    while got < 5 {
        got += a.poll(100, Duration::from_millis(20)).unwrap().len();
    }
    // B joins: A gives up partition 1, of which it never received a record.
    let b = group.join().unwrap();
    let _ = a.poll(10, Duration::from_millis(50)).unwrap();
    let _ = a.poll(10, Duration::from_millis(50)).unwrap();
    assert_eq!(a.assignment(), vec![0]);
    let mut txn = broker.transaction().unwrap();
    txn.send(&out, Record::new("out2")).unwrap();
    txn.commit_offsets(&mut a).unwrap();
    let result = txn.commit();
    assert!(
        !matches!(result, Err(Error::NotAssigned { partition: 1, .. })),
        "fenced for a partition nothing was received from: {result:?}"
    );
    result.unwrap();
    assert_eq!(group.committed().unwrap(), BTreeMap::from([(0, 5)]));
    drop(b);
}
