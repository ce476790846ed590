//! Backend-independent checks of the [`Store`] contract, for tests of every backend.
//!
//! Each check takes an `open` function that opens (or reopens) the backend's store kept
//! at `dir`, and an empty `dir`; it panics on a contract violation. Reopening is done by
//! closing and dropping the store and calling `open` again with the same `dir`.
//! [`store_conformance_tests!`](crate::store_conformance_tests) turns them into one
//! `#[test]` each (the calling crate needs `tempfile` as a dev-dependency).
//!
//! Only compiled with the `conformance` feature.

use std::future::Future;
use std::path::Path;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use bytes::Bytes;

use crate::{
    BodyRef, EntityId, MessageMeta, MessageState, Record, Recovered, RecoveredMessage, Seq, Store,
    StoreError,
};

/// Opens the store kept in a directory.
pub type Open<'a, S> = &'a dyn Fn(&Path) -> Result<(S, Recovered), StoreError>;

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Waits until `check` holds, for what the store's threads do on their own; panics after
/// a minute.
pub fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Runs a future to completion on the current thread (no async runtime needed).
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park();
    }
}

/// True if `f` is already complete when polled once.
pub fn is_ready<F: Future>(f: Pin<&mut F>) -> bool {
    f.poll(&mut Context::from_waker(Waker::noop())).is_ready()
}

/// A small tmpfs mounted for a test, to fill up for real; unmounted (and its mount point
/// removed) on drop. Needs the right to mount (root).
pub struct Tmpfs {
    path: std::path::PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it, e.g. `"1m"`), or says on
    /// stderr why it cannot and returns `None`, so that the test can skip.
    pub fn mount(size: &str) -> Option<Tmpfs> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("busbar-tmpfs-{}-{n}", std::process::id()));
        if let Err(e) = std::fs::create_dir_all(&path) {
            eprintln!("skipped: cannot create a mount point: {e}");
            return None;
        }
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output();
        match out {
            Ok(out) if out.status.success() => return Some(Tmpfs { path }),
            Ok(out) => eprintln!(
                "skipped: cannot mount a tmpfs: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => eprintln!("skipped: cannot run mount: {e}"),
        }
        let _ = std::fs::remove_dir(&path);
        None
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fills the file system with a file of its own, whose path it returns.
    pub fn fill(&self) -> std::path::PathBuf {
        use std::io::Write as _;
        let path = self.path.join("filler");
        if let Ok(mut f) = std::fs::File::create(&path) {
            while f.write_all(&[0u8; 4096]).is_ok() {}
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.path)
            .status();
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// An ext4 file system (no journal, `errors=continue`) on a loop device whose backing file
/// is sparse, on a small [`Tmpfs`]: the file system believes it has room, but once the
/// tmpfs is filled, writeback of new blocks fails and `fsync` reports the error, for real,
/// as on a thin-provisioned volume that ran out. Freeing the tmpfs makes syncs succeed
/// again. Unmounted and detached on drop. Needs root, loop devices and `mkfs.ext4`.
pub struct ThinDisk {
    backing: Tmpfs,
    device: String,
    mount: std::path::PathBuf,
}

impl ThinDisk {
    /// Sets it up, or says on stderr why it cannot and returns `None`, so the test can skip.
    pub fn mount() -> Option<ThinDisk> {
        let backing = Tmpfs::mount("16m")?;
        let image = backing.path().join("disk.img");
        let mount = backing.path().with_extension("ext4");
        let run = |program: &str, args: &[&std::ffi::OsStr]| -> Result<String, String> {
            let out = std::process::Command::new(program)
                .args(args)
                .output()
                .map_err(|e| format!("cannot run {program}: {e}"))?;
            if out.status.success() {
                Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
            } else {
                Err(format!(
                    "{program} failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        let set_up = || -> Result<String, String> {
            std::fs::File::create(&image)
                .and_then(|f| f.set_len(256 << 20))
                .map_err(|e| format!("cannot create the disk image: {e}"))?;
            std::fs::create_dir_all(&mount).map_err(|e| format!("cannot create {e}"))?;
            run(
                "mkfs.ext4",
                &[
                    "-q".as_ref(),
                    "-O".as_ref(),
                    "^has_journal".as_ref(),
                    image.as_os_str(),
                ],
            )?;
            let device = run(
                "losetup",
                &["-f".as_ref(), "--show".as_ref(), image.as_os_str()],
            )?;
            let mounted = run(
                "mount",
                &[
                    "-o".as_ref(),
                    "errors=continue".as_ref(),
                    device.as_ref(),
                    mount.as_os_str(),
                ],
            );
            if let Err(e) = mounted {
                let _ = run("losetup", &["-d".as_ref(), device.as_ref()]);
                return Err(e);
            }
            Ok(device)
        };
        match set_up() {
            Ok(device) => Some(ThinDisk {
                backing,
                device,
                mount,
            }),
            Err(reason) => {
                eprintln!("skipped: cannot set up a loop-mounted ext4: {reason}");
                let _ = std::fs::remove_dir(&mount);
                None
            }
        }
    }

    /// Where the ext4 file system is mounted.
    pub fn path(&self) -> &Path {
        &self.mount
    }

    /// Fills the backing tmpfs: from now on, syncs of newly written blocks fail. Remove the
    /// returned file to make room again.
    pub fn exhaust(&self) -> std::path::PathBuf {
        self.backing.fill()
    }
}

impl Drop for ThinDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.mount)
            .status();
        let _ = std::process::Command::new("losetup")
            .args(["-d", &self.device])
            .status();
        let _ = std::fs::remove_dir(&self.mount);
    }
}

/// An `Enqueue` with default metadata.
pub fn enqueue(entity: EntityId, seq: Seq, body: &[u8]) -> Record {
    Record::Enqueue {
        entity,
        seq,
        meta: MessageMeta {
            enqueued_at_ms: 1_700_000_000_000 + seq as i64,
            ..MessageMeta::default()
        },
        body: Bytes::copy_from_slice(body),
    }
}

/// Appends and waits for the commit.
pub fn commit<S: Store>(store: &S, records: Vec<Record>) -> Vec<BodyRef> {
    let (refs, c) = store.append(records).expect("append");
    block_on(c).expect("commit");
    refs
}

fn reopen<'a, S: Store>(open: Open<'a, S>, dir: &Path, store: S) -> (S, Recovered) {
    store.close().expect("close");
    drop(store);
    open(dir).expect("reopen")
}

fn keys(r: &Recovered) -> Vec<(EntityId, Seq)> {
    r.messages.iter().map(|m| (m.entity, m.seq)).collect()
}

fn body_of<S: Store>(store: &S, m: &RecoveredMessage) -> Bytes {
    store.read_body(m.body).expect("read recovered body")
}

/// Enqueues, updates and removals survive a reopen, and so does a second reopen.
pub fn round_trip_across_reopen<S: Store>(open: Open<'_, S>, dir: &Path) {
    let (store, rec) = open(dir).expect("open");
    assert!(rec.messages.is_empty(), "a new store is empty");
    assert!(rec.last_seq.is_empty());
    assert!(rec.catalog.is_none());

    let rich = MessageMeta {
        enqueued_at_ms: 1234,
        expires_at_ms: Some(99_999),
        scheduled_at_ms: Some(5555),
        delivery_count: 0,
        state: MessageState::Scheduled,
        session_id: Some("session-α".into()),
        message_id: Some("msg-1".into()),
    };
    let refs = commit(
        &store,
        vec![
            Record::Enqueue {
                entity: 1,
                seq: 1,
                meta: rich.clone(),
                body: Bytes::from_static(b"first"),
            },
            enqueue(1, 2, b"second"),
            enqueue(2, 1, b"other entity"),
        ],
    );
    assert_eq!(refs.len(), 3, "one body ref per enqueue");
    commit(
        &store,
        vec![
            Record::Update {
                entity: 1,
                seq: 1,
                delivery_count: 1,
                state: MessageState::Active,
            },
            Record::Update {
                entity: 1,
                seq: 1,
                delivery_count: 2,
                state: MessageState::Deferred,
            },
        ],
    );
    commit(
        &store,
        vec![Record::Remove {
            entity: 1,
            seq: 2,
            body: refs[1],
        }],
    );

    let (store, rec) = reopen(open, dir, store);
    assert_eq!(keys(&rec), vec![(1, 1), (2, 1)]);
    let m = &rec.messages[0];
    assert_eq!(
        m.meta,
        MessageMeta {
            delivery_count: 2,
            state: MessageState::Deferred,
            ..rich.clone()
        },
        "later updates win"
    );
    assert_eq!(body_of(&store, m), Bytes::from_static(b"first"));
    assert_eq!(
        body_of(&store, &rec.messages[1]),
        Bytes::from_static(b"other entity")
    );
    assert_eq!(rec.last_seq.get(&1), Some(&2));
    assert_eq!(rec.last_seq.get(&2), Some(&1));

    let (store, rec2) = reopen(open, dir, store);
    assert_eq!(rec2.messages, rec.messages, "reopening changes nothing");
    assert_eq!(rec2.last_seq, rec.last_seq);
    store.close().expect("close");
}

/// `last_seq` remembers sequence numbers of messages that are gone.
pub fn last_seq_survives_removal<S: Store>(open: Open<'_, S>, dir: &Path) {
    let (store, _) = open(dir).expect("open");
    let refs = commit(&store, (1..=5).map(|s| enqueue(3, s, b"x")).collect());
    let removes = refs
        .iter()
        .zip(1..=5)
        .map(|(&body, seq)| Record::Remove {
            entity: 3,
            seq,
            body,
        })
        .collect();
    commit(&store, removes);
    let (store, rec) = reopen(open, dir, store);
    assert!(rec.messages.is_empty());
    assert_eq!(rec.last_seq.get(&3), Some(&5));
    commit(&store, vec![enqueue(3, 6, b"y")]);
    let (store, rec) = reopen(open, dir, store);
    assert_eq!(keys(&rec), vec![(3, 6)]);
    assert_eq!(rec.last_seq.get(&3), Some(&6));
    store.close().expect("close");
}

/// Bodies can be read before the commit resolves, after it, and after a reopen.
pub fn read_body_before_and_after_commit<S: Store>(open: Open<'_, S>, dir: &Path) {
    let (store, _) = open(dir).expect("open");
    let bodies: Vec<Vec<u8>> = [0usize, 1, 17, 1024, 70_000]
        .iter()
        .map(|&n| (0..n).map(|i| (i * 31 + n) as u8).collect())
        .collect();
    let records = bodies
        .iter()
        .zip(1..)
        .map(|(b, seq)| enqueue(1, seq, b))
        .collect();
    let (refs, c) = store.append(records).expect("append");
    for (r, b) in refs.iter().zip(&bodies) {
        assert_eq!(store.read_body(*r).expect("read before commit"), &b[..]);
    }
    block_on(c).expect("commit");
    for (r, b) in refs.iter().zip(&bodies) {
        assert_eq!(store.read_body(*r).expect("read after commit"), &b[..]);
    }
    let bogus = BodyRef {
        segment: u32::MAX,
        offset: 0,
        len: 5,
    };
    assert!(matches!(
        store.read_body(bogus),
        Err(StoreError::UnknownBody(_))
    ));
    let (store, rec) = reopen(open, dir, store);
    assert_eq!(rec.messages.len(), bodies.len());
    for (m, b) in rec.messages.iter().zip(&bodies) {
        assert_eq!(body_of(&store, m), &b[..]);
    }
    store.close().expect("close");
}

/// A `Remove` followed by an `Enqueue` of the same (entity, seq) in one batch leaves the
/// new message (a body rewrite).
pub fn remove_then_enqueue_same_seq<S: Store>(open: Open<'_, S>, dir: &Path) {
    let (store, _) = open(dir).expect("open");
    let old = commit(&store, vec![enqueue(1, 7, b"old body")]);
    let new = commit(
        &store,
        vec![
            Record::Remove {
                entity: 1,
                seq: 7,
                body: old[0],
            },
            Record::Enqueue {
                entity: 1,
                seq: 7,
                meta: MessageMeta {
                    delivery_count: 1,
                    ..MessageMeta::default()
                },
                body: Bytes::from_static(b"new body"),
            },
        ],
    );
    assert_eq!(new.len(), 1);
    assert_eq!(store.read_body(new[0]).expect("read"), &b"new body"[..]);
    let (store, rec) = reopen(open, dir, store);
    assert_eq!(keys(&rec), vec![(1, 7)]);
    assert_eq!(rec.messages[0].meta.delivery_count, 1);
    assert_eq!(body_of(&store, &rec.messages[0]), &b"new body"[..]);
    assert_eq!(rec.last_seq.get(&1), Some(&7));
    store.close().expect("close");
}

/// The catalog blob is replaced as a whole and comes back at open.
pub fn catalog_round_trip<S: Store>(open: Open<'_, S>, dir: &Path) {
    let (store, rec) = open(dir).expect("open");
    assert!(rec.catalog.is_none());
    store.save_catalog(br#"{"v":1}"#).expect("save");
    store.save_catalog(br#"{"v":2,"queues":[]}"#).expect("save");
    let (store, rec) = reopen(open, dir, store);
    assert_eq!(rec.catalog.as_deref(), Some(&br#"{"v":2,"queues":[]}"#[..]));
    store.save_catalog(b"").expect("save empty");
    let (store, rec) = reopen(open, dir, store);
    assert_eq!(rec.catalog.as_deref(), Some(&b""[..]));
    store.close().expect("close");
}

/// `close` flushes what was appended; afterwards appends fail with `Closed`.
pub fn closed_store_refuses_appends<S: Store>(open: Open<'_, S>, dir: &Path) {
    let (store, _) = open(dir).expect("open");
    let (_, c) = store
        .append(vec![enqueue(1, 1, b"before close")])
        .expect("append");
    store.close().expect("close");
    block_on(c).expect("close makes pending appends durable");
    assert!(matches!(
        store.append(vec![enqueue(1, 2, b"late")]),
        Err(StoreError::Closed)
    ));
    assert!(matches!(store.append(Vec::new()), Err(StoreError::Closed)));
    store.close().expect("closing twice is fine");
    drop(store);
    let (store, rec) = open(dir).expect("reopen");
    assert_eq!(keys(&rec), vec![(1, 1)]);
    store.close().expect("close");
}

/// A commit resolves only with (or after) every earlier one; an empty append waits for
/// the earlier ones too.
pub fn commits_resolve_in_order<S: Store>(open: Open<'_, S>, dir: &Path) {
    let (store, _) = open(dir).expect("open");
    let mut commits = Vec::new();
    for seq in 1..=100 {
        let (_, c) = store.append(vec![enqueue(1, seq, b"m")]).expect("append");
        commits.push(Box::pin(c));
    }
    let (refs, empty) = store.append(Vec::new()).expect("empty append");
    assert!(refs.is_empty());
    block_on(empty).expect("empty commit");
    for (i, c) in commits.iter_mut().enumerate() {
        assert!(is_ready(c.as_mut()), "commit {i} resolved with a later one");
    }
    for c in commits {
        block_on(c).expect("commit");
    }
    store.close().expect("close");
}

/// Many threads appending at once: every commit resolves and everything is recovered.
pub fn concurrent_appends<S: Store>(open: Open<'_, S>, dir: &Path) {
    const THREADS: u32 = 8;
    const PER_THREAD: u64 = 200;
    let (store, _) = open(dir).expect("open");
    let store = Arc::new(store);
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            thread::spawn(move || {
                for seq in 1..=PER_THREAD {
                    let body = format!("t{t}-s{seq}");
                    let refs = commit(&*store, vec![enqueue(t, seq, body.as_bytes())]);
                    assert_eq!(
                        store.read_body(refs[0]).expect("read"),
                        body.as_bytes(),
                        "body read back right after commit"
                    );
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("appender thread");
    }
    let store = Arc::into_inner(store).expect("sole owner");
    let (store, rec) = reopen(open, dir, store);
    assert_eq!(rec.messages.len(), (THREADS as u64 * PER_THREAD) as usize);
    for m in &rec.messages {
        let want = format!("t{}-s{}", m.entity, m.seq);
        assert_eq!(body_of(&store, m), want.as_bytes());
    }
    for t in 0..THREADS {
        assert_eq!(rec.last_seq.get(&t), Some(&PER_THREAD));
    }
    store.close().expect("close");
}

/// Expands to one `#[test]` per conformance check, each in a fresh temporary directory.
/// `$open` must be usable as `&dyn Fn(&Path) -> Result<(S, Recovered), StoreError>`.
#[macro_export]
macro_rules! store_conformance_tests {
    ($open:expr) => {
        $crate::store_conformance_tests!(@each $open;
            round_trip_across_reopen,
            last_seq_survives_removal,
            read_body_before_and_after_commit,
            remove_then_enqueue_same_seq,
            catalog_round_trip,
            closed_store_refuses_appends,
            commits_resolve_in_order,
            concurrent_appends
        );
    };
    (@each $open:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let dir = tempfile::tempdir().expect("temporary directory");
                $crate::conformance::$name(&$open, dir.path());
            }
        )*
    };
}
