//! The loop that sends a service's outbox to the broker: rows written in the same database
//! transaction as the change they describe, published here once committed. While the
//! broker is down or refusing, the rows wait and the round is retried with back-off; a
//! commit wakes the loop at once, and it also looks on its own now and then (rows a crash
//! left behind). Each outbox sends with message id = its row's id, so a row re-sent after a
//! crash between the acknowledgement and the mark is a duplicate the receiving side drops.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use crate::common::time::now_ms;

/// How often the outbox is looked at when nobody said it changed (rows left by a crash).
const IDLE_POLL: Duration = Duration::from_secs(1);
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// The longest pause between two prunings of the published rows.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// One service's outbox, as the relay drives it.
pub trait Outbox: Send + Sync {
    type Error: std::fmt::Display + Send;

    /// Sends one batch of the rows still to be acknowledged, marking each batch once the
    /// broker acknowledged it; how many rows were pending (0: nothing to do).
    fn publish_once(&self) -> impl Future<Output = Result<usize, Self::Error>> + Send;

    /// Deletes the published rows written before `before_ms`; how many. An outbox that
    /// deletes its rows as soon as they are acknowledged keeps nothing to prune.
    fn prune(&self, before_ms: i64) -> impl Future<Output = Result<u64, Self::Error>> + Send {
        let _ = before_ms;
        async { Ok(0) }
    }

    /// Closes the senders, once the relay stopped.
    fn close(&self) -> impl Future<Output = ()> + Send;
}

/// What the relay went through, for a service's status endpoint.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Rounds that failed (the broker down or refusing) and were retried.
    pub failed_attempts: AtomicU64,
}

fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Publishes `outbox` until `stopped` turns true, woken by `changed`; prunes the rows
/// published longer than `retention` ago.
async fn run(
    outbox: &impl Outbox,
    changed: &Notify,
    stats: &RelayStats,
    retention: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let mut retry = RETRY_FIRST;
    let mut last_prune: Option<Instant> = None;
    while !*stopped.borrow() {
        match outbox.publish_once().await {
            Ok(0) => {
                retry = RETRY_FIRST;
                if last_prune.is_none_or(|at| at.elapsed() >= retention.min(PRUNE_EVERY)) {
                    last_prune = Some(Instant::now());
                    let before = now_ms().saturating_sub(duration_ms(retention));
                    match outbox.prune(before).await {
                        Ok(0) => {}
                        Ok(pruned) => tracing::debug!(pruned, "outbox pruned"),
                        Err(error) => tracing::warn!(%error, "outbox not pruned"),
                    }
                }
                tokio::select! {
                    () = changed.notified() => {}
                    () = tokio::time::sleep(IDLE_POLL) => {}
                    _ = stopped.changed() => {}
                }
            }
            Ok(sent) => {
                retry = RETRY_FIRST;
                tracing::debug!(sent, "outbox published");
            }
            Err(error) => {
                stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, retry_in = ?retry, "outbox not published; retrying");
                tokio::select! {
                    () = tokio::time::sleep(retry) => {}
                    _ = stopped.changed() => {}
                }
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
}

/// A relay's handles: wake it after a commit, stop it at shutdown.
pub struct RelayHandle {
    pub changed: Arc<Notify>,
    pub stats: Arc<RelayStats>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RelayHandle {
    /// Runs [`run`] on `outbox` in a task, and closes it when the loop ends.
    pub fn spawn(outbox: impl Outbox + 'static, retention: Duration) -> Self {
        let changed = Arc::new(Notify::new());
        let stats = Arc::new(RelayStats::default());
        let (stop, stopped) = watch::channel(false);
        let task = {
            let changed = Arc::clone(&changed);
            let stats = Arc::clone(&stats);
            tokio::spawn(async move {
                run(&outbox, &changed, &stats, retention, stopped).await;
                outbox.close().await;
            })
        };
        RelayHandle {
            changed,
            stats,
            stop,
            task,
        }
    }

    /// Stops the loop after its current round and waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the outbox relay failed");
        }
    }
}
