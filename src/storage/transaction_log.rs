//! The broker's transaction log, `<dir>/transactions/`: where a
//! transaction's commit is decided, once all its records are written (and
//! before any of them is published).
//!
//! It is an ordinary partition log of its own (segments, checksummed frames,
//! recovery), outside `topics/`, holding three kinds of entry, encoded with
//! bincode:
//!
//! - [`Entry::Commit`]: a [`Decision`] — the transaction's id, where its
//!   records lie on each partition (first offset, and the offset of its
//!   commit marker), and the group offsets it commits. Appending it is the
//!   commit point: a crash before it leaves the transaction aborted, a
//!   crash after it, committed.
//! - [`Entry::Settled`]: these commits are *settled* — their markers are
//!   published and their group offsets are in the groups' offsets files
//!   (written by a later successful write of each group's file, which holds
//!   them) — so recovery must not apply them again: a group may have moved
//!   on since (a reset, a commit going back, a deletion). Written, synced,
//!   by the writer of the group's offsets file before anything else may
//!   write that file.
//! - [`Entry::Checkpoint`]: every commit before an offset is settled; the
//!   sealed segments before it are deleted.
//!
//! Recovery reads the unsettled commits: a partition whose log ends with a
//! transaction's frames but no marker gets the marker if its commit is
//! there (for exactly those records), and loses the frames otherwise; the
//! unsettled commits' group offsets are applied again, in order.

use std::collections::{BTreeMap, BTreeSet};
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
/// A checkpoint is written after this many entries (and at open and
/// close), so that recovery reads little and old segments go.
const CHECKPOINT_EVERY: u64 = 256;
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
    /// The topic's identity: a topic deleted and created again under the
    /// same name is another topic, whose groups this offset is not for.
    pub topic_id: TopicId,
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

impl Decision {
    /// The groups (by group and topic name) whose offsets it commits.
    pub(crate) fn groups(&self) -> BTreeSet<(String, String)> {
        self.offsets.iter().map(|o| (o.group.clone(), o.topic.clone())).collect()
    }
}

/// An entry of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Entry {
    Commit(Decision),
    /// The commits at these offsets of the log are settled: for `group`
    /// (group and topic name) only, or, with none, wholly.
    Settled {
        commits: Vec<u64>,
        group: Option<(String, String)>,
    },
    /// Every commit before this offset of the log is settled.
    Checkpoint(u64),
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_ENTRY>()
}

/// What the log held at open: the commits not yet settled, oldest first,
/// with their offsets in the log.
#[derive(Debug, Default)]
pub(crate) struct Unsettled {
    pub commits: Vec<(u64, Decision)>,
}

impl Unsettled {
    /// Whether transaction `txn`, whose frames end a partition of topic
    /// `topic_id` at offset `end` without a marker, was committed for
    /// exactly those records.
    pub(crate) fn committed(&self, topic_id: &TopicId, partition: u32, txn: u64, end: u64) -> bool {
        self.commits.iter().any(|(_, d)| {
            d.id == txn
                && d.parts.iter().any(|p| p.topic_id == *topic_id && p.partition == partition && p.marker == end)
        })
    }
}

/// The transaction log of a writing broker.
#[derive(Debug)]
pub(crate) struct TransactionLog {
    log: Arc<PartitionLog>,
    /// Held across every append, so that what is unsettled and the log's
    /// end always agree (a checkpoint never covers a commit appended but
    /// not yet counted).
    state: Mutex<Settling>,
}

#[derive(Debug, Default)]
struct Settling {
    /// The commits not settled yet (this session's, and those recovery
    /// found), by offset: the groups whose offsets files do not hold
    /// theirs yet (none left: only the commit itself is to be settled).
    open: BTreeMap<u64, BTreeSet<(String, String)>>,
    /// Entries appended since the last checkpoint.
    since_checkpoint: u64,
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
        let mut whole = BTreeSet::new();
        let mut by_group: BTreeMap<u64, BTreeSet<(String, String)>> = BTreeMap::new();
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
                Entry::Settled { commits, group: None } => whole.extend(commits),
                Entry::Settled { commits, group: Some(g) } => {
                    for c in commits {
                        by_group.entry(c).or_default().insert(g.clone());
                    }
                }
                Entry::Checkpoint(u) => upto = upto.max(u),
            }
        }
        // What is left of each commit: the offsets of the groups not settled.
        commits.retain(|(o, _)| *o >= upto && !whole.contains(o));
        // A commit with groups is settled once each of them settled it.
        commits.retain_mut(|(o, d)| {
            let had_groups = !d.offsets.is_empty();
            let done = by_group.remove(o).unwrap_or_default();
            d.offsets.retain(|g| !done.contains(&(g.group.clone(), g.topic.clone())));
            !(had_groups && d.offsets.is_empty())
        });
        let open = commits.iter().map(|(o, d)| (*o, d.groups())).collect();
        let state = Mutex::new(Settling { open, since_checkpoint: 0 });
        Ok((TransactionLog { log, state }, Unsettled { commits }, event))
    }

    fn append_entry(&self, entry: &Entry) -> Result<u64> {
        let bytes = bincode::serde::encode_to_vec(entry, config()).map_err(|e| Error::Io {
            op: "encode transaction log entry",
            path: self.log.dir.clone(),
            source: std::io::Error::other(e),
        })?;
        let record = Record::new(bytes);
        let size = crate::storage::frame::record_len(&record);
        self.log.append(&[&record], &[size])
    }

    /// Appends `decision`: the commit point of its transaction. With
    /// `durable`, it is on disk when this returns. Returns the entry's
    /// offset, to [`settle`](TransactionLog::settle) it by.
    ///
    /// On `Err` with `Ok(offset)` inside — the entry was written but could
    /// not be synced — the transaction is committed all the same (a crash
    /// now would find it), so the caller goes on and reports the failure.
    pub(crate) fn append_commit(&self, decision: &Decision, durable: bool) -> Result<(u64, Result<()>)> {
        let offset = {
            let mut s = self.state.lock();
            let offset = self.append_entry(&Entry::Commit(decision.clone()))?;
            s.open.insert(offset, decision.groups());
            s.since_checkpoint += 1;
            offset
        };
        let synced = if durable { self.log.flush() } else { Ok(()) };
        Ok((offset, synced))
    }

    /// Marks the commits at `offsets` settled — for `group` (group and topic
    /// name) only: its offsets file holds their offsets; or, with `None`,
    /// wholly — on disk when this returns if `durable`; now and then also
    /// writes a checkpoint and deletes what it covers.
    pub(crate) fn settle(&self, offsets: &[u64], group: Option<(&str, &str)>, durable: bool) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let checkpoint = {
            let mut s = self.state.lock();
            let group = group.map(|(g, t)| (g.to_string(), t.to_string()));
            self.append_entry(&Entry::Settled { commits: offsets.to_vec(), group: group.clone() })?;
            for o in offsets {
                let done = match (&group, s.open.get_mut(o)) {
                    (Some(g), Some(left)) => {
                        left.remove(g);
                        left.is_empty()
                    }
                    _ => true,
                };
                if done {
                    s.open.remove(o);
                }
            }
            s.since_checkpoint += 1;
            s.since_checkpoint >= CHECKPOINT_EVERY
        };
        if durable {
            self.log.flush()?;
        }
        if checkpoint { self.checkpoint(false) } else { Ok(()) }
    }

    /// Writes a checkpoint before the oldest unsettled commit (synced with
    /// `durable`), and deletes the sealed segments wholly before it.
    pub(crate) fn checkpoint(&self, durable: bool) -> Result<()> {
        let upto = {
            let mut s = self.state.lock();
            // Under the lock: no commit is appended between reading the
            // log's end and writing the checkpoint.
            let upto = s.open.keys().next().copied().unwrap_or_else(|| self.log.high_watermark());
            self.append_entry(&Entry::Checkpoint(upto))?;
            s.since_checkpoint = 0;
            upto
        };
        if durable {
            self.log.flush()?;
        }
        // The checkpoint itself lies past `upto`, in a segment kept.
        self.log.delete_segments_before(upto)?;
        Ok(())
    }

    /// Flushes and closes the log (at broker close).
    pub(crate) fn close(&self, reason: Error) -> Result<()> {
        self.log.close(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(id: u64) -> Decision {
        Decision {
            id,
            parts: vec![],
            offsets: vec![GroupOffset {
                group: "g".into(),
                topic: "t".into(),
                topic_id: [1; 16],
                partition: 0,
                offset: 10,
            }],
        }
    }

    fn open(dir: &Path) -> (TransactionLog, Unsettled) {
        let (log, unsettled, _) = TransactionLog::open(dir, RecoveryMode::default(), Arc::default()).unwrap();
        (log, unsettled)
    }

    #[test]
    fn a_commit_stays_unsettled_across_checkpoints_until_each_of_its_groups_settles_it() {
        let dir = std::env::temp_dir().join(format!("millpond-unit-txnlog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (log, _) = open(&dir);
        let mut two_groups = decision(1);
        two_groups.offsets.push(GroupOffset { group: "h".into(), ..two_groups.offsets[0].clone() });
        let (first, synced) = log.append_commit(&two_groups, true).unwrap();
        synced.unwrap();
        let (second, _) = log.append_commit(&decision(2), false).unwrap();
        log.settle(&[second], Some(("g", "t")), true).unwrap();
        log.settle(&[first], Some(("g", "t")), true).unwrap();
        log.checkpoint(true).unwrap();
        drop(log);
        // Reopened (as after a crash): the first commit is left for group h
        // only; the second is settled; the checkpoint covered neither wrongly.
        let (log, unsettled) = open(&dir);
        assert_eq!(unsettled.commits.len(), 1);
        let (offset, d) = &unsettled.commits[0];
        assert_eq!((*offset, d.id), (first, 1));
        assert_eq!(d.groups(), BTreeSet::from([("h".to_string(), "t".to_string())]));
        // Recovery that cannot apply it leaves it for the next open, a
        // checkpoint at close included.
        log.checkpoint(true).unwrap();
        drop(log);
        let (log, unsettled) = open(&dir);
        assert_eq!(unsettled.commits.len(), 1);
        log.settle(&[first], Some(("h", "t")), true).unwrap();
        log.checkpoint(true).unwrap();
        drop(log);
        assert!(open(&dir).1.commits.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
