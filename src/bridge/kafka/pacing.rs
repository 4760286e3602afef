//! How both directions of the Kafka bridge pace their rounds: the batch
//! size and the longest back-off between retries.

use std::time::Duration;

/// Records moved per round.
pub(crate) const BATCH: usize = 1000;
/// Longest back-off between retries.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(5);
