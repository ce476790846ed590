//! Sends a few messages to a queue and receives them with peek-lock, completing each.
//!
//! `cargo run -p busbar-client --example send_receive` against a Busbar on localhost:5672
//! with a queue `q`; or set `SERVICEBUS_CONNECTION_STRING` and `SERVICEBUS_QUEUE`.

use std::time::Duration;

use busbar_client::{
    ServiceBusClient, ServiceBusClientOptions, ServiceBusMessage, ServiceBusReceiverOptions,
};

const DEVELOPMENT: &str = "Endpoint=sb://localhost:5672;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true";

#[tokio::main]
async fn main() -> Result<(), busbar_client::ServiceBusError> {
    let cs = std::env::var("SERVICEBUS_CONNECTION_STRING").unwrap_or_else(|_| DEVELOPMENT.into());
    let queue = std::env::var("SERVICEBUS_QUEUE").unwrap_or_else(|_| "q".into());
    let client = ServiceBusClient::from_connection_string(&cs, ServiceBusClientOptions::default())?;

    let sender = client.create_sender(&queue);
    for i in 0..3 {
        let message = ServiceBusMessage::new(format!("order {i}"))
            .with_subject("order")
            .with_application_property("number", i);
        sender.send_message(message).await?;
    }

    let receiver = client.create_receiver(&queue, ServiceBusReceiverOptions::default());
    for message in receiver
        .receive_messages(10, Some(Duration::from_secs(5)))
        .await?
    {
        println!(
            "#{} {:?}: {}",
            message.sequence_number,
            message.subject,
            String::from_utf8_lossy(&message.body)
        );
        receiver.complete_message(&message).await?;
    }
    receiver.close().await?;
    sender.close().await?;
    client.close().await;
    Ok(())
}
