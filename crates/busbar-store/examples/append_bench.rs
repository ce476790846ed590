//! Append throughput of the log store: N threads, each appending one 1 KiB enqueue at a
//! time and waiting for its commit, as broker connections do.
//!
//! `cargo run --release -p busbar-store --example append_bench -- [threads] [seconds]
//! [body bytes] [sync|buffered] [dir]` (defaults: 64 5 1024 sync, a temporary directory
//! under the current one, so the real file system is measured rather than a tmpfs).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use busbar_store::conformance::{block_on, enqueue};
use busbar_store::log::{LogOptions, LogStore};
use busbar_store::{Durability, Store};

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> T {
    args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let threads: u32 = arg(&args, 0, 64);
    let seconds: u64 = arg(&args, 1, 5);
    let body_len: usize = arg(&args, 2, 1024);
    let durability = match args.get(3).map(String::as_str) {
        Some("buffered") => Durability::Buffered,
        _ => Durability::Sync,
    };
    let tmp = match args.get(4) {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir_in(".")?,
    };

    let (store, _) = LogStore::open(
        tmp.path(),
        LogOptions {
            durability,
            ..LogOptions::default()
        },
    )?;
    let store = Arc::new(store);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let body = vec![0xabu8; body_len];
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (store, stop, done, body) =
                (store.clone(), stop.clone(), done.clone(), body.clone());
            std::thread::spawn(move || -> Result<(), busbar_store::StoreError> {
                let mut seq = 0;
                while !stop.load(Ordering::Relaxed) {
                    seq += 1;
                    let (_, commit) = store.append(vec![enqueue(t, seq, &body)])?;
                    block_on(commit)?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().map_err(|_| "appender panicked")??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    println!(
        "{n} appends in {elapsed:.2}s: {:.0} appends/s ({threads} threads, {body_len}-byte bodies, {durability:?})",
        n as f64 / elapsed
    );
    store.close()?;
    Ok(())
}
