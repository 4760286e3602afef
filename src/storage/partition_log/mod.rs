//! The storage engine: one [`PartitionLog`] per partition, made of segments.
//!
//! # Write path, step by step
//!
//! 1. The producer encodes nothing up front: it computes the frame's size
//!    and takes the partition's writer lock (the only lock on the path).
//!    A `send` that finds the lock held does not wait for it: it queues its
//!    record for the holder to write with its own, in one frame (a write
//!    group; see `write_group.rs`).
//! 2. If the frame does not fit in the active segment, the writer *rolls*:
//!    it creates and preallocates the next segment first (so a full disk
//!    leaves the old one active and untouched), persists the old one's index,
//!    trims it to its length, publishes the new segment in the segment list,
//!    and only then marks the old one sealed.
//! 3. The frame is encoded straight into the mapping above the committed
//!    length, its CRC computed, and the new length published (`Release`).
//! 4. Every `index_interval_bytes` a sparse index entry is added.
//! 5. When the writer comes within half a window of the pages already
//!    prepared, it asks the broker's pre-fault thread to prepare the next
//!    window (a non-blocking channel send; see `storage/prefault.rs`).
//! 6. The high watermark is published, the fsync policy applied, the lock
//!    released, and sleeping consumers woken. Producers whose records were
//!    written with this one are handed their offsets, and whoever releases
//!    the lock checks for producers that queued meanwhile.
//!
//! Readers ([`Cursor`]) never take the writer lock: they load the committed
//! length (`Acquire`) and decode frames below it, moving to the next segment
//! once a segment is sealed and read to its end.
//!
//! # Where the code lives
//!
//! - `settings.rs`: [`LogSettings`], what a partition needs from its
//!   topic's config.
//! - `state.rs`: the [`PartitionLog`] struct, the writer's state, and the
//!   cheap accessors.
//! - `open.rs`: opening a partition and recovering its active segment.
//! - `append.rs`: the write path above (steps 1 to 6).
//! - `write_group.rs`: combining contending `send`s into one append (the
//!   leader and follower protocol, and why no follower waits forever);
//!   `group_queue.rs`: its queue, queued records and completion slots.
//! - `sync.rs`: msync and fsync, by policy or on `flush`.
//! - `close.rs`: closing or abandoning a partition.
//! - `follower.rs`: reading a partition another process writes
//!   (`Broker::open_read_only`), without writing anything; `tail.rs`:
//!   its last segment, read and checked past its known end.
//! - `listing.rs`: which files of a partition directory are segments.
//! - `read.rs`: finding and loading the segment that holds an offset.
//! - `transaction.rs`: a partition's share of a transaction, written
//!   unpublished, then published with its commit marker or zeroed.
//! - `compaction.rs`, `retention.rs`, `verify.rs`: maintenance.
//!
//! Cursors, and the methods that make them (`cursor_at`,
//! `offset_for_timestamp`), are in `storage/cursor.rs`, which builds on this
//! folder: nothing here imports it.
//!
//! [`PartitionLog`]: crate::storage::partition_log::state::PartitionLog
//! [`LogSettings`]: crate::storage::partition_log::settings::LogSettings
//! [`Cursor`]: crate::storage::cursor::Cursor

mod append;
mod close;
pub(crate) mod compaction;
mod follower;
pub(crate) mod group_queue;
pub(crate) mod listing;
mod open;
mod read;
mod retention;
pub(crate) mod settings;
pub(crate) mod state;
mod sync;
pub(crate) mod tail;
pub(crate) mod transaction;
mod verify;
mod write_group;
