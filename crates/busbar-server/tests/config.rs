//! Loading emulator-style configuration files and the problems validation reports.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use busbar_server::config::{
    BrokerConfig, ConfigError, CorrelationFilter, Durability, EntityStatus, FieldProblem,
    FilterDescription, FilterValue, QueueProperties, Rights,
};
use busbar_server::emulator_config;

fn sample_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/emulator-config.json")
}

fn problems(json: &str) -> Vec<FieldProblem> {
    match emulator_config::load_str(json) {
        Err(ConfigError::Invalid(problems)) => problems,
        other => panic!("expected validation problems, got {other:?}"),
    }
}

/// Asserts that validation reports exactly one problem, at `field`, whose message contains
/// `message`.
fn assert_single_problem(json: &str, field: &str, message: &str) {
    let problems = problems(json);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].field, field, "{problems:#?}");
    assert!(
        problems[0].message.contains(message),
        "{:?} does not contain {message:?}",
        problems[0].message
    );
}

/// A one-namespace file with the given queue objects.
fn with_queues(queues: &str) -> String {
    format!(
        r#"{{"UserConfig": {{"Namespaces": [{{"Name": "sbemulatorns", "Queues": [{queues}]}}]}}}}"#
    )
}

/// A one-namespace file with one topic `t` holding the given subscriptions.
fn with_subscriptions(subscriptions: &str) -> String {
    format!(
        r#"{{"UserConfig": {{"Namespaces": [{{"Topics": [{{"Name": "t", "Subscriptions": [{subscriptions}]}}]}}]}}}}"#
    )
}

#[test]
fn loads_the_sample_emulator_config() {
    let config = emulator_config::load_file(&sample_path()).unwrap();
    assert_eq!(config.namespace.as_deref(), Some("sbemulatorns"));
    assert_eq!(config.emulator_logging.as_deref(), Some("File"));
    // Nothing in the file changes listeners or limits.
    assert_eq!(config.amqp_listen, BrokerConfig::default().amqp_listen);
    assert_eq!(config.max_message_size, 262_144);

    let names: Vec<&str> = config.queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(
        names,
        ["orders", "orders-poison", "checkout/sessions", "bare"]
    );

    let orders = &config.queues[0].properties;
    assert_eq!(
        *orders,
        QueueProperties {
            lock_duration_ms: 30_000,
            max_delivery_count: 25,
            default_ttl_ms: Some(14 * 86_400_000),
            dead_lettering_on_expiration: true,
            requires_duplicate_detection: true,
            duplicate_detection_window_ms: 300_000,
            requires_session: false,
            forward_to: None,
            forward_dead_lettered_to: Some("orders-poison".to_owned()),
            max_size_bytes: None,
            status: EntityStatus::Active,
        }
    );
    assert_eq!(config.queues[1].properties.default_ttl_ms, Some(5_400_000));
    let sessions = &config.queues[2].properties;
    assert_eq!(sessions.lock_duration_ms, 150_500);
    assert!(sessions.requires_session);
    assert_eq!(sessions.forward_to.as_deref(), Some("invoices"));
    // Missing properties take Service Bus defaults.
    assert_eq!(config.queues[3].properties, QueueProperties::default());

    assert_eq!(config.topics.len(), 1);
    let topic = &config.topics[0];
    assert_eq!(topic.name, "invoices");
    assert_eq!(topic.properties.default_ttl_ms, Some(26 * 3_600_000));
    assert_eq!(topic.properties.duplicate_detection_window_ms, 20_000);

    let subs: Vec<&str> = topic
        .subscriptions
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(subs, ["accounting", "eu-region", "everything"]);
    let accounting = &topic.subscriptions[0];
    assert_eq!(accounting.properties.forward_to.as_deref(), Some("orders"));
    assert_eq!(accounting.rules.len(), 1);
    assert_eq!(accounting.rules[0].name, "high-value");
    assert_eq!(
        accounting.rules[0].filter,
        FilterDescription::Sql("amount > 1000 AND sys.Label = 'invoice'".to_owned())
    );
    assert_eq!(
        accounting.rules[0].action.as_deref(),
        Some("SET priority = 'high'")
    );

    let eu = &topic.subscriptions[1];
    assert_eq!(eu.properties.lock_duration_ms, 45_000);
    assert_eq!(eu.properties.max_delivery_count, 5);
    assert!(eu.properties.requires_session);
    assert_eq!(
        eu.rules[0].filter,
        FilterDescription::Correlation(CorrelationFilter {
            content_type: Some("application/json".to_owned()),
            correlation_id: Some("corr-7".to_owned()),
            subject: Some("invoice".to_owned()),
            message_id: Some("m-1".to_owned()),
            reply_to: Some("replies".to_owned()),
            reply_to_session_id: Some("rs-1".to_owned()),
            session_id: Some("s-1".to_owned()),
            to: Some("billing".to_owned()),
            properties: vec![
                // Sorted by name, whatever the order in the file.
                ("ratio".to_owned(), FilterValue::Double(0.5)),
                ("region".to_owned(), FilterValue::String("eu".to_owned())),
                ("tier".to_owned(), FilterValue::Long(2)),
                ("urgent".to_owned(), FilterValue::Bool(true)),
            ],
        })
    );
    assert!(topic.subscriptions[2].rules.is_empty());
}

#[test]
fn missing_file_names_the_path() {
    let err = emulator_config::load_file(Path::new("/nonexistent/busbar.json")).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().contains("/nonexistent/busbar.json"));
}

#[test]
fn invalid_json_is_reported() {
    let err = emulator_config::load_str("{\"UserConfig\": ").unwrap_err();
    assert!(matches!(err, ConfigError::Json(_)), "{err:?}");
}

/// Microsoft's sample Config.json as its emulator installer ships it, `//` comments and all.
fn microsoft_sample_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/interop/fixtures/microsoft-emulator/Config.json")
}

#[test]
fn microsoft_sample_config_is_read_as_it_is() {
    let config = emulator_config::load_file(&microsoft_sample_path()).unwrap();
    assert_eq!(config.namespace.as_deref(), Some("sbemulatorns"));
    assert_eq!(config.queues.len(), 1);
    assert_eq!(config.queues[0].name, "queue.1");
    let [topic] = config.topics.as_slice() else {
        panic!("one topic expected: {:?}", config.topics);
    };
    let subscriptions: Vec<&str> = topic
        .subscriptions
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        subscriptions,
        [
            "subscription.1",
            "subscription.2",
            "subscription.3",
            "subscription.4"
        ]
    );
    let rule = &topic.subscriptions[3].rules[0];
    assert_eq!(rule.action.as_deref(), Some("SET sys.To = 'Entity'"));
}

#[test]
fn comments_and_trailing_commas_are_accepted() {
    let config = emulator_config::load_str(
        "{ /* block */ \"UserConfig\": {\"Namespaces\": [{\"Name\": \"ns\", // line\n \"Queues\": [{\"Name\": \"q\",},],},],},}",
    )
    .unwrap();
    assert_eq!(config.queues[0].name, "q");
}

#[test]
fn json_errors_name_the_line_and_column_of_the_text_as_written() {
    let text = "{\n  /* a comment\n     over two lines */\n  \"UserConfig\": {} // fine\n  \"Busbar\": {}\n}";
    let err = emulator_config::load_str(text).unwrap_err();
    assert!(matches!(err, ConfigError::Json(_)), "{err:?}");
    assert!(err.to_string().contains("line 5 column 3"), "{err}");
}

#[test]
fn an_unclosed_comment_is_reported_where_it_opens() {
    let err = emulator_config::load_str("{\n  \"UserConfig\": {} /* never closed\n}").unwrap_err();
    assert!(matches!(err, ConfigError::UnclosedComment(_)), "{err:?}");
    assert!(err.to_string().contains("line 2 column 20"), "{err}");
}

#[test]
fn empty_object_is_an_empty_config() {
    let config = emulator_config::load_str("{}").unwrap();
    assert_eq!(config, BrokerConfig::default());
}

#[test]
fn unknown_fields_and_null_values_are_tolerated_and_keys_ignore_case() {
    let json = r#"{
      "$schema": "whatever",
      "UserConfig": {
        "Namespaces": [{
          "Name": "sbemulatorns",
          "SomethingNew": 1,
          "queues": [{"name": "q1", "Extra": true,
                      "properties": {"lockDuration": "PT10S", "MaxDeliveryCount": "4",
                                     "RequiresSession": "true", "ForwardTo": null,
                                     "EnablePartitioning": true}}]
        }]
      }
    }"#;
    let config = emulator_config::load_str(json).unwrap();
    assert_eq!(config.queues[0].name, "q1");
    assert_eq!(config.queues[0].properties.lock_duration_ms, 10_000);
    assert_eq!(config.queues[0].properties.max_delivery_count, 4);
    assert!(config.queues[0].properties.requires_session);
    assert_eq!(config.queues[0].properties.forward_to, None);
}

#[test]
fn no_emulator_caps() {
    let queues: Vec<String> = (0..60)
        .map(|i| {
            format!(
                r#"{{"Name": "q{i}", "Properties": {{"MaxDeliveryCount": 500, "DefaultMessageTimeToLive": "P365D"}}}}"#
            )
        })
        .collect();
    let config = emulator_config::load_str(&with_queues(&queues.join(","))).unwrap();
    assert_eq!(config.queues.len(), 60);
    assert_eq!(config.queues[59].properties.max_delivery_count, 500);
    assert_eq!(
        config.queues[59].properties.default_ttl_ms,
        Some(365 * 86_400_000)
    );
}

#[test]
fn bad_duration_names_the_field() {
    let json = with_queues(
        r#"{"Name": "a"}, {"Name": "b"}, {"Name": "c", "Properties": {"LockDuration": "PT10X"}}"#,
    );
    let problems = problems(&json);
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].to_string().starts_with(
            r#"UserConfig.Namespaces[0].Queues[2].Properties.LockDuration: "PT10X" is not an ISO 8601 duration"#
        ),
        "{}",
        problems[0]
    );
}

#[test]
fn lock_duration_must_be_between_5_seconds_and_5_minutes() {
    for (value, ok) in [
        ("PT4.999S", false),
        ("PT5S", true),
        ("PT5M", true),
        ("PT5M0.001S", false),
        ("PT1H", false),
    ] {
        let json = with_queues(&format!(
            r#"{{"Name": "q", "Properties": {{"LockDuration": "{value}"}}}}"#
        ));
        if ok {
            assert!(emulator_config::load_str(&json).is_ok(), "{value}");
        } else {
            assert_single_problem(
                &json,
                "UserConfig.Namespaces[0].Queues[0].Properties.LockDuration",
                "outside the allowed range of 5 seconds to 5 minutes",
            );
        }
    }
    assert_single_problem(
        &with_subscriptions(r#"{"Name": "s", "Properties": {"LockDuration": "PT1S"}}"#),
        "UserConfig.Namespaces[0].Topics[0].Subscriptions[0].Properties.LockDuration",
        "outside the allowed range",
    );
}

#[test]
fn max_delivery_count_must_be_at_least_one() {
    assert_single_problem(
        &with_queues(r#"{"Name": "q", "Properties": {"MaxDeliveryCount": 0}}"#),
        "UserConfig.Namespaces[0].Queues[0].Properties.MaxDeliveryCount",
        "must be at least 1",
    );
    assert_single_problem(
        &with_queues(r#"{"Name": "q", "Properties": {"MaxDeliveryCount": -3}}"#),
        "UserConfig.Namespaces[0].Queues[0].Properties.MaxDeliveryCount",
        "expected a non-negative integer, found -3",
    );
    assert_single_problem(
        &with_subscriptions(r#"{"Name": "s", "Properties": {"MaxDeliveryCount": 0}}"#),
        "UserConfig.Namespaces[0].Topics[0].Subscriptions[0].Properties.MaxDeliveryCount",
        "must be at least 1",
    );
}

#[test]
fn max_size_in_megabytes_is_read_in_mebibytes_and_must_be_at_least_one() {
    let json = r#"{"UserConfig": {"Namespaces": [{"Name": "sbemulatorns",
        "Queues": [{"Name": "q", "Properties": {"MaxSizeInMegabytes": 2}}, {"Name": "open"}],
        "Topics": [{"Name": "t", "Properties": {"MaxSizeInMegabytes": "5"}}]}]}}"#;
    let config = emulator_config::load_str(json).unwrap();
    assert_eq!(config.queues[0].properties.max_size_bytes, Some(2 << 20));
    assert_eq!(
        config.queues[1].properties.max_size_bytes, None,
        "no cap unless set"
    );
    assert_eq!(config.topics[0].properties.max_size_bytes, Some(5 << 20));
    assert_single_problem(
        &with_queues(r#"{"Name": "q", "Properties": {"MaxSizeInMegabytes": 0}}"#),
        "UserConfig.Namespaces[0].Queues[0].Properties.MaxSizeInMegabytes",
        "at least 1",
    );
}

#[test]
fn zero_ttl_is_refused() {
    assert_single_problem(
        &with_queues(r#"{"Name": "q", "Properties": {"DefaultMessageTimeToLive": "PT0S"}}"#),
        "UserConfig.Namespaces[0].Queues[0].Properties.DefaultMessageTimeToLive",
        "at least one millisecond",
    );
}

#[test]
fn wrong_types_are_named() {
    assert_single_problem(
        &with_queues(r#"{"Name": "q", "Properties": {"RequiresSession": "yes"}}"#),
        "UserConfig.Namespaces[0].Queues[0].Properties.RequiresSession",
        "expected true or false, found \"yes\"",
    );
    assert_single_problem(
        &with_queues(r#"{"Name": 7}"#),
        "UserConfig.Namespaces[0].Queues[0].Name",
        "expected a string, found 7",
    );
    assert_single_problem(
        r#"{"UserConfig": {"Namespaces": {"Name": "x"}}}"#,
        "UserConfig.Namespaces",
        "expected an array, found an object",
    );
}

#[test]
fn duplicate_entity_names_are_case_insensitive_across_queues_and_topics() {
    assert_single_problem(
        &with_queues(r#"{"Name": "Orders"}, {"Name": "orders"}"#),
        "UserConfig.Namespaces[0].Queues[1].Name",
        "\"orders\" is already used by another queue or topic",
    );
    let json = r#"{"UserConfig": {"Namespaces": [{"Queues": [{"Name": "events"}],
                   "Topics": [{"Name": "EVENTS"}]}]}}"#;
    assert_single_problem(
        json,
        "UserConfig.Namespaces[0].Topics[0].Name",
        "already used",
    );
}

#[test]
fn duplicate_subscription_and_rule_names() {
    assert_single_problem(
        &with_subscriptions(r#"{"Name": "s"}, {"Name": "S"}"#),
        "UserConfig.Namespaces[0].Topics[0].Subscriptions[1].Name",
        "another subscription of this topic",
    );
    let rule = r#"{"Name": "r", "Properties": {"FilterType": "Sql", "SqlFilter": {"SqlExpression": "1=1"}}}"#;
    assert_single_problem(
        &with_subscriptions(&format!(r#"{{"Name": "s", "Rules": [{rule}, {rule}]}}"#)),
        "UserConfig.Namespaces[0].Topics[0].Subscriptions[0].Rules[1].Name",
        "another rule of this subscription",
    );
}

#[test]
fn invalid_names() {
    assert_single_problem(
        &with_queues(r#"{"Name": "my queue"}"#),
        "UserConfig.Namespaces[0].Queues[0].Name",
        "contains ' '",
    );
    assert_single_problem(
        &with_queues(r#"{"Name": "q$1"}"#),
        "UserConfig.Namespaces[0].Queues[0].Name",
        "contains '$'",
    );
    assert_single_problem(
        &with_queues(r#"{"Name": ".hidden"}"#),
        "UserConfig.Namespaces[0].Queues[0].Name",
        "must start and end with a letter or digit",
    );
    assert_single_problem(
        &with_queues(r#"{"Properties": {}}"#),
        "UserConfig.Namespaces[0].Queues[0].Name",
        "is required",
    );
    assert_single_problem(
        &with_subscriptions(r#"{"Name": "a/b"}"#),
        "UserConfig.Namespaces[0].Topics[0].Subscriptions[0].Name",
        "contains '/'",
    );
    // `$Default` is the one rule name allowed to start with '$'.
    let default_rule = r#"{"Name": "s", "Rules": [{"Name": "$Default",
        "Properties": {"FilterType": "Sql", "SqlFilter": {"SqlExpression": "1=1"}}}]}"#;
    assert!(emulator_config::load_str(&with_subscriptions(default_rule)).is_ok());
}

#[test]
fn forwarding_must_name_a_known_entity() {
    assert_single_problem(
        &with_queues(r#"{"Name": "a", "Properties": {"ForwardTo": "nowhere"}}"#),
        "UserConfig.Namespaces[0].Queues[0].Properties.ForwardTo",
        "\"nowhere\" is not a queue or topic declared in this namespace",
    );
    assert_single_problem(
        &with_queues(
            r#"{"Name": "a", "Properties": {"ForwardDeadLetteredMessagesTo": "gone"}}, {"Name": "b"}"#,
        ),
        "UserConfig.Namespaces[0].Queues[0].Properties.ForwardDeadLetteredMessagesTo",
        "\"gone\" is not a queue or topic",
    );
    assert_single_problem(
        &with_queues(r#"{"Name": "a", "Properties": {"ForwardTo": "A"}}"#),
        "UserConfig.Namespaces[0].Queues[0].Properties.ForwardTo",
        "forwards to itself",
    );
    assert_single_problem(
        &with_subscriptions(r#"{"Name": "s", "Properties": {"ForwardTo": "missing"}}"#),
        "UserConfig.Namespaces[0].Topics[0].Subscriptions[0].Properties.ForwardTo",
        "not a queue or topic",
    );
    // Forward targets may be declared after the source, and match case-insensitively.
    let json = with_queues(r#"{"Name": "a", "Properties": {"ForwardTo": "B"}}, {"Name": "b"}"#);
    assert!(emulator_config::load_str(&json).is_ok());
}

#[test]
fn rule_filters_are_checked() {
    let rule = |properties: &str| {
        with_subscriptions(&format!(
            r#"{{"Name": "s", "Rules": [{{"Name": "r", "Properties": {properties}}}]}}"#
        ))
    };
    let base = "UserConfig.Namespaces[0].Topics[0].Subscriptions[0].Rules[0].Properties";
    assert_single_problem(
        &rule(r#"{"FilterType": "Boolean"}"#),
        &format!("{base}.FilterType"),
        "\"Boolean\" is not a filter type",
    );
    assert_single_problem(
        &rule(r#"{"SqlFilter": {"SqlExpression": "1=1"}}"#),
        &format!("{base}.FilterType"),
        "is required",
    );
    assert_single_problem(
        &rule(r#"{"FilterType": "Sql", "CorrelationFilter": {"To": "x"}}"#),
        &format!("{base}.SqlFilter"),
        "is required when FilterType is \"Sql\"",
    );
    assert_single_problem(
        &rule(r#"{"FilterType": "Sql", "SqlFilter": {"SqlExpression": "  "}}"#),
        &format!("{base}.SqlFilter.SqlExpression"),
        "must not be empty",
    );
    assert_single_problem(
        &rule(r#"{"FilterType": "Sql", "SqlFilter": {"SqlExpression": "amount >"}}"#),
        &format!("{base}.SqlFilter.SqlExpression"),
        "syntax error at position",
    );
    assert_single_problem(
        &rule(
            r#"{"FilterType": "Sql", "SqlFilter": {"SqlExpression": "1=1"}, "Action": {"SqlExpression": "SET = 1"}}"#,
        ),
        &format!("{base}.Action.SqlExpression"),
        "syntax error at position",
    );
    assert_single_problem(
        &rule(r#"{"FilterType": "Correlation"}"#),
        &format!("{base}.CorrelationFilter"),
        "is required when FilterType is \"Correlation\"",
    );
    assert_single_problem(
        &rule(r#"{"FilterType": "Correlation", "CorrelationFilter": {}}"#),
        &format!("{base}.CorrelationFilter"),
        "sets no field",
    );
    assert_single_problem(
        &rule(r#"{"FilterType": "Correlation", "CorrelationFilter": {"Properties": {"p": [1]}}}"#),
        &format!("{base}.CorrelationFilter.Properties.p"),
        "expected a string, number or boolean, found an array",
    );
    assert_single_problem(
        &with_subscriptions(r#"{"Name": "s", "Rules": [{"Name": "r"}]}"#),
        base,
        "is required",
    );
}

#[test]
fn more_than_one_namespace_is_refused() {
    assert_single_problem(
        r#"{"UserConfig": {"Namespaces": [{"Name": "a"}, {"Name": "b"}]}}"#,
        "UserConfig.Namespaces",
        "Busbar serves one",
    );
}

#[test]
fn all_problems_are_reported_together() {
    let json = with_queues(
        r#"{"Name": "q", "Properties": {"LockDuration": "soon", "MaxDeliveryCount": 0}},
           {"Name": "Q"}"#,
    );
    let err = emulator_config::load_str(&json).unwrap_err();
    let ConfigError::Invalid(problems) = &err else {
        panic!("{err:?}")
    };
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "UserConfig.Namespaces[0].Queues[0].Properties.LockDuration",
            "UserConfig.Namespaces[0].Queues[0].Properties.MaxDeliveryCount",
            "UserConfig.Namespaces[0].Queues[1].Name",
        ]
    );
    // The error's text lists one problem per line.
    assert_eq!(err.to_string().lines().count(), 3);
}

#[test]
fn busbar_section_sets_policies_and_broker_settings() {
    let json = r#"{
      "UserConfig": {"Namespaces": [{"Name": "sbemulatorns", "Queues": [{"Name": "q1"}]}]},
      "Busbar": {
        "Policies": [
          {"Name": "admin", "Key": "admin-secret", "Rights": ["Manage", "Send", "Listen"]},
          {"Name": "producer", "Key": "p-secret", "Rights": ["send"]}
        ],
        "MaxMessageSize": 1048576,
        "Durability": "Buffered",
        "AmqpListen": "0.0.0.0:5672",
        "HttpListen": "[::]:5300",
        "AmqpsListen": "0.0.0.0:5671",
        "TlsCert": "/etc/busbar/cert.pem",
        "TlsKey": "/etc/busbar/key.pem",
        "AllowPlaintext": true,
        "DataDir": "/var/lib/busbar",
        "OtlpEndpoint": "http://collector:4318"
      }
    }"#;
    let config = emulator_config::load_str(json).unwrap();
    assert_eq!(config.max_message_size, 1_048_576);
    assert_eq!(config.durability, Durability::Buffered);
    assert_eq!(config.amqp_listen.to_string(), "0.0.0.0:5672");
    assert_eq!(config.http_listen.to_string(), "[::]:5300");
    assert_eq!(config.amqps_listen.to_string(), "0.0.0.0:5671");
    assert_eq!(config.tls_cert, Some(PathBuf::from("/etc/busbar/cert.pem")));
    assert_eq!(config.tls_key, Some(PathBuf::from("/etc/busbar/key.pem")));
    assert!(config.allow_plaintext);
    assert_eq!(config.data_dir, PathBuf::from("/var/lib/busbar"));
    assert_eq!(
        config.otlp_endpoint.as_deref(),
        Some("http://collector:4318")
    );
    assert_eq!(config.policies.len(), 2);
    assert_eq!(config.policies[0].rights, Rights::ALL);
    assert_eq!(
        config.policies[1].rights,
        Rights {
            send: true,
            ..Rights::default()
        }
    );
    // Declared policies make exposed listeners acceptable.
    let effective = config.effective_policies().unwrap();
    assert_eq!(effective, config.policies);
}

#[test]
fn busbar_section_problems() {
    let section = |body: &str| format!(r#"{{"Busbar": {{{body}}}}}"#);
    assert_single_problem(
        &section(r#""Policy": []"#),
        "Busbar.Policy",
        "unknown setting",
    );
    assert_single_problem(
        &section(r#""Durability": "eventually""#),
        "Busbar.Durability",
        "\"eventually\" is not \"Sync\" or \"Buffered\"",
    );
    assert_single_problem(
        &section(r#""AmqpListen": "localhost""#),
        "Busbar.AmqpListen",
        "not an IP address and port",
    );
    assert_single_problem(
        &section(r#""TlsCert": "/etc/busbar/cert.pem""#),
        "Busbar.TlsKey",
        "TlsCert and TlsKey go together",
    );
    assert_single_problem(
        &section(r#""MaxMessageSize": 0"#),
        "Busbar.MaxMessageSize",
        "at least 1 byte",
    );
    assert_single_problem(
        &section(r#""Policies": [{"Name": "a", "Key": "k", "Rights": ["Send", "Read"]}]"#),
        "Busbar.Policies[0].Rights[1]",
        "\"Read\" is not a right",
    );
    assert_single_problem(
        &section(r#""Policies": [{"Name": "a", "Key": "k", "Rights": []}]"#),
        "Busbar.Policies[0].Rights",
        "at least one right",
    );
    assert_single_problem(
        &section(r#""Policies": [{"Name": "a", "Rights": ["Send"]}]"#),
        "Busbar.Policies[0].Key",
        "is required",
    );
    assert_single_problem(
        &section(
            r#""Policies": [{"Name": "a", "Key": "k", "Rights": ["Send"]},
                            {"Name": "a", "Key": "k2", "Rights": ["Listen"]}]"#,
        ),
        "Busbar.Policies[1].Name",
        "declared twice",
    );
}

#[test]
fn exposed_listener_from_the_file_without_policies_is_refused() {
    let config =
        emulator_config::load_str(r#"{"Busbar": {"AmqpListen": "0.0.0.0:5672"}}"#).unwrap();
    let err = config.effective_policies().unwrap_err();
    assert!(matches!(err, ConfigError::InsecureDefaultKey(_)));
    assert!(err.to_string().contains("AMQP 0.0.0.0:5672"));
}

/// The keys `json` has that the reader ignored, as (field, message).
fn ignored_keys(json: &str) -> Vec<(String, String)> {
    emulator_config::parse(json)
        .unwrap()
        .ignored_keys
        .into_iter()
        .map(|ignored| (ignored.field, ignored.message))
        .collect()
}

#[test]
fn the_sample_has_no_unknown_keys() {
    let text = std::fs::read_to_string(sample_path()).unwrap();
    assert_eq!(ignored_keys(&text), Vec::<(String, String)>::new());
}

#[test]
fn unknown_keys_are_ignored_and_named_with_their_entity() {
    let json = r#"{
      "Version": 2,
      "UserConfig": {
        "Logging": {"Type": "File", "Level": "Debug"},
        "Namespaces": [{
          "Name": "sbemulatorns",
          "Subscriptions": [],
          "Queues": [{"Name": "orders", "Propreties": {}, "Properties": {"LockDuraton": "PT30S", "lockduration": "PT10S"}}],
          "Topics": [{
            "Name": "events",
            "Properties": {"EnablePartitioning": true},
            "Subscriptions": [{
              "Name": "audit",
              "Properties": {"MaxDeliveryCont": 3},
              "Rules": [{
                "Name": "big",
                "Properties": {
                  "FilterType": "Sql",
                  "SqlFilter": {"SqlExpression": "amount > 100", "CompatibilityLevel": 20},
                  "Action": {"SqlExpresion": "SET big = TRUE"}
                }
              }]
            }]
          }]
        }]
      }
    }"#;
    let config = emulator_config::load_str(json).unwrap();
    // Accepted: the known keys still apply, the misspelt one leaves the default.
    assert_eq!(config.queues[0].properties.lock_duration_ms, 10_000);
    assert_eq!(
        config.topics[0].subscriptions[0]
            .properties
            .max_delivery_count,
        QueueProperties::default().max_delivery_count
    );

    let ignored = ignored_keys(json);
    let expect = |field: &str, words: &[&str]| {
        let Some((_, message)) = ignored.iter().find(|(f, _)| f == field) else {
            panic!("{field} is not reported: {ignored:#?}");
        };
        for word in words {
            assert!(message.contains(word), "{message:?} lacks {word:?}");
        }
    };
    expect("Version", &["\"Version\"", "of the file"]);
    expect(
        "UserConfig.Logging.Level",
        &["\"Level\"", "UserConfig.Logging"],
    );
    expect(
        "UserConfig.Namespaces[0].Subscriptions",
        &[
            "namespace \"sbemulatorns\"",
            "known keys: Name, Queues, Topics",
        ],
    );
    expect(
        "UserConfig.Namespaces[0].Queues[0].Propreties",
        &["queue \"orders\"", "did you mean \"Properties\"?"],
    );
    expect(
        "UserConfig.Namespaces[0].Queues[0].Properties.LockDuraton",
        &["queue \"orders\"", "did you mean \"LockDuration\"?"],
    );
    expect(
        "UserConfig.Namespaces[0].Topics[0].Properties.EnablePartitioning",
        &["topic \"events\""],
    );
    expect(
        "UserConfig.Namespaces[0].Topics[0].Subscriptions[0].Properties.MaxDeliveryCont",
        &[
            "subscription \"events/Subscriptions/audit\"",
            "did you mean \"MaxDeliveryCount\"?",
        ],
    );
    let rule = "rule \"big\" of subscription \"events/Subscriptions/audit\"";
    let rule_path = "UserConfig.Namespaces[0].Topics[0].Subscriptions[0].Rules[0].Properties";
    expect(
        &format!("{rule_path}.SqlFilter.CompatibilityLevel"),
        &[rule, "known keys: SqlExpression"],
    );
    expect(
        &format!("{rule_path}.Action.SqlExpresion"),
        &[rule, "did you mean \"SqlExpression\"?"],
    );
    // A known key in another case is the key itself, not an unknown one.
    assert_eq!(ignored.len(), 9, "{ignored:#?}");
}

#[test]
fn unknown_keys_in_the_busbar_section_are_still_refused() {
    assert_single_problem(
        r#"{"Busbar": {"MaxMesageSize": 10}}"#,
        "Busbar.MaxMesageSize",
        "unknown setting",
    );
}
