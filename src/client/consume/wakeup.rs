//! [`WakeupHandle`]: wakes a consumer or group member out of a blocking
//! receive from another thread or task, without closing the broker.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::storage::notify::WaitCell;

/// Wakes one consumer or group member out of a blocking (or async)
/// receive: the receive that is waiting, or the next one that would wait,
/// returns [`Error::Interrupted`](crate::Error::Interrupted), once per
/// [`wake`](WakeupHandle::wake) (Kafka's `consumer.wakeup()`). From
/// [`Consumer::wakeup_handle`](crate::Consumer::wakeup_handle) or
/// [`GroupMember::wakeup_handle`](crate::GroupMember::wakeup_handle);
/// `Clone + Send + Sync`.
///
/// # Why no wake-up is lost
///
/// `wake` sets the flag, then wakes the consumer's wait cell (a sleeping
/// thread or a waiting task). A receive checks the flag after it found
/// nothing to return and before it waits, and its wait returns as soon as
/// the flag is set (the flag is part of what it re-checks after
/// registering, like new data); a wake that lands before the wait is seen
/// by that check, one that lands during it by the cell.
///
/// # Examples
///
/// ```
/// use millpond::{Broker, Error, StartFrom, TopicConfig};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-wakeupty-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let topic = broker.create_topic("t", TopicConfig::default())?;
/// let mut member = topic.group("workers")?.join()?;
/// let stop = member.wakeup_handle();
/// let worker = std::thread::spawn(move || loop {
///     match member.recv() {
///         Ok(_m) => { /* handle it */ }
///         Err(Error::Interrupted) => return member.close(), // commits and leaves
///         Err(e) => return Err(e),
///     }
/// });
/// stop.wake();
/// worker.join().unwrap()?;
/// # drop(topic); drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct WakeupHandle {
    flag: Arc<AtomicBool>,
    cell: Arc<WaitCell>,
}

impl std::fmt::Debug for WakeupHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WakeupHandle").field("pending", &self.flag.load(Ordering::Relaxed)).finish()
    }
}

impl WakeupHandle {
    pub(crate) fn new(flag: Arc<AtomicBool>, cell: Arc<WaitCell>) -> WakeupHandle {
        WakeupHandle { flag, cell }
    }

    /// Interrupts the consumer's current blocking receive, or its next one
    /// that would wait.
    ///
    /// See [`WakeupHandle`] for an example.
    pub fn wake(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.cell.wake();
    }
}
