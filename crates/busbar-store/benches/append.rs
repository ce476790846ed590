//! Append-and-commit cost of 1 KiB enqueues on the real file system: one record per
//! append awaited before the next (each its own commit, so under `Sync` one fdatasync
//! each), and 64-record appends (one commit for the batch), under `Sync` and `Buffered`.
//! Also the cost of reading a written body back (1 KiB and 64 KiB, from the page cache,
//! checksum checked).
//!
//! `cargo bench -p busbar-store --bench append` (a temporary directory under /tmp; set
//! `BUSBAR_BENCH_DIR` to measure another file system; each benchmark runs ~1-2 s).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use busbar_store::conformance::{block_on, enqueue};
use busbar_store::log::{LogOptions, LogStore};
use busbar_store::{Durability, Record, Store};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn bench_dir() -> PathBuf {
    std::env::var_os("BUSBAR_BENCH_DIR").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from)
}

fn append(c: &mut Criterion) {
    let body = vec![0xabu8; 1024];
    let mut g = c.benchmark_group("append_1k");
    for durability in [Durability::Sync, Durability::Buffered] {
        for batch in [1usize, 64] {
            let tmp = match tempfile::tempdir_in(bench_dir()) {
                Ok(t) => t,
                Err(e) => panic!("no temporary directory: {e}"),
            };
            let store = match LogStore::open(
                tmp.path(),
                LogOptions {
                    durability,
                    ..LogOptions::default()
                },
            ) {
                Ok((store, _)) => store,
                Err(e) => panic!("cannot open the store: {e}"),
            };
            let mut seq = 0u64;
            g.throughput(Throughput::Elements(batch as u64));
            g.bench_function(
                BenchmarkId::new(format!("{durability:?}"), format!("batch{batch}")),
                |b| {
                    b.iter(|| {
                        let records: Vec<Record> = (0..batch)
                            .map(|_| {
                                seq += 1;
                                enqueue(1, seq, &body)
                            })
                            .collect();
                        let (refs, commit) = match store.append(records) {
                            Ok(r) => r,
                            Err(e) => panic!("append failed: {e}"),
                        };
                        if let Err(e) = block_on(commit) {
                            panic!("commit failed: {e}");
                        }
                        black_box(refs)
                    })
                },
            );
            if let Err(e) = store.close() {
                panic!("close failed: {e}");
            }
        }
    }
    g.finish();
}

fn read_body(c: &mut Criterion) {
    let mut g = c.benchmark_group("read_body");
    for size in [1024usize, 64 << 10] {
        let tmp = match tempfile::tempdir_in(bench_dir()) {
            Ok(t) => t,
            Err(e) => panic!("no temporary directory: {e}"),
        };
        let store = match LogStore::open(tmp.path(), LogOptions::default()) {
            Ok((store, _)) => store,
            Err(e) => panic!("cannot open the store: {e}"),
        };
        let records: Vec<Record> = (1..=64)
            .map(|seq| enqueue(1, seq, &vec![0xcd; size]))
            .collect();
        let refs = match store.append(records) {
            Ok((refs, commit)) => match block_on(commit) {
                Ok(()) => refs,
                Err(e) => panic!("commit failed: {e}"),
            },
            Err(e) => panic!("append failed: {e}"),
        };
        let mut next = refs.iter().cycle();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(BenchmarkId::from_parameter(size), |b| {
            b.iter(|| match next.next().map(|&r| store.read_body(r)) {
                Some(Ok(body)) => black_box(body),
                other => panic!("read failed: {other:?}"),
            })
        });
        if let Err(e) = store.close() {
            panic!("close failed: {e}");
        }
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = append, read_body
}
criterion_main!(benches);
