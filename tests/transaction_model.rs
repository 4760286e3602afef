//! Transactions against a model.
//!
//! The proptest: random sequences of operations on a small broker (two
//! topics of 2-3 partitions, 4-16 KiB segments so that segments roll and
//! transactions' shares outgrow them, also in partitions that are still
//! empty): transactions in two slots open at
//! once (sends keyed, unkeyed and to explicit partitions, some to partitions
//! that do not exist; batches; group positions from two members of two
//! groups; commit, abort, drop, and an empty commit), plain sends and
//! batches to the same partitions, members consuming, and clean reopens
//! (sometimes with a transaction still open across the close, which must
//! then fail to commit). After every operation each partition read from
//! `Earliest` holds exactly the model's committed records, at the offsets
//! the model gives (one marker offset after each transaction's share), a
//! live consumer has seen exactly those, nothing of an open transaction is
//! visible, the high watermarks are the model's, and the groups' committed
//! offsets are the model's. After reopens and at the end, reading from every
//! offset (markers included) starts at the right record.
//!
//! Then a concurrency test (transactions, plain sends and two consumers on
//! the same partitions at once: a transaction's share is seen whole or not
//! at all, never an aborted one) and scripted edge cases.
//!
//! `MILLPOND_SOAK=1` runs many more cases.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use millpond::{
    AutoCommit, Broker, BrokerConfig, CleanupPolicy, Committed, Consumer, Error, GroupMember, Message, Record,
    RecordId, StartFrom, Topic, TopicConfig, Transaction,
};
use proptest::prelude::*;
use support::dir::TempDir;
use support::rng::{Lcg, Seed, pattern};
use support::soak;
use support::wait::HANG;

const TOPICS: [&str; 2] = ["a", "b"];
/// Group `GROUPS[i]` reads topic `TOPICS[i]`.
const GROUPS: [&str; 2] = ["g", "h"];
const MAX_RECORD: u32 = 1024;

#[derive(Debug, Clone)]
struct RecSpec {
    len: usize,
    seed: u64,
    key: Option<u8>,
    /// Taken modulo the partition count, unless `bad`.
    partition: Option<u32>,
    /// A partition that does not exist.
    bad: bool,
    header: bool,
    timestamp: Option<i64>,
}

#[derive(Debug, Clone)]
enum Op {
    /// Sends to the transaction in a slot (starting one if none is open).
    TxnSend(usize, usize, RecSpec),
    TxnBatch(usize, usize, Vec<RecSpec>),
    /// Adds a member's positions to the transaction in a slot.
    TxnOffsets(usize, usize),
    /// Commits the slot's transaction (an empty one if none is open).
    Commit(usize),
    Abort(usize),
    Drop(usize),
    Send(usize, RecSpec),
    Batch(usize, Vec<RecSpec>),
    /// A member receives up to n records.
    Consume(usize, usize),
    /// Clean close and reopen; `true`: the transactions stay open across
    /// the close and must fail to commit.
    Reopen(bool),
}

#[derive(Debug, Clone)]
struct Setup {
    partitions: [u32; 2],
    segment_bytes: u64,
}

fn rec_spec() -> impl Strategy<Value = RecSpec> {
    let len = prop_oneof![4 => 0usize..64, 3 => 64usize..400, 1 => 400usize..900];
    let key = prop_oneof![3 => Just(None), 2 => (0u8..6).prop_map(Some)];
    let partition = prop_oneof![3 => Just(None), 2 => (0u32..3).prop_map(Some)];
    let timestamp = prop_oneof![3 => Just(None), 1 => (1_600_000_000_000i64..1_700_000_000_000).prop_map(Some)];
    (len, any::<u64>(), key, partition, prop::bool::weighted(0.04), any::<bool>(), timestamp).prop_map(
        |(len, seed, key, partition, bad, header, timestamp)| RecSpec {
            len,
            seed,
            key,
            partition,
            bad,
            header,
            timestamp,
        },
    )
}

/// A large record for an explicit partition: a batch of them makes a share
/// larger than a segment.
fn big_spec(p: u32) -> impl Strategy<Value = RecSpec> {
    (600usize..900, any::<u64>(), any::<bool>()).prop_map(move |(len, seed, header)| RecSpec {
        len,
        seed,
        key: None,
        partition: Some(p),
        bad: false,
        header,
        timestamp: None,
    })
}

fn op() -> impl Strategy<Value = Op> {
    let slot = 0usize..2;
    let topic = 0usize..2;
    prop_oneof![
        10 => (slot.clone(), topic.clone(), rec_spec()).prop_map(|(s, t, r)| Op::TxnSend(s, t, r)),
        5 => (slot.clone(), topic.clone(), proptest::collection::vec(rec_spec(), 1..24))
            .prop_map(|(s, t, r)| Op::TxnBatch(s, t, r)),
        1 => (slot.clone(), topic.clone(), (0u32..3).prop_flat_map(|p| proptest::collection::vec(big_spec(p), 6..30)))
            .prop_map(|(s, t, r)| Op::TxnBatch(s, t, r)),
        3 => (slot.clone(), 0usize..2).prop_map(|(s, m)| Op::TxnOffsets(s, m)),
        6 => slot.clone().prop_map(Op::Commit),
        1 => slot.clone().prop_map(Op::Abort),
        1 => slot.clone().prop_map(Op::Drop),
        4 => (topic.clone(), rec_spec()).prop_map(|(t, r)| Op::Send(t, r)),
        2 => (topic, proptest::collection::vec(rec_spec(), 1..10)).prop_map(|(t, r)| Op::Batch(t, r)),
        4 => (0usize..2, 1usize..30).prop_map(|(m, n)| Op::Consume(m, n)),
        1 => any::<bool>().prop_map(Op::Reopen),
    ]
}

fn setup() -> impl Strategy<Value = Setup> {
    (2u32..=3, 2u32..=3, prop_oneof![Just(4096u64), 4096u64..=16384])
        .prop_map(|(a, b, segment_bytes)| Setup { partitions: [a, b], segment_bytes })
}

fn topic_config(s: &Setup, t: usize) -> TopicConfig {
    TopicConfig::default()
        .partitions(s.partitions[t])
        .segment_bytes(s.segment_bytes)
        .max_record_bytes(MAX_RECORD)
        .index_interval_bytes(512)
}

/// What a stored record must look like.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    header: Option<Vec<u8>>,
    timestamp: Option<i64>,
}

impl Expected {
    fn matches(&self, m: &Message) -> bool {
        m.key() == self.key.as_deref()
            && m.value() == self.value.as_slice()
            && m.header("h") == self.header.as_deref()
            && self.timestamp.is_none_or(|t| t == m.timestamp())
    }
}

fn build(spec: &RecSpec, partitions: u32, ids: &mut u64) -> (Record<'static>, Expected) {
    let mut value = ids.to_le_bytes().to_vec();
    *ids += 1;
    value.extend_from_slice(&pattern(spec.seed, spec.len));
    let key = spec.key.map(|k| vec![b'k', k]);
    let header = spec.header.then(|| spec.seed.to_le_bytes().to_vec());
    let mut r = Record::new(value.clone());
    if let Some(k) = &key {
        r = r.key(k.clone());
    }
    if let Some(h) = &header {
        r = r.header("h", h.clone());
    }
    if let Some(ts) = spec.timestamp {
        r = r.timestamp(ts);
    }
    if spec.bad {
        r = r.partition(partitions + spec.partition.unwrap_or(0));
    } else if let Some(p) = spec.partition {
        r = r.partition(p % partitions);
    }
    (r, Expected { key, value, header, timestamp: spec.timestamp })
}

/// One partition in the model.
#[derive(Debug, Default, Clone)]
struct Log {
    /// `(offset, record)`, the committed (visible) records in order.
    records: Vec<(u64, Expected)>,
    hw: u64,
}

/// A transaction in the model: what it will write and commit.
#[derive(Debug, Default)]
struct PendingTxn {
    /// `(topic, partition if known, spec, record)` in the order sent.
    records: Vec<(usize, Option<u32>, RecSpec, Expected)>,
    /// The offsets each member's group will commit.
    offsets: BTreeMap<usize, Vec<(u32, u64)>>,
}

struct Model {
    logs: [Vec<Log>; 2],
    /// `(topic, key) -> partition`, for transactions and plain sends alike.
    key_partition: HashMap<(usize, Vec<u8>), u32>,
    committed: [BTreeMap<u32, u64>; 2],
    /// Per member: the offset of the last record it received per partition.
    received: [BTreeMap<u32, u64>; 2],
    pending: [Option<PendingTxn>; 2],
}

struct Live {
    broker: Broker,
    topics: [Topic; 2],
    /// Consumers from `Earliest` living across operations, and what they saw.
    consumers: [Consumer; 2],
    seen: [Vec<u64>; 2],
    members: [GroupMember; 2],
    txns: [Option<Transaction>; 2],
}

fn fail(what: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(what.to_string())
}

fn open(dir: &TempDir, s: &Setup, model: &mut Model) -> Result<Live, TestCaseError> {
    let broker = Broker::open(dir.path()).map_err(|e| fail(format!("open: {e}")))?;
    prop_assert_eq!(broker.recovery_report(), vec![], "recovery after a clean close");
    let topic = |t: usize| broker.create_topic(TOPICS[t], topic_config(s, t)).map_err(|e| fail(format!("create: {e}")));
    let topics = [topic(0)?, topic(1)?];
    let consumer = |t: usize| topics[t].consumer(StartFrom::Earliest).map_err(|e| fail(format!("consumer: {e}")));
    let consumers = [consumer(0)?, consumer(1)?];
    let member = |t: usize| {
        topics[t]
            .group(GROUPS[t])
            .and_then(|g| g.auto_commit(AutoCommit::Off).commit_on_revoke(false).join())
            .map_err(|e| fail(format!("join: {e}")))
    };
    let members = [member(0)?, member(1)?];
    // A new member resumes at the committed offsets: it has received
    // everything before them.
    for t in 0..2 {
        model.received[t] = model.committed[t].iter().filter(|(_, o)| **o > 0).map(|(p, o)| (*p, o - 1)).collect();
    }
    let seen = [vec![0; s.partitions[0] as usize], vec![0; s.partitions[1] as usize]];
    Ok(Live { broker, topics, consumers, seen, members, txns: [None, None] })
}

/// Where the record went: the explicit partition, or the key's (the same
/// for transactions and plain sends), or any in range.
fn check_partition(model: &mut Model, t: usize, spec: &RecSpec, parts: u32, p: u32) -> Result<(), TestCaseError> {
    prop_assert!(p < parts, "partition {} out of range", p);
    if let Some(want) = spec.partition {
        prop_assert_eq!(p, want % parts, "explicit partition honoured");
    } else if let Some(k) = spec.key {
        let want = *model.key_partition.entry((t, vec![b'k', k])).or_insert(p);
        prop_assert_eq!(p, want, "key {} of topic {} always goes to the same partition", k, TOPICS[t]);
    }
    Ok(())
}

fn plain_accept(
    model: &mut Model,
    t: usize,
    spec: &RecSpec,
    parts: u32,
    id: RecordId,
    exp: Expected,
) -> Result<(), TestCaseError> {
    check_partition(model, t, spec, parts, id.partition)?;
    let log = &mut model.logs[t][id.partition as usize];
    prop_assert_eq!(id.offset, log.hw, "a plain send lands at the end of {}/{}", TOPICS[t], id.partition);
    log.records.push((id.offset, exp));
    log.hw += 1;
    Ok(())
}

/// Applies a commit to the model; checks what `Committed` says.
fn commit_accept(model: &mut Model, txn: PendingTxn, done: &Committed) -> Result<(), TestCaseError> {
    let mut shares: BTreeMap<(&str, u32), Vec<Expected>> = BTreeMap::new();
    for (t, p, _, e) in txn.records {
        shares.entry((TOPICS[t], p.expect("resolved"))).or_default().push(e);
    }
    // A share that does not fit in a fresh partition's empty first segment
    // starts one offset later: a lone marker closes that segment (see
    // `Transaction`'s limits). Nothing else moves a share's first offset.
    for part in done.parts() {
        let t = TOPICS.iter().position(|x| *x == part.topic()).unwrap();
        let log = &mut model.logs[t][part.partition() as usize];
        if log.hw == 0 && part.first_offset() == 1 {
            log.hw = 1;
        }
    }
    let want: Vec<(String, u32, u64, u64)> = shares
        .iter()
        .map(|((name, p), recs)| {
            let t = TOPICS.iter().position(|x| x == name).unwrap();
            (name.to_string(), *p, model.logs[t][*p as usize].hw, recs.len() as u64)
        })
        .collect();
    let got: Vec<(String, u32, u64, u64)> =
        done.parts().iter().map(|c| (c.topic().to_string(), c.partition(), c.first_offset(), c.records())).collect();
    prop_assert_eq!(&got, &want, "Committed parts");
    prop_assert_eq!(done.records(), want.iter().map(|w| w.3).sum::<u64>());
    for ((name, p), recs) in shares {
        let t = TOPICS.iter().position(|x| *x == name).unwrap();
        let log = &mut model.logs[t][p as usize];
        for e in recs {
            log.records.push((log.hw, e));
            log.hw += 1;
        }
        log.hw += 1; // the marker
    }
    for (m, offsets) in txn.offsets {
        for (p, o) in offsets {
            model.committed[m].insert(p, o);
        }
    }
    Ok(())
}

/// Everything visible is exactly the model's committed records.
fn check_visible(live: &mut Live, model: &Model, what: &str) -> Result<(), TestCaseError> {
    for t in 0..2 {
        for (p, log) in model.logs[t].iter().enumerate() {
            let p32 = p as u32;
            let at = format!("{what}: {}/{p}", TOPICS[t]);
            prop_assert_eq!(live.topics[t].high_watermark(p32).ok(), Some(log.hw), "{}: high watermark", at);
            let mut c = live.topics[t].consumer_of(&[p32], StartFrom::Earliest).map_err(fail)?;
            let mut i = 0;
            while let Some(m) = c.try_recv().map_err(|e| fail(format!("{at}: read: {e}")))? {
                prop_assert!(i < log.records.len(), "{}: extra record at offset {}", at, m.offset());
                let (off, exp) = &log.records[i];
                prop_assert_eq!(m.offset(), *off, "{}: offset of record {}", at, i);
                prop_assert!(exp.matches(&m), "{}: record at {} differs: {:?} vs {:?}", at, off, m, exp);
                i += 1;
            }
            prop_assert_eq!(i, log.records.len(), "{}: records visible", at);
        }
        // The live consumer sees exactly the new ones.
        while let Some(m) = live.consumers[t].try_recv().map_err(|e| fail(format!("{what}: live read: {e}")))? {
            let p = m.partition() as usize;
            let log = &model.logs[t][p];
            let n = live.seen[t][p] as usize;
            prop_assert!(
                n < log.records.len(),
                "{}: live consumer: extra record {}/{}/{}",
                what,
                TOPICS[t],
                p,
                m.offset()
            );
            prop_assert_eq!(m.offset(), log.records[n].0, "{}: live consumer offset in {}/{}", what, TOPICS[t], p);
            prop_assert!(log.records[n].1.matches(&m), "{}: live consumer record differs", what);
            live.seen[t][p] += 1;
        }
        for (p, log) in model.logs[t].iter().enumerate() {
            prop_assert_eq!(
                live.seen[t][p] as usize,
                log.records.len(),
                "{}: live consumer saw {}/{}",
                what,
                TOPICS[t],
                p
            );
        }
        let group = live.topics[t].group(GROUPS[t]).map_err(fail)?;
        let committed = group.committed().map_err(fail)?;
        prop_assert_eq!(&committed, &model.committed[t], "{}: group {} committed offsets", what, GROUPS[t]);
    }
    Ok(())
}

/// Reading from every offset (markers and the end included) starts at the
/// first record at or after it.
fn check_every_start(live: &Live, model: &Model) -> Result<(), TestCaseError> {
    for (t, logs) in model.logs.iter().enumerate() {
        for (p, log) in logs.iter().enumerate() {
            let p32 = p as u32;
            for start in 0..=log.hw {
                let mut c = live.topics[t].consumer_of(&[p32], StartFrom::Offset(start)).map_err(fail)?;
                let got = c.try_recv().map_err(|e| fail(format!("read {}/{p} from {start}: {e}", TOPICS[t])))?;
                let want = log.records.iter().find(|(o, _)| *o >= start);
                prop_assert_eq!(
                    got.as_ref().map(Message::offset),
                    want.map(|w| w.0),
                    "{}/{}: reading from offset {} (high watermark {})",
                    TOPICS[t],
                    p,
                    start,
                    log.hw
                );
            }
        }
    }
    Ok(())
}

/// A member's positions are consistent with what it received: everything
/// before them received, nothing after.
fn check_positions(model: &Model, m: usize, positions: &[(u32, u64)]) -> Result<(), TestCaseError> {
    for &(p, pos) in positions {
        let log = &model.logs[m][p as usize];
        let last = model.received[m].get(&p).copied();
        let next = log.records.iter().find(|(o, _)| last.is_none_or(|l| *o > l)).map(|r| r.0);
        prop_assert!(
            last.is_none_or(|l| pos > l),
            "member {}: position {} of {} at or before the last received {:?}",
            m,
            pos,
            p,
            last
        );
        prop_assert!(
            next.is_none_or(|n| pos <= n) && pos <= log.hw,
            "member {}: position {} of {} beyond the next record to receive {:?} (hw {})",
            m,
            pos,
            p,
            next,
            log.hw
        );
    }
    Ok(())
}

/// Opens the transaction in `slot` if none is.
fn txn_in<'a>(
    slot: &'a mut Option<Transaction>,
    broker: &Broker,
    pending: &mut Option<PendingTxn>,
) -> Result<&'a mut Transaction, TestCaseError> {
    pending.get_or_insert_with(PendingTxn::default);
    match slot {
        Some(txn) => Ok(txn),
        none => Ok(none.insert(broker.transaction().map_err(fail)?)),
    }
}

fn run(s: Setup, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = TempDir::new("txn-model");
    let mut model = Model {
        logs: [vec![Log::default(); s.partitions[0] as usize], vec![Log::default(); s.partitions[1] as usize]],
        key_partition: HashMap::new(),
        committed: [BTreeMap::new(), BTreeMap::new()],
        received: [BTreeMap::new(), BTreeMap::new()],
        pending: [None, None],
    };
    let mut live = open(&dir, &s, &mut model)?;
    // Every value starts with a number of its own, so records read back can
    // be told apart.
    let mut ids = 0u64;
    for (i, op) in ops.iter().enumerate() {
        let what = format!("op {i} {op:?}");
        match op {
            Op::TxnSend(slot, t, spec) => {
                let parts = s.partitions[*t];
                let (record, exp) = build(spec, parts, &mut ids);
                let txn = txn_in(&mut live.txns[*slot], &live.broker, &mut model.pending[*slot])?;
                match txn.send(&live.topics[*t], record) {
                    Ok(p) => {
                        prop_assert!(!spec.bad, "{}: a send to a partition that does not exist succeeded", what);
                        check_partition(&mut model, *t, spec, parts, p)?;
                        model.pending[*slot].as_mut().unwrap().records.push((*t, Some(p), spec.clone(), exp));
                    }
                    Err(Error::InvalidPartition { .. }) if spec.bad => {}
                    Err(e) => return Err(fail(format!("{what}: {e}"))),
                }
                let n = model.pending[*slot].as_ref().unwrap().records.len();
                prop_assert_eq!(live.txns[*slot].as_ref().unwrap().len(), n, "{}: transaction length", what);
            }
            Op::TxnBatch(slot, t, specs) => {
                let parts = s.partitions[*t];
                let built: Vec<(Record<'static>, Expected)> = specs.iter().map(|r| build(r, parts, &mut ids)).collect();
                let (records, exps): (Vec<Record<'static>>, Vec<Expected>) = built.into_iter().unzip();
                let any_bad = specs.iter().any(|r| r.bad);
                let txn = txn_in(&mut live.txns[*slot], &live.broker, &mut model.pending[*slot])?;
                let before = txn.len();
                match txn.send_batch(&live.topics[*t], records) {
                    Ok(()) => {
                        prop_assert!(!any_bad, "{}: a batch with a bad partition succeeded", what);
                        prop_assert_eq!(txn.len(), before + specs.len(), "{}: transaction length", what);
                        let pending = model.pending[*slot].as_mut().unwrap();
                        // Their partitions are learnt at the commit.
                        for (spec, exp) in specs.iter().zip(exps) {
                            pending.records.push((*t, None, spec.clone(), exp));
                        }
                    }
                    Err(Error::InvalidPartition { .. }) if any_bad => {
                        prop_assert_eq!(txn.len(), before, "{}: a failed batch leaves the transaction unchanged", what);
                    }
                    Err(e) => return Err(fail(format!("{what}: {e}"))),
                }
            }
            Op::TxnOffsets(slot, m) => {
                let positions = live.members[*m].positions();
                check_positions(&model, *m, &positions)?;
                let txn = txn_in(&mut live.txns[*slot], &live.broker, &mut model.pending[*slot])?;
                txn.commit_offsets(&mut live.members[*m]).map_err(|e| fail(format!("{what}: {e}")))?;
                model.pending[*slot].as_mut().unwrap().offsets.insert(*m, positions);
            }
            Op::Commit(slot) => {
                let txn = match live.txns[*slot].take() {
                    Some(txn) => txn,
                    None => live.broker.transaction().map_err(fail)?,
                };
                let pending = model.pending[*slot].take().unwrap_or_default();
                let done = txn.commit().map_err(|e| fail(format!("{what}: commit: {e}")))?;
                let resolved = resolve_partitions(&mut model, &live, pending, &done, &s, &what)?;
                commit_accept(&mut model, resolved, &done)?;
            }
            Op::Abort(slot) => {
                if let Some(txn) = live.txns[*slot].take() {
                    txn.abort();
                }
                model.pending[*slot] = None;
            }
            Op::Drop(slot) => {
                drop(live.txns[*slot].take());
                model.pending[*slot] = None;
            }
            Op::Send(t, spec) => {
                let parts = s.partitions[*t];
                let (record, exp) = build(spec, parts, &mut ids);
                match live.topics[*t].producer().send(record) {
                    Ok(id) => {
                        prop_assert!(!spec.bad, "{}: a send to a partition that does not exist succeeded", what);
                        plain_accept(&mut model, *t, spec, parts, id, exp)?;
                    }
                    Err(Error::InvalidPartition { .. }) if spec.bad => {}
                    Err(e) => return Err(fail(format!("{what}: {e}"))),
                }
            }
            Op::Batch(t, specs) => {
                let parts = s.partitions[*t];
                let built: Vec<(Record<'static>, Expected)> = specs.iter().map(|r| build(r, parts, &mut ids)).collect();
                let (records, exps): (Vec<Record<'static>>, Vec<Expected>) = built.into_iter().unzip();
                let any_bad = specs.iter().any(|r| r.bad);
                match live.topics[*t].producer().send_batch(records) {
                    Ok(ids) => {
                        prop_assert!(!any_bad, "{}: a batch with a bad partition succeeded", what);
                        for ((spec, id), exp) in specs.iter().zip(ids).zip(exps) {
                            plain_accept(&mut model, *t, spec, parts, id, exp)?;
                        }
                    }
                    Err(Error::InvalidPartition { .. }) if any_bad => {}
                    Err(e) => return Err(fail(format!("{what}: {e}"))),
                }
            }
            Op::Consume(m, n) => {
                for _ in 0..*n {
                    let got = live.members[*m].try_recv().map_err(|e| fail(format!("{what}: {e}")))?;
                    let Some(msg) = got else {
                        // Caught up: nothing committed is left to receive.
                        for (p, log) in model.logs[*m].iter().enumerate() {
                            let last = model.received[*m].get(&(p as u32)).copied();
                            let left = log.records.iter().filter(|(o, _)| last.is_none_or(|l| *o > l)).count();
                            prop_assert_eq!(
                                left,
                                0,
                                "{}: member {} stopped with {} records of {} left",
                                what,
                                m,
                                left,
                                p
                            );
                        }
                        break;
                    };
                    let p = msg.partition();
                    let log = &model.logs[*m][p as usize];
                    let last = model.received[*m].get(&p).copied();
                    let next = log.records.iter().find(|(o, _)| last.is_none_or(|l| *o > l));
                    let Some((off, exp)) = next else {
                        return Err(fail(format!("{what}: member {m} received {p}/{} beyond the model", msg.offset())));
                    };
                    prop_assert_eq!(msg.offset(), *off, "{}: member {} received the next record of {}", what, m, p);
                    prop_assert!(exp.matches(&msg), "{}: member {} received a different record", what, m);
                    model.received[*m].insert(p, *off);
                }
                check_positions(&model, *m, &live.members[*m].positions())?;
            }
            Op::Reopen(keep_open) => {
                let Live { broker, topics, consumers, members, txns, .. } = live;
                drop((consumers, members));
                let txns: Vec<Transaction> = txns.into_iter().flatten().collect();
                if *keep_open {
                    broker.close().map_err(|e| fail(format!("{what}: close: {e}")))?;
                    for txn in txns {
                        match txn.commit() {
                            Err(Error::Closed) => {}
                            other => return Err(fail(format!("{what}: commit after close: {other:?}"))),
                        }
                    }
                } else {
                    drop(txns);
                    broker.close().map_err(|e| fail(format!("{what}: close: {e}")))?;
                }
                drop((topics, broker));
                model.pending = [None, None];
                live = open(&dir, &s, &mut model)?;
                check_every_start(&live, &model)?;
            }
        }
        check_visible(&mut live, &model, &what)?;
    }
    check_every_start(&live, &model)?;
    let Live { broker, .. } = live;
    broker.close().map_err(fail)?;
    drop(broker);
    let mut live = open(&dir, &s, &mut model)?;
    check_visible(&mut live, &model, "after the last reopen")?;
    check_every_start(&live, &model)?;
    Ok(())
}

/// Learns the partitions of records sent in batches from where the commit
/// put them: each share, read back at the offsets `Committed` gives, holds
/// its records in the order they were sent. Checks keys and explicit
/// partitions were honoured.
fn resolve_partitions(
    model: &mut Model,
    live: &Live,
    txn: PendingTxn,
    done: &Committed,
    s: &Setup,
    what: &str,
) -> Result<PendingTxn, TestCaseError> {
    let mut placed: HashMap<Vec<u8>, (usize, u32, u64)> = HashMap::new();
    for part in done.parts() {
        let t = TOPICS
            .iter()
            .position(|x| *x == part.topic())
            .ok_or_else(|| fail(format!("{what}: topic {}", part.topic())))?;
        let p = part.partition();
        let mut c = live.topics[t].consumer_of(&[p], StartFrom::Offset(part.first_offset())).map_err(fail)?;
        for k in 0..part.records() {
            let m = c.try_recv().map_err(fail)?.ok_or_else(|| fail(format!("{what}: share {t}/{p} ends early")))?;
            prop_assert_eq!(
                m.offset(),
                part.first_offset() + k,
                "{}: a share's records are at consecutive offsets",
                what
            );
            placed.insert(m.value().to_vec(), (t, p, m.offset()));
        }
    }
    let mut last: HashMap<(usize, u32), u64> = HashMap::new();
    let mut records = Vec::new();
    for (t, known, spec, exp) in txn.records {
        let Some(&(pt, p, off)) = placed.get(&exp.value) else {
            return Err(fail(format!("{what}: a record of the transaction is not where Committed says")));
        };
        prop_assert_eq!(pt, t, "{}: record in the wrong topic", what);
        if let Some(k) = known {
            prop_assert_eq!(p, k, "{}: record not in the partition send returned", what);
        }
        check_partition(model, t, &spec, s.partitions[t], p)?;
        if let Some(prev) = last.insert((t, p), off) {
            prop_assert!(off > prev, "{}: the share of {}/{} is not in send order", what, TOPICS[t], p);
        }
        records.push((t, Some(p), spec, exp));
    }
    Ok(PendingTxn { records, offsets: txn.offsets })
}

fn cases() -> u32 {
    if soak() { 500 } else { 24 }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 512, ..ProptestConfig::default() })]

    #[test]
    fn transactions_match_the_model_across_commits_aborts_plain_sends_and_reopens(
        s in setup(),
        ops in proptest::collection::vec(op(), 1..64),
    ) {
        run(s, ops)?;
    }
}

// ---------------------------------------------------------------------------
// Concurrency: transactions, plain sends and consumers on the same
// partitions at once.

const PARTS: u32 = 4;

/// `t|<txn>|<partition>|<index in the share>|<share size>` for a committed
/// transaction's record, `x|...` for an aborted one's, `p|<seq>` for a
/// plain one.
fn share_value(kind: char, i: u64, p: u32, j: u64, k: u64) -> Vec<u8> {
    format!("{kind}|{i}|{p}|{j}|{k}|{}", "v".repeat(((i * 7 + j) % 80) as usize)).into_bytes()
}

/// What a reader knows of one partition while it reads.
#[derive(Default)]
struct ShareCursor {
    /// In a share: `(txn, next index, size)`.
    open: Option<(u64, u64, u64)>,
    last: Option<u64>,
    read: Vec<(u64, Vec<u8>)>,
}

impl ShareCursor {
    /// Checks the next record of the partition.
    fn take(&mut self, who: &str, m: &Message) {
        let (p, off) = (m.partition(), m.offset());
        let v = String::from_utf8_lossy(m.value()).into_owned();
        assert!(self.last.is_none_or(|l| off > l), "{who}: {p}/{off} after {:?}", self.last);
        self.last = Some(off);
        let f: Vec<&str> = v.split('|').collect();
        match f[0] {
            "x" => panic!("{who}: read {p}/{off}, a record of an aborted transaction: {v}"),
            "p" => assert!(self.open.is_none(), "{who}: plain record {p}/{off} inside a share {:?}", self.open),
            "t" => {
                let (i, pp, j, k): (u64, u32, u64, u64) =
                    (f[1].parse().unwrap(), f[2].parse().unwrap(), f[3].parse().unwrap(), f[4].parse().unwrap());
                assert_eq!(pp, p, "{who}: {p}/{off} holds a record for partition {pp}");
                assert_eq!(m.value(), share_value('t', i, p, j, k).as_slice(), "{who}: {p}/{off} damaged");
                match self.open {
                    Some((oi, oj, ok)) => assert_eq!(
                        (i, j, k),
                        (oi, oj, ok),
                        "{who}: {p}/{off}: expected record {oj} of transaction {oi}'s share, got {v}"
                    ),
                    None => assert_eq!(j, 0, "{who}: {p}/{off}: transaction {i}'s share read from its middle"),
                }
                self.open = (j + 1 < k).then_some((i, j + 1, k));
            }
            _ => panic!("{who}: {p}/{off}: foreign record {v}"),
        }
        self.read.push((off, m.value().to_vec()));
    }
}

/// Reads everything until `done` and caught up; after the first record of
/// a share, the rest must be readable at once (`try_recv` / a zero-timeout
/// `poll` never comes back empty in the middle of a share).
fn reader(topic: Topic, done: Arc<AtomicBool>, batched: bool) -> Vec<ShareCursor> {
    let who = if batched { "poll reader" } else { "recv reader" };
    let mut c = topic.consumer(StartFrom::Earliest).unwrap();
    let mut cursors: Vec<ShareCursor> = (0..PARTS).map(|_| ShareCursor::default()).collect();
    loop {
        let mid = cursors.iter().any(|c| c.open.is_some());
        // Read `done` before looking: if nothing comes after it was set,
        // nothing more will come.
        let finished = done.load(Ordering::SeqCst);
        let got: Vec<Message> = if batched {
            c.poll(64, if mid { Duration::ZERO } else { Duration::from_millis(5) }).unwrap()
        } else if mid {
            c.try_recv().unwrap().into_iter().collect()
        } else {
            c.recv_timeout(Duration::from_millis(5)).unwrap().into_iter().collect()
        };
        if got.is_empty() {
            let open: Vec<(usize, (u64, u64, u64))> =
                cursors.iter().enumerate().filter_map(|(p, c)| c.open.map(|o| (p, o))).collect();
            assert!(open.is_empty(), "{who}: only part of a share is visible (partition, (txn, next, size)): {open:?}");
            if finished {
                return cursors;
            }
            continue;
        }
        for m in &got {
            cursors[m.partition() as usize].take(who, m);
        }
    }
}

#[test]
fn concurrent_transactions_plain_sends_and_readers_see_whole_shares_only() {
    let seed = Seed::from_env_or(20_261_204);
    let txns = if soak() { 5000 } else { 1000 };
    let plains = if soak() { 50_000 } else { 10_000 };
    let tmp = TempDir::new("txn-concurrent");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker
        .create_topic("c", TopicConfig::default().partitions(PARTS).segment_bytes(16 << 10).max_record_bytes(1024))
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = [false, true]
        .into_iter()
        .map(|batched| {
            let (topic, done) = (topic.clone(), Arc::clone(&done));
            std::thread::spawn(move || reader(topic, done, batched))
        })
        .collect();
    let committer = {
        let (broker, topic, mut rng) = (broker.clone(), topic.clone(), seed.rng());
        std::thread::spawn(move || {
            // `(partition, first offset, txn, size)` of every committed share.
            let mut shares = Vec::new();
            for i in 0..txns {
                let abort = rng.chance(1, 5);
                let kind = if abort { 'x' } else { 't' };
                let mut txn = broker.transaction().unwrap();
                let mut sizes = BTreeMap::new();
                for p in 0..PARTS {
                    if p != (i % u64::from(PARTS)) as u32 && rng.chance(1, 2) {
                        continue;
                    }
                    let k = if rng.chance(1, 10) { rng.range(50, 400) } else { rng.range(1, 20) };
                    let recs = (0..k).map(|j| Record::new(share_value(kind, i, p, j, k)).partition(p));
                    if rng.chance(1, 2) {
                        txn.send_batch(&topic, recs).unwrap();
                    } else {
                        for r in recs {
                            assert_eq!(txn.send(&topic, r).unwrap(), p);
                        }
                    }
                    sizes.insert(p, k);
                }
                if abort {
                    if rng.chance(1, 2) {
                        txn.abort();
                    } else {
                        drop(txn);
                    }
                } else {
                    let c = txn.commit().unwrap();
                    let got: BTreeMap<u32, u64> = c.parts().iter().map(|x| (x.partition(), x.records())).collect();
                    assert_eq!(got, sizes, "Committed: the shares sent");
                    shares.extend(c.parts().iter().map(|x| (x.partition(), x.first_offset(), i, x.records())));
                }
                if rng.chance(1, 4) {
                    std::thread::yield_now();
                }
            }
            shares
        })
    };
    let plain = {
        let (topic, mut rng) = (topic.clone(), Lcg::new(seed.value() ^ 0x5eed));
        std::thread::spawn(move || {
            let producer = topic.producer();
            let mut acked = Vec::new();
            let mut seq = 0u64;
            while seq < plains {
                let n = if rng.chance(1, 4) { rng.range(1, 6) } else { 1 };
                let recs: Vec<(u32, Vec<u8>)> = (seq..seq + n)
                    .map(|s| (rng.range(0, u64::from(PARTS)) as u32, format!("p|{s}").into_bytes()))
                    .collect();
                seq += n;
                let ids =
                    producer.send_batch(recs.iter().map(|(p, v)| Record::new(v.as_slice()).partition(*p))).unwrap();
                for (id, (p, v)) in ids.into_iter().zip(recs) {
                    assert_eq!(id.partition, p);
                    acked.push((id, v));
                }
                if rng.chance(1, 8) {
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
            acked
        })
    };
    let shares = committer.join().expect("committer");
    let acked = plain.join().expect("plain producer");
    done.store(true, Ordering::SeqCst);
    let seen: Vec<Vec<ShareCursor>> = readers.into_iter().map(|r| r.join().expect("reader")).collect();

    // The final content: every plain record where `send` put it, every
    // committed share where `Committed` put it, one marker after each
    // share, nothing else.
    let mut at: BTreeMap<(u32, u64), Vec<u8>> = BTreeMap::new();
    let mut markers: BTreeMap<u32, u64> = BTreeMap::new();
    for (id, v) in &acked {
        assert!(at.insert((id.partition, id.offset), v.clone()).is_none(), "offset {id:?} acknowledged twice");
    }
    for &(p, first, i, k) in &shares {
        for j in 0..k {
            let prev = at.insert((p, first + j), share_value('t', i, p, j, k));
            assert!(prev.is_none(), "transaction {i}'s share at {p}/{first} overlaps other records");
        }
        assert!(!at.contains_key(&(p, first + k)), "{p}/{}: transaction {i}'s marker offset holds a record", first + k);
        *markers.entry(p).or_default() += 1;
    }
    for p in 0..PARTS {
        let want: Vec<(u64, Vec<u8>)> = at.range((p, 0)..(p + 1, 0)).map(|((_, o), v)| (*o, v.clone())).collect();
        let hw = topic.high_watermark(p).unwrap();
        assert_eq!(hw, want.len() as u64 + markers.get(&p).copied().unwrap_or(0), "partition {p}: records + markers");
        let mut c = topic.consumer_of(&[p], StartFrom::Earliest).unwrap();
        let mut fresh = ShareCursor::default();
        while let Some(m) = c.try_recv().unwrap() {
            fresh.take("fresh reader", &m);
        }
        assert!(fresh.read == want, "partition {p}: the log holds other records than were acknowledged");
        for (r, cursors) in seen.iter().enumerate() {
            assert!(
                cursors[p as usize].read == want,
                "partition {p}: reader {r} read other records than the log holds"
            );
        }
    }
    let committed = shares.iter().map(|s| s.2).collect::<std::collections::BTreeSet<_>>().len();
    eprintln!("{committed} transactions committed in {} shares, {} plain records", shares.len(), acked.len());
    assert!(committed > txns as usize / 2);
}

// ---------------------------------------------------------------------------
// Scripted edge cases.

fn small(partitions: u32) -> TopicConfig {
    TopicConfig::default().partitions(partitions).segment_bytes(4096).max_record_bytes(1024)
}

fn read_values(topic: &Topic, p: u32) -> Vec<(u64, Vec<u8>)> {
    let mut c = topic.consumer_of(&[p], StartFrom::Earliest).unwrap();
    let mut out = Vec::new();
    while let Some(m) = c.try_recv().unwrap() {
        out.push((m.offset(), m.value().to_vec()));
    }
    out
}

#[test]
fn commit_offsets_refuses_a_member_that_commits_on_its_own_and_a_member_of_another_broker() {
    let tmp = TempDir::new("txn-member-checks");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", small(2)).unwrap();
    topic.producer().send(Record::new("x")).unwrap();
    let mut txn = broker.transaction().unwrap();
    txn.send(&topic, Record::new("y")).unwrap();
    for (auto, revoke) in [(AutoCommit::Interval(Duration::from_secs(5)), false), (AutoCommit::Off, true)] {
        let mut m = topic.group("g").unwrap().auto_commit(auto).commit_on_revoke(revoke).join().unwrap();
        assert!(
            matches!(txn.commit_offsets(&mut m), Err(Error::InvalidConfig { .. })),
            "a member with {auto:?}, commit_on_revoke({revoke}) is refused"
        );
        m.close().unwrap();
    }
    let other_dir = TempDir::new("txn-member-checks-other");
    let other = Broker::open(other_dir.path()).unwrap();
    let other_topic = other.create_topic("t", small(2)).unwrap();
    let mut foreign =
        other_topic.group("g").unwrap().auto_commit(AutoCommit::Off).commit_on_revoke(false).join().unwrap();
    assert!(matches!(txn.commit_offsets(&mut foreign), Err(Error::InvalidConfig { .. })));
    assert!(matches!(txn.send(&other_topic, Record::new("z")), Err(Error::InvalidConfig { .. })));
    // The transaction goes on, unchanged.
    assert_eq!(txn.len(), 1);
    let done = txn.commit().unwrap();
    assert_eq!(done.records(), 1);
    assert_eq!(other_topic.high_watermark(0).unwrap() + other_topic.high_watermark(1).unwrap(), 0);
    assert!(other_topic.group("g").unwrap().committed().unwrap().is_empty(), "no offsets in the other broker");
}

#[test]
fn a_timed_out_transaction_writes_and_commits_nothing() {
    let tmp = TempDir::new("txn-timeout");
    let broker =
        Broker::open_with(tmp.path(), BrokerConfig::default().transaction_timeout(Duration::from_millis(50))).unwrap();
    let topic = broker.create_topic("t", small(2)).unwrap();
    topic.producer().send_batch((0..5).map(|i| Record::new(format!("{i}")).partition(0))).unwrap();
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off).commit_on_revoke(false);
    let mut m = group.join().unwrap();
    assert_eq!(m.poll(10, Duration::from_millis(100)).unwrap().len(), 5);
    let mut txn = broker.transaction().unwrap();
    txn.send(&topic, Record::new("late").partition(1)).unwrap();
    txn.commit_offsets(&mut m).unwrap();
    std::thread::sleep(Duration::from_millis(80));
    assert!(matches!(txn.send(&topic, Record::new("later")), Err(Error::TransactionTimedOut { .. })));
    assert!(matches!(txn.commit_offsets(&mut m), Err(Error::TransactionTimedOut { .. })));
    assert!(matches!(txn.commit(), Err(Error::TransactionTimedOut { .. })));
    assert_eq!(topic.high_watermark(1).unwrap(), 0);
    assert!(group.committed().unwrap().is_empty());
    // A new one commits.
    let mut txn = broker.transaction().unwrap();
    txn.send(&topic, Record::new("now").partition(1)).unwrap();
    txn.commit_offsets(&mut m).unwrap();
    txn.commit().unwrap();
    assert_eq!(read_values(&topic, 1), vec![(0, b"now".to_vec())]);
    assert_eq!(group.committed().unwrap().get(&0), Some(&5));
}

#[test]
fn a_transaction_whose_topic_was_deleted_writes_nothing_anywhere() {
    let tmp = TempDir::new("txn-deleted");
    let broker = Broker::open(tmp.path()).unwrap();
    let keep = broker.create_topic("keep", small(2)).unwrap();
    let gone = broker.create_topic("gone", small(2)).unwrap();
    keep.producer().send(Record::new("in").partition(0)).unwrap();
    let group = keep.group("g").unwrap().auto_commit(AutoCommit::Off).commit_on_revoke(false);
    let mut m = group.join().unwrap();
    assert_eq!(m.poll(10, Duration::from_millis(100)).unwrap().len(), 1);
    let mut txn = broker.transaction().unwrap();
    txn.send_batch(&keep, (0..20).map(|i| Record::new(format!("k{i}")))).unwrap();
    txn.send_batch(&gone, (0..20).map(|i| Record::new(format!("g{i}")))).unwrap();
    txn.commit_offsets(&mut m).unwrap();
    broker.delete_topic("gone").unwrap();
    // Created again under the same name: still not the topic it was sent to.
    let again = broker.create_topic("gone", small(2)).unwrap();
    assert!(matches!(txn.commit(), Err(Error::TopicDeleted { .. })));
    assert_eq!(read_values(&keep, 0), vec![(0, b"in".to_vec())]);
    assert!(read_values(&keep, 1).is_empty());
    assert_eq!(keep.high_watermark(1).unwrap(), 0);
    assert_eq!(again.high_watermark(0).unwrap() + again.high_watermark(1).unwrap(), 0);
    assert!(group.committed().unwrap().is_empty(), "the group's offsets were not committed");
    // Nothing of it comes back after a reopen either.
    drop((m, group, keep, gone, again));
    broker.close().unwrap();
    drop(broker);
    let broker = Broker::open(tmp.path()).unwrap();
    assert_eq!(broker.recovery_report(), vec![]);
    let keep = broker.topic("keep").unwrap();
    assert_eq!((keep.high_watermark(0).unwrap(), keep.high_watermark(1).unwrap()), (1, 0));
    assert!(keep.group("g").unwrap().committed().unwrap().is_empty());
}

#[test]
fn a_commit_after_the_member_lost_its_partitions_fails_and_writes_nothing() {
    let tmp = TempDir::new("txn-rebalanced");
    let broker = Broker::open(tmp.path()).unwrap();
    let input = broker.create_topic("in", small(2)).unwrap();
    let output = broker.create_topic("out", small(1)).unwrap();
    input.producer().send_batch((0..10).map(|i| Record::new(format!("{i}")).partition(i % 2))).unwrap();
    let group = input.group("g").unwrap().auto_commit(AutoCommit::Off).commit_on_revoke(false);
    let mut first = group.join().unwrap();
    let mut got = 0;
    while got < 10 {
        got += first.poll(10, Duration::from_millis(50)).unwrap().len();
    }
    let mut txn = broker.transaction().unwrap();
    txn.send(&output, Record::new("derived")).unwrap();
    txn.commit_offsets(&mut first).unwrap();
    // A second member joins; the first lets a partition go at its next
    // receive call.
    let mut second = group.join().unwrap();
    let deadline = std::time::Instant::now() + HANG;
    while first.assignment().len() == 2 {
        assert!(std::time::Instant::now() < deadline, "hang: the first member never gave up a partition");
        first.poll(1, Duration::from_millis(5)).unwrap();
        second.poll(1, Duration::from_millis(5)).unwrap();
    }
    assert!(matches!(txn.commit(), Err(Error::NotAssigned { .. } | Error::NotAMember { .. })));
    assert_eq!(output.high_watermark(0).unwrap(), 0, "nothing of the failed commit was written");
    assert!(group.committed().unwrap().is_empty(), "no offsets were committed");
}

#[test]
fn a_share_larger_than_a_segment_and_later_appends_survive_reopens_retention_and_compaction() {
    let tmp = TempDir::new("txn-large-share");
    let config = |policy: CleanupPolicy| small(1).cleanup(policy).retention_bytes(64 << 10);
    let value = |i: u64| {
        let mut v = format!("{i}|").into_bytes();
        v.extend_from_slice(&pattern(i, 700));
        v
    };
    {
        let broker = Broker::open(tmp.path()).unwrap();
        let del = broker.create_topic("del", config(CleanupPolicy::Delete)).unwrap();
        let kv = broker.create_topic("kv", small(1).cleanup(CleanupPolicy::Compact)).unwrap();
        // Not into an empty partition: that is the test below.
        del.producer().send(Record::new(value(999_999))).unwrap();
        kv.producer().send(Record::new(value(999_999)).key("first")).unwrap();
        for round in 0..3u64 {
            let mut txn = broker.transaction().unwrap();
            // ~70 KB in one share, on 4 KiB segments.
            txn.send_batch(&del, (0..100).map(|i| Record::new(value(round * 1000 + i)))).unwrap();
            txn.send_batch(&kv, (0..100).map(|i| Record::new(value(round * 1000 + i)).key(format!("k{}", i % 10))))
                .unwrap();
            let done = txn.commit().unwrap();
            assert_eq!(done.parts().len(), 2);
            del.producer().send(Record::new(value(round * 1000 + 999))).unwrap();
            kv.producer().send(Record::new(value(round * 1000 + 999)).key("plain")).unwrap();
        }
        // One plain record, then per round a share of 100, its marker and a
        // plain record.
        assert_eq!(del.high_watermark(0).unwrap(), 307);
        assert_eq!(kv.high_watermark(0).unwrap(), 307);
        broker.close().unwrap();
    }
    let broker = Broker::open(tmp.path()).unwrap();
    assert_eq!(broker.recovery_report(), vec![]);
    let del = broker.topic("del").unwrap();
    let kv = broker.topic("kv").unwrap();
    // Every offset of the delete topic reads back (no retention yet): per
    // round the share at base..base+100, its marker at base+100, the plain
    // record at base+101, with base = 1 + 102 * round.
    let all = read_values(&del, 0);
    let want: Vec<u64> = [0]
        .into_iter()
        .chain((0..3u64).flat_map(|r| (1 + r * 102..1 + r * 102 + 100).chain([1 + r * 102 + 101])))
        .collect();
    assert_eq!(all.iter().map(|x| x.0).collect::<Vec<_>>(), want, "offsets: share, marker, plain record");
    let id_at = |off: u64| match off {
        0 => 999_999,
        _ => {
            let (r, i) = ((off - 1) / 102, (off - 1) % 102);
            if i < 100 { r * 1000 + i } else { r * 1000 + 999 }
        }
    };
    for (off, v) in &all {
        assert_eq!(v, &value(id_at(*off)), "del/0/{off}");
    }
    // Retention deletes whole old segments, shares included; what is left
    // reads from the log start.
    del.enforce_retention().unwrap();
    let start = del.log_start(0).unwrap();
    assert!(start > 0, "retention deleted something");
    let left = read_values(&del, 0);
    assert!(left.iter().all(|(o, _)| *o >= start));
    assert_eq!(left.last().map(|x| x.0), Some(306));
    assert_eq!(del.producer().send(Record::new("after")).unwrap().offset, 307);
    // Compaction keeps each key's latest record; markers are dropped, the
    // records keep their offsets.
    kv.compact().unwrap();
    let kept = read_values(&kv, 0);
    let mut latest: BTreeMap<String, u64> = BTreeMap::from([("first".to_string(), 0)]);
    for r in 0..3u64 {
        for i in 0..100u64 {
            latest.insert(format!("k{}", i % 10), 1 + r * 102 + i);
        }
        latest.insert("plain".into(), 1 + r * 102 + 101);
    }
    let offsets: Vec<u64> = kept.iter().map(|x| x.0).collect();
    for (key, off) in &latest {
        assert!(offsets.contains(off), "compaction kept key {key}'s latest record at {off}: {offsets:?}");
    }
    // What is kept is what was written there (the active segment's keys
    // do not count, so older values may stay): never a marker.
    for (off, v) in &kept {
        assert!(want.contains(off), "kv/0/{off}: compaction returned a marker's offset");
        assert_eq!(v, &value(id_at(*off)), "kv/0/{off}");
    }
    assert!(kept.len() < want.len(), "compaction removed something");
    let mut txn = broker.transaction().unwrap();
    txn.send(&kv, Record::new("again").key("k0")).unwrap();
    let done = txn.commit().unwrap();
    assert_eq!(done.parts()[0].first_offset(), 307, "offsets go on after compaction");
    drop((del, kv));
    broker.close().unwrap();
    drop(broker);
    let broker = Broker::open(tmp.path()).unwrap();
    assert_eq!(broker.recovery_report(), vec![]);
    assert_eq!(broker.topic("kv").unwrap().high_watermark(0).unwrap(), 309);
    assert_eq!(read_values(&broker.topic("kv").unwrap(), 0).last().map(|x| x.0), Some(307));
}

/// The documented limit for a share is one segment of up to 2 GiB, "made
/// larger than the topic's `segment_bytes` if they need it". A share
/// larger than `segment_bytes` for a partition that holds nothing yet (a
/// new topic's) must commit like any other.
#[test]
fn a_share_larger_than_a_segment_commits_to_an_empty_partition() {
    let tmp = TempDir::new("txn-large-first");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", small(1)).unwrap();
    let values: Vec<Vec<u8>> = (0..20u64).map(|i| pattern(i, 700)).collect();
    let mut txn = broker.transaction().unwrap();
    txn.send_batch(&topic, values.iter().map(|v| Record::new(v.as_slice()))).unwrap();
    let done = txn.commit().unwrap_or_else(|e| panic!("a 14 KB share to an empty partition of 4 KiB segments: {e:?}"));
    // A lone marker closes the empty first segment, too small for the
    // share: the share starts at offset 1.
    assert_eq!((done.parts()[0].first_offset(), done.parts()[0].records()), (1, 20));
    let read: Vec<Vec<u8>> = read_values(&topic, 0).into_iter().map(|x| x.1).collect();
    assert_eq!(read, values);
    assert_eq!(topic.high_watermark(0).unwrap(), 22);
    // The same again, after a reopen and on a partition with records: no filler.
    drop(topic);
    drop(broker);
    let broker = Broker::open(tmp.path()).unwrap();
    assert!(broker.recovery_report().is_empty());
    let topic = broker.topic("t").unwrap();
    let mut txn = broker.transaction().unwrap();
    txn.send_batch(&topic, values.iter().map(|v| Record::new(v.as_slice()))).unwrap();
    assert_eq!(txn.commit().unwrap().parts()[0].first_offset(), 22);
    assert_eq!(read_values(&topic, 0).len(), 40);
}

#[test]
fn an_empty_transaction_commits_nothing_and_one_with_only_offsets_commits_them() {
    let tmp = TempDir::new("txn-empty");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", small(2)).unwrap();
    let done = broker.transaction().unwrap().commit().unwrap();
    assert!(done.parts().is_empty());
    assert_eq!(done.records(), 0);
    assert_eq!(topic.high_watermark(0).unwrap() + topic.high_watermark(1).unwrap(), 0, "no marker for nothing");
    topic.producer().send_batch((0..4).map(|i| Record::new(format!("{i}")).partition(i % 2))).unwrap();
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off).commit_on_revoke(false);
    let mut m = group.join().unwrap();
    let mut got = 0;
    while got < 4 {
        got += m.poll(10, Duration::from_millis(50)).unwrap().len();
    }
    let mut txn = broker.transaction().unwrap();
    txn.commit_offsets(&mut m).unwrap();
    assert!(txn.is_empty());
    let done = txn.commit().unwrap();
    assert!(done.parts().is_empty());
    assert_eq!(group.committed().unwrap(), BTreeMap::from([(0, 2), (1, 2)]));
    assert_eq!((topic.high_watermark(0).unwrap(), topic.high_watermark(1).unwrap()), (2, 2));
    drop((m, group, topic));
    broker.close().unwrap();
    drop(broker);
    let broker = Broker::open(tmp.path()).unwrap();
    assert_eq!(broker.topic("t").unwrap().group("g").unwrap().committed().unwrap(), BTreeMap::from([(0, 2), (1, 2)]));
}

#[test]
fn a_transaction_does_not_hold_a_reader_back_and_plain_sends_overtake_it() {
    let tmp = TempDir::new("txn-overtake");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", small(1)).unwrap();
    let mut c = topic.consumer(StartFrom::Earliest).unwrap();
    let mut txn = broker.transaction().unwrap();
    txn.send(&topic, Record::new("txn-1")).unwrap();
    let id = topic.producer().send(Record::new("plain-1")).unwrap();
    assert_eq!(id.offset, 0, "a plain send is not held back by an open transaction");
    let m = c.recv_timeout(HANG).unwrap().expect("the plain record is readable while the transaction is open");
    assert_eq!(m.value(), b"plain-1");
    assert!(c.try_recv().unwrap().is_none(), "nothing of the open transaction is visible");
    txn.send(&topic, Record::new("txn-2")).unwrap();
    let done = txn.commit().unwrap();
    assert_eq!(done.parts()[0].first_offset(), 1, "the share follows what was appended before the commit");
    let got: Vec<Vec<u8>> = (0..2).map(|_| c.recv_timeout(HANG).unwrap().unwrap().value().to_vec()).collect();
    assert_eq!(got, vec![b"txn-1".to_vec(), b"txn-2".to_vec()]);
    assert_eq!(topic.producer().send(Record::new("plain-2")).unwrap().offset, 4, "after the marker at 3");
    assert_eq!(c.recv_timeout(HANG).unwrap().unwrap().offset(), 4);
}
