//! The console's JSON API (`/api/console/*`) against a broker process, with traffic and
//! dead-letters made by the Python SDK: tokens and rights, paged browsing, and the repair
//! actions (send, resubmit, delete, purge, cancel scheduled), including a resubmit that
//! must hold across `kill -9` right after its answer.

use std::time::Duration;

use busbar_interop::Broker;
use serde_json::{Value, json};

const CONFIG: &str = r#"{
  "UserConfig": {"Namespaces": [{"Name": "sbemulatorns", "Queues": [{"Name": "orders", "Properties": {}}]}]},
  "Busbar": {"Policies": [
    {"Name": "listener", "Key": "listen-only-key", "Rights": ["Listen"]},
    {"Name": "manager", "Key": "manage-key", "Rights": ["Manage"]}
  ]}
}"#;

/// No policies: the loopback development key.
const DEVELOPMENT_CONFIG: &str = r#"{"UserConfig": {"Namespaces": [{"Name": "sbemulatorns",
  "Queues": [{"Name": "orders", "Properties": {}}, {"Name": "bulk", "Properties": {}}]}]}}"#;

/// Sends a request; returns the status code and the body as JSON (`null` if none).
fn request(
    broker: &Broker,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let (status, body) = broker.http_request(method, path, token, body);
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn get(broker: &Broker, path: &str, token: Option<&str>) -> (u16, Value) {
    request(broker, "GET", path, token, "")
}

fn post(broker: &Broker, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    request(broker, "POST", path, token, &body.to_string())
}

fn token(broker: &Broker, key_name: &str, key: &str) -> String {
    let (status, body) = post(
        broker,
        "/api/console/token",
        None,
        &json!({"key_name": key_name, "key": key}),
    );
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().expect("a token").to_owned()
}

fn seqs(page: &Value) -> Vec<u64> {
    page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["sequence_number"].as_u64().expect("sequence_number"))
        .collect()
}

fn active_count(broker: &Broker, queue: &str, token: Option<&str>) -> u64 {
    let (status, body) = get(broker, &format!("/api/queues/{queue}"), token);
    assert_eq!(status, 200, "{body}");
    body["active_message_count"].as_u64().expect("count")
}

#[test]
fn console_needs_listen_to_read_and_manage_to_change() {
    let broker = Broker::start(Some(CONFIG), &[]);
    let (status, body) = post(
        &broker,
        "/api/console/token",
        None,
        &json!({"key_name": "manager", "key": "wrong"}),
    );
    assert_eq!(status, 401, "a wrong key gets no token: {body}");
    assert!(body["error"].is_string(), "{body}");
    let (status, body) = request(&broker, "POST", "/api/console/token", None, "{not json");
    assert_eq!(status, 400, "{body}");
    let (status, body) = get(&broker, "/api/console/token", None);
    assert_eq!(
        status, 401,
        "no key-less token without the development key: {body}"
    );

    let listener = token(&broker, "listener", "listen-only-key");
    let manager = token(&broker, "manager", "manage-key");
    let browse = "/api/console/messages?entity=orders&state=active";

    let (status, body) = get(&broker, browse, None);
    assert_eq!(status, 401, "no token, nothing seen: {body}");
    let (status, body) = get(&broker, browse, Some(&listener));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"messages": [], "next_from": null}));

    let send = json!({"entity": "orders", "body": "hello"});
    for (path, body) in [
        ("/api/console/send", send.clone()),
        (
            "/api/console/resubmit",
            json!({"entity": "orders", "all": true}),
        ),
        (
            "/api/console/delete",
            json!({"entity": "orders", "state": "active", "sequence_numbers": [1]}),
        ),
        (
            "/api/console/purge",
            json!({"entity": "orders", "dead_letter": false}),
        ),
        (
            "/api/console/cancel-scheduled",
            json!({"entity": "orders", "sequence_numbers": [1]}),
        ),
    ] {
        let (status, answer) = post(&broker, path, None, &body);
        assert_eq!(status, 401, "{path} without a token: {answer}");
        let (status, answer) = post(&broker, path, Some(&listener), &body);
        assert_eq!(status, 401, "{path} with a Listen-only token: {answer}");
    }
    assert_eq!(
        active_count(&broker, "orders", Some(&manager)),
        0,
        "nothing was sent"
    );

    let (status, body) = post(&broker, "/api/console/send", Some(&manager), &send);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sequence_number"], json!(1), "{body}");
    let (status, page) = get(&broker, browse, Some(&listener));
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        page["messages"][0]["body"]["text"],
        json!("hello"),
        "{page}"
    );

    let (status, body) = get(
        &broker,
        "/api/console/messages?entity=nowhere&state=active",
        Some(&manager),
    );
    assert_eq!(status, 404, "{body}");
    let (status, body) = post(
        &broker,
        "/api/console/send",
        Some(&manager),
        &json!({"entity": "nowhere", "body": "x"}),
    );
    assert_eq!(status, 404, "{body}");
    for bad in [
        "/api/console/messages?entity=orders&state=sideways",
        "/api/console/messages?entity=orders&state=active&limit=0",
        "/api/console/messages?entity=orders&state=active&limit=101",
        "/api/console/messages?entity=orders&state=active&from=minus",
    ] {
        let (status, body) = get(&broker, bad, Some(&manager));
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, body) = request(
        &broker,
        "POST",
        "/api/console/send",
        Some(&manager),
        "{\"entity\": 5}",
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(
        &broker,
        "/api/console/send",
        Some(&manager),
        &json!({"entity": "orders", "body": "x", "scheduled_enqueue_time": "tomorrow"}),
    );
    assert_eq!(status, 400, "{body}");
}

#[test]
fn console_opens_directly_on_loopback_with_the_development_key() {
    let broker = Broker::start(Some(DEVELOPMENT_CONFIG), &[]);
    let (status, body) = get(&broker, "/api/console/token", None);
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().expect("token");
    let (status, body) = get(
        &broker,
        "/api/console/messages?entity=orders&state=active",
        Some(token),
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn dead_lettered_messages_are_browsed_resubmitted_and_survive_kill9() {
    let mut broker = Broker::start(Some(DEVELOPMENT_CONFIG), &[]);
    broker.run_python("console_traffic.py", &["orders", "deadletter", "5"]);
    let (status, page) = get(
        &broker,
        "/api/console/messages?entity=orders&state=deadletter",
        None,
    );
    assert_eq!(status, 200, "{page}");
    assert_eq!(seqs(&page), vec![1, 2, 3, 4, 5], "{page}");
    let first = &page["messages"][0];
    assert_eq!(first["state"], json!("deadletter"));
    assert_eq!(first["dead_letter_reason"], json!("bad-order"), "{first}");
    assert_eq!(
        first["dead_letter_description"],
        json!("index 0"),
        "{first}"
    );
    assert_eq!(first["message_id"], json!("dl-0"));
    assert_eq!(first["subject"], json!("order"));
    assert_eq!(
        first["body"],
        json!({"kind": "text", "text": "order 0", "size": 7})
    );
    assert_eq!(
        first["application_properties"]["n"]["value"],
        json!(0),
        "{first}"
    );
    // Peeking changed nothing: the same page again, no lock, no delivery counted.
    let (_, again) = get(
        &broker,
        "/api/console/messages?entity=orders&state=deadletter",
        None,
    );
    assert_eq!(again, page);
    assert!(first["locked_until"].is_null(), "{first}");

    // A page of two, then the next from where it said.
    let (_, two) = get(
        &broker,
        "/api/console/messages?entity=orders&state=deadletter&from=2&limit=2",
        None,
    );
    assert_eq!(seqs(&two), vec![2, 3]);
    assert_eq!(two["next_from"], json!(4));

    let (status, body) = post(
        &broker,
        "/api/console/resubmit",
        None,
        &json!({"entity": "orders", "sequence_numbers": [2, 4, 99],
                "edit": {"body": "order repaired", "application_properties": {"fixed": true}}}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["resubmitted"], json!(2), "{body}");
    assert_eq!(body["failed"][0]["sequence_number"], json!(99), "{body}");
    // Killed right after the answer: what was answered must hold.
    broker.kill9();
    broker.restart();

    let (_, dead) = get(
        &broker,
        "/api/console/messages?entity=orders&state=deadletter",
        None,
    );
    assert_eq!(
        seqs(&dead),
        vec![1, 3, 5],
        "left the dead-letter queue: {dead}"
    );
    let (_, active) = get(
        &broker,
        "/api/console/messages?entity=orders&state=active",
        None,
    );
    let messages = active["messages"].as_array().expect("messages");
    let ids: Vec<&str> = messages
        .iter()
        .map(|m| m["message_id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ids, vec!["dl-1", "dl-3"], "back once each: {active}");
    for message in messages {
        assert_eq!(
            message["body"]["text"],
            json!("order repaired"),
            "{message}"
        );
        assert_eq!(
            message["application_properties"]["fixed"]["value"],
            json!(true)
        );
        assert!(message["dead_letter_reason"].is_null(), "{message}");
        assert_eq!(message["delivery_count"], json!(0));
    }

    // Resubmit by filter: only the reason asked for, here all three left.
    let (status, body) = post(
        &broker,
        "/api/console/resubmit",
        None,
        &json!({"entity": "orders", "all": true, "filter": {"reason": "another"}}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["resubmitted"], json!(0), "{body}");

    // Delete one dead-letter, then cancel a scheduled send.
    let (status, body) = post(
        &broker,
        "/api/console/delete",
        None,
        &json!({"entity": "orders", "state": "deadletter", "sequence_numbers": [3]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["deleted"], json!(1));
    let (status, body) = post(
        &broker,
        "/api/console/send",
        None,
        &json!({"entity": "orders", "body": {"total": 3}, "content_type": "application/json",
                "session_id": null, "application_properties": {"kind": "later"},
                "scheduled_enqueue_time": "2099-01-01T00:00:00Z"}),
    );
    assert_eq!(status, 200, "{body}");
    let scheduled_seq = body["sequence_number"].as_u64().expect("seq");
    let (_, scheduled) = get(
        &broker,
        "/api/console/messages?entity=orders&state=scheduled",
        None,
    );
    assert_eq!(seqs(&scheduled), vec![scheduled_seq], "{scheduled}");
    assert_eq!(scheduled["messages"][0]["body"]["kind"], json!("json"));
    assert_eq!(
        scheduled["messages"][0]["scheduled_enqueue_time"],
        json!("2099-01-01T00:00:00.000Z")
    );
    let (status, body) = post(
        &broker,
        "/api/console/cancel-scheduled",
        None,
        &json!({"entity": "orders", "sequence_numbers": [1]}),
    );
    assert_eq!(status, 409, "not a scheduled message: {body}");
    let (status, body) = post(
        &broker,
        "/api/console/cancel-scheduled",
        None,
        &json!({"entity": "orders", "sequence_numbers": [scheduled_seq]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["cancelled"], json!(1));
    broker.kill9();
    broker.restart();
    let (_, scheduled) = get(
        &broker,
        "/api/console/messages?entity=orders&state=scheduled",
        None,
    );
    assert_eq!(seqs(&scheduled), Vec::<u64>::new(), "{scheduled}");
    let (_, dead) = get(
        &broker,
        "/api/console/messages?entity=orders&state=deadletter",
        None,
    );
    assert_eq!(seqs(&dead), vec![1, 5], "{dead}");
    // What the SDK receives: the resubmitted messages once each, the rest dead-lettered.
    broker.run_python(
        "console_traffic.py",
        &["orders", "expect", "dl-1,dl-3", "dl-0,dl-4"],
    );
}

#[test]
fn a_large_queue_is_browsed_from_the_middle_and_purged_with_progress() {
    const COUNT: u64 = 100_000;
    let broker = Broker::start(Some(DEVELOPMENT_CONFIG), &[]);
    broker.run_python("console_traffic.py", &["bulk", "fill", &COUNT.to_string()]);
    assert_eq!(active_count(&broker, "bulk", None), COUNT);

    let (status, page) = get(
        &broker,
        "/api/console/messages?entity=bulk&state=active&from=54321&limit=100",
        None,
    );
    assert_eq!(status, 200, "{page}");
    assert_eq!(seqs(&page), (54_321..54_421).collect::<Vec<_>>());
    assert_eq!(page["messages"][0]["body"]["text"], json!("m54320"));
    assert_eq!(page["next_from"], json!(54_421));
    let (_, tail) = get(
        &broker,
        &format!(
            "/api/console/messages?entity=bulk&state=active&from={}",
            COUNT - 10
        ),
        None,
    );
    assert_eq!(seqs(&tail).len(), 11);
    assert_eq!(tail["next_from"], Value::Null);

    let (status, started) = post(
        &broker,
        "/api/console/purge",
        None,
        &json!({"entity": "bulk", "dead_letter": false}),
    );
    assert_eq!(status, 202, "{started}");
    let job = started["job"].as_str().expect("job id");
    let mut seen = Vec::new();
    loop {
        let (status, progress) = get(&broker, &format!("/api/console/jobs/{job}"), None);
        assert_eq!(status, 200, "{progress}");
        assert_eq!(progress["total"], json!(COUNT), "{progress}");
        let removed = progress["removed"].as_u64().expect("removed");
        assert!(removed <= COUNT, "{progress}");
        assert!(
            seen.last().is_none_or(|&last| last <= removed),
            "progress goes forward"
        );
        seen.push(removed);
        if progress["done"] == json!(true) {
            assert!(progress["error"].is_null(), "{progress}");
            assert_eq!(removed, COUNT);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(active_count(&broker, "bulk", None), 0);
    let (status, body) = get(&broker, "/api/console/jobs/nope", None);
    assert_eq!(status, 404, "{body}");
}

const TOPIC_CONFIG: &str = r#"{"UserConfig": {"Namespaces": [{"Name": "sbemulatorns", "Topics": [{
  "Name": "sales", "Properties": {},
  "Subscriptions": [
    {"Name": "big", "Properties": {}, "Rules": [
      {"Name": "big-eu", "Properties": {"FilterType": "Sql", "SqlFilter": {"SqlExpression": "amount >= 100 AND region = 'eu'"},
                                         "Action": {"SqlExpression": "SET priority = 'high'; SET amount = amount * 2"}}}]},
    {"Name": "created", "Properties": {}, "Rules": [
      {"Name": "created-only", "Properties": {"FilterType": "Correlation", "CorrelationFilter": {"Label": "created"}}}]}
  ]}]}]}}"#;

#[test]
fn the_rule_tester_says_which_rules_take_a_message_and_what_they_set() {
    let broker = Broker::start(Some(TOPIC_CONFIG), &[]);
    let message = json!({"body": "{}", "subject": "updated",
                         "application_properties": {"amount": 150, "region": "eu"}});
    let (status, body) = post(
        &broker,
        "/api/console/rule-test",
        None,
        &json!({"topic": "sales", "message": message}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"subscriptions": [
            {"name": "big", "matched": true, "rules": [
                {"name": "big-eu", "filter": "amount >= 100 AND region = 'eu'", "matched": true,
                 "action_sets": {"priority": "high", "amount": 300}}]},
            {"name": "created", "matched": false, "rules": [
                {"name": "created-only", "filter": "subject = 'created'",
                 "matched": false, "action_sets": {}}]}
        ]})
    );
    let (status, body) = post(
        &broker,
        "/api/console/rule-test",
        None,
        &json!({"topic": "sales", "subscription": "CREATED",
                "message": {"body": "x", "subject": "created"}}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["subscriptions"][0]["matched"], json!(true), "{body}");
    assert_eq!(body["subscriptions"].as_array().map(Vec::len), Some(1));
    // Nothing was sent.
    let (_, page) = get(
        &broker,
        "/api/console/messages?entity=sales/Subscriptions/created&state=active",
        None,
    );
    assert_eq!(seqs(&page), Vec::<u64>::new(), "{page}");

    for (request, expected) in [
        (json!({"topic": "nowhere", "message": {"body": "x"}}), 404),
        (
            json!({"topic": "sales", "subscription": "nobody", "message": {"body": "x"}}),
            404,
        ),
        (json!({"topic": "sales"}), 400),
        (
            json!({"topic": "sales", "message": {"body": "x", "application_properties": {"a": [1]}}}),
            400,
        ),
    ] {
        let (status, body) = post(&broker, "/api/console/rule-test", None, &request);
        assert_eq!(status, expected, "{request}: {body}");
    }
}

fn put(broker: &Broker, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    request(broker, "PUT", path, token, &body.to_string())
}

#[test]
fn entities_and_rules_change_through_the_json_api_with_manage_only() {
    let broker = Broker::start(Some(CONFIG), &[]);
    let listener = token(&broker, "listener", "listen-only-key");
    let manager = token(&broker, "manager", "manage-key");
    let queue = "/api/console/queues/fresh";
    let settings = json!({"lock_duration_ms": 30_000, "max_delivery_count": 4});

    let (status, body) = put(&broker, queue, None, &settings);
    assert_eq!(status, 401, "{body}");
    let (status, body) = put(&broker, queue, Some(&listener), &settings);
    assert_eq!(status, 401, "{body}");
    let (status, body) = put(&broker, queue, Some(&manager), &settings);
    assert_eq!(status, 201, "{body}");
    assert_eq!(body, json!({"path": "fresh", "change": "created"}));
    let (_, info) = get(&broker, "/api/queues/fresh", Some(&manager));
    assert_eq!(info["lock_duration_ms"], json!(30_000), "{info}");
    assert_eq!(info["max_delivery_count"], json!(4), "{info}");

    // An update changes what it names and keeps the rest.
    let (status, body) = put(
        &broker,
        queue,
        Some(&manager),
        &json!({"max_delivery_count": 7, "status": "SendDisabled"}),
    );
    assert_eq!(status, 200, "{body}");
    let (_, info) = get(&broker, "/api/queues/fresh", Some(&manager));
    assert_eq!(info["lock_duration_ms"], json!(30_000), "{info}");
    assert_eq!(info["max_delivery_count"], json!(7), "{info}");
    for (bad, why) in [
        (json!({"requires_session": true}), "immutable"),
        (json!({"status": "Sideways"}), "unknown status"),
        (json!({"lock_duration_ms": 600_000}), "out of range"),
        (json!({"colour": "red"}), "unknown property"),
        (
            json!({"forward_to": "nowhere"}),
            "missing forwarding target",
        ),
    ] {
        let (status, body) = put(&broker, queue, Some(&manager), &bad);
        assert_eq!(status, 400, "{why}: {body}");
        assert!(body["error"].is_string(), "{body}");
    }

    let (status, body) = put(
        &broker,
        "/api/console/topics/sales",
        Some(&manager),
        &json!({}),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = put(
        &broker,
        "/api/console/topics/sales/subscriptions/big",
        Some(&manager),
        &json!({"max_delivery_count": 2}),
    );
    assert_eq!(status, 201, "{body}");
    let rule = "/api/console/topics/sales/subscriptions/big/rules/large";
    let (status, body) = put(
        &broker,
        rule,
        Some(&listener),
        &json!({"sql_filter": "amount > 10"}),
    );
    assert_eq!(status, 401, "{body}");
    let (status, body) = put(
        &broker,
        rule,
        Some(&manager),
        &json!({"sql_filter": "amount > 10", "sql_action": "SET size = 'large'"}),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = put(
        &broker,
        "/api/console/topics/sales/subscriptions/big/rules/broken",
        Some(&manager),
        &json!({"sql_filter": "amount >"}),
    );
    assert_eq!(status, 400, "{body}");
    let (_, topic) = get(&broker, "/api/topics/sales", Some(&manager));
    assert_eq!(
        topic["subscriptions"][0]["rules"],
        json!(["$Default", "large"]),
        "{topic}"
    );
    let (status, verdict) = post(
        &broker,
        "/api/console/rule-test",
        Some(&listener),
        &json!({"topic": "sales", "message": {"body": "x", "application_properties": {"amount": 11}}}),
    );
    assert_eq!(status, 200, "{verdict}");
    assert_eq!(
        verdict["subscriptions"][0]["rules"][1]["action_sets"],
        json!({"size": "large"}),
        "{verdict}"
    );

    let (status, body) = request(&broker, "DELETE", rule, Some(&manager), "");
    assert_eq!(status, 200, "{body}");
    let (status, body) = request(&broker, "DELETE", rule, Some(&manager), "");
    assert_eq!(status, 404, "{body}");
    let (status, body) = request(&broker, "DELETE", queue, Some(&listener), "");
    assert_eq!(status, 401, "{body}");
    let (status, body) = request(&broker, "DELETE", queue, Some(&manager), "");
    assert_eq!(status, 200, "{body}");
    let (status, _) = get(&broker, "/api/queues/fresh", Some(&manager));
    assert_eq!(status, 404);
    let (status, body) = request(&broker, "DELETE", queue, Some(&manager), "");
    assert_eq!(status, 404, "{body}");
    let (status, body) = request(
        &broker,
        "DELETE",
        "/api/console/topics/sales",
        Some(&manager),
        "",
    );
    assert_eq!(status, 200, "{body}");
    let (status, _) = get(&broker, "/api/topics/sales", Some(&manager));
    assert_eq!(status, 404);
}

#[test]
fn the_history_samples_each_entity_s_counts() {
    let broker = Broker::start(Some(DEVELOPMENT_CONFIG), &[]);
    broker.run_python("console_traffic.py", &["orders", "deadletter", "2"]);
    let (status, body) = get(&broker, "/api/console/history", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["interval_ms"], json!(10_000));
    assert!(body["entities"]["bulk"].is_array(), "{body}");
    // The next samples see the dead-letters (sampling runs every interval_ms).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let latest = loop {
        let (_, body) = get(&broker, "/api/console/history", None);
        let latest = body["entities"]["orders"]
            .as_array()
            .and_then(|points| points.last().cloned())
            .unwrap_or(Value::Null);
        if latest["dead_letter"] == json!(2) || std::time::Instant::now() > deadline {
            break latest;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(latest["dead_letter"], json!(2), "{latest}");
    assert_eq!(latest["active"], json!(0), "{latest}");
    assert_eq!(latest["incoming_total"], json!(2), "{latest}");
    assert_eq!(latest["outgoing_total"], json!(2), "{latest}");
    assert!(latest["t_ms"].as_i64().is_some_and(|t| t > 0), "{latest}");

    // `since` answers only what is newer: the page fetches the hour once, then the rest.
    let since = latest["t_ms"].as_i64().unwrap_or_default();
    let (status, newer) = get(
        &broker,
        &format!("/api/console/history?since={since}"),
        None,
    );
    assert_eq!(status, 200, "{newer}");
    let entities = newer["entities"].as_object().cloned().unwrap_or_default();
    assert!(
        entities.contains_key("orders"),
        "every entity is still named: {newer}"
    );
    for (path, points) in entities {
        let points = points.as_array().cloned().unwrap_or_default();
        assert!(
            points
                .iter()
                .all(|point| point["t_ms"].as_i64() > Some(since)),
            "{path}: samples not after {since}: {points:?}"
        );
    }
    let (status, refused) = get(&broker, "/api/console/history?since=soon", None);
    assert_eq!(status, 400, "{refused}");
}
