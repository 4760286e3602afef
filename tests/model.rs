//! Model test: random sequences of sends, batches, flushes and reopens
//! against small segments (so segments roll, and batches split across them),
//! checked against a plain in-memory model of what each partition must hold.
//!
//! After every operation a live consumer must see exactly the new records
//! ("visible to consumers at once"); after every reopen, and at the end, a
//! fresh consumer from `StartFrom::Earliest` must read exactly the model's
//! records per partition, in order, with identical keys, values, headers and
//! timestamps, at the offsets `send` returned.
//!
//! `MILLPOND_SOAK=1` runs many more cases.

mod support;

use std::collections::HashMap;

use millpond::{Broker, Consumer, Message, Producer, Record, RecordId, StartFrom, Topic, TopicConfig, now_millis};
use proptest::prelude::*;
use support::dir::TempDir;
use support::frames::{SEGMENT_OVERHEAD, record_size};
use support::layout::segment_files;
use support::rng::pattern;

/// Largest encoded record the topics accept: a 64 KiB value plus the largest
/// key and headers the strategies generate, plus the record's own fields
/// (`support::frames::record_size`).
const MAX_RECORD: u32 = 66 * 1024;
/// The smallest segment that holds `MAX_RECORD` in one frame (after the
/// segment header, with a frame header of the largest size).
const MIN_SEGMENT: u64 = MAX_RECORD as u64 + SEGMENT_OVERHEAD as u64;
const TOPIC: &str = "model";

#[derive(Debug, Clone)]
enum ValueSpec {
    /// `len` bytes of `pattern(seed, len)`.
    Bytes(usize, u64),
    /// A value making the record exactly `max_record_bytes` long.
    Max(u64),
    /// No value (only when there is a key; otherwise an empty value).
    Tombstone,
}

#[derive(Debug, Clone)]
struct RecSpec {
    value: ValueSpec,
    key: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
    timestamp: Option<i64>,
    /// Taken modulo the topic's partition count.
    partition: Option<u32>,
}

#[derive(Debug, Clone)]
enum Op {
    Send(RecSpec),
    Batch(Vec<RecSpec>),
    Flush,
    Reopen,
}

#[derive(Debug, Clone)]
struct Setup {
    partitions: u32,
    segment_bytes: u64,
    index_interval: u32,
}

fn value_spec() -> impl Strategy<Value = ValueSpec> {
    prop_oneof![
        12 => (0usize..256, any::<u64>()).prop_map(|(l, s)| ValueSpec::Bytes(l, s)),
        6 => (256usize..4096, any::<u64>()).prop_map(|(l, s)| ValueSpec::Bytes(l, s)),
        2 => (4096usize..=65536, any::<u64>()).prop_map(|(l, s)| ValueSpec::Bytes(l, s)),
        1 => Just(ValueSpec::Bytes(65536, 7)),
        1 => any::<u64>().prop_map(ValueSpec::Max),
        1 => Just(ValueSpec::Tombstone),
    ]
}

fn rec_spec() -> impl Strategy<Value = RecSpec> {
    let key = prop_oneof![
        2 => Just(None),
        1 => proptest::collection::vec(any::<u8>(), 0..32).prop_map(Some),
        // A few recurring keys, so key -> partition stability is exercised.
        1 => (0u8..4).prop_map(|k| Some(vec![b'k', k])),
    ];
    let headers = prop_oneof![
        3 => Just(Vec::new()),
        1 => proptest::collection::vec(("[a-z]{0,8}", proptest::collection::vec(any::<u8>(), 0..32)), 1..3),
    ];
    let timestamp = prop_oneof![
        4 => Just(None),
        2 => (1_600_000_000_000i64..1_800_000_000_000).prop_map(Some),
        1 => any::<i64>().prop_map(Some),
        1 => prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0), Just(-1)].prop_map(Some),
    ];
    let partition = prop_oneof![3 => Just(None), 1 => (0u32..8).prop_map(Some)];
    (value_spec(), key, headers, timestamp, partition).prop_map(|(value, key, headers, timestamp, partition)| RecSpec {
        value,
        key,
        headers,
        timestamp,
        partition,
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => rec_spec().prop_map(Op::Send),
        4 => proptest::collection::vec(rec_spec(), 1..12).prop_map(Op::Batch),
        1 => Just(Op::Flush),
        2 => Just(Op::Reopen),
    ]
}

fn setup() -> impl Strategy<Value = Setup> {
    let segment = prop_oneof![1 => Just(MIN_SEGMENT), 4 => MIN_SEGMENT..=256 * 1024];
    let interval = prop_oneof![Just(1u32), Just(512), Just(4096), Just(1 << 20)];
    (1u32..=3, segment, interval).prop_map(|(partitions, segment_bytes, index_interval)| Setup {
        partitions,
        segment_bytes,
        index_interval,
    })
}

/// What a stored record must look like.
#[derive(Debug, Clone)]
struct Expected {
    key: Option<Vec<u8>>,
    /// `None` for a tombstone.
    value: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
    /// Inclusive bounds; equal when the record carried its own timestamp.
    ts: (i64, i64),
}

impl Expected {
    fn check(&self, m: &Message, what: &str) -> Result<(), TestCaseError> {
        prop_assert_eq!(m.key(), self.key.as_deref(), "key of {}", what);
        match &self.value {
            Some(v) => {
                prop_assert!(!m.is_tombstone(), "{} must not be a tombstone", what);
                prop_assert!(
                    m.value() == v.as_slice(),
                    "value of {} differs ({} vs {} bytes)",
                    what,
                    m.value().len(),
                    v.len()
                );
            }
            None => {
                prop_assert!(m.is_tombstone(), "{} must be a tombstone", what);
                prop_assert_eq!(m.value(), b"", "tombstone value of {}", what);
            }
        }
        let headers: Vec<(String, Vec<u8>)> = m.headers().map(|(n, v)| (n.to_string(), v.to_vec())).collect();
        prop_assert_eq!(&headers, &self.headers, "headers of {}", what);
        for (name, value) in &self.headers {
            let first = self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice());
            prop_assert_eq!(m.header(name), first, "header({:?}) of {} (value {:?})", name, what, value.len());
        }
        prop_assert!(
            self.ts.0 <= m.timestamp() && m.timestamp() <= self.ts.1,
            "timestamp of {} is {}, expected {:?}",
            what,
            m.timestamp(),
            self.ts
        );
        Ok(())
    }
}

/// The model: what every partition must hold, and which partition each key
/// went to.
struct Model {
    partitions: Vec<Vec<Expected>>,
    key_partition: HashMap<Vec<u8>, u32>,
}

/// The system under test, with a live consumer that has read `seen[p]`
/// records of partition `p` so far.
struct Live {
    broker: Broker,
    topic: Topic,
    producer: Producer,
    consumer: Consumer,
    seen: Vec<usize>,
}

fn topic_config(s: &Setup) -> TopicConfig {
    TopicConfig::default()
        .partitions(s.partitions)
        .segment_bytes(s.segment_bytes)
        .max_record_bytes(MAX_RECORD)
        .index_interval_bytes(s.index_interval)
}

fn open(dir: &TempDir, s: &Setup, fresh: bool) -> Result<Live, TestCaseError> {
    let broker = Broker::open(dir.path()).map_err(|e| TestCaseError::fail(format!("open: {e}")))?;
    // A clean close leaves nothing for recovery to repair.
    prop_assert_eq!(broker.recovery_report(), vec![], "recovery after a clean close");
    if !fresh {
        let topic = broker.topic(TOPIC).map_err(|e| TestCaseError::fail(format!("topic: {e}")))?;
        prop_assert_eq!(topic.config(), &topic_config(s), "config read back from topic.meta");
    }
    // Creating it again with the same config returns the existing topic.
    let topic = broker.create_topic(TOPIC, topic_config(s)).map_err(|e| TestCaseError::fail(format!("create: {e}")))?;
    let producer = topic.producer();
    let consumer = topic.consumer(StartFrom::Earliest).map_err(|e| TestCaseError::fail(format!("consumer: {e}")))?;
    Ok(Live { broker, topic, producer, consumer, seen: vec![0; s.partitions as usize] })
}

fn build<'a>(spec: &'a RecSpec, partitions: u32) -> (Record<'a>, Expected) {
    let key = spec.key.clone();
    let header_lens: Vec<(usize, usize)> = spec.headers.iter().map(|(n, v)| (n.len(), v.len())).collect();
    let value = match (&spec.value, &key) {
        (ValueSpec::Bytes(len, seed), _) => Some(pattern(*seed, *len)),
        (ValueSpec::Max(seed), k) => {
            // Everything but the value's bytes and its 3-byte length.
            let used = record_size(k.as_ref().map(Vec::len), Some(0), &header_lens) - 1 + 3;
            let len = MAX_RECORD as usize - used;
            assert_eq!(record_size(k.as_ref().map(Vec::len), Some(len), &header_lens), MAX_RECORD as usize);
            Some(pattern(*seed, len))
        }
        (ValueSpec::Tombstone, Some(_)) => None,
        (ValueSpec::Tombstone, None) => Some(Vec::new()),
    };
    let mut r = match (&value, &spec.key) {
        (Some(v), _) => Record::new(v.clone()),
        (None, Some(k)) => Record::tombstone(k.as_slice()),
        (None, None) => unreachable!("a tombstone always has a key"),
    };
    if let (Some(k), Some(_)) = (&spec.key, &value) {
        r = r.key(k.as_slice());
    }
    for (n, v) in &spec.headers {
        r = r.header(n.as_str(), v.as_slice());
    }
    if let Some(ts) = spec.timestamp {
        r = r.timestamp(ts);
    }
    if let Some(p) = spec.partition {
        r = r.partition(p % partitions);
    }
    let ts = spec.timestamp.map_or((i64::MIN, i64::MAX), |t| (t, t));
    (r, Expected { key, value, headers: spec.headers.clone(), ts })
}

/// Checks where a record went and appends it to the model.
fn accept(
    model: &mut Model,
    spec: &RecSpec,
    partitions: u32,
    id: RecordId,
    exp: Expected,
) -> Result<(), TestCaseError> {
    prop_assert!(id.partition < partitions, "partition {} out of range", id.partition);
    if let Some(p) = spec.partition {
        prop_assert_eq!(id.partition, p % partitions, "explicit partition honoured");
    } else if let Some(k) = &spec.key {
        let p = *model.key_partition.entry(k.clone()).or_insert(id.partition);
        prop_assert_eq!(id.partition, p, "key {:?} must always go to the same partition", k);
    }
    let log = &mut model.partitions[id.partition as usize];
    prop_assert_eq!(id.offset, log.len() as u64, "offsets are dense in partition {}", id.partition);
    log.push(exp);
    Ok(())
}

/// Reads everything the live consumer has not seen yet and checks it is
/// exactly the rest of the model.
fn drain_live(live: &mut Live, model: &Model) -> Result<(), TestCaseError> {
    loop {
        let m = match live.consumer.try_recv() {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(e) => return Err(TestCaseError::fail(format!("consumer error: {e}"))),
        };
        let p = m.partition() as usize;
        let n = live.seen[p];
        prop_assert!(n < model.partitions[p].len(), "extra record {:?} in partition {}", m, p);
        prop_assert_eq!(m.offset(), n as u64, "offset in partition {}", p);
        model.partitions[p][n].check(&m, &format!("partition {p} offset {n}"))?;
        live.seen[p] += 1;
    }
    for (p, log) in model.partitions.iter().enumerate() {
        prop_assert_eq!(live.seen[p], log.len(), "records of partition {} visible to the consumer", p);
        prop_assert_eq!(live.topic.high_watermark(p as u32).ok(), Some(log.len() as u64), "high watermark of {}", p);
        prop_assert_eq!(live.topic.log_start(p as u32).ok(), Some(0), "log start of {}", p);
    }
    prop_assert_eq!(live.consumer.lag(), 0, "lag after draining");
    Ok(())
}

/// Extra read paths: a consumer of one partition from the middle, and seeks.
fn check_positions(live: &Live, model: &Model) -> Result<(), TestCaseError> {
    for (p, log) in model.partitions.iter().enumerate() {
        let p32 = p as u32;
        let n = log.len() as u64;
        for start in [n / 2, n.saturating_sub(1), n] {
            let mut c = live
                .topic
                .consumer_of(&[p32], StartFrom::Offset(start))
                .map_err(|e| TestCaseError::fail(format!("consumer_of at {start}: {e}")))?;
            let mut next = start;
            for m in c.try_iter() {
                let m = m.map_err(|e| TestCaseError::fail(format!("read from {start}: {e}")))?;
                prop_assert_eq!((m.partition(), m.offset()), (p32, next));
                log[next as usize].check(&m, &format!("partition {p} offset {next} (from {start})"))?;
                next += 1;
            }
            prop_assert_eq!(next, n, "reading partition {} from {} reaches the end", p, start);
        }
        if n > 0 {
            let mut c = live.topic.consumer_of(&[p32], StartFrom::Earliest).expect("consumer");
            let target = n / 3;
            c.seek(p32, target).map_err(|e| TestCaseError::fail(format!("seek: {e}")))?;
            let m = c.try_recv().map_err(|e| TestCaseError::fail(format!("recv after seek: {e}")))?;
            let m = m.ok_or_else(|| TestCaseError::fail("nothing after seek"))?;
            prop_assert_eq!(m.offset(), target);
            log[target as usize].check(&m, &format!("partition {p} offset {target} (after seek)"))?;
        }
        // StartFrom::Timestamp(q): the first record, in offset order, whose
        // timestamp is at least q (the high watermark if none). Skipped when
        // a record with an implicit timestamp makes the answer ambiguous.
        let mut queries: Vec<i64> = log.iter().filter(|e| e.ts.0 == e.ts.1).map(|e| e.ts.0).collect();
        queries.extend([i64::MIN, i64::MAX, 0]);
        queries.sort_unstable();
        queries.dedup();
        for q in queries.into_iter().step_by(3).take(8) {
            let Some(want) = expected_offset_for_timestamp(log, q) else { continue };
            let mut c = live
                .topic
                .consumer_of(&[p32], StartFrom::Timestamp(q))
                .map_err(|e| TestCaseError::fail(format!("consumer from timestamp {q}: {e}")))?;
            prop_assert_eq!(c.position(p32).ok(), Some(want), "partition {} from timestamp {}", p, q);
            if want < n {
                let m = c.try_recv().map_err(|e| TestCaseError::fail(format!("read from ts {q}: {e}")))?;
                prop_assert_eq!(m.map(|m| m.offset()), Some(want));
            }
        }
    }
    Ok(())
}

/// The offset of the first record whose timestamp is at least `q`, or the
/// length of the log; `None` if an implicit timestamp makes it ambiguous.
fn expected_offset_for_timestamp(log: &[Expected], q: i64) -> Option<u64> {
    for (i, e) in log.iter().enumerate() {
        if e.ts.0 >= q {
            return Some(i as u64);
        }
        if e.ts.1 >= q {
            return None; // this record's timestamp may or may not reach q
        }
    }
    Some(log.len() as u64)
}

/// Runs `ops` and checks the log against the model; returns the number of
/// segment files the topic ended with.
fn run(s: Setup, ops: Vec<Op>) -> Result<usize, TestCaseError> {
    let dir = TempDir::new("model");
    let parts = s.partitions;
    let mut model = Model { partitions: vec![Vec::new(); parts as usize], key_partition: HashMap::new() };
    let mut live = open(&dir, &s, true)?;
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Send(spec) => {
                let (record, mut exp) = build(spec, parts);
                let before = now_millis();
                let id = live.producer.send(record).map_err(|e| TestCaseError::fail(format!("op {i} send: {e}")))?;
                if spec.timestamp.is_none() {
                    exp.ts = (before, now_millis());
                }
                accept(&mut model, spec, parts, id, exp)?;
            }
            Op::Batch(specs) => {
                let built: Vec<(Record<'_>, Expected)> = specs.iter().map(|s| build(s, parts)).collect();
                let (records, mut exps): (Vec<Record<'_>>, Vec<Expected>) = built.into_iter().unzip();
                let before = now_millis();
                let ids =
                    live.producer.send_batch(records).map_err(|e| TestCaseError::fail(format!("op {i} batch: {e}")))?;
                let after = now_millis();
                prop_assert_eq!(ids.len(), specs.len());
                // Keyless records without a partition all go to one ("sticky") partition.
                let sticky: Vec<u32> = specs
                    .iter()
                    .zip(&ids)
                    .filter(|(s, _)| s.key.is_none() && s.partition.is_none())
                    .map(|(_, id)| id.partition)
                    .collect();
                prop_assert!(sticky.windows(2).all(|w| w[0] == w[1]), "sticky partitioning: {:?}", sticky);
                for ((spec, id), exp) in specs.iter().zip(ids).zip(exps.iter_mut()) {
                    if spec.timestamp.is_none() {
                        exp.ts = (before, after);
                    }
                    accept(&mut model, spec, parts, id, exp.clone())?;
                }
            }
            Op::Flush => live.producer.flush().map_err(|e| TestCaseError::fail(format!("op {i} flush: {e}")))?,
            Op::Reopen => {
                let Live { broker, topic, producer, consumer, .. } = live;
                drop((consumer, producer, topic));
                broker.close().map_err(|e| TestCaseError::fail(format!("op {i} close: {e}")))?;
                drop(broker);
                live = open(&dir, &s, false)?;
            }
        }
        drain_live(&mut live, &model)?;
    }
    check_positions(&live, &model)?;
    // Segments rolled as expected: none larger than its configured size.
    let mut segments = 0;
    for p in 0..parts {
        for seg in segment_files(dir.path(), TOPIC, p) {
            segments += 1;
            let len = std::fs::metadata(&seg).expect("stat segment").len();
            prop_assert!(len <= s.segment_bytes, "{} is {} bytes", seg.display(), len);
        }
    }
    // And once more after a final reopen (dropping the last handle this time).
    drop(live);
    let mut live = open(&dir, &s, false)?;
    drain_live(&mut live, &model)?;
    check_positions(&live, &model)?;
    Ok(segments)
}

fn cases() -> u32 {
    if support::soak() { 1000 } else { 24 }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 256, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model_across_sends_batches_rolls_and_reopens(
        s in setup(),
        ops in proptest::collection::vec(op(), 1..48),
    ) {
        run(s, ops)?;
    }
}

/// Not random: one scripted case that certainly rolls many times, splits a
/// batch larger than a segment across segments, and reopens in between.
#[test]
fn batch_larger_than_a_segment_is_split_and_read_back_in_order() {
    let s = Setup { partitions: 1, segment_bytes: MIN_SEGMENT, index_interval: 4096 };
    let big = |seed: u64| RecSpec {
        value: ValueSpec::Bytes(30_000, seed),
        key: None,
        headers: vec![("n".into(), seed.to_le_bytes().to_vec())],
        timestamp: Some(seed as i64),
        partition: None,
    };
    let ops = vec![
        Op::Send(big(1)),
        Op::Batch((2..12).map(big).collect()), // ~300 KB: spans five segments
        Op::Reopen,
        Op::Batch((12..14).map(big).collect()),
        Op::Send(RecSpec { value: ValueSpec::Max(99), ..big(14) }),
        Op::Reopen,
    ];
    let segments = run(s, ops).expect("scripted model run");
    assert!(segments >= 6, "expected many rolls, got {segments} segments");
}
