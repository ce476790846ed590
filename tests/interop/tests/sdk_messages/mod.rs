//! Sending and receiving through the client's AMQP layer, for the SDK suites that check
//! what the administration client and the rule manager report and route.

#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use busbar_amqp::Descriptor;
use busbar_amqp::Value;
use busbar_amqp::codec::{encode_descriptor, encode_value};
use busbar_amqp::message::{Properties, scan_sections, section};
use busbar_client::{ConnectOptions, Connection, ReceiverOptions, SettleMode, sas_token};
use busbar_interop::{Broker, DEFAULT_KEY, DEFAULT_KEY_NAME};
use bytes::{Bytes, BytesMut};

/// A message with a subject, a correlation id and application properties.
#[derive(Debug, Clone, Default)]
pub struct Outgoing {
    pub body: &'static str,
    pub subject: Option<&'static str>,
    pub correlation_id: Option<&'static str>,
    pub properties: Vec<(&'static str, Value)>,
}

impl Outgoing {
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        Properties {
            message_id: Some(Value::String(uuid_like())),
            subject: self.subject.map(str::to_owned),
            correlation_id: self.correlation_id.map(|c| Value::String(c.to_owned())),
            ..Properties::default()
        }
        .encode(&mut out);
        if !self.properties.is_empty() {
            encode_descriptor(&Descriptor::Code(section::APPLICATION_PROPERTIES), &mut out);
            encode_value(
                &Value::Map(
                    self.properties
                        .iter()
                        .map(|(k, v)| (Value::String((*k).to_owned()), v.clone()))
                        .collect(),
                ),
                &mut out,
            );
        }
        encode_descriptor(&Descriptor::Code(section::DATA), &mut out);
        encode_value(&Value::Binary(Bytes::from(self.body)), &mut out);
        out.freeze()
    }
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    )
}

/// A connection to the broker's AMQP port with a namespace-wide token.
pub async fn connect(broker: &Broker) -> Connection {
    let addr = broker.amqp_addr().to_string();
    let connection = Connection::connect(&addr, ConnectOptions::default())
        .await
        .expect("connect");
    let audience = format!("sb://{addr}/");
    let expiry = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |now| now.as_secs())
        + 3600;
    connection
        .put_token(
            &audience,
            &sas_token(&audience, DEFAULT_KEY_NAME, DEFAULT_KEY, expiry),
        )
        .await
        .expect("put-token");
    connection
}

/// Sends each message to `address` and waits for the broker to accept it.
pub async fn send(broker: &Broker, address: &str, messages: &[Outgoing]) {
    let connection = connect(broker).await;
    let sender = connection
        .session()
        .await
        .expect("session")
        .sender(address)
        .await
        .expect("sender");
    for message in messages {
        let outcome = sender.send(message.encode()).await.expect("send");
        assert!(
            outcome.is_accepted(),
            "{address} refused a message: {outcome:?}"
        );
    }
    connection.close().await.expect("close");
}

/// A received message's body and subject.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Received {
    pub body: String,
    pub subject: Option<String>,
}

/// The bodies of the next `count` messages of `address` (sorted), taken with
/// receive-and-delete. Callers check that nothing else is left through the entity's counts.
pub async fn receive(broker: &Broker, address: &str, count: usize) -> Vec<String> {
    receive_messages(broker, address, count)
        .await
        .into_iter()
        .map(|m| m.body)
        .collect()
}

/// [`receive`], with each message's subject.
pub async fn receive_messages(broker: &Broker, address: &str, count: usize) -> Vec<Received> {
    const PATIENCE: Duration = Duration::from_secs(30);
    let connection = connect(broker).await;
    let mut receiver = connection
        .session()
        .await
        .expect("session")
        .receiver(
            address,
            ReceiverOptions {
                settle_mode: SettleMode::ReceiveAndDelete,
                credit: 100,
            },
        )
        .await
        .expect("receiver");
    let mut received = Vec::new();
    while received.len() < count {
        let delivery = tokio::time::timeout(PATIENCE, receiver.recv())
            .await
            .unwrap_or_else(|_| panic!("{address}: only {received:?} of {count} arrived"))
            .expect("receive");
        let body = delivery.body().expect("body");
        let subject = scan_sections(&delivery.payload)
            .expect("sections")
            .properties()
            .expect("properties")
            .and_then(|p| p.subject);
        received.push(Received {
            body: String::from_utf8_lossy(&body).into_owned(),
            subject,
        });
    }
    connection.close().await.expect("close");
    received.sort();
    received
}

/// A subject-only message.
pub fn labelled(body: &'static str, subject: &'static str) -> Outgoing {
    Outgoing {
        body,
        subject: Some(subject),
        ..Outgoing::default()
    }
}
