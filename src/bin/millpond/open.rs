//! Opening the broker: the one place that says how a reading command and
//! a writing command open the directory.

use std::path::Path;

use millpond::{Broker, BrokerConfig, RecoveryMode};

/// Opens the broker directory for a command that only reads it (topics,
/// describe, consume, groups, verify).
///
/// Read-only commands are meant to work on a live directory, one whose
/// writer process holds the lock: that needs the library's read-only open.
// TODO(read-only): Broker::open_read_only(dir), once the library has it.
// Until then this is Broker::open_existing, which takes the writer lock
// (so the directory must not be held by another process), except that a
// damaged active segment is refused (Error::Corrupt) instead of truncated:
// a command that only reads must not drop records.
pub(crate) fn open_for_reading(dir: &Path) -> millpond::Result<Broker> {
    Broker::open_with(dir, BrokerConfig::default().create(false).recovery(RecoveryMode::FailOnCorruptTail))
}

/// Opens the broker directory for a command that writes (produce, group
/// reset-offsets): it takes the writer lock (`Error::Locked` if another
/// process holds it), never creates a broker (`Error::BrokerNotFound`),
/// and recovers a crashed active segment as every writer does.
pub(crate) fn open_for_writing(dir: &Path) -> millpond::Result<Broker> {
    Broker::open_existing(dir)
}
