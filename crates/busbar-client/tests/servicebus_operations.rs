//! Every sender and receiver operation of the SDK against a Busbar broker started in the
//! test: batches, scheduling, dead-lettering, deferral, peeks, prefetch, streams,
//! subscriptions and subqueues.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, SystemTime};

use busbar_client::{
    AmqpValue, CreateMessageBatchOptions, DeadLetterOptions, ErrorKind, ServiceBusMessage,
    ServiceBusMessageState, ServiceBusReceiveMode, ServiceBusReceiverOptions, SubQueue,
};
use common::Broker;
use futures_util::StreamExt as _;

const WAIT: Option<Duration> = Some(Duration::from_secs(10));
const NOTHING: Option<Duration> = Some(Duration::from_millis(300));

fn bodies(messages: &[busbar_client::ServiceBusReceivedMessage]) -> Vec<String> {
    messages
        .iter()
        .map(|m| String::from_utf8(m.body.to_vec()).unwrap())
        .collect()
}

fn rad() -> ServiceBusReceiverOptions {
    ServiceBusReceiverOptions {
        receive_mode: ServiceBusReceiveMode::ReceiveAndDelete,
        ..ServiceBusReceiverOptions::default()
    }
}

#[tokio::test]
async fn send_messages_enqueues_them_all_in_order_with_their_own_properties() {
    let broker = Broker::start().await;
    let client = broker.client();
    let messages = (0..5)
        .map(|i| {
            ServiceBusMessage::new(format!("b{i}"))
                .with_message_id(format!("id{i}"))
                .with_application_property("i", i)
        })
        .collect();
    client
        .create_sender("q")
        .send_messages(messages)
        .await
        .unwrap();
    let got = client
        .create_receiver("q", rad())
        .receive_messages(10, WAIT)
        .await
        .unwrap();
    assert_eq!(bodies(&got), ["b0", "b1", "b2", "b3", "b4"]);
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.message_id.as_deref(), Some(format!("id{i}").as_str()));
        assert_eq!(m.application_properties["i"], AmqpValue::Int(i as i32));
        assert_eq!(m.sequence_number, i as i64 + 1);
    }
}

#[tokio::test]
async fn a_batch_refuses_what_exceeds_the_links_max_message_size() {
    let broker = Broker::start().await;
    let client = broker.client();
    let sender = client.create_sender("q");
    // The broker was configured with 64 KiB.
    let mut batch = sender
        .create_message_batch(CreateMessageBatchOptions::default())
        .await
        .unwrap();
    assert_eq!(batch.max_size_in_bytes(), 64 * 1024);
    let mut added = 0;
    while batch
        .try_add_message(ServiceBusMessage::new(vec![b'x'; 10_000]))
        .unwrap()
    {
        added += 1;
    }
    assert_eq!(added, 6);
    sender.send_message_batch(&batch).await.unwrap();
    assert_eq!(broker.queue_json("q").await["active_message_count"], 6);
    let too_big = sender
        .create_message_batch(CreateMessageBatchOptions {
            max_size_in_bytes: Some(1 << 20),
        })
        .await
        .unwrap_err();
    assert_eq!(too_big.kind, ErrorKind::InvalidArgument);
    let error = sender
        .send_message(ServiceBusMessage::new(vec![0u8; 70_000]))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::MessageSizeExceeded, "{error}");
}

#[tokio::test]
async fn scheduled_messages_wait_peek_as_scheduled_and_can_be_cancelled() {
    let broker = Broker::start().await;
    let client = broker.client();
    let sender = client.create_sender("q");
    let later = SystemTime::now() + Duration::from_secs(3600);
    let numbers = sender
        .schedule_messages(
            vec![
                ServiceBusMessage::new("kept"),
                ServiceBusMessage::new("cancelled"),
            ],
            later,
        )
        .await
        .unwrap();
    assert_eq!(numbers.len(), 2);
    let receiver = client.create_receiver("q", ServiceBusReceiverOptions::default());
    assert!(
        receiver
            .receive_messages(1, NOTHING)
            .await
            .unwrap()
            .is_empty()
    );
    let peeked = receiver.peek_messages(10, Some(1)).await.unwrap();
    assert_eq!(bodies(&peeked), ["kept", "cancelled"]);
    assert!(
        peeked
            .iter()
            .all(|m| m.state == ServiceBusMessageState::Scheduled)
    );
    assert_eq!(
        peeked[0].scheduled_enqueue_time.map(|t| t
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis()),
        Some(
            later
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_millis()
        )
    );
    sender
        .cancel_scheduled_messages(&numbers[1..])
        .await
        .unwrap();
    let peeked = receiver.peek_messages(10, Some(1)).await.unwrap();
    assert_eq!(bodies(&peeked), ["kept"]);
    let error = sender
        .cancel_scheduled_messages(&numbers[1..])
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::MessageNotFound, "{error}");

    // A scheduled time in the past (or a moment away) makes the message available.
    sender
        .send_message(
            ServiceBusMessage::new("soon")
                .with_scheduled_enqueue_time(SystemTime::now() + Duration::from_millis(500)),
        )
        .await
        .unwrap();
    let got = receiver.receive_messages(1, WAIT).await.unwrap();
    assert_eq!(bodies(&got), ["soon"]);
    receiver.complete_message(&got[0]).await.unwrap();
}

#[tokio::test]
async fn dead_lettered_messages_carry_reason_and_description_into_the_subqueue() {
    let broker = Broker::start().await;
    let client = broker.client();
    client
        .create_sender("q")
        .send_message(ServiceBusMessage::new("poison"))
        .await
        .unwrap();
    let receiver = client.create_receiver("q", ServiceBusReceiverOptions::default());
    let m = receiver.receive_messages(1, WAIT).await.unwrap().remove(0);
    receiver
        .dead_letter_message(
            &m,
            DeadLetterOptions {
                reason: Some("Unparseable".into()),
                description: Some("not JSON".into()),
                properties_to_modify: Some([("stage".to_owned(), AmqpValue::from("parse"))].into()),
            },
        )
        .await
        .unwrap();
    assert!(
        receiver
            .receive_messages(1, NOTHING)
            .await
            .unwrap()
            .is_empty()
    );
    let dlq = client.create_receiver(
        "q",
        ServiceBusReceiverOptions {
            sub_queue: SubQueue::DeadLetter,
            ..ServiceBusReceiverOptions::default()
        },
    );
    assert_eq!(dlq.entity_path(), "q/$DeadLetterQueue");
    let dead = dlq.receive_messages(1, WAIT).await.unwrap().remove(0);
    assert_eq!(dead.body, "poison");
    assert_eq!(dead.dead_letter_reason.as_deref(), Some("Unparseable"));
    assert_eq!(
        dead.dead_letter_error_description.as_deref(),
        Some("not JSON")
    );
    assert_eq!(
        dead.application_properties["stage"],
        AmqpValue::from("parse")
    );
    dlq.complete_message(&dead).await.unwrap();
    assert!(dlq.receive_messages(1, NOTHING).await.unwrap().is_empty());
}

#[tokio::test]
async fn abandoning_past_the_max_delivery_count_dead_letters() {
    let broker = Broker::start().await;
    let client = broker.client();
    client
        .create_sender("dlq-fast")
        .send_message(ServiceBusMessage::new("fails"))
        .await
        .unwrap();
    let receiver = client.create_receiver("dlq-fast", ServiceBusReceiverOptions::default());
    for _ in 0..2 {
        let m = receiver.receive_messages(1, WAIT).await.unwrap().remove(0);
        receiver.abandon_message(&m, None).await.unwrap();
    }
    assert!(
        receiver
            .receive_messages(1, NOTHING)
            .await
            .unwrap()
            .is_empty()
    );
    let dlq = client.create_receiver(
        "dlq-fast",
        ServiceBusReceiverOptions {
            sub_queue: SubQueue::DeadLetter,
            ..rad()
        },
    );
    let dead = dlq.receive_messages(1, WAIT).await.unwrap().remove(0);
    assert_eq!(
        dead.dead_letter_reason.as_deref(),
        Some("MaxDeliveryCountExceeded")
    );
}

#[tokio::test]
async fn deferred_messages_come_back_only_by_sequence_number() {
    let broker = Broker::start().await;
    let client = broker.client();
    let sender = client.create_sender("q");
    for body in ["later", "now"] {
        sender
            .send_message(ServiceBusMessage::new(body))
            .await
            .unwrap();
    }
    let receiver = client.create_receiver("q", ServiceBusReceiverOptions::default());
    let first = receiver.receive_messages(1, WAIT).await.unwrap().remove(0);
    receiver.defer_message(&first, None).await.unwrap();
    let next = receiver.receive_messages(5, WAIT).await.unwrap();
    assert_eq!(bodies(&next), ["now"]);
    receiver.complete_message(&next[0]).await.unwrap();
    assert!(
        receiver
            .receive_messages(1, NOTHING)
            .await
            .unwrap()
            .is_empty()
    );

    let peeked = receiver
        .peek_messages(5, Some(first.sequence_number))
        .await
        .unwrap();
    assert_eq!(peeked[0].state, ServiceBusMessageState::Deferred);
    let deferred = receiver
        .receive_deferred_messages(&[first.sequence_number])
        .await
        .unwrap();
    assert_eq!(bodies(&deferred), ["later"]);
    assert!(deferred[0].lock_token.is_some());
    // Renewed and settled through $management, as it did not come on a link.
    receiver.renew_message_lock(&deferred[0]).await.unwrap();
    receiver.complete_message(&deferred[0]).await.unwrap();
    let error = receiver
        .receive_deferred_messages(&[first.sequence_number])
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::MessageNotFound, "{error}");
}

#[tokio::test]
async fn peeks_page_through_without_locking() {
    let broker = Broker::start().await;
    let client = broker.client();
    let sender = client.create_sender("q");
    for i in 0..5 {
        sender
            .send_message(ServiceBusMessage::new(format!("p{i}")))
            .await
            .unwrap();
    }
    let receiver = client.create_receiver("q", ServiceBusReceiverOptions::default());
    assert_eq!(
        bodies(&receiver.peek_messages(2, None).await.unwrap()),
        ["p0", "p1"]
    );
    assert_eq!(
        bodies(&receiver.peek_messages(2, None).await.unwrap()),
        ["p2", "p3"]
    );
    assert_eq!(
        bodies(&receiver.peek_messages(2, None).await.unwrap()),
        ["p4"]
    );
    assert!(receiver.peek_messages(2, None).await.unwrap().is_empty());
    assert_eq!(
        bodies(&receiver.peek_messages(1, Some(4)).await.unwrap()),
        ["p3"]
    );
    let peeked = receiver.peek_messages(1, Some(1)).await.unwrap();
    assert!(peeked[0].lock_token.is_none());
    assert_eq!(
        receiver
            .complete_message(&peeked[0])
            .await
            .unwrap_err()
            .kind,
        ErrorKind::InvalidArgument
    );
    // Nothing was locked: all five are received.
    let got = client
        .create_receiver("q", rad())
        .receive_messages(10, WAIT)
        .await
        .unwrap();
    assert_eq!(got.len(), 5);
}

#[tokio::test]
async fn prefetch_and_the_stream_deliver_everything_once() {
    let broker = Broker::start().await;
    let client = broker.client();
    let sender = client.create_sender("q");
    for i in 0..20 {
        sender
            .send_message(ServiceBusMessage::new(format!("s{i}")))
            .await
            .unwrap();
    }
    let receiver = client.create_receiver(
        "q",
        ServiceBusReceiverOptions {
            prefetch_count: 5,
            ..ServiceBusReceiverOptions::default()
        },
    );
    let mut seen = Vec::new();
    {
        let mut stream = std::pin::pin!(receiver.messages());
        while seen.len() < 20 {
            let m = stream.next().await.unwrap().unwrap();
            receiver.complete_message(&m).await.unwrap();
            seen.push(String::from_utf8(m.body.to_vec()).unwrap());
        }
    }
    let want: Vec<_> = (0..20).map(|i| format!("s{i}")).collect();
    assert_eq!(seen, want);
    receiver.close().await.unwrap();
    assert_eq!(broker.queue_json("q").await["active_message_count"], 0);
}

#[tokio::test]
async fn closing_a_prefetching_receiver_gives_back_what_it_held() {
    let broker = Broker::start().await;
    let client = broker.client();
    let sender = client.create_sender("q");
    for i in 0..3 {
        sender
            .send_message(ServiceBusMessage::new(format!("r{i}")))
            .await
            .unwrap();
    }
    let receiver = client.create_receiver(
        "q",
        ServiceBusReceiverOptions {
            prefetch_count: 10,
            ..ServiceBusReceiverOptions::default()
        },
    );
    let one = receiver.receive_messages(1, WAIT).await.unwrap();
    receiver.complete_message(&one[0]).await.unwrap();
    receiver.close().await.unwrap();
    // The two prefetched ones are available at once, not after their locks expire.
    let other = client.create_receiver("q", rad());
    let rest = other.receive_messages(10, WAIT).await.unwrap();
    assert_eq!(bodies(&rest), ["r1", "r2"]);
    assert!(rest.iter().all(|m| m.delivery_count == 0));
}

#[tokio::test]
async fn subscriptions_each_receive_what_is_sent_to_the_topic() {
    let broker = Broker::start().await;
    let client = broker.client();
    client
        .create_sender("t")
        .send_message(ServiceBusMessage::new("fan-out").with_subject("news"))
        .await
        .unwrap();
    for subscription in ["s1", "s2"] {
        let receiver = client.create_receiver_for_subscription(
            "t",
            subscription,
            ServiceBusReceiverOptions::default(),
        );
        assert_eq!(
            receiver.entity_path(),
            format!("t/Subscriptions/{subscription}")
        );
        let m = receiver.receive_messages(1, WAIT).await.unwrap().remove(0);
        assert_eq!(m.subject.as_deref(), Some("news"));
        receiver
            .dead_letter_message(&m, DeadLetterOptions::default())
            .await
            .unwrap();
        let dlq = client.create_receiver_for_subscription(
            "t",
            subscription,
            ServiceBusReceiverOptions {
                sub_queue: SubQueue::DeadLetter,
                ..rad()
            },
        );
        assert_eq!(
            bodies(&dlq.receive_messages(1, WAIT).await.unwrap()),
            ["fan-out"]
        );
    }
}

#[tokio::test]
async fn the_transfer_dead_letter_subqueue_can_be_received_from() {
    let broker = Broker::start().await;
    let client = broker.client();
    let receiver = client.create_receiver(
        "q",
        ServiceBusReceiverOptions {
            sub_queue: SubQueue::TransferDeadLetter,
            ..ServiceBusReceiverOptions::default()
        },
    );
    assert_eq!(receiver.entity_path(), "q/$Transfer/$DeadLetterQueue");
    assert!(
        receiver
            .receive_messages(1, NOTHING)
            .await
            .unwrap()
            .is_empty()
    );
}
