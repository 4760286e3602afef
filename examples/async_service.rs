//! An async service on tokio: request handlers publish events, a
//! consumer-group task handles them, neither knows the other.
//!
//! Requests (orders: a customer and an amount) arrive at a fixed rate and
//! are spread over four handler tasks, as a web framework would. Each
//! handler publishes an `order-placed` event to the `orders` topic, keyed by
//! customer, with the time it was published in a header: `send` is a copy
//! into the mapped log, so a handler never waits for the consumer. A
//! background task is a member of the `billing` group: it waits for events
//! with `recv_async` (holding no thread while idle), keeps a total per
//! customer, commits what it handled every 100 ms with `commit_async` (the
//! fsync runs on the broker's commit thread, so delivery never stalls on
//! it), and measures each
//! event's publish → handled latency. When every handler is done the
//! service stops the billing task with its `WakeupHandle` and checks the
//! outcome: every order billed exactly once, every customer's total equal
//! to what the requests added up to, everything committed.
//!
//! `cargo run --release --example async_service [orders] [per_second]`

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use millpond::{AutoCommit, Broker, Error, Record, TopicConfig};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Handler tasks, as a web framework's worker pool.
const HANDLERS: usize = 4;
/// Customers the orders are spread over.
const CUSTOMERS: u64 = 16;
/// How often the billing task commits what it handled.
const COMMIT_EVERY: Duration = Duration::from_millis(100);

/// One request: order `id` for `customer`, `cents`.
#[derive(Debug, Clone, Copy)]
struct Order {
    id: u64,
    customer: u64,
    cents: u64,
}

/// What the run measured and what it checked against.
#[derive(Debug)]
struct Outcome {
    billed: u64,
    totals: BTreeMap<u64, u64>,
    expected: BTreeMap<u64, u64>,
    committed: u64,
    latencies: Vec<Duration>,
}

impl Outcome {
    /// The `q`-quantile (0.0..=1.0) of the sorted latencies.
    fn quantile(&self, q: f64) -> Duration {
        let last = self.latencies.len().saturating_sub(1);
        self.latencies.get(((last as f64) * q).round() as usize).copied().unwrap_or_default()
    }
}

/// The event a handler publishes for an order: `id,customer,cents`.
fn event(o: &Order) -> String {
    format!("{},{},{}", o.id, o.customer, o.cents)
}

fn parse(bytes: &[u8]) -> Result<Order, BoxError> {
    let text = std::str::from_utf8(bytes)?;
    let mut f = text.split(',').map(str::parse::<u64>);
    let mut next = || f.next().ok_or("short event").map(|r| r.map_err(BoxError::from));
    Ok(Order { id: next()??, customer: next()??, cents: next()?? })
}

/// Nanoseconds since `base`, as a header value.
fn stamp(base: Instant) -> [u8; 8] {
    (base.elapsed().as_nanos() as u64).to_le_bytes()
}

async fn run(dir: &Path, orders: u64, per_second: u64) -> Result<Outcome, BoxError> {
    let broker = Broker::open(dir)?;
    let topic = broker.create_topic("orders", TopicConfig::default().partitions(4))?;
    let base = Instant::now();

    // The billing task: a group member, woken by appends, committing every
    // 100 ms what it has handled.
    let mut member = topic.group("billing")?.auto_commit(AutoCommit::Off).join()?;
    let stop = member.wakeup_handle();
    let handled = Arc::new(AtomicU64::new(0));
    let progress = Arc::clone(&handled);
    let billing = tokio::spawn(async move {
        let mut totals = BTreeMap::new();
        let mut seen = HashSet::new();
        let mut latencies = Vec::new();
        let mut last_commit = Instant::now();
        let mut in_flight = None;
        loop {
            let m = match member.recv_async().await {
                Ok(m) => m,
                Err(Error::Interrupted) => break, // the service is stopping
                Err(e) => return Err(BoxError::from(e)),
            };
            let sent = u64::from_le_bytes(m.header("sent").ok_or("no sent header")?.try_into()?);
            latencies.push(Duration::from_nanos((base.elapsed().as_nanos() as u64).saturating_sub(sent)));
            let order = parse(m.value())?;
            if !seen.insert(order.id) {
                return Err(format!("order {} billed twice", order.id).into());
            }
            *totals.entry(order.customer).or_insert(0) += order.cents;
            progress.fetch_add(1, Ordering::Relaxed);
            if last_commit.elapsed() >= COMMIT_EVERY {
                // Written by the broker's commit thread: receiving goes on
                // meanwhile. A finished earlier commit reports its outcome;
                // an unfinished one is covered by this one.
                if let Some(earlier) = in_flight.take().filter(|c: &millpond::CommitHandle| c.is_finished()) {
                    earlier.await?;
                }
                in_flight = Some(member.commit_async());
                last_commit = Instant::now();
            }
        }
        member.commit_async().await?;
        latencies.sort_unstable();
        Ok::<_, BoxError>((seen.len() as u64, totals, latencies))
    });

    // The handlers: each takes requests from the front end and publishes.
    let mut queues = Vec::new();
    let mut handlers = Vec::new();
    for _ in 0..HANDLERS {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Order>();
        let producer = topic.producer();
        queues.push(tx);
        handlers.push(tokio::spawn(async move {
            while let Some(order) = rx.recv().await {
                let body = event(&order);
                let record =
                    Record::new(body.as_bytes()).key(order.customer.to_string()).header("sent", stamp(base).to_vec());
                producer.send(record)?;
            }
            Ok::<_, millpond::Error>(())
        }));
    }

    // The front end: requests at a fixed rate, round-robin over handlers.
    let mut expected = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / per_second.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for id in 0..orders {
        tick.tick().await;
        let order = Order { id, customer: id % CUSTOMERS, cents: 100 + id % 900 };
        *expected.entry(order.customer).or_insert(0) += order.cents;
        queues[id as usize % HANDLERS].send(order).map_err(|_| "a handler stopped")?;
    }
    drop(queues);
    for h in handlers {
        h.await??;
    }

    // Stop billing once it has handled everything, then check what it
    // committed.
    let patience = Instant::now() + Duration::from_secs(60);
    while handled.load(Ordering::Relaxed) < orders && Instant::now() < patience {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    stop.wake();
    let (billed, totals, latencies) = billing.await??;
    let group = topic.group("billing")?;
    let committed = group.committed()?.values().sum();
    drop((group, topic, broker));
    Ok(Outcome { billed, totals, expected, committed, latencies })
}

fn check(o: &Outcome, orders: u64) -> Result<(), BoxError> {
    if o.billed != orders || o.latencies.len() as u64 != orders {
        return Err(format!("billed {} of {orders} orders", o.billed).into());
    }
    if o.totals != o.expected {
        return Err(format!("totals {:?} differ from the requests' {:?}", o.totals, o.expected).into());
    }
    if o.committed != orders {
        return Err(format!("committed {} of {orders}", o.committed).into());
    }
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>());
    let orders = args.next().transpose()?.unwrap_or(20_000);
    let per_second = args.next().transpose()?.unwrap_or(1_000).max(1);
    let dir = std::env::temp_dir().join(format!("millpond-async-service-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let outcome = runtime.block_on(run(&dir, orders, per_second));
    let _ = std::fs::remove_dir_all(&dir); // tidy-up only
    let o = outcome?;
    check(&o, orders)?;
    println!(
        "{orders} orders at {per_second}/s through {HANDLERS} handler tasks and one billing task: \
         every order billed once, {} customers' totals right, {} committed",
        o.totals.len(),
        o.committed
    );
    println!(
        "publish -> handled: p50 {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
        o.quantile(0.5),
        o.quantile(0.99),
        o.quantile(0.999),
        o.latencies.last().copied().unwrap_or_default()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_order_is_billed_once_and_committed() {
        let dir = std::env::temp_dir().join(format!("millpond-async-service-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let outcome = runtime.block_on(super::run(&dir, 3_000, 20_000));
        let _ = std::fs::remove_dir_all(&dir);
        let o = outcome.unwrap();
        super::check(&o, 3_000).unwrap();
        assert!(o.quantile(0.5) <= o.quantile(0.99));
    }
}
