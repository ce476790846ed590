//! What an entity change at run time does to links already attached, over real sockets
//! with the Rust AMQP client: deleting an entity detaches its links with `amqp:not-found`,
//! a status that refuses sends rejects each send with `com.microsoft:entity-disabled`, and
//! one that refuses receives detaches receivers with it and refuses new ones.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use busbar_client::{Error, Outcome, ReceiverOptions, encode_message};
use busbar_core::namespace::RuleDescription;
use busbar_core::topic::TopicConfig;
use busbar_core::{EntityStatus, QueueConfig, SystemClock};
use busbar_server::broker::Broker;
use busbar_server::config::BrokerConfig;
use busbar_store::log::{LogOptions, LogStore};
use bytes::BytesMut;
use common::connect_to;
use tokio::net::TcpListener;
use tokio::sync::watch;

mod common;

/// A broker over a fresh store, serving AMQP on a loopback port until the test ends.
async fn serve() -> (Arc<Broker<LogStore>>, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (store, recovered) = LogStore::open(dir.path(), LogOptions::default()).unwrap();
    let config = BrokerConfig::default();
    let policies = config.effective_policies().unwrap();
    let broker = Arc::new(
        Broker::open(
            Arc::new(store),
            recovered,
            &config,
            policies,
            Arc::new(SystemClock),
        )
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let serving = Arc::clone(&broker);
    tokio::spawn(async move {
        let (_stop, shutdown) = watch::channel(false);
        let epoch = Instant::now();
        let mut id = 0;
        while let Ok((stream, peer)) = listener.accept().await {
            id += 1;
            tokio::spawn(busbar_server::connection::serve(
                Arc::clone(&serving),
                stream,
                BytesMut::new(),
                peer.to_string(),
                id,
                epoch,
                shutdown.clone(),
            ));
        }
    });
    (broker, address, dir)
}

fn condition(error: &Error) -> Option<&str> {
    match error {
        Error::LinkDetached(Some(remote)) | Error::LinkRefused(Some(remote)) => {
            Some(&remote.condition)
        }
        _ => None,
    }
}

#[tokio::test]
async fn deleting_a_queue_detaches_its_links_with_not_found() {
    let (broker, address, _dir) = serve().await;
    broker
        .create_queue("doomed", QueueConfig::default())
        .unwrap();
    let connection = connect_to(&address, "doomed").await;
    let session = connection.session().await.unwrap();
    let mut receiver = session
        .receiver("doomed", ReceiverOptions::default())
        .await
        .unwrap();
    let sender = session.sender("doomed").await.unwrap();
    assert!(
        sender
            .send(encode_message(b"before"))
            .await
            .unwrap()
            .is_accepted()
    );
    receiver.recv().await.unwrap();

    broker.delete_queue("doomed").await.unwrap();
    let error = receiver.recv().await.expect_err("detached");
    assert_eq!(condition(&error), Some("amqp:not-found"), "{error}");
    let text = error.to_string();
    assert!(text.contains("could not be found"), "{text}");
    // The sender was detached too: its send fails.
    let sent = sender.send(encode_message(b"after")).await;
    assert!(sent.is_err() || !sent.unwrap().is_accepted());
}

#[tokio::test]
async fn deleting_a_topic_detaches_its_subscriptions_receivers() {
    let (broker, address, _dir) = serve().await;
    broker.create_topic("t", TopicConfig::default()).unwrap();
    broker
        .create_subscription("t", "s", QueueConfig::default(), None::<RuleDescription>)
        .unwrap();
    let connection = connect_to(&address, "t").await;
    let session = connection.session().await.unwrap();
    let mut receiver = session
        .receiver("t/Subscriptions/s", ReceiverOptions::default())
        .await
        .unwrap();
    broker.delete_topic("t").await.unwrap();
    let error = receiver.recv().await.expect_err("detached");
    assert_eq!(condition(&error), Some("amqp:not-found"), "{error}");
}

#[tokio::test]
async fn a_status_change_applies_to_links_already_attached() {
    let (broker, address, _dir) = serve().await;
    broker.create_queue("q", QueueConfig::default()).unwrap();
    assert_eq!(broker.get_queue("q").unwrap().accessed_at_ms, None);
    let connection = connect_to(&address, "q").await;
    let session = connection.session().await.unwrap();
    let sender = session.sender("q").await.unwrap();
    let mut receiver = session
        .receiver("q", ReceiverOptions::default())
        .await
        .unwrap();

    let send_disabled = QueueConfig {
        status: EntityStatus::SendDisabled,
        ..QueueConfig::default()
    };
    broker.update_queue("q", send_disabled).unwrap();
    match sender.send(encode_message(b"refused")).await.unwrap() {
        Outcome::Rejected(Some(error)) => {
            assert_eq!(error.condition, "com.microsoft:entity-disabled");
            let description = error.description.unwrap_or_default();
            assert!(description.contains("disabled"), "{description}");
        }
        other => panic!("send to a send-disabled queue: {other:?}"),
    }
    assert_eq!(broker.get_queue("q").unwrap().counts.active, 0);

    let receive_disabled = QueueConfig {
        status: EntityStatus::ReceiveDisabled,
        ..QueueConfig::default()
    };
    broker.update_queue("q", receive_disabled).unwrap();
    assert!(
        sender
            .send(encode_message(b"kept"))
            .await
            .unwrap()
            .is_accepted()
    );
    let error = receiver.recv().await.expect_err("detached");
    assert_eq!(
        condition(&error),
        Some("com.microsoft:entity-disabled"),
        "{error}"
    );
    let refused = session
        .receiver("q", ReceiverOptions::default())
        .await
        .map(|_| ())
        .expect_err("refused");
    assert_eq!(condition(&refused), Some("com.microsoft:entity-disabled"));

    broker.update_queue("q", QueueConfig::default()).unwrap();
    let sent_at = broker
        .get_queue("q")
        .unwrap()
        .accessed_at_ms
        .expect("sent to");
    let mut receiver = session
        .receiver("q", ReceiverOptions::default())
        .await
        .unwrap();
    receiver.recv().await.unwrap();
    let received_at = broker
        .get_queue("q")
        .unwrap()
        .accessed_at_ms
        .expect("received from");
    assert!(received_at >= sent_at);
}

#[tokio::test]
async fn a_message_forwarded_to_a_deleted_queue_goes_to_the_transfer_dead_letter_queue() {
    let (broker, address, _dir) = serve().await;
    broker
        .create_queue("target", QueueConfig::default())
        .unwrap();
    let forwarding = QueueConfig {
        forward_to: Some("target".into()),
        ..QueueConfig::default()
    };
    broker.create_queue("source", forwarding).unwrap();
    broker.delete_queue("target").await.unwrap();

    let connection = connect_to(&address, "source").await;
    let session = connection.session().await.unwrap();
    let sender = session.sender("source").await.unwrap();
    assert!(
        sender
            .send(encode_message(b"nowhere to go"))
            .await
            .unwrap()
            .is_accepted()
    );
    let counts = broker.get_queue("source").unwrap().counts;
    assert_eq!((counts.active, counts.transfer_dead_letter), (0, 1));
}
