//! [`TypedMessage`]: a decoded value with its record's coordinates.

use crate::storage::message::Message;

/// A decoded value with the message it came from (partition, offset, key,
/// headers, timestamp).
///
/// See [`TypedConsumer`](crate::TypedConsumer) for an example.
#[derive(Debug, Clone)]
pub struct TypedMessage<T> {
    /// The decoded value.
    pub value: T,
    /// The raw message.
    pub message: Message,
}
