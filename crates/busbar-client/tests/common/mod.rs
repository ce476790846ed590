//! A Busbar broker started in the test process, with the entities the SDK tests use, and
//! clients connected to it.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use busbar_client::{ServiceBusClient, ServiceBusClientOptions};
use busbar_server::config::{
    BrokerConfig, QueueDefinition, QueueProperties, SubscriptionDefinition, SubscriptionProperties,
    TopicConfig, TopicDefinition,
};
use busbar_server::{Listeners, run};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// Queues: `q` (defaults), `short-lock` (2 s locks), `dlq-fast` (max delivery count 2),
/// `sessions` (sessions required); topic `t` with subscriptions `s1` and `s2`, and
/// `st` with session subscription `ss`.
pub fn config(data_dir: std::path::PathBuf) -> BrokerConfig {
    let queue = |name: &str, properties: QueueProperties| QueueDefinition {
        name: name.to_owned(),
        properties,
    };
    let subscription = |name: &str, requires_session: bool| SubscriptionDefinition {
        name: name.to_owned(),
        properties: SubscriptionProperties {
            requires_session,
            ..SubscriptionProperties::default()
        },
        rules: Vec::new(),
    };
    BrokerConfig {
        amqp_listen: "127.0.0.1:0".parse().unwrap(),
        amqps_listen: "127.0.0.1:0".parse().unwrap(),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        data_dir,
        max_message_size: 64 * 1024,
        queues: vec![
            queue("q", QueueProperties::default()),
            queue(
                "short-lock",
                QueueProperties {
                    lock_duration_ms: 2_000,
                    ..QueueProperties::default()
                },
            ),
            queue(
                "dlq-fast",
                QueueProperties {
                    max_delivery_count: 2,
                    ..QueueProperties::default()
                },
            ),
            queue(
                "sessions",
                QueueProperties {
                    requires_session: true,
                    ..QueueProperties::default()
                },
            ),
        ],
        topics: vec![
            TopicDefinition {
                name: "t".to_owned(),
                properties: TopicConfig::default(),
                subscriptions: vec![subscription("s1", false), subscription("s2", false)],
            },
            TopicDefinition {
                name: "st".to_owned(),
                properties: TopicConfig::default(),
                subscriptions: vec![subscription("ss", true)],
            },
        ],
        ..BrokerConfig::default()
    }
}

/// A broker running in this process.
pub struct Broker {
    pub amqp: String,
    pub amqps: String,
    pub http: SocketAddr,
    pub data_dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Broker {
    pub async fn start() -> Broker {
        let data_dir = tempfile::tempdir().unwrap();
        Self::start_with(config(data_dir.path().to_owned()), data_dir).await
    }

    pub async fn start_with(config: BrokerConfig, data_dir: tempfile::TempDir) -> Broker {
        let listeners = Listeners::bind(&config).await.unwrap();
        let amqp = listeners.amqp.local_addr().unwrap().to_string();
        let amqps = listeners.amqps.local_addr().unwrap().to_string();
        let http = listeners.http.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            run(config, listeners, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        let mut broker = Broker {
            amqp,
            amqps,
            http,
            data_dir,
            stop: Some(stop),
            task: Some(task),
        };
        broker.wait_healthy().await;
        broker
    }

    async fn wait_healthy(&mut self) {
        loop {
            if get(self.http, "/health").await.0 == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the broker and starts it again on the same ports and data.
    pub async fn restart(&mut self) {
        self.shutdown().await;
        let mut config = config(self.data_dir.path().to_owned());
        config.amqp_listen = self.amqp.parse().unwrap();
        config.amqps_listen = self.amqps.parse().unwrap();
        config.http_listen = self.http;
        let listeners = Listeners::bind(&config).await.unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        self.stop = Some(stop);
        self.task = Some(tokio::spawn(async move {
            run(config, listeners, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        }));
        self.wait_healthy().await;
    }

    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    /// The development connection string for the plain AMQP listener.
    pub fn connection_string(&self) -> String {
        format!(
            "Endpoint=sb://{};SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true",
            self.amqp
        )
    }

    pub fn client(&self) -> ServiceBusClient {
        self.client_with(ServiceBusClientOptions::default())
    }

    pub fn client_with(&self, options: ServiceBusClientOptions) -> ServiceBusClient {
        ServiceBusClient::from_connection_string(&self.connection_string(), options).unwrap()
    }

    /// The broker's JSON description of a queue (`/api/queues/<name>`).
    pub async fn queue_json(&self, name: &str) -> serde_json::Value {
        let (status, body) = get(self.http, &format!("/api/queues/{name}")).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }
}

/// One HTTP/1.1 GET; (status, body).
pub async fn get(address: SocketAddr, path: &str) -> (u16, String) {
    let Ok(mut stream) = TcpStream::connect(address).await else {
        return (0, String::new());
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
