//! [`Encoder`], [`Decoder`] and [`Codec`]: how a typed topic turns values
//! into bytes and back, and [`Bincode`], the default.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Turns values into bytes: what a [`TypedProducer`](crate::TypedProducer)
/// needs. Implement it (and [`Decoder`]) to plug in another format (JSON,
/// protobuf, a hand-written layout); a type that implements both is a
/// [`Codec`].
///
/// # Examples
///
/// ```
/// use millpond::{Codec, Decoder, Encoder};
///
/// /// A codec for UTF-8 text.
/// #[derive(Clone, Copy, Default)]
/// struct Utf8;
///
/// impl Encoder<String> for Utf8 {
///     fn encode(&self, value: &String, out: &mut Vec<u8>) -> Result<(), String> {
///         out.extend_from_slice(value.as_bytes());
///         Ok(())
///     }
/// }
///
/// impl Decoder<String> for Utf8 {
///     fn decode(&self, bytes: &[u8]) -> Result<String, String> {
///         String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())
///     }
/// }
///
/// fn round_trip<C: Codec<String>>(codec: C) {
///     let mut buf = Vec::new();
///     codec.encode(&"hé".to_string(), &mut buf).unwrap();
///     assert_eq!(codec.decode(&buf).unwrap(), "hé");
///     assert!(codec.decode(&[0xff]).is_err());
/// }
/// round_trip(Utf8);
/// ```
pub trait Encoder<T> {
    /// Appends the encoding of `value` to `out`, or says why it cannot.
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> std::result::Result<(), String>;
}

/// Turns bytes back into values: what a
/// [`TypedConsumer`](crate::TypedConsumer) needs.
///
/// See [`Encoder`] for an example.
pub trait Decoder<T> {
    /// Decodes a value from `bytes`, or says why it cannot.
    fn decode(&self, bytes: &[u8]) -> std::result::Result<T, String>;
}

/// Both directions: every type that is an [`Encoder`] and a [`Decoder`] of
/// `T` is a `Codec<T>`, with nothing more to implement.
///
/// See [`Encoder`] for an example.
pub trait Codec<T>: Encoder<T> + Decoder<T> {}

impl<T, C: Encoder<T> + Decoder<T>> Codec<T> for C {}

/// The default codec: bincode 2 (standard configuration) through serde.
///
/// # Examples
///
/// ```
/// use millpond::{Bincode, Decoder, Encoder};
/// let mut buf = Vec::new();
/// Bincode.encode(&(1u32, "two".to_string()), &mut buf).unwrap();
/// let back: (u32, String) = Bincode.decode(&buf).unwrap();
/// assert_eq!(back, (1, "two".to_string()));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Bincode;

impl<T: Serialize> Encoder<T> for Bincode {
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> std::result::Result<(), String> {
        bincode::serde::encode_into_std_write(value, out, bincode::config::standard())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

impl<T: DeserializeOwned> Decoder<T> for Bincode {
    fn decode(&self, bytes: &[u8]) -> std::result::Result<T, String> {
        let (value, used) =
            bincode::serde::decode_from_slice(bytes, bincode::config::standard()).map_err(|e| e.to_string())?;
        if used != bytes.len() {
            return Err(format!("{} trailing bytes after the value", bytes.len() - used));
        }
        Ok(value)
    }
}
