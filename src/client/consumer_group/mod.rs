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
//! | [`AutoCommit::Interval`] (default, 5 s) | requested at the start of a receive call, at most once per interval: the position after the last record returned *before* that call; written off the receiving thread | at-least-once, provided each record is processed before the next receive call (the usual loop); a crash re-delivers at most the records received since the last commit that reached the disk |
//! | [`AutoCommit::Off`] + [`GroupMember::commit`] after processing | what you commit, durable when it returns | at-least-once; a crash re-delivers the records received since your last commit |
//! | [`AutoCommit::Off`] + [`GroupMember::commit_async`] (or a [`Committer`]) after processing | what you commit, durable when its [`CommitHandle`] resolves | at-least-once; a crash re-delivers the records received since your last commit that reached the disk |
//! | [`AutoCommit::Off`] + commit *before* processing | what you commit | at-most-once |
//!
//! A blocking commit ([`GroupMember::commit`], [`GroupMember::commit_offsets`],
//! [`Committer::commit_offsets`]) is durable when it returns (temporary
//! file, fsync, rename, directory fsync). An asynchronous one
//! ([`GroupMember::commit_async`], [`GroupMember::commit_offsets_async`],
//! [`Committer::commit_offsets_async`], and the interval auto-commit) takes
//! its offsets at the call and is written by the broker's `millpond-commit`
//! thread, so receive calls never wait for the fsync; its handle resolves
//! once it is durable. All of a group's commits go through one queue in the
//! order they were made: requests queued together are written in one file
//! write, the latest offset per partition winning, so a later commit is
//! never overwritten by an earlier one, and a blocking commit is written
//! with (and after) the asynchronous ones requested before it. A partition
//! must be the member's both when the commit is made and when it is written
//! ([`Error::NotAssigned`](crate::Error::NotAssigned) otherwise, and nothing
//! of that request is committed). An auto-commit that fails is returned by
//! the next receive call.
//!
//! Giving up a revoked partition commits its position first (unless
//! [`Group::commit_on_revoke(false)`](crate::Group::commit_on_revoke)),
//! durably, before the partition is released: the next owner starts from
//! it. Dropping a member with auto-commit enabled commits its positions,
//! durably before the drop returns; dropping one with `AutoCommit::Off`
//! commits nothing more. Either way, the asynchronous commits still queued
//! when a member leaves are written before it has left. [`Broker::close`](crate::Broker::close) writes the
//! commits requested before it, before it returns; later ones end with
//! [`Error::Closed`](crate::Error::Closed).

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

pub(crate) mod commit_handle;
pub(crate) mod committer;
pub(crate) mod group;
pub(crate) mod group_admin;
pub(crate) mod member;
pub(crate) mod member_channel;
pub(crate) mod membership;
pub(crate) mod policy;
pub(crate) mod rebalance;
