//! Bounded back-pressure: holding producers back while the slowest active
//! consumer group is too far behind (see [`Backlog`]).

use std::sync::Arc;
use std::time::Instant;

use crate::broker::topic::Topic;
use crate::error::{Error, Result};
use crate::storage::notify::WaitCell;
use crate::topic::config::Backlog;

/// How long a producer may wait for space.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    /// Do not wait.
    No,
    /// Wait until this instant.
    Until(Instant),
    /// Wait as long as it takes.
    Forever,
}

impl Topic {
    /// The backlog of `partition` in the unit of the topic's limit, or
    /// `None` when nothing bounds it (no limit or no active group).
    pub(crate) fn backlog(&self, partition: u32) -> Option<u64> {
        let limit = self.inner.config.max_backlog;
        if limit == Backlog::Unbounded {
            return None;
        }
        let log = self.inner.partitions.get(partition as usize)?;
        let slowest = self.inner.slowest_active_group(partition)?;
        Some(match limit {
            Backlog::Records(_) => log.high_watermark().saturating_sub(slowest),
            // Caught up: nothing is behind, whatever the index granularity.
            Backlog::Bytes(_) if slowest >= log.high_watermark() => 0,
            Backlog::Bytes(_) => log.bytes_from(slowest),
            Backlog::Unbounded => 0,
        })
    }

    pub(crate) fn over_limit(&self, partition: u32) -> bool {
        let limit = match self.inner.config.max_backlog {
            Backlog::Records(n) | Backlog::Bytes(n) => n,
            Backlog::Unbounded => return false,
        };
        self.backlog(partition).is_some_and(|b| b >= limit)
    }

    /// Waits until `partition` has room under the backlog limit. Returns
    /// `false` if it has none when `wait` runs out.
    pub(crate) fn wait_for_space(&self, partition: u32, wait: Wait) -> Result<bool> {
        if !self.over_limit(partition) {
            return Ok(true);
        }
        let deadline = match wait {
            Wait::No => return Ok(false),
            Wait::Until(d) => Some(d),
            Wait::Forever => None,
        };
        let log = self.partition_log(partition)?;
        let cell = Arc::new(WaitCell::default());
        loop {
            log.space.register(&cell);
            // Re-check after registering: a commit in between is not lost
            // (same protocol as consumers, see notify.rs).
            let full = self.over_limit(partition);
            let closed = self.unusable().or_else(|| log.space.is_closed().then_some(Error::Closed));
            if full && closed.is_none() {
                cell.sleep(deadline);
            }
            log.space.unregister(&cell);
            if let Some(e) = closed {
                return Err(e);
            }
            if !self.over_limit(partition) {
                return Ok(true);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
        }
    }
}
