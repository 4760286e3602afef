//! Consumer-group coordination, above topics: membership, partition
//! assignment and ownership, and committed offsets on disk. Imports only
//! `topic`, `storage` and `crate::error`.

pub(crate) mod commit_queue;
pub(crate) mod commit_thread;
pub(crate) mod coordinator;
pub(crate) mod offsets;
