//! The checks Service Bus makes on names and settings before it changes anything, with its
//! wording where it is known. Everything here answers 400.

use std::time::Duration;

use super::model::{QueueSettings, SubscriptionSettings, TopicSettings};

const MAX_ENTITY_NAME: usize = 260;
const MAX_CHILD_NAME: usize = 50;
const MAX_LOCK: Duration = Duration::from_secs(5 * 60);
const MIN_AUTO_DELETE: Duration = Duration::from_secs(5 * 60);
const MIN_DUPLICATE_WINDOW: Duration = Duration::from_secs(20);
const MAX_DUPLICATE_WINDOW: Duration = Duration::from_secs(7 * 24 * 3_600);
const MAX_USER_METADATA: usize = 1_024;
const MAX_MESSAGE_SIZE_KB: u64 = 102_400;

/// A queue's or topic's name: up to 260 characters, no leading or trailing `/`, none of
/// `@ ? # *`.
pub fn entity_name(name: &str) -> Result<(), String> {
    let length = name.chars().count();
    if length == 0 || length > MAX_ENTITY_NAME {
        return Err(format!(
            "The entity name '{name}' must be 1 to {MAX_ENTITY_NAME} characters long."
        ));
    }
    if name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return Err(format!(
            "The entity name '{name}' can't start or end with '/' or hold an empty segment."
        ));
    }
    refuse_characters(name, &['@', '?', '#', '*', '\\'])
}

/// A subscription's or rule's name: up to 50 characters, no `/`.
pub fn child_name(kind: &str, name: &str) -> Result<(), String> {
    let length = name.chars().count();
    if length == 0 || length > MAX_CHILD_NAME {
        return Err(format!(
            "The {kind} name '{name}' must be 1 to {MAX_CHILD_NAME} characters long."
        ));
    }
    refuse_characters(name, &['/', '@', '?', '#', '*', '\\'])
}

fn refuse_characters(name: &str, refused: &[char]) -> Result<(), String> {
    match name.chars().find(|c| refused.contains(c) || c.is_control()) {
        Some(c) => Err(format!(
            "The name '{name}' holds the character '{}', which is not allowed.",
            c.escape_default()
        )),
        None => Ok(()),
    }
}

fn lock_duration(lock: Duration) -> Result<(), String> {
    if lock > MAX_LOCK {
        return Err(
            "The supplied lock time exceeds the allowed maximum of '5' minutes.".to_owned(),
        );
    }
    if lock.is_zero() {
        return Err("The supplied lock time must be positive.".to_owned());
    }
    Ok(())
}

fn auto_delete(idle: Option<Duration>) -> Result<(), String> {
    match idle {
        Some(idle) if idle < MIN_AUTO_DELETE => {
            Err("The value supplied for AutoDeleteOnIdle must be at least 5 minutes.".to_owned())
        }
        _ => Ok(()),
    }
}

fn duplicate_window(window: Duration) -> Result<(), String> {
    if !(MIN_DUPLICATE_WINDOW..=MAX_DUPLICATE_WINDOW).contains(&window) {
        return Err(
            "The value supplied for DuplicateDetectionHistoryTimeWindow must be between 20 seconds and 7 days."
                .to_owned(),
        );
    }
    Ok(())
}

fn max_delivery_count(count: u32) -> Result<(), String> {
    if count == 0 {
        return Err("MaxDeliveryCount must be at least 1.".to_owned());
    }
    Ok(())
}

fn user_metadata(metadata: Option<&str>) -> Result<(), String> {
    match metadata {
        Some(text) if text.chars().count() > MAX_USER_METADATA => Err(format!(
            "UserMetadata is limited to {MAX_USER_METADATA} characters."
        )),
        _ => Ok(()),
    }
}

fn sizes(max_size_mb: u64, max_message_kb: u64) -> Result<(), String> {
    if max_size_mb == 0 {
        return Err("MaxSizeInMegabytes must be positive.".to_owned());
    }
    if !(1..=MAX_MESSAGE_SIZE_KB).contains(&max_message_kb) {
        return Err(format!(
            "MaxMessageSizeInKilobytes must be between 1 and {MAX_MESSAGE_SIZE_KB}."
        ));
    }
    Ok(())
}

pub fn queue(settings: &QueueSettings) -> Result<(), String> {
    lock_duration(settings.lock_duration)?;
    auto_delete(settings.auto_delete_on_idle)?;
    duplicate_window(settings.duplicate_detection_history_time_window)?;
    max_delivery_count(settings.max_delivery_count)?;
    user_metadata(settings.user_metadata.as_deref())?;
    sizes(
        settings.max_size_in_megabytes,
        settings.max_message_size_in_kilobytes,
    )
}

pub fn topic(settings: &TopicSettings) -> Result<(), String> {
    auto_delete(settings.auto_delete_on_idle)?;
    duplicate_window(settings.duplicate_detection_history_time_window)?;
    user_metadata(settings.user_metadata.as_deref())?;
    sizes(
        settings.max_size_in_megabytes,
        settings.max_message_size_in_kilobytes,
    )
}

pub fn subscription(settings: &SubscriptionSettings) -> Result<(), String> {
    lock_duration(settings.lock_duration)?;
    auto_delete(settings.auto_delete_on_idle)?;
    max_delivery_count(settings.max_delivery_count)?;
    user_metadata(settings.user_metadata.as_deref())
}

/// Refuses an update that changes a property fixed at creation.
pub fn unchanged<T: PartialEq>(property: &str, kind: &str, old: T, new: T) -> Result<(), String> {
    if old == new {
        Ok(())
    } else {
        Err(format!(
            "The value for the {property} property of an existing {kind} cannot be changed."
        ))
    }
}

/// The entity name a `ForwardTo` value names: `sb://host[:port]/name`, a URL of another
/// scheme, or a bare name.
pub fn forward_target(value: &str) -> String {
    let path = match value.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map_or("", |(_, path)| path),
        None => value,
    };
    path.trim_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_service_rules() {
        assert!(entity_name("a/b").is_ok());
        assert!(entity_name("a.b-c_d").is_ok());
        for bad in ["", "/a", "a/", "a//b", "a@b", "a?b", "a#b", "a*b"] {
            assert!(entity_name(bad).is_err(), "{bad:?}");
        }
        assert!(entity_name(&"x".repeat(260)).is_ok());
        assert!(entity_name(&"x".repeat(261)).is_err());
        assert!(child_name("subscription", "$Default").is_ok());
        assert!(child_name("subscription", "a/b").is_err());
        assert!(child_name("rule", &"r".repeat(51)).is_err());
    }

    #[test]
    fn forward_targets_name_an_entity() {
        assert_eq!(forward_target("sb://localhost:5300/q1"), "q1");
        assert_eq!(forward_target("sb://localhost/a/b/"), "a/b");
        assert_eq!(forward_target("q1"), "q1");
    }
}
