//! Receives `order-changes` with peek-lock — steps 2 to 4 of the article's flow: the
//! message is received, applied to the projection, the figures are recalculated, and only
//! then is the message completed. A message that cannot be applied (an unreadable body, a
//! database failure) is abandoned, delivered again, and after the queue's max delivery
//! count dead-lettered by the broker; the projection is untouched by it.
//!
//! Two ways to run: continuously with a [`ServiceBusProcessor`](busbar_client::ServiceBusProcessor),
//! or as in the article "by schedule": [`drain_every`] wakes, drains the queue, recalculates
//! once and sleeps.

use std::time::Duration;

use busbar_client::{
    ProcessErrorContext, ProcessMessageContext, ServiceBusClient, ServiceBusProcessor,
    ServiceBusProcessorOptions, ServiceBusReceivedMessage, ServiceBusReceiverOptions,
};
use tokio::sync::watch;

use super::projection::{self, Applied};
use crate::common::contracts::{ORDER_CHANGES_QUEUE, OrderChanged};
use crate::common::database::Db;

/// Why a change was not applied (the message goes back to the queue).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("the message is not an OrderChanged: {0}")]
    Unreadable(#[from] serde_json::Error),
    #[error("the projection's database failed: {0}")]
    Database(#[from] sqlx::Error),
}

/// Step 3: reads the change and applies it to the projection.
pub async fn apply_message(
    db: &Db,
    message: &ServiceBusReceivedMessage,
) -> Result<Applied, ApplyError> {
    let change: OrderChanged = serde_json::from_slice(&message.body)?;
    let applied = projection::apply(db, &change).await?;
    tracing::debug!(
        change = %change.change_id,
        order = %change.order_id,
        version = change.version,
        ?applied,
        delivery = message.delivery_count,
        "order change"
    );
    Ok(applied)
}

/// Starts the continuous processor; stop it with [`ServiceBusProcessor::stop`].
pub async fn start_processor(
    client: &ServiceBusClient,
    db: Db,
) -> Result<ServiceBusProcessor, busbar_client::ServiceBusError> {
    // One handler at a time, as the article advises ("use singleton classes to listen to the
    // queue"): the projection is applied and recalculated in order of delivery.
    let processor = client.create_processor(
        ORDER_CHANGES_QUEUE,
        None,
        ServiceBusProcessorOptions {
            max_concurrent_calls: 1,
            auto_complete_messages: true,
            prefetch_count: 20,
            ..ServiceBusProcessorOptions::default()
        },
    );
    processor
        .start(
            move |context: ProcessMessageContext| {
                let db = db.clone();
                async move {
                    apply_message(&db, context.message()).await?;
                    // Step 4: recalculate, then the processor completes the message.
                    projection::recalculate(&db).await?;
                    Ok::<(), ApplyError>(())
                }
            },
            |error: ProcessErrorContext| async move {
                tracing::warn!(entity = %error.entity_path, source = ?error.source, error = %error.error, "order-changes");
            },
        )
        .await?;
    Ok(processor)
}

/// How long a drain waits for the next message before it counts the queue as empty.
const DRAIN_IDLE: Duration = Duration::from_secs(2);
/// Messages received at a time while draining.
const DRAIN_BATCH: usize = 50;

/// Every `interval`: drain the queue, recalculate once, sleep; until `stopped`.
pub async fn drain_every(
    client: ServiceBusClient,
    db: Db,
    interval: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    while !*stopped.borrow() {
        match drain(&client, &db).await {
            Ok(received) => tracing::info!(received, "drained order-changes"),
            Err(error) => tracing::warn!(%error, "draining order-changes failed; next time"),
        }
        if let Err(error) = projection::recalculate(&db).await {
            tracing::warn!(%error, "recalculation failed");
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stopped.changed() => {}
        }
    }
}

/// Receives until the queue is empty; how many messages came.
async fn drain(
    client: &ServiceBusClient,
    db: &Db,
) -> Result<usize, busbar_client::ServiceBusError> {
    let receiver =
        client.create_receiver(ORDER_CHANGES_QUEUE, ServiceBusReceiverOptions::default());
    let mut received = 0;
    let outcome = async {
        loop {
            let messages = receiver
                .receive_messages(DRAIN_BATCH, Some(DRAIN_IDLE))
                .await?;
            if messages.is_empty() {
                return Ok(received);
            }
            for message in messages {
                received += 1;
                match apply_message(db, &message).await {
                    Ok(_) => receiver.complete_message(&message).await?,
                    Err(error) => {
                        tracing::warn!(%error, sequence = message.sequence_number, "abandoned");
                        receiver.abandon_message(&message, None).await?;
                    }
                }
            }
        }
    }
    .await;
    let _ = receiver.close().await;
    outcome
}
