//! The rule manager's SQL parameters against a broker in the test process: a rule
//! `sys.label = @subject` with its parameter selects what it says.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use busbar_client::ServiceBusReceiverOptions;
use busbar_client::servicebus::ServiceBusMessage;
use busbar_client::servicebus::admin::{RuleAction, RuleFilter, TypedValue};
use common::Broker;

#[tokio::test]
async fn a_rule_with_a_parameter_selects_what_the_parameter_says() {
    let broker = Broker::start().await;
    let client = broker.client();
    let rules = client.create_rule_manager("t", "s1");
    rules
        .delete_rule("$Default")
        .await
        .expect("remove $Default");
    rules
        .create_rule(
            "by-subject",
            RuleFilter::Sql {
                expression: "sys.label = @subject".to_owned(),
                parameters: vec![("@subject".to_owned(), TypedValue::String("wanted".into()))],
            },
            RuleAction::Sql {
                expression: "SET tag = @tag".to_owned(),
                parameters: vec![("@tag".to_owned(), TypedValue::Int(7))],
            },
        )
        .await
        .expect("a rule with parameters");
    let listed = rules.get_rules().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].filter,
        RuleFilter::Sql {
            expression: "sys.label = 'wanted'".to_owned(),
            parameters: vec![],
        }
    );

    let sender = client.create_sender("t");
    for (id, subject) in [("m1", "wanted"), ("m2", "other"), ("m3", "wanted")] {
        let message = ServiceBusMessage::new(id)
            .with_message_id(id)
            .with_subject(subject);
        sender.send_message(message).await.expect("send");
    }
    let receiver =
        client.create_receiver_for_subscription("t", "s1", ServiceBusReceiverOptions::default());
    let mut received = Vec::new();
    while received.len() < 2 {
        let batch = receiver
            .receive_messages(10, Some(Duration::from_secs(5)))
            .await
            .expect("receive");
        assert!(!batch.is_empty(), "got only {received:?}");
        for message in batch {
            receiver.complete_message(&message).await.expect("complete");
            let tag = message.application_properties.get("tag").cloned();
            received.push((message.message_id.clone().unwrap_or_default(), tag));
        }
    }
    assert_eq!(
        received,
        [
            ("m1".to_owned(), Some(busbar_client::AmqpValue::Long(7))),
            ("m3".to_owned(), Some(busbar_client::AmqpValue::Long(7))),
        ]
    );
    let rest = receiver.peek_messages(10, None).await.expect("peek");
    assert!(rest.is_empty(), "m2 reached the subscription");
}
