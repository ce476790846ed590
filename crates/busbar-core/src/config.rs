//! Per-queue settings, persisted in the catalog as JSON, and the entity status every
//! queue, topic and subscription has.

use serde::{Deserialize, Serialize};

/// Whether an entity takes sends and gives out messages (Service Bus's `EntityStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum EntityStatus {
    #[default]
    Active,
    /// Neither sends nor receives.
    Disabled,
    /// Receives work, sends are refused.
    SendDisabled,
    /// Sends work, receives are refused.
    ReceiveDisabled,
}

impl EntityStatus {
    pub const ALL: [EntityStatus; 4] = [
        EntityStatus::Active,
        EntityStatus::Disabled,
        EntityStatus::SendDisabled,
        EntityStatus::ReceiveDisabled,
    ];

    pub fn allows_send(self) -> bool {
        matches!(self, EntityStatus::Active | EntityStatus::ReceiveDisabled)
    }

    pub fn allows_receive(self) -> bool {
        matches!(self, EntityStatus::Active | EntityStatus::SendDisabled)
    }

    /// The name Service Bus gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityStatus::Active => "Active",
            EntityStatus::Disabled => "Disabled",
            EntityStatus::SendDisabled => "SendDisabled",
            EntityStatus::ReceiveDisabled => "ReceiveDisabled",
        }
    }

    /// Reads a Service Bus status name, ignoring case.
    pub fn parse(name: &str) -> Option<EntityStatus> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str().eq_ignore_ascii_case(name))
    }

    /// A compact form for an atomic.
    pub fn to_u8(self) -> u8 {
        self as u8
    }

    pub fn from_u8(value: u8) -> EntityStatus {
        Self::ALL
            .get(usize::from(value))
            .copied()
            .unwrap_or_default()
    }
}

/// Service Bus's default `MaxMessageSizeInKilobytes` (Standard tier).
pub const DEFAULT_MAX_MESSAGE_SIZE_KB: u64 = 256;

/// How a queue behaves. Field names follow the Service Bus queue properties; missing
/// fields take their defaults when read from a catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct QueueConfig {
    /// How long a peek-lock delivery stays locked before it counts as a failed delivery.
    pub lock_duration_ms: i64,
    /// Once a message's delivery count reaches this, it moves to the dead-letter queue.
    pub max_delivery_count: u32,
    /// Time to live for messages that don't set a shorter one; `None` = never expire.
    pub default_ttl_ms: Option<i64>,
    /// Expired messages go to the dead-letter queue instead of being dropped.
    pub dead_lettering_on_expiration: bool,
    /// Drop messages whose message-id was seen within the window.
    pub requires_duplicate_detection: bool,
    pub duplicate_detection_window_ms: i64,
    /// Messages need a session id, and receivers a session.
    pub requires_session: bool,
    /// Where messages sent here go instead (a queue or topic).
    pub forward_to: Option<String>,
    /// Where this queue's dead-lettered messages go.
    pub forward_dead_lettered_to: Option<String>,
    /// `MaxSizeInMegabytes`: sends that would take the queue beyond it are refused (see
    /// [`crate::quota`] for what counts). `None`: no cap.
    pub max_size_bytes: Option<u64>,
    /// Subscriptions: a message a rule's filter fails on goes to the dead-letter queue
    /// (otherwise that rule just does not take it).
    pub dead_lettering_on_filter_evaluation_exceptions: bool,
    /// Message bodies are kept in memory while the queue's resident bytes (main and
    /// dead-letter together) stay under this; beyond it, bodies are read back from the
    /// store when delivered. Not a Service Bus property.
    pub resident_body_budget_bytes: u64,
    pub status: EntityStatus,
    /// Free text the application keeps with the entity (at most 1024 characters).
    pub user_metadata: Option<String>,
    /// `AutoDeleteOnIdle`: kept and reported, not enforced. `None`: never.
    pub auto_delete_on_idle_ms: Option<i64>,
    /// Kept and reported; batching is the client's business here.
    pub enable_batched_operations: bool,
    /// Accepted and reported; the entity is one partition either way.
    pub enable_partitioning: bool,
    /// Kept and reported; every write is durable before it is acknowledged.
    pub enable_express: bool,
    /// `MaxMessageSizeInKilobytes`: kept and reported; the broker-wide maximum message size
    /// is what links enforce.
    pub max_message_size_kb: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            lock_duration_ms: 60_000,
            max_delivery_count: 10,
            default_ttl_ms: None,
            dead_lettering_on_expiration: false,
            requires_duplicate_detection: false,
            duplicate_detection_window_ms: 10 * 60 * 1000,
            requires_session: false,
            forward_to: None,
            forward_dead_lettered_to: None,
            max_size_bytes: None,
            dead_lettering_on_filter_evaluation_exceptions: true,
            resident_body_budget_bytes: 64 * 1024 * 1024,
            status: EntityStatus::Active,
            user_metadata: None,
            auto_delete_on_idle_ms: None,
            enable_batched_operations: true,
            enable_partitioning: false,
            enable_express: false,
            max_message_size_kb: DEFAULT_MAX_MESSAGE_SIZE_KB,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_take_defaults() {
        let config: QueueConfig =
            serde_json::from_str(r#"{"max_delivery_count": 3}"#).expect("valid json");
        assert_eq!(config.max_delivery_count, 3);
        assert_eq!(config.lock_duration_ms, 60_000);
        assert_eq!(config.default_ttl_ms, None);
        assert_eq!(config.status, EntityStatus::Active);
        assert!(config.enable_batched_operations);
        assert_eq!(config.max_message_size_kb, DEFAULT_MAX_MESSAGE_SIZE_KB);
    }

    #[test]
    fn status_names_round_trip() {
        for status in EntityStatus::ALL {
            assert_eq!(EntityStatus::parse(status.as_str()), Some(status));
            assert_eq!(EntityStatus::from_u8(status.to_u8()), status);
        }
        assert_eq!(
            EntityStatus::parse("senddisabled"),
            Some(EntityStatus::SendDisabled)
        );
        assert_eq!(EntityStatus::parse("Paused"), None);
    }

    #[test]
    fn round_trips_through_json() {
        let config = QueueConfig {
            default_ttl_ms: Some(5_000),
            forward_to: Some("other".into()),
            ..QueueConfig::default()
        };
        let json = serde_json::to_string(&config).expect("serialises");
        let back: QueueConfig = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, config);
    }
}
