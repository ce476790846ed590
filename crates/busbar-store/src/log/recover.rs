//! Replaying segments at open.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
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

/// One segment found on disk, after any torn tail was cut off.
pub(crate) struct Segment {
    pub id: u32,
    pub file: File,
    pub len: u64,
}

pub(crate) struct Scan {
    pub segments: Vec<Segment>,
    pub messages: HashMap<(EntityId, Seq), RecoveredMessage>,
    pub last_seq: HashMap<EntityId, Seq>,
}

/// Segment ids present in `dir`, ascending.
fn list_segments(dir: &Path) -> Result<Vec<u32>, StoreError> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".log") else {
            continue;
        };
        if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        match stem.parse::<u32>() {
            Ok(id) => ids.push(id),
            Err(_) => {
                return Err(StoreError::Corrupt {
                    file: name.to_string(),
                    offset: 0,
                    reason: "segment number out of range".into(),
                });
            }
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

enum Frame {
    /// Payload range and the offset of the next frame.
    Valid {
        payload: (usize, usize),
    },
    Invalid {
        reason: String,
        next: Option<usize>,
    },
}

fn check_frame(data: &[u8], pos: usize) -> Frame {
    if data.len() - pos < FRAME_HEADER_LEN {
        return Frame::Invalid {
            reason: "short frame header".into(),
            next: None,
        };
    }
    let (len, crc) = codec::frame_header(&data[pos..pos + FRAME_HEADER_LEN]);
    if len == 0 {
        // Never written: every payload holds at least a record count.
        return Frame::Invalid {
            reason: "empty frame".into(),
            next: None,
        };
    }
    let start = pos + FRAME_HEADER_LEN;
    let end = match start.checked_add(len as usize) {
        Some(end) if end <= data.len() => end,
        _ => {
            return Frame::Invalid {
                reason: "frame runs past the end of the file".into(),
                next: None,
            };
        }
    };
    if crc32fast::hash(&data[start..end]) != crc {
        return Frame::Invalid {
            reason: "checksum mismatch".into(),
            next: Some(end),
        };
    }
    Frame::Valid {
        payload: (start, end),
    }
}

/// Reads every segment in order and applies its records.
///
/// A bad frame at the end of the last segment is a write torn by a crash: it was never
/// acknowledged, so it is cut off. A bad frame anywhere else, or one in the last segment
/// whose declared successor is a valid frame, is damage to acknowledged data and refuses
/// the open. (A frame whose length field itself is damaged hides its successor; that case
/// is indistinguishable from a torn tail and is treated as one.)
pub(crate) fn scan(dir: &Path) -> Result<Scan, StoreError> {
    let ids = list_segments(dir)?;
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
    let mut out = Scan {
        segments: Vec::with_capacity(ids.len()),
        messages: HashMap::new(),
        last_seq: HashMap::new(),
    };
    let mut data = Vec::new();
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
            out.segments.push(Segment {
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

        let mut pos = HEADER_LEN as usize;
        while pos < data.len() {
            match check_frame(&data, pos) {
                Frame::Valid {
                    payload: (start, end),
                } => {
                    let frame_body = start as u64;
                    codec::decode_batch(&data[start..end], |rec| {
                        apply(&mut out.messages, &mut out.last_seq, id, frame_body, rec)
                    })
                    .map_err(|reason| corrupt(pos, reason))?;
                    pos = end;
                }
                Frame::Invalid { reason, next } => {
                    let followed_by_valid = next.is_some_and(|n| {
                        n < data.len() && matches!(check_frame(&data, n), Frame::Valid { .. })
                    });
                    if !is_last || followed_by_valid {
                        return Err(corrupt(pos, reason));
                    }
                    tracing::warn!(
                        file = %path.display(),
                        offset = pos,
                        dropped_bytes = data.len() - pos,
                        %reason,
                        "truncating a torn write at the end of the log"
                    );
                    file.set_len(pos as u64)?;
                    file.sync_all()?;
                    data.truncate(pos);
                }
            }
        }
        out.segments.push(Segment {
            id,
            file,
            len: data.len() as u64,
        });
    }
    Ok(out)
}

/// Applies one record. Updates and removals of unknown messages are ignored: their
/// enqueue lived in a segment that was reclaimed once every body in it was removed.
fn apply(
    messages: &mut HashMap<(EntityId, Seq), RecoveredMessage>,
    last_seq: &mut HashMap<EntityId, Seq>,
    segment: u32,
    payload_offset: u64,
    rec: Decoded,
) {
    match rec {
        Decoded::Enqueue {
            entity,
            seq,
            meta,
            body_pos,
            body_len,
        } => {
            let last = last_seq.entry(entity).or_insert(0);
            *last = (*last).max(seq);
            messages.insert(
                (entity, seq),
                RecoveredMessage {
                    entity,
                    seq,
                    meta,
                    body: BodyRef {
                        segment,
                        offset: payload_offset + body_pos as u64,
                        len: body_len,
                    },
                },
            );
        }
        Decoded::Update {
            entity,
            seq,
            delivery_count,
            state,
        } => {
            if let Some(m) = messages.get_mut(&(entity, seq)) {
                m.meta.delivery_count = delivery_count;
                m.meta.state = state;
            }
        }
        Decoded::Remove { entity, seq, .. } => {
            messages.remove(&(entity, seq));
        }
        Decoded::Checkpoint(entries) => {
            for (entity, seq) in entries {
                let last = last_seq.entry(entity).or_insert(0);
                *last = (*last).max(seq);
            }
        }
    }
}
