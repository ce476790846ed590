//! What a store has done since it was opened, counted by the store itself as it works, for
//! the broker's metrics: its syncs, the bytes it holds on disk and how long commits took.
//!
//! Counted off the append path: the writer thread adds to these once per group commit, so
//! an append costs nothing more than it did.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the commit latency buckets, in microseconds: from a fast SSD's sync to
/// a disk that stalls for a second.
pub const COMMIT_LATENCY_BOUNDS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000,
];

/// A store's figures at one moment (see [`crate::Store::stats`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreStats {
    /// `fdatasync`s of the log's segments since the store was opened, the syncs of
    /// segments written ahead with zeros included.
    pub fsyncs: u64,
    /// Bytes of the log's frames on disk: the zeros written ahead into the segment being
    /// written and the next one are not counted.
    pub bytes: u64,
    /// How long each group commit's oldest append waited until it was durable.
    pub commit_latency: LatencyHistogram,
}

/// Observations by bucket: `buckets[i]` counts those of at most
/// `COMMIT_LATENCY_BOUNDS_US[i]` (and more than the bound before); the last one counts
/// those above every bound.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatencyHistogram {
    pub buckets: Vec<u64>,
    pub sum: Duration,
    pub count: u64,
}

/// The counters behind [`StoreStats`], shared by the store's threads.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    fsyncs: AtomicU64,
    bytes: AtomicU64,
    latency_buckets: [AtomicU64; COMMIT_LATENCY_BOUNDS_US.len() + 1],
    latency_sum_us: AtomicU64,
    latency_count: AtomicU64,
}

impl Counters {
    pub(crate) fn with_bytes(bytes: u64) -> Self {
        let counters = Counters::default();
        counters.bytes.store(bytes, Ordering::Relaxed);
        counters
    }

    pub(crate) fn count_fsync(&self) {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_bytes(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn remove_bytes(&self, bytes: u64) {
        // Never below zero, even if a segment grew behind the store's back.
        let _ = self
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                Some(held.saturating_sub(bytes))
            });
    }

    pub(crate) fn record_commit(&self, waited: Duration) {
        let us = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        let bucket = COMMIT_LATENCY_BOUNDS_US
            .iter()
            .position(|&bound| us <= bound)
            .unwrap_or(COMMIT_LATENCY_BOUNDS_US.len());
        self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> StoreStats {
        StoreStats {
            fsyncs: self.fsyncs.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            commit_latency: LatencyHistogram {
                buckets: self
                    .latency_buckets
                    .iter()
                    .map(|bucket| bucket.load(Ordering::Relaxed))
                    .collect(),
                sum: Duration::from_micros(self.latency_sum_us.load(Ordering::Relaxed)),
                count: self.latency_count.load(Ordering::Relaxed),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_fall_in_the_bucket_of_their_first_bound_at_or_above() {
        let counters = Counters::with_bytes(10);
        counters.record_commit(Duration::from_micros(50));
        counters.record_commit(Duration::from_micros(51));
        counters.record_commit(Duration::from_secs(3));
        counters.remove_bytes(25);
        let stats = counters.snapshot();
        let histogram = stats.commit_latency;
        assert_eq!(histogram.buckets.len(), COMMIT_LATENCY_BOUNDS_US.len() + 1);
        assert_eq!(histogram.buckets[0], 1);
        assert_eq!(histogram.buckets[1], 1);
        assert_eq!(histogram.buckets[COMMIT_LATENCY_BOUNDS_US.len()], 1);
        assert_eq!(histogram.count, 3);
        assert_eq!(histogram.sum, Duration::from_micros(3_000_101));
        assert_eq!(stats.bytes, 0);
    }
}
