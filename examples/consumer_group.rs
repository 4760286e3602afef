//! A pool of workers sharing a topic through a consumer group.
//!
//! Three worker threads join the group `workers` on a six-partition topic
//! while a producer publishes tasks. Each worker polls a batch, handles it and
//! commits. Halfway through, one worker stops: the group rebalances, and the
//! others take over its partitions from its last commit. The example checks
//! that every task was handled, and that none was handled twice (each worker
//! commits after every batch, so the hand-over point is exact).
//!
//! `cargo run --release --example consumer_group [tasks]`

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use millpond::{AutoCommit, Broker, Record, TopicConfig};

/// What the run measured.
#[derive(Debug)]
struct Outcome {
    tasks: u64,
    handled_by: Vec<u64>,
    duplicates: u64,
    secs: f64,
}

fn run(dir: &Path, tasks: u64) -> Result<Outcome, Box<dyn std::error::Error + Send + Sync>> {
    let broker = Broker::open(dir)?;
    let topic = broker.create_topic("tasks", TopicConfig::default().partitions(6))?;
    let group = topic.group("workers")?.auto_commit(AutoCommit::Off);

    let handled: Arc<Mutex<HashMap<(u32, u64), u32>>> = Arc::default();
    let total = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let start = Instant::now();

    let mut workers = Vec::new();
    for w in 0..3u64 {
        let mut member = group.join()?;
        let (handled, total, done) = (Arc::clone(&handled), Arc::clone(&total), Arc::clone(&done));
        workers.push(std::thread::spawn(move || -> Result<u64, millpond::Error> {
            let mut mine = 0;
            while !done.load(Ordering::SeqCst) {
                let batch = member.poll(100, Duration::from_millis(20))?;
                for m in &batch {
                    // "Handle" the task: remember who did it.
                    *handled
                        .lock()
                        .expect("no worker panics while holding the lock")
                        .entry((m.partition(), m.offset()))
                        .or_insert(0) += 1;
                    mine += 1;
                }
                if !batch.is_empty() {
                    member.commit()?; // at-least-once: commit after handling
                    total.fetch_add(batch.len() as u64, Ordering::SeqCst);
                }
                // Worker 0 stops halfway; the others take over its partitions.
                if w == 0 && total.load(Ordering::SeqCst) >= tasks / 2 {
                    member.close()?;
                    return Ok(mine);
                }
            }
            Ok(mine)
        }));
    }

    let producer = topic.producer();
    for i in 0..tasks {
        producer.send(Record::new(format!("task-{i}")).key(format!("{}", i % 97)))?;
    }

    let deadline = Instant::now() + Duration::from_secs(120);
    while group.lag()?.iter().map(|l| l.lag).sum::<u64>() > 0 {
        if Instant::now() > deadline {
            return Err("workers did not finish in time".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    done.store(true, Ordering::SeqCst);
    let mut handled_by = Vec::new();
    for w in workers {
        handled_by.push(w.join().map_err(|_| "a worker panicked")??);
    }
    let secs = start.elapsed().as_secs_f64();

    let handled = handled.lock().map_err(|_| "poisoned")?;
    let missing = (0..6)
        .flat_map(|p| (0..topic.high_watermark(p).unwrap_or(0)).map(move |o| (p, o)))
        .filter(|k| !handled.contains_key(k))
        .count();
    if missing > 0 || handled.len() as u64 != tasks {
        return Err(format!("{missing} tasks were never handled").into());
    }
    let duplicates = handled.values().map(|&n| u64::from(n) - 1).sum();
    Ok(Outcome { tasks, handled_by, duplicates, secs })
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let tasks: u64 = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 50_000,
    };
    let dir = std::env::temp_dir().join(format!("millpond-consumer-group-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir); // a fresh directory
    let outcome = run(&dir, tasks);
    std::fs::remove_dir_all(&dir)?;
    let o = outcome?;
    println!("{} tasks handled by 3 workers in {:.2} s; worker 0 stopped halfway", o.tasks, o.secs);
    for (w, n) in o.handled_by.iter().enumerate() {
        println!("  worker {w}: {n} tasks");
    }
    println!("duplicates: {}", o.duplicates);
    if o.duplicates != 0 {
        return Err("a task was handled twice although every batch was committed".into());
    }
    println!("ok: every task handled exactly once across the rebalance");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_task_is_handled_once_when_a_worker_stops_halfway() {
        let dir = std::env::temp_dir().join(format!("millpond-consumer-group-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let outcome = super::run(&dir, 6_000);
        std::fs::remove_dir_all(&dir).unwrap();
        let o = outcome.unwrap();
        assert_eq!(o.tasks, 6_000);
        assert_eq!(o.handled_by.iter().sum::<u64>(), 6_000);
        assert_eq!(o.duplicates, 0);
    }
}
