//! AMQP over WebSockets end to end: the broker from `run`, the Rust client's WebSocket
//! transport to the HTTP listener's `/$servicebus/websocket`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use busbar_client::{
    ConnectOptions, Connection, Error, SERVICE_BUS_WEBSOCKET_PATH, Sasl, Transport, encode_message,
};
use common::{Started, assert_queue_held_exactly, one_queue_config, put_development_token};

mod common;

async fn connect_over_websocket(broker: &Started) -> Connection {
    let connection = Connection::connect(
        &broker.http.to_string(),
        ConnectOptions {
            sasl: Sasl::Anonymous,
            transport: Transport::WebSocket {
                path: SERVICE_BUS_WEBSOCKET_PATH.to_owned(),
            },
            ..ConnectOptions::default()
        },
    )
    .await
    .unwrap();
    put_development_token(&connection, &broker.amqp, "q").await;
    connection
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_client_sends_and_receives_over_a_websocket_until_the_broker_stops() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Started::new(one_queue_config(dir.path().join("data"))).await;
    let connection = connect_over_websocket(&broker).await;
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
