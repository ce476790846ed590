//! Behaviour specific to the embedded log: torn tails, corruption, segment rolling and
//! reclamation, the directory lock.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use busbar_store::conformance::{block_on, commit, enqueue};
use busbar_store::log::{LogOptions, LogStore, repair};
use busbar_store::{BodyRef, Record, Recovered, Store, StoreError};

fn open(dir: &Path) -> (LogStore, Recovered) {
    LogStore::open(dir, LogOptions::default()).expect("open")
}

fn open_small(dir: &Path, segment_bytes: u64) -> Result<(LogStore, Recovered), StoreError> {
    LogStore::open(
        dir,
        LogOptions {
            segment_bytes,
            ..LogOptions::default()
        },
    )
}

fn files_ending(dir: &Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(suffix))
        .collect();
    names.sort();
    names
}

fn segments(dir: &Path) -> Vec<String> {
    files_ending(dir, ".log")
}

fn indexes(dir: &Path) -> Vec<String> {
    files_ending(dir, ".idx")
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).expect("metadata").len()
}

fn keys(r: &Recovered) -> Vec<(u32, u64)> {
    r.messages.iter().map(|m| (m.entity, m.seq)).collect()
}

fn remove(entity: u32, seq: u64, body: BodyRef) -> Record {
    Record::Remove { entity, seq, body }
}

#[test]
fn garbage_after_the_last_frame_is_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = dir.path().join("00000001.log");
    let (store, _) = open(dir.path());
    commit(&store, vec![enqueue(1, 1, b"one"), enqueue(1, 2, b"two")]);
    store.close().expect("close");
    drop(store);
    let good_len = file_len(&seg);

    let mut f = OpenOptions::new()
        .append(true)
        .open(&seg)
        .expect("open seg");
    f.write_all(&[0x5a; 37]).expect("write garbage");
    drop(f);

    let (store, rec) = open(dir.path());
    assert_eq!(keys(&rec), vec![(1, 1), (1, 2)]);
    assert_eq!(
        store.read_body(rec.messages[1].body).expect("read"),
        &b"two"[..]
    );
    assert!(
        file_len(&seg) < good_len + 37,
        "the garbage was cut off (only a checkpoint was appended)"
    );
    commit(&store, vec![enqueue(1, 3, b"three")]);
    store.close().expect("close");
    drop(store);
    let (_, rec) = open(dir.path());
    assert_eq!(keys(&rec), vec![(1, 1), (1, 2), (1, 3)]);
}

#[test]
fn a_torn_batch_is_dropped_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = dir.path().join("00000001.log");
    let (store, _) = open(dir.path());
    commit(&store, vec![enqueue(1, 1, b"kept")]);
    let before = file_len(&seg);
    commit(
        &store,
        vec![
            enqueue(1, 2, &[7u8; 500]),
            enqueue(1, 3, b"b"),
            enqueue(2, 1, b"c"),
        ],
    );
    store.close().expect("close");
    drop(store);
    let after = file_len(&seg);
    assert!(after > before + 500);

    // Cut inside the payload, and inside the frame header.
    for cut in [after - 5, before + 3, before + 300] {
        let dir2 = tempfile::tempdir().expect("tempdir");
        let seg2 = dir2.path().join("00000001.log");
        fs::copy(&seg, &seg2).expect("copy");
        OpenOptions::new()
            .write(true)
            .open(&seg2)
            .expect("open")
            .set_len(cut)
            .expect("truncate");
        let (_, rec) = open(dir2.path());
        assert_eq!(keys(&rec), vec![(1, 1)], "cut at {cut}: none of the batch");
        assert_eq!(rec.last_seq.get(&1), Some(&1));
        assert_eq!(rec.last_seq.get(&2), None);
    }
}

#[test]
fn corruption_before_valid_frames_refuses_to_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = dir.path().join("00000001.log");
    let (store, _) = open(dir.path());
    commit(&store, vec![enqueue(1, 1, b"a")]);
    let second = file_len(&seg);
    commit(&store, vec![enqueue(1, 2, b"second frame body")]);
    commit(&store, vec![enqueue(1, 3, b"c")]);
    store.close().expect("close");
    drop(store);

    let mut data = fs::read(&seg).expect("read");
    data[second as usize + 20] ^= 0xff;
    fs::write(&seg, &data).expect("write");
    match LogStore::open(dir.path(), LogOptions::default()) {
        Err(StoreError::Corrupt { file, offset, .. }) => {
            assert_eq!(file, "00000001.log");
            assert_eq!(offset, second, "points at the damaged frame");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Nothing was truncated by the refused open.
    assert_eq!(fs::read(&seg).expect("read"), data);
}

#[test]
fn damage_in_an_older_segment_refuses_to_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = open_small(dir.path(), 200).expect("open");
    for seq in 1..=6 {
        commit(&store, vec![enqueue(1, seq, &[seq as u8; 150])]);
    }
    store.close().expect("close");
    drop(store);
    let names = segments(dir.path());
    assert!(names.len() >= 3, "rolled: {names:?}");
    let first = dir.path().join(&names[0]);
    let len = file_len(&first);
    OpenOptions::new()
        .write(true)
        .open(&first)
        .expect("open")
        .set_len(len - 4)
        .expect("truncate");
    match open_small(dir.path(), 200) {
        Err(StoreError::Corrupt { file, .. }) => assert_eq!(file, names[0]),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn a_missing_segment_refuses_to_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = open_small(dir.path(), 200).expect("open");
    for seq in 1..=6 {
        commit(&store, vec![enqueue(1, seq, &[1; 150])]);
    }
    store.close().expect("close");
    drop(store);
    let names = segments(dir.path());
    fs::remove_file(dir.path().join(&names[1])).expect("remove");
    match open_small(dir.path(), 200) {
        Err(StoreError::Corrupt { file, .. }) => assert_eq!(file, names[1]),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn a_foreign_file_refuses_to_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(
        dir.path().join("00000001.log"),
        b"definitely not a busbar log",
    )
    .expect("write");
    assert!(matches!(
        LogStore::open(dir.path(), LogOptions::default()),
        Err(StoreError::Corrupt { offset: 0, .. })
    ));
}

#[test]
fn a_torn_segment_header_is_rewritten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = open_small(dir.path(), 200).expect("open");
    commit(&store, vec![enqueue(1, 1, &[1; 150])]);
    store.close().expect("close");
    drop(store);
    // A crash right after creating the next segment.
    fs::write(dir.path().join("00000002.log"), b"BUSB").expect("write");
    let (store, rec) = open_small(dir.path(), 200).expect("open");
    assert_eq!(keys(&rec), vec![(1, 1)]);
    commit(&store, vec![enqueue(1, 2, &[2; 150])]);
    store.close().expect("close");
    drop(store);
    let (_, rec) = open_small(dir.path(), 200).expect("open");
    assert_eq!(keys(&rec), vec![(1, 1), (1, 2)]);
}

#[test]
fn segments_roll_and_the_head_is_reclaimed_once_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = open_small(dir.path(), 1024).expect("open");
    let mut refs = Vec::new();
    for seq in 1..=10u64 {
        let r = commit(&store, vec![enqueue(1, seq, &[seq as u8; 400])]);
        refs.push((seq, r[0]));
    }
    let names = segments(dir.path());
    assert!(names.len() >= 4, "rolled into several segments: {names:?}");
    for &(seq, r) in &refs {
        assert_eq!(store.read_body(r).expect("read"), vec![seq as u8; 400]);
    }
    let in_segment = |s: u32| -> Vec<(u64, BodyRef)> {
        refs.iter()
            .copied()
            .filter(|(_, r)| r.segment == s)
            .collect()
    };

    // Emptying a segment that is not the head reclaims nothing.
    let third: Vec<Record> = in_segment(3)
        .into_iter()
        .map(|(seq, r)| remove(1, seq, r))
        .collect();
    assert!(!third.is_empty());
    commit(&store, third);
    assert_eq!(segments(dir.path()), names, "segment 3 is not the head");

    // Emptying the head reclaims it, and then segment 3 behind it.
    let first: Vec<Record> = in_segment(1)
        .into_iter()
        .chain(in_segment(2))
        .map(|(seq, r)| remove(1, seq, r))
        .collect();
    commit(&store, first);
    let left = segments(dir.path());
    assert!(
        !left.contains(&names[0]) && !left.contains(&names[1]) && !left.contains(&names[2]),
        "segments 1-3 reclaimed: {left:?}"
    );
    assert!(matches!(
        store.read_body(refs[0].1),
        Err(StoreError::UnknownBody(_))
    ));
    let live: Vec<u64> = refs
        .iter()
        .filter(|(_, r)| r.segment > 3)
        .map(|(s, _)| *s)
        .collect();

    let (store, rec) = {
        store.close().expect("close");
        drop(store);
        open_small(dir.path(), 1024).expect("reopen")
    };
    assert_eq!(rec.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), live);
    assert_eq!(rec.last_seq.get(&1), Some(&10));
    for m in &rec.messages {
        assert_eq!(
            store.read_body(m.body).expect("read"),
            vec![m.seq as u8; 400]
        );
    }

    // Remove everything: all but the current segment go, and last_seq survives.
    let rest: Vec<Record> = rec
        .messages
        .iter()
        .map(|m| remove(1, m.seq, m.body))
        .collect();
    commit(&store, rest);
    commit(&store, vec![enqueue(2, 1, b"elsewhere")]);
    store.close().expect("close");
    drop(store);
    let (store, rec) = open_small(dir.path(), 1024).expect("reopen");
    assert_eq!(keys(&rec), vec![(2, 1)]);
    assert_eq!(
        rec.last_seq.get(&1),
        Some(&10),
        "last_seq outlives its segments"
    );
    assert_eq!(rec.last_seq.get(&2), Some(&1));
    assert!(
        segments(dir.path()).len() <= 2,
        "{:?}",
        segments(dir.path())
    );
    store.close().expect("close");
}

#[test]
fn a_batch_larger_than_a_segment_gets_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = open_small(dir.path(), 1000).expect("open");
    commit(&store, vec![enqueue(1, 1, b"small")]);
    let big = commit(
        &store,
        vec![enqueue(1, 2, &[9; 5000]), enqueue(1, 3, &[8; 10])],
    );
    assert_eq!(big[0].segment, 2);
    assert_eq!(big[1].segment, 2);
    let after = commit(&store, vec![enqueue(1, 4, b"next")]);
    assert_eq!(after[0].segment, 3);
    store.close().expect("close");
    drop(store);
    let (store, rec) = open_small(dir.path(), 1000).expect("reopen");
    assert_eq!(rec.messages.len(), 4);
    assert_eq!(
        store.read_body(rec.messages[1].body).expect("read"),
        vec![9; 5000]
    );
}

#[test]
fn reads_of_bodies_not_yet_written_come_from_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = open_small(dir.path(), 4096).expect("open");
    // Many appends without waiting, across segment rolls; read each right away.
    let mut pending = Vec::new();
    for seq in 1..=300u64 {
        let body = seq.to_le_bytes().repeat(20);
        let (refs, c) = store.append(vec![enqueue(1, seq, &body)]).expect("append");
        assert_eq!(store.read_body(refs[0]).expect("read"), body);
        pending.push(c);
    }
    for c in pending {
        block_on(c).expect("commit");
    }
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = open(dir.path());
    assert!(matches!(
        LogStore::open(dir.path(), LogOptions::default()),
        Err(StoreError::Io(_))
    ));
    drop(store);
    let (_again, _) = open(dir.path());
}

#[test]
fn an_interrupted_catalog_save_keeps_the_previous_catalog() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = open(dir.path());
    store.save_catalog(b"v1").expect("save");
    drop(store);
    fs::write(dir.path().join("catalog.json.tmp"), b"half of v2").expect("write");
    let (_, rec) = open(dir.path());
    assert_eq!(rec.catalog.as_deref(), Some(&b"v1"[..]));
    assert!(!dir.path().join("catalog.json.tmp").exists());
}

/// Several sealed segments of 400-byte bodies (seq n filled with byte n), closed.
fn sealed_log(dir: &Path) -> Vec<BodyRef> {
    let (store, _) = open_small(dir, 1024).expect("open");
    let mut refs = Vec::new();
    for seq in 1..=10u64 {
        refs.push(commit(&store, vec![enqueue(1, seq, &[seq as u8; 400])])[0]);
    }
    store.close().expect("close");
    refs
}

fn flip_byte(path: &Path, at: u64) {
    let mut data = fs::read(path).expect("read");
    data[at as usize] ^= 0xff;
    fs::write(path, &data).expect("write");
}

#[test]
fn every_sealed_segment_gets_an_index_and_the_last_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    sealed_log(dir.path());
    let logs = segments(dir.path());
    assert!(logs.len() >= 4, "rolled: {logs:?}");
    let want: Vec<String> = logs[..logs.len() - 1]
        .iter()
        .map(|n| n.replace(".log", ".idx"))
        .collect();
    assert_eq!(indexes(dir.path()), want);
    for idx in &want {
        assert!(
            file_len(&dir.path().join(idx)) < 400,
            "{idx} holds no bodies"
        );
    }
}

#[test]
fn a_sealed_segment_with_an_index_is_not_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let refs = sealed_log(dir.path());
    assert_eq!(refs[0].segment, 1);
    // Damage a body in sealed segment 1: its frame checksum no longer matches.
    flip_byte(&dir.path().join("00000001.log"), refs[0].offset + 7);

    let (store, rec) = open_small(dir.path(), 1024).expect("the index is trusted");
    assert_eq!(keys(&rec), (1..=10).map(|s| (1, s)).collect::<Vec<_>>());
    assert_eq!(rec.messages[0].body, refs[0]);
    drop(store);

    // Without the index the segment is read whole, and the damage is found.
    fs::remove_file(dir.path().join("00000001.idx")).expect("remove index");
    match open_small(dir.path(), 1024) {
        Err(StoreError::Corrupt { file, .. }) => assert_eq!(file, "00000001.log"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn a_missing_index_is_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let refs = sealed_log(dir.path());
    let idx = dir.path().join("00000002.idx");
    let original = fs::read(&idx).expect("read index");
    fs::remove_file(&idx).expect("remove index");

    let (store, rec) = open_small(dir.path(), 1024).expect("open");
    assert_eq!(keys(&rec), (1..=10).map(|s| (1, s)).collect::<Vec<_>>());
    let bodies: Vec<BodyRef> = rec.messages.iter().map(|m| m.body).collect();
    assert_eq!(bodies, refs);
    assert_eq!(fs::read(&idx).expect("rebuilt"), original);
    store.close().expect("close");
}

#[test]
fn a_damaged_or_stale_index_falls_back_to_reading_the_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let refs = sealed_log(dir.path());
    let idx = dir.path().join("00000001.idx");
    let original = fs::read(&idx).expect("read index");

    type Damage = fn(&mut Vec<u8>);
    let damage: [(&str, Damage); 3] = [
        ("flipped byte", |d| d[30] ^= 1),
        ("truncated", |d| d.truncate(d.len() - 9)),
        ("empty", |d| d.clear()),
    ];
    for (what, damage) in damage {
        let mut data = original.clone();
        damage(&mut data);
        fs::write(&idx, &data).expect("write");
        let (store, rec) = open_small(dir.path(), 1024).expect(what);
        let bodies: Vec<BodyRef> = rec.messages.iter().map(|m| m.body).collect();
        assert_eq!(bodies, refs, "{what}");
        assert_eq!(fs::read(&idx).expect("read"), original, "{what}: rewritten");
        store.close().expect("close");
    }

    // An intact index that belongs to another segment.
    fs::copy(dir.path().join("00000002.idx"), &idx).expect("copy");
    let (store, rec) = open_small(dir.path(), 1024).expect("open");
    assert_eq!(rec.messages.len(), 10);
    assert_eq!(fs::read(&idx).expect("read"), original, "rewritten");
    drop(store);

    // A damaged index is no excuse for a damaged segment: the full read still refuses it.
    flip_byte(&idx, 30);
    flip_byte(&dir.path().join("00000001.log"), refs[0].offset + 7);
    assert!(matches!(
        open_small(dir.path(), 1024),
        Err(StoreError::Corrupt { .. })
    ));
}

#[test]
fn leftover_and_orphaned_index_files_are_removed_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    sealed_log(dir.path());
    let logs = segments(dir.path());
    let last = logs.last().expect("segments").replace(".log", ".idx");
    let copy_of_first = fs::read(dir.path().join("00000001.idx")).expect("read");
    fs::write(dir.path().join(&last), &copy_of_first).expect("index of the last");
    fs::write(dir.path().join("00000099.idx"), &copy_of_first).expect("orphan");
    fs::write(dir.path().join("00000003.idx.tmp"), b"half").expect("tmp");

    let (store, rec) = open_small(dir.path(), 1024).expect("open");
    assert_eq!(rec.messages.len(), 10);
    assert!(
        !dir.path().join(&last).exists(),
        "the last segment has none"
    );
    assert!(!dir.path().join("00000099.idx").exists());
    assert!(!dir.path().join("00000003.idx.tmp").exists());
    assert!(dir.path().join("00000003.idx").exists());
    store.close().expect("close");
}

#[test]
fn reclaimed_segments_take_their_index_with_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let refs = sealed_log(dir.path());
    assert!(dir.path().join("00000001.idx").exists());
    let (store, rec) = open_small(dir.path(), 1024).expect("open");
    let head: Vec<Record> = rec
        .messages
        .iter()
        .filter(|m| m.body.segment <= 2)
        .map(|m| remove(1, m.seq, m.body))
        .collect();
    assert!(!head.is_empty());
    commit(&store, head);
    // Keep writing so more segments are sealed and indexed while reclamation runs.
    let mut more = Vec::new();
    for seq in 11..=20u64 {
        more.push(commit(&store, vec![enqueue(1, seq, &[seq as u8; 400])])[0]);
    }
    let gone: Vec<Record> = more
        .iter()
        .zip(11..)
        .map(|(&r, seq)| remove(1, seq, r))
        .collect();
    let rest: Vec<Record> = refs
        .iter()
        .zip(1..)
        .filter(|(r, _)| r.segment > 2)
        .map(|(&r, seq)| remove(1, seq, r))
        .collect();
    commit(&store, rest);
    commit(&store, gone);
    commit(&store, vec![enqueue(1, 21, b"last")]);
    store.close().expect("close");
    drop(store);

    let logs = segments(dir.path());
    assert!(!logs.contains(&"00000001.log".to_string()), "{logs:?}");
    for idx in indexes(dir.path()) {
        assert!(
            logs.contains(&idx.replace(".idx", ".log")),
            "{idx} outlived its segment: {logs:?}"
        );
    }
    assert!(!dir.path().join("00000001.idx").exists());
    let (_, rec) = open_small(dir.path(), 1024).expect("reopen");
    assert_eq!(keys(&rec), vec![(1, 21)]);
}

/// `n` messages in the active segment, one frame each (entity 1, seq 1..=n, body of 100
/// bytes of the seq's low byte); returns each frame's offset.
fn active_segment_of(dir: &Path, n: u64) -> Vec<u64> {
    let seg = dir.join("00000001.log");
    let (store, _) = open(dir);
    let mut frames = Vec::new();
    for seq in 1..=n {
        frames.push(file_len(&seg));
        commit(&store, vec![enqueue(1, seq, &[seq as u8; 100])]);
    }
    store.close().expect("close");
    frames
}

fn expect_corrupt_at(dir: &Path, want_file: &str, want_offset: u64) {
    match LogStore::open(dir, LogOptions::default()) {
        Err(StoreError::Corrupt { file, offset, .. }) => {
            assert_eq!(file, want_file);
            assert_eq!(offset, want_offset, "points at the first damaged frame");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// Repairs `dir`, then opens it and checks that exactly `want` messages are there with
/// their bodies intact.
fn repair_and_check(dir: &Path, want: &[u64]) -> repair::RepairReport {
    let report = repair::repair(dir, repair::Apply::Yes).expect("repair");
    let (store, rec) = open(dir);
    let got: Vec<u64> = rec.messages.iter().map(|m| m.seq).collect();
    assert_eq!(got, want, "every undamaged message is back");
    for m in &rec.messages {
        assert_eq!(
            store.read_body(m.body).expect("read"),
            vec![m.seq as u8; 100]
        );
    }
    store.close().expect("close");
    report
}

#[test]
fn damage_in_two_neighbouring_frames_mid_segment_is_corruption_not_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = dir.path().join("00000001.log");
    let frames = active_segment_of(dir.path(), 1000);
    // A byte in the bodies of seq 500 and seq 501.
    flip_byte(&seg, frames[499] + 60);
    flip_byte(&seg, frames[500] + 60);
    let damaged = fs::read(&seg).expect("read");

    expect_corrupt_at(dir.path(), "00000001.log", frames[499]);
    assert_eq!(fs::read(&seg).expect("read"), damaged, "nothing truncated");

    let dry = repair::repair(dir.path(), repair::Apply::No).expect("dry run");
    assert_eq!(
        fs::read(&seg).expect("read"),
        damaged,
        "a dry run changes nothing"
    );
    expect_corrupt_at(dir.path(), "00000001.log", frames[499]);

    let want: Vec<u64> = (1..=1000).filter(|s| *s != 500 && *s != 501).collect();
    let report = repair_and_check(dir.path(), &want);
    assert_eq!(
        dry.segments[0].lost, report.segments[0].lost,
        "the dry run finds the same"
    );
    let [segment] = &report.segments[..] else {
        panic!("one segment reported: {report}")
    };
    assert_eq!(segment.file, "00000001.log");
    let [lost] = &segment.lost[..] else {
        panic!("one lost range: {report}")
    };
    assert_eq!(lost.offset, frames[499]);
    assert_eq!(lost.bytes, frames[501] - frames[499]);
    assert_eq!(lost.enqueues, vec![(1, 500), (1, 501)], "{report}");
    assert!(segment.torn_tail.is_none());
    let backup = dir.path().join("00000001.log.damaged");
    assert_eq!(fs::read(&backup).expect("backup"), damaged);
    let text = report.to_string();
    assert!(
        text.contains("00000001.log") && text.contains("entity 1 seq 500"),
        "{text}"
    );

    // A repaired directory is clean.
    let again = repair::repair(dir.path(), repair::Apply::Yes).expect("repair again");
    assert!(again.is_clean(), "{again}");
}

#[test]
fn a_zeroed_page_mid_segment_is_corruption_not_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = dir.path().join("00000001.log");
    let frames = active_segment_of(dir.path(), 1000);
    let page = 4096 * 20;
    let mut data = fs::read(&seg).expect("read");
    data[page..page + 4096].fill(0);
    fs::write(&seg, &data).expect("write");

    // Frames overlapping the page are gone; every other one survives.
    let frame_end = |i: usize| frames.get(i + 1).copied().unwrap_or(data.len() as u64);
    let hit: Vec<usize> = (0..frames.len())
        .filter(|&i| frames[i] < (page + 4096) as u64 && frame_end(i) > page as u64)
        .collect();
    assert!(hit.len() > 2, "the page spans several frames");
    expect_corrupt_at(dir.path(), "00000001.log", frames[hit[0]]);
    assert_eq!(fs::read(&seg).expect("read"), data, "nothing truncated");

    let want: Vec<u64> = (1..=1000)
        .filter(|&s| !hit.contains(&(s as usize - 1)))
        .collect();
    let report = repair_and_check(dir.path(), &want);
    let lost = &report.segments[0].lost;
    assert_eq!(lost.len(), 1, "{report}");
    assert_eq!(lost[0].offset, frames[hit[0]]);
    assert_eq!(
        lost[0].bytes,
        frame_end(*hit.last().expect("hit")) - frames[hit[0]]
    );
}

#[test]
fn a_torn_tail_after_valid_frames_is_still_cut_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = dir.path().join("00000001.log");
    let frames = active_segment_of(dir.path(), 20);
    // The last frame's header and the one before it damaged, with nothing after.
    let mut data = fs::read(&seg).expect("read");
    let last = *frames.last().expect("frames") as usize;
    data[frames[18] as usize + 50] ^= 1;
    data.truncate(last + 30);
    fs::write(&seg, &data).expect("write");
    let (_, rec) = open(dir.path());
    assert_eq!(rec.messages.len(), 18);
}

#[test]
fn repair_salvages_a_damaged_sealed_segment_and_fills_a_missing_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let refs = sealed_log(dir.path());
    let logs = segments(dir.path());
    assert!(logs.len() >= 4, "{logs:?}");
    // Damage one body in segment 1 (its index still vouches for it) and lose segment 3.
    flip_byte(&dir.path().join("00000001.log"), refs[0].offset + 7);
    let in_third: Vec<u64> = refs
        .iter()
        .zip(1..)
        .filter(|(r, _)| r.segment == 3)
        .map(|(_, seq)| seq)
        .collect();
    assert!(!in_third.is_empty());
    fs::remove_file(dir.path().join("00000003.log")).expect("remove");

    let report = repair::repair(dir.path(), repair::Apply::Yes).expect("repair");
    let text = report.to_string();
    assert!(text.contains("00000003.log: missing"), "{text}");
    assert_eq!(report.segments[0].lost[0].enqueues, vec![(1, 1)], "{text}");
    let (_, rec) = open_small(dir.path(), 1024).expect("opens after repair");
    let want: Vec<(u32, u64)> = (2..=10)
        .filter(|s| !in_third.contains(s))
        .map(|s| (1, s))
        .collect();
    assert_eq!(keys(&rec), want);
}

#[test]
fn a_body_damaged_on_disk_is_never_returned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let refs = sealed_log(dir.path());
    // A body byte in sealed segment 1, whose index still vouches for the segment.
    flip_byte(&dir.path().join("00000001.log"), refs[0].offset + 7);

    let (store, _) = open_small(dir.path(), 1024).expect("the index is trusted at open");
    match store.read_body(refs[0]) {
        Err(StoreError::CorruptBody { body, .. }) => assert_eq!(body, refs[0]),
        other => panic!("expected CorruptBody, got {other:?}"),
    }
    for (r, seq) in refs.iter().zip(1u8..).skip(1) {
        assert_eq!(
            store.read_body(*r).expect("the rest still reads"),
            vec![seq; 400]
        );
    }

    // The same in the segment being written, damaged under a running store.
    let last = commit(&store, vec![enqueue(2, 1, &[9; 400])])[0];
    let path = dir.path().join(format!("{:08}.log", last.segment));
    flip_byte(&path, last.offset + 399);
    assert!(matches!(
        store.read_body(last),
        Err(StoreError::CorruptBody { .. })
    ));
    // A damaged length in front of the body is caught as well.
    flip_byte(&path, last.offset + 399);
    flip_byte(&path, last.offset - 8);
    assert!(matches!(
        store.read_body(last),
        Err(StoreError::CorruptBody { .. })
    ));
    store.close().expect("close");
}
