//! Rules as the `$management` rule operations carry them: the `rule-description` map of
//! `com.microsoft:add-rule`, and the described rule, filter and action values
//! `com.microsoft:enumerate-rules` answers with (the reference's servicebus-amqp-dialect.md,
//! "Rule operations").

use busbar_amqp::{Descriptor, Timestamp, Value};
use busbar_atom::parameters::inline_parameters;
use busbar_atom::timestamp::{format_utc, parse_utc};

use super::admin::{CorrelationFilter, RuleAction, RuleFilter, RuleProperties, TypedValue};
use super::{ErrorKind, ServiceBusError, ServiceBusResult as Result};

/// Descriptor codes of the rule types.
mod descriptor {
    pub const RULE_DESCRIPTION: u64 = 0x0000_0137_0000_0004;
    pub const SQL_RULE_ACTION: u64 = 0x0000_0137_0000_0006;
    pub const SQL_FILTER: u64 = 0x0000_0013_7000_0006;
    pub const TRUE_FILTER: u64 = 0x0000_0013_7000_0007;
    pub const FALSE_FILTER: u64 = 0x0000_0013_7000_0008;
    pub const CORRELATION_FILTER: u64 = 0x0000_0013_7000_0009;
}

fn text(s: &str) -> Value {
    Value::String(s.to_owned())
}

fn optional(s: &Option<String>) -> Value {
    s.as_deref().map_or(Value::Null, text)
}

fn invalid(message: String) -> ServiceBusError {
    ServiceBusError::new(ErrorKind::InvalidArgument, message)
}

fn unreadable(message: impl Into<String>) -> ServiceBusError {
    ServiceBusError::new(
        ErrorKind::ServiceCommunication,
        format!("an unreadable rule: {}", message.into()),
    )
}

/// A typed value as AMQP carries it.
fn amqp_value(key: &str, value: &TypedValue) -> Result<Value> {
    Ok(match value {
        TypedValue::String(s) => text(s),
        TypedValue::Int(n) => Value::Int(*n),
        TypedValue::Long(n) => Value::Long(*n),
        TypedValue::Double(x) => Value::Double(*x),
        TypedValue::Boolean(b) => Value::Bool(*b),
        TypedValue::DateTime(t) => match parse_utc(t) {
            Ok(Some(ms)) => Value::Timestamp(Timestamp(ms)),
            _ => return Err(invalid(format!("'{key}': '{t}' is not a date and time"))),
        },
        TypedValue::Duration(_) => {
            return Err(invalid(format!(
                "'{key}': AMQP carries no durations in a rule; use a number"
            )));
        }
    })
}

fn typed_value(value: &Value) -> TypedValue {
    match value {
        Value::String(s) => TypedValue::String(s.clone()),
        Value::Symbol(s) => TypedValue::String(s.as_str().to_owned()),
        Value::Bool(b) => TypedValue::Boolean(*b),
        Value::Int(n) => TypedValue::Int(*n),
        Value::Byte(_) | Value::Short(_) | Value::Ubyte(_) | Value::Ushort(_) => TypedValue::Int(
            value
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .unwrap_or(0),
        ),
        Value::Float(x) => TypedValue::Double(f64::from(*x)),
        Value::Double(x) => TypedValue::Double(*x),
        Value::Timestamp(Timestamp(ms)) => TypedValue::DateTime(format_utc(*ms)),
        other => match other.as_i64() {
            Some(n) => TypedValue::Long(n),
            None => TypedValue::String(format!("{other:?}")),
        },
    }
}

/// `expression` with its parameters written in as literals: the add-rule map has no place
/// for them (the official SDKs drop them on this path; only the administration API carries
/// them), so the service gets the expression they stand for.
fn with_parameters(expression: &str, parameters: &[(String, TypedValue)]) -> Result<String> {
    if parameters.is_empty() {
        return Ok(expression.to_owned());
    }
    inline_parameters(expression, parameters).map_err(invalid)
}

/// The body of `com.microsoft:add-rule`.
pub(super) fn add_rule_request(
    name: &str,
    filter: &RuleFilter,
    action: &RuleAction,
) -> Result<Value> {
    let sql = |expression: &str| Value::Map(vec![(text("expression"), text(expression))]);
    let (filter_key, filter_value) = match filter {
        RuleFilter::True => ("sql-filter", sql("1=1")),
        RuleFilter::False => ("sql-filter", sql("1=0")),
        RuleFilter::Sql {
            expression,
            parameters,
        } => ("sql-filter", sql(&with_parameters(expression, parameters)?)),
        RuleFilter::Correlation(c) => ("correlation-filter", correlation_map(c)?),
    };
    let mut description = vec![(text(filter_key), filter_value)];
    match action {
        RuleAction::Empty => {}
        RuleAction::Sql {
            expression,
            parameters,
        } => {
            let expression = with_parameters(expression, parameters)?;
            description.push((text("sql-rule-action"), sql(&expression)));
        }
    }
    Ok(Value::Map(vec![
        (text("rule-name"), text(name)),
        (text("rule-description"), Value::Map(description)),
    ]))
}

fn correlation_map(c: &CorrelationFilter) -> Result<Value> {
    let properties = c
        .properties
        .iter()
        .map(|(key, value)| Ok((text(key), amqp_value(key, value)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Value::Map(vec![
        (text("correlation-id"), optional(&c.correlation_id)),
        (text("message-id"), optional(&c.message_id)),
        (text("to"), optional(&c.to)),
        (text("reply-to"), optional(&c.reply_to)),
        (text("label"), optional(&c.label)),
        (text("session-id"), optional(&c.session_id)),
        (
            text("reply-to-session-id"),
            optional(&c.reply_to_session_id),
        ),
        (text("content-type"), optional(&c.content_type)),
        (text("properties"), Value::Map(properties)),
    ]))
}

/// The described list of a described value with this code.
fn described(value: &Value, code: u64) -> Option<&[Value]> {
    match value {
        Value::Described(descriptor, inner) if **descriptor == Descriptor::Code(code) => {
            match &**inner {
                Value::List(fields) => Some(fields),
                _ => None,
            }
        }
        _ => None,
    }
}

fn code_of(value: &Value) -> Option<u64> {
    match value {
        Value::Described(descriptor, _) => match **descriptor {
            Descriptor::Code(code) => Some(code),
            _ => None,
        },
        _ => None,
    }
}

fn field_text(fields: &[Value], at: usize) -> Option<String> {
    fields.get(at).and_then(Value::as_str).map(str::to_owned)
}

fn sql_expression(fields: &[Value]) -> Result<String> {
    field_text(fields, 0).ok_or_else(|| unreadable("a SQL expression that is not a string"))
}

fn filter(value: &Value) -> Result<RuleFilter> {
    let code = code_of(value).ok_or_else(|| unreadable("a filter that is not described"))?;
    let fields = described(value, code).unwrap_or_default();
    Ok(match code {
        descriptor::TRUE_FILTER => RuleFilter::True,
        descriptor::FALSE_FILTER => RuleFilter::False,
        descriptor::SQL_FILTER => RuleFilter::Sql {
            expression: sql_expression(fields)?,
            parameters: Vec::new(),
        },
        descriptor::CORRELATION_FILTER => RuleFilter::Correlation(CorrelationFilter {
            correlation_id: field_text(fields, 0),
            message_id: field_text(fields, 1),
            to: field_text(fields, 2),
            reply_to: field_text(fields, 3),
            label: field_text(fields, 4),
            session_id: field_text(fields, 5),
            reply_to_session_id: field_text(fields, 6),
            content_type: field_text(fields, 7),
            properties: match fields.get(8) {
                Some(Value::Map(entries)) => entries
                    .iter()
                    .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), typed_value(v))))
                    .collect(),
                _ => Vec::new(),
            },
        }),
        other => return Err(unreadable(format!("the filter type {other:#x}"))),
    })
}

fn action(value: &Value) -> Result<RuleAction> {
    match described(value, descriptor::SQL_RULE_ACTION) {
        Some(fields) => Ok(RuleAction::Sql {
            expression: sql_expression(fields)?,
            parameters: Vec::new(),
        }),
        None => Ok(RuleAction::Empty),
    }
}

/// The rules of an `enumerate-rules` answer body (`{rules: [{rule-description: …}]}`).
pub(super) fn rules_from_answer(body: &Value) -> Result<Vec<RuleProperties>> {
    let entries = match body.map_get("rules") {
        Some(Value::List(entries)) | Some(Value::Array(entries)) => entries,
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(_) => return Err(unreadable("'rules' is not a list")),
    };
    entries
        .iter()
        .map(|entry| {
            let fields = entry
                .map_get("rule-description")
                .and_then(|d| described(d, descriptor::RULE_DESCRIPTION))
                .ok_or_else(|| unreadable("an entry without a rule-description"))?;
            Ok(RuleProperties {
                filter: filter(fields.first().unwrap_or(&Value::Null))?,
                action: action(fields.get(1).unwrap_or(&Value::Null))?,
                name: field_text(fields, 2).ok_or_else(|| unreadable("a rule without a name"))?,
                created_at: match fields.get(3) {
                    Some(Value::Timestamp(t)) => Some(super::admin::time(t.0)),
                    _ => None,
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(code: u64, fields: Vec<Value>) -> Value {
        Value::Described(
            Box::new(Descriptor::Code(code)),
            Box::new(Value::List(fields)),
        )
    }

    #[test]
    fn reads_every_filter_and_action_the_broker_lists() {
        let entry = |filter: Value, action: Value, name: &str| {
            Value::Map(vec![(
                text("rule-description"),
                d(
                    descriptor::RULE_DESCRIPTION,
                    vec![filter, action, text(name)],
                ),
            )])
        };
        let empty = d(0x0000_0137_0000_0005, vec![]);
        let body = Value::Map(vec![(
            text("rules"),
            Value::List(vec![
                entry(
                    d(descriptor::TRUE_FILTER, vec![]),
                    empty.clone(),
                    "$Default",
                ),
                entry(
                    d(descriptor::SQL_FILTER, vec![text("a > 1"), Value::Int(20)]),
                    d(
                        descriptor::SQL_RULE_ACTION,
                        vec![text("SET b = 2"), Value::Int(20)],
                    ),
                    "sql",
                ),
                entry(
                    d(
                        descriptor::CORRELATION_FILTER,
                        vec![
                            text("c"),
                            Value::Null,
                            Value::Null,
                            Value::Null,
                            text("l"),
                            Value::Null,
                            Value::Null,
                            Value::Null,
                            Value::Map(vec![(text("n"), Value::Long(7))]),
                        ],
                    ),
                    empty,
                    "corr",
                ),
            ]),
        )]);
        let rules = rules_from_answer(&body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rules[0].filter, RuleFilter::True);
        assert_eq!(
            rules[1].action,
            RuleAction::Sql {
                expression: "SET b = 2".to_owned(),
                parameters: vec![]
            }
        );
        assert_eq!(
            rules[2].filter,
            RuleFilter::Correlation(CorrelationFilter {
                correlation_id: Some("c".to_owned()),
                label: Some("l".to_owned()),
                properties: vec![("n".to_owned(), TypedValue::Long(7))],
                ..CorrelationFilter::default()
            })
        );
        assert!(rules_from_answer(&Value::Map(vec![(text("rules"), text("x"))])).is_err());
    }

    #[test]
    fn parameters_travel_written_into_their_expressions() {
        let filter = RuleFilter::Sql {
            expression: "sys.label = @subject AND n > @n".to_owned(),
            parameters: vec![
                ("@subject".to_owned(), TypedValue::String("it's".to_owned())),
                ("@n".to_owned(), TypedValue::Int(1)),
            ],
        };
        let action = RuleAction::Sql {
            expression: "SET x = @x".to_owned(),
            parameters: vec![("@x".to_owned(), TypedValue::Double(2.5))],
        };
        let body = add_rule_request("r", &filter, &action).unwrap_or_else(|e| panic!("{e}"));
        let description = body.map_get("rule-description");
        let expression = |key: &str| {
            description
                .and_then(|d| d.map_get(key))
                .and_then(|m| m.map_get("expression"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        assert_eq!(
            expression("sql-filter").as_deref(),
            Some("sys.label = 'it''s' AND n > 1")
        );
        assert_eq!(
            expression("sql-rule-action").as_deref(),
            Some("SET x = 2.5")
        );
    }

    #[test]
    fn refuses_what_add_rule_cannot_carry() {
        let duration = RuleFilter::Correlation(CorrelationFilter {
            properties: vec![("d".to_owned(), TypedValue::Duration("PT1M".to_owned()))],
            ..CorrelationFilter::default()
        });
        assert!(add_rule_request("r", &duration, &RuleAction::Empty).is_err());
    }
}
