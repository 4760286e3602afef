//! Producing: [`Producer`](crate::Producer), partitioning, back-pressure,
//! and the errors of sends that give up.

pub(crate) mod backpressure;
pub(crate) mod partitioner;
pub(crate) mod producer;
pub(crate) mod send_error;
