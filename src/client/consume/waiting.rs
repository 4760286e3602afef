//! [`WaitStrategy`] and [`Waiter`]: how a blocked consumer waits for new
//! records without losing a wake-up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::storage::notify::{Notifier, WaitCell};

/// How a blocked consumer waits for new records.
///
/// Like the LMAX Disruptor's wait strategies: trade CPU for latency. The
/// strategy concerns the blocking calls (`recv`, `poll`, `iter`, ...); an
/// async receive (`recv_async`, `stream`) never spins: when nothing is
/// there it leaves its task's waker with the partitions and returns
/// `Pending`, giving the thread back to the executor.
///
/// # Examples
///
/// ```
/// use millpond::WaitStrategy;
/// assert_eq!(WaitStrategy::default(), WaitStrategy::SpinThenPark);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WaitStrategy {
    /// Spin briefly, then park the thread until a producer wakes it (default;
    /// uses no CPU while idle).
    #[default]
    SpinThenPark,
    /// Spin, then `thread::yield_now()` in a loop: lower latency, burns a core
    /// while idle, still gives the CPU to other runnable threads.
    Yield,
    /// Busy-spin without ever yielding: lowest latency, burns a core.
    BusySpin,
}

/// Spin iterations before a waiting consumer yields or parks.
const SPINS: u32 = 200;
/// `yield_now` iterations, after spinning, before a `SpinThenPark` consumer parks.
const YIELDS: u32 = 20;
/// The same for a consumer whose look is a system call (a read-only
/// broker's, which `pread`s the files): about as long in time, far fewer
/// looks, so a reader's wait does not take the CPU its writer needs.
const COSTLY_SPINS: u32 = 4;
const COSTLY_YIELDS: u32 = 2;

/// How one consumer waits: its strategy, the cell it sleeps on, and the
/// flag a channel bridge sets to stop a blocked receive.
#[derive(Debug, Default)]
pub(crate) struct Waiter {
    cell: Arc<WaitCell>,
    strategy: WaitStrategy,
    /// Set by a channel bridge to stop a blocked receive.
    interrupt: Option<Arc<AtomicBool>>,
    /// Set by a [`WakeupHandle`](crate::WakeupHandle): the next receive
    /// that would wait returns `Error::Interrupted` instead.
    wakeup: Arc<AtomicBool>,
}

impl Waiter {
    /// Sets the strategy.
    pub(crate) fn set_strategy(&mut self, strategy: WaitStrategy) {
        self.strategy = strategy;
    }

    /// Installs the flag a channel bridge sets to stop a blocked receive, and
    /// returns the cell to wake.
    pub(crate) fn set_interrupt(&mut self, flag: Arc<AtomicBool>) -> Arc<WaitCell> {
        self.interrupt = Some(flag);
        Arc::clone(&self.cell)
    }

    /// The flag a [`WakeupHandle`](crate::WakeupHandle) sets.
    pub(crate) fn wakeup_flag(&self) -> &Arc<AtomicBool> {
        &self.wakeup
    }

    /// Whether a wake-up was asked for and not yet delivered.
    pub(crate) fn wakeup_requested(&self) -> bool {
        self.wakeup.load(Ordering::SeqCst)
    }

    /// Delivers a requested wake-up: `true` once per request.
    pub(crate) fn take_wakeup(&self) -> bool {
        self.wakeup.swap(false, Ordering::SeqCst)
    }

    /// Removes the interrupt flag (when a bridge hands the consumer back).
    pub(crate) fn clear_interrupt(&mut self) {
        self.interrupt = None;
    }

    /// The cell this consumer waits on, as a thread or as a task.
    pub(crate) fn cell(&self) -> &Arc<WaitCell> {
        &self.cell
    }

    /// Whether a channel bridge asked the receive to stop.
    pub(crate) fn interrupted(&self) -> bool {
        self.interrupt.as_ref().is_some_and(|f| f.load(Ordering::SeqCst))
    }

    /// Waits until `ready()` (some partition may have data, the group
    /// changed, or nothing more can arrive) or the waiter is interrupted
    /// (`true`), or `deadline` passes (`false`). `notifiers` visits every
    /// notifier whose `notify` could make `ready()` true: the waiter
    /// registers with them all before it sleeps. `costly`: a look at
    /// `ready()` is a system call (a read-only broker's partitions), so
    /// spin for fewer looks.
    pub(crate) fn wait(
        &self,
        deadline: Option<Instant>,
        ready: impl Fn() -> bool,
        notifiers: impl Fn(&mut dyn FnMut(&Notifier)),
        costly: bool,
    ) -> bool {
        let (spins, yields) = if costly { (COSTLY_SPINS, COSTLY_YIELDS) } else { (SPINS, YIELDS) };
        let mut i: u32 = 0;
        loop {
            if ready() || self.interrupted() {
                return true;
            }
            if i % 64 == 63 && deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            match self.strategy {
                WaitStrategy::BusySpin => std::hint::spin_loop(),
                WaitStrategy::Yield if i < spins => std::hint::spin_loop(),
                WaitStrategy::Yield => std::thread::yield_now(),
                WaitStrategy::SpinThenPark if i < spins => std::hint::spin_loop(),
                WaitStrategy::SpinThenPark if i < spins + yields => std::thread::yield_now(),
                WaitStrategy::SpinThenPark => return self.park(deadline, &ready, &notifiers),
            }
            i = i.wrapping_add(1);
        }
    }

    /// Registers with every notifier, re-checks, and sleeps.
    fn park(
        &self,
        deadline: Option<Instant>,
        ready: &impl Fn() -> bool,
        notifiers: &impl Fn(&mut dyn FnMut(&Notifier)),
    ) -> bool {
        notifiers(&mut |n| n.register(&self.cell));
        // Re-check after registering (see storage/notify.rs: no lost wake-ups).
        let woken = if ready() || self.interrupted() { true } else { self.cell.sleep(deadline) };
        notifiers(&mut |n| n.unregister(&self.cell));
        woken || deadline.is_none_or(|d| Instant::now() < d)
    }
}
