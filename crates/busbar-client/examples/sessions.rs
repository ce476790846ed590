//! Sends messages to two sessions of a session-enabled queue, then takes each session in
//! turn with `accept_next_session`, keeping a little state per session.
//!
//! `cargo run -p busbar-client --example sessions` against a Busbar on localhost:5672 with
//! a session-enabled queue `sessions` (or set `SERVICEBUS_CONNECTION_STRING` and
//! `SERVICEBUS_SESSION_QUEUE`).

use std::time::Duration;

use busbar_client::{
    ErrorKind, ServiceBusClient, ServiceBusClientOptions, ServiceBusMessage,
    ServiceBusSessionReceiverOptions,
};

const DEVELOPMENT: &str = "Endpoint=sb://localhost:5672;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true";

#[tokio::main]
async fn main() -> Result<(), busbar_client::ServiceBusError> {
    let cs = std::env::var("SERVICEBUS_CONNECTION_STRING").unwrap_or_else(|_| DEVELOPMENT.into());
    let queue = std::env::var("SERVICEBUS_SESSION_QUEUE").unwrap_or_else(|_| "sessions".into());
    let client = ServiceBusClient::from_connection_string(&cs, ServiceBusClientOptions::default())?;

    let sender = client.create_sender(&queue);
    for (cart, item) in [
        ("cart-1", "apples"),
        ("cart-2", "pears"),
        ("cart-1", "figs"),
    ] {
        sender
            .send_message(ServiceBusMessage::new(item).with_session_id(cart))
            .await?;
    }

    let options = ServiceBusSessionReceiverOptions {
        max_wait: Some(Duration::from_secs(2)),
        ..ServiceBusSessionReceiverOptions::default()
    };
    loop {
        let receiver = match client.accept_next_session(&queue, options.clone()).await {
            Ok(receiver) => receiver,
            // No session has messages left.
            Err(e) if e.kind == ErrorKind::ServiceTimeout => break,
            Err(e) => return Err(e),
        };
        let mut items = receiver
            .get_session_state()
            .await?
            .map(|s| String::from_utf8_lossy(&s).into_owned())
            .unwrap_or_default();
        for message in receiver
            .receive_messages(100, Some(Duration::from_secs(1)))
            .await?
        {
            items.push_str(&String::from_utf8_lossy(&message.body));
            items.push(' ');
            receiver.complete_message(&message).await?;
        }
        receiver
            .set_session_state(Some(items.clone().into_bytes().into()))
            .await?;
        println!("{}: {items}", receiver.session_id());
        receiver.close().await?;
    }
    client.close().await;
    Ok(())
}
