//! The broker on a real full file system: its data directory on a small tmpfs the test
//! mounts (as root; skipped with a message where mounting is not permitted).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use busbar_client::{Outcome, encode_message};
use busbar_store::conformance::Tmpfs;
use common::{Started, assert_queue_held_exactly, connect_to, health_becomes, one_queue_config};

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_shows_in_health_and_sends_resume_once_space_is_freed() {
    let Some(fs_) = Tmpfs::mount("2m") else {
        return;
    };
    let config = one_queue_config(fs_.path().join("data"));
    let broker = Started::new(config).await;
    let (amqp, http) = (broker.amqp.clone(), broker.http);

    let connection = connect_to(&amqp, "q").await;
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
    let want: Vec<String> = acked.iter().map(|&n| body(n)).collect();
    assert_queue_held_exactly(&session, http, &want).await;

    broker.stop().await.unwrap();
}

/// A send held by the full disk is not kept waiting without end: after the limit the client
/// is told to retry with server-busy, and once space is back sends are accepted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_held_by_a_full_disk_gets_server_busy_after_the_limit() {
    let Some(fs_) = Tmpfs::mount("2m") else {
        return;
    };
    let mut config = one_queue_config(fs_.path().join("data"));
    config.limits.held_write_timeout = std::time::Duration::from_secs(1);
    let broker = Started::new(config).await;
    let (amqp, http) = (broker.amqp.clone(), broker.http);

    let connection = connect_to(&amqp, "q").await;
    let session = connection.session().await.unwrap();
    let sender = session.sender("q").await.unwrap();
    let body = |n: u32| format!("{n:06}").repeat(500);
    let filler = fs_.fill();

    // Sends go on until one meets the full disk; that one is answered within the limit.
    let mut n = 0;
    let answer = loop {
        let outcome = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            sender.send(encode_message(body(n).as_bytes())),
        )
        .await
        .expect("a held send is answered within the limit, not kept waiting")
        .unwrap();
        if !outcome.is_accepted() {
            break outcome;
        }
        n += 1;
    };
    let Outcome::Rejected(Some(error)) = &answer else {
        panic!("expected a rejection, got {answer:?}");
    };
    assert_eq!(error.condition, "com.microsoft:server-busy", "{error:?}");
    health_becomes(http, 503).await;

    std::fs::remove_file(&filler).unwrap();
    health_becomes(http, 200).await;
    let after = sender
        .send(encode_message(b"after the disk came back"))
        .await
        .unwrap();
    assert!(after.is_accepted(), "{after:?}");
    broker.stop().await.unwrap();
}
