//! Producing: [`Producer`](crate::Producer), partitioning, back-pressure,
//! the errors of sends that give up, and the async send.

pub(crate) mod backpressure;
pub(crate) mod partitioner;
pub(crate) mod producer;
pub(crate) mod send_error;
pub(crate) mod send_future;
