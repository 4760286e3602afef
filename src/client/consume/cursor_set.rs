//! [`CursorSet`]: the partitions one consumer reads and its position in
//! each, taken in turn. A consumer group's membership adds and removes
//! cursors here when the assignment changes; the consumer only reads.

use std::sync::Arc;

use crate::broker::topic::Topic;
use crate::client::consume::start_from::StartFrom;
use crate::client::consumer_group::policy::OffsetReset;
use crate::error::{Error, Result};
use crate::storage::cursor::{Cursor, Found};
use crate::storage::message::Message;
use crate::storage::message_ref::MessageRef;

/// One cursor per partition read, sorted by partition, and whose turn is
/// next.
pub(crate) struct CursorSet {
    topic: Topic,
    cursors: Vec<Cursor>,
    /// Index of the cursor to try first on the next receive.
    next: usize,
}

impl CursorSet {
    /// Cursors on `partitions` of `topic`, each at `from`.
    pub(crate) fn new(topic: Topic, partitions: Vec<u32>, from: StartFrom) -> Result<CursorSet> {
        if let Some(e) = topic.unusable() {
            return Err(e);
        }
        let mut cursors = Vec::with_capacity(partitions.len());
        for p in partitions {
            let log = topic.partition_log(p)?;
            // A read-only broker's partition: start from the files as they are now.
            log.catch_up_fully()?;
            let offset = match from {
                StartFrom::Earliest => log.log_start(),
                StartFrom::Latest => log.high_watermark(),
                StartFrom::Offset(o) => o,
                StartFrom::Timestamp(ts) => log.offset_for_timestamp(ts)?,
            };
            cursors.push(log.cursor_at(offset)?);
        }
        Ok(CursorSet { topic, cursors, next: 0 })
    }

    /// The topic read.
    pub(crate) fn topic(&self) -> &Topic {
        &self.topic
    }

    /// Whether no partition is read.
    pub(crate) fn is_empty(&self) -> bool {
        self.cursors.is_empty()
    }

    /// The cursors, sorted by partition.
    pub(crate) fn cursors(&self) -> &[Cursor] {
        &self.cursors
    }

    /// The partitions read, in order.
    pub(crate) fn assignment(&self) -> Vec<u32> {
        self.cursors.iter().map(|c| c.log().partition()).collect()
    }

    fn index_of(&self, partition: u32) -> Result<usize> {
        self.cursors.iter().position(|c| c.log().partition() == partition).ok_or_else(|| Error::InvalidPartition {
            topic: self.topic.name().to_string(),
            partition,
            partitions: self.topic.partitions(),
        })
    }

    /// The position in `partition`.
    pub(crate) fn position(&self, partition: u32) -> Result<u64> {
        Ok(self.cursors[self.index_of(partition)?].position())
    }

    /// `(partition, position)` of every cursor.
    pub(crate) fn positions(&self) -> Vec<(u32, u64)> {
        self.cursors.iter().map(|c| (c.log().partition(), c.position())).collect()
    }

    /// Records between the positions and the high watermarks.
    pub(crate) fn lag(&self) -> u64 {
        for c in &self.cursors {
            // A read-only broker's: as the files are now (a failure shows
            // in the next receive).
            let _ = c.log().catch_up();
        }
        self.cursors.iter().map(|c| c.log().high_watermark().saturating_sub(c.position())).sum()
    }

    /// Moves the cursor of `partition` to `offset`.
    pub(crate) fn seek(&mut self, partition: u32, offset: u64) -> Result<()> {
        let i = self.index_of(partition)?;
        self.cursors[i].log().catch_up_fully()?; // a read-only broker's: as the files are now
        let cursor = self.cursors[i].log().cursor_at(offset)?;
        self.cursors[i] = cursor;
        Ok(())
    }

    /// Moves every cursor to its partition's log start.
    pub(crate) fn seek_to_beginning(&mut self) -> Result<()> {
        for c in &mut self.cursors {
            let log = Arc::clone(c.log());
            log.catch_up_fully()?;
            *c = log.cursor_at(log.log_start())?;
        }
        Ok(())
    }

    /// Moves every cursor to its partition's high watermark.
    pub(crate) fn seek_to_end(&mut self) -> Result<()> {
        for c in &mut self.cursors {
            let log = Arc::clone(c.log());
            log.catch_up_fully()?;
            *c = log.cursor_at(log.high_watermark())?;
        }
        Ok(())
    }

    /// Adds a cursor, keeping the set sorted by partition.
    pub(crate) fn add(&mut self, cursor: Cursor) {
        let at = self.cursors.partition_point(|c| c.log().partition() < cursor.log().partition());
        self.cursors.insert(at, cursor);
    }

    /// Removes the cursor of `partition`, if any.
    pub(crate) fn remove(&mut self, partition: u32) {
        self.cursors.retain(|c| c.log().partition() != partition);
        self.next = if self.cursors.is_empty() { 0 } else { self.next % self.cursors.len() };
    }

    /// Whether some cursor may have a record to read.
    pub(crate) fn may_have_data(&self) -> bool {
        self.cursors.iter().any(Cursor::may_have_data)
    }

    /// `Closed` or `TopicDeleted` once nothing more can arrive.
    pub(crate) fn closed_error(&self) -> Option<Error> {
        if let Some(e) = self.topic.unusable() {
            return Some(e);
        }
        if let Some(c) = self.cursors.iter().find(|c| c.log().notifier.is_closed()) {
            // A read-only broker learns of its topic's deletion on disk.
            return Some(if c.log().is_gone() {
                Error::TopicDeleted { topic: c.log().topic_name().to_string() }
            } else {
                Error::Closed
            });
        }
        None
    }

    /// The record found by cursor `i`, owned.
    #[inline]
    pub(crate) fn message(&self, i: usize, found: &Found) -> Message {
        self.cursors[i].message(found)
    }

    /// The record found by cursor `i`, borrowed from the mapping.
    #[inline]
    pub(crate) fn view(&self, i: usize, found: &Found) -> MessageRef<'_> {
        self.cursors[i].view(found)
    }

    /// Adds up to `max` more records of cursor `i`'s current segment.
    pub(crate) fn fill_in_segment(&mut self, i: usize, max: usize, out: &mut Vec<Found>) {
        self.cursors[i].fill_in_segment(max, out);
    }

    /// Cursor `i`.
    pub(crate) fn cursor(&self, i: usize) -> &Cursor {
        &self.cursors[i]
    }

    /// The next record of the next partition that has one, taking the
    /// partitions in turn. A partition that retention moved past is caught
    /// up per `reset` and reported as `Lagged`.
    #[inline]
    pub(crate) fn take_found(&mut self, reset: OffsetReset) -> Result<Option<(usize, Found)>> {
        let n = self.cursors.len();
        // `next` may be past the end after a rebalance removed cursors.
        // (Wrapping by comparison, not `%`: a division per record is a
        // measurable share of a read.)
        let mut i = if self.next < n { self.next } else { 0 };
        for _ in 0..n {
            let after = if i + 1 == n { 0 } else { i + 1 };
            match self.cursors[i].next_found() {
                Ok(Some(m)) => {
                    self.next = after;
                    return Ok(Some((i, m)));
                }
                Ok(None) => {}
                Err(Error::Lagged { from, resumed_at, .. }) => {
                    self.next = after;
                    return Err(self.catch_up(i, from, resumed_at, reset));
                }
                Err(e) => {
                    // Let the other partitions be read on the next call.
                    self.next = after;
                    return Err(e);
                }
            }
            i = after;
        }
        Ok(None)
    }

    /// Cursor `i` fell behind retention: the records from `from` to
    /// `resumed_at` (the next ones the log still stores) are gone. Moves it
    /// where the reset policy says (`resumed_at`, or the log start if
    /// retention went further meanwhile, for an independent consumer and
    /// `OffsetReset::Earliest`; the high watermark for `Latest`) and returns
    /// the `Lagged` error that reports the jump; with `Fail` it stays and
    /// the error is `OffsetOutOfRange`.
    ///
    /// A position only ever moves forward here: if the log names a place at
    /// or before `from` (inconsistent segments), the cursor stays and the
    /// error is `PositionRegressed`, rather than reading the same records
    /// again and again.
    fn catch_up(&mut self, i: usize, from: u64, resumed_at: u64, reset: OffsetReset) -> Error {
        let log = Arc::clone(self.cursors[i].log());
        let regressed = |resumed_at| Error::PositionRegressed {
            topic: log.topic_name().to_string(),
            partition: log.partition(),
            position: from,
            resumed_at,
        };
        if resumed_at <= from {
            return regressed(resumed_at);
        }
        let to = match reset {
            OffsetReset::Fail => return log.out_of_range(from),
            OffsetReset::Latest => log.high_watermark(),
            OffsetReset::Earliest => log.log_start().max(resumed_at),
        };
        if to <= from {
            return regressed(to);
        }
        match log.cursor_at(to) {
            Ok(cursor) => {
                self.cursors[i] = cursor;
                Error::Lagged { topic: log.topic_name().to_string(), partition: log.partition(), from, resumed_at: to }
            }
            // Retention moved on again meanwhile: the next call finds the
            // gap again and catches up then.
            Err(e) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CursorSet;
    use crate::client::consumer_group::policy::OffsetReset;
    use crate::{Broker, Error, Record, StartFrom, TopicConfig};

    /// The offset of the next record the set returns, as `Consumer::try_recv` would.
    fn next_offset(c: &mut CursorSet) -> Option<u64> {
        c.take_found(OffsetReset::Earliest).unwrap().map(|(i, f)| c.message(i, &f).offset())
    }

    fn topic_with_records(label: &str, n: usize) -> (std::path::PathBuf, Broker, crate::Topic) {
        let dir = std::env::temp_dir().join(format!("millpond-unit-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let broker = Broker::open(&dir).unwrap();
        let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
        topic.producer().send_batch((0..n).map(|i| Record::new(format!("{i}")))).unwrap();
        (dir, broker, topic)
    }

    #[test]
    fn lagged_recovery_resumes_where_the_log_said_not_at_the_log_start_behind_the_reader() {
        let (dir, broker, topic) = topic_with_records("catchup-forward", 30);
        let mut c = CursorSet::new(topic.clone(), vec![0], StartFrom::Offset(3)).unwrap();
        // The log says records 3..20 are gone while the log start is still
        // 0 (inconsistent segments): going on at the log start would read
        // 0..20 again, and meet the same gap again, for ever.
        match c.catch_up(0, 3, 20, OffsetReset::Earliest) {
            Error::Lagged { from: 3, resumed_at: 20, .. } => {}
            other => panic!("expected Lagged 3 -> 20, got {other:?}"),
        }
        assert_eq!(c.position(0).unwrap(), 20, "moved forward to where the log said");
        assert_eq!(next_offset(&mut c), Some(20));
        drop((c, topic, broker));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn lagged_recovery_that_would_move_backwards_is_position_regressed_and_stays() {
        let (dir, broker, topic) = topic_with_records("catchup-back", 30);
        let mut c = CursorSet::new(topic.clone(), vec![0], StartFrom::Offset(15)).unwrap();
        for resumed_at in [15, 10, 0] {
            match c.catch_up(0, 15, resumed_at, OffsetReset::Earliest) {
                Error::PositionRegressed { partition: 0, position: 15, resumed_at: r, .. } => assert_eq!(r, resumed_at),
                other => panic!("expected PositionRegressed for 15 -> {resumed_at}, got {other:?}"),
            }
            assert_eq!(c.position(0).unwrap(), 15, "the position never moves backwards by itself");
        }
        assert_eq!(next_offset(&mut c), Some(15));
        drop((c, topic, broker));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
