//! SIGINT and SIGTERM end `consume --follow` cleanly: the handler only sets
//! a flag, which the follow loop checks between waits of at most
//! [`POLL`](crate::consume::POLL) length.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the signal handler; read by the follow loop.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::Relaxed);
}

/// From now on SIGINT and SIGTERM set [`stopped`] instead of ending the process.
pub(crate) fn stop_on_signals() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: installs a handler that does nothing but an atomic store,
        // which is async-signal-safe; no memory is passed to the kernel.
        unsafe {
            libc::signal(signal, handler);
        }
    }
}

/// Whether SIGINT or SIGTERM arrived since [`stop_on_signals`].
pub(crate) fn stopped() -> bool {
    STOP.load(Ordering::Relaxed)
}
