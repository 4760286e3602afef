//! Committing transactions, and recovering them at open: the broker's side
//! of [`Transaction`](crate::Transaction).
//!
//! # The commit, step by step
//!
//! 1. The groups whose offsets the transaction commits are held (their
//!    offsets files' writers, and changes of ownership), sorted by group
//!    and topic, and each member's right to commit its offsets is checked.
//! 2. The partitions' writer locks are taken, sorted by topic and
//!    partition (so concurrent commits cannot deadlock), and each partition
//!    makes room for its share in its active segment (rolling first if it
//!    has to). Nothing can fail after this but syncs.
//! 3. Each share is written as transactional frames above the published
//!    end: no reader in this process sees them; readers in other processes
//!    see them but hold them back until their marker appears.
//! 4. If any partition syncs every write (`FsyncPolicy::Always`), the
//!    shares are msynced now, and the decision below is synced too.
//! 5. **The decision**: the commit is appended to the transaction log
//!    (`storage/transaction_log.rs`). A crash before it leaves the
//!    transaction aborted everywhere; a crash after it, committed.
//! 6. Each partition writes its share's commit marker and publishes the
//!    share and the marker at once (one `Release` store), and applies its
//!    fsync policy.
//! 7. The groups take the offsets (at once, for `committed` and lag) and
//!    the commit thread writes them to their offsets files; once it has,
//!    the commit is *settled* in the transaction log.
//!
//! On any failure before step 5 the written shares are zeroed again and
//! nothing is published: the transaction is aborted and the partitions
//! are as they were (but for an empty segment a roll may have added).

use std::sync::Arc;

use crate::broker::shared::Shared;
use crate::error::{Error, Result};
use crate::group::coordinator::GroupState;
use crate::storage::frame;
use crate::storage::partition_log::state::PartitionLog;
use crate::storage::partition_log::transaction::TxnShare;
use crate::storage::record::{Record, now_millis};
use crate::storage::segment_header::TopicId;
use crate::storage::transaction_log::{Decision, GroupOffset, PartDecision, TransactionLog};
use crate::topic::state::TopicState;

/// One partition's records in a commit.
pub(crate) struct ShareInput {
    pub(crate) topic: Arc<TopicState>,
    pub(crate) partition: u32,
    pub(crate) records: Vec<Record<'static>>,
}

/// One group's offsets in a commit: those of `member`, whose `fence` is
/// set (to a partition plus one) when it gave up a partition with records
/// received and not committed.
pub(crate) struct GroupInput {
    pub(crate) state: Arc<GroupState>,
    pub(crate) member: u64,
    pub(crate) offsets: Vec<(u32, u64)>,
    pub(crate) fence: Arc<std::sync::atomic::AtomicU64>,
}

/// Where a committed transaction's records went: `(topic, partition, first
/// offset, record count)` for each partition.
pub(crate) type Placed = Vec<(Arc<str>, u32, u64, u64)>;

impl Shared {
    /// Opens the transaction log (a writing broker's) and keeps what it
    /// holds unsettled for the topics' recovery.
    /// A broker that never committed a transaction has none: the log is
    /// created by the first commit.
    pub(crate) fn open_transactions(&self) -> Result<()> {
        match std::fs::symlink_metadata(self.dir.join(crate::storage::transaction_log::DIR)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            _ => {}
        }
        let (log, unsettled, event) = TransactionLog::open(&self.dir, self.config.recovery, Arc::clone(&self.health))?;
        if let Some(event) = event {
            self.report.lock().push(event);
        }
        *self.txns.log.lock() = Some(Arc::new(log));
        *self.txns.unsettled.lock() = unsettled;
        Ok(())
    }

    /// For a partition's recovery: whether transaction `txn`, whose frames
    /// end partition `partition` of topic `topic_id` at `end` without a
    /// marker, was committed.
    pub(crate) fn txn_committed(&self, topic_id: &TopicId, partition: u32, txn: u64, end: u64) -> bool {
        self.txns.unsettled.lock().committed(topic_id, partition, txn, end)
    }

    /// After every topic is open: applies again the unsettled commits'
    /// group offsets (those no later write of the group's file holds), in
    /// order, settles what is done, and writes a checkpoint.
    pub(crate) fn finish_transaction_recovery(&self) -> Result<()> {
        let Some(log) = self.txns.log.lock().clone() else { return Ok(()) };
        let unsettled = std::mem::take(&mut *self.txns.unsettled.lock());
        let topic_of = |name: &str, id: &TopicId| {
            self.topics.read().get(name).filter(|t| t.partitions.first().is_some_and(|p| p.id.topic_id == *id)).cloned()
        };
        for (entry, decision) in &unsettled.commits {
            for (group, topic) in decision.groups() {
                let offsets: Vec<&GroupOffset> =
                    decision.offsets.iter().filter(|o| o.group == group && o.topic == topic).collect();
                // A topic deleted (or deleted and created again) since took
                // its groups' offsets with it: nothing to apply.
                let applied = match offsets.first().and_then(|o| topic_of(&topic, &o.topic_id)) {
                    None => Ok(()),
                    Some(state) => {
                        let pairs: Vec<(u32, u64)> = offsets.iter().map(|o| (o.partition, o.offset)).collect();
                        self.group_state(&group, &state).roll_forward(&pairs)
                    }
                };
                match applied {
                    Ok(()) => log.settle(&[*entry], Some((&group, &topic)), true)?,
                    // The broker opens all the same; the commit stays
                    // unsettled, and the next open applies it again.
                    Err(e) => log::error!(
                        "millpond: group {group:?} topic {topic:?}: could not apply a committed transaction's offsets: {e}"
                    ),
                }
            }
            // Its markers were added as its topics opened: synced before
            // the checkpoint covers the commit. A topic that did not open
            // (damaged) keeps the commit unsettled for the next open.
            for part in &decision.parts {
                if let Some(t) = topic_of(&part.topic, &part.topic_id)
                    && let Some(p) = t.partitions.get(part.partition as usize)
                {
                    p.flush()?;
                }
            }
            let damaged = decision.parts.iter().any(|p| self.damaged.read().contains_key(&p.topic));
            if decision.offsets.is_empty() && !damaged {
                log.settle(&[*entry], None, false)?;
            }
        }
        log.checkpoint(true)
    }

    /// Commits a transaction (see the module docs). `Ok` carries where its
    /// records went, and the failure of a sync made after the decision, if
    /// any: the transaction is committed then, but may not survive a
    /// machine crash.
    pub(crate) fn commit_transaction(
        &self,
        id: u64,
        mut shares: Vec<ShareInput>,
        mut groups: Vec<GroupInput>,
    ) -> Result<(Placed, Result<()>)> {
        self.check_writable("commit a transaction")?;
        if self.is_closed() {
            return Err(Error::Closed);
        }
        if shares.iter().all(|s| s.records.is_empty()) && groups.is_empty() {
            return Ok((Vec::new(), Ok(())));
        }
        let txn_log = self.transaction_log()?;
        let now = now_millis();
        // 1. The groups, held and checked.
        groups.sort_by(|a, b| (&a.state.name, &a.state.topic.name).cmp(&(&b.state.name, &b.state.topic.name)));
        let mut holds: Vec<_> = groups.iter().map(|g| g.state.hold_for_transaction()).collect();
        for (g, hold) in groups.iter().zip(&holds) {
            hold.check(g.member, &g.offsets)?;
            // A partition revoked with records received and not committed:
            // the transaction may hold output of records its next owner
            // processes too (Kafka fences such a producer). Told once; the
            // application rewinds (`GroupMember::seek_to_committed`).
            let revoked = g.fence.swap(0, std::sync::atomic::Ordering::AcqRel);
            if revoked != 0 {
                return Err(Error::NotAssigned {
                    topic: g.state.topic.name.to_string(),
                    group: g.state.name.clone(),
                    partition: (revoked - 1) as u32,
                });
            }
        }
        // 2. The partitions, locked in order, each with room for its share.
        shares.retain(|s| !s.records.is_empty());
        shares.sort_by(|a, b| (&a.topic.name, a.partition).cmp(&(&b.topic.name, b.partition)));
        let logs: Vec<&Arc<PartitionLog>> = shares.iter().map(|s| &s.topic.partitions[s.partition as usize]).collect();
        let refs: Vec<Vec<&Record<'_>>> = shares.iter().map(|s| s.records.iter().collect()).collect();
        let sizes: Vec<Vec<usize>> = refs.iter().map(|r| r.iter().map(|r| frame::record_len(r)).collect()).collect();
        let mut guards: Vec<_> = logs.iter().map(|log| log.lock_writer()).collect();
        for ((log, w), sizes) in logs.iter().zip(guards.iter_mut()).zip(&sizes) {
            log.txn_prepare(w, log.txn_share_bytes(sizes), now)?;
        }
        // 3. The shares, written unpublished.
        let mut written: Vec<TxnShare> = Vec::with_capacity(shares.len());
        for (((log, w), refs), sizes) in logs.iter().zip(guards.iter_mut()).zip(&refs).zip(&sizes) {
            written.push(log.txn_write(w, refs, sizes, id, now));
        }
        let abort = |written: Vec<TxnShare>, e: Error| {
            for (log, share) in logs.iter().zip(written) {
                log.txn_discard(share);
            }
            Err(e)
        };
        // 4. On disk first where a partition syncs every write.
        let durable = logs.iter().any(|log| log.txn_needs_sync());
        if durable {
            for (log, share) in logs.iter().zip(&written) {
                if let Err(e) = log.txn_sync(share) {
                    return abort(written, e);
                }
            }
        }
        // 5. The decision.
        let decision = Decision {
            id,
            parts: shares
                .iter()
                .zip(&written)
                .map(|(s, w)| PartDecision {
                    topic: s.topic.name.to_string(),
                    topic_id: s.topic.partitions[s.partition as usize].id.topic_id,
                    partition: s.partition,
                    first: w.first,
                    marker: w.marker,
                })
                .collect(),
            offsets: groups
                .iter()
                .flat_map(|g| {
                    g.offsets.iter().map(|&(partition, offset)| GroupOffset {
                        group: g.state.name.clone(),
                        topic: g.state.topic.name.to_string(),
                        topic_id: g.state.topic.partitions.first().map_or([0; 16], |p| p.id.topic_id),
                        partition,
                        offset,
                    })
                })
                .collect(),
        };
        let (entry, mut synced) = match txn_log.append_commit(&decision, durable) {
            Ok(appended) => appended,
            Err(e) => return abort(written, e),
        };
        // 6. Committed: markers, and everything published.
        let placed: Placed = shares
            .iter()
            .zip(&written)
            .map(|(s, w)| (Arc::clone(&s.topic.name), s.partition, w.first, s.records.len() as u64))
            .collect();
        for ((log, w), share) in logs.iter().zip(guards.iter_mut()).zip(written) {
            // A durable transaction's markers are synced on every partition.
            if let Err(e) = log.txn_publish(w, share, id, now, durable) {
                synced = synced.and(Err(e));
            }
        }
        drop(guards);
        for log in &logs {
            log.notify_consumers();
        }
        // 7. The groups' offsets: in memory now, in their files by the
        // commit thread, which settles the commit for each group.
        for (g, hold) in groups.iter().zip(holds.iter_mut()) {
            hold.apply(&g.offsets, &txn_log, entry);
        }
        drop(holds);
        for g in &groups {
            g.state.schedule_write();
        }
        if groups.is_empty() {
            // Committed and published: a failure to mark it settled only
            // means recovery looks at it again.
            if let Err(e) = txn_log.settle(&[entry], None, false) {
                log::warn!("millpond: could not mark a transaction settled: {e}");
            }
        }
        Ok((placed, synced))
    }

    /// The transaction log, created on first use.
    fn transaction_log(&self) -> Result<Arc<TransactionLog>> {
        let mut log = self.txns.log.lock();
        if let Some(log) = &*log {
            return Ok(Arc::clone(log));
        }
        // Closing takes the log under this lock after marking the broker
        // closed: none is created after it.
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let (opened, _, _) = TransactionLog::open(&self.dir, self.config.recovery, Arc::clone(&self.health))?;
        let opened = Arc::new(opened);
        *log = Some(Arc::clone(&opened));
        Ok(opened)
    }

    /// At close, after the groups wrote their offsets: settles what it can,
    /// marks it, and closes the transaction log.
    pub(crate) fn close_transactions(&self) -> Result<()> {
        let Some(log) = self.txns.log.lock().take() else { return Ok(()) };
        let marked = log.checkpoint(true);
        let closed = log.close(Error::Closed);
        marked.and(closed)
    }
}
