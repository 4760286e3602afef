//! Waiting with a deadline, so that a hang fails the test instead of
//! blocking it forever.

use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long any single wait for something that should happen promptly may
/// take before the test calls it a hang. Never a performance bound: only a
/// guard against blocking forever.
pub const HANG: Duration = Duration::from_secs(10);

/// Polls `cond` until it holds (true) or `timeout` has passed (false).
/// `cond` is called at least once, and once more at the deadline; the
/// pause between calls grows from 1 ms to 20 ms.
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if cond() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Polls `cond` until it holds and returns how long that took; panics
/// ("hang: `what` did not happen within `timeout`") once `timeout` passes.
pub fn wait_until(timeout: Duration, what: &str, cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    assert!(poll_until(timeout, cond), "hang: {what} did not happen within {timeout:?}");
    start.elapsed()
}

/// Runs `f` on a new thread; the answer arrives on the returned receiver.
pub fn spawn_answer<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f()); // the test may have given up waiting
    });
    rx
}

/// Waits at most [`HANG`] for an answer; panics with `what` on a hang.
pub fn answer_within<T>(rx: &mpsc::Receiver<T>, what: &str) -> T {
    match rx.recv_timeout(HANG) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("hang: {what} did not happen within {HANG:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the thread waiting for {what} panicked"),
    }
}
