//! [`TopicState`]: what every handle of one open topic shares.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::{Arc, Weak};

use parking_lot::RwLock;

use crate::storage::partition_log::state::PartitionLog;
use crate::topic::config::TopicConfig;
use crate::topic::group_progress::GroupProgress;

/// The state of one open topic.
pub(crate) struct TopicState {
    pub(crate) name: Arc<str>,
    pub(crate) config: TopicConfig,
    pub(crate) dir: PathBuf,
    pub(crate) partitions: Vec<Arc<PartitionLog>>,
    pub(crate) deleted: AtomicBool,
    /// Spreads new producers' round-robin starting points.
    pub(crate) producer_seq: AtomicU32,
    /// The progress of this topic's consumer groups, read lock-free by
    /// back-pressure (weak: a group holds its topic, not the reverse).
    pub(crate) groups: RwLock<Vec<Weak<GroupProgress>>>,
}

impl TopicState {
    pub(crate) fn new(name: Arc<str>, config: TopicConfig, dir: PathBuf, partitions: Vec<Arc<PartitionLog>>) -> Self {
        TopicState {
            name,
            config,
            dir,
            partitions,
            deleted: AtomicBool::new(false),
            producer_seq: AtomicU32::new(0),
            groups: RwLock::new(Vec::new()),
        }
    }

    /// For a topic another process writes (a read-only broker's): brings
    /// every partition's view up to the files now (new records, rolls, the
    /// log start after retention). Nothing for the writer's own topics.
    pub(crate) fn catch_up(&self) -> crate::error::Result<()> {
        for p in &self.partitions {
            p.catch_up_fully()?;
        }
        Ok(())
    }

    /// Registers a group's progress, so back-pressure sees it.
    pub(crate) fn add_group(&self, progress: &Arc<GroupProgress>) {
        let mut groups = self.groups.write();
        groups.retain(|g| g.strong_count() > 0);
        groups.push(Arc::downgrade(progress));
    }

    /// The offset the slowest active group has committed on `partition`
    /// (its log start where it has committed nothing), or `None` if no
    /// group has a member.
    pub(crate) fn slowest_active_group(&self, partition: u32) -> Option<u64> {
        let start = self.partitions.get(partition as usize)?.log_start();
        self.groups
            .read()
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|g| g.is_active())
            .map(|g| g.committed(partition).unwrap_or(start).max(start))
            .min()
    }
}
