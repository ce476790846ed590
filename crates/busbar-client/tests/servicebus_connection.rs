//! The client's connection against a Busbar broker started in the test: one connection for
//! all of a client's links, reconnection after the broker restarts, tokens renewed before
//! they expire, TLS with a custom CA, AMQP over WebSockets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use busbar_client::{
    ServiceBusClient, ServiceBusClientOptions, ServiceBusMessage, ServiceBusReceiverOptions,
    ServiceBusTransport,
};
use common::Broker;

const WAIT: Option<Duration> = Some(Duration::from_secs(10));

#[tokio::test]
async fn every_sender_and_receiver_of_a_client_shares_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path().to_owned());
    config.limits.max_connections = 1;
    let broker = Broker::start_with(config, dir).await;
    let client = broker.client();
    let senders = [client.create_sender("q"), client.create_sender("t")];
    let receiver = client.create_receiver("q", ServiceBusReceiverOptions::default());
    for sender in &senders {
        sender
            .send_message(ServiceBusMessage::new("x"))
            .await
            .unwrap();
    }
    let m = receiver.receive_messages(1, WAIT).await.unwrap().remove(0);
    receiver.renew_message_lock(&m).await.unwrap();
    receiver.complete_message(&m).await.unwrap();
    receiver.peek_messages(1, None).await.unwrap();
    // The broker admits one connection: a second client is turned away.
    let second = broker.client_with(ServiceBusClientOptions {
        retry: busbar_client::RetryOptions {
            max_retries: 0,
            ..Default::default()
        },
        ..ServiceBusClientOptions::default()
    });
    assert!(
        second
            .create_sender("q")
            .send_message(ServiceBusMessage::new("y"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_long_lived_client_reuses_channels_within_the_brokers_channel_max() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path().to_owned());
    config.limits.max_sessions_per_connection = 4;
    let broker = Broker::start_with(config, dir).await;
    let client = broker.client();
    // Many more receivers over the connection's life than it may have sessions at once.
    for _ in 0..20 {
        let receiver = client.create_receiver("q", ServiceBusReceiverOptions::default());
        receiver.peek_messages(1, None).await.unwrap();
        receiver.close().await.unwrap();
    }
}

#[tokio::test]
async fn senders_and_receivers_reconnect_after_the_broker_restarts() {
    let mut broker = Broker::start().await;
    let client = broker.client();
    let sender = client.create_sender("q");
    let receiver = client.create_receiver("q", ServiceBusReceiverOptions::default());
    sender
        .send_message(ServiceBusMessage::new("before"))
        .await
        .unwrap();
    broker.restart().await;
    sender
        .send_message(ServiceBusMessage::new("after"))
        .await
        .unwrap();
    let got = receiver.receive_messages(10, WAIT).await.unwrap();
    let mut bodies: Vec<_> = got.iter().map(|m| m.body.clone()).collect();
    for m in &got {
        receiver.complete_message(m).await.unwrap();
    }
    if bodies.len() < 2 {
        let more = receiver.receive_messages(10, WAIT).await.unwrap();
        for m in &more {
            receiver.complete_message(m).await.unwrap();
        }
        bodies.extend(more.iter().map(|m| m.body.clone()));
    }
    assert_eq!(bodies, ["before", "after"]);
}

#[tokio::test]
async fn tokens_are_renewed_before_they_expire() {
    let broker = Broker::start().await;
    // The broker tolerates 10 s of skew: links of a 1 s token are dropped after ~11 s
    // unless a new token arrives.
    let client = broker.client_with(ServiceBusClientOptions {
        token_lifetime: Duration::from_secs(1),
        ..ServiceBusClientOptions::default()
    });
    let sender = client.create_sender("q");
    let receiver = client.create_receiver("q", ServiceBusReceiverOptions::default());
    sender
        .send_message(ServiceBusMessage::new("early"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(13)).await;
    sender
        .send_message(ServiceBusMessage::new("late"))
        .await
        .unwrap();
    let got = receiver.receive_messages(10, WAIT).await.unwrap();
    for m in &got {
        receiver.complete_message(m).await.unwrap();
    }
    let bodies: Vec<_> = got.iter().map(|m| m.body.clone()).collect();
    assert_eq!(bodies, ["early", "late"]);
}

#[tokio::test]
async fn tls_with_a_custom_ca() {
    let broker = Broker::start().await;
    let port = broker.amqps.rsplit_once(':').unwrap().1;
    let cs = format!(
        "Endpoint=sb://localhost:{port}/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE"
    );
    let client = ServiceBusClient::from_connection_string(
        &cs,
        ServiceBusClientOptions {
            tls_ca: Some(broker.data_dir.path().join("tls/dev-ca.pem")),
            ..ServiceBusClientOptions::default()
        },
    )
    .unwrap();
    client
        .create_sender("q")
        .send_message(ServiceBusMessage::new("secret"))
        .await
        .unwrap();
    let got = client
        .create_receiver("q", ServiceBusReceiverOptions::default())
        .receive_messages(1, WAIT)
        .await
        .unwrap();
    assert_eq!(got[0].body, "secret");
    // Without the CA the public roots do not trust the broker.
    let untrusting = ServiceBusClient::from_connection_string(
        &cs,
        ServiceBusClientOptions {
            retry: busbar_client::RetryOptions {
                max_retries: 0,
                ..Default::default()
            },
            ..ServiceBusClientOptions::default()
        },
    )
    .unwrap();
    let error = untrusting
        .create_sender("q")
        .send_message(ServiceBusMessage::new("x"))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("TLS"), "{error}");
}

#[tokio::test]
async fn amqp_over_websockets() {
    let broker = Broker::start().await;
    let client = broker.client_with(ServiceBusClientOptions {
        transport: ServiceBusTransport::AmqpOverWebSocket,
        custom_endpoint_address: Some(broker.http.to_string()),
        ..ServiceBusClientOptions::default()
    });
    client
        .create_sender("q")
        .send_message(ServiceBusMessage::new("ws"))
        .await
        .unwrap();
    let receiver = client.create_receiver("q", ServiceBusReceiverOptions::default());
    let m = receiver.receive_messages(1, WAIT).await.unwrap().remove(0);
    assert_eq!(m.body, "ws");
    receiver.complete_message(&m).await.unwrap();
}
