//! Consuming: [`Consumer`](crate::Consumer), where it starts, how it waits,
//! its async receive (futures and a stream), and the channel bridge.

pub(crate) mod channel;
pub(crate) mod consumer;
pub(crate) mod cursor_set;
pub(crate) mod iter;
pub(crate) mod poll_future;
pub(crate) mod recv_future;
pub(crate) mod start_from;
pub(crate) mod stream;
pub(crate) mod task_wait;
pub(crate) mod waiting;
pub(crate) mod wakeup;
