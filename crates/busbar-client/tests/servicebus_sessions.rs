//! Session receivers against a Busbar broker started in the test: a named session, the
//! next available one, state, lock renewal, and a session held elsewhere.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, SystemTime};

use busbar_client::{
    ErrorKind, RetryMode, RetryOptions, ServiceBusClientOptions, ServiceBusMessage,
    ServiceBusSessionReceiverOptions,
};
use bytes::Bytes;
use common::Broker;

const WAIT: Option<Duration> = Some(Duration::from_secs(10));
const NOTHING: Option<Duration> = Some(Duration::from_millis(300));

async fn send_to_sessions(client: &busbar_client::ServiceBusClient, entity: &str) {
    let sender = client.create_sender(entity);
    for (session, body) in [("a", "a1"), ("b", "b1"), ("a", "a2")] {
        sender
            .send_message(ServiceBusMessage::new(body).with_session_id(session))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_named_session_gets_only_its_messages_and_keeps_state() {
    let broker = Broker::start().await;
    let client = broker.client();
    send_to_sessions(&client, "sessions").await;
    let receiver = client
        .accept_session("sessions", "a", ServiceBusSessionReceiverOptions::default())
        .await
        .unwrap();
    assert_eq!(receiver.session_id(), "a");
    let locked_until = receiver.session_locked_until().unwrap();
    assert!(locked_until > SystemTime::now());
    let got = receiver.receive_messages(10, WAIT).await.unwrap();
    let bodies: Vec<_> = got.iter().map(|m| m.body.clone()).collect();
    assert_eq!(bodies, ["a1", "a2"]);
    assert!(got.iter().all(|m| m.session_id.as_deref() == Some("a")));
    for m in &got {
        receiver.complete_message(m).await.unwrap();
    }
    assert_eq!(receiver.get_session_state().await.unwrap(), None);
    receiver
        .set_session_state(Some(Bytes::from_static(b"step 2")))
        .await
        .unwrap();
    assert_eq!(
        receiver.get_session_state().await.unwrap().as_deref(),
        Some(&b"step 2"[..])
    );
    let renewed = receiver.renew_session_lock().await.unwrap();
    assert!(renewed >= locked_until);
    assert_eq!(receiver.session_locked_until(), Some(renewed));

    // Held by this receiver: nobody else may lock it.
    let other = client.clone();
    let error = other
        .accept_session("sessions", "a", ServiceBusSessionReceiverOptions::default())
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::SessionCannotBeLocked, "{error}");
    receiver.close().await.unwrap();

    // Closed: the lock is free, and the state stayed with the session.
    let again = client
        .accept_session("sessions", "a", ServiceBusSessionReceiverOptions::default())
        .await
        .unwrap();
    assert_eq!(
        again.get_session_state().await.unwrap().as_deref(),
        Some(&b"step 2"[..])
    );
    again.set_session_state(None).await.unwrap();
    assert_eq!(again.get_session_state().await.unwrap(), None);
    assert!(again.receive_messages(1, NOTHING).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_next_session_is_one_with_messages_and_none_left_is_a_timeout() {
    let broker = Broker::start().await;
    let client = broker.client();
    send_to_sessions(&client, "sessions").await;
    let options = ServiceBusSessionReceiverOptions {
        max_wait: Some(Duration::from_secs(1)),
        ..ServiceBusSessionReceiverOptions::default()
    };
    let mut seen = Vec::new();
    for _ in 0..2 {
        let receiver = client
            .accept_next_session("sessions", options.clone())
            .await
            .unwrap();
        let got = receiver.receive_messages(10, WAIT).await.unwrap();
        for m in &got {
            assert_eq!(m.session_id.as_deref(), Some(receiver.session_id()));
            receiver.complete_message(m).await.unwrap();
        }
        seen.push((receiver.session_id().to_owned(), got.len()));
        receiver.close().await.unwrap();
    }
    seen.sort();
    assert_eq!(seen, [("a".to_owned(), 2), ("b".to_owned(), 1)]);
    let error = client
        .accept_next_session("sessions", options)
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::ServiceTimeout, "{error}");
}

/// The service's "no session within max_wait" is the answer, not a failure to retry: with
/// an hour between retries, a client that retried it would not return for an hour. (It did:
/// four attempts with back-off, about 10 s for a max_wait of 1 s.) Also fails if the SDK
/// did not send `com.microsoft:timeout`, as the broker would then wait its default minute.
#[tokio::test]
async fn no_next_session_within_max_wait_is_answered_without_retrying() {
    const HANG: Duration = Duration::from_secs(30);
    let broker = Broker::start().await;
    let client = broker.client_with(ServiceBusClientOptions {
        retry: RetryOptions {
            mode: RetryMode::Fixed,
            max_retries: 3,
            delay: Duration::from_secs(3600),
            max_delay: Duration::from_secs(3600),
            ..RetryOptions::default()
        },
        ..ServiceBusClientOptions::default()
    });
    let options = ServiceBusSessionReceiverOptions {
        max_wait: Some(Duration::from_secs(1)),
        ..ServiceBusSessionReceiverOptions::default()
    };
    let error = tokio::time::timeout(HANG, client.accept_next_session("sessions", options))
        .await
        .expect("accept_next_session went on past its max_wait")
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::ServiceTimeout, "{error}");
}

#[tokio::test]
async fn session_messages_can_be_deferred_peeked_and_dead_lettered() {
    let broker = Broker::start().await;
    let client = broker.client();
    send_to_sessions(&client, "st").await;
    let receiver = client
        .accept_session_for_subscription(
            "st",
            "ss",
            "a",
            ServiceBusSessionReceiverOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(receiver.entity_path(), "st/Subscriptions/ss");
    let peeked = receiver.peek_messages(10, None).await.unwrap();
    let bodies: Vec<_> = peeked.iter().map(|m| m.body.clone()).collect();
    assert_eq!(bodies, ["a1", "a2"]);
    let first = receiver.receive_messages(1, WAIT).await.unwrap().remove(0);
    receiver.defer_message(&first, None).await.unwrap();
    let second = receiver.receive_messages(1, WAIT).await.unwrap().remove(0);
    receiver
        .dead_letter_message(&second, busbar_client::DeadLetterOptions::default())
        .await
        .unwrap();
    let deferred = receiver
        .receive_deferred_messages(&[first.sequence_number])
        .await
        .unwrap();
    assert_eq!(deferred[0].body, "a1");
    receiver.complete_message(&deferred[0]).await.unwrap();
    let next = client
        .accept_next_session_for_subscription(
            "st",
            "ss",
            ServiceBusSessionReceiverOptions {
                max_wait: Some(Duration::from_secs(1)),
                ..ServiceBusSessionReceiverOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(next.session_id(), "b");
}
