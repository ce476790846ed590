//! Starts the shop's real processes for the tests: the broker (`shop broker`) and services
//! (`shop service <name>`), each an OS process with its log in the test's directory, that a
//! test can stop, kill with SIGKILL and start again on the same data and port.

#![allow(dead_code)] // each test file uses its own part

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a test waits for what must eventually happen.
pub const DEADLINE: Duration = Duration::from_secs(90);
pub const SECRET: &str = "test-internal-secret";
/// A PostgreSQL URL (a user that may create databases): when set, each service of each test
/// gets a fresh database there instead of its SQLite file.
pub const POSTGRES_ENV: &str = "SHOP_TEST_POSTGRES_URL";

/// A fresh database for `service` on the server of `SHOP_TEST_POSTGRES_URL`, if set.
pub async fn fresh_postgres_database(service: &str) -> Option<String> {
    let admin_url = std::env::var(POSTGRES_ENV).ok()?;
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("{POSTGRES_ENV}={admin_url}: {e}"));
    let name = format!("shop_test_{service}_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap_or_else(|e| panic!("creating {name}: {e}"));
    admin.close().await;
    let (server, _) = admin_url
        .rsplit_once('/')
        .expect("a URL ending in /database");
    Some(format!("{server}/{name}"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}

pub fn connection_string(port: u16) -> String {
    format!(
        "Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=RootManageSharedAccessKey;\
         SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true"
    )
}

/// One `shop` process: how to start it again, and the running child.
pub struct Process {
    name: String,
    args: Vec<String>,
    log: PathBuf,
    ready_url: String,
    child: Option<Child>,
}

impl Process {
    pub async fn start(name: &str, args: Vec<String>, log_dir: &Path, ready_url: String) -> Self {
        let mut process = Process {
            name: name.to_owned(),
            args,
            log: log_dir.join(format!("{name}.log")),
            ready_url,
            child: None,
        };
        process.restart().await;
        process
    }

    /// Starts the process (again) with the same arguments and waits until it is ready.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "{} is still running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_shop"))
            .args(&self.args)
            .env("SHOP_INTERNAL_SECRET", SECRET)
            .env_remove("SHOP_DATABASE_URL")
            .env("SHOP_LOG", "info,shop=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start shop");
        self.child = Some(child);
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "{} exited during start ({status}):\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            if let Ok(response) = http.get(&self.ready_url).send().await
                && response.status().is_success()
            {
                return;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "{} not ready:\n{}",
                self.name,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait: a clean stop.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A broker with the shop's entities, and the services a test asked for.
pub struct Shop {
    pub dir: tempfile::TempDir,
    pub broker_port: u16,
    pub broker: Process,
    pub orders: Option<Process>,
    pub analytics: Option<Process>,
    pub orders_url: String,
    pub analytics_url: String,
    pub http: reqwest::Client,
}

impl Shop {
    /// Starts the broker only.
    pub async fn broker_only() -> Shop {
        let dir = tempfile::tempdir().expect("temp dir");
        let broker_port = free_port();
        let broker = Process::start(
            "broker",
            vec![
                "broker".into(),
                "--data-dir".into(),
                dir.path().join("busbar").display().to_string(),
                "--port".into(),
                broker_port.to_string(),
            ],
            dir.path(),
            format!("http://127.0.0.1:{broker_port}/health"),
        )
        .await;
        Shop {
            dir,
            broker_port,
            broker,
            orders: None,
            analytics: None,
            orders_url: format!("http://127.0.0.1:{}", free_port()),
            analytics_url: format!("http://127.0.0.1:{}", free_port()),
            http: reqwest::Client::new(),
        }
    }

    /// The broker, orders and analytics.
    pub async fn start() -> Shop {
        let mut shop = Shop::broker_only().await;
        shop.start_orders().await;
        shop.start_analytics(&[]).await;
        shop
    }

    async fn service_args(&self, name: &str, url: &str) -> Vec<String> {
        let mut args = vec![
            "service".into(),
            name.into(),
            "--data-dir".into(),
            self.dir.path().join(name).display().to_string(),
            "--listen".into(),
            url.trim_start_matches("http://").into(),
            "--broker".into(),
            connection_string(self.broker_port),
        ];
        if let Some(database) = fresh_postgres_database(name).await {
            args.extend(["--database-url".into(), database]);
        }
        args
    }

    pub async fn start_orders(&mut self) {
        self.start_orders_with(&[]).await;
    }

    pub async fn start_orders_with(&mut self, extra: &[&str]) {
        let mut args = self.service_args("orders", &self.orders_url).await;
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        let ready = format!("{}/ready", self.orders_url);
        self.orders = Some(Process::start("orders", args, self.dir.path(), ready).await);
    }

    pub async fn start_analytics(&mut self, extra: &[&str]) {
        let mut args = self.service_args("analytics", &self.analytics_url).await;
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        let ready = format!("{}/ready", self.analytics_url);
        self.analytics = Some(Process::start("analytics", args, self.dir.path(), ready).await);
    }

    pub fn client(&self) -> busbar_client::ServiceBusClient {
        busbar_client::ServiceBusClient::from_connection_string(
            &connection_string(self.broker_port),
            busbar_client::ServiceBusClientOptions::default(),
        )
        .expect("client")
    }

    /// A request to a service, as the gateway makes it for `user`.
    pub async fn call(
        &self,
        method: reqwest::Method,
        url: String,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, &url)
            .header("x-shop-internal", SECRET)
            .header("x-shop-user", "buyer@shop.example");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        if status >= 500 {
            for process in [&self.orders, &self.analytics].into_iter().flatten() {
                eprintln!("--- {}:\n{}", process.name, process.log_tail());
            }
        }
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn create_order(&self, customer: &str, items: Value) -> Value {
        let (status, order) = self
            .call(
                reqwest::Method::POST,
                format!("{}/orders", self.orders_url),
                Some(serde_json::json!({ "customer": customer, "items": items })),
            )
            .await;
        assert_eq!(status, 201, "{order}");
        order
    }

    pub async fn update_order(&self, id: &str, change: Value) -> Value {
        let (status, order) = self
            .call(
                reqwest::Method::PUT,
                format!("{}/orders/{id}", self.orders_url),
                Some(change),
            )
            .await;
        assert_eq!(status, 200, "{order}");
        order
    }

    pub async fn delete_order(&self, id: &str) {
        let (status, body) = self
            .call(
                reqwest::Method::DELETE,
                format!("{}/orders/{id}", self.orders_url),
                None,
            )
            .await;
        assert_eq!(status, 204, "{body}");
    }

    /// `GET url` as the gateway makes it, which must answer 200; the JSON.
    pub async fn get_ok(&self, url: String) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, url, None).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn figures(&self) -> Value {
        self.get_ok(format!("{}/analytics", self.analytics_url))
            .await
    }

    /// Waits until the figures show `changes` distinct changes applied; returns them.
    pub async fn figures_after(&self, changes: i64) -> Value {
        let started = Instant::now();
        loop {
            let figures = self.figures().await;
            if figures["changes_applied"] == changes {
                return figures;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "never {changes} changes applied: {figures}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The orders service's `GET /outbox`.
    pub async fn outbox(&self) -> Value {
        self.get_ok(format!("{}/outbox", self.orders_url)).await
    }

    /// `POST /dead-letters/{entity}/{sequence}/resubmit`: status and body.
    pub async fn resubmit(&self, entity: &str, sequence: i64) -> (u16, Value) {
        self.call(
            reqwest::Method::POST,
            format!(
                "{}/dead-letters/{entity}/{sequence}/resubmit",
                self.analytics_url
            ),
            None,
        )
        .await
    }

    pub async fn dead_letters(&self) -> Vec<Value> {
        let list = self
            .get_ok(format!("{}/dead-letters", self.analytics_url))
            .await;
        list.as_array().cloned().unwrap_or_default()
    }
}

/// Polls `condition` until it holds; panics with `what` after [`DEADLINE`].
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(what, || {
        let holds = condition();
        async move { holds.await.then_some(()) }
    })
    .await
}

/// Polls `probe` until it gives something; panics with `what` after [`DEADLINE`].
pub async fn wait_for<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(started.elapsed() < DEADLINE, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
