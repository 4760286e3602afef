//! A loom model of the wait/wake protocol, the place a lost wake-up would
//! hide.
//!
//! loom runs each test body again and again, once for every interleaving of
//! its threads (up to a bound on preemptions) and, within the limits its
//! documentation lists, every value the C11 memory model lets each atomic
//! load return. Those limits spare what this protocol rests on: loom models
//! `SeqCst` fences (it is `SeqCst` loads and stores that it treats as
//! `AcqRel`, which could only make it report a bug that is not there). The
//! notifier is built from loom's primitives here (see `sync` in the parent
//! module). A lost wake-up leaves a consumer asleep with nobody left to wake
//! it; loom sees that every thread is blocked and fails the test as a
//! deadlock.
//!
//! The consumers here do what `Consumer::wait_for_data` and `Consumer::park`
//! do (the back-pressure wait in `wait_for_space` is the same protocol on
//! the `space` notifier), less the spinning and the deadline: check, register
//! with every notifier, check again, sleep only if there is still nothing,
//! unregister, and go round again. The tasks do what `Consumer::poll_found`
//! does for an async receive, with the real [`WaitCell::arm_task`] and
//! [`WaitCell::disarm_task`]: disarm what the last poll armed, check, arm
//! with this poll's waker, check again, return `Pending` only if there is
//! still nothing; disarm when dropped. They run under `loom::future::block_on`,
//! whose waker parks and unparks a loom thread, so a task whose wake-up was
//! lost is a deadlock here as a thread's is. The producers do what an append
//! does: publish with `Release`, then `notify`.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release --lib loom_model`
//! (CI does, in a target directory of its own). `LOOM_MAX_PREEMPTIONS`
//! overrides the preemption bound set here.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use loom::future::block_on;
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::thread;

use crate::storage::notify::{Notifier, WaitCell};

/// The preemption bound when `LOOM_MAX_PREEMPTIONS` is not set. loom's
/// documentation finds a bound of 2 or 3 enough to catch most bugs; at 3 the
/// twelve models take about five seconds in a release build. Each broken
/// variant tried while writing them fails here at once, as a deadlock: for
/// threads, no fence in `notify`, a `Release` one there, no fence in
/// `register`, the re-check before `register`, `close` waking before it
/// marks the notifier closed; for tasks, no fence in `register` too, a wake
/// that drops the waker instead of waking it, and a disarm that does not
/// unregister (which also fails the registration counts).
const PREEMPTIONS: usize = 3;

fn model<F: Fn() + Sync + Send + 'static>(body: F) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound.get_or_insert(PREEMPTIONS);
    builder.check(body);
}

/// One partition, reduced to what the protocol sees: a record, and the
/// committed length that publishes it.
#[derive(Default)]
struct Partition {
    record: AtomicU64,
    committed: AtomicU64,
    notifier: Notifier,
}

impl Partition {
    /// An append: write record `n`, publish it (`Release`), notify.
    fn append(&self, n: u64) {
        self.record.store(n, Ordering::Relaxed);
        self.committed.store(n, Ordering::Release);
        self.notifier.notify();
    }

    /// Whether the consumer's cursor, at `next`, may read a record
    /// (`Acquire`: pairs with the append's `Release`).
    fn has(&self, next: u64) -> bool {
        self.committed.load(Ordering::Acquire) >= next
    }
}

/// A consumer's wait: until `ready`, register `cell` with every notifier,
/// re-check, sleep only if still not ready, unregister.
fn wait_until(cell: &Arc<WaitCell>, notifiers: &[&Notifier], ready: impl Fn() -> bool) {
    while !ready() {
        for n in notifiers {
            n.register(cell);
        }
        if !ready() {
            cell.sleep(None);
        }
        for n in notifiers {
            n.unregister(cell);
        }
    }
}

/// A task's wait, as an async receive's future: polled until `ready`.
struct TaskWait<'a, R> {
    cell: Arc<WaitCell>,
    notifiers: &'a [&'a Notifier],
    ready: R,
    /// Whether the last poll returned `Pending` with the cell armed.
    armed: bool,
}

impl<'a, R: Fn() -> bool + Unpin> TaskWait<'a, R> {
    fn new(cell: &Arc<WaitCell>, notifiers: &'a [&'a Notifier], ready: R) -> Self {
        TaskWait { cell: Arc::clone(cell), notifiers, ready, armed: false }
    }

    fn visit<'n>(notifiers: &'n [&'n Notifier]) -> impl Fn(&mut dyn FnMut(&Notifier)) + 'n {
        move |visit| notifiers.iter().for_each(|n| visit(n))
    }
}

impl<R: Fn() -> bool + Unpin> Future for TaskWait<'_, R> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        for _ in 0..2 {
            if std::mem::take(&mut this.armed) {
                this.cell.disarm_task(Self::visit(this.notifiers));
            }
            if (this.ready)() {
                return Poll::Ready(());
            }
            this.cell.arm_task(cx.waker(), Self::visit(this.notifiers));
            this.armed = true;
            if !(this.ready)() {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<R> Drop for TaskWait<'_, R> {
    fn drop(&mut self) {
        if self.armed {
            let notifiers = self.notifiers;
            self.cell.disarm_task(move |visit| notifiers.iter().for_each(|n| visit(n)));
        }
    }
}

fn no_waiters(n: &Notifier) {
    assert_eq!(n.waiting.load(Ordering::SeqCst), 0);
    assert!(n.cells.lock().is_empty());
}

/// Who waits in a model: a blocked thread (`wait_until`) or a task
/// (`TaskWait` under `block_on`). Each scenario below runs for both, so
/// threads and tasks are held to the same argument by the same body.
#[derive(Debug, Clone, Copy)]
enum Waiter {
    Thread,
    Task,
}

impl Waiter {
    /// Waits with `cell` on `notifiers` until `ready`.
    fn wait(self, cell: &Arc<WaitCell>, notifiers: &[&Notifier], ready: impl Fn() -> bool + Unpin) {
        match self {
            Waiter::Thread => wait_until(cell, notifiers, ready),
            Waiter::Task => block_on(TaskWait::new(cell, notifiers, ready)),
        }
    }
}

/// (a) One producer appends one record while a consumer waits for it: the
/// consumer always wakes, and reads the record that woke it.
fn append_wakes_a_waiter(waiter: Waiter) {
    model(move || {
        let p = Arc::new(Partition::default());
        let producer = {
            let p = Arc::clone(&p);
            thread::spawn(move || p.append(1))
        };
        let cell = Arc::new(WaitCell::default());
        waiter.wait(&cell, &[&p.notifier], || p.has(1));
        assert_eq!(p.record.load(Ordering::Relaxed), 1);
        producer.join().unwrap();
        no_waiters(&p.notifier);
    });
}

/// (a, twice) Two appends, and a consumer that waits for each in turn with
/// the same cell: the wake left over from the first append (a cell's flag
/// outlives its sleep; a waker taken by the first wake) must neither hide
/// the second nor be the only one.
fn waiter_waits_twice_with_one_cell(waiter: Waiter) {
    model(move || {
        let p = Arc::new(Partition::default());
        let producer = {
            let p = Arc::clone(&p);
            thread::spawn(move || {
                p.append(1);
                p.append(2);
            })
        };
        let cell = Arc::new(WaitCell::default());
        for next in 1..=2 {
            waiter.wait(&cell, &[&p.notifier], || p.has(next));
            assert!(p.record.load(Ordering::Relaxed) >= next);
        }
        producer.join().unwrap();
        no_waiters(&p.notifier);
    });
}

/// (b) `close` racing with a consumer that waits: the consumer always
/// wakes and sees the partition closed.
fn close_wakes_a_waiter(waiter: Waiter) {
    model(move || {
        let n = Arc::new(Notifier::default());
        let closer = {
            let n = Arc::clone(&n);
            thread::spawn(move || n.close())
        };
        let cell = Arc::new(WaitCell::default());
        waiter.wait(&cell, &[&n], || n.is_closed());
        closer.join().unwrap();
        no_waiters(&n);
    });
}

/// (c) A consumer of two partitions waits on both notifiers with one cell;
/// two producers append, one to each: whichever append it sees first wakes
/// it, and neither producer's notify is lost while it is registered.
fn waiter_of_two_partitions_wakes_on_either(waiter: Waiter) {
    model(move || {
        let parts = Arc::new([Partition::default(), Partition::default()]);
        let producers: Vec<_> = (0..2)
            .map(|i| {
                let parts = Arc::clone(&parts);
                thread::spawn(move || parts[i].append(1))
            })
            .collect();
        let cell = Arc::new(WaitCell::default());
        let notifiers = [&parts[0].notifier, &parts[1].notifier];
        // Wait for both, one wake at a time, as a consumer reading both
        // partitions does.
        waiter.wait(&cell, &notifiers, || parts.iter().any(|p| p.has(1)));
        waiter.wait(&cell, &notifiers, || parts.iter().all(|p| p.has(1)));
        for p in parts.iter() {
            assert_eq!(p.record.load(Ordering::Relaxed), 1);
        }
        for t in producers {
            t.join().unwrap();
        }
        for p in parts.iter() {
            no_waiters(&p.notifier);
        }
    });
}

#[test]
fn loom_model_append_wakes_a_parking_consumer() {
    append_wakes_a_waiter(Waiter::Thread);
}

#[test]
fn loom_model_append_wakes_a_waiting_task() {
    append_wakes_a_waiter(Waiter::Task);
}

#[test]
fn loom_model_consumer_waits_twice_with_one_cell() {
    waiter_waits_twice_with_one_cell(Waiter::Thread);
}

#[test]
fn loom_model_task_waits_twice_with_one_cell() {
    waiter_waits_twice_with_one_cell(Waiter::Task);
}

#[test]
fn loom_model_close_wakes_a_parking_consumer() {
    close_wakes_a_waiter(Waiter::Thread);
}

#[test]
fn loom_model_close_wakes_a_waiting_task() {
    close_wakes_a_waiter(Waiter::Task);
}

#[test]
fn loom_model_consumer_of_two_partitions_wakes_on_either() {
    waiter_of_two_partitions_wakes_on_either(Waiter::Thread);
}

#[test]
fn loom_model_task_of_two_partitions_wakes_on_either() {
    waiter_of_two_partitions_wakes_on_either(Waiter::Task);
}

/// (c) Two consumers, each with its own cell, park on one partition: one
/// append wakes both.
#[test]
fn loom_model_one_append_wakes_two_consumers() {
    model(|| {
        let p = Arc::new(Partition::default());
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let p = Arc::clone(&p);
                thread::spawn(move || {
                    let cell = Arc::new(WaitCell::default());
                    wait_until(&cell, &[&p.notifier], || p.has(1));
                    assert_eq!(p.record.load(Ordering::Relaxed), 1);
                })
            })
            .collect();
        p.append(1);
        for c in consumers {
            c.join().unwrap();
        }
        no_waiters(&p.notifier);
    });
}

/// (d) A task polled first with another waker (a poll from a different
/// executor context, or a waker the executor replaced), then waiting under
/// its own: the append must wake the latest waker, and re-arming must
/// replace the registration, never add a second one.
#[test]
fn loom_model_task_repolled_with_a_new_waker_is_woken_through_it() {
    model(|| {
        let p = Arc::new(Partition::default());
        let cell = Arc::new(WaitCell::default());
        let notifiers = [&p.notifier];
        let mut wait = TaskWait::new(&cell, &notifiers, || p.has(1));
        // First poll, before the producer exists: nothing there, armed
        // with a waker that wakes nobody.
        assert!(Pin::new(&mut wait).poll(&mut Context::from_waker(Waker::noop())).is_pending());
        assert_eq!(p.notifier.waiting.load(Ordering::SeqCst), 1);
        let producer = {
            let p = Arc::clone(&p);
            thread::spawn(move || p.append(1))
        };
        block_on(std::future::poll_fn(|cx| {
            let polled = Pin::new(&mut wait).poll(cx);
            if polled.is_pending() {
                assert_eq!(p.notifier.cells.lock().len(), 1, "re-arming added a registration");
            }
            polled
        }));
        drop(wait);
        producer.join().unwrap();
        no_waiters(&p.notifier);
    });
}

/// (c) A thread and a task share one partition's list: one append wakes
/// both, each through its own kind of cell.
#[test]
fn loom_model_one_append_wakes_a_thread_and_a_task() {
    model(|| {
        let p = Arc::new(Partition::default());
        let thread_waiter = {
            let p = Arc::clone(&p);
            thread::spawn(move || {
                let cell = Arc::new(WaitCell::default());
                wait_until(&cell, &[&p.notifier], || p.has(1));
            })
        };
        let task_waiter = {
            let p = Arc::clone(&p);
            thread::spawn(move || {
                let cell = Arc::new(WaitCell::default());
                block_on(TaskWait::new(&cell, &[&p.notifier], || p.has(1)));
            })
        };
        p.append(1);
        thread_waiter.join().unwrap();
        task_waiter.join().unwrap();
        no_waiters(&p.notifier);
    });
}

/// Cancellation: a task that armed and is dropped (a timeout, a `select!`
/// it lost) while a producer appends leaves nothing in the list; the
/// append finds no waker to call.
#[test]
fn loom_model_dropped_task_leaves_no_registration() {
    model(|| {
        let p = Arc::new(Partition::default());
        let producer = {
            let p = Arc::clone(&p);
            thread::spawn(move || p.append(1))
        };
        let cell = Arc::new(WaitCell::default());
        let notifiers = [&p.notifier];
        let mut wait = TaskWait::new(&cell, &notifiers, || p.has(1));
        let _ = Pin::new(&mut wait).poll(&mut Context::from_waker(Waker::noop()));
        drop(wait);
        no_waiters(&p.notifier);
        producer.join().unwrap();
    });
}
