//! The topic metadata file `topic.meta`: the topic's [`TopicConfig`],
//! checksummed and versioned.
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..4 | magic `"MPTM"` |
//! | 4..6 | version `u16` = 1 |
//! | 6..8 | reserved, 0 |
//! | 8..12 | payload length `u32` |
//! | 12..16 | `crc32` of the payload |
//! | 16.. | payload: the config, bincode 2 (standard configuration) via serde |

use std::path::Path;

use crate::config::TopicConfig;
use crate::error::{Error, Result};

const MAGIC: &[u8; 4] = b"MPTM";
const VERSION: u16 = 1;
/// No config encodes to more than this; a larger length field is corrupt.
const MAX_PAYLOAD: usize = 4096;

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_PAYLOAD>()
}

/// Encodes a topic config into the file format above.
pub(crate) fn encode(config: &TopicConfig) -> Result<Vec<u8>> {
    let payload = bincode::serde::encode_to_vec(config, bincode_config())
        .map_err(|e| Error::InvalidConfig { reason: format!("cannot encode topic config: {e}") })?;
    let mut out = Vec::with_capacity(16 + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Decodes and checks a `topic.meta` file's bytes; `path` is for errors.
pub(crate) fn decode(bytes: &[u8], path: &Path) -> Result<TopicConfig> {
    let bad = |reason: String| Error::CorruptMetadata { path: path.to_path_buf(), reason };
    if bytes.len() < 16 {
        return Err(bad(format!("file is {} bytes, shorter than its 16-byte header", bytes.len())));
    }
    if &bytes[0..4] != MAGIC {
        return Err(bad("not a topic metadata file (bad magic)".into()));
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != VERSION {
        return Err(bad(format!("unknown metadata version {version}")));
    }
    let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    let crc = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    let payload = &bytes[16..];
    if len > MAX_PAYLOAD || payload.len() != len {
        return Err(bad(format!("payload length {len} does not match the file ({} bytes)", payload.len())));
    }
    if crc32fast::hash(payload) != crc {
        return Err(bad("checksum mismatch".into()));
    }
    let (config, used): (TopicConfig, usize) = bincode::serde::decode_from_slice(payload, bincode_config())
        .map_err(|e| bad(format!("cannot decode config: {e}")))?;
    if used != payload.len() {
        return Err(bad("trailing bytes after the config".into()));
    }
    config.validate().map_err(|e| bad(format!("stored config is invalid: {e}")))?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FsyncPolicy;
    use proptest::prelude::*;
    use std::time::Duration;

    #[test]
    fn topic_meta_round_trips() {
        let cfg = TopicConfig::default().partitions(3).fsync(FsyncPolicy::Interval(Duration::from_millis(5)));
        let bytes = encode(&cfg).unwrap();
        assert_eq!(decode(&bytes, Path::new("m")).unwrap(), cfg);
    }

    #[test]
    fn corrupt_topic_meta_is_a_typed_error() {
        let mut bytes = encode(&TopicConfig::default()).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xFF;
        assert!(matches!(decode(&bytes, Path::new("m")), Err(Error::CorruptMetadata { .. })));
        assert!(matches!(decode(&bytes[..5], Path::new("m")), Err(Error::CorruptMetadata { .. })));
    }

    proptest! {
        #[test]
        fn arbitrary_meta_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes, Path::new("fuzz.meta"));
        }
    }
}
