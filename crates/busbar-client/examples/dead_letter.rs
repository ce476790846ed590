//! Dead-letters a message that cannot be handled, with a reason and description, then
//! reads it back from the queue's dead-letter subqueue.
//!
//! `cargo run -p busbar-client --example dead_letter` against a Busbar on localhost:5672
//! with a queue `q` (or set `SERVICEBUS_CONNECTION_STRING` and `SERVICEBUS_QUEUE`).

use std::time::Duration;

use busbar_client::{
    DeadLetterOptions, ServiceBusClient, ServiceBusClientOptions, ServiceBusMessage,
    ServiceBusReceiverOptions, SubQueue,
};

const DEVELOPMENT: &str = "Endpoint=sb://localhost:5672;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true";

#[tokio::main]
async fn main() -> Result<(), busbar_client::ServiceBusError> {
    let cs = std::env::var("SERVICEBUS_CONNECTION_STRING").unwrap_or_else(|_| DEVELOPMENT.into());
    let queue = std::env::var("SERVICEBUS_QUEUE").unwrap_or_else(|_| "q".into());
    let client = ServiceBusClient::from_connection_string(&cs, ServiceBusClientOptions::default())?;
    let wait = Some(Duration::from_secs(5));

    client
        .create_sender(&queue)
        .send_message(ServiceBusMessage::new("{not json"))
        .await?;
    let receiver = client.create_receiver(&queue, ServiceBusReceiverOptions::default());
    for message in receiver.receive_messages(1, wait).await? {
        receiver
            .dead_letter_message(
                &message,
                DeadLetterOptions {
                    reason: Some("InvalidPayload".into()),
                    description: Some("the body is not JSON".into()),
                    properties_to_modify: None,
                },
            )
            .await?;
    }

    let dead_letters = client.create_receiver(
        &queue,
        ServiceBusReceiverOptions {
            sub_queue: SubQueue::DeadLetter,
            ..ServiceBusReceiverOptions::default()
        },
    );
    for message in dead_letters.receive_messages(10, wait).await? {
        println!(
            "dead-lettered: {} ({:?}: {:?})",
            String::from_utf8_lossy(&message.body),
            message.dead_letter_reason,
            message.dead_letter_error_description
        );
        dead_letters.complete_message(&message).await?;
    }
    client.close().await;
    Ok(())
}
