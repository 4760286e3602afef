//! Readers in other processes, for real: a writer process appends (with
//! small segments, so it rolls, and a retention limit, so old segments go)
//! while a follower process (`Broker::open_read_only`) prints every record
//! it receives. The writer is killed with SIGKILL in the middle of its
//! writes; a second writer process recovers the log and goes on. The
//! follower must print every record once, in order, intact (each value
//! carries its own checksum), never one the recovery dropped, and must go
//! on with the second writer's records without being restarted.
//!
//! `MILLPOND_SOAK=1` runs more rounds with more kills.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use millpond::{Broker, Error, Message, Record, StartFrom, TopicConfig};
use support::child::{self, Monitored};
use support::dir::TempDir;
use support::rng::{Lcg, pattern};
use support::soak;

const TOPIC: &str = "live";
const PARTITIONS: u32 = 2;
const FOLLOWER: &str = "follower_child_prints_every_record";
const WRITER: &str = "writer_child_appends_until_told";
const ENV_FIRST_SEQ: &str = "MILLPOND_RO_FIRST_SEQ";
const ENV_COUNT: &str = "MILLPOND_RO_COUNT";
const ENV_STOP: &str = "MILLPOND_RO_STOP";
const ENV_TEXT: &str = "MILLPOND_RO_TEXT";
const WAIT: Duration = Duration::from_secs(60);

fn config() -> TopicConfig {
    TopicConfig::default()
        .partitions(PARTITIONS)
        .segment_bytes(16 << 10)
        .max_record_bytes(4096)
        .retention_bytes(256 << 10)
}

/// `[seq u64][crc32 of the rest u32][pattern]`: a value that says whether it
/// is intact; in text (`<seq> <crc32 of the body> <body>`) for the runs whose
/// follower is the command-line tool.
fn value(seq: u64) -> Vec<u8> {
    if std::env::var(ENV_TEXT).is_ok_and(|v| v == "1") {
        return text_value(seq).into_bytes();
    }
    let body = pattern(seq, 20 + (seq % 300) as usize);
    let mut v = seq.to_le_bytes().to_vec();
    v.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    v.extend_from_slice(&body);
    v
}

fn text_value(seq: u64) -> String {
    let body: String = pattern(seq, 20 + (seq % 200) as usize).iter().map(|b| char::from(b'a' + b % 26)).collect();
    format!("{seq} {} {body}", crc32fast::hash(body.as_bytes()))
}

/// The seq of a text value, if it is intact.
fn check_text(v: &str) -> Option<u64> {
    let seq: u64 = v.split(' ').next()?.parse().ok()?;
    (v == text_value(seq)).then_some(seq)
}

fn check(m: &Message) -> Result<u64, String> {
    let v = m.value();
    if v == b"STOP" {
        return Ok(u64::MAX);
    }
    if v.len() < 12 {
        return Err(format!("p{} @{}: value of {} bytes", m.partition(), m.offset(), v.len()));
    }
    let seq = u64::from_le_bytes(v[..8].try_into().unwrap());
    if v != value(seq).as_slice() {
        return Err(format!("p{} @{}: seq {seq} is damaged", m.partition(), m.offset()));
    }
    Ok(seq)
}

/// Child: follows the topic read-only and prints `rec <partition> <offset> <seq>`
/// per record (`lagged ...` if retention overtook it), until every
/// partition delivered a STOP record.
#[test]
fn follower_child_prints_every_record() {
    if child::role().as_deref() != Some("follower") {
        return;
    }
    let r = Broker::open_read_only(child::dir()).unwrap();
    let mut c = r.topic(TOPIC).unwrap().consumer(StartFrom::Earliest).unwrap();
    println!("ready");
    let mut stopped = 0;
    while stopped < PARTITIONS {
        match c.recv() {
            Ok(m) => match check(&m) {
                Ok(u64::MAX) => {
                    stopped += 1;
                    println!("stop {}", m.partition());
                }
                Ok(seq) => println!("rec {} {} {seq}", m.partition(), m.offset()),
                Err(e) => println!("bad {e}"),
            },
            Err(Error::Lagged { partition, from, resumed_at, .. }) => {
                println!("lagged {partition} {from} {resumed_at}");
                c.seek(partition, resumed_at).unwrap();
            }
            Err(e) => panic!("follower: {e}"),
        }
    }
}

/// Child: appends `COUNT` records (seqs from `FIRST_SEQ`, round robin),
/// pausing now and then, printing `ack <seq>` every 100; then, if asked,
/// a STOP record to every partition.
#[test]
fn writer_child_appends_until_told() {
    if child::role().as_deref() != Some("writer") {
        return;
    }
    let w = Broker::open(child::dir()).unwrap();
    let t = w.create_topic(TOPIC, config()).unwrap();
    let p = t.producer();
    let first = child::param_u64(ENV_FIRST_SEQ);
    let count = child::param_u64(ENV_COUNT);
    let mut rng = Lcg::new(first ^ 0x5eed);
    let mut seq = first;
    while seq < first + count {
        if rng.chance(1, 8) {
            // A batch now and then: several records in one frame.
            let n = rng.range(2, 6);
            p.send_batch((seq..seq + n).map(|s| Record::new(value(s)))).unwrap();
            seq += n;
        } else {
            p.send(Record::new(value(seq))).unwrap();
            seq += 1;
        }
        if seq / 100 != (seq - 1) / 100 {
            println!("ack {seq}");
        }
        if rng.chance(1, 40) {
            std::thread::sleep(Duration::from_micros(rng.range(50, 400)));
        }
    }
    if child::param(ENV_STOP) == "1" {
        for part in 0..PARTITIONS {
            p.send(Record::new("STOP").partition(part)).unwrap();
        }
    }
    println!("done");
}

#[test]
fn a_follower_process_prints_every_record_once_in_order_across_rolls_retention_and_a_kill9() {
    if child::role().is_some() {
        return;
    }
    let rounds = if soak() { 6 } else { 1 };
    for round in 0..rounds {
        one_round(round);
    }
}

fn one_round(round: u64) {
    let tmp = TempDir::new("ro-processes");
    drop(Broker::open(tmp.path()).unwrap().create_topic(TOPIC, config()).unwrap());
    let mut follower = Monitored::spawn(&mut child::command(FOLLOWER, "follower", tmp.path()));
    follower.expect_line("ready", WAIT, |_| {}, "the follower started");

    let kills = if soak() { 4 } else { 2 };
    let mut rng = Lcg::new(0xfeed + round);
    let mut first = 0u64;
    for _ in 0..kills {
        let mut writer = Monitored::spawn(
            child::command(WRITER, "writer", tmp.path())
                .env(ENV_FIRST_SEQ, first.to_string())
                .env(ENV_COUNT, "1000000")
                .env(ENV_STOP, "0"),
        );
        // Let it write a while, then kill it in the middle of its writes.
        let acks = rng.range(20, 60);
        for _ in 0..acks {
            writer.expect_line("ack", WAIT, |_| {}, "the writer acknowledged");
        }
        writer.kill9();
        first += 1 << 32;
    }
    // The last writer recovers the log, writes a little and stops everyone.
    let last = Monitored::spawn(
        child::command(WRITER, "writer", tmp.path())
            .env(ENV_FIRST_SEQ, first.to_string())
            .env(ENV_COUNT, "3000")
            .env(ENV_STOP, "1"),
    )
    .wait();
    assert!(last.status.success(), "last writer: {}", last.stderr);

    let mut lines = Vec::new();
    let deadline = Instant::now() + WAIT;
    while let Ok(l) = follower.next_line(deadline) {
        lines.push(l);
    }
    let ended = follower.wait();
    assert!(ended.status.success(), "follower failed: {}", ended.stderr);
    lines.extend(ended.rest);

    // What the log holds now, read by a fresh writer-side open.
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.topic(TOPIC).unwrap();
    let mut printed: BTreeMap<u32, Vec<(u64, u64)>> = BTreeMap::new();
    let mut stops = 0;
    for l in &lines {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.first().copied() {
            Some("rec") => {
                printed.entry(f[1].parse().unwrap()).or_default().push((f[2].parse().unwrap(), f[3].parse().unwrap()))
            }
            Some("stop") => stops += 1,
            Some("bad") => panic!("the follower received a damaged record: {l}"),
            Some("lagged") => panic!("retention overtook the follower (it should keep up): {l}"),
            _ => {}
        }
    }
    assert_eq!(stops, PARTITIONS, "every partition's STOP arrived");
    let mut total = 0;
    // Retention runs in the background: give it a moment after the
    // writers, then read what is left.
    topic.enforce_retention().unwrap();
    for p in 0..PARTITIONS {
        let got = printed.remove(&p).unwrap_or_default();
        let start = topic.log_start(p).unwrap();
        let hw = topic.high_watermark(p).unwrap();
        // Every record once, in order, dense: exactly the offsets the log
        // holds (retention may since have removed the oldest files).
        for pair in got.windows(2) {
            assert_eq!(pair[1].0, pair[0].0 + 1, "partition {p}: offsets {} then {}", pair[0].0, pair[1].0);
        }
        assert_eq!(got.first().map(|r| r.0), Some(0), "partition {p} printed from offset 0");
        assert_eq!(got.last().map(|r| r.0 + 2), Some(hw), "partition {p}: all but the STOP record");
        // The records still stored are the ones printed, seq for seq.
        let mut c = topic.consumer_of(&[p], StartFrom::Offset(start)).unwrap();
        for &(offset, seq) in got.iter().filter(|r| r.0 >= start) {
            let m = c.recv().unwrap();
            assert_eq!((m.offset(), check(&m).unwrap()), (offset, seq), "partition {p}");
        }
        total += got.len();
    }
    assert!(total > 3000, "the follower printed {total} records");
    assert!(
        (0..PARTITIONS).any(|p| topic.log_start(p).unwrap() > 0),
        "retention deleted segments while the follower read"
    );
}

/// The same with the command-line tool as the follower: `millpond consume
/// --follow` in its own process prints every record once, in order, never a
/// torn one, across rolls, retention and a writer killed with SIGKILL, and
/// goes on with the next writer's records; SIGTERM ends it with exit 0.
#[cfg(feature = "cli")]
#[test]
fn consume_follow_prints_every_record_once_in_order_across_a_writer_killed_and_replaced() {
    use std::io::BufRead;
    if child::role().is_some() {
        return;
    }
    let tmp = TempDir::new("ro-cli-follow");
    drop(Broker::open(tmp.path()).unwrap().create_topic(TOPIC, config()).unwrap());
    let mut tool = std::process::Command::new(env!("CARGO_BIN_EXE_millpond"))
        .arg("--dir")
        .arg(tmp.path())
        .args(["consume", TOPIC, "--follow", "--format", "text"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = tool.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut rng = Lcg::new(0xc11);
    let mut first = 0u64;
    for last in [false, false, true] {
        let mut cmd = child::command(WRITER, "writer", tmp.path());
        cmd.env(ENV_FIRST_SEQ, first.to_string()).env(ENV_TEXT, "1");
        if last {
            let done = Monitored::spawn(cmd.env(ENV_COUNT, "2000").env(ENV_STOP, "1")).wait();
            assert!(done.status.success(), "last writer: {}", done.stderr);
        } else {
            let mut writer = Monitored::spawn(cmd.env(ENV_COUNT, "1000000").env(ENV_STOP, "0"));
            for _ in 0..rng.range(10, 40) {
                writer.expect_line("ack", WAIT, |_| {}, "the writer acknowledged");
            }
            writer.kill9();
        }
        first += 1 << 32;
    }
    let reader = Broker::open_read_only(tmp.path()).unwrap();
    let topic = reader.topic(TOPIC).unwrap();
    let ends: Vec<u64> = (0..PARTITIONS).map(|p| topic.high_watermark(p).unwrap()).collect();
    let mut printed: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    let deadline = Instant::now() + WAIT;
    while (0..PARTITIONS).any(|p| printed.get(&p).map_or(0, Vec::len) as u64 != ends[p as usize]) {
        let l = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("the tool printed {printed:?} of {ends:?}"));
        let f: Vec<&str> = l.splitn(5, '\t').collect();
        assert_eq!(f.len(), 5, "a record line: {l:?}");
        let (p, offset): (u32, u64) = (f[0].parse().unwrap(), f[1].parse().unwrap());
        assert!(f[4] == "STOP" || check_text(f[4]).is_some(), "a torn or damaged record was printed: {l:?}");
        printed.entry(p).or_default().push(offset);
    }
    for (p, offsets) in &printed {
        assert!(offsets.iter().copied().eq(0..ends[*p as usize]), "partition {p}: every offset once, in order");
    }
    assert!(ends.iter().sum::<u64>() > 2000);
    // SAFETY: a signal to the child this test started, by its process id.
    assert_eq!(unsafe { libc::kill(tool.id() as libc::pid_t, libc::SIGTERM) }, 0);
    let status = child::wait_timeout(&mut tool, WAIT).expect("the tool stopped on SIGTERM");
    assert_eq!(status.code(), Some(0));
}
