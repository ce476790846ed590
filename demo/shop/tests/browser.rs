//! The pages in headless Chromium against `shop up`: register and log in on the sign-in
//! page, create an order on the orders page, and see it on the analytics dashboard (and the
//! order mail in the mailbox). Screenshots of each page go to `SHOP_SCREENSHOTS` when set
//! (the docs' are made so: `SHOP_SCREENSHOTS=docs/shop cargo nextest run -p shop --test
//! browser`), else into the test's temporary directory.

mod harness;
mod support;

use std::path::PathBuf;

use busbar_client::{ServiceBusClient, ServiceBusClientOptions, ServiceBusMessage};
use shop::common::contracts::{EMAILS_QUEUE, EmailKind, EmailRequest};
use support::Stack;
use support::browser::Browser;

/// Fills the named fields of a form and clicks its submit button.
fn submit(form: &str, fields: &[(&str, &str)]) -> String {
    let assignments: String = fields
        .iter()
        .map(|(name, value)| format!("form.elements[{name:?}].value = {value:?};"))
        .collect();
    format!(
        "(() => {{ const form = document.getElementById({form:?}); {assignments} \
         form.querySelector('button[type=submit]').click(); return true; }})()"
    )
}

#[tokio::test]
async fn sign_in_create_an_order_and_see_it_on_the_dashboard() {
    let shop = Stack::up().await;
    let shots = std::env::var_os("SHOP_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| shop.dir.path().join("screenshots"));
    std::fs::create_dir_all(&shots).unwrap_or_else(|e| panic!("{e}"));
    let gateway = shop.gateway();
    let mut browser = Browser::start().await;

    browser.navigate(&format!("{gateway}/login")).await;
    let credentials = [("email", "eve@example.com"), ("password", "eve's password")];
    browser
        .evaluate(&submit("register-form", &credentials))
        .await;
    browser
        .wait_for("document.getElementById('register-message').textContent.includes('Registered')")
        .await;
    browser.screenshot(&shots.join("login.png")).await;
    browser.evaluate(&submit("login-form", &credentials)).await;
    browser.wait_for("location.pathname === '/orders'").await;

    browser
        .wait_for("document.querySelectorAll('#items .items-row').length === 1")
        .await;
    browser
        .evaluate(
            "(() => { document.getElementById('add-item').click(); \
             const rows = document.querySelectorAll('#items .items-row'); \
             const fill = (row, values) => row.querySelectorAll('input').forEach((input, i) => input.value = values[i]); \
             fill(rows[0], ['sourdough', '2', '450']); fill(rows[1], ['croissant', '6', '180']); \
             return true; })()",
        )
        .await;
    browser
        .evaluate(&submit("order-form", &[("customer", "Eve's deli")]))
        .await;
    browser
        .wait_for("document.getElementById('orders').textContent.includes(\"Eve's deli\")")
        .await;
    let row = browser
        .evaluate("document.getElementById('orders').rows[0].textContent")
        .await;
    assert!(
        row.as_str()
            .is_some_and(|row| row.contains("open") && row.contains("19.80")),
        "{row}"
    );
    browser.screenshot(&shots.join("orders.png")).await;

    // A second order, paid, through the same API the pages use.
    browser
        .evaluate(
            "(async () => { const order = await shop.api('POST', '/api/orders', { customer: 'Corner café', \
             items: [{ sku: 'birthday cake', quantity: 1, unit_price: 2400 }] }); \
             await shop.api('PUT', '/api/orders/' + order.id, { status: 'paid', customer: order.customer, items: order.items }); \
             return true; })()",
        )
        .await;

    // The figures follow through the order-changes queue: waited for, not assumed.
    browser.navigate(&format!("{gateway}/dashboard")).await;
    browser
        .wait_for(
            "document.getElementById('open-orders').textContent === '1' && \
             document.getElementById('order-count').textContent === '2' && \
             document.getElementById('total-value').textContent === '43.80' && \
             document.querySelector('#by-status-chart svg rect') !== null",
        )
        .await;
    browser.screenshot(&shots.join("dashboard.png")).await;

    browser.navigate(&format!("{gateway}/mailbox")).await;
    browser
        .wait_for("document.getElementById('mails').textContent.includes(\"Order created for Eve's deli\")")
        .await;
    browser.screenshot(&shots.join("mailbox.png")).await;

    // An undeliverable mail, so the dead-letter page has something to show.
    let undeliverable = EmailRequest {
        to: "eve at example dot com".into(),
        subject: "Your receipt".into(),
        body: "-".into(),
        kind: EmailKind::OrderCreated,
        order_id: None,
    };
    let client = ServiceBusClient::from_connection_string(
        &shop.connection_string,
        ServiceBusClientOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    client
        .create_sender(EMAILS_QUEUE)
        .send_message(ServiceBusMessage::new(
            serde_json::to_vec(&undeliverable).unwrap_or_default(),
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    browser.navigate(&format!("{gateway}/dead-letters")).await;
    browser
        .wait_for(
            "(document.getElementById('dead-letters').textContent.includes('PermanentDeliveryFailure') \
             || (location.reload(), false))",
        )
        .await;
    browser.screenshot(&shots.join("dead-letters.png")).await;
}
