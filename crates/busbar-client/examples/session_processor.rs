//! A session processor over a session-enabled queue: each session (here a customer's cart)
//! is handled in order, several sessions at once, and the cart's running total is kept in the
//! session state, so whichever consumer takes the session next carries on from it.
//!
//! `cargo run -p busbar-client --example session_processor` against a Busbar on
//! localhost:5672 with a session-enabled queue `sessions` (or set
//! `SERVICEBUS_CONNECTION_STRING` and `SERVICEBUS_SESSION_QUEUE`).

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use busbar_client::{
    ProcessErrorContext, ProcessSessionMessageContext, ServiceBusClient, ServiceBusClientOptions,
    ServiceBusError, ServiceBusMessage, ServiceBusSessionProcessorOptions,
};

const DEVELOPMENT: &str = "Endpoint=sb://localhost:5672;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Adds the item's price (the message body, in cents) to the cart's total.
async fn add_to_cart(context: &ProcessSessionMessageContext) -> Result<String, BoxError> {
    let price: u64 = std::str::from_utf8(&context.message().body)?
        .trim()
        .parse()?;
    let total: u64 = match context.get_session_state().await? {
        Some(state) => std::str::from_utf8(&state)?.parse()?,
        None => 0,
    };
    let total = total + price;
    context
        .set_session_state(Some(Bytes::from(total.to_string())))
        .await?;
    Ok(format!("{}: +{price} = {total}", context.session_id()))
}

#[tokio::main]
async fn main() -> Result<(), ServiceBusError> {
    let cs = std::env::var("SERVICEBUS_CONNECTION_STRING").unwrap_or_else(|_| DEVELOPMENT.into());
    let queue = std::env::var("SERVICEBUS_SESSION_QUEUE").unwrap_or_else(|_| "sessions".into());
    let client = ServiceBusClient::from_connection_string(&cs, ServiceBusClientOptions::default())?;

    let items = [("cart-1", "250"), ("cart-2", "75"), ("cart-1", "100")];
    let sender = client.create_sender(&queue);
    for (cart, price) in items {
        sender
            .send_message(ServiceBusMessage::new(price).with_session_id(cart))
            .await?;
    }

    let (done, mut added) = mpsc::unbounded_channel();
    let options = ServiceBusSessionProcessorOptions {
        max_concurrent_sessions: 4,
        session_idle_timeout: Duration::from_secs(1),
        ..ServiceBusSessionProcessorOptions::default()
    };
    let processor = client.create_session_processor(&queue, None, options);
    processor
        .start(
            move |context: ProcessSessionMessageContext| {
                let done = done.clone();
                async move {
                    let line = add_to_cart(&context).await?;
                    let _ = done.send(line);
                    Ok::<(), BoxError>(())
                }
            },
            |error: ProcessErrorContext| async move {
                let session = error.session_id.as_deref().unwrap_or("-");
                eprintln!(
                    "{} {session}: {:?}: {}",
                    error.entity_path, error.source, error.error
                );
            },
        )
        .await?;
    for _ in items {
        if let Some(line) = added.recv().await {
            println!("{line}");
        }
    }
    processor.stop().await;
    client.close().await;
    Ok(())
}
