//! The email service delivering over SMTP (lettre) to a server it is configured with: a
//! small SMTP server in the test accepts mails, or refuses a recipient with 550 (permanent:
//! dead-lettered at once).

mod harness;
mod support;

use harness::wait_for;
use reqwest::{Method, StatusCode};
use serde_json::json;
use support::Stack;
use support::smtp::SmtpSink;

#[tokio::test]
async fn mails_go_out_over_smtp_and_a_refused_recipient_is_dead_lettered() {
    let sink = SmtpSink::start().await;
    let shop = Stack::start(
        &["auth", "email", "gateway"],
        &[("email", &["--smtp", sink.address.as_str()])],
    )
    .await;
    for email in ["fay@example.com", "refused@example.com"] {
        let credentials = json!({ "email": email, "password": "a long password" });
        let (status, body) = shop
            .call(Method::POST, "/api/auth/register", None, Some(credentials))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    let welcome = wait_for("the welcome mail at the SMTP server", || async {
        sink.mails()
            .into_iter()
            .find(|mail| mail.contains("fay@example.com"))
    })
    .await;
    assert!(
        welcome.contains("Subject: Welcome to the shop"),
        "{welcome}"
    );
    assert!(welcome.contains("<shop@localhost>"), "{welcome}");

    let refused = shop.dead_lettered_email().await;
    assert_eq!(
        refused.dead_letter_reason.as_deref(),
        Some("PermanentDeliveryFailure")
    );
    assert!(
        refused
            .dead_letter_error_description
            .as_deref()
            .is_some_and(|d| d.contains("550")),
        "{:?}",
        refused.dead_letter_error_description
    );
    assert!(
        !sink
            .mails()
            .iter()
            .any(|mail| mail.contains("refused@example.com"))
    );
}
