//! The cross-process rows of the benchmark: a writer in this process and
//! read-only readers (`Broker::open_read_only`) in child processes, which
//! are this same program started again with `MILLPOND_BENCH_CHILD` set (in
//! `cargo test`, the test binary running only `cross_process_child`).
//!
//! Latencies are measured with the wall clock (`SystemTime`), the one clock
//! both processes read: each record carries its send time in its first 8
//! bytes, and the reader subtracts it from the time it received it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use millpond::{Broker, Record, StartFrom, WaitStrategy};

use super::{BoxError, RECORD, big_segments, fresh, publish_paced, rate};

/// The environment variable that makes this program a child: `<role> <dir> <n> [spin]`.
pub(crate) const CHILD_ENV: &str = "MILLPOND_BENCH_CHILD";
/// The test that is a child's entry point in `cargo test`.
pub(crate) const CHILD_TEST: &str = "tests::cross_process_child";

/// Nanoseconds since the epoch, by the wall clock.
fn wall_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// If this process was started as a child, does the child's work and
/// returns its outcome.
pub(crate) fn run_child_if_asked() -> Option<Result<(), BoxError>> {
    let spec = std::env::var(CHILD_ENV).ok()?;
    let parts: Vec<&str> = spec.split('\t').collect();
    Some(match parts[..] {
        [role, dir, n, wait] => match n.parse::<u64>() {
            Ok(n) => child(role, Path::new(dir), n, wait == "spin"),
            Err(e) => Err(e.into()),
        },
        _ => Err(format!("bad {CHILD_ENV}: {spec:?}").into()),
    })
}

fn child(role: &str, dir: &Path, n: u64, spin: bool) -> Result<(), BoxError> {
    let opened = Instant::now();
    let broker = Broker::open_read_only(dir)?;
    let topic = broker.topic("cross")?;
    let wait = if spin { WaitStrategy::BusySpin } else { WaitStrategy::SpinThenPark };
    let mut consumer = topic.consumer(StartFrom::Earliest)?.wait_strategy(wait);
    let open_ns = opened.elapsed().as_nanos();
    println!("ready");
    match role {
        "latency" => {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
            for _ in 0..n {
                let m = consumer.recv()?;
                let sent = u64::from_le_bytes(m.value()[..8].try_into()?);
                h.record(wall_ns().saturating_sub(sent).max(1))?;
            }
            let q = |x| h.value_at_quantile(x);
            println!("RESULT {} {} {} {}", q(0.5), q(0.99), q(0.999), h.max());
        }
        "backlog" | "follow" => {
            let start = Instant::now();
            let (mut got, mut bytes) = (0u64, 0usize);
            while got < n {
                let batch = consumer.poll_ref(1000, Duration::from_secs(10))?;
                if batch.is_empty() {
                    return Err(format!("{role}: no record for 10 s after {got}").into());
                }
                for m in batch {
                    bytes += super::touch(m.value());
                    got += 1;
                }
            }
            std::hint::black_box(bytes);
            println!("RESULT {open_ns} {}", start.elapsed().as_nanos());
        }
        other => return Err(format!("unknown child role {other}").into()),
    }
    Ok(())
}

/// A running child, its stdout read line by line.
struct Reader {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Reader {
    /// Starts a reader; `nice`: at the lowest CPU priority (`nice -n 19`).
    fn spawn(role: &str, dir: &Path, n: u64, spin: bool, nice: bool) -> Result<Reader, BoxError> {
        let exe = std::env::current_exe()?;
        let mut cmd = if nice {
            let mut c = Command::new("nice");
            c.args(["-n", "19"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        if cfg!(test) {
            cmd.args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"]);
        }
        let spec = format!("{role}\t{}\t{n}\t{}", dir.display(), if spin { "spin" } else { "park" });
        let mut child = cmd.env(CHILD_ENV, spec).stdin(Stdio::null()).stdout(Stdio::piped()).spawn()?;
        let out = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut r = Reader { child, out };
        r.line("ready")?;
        Ok(r)
    }

    /// The first line from `marker` on, skipping the test harness's lines.
    fn line(&mut self, marker: &str) -> Result<String, BoxError> {
        let mut l = String::new();
        loop {
            l.clear();
            if self.out.read_line(&mut l)? == 0 {
                let status = self.child.wait()?;
                return Err(format!("the reader process ended ({status}) before {marker:?}").into());
            }
            if let Some(i) = l.find(marker) {
                return Ok(l[i..].trim_end().to_string());
            }
        }
    }

    /// The numbers of its `RESULT` line; waits for it to exit.
    fn result(mut self) -> Result<Vec<u64>, BoxError> {
        let l = self.line("RESULT")?;
        let status = self.child.wait()?;
        if !status.success() {
            return Err(format!("the reader process failed: {status}").into());
        }
        Ok(l.split_whitespace().skip(1).map(str::parse).collect::<Result<_, _>>()?)
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let _ = self.child.kill(); // a reader left running by a failed run; it may have exited
        let _ = self.child.wait();
    }
}

/// A writer-to-reader-process latency run: `n` records at `per_sec`.
/// Returns p50, p99, p99.9 and max in nanoseconds.
pub(crate) fn latency(dir: &Path, n: u64, per_sec: u64, spin: bool) -> Result<[u64; 4], BoxError> {
    let broker = fresh(dir)?;
    let topic = broker.create_topic("cross", big_segments())?;
    let reader = Reader::spawn("latency", dir, n, spin, false)?;
    let producer = topic.producer();
    publish_paced(n, per_sec, Instant::now(), |mut value| {
        value[..8].copy_from_slice(&wall_ns().to_le_bytes());
        producer.send(Record::new(&value))?;
        Ok(())
    })?;
    let r = reader.result()?;
    Ok([r[0], r[1], r[2], r[3]])
}

/// Three latency runs; the one with the median p99.
pub(crate) fn median_latency(dir: &Path, n: u64, per_sec: u64, spin: bool) -> Result<[u64; 4], BoxError> {
    let mut runs = Vec::new();
    for _ in 0..3 {
        runs.push(latency(dir, n, per_sec, spin)?);
    }
    runs.sort_by_key(|r| r[1]);
    Ok(runs[1])
}

/// A backlog of `n` records read in this process and by a reader process.
/// Returns the two read rates and the reader's open time (seconds).
pub(crate) fn backlog(dir: &Path, n: u64) -> Result<(f64, f64, f64), BoxError> {
    let broker = fresh(dir)?;
    let topic = broker.create_topic("cross", big_segments())?;
    let value = [7u8; RECORD];
    let batch: Vec<Record<'_>> = (0..1000).map(|_| Record::new(&value)).collect();
    let total = n.div_ceil(1000) * 1000;
    for _ in 0..total / 1000 {
        topic.producer().send_batch(batch.iter().cloned())?;
    }
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut opens = Vec::new();
    for _ in 0..3 {
        let mut consumer = topic.consumer(StartFrom::Earliest)?;
        let start = Instant::now();
        let (mut got, mut bytes) = (0u64, 0usize);
        while got < total {
            let batch = consumer.poll_ref(1000, Duration::ZERO)?;
            if batch.is_empty() {
                return Err("the in-process backlog read ended early".into());
            }
            for m in batch {
                bytes += super::touch(m.value());
                got += 1;
            }
        }
        std::hint::black_box(bytes);
        ours.push(rate(total, start.elapsed()));
        let r = Reader::spawn("backlog", dir, total, false, false)?.result()?;
        opens.push(r[0] as f64 / 1e9);
        theirs.push(rate(total, Duration::from_nanos(r[1])));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[1]
    };
    Ok((median(&mut ours), median(&mut theirs), median(&mut opens)))
}

/// The writer's single-send rate with no reader process, with two
/// following it live at the lowest CPU priority (so that on a machine with
/// few cores they take only CPU the writer leaves: what remains is what
/// their waiting and reading costs the writer itself), and with two at
/// normal priority (each run on a fresh topic; median of 3 each).
pub(crate) fn writer_with_readers(dir: &Path, n: u64) -> Result<(f64, f64, f64), BoxError> {
    let run = |readers: usize, nice: bool| -> Result<f64, BoxError> {
        let broker = fresh(dir)?;
        let topic = broker.create_topic("cross", big_segments())?;
        let followers: Vec<Reader> =
            (0..readers).map(|_| Reader::spawn("follow", dir, n, false, nice)).collect::<Result<_, _>>()?;
        let producer = topic.producer();
        let value = [7u8; RECORD];
        let start = Instant::now();
        for _ in 0..n {
            producer.send(Record::new(&value))?;
        }
        let r = rate(n, start.elapsed());
        for f in followers {
            f.result()?;
        }
        Ok(r)
    };
    let (mut none, mut niced, mut two) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        none.push(run(0, false)?);
        niced.push(run(2, true)?);
        two.push(run(2, false)?);
    }
    for v in [&mut none, &mut niced, &mut two] {
        v.sort_by(f64::total_cmp);
    }
    Ok((none[1], niced[1], two[1]))
}
