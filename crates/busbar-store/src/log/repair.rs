//! Salvaging a damaged store directory (`busbar repair`).
//!
//! Opening refuses a log damaged anywhere but in a torn tail (see `recover::scan`). Repair
//! reads every segment whole, trusting no index, keeps every frame that checks out, and
//! rewrites each damaged segment under its own number as its header followed by those
//! frames, in order; the damaged original stays beside it as `NNNNNNNN.log.damaged`. A
//! segment missing from the numbering is replaced by an empty one. What could not be kept
//! is reported: each damaged range (offset, length, why) and, from the frames in it whose
//! structure still decodes, the messages they enqueued or removed.
//!
//! Dropping frames leaves the rest consistent: replay keys messages by (entity, sequence
//! number) and takes body positions from where the frames now are; the body reference in a
//! removal is only used by a live store, for the segment number, which does not change.
//! Losing a frame loses exactly its records: an enqueue (the message is gone), a removal
//! (the message comes back and is delivered again), an update (an older delivery count or
//! state), a checkpoint (an entity with no message left may reuse sequence numbers).

use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::Path;

use crate::{EntityId, Seq, StoreError};

use super::codec::{self, Decoded, FRAME_HEADER_LEN, HEADER_LEN};
use super::recover::{self, remove_index, segment_file_name, segment_path};
use super::{lock_dir, sync_dir};

/// Whether [`repair`] changes the directory or only reports what it would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Apply {
    Yes,
    No,
}

/// A stretch of a segment that holds no valid frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostRange {
    pub offset: u64,
    pub bytes: u64,
    /// What is wrong with the first frame of the range.
    pub reason: String,
    /// Frames of the range whose records could still be decoded (their checksum fails).
    pub frames_decoded: usize,
    /// Whether those frames cover the whole range, so the lists below are complete.
    pub fully_decoded: bool,
    /// (entity, sequence number) of the messages those frames enqueued.
    pub enqueues: Vec<(EntityId, Seq)>,
    /// (entity, sequence number) of the messages those frames removed: they come back.
    pub removals: Vec<(EntityId, Seq)>,
}

/// What repair found (and did) in one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentReport {
    pub file: String,
    /// The segment was missing from the numbering; it is replaced by an empty one.
    pub missing: bool,
    /// Why the header was unusable; it is rewritten.
    pub bad_header: Option<String>,
    /// Damage to data that had been acknowledged.
    pub lost: Vec<LostRange>,
    /// Damage at the end of the last segment with nothing valid after it: a write torn
    /// by a crash, never acknowledged.
    pub torn_tail: Option<LostRange>,
    pub frames_kept: usize,
    /// Where the damaged original was kept, once repaired.
    pub backup: Option<String>,
}

/// Everything [`repair`] found, segment by segment; only segments with a problem appear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairReport {
    pub segments: Vec<SegmentReport>,
    pub applied: bool,
}

impl RepairReport {
    /// Nothing was wrong.
    pub fn is_clean(&self) -> bool {
        self.segments.is_empty()
    }

    /// Bytes of acknowledged data that could not be kept (torn tails not counted).
    pub fn lost_bytes(&self) -> u64 {
        self.segments
            .iter()
            .flat_map(|s| &s.lost)
            .map(|r| r.bytes)
            .sum()
    }
}

impl fmt::Display for RepairReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_clean() {
            return writeln!(f, "no damage found");
        }
        for s in &self.segments {
            if s.missing {
                writeln!(f, "{}: missing; everything it held is lost", s.file)?;
                continue;
            }
            writeln!(f, "{}: {} valid frames kept", s.file, s.frames_kept)?;
            if let Some(reason) = &s.bad_header {
                writeln!(f, "  header unusable ({reason}); rewritten")?;
            }
            for r in &s.lost {
                write_range(f, "lost", r)?;
            }
            if let Some(r) = &s.torn_tail {
                write_range(f, "torn tail (never acknowledged), dropped", r)?;
            }
            match (&s.backup, self.applied) {
                (Some(backup), _) => writeln!(f, "  original kept as {backup}")?,
                (None, false) => writeln!(f, "  (dry run: nothing changed)")?,
                (None, true) => {}
            }
        }
        writeln!(f, "acknowledged data lost: {} bytes", self.lost_bytes())
    }
}

fn write_range(f: &mut fmt::Formatter<'_>, what: &str, r: &LostRange) -> fmt::Result {
    writeln!(
        f,
        "  {what}: offset {}, {} bytes ({})",
        r.offset, r.bytes, r.reason
    )?;
    let keys = |list: &[(EntityId, Seq)]| {
        list.iter()
            .map(|(entity, seq)| format!("entity {entity} seq {seq}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let completeness = if r.fully_decoded {
        "all of them"
    } else {
        "the rest of the range is unreadable"
    };
    if r.frames_decoded > 0 {
        writeln!(
            f,
            "    {} damaged frames still decode ({completeness})",
            r.frames_decoded
        )?;
    }
    if !r.enqueues.is_empty() {
        writeln!(f, "    messages lost: {}", keys(&r.enqueues))?;
    }
    if !r.removals.is_empty() {
        writeln!(
            f,
            "    removals lost (these messages come back): {}",
            keys(&r.removals)
        )?;
    }
    Ok(())
}

/// Checks every segment of the store in `dir` and, with [`Apply::Yes`], rewrites the
/// damaged ones from their valid frames so the store opens again. Takes the directory's
/// lock, so it refuses to run while a broker has the store open.
pub fn repair(dir: &Path, apply: Apply) -> Result<RepairReport, StoreError> {
    let _lock = lock_dir(dir)?;
    let ids = recover::list(dir)?.segments;
    let mut segments = Vec::new();
    let mut data = Vec::new();
    for (i, &id) in ids.iter().enumerate() {
        if let Some(&prev) = i.checked_sub(1).and_then(|p| ids.get(p)) {
            for missing in prev + 1..id {
                if apply == Apply::Yes {
                    write_segment(dir, missing, &[], &[])?;
                }
                segments.push(SegmentReport {
                    file: segment_file_name(missing),
                    missing: true,
                    bad_header: None,
                    lost: Vec::new(),
                    torn_tail: None,
                    frames_kept: 0,
                    backup: None,
                });
            }
        }
        data.clear();
        File::open(segment_path(dir, id))?.read_to_end(&mut data)?;
        let (mut report, kept) = examine(id, &data, i + 1 == ids.len());
        let damaged =
            report.bad_header.is_some() || !report.lost.is_empty() || report.torn_tail.is_some();
        if !damaged {
            continue;
        }
        if apply == Apply::Yes {
            report.backup = write_segment(dir, id, &data, &kept)?;
            tracing::warn!(file = %report.file, lost_ranges = report.lost.len(), "rewrote a damaged log segment from its valid frames");
        }
        segments.push(report);
    }
    if apply == Apply::Yes && !segments.is_empty() {
        sync_dir(dir)?;
    }
    Ok(RepairReport {
        segments,
        applied: apply == Apply::Yes,
    })
}

/// Finds the valid frames of segment `id` (byte ranges in `data`) and describes the rest.
fn examine(id: u32, data: &[u8], is_last: bool) -> (SegmentReport, Vec<(usize, usize)>) {
    let mut report = SegmentReport {
        file: segment_file_name(id),
        missing: false,
        bad_header: None,
        lost: Vec::new(),
        torn_tail: None,
        frames_kept: 0,
        backup: None,
    };
    let header = HEADER_LEN as usize;
    if data.len() < header && is_last {
        // Torn while the segment was being created; `open` would rewrite it.
        report.torn_tail = Some(describe(
            data,
            0,
            data.len(),
            "segment header is short".into(),
        ));
    } else {
        match codec::parse_segment_header(data) {
            Ok(named) if named == id => {}
            Ok(named) => {
                report.bad_header = Some(format!("it names segment {named}"));
            }
            Err(reason) => report.bad_header = Some(reason),
        }
    }
    let mut kept = Vec::new();
    let mut pos = header;
    while pos < data.len() {
        match recover::sound_frame_end(data, pos) {
            Ok(end) => {
                kept.push((pos, end));
                pos = end;
            }
            Err(_) if is_last && recover::nonzero_end(data, pos).is_none() => {
                // The zero tail of the segment being written (see `prepare`): not damage.
                break;
            }
            Err(reason) => {
                let next = recover::resync(data, pos);
                let end = next.unwrap_or(data.len());
                let range = describe(data, pos, end, reason);
                if next.is_none() && is_last {
                    report.torn_tail = Some(range);
                } else {
                    report.lost.push(range);
                }
                pos = end;
            }
        }
    }
    report.frames_kept = kept.len();
    (report, kept)
}

/// Describes the damaged range `start..end`: follows the frames' length fields as far as
/// they lead and lists the records of every frame that still decodes.
fn describe(data: &[u8], start: usize, end: usize, reason: String) -> LostRange {
    let mut range = LostRange {
        offset: start as u64,
        bytes: (end - start) as u64,
        reason,
        frames_decoded: 0,
        fully_decoded: false,
        enqueues: Vec::new(),
        removals: Vec::new(),
    };
    let mut pos = start;
    while end - pos >= FRAME_HEADER_LEN {
        let (len, _) = codec::frame_header(&data[pos..pos + FRAME_HEADER_LEN]);
        let payload = pos + FRAME_HEADER_LEN;
        if len == 0 || len as usize > end - payload {
            break;
        }
        let next = payload + len as usize;
        let (mut enqueues, mut removals) = (Vec::new(), Vec::new());
        let decoded = codec::decode_batch(&data[payload..next], payload as u64, |rec| {
            match rec {
                Decoded::Enqueue { entity, seq, .. } => enqueues.push((entity, seq)),
                Decoded::Remove { entity, seq } => removals.push((entity, seq)),
                Decoded::Update { .. } | Decoded::Checkpoint(_) => {}
            }
            Ok(())
        });
        if decoded.is_err() {
            break;
        }
        range.frames_decoded += 1;
        range.enqueues.append(&mut enqueues);
        range.removals.append(&mut removals);
        pos = next;
    }
    range.fully_decoded = pos == end;
    range
}

/// Replaces segment `id` with its header and the `kept` frames of `data`, keeping the
/// original (if there is one) as a backup whose name it returns. Crash-safe: the new segment is
/// complete and synced before it takes the name.
fn write_segment(
    dir: &Path,
    id: u32,
    data: &[u8],
    kept: &[(usize, usize)],
) -> Result<Option<String>, StoreError> {
    let path = segment_path(dir, id);
    let tmp = dir.join(format!("{}.repair", segment_file_name(id)));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&codec::segment_header(id))?;
        for &(start, end) in kept {
            f.write_all(&data[start..end])?;
        }
        f.sync_all()?;
    }
    let backup = if path.exists() {
        let name = free_backup_name(dir, id);
        fs::hard_link(&path, dir.join(&name))?;
        Some(name)
    } else {
        None
    };
    // An index describes the old bytes; the next open rebuilds it.
    remove_index(dir, id)?;
    fs::rename(&tmp, &path)?;
    Ok(backup)
}

fn free_backup_name(dir: &Path, id: u32) -> String {
    let base = format!("{}.damaged", segment_file_name(id));
    std::iter::once(base.clone())
        .chain((2..).map(|n| format!("{base}.{n}")))
        .find(|name| !dir.join(name).exists())
        .unwrap_or(base)
}
