//! The transaction rows of the benchmark (`bench txn` runs only them): a
//! transaction's commit against the at-least-once way of doing the same
//! (`send_batch` + `GroupMember::commit`), a consume-transform-produce loop
//! both ways, and plain sends on a partition that has held a transaction.

use std::path::Path;
use std::time::{Duration, Instant};

use millpond::{AutoCommit, Broker, BrokerConfig, GroupMember, Record, StartFrom, Topic};

use super::{BoxError, RECORD, Row, big_segments, crossbeam_send_rate, fresh, medians, mps, rate, send_rate, settle};

/// Partitions of the output topics (and of the loop's input).
const PARTITIONS: u32 = 4;
/// Records of a transaction, and of a commit of the loops.
const PER_COMMIT: usize = 1000;

/// The rows, in their order in the table.
pub(crate) fn rows(dir: &Path, records: u64) -> Result<Vec<Row>, BoxError> {
    let rounds = (records / 10_000).max(2);
    let [txn, batched, batched_async] = medians(3, || {
        Ok([
            commit_time(dir, rounds, Way::Transaction)?,
            commit_time(dir, rounds, Way::AtLeastOnce)?,
            commit_time(dir, rounds, Way::AtLeastOnceAsync)?,
        ])
    })?;
    let loop_records = (records / 4).max(PER_COMMIT as u64 * 2);
    let [exactly_once, at_least_once, at_least_once_async] = medians(3, || {
        Ok([
            consume_transform_produce(dir, loop_records, Way::Transaction)?,
            consume_transform_produce(dir, loop_records, Way::AtLeastOnce)?,
            consume_transform_produce(dir, loop_records, Way::AtLeastOnceAsync)?,
        ])
    })?;
    let [after, never, crossbeam] = medians(3, || {
        Ok([
            send_after_transaction_rate(dir, records)?,
            send_rate(dir, records, BrokerConfig::default())?,
            crossbeam_send_rate(records)?,
        ])
    })?;
    let us = |s: f64| format!("{:.0} µs", s * 1e6);
    Ok(vec![
        Row {
            workload: "a transaction of 1,000 records over 4 partitions + commit_offsets (median of 3)",
            millpond: format!("{} per transaction", us(txn)),
            baseline: format!(
                "{} send_batch of the same records + GroupMember::commit(); {} with commit_async()",
                us(batched),
                us(batched_async)
            ),
            ratios: vec![(txn / batched, "commit()'s time"), (txn / batched_async, "commit_async()'s time")],
            target: "<= 1.2",
        },
        Row {
            workload: "consume-transform-produce, 1 thread, a transaction every 1,000 records (median of 3)",
            millpond: mps(exactly_once),
            baseline: format!(
                "{} at-least-once (send_batch + commit() every 1,000); {} with commit_async()",
                mps(at_least_once),
                mps(at_least_once_async)
            ),
            ratios: vec![
                (exactly_once / 0.5e6, "0.5 M/s"),
                (exactly_once / at_least_once, "commit()"),
                (exactly_once / at_least_once_async, "commit_async()"),
            ],
            target: ">= 0.5 M/s (first ratio >= 1)",
        },
        Row {
            workload: "append, 1 producer, send per record, no transaction in flight (after one; median of 3)",
            millpond: mps(after),
            baseline: format!("{} crossbeam send; {} on a topic that never had one", mps(crossbeam), mps(never)),
            ratios: vec![(after / crossbeam, "crossbeam"), (after / never, "never had one")],
            target: ">= 1.0 crossbeam (as the first row)",
        },
    ])
}

/// How the measured loops commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// Output and input positions in one transaction.
    Transaction,
    /// `send_batch`, then `GroupMember::commit()`.
    AtLeastOnce,
    /// `send_batch`, then `GroupMember::commit_async()` (the last one
    /// waited for).
    AtLeastOnceAsync,
}

/// A member of group `name` on `input` that leaves the offsets to
/// transactions (`Way::Transaction`) or commits them itself.
fn member(input: &Topic, name: &str, way: Way) -> Result<GroupMember, BoxError> {
    let group = input.group(name)?.auto_commit(AutoCommit::Off);
    let group = if way == Way::Transaction { group.commit_on_revoke(false) } else { group };
    Ok(group.join()?)
}

/// `rounds` commits of 1,000 records over 4 partitions (explicit, so that
/// the plain `send_batch` spreads them as the transaction does) with the
/// positions of a member that received one more input record each round:
/// in a transaction with `commit_offsets`, or as `send_batch` then
/// `GroupMember::commit()` (or `commit_async()`). Returns the mean time of
/// one, in seconds; the polls are not timed.
fn commit_time(dir: &Path, rounds: u64, way: Way) -> Result<f64, BoxError> {
    let broker = fresh(dir)?;
    let input = broker.create_topic("txn-in", big_segments())?;
    let output = broker.create_topic("txn-out", big_segments().partitions(PARTITIONS))?;
    let value = [7u8; RECORD];
    input.producer().send_batch((0..rounds).map(|_| Record::new(&value)))?;
    let batch: Vec<Record<'_>> =
        (0..PER_COMMIT).map(|i| Record::new(&value).partition(i as u32 % PARTITIONS)).collect();
    let mut member = member(&input, "committer", way)?;
    let producer = output.producer();
    settle();
    let mut timed = Duration::ZERO;
    let mut last = None;
    for _ in 0..rounds {
        if member.poll_ref(1, Duration::from_secs(10))?.len() != 1 {
            return Err("the committing member received nothing".into());
        }
        let start = Instant::now();
        match way {
            Way::Transaction => {
                let mut txn = broker.transaction()?;
                txn.send_batch(&output, batch.iter().cloned())?;
                txn.commit_offsets(&mut member)?;
                txn.commit()?;
            }
            Way::AtLeastOnce => {
                producer.send_batch(batch.iter().cloned())?;
                member.commit()?;
            }
            Way::AtLeastOnceAsync => {
                producer.send_batch(batch.iter().cloned())?;
                last = Some(member.commit_async());
            }
        }
        timed += start.elapsed();
    }
    if let Some(last) = last {
        last.wait()?; // not timed, as a transaction's offsets write is not
    }
    let written: u64 = (0..PARTITIONS).map(|p| output.high_watermark(p)).sum::<Result<_, _>>()?;
    let markers = if way == Way::Transaction { rounds * u64::from(PARTITIONS) } else { 0 };
    if written != rounds * PER_COMMIT as u64 + markers {
        return Err(format!("{way:?} commits wrote {written} offsets").into());
    }
    if input.group("committer")?.committed()?.get(&0) != Some(&rounds) {
        return Err(format!("{way:?} commits did not commit the input").into());
    }
    Ok(timed.as_secs_f64() / rounds as f64)
}

/// One thread: a group member polls `n` records (filled beforehand, over 4
/// partitions), transforms each (a new value: every byte plus one) into a
/// record for the same partition of the output topic, and commits every
/// 1,000 records: each record sent into a transaction, then
/// `commit_offsets` and `commit`; or collected, then `send_batch` and
/// `GroupMember::commit()` (or `commit_async()`). The end-to-end rate (not
/// counting the write of the last offsets, which a transaction leaves to
/// the commit thread as `commit_async` does).
fn consume_transform_produce(dir: &Path, n: u64, way: Way) -> Result<f64, BoxError> {
    let broker = fresh(dir)?;
    let input = broker.create_topic("ctp-in", big_segments().partitions(PARTITIONS))?;
    let output = broker.create_topic("ctp-out", big_segments().partitions(PARTITIONS))?;
    let value = [7u8; RECORD];
    let fill = input.producer();
    let mut filled = 0;
    while filled < n {
        let chunk = (n - filled).min(PER_COMMIT as u64);
        fill.send_batch(
            (filled..filled + chunk).map(|i| Record::new(&value).partition((i % u64::from(PARTITIONS)) as u32)),
        )?;
        filled += chunk;
    }
    let mut member = member(&input, "transformer", way)?;
    let producer = output.producer();
    settle();
    let start = Instant::now();
    let mut done = 0u64;
    let mut last = None;
    while done < n {
        let mut txn = match way {
            Way::Transaction => Some(broker.transaction()?),
            Way::AtLeastOnce | Way::AtLeastOnceAsync => None,
        };
        let mut collected = Vec::with_capacity(PER_COMMIT);
        let mut got = 0;
        while got < PER_COMMIT && done + (got as u64) < n {
            let batch = member.poll_ref(PER_COMMIT - got, Duration::from_secs(10))?;
            if batch.is_empty() {
                return Err(format!("the {way:?} loop received nothing after {}", done + got as u64).into());
            }
            for m in batch {
                let transformed: Vec<u8> = m.value().iter().map(|b| b.wrapping_add(1)).collect();
                let record = Record::new(transformed).partition(m.partition());
                match &mut txn {
                    Some(txn) => {
                        txn.send(&output, record)?;
                    }
                    None => collected.push(record),
                }
                got += 1;
            }
        }
        match txn {
            Some(mut txn) => {
                txn.commit_offsets(&mut member)?;
                txn.commit()?;
            }
            None => {
                producer.send_batch(collected)?;
                if way == Way::AtLeastOnceAsync {
                    last = Some(member.commit_async());
                } else {
                    member.commit()?;
                }
            }
        }
        done += got as u64;
    }
    let ours = rate(n, start.elapsed());
    if let Some(last) = last {
        last.wait()?;
    }
    let committed = input.group("transformer")?.committed()?;
    let mut read = 0;
    for p in 0..PARTITIONS {
        if committed.get(&p) != Some(&input.high_watermark(p)?) {
            return Err(format!("the {way:?} loop did not commit partition {p}").into());
        }
        read += input.high_watermark(p)?;
    }
    // Counted by a consumer: `stats().records()` counts commit markers too.
    let mut reader = output.consumer(StartFrom::Earliest)?;
    let mut written = 0u64;
    loop {
        let batch = reader.poll_ref(PER_COMMIT, Duration::ZERO)?;
        if batch.is_empty() {
            break;
        }
        written += batch.filter(|m| m.value() == [8u8; RECORD]).count() as u64;
    }
    if read != n || written != n {
        return Err(format!("the {way:?} loop read {read} and wrote {written} of {n} records").into());
    }
    Ok(ours)
}

/// A transaction of 1,000 records committed to a fresh topic's partition,
/// then `n` single plain sends to it with no transaction in flight; the
/// sends' rate.
fn send_after_transaction_rate(dir: &Path, n: u64) -> Result<f64, BoxError> {
    let broker: Broker = fresh(dir)?;
    let topic = broker.create_topic("append", big_segments())?;
    let value = [7u8; RECORD];
    let mut txn = broker.transaction()?;
    txn.send_batch(&topic, (0..PER_COMMIT).map(|_| Record::new(&value)))?;
    txn.commit()?;
    let producer = topic.producer();
    let start = Instant::now();
    for _ in 0..n {
        producer.send(Record::new(&value))?;
    }
    let ours = rate(n, start.elapsed());
    // The transaction's records, its marker, the sends.
    if topic.high_watermark(0)? != PER_COMMIT as u64 + 1 + n {
        return Err("sends after a transaction lost records".into());
    }
    Ok(ours)
}
