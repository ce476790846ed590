//! The rule tester: a topic's subscriptions' rules evaluated against a message the way a
//! publish evaluates them (the same filter view, `busbar_core::rules::select` for whether
//! a subscription takes it, the same filters and actions per rule), sending nothing.

use busbar_core::filter::{Filter, FilterValue};
use busbar_core::namespace::split_subscription_path;
use busbar_core::rules::{Rule, select};
use busbar_http::console_api::{
    ConsoleError, RuleTestOutcome, RuleTestRequest, RuleVerdict, SubscriptionVerdict,
};
use busbar_servicebus::filtering::FilterView;
use serde_json::{Map, Value as Json};

use super::actions::encode_message;
use crate::ServedBroker;

pub(super) fn rule_test(
    broker: &ServedBroker,
    request: &RuleTestRequest,
) -> Result<RuleTestOutcome, ConsoleError> {
    let topic = broker
        .topic(&request.topic)
        .ok_or_else(|| ConsoleError::NotFound(format!("no topic named '{}'", request.topic)))?;
    let encoded = encode_message(&request.message)?;
    let Some(message) = encoded.first() else {
        return Err(ConsoleError::BadRequest("no message to test".to_owned()));
    };
    let view = FilterView::read(message)
        .map_err(|e| ConsoleError::BadRequest(format!("the message can't be read: {e}")))?;
    let subscriptions = std::sync::Arc::clone(&topic.lock().subscriptions);
    let mut verdicts = Vec::new();
    for subscription in subscriptions.iter() {
        let name = split_subscription_path(&subscription.entity.name)
            .map_or(subscription.entity.name.as_str(), |(_, name)| name);
        if request
            .subscription
            .as_deref()
            .is_some_and(|wanted| !wanted.eq_ignore_ascii_case(name))
        {
            continue;
        }
        verdicts.push(SubscriptionVerdict {
            name: name.to_owned(),
            matched: !select(&subscription.rules, &view).is_empty(),
            rules: subscription
                .rules
                .iter()
                .map(|rule| rule_verdict(rule, &view))
                .collect(),
        });
    }
    if let Some(wanted) = &request.subscription
        && verdicts.is_empty()
    {
        return Err(ConsoleError::NotFound(format!(
            "no subscription named '{wanted}' on topic '{}'",
            topic.name
        )));
    }
    Ok(RuleTestOutcome {
        subscriptions: verdicts,
    })
}

fn rule_verdict(rule: &Rule, view: &FilterView) -> RuleVerdict {
    let mut verdict = RuleVerdict {
        name: rule.name.clone(),
        filter: filter_text(&rule.filter),
        matched: false,
        action_sets: Map::new(),
        error: None,
    };
    match rule.filter.matches(view) {
        Ok(matched) => verdict.matched = matched,
        Err(error) => verdict.error = Some(error.to_string()),
    }
    if let (true, Some(action)) = (verdict.matched, &rule.action) {
        match action.changes(view) {
            Ok(changes) => {
                for change in changes {
                    let value = change.value.as_ref().map_or(Json::Null, json_of);
                    verdict.action_sets.insert(change.name, value);
                }
            }
            Err(error) => verdict.error = Some(error.to_string()),
        }
    }
    verdict
}

fn filter_text(filter: &Filter) -> String {
    match filter {
        Filter::True => "TRUE".to_owned(),
        Filter::False => "FALSE".to_owned(),
        Filter::Sql(sql) => sql.expression().to_owned(),
        Filter::Correlation(correlation) => {
            let mut conditions: Vec<String> = [
                ("correlation_id", &correlation.correlation_id),
                ("message_id", &correlation.message_id),
                ("to", &correlation.to),
                ("reply_to", &correlation.reply_to),
                ("subject", &correlation.subject),
                ("session_id", &correlation.session_id),
                ("reply_to_session_id", &correlation.reply_to_session_id),
                ("content_type", &correlation.content_type),
            ]
            .into_iter()
            .filter_map(|(name, value)| Some(format!("{name} = '{}'", value.as_ref()?)))
            .collect();
            conditions.extend(
                correlation
                    .properties
                    .iter()
                    .map(|(name, value)| format!("{name} = {}", json_of(value))),
            );
            conditions.join(" AND ")
        }
    }
}

fn json_of(value: &FilterValue) -> Json {
    match value {
        FilterValue::Null => Json::Null,
        FilterValue::Bool(b) => Json::Bool(*b),
        FilterValue::Long(n) => Json::from(*n),
        FilterValue::Double(x) => serde_json::Number::from_f64(*x).map_or(Json::Null, Json::Number),
        FilterValue::String(text) => Json::from(text.clone()),
    }
}
