//! Replaying segments at open, and the per-segment indexes that let replay skip bodies.
//!
//! Every segment but the last is sealed: complete, synced, never written again. Once
//! sealed, a segment gets an index (`NNNNNNNN.idx`, format in `codec`) holding its records
//! without their bodies. At open, a sealed segment whose index is intact (checksum, format,
//! segment id and the segment's current length all match) is replayed from the index alone;
//! otherwise the segment is read whole with every frame checked, as the last segment always
//! is, and its index is written anew.
//!
//! What that trusts: replay from an index checks the index, not the segment, so damage to
//! the bytes of a sealed segment that happens after its index was built goes unnoticed at
//! open. The index is built from the segment as read back after it was synced, with every
//! frame checksum verified then. Bodies are checked again whenever `read_body` reads one
//! back (each carries its own checksum), so a damaged body is refused rather than
//! delivered; `repair` finds damage anywhere, trusting no index.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::{BodyRef, EntityId, RecoveredMessage, Seq, StoreError};

use super::codec::{self, Decoded, FRAME_HEADER_LEN, HEADER_LEN};

pub(crate) fn segment_file_name(id: u32) -> String {
    format!("{id:08}.log")
}

pub(crate) fn segment_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(segment_file_name(id))
}

fn index_file_name(id: u32) -> String {
    format!("{id:08}.idx")
}

pub(crate) fn index_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(index_file_name(id))
}

fn index_tmp_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id:08}.idx.tmp"))
}

/// One segment found on disk, after any torn tail was cut off.
pub(crate) struct Segment {
    pub id: u32,
    pub file: File,
    pub len: u64,
}

pub(crate) struct Scan {
    pub segments: Vec<Segment>,
    /// Live messages, sorted by (entity, seq).
    pub messages: Vec<RecoveredMessage>,
    pub last_seq: HashMap<EntityId, Seq>,
    /// Sealed segments replayed from their index.
    pub indexed: usize,
    /// Segments read whole (the last one, and sealed ones without a usable index).
    pub scanned: usize,
}

/// The store directory's files that matter to recovery.
#[derive(Default)]
pub(crate) struct Listing {
    /// Segment ids, ascending.
    pub segments: Vec<u32>,
    indexes: Vec<u32>,
    /// Index writes that never completed, and segments prepared but never taken (see
    /// `prepare`).
    temporaries: Vec<PathBuf>,
}

/// `NNNNNNNN<suffix>` → Some(number), or Some(Err) if the digits do not fit a u32.
fn numbered(name: &str, suffix: &str) -> Option<Result<u32, std::num::ParseIntError>> {
    let stem = name.strip_suffix(suffix)?;
    if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(stem.parse::<u32>())
}

pub(crate) fn list(dir: &Path) -> Result<Listing, StoreError> {
    let mut out = Listing::default();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(id) = numbered(name, ".log") {
            match id {
                Ok(id) => out.segments.push(id),
                Err(_) => {
                    return Err(StoreError::Corrupt {
                        file: name.to_string(),
                        offset: 0,
                        reason: "segment number out of range".into(),
                    });
                }
            }
        } else if let Some(Ok(id)) = numbered(name, ".idx") {
            out.indexes.push(id);
        } else if [".idx.tmp", ".log.next", ".log.next.tmp"]
            .iter()
            .any(|suffix| numbered(name, suffix).is_some())
        {
            out.temporaries.push(entry.path());
        }
    }
    out.segments.sort_unstable();
    Ok(out)
}

pub(crate) fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

pub(crate) enum Frame {
    /// Payload range; the next frame starts at its end.
    Valid {
        payload: (usize, usize),
    },
    Invalid {
        reason: String,
    },
}

pub(crate) fn check_frame(data: &[u8], pos: usize) -> Frame {
    let invalid = |reason: &str| Frame::Invalid {
        reason: reason.into(),
    };
    if data.len() - pos < FRAME_HEADER_LEN {
        return invalid("short frame header");
    }
    let (len, crc) = codec::frame_header(&data[pos..pos + FRAME_HEADER_LEN]);
    if len == 0 {
        // Never written: every payload holds at least a record count.
        return invalid("empty frame");
    }
    let start = pos + FRAME_HEADER_LEN;
    let end = match start.checked_add(len as usize) {
        Some(end) if end <= data.len() => end,
        _ => return invalid("frame runs past the end of the file"),
    };
    if crc32fast::hash(&data[start..end]) != crc {
        return invalid("checksum mismatch");
    }
    Frame::Valid {
        payload: (start, end),
    }
}

/// The end of the frame at `pos` if it checks out as a whole: checksum and records.
pub(crate) fn sound_frame_end(data: &[u8], pos: usize) -> Result<usize, String> {
    match check_frame(data, pos) {
        Frame::Valid {
            payload: (start, end),
        } => codec::decode_batch(&data[start..end], start as u64, |_| Ok(())).map(|()| end),
        Frame::Invalid { reason } => Err(reason),
    }
}

/// Where the frames pick up again after damage at `pos`: the offset of the first sound
/// frame after it, if any. Every offset is tried, since the damage may have hit length
/// fields; a cheap look at the header rules out nearly all of them before any checksum.
pub(crate) fn resync(data: &[u8], pos: usize) -> Option<usize> {
    let last = data.len().saturating_sub(FRAME_HEADER_LEN);
    let mut p = pos + 1;
    while p < last {
        // A frame's length is never zero, so no frame starts in a run of zeros: the zero
        // tail of the segment being written is skipped at the speed of a memory scan.
        if data[p..p + 4] == [0; 4] {
            match data[p + 4..].iter().position(|&b| b != 0) {
                Some(nonzero) => p = (p + 4 + nonzero).saturating_sub(3).max(p + 1),
                None => return None,
            }
            continue;
        }
        let (len, _) = codec::frame_header(&data[p..p + FRAME_HEADER_LEN]);
        let start = p + FRAME_HEADER_LEN;
        if (len as usize) <= data.len() - start
            && codec::plausible_payload(&data[start..start + len as usize])
            && sound_frame_end(data, p).is_ok()
        {
            return Some(p);
        }
        p += 1;
    }
    None
}

/// Where the bytes from `pos` on stop being zeros, if they do.
pub(crate) fn nonzero_end(data: &[u8], pos: usize) -> Option<usize> {
    data[pos..]
        .iter()
        .rposition(|&b| b != 0)
        .map(|last| pos + last + 1)
}

/// Reads every segment in order and applies its records.
///
/// A bad frame at the end of the last segment with nothing valid after it is a write torn
/// by a crash: it was never acknowledged, so it is cut off (zeroed if the segment has a
/// zero tail after it, which it keeps: see `prepare`). A frame header of zeros there with
/// only zeros after it is that zero tail: the end of the log. A bad frame anywhere else, or
/// one in the last segment followed (at any offset, see [`resync`]) by a valid frame, is
/// damage to acknowledged data and refuses the open with the segment and offset; `repair`
/// salvages such a directory. Sealed segments with an intact index are not read at all
/// (see the module comment).
pub(crate) fn scan(dir: &Path) -> Result<Scan, StoreError> {
    let listing = list(dir)?;
    let ids = listing.segments;
    for pair in ids.windows(2) {
        if pair[1] != pair[0] + 1 {
            return Err(StoreError::Corrupt {
                file: segment_file_name(pair[0] + 1),
                offset: 0,
                reason: format!(
                    "segment missing between {} and {}",
                    segment_file_name(pair[0]),
                    segment_file_name(pair[1])
                ),
            });
        }
    }
    for tmp in &listing.temporaries {
        remove_if_present(tmp)?;
    }
    // An index is only ever written for a sealed segment, but one can outlive its segment
    // (reclaimed while a crash interrupted), and the last segment must never be trusted to
    // one since it grows.
    for &id in &listing.indexes {
        if ids.binary_search(&id).is_err() || ids.last() == Some(&id) {
            remove_if_present(&index_path(dir, id))?;
        }
    }

    let mut segments = Vec::with_capacity(ids.len());
    let mut replay = Replay::default();
    let (mut indexed, mut scanned) = (0, 0);
    let mut data = Vec::new();
    let mut index = Vec::new();
    for (i, &id) in ids.iter().enumerate() {
        let is_last = i + 1 == ids.len();
        let name = segment_file_name(id);
        let corrupt = |offset: usize, reason: String| StoreError::Corrupt {
            file: name.clone(),
            offset: offset as u64,
            reason,
        };
        let path = dir.join(&name);
        let mut file = OpenOptions::new().read(true).write(true).open(&path)?;
        if !is_last {
            let len = file.metadata()?.len();
            if replay_index(dir, id, &file, len, &mut data, &mut replay)? {
                indexed += 1;
                segments.push(Segment { id, file, len });
                continue;
            }
        }
        scanned += 1;
        data.clear();
        file.read_to_end(&mut data)?;

        if data.len() < HEADER_LEN as usize {
            if !is_last {
                return Err(corrupt(0, "segment header is short".into()));
            }
            // A crash right after the file was created: nothing in it was acknowledged.
            tracing::warn!(file = %path.display(), "rewriting the torn header of the last log segment");
            file.set_len(0)?;
            file.write_all_at(&codec::segment_header(id), 0)?;
            file.sync_all()?;
            segments.push(Segment {
                id,
                file,
                len: HEADER_LEN,
            });
            continue;
        }
        match codec::parse_segment_header(&data) {
            Ok(named) if named == id => {}
            Ok(named) => {
                return Err(corrupt(
                    0,
                    format!("header names segment {named}, file name says {id}"),
                ));
            }
            Err(reason) => return Err(corrupt(0, reason)),
        }

        codec::start_index(&mut index, id, data.len() as u64);
        let mut pos = HEADER_LEN as usize;
        while pos < data.len() {
            match check_frame(&data, pos) {
                Frame::Valid {
                    payload: (start, end),
                } => {
                    codec::decode_batch(&data[start..end], start as u64, |rec| {
                        if !is_last {
                            codec::index_record(&rec, &mut index).map_err(|e| e.to_string())?;
                        }
                        replay.apply(id, rec);
                        Ok(())
                    })
                    .map_err(|reason| corrupt(pos, reason))?;
                    pos = end;
                }
                Frame::Invalid { reason } => {
                    if !is_last {
                        return Err(corrupt(pos, reason));
                    }
                    if let Some(next) = resync(&data, pos) {
                        return Err(corrupt(
                            pos,
                            format!("{reason}, with a valid frame after it at offset {next}"),
                        ));
                    }
                    match nonzero_end(&data, pos) {
                        None => {}
                        Some(torn_end) => {
                            tracing::warn!(
                                file = %path.display(),
                                offset = pos,
                                dropped_bytes = torn_end - pos,
                                %reason,
                                "dropping a torn write at the end of the log"
                            );
                            if torn_end == data.len() {
                                file.set_len(pos as u64)?;
                                file.sync_all()?;
                            } else {
                                // New frames will be written over the zeros from here:
                                // nothing of the torn write may remain behind them.
                                file.write_all_at(&vec![0; torn_end - pos], pos as u64)?;
                                file.sync_data()?;
                            }
                        }
                    }
                    data.truncate(pos);
                }
            }
        }
        if !is_last {
            codec::finish_index(&mut index);
            // Only a speed-up for the next open: failing to write it is not fatal.
            if let Err(e) = write_index(dir, id, &index) {
                tracing::warn!(segment = id, error = %e, "could not write a segment index");
            }
        }
        segments.push(Segment {
            id,
            file,
            len: data.len() as u64,
        });
    }
    let (messages, last_seq) = replay.finish();
    Ok(Scan {
        segments,
        messages,
        last_seq,
        indexed,
        scanned,
    })
}

/// Replays sealed segment `id` (`len` bytes) from its index; false if there is no usable
/// index, and nothing was applied.
fn replay_index(
    dir: &Path,
    id: u32,
    segment: &File,
    len: u64,
    buf: &mut Vec<u8>,
    replay: &mut Replay,
) -> Result<bool, StoreError> {
    let path = index_path(dir, id);
    buf.clear();
    match File::open(&path).and_then(|mut f| f.read_to_end(buf)) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read segment index; reading the segment instead");
            return Ok(false);
        }
    }
    let records = match codec::check_index(buf, id, len) {
        Ok(records) => records,
        Err(reason) => {
            tracing::warn!(file = %path.display(), %reason, "unusable segment index; reading the segment instead");
            return Ok(false);
        }
    };
    // The segment's header is still checked, so a foreign or renumbered file is caught by
    // the full read even if an index happens to match its length.
    let mut header = [0u8; HEADER_LEN as usize];
    if segment.read_exact_at(&mut header, 0).is_err()
        || codec::parse_segment_header(&header) != Ok(id)
    {
        return Ok(false);
    }
    codec::decode_index(records, |rec| {
        replay.apply(id, rec);
        Ok(())
    })
    .map_err(|reason| StoreError::Corrupt {
        file: index_file_name(id),
        offset: 0,
        // The checksum matched, so this is no torn write; deleting the file has the store
        // rebuild it from the segment.
        reason: format!("undecodable segment index with a valid checksum: {reason}"),
    })?;
    Ok(true)
}

/// Builds the index of sealed segment `id` from its bytes; an error says what is wrong
/// with the segment.
pub(crate) fn build_index(id: u32, data: &[u8]) -> Result<Vec<u8>, String> {
    if codec::parse_segment_header(data)? != id {
        return Err("segment header names another segment".into());
    }
    let mut index = Vec::new();
    codec::start_index(&mut index, id, data.len() as u64);
    let mut pos = HEADER_LEN as usize;
    while pos < data.len() {
        match check_frame(data, pos) {
            Frame::Valid {
                payload: (start, end),
            } => {
                codec::decode_batch(&data[start..end], start as u64, |rec| {
                    codec::index_record(&rec, &mut index).map_err(|e| e.to_string())
                })
                .map_err(|reason| format!("at offset {pos}: {reason}"))?;
                pos = end;
            }
            Frame::Invalid { reason } => return Err(format!("at offset {pos}: {reason}")),
        }
    }
    codec::finish_index(&mut index);
    Ok(index)
}

/// Writes an index to its temporary name, durably; [`install_index`] puts it in place.
pub(crate) fn write_index_tmp(dir: &Path, id: u32, index: &[u8]) -> std::io::Result<()> {
    let mut f = File::create(index_tmp_path(dir, id))?;
    f.write_all(index)?;
    // The index must be complete before its name can appear. The rename itself need not be
    // durable: an index lost in a crash is rebuilt from its segment.
    f.sync_data()
}

pub(crate) fn install_index(dir: &Path, id: u32) -> std::io::Result<()> {
    fs::rename(index_tmp_path(dir, id), index_path(dir, id))
}

pub(crate) fn discard_index_tmp(dir: &Path, id: u32) -> std::io::Result<()> {
    remove_if_present(&index_tmp_path(dir, id))
}

pub(crate) fn remove_index(dir: &Path, id: u32) -> std::io::Result<()> {
    remove_if_present(&index_path(dir, id))
}

fn write_index(dir: &Path, id: u32, index: &[u8]) -> std::io::Result<()> {
    write_index_tmp(dir, id, index)?;
    install_index(dir, id)
}

/// One entity's highest sequence number and the positions of its messages in
/// [`Replay::slots`].
#[derive(Default)]
struct Entity {
    last_seq: Seq,
    /// (seq, slot), seq strictly ascending: messages that arrived in sequence order, which
    /// is nearly all of them.
    in_order: Vec<(Seq, usize)>,
    /// Messages that arrived with a lower sequence number than one before them.
    others: BTreeMap<Seq, usize>,
}

impl Entity {
    fn find(&self, seq: Seq) -> Option<usize> {
        match self.in_order.binary_search_by_key(&seq, |e| e.0) {
            Ok(i) => Some(self.in_order[i].1),
            Err(_) => self.others.get(&seq).copied(),
        }
    }

    /// Records where a message not yet known lives.
    fn add(&mut self, seq: Seq, slot: usize) {
        if self.in_order.last().is_none_or(|&(last, _)| last < seq) {
            self.in_order.push((seq, slot));
        } else {
            self.others.insert(seq, slot);
        }
    }
}

/// The live message set being rebuilt, kept compact: the messages themselves in one vector
/// that becomes the result (sorted in place), and per entity a sorted vector of positions
/// rather than a hash map over every message. Removed messages stay in place, marked dead,
/// until they outnumber the live ones.
#[derive(Default)]
struct Replay {
    slots: Vec<RecoveredMessage>,
    dead: Vec<bool>,
    dead_count: usize,
    entities: HashMap<EntityId, Entity>,
}

/// Dead slots tolerated before compaction, however few the live ones.
const COMPACT_MIN_DEAD: usize = 4096;

impl Replay {
    fn find_live(&self, entity: EntityId, seq: Seq) -> Option<usize> {
        let slot = self.entities.get(&entity)?.find(seq)?;
        (!self.dead[slot]).then_some(slot)
    }

    /// Applies one record. Updates and removals of unknown messages are ignored: their
    /// enqueue lived in a segment that was reclaimed once every body in it was removed.
    fn apply(&mut self, segment: u32, rec: Decoded) {
        match rec {
            Decoded::Enqueue {
                entity,
                seq,
                meta,
                body_offset,
                body_len,
            } => {
                let msg = RecoveredMessage {
                    entity,
                    seq,
                    meta,
                    body: BodyRef {
                        segment,
                        offset: body_offset,
                        len: body_len,
                    },
                };
                let e = self.entities.entry(entity).or_default();
                // Beyond every sequence number seen in order, and the others are rare: the
                // common case needs no search.
                let known = if e.in_order.last().is_none_or(|&(last, _)| last < seq) {
                    e.others.get(&seq).copied()
                } else {
                    e.find(seq)
                };
                e.last_seq = e.last_seq.max(seq);
                if let Some(slot) = known {
                    // The same key again (re-enqueued after its removal): the later wins.
                    if std::mem::replace(&mut self.dead[slot], false) {
                        self.dead_count -= 1;
                    }
                    self.slots[slot] = msg;
                } else {
                    e.add(seq, self.slots.len());
                    self.slots.push(msg);
                    self.dead.push(false);
                }
            }
            Decoded::Update {
                entity,
                seq,
                delivery_count,
                state,
            } => {
                if let Some(slot) = self.find_live(entity, seq) {
                    let meta = &mut self.slots[slot].meta;
                    meta.delivery_count = delivery_count;
                    meta.state = state;
                }
            }
            Decoded::Remove { entity, seq } => {
                if let Some(slot) = self.find_live(entity, seq) {
                    self.dead[slot] = true;
                    self.dead_count += 1;
                    if self.dead_count >= COMPACT_MIN_DEAD && self.dead_count * 2 > self.slots.len()
                    {
                        self.compact();
                    }
                }
            }
            Decoded::Checkpoint(entries) => {
                for (entity, seq) in entries {
                    let e = self.entities.entry(entity).or_default();
                    e.last_seq = e.last_seq.max(seq);
                }
            }
        }
    }

    /// Drops dead slots and renumbers the rest (amortised: runs once the dead outnumber
    /// the live).
    fn compact(&mut self) {
        let mut dead = std::mem::take(&mut self.dead).into_iter();
        self.slots.retain(|_| !dead.next().unwrap_or(false));
        self.dead = vec![false; self.slots.len()];
        self.dead_count = 0;
        for e in self.entities.values_mut() {
            e.in_order.clear();
            e.others.clear();
        }
        for (slot, m) in self.slots.iter().enumerate() {
            if let Some(e) = self.entities.get_mut(&m.entity) {
                e.add(m.seq, slot);
            }
        }
    }

    fn finish(mut self) -> (Vec<RecoveredMessage>, HashMap<EntityId, Seq>) {
        if self.dead_count > 0 {
            let mut dead = std::mem::take(&mut self.dead).into_iter();
            self.slots.retain(|_| !dead.next().unwrap_or(false));
        }
        let last_seq = self
            .entities
            .into_iter()
            .map(|(entity, e)| (entity, e.last_seq))
            .collect();
        drop(self.dead);
        let mut messages = self.slots;
        // Nearly sorted already (log order is mostly sequence order), which the sort
        // detects; it works in place, so no second copy of the messages is made.
        messages.sort_unstable_by_key(|m| (m.entity, m.seq));
        messages.shrink_to_fit();
        (messages, last_seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MessageMeta, MessageState};

    fn enqueue(entity: EntityId, seq: Seq, offset: u64) -> Decoded {
        Decoded::Enqueue {
            entity,
            seq,
            meta: MessageMeta::default(),
            body_offset: offset,
            body_len: 1,
        }
    }

    /// Random-ish operations against a BTreeMap; enough removals to compact many times,
    /// sequence numbers out of order, re-enqueues of removed keys.
    #[test]
    fn replay_matches_a_map_through_compactions() {
        let mut replay = Replay::default();
        let mut model: BTreeMap<(EntityId, Seq), (u64, u32)> = BTreeMap::new();
        let mut x: u64 = 12345;
        let mut next = |n: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % n
        };
        let mut compactions_seen = 0;
        for step in 0..40_000u64 {
            let entity = next(3) as EntityId;
            // Mostly ascending, sometimes behind.
            let seq = if next(10) == 0 { next(step + 1) } else { step };
            let rec = match next(8) {
                0..=2 => {
                    model.insert((entity, seq), (step, 0));
                    enqueue(entity, seq, step)
                }
                3..=5 => {
                    // Remove something that exists (or not, if the model is empty).
                    let key = model
                        .keys()
                        .nth(next(model.len().max(1) as u64) as usize)
                        .copied();
                    let (entity, seq) = key.unwrap_or((entity, seq));
                    model.remove(&(entity, seq));
                    Decoded::Remove { entity, seq }
                }
                _ => {
                    let key = model
                        .keys()
                        .nth(next(model.len().max(1) as u64) as usize)
                        .copied();
                    let (entity, seq) = key.unwrap_or((entity, seq));
                    if let Some(v) = model.get_mut(&(entity, seq)) {
                        v.1 = step as u32;
                    }
                    Decoded::Update {
                        entity,
                        seq,
                        delivery_count: step as u32,
                        state: MessageState::Deferred,
                    }
                }
            };
            let before = replay.slots.len();
            replay.apply(1, rec);
            if replay.slots.len() < before {
                compactions_seen += 1;
            }
        }
        assert!(compactions_seen > 1, "the test must exercise compaction");
        let (messages, _) = replay.finish();
        let got: Vec<_> = messages
            .iter()
            .map(|m| ((m.entity, m.seq), (m.body.offset, m.meta.delivery_count)))
            .collect();
        let want: Vec<_> = model.into_iter().collect();
        assert_eq!(got, want);
    }
}
