//! The topic metadata file `topic.meta`: the topic's [`TopicConfig`], name
//! and identity, checksummed and versioned.
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..4 | magic `"MPTM"` |
//! | 4..6 | version `u16` = 3 |
//! | 6..8 | reserved, 0 |
//! | 8..12 | payload length `u32` |
//! | 12..16 | `crc32` of the payload |
//! | 16.. | payload: the config, then the topic's name (a `String`), both bincode 2 (standard configuration) via serde, then the topic id (16 bytes) |
//!
//! The name makes the file know whose it is: a `topic.meta` copied from
//! another topic's directory is [`Error::CorruptMetadata`] naming its owner,
//! never silently taken as this topic's config. The topic id, 16 random
//! bytes chosen at `create_topic`, is repeated in the header of every
//! segment (see `storage/segment_header.rs`), so a segment from another
//! topic is recognised too.
//!
//! Versions 1 (no name) and 2 (no id) were written by millpond 0.1, whose
//! segments are in format version 1: such a file is
//! [`Error::UnsupportedFormat`] naming its version, never misread. Any other
//! version is [`Error::CorruptMetadata`] naming the version.

use std::path::Path;

use crate::error::{Error, Result};
use crate::storage::segment_header::TopicId;
use crate::topic::config::TopicConfig;

const MAGIC: &[u8; 4] = b"MPTM";
/// The version written and read.
const VERSION: u16 = 3;
/// The versions of millpond 0.1 (no name, then no id): recognised, refused.
const OLD_VERSIONS: [u16; 2] = [1, 2];
/// No config and name encode to more than this; a larger length field is corrupt.
const MAX_PAYLOAD: usize = 4096;

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_PAYLOAD>()
}

/// What `topic.meta` holds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TopicMeta {
    pub config: TopicConfig,
    pub id: TopicId,
}

/// Encodes topic `name`'s config and id into the file format above.
pub(crate) fn encode(config: &TopicConfig, name: &str, id: &TopicId) -> Result<Vec<u8>> {
    let cannot =
        |e: bincode::error::EncodeError| Error::InvalidConfig { reason: format!("cannot encode topic config: {e}") };
    let mut payload = bincode::serde::encode_to_vec(config, bincode_config()).map_err(cannot)?;
    payload.extend(bincode::serde::encode_to_vec(name, bincode_config()).map_err(cannot)?);
    payload.extend_from_slice(id);
    let mut out = Vec::with_capacity(16 + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Decodes and checks the bytes of topic `name`'s `topic.meta`; `path` is
/// for errors. A file of another topic is `CorruptMetadata`; one of an
/// older version is `UnsupportedFormat`.
pub(crate) fn decode(bytes: &[u8], name: &str, path: &Path) -> Result<TopicMeta> {
    let bad = |reason: String| Error::CorruptMetadata { path: path.to_path_buf(), reason };
    if bytes.len() < 16 {
        return Err(bad(format!("file is {} bytes, shorter than its 16-byte header", bytes.len())));
    }
    if &bytes[0..4] != MAGIC {
        return Err(bad("not a topic metadata file (bad magic)".into()));
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if OLD_VERSIONS.contains(&version) {
        return Err(Error::UnsupportedFormat { path: path.to_path_buf(), found: version, supported: VERSION });
    }
    if version != VERSION {
        return Err(bad(format!("unknown metadata version {version} (this release reads version {VERSION})")));
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
    let (config, mut used): (TopicConfig, usize) = bincode::serde::decode_from_slice(payload, bincode_config())
        .map_err(|e| bad(format!("cannot decode config: {e}")))?;
    let (owner, n): (String, usize) = bincode::serde::decode_from_slice(&payload[used..], bincode_config())
        .map_err(|e| bad(format!("cannot decode the topic name: {e}")))?;
    used += n;
    if owner != name {
        return Err(bad(format!(
            "it belongs to topic {owner:?}, not {name:?} (copied from another topic's directory?)"
        )));
    }
    let id: TopicId = payload
        .get(used..used + 16)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("the topic id is cut short".into()))?;
    used += 16;
    if used != payload.len() {
        return Err(bad("trailing bytes after the topic id".into()));
    }
    config.validate().map_err(|e| bad(format!("stored config is invalid: {e}")))?;
    Ok(TopicMeta { config, id })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::policy::FsyncPolicy;
    use proptest::prelude::*;
    use std::time::Duration;

    #[test]
    fn topic_meta_round_trips() {
        let cfg = TopicConfig::default().partitions(3).fsync(FsyncPolicy::Interval(Duration::from_millis(5)));
        let bytes = encode(&cfg, "orders", &[9; 16]).unwrap();
        assert_eq!(decode(&bytes, "orders", Path::new("m")).unwrap(), TopicMeta { config: cfg, id: [9; 16] });
    }

    #[test]
    fn topic_meta_of_another_topic_is_corrupt_metadata() {
        let bytes = encode(&TopicConfig::default(), "orders", &[1; 16]).unwrap();
        match decode(&bytes, "payments", Path::new("m")) {
            Err(Error::CorruptMetadata { reason, .. }) => assert!(reason.contains("\"orders\""), "{reason}"),
            other => panic!("expected CorruptMetadata, got {other:?}"),
        }
    }

    #[test]
    fn version_1_and_2_topic_meta_are_an_unsupported_format() {
        let cfg = TopicConfig::default().partitions(5);
        for version in [1u16, 2] {
            let mut payload = bincode::serde::encode_to_vec(&cfg, bincode_config()).unwrap();
            if version == 2 {
                payload.extend(bincode::serde::encode_to_vec("any", bincode_config()).unwrap());
            }
            let mut bytes = b"MPTM".to_vec();
            bytes.extend_from_slice(&version.to_le_bytes());
            bytes.extend_from_slice(&0u16.to_le_bytes());
            bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
            bytes.extend_from_slice(&payload);
            match decode(&bytes, "any", Path::new("m")) {
                Err(Error::UnsupportedFormat { found, supported: 3, .. }) => assert_eq!(found, version),
                other => panic!("expected UnsupportedFormat, got {other:?}"),
            }
        }
    }

    #[test]
    fn corrupt_topic_meta_is_a_typed_error() {
        let mut bytes = encode(&TopicConfig::default(), "t", &[0; 16]).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xFF;
        assert!(matches!(decode(&bytes, "t", Path::new("m")), Err(Error::CorruptMetadata { .. })));
        assert!(matches!(decode(&bytes[..5], "t", Path::new("m")), Err(Error::CorruptMetadata { .. })));
    }

    proptest! {
        #[test]
        fn arbitrary_meta_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes, "t", Path::new("fuzz.meta"));
        }
    }
}
