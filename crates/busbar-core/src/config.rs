//! Per-queue settings, persisted in the catalog as JSON.

use serde::{Deserialize, Serialize};

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
    /// Not enforced yet.
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
