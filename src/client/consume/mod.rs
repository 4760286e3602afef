//! Consuming: [`Consumer`](crate::Consumer), where it starts, how it waits,
//! and the channel bridge.

pub(crate) mod channel;
pub(crate) mod consumer;
pub(crate) mod cursor_set;
pub(crate) mod iter;
pub(crate) mod start_from;
pub(crate) mod waiting;
