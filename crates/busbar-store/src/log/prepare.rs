//! Segments written ahead of time, so that the writer's `fdatasync` has no metadata to
//! commit.
//!
//! Appending to a file makes every sync also commit the file's new size and its newly
//! allocated blocks to the file system's journal, which costs CPU and several more waits
//! on the disk per sync. So the segment the writer will move to next is prepared by a
//! background thread: its header and then zeros up to the segment size are written and
//! synced as `NNNNNNNN.log.next.tmp`, which is then renamed `NNNNNNNN.log.next`. At the
//! roll, the writer renames that file to `NNNNNNNN.log` and overwrites its zeros frame by
//! frame; if it is not there yet, the writer creates the segment empty and appends, as it
//! would without preparation. The writer asks for the next segment once the current one
//! is half full, so stores that write little never pay for a prepared segment.
//!
//! Only the segment being written has such a zero tail: sealing a segment cuts it to its
//! last frame (see `write_group`), and recovery takes a zero frame header in the last
//! segment, with nothing but zeros after it, as the end of the log. A prepared file is
//! never mistaken for a segment: its name differs, and opening the store removes any left
//! over.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use super::codec;
use super::recover::{remove_if_present, segment_file_name, segment_path};
use super::{Shared, is_no_space};

/// Zeros are written in pieces of this size, checking between them whether to stop.
const ZEROS_PER_WRITE: usize = 1 << 20;

pub(crate) fn prepared_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{}.next", segment_file_name(id)))
}

fn preparing_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{}.next.tmp", segment_file_name(id)))
}

/// Prepares each segment the writer asks for, off the write path.
pub(crate) fn preparer_loop(shared: Arc<Shared>, wanted: Receiver<u32>) {
    // Segments prepared and perhaps not taken yet.
    let mut prepared: Vec<u32> = Vec::new();
    while let Ok(id) = wanted.recv() {
        let dir = &shared.dir;
        // The writer asks for `id` once it writes `id - 1`: a file prepared for an earlier
        // one came too late and was never taken (a group spanning two segments skips a
        // request, so not only `id - 1`). One the writer took is no longer there.
        prepared.retain(|&stale| {
            if stale >= id {
                return true;
            }
            if let Err(e) = remove_if_present(&prepared_path(dir, stale)) {
                tracing::warn!(segment = stale, error = %e, "could not remove an unused prepared log segment");
            }
            false
        });
        // The writer may have moved past it already (it created the segment itself).
        if shared.lock().segment >= id {
            continue;
        }
        match prepare(&shared, id) {
            Ok(true) => {
                prepared.push(id);
                tracing::debug!(segment = id, "prepared the next log segment");
            }
            Ok(false) => {}
            Err(e) => {
                if is_no_space(&e) {
                    tracing::debug!(segment = id, "no room to prepare the next log segment");
                } else {
                    tracing::warn!(segment = id, error = %e, "could not prepare the next log segment; it will be created when needed");
                }
                if let Err(e) = remove_if_present(&preparing_path(dir, id)) {
                    tracing::warn!(segment = id, error = %e, "could not remove a partly prepared log segment");
                }
            }
        }
    }
}

/// Writes segment `id`'s header and zeros to the segment size, durably, under the prepared
/// name; false if the store closed first (and nothing is left behind).
fn prepare(shared: &Shared, id: u32) -> std::io::Result<bool> {
    let dir = &shared.dir;
    let tmp = preparing_path(dir, id);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    file.write_all_at(&codec::segment_header(id), 0)?;
    let zeros = vec![0u8; ZEROS_PER_WRITE];
    let mut at = codec::HEADER_LEN;
    while at < shared.segment_bytes {
        // Stopped when the store closes, or when the writer got to `id` first (it then
        // created the segment itself, and these zeros would only compete with its syncs).
        let overtaken = {
            let st = shared.lock();
            st.closing || st.written.0 >= id
        };
        if overtaken {
            drop(file);
            remove_if_present(&tmp)?;
            return Ok(false);
        }
        let n = (shared.segment_bytes - at).min(ZEROS_PER_WRITE as u64);
        file.write_all_at(&zeros[..n as usize], at)?;
        at += n;
    }
    file.sync_all()?;
    shared.stats.count_fsync();
    fs::rename(&tmp, prepared_path(dir, id))?;
    Ok(true)
}

/// Takes the prepared segment `id` if it is ready: renamed into place and opened. The
/// caller syncs the directory.
pub(crate) fn take_prepared(dir: &Path, id: u32) -> std::io::Result<Option<File>> {
    match fs::rename(prepared_path(dir, id), segment_path(dir, id)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(segment_path(dir, id))
        .map(Some)
}
