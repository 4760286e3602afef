//! Opening the broker: the one place that says how a reading command and
//! a writing command open the directory.

use std::path::Path;

use millpond::Broker;

/// Opens the broker directory for a command that only reads it (topics,
/// describe, consume, groups, verify).
///
/// Read-only commands are meant to work on a live directory, one whose
/// writer process holds the lock: that needs the library's read-only open.
// TODO(read-only): Broker::open_read_only(dir), once the library has it;
// until then the directory must not be held by another process, and this
// open takes the writer lock (and may recover a crashed active segment).
pub(crate) fn open_for_reading(dir: &Path) -> millpond::Result<Broker> {
    Broker::open_existing(dir)
}

/// Opens the broker directory for a command that writes (produce, group
/// reset-offsets): it takes the writer lock (`Error::Locked` if another
/// process holds it) and never creates a broker (`Error::BrokerNotFound`).
pub(crate) fn open_for_writing(dir: &Path) -> millpond::Result<Broker> {
    Broker::open_existing(dir)
}
