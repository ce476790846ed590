//! A small SMTP server for the tests: it keeps what it receives, refuses recipients whose
//! address starts with `refused` (550, a permanent failure), and can be stopped and started
//! again on the same address (a mail server that is down for a while).

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;

/// An SMTP server that keeps what it receives; RCPT TO an address starting with
/// `refused` gets 550.
pub struct SmtpSink {
    pub address: String,
    received: Arc<Mutex<Vec<String>>>,
    /// Accepts connections and owns their sessions: aborting it closes them all.
    server: Option<tokio::task::JoinHandle<()>>,
}

impl SmtpSink {
    /// Listens on a free loopback port.
    pub async fn start() -> SmtpSink {
        let mut sink = SmtpSink {
            address: "127.0.0.1:0".into(),
            received: Arc::default(),
            server: None,
        };
        sink.restart().await;
        sink
    }

    /// Listens (again) on its address.
    pub async fn restart(&mut self) {
        assert!(self.server.is_none(), "the SMTP server is running");
        let listener = TcpListener::bind(&self.address)
            .await
            .unwrap_or_else(|e| panic!("SMTP server on {}: {e}", self.address));
        self.address = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        let kept = self.received.clone();
        self.server = Some(tokio::spawn(async move {
            let mut sessions = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                sessions.spawn(session(stream, kept.clone()));
            }
        }));
    }

    /// Closes the port and every open connection: the server is down.
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
    }

    pub fn mails(&self) -> Vec<String> {
        self.received.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
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
