//! Opening the broker: the one place that says how a reading command and
//! a writing command open the directory.

use std::path::Path;

use millpond::Broker;

/// Opens the broker directory for a command that only reads it (topics,
/// describe, consume, groups, verify): read-only, so it works beside the
/// writer process that holds the directory (or with none), takes no lock,
/// changes nothing, and never repairs (a torn tail is simply not read).
pub(crate) fn open_for_reading(dir: &Path) -> millpond::Result<Broker> {
    Broker::open_read_only(dir)
}

/// Opens the broker directory for a command that writes (produce, group
/// reset-offsets): it takes the writer lock (`Error::Locked` if another
/// process holds it), never creates a broker (`Error::BrokerNotFound`),
/// and recovers a crashed active segment as every writer does.
pub(crate) fn open_for_writing(dir: &Path) -> millpond::Result<Broker> {
    Broker::open_existing(dir)
}
