//! Subscription filters over AMQP messages: how a message's properties look to a rule
//! (system properties from the properties section, user properties from the application
//! properties), and how a rule action's changes are written into the copy a subscription
//! gets.

use busbar_amqp::CodecError;
use busbar_amqp::message::{Properties, RewriteOptions, rewrite, scan_sections};
use busbar_amqp::value::{Timestamp, Value};
use busbar_core::filter::{FilterValue, PropertyChange, PropertyScope, PropertySource};
use bytes::Bytes;

use crate::message::id_text;

/// The application property that names the rule whose action made a copy.
pub const RULE_NAME: &str = "RuleName";

/// A message as filters read it.
#[derive(Debug, Clone, Default)]
pub struct FilterView {
    properties: Properties,
    application: Vec<(String, FilterValue)>,
    size: i64,
}

impl FilterView {
    /// Reads the properties and application properties of `payload` (one message).
    pub fn read(payload: &Bytes) -> Result<Self, CodecError> {
        let scanned = scan_sections(payload)?;
        let properties = scanned.properties()?.unwrap_or_default();
        let application = match scanned.application_properties()? {
            Some(Value::Map(entries)) => entries
                .iter()
                .filter_map(|(key, value)| Some((key.as_str()?.to_owned(), filter_value(value))))
                .collect(),
            _ => Vec::new(),
        };
        Ok(FilterView {
            properties,
            application,
            size: i64::try_from(payload.len()).unwrap_or(i64::MAX),
        })
    }
}

impl PropertySource for FilterView {
    fn system(&self, name: &str) -> Option<FilterValue> {
        let p = &self.properties;
        let text = |s: &Option<String>| s.clone().map(FilterValue::String);
        let key = name.to_ascii_lowercase();
        match key.as_str() {
            "messageid" => p
                .message_id
                .as_ref()
                .and_then(id_text)
                .map(FilterValue::String),
            "correlationid" => p
                .correlation_id
                .as_ref()
                .and_then(id_text)
                .map(FilterValue::String),
            "to" => text(&p.to),
            "replyto" => text(&p.reply_to),
            "label" | "subject" => text(&p.subject),
            "sessionid" => text(&p.group_id),
            "replytosessionid" => text(&p.reply_to_group_id),
            "contenttype" => p
                .content_type
                .as_ref()
                .map(|s| FilterValue::String(s.as_str().to_owned())),
            "size" => Some(FilterValue::Long(self.size)),
            _ => None,
        }
    }

    fn user(&self, name: &str) -> Option<FilterValue> {
        // Names as written first; Service Bus treats property names case-insensitively.
        self.application
            .iter()
            .find(|(key, _)| key == name)
            .or_else(|| {
                self.application
                    .iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(name))
            })
            .map(|(_, value)| value.clone())
    }
}

/// How an application property value looks to a filter. Types a filter can't compare
/// (binary, lists, maps, described values) read as NULL.
pub fn filter_value(value: &Value) -> FilterValue {
    match value {
        Value::Bool(b) => FilterValue::Bool(*b),
        Value::Float(f) => FilterValue::Double(f64::from(*f)),
        Value::Double(d) => FilterValue::Double(*d),
        Value::String(s) => FilterValue::String(s.clone()),
        Value::Symbol(s) => FilterValue::String(s.as_str().to_owned()),
        Value::Char(c) => FilterValue::String(c.to_string()),
        Value::Uuid(_) => id_text(value).map_or(FilterValue::Null, FilterValue::String),
        Value::Timestamp(Timestamp(ms)) => FilterValue::Long(*ms),
        other => other.as_i64().map_or(FilterValue::Null, FilterValue::Long),
    }
}

/// A filter value as an AMQP value.
pub fn amqp_value(value: &FilterValue) -> Value {
    match value {
        FilterValue::Null => Value::Null,
        FilterValue::Bool(b) => Value::Bool(*b),
        FilterValue::Long(n) => Value::Long(*n),
        FilterValue::Double(d) => Value::Double(*d),
        FilterValue::String(s) => Value::String(s.clone()),
    }
}

/// The copy of `payload` a rule with an action delivers: the action's user-property
/// changes applied and `RuleName` set. Changes to system properties are not carried
/// (they are logged and skipped).
pub fn apply_rule_action(
    payload: &Bytes,
    rule_name: &str,
    changes: &[PropertyChange],
) -> Result<Bytes, CodecError> {
    let mut set: Vec<(String, Value)> = Vec::with_capacity(changes.len() + 1);
    let mut removed: Vec<String> = Vec::new();
    for change in changes {
        if change.scope == PropertyScope::System {
            tracing::debug!(property = %change.name, rule = rule_name, "rule action on a system property skipped");
            continue;
        }
        set.retain(|(name, _)| name != &change.name);
        removed.retain(|name| name != &change.name);
        match &change.value {
            Some(value) => set.push((change.name.clone(), amqp_value(value))),
            None => removed.push(change.name.clone()),
        }
    }
    set.retain(|(name, _)| name != RULE_NAME);
    set.push((RULE_NAME.to_owned(), Value::String(rule_name.to_owned())));
    let scanned = scan_sections(payload)?;
    let options = RewriteOptions {
        application_properties: &set,
        removed_application_properties: &removed,
        ..RewriteOptions::default()
    };
    rewrite(&scanned, &options)
}
