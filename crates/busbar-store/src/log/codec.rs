//! On-disk encoding of segments, frames and records.
//!
//! Segment file: a 16-byte header (`MAGIC`, format version u16, reserved u16, segment id
//! u32), then frames. Frame: `[payload len u32][crc32 of payload u32][payload]`; one frame
//! holds every record of one `append` call, so a batch is recovered whole or not at all.
//! Payload: `[record count u32]` then the records, each starting with a tag byte. An
//! `Enqueue` ends with `[body len u32][crc32 of body u32][body]`, so a body read back alone
//! (see [`check_body`]) is checked as well as a whole frame at recovery. All integers are
//! little-endian. Format version 2; version 1 had no body checksum.
//!
//! Segment index (`NNNNNNNN.idx`, written once a segment is sealed): a 24-byte header
//! (`INDEX_MAGIC`, format version u16, reserved u16, segment id u32, length of the indexed
//! segment u64), then every record of the segment in log order without its body, then a
//! crc32 of everything before it. Index records are encoded as in a frame except that an
//! `Enqueue` ends with its body's absolute offset in the segment (u64) and length (u32)
//! instead of the body, and a `Remove` carries no body reference. Frame boundaries are not
//! kept: a sealed segment holds only complete frames.

use crate::{EntityId, MessageMeta, MessageState, Record, Seq, StoreError};

pub(crate) const MAGIC: &[u8; 8] = b"BUSBARLG";
pub(crate) const VERSION: u16 = 2;
/// The body length and checksum in front of every body.
pub(crate) const BODY_PREFIX_LEN: usize = 8;
pub(crate) const HEADER_LEN: u64 = 16;
pub(crate) const FRAME_HEADER_LEN: usize = 8;

pub(crate) const INDEX_MAGIC: &[u8; 8] = b"BUSBARIX";
pub(crate) const INDEX_VERSION: u16 = 1;
const INDEX_HEADER_LEN: usize = 24;
const INDEX_CRC_LEN: usize = 4;

const TAG_ENQUEUE: u8 = 1;
const TAG_UPDATE: u8 = 2;
const TAG_REMOVE: u8 = 3;
/// Highest sequence number per entity, written first in every segment after the first,
/// so that deleting older segments never loses `last_seq`.
const TAG_CHECKPOINT: u8 = 4;

/// Bodies from this size on are checksummed once, the frame's checksum combining theirs;
/// below it, hashing the body again costs less than the combination.
const COMBINE_CRC_FROM: usize = 64 * 1024;

const FLAG_EXPIRES: u8 = 1;
const FLAG_SCHEDULED: u8 = 2;
const FLAG_SESSION: u8 = 4;
const FLAG_MESSAGE_ID: u8 = 8;

pub(crate) fn segment_header(id: u32) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..10].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&id.to_le_bytes());
    h
}

/// Checks a segment header; returns the segment id it names.
pub(crate) fn parse_segment_header(h: &[u8]) -> Result<u32, String> {
    if h.len() < HEADER_LEN as usize {
        return Err("segment header is short".into());
    }
    if &h[..8] != MAGIC {
        return Err("not a busbar log segment (bad magic)".into());
    }
    let version = u16::from_le_bytes([h[8], h[9]]);
    if version != VERSION {
        return Err(format!("unsupported log format version {version}"));
    }
    Ok(u32::from_le_bytes([h[12], h[13], h[14], h[15]]))
}

fn state_byte(s: MessageState) -> u8 {
    s as u8
}

fn state_from(b: u8) -> Result<MessageState, String> {
    match b {
        0 => Ok(MessageState::Active),
        1 => Ok(MessageState::Deferred),
        2 => Ok(MessageState::Scheduled),
        other => Err(format!("unknown message state {other}")),
    }
}

fn too_large(what: &str) -> StoreError {
    StoreError::Io(format!("{what} exceeds 4 GiB and cannot be stored"))
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), StoreError> {
    let len = u32::try_from(s.len()).map_err(|_| too_large("a message property"))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// The meta part of an `Enqueue`, shared by frames and indexes.
fn put_meta(out: &mut Vec<u8>, meta: &MessageMeta) -> Result<(), StoreError> {
    out.extend_from_slice(&meta.enqueued_at_ms.to_le_bytes());
    let mut flags = 0;
    if meta.expires_at_ms.is_some() {
        flags |= FLAG_EXPIRES;
    }
    if meta.scheduled_at_ms.is_some() {
        flags |= FLAG_SCHEDULED;
    }
    if meta.session_id.is_some() {
        flags |= FLAG_SESSION;
    }
    if meta.message_id.is_some() {
        flags |= FLAG_MESSAGE_ID;
    }
    out.push(flags);
    if let Some(v) = meta.expires_at_ms {
        out.extend_from_slice(&v.to_le_bytes());
    }
    if let Some(v) = meta.scheduled_at_ms {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&meta.delivery_count.to_le_bytes());
    out.push(state_byte(meta.state));
    if let Some(s) = &meta.session_id {
        put_str(out, s)?;
    }
    if let Some(s) = &meta.message_id {
        put_str(out, s)?;
    }
    Ok(())
}

fn encoded_len(records: &[Record]) -> usize {
    let mut n = FRAME_HEADER_LEN + 4;
    for r in records {
        n += match r {
            Record::Enqueue { meta, body, .. } => {
                1 + 4
                    + 8
                    + 8
                    + 1
                    + meta.expires_at_ms.map_or(0, |_| 8)
                    + meta.scheduled_at_ms.map_or(0, |_| 8)
                    + 4
                    + 1
                    + meta.session_id.as_ref().map_or(0, |s| 4 + s.len())
                    + meta.message_id.as_ref().map_or(0, |s| 4 + s.len())
                    + BODY_PREFIX_LEN
                    + body.len()
            }
            Record::Update { .. } => 1 + 4 + 8 + 4 + 1,
            Record::Remove { .. } => 1 + 4 + 8 + 4 + 8 + 4,
        };
    }
    n
}

/// Writes one frame holding `records` into `out` (cleared first). `bodies` receives, per
/// `Enqueue`, the offset of its body bytes relative to the frame start, and its length.
pub(crate) fn encode_batch(
    records: &[Record],
    out: &mut Vec<u8>,
    bodies: &mut Vec<(u64, u32)>,
) -> Result<(), StoreError> {
    out.clear();
    bodies.clear();
    out.reserve(encoded_len(records));
    out.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
    // The frame's checksum runs over what is written so far whenever a large body comes,
    // and takes the body's own checksum in by combination, so no large body is read twice.
    let mut frame_crc = crc32fast::Hasher::new();
    let mut hashed = FRAME_HEADER_LEN;
    let count = u32::try_from(records.len()).map_err(|_| too_large("a batch"))?;
    out.extend_from_slice(&count.to_le_bytes());
    for r in records {
        match r {
            Record::Enqueue {
                entity,
                seq,
                meta,
                body,
            } => {
                out.push(TAG_ENQUEUE);
                out.extend_from_slice(&entity.to_le_bytes());
                out.extend_from_slice(&seq.to_le_bytes());
                put_meta(out, meta)?;
                let len = u32::try_from(body.len()).map_err(|_| too_large("a message body"))?;
                let body_crc = crc32fast::hash(body);
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(&body_crc.to_le_bytes());
                bodies.push((out.len() as u64, len));
                if body.len() >= COMBINE_CRC_FROM {
                    frame_crc.update(&out[hashed..]);
                    frame_crc.combine(&crc32fast::Hasher::new_with_initial_len(
                        body_crc,
                        body.len() as u64,
                    ));
                    out.extend_from_slice(body);
                    hashed = out.len();
                } else {
                    out.extend_from_slice(body);
                }
            }
            Record::Update {
                entity,
                seq,
                delivery_count,
                state,
            } => {
                out.push(TAG_UPDATE);
                out.extend_from_slice(&entity.to_le_bytes());
                out.extend_from_slice(&seq.to_le_bytes());
                out.extend_from_slice(&delivery_count.to_le_bytes());
                out.push(state_byte(*state));
            }
            Record::Remove { entity, seq, body } => {
                out.push(TAG_REMOVE);
                out.extend_from_slice(&entity.to_le_bytes());
                out.extend_from_slice(&seq.to_le_bytes());
                out.extend_from_slice(&body.segment.to_le_bytes());
                out.extend_from_slice(&body.offset.to_le_bytes());
                out.extend_from_slice(&body.len.to_le_bytes());
            }
        }
    }
    frame_crc.update(&out[hashed..]);
    seal_frame_with(out, 0, frame_crc.finalize())
}

/// Appends a frame holding one checkpoint record to `out`.
pub(crate) fn encode_checkpoint<'a>(
    last_seq: impl ExactSizeIterator<Item = (&'a EntityId, &'a Seq)>,
    out: &mut Vec<u8>,
) -> Result<(), StoreError> {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
    out.extend_from_slice(&1u32.to_le_bytes());
    out.push(TAG_CHECKPOINT);
    let n = u32::try_from(last_seq.len()).map_err(|_| too_large("a checkpoint"))?;
    out.extend_from_slice(&n.to_le_bytes());
    for (entity, seq) in last_seq {
        out.extend_from_slice(&entity.to_le_bytes());
        out.extend_from_slice(&seq.to_le_bytes());
    }
    seal_frame(out, start)
}

/// Fills in length and CRC of the frame starting at `start` and running to the end.
fn seal_frame(out: &mut [u8], start: usize) -> Result<(), StoreError> {
    let crc = crc32fast::hash(&out[start + FRAME_HEADER_LEN..]);
    seal_frame_with(out, start, crc)
}

/// Fills in length and the given CRC of the frame starting at `start`.
fn seal_frame_with(out: &mut [u8], start: usize, crc: u32) -> Result<(), StoreError> {
    let payload_len = out.len() - start - FRAME_HEADER_LEN;
    let len = u32::try_from(payload_len).map_err(|_| too_large("a batch"))?;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// A decoded record; bodies are located, not copied.
#[derive(Debug)]
pub(crate) enum Decoded {
    Enqueue {
        entity: EntityId,
        seq: Seq,
        meta: MessageMeta,
        /// Absolute offset of the body bytes in the segment.
        body_offset: u64,
        body_len: u32,
    },
    Update {
        entity: EntityId,
        seq: Seq,
        delivery_count: u32,
        state: MessageState,
    },
    Remove {
        entity: EntityId,
        seq: Seq,
    },
    Checkpoint(Vec<(EntityId, Seq)>),
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| format!("record truncated at byte {}", self.pos))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    fn string(&mut self) -> Result<Box<str>, String> {
        let len = self.u32()? as usize;
        let s = self.take(len)?;
        std::str::from_utf8(s)
            .map(Box::from)
            .map_err(|_| "message property is not UTF-8".to_string())
    }
    fn meta(&mut self) -> Result<MessageMeta, String> {
        let enqueued_at_ms = self.i64()?;
        let flags = self.u8()?;
        if flags & !(FLAG_EXPIRES | FLAG_SCHEDULED | FLAG_SESSION | FLAG_MESSAGE_ID) != 0 {
            return Err(format!("unknown enqueue flags {flags:#x}"));
        }
        let expires_at_ms = if flags & FLAG_EXPIRES != 0 {
            Some(self.i64()?)
        } else {
            None
        };
        let scheduled_at_ms = if flags & FLAG_SCHEDULED != 0 {
            Some(self.i64()?)
        } else {
            None
        };
        let delivery_count = self.u32()?;
        let state = state_from(self.u8()?)?;
        let session_id = if flags & FLAG_SESSION != 0 {
            Some(self.string()?)
        } else {
            None
        };
        let message_id = if flags & FLAG_MESSAGE_ID != 0 {
            Some(self.string()?)
        } else {
            None
        };
        Ok(MessageMeta {
            enqueued_at_ms,
            expires_at_ms,
            scheduled_at_ms,
            delivery_count,
            state,
            session_id,
            message_id,
        })
    }
}

/// Where a record is being decoded from: a frame payload at this absolute offset in its
/// segment (bodies inline), or an index (body locations inline).
#[derive(Clone, Copy)]
enum Source {
    Frame { payload_offset: u64 },
    Index,
}

fn decode_record(c: &mut Cursor<'_>, source: Source) -> Result<Decoded, String> {
    Ok(match c.u8()? {
        TAG_ENQUEUE => {
            let entity = c.u32()?;
            let seq = c.u64()?;
            let meta = c.meta()?;
            let (body_offset, body_len) = match source {
                Source::Frame { payload_offset } => {
                    let body_len = c.u32()?;
                    // The frame checksum covers the body already.
                    c.take(4)?;
                    let body_pos = c.pos as u64;
                    c.take(body_len as usize)?;
                    (payload_offset + body_pos, body_len)
                }
                Source::Index => (c.u64()?, c.u32()?),
            };
            Decoded::Enqueue {
                entity,
                seq,
                meta,
                body_offset,
                body_len,
            }
        }
        TAG_UPDATE => Decoded::Update {
            entity: c.u32()?,
            seq: c.u64()?,
            delivery_count: c.u32()?,
            state: state_from(c.u8()?)?,
        },
        TAG_REMOVE => {
            let entity = c.u32()?;
            let seq = c.u64()?;
            if let Source::Frame { .. } = source {
                // The body reference lets a live store account reclamation; replay keys
                // messages by (entity, seq) and has no use for it.
                c.take(4 + 8 + 4)?;
            }
            Decoded::Remove { entity, seq }
        }
        TAG_CHECKPOINT => {
            let n = c.u32()? as usize;
            // Bound the allocation by what the input can actually hold.
            let mut entries = Vec::with_capacity(n.min(c.buf.len() / 12));
            for _ in 0..n {
                entries.push((c.u32()?, c.u64()?));
            }
            Decoded::Checkpoint(entries)
        }
        other => return Err(format!("unknown record tag {other}")),
    })
}

/// Decodes a frame payload that starts at `payload_offset` in its segment, calling `apply`
/// for each record in order.
pub(crate) fn decode_batch(
    payload: &[u8],
    payload_offset: u64,
    mut apply: impl FnMut(Decoded) -> Result<(), String>,
) -> Result<(), String> {
    let mut c = Cursor {
        buf: payload,
        pos: 0,
    };
    let count = c.u32()?;
    let source = Source::Frame { payload_offset };
    for _ in 0..count {
        apply(decode_record(&mut c, source)?)?;
    }
    if c.pos != payload.len() {
        return Err(format!(
            "{} trailing bytes after the last record",
            payload.len() - c.pos
        ));
    }
    Ok(())
}

/// Starts an index for segment `id` of `segment_len` bytes in `out` (cleared first).
pub(crate) fn start_index(out: &mut Vec<u8>, id: u32, segment_len: u64) {
    out.clear();
    out.extend_from_slice(INDEX_MAGIC);
    out.extend_from_slice(&INDEX_VERSION.to_le_bytes());
    out.extend_from_slice(&[0u8; 2]);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&segment_len.to_le_bytes());
}

/// Appends one record to an index.
pub(crate) fn index_record(rec: &Decoded, out: &mut Vec<u8>) -> Result<(), StoreError> {
    match rec {
        Decoded::Enqueue {
            entity,
            seq,
            meta,
            body_offset,
            body_len,
        } => {
            out.push(TAG_ENQUEUE);
            out.extend_from_slice(&entity.to_le_bytes());
            out.extend_from_slice(&seq.to_le_bytes());
            put_meta(out, meta)?;
            out.extend_from_slice(&body_offset.to_le_bytes());
            out.extend_from_slice(&body_len.to_le_bytes());
        }
        Decoded::Update {
            entity,
            seq,
            delivery_count,
            state,
        } => {
            out.push(TAG_UPDATE);
            out.extend_from_slice(&entity.to_le_bytes());
            out.extend_from_slice(&seq.to_le_bytes());
            out.extend_from_slice(&delivery_count.to_le_bytes());
            out.push(state_byte(*state));
        }
        Decoded::Remove { entity, seq } => {
            out.push(TAG_REMOVE);
            out.extend_from_slice(&entity.to_le_bytes());
            out.extend_from_slice(&seq.to_le_bytes());
        }
        Decoded::Checkpoint(entries) => {
            out.push(TAG_CHECKPOINT);
            let n = u32::try_from(entries.len()).map_err(|_| too_large("a checkpoint"))?;
            out.extend_from_slice(&n.to_le_bytes());
            for (entity, seq) in entries {
                out.extend_from_slice(&entity.to_le_bytes());
                out.extend_from_slice(&seq.to_le_bytes());
            }
        }
    }
    Ok(())
}

/// Ends an index with its checksum.
pub(crate) fn finish_index(out: &mut Vec<u8>) {
    let crc = crc32fast::hash(out);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// Checks that `data` is an intact index of segment `id` as it is now (`segment_len`
/// bytes long); returns its records part. An error says why the index cannot be used.
pub(crate) fn check_index(data: &[u8], id: u32, segment_len: u64) -> Result<&[u8], String> {
    if data.len() < INDEX_HEADER_LEN + INDEX_CRC_LEN {
        return Err("index is short".into());
    }
    let (body, crc) = data.split_at(data.len() - INDEX_CRC_LEN);
    let mut c = Cursor { buf: body, pos: 0 };
    if c.take(8)? != INDEX_MAGIC {
        return Err("not a busbar segment index (bad magic)".into());
    }
    let version = u16::from_le_bytes(c.array()?);
    if version != INDEX_VERSION {
        return Err(format!("unsupported index format version {version}"));
    }
    c.take(2)?;
    let named = c.u32()?;
    let indexed_len = c.u64()?;
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err("index checksum mismatch".into());
    }
    if named != id {
        return Err(format!("index names segment {named}"));
    }
    if indexed_len != segment_len {
        return Err(format!(
            "index covers {indexed_len} bytes, the segment has {segment_len}"
        ));
    }
    Ok(&body[INDEX_HEADER_LEN..])
}

/// Decodes the records part of an index, calling `apply` for each in order.
pub(crate) fn decode_index(
    records: &[u8],
    mut apply: impl FnMut(Decoded) -> Result<(), String>,
) -> Result<(), String> {
    let mut c = Cursor {
        buf: records,
        pos: 0,
    };
    while c.pos < records.len() {
        apply(decode_record(&mut c, Source::Index)?)?;
    }
    Ok(())
}

/// Whether `payload` could start a frame payload: a record count of at least one and a
/// known first tag. A quick test before a checksum when looking for frames in damage.
pub(crate) fn plausible_payload(payload: &[u8]) -> bool {
    payload.len() > 4
        && payload[..4] != [0; 4]
        && (TAG_ENQUEUE..=TAG_CHECKPOINT).contains(&payload[4])
}

/// Checks a body read back with the [`BODY_PREFIX_LEN`] bytes in front of it against the
/// length and checksum stored there; returns the body's range in `prefixed`.
pub(crate) fn check_body(prefixed: &[u8]) -> Result<std::ops::Range<usize>, String> {
    let body = prefixed
        .get(BODY_PREFIX_LEN..)
        .ok_or_else(|| "short read".to_string())?;
    let (len, crc) = frame_header(prefixed);
    if len as usize != body.len() {
        return Err(format!(
            "stored length {len} differs from the reference's {}",
            body.len()
        ));
    }
    if crc32fast::hash(body) != crc {
        return Err("checksum mismatch".into());
    }
    Ok(BODY_PREFIX_LEN..prefixed.len())
}

/// Reads `(len, crc)` of a frame header.
pub(crate) fn frame_header(h: &[u8]) -> (u32, u32) {
    let mut len = [0u8; 4];
    let mut crc = [0u8; 4];
    len.copy_from_slice(&h[..4]);
    crc.copy_from_slice(&h[4..8]);
    (u32::from_le_bytes(len), u32::from_le_bytes(crc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BodyRef;

    fn sample() -> Vec<Record> {
        vec![
            Record::Enqueue {
                entity: 7,
                seq: 42,
                meta: MessageMeta {
                    enqueued_at_ms: -5,
                    expires_at_ms: Some(1000),
                    scheduled_at_ms: None,
                    delivery_count: 3,
                    state: MessageState::Scheduled,
                    session_id: Some("s-1".into()),
                    message_id: Some("m-é".into()),
                },
                body: Bytes::from_static(b"hello body"),
            },
            Record::Update {
                entity: 7,
                seq: 42,
                delivery_count: 4,
                state: MessageState::Deferred,
            },
            Record::Remove {
                entity: 7,
                seq: 42,
                body: BodyRef {
                    segment: 9,
                    offset: 123,
                    len: 10,
                },
            },
            Record::Enqueue {
                entity: 1,
                seq: 1,
                meta: MessageMeta::default(),
                body: Bytes::new(),
            },
        ]
    }

    use bytes::Bytes;

    /// Large bodies are checksummed once and their checksum combined into the frame's;
    /// the frame's checksum must still be that of its whole payload, with large and small
    /// bodies mixed and a large one last.
    #[test]
    fn frame_checksum_covers_large_bodies_checksummed_once() {
        let body = |len: usize, seed: u8| {
            Bytes::from(
                (0..len)
                    .map(|i| (i as u8).wrapping_mul(31) ^ seed)
                    .collect::<Vec<_>>(),
            )
        };
        let enqueue = |seq, body| Record::Enqueue {
            entity: 3,
            seq,
            meta: MessageMeta::default(),
            body,
        };
        let mut records = sample();
        records.insert(1, enqueue(2, body(COMBINE_CRC_FROM, 1)));
        records.push(enqueue(3, body(100, 2)));
        records.push(enqueue(4, body(3 * COMBINE_CRC_FROM + 5, 3)));
        let mut out = Vec::new();
        let mut bodies = Vec::new();
        encode_batch(&records, &mut out, &mut bodies).expect("encode");
        let (len, crc) = frame_header(&out);
        assert_eq!(len as usize, out.len() - FRAME_HEADER_LEN);
        assert_eq!(crc, crc32fast::hash(&out[FRAME_HEADER_LEN..]));
        for (&(rel, blen), record) in bodies.iter().zip(
            records
                .iter()
                .filter(|r| matches!(r, Record::Enqueue { .. })),
        ) {
            let Record::Enqueue { body, .. } = record else {
                unreachable!()
            };
            let at = rel as usize;
            assert_eq!(&out[at..at + blen as usize], &body[..]);
            let stored_crc = u32::from_le_bytes(out[at - 4..at].try_into().expect("4 bytes"));
            assert_eq!(stored_crc, crc32fast::hash(body));
        }
    }

    #[test]
    fn batch_round_trips_and_locates_bodies() {
        let records = sample();
        let mut out = Vec::new();
        let mut bodies = Vec::new();
        encode_batch(&records, &mut out, &mut bodies).expect("encode");
        assert_eq!(out.len(), encoded_len(&records), "size estimate is exact");
        let (len, crc) = frame_header(&out);
        assert_eq!(len as usize, out.len() - FRAME_HEADER_LEN);
        let payload = &out[FRAME_HEADER_LEN..];
        assert_eq!(crc, crc32fast::hash(payload));
        assert_eq!(bodies.len(), 2);
        let (rel, blen) = bodies[0];
        assert_eq!(
            &out[rel as usize..rel as usize + blen as usize],
            b"hello body"
        );

        let mut decoded = Vec::new();
        decode_batch(payload, FRAME_HEADER_LEN as u64, |d| {
            decoded.push(d);
            Ok(())
        })
        .expect("decode");
        assert_eq!(decoded.len(), 4);
        match &decoded[0] {
            Decoded::Enqueue {
                entity,
                seq,
                meta,
                body_offset,
                body_len,
            } => {
                assert_eq!((*entity, *seq), (7, 42));
                let Record::Enqueue { meta: want, .. } = &records[0] else {
                    unreachable!()
                };
                assert_eq!(meta, want);
                assert_eq!(*body_offset, rel, "offset is absolute");
                assert_eq!(*body_len, 10);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            decoded[1],
            Decoded::Update {
                entity: 7,
                seq: 42,
                delivery_count: 4,
                state: MessageState::Deferred
            }
        ));
        assert!(matches!(decoded[2], Decoded::Remove { entity: 7, seq: 42 }));

        // The same records through an index: everything but the bodies survives.
        let mut idx = Vec::new();
        start_index(&mut idx, 3, 1234);
        for d in &decoded {
            index_record(d, &mut idx).expect("index");
        }
        finish_index(&mut idx);
        let entries = check_index(&idx, 3, 1234).expect("valid");
        let mut again = Vec::new();
        decode_index(entries, |d| {
            again.push(d);
            Ok(())
        })
        .expect("decode index");
        assert_eq!(format!("{decoded:?}"), format!("{again:?}"));
    }

    #[test]
    fn an_index_is_refused_if_damaged_stale_or_foreign() {
        let mut idx = Vec::new();
        start_index(&mut idx, 3, 1234);
        index_record(&Decoded::Remove { entity: 1, seq: 2 }, &mut idx).expect("index");
        finish_index(&mut idx);
        assert!(check_index(&idx, 3, 1234).is_ok());
        assert!(check_index(&idx, 4, 1234).is_err(), "other segment");
        assert!(check_index(&idx, 3, 1235).is_err(), "segment grew");
        for i in 0..idx.len() {
            let mut bad = idx.clone();
            bad[i] ^= 0x10;
            assert!(check_index(&bad, 3, 1234).is_err(), "flipped byte {i}");
        }
        for cut in 0..idx.len() {
            assert!(check_index(&idx[..cut], 3, 1234).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn checkpoint_round_trips() {
        let map: std::collections::BTreeMap<EntityId, Seq> = [(1, 10), (4, 99)].into();
        let mut out = vec![0xAA];
        encode_checkpoint(map.iter(), &mut out).expect("encode");
        let payload = &out[1 + FRAME_HEADER_LEN..];
        let mut got = Vec::new();
        decode_batch(payload, 0, |d| {
            got.push(d);
            Ok(())
        })
        .expect("decode");
        match &got[..] {
            [Decoded::Checkpoint(e)] => assert_eq!(e, &vec![(1, 10), (4, 99)]),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn truncated_or_garbage_payloads_are_errors() {
        let mut out = Vec::new();
        encode_batch(&sample(), &mut out, &mut Vec::new()).expect("encode");
        let payload = &out[FRAME_HEADER_LEN..];
        for cut in 0..payload.len() {
            assert!(
                decode_batch(&payload[..cut], 0, |_| Ok(())).is_err(),
                "cut at {cut}"
            );
        }
        let mut bad_tag = payload.to_vec();
        bad_tag[4] = 99;
        assert!(decode_batch(&bad_tag, 0, |_| Ok(())).is_err());
    }

    #[test]
    fn header_checks_magic_and_version() {
        let h = segment_header(17);
        assert_eq!(parse_segment_header(&h), Ok(17));
        let mut bad = h;
        bad[0] = b'X';
        assert!(parse_segment_header(&bad).is_err());
        for other in [1, 3] {
            let mut v = h;
            v[8] = other;
            assert!(parse_segment_header(&v).is_err(), "version {other}");
        }
    }
}
