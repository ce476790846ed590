//! The administration API over a real socket, with request bodies as the Python and JS
//! SDKs send them (captured from azure-servicebus 7.15.0 and @azure/service-bus 7.9.5),
//! against an in-memory entity table that keeps what it is given.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use busbar_http::atom::*;
use busbar_http::{Access, Admin, HealthState, QueueInfo, TopicInfo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Grants Manage to `SharedAccessSignature manage` and Listen to `SharedAccessSignature listen`.
struct Tokens;

impl Admin for Tokens {
    fn authorize(
        &self,
        authorization: Option<&str>,
        _: &str,
        access: Access,
    ) -> Result<(), String> {
        match (authorization, access) {
            (Some("SharedAccessSignature manage"), _) => Ok(()),
            (Some("SharedAccessSignature listen"), Access::Read) => Ok(()),
            _ => Err("claim is empty or insufficient".to_owned()),
        }
    }
    fn queues(&self) -> Vec<QueueInfo> {
        Vec::new()
    }
    fn queue(&self, _: &str) -> Option<QueueInfo> {
        None
    }
    fn topics(&self) -> Vec<TopicInfo> {
        Vec::new()
    }
    fn topic(&self, _: &str) -> Option<TopicInfo> {
        None
    }
}

#[derive(Default)]
struct Tables {
    queues: BTreeMap<String, QueueView>,
    topics: BTreeMap<String, TopicView>,
    subscriptions: BTreeMap<(String, String), SubscriptionView>,
    rules: BTreeMap<(String, String), Vec<RuleView>>,
}

/// Keeps entities in memory, keyed by lower-cased name.
#[derive(Default)]
struct Memory(Mutex<Tables>);

fn key(name: &str) -> String {
    name.to_ascii_lowercase()
}

fn runtime() -> Runtime {
    Runtime {
        counts: MessageCounts {
            active: 3,
            dead_letter: 2,
            scheduled: 1,
            transfer: 0,
            transfer_dead_letter: 0,
        },
        size_in_bytes: 10,
        created_at_ms: 1_000,
        updated_at_ms: 2_000,
        accessed_at_ms: None,
    }
}

fn put<V: Clone>(
    map: &mut BTreeMap<String, V>,
    other_kind: bool,
    name: &str,
    mode: PutMode,
    view: V,
) -> Result<V, ManagementError> {
    match (mode, map.contains_key(&key(name)) || other_kind) {
        (PutMode::Create, true) => Err(ManagementError::Conflict(format!("'{name}' exists"))),
        (PutMode::Update, false) => Err(ManagementError::NotFound(format!("no '{name}'"))),
        _ => {
            map.insert(key(name), view.clone());
            Ok(view)
        }
    }
}

impl Management for Memory {
    fn namespace(&self) -> NamespaceView {
        NamespaceView {
            name: "busbar".to_owned(),
            created_at_ms: 0,
            modified_at_ms: 0,
        }
    }
    fn queue(&self, name: &str) -> Option<QueueView> {
        self.0.lock().unwrap().queues.get(&key(name)).cloned()
    }
    fn queues(&self) -> Vec<QueueView> {
        self.0.lock().unwrap().queues.values().cloned().collect()
    }
    fn put_queue(
        &self,
        name: &str,
        settings: QueueSettings,
        mode: PutMode,
    ) -> Result<QueueView, ManagementError> {
        let mut t = self.0.lock().unwrap();
        let other = t.topics.contains_key(&key(name));
        let view = QueueView {
            name: name.to_owned(),
            settings,
            runtime: runtime(),
        };
        put(&mut t.queues, other, name, mode, view)
    }
    fn delete_queue<'a>(&'a self, name: &'a str) -> Pending<'a, ()> {
        let mut t = self.0.lock().unwrap();
        let removed = t.queues.remove(&key(name));
        Box::pin(std::future::ready(
            removed
                .map(drop)
                .ok_or(ManagementError::NotFound(name.to_owned())),
        ))
    }
    fn topic(&self, name: &str) -> Option<TopicView> {
        self.0.lock().unwrap().topics.get(&key(name)).cloned()
    }
    fn topics(&self) -> Vec<TopicView> {
        self.0.lock().unwrap().topics.values().cloned().collect()
    }
    fn put_topic(
        &self,
        name: &str,
        settings: TopicSettings,
        mode: PutMode,
    ) -> Result<TopicView, ManagementError> {
        let mut t = self.0.lock().unwrap();
        let other = t.queues.contains_key(&key(name));
        let view = TopicView {
            name: name.to_owned(),
            settings,
            runtime: runtime(),
            subscription_count: 0,
        };
        put(&mut t.topics, other, name, mode, view)
    }
    fn delete_topic<'a>(&'a self, name: &'a str) -> Pending<'a, ()> {
        let mut t = self.0.lock().unwrap();
        t.subscriptions.retain(|(topic, _), _| *topic != key(name));
        let removed = t.topics.remove(&key(name));
        Box::pin(std::future::ready(
            removed
                .map(drop)
                .ok_or(ManagementError::NotFound(name.to_owned())),
        ))
    }
    fn subscription(&self, topic: &str, name: &str) -> Option<SubscriptionView> {
        self.0
            .lock()
            .unwrap()
            .subscriptions
            .get(&(key(topic), key(name)))
            .cloned()
    }
    fn subscriptions(&self, topic: &str) -> Result<Vec<SubscriptionView>, ManagementError> {
        let t = self.0.lock().unwrap();
        if !t.topics.contains_key(&key(topic)) {
            return Err(ManagementError::NotFound(topic.to_owned()));
        }
        Ok(t.subscriptions
            .iter()
            .filter(|((tk, _), _)| *tk == key(topic))
            .map(|(_, s)| s.clone())
            .collect())
    }
    fn put_subscription(
        &self,
        topic: &str,
        name: &str,
        settings: SubscriptionSettings,
        mode: PutMode,
    ) -> Result<SubscriptionView, ManagementError> {
        let mut t = self.0.lock().unwrap();
        if !t.topics.contains_key(&key(topic)) {
            return Err(ManagementError::NotFound(format!("no topic '{topic}'")));
        }
        let id = (key(topic), key(name));
        match (mode, t.subscriptions.contains_key(&id)) {
            (PutMode::Create, true) => return Err(ManagementError::Conflict(name.to_owned())),
            (PutMode::Update, false) => return Err(ManagementError::NotFound(name.to_owned())),
            _ => {}
        }
        if mode == PutMode::Create {
            let first = settings.default_rule.clone().unwrap_or_default();
            t.rules.insert(
                id.clone(),
                vec![RuleView {
                    name: DEFAULT_RULE_NAME.to_owned(),
                    rule: first,
                    created_at_ms: 1_000,
                }],
            );
        }
        let view = SubscriptionView {
            topic: topic.to_owned(),
            name: name.to_owned(),
            settings,
            runtime: runtime(),
        };
        t.subscriptions.insert(id, view.clone());
        Ok(view)
    }
    fn delete_subscription<'a>(&'a self, topic: &'a str, name: &'a str) -> Pending<'a, ()> {
        let mut t = self.0.lock().unwrap();
        let removed = t.subscriptions.remove(&(key(topic), key(name)));
        Box::pin(std::future::ready(
            removed
                .map(drop)
                .ok_or(ManagementError::NotFound(name.to_owned())),
        ))
    }
    fn rule(&self, topic: &str, subscription: &str, name: &str) -> Option<RuleView> {
        let t = self.0.lock().unwrap();
        t.rules
            .get(&(key(topic), key(subscription)))?
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(name))
            .cloned()
    }
    fn rules(&self, topic: &str, subscription: &str) -> Result<Vec<RuleView>, ManagementError> {
        let t = self.0.lock().unwrap();
        t.rules
            .get(&(key(topic), key(subscription)))
            .cloned()
            .ok_or(ManagementError::NotFound(subscription.to_owned()))
    }
    fn put_rule(
        &self,
        topic: &str,
        subscription: &str,
        name: &str,
        rule: Rule,
        mode: PutMode,
    ) -> Result<RuleView, ManagementError> {
        let mut t = self.0.lock().unwrap();
        let rules = t
            .rules
            .get_mut(&(key(topic), key(subscription)))
            .ok_or(ManagementError::NotFound(subscription.to_owned()))?;
        let view = RuleView {
            name: name.to_owned(),
            rule,
            created_at_ms: 5_000,
        };
        match (
            mode,
            rules.iter().position(|r| r.name.eq_ignore_ascii_case(name)),
        ) {
            (PutMode::Create, Some(_)) => Err(ManagementError::Conflict(name.to_owned())),
            (PutMode::Update, None) => Err(ManagementError::NotFound(name.to_owned())),
            (_, Some(i)) => {
                rules[i] = view.clone();
                Ok(view)
            }
            (_, None) => {
                rules.push(view.clone());
                Ok(view)
            }
        }
    }
    fn delete_rule(
        &self,
        topic: &str,
        subscription: &str,
        name: &str,
    ) -> Result<(), ManagementError> {
        let mut t = self.0.lock().unwrap();
        let rules = t
            .rules
            .get_mut(&(key(topic), key(subscription)))
            .ok_or(ManagementError::NotFound(subscription.to_owned()))?;
        let before = rules.len();
        rules.retain(|r| !r.name.eq_ignore_ascii_case(name));
        if rules.len() == before {
            return Err(ManagementError::NotFound(name.to_owned()));
        }
        Ok(())
    }
}

struct Server {
    address: std::net::SocketAddr,
}

struct Answer {
    status: u16,
    headers: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

async fn start() -> Server {
    let health = HealthState::new();
    health.set_ready(true);
    let admin: Arc<dyn Admin> = Arc::new(Tokens);
    let router = busbar_http::router_with_management(health, admin, Arc::new(Memory::default()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(busbar_http::serve(listener, router, std::future::pending()));
    Server { address }
}

impl Server {
    async fn send(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Answer {
        let mut stream = TcpStream::connect(self.address).await.unwrap();
        let mut request = format!(
            "{method} {target} HTTP/1.1\r\nHost: localhost:5300\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        let raw = String::from_utf8(raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        Answer {
            status,
            headers: head.to_owned(),
            body: body.to_owned(),
        }
    }

    async fn get(&self, target: &str) -> Answer {
        self.send("GET", target, &[("Authorization", MANAGE)], "")
            .await
    }

    async fn put(&self, target: &str, body: &str) -> Answer {
        self.send(
            "PUT",
            target,
            &[
                ("Authorization", MANAGE),
                ("Content-Type", "application/atom+xml"),
            ],
            body,
        )
        .await
    }

    async fn update(&self, target: &str, body: &str) -> Answer {
        self.send(
            "PUT",
            target,
            &[("Authorization", MANAGE), ("If-Match", "*")],
            body,
        )
        .await
    }

    async fn delete(&self, target: &str) -> Answer {
        self.send("DELETE", target, &[("Authorization", MANAGE)], "")
            .await
    }
}

const MANAGE: &str = "SharedAccessSignature manage";
const V: &str = "api-version=2024-05";

fn python_entry(description: &str) -> String {
    format!(
        r#"<?xml version='1.0' encoding='utf-8'?>
<ns0:entry xmlns:ns0="http://www.w3.org/2005/Atom" xmlns="http://schemas.microsoft.com/netservices/2010/10/servicebus/connect" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><ns0:content type="application/xml">{description}</ns0:content></ns0:entry>"#
    )
}

fn js_entry(description: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><entry xmlns="http://www.w3.org/2005/Atom"><updated>2026-11-24T14:59:25.801Z</updated><content type="application/xml">{description}</content></entry>"#
    )
}

/// The text of every `<name>` element in `xml`.
fn all(xml: &str, name: &str) -> Vec<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    xml.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split_once(&close).map(|(v, _)| v.to_owned()))
        .collect()
}

fn one(xml: &str, name: &str) -> String {
    all(xml, name)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no <{name}> in {xml}"))
}

#[tokio::test]
async fn python_queue_lifecycle() {
    let server = start().await;
    let created = server
        .put(&format!("/q1?{V}"), &python_entry("<QueueDescription />"))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(created.header("content-type").unwrap().contains("xml"));
    let body = &created.body;
    assert_eq!(one(body, "LockDuration"), "PT1M");
    assert_eq!(one(body, "MaxDeliveryCount"), "10");
    assert_eq!(one(body, "MaxSizeInMegabytes"), "1024");
    assert_eq!(
        one(body, "DefaultMessageTimeToLive"),
        "P10675199DT2H48M5.4775807S"
    );
    assert_eq!(one(body, "DuplicateDetectionHistoryTimeWindow"), "PT10M");
    assert_eq!(one(body, "Status"), "Active");
    assert_eq!(one(body, "MaxMessageSizeInKilobytes"), "256");
    assert!(body.contains(r#"<title type="text">q1</title>"#));
    assert!(body.contains(
        r#"<CountDetails xmlns:d2p1="http://schemas.microsoft.com/netservices/2011/06/servicebus"><d2p1:ActiveMessageCount>3</d2p1:ActiveMessageCount><d2p1:DeadLetterMessageCount>2</d2p1:DeadLetterMessageCount><d2p1:ScheduledMessageCount>1</d2p1:ScheduledMessageCount><d2p1:TransferMessageCount>0</d2p1:TransferMessageCount><d2p1:TransferDeadLetterMessageCount>0</d2p1:TransferDeadLetterMessageCount></CountDetails>"#
    ));
    assert_eq!(one(body, "MessageCount"), "6");
    assert!(body.contains("<id>https://localhost:5300/q1</id>"));

    let again = server
        .put(&format!("/q1?{V}"), &python_entry("<QueueDescription />"))
        .await;
    assert_eq!(again.status, 409);
    assert!(
        again
            .body
            .starts_with("<Error><Code>409</Code><Detail>SubCode=40900. Conflict."),
        "{}",
        again.body
    );

    // The full object Python sends back on update: read-only fields, mangled "infinite".
    let update = r#"<QueueDescription><LockDuration>PT1M</LockDuration><MaxSizeInMegabytes>1024</MaxSizeInMegabytes><RequiresDuplicateDetection>false</RequiresDuplicateDetection><RequiresSession>false</RequiresSession><DefaultMessageTimeToLive>P10675199DT2H48M5.477539S</DefaultMessageTimeToLive><DeadLetteringOnMessageExpiration>false</DeadLetteringOnMessageExpiration><DuplicateDetectionHistoryTimeWindow>PT10M</DuplicateDetectionHistoryTimeWindow><MaxDeliveryCount>5</MaxDeliveryCount><EnableBatchedOperations>true</EnableBatchedOperations><SizeInBytes>0</SizeInBytes><MessageCount>0</MessageCount><IsAnonymousAccessible>false</IsAnonymousAccessible><Status>Active</Status><CreatedAt>2026-11-24T14:59:15.564Z</CreatedAt><UpdatedAt>2026-11-24T14:59:15.564Z</UpdatedAt><AccessedAt>0001-01-01T00:00:00.000Z</AccessedAt><SupportOrdering>true</SupportOrdering><CountDetails><d2p1:ActiveMessageCount>0</d2p1:ActiveMessageCount><d2p1:DeadLetterMessageCount>0</d2p1:DeadLetterMessageCount><d2p1:ScheduledMessageCount>0</d2p1:ScheduledMessageCount><d2p1:TransferDeadLetterMessageCount>0</d2p1:TransferDeadLetterMessageCount><d2p1:TransferMessageCount>0</d2p1:TransferMessageCount></CountDetails><AutoDeleteOnIdle>P10675199DT2H48M5.477539S</AutoDeleteOnIdle><EnablePartitioning>false</EnablePartitioning><EntityAvailabilityStatus>Available</EntityAvailabilityStatus><EnableExpress>false</EnableExpress><MaxMessageSizeInKilobytes>256</MaxMessageSizeInKilobytes></QueueDescription>"#;
    let body = python_entry(update).replace(
        "xmlns:ns0=",
        "xmlns:d2p1=\"http://schemas.microsoft.com/netservices/2011/06/servicebus\" xmlns:ns0=",
    );
    let updated = server.update(&format!("/q1?{V}"), &body).await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    let got = server.get(&format!("/q1?enrich=false&{V}")).await;
    assert_eq!(got.status, 200);
    assert_eq!(one(&got.body, "MaxDeliveryCount"), "5");
    assert_eq!(
        one(&got.body, "AutoDeleteOnIdle"),
        "P10675199DT2H48M5.4775807S"
    );

    let session = server
        .update(
            &format!("/q1?{V}"),
            &body.replace("<RequiresSession>false", "<RequiresSession>true"),
        )
        .await;
    assert_eq!(session.status, 400);
    assert!(session.body.contains(
        "The value for the RequiresSession property of an existing Queue cannot be changed."
    ));
    let ghost = server.update(&format!("/ghost?{V}"), &body).await;
    assert_eq!(ghost.status, 404, "{}", ghost.body);

    let missing = server.get(&format!("/nope?enrich=false&{V}")).await;
    assert_eq!(missing.status, 200);
    assert!(
        missing.body.contains("<feed") && !missing.body.contains("<entry"),
        "{}",
        missing.body
    );

    let deleted = server.delete(&format!("/q1?{V}")).await;
    assert_eq!((deleted.status, deleted.body.as_str()), (200, ""));
    assert_eq!(server.delete(&format!("/q1?{V}")).await.status, 404);
}

#[tokio::test]
async fn every_setting_round_trips_and_forward_targets_become_urls() {
    let server = start().await;
    assert_eq!(
        server
            .put(&format!("/q1?{V}"), &python_entry("<QueueDescription />"))
            .await
            .status,
        201
    );
    let settings = "<QueueDescription><LockDuration>PT45S</LockDuration><MaxSizeInMegabytes>2048</MaxSizeInMegabytes><RequiresDuplicateDetection>true</RequiresDuplicateDetection><RequiresSession>true</RequiresSession><DefaultMessageTimeToLive>P1D</DefaultMessageTimeToLive><DeadLetteringOnMessageExpiration>true</DeadLetteringOnMessageExpiration><DuplicateDetectionHistoryTimeWindow>PT5M</DuplicateDetectionHistoryTimeWindow><MaxDeliveryCount>7</MaxDeliveryCount><EnableBatchedOperations>false</EnableBatchedOperations><AutoDeleteOnIdle>PT2H</AutoDeleteOnIdle><ForwardTo>sb://localhost:5300/q1</ForwardTo><UserMetadata>a &amp;&lt;&gt; b</UserMetadata><ForwardDeadLetteredMessagesTo>q1</ForwardDeadLetteredMessagesTo><MaxMessageSizeInKilobytes>1024</MaxMessageSizeInKilobytes></QueueDescription>";
    let created = server
        .put(&format!("/q2?{V}"), &python_entry(settings))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    for (name, value) in [
        ("LockDuration", "PT45S"),
        ("MaxSizeInMegabytes", "2048"),
        ("RequiresDuplicateDetection", "true"),
        ("RequiresSession", "true"),
        ("DefaultMessageTimeToLive", "P1D"),
        ("DeadLetteringOnMessageExpiration", "true"),
        ("DuplicateDetectionHistoryTimeWindow", "PT5M"),
        ("MaxDeliveryCount", "7"),
        ("EnableBatchedOperations", "false"),
        ("AutoDeleteOnIdle", "PT2H"),
        ("ForwardTo", "sb://localhost:5300/q1"),
        ("ForwardDeadLetteredMessagesTo", "sb://localhost:5300/q1"),
        ("UserMetadata", "a &amp;&lt;&gt; b"),
        ("MaxMessageSizeInKilobytes", "1024"),
    ] {
        assert_eq!(one(&created.body, name), value, "{name}");
    }
    let nowhere = server.put(&format!("/q3?{V}"), &python_entry("<QueueDescription><ForwardTo>sb://localhost:5300/nope</ForwardTo></QueueDescription>")).await;
    assert_eq!(nowhere.status, 400);
    let itself = server
        .put(
            &format!("/q3?{V}"),
            &python_entry("<QueueDescription><ForwardTo>q3</ForwardTo></QueueDescription>"),
        )
        .await;
    assert_eq!(itself.status, 400);
}

#[tokio::test]
async fn bad_requests_are_refused_with_400() {
    let server = start().await;
    for (path, body) in [
        (
            "/q",
            python_entry("<QueueDescription><Bogus>1</Bogus></QueueDescription>"),
        ),
        (
            "/q",
            python_entry("<QueueDescription><LockDuration>PT6M</LockDuration></QueueDescription>"),
        ),
        (
            "/q",
            python_entry(
                "<QueueDescription><LockDuration>00:01:00</LockDuration></QueueDescription>",
            ),
        ),
        (
            "/q",
            python_entry(
                "<QueueDescription><MaxDeliveryCount>0</MaxDeliveryCount></QueueDescription>",
            ),
        ),
        (
            "/q",
            python_entry(
                "<QueueDescription><AutoDeleteOnIdle>PT1M</AutoDeleteOnIdle></QueueDescription>",
            ),
        ),
        (
            "/q",
            python_entry(&format!(
                "<QueueDescription><UserMetadata>{}</UserMetadata></QueueDescription>",
                "x".repeat(1025)
            )),
        ),
        (
            "/q",
            python_entry("<QueueDescription><Status>Sleeping</Status></QueueDescription>"),
        ),
        ("/q", python_entry("<RuleDescription/>")),
        ("/q", "<QueueDescription/>".to_owned()),
        ("/q", "not xml <".to_owned()),
        ("/a%40b", python_entry("<QueueDescription />")),
        ("/%2Fa", python_entry("<QueueDescription />")),
    ] {
        let answer = server.put(&format!("{path}?{V}"), &body).await;
        assert_eq!(answer.status, 400, "{body} got {}", answer.body);
        assert!(
            answer
                .body
                .starts_with("<Error><Code>400</Code><Detail>SubCode=40000."),
            "{}",
            answer.body
        );
        assert!(answer.header("content-type").unwrap().contains("xml"));
    }
}

#[tokio::test]
async fn lists_page_as_both_sdks_expect() {
    let server = start().await;
    for name in ["q1", "q2", "q3"] {
        assert_eq!(
            server
                .put(
                    &format!("/{name}?{V}"),
                    &python_entry("<QueueDescription />")
                )
                .await
                .status,
            201
        );
    }
    let all_of_them = server
        .get(&format!("/$Resources/queues?$skip=0&$top=100&{V}"))
        .await;
    assert_eq!(all_of_them.body.matches("<entry").count(), 3);
    assert!(!all_of_them.body.contains("rel=\"next\""));

    let first = server
        .get(&format!("/$Resources/queues?$skip=1&$top=1&{V}"))
        .await;
    assert_eq!(first.status, 200);
    assert!(first.header("content-type").unwrap().contains("xml"));
    let links: Vec<&str> = first.body.split("<link ").skip(1).collect();
    assert!(links[0].starts_with("rel=\"self\""));
    assert!(links[1].starts_with("rel=\"next\" href=\"https://localhost:5300/$Resources/queues?$skip=2&amp;$top=1&amp;api-version=2024-05\""), "{}", links[1]);
    assert!(first.body.contains(r#"<title type="text">q2</title>"#));
    assert!(first.body.contains("<id>https://localhost:5300/q2</id>"));
    let last = server
        .get(&format!("/$Resources/queues?$skip=2&$top=1&{V}"))
        .await;
    assert!(last.body.contains(r#"<title type="text">q3</title>"#));
    assert!(!last.body.contains("rel=\"next\""));

    // JS: capital Q, percent-encoded parameter names, `$top` alone.
    let js = server
        .get("/$Resources/Queues?api-version=2021-05&%24top=2")
        .await;
    assert_eq!(js.body.matches("<entry").count(), 2);
    assert!(js.body.contains(
        "rel=\"next\" href=\"https://localhost:5300/$Resources/Queues?$skip=2&amp;$top=2"
    ));
}

#[tokio::test]
async fn topics_subscriptions_and_rules_from_both_sdks() {
    let server = start().await;
    let topic = server.put(&format!("/t1?{V}"), &python_entry("<TopicDescription><MaxSizeInMegabytes>2048</MaxSizeInMegabytes><DefaultMessageTimeToLive>PT1H</DefaultMessageTimeToLive><RequiresDuplicateDetection>true</RequiresDuplicateDetection><SupportOrdering>true</SupportOrdering><UserMetadata>tm</UserMetadata></TopicDescription>")).await;
    assert_eq!(topic.status, 201, "{}", topic.body);
    assert_eq!(one(&topic.body, "DefaultMessageTimeToLive"), "PT1H");
    assert_eq!(one(&topic.body, "SubscriptionCount"), "0");
    assert_eq!(
        server
            .put(&format!("/t1?{V}"), &python_entry("<QueueDescription />"))
            .await
            .status,
        409
    );
    assert_eq!(
        server
            .put(
                &format!("/nope/subscriptions/s?{V}"),
                &python_entry("<SubscriptionDescription/>")
            )
            .await
            .status,
        404
    );

    let sub = server.put("/t1/Subscriptions/js1?api-version=2021-05", &js_entry(r#"<SubscriptionDescription xmlns="http://schemas.microsoft.com/netservices/2010/10/servicebus/connect" xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><LockDuration>PT30S</LockDuration></SubscriptionDescription>"#)).await;
    assert_eq!(sub.status, 201, "{}", sub.body);
    assert_eq!(
        one(&sub.body, "DeadLetteringOnFilterEvaluationExceptions"),
        "true"
    );
    let listed = server.get("/t1/Subscriptions/?api-version=2021-05").await;
    assert!(
        listed
            .body
            .contains("<id>https://localhost:5300/t1/Subscriptions/js1</id>"),
        "{}",
        listed.body
    );

    let rules = server
        .get("/t1/Subscriptions/js1/Rules/?api-version=2021-05")
        .await;
    assert!(
        rules
            .body
            .contains(r#"<title type="text">$Default</title>"#)
    );
    assert!(
        rules
            .body
            .contains(r#"<Filter i:type="TrueFilter"><SqlExpression>1=1</SqlExpression>"#),
        "{}",
        rules.body
    );
    assert!(rules.body.contains(r#"<Action i:type="EmptyRuleAction"/>"#));

    let python_sql = r#"<RuleDescription><Filter xsi:type="SqlFilter"><SqlExpression>color = @c AND n &gt; @n</SqlExpression><CompatibilityLevel>20</CompatibilityLevel><Parameters><KeyValueOfstringanyType><Key>@c</Key><Value xsi:type="d6p1:string" xmlns:d6p1="http://www.w3.org/2001/XMLSchema">red</Value></KeyValueOfstringanyType><KeyValueOfstringanyType><Key>@n</Key><Value xsi:type="d6p1:int" xmlns:d6p1="http://www.w3.org/2001/XMLSchema">2</Value></KeyValueOfstringanyType></Parameters><RequiresPreprocessing>true</RequiresPreprocessing></Filter><Action xsi:type="SqlRuleAction"><SqlExpression>SET x = @v</SqlExpression><CompatibilityLevel>20</CompatibilityLevel><Parameters><KeyValueOfstringanyType><Key>@v</Key><Value xsi:type="d6p1:double" xmlns:d6p1="http://www.w3.org/2001/XMLSchema">1.5</Value></KeyValueOfstringanyType></Parameters><RequiresPreprocessing>true</RequiresPreprocessing></Action><Name>r_sql</Name></RuleDescription>"#;
    let created = server
        .put(
            &format!("/t1/subscriptions/js1/rules/r_sql?{V}"),
            &python_entry(python_sql),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let got = server
        .get(&format!(
            "/t1/subscriptions/js1/rules/r_sql?enrich=false&{V}"
        ))
        .await;
    assert!(
        got.body.contains(
            r#"<Filter i:type="SqlFilter"><SqlExpression>color = @c AND n &gt; @n</SqlExpression>"#
        ),
        "{}",
        got.body
    );
    assert!(got.body.contains(r#"<Key>@n</Key><Value i:type="d6p1:int" xmlns:d6p1="http://www.w3.org/2001/XMLSchema">2</Value>"#));
    assert!(
        got.body.contains(
            r#"<Action i:type="SqlRuleAction"><SqlExpression>SET x = @v</SqlExpression>"#
        )
    );
    assert!(got.body.contains(
        r#"<Value i:type="d6p1:double" xmlns:d6p1="http://www.w3.org/2001/XMLSchema">1.5</Value>"#
    ));
    assert!(
        got.body
            .contains(r#"xmlns:i="http://www.w3.org/2001/XMLSchema-instance""#)
    );

    let js_rule = r#"<RuleDescription xmlns="http://schemas.microsoft.com/netservices/2010/10/servicebus/connect" xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><Filter p4:type="SqlFilter" xmlns:p4="http://www.w3.org/2001/XMLSchema-instance"><SqlExpression>a = @p</SqlExpression><Parameters><KeyValueOfstringanyType><Key>@p</Key><Value p4:type="l28:double" xmlns:l28="http://www.w3.org/2001/XMLSchema">3</Value></KeyValueOfstringanyType></Parameters></Filter><Action p4:type="SqlRuleAction" xmlns:p4="http://www.w3.org/2001/XMLSchema-instance"><SqlExpression>SET b = 1</SqlExpression></Action><Name>jr1</Name></RuleDescription>"#;
    let created = server
        .put(
            "/t1/Subscriptions/js1/Rules/jr1?api-version=2021-05",
            &js_entry(js_rule),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(
        created.body.contains(
            r#"<Value i:type="d6p1:double" xmlns:d6p1="http://www.w3.org/2001/XMLSchema">3</Value>"#
        ),
        "{}",
        created.body
    );
    assert!(!created.body.contains("l28:") && !created.body.contains("p4:"));

    let correlation = r#"<RuleDescription><Filter xsi:type="CorrelationFilter"><CorrelationId>cid</CorrelationId><Label>lbl</Label><Properties><KeyValueOfstringanyType><Key>big</Key><Value xsi:type="d6p1:long" xmlns:d6p1="http://www.w3.org/2001/XMLSchema">1099511627776</Value></KeyValueOfstringanyType><KeyValueOfstringanyType><Key>td</Key><Value xsi:type="d6p1:duration" xmlns:d6p1="http://www.w3.org/2001/XMLSchema">PT3M</Value></KeyValueOfstringanyType></Properties></Filter><Action xsi:type="EmptyRuleAction" /><Name>r_corr</Name></RuleDescription>"#;
    let created = server
        .put(
            &format!("/t1/subscriptions/js1/rules/r_corr?{V}"),
            &python_entry(correlation),
        )
        .await;
    assert!(created.body.contains(r#"<Filter i:type="CorrelationFilter"><CorrelationId>cid</CorrelationId><Label>lbl</Label><Properties>"#), "{}", created.body);
    assert!(created.body.contains(r#"<Value i:type="d6p1:long" xmlns:d6p1="http://www.w3.org/2001/XMLSchema">1099511627776</Value>"#));
    assert!(created.body.contains(r#"<Value i:type="d6p1:duration" xmlns:d6p1="http://www.w3.org/2001/XMLSchema">PT3M</Value>"#));
    assert_eq!(
        server
            .put(
                &format!("/t1/subscriptions/js1/rules/r_corr?{V}"),
                &python_entry(correlation)
            )
            .await
            .status,
        409
    );

    let untyped = python_entry(
        r#"<RuleDescription><Filter><SqlExpression>a=1</SqlExpression></Filter></RuleDescription>"#,
    );
    assert_eq!(
        server
            .put(&format!("/t1/subscriptions/js1/rules/bad?{V}"), &untyped)
            .await
            .status,
        400
    );

    assert_eq!(
        server
            .delete("/t1/Subscriptions/js1/Rules/jr1?api-version=2021-05")
            .await
            .status,
        200
    );
    assert_eq!(
        server
            .delete("/t1/Subscriptions/js1/Rules/jr1?api-version=2021-05")
            .await
            .status,
        404
    );
    assert_eq!(
        server
            .delete(&format!("/t1/subscriptions/js1?{V}"))
            .await
            .status,
        200
    );
    assert_eq!(server.delete(&format!("/t1?{V}")).await.status, 200);
    assert_eq!(server.delete(&format!("/t1?{V}")).await.status, 404);
}

#[tokio::test]
async fn names_share_the_root_with_the_other_routes() {
    let server = start().await;
    for name in ["health", "api", "metrics", "a%2Fb", "a.b-c_d"] {
        let created = server
            .put(
                &format!("/{name}?{V}"),
                &python_entry("<QueueDescription />"),
            )
            .await;
        assert_eq!(created.status, 201, "{name}: {}", created.body);
        assert_eq!(
            server
                .get(&format!("/{name}?enrich=false&{V}"))
                .await
                .status,
            200
        );
    }
    let nested = server.get(&format!("/a%2Fb?{V}")).await;
    assert!(nested.body.contains(r#"<title type="text">a/b</title>"#));
    let health = server.send("GET", "/health", &[], "").await;
    assert_eq!(
        (health.status, health.body.as_str()),
        (200, r#"{"status":"ready"}"#)
    );
    assert_eq!(server.delete(&format!("/a%2Fb?{V}")).await.status, 200);
}

#[tokio::test]
async fn authorization_judges_every_request() {
    let server = start().await;
    let refused = server
        .send("GET", &format!("/$Resources/queues?{V}"), &[], "")
        .await;
    assert_eq!(refused.status, 401);
    assert!(
        refused.body.starts_with("<Error><Code>401</Code><Detail>"),
        "{}",
        refused.body
    );
    assert!(refused.header("content-type").unwrap().contains("xml"));

    let listen = [("Authorization", "SharedAccessSignature listen")];
    assert_eq!(
        server
            .send("GET", &format!("/$Resources/queues?{V}"), &listen, "")
            .await
            .status,
        200
    );
    let write = server
        .send(
            "PUT",
            &format!("/q?{V}"),
            &listen,
            &python_entry("<QueueDescription />"),
        )
        .await;
    assert_eq!(write.status, 401);
    let bearer = [("Authorization", "Bearer SharedAccessSignature manage")];
    assert_eq!(
        server
            .send(
                "PUT",
                &format!("/q?{V}"),
                &bearer,
                &python_entry("<QueueDescription />")
            )
            .await
            .status,
        201
    );

    let namespace = server.get(&format!("/$namespaceinfo?{V}")).await;
    assert!(
        namespace
            .body
            .contains(r#"<title type="text">busbar</title>"#)
    );
    assert_eq!(one(&namespace.body, "MessagingSKU"), "Standard");
    assert_eq!(one(&namespace.body, "NamespaceType"), "Messaging");
}
