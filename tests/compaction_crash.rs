//! SIGKILL during log compaction.
//!
//! The parent pre-fills a compacted topic with deterministic records (the
//! record at offset `o` is always `record_at(o)`), so it knows the whole model
//! without talking to the child. A child process (this test binary re-run
//! with `--exact`) opens the broker and loops: append a batch, then
//! `topic.compact()` (the broker's background thread compacts after each
//! roll too). The parent kills it with SIGKILL after a pseudo-random delay,
//! several times. After every kill it reopens the directory and checks:
//!
//! - `Broker::verify()` is clean and no stray `.cleaned` file survives the open;
//! - every acknowledged record is still there (high watermark >= last ack);
//! - every record read is exactly the one written at that offset (offsets of
//!   kept records never change), and every keyless record is still there;
//! - for every key, the latest record read is the model's latest record
//!   (or, when that is a tombstone, possibly nothing at all) — never an
//!   older value brought back to life.

mod support;

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::{Duration, Instant};

use millpond::{Broker, CleanupPolicy, StartFrom, TopicConfig};
use support::child::{self, Monitored};
use support::dir::TempDir;
use support::layout::{files_ending, segment_bases};
use support::records::{Spec, Stored, drain};
use support::rng::Seed;

const TOPIC: &str = "kv";
const KEYS: u64 = 60;
/// Record timestamps start here (2020): every tombstone is long expired, so
/// compaction removes tombstones as well as superseded values.
const BASE_TS: i64 = 1_600_000_000_000;
/// Records the parent writes before the first child starts.
const PREFILL: u64 = 1500;
/// Records the child appends between two compaction runs.
const BATCH: u64 = 20;
const TEST_NAME: &str = "sigkill_during_compaction_keeps_every_key_latest_record_and_every_offset";

fn config() -> TopicConfig {
    TopicConfig::default().segment_bytes(4096).max_record_bytes(1024).cleanup(CleanupPolicy::Compact)
}

/// The record written at offset `o`.
fn record_at(o: u64) -> Spec {
    let ts = BASE_TS + o as i64;
    if o % 31 == 7 {
        return Spec::value(format!("keyless-{o}"), ts);
    }
    let key = format!("key-{:02}", (o * 7) % KEYS);
    if o % 23 == 11 {
        return Spec::tombstone(key, ts);
    }
    let mut value = format!("value-{o}-").into_bytes();
    value.resize(40 + (o % 37) as usize, b'a' + (o % 26) as u8);
    Spec::keyed(key, value, ts)
}

/// Appends `record_at(from..to)` as one batch, checking the offsets it got.
fn append(topic: &millpond::Topic, from: u64, to: u64) {
    let specs: Vec<Spec> = (from..to).map(record_at).collect();
    let ids = topic.producer().send_batch(specs.iter().map(Spec::record)).expect("append");
    assert_eq!(ids.first().map(|id| id.offset), Some(from), "offsets are dense and continue");
}

/// The child: append and compact until killed (or, as a safety net, for
/// at most a minute).
fn child_compactor() {
    let dir = child::dir();
    let broker = Broker::open(&dir).expect("child: open");
    let topic = broker.create_topic(TOPIC, config()).expect("child: topic");
    let mut hw = topic.high_watermark(0).expect("child: hw");
    println!("READY {hw}");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        append(&topic, hw, hw + BATCH);
        hw += BATCH;
        println!("ACK {hw}");
        topic.compact().expect("child: compact");
    }
    eprintln!("child: not killed within a minute");
}

/// What one kill left on disk before the broker was reopened.
#[derive(Debug, Default)]
struct Evidence {
    cleaned_files: usize,
    sealed_without_index: usize,
}

fn evidence(dir: &Path) -> Evidence {
    let bases = segment_bases(dir, TOPIC, 0);
    let indexes = files_ending(dir, TOPIC, 0, ".index");
    let sealed = &bases[..bases.len().saturating_sub(1)];
    Evidence {
        cleaned_files: files_ending(dir, TOPIC, 0, ".cleaned").len(),
        sealed_without_index: sealed.iter().filter(|b| !indexes.contains(&format!("{b:020}.index"))).count(),
    }
}

/// Reopens the directory and checks everything the module docs promise.
/// Returns the high watermark.
fn check_after_kill(dir: &Path, acked: u64, round: usize) -> u64 {
    let broker = Broker::open(dir).unwrap_or_else(|e| panic!("round {round}: reopen after SIGKILL failed: {e}"));
    assert!(files_ending(dir, TOPIC, 0, ".cleaned").is_empty(), "round {round}: stray .cleaned survives the open");
    let report = broker.verify().expect("verify runs");
    assert!(report.is_clean(), "round {round}: verify after SIGKILL: {:?}", report.damage);
    let topic = broker.topic(TOPIC).unwrap();
    let hw = topic.high_watermark(0).unwrap();
    assert!(hw >= acked, "round {round}: acknowledged records lost: high watermark {hw} < last ack {acked}");
    assert_eq!(topic.log_start(0).unwrap(), 0, "compaction never moves the log start");

    let mut c = topic.consumer(StartFrom::Earliest).unwrap();
    let got: Vec<Stored> = drain(&mut c, usize::MAX).iter().map(Stored::of).collect();
    assert_eq!(report.records, got.len() as u64, "round {round}: verify and a consumer agree");
    let mut last = None;
    for s in &got {
        assert!(last.is_none_or(|l| s.offset > l), "round {round}: offsets go backwards at {}", s.offset);
        last = Some(s.offset);
        let want = record_at(s.offset).stored(millpond::RecordId { partition: 0, offset: s.offset });
        assert_eq!(*s, want, "round {round}: the record at offset {} changed", s.offset);
    }
    // Keyless records are never compacted away.
    let keyless_read = got.iter().filter(|s| s.key.is_none()).count() as u64;
    let keyless_written = (0..hw).filter(|o| o % 31 == 7).count() as u64;
    assert_eq!(keyless_read, keyless_written, "round {round}: keyless records lost");
    // The model: the latest offset of every key among 0..hw.
    let mut model: HashMap<Vec<u8>, u64> = HashMap::new();
    for o in 0..hw {
        if let Some(k) = record_at(o).key {
            model.insert(k, o);
        }
    }
    let mut replay: HashMap<Vec<u8>, u64> = HashMap::new();
    for s in &got {
        if let Some(k) = &s.key {
            replay.insert(k.clone(), s.offset);
        }
    }
    for (key, &latest) in &model {
        let name = String::from_utf8_lossy(key);
        match replay.get(key) {
            Some(&o) => assert_eq!(o, latest, "round {round}: key {name}: latest record read is {o}, not {latest}"),
            None => assert!(
                record_at(latest).value.is_none(),
                "round {round}: key {name} vanished although its latest record ({latest}) is a value"
            ),
        }
    }
    broker.close().unwrap();
    hw
}

#[test]
fn sigkill_during_compaction_keeps_every_key_latest_record_and_every_offset() {
    if child::role().as_deref() == Some("compactor") {
        child_compactor();
        return;
    }
    let tmp = TempDir::new("compaction-crash");
    let dir = tmp.join("broker");
    {
        let broker = Broker::open(&dir).unwrap();
        let topic = broker.create_topic(TOPIC, config()).unwrap();
        let mut o = 0;
        while o < PREFILL {
            append(&topic, o, o + 25);
            o += 25;
        }
        broker.close().unwrap();
    }
    let sealed = segment_bases(&dir, TOPIC, 0).len() - 1;
    assert!(sealed >= 20, "the test needs many sealed segments, got {sealed}");
    check_after_kill(&dir, PREFILL, 0);

    let kills = if support::soak() { 40 } else { 12 };
    let seed = Seed::from_env_or(0xC0FFEE);
    let mut lcg = seed.rng();
    let mut acked = PREFILL;
    let mut mid_compaction = 0;
    for round in 1..=kills {
        let mut child = Monitored::spawn(&mut child::command(TEST_NAME, "compactor", &dir));
        // The harness prints "test <name> ... " without a newline first.
        let ready = child.expect_line(
            "READY ",
            Duration::from_secs(30),
            drop,
            &format!("round {round}: child never got ready"),
        );
        let ready: u64 = ready["READY ".len()..].trim().parse().unwrap();
        assert_eq!(ready, acked, "round {round}: the child starts at the checked high watermark");
        let delay = Duration::from_millis(lcg.range(0, 700));
        std::thread::sleep(delay);
        let killed = child.kill9();
        assert_eq!(
            killed.status.signal(),
            Some(libc::SIGKILL),
            "round {round}: the child must die by SIGKILL, not {:?}: {}",
            killed.status,
            killed.stderr
        );
        // The child's last acknowledgement (they only grow).
        let last_ack = killed.rest.iter().rev().find_map(|l| l.strip_prefix("ACK "));
        acked = acked.max(last_ack.map_or(0, |n| n.trim().parse().unwrap()));
        let ev = evidence(&dir);
        if ev.cleaned_files > 0 || ev.sealed_without_index > 0 {
            mid_compaction += 1;
        }
        let hw = check_after_kill(&dir, acked, round);
        eprintln!("round {round}: killed after {delay:?}, acked {acked}, high watermark {hw}, on disk: {ev:?}");
        acked = hw;
    }
    eprintln!("{mid_compaction} of {kills} kills left a compaction visibly half-done");
    // The test only proves something if some kills hit a rewrite in flight
    // (a `.cleaned` file or a sealed segment without its index on disk).
    assert!(mid_compaction > 0, "in {kills} kills, none landed in the middle of a segment rewrite");
}
