//! [`Headers`]: the iterator over a received record's headers, for both
//! [`Message`](crate::Message) and [`MessageRef`](crate::MessageRef).

/// Iterator over a [`Message`](crate::Message)'s headers as `(name, value)` pairs.
///
/// See [`Message::headers`](crate::Message::headers) for an example.
#[derive(Debug, Clone)]
pub struct Headers<'m> {
    pub(crate) rest: &'m [u8],
    pub(crate) remaining: u16,
}

impl<'m> Iterator for Headers<'m> {
    type Item = (&'m str, &'m [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        // The header block was validated when the record was decoded
        // (`frame::decode_record`), so these reads stay in bounds; on any
        // surprise the iterator simply ends instead of panicking.
        let (name, value, rest) = crate::storage::frame::split_header(self.rest)?;
        self.rest = rest;
        Some((name, value))
    }
}
