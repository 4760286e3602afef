//! The broker's transaction log, `<dir>/transactions/`: where a
//! transaction's commit is decided, once all its records are written (and
//! before any of them is published).
//!
//! It is an ordinary partition log of its own (segments, checksummed frames,
//! recovery), outside `topics/`, holding two kinds of entry, encoded with
//! bincode:
//!
//! - [`Entry::Commit`]: a [`Decision`] — the transaction's id, where its
//!   records lie on each partition (first offset, and the offset of its
//!   commit marker), and the group offsets it commits. Appending it is the
//!   commit point: a crash before it leaves the transaction aborted, a
//!   crash after it leaves it committed.
//! - [`Entry::Settled`]: every commit before an offset is *settled* — its
//!   markers are written and its group offsets are in the groups' offsets
//!   files — so recovery need not look at it again.
//!
//! Recovery reads the unsettled commits: a partition whose log ends with a
//! transaction's frames but no marker gets the marker if its commit is
//! there (for exactly those records), and loses the frames otherwise; the
//! unsettled commits' group offsets are applied again (only where they move
//! a group forward). Sealed segments holding only settled commits are
//! deleted.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::storage::health::Health;
use crate::storage::partition_log::settings::LogSettings;
use crate::storage::partition_log::state::PartitionLog;
use crate::storage::policy::{CleanupPolicy, FsyncPolicy, RecoveryMode};
use crate::storage::record::Record;
use crate::storage::recovery_event::RecoveryEvent;
use crate::storage::segment_header::TopicId;

/// The transaction log's directory, in the broker directory.
pub(crate) const DIR: &str = "transactions";
/// The name its segments are stamped with (never a topic's: it is not
/// under `topics/`).
const NAME: &str = "__transactions";
/// Its identity, in every segment header.
const ID: TopicId = *b"millpond-txn-log";
/// Segments of 256 KiB: a commit takes about a hundred bytes, and
/// settled segments are deleted whole.
const SEGMENT_BYTES: u64 = 256 << 10;
/// A settled mark is written after this many commits settled (and at
/// open and close), so that recovery has little to look at again.
const SETTLE_EVERY: u64 = 256;
/// The largest entry accepted when reading (a commit of many partitions).
const MAX_ENTRY: usize = 64 << 20;

/// Where a transaction's records lie on one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PartDecision {
    pub topic: String,
    pub topic_id: TopicId,
    pub partition: u32,
    /// The share's first offset.
    pub first: u64,
    /// Its commit marker's offset (one past its last record).
    pub marker: u64,
}

/// A group offset a transaction commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct GroupOffset {
    pub group: String,
    pub topic: String,
    pub partition: u32,
    /// The next offset to read.
    pub offset: u64,
}

/// A transaction's commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Decision {
    pub id: u64,
    pub parts: Vec<PartDecision>,
    pub offsets: Vec<GroupOffset>,
}

/// An entry of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Entry {
    Commit(Decision),
    Settled { upto: u64 },
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_ENTRY>()
}

/// What the log held at open: the commits not yet settled, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Unsettled {
    pub commits: Vec<Decision>,
}

impl Unsettled {
    /// Whether transaction `txn`, whose frames end a partition of topic
    /// `topic_id` at offset `end` without a marker, was committed for
    /// exactly those records.
    pub(crate) fn committed(&self, topic_id: &TopicId, partition: u32, txn: u64, end: u64) -> bool {
        self.commits.iter().any(|d| {
            d.id == txn
                && d.parts.iter().any(|p| p.topic_id == *topic_id && p.partition == partition && p.marker == end)
        })
    }
}

/// The transaction log of a writing broker.
#[derive(Debug)]
pub(crate) struct TransactionLog {
    log: Arc<PartitionLog>,
    state: Mutex<Settling>,
}

#[derive(Debug, Default)]
struct Settling {
    /// Offsets of commits appended and not settled yet.
    open: BTreeSet<u64>,
    /// Commits settled since the last settled mark.
    since_mark: u64,
    /// The last settled mark's bound.
    marked: u64,
}

impl TransactionLog {
    /// Opens (creating if needed) the transaction log of the broker at
    /// `broker_dir`, recovering it, and reads its unsettled commits.
    pub(crate) fn open(
        broker_dir: &Path,
        mode: RecoveryMode,
        health: Arc<Health>,
    ) -> Result<(TransactionLog, Unsettled, Option<RecoveryEvent>)> {
        let settings = LogSettings {
            segment_bytes: SEGMENT_BYTES,
            index_interval: 4096,
            fsync: FsyncPolicy::Never,
            retention_bytes: None,
            retention: None,
            cleanup: CleanupPolicy::Delete,
            tombstone_retention: std::time::Duration::ZERO,
        };
        let dir = broker_dir.join(DIR);
        let (log, event) =
            PartitionLog::open(&dir, Arc::from(NAME), ID, 0, settings, mode, None, health, &|_, _| false)?;
        let log = Arc::new(log);
        let mut commits: Vec<(u64, Decision)> = Vec::new();
        let mut upto = 0;
        let mut cursor = log.cursor_at(log.log_start())?;
        while let Some(found) = cursor.next_found()? {
            let m = cursor.message(&found);
            let (entry, _): (Entry, usize) =
                bincode::serde::decode_from_slice(m.value(), config()).map_err(|e| Error::CorruptMetadata {
                    path: dir.clone(),
                    reason: format!("transaction log entry at offset {} does not decode: {e}", m.offset()),
                })?;
            match entry {
                Entry::Commit(d) => commits.push((m.offset(), d)),
                Entry::Settled { upto: u } => upto = upto.max(u),
            }
        }
        let unsettled =
            Unsettled { commits: commits.into_iter().filter(|(o, _)| *o >= upto).map(|(_, d)| d).collect() };
        let state = Mutex::new(Settling { marked: upto, ..Settling::default() });
        Ok((TransactionLog { log, state }, unsettled, event))
    }

    /// Appends `decision`: the commit point of its transaction. With
    /// `durable`, it is on disk when this returns. Returns the entry's
    /// offset, to [`settle`](TransactionLog::settle) it by.
    ///
    /// On `Err` with `Ok(offset)` inside — the entry was written but could
    /// not be synced — the transaction is committed all the same (a crash
    /// now would find it), so the caller goes on and reports the failure.
    pub(crate) fn append_commit(&self, decision: &Decision, durable: bool) -> Result<(u64, Result<()>)> {
        let bytes = bincode::serde::encode_to_vec(Entry::Commit(decision.clone()), config()).map_err(|e| {
            Error::Io { op: "encode transaction", path: self.log.dir.clone(), source: std::io::Error::other(e) }
        })?;
        let record = Record::new(bytes);
        let size = crate::storage::frame::record_len(&record);
        let offset = self.log.append(&[&record], &[size])?;
        self.state.lock().open.insert(offset);
        let synced = if durable { self.log.flush() } else { Ok(()) };
        Ok((offset, synced))
    }

    /// Marks the commit at `offset` settled: its markers are published and
    /// its group offsets written to the groups' files.
    pub(crate) fn settle(&self, offset: u64) -> Result<()> {
        let mark = {
            let mut s = self.state.lock();
            s.open.remove(&offset);
            s.since_mark += 1;
            if s.since_mark < SETTLE_EVERY {
                return Ok(());
            }
            s.since_mark = 0;
            true
        };
        if mark { self.mark_settled(false) } else { Ok(()) }
    }

    /// Writes a settled mark for every commit before the oldest unsettled
    /// one (synced with `durable`), and deletes the sealed segments that
    /// hold only settled entries.
    pub(crate) fn mark_settled(&self, durable: bool) -> Result<()> {
        let upto = {
            let s = self.state.lock();
            s.open.first().copied().unwrap_or_else(|| self.log.high_watermark())
        };
        let bytes = bincode::serde::encode_to_vec(Entry::Settled { upto }, config()).map_err(|e| Error::Io {
            op: "encode transaction",
            path: self.log.dir.clone(),
            source: std::io::Error::other(e),
        })?;
        let record = Record::new(bytes);
        let size = crate::storage::frame::record_len(&record);
        self.log.append(&[&record], &[size])?;
        if durable {
            self.log.flush()?;
        }
        let mut s = self.state.lock();
        s.marked = s.marked.max(upto);
        let marked = s.marked;
        drop(s);
        // Segments wholly before the mark, whose entries nobody needs again;
        // the mark itself is in a later one.
        self.log.delete_segments_before(marked)?;
        Ok(())
    }

    /// Flushes and closes the log (at broker close).
    pub(crate) fn close(&self, reason: Error) -> Result<()> {
        self.log.close(reason)
    }
}
