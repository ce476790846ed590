//! The Rust client over TLS to the broker from `run`: on the TLS-only port and on the AMQP
//! port (which recognises TLS), trusting the development CA the broker made; a client
//! trusting another CA is refused the handshake.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use busbar_client::{ConnectOptions, Connection, Error, encode_message, tls_config_trusting};
use busbar_server::listener::dev_ca;
use common::{Started, connect_with, one_queue_config, receive_texts};

mod common;

fn tls_options(ca: &std::path::Path) -> ConnectOptions {
    ConnectOptions {
        tls: Some(tls_config_trusting(ca).unwrap()),
        hostname: Some("localhost".to_owned()),
        ..ConnectOptions::default()
    }
}

#[tokio::test]
async fn the_client_sends_and_receives_over_tls_on_both_amqp_ports() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let broker = Started::new(one_queue_config(data.clone())).await;
    let ca = data.join("tls/dev-ca.pem");
    for (port, address) in [("amqps", &broker.amqps), ("amqp", &broker.amqp)] {
        let connection = connect_with(address, "q", tls_options(&ca)).await;
        let session = connection.session().await.unwrap();
        let sender = session.sender("q").await.unwrap();
        let text = format!("over TLS on the {port} port");
        sender.send(encode_message(text.as_bytes())).await.unwrap();
        assert_eq!(receive_texts(&session, 1).await, vec![text]);
        connection.close().await.unwrap();
    }
    broker.stop().await.unwrap();
}

#[tokio::test]
async fn a_client_trusting_another_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Started::new(one_queue_config(dir.path().join("data"))).await;
    let other = dev_ca::ensure(&dir.path().join("other")).unwrap();
    let refused = Connection::connect(&broker.amqps, tls_options(&other.ca)).await;
    assert!(matches!(refused, Err(Error::Tls(_))), "{:?}", refused.err());
    broker.stop().await.unwrap();
}
