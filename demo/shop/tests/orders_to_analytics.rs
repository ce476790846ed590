//! The article's flow end to end between the real orders and analytics processes and a
//! real broker: orders commits and publishes, analytics receives, applies, recalculates and
//! completes; the figures follow, each change counted once however it arrives.

mod harness;

use busbar_client::{ServiceBusMessage, ServiceBusReceiverOptions};
use harness::Shop;
use serde_json::json;
use shop::common::contracts::{ChangeKind, OrderChanged, OrderSnapshot, OrderStatus};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_follow_created_updated_and_deleted_orders() {
    let shop = Shop::start().await;
    let first = shop
        .create_order(
            "Ann",
            json!([{"sku": "A", "quantity": 2, "unit_price": 150}]),
        )
        .await;
    assert_eq!(first["total"], 300);
    assert_eq!(first["status"], "open");
    let second = shop
        .create_order(
            "Bob",
            json!([{"sku": "B", "quantity": 1, "unit_price": 1000}, {"sku": "C", "quantity": 3, "unit_price": 5}]),
        )
        .await;
    assert_eq!(second["total"], 1015);
    let third = shop
        .create_order("Cy", json!([{"sku": "D", "quantity": 1, "unit_price": 99}]))
        .await;
    let paid = shop
        .update_order(
            second["id"].as_str().unwrap_or_default(),
            json!({"status": "paid"}),
        )
        .await;
    assert_eq!(paid["version"], 2);
    shop.delete_order(third["id"].as_str().unwrap_or_default())
        .await;

    // 3 created + 1 updated + 1 deleted.
    let figures = shop.figures_after(5).await;
    assert_eq!(figures["total_orders"], 2, "{figures}");
    assert_eq!(figures["open_orders"], 1, "{figures}");
    assert_eq!(figures["orders_by_status"]["open"], 1);
    assert_eq!(figures["orders_by_status"]["paid"], 1);
    assert_eq!(figures["totals_by_status"]["open"]["total_cents"], 300);
    assert_eq!(figures["totals_by_status"]["paid"]["total_cents"], 1015);
    assert_eq!(figures["total_cents"], 1315);
    let by_day: i64 = figures["totals_by_day"]
        .as_object()
        .map(|days| days.values().filter_map(|day| day["orders"].as_i64()).sum())
        .unwrap_or_default();
    assert_eq!(by_day, 2, "{figures}");
    assert!(
        figures["average_open_seconds"].as_f64().is_some(),
        "{figures}"
    );

    // The same changes went to the topic: every event to `all`, only `created` to
    // `email-created` (the SQL filter on the subject).
    let client = shop.client();
    let subjects = |subscription: &'static str| {
        let client = client.clone();
        async move {
            let receiver = client.create_receiver_for_subscription(
                "order-events",
                subscription,
                ServiceBusReceiverOptions::default(),
            );
            let peeked = receiver.peek_messages(100, None).await.unwrap_or_default();
            peeked
                .iter()
                .map(|m| m.subject.clone().unwrap_or_default())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        subjects("all").await,
        ["created", "created", "created", "updated", "deleted"]
    );
    assert_eq!(
        subjects("email-created").await,
        ["created", "created", "created"]
    );
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_changes_leave_the_outbox_after_the_retention() {
    let mut shop = Shop::broker_only().await;
    shop.start_orders_with(&["--outbox-retention", "0s"]).await;
    shop.start_analytics(&[]).await;
    for customer in ["Eve", "Fay"] {
        shop.create_order(
            customer,
            json!([{"sku": "E", "quantity": 1, "unit_price": 1}]),
        )
        .await;
    }
    harness::eventually("the outbox emptied", || async {
        shop.outbox().await["stored"] == 0
    })
    .await;
    // Deleted only once published: analytics got both.
    let figures = shop.figures_after(2).await;
    assert_eq!(figures["total_orders"], 2, "{figures}");
}

fn change(order_id: Uuid, version: i64, status: OrderStatus, total_cents: i64) -> OrderChanged {
    OrderChanged {
        change_id: Uuid::new_v4(),
        order_id,
        version,
        kind: if version == 1 {
            ChangeKind::Created
        } else {
            ChangeKind::Updated
        },
        order: Some(OrderSnapshot {
            owner: "ann@example.com".into(),
            customer: "Dee".into(),
            status,
            items: vec![],
            total_cents,
            created_at: 1_000,
            updated_at: 1_000 + version,
        }),
        at: 1_000 + version,
    }
}

fn message(change: &OrderChanged, message_id: String) -> ServiceBusMessage {
    ServiceBusMessage::new(serde_json::to_vec(change).unwrap_or_default())
        .with_message_id(message_id)
        .with_subject(change.kind.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicated_or_late_change_is_counted_once() {
    let mut shop = Shop::broker_only().await;
    shop.start_analytics(&[]).await;
    let client = shop.client();
    let sender = client.create_sender("order-changes");
    let order = Uuid::new_v4();
    let created = change(order, 1, OrderStatus::Open, 500);
    let paid = change(order, 2, OrderStatus::Paid, 700);
    // Out of order: the update before the creation; then the creation again under another
    // message id, which duplicate detection cannot drop.
    for (change, id) in [
        (&paid, paid.change_id.to_string()),
        (&created, created.change_id.to_string()),
        (&created, format!("{}-redelivered", created.change_id)),
    ] {
        sender
            .send_message(message(change, id))
            .await
            .unwrap_or_else(|e| panic!("send: {e}"));
    }
    // A last change of another order: once it is applied, everything before it has been.
    let sentinel = change(Uuid::new_v4(), 1, OrderStatus::Open, 1);
    sender
        .send_message(message(&sentinel, sentinel.change_id.to_string()))
        .await
        .unwrap_or_else(|e| panic!("send: {e}"));
    shop.figures_after(3).await;
    wait_until_empty(&shop, "order-changes").await;
    let figures = shop.figures().await;
    assert_eq!(figures["changes_applied"], 3, "{figures}");
    assert_eq!(figures["total_orders"], 2, "{figures}");
    assert_eq!(figures["orders_by_status"]["paid"], 1, "{figures}");
    assert_eq!(
        figures["totals_by_status"]["paid"]["total_cents"], 700,
        "{figures}"
    );
    assert_eq!(
        figures["open_orders"], 1,
        "only the sentinel is open: {figures}"
    );
    assert_eq!(figures["total_cents"], 701, "{figures}");
    client.close().await;
}

/// Waits until `queue` holds no message (every change settled).
async fn wait_until_empty(shop: &Shop, queue: &'static str) {
    let client = shop.client();
    harness::eventually(&format!("{queue} empty"), || {
        let client = client.clone();
        async move {
            let receiver = client.create_receiver(queue, ServiceBusReceiverOptions::default());
            let left = receiver.peek_messages(10, None).await.unwrap_or_default();
            let _ = receiver.close().await;
            left.is_empty()
        }
    })
    .await;
    client.close().await;
}
