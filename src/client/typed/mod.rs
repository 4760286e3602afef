//! Typed topics: values encoded by a [`Codec`](crate::Codec).

pub(crate) mod codec;
pub(crate) mod source;
pub(crate) mod typed_consumer;
pub(crate) mod typed_message;
pub(crate) mod typed_poll_future;
pub(crate) mod typed_producer;
pub(crate) mod typed_recv_future;
pub(crate) mod typed_send_error;
pub(crate) mod typed_stream;
