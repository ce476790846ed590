//! What the orders outbox sends ([`crate::common::relay`] drives it): each committed change to the `order-changes` queue (subject = kind) and
//! to the `order-events` topic (subject `created|updated|deleted|closed`), both with message
//! id = change id. A row is marked sent for a destination only after the broker acknowledged
//! it. A crash between
//! the acknowledgement and the mark re-sends the same message id, which the entities'
//! duplicate detection drops.

use busbar_client::{ServiceBusClient, ServiceBusMessage, ServiceBusSender};

use super::store::{self, Destination, Pending};
use crate::common::contracts::{ORDER_CHANGES_QUEUE, ORDER_EVENTS_TOPIC};
use crate::common::database::Db;
use crate::common::relay::Outbox;

/// Rows read from the outbox at a time.
const BATCH_ROWS: i64 = 100;

/// The orders outbox and its two destinations.
pub struct OrdersOutbox {
    db: Db,
    queue: ServiceBusSender,
    topic: ServiceBusSender,
}

impl OrdersOutbox {
    pub fn new(db: Db, client: &ServiceBusClient) -> Self {
        OrdersOutbox {
            db,
            queue: client.create_sender(ORDER_CHANGES_QUEUE),
            topic: client.create_sender(ORDER_EVENTS_TOPIC),
        }
    }
}

impl Outbox for OrdersOutbox {
    type Error = PublishError;

    async fn publish_once(&self) -> Result<usize, PublishError> {
        publish_once(&self.db, &self.queue, &self.topic).await
    }

    async fn prune(&self, before_ms: i64) -> Result<u64, PublishError> {
        Ok(store::prune_published(&self.db, before_ms).await?)
    }

    async fn close(&self) {
        let _ = self.queue.close().await;
        let _ = self.topic.close().await;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
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
