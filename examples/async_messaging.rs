//! Asynchronous request/reply between two services through two topics.
//!
//! A *client* service asks a *calculator* service to square numbers. It never
//! calls the calculator: it publishes each request to the `requests` topic
//! with a `correlation-id` header and a `reply-to` header naming the topic to
//! answer on, and reads the answers from the `replies` topic. The calculator,
//! a consumer-group member on its own thread, answers each request on the
//! topic its `reply-to` names, copying the correlation id.
//!
//! The client runs twice: one request at a time (the bare round trip), then
//! with up to 64 requests in flight (pipelined). It matches every reply to
//! its request by correlation id and checks the answer; an unknown,
//! duplicated, wrong or missing reply is an error. It prints the round-trip
//! latency percentiles of each phase.
//!
//! `cargo run --release --example async_messaging [requests]`

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use millpond::{AutoCommit, Broker, Consumer, Producer, Record, StartFrom, Topic, TopicConfig};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Round-trip latencies of one phase, sorted.
#[derive(Debug)]
struct Latencies {
    in_flight: usize,
    requests: u64,
    secs: f64,
    sorted: Vec<Duration>,
}

impl Latencies {
    /// The `q`-quantile (0.0..=1.0) of the sorted latencies.
    fn quantile(&self, q: f64) -> Duration {
        let last = self.sorted.len().saturating_sub(1);
        self.sorted.get(((last as f64) * q).round() as usize).copied().unwrap_or_default()
    }
}

/// What the run measured.
#[derive(Debug)]
struct Outcome {
    phases: Vec<Latencies>,
    served: u64,
}

/// The calculator service: answers every request until told to stop and
/// nothing is left to answer. Returns the number of requests it answered.
fn calculator(broker: &Broker, requests: &Topic, stop: &AtomicBool) -> Result<u64, BoxError> {
    let mut member =
        requests.group("calculator")?.auto_commit(AutoCommit::Interval(Duration::from_millis(200))).join()?;
    // One producer per reply topic, created on first use.
    let mut reply_producers: HashMap<Vec<u8>, Producer> = HashMap::new();
    let mut served = 0;
    loop {
        // Read before receiving: if the client was done before this receive
        // found nothing, nothing is left to answer.
        let stopping = stop.load(Ordering::SeqCst);
        let Some(request) = member.recv_timeout(Duration::from_millis(20))? else {
            if stopping {
                break;
            }
            continue;
        };
        let (Some(correlation), Some(reply_to)) = (request.header("correlation-id"), request.header("reply-to")) else {
            return Err(format!("request at offset {} lacks correlation-id or reply-to", request.offset()).into());
        };
        let x: u64 = std::str::from_utf8(request.value())?.parse()?;
        if !reply_producers.contains_key(reply_to) {
            let topic = broker.topic(std::str::from_utf8(reply_to)?)?;
            reply_producers.insert(reply_to.to_vec(), topic.producer());
        }
        reply_producers[reply_to].send(Record::new((x * x).to_string()).header("correlation-id", correlation))?;
        served += 1;
    }
    member.close()?; // commits what was answered
    Ok(served)
}

/// The client: sends `count` requests with at most `in_flight` unanswered,
/// matches every reply to its request and checks it.
fn client(
    requests: &Producer,
    replies: &mut Consumer,
    first_id: u64,
    count: u64,
    in_flight: usize,
) -> Result<Latencies, BoxError> {
    let start = Instant::now();
    let mut pending: HashMap<u64, (Instant, u64)> = HashMap::new(); // id -> (sent at, expected answer)
    let mut sorted = Vec::with_capacity(count as usize);
    let (mut next, end) = (first_id, first_id + count);
    while (sorted.len() as u64) < count {
        while next < end && pending.len() < in_flight {
            let x = next % 1_000_000;
            let id = next.to_string();
            pending.insert(next, (Instant::now(), x * x));
            requests.send(Record::new(x.to_string()).header("correlation-id", id).header("reply-to", "replies"))?;
            next += 1;
        }
        let reply = replies.recv_timeout(Duration::from_secs(30))?.ok_or("no reply within 30 s")?;
        let id: u64 =
            std::str::from_utf8(reply.header("correlation-id").ok_or("a reply without correlation-id")?)?.parse()?;
        let (sent_at, expected) =
            pending.remove(&id).ok_or_else(|| format!("reply for an unknown or already answered request {id}"))?;
        sorted.push(sent_at.elapsed());
        let answer: u64 = std::str::from_utf8(reply.value())?.parse()?;
        if answer != expected {
            return Err(format!("request {id}: expected {expected}, got {answer}").into());
        }
    }
    let secs = start.elapsed().as_secs_f64();
    if let Some(extra) = replies.recv_timeout(Duration::from_millis(20))? {
        return Err(format!("an unexpected extra reply: {extra:?}").into());
    }
    sorted.sort_unstable();
    Ok(Latencies { in_flight, requests: count, secs, sorted })
}

fn run(dir: &Path, count: u64) -> Result<Outcome, BoxError> {
    let broker = Broker::open(dir)?;
    let requests = broker.create_topic("requests", TopicConfig::default().partitions(2))?;
    let replies_topic = broker.create_topic("replies", TopicConfig::default())?;

    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let (broker, requests, stop) = (broker.clone(), requests.clone(), Arc::clone(&stop));
        std::thread::spawn(move || calculator(&broker, &requests, &stop))
    };

    // The client reads only replies sent from now on.
    let mut replies = replies_topic.consumer(StartFrom::Latest)?;
    let producer = requests.producer();
    let sequential = count / 10;
    let result = client(&producer, &mut replies, 0, sequential, 1)
        .and_then(|one| Ok(vec![one, client(&producer, &mut replies, sequential, count - sequential, 64)?]));
    stop.store(true, Ordering::SeqCst);
    let served = server.join().map_err(|_| "the calculator panicked")??;
    let phases = result?;
    if served != count {
        return Err(format!("the calculator answered {served} requests, expected {count}").into());
    }
    Ok(Outcome { phases, served })
}

fn main() -> Result<(), BoxError> {
    let count: u64 = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 200_000,
    };
    let dir = std::env::temp_dir().join(format!("millpond-async-messaging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir); // a fresh directory
    let outcome = run(&dir, count);
    std::fs::remove_dir_all(&dir)?;
    let o = outcome?;
    println!("{} requests answered by the calculator service through `requests` and `replies`", o.served);
    for p in &o.phases {
        println!(
            "  {:>2} in flight: {:>7} round trips in {:.2} s ({:.0}/s); latency p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
            p.in_flight,
            p.requests,
            p.secs,
            p.requests as f64 / p.secs,
            p.quantile(0.50).as_secs_f64() * 1e6,
            p.quantile(0.99).as_secs_f64() * 1e6,
            p.quantile(1.0).as_secs_f64() * 1e6,
        );
    }
    println!("ok: every reply matched its request by correlation id; none missing, duplicated or wrong");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_request_gets_its_own_reply() {
        let dir = std::env::temp_dir().join(format!("millpond-async-messaging-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let outcome = super::run(&dir, 2_000);
        std::fs::remove_dir_all(&dir).unwrap();
        let o = outcome.unwrap();
        assert_eq!(o.served, 2_000);
        assert_eq!(o.phases.iter().map(|p| p.sorted.len()).sum::<usize>(), 2_000);
        assert!(o.phases.iter().all(|p| p.quantile(0.5) <= p.quantile(0.99)));
    }
}
