//! Crash test for consumer groups: a group member in a child process is
//! killed (SIGKILL) at varied moments, again and again, and restarted, until
//! it has worked through a pre-filled topic.
//!
//! The child is this test binary re-run (`--exact <this test>`) in the
//! role `worker`. It joins group "workers" with
//! `AutoCommit::Off`, "processes" each record by appending `"<partition>
//! <offset>\n"` to a per-run file with one `write(2)` (in the page cache, so
//! it survives the kill) *before* committing, and commits every `K` records.
//! When nothing is left it commits, checks the group's lag is zero and exits.
//!
//! The parent reads the committed offsets from disk (with its own decoder)
//! before each run and after the last, and checks:
//!
//! - each run processes every partition consecutively from the offset that
//!   was committed when it started: nothing skipped, nothing re-read from
//!   before the commit, so every duplicate lies in the uncommitted window;
//! - at each kill, the records processed but not committed are at most `K`,
//!   and the duplicates a restart produces are at most `K` plus one per
//!   partition (round-robin order may differ between runs);
//! - a commit never covers a record that was not processed;
//! - every record is processed at least once, and the final committed
//!   offsets equal the high watermarks.
//!
//! Kills come from an LCG: some during start-up (opening the broker,
//! joining), most after a random number of processed records plus a random
//! extra delay, so they land before, during and after commits.
//! `MILLPOND_SOAK=1` runs a bigger topic and many more kills;
//! `MILLPOND_SEED=<n>` changes the kill schedule.
//!
//! The second test does the same with commits written off the consuming
//! thread, the way of each run chosen by its number: `commit_async` every
//! `K` records (handles dropped), a `Committer` on another thread
//! acknowledging every `K` records, or `AutoCommit::Interval` with no
//! explicit commit. Kills then land while commits are queued or being
//! written, so the window of records processed but not committed is no
//! longer bounded by `K` (it is reported); everything else is checked as
//! above: no skip, commits never past what was processed nor going back,
//! every record processed at least once.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use millpond::{AutoCommit, Broker, Record, TopicConfig};
use support::child::{self, Monitored};
use support::dir::TempDir;
use support::groups::read_committed;
use support::rng::Seed;

const TOPIC: &str = "jobs";
const GROUP: &str = "workers";
const PARTITIONS: u32 = 3;
/// Records processed between commits.
const K: u64 = 7;
const RUN_ENV: &str = "MILLPOND_GROUP_RUN";
const TEST_NAME: &str = "group_member_killed_at_random_moments_processes_every_record_at_least_once";
const ASYNC_TEST_NAME: &str =
    "group_member_committing_asynchronously_killed_at_random_moments_processes_every_record_at_least_once";

#[test]
fn group_member_killed_at_random_moments_processes_every_record_at_least_once() {
    if child::role().is_some() {
        child(&child::dir(), child::param_u64(RUN_ENV), false);
        return;
    }
    parent(false);
}

#[test]
fn group_member_committing_asynchronously_killed_at_random_moments_processes_every_record_at_least_once() {
    if child::role().is_some() {
        child(&child::dir(), child::param_u64(RUN_ENV), true);
        return;
    }
    parent(true);
}

/// How a run of the asynchronous test commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AsyncWay {
    /// `GroupMember::commit_async` every `K` records, handles dropped.
    CommitAsync,
    /// A `Committer` on another thread, told the positions every `K` records.
    Committer,
    /// `AutoCommit::Interval` (2 ms), no explicit commit.
    Auto,
}

fn async_way(run: u64) -> AsyncWay {
    [AsyncWay::CommitAsync, AsyncWay::Committer, AsyncWay::Auto][(run % 3) as usize]
}

fn run_file(dir: &Path, run: u64) -> PathBuf {
    dir.join("runs").join(format!("{run}.txt"))
}

fn done_file(dir: &Path, run: u64) -> PathBuf {
    dir.join("runs").join(format!("{run}.done"))
}

fn value(p: u32, o: u64) -> String {
    format!("job-{p}-{o}")
}

/// The worker: process and commit until the topic is drained (with
/// asynchronous commits in the way of `async_way(run)` if `asynchronous`).
fn child(dir: &Path, run: u64, asynchronous: bool) {
    let way = asynchronous.then(|| async_way(run));
    let broker = Broker::open(dir).unwrap();
    let topic = broker.topic(TOPIC).unwrap();
    let auto =
        if way == Some(AsyncWay::Auto) { AutoCommit::Interval(Duration::from_millis(2)) } else { AutoCommit::Off };
    let group = topic.group(GROUP).unwrap().auto_commit(auto);
    let mut member = group.join().unwrap();
    let (acks, acker) = if way == Some(AsyncWay::Committer) {
        let (tx, rx) = crossbeam_channel::unbounded::<Vec<(u32, u64)>>();
        let committer = member.committer();
        let acker = std::thread::spawn(move || {
            for positions in rx {
                // Ignored: the next one covers it, a crash re-delivers.
                drop(committer.commit_offsets_async(&positions));
            }
        });
        (Some(tx), Some(acker))
    } else {
        (None, None)
    };
    let mut out = std::fs::OpenOptions::new().create(true).append(true).open(run_file(dir, run)).unwrap();
    let mut since_commit = 0;
    while let Some(m) = member.try_recv().unwrap() {
        assert_eq!(m.value(), value(m.partition(), m.offset()).as_bytes(), "record damaged");
        // Process: one write(2) of one whole line, before any commit.
        out.write_all(format!("{} {}\n", m.partition(), m.offset()).as_bytes()).unwrap();
        since_commit += 1;
        if way.is_some() {
            // Slower than a write(2), so that kills find commits in flight.
            std::thread::sleep(Duration::from_micros(50));
        }
        if since_commit == K {
            match (way, &acks) {
                (None, _) => member.commit().unwrap(),
                (Some(AsyncWay::CommitAsync), _) => drop(member.commit_async()),
                (Some(AsyncWay::Committer), Some(tx)) => tx.send(member.positions()).unwrap(),
                _ => {}
            }
            since_commit = 0;
        }
    }
    drop(acks);
    if let Some(acker) = acker {
        acker.join().unwrap();
    }
    member.commit().unwrap();
    let lag = group.lag().unwrap();
    assert!(lag.iter().all(|l| l.lag == 0), "drained but lag remains: {lag:?}");
    member.close().unwrap();
    broker.close().unwrap();
    std::fs::write(done_file(dir, run), b"done").unwrap();
}

/// Complete lines of a run's file, parsed; a torn last line (the kill hit
/// mid-write) is not a processed record.
fn processed_lines(path: &Path) -> Vec<(u32, u64)> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    complete
        .lines()
        .map(|l| {
            let (p, o) = l.split_once(' ').unwrap_or_else(|| panic!("bad line {l:?} in {}", path.display()));
            (p.parse().unwrap(), o.parse().unwrap())
        })
        .collect()
}

fn line_count(path: &Path) -> u64 {
    std::fs::read(path).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count() as u64)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Killed during start-up or early processing (a time delay from spawn).
    KilledEarly,
    /// Killed after a number of processed records plus a short delay.
    KilledMidStream,
    /// Ran to the end by itself.
    Finished,
}

#[derive(Debug)]
struct Run {
    committed_before: BTreeMap<u32, u64>,
    lines: Vec<(u32, u64)>,
    fate: Fate,
}

fn parent(asynchronous: bool) {
    let (per_partition, kills) = match (support::soak(), asynchronous) {
        (true, _) => (7_000u64, 150u64),
        (false, false) => (1_000, 25),
        (false, true) => (600, 12),
    };
    let test_name = if asynchronous { ASYNC_TEST_NAME } else { TEST_NAME };
    let seed = Seed::from_env_or(0x6D69_6C6C);
    let started = Instant::now();

    let dir = TempDir::new("group-crash");
    {
        let broker = Broker::open(dir.path()).unwrap();
        let topic = broker.create_topic(TOPIC, TopicConfig::default().partitions(PARTITIONS)).unwrap();
        let producer = topic.producer();
        for p in 0..PARTITIONS {
            for chunk in (0..per_partition).collect::<Vec<_>>().chunks(1000) {
                producer.send_batch(chunk.iter().map(|&o| Record::new(value(p, o)).partition(p))).unwrap();
            }
        }
        broker.close().unwrap();
    }
    std::fs::create_dir_all(dir.join("runs")).unwrap();
    let mut lcg = seed.rng();
    let mut runs: Vec<Run> = Vec::new();

    for r in 0u64.. {
        assert!(r <= kills + 1, "the worker never finished on its own after the kills");
        let committed_before = read_committed(dir.path(), GROUP, TOPIC);
        let mut child = Monitored::spawn(child::command(test_name, "worker", dir.path()).env(RUN_ENV, r.to_string()));
        let path = run_file(dir.path(), r);
        let mut fate = Fate::Finished;
        let mut exited = None;
        if r < kills {
            if lcg.range(0, 5) == 0 {
                fate = Fate::KilledEarly;
                exited = child.exit_within(Duration::from_micros(lcg.range(0, 40_000)));
            } else {
                fate = Fate::KilledMidStream;
                let target = lcg.range(1, 150);
                let start = Instant::now();
                while exited.is_none() && line_count(&path) < target {
                    assert!(start.elapsed() < Duration::from_secs(60), "run {r}: no progress to {target} records");
                    exited = child.exit_within(Duration::from_micros(500));
                }
                if exited.is_none() {
                    exited = child.exit_within(Duration::from_micros(lcg.range(0, 3_000)));
                }
            }
        } else {
            exited = child.exit_within(Duration::from_secs(120));
            assert!(exited.is_some(), "run {r}: the worker did not finish within 120 s");
        }
        // Still running after the schedule's delay: SIGKILL.
        let stderr = if exited.is_none() { child.kill9() } else { child.wait() }.stderr;
        let finished = match exited {
            Some(status) => {
                assert!(status.success(), "run {r}: the worker failed ({status}):\n{stderr}");
                assert!(done_file(dir.path(), r).exists(), "run {r} exited without finishing:\n{stderr}");
                true
            }
            None => false,
        };
        if finished {
            fate = Fate::Finished;
        }
        runs.push(Run { committed_before, lines: processed_lines(&path), fate });
        if finished {
            break;
        }
    }

    // The final state, read twice: by our decoder and by the crate.
    let final_committed = read_committed(dir.path(), GROUP, TOPIC);
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.topic(TOPIC).unwrap();
    let group = topic.group(GROUP).unwrap();
    assert_eq!(group.committed().unwrap(), final_committed);
    assert_eq!(group.offsets_warning(), None);
    for p in 0..PARTITIONS {
        let hw = topic.high_watermark(p).unwrap();
        assert_eq!(hw, per_partition);
        assert_eq!(final_committed.get(&p), Some(&hw), "partition {p}: final commit is not the high watermark");
    }
    assert!(group.lag().unwrap().iter().all(|l| l.lag == 0));
    drop(group);
    broker.close().unwrap();

    // Check every run against the commits around it.
    let mut times_processed: BTreeMap<(u32, u64), u32> = BTreeMap::new();
    let (mut duplicates, mut max_run_duplicates, mut max_window, mut kills_with_window) = (0u64, 0u64, 0u64, 0u64);
    for (r, run) in runs.iter().enumerate() {
        let committed_after = runs.get(r + 1).map_or(&final_committed, |n| &n.committed_before);
        let mut next: BTreeMap<u32, u64> =
            (0..PARTITIONS).map(|p| (p, run.committed_before.get(&p).copied().unwrap_or(0))).collect();
        let mut run_duplicates = 0;
        for &(p, o) in &run.lines {
            let expected = next[&p];
            // Consecutive from the commit: no skip, and a duplicate can only
            // be a record at or after the committed offset (the window).
            assert_eq!(o, expected, "run {r}: partition {p} processed offset {o}, expected {expected}");
            *next.get_mut(&p).unwrap() += 1;
            let n = times_processed.entry((p, o)).or_default();
            if *n > 0 {
                run_duplicates += 1;
            }
            *n += 1;
        }
        // Asynchronous commits still in flight at a kill widen the window.
        assert!(
            asynchronous || run_duplicates <= K + u64::from(PARTITIONS),
            "run {r}: {run_duplicates} records processed again after one kill (K = {K})"
        );
        duplicates += run_duplicates;
        max_run_duplicates = max_run_duplicates.max(run_duplicates);
        let mut window = 0;
        for p in 0..PARTITIONS {
            let before = run.committed_before.get(&p).copied().unwrap_or(0);
            let after = committed_after.get(&p).copied().unwrap_or(0);
            assert!(after >= before, "run {r}: partition {p} commit went back from {before} to {after}");
            assert!(
                after <= next[&p],
                "run {r}: partition {p} committed {after} but processed only up to {}",
                next[&p]
            );
            window += next[&p] - after;
        }
        if run.fate == Fate::Finished {
            assert_eq!(window, 0, "the last run left records uncommitted");
        } else {
            assert!(
                asynchronous || window <= K,
                "run {r}: {window} processed records were uncommitted at the kill (K = {K})"
            );
            max_window = max_window.max(window);
            kills_with_window += u64::from(window > 0);
        }
    }
    for p in 0..PARTITIONS {
        for o in 0..per_partition {
            assert!(times_processed.contains_key(&(p, o)), "record {p}/{o} was never processed");
        }
    }
    let processed: u64 = runs.iter().map(|r| r.lines.len() as u64).sum();
    assert_eq!(processed, u64::from(PARTITIONS) * per_partition + duplicates);
    let count = |f: Fate| runs.iter().filter(|r| r.fate == f).count();
    eprintln!(
        "group crash test ({}, seed {seed}, K = {K}): {} runs, {} kills ({} early, {} mid-stream; {kills_with_window} \
         left processed records uncommitted, at most {max_window}); {processed} records processed for {} \
         stored: {duplicates} duplicates, at most {max_run_duplicates} after one kill; {:.1} s",
        if asynchronous { "asynchronous commits" } else { "blocking commits" },
        runs.len(),
        count(Fate::KilledEarly) + count(Fate::KilledMidStream),
        count(Fate::KilledEarly),
        count(Fate::KilledMidStream),
        u64::from(PARTITIONS) * per_partition,
        started.elapsed().as_secs_f64(),
    );
}
