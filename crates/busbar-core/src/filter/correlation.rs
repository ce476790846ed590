//! Correlation filters: equality on a fixed set of system properties plus user properties,
//! all of which must hold.

use serde::{Deserialize, Serialize};

use super::{FilterError, FilterValue, PropertySource};

/// Matches when every field that is set equals the message's value: system properties
/// compared as strings, ordinally (so case-sensitively, as the service documents), user
/// properties by value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CorrelationFilter {
    pub correlation_id: Option<String>,
    pub message_id: Option<String>,
    pub to: Option<String>,
    pub reply_to: Option<String>,
    /// `Label` in the service's older vocabulary.
    pub subject: Option<String>,
    pub session_id: Option<String>,
    pub reply_to_session_id: Option<String>,
    pub content_type: Option<String>,
    pub properties: Vec<(String, FilterValue)>,
}

impl CorrelationFilter {
    /// An empty filter (nothing set) matches everything here — the conjunction of no
    /// conditions — but the service refuses to create one; see [`Self::validate`].
    pub fn matches(&self, message: &dyn PropertySource) -> bool {
        let system_fields = [
            ("CorrelationId", &self.correlation_id),
            ("MessageId", &self.message_id),
            ("To", &self.to),
            ("ReplyTo", &self.reply_to),
            ("Label", &self.subject),
            ("SessionId", &self.session_id),
            ("ReplyToSessionId", &self.reply_to_session_id),
            ("ContentType", &self.content_type),
        ];
        for (name, expected) in system_fields {
            let Some(expected) = expected else {
                continue;
            };
            match message.system(name) {
                Some(FilterValue::String(actual)) if actual == *expected => {}
                _ => return false,
            }
        }
        self.properties.iter().all(|(name, expected)| {
            message
                .user(name)
                .is_some_and(|actual| same_value(expected, &actual))
        })
    }

    /// The service rejects a correlation filter that sets no property at all when the
    /// rule is created.
    pub fn validate(&self) -> Result<(), FilterError> {
        let any_system = [
            &self.correlation_id,
            &self.message_id,
            &self.to,
            &self.reply_to,
            &self.subject,
            &self.session_id,
            &self.reply_to_session_id,
            &self.content_type,
        ]
        .iter()
        .any(|field| field.is_some());
        if any_system || !self.properties.is_empty() {
            Ok(())
        } else {
            Err(FilterError::EmptyCorrelationFilter)
        }
    }
}

/// Equality for correlation values. Types must agree — the string "2" does not match the
/// number 2 — except that integers and doubles compare by numeric value, since the wire
/// does not reliably keep which of the two a sender meant.
fn same_value(expected: &FilterValue, actual: &FilterValue) -> bool {
    match (expected, actual) {
        (FilterValue::Long(a), FilterValue::Double(b))
        | (FilterValue::Double(b), FilterValue::Long(a)) => (*a as f64) == *b,
        _ => expected == actual,
    }
}
