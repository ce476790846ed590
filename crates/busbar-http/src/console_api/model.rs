//! The console API's JSON shapes, in the names of the shared sketch (`docs` of issue #12):
//! requests as the page sends them, answers as it reads them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A namespace token the page keeps for its session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Token {
    pub token: String,
    /// RFC 3339.
    pub expires_at: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TokenRequest {
    pub key_name: String,
    pub key: String,
}

/// Which messages of an entity a page lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageState {
    Active,
    Scheduled,
    Deferred,
    #[serde(rename = "deadletter")]
    DeadLetter,
    #[serde(rename = "transferdeadletter")]
    TransferDeadLetter,
}

/// `GET /api/console/messages` query.
#[derive(Debug, Clone, Deserialize)]
pub struct BrowseQuery {
    pub entity: String,
    pub state: MessageState,
    #[serde(default)]
    pub from: u64,
    #[serde(default = "default_limit")]
    pub limit: usize,
}

fn default_limit() -> usize {
    MAX_PAGE
}

/// The most messages one page holds.
pub const MAX_PAGE: usize = 100;

#[derive(Debug, Clone, Serialize)]
pub struct MessagePage {
    pub messages: Vec<Message>,
    /// Where the next page starts; `null` at the end.
    pub next_from: Option<u64>,
}

/// One message as the browser shows it. Times are RFC 3339; absent values `null`.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub sequence_number: u64,
    pub state: MessageState,
    pub message_id: Option<String>,
    pub session_id: Option<String>,
    pub correlation_id: Option<String>,
    pub subject: Option<String>,
    pub content_type: Option<String>,
    pub to: Option<String>,
    pub reply_to: Option<String>,
    pub time_to_live_ms: Option<i64>,
    pub enqueued_time: Option<String>,
    pub scheduled_enqueue_time: Option<String>,
    pub expires_at: Option<String>,
    pub delivery_count: u32,
    pub locked_until: Option<String>,
    pub dead_letter_reason: Option<String>,
    pub dead_letter_description: Option<String>,
    pub dead_letter_source: Option<String>,
    pub application_properties: BTreeMap<String, TypedValue>,
    pub body: Body,
}

/// An application property: its AMQP type name and its value as JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TypedValue {
    #[serde(rename = "type")]
    pub type_name: String,
    pub value: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyKind {
    Text,
    Json,
    Binary,
}

#[derive(Debug, Clone, Serialize)]
pub struct Body {
    pub kind: BodyKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
    pub size: usize,
}

/// `POST /api/console/send`; also the message of a rule test.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SendRequest {
    #[serde(default)]
    pub entity: String,
    /// Text, or any JSON (sent as its text).
    #[serde(default)]
    pub body: serde_json::Value,
    pub content_type: Option<String>,
    pub message_id: Option<String>,
    pub session_id: Option<String>,
    pub correlation_id: Option<String>,
    pub subject: Option<String>,
    #[serde(default)]
    pub application_properties: serde_json::Map<String, serde_json::Value>,
    /// RFC 3339.
    pub scheduled_enqueue_time: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SendOutcome {
    /// `null` when the message went to a topic (each subscription numbers its own copy).
    pub sequence_number: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResubmitFilter {
    pub subject: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResubmitEdit {
    pub body: Option<serde_json::Value>,
    pub application_properties: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ResubmitRequest {
    pub entity: String,
    #[serde(default)]
    pub sequence_numbers: Vec<u64>,
    #[serde(default)]
    pub all: bool,
    pub filter: Option<ResubmitFilter>,
    pub edit: Option<ResubmitEdit>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResubmitFailure {
    pub sequence_number: u64,
    pub error: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResubmitOutcome {
    pub resubmitted: usize,
    pub failed: Vec<ResubmitFailure>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeleteRequest {
    pub entity: String,
    pub state: MessageState,
    pub sequence_numbers: Vec<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeleteOutcome {
    pub deleted: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PurgeRequest {
    pub entity: String,
    #[serde(default)]
    pub dead_letter: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobStarted {
    pub job: String,
}

/// A purge's progress: `removed` of `total` (the count when it started).
#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    pub done: bool,
    pub removed: u64,
    pub total: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The entity purged: whoever may change it may see the job.
    pub entity: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CancelRequest {
    pub entity: String,
    pub sequence_numbers: Vec<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CancelOutcome {
    pub cancelled: usize,
}

/// `POST /api/console/rule-test`: which subscriptions of `topic` (or just `subscription`)
/// would take `message`, and what their rules' actions would set. Nothing is sent.
#[derive(Debug, Clone, Deserialize)]
pub struct RuleTestRequest {
    pub topic: String,
    pub subscription: Option<String>,
    pub message: SendRequest,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleTestOutcome {
    pub subscriptions: Vec<SubscriptionVerdict>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionVerdict {
    pub name: String,
    /// The subscription would take at least one copy.
    pub matched: bool,
    pub rules: Vec<RuleVerdict>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleVerdict {
    pub name: String,
    /// The filter as written (`TRUE`, `FALSE`, the SQL expression, or the correlation
    /// filter's conditions).
    pub filter: String,
    pub matched: bool,
    /// What the rule's action would set on the copy it takes (`null`: removed).
    pub action_sets: serde_json::Map<String, serde_json::Value>,
    /// Why the filter or the action could not be evaluated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /api/console/history?since=<t_ms>`: only the samples taken after `since`, so a
/// page that has the hour fetches 10 s at a time instead of every entity's hour again
/// (every entity is still named, with what is new).
#[derive(Debug, Clone, Deserialize)]
pub struct HistoryQuery {
    pub since: Option<i64>,
}

/// `GET /api/console/history`: the last hour of each queue's and subscription's counts.
#[derive(Debug, Clone, Serialize)]
pub struct History {
    /// Time between samples.
    pub interval_ms: u64,
    /// By entity path (a queue's name or `topic/Subscriptions/sub`), oldest first.
    pub entities: BTreeMap<String, Vec<HistoryPoint>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HistoryPoint {
    /// Unix milliseconds.
    pub t_ms: i64,
    pub active: u64,
    pub dead_letter: u64,
    pub scheduled: u64,
    pub deferred: u64,
    /// Messages in the transfer dead-letter queue.
    pub transfer: u64,
    /// Messages stored since the broker started.
    pub incoming_total: u64,
    /// Deliveries since the broker started.
    pub outgoing_total: u64,
}
