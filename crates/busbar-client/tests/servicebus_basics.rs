//! The SDK's core against a Busbar broker started in the test: a message with every
//! property there and back, settlement (complete, abandon with properties, renew), and
//! errors in Service Bus's terms.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, SystemTime};

use busbar_client::{
    AmqpTimestamp, AmqpValue, ErrorKind, ServiceBusMessage, ServiceBusReceiveMode,
    ServiceBusReceiverOptions,
};
use common::Broker;

const WAIT: Option<Duration> = Some(Duration::from_secs(10));
/// Long enough to be sure nothing is coming, for the checks that a queue is empty.
const NOTHING: Option<Duration> = Some(Duration::from_millis(300));

fn full_message() -> ServiceBusMessage {
    ServiceBusMessage::new("payload")
        .with_message_id("m-1")
        .with_correlation_id("c-1")
        .with_subject("label")
        .with_to("someone")
        .with_reply_to("replies")
        .with_reply_to_session_id("reply-session")
        .with_content_type("application/json")
        .with_time_to_live(Duration::from_secs(3600))
        .with_partition_key("pk")
        .with_application_property("int", 42i32)
        .with_application_property("long", -9_000_000_000i64)
        .with_application_property("ulong", 18_000_000_000u64)
        .with_application_property("ubyte", 7u8)
        .with_application_property("short", -3i16)
        .with_application_property("double", 2.5f64)
        .with_application_property("float", 1.25f32)
        .with_application_property("bool", true)
        .with_application_property("string", "text")
        .with_application_property("binary", vec![0u8, 1, 2])
        .with_application_property("timestamp", AmqpTimestamp(1_700_000_000_000))
        .with_application_property("uuid", AmqpValue::Uuid([7; 16]))
        .with_application_property("char", 'x')
        .with_application_property("null", AmqpValue::Null)
}

#[tokio::test]
async fn every_property_survives_send_and_receive() {
    let broker = Broker::start().await;
    let client = broker.client();
    let sender = client.create_sender("q");
    let sent = full_message();
    sender.send_message(sent.clone()).await.unwrap();

    let receiver = client.create_receiver("q", ServiceBusReceiverOptions::default());
    let before = SystemTime::now() - Duration::from_secs(60);
    let mut got = receiver.receive_messages(5, WAIT).await.unwrap();
    assert_eq!(got.len(), 1);
    let m = got.pop().unwrap();
    assert_eq!(m.body, sent.body);
    assert_eq!(m.message_id, sent.message_id);
    assert_eq!(m.correlation_id, sent.correlation_id);
    assert_eq!(m.subject, sent.subject);
    assert_eq!(m.to, sent.to);
    assert_eq!(m.reply_to, sent.reply_to);
    assert_eq!(m.reply_to_session_id, sent.reply_to_session_id);
    assert_eq!(m.content_type, sent.content_type);
    assert_eq!(m.time_to_live, sent.time_to_live);
    assert_eq!(m.partition_key, sent.partition_key);
    assert_eq!(m.application_properties, sent.application_properties);
    assert_eq!(m.sequence_number, 1);
    assert_eq!(m.delivery_count, 0);
    assert!(m.enqueued_time.unwrap() > before);
    assert!(m.locked_until.unwrap() > m.enqueued_time.unwrap());
    assert!(m.expires_at.unwrap() > m.enqueued_time.unwrap());
    assert!(m.lock_token.is_some());

    receiver.complete_message(&m).await.unwrap();
    assert!(
        receiver
            .receive_messages(1, NOTHING)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(broker.queue_json("q").await["active_message_count"], 0);
}

#[tokio::test]
async fn a_message_without_an_id_gets_one() {
    let broker = Broker::start().await;
    let client = broker.client();
    client
        .create_sender("q")
        .send_message(ServiceBusMessage::new("x"))
        .await
        .unwrap();
    let receiver = client.create_receiver(
        "q",
        ServiceBusReceiverOptions {
            receive_mode: ServiceBusReceiveMode::ReceiveAndDelete,
            ..ServiceBusReceiverOptions::default()
        },
    );
    let got = receiver.receive_messages(1, WAIT).await.unwrap();
    assert_eq!(got[0].message_id.as_ref().map(String::len), Some(32));
    // Receive-and-delete: nothing to settle, and nothing left.
    assert!(got[0].lock_token.is_none());
    assert_eq!(
        receiver.complete_message(&got[0]).await.unwrap_err().kind,
        ErrorKind::InvalidArgument
    );
    assert!(
        receiver
            .receive_messages(1, NOTHING)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn receive_messages_takes_what_is_there_and_asks_for_no_more() {
    let broker = Broker::start().await;
    let client = broker.client();
    let sender = client.create_sender("q");
    let send = |body: &'static str| sender.send_message(ServiceBusMessage::new(body));
    for body in ["m0", "m1", "m2"] {
        send(body).await.unwrap();
    }
    let receiver = client.create_receiver("q", ServiceBusReceiverOptions::default());
    let two = receiver.receive_messages(2, WAIT).await.unwrap();
    let bodies: Vec<_> = two.iter().map(|m| m.body.clone()).collect();
    assert_eq!(bodies, ["m0", "m1"]);
    let one = receiver.receive_messages(10, WAIT).await.unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].body, "m2");
    // The credit the last call did not use went back: later messages go to whoever asks.
    for body in ["m3", "m4"] {
        send(body).await.unwrap();
    }
    let other = client.create_receiver("q", ServiceBusReceiverOptions::default());
    let rest = other.receive_messages(10, WAIT).await.unwrap();
    let bodies: Vec<_> = rest.iter().map(|m| m.body.clone()).collect();
    assert_eq!(bodies, ["m3", "m4"]);
    for m in two.iter().chain(&one) {
        receiver.complete_message(m).await.unwrap();
    }
    for m in &rest {
        other.complete_message(m).await.unwrap();
    }
}

#[tokio::test]
async fn abandon_returns_the_message_counting_the_attempt_with_its_changes() {
    let broker = Broker::start().await;
    let client = broker.client();
    client
        .create_sender("q")
        .send_message(ServiceBusMessage::new("again").with_application_property("kept", 1i32))
        .await
        .unwrap();
    let receiver = client.create_receiver("q", ServiceBusReceiverOptions::default());
    let first = receiver.receive_messages(1, WAIT).await.unwrap().remove(0);
    let changes = [("reason".to_owned(), AmqpValue::from("flaky"))].into();
    receiver
        .abandon_message(&first, Some(changes))
        .await
        .unwrap();
    let second = receiver.receive_messages(1, WAIT).await.unwrap().remove(0);
    assert_eq!(second.sequence_number, first.sequence_number);
    assert_eq!(second.delivery_count, 1);
    assert_eq!(
        second.application_properties["reason"],
        AmqpValue::from("flaky")
    );
    assert_eq!(second.application_properties["kept"], AmqpValue::Int(1));
    receiver.complete_message(&second).await.unwrap();
}

#[tokio::test]
async fn renewing_a_lock_moves_its_expiry_and_keeps_the_message() {
    let broker = Broker::start().await;
    let client = broker.client();
    client
        .create_sender("short-lock")
        .send_message(ServiceBusMessage::new("long job"))
        .await
        .unwrap();
    let receiver = client.create_receiver("short-lock", ServiceBusReceiverOptions::default());
    let m = receiver.receive_messages(1, WAIT).await.unwrap().remove(0);
    let first_expiry = m.locked_until.unwrap();
    // Renew past the original 2 s lock a few times: the lock must stay ours.
    let mut expiry = first_expiry;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let renewed = receiver.renew_message_lock(&m).await.unwrap();
        assert!(renewed > expiry, "{renewed:?} <= {expiry:?}");
        expiry = renewed;
    }
    assert!(SystemTime::now() > first_expiry);
    receiver.complete_message(&m).await.unwrap();
}

#[tokio::test]
async fn settling_after_the_lock_expired_is_message_lock_lost() {
    let broker = Broker::start().await;
    let client = broker.client();
    client
        .create_sender("short-lock")
        .send_message(ServiceBusMessage::new("slow"))
        .await
        .unwrap();
    let receiver = client.create_receiver("short-lock", ServiceBusReceiverOptions::default());
    let m = receiver.receive_messages(1, WAIT).await.unwrap().remove(0);
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let error = receiver.complete_message(&m).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::MessageLockLost, "{error}");
    assert!(!error.is_transient());
    let error = receiver.renew_message_lock(&m).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::MessageLockLost, "{error}");
    // The message came back for another delivery.
    let again = receiver.receive_messages(1, WAIT).await.unwrap().remove(0);
    assert_eq!(again.delivery_count, 1);
    receiver.complete_message(&again).await.unwrap();
}

#[tokio::test]
async fn unknown_entity_is_messaging_entity_not_found() {
    let broker = Broker::start().await;
    let client = broker.client();
    let error = client
        .create_sender("missing")
        .send_message(ServiceBusMessage::new("x"))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::MessagingEntityNotFound, "{error}");
    let error = client
        .create_receiver("missing", ServiceBusReceiverOptions::default())
        .receive_messages(1, NOTHING)
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::MessagingEntityNotFound, "{error}");
}

#[tokio::test]
async fn a_wrong_key_is_unauthorized() {
    let broker = Broker::start().await;
    let cs = broker.connection_string().replace("SAS_KEY_VALUE", "wrong");
    let client =
        busbar_client::ServiceBusClient::from_connection_string(&cs, Default::default()).unwrap();
    let error = client
        .create_sender("q")
        .send_message(ServiceBusMessage::new("x"))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Unauthorized, "{error}");
}
