//! Schedules two messages a few seconds ahead, cancels one, peeks the other while it waits,
//! and receives it once its time has come.
//!
//! `cargo run -p busbar-client --example scheduled` against a Busbar on localhost:5672 with
//! a queue `q` (or set `SERVICEBUS_CONNECTION_STRING` and `SERVICEBUS_QUEUE`).

use std::time::{Duration, SystemTime};

use busbar_client::{
    ServiceBusClient, ServiceBusClientOptions, ServiceBusMessage, ServiceBusMessageState,
    ServiceBusReceiverOptions,
};

const DEVELOPMENT: &str = "Endpoint=sb://localhost:5672;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true";

#[tokio::main]
async fn main() -> Result<(), busbar_client::ServiceBusError> {
    let cs = std::env::var("SERVICEBUS_CONNECTION_STRING").unwrap_or_else(|_| DEVELOPMENT.into());
    let queue = std::env::var("SERVICEBUS_QUEUE").unwrap_or_else(|_| "q".into());
    let client = ServiceBusClient::from_connection_string(&cs, ServiceBusClientOptions::default())?;
    let sender = client.create_sender(&queue);

    let at = SystemTime::now() + Duration::from_secs(3);
    let numbers = sender
        .schedule_messages(
            vec![
                ServiceBusMessage::new("reminder"),
                ServiceBusMessage::new("never mind"),
            ],
            at,
        )
        .await?;
    sender.cancel_scheduled_messages(&numbers[1..]).await?;

    let receiver = client.create_receiver(&queue, ServiceBusReceiverOptions::default());
    for message in receiver.peek_messages(10, Some(numbers[0])).await? {
        if message.state == ServiceBusMessageState::Scheduled {
            println!(
                "waiting: #{} {}",
                message.sequence_number,
                String::from_utf8_lossy(&message.body)
            );
        }
    }
    for message in receiver
        .receive_messages(1, Some(Duration::from_secs(30)))
        .await?
    {
        println!("due: {}", String::from_utf8_lossy(&message.body));
        receiver.complete_message(&message).await?;
    }
    client.close().await;
    Ok(())
}
