//! The failures the article promises to survive, with real processes: a poison message ends
//! in the dead-letter queue (and the monitor lists it, mails about it, and resubmits it),
//! analytics down while orders change, the broker killed with SIGKILL mid-load.

mod harness;

use std::collections::BTreeSet;

use busbar_client::{ServiceBusMessage, ServiceBusReceiverOptions};
use harness::{SECRET, Shop, eventually, wait_for};
use serde_json::{Value, json};
use shop::common::contracts::{
    ChangeKind, EmailKind, EmailRequest, OrderChanged, OrderSnapshot, OrderStatus,
};

/// Everything waiting in `queue` (or `topic/Subscriptions/name`), peeked.
async fn peek_all(
    shop: &Shop,
    topic_or_queue: &str,
    subscription: Option<&str>,
) -> Vec<busbar_client::ServiceBusReceivedMessage> {
    let client = shop.client();
    let receiver = match subscription {
        Some(subscription) => client.create_receiver_for_subscription(
            topic_or_queue,
            subscription,
            ServiceBusReceiverOptions::default(),
        ),
        None => client.create_receiver(topic_or_queue, ServiceBusReceiverOptions::default()),
    };
    let mut all = Vec::new();
    loop {
        let page = receiver.peek_messages(250, None).await.unwrap_or_default();
        if page.is_empty() {
            break;
        }
        all.extend(page);
    }
    let _ = receiver.close().await;
    client.close().await;
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_is_dead_lettered_listed_mailed_and_resubmitted() {
    let mut shop = Shop::broker_only().await;
    shop.start_analytics(&["--dead-letter-check-every", "200ms"])
        .await;
    let client = shop.client();
    client
        .create_sender("order-changes")
        .send_message(ServiceBusMessage::new("{not an order").with_message_id("poison-1"))
        .await
        .unwrap_or_else(|e| panic!("send: {e}"));

    let listed = wait_for("the poison message in the dead-letter queue", || async {
        Some(shop.dead_letters().await).filter(|listed| !listed.is_empty())
    })
    .await;
    let dead = listed[0].clone();
    assert_eq!(dead["entity"], "order-changes", "{dead}");
    assert_eq!(dead["message_id"], "poison-1", "{dead}");
    assert_eq!(dead["reason"], "MaxDeliveryCountExceeded", "{dead}");
    assert_eq!(dead["body"], "{not an order", "{dead}");
    let figures = shop.figures().await;
    assert_eq!(figures["changes_applied"], 0, "{figures}");
    assert_eq!(figures["total_orders"], 0, "{figures}");

    // The monitor mailed about it through the emails queue.
    let alerts = wait_for("a dead-letter alert in the emails queue", || async {
        Some(peek_all(&shop, "emails", None).await).filter(|alerts| !alerts.is_empty())
    })
    .await;
    let alert: EmailRequest =
        serde_json::from_slice(&alerts[0].body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(alert.kind, EmailKind::DeadLetterAlert);
    assert!(alert.body.contains("order-changes"), "{}", alert.body);
    assert!(
        alert.body.contains("MaxDeliveryCountExceeded"),
        "{}",
        alert.body
    );

    // Only the gateway may ask.
    let refused = shop
        .http
        .get(format!("{}/dead-letters", shop.analytics_url))
        .send()
        .await
        .map(|r| r.status().as_u16());
    assert_eq!(refused.ok(), Some(401));
    let wrong = shop
        .http
        .get(format!("{}/dead-letters", shop.analytics_url))
        .header("x-shop-internal", format!("{SECRET}x"))
        .send()
        .await
        .map(|r| r.status().as_u16());
    assert_eq!(wrong.ok(), Some(401));

    let sequence = dead["sequence"].as_i64().unwrap_or_default();
    assert_eq!(shop.resubmit("order-changes", sequence + 1000).await.0, 404);
    assert_eq!(shop.resubmit("nowhere", sequence).await.0, 404);
    let (status, resubmitted) = shop.resubmit("order-changes", sequence).await;
    assert_eq!(status, 200, "{resubmitted}");
    let new_id = format!("poison-1:resubmitted:{sequence}");
    assert_eq!(resubmitted["message_id"], new_id.as_str());

    // Back in its queue it fails again (its cause is not fixed) and is dead-lettered anew;
    // the original is gone from the dead-letter queue.
    let listed = wait_for("the resubmitted message dead-lettered again", || async {
        Some(shop.dead_letters().await)
            .filter(|listed| listed.iter().any(|d| d["message_id"] == new_id.as_str()))
    })
    .await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_ne!(listed[0]["sequence"], sequence);
    eventually("a second alert, for the new dead letter", || async {
        peek_all(&shop, "emails", None).await.len() == 2
    })
    .await;
    let figures = shop.figures().await;
    assert_eq!(figures["changes_applied"], 0, "{figures}");
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriptions_dead_letter_goes_back_to_that_subscription_only() {
    let mut shop = Shop::broker_only().await;
    shop.start_analytics(&[]).await;
    let client = shop.client();
    client
        .create_sender("order-events")
        .send_message(
            ServiceBusMessage::new("{\"event\": 1}")
                .with_message_id("event-1")
                .with_subject("created"),
        )
        .await
        .unwrap_or_else(|e| panic!("send: {e}"));
    // `all` and `email-created` both got it; `all`'s consumer gives up on it.
    let all = client.create_receiver_for_subscription(
        "order-events",
        "all",
        ServiceBusReceiverOptions::default(),
    );
    let received = all
        .receive_messages(1, Some(std::time::Duration::from_secs(10)))
        .await
        .unwrap_or_default();
    let message = received.first().expect("the event in all");
    all.dead_letter_message(
        message,
        busbar_client::DeadLetterOptions {
            reason: Some("NoConsumer".into()),
            description: Some("test".into()),
            properties_to_modify: None,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("dead-letter: {e}"));
    let listed = shop.dead_letters().await;
    let dead = listed
        .iter()
        .find(|d| d["entity"] == "order-events:all")
        .unwrap_or_else(|| panic!("not listed: {listed:?}"));
    assert_eq!(dead["reason"], "NoConsumer");
    let sequence = dead["sequence"].as_i64().unwrap_or_default();
    let (status, body) = shop.resubmit("order-events:all", sequence).await;
    assert_eq!(status, 200, "{body}");

    let back = all
        .receive_messages(1, Some(std::time::Duration::from_secs(10)))
        .await
        .unwrap_or_default();
    assert_eq!(
        back.first().and_then(|m| m.message_id.clone()).as_deref(),
        Some(format!("event-1:resubmitted:{sequence}").as_str())
    );
    // email-created still holds only the original.
    let email_created = peek_all(&shop, "order-events", Some("email-created")).await;
    let ids: Vec<_> = email_created.iter().map(|m| m.message_id.clone()).collect();
    assert_eq!(ids, [Some("event-1".to_owned())]);
    assert!(shop.dead_letters().await.is_empty());
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_dead_lettered_while_the_database_was_down_is_applied_once_resubmitted() {
    let mut shop = Shop::broker_only().await;
    if std::env::var(harness::POSTGRES_ENV).is_ok() {
        eprintln!("this test locks the SQLite file; skipped on PostgreSQL");
        return;
    }
    shop.start_analytics(&[]).await;
    // The cause: analytics' database refuses writes (another connection holds its lock).
    sqlx::any::install_default_drivers();
    let file = shop.dir.path().join("analytics").join("analytics.db");
    let mut blocker =
        <sqlx::AnyConnection as sqlx::Connection>::connect(&format!("sqlite://{}", file.display()))
            .await
            .unwrap_or_else(|e| panic!("open {}: {e}", file.display()));
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut blocker)
        .await
        .unwrap_or_else(|e| panic!("lock: {e}"));
    let change = OrderChanged {
        change_id: uuid::Uuid::new_v4(),
        order_id: uuid::Uuid::new_v4(),
        version: 1,
        kind: ChangeKind::Created,
        order: Some(OrderSnapshot {
            owner: "gil@shop.example".into(),
            customer: "Gil".into(),
            status: OrderStatus::Open,
            items: vec![],
            total_cents: 250,
            created_at: 1_000,
            updated_at: 1_000,
        }),
        at: 1_000,
    };
    let client = shop.client();
    client
        .create_sender("order-changes")
        .send_message(
            ServiceBusMessage::new(serde_json::to_vec(&change).unwrap_or_default())
                .with_message_id(change.change_id.to_string()),
        )
        .await
        .unwrap_or_else(|e| panic!("send: {e}"));
    let listed = wait_for("the change dead-lettered", || async {
        Some(shop.dead_letters().await).filter(|listed| !listed.is_empty())
    })
    .await;
    assert_eq!(
        listed[0]["reason"], "MaxDeliveryCountExceeded",
        "{listed:?}"
    );

    // The fix, then the resubmission: applied once.
    sqlx::query("ROLLBACK")
        .execute(&mut blocker)
        .await
        .unwrap_or_else(|e| panic!("unlock: {e}"));
    drop(blocker);
    let sequence = listed[0]["sequence"].as_i64().unwrap_or_default();
    let (status, body) = shop.resubmit("order-changes", sequence).await;
    assert_eq!(status, 200, "{body}");
    let figures = shop.figures_after(1).await;
    assert_eq!(figures["total_orders"], 1, "{figures}");
    assert_eq!(figures["total_cents"], 250, "{figures}");
    assert!(shop.dead_letters().await.is_empty());
    client.close().await;
}

/// What the orders service holds: the truth the figures must match.
async fn orders_truth(shop: &Shop) -> (usize, usize, i64) {
    let orders = shop.get_ok(format!("{}/orders", shop.orders_url)).await;
    let orders = orders.as_array().cloned().unwrap_or_default();
    let paid = orders.iter().filter(|o| o["status"] == "paid").count();
    let total = orders.iter().filter_map(|o| o["total"].as_i64()).sum();
    (orders.len(), paid, total)
}

/// Creates `count` orders (the `n`th with `n` items of 100 cents), pays every other one and
/// deletes every fifth; the number of changes made.
async fn change_orders(shop: &Shop, range: std::ops::Range<i64>) -> i64 {
    let mut changes = 0;
    for n in range {
        let order = shop
            .create_order(
                &format!("customer {n}"),
                json!([{"sku": "S", "quantity": n + 1, "unit_price": 100}]),
            )
            .await;
        changes += 1;
        let id = order["id"].as_str().unwrap_or_default().to_owned();
        if n % 2 == 0 {
            shop.update_order(&id, json!({"status": "paid"})).await;
            changes += 1;
        }
        if n % 5 == 4 {
            shop.delete_order(&id).await;
            changes += 1;
        }
    }
    changes
}

fn assert_figures_match(figures: &Value, truth: (usize, usize, i64)) {
    let (orders, paid, total) = truth;
    assert_eq!(figures["total_orders"], orders as i64, "{figures}");
    assert_eq!(
        figures["orders_by_status"]["paid"], paid as i64,
        "{figures}"
    );
    assert_eq!(figures["total_cents"], total, "{figures}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_catch_up_after_analytics_was_down() {
    let mut shop = Shop::start().await;
    let before = change_orders(&shop, 0..3).await;
    shop.figures_after(before).await;
    if let Some(analytics) = shop.analytics.as_mut() {
        analytics.kill9();
    }
    let during = change_orders(&shop, 3..20).await;
    // The changes wait in the queue, not lost.
    eventually("the changes queued", || async {
        peek_all(&shop, "order-changes", None).await.len() as i64 == during
    })
    .await;
    if let Some(analytics) = shop.analytics.as_mut() {
        analytics.restart().await;
    }
    let figures = shop.figures_after(before + during).await;
    assert_figures_match(&figures, orders_truth(&shop).await);
    eventually("the queue drained", || async {
        peek_all(&shop, "order-changes", None).await.is_empty()
    })
    .await;
    assert_eq!(shop.figures().await["changes_applied"], before + during);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_mode_drains_and_recalculates() {
    let mut shop = Shop::broker_only().await;
    shop.start_orders().await;
    shop.start_analytics(&["--drain-every", "1s"]).await;
    let changes = change_orders(&shop, 0..6).await;
    let figures = shop.figures_after(changes).await;
    assert_figures_match(&figures, orders_truth(&shop).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_change_lost_or_doubled_when_the_broker_is_killed_mid_load() {
    let mut shop = Shop::start().await;
    let first = change_orders(&shop, 0..10).await;
    // Killed while changes are in flight: the publisher is sending these very changes.
    let load = {
        let orders_url = shop.orders_url.clone();
        let http = shop.http.clone();
        tokio::spawn(async move {
            let mut made = 0;
            for n in 10..40 {
                let created = http
                    .post(format!("{orders_url}/orders"))
                    .header("x-shop-internal", SECRET)
                    .header("x-shop-user", "buyer@shop.example")
                    .json(&json!({"customer": format!("c{n}"), "items": [{"sku": "S", "quantity": 1, "unit_price": n}]}))
                    .send()
                    .await;
                if matches!(&created, Ok(r) if r.status().as_u16() == 201) {
                    made += 1;
                }
            }
            made
        })
    };
    shop.broker.kill9();
    // The orders service still takes orders while the broker is gone; the broker stays away
    // until the publisher has failed to send them (beyond the client's own retries).
    let during = change_orders(&shop, 40..45).await;
    eventually("the publisher failing while the broker is down", || async {
        let (_, outbox) = shop
            .call(
                reqwest::Method::GET,
                format!("{}/outbox", shop.orders_url),
                None,
            )
            .await;
        outbox["failed_attempts"].as_i64().unwrap_or_default() > 0
            && outbox["pending"].as_i64().unwrap_or_default() > 0
    })
    .await;
    shop.broker.restart().await;
    let loaded = load.await.unwrap_or_default();
    assert_eq!(loaded, 30, "every order was taken");
    let after = change_orders(&shop, 45..50).await;
    let expected = first + loaded + during + after;

    let figures = shop.figures_after(expected).await;
    assert_figures_match(&figures, orders_truth(&shop).await);
    eventually("the queue drained", || async {
        peek_all(&shop, "order-changes", None).await.is_empty()
    })
    .await;
    assert_eq!(shop.figures().await["changes_applied"], expected);
    // Each change once on the topic too (a re-send after a lost acknowledgement was dropped
    // by duplicate detection).
    let events = peek_all(&shop, "order-events", Some("all")).await;
    let ids: BTreeSet<_> = events.iter().filter_map(|m| m.message_id.clone()).collect();
    assert_eq!(ids.len() as i64, expected);
    assert_eq!(events.len() as i64, expected, "duplicates on the topic");
}
