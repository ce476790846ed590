//! The gateway-facing side of the test processes: the broker and chosen services, or all of
//! `shop up`, started with the harness's [`Process`] on free loopback ports, and the public
//! API called over real HTTP.

#![allow(dead_code)] // each test binary uses a part

pub mod browser;
pub mod smtp;

use std::net::TcpListener;

use std::time::Duration;

use busbar_client::{
    ServiceBusClient, ServiceBusClientOptions, ServiceBusReceivedMessage,
    ServiceBusReceiverOptions, SubQueue,
};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use shop::common::contracts::EMAILS_QUEUE;

use crate::harness::{Process, connection_string, fresh_postgres_database, wait_for};

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

/// Running processes and where they listen.
pub struct Stack {
    pub dir: tempfile::TempDir,
    pub connection_string: String,
    ports: Vec<(&'static str, u16)>,
    processes: Vec<Process>,
    pub http: reqwest::Client,
}

impl Stack {
    /// The broker, then `services` in order; `extra` adds arguments to a service.
    pub async fn start(services: &[&'static str], extra: &[(&str, &[&str])]) -> Stack {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
        let names = ["broker", "gateway", "auth", "email", "orders", "analytics"];
        // Below the ephemeral range, where an outgoing connection cannot take one meanwhile.
        let base = free_port_block(names.len() as u16);
        let ports: Vec<_> = names.iter().copied().zip(base..).collect();
        let broker_port = ports[0].1;
        let broker_args = vec![
            "broker".into(),
            "--data-dir".into(),
            dir.path().join("busbar").display().to_string(),
            "--port".into(),
            broker_port.to_string(),
        ];
        let broker = Process::start(
            "broker",
            broker_args,
            dir.path(),
            format!("http://127.0.0.1:{broker_port}/health"),
        )
        .await;
        let mut stack = Stack {
            connection_string: connection_string(broker_port),
            dir,
            ports,
            processes: vec![broker],
            http: reqwest::Client::new(),
        };
        for &service in services {
            let mut args: Vec<String> = vec![
                "service".into(),
                service.into(),
                "--data-dir".into(),
                stack.dir.path().join(service).display().to_string(),
                "--listen".into(),
                format!("127.0.0.1:{}", stack.port(service)),
                "--broker".into(),
                stack.connection_string.clone(),
            ];
            for (name, port) in &stack.ports[1..] {
                args.push("--peer".into());
                args.push(format!("{name}=http://127.0.0.1:{port}"));
            }
            if service != "gateway"
                && let Some(database) = fresh_postgres_database(service).await
            {
                args.push("--database-url".into());
                args.push(database);
            }
            for (_, more) in extra.iter().filter(|(name, _)| *name == service) {
                args.extend(more.iter().map(|arg| (*arg).to_owned()));
            }
            let ready = format!("{}/ready", stack.url(service));
            let process = Process::start(service, args, stack.dir.path(), ready).await;
            stack.processes.push(process);
        }
        stack
    }

    /// `shop up` itself: the broker and all five services under one supervisor, ready when
    /// the gateway is and has printed its address.
    pub async fn up() -> Stack {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
        // `up`'s layout: the gateway on --port, the broker and services on the next ports.
        let names = ["gateway", "broker", "auth", "email", "orders", "analytics"];
        let base = free_port_block(names.len() as u16);
        let ports = names
            .iter()
            .zip(base..)
            .map(|(name, port)| (*name, port))
            .collect();
        let args = vec![
            "up".into(),
            "--data-dir".into(),
            dir.path().join("shop").display().to_string(),
            "--port".into(),
            base.to_string(),
        ];
        let ready = format!("http://127.0.0.1:{base}/ready");
        let up = Process::start("up", args, dir.path(), ready).await;
        let stack = Stack {
            connection_string: connection_string(base + 1),
            dir,
            ports,
            processes: vec![up],
            http: reqwest::Client::new(),
        };
        let printed = format!("gateway: http://127.0.0.1:{base}");
        crate::harness::eventually("shop up printing the gateway's address", || async {
            stack.log("up").lines().any(|line| line == printed)
        })
        .await;
        stack
    }

    /// Stops `shop up` (SIGTERM: it stops its children) and starts it again on the same
    /// data directory and ports.
    pub async fn restart_up(&mut self) {
        let up = self
            .processes
            .first_mut()
            .unwrap_or_else(|| panic!("nothing was started"));
        up.stop();
        up.restart().await;
    }

    /// The process `name` (`broker` or a service), to stop and start again.
    pub fn process(&mut self, name: &str) -> &mut Process {
        self.processes
            .iter_mut()
            .find(|process| process.name() == name)
            .unwrap_or_else(|| panic!("{name} was not started"))
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

    /// What a process wrote.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
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
}

impl Stack {
    pub fn client(&self) -> ServiceBusClient {
        ServiceBusClient::from_connection_string(
            &self.connection_string,
            ServiceBusClientOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The mails of the session's user, newest first.
    pub async fn mailbox(&self, token: &str) -> Vec<Value> {
        let (status, mails) = self
            .call(Method::GET, "/api/mailbox", Some(token), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{mails}");
        mails.as_array().cloned().unwrap_or_default()
    }

    /// Waits for a mail whose subject contains `subject`.
    pub async fn mail_with_subject(&self, token: &str, subject: &str) -> Value {
        wait_for(&format!("a mail '{subject}'"), || async {
            self.mailbox(token).await.into_iter().find(|mail| {
                mail["subject"]
                    .as_str()
                    .is_some_and(|s| s.contains(subject))
            })
        })
        .await
    }

    /// [`Stack::call`] that must answer `expected`; the body.
    pub async fn expect(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        expected: StatusCode,
    ) -> Value {
        let (status, answer) = self.call(method.clone(), path, token, body).await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
        answer
    }

    /// `GET /api/dead-letters`, as a list.
    pub async fn dead_letters(&self, token: &str) -> Vec<Value> {
        let listed = self
            .expect(
                Method::GET,
                "/api/dead-letters",
                Some(token),
                None,
                StatusCode::OK,
            )
            .await;
        listed.as_array().cloned().unwrap_or_default()
    }

    /// Waits for the password-reset mail; the token it carries, and the mail.
    pub async fn reset_token_by_mail(&self, token: &str) -> (String, Value) {
        let mail = self.mail_with_subject(token, "Reset your password").await;
        let reset_token = mail["body"]
            .as_str()
            .and_then(|body| body.split("Reset token: ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no reset token in {mail}"))
            .to_owned();
        (reset_token, mail)
    }

    /// Waits for the next message in the `emails` queue's dead-letter subqueue.
    pub async fn dead_lettered_email(&self) -> ServiceBusReceivedMessage {
        let client = self.client();
        let receiver = client.create_receiver(
            EMAILS_QUEUE,
            ServiceBusReceiverOptions {
                sub_queue: SubQueue::DeadLetter,
                ..ServiceBusReceiverOptions::default()
            },
        );
        wait_for("a dead-lettered mail", || async {
            let received = receiver
                .receive_messages(1, Some(Duration::from_secs(1)))
                .await;
            received.ok().and_then(|mut messages| messages.pop())
        })
        .await
    }
}

impl Drop for Stack {
    /// Newest first, each with SIGTERM, so `up` stops its children.
    fn drop(&mut self) {
        while let Some(mut process) = self.processes.pop() {
            process.stop();
        }
    }
}
