//! [`BytesDebug`]: how records and messages show their bytes in `Debug`
//! output.

use std::fmt;

/// Debug-prints bytes as a string when they are UTF-8, else as a length.
pub(crate) struct BytesDebug<'a>(pub(crate) &'a [u8]);

impl fmt::Debug for BytesDebug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(self.0) {
            Ok(s) if s.len() <= 64 => write!(f, "{s:?}"),
            _ => write!(f, "<{} bytes>", self.0.len()),
        }
    }
}
