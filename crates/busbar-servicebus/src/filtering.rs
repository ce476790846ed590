//! Subscription filters over AMQP messages: how a message's properties look to a rule
//! (system properties from the properties section, user properties from the application
//! properties), and how a rule action's changes are written into the copy a subscription
//! gets.

use busbar_amqp::CodecError;
use busbar_amqp::message::{Properties, RewriteOptions, rewrite, scan_sections};
use busbar_amqp::value::{Symbol, Timestamp, Value};
use busbar_core::filter::{FilterValue, PropertyChange, PropertyScope, PropertySource};
use bytes::Bytes;

use crate::message::{annotation, id_text};

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

/// The copy a rule with an action delivers, with what the broker reads from its properties.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleActionCopy {
    pub body: Bytes,
    /// The copy's message-id as text, after the action.
    pub message_id: Option<String>,
    /// The copy's session id (`group-id`), after the action.
    pub session_id: Option<String>,
}

/// The copy of `payload` a rule with an action delivers: the action's changes applied and
/// `RuleName` set. System properties of the properties section (MessageId, CorrelationId,
/// To, ReplyTo, Label, SessionId, ReplyToSessionId, ContentType) and the partition keys are
/// written as Service Bus writes them into a subscription's copy; TimeToLive,
/// ScheduledEnqueueTimeUtc and ForcePersistence are not carried (logged and skipped).
pub fn apply_rule_action(
    payload: &Bytes,
    rule_name: &str,
    changes: &[PropertyChange],
) -> Result<RuleActionCopy, CodecError> {
    let scanned = scan_sections(payload)?;
    let mut properties = scanned.properties()?.unwrap_or_default();
    let mut properties_changed = false;
    let mut annotations: Vec<(Symbol, Value)> = Vec::new();
    let mut set: Vec<(String, Value)> = Vec::with_capacity(changes.len() + 1);
    let mut removed: Vec<String> = Vec::new();
    for change in changes {
        if change.scope == PropertyScope::System {
            // REMOVE of a system property is refused when the rule is created.
            let value = change.value.as_ref().unwrap_or(&FilterValue::Null);
            match set_system_property(&mut properties, &change.name, value) {
                SystemTarget::Properties => properties_changed = true,
                SystemTarget::Annotation(key) => {
                    annotations.retain(|(existing, _)| existing.as_str() != key);
                    annotations.push((Symbol::from(key), amqp_value(value)));
                }
                SystemTarget::NotCarried => {
                    tracing::debug!(property = %change.name, rule = rule_name, "rule action on a system property the copy does not carry skipped");
                }
            }
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
    let options = RewriteOptions {
        application_properties: &set,
        removed_application_properties: &removed,
        annotations: &annotations,
        properties: properties_changed.then_some(&properties),
        ..RewriteOptions::default()
    };
    Ok(RuleActionCopy {
        body: rewrite(&scanned, &options)?,
        message_id: properties.message_id.as_ref().and_then(id_text),
        session_id: properties.group_id.clone(),
    })
}

/// Where a rule action's system property lives in the AMQP message.
enum SystemTarget {
    Properties,
    Annotation(&'static str),
    NotCarried,
}

/// Writes `value` into the properties field for the system property `name` (canonical,
/// as [`busbar_core::filter::SYSTEM_PROPERTIES`] spells it), or says where else it goes.
/// Rule actions convert string system properties to text before this, so a non-text value
/// here is NULL, which clears the field.
fn set_system_property(
    properties: &mut Properties,
    name: &str,
    value: &FilterValue,
) -> SystemTarget {
    let text = match value {
        FilterValue::String(text) => Some(text.clone()),
        _ => None,
    };
    match name {
        "MessageId" => properties.message_id = text.map(Value::String),
        "CorrelationId" => properties.correlation_id = text.map(Value::String),
        "To" => properties.to = text,
        "ReplyTo" => properties.reply_to = text,
        "Label" => properties.subject = text,
        "SessionId" => properties.group_id = text,
        "ReplyToSessionId" => properties.reply_to_group_id = text,
        "ContentType" => properties.content_type = text.as_deref().map(Symbol::from),
        "PartitionKey" => return SystemTarget::Annotation(annotation::PARTITION_KEY),
        "ViaPartitionKey" => return SystemTarget::Annotation(annotation::VIA_PARTITION_KEY),
        _ => return SystemTarget::NotCarried,
    }
    SystemTarget::Properties
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use busbar_amqp::codec::{encode_descriptor, encode_value};
    use busbar_amqp::value::Descriptor;
    use busbar_core::filter::SqlRuleAction;
    use bytes::BytesMut;

    fn message(properties: &Properties, body: &[u8]) -> Bytes {
        let mut out = BytesMut::new();
        properties.encode(&mut out);
        encode_descriptor(&Descriptor::Code(0x75), &mut out);
        encode_value(&Value::Binary(Bytes::copy_from_slice(body)), &mut out);
        out.freeze()
    }

    fn copy(payload: &Bytes, action: &str) -> RuleActionCopy {
        let view = FilterView::read(payload).unwrap();
        let changes = SqlRuleAction::parse(action)
            .unwrap()
            .changes(&view)
            .unwrap();
        apply_rule_action(payload, "r", &changes).unwrap()
    }

    #[test]
    fn system_properties_set_by_an_action_reach_the_copy() {
        let original = Properties {
            message_id: Some(Value::String("m1".into())),
            to: Some("original".into()),
            group_id: Some("s1".into()),
            ..Properties::default()
        };
        let payload = message(&original, b"body");
        let copy = copy(
            &payload,
            "SET sys.To = 'Entity'; SET sys.Subject = sys.To + '!'; SET sys.SessionId = 's2'; \
             SET sys.MessageId = 'm2'; SET sys.CorrelationId = 7; SET sys.ReplyTo = 'r'; \
             SET sys.ReplyToSessionId = 'rs'; SET sys.ContentType = 'application/json'; \
             SET sys.PartitionKey = 'p'",
        );
        assert_eq!(copy.message_id.as_deref(), Some("m2"));
        assert_eq!(copy.session_id.as_deref(), Some("s2"));
        let scanned = scan_sections(&copy.body).unwrap();
        let properties = scanned.properties().unwrap().unwrap();
        assert_eq!(properties.to.as_deref(), Some("Entity"));
        assert_eq!(properties.subject.as_deref(), Some("Entity!"));
        assert_eq!(properties.correlation_id, Some(Value::String("7".into())));
        assert_eq!(properties.reply_to.as_deref(), Some("r"));
        assert_eq!(properties.reply_to_group_id.as_deref(), Some("rs"));
        assert_eq!(
            properties.content_type.as_ref().map(Symbol::as_str),
            Some("application/json")
        );
        let annotations = scanned.message_annotations().unwrap().unwrap();
        assert_eq!(
            annotations
                .map_get(annotation::PARTITION_KEY)
                .and_then(Value::as_str),
            Some("p")
        );
        assert_eq!(
            scanned.data_sections().unwrap(),
            vec![Bytes::from_static(b"body")]
        );
    }

    #[test]
    fn setting_a_system_property_to_null_clears_it() {
        let original = Properties {
            message_id: Some(Value::String("m1".into())),
            to: Some("original".into()),
            ..Properties::default()
        };
        let copy = copy(&message(&original, b"x"), "SET sys.To = NULL");
        let properties = scan_sections(&copy.body)
            .unwrap()
            .properties()
            .unwrap()
            .unwrap();
        assert_eq!(properties.to, None);
        assert_eq!(copy.message_id.as_deref(), Some("m1"));
    }

    #[test]
    fn an_action_on_user_properties_leaves_the_properties_section_as_it_was() {
        let original = Properties {
            message_id: Some(Value::String("m1".into())),
            to: Some("original".into()),
            ..Properties::default()
        };
        let payload = message(&original, b"x");
        let copy = copy(&payload, "SET a = 1");
        let before = scan_sections(&payload).unwrap();
        let after = scan_sections(&copy.body).unwrap();
        assert_eq!(
            after.section_bytes(&after.sections.properties),
            before.section_bytes(&before.sections.properties)
        );
    }
}
