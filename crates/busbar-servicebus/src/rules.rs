//! Subscription rules as the `$management` rule operations carry them: the
//! `rule-description` map of `com.microsoft:add-rule`, and the described rule, filter and
//! action values `com.microsoft:enumerate-rules` answers with.

use busbar_amqp::value::{Descriptor, Value};
use busbar_core::filter::CorrelationFilter;
use busbar_core::namespace::{FilterDescription, RuleDescription};

use crate::filtering::{amqp_value, filter_value};

/// Descriptor codes of the rule types. Filters use the 0x13_7000_000X prefix, the rule
/// description and actions 0x137_0000_000X.
pub mod descriptor {
    pub const RULE_DESCRIPTION: u64 = 0x0000_0137_0000_0004;
    pub const EMPTY_RULE_ACTION: u64 = 0x0000_0137_0000_0005;
    pub const SQL_RULE_ACTION: u64 = 0x0000_0137_0000_0006;
    pub const SQL_FILTER: u64 = 0x0000_0013_7000_0006;
    pub const TRUE_FILTER: u64 = 0x0000_0013_7000_0007;
    pub const FALSE_FILTER: u64 = 0x0000_0013_7000_0008;
    pub const CORRELATION_FILTER: u64 = 0x0000_0013_7000_0009;
}

/// Correlation filter fields in wire order (keys of the add-rule map, positions of the
/// described list).
const CORRELATION_FIELDS: [&str; 8] = [
    "correlation-id",
    "message-id",
    "to",
    "reply-to",
    "label",
    "session-id",
    "reply-to-session-id",
    "content-type",
];

/// Reads an add-rule request body (`rule-name`, `rule-description`). The filter is not
/// compiled here; the error says what is missing or malformed.
pub fn rule_from_request(body: &Value) -> Result<RuleDescription, String> {
    let name = body
        .map_get("rule-name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or("'rule-name' must be a non-empty string")?;
    let description = match body.map_get("rule-description") {
        Some(map @ Value::Map(_)) => map,
        _ => return Err("'rule-description' must be a map".to_owned()),
    };
    let filter = if let Some(sql) = description.map_get("sql-filter") {
        FilterDescription::Sql(expression(sql, "sql-filter")?)
    } else if let Some(correlation) = description.map_get("correlation-filter") {
        FilterDescription::Correlation(correlation_from_map(correlation)?)
    } else {
        return Err("'rule-description' needs a 'sql-filter' or a 'correlation-filter'".to_owned());
    };
    let action = match description.map_get("sql-rule-action") {
        None | Some(Value::Null) => None,
        // What the azservicebus crate sends for a rule without an action.
        Some(Value::Map(entries)) if entries.is_empty() => None,
        Some(action) => Some(expression(action, "sql-rule-action")?),
    };
    Ok(RuleDescription {
        name: name.to_owned(),
        filter,
        action,
    })
}

fn expression(map: &Value, what: &str) -> Result<String, String> {
    map.map_get("expression")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("'{what}' must be a map with a string 'expression'"))
}

fn correlation_from_map(map: &Value) -> Result<CorrelationFilter, String> {
    if !matches!(map, Value::Map(_)) {
        return Err("'correlation-filter' must be a map".to_owned());
    }
    let text = |key: &str| -> Result<Option<String>, String> {
        match map.map_get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => crate::message::id_text(value)
                .map(Some)
                .ok_or_else(|| format!("correlation filter field '{key}' must be a string")),
        }
    };
    let mut properties = match map.map_get("properties") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Map(entries)) => entries
            .iter()
            .map(|(key, value)| {
                key.as_str()
                    .map(|k| (k.to_owned(), filter_value(value)))
                    .ok_or_else(|| "correlation filter property names must be strings".to_owned())
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err("correlation filter 'properties' must be a map".to_owned()),
    };
    properties.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(CorrelationFilter {
        correlation_id: text("correlation-id")?,
        message_id: text("message-id")?,
        to: text("to")?,
        reply_to: text("reply-to")?,
        subject: text("label")?,
        session_id: text("session-id")?,
        reply_to_session_id: text("reply-to-session-id")?,
        content_type: text("content-type")?,
        properties,
    })
}

fn described(code: u64, fields: Vec<Value>) -> Value {
    Value::Described(
        Box::new(Descriptor::Code(code)),
        Box::new(Value::List(fields)),
    )
}

fn optional_text(text: &Option<String>) -> Value {
    text.clone().map_or(Value::Null, Value::String)
}

/// A rule as `enumerate-rules` lists it: `{rule-description: described rule}`.
pub fn rule_entry(rule: &RuleDescription) -> Value {
    let filter = match &rule.filter {
        FilterDescription::True => described(descriptor::TRUE_FILTER, Vec::new()),
        FilterDescription::False => described(descriptor::FALSE_FILTER, Vec::new()),
        FilterDescription::Sql(expression) => described(
            descriptor::SQL_FILTER,
            vec![Value::String(expression.clone()), Value::Int(20)],
        ),
        FilterDescription::Correlation(c) => {
            let texts = [
                &c.correlation_id,
                &c.message_id,
                &c.to,
                &c.reply_to,
                &c.subject,
                &c.session_id,
                &c.reply_to_session_id,
                &c.content_type,
            ];
            debug_assert_eq!(texts.len(), CORRELATION_FIELDS.len());
            let mut fields: Vec<Value> = texts.into_iter().map(optional_text).collect();
            fields.push(Value::Map(
                c.properties
                    .iter()
                    .map(|(k, v)| (Value::String(k.clone()), amqp_value(v)))
                    .collect(),
            ));
            described(descriptor::CORRELATION_FILTER, fields)
        }
    };
    let action = match &rule.action {
        Some(expression) => described(
            descriptor::SQL_RULE_ACTION,
            vec![Value::String(expression.clone()), Value::Int(20)],
        ),
        None => described(descriptor::EMPTY_RULE_ACTION, Vec::new()),
    };
    Value::Map(vec![(
        Value::String("rule-description".into()),
        described(
            descriptor::RULE_DESCRIPTION,
            vec![filter, action, Value::String(rule.name.clone())],
        ),
    )])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use busbar_core::filter::FilterValue;

    fn map(entries: Vec<(&str, Value)>) -> Value {
        Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (Value::String(k.into()), v))
                .collect(),
        )
    }

    #[test]
    fn reads_sql_and_correlation_rules_as_the_js_sdk_sends_them() {
        let sql = map(vec![
            ("rule-name", Value::String("r1".into())),
            (
                "rule-description",
                map(vec![
                    (
                        "sql-filter",
                        map(vec![("expression", Value::String("a = 1".into()))]),
                    ),
                    (
                        "sql-rule-action",
                        map(vec![("expression", Value::String("SET b = 2".into()))]),
                    ),
                ]),
            ),
        ]);
        let rule = rule_from_request(&sql).unwrap();
        assert_eq!(rule.name, "r1");
        assert_eq!(rule.filter, FilterDescription::Sql("a = 1".into()));
        assert_eq!(rule.action.as_deref(), Some("SET b = 2"));

        let mut fields: Vec<(&str, Value)> = CORRELATION_FIELDS
            .iter()
            .map(|f| (*f, Value::Null))
            .collect();
        fields[0].1 = Value::String("c".into());
        fields[4].1 = Value::String("created".into());
        fields.push(("properties", map(vec![("x", Value::Int(1))])));
        let correlation = map(vec![
            ("rule-name", Value::String("r2".into())),
            (
                "rule-description",
                map(vec![("correlation-filter", map(fields))]),
            ),
        ]);
        let rule = rule_from_request(&correlation).unwrap();
        let FilterDescription::Correlation(filter) = &rule.filter else {
            panic!("not a correlation filter: {rule:?}");
        };
        assert_eq!(filter.correlation_id.as_deref(), Some("c"));
        assert_eq!(filter.subject.as_deref(), Some("created"));
        assert_eq!(filter.to, None);
        assert_eq!(
            filter.properties,
            vec![("x".to_owned(), FilterValue::Long(1))]
        );
        assert_eq!(rule.action, None);
    }

    #[test]
    fn an_empty_action_map_is_no_action() {
        // The azservicebus crate sends `sql-rule-action: {}` for a rule without an action.
        let request = |action: Value| {
            map(vec![
                ("rule-name", Value::String("r".into())),
                (
                    "rule-description",
                    map(vec![
                        (
                            "sql-filter",
                            map(vec![("expression", Value::String("a = 1".into()))]),
                        ),
                        ("sql-rule-action", action),
                    ]),
                ),
            ])
        };
        assert_eq!(
            rule_from_request(&request(map(vec![]))).unwrap().action,
            None
        );
        let not_text = request(map(vec![("expression", Value::Int(1))]));
        assert!(
            rule_from_request(&not_text)
                .unwrap_err()
                .contains("'sql-rule-action' must be a map with a string 'expression'")
        );
    }

    #[test]
    fn malformed_requests_say_what_is_wrong() {
        let no_name = map(vec![("rule-description", map(vec![]))]);
        assert!(
            rule_from_request(&no_name)
                .unwrap_err()
                .contains("rule-name")
        );
        let no_filter = map(vec![
            ("rule-name", Value::String("r".into())),
            ("rule-description", map(vec![])),
        ]);
        assert!(
            rule_from_request(&no_filter)
                .unwrap_err()
                .contains("sql-filter")
        );
    }

    #[test]
    fn listed_rules_carry_the_described_codes() {
        let entry = rule_entry(&RuleDescription::default_rule());
        let Some(Value::Described(code, fields)) = entry.map_get("rule-description") else {
            panic!("no described rule: {entry:?}");
        };
        assert_eq!(**code, Descriptor::Code(descriptor::RULE_DESCRIPTION));
        let Value::List(fields) = &**fields else {
            panic!("fields are not a list");
        };
        assert!(
            matches!(&fields[0], Value::Described(c, _) if **c == Descriptor::Code(descriptor::TRUE_FILTER))
        );
        assert!(
            matches!(&fields[1], Value::Described(c, _) if **c == Descriptor::Code(descriptor::EMPTY_RULE_ACTION))
        );
        assert_eq!(fields[2], Value::String("$Default".into()));
    }
}
