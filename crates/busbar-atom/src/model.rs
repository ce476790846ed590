//! What the administration API's documents carry, in the API's own terms: the entity
//! descriptions a client sends (with Service Bus's defaults for what it leaves out) and what
//! the broker reports back about them.

use std::time::Duration;

/// An entity's status as the API names it. Only the first four can be set by a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EntityStatus {
    #[default]
    Active,
    Disabled,
    SendDisabled,
    ReceiveDisabled,
}

impl EntityStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EntityStatus::Active => "Active",
            EntityStatus::Disabled => "Disabled",
            EntityStatus::SendDisabled => "SendDisabled",
            EntityStatus::ReceiveDisabled => "ReceiveDisabled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            EntityStatus::Active,
            EntityStatus::Disabled,
            EntityStatus::SendDisabled,
            EntityStatus::ReceiveDisabled,
        ]
        .into_iter()
        .find(|status| status.as_str().eq_ignore_ascii_case(text))
    }
}

/// A queue's settings. `Default` is what Service Bus gives a queue created with none.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSettings {
    pub lock_duration: Duration,
    pub max_size_in_megabytes: u64,
    pub requires_duplicate_detection: bool,
    pub requires_session: bool,
    /// `None`: messages never expire.
    pub default_message_time_to_live: Option<Duration>,
    pub dead_lettering_on_message_expiration: bool,
    pub duplicate_detection_history_time_window: Duration,
    pub max_delivery_count: u32,
    pub enable_batched_operations: bool,
    pub status: EntityStatus,
    /// `None`: never deleted for being idle.
    pub auto_delete_on_idle: Option<Duration>,
    pub enable_partitioning: bool,
    pub enable_express: bool,
    /// The name of the queue or topic messages move to.
    pub forward_to: Option<String>,
    pub forward_dead_lettered_messages_to: Option<String>,
    pub user_metadata: Option<String>,
    pub max_message_size_in_kilobytes: u64,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            lock_duration: Duration::from_secs(60),
            max_size_in_megabytes: 1024,
            requires_duplicate_detection: false,
            requires_session: false,
            default_message_time_to_live: None,
            dead_lettering_on_message_expiration: false,
            duplicate_detection_history_time_window: Duration::from_secs(600),
            max_delivery_count: 10,
            enable_batched_operations: true,
            status: EntityStatus::Active,
            auto_delete_on_idle: None,
            enable_partitioning: false,
            enable_express: false,
            forward_to: None,
            forward_dead_lettered_messages_to: None,
            user_metadata: None,
            max_message_size_in_kilobytes: 256,
        }
    }
}

/// A topic's settings; `Default` as for [`QueueSettings`].
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSettings {
    pub default_message_time_to_live: Option<Duration>,
    pub max_size_in_megabytes: u64,
    pub requires_duplicate_detection: bool,
    pub duplicate_detection_history_time_window: Duration,
    pub enable_batched_operations: bool,
    pub filtering_messages_before_publishing: bool,
    pub status: EntityStatus,
    pub support_ordering: bool,
    pub auto_delete_on_idle: Option<Duration>,
    pub enable_partitioning: bool,
    pub enable_subscription_partitioning: bool,
    pub enable_express: bool,
    pub user_metadata: Option<String>,
    pub max_message_size_in_kilobytes: u64,
}

impl Default for TopicSettings {
    fn default() -> Self {
        TopicSettings {
            default_message_time_to_live: None,
            max_size_in_megabytes: 1024,
            requires_duplicate_detection: false,
            duplicate_detection_history_time_window: Duration::from_secs(600),
            enable_batched_operations: true,
            filtering_messages_before_publishing: false,
            status: EntityStatus::Active,
            support_ordering: true,
            auto_delete_on_idle: None,
            enable_partitioning: false,
            enable_subscription_partitioning: false,
            enable_express: false,
            user_metadata: None,
            max_message_size_in_kilobytes: 256,
        }
    }
}

/// A subscription's settings; `Default` as for [`QueueSettings`].
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionSettings {
    pub lock_duration: Duration,
    pub requires_session: bool,
    pub default_message_time_to_live: Option<Duration>,
    pub dead_lettering_on_message_expiration: bool,
    pub dead_lettering_on_filter_evaluation_exceptions: bool,
    pub max_delivery_count: u32,
    pub enable_batched_operations: bool,
    pub status: EntityStatus,
    pub forward_to: Option<String>,
    pub forward_dead_lettered_messages_to: Option<String>,
    pub auto_delete_on_idle: Option<Duration>,
    pub user_metadata: Option<String>,
    /// The first rule, instead of `$Default`; only read when the subscription is created.
    pub default_rule: Option<Rule>,
}

impl Default for SubscriptionSettings {
    fn default() -> Self {
        SubscriptionSettings {
            lock_duration: Duration::from_secs(60),
            requires_session: false,
            default_message_time_to_live: None,
            dead_lettering_on_message_expiration: false,
            dead_lettering_on_filter_evaluation_exceptions: true,
            max_delivery_count: 10,
            enable_batched_operations: true,
            status: EntityStatus::Active,
            forward_to: None,
            forward_dead_lettered_messages_to: None,
            auto_delete_on_idle: None,
            user_metadata: None,
            default_rule: None,
        }
    }
}

/// A typed value of a filter's or action's parameters or a correlation filter's properties.
#[derive(Debug, Clone, PartialEq)]
pub enum TypedValue {
    String(String),
    Int(i32),
    Long(i64),
    Double(f64),
    Boolean(bool),
    /// As sent (`2024-01-02T03:04:05`, with or without a zone).
    DateTime(String),
    /// ISO 8601, as sent.
    Duration(String),
}

impl TypedValue {
    /// The XML Schema type name the API writes for the value.
    pub fn xsd_type(&self) -> &'static str {
        match self {
            TypedValue::String(_) => "string",
            TypedValue::Int(_) => "int",
            TypedValue::Long(_) => "long",
            TypedValue::Double(_) => "double",
            TypedValue::Boolean(_) => "boolean",
            TypedValue::DateTime(_) => "dateTime",
            TypedValue::Duration(_) => "duration",
        }
    }

    /// The value's text as the API writes it.
    pub fn text(&self) -> String {
        match self {
            TypedValue::String(s) | TypedValue::DateTime(s) | TypedValue::Duration(s) => s.clone(),
            TypedValue::Int(n) => n.to_string(),
            TypedValue::Long(n) => n.to_string(),
            TypedValue::Double(x) => x.to_string(),
            TypedValue::Boolean(b) => b.to_string(),
        }
    }
}

/// A correlation filter: every field set must equal the message's, every property too.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CorrelationFilter {
    pub correlation_id: Option<String>,
    pub message_id: Option<String>,
    pub to: Option<String>,
    pub reply_to: Option<String>,
    /// `Label`, the subject in newer vocabulary.
    pub label: Option<String>,
    pub session_id: Option<String>,
    pub reply_to_session_id: Option<String>,
    pub content_type: Option<String>,
    pub properties: Vec<(String, TypedValue)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RuleFilter {
    Sql {
        expression: String,
        parameters: Vec<(String, TypedValue)>,
    },
    True,
    False,
    Correlation(CorrelationFilter),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub enum RuleAction {
    #[default]
    Empty,
    Sql {
        expression: String,
        parameters: Vec<(String, TypedValue)>,
    },
}

/// A rule as a client describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub filter: RuleFilter,
    pub action: RuleAction,
}

impl Default for Rule {
    /// What `$Default` is, and what a rule without a filter gets.
    fn default() -> Self {
        Rule {
            filter: RuleFilter::True,
            action: RuleAction::Empty,
        }
    }
}

/// The name of the rule every subscription starts with.
pub const DEFAULT_RULE_NAME: &str = "$Default";

/// Message counts of a queue, subscription or topic, kept exactly by the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MessageCounts {
    /// Available messages, including locked ones.
    pub active: u64,
    pub dead_letter: u64,
    pub scheduled: u64,
    pub transfer: u64,
    pub transfer_dead_letter: u64,
}

impl MessageCounts {
    pub fn total(&self) -> u64 {
        self.active + self.dead_letter + self.scheduled + self.transfer + self.transfer_dead_letter
    }
}

/// What the broker reports about an entity beyond its settings. Times are unix
/// milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Runtime {
    pub counts: MessageCounts,
    pub size_in_bytes: u64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// `None`: never sent to or received from.
    pub accessed_at_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueueView {
    pub name: String,
    pub settings: QueueSettings,
    pub runtime: Runtime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TopicView {
    pub name: String,
    pub settings: TopicSettings,
    pub runtime: Runtime,
    pub subscription_count: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionView {
    pub topic: String,
    pub name: String,
    pub settings: SubscriptionSettings,
    pub runtime: Runtime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RuleView {
    pub name: String,
    pub rule: Rule,
    pub created_at_ms: i64,
}

/// The namespace as `GET /$namespaceinfo` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceView {
    pub name: String,
    pub created_at_ms: i64,
    pub modified_at_ms: i64,
}
