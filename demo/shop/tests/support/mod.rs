//! Starts shop processes for a test: the broker and chosen services, each its own OS process
//! of the built `shop` binary on free loopback ports with its data in a temporary directory,
//! and stops them (SIGTERM, then SIGKILL) when dropped. Requests go over real HTTP.

#![allow(dead_code)] // each test binary uses a part

pub mod browser;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// How long anything the tests wait for may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);
pub const SECRET: &str = "test-internal-secret";

/// A free loopback port (bound and released: fine for a test).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap_or_else(|error| panic!("no free port: {error}"))
}

/// The first of `count` consecutive free loopback ports, below the ephemeral range (where
/// the system hands out ports to outgoing connections, so a block there is soon taken).
pub fn free_port_block(count: u16) -> u16 {
    for _ in 0..1000 {
        let base = 20_000 + (uuid::Uuid::new_v4().as_u128() % 12_000) as u16;
        let held: Vec<_> = (base..base + count)
            .map_while(|port| TcpListener::bind(("127.0.0.1", port)).ok())
            .collect();
        if held.len() == usize::from(count) {
            return base;
        }
    }
    panic!("no block of {count} free ports");
}

fn connection_string(port: u16) -> String {
    format!(
        "Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=RootManageSharedAccessKey;\
         SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true"
    )
}

pub struct Running {
    name: String,
    child: Child,
}

/// The broker and some services.
pub struct Shop {
    pub data: tempfile::TempDir,
    pub connection_string: String,
    ports: Vec<(&'static str, u16)>,
    running: Vec<Running>,
    pub http: reqwest::Client,
}

impl Shop {
    /// Starts the broker, then `services` in order, with `env` for every service.
    pub async fn start(services: &[&'static str], env: &[(&str, &str)]) -> Shop {
        let data = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
        let names = ["broker", "gateway", "auth", "email", "orders", "analytics"];
        let ports: Vec<_> = names.iter().map(|name| (*name, free_port())).collect();
        let broker_port = ports[0].1;
        let mut shop = Shop {
            connection_string: connection_string(broker_port),
            data,
            ports,
            running: Vec::new(),
            http: reqwest::Client::new(),
        };
        let mut broker = Command::new(env!("CARGO_BIN_EXE_shop"));
        broker
            .arg("broker")
            .arg("--data-dir")
            .arg(shop.data.path().join("busbar"))
            .arg("--port")
            .arg(broker_port.to_string());
        shop.spawn(
            "broker",
            broker,
            &format!("http://127.0.0.1:{broker_port}/health"),
        )
        .await;
        for &service in services {
            shop.start_service(service, env).await;
        }
        shop
    }

    /// `shop up` itself (the broker and all five services under one supervisor), with
    /// `env`; ready once it prints the gateway's address.
    pub async fn up(env: &[(&str, &str)]) -> Shop {
        let data = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
        let names = ["gateway", "broker", "auth", "email", "orders", "analytics"];
        let base = free_port_block(names.len() as u16);
        // `up`'s layout: the gateway on --port, the broker and services on the next ports.
        let ports = names
            .iter()
            .zip(base..)
            .map(|(name, port)| (*name, port))
            .collect();
        let log = std::fs::File::create(data.path().join("up.log"))
            .unwrap_or_else(|e| panic!("log file: {e}"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_shop"))
            .arg("up")
            .arg("--data-dir")
            .arg(data.path().join("shop"))
            .arg("--port")
            .arg(base.to_string())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting shop up: {e}"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let (lines, printed) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = lines.send(line);
            }
        });
        let shop = Shop {
            connection_string: connection_string(base + 1),
            data,
            ports,
            running: vec![Running {
                name: "up".into(),
                child,
            }],
            http: reqwest::Client::new(),
        };
        let expected = format!("gateway: http://127.0.0.1:{base}");
        match printed.recv_timeout(DEADLINE) {
            Ok(line) if line == expected => shop,
            other => panic!(
                "shop up printed {other:?}, not {expected:?}:\n{}",
                shop.log("up")
            ),
        }
    }

    pub fn port(&self, name: &str) -> u16 {
        self.ports
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, port)| *port)
            .unwrap_or_else(|| panic!("no port for {name}"))
    }

    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}", self.port(name))
    }

    pub fn gateway(&self) -> String {
        self.url("gateway")
    }

    async fn start_service(&mut self, service: &'static str, env: &[(&str, &str)]) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_shop"));
        command
            .arg("service")
            .arg(service)
            .arg("--data-dir")
            .arg(self.data.path().join(service))
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port(service)))
            .arg("--broker")
            .arg(&self.connection_string)
            .env("SHOP_INTERNAL_SECRET", SECRET);
        for (name, port) in &self.ports[1..] {
            command
                .arg("--peer")
                .arg(format!("{name}=http://127.0.0.1:{port}"));
        }
        command.envs(env.iter().copied());
        let ready = format!("{}/ready", self.url(service));
        self.spawn(service, command, &ready).await;
    }

    async fn spawn(&mut self, name: &str, mut command: Command, ready: &str) {
        let log = std::fs::File::create(self.data.path().join(format!("{name}.log")))
            .unwrap_or_else(|e| panic!("log file: {e}"));
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        self.running.push(Running {
            name: name.to_owned(),
            child,
        });
        let started = Instant::now();
        loop {
            if let Ok(answer) = self.http.get(ready).send().await {
                if answer.status().is_success() {
                    return;
                }
            }
            let process = self.running.last_mut().map(|r| &mut r.child);
            if let Some(Ok(Some(status))) = process.map(|child| child.try_wait()) {
                panic!("{name} exited during start ({status}):\n{}", self.log(name));
            }
            assert!(
                started.elapsed() < DEADLINE,
                "{name} not ready:\n{}",
                self.log(name)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What a process wrote to stderr.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.data.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// A request to the gateway; the answer's status and JSON body (`Null` if none).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.gateway()));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = answer.status();
        let text = answer.text().await.unwrap_or_default();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{path} answered non-JSON {text:?}: {e}"))
        };
        (status, json)
    }

    /// Polls `probe` until it gives `Some`, failing the test after [`DEADLINE`].
    pub async fn eventually<T, F, Fut>(&self, what: &str, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let started = Instant::now();
        loop {
            if let Some(value) = probe().await {
                return value;
            }
            assert!(started.elapsed() < DEADLINE, "gave up waiting for {what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Shop {
    fn drop(&mut self) {
        while let Some(mut process) = self.running.pop() {
            stop(&mut process.child);
        }
    }
}

fn stop(child: &mut Child) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}
