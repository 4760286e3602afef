//! Stream processing: consume a topic, transform, produce to another, commit
//! — and crash in the middle.
//!
//! Sensors publish temperatures in tenths of a degree Celsius to
//! `readings-celsius`. A converter, a consumer-group member, polls a batch,
//! converts each reading to Fahrenheit, publishes the results to
//! `readings-fahrenheit` (carrying the source partition and offset in
//! headers) and then commits: at-least-once. Halfway through, after
//! publishing a batch but before committing it, the converter and the broker
//! go down. A new broker is opened on the same directory, a new converter
//! resumes from the group's committed offsets and finishes the stream while
//! the sensors go on publishing.
//!
//! The check: every input record's conversion is in the output at least once
//! and correct; after dedup by source (partition, offset) the output is
//! exactly the expected set — nothing lost, nothing invented — and the only
//! duplicates are the batch that was published but not committed.
//!
//! `cargo run --release --example stream_processing [readings]`

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use millpond::{AutoCommit, Broker, GroupMember, Message, Producer, Record, StartFrom, Topic, TopicConfig};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const SENSORS: u64 = 50;
const BATCH: usize = 200;
const INPUT: &str = "readings-celsius";
const OUTPUT: &str = "readings-fahrenheit";

/// What the run measured.
#[derive(Debug)]
struct Outcome {
    inputs: u64,
    outputs: u64,
    distinct: u64,
    duplicates: u64,
    uncommitted_batch: u64,
    secs: f64,
}

/// Reading `i`: its sensor and its temperature in tenths of a degree Celsius.
fn reading(i: u64) -> (String, i64) {
    (format!("sensor-{}", i % SENSORS), ((i * 7919) % 600) as i64 - 200)
}

/// The transformation: tenths of a degree Celsius to tenths of Fahrenheit.
fn to_fahrenheit(tenths_celsius: i64) -> i64 {
    tenths_celsius * 9 / 5 + 320
}

fn open_topics(broker: &Broker) -> Result<(Topic, Topic), BoxError> {
    let config = TopicConfig::default().partitions(3);
    Ok((broker.create_topic(INPUT, config.clone())?, broker.create_topic(OUTPUT, config)?))
}

/// The sensors: publish readings `range` on a thread of their own.
fn sensors(input: &Topic, range: Range<u64>) -> JoinHandle<Result<(), millpond::Error>> {
    let producer = input.producer();
    std::thread::spawn(move || {
        for i in range {
            let (sensor, celsius) = reading(i);
            producer.send(Record::new(celsius.to_string()).key(sensor))?;
        }
        Ok(())
    })
}

/// Converts one batch and publishes the results (not committed yet).
fn convert(output: &Producer, batch: &[Message]) -> Result<(), BoxError> {
    let mut records = Vec::with_capacity(batch.len());
    for m in batch {
        let celsius: i64 = std::str::from_utf8(m.value())?.parse()?;
        let mut r = Record::new(to_fahrenheit(celsius).to_string())
            .header("source-partition", m.partition().to_string())
            .header("source-offset", m.offset().to_string());
        if let Some(key) = m.key() {
            r = r.key(key);
        }
        records.push(r);
    }
    output.send_batch(records)?;
    Ok(())
}

/// Polls until a non-empty batch arrives (or 30 s pass).
fn next_batch(member: &mut GroupMember) -> Result<Vec<Message>, BoxError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let batch = member.poll(BATCH, Duration::from_millis(20))?;
        if !batch.is_empty() {
            return Ok(batch);
        }
        if Instant::now() > deadline {
            return Err("no input for 30 s".into());
        }
    }
}

fn run(dir: &Path, readings: u64) -> Result<Outcome, BoxError> {
    let start = Instant::now();
    let half = readings / 2;

    // Session 1: the sensors publish the first half while the converter runs;
    // after about a quarter, it publishes a batch and goes down uncommitted.
    let broker = Broker::open(dir)?;
    let (input, output) = open_topics(&broker)?;
    let publisher = sensors(&input, 0..half);
    let mut member = input.group("converter")?.auto_commit(AutoCommit::Off).join()?;
    let producer = output.producer();
    let mut converted = 0;
    while converted < readings / 4 {
        let batch = next_batch(&mut member)?;
        convert(&producer, &batch)?;
        member.commit()?; // after publishing: at-least-once
        converted += batch.len() as u64;
    }
    let uncommitted = next_batch(&mut member)?;
    convert(&producer, &uncommitted)?;
    // The crash: no commit for that batch. (The sensors finish their half
    // first so that their producer is not cut off in the middle.)
    publisher.join().map_err(|_| "the sensors panicked")??;
    drop(member); // AutoCommit::Off: leaves without committing
    drop((producer, input, output));
    drop(broker);

    // Session 2: a new broker, a new converter resuming from the group's
    // committed offsets, the sensors publishing the second half meanwhile.
    let broker = Broker::open(dir)?;
    let (input, output) = open_topics(&broker)?;
    let publisher = sensors(&input, half..readings);
    let mut member = input.group("converter")?.auto_commit(AutoCommit::Off).join()?;
    let producer = output.producer();
    loop {
        let published_all = publisher.is_finished();
        let batch = member.poll(BATCH, Duration::from_millis(20))?;
        if batch.is_empty() {
            if published_all {
                break; // everything published has been converted and committed
            }
            continue;
        }
        convert(&producer, &batch)?;
        member.commit()?;
    }
    publisher.join().map_err(|_| "the sensors panicked")??;
    member.close()?;
    let secs = start.elapsed().as_secs_f64();

    // Check: the expected conversion of every input record, by source.
    let mut expected: HashMap<(u32, u64), (Vec<u8>, String)> = HashMap::new();
    for m in input.consumer(StartFrom::Earliest)?.try_iter() {
        let m = m?;
        let celsius: i64 = std::str::from_utf8(m.value())?.parse()?;
        expected.insert(
            (m.partition(), m.offset()),
            (m.key().unwrap_or_default().to_vec(), to_fahrenheit(celsius).to_string()),
        );
    }
    if expected.len() as u64 != readings {
        return Err(format!("{} readings in the input, expected {readings}", expected.len()).into());
    }
    let mut seen: HashMap<(u32, u64), u64> = HashMap::new();
    let mut outputs = 0;
    for m in output.consumer(StartFrom::Earliest)?.try_iter() {
        let m = m?;
        outputs += 1;
        let header = |name: &str| -> Result<u64, BoxError> {
            Ok(std::str::from_utf8(m.header(name).ok_or_else(|| format!("output without {name}"))?)?.parse()?)
        };
        let source = (u32::try_from(header("source-partition")?)?, header("source-offset")?);
        let (key, value) = expected.get(&source).ok_or_else(|| format!("output for unknown input {source:?}"))?;
        if m.key() != Some(key.as_slice()) || m.value() != value.as_bytes() {
            return Err(format!("wrong conversion of input {source:?}: {m:?}").into());
        }
        *seen.entry(source).or_insert(0) += 1;
    }
    if let Some(missing) = expected.keys().find(|k| !seen.contains_key(k)) {
        let lost = expected.len() - seen.len();
        return Err(format!("{lost} readings were never converted, e.g. {missing:?}").into());
    }
    let duplicates = outputs - seen.len() as u64;
    if duplicates != uncommitted.len() as u64 {
        return Err(
            format!("{duplicates} duplicates, expected the {} of the uncommitted batch", uncommitted.len()).into()
        );
    }
    Ok(Outcome {
        inputs: readings,
        outputs,
        distinct: seen.len() as u64,
        duplicates,
        uncommitted_batch: uncommitted.len() as u64,
        secs,
    })
}

fn main() -> Result<(), BoxError> {
    let readings: u64 = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 500_000,
    };
    let dir = std::env::temp_dir().join(format!("millpond-stream-processing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir); // a fresh directory
    let outcome = run(&dir, readings);
    std::fs::remove_dir_all(&dir)?;
    let o = outcome?;
    println!(
        "{} readings converted °C -> °F in {:.2} s ({:.0} records/s), with a crash and a restart halfway",
        o.inputs,
        o.secs,
        o.inputs as f64 / o.secs
    );
    println!("  published before the crash but not committed: {} readings", o.uncommitted_batch);
    println!("  output records: {} ({} distinct sources, {} duplicates)", o.outputs, o.distinct, o.duplicates);
    println!("ok: after dedup by source offset the output is exactly one correct conversion per reading");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_reading_is_converted_despite_a_crash() {
        let dir = std::env::temp_dir().join(format!("millpond-stream-processing-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let outcome = super::run(&dir, 20_000);
        std::fs::remove_dir_all(&dir).unwrap();
        let o = outcome.unwrap();
        assert_eq!(o.distinct, 20_000);
        assert!(o.duplicates > 0);
        assert_eq!(o.outputs, o.distinct + o.duplicates);
    }
}
