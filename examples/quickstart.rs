//! Quickstart: two services in one process, decoupled through a topic.
//!
//! The *orders* service publishes orders; the *billing* service, on another
//! thread, consumes them at its own pace and totals them per customer.
//! Neither knows the other: they share only the topic's name. Then the broker
//! is closed and reopened, and the orders are all still there.
//!
//! Run it with `cargo run --release --example quickstart` (optionally with a
//! record count: `-- 2000000`). It checks its own outcome and exits non-zero
//! if anything is missing, duplicated or out of order.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use millpond::{Broker, Record, StartFrom, TopicConfig};

const CUSTOMERS: u64 = 100;

/// What the run measured.
#[derive(Debug)]
struct Summary {
    records: u64,
    produce_secs: f64,
    end_to_end_secs: f64,
    reread_after_restart: u64,
}

/// The amount of order `i` (deterministic, so the total can be checked).
fn amount(i: u64) -> u64 {
    (i * 7919) % 1000 + 1
}

fn run(dir: &Path, records: u64) -> Result<Summary, Box<dyn std::error::Error>> {
    let broker = Broker::open(dir)?;
    let orders = broker.create_topic("orders", TopicConfig::default().partitions(4))?;

    // The billing service: consumes every order, totals per customer, and
    // checks that each customer's orders arrive in the order they were placed.
    let mut consumer = orders.consumer(StartFrom::Earliest)?;
    let billing = std::thread::spawn(move || -> Result<HashMap<u64, (u64, u64)>, String> {
        let mut totals: HashMap<u64, (u64, u64)> = HashMap::new(); // customer -> (last seq + 1, total)
        for _ in 0..records {
            let m = consumer
                .recv_timeout(Duration::from_secs(30))
                .map_err(|e| e.to_string())?
                .ok_or("billing timed out waiting for an order")?;
            let text = std::str::from_utf8(m.value()).map_err(|e| e.to_string())?;
            let mut parts = text.split(':');
            let (Some(seq), Some(amount)) = (parts.next(), parts.next()) else {
                return Err(format!("malformed order {text:?}"));
            };
            let seq: u64 = seq.parse().map_err(|e| format!("{e}"))?;
            let amount: u64 = amount.parse().map_err(|e| format!("{e}"))?;
            let customer = seq % CUSTOMERS;
            let entry = totals.entry(customer).or_insert((0, 0));
            if seq < entry.0 {
                return Err(format!("order {seq} of customer {customer} arrived out of order"));
            }
            *entry = (seq + 1, entry.1 + amount);
        }
        Ok(totals)
    });

    // The orders service: publishes orders keyed by customer.
    let producer = orders.producer();
    let start = Instant::now();
    for i in 0..records {
        let key = (i % CUSTOMERS).to_string();
        producer.send(Record::new(format!("{i}:{}", amount(i))).key(key))?;
    }
    producer.flush()?;
    let produce_secs = start.elapsed().as_secs_f64();

    let totals = billing.join().map_err(|_| "billing thread panicked")??;
    let end_to_end_secs = start.elapsed().as_secs_f64();

    // Check the outcome.
    let billed: u64 = totals.values().map(|&(_, total)| total).sum();
    let expected: u64 = (0..records).map(amount).sum();
    if billed != expected {
        return Err(format!("billed {billed}, expected {expected}").into());
    }

    // Restart: the log is on disk, so a new broker sees every order.
    drop((producer, orders));
    broker.close()?;
    drop(broker);
    let broker = Broker::open(dir)?;
    let mut reader = broker.topic("orders")?.consumer(StartFrom::Earliest)?;
    let mut reread = 0;
    for m in reader.try_iter() {
        m?;
        reread += 1;
    }
    if reread != records {
        return Err(format!("after restart found {reread} orders, expected {records}").into());
    }
    Ok(Summary { records, produce_secs, end_to_end_secs, reread_after_restart: reread })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let records: u64 = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 1_000_000,
    };
    let dir = std::env::temp_dir().join(format!("millpond-quickstart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir); // start from a fresh directory
    println!("millpond quickstart: {records} orders, 4 partitions, data in {}", dir.display());
    let result = run(&dir, records);
    std::fs::remove_dir_all(&dir)?;
    let s = result?;
    println!(
        "orders service  : published {} orders in {:.3} s ({:.2} M records/s)",
        s.records,
        s.produce_secs,
        s.records as f64 / s.produce_secs / 1e6
    );
    println!(
        "billing service : consumed and totalled all of them, end to end {:.3} s ({:.2} M records/s)",
        s.end_to_end_secs,
        s.records as f64 / s.end_to_end_secs / 1e6
    );
    println!("after restart   : {} orders still in the log", s.reread_after_restart);
    println!("ok: every order billed exactly once, in order per customer");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn quickstart_bills_every_order_and_survives_restart() {
        let dir = std::env::temp_dir().join(format!("millpond-quickstart-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let result = super::run(&dir, 20_000);
        std::fs::remove_dir_all(&dir).unwrap();
        let summary = result.unwrap();
        assert_eq!(summary.records, 20_000);
        assert_eq!(summary.reread_after_restart, 20_000);
    }
}
