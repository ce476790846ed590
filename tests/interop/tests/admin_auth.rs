//! Authorization of the administration (Atom) API against a broker process, with tokens
//! shaped as the SDKs shape them: Python signs `https://host:port` (encoded by `quote_plus`),
//! JS the whole request URL lower-cased with its query; both may arrive after `Bearer `, and
//! Python sends its token up to a minute after it expired.

use std::time::{SystemTime, UNIX_EPOCH};

use busbar_interop::Broker;
use busbar_servicebus::sas::generate_token;

const CONFIG: &str = r#"{
  "UserConfig": {"Namespaces": [{"Name": "sbemulatorns", "Queues": [{"Name": "guarded", "Properties": {}}],
    "Topics": [{"Name": "events", "Properties": {}, "Subscriptions": [{"Name": "all", "Properties": {}}]}]}]},
  "Busbar": {"Policies": [
    {"Name": "listener", "Key": "listen-only-key", "Rights": ["Listen"]},
    {"Name": "manager", "Key": "manage-key", "Rights": ["Manage"]}
  ]}
}"#;

/// No policies: the loopback development key `SAS_KEY_VALUE`.
const DEVELOPMENT_CONFIG: &str = r#"{"UserConfig": {"Namespaces": [{"Name": "sbemulatorns",
  "Queues": [{"Name": "guarded", "Properties": {}}]}]}}"#;

const RULE: &str = r#"<entry xmlns="http://www.w3.org/2005/Atom"><content type="application/xml"><RuleDescription xmlns="http://schemas.microsoft.com/netservices/2010/10/servicebus/connect" xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><Filter i:type="SqlFilter"><SqlExpression>n > 1</SqlExpression></Filter></RuleDescription></content></entry>"#;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Sends a request; returns the status code and the body.
fn send(
    broker: &Broker,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    broker.http_request(method, path, token, body)
}

#[test]
fn admin_requests_need_listen_to_read_and_manage_to_change() {
    let broker = Broker::start(Some(CONFIG), &[]);
    let host = broker.http_addr().to_string();
    let python = |key_name: &str, key: &str, expiry: u64| {
        generate_token(&format!("https://{host}"), key_name, key, expiry)
    };
    let list = "/$Resources/queues?$skip=0&$top=100&api-version=2024-05";
    let rule = "/events/subscriptions/all/rules/big?api-version=2024-05";
    let in_an_hour = now() + 3600;

    let (status, body) = send(&broker, "GET", list, None, "");
    assert_eq!(status, 401, "{body}");
    assert!(
        body.starts_with("<Error><Code>401</Code><Detail>"),
        "{body}"
    );
    let wrong = python("manager", "not-the-key", in_an_hour);
    assert_eq!(send(&broker, "GET", list, Some(&wrong), "").0, 401);

    let listen = python("listener", "listen-only-key", in_an_hour);
    let (status, body) = send(&broker, "GET", list, Some(&listen), "");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("<title type=\"text\">guarded</title>"),
        "{body}"
    );
    assert_eq!(
        send(&broker, "PUT", rule, Some(&listen), RULE).0,
        401,
        "Listen can't change"
    );

    let manage = python("manager", "manage-key", in_an_hour);
    let bearer = format!("Bearer {manage}");
    let (status, body) = send(&broker, "PUT", rule, Some(&bearer), RULE);
    assert_eq!(status, 201, "{body}");

    // JS: the whole URL, lower-cased, query and all.
    let js_path = "/events/Subscriptions/all/Rules/big?api-version=2021-05";
    let js = generate_token(
        &format!("https://{host}{js_path}").to_ascii_lowercase(),
        "manager",
        "manage-key",
        now() + 300,
    );
    let (status, body) = send(&broker, "GET", js_path, Some(&js), "");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("<SqlExpression>n &gt; 1</SqlExpression>"),
        "{body}"
    );
    // A token for one URL does not open another entity.
    assert_eq!(
        send(
            &broker,
            "GET",
            "/guarded?api-version=2021-05",
            Some(&js),
            ""
        )
        .0,
        401
    );

    // Python keeps sending an expired token for up to a minute.
    let stale = python("manager", "manage-key", now() - 60);
    assert_eq!(send(&broker, "GET", list, Some(&stale), "").0, 200);
    let expired = python("manager", "manage-key", now() - 600);
    assert_eq!(send(&broker, "GET", list, Some(&expired), "").0, 401);

    // The other routes are the JSON API's as before.
    assert_eq!(send(&broker, "GET", "/health", None, "").0, 200);
    assert_eq!(
        send(&broker, "GET", "/api/queues", Some(&listen), "").0,
        200
    );
}

#[test]
fn on_the_development_key_a_wrong_key_is_still_refused() {
    let broker = Broker::start(Some(DEVELOPMENT_CONFIG), &[]);
    let host = broker.http_addr().to_string();
    let list = "/$Resources/queues?api-version=2024-05";
    assert_eq!(send(&broker, "GET", list, None, "").0, 200);
    let right = generate_token(
        &format!("https://{host}"),
        "RootManageSharedAccessKey",
        "SAS_KEY_VALUE",
        now() + 60,
    );
    assert_eq!(send(&broker, "GET", list, Some(&right), "").0, 200);
    let wrong = generate_token(
        &format!("https://{host}"),
        "RootManageSharedAccessKey",
        "wrong",
        now() + 60,
    );
    assert_eq!(send(&broker, "GET", list, Some(&wrong), "").0, 401);
}
