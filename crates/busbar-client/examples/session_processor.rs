//! Consumes a session-enabled queue with a session processor: each session (here: a
//! customer's cart) is handled in order, several sessions at once, and its running total
//! is kept in the session state so another consumer could take over the session. Here it
//! puts three items in two carts, processes them, and stops gracefully.
//!
//! `cargo run -p busbar-client --example session_processor` against a Busbar on
//! localhost:5672 with a session-enabled queue `sessions` (or set
//! `SERVICEBUS_CONNECTION_STRING` and `SERVICEBUS_SESSION_QUEUE`).

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use busbar_client::servicebus::{
    ProcessErrorContext, ProcessSessionMessageContext, ServiceBusClient, ServiceBusClientOptions,
    ServiceBusMessage, ServiceBusSessionProcessorOptions,
};

const DEVELOPMENT: &str = "Endpoint=sb://localhost:5672;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Adds the item's price (the message body, in cents) to the cart's total, kept in the
/// session state; reports the new total on `done`.
async fn add_to_cart(
    context: ProcessSessionMessageContext,
    done: mpsc::UnboundedSender<String>,
) -> Result<(), BoxError> {
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
    let _ = done.send(format!("cart {}: +{price} = {total}", context.session_id()));
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cs = std::env::var("SERVICEBUS_CONNECTION_STRING").unwrap_or_else(|_| DEVELOPMENT.into());
    let queue = std::env::var("SERVICEBUS_SESSION_QUEUE").unwrap_or_else(|_| "sessions".into());
    let client = ServiceBusClient::from_connection_string(&cs, ServiceBusClientOptions::default())?;

    let sender = client.create_sender(&queue);
    for (cart, price) in [("cart-1", "250"), ("cart-2", "120"), ("cart-1", "399")] {
        sender
            .send_message(ServiceBusMessage::new(price).with_session_id(cart))
            .await?;
    }

    let (done_tx, mut done) = mpsc::unbounded_channel();
    let options = ServiceBusSessionProcessorOptions {
        max_concurrent_sessions: 4,
        ..Default::default()
    };
    let processor = client.create_session_processor(&queue, None, options);
    processor
        .start(
            move |context| add_to_cart(context, done_tx.clone()),
            |error: ProcessErrorContext| async move {
                let session = error.session_id.as_deref().unwrap_or("-");
                eprintln!(
                    "{} session {session}: {:?}: {}",
                    error.entity_path, error.source, error.error
                );
            },
        )
        .await?;
    for _ in 0..3 {
        match tokio::time::timeout(Duration::from_secs(30), done.recv()).await {
            Ok(Some(line)) => println!("{line}"),
            _ => return Err("the processor did not handle the items in time".into()),
        }
    }
    processor.stop().await;
    println!("stopped");
    client.close().await;
    Ok(())
}
