//! Outbound: the thread of [`KafkaBridge::to_kafka`](crate::KafkaBridge::to_kafka),
//! which moves a local topic's records to a Kafka topic and commits them
//! locally once Kafka acknowledged them all.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::ClientContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};

use crate::bridge::kafka::pacing::BATCH;
use crate::bridge::kafka::reason::kafka_error;
use crate::bridge::kafka::settings::KafkaSettings;
use crate::bridge::kafka::stats::Status;
use crate::bridge::worker::poll_past_retention;
use crate::broker::topic::Topic;
use crate::client::consumer_group::policy::{AutoCommit, OffsetReset};
use crate::error::{Error, Result};
use crate::storage::background::Worker;

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

/// Starts moving `local`'s records to the Kafka topic `kafka_topic`,
/// reading `local` as consumer group `group`: the thread and what it
/// reports.
pub(crate) fn start_outbound(
    local: &Topic,
    group: &str,
    kafka: &KafkaSettings,
    kafka_topic: &str,
) -> Result<(Arc<Status>, Worker)> {
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
    Ok((status, worker))
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
