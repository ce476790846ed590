//! The whole system through its public HTTP API only, as a user (and an operator) meets it:
//! every service a real process behind the gateway, on a real broker, the email service
//! delivering to an SMTP server the test runs. Register and read the welcome mail, log in,
//! create, update and delete orders and see the figures follow; a mail that fails every
//! time (the SMTP server is down) lands in the dead-letter queue, the monitor shows it, and
//! once the server is back a resubmission delivers it; recover the password through the
//! mailbox; logout revokes the token; a request that skips the gateway is refused.

mod harness;
mod support;

use harness::wait_for;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::Stack;
use support::smtp::SmtpSink;

const SERVICES: &[&str] = &["auth", "email", "orders", "analytics", "gateway"];

async fn log_in(shop: &Stack, email: &str, password: &str) -> String {
    let session = shop
        .expect(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({ "email": email, "password": password })),
            StatusCode::OK,
        )
        .await;
    session["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {session}"))
        .to_owned()
}

/// Waits until `GET /api/analytics` shows what `holds` looks for; the figures.
async fn figures_where(
    shop: &Stack,
    token: &str,
    what: &str,
    holds: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(what, || async {
        let (status, figures) = shop
            .call(Method::GET, "/api/analytics", Some(token), None)
            .await;
        (status == StatusCode::OK && holds(&figures)).then_some(figures)
    })
    .await
}

async fn orders_of(shop: &Stack, token: &str) -> Vec<Value> {
    let orders = shop
        .expect(
            Method::GET,
            "/api/orders",
            Some(token),
            None,
            StatusCode::OK,
        )
        .await;
    orders.as_array().cloned().unwrap_or_default()
}

/// `POST /api/orders` (items as sku, quantity, unit price in cents); the created order.
async fn create_order(
    shop: &Stack,
    token: &str,
    customer: &str,
    items: &[(&str, i64, i64)],
) -> Value {
    let items: Vec<Value> = items
        .iter()
        .map(|(sku, quantity, unit_price)| {
            json!({ "sku": sku, "quantity": quantity, "unit_price": unit_price })
        })
        .collect();
    let body = json!({ "customer": customer, "items": items });
    shop.expect(
        Method::POST,
        "/api/orders",
        Some(token),
        Some(body),
        StatusCode::CREATED,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_system_through_the_public_api() {
    let mut smtp = SmtpSink::start().await;
    let shop = Stack::start(SERVICES, &[("email", &["--smtp", smtp.address.as_str()])]).await;
    let email = "hal@example.com";

    // Register, and the welcome mail arrives (in the mailbox and at the SMTP server).
    let credentials = json!({ "email": email, "password": "hal's first password" });
    shop.expect(
        Method::POST,
        "/api/auth/register",
        None,
        Some(credentials),
        StatusCode::CREATED,
    )
    .await;
    let token = log_in(&shop, email, "hal's first password").await;
    let welcome = shop.mail_with_subject(&token, "Welcome").await;
    assert_eq!(welcome["to"], email, "{welcome}");
    assert!(
        smtp.mails()
            .iter()
            .any(|mail| mail.contains("Subject: Welcome to the shop"))
    );

    // Orders: create two, update one, delete the other.
    let bakery = create_order(
        &shop,
        &token,
        "Hal's bakery",
        &[("flour", 4, 250), ("yeast", 2, 100)],
    )
    .await;
    assert_eq!(bakery["status"], "open", "{bakery}");
    assert_eq!(bakery["total"], 1200, "{bakery}");
    let cafe = create_order(&shop, &token, "Hal's café", &[("beans", 1, 900)]).await;
    let bakery_path = format!("/api/orders/{}", bakery["id"].as_str().unwrap_or_default());
    let cafe_path = format!("/api/orders/{}", cafe["id"].as_str().unwrap_or_default());
    let paid = shop.expect(Method::PUT,
        &bakery_path,
        Some(&token),
        Some(json!({ "status": "paid", "items": [{ "sku": "flour", "quantity": 6, "unit_price": 250 }] })),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (paid["status"].clone(), paid["total"].clone()),
        (json!("paid"), json!(1500))
    );
    shop.expect(
        Method::DELETE,
        &cafe_path,
        Some(&token),
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    shop.expect(
        Method::GET,
        &cafe_path,
        Some(&token),
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    let orders = orders_of(&shop, &token).await;
    assert_eq!(orders.len(), 1, "{orders:?}");
    let (status, body) = shop
        .call(
            Method::PUT,
            &bakery_path,
            Some(&token),
            Some(json!({ "status": "lost" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].is_string(), "{body}");

    // The figures follow, through the order-changes queue: eventually, within the deadline.
    let figures = figures_where(&shop, &token, "the figures after the four changes", |f| {
        f["changes_applied"] == 4
    })
    .await;
    assert_eq!(figures["total_orders"], 1, "{figures}");
    assert_eq!(figures["open_orders"], 0, "{figures}");
    assert_eq!(figures["orders_by_status"]["paid"], 1, "{figures}");
    assert_eq!(figures["total_cents"], 1500, "{figures}");

    // The mail server goes down: the "order created" mail of a new order fails every time,
    // and after the queue's max delivery count the broker dead-letters it.
    smtp.stop().await;
    let deli = create_order(&shop, &token, "Hal's deli", &[("olives", 3, 400)]).await;
    let dead = wait_for(
        "the order mail in the dead-letter queue, on the monitor",
        || async {
            shop.dead_letters(&token).await.into_iter().find(|dead| {
                dead["entity"] == "emails"
                    && dead["body"]
                        .as_str()
                        .is_some_and(|body| body.contains("Order created for Hal's deli"))
            })
        },
    )
    .await;
    assert_eq!(dead["reason"], "MaxDeliveryCountExceeded", "{dead}");
    assert!(
        shop.mailbox(&token)
            .await
            .iter()
            .all(|mail| mail["subject"] != "Order created for Hal's deli")
    );
    // The figures are not held up by a mail: the new order is counted, once.
    let figures = figures_where(&shop, &token, "the figures with the deli's order", |f| {
        f["changes_applied"] == 5
    })
    .await;
    assert_eq!(
        (
            figures["total_orders"].clone(),
            figures["open_orders"].clone()
        ),
        (json!(2), json!(1)),
        "{figures}"
    );
    assert_eq!(figures["total_cents"], 2700, "{figures}");

    // The cause is fixed (the server is back); the resubmitted mail is delivered.
    smtp.restart().await;
    let resubmit = format!(
        "/api/dead-letters/emails/{}/resubmit",
        dead["sequence"].as_i64().unwrap_or_default()
    );
    shop.expect(Method::POST, &resubmit, Some(&token), None, StatusCode::OK)
        .await;
    shop.mail_with_subject(&token, "Order created for Hal's deli")
        .await;
    assert!(
        smtp.mails()
            .iter()
            .any(|mail| mail.contains("Order created for Hal's deli"))
    );
    let listed = shop.dead_letters(&token).await;
    assert!(
        listed
            .iter()
            .all(|d| d["sequence"] != dead["sequence"] || d["entity"] != "emails"),
        "resubmitted, it left the dead-letter queue: {listed:?}"
    );
    assert_eq!(deli["status"], "open");

    // Password recovery through the mailbox: the reset token comes by mail.
    shop.expect(
        Method::POST,
        "/api/auth/recover",
        None,
        Some(json!({ "email": email })),
        StatusCode::ACCEPTED,
    )
    .await;
    let (reset_token, _) = shop.reset_token_by_mail(&token).await;
    let reset = json!({ "token": reset_token, "password": "hal's second password" });
    shop.expect(
        Method::POST,
        "/api/auth/reset",
        None,
        Some(reset),
        StatusCode::NO_CONTENT,
    )
    .await;
    shop.expect(
        Method::GET,
        "/api/orders",
        Some(&token),
        None,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let (status, _) = shop
        .call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({ "email": email, "password": "hal's first password" })),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old password is gone");
    let token = log_in(&shop, email, "hal's second password").await;
    let orders = orders_of(&shop, &token).await;
    assert_eq!(orders.len(), 2, "{orders:?}");

    // Logout revokes the token.
    shop.expect(
        Method::POST,
        "/api/auth/logout",
        Some(&token),
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    let refused = shop
        .expect(
            Method::GET,
            "/api/orders",
            Some(&token),
            None,
            StatusCode::UNAUTHORIZED,
        )
        .await;
    assert!(refused["error"].is_string(), "{refused}");

    // A request that skips the gateway is refused by the service, even naming a user.
    for (service, path) in [
        ("orders", "/orders"),
        ("analytics", "/analytics"),
        ("email", "/mailbox"),
        ("auth", "/session"),
    ] {
        let answer = shop
            .http
            .get(format!("{}{path}", shop.url(service)))
            .header("x-shop-user", email)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{service}: {e}"));
        assert_eq!(
            answer.status(),
            StatusCode::UNAUTHORIZED,
            "{service}{path} without the gateway"
        );
    }
}
