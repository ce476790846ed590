//! Segments written ahead with zeros: the segment being written has a zero tail, which
//! recovery takes as the end of the log, and a sealed segment holds exactly its frames.

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};

use busbar_store::conformance::{commit, enqueue, wait_until};
use busbar_store::log::{LogOptions, LogStore, repair};
use busbar_store::{Recovered, Store};

const SEGMENT: u64 = 1 << 20;
const HEADER_LEN: usize = 16;
const FRAME_HEADER_LEN: usize = 8;
/// Set in the process that `a_crash_while_writing_into_a_zero_tail_loses_nothing` kills.
const CRASH_DIR: &str = "BUSBAR_STORE_CRASH_DIR";

fn options() -> LogOptions {
    LogOptions {
        segment_bytes: SEGMENT,
        ..LogOptions::default()
    }
}

fn open(dir: &Path) -> (LogStore, Recovered) {
    LogStore::open(dir, options()).expect("open")
}

fn segment(dir: &Path, id: u32) -> std::path::PathBuf {
    dir.join(format!("{id:08}.log"))
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).expect("metadata").len()
}

fn seqs(recovered: &Recovered) -> Vec<u64> {
    recovered.messages.iter().map(|m| m.seq).collect()
}

fn body(seq: u64) -> Vec<u8> {
    vec![seq as u8; 1000]
}

/// Where the frames of a segment's bytes end, following their lengths: at the first frame
/// header of zeros or the end of the data.
fn frames_end(data: &[u8]) -> usize {
    let mut end = HEADER_LEN;
    while let Some(header) = data.get(end..end + FRAME_HEADER_LEN) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        if len == 0 {
            break;
        }
        end += FRAME_HEADER_LEN + len as usize;
    }
    end
}

/// Commits 1 KiB messages (entity 1, seq from 1) until segment 2, prepared ahead, is the
/// one being written; calls `acked` after each commit and returns the next seq.
fn write_into_a_prepared_segment(store: &LogStore, dir: &Path, acked: &mut impl FnMut(u64)) -> u64 {
    let mut seq = 1;
    let mut put = |seq: &mut u64| {
        commit(store, vec![enqueue(1, *seq, &body(*seq))]);
        acked(*seq);
        *seq += 1;
    };
    // Past half of segment 1 the writer asks for segment 2 to be prepared.
    while file_len(&segment(dir, 1)) <= SEGMENT / 2 {
        put(&mut seq);
    }
    wait_until("segment 2 prepared", || {
        dir.join("00000002.log.next").exists()
    });
    while !segment(dir, 2).exists() {
        put(&mut seq);
    }
    put(&mut seq);
    assert_eq!(
        file_len(&segment(dir, 2)),
        SEGMENT,
        "segment 2 was taken as prepared, zeros to its full size"
    );
    assert!(!dir.join("00000002.log.next").exists());
    seq
}

/// Not a test on its own: the process that the crash test kills. Writes into a prepared
/// segment, printing each acknowledged seq, until it is killed.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CRASH_DIR) else {
        return;
    };
    let dir = Path::new(&dir);
    let (store, _) = open(dir);
    let mut out = std::io::stdout().lock();
    let mut acked = |seq: u64| {
        writeln!(out, "acked {seq}").expect("stdout");
        out.flush().expect("stdout");
    };
    let mut seq = write_into_a_prepared_segment(&store, dir, &mut acked);
    // Small messages, so that the kill lands in segment 2, before any roll.
    loop {
        commit(&store, vec![enqueue(1, seq, b"small")]);
        acked(seq);
        seq += 1;
    }
}

#[test]
fn a_crash_while_writing_into_a_zero_tail_loses_nothing_and_the_tail_stays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CRASH_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the writing process");
    let stdout = child.stdout.take().expect("child stdout");
    let mut acked = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read child output");
        // The first line also holds the test harness's own "test crash_child ... ".
        if let Some((_, seq)) = line.split_once("acked ") {
            acked.push(seq.parse::<u64>().expect("seq"));
            // Well into segment 2: over a thousand 1 KiB messages, then small ones.
            if acked.len() == 1500 {
                break;
            }
        }
    }
    assert_eq!(acked.len(), 1500, "the writing process died early");
    child.kill().expect("kill -9");
    child.wait().expect("reap");

    let last = segment(dir.path(), 2);
    assert!(!segment(dir.path(), 3).exists());
    assert_eq!(file_len(&last), SEGMENT, "killed while writing a zero tail");
    let (store, recovered) = open(dir.path());
    let got = seqs(&recovered);
    assert!(
        got.len() >= acked.len() && got[..acked.len()] == acked[..],
        "every acknowledged message is back, in order: {} of {}",
        got.len(),
        acked.len()
    );
    assert_eq!(file_len(&last), SEGMENT, "the zero tail is kept, not cut");
    let next = got.last().copied().unwrap_or(0) + 1;
    commit(&store, vec![enqueue(1, next, b"after the crash")]);
    store.close().expect("close");
    drop(store);
    let (_, again) = open(dir.path());
    assert_eq!(again.messages.len(), got.len() + 1);
    assert!(
        repair::repair(dir.path(), repair::Apply::No)
            .expect("repair dry run")
            .is_clean()
    );
}

#[test]
fn a_torn_frame_followed_by_zeros_is_dropped_and_the_zeros_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = open(dir.path());
    let next = write_into_a_prepared_segment(&store, dir.path(), &mut |_| {});
    store.close().expect("close");
    drop(store);

    let last = segment(dir.path(), 2);
    let end = frames_end(&fs::read(&last).expect("read")) as u64;
    // The start of a frame whose rest never reached the disk: a length and checksum,
    // part of its payload, then the zeros that were there before.
    let mut torn = 700u32.to_le_bytes().to_vec();
    torn.extend_from_slice(&0xdead_beefu32.to_le_bytes());
    torn.extend_from_slice(&[0x5a; 300]);
    let file = OpenOptions::new().write(true).open(&last).expect("open");
    file.write_all_at(&torn, end).expect("write torn frame");
    drop(file);

    let (store, recovered) = open(dir.path());
    assert_eq!(seqs(&recovered), (1..next).collect::<Vec<_>>());
    let data = fs::read(&last).expect("read");
    assert_eq!(data.len() as u64, SEGMENT, "the zero tail is kept");
    let frames = frames_end(&data);
    assert!(
        data[frames..].iter().all(|&b| b == 0),
        "nothing of the torn frame is left after the frames"
    );
    // A frame written over the zeros where the torn one was is recovered whole.
    commit(&store, vec![enqueue(1, next, b"x")]);
    store.close().expect("close");
    drop(store);
    let (_, again) = open(dir.path());
    assert_eq!(seqs(&again), (1..=next).collect::<Vec<_>>());
}

#[test]
fn a_sealed_segment_holds_exactly_its_frames() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = open(dir.path());
    let mut seq = write_into_a_prepared_segment(&store, dir.path(), &mut |_| {});
    while !segment(dir.path(), 3).exists() {
        commit(&store, vec![enqueue(1, seq, &body(seq))]);
        seq += 1;
    }
    store.close().expect("close");
    drop(store);

    for id in [1, 2] {
        let data = fs::read(segment(dir.path(), id)).expect("read");
        assert_eq!(
            frames_end(&data),
            data.len(),
            "segment {id} ends with its last frame"
        );
    }
    let report = repair::repair(dir.path(), repair::Apply::No).expect("repair dry run");
    assert!(report.is_clean(), "{report}");
    let (_, recovered) = open(dir.path());
    assert_eq!(seqs(&recovered), (1..seq).collect::<Vec<_>>());
}

#[test]
fn a_leftover_prepared_segment_is_not_taken_for_data_at_open() {
    // A real segment 2 full of another entity's messages, left under the prepared name.
    let other = tempfile::tempdir().expect("tempdir");
    let (store, _) = LogStore::open(
        other.path(),
        LogOptions {
            segment_bytes: 4096,
            ..LogOptions::default()
        },
    )
    .expect("open");
    let mut seq = 1;
    while !segment(other.path(), 3).exists() {
        commit(&store, vec![enqueue(9, seq, &body(seq))]);
        seq += 1;
    }
    store.close().expect("close");

    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = open(dir.path());
    commit(&store, vec![enqueue(1, 1, b"one")]);
    store.close().expect("close");
    drop(store);
    let leftover = dir.path().join("00000002.log.next");
    fs::copy(segment(other.path(), 2), &leftover).expect("copy");
    let half_prepared = dir.path().join("00000003.log.next.tmp");
    fs::write(&half_prepared, [0u8; 100]).expect("write");

    let (store, recovered) = open(dir.path());
    assert!(
        recovered.messages.iter().all(|m| m.entity == 1),
        "nothing of the leftover is replayed"
    );
    assert!(!leftover.exists(), "the leftover is removed at open");
    assert!(
        !half_prepared.exists(),
        "the half-prepared file is removed at open"
    );
    // Rolling to segment 2 later never takes the leftover's bytes.
    let mut seq = 2;
    while !segment(dir.path(), 3).exists() {
        commit(&store, vec![enqueue(1, seq, &body(seq))]);
        seq += 1;
    }
    store.close().expect("close");
    drop(store);
    let (_, recovered) = open(dir.path());
    assert_eq!(seqs(&recovered), (1..seq).collect::<Vec<_>>());
    assert!(recovered.messages.iter().all(|m| m.entity == 1));
}
