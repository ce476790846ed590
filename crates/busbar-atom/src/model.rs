//! What the administration API's documents carry, in the API's own terms: the entity
//! descriptions a client sends (with Service Bus's defaults for what it leaves out) and what
//! the broker reports back about them.

use std::time::Duration;

/// An entity's status as the API names it. Only the first four can be set by a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EntityStatus {
    /// Sends and receives.
    #[default]
    Active,
    /// Neither sends nor receives.
    Disabled,
    /// Receives only.
    SendDisabled,
    /// Sends only.
    ReceiveDisabled,
}

impl EntityStatus {
    /// The status as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityStatus::Active => "Active",
            EntityStatus::Disabled => "Disabled",
            EntityStatus::SendDisabled => "SendDisabled",
            EntityStatus::ReceiveDisabled => "ReceiveDisabled",
        }
    }

    /// The status of this name, in any case.
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
    /// How long a peek-lock holds a message.
    pub lock_duration: Duration,
    /// How much the entity may hold.
    pub max_size_in_megabytes: u64,
    /// Whether messages with a message id seen within the window are dropped.
    pub requires_duplicate_detection: bool,
    /// Whether messages must carry a session id, received one session at a time.
    pub requires_session: bool,
    /// `None`: messages never expire.
    pub default_message_time_to_live: Option<Duration>,
    /// Whether expired messages are dead-lettered rather than dropped.
    pub dead_lettering_on_message_expiration: bool,
    /// How long message ids are remembered for duplicate detection.
    pub duplicate_detection_history_time_window: Duration,
    /// Deliveries before a message is dead-lettered.
    pub max_delivery_count: u32,
    /// Whether the service may batch its store operations.
    pub enable_batched_operations: bool,
    /// Whether it sends and receives.
    pub status: EntityStatus,
    /// `None`: never deleted for being idle.
    pub auto_delete_on_idle: Option<Duration>,
    /// Partitioned across stores (kept; Busbar does not act on it).
    pub enable_partitioning: bool,
    /// Held in memory before stored (kept; Busbar does not act on it).
    pub enable_express: bool,
    /// The name of the queue or topic messages move to.
    pub forward_to: Option<String>,
    /// The queue or topic dead-lettered messages move to.
    pub forward_dead_lettered_messages_to: Option<String>,
    /// Free text the service keeps for the user (at most 1024 characters).
    pub user_metadata: Option<String>,
    /// The largest message accepted.
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
    /// How long a message lives when it sets no time to live; `None`: forever.
    pub default_message_time_to_live: Option<Duration>,
    /// How much the entity may hold.
    pub max_size_in_megabytes: u64,
    /// Whether messages with a message id seen within the window are dropped.
    pub requires_duplicate_detection: bool,
    /// How long message ids are remembered for duplicate detection.
    pub duplicate_detection_history_time_window: Duration,
    /// Whether the service may batch its store operations.
    pub enable_batched_operations: bool,
    /// Filters evaluated at send time (kept; Busbar does not act on it).
    pub filtering_messages_before_publishing: bool,
    /// Whether it sends and receives.
    pub status: EntityStatus,
    /// Whether messages keep their order.
    pub support_ordering: bool,
    /// Deleted after this long unused; `None`: never.
    pub auto_delete_on_idle: Option<Duration>,
    /// Partitioned across stores (kept; Busbar does not act on it).
    pub enable_partitioning: bool,
    /// Subscriptions partitioned (kept; Busbar does not act on it).
    pub enable_subscription_partitioning: bool,
    /// Held in memory before stored (kept; Busbar does not act on it).
    pub enable_express: bool,
    /// Free text the service keeps for the user (at most 1024 characters).
    pub user_metadata: Option<String>,
    /// The largest message accepted.
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
    /// How long a peek-lock holds a message.
    pub lock_duration: Duration,
    /// Whether messages must carry a session id, received one session at a time.
    pub requires_session: bool,
    /// How long a message lives when it sets no time to live; `None`: forever.
    pub default_message_time_to_live: Option<Duration>,
    /// Whether expired messages are dead-lettered rather than dropped.
    pub dead_lettering_on_message_expiration: bool,
    /// Whether a message whose filter fails to evaluate is dead-lettered.
    pub dead_lettering_on_filter_evaluation_exceptions: bool,
    /// Deliveries before a message is dead-lettered.
    pub max_delivery_count: u32,
    /// Whether the service may batch its store operations.
    pub enable_batched_operations: bool,
    /// Whether it sends and receives.
    pub status: EntityStatus,
    /// The queue or topic every message moves to.
    pub forward_to: Option<String>,
    /// The queue or topic dead-lettered messages move to.
    pub forward_dead_lettered_messages_to: Option<String>,
    /// Deleted after this long unused; `None`: never.
    pub auto_delete_on_idle: Option<Duration>,
    /// Free text the service keeps for the user (at most 1024 characters).
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
    /// A string.
    String(String),
    /// A 32-bit integer.
    Int(i32),
    /// A 64-bit integer.
    Long(i64),
    /// A floating-point number.
    Double(f64),
    /// True or false.
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
    /// The message's correlation id.
    pub correlation_id: Option<String>,
    /// The message's message id.
    pub message_id: Option<String>,
    /// The message's `to`.
    pub to: Option<String>,
    /// The message's reply-to.
    pub reply_to: Option<String>,
    /// `Label`, the subject in newer vocabulary.
    pub label: Option<String>,
    /// The message's session id.
    pub session_id: Option<String>,
    /// The message's reply-to session id.
    pub reply_to_session_id: Option<String>,
    /// The message's content type.
    pub content_type: Option<String>,
    /// Application properties that must all be equal.
    pub properties: Vec<(String, TypedValue)>,
}

/// Which messages a rule selects.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleFilter {
    /// A SQL expression (and its parameters).
    Sql {
        /// The SQL expression.
        expression: String,
        /// Values of the expression's `@parameters`.
        parameters: Vec<(String, TypedValue)>,
    },
    /// Every message.
    True,
    /// No message.
    False,
    /// Messages whose fields and properties equal the filter's.
    Correlation(CorrelationFilter),
}

/// What a rule changes in the messages it selects.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum RuleAction {
    /// Nothing.
    #[default]
    Empty,
    /// A SQL expression (and its parameters).
    Sql {
        /// The SQL expression.
        expression: String,
        /// Values of the expression's `@parameters`.
        parameters: Vec<(String, TypedValue)>,
    },
}

/// A rule as a client describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Which messages the rule selects.
    pub filter: RuleFilter,
    /// What the rule changes in the messages it selects.
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
    /// Dead-lettered messages.
    pub dead_letter: u64,
    /// Messages waiting for their scheduled time.
    pub scheduled: u64,
    /// Messages waiting to be forwarded.
    pub transfer: u64,
    /// Messages that failed to forward.
    pub transfer_dead_letter: u64,
}

impl MessageCounts {
    /// Every message, all counts together.
    pub fn total(&self) -> u64 {
        self.active + self.dead_letter + self.scheduled + self.transfer + self.transfer_dead_letter
    }
}

/// What the broker reports about an entity beyond its settings. Times are unix
/// milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Runtime {
    /// Its message counts.
    pub counts: MessageCounts,
    /// The bytes its messages take.
    pub size_in_bytes: u64,
    /// When it was made (unix milliseconds).
    pub created_at_ms: i64,
    /// When its settings last changed (unix milliseconds).
    pub updated_at_ms: i64,
    /// `None`: never sent to or received from.
    pub accessed_at_ms: Option<i64>,
}

/// A queue as the broker reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueView {
    /// The entity's name.
    pub name: String,
    /// Its settings.
    pub settings: QueueSettings,
    /// Its counts, size and times.
    pub runtime: Runtime,
}

/// A topic as the broker reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicView {
    /// The entity's name.
    pub name: String,
    /// Its settings.
    pub settings: TopicSettings,
    /// Its counts, size and times.
    pub runtime: Runtime,
    /// How many subscriptions the topic has.
    pub subscription_count: u64,
}

/// A subscription as the broker reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionView {
    /// The topic it belongs to.
    pub topic: String,
    /// The entity's name.
    pub name: String,
    /// Its settings.
    pub settings: SubscriptionSettings,
    /// Its counts, size and times.
    pub runtime: Runtime,
}

/// A rule as the broker reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleView {
    /// The entity's name.
    pub name: String,
    /// Its filter and action.
    pub rule: Rule,
    /// When it was made (unix milliseconds).
    pub created_at_ms: i64,
}

/// The namespace as `GET /$namespaceinfo` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceView {
    /// The entity's name.
    pub name: String,
    /// When it was made (unix milliseconds).
    pub created_at_ms: i64,
    /// When the namespace last changed (unix milliseconds).
    pub modified_at_ms: i64,
}
