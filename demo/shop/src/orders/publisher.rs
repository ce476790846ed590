//! Sends the outbox: each committed change to the `order-changes` queue (subject = kind) and
//! to the `order-events` topic (subject `created|updated|deleted|closed`), both with message
//! id = change id. A row is marked sent for a destination only after the broker acknowledged
//! it; while the broker is down the rows wait and are retried with back-off. A crash between
//! the acknowledgement and the mark re-sends the same message id, which the entities'
//! duplicate detection drops.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use busbar_client::{ServiceBusClient, ServiceBusMessage, ServiceBusSender};
use tokio::sync::{Notify, watch};

use super::store::{self, Destination, Pending};
use crate::common::contracts::{ORDER_CHANGES_QUEUE, ORDER_EVENTS_TOPIC};
use crate::common::database::Db;
use crate::common::time::now_ms;

/// Rows read from the outbox at a time.
const BATCH_ROWS: i64 = 100;
/// How often the outbox is looked at when nobody said it changed (rows left by a crash).
const IDLE_POLL: Duration = Duration::from_secs(1);
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// The longest pause between two prunings of the published rows.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// What the publisher went through, for `GET /outbox`.
#[derive(Debug, Default)]
pub struct PublisherStats {
    /// Rounds that failed (the broker down or refusing) and were retried.
    pub failed_attempts: AtomicU64,
}

/// Publishes until `stopped` turns true; deletes rows published longer than `retention` ago.
pub async fn run(
    db: Db,
    client: ServiceBusClient,
    outbox_changed: Arc<Notify>,
    stats: Arc<PublisherStats>,
    retention: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let queue = client.create_sender(ORDER_CHANGES_QUEUE);
    let topic = client.create_sender(ORDER_EVENTS_TOPIC);
    let mut retry = RETRY_FIRST;
    let mut last_prune: Option<Instant> = None;
    while !*stopped.borrow() {
        match publish_once(&db, &queue, &topic).await {
            Ok(0) => {
                retry = RETRY_FIRST;
                if last_prune.is_none_or(|at| at.elapsed() >= retention.min(PRUNE_EVERY)) {
                    last_prune = Some(Instant::now());
                    let before = now_ms().saturating_sub(duration_ms(retention));
                    match store::prune_published(&db, before).await {
                        Ok(0) => {}
                        Ok(pruned) => tracing::debug!(pruned, "outbox pruned"),
                        Err(error) => tracing::warn!(%error, "outbox not pruned"),
                    }
                }
                tokio::select! {
                    () = outbox_changed.notified() => {}
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
    let _ = queue.close().await;
    let _ = topic.close().await;
}

#[derive(Debug, thiserror::Error)]
enum PublishError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("{0}: {1}")]
    Send(&'static str, busbar_client::ServiceBusError),
}

/// Sends one batch of pending rows to each destination that has not acknowledged them;
/// how many rows were pending.
async fn publish_once(
    db: &Db,
    queue: &ServiceBusSender,
    topic: &ServiceBusSender,
) -> Result<usize, PublishError> {
    let pending = store::pending(db, BATCH_ROWS).await?;
    if pending.is_empty() {
        return Ok(0);
    }
    let for_queue: Vec<&Pending> = pending.iter().filter(|row| !row.queue_sent).collect();
    send(db, queue, Destination::Queue, &for_queue, |row| {
        row.kind.clone()
    })
    .await?;
    let for_topic: Vec<&Pending> = pending.iter().filter(|row| !row.topic_sent).collect();
    send(db, topic, Destination::Topic, &for_topic, |row| {
        row.event_subject.clone()
    })
    .await?;
    Ok(pending.len())
}

/// Sends `rows` in as few batches as fit, marking each batch once acknowledged.
async fn send(
    db: &Db,
    sender: &ServiceBusSender,
    destination: Destination,
    rows: &[&Pending],
    subject: impl Fn(&Pending) -> String,
) -> Result<(), PublishError> {
    let name = match destination {
        Destination::Queue => ORDER_CHANGES_QUEUE,
        Destination::Topic => ORDER_EVENTS_TOPIC,
    };
    let mut rest = rows;
    while !rest.is_empty() {
        let mut batch = sender
            .create_message_batch(Default::default())
            .await
            .map_err(|e| PublishError::Send(name, e))?;
        let mut taken = 0;
        for row in rest {
            if !batch
                .try_add_message(message_of(row, subject(row)))
                .map_err(|e| PublishError::Send(name, e))?
            {
                break;
            }
            taken += 1;
        }
        if let (0, Some(row)) = (taken, rest.first()) {
            // A single change larger than a batch: send it alone (the broker says if it is
            // too large for the entity, and the row waits, visible in the log).
            taken = 1;
            sender
                .send_message(message_of(row, subject(row)))
                .await
                .map_err(|e| PublishError::Send(name, e))?;
        } else {
            sender
                .send_message_batch(&batch)
                .await
                .map_err(|e| PublishError::Send(name, e))?;
        }
        let (sent, remaining) = rest.split_at(taken);
        let positions: Vec<i64> = sent.iter().map(|row| row.position).collect();
        store::mark_sent(db, destination, &positions).await?;
        rest = remaining;
    }
    Ok(())
}

/// The message of an outbox row: id = change id, so a re-send is a duplicate.
fn message_of(row: &Pending, subject: String) -> ServiceBusMessage {
    ServiceBusMessage::new(row.body.clone().into_bytes())
        .with_message_id(row.change_id.clone())
        .with_subject(subject)
        .with_content_type("application/json")
}
