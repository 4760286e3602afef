//! Verification: checksumming every frame of every segment of a partition.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::storage::partition_log::state::{PartitionLog, Slot};
use crate::storage::{frame, scan, segment};

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
            // The same frame-by-frame validation recovery uses; any stop
            // inside published bytes is damage.
            let scan = scan::scan(
                seg.committed_slice(0, seg.committed()),
                segment::DATA_START as usize,
                seg.origin(),
                seg.limit(),
                self.settings.index_interval,
            );
            check.frames += scan.frames;
            check.records += scan.records;
            if let Some((pos, e)) = scan.stop {
                check.damage.push(seg.corrupt(pos as u32, e));
            }
            let next_offset = scan.next_offset;
            if let Some(d) = seg.damage() {
                check.damage.push(d);
            }
            expected_base = Some(next_offset);
        }
        // A follower's tail may end in bytes it could not check.
        if let Some(d) = self.tail_damage()? {
            check.damage.push(d);
        }
        Ok(check)
    }
}
