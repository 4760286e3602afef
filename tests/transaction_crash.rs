//! Transactions against SIGKILL, in real child processes (this test binary
//! re-run with `--exact` in a role, see `support::child`).
//!
//! 1. A consume-transform-produce loop, killed cycle after cycle on ONE
//!    growing directory. The parent fills topic `in` (3 partitions); the
//!    child, a member of group `xf` that never commits on its own, reads a
//!    batch of input (1 to 120 records, or 800 to 3500 so that kills land
//!    during long commits), turns each input record into 0, 1 or 2 records
//!    of topic `out` (4 partitions; by key, by explicit partition, or round
//!    robin), adds one summary record to topic `audit` (2 partitions) naming
//!    the transaction and the input ranges it consumed, adds the member's
//!    positions, and commits; now and then it aborts or drops a transaction
//!    instead and seeks back. Meanwhile a plain producer thread writes topic
//!    `side` and the same `out` partitions with records of its own. The
//!    child prints `B` before each commit and `C` (with the `Committed`
//!    parts) after it returns; the parent aims its kills before, during and
//!    just after commits, and at random moments, also during start-up (the
//!    child's own recovery).
//!
//!    After EVERY kill the parent opens a copy of the directory and checks:
//!    each output record is there exactly once iff its input offset is below
//!    the group's committed offset for its input partition (and none of a
//!    later one); `audit` and `out` agree transaction by transaction (the
//!    audit ranges tile `0..committed` of every input partition; each
//!    transaction's `out` records are exactly the outputs of its ranges);
//!    every transaction whose commit returned is there, where `Committed`
//!    said; an aborted one, or one never begun, is not; a transaction in
//!    doubt (killed during its commit) is all there or not at all, and stays
//!    so; every partition's offsets are dense but for exactly one marker
//!    after each transaction's records (whose offsets are consecutive), and
//!    its high watermark is records + markers; per-partition order follows
//!    the input order; every acknowledged plain record is where `send` put
//!    it; committed offsets never go backwards; a second open repairs
//!    nothing. At the end a child processes all the input and the output
//!    must equal the model exactly.
//!
//! 2. A read-only follower in another process prints every record it
//!    receives while writer processes commit, abort and drop transactions
//!    and are killed in the middle of them: it must never print a record of
//!    an aborted or uncommitted transaction, never a part of a transaction's
//!    records on a partition without the rest, and must print exactly what
//!    the log finally holds. A read-only open of the directory after each
//!    kill, before a writer recovers it, shows only what the log keeps.
//!
//! 3. A child killed at moments spread over one commit (its shares rolled to
//!    new segments or larger than a segment): after recovery, nothing of it
//!    is partly there, and a next transaction with shares larger than a
//!    segment commits to the same partitions.
//!
//! Test 3 was written against a defect this file found: a share larger
//! than a segment failed to commit to a partition whose newest segment was
//! empty (as a kill mid-commit leaves one); such a segment is now closed
//! with a lone marker.
//!
//! `MILLPOND_SOAK=1` runs over 100 cycles and more follower rounds;
//! `MILLPOND_SEED=<n>` changes the schedule.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use millpond::{
    AutoCommit, Broker, Consumer, DumpEntry, Error, FsyncPolicy, Message, Record, SegmentDump, StartFrom, Topic,
    TopicConfig,
};
use support::child::{self, Monitored};
use support::dir::TempDir;
use support::layout::{partition_dir, segment_bases, segment_path};
use support::rng::{Lcg, Seed};
use support::soak;
use support::tree::copy_tree;

const TEST_NAME: &str = "consume_transform_produce_killed_at_random_moments_keeps_output_exactly_once";
const RUN_ENV: &str = "MILLPOND_TXC_RUN";
const FINISH_ENV: &str = "MILLPOND_TXC_FINISH";
const CAP_ENV: &str = "MILLPOND_TXC_CAP";
const DURABLE_ENV: &str = "MILLPOND_TXC_DURABLE";
const IN: &str = "in";
const IN_PARTS: u32 = 3;
const OUT: &str = "out";
const OUT_PARTS: u32 = 4;
const AUDIT: &str = "audit";
const AUDIT_PARTS: u32 = 2;
const SIDE: &str = "side";
const SIDE_PARTS: u32 = 2;
const GROUP: &str = "xf";
/// Input records per partition the parent writes at the start, and again
/// whenever fewer than [`LOW_INPUT`] are left unprocessed in a partition.
const FILL: u64 = 6000;
const LOW_INPUT: u64 = 4000;
/// Long enough for anything that should happen promptly on a busy machine.
const WAIT: Duration = Duration::from_secs(120);

/// `durable`: the audit topic syncs every write, and with it every
/// transaction (see the test).
fn config(topic: &str, durable: bool) -> TopicConfig {
    let base = TopicConfig::default().max_record_bytes(2048).index_interval_bytes(1024);
    match topic {
        IN => base.partitions(IN_PARTS).segment_bytes(32 << 10),
        // Small segments: large transactions' shares do not fit in one.
        OUT => base.partitions(OUT_PARTS).segment_bytes(64 << 10),
        AUDIT => base.partitions(AUDIT_PARTS).segment_bytes(16 << 10).fsync(if durable {
            FsyncPolicy::Always
        } else {
            FsyncPolicy::Never
        }),
        SIDE => base.partitions(SIDE_PARTS).segment_bytes(16 << 10),
        other => panic!("unknown topic {other}"),
    }
}

fn filler(n: u64, c: u64) -> String {
    std::iter::repeat_n(char::from(b'a' + (c % 26) as u8), n as usize).collect()
}

/// Input record `p`/`off`.
fn input_value(p: u32, off: u64) -> Vec<u8> {
    format!("in|{p}|{off}|{}", filler((off * 31 + u64::from(p) * 7) % 150, off)).into_bytes()
}

/// The suffixes of the output records of input offset `off`: none, one or
/// two records.
fn fanout(off: u64) -> &'static [u8] {
    match off % 10 {
        7 => b"",
        3 => b"ab",
        _ => b"a",
    }
}

/// `o|<input partition>|<input offset>|<suffix>|<tag>|<input value>`.
fn out_value(p: u32, off: u64, sfx: u8, tag: &str) -> Vec<u8> {
    let mut v = format!("o|{p}|{off}|{}|{tag}|", char::from(sfx)).into_bytes();
    v.extend_from_slice(&input_value(p, off));
    v
}

fn out_record(p: u32, off: u64, sfx: u8, tag: &str) -> Record<'static> {
    let r = Record::new(out_value(p, off, sfx, tag));
    match (off + u64::from(sfx)) % 3 {
        0 => r.key(format!("k{p}.{}", off % 17)),
        1 => r.partition(((u64::from(p) + off) % u64::from(OUT_PARTS)) as u32),
        _ => r, // round robin
    }
}

/// `p|<topic>|<partition>|<run>|<seq>|...`: a plain producer's record.
fn plain_value(topic: &str, p: u32, run: u64, seq: u64) -> Vec<u8> {
    format!("p|{topic}|{p}|{run}|{seq}|{}", filler((seq * 13) % 60, seq)).into_bytes()
}

/// Drops the `test <name> ... ` the harness may print before a child's
/// first line.
fn strip(line: &str) -> &str {
    line.rsplit_once(" ... ").map_or(line, |x| x.1)
}

fn say(text: &str) {
    let mut so = std::io::stdout().lock();
    so.write_all(text.as_bytes()).expect("stdout");
    so.flush().expect("stdout");
}

fn abort_on_panic() {
    // A panic on any thread ends the child at once (SIGABRT, not the
    // parent's SIGKILL), so the parent reports it with the child's stderr.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::abort();
    }));
}

// ---------------------------------------------------------------------------
// The transforming child.

fn xform_child() {
    abort_on_panic();
    let dir = child::dir();
    let run = child::param_u64(RUN_ENV);
    let finish = child::param(FINISH_ENV) == "1";
    let broker = Broker::open(&dir).expect("child: open");
    let mut out = String::new();
    for e in broker.recovery_report() {
        out.push_str(&format!("R {}/{} {}\n", e.topic, e.partition, e.reason.replace('\n', " ")));
    }
    say(&out);
    let durable = child::param(DURABLE_ENV) == "1";
    let topic = |name: &str| broker.create_topic(name, config(name, durable)).expect("child: topic");
    let (input, output, audit, side) = (topic(IN), topic(OUT), topic(AUDIT), topic(SIDE));
    fill_input(&input, child::param_u64(CAP_ENV));
    let stop = Arc::new(AtomicBool::new(false));
    let plain = {
        let (output, side, stop) = (output.clone(), side.clone(), Arc::clone(&stop));
        std::thread::spawn(move || plain_writer(run, &output, &side, &stop))
    };
    say("READY\n");
    transform(&broker, run, finish, &input, &output, &audit);
    stop.store(true, Ordering::Relaxed);
    plain.join().expect("child: plain writer");
    broker.close().expect("child: close");
    say("DONE\n");
}

/// Appends input where fewer than [`LOW_INPUT`] records are left to
/// process (the input is a function of partition and offset, so whatever
/// prefix of this a kill leaves is right).
fn fill_input(input: &Topic, cap: u64) {
    let committed = input.group(GROUP).expect("child: group").committed().expect("child: committed");
    let producer = input.producer();
    for p in 0..IN_PARTS {
        let end = input.high_watermark(p).expect("child: input end");
        if end - committed.get(&p).copied().unwrap_or(0) >= LOW_INPUT || end >= cap {
            continue;
        }
        producer
            .send_batch((end..end + FILL).map(|off| Record::new(input_value(p, off)).partition(p)))
            .expect("child: fill the input");
        say(&format!("I {p} {}\n", end + FILL));
    }
}

fn plain_writer(run: u64, output: &Topic, side: &Topic, stop: &AtomicBool) {
    let mut rng = Lcg::new(run ^ 0x9_1a1e);
    let mut seq = 0u64;
    let producers = [(OUT, OUT_PARTS, output.producer()), (SIDE, SIDE_PARTS, side.producer())];
    while !stop.load(Ordering::Relaxed) {
        let (name, parts, producer) = &producers[rng.range(0, 2) as usize];
        let mut recs = Vec::new();
        let mut seqs = Vec::new();
        for _ in 0..rng.range(1, 5) {
            let p = rng.range(0, u64::from(*parts)) as u32;
            recs.push(Record::new(plain_value(name, p, run, seq)).partition(p));
            seqs.push(seq);
            seq += 1;
        }
        let ids = producer.send_batch(recs).expect("child: plain send_batch");
        let mut text = String::new();
        for (id, s) in ids.iter().zip(&seqs) {
            text.push_str(&format!("P {name} {} {} {run} {s}\n", id.partition, id.offset));
        }
        say(&text);
        std::thread::sleep(Duration::from_micros(rng.range(1000, 5000)));
    }
}

fn caught_up(member: &millpond::GroupMember, input: &Topic) -> bool {
    (0..IN_PARTS).all(|p| matches!((member.position(p), input.high_watermark(p)), (Ok(pos), Ok(hw)) if pos >= hw))
}

fn transform(broker: &Broker, run: u64, finish: bool, input: &Topic, output: &Topic, audit: &Topic) {
    let group = input.group(GROUP).expect("child: group").auto_commit(AutoCommit::Off).commit_on_revoke(false);
    let mut member = group.join().expect("child: join");
    let committed = group.committed().expect("child: committed");
    // Where the group resumes: its committed offsets, or the start.
    let mut next: BTreeMap<u32, u64> = (0..IN_PARTS).map(|p| (p, committed.get(&p).copied().unwrap_or(0))).collect();
    let mut rng = Lcg::new(run.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x7ac7);
    let mut seq = 0u64;
    loop {
        let want = if rng.chance(1, 4) { rng.range(800, 3500) } else { rng.range(1, 120) } as usize;
        let mut msgs: Vec<Message> = Vec::new();
        let give_up = Instant::now() + Duration::from_millis(300);
        while msgs.len() < want {
            let got = member.poll(want - msgs.len(), Duration::from_millis(10)).expect("child: poll");
            if got.is_empty() && (caught_up(&member, input) || Instant::now() > give_up) {
                break;
            }
            msgs.extend(got);
        }
        if msgs.is_empty() {
            if finish && caught_up(&member, input) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        // The input arrives in order from where the group resumed.
        let mut ranges: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
        for m in &msgs {
            let (p, off) = (m.partition(), m.offset());
            let n = next.get_mut(&p).expect("an input partition");
            assert_eq!(off, *n, "child: input partition {p} delivered offset {off}, expected {n}");
            *n += 1;
            assert_eq!(m.value(), input_value(p, off).as_slice(), "child: input {p}/{off} damaged");
            ranges.entry(p).or_insert((off, off)).1 = off + 1;
        }
        let tag = format!("{run}.{seq}");
        seq += 1;
        let mut recs = Vec::new();
        for m in &msgs {
            for &s in fanout(m.offset()) {
                recs.push(out_record(m.partition(), m.offset(), s, &tag));
            }
        }
        let nout = recs.len();
        let summary: Vec<String> = ranges.iter().map(|(p, (a, b))| format!("{p}:{a}-{b}")).collect();
        let summary = Record::new(format!("{tag}|{nout}|{}", summary.join(","))).key(tag.clone());
        let mut txn = broker.transaction().expect("child: transaction");
        let offsets_first = rng.chance(1, 2);
        if offsets_first {
            txn.commit_offsets(&mut member).expect("child: commit_offsets");
        }
        let audit_first = rng.chance(1, 2);
        if audit_first {
            txn.send(audit, summary.clone()).expect("child: send audit");
        }
        match rng.range(0, 3) {
            0 => {
                for r in recs {
                    txn.send(output, r).expect("child: send");
                }
            }
            1 => txn.send_batch(output, recs).expect("child: send_batch"),
            _ => {
                while !recs.is_empty() {
                    let k = (rng.range(1, 300) as usize).min(recs.len());
                    txn.send_batch(output, recs.drain(..k)).expect("child: send_batch");
                }
            }
        }
        if !audit_first {
            txn.send(audit, summary).expect("child: send audit");
        }
        if !offsets_first {
            txn.commit_offsets(&mut member).expect("child: commit_offsets");
        }
        assert_eq!(txn.len(), nout + 1, "child: the transaction holds what was sent");
        if rng.chance(1, 12) {
            say(&format!("X {tag}\n"));
            if rng.chance(1, 2) {
                txn.abort();
            } else {
                drop(txn);
            }
            for (p, (from, _)) in &ranges {
                member.seek(*p, *from).expect("child: seek back");
                next.insert(*p, *from);
            }
            continue;
        }
        let positions = member.positions();
        say(&format!("B {tag} {nout}\n"));
        let done = txn.commit().expect("child: commit");
        let parts: Vec<String> = done
            .parts()
            .iter()
            .map(|c| format!("{}:{}:{}:{}", c.topic(), c.partition(), c.first_offset(), c.records()))
            .collect();
        say(&format!("C {tag} {}\n", parts.join(" ")));
        assert_eq!(done.records(), nout as u64 + 1, "child: Committed counts every record");
        let now = group.committed().expect("child: committed");
        for (p, pos) in positions {
            assert_eq!(now.get(&p), Some(&pos), "child: after commit, group offset of {p} is the member's position");
        }
        if rng.chance(1, 3) {
            std::thread::sleep(Duration::from_millis(rng.range(0, 4)));
        }
    }
}

// ---------------------------------------------------------------------------
// The parent: what the children said.

#[derive(Default)]
struct Model {
    /// Tags whose commit began (`B`), with their number of `out` records.
    begun: BTreeMap<String, u64>,
    /// Tags whose commit returned (`C`), with the parts `Committed` gave.
    returned: BTreeMap<String, Vec<(String, u32, u64, u64)>>,
    /// Tags aborted or dropped (`X`), or in doubt and found not committed.
    aborted: BTreeSet<String>,
    /// Tags in doubt and found committed: they must stay.
    settled: BTreeSet<String>,
    /// Acknowledged plain records: `(topic, partition, offset) -> value`.
    plain: BTreeMap<(String, u32, u64), Vec<u8>>,
    /// The group's committed offsets found after the last kill.
    committed: BTreeMap<u32, u64>,
    /// Input records per partition, as found after the last kill.
    input_end: BTreeMap<u32, u64>,
    /// Recovery events in the children (`R` lines).
    child_recoveries: Vec<String>,
}

impl Model {
    fn parse(&mut self, line: &str, label: &str) {
        let f: Vec<&str> = strip(line).split_whitespace().collect();
        match f.first().copied() {
            Some("B") => {
                let prev = self.begun.insert(f[1].to_string(), f[2].parse().unwrap());
                assert!(prev.is_none(), "{label}: tag {} begun twice", f[1]);
            }
            Some("C") => {
                let parts = f[2..]
                    .iter()
                    .map(|p| {
                        let x: Vec<&str> = p.split(':').collect();
                        (x[0].to_string(), x[1].parse().unwrap(), x[2].parse().unwrap(), x[3].parse().unwrap())
                    })
                    .collect();
                self.returned.insert(f[1].to_string(), parts);
            }
            Some("X") => {
                self.aborted.insert(f[1].to_string());
            }
            Some("P") => {
                let (t, p, off, run, seq) =
                    (f[1], f[2].parse().unwrap(), f[3].parse().unwrap(), f[4].parse().unwrap(), f[5].parse().unwrap());
                self.plain.insert((t.to_string(), p, off), plain_value(t, p, run, seq));
            }
            Some("R") => self.child_recoveries.push(f[1..].join(" ")),
            _ => {}
        }
    }
}

/// How the parent chooses the moment of a kill.
#[derive(Debug, Clone, Copy)]
enum Aim {
    /// During start-up: opening (recovering) the directory, joining.
    StartUp,
    /// A random moment after READY.
    Random,
    /// Shortly after the `B` of a large transaction: during its commit.
    LargeCommit,
    /// Shortly after any `B`.
    AnyCommit,
    /// Right after a commit returned.
    AfterCommit,
}

fn aim(rng: &mut Lcg) -> Aim {
    match rng.range(0, 20) {
        0..=1 => Aim::StartUp,
        2..=5 => Aim::Random,
        6..=12 => Aim::LargeCommit,
        13..=16 => Aim::AnyCommit,
        _ => Aim::AfterCommit,
    }
}

/// Runs one child until the parent kills it; the child's lines go to the
/// model.
fn run_cycle(
    dir: &Path,
    run: u64,
    cap: u64,
    durable: bool,
    rng: &mut Lcg,
    model: &mut Model,
    label: &str,
) -> (Aim, Duration) {
    let how = aim(rng);
    let mut child = Monitored::spawn(
        child::command(TEST_NAME, "xform", dir)
            .env(RUN_ENV, run.to_string())
            .env(FINISH_ENV, "0")
            .env(CAP_ENV, cap.to_string())
            .env(DURABLE_ENV, if durable { "1" } else { "0" })
            .env("RUST_BACKTRACE", "0"),
    );
    let mut lines = Vec::new();
    let exited = format!("{label}: the child exited before it was killed");
    let start = Instant::now();
    let mut kill_at = match how {
        Aim::StartUp => Some(start + Duration::from_millis(rng.range(1, 60))),
        _ => None,
    };
    let mut ready = false;
    // Which `B` (or `C`) line triggers the kill, and how long after.
    let nth = rng.range(1, 4);
    let mut seen = 0;
    let delay = match how {
        // A large commit takes a few to tens of milliseconds.
        Aim::LargeCommit => {
            let within = 1 + rng.range(1, 40) * 1000;
            Duration::from_micros(rng.range(0, within))
        }
        Aim::AnyCommit => Duration::from_micros(rng.range(0, 1500)),
        Aim::AfterCommit => Duration::from_micros(rng.range(0, 300)),
        _ => Duration::from_millis(rng.range(10, 400)),
    };
    loop {
        let deadline = kill_at.unwrap_or(start + WAIT);
        match child.next_line(deadline) {
            Ok(l) => {
                let s = strip(&l);
                let trigger = match how {
                    Aim::StartUp => false,
                    Aim::Random => s == "READY",
                    Aim::LargeCommit => {
                        s.starts_with("B ")
                            && s.split(' ').nth(2).and_then(|n| n.parse::<u64>().ok()).is_some_and(|n| n >= 500)
                    }
                    Aim::AnyCommit => s.starts_with("B "),
                    Aim::AfterCommit => s.starts_with("C "),
                };
                ready |= s == "READY";
                if trigger && kill_at.is_none() {
                    seen += 1;
                    if seen >= nth || matches!(how, Aim::Random) {
                        kill_at = Some(Instant::now() + delay);
                    }
                }
                // A guard: a child that never triggers is killed anyway.
                if ready && kill_at.is_none() && start.elapsed() > Duration::from_secs(5) {
                    kill_at = Some(Instant::now());
                }
                lines.push(l);
            }
            Err(RecvTimeoutError::Timeout) if kill_at.is_some() => break,
            Err(RecvTimeoutError::Timeout) => child.fail(&format!("{label}: the child never reached its kill point")),
            Err(RecvTimeoutError::Disconnected) => child.fail(&exited),
        }
    }
    if child.has_exited() {
        child.fail(&exited);
    }
    let killed = child.kill9();
    if killed.status.signal() != Some(libc::SIGKILL) {
        panic!("{label}: child ended with {:?}, not SIGKILL:\n{}", killed.status, killed.stderr);
    }
    lines.extend(killed.rest);
    for l in &lines {
        model.parse(l, label);
    }
    (how, delay)
}

/// Every record of one partition, in order.
fn read_partition(topic: &Topic, p: u32) -> Vec<Message> {
    let mut c = topic.consumer_of(&[p], StartFrom::Earliest).expect("consumer");
    let mut out = Vec::new();
    while let Some(m) = c.try_recv().unwrap_or_else(|e| panic!("reading {}/{p}: {e}", topic.name())) {
        out.push(m);
    }
    out
}

/// The offsets of the lone commit markers (no transaction's: id 0) in one
/// partition. A transaction's share too large for an empty active segment
/// rolls past it with one; each must be the only frame of its segment, and
/// a later segment must follow it.
fn lone_markers(label: &str, dir: &Path, topic: &str, p: u32) -> BTreeSet<u64> {
    let bases = segment_bases(dir, topic, p);
    let mut lone = BTreeSet::new();
    for (i, base) in bases.iter().enumerate() {
        let dump = SegmentDump::open(segment_path(dir, topic, p, *base))
            .unwrap_or_else(|e| panic!("{label}: {topic}/{p}: dumping segment {base}: {e}"));
        let frames: Vec<_> = dump
            .frames()
            .filter_map(|e| match e {
                Ok(DumpEntry::Frame(f)) => Some(f),
                _ => None,
            })
            .collect();
        for f in &frames {
            if f.commit_marker && f.transaction == Some(0) {
                assert_eq!(
                    frames.len(),
                    1,
                    "{label}: {topic}/{p}: lone marker {} shares segment {base}",
                    f.base_offset
                );
                assert!(i + 1 < bases.len(), "{label}: {topic}/{p}: lone marker {} ends the log", f.base_offset);
                assert_eq!(bases[i + 1], f.base_offset + 1, "{label}: {topic}/{p}: a lone marker precedes a roll");
                lone.insert(f.base_offset);
            }
        }
    }
    lone
}

/// Offsets are dense but for one marker after each run of records of one
/// transaction (`Some(tag)`) and the lone markers of segment rolls (read
/// from the files in `dir`); the high watermark is the end; a transaction
/// appears in one run only.
fn check_offsets(label: &str, dir: &Path, (topic, p): (&str, u32), recs: &[(u64, Option<&str>)], hw: u64) {
    let at = format!("{topic}/{p}");
    let lone = lone_markers(label, dir, topic, p);
    let mut expect = 0;
    let skip_lone = |mut e: u64| {
        while lone.contains(&e) {
            e += 1;
        }
        e
    };
    let mut runs = BTreeSet::new();
    for (i, (off, tag)) in recs.iter().enumerate() {
        expect = skip_lone(expect);
        assert_eq!(*off, expect, "{label}: {at}: record at offset {off}, expected {expect} (tag {tag:?})");
        let next_tag = recs.get(i + 1).map(|r| r.1);
        let ends_run = tag.is_some() && next_tag != Some(*tag);
        if let (Some(t), true) = (tag, i == 0 || recs[i - 1].1 != *tag) {
            assert!(runs.insert(*t), "{label}: {at}: transaction {t}'s records are not consecutive");
        }
        expect = off + 1 + u64::from(ends_run);
    }
    let expect = skip_lone(expect);
    assert_eq!(hw, expect, "{label}: {at}: high watermark {hw}; records and markers end at {expect}");
}

struct Verdict {
    /// Recovery events whose reason mentions a transaction.
    txn_events: usize,
    events: Vec<String>,
    /// `(topic, partition, reason)` of each recovery event.
    report: Vec<(String, u32, String)>,
    /// Transactions committed (the audit's tags).
    visible: BTreeSet<String>,
    out_records: usize,
    /// The group's committed offsets.
    committed: BTreeMap<u32, u64>,
    /// Input records per partition.
    input_end: BTreeMap<u32, u64>,
}

/// A committed transaction as the audit tells it: `(out records, input
/// ranges, audit partition, audit offset)`.
type AuditEntry = (u64, Vec<(u32, u64, u64)>, u32, u64);

/// Parses an audit value: `(tag, out records, [(input partition, from, to)])`.
fn parse_audit(v: &[u8]) -> (String, u64, Vec<(u32, u64, u64)>) {
    let s = std::str::from_utf8(v).expect("audit value is text");
    let f: Vec<&str> = s.split('|').collect();
    let ranges = f[2]
        .split(',')
        .map(|r| {
            let (p, ab) = r.split_once(':').unwrap();
            let (a, b) = ab.split_once('-').unwrap();
            (p.parse().unwrap(), a.parse().unwrap(), b.parse().unwrap())
        })
        .collect();
    (f[0].to_string(), f[1].parse().unwrap(), ranges)
}

/// Checks a broker directory (a copy) against the model.
fn verify(label: &str, dir: &Path, model: &Model, finished: bool) -> Verdict {
    let broker = Broker::open(dir).unwrap_or_else(|e| panic!("{label}: open after the kill: {e}"));
    let report = broker.recovery_report();
    let events: Vec<String> = report
        .iter()
        .map(|e| format!("{}/{}: {} ({} bytes)", e.topic, e.partition, e.reason, e.dropped_bytes))
        .collect();
    let txn_events = report.iter().filter(|e| e.reason.to_lowercase().contains("transaction")).count();
    let topic = |name: &str| broker.topic(name).unwrap_or_else(|e| panic!("{label}: topic {name}: {e}"));
    let (input, output, audit, side) = (topic(IN), topic(OUT), topic(AUDIT), topic(SIDE));

    // The group's offsets: within the input, never going back.
    let committed = input.group(GROUP).unwrap().committed().unwrap_or_else(|e| panic!("{label}: committed: {e}"));
    let committed: BTreeMap<u32, u64> = (0..IN_PARTS).map(|p| (p, committed.get(&p).copied().unwrap_or(0))).collect();
    let mut input_end = BTreeMap::new();
    for p in 0..IN_PARTS {
        let hw = input.high_watermark(p).unwrap();
        let known = model.input_end[&p];
        assert!(hw >= known, "{label}: input partition {p} ends at {hw}, it held {known} records");
        let mut c = input.consumer_of(&[p], StartFrom::Offset(known)).unwrap();
        for off in known..hw {
            let m = c.try_recv().unwrap_or_else(|e| panic!("{label}: reading input {p}/{off}: {e}"));
            let m = m.unwrap_or_else(|| panic!("{label}: input {p}/{off} below the end {hw} cannot be read"));
            assert_eq!((m.offset(), m.value()), (off, input_value(p, off).as_slice()), "{label}: input {p}/{off}");
        }
        input_end.insert(p, hw);
        assert!(committed[&p] <= hw, "{label}: group offset {} of {p} beyond the input's end {hw}", committed[&p]);
        let before = model.committed.get(&p).copied().unwrap_or(0);
        assert!(committed[&p] >= before, "{label}: group offset of {p} went back from {before} to {}", committed[&p]);
        if finished {
            assert_eq!(committed[&p], hw, "{label}: the finished child processed all of input partition {p}");
        }
    }

    // The audit: one record per committed transaction.
    let mut txns: BTreeMap<String, AuditEntry> = BTreeMap::new();
    for p in 0..AUDIT_PARTS {
        let msgs = read_partition(&audit, p);
        let mut recs = Vec::new();
        for m in &msgs {
            let (tag, n, ranges) = parse_audit(m.value());
            assert_eq!(m.key(), Some(tag.as_bytes()), "{label}: audit record {tag} has its tag as key");
            recs.push((m.offset(), tag.clone()));
            let prev = txns.insert(tag.clone(), (n, ranges, p, m.offset()));
            assert!(prev.is_none(), "{label}: transaction {tag} is in the audit twice");
        }
        let offsets: Vec<(u64, Option<&str>)> = recs.iter().map(|(o, t)| (*o, Some(t.as_str()))).collect();
        check_offsets(label, dir, (AUDIT, p), &offsets, audit.high_watermark(p).unwrap());
    }
    let visible: BTreeSet<String> = txns.keys().cloned().collect();
    for (tag, (n, _, _, _)) in &txns {
        assert!(!model.aborted.contains(tag), "{label}: aborted transaction {tag} is visible");
        match model.begun.get(tag) {
            Some(b) => assert_eq!(b, n, "{label}: transaction {tag}'s audit says {n} records, its child said {b}"),
            None => panic!("{label}: transaction {tag} is visible but its commit never began"),
        }
    }
    for tag in model.returned.keys().chain(&model.settled) {
        assert!(visible.contains(tag), "{label}: transaction {tag} committed (its commit returned) but is gone");
    }
    // Its ranges tile each input partition from 0 to the committed offset.
    for p in 0..IN_PARTS {
        let mut ranges: Vec<(u64, u64, &str)> = txns
            .iter()
            .flat_map(|(t, (_, r, _, _))| r.iter().filter(|x| x.0 == p).map(move |x| (x.1, x.2, t.as_str())))
            .collect();
        ranges.sort();
        let mut end = 0;
        for (a, b, t) in &ranges {
            assert_eq!(
                *a, end,
                "{label}: input {p}: transaction {t} consumed {a}..{b}, but the previous ended at {end}"
            );
            assert!(b > a, "{label}: empty range");
            end = *b;
        }
        assert_eq!(
            end, committed[&p],
            "{label}: input {p}: committed transactions consumed 0..{end}, the group's offset is {}",
            committed[&p]
        );
    }
    let by_start: BTreeMap<(u32, u64), (u64, &str)> =
        txns.iter().flat_map(|(t, (_, r, _, _))| r.iter().map(move |x| ((x.0, x.1), (x.2, t.as_str())))).collect();
    let tag_of = |p: u32, off: u64| -> Option<&str> {
        by_start.range((p, 0)..=(p, off)).next_back().filter(|(_, (to, _))| off < *to).map(|(_, (_, t))| *t)
    };

    // The output.
    let mut outputs: BTreeMap<(u32, u64, u8), (String, u32, u64)> = BTreeMap::new();
    let mut per_tag: BTreeMap<(String, u32), Vec<u64>> = BTreeMap::new();
    let mut plain_seen: BTreeMap<(String, u32, u64), Vec<u8>> = BTreeMap::new();
    let mut out_records = 0;
    for op in 0..OUT_PARTS {
        let msgs = read_partition(&output, op);
        out_records += msgs.len();
        let mut recs: Vec<(u64, Option<String>)> = Vec::new();
        let mut last_input: BTreeMap<u32, (u64, u8)> = BTreeMap::new();
        for m in &msgs {
            let v = m.value();
            let at = format!("{label}: {OUT}/{op}/{}", m.offset());
            if v.starts_with(b"p|") {
                plain_seen.insert((OUT.to_string(), op, m.offset()), v.to_vec());
                recs.push((m.offset(), None));
                continue;
            }
            let s = std::str::from_utf8(v).unwrap_or_else(|_| panic!("{at}: not text"));
            let f: Vec<&str> = s.splitn(6, '|').collect();
            assert!(f.len() == 6 && f[0] == "o", "{at}: foreign record {s:?}");
            let (ip, ioff, sfx, tag): (u32, u64, u8, &str) =
                (f[1].parse().unwrap(), f[2].parse().unwrap(), f[3].as_bytes()[0], f[4]);
            assert_eq!(v, out_value(ip, ioff, sfx, tag).as_slice(), "{at}: damaged");
            assert!(fanout(ioff).contains(&sfx), "{at}: input {ip}/{ioff} has no output {}", char::from(sfx));
            assert!(
                ioff < committed[&ip],
                "{at}: output of input {ip}/{ioff} (transaction {tag}), above the group's offset {}: an uncommitted batch's output",
                committed[&ip]
            );
            assert_eq!(
                tag_of(ip, ioff),
                Some(tag),
                "{at}: output of input {ip}/{ioff} written by transaction {tag}, but the audit gives that input to another"
            );
            if let Some(prev) = outputs.insert((ip, ioff, sfx), (tag.to_string(), op, m.offset())) {
                panic!("{at}: output {ip}/{ioff}/{} is there twice (first at {prev:?})", char::from(sfx));
            }
            if let Some(prev) = last_input.insert(ip, (ioff, sfx)) {
                assert!(prev < (ioff, sfx), "{at}: output of input {ip}/{ioff} after that of {prev:?}: order lost");
            }
            per_tag.entry((tag.to_string(), op)).or_default().push(m.offset());
            recs.push((m.offset(), Some(tag.to_string())));
        }
        let offsets: Vec<(u64, Option<&str>)> = recs.iter().map(|(o, t)| (*o, t.as_deref())).collect();
        check_offsets(label, dir, (OUT, op), &offsets, output.high_watermark(op).unwrap());
    }
    for p in 0..IN_PARTS {
        for off in 0..committed[&p] {
            for &s in fanout(off) {
                assert!(
                    outputs.contains_key(&(p, off, s)),
                    "{label}: output {p}/{off}/{} is missing, though the group committed {p} up to {}",
                    char::from(s),
                    committed[&p]
                );
            }
        }
    }
    for (tag, (n, _, ap, aoff)) in &txns {
        let got: usize = per_tag.iter().filter(|((t, _), _)| t == tag).map(|(_, v)| v.len()).sum();
        assert_eq!(got as u64, *n, "{label}: transaction {tag}: {got} output records, its audit says {n}");
        if let Some(parts) = model.returned.get(tag) {
            let mut want: Vec<(String, u32, u64, u64)> = per_tag
                .iter()
                .filter(|((t, _), _)| t == tag)
                .map(|((_, p), offs)| (OUT.to_string(), *p, offs[0], offs.len() as u64))
                .collect();
            want.push((AUDIT.to_string(), *ap, *aoff, 1));
            want.sort();
            assert_eq!(parts, &want, "{label}: transaction {tag}: Committed said {parts:?}; the log holds {want:?}");
        }
    }

    // The plain records: every acknowledged one where `send` put it.
    for p in 0..SIDE_PARTS {
        let msgs = read_partition(&side, p);
        let offsets: Vec<(u64, Option<&str>)> = msgs.iter().map(|m| (m.offset(), None)).collect();
        check_offsets(label, dir, (SIDE, p), &offsets, side.high_watermark(p).unwrap());
        for m in &msgs {
            plain_seen.insert((SIDE.to_string(), p, m.offset()), m.value().to_vec());
        }
    }
    for ((t, p, off), v) in &plain_seen {
        let s = String::from_utf8_lossy(v);
        let f: Vec<&str> = s.split('|').collect();
        assert!(
            f.len() == 6 && f[1] == t && f[2] == p.to_string(),
            "{label}: {t}/{p}/{off} holds a plain record of elsewhere: {s}"
        );
        let (run, seq) = (f[3].parse().unwrap(), f[4].parse().unwrap());
        assert_eq!(v, &plain_value(t, *p, run, seq), "{label}: {t}/{p}/{off}: damaged");
    }
    for (key, v) in &model.plain {
        match plain_seen.get(key) {
            Some(got) => assert_eq!(got, v, "{label}: {key:?} holds another record than the one acknowledged there"),
            None => panic!("{label}: acknowledged plain record {key:?} is gone"),
        }
    }
    broker.close().unwrap();
    drop((input, output, audit, side, broker));
    let again = Broker::open(dir).unwrap_or_else(|e| panic!("{label}: second open: {e}"));
    assert_eq!(again.recovery_report(), vec![], "{label}: a second open repairs nothing");
    let committed_again = again.topic(IN).unwrap().group(GROUP).unwrap().committed().unwrap();
    for p in 0..IN_PARTS {
        assert_eq!(
            committed_again.get(&p).copied().unwrap_or(0),
            committed[&p],
            "{label}: the group's offsets changed across a clean reopen"
        );
    }
    let report = report.iter().map(|e| (e.topic.clone(), e.partition, e.reason.clone())).collect();
    Verdict { txn_events, events, report, visible, out_records, committed, input_end }
}

/// The partitions of `out` and `audit` whose last segment files hold
/// (valid) frames with records of transaction `tag`, read with
/// `SegmentDump` before any broker opens the directory. An undecided
/// transaction's records are at the end of a partition, in one segment.
fn on_disk(dir: &Path, tag: &str) -> BTreeSet<(String, u32)> {
    frames_with(dir, &[(OUT, OUT_PARTS), (AUDIT, AUDIT_PARTS)], tag)
}

/// The partitions of `topics` whose last two segments hold valid frames
/// with a record of transaction `tag` (`...|<tag>|...` or `<tag>|...`).
fn frames_with(dir: &Path, topics: &[(&str, u32)], tag: &str) -> BTreeSet<(String, u32)> {
    let mut found = BTreeSet::new();
    let needle = format!("|{tag}|");
    for &(topic, parts) in topics {
        for p in 0..parts {
            if !partition_dir(dir, topic, p).is_dir() {
                continue; // a topic this run does not have
            }
            let bases = segment_bases(dir, topic, p);
            for base in bases.iter().rev().take(2) {
                let Ok(dump) = SegmentDump::open(segment_path(dir, topic, p, *base)) else { continue };
                for entry in dump.frames() {
                    let Ok(DumpEntry::Frame(frame)) = entry else { break };
                    let hit = frame.records().iter().any(|r| {
                        r.value.as_deref().is_some_and(|v| {
                            let v = String::from_utf8_lossy(v);
                            v.contains(&needle) || v.starts_with(&format!("{tag}|"))
                        })
                    });
                    if hit {
                        found.insert((topic.to_string(), p));
                    }
                }
            }
        }
    }
    found
}

/// Appends input until every partition has at least [`LOW_INPUT`]
/// unprocessed records (opening the directory itself: this recovers it
/// in the parent instead of the next child, now and then).
fn top_up(dir: &Path, model: &mut Model, cap: u64, durable: bool) -> Vec<String> {
    let broker = Broker::open(dir).expect("parent: open to fill the input");
    let events = broker.recovery_report().iter().map(|e| e.reason.clone()).collect();
    let input = broker.create_topic(IN, config(IN, durable)).unwrap();
    for name in [OUT, AUDIT, SIDE] {
        broker.create_topic(name, config(name, durable)).unwrap();
    }
    // One plain record in each `out` partition first, so that the model's
    // offsets need not allow for the lone marker that closes an empty first
    // segment too small for a share.
    let output = broker.topic(OUT).unwrap();
    for p in 0..OUT_PARTS {
        if output.high_watermark(p).unwrap() == 0 {
            let v = plain_value(OUT, p, u64::MAX, 0);
            let id = output.producer().send(Record::new(v.clone()).partition(p)).unwrap();
            model.plain.insert((OUT.to_string(), p, id.offset), v);
        }
    }
    let producer = input.producer();
    for p in 0..IN_PARTS {
        let end = model.input_end.entry(p).or_insert(0);
        let done = model.committed.get(&p).copied().unwrap_or(0);
        if *end - done >= LOW_INPUT || *end >= cap {
            continue;
        }
        let ids = producer
            .send_batch((*end..*end + FILL).map(|off| Record::new(input_value(p, off)).partition(p)))
            .expect("parent: fill the input");
        assert_eq!(ids.first().map(|i| i.offset), Some(*end), "parent: the input is dense");
        *end += FILL;
    }
    broker.close().unwrap();
    events
}

/// What the cycles found, over all epochs.
#[derive(Default)]
struct Stats {
    cycles: u64,
    kills: BTreeMap<String, usize>,
    committed: usize,
    aborted_by_children: usize,
    plain: usize,
    in_doubt_committed: usize,
    in_doubt_aborted: usize,
    in_doubt_on_disk: usize,
    /// Recoveries (of a copy, by the parent) with an event naming a transaction.
    txn_recoveries: usize,
    txn_events: usize,
    /// Recoveries of the directory itself, by the parent filling the input.
    parent_txn_recoveries: usize,
    child_recoveries: usize,
}

#[test]
fn consume_transform_produce_killed_at_random_moments_keeps_output_exactly_once() {
    match child::role().as_deref() {
        Some("xform") => return xform_child(),
        Some(_) => return,
        None => {}
    }
    let seed = Seed::from_env_or(20_261_203);
    // Each epoch is a fresh directory, so that the soak's many cycles do
    // not make each check read an ever larger log. The audit topic syncs
    // every write (`FsyncPolicy::Always`) in even epochs: then a commit
    // syncs its records before it decides, and the decision before it
    // returns, which widens both windows a kill can land in.
    let (epochs, cycles) = if soak() { (5, 24) } else { (1, 18) };
    let mut rng = seed.rng();
    let started = Instant::now();
    let mut stats = Stats::default();
    for epoch in 0..epochs {
        run_epoch(epoch, cycles, epoch % 2 == 0, &mut rng, &seed, &mut stats);
    }
    eprintln!(
        "{} cycles in {epochs} epochs, {:?} (kills {:?}): {} transactions committed ({} aborted by the children), \
         {} plain records; commits in doubt at a kill: {} found committed, {} found aborted, {} of them with \
         records on disk; recoveries (of a copy, after a kill) that found a transaction to abort or complete: {} \
         ({} events); recoveries by the parent filling the input that did: {}; recovery events in the children: {}",
        stats.cycles,
        started.elapsed(),
        stats.kills,
        stats.committed,
        stats.aborted_by_children,
        stats.plain,
        stats.in_doubt_committed,
        stats.in_doubt_aborted,
        stats.in_doubt_on_disk,
        stats.txn_recoveries,
        stats.txn_events,
        stats.parent_txn_recoveries,
        stats.child_recoveries,
    );
}

fn run_epoch(epoch: u64, cycles: u64, durable: bool, rng: &mut Lcg, seed: &Seed, stats: &mut Stats) {
    let cap = 30_000;
    let tmp = TempDir::new("txn-crash");
    let dir = tmp.join("broker");
    let mut model = Model::default();
    top_up(&dir, &mut model, cap, durable);
    let mut in_doubt_aborted = 0;
    for run in 0..cycles {
        let label = format!("epoch {epoch} cycle {run} (seed {seed})");
        let cycle_start = Instant::now();
        if run % 5 == 4 {
            let events = top_up(&dir, &mut model, cap, durable);
            stats.parent_txn_recoveries += usize::from(events.iter().any(|r| r.to_lowercase().contains("transaction")));
        }
        let (how, delay) = run_cycle(&dir, run, cap, durable, rng, &mut model, &label);
        *stats.kills.entry(format!("{how:?}")).or_default() += 1;
        let copy = TempDir::new("txn-crash-copy");
        copy_tree(&dir, copy.path());
        // The transaction of this run whose commit began but did not
        // return: found committed or not, it must stay so.
        let prefix = format!("{run}.");
        let doubt: Vec<String> = model
            .begun
            .keys()
            .filter(|t| t.starts_with(&prefix) && !model.returned.contains_key(*t))
            .cloned()
            .collect();
        assert!(doubt.len() <= 1, "{label}: more than one transaction in doubt: {doubt:?}");
        let written: Vec<BTreeSet<(String, u32)>> = doubt.iter().map(|t| on_disk(copy.path(), t)).collect();
        let v = verify(&label, copy.path(), &model, false);
        let mut doubt_fate = "none".to_string();
        for (t, written) in doubt.into_iter().zip(written) {
            let fate = if v.visible.contains(&t) { "committed" } else { "aborted" };
            doubt_fate = format!("{fate}, its records were on disk in {} partitions", written.len());
            stats.in_doubt_on_disk += usize::from(!written.is_empty());
            if v.visible.contains(&t) {
                stats.in_doubt_committed += 1;
                model.settled.insert(t);
            } else {
                in_doubt_aborted += 1;
                // Recovery says which partitions it took them from.
                for (topic, p) in &written {
                    assert!(
                        v.report
                            .iter()
                            .any(|(rt, rp, r)| rt == topic && rp == p && r.to_lowercase().contains("transaction")),
                        "{label}: transaction {t}'s records were in {topic}/{p} and recovery removed them, \
                         but its report says nothing of it: {:?}",
                        v.events
                    );
                }
                model.aborted.insert(t);
            }
        }
        stats.txn_events += v.txn_events;
        stats.txn_recoveries += usize::from(v.txn_events > 0);
        eprintln!(
            "{label} ({:?}): killed {how:?} ({delay:?} after its trigger); {} transactions committed, \
             {} output records; in doubt: {doubt_fate}; recovery: {:?}",
            cycle_start.elapsed(),
            v.visible.len(),
            v.out_records,
            v.events
        );
        model.committed = v.committed;
        model.input_end = v.input_end;
    }
    // The last child processes everything that is left, and ends.
    let done = Monitored::spawn(
        child::command(TEST_NAME, "xform", &dir)
            .env(RUN_ENV, cycles.to_string())
            .env(FINISH_ENV, "1")
            .env(CAP_ENV, "0")
            .env(DURABLE_ENV, if durable { "1" } else { "0" }),
    );
    let finished = done.wait();
    assert!(finished.status.success(), "the finishing child failed ({:?}):\n{}", finished.status, finished.stderr);
    for l in &finished.rest {
        model.parse(l, "finish");
    }
    assert!(finished.rest.iter().any(|l| strip(l) == "DONE"), "the finishing child said DONE");
    let label = format!("epoch {epoch} finish (seed {seed})");
    let v = verify(&label, &dir, &model, true);
    let expected: u64 =
        v.input_end.values().map(|end| (0..*end).map(|off| fanout(off).len() as u64).sum::<u64>()).sum();
    let got: u64 = v.visible.iter().map(|t| model.begun[t]).sum();
    assert_eq!(got, expected, "{label}: the output holds every input's outputs");
    assert!(v.visible.len() > cycles as usize, "{label}: too few transactions committed to prove much");
    stats.cycles += cycles;
    stats.committed += v.visible.len();
    stats.aborted_by_children += model.aborted.len() - in_doubt_aborted;
    stats.in_doubt_aborted += in_doubt_aborted;
    stats.plain += model.plain.len();
    stats.child_recoveries += model.child_recoveries.len();
}

// ---------------------------------------------------------------------------
// 2. A read-only follower in another process.

const LIVE: &str = "live";
const LIVE_PARTS: u32 = 3;
const FOLLOWER: &str = "follower_child_prints_every_transactional_record";
const WRITER: &str = "writer_child_commits_and_aborts_transactions";
const ENV_TXNS: &str = "MILLPOND_TXF_TXNS";
const ENV_STOP: &str = "MILLPOND_TXF_STOP";
const ENV_SYNC: &str = "MILLPOND_TXF_SYNC";
/// A topic that syncs every write; each transaction writes to it too, when
/// `ENV_SYNC` is 1.
const SYNC: &str = "sync";

fn live_config() -> TopicConfig {
    TopicConfig::default().partitions(LIVE_PARTS).segment_bytes(16 << 10).max_record_bytes(1024)
}

/// `t|<tag>|<partition>|<index in the share>|<share size>|<C or A>|...`.
fn live_value(tag: &str, p: u32, j: u64, k: u64, fate: char) -> Vec<u8> {
    format!("t|{tag}|{p}|{j}|{k}|{fate}|{}", filler((j * 7 + u64::from(p)) % 90, j)).into_bytes()
}

/// A line describing a record of `live`, the same in the follower and the
/// parent: `<partition> <offset> <what>`.
fn describe(m: &Message) -> String {
    let v = String::from_utf8_lossy(m.value());
    let f: Vec<&str> = v.split('|').collect();
    let what = match f[0] {
        "t" if f.len() == 7 => {
            let ok = m.value()
                == live_value(
                    f[1],
                    f[2].parse().unwrap_or(u32::MAX),
                    f[3].parse().unwrap_or(0),
                    f[4].parse().unwrap_or(0),
                    f[5].chars().next().unwrap_or('?'),
                )
                .as_slice()
                && f[2] == m.partition().to_string();
            if ok { format!("t {} {} {} {}", f[1], f[3], f[4], f[5]) } else { format!("damaged {v}") }
        }
        "p" if f.len() == 3 => format!("p {}", f[1]),
        "STOP" => "STOP".to_string(),
        _ => format!("damaged {v}"),
    };
    format!("{} {} {what}", m.partition(), m.offset())
}

/// Child: follows `live` read-only, one consumer (and thread) per
/// partition, printing `rec <description>` per record; after the first
/// record of a transaction's share it must be able to read the rest of it
/// at once (`partial ...` if not). Ends once every partition sent STOP.
#[test]
fn follower_child_prints_every_transactional_record() {
    if child::role().as_deref() != Some("ro-follower") {
        return;
    }
    abort_on_panic();
    let r = Broker::open_read_only(child::dir()).unwrap();
    let topic = r.topic(LIVE).unwrap();
    let mut threads = Vec::new();
    for p in 0..LIVE_PARTS {
        let c = topic.consumer_of(&[p], StartFrom::Earliest).unwrap();
        threads.push(std::thread::spawn(move || follow(c)));
    }
    say("ready\n");
    for t in threads {
        t.join().unwrap();
    }
}

fn follow(mut c: Consumer) {
    let mut rest = 0u64;
    loop {
        let m = if rest > 0 {
            match c.try_recv() {
                Ok(Some(m)) => m,
                Ok(None) => {
                    say(&format!("partial {} records of a share not yet readable\n", rest));
                    c.recv().unwrap()
                }
                Err(e) => panic!("follower: {e}"),
            }
        } else {
            match c.recv() {
                Ok(m) => m,
                Err(Error::Lagged { .. }) => panic!("follower lagged (no retention here)"),
                Err(e) => panic!("follower: {e}"),
            }
        };
        let d = describe(&m);
        say(&format!("rec {d}\n"));
        let f: Vec<&str> = d.split(' ').collect();
        if f[2] == "STOP" {
            return;
        }
        if f[2] == "t" {
            let (j, k): (u64, u64) = (f[4].parse().unwrap(), f[5].parse().unwrap());
            rest = k - j - 1;
        } else {
            rest = 0;
        }
    }
}

/// Child: commits, aborts and drops transactions over the partitions of
/// `live` (`TXNS` of them, or until killed), a plain producer thread writing
/// the same partitions meanwhile; prints `B <tag>` before each commit, `C
/// <tag>` after it and `X <tag>` for an abort; then, if asked, STOP to every
/// partition.
#[test]
fn writer_child_commits_and_aborts_transactions() {
    if child::role().as_deref() != Some("ro-writer") {
        return;
    }
    abort_on_panic();
    let run = child::param_u64(RUN_ENV);
    let txns = child::param_u64(ENV_TXNS);
    let broker = Broker::open(child::dir()).unwrap();
    let topic = broker.create_topic(LIVE, live_config()).unwrap();
    // A transaction with a record for a topic that syncs every write syncs
    // all its records before its commit is decided, and the decision before
    // the commit returns: kills land in those windows more often.
    let sync = (child::param(ENV_SYNC) == "1")
        .then(|| broker.create_topic(SYNC, TopicConfig::default().fsync(FsyncPolicy::Always)).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let plain = {
        let (producer, stop) = (topic.producer(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut rng = Lcg::new(run ^ 0xb1a);
            let mut seq = 0;
            while !stop.load(Ordering::Relaxed) {
                let p = rng.range(0, u64::from(LIVE_PARTS)) as u32;
                producer.send(Record::new(format!("p|{run}.{seq}|")).partition(p)).unwrap();
                seq += 1;
                std::thread::sleep(Duration::from_micros(rng.range(200, 2000)));
            }
        })
    };
    let mut rng = Lcg::new(run.wrapping_mul(0x9E37_79B9) ^ 0xf011);
    for seq in 0..txns {
        let tag = format!("{run}.{seq}");
        let commit = !rng.chance(1, 4);
        let fate = if commit { 'C' } else { 'A' };
        let mut txn = broker.transaction().unwrap();
        for p in 0..LIVE_PARTS {
            if rng.chance(1, 3) {
                continue;
            }
            let k = if rng.chance(1, 5) { rng.range(300, 1500) } else { rng.range(1, 60) };
            let recs = (0..k).map(|j| Record::new(live_value(&tag, p, j, k, fate)).partition(p));
            if rng.chance(1, 2) {
                txn.send_batch(&topic, recs).unwrap();
            } else {
                for r in recs {
                    txn.send(&topic, r).unwrap();
                }
            }
        }
        // `B` says how many records of `live` it has.
        let records = txn.len();
        if let Some(sync) = &sync {
            txn.send(sync, Record::new(format!("{tag}|"))).unwrap();
        }
        if commit {
            say(&format!("B {tag} {records}\n"));
            txn.commit().unwrap();
            say(&format!("C {tag}\n"));
        } else {
            say(&format!("X {tag}\n"));
            if rng.chance(1, 2) {
                txn.abort();
            } else {
                drop(txn);
            }
        }
        if rng.chance(1, 3) {
            std::thread::sleep(Duration::from_micros(rng.range(100, 3000)));
        }
    }
    stop.store(true, Ordering::Relaxed);
    plain.join().unwrap();
    if child::param(ENV_STOP) == "1" {
        for p in 0..LIVE_PARTS {
            topic.producer().send(Record::new("STOP").partition(p)).unwrap();
        }
    }
    say("done\n");
}

#[test]
fn read_only_follower_process_never_prints_an_aborted_or_uncommitted_record() {
    if child::role().is_some() {
        return;
    }
    let seed = Seed::from_env_or(7_000_003);
    let mut rng = seed.rng();
    let rounds = if soak() { 4 } else { 1 };
    for round in 0..rounds {
        follower_round(round, &mut rng, &seed);
    }
}

/// What the writers said: `B`, `C` and `X` lines.
#[derive(Default)]
struct Said {
    /// Tag -> records.
    begun: BTreeMap<String, u64>,
    returned: BTreeSet<String>,
    aborted: BTreeSet<String>,
}

impl Said {
    fn note(&mut self, l: &str) {
        let f: Vec<&str> = strip(l).split(' ').collect();
        match f.first().copied() {
            Some("B") => {
                self.begun.insert(f[1].to_string(), f[2].parse::<u64>().unwrap());
            }
            Some("C") => {
                self.returned.insert(f[1].to_string());
            }
            Some("X") => {
                self.aborted.insert(f[1].to_string());
            }
            _ => {}
        }
    }
}

fn follower_round(round: u64, rng: &mut Lcg, seed: &Seed) {
    let label = format!("round {round} (seed {seed})");
    let tmp = TempDir::new("txn-follower");
    {
        let broker = Broker::open(tmp.path()).unwrap();
        let topic = broker.create_topic(LIVE, live_config()).unwrap();
        // Not an empty partition for a share larger than a segment (see
        // `top_up`).
        for p in 0..LIVE_PARTS {
            topic.producer().send(Record::new(format!("p|pre.{p}|")).partition(p)).unwrap();
        }
        broker.close().unwrap();
    }
    let mut follower = Monitored::spawn(&mut child::command(FOLLOWER, "ro-follower", tmp.path()));
    let mut printed = Vec::new();
    follower.expect_line("ready", WAIT, |l| printed.push(l), &format!("{label}: the follower started"));

    let kills = if soak() { 16 } else { 6 };
    // What a read-only open in this process showed after each kill, per
    // partition.
    let mut snapshots: Vec<Vec<Vec<String>>> = Vec::new();
    let mut in_doubt_on_disk = 0;
    let mut said = Said::default();
    for run in 0..=kills {
        let last = run == kills;
        let mut cmd = child::command(WRITER, "ro-writer", tmp.path());
        cmd.env(RUN_ENV, run.to_string()).env(ENV_TXNS, if last { "30" } else { "1000000" });
        cmd.env(ENV_STOP, if last { "1" } else { "0" }).env(ENV_SYNC, if round.is_multiple_of(2) { "1" } else { "0" });
        let mut writer = Monitored::spawn(&mut cmd);
        if last {
            let ended = writer.wait();
            assert!(ended.status.success(), "{label}: the last writer failed:\n{}", ended.stderr);
            ended.rest.iter().for_each(|l| said.note(l));
            break;
        }
        // Some commits, then a kill aimed at a commit (a `B` line), or
        // just after one, or anywhere.
        let commits = rng.range(3, 15);
        let mut seen = 0;
        while seen < commits {
            let l = writer.expect_line("", WAIT, |_| {}, &format!("{label}: the writer commits"));
            said.note(&l);
            seen += u64::from(strip(&l).starts_with("C "));
        }
        let (marker, delay) = match rng.range(0, 3) {
            0 => ("B ", Duration::from_micros(rng.range(0, 6000))),
            1 => ("C ", Duration::from_micros(rng.range(0, 200))),
            _ => ("", Duration::from_millis(rng.range(0, 50))),
        };
        let l = writer.expect_line(marker, WAIT, |l| said.note(&l), &format!("{label}: the writer commits"));
        said.note(&l);
        let kill_at = Instant::now() + delay;
        writer.lines_until(kill_at, |l| said.note(&l), &format!("{label}: the writer exited before the kill"));
        let killed = writer.kill9();
        assert_eq!(killed.status.signal(), Some(libc::SIGKILL), "{label}: writer:\n{}", killed.stderr);
        killed.rest.iter().for_each(|l| said.note(l));
        // Whether the kill left records of a transaction whose commit began
        // and did not return.
        for t in said.begun.keys().filter(|t| t.starts_with(&format!("{run}.")) && !said.returned.contains(*t)) {
            in_doubt_on_disk += usize::from(!frames_with(tmp.path(), &[(LIVE, LIVE_PARTS), (SYNC, 1)], t).is_empty());
        }
        // Before any writer recovers the directory: what a read-only open
        // shows now must be what the log keeps.
        let reader = Broker::open_read_only(tmp.path()).unwrap();
        let topic = reader.topic(LIVE).unwrap();
        snapshots.push((0..LIVE_PARTS).map(|p| read_partition(&topic, p).iter().map(describe).collect()).collect());
    }
    let deadline = Instant::now() + WAIT;
    while let Ok(l) = follower.next_line(deadline) {
        printed.push(l);
    }
    let ended = follower.wait();
    assert!(ended.status.success(), "{label}: the follower failed:\n{}", ended.stderr);
    printed.extend(ended.rest);

    // What the log holds now.
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.topic(LIVE).unwrap();
    let mut followed: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for l in &printed {
        let l = strip(l);
        assert!(!l.starts_with("partial"), "{label}: the follower read part of a transaction's share: {l}");
        if let Some(d) = l.strip_prefix("rec ") {
            assert!(!d.contains("damaged"), "{label}: the follower read a damaged record: {d}");
            let f: Vec<&str> = d.split(' ').collect();
            if f[2] == "t" {
                assert_eq!(f[6], "C", "{label}: the follower read a record of an aborted transaction: {d}");
                assert!(
                    said.begun.contains_key(f[3]),
                    "{label}: the follower read a record of transaction {} never committed: {d}",
                    f[3]
                );
            }
            followed.entry(f[0].parse().unwrap()).or_default().push(d.to_string());
        }
    }
    let mut committed = BTreeSet::new();
    for p in 0..LIVE_PARTS {
        let msgs = read_partition(&topic, p);
        let stored: Vec<String> = msgs.iter().map(describe).collect();
        let mut tags: Vec<(u64, Option<String>)> = Vec::new();
        for (m, d) in msgs.iter().zip(&stored) {
            let f: Vec<&str> = d.split(' ').collect();
            assert!(!d.contains("damaged"), "{label}: stored record damaged: {d}");
            if f[2] == "t" {
                assert_eq!(f[6], "C", "{label}: a record of an aborted transaction is stored: {d}");
                committed.insert(f[3].to_string());
                tags.push((m.offset(), Some(f[3].to_string())));
            } else {
                tags.push((m.offset(), None));
            }
        }
        // Each share whole, in order, with its marker after it.
        let offsets: Vec<(u64, Option<&str>)> = tags.iter().map(|(o, t)| (*o, t.as_deref())).collect();
        check_offsets(&label, tmp.path(), (LIVE, p), &offsets, topic.high_watermark(p).unwrap());
        for (w, d) in stored.windows(2).zip(0..) {
            let (a, b): (Vec<&str>, Vec<&str>) = (w[0].split(' ').collect(), w[1].split(' ').collect());
            if a[2] == "t" && b[2] == "t" && a[3] == b[3] {
                assert_eq!(
                    b[4].parse::<u64>().unwrap(),
                    a[4].parse::<u64>().unwrap() + 1,
                    "{label}: share order at {d}"
                );
            }
        }
        for (k, snapshot) in snapshots.iter().enumerate() {
            let shown = &snapshot[p as usize];
            for d in shown {
                assert!(!d.contains("damaged") && !d.ends_with(" A"), "{label}: after kill {k}, a reader read {d}");
            }
            assert!(
                shown.len() <= stored.len() && shown[..] == stored[..shown.len()],
                "{label}: partition {p}: after kill {k}, before recovery, a read-only open showed other records \
                 than the log keeps: {:?}",
                shown.iter().zip(&stored).find(|(a, b)| a != b)
            );
        }
        let got = followed.remove(&p).unwrap_or_default();
        assert_eq!(
            got.len(),
            stored.len(),
            "{label}: partition {p}: the follower printed {} records, the log holds {}",
            got.len(),
            stored.len()
        );
        for (g, s) in got.iter().zip(&stored) {
            assert_eq!(g, s, "{label}: partition {p}: the follower printed {g}, the log holds {s}");
        }
    }
    // An empty transaction (it skipped every partition) leaves nothing.
    for t in said.returned.iter().filter(|t| said.begun[*t] > 0) {
        assert!(committed.contains(t), "{label}: transaction {t} committed (commit returned) but is gone");
    }
    for t in &committed {
        assert!(!said.aborted.contains(t), "{label}: aborted transaction {t} is stored");
    }
    let in_doubt: Vec<&String> = said.begun.keys().filter(|t| !said.returned.contains(*t)).collect();
    eprintln!(
        "{label}: {} transactions committed, {} aborted, {} in doubt at a kill ({} of them found committed, \
         {in_doubt_on_disk} with records on disk)",
        committed.len(),
        said.aborted.len(),
        in_doubt.len(),
        in_doubt.iter().filter(|t| committed.contains(**t)).count()
    );
    assert!(committed.len() > 30, "{label}: too few transactions");
}

// ---------------------------------------------------------------------------
// 3. A large commit after a kill during a commit.

const BIG: &str = "big";
const BIG_PARTS: u32 = 4;
const BIG_CHILD: &str = "big_commit_child_commits_one_transaction";

fn big_config() -> TopicConfig {
    TopicConfig::default().partitions(BIG_PARTS).segment_bytes(16 << 10).max_record_bytes(1024)
}

/// `count` records of about 700 bytes for partition `p` of `big`.
fn big_records(tag: &str, p: u32, count: u64) -> impl Iterator<Item = Record<'static>> {
    let tag = tag.to_string();
    (0..count).map(move |j| Record::new(format!("{tag}|{p}|{j}|{}", "b".repeat(700))).partition(p))
}

/// The killed transaction's share of partition `p`: 7 KB for partitions 0
/// and 1 (it fits in a segment, but not after the plain records: the commit
/// rolls), 28 KB for 2 and 3 (more than a segment).
fn killed_share(p: u32) -> u64 {
    if p < 2 { 10 } else { 40 }
}

/// Child: fills most of the first segment of every partition of `big` with
/// plain records, then commits one transaction (see [`killed_share`]),
/// printing `B` before its commit and `C` after; then waits to be killed.
#[test]
fn big_commit_child_commits_one_transaction() {
    if child::role().as_deref() != Some("big") {
        return;
    }
    abort_on_panic();
    let broker = Broker::open(child::dir()).unwrap();
    let topic = broker.create_topic(BIG, big_config()).unwrap();
    for p in 0..BIG_PARTS {
        topic
            .producer()
            .send_batch((0..120).map(|i| Record::new(format!("plain|{i}|{}", "p".repeat(100))).partition(p)))
            .unwrap();
    }
    // A record for a topic that syncs every write: the commit syncs the
    // shares before it decides, so kills land between the two more often.
    let sync = broker.create_topic(SYNC, TopicConfig::default().fsync(FsyncPolicy::Always)).unwrap();
    let mut txn = broker.transaction().unwrap();
    for p in 0..BIG_PARTS {
        txn.send_batch(&topic, big_records("killed", p, killed_share(p))).unwrap();
    }
    txn.send(&sync, Record::new("killed|")).unwrap();
    say("B\n");
    txn.commit().unwrap();
    say("C\n");
    std::thread::sleep(WAIT);
}

/// A kill during a commit may leave the segments the commit made for its
/// shares (by a roll, or larger than a segment) without a frame. Recovery
/// drops the transaction; the next transaction, with shares larger than
/// any of those segments, must commit all the same, and nothing of the
/// killed one may show.
#[test]
fn a_large_commit_after_a_kill_during_a_commit_succeeds() {
    if child::role().is_some() {
        return;
    }
    let attempts: u64 = if soak() { 48 } else { 16 };
    let (mut empty_segments_left, mut with_records_on_disk) = (0, 0);
    let mut outcomes = BTreeMap::new();
    for attempt in 0..attempts {
        let tmp = TempDir::new("txn-big");
        let mut c = Monitored::spawn(&mut child::command(BIG_CHILD, "big", tmp.path()));
        c.expect_line("B", WAIT, |_| {}, "the child begins its commit");
        // Kills spread over the commit (it takes milliseconds), most of
        // them early in it.
        let delay = if attempt % 2 == 0 { attempt * 3000 / attempts } else { attempt * 30_000 / attempts };
        std::thread::sleep(Duration::from_micros(delay));
        let killed = c.kill9();
        let returned = killed.rest.iter().any(|l| strip(l) == "C");
        let written = frames_with(tmp.path(), &[(BIG, BIG_PARTS)], "killed");
        with_records_on_disk += usize::from(!written.is_empty());
        let broker = Broker::open(tmp.path()).unwrap();
        // Partitions whose newest segment holds no frame after recovery.
        let mut empty = Vec::new();
        for p in 0..BIG_PARTS {
            let newest = *segment_bases(tmp.path(), BIG, p).last().unwrap();
            let dump = SegmentDump::open(segment_path(tmp.path(), BIG, p, newest)).unwrap();
            if !dump.frames().any(|e| matches!(e, Ok(DumpEntry::Frame(_)))) {
                empty.push((p, newest));
            }
        }
        empty_segments_left += usize::from(!empty.is_empty());
        let topic = broker.topic(BIG).unwrap();
        let before: Vec<Vec<Message>> = (0..BIG_PARTS).map(|p| read_partition(&topic, p)).collect();
        let committed = (0..BIG_PARTS).all(|p| before[p as usize].len() as u64 == 120 + killed_share(p));
        for (p, msgs) in before.iter().enumerate() {
            assert!(
                msgs.len() == 120 || committed,
                "attempt {attempt}: partition {p} holds {} records: the killed transaction is partly there",
                msgs.len()
            );
        }
        assert!(committed || !returned, "attempt {attempt}: its commit returned, but it is gone");
        let mut txn = broker.transaction().unwrap();
        for p in 0..BIG_PARTS {
            txn.send_batch(&topic, big_records("next", p, 60)).unwrap();
        }
        let done = txn.commit().unwrap_or_else(|e| {
            panic!(
                "attempt {attempt} (killed {delay} µs after B; its records on disk in {written:?}; newest segments \
                 without a frame after recovery: {empty:?}; recovery: {:?}): the next commit failed: {e:?}",
                broker.recovery_report()
            )
        });
        assert_eq!(done.parts().len(), BIG_PARTS as usize);
        for p in 0..BIG_PARTS {
            let msgs = read_partition(&topic, p);
            assert_eq!(msgs.len(), before[p as usize].len() + 60, "attempt {attempt}: partition {p}");
        }
        *outcomes.entry(if committed { "committed" } else { "aborted" }).or_insert(0) += 1;
    }
    eprintln!(
        "{attempts} kills during a commit: {outcomes:?}; {with_records_on_disk} left records of it on disk; \
         {empty_segments_left} left a newest segment without a frame after recovery"
    );
}
