//! [`Codec`]: how a typed topic turns values into bytes, and [`Bincode`], the default.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Turns values into bytes and back. Implement it to plug in another format
/// (JSON, protobuf, a hand-written layout).
///
/// # Examples
///
/// ```
/// use millpond::Codec;
///
/// /// A codec for UTF-8 text.
/// #[derive(Clone, Copy, Default)]
/// struct Utf8;
///
/// impl Codec<String> for Utf8 {
///     fn encode(&self, value: &String, out: &mut Vec<u8>) -> Result<(), String> {
///         out.extend_from_slice(value.as_bytes());
///         Ok(())
///     }
///     fn decode(&self, bytes: &[u8]) -> Result<String, String> {
///         String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())
///     }
/// }
///
/// let mut buf = Vec::new();
/// Utf8.encode(&"hé".to_string(), &mut buf).unwrap();
/// assert_eq!(Utf8.decode(&buf).unwrap(), "hé");
/// assert!(Utf8.decode(&[0xff]).is_err());
/// ```
pub trait Codec<T> {
    /// Appends the encoding of `value` to `out`, or says why it cannot.
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> std::result::Result<(), String>;
    /// Decodes a value from `bytes`, or says why it cannot.
    fn decode(&self, bytes: &[u8]) -> std::result::Result<T, String>;
}

/// The default codec: bincode 2 (standard configuration) through serde.
///
/// # Examples
///
/// ```
/// use millpond::{Bincode, Codec};
/// let mut buf = Vec::new();
/// Bincode.encode(&(1u32, "two".to_string()), &mut buf).unwrap();
/// let back: (u32, String) = Bincode.decode(&buf).unwrap();
/// assert_eq!(back, (1, "two".to_string()));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Bincode;

impl<T: Serialize + DeserializeOwned> Codec<T> for Bincode {
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> std::result::Result<(), String> {
        bincode::serde::encode_into_std_write(value, out, bincode::config::standard())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn decode(&self, bytes: &[u8]) -> std::result::Result<T, String> {
        let (value, used) =
            bincode::serde::decode_from_slice(bytes, bincode::config::standard()).map_err(|e| e.to_string())?;
        if used != bytes.len() {
            return Err(format!("{} trailing bytes after the value", bytes.len() - used));
        }
        Ok(value)
    }
}
