//! What the copying threads of [`Mirror`](crate::Mirror) and the Kafka
//! bridge share beyond the generic background worker
//! (`storage/background.rs`): reading on past records retention deleted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::client::consumer_group::member::GroupMember;
use crate::error::{Error, Result};
use crate::storage::message::Message;

/// `member.poll(max, timeout)` for a copying thread. Records retention
/// deleted before they were read ([`Error::Lagged`]) cannot be copied: they
/// are counted in `skipped` and the batch is empty (the member already went
/// on with the oldest record still stored).
pub(crate) fn poll_past_retention(
    member: &mut GroupMember,
    max: usize,
    timeout: Duration,
    skipped: &AtomicU64,
) -> Result<Vec<Message>> {
    match member.poll(max, timeout) {
        Err(Error::Lagged { from, resumed_at, .. }) => {
            skipped.fetch_add(resumed_at.saturating_sub(from), Ordering::Relaxed);
            Ok(Vec::new())
        }
        other => other,
    }
}
