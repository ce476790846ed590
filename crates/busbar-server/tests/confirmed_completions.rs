//! Completions the client waits to hear about (rcv-settle-mode second, as the Python and
//! JS SDKs settle): the broker applies those of one read together, and must still answer
//! each as if it went alone — `accepted` only once its removal is durable, and a lost
//! lock failing that delivery, not its neighbours.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use busbar_client::{
    Delivery, Outcome, Receiver, ReceiverOptions, Session, SettleMode, encode_message, message_body,
};
use busbar_store::conformance::ThinDisk;
use common::{Started, connect_to, get, health_becomes, one_queue_config, receive_texts};

mod common;

async fn confirmed_receiver(session: &Session) -> Receiver {
    let options = ReceiverOptions {
        settle_mode: SettleMode::PeekLockConfirmed,
        credit: 0,
    };
    session.receiver("q", options).await.unwrap()
}

async fn receive(receiver: &mut Receiver, count: u32) -> Vec<Delivery> {
    receiver.add_credit(count).unwrap();
    let mut got = Vec::new();
    for _ in 0..count {
        got.push(receiver.recv().await.unwrap());
    }
    got
}

fn text(delivery: &Delivery) -> String {
    String::from_utf8(message_body(&delivery.payload).unwrap().to_vec()).unwrap()
}

/// Accepts all of `deliveries` at once (one burst of dispositions, applied together) and
/// waits for every answer.
async fn accept_all(receiver: &Receiver, deliveries: &[&Delivery]) -> Vec<Outcome> {
    let answers: Vec<_> = deliveries
        .iter()
        .map(|d| receiver.accept_confirmed(d))
        .collect();
    let mut outcomes = Vec::with_capacity(answers.len());
    for answer in answers {
        outcomes.push(answer.await.unwrap());
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lock_among_confirmed_completions_fails_that_one_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = one_queue_config(dir.path().join("data"));
    // Long enough for the later deliveries to stay locked while the batch is settled.
    config.queues[0].properties.lock_duration_ms = 3_000;
    let broker = Started::new(config).await;
    let connection = connect_to(&broker.amqp, "q").await;
    let session = connection.session().await.unwrap();
    let sender = session.sender("q").await.unwrap();
    let mut receiver = confirmed_receiver(&session).await;

    assert!(
        sender
            .send(encode_message(b"m0"))
            .await
            .unwrap()
            .is_accepted()
    );
    let first = receive(&mut receiver, 1).await.remove(0);
    // Delivered again once its first lock expired: the first delivery's lock is lost.
    let again = receive(&mut receiver, 1).await.remove(0);
    assert_eq!((text(&first), text(&again)), ("m0".into(), "m0".into()));
    for n in 1..=8 {
        let body = format!("m{n}");
        let outcome = sender.send(encode_message(body.as_bytes())).await.unwrap();
        assert!(outcome.is_accepted());
    }
    let later = receive(&mut receiver, 8).await;

    let mut batch: Vec<&Delivery> = later[..4].iter().collect();
    batch.push(&first);
    batch.extend(&later[4..]);
    batch.push(&again);
    let outcomes = accept_all(&receiver, &batch).await;
    for (delivery, outcome) in batch.iter().zip(&outcomes) {
        if std::ptr::eq(*delivery, &first) {
            let Outcome::Rejected(Some(error)) = outcome else {
                panic!("the lost lock is refused: {outcome:?}");
            };
            assert_eq!(error.condition, "com.microsoft:message-lock-lost");
        } else {
            assert!(outcome.is_accepted(), "{}: {outcome:?}", text(delivery));
        }
    }
    let (_, queue) = get(broker.http, "/api/queues/q").await;
    assert!(queue.contains("\"active_message_count\":0"), "{queue}");
    broker.stop().await.unwrap();
}

/// The data directory on a disk whose syncs of new blocks fail: completions written but
/// never made durable must not be answered `accepted`, and after the store recovered,
/// exactly the messages whose completion was accepted are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_completions_are_accepted_only_once_durable() {
    let Some(disk) = ThinDisk::mount() else {
        return;
    };
    let config = one_queue_config(disk.path().join("data"));
    let broker = Started::new(config).await;
    let (amqp, http) = (broker.amqp.clone(), broker.http);
    let connection = connect_to(&amqp, "q").await;
    let session = connection.session().await.unwrap();
    let sender = session.sender("q").await.unwrap();
    // Enough completions that their records outgrow what the full disk still takes.
    let count = 6000u32;
    for window in (0..count).collect::<Vec<_>>().chunks(500) {
        let sends: Vec<_> = window
            .iter()
            .map(|n| sender.send(encode_message(format!("{n:06}").as_bytes())))
            .collect();
        for send in sends {
            assert!(send.await.unwrap().is_accepted());
        }
    }
    let mut receiver = confirmed_receiver(&session).await;
    let deliveries = receive(&mut receiver, count).await;

    let filler = disk.exhaust();
    // Batches of completions until one meets a failed sync (the store then stops and
    // recovers, closing the connection): none is accepted that did not become durable.
    let mut accepted = std::collections::HashSet::new();
    let mut refused = 0;
    for batch in deliveries.chunks(500) {
        let answers: Vec<_> = batch.iter().map(|d| receiver.accept_confirmed(d)).collect();
        for (delivery, answer) in batch.iter().zip(answers) {
            match answer.await {
                Ok(outcome) if outcome.is_accepted() => {
                    accepted.insert(text(delivery));
                }
                _ => refused += 1,
            }
        }
        if refused > 0 {
            break;
        }
    }
    assert!(refused > 0, "the failed sync refused some completions");
    let still_there: Vec<String> = deliveries
        .iter()
        .map(text)
        .filter(|body| !accepted.contains(body))
        .collect();
    println!("{} accepted, {refused} refused", accepted.len());

    let reason = health_becomes(http, 503).await;
    assert!(reason.contains("failed sync"), "{reason}");
    std::fs::remove_file(&filler).unwrap();
    health_becomes(http, 200).await;
    let connection = connect_to(&amqp, "q").await;
    let session = connection.session().await.unwrap();
    // Exactly those not accepted are there, once each (in order).
    let got = receive_texts(&session, still_there.len()).await;
    let back: Vec<&String> = got.iter().filter(|body| accepted.contains(*body)).collect();
    assert!(
        back.is_empty(),
        "{} messages whose completion was accepted are back, e.g. {:?}",
        back.len(),
        &back[..back.len().min(5)]
    );
    assert_eq!(got, still_there);
    let (_, queue) = get(http, "/api/queues/q").await;
    assert!(queue.contains("\"active_message_count\":0"), "{queue}");
    broker.stop().await.unwrap();
}
