//! The Kafka bridge (cargo feature `kafka`): records flow from a local topic
//! to an Apache Kafka topic, or from Kafka into a local topic, through
//! `rdkafka` (librdkafka, built from source; no system library needed).
//!
//! # Guarantees
//!
//! Both directions are at-least-once, and nothing acknowledged on one side
//! is lost:
//!
//! | direction | order of events per batch |
//! | --- | --- |
//! | [`KafkaBridge::to_kafka`] | poll a batch as a local consumer group → produce it to Kafka → wait until Kafka acknowledged every record (`acks=all`) → commit the local offsets |
//! | [`KafkaBridge::from_kafka`] | poll a batch as a Kafka consumer group → append it locally and flush → commit the Kafka offsets |
//!
//! A crash, a stop, or a failure between the last two steps re-sends the
//! batch later (a duplicate, never a loss). Keys, values, tombstones,
//! headers and timestamps are carried both ways (Kafka treats a timestamp
//! of 0 as unset and stamps the record with its send time).
//!
//! # Partitions
//!
//! Partition `p` maps to partition `p` on the other side when it has more
//! than `p` partitions, else to `p % partitions` (the bridge reads the Kafka
//! topic's partition count before its first batch, retrying until it can). Give both sides the same
//! number of partitions to keep per-partition order end to end.
//!
//! # Failures
//!
//! Errors from Kafka (broker down, topic missing, timeouts) never stop the
//! bridge: the batch is retried with exponential back-off (up to 5 s) and the
//! error is visible in [`BridgeStats::last_error`] and `retries`. Errors of
//! the local log (the broker closed, a full disk) stop the bridge; they are
//! returned by [`KafkaBridge::stop`].

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use rdkafka::message::{Header, Headers as _, Message as _, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::bridge::worker::{Worker, poll_past_retention};
use crate::broker::topic::Topic;
use crate::client::consumer_group::policy::{AutoCommit, OffsetReset};
use crate::error::{Error, Result};
use crate::storage::record::Record;

/// Records moved per round.
const BATCH: usize = 1000;
/// Longest back-off between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Pause after an error report from the Kafka consumer (not a back-off: it
/// reconnects by itself).
const CONSUME_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// Tries of one Kafka offset commit before the inbound bridge goes on.
const COMMIT_ATTEMPTS: u32 = 5;
/// After reporting errors, how long the inbound consumer may receive
/// nothing before the bridge checks whether it stalled behind its topic.
const STALL_AFTER: Duration = Duration::from_secs(10);

/// The inbound bridge's Kafka consumer: group `group`, subscribed to `topic`.
fn inbound_consumer(kafka: &KafkaSettings, topic: &str, group: &str) -> Result<BaseConsumer> {
    let consumer: BaseConsumer = kafka
        .client(&[
            ("group.id", group),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "500"),
        ])
        .create()
        .map_err(|e| Error::Kafka { reason: kafka_error("create consumer", e) })?;
    consumer.subscribe(&[topic]).map_err(|e| Error::Kafka { reason: kafka_error("subscribe", e) })?;
    Ok(consumer)
}

/// Whether `topic` holds records past its group's committed offsets (past
/// its start where nothing is committed): a consumer that receives nothing
/// then is stalled, not idle. `false` when Kafka cannot tell (unreachable).
fn stalled_behind(consumer: &BaseConsumer, topic: &str) -> bool {
    let timeout = Duration::from_secs(2);
    let Ok(metadata) = consumer.fetch_metadata(Some(topic), timeout) else { return false };
    let mut all = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            all.add_partition(topic, p.id());
        }
    }
    let Ok(committed) = consumer.committed_offsets(all.clone(), timeout) else { return false };
    all.elements().iter().any(|e| {
        let Ok((low, high)) = consumer.fetch_watermarks(topic, e.partition(), timeout) else { return false };
        let done = match committed.find_partition(topic, e.partition()).map(|c| c.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => low,
        };
        high > done
    })
}

/// How to reach a Kafka cluster: `bootstrap.servers` plus any librdkafka
/// settings.
///
/// # Examples
///
/// ```
/// use millpond::KafkaSettings;
/// let s = KafkaSettings::new("127.0.0.1:9092").set("client.id", "billing");
/// assert_eq!(s.bootstrap_servers(), "127.0.0.1:9092");
/// ```
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    bootstrap: String,
    extra: Vec<(String, String)>,
}

impl KafkaSettings {
    /// Settings for the cluster at `bootstrap_servers` (`host:port[,…]`).
    ///
    /// See [`KafkaSettings`] for an example.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        KafkaSettings { bootstrap: bootstrap_servers.into(), extra: Vec::new() }
    }

    /// Adds a librdkafka setting (it overrides the bridge's defaults).
    ///
    /// See [`KafkaSettings`] for an example.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.push((key.into(), value.into()));
        self
    }

    /// The bootstrap servers.
    ///
    /// See [`KafkaSettings`] for an example.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// Creates a topic on the cluster with `partitions` partitions
    /// (replication factor 1), doing nothing if it exists already.
    ///
    /// ```no_run
    /// millpond::KafkaSettings::new("127.0.0.1:9092").create_topic("orders", 3)?;
    /// # Ok::<(), millpond::Error>(())
    /// ```
    pub fn create_topic(&self, name: &str, partitions: u32) -> Result<()> {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        use rdkafka::types::RDKafkaErrorCode;
        let admin: AdminClient<rdkafka::client::DefaultClientContext> =
            self.client(&[]).create().map_err(|e| Error::Kafka { reason: kafka_error("create admin client", e) })?;
        let partitions = i32::try_from(partitions).unwrap_or(i32::MAX);
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results = block_on(admin.create_topics([&topic], &opts))
            .map_err(|e| Error::Kafka { reason: kafka_error("create topic", e) })?;
        for r in results {
            match r {
                Ok(_) => {}
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, e)) => return Err(Error::Kafka { reason: kafka_error(&format!("create topic {t}"), e) }),
            }
        }
        Ok(())
    }

    fn client(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        for (k, v) in defaults {
            c.set(*k, *v);
        }
        for (k, v) in &self.extra {
            c.set(k, v);
        }
        c
    }
}

/// Progress of a [`KafkaBridge`].
///
/// See [`KafkaBridge`] for an example.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BridgeStats {
    /// Records moved and committed on the source side.
    pub transferred: u64,
    /// Batches retried after a Kafka error.
    pub retries: u64,
    /// The most recent Kafka error, if any (cleared by a successful batch).
    pub last_error: Option<String>,
    /// Outbound only: local records retention deleted before the bridge
    /// sent them (see [`Error::Lagged`]); the bridge goes on with the
    /// oldest record still stored.
    pub skipped: u64,
}

#[derive(Default)]
struct Status {
    transferred: AtomicU64,
    retries: AtomicU64,
    skipped: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Status {
    /// Records a Kafka error and sleeps the back-off (cut short by `stop`).
    fn failed(&self, what: String, backoff: &mut Duration, stop: &AtomicBool) {
        *self.last_error.lock() = Some(what);
        self.retries.fetch_add(1, Ordering::Relaxed);
        let until = std::time::Instant::now() + *backoff;
        while std::time::Instant::now() < until && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        *backoff = (*backoff * 2).min(MAX_BACKOFF);
    }
}

/// A running bridge between a local topic and a Kafka topic, on a thread of
/// its own. See the [module documentation](self) for what it guarantees.
///
/// # Examples
///
/// ```no_run
/// use millpond::{Broker, KafkaBridge, KafkaSettings, Record, TopicConfig};
/// let broker = Broker::open("./data")?;
/// let orders = broker.create_topic("orders", TopicConfig::default().partitions(3))?;
/// let kafka = KafkaSettings::new("kafka-1:9092");
/// // Local orders flow on to the cluster's "orders" topic...
/// let out = KafkaBridge::to_kafka(&orders, "kafka-out", &kafka, "orders")?;
/// orders.producer().send(Record::new("order-1").key("customer-7"))?;
/// // ...and the cluster's "payments" come in to a local topic.
/// let payments = broker.create_topic("payments", TopicConfig::default().partitions(3))?;
/// let inbound = KafkaBridge::from_kafka(&kafka, "payments", "millpond-in", &payments)?;
/// println!("{:?} {:?}", out.stats(), inbound.stats());
/// assert!(out.is_running() && inbound.is_running()); // Kafka errors do not stop them
/// out.stop()?;
/// inbound.stop()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct KafkaBridge {
    status: Arc<Status>,
    worker: Worker,
}

impl std::fmt::Debug for KafkaBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBridge").field("stats", &self.stats()).finish()
    }
}

/// Counts deliveries that failed.
#[derive(Default)]
struct Acks {
    failed: AtomicU64,
    error: Mutex<Option<String>>,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            *self.error.lock() = Some(e.to_string());
        }
    }
}

fn kafka_error(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

impl KafkaBridge {
    /// Starts moving `local`'s records to the Kafka topic `kafka_topic`,
    /// reading `local` as consumer group `group`.
    ///
    /// See [`KafkaBridge`] for an example.
    pub fn to_kafka(local: &Topic, group: &str, kafka: &KafkaSettings, kafka_topic: &str) -> Result<KafkaBridge> {
        let group = local.group(group)?.auto_commit(AutoCommit::Off).offset_reset(OffsetReset::Earliest);
        let mut member = group.join()?;
        let producer: BaseProducer<Acks> = kafka
            .client(&[("acks", "all"), ("enable.idempotence", "false"), ("message.timeout.ms", "30000")])
            .create_with_context(Acks::default())
            .map_err(|e| Error::Kafka { reason: kafka_error("create producer", e) })?;
        let kafka_topic = kafka_topic.to_string();
        let status = Arc::new(Status::default());
        let shared = Arc::clone(&status);
        let worker = Worker::spawn("millpond-kafka-out".into(), "kafka bridge", move |stop| {
            let mut partitions: Option<u32> = None;
            let mut backoff = Duration::from_millis(100);
            while !stop.load(Ordering::SeqCst) {
                let batch = poll_past_retention(&mut member, BATCH, Duration::from_millis(50), &shared.skipped)?;
                if batch.is_empty() {
                    continue;
                }
                // Until Kafka acknowledged the whole batch.
                loop {
                    if stop.load(Ordering::SeqCst) {
                        return Ok(()); // uncommitted: re-sent by the next bridge
                    }
                    // The topic's partition count, for the partition mapping.
                    if partitions.is_none() {
                        match kafka_partitions(&producer, &kafka_topic) {
                            Ok(n) => partitions = Some(n),
                            Err(e) => {
                                shared.failed(e, &mut backoff, stop);
                                continue;
                            }
                        }
                    }
                    producer.context().failed.store(0, Ordering::Relaxed);
                    let mut error = None;
                    for m in &batch {
                        let mut headers = OwnedHeaders::new();
                        for (name, value) in m.headers() {
                            headers = headers.insert(Header { key: name, value: Some(value) });
                        }
                        let mut rec: BaseRecord<'_, [u8], [u8]> =
                            BaseRecord::to(&kafka_topic).timestamp(m.timestamp()).headers(headers);
                        if let Some(p) = partitions.map(|n| (m.partition() % n) as i32) {
                            rec = rec.partition(p);
                        }
                        if let Some(k) = m.key() {
                            rec = rec.key(k);
                        }
                        if !m.is_tombstone() {
                            rec = rec.payload(m.value());
                        }
                        loop {
                            match producer.send(rec) {
                                Ok(()) => break,
                                Err((e, back)) => {
                                    if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) {
                                        producer.poll(Duration::from_millis(10));
                                        rec = back;
                                        continue;
                                    }
                                    error = Some(kafka_error("produce", e));
                                    break;
                                }
                            }
                        }
                        if error.is_some() {
                            break;
                        }
                    }
                    if let Err(e) = producer.flush(Duration::from_secs(60)) {
                        error.get_or_insert(kafka_error("wait for acknowledgements", e));
                    }
                    if producer.context().failed.load(Ordering::Relaxed) > 0 {
                        let why = producer.context().error.lock().clone().unwrap_or_default();
                        error.get_or_insert(kafka_error("delivery", why));
                    }
                    match error {
                        None => break,
                        Some(e) => shared.failed(e, &mut backoff, stop),
                    }
                }
                member.commit()?;
                backoff = Duration::from_millis(100);
                *shared.last_error.lock() = None;
                shared.transferred.fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            Ok(())
        })?;
        Ok(KafkaBridge { status, worker })
    }

    /// Starts moving the Kafka topic `kafka_topic`'s records into `local`,
    /// reading Kafka as consumer group `kafka_group` (from the earliest
    /// offset the first time).
    ///
    /// See [`KafkaBridge`] for an example.
    pub fn from_kafka(
        kafka: &KafkaSettings,
        kafka_topic: &str,
        kafka_group: &str,
        local: &Topic,
    ) -> Result<KafkaBridge> {
        let mut consumer = inbound_consumer(kafka, kafka_topic, kafka_group)?;
        let (kafka, kafka_group) = (kafka.clone(), kafka_group.to_string());
        let producer = local.producer();
        let kafka_topic = kafka_topic.to_string();
        let local_partitions = local.partitions();
        let status = Arc::new(Status::default());
        let shared = Arc::clone(&status);
        let worker = Worker::spawn("millpond-kafka-in".into(), "kafka bridge", move |stop| {
            let mut backoff = Duration::from_millis(100);
            // Since when the consumer has reported errors and received
            // nothing (see `STALL_AFTER`).
            let mut troubled_since: Option<std::time::Instant> = None;
            while !stop.load(Ordering::SeqCst) {
                if troubled_since.is_some_and(|t| t.elapsed() >= STALL_AFTER) {
                    troubled_since = Some(std::time::Instant::now());
                    if stalled_behind(&consumer, &kafka_topic) {
                        // Seen after a Kafka broker came back empty: the
                        // consumer fetched nothing more and said nothing. A
                        // new one rejoins the group and resumes from the
                        // committed offsets (at worst a duplicate).
                        match inbound_consumer(&kafka, &kafka_topic, &kafka_group) {
                            Ok(fresh) => {
                                consumer = fresh;
                                shared.retries.fetch_add(1, Ordering::Relaxed);
                                *shared.last_error.lock() =
                                    Some("the Kafka consumer stalled behind its topic; re-created it".to_string());
                            }
                            Err(e) => *shared.last_error.lock() = Some(e.to_string()),
                        }
                    }
                }
                // A batch: wait for the first message, then take what is there.
                let mut owned = Vec::new();
                let mut wait = Duration::from_millis(100);
                while owned.len() < BATCH {
                    match consumer.poll(wait) {
                        None => break,
                        Some(Err(e)) => {
                            // librdkafka reconnects by itself; what poll
                            // returns here (broker down, transport failure)
                            // are reports, queued one per reconnect attempt.
                            // Note each and poll on after a short pause: a
                            // growing back-off here drained a queue of them
                            // for over a minute after the broker was back.
                            let mut pause = CONSUME_ERROR_PAUSE;
                            shared.failed(kafka_error("consume", e), &mut pause, stop);
                            troubled_since.get_or_insert_with(std::time::Instant::now);
                            break;
                        }
                        Some(Ok(m)) => {
                            let headers: Vec<(String, Vec<u8>)> = m
                                .headers()
                                .map(|h| {
                                    h.iter()
                                        .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                                        .collect()
                                })
                                .unwrap_or_default();
                            owned.push((
                                m.partition(),
                                m.offset(),
                                m.key().map(<[u8]>::to_vec),
                                m.payload().map(<[u8]>::to_vec),
                                headers,
                                m.timestamp().to_millis(),
                            ));
                            wait = Duration::ZERO;
                            troubled_since = None;
                        }
                    }
                }
                if owned.is_empty() {
                    continue;
                }
                let records = owned.iter().map(|(p, _, key, value, headers, ts)| {
                    let mut r = match value {
                        Some(v) => Record::new(v.as_slice()),
                        None => Record::tombstone(key.as_deref().unwrap_or_default()),
                    };
                    if let Some(k) = key {
                        r = r.key(k.as_slice());
                    }
                    for (n, v) in headers {
                        r = r.header(n.as_str(), v.as_slice());
                    }
                    if let Some(ts) = ts {
                        r = r.timestamp(*ts);
                    }
                    r.partition((*p).max(0) as u32 % local_partitions)
                });
                producer.send_batch(records).and_then(|_| producer.flush())?;
                // Only now, Kafka offsets: one past the last of each partition.
                let mut next: HashMap<i32, i64> = HashMap::new();
                for (p, o, ..) in &owned {
                    let e = next.entry(*p).or_insert(0);
                    *e = (*e).max(o + 1);
                }
                let mut tpl = TopicPartitionList::new();
                for (p, o) in &next {
                    if let Err(e) = tpl.add_partition_offset(&kafka_topic, *p, Offset::Offset(*o)) {
                        *shared.last_error.lock() = Some(kafka_error("commit list", e));
                    }
                }
                let mut commit_error = None;
                for attempt in 1..=COMMIT_ATTEMPTS {
                    match consumer.commit(&tpl, CommitMode::Sync) {
                        Ok(()) => break,
                        Err(e) => {
                            if stop.load(Ordering::SeqCst) {
                                return Ok(()); // uncommitted: re-delivered later (a duplicate)
                            }
                            let what = kafka_error("commit", e);
                            if attempt == COMMIT_ATTEMPTS {
                                // Give up on this commit rather than stall
                                // without polling: the records are stored
                                // locally, and a later commit covers them (or,
                                // after a restart, Kafka re-delivers them: a
                                // duplicate, never a loss).
                                commit_error = Some(what);
                                break;
                            }
                            shared.failed(what, &mut backoff, stop);
                        }
                    }
                }
                backoff = Duration::from_millis(100);
                *shared.last_error.lock() = commit_error;
                shared.transferred.fetch_add(owned.len() as u64, Ordering::Relaxed);
            }
            Ok(())
        })?;
        Ok(KafkaBridge { status, worker })
    }

    /// Records moved, retries, and the last Kafka error.
    ///
    /// See [`KafkaBridge`] for an example.
    pub fn stats(&self) -> BridgeStats {
        BridgeStats {
            transferred: self.status.transferred.load(Ordering::Relaxed),
            retries: self.status.retries.load(Ordering::Relaxed),
            last_error: self.status.last_error.lock().clone(),
            skipped: self.status.skipped.load(Ordering::Relaxed),
        }
    }

    /// Whether the bridge thread is running.
    ///
    /// See [`KafkaBridge`] for an example.
    pub fn is_running(&self) -> bool {
        self.worker.is_running()
    }

    /// Stops the bridge (a batch not yet committed is moved again by the
    /// next bridge) and returns the local error that stopped it early, if any.
    ///
    /// See [`KafkaBridge`] for an example.
    pub fn stop(mut self) -> Result<()> {
        self.worker.halt()
    }
}

/// Runs a future to completion on this thread (rdkafka's admin API is
/// async; the bridge needs no executor otherwise).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

/// The Kafka topic's partition count, or why it cannot be read now.
fn kafka_partitions(producer: &BaseProducer<Acks>, topic: &str) -> std::result::Result<u32, String> {
    let md = producer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(2))
        .map_err(|e| kafka_error("read topic metadata", e))?;
    match md.topics().iter().find(|t| t.name() == topic) {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(t.partitions().len() as u32),
        Some(t) => Err(format!("topic {topic:?} is not available: {:?}", t.error())),
        None => Err(format!("topic {topic:?} does not exist")),
    }
}
