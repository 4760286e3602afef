//! [`SegmentDump`]: one segment file read on its own, without a broker, to
//! see what is in it (the `millpond dump` command; Kafka's
//! `kafka-dump-log`).
//!
//! Opening a dump takes no lock and writes nothing: the file is opened
//! read-only without following a symlink, and read with `pread` (never
//! mapped), never past the file's current length, so a segment that a live
//! writer is appending to (or trimming as it seals it) is safe to dump. The
//! header and the frames are decoded by the same code the broker uses
//! (`segment_header.rs`, `frame.rs`), so a dump shows what a broker would
//! accept, and stops where a broker's scan would stop.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::storage::frame::{self, FrameError, FrameHeader, Origin, RawRecord};
use crate::storage::fsutil;
use crate::storage::segment_header::{self, Refusal, SegmentHeader};

/// Bytes read at a time; a frame larger than this is read whole.
const CHUNK: usize = 1 << 20;
/// Bytes a frame is first looked for in (doubled while it is larger).
const FIRST_LOOK: usize = 4096;

/// One segment file (`<base>.log`), opened read-only for inspection.
///
/// [`SegmentDump::open`] reads and checks the segment header;
/// [`SegmentDump::frames`] walks the frames after it, each checked as the
/// broker checks it (length check, CRC, every record's structure, offsets
/// inside the segment and increasing), up to the first that is not a valid
/// frame, and says why the walk stopped there ([`SegmentEnd`]).
///
/// # Examples
///
/// ```
/// use millpond::{Broker, DumpEntry, Record, SegmentDump, SegmentEnd, TopicConfig};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-dump-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let topic = broker.create_topic("t", TopicConfig::default())?;
/// topic.producer().send_batch((0..3).map(|i| Record::new(format!("v{i}"))))?;
/// topic.producer().send(Record::new("last").key("k"))?;
/// drop((topic, broker));
///
/// let dump = SegmentDump::open(dir.join("topics/t/0/00000000000000000000.log"))?;
/// let header = dump.header().expect("a header was written");
/// assert_eq!((header.partition, header.base_offset), (0, 0));
/// let entries = dump.frames().collect::<millpond::Result<Vec<_>>>()?;
/// let DumpEntry::Frame(first) = &entries[0] else { panic!("a frame first") };
/// assert_eq!((first.base_offset, first.last_offset, first.record_count), (0, 2, 3));
/// let DumpEntry::Frame(second) = &entries[1] else { panic!("then another") };
/// assert_eq!(second.records()[0].key.as_deref(), Some(&b"k"[..]));
/// // A closed broker trims its active segment: the frames run to the end.
/// assert!(matches!(&entries[2], DumpEntry::End { end: SegmentEnd::EndOfFile, .. }));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SegmentDump {
    path: PathBuf,
    file: File,
    len: u64,
    /// `None`: the header is zero (nothing written to the file yet).
    info: Option<SegmentInfo>,
    origin: Origin,
}

/// The fields of a segment's header, from [`SegmentDump::header`].
///
/// # Examples
///
/// See [`SegmentDump`]; [`SegmentInfo::topic_id_hex`] shows the topic id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentInfo {
    /// The random id of the topic the segment belongs to (the one in its
    /// `topic.meta`).
    pub topic_id: [u8; 16],
    /// The partition it belongs to.
    pub partition: u32,
    /// Its first offset (the number in its file name).
    pub base_offset: u64,
    /// The writer epoch it was created in.
    pub epoch: u32,
    /// The timestamp its frames' timestamps are relative to (ms since the
    /// Unix epoch).
    pub base_timestamp: i64,
}

impl SegmentInfo {
    /// The topic id in hexadecimal, as 32 lowercase digits.
    ///
    /// ```
    /// use millpond::{Broker, Record, SegmentDump, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-dumphex-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// broker.create_topic("t", TopicConfig::default())?.producer().send(Record::new("x"))?;
    /// drop(broker);
    /// let dump = SegmentDump::open(dir.join("topics/t/0/00000000000000000000.log"))?;
    /// let hex = dump.header().expect("a header").topic_id_hex();
    /// assert_eq!(hex.len(), 32);
    /// assert!(hex.chars().all(|c| c.is_ascii_hexdigit()));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn topic_id_hex(&self) -> String {
        segment_header::hex(&self.topic_id)
    }
}

/// What [`DumpFrames`] yields: a valid frame, or, last, where and why the
/// frames end.
///
/// See [`SegmentDump`] for an example.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum DumpEntry {
    /// A frame that passed every check.
    Frame(DumpedFrame),
    /// The walk stopped: always the last entry.
    End {
        /// The byte position in the file where it stopped.
        position: u64,
        /// Why.
        end: SegmentEnd,
    },
}

/// Why the frames of a segment end where they do.
///
/// # Examples
///
/// ```
/// use millpond::SegmentEnd;
/// assert!(!SegmentEnd::Unwritten.is_damage());
/// assert!(!SegmentEnd::Incomplete { reason: "frame CRC mismatch".into() }.is_damage());
/// assert!(SegmentEnd::Corrupt { reason: "frame CRC mismatch".into() }.is_damage());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SegmentEnd {
    /// The frames run exactly to the end of the file (a sealed segment, or
    /// the active one of a closed broker).
    EndOfFile,
    /// Zero bytes from here to the end of the file: preallocated space not
    /// written yet (the active segment of a running broker).
    Unwritten,
    /// A frame that fails its checks with zero space after it and nothing
    /// else: a frame a live writer is writing at this moment, or the torn
    /// last write of a crash, which recovery truncates on the next open.
    /// No acknowledged record is in it.
    Incomplete {
        /// What check the frame failed.
        reason: String,
    },
    /// Damage: a frame that fails its checks with data after it (or with
    /// the end of the file right after it: a sealed segment's frames were
    /// all written whole), a valid frame with offsets that do not belong
    /// there, a frame cut short by the end of the file, or data after
    /// zero-filled space. A broker reports the same place as
    /// [`Error::Corrupt`].
    Corrupt {
        /// What is wrong.
        reason: String,
    },
}

impl SegmentEnd {
    /// Whether this end is damage ([`SegmentEnd::Corrupt`]) rather than a
    /// normal end of a sealed, active or being-written segment.
    ///
    /// See [`SegmentEnd`] for an example.
    pub fn is_damage(&self) -> bool {
        matches!(self, SegmentEnd::Corrupt { .. })
    }
}

impl std::fmt::Display for SegmentEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SegmentEnd::EndOfFile => f.write_str("end of file"),
            SegmentEnd::Unwritten => f.write_str("unwritten (zero bytes to the end of the file)"),
            SegmentEnd::Incomplete { reason } => write!(f, "incomplete last frame ({reason})"),
            SegmentEnd::Corrupt { reason } => write!(f, "corrupt: {reason}"),
        }
    }
}

/// One valid frame of a segment: where it is and what its header says.
///
/// See [`SegmentDump`] for an example.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DumpedFrame {
    /// Byte position of the frame in the file.
    pub position: u64,
    /// Bytes of the whole frame, its header included.
    pub len: u32,
    /// Offset of its first record.
    pub base_offset: u64,
    /// Offset of its last record (offsets in between may be missing in a
    /// compacted topic).
    pub last_offset: u64,
    /// How many records it holds.
    pub record_count: u32,
    /// Timestamp of its first record (ms since the Unix epoch).
    pub base_timestamp: i64,
    /// Largest timestamp of its records.
    pub max_timestamp: i64,
    /// The id of the transaction that wrote it, if one did.
    pub transaction: Option<u64>,
    /// Whether it is a transaction's commit marker (one record, no data).
    pub commit_marker: bool,
    header: FrameHeader,
    bytes: Vec<u8>,
}

/// One record of a [`DumpedFrame`], from [`DumpedFrame::records`].
///
/// See [`SegmentDump`] for an example.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DumpedRecord {
    /// Its offset.
    pub offset: u64,
    /// Its timestamp (ms since the Unix epoch).
    pub timestamp: i64,
    /// Its key, if it has one.
    pub key: Option<Vec<u8>>,
    /// Its value; `None` for a tombstone.
    pub value: Option<Vec<u8>>,
    /// Its headers, `(name, value)`, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl DumpedFrame {
    /// The frame's records, in offset order.
    ///
    /// See [`SegmentDump`] for an example.
    pub fn records(&self) -> Vec<DumpedRecord> {
        let h = &self.header;
        let body = frame::records_of(h, &self.bytes);
        let mut out = Vec::with_capacity(h.record_count as usize);
        let mut pos = 0;
        for _ in 0..h.record_count {
            // The frame passed `validate_frame`, which decoded every
            // record; a failure here cannot happen, and would only end the list.
            let Ok(view) = frame::decode_record(body, pos, h) else { break };
            let raw = RawRecord::of(h, body, &view);
            let mut headers = Vec::with_capacity(usize::from(raw.header_count));
            let mut rest = raw.headers;
            for _ in 0..raw.header_count {
                let Some((name, value, next)) = frame::split_header(rest) else { break };
                headers.push((name.to_string(), value.to_vec()));
                rest = next;
            }
            out.push(DumpedRecord {
                offset: raw.offset,
                timestamp: raw.timestamp,
                key: raw.key.map(<[u8]>::to_vec),
                value: raw.value.map(<[u8]>::to_vec),
                headers,
            });
            pos = view.end;
        }
        out
    }
}

impl SegmentDump {
    /// Opens the segment file at `path` read-only and reads its header.
    ///
    /// Takes no lock and writes nothing. Fails with [`Error::Symlink`] if
    /// `path` is a symbolic link (never followed), with [`Error::Io`] if
    /// it cannot be read or is not a regular file, with
    /// [`Error::UnsupportedFormat`] for a segment of an older format, and
    /// with [`Error::CorruptMetadata`] for a file whose first bytes are not
    /// a valid segment header (not a segment, or a damaged one). A file
    /// whose header is zero (or that is empty) is a segment with nothing
    /// written to it yet: it opens, without a [`header`](SegmentDump::header).
    ///
    /// ```
    /// use millpond::{Error, SegmentDump};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-dumpopen-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let not_a_segment = dir.join("notes.txt");
    /// std::fs::write(&not_a_segment, "hello, this is not a segment")?;
    /// assert!(matches!(SegmentDump::open(&not_a_segment), Err(Error::CorruptMetadata { .. })));
    ///
    /// let fresh = dir.join("00000000000000000000.log");
    /// std::fs::write(&fresh, vec![0u8; 4096])?; // created and preallocated, nothing written yet
    /// assert!(SegmentDump::open(&fresh)?.header().is_none());
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<SegmentDump> {
        let path = path.as_ref().to_path_buf();
        let file = fsutil::open_read(&path).map_err(Error::io_at("open segment", &path))?;
        let meta = file.metadata().map_err(Error::io_at("stat segment", &path))?;
        if !meta.is_file() {
            let e = std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file");
            return Err(Error::io("open segment", &path, e));
        }
        let len = meta.len();
        let read_header = || -> Result<std::result::Result<SegmentHeader, Refusal>> {
            let mut head = vec![0u8; segment_header::LEN];
            let n = read_at_most(&file, &mut head, 0).map_err(Error::io_at("read segment header", &path))?;
            head.truncate(n);
            Ok(decode_header(&head))
        };
        let mut decoded = read_header()?;
        // A live writer writes the header of a segment it has just created,
        // then its frames: a read at that moment may see none or part of it.
        if matches!(decoded, Err(Refusal::Corrupt(_))) {
            std::thread::yield_now(); // a 64-byte write: over by the next read
            decoded = read_header()?;
        }
        if matches!(decoded, Err(Refusal::Missing))
            && first_nonzero(&file, 0).map_err(Error::io_at("read segment", &path))?.is_some()
        {
            // Data was written: the header was written before it.
            decoded = read_header()?;
        }
        let header = match decoded {
            Ok(header) => Some(header),
            Err(Refusal::Missing) => None,
            Err(Refusal::Unsupported(found)) => {
                return Err(Error::UnsupportedFormat { path, found, supported: segment_header::VERSION });
            }
            Err(Refusal::Corrupt(reason)) => {
                return Err(Error::CorruptMetadata { path, reason: format!("not a valid segment header: {reason}") });
            }
        };
        let info = header.map(|h| SegmentInfo {
            topic_id: h.topic_id,
            partition: h.partition,
            base_offset: h.base_offset,
            epoch: h.epoch,
            base_timestamp: h.base_timestamp,
        });
        let origin = header.map(|h| h.origin()).unwrap_or_default();
        Ok(SegmentDump { path, file, len, info, origin })
    }

    /// The file's path, as given to [`SegmentDump::open`].
    ///
    /// ```
    /// use millpond::{Broker, Record, SegmentDump, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-dumppath-{}", std::process::id()));
    /// # drop(Broker::open(&dir)?.create_topic("t", TopicConfig::default())?);
    /// let path = dir.join("topics/t/0/00000000000000000000.log");
    /// assert_eq!(SegmentDump::open(&path)?.path(), path.as_path());
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The segment's header; `None` if it is zero: nothing was written to
    /// the segment yet (a live writer has just created it, or a crash
    /// left it so), and its frames end at once.
    ///
    /// See [`SegmentDump`] and [`SegmentDump::open`] for examples.
    pub fn header(&self) -> Option<&SegmentInfo> {
        self.info.as_ref()
    }

    /// The file's length in bytes when it was opened (a live writer may trim
    /// it since, when it seals the segment; the frames are read up to the
    /// length it has then).
    ///
    /// ```
    /// use millpond::{Broker, SegmentDump, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-dumplen-{}", std::process::id()));
    /// # drop(Broker::open(&dir)?.create_topic("t", TopicConfig::default())?);
    /// let dump = SegmentDump::open(dir.join("topics/t/0/00000000000000000000.log"))?;
    /// assert_eq!(dump.file_len(), 64); // a header and no frame, trimmed at close
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn file_len(&self) -> u64 {
        self.len
    }

    /// Walks the frames from just after the header: every valid frame,
    /// then one [`DumpEntry::End`]. An `Err` item (after which the
    /// iterator ends) means the file could not be read.
    ///
    /// See [`SegmentDump`] for an example.
    pub fn frames(&self) -> DumpFrames<'_> {
        DumpFrames {
            dump: self,
            pos: if self.info.is_some() { segment_header::LEN as u64 } else { 0 },
            next_offset: self.info.map_or(0, |i| i.base_offset),
            window: Window::default(),
            done: false,
        }
    }
}

/// The header of segment bytes `head`, checked for its own integrity
/// (magic, version, CRC, reserved bytes) only.
///
/// `SegmentHeader::decode` also checks the header against the place the
/// broker found the file in (topic id, partition, base offset). A dump has
/// no such place, so it passes the place the header names (bytes 8..36 of
/// the layout in `segment_header.rs`); the broker's own check is the one
/// left, and garbage there fails the CRC before any field is trusted.
fn decode_header(head: &[u8]) -> std::result::Result<SegmentHeader, Refusal> {
    let mut topic_id = [0u8; 16];
    let (mut partition, mut base) = (0u32, 0u64);
    if let Some(h) = head.get(..segment_header::LEN) {
        topic_id.copy_from_slice(&h[8..24]);
        partition = u32::from_le_bytes([h[24], h[25], h[26], h[27]]);
        base = u64::from_le_bytes([h[28], h[29], h[30], h[31], h[32], h[33], h[34], h[35]]);
    }
    SegmentHeader::decode(head, &topic_id, partition, base)
}

/// Reads into `buf` from `at` until it is full or the file ends; returns
/// how many bytes were read (fewer at the end of the file, none past it).
fn read_at_most(file: &File, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], at + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The position of the first non-zero byte of `file` at or after `from`,
/// if any (reading only what the file system reports as data).
fn first_nonzero(file: &File, from: u64) -> std::io::Result<Option<u64>> {
    let len = file.metadata()?.len();
    let mut buf = vec![0u8; CHUNK];
    for (start, end) in fsutil::data_ranges(file, from.min(len), len) {
        let mut at = start;
        while at < end {
            let n = (end - at).min(CHUNK as u64) as usize;
            let got = read_at_most(file, &mut buf[..n], at)?;
            if let Some(i) = buf[..got].iter().position(|&b| b != 0) {
                return Ok(Some(at + i as u64));
            }
            if got < n {
                break;
            }
            at += got as u64;
        }
    }
    Ok(None)
}

/// The bytes of the file last read, `[start, start + bytes.len())`.
#[derive(Debug, Default)]
struct Window {
    start: u64,
    bytes: Vec<u8>,
    /// The read that filled it met the end of the file.
    eof: bool,
}

/// The iterator of [`SegmentDump::frames`]: every valid frame, then where
/// and why the frames end.
///
/// See [`SegmentDump`] for an example.
#[derive(Debug)]
pub struct DumpFrames<'d> {
    dump: &'d SegmentDump,
    pos: u64,
    /// One past the previous frame's last offset: the next frame starts at
    /// or after it.
    next_offset: u64,
    window: Window,
    done: bool,
}

impl DumpFrames<'_> {
    /// The byte position the walk has reached (for a progress display;
    /// compare with [`SegmentDump::file_len`]).
    ///
    /// ```
    /// use millpond::{Broker, Record, SegmentDump, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-dumppos-{}", std::process::id()));
    /// # let b = Broker::open(&dir)?; b.create_topic("t", TopicConfig::default())?.producer().send(Record::new("x"))?; drop(b);
    /// let dump = SegmentDump::open(dir.join("topics/t/0/00000000000000000000.log"))?;
    /// let mut frames = dump.frames();
    /// assert_eq!(frames.position(), 64); // just after the header
    /// frames.next();
    /// assert!(frames.position() > 64);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// At least `want` bytes from `pos` (fewer only at the end of the file).
    fn bytes_at(&mut self, pos: u64, want: usize) -> std::io::Result<&[u8]> {
        let w = &mut self.window;
        let end = w.start + w.bytes.len() as u64;
        let covered = pos >= w.start && pos <= end && (pos + want as u64 <= end || w.eof);
        if !covered {
            let mut buf = std::mem::take(&mut w.bytes);
            let ask = CHUNK.max(want);
            buf.resize(ask, 0);
            let n = read_at_most(&self.dump.file, &mut buf, pos)?;
            buf.truncate(n);
            *w = Window { start: pos, bytes: buf, eof: n < ask };
        }
        let from = usize::try_from(pos - w.start).unwrap_or(usize::MAX).min(w.bytes.len());
        Ok(&w.bytes[from..])
    }

    /// The position of the first non-zero byte at or after `from`, if any.
    fn first_nonzero(&self, from: u64) -> std::io::Result<Option<u64>> {
        first_nonzero(&self.dump.file, from)
    }

    /// The frame at `pos`, checked as the broker's scan checks it.
    fn frame_at(&mut self, pos: u64) -> std::io::Result<std::result::Result<DumpedFrame, (FrameError, Option<u32>)>> {
        let origin = self.dump.origin;
        // Most frames are small: ask for a little (the window holds a whole
        // chunk), and for more only when the frame turns out larger.
        let mut want = FIRST_LOOK;
        let (checked, claimed_len, bytes) = loop {
            let bytes = self.bytes_at(pos, want)?;
            let checked = frame::validate_frame(bytes, origin);
            if checked == Err(FrameError::Short) && bytes.len() >= want {
                want = want.saturating_mul(2); // a frame larger than the window
                continue;
            }
            let claimed = frame::read_header(bytes, origin).ok().map(|h| h.len);
            let keep = checked.as_ref().map_or(0, FrameHeader::frame_len);
            break (checked, claimed, bytes[..keep].to_vec());
        };
        let header = match checked {
            Ok(h) => h,
            Err(e) => return Ok(Err((e, claimed_len))),
        };
        if let Err(e) = header.check_range(self.dump.origin.base_offset, None) {
            return Ok(Err((e, None)));
        }
        if header.base_offset < self.next_offset {
            return Ok(Err((FrameError::BadHeader("frame offset out of sequence"), None)));
        }
        Ok(Ok(DumpedFrame {
            position: pos,
            len: header.len,
            base_offset: header.base_offset,
            last_offset: header.base_offset + u64::from(header.last_offset_delta),
            record_count: header.record_count,
            base_timestamp: header.base_timestamp,
            max_timestamp: header.max_timestamp,
            transaction: header.txn,
            commit_marker: header.control,
            header,
            bytes,
        }))
    }

    /// Moves past `frame`, the valid frame at the current position.
    fn take(&mut self, frame: DumpedFrame) -> DumpEntry {
        self.pos += u64::from(frame.len);
        self.next_offset = frame.last_offset + 1;
        DumpEntry::Frame(frame)
    }

    /// What is at `pos`, where the frame read failed with `error`: a frame
    /// after all (a live writer finished it meanwhile), or why the frames
    /// end there.
    ///
    /// A writer appends frames in order, each written whole before the next
    /// one starts. So the bytes after the failed frame are looked at first,
    /// and the frame read again only then: if it still fails although data
    /// was already written after it, it is damage; if nothing but zero space
    /// follows it, it is a frame being written (or torn by a crash).
    fn settle(
        &mut self,
        pos: u64,
        mut error: FrameError,
        mut claimed_len: Option<u32>,
    ) -> std::io::Result<std::result::Result<DumpedFrame, SegmentEnd>> {
        const ATTEMPTS: usize = 8;
        let mut attempt = 1;
        loop {
            let after = match error {
                FrameError::Zero => pos,
                _ => pos + u64::from(claimed_len.unwrap_or(frame::MAX_HEADER_LEN as u32)),
            };
            let file_len = self.dump.file.metadata()?.len();
            let later = if after < file_len { self.first_nonzero(after)? } else { None };
            self.window = Window::default();
            if self.bytes_at(pos, 1)?.is_empty() {
                return Ok(Err(SegmentEnd::EndOfFile)); // trimmed meanwhile: the writer sealed it
            }
            match self.frame_at(pos)? {
                Ok(frame) => return Ok(Ok(frame)),
                // A frame still being written claims another length now:
                // look again (a bounded number of times).
                Err((e, len)) if (e, len) != (error, claimed_len) && attempt < ATTEMPTS => {
                    (error, claimed_len) = (e, len);
                    attempt += 1;
                }
                Err((e, len)) => return Ok(Err(classify(e, len, after >= file_len, later, self.dump.len))),
            }
        }
    }
}

/// Why the frames stop where reading a frame failed with `error`
/// (claiming `claimed_len` bytes, if its length was readable);
/// `ends_file`: the frame reaches the end of the file; `later`: the first
/// non-zero byte after it, looked at before the frame was last read.
fn classify(
    error: FrameError,
    claimed_len: Option<u32>,
    ends_file: bool,
    later: Option<u64>,
    file_len: u64,
) -> SegmentEnd {
    let reason = error.to_string();
    match error {
        FrameError::Zero => match later {
            None => SegmentEnd::Unwritten,
            Some(at) => SegmentEnd::Corrupt {
                reason: format!("zero bytes where a frame should start, but data again at byte {at}"),
            },
        },
        // A checksummed frame that is not in its place, or a frame the
        // file's end cuts short: no write in progress looks like that
        // (segments are preallocated, never extended).
        FrameError::OutOfRange { .. }
        | FrameError::MissingOffsets { .. }
        | FrameError::BadHeader("frame offset out of sequence") => SegmentEnd::Corrupt { reason },
        FrameError::Short => {
            SegmentEnd::Corrupt { reason: format!("{reason}: it runs past the end of the file ({file_len} bytes)") }
        }
        // A frame whose length can be read (it failed its CRC or a record
        // check) is incomplete when zero space follows it, and nothing
        // else; one whose length is untrustworthy, when zero space follows
        // the largest header. A write in progress (or torn by a crash) is
        // always followed by zero space: segments are preallocated, and
        // trimmed only when sealed, after their last frame was written
        // whole. So a failed frame that reaches the end of the file is
        // damage.
        _ => {
            let with_len = match claimed_len {
                Some(len) => format!("{reason}; the frame claims {len} bytes"),
                None => reason,
            };
            match (ends_file, later) {
                (true, _) => SegmentEnd::Corrupt { reason: format!("{with_len} and reaches the end of the file") },
                (false, None) => SegmentEnd::Incomplete { reason: with_len },
                (false, Some(at)) => SegmentEnd::Corrupt { reason: format!("{with_len}; data follows at byte {at}") },
            }
        }
    }
}

impl Iterator for DumpFrames<'_> {
    type Item = Result<DumpEntry>;

    fn next(&mut self) -> Option<Result<DumpEntry>> {
        if self.done {
            return None;
        }
        let pos = self.pos;
        if self.dump.info.is_none() {
            // No header: no frame can be read. Zero throughout is a segment
            // nothing was written to; anything else is damage.
            self.done = true;
            let end = match self.first_nonzero(0) {
                Ok(None) if self.dump.len == 0 => SegmentEnd::EndOfFile,
                Ok(None) => SegmentEnd::Unwritten,
                Ok(Some(at)) => SegmentEnd::Corrupt {
                    reason: format!("the segment header is zero, but there is data at byte {at}"),
                },
                Err(e) => return Some(Err(Error::io("read segment", &self.dump.path, e))),
            };
            return Some(Ok(DumpEntry::End { position: 0, end }));
        }
        let found = match self.bytes_at(pos, 1).map(<[u8]>::is_empty) {
            // Nothing left to read: the frames end with the file.
            Ok(true) => {
                self.done = true;
                return Some(Ok(DumpEntry::End { position: pos, end: SegmentEnd::EndOfFile }));
            }
            Ok(false) => self.frame_at(pos),
            Err(e) => Err(e),
        };
        let dump = self.dump;
        let path = &dump.path;
        let found = match found {
            Ok(found) => found,
            Err(e) => {
                self.done = true;
                return Some(Err(Error::io("read segment", path, e)));
            }
        };
        match found {
            Ok(frame) => Some(Ok(self.take(frame))),
            Err((error, claimed)) => match self.settle(pos, error, claimed) {
                Ok(Ok(frame)) => Some(Ok(self.take(frame))),
                Ok(Err(end)) => {
                    self.done = true;
                    Some(Ok(DumpEntry::End { position: pos, end }))
                }
                Err(e) => {
                    self.done = true;
                    Some(Err(Error::io("read segment", path, e)))
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::frame::{MAX_HEADER_LEN, encode_frame, record_len};
    use crate::storage::record::Record;
    use proptest::prelude::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    const HEADER: SegmentHeader =
        SegmentHeader { topic_id: [3; 16], partition: 2, base_offset: 100, epoch: 1, base_timestamp: 1_000 };

    /// A fresh directory for one test's files.
    fn temp_dir(label: &str) -> PathBuf {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("millpond-dump-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A segment's bytes: the header, then one frame per batch (offsets
    /// dense from the base), then `zeros` zero bytes. Returns the bytes and
    /// each frame's `(position, len)`.
    fn segment(batches: &[Vec<Record<'_>>], zeros: usize) -> (Vec<u8>, Vec<(usize, usize)>) {
        let origin = HEADER.origin();
        let mut out = HEADER.encode().to_vec();
        let mut frames = Vec::new();
        let mut base = HEADER.base_offset;
        for batch in batches {
            let mut buf = vec![0u8; MAX_HEADER_LEN + batch.iter().map(record_len).sum::<usize>()];
            let h = encode_frame(&mut buf, origin, base, batch.iter(), 5_000);
            frames.push((out.len(), h.frame_len()));
            out.extend_from_slice(&buf[..h.frame_len()]);
            base = h.next_offset();
        }
        out.resize(out.len() + zeros, 0);
        (out, frames)
    }

    fn three_frames(zeros: usize) -> (Vec<u8>, Vec<(usize, usize)>) {
        segment(
            &[
                vec![Record::new("a").timestamp(1_001), Record::new("b").key("k").header("h", "x").timestamp(1_003)],
                vec![Record::tombstone("gone").timestamp(1_004)],
                vec![Record::new("c").timestamp(1_005)],
            ],
            zeros,
        )
    }

    /// What a dump found: the header, if any, and every entry.
    type Dumped = Result<(Option<SegmentInfo>, Vec<DumpEntry>)>;

    fn dump_bytes(label: &str, bytes: &[u8]) -> (PathBuf, Dumped) {
        let dir = temp_dir(label);
        let path = dir.join("00000000000000000100.log");
        std::fs::write(&path, bytes).unwrap();
        let got =
            SegmentDump::open(&path).and_then(|d| Ok((d.header().copied(), d.frames().collect::<Result<Vec<_>>>()?)));
        (dir, got)
    }

    fn end_of(entries: &[DumpEntry]) -> (u64, SegmentEnd) {
        match entries.last() {
            Some(DumpEntry::End { position, end }) => (*position, end.clone()),
            other => panic!("the last entry is not an end: {other:?}"),
        }
    }

    fn frames_of(entries: &[DumpEntry]) -> Vec<&DumpedFrame> {
        entries.iter().filter_map(|e| if let DumpEntry::Frame(f) = e { Some(f) } else { None }).collect()
    }

    #[test]
    fn dumps_every_frame_and_ends_at_the_end_of_a_trimmed_file() {
        let (bytes, bounds) = three_frames(0);
        let (dir, got) = dump_bytes("trimmed", &bytes);
        let (info, entries) = got.unwrap();
        let info = info.expect("a header");
        assert_eq!(
            info,
            SegmentInfo { topic_id: [3; 16], partition: 2, base_offset: 100, epoch: 1, base_timestamp: 1_000 }
        );
        assert_eq!(info.topic_id_hex(), "03".repeat(16));
        let frames = frames_of(&entries);
        let shape: Vec<_> =
            frames.iter().map(|f| (f.position, f.len, f.base_offset, f.last_offset, f.record_count)).collect();
        assert_eq!(
            shape,
            [
                (bounds[0].0 as u64, bounds[0].1 as u32, 100, 101, 2),
                (bounds[1].0 as u64, bounds[1].1 as u32, 102, 102, 1),
                (bounds[2].0 as u64, bounds[2].1 as u32, 103, 103, 1),
            ]
        );
        assert_eq!((frames[0].base_timestamp, frames[0].max_timestamp), (1_001, 1_003));
        assert_eq!(end_of(&entries), (bytes.len() as u64, SegmentEnd::EndOfFile));
        let records = frames[0].records();
        assert_eq!(records.len(), 2);
        assert_eq!((records[1].offset, records[1].timestamp), (101, 1_003));
        assert_eq!(records[1].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(records[1].value.as_deref(), Some(&b"b"[..]));
        assert_eq!(records[1].headers, [("h".to_string(), b"x".to_vec())]);
        let tombstone = &frames[1].records()[0];
        assert_eq!((tombstone.key.as_deref(), tombstone.value.as_deref()), (Some(&b"gone"[..]), None));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn zero_filled_tail_is_unwritten_space_not_damage() {
        let (bytes, bounds) = three_frames(4096);
        let (dir, got) = dump_bytes("zeros", &bytes);
        let (_, entries) = got.unwrap();
        assert_eq!(frames_of(&entries).len(), 3);
        let end = bounds[2].0 + bounds[2].1;
        assert_eq!(end_of(&entries), (end as u64, SegmentEnd::Unwritten));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn flipped_byte_in_a_middle_frame_is_corrupt_at_its_position() {
        let (mut bytes, bounds) = three_frames(4096);
        let (pos, len) = bounds[1];
        bytes[pos + len - 2] ^= 0x01;
        let (dir, got) = dump_bytes("middle", &bytes);
        let (_, entries) = got.unwrap();
        assert_eq!(frames_of(&entries).len(), 1);
        let (at, end) = end_of(&entries);
        assert_eq!(at, pos as u64);
        assert!(end.is_damage());
        assert!(end.to_string().contains("CRC mismatch"), "{end}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn failed_last_frame_before_zeros_is_incomplete_not_damage() {
        let (mut bytes, bounds) = three_frames(4096);
        let (pos, len) = bounds[2];
        bytes[pos + len - 1] ^= 0x20;
        let (dir, got) = dump_bytes("incomplete", &bytes);
        let (_, entries) = got.unwrap();
        assert_eq!(frames_of(&entries).len(), 2);
        let (at, end) = end_of(&entries);
        assert_eq!(at, pos as u64);
        assert!(matches!(&end, SegmentEnd::Incomplete { reason } if reason.contains("CRC")), "{end:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn failed_last_frame_at_the_end_of_a_trimmed_file_is_corrupt() {
        let (mut bytes, bounds) = three_frames(0);
        let (pos, len) = bounds[2];
        bytes[pos + len - 1] ^= 0x20;
        let (dir, got) = dump_bytes("sealed-last", &bytes);
        let (_, entries) = got.unwrap();
        let (at, end) = end_of(&entries);
        assert_eq!(at, pos as u64);
        assert!(end.is_damage() && end.to_string().contains("end of the file"), "{end}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn data_after_zero_space_is_corrupt() {
        let (mut bytes, bounds) = three_frames(4096);
        let end = bounds[2].0 + bounds[2].1;
        bytes[end + 1000] = 7;
        let (dir, got) = dump_bytes("garbage-after", &bytes);
        let (_, entries) = got.unwrap();
        let (at, found) = end_of(&entries);
        assert_eq!(at, end as u64);
        assert!(matches!(&found, SegmentEnd::Corrupt { reason } if reason.contains(&format!("{}", end + 1000))));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn frame_cut_short_by_the_end_of_the_file_is_corrupt() {
        let (mut bytes, bounds) = three_frames(0);
        bytes.truncate(bytes.len() - 1);
        let (dir, got) = dump_bytes("cut", &bytes);
        let (_, entries) = got.unwrap();
        let (at, end) = end_of(&entries);
        assert_eq!(at, bounds[2].0 as u64);
        assert!(end.is_damage() && end.to_string().contains("cut short"), "{end}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_frame_repeated_out_of_sequence_is_corrupt() {
        let (mut bytes, bounds) = three_frames(0);
        let (pos, len) = bounds[0];
        let first = bytes[pos..pos + len].to_vec();
        bytes.extend_from_slice(&first);
        let (dir, got) = dump_bytes("sequence", &bytes);
        let (_, entries) = got.unwrap();
        assert_eq!(frames_of(&entries).len(), 3);
        let (_, end) = end_of(&entries);
        assert!(end.is_damage() && end.to_string().contains("out of sequence"), "{end}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_frame_larger_than_a_read_is_read_whole() {
        let big = vec![9u8; CHUNK + CHUNK / 2];
        let (bytes, _) = segment(&[vec![Record::new("small")], vec![Record::new(&big[..])]], 100);
        let (dir, got) = dump_bytes("big", &bytes);
        let (_, entries) = got.unwrap();
        let frames = frames_of(&entries);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1].records()[0].value.as_deref().map(<[u8]>::len), Some(big.len()));
        assert_eq!(end_of(&entries).1, SegmentEnd::Unwritten);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn files_that_are_not_segments_are_typed_errors() {
        let v1 = {
            let mut b = vec![0u8; 64];
            b[0] = 9;
            b[12] = 0xB1;
            b
        };
        let mut bad_crc = HEADER.encode().to_vec();
        bad_crc[30] ^= 1;
        for (label, bytes) in [
            ("text", b"this is a text file, not a segment".to_vec()),
            ("short", HEADER.encode()[..40].to_vec()),
            ("badcrc", bad_crc),
        ] {
            let (dir, got) = dump_bytes(label, &bytes);
            assert!(matches!(got, Err(Error::CorruptMetadata { .. })), "{label}: {got:?}");
            std::fs::remove_dir_all(dir).unwrap();
        }
        let (dir, got) = dump_bytes("v1", &v1);
        assert!(matches!(got, Err(Error::UnsupportedFormat { found: 1, .. })), "{got:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_segment_with_nothing_written_has_no_header_and_ends_at_once() {
        for (label, bytes, want) in
            [("empty", Vec::new(), SegmentEnd::EndOfFile), ("zeros", vec![0u8; 10_000], SegmentEnd::Unwritten)]
        {
            let (dir, got) = dump_bytes(label, &bytes);
            let (info, entries) = got.unwrap();
            assert_eq!(info, None, "{label}");
            assert_eq!(end_of(&entries), (0, want), "{label}");
            assert_eq!(entries.len(), 1);
            std::fs::remove_dir_all(dir).unwrap();
        }
        let mut bytes = vec![0u8; 10_000];
        bytes[5_000] = 1;
        let (dir, got) = dump_bytes("zero-header-data", &bytes);
        let (_, end) = end_of(&got.unwrap().1);
        assert!(end.is_damage() && end.to_string().contains("5000"), "{end}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_symlinked_segment_is_refused_and_a_directory_is_not_a_segment() {
        let (bytes, _) = three_frames(0);
        let dir = temp_dir("symlink");
        let real = dir.join("real.log");
        std::fs::write(&real, &bytes).unwrap();
        let link = dir.join("link.log");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(matches!(SegmentDump::open(&link), Err(Error::Symlink { .. })));
        assert!(matches!(SegmentDump::open(&dir), Err(Error::Io { .. })));
        assert!(matches!(SegmentDump::open(dir.join("missing.log")), Err(Error::Io { .. })));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn random_bytes_never_panic_the_dump() {
        // A loop of seeded pseudo-random files of every small length, beside
        // the proptest below: garbage alone, and garbage after a valid header.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let dir = temp_dir("random");
        let path = dir.join("random.log");
        for i in 0..300usize {
            let mut bytes: Vec<u8> = (0..i * 3)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            if i % 2 == 1 {
                bytes.splice(0..0, HEADER.encode());
            }
            std::fs::write(&path, &bytes).unwrap();
            if let Ok(dump) = SegmentDump::open(&path) {
                let entries: Vec<_> = dump.frames().collect::<Result<_>>().unwrap();
                assert!(matches!(entries.last(), Some(DumpEntry::End { .. })));
            }
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn arbitrary_files_give_an_error_or_frames_then_an_end(
            garbage in proptest::collection::vec(any::<u8>(), 0..400),
            with_header in any::<bool>(),
            flip in any::<prop::sample::Index>(),
        ) {
            let (mut bytes, _) = three_frames(64);
            if with_header {
                let at = flip.index(bytes.len());
                bytes[at] ^= 0x5A;
                bytes.extend_from_slice(&garbage);
            } else {
                bytes = garbage;
            }
            let (dir, got) = dump_bytes("prop", &bytes);
            if let Ok((_, entries)) = got {
                prop_assert!(matches!(entries.last(), Some(DumpEntry::End { .. })), "no end: {:?}", entries.last());
                for f in frames_of(&entries) {
                    prop_assert_eq!(f.records().len(), f.record_count as usize);
                }
            }
            std::fs::remove_dir_all(dir).unwrap();
        }
    }
}
