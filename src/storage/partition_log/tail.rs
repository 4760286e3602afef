//! A read-only follower's *tail*: the last segment of a partition another
//! process writes, read past its known end with `pread` and checked frame
//! by frame before anything is published to this process's cursors (see
//! `partition_log/follower.rs`).

use std::fs::File;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::storage::frame::{self, FrameError};
use crate::storage::scan::Scanner;
use crate::storage::segment::{self, DATA_START, Segment};

/// The first `pread` at the tail: enough for the frames a poll usually
/// finds, little to copy when it finds none.
const FIRST_READ: usize = 4 << 10;
/// The largest `pread` while catching up on a backlog.
const MAX_READ: usize = 1 << 20;

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
    file: File,
    pub(crate) scanner: Scanner,
    buf: Vec<u8>,
    /// The last read found the file ending exactly at the checked frames.
    pub(crate) at_file_end: bool,
    /// Where and why the last read stopped, if not at zero (never written)
    /// space or the file's end: bytes that are not (yet) a valid frame.
    pub(crate) stop: Option<(usize, FrameError)>,
}

impl Tail {
    pub(crate) fn new(seg: Arc<Segment>, file: File, index_interval: u32) -> Tail {
        let scanner = Scanner::new(seg.origin(), DATA_START as usize, None, index_interval);
        Tail { seg, file, scanner, buf: Vec::new(), at_file_end: false, stop: None }
    }

    /// Reads and checks frames past the known end; `true` if any.
    /// `max_frame` bounds how far one frame's length is believed.
    pub(crate) fn read_frames(&mut self, max_frame: usize) -> Result<bool> {
        use std::os::unix::fs::FileExt;
        let mut found = false;
        let mut want = FIRST_READ;
        loop {
            let pos = self.scanner.pos;
            let room = segment::MAX_SEGMENT_BYTES as usize - pos.min(segment::MAX_SEGMENT_BYTES as usize);
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
                        found = true;
                    }
                    // The frame goes on past what was read: read again
                    // from its start, with room for all of it.
                    Err(FrameError::Short) if n == want_now && want_now < room => {
                        let need = frame::read_header(&self.buf[off..n], self.seg.origin())
                            .map_or(want_now * 2, |h| h.frame_len().min(max_frame));
                        grow = Some(need.max(FIRST_READ));
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
                None if n == want_now => (want * 2).min(MAX_READ),
                None => want,
            };
        }
        Ok(found)
    }

    /// Makes what [`Tail::read_frames`] checked visible to cursors.
    pub(crate) fn publish(&mut self) {
        for entry in self.scanner.entries.drain(..) {
            self.seg.push_index(entry);
        }
        self.seg.publish_followed(self.scanner.pos as u32, self.scanner.next_offset, self.scanner.max_timestamp);
    }
}
