//! The email service's delivery outcomes, as real processes with a real broker: SMTP down
//! (retried, then dead-lettered by the broker), a bad address (dead-lettered at once), and
//! the order mails — "order created", and the scheduled "still open" reminder that is sent
//! when due and cancelled when the order closes.

mod harness;
mod support;

use busbar_client::{ServiceBusMessage, ServiceBusMessageState, ServiceBusReceiverOptions};
use harness::{free_port, wait_for};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shop::common::contracts::{
    ChangeKind, EMAILS_QUEUE, EmailKind, EmailRequest, ORDER_EVENTS_TOPIC, OrderChanged,
    OrderSnapshot, OrderStatus,
};
use support::Stack;
use uuid::Uuid;

const SERVICES: &[&str] = &["auth", "email", "gateway"];

/// Registers and logs in; the session token.
async fn signed_in(shop: &Stack, email: &str) -> String {
    let credentials = json!({ "email": email, "password": "a long password" });
    let (status, body) = shop
        .call(
            Method::POST,
            "/api/auth/register",
            None,
            Some(credentials.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, session) = shop
        .call(Method::POST, "/api/auth/login", None, Some(credentials))
        .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    session["token"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn with_the_smtp_server_down_a_mail_is_retried_then_dead_lettered() {
    // Nothing listens on this port: every delivery attempt fails to connect.
    let closed = format!("127.0.0.1:{}", free_port());
    let shop = Stack::start(SERVICES, &[("email", &["--smtp", closed.as_str()])]).await;
    let token = signed_in(&shop, "cy@example.com").await;

    let dead = shop.dead_lettered_email().await;
    let reason = dead.dead_letter_reason.clone().unwrap_or_default();
    let request: EmailRequest =
        serde_json::from_slice(&dead.body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        reason, "MaxDeliveryCountExceeded",
        "abandoned until the broker gave up"
    );
    assert_eq!(request.kind, EmailKind::Welcome);
    assert_eq!(request.to, "cy@example.com");
    assert!(
        shop.mailbox(&token).await.is_empty(),
        "nothing was delivered"
    );
    let attempts = shop
        .log("email")
        .matches("delivery failed, to be retried")
        .count();
    assert_eq!(
        attempts, 5,
        "one attempt per delivery (max delivery count 5)"
    );
}

/// Authorization's mail outbox sends a row again under the same message id when it crashed
/// between the broker's acknowledgement and the row's deletion: the queue drops the copy.
#[tokio::test]
async fn the_emails_queue_drops_a_message_id_sent_again() {
    let shop = Stack::start(&[], &[]).await;
    let client = shop.client();
    let sender = client.create_sender(EMAILS_QUEUE);
    for id in ["outbox-1", "outbox-1", "outbox-2"] {
        sender
            .send_message(ServiceBusMessage::new("{}").with_message_id(id))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let receiver = client.create_receiver(EMAILS_QUEUE, ServiceBusReceiverOptions::default());
    let queued: Vec<_> = receiver
        .peek_messages(10, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|message| message.message_id)
        .collect();
    assert_eq!(
        queued,
        [Some("outbox-1".to_owned()), Some("outbox-2".to_owned())]
    );
}

#[tokio::test]
async fn a_bad_address_is_dead_lettered_at_once_with_the_reason() {
    let shop = Stack::start(SERVICES, &[]).await;
    let request = EmailRequest {
        to: "nobody at nowhere".into(),
        subject: "undeliverable".into(),
        body: "-".into(),
        kind: EmailKind::DeadLetterAlert,
        order_id: None,
    };
    let body = serde_json::to_vec(&request).unwrap_or_default();
    shop.client()
        .create_sender(EMAILS_QUEUE)
        .send_message(ServiceBusMessage::new(body))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let dead = shop.dead_lettered_email().await;
    let reason = dead.dead_letter_reason.clone().unwrap_or_default();
    let dead: EmailRequest = serde_json::from_slice(&dead.body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reason, "PermanentDeliveryFailure");
    assert_eq!(dead, request);
    assert!(
        !shop.log("email").contains("delivery failed, to be retried"),
        "never retried"
    );
}

fn order_event(
    order_id: Uuid,
    version: i64,
    kind: ChangeKind,
    status: OrderStatus,
) -> OrderChanged {
    OrderChanged {
        change_id: Uuid::new_v4(),
        order_id,
        version,
        kind,
        order: Some(OrderSnapshot {
            owner: "di@example.com".into(),
            customer: "Di's bakery".into(),
            status,
            items: Vec::new(),
            total_cents: 1250,
            created_at: 0,
            updated_at: 0,
        }),
        at: 0,
    }
}

/// Publishes an order event as the orders service does.
async fn publish(shop: &Stack, change: &OrderChanged) {
    let message = ServiceBusMessage::new(serde_json::to_vec(change).unwrap_or_default())
        .with_message_id(change.change_id.to_string())
        .with_subject(change.event_subject());
    shop.client()
        .create_sender(ORDER_EVENTS_TOPIC)
        .send_message(message)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn an_open_order_gets_its_reminder_when_due() {
    let shop = Stack::start(SERVICES, &[("email", &["--order-reminder-after", "2s"])]).await;
    let token = signed_in(&shop, "di@example.com").await;
    let order_id = Uuid::new_v4();
    publish(
        &shop,
        &order_event(order_id, 1, ChangeKind::Created, OrderStatus::Open),
    )
    .await;

    let created = shop.mail_with_subject(&token, "Order created").await;
    assert!(
        created["body"]
            .as_str()
            .is_some_and(|b| b.contains("12.50")),
        "{created}"
    );
    let reminder = shop.mail_with_subject(&token, "still open").await;
    assert!(
        reminder["body"]
            .as_str()
            .is_some_and(|b| b.contains(&order_id.to_string()))
    );
}

#[tokio::test]
async fn closing_an_order_cancels_its_scheduled_reminder() {
    let shop = Stack::start(SERVICES, &[("email", &["--order-reminder-after", "1h"])]).await;
    let token = signed_in(&shop, "di@example.com").await;
    let order_id = Uuid::new_v4();
    publish(
        &shop,
        &order_event(order_id, 1, ChangeKind::Created, OrderStatus::Open),
    )
    .await;
    shop.mail_with_subject(&token, "Order created").await;

    let client = shop.client();
    let peeker = client.create_receiver(EMAILS_QUEUE, ServiceBusReceiverOptions::default());
    let reminder_id = format!("order-reminder-{order_id}");
    let scheduled_reminder = || async {
        let waiting = peeker.peek_messages(100, Some(1)).await.unwrap_or_default();
        waiting.into_iter().any(|message| {
            message.state == ServiceBusMessageState::Scheduled
                && message.message_id.as_deref() == Some(reminder_id.as_str())
        })
    };
    wait_for("the reminder scheduled", || async {
        scheduled_reminder().await.then_some(())
    })
    .await;

    publish(
        &shop,
        &order_event(order_id, 2, ChangeKind::Updated, OrderStatus::Closed),
    )
    .await;
    wait_for("the reminder cancelled", || async {
        (!scheduled_reminder().await).then_some(())
    })
    .await;
    let subjects: Vec<Value> = shop
        .mailbox(&token)
        .await
        .into_iter()
        .map(|m| m["subject"].clone())
        .collect();
    assert!(
        !subjects
            .iter()
            .any(|s| s.as_str().is_some_and(|s| s.contains("still open")))
    );
}

/// Waits until a subscription of `order-events` holds no message (all handled and settled).
async fn drained(shop: &Stack, subscription: &str) {
    let client = shop.client();
    let peeker = client.create_receiver_for_subscription(
        ORDER_EVENTS_TOPIC,
        subscription,
        ServiceBusReceiverOptions::default(),
    );
    wait_for(&format!("{subscription} drained"), || async {
        let waiting = peeker.peek_messages(10, Some(1)).await.ok()?;
        waiting.is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_order_closed_before_its_creation_is_handled_gets_no_reminder() {
    let shop = Stack::start(SERVICES, &[("email", &["--order-reminder-after", "1h"])]).await;
    let token = signed_in(&shop, "di@example.com").await;
    let order_id = Uuid::new_v4();
    // The two events travel through different subscriptions, so nothing orders them.
    publish(
        &shop,
        &order_event(order_id, 2, ChangeKind::Updated, OrderStatus::Closed),
    )
    .await;
    drained(&shop, "email-closed").await;
    publish(
        &shop,
        &order_event(order_id, 1, ChangeKind::Created, OrderStatus::Open),
    )
    .await;
    shop.mail_with_subject(&token, "Order created").await;
    drained(&shop, "email-created").await;

    let client = shop.client();
    let peeker = client.create_receiver(EMAILS_QUEUE, ServiceBusReceiverOptions::default());
    let waiting = peeker.peek_messages(100, Some(1)).await.unwrap_or_default();
    let reminder_id = format!("order-reminder-{order_id}");
    assert!(
        !waiting
            .iter()
            .any(|message| message.message_id.as_deref() == Some(reminder_id.as_str())),
        "a reminder was scheduled for a closed order"
    );
}
