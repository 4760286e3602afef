//! A crash loop on ONE growing directory.
//!
//! Cycle after cycle, a child process (this test binary re-run with
//! `--exact`) opens the same broker directory, recovering whatever the last
//! kill left, and works on it from several threads until the parent SIGKILLs
//! it at a pseudo-random moment:
//!
//! - three writer threads `send_batch` records with explicit partitions
//!   across the partitions of three topics: `ev` (plain, 4 partitions),
//!   `ret` (tiny segments and `retention_bytes`, so retention deletes
//!   segments all the time) and `kv` (compacted, keys and runs of long
//!   expired tombstones, so compaction empties whole segments);
//! - two maintenance threads compact `kv` and enforce retention on `ret` in
//!   loops, so kills land during compaction and retention too;
//! - group `pair` (two members, manual commits every few records) and group
//!   `auto` (one member, `AutoCommit::Interval`) consume `ev`, printing every
//!   record they process before it can be committed.
//!
//! Every acknowledged record is printed (`A topic partition offset id`).
//! After each kill the parent copies the directory twice and opens one copy
//! with `RecoveryMode::FailOnCorruptTail` and the other with the default:
//!
//! - the strict copy either opens with exactly the content the default copy
//!   shows, or fails and leaves every file byte-identical; it fails exactly
//!   when the default copy had something to repair;
//! - in the default copy every record read is exactly the record written
//!   with that id at that topic and partition; offsets only increase (dense
//!   from the log start for `ev` and `ret`); the high watermark never falls
//!   below an acknowledged offset; an offset acknowledged once is never
//!   acknowledged again for another record (offsets are never reused, across
//!   all cycles); recovery only repairs active segments and never drops an
//!   acknowledged record; for `kv` every key's latest acknowledged record
//!   (or, for a tombstone, nothing) is what compaction left; committed
//!   offsets never exceed the high watermark; a second open repairs nothing.
//!
//! After the last cycle both groups drain what is left: every acknowledged
//! `ev` record was consumed by each group at least once (at-least-once
//! across every kill). `MILLPOND_SOAK=1` runs hundreds of cycles;
//! `MILLPOND_SEED=<n>` changes the schedule.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use millpond::{
    AutoCommit, Broker, BrokerConfig, CleanupPolicy, Message, Record, RecoveryEvent, RecoveryMode, StartFrom,
    TopicConfig,
};
use support::child::{self, Monitored};
use support::dir::TempDir;
use support::layout::{partition_dir, segment_bases};
use support::rng::{Lcg, Seed};
use support::soak;
use support::tree::{Entry, copy_tree, snapshot};

const TEST_NAME: &str = "crash_loop_on_one_growing_directory_keeps_every_acknowledged_record_and_group_progress";
const RUN_ENV: &str = "MILLPOND_LOOP_RUN";
/// `(topic, partitions)`.
const TOPICS: [(&str, u32); 3] = [("ev", 4), ("ret", 2), ("kv", 2)];
const GROUPS: [&str; 2] = ["pair", "auto"];
const WRITERS: u64 = 3;
/// Timestamps: old, so every tombstone has long expired.
const BASE_TS: i64 = 1_600_000_000_000;
/// The child stops writing `ev` once it holds this many records, so the
/// directory (and each cycle's copies) stays small in the soak.
const EV_CAP: u64 = 60_000;

fn config(topic: &str) -> TopicConfig {
    let base = TopicConfig::default().max_record_bytes(1024).index_interval_bytes(512);
    match topic {
        "ev" => base.partitions(4).segment_bytes(32 << 10),
        "ret" => base.partitions(2).segment_bytes(4096).retention_bytes(16 << 10),
        "kv" => base
            .partitions(2)
            .segment_bytes(4096)
            .cleanup(CleanupPolicy::Compact)
            .tombstone_retention(Duration::from_millis(1)),
        other => panic!("unknown topic {other}"),
    }
}

/// Record ids: `run << 40 | writer << 32 | seq`.
fn id_of(run: u64, writer: u64, seq: u64) -> u64 {
    (run << 40) | (writer << 32) | seq
}

/// `(key, value)` of record `id` in `topic`/`p`; a `None` value is a tombstone.
fn content(topic: &str, p: u32, id: u64) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let mut value = format!("{topic}|{p}|{id}|").into_bytes();
    let seq = id & 0xFFFF_FFFF;
    value.resize(value.len() + ((id.wrapping_mul(13) >> 3) % 300) as usize, b'a' + (seq % 26) as u8);
    match topic {
        "kv" => {
            let key = Some(format!("key{}", (id.wrapping_mul(7) >> 2) % 40).into_bytes());
            // Runs of tombstones fill whole segments that compaction empties.
            let tombstone = (seq / 64) % 6 == 3 || id % 11 == 4;
            (key, (!tombstone).then_some(value))
        }
        _ => (id.is_multiple_of(3).then(|| format!("k{}", id % 5).into_bytes()), Some(value)),
    }
}

fn record(topic: &str, p: u32, id: u64) -> Record<'static> {
    let (key, value) = content(topic, p, id);
    let r = match value {
        Some(v) => match key {
            Some(k) => Record::new(v).key(k),
            None => Record::new(v),
        },
        None => Record::tombstone(key.expect("tombstones have keys")),
    };
    r.partition(p).timestamp(BASE_TS + (id & 0xFFFF_FFFF) as i64).header("id", format!("{topic}/{p}/{id}"))
}

/// Checks a message is the record its `id` header names, in its place;
/// returns the id.
fn check(topic: &str, m: &Message) -> Result<u64, String> {
    let at = format!("{topic}/{}/{}", m.partition(), m.offset());
    let header = m.header("id").ok_or_else(|| format!("{at}: no id header"))?;
    let header = std::str::from_utf8(header).map_err(|_| format!("{at}: bad id header"))?;
    let mut f = header.split('/');
    let (t, p, id) = (f.next(), f.next(), f.next().and_then(|x| x.parse::<u64>().ok()));
    if t != Some(topic) || p != Some(m.partition().to_string().as_str()) {
        return Err(format!("{at}: holds a record of {header}: foreign data"));
    }
    let id = id.ok_or_else(|| format!("{at}: bad id header {header}"))?;
    let (key, value) = content(topic, m.partition(), id);
    if m.key() != key.as_deref() {
        return Err(format!("{at}: key of id {id} is wrong"));
    }
    match value {
        Some(v) if m.is_tombstone() || m.value() != v.as_slice() => Err(format!("{at}: value of id {id} is damaged")),
        None if !m.is_tombstone() => Err(format!("{at}: id {id} should be a tombstone")),
        _ if m.timestamp() != BASE_TS + (id & 0xFFFF_FFFF) as i64 => Err(format!("{at}: timestamp of id {id}")),
        _ => Ok(id),
    }
}

// ---------------------------------------------------------------------------
// The child.

fn child() {
    // A panic on any thread ends the child at once (SIGABRT, not the
    // parent's SIGKILL), so the parent reports it with the child's stderr.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::abort();
    }));
    let dir = child::dir();
    let run = child::param_u64(RUN_ENV);
    let broker = Broker::open(&dir).expect("child: open");
    let topics: Vec<millpond::Topic> =
        TOPICS.iter().map(|(name, _)| broker.create_topic(name, config(name)).expect("child: create topic")).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for w in 0..WRITERS {
        let topics = topics.clone();
        threads.push(std::thread::spawn(move || writer(run, w, &topics)));
    }
    // Compaction and retention run on threads of their own, in loops, so
    // kills land in the middle of both (a compaction of the whole `kv`
    // topic takes far longer than a retention pass).
    {
        let kv = topics[2].clone();
        let stop = Arc::clone(&stop);
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                kv.compact().expect("child: compact");
                std::thread::sleep(Duration::from_millis(2));
            }
        }));
    }
    {
        let ret = topics[1].clone();
        let stop = Arc::clone(&stop);
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                ret.enforce_retention().expect("child: retention");
                std::thread::sleep(Duration::from_millis(2));
            }
        }));
    }
    for (g, members) in [("pair", 2), ("auto", 1)] {
        for _ in 0..members {
            let ev = topics[0].clone();
            threads.push(std::thread::spawn(move || consumer(&ev, g)));
        }
    }
    println!("@@READY");
    // Wait for the kill; a safety net ends an orphaned child.
    std::thread::sleep(Duration::from_secs(120));
    stop.store(true, Ordering::Relaxed);
    panic!("child: never killed");
}

fn writer(run: u64, w: u64, topics: &[millpond::Topic]) {
    let mut rng = Lcg::new(id_of(run, w, 0) ^ 0xC0FFEE);
    let producers: Vec<millpond::Producer> = topics.iter().map(millpond::Topic::producer).collect();
    let mut seq = 0u64;
    loop {
        let pick = rng.range(0, 100);
        let t = if pick < 55 {
            0
        } else if pick < 80 {
            2
        } else {
            1
        };
        if t == 0 && topics[0].stats().records() > EV_CAP {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let (name, parts) = TOPICS[t];
        let n = rng.range(1, 9);
        let mut recs = Vec::new();
        let mut ids = Vec::new();
        for _ in 0..n {
            let p = rng.range(0, u64::from(parts)) as u32;
            let id = id_of(run, w, seq);
            seq += 1;
            recs.push(record(name, p, id));
            ids.push(id);
        }
        let got = producers[t].send_batch(recs).expect("child: send_batch");
        let mut out = String::new();
        for (rid, id) in got.iter().zip(&ids) {
            out.push_str(&format!("A {name} {} {} {id}\n", rid.partition, rid.offset));
        }
        let mut so = std::io::stdout().lock();
        so.write_all(out.as_bytes()).expect("stdout");
        so.flush().expect("stdout");
        drop(so);
        if rng.range(0, 3) == 0 {
            std::thread::sleep(Duration::from_micros(rng.range(100, 2000)));
        }
    }
}

fn consumer(ev: &millpond::Topic, group: &str) {
    let mode = if group == "auto" { AutoCommit::Interval(Duration::from_millis(10)) } else { AutoCommit::Off };
    let mut m = ev.group(group).expect("child: group").auto_commit(mode).join().expect("child: join");
    let mut n = 0u64;
    loop {
        let Some(msg) = m.recv_timeout(Duration::from_millis(20)).expect("child: group receive") else { continue };
        let id = check("ev", &msg).unwrap_or_else(|e| panic!("child: group {group} received bad data: {e}"));
        // Processed (printed: in the pipe) before it can be committed.
        println!("C {group} {} {} {id}", msg.partition(), msg.offset());
        n += 1;
        if group == "pair" && n.is_multiple_of(5) {
            m.commit().expect("child: commit");
        }
    }
}

// ---------------------------------------------------------------------------
// The parent.

/// What the children reported, over all cycles.
#[derive(Default)]
struct Model {
    /// `(topic, partition, offset) -> id`.
    acked: BTreeMap<(String, u32, u64), u64>,
    /// `(group, partition, offset) -> id` consumed.
    consumed: BTreeMap<(String, u32, u64), u64>,
}

impl Model {
    fn parse(&mut self, line: &str, label: &str) {
        // The harness prints "test <name> ... " before the child's first line.
        let line = line.rsplit_once(" ... ").map_or(line, |x| x.1);
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 5 || !(f[0] == "A" || f[0] == "C") {
            return;
        }
        let (p, off, id) = (f[2].parse().unwrap(), f[3].parse().unwrap(), f[4].parse().unwrap());
        if f[0] == "A" {
            if let Some(prev) = self.acked.insert((f[1].to_string(), p, off), id) {
                assert_eq!(
                    prev, id,
                    "{label}: offset {}/{p}/{off} acknowledged for id {prev} and again for id {id}: offsets reused",
                    f[1]
                );
            }
        } else {
            self.consumed.insert((f[1].to_string(), p, off), id);
        }
    }

    fn last_acked(&self, topic: &str, p: u32) -> Option<u64> {
        self.acked.range((topic.to_string(), p, 0)..=(topic.to_string(), p, u64::MAX)).next_back().map(|e| e.0.2)
    }
}

/// Runs one child cycle; returns (acks, killed before READY).
fn run_cycle(dir: &Path, run: u64, rng: &mut Lcg, model: &mut Model) -> (usize, bool) {
    let label = format!("cycle {run}");
    let mut child = Monitored::spawn(
        child::command(TEST_NAME, "writer", dir).env(RUN_ENV, run.to_string()).env("RUST_BACKTRACE", "0"),
    );
    // 1 cycle in 12 is killed during start-up (recovery, creating
    // topics, joining groups); the rest after READY plus a delay.
    let early = rng.range(0, 12) == 0;
    let acks_before = model.acked.len();
    let mut lines = Vec::new();
    let exited_early = format!("{label}: the child exited before it was killed");
    if early {
        std::thread::sleep(Duration::from_millis(rng.range(1, 80)));
    } else {
        let never_ready = format!("{label}: the child never became ready");
        child.expect_line("@@READY", Duration::from_secs(60), |l| lines.push(l), &never_ready);
        let kill_at = Instant::now() + Duration::from_millis(rng.range(20, 260));
        child.lines_until(kill_at, |l| lines.push(l), &exited_early);
    }
    if child.has_exited() {
        child.fail(&exited_early);
    }
    let killed = child.kill9();
    if killed.status.signal() != Some(libc::SIGKILL) {
        panic!("{label}: child ended with {:?}, not SIGKILL:\n{}", killed.status, killed.stderr);
    }
    lines.extend(killed.rest);
    for l in &lines {
        model.parse(l.trim_end(), &label);
    }
    (model.acked.len() - acks_before, early)
}

/// One partition as read: `(log_start, high_watermark, [(offset, id)])`.
type PartitionContent = (u64, u64, Vec<(u64, u64)>);

/// What a broker shows, to compare the strict and default opens.
#[derive(Debug, PartialEq, Eq)]
struct Content {
    /// `(topic, partition) -> (log_start, high_watermark, [(offset, id)])`.
    logs: BTreeMap<(String, u32), PartitionContent>,
    committed: BTreeMap<String, BTreeMap<u32, u64>>,
}

/// Reads everything, checking each record; `Err` on the first bad one.
fn read_content(broker: &Broker) -> Result<Content, String> {
    let mut logs = BTreeMap::new();
    let mut committed = BTreeMap::new();
    for (name, parts) in TOPICS {
        let topic = match broker.topic(name) {
            Ok(t) => t,
            // A child killed during start-up may not have created it yet.
            Err(millpond::Error::UnknownTopic { .. }) => continue,
            Err(e) => return Err(format!("topic {name}: {e}")),
        };
        // Retention first, so what is read does not depend on whether the
        // broker's maintenance thread has applied it yet (it runs 250 ms
        // after the open): the strict and the default open must agree.
        topic.enforce_retention().map_err(|e| format!("retention of {name}: {e}"))?;
        for p in 0..parts {
            let ls = topic.log_start(p).map_err(|e| e.to_string())?;
            let hw = topic.high_watermark(p).map_err(|e| e.to_string())?;
            let mut c = topic.consumer_of(&[p], StartFrom::Earliest).map_err(|e| e.to_string())?;
            let mut recs = Vec::new();
            for item in c.try_iter() {
                let m = item.map_err(|e| format!("reading {name}/{p}: {e}"))?;
                if recs.len() as u64 > hw + 1 {
                    return Err(format!("{name}/{p}: more records than the high watermark {hw}"));
                }
                recs.push((m.offset(), check(name, &m)?));
            }
            logs.insert((name.to_string(), p), (ls, hw, recs));
        }
        if name == "ev" {
            for g in GROUPS {
                let c = topic.group(g).and_then(|g| g.committed()).map_err(|e| format!("group {g}: {e}"))?;
                committed.insert(g.to_string(), c);
            }
        }
    }
    Ok(Content { logs, committed })
}

/// Every file (not the lock file) with its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    snapshot(dir)
        .into_iter()
        .filter(|(p, _)| p.file_name().is_some_and(|n| n != "millpond.lock"))
        .filter_map(|(p, e)| match e {
            Entry::File(bytes) => Some((p, bytes)),
            Entry::Dir | Entry::Link(_) => None,
        })
        .collect()
}

/// Checks the default-mode open of a copy against the model.
fn check_default(label: &str, dir: &Path, report: &[RecoveryEvent], content: &Content, model: &Model) {
    for e in report {
        let pdir = partition_dir(dir, &e.topic, e.partition);
        let newest = segment_bases(dir, &e.topic, e.partition).last().copied();
        assert_eq!(
            Some(e.segment.clone()),
            newest.map(|b| pdir.join(format!("{b:020}.log"))),
            "{label}: recovery repaired a segment that is not the active one: {e:?}"
        );
        if let Some(last) = model.last_acked(&e.topic, e.partition) {
            assert!(e.next_offset > last, "{label}: recovery dropped acknowledged offset {last}: {e:?}");
        }
    }
    for (topic, p, _) in model.acked.keys() {
        assert!(
            content.logs.contains_key(&(topic.clone(), *p)),
            "{label}: topic {topic} with acknowledged records is gone"
        );
    }
    for ((topic, p), (ls, hw, recs)) in &content.logs {
        let p = *p;
        if let Some(last) = model.last_acked(topic, p) {
            assert!(
                *hw > last,
                "{label}: {topic}/{p}: high watermark {hw} fell below acknowledged offset {last} (log start {ls})"
            );
        }
        let mut prev: Option<u64> = None;
        for &(off, id) in recs {
            assert!(off >= *ls && off < *hw, "{label}: {topic}/{p}: offset {off} outside {ls}..{hw}");
            if let Some(pr) = prev {
                assert!(off > pr, "{label}: {topic}/{p}: offset {off} after {pr}");
                if topic != "kv" {
                    assert_eq!(off, pr + 1, "{label}: {topic}/{p}: offsets are dense; {off} follows {pr}");
                }
            } else if topic != "kv" {
                assert_eq!(off, *ls, "{label}: {topic}/{p}: the first record read is at the log start");
            }
            prev = Some(off);
            if let Some(&want) = model.acked.get(&(topic.clone(), p, off)) {
                assert_eq!(id, want, "{label}: {topic}/{p}/{off} holds id {id}, but id {want} was acknowledged there");
            }
        }
        if topic != "kv" {
            assert_eq!(recs.len() as u64, hw - ls, "{label}: {topic}/{p}: reads every offset in {ls}..{hw}");
        }
        if topic == "ev" {
            assert_eq!(*ls, 0, "{label}: ev has no retention");
        }
        if topic == "kv" {
            check_compacted(label, p, recs, model);
        }
    }
    for (g, c) in &content.committed {
        for (p, off) in c {
            let hw = content.logs.get(&("ev".to_string(), *p)).map_or(0, |x| x.1);
            assert!(*off <= hw, "{label}: group {g} committed {p}/{off} beyond the high watermark {hw}");
        }
    }
}

/// For every key of `kv`/`p`: the latest record read is at or after the
/// latest acknowledged one, or that one is a tombstone and nothing is left.
fn check_compacted(label: &str, p: u32, recs: &[(u64, u64)], model: &Model) {
    let key_of = |id: u64| content("kv", p, id).0.expect("kv records have keys");
    let mut latest_read: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    for &(off, id) in recs {
        latest_read.insert(key_of(id), off);
    }
    let mut latest_acked: BTreeMap<Vec<u8>, (u64, u64)> = BTreeMap::new();
    for ((_, _, off), id) in model.acked.range(("kv".to_string(), p, 0)..=("kv".to_string(), p, u64::MAX)) {
        latest_acked.insert(key_of(*id), (*off, *id));
    }
    for (key, (off, id)) in latest_acked {
        let tombstone = content("kv", p, id).1.is_none();
        let read = latest_read.get(&key).copied();
        let ok = read.is_some_and(|r| r >= off) || (tombstone && read.is_none());
        assert!(
            ok,
            "{label}: kv/{p} key {}: latest acknowledged record is at {off} (tombstone: {tombstone}), \
             latest left is {read:?}: lost, or an older value brought back",
            String::from_utf8_lossy(&key)
        );
    }
}

/// Checks one kill's aftermath on two copies of `dir`.
fn verify_cycle(label: &str, dir: &Path, model: &Model) -> (usize, bool) {
    let a = TempDir::new("loop-default");
    let b = TempDir::new("loop-strict");
    copy_tree(dir, a.path());
    copy_tree(dir, b.path());
    let broker = Broker::open(a.path()).unwrap_or_else(|e| panic!("{label}: default open after the kill: {e}"));
    let report = broker.recovery_report();
    let content = read_content(&broker).unwrap_or_else(|e| panic!("{label}: default open: {e}"));
    check_default(label, a.path(), &report, &content, model);
    broker.close().unwrap();
    drop(broker);
    let again = Broker::open(a.path()).unwrap_or_else(|e| panic!("{label}: second open: {e}"));
    assert_eq!(again.recovery_report(), vec![], "{label}: a second open repairs nothing");
    drop(again);

    let before = files(b.path());
    let strict = Broker::open_with(b.path(), BrokerConfig::default().recovery(RecoveryMode::FailOnCorruptTail));
    match strict {
        Ok(s) => {
            assert!(
                report.is_empty(),
                "{label}: FailOnCorruptTail opened although the default mode repaired {report:?}"
            );
            let sc = read_content(&s).unwrap_or_else(|e| panic!("{label}: strict open: {e}"));
            assert!(sc == content, "{label}: the strict open shows other content than the default open");
            drop(s);
        }
        Err(e) => {
            let after = files(b.path());
            let changed: Vec<&PathBuf> = before.keys().filter(|k| before.get(*k) != after.get(*k)).collect();
            assert!(changed.is_empty(), "{label}: strict open failed ({e}) but changed {changed:?}");
            let new: Vec<&PathBuf> = after.keys().filter(|k| !before.contains_key(*k)).collect();
            assert!(new.is_empty(), "{label}: strict open failed ({e}) but created {new:?}");
            assert!(
                !report.is_empty(),
                "{label}: strict open failed ({e}) although the default open found nothing to repair"
            );
        }
    }
    let records = content.logs.values().map(|l| l.2.len()).sum();
    (records, !report.is_empty())
}

#[test]
fn crash_loop_on_one_growing_directory_keeps_every_acknowledged_record_and_group_progress() {
    if child::role().is_some() {
        child();
        return;
    }
    let seed = Seed::from_env_or(20_250_601);
    let cycles = if soak() { 300 } else { 10 };
    let mut rng = seed.rng();
    let tmp = TempDir::new("crash-loop");
    let dir = tmp.join("broker");
    let mut model = Model::default();
    let (mut repaired, mut early) = (0, 0);
    for run in 0..cycles {
        let (acks, was_early) = run_cycle(&dir, run, &mut rng, &mut model);
        early += usize::from(was_early);
        if !dir.join("topics").is_dir() {
            continue; // killed before the first child created anything
        }
        let label = format!("cycle {run} (seed {seed})");
        let (records, rep) = verify_cycle(&label, &dir, &model);
        repaired += usize::from(rep);
        eprintln!(
            "{label}: {acks} new acks, {} acked in all, {records} records stored, repaired: {rep}",
            model.acked.len()
        );
    }
    // At-least-once: each group drains what is left; together with what
    // the children processed, every acknowledged ev record was consumed.
    let broker = Broker::open(&dir).unwrap();
    let ev = broker.topic("ev").unwrap();
    for g in GROUPS {
        let mut m = ev.group(g).unwrap().auto_commit(AutoCommit::Off).join().unwrap();
        for item in m.try_iter() {
            let msg = item.unwrap_or_else(|e| panic!("group {g} draining: {e}"));
            let id = check("ev", &msg).unwrap_or_else(|e| panic!("group {g}: {e}"));
            model.consumed.insert((g.to_string(), msg.partition(), msg.offset()), id);
        }
        m.close().unwrap();
        let mut missed = Vec::new();
        for ((t, p, off), id) in &model.acked {
            if t != "ev" {
                continue;
            }
            match model.consumed.get(&(g.to_string(), *p, *off)) {
                Some(got) => assert_eq!(got, id, "group {g} consumed id {got} at ev/{p}/{off}, acked was {id}"),
                None => missed.push((*p, *off)),
            }
        }
        assert!(
            missed.is_empty(),
            "group {g} never consumed {} acknowledged records, first {:?}",
            missed.len(),
            &missed[..missed.len().min(10)]
        );
    }
    let ev_acks = model.acked.keys().filter(|k| k.0 == "ev").count();
    eprintln!(
        "{cycles} cycles: {} acked ({ev_acks} in ev), {repaired} repaired, {early} killed during start-up",
        model.acked.len()
    );
    assert!(ev_acks > 1000, "the children acknowledged only {ev_acks} ev records: the loop proves little");
    let group_consumed = model.consumed.keys().filter(|k| k.0 == "pair").count();
    assert!(group_consumed > 0, "group pair never consumed anything");
}
