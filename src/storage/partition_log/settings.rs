//! [`LogSettings`]: what a partition log needs from its topic's config.

use crate::storage::policy::{CleanupPolicy, FsyncPolicy};

/// The settings a partition log needs from its topic's config.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogSettings {
    pub segment_bytes: u64,
    pub index_interval: u32,
    pub fsync: FsyncPolicy,
    pub retention_bytes: Option<u64>,
    pub retention: Option<std::time::Duration>,
    pub cleanup: CleanupPolicy,
    pub tombstone_retention: std::time::Duration,
}
