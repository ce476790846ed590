//! The console's JSON entity and rule endpoints: `PUT|DELETE /api/console/queues/{name}`,
//! `.../topics/{name}`, `.../topics/{t}/subscriptions/{s}` and
//! `.../topics/{t}/subscriptions/{s}/rules/{r}`. A PUT creates the entity or, when it
//! exists, changes the properties its body names; both go through the administration
//! API's checked put ([`crate::atom::put_checked`]) over the same [`Management`], so an
//! entity has one lifecycle whichever API changes it. Manage is needed on the entity.

use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::put;
use busbar_atom::model::{
    CorrelationFilter, EntityStatus, Rule, RuleAction, RuleFilter, TypedValue,
};
use busbar_atom::read::Description;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json_;

use super::{Refusal, Shared, body, check};
use crate::Access;
use crate::atom::path::Target;
use crate::atom::{Management, ManagementError, PutMode, put_checked};

/// The properties a PUT may carry; those it leaves out keep their value (or the default
/// for a new entity). Each applies where the entity has it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntityProperties {
    lock_duration_ms: Option<u64>,
    max_delivery_count: Option<u32>,
    /// `null`: messages never expire.
    #[serde(default, deserialize_with = "present")]
    default_message_time_to_live_ms: Option<Option<u64>>,
    requires_session: Option<bool>,
    requires_duplicate_detection: Option<bool>,
    dead_lettering_on_message_expiration: Option<bool>,
    /// `null` or `""`: no forwarding.
    #[serde(default, deserialize_with = "present")]
    forward_to: Option<Option<String>>,
    status: Option<String>,
}

/// The settings queues and subscriptions share, to be overwritten by a PUT's properties.
struct QueueLike<'s> {
    lock_duration: &'s mut Duration,
    max_delivery_count: &'s mut u32,
    default_message_time_to_live: &'s mut Option<Duration>,
    requires_session: &'s mut bool,
    dead_lettering_on_message_expiration: &'s mut bool,
    forward_to: &'s mut Option<String>,
    status: &'s mut EntityStatus,
}

impl EntityProperties {
    /// Overwrites what these properties name in `settings`.
    fn apply_to(&self, settings: QueueLike<'_>) -> Result<(), String> {
        if let Some(ms) = self.lock_duration_ms {
            *settings.lock_duration = millis(ms);
        }
        if let Some(count) = self.max_delivery_count {
            *settings.max_delivery_count = count;
        }
        if let Some(ttl) = self.default_message_time_to_live_ms {
            *settings.default_message_time_to_live = ttl.map(millis);
        }
        if let Some(on) = self.requires_session {
            *settings.requires_session = on;
        }
        if let Some(on) = self.dead_lettering_on_message_expiration {
            *settings.dead_lettering_on_message_expiration = on;
        }
        if let Some(to) = &self.forward_to {
            *settings.forward_to = to.clone().filter(|t| !t.is_empty());
        }
        if let Some(status) = &self.status {
            *settings.status = status_of(status)?;
        }
        Ok(())
    }
}

/// A field given as `null` is `Some(None)`; a missing one stays `None`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleBody {
    sql_filter: Option<String>,
    correlation_filter: Option<CorrelationBody>,
    sql_action: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CorrelationBody {
    correlation_id: Option<String>,
    message_id: Option<String>,
    to: Option<String>,
    reply_to: Option<String>,
    subject: Option<String>,
    session_id: Option<String>,
    reply_to_session_id: Option<String>,
    content_type: Option<String>,
    #[serde(default)]
    properties: serde_json::Map<String, Json_>,
}

/// What a PUT or DELETE did.
#[derive(Debug, Serialize)]
struct Changed {
    path: String,
    /// `created`, `updated` or `deleted`.
    change: &'static str,
}

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route(
            "/api/console/queues/{name}",
            put(put_queue).delete(delete_queue),
        )
        .route(
            "/api/console/topics/{name}",
            put(put_topic).delete(delete_topic),
        )
        .route(
            "/api/console/topics/{topic}/subscriptions/{name}",
            put(put_subscription).delete(delete_subscription),
        )
        .route(
            "/api/console/topics/{topic}/subscriptions/{subscription}/rules/{name}",
            put(put_rule).delete(delete_rule),
        )
}

fn refused(status: StatusCode, error: String) -> Response {
    Refusal { status, error }.into_response()
}

fn management_failure(error: ManagementError) -> Response {
    let status = match &error {
        ManagementError::NotFound(_) => StatusCode::NOT_FOUND,
        ManagementError::Conflict(_) => StatusCode::CONFLICT,
        ManagementError::BadRequest(_) | ManagementError::QuotaExceeded(_) => {
            StatusCode::BAD_REQUEST
        }
        ManagementError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    refused(status, error.to_string())
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

fn status_of(text: &str) -> Result<EntityStatus, String> {
    EntityStatus::parse(text).ok_or_else(|| {
        format!("status must be Active, Disabled, SendDisabled or ReceiveDisabled, not '{text}'")
    })
}

/// Puts `description` at `target` (creating it when `exists` is false) and answers it.
fn apply(
    management: &dyn Management,
    target: Target,
    path: String,
    exists: bool,
    description: Result<Description, String>,
) -> Response {
    let description = match description {
        Ok(description) => description,
        Err(error) => return refused(StatusCode::BAD_REQUEST, error),
    };
    let mode = if exists {
        PutMode::Update
    } else {
        PutMode::Create
    };
    match put_checked(management, &target, &path, description, mode) {
        Ok(_) => {
            let (status, change) = if exists {
                (StatusCode::OK, "updated")
            } else {
                (StatusCode::CREATED, "created")
            };
            (status, Json(Changed { path, change })).into_response()
        }
        Err(error) => refused(error.status(), error.detail().to_owned()),
    }
}

/// Reads the body and checks Manage on `path`.
fn read<T: serde::de::DeserializeOwned>(
    console: &Shared,
    headers: &HeaderMap,
    path: &str,
    raw: &[u8],
) -> Result<T, Refusal> {
    check(console, headers, path, Access::Write)?;
    let raw = if raw.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        raw
    };
    body(raw)
}

async fn put_queue(
    State(console): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    raw: axum::body::Bytes,
) -> Response {
    let properties: EntityProperties = match read(&console, &headers, &name, &raw) {
        Ok(properties) => properties,
        Err(refusal) => return refusal.into_response(),
    };
    let management = console.management();
    let old = management.queue(&name);
    let exists = old.is_some();
    let mut settings = old.map(|view| view.settings).unwrap_or_default();
    let description = (|| {
        let p = properties;
        if let Some(on) = p.requires_duplicate_detection {
            settings.requires_duplicate_detection = on;
        }
        p.apply_to(QueueLike {
            lock_duration: &mut settings.lock_duration,
            max_delivery_count: &mut settings.max_delivery_count,
            default_message_time_to_live: &mut settings.default_message_time_to_live,
            requires_session: &mut settings.requires_session,
            dead_lettering_on_message_expiration: &mut settings
                .dead_lettering_on_message_expiration,
            forward_to: &mut settings.forward_to,
            status: &mut settings.status,
        })?;
        Ok(Description::Queue(settings))
    })();
    apply(
        &*management,
        Target::Entity(name.clone()),
        name,
        exists,
        description,
    )
}

async fn put_topic(
    State(console): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    raw: axum::body::Bytes,
) -> Response {
    let properties: EntityProperties = match read(&console, &headers, &name, &raw) {
        Ok(properties) => properties,
        Err(refusal) => return refusal.into_response(),
    };
    let management = console.management();
    let old = management.topic(&name);
    let exists = old.is_some();
    let mut settings = old.map(|view| view.settings).unwrap_or_default();
    let description = (|| {
        let p = properties;
        let queue_only = p.lock_duration_ms.is_some()
            || p.max_delivery_count.is_some()
            || p.requires_session.is_some()
            || p.dead_lettering_on_message_expiration.is_some()
            || p.forward_to.is_some();
        if queue_only {
            return Err("a topic takes default_message_time_to_live_ms, requires_duplicate_detection and status only".to_owned());
        }
        if let Some(ttl) = p.default_message_time_to_live_ms {
            settings.default_message_time_to_live = ttl.map(millis);
        }
        if let Some(on) = p.requires_duplicate_detection {
            settings.requires_duplicate_detection = on;
        }
        if let Some(status) = &p.status {
            settings.status = status_of(status)?;
        }
        Ok(Description::Topic(settings))
    })();
    apply(
        &*management,
        Target::Entity(name.clone()),
        name,
        exists,
        description,
    )
}

async fn put_subscription(
    State(console): State<Shared>,
    headers: HeaderMap,
    Path((topic, name)): Path<(String, String)>,
    raw: axum::body::Bytes,
) -> Response {
    let path = format!("{topic}/Subscriptions/{name}");
    let properties: EntityProperties = match read(&console, &headers, &path, &raw) {
        Ok(properties) => properties,
        Err(refusal) => return refusal.into_response(),
    };
    let management = console.management();
    let old = management.subscription(&topic, &name);
    let exists = old.is_some();
    let mut settings = old.map(|view| view.settings).unwrap_or_default();
    let description = (|| {
        let p = properties;
        if p.requires_duplicate_detection.is_some() {
            return Err("a subscription has no requires_duplicate_detection".to_owned());
        }
        p.apply_to(QueueLike {
            lock_duration: &mut settings.lock_duration,
            max_delivery_count: &mut settings.max_delivery_count,
            default_message_time_to_live: &mut settings.default_message_time_to_live,
            requires_session: &mut settings.requires_session,
            dead_lettering_on_message_expiration: &mut settings
                .dead_lettering_on_message_expiration,
            forward_to: &mut settings.forward_to,
            status: &mut settings.status,
        })?;
        Ok(Description::Subscription(settings))
    })();
    apply(
        &*management,
        Target::Subscription { topic, name },
        path,
        exists,
        description,
    )
}

async fn put_rule(
    State(console): State<Shared>,
    headers: HeaderMap,
    Path((topic, subscription, name)): Path<(String, String, String)>,
    raw: axum::body::Bytes,
) -> Response {
    let owner = format!("{topic}/Subscriptions/{subscription}");
    let rule: RuleBody = match read(&console, &headers, &owner, &raw) {
        Ok(rule) => rule,
        Err(refusal) => return refusal.into_response(),
    };
    let management = console.management();
    let exists = management.rule(&topic, &subscription, &name).is_some();
    let description = rule_of(rule).map(Description::Rule);
    let path = format!("{owner}/Rules/{name}");
    let target = Target::Rule {
        topic,
        subscription,
        name,
    };
    apply(&*management, target, path, exists, description)
}

fn rule_of(body: RuleBody) -> Result<Rule, String> {
    let filter = match (body.sql_filter, body.correlation_filter) {
        (Some(_), Some(_)) => {
            return Err("give sql_filter or correlation_filter, not both".to_owned());
        }
        (Some(expression), None) => RuleFilter::Sql {
            expression,
            parameters: Vec::new(),
        },
        (None, Some(c)) => {
            let mut properties = Vec::with_capacity(c.properties.len());
            for (name, value) in c.properties {
                let typed = match value {
                    Json_::String(text) => TypedValue::String(text),
                    Json_::Bool(b) => TypedValue::Boolean(b),
                    Json_::Number(n) => match n.as_i64() {
                        Some(i) => TypedValue::Long(i),
                        None => TypedValue::Double(n.as_f64().unwrap_or(f64::NAN)),
                    },
                    other => {
                        return Err(format!(
                            "correlation property '{name}' must be a string, number or boolean, not {other}"
                        ));
                    }
                };
                properties.push((name, typed));
            }
            RuleFilter::Correlation(CorrelationFilter {
                correlation_id: c.correlation_id,
                message_id: c.message_id,
                to: c.to,
                reply_to: c.reply_to,
                label: c.subject,
                session_id: c.session_id,
                reply_to_session_id: c.reply_to_session_id,
                content_type: c.content_type,
                properties,
            })
        }
        (None, None) => RuleFilter::True,
    };
    let action = match body.sql_action.filter(|a| !a.trim().is_empty()) {
        Some(expression) => RuleAction::Sql {
            expression,
            parameters: Vec::new(),
        },
        None => RuleAction::Empty,
    };
    Ok(Rule { filter, action })
}

/// The answer to a deletion of `path`.
fn deletion(path: String, result: Result<(), ManagementError>) -> Response {
    match result {
        Ok(()) => Json(Changed {
            path,
            change: "deleted",
        })
        .into_response(),
        Err(error) => management_failure(error),
    }
}

async fn delete_queue(
    State(console): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    delete_entity(&console, &headers, name, "queue").await
}

async fn delete_topic(
    State(console): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    delete_entity(&console, &headers, name, "topic").await
}

/// Deletes the queue or topic (`kind`) `name`, which must be one.
async fn delete_entity(
    console: &Shared,
    headers: &HeaderMap,
    name: String,
    kind: &str,
) -> Response {
    if let Err(refusal) = check(console, headers, &name, Access::Write) {
        return refusal.into_response();
    }
    let management = console.management();
    let result = if kind == "queue" && management.queue(&name).is_some() {
        management.delete_queue(&name).await
    } else if kind == "topic" && management.topic(&name).is_some() {
        management.delete_topic(&name).await
    } else {
        Err(ManagementError::NotFound(format!(
            "no {kind} named '{name}'"
        )))
    };
    deletion(name, result)
}

async fn delete_subscription(
    State(console): State<Shared>,
    headers: HeaderMap,
    Path((topic, name)): Path<(String, String)>,
) -> Response {
    let path = format!("{topic}/Subscriptions/{name}");
    if let Err(refusal) = check(&console, &headers, &path, Access::Write) {
        return refusal.into_response();
    }
    let management = console.management();
    let result = management.delete_subscription(&topic, &name).await;
    deletion(path, result)
}

async fn delete_rule(
    State(console): State<Shared>,
    headers: HeaderMap,
    Path((topic, subscription, name)): Path<(String, String, String)>,
) -> Response {
    let owner = format!("{topic}/Subscriptions/{subscription}");
    if let Err(refusal) = check(&console, &headers, &owner, Access::Write) {
        return refusal.into_response();
    }
    let result = console
        .management()
        .delete_rule(&topic, &subscription, &name);
    deletion(format!("{owner}/Rules/{name}"), result)
}
