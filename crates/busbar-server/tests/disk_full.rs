//! The broker on a real full file system: its data directory on a small tmpfs the test
//! mounts (as root; skipped with a message where mounting is not permitted).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use busbar_client::{
    ConnectOptions, Connection, Outcome, ReceiverOptions, Sasl, SettleMode, encode_message,
    message_body, sas_token,
};
use busbar_server::config::{BrokerConfig, QueueDefinition, QueueProperties};
use busbar_server::{Listeners, run};
use busbar_store::conformance::Tmpfs;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// One HTTP/1.1 GET; (status, body).
async fn get(address: SocketAddr, path: &str) -> (u16, String) {
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

async fn health_becomes(address: SocketAddr, want: u16) -> String {
    loop {
        let (status, body) = get(address, "/health").await;
        if status == want {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_shows_in_health_and_sends_resume_once_space_is_freed() {
    let Some(fs_) = Tmpfs::mount("2m") else {
        return;
    };
    let config = BrokerConfig {
        amqp_listen: "127.0.0.1:0".parse().unwrap(),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: fs_.path().join("data"),
        queues: vec![QueueDefinition {
            name: "q".to_owned(),
            properties: QueueProperties::default(),
        }],
        ..BrokerConfig::default()
    };
    let listeners = Listeners::bind(&config).await.unwrap();
    let amqp = listeners.amqp.local_addr().unwrap().to_string();
    let http = listeners.http.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let broker = tokio::spawn(async move {
        let _ = run(config, listeners, async move {
            let _ = stopped.await;
        })
        .await;
    });
    health_becomes(http, 200).await;

    let connection = Connection::connect(
        &amqp,
        ConnectOptions {
            sasl: Sasl::Anonymous,
            ..ConnectOptions::default()
        },
    )
    .await
    .unwrap();
    let audience = format!("sb://{amqp}/q");
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
    let session = connection.session().await.unwrap();
    let sender = session.sender("q").await.unwrap();
    let body = |n: u32| format!("{n:06}").repeat(500);

    let mut acked = Vec::new();
    let send_all = async |ns: std::ops::Range<u32>, acked: &mut Vec<u32>| {
        for n in ns {
            let outcome = sender.send(encode_message(body(n).as_bytes())).await;
            assert!(outcome.unwrap().is_accepted(), "send {n}");
            acked.push(n);
        }
    };
    send_all(0..10, &mut acked).await;
    let filler = fs_.fill();

    // Sends go on until one meets the full disk: that one is held, not refused.
    let mut n = 10;
    let held = loop {
        let mut send = Box::pin(sender.send(encode_message(body(n).as_bytes())));
        tokio::select! {
            outcome = &mut send => {
                assert!(outcome.unwrap().is_accepted());
                acked.push(n);
                n += 1;
            }
            reason = health_becomes(http, 503) => {
                assert!(reason.contains("out of disk space"), "{reason}");
                break (n, send);
            }
        }
    };
    let refused = sender
        .send(encode_message(body(n + 1).as_bytes()))
        .await
        .unwrap();
    assert!(
        matches!(refused, Outcome::Rejected(_)),
        "a send while out of space is refused: {refused:?}"
    );

    std::fs::remove_file(&filler).unwrap();
    let (held_n, held_send) = held;
    assert!(
        held_send.await.unwrap().is_accepted(),
        "the held send lands"
    );
    acked.push(held_n);
    health_becomes(http, 200).await;
    send_all(held_n + 2..held_n + 5, &mut acked).await;

    // Every acknowledged message is there once.
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
    let mut got = Vec::new();
    for _ in 0..acked.len() {
        let delivery = receiver.recv().await.unwrap();
        got.push(String::from_utf8(message_body(&delivery.payload).unwrap().to_vec()).unwrap());
    }
    let want: Vec<String> = acked.iter().map(|&n| body(n)).collect();
    assert_eq!(got, want);
    let (_, queue) = get(http, "/api/queues/q").await;
    assert!(queue.contains("\"active_message_count\":0"), "{queue}");

    stop.send(()).unwrap();
    broker.await.unwrap();
}
