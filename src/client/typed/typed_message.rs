//! [`TypedMessage`]: a decoded value with its record's coordinates.

use crate::client::typed::codec::Decoder;
use crate::error::{Error, Result};
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

impl<T> TypedMessage<T> {
    /// `message` decoded by `codec`, or [`Error::Decode`] naming where it
    /// lies in `topic`.
    pub(crate) fn decode<C: Decoder<T>>(codec: &C, topic: &str, message: Message) -> Result<TypedMessage<T>> {
        match codec.decode(message.value()) {
            Ok(value) => Ok(TypedMessage { value, message }),
            Err(reason) => Err(Error::Decode {
                topic: topic.to_string(),
                partition: message.partition(),
                offset: message.offset(),
                reason,
            }),
        }
    }
}
