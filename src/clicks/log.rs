//! The click log: embedded mode's click queue, on disk. The redirect
//! appends each click to an in-memory buffer (no I/O, no waiting); a flusher
//! thread writes that buffer to the current segment file every few
//! milliseconds (no fsync: a killed process keeps what reached the page
//! cache, so SIGKILL loses at most one flush interval); the batch writer
//! reads the segments in order and, once a batch is stored, moves a
//! checkpoint past it and deletes segments it has finished. On start the
//! log is replayed from the checkpoint; the store skips event ids it already
//! has, so a replay never counts a click twice.
//!
//! Above the writer's pace the backlog grows on disk, not in memory: the
//! only reasons to drop a click are the byte bound (`--click-log-max-bytes`)
//! and a disk that refuses writes for long enough to fill the in-memory
//! buffer.
//!
//! Layout of `DIR`: segments `{seq:016x}.log`, each a run of records
//! `len: u32 LE | crc32(payload): u32 LE | payload` (payload: a `Record`
//! in postcard), and `checkpoint` (next segment and offset to read, with a
//! CRC; written in place after each stored batch).
//!
//! The client's address never reaches the disk: before a click is written,
//! [`Enricher::locate`] turns it into the location and the day's salted
//! visitor hash (the salt lives in memory only, so a replay after a crash
//! must not need it again).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use serde::{Deserialize, Serialize};

use super::drain::ClickSource;
use super::enrich::Enricher;
use super::sink::{ClickRef, ClickSink};
use crate::domain::{ClickEvent, LinkId, Located, Route, Utm};
use crate::metrics::names;

/// A click as the log keeps it: the [`ClickEvent`] without the address,
/// with what enrichment takes from it instead.
#[derive(Serialize)]
struct RecordRef<'a> {
    event_id: uuid::Uuid,
    link_id: LinkId,
    at: i64,
    visitor: i64,
    country: Option<&'a str>,
    city: Option<&'a str>,
    user_agent: Option<&'a str>,
    referrer: Option<&'a str>,
    utm: &'a Utm,
    region: &'a str,
    withheld: bool,
    rule: Option<&'a str>,
    variant: Option<&'a str>,
}

/// [`RecordRef`] read back (same fields, same order).
#[derive(Deserialize)]
struct Record {
    event_id: uuid::Uuid,
    link_id: LinkId,
    at: i64,
    visitor: i64,
    country: Option<String>,
    city: Option<String>,
    user_agent: Option<String>,
    referrer: Option<String>,
    utm: Utm,
    region: String,
    withheld: bool,
    rule: Option<String>,
    variant: Option<String>,
}

/// A record as logs written before routes were recorded hold it: a
/// [`Record`] without its last two fields (read after an upgrade).
#[derive(Deserialize)]
struct RecordV1 {
    event_id: uuid::Uuid,
    link_id: LinkId,
    at: i64,
    visitor: i64,
    country: Option<String>,
    city: Option<String>,
    user_agent: Option<String>,
    referrer: Option<String>,
    utm: Utm,
    region: String,
    withheld: bool,
}

impl From<RecordV1> for Record {
    fn from(r: RecordV1) -> Record {
        Record {
            event_id: r.event_id,
            link_id: r.link_id,
            at: r.at,
            visitor: r.visitor,
            country: r.country,
            city: r.city,
            user_agent: r.user_agent,
            referrer: r.referrer,
            utm: r.utm,
            region: r.region,
            withheld: r.withheld,
            rule: None,
            variant: None,
        }
    }
}

impl Record {
    /// Reads a payload, written by this version or an older one.
    fn parse(payload: &[u8]) -> Option<Record> {
        match postcard::take_from_bytes::<Record>(payload) {
            Ok((record, [])) => Some(record),
            _ => match postcard::take_from_bytes::<RecordV1>(payload) {
                Ok((record, [])) => Some(record.into()),
                _ => None,
            },
        }
    }

    fn into_event(self) -> ClickEvent {
        ClickEvent {
            event_id: self.event_id,
            link_id: self.link_id,
            at: self.at,
            ip: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            user_agent: self.user_agent,
            referrer: self.referrer,
            utm: self.utm,
            region: self.region,
            withheld: self.withheld,
            located: Some(Located {
                visitor: self.visitor,
                country: self.country,
                city: self.city,
            }),
            route: Route {
                rule: self.rule,
                variant: self.variant,
            },
        }
    }
}

/// A segment is closed and the next one started past this size.
const SEGMENT_BYTES: u64 = 32 << 20;
/// The flusher is woken early once this much waits in memory.
const WAKE_BYTES: usize = 256 << 10;
/// Most bytes held in memory while the disk refuses writes; clicks beyond it
/// are dropped (and counted).
const MAX_PENDING_BYTES: usize = 64 << 20;
/// Record header: length and CRC.
const HEADER: usize = 8;
/// Most bytes read from a segment at once.
const READ_CHUNK: usize = 1 << 20;
/// A record longer than this is corrupt (clicks are a few hundred bytes).
const MAX_RECORD: usize = 64 << 10;

/// How the click log is set up.
#[derive(Debug, Clone)]
pub struct LogConfig {
    pub dir: PathBuf,
    /// Most bytes of clicks on disk and in memory; `0`: no bound but the
    /// disk's.
    pub max_bytes: u64,
    /// How often the in-memory buffer is written to the segment file: the
    /// most a SIGKILL can lose.
    pub flush_every: Duration,
}

/// A place in the log: segment and byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
struct Pos {
    seq: u64,
    offset: u64,
}

struct Shared {
    dir: PathBuf,
    max_bytes: u64,
    flush_every: Duration,
    /// Records appended but not yet written to the segment file.
    pending: Mutex<Vec<u8>>,
    /// Bytes written to segments that are not yet deleted.
    disk_bytes: AtomicU64,
    /// How far the flusher has written (complete bytes, maybe a partial
    /// record at the end while the disk refuses the rest).
    written: Mutex<Pos>,
    wrote: Notify,
    /// Clicks in the log (memory and disk) not yet stored.
    backlog: AtomicI64,
    /// `at` of the oldest click handed to the writer and not yet stored
    /// (0: none).
    oldest_at: AtomicI64,
    closed: AtomicBool,
    /// The flusher has written its last bytes and ended.
    flushed: AtomicBool,
    flusher: Mutex<Option<thread::Thread>>,
    dropped: metrics::Counter,
    refusing: AtomicBool,
}

/// The redirect's end of the log (a [`ClickSink`]).
pub struct ClickLog {
    shared: Arc<Shared>,
    enricher: Arc<Enricher>,
    flusher: Mutex<Option<JoinHandle<()>>>,
}

/// The batch writer's end of the log (a [`ClickSource`]).
pub struct LogReader {
    shared: Arc<Shared>,
    /// Next byte to read (once the clicks handed out are stored: the
    /// checkpoint).
    read: Pos,
    /// The first segment not yet deleted.
    first_kept: u64,
    /// Clicks handed out since the last commit.
    handed: u64,
    file: Option<(u64, File)>,
    checkpoint: File,
    chunk: Vec<u8>,
    closing: bool,
}

/// What opening the log found.
#[derive(Debug, Clone, Copy, Default)]
pub struct Recovered {
    /// Clicks written before the last stop and not yet stored.
    pub clicks: u64,
    /// Bytes of a torn last record (a crash mid-write), cut off.
    pub torn_bytes: u64,
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.log"))
}

fn segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut seqs = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(hex) = name.strip_suffix(".log")
            && hex.len() == 16
            && let Ok(seq) = u64::from_str_radix(hex, 16)
        {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

fn read_checkpoint(file: &File) -> Option<Pos> {
    let mut b = [0u8; 20];
    file.read_exact_at(&mut b, 0).ok()?;
    let crc = u32::from_le_bytes(b[16..20].try_into().ok()?);
    (crc32fast::hash(&b[..16]) == crc).then(|| Pos {
        seq: u64::from_le_bytes(b[0..8].try_into().unwrap_or_default()),
        offset: u64::from_le_bytes(b[8..16].try_into().unwrap_or_default()),
    })
}

fn write_checkpoint(file: &File, pos: Pos) -> io::Result<()> {
    let mut b = [0u8; 20];
    b[0..8].copy_from_slice(&pos.seq.to_le_bytes());
    b[8..16].copy_from_slice(&pos.offset.to_le_bytes());
    let crc = crc32fast::hash(&b[..16]);
    b[16..20].copy_from_slice(&crc.to_le_bytes());
    file.write_all_at(&b, 0)
}

/// One record parsed off the front of `bytes`.
enum Parsed {
    /// A click and the bytes it took.
    Click(Box<ClickEvent>, usize),
    /// The bytes end inside a record.
    Incomplete,
    /// Not a record (bad length or CRC, or a payload that does not decode).
    Corrupt,
}

fn parse(bytes: &[u8]) -> Parsed {
    if bytes.len() < HEADER {
        return Parsed::Incomplete;
    }
    let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let crc = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if len == 0 || len > MAX_RECORD {
        return Parsed::Corrupt;
    }
    let Some(payload) = bytes.get(HEADER..HEADER + len) else {
        return Parsed::Incomplete;
    };
    if crc32fast::hash(payload) != crc {
        return Parsed::Corrupt;
    }
    match Record::parse(payload) {
        Some(record) => Parsed::Click(Box::new(record.into_event()), HEADER + len),
        None => Parsed::Corrupt,
    }
}

/// The record of `click`, whose address gave `located`.
fn record_of<'a>(click: &ClickRef<'a>, located: &'a Located) -> RecordRef<'a> {
    RecordRef {
        event_id: click.event_id,
        link_id: click.link_id,
        at: click.at,
        visitor: located.visitor,
        country: located.country.as_deref(),
        city: located.city.as_deref(),
        user_agent: click.user_agent,
        referrer: click.referrer,
        utm: click.utm,
        region: click.region,
        withheld: click.withheld,
        rule: click.route.rule,
        variant: click.route.variant,
    }
}

/// Appends one record for `click` to `out`.
fn encode(click: &RecordRef<'_>, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0u8; HEADER]);
    let mut buf = std::mem::take(out);
    buf = match postcard::to_extend(click, buf) {
        Ok(b) => b,
        // Serialising into a Vec cannot fail; should it, nothing is kept.
        Err(_) => {
            out.truncate(start);
            return;
        }
    };
    *out = buf;
    let len = (out.len() - start - HEADER) as u32;
    let crc = crc32fast::hash(&out[start + HEADER..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
}

/// Reads a segment from `from`: the clicks, the end of the last whole record
/// and whether anything after it is not a record.
fn scan(path: &Path, from: u64) -> io::Result<(u64, u64, bool)> {
    let bytes = fs::read(path)?;
    let mut at = (from as usize).min(bytes.len());
    let mut clicks = 0;
    loop {
        match parse(&bytes[at..]) {
            Parsed::Click(_, n) => {
                at += n;
                clicks += 1;
            }
            Parsed::Incomplete => return Ok((clicks, at as u64, at < bytes.len())),
            Parsed::Corrupt => return Ok((clicks, at as u64, true)),
        }
    }
}

impl ClickLog {
    /// Opens (or creates) the log in `config.dir`, cuts off a torn last
    /// record, and starts the flusher. The reader starts at the checkpoint,
    /// so clicks written before a crash are stored again (once).
    pub fn open(
        config: &LogConfig,
        enricher: Arc<Enricher>,
    ) -> io::Result<(ClickLog, LogReader, Recovered)> {
        fs::create_dir_all(&config.dir)?;
        let checkpoint = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(config.dir.join("checkpoint"))?;
        let seqs = segments(&config.dir)?;
        let first = seqs.first().copied().unwrap_or(0);
        let mut start = read_checkpoint(&checkpoint).unwrap_or(Pos {
            seq: first,
            offset: 0,
        });
        if !seqs.contains(&start.seq) {
            // Its segment is gone (finished and deleted): read from the
            // next one there is.
            start = Pos {
                seq: seqs.iter().copied().find(|s| *s > start.seq).unwrap_or(0),
                offset: 0,
            };
        }
        let mut recovered = Recovered::default();
        let mut disk = 0;
        for &seq in &seqs {
            let path = segment_path(&config.dir, seq);
            if seq < start.seq {
                fs::remove_file(&path)?;
                continue;
            }
            let from = if seq == start.seq { start.offset } else { 0 };
            let (clicks, end, junk) = scan(&path, from)?;
            recovered.clicks += clicks;
            if junk {
                let len = fs::metadata(&path)?.len();
                recovered.torn_bytes += len - end;
                OpenOptions::new().write(true).open(&path)?.set_len(end)?;
                tracing::warn!(segment = %path.display(), bytes = len - end, "cut a torn or corrupt end off the click log");
            }
            disk += end;
        }
        // New clicks go to a fresh segment after every one there is.
        let next = seqs.last().map_or(0, |s| s + 1);
        let start = if seqs.iter().any(|s| *s >= start.seq) {
            start
        } else {
            Pos {
                seq: next,
                offset: 0,
            }
        };
        let shared = Arc::new(Shared {
            dir: config.dir.clone(),
            max_bytes: config.max_bytes,
            flush_every: config.flush_every.max(Duration::from_millis(1)),
            pending: Mutex::new(Vec::new()),
            disk_bytes: AtomicU64::new(disk),
            written: Mutex::new(Pos {
                seq: next,
                offset: 0,
            }),
            wrote: Notify::new(),
            backlog: AtomicI64::new(recovered.clicks as i64),
            oldest_at: AtomicI64::new(0),
            closed: AtomicBool::new(false),
            flushed: AtomicBool::new(false),
            flusher: Mutex::new(None),
            dropped: metrics::counter!(names::CLICKS_DROPPED),
            refusing: AtomicBool::new(false),
        });
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(&config.dir, next))?;
        let flusher = {
            let shared = shared.clone();
            thread::Builder::new()
                .name("hop-click-log".into())
                .spawn(move || flush_loop(&shared, next, file))?
        };
        *shared.flusher.lock() = Some(flusher.thread().clone());
        let reader = LogReader {
            shared: shared.clone(),
            read: start,
            first_kept: start.seq,
            handed: 0,
            file: None,
            checkpoint,
            chunk: Vec::new(),
            closing: false,
        };
        Ok((
            ClickLog {
                shared,
                enricher,
                flusher: Mutex::new(Some(flusher)),
            },
            reader,
            recovered,
        ))
    }

    /// Clicks in the log not yet stored.
    pub fn backlog(&self) -> u64 {
        self.shared.backlog.load(Ordering::Relaxed).max(0) as u64
    }

    /// Stops taking clicks, writes what is buffered and ends the flusher.
    /// The reader then reads to the end and finishes.
    pub fn close(&self) {
        self.shared.close();
        if let Some(handle) = self.flusher.lock().take() {
            let _ = handle.join();
        }
    }
}

impl Drop for ClickLog {
    fn drop(&mut self) {
        self.close();
    }
}

impl Shared {
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Some(t) = &*self.flusher.lock() {
            t.unpark();
        }
    }

    fn drop_click(&self) -> bool {
        self.dropped.increment(1);
        if !self.refusing.swap(true, Ordering::Relaxed) {
            tracing::error!(
                dir = %self.dir.display(),
                "the click log is full (--click-log-max-bytes, or the disk): dropping clicks"
            );
        }
        false
    }
}

impl ClickSink for ClickLog {
    fn submit(&self, click: ClickRef<'_>) -> bool {
        let shared = &*self.shared;
        if shared.closed.load(Ordering::Acquire) {
            return shared.drop_click();
        }
        let located = self.enricher.locate_at(
            click.link_id,
            click.ip,
            click.user_agent.unwrap_or(""),
            click.at,
            click.location,
        );
        let record = record_of(&click, &located);
        let mut pending = shared.pending.lock();
        let on_disk = shared.disk_bytes.load(Ordering::Relaxed);
        if pending.len() >= MAX_PENDING_BYTES
            || (shared.max_bytes > 0 && on_disk + pending.len() as u64 >= shared.max_bytes)
        {
            drop(pending);
            return shared.drop_click();
        }
        encode(&record, &mut pending);
        let wake = pending.len() >= WAKE_BYTES;
        drop(pending);
        shared.backlog.fetch_add(1, Ordering::Relaxed);
        if wake && let Some(t) = &*shared.flusher.lock() {
            t.unpark();
        }
        true
    }
}

/// The flusher thread: every `flush_every`, moves the buffered records to
/// the segment file; rotates segments; on close, writes the rest and ends.
fn flush_loop(shared: &Shared, mut seq: u64, mut file: File) {
    let backlog = metrics::gauge!(names::QUEUE_DEPTH);
    let oldest = metrics::gauge!(names::BACKLOG_OLDEST);
    let bytes = metrics::gauge!(names::BACKLOG_BYTES);
    let mut out: Vec<u8> = Vec::new();
    let mut size = 0u64;
    let mut failing = false;
    loop {
        let closed = shared.closed.load(Ordering::Acquire);
        if !closed {
            thread::park_timeout(shared.flush_every);
        }
        {
            let mut pending = shared.pending.lock();
            if out.is_empty() {
                std::mem::swap(&mut out, &mut *pending);
            } else {
                // Bytes the disk refused last time go first.
                out.extend_from_slice(&pending);
                pending.clear();
            }
        }
        let mut done = 0;
        while done < out.len() {
            match file.write(&out[done..]) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if !failing {
                        tracing::error!(error = %e, "writing the click log failed; retrying");
                    }
                    failing = true;
                    break;
                }
            }
        }
        if done > 0 {
            size += done as u64;
            shared.disk_bytes.fetch_add(done as u64, Ordering::Relaxed);
            *shared.written.lock() = Pos { seq, offset: size };
            shared.wrote.notify_one();
        }
        if done == out.len() {
            if failing {
                tracing::info!("writing the click log works again");
                failing = false;
            }
            shared.refusing.store(false, Ordering::Relaxed);
            out.clear();
            if out.capacity() > 4 * WAKE_BYTES {
                out.shrink_to(WAKE_BYTES);
            }
        } else {
            out.drain(..done);
        }
        // A new segment once this one is big (and whole: never mid-record).
        if size >= SEGMENT_BYTES && out.is_empty() {
            match OpenOptions::new()
                .create(true)
                .append(true)
                .open(segment_path(&shared.dir, seq + 1))
            {
                Ok(next) => {
                    seq += 1;
                    size = 0;
                    file = next;
                    *shared.written.lock() = Pos { seq, offset: 0 };
                    shared.wrote.notify_one();
                }
                Err(e) => tracing::error!(error = %e, "starting a click log segment failed"),
            }
        }
        let now = chrono::Utc::now().timestamp_millis();
        let at = shared.oldest_at.load(Ordering::Relaxed);
        oldest.set(if at > 0 {
            (now - at).max(0) as f64 / 1000.0
        } else {
            0.0
        });
        backlog.set(shared.backlog.load(Ordering::Relaxed).max(0) as f64);
        bytes.set(shared.disk_bytes.load(Ordering::Relaxed) as f64 + out.len() as f64);
        if closed && (out.is_empty() || failing) {
            if !out.is_empty() {
                tracing::error!(
                    bytes = out.len(),
                    "click log: the disk refused the last clicks"
                );
            }
            shared.flushed.store(true, Ordering::Release);
            shared.wrote.notify_one();
            return;
        }
    }
}

impl LogReader {
    /// Reads up to `limit` clicks that are written; 0 if none are yet.
    fn read_some(&mut self, out: &mut Vec<ClickEvent>, limit: usize) -> io::Result<usize> {
        let mut got = 0;
        while got < limit {
            let written = *self.shared.written.lock();
            if self.read >= written {
                break;
            }
            // A segment before the one being written is finished: its end
            // is its length.
            let finished = self.read.seq < written.seq;
            if self
                .file
                .as_ref()
                .is_none_or(|(seq, _)| *seq != self.read.seq)
            {
                match File::open(segment_path(&self.shared.dir, self.read.seq)) {
                    Ok(f) => self.file = Some((self.read.seq, f)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound && finished => {
                        self.next_segment();
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            let file = &self.file.as_ref().expect("opened above").1;
            let end = if finished {
                file.metadata()?.len()
            } else {
                written.offset
            };
            if self.read.offset >= end {
                if finished {
                    self.next_segment();
                    continue;
                }
                break;
            }
            let want = (end - self.read.offset).min(READ_CHUNK as u64) as usize;
            self.chunk.resize(want, 0);
            let n = read_at_most(file, &mut self.chunk, self.read.offset)?;
            let mut at = 0;
            let mut corrupt = false;
            while got < limit {
                match parse(&self.chunk[at..n]) {
                    Parsed::Click(click, len) => {
                        crate::priority::share_core();
                        if self.handed == 0 {
                            self.shared.oldest_at.store(click.at, Ordering::Relaxed);
                        }
                        out.push(*click);
                        at += len;
                        got += 1;
                        self.handed += 1;
                    }
                    Parsed::Incomplete => {
                        // A record ends past what there is: the flusher is
                        // still writing it, unless the segment is finished.
                        corrupt = finished && at == 0;
                        break;
                    }
                    Parsed::Corrupt => {
                        corrupt = true;
                        break;
                    }
                }
            }
            self.read.offset += at as u64;
            if corrupt {
                // Cannot happen to bytes this process wrote unless the disk
                // corrupts them: skip what is there of this segment.
                tracing::error!(
                    segment = self.read.seq,
                    offset = self.read.offset,
                    "unreadable record in the click log; skipping it"
                );
                if finished {
                    self.next_segment();
                } else {
                    self.read.offset = end;
                }
                continue;
            }
            if at == 0 {
                break;
            }
        }
        Ok(got)
    }

    fn next_segment(&mut self) {
        self.read = Pos {
            seq: self.read.seq + 1,
            offset: 0,
        };
        self.file = None;
    }
}

/// Reads what there is at `offset`, up to `buf.len()` bytes.
fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl ClickSource for LogReader {
    async fn recv_many(&mut self, out: &mut Vec<ClickEvent>, limit: usize) -> usize {
        let shared = self.shared.clone();
        loop {
            let wrote = shared.wrote.notified();
            match self.read_some(out, limit) {
                Ok(0) => {}
                Ok(n) => return n,
                Err(e) => {
                    tracing::error!(error = %e, "reading the click log failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
            if self.closing && self.shared.flushed.load(Ordering::Acquire) {
                // The flusher has ended: one more look, then the log is done.
                return self.read_some(out, limit).unwrap_or(0);
            }
            if self.closing {
                tokio::time::timeout(self.shared.flush_every, wrote)
                    .await
                    .ok();
            } else {
                wrote.await;
            }
        }
    }

    fn close(&mut self) {
        self.closing = true;
        self.shared.close();
    }

    fn len(&self) -> usize {
        self.shared.backlog.load(Ordering::Relaxed).max(0) as usize
    }

    fn stored(&mut self) {
        if let Err(e) = write_checkpoint(&self.checkpoint, self.read) {
            tracing::warn!(error = %e, "writing the click log checkpoint failed");
        }
        self.shared
            .backlog
            .fetch_sub(self.handed as i64, Ordering::Relaxed);
        self.handed = 0;
        self.shared.oldest_at.store(0, Ordering::Relaxed);
        // Segments before the checkpoint's are finished (segments are
        // numbered without gaps).
        while self.first_kept < self.read.seq {
            let path = segment_path(&self.shared.dir, self.first_kept);
            let len = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if fs::remove_file(&path).is_ok() {
                self.shared.disk_bytes.fetch_sub(len, Ordering::Relaxed);
            }
            self.first_kept += 1;
        }
    }

    fn given_up(&mut self) -> bool {
        // Not lost: the clicks stay in the log, and the next start stores
        // them. Reading on would move the checkpoint past them.
        tracing::warn!(
            clicks = self.shared.backlog.load(Ordering::Relaxed),
            dir = %self.shared.dir.display(),
            "clicks left in the click log for the next start"
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{LinkId, Utm};

    fn click(n: u128, ua: &str) -> ClickEvent {
        ClickEvent {
            event_id: uuid::Uuid::from_u128(n + 1),
            link_id: LinkId(7),
            at: 1_700_000_000_000 + n as i64,
            ip: "203.0.113.9".parse().unwrap(),
            user_agent: Some(ua.to_owned()),
            referrer: n
                .is_multiple_of(2)
                .then(|| "https://news.example/a".to_owned()),
            utm: Utm {
                source: Some("mail".into()),
                ..Utm::default()
            },
            region: "eu".into(),
            withheld: n.is_multiple_of(3),
            located: None,
            route: if n.is_multiple_of(4) {
                crate::domain::Route {
                    rule: Some("r1".into()),
                    variant: n.is_multiple_of(8).then(|| "b".into()),
                }
            } else {
                crate::domain::Route::default()
            },
        }
    }

    /// A record as logs before routes hold it is still read, routeless;
    /// a record with a route keeps it.
    #[test]
    fn records_of_the_previous_layout_are_read() {
        #[derive(Serialize)]
        struct V1<'a> {
            event_id: uuid::Uuid,
            link_id: LinkId,
            at: i64,
            visitor: i64,
            country: Option<&'a str>,
            city: Option<&'a str>,
            user_agent: Option<&'a str>,
            referrer: Option<&'a str>,
            utm: &'a Utm,
            region: &'a str,
            withheld: bool,
        }
        let utm = Utm::default();
        let old = postcard::to_allocvec(&V1 {
            event_id: uuid::Uuid::from_u128(9),
            link_id: LinkId(7),
            at: 5,
            visitor: 11,
            country: Some("DE"),
            city: None,
            user_agent: Some("ua"),
            referrer: None,
            utm: &utm,
            region: "eu",
            withheld: false,
        })
        .unwrap();
        let record = Record::parse(&old).expect("an old record is read");
        let event = record.into_event();
        assert_eq!(event.event_id, uuid::Uuid::from_u128(9));
        assert_eq!(
            event.located.as_ref().unwrap().country.as_deref(),
            Some("DE")
        );
        assert!(event.route.is_none());

        let c = click(8, "ua");
        let located = Located::default();
        let new = postcard::to_allocvec(&record_of(&c.borrowed(), &located)).unwrap();
        let back = Record::parse(&new).unwrap().into_event();
        assert_eq!(back.route.rule.as_deref(), Some("r1"));
        assert_eq!(back.route.variant.as_deref(), Some("b"));
        // Cut short, neither layout reads it.
        assert!(Record::parse(&new[..new.len() - 1]).is_none());
    }

    fn enricher() -> Arc<Enricher> {
        static ENRICHER: std::sync::LazyLock<Arc<Enricher>> =
            std::sync::LazyLock::new(|| Arc::new(Enricher::new(None)));
        ENRICHER.clone()
    }

    fn open(config: &LogConfig) -> (ClickLog, LogReader, Recovered) {
        ClickLog::open(config, enricher()).unwrap()
    }

    /// What is stored of each click.
    fn stored(clicks: &[ClickEvent]) -> Vec<crate::domain::EnrichedClick> {
        clicks.iter().map(|c| enricher().enrich(c)).collect()
    }

    fn config(dir: &Path) -> LogConfig {
        LogConfig {
            dir: dir.to_owned(),
            max_bytes: 0,
            flush_every: Duration::from_millis(2),
        }
    }

    #[test]
    fn a_record_holds_no_address_and_stores_as_the_click_would() {
        let c = click(4, "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0");
        let located = enricher().locate(
            c.link_id,
            c.ip,
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
            c.at,
        );
        let mut out = Vec::new();
        encode(&record_of(&c.borrowed(), &located), &mut out);
        assert!(
            !out.windows(4).any(|w| w == [203, 0, 113, 9]),
            "the address is in the record"
        );
        match parse(&out) {
            Parsed::Click(back, n) => {
                assert_eq!(n, out.len());
                assert!(back.ip.is_unspecified());
                assert_eq!(stored(&[*back]), stored(&[c]));
            }
            _ => panic!("did not parse"),
        }
        // A torn record is incomplete, a flipped bit corrupt.
        assert!(matches!(parse(&out[..out.len() - 1]), Parsed::Incomplete));
        let mut bad = out.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(matches!(parse(&bad), Parsed::Corrupt));
    }

    async fn read_all(reader: &mut LogReader, want: usize) -> Vec<ClickEvent> {
        let mut got = Vec::new();
        while got.len() < want {
            let mut batch = Vec::new();
            let n = tokio::time::timeout(Duration::from_secs(5), reader.recv_many(&mut batch, 100))
                .await
                .expect("the log delivers what was appended");
            assert_eq!(n, batch.len());
            got.extend(batch);
            reader.stored();
        }
        got
    }

    #[tokio::test]
    async fn clicks_come_out_in_order_and_survive_a_restart_from_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let (log, mut reader, rec) = open(&config(dir.path()));
        assert_eq!(rec.clicks, 0);
        let clicks: Vec<ClickEvent> = (0..250).map(|n| click(n, "UA")).collect();
        for c in &clicks {
            assert!(log.submit(c.borrowed()));
        }
        let first = read_all(&mut reader, 120).await;
        assert_eq!(stored(&first), stored(&clicks[..first.len()]));
        // Handed out but not stored: delivered again after a restart.
        let mut unstored = Vec::new();
        reader.recv_many(&mut unstored, 10).await;
        log.close();
        drop((log, reader));
        let (log, mut reader, rec) = open(&config(dir.path()));
        assert_eq!(rec.clicks as usize, 250 - first.len());
        let rest = read_all(&mut reader, 250 - first.len()).await;
        assert_eq!(stored(&rest), stored(&clicks[first.len()..]));
        assert_eq!(log.backlog(), 0);
    }

    #[tokio::test]
    async fn a_torn_last_record_is_cut_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (log, reader, _) = open(&config(dir.path()));
        for n in 0..10 {
            log.submit(click(n, "UA").borrowed());
        }
        log.close();
        drop((log, reader));
        let seg = segments(dir.path()).unwrap()[0];
        let path = segment_path(dir.path(), seg);
        let len = fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let (_log, mut reader, rec) = open(&config(dir.path()));
        assert_eq!(rec.clicks, 9);
        assert!(rec.torn_bytes > 0);
        let got = read_all(&mut reader, 9).await;
        assert_eq!(got.last().unwrap().event_id, click(8, "UA").event_id);
    }

    #[tokio::test]
    async fn segments_roll_over_and_finished_ones_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let (log, mut reader, _) = open(&config(dir.path()));
        // Long user agents fill a segment in a few thousand clicks.
        let ua = "x".repeat(MAX_RECORD / 2);
        let n = (SEGMENT_BYTES as usize / (MAX_RECORD / 2)) + 50;
        for i in 0..n {
            assert!(log.submit(click(i as u128, &ua).borrowed()));
            if i % 500 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let got = read_all(&mut reader, n).await;
        assert_eq!(got.len(), n);
        assert!(
            got.iter()
                .enumerate()
                .all(|(i, c)| c.at == click(i as u128, "").at)
        );
        let left = segments(dir.path()).unwrap();
        assert_eq!(left.len(), 1, "finished segments are deleted: {left:?}");
    }

    #[tokio::test]
    async fn the_byte_bound_drops_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        cfg.max_bytes = 4096;
        let (log, _reader, _) = open(&cfg);
        let accepted = (0..1000)
            .filter(|n| log.submit(click(*n, "UA").borrowed()))
            .count();
        assert!(accepted > 0 && accepted < 100, "{accepted}");
    }
}
