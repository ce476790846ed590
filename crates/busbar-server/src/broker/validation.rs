//! What the administration API refuses in an entity description, worded as Service Bus
//! words it (the SDKs show the text to the user), and the forwarding targets normalised to
//! entity names.

use busbar_core::topic::TopicConfig;
use busbar_core::{Namespace, QueueConfig};

use super::lifecycle::EntityError;

/// Longest lock Service Bus allows: five minutes.
const MAX_LOCK_DURATION_MS: i64 = 5 * 60 * 1000;
/// Shortest AutoDeleteOnIdle: five minutes.
const MIN_AUTO_DELETE_ON_IDLE_MS: i64 = 5 * 60 * 1000;
/// Duplicate detection windows Service Bus accepts: 20 seconds to 7 days.
const MIN_DUPLICATE_WINDOW_MS: i64 = 20 * 1000;
const MAX_DUPLICATE_WINDOW_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// Longest UserMetadata.
const MAX_USER_METADATA_CHARS: usize = 1024;

/// Which kind of entity a description is for, as Service Bus names it in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityKind {
    Queue,
    Topic,
    Subscription,
}

impl EntityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Queue => "Queue",
            EntityKind::Topic => "Topic",
            EntityKind::Subscription => "Subscription",
        }
    }
}

fn invalid(message: impl Into<String>) -> EntityError {
    EntityError::Invalid(message.into())
}

/// Checks a queue's or subscription's settings; `path` is the entity's own path (for the
/// self-forward check). Forwarding targets become plain entity names that exist in
/// `namespace`.
pub(super) fn check_queue_config(
    namespace: &Namespace,
    path: &str,
    mut config: QueueConfig,
) -> Result<QueueConfig, EntityError> {
    if config.lock_duration_ms > MAX_LOCK_DURATION_MS {
        return Err(invalid(
            "The supplied lock time exceeds the allowed maximum of '5' minutes.",
        ));
    }
    if config.lock_duration_ms <= 0 {
        return Err(invalid("The supplied lock time must be greater than zero."));
    }
    if config.max_delivery_count < 1 {
        return Err(invalid(
            "The value supplied for MaxDeliveryCount must be at least 1.",
        ));
    }
    check_common(Common {
        ttl_ms: config.default_ttl_ms,
        duplicate_window_ms: config.duplicate_detection_window_ms,
        auto_delete_on_idle_ms: config.auto_delete_on_idle_ms,
        user_metadata: config.user_metadata.as_deref(),
        max_size_bytes: config.max_size_bytes,
    })?;
    config.forward_to = check_forward(namespace, path, config.forward_to.take(), false)?;
    config.forward_dead_lettered_to = check_forward(
        namespace,
        path,
        config.forward_dead_lettered_to.take(),
        true,
    )?;
    Ok(config)
}

pub(super) fn check_topic_config(config: &TopicConfig) -> Result<(), EntityError> {
    check_common(Common {
        ttl_ms: config.default_ttl_ms,
        duplicate_window_ms: config.duplicate_detection_window_ms,
        auto_delete_on_idle_ms: config.auto_delete_on_idle_ms,
        user_metadata: config.user_metadata.as_deref(),
        max_size_bytes: config.max_size_bytes,
    })
}

/// What queues, topics and subscriptions have alike.
struct Common<'a> {
    ttl_ms: Option<i64>,
    duplicate_window_ms: i64,
    auto_delete_on_idle_ms: Option<i64>,
    user_metadata: Option<&'a str>,
    max_size_bytes: Option<u64>,
}

fn check_common(
    Common {
        ttl_ms,
        duplicate_window_ms,
        auto_delete_on_idle_ms,
        user_metadata,
        max_size_bytes,
    }: Common<'_>,
) -> Result<(), EntityError> {
    if ttl_ms.is_some_and(|ttl| ttl <= 0) {
        return Err(invalid(
            "The value supplied for DefaultMessageTimeToLive must be greater than zero.",
        ));
    }
    if !(MIN_DUPLICATE_WINDOW_MS..=MAX_DUPLICATE_WINDOW_MS).contains(&duplicate_window_ms) {
        return Err(invalid(
            "The supplied DuplicateDetectionHistoryTimeWindow must be between 20 seconds and 7 days.",
        ));
    }
    if auto_delete_on_idle_ms.is_some_and(|idle| idle < MIN_AUTO_DELETE_ON_IDLE_MS) {
        return Err(invalid(
            "The supplied AutoDeleteOnIdle value must be at least 5 minutes.",
        ));
    }
    if user_metadata.is_some_and(|m| m.chars().count() > MAX_USER_METADATA_CHARS) {
        return Err(invalid(
            "The supplied UserMetadata exceeds the maximum length of 1024 characters.",
        ));
    }
    if max_size_bytes == Some(0) {
        return Err(invalid(
            "The value supplied for MaxSizeInMegabytes must be greater than zero.",
        ));
    }
    Ok(())
}

/// The entity name a forwarding target names: a bare name, or `sb://host[:port]/name` as
/// the SDKs send it. It must exist; only dead-lettered messages may go back to their own
/// entity.
fn check_forward(
    namespace: &Namespace,
    path: &str,
    target: Option<String>,
    dead_lettered: bool,
) -> Result<Option<String>, EntityError> {
    let Some(target) = target.filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    let name = entity_name_of(&target);
    let property = if dead_lettered {
        "ForwardDeadLetteredMessagesTo"
    } else {
        "ForwardTo"
    };
    if !dead_lettered && name.eq_ignore_ascii_case(path) {
        return Err(invalid(format!(
            "The {property} of entity '{path}' cannot point to the entity itself."
        )));
    }
    let existing = namespace
        .queue(name)
        .map(|q| q.name.clone())
        .or_else(|| namespace.topic(name).map(|t| t.name.clone()));
    match existing {
        Some(name) => Ok(Some(name)),
        None => Err(invalid(format!(
            "The {property} destination entity '{name}' could not be found."
        ))),
    }
}

/// The entity path of `sb://host[:port]/path` (or `path` itself).
pub fn entity_name_of(target: &str) -> &str {
    let without_scheme = match target.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map_or("", |(_, path)| path),
        None => target,
    };
    without_scheme.trim_matches('/')
}

/// The properties that can't change once an entity exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fixed {
    requires_session: bool,
    requires_duplicate_detection: bool,
    enable_partitioning: bool,
}

impl Fixed {
    pub(super) fn of_queue(config: &QueueConfig) -> Self {
        Fixed {
            requires_session: config.requires_session,
            requires_duplicate_detection: config.requires_duplicate_detection,
            enable_partitioning: config.enable_partitioning,
        }
    }

    pub(super) fn of_topic(config: &TopicConfig) -> Self {
        Fixed {
            requires_session: false,
            requires_duplicate_detection: config.requires_duplicate_detection,
            enable_partitioning: config.enable_partitioning,
        }
    }

    /// Refuses a change of any of them, in Service Bus's words.
    pub(super) fn check_unchanged(self, kind: EntityKind, new: Fixed) -> Result<(), EntityError> {
        let changed = [
            (
                "RequiresSession",
                self.requires_session,
                new.requires_session,
            ),
            (
                "RequiresDuplicateDetection",
                self.requires_duplicate_detection,
                new.requires_duplicate_detection,
            ),
            (
                "EnablePartitioning",
                self.enable_partitioning,
                new.enable_partitioning,
            ),
        ]
        .into_iter()
        .find(|(_, old, new)| old != new);
        match changed {
            Some((property, ..)) => Err(EntityError::Immutable {
                property,
                kind: kind.as_str(),
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_targets_lose_scheme_and_host() {
        assert_eq!(entity_name_of("sb://localhost:5300/q1"), "q1");
        assert_eq!(
            entity_name_of("sb://host/t/Subscriptions/s"),
            "t/Subscriptions/s"
        );
        assert_eq!(entity_name_of("q1"), "q1");
        assert_eq!(entity_name_of("sb://host"), "");
    }

    #[test]
    fn out_of_range_values_are_refused_in_service_bus_words() {
        let namespace = Namespace::new();
        let long_lock = QueueConfig {
            lock_duration_ms: 6 * 60 * 1000,
            ..QueueConfig::default()
        };
        let error = check_queue_config(&namespace, "q", long_lock).expect_err("refused");
        assert_eq!(
            error.to_string(),
            "The supplied lock time exceeds the allowed maximum of '5' minutes."
        );
        let to_self = QueueConfig {
            forward_to: Some("sb://host/Q".into()),
            ..QueueConfig::default()
        };
        assert!(check_queue_config(&namespace, "q", to_self).is_err());
        let missing = QueueConfig {
            forward_to: Some("nowhere".into()),
            ..QueueConfig::default()
        };
        assert!(check_queue_config(&namespace, "q", missing).is_err());
        let idle = QueueConfig {
            auto_delete_on_idle_ms: Some(60_000),
            ..QueueConfig::default()
        };
        assert!(check_queue_config(&namespace, "q", idle).is_err());
        let metadata = QueueConfig {
            user_metadata: Some("x".repeat(1025)),
            ..QueueConfig::default()
        };
        assert!(check_queue_config(&namespace, "q", metadata).is_err());
        let deliveries = QueueConfig {
            max_delivery_count: 0,
            ..QueueConfig::default()
        };
        assert!(check_queue_config(&namespace, "q", deliveries).is_err());
    }
}
