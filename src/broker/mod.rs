//! The broker, above groups: the directory and its lock, the state every
//! handle shares, topic administration, the maintenance thread, and the
//! [`Topic`](crate::Topic) handle. Imports only `group`, `topic`,
//! `storage` and `crate::error`.

pub(crate) mod admin;
pub(crate) mod config;
pub(crate) mod damaged_topic;
pub(crate) mod keep_alive;
pub(crate) mod maintenance;
pub(crate) mod open;
pub(crate) mod read_only;
pub(crate) mod shared;
pub(crate) mod topic;
pub(crate) mod transaction_state;
pub(crate) mod transactions;
