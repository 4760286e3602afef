//! Bytes in JSON output: a string when they are UTF-8, otherwise
//! `{"base64": "..."}` (standard alphabet, padded), so every byte survives
//! and text stays readable.

use serde_json::{Value, json};

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `bytes` in standard, padded base64 (RFC 4648).
pub(crate) fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `bytes` as a JSON string if they are UTF-8, else as `{"base64": ...}`.
pub(crate) fn bytes_value(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => Value::String(text.to_string()),
        Err(_) => json!({ "base64": base64(bytes) }),
    }
}

/// [`bytes_value`] of `bytes`, or `null` for none.
pub(crate) fn optional_bytes_value(bytes: Option<&[u8]>) -> Value {
    bytes.map_or(Value::Null, bytes_value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(base64(&[0xFF, 0xFE, 0x00]), "//4A");
    }

    #[test]
    fn text_stays_a_string_and_other_bytes_become_base64() {
        assert_eq!(bytes_value(b"caf\xc3\xa9"), json!("café"));
        assert_eq!(bytes_value(&[0xFF, 0x00]), json!({ "base64": "/wA=" }));
        assert_eq!(optional_bytes_value(None), Value::Null);
    }
}
