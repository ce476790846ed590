//! A failed fsync for real: the data directory on an ext4 whose loop device's backing file
//! lives on a small tmpfs the test fills, so writeback fails and `fdatasync` reports it
//! (as root; skipped with a message where loop devices or mounting are not permitted).
//! The broker must close its connections, reopen and replay the log in process, and serve
//! again on the same listener, with every acknowledged message there exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use busbar_client::{Error, encode_message};
use busbar_store::conformance::ThinDisk;
use common::{Started, assert_queue_held_exactly, connect_to, health_becomes, one_queue_config};

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_reopens_the_store_in_process_and_loses_or_repeats_nothing() {
    let Some(disk) = ThinDisk::mount() else {
        return;
    };
    let config = one_queue_config(disk.path().join("data"));
    let broker = Started::new(config).await;
    let (amqp, http) = (broker.amqp.clone(), broker.http);

    let body = |n: u32| format!("{n:06}").repeat(1000);
    let connection = connect_to(&amqp, "q").await;
    let session = connection.session().await.unwrap();
    let sender = session.sender("q").await.unwrap();
    let mut acked = Vec::new();
    for n in 0..10 {
        let outcome = sender.send(encode_message(body(n).as_bytes())).await;
        assert!(outcome.unwrap().is_accepted(), "send {n}");
        acked.push(n);
    }

    let filler = disk.exhaust();
    // Sends go on until one is not acknowledged: the sync of its write failed.
    let mut n = 10;
    loop {
        match sender.send(encode_message(body(n).as_bytes())).await {
            Ok(outcome) if outcome.is_accepted() => acked.push(n),
            other => {
                println!("send {n} not acknowledged: {other:?}");
                break;
            }
        }
        n += 1;
    }
    let reason = health_becomes(http, 503).await;
    println!("/health during recovery: {reason}");
    assert!(reason.contains("failed sync"), "{reason}");
    // The connection was closed by the broker, saying why.
    let closed = loop {
        match sender.send(encode_message(b"after the failure")).await {
            Err(error) => break error,
            Ok(outcome) => assert!(!outcome.is_accepted(), "nothing is accepted meanwhile"),
        }
    };
    match &closed {
        Error::ConnectionClosed(Some(remote)) => {
            assert_eq!(remote.condition, "amqp:connection:forced", "{closed}");
            assert!(
                remote
                    .description
                    .as_deref()
                    .is_some_and(|d| d.contains("failed to sync")),
                "{closed}"
            );
        }
        other => panic!("expected the broker to close the connection, got {other}"),
    }

    std::fs::remove_file(&filler).unwrap();
    health_becomes(http, 200).await;
    let connection = connect_to(&amqp, "q").await;
    let session = connection.session().await.unwrap();
    let sender = session.sender("q").await.unwrap();
    for n in n + 1..n + 4 {
        let outcome = sender.send(encode_message(body(n).as_bytes())).await;
        assert!(outcome.unwrap().is_accepted(), "send {n} after recovery");
        acked.push(n);
    }

    // Every acknowledged message is there once; the unacknowledged one is not.
    let want: Vec<String> = acked.iter().map(|&n| body(n)).collect();
    assert_queue_held_exactly(&session, http, &want).await;

    broker.stop().await.unwrap();
}
