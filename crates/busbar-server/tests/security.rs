//! Claims-based security end to end: the broker from `run`, the Rust client over TCP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use busbar_client::{
    ConnectOptions, Connection, Error, ReceiverOptions, Sasl, SettleMode, encode_message, sas_token,
};
use busbar_server::{Listeners, run};
use common::one_queue_config;
use tokio::sync::oneshot;

mod common;

struct Running {
    amqp: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn start() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let config = one_queue_config(dir.path().join("data"));
    let listeners = Listeners::bind(&config).await.unwrap();
    let amqp = listeners.amqp.local_addr().unwrap().to_string();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        run(config, listeners, async move {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    Running {
        amqp,
        stop: Some(stop),
        task,
        _dir: dir,
    }
}

impl Running {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(15), &mut self.task)
            .await
            .expect("broker stops")
            .unwrap();
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn connect(addr: &str) -> Connection {
    Connection::connect(
        addr,
        ConnectOptions {
            sasl: Sasl::Anonymous,
            ..ConnectOptions::default()
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_need_a_token_and_lose_it_when_it_expires() {
    let broker = start().await;
    let audience = format!("sb://{}/q", broker.amqp);
    let connection = connect(&broker.amqp).await;
    let session = connection.session().await.unwrap();

    // No token: the attach is refused with unauthorized-access.
    match session.sender("q").await {
        Err(Error::LinkRefused(Some(e))) => assert_eq!(e.condition, "amqp:unauthorized-access"),
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }

    // A wrong key: put-token answers 401.
    let forged = sas_token(
        &audience,
        "RootManageSharedAccessKey",
        "wrong",
        unix_now() + 3600,
    );
    match connection.put_token(&audience, &forged).await {
        Err(Error::PutToken { status, .. }) => assert_eq!(status, 401),
        other => panic!("expected 401, got {other:?}"),
    }

    // An already expired token (beyond the grace period) is refused too.
    let stale = sas_token(
        &audience,
        "RootManageSharedAccessKey",
        "SAS_KEY_VALUE",
        unix_now() - 3600,
    );
    match connection.put_token(&audience, &stale).await {
        Err(Error::PutToken { status, .. }) => assert_eq!(status, 401),
        other => panic!("expected 401 for an expired token, got {other:?}"),
    }

    // A valid token that expires in a second: the links work, then are detached once it
    // has expired (after the grace period).
    let short = sas_token(
        &audience,
        "RootManageSharedAccessKey",
        "SAS_KEY_VALUE",
        unix_now() + 1,
    );
    connection.put_token(&audience, &short).await.unwrap();
    let sender = session.sender("q").await.unwrap();
    sender.send(encode_message(b"hello")).await.unwrap();
    let mut receiver = session
        .receiver(
            "q",
            ReceiverOptions {
                settle_mode: SettleMode::PeekLock,
                credit: 10,
            },
        )
        .await
        .unwrap();
    let delivery = receiver.recv().await.unwrap();
    receiver.accept(&delivery).unwrap();

    let outcome = tokio::time::timeout(Duration::from_secs(40), receiver.recv()).await;
    match outcome {
        Ok(Err(Error::LinkDetached(Some(e)))) => {
            assert_eq!(e.condition, "amqp:unauthorized-access")
        }
        Ok(other) => panic!("expected a detach, got {:?}", other.map(|d| d.payload)),
        Err(_) => panic!("the link was not detached after its token expired"),
    }
    broker.stop().await;
}
