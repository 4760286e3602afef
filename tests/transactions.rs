//! Transactions in one process: a commit makes every record visible and the
//! group's offsets committed together; an abort, a drop, a timeout or a
//! failed check leaves nothing; plain sends go on beside them; readers —
//! consumers, group members, mirrors, read-only brokers — never see an
//! uncommitted record; everything survives a reopen. (`transaction_crash.rs`
//! kills processes mid-transaction; `transaction_model.rs` is the model.)

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use millpond::{
    AutoCommit, Broker, BrokerConfig, Error, FsyncPolicy, Message, Mirror, Record, StartFrom, Topic, TopicConfig,
};
use support::dir::TempDir;

fn values(topic: &Topic) -> BTreeMap<u32, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut c = topic.consumer(StartFrom::Earliest).unwrap();
    loop {
        let batch = c.poll(10_000, Duration::from_millis(20)).unwrap();
        if batch.is_empty() {
            return out;
        }
        for m in batch {
            out.entry(m.partition()).or_insert_with(Vec::new).push(String::from_utf8(m.value().to_vec()).unwrap());
        }
    }
}

fn all(topic: &Topic) -> Vec<String> {
    let mut v: Vec<String> = values(topic).into_values().flatten().collect();
    v.sort();
    v
}

#[test]
fn a_commit_makes_records_on_many_topics_visible_and_commits_the_group_at_once() {
    let dir = TempDir::new("txn-commit");
    let broker = Broker::open(dir.path()).unwrap();
    let input = broker.create_topic("in", TopicConfig::default().partitions(2)).unwrap();
    let out = broker.create_topic("out", TopicConfig::default().partitions(4)).unwrap();
    let audit = broker.create_topic("audit", TopicConfig::default()).unwrap();
    input.producer().send_batch((0..20).map(|i| Record::new(format!("in-{i:02}")).partition(i % 2))).unwrap();

    let group = input.group("g").unwrap().auto_commit(AutoCommit::Off).commit_on_revoke(false);
    let mut member = group.join().unwrap();
    let mut txn = broker.transaction().unwrap();
    while txn.len() < 20 {
        for m in member.poll(100, Duration::from_millis(20)).unwrap() {
            let v = String::from_utf8(m.value().to_vec()).unwrap();
            txn.send(&out, Record::new(format!("out-{v}")).key(v.clone())).unwrap();
        }
    }
    txn.send(&audit, Record::new("batch of 20")).unwrap();
    txn.commit_offsets(&mut member).unwrap();
    // Nothing is visible before the commit.
    assert!(all(&out).is_empty() && all(&audit).is_empty());
    assert!(group.committed().unwrap().is_empty());

    let done = txn.commit().unwrap();
    assert_eq!(done.records(), 21);
    assert_eq!(all(&out).len(), 20);
    assert_eq!(all(&audit), vec!["batch of 20"]);
    assert_eq!(group.committed().unwrap(), BTreeMap::from([(0, 10), (1, 10)]));
    // Each part is at consecutive offsets, followed by a marker.
    for part in done.parts() {
        let topic = if part.topic() == "out" { &out } else { &audit };
        assert_eq!(topic.high_watermark(part.partition()).unwrap(), part.first_offset() + part.records() + 1);
    }
    // A consumer that read everything is at the end (past the markers).
    let mut c = out.consumer(StartFrom::Earliest).unwrap();
    assert_eq!(
        c.poll(1000, Duration::from_millis(50)).unwrap().len() + c.poll(1000, Duration::ZERO).unwrap().len(),
        20
    );
    while c.try_recv().unwrap().is_some() {}
    assert_eq!(c.lag(), 0, "markers count as read");
}

#[test]
fn abort_drop_timeout_and_a_refused_member_leave_nothing_behind() {
    let dir = TempDir::new("txn-abort");
    let config = BrokerConfig::default().transaction_timeout(Duration::from_millis(200));
    let broker = Broker::open_with(dir.path(), config).unwrap();
    let input = broker.create_topic("in", TopicConfig::default()).unwrap();
    let out = broker.create_topic("out", TopicConfig::default().partitions(2)).unwrap();
    input.producer().send_batch((0..5).map(|i| Record::new(format!("{i}")))).unwrap();

    let mut txn = broker.transaction().unwrap();
    txn.send(&out, Record::new("aborted")).unwrap();
    txn.abort();
    let mut txn = broker.transaction().unwrap();
    txn.send_batch(&out, (0..10).map(|i| Record::new(format!("dropped-{i}")))).unwrap();
    drop(txn);
    let mut txn = broker.transaction().unwrap();
    txn.send(&out, Record::new("late")).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(matches!(txn.send(&out, Record::new("later")), Err(Error::TransactionTimedOut { .. })));
    assert!(matches!(txn.commit(), Err(Error::TransactionTimedOut { .. })));

    // A member that commits on its own cannot lend its offsets.
    let mut auto = input.group("auto").unwrap().join().unwrap();
    let mut txn = broker.transaction().unwrap();
    assert!(matches!(txn.commit_offsets(&mut auto), Err(Error::InvalidConfig { .. })));
    drop(auto);

    // A member that left before the commit: refused, nothing written.
    let group = input.group("g").unwrap().auto_commit(AutoCommit::Off).commit_on_revoke(false);
    let mut member = group.join().unwrap();
    while member.try_recv().unwrap().is_some() {}
    let mut txn = broker.transaction().unwrap();
    txn.send(&out, Record::new("orphan")).unwrap();
    txn.commit_offsets(&mut member).unwrap();
    drop(member);
    assert!(matches!(txn.commit(), Err(Error::NotAMember { .. })));

    assert_eq!((out.high_watermark(0).unwrap(), out.high_watermark(1).unwrap()), (0, 0));
    assert!(group.committed().unwrap().is_empty());
    // A topic of another broker is refused.
    let other_dir = TempDir::new("txn-other");
    let other = Broker::open(other_dir.path()).unwrap();
    let foreign = other.create_topic("out", TopicConfig::default()).unwrap();
    let mut txn = broker.transaction().unwrap();
    assert!(matches!(txn.send(&foreign, Record::new("x")), Err(Error::InvalidConfig { .. })));
    // Bad records are refused one by one, and the transaction goes on.
    let small = broker.create_topic("small", TopicConfig::default().max_record_bytes(64)).unwrap();
    assert!(matches!(txn.send(&small, Record::new(vec![0u8; 100])), Err(Error::RecordTooLarge { .. })));
    assert!(matches!(txn.send(&small, Record::new("x").partition(3)), Err(Error::InvalidPartition { .. })));
    assert!(txn.send_batch(&small, [Record::new("ok"), Record::new(vec![0u8; 100])]).is_err());
    assert!(txn.is_empty(), "a refused batch adds nothing");
    txn.send(&small, Record::new("kept")).unwrap();
    txn.commit().unwrap();
    assert_eq!(all(&small), vec!["kept"]);
}

#[test]
fn plain_sends_interleave_with_transactions_and_keep_each_partitions_order() {
    let dir = TempDir::new("txn-plain");
    let broker = Broker::open(dir.path()).unwrap();
    let out = broker
        .create_topic("out", TopicConfig::default().partitions(2).segment_bytes(16 << 10).max_record_bytes(4096))
        .unwrap();
    let p = out.producer();
    p.send(Record::new("plain-0").partition(0)).unwrap();
    let mut txn = broker.transaction().unwrap();
    txn.send(&out, Record::new("txn-a").partition(0)).unwrap();
    // Sent while the transaction is open: before it, since it commits later.
    p.send(Record::new("plain-1").partition(0)).unwrap();
    txn.send(&out, Record::new("txn-b").partition(0)).unwrap();
    txn.commit().unwrap();
    p.send(Record::new("plain-2").partition(0)).unwrap();
    assert_eq!(values(&out)[&0], vec!["plain-0", "plain-1", "txn-a", "txn-b", "plain-2"]);
    // Many transactions across rolls of small segments, and one larger
    // than a segment (its share gets a segment of its own size).
    for t in 0..50 {
        let mut txn = broker.transaction().unwrap();
        txn.send_batch(&out, (0..20).map(|i| Record::new(format!("t{t:02}-{i:02}-{}", "x".repeat(100))).partition(1)))
            .unwrap();
        txn.commit().unwrap();
    }
    let mut big = broker.transaction().unwrap();
    big.send_batch(&out, (0..400).map(|i| Record::new(format!("big-{i:03}-{}", "y".repeat(100))).partition(1)))
        .unwrap();
    big.commit().unwrap();
    let got = values(&out)[&1].clone();
    let expected: Vec<String> = (0..50)
        .flat_map(|t| (0..20).map(move |i| format!("t{t:02}-{i:02}-{}", "x".repeat(100))))
        .chain((0..400).map(|i| format!("big-{i:03}-{}", "y".repeat(100))))
        .collect();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "not in commit order");
    // All still there after a clean reopen.
    drop(out);
    drop(p);
    drop(broker);
    let broker = Broker::open(dir.path()).unwrap();
    assert!(broker.recovery_report().is_empty(), "{:?}", broker.recovery_report());
    let out = broker.topic("out").unwrap();
    assert!(values(&out)[&1] == got, "changed by a reopen");
}

#[test]
fn readers_never_see_a_transaction_in_part_while_commits_and_plain_sends_race() {
    let dir = TempDir::new("txn-race");
    let broker = Broker::open(dir.path()).unwrap();
    let out = broker
        .create_topic("out", TopicConfig::default().partitions(4).segment_bytes(64 << 10).max_record_bytes(4096))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    const TXNS: u32 = 300;
    let committer = {
        let (broker, out) = (broker.clone(), out.clone());
        std::thread::spawn(move || {
            for t in 0..TXNS {
                let mut txn = broker.transaction().unwrap();
                for p in 0..4 {
                    let n = 1 + (t + p) % 7;
                    for i in 0..n {
                        txn.send(&out, Record::new(format!("T{t}:{i}/{n}")).partition(p)).unwrap();
                    }
                }
                if t % 5 == 4 { txn.abort() } else { txn.commit().map(drop).unwrap() }
            }
        })
    };
    let plain = {
        let (out, stop) = (out.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let p = out.producer();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                p.send(Record::new(format!("P{i}")).partition((i % 4) as u32)).unwrap();
                i += 1;
                if i.is_multiple_of(64) {
                    std::thread::yield_now();
                }
            }
            i
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (out, stop) = (out.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut c = out.consumer(StartFrom::Earliest).unwrap();
                // Per partition: the transaction being read, and how far.
                let mut open: BTreeMap<u32, (u32, u32, u32)> = BTreeMap::new();
                let mut seen = 0u64;
                let check = |m: &Message, open: &mut BTreeMap<u32, (u32, u32, u32)>| {
                    let v = String::from_utf8(m.value().to_vec()).unwrap();
                    if let Some(rest) = v.strip_prefix('T') {
                        let (t, rest) = rest.split_once(':').unwrap();
                        let (i, n) = rest.split_once('/').unwrap();
                        let (t, i, n): (u32, u32, u32) = (t.parse().unwrap(), i.parse().unwrap(), n.parse().unwrap());
                        assert!(t % 5 != 4, "an aborted transaction's record: {v}");
                        match open.get(&m.partition()) {
                            Some(&(ot, oi, on)) => {
                                assert_eq!(
                                    (t, i, n),
                                    (ot, oi + 1, on),
                                    "partition {}: {v} inside another",
                                    m.partition()
                                )
                            }
                            None => assert_eq!(i, 0, "partition {}: {v} starts a transaction midway", m.partition()),
                        }
                        if i + 1 == n {
                            open.remove(&m.partition());
                        } else {
                            open.insert(m.partition(), (t, i, n));
                        }
                    } else {
                        assert!(!open.contains_key(&m.partition()), "{v} inside a transaction");
                    }
                };
                loop {
                    let done = stop.load(Ordering::Acquire);
                    let batch = c.poll(500, Duration::from_millis(5)).unwrap();
                    for m in &batch {
                        check(m, &mut open);
                        seen += 1;
                    }
                    if done && batch.is_empty() {
                        assert!(open.is_empty(), "a transaction seen in part: {open:?}");
                        return seen;
                    }
                }
            })
        })
        .collect();
    committer.join().unwrap();
    stop.store(true, Ordering::Release);
    let plain_sent = plain.join().unwrap();
    let committed: u64 =
        (0..TXNS).filter(|t| t % 5 != 4).map(|t| (0..4).map(|p| u64::from(1 + (t + p) % 7)).sum::<u64>()).sum();
    for r in readers {
        assert_eq!(r.join().unwrap(), committed + plain_sent);
    }
}

#[test]
fn mirrors_and_read_only_brokers_copy_and_read_only_committed_transactions() {
    let dir = TempDir::new("txn-readers");
    let backup_dir = TempDir::new("txn-backup");
    let broker = Broker::open(dir.path()).unwrap();
    let out = broker.create_topic("out", TopicConfig::default().partitions(2)).unwrap();
    let backup = Broker::open(backup_dir.path()).unwrap();
    let copy = backup.create_topic("out", TopicConfig::default().partitions(2)).unwrap();
    let follower = Broker::open_read_only(dir.path()).unwrap();
    let followed = follower.topic("out").unwrap();
    let mut reader = followed.consumer(StartFrom::Earliest).unwrap();
    let mirror = Mirror::start(&out, &copy, "backup").unwrap();

    let mut open = broker.transaction().unwrap();
    open.send_batch(&out, (0..10).map(|i| Record::new(format!("open-{i}")))).unwrap();
    let mut aborted = broker.transaction().unwrap();
    aborted.send(&out, Record::new("aborted")).unwrap();
    aborted.abort();
    for t in 0..5 {
        let mut txn = broker.transaction().unwrap();
        txn.send_batch(&out, (0..4).map(|i| Record::new(format!("c{t}-{i}")))).unwrap();
        txn.commit().unwrap();
    }
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while got.len() < 20 && std::time::Instant::now() < deadline {
        for m in reader.poll(100, Duration::from_millis(20)).unwrap() {
            got.push(String::from_utf8(m.value().to_vec()).unwrap());
        }
    }
    got.sort();
    let expected: Vec<String> = {
        let mut v: Vec<String> = (0..5).flat_map(|t| (0..4).map(move |i| format!("c{t}-{i}"))).collect();
        v.sort();
        v
    };
    assert_eq!(got, expected, "the follower reads the committed records");
    open.commit().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while got.len() < 30 && std::time::Instant::now() < deadline {
        for m in reader.poll(100, Duration::from_millis(20)).unwrap() {
            got.push(String::from_utf8(m.value().to_vec()).unwrap());
        }
    }
    assert_eq!(got.len(), 30);
    assert!(!got.iter().any(|v| v == "aborted"));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while all(&copy).len() < 30 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    mirror.stop().unwrap();
    let mut mirrored = all(&copy);
    mirrored.sort();
    got.sort();
    assert_eq!(mirrored, got, "the mirror copies exactly the committed records");
}

#[test]
fn a_durable_transaction_is_synced_and_the_log_settles_across_reopens() {
    let dir = TempDir::new("txn-durable");
    {
        let broker = Broker::open(dir.path()).unwrap();
        let input = broker.create_topic("in", TopicConfig::default()).unwrap();
        let out = broker.create_topic("out", TopicConfig::default().fsync(FsyncPolicy::Always)).unwrap();
        input.producer().send_batch((0..300).map(|i| Record::new(format!("{i}")))).unwrap();
        let group = input.group("g").unwrap().auto_commit(AutoCommit::Off).commit_on_revoke(false);
        let mut member = group.join().unwrap();
        for _ in 0..300 {
            let m = member.recv().unwrap();
            let mut txn = broker.transaction().unwrap();
            txn.send(&out, Record::new(m.value().to_vec())).unwrap();
            txn.commit_offsets(&mut member).unwrap();
            txn.commit().unwrap();
        }
        assert_eq!(group.committed().unwrap()[&0], 300);
    }
    let broker = Broker::open(dir.path()).unwrap();
    assert!(broker.recovery_report().is_empty());
    let input = broker.topic("in").unwrap();
    assert_eq!(input.group("g").unwrap().committed().unwrap()[&0], 300);
    assert_eq!(all(&broker.topic("out").unwrap()).len(), 300);
    assert_eq!(broker.topic("out").unwrap().high_watermark(0).unwrap(), 600, "a record and a marker each");
    // The transaction log is no user topic.
    assert_eq!(broker.topics().len(), 2);
}

#[test]
fn a_share_larger_than_an_empty_active_segment_rolls_past_it_with_a_lone_marker_readers_step_over() {
    use millpond::{DumpEntry, SegmentDump};
    use support::layout::{segment_bases, segment_path};
    let dir = TempDir::new("txn-lone-marker");
    let config = TopicConfig::default().segment_bytes(16 << 10).max_record_bytes(1024);
    let value = |i: usize| format!("{i:04}{}", "x".repeat(900));
    {
        let broker = Broker::open(dir.path()).unwrap();
        let topic = broker.create_topic("t", config).unwrap();
        // 40 records of about 1 KiB: more than the empty 16 KiB active
        // segment holds.
        let mut txn = broker.transaction().unwrap();
        txn.send_batch(&topic, (0..40).map(|i| Record::new(value(i)).partition(0))).unwrap();
        let committed = txn.commit().unwrap();
        let part = &committed.parts()[0];
        assert_eq!((part.first_offset(), part.records()), (1, 40), "offset 0 is the lone marker");
        assert_eq!(topic.high_watermark(0).unwrap(), 42, "the lone marker, 40 records, their marker");
        let mut c = topic.consumer_of(&[0], StartFrom::Earliest).unwrap();
        let got: Vec<(u64, Vec<u8>)> =
            std::iter::from_fn(|| c.try_recv().unwrap()).map(|m| (m.offset(), m.value().to_vec())).collect();
        assert_eq!(got, (0..40).map(|i| (i as u64 + 1, value(i).into_bytes())).collect::<Vec<_>>());
        // Plain sends go on after the transaction's marker.
        assert_eq!(topic.producer().send(Record::new("plain").partition(0)).unwrap().offset, 42);
    }
    // On disk: the first segment holds the lone marker only (no
    // transaction's, id 0); the share has a segment of its own, as large as
    // it needs.
    assert_eq!(segment_bases(dir.path(), "t", 0)[..2], [0, 1]);
    let dump = SegmentDump::open(segment_path(dir.path(), "t", 0, 0)).unwrap();
    let frames: Vec<_> = dump
        .frames()
        .filter_map(|e| match e.unwrap() {
            DumpEntry::Frame(f) => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(frames.len(), 1);
    assert!(frames[0].commit_marker && frames[0].transaction == Some(0) && frames[0].base_offset == 0);
    // A reopened broker reads the same, from the start and from the marker.
    let broker = Broker::open(dir.path()).unwrap();
    assert!(broker.recovery_report().is_empty(), "{:?}", broker.recovery_report());
    let topic = broker.topic("t").unwrap();
    let mut c = topic.consumer_of(&[0], StartFrom::Offset(0)).unwrap();
    assert_eq!(c.try_recv().unwrap().map(|m| m.offset()), Some(1));
    assert_eq!(all(&topic).len(), 41);
}
