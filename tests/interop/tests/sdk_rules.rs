//! The Rust SDK's `ServiceBusRuleManager` against a broker process: rules added, listed and
//! removed over the subscription's `$management` node (SQL and correlation filters, SQL
//! actions), the broker's refusals as error kinds, and messages routed as the rules say.

mod sdk_messages;

use busbar_amqp::Value;
use busbar_client::servicebus::admin::*;
use busbar_client::servicebus::{ErrorKind, ServiceBusResult as Result};
use busbar_client::{ServiceBusClient, ServiceBusClientOptions};
use busbar_interop::Broker;
use sdk_messages::{Outgoing, Received, receive_messages, send};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn topic_with(
    broker: &Broker,
    topic: &str,
    subscriptions: &[&str],
) -> ServiceBusAdministrationClient {
    let admin = ServiceBusAdministrationClient::from_connection_string(
        &broker.conn_str(),
        AdministrationClientOptions::default(),
    )
    .expect("admin client");
    admin
        .create_topic(topic, &TopicSettings::default())
        .await
        .expect("topic");
    for subscription in subscriptions {
        admin
            .create_subscription(topic, subscription, &SubscriptionSettings::default())
            .await
            .expect("subscription");
    }
    admin
}

fn client(broker: &Broker) -> ServiceBusClient {
    ServiceBusClient::from_connection_string(&broker.conn_str(), ServiceBusClientOptions::default())
        .expect("client")
}

fn sql(expression: &str) -> RuleFilter {
    RuleFilter::Sql {
        expression: expression.to_owned(),
        parameters: vec![],
    }
}

fn set(expression: &str) -> RuleAction {
    RuleAction::Sql {
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
fn rules_are_added_listed_and_removed_with_the_brokers_refusals() {
    let broker = Broker::start(None, &[]);
    runtime().block_on(async {
        let admin = topic_with(&broker, "orders", &["audit"]).await;
        let rules = client(&broker).create_rule_manager("orders", "audit");
        assert_eq!(
            (rules.topic_name(), rules.subscription_name()),
            ("orders", "audit")
        );

        let listed = rules.get_rules().await.expect("rules");
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].name.as_str(), &listed[0].filter),
            ("$Default", &RuleFilter::True)
        );

        rules
            .create_rule("big", sql("amount > 1000"), set("SET sys.Label = 'big'"))
            .await
            .expect("sql rule");
        let correlation = CorrelationFilter {
            correlation_id: Some("order-1".to_owned()),
            label: Some("created".to_owned()),
            properties: vec![
                ("region".to_owned(), TypedValue::String("eu".to_owned())),
                ("tier".to_owned(), TypedValue::Long(2)),
            ],
            ..CorrelationFilter::default()
        };
        rules
            .create_rule(
                "order-1",
                RuleFilter::Correlation(correlation.clone()),
                RuleAction::Empty,
            )
            .await
            .expect("correlation rule");

        let listed = rules.get_rules().await.expect("rules");
        let names: Vec<&str> = listed.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["$Default", "big", "order-1"]);
        assert_eq!(listed[1].filter, sql("amount > 1000"));
        assert_eq!(listed[1].action, set("SET sys.Label = 'big'"));
        assert_eq!(listed[2].filter, RuleFilter::Correlation(correlation));
        assert_eq!(listed[2].action, RuleAction::Empty);
        // The administration API sees the same rules.
        assert_eq!(
            admin
                .list_rules("orders", "audit", ListOptions::default())
                .await
                .expect("admin rules")
                .len(),
            3
        );

        assert_eq!(
            kind(
                rules
                    .create_rule("big", RuleFilter::True, RuleAction::Empty)
                    .await
            ),
            ErrorKind::MessagingEntityAlreadyExists
        );
        assert_eq!(
            kind(rules.delete_rule("nothing").await),
            ErrorKind::MessagingEntityNotFound
        );
        assert_eq!(
            kind(
                rules
                    .create_rule("bad", sql("amount >>> ("), RuleAction::Empty)
                    .await
            ),
            ErrorKind::InvalidArgument
        );
        // Parameters travel written into the expression.
        rules
            .create_rule(
                "with-parameters",
                RuleFilter::Sql {
                    expression: "amount > @min".to_owned(),
                    parameters: vec![("@min".to_owned(), TypedValue::Int(1))],
                },
                RuleAction::Empty,
            )
            .await
            .expect("a rule with parameters");
        let listed = rules.get_rules().await.expect("rules");
        let with_parameters = listed.iter().find(|r| r.name == "with-parameters");
        assert_eq!(with_parameters.map(|r| &r.filter), Some(&sql("amount > 1")));

        rules.delete_rule("big").await.expect("delete");
        rules.delete_rule("with-parameters").await.expect("delete");
        rules
            .delete_rule("$Default")
            .await
            .expect("delete $Default");
        let names: Vec<String> = rules
            .get_rules()
            .await
            .expect("rules")
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["order-1"]);

        let missing = client(&broker).create_rule_manager("orders", "nothing");
        assert_eq!(
            kind(missing.get_rules().await),
            ErrorKind::MessagingEntityNotFound
        );
    });
}

#[test]
fn a_subscription_receives_what_its_rules_select_changed_by_their_actions() {
    let broker = Broker::start(None, &[]);
    runtime().block_on(async {
        let admin = topic_with(&broker, "shop", &["urgent", "eu-orders"]).await;
        let client = client(&broker);
        let urgent = client.create_rule_manager("shop", "urgent");
        urgent
            .delete_rule("$Default")
            .await
            .expect("delete $Default");
        urgent
            .create_rule(
                "high",
                sql("priority > 5"),
                set("SET sys.Label = 'escalated'"),
            )
            .await
            .expect("sql rule");
        let eu = client.create_rule_manager("shop", "eu-orders");
        eu.delete_rule("$Default").await.expect("delete $Default");
        eu.create_rule(
            "eu",
            RuleFilter::Correlation(CorrelationFilter {
                correlation_id: Some("order".to_owned()),
                properties: vec![("region".to_owned(), TypedValue::String("eu".to_owned()))],
                ..CorrelationFilter::default()
            }),
            RuleAction::Empty,
        )
        .await
        .expect("correlation rule");

        let message = |body, priority: i64, correlation_id, region: &'static str| Outgoing {
            body,
            subject: Some("plain"),
            correlation_id: Some(correlation_id),
            properties: vec![
                ("priority", Value::Long(priority)),
                ("region", Value::String(region.to_owned())),
            ],
        };
        send(
            &broker,
            "shop",
            &[
                message("urgent-eu", 9, "order", "eu"),
                message("calm-eu", 1, "order", "eu"),
                message("urgent-us", 7, "order", "us"),
                message("calm-other", 2, "invoice", "eu"),
            ],
        )
        .await;

        let counts = |name: &'static str| {
            let admin = &admin;
            async move {
                admin
                    .get_subscription_runtime_properties("shop", name)
                    .await
                    .expect("runtime")
                    .counts
                    .active
            }
        };
        assert_eq!(counts("urgent").await, 2);
        assert_eq!(counts("eu-orders").await, 2);
        assert_eq!(
            receive_messages(&broker, "shop/Subscriptions/urgent", 2).await,
            [
                Received {
                    body: "urgent-eu".to_owned(),
                    subject: Some("escalated".to_owned())
                },
                Received {
                    body: "urgent-us".to_owned(),
                    subject: Some("escalated".to_owned())
                },
            ]
        );
        assert_eq!(
            receive_messages(&broker, "shop/Subscriptions/eu-orders", 2).await,
            [
                Received {
                    body: "calm-eu".to_owned(),
                    subject: Some("plain".to_owned())
                },
                Received {
                    body: "urgent-eu".to_owned(),
                    subject: Some("plain".to_owned())
                },
            ]
        );
        assert_eq!(counts("urgent").await, 0);
        assert_eq!(counts("eu-orders").await, 0);
    });
}
