//! The log on a real full file system: a small tmpfs the test mounts (as root; skipped with
//! a message where mounting is not permitted).

use std::fs;
use std::pin::pin;

use busbar_store::conformance::{Tmpfs, block_on, enqueue, is_ready, wait_until};
use busbar_store::log::{LogOptions, LogStore};
use busbar_store::{Store, StoreError, StoreHealth};

fn options() -> LogOptions {
    LogOptions {
        segment_bytes: 64 << 10,
        ..LogOptions::default()
    }
}

#[test]
fn writes_come_back_once_space_is_freed_and_nothing_acknowledged_is_lost_or_doubled() {
    let Some(fs_) = Tmpfs::mount("1m") else {
        return;
    };
    let dir = fs_.path().join("store");
    let (store, _) = LogStore::open(&dir, options()).expect("open");
    let body = |seq: u64| vec![seq as u8; 3000];
    let mut acked = Vec::new();
    for seq in 1..=20 {
        let (_, c) = store
            .append(vec![enqueue(1, seq, &body(seq))])
            .expect("append");
        block_on(c).expect("commit");
        acked.push(seq);
    }
    let filler = fs_.fill();

    // Appends keep going until one meets the full disk; its commit is held, not failed:
    // its records keep their place in the log and are written once there is space.
    let mut seq = 20;
    let held = loop {
        seq += 1;
        let (_, c) = store
            .append(vec![enqueue(1, seq, &body(seq))])
            .expect("accepted until the writer meets the full disk");
        let mut c = Box::pin(c);
        wait_until("commit or no space", || {
            is_ready(c.as_mut()) || store.health() != StoreHealth::Ok
        });
        if store.health() == StoreHealth::Ok {
            block_on(c).expect("commit");
            acked.push(seq);
        } else {
            break (seq, c);
        }
    };
    assert!(
        matches!(store.health(), StoreHealth::NoSpace(_)),
        "{:?}",
        store.health()
    );
    match store.append(vec![enqueue(1, seq + 1, &body(seq + 1))]) {
        Err(StoreError::NoSpace(_)) => {}
        other => panic!("expected NoSpace, got {other:?}"),
    }
    assert!(
        matches!(store.append(Vec::new()), Err(StoreError::NoSpace(_))),
        "settlements are refused too, before anything is applied"
    );

    fs::remove_file(&filler).expect("free space");
    let (held_seq, held_commit) = held;
    block_on(held_commit).expect("the held write lands once there is space");
    acked.push(held_seq);
    assert_eq!(store.health(), StoreHealth::Ok);
    for seq in held_seq + 1..held_seq + 5 {
        let (_, c) = store
            .append(vec![enqueue(1, seq, &body(seq))])
            .expect("writes are back");
        block_on(c).expect("commit");
        acked.push(seq);
    }
    store.close().expect("close");
    drop(store);

    let (store, rec) = LogStore::open(&dir, options()).expect("reopen");
    let seqs: Vec<u64> = rec.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, acked, "every acknowledged message, once");
    for m in &rec.messages {
        assert_eq!(store.read_body(m.body).expect("read"), body(m.seq));
    }
}

#[test]
fn closing_while_out_of_space_drops_only_what_was_never_acknowledged() {
    let Some(fs_) = Tmpfs::mount("1m") else {
        return;
    };
    let dir = fs_.path().join("store");
    let (store, _) = LogStore::open(&dir, options()).expect("open");
    let (_, c) = store
        .append(vec![enqueue(1, 1, &[1; 3000])])
        .expect("append");
    block_on(c).expect("commit");
    let filler = fs_.fill();
    let (_, c) = store
        .append(vec![enqueue(1, 2, &[2; 300_000])])
        .expect("append");
    let mut c = pin!(c);
    wait_until("no space", || store.health() != StoreHealth::Ok);
    assert!(!is_ready(c.as_mut()));
    assert!(store.close().is_err(), "the held write could not be made");
    assert!(matches!(block_on(c), Err(StoreError::NoSpace(_))));
    drop(store);

    fs::remove_file(&filler).expect("free space");
    let (_, rec) = LogStore::open(&dir, options()).expect("reopen");
    let seqs: Vec<u64> = rec.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, vec![1]);
}
