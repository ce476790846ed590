//! Time and memory of `LogStore::open` over a large log: N enqueues of one body size in
//! one entity, none removed, as a broker restarting with a deep queue sees it.
//!
//! `cargo run --release -p busbar-store --example recovery_bench -- [messages] [body bytes]
//! [dir]` (defaults: 1000000 1024, a temporary directory under /tmp; pass a directory on the
//! real file system if /tmp is a tmpfs). The log is written once, then the open is
//! measured in a fresh process (this program run again with `--open DIR`), so the peak
//! resident set it reports belongs to the open alone. With `BUSBAR_KEEP=1` the log is
//! kept, so `--open DIR` can be run again later (after dropping the page cache, say).

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use busbar_store::conformance::enqueue;
use busbar_store::log::{LogOptions, LogStore};
use busbar_store::{Durability, Store};

/// A `kB` line of /proc/self/status, in MiB.
fn status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn measure_open(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let before = status_mib("VmHWM:").unwrap_or(f64::NAN);
    let start = Instant::now();
    let (store, recovered) = LogStore::open(dir, LogOptions::default())?;
    let elapsed = start.elapsed();
    let peak = status_mib("VmHWM:").unwrap_or(f64::NAN);
    let rss = status_mib("VmRSS:").unwrap_or(f64::NAN);
    println!(
        "open: {:.0} ms, {} messages recovered; VmHWM {before:.1} MiB before, {peak:.1} MiB after; VmRSS {rss:.1} MiB holding the result",
        elapsed.as_secs_f64() * 1000.0,
        recovered.messages.len(),
    );
    drop(recovered);
    store.close()?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--open") {
        let dir = args.get(1).ok_or("--open needs a directory")?;
        return measure_open(Path::new(dir));
    }
    let messages: u64 = args
        .first()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let body_len: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1024);
    let tmp = match args.get(2) {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir_in("/tmp")?,
    };

    let start = Instant::now();
    let (store, _) = LogStore::open(
        tmp.path(),
        LogOptions {
            durability: Durability::Buffered,
            ..LogOptions::default()
        },
    )?;
    let body = vec![0xabu8; body_len];
    let mut seq = 0;
    while seq < messages {
        let batch: Vec<_> = (seq + 1..=(seq + 1000).min(messages))
            .map(|s| enqueue(1, s, &body))
            .collect();
        seq += batch.len() as u64;
        let (_, commit) = store.append(batch)?;
        // Not awaited one by one: the writer groups them, and close makes them durable.
        drop(commit);
    }
    store.close()?;
    drop(store);
    let segments = std::fs::read_dir(tmp.path())?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .count();
    println!(
        "wrote {messages} messages of {body_len} bytes in {segments} segments in {:.1} s",
        start.elapsed().as_secs_f64()
    );

    // The first open after writing also builds whatever the store derives from the log;
    // the second is the restart being measured.
    for round in ["first open", "restart"] {
        print!("{round}: ");
        std::io::stdout().flush()?;
        let status = Command::new(std::env::current_exe()?)
            .arg("--open")
            .arg(tmp.path())
            .status()?;
        if !status.success() {
            return Err(format!("measuring process failed: {status}").into());
        }
    }
    if std::env::var_os("BUSBAR_KEEP").is_some() {
        println!("kept {}", tmp.keep().display());
    }
    Ok(())
}
