//! Topics, above storage: a topic's config, its name rules, its metadata
//! file, and the state its partitions share. Imports only `storage` and
//! `crate::error`.

pub(crate) mod config;
pub(crate) mod group_progress;
pub(crate) mod meta;
pub(crate) mod names;
pub(crate) mod state;
pub(crate) mod stats;
pub(crate) mod verify;
