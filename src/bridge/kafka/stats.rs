//! A Kafka bridge's progress: [`BridgeStats`], the snapshot it reports, and
//! `Status`, the counters its thread keeps, with the back-off after a Kafka
//! error.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::bridge::kafka::pacing::MAX_BACKOFF;

/// Progress of a [`KafkaBridge`](crate::KafkaBridge).
///
/// See [`KafkaBridge`](crate::KafkaBridge) for an example.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BridgeStats {
    /// Records moved and committed on the source side.
    pub transferred: u64,
    /// Batches retried after a Kafka error.
    pub retries: u64,
    /// The most recent Kafka error, if any (cleared by a successful batch).
    pub last_error: Option<String>,
    /// Outbound only: local records retention deleted before the bridge
    /// sent them (see [`Error::Lagged`](crate::Error::Lagged)); the bridge
    /// goes on with the oldest record still stored.
    pub skipped: u64,
}

/// What a bridge thread shares with its [`KafkaBridge`](crate::KafkaBridge).
#[derive(Default)]
pub(crate) struct Status {
    pub(crate) transferred: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) skipped: AtomicU64,
    pub(crate) last_error: Mutex<Option<String>>,
}

impl Status {
    /// Records a Kafka error and sleeps the back-off (cut short by `stop`).
    pub(crate) fn failed(&self, what: String, backoff: &mut Duration, stop: &AtomicBool) {
        *self.last_error.lock() = Some(what);
        self.retries.fetch_add(1, Ordering::Relaxed);
        let until = std::time::Instant::now() + *backoff;
        while std::time::Instant::now() < until && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        *backoff = (*backoff * 2).min(MAX_BACKOFF);
    }

    /// The counters as [`BridgeStats`].
    pub(crate) fn snapshot(&self) -> BridgeStats {
        BridgeStats {
            transferred: self.transferred.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            last_error: self.last_error.lock().clone(),
            skipped: self.skipped.load(Ordering::Relaxed),
        }
    }
}
