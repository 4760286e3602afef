//! Verification: checksumming every frame of every segment of a partition.

use std::sync::Arc;

use super::{PartitionLog, Slot, frame};
use crate::error::{Error, Result};

/// What verifying one partition found.
#[derive(Debug, Default)]
pub(crate) struct PartitionCheck {
    pub segments: u64,
    pub frames: u64,
    pub records: u64,
    pub damage: Vec<Error>,
}

impl PartitionLog {
    /// Reads every published frame of every segment, checking CRCs, record
    /// structure and offset continuity. Damage is collected, not returned
    /// as an error; I/O failures opening segments are errors.
    pub(crate) fn verify(&self) -> Result<PartitionCheck> {
        let mut check = PartitionCheck::default();
        let slots: Vec<Arc<Slot>> = self.slots.read().clone();
        let mut expected_base: Option<u64> = None;
        for slot in &slots {
            let seg = match self.load(slot) {
                Ok(seg) => seg,
                Err(e @ Error::Corrupt { .. }) => {
                    check.damage.push(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            check.segments += 1;
            if let Some(want) = expected_base
                && seg.base_offset < want
            {
                check.damage.push(seg.corrupt(0, frame::FrameError::BadHeader("segment overlaps its predecessor")));
            }
            let end = seg.committed();
            let bytes = seg.committed_slice(0, end);
            let mut pos = 0usize;
            let mut next_offset = seg.base_offset;
            while pos < bytes.len() {
                match frame::validate_frame(&bytes[pos..]) {
                    Ok(h) if h.base_offset >= next_offset => {
                        check.frames += 1;
                        check.records += u64::from(h.record_count);
                        next_offset = h.next_offset();
                        pos += h.frame_len();
                    }
                    Ok(_) => {
                        check
                            .damage
                            .push(seg.corrupt(pos as u32, frame::FrameError::BadHeader("offsets go backwards")));
                        break;
                    }
                    Err(e) => {
                        check.damage.push(seg.corrupt(pos as u32, e));
                        break;
                    }
                }
            }
            if let Some(d) = seg.damage() {
                check.damage.push(d);
            }
            expected_base = Some(next_offset);
        }
        Ok(check)
    }
}
