//! What one side writes the other reads back unchanged: a client's requests as the broker
//! reads them, the broker's answers as a client reads them.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use busbar_atom::read::{self, Description};
use busbar_atom::write::{self, Context};
use busbar_atom::*;

fn context() -> Context {
    Context {
        host: "localhost:5672".to_owned(),
        namespace: "busbar".to_owned(),
        now_ms: 1_700_000_000_000,
    }
}

fn runtime() -> Runtime {
    Runtime {
        counts: MessageCounts {
            active: 3,
            dead_letter: 2,
            scheduled: 1,
            transfer: 0,
            transfer_dead_letter: 4,
        },
        size_in_bytes: 4096,
        created_at_ms: 1_600_000_000_123,
        updated_at_ms: 1_600_000_001_456,
        accessed_at_ms: None,
    }
}

#[test]
fn a_queue_request_reads_back_as_its_settings_without_reports() {
    let settings = QueueSettings {
        lock_duration: Duration::from_secs(45),
        max_delivery_count: 3,
        requires_session: true,
        default_message_time_to_live: Some(Duration::from_millis(90_500)),
        status: EntityStatus::SendDisabled,
        forward_dead_lettered_messages_to: Some("dlq-sink".to_owned()),
        user_metadata: Some("<a & b>".to_owned()),
        ..QueueSettings::default()
    };
    let body = write::queue_request(&context(), &settings);
    assert!(
        !body.contains("CountDetails") && !body.contains("CreatedAt"),
        "{body}"
    );
    let Description::Queue(read) = read::description(&body).unwrap() else {
        panic!("not a queue: {body}");
    };
    // The broker reads the target back from the URL the client wrote.
    assert_eq!(
        read.forward_dead_lettered_messages_to.as_deref(),
        Some("sb://localhost:5672/dlq-sink")
    );
    assert_eq!(
        read,
        QueueSettings {
            forward_dead_lettered_messages_to: read.forward_dead_lettered_messages_to.clone(),
            ..settings
        }
    );
}

#[test]
fn a_url_forward_target_is_written_as_it_is() {
    let settings = SubscriptionSettings {
        forward_to: Some("sb://localhost:5672/q2".to_owned()),
        ..SubscriptionSettings::default()
    };
    let body = write::subscription_request(&context(), &settings);
    assert!(
        body.contains("<ForwardTo>sb://localhost:5672/q2</ForwardTo>"),
        "{body}"
    );
}

#[test]
fn answers_read_back_with_their_runtime_and_next_page() {
    let queue = QueueView {
        name: "orders".to_owned(),
        settings: QueueSettings {
            max_delivery_count: 7,
            ..QueueSettings::default()
        },
        runtime: runtime(),
    };
    let entry = write::Entry {
        path: "/orders".to_owned(),
        title: "orders".to_owned(),
        published_ms: 0,
        updated_ms: 0,
        content: write::queue_description(&context(), &queue),
    };
    let feed = write::feed(
        &context(),
        "Queues",
        "/$Resources/queues?$skip=0&$top=1",
        Some("/$Resources/queues?$skip=1&$top=1"),
        &[entry],
    );
    let answer = read::answer(&feed).unwrap();
    assert_eq!(
        answer.next.as_deref(),
        Some("https://localhost:5672/$Resources/queues?$skip=1&$top=1")
    );
    let [entity] = answer.entities.as_slice() else {
        panic!("{answer:?}");
    };
    assert_eq!(entity.title, "orders");
    assert_eq!(entity.runtime, queue.runtime);
    assert_eq!(entity.description, Description::Queue(queue.settings));
}

#[test]
fn a_topic_answer_carries_its_subscription_count_and_a_rule_its_creation() {
    let topic = TopicView {
        name: "t".to_owned(),
        settings: TopicSettings::default(),
        runtime: runtime(),
        subscription_count: 5,
    };
    let entry = write::Entry {
        path: "/t".to_owned(),
        title: "t".to_owned(),
        published_ms: 0,
        updated_ms: 0,
        content: write::topic_description(&topic),
    };
    let answer = read::answer(&write::entry_document(&context(), &entry)).unwrap();
    assert_eq!(answer.entities[0].subscription_count, 5);
    assert_eq!(answer.next, None);

    let rule = RuleView {
        name: "big".to_owned(),
        rule: Rule {
            filter: RuleFilter::Sql {
                expression: "size > @min".to_owned(),
                parameters: vec![("@min".to_owned(), TypedValue::Long(10))],
            },
            action: RuleAction::Sql {
                expression: "SET sys.label = 'big'".to_owned(),
                parameters: vec![],
            },
        },
        created_at_ms: 1_600_000_000_000,
    };
    let request = write::rule_request(&rule.name, &rule.rule);
    assert_eq!(
        read::description(&request).unwrap(),
        Description::Rule(rule.rule.clone())
    );
    let entry = write::Entry {
        path: "/t/subscriptions/s/rules/big".to_owned(),
        title: "big".to_owned(),
        published_ms: 0,
        updated_ms: 0,
        content: write::rule_description(&rule),
    };
    let answer = read::answer(&write::entry_document(&context(), &entry)).unwrap();
    assert_eq!(answer.entities[0].runtime.created_at_ms, rule.created_at_ms);
    assert_eq!(answer.entities[0].description, Description::Rule(rule.rule));
}

#[test]
fn the_empty_feed_errors_and_the_namespace_read_back() {
    let empty = write::empty_feed(&context(), "/missing");
    assert_eq!(read::answer(&empty).unwrap().entities, vec![]);
    assert_eq!(
        read::error_detail(&write::error(409, "SubCode=40900. Conflict. <x>")).as_deref(),
        Some("SubCode=40900. Conflict. <x>")
    );
    assert_eq!(read::error_detail("not xml"), None);
    let namespace = NamespaceView {
        name: "busbar".to_owned(),
        created_at_ms: 1_600_000_000_000,
        modified_at_ms: 1_600_000_000_001,
    };
    let entry = write::Entry {
        path: "/$namespaceinfo".to_owned(),
        title: "busbar".to_owned(),
        published_ms: 0,
        updated_ms: 0,
        content: write::namespace_description(&namespace),
    };
    assert_eq!(
        read::namespace(&write::entry_document(&context(), &entry)).unwrap(),
        namespace
    );
}
