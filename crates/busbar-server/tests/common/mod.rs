//! What the broker's integration tests share: plain HTTP probes of `/health` and the API.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use busbar_client::{
    ConnectOptions, Connection, ReceiverOptions, Sasl, Session, SettleMode, message_body, sas_token,
};
use busbar_server::config::{BrokerConfig, QueueDefinition, QueueProperties};
use busbar_server::{Listeners, RunError, run};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// One HTTP/1.1 GET; (status, body).
pub async fn get(address: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.split(' ').nth(1).unwrap().parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

pub async fn health_becomes(address: SocketAddr, want: u16) -> String {
    loop {
        let (status, body) = get(address, "/health").await;
        if status == want {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A connection holding a token (the development key's) for `entity`.
pub async fn connect_to(amqp: &str, entity: &str) -> Connection {
    let connection = Connection::connect(
        amqp,
        ConnectOptions {
            sasl: Sasl::Anonymous,
            ..ConnectOptions::default()
        },
    )
    .await
    .unwrap();
    put_development_token(&connection, amqp, entity).await;
    connection
}

/// Puts a token (the development key's) for `entity` on `connection`, with the audience
/// a client of the AMQP listener at `amqp` uses.
pub async fn put_development_token(connection: &Connection, amqp: &str, entity: &str) {
    let audience = format!("sb://{amqp}/{entity}");
    let expiry = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let token = sas_token(
        &audience,
        "RootManageSharedAccessKey",
        "SAS_KEY_VALUE",
        expiry,
    );
    connection.put_token(&audience, &token).await.unwrap();
}

/// A broker on ephemeral loopback ports with one queue, `q`, keeping its data in `data_dir`.
pub fn one_queue_config(data_dir: std::path::PathBuf) -> BrokerConfig {
    BrokerConfig {
        amqp_listen: "127.0.0.1:0".parse().unwrap(),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        data_dir,
        queues: vec![QueueDefinition {
            name: "q".to_owned(),
            properties: QueueProperties::default(),
        }],
        ..BrokerConfig::default()
    }
}

/// Receives `count` messages from `q` in receive-and-delete mode; their bodies as text.
pub async fn receive_texts(session: &Session, count: usize) -> Vec<String> {
    let mut receiver = session
        .receiver(
            "q",
            ReceiverOptions {
                settle_mode: SettleMode::ReceiveAndDelete,
                ..ReceiverOptions::default()
            },
        )
        .await
        .unwrap();
    let mut got = Vec::with_capacity(count);
    for _ in 0..count {
        let delivery = receiver.recv().await.unwrap();
        got.push(String::from_utf8(message_body(&delivery.payload).unwrap().to_vec()).unwrap());
    }
    got
}

/// Receives everything from `q` and checks it is exactly `want`, in order (every
/// acknowledged message once, nothing else), and that the queue is then empty.
pub async fn assert_queue_held_exactly(session: &Session, http: SocketAddr, want: &[String]) {
    let got = receive_texts(session, want.len()).await;
    assert_eq!(got, want);
    let (_, queue) = get(http, "/api/queues/q").await;
    assert!(queue.contains("\"active_message_count\":0"), "{queue}");
}

/// A broker started with `run` in this process.
pub struct Started {
    pub amqp: String,
    pub http: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), RunError>>,
}

impl Started {
    /// Starts the broker and waits until `/health` says it is ready.
    pub async fn new(config: BrokerConfig) -> Started {
        let listeners = Listeners::bind(&config).await.unwrap();
        let amqp = listeners.amqp.local_addr().unwrap().to_string();
        let http = listeners.http.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(config, listeners, async move {
            let _ = stopped.await;
        }));
        health_becomes(http, 200).await;
        Started {
            amqp,
            http,
            stop,
            task,
        }
    }

    /// Shuts it down; what `run` returned.
    pub async fn stop(self) -> Result<(), RunError> {
        let _ = self.stop.send(());
        self.task.await.unwrap()
    }
}
