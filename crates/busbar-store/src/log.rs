//! The embedded append-only segmented log.
//!
//! Layout of the store directory:
//! - `00000001.log`, `00000002.log`, …: segments, written in order (format in `codec`).
//!   The one being written usually has a tail of zeros up to the segment size, which its
//!   frames overwrite; every other one ends with its last frame.
//! - `NNNNNNNN.log.next` (`.next.tmp` while being written): the segment the writer will
//!   move to next, written ahead with zeros so that syncs commit no file metadata (see
//!   `prepare`); renamed into place at the roll, removed if left over at open.
//! - `00000001.idx`, …: for each sealed segment (every one but the last), its records
//!   without their bodies, so that opening the store need not read bodies (see `recover`).
//!   Written by a background thread once the segment is sealed, via `NNNNNNNN.idx.tmp`;
//!   deleted with its segment. A missing or damaged index only costs reading its segment.
//! - `catalog.json`: the catalog blob, replaced atomically via `catalog.json.tmp`.
//! - `LOCK`: held with an exclusive advisory lock while a [`LogStore`] is open.
//!
//! Write path: `append` encodes its records into one frame outside any lock, then, under
//! the state mutex, reserves the frame's position (which fixes the [`BodyRef`]s), copies
//! the frame into the pending buffer (a large one is handed over instead) and takes a
//! ticket. One writer thread repeatedly takes everything pending, writes it with one
//! positional write per run of small frames and per large frame,
//! issues one `fdatasync` for the whole group, and resolves every commit up to the last
//! ticket it took (group commit). Moving to the next segment, it cuts the finished one to
//! its last frame and syncs it, then takes the prepared segment or, if it is not ready,
//! creates one and appends to it as before.
//!
//! Reclamation invariant: a segment is deleted only when
//! 1. it is the oldest segment (so every record that could refer to it comes after it),
//! 2. it is not the segment being written, and a later segment already holds durable data,
//! 3. no live message has its body in it, counting only removals that are durable.
//!
//! Deleting it then loses only: enqueues of messages that were since removed (their
//! later `Remove` records are ignored at recovery as unknown), updates and removals of
//! such messages, and `last_seq` information. The latter is carried forward: every
//! segment created by a roll starts with a checkpoint record holding `last_seq` of every
//! entity, and at open a checkpoint is appended to the last segment, so any segment after
//! a deleted one is preceded (or followed, within the survivors) by a checkpoint covering
//! everything deleted. An `Update` can never sit in an older segment than its message's
//! `Enqueue`, so an update of a live message is never lost.

mod codec;
mod commit;
mod prepare;
mod recover;
pub mod repair;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use bytes::Bytes;

pub use commit::LogCommit;

use crate::stats::Counters;
use crate::{
    BodyRef, Durability, EntityId, Record, Recovered, Seq, Store, StoreError, StoreHealth,
    StoreStats,
};
use codec::HEADER_LEN;
use commit::Notifier;
use recover::{remove_index, segment_path};

/// A segment the writer has sealed (synced, never written again), for the indexer.
type Sealed = (u32, Arc<File>);

/// The segment the writer is writing.
struct Current {
    id: u32,
    file: Arc<File>,
    /// The end of its last frame written; beyond it the file holds zeros, if anything.
    end: u64,
}

const CATALOG: &str = "catalog.json";
const CATALOG_TMP: &str = "catalog.json.tmp";
const LOCK: &str = "LOCK";
/// Write buffers kept for reuse by the append path, and the largest one worth keeping.
/// How long relaxed appends may stay written but unsynced when nothing else comes.
const RELAXED_SYNC_DELAY: std::time::Duration = std::time::Duration::from_millis(20);
const POOL_BUFFERS: usize = 4;
/// Pauses between attempts to write while the disk is full.
const NO_SPACE_RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(10);
const NO_SPACE_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(1);
const POOL_BUFFER_MAX: usize = 16 << 20;
/// Frames from this size on are handed to the writer in the buffer they were encoded in.
const ADOPT_FRAME_FROM: usize = 64 * 1024;

/// Options for [`LogStore::open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    pub durability: Durability,
    /// A segment is closed once the next batch would take it past this size; a batch
    /// larger than this gets a segment of its own.
    pub segment_bytes: u64,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            durability: Durability::Sync,
            segment_bytes: 64 << 20,
        }
    }
}

/// A position in the log: (segment, byte offset).
type Pos = (u32, u64);

/// Frames reserved but not yet written, for one segment, contiguous from `start`.
struct Chunk {
    segment: u32,
    start: u64,
    buf: Vec<u8>,
    /// A large frame's own buffer, taken over whole: what follows it goes into a chunk of
    /// its own rather than growing (and so copying) it.
    adopted: bool,
}

#[derive(Default)]
struct State {
    closing: bool,
    poisoned: Option<String>,
    /// The writer is waiting for disk space to write what is pending; appends are refused.
    no_space: Option<String>,
    /// Segment receiving appends and the offset of the next frame in it.
    segment: u32,
    offset: u64,
    segment_has_batches: bool,
    last_seq: HashMap<EntityId, Seq>,
    /// Ticket of the latest append.
    ticket: u64,
    pending: Vec<Chunk>,
    /// Something in `pending` was appended with [`Store::append`] (not relaxed), so the
    /// group must be synced (under `Sync`) before its commits resolve.
    pending_sync: bool,
    pool: Vec<Vec<u8>>,
    writer_idle: bool,
    /// When the first frame of `pending` was appended: the group's commit latency runs
    /// from there.
    pending_since: Option<std::time::Instant>,
    /// Bodies of pending frames, in log order, so they can be read before they are written.
    pending_bodies: VecDeque<(BodyRef, Bytes)>,
    /// Removals appended but not yet durable, by segment of the removed body.
    unsynced_removes: HashMap<u32, u64>,
    /// Everything before this position is written to its file.
    written: Pos,
    files: BTreeMap<u32, Arc<File>>,
    /// Live bodies per segment; holds every existing segment.
    live: BTreeMap<u32, u64>,
}

impl State {
    fn check_open(&self) -> Result<(), StoreError> {
        if self.closing {
            return Err(StoreError::Closed);
        }
        if let Some(msg) = &self.poisoned {
            return Err(StoreError::Poisoned(msg.clone()));
        }
        if let Some(msg) = &self.no_space {
            return Err(StoreError::NoSpace(msg.clone()));
        }
        Ok(())
    }

    fn take_buffer(&mut self) -> Vec<u8> {
        let mut buf = self.pool.pop().unwrap_or_default();
        buf.clear();
        buf
    }

    /// Queues `frame` for writing at `start`. A large frame is taken over whole (`frame`
    /// gets a pooled buffer in exchange) rather than copied; small ones are gathered into
    /// one buffer, written with one call.
    fn push_frame(&mut self, segment: u32, start: u64, frame: &mut Vec<u8>) {
        if frame.len() >= ADOPT_FRAME_FROM {
            let buf = std::mem::replace(frame, self.take_buffer());
            self.pending.push(Chunk {
                segment,
                start,
                buf,
                adopted: true,
            });
            return;
        }
        if let Some(last) = self.pending.last_mut()
            && !last.adopted
            && last.segment == segment
            && last.start + last.buf.len() as u64 == start
        {
            last.buf.extend_from_slice(frame);
            return;
        }
        let mut buf = self.take_buffer();
        buf.extend_from_slice(frame);
        self.pending.push(Chunk {
            segment,
            start,
            buf,
            adopted: false,
        });
    }

    /// Starts the next segment: header, then a checkpoint of `last_seq`.
    fn roll(&mut self) -> Result<(), StoreError> {
        let next = self
            .segment
            .checked_add(1)
            .ok_or_else(|| StoreError::Io("segment numbers exhausted".into()))?;
        let mut buf = self.take_buffer();
        buf.extend_from_slice(&codec::segment_header(next));
        codec::encode_checkpoint(self.last_seq.iter(), &mut buf)?;
        self.offset = buf.len() as u64;
        self.pending.push(Chunk {
            segment: next,
            start: 0,
            buf,
            adopted: false,
        });
        self.segment = next;
        self.segment_has_batches = false;
        self.live.entry(next).or_insert(0);
        Ok(())
    }

    fn recycle(&mut self, batch: &mut Vec<Chunk>) {
        for chunk in batch.drain(..) {
            if self.pool.len() < POOL_BUFFERS && chunk.buf.capacity() <= POOL_BUFFER_MAX {
                self.pool.push(chunk.buf);
            }
        }
    }
}

struct Shared {
    dir: PathBuf,
    durability: Durability,
    segment_bytes: u64,
    state: Mutex<State>,
    work: Condvar,
    notifier: Arc<Notifier>,
    stats: Counters,
    #[cfg(test)]
    fail_writes: std::sync::atomic::AtomicBool,
    /// Fails the sync that ends a group, after its writes.
    #[cfg(test)]
    fail_syncs: std::sync::atomic::AtomicBool,
    /// fdatasyncs of group commits, for tests.
    #[cfg(test)]
    group_syncs: std::sync::atomic::AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing in this crate panics while holding the lock; if something did, the state
        // is still structurally valid and poisoning would only turn one bug into many.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The embedded durable store: a segmented append-only log with group commit.
pub struct LogStore {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
    indexer: Mutex<Option<JoinHandle<()>>>,
    preparer: Mutex<Option<JoinHandle<()>>>,
    catalog_lock: Mutex<()>,
    /// Holds the directory's advisory lock until the store is closed.
    dir_lock: File,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("dir", &self.shared.dir)
            .field("durability", &self.shared.durability)
            .finish_non_exhaustive()
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn read_catalog(dir: &Path) -> Result<Option<Bytes>, StoreError> {
    // A leftover temporary file is a save that never completed.
    match fs::remove_file(dir.join(CATALOG_TMP)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    match fs::read(dir.join(CATALOG)) {
        Ok(data) => Ok(Some(Bytes::from(data))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl LogStore {
    /// Opens (creating if needed) the store in `dir`, replays the log and starts the
    /// writer thread. Fails with [`StoreError::Corrupt`] if acknowledged data is damaged,
    /// and with [`StoreError::Io`] if another process has the directory open.
    pub fn open(dir: &Path, options: LogOptions) -> Result<(LogStore, Recovered), StoreError> {
        fs::create_dir_all(dir)?;
        let lock = lock_dir(dir)?;
        let catalog = read_catalog(dir)?;
        let scan = recover::scan(dir)?;
        let last_seq = scan.last_seq;

        let mut segments = scan.segments;
        if segments.is_empty() {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(segment_path(dir, 1))?;
            file.write_all_at(&codec::segment_header(1), 0)?;
            file.sync_all()?;
            sync_dir(dir)?;
            segments.push(recover::Segment {
                id: 1,
                file,
                len: HEADER_LEN,
            });
        }
        let mut live: BTreeMap<u32, u64> = segments.iter().map(|s| (s.id, 0)).collect();
        // Neighbours in sequence order mostly share a segment: count runs, not messages.
        for run in scan
            .messages
            .chunk_by(|a, b| a.body.segment == b.body.segment)
        {
            *live.entry(run[0].body.segment).or_insert(0) += run.len() as u64;
        }

        let (tail_id, mut tail_len) = match segments.last() {
            Some(s) => (s.id, s.len),
            None => return Err(StoreError::Io("no log segment".into())),
        };
        {
            let tail = segments.last().map(|s| &s.file);
            if let Some(tail) = tail {
                // See the reclamation invariant: this checkpoint lets any older segment go.
                if !last_seq.is_empty() {
                    let mut frame = Vec::new();
                    codec::encode_checkpoint(last_seq.iter(), &mut frame)?;
                    tail.write_all_at(&frame, tail_len)?;
                    tail_len += frame.len() as u64;
                }
                // Also makes durable whatever a killed process left in the page cache.
                tail.sync_data()?;
            }
        }
        let mut deleted = false;
        while let Some((&head, &count)) = live.first_key_value() {
            if head >= tail_id || count != 0 {
                break;
            }
            live.remove(&head);
            segments.retain(|s| s.id != head);
            remove_index(dir, head)?;
            fs::remove_file(segment_path(dir, head))?;
            deleted = true;
        }
        if deleted {
            sync_dir(dir)?;
        }

        // The tail's length includes the checkpoint just written.
        let disk_bytes = segments
            .iter()
            .map(|s| if s.id == tail_id { tail_len } else { s.len })
            .sum();
        let mut files = BTreeMap::new();
        let mut tail_file = None;
        for s in segments {
            let f = Arc::new(s.file);
            if s.id == tail_id {
                tail_file = Some(f.clone());
            }
            files.insert(s.id, f);
        }
        let Some(tail_file) = tail_file else {
            return Err(StoreError::Io("no log segment".into()));
        };

        let messages = scan.messages;

        let state = State {
            closing: false,
            poisoned: None,
            no_space: None,
            segment: tail_id,
            offset: tail_len,
            segment_has_batches: tail_len > HEADER_LEN,
            last_seq: last_seq.clone(),
            ticket: 0,
            pending: Vec::new(),
            pool: Vec::new(),
            pending_sync: false,
            writer_idle: false,
            pending_since: None,
            pending_bodies: VecDeque::new(),
            unsynced_removes: HashMap::new(),
            written: (tail_id, tail_len),
            files,
            live,
        };
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            durability: options.durability,
            segment_bytes: options.segment_bytes,
            state: Mutex::new(state),
            work: Condvar::new(),
            notifier: Arc::new(Notifier::new(0)),
            stats: Counters::with_bytes(disk_bytes),
            #[cfg(test)]
            fail_writes: std::sync::atomic::AtomicBool::new(false),
            #[cfg(test)]
            fail_syncs: std::sync::atomic::AtomicBool::new(false),
            #[cfg(test)]
            group_syncs: std::sync::atomic::AtomicU64::new(0),
        });
        let (sealed_tx, sealed_rx) = mpsc::channel();
        let indexer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("busbar-store-indexer".into())
                .spawn(move || indexer_loop(shared, sealed_rx))?
        };
        let (wanted_tx, wanted_rx) = mpsc::channel();
        let preparer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("busbar-store-preparer".into())
                .spawn(move || prepare::preparer_loop(shared, wanted_rx))?
        };
        let writer = {
            let shared = shared.clone();
            let current = Current {
                id: tail_id,
                file: tail_file,
                end: tail_len,
            };
            std::thread::Builder::new()
                .name("busbar-store-writer".into())
                .spawn(move || writer_loop(shared, current, sealed_tx, wanted_tx))?
        };
        tracing::info!(
            dir = %dir.display(),
            messages = messages.len(),
            last_segment = tail_id,
            segments_from_index = scan.indexed,
            segments_read = scan.scanned,
            "log store opened"
        );
        let store = LogStore {
            shared,
            writer: Mutex::new(Some(writer)),
            indexer: Mutex::new(Some(indexer)),
            preparer: Mutex::new(Some(preparer)),
            catalog_lock: Mutex::new(()),
            dir_lock: lock,
        };
        Ok((
            store,
            Recovered {
                messages,
                last_seq,
                catalog,
            },
        ))
    }
}

/// Takes the store directory's advisory lock, held for as long as the returned file is.
fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(LOCK))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(TryLockError::WouldBlock) => Err(StoreError::Io(format!(
            "store directory {} is in use by another process",
            dir.display()
        ))),
        Err(TryLockError::Error(e)) => Err(e.into()),
    }
}

/// An encoded frame and the (offset, length) of each body in it.
type Scratch = (Vec<u8>, Vec<(u64, u32)>);

impl LogStore {
    /// Appends `records`; with `sync` false the group they land in is written but not
    /// synced unless something else in it needs that (see [`Store::append_relaxed`]).
    fn append_with(
        &self,
        records: Vec<Record>,
        sync: bool,
    ) -> Result<(Vec<BodyRef>, LogCommit), StoreError> {
        let shared = &*self.shared;
        if records.is_empty() {
            let st = shared.lock();
            st.check_open()?;
            return Ok((
                Vec::new(),
                LogCommit::new(shared.notifier.clone(), st.ticket),
            ));
        }
        SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            let (frame, rel) = &mut *scratch;
            codec::encode_batch(&records, frame, rel)?;
            let frame_len = frame.len() as u64;
            let mut st = shared.lock();
            st.check_open()?;
            if st.pending_since.is_none() {
                st.pending_since = Some(std::time::Instant::now());
            }
            if st.segment_has_batches && st.offset.saturating_add(frame_len) > shared.segment_bytes
            {
                st.roll()?;
            }
            let segment = st.segment;
            let base = st.offset;
            st.push_frame(segment, base, frame);
            st.pending_sync |= sync;
            st.offset += frame_len;
            st.segment_has_batches = true;
            let refs: Vec<BodyRef> = rel
                .iter()
                .map(|&(offset, len)| BodyRef {
                    segment,
                    offset: base + offset,
                    len,
                })
                .collect();
            let mut enqueued = 0;
            let mut bodies = refs.iter();
            for r in &records {
                match r {
                    Record::Enqueue {
                        entity, seq, body, ..
                    } => {
                        if let Some(&body_ref) = bodies.next() {
                            st.pending_bodies.push_back((body_ref, body.clone()));
                        }
                        enqueued += 1;
                        let last = st.last_seq.entry(*entity).or_insert(0);
                        *last = (*last).max(*seq);
                    }
                    Record::Remove { body, .. } => {
                        *st.unsynced_removes.entry(body.segment).or_insert(0) += 1;
                    }
                    Record::Update { .. } => {}
                }
            }
            if enqueued > 0 {
                *st.live.entry(segment).or_insert(0) += enqueued;
            }
            st.ticket += 1;
            let ticket = st.ticket;
            let wake = std::mem::take(&mut st.writer_idle);
            drop(st);
            if wake {
                shared.work.notify_one();
            }
            Ok((refs, LogCommit::new(shared.notifier.clone(), ticket)))
        })
    }
}

thread_local! {
    /// Per-thread encoding scratch, so appends encode outside the lock without allocating.
    static SCRATCH: RefCell<Scratch> = const { RefCell::new((Vec::new(), Vec::new())) };
}

impl Store for LogStore {
    type Commit = LogCommit;

    fn append(&self, records: Vec<Record>) -> Result<(Vec<BodyRef>, LogCommit), StoreError> {
        self.append_with(records, true)
    }

    fn append_relaxed(
        &self,
        records: Vec<Record>,
    ) -> Result<(Vec<BodyRef>, LogCommit), StoreError> {
        self.append_with(records, false)
    }

    fn stats(&self) -> StoreStats {
        self.shared.stats.snapshot()
    }

    fn health(&self) -> StoreHealth {
        let st = self.shared.lock();
        match (&st.poisoned, &st.no_space) {
            (Some(msg), _) => StoreHealth::Poisoned(msg.clone()),
            (None, Some(msg)) => StoreHealth::NoSpace(msg.clone()),
            (None, None) => StoreHealth::Ok,
        }
    }

    fn read_body(&self, body: BodyRef) -> Result<Bytes, StoreError> {
        let file = {
            let st = self.shared.lock();
            if (
                body.segment,
                body.offset.saturating_add(u64::from(body.len)),
            ) <= st.written
            {
                match st.files.get(&body.segment) {
                    Some(f) => f.clone(),
                    None => return Err(StoreError::UnknownBody(body)),
                }
            } else {
                let found = st.pending_bodies.binary_search_by(|(r, _)| {
                    (r.segment, r.offset).cmp(&(body.segment, body.offset))
                });
                return match found {
                    Ok(i) if st.pending_bodies[i].0 == body => Ok(st.pending_bodies[i].1.clone()),
                    _ => Err(StoreError::UnknownBody(body)),
                };
            }
        };
        // The length and checksum stored in front of the body come in the same read.
        let start = body
            .offset
            .checked_sub(codec::BODY_PREFIX_LEN as u64)
            .ok_or(StoreError::UnknownBody(body))?;
        let mut buf = vec![0u8; codec::BODY_PREFIX_LEN + body.len as usize];
        file.read_exact_at(&mut buf, start).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                StoreError::UnknownBody(body)
            } else {
                e.into()
            }
        })?;
        let range = codec::check_body(&buf).map_err(|reason| {
            tracing::error!(?body, %reason, "a message body read back from the log is damaged");
            StoreError::CorruptBody { body, reason }
        })?;
        Ok(Bytes::from(buf).slice(range))
    }

    fn save_catalog(&self, catalog: &[u8]) -> Result<(), StoreError> {
        let _one_at_a_time = self.catalog_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.shared.lock().check_open()?;
        let dir = &self.shared.dir;
        let tmp = dir.join(CATALOG_TMP);
        {
            let mut f = File::create(&tmp)?;
            f.write_all(catalog)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, dir.join(CATALOG))?;
        sync_dir(dir)?;
        Ok(())
    }

    fn close(&self) -> Result<(), StoreError> {
        self.shared.lock().closing = true;
        self.shared.work.notify_all();
        let handle = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = handle
            && handle.join().is_err()
        {
            return Err(StoreError::Io("log writer thread panicked".into()));
        }
        // The writer is gone, so the indexer finishes what was sealed and stops, and the
        // preparer abandons its segment; waiting for them keeps them from writing into the
        // directory after the lock is released.
        for (helper, what) in [(&self.indexer, "indexer"), (&self.preparer, "preparer")] {
            let handle = helper.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(handle) = handle
                && handle.join().is_err()
            {
                return Err(StoreError::Io(format!("log {what} thread panicked")));
            }
        }
        // Nothing writes into the directory any more: it may be opened again, even in
        // this process while this store is still referenced (reopening after a failure).
        if let Err(e) = self.dir_lock.unlock() {
            tracing::warn!(error = %e, "could not release the store directory lock");
        }
        match &self.shared.lock().poisoned {
            Some(msg) => Err(StoreError::Poisoned(msg.clone())),
            None => Ok(()),
        }
    }
}

impl Drop for LogStore {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!(error = %e, "closing the log store failed");
        }
    }
}

/// How writing a group failed.
enum WriteFailure {
    /// Out of space before anything was synced: the chunks from `done` on were not
    /// written (a partial write is cut off again) and can be written once there is space.
    NoSpace { done: usize, error: std::io::Error },
    /// Anything else, above all a failed sync: the store must stop writing. A failed
    /// fsync is never retried, since the kernel may already have dropped the pages.
    Fatal(std::io::Error),
}

fn is_no_space(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// Writes `batch` in order; `current` is the segment file last written to. With `sync`,
/// ends with one `fdatasync`.
fn write_group(
    shared: &Shared,
    batch: &[Chunk],
    current: &mut Current,
    sync: bool,
    sealed: &Sender<Sealed>,
) -> Result<(), WriteFailure> {
    use WriteFailure::Fatal;
    #[cfg(test)]
    if shared.fail_writes.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(Fatal(std::io::Error::other("injected write failure")));
    }
    let no_space = |done: usize, error: std::io::Error| {
        if is_no_space(&error) {
            WriteFailure::NoSpace { done, error }
        } else {
            Fatal(error)
        }
    };
    for (done, chunk) in batch.iter().enumerate() {
        if chunk.segment != current.id {
            // The finished segment loses its zero tail and is made durable before the next
            // one takes a segment's name, so a zero tail or a torn frame can only be in the
            // last segment, where recovery expects them. Both steps can be repeated, so
            // when there is no space for the next segment the whole step is retried.
            if current.file.metadata().map_err(Fatal)?.len() > current.end {
                current.file.set_len(current.end).map_err(Fatal)?;
            }
            current.file.sync_data().map_err(Fatal)?;
            shared.stats.count_fsync();
            let file = match prepare::take_prepared(&shared.dir, chunk.segment) {
                Ok(Some(file)) => file,
                Ok(None) => {
                    tracing::debug!(
                        segment = chunk.segment,
                        "the next log segment is not prepared yet; appending to a new file"
                    );
                    OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create_new(true)
                        .open(segment_path(&shared.dir, chunk.segment))
                        .map_err(|e| no_space(done, e))?
                }
                Err(e) => return Err(no_space(done, e)),
            };
            // If the indexer is gone the segment merely stays unindexed.
            let _ = sealed.send((current.id, current.file.clone()));
            sync_dir(&shared.dir).map_err(Fatal)?;
            let file = Arc::new(file);
            shared.lock().files.insert(chunk.segment, file.clone());
            *current = Current {
                id: chunk.segment,
                file,
                end: 0,
            };
        }
        if let Err(e) = current.file.write_all_at(&chunk.buf, chunk.start) {
            if is_no_space(&e) {
                // Give back whatever part of the chunk did get blocks; the retry rewrites
                // it whole. A crash before then leaves a torn tail, which recovery cuts (or zeroes, where a zero tail follows).
                if let Err(cut) = current.file.set_len(chunk.start) {
                    tracing::warn!(error = %cut, "could not cut off a partial write");
                }
            }
            return Err(no_space(done, e));
        }
        current.end = current.end.max(chunk.start + chunk.buf.len() as u64);
    }
    if sync {
        #[cfg(test)]
        if shared.fail_syncs.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Fatal(std::io::Error::other("injected sync failure")));
        }
        current.file.sync_data().map_err(Fatal)?;
        shared.stats.count_fsync();
        #[cfg(test)]
        shared
            .group_syncs
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    Ok(())
}

/// Writes `batch` like [`write_group`], waiting out a full disk: the unwritten rest is
/// retried, with growing pauses, while appends are refused. Gives up only on a fatal
/// error or when the store closes.
fn write_group_waiting_for_space(
    shared: &Shared,
    batch: &[Chunk],
    current: &mut Current,
    sync: bool,
    sealed: &Sender<Sealed>,
) -> Result<(), StoreError> {
    let mut from = 0;
    let mut pause = NO_SPACE_RETRY_FIRST;
    loop {
        let error = match write_group(shared, &batch[from..], current, sync, sealed) {
            Ok(()) => {
                let mut st = shared.lock();
                if st.no_space.take().is_some() {
                    tracing::info!("disk space is back; the log accepts writes again");
                }
                return Ok(());
            }
            Err(WriteFailure::Fatal(e)) => {
                tracing::error!(error = %e, "log write failed; the store refuses further writes");
                return Err(StoreError::Poisoned(format!("writing the log failed: {e}")));
            }
            Err(WriteFailure::NoSpace { done, error }) => {
                from += done;
                error
            }
        };
        let mut st = shared.lock();
        if st.no_space.is_none() {
            tracing::error!(%error, "the log is out of disk space; writes are refused until space is freed");
        }
        let msg = error.to_string();
        st.no_space = Some(msg.clone());
        if st.closing {
            return Err(StoreError::NoSpace(msg));
        }
        // close() wakes this wait.
        drop(
            shared
                .work
                .wait_timeout(st, pause)
                .unwrap_or_else(|e| e.into_inner()),
        );
        pause = (pause * 2).min(NO_SPACE_RETRY_MAX);
    }
}

fn writer_loop(
    shared: Arc<Shared>,
    mut current: Current,
    sealed: Sender<Sealed>,
    wanted: Sender<u32>,
) {
    let mut batch: Vec<Chunk> = Vec::new();
    // The last segment asked of the preparer.
    let mut prepare_asked = current.id;
    // Everything before this is synced (open synced the tail).
    let mut synced = shared.lock().written;
    // After a failed deletion nothing newer may be deleted, or the numbering would gap.
    let mut reclaim_ok = true;
    // Written but not yet synced (relaxed appends only); synced within RELAXED_SYNC_DELAY.
    let mut dirty = false;
    loop {
        let (ticket, removes, closing, wants_sync, group_since) = {
            let mut st = shared.lock();
            let mut idle_sync = false;
            while st.pending.is_empty() && !st.closing {
                st.writer_idle = true;
                if dirty {
                    let (guard, waited) = shared
                        .work
                        .wait_timeout(st, RELAXED_SYNC_DELAY)
                        .unwrap_or_else(|e| e.into_inner());
                    st = guard;
                    if waited.timed_out() && st.pending.is_empty() {
                        idle_sync = true;
                        break;
                    }
                } else {
                    st = shared.work.wait(st).unwrap_or_else(|e| e.into_inner());
                }
            }
            st.writer_idle = false;
            std::mem::swap(&mut st.pending, &mut batch);
            (
                st.ticket,
                std::mem::take(&mut st.unsynced_removes),
                st.closing,
                std::mem::take(&mut st.pending_sync) || idle_sync,
                st.pending_since.take(),
            )
        };
        let sync = closing
            || (shared.durability == Durability::Sync
                && (wants_sync || (dirty && batch.is_empty())));

        if let Err(e) = write_group_waiting_for_space(&shared, &batch, &mut current, sync, &sealed)
        {
            {
                let mut st = shared.lock();
                st.poisoned = Some(e.to_string());
                st.pending.clear();
            }
            if shared.durability == Durability::Sync {
                cut_unsynced(&shared, synced, current.id);
            }
            shared.notifier.fail(e);
            return;
        }
        shared
            .stats
            .add_bytes(batch.iter().map(|chunk| chunk.buf.len() as u64).sum());
        if sync && let Some(last) = batch.last() {
            synced = (last.segment, last.start + last.buf.len() as u64);
        }
        // Half a segment ahead leaves the preparer plenty of time, and a store that writes
        // little never has a segment prepared for nothing.
        if prepare_asked <= current.id && current.end > shared.segment_bytes / 2 {
            prepare_asked = current.id.saturating_add(1);
            // If the preparer is gone the next segment is merely created when needed.
            let _ = wanted.send(prepare_asked);
        }
        if sync {
            dirty = false;
        } else if !batch.is_empty() && shared.durability == Durability::Sync {
            dirty = true;
        }

        let reclaim = {
            let mut st = shared.lock();
            if let Some(last) = batch.last() {
                st.written = (last.segment, last.start + last.buf.len() as u64);
            }
            let written = st.written;
            while st
                .pending_bodies
                .front()
                .is_some_and(|(r, _)| (r.segment, r.offset) < written)
            {
                st.pending_bodies.pop_front();
            }
            for (segment, n) in removes {
                if let Some(count) = st.live.get_mut(&segment) {
                    *count = count.saturating_sub(n);
                }
            }
            let mut reclaim = Vec::new();
            while reclaim_ok && let Some((&head, &count)) = st.live.first_key_value() {
                if head >= written.0 || count != 0 {
                    break;
                }
                st.live.remove(&head);
                st.files.remove(&head);
                reclaim.push(head);
            }
            st.recycle(&mut batch);
            reclaim
        };
        if !reclaim.is_empty() {
            reclaim_ok = reclaim_segments(&shared, &current.file, &reclaim, !dirty);
            if reclaim_ok {
                dirty = false;
            }
        }
        // Recorded before the commits resolve, so whoever awaited one finds it counted.
        if let Some(since) = group_since {
            shared.stats.record_commit(since.elapsed());
        }
        shared.notifier.complete(ticket);
        if closing {
            return;
        }
    }
}

/// After a fatal failure under `Sync`: drops from the files what was written after the
/// last sync, `synced`, up to segment `last`. None of it was acknowledged (relaxed
/// completions aside, which are redelivered), and after a failed fsync its pages may be
/// clean in the page cache yet never reach the disk; without this, reopening in process
/// would replay them from the cache. Best effort: failing here leaves what a crash would.
fn cut_unsynced(shared: &Shared, synced: Pos, last: u32) {
    let path = segment_path(&shared.dir, synced.0);
    let cut = OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_len(synced.1).and_then(|()| f.sync_all()));
    let removed = (synced.0 + 1..=last)
        .try_for_each(|id| recover::remove_if_present(&segment_path(&shared.dir, id)));
    if let Err(e) = cut.and(removed).and_then(|()| sync_dir(&shared.dir)) {
        tracing::warn!(file = %path.display(), error = %e, "could not drop the unsynced end of the log");
    }
}

/// Deletes reclaimable segments; false if it had to stop. `synced`: everything written is
/// durable already.
fn reclaim_segments(shared: &Shared, current: &File, segments: &[u32], synced: bool) -> bool {
    // The removals that emptied these segments must be durable before the segments go
    // (a relaxed removal may still be in the page cache). Under `Sync` with nothing
    // relaxed pending, they already are.
    if !(synced && shared.durability == Durability::Sync) {
        if let Err(e) = current.sync_data() {
            tracing::warn!(error = %e, "not reclaiming log segments: sync failed");
            return false;
        }
        shared.stats.count_fsync();
    }
    for &id in segments {
        let path = segment_path(&shared.dir, id);
        let len = fs::metadata(&path).map_or(0, |m| m.len());
        // One at a time, each made durable before the next, and stopping at the first
        // failure: a crash must never leave a gap in the numbering (recovery refuses gaps).
        // Segments left behind are reclaimed at the next open. The index goes first, so a
        // crash in between leaves a segment without index (read whole), never the reverse.
        if let Err(e) = remove_index(&shared.dir, id)
            .and_then(|()| fs::remove_file(&path))
            .and_then(|()| sync_dir(&shared.dir))
        {
            tracing::warn!(file = %path.display(), error = %e, "could not delete log segment; reclamation stops until the next open");
            return false;
        }
        shared.stats.remove_bytes(len);
        tracing::debug!(file = %path.display(), "reclaimed log segment");
    }
    true
}

/// Indexes each segment the writer seals, off the write path.
fn indexer_loop(shared: Arc<Shared>, sealed: Receiver<Sealed>) {
    while let Ok((id, file)) = sealed.recv() {
        match index_segment(&shared, id, &file) {
            Ok(()) => tracing::debug!(segment = id, "indexed sealed log segment"),
            Err(e @ StoreError::Corrupt { .. }) => {
                tracing::error!(segment = id, error = %e, "a sealed log segment fails its checks; the next open will refuse it");
            }
            Err(e) => {
                tracing::warn!(segment = id, error = %e, "could not index a sealed log segment; the next open reads it whole");
            }
        }
    }
}

fn index_segment(shared: &Shared, id: u32, file: &File) -> Result<(), StoreError> {
    let index = {
        // Read back from the file (normally still in the page cache) rather than taken
        // from the writer's buffers, so the index vouches for what the segment holds.
        let len = usize::try_from(file.metadata()?.len())
            .map_err(|_| StoreError::Io("segment too large to index".into()))?;
        let mut data = vec![0u8; len];
        file.read_exact_at(&mut data, 0)?;
        recover::build_index(id, &data).map_err(|reason| StoreError::Corrupt {
            file: recover::segment_file_name(id),
            offset: 0,
            reason,
        })?
    };
    let dir = &shared.dir;
    recover::write_index_tmp(dir, id, &index)?;
    // Reclamation decides under the state lock, so it has either dropped this segment
    // already (the index must not appear) or will find the index and delete it.
    let st = shared.lock();
    if st.live.contains_key(&id) {
        recover::install_index(dir, id)?;
    } else {
        drop(st);
        recover::discard_index_tmp(dir, id)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{block_on, commit, enqueue};
    use std::sync::atomic::Ordering;

    fn remove(entity: u32, seq: u64, body: BodyRef) -> Record {
        Record::Remove { entity, seq, body }
    }

    /// A large frame goes to the writer in the buffer it was encoded in, not copied; the
    /// small frames after it are gathered into a chunk of their own, not appended to it.
    #[test]
    fn a_large_frame_is_queued_without_a_copy_and_small_ones_after_it_apart() {
        let mut state = State::default();
        let mut large = vec![1u8; ADOPT_FRAME_FROM];
        let encoded_at = large.as_ptr();
        state.push_frame(1, 0, &mut large);
        let after = ADOPT_FRAME_FROM as u64;
        state.push_frame(1, after, &mut vec![2u8; 100]);
        state.push_frame(1, after + 100, &mut vec![3u8; 100]);
        assert_eq!(state.pending.len(), 2);
        assert_eq!(state.pending[0].buf.as_ptr(), encoded_at);
        assert_eq!(state.pending[0].buf, vec![1u8; ADOPT_FRAME_FROM]);
        assert_eq!(state.pending[1].start, after);
        assert_eq!(state.pending[1].buf, [[2u8; 100], [3u8; 100]].concat());
    }

    #[test]
    fn relaxed_appends_resolve_when_written_and_sync_later_or_with_the_next_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = LogStore::open(dir.path(), LogOptions::default()).expect("open");
        let (refs, synced) = store
            .append(vec![enqueue(1, 1, b"one"), enqueue(1, 2, b"two")])
            .expect("append");
        block_on(synced).expect("durable");
        let syncs = || store.shared.group_syncs.load(Ordering::SeqCst);
        let after_enqueue = syncs();
        assert!(after_enqueue >= 1);

        let (_, relaxed) = store
            .append_relaxed(vec![remove(1, 1, refs[0])])
            .expect("relaxed append");
        block_on(relaxed).expect("written");
        // Nothing else comes: the writer syncs the relaxed write within the delay.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while syncs() == after_enqueue && std::time::Instant::now() < deadline {
            std::thread::sleep(RELAXED_SYNC_DELAY / 4);
        }
        assert_eq!(
            syncs(),
            after_enqueue + 1,
            "one delayed sync for the relaxed write"
        );

        // A relaxed append followed by a normal one: the normal one's commit covers both.
        let (_, relaxed) = store
            .append_relaxed(vec![remove(1, 2, refs[1])])
            .expect("relaxed append");
        commit(&store, vec![enqueue(1, 3, b"three")]);
        block_on(relaxed).expect("written");
        store.close().expect("close");
        drop(store);

        let (_, recovered) = LogStore::open(dir.path(), LogOptions::default()).expect("reopen");
        let seqs: Vec<u64> = recovered.messages.iter().map(|m| m.seq).collect();
        assert_eq!(
            seqs,
            vec![3],
            "both relaxed removals and the last enqueue are durable"
        );
    }

    /// Bytes of the log's segment files up to the end of their frames, as the file system
    /// has them (the segment being written may have a zero tail after its frames).
    fn segment_bytes_on_disk(dir: &Path) -> u64 {
        fs::read_dir(dir)
            .expect("read dir")
            .filter_map(Result::ok)
            .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "log"))
            .map(|entry| {
                let data = fs::read(entry.path()).expect("read segment");
                let mut end = HEADER_LEN as usize;
                while let Some(header) = data.get(end..end + codec::FRAME_HEADER_LEN) {
                    match codec::frame_header(header) {
                        (0, _) => break,
                        (len, _) => end += codec::FRAME_HEADER_LEN + len as usize,
                    }
                }
                end as u64
            })
            .sum()
    }

    #[test]
    fn stats_count_syncs_commits_and_the_bytes_on_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = LogOptions {
            segment_bytes: 256,
            ..LogOptions::default()
        };
        let (store, _) = LogStore::open(dir.path(), options).expect("open");
        let mut refs = Vec::new();
        for seq in 1..=6 {
            let (r, commit) = store
                .append(vec![enqueue(1, seq, &[b'x'; 100])])
                .expect("append");
            block_on(commit).expect("durable");
            refs.extend(r);
        }
        let stats = store.stats();
        assert_eq!(stats.bytes, segment_bytes_on_disk(dir.path()));
        let groups = store.shared.group_syncs.load(Ordering::SeqCst);
        assert_eq!(stats.commit_latency.count, groups);
        assert_eq!(stats.commit_latency.buckets.iter().sum::<u64>(), groups);
        // Every group, and every segment sealed on the way (the small segments roll).
        assert!(stats.fsyncs > groups, "{stats:?}, {groups} groups");

        // Emptied segments are reclaimed, and their bytes no longer count.
        let removals = refs
            .iter()
            .zip(1..)
            .map(|(body, seq)| remove(1, seq, *body))
            .collect();
        block_on(store.append(removals).expect("append").1).expect("durable");
        let (_, commit) = store.append(vec![enqueue(1, 7, b"after")]).expect("append");
        block_on(commit).expect("durable");
        let after = store.stats();
        assert_eq!(after.bytes, segment_bytes_on_disk(dir.path()));
        assert!(after.bytes < stats.bytes, "{after:?} after {stats:?}");
        store.close().expect("close");
        drop(store);

        let (reopened, _) = LogStore::open(dir.path(), options).expect("reopen");
        assert_eq!(reopened.stats().bytes, segment_bytes_on_disk(dir.path()));
    }

    #[test]
    fn a_failed_write_poisons_the_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = LogStore::open(dir.path(), LogOptions::default()).expect("open");
        commit(&store, vec![enqueue(1, 1, b"durable")]);

        store.shared.fail_writes.store(true, Ordering::SeqCst);
        let (refs, failed) = store
            .append(vec![enqueue(1, 2, b"lost")])
            .expect("append is accepted before the failure is known");
        assert!(matches!(block_on(failed), Err(StoreError::Poisoned(_))));
        assert!(matches!(
            store.append(vec![enqueue(1, 3, b"later")]),
            Err(StoreError::Poisoned(_))
        ));
        assert!(matches!(
            store.append(Vec::new()),
            Err(StoreError::Poisoned(_))
        ));
        // The body handed out is still readable; the caller decides what to do with it.
        assert_eq!(store.read_body(refs[0]).expect("read"), &b"lost"[..]);
        assert!(matches!(store.close(), Err(StoreError::Poisoned(_))));
        drop(store);

        let (_, rec) = LogStore::open(dir.path(), LogOptions::default()).expect("reopen");
        assert_eq!(rec.messages.len(), 1, "only the acknowledged message");
    }

    #[test]
    fn after_a_failed_sync_the_store_reopens_in_process_without_what_was_never_synced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = LogStore::open(dir.path(), LogOptions::default()).expect("open");
        commit(&store, vec![enqueue(1, 1, b"durable")]);
        store.shared.fail_syncs.store(true, Ordering::SeqCst);
        let (_, failed) = store
            .append(vec![enqueue(1, 2, b"written, never synced")])
            .expect("append");
        assert!(matches!(block_on(failed), Err(StoreError::Poisoned(_))));
        assert!(matches!(store.health(), StoreHealth::Poisoned(_)));
        assert!(store.close().is_err());

        // The poisoned store is still referenced, as a running broker holds it.
        let (again, rec) =
            LogStore::open(dir.path(), LogOptions::default()).expect("reopen in process");
        let seqs: Vec<u64> = rec.messages.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, vec![1], "the unsynced write is not replayed");
        assert_eq!(again.health(), StoreHealth::Ok);
        commit(&again, vec![enqueue(1, 3, b"after")]);
        drop(store);
    }

    #[test]
    fn waiting_commits_fail_when_the_store_is_poisoned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = LogStore::open(dir.path(), LogOptions::default()).expect("open");
        store.shared.fail_writes.store(true, Ordering::SeqCst);
        let store = Arc::new(store);
        let waiters: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || match store.append(vec![enqueue(t, 1, b"x")]) {
                    Ok((_, c)) => block_on(c),
                    Err(e) => Err(e),
                })
            })
            .collect();
        for w in waiters {
            let result = w.join().expect("thread");
            assert!(matches!(result, Err(StoreError::Poisoned(_))), "{result:?}");
        }
    }
}
