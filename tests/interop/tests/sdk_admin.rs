//! The Rust SDK's `ServiceBusAdministrationClient` against a broker process: every
//! operation on queues, topics, subscriptions, rules and the namespace, the errors the
//! service answers (exists, not found, bad values, bad credentials), paging, runtime counts
//! after sends, and both of Busbar's HTTP schemes on its AMQP port.

mod sdk_messages;

use std::time::{Duration, UNIX_EPOCH};

use busbar_client::servicebus::admin::*;
use busbar_client::servicebus::{ErrorKind, RetryMode, RetryOptions, ServiceBusResult as Result};
use busbar_interop::Broker;
use sdk_messages::{Outgoing, labelled, receive, send};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Plain HTTP to the AMQP port (`UseDevelopmentEmulator=true`, no CA).
fn client(broker: &Broker) -> ServiceBusAdministrationClient {
    ServiceBusAdministrationClient::from_connection_string(
        &broker.conn_str(),
        AdministrationClientOptions::default(),
    )
    .expect("client")
}

fn sql(expression: &str) -> RuleFilter {
    RuleFilter::Sql {
        expression: expression.to_owned(),
        parameters: vec![],
    }
}

fn kind<T: std::fmt::Debug>(result: Result<T>) -> ErrorKind {
    match result {
        Ok(value) => panic!("expected an error, got {value:?}"),
        Err(error) => error.kind,
    }
}

#[test]
fn queues_are_created_read_updated_listed_and_deleted_with_the_services_errors() {
    let broker = Broker::start(None, &[]);
    runtime().block_on(async {
        let admin = client(&broker);
        let created = admin
            .create_queue(
                "orders",
                &QueueSettings {
                    max_delivery_count: 4,
                    lock_duration: Duration::from_secs(45),
                    user_metadata: Some("<kept & escaped>".to_owned()),
                    ..QueueSettings::default()
                },
            )
            .await
            .expect("create");
        assert_eq!(created.name, "orders");
        assert_eq!(created.settings.max_delivery_count, 4);
        assert_eq!(created.settings.lock_duration, Duration::from_secs(45));
        assert_eq!(
            created.settings.user_metadata.as_deref(),
            Some("<kept & escaped>")
        );

        let mut queue = admin.get_queue("orders").await.expect("get");
        assert_eq!(queue, created);
        assert!(admin.queue_exists("orders").await.expect("exists"));
        assert!(!admin.queue_exists("nothing").await.expect("exists"));

        queue.settings.max_delivery_count = 9;
        queue.settings.status = EntityStatus::SendDisabled;
        let updated = admin.update_queue(&queue).await.expect("update");
        assert_eq!(updated.settings.max_delivery_count, 9);
        assert_eq!(
            admin
                .get_queue("orders")
                .await
                .expect("get")
                .settings
                .status,
            EntityStatus::SendDisabled
        );

        // The service's refusals, each as its kind.
        assert_eq!(
            kind(
                admin
                    .create_queue("orders", &QueueSettings::default())
                    .await
            ),
            ErrorKind::MessagingEntityAlreadyExists
        );
        assert_eq!(
            kind(
                admin
                    .create_topic("orders", &TopicSettings::default())
                    .await
            ),
            ErrorKind::MessagingEntityAlreadyExists
        );
        assert_eq!(
            kind(admin.get_queue("nothing").await),
            ErrorKind::MessagingEntityNotFound
        );
        assert_eq!(
            kind(admin.get_queue_runtime_properties("nothing").await),
            ErrorKind::MessagingEntityNotFound
        );
        assert_eq!(
            kind(
                admin
                    .update_queue(&QueueProperties {
                        name: "nothing".to_owned(),
                        settings: QueueSettings::default(),
                    })
                    .await
            ),
            ErrorKind::MessagingEntityNotFound
        );
        let too_long_a_lock = QueueSettings {
            lock_duration: Duration::from_secs(600),
            ..QueueSettings::default()
        };
        let refused = admin
            .create_queue("long-lock", &too_long_a_lock)
            .await
            .expect_err("a 10 minute lock");
        assert_eq!(refused.kind, ErrorKind::InvalidArgument);
        assert!(refused.message.contains("lock"), "{refused}");
        queue.settings.requires_session = true;
        assert_eq!(
            kind(admin.update_queue(&queue).await),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            kind(
                admin
                    .create_queue("bad?name", &QueueSettings::default())
                    .await
            ),
            ErrorKind::InvalidArgument
        );

        // Forwarding targets read back as the service writes them (`sb://` URLs) and go
        // back unchanged in an update.
        admin
            .create_queue("sink", &QueueSettings::default())
            .await
            .expect("sink");
        let source = admin
            .create_queue(
                "source",
                &QueueSettings {
                    forward_to: Some("sink".to_owned()),
                    ..QueueSettings::default()
                },
            )
            .await
            .expect("forwarding queue");
        let sink_url = format!("sb://127.0.0.1:{}/sink", broker.amqp_port());
        assert_eq!(
            source.settings.forward_to.as_deref(),
            Some(sink_url.as_str())
        );
        let mut source = admin.get_queue("source").await.expect("get");
        source.settings.max_delivery_count = 3;
        let source = admin.update_queue(&source).await.expect("update");
        assert_eq!(
            source.settings.forward_to.as_deref(),
            Some(sink_url.as_str())
        );
        assert_eq!(
            kind(
                admin
                    .create_queue(
                        "to-nowhere",
                        &QueueSettings {
                            forward_to: Some("missing".to_owned()),
                            ..QueueSettings::default()
                        },
                    )
                    .await
            ),
            ErrorKind::InvalidArgument
        );

        admin.delete_queue("orders").await.expect("delete");
        assert!(!admin.queue_exists("orders").await.expect("exists"));
        assert_eq!(
            kind(admin.delete_queue("orders").await),
            ErrorKind::MessagingEntityNotFound
        );
    });
}

#[test]
fn lists_read_every_page_in_name_order() {
    let broker = Broker::start(None, &[]);
    runtime().block_on(async {
        let admin = client(&broker);
        let names = ["q-a", "q-b", "q-c", "q-d", "q-e"];
        // Created out of order: the list is in name order.
        for name in names.iter().rev() {
            admin
                .create_queue(name, &QueueSettings::default())
                .await
                .expect("create");
        }
        let listed = |queues: Vec<QueueProperties>| -> Vec<String> {
            queues.into_iter().map(|q| q.name).collect()
        };
        for page_size in [1, 2, 5, 100] {
            let all = admin
                .list_queues(ListOptions {
                    skip: 0,
                    max_page_size: page_size,
                })
                .await
                .expect("list");
            assert_eq!(listed(all), names, "page size {page_size}");
        }
        let first = admin.list_queues_page(0, 2).await.expect("page");
        assert_eq!(listed(first.items), ["q-a", "q-b"]);
        assert_eq!(first.next_skip, Some(2));
        let last = admin.list_queues_page(4, 2).await.expect("page");
        assert_eq!(listed(last.items), ["q-e"]);
        assert_eq!(last.next_skip, None);
        let from_third = admin
            .list_queues(ListOptions {
                skip: 2,
                max_page_size: 2,
            })
            .await
            .expect("list");
        assert_eq!(listed(from_third), ["q-c", "q-d", "q-e"]);

        let runtime = admin
            .list_queues_runtime_properties(ListOptions {
                skip: 0,
                max_page_size: 2,
            })
            .await
            .expect("list runtime");
        assert_eq!(runtime.len(), 5);
        assert!(runtime.iter().all(|q| q.total_message_count == 0));

        for topic in ["t-b", "t-a", "t-c"] {
            admin
                .create_topic(topic, &TopicSettings::default())
                .await
                .expect("topic");
        }
        let topics = admin
            .list_topics(ListOptions {
                skip: 0,
                max_page_size: 2,
            })
            .await
            .expect("topics");
        assert_eq!(
            topics.into_iter().map(|t| t.name).collect::<Vec<_>>(),
            ["t-a", "t-b", "t-c"]
        );
        for subscription in ["s3", "s1", "s2"] {
            admin
                .create_subscription("t-a", subscription, &SubscriptionSettings::default())
                .await
                .expect("subscription");
        }
        let subscriptions = admin
            .list_subscriptions(
                "t-a",
                ListOptions {
                    skip: 1,
                    max_page_size: 1,
                },
            )
            .await
            .expect("subscriptions");
        assert_eq!(
            subscriptions
                .iter()
                .map(|s| (s.topic_name.as_str(), s.name.as_str()))
                .collect::<Vec<_>>(),
            [("t-a", "s2"), ("t-a", "s3")]
        );
    });
}

#[test]
fn runtime_properties_count_what_was_sent() {
    let broker = Broker::start(None, &[]);
    runtime().block_on(async {
        let admin = client(&broker);
        admin
            .create_queue("counted", &QueueSettings::default())
            .await
            .expect("queue");
        let fresh = admin
            .get_queue_runtime_properties("counted")
            .await
            .expect("runtime");
        assert_eq!(fresh.total_message_count, 0);
        assert_eq!(fresh.accessed_at, None);
        assert!(fresh.created_at > UNIX_EPOCH + Duration::from_secs(1_600_000_000));

        let three = [
            Outgoing {
                body: "one",
                ..Outgoing::default()
            },
            Outgoing {
                body: "two",
                ..Outgoing::default()
            },
            Outgoing {
                body: "three",
                ..Outgoing::default()
            },
        ];
        send(&broker, "counted", &three).await;
        let counted = admin
            .get_queue_runtime_properties("counted")
            .await
            .expect("runtime");
        assert_eq!(counted.counts.active, 3);
        assert_eq!(counted.total_message_count, 3);
        assert_eq!(counted.counts.dead_letter, 0);
        assert!(counted.size_in_bytes > 0, "{counted:?}");
        assert!(counted.accessed_at.is_some(), "{counted:?}");
        assert_eq!(
            receive(&broker, "counted", 3).await,
            ["one", "three", "two"]
        );
        let drained = admin
            .get_queue_runtime_properties("counted")
            .await
            .expect("runtime");
        assert_eq!(drained.total_message_count, 0);

        admin
            .create_topic("news", &TopicSettings::default())
            .await
            .expect("topic");
        for subscription in ["all", "also"] {
            admin
                .create_subscription("news", subscription, &SubscriptionSettings::default())
                .await
                .expect("subscription");
        }
        send(&broker, "news", &[labelled("n1", "x"), labelled("n2", "y")]).await;
        let topic = admin
            .get_topic_runtime_properties("news")
            .await
            .expect("topic runtime");
        assert_eq!(topic.subscription_count, 2);
        for subscription in admin
            .list_subscriptions_runtime_properties("news", ListOptions::default())
            .await
            .expect("subscriptions runtime")
        {
            assert_eq!(subscription.topic_name, "news");
            assert_eq!(subscription.counts.active, 2, "{subscription:?}");
        }
        let all = admin
            .get_subscription_runtime_properties("news", "all")
            .await
            .expect("subscription runtime");
        assert_eq!(all.total_message_count, 2);
        assert_eq!(
            admin
                .list_topics_runtime_properties(ListOptions::default())
                .await
                .expect("topics runtime")
                .len(),
            1
        );
    });
}

#[test]
fn topics_subscriptions_and_rules_with_their_errors() {
    let broker = Broker::start(None, &[]);
    runtime().block_on(async {
        let admin = client(&broker);
        let topic = admin
            .create_topic(
                "events",
                &TopicSettings {
                    default_message_time_to_live: Some(Duration::from_secs(3600)),
                    ..TopicSettings::default()
                },
            )
            .await
            .expect("topic");
        assert_eq!(
            topic.settings.default_message_time_to_live,
            Some(Duration::from_secs(3600))
        );
        let mut topic = admin.get_topic("events").await.expect("get topic");
        topic.settings.user_metadata = Some("changed".to_owned());
        admin.update_topic(&topic).await.expect("update topic");
        assert_eq!(
            admin
                .get_topic("events")
                .await
                .expect("get")
                .settings
                .user_metadata
                .as_deref(),
            Some("changed")
        );
        assert!(admin.topic_exists("events").await.expect("exists"));

        let subscription = admin
            .create_subscription(
                "events",
                "audit",
                &SubscriptionSettings {
                    max_delivery_count: 2,
                    ..SubscriptionSettings::default()
                },
            )
            .await
            .expect("subscription");
        assert_eq!(subscription.topic_name, "events");
        assert_eq!(subscription.settings.max_delivery_count, 2);
        let mut subscription = admin
            .get_subscription("events", "audit")
            .await
            .expect("get subscription");
        subscription.settings.lock_duration = Duration::from_secs(30);
        admin
            .update_subscription(&subscription)
            .await
            .expect("update subscription");
        assert_eq!(
            admin
                .get_subscription("events", "audit")
                .await
                .expect("get")
                .settings
                .lock_duration,
            Duration::from_secs(30)
        );
        assert_eq!(
            kind(
                admin
                    .create_subscription("events", "audit", &SubscriptionSettings::default())
                    .await
            ),
            ErrorKind::MessagingEntityAlreadyExists
        );
        assert_eq!(
            kind(
                admin
                    .create_subscription("no-topic", "s", &SubscriptionSettings::default())
                    .await
            ),
            ErrorKind::MessagingEntityNotFound
        );
        assert_eq!(
            kind(admin.get_subscription("events", "nothing").await),
            ErrorKind::MessagingEntityNotFound
        );

        // A subscription can start with its own first rule instead of "every message".
        let first_rule = Rule {
            filter: sql("region = 'eu'"),
            action: RuleAction::Sql {
                expression: "SET seen = 1".to_owned(),
                parameters: vec![],
            },
        };
        admin
            .create_subscription(
                "events",
                "eu-only",
                &SubscriptionSettings {
                    default_rule: Some(first_rule.clone()),
                    ..SubscriptionSettings::default()
                },
            )
            .await
            .expect("subscription with a first rule");
        let rules = admin
            .list_rules("events", "eu-only", ListOptions::default())
            .await
            .expect("rules");
        assert_eq!(rules.len(), 1);
        assert_eq!(
            (&rules[0].name[..], &rules[0].filter, &rules[0].action),
            ("$Default", &first_rule.filter, &first_rule.action)
        );

        // A fresh subscription has $Default; rules come and go.
        let rules = admin
            .list_rules("events", "audit", ListOptions::default())
            .await
            .expect("rules");
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].name, "$Default");
        assert_eq!(rules[0].filter, RuleFilter::True);

        let sql = RuleFilter::Sql {
            expression: "priority > @min".to_owned(),
            parameters: vec![("@min".to_owned(), TypedValue::Long(5))],
        };
        let stamp = RuleAction::Sql {
            expression: "SET routed = 'yes'".to_owned(),
            parameters: vec![],
        };
        let created = admin
            .create_rule("events", "audit", "urgent", sql.clone(), stamp.clone())
            .await
            .expect("rule");
        // The broker keeps parameters inlined into the expression.
        assert_eq!(
            created.filter,
            RuleFilter::Sql {
                expression: "priority > 5".to_owned(),
                parameters: vec![],
            }
        );
        assert_eq!(created.action, stamp);
        let correlation = RuleFilter::Correlation(CorrelationFilter {
            correlation_id: Some("order-1".to_owned()),
            label: Some("created".to_owned()),
            properties: vec![("region".to_owned(), TypedValue::String("eu".to_owned()))],
            ..CorrelationFilter::default()
        });
        admin
            .create_rule(
                "events",
                "audit",
                "orders",
                correlation.clone(),
                RuleAction::Empty,
            )
            .await
            .expect("correlation rule");
        let mut orders = admin
            .get_rule("events", "audit", "orders")
            .await
            .expect("get rule");
        assert_eq!(orders.filter, correlation);
        assert!(orders.created_at.is_some());
        orders.filter = RuleFilter::False;
        admin
            .update_rule("events", "audit", &orders)
            .await
            .expect("update rule");
        assert_eq!(
            admin
                .get_rule("events", "audit", "orders")
                .await
                .expect("get rule")
                .filter,
            RuleFilter::False
        );
        assert_eq!(
            kind(
                admin
                    .create_rule(
                        "events",
                        "audit",
                        "orders",
                        RuleFilter::True,
                        RuleAction::Empty
                    )
                    .await
            ),
            ErrorKind::MessagingEntityAlreadyExists
        );
        assert_eq!(
            kind(
                admin
                    .create_rule(
                        "events",
                        "audit",
                        "broken",
                        RuleFilter::Sql {
                            expression: "this is not SQL (".to_owned(),
                            parameters: vec![],
                        },
                        RuleAction::Empty,
                    )
                    .await
            ),
            ErrorKind::InvalidArgument
        );
        let names = |rules: Vec<RuleProperties>| -> Vec<String> {
            rules.into_iter().map(|r| r.name).collect()
        };
        assert_eq!(
            names(
                admin
                    .list_rules(
                        "events",
                        "audit",
                        ListOptions {
                            skip: 0,
                            max_page_size: 1
                        }
                    )
                    .await
                    .expect("rules")
            ),
            ["$Default", "urgent", "orders"]
        );
        admin
            .delete_rule("events", "audit", "urgent")
            .await
            .expect("delete rule");
        assert_eq!(
            kind(admin.delete_rule("events", "audit", "urgent").await),
            ErrorKind::MessagingEntityNotFound
        );
        assert_eq!(
            kind(admin.get_rule("events", "audit", "urgent").await),
            ErrorKind::MessagingEntityNotFound
        );

        admin
            .delete_subscription("events", "audit")
            .await
            .expect("delete subscription");
        assert!(
            !admin
                .subscription_exists("events", "audit")
                .await
                .expect("exists")
        );
        assert_eq!(
            kind(admin.delete_subscription("events", "audit").await),
            ErrorKind::MessagingEntityNotFound
        );
        admin.delete_topic("events").await.expect("delete topic");
        assert_eq!(
            kind(admin.delete_topic("events").await),
            ErrorKind::MessagingEntityNotFound
        );
    });
}

#[test]
fn https_with_the_development_ca_the_namespace_and_refused_credentials() {
    let broker = Broker::start(None, &[]);
    runtime().block_on(async {
        let over_https = ServiceBusAdministrationClient::from_connection_string(
            &broker.conn_str(),
            AdministrationClientOptions {
                tls_ca: Some(broker.dev_ca()),
                ..AdministrationClientOptions::default()
            },
        )
        .expect("client");
        over_https
            .create_queue("secure", &QueueSettings::default())
            .await
            .expect("create over HTTPS");
        // The same broker over plain HTTP sees it.
        assert!(
            client(&broker)
                .queue_exists("secure")
                .await
                .expect("exists")
        );

        let namespace = over_https
            .get_namespace_properties()
            .await
            .expect("namespace");
        assert!(!namespace.name.is_empty());
        assert!(namespace.created_at > UNIX_EPOCH + Duration::from_secs(1_600_000_000));
        assert!(namespace.modified_at >= namespace.created_at);

        // HTTPS without trusting the broker's CA fails the handshake.
        let untrusting = ServiceBusAdministrationClient::from_connection_string(
            &broker.conn_str(),
            AdministrationClientOptions {
                scheme: Some(HttpScheme::Https),
                ..AdministrationClientOptions::default()
            },
        )
        .expect("client");
        // A refused certificate is not worth retrying.
        let refused = untrusting.get_queue("secure").await.expect_err("untrusted");
        assert_eq!(refused.kind, ErrorKind::Other, "{refused}");
        assert!(!refused.is_transient());
        assert!(refused.message.contains("certificate"), "{refused}");

        let wrong_key = ServiceBusAdministrationClient::from_connection_string(
            &broker.conn_str_with_key("RootManageSharedAccessKey", "not-the-key"),
            AdministrationClientOptions::default(),
        )
        .expect("client");
        assert_eq!(
            kind(wrong_key.get_queue("secure").await),
            ErrorKind::Unauthorized
        );
        assert_eq!(
            kind(ServiceBusAdministrationClient::from_connection_string(
                "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k",
                AdministrationClientOptions::default(),
            )),
            ErrorKind::InvalidArgument
        );
    });
}

#[test]
fn requests_are_retried_while_the_broker_restarts() {
    let mut broker = Broker::start(None, &[]);
    let conn = broker.conn_str();
    runtime().block_on(async {
        client(&broker)
            .create_queue("kept", &QueueSettings::default())
            .await
            .expect("create");
    });
    broker.kill9();
    let without_retries = ServiceBusAdministrationClient::from_connection_string(
        &conn,
        AdministrationClientOptions {
            retry: RetryOptions {
                max_retries: 0,
                ..RetryOptions::default()
            },
            ..AdministrationClientOptions::default()
        },
    )
    .expect("client");
    let down = runtime().block_on(without_retries.get_queue("kept"));
    assert_eq!(kind(down), ErrorKind::ServiceCommunication);

    // Retrying with room for the restart below; the broker keeps its port and data.
    let retrying = std::thread::spawn(move || {
        let admin = ServiceBusAdministrationClient::from_connection_string(
            &conn,
            AdministrationClientOptions {
                retry: RetryOptions {
                    mode: RetryMode::Fixed,
                    max_retries: 600,
                    delay: Duration::from_millis(100),
                    ..RetryOptions::default()
                },
                ..AdministrationClientOptions::default()
            },
        )
        .expect("client");
        runtime().block_on(admin.get_queue("kept"))
    });
    broker.restart();
    let queue = retrying.join().expect("thread").expect("got after retries");
    assert_eq!(queue.name, "kept");
}
