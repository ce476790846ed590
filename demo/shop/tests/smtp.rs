//! The email service delivering over SMTP (lettre) to a server it is configured with: a
//! small SMTP server in the test accepts mails, or refuses a recipient with 550 (permanent:
//! dead-lettered at once).

mod harness;
mod support;

use std::sync::{Arc, Mutex};

use harness::wait_for;
use reqwest::{Method, StatusCode};
use serde_json::json;
use support::Stack;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;

/// An SMTP server that keeps what it receives; RCPT TO an address starting with
/// `refused` gets 550.
struct SmtpSink {
    address: String,
    received: Arc<Mutex<Vec<String>>>,
}

impl SmtpSink {
    async fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let address = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let received = Arc::new(Mutex::new(Vec::new()));
        let kept = received.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(session(stream, kept.clone()));
            }
        });
        SmtpSink { address, received }
    }

    fn mails(&self) -> Vec<String> {
        self.received.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

async fn session(stream: tokio::net::TcpStream, received: Arc<Mutex<Vec<String>>>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let _ = write.write_all(b"220 sink ESMTP\r\n").await;
    let mut data: Option<String> = None;
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(mail) = data.as_mut() {
            if line == "." {
                if let Ok(mut kept) = received.lock() {
                    kept.push(std::mem::take(mail));
                }
                data = None;
                let _ = write.write_all(b"250 queued\r\n").await;
            } else {
                mail.push_str(&line);
                mail.push('\n');
            }
            continue;
        }
        let command = line.to_ascii_uppercase();
        let answer: &[u8] = if command.starts_with("EHLO") || command.starts_with("HELO") {
            b"250 sink\r\n"
        } else if command.starts_with("RCPT TO:<REFUSED") {
            b"550 no such mailbox\r\n"
        } else if command.starts_with("DATA") {
            data = Some(String::new());
            b"354 go ahead\r\n"
        } else if command.starts_with("QUIT") {
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else {
            b"250 ok\r\n"
        };
        let _ = write.write_all(answer).await;
    }
}

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
