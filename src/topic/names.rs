//! Validation of topic and group names: they become directory names, so they
//! must never escape the broker directory.

use crate::error::{Error, Result};

/// Longest accepted name (Kafka's limit).
pub(crate) const MAX_NAME_LEN: usize = 249;

/// Checks a topic or group name: 1 to 249 characters from `[A-Za-z0-9._-]`,
/// and neither `.` nor `..`.
pub(crate) fn validate(kind: &'static str, name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("must not be empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("must be at most 249 characters")
    } else if name == "." || name == ".." {
        Some("must not be '.' or '..'")
    } else if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        Some("may contain only ASCII letters, digits, '.', '_' and '-'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidName { kind, name: name.to_string(), reason }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kafka_style_names() {
        for ok in ["orders", "a", "A.b_c-9", "..x", &"x".repeat(249)] {
            assert!(validate("topic", ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_names_that_could_escape_the_directory() {
        for bad in ["", ".", "..", "a/b", "../x", "a\\b", "a\0b", "naïve", "with space", &"x".repeat(250), "/abs"] {
            assert!(matches!(validate("group", bad), Err(Error::InvalidName { kind: "group", .. })), "{bad:?}");
        }
    }
}
