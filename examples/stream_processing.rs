//! Stream processing, exactly once: consume a topic, transform, produce to
//! another — in transactions — and be killed with `kill -9` again and again.
//!
//! Sensors have published temperatures in tenths of a degree Celsius to
//! `readings-celsius`, keyed by sensor. A converter, a consumer-group
//! member, polls a batch, converts each reading to Fahrenheit and keeps a
//! running count and sum per sensor; it sends one output record per reading
//! to `readings-fahrenheit` (keyed by sensor: the reading in °F, the
//! sensor's count so far and its running sum) into a [`Transaction`], adds
//! its input positions with [`Transaction::commit_offsets`], and commits.
//! The output records and the input positions are committed together or not
//! at all, so the converter needs no deduplication of its own: after any
//! crash the group resumes where the last committed transaction left it,
//! and the output holds exactly what the committed transactions wrote. On
//! start the converter rebuilds its running totals from the output topic
//! (the latest record of each sensor), which is exactly the state those
//! transactions reached.
//!
//! The converter runs in a child process: this program started again with
//! `MILLPOND_STREAM_CONVERTER` set (in `cargo test`, the test binary running
//! only `tests::converter_child`). The parent kills it with SIGKILL at
//! random moments — some while it is still opening the broker and
//! recovering, some a random fraction of a millisecond after it began a
//! commit, the others a random few milliseconds after one, often with a
//! transaction open — and starts it again each time; after the last kill it
//! lets it finish.
//!
//! The check, against a model computed from the readings alone: for every
//! sensor the output is exactly the model's sequence of (°F, count, running
//! sum) — no duplicate, no loss, every value right — and the group's
//! committed offsets are the ends of the input.
//!
//! `cargo run --release --example stream_processing [readings [kills [seed]]]`
//!
//! [`Transaction`]: millpond::Transaction
//! [`Transaction::commit_offsets`]: millpond::Transaction::commit_offsets

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use millpond::{AutoCommit, Broker, Record, StartFrom, Topic, TopicConfig};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const SENSORS: u64 = 50;
const PARTITIONS: u32 = 3;
const BATCH: usize = 500;
const INPUT: &str = "readings-celsius";
const OUTPUT: &str = "readings-fahrenheit";
const GROUP: &str = "converter";

/// The environment variable that makes this program the converter; its
/// value is the broker's directory.
const CHILD_ENV: &str = "MILLPOND_STREAM_CONVERTER";
/// The test that is the converter's entry point in `cargo test`.
const CHILD_TEST: &str = "tests::converter_child";

/// Reading `i`: its sensor and its temperature in tenths of a degree Celsius.
fn reading(i: u64) -> (String, i64) {
    (format!("sensor-{}", i % SENSORS), ((i * 7919) % 600) as i64 - 200)
}

/// The transformation: tenths of a degree Celsius to tenths of Fahrenheit.
fn to_fahrenheit(tenths_celsius: i64) -> i64 {
    tenths_celsius * 9 / 5 + 320
}

/// A sensor's running totals: readings so far and the sum of their °F.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Totals {
    count: u64,
    sum: i64,
}

/// One output record's value: the reading in °F, then the sensor's totals
/// after it.
fn output_value(fahrenheit: i64, t: Totals) -> String {
    format!("{fahrenheit} {} {}", t.count, t.sum)
}

fn parse_output(value: &[u8]) -> Result<(i64, Totals), BoxError> {
    let text = std::str::from_utf8(value)?;
    let mut fields = text.split(' ');
    let mut next = || fields.next().ok_or_else(|| format!("short output value {text:?}"));
    let fahrenheit = next()?.parse()?;
    let count = next()?.parse()?;
    let sum = next()?.parse()?;
    Ok((fahrenheit, Totals { count, sum }))
}

fn topics(broker: &Broker) -> Result<(Topic, Topic), BoxError> {
    let config = TopicConfig::default().partitions(PARTITIONS);
    Ok((broker.create_topic(INPUT, config.clone())?, broker.create_topic(OUTPUT, config)?))
}

// ---------------------------------------------------------------------------
// The converter (the child process)

/// If this process was started as the converter, converts and returns the
/// outcome.
fn run_converter_if_asked() -> Option<Result<(), BoxError>> {
    let dir = std::env::var_os(CHILD_ENV)?;
    Some(converter(Path::new(&dir)))
}

/// The converter: resumes from the group's committed offsets and the state
/// in the output topic, converts until the input is used up, then leaves.
/// Prints `READY <aborted>` once open (`<aborted>`: partitions where
/// recovery aborted an open transaction's records), `POLLED <n>` for each
/// batch, `COMMITTED <n>` after its transaction committed, `DONE` at the
/// end.
fn converter(dir: &Path) -> Result<(), BoxError> {
    let broker = Broker::open(dir)?;
    let aborted = broker.recovery_report().iter().filter(|e| e.reason.contains("aborted")).count();
    let (input, output) = topics(&broker)?;
    // The state the committed transactions reached: each sensor's latest
    // output record (a sensor's records all go to one partition, in order).
    let mut totals: HashMap<Vec<u8>, Totals> = HashMap::new();
    for m in output.consumer(StartFrom::Earliest)?.try_iter() {
        let m = m?;
        totals.insert(m.key().unwrap_or_default().to_vec(), parse_output(m.value())?.1);
    }
    let mut member = input.group(GROUP)?.auto_commit(AutoCommit::Off).commit_on_revoke(false).join()?;
    println!("READY {aborted}");
    let mut idle_since = Instant::now();
    loop {
        let batch = member.poll(BATCH, Duration::from_millis(20))?;
        if batch.is_empty() {
            if member.assignment().len() == PARTITIONS as usize && member.lag() == 0 {
                break; // the whole input is converted and committed
            }
            if idle_since.elapsed() > Duration::from_secs(30) {
                return Err("the converter got no input for 30 s".into());
            }
            continue;
        }
        idle_since = Instant::now();
        println!("POLLED {}", batch.len());
        // The batch's new totals, kept apart until the transaction commits.
        let mut staged: HashMap<Vec<u8>, Totals> = HashMap::new();
        let mut txn = broker.transaction()?;
        for m in &batch {
            let key = m.key().ok_or("a reading without a sensor")?;
            let celsius: i64 = std::str::from_utf8(m.value())?.parse()?;
            let fahrenheit = to_fahrenheit(celsius);
            let before = staged.get(key).or_else(|| totals.get(key)).copied().unwrap_or_default();
            let after = Totals { count: before.count + 1, sum: before.sum + fahrenheit };
            staged.insert(key.to_vec(), after);
            txn.send(&output, Record::new(output_value(fahrenheit, after)).key(key))?;
        }
        txn.commit_offsets(&mut member)?; // the input positions, in the same transaction
        println!("COMMITTING");
        txn.commit()?;
        totals.extend(staged);
        println!("COMMITTED {}", batch.len());
    }
    member.close()?;
    broker.close()?;
    println!("DONE");
    Ok(())
}

// ---------------------------------------------------------------------------
// The parent: starts the converter, kills it, checks the output

/// xorshift64*: the kill schedule's randomness, reproducible from a seed.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `lo..=hi` (near enough).
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}

/// A converter process, its stdout read line by line.
struct Converter {
    child: Child,
    out: BufReader<ChildStdout>,
}

/// When the parent kills a converter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    /// A random few milliseconds after it starts: while it opens and recovers.
    Opening,
    /// A random fraction of a millisecond after it starts a commit.
    Committing,
    /// A random few milliseconds after a commit.
    Working,
}

/// What one converter run printed.
#[derive(Debug, Default)]
struct Lines {
    ready: bool,
    aborted_by_recovery: u64,
    polled: u64,
    committed: u64,
    /// The records of the batch polled but not reported committed.
    in_flight: u64,
    /// Whether the converter said it is committing that batch.
    committing: bool,
    transactions: u64,
    done: bool,
}

impl Converter {
    fn spawn(dir: &Path) -> Result<Converter, BoxError> {
        let mut cmd = Command::new(std::env::current_exe()?);
        if cfg!(test) {
            cmd.args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"]);
        }
        let mut child = cmd.env(CHILD_ENV, dir).stdin(Stdio::null()).stdout(Stdio::piped()).spawn()?;
        let out = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        Ok(Converter { child, out })
    }

    /// Reads the next line into `lines`; false at the end of the output.
    /// The test harness's own words may precede a line's marker.
    fn read_line(&mut self, lines: &mut Lines) -> Result<bool, BoxError> {
        let mut l = String::new();
        if self.out.read_line(&mut l)? == 0 {
            return Ok(false);
        }
        let number = |marker: &str| -> Result<Option<u64>, BoxError> {
            match l.find(marker) {
                Some(i) => Ok(Some(l[i + marker.len()..].trim().parse()?)),
                None => Ok(None),
            }
        };
        if let Some(n) = number("READY ")? {
            lines.ready = true;
            lines.aborted_by_recovery = n;
        } else if let Some(n) = number("POLLED ")? {
            lines.polled += n;
            lines.in_flight = n;
        } else if l.contains("COMMITTING") {
            lines.committing = true;
        } else if let Some(n) = number("COMMITTED ")? {
            lines.committed += n;
            lines.in_flight = 0;
            lines.committing = false;
            lines.transactions += 1;
        } else if l.contains("DONE") {
            lines.done = true;
        }
        Ok(true)
    }

    /// Reads the rest of the output and waits for the process to end.
    fn finish(mut self, mut lines: Lines) -> Result<(Lines, std::process::ExitStatus), BoxError> {
        while self.read_line(&mut lines)? {}
        Ok((lines, self.child.wait()?))
    }
}

/// What the run measured.
#[derive(Debug)]
struct Outcome {
    readings: u64,
    seed: u64,
    kills: u64,
    /// Kills that landed before the converter was open (recovering).
    kills_while_opening: u64,
    /// Kills that landed after a batch was polled and before its commit was
    /// reported: a transaction open, or committing.
    kills_in_transaction: u64,
    /// Of those, the kills after the converter said it was committing (in
    /// the commit, or just after it returned).
    kills_in_commit: u64,
    /// Their batches' records, converted again after the restart (but for
    /// a batch whose commit had returned).
    converted_again: u64,
    /// Partitions where a converter's recovery aborted an open
    /// transaction's records.
    aborted_by_recovery: u64,
    transactions: u64,
    outputs: u64,
    duplicates: u64,
    /// Offsets of the output taken by commit markers.
    markers: u64,
    secs: f64,
}

fn run(dir: &Path, readings: u64, kills: u64, seed: u64) -> Result<Outcome, BoxError> {
    let start = Instant::now();
    // The sensors' readings, all published before the converter starts
    // (one process writes a broker directory at a time).
    {
        let broker = Broker::open(dir)?;
        let (input, _) = topics(&broker)?;
        let producer = input.producer();
        for chunk in (0..readings).collect::<Vec<_>>().chunks(10_000) {
            producer.send_batch(chunk.iter().map(|&i| {
                let (sensor, celsius) = reading(i);
                Record::new(celsius.to_string()).key(sensor)
            }))?;
        }
        broker.close()?;
    }

    // The kills (see `When`): after a random number of commits, spread so
    // that the kills fall in the first half of the input.
    let mut rng = Rng(seed | 1);
    let batches = readings.div_ceil(BATCH as u64);
    let max_commits = (batches / (2 * kills.max(1))).max(1);
    let mut o = Outcome {
        readings,
        seed,
        kills: 0,
        kills_while_opening: 0,
        kills_in_transaction: 0,
        kills_in_commit: 0,
        converted_again: 0,
        aborted_by_recovery: 0,
        transactions: 0,
        outputs: 0,
        duplicates: 0,
        markers: 0,
        secs: 0.0,
    };
    let mut finished = None;
    while o.kills < kills {
        let mut c = Converter::spawn(dir)?;
        let mut lines = Lines::default();
        let mut ended = false;
        let commits = rng.range(1, max_commits);
        let (when, delay) = match rng.range(1, 5) {
            1 => (When::Opening, rng.range(0, 5_000)),
            2 => (When::Committing, rng.range(0, 300)),
            _ => (When::Working, rng.range(0, 3_000)),
        };
        while when != When::Opening && (lines.transactions < commits || (when == When::Committing && !lines.committing))
        {
            if !c.read_line(&mut lines)? {
                ended = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_micros(delay));
        if !ended {
            c.child.kill()?; // SIGKILL
        }
        let (lines, status) = c.finish(lines)?;
        o.aborted_by_recovery += lines.aborted_by_recovery;
        o.transactions += lines.transactions;
        if lines.done {
            // It finished the input before the kill (which, if it came at
            // all, came after it had closed the broker): nothing to kill.
            if status.code().is_some_and(|c| c != 0) {
                return Err(format!("the converter failed: {status}").into());
            }
            finished = Some(lines);
            break;
        }
        if status.success() || status.code().is_some() {
            return Err(format!("the converter ended by itself before its kill: {status}").into());
        }
        o.kills += 1;
        if !lines.ready {
            o.kills_while_opening += 1;
        } else if lines.in_flight > 0 {
            o.kills_in_transaction += 1;
            o.kills_in_commit += u64::from(lines.committing);
            o.converted_again += lines.in_flight;
        }
    }
    // The last converter finishes the input.
    if finished.is_none() {
        let (lines, status) = Converter::spawn(dir)?.finish(Lines::default())?;
        if !status.success() || !lines.done {
            return Err(format!("the last converter failed: {status}").into());
        }
        o.aborted_by_recovery += lines.aborted_by_recovery;
        o.transactions += lines.transactions;
    }
    o.secs = start.elapsed().as_secs_f64();

    // The model: each sensor's (°F, count, running sum), in order.
    let mut model: HashMap<Vec<u8>, Vec<(i64, Totals)>> = HashMap::new();
    for i in 0..readings {
        let (sensor, celsius) = reading(i);
        let seq = model.entry(sensor.into_bytes()).or_default();
        let before = seq.last().map(|s| s.1).unwrap_or_default();
        let f = to_fahrenheit(celsius);
        seq.push((f, Totals { count: before.count + 1, sum: before.sum + f }));
    }
    let broker = Broker::open(dir)?;
    let (input, output) = topics(&broker)?;
    let mut got: HashMap<Vec<u8>, Vec<(i64, Totals)>> = HashMap::new();
    for m in output.consumer(StartFrom::Earliest)?.try_iter() {
        let m = m?;
        o.outputs += 1;
        let key = m.key().ok_or("an output record without a sensor")?.to_vec();
        got.entry(key).or_default().push(parse_output(m.value())?);
    }
    for p in 0..PARTITIONS {
        o.markers += output.high_watermark(p)?;
    }
    o.markers -= o.outputs;
    let (mut lost, mut wrong) = (0u64, 0u64);
    let mut first_error = None;
    for (sensor, expected) in &model {
        let actual = got.remove(sensor).unwrap_or_default();
        // A duplicate repeats a count already seen; a loss skips one.
        let mut seen = std::collections::HashSet::new();
        for (f, t) in &actual {
            if !seen.insert(t.count) {
                o.duplicates += 1;
            } else if t.count == 0 || t.count > expected.len() as u64 || expected[t.count as usize - 1] != (*f, *t) {
                wrong += 1;
            }
        }
        lost += (1..=expected.len() as u64).filter(|c| !seen.contains(c)).count() as u64;
        if actual != *expected && first_error.is_none() {
            let i = actual.iter().zip(expected).take_while(|(a, e)| a == e).count();
            first_error = Some(format!(
                "{}: output #{i} is {:?}, the model's {:?} ({} outputs, {} in the model)",
                String::from_utf8_lossy(sensor),
                actual.get(i),
                expected.get(i),
                actual.len(),
                expected.len()
            ));
        }
    }
    let strangers: u64 = got.values().map(|v| v.len() as u64).sum();
    if let Some(error) = first_error.or_else(|| (strangers > 0).then(|| format!("{strangers} outputs of no sensor"))) {
        return Err(format!(
            "the output is not the model's: {} duplicates, {lost} lost, {wrong} wrong; first: {error} (seed {seed})",
            o.duplicates
        )
        .into());
    }
    let committed = input.group(GROUP)?.committed()?;
    for p in 0..PARTITIONS {
        let end = input.high_watermark(p)?;
        if committed.get(&p) != Some(&end) {
            return Err(
                format!("partition {p}: the group committed {:?}, the input ends at {end}", committed.get(&p)).into()
            );
        }
    }
    if o.outputs != readings {
        return Err(format!("{} outputs for {readings} readings", o.outputs).into());
    }
    Ok(o)
}

fn main() -> Result<(), BoxError> {
    if let Some(converted) = run_converter_if_asked() {
        return converted;
    }
    let mut args = std::env::args().skip(1);
    let readings: u64 = args.next().map_or(Ok(200_000), |n| n.parse())?;
    let kills: u64 = args.next().map_or(Ok(10), |n| n.parse())?;
    let seed: u64 = match args.next() {
        Some(s) => s.parse()?,
        None => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as u64,
    };
    let dir = std::env::temp_dir().join(format!("millpond-stream-processing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir); // a fresh directory
    let outcome = run(&dir, readings, kills, seed);
    std::fs::remove_dir_all(&dir)?;
    let o = outcome?;
    println!(
        "{} readings converted °C -> °F with running totals per sensor in {:.2} s, the converter killed {} times (seed {})",
        o.readings, o.secs, o.kills, o.seed
    );
    println!(
        "  kills: {} while opening, {} with a transaction open ({} of them once its commit had begun; up to {} records converted again after a restart)",
        o.kills_while_opening, o.kills_in_transaction, o.kills_in_commit, o.converted_again
    );
    println!("  partitions where recovery aborted an open transaction's records: {}", o.aborted_by_recovery);
    println!(
        "  output records: {} ({} duplicates), {} transactions reported committed, {} offsets taken by commit markers",
        o.outputs, o.duplicates, o.transactions, o.markers
    );
    println!("ok: the output is exactly the model's, every sensor's totals right, with no deduplication");
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The converter process, started by the test below (a no-op when the
    /// test harness runs it on its own).
    #[test]
    fn converter_child() {
        if let Some(converted) = super::run_converter_if_asked() {
            converted.unwrap();
        }
    }

    #[test]
    fn output_is_exact_despite_kills() {
        let dir = std::env::temp_dir().join(format!("millpond-stream-processing-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
        let outcome = super::run(&dir, 40_000, 6, seed);
        std::fs::remove_dir_all(&dir).unwrap();
        let o = outcome.unwrap();
        println!("{o:?}");
        assert_eq!(o.kills, 6, "seed {seed}");
        assert_eq!(o.outputs, 40_000);
        assert_eq!(o.duplicates, 0);
    }
}
