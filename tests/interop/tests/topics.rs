//! Topics and filtered subscriptions, driven by the Python and JS SDKs against a topic
//! configured through an emulator Config.json.

use busbar_interop::Broker;

const CONFIG: &str = r#"{
  "UserConfig": {
    "Namespaces": [{
      "Name": "sbemulatorns",
      "Queues": [
        {"Name": "auditq", "Properties": {}},
        {"Name": "fragile", "Properties": {"MaxDeliveryCount": 1, "ForwardDeadLetteredMessagesTo": "events"}}
      ],
      "Topics": [{
        "Name": "orders",
        "Properties": {"RequiresDuplicateDetection": true, "DuplicateDetectionHistoryTimeWindow": "PT1M"},
        "Subscriptions": [
          {"Name": "all", "Properties": {}},
          {"Name": "created", "Properties": {}, "Rules": [
            {"Name": "created-only", "Properties": {"FilterType": "Correlation", "CorrelationFilter": {"Label": "created"}}}
          ]},
          {"Name": "big", "Properties": {}, "Rules": [
            {"Name": "big-eu", "Properties": {"FilterType": "Sql", "SqlFilter": {"SqlExpression": "amount >= 100 AND region IN ('eu', 'uk')"}}}
          ]},
          {"Name": "tagged", "Properties": {}, "Rules": [
            {"Name": "vip", "Properties": {"FilterType": "Sql", "SqlFilter": {"SqlExpression": "vip = TRUE"},
                                           "Action": {"SqlExpression": "SET priority = 'high'; REMOVE internal"}}},
            {"Name": "any-region", "Properties": {"FilterType": "Sql", "SqlFilter": {"SqlExpression": "EXISTS(region)"}}}
          ]},
          {"Name": "audit", "Properties": {"ForwardTo": "auditq"}},
          {"Name": "ruled", "Properties": {}}
        ]
      }, {
        "Name": "events",
        "Properties": {},
        "Subscriptions": [
          {"Name": "typed", "Properties": {}, "Rules": [
            {"Name": "big", "Properties": {"FilterType": "Sql", "SqlFilter": {"SqlExpression": "amount > 10"}}}
          ]},
          {"Name": "strict", "Properties": {"DeadLetteringOnFilterEvaluationExceptions": false}, "Rules": [
            {"Name": "big", "Properties": {"FilterType": "Sql", "SqlFilter": {"SqlExpression": "amount > 10"}}}
          ]},
          {"Name": "sessions", "Properties": {"RequiresSession": true}}
        ]
      }]
    }],
    "Logging": {"Type": "File"}
  }
}"#;

#[test]
fn python_filters_actions_duplicates_and_forwarding() {
    let broker = Broker::start(Some(CONFIG), &[]);
    broker.run_python("topic_subscriptions.py", &["orders", "filters"]);
}

#[test]
fn python_topic_counts_and_rules_over_http() {
    let broker = Broker::start(Some(CONFIG), &[]);
    let http = broker.http_addr().to_string();
    broker.run_python("topic_subscriptions.py", &["orders", "counts", &http]);

    let outcome = broker.run_cli(&["topics", "orders", "--http", &http]);
    if !matches!(outcome.status, Some(status) if status.success()) {
        broker.fail(&format!(
            "`busbar topics orders` failed:\n{}",
            outcome.output
        ));
    }
    let mut lines = outcome.output.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    let cell = |row: &[&str], title: &str| {
        header
            .iter()
            .position(|t| *t == title)
            .and_then(|i| row.get(i).copied())
            .map(str::to_owned)
    };
    let names: Vec<&str> = rows.iter().filter_map(|r| r.first().copied()).collect();
    if names.len() != 6 || !names.contains(&"orders/Subscriptions/created") {
        broker.fail(&format!(
            "`busbar topics orders` rows: {names:?}\n{}",
            outcome.output
        ));
    }
    let created = rows
        .iter()
        .find(|r| r.first() == Some(&"orders/Subscriptions/created"))
        .map(Vec::as_slice)
        .unwrap_or_default();
    let got = (cell(created, "ACTIVE"), cell(created, "DEAD-LETTER"));
    if got != (Some("1".to_owned()), Some("1".to_owned())) {
        broker.fail(&format!(
            "`busbar topics orders`: created should show ACTIVE 1, DEAD-LETTER 1, got {got:?}\n{}",
            outcome.output
        ));
    }
}

#[test]
fn python_filter_failures_sessionless_copies_and_forwarded_dead_letters() {
    let broker = Broker::start(Some(CONFIG), &[]);
    broker.run_python("topic_subscriptions.py", &["events", "deadletters"]);
}

#[test]
fn python_scheduled_and_cancelled_on_a_topic() {
    let broker = Broker::start(Some(CONFIG), &[]);
    broker.run_python("topic_subscriptions.py", &["orders", "schedule"]);
}

#[test]
fn subscriptions_schedules_and_the_topic_duplicate_window_survive_kill_9() {
    let mut broker = Broker::start(Some(CONFIG), &[]);
    broker.run_python("topic_subscriptions.py", &["orders", "send"]);
    broker.kill9();
    broker.restart();
    broker.run_python("topic_subscriptions.py", &["orders", "check"]);
}

#[test]
fn js_filters_and_actions() {
    let broker = Broker::start(Some(CONFIG), &[]);
    broker.run_node("topic_subscriptions.mjs", &["orders"]);
}

#[test]
fn js_rule_manager_changes_survive_kill_9() {
    let mut broker = Broker::start(Some(CONFIG), &[]);
    broker.run_node("rule_manager.mjs", &["orders", "rules"]);
    broker.kill9();
    broker.restart();
    broker.run_node("rule_manager.mjs", &["orders", "after-restart"]);
}
