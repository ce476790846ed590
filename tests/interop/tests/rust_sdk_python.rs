//! The Rust SDK (busbar-client) and the Python SDK read each other's messages with every
//! property: what one sets, the other sees, application properties of every primitive AMQP
//! type included. The Python side is `python/rust_sdk_properties.py`.
//!
//! Not covered, for the Python SDK's sake: `char` and the decimals (its decoder has no
//! constructor for them and its receiver fails on such a message), and non-UTF-8 binary
//! values from Python (its sender turns bytes into strings).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use busbar_client::{
    AmqpTimestamp, AmqpValue, ServiceBusClient, ServiceBusClientOptions, ServiceBusMessage,
    ServiceBusReceivedMessage, ServiceBusSessionReceiverOptions,
};
use busbar_interop::{Broker, QueueSpec, emulator_config};
use serde_json::{Value as Json, json};

fn config() -> String {
    emulator_config(&[QueueSpec::new("sq").requires_session()])
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn client(broker: &Broker) -> ServiceBusClient {
    ServiceBusClient::from_connection_string(&broker.conn_str(), ServiceBusClientOptions::default())
        .expect("client")
}

fn millis(t: SystemTime) -> i64 {
    i64::try_from(
        t.duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("ms")
}

/// The JSON line the script prints for the message it received.
fn printed_message(output: &str) -> Json {
    let line = output
        .lines()
        .find_map(|l| l.strip_prefix("MESSAGE "))
        .unwrap_or_else(|| panic!("the script printed no MESSAGE line:\n{output}"));
    serde_json::from_str(line).expect("MESSAGE is JSON")
}

#[test]
fn python_reads_every_property_the_rust_sdk_sends() {
    let broker = Broker::start(Some(&config()), &[]);
    // Soon enough to wait for, late enough to be held back by the broker first.
    let scheduled = SystemTime::now() + Duration::from_secs(1);
    let message = ServiceBusMessage::new("from rust")
        .with_message_id("rust-message-1")
        .with_session_id("rust-session")
        // Service Bus wants a session's partition key to be its id.
        .with_partition_key("rust-session")
        .with_correlation_id("rust-correlation")
        .with_subject("rust-subject")
        .with_to("rust-to")
        .with_reply_to("rust-reply-to")
        .with_reply_to_session_id("rust-reply-session")
        .with_content_type("text/plain")
        .with_time_to_live(Duration::from_secs(600))
        .with_scheduled_enqueue_time(scheduled)
        .with_application_property("bool", true)
        .with_application_property("ubyte", AmqpValue::Ubyte(200))
        .with_application_property("ushort", AmqpValue::Ushort(60_000))
        .with_application_property("uint", AmqpValue::Uint(4_000_000_000))
        .with_application_property("ulong", AmqpValue::Ulong(u64::MAX))
        .with_application_property("byte", AmqpValue::Byte(-100))
        .with_application_property("short", AmqpValue::Short(-30_000))
        .with_application_property("int", AmqpValue::Int(-2_000_000_000))
        .with_application_property("long", AmqpValue::Long(i64::MIN))
        .with_application_property("float", AmqpValue::Float(1.5))
        .with_application_property("double", AmqpValue::Double(-2.25))
        .with_application_property("timestamp", AmqpTimestamp(1_600_000_000_123))
        .with_application_property("uuid", AmqpValue::Uuid(*uuid_bytes()))
        .with_application_property("binary", vec![0u8, 1, 255])
        .with_application_property("string", "text")
        .with_application_property("symbol", AmqpValue::sym("a-symbol"))
        .with_application_property("null", AmqpValue::Null);
    runtime().block_on(async {
        let client = client(&broker);
        client
            .create_sender("sq")
            .send_message(message)
            .await
            .expect("send");
        client.close().await;
    });

    let output = broker.run_python("rust_sdk_properties.py", &["sq", "receive", "rust-session"]);
    let got = printed_message(&output);
    let expected = json!({
        "body": "from rust",
        "message_id": "rust-message-1",
        "session_id": "rust-session",
        "correlation_id": "rust-correlation",
        "subject": "rust-subject",
        "to": "rust-to",
        "reply_to": "rust-reply-to",
        "reply_to_session_id": "rust-reply-session",
        "content_type": "text/plain",
        "time_to_live_ms": 600_000,
        "scheduled_enqueue_time_ms": millis(scheduled),
        "partition_key": "rust-session",
        "sequence_number": 1,
        "application_properties": {
            "bool": {"type": "bool", "value": true},
            "ubyte": {"type": "int", "value": 200},
            "ushort": {"type": "int", "value": 60_000},
            "uint": {"type": "int", "value": 4_000_000_000u64},
            "ulong": {"type": "int", "value": u64::MAX},
            "byte": {"type": "int", "value": -100},
            "short": {"type": "int", "value": -30_000},
            "int": {"type": "int", "value": -2_000_000_000},
            "long": {"type": "int", "value": i64::MIN},
            "float": {"type": "float", "value": 1.5},
            "double": {"type": "float", "value": -2.25},
            // The Python SDK hands timestamps in application properties over as epoch ms.
            "timestamp": {"type": "int", "value": 1_600_000_000_123i64},
            "uuid": {"type": "uuid", "value": "0f8fad5b-d9cb-469f-a165-70867728950e"},
            "binary": {"type": "bytes", "value": "0001ff"},
            // Strings and symbols reach Python as bytes (its SDK does not decode them).
            "string": {"type": "bytes", "value": hex(b"text")},
            "symbol": {"type": "bytes", "value": hex(b"a-symbol")},
            "null": {"type": "NoneType", "value": null},
        },
    });
    assert_eq!(got, expected, "what Python read\n{output}");
}

fn uuid_bytes() -> &'static [u8; 16] {
    &[
        0x0f, 0x8f, 0xad, 0x5b, 0xd9, 0xcb, 0x46, 0x9f, 0xa1, 0x65, 0x70, 0x86, 0x77, 0x28, 0x95,
        0x0e,
    ]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_rust_sdk_reads_every_property_python_sends() {
    let broker = Broker::start(Some(&config()), &[]);
    broker.run_python("rust_sdk_properties.py", &["sq", "send", "python-session"]);

    let message: ServiceBusReceivedMessage = runtime().block_on(async {
        let client = client(&broker);
        let receiver = client
            .accept_session(
                "sq",
                "python-session",
                ServiceBusSessionReceiverOptions::default(),
            )
            .await
            .expect("accept the session");
        let mut messages = receiver
            .receive_messages(1, Some(Duration::from_secs(30)))
            .await
            .expect("receive");
        assert_eq!(messages.len(), 1, "the Python SDK's message");
        let message = messages.remove(0);
        receiver.complete_message(&message).await.expect("complete");
        receiver.close().await.expect("close");
        client.close().await;
        message
    });

    assert_eq!(message.body.as_ref(), b"from python");
    assert_eq!(message.message_id.as_deref(), Some("python-message-1"));
    assert_eq!(message.session_id.as_deref(), Some("python-session"));
    assert_eq!(message.partition_key.as_deref(), Some("python-session"));
    assert_eq!(
        message.correlation_id.as_deref(),
        Some("python-correlation")
    );
    assert_eq!(message.subject.as_deref(), Some("python-subject"));
    assert_eq!(message.to.as_deref(), Some("python-to"));
    assert_eq!(message.reply_to.as_deref(), Some("python-reply-to"));
    assert_eq!(
        message.reply_to_session_id.as_deref(),
        Some("python-reply-session")
    );
    assert_eq!(message.content_type.as_deref(), Some("application/json"));
    assert_eq!(message.time_to_live, Some(Duration::from_secs(90)));
    // 2020-01-02T03:04:05.678Z, as the script sets it.
    assert_eq!(
        message.scheduled_enqueue_time.map(millis),
        Some(1_577_934_245_678)
    );
    assert_eq!(message.sequence_number, 1);
    assert!(message.lock_token.is_some(), "peek-lock gives a lock token");

    let expected: BTreeMap<String, AmqpValue> = [
        ("string", AmqpValue::from("text")),
        ("small_int", AmqpValue::Int(7)),
        ("int", AmqpValue::Int(70_000)),
        ("negative_int", AmqpValue::Int(-70_000)),
        ("float", AmqpValue::Double(2.5)),
        ("true", AmqpValue::Bool(true)),
        ("false", AmqpValue::Bool(false)),
        ("uuid", AmqpValue::Uuid(*uuid_bytes())),
        // 2021-06-07T08:09:10.123Z
        (
            "datetime",
            AmqpValue::Timestamp(AmqpTimestamp(1_623_053_350_123)),
        ),
        ("none", AmqpValue::Null),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(message.application_properties, expected);
}
