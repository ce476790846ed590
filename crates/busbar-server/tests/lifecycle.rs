//! Entities managed at run time, against a real log store in a temporary directory:
//! created, updated, listed and deleted through the broker's API, durable across a reopen
//! of the store, coexisting with the configuration file, and deleting an entity deletes
//! its messages and gives their segments back, and the bodies all queues keep in memory
//! stay within one shared budget.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use busbar_core::namespace::{FilterDescription, RuleDescription};
use busbar_core::topic::TopicConfig;
use busbar_core::{EntityStatus, NewMessage, QueueConfig, SubQueueKind, SystemClock};
use busbar_server::broker::{Broker, EntityError};
use busbar_server::config::{
    BrokerConfig, QueueDefinition, QueueProperties, SubscriptionDefinition, SubscriptionProperties,
    TopicDefinition,
};
use busbar_store::log::{LogOptions, LogStore};
use busbar_store::{Recovered, Store};
use bytes::Bytes;

/// Small segments, so a few messages fill several.
const SEGMENT_BYTES: u64 = 16 * 1024;

fn open_store(dir: &Path) -> (Arc<LogStore>, Recovered) {
    let (store, recovered) = LogStore::open(
        dir,
        LogOptions {
            segment_bytes: SEGMENT_BYTES,
            ..LogOptions::default()
        },
    )
    .unwrap();
    (Arc::new(store), recovered)
}

fn open_with(dir: &Path, config: &BrokerConfig) -> Broker<LogStore> {
    let (store, recovered) = open_store(dir);
    Broker::open(store, recovered, config, Vec::new(), Arc::new(SystemClock)).unwrap()
}

fn open(dir: &Path) -> Broker<LogStore> {
    open_with(dir, &BrokerConfig::default())
}

fn close(broker: Broker<LogStore>) {
    broker.store.close().unwrap();
}

fn segment_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|e| e == "log")
        })
        .count()
}

fn message(size: usize, id: Option<&str>) -> NewMessage {
    NewMessage {
        body: Bytes::from(vec![b'x'; size]),
        message_id: id.map(Into::into),
        ..NewMessage::default()
    }
}

/// Stores `batch` in queue (or subscription) `name`, durably.
async fn enqueue(broker: &Broker<LogStore>, name: &str, batch: Vec<NewMessage>) {
    let entity = broker.entity(name).unwrap();
    let mut journal = broker.journal();
    entity
        .lock()
        .queue
        .enqueue(batch, broker.now_ms(), &mut journal)
        .unwrap();
    journal.into_commit().unwrap().await.unwrap();
}

/// Fills `name` with messages of every kind a queue keeps: active ones (many, over
/// several segments), a scheduled one, a dead-lettered one, a duplicate marker per id.
async fn fill(broker: &Broker<LogStore>, name: &str) {
    for round in 0..8 {
        let batch = (0..8)
            .map(|n| message(2000, Some(&format!("{round}-{n}"))))
            .collect();
        enqueue(broker, name, batch).await;
    }
    let later = NewMessage {
        scheduled_at_ms: Some(broker.now_ms() + 3_600_000),
        ..message(100, None)
    };
    enqueue(broker, name, vec![later]).await;
    let entity = broker.entity(name).unwrap();
    let mut journal = broker.journal();
    entity
        .lock()
        .queue
        .dead_letter_new(
            SubQueueKind::DeadLetter,
            [message(100, None)],
            broker.now_ms(),
            "test",
            "test",
            &mut journal,
        )
        .unwrap();
    journal.into_commit().unwrap().await.unwrap();
}

fn with_duplicate_detection() -> QueueConfig {
    QueueConfig {
        requires_duplicate_detection: true,
        ..QueueConfig::default()
    }
}

#[tokio::test]
async fn queues_are_created_updated_listed_and_deleted_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let namespace_created = broker.namespace_created_at_ms();
    assert!(namespace_created > 0);
    let config = QueueConfig {
        lock_duration_ms: 45_000,
        max_delivery_count: 7,
        user_metadata: Some("kept & <escaped>".into()),
        status: EntityStatus::SendDisabled,
        auto_delete_on_idle_ms: Some(7_200_000),
        max_message_size_kb: 1024,
        ..QueueConfig::default()
    };
    broker.create_queue("orders", config.clone()).unwrap();
    broker
        .create_queue("emails", QueueConfig::default())
        .unwrap();
    assert!(matches!(
        broker.create_queue("ORDERS", QueueConfig::default()),
        Err(EntityError::AlreadyExists(_))
    ));
    let names: Vec<_> = broker.list_queues().into_iter().map(|q| q.name).collect();
    assert_eq!(names, ["emails", "orders"]);
    let got = broker.get_queue("Orders").unwrap();
    assert_eq!(got.config, config);
    assert!(got.times.created_at_ms > 0);
    assert_eq!(got.times.created_at_ms, got.times.updated_at_ms);
    assert_eq!(
        broker.entity("orders").unwrap().status(),
        EntityStatus::SendDisabled
    );

    let changed = QueueConfig {
        max_delivery_count: 3,
        status: EntityStatus::Active,
        ..config.clone()
    };
    broker.update_queue("orders", changed.clone()).unwrap();
    assert_eq!(
        broker.entity("orders").unwrap().status(),
        EntityStatus::Active
    );
    broker.delete_queue("emails").await.unwrap();
    assert!(matches!(
        broker.delete_queue("emails").await,
        Err(EntityError::NotFound(_))
    ));
    close(broker);

    let broker = open(dir.path());
    assert_eq!(broker.namespace_created_at_ms(), namespace_created);
    let names: Vec<_> = broker.list_queues().into_iter().map(|q| q.name).collect();
    assert_eq!(names, ["orders"]);
    let got = broker.get_queue("orders").unwrap();
    assert_eq!(got.config, changed);
    assert!(got.times.updated_at_ms >= got.times.created_at_ms);
    assert!(matches!(
        broker.get_queue("emails"),
        Err(EntityError::NotFound(_))
    ));
    close(broker);
}

#[tokio::test]
async fn invalid_values_and_immutable_properties_are_refused_in_service_bus_words() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let long_lock = QueueConfig {
        lock_duration_ms: 10 * 60 * 1000,
        ..QueueConfig::default()
    };
    let error = broker.create_queue("q", long_lock).unwrap_err();
    assert!(matches!(error, EntityError::Invalid(_)));
    assert_eq!(
        error.to_string(),
        "The supplied lock time exceeds the allowed maximum of '5' minutes."
    );
    assert!(matches!(
        broker.create_queue("bad name", QueueConfig::default()),
        Err(EntityError::Invalid(_))
    ));
    broker.create_queue("q", QueueConfig::default()).unwrap();
    let sessions = QueueConfig {
        requires_session: true,
        ..QueueConfig::default()
    };
    let error = broker.update_queue("q", sessions).unwrap_err();
    assert_eq!(
        error.to_string(),
        "The value for the RequiresSession property of an existing Queue cannot be changed."
    );
    assert!(matches!(
        broker.update_queue("q", with_duplicate_detection()),
        Err(EntityError::Immutable {
            property: "RequiresDuplicateDetection",
            ..
        })
    ));
    assert!(matches!(
        broker.update_queue("missing", QueueConfig::default()),
        Err(EntityError::NotFound(_))
    ));
    let forward_missing = QueueConfig {
        forward_to: Some("nowhere".into()),
        ..QueueConfig::default()
    };
    assert!(matches!(
        broker.create_queue("f", forward_missing),
        Err(EntityError::Invalid(_))
    ));
    let forward = QueueConfig {
        forward_to: Some("sb://localhost:5672/Q".into()),
        ..QueueConfig::default()
    };
    broker.create_queue("f", forward).unwrap();
    assert_eq!(
        broker.get_queue("f").unwrap().config.forward_to.as_deref(),
        Some("q")
    );
    // A topic shares the queues' name space.
    assert!(matches!(
        broker.create_topic("Q", TopicConfig::default()),
        Err(EntityError::AlreadyExists(_))
    ));
    close(broker);
}

#[tokio::test]
async fn topics_subscriptions_and_rules_are_managed_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let topic_config = TopicConfig {
        user_metadata: Some("tm".into()),
        support_ordering: false,
        ..TopicConfig::default()
    };
    broker.create_topic("events", topic_config.clone()).unwrap();
    assert!(matches!(
        broker.create_queue("EVENTS", QueueConfig::default()),
        Err(EntityError::AlreadyExists(_))
    ));
    broker
        .create_subscription("events", "all", QueueConfig::default(), None)
        .unwrap();
    let only_red = RuleDescription {
        name: "red".into(),
        filter: FilterDescription::Sql("color = 'red'".into()),
        action: None,
    };
    broker
        .create_subscription(
            "events",
            "red",
            QueueConfig::default(),
            Some(only_red.clone()),
        )
        .unwrap();
    assert!(matches!(
        broker.create_subscription("missing", "s", QueueConfig::default(), None),
        Err(EntityError::NotFound(_))
    ));
    assert_eq!(
        broker.list_rules("events", "all").unwrap(),
        vec![RuleDescription::default_rule()]
    );
    assert_eq!(broker.list_rules("events", "red").unwrap(), vec![only_red]);
    let big = RuleDescription {
        name: "big".into(),
        filter: FilterDescription::Sql("amount > 10".into()),
        action: Some("SET big = TRUE".into()),
    };
    broker.create_rule("events", "all", big.clone()).unwrap();
    assert!(matches!(
        broker.create_rule("events", "all", big.clone()),
        Err(EntityError::AlreadyExists(_))
    ));
    let bigger = RuleDescription {
        filter: FilterDescription::Sql("amount > 100".into()),
        ..big.clone()
    };
    broker.update_rule("events", "all", bigger.clone()).unwrap();
    broker.delete_rule("events", "all", "$Default").unwrap();
    assert!(matches!(
        broker.delete_rule("events", "all", "$Default"),
        Err(EntityError::NotFound(_))
    ));
    let subscription_config = QueueConfig {
        max_delivery_count: 9,
        dead_lettering_on_filter_evaluation_exceptions: false,
        ..QueueConfig::default()
    };
    broker
        .update_subscription("events", "all", subscription_config.clone())
        .unwrap();
    // Subscriptions are not queues.
    assert!(matches!(
        broker.get_queue("events/Subscriptions/all"),
        Err(EntityError::NotFound(_))
    ));
    assert!(broker.list_queues().is_empty());
    close(broker);

    let broker = open(dir.path());
    let topic = broker.get_topic("events").unwrap();
    assert_eq!(topic.config, topic_config);
    assert_eq!(topic.subscription_count, 2);
    let subscriptions: Vec<_> = broker
        .list_subscriptions("events")
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(subscriptions, ["all", "red"]);
    assert_eq!(
        broker.get_subscription("events", "all").unwrap().config,
        subscription_config
    );
    assert_eq!(broker.list_rules("events", "all").unwrap(), vec![bigger]);
    broker.delete_subscription("events", "red").await.unwrap();
    assert!(matches!(
        broker.get_subscription("events", "red"),
        Err(EntityError::NotFound(_))
    ));
    broker.delete_topic("events").await.unwrap();
    assert!(broker.list_topics().is_empty());
    assert!(broker.entity("events/Subscriptions/all").is_none());
    close(broker);

    let broker = open(dir.path());
    assert!(broker.list_topics().is_empty());
    // The name is free again, for a queue too.
    broker
        .create_queue("events", QueueConfig::default())
        .unwrap();
    close(broker);
}

#[tokio::test]
async fn deleting_a_queue_deletes_its_messages_and_gives_their_segments_back() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    broker
        .create_queue("doomed", with_duplicate_detection())
        .unwrap();
    broker.create_queue("kept", QueueConfig::default()).unwrap();
    fill(&broker, "doomed").await;
    let counts = broker.get_queue("doomed").unwrap().counts;
    assert_eq!(
        (counts.active, counts.scheduled, counts.dead_letter),
        (64, 1, 1)
    );
    assert!(counts.size_bytes > 64 * 2000);
    let before = segment_count(dir.path());
    assert!(before > 4, "{before} segments");

    broker.delete_queue("doomed").await.unwrap();
    // The writer reclaims after the group that made the removals durable.
    enqueue(&broker, "kept", vec![message(10, None)]).await;
    let after = segment_count(dir.path());
    assert!(
        after <= 2,
        "{before} segments before the delete, {after} after"
    );
    close(broker);

    let (store, recovered) = open_store(dir.path());
    assert_eq!(
        recovered.messages.len(),
        1,
        "only the message of 'kept' is left"
    );
    store.close().unwrap();
}

#[tokio::test]
async fn deleting_a_topic_deletes_its_subscriptions_messages() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    broker.create_topic("t", TopicConfig::default()).unwrap();
    broker
        .create_subscription("t", "s", with_duplicate_detection(), None)
        .unwrap();
    fill(&broker, "t/Subscriptions/s").await;
    broker.delete_topic("t").await.unwrap();
    close(broker);
    let (store, recovered) = open_store(dir.path());
    assert!(
        recovered.messages.is_empty(),
        "{:?}",
        recovered.messages.len()
    );
    store.close().unwrap();
}

#[tokio::test]
async fn messages_of_entities_gone_from_the_catalog_are_removed_at_open() {
    // A crash after the catalog without the queue was saved, before the removal of its
    // messages was durable: the next open removes them.
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    assert!(broker.list_queues().is_empty());
    let empty_catalog = std::fs::read(dir.path().join("catalog.json")).unwrap();
    broker
        .create_queue("doomed", QueueConfig::default())
        .unwrap();
    fill(&broker, "doomed").await;
    broker.store.save_catalog(&empty_catalog).unwrap();
    close(broker);

    let broker = open(dir.path());
    assert!(broker.list_queues().is_empty());
    close(broker);
    let (store, recovered) = open_store(dir.path());
    assert!(
        recovered.messages.is_empty(),
        "{}",
        recovered.messages.len()
    );
    store.close().unwrap();
}

#[tokio::test]
async fn configured_entities_coexist_with_run_time_ones() {
    let dir = tempfile::tempdir().unwrap();
    let file = BrokerConfig {
        queues: vec![QueueDefinition {
            name: "configured".into(),
            properties: QueueProperties {
                status: EntityStatus::ReceiveDisabled,
                ..QueueProperties::default()
            },
        }],
        topics: vec![TopicDefinition {
            name: "t".into(),
            properties: TopicConfig::default(),
            subscriptions: vec![SubscriptionDefinition {
                name: "s".into(),
                properties: SubscriptionProperties {
                    status: EntityStatus::Disabled,
                    ..SubscriptionProperties::default()
                },
                rules: Vec::new(),
            }],
        }],
        ..BrokerConfig::default()
    };
    let broker = open_with(dir.path(), &file);
    assert_eq!(
        broker.get_queue("configured").unwrap().config.status,
        EntityStatus::ReceiveDisabled
    );
    assert_eq!(
        broker.entity("t/Subscriptions/s").unwrap().status(),
        EntityStatus::Disabled
    );
    broker
        .create_queue("runtime", QueueConfig::default())
        .unwrap();
    let metadata = QueueConfig {
        user_metadata: Some("set at run time".into()),
        status: EntityStatus::ReceiveDisabled,
        ..QueueConfig::default()
    };
    broker.update_queue("configured", metadata).unwrap();
    broker
        .create_subscription("t", "extra", QueueConfig::default(), None)
        .unwrap();
    close(broker);

    // The file does not list them: they stay. It lists `configured`: its settings apply,
    // and what the file can't say stays as set at run time.
    let broker = open_with(dir.path(), &file);
    let names: Vec<_> = broker.list_queues().into_iter().map(|q| q.name).collect();
    assert_eq!(names, ["configured", "runtime"]);
    assert_eq!(
        broker
            .get_queue("configured")
            .unwrap()
            .config
            .user_metadata
            .as_deref(),
        Some("set at run time")
    );
    assert_eq!(broker.get_topic("t").unwrap().subscription_count, 2);
    close(broker);
}

#[tokio::test]
async fn bodies_kept_in_memory_are_bounded_over_all_queues_and_given_back_when_deleted() {
    const BODY: usize = 1024;
    const LIMIT: u64 = 16 * BODY as u64;
    let dir = tempfile::tempdir().unwrap();
    let mut config = BrokerConfig::default();
    config.limits.max_resident_body_bytes = LIMIT;
    let broker = open_with(dir.path(), &config);
    // 40 queues of 10 messages: each queue alone is far under its own resident budget.
    let names: Vec<String> = (0..40).map(|i| format!("q{i}")).collect();
    for name in &names {
        broker.create_queue(name, QueueConfig::default()).unwrap();
        enqueue(
            &broker,
            name,
            (0..10).map(|_| message(BODY, None)).collect(),
        )
        .await;
    }
    let resident = broker.metrics().broker.resident_body_bytes;
    assert_eq!(resident, LIMIT, "400 KiB of bodies spread over 40 queues");

    // Those not resident are read back from the store, whole.
    let entity = broker.entity("q39").unwrap();
    let mut journal = broker.journal();
    let delivery = entity
        .lock()
        .queue
        .next_for_delivery(
            SubQueueKind::Main,
            busbar_core::ReceiveMode::PeekLock,
            busbar_core::ConsumerId(1),
            broker.now_ms(),
            &mut journal,
        )
        .unwrap()
        .unwrap();
    drop(journal);
    assert!(
        delivery.body.is_none(),
        "q39's bodies came after the budget was spent"
    );
    assert_eq!(
        broker.store.read_body(delivery.body_ref).unwrap().len(),
        BODY
    );

    for name in &names {
        broker.delete_queue(name).await.unwrap();
    }
    assert_eq!(broker.metrics().broker.resident_body_bytes, 0);
    close(broker);
}
