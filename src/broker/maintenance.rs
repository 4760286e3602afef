//! The broker's maintenance thread: every [`TICK`] (sooner for an
//! `FsyncPolicy::Interval` shorter than two ticks) it syncs `Interval`
//! partitions that are due; it applies retention every [`RETAIN_EVERY`]
//! (and right after a segment rolls), and compacts compacted topics every
//! [`COMPACT_EVERY`] (and right after a roll). The first round, right after
//! the thread starts, only syncs and follows rolls. Failures have no caller to
//! return to: they go to the broker's health record (once per distinct
//! failure; see `storage/health.rs`) and the work is retried next time.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::broker::shared::Shared;
use crate::storage::background::Worker;
use crate::storage::health::{BackgroundError, BackgroundTask, Health};
use crate::storage::partition_log::state::PartitionLog;
use crate::storage::policy::FsyncPolicy;
use crate::storage::record::now_millis;
use crate::topic::state::TopicState;

/// How long the thread sleeps between rounds, at most.
pub(crate) const TICK: Duration = Duration::from_millis(250);
/// How often retention is applied, besides after each roll.
pub(crate) const RETAIN_EVERY: Duration = Duration::from_millis(250);
/// How often compacted topics are compacted, besides after each roll.
pub(crate) const COMPACT_EVERY: Duration = Duration::from_secs(30);

impl Shared {
    /// Starts the maintenance thread if some topic uses
    /// `FsyncPolicy::Interval`, retention or compaction and it is not
    /// running yet. If the thread cannot start, the failure is reported
    /// (`BackgroundTask::StartThread`) and the work is done only when
    /// asked for (`flush`, `enforce_retention`, `compact`).
    pub(crate) fn ensure_maintenance(self: &Arc<Self>) {
        let needed = self.topics.read().values().any(|t| {
            matches!(t.config.fsync, FsyncPolicy::Interval(_))
                || t.partitions.iter().any(|p| p.has_retention() || p.is_compacted())
        });
        let mut slot = self.maintenance.lock();
        if !needed || slot.is_some() || self.is_closed() {
            return;
        }
        let mut state = Maintenance {
            shared: Arc::downgrade(self),
            last_retention: Instant::now(),
            last_compaction: Instant::now(),
        };
        match Worker::periodic("millpond-maintenance".into(), "maintenance", move || state.tick()) {
            Ok(worker) => *slot = Some(worker),
            Err(e) => self.health.report(BackgroundError::new(BackgroundTask::StartThread, e)),
        }
    }
}

/// What the maintenance thread remembers between ticks.
struct Maintenance {
    /// Weak: the thread must not keep a dropped broker open.
    shared: Weak<Shared>,
    last_retention: Instant,
    last_compaction: Instant,
}

impl Maintenance {
    /// One round over every partition; returns how long to sleep, or
    /// `None` once the broker is gone.
    fn tick(&mut self) -> Option<Duration> {
        let shared = self.shared.upgrade()?;
        let topics: Vec<Arc<TopicState>> = shared.topics.read().values().cloned().collect();
        let health = Arc::clone(&shared.health);
        drop(shared); // closing the broker need not wait for this round
        let due = Due {
            retention: self.last_retention.elapsed() >= RETAIN_EVERY,
            compaction: self.last_compaction.elapsed() >= COMPACT_EVERY,
        };
        let mut sleep = TICK;
        for t in &topics {
            if let FsyncPolicy::Interval(d) = t.config.fsync {
                sleep = sleep.min(d / 2).max(Duration::from_millis(1));
            }
            for p in &t.partitions {
                maintain(&health, t, p, due);
            }
        }
        if due.retention {
            self.last_retention = Instant::now();
        }
        if due.compaction {
            self.last_compaction = Instant::now();
        }
        Some(sleep)
    }
}

/// Which periodic work this round does on every partition.
#[derive(Clone, Copy)]
struct Due {
    retention: bool,
    compaction: bool,
}

/// Syncs, applies retention to and compacts one partition, as due.
fn maintain(health: &Health, t: &TopicState, p: &PartitionLog, due: Due) {
    let at = |task, e| BackgroundError::new(task, e).on(&t.name, p.partition());
    // A sync failure also poisons the partition, which then reports it
    // on every send and flush.
    if let Err(e) = p.sync_if_due() {
        health.report(at(BackgroundTask::Sync, e));
    }
    let rolled = p.take_rolled();
    if p.has_retention() && (rolled || due.retention) {
        match p.apply_retention(now_millis()) {
            Ok(_) => health.resolved(BackgroundTask::Retention, &t.name, p.partition()),
            Err(e) => health.report(at(BackgroundTask::Retention, e)),
        }
    }
    if p.is_compacted() && (rolled || due.compaction) {
        match p.compact(now_millis()) {
            Ok(_) => health.resolved(BackgroundTask::Compaction, &t.name, p.partition()),
            Err(e) => health.report(at(BackgroundTask::Compaction, e)),
        }
    }
}
