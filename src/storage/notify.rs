//! Wait and wake for blocking and async consumers.
//!
//! Each partition has a [`Notifier`]; each waiting consumer has one
//! [`WaitCell`] that it registers with the notifiers of every partition it
//! reads before it waits. A producer publishes a record and then calls
//! [`Notifier::notify`], which costs one fence and one load when nobody waits.
//!
//! A cell is a thread's or a task's: a thread sleeps on its condition
//! variable ([`WaitCell::sleep`]); a task leaves its [`Waker`] in it
//! ([`WaitCell::arm_task`]) and returns `Pending`. Both kinds sit in the one
//! list of cells, and [`WaitCell::wake`] serves both, so the argument below
//! holds for threads and tasks alike.
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
//!
//! A task puts its waker into the cell (under the cell's mutex) *before* it
//! registers, so a producer that sees the registration finds the waker, or
//! the task's re-check sees the record. A wake takes the waker out; the
//! task's next poll first ends its registration ([`WaitCell::disarm_task`]),
//! looks for data, and only then arms again with the waker of that poll: a
//! task polled many times is registered once per notifier, never more, and
//! its latest waker is the one woken. A task whose future is dropped
//! disarms, leaving nothing behind.

use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

use crate::storage::wake_file::{POLL_WITH_BELL, POLL_WITHOUT_BELL, WakeFile, WakeSlot};

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

/// A waiting consumer's bed: a flag and a condition variable for a thread,
/// a waker slot for a task.
#[derive(Debug, Default)]
pub(crate) struct WaitCell {
    state: Mutex<CellState>,
    cv: Condvar,
}

/// What [`WaitCell::wake`] leaves for the cell's owner, under one mutex.
#[derive(Debug, Default)]
struct CellState {
    /// Set by a wake, cleared by the sleep (or task poll) that sees it.
    woken: bool,
    /// The waker of the task that armed the cell, taken by the next wake.
    waker: Option<Waker>,
    /// Set when the cell registered with a follower's notifier (a
    /// partition another process writes): how the next sleep waits for
    /// that process. Taken by the sleep.
    across: Option<Bell>,
    /// The wake file a thread is sleeping on now, which a wake from this
    /// process must ring to reach it.
    ringing: Option<Arc<WakeFile>>,
}

/// How a thread waits for a writer in another process.
#[derive(Debug, Clone)]
enum Bell {
    /// On the wake file's bell, from the value it had after arming.
    Rung(Arc<WakeFile>, u32),
    /// No wake file: by polling.
    Poll,
}

/// What a follower's notifier adds (a partition another process writes;
/// see `storage/partition_log/follower.rs`): that process rings the wake
/// file, not this notifier.
///
/// A thread that registers arms the partition's slot and sleeps on the
/// bell itself ([`WaitCell::sleep`]); a wake from this process (a close, a
/// [`WakeupHandle`](crate::WakeupHandle)) rings the bell to reach it. A
/// task cannot sleep: registering one *kicks* this process's tailing
/// thread (`storage/tailing.rs`), which sleeps on the bell for it and
/// catches the partition up, which notifies.
pub(crate) struct Across {
    /// The partition's slot in the wake file, if there is one.
    pub(crate) wake: Option<WakeSlot>,
    /// Asks the tailing thread to watch this partition.
    pub(crate) kick: Arc<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for Across {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Across").field("wake", &self.wake).finish()
    }
}

impl WaitCell {
    /// Wakes the owner of this cell: the sleeping thread, or the task whose
    /// waker is in it (or makes the thread's next sleep return at once).
    ///
    /// The waker is woken after the cell's mutex is released; it is called
    /// while the notifier's list is locked (see [`Notifier::notify`]), which
    /// a waker that only schedules its task (every executor's does) never
    /// notices.
    pub(crate) fn wake(&self) {
        let (waker, ringing) = {
            let mut s = self.state.lock();
            s.woken = true;
            self.cv.notify_one();
            (s.waker.take(), s.ringing.clone())
        };
        if let Some(w) = waker {
            w.wake();
        }
        if let Some(bell) = ringing {
            bell.ring();
        }
    }

    /// Notes how the next sleep waits for a follower's writer process
    /// (called by [`Notifier::register`] after arming).
    fn set_across(&self, bell: Bell) {
        self.state.lock().across = Some(bell);
    }

    /// Arms the cell for a task that found nothing to read: puts `waker`
    /// into it (its only waker: the disarm that must come before this
    /// dropped any earlier one), then registers it
    /// with every notifier `notifiers` visits, each registration ending in
    /// the `SeqCst` fence of [`Notifier::register`]. The caller must then
    /// re-check for data and return `Pending` only if there is still none,
    /// and must [`disarm_task`](WaitCell::disarm_task) with the same
    /// notifiers before it arms again or goes away.
    pub(crate) fn arm_task(self: &Arc<Self>, waker: &Waker, notifiers: impl Fn(&mut dyn FnMut(&Notifier))) {
        {
            let mut s = self.state.lock();
            s.woken = false;
            s.waker = Some(waker.clone());
        }
        notifiers(&mut |n| {
            n.register(self);
            n.kick();
        });
    }

    /// Ends what [`arm_task`](WaitCell::arm_task) began: unregisters from
    /// every notifier and drops the waker, so neither a later notify nor the
    /// list of cells keeps anything of the task.
    pub(crate) fn disarm_task(self: &Arc<Self>, notifiers: impl Fn(&mut dyn FnMut(&Notifier))) {
        notifiers(&mut |n| n.unregister(self));
        let mut s = self.state.lock();
        s.woken = false;
        s.waker = None;
        s.across = None;
    }

    /// Sleeps until woken or until `deadline`. Returns `false` on timeout.
    ///
    /// Under the loom model only `None` is allowed: loom has no clock (its
    /// timed wait never times out), so a deadline could only be modelled
    /// wrongly. The timed branch is compiled out there and a deadline panics,
    /// so no model can lean on it by mistake. What a deadline adds, an early
    /// return, cannot lose a wake-up: callers re-check after any return.
    pub(crate) fn sleep(&self, deadline: Option<Instant>) -> bool {
        let mut s = self.state.lock();
        #[cfg(not(all(test, loom)))]
        if let Some(bell) = s.across.take() {
            return self.sleep_across(s, bell, deadline);
        }
        while !s.woken {
            match deadline {
                #[cfg(all(test, loom))]
                Some(_) => panic!("the loom model has no clock: sleep with no deadline"),
                #[cfg(not(all(test, loom)))]
                Some(d) => {
                    if self.cv.wait_until(&mut s, d).timed_out() {
                        let woken = s.woken;
                        s.woken = false;
                        return woken;
                    }
                }
                None => self.cv.wait(&mut s),
            }
        }
        s.woken = false;
        true
    }
}

impl WaitCell {
    /// [`WaitCell::sleep`] for a cell registered with a follower's
    /// notifier: on the wake file's bell (or, without one, on the condition
    /// variable), for at most the poll interval, so that a missing or
    /// silent wake file only costs latency. Returns `true` unless the
    /// deadline passed: the caller looks at the files again either way.
    #[cfg(not(all(test, loom)))]
    fn sleep_across<'a>(
        &'a self,
        mut s: parking_lot::MutexGuard<'a, CellState>,
        bell: Bell,
        deadline: Option<Instant>,
    ) -> bool {
        if s.woken {
            s.woken = false;
            return true;
        }
        let now = Instant::now();
        let cap = |poll| deadline.map_or(poll, |d: Instant| d.saturating_duration_since(now).min(poll));
        match bell {
            Bell::Rung(file, seen) => {
                // A wake from this process rings the bell from now on.
                s.ringing = Some(Arc::clone(&file));
                drop(s);
                file.wait(seen, cap(POLL_WITH_BELL));
                s = self.state.lock();
                s.ringing = None;
            }
            Bell::Poll => {
                let _ = self.cv.wait_for(&mut s, cap(POLL_WITHOUT_BELL));
            }
        }
        s.woken = false;
        deadline.is_none_or(|d| Instant::now() < d)
    }
}

/// Per-partition registry of waiting consumers, threads and tasks alike.
#[derive(Debug, Default)]
pub(crate) struct Notifier {
    waiting: AtomicUsize,
    cells: Mutex<Vec<Arc<WaitCell>>>,
    closed: AtomicBool,
    /// For a partition another process writes: how to wait for it.
    across: Option<Across>,
}

impl Notifier {
    /// The notifier of a partition another process writes (see [`Across`]).
    pub(crate) fn following(across: Across) -> Notifier {
        Notifier { across: Some(across), ..Notifier::default() }
    }

    /// Arms this follower partition's slot in the wake file (nothing for a
    /// partition this process writes), returning how to wait for its
    /// writer. The caller then looks for frames, then waits.
    fn arm(&self) -> Option<Bell> {
        let across = self.across.as_ref()?;
        Some(match &across.wake {
            Some(slot) => Bell::Rung(Arc::clone(&slot.file), slot.arm()),
            None => Bell::Poll,
        })
    }

    /// For the tailing thread: arms the slot, returning the bell's value.
    pub(crate) fn arm_for_tailing(&self) -> Option<u32> {
        match self.arm()? {
            Bell::Rung(_, seen) => Some(seen),
            Bell::Poll => None,
        }
    }

    /// Whether any cell is registered (the tailing thread watches only
    /// the partitions someone waits for).
    pub(crate) fn has_waiters(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) > 0
    }

    /// Asks this process's tailing thread to watch the partition, if it is
    /// another process's (for a task that registered).
    fn kick(&self) {
        if let Some(across) = &self.across {
            (across.kick)();
        }
    }

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
        // A follower's: arm the wake file's slot too, before the caller's
        // re-check (storage/wake_file.rs: no lost wake-ups).
        if let Some(bell) = self.arm() {
            cell.set_across(bell);
        }
    }

    /// Removes one registration of `cell`.
    pub(crate) fn unregister(&self, cell: &Arc<WaitCell>) {
        let mut cells = self.cells.lock();
        if let Some(i) = cells.iter().position(|c| Arc::ptr_eq(c, cell)) {
            cells.swap_remove(i);
            self.waiting.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// How many cells are registered now (for the tests that check an async
    /// receive leaves one registration per notifier at most, and none once
    /// it is dropped).
    #[cfg(test)]
    pub(crate) fn registered(&self) -> usize {
        self.cells.lock().len()
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
