//! Wait and wake for blocking consumers.
//!
//! Each partition has a [`Notifier`]; each waiting consumer has one
//! [`WaitCell`] that it registers with the notifiers of every partition it
//! reads before it sleeps. A producer publishes a record and then calls
//! [`Notifier::notify`], which costs one fence and one load when nobody waits.
//!
//! # Why no wake-up is lost
//!
//! The consumer registers (a `SeqCst` increment of `waiting`), issues a
//! `SeqCst` fence, and only then checks the partitions for data once more
//! before it sleeps. The producer stores the new committed length, issues a
//! `SeqCst` fence, and then loads `waiting`. The two fences order the two
//! pairs of accesses, so either the consumer's re-check sees the new record,
//! or the producer sees `waiting > 0` and wakes the cell; the cell's flag is
//! set under its mutex, so a wake that arrives before the consumer sleeps is
//! remembered rather than lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

/// A sleeping consumer's bed: a flag and a condition variable.
#[derive(Debug, Default)]
pub(crate) struct WaitCell {
    woken: Mutex<bool>,
    cv: Condvar,
}

impl WaitCell {
    /// Wakes the owner of this cell (or makes its next wait return at once).
    pub(crate) fn wake(&self) {
        let mut w = self.woken.lock();
        *w = true;
        self.cv.notify_one();
    }

    /// Sleeps until woken or until `deadline`. Returns `false` on timeout.
    pub(crate) fn sleep(&self, deadline: Option<Instant>) -> bool {
        let mut w = self.woken.lock();
        while !*w {
            match deadline {
                Some(d) => {
                    if self.cv.wait_until(&mut w, d).timed_out() {
                        let woken = *w;
                        *w = false;
                        return woken;
                    }
                }
                None => self.cv.wait(&mut w),
            }
        }
        *w = false;
        true
    }
}

/// Per-partition registry of sleeping consumers.
#[derive(Debug, Default)]
pub(crate) struct Notifier {
    waiting: AtomicUsize,
    cells: Mutex<Vec<Arc<WaitCell>>>,
    closed: AtomicBool,
}

impl Notifier {
    /// Called by a producer after publishing: wakes every registered waiter.
    #[inline]
    pub(crate) fn notify(&self) {
        // Pairs with the fence in `register`; see the module docs.
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::Relaxed) > 0 {
            self.wake_all();
        }
    }

    fn wake_all(&self) {
        for cell in self.cells.lock().iter() {
            cell.wake();
        }
    }

    /// Registers `cell` to be woken by the next `notify`. The caller must
    /// re-check for data after this returns, then sleep, then `unregister`.
    pub(crate) fn register(&self, cell: &Arc<WaitCell>) {
        let mut cells = self.cells.lock();
        cells.push(Arc::clone(cell));
        self.waiting.fetch_add(1, Ordering::SeqCst);
        drop(cells);
        // Pairs with the fence in `notify`.
        fence(Ordering::SeqCst);
    }

    /// Removes one registration of `cell`.
    pub(crate) fn unregister(&self, cell: &Arc<WaitCell>) {
        let mut cells = self.cells.lock();
        if let Some(i) = cells.iter().position(|c| Arc::ptr_eq(c, cell)) {
            cells.swap_remove(i);
            self.waiting.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Marks the partition closed and wakes everyone, for good.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.wake_all();
    }

    /// Whether [`Notifier::close`] was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn wake_before_sleep_is_not_lost() {
        let cell = Arc::new(WaitCell::default());
        cell.wake();
        assert!(cell.sleep(Some(Instant::now() + Duration::from_secs(5))));
    }

    #[test]
    fn sleep_honours_its_deadline() {
        let cell = WaitCell::default();
        let start = Instant::now();
        assert!(!cell.sleep(Some(start + Duration::from_millis(20))));
        assert!(start.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn notify_wakes_a_registered_sleeper_on_another_thread() {
        let n = Arc::new(Notifier::default());
        let cell = Arc::new(WaitCell::default());
        n.register(&cell);
        let n2 = Arc::clone(&n);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            n2.notify();
        });
        assert!(cell.sleep(Some(Instant::now() + Duration::from_secs(10))));
        n.unregister(&cell);
        t.join().unwrap();
        assert_eq!(n.waiting.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn close_wakes_sleepers() {
        let n = Arc::new(Notifier::default());
        let cell = Arc::new(WaitCell::default());
        n.register(&cell);
        n.close();
        assert!(n.is_closed());
        assert!(cell.sleep(Some(Instant::now() + Duration::from_secs(10))));
    }
}
