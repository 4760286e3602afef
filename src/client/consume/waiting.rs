//! [`WaitStrategy`]: how a blocked consumer waits for new records.

/// How a blocked consumer waits for new records.
///
/// Like the LMAX Disruptor's wait strategies: trade CPU for latency.
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
