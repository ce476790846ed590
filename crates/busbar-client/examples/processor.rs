//! The analytics service of the article: consumes the order updates of a queue with a
//! processor. Each update is recalculated and completed; one that cannot be processed fails,
//! goes back to the queue, and after the queue's max delivery count the broker dead-letters
//! it. Here it sends three updates (one of them empty, which fails), processes until the
//! good ones are done, and stops gracefully; a real service would run until it is told to stop.
//!
//! `cargo run -p busbar-client --example processor` against a Busbar on localhost:5672 with
//! a queue `q` (or set `SERVICEBUS_CONNECTION_STRING` and `SERVICEBUS_QUEUE`).

use std::time::Duration;

use busbar_client::servicebus::{
    ProcessErrorContext, ProcessMessageContext, ServiceBusClient, ServiceBusClientOptions,
    ServiceBusMessage, ServiceBusProcessorOptions,
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

/// Recalculates the figures for one order update; reports what it did on `done`.
async fn recalculate(
    context: ProcessMessageContext,
    done: mpsc::UnboundedSender<String>,
) -> Result<(), AnalyticsError> {
    let update = std::str::from_utf8(&context.message().body)?;
    if update.trim().is_empty() {
        return Err(AnalyticsError::Empty);
    }
    let line = format!(
        "order update {} (delivery {}): {update}",
        context.message().message_id.as_deref().unwrap_or("-"),
        context.message().delivery_count
    );
    let _ = done.send(line);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cs = std::env::var("SERVICEBUS_CONNECTION_STRING").unwrap_or_else(|_| DEVELOPMENT.into());
    let queue = std::env::var("SERVICEBUS_QUEUE").unwrap_or_else(|_| "q".into());
    let client = ServiceBusClient::from_connection_string(&cs, ServiceBusClientOptions::default())?;

    let sender = client.create_sender(&queue);
    for (id, update) in [("order-1", "paid"), ("order-2", ""), ("order-3", "shipped")] {
        sender
            .send_message(ServiceBusMessage::new(update).with_message_id(id))
            .await?;
    }

    let (done_tx, mut done) = mpsc::unbounded_channel();
    let options = ServiceBusProcessorOptions {
        max_concurrent_calls: 16,
        max_auto_lock_renew_duration: Duration::from_secs(10 * 60),
        ..Default::default()
    };
    let processor = client.create_processor(&queue, None, options);
    processor
        .start(
            move |context| recalculate(context, done_tx.clone()),
            |error: ProcessErrorContext| async move {
                eprintln!("{}: {:?}: {}", error.entity_path, error.source, error.error);
            },
        )
        .await?;
    // The two good updates; the empty one keeps failing until the broker dead-letters it.
    for _ in 0..2 {
        match tokio::time::timeout(Duration::from_secs(30), done.recv()).await {
            Ok(Some(line)) => println!("{line}"),
            _ => return Err("the processor did not handle the updates in time".into()),
        }
    }
    processor.stop().await;
    println!("stopped");
    client.close().await;
    Ok(())
}
