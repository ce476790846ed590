//! Headless Chromium driven over the DevTools protocol (a WebSocket of JSON commands):
//! enough to load a page, run a line of JavaScript in it, wait for what it shows, and take
//! a screenshot. Debian's `chromium` package (installed by `.ci/setup`).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{DEADLINE, free_port};

pub struct Browser {
    chromium: Child,
    _profile: tempfile::TempDir,
    socket: WebSocketStream<TcpStream>,
    next_id: u64,
}

impl Browser {
    /// Starts Chromium headless with one blank page, and attaches to that page.
    pub async fn start() -> Browser {
        let profile = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let port = free_port();
        let chromium =
            Command::new(std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into()))
                .args([
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--hide-scrollbars",
                    "--window-size=1200,1000",
                    &format!("--remote-debugging-port={port}"),
                    &format!("--user-data-dir={}", profile.path().display()),
                    "about:blank",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start chromium (install it: .ci/setup): {e}"));
        let http = reqwest::Client::new();
        let started = Instant::now();
        let page_socket = loop {
            let targets = http
                .get(format!("http://127.0.0.1:{port}/json/list"))
                .send()
                .await;
            if let Ok(answer) = targets {
                let targets: Value = answer.json().await.unwrap_or_default();
                let page = targets.as_array().and_then(|targets| {
                    targets
                        .iter()
                        .find(|t| t["type"] == "page")
                        .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(str::to_owned))
                });
                if let Some(page) = page {
                    break page;
                }
            }
            assert!(
                started.elapsed() < DEADLINE,
                "chromium's DevTools did not come up"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (socket, _) = tokio_tungstenite::client_async(page_socket.as_str(), stream)
            .await
            .unwrap_or_else(|e| panic!("DevTools WebSocket: {e}"));
        Browser {
            chromium,
            _profile: profile,
            socket,
            next_id: 1,
        }
    }

    /// Sends one command and waits for its result (events in between are skipped).
    pub async fn command(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let request = json!({ "id": id, "method": method, "params": params });
        self.socket
            .send(Message::text(request.to_string()))
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        while let Some(message) = self.socket.next().await {
            let Ok(Message::Text(text)) = message else {
                continue;
            };
            let answer: Value = serde_json::from_str(&text).unwrap_or_default();
            if answer["id"] == id {
                assert!(answer["error"].is_null(), "{method}: {}", answer["error"]);
                return answer["result"].clone();
            }
        }
        panic!("chromium closed the DevTools connection during {method}");
    }

    pub async fn navigate(&mut self, url: &str) {
        self.command("Page.navigate", json!({ "url": url })).await;
        self.wait_for("document.readyState === 'complete'").await;
    }

    /// The value of a JavaScript expression in the page (promises awaited).
    pub async fn evaluate(&mut self, expression: &str) -> Value {
        let result = self
            .command(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        assert!(
            result["exceptionDetails"].is_null(),
            "{expression}: {}",
            result["exceptionDetails"]
        );
        result["result"]["value"].clone()
    }

    /// Waits until the expression is true in the page.
    pub async fn wait_for(&mut self, expression: &str) {
        let started = Instant::now();
        loop {
            let value = self
                .command(
                    "Runtime.evaluate",
                    json!({ "expression": format!("Boolean({expression})"), "returnByValue": true }),
                )
                .await;
            if value["result"]["value"] == true {
                return;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "the page never showed: {expression}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG of the page as it is now.
    pub async fn screenshot(&mut self, path: &Path) {
        let shot = self
            .command("Page.captureScreenshot", json!({ "format": "png" }))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("screenshot: {e}"));
        std::fs::write(path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.chromium.kill();
        let _ = self.chromium.wait();
    }
}
