//! AMQP over WebSockets end to end: the broker from `run`, the Rust client's WebSocket
//! transport to `/$servicebus/websocket`, over `ws://` on the HTTP listener and over
//! `wss://` on every listener (trusting the development CA).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use busbar_client::{
    ConnectOptions, Error, SERVICE_BUS_WEBSOCKET_PATH, Transport, encode_message,
    tls_config_trusting,
};
use common::{Started, assert_queue_held_exactly, connect_with, one_queue_config, receive_texts};

mod common;

fn websocket_options() -> ConnectOptions {
    ConnectOptions {
        transport: Transport::WebSocket {
            path: SERVICE_BUS_WEBSOCKET_PATH.to_owned(),
        },
        ..ConnectOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_client_sends_and_receives_over_a_websocket_until_the_broker_stops() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Started::new(one_queue_config(dir.path().join("data"))).await;
    let connection = connect_with(&broker.http.to_string(), "q", websocket_options()).await;
    let session = connection.session().await.unwrap();
    let sender = session.sender("q").await.unwrap();
    // Many small messages pipelined, and one larger than a WebSocket message of either side.
    let mut sent: Vec<String> = (0..300).map(|i| format!("message {i}")).collect();
    sent.push("x".repeat(200_000));
    let outcomes: Vec<_> = sent
        .iter()
        .map(|body| sender.send(encode_message(body.as_bytes())))
        .collect();
    for outcome in outcomes {
        assert!(outcome.await.unwrap().is_accepted());
    }
    assert_queue_held_exactly(&session, broker.http, &sent).await;

    // Stopping the broker closes the connection with a proper AMQP close, over the WebSocket.
    let mut receiver = session
        .receiver("q", busbar_client::ReceiverOptions::default())
        .await
        .unwrap();
    broker.stop().await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(15), receiver.recv())
        .await
        .expect("the receiver learns the broker stopped");
    match ended {
        Err(Error::ConnectionClosed(Some(e))) => assert_eq!(e.condition, "amqp:connection:forced"),
        other => panic!("expected the broker's close, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn the_rust_client_sends_and_receives_over_wss_on_every_listener() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let broker = Started::new(one_queue_config(data.clone())).await;
    let secure = ConnectOptions {
        tls: Some(tls_config_trusting(&data.join("tls/dev-ca.pem")).unwrap()),
        hostname: Some("localhost".to_owned()),
        ..websocket_options()
    };
    let http = broker.http.to_string();
    for (listener, address) in [
        ("amqp", &broker.amqp),
        ("amqps", &broker.amqps),
        ("http", &http),
    ] {
        let connection = connect_with(address, "q", secure.clone()).await;
        let session = connection.session().await.unwrap();
        let sender = session.sender("q").await.unwrap();
        let text = format!("over wss on the {listener} listener");
        assert!(
            sender
                .send(encode_message(text.as_bytes()))
                .await
                .unwrap()
                .is_accepted()
        );
        assert_eq!(receive_texts(&session, 1).await, vec![text]);
        connection.close().await.unwrap();
    }
    broker.stop().await.unwrap();
}
