//! A read-only follower's *tail*: the last segment of a partition another
//! process writes, read past its known end with `pread` and checked frame
//! by frame before anything is published to this process's cursors (see
//! `partition_log/follower.rs`).

use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::storage::frame::{self, FrameError};
use crate::storage::scan::Scanner;
use crate::storage::segment::{DATA_START, Segment};

/// The first `pread` at the tail: enough for the frames a poll usually
/// finds, little to copy when it finds none.
const FIRST_READ: usize = 4 << 10;
/// The largest `pread` while catching up on a backlog (a frame larger than
/// this is read whole, once).
const MAX_READ: usize = 1 << 20;
/// How often a follower whose tail shows nothing new looks for a roll the
/// writer did not show by trimming (an index it could not write), for
/// retention, and for its topic's deletion.
const PROBE_EVERY: Duration = Duration::from_millis(50);
/// How long the same invalid bytes at the tail must stay so before the
/// follower backs off: a frame being written takes microseconds (a writer
/// descheduled in the middle of one, a few milliseconds); a torn one stays.
const STUCK_AFTER: Duration = Duration::from_millis(20);
/// The longest a follower then waits between looks at the same bytes (an
/// eighth of how long they have stayed, up to this).
const STUCK_BACKOFF: Duration = Duration::from_millis(10);

/// A follower's state: its tail, behind a lock that only this process's
/// readers take (one of them catches up at a time).
#[derive(Debug)]
pub(crate) struct Follower {
    pub(crate) tail: Mutex<Tail>,
}

/// The segment a follower reads past its known end.
#[derive(Debug)]
pub(crate) struct Tail {
    pub(crate) seg: Arc<Segment>,
    pub(crate) file: File,
    pub(crate) scanner: Scanner,
    buf: Vec<u8>,
    /// The last read found the file ending exactly at the checked frames.
    pub(crate) at_file_end: bool,
    /// Where and why the last read stopped, if not at zero (never written)
    /// space or the file's end: bytes that are not (yet) a valid frame.
    pub(crate) stop: Option<(usize, FrameError)>,
    /// Since when the looks have found the same invalid bytes, and when the
    /// next look at them is due.
    stuck: Option<(Instant, Instant)>,
    /// When the last slow probe ran (see [`Tail::slow_probe_due`]).
    last_probe: Instant,
    /// The end of the file at which the follower last listed the directory.
    pub(crate) listed_at: Option<usize>,
}

impl Tail {
    pub(crate) fn new(seg: Arc<Segment>, file: File, index_interval: u32) -> Tail {
        let scanner = Scanner::new(seg.origin(), DATA_START as usize, None, index_interval);
        let last_probe = Instant::now();
        Tail {
            seg,
            file,
            scanner,
            buf: Vec::new(),
            at_file_end: false,
            stop: None,
            stuck: None,
            last_probe,
            listed_at: None,
        }
    }

    /// Whether the slow probe (listing the directory, checking the tail's
    /// file is still the partition's) is due; marks it done if so.
    pub(crate) fn slow_probe_due(&mut self) -> bool {
        if self.last_probe.elapsed() < PROBE_EVERY {
            return false;
        }
        self.last_probe = Instant::now();
        true
    }

    /// Reads and checks frames past the known end; `true` if any.
    /// `max_frame` bounds how far one frame's length is believed.
    pub(crate) fn read_frames(&mut self, max_frame: usize) -> Result<bool> {
        use std::os::unix::fs::FileExt;
        // Invalid bytes that stayed so over many looks: a torn frame, not
        // one being written; look again only now and then.
        if let Some((_, due)) = self.stuck
            && Instant::now() < due
        {
            return Ok(false);
        }
        let stopped_before = self.stop.map(|(pos, _)| pos);
        // A transaction's frames seen without their marker are held back;
        // check them again from their start, since a writer that crashed
        // before its decision has them removed by its recovery, and new
        // frames written in their place.
        let stable_before = self.scanner.stable().pos;
        self.scanner.rewind_open_txn();
        let mut found = false;
        let mut want = FIRST_READ;
        // Never past the mapping: what is published is read through it.
        let capacity = self.seg.capacity() as usize;
        loop {
            let pos = self.scanner.pos;
            let room = capacity.saturating_sub(pos);
            let want_now = want.min(room);
            if want_now == 0 {
                break;
            }
            if self.buf.len() < want_now {
                self.buf.resize(want_now, 0);
            }
            let n = loop {
                match self.file.read_at(&mut self.buf[..want_now], pos as u64) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Error::io("read segment", &self.seg.path, e)),
                }
            };
            self.at_file_end = n == 0;
            if n == 0 {
                self.stop = None;
                break;
            }
            let mut off = 0;
            let mut stopped = false;
            let mut grow = None;
            while off < n {
                match self.scanner.step(&self.buf[off..n]) {
                    Ok(h) => {
                        off += h.frame_len();
                        found |= self.scanner.stable().pos > stable_before;
                    }
                    // The frame goes on past what was read. If frames came
                    // before it, read on from its start; if it is the first,
                    // read again with room for all of it (as its header
                    // says, when that is whole).
                    Err(FrameError::Short) if n == want_now && want_now < room => {
                        if off == 0 {
                            let need = frame::read_header(&self.buf[..n], self.seg.origin())
                                .map_or(want_now * 2, |h| h.frame_len().min(max_frame));
                            grow = Some(need.max(FIRST_READ).min(room));
                        }
                        break;
                    }
                    Err(e) => {
                        self.stop = (e != FrameError::Zero).then_some((self.scanner.pos, e));
                        stopped = true;
                        break;
                    }
                }
            }
            if stopped || (off == 0 && grow.is_none()) {
                break;
            }
            want = match grow {
                // A length past `max_frame` is not believed: not yet.
                Some(g) if g <= want_now => break,
                Some(g) => g,
                None if off == n => (want * 2).min(MAX_READ),
                None => want.min(MAX_READ),
            };
        }
        if self.buf.len() > MAX_READ {
            self.buf = Vec::new(); // a large frame's buffer is not kept
        }
        self.stuck = match self.stop {
            Some((pos, _)) if !found && stopped_before == Some(pos) => {
                let now = Instant::now();
                let since = self.stuck.map_or(now, |(since, _)| since);
                let stayed = now - since;
                let wait = if stayed < STUCK_AFTER { Duration::ZERO } else { STUCK_BACKOFF.min(stayed / 8) };
                Some((since, now + wait))
            }
            _ => None,
        };
        Ok(found)
    }

    /// Makes what [`Tail::read_frames`] checked visible to cursors, short
    /// of a transaction whose commit marker is not there yet.
    pub(crate) fn publish(&mut self) {
        let stable = self.scanner.stable();
        let (pos, next, max_ts, indexed) = (stable.pos, stable.next_offset, stable.max_timestamp, stable.entries.len());
        for entry in self.scanner.entries.drain(..indexed) {
            self.seg.push_index(entry);
        }
        if let Some((_, before)) = &mut self.scanner.open_txn {
            before.entries.clear();
        }
        self.seg.publish_followed(pos as u32, next, max_ts);
    }
}
