//! Inbound: the thread of [`KafkaBridge::from_kafka`](crate::KafkaBridge::from_kafka),
//! which moves a Kafka topic's records into a local topic and commits them
//! on Kafka once they are flushed locally.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use rdkafka::message::{Headers as _, Message as _};
use rdkafka::{Offset, TopicPartitionList};

use crate::bridge::kafka::pacing::BATCH;
use crate::bridge::kafka::reason::kafka_error;
use crate::bridge::kafka::settings::KafkaSettings;
use crate::bridge::kafka::stats::Status;
use crate::broker::topic::Topic;
use crate::error::{Error, Result};
use crate::storage::background::Worker;
use crate::storage::record::Record;

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

/// Starts moving the Kafka topic `kafka_topic`'s records into `local`,
/// reading Kafka as consumer group `kafka_group` (from the earliest
/// offset the first time): the thread and what it reports.
pub(crate) fn start_inbound(
    kafka: &KafkaSettings,
    kafka_topic: &str,
    kafka_group: &str,
    local: &Topic,
) -> Result<(Arc<Status>, Worker)> {
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
                                h.iter().map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec())).collect()
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
    Ok((status, worker))
}
