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
use std::time::Instant;

use self::sync::{AtomicBool, AtomicUsize, Condvar, Mutex, Ordering, fence};

/// The primitives the notifier is built from, in one place so that the
/// `loom_model` tests can check the real code rather than a copy of it.
///
/// A normal build re-exports parking_lot's `Mutex` and `Condvar` and std's
/// atomics: the notifier compiles to exactly what it would with those types
/// named directly. A test build with `--cfg loom` swaps in loom's, which
/// record every access so the model can explore every interleaving (and
/// every value the memory model lets a load return). loom's lock and wait
/// follow std's API; the wrappers below give them parking_lot's, the one the
/// code uses. loom is a dev-dependency, so only test builds see it; a
/// `--cfg loom` build of the library itself keeps the real primitives.
///
/// `Arc` stays std's in both: callers elsewhere in the crate (which are not
/// modelled) hand in `std::sync::Arc<WaitCell>`, and the count of an `Arc`
/// plays no part in the wait/wake protocol. `Instant` stays std's too; loom
/// has no clock, so timed sleeps are left out of the model (see
/// [`WaitCell::sleep`]).
mod sync {
    #[cfg(not(all(test, loom)))]
    pub(super) use parking_lot::{Condvar, Mutex};
    #[cfg(not(all(test, loom)))]
    pub(super) use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};

    #[cfg(all(test, loom))]
    pub(super) use self::loom_api::{Condvar, Mutex};
    #[cfg(all(test, loom))]
    pub(super) use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};

    #[cfg(all(test, loom))]
    mod loom_api {
        use std::ops::{Deref, DerefMut};

        /// loom's mutex behind parking_lot's `lock()`, which returns the
        /// guard itself: a poisoned lock means a model thread panicked, and
        /// that fails the model anyway.
        #[derive(Debug, Default)]
        pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

        impl<T> Mutex<T> {
            pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
                MutexGuard(Some(self.0.lock().unwrap()))
            }
        }

        /// loom's guard, in an `Option` so that [`Condvar::wait`] can hand it
        /// to loom's wait by value behind parking_lot's `&mut` (it is `None`
        /// only inside that call).
        pub(crate) struct MutexGuard<'a, T>(Option<loom::sync::MutexGuard<'a, T>>);

        impl<T> Deref for MutexGuard<'_, T> {
            type Target = T;
            fn deref(&self) -> &T {
                self.0.as_ref().expect("guard is held outside Condvar::wait")
            }
        }

        impl<T> DerefMut for MutexGuard<'_, T> {
            fn deref_mut(&mut self) -> &mut T {
                self.0.as_mut().expect("guard is held outside Condvar::wait")
            }
        }

        /// loom's condition variable behind parking_lot's `wait(&mut guard)`.
        /// loom's never wakes spuriously (the real ones may); the loop in
        /// `WaitCell::sleep` copes with either.
        #[derive(Debug, Default)]
        pub(crate) struct Condvar(loom::sync::Condvar);

        impl Condvar {
            pub(crate) fn notify_one(&self) {
                self.0.notify_one();
            }

            pub(crate) fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
                let held = guard.0.take().expect("guard is held outside Condvar::wait");
                guard.0 = Some(self.0.wait(held).unwrap());
            }
        }
    }
}

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
    ///
    /// Under the loom model only `None` is allowed: loom has no clock (its
    /// timed wait never times out), so a deadline could only be modelled
    /// wrongly. The timed branch is compiled out there and a deadline panics,
    /// so no model can lean on it by mistake. What a deadline adds, an early
    /// return, cannot lose a wake-up: callers re-check after any return.
    pub(crate) fn sleep(&self, deadline: Option<Instant>) -> bool {
        let mut w = self.woken.lock();
        while !*w {
            match deadline {
                #[cfg(all(test, loom))]
                Some(_) => panic!("the loom model has no clock: sleep with no deadline"),
                #[cfg(not(all(test, loom)))]
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

#[cfg(all(test, loom))]
mod loom_model;

// Timed sleeps on real threads: not for the loom build (see `loom_model`).
#[cfg(all(test, not(loom)))]
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
