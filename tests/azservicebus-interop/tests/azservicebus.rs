//! The community's `azservicebus` crate (0.25, AMQP on fe2o3-amqp) against a real busbar: send,
//! receive in both modes, every settlement, sessions, scheduling, peek and the rule manager.
//!
//! How it connects: with its `unsecured` feature, `ServiceBusClient::unsecured()` speaks plain
//! AMQP. The namespace is given as `host:port` to `new_from_named_key_credential`, because the
//! crate's connection-string parser keeps only the endpoint's host (`Endpoint=sb://h:5300` would
//! connect to h:5672) and `custom_endpoint_address` drops the port as well.
//!
//! Where the crate itself gets Service Bus wrong, the test says so at the spot it avoids.

use std::time::Duration;

use azservicebus::administration::{
    CorrelationRuleFilter, RuleAction, RuleFilter, SqlRuleAction, SqlRuleFilter,
};
use azservicebus::authorization::AzureNamedKeyCredential;
use azservicebus::core::BasicRetryPolicy;
use azservicebus::primitives::service_bus_retry_options::ServiceBusRetryOptions;
use azservicebus::receiver::DeadLetterOptions;
use azservicebus::{
    ServiceBusClient, ServiceBusClientOptions, ServiceBusMessage, ServiceBusMessageState,
    ServiceBusPeekedMessage, ServiceBusReceiveMode, ServiceBusReceivedMessage, ServiceBusReceiver,
    ServiceBusReceiverOptions, ServiceBusSessionReceiver, ServiceBusSessionReceiverOptions,
    SubQueue,
};
use busbar_interop::{Broker, DEFAULT_KEY, DEFAULT_KEY_NAME};
use fe2o3_amqp_types::messaging::ApplicationProperties;
use fe2o3_amqp_types::primitives::SimpleValue;
use time::OffsetDateTime;

const CONFIG: &str = r#"{
  "UserConfig": {
    "Namespaces": [{
      "Name": "sbemulatorns",
      "Queues": [
        {"Name": "work", "Properties": {"MaxDeliveryCount": 10}},
        {"Name": "sessions", "Properties": {"RequiresSession": true}}
      ],
      "Topics": [{
        "Name": "orders",
        "Properties": {},
        "Subscriptions": [{"Name": "picked", "Properties": {}}]
      }]
    }],
    "Logging": {"Type": "File"}
  }
}"#;

/// Long enough for a loaded machine, short enough that a receive which should find a message
/// and finds none fails the test instead of hanging it.
const RECEIVE_WAIT: Duration = Duration::from_secs(20);

type Client = ServiceBusClient<BasicRetryPolicy>;

async fn connect(broker: &Broker) -> Client {
    let options = ServiceBusClientOptions {
        retry_options: ServiceBusRetryOptions {
            max_retries: 1,
            try_timeout: RECEIVE_WAIT,
            ..Default::default()
        },
        ..Default::default()
    };
    ServiceBusClient::unsecured()
        .new_from_named_key_credential(
            format!("127.0.0.1:{}", broker.amqp_port()),
            AzureNamedKeyCredential::new(DEFAULT_KEY_NAME, DEFAULT_KEY),
            options,
        )
        .await
        .unwrap_or_else(|error| broker.fail(&format!("connect: {error:?}")))
}

fn message(body: &str) -> ServiceBusMessage {
    ServiceBusMessage::new(body.as_bytes().to_vec())
}

fn with_properties(
    mut message: ServiceBusMessage,
    properties: &[(&str, SimpleValue)],
) -> ServiceBusMessage {
    let mut builder = ApplicationProperties::builder();
    for (name, value) in properties {
        builder = builder.insert(*name, value.clone());
    }
    *message.application_properties_mut() = Some(builder.build());
    message
}

async fn send(client: &mut Client, entity: &str, messages: Vec<ServiceBusMessage>) {
    let mut sender = client
        .create_sender(entity, Default::default())
        .await
        .expect("sender");
    sender.send_messages(messages).await.expect("send");
    sender.dispose().await.expect("dispose sender");
}

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

fn body_of(received: &ServiceBusReceivedMessage) -> String {
    text(received.body().expect("a data-section body"))
}

fn peeked_bodies(peeked: &[ServiceBusPeekedMessage]) -> Vec<String> {
    peeked
        .iter()
        .map(|message| text(message.body().expect("a data-section body")))
        .collect()
}

fn receiver_options(
    receive_mode: ServiceBusReceiveMode,
    sub_queue: SubQueue,
) -> ServiceBusReceiverOptions {
    ServiceBusReceiverOptions {
        receive_mode,
        sub_queue,
        ..Default::default()
    }
}

async fn receive_one(receiver: &mut ServiceBusReceiver) -> ServiceBusReceivedMessage {
    receiver
        .receive_message_with_max_wait_time(RECEIVE_WAIT)
        .await
        .expect("receive")
        .expect("a message within the wait")
}

/// The bodies of everything peekable on `queue`, in sequence order, without locking any.
async fn peek_queue(client: &mut Client, queue: &str) -> Vec<String> {
    let mut receiver = client
        .create_receiver_for_queue(queue, Default::default())
        .await
        .expect("receiver for peek");
    let peeked = receiver.peek_messages(100, None).await.expect("peek");
    receiver.dispose().await.expect("dispose peek receiver");
    peeked_bodies(&peeked)
}

async fn accept_session(client: &mut Client, session: &str) -> ServiceBusSessionReceiver {
    client
        .accept_session_for_queue("sessions", session, Default::default())
        .await
        .unwrap_or_else(|error| panic!("accept session {session}: {error:?}"))
}

/// Receives and completes `count` messages of the receiver's session; their bodies in order.
async fn complete_session_messages(
    receiver: &mut ServiceBusSessionReceiver,
    count: usize,
) -> Vec<String> {
    let mut bodies = Vec::with_capacity(count);
    for _ in 0..count {
        let received = receiver
            .receive_message_with_max_wait_time(RECEIVE_WAIT)
            .await
            .expect("receive")
            .expect("a message of the session within the wait");
        assert_eq!(received.session_id(), Some(receiver.session_id()));
        bodies.push(body_of(&received));
        receiver
            .complete_message(&received)
            .await
            .expect("complete");
    }
    bodies
}

#[tokio::test]
async fn send_and_receive_in_both_modes_with_properties() {
    let broker = Broker::start(Some(CONFIG), &[]);
    let mut client = connect(&broker).await;
    let mut first = with_properties(
        message("first"),
        &[
            ("colour", SimpleValue::String("red".to_owned())),
            ("amount", SimpleValue::Long(42)),
        ],
    );
    first.set_message_id("m-1").expect("message id");
    first.set_subject("greeting".to_owned());
    first.set_correlation_id("c-1".to_owned());
    first.set_content_type("text/plain".to_owned());
    send(&mut client, "work", vec![first, message("second")]).await;

    let mut receiver = client
        .create_receiver_for_queue("work", Default::default())
        .await
        .expect("peek-lock receiver");
    let received = receive_one(&mut receiver).await;
    assert_eq!(body_of(&received), "first");
    assert_eq!(received.message_id().as_deref(), Some("m-1"));
    assert_eq!(received.subject(), Some("greeting"));
    assert_eq!(received.correlation_id().as_deref(), Some("c-1"));
    assert_eq!(received.content_type(), Some("text/plain"));
    let properties = received
        .application_properties()
        .expect("application properties");
    assert_eq!(
        properties.0.get("colour"),
        Some(&SimpleValue::String("red".to_owned()))
    );
    assert_eq!(properties.0.get("amount"), Some(&SimpleValue::Long(42)));
    // The crate counts from 1 (the AMQP header's delivery-count + 1), as the .NET SDK does.
    assert_eq!(received.delivery_count(), Some(1));
    assert!(received.sequence_number() > 0);
    assert!(received.locked_until().is_some(), "peek-lock sets a lock");
    receiver
        .complete_message(&received)
        .await
        .expect("complete");
    receiver
        .dispose()
        .await
        .expect("dispose peek-lock receiver");

    let mut receiver = client
        .create_receiver_for_queue(
            "work",
            receiver_options(ServiceBusReceiveMode::ReceiveAndDelete, SubQueue::None),
        )
        .await
        .expect("receive-and-delete receiver");
    let received = receive_one(&mut receiver).await;
    assert_eq!(body_of(&received), "second");
    receiver.dispose().await.expect("dispose receiver");

    assert_eq!(
        peek_queue(&mut client, "work").await,
        Vec::<String>::new(),
        "completed and received-and-deleted messages are gone"
    );
    client.dispose().await.expect("dispose client");
}

#[tokio::test]
async fn abandon_dead_letter_defer_and_receive_deferred() {
    let broker = Broker::start(Some(CONFIG), &[]);
    let mut client = connect(&broker).await;
    let bodies = ["abandoned", "dead", "deferred"];
    send(&mut client, "work", bodies.map(message).to_vec()).await;
    let mut receiver = client
        .create_receiver_for_queue("work", Default::default())
        .await
        .expect("receiver");

    let abandoned = receive_one(&mut receiver).await;
    assert_eq!(body_of(&abandoned), "abandoned");
    receiver
        .abandon_message(&abandoned, None)
        .await
        .expect("abandon");
    let again = receive_one(&mut receiver).await;
    assert_eq!(body_of(&again), "abandoned", "it comes back first");
    assert_eq!(again.delivery_count(), Some(2));
    receiver.complete_message(&again).await.expect("complete");

    let dead = receive_one(&mut receiver).await;
    assert_eq!(body_of(&dead), "dead");
    let reasons = DeadLetterOptions {
        dead_letter_reason: Some("poison".to_owned()),
        dead_letter_error_description: Some("cannot parse".to_owned()),
        properties_to_modify: None,
    };
    receiver
        .dead_letter_message(&dead, reasons)
        .await
        .expect("dead-letter");

    let mut deferred = receive_one(&mut receiver).await;
    assert_eq!(body_of(&deferred), "deferred");
    let locked_until = deferred.locked_until().expect("a lock");
    // Renewal names the lock token in a management request: the crate takes it from the
    // delivery's `x-opt-lock-token` annotation.
    receiver
        .renew_message_lock(&mut deferred)
        .await
        .expect("renew lock");
    assert!(deferred.locked_until().expect("a renewed lock") >= locked_until);
    receiver
        .defer_message(&deferred, None)
        .await
        .expect("defer");
    let fetched = receiver
        .receive_deferred_message(deferred.sequence_number())
        .await
        .expect("receive deferred")
        .expect("the deferred message by its sequence number");
    assert_eq!(body_of(&fetched), "deferred");
    assert_eq!(fetched.state(), ServiceBusMessageState::Deferred);
    receiver
        .complete_message(&fetched)
        .await
        .expect("complete deferred");
    receiver.dispose().await.expect("dispose receiver");

    let mut dead_letters = client
        .create_receiver_for_queue(
            "work",
            receiver_options(ServiceBusReceiveMode::PeekLock, SubQueue::DeadLetter),
        )
        .await
        .expect("dead-letter receiver");
    let dead_lettered = receive_one(&mut dead_letters).await;
    assert_eq!(body_of(&dead_lettered), "dead");
    assert_eq!(dead_lettered.dead_letter_reason(), Some("poison"));
    assert_eq!(
        dead_lettered.dead_letter_error_description(),
        Some("cannot parse")
    );
    dead_letters
        .complete_message(&dead_lettered)
        .await
        .expect("complete from the dead-letter queue");
    dead_letters.dispose().await.expect("dispose receiver");

    assert_eq!(peek_queue(&mut client, "work").await, Vec::<String>::new());
    client.dispose().await.expect("dispose client");
}

#[tokio::test]
async fn sessions_by_id_and_next_available_with_state() {
    let broker = Broker::start(Some(CONFIG), &[]);
    let mut client = connect(&broker).await;
    let mut messages = Vec::new();
    for (session, body) in [("alpha", "a1"), ("beta", "b1"), ("alpha", "a2")] {
        let mut message = message(body);
        message
            .set_session_id(session.to_owned())
            .expect("session id");
        messages.push(message);
    }
    send(&mut client, "sessions", messages).await;

    let mut alpha = accept_session(&mut client, "alpha").await;
    assert_eq!(alpha.session_id(), "alpha");
    assert_eq!(complete_session_messages(&mut alpha, 2).await, ["a1", "a2"]);
    // No get before the first set: for a session whose state was never set Busbar answers
    // `session-state: null`, which the Python and .NET SDKs turn into "no state", but the
    // crate decodes that field only as binary and fails with InvalidFormatCode.
    alpha
        .set_session_state(b"checkpoint-2".to_vec())
        .await
        .expect("set state");
    // `session_locked_until()` only means something after a renewal: the crate reads the
    // attach's `com.microsoft:locked-until-utc` as an AMQP timestamp, while Service Bus (and
    // Busbar) send a long of .NET ticks, so until then it answers its "not set" default.
    alpha
        .renew_session_lock()
        .await
        .expect("renew session lock");
    assert!(alpha.session_locked_until() > OffsetDateTime::now_utc());
    assert_eq!(
        alpha.session_state().await.expect("get state"),
        b"checkpoint-2"
    );
    alpha.dispose().await.expect("dispose alpha");

    let mut next = client
        .accept_next_session_for_queue("sessions", ServiceBusSessionReceiverOptions::default())
        .await
        .expect("accept next session");
    assert_eq!(next.session_id(), "beta", "alpha has no messages left");
    assert_eq!(complete_session_messages(&mut next, 1).await, ["b1"]);
    next.dispose().await.expect("dispose beta");

    let mut alpha = accept_session(&mut client, "alpha").await;
    assert_eq!(
        alpha.session_state().await.expect("state after reopening"),
        b"checkpoint-2",
        "session state outlives the receiver"
    );
    alpha.dispose().await.expect("dispose alpha");
    client.dispose().await.expect("dispose client");
}

#[tokio::test]
async fn schedule_cancel_and_peek() {
    let broker = Broker::start(Some(CONFIG), &[]);
    let mut client = connect(&broker).await;
    let mut sender = client
        .create_sender("work", Default::default())
        .await
        .expect("sender");
    sender.send_message(message("now")).await.expect("send");
    let in_an_hour = OffsetDateTime::now_utc() + time::Duration::hours(1);
    let kept = sender
        .schedule_message(message("later"), in_an_hour)
        .await
        .expect("schedule later");
    let cancelled = sender
        .schedule_message(message("cancelled"), in_an_hour)
        .await
        .expect("schedule cancelled");
    assert_ne!(kept, cancelled);
    sender
        .cancel_scheduled_message(cancelled)
        .await
        .expect("cancel");
    sender.dispose().await.expect("dispose sender");

    let mut receiver = client
        .create_receiver_for_queue("work", Default::default())
        .await
        .expect("receiver");
    let peeked = receiver.peek_messages(10, None).await.expect("peek");
    assert_eq!(
        peeked_bodies(&peeked),
        ["now", "later"],
        "the cancelled message is gone"
    );
    let states: Vec<ServiceBusMessageState> = peeked.iter().map(|m| m.state()).collect();
    assert_eq!(
        states,
        [
            ServiceBusMessageState::Active,
            ServiceBusMessageState::Scheduled
        ]
    );
    assert_eq!(peeked[1].sequence_number(), kept);
    assert_eq!(
        peeked[1].scheduled_enqueue_time().unix_timestamp(),
        in_an_hour.unix_timestamp()
    );

    let from_kept = receiver
        .peek_messages(10, Some(kept))
        .await
        .expect("peek from a sequence number");
    assert_eq!(peeked_bodies(&from_kept), ["later"]);

    // Peeking locks nothing: the active message is still there to receive, first delivery.
    let received = receive_one(&mut receiver).await;
    assert_eq!(body_of(&received), "now");
    assert_eq!(received.delivery_count(), Some(1));
    receiver
        .complete_message(&received)
        .await
        .expect("complete");
    receiver.dispose().await.expect("dispose receiver");
    client.dispose().await.expect("dispose client");
}

#[tokio::test]
async fn rule_manager_adds_lists_and_removes_rules_that_routing_follows() {
    let broker = Broker::start(Some(CONFIG), &[]);
    let mut client = connect(&broker).await;
    let mut rules = client
        .create_rule_manager("orders", "picked")
        .await
        .expect("rule manager");
    let names = |listed: &[azservicebus::administration::RuleProperties]| {
        let mut names: Vec<String> = listed.iter().map(|rule| rule.name.clone()).collect();
        names.sort();
        names
    };
    assert_eq!(names(&rules.get_rules().await.expect("list")), ["$Default"]);
    rules
        .delete_rule("$Default")
        .await
        .expect("remove $Default");
    let big = (
        SqlRuleFilter::new("amount > 100"),
        SqlRuleAction::new("SET tier = 'gold'"),
    );
    rules
        .create_rule("big", big)
        .await
        .expect("add SQL rule with an action");
    rules
        .create_rule(
            "urgent",
            CorrelationRuleFilter::builder().subject("urgent").build(),
        )
        .await
        .expect("add correlation rule");

    let listed = rules.get_rules().await.expect("list");
    assert_eq!(names(&listed), ["big", "urgent"]);
    for rule in &listed {
        match (rule.name.as_str(), &rule.filters, &rule.actions) {
            ("big", RuleFilter::Sql(filter), RuleAction::Sql(action)) => {
                assert_eq!(filter.expression, "amount > 100");
                assert_eq!(action.expression, "SET tier = 'gold'");
            }
            ("urgent", RuleFilter::Correlation(filter), RuleAction::Empty(_)) => {
                assert_eq!(filter.subject.as_deref(), Some("urgent"));
            }
            _ => panic!("unexpected rule {rule:?}"),
        }
    }

    let order = |body: &str, amount: i64, subject: &str| {
        let mut order = with_properties(message(body), &[("amount", SimpleValue::Long(amount))]);
        order.set_subject(subject.to_owned());
        order
    };
    send(
        &mut client,
        "orders",
        vec![
            order("small", 5, "normal"),
            order("big", 500, "normal"),
            order("small-urgent", 5, "urgent"),
        ],
    )
    .await;
    rules.delete_rule("urgent").await.expect("remove urgent");
    assert_eq!(names(&rules.get_rules().await.expect("list")), ["big"]);
    send(
        &mut client,
        "orders",
        vec![order("urgent-after", 5, "urgent")],
    )
    .await;
    rules.dispose().await.expect("dispose rule manager");

    let mut receiver = client
        .create_receiver_for_subscription(
            "orders",
            "picked",
            receiver_options(ServiceBusReceiveMode::ReceiveAndDelete, SubQueue::None),
        )
        .await
        .expect("subscription receiver");
    let peeked = receiver.peek_messages(10, None).await.expect("peek");
    assert_eq!(
        peeked_bodies(&peeked),
        ["big", "small-urgent"],
        "only what the rules select reaches the subscription"
    );
    let received = receive_one(&mut receiver).await;
    assert_eq!(body_of(&received), "big");
    let properties = received
        .application_properties()
        .expect("application properties");
    assert_eq!(
        properties.0.get("tier"),
        Some(&SimpleValue::String("gold".to_owned())),
        "the rule's action ran"
    );
    receiver.dispose().await.expect("dispose receiver");
    client.dispose().await.expect("dispose client");
}
