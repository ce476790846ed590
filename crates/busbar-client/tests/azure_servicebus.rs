//! The same client against a real Azure Service Bus namespace, when one is given:
//! `BUSBAR_AZURE_SERVICEBUS_CONNECTION_STRING` (a namespace connection string with a key
//! that may send and listen, or a SAS token) and `BUSBAR_AZURE_SERVICEBUS_QUEUE` (an
//! existing queue without sessions, ideally empty). Without them the test passes after
//! saying it was skipped: it documents the path to Azure (TLS on 5671 with the public roots,
//! `$cbs` tokens signed from the key) without being able to run here.
//!
//! `BUSBAR_AZURE_SERVICEBUS_CONNECTION_STRING='Endpoint=sb://<ns>.servicebus.windows.net/;...'
//! BUSBAR_AZURE_SERVICEBUS_QUEUE=<queue> cargo nextest run -p busbar-client --test azure_servicebus --no-capture`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use busbar_client::{
    DeadLetterOptions, ServiceBusClient, ServiceBusClientOptions, ServiceBusMessage,
    ServiceBusReceivedMessage, ServiceBusReceiver, ServiceBusReceiverOptions, SubQueue,
};

const CONNECTION_STRING: &str = "BUSBAR_AZURE_SERVICEBUS_CONNECTION_STRING";
const QUEUE: &str = "BUSBAR_AZURE_SERVICEBUS_QUEUE";
const WAIT: Option<Duration> = Some(Duration::from_secs(30));

/// Receives until the message `id` of this run arrives; any other is abandoned.
async fn receive_ours(
    receiver: &ServiceBusReceiver,
    run: &str,
    id: &str,
) -> ServiceBusReceivedMessage {
    for _ in 0..20 {
        for message in receiver.receive_messages(1, WAIT).await.expect("receive") {
            let ours = message
                .application_properties
                .get("run")
                .and_then(|v| v.as_str())
                == Some(run);
            if ours && message.message_id.as_deref() == Some(id) {
                return message;
            }
            // Another run's, or ours but wanted later: back it goes.
            receiver
                .abandon_message(&message, None)
                .await
                .expect("abandon");
        }
    }
    panic!("message {id} of run {run} never arrived");
}

#[tokio::test]
async fn send_receive_and_settle_against_azure_service_bus() {
    let (Ok(connection_string), Ok(queue)) =
        (std::env::var(CONNECTION_STRING), std::env::var(QUEUE))
    else {
        eprintln!(
            "skipped: set {CONNECTION_STRING} and {QUEUE} to run the client against Azure Service Bus"
        );
        return;
    };
    let client = ServiceBusClient::from_connection_string(
        &connection_string,
        ServiceBusClientOptions::default(),
    )
    .expect("a Service Bus connection string");
    let run = uuid::Uuid::new_v4().to_string();
    let sender = client.create_sender(&queue);
    for id in ["complete", "abandon", "dead-letter"] {
        sender
            .send_message(
                ServiceBusMessage::new(format!("{id} body"))
                    .with_message_id(id)
                    .with_subject("busbar-client test")
                    .with_time_to_live(Duration::from_secs(600))
                    .with_application_property("run", run.as_str()),
            )
            .await
            .expect("send");
    }

    let receiver = client.create_receiver(&queue, ServiceBusReceiverOptions::default());
    let message = receive_ours(&receiver, &run, "complete").await;
    assert_eq!(message.body.as_ref(), b"complete body");
    assert_eq!(message.subject.as_deref(), Some("busbar-client test"));
    assert!(message.sequence_number > 0 && message.lock_token.is_some());
    let renewed = receiver.renew_message_lock(&message).await.expect("renew");
    assert!(message.locked_until.is_some_and(|before| renewed >= before));
    receiver.complete_message(&message).await.expect("complete");

    let message = receive_ours(&receiver, &run, "abandon").await;
    let first_count = message.delivery_count;
    receiver
        .abandon_message(&message, None)
        .await
        .expect("abandon");
    let again = receive_ours(&receiver, &run, "abandon").await;
    assert!(
        again.delivery_count > first_count,
        "abandon counts a delivery"
    );
    receiver.complete_message(&again).await.expect("complete");

    let message = receive_ours(&receiver, &run, "dead-letter").await;
    receiver
        .dead_letter_message(
            &message,
            DeadLetterOptions {
                reason: Some("busbar-client test".into()),
                description: Some("dead-lettered on purpose".into()),
                properties_to_modify: None,
            },
        )
        .await
        .expect("dead-letter");
    let dead_letters = client.create_receiver(
        &queue,
        ServiceBusReceiverOptions {
            sub_queue: SubQueue::DeadLetter,
            ..ServiceBusReceiverOptions::default()
        },
    );
    let dead = receive_ours(&dead_letters, &run, "dead-letter").await;
    assert_eq!(
        dead.dead_letter_reason.as_deref(),
        Some("busbar-client test")
    );
    assert_eq!(
        dead.dead_letter_error_description.as_deref(),
        Some("dead-lettered on purpose")
    );
    dead_letters
        .complete_message(&dead)
        .await
        .expect("complete the dead letter");

    receiver.close().await.expect("close");
    dead_letters.close().await.expect("close");
    sender.close().await.expect("close");
    client.close().await;
}
