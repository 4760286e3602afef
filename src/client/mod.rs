//! The client API, above the broker: producing (partitioning,
//! back-pressure), consuming (cursor sets, waiting, receive calls, the
//! channel bridge), consumer groups, transactions (`exactly_once/`), and
//! typed topics. Imports only the floors below it and `crate::error`.

pub(crate) mod consume;
pub(crate) mod consumer_group;
pub(crate) mod exactly_once;
pub(crate) mod produce;
pub(crate) mod typed;
