//! Crash tests in sled's style: the test re-runs its own binary as a child
//! process that appends to a broker in a loop and reports every acknowledged
//! record on stdout; the parent kills it with SIGKILL at a pseudo-random
//! moment, reopens the directory and checks that
//!
//! - every acknowledged record is present, intact, at the offset `send` gave;
//! - offsets are dense from 0, every record read back is intact (no torn or
//!   corrupt record is ever returned), and no record is duplicated;
//! - records that were written but not acknowledged only follow the
//!   acknowledged ones of their run;
//! - `recovery_report()` only describes damage to active segments, never
//!   drops an acknowledged record, and a second reopen reports nothing.
//!
//! Some rounds use 4-8 KiB segments so that kills land while segments roll.
//! `MILLPOND_SOAK=1` runs many more rounds.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use millpond::{Broker, FsyncPolicy, Message, Record, RecordId, StartFrom, TopicConfig};
use support::child::{self, Monitored};
use support::dir::TempDir;
use support::frames::SEGMENT_OVERHEAD;
use support::layout::{active_segment, index_files, segment_files};
use support::rng::{Lcg, pattern};
use support::soak;

const TOPIC: &str = "crash";
const PARTITIONS: u32 = 3;
/// The name of the child entry point below (for `--exact`).
const CHILD_TEST: &str = "crash_child_appends_until_killed";
const ENV_SEGMENT: &str = "MILLPOND_CRASH_SEGMENT";
const ENV_MAX_VALUE: &str = "MILLPOND_CRASH_MAX_VALUE";
const ENV_SEQ: &str = "MILLPOND_CRASH_SEQ";
const ENV_FSYNC: &str = "MILLPOND_CRASH_FSYNC";
/// Sequence numbers of run `r` are `r << RUN_SHIFT ..`.
const RUN_SHIFT: u32 = 40;
/// The child stops appending (and idles until killed) once the topic has
/// this many segments, so tiny segments never exhaust file descriptors.
const MAX_SEGMENTS: usize = 600;
/// Bytes of the value prefix: seq, length, crc of the rest.
const PREFIX: usize = 16;

fn topic_config(segment_bytes: u64, fsync: &str) -> TopicConfig {
    let max_record = (segment_bytes - SEGMENT_OVERHEAD as u64).min(1 << 20) as u32;
    let fsync = match fsync {
        "never" => FsyncPolicy::Never,
        "every" => FsyncPolicy::EveryN(64),
        "interval" => FsyncPolicy::Interval(Duration::from_millis(3)),
        other => panic!("unknown fsync policy {other}"),
    };
    TopicConfig::default()
        .partitions(PARTITIONS)
        .segment_bytes(segment_bytes)
        .max_record_bytes(max_record)
        .index_interval_bytes(1024)
        .fsync(fsync)
}

/// The value of record `seq`: `[seq u64][len u32][crc32 of the pattern u32][pattern]`.
fn make_value(seq: u64, len: usize) -> Vec<u8> {
    let len = len.max(PREFIX);
    let pattern = pattern(seq, len - PREFIX);
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&seq.to_le_bytes());
    v.extend_from_slice(&(len as u32).to_le_bytes());
    v.extend_from_slice(&crc32fast::hash(&pattern).to_le_bytes());
    v.extend_from_slice(&pattern);
    v
}

/// The key of record `seq`, if it has one (every third record).
fn key_of(seq: u64) -> Option<String> {
    seq.is_multiple_of(3).then(|| format!("k{}", seq % 5))
}

/// The explicit timestamp of record `seq`, if it has one.
fn timestamp_of(seq: u64) -> Option<i64> {
    seq.is_multiple_of(4).then(|| 1_700_000_000_000 + seq as i64)
}

/// The explicit partition of record `seq`, if it has one.
fn partition_of(seq: u64) -> Option<u32> {
    (seq % 7 == 1).then(|| (seq / 7 % u64::from(PARTITIONS)) as u32)
}

fn make_record(seq: u64, len: usize) -> Record<'static> {
    let mut r = Record::new(make_value(seq, len)).header("seq", seq.to_le_bytes().to_vec());
    if let Some(k) = key_of(seq) {
        r = r.key(k);
    }
    if let Some(ts) = timestamp_of(seq) {
        r = r.timestamp(ts);
    }
    if let Some(p) = partition_of(seq) {
        r = r.partition(p);
    }
    r
}

/// Checks every part of a record read back; returns its seq.
fn check_record(m: &Message) -> Result<u64, String> {
    let at = format!("partition {} offset {}", m.partition(), m.offset());
    let v = m.value();
    if v.len() < PREFIX {
        return Err(format!("{at}: value of {} bytes is too short", v.len()));
    }
    let seq = u64::from_le_bytes(v[0..8].try_into().expect("8 bytes"));
    let len = u32::from_le_bytes(v[8..12].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(v[12..16].try_into().expect("4 bytes"));
    if len != v.len() {
        return Err(format!("{at}: value is {} bytes but says {len}", v.len()));
    }
    if crc32fast::hash(&v[PREFIX..]) != crc || v != make_value(seq, len).as_slice() {
        return Err(format!("{at}: value of seq {seq} is damaged"));
    }
    if m.header("seq") != Some(&seq.to_le_bytes()[..]) || m.headers().count() != 1 {
        return Err(format!("{at}: headers of seq {seq} are wrong"));
    }
    if m.key() != key_of(seq).as_deref().map(str::as_bytes) {
        return Err(format!("{at}: key of seq {seq} is wrong: {:?}", m.key()));
    }
    if let Some(ts) = timestamp_of(seq)
        && m.timestamp() != ts
    {
        return Err(format!("{at}: timestamp of seq {seq} is {} not {ts}", m.timestamp()));
    }
    if let Some(p) = partition_of(seq)
        && m.partition() != p
    {
        return Err(format!("{at}: seq {seq} belongs in partition {p}"));
    }
    Ok(seq)
}

/// The child: opens (recovering) the broker and appends until killed,
/// printing `@@A <partition> <offset> <seq>` after every acknowledged record.
#[test]
#[ignore = "entry point of the child process the crash tests spawn; does nothing on its own"]
fn crash_child_appends_until_killed() {
    if child::role().is_none() {
        return;
    }
    let dir = child::dir();
    let segment_bytes = child::param_u64(ENV_SEGMENT);
    let max_value = child::param_u64(ENV_MAX_VALUE);
    let mut seq = child::param_u64(ENV_SEQ);
    let fsync = std::env::var(ENV_FSYNC).unwrap_or_else(|_| "never".into());
    let broker = Broker::open(&dir).expect("child: open");
    let topic = broker.create_topic(TOPIC, topic_config(segment_bytes, &fsync)).expect("child: create topic");
    let producer = topic.producer();
    let mut rng = Lcg::new(seq);
    let mut out = std::io::stdout().lock();
    let report = broker.recovery_report();
    writeln!(out, "\n@@READY {}", report.len()).unwrap();
    out.flush().unwrap();
    let ack = |out: &mut std::io::StdoutLock<'_>, id: RecordId, seq: u64| {
        writeln!(out, "\n@@A {} {} {seq}", id.partition, id.offset).unwrap();
    };
    let mut value_len = || {
        // Mostly small values, sometimes up to the maximum.
        let cap = if rng.chance(1, 8) { max_value } else { max_value / 8 + 1 };
        rng.range(0, cap) as usize
    };
    let start = seq;
    // Whether the last append crossed a multiple of `k` records.
    let crossed = |before: u64, after: u64, k: u64| (before - start) / k != (after - start) / k;
    let mut before = seq;
    loop {
        if crossed(before, seq, 64) && topic.stats().partitions.iter().map(|p| p.segments).sum::<usize>() > MAX_SEGMENTS
        {
            writeln!(out, "\n@@IDLE").unwrap();
            out.flush().unwrap();
            loop {
                thread::sleep(Duration::from_secs(1));
            }
        }
        let n = if seq.is_multiple_of(3) { 1 + seq % 9 } else { 1 };
        if n == 1 {
            let id = producer.send(make_record(seq, value_len())).expect("child: send");
            ack(&mut out, id, seq);
        } else {
            let records: Vec<Record<'static>> = (seq..seq + n).map(|s| make_record(s, value_len())).collect();
            let ids = producer.send_batch(records).expect("child: send_batch");
            for (i, id) in ids.into_iter().enumerate() {
                ack(&mut out, id, seq + i as u64);
            }
        }
        out.flush().unwrap();
        before = seq;
        seq += n;
        // An occasional durability barrier (fsync is slow on some disks, so
        // rarely: the kill should mostly land in appends and rolls).
        if crossed(before, seq, 20_000) {
            producer.flush().expect("child: flush");
        }
    }
}

/// What one child run reported.
#[derive(Debug, Default)]
struct RunLog {
    acks: Vec<(u32, u64, u64)>,
    idled: bool,
}

/// Spawns the child on `dir`, lets it append for `kill_after`, SIGKILLs it
/// and returns every complete ack line it wrote.
fn run_child(dir: &Path, segment_bytes: u64, max_value: u64, run: u64, fsync: &str, kill_after: Duration) -> RunLog {
    let mut child = Monitored::spawn(
        child::command(CHILD_TEST, "appender", dir)
            .env(ENV_SEGMENT, segment_bytes.to_string())
            .env(ENV_MAX_VALUE, max_value.to_string())
            .env(ENV_SEQ, (run << RUN_SHIFT).to_string())
            .env(ENV_FSYNC, fsync)
            .env("RUST_BACKTRACE", "0"),
    );
    let mut log = RunLog::default();
    let parse = |line: &str, log: &mut RunLog| {
        if let Some(i) = line.find("@@A ") {
            let f: Vec<u64> = line[i + 4..].split_whitespace().map(|x| x.parse().expect("number")).collect();
            assert_eq!(f.len(), 3, "bad ack line {line:?}");
            log.acks.push((f[0] as u32, f[1], f[2]));
        } else if line.contains("@@IDLE") {
            log.idled = true;
        }
    };

    // Wait until the child has opened the broker, then let it append.
    child.expect_line("@@READY", Duration::from_secs(60), drop, "child never became ready");
    let kill_at = Instant::now() + kill_after;
    child.lines_until(kill_at, |l| parse(&l, &mut log), "child exited before it was killed");
    let killed = child.kill9();
    if killed.status.signal() != Some(libc::SIGKILL) {
        panic!("child ended with {:?} instead of SIGKILL; its stderr:\n{}", killed.status, killed.stderr);
    }
    // Lines the child wrote before it died were still in the pipe.
    for l in &killed.rest {
        parse(l, &mut log);
    }
    log
}

/// Everything acknowledged over the runs on one directory.
#[derive(Debug, Default)]
struct Acked {
    /// `(partition, offset) -> seq`.
    at: BTreeMap<(u32, u64), u64>,
    /// Highest acknowledged offset per `(run, partition)`.
    last: BTreeMap<(u64, u32), u64>,
}

impl Acked {
    fn add(&mut self, run: u64, log: &RunLog) {
        for &(p, off, seq) in &log.acks {
            assert_eq!(seq >> RUN_SHIFT, run, "ack of seq {seq} in run {run}");
            if let Some(prev) = self.at.insert((p, off), seq) {
                panic!("offset {p}/{off} acknowledged twice: seq {prev} and seq {seq}");
            }
            let last = self.last.entry((run, p)).or_insert(off);
            *last = (*last).max(off);
        }
    }
}

/// What a verification found, for the summary.
#[derive(Debug, Default)]
struct Found {
    records: u64,
    unacked: u64,
    repaired: usize,
    rolls_cut: usize,
}

/// Reopens `dir` and checks everything the module docs promise.
fn verify(dir: &Path, segment_bytes: u64, acked: &Acked, label: &str) -> Found {
    let mut found = Found::default();
    // Signs that the kill landed during a roll: an empty active segment, or
    // a sealed segment that was never trimmed or has no index.
    for p in 0..PARTITIONS {
        let segs = segment_files(dir, TOPIC, p);
        let idx: HashSet<PathBuf> = index_files(dir, TOPIC, p).into_iter().collect();
        if let [.., prev, last] = segs.as_slice() {
            let last_len = std::fs::metadata(last).expect("stat").len();
            let prev_len = std::fs::metadata(prev).expect("stat").len();
            if last_len == 0 || prev_len == segment_bytes || !idx.contains(&prev.with_extension("index")) {
                found.rolls_cut += 1;
            }
        }
    }

    let broker = Broker::open(dir).unwrap_or_else(|e| panic!("{label}: reopen after kill: {e}"));
    let topic = broker.topic(TOPIC).unwrap_or_else(|e| panic!("{label}: topic: {e}"));
    let report = broker.recovery_report();
    found.repaired = report.len();
    for e in &report {
        assert_eq!(e.topic, TOPIC, "{label}: {e:?}");
        assert!(e.partition < PARTITIONS, "{label}: {e:?}");
        assert!(e.dropped_bytes > 0, "{label}: an event that dropped nothing: {e:?}");
        assert!(!e.reason.is_empty(), "{label}: {e:?}");
        assert!(e.valid_bytes + e.dropped_bytes <= segment_bytes, "{label}: {e:?}");
        assert_eq!(e.segment, active_segment(dir, TOPIC, e.partition), "{label}: only active segments are repaired");
        assert_eq!(e.next_offset, topic.high_watermark(e.partition).unwrap(), "{label}: {e:?}");
        if let Some((&(_, last), _)) = acked.at.range((e.partition, 0)..(e.partition + 1, 0)).next_back() {
            assert!(e.next_offset > last, "{label}: recovery dropped acknowledged offset {last}: {e:?}");
        }
    }
    let mut seqs = HashSet::new();
    for p in 0..PARTITIONS {
        assert_eq!(topic.log_start(p).unwrap(), 0, "{label}");
        let hw = topic.high_watermark(p).unwrap();
        let mut c = topic.consumer_of(&[p], StartFrom::Earliest).unwrap();
        let mut next = 0u64;
        let mut prev_seq: Option<u64> = None;
        while let Some(m) = c.try_recv().unwrap_or_else(|e| panic!("{label}: reading {p}/{next}: {e}")) {
            assert_eq!((m.partition(), m.offset()), (p, next), "{label}: offsets are dense from 0");
            let seq = check_record(&m).unwrap_or_else(|e| panic!("{label}: {e}"));
            assert!(seqs.insert(seq), "{label}: seq {seq} stored twice");
            assert!(prev_seq.is_none_or(|s| s < seq), "{label}: seq {seq} after {prev_seq:?} in partition {p}");
            prev_seq = Some(seq);
            match acked.at.get(&(p, next)) {
                Some(&want) => assert_eq!(seq, want, "{label}: {p}/{next} holds the wrong record"),
                None => {
                    // Written but not acknowledged: must come after every
                    // acknowledged record of its run in this partition.
                    found.unacked += 1;
                    if let Some(&last) = acked.last.get(&(seq >> RUN_SHIFT, p)) {
                        assert!(next > last, "{label}: unacknowledged seq {seq} at {p}/{next} before acked {p}/{last}");
                    }
                }
            }
            next += 1;
        }
        assert_eq!(next, hw, "{label}: partition {p} reads up to its high watermark");
        found.records += next;
    }
    for (&(p, off), &seq) in &acked.at {
        assert!(off < topic.high_watermark(p).unwrap(), "{label}: acknowledged seq {seq} at {p}/{off} was lost");
    }
    drop(topic);
    broker.close().unwrap();
    drop(broker);

    // A second reopen finds nothing to repair and the same log.
    let broker = Broker::open(dir).unwrap();
    assert_eq!(broker.recovery_report(), vec![], "{label}: second reopen");
    let topic = broker.topic(TOPIC).unwrap();
    let total: u64 = (0..PARTITIONS).map(|p| topic.high_watermark(p).unwrap()).sum();
    assert_eq!(total, found.records, "{label}: second reopen sees the same log");
    found
}

/// Kill delay of round `r`: 20..300 ms from an LCG seeded by the round.
fn kill_delay(r: u64) -> Duration {
    Duration::from_millis(Lcg::new(r * 7919 + 13).range(20, 301))
}

#[test]
fn acknowledged_records_survive_sigkill_at_random_points() {
    // (segment_bytes, max value bytes, fsync policy)
    let shapes: [(u64, u64, &str); 8] = [
        (4096, 300, "never"),
        (16 * 1024, 4000, "never"),
        (256 * 1024, 60_000, "never"),
        (4096, 1200, "every"),
        (64 * 1024, 2000, "interval"),
        (8192, 500, "never"),
        (1 << 20, 200_000, "never"),
        (4096, 64, "never"),
    ];
    let rounds = if soak() { 64 } else { shapes.len() as u64 };
    let mut total = Found::default();
    let mut acks = 0;
    for round in 0..rounds {
        let (segment_bytes, max_value, fsync) = shapes[round as usize % shapes.len()];
        let dir = TempDir::new("crash");
        let delay = kill_delay(round);
        let log = run_child(dir.path(), segment_bytes, max_value, 0, fsync, delay);
        let mut acked = Acked::default();
        acked.add(0, &log);
        acks += log.acks.len();
        let label = format!("round {round} ({segment_bytes}-byte segments, {fsync}, killed after {delay:?})");
        let found = verify(dir.path(), segment_bytes, &acked, &label);
        eprintln!(
            "{label}: {} acked, {} stored ({} unacked), {} repaired, roll cut: {}, idled: {}",
            log.acks.len(),
            found.records,
            found.unacked,
            found.repaired,
            found.rolls_cut,
            log.idled
        );
        total.records += found.records;
        total.repaired += found.repaired;
        total.rolls_cut += found.rolls_cut;
    }
    assert!(acks > 1000, "the children acknowledged only {acks} records in all");
    eprintln!("in all: {} records, {} repairs, {} kills during rolls", total.records, total.repaired, total.rolls_cut);
}

#[test]
fn appends_continue_across_repeated_sigkills_on_one_directory() {
    let dir = TempDir::new("crash-continue");
    let segment_bytes = 8192;
    let rounds = if soak() { 40 } else { 6 };
    let mut acked = Acked::default();
    let mut prev_records = 0;
    for run in 0..rounds {
        let delay = kill_delay(1000 + run);
        let log = run_child(dir.path(), segment_bytes, 700, run, "never", delay);
        acked.add(run, &log);
        // Every other round the next child recovers straight from the crash;
        // otherwise the parent recovers and checks in between.
        if run % 2 == 1 || run == rounds - 1 {
            let label = format!("run {run} (killed after {delay:?})");
            let found = verify(dir.path(), segment_bytes, &acked, &label);
            assert!(found.records >= prev_records, "{label}: the log shrank from {prev_records} to {}", found.records);
            prev_records = found.records;
            eprintln!(
                "{label}: {} acked so far, {} stored, {} repaired",
                acked.at.len(),
                found.records,
                found.repaired
            );
        }
    }
    assert!(acked.at.len() > 500, "the children acknowledged only {} records in all", acked.at.len());
}
