//! The storage engine, the lowest floor: partition logs made of segments
//! of checksummed frames, the data types it writes and reads, and the
//! support it needs (file-system helpers, the wake-up notifier). It imports
//! nothing from the floors above it (`topic`, `group`, `broker`, `client`,
//! `bridge`), only `crate::error`.

pub(crate) mod background;
pub(crate) mod batch;
pub(crate) mod bytes_debug;
pub(crate) mod cursor;
pub(crate) mod durable_appender;
pub(crate) mod epochs;
pub(crate) mod frame;
pub(crate) mod frame_error;
pub(crate) mod fsutil;
pub(crate) mod headers;
pub(crate) mod health;
pub(crate) mod index;
pub(crate) mod message;
pub(crate) mod message_ref;
pub(crate) mod mmap;
pub(crate) mod notify;
pub(crate) mod padded;
pub(crate) mod partition_log;
pub(crate) mod policy;
pub(crate) mod prefault;
pub(crate) mod record;
pub(crate) mod recovery_event;
#[cfg(all(test, target_os = "linux"))]
pub(crate) mod resident;
pub(crate) mod scan;
pub(crate) mod segment;
pub(crate) mod segment_dump;
pub(crate) mod segment_header;
pub(crate) mod tailing;
pub(crate) mod transaction_log;
pub(crate) mod wake_file;
