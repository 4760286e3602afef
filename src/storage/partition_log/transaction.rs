//! One partition's part in a transaction: its records written as
//! transactional frames above the published end (so no reader in this
//! process sees them), then, after the transaction's decision, its commit
//! marker and the publication of all of it at once; or, if the transaction
//! does not commit, the frames zeroed again.
//!
//! The whole share goes in one segment, rolled to first if the active one
//! has no room for it (made larger than `segment_bytes` if the share needs
//! it), so a reader moving on at a roll can never step over unpublished
//! frames, and a crash leaves them only at the end of the active segment,
//! where recovery finds them (see `Scanner::open_txn`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::storage::frame;
use crate::storage::partition_log::state::{PartitionLog, Writer};
use crate::storage::policy::FsyncPolicy;
use crate::storage::record::Record;
use crate::storage::segment::{self, Segment};

/// Records of a share go in frames of about this many bytes, so a frame
/// stays small enough for readers in other processes to read at once.
const FRAME_BYTES: usize = 256 << 10;

/// A share written and not yet published: where it lies in the active
/// segment and what it holds.
#[derive(Debug)]
pub(crate) struct TxnShare {
    /// The segment it was written to (the active one, which cannot change
    /// while the writer lock is held).
    seg: Arc<Segment>,
    /// Its first byte: the published end when it was written.
    start: u32,
    /// One past its last frame's last byte; the marker goes here.
    end: u32,
    /// Its first record's offset.
    pub(crate) first: u64,
    /// One past its last record: the marker's offset.
    pub(crate) marker: u64,
    max_ts: i64,
    /// `(position, base offset)` of each frame, for the index.
    frames: Vec<(u32, u64)>,
}

impl TxnShare {
    /// A share with nothing in it yet, at the published end of the active
    /// segment (writer lock held: `w`).
    fn empty(w: &Writer) -> TxnShare {
        let seg = Arc::clone(&w.active);
        let start = seg.committed();
        TxnShare {
            seg,
            start,
            end: start,
            first: w.next_offset,
            marker: w.next_offset,
            max_ts: i64::MIN,
            frames: vec![],
        }
    }
}

/// Splits records of encoded sizes `sizes` into frames of at most `limit`
/// bytes (a frame holds one record at least): `(first, end, planned bytes)`.
fn chunks(sizes: &[usize], limit: usize) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < sizes.len() {
        let mut len = frame::MAX_TXN_HEADER_LEN;
        let mut j = i;
        while j < sizes.len() && (j == i || len + sizes[j] <= limit) {
            len += sizes[j];
            j += 1;
        }
        out.push((i, j, len));
        i = j;
    }
    out
}

/// Bytes a share of records of `sizes`, in frames of at most `limit`
/// bytes, takes at most, its marker included.
fn share_bytes(sizes: &[usize], limit: usize) -> usize {
    chunks(sizes, limit).iter().map(|c| c.2).sum::<usize>() + frame::MARKER_LEN
}

impl PartitionLog {
    /// The largest frame of a share: [`FRAME_BYTES`], and never more than a
    /// segment of the topic holds, so that readers in other processes,
    /// which believe no frame longer than that, read every one.
    fn txn_frame_limit(&self) -> usize {
        let segment = usize::try_from(self.settings.segment_bytes).unwrap_or(usize::MAX);
        FRAME_BYTES.min(segment.saturating_sub(segment::DATA_START as usize + frame::MARKER_LEN))
    }

    /// Bytes the share of records of `sizes` takes at most here, its marker
    /// included (what [`PartitionLog::txn_prepare`] makes room for).
    pub(crate) fn txn_share_bytes(&self, sizes: &[usize]) -> usize {
        share_bytes(sizes, self.txn_frame_limit())
    }

    /// Under the writer lock: checks that the partition takes writes and
    /// makes room for a share of `bytes` (see [`share_bytes`]) in the
    /// active segment, rolling to a new one (as large as the share needs)
    /// if it has none. A roll publishes only an empty segment; on error
    /// nothing was written.
    pub(crate) fn txn_prepare(&self, w: &mut Writer, bytes: usize, now: i64) -> Result<()> {
        self.ready_to_write(w)?;
        if bytes <= w.active.free() {
            return Ok(());
        }
        let capacity = self.settings.segment_bytes.max(u64::from(segment::DATA_START) + bytes as u64);
        if capacity > segment::MAX_SEGMENT_BYTES {
            return Err(Error::TransactionTooLarge {
                topic: self.topic_name().to_string(),
                partition: self.partition(),
                bytes: bytes as u64,
                limit: segment::MAX_SEGMENT_BYTES - u64::from(segment::DATA_START),
            });
        }
        // An empty active segment too small for the share holds the base
        // the next segment would need: it is rolled past with a lone commit
        // marker (no transaction's; readers step over it, as over any
        // marker), which takes one offset.
        if w.active.committed() == segment::DATA_START
            && w.active.base_offset == w.next_offset
            && frame::MARKER_LEN <= w.active.free()
        {
            let filler = TxnShare::empty(w);
            self.txn_publish(w, filler, 0, now, false)?;
        }
        let epoch = w.epoch.unwrap_or(0);
        let seg = Segment::create(&self.dir, w.next_offset, capacity, self.id.clone(), epoch, now)?;
        self.roll_to(w, seg);
        Ok(())
    }

    /// Under the writer lock, after [`PartitionLog::txn_prepare`] made room:
    /// writes `records` (of encoded sizes `sizes`) as frames of transaction
    /// `txn`, unpublished. Cannot fail.
    pub(crate) fn txn_write(
        &self,
        w: &mut Writer,
        records: &[&Record<'_>],
        sizes: &[usize],
        txn: u64,
        now: i64,
    ) -> TxnShare {
        let mut share = TxnShare::empty(w);
        let origin = share.seg.origin();
        for (i, j, len) in chunks(sizes, self.txn_frame_limit()) {
            let base = share.marker;
            // SAFETY: the writer lock is held (`w`), and `txn_prepare` made
            // room for the whole share above the published end.
            let header = unsafe {
                share.seg.write_unpublished(share.end, len, |buf| {
                    frame::encode_txn_frame(buf, origin, base, records[i..j].iter().copied(), now, Some(txn))
                })
            };
            share.frames.push((share.end, base));
            share.end += header.len;
            share.marker = header.next_offset();
            share.max_ts = share.max_ts.max(header.max_timestamp);
        }
        share
    }

    /// Whether a transaction writing here must be on disk before its
    /// decision is: the partition's policy syncs every write.
    pub(crate) fn txn_needs_sync(&self) -> bool {
        self.settings.fsync == FsyncPolicy::Always
    }

    /// msyncs a written share's frames (before the decision is written).
    pub(crate) fn txn_sync(&self, share: &TxnShare) -> Result<()> {
        share.seg.sync_bytes(share.start, share.end)
    }

    /// Removes a share whose transaction does not commit: its bytes are
    /// zeroed, and nothing of it was ever published.
    pub(crate) fn txn_discard(&self, share: TxnShare) {
        share.seg.zero_unpublished(share.start, share.end);
    }

    /// Under the writer lock, after the decision: writes the share's commit
    /// marker and publishes the share, then applies the fsync policy.
    /// With `sync`, the partition is synced whatever its policy (a durable
    /// transaction's markers are on disk before the commit is settled).
    pub(crate) fn txn_publish(&self, w: &mut Writer, share: TxnShare, txn: u64, now: i64, sync: bool) -> Result<()> {
        let origin = share.seg.origin();
        let at = share.end;
        // SAFETY: the writer lock is held; `txn_prepare` counted the marker's
        // `MARKER_LEN` bytes after the frames.
        let marker = unsafe {
            share.seg.write_unpublished(at, frame::MARKER_LEN, |buf| {
                frame::encode_marker(buf, origin, share.marker, txn, now)
            })
        };
        let end = at + marker.len;
        let next = marker.next_offset();
        let max_ts = share.max_ts.max(marker.max_timestamp);
        // The high watermark first, as in `write_frame`.
        self.high_watermark.store(next, Ordering::Release);
        share.seg.publish(end, next, max_ts);
        for &(pos, base) in &share.frames {
            self.index_frame(w, pos, base);
        }
        w.max_ts = w.max_ts.max(max_ts);
        w.next_offset = next;
        if let Some(p) = &self.prefault {
            let Writer { active, prepared, .. } = w;
            p.after_write(active, end, prepared);
        }
        let policy = self.published(w, share.first);
        if sync && policy.is_ok() && !self.txn_needs_sync() { self.sync_locked(w) } else { policy }
    }

    /// At open, for a transaction whose frames recovery found at the end of
    /// the active segment and whose commit the transaction log holds: the
    /// commit marker the crash kept from being written.
    pub(crate) fn append_recovered_marker(&self, txn: u64) -> Result<()> {
        let now = crate::storage::record::now_millis();
        let mut w = self.lock_writer();
        self.txn_prepare(&mut w, frame::MARKER_LEN, now)?;
        let share = TxnShare::empty(&w);
        let result = self.txn_publish(&mut w, share, txn, now, false);
        drop(w);
        self.notify_consumers();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::partition_log::settings::LogSettings;
    use crate::storage::policy::{CleanupPolicy, RecoveryMode};
    use std::path::{Path, PathBuf};

    #[test]
    fn a_share_is_split_into_frames_of_at_most_256_kib_or_a_segment_and_one_large_record_is_a_frame_alone() {
        let sizes = vec![100 << 10; 5];
        let c = chunks(&sizes, FRAME_BYTES);
        assert_eq!(c.iter().map(|c| (c.0, c.1)).collect::<Vec<_>>(), vec![(0, 2), (2, 4), (4, 5)]);
        let c = chunks(&[1 << 20, 10], FRAME_BYTES);
        assert_eq!(c.iter().map(|c| (c.0, c.1)).collect::<Vec<_>>(), vec![(0, 1), (1, 2)]);
        assert_eq!(share_bytes(&[10], FRAME_BYTES), frame::MAX_TXN_HEADER_LEN + 10 + frame::MARKER_LEN);
        // Small segments: small frames.
        assert_eq!(chunks(&[1000; 10], 4096).len(), 3);
    }

    fn root(tag: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("millpond-unit-txn-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        root
    }

    fn open(
        dir: &Path,
        committed: &dyn Fn(u64, u64) -> bool,
    ) -> (PartitionLog, Option<crate::storage::recovery_event::RecoveryEvent>) {
        let settings = LogSettings {
            segment_bytes: 64 << 10,
            index_interval: 4096,
            fsync: FsyncPolicy::Never,
            retention_bytes: None,
            retention: None,
            cleanup: CleanupPolicy::Delete,
            tombstone_retention: std::time::Duration::from_secs(1),
        };
        PartitionLog::open(
            &dir.join("0"),
            Arc::from("t"),
            [7; 16],
            0,
            settings,
            RecoveryMode::default(),
            None,
            Arc::default(),
            committed,
        )
        .unwrap()
    }

    fn values(log: PartitionLog) -> Vec<Vec<u8>> {
        let log = Arc::new(log);
        let mut cursor = log.cursor_at(log.log_start()).unwrap();
        let mut out = Vec::new();
        while let Some(found) = cursor.next_found().unwrap() {
            out.push(cursor.message(&found).value().to_vec());
        }
        out
    }

    /// Plain records `a`, `b`, then a transaction's three records written
    /// but never published, as a crash between its writing and its
    /// decision (or its marker) leaves them; returns the share's end.
    fn crash_mid_transaction(dir: &Path, txn: u64) -> u64 {
        let (log, _) = open(dir, &|_, _| false);
        let plain = [Record::new("a"), Record::new("b")];
        let refs: Vec<&Record<'_>> = plain.iter().collect();
        let sizes: Vec<usize> = refs.iter().map(|r| frame::record_len(r)).collect();
        log.append(&refs, &sizes).unwrap();
        let records = [Record::new("t1"), Record::new("t2"), Record::new("t3")];
        let refs: Vec<&Record<'_>> = records.iter().collect();
        let sizes: Vec<usize> = refs.iter().map(|r| frame::record_len(r)).collect();
        let mut w = log.lock_writer();
        log.txn_prepare(&mut w, log.txn_share_bytes(&sizes), 5).unwrap();
        let share = log.txn_write(&mut w, &refs, &sizes, txn, 5);
        assert_eq!((share.first, share.marker), (2, 5));
        assert_eq!(log.high_watermark(), 2, "nothing of the share is published");
        drop(w);
        // No close: the mapping's bytes are in the file, as after kill -9.
        drop(log);
        share.marker
    }

    #[test]
    fn a_transaction_left_without_its_decision_is_aborted_at_open_and_reported() {
        let dir = root("abort");
        crash_mid_transaction(&dir, 42);
        let (log, event) = open(&dir, &|_, _| false);
        let event = event.expect("the aborted records are reported");
        assert!(event.reason.contains("transaction 000000000000002a"), "{}", event.reason);
        assert!(event.reason.contains("3 records were aborted"), "{}", event.reason);
        assert_eq!(log.high_watermark(), 2);
        // Appends go on where the plain records end.
        let r = Record::new("c");
        log.append(&[&r], &[frame::record_len(&r)]).unwrap();
        assert_eq!(values(log), vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_transaction_whose_commit_was_decided_gets_its_marker_at_open() {
        let dir = root("rollforward");
        let end = crash_mid_transaction(&dir, 43);
        let asked = std::sync::Mutex::new(Vec::new());
        let (log, event) = open(&dir, &|txn, at| {
            asked.lock().unwrap().push((txn, at));
            txn == 43 && at == end
        });
        assert!(event.is_none(), "nothing was dropped");
        assert_eq!(*asked.lock().unwrap(), vec![(43, 5)]);
        assert_eq!(log.high_watermark(), 6, "three records and the marker");
        drop(log);
        // The marker is on disk: the next open asks nothing.
        let (log, event) = open(&dir, &|_, _| panic!("no open transaction is left"));
        assert!(event.is_none());
        assert_eq!(values(log), ["a", "b", "t1", "t2", "t3"].map(|v| v.as_bytes().to_vec()).to_vec());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_decision_for_other_records_than_those_found_aborts_them() {
        let dir = root("mismatch");
        let end = crash_mid_transaction(&dir, 44);
        let (log, event) = open(&dir, &|txn, at| txn == 44 && at == end + 1);
        assert!(event.is_some());
        assert_eq!(values(log), vec![b"a".to_vec(), b"b".to_vec()]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_published_share_is_read_at_once_its_marker_stepped_over_and_a_discarded_one_leaves_nothing() {
        let dir = root("publish");
        let (log, _) = open(&dir, &|_, _| false);
        let log = Arc::new(log);
        let records = [Record::new("x"), Record::new("y")];
        let refs: Vec<&Record<'_>> = records.iter().collect();
        let sizes: Vec<usize> = refs.iter().map(|r| frame::record_len(r)).collect();
        // Discarded: zeroed, nothing published, the next share goes in its place.
        let mut w = log.lock_writer();
        log.txn_prepare(&mut w, log.txn_share_bytes(&sizes), 5).unwrap();
        let share = log.txn_write(&mut w, &refs, &sizes, 1, 5);
        log.txn_discard(share);
        let share = log.txn_write(&mut w, &refs, &sizes, 2, 5);
        assert_eq!(share.first, 0);
        let mut cursor = log.cursor_at(0).unwrap();
        assert!(cursor.next_found().unwrap().is_none(), "unpublished");
        log.txn_publish(&mut w, share, 2, 5, false).unwrap();
        drop(w);
        assert_eq!(log.high_watermark(), 3);
        let mut seen = Vec::new();
        while let Some(found) = cursor.next_found().unwrap() {
            seen.push(cursor.message(&found).value().to_vec());
        }
        assert_eq!(seen, vec![b"x".to_vec(), b"y".to_vec()]);
        assert_eq!(cursor.position(), 3, "the position covers the marker");
        drop(cursor);
        drop(log);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
