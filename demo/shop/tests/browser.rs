//! The pages in headless Chromium against `shop up`: register and log in on the sign-in
//! page, create, edit and delete orders on the orders page by clicking, see them on the
//! analytics dashboard (and the order mail in the mailbox), and resubmit a dead letter from
//! the dead-letter page. Screenshots of each page go to `SHOP_SCREENSHOTS` when set
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

/// An order line: sku, quantity, unit price in cents.
type Item = (&'static str, u32, u32);

/// Fills the order form's item rows, adding rows.
fn fill_items(items: &[Item]) -> String {
    let rows: Vec<String> = items
        .iter()
        .map(|(sku, quantity, price)| format!("[{sku:?}, '{quantity}', '{price}']"))
        .collect();
    format!(
        "(() => {{ const values = [{}]; \
         while (document.querySelectorAll('#items .items-row').length < values.length) \
             document.getElementById('add-item').click(); \
         const rows = document.querySelectorAll('#items .items-row'); \
         values.forEach((v, i) => rows[i].querySelectorAll('input').forEach((input, j) => input.value = v[j])); \
         return true; }})()",
        rows.join(", ")
    )
}

/// Clicks the button labelled `button` in the table row whose first cell is `first_cell`.
fn click_in_row(table: &str, first_cell: &str, button: &str) -> String {
    format!(
        "(() => {{ const row = [...document.querySelectorAll('#{table} tr')] \
             .find(r => r.cells[0].textContent === {first_cell:?}); \
         [...row.querySelectorAll('button')].find(b => b.textContent === {button:?}).click(); \
         return true; }})()"
    )
}

/// A JavaScript test of whether the table row whose first cell is `first_cell` exists and
/// contains `text`.
fn row_shows(table: &str, first_cell: &str, text: &str) -> String {
    format!(
        "[...document.querySelectorAll('#{table} tr')] \
             .some(r => r.cells[0].textContent === {first_cell:?} && r.textContent.includes({text:?}))"
    )
}

#[tokio::test]
async fn sign_in_edit_and_delete_orders_see_the_dashboard_and_resubmit_a_dead_letter() {
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

    // Three orders made on the page; one edited to paid, one deleted, by their buttons.
    let orders: [(&str, &[Item]); 3] = [
        (
            "Eve's deli",
            &[("sourdough", 2, 450), ("croissant", 6, 180)],
        ),
        ("Corner café", &[("birthday cake", 1, 2400)]),
        ("Ordered by mistake", &[("napkins", 1, 100)]),
    ];
    for (customer, items) in orders {
        browser
            .wait_for("document.querySelectorAll('#items .items-row').length === 1")
            .await;
        browser.evaluate(&fill_items(items)).await;
        browser
            .evaluate(&submit("order-form", &[("customer", customer)]))
            .await;
        browser
            .wait_for(&row_shows("orders", customer, "open"))
            .await;
    }
    assert!(
        browser
            .evaluate(&row_shows("orders", "Eve's deli", "19.80"))
            .await
            .as_bool()
            .unwrap_or_default()
    );
    browser
        .evaluate(&click_in_row("orders", "Corner café", "Edit"))
        .await;
    browser
        .wait_for("document.getElementById('save').textContent === 'Save'")
        .await;
    browser
        .evaluate(&submit("order-form", &[("status", "paid")]))
        .await;
    browser
        .wait_for(&row_shows("orders", "Corner café", "paid"))
        .await;
    browser
        .wait_for("document.getElementById('order-message').textContent === 'Order saved.'")
        .await;
    browser
        .evaluate(&click_in_row("orders", "Ordered by mistake", "Delete"))
        .await;
    browser
        .wait_for(
            "document.getElementById('order-message').textContent === 'Order deleted.' && \
             !document.getElementById('orders').textContent.includes('Ordered by mistake')",
        )
        .await;
    browser.screenshot(&shots.join("orders.png")).await;

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

    // Resubmitted by its button: back in the queue, and (its address still not one) dead-
    // lettered again, under a new sequence number.
    let first = browser
        .evaluate("document.getElementById('dead-letters').rows[0].cells[1].textContent")
        .await;
    browser
        .evaluate(&click_in_row("dead-letters", "emails", "Resubmit"))
        .await;
    browser
        .wait_for("document.getElementById('dead-letters-message').textContent === 'Resubmitted.'")
        .await;
    let first = first.as_str().unwrap_or_default();
    browser
        .wait_for(&format!(
            "([...document.querySelectorAll('#dead-letters tr')].some(r => r.cells.length > 2 \
                 && r.cells[0].textContent === 'emails' && r.cells[1].textContent !== '{first}' \
                 && r.cells[2].textContent === 'PermanentDeliveryFailure') \
             || (location.reload(), false))"
        ))
        .await;
}
