//! Back-pressure: a bursty producer, a slow consumer, and a bound on the
//! backlog between them.
//!
//! Two producers publish in bursts; a slow consumer-group member handles the
//! records one by one and commits after each batch. The *backlog* is what
//! has been written and not yet committed by the group.
//!
//! 1. With an unbounded topic (the default), the log is the buffer: the
//!    producers never wait, the whole burst lands on disk at once, and the
//!    consumer works it off at its own pace.
//! 2. With `Backlog::Records(64)`, the producers are held back whenever the
//!    backlog reaches 64: one producer uses `send_timeout` (and retries with
//!    the record it gets back), the other `try_send` (and backs off when the
//!    partition is `Full`). The backlog stays within the limit plus one
//!    record per producer (the bound is soft: producers check it
//!    concurrently), while the group catches up.
//!
//! The check: in both modes every record is consumed exactly once; with the
//! bound, the peak backlog never exceeds 64 + 2. It prints the peak backlog
//! of each mode and how often the producers were turned away.
//!
//! `cargo run --release --example backpressure [records-per-producer]`

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use millpond::{AutoCommit, Backlog, Broker, Record, SendTimeoutError, TopicConfig, TrySendError};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const PRODUCERS: u64 = 2;
const BURSTS: u64 = 5;
const PAUSE: Duration = Duration::from_millis(20);
/// Simulated work per record in the slow consumer.
const WORK: Duration = Duration::from_micros(50);
const LIMIT: u64 = 64;

/// What one mode measured.
#[derive(Debug)]
struct Phase {
    limit: Option<u64>,
    records: u64,
    consumed: u64,
    /// Largest backlog seen by a producer right after a send.
    peak_backlog: u64,
    /// `send_timeout` calls that timed out and handed the record back.
    timeouts: u64,
    /// `try_send` calls that found the partition full.
    fulls: u64,
    commits: u64,
    secs: f64,
}

/// What the run measured.
#[derive(Debug)]
struct Outcome {
    unbounded: Phase,
    bounded: Phase,
}

/// One mode: `PRODUCERS` producers publish `per_producer` records each in
/// `BURSTS` bursts to a new topic `name`; a slow consumer consumes them.
fn phase(broker: &Broker, name: &str, limit: Backlog, per_producer: u64) -> Result<Phase, BoxError> {
    let topic = broker.create_topic(name, TopicConfig::default().max_backlog(limit))?;
    let records = PRODUCERS * per_producer;
    // The group joins first: from now on, its commits are what makes room.
    let mut member = topic.group("slow-consumer")?.auto_commit(AutoCommit::Off).join()?;
    // The offset the consumer is about to commit, stored before it commits:
    // never behind the group's committed offset, so the backlog a producer
    // computes from it is never larger than the true one.
    let committing = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicU64::new(0));
    let start = Instant::now();

    let consumer = {
        let committing = Arc::clone(&committing);
        thread::spawn(move || -> Result<(u64, u64), BoxError> {
            let mut seen = vec![false; records as usize];
            let (mut consumed, mut commits) = (0, 0);
            let deadline = Instant::now() + Duration::from_secs(120);
            while consumed < records {
                if Instant::now() > deadline {
                    return Err(format!("only {consumed} of {records} records consumed in 120 s").into());
                }
                let batch = member.poll(100, Duration::from_millis(20))?;
                if batch.is_empty() {
                    continue;
                }
                for m in &batch {
                    let text = std::str::from_utf8(m.value())?;
                    let (producer, seq) = text.split_once(':').ok_or("malformed record")?;
                    let i = (producer.parse::<u64>()? * per_producer + seq.parse::<u64>()?) as usize;
                    if std::mem::replace(seen.get_mut(i).ok_or("unknown record")?, true) {
                        return Err(format!("record {text} consumed twice").into());
                    }
                }
                thread::sleep(WORK * batch.len() as u32); // the slow part
                consumed += batch.len() as u64;
                committing.store(member.position(0)?, Ordering::SeqCst);
                member.commit()?;
                commits += 1;
            }
            member.close()?;
            Ok((consumed, commits))
        })
    };

    let mut producers = Vec::new();
    for id in 0..PRODUCERS {
        let (producer, committing, peak) = (topic.producer(), Arc::clone(&committing), Arc::clone(&peak));
        producers.push(thread::spawn(move || -> Result<(u64, u64), BoxError> {
            let (mut timeouts, mut fulls) = (0, 0);
            let burst = per_producer / BURSTS;
            for seq in 0..per_producer {
                if seq > 0 && seq % burst == 0 {
                    thread::sleep(PAUSE); // between bursts
                }
                let mut record = Record::new(format!("{id}:{seq}"));
                let sent = loop {
                    if id % 2 == 0 {
                        match producer.send_timeout(record, Duration::from_millis(1)) {
                            Ok(sent) => break sent,
                            Err(SendTimeoutError::Timeout(back)) => {
                                timeouts += 1;
                                record = back; // the same record, handed back: try again
                            }
                            Err(e) => return Err(e.into_error().into()),
                        }
                    } else {
                        match producer.try_send(record) {
                            Ok(sent) => break sent,
                            Err(TrySendError::Full(back)) => {
                                fulls += 1;
                                record = back;
                                thread::sleep(Duration::from_micros(200)); // back off
                            }
                            Err(e) => return Err(e.into_error().into()),
                        }
                    }
                };
                let backlog = (sent.offset + 1).saturating_sub(committing.load(Ordering::SeqCst));
                peak.fetch_max(backlog, Ordering::SeqCst);
            }
            Ok((timeouts, fulls))
        }));
    }

    let (mut timeouts, mut fulls) = (0, 0);
    for p in producers {
        let (t, f) = p.join().map_err(|_| "a producer panicked")??;
        timeouts += t;
        fulls += f;
    }
    let (consumed, commits) = consumer.join().map_err(|_| "the consumer panicked")??;
    let secs = start.elapsed().as_secs_f64();
    let limit = match limit {
        Backlog::Records(n) => Some(n),
        _ => None,
    };
    Ok(Phase { limit, records, consumed, peak_backlog: peak.load(Ordering::SeqCst), timeouts, fulls, commits, secs })
}

fn run(dir: &Path, per_producer: u64) -> Result<Outcome, BoxError> {
    let broker = Broker::open(dir)?;
    let unbounded = phase(&broker, "bursts-unbounded", Backlog::Unbounded, per_producer)?;
    let bounded = phase(&broker, "bursts-bounded", Backlog::Records(LIMIT), per_producer)?;
    for p in [&unbounded, &bounded] {
        if p.consumed != p.records {
            return Err(format!("{} of {} records consumed", p.consumed, p.records).into());
        }
    }
    if bounded.peak_backlog > LIMIT + PRODUCERS {
        return Err(format!("backlog reached {} with a limit of {LIMIT} records", bounded.peak_backlog).into());
    }
    Ok(Outcome { unbounded, bounded })
}

fn main() -> Result<(), BoxError> {
    let per_producer: u64 = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 10_000,
    };
    let dir = std::env::temp_dir().join(format!("millpond-backpressure-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir); // a fresh directory
    let outcome = run(&dir, per_producer);
    std::fs::remove_dir_all(&dir)?;
    let o = outcome?;
    println!(
        "{PRODUCERS} producers, {BURSTS} bursts of {} records each; a consumer doing {} µs of work per record",
        per_producer / BURSTS,
        WORK.as_micros()
    );
    let bounded = format!("Backlog::Records({LIMIT})");
    for (mode, p) in [("unbounded", &o.unbounded), (bounded.as_str(), &o.bounded)] {
        println!(
            "  {mode:<21}: {} records consumed in {:.2} s with {} commits; peak backlog {}{}; \
             send_timeout timed out {} times, try_send was Full {} times",
            p.consumed,
            p.secs,
            p.commits,
            p.peak_backlog,
            p.limit.map_or(String::new(), |n| format!(" (limit {n} + {PRODUCERS} producers)")),
            p.timeouts,
            p.fulls
        );
    }
    println!(
        "ok: the log absorbed the bursts unbounded, held the producers back when bounded; every record consumed once"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn bounded_backlog_holds_producers_back_and_loses_nothing() {
        let dir = std::env::temp_dir().join(format!("millpond-backpressure-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let outcome = super::run(&dir, 1_000);
        std::fs::remove_dir_all(&dir).unwrap();
        let o = outcome.unwrap();
        assert_eq!(o.unbounded.consumed, 2_000);
        assert_eq!(o.bounded.consumed, 2_000);
        assert!(o.bounded.peak_backlog <= super::LIMIT + super::PRODUCERS);
        assert_eq!((o.unbounded.timeouts, o.unbounded.fulls), (0, 0)); // nothing bounds the unbounded topic
        // Bursts of 200 per producer against a consumer that needs over
        // 50 µs per record: the bounded producers were turned away, and
        // the unbounded log absorbed far more than the limit.
        assert!(o.bounded.timeouts + o.bounded.fulls > 0);
        assert!(o.unbounded.peak_backlog > 2 * super::LIMIT);
    }
}
