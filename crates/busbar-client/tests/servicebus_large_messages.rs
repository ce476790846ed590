//! Large messages through the SDK and a broker whose --max-message-size is raised: bodies
//! around the frame size both sides use (1 MiB, so larger ones go as several transfer
//! frames each way), around the broker's thresholds for copying payloads (16 KiB, 64 KiB),
//! and of 10 MiB come back byte for byte.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use busbar_client::{ServiceBusMessage, ServiceBusReceiverOptions};
use common::Broker;

const MIB: usize = 1 << 20;
const SIZES: [usize; 10] = [
    16 * 1024 - 1,
    16 * 1024,
    64 * 1024 + 1,
    MIB - 300,
    MIB - 1,
    MIB,
    MIB + 1,
    MIB + 300,
    2 * MIB + 7,
    10 * MIB,
];

/// A body whose bytes do not repeat within a short period, so a dropped, repeated or
/// misplaced slice shows.
fn body_of(index: usize, size: usize) -> Vec<u8> {
    (0..size).map(|i| ((i * 7 + index) % 251) as u8).collect()
}

#[tokio::test]
async fn large_messages_round_trip_byte_exact() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut config = common::config(data_dir.path().to_owned());
    config.max_message_size = 32 * MIB as u64;
    let broker = Broker::start_with(config, data_dir).await;
    let client = broker.client();
    let sender = client.create_sender("q");
    for (index, &size) in SIZES.iter().enumerate() {
        sender
            .send_message(ServiceBusMessage::new(body_of(index, size)))
            .await
            .unwrap();
    }
    let receiver = client.create_receiver("q", ServiceBusReceiverOptions::default());
    for (index, &size) in SIZES.iter().enumerate() {
        let mut got = receiver
            .receive_messages(1, Some(Duration::from_secs(30)))
            .await
            .unwrap();
        assert_eq!(got.len(), 1, "message {index}");
        let message = got.pop().unwrap();
        assert_eq!(message.body.len(), size, "length of message {index}");
        let expected = body_of(index, size);
        if let Some(at) = message.body.iter().zip(&expected).position(|(a, b)| a != b) {
            panic!("message {index} ({size} bytes) differs from byte {at} on");
        }
        receiver.complete_message(&message).await.unwrap();
    }
}
