//! Consumer groups: [`Group`], [`GroupMember`], committed offsets and
//! rebalancing.
//!
//! A group is named; its members share a topic's partitions, and its
//! committed offsets persist under `<dir>/groups/<group>/<topic>/offsets`, so
//! a member that dies and comes back resumes where the group left off.
//!
//! # Delivery guarantees
//!
//! | mode | what is committed | guarantee |
//! | --- | --- | --- |
//! | [`AutoCommit::Interval`] (default, 5 s) | at the start of a receive call, at most once per interval: the position after the last record returned *before* that call | at-least-once, provided each record is processed before the next receive call (the usual loop); a crash re-delivers at most the records received since the last commit |
//! | [`AutoCommit::Off`] + [`GroupMember::commit`] after processing | what you commit | at-least-once; a crash re-delivers the records received since your last commit |
//! | [`AutoCommit::Off`] + commit *before* processing | what you commit | at-most-once |
//!
//! Committing is durable when it returns (temporary file, fsync, rename,
//! directory fsync). Dropping a member with auto-commit enabled commits its
//! positions; dropping one with `AutoCommit::Off` commits nothing.
//!
//! # Damaged partitions
//!
//! A partition that cannot be opened when a member is given it (a damaged
//! or unreadable segment) does not stop the member: its receive call
//! reports the error once, and it reads its other partitions. It keeps the
//! partition (so no other member reads it, and its committed offset stays
//! as it was) without reading it, tries to open it again at every
//! rebalance and at most once a second, and reports a failure again only
//! when it differs from the last one. Damage met while reading an open
//! partition is reported each time a receive call reaches that partition
//! (as for a [`Consumer`]); the others are read in turn meanwhile.

pub(crate) mod group;
pub(crate) mod group_admin;
pub(crate) mod member;
pub(crate) mod member_channel;
pub(crate) mod membership;
pub(crate) mod policy;
pub(crate) mod rebalance;
