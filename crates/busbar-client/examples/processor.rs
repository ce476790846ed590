//! The analytics service of the article: the orders service sends order updates to a queue,
//! and the analytics service consumes them with a processor. Each update is recalculated and
//! completed; an update that cannot be processed fails, goes back to the queue, and once it
//! has failed the queue's max delivery count the broker dead-letters it.
//!
//! `cargo run -p busbar-client --example processor` against a Busbar on localhost:5672 with
//! a queue `q` (or set `SERVICEBUS_CONNECTION_STRING` and `SERVICEBUS_QUEUE`).

use std::time::Duration;

use busbar_client::{
    ProcessErrorContext, ProcessMessageContext, ServiceBusClient, ServiceBusClientOptions,
    ServiceBusError, ServiceBusMessage, ServiceBusProcessorOptions, ServiceBusReceiverOptions,
    SubQueue,
};
use tokio::sync::mpsc;

const DEVELOPMENT: &str = "Endpoint=sb://localhost:5672;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true";

#[derive(Debug, thiserror::Error)]
enum AnalyticsError {
    #[error("the order update is not UTF-8")]
    NotText(#[from] std::str::Utf8Error),
    #[error("the order update is empty")]
    Empty,
}

/// Recalculates the analytics for one order update.
async fn recalculate(context: &ProcessMessageContext) -> Result<String, AnalyticsError> {
    let update = std::str::from_utf8(&context.message().body)?;
    if update.trim().is_empty() {
        return Err(AnalyticsError::Empty);
    }
    Ok(format!(
        "recalculated {}: {update}",
        context.message().message_id.as_deref().unwrap_or("-")
    ))
}

#[tokio::main]
async fn main() -> Result<(), ServiceBusError> {
    let cs = std::env::var("SERVICEBUS_CONNECTION_STRING").unwrap_or_else(|_| DEVELOPMENT.into());
    let queue = std::env::var("SERVICEBUS_QUEUE").unwrap_or_else(|_| "q".into());
    let client = ServiceBusClient::from_connection_string(&cs, ServiceBusClientOptions::default())?;

    // The orders service: three updates, and one that analytics cannot read.
    let sender = client.create_sender(&queue);
    for (id, update) in [
        ("order-1", "created, 3 items"),
        ("order-2", "created, 1 item"),
        ("order-1", "shipped"),
        ("order-3", ""),
    ] {
        sender
            .send_message(ServiceBusMessage::new(update).with_message_id(id))
            .await?;
    }

    // The analytics service.
    let (done, mut recalculated) = mpsc::unbounded_channel();
    let options = ServiceBusProcessorOptions {
        max_concurrent_calls: 4,
        max_auto_lock_renew_duration: Duration::from_secs(10 * 60),
        ..ServiceBusProcessorOptions::default()
    };
    let processor = client.create_processor(&queue, None, options);
    processor
        .start(
            move |context: ProcessMessageContext| {
                let done = done.clone();
                async move {
                    let line = recalculate(&context).await?;
                    let _ = done.send(line);
                    Ok::<(), AnalyticsError>(())
                }
            },
            |error: ProcessErrorContext| async move {
                if error.source != busbar_client::ErrorSource::ProcessMessageCallback {
                    eprintln!("{}: {:?}: {}", error.entity_path, error.source, error.error);
                }
            },
        )
        .await?;
    for _ in 0..3 {
        if let Some(line) = recalculated.recv().await {
            println!("{line}");
        }
    }

    // The unreadable update fails on every delivery until the broker dead-letters it.
    let dead_letters = client.create_receiver(
        &queue,
        ServiceBusReceiverOptions {
            sub_queue: SubQueue::DeadLetter,
            ..ServiceBusReceiverOptions::default()
        },
    );
    let dead = loop {
        if let Some(message) = dead_letters
            .receive_messages(1, Some(Duration::from_secs(1)))
            .await?
            .pop()
        {
            break message;
        }
    };
    println!(
        "dead-lettered {} after {} deliveries: {}",
        dead.message_id.as_deref().unwrap_or("-"),
        dead.delivery_count,
        dead.dead_letter_reason.as_deref().unwrap_or("-"),
    );
    dead_letters.complete_message(&dead).await?;
    processor.stop().await;
    client.close().await;
    Ok(())
}
