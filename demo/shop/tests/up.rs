//! `shop up` as a user runs it: one command starts the broker and the services, prints the
//! gateway's address once all are ready, stops them all on SIGTERM, and started again on
//! the same data directory finds orders and figures as they were.

mod harness;
mod support;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use harness::DEADLINE;
use serde_json::{Value, json};

/// The gateway's port of a block of six free ones: `up` puts the broker and the services on
/// the ports after it, which a single free port does not promise to be.
fn up_ports() -> u16 {
    support::free_port_block(6)
}

struct Up {
    child: Child,
    port: u16,
    secret: String,
}

impl Up {
    /// Starts `shop up` and waits for its `gateway:` line.
    fn start(data_dir: &std::path::Path, port: u16) -> Up {
        Up::start_with(data_dir, port, &[])
    }

    /// [`Up::start`] with more arguments for `shop up`.
    fn start_with(data_dir: &std::path::Path, port: u16, more: &[&str]) -> Up {
        let mut child = Command::new(env!("CARGO_BIN_EXE_shop"))
            .args(["up", "--data-dir"])
            .arg(data_dir)
            .args(["--port", &port.to_string()])
            .args(more)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start shop up");
        let stdout = child.stdout.take().expect("stdout");
        let mut first = String::new();
        BufReader::new(stdout)
            .read_line(&mut first)
            .expect("read shop up's output");
        assert_eq!(first.trim(), format!("gateway: http://127.0.0.1:{port}"));
        let secret = std::fs::read_to_string(data_dir.join("internal-secret"))
            .expect("the internal secret in the data directory");
        Up {
            child,
            port,
            secret,
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        port_offset: u16,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .request(
                method,
                format!("http://127.0.0.1:{}{path}", self.port + port_offset),
            )
            .header("x-shop-internal", &self.secret)
            .header("x-shop-user", "up@shop.example");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// SIGTERM, as Ctrl-C or a service manager would; every process must exit.
    fn stop(mut self) -> std::process::ExitStatus {
        terminate(&mut self.child)
    }
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().expect("wait for shop up")
}

/// A failed test still stops `shop up` and, through it, the broker and the services.
impl Drop for Up {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            terminate(&mut self.child);
        }
    }
}

const ORDERS: u16 = 4;
const ANALYTICS: u16 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_starts_everything_and_a_restart_keeps_the_data() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = up_ports();
    let up = Up::start(dir.path(), port);
    let (status, order) = up
        .call(
            reqwest::Method::POST,
            ORDERS,
            "/orders",
            Some(
                json!({"customer": "Up", "items": [{"sku": "U", "quantity": 1, "unit_price": 42}]}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{order}");
    let started = Instant::now();
    loop {
        let (_, figures) = up
            .call(reqwest::Method::GET, ANALYTICS, "/analytics", None)
            .await;
        if figures["total_orders"] == 1 {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "figures never followed: {figures}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let status = up.stop();
    assert!(status.success(), "shop up exited with {status}");
    // Every service stopped with it: its port is free again.
    assert!(std::net::TcpListener::bind(("127.0.0.1", port + ORDERS)).is_ok());

    let up = Up::start(dir.path(), port);
    let (_, orders) = up.call(reqwest::Method::GET, ORDERS, "/orders", None).await;
    assert_eq!(orders.as_array().map(Vec::len), Some(1), "{orders}");
    assert_eq!(orders[0]["id"], order["id"]);
    let (_, figures) = up
        .call(reqwest::Method::GET, ANALYTICS, "/analytics", None)
        .await;
    assert_eq!(figures["total_orders"], 1, "{figures}");
    assert_eq!(figures["total_cents"], 42, "{figures}");
    assert!(up.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_outlives_shop_up_killed_with_sigkill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = up_ports();
    let mut up = Up::start(dir.path(), port);
    let listening =
        |offset: u16| std::net::TcpListener::bind(("127.0.0.1", port + offset)).is_err();
    assert!(listening(1) && listening(ORDERS) && listening(ANALYTICS));
    up.child.kill().expect("SIGKILL shop up");
    let _ = up.child.wait();
    let started = Instant::now();
    while listening(1) || listening(ORDERS) || listening(ANALYTICS) {
        assert!(
            started.elapsed() < DEADLINE,
            "the broker or a service outlived shop up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Only the gateway opens beyond loopback: with `--public-address 0.0.0.0` it answers on
/// another address of the machine (127.0.0.2 stands in for one: a socket bound to
/// 127.0.0.1 does not answer there), while the services behind it still do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_gateway_listens_on_the_public_address() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = up_ports();
    let up = Up::start_with(dir.path(), port, &["--public-address", "0.0.0.0"]);
    let response = reqwest::Client::new()
        .get(format!("http://127.0.0.2:{port}/api/orders"))
        .send()
        .await;
    let status = response.map(|r| r.status().as_u16());
    // Reached, and asked for a session token like any public request.
    assert!(
        matches!(status, Ok(401)),
        "the gateway on 127.0.0.2: {status:?}"
    );
    for offset in [ORDERS, ANALYTICS] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.2", port + offset)).is_err(),
            "a service behind the gateway answers beyond 127.0.0.1"
        );
    }
    assert!(up.stop().success());
}
