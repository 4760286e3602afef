//! Log compaction (`CleanupPolicy::Compact`): keep only the latest record of
//! each key in sealed segments.
//!
//! # Crash safety
//!
//! A segment is rewritten into `<base>.log.cleaned`, which is fsynced; then
//! its index is deleted, the cleaned file renamed over `<base>.log`, and the
//! directory fsynced; last, a new index is written. A crash at any moment
//! leaves either the old or the new segment under `<base>.log` (each one a
//! valid log), possibly without an index (rebuilt by a scan) and possibly a
//! stray `.cleaned` file (removed at the next open). Compacted segments keep
//! their records' offsets, so the two versions are interchangeable for
//! readers; a reader already in the old version keeps reading its mapping.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::storage::frame::{self, RawRecord};
use crate::storage::fsutil;
use crate::storage::index::{IndexEntry, SegmentIndex};
use crate::storage::partition_log::state::{PartitionLog, Slot};
use crate::storage::policy::CleanupPolicy;
use crate::storage::segment::{DATA_START, Segment, index_path, log_path};

/// Suffix of a segment being rewritten by compaction.
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";

/// What a compaction run did, from [`Topic::compact`](crate::Topic::compact).
///
/// # Examples
///
/// ```
/// use millpond::{Broker, CleanupPolicy, Record, StartFrom, TopicConfig};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-compact-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let cfg = TopicConfig::default().segment_bytes(4096).max_record_bytes(1024).cleanup(CleanupPolicy::Compact);
/// let balances = broker.create_topic("balances", cfg)?;
/// let p = balances.producer();
/// for i in 0..300 {
///     p.send(Record::new(format!("{i}")).key(format!("account-{}", i % 3)))?;
/// }
/// let report = balances.compact()?;
/// assert!(report.records_removed > 0);
/// // Replaying from the start still ends with each account's latest balance.
/// let mut latest = std::collections::HashMap::new();
/// for m in balances.consumer(StartFrom::Earliest)?.try_iter() {
///     let m = m?;
///     latest.insert(m.key().unwrap().to_vec(), m.value().to_vec());
/// }
/// assert_eq!(latest[&b"account-0"[..]], b"297");
/// # drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactionReport {
    /// Segments rewritten.
    pub segments_rewritten: u64,
    /// Records removed (superseded values and expired tombstones).
    pub records_removed: u64,
    /// Bytes of the rewritten segments before.
    pub bytes_before: u64,
    /// Bytes of the rewritten segments after.
    pub bytes_after: u64,
}

impl CompactionReport {
    pub(crate) fn merge(&mut self, other: CompactionReport) {
        self.segments_rewritten += other.segments_rewritten;
        self.records_removed += other.records_removed;
        self.bytes_before += other.bytes_before;
        self.bytes_after += other.bytes_after;
    }
}

/// Calls `f(offset, timestamp, key, is_tombstone, record_bytes)` for every
/// record of `seg`, checking every frame's CRC first.
fn for_each_record(seg: &Segment, mut f: impl FnMut(u64, i64, Option<&[u8]>, bool, &[u8])) -> Result<()> {
    let bytes = seg.committed_slice(0, seg.committed());
    let mut pos = DATA_START as usize;
    while pos < bytes.len() {
        let header = frame::validate_frame(&bytes[pos..], seg.origin()).map_err(|e| seg.corrupt(pos as u32, e))?;
        if header.control {
            pos += header.frame_len(); // a commit marker: no record
            continue;
        }
        let body = frame::records_of(&header, &bytes[pos..]);
        let mut at = 0;
        for _ in 0..header.record_count {
            let rec = frame::decode_record(body, at, &header).map_err(|e| seg.corrupt(pos as u32, e))?;
            let key = rec.key.map(|(s, l)| &body[s as usize..(s + l) as usize]);
            f(
                header.base_offset + u64::from(rec.offset_delta),
                rec.timestamp,
                key,
                rec.value.is_none(),
                &body[at..rec.end],
            );
            at = rec.end;
        }
        pos += header.frame_len();
    }
    Ok(())
}

impl PartitionLog {
    /// Whether this partition is compacted.
    pub(crate) fn is_compacted(&self) -> bool {
        self.settings.cleanup == CleanupPolicy::Compact
    }

    /// Compacts the sealed segments as of `now_ms` (for tombstone expiry).
    pub(crate) fn compact(&self, now_ms: i64) -> Result<CompactionReport> {
        let mut done = CompactionReport::default();
        if !self.is_compacted() {
            return Ok(done);
        }
        let _one_at_a_time = self.maintenance_lock.lock();
        let gone = self.gone.read_recursive();
        if *gone {
            return Ok(done);
        }
        let slots: Vec<Arc<Slot>> = self.slots.read().clone();
        let Some((_active, sealed)) = slots.split_last() else { return Ok(done) };
        if sealed.is_empty() {
            return Ok(done);
        }
        // 1. The latest offset of every key in the sealed segments.
        let mut latest: HashMap<Vec<u8>, u64> = HashMap::new();
        for slot in sealed {
            let seg = self.load(slot)?;
            for_each_record(&seg, |offset, _, key, _, _| {
                if let Some(k) = key {
                    match latest.get_mut(k) {
                        Some(o) => *o = offset,
                        None => {
                            latest.insert(k.to_vec(), offset);
                        }
                    }
                }
            })?;
        }
        let cutoff =
            now_ms.saturating_sub(i64::try_from(self.settings.tombstone_retention.as_millis()).unwrap_or(i64::MAX));
        // 2. Rewrite each sealed segment that holds something to remove.
        for slot in sealed {
            let seg = self.load(slot)?;
            if seg.damage().is_some() {
                // Never rewrite a damaged segment: the damage (and what lies
                // after it) must stay visible as Error::Corrupt.
                continue;
            }
            let expired_tombstones = seg.max_timestamp() < cutoff;
            let keep = |offset: u64, key: Option<&[u8]>, tombstone: bool| match key {
                None => true,
                Some(k) => latest.get(k) == Some(&offset) && !(tombstone && expired_tombstones),
            };
            let mut removable = 0u64;
            for_each_record(&seg, |offset, _, key, tombstone, _| {
                if !keep(offset, key, tombstone) {
                    removable += 1;
                }
            })?;
            if removable == 0 {
                continue;
            }
            let before = u64::from(seg.committed());
            let after = self.rewrite(slot, &seg, keep)?;
            done.segments_rewritten += 1;
            done.records_removed += removable;
            done.bytes_before += before;
            done.bytes_after += after;
        }
        if done.segments_rewritten > 0 {
            self.space.notify(); // a Bytes backlog may have shrunk
        }
        Ok(done)
    }

    /// Rewrites `seg` keeping the records `keep` accepts, one frame per
    /// original frame, and swaps it in (see the module docs). Returns the
    /// new size.
    fn rewrite(&self, slot: &Slot, seg: &Segment, keep: impl Fn(u64, Option<&[u8]>, bool) -> bool) -> Result<u64> {
        let final_path = log_path(&self.dir, seg.base_offset);
        let mut tmp_name = final_path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        tmp_name.push(CLEANED_SUFFIX);
        let tmp = final_path.with_file_name(tmp_name);
        let file = fsutil::new_file_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(Error::io_at("create compacted segment", &tmp))?;
        let mut out = std::io::BufWriter::new(file);
        let mut index = SegmentIndex { next_offset: seg.next_offset(), max_timestamp: i64::MIN, ..Default::default() };
        let bytes = seg.committed_slice(0, seg.committed());
        // The same segment header: same topic, partition, base, epoch and origin.
        let header_bytes = bytes.get(..DATA_START as usize).unwrap_or_default();
        out.write_all(header_bytes).map_err(Error::io_at("write compacted segment", &tmp))?;
        let mut written: u64 = header_bytes.len() as u64;
        let mut last_entry: Option<u64> = None;
        let mut pos = DATA_START as usize;
        while pos < bytes.len() {
            let header = frame::validate_frame(&bytes[pos..], seg.origin()).map_err(|e| seg.corrupt(pos as u32, e))?;
            if header.control {
                // A commit marker: dropped. Every published transaction in
                // a sealed segment is committed, so its rewritten records
                // are plain ones.
                pos += header.frame_len();
                continue;
            }
            let body = frame::records_of(&header, &bytes[pos..]);
            // The kept records of this frame, with their offsets.
            let mut kept: Vec<RawRecord<'_>> = Vec::new();
            let mut at = 0;
            for _ in 0..header.record_count {
                let rec = frame::decode_record(body, at, &header).map_err(|e| seg.corrupt(pos as u32, e))?;
                let raw = RawRecord::of(&header, body, &rec);
                if keep(raw.offset, raw.key, raw.value.is_none()) {
                    kept.push(raw);
                }
                at = rec.end;
            }
            pos += header.frame_len();
            let Some(base) = kept.first().map(|r| r.offset) else { continue };
            let max_ts = kept.iter().map(|r| r.timestamp).max().unwrap_or(i64::MIN);
            let new_frame = frame::frame_from_records(seg.origin(), &kept);
            if last_entry.is_none_or(|l| written - l >= u64::from(self.settings.index_interval)) {
                index.entries.push(IndexEntry {
                    rel_offset: (base - seg.base_offset) as u32,
                    position: written as u32,
                    max_ts_before: index.max_timestamp,
                });
                last_entry = Some(written);
            }
            index.max_timestamp = index.max_timestamp.max(max_ts);
            out.write_all(&new_frame).map_err(Error::io_at("write compacted segment", &tmp))?;
            written += new_frame.len() as u64;
        }
        index.valid_bytes = written;
        let file = out.into_inner().map_err(|e| Error::io("write compacted segment", &tmp, e.into_error()))?;
        file.sync_all().map_err(Error::io_at("fsync compacted segment", &tmp))?;
        drop(file);
        let idx = index_path(&self.dir, seg.base_offset);
        fsutil::remove_if_present(&idx, "remove index before compaction swap")?;
        fsutil::fsync_dir(&self.dir)?;
        std::fs::rename(&tmp, &final_path).map_err(Error::io_at("swap in compacted segment", &final_path))?;
        fsutil::fsync_dir(&self.dir)?;
        // Readers that hold the old segment keep its mapping; new readers
        // load the compacted one.
        *slot.seg.lock() = None;
        fsutil::write_replace_unsynced(&idx, &index.encode())?;
        Ok(written)
    }
}
