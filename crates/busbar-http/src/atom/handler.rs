//! One administration request, start to end: authorization, routing to the resource, the
//! checks of [`super::validate`], the change through [`Management`], and the Atom answer.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use super::management::{Management, ManagementError, PutMode};
use super::model::{QueueView, RuleView, SubscriptionView, TopicView};
use super::path::{self, Target};
use super::read::{self, Description};
use super::validate;
use super::write::{self, Context, Entry};
use crate::{Access, Admin};

/// Entity descriptions are a few kilobytes; this leaves room for long rule expressions.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// A page holds this many entries when the client doesn't say (the SDKs' own default).
const DEFAULT_PAGE_SIZE: usize = 100;

const ENTRY_CONTENT_TYPE: &str = "application/atom+xml;type=entry;charset=utf-8";
const FEED_CONTENT_TYPE: &str = "application/atom+xml;type=feed;charset=utf-8";
const ERROR_CONTENT_TYPE: &str = "application/xml; charset=utf-8";

/// Characters a name keeps unescaped in the URLs the API writes.
const NAME_IN_URL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'$');

/// What the handler serves from.
#[derive(Clone)]
pub struct AtomState {
    pub admin: Arc<dyn Admin>,
    pub management: Arc<dyn Management>,
}

/// A refusal with the status code and `SubCode` the SDKs map to their exceptions.
#[derive(Debug)]
pub struct AtomError {
    status: StatusCode,
    detail: String,
}

impl AtomError {
    /// The status code Service Bus answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What went wrong, as the service words it.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    fn bad_request(detail: impl std::fmt::Display) -> Self {
        AtomError {
            status: StatusCode::BAD_REQUEST,
            detail: format!("SubCode=40000. {detail}"),
        }
    }

    fn not_found(detail: impl std::fmt::Display) -> Self {
        AtomError {
            status: StatusCode::NOT_FOUND,
            detail: format!("SubCode=40400. Not Found. {detail}"),
        }
    }

    fn unauthorized(detail: impl std::fmt::Display) -> Self {
        AtomError {
            status: StatusCode::UNAUTHORIZED,
            detail: format!("{detail}"),
        }
    }

    fn unavailable(detail: impl std::fmt::Display) -> Self {
        AtomError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            detail: format!("SubCode=50000. {detail}"),
        }
    }
}

impl From<ManagementError> for AtomError {
    fn from(error: ManagementError) -> Self {
        match error {
            ManagementError::NotFound(detail) => AtomError::not_found(detail),
            ManagementError::Conflict(detail) => AtomError {
                status: StatusCode::CONFLICT,
                detail: format!(
                    "SubCode=40900. Conflict. You're requesting an operation that isn't allowed in the resource's current state. {detail}"
                ),
            },
            ManagementError::BadRequest(detail) => AtomError::bad_request(detail),
            ManagementError::QuotaExceeded(detail) => AtomError {
                status: StatusCode::FORBIDDEN,
                detail: format!("SubCode=40300. Quota exceeded. {detail}"),
            },
            ManagementError::Unavailable(detail) => AtomError::unavailable(detail),
        }
    }
}

impl IntoResponse for AtomError {
    fn into_response(self) -> Response {
        let body = write::error(self.status.as_u16(), &self.detail);
        let mut response = xml_response(self.status, ERROR_CONTENT_TYPE, body);
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("SharedAccessSignature"),
            );
        }
        response
    }
}

fn xml_response(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// Whether a request is for the administration API: every SDK request carries
/// `api-version`, which none of the broker's other routes take.
pub fn is_atom_request(query: Option<&str>) -> bool {
    query_pairs(query.unwrap_or("")).any(|(name, _)| name == "api-version")
}

/// The query's parameters, names and values percent-decoded (JS sends `%24top`).
fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        (decode(name), decode(value))
    })
}

/// Serves one administration request.
pub async fn handle(state: AtomState, request: axum::extract::Request) -> Response {
    match serve(state, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

struct Request {
    method: Method,
    target: Target,
    path: String,
    query: String,
    update: bool,
    body: String,
    context: Context,
}

async fn serve(state: AtomState, request: axum::extract::Request) -> Result<Response, AtomError> {
    if let Some(reason) = state.admin.unavailable() {
        return Err(AtomError::unavailable(reason));
    }
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let target = path::parse(&path).map_err(AtomError::bad_request)?;
    authorize(&*state.admin, &parts.headers, &parts.method, &path)?;
    let body = axum::body::to_bytes(Body::new(body), MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            AtomError::bad_request(format!("The request body is over {MAX_BODY_BYTES} bytes."))
        })?;
    let body = String::from_utf8(body.to_vec())
        .map_err(|_| AtomError::bad_request("The request body is not UTF-8."))?;
    let namespace = state.management.namespace();
    let request = Request {
        method: parts.method.clone(),
        target,
        query: parts.uri.query().unwrap_or("").to_owned(),
        update: parts.headers.contains_key(header::IF_MATCH),
        body,
        context: Context {
            host: host(&parts.headers),
            namespace: namespace.name.clone(),
            now_ms: now_ms(),
        },
        path,
    };
    let management = &*state.management;
    match (&request.method, &request.target) {
        (&Method::GET, Target::Namespace) => Ok(entry_response(
            StatusCode::OK,
            &request,
            Entry {
                path: request.path.clone(),
                title: namespace.name.clone(),
                published_ms: namespace.created_at_ms,
                updated_ms: namespace.modified_at_ms,
                content: write::namespace_description(&namespace),
            },
        )),
        (&Method::GET, Target::Queues) => {
            let entries = management
                .queues()
                .iter()
                .map(|q| queue_entry(&request.context, &format!("/{}", in_url(&q.name)), q))
                .collect();
            Ok(feed_response(&request, "Queues", entries))
        }
        (&Method::GET, Target::Topics) => {
            let entries = management
                .topics()
                .iter()
                .map(|t| topic_entry(&format!("/{}", in_url(&t.name)), t))
                .collect();
            Ok(feed_response(&request, "Topics", entries))
        }
        (&Method::GET, Target::Entity(name)) => {
            if let Some(queue) = management.queue(name) {
                return Ok(entry_response(
                    StatusCode::OK,
                    &request,
                    queue_entry(&request.context, &request.path, &queue),
                ));
            }
            Ok(match management.topic(name) {
                Some(topic) => {
                    entry_response(StatusCode::OK, &request, topic_entry(&request.path, &topic))
                }
                None => missing(&request),
            })
        }
        (&Method::GET, Target::Subscriptions { topic }) => {
            let collection = collection_path(&request.path);
            let entries = management
                .subscriptions(topic)?
                .iter()
                .map(|s| {
                    let path = format!("{collection}/{}", in_url(&s.name));
                    subscription_entry(&request.context, &path, s)
                })
                .collect();
            Ok(feed_response(&request, "Subscriptions", entries))
        }
        (&Method::GET, Target::Subscription { topic, name }) => {
            Ok(match management.subscription(topic, name) {
                Some(s) => entry_response(
                    StatusCode::OK,
                    &request,
                    subscription_entry(&request.context, &request.path, &s),
                ),
                None => missing(&request),
            })
        }
        (
            &Method::GET,
            Target::Rules {
                topic,
                subscription,
            },
        ) => {
            let collection = collection_path(&request.path);
            let entries = management
                .rules(topic, subscription)?
                .iter()
                .map(|r| rule_entry(&format!("{collection}/{}", in_url(&r.name)), r))
                .collect();
            Ok(feed_response(&request, "Rules", entries))
        }
        (
            &Method::GET,
            Target::Rule {
                topic,
                subscription,
                name,
            },
        ) => Ok(match management.rule(topic, subscription, name) {
            Some(r) => entry_response(StatusCode::OK, &request, rule_entry(&request.path, &r)),
            None => missing(&request),
        }),
        (&Method::PUT, _) => put(management, &request),
        (&Method::DELETE, Target::Entity(name)) => {
            if management.queue(name).is_some() {
                management.delete_queue(name).await?;
            } else if management.topic(name).is_some() {
                management.delete_topic(name).await?;
            } else {
                return Err(AtomError::not_found(format!(
                    "No service is hosted at the specified address: '{name}'."
                )));
            }
            Ok(deleted())
        }
        (&Method::DELETE, Target::Subscription { topic, name }) => {
            management.delete_subscription(topic, name).await?;
            Ok(deleted())
        }
        (
            &Method::DELETE,
            Target::Rule {
                topic,
                subscription,
                name,
            },
        ) => {
            management.delete_rule(topic, subscription, name)?;
            Ok(deleted())
        }
        (method, _) => Err(AtomError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            detail: format!(
                "SubCode=40500. {method} is not allowed on '{}'.",
                request.path
            ),
        }),
    }
}

fn put(management: &dyn Management, request: &Request) -> Result<Response, AtomError> {
    let description = read::description(&request.body).map_err(AtomError::bad_request)?;
    let mode = if request.update {
        PutMode::Update
    } else {
        PutMode::Create
    };
    let status = match mode {
        PutMode::Create => StatusCode::CREATED,
        PutMode::Update => StatusCode::OK,
    };
    let context = &request.context;
    let entry = match put_checked(
        management,
        &request.target,
        &request.path,
        description,
        mode,
    )? {
        Stored::Queue(queue) => queue_entry(context, &request.path, &queue),
        Stored::Topic(topic) => topic_entry(&request.path, &topic),
        Stored::Subscription(subscription) => {
            subscription_entry(context, &request.path, &subscription)
        }
        Stored::Rule(rule) => rule_entry(&request.path, &rule),
    };
    Ok(entry_response(status, request, entry))
}

/// What a PUT stored, as the broker keeps it now.
#[derive(Debug, Clone)]
pub enum Stored {
    Queue(Box<QueueView>),
    Topic(Box<TopicView>),
    Subscription(Box<SubscriptionView>),
    Rule(Box<RuleView>),
}

/// Creates or updates the entity `target` names with `description`, after the checks the
/// service makes (names, ranges, immutable properties, forwarding targets): the one way
/// entities change over HTTP, whichever document they came in.
pub fn put_checked(
    management: &dyn Management,
    target: &Target,
    path: &str,
    description: Description,
    mode: PutMode,
) -> Result<Stored, AtomError> {
    let wrong_kind = |expected: &str| {
        AtomError::bad_request(format!(
            "A {} can't be put at '{path}': it takes a {expected}.",
            description.kind(),
        ))
    };
    let stored = match (target, description.clone()) {
        (Target::Entity(name), Description::Queue(mut settings)) => {
            validate::entity_name(name).map_err(AtomError::bad_request)?;
            validate::queue(&settings).map_err(AtomError::bad_request)?;
            if mode == PutMode::Update {
                let old = management
                    .queue(name)
                    .ok_or_else(|| missing_for_update(name))?;
                let same = |property: &str, old: bool, new: bool| {
                    validate::unchanged(property, "Queue", old, new).map_err(AtomError::bad_request)
                };
                same(
                    "RequiresSession",
                    old.settings.requires_session,
                    settings.requires_session,
                )?;
                same(
                    "RequiresDuplicateDetection",
                    old.settings.requires_duplicate_detection,
                    settings.requires_duplicate_detection,
                )?;
                same(
                    "EnablePartitioning",
                    old.settings.enable_partitioning,
                    settings.enable_partitioning,
                )?;
            }
            settings.forward_to = forward(management, name, settings.forward_to.as_deref())?;
            settings.forward_dead_lettered_messages_to = forward(
                management,
                name,
                settings.forward_dead_lettered_messages_to.as_deref(),
            )?;
            Stored::Queue(Box::new(management.put_queue(name, settings, mode)?))
        }
        (Target::Entity(name), Description::Topic(settings)) => {
            validate::entity_name(name).map_err(AtomError::bad_request)?;
            validate::topic(&settings).map_err(AtomError::bad_request)?;
            if mode == PutMode::Update {
                let old = management
                    .topic(name)
                    .ok_or_else(|| missing_for_update(name))?;
                validate::unchanged(
                    "RequiresDuplicateDetection",
                    "Topic",
                    old.settings.requires_duplicate_detection,
                    settings.requires_duplicate_detection,
                )
                .and_then(|()| {
                    validate::unchanged(
                        "EnablePartitioning",
                        "Topic",
                        old.settings.enable_partitioning,
                        settings.enable_partitioning,
                    )
                })
                .map_err(AtomError::bad_request)?;
            }
            Stored::Topic(Box::new(management.put_topic(name, settings, mode)?))
        }
        (Target::Entity(_), _) => return Err(wrong_kind("QueueDescription or TopicDescription")),
        (Target::Subscription { topic, name }, Description::Subscription(mut settings)) => {
            validate::child_name("subscription", name).map_err(AtomError::bad_request)?;
            validate::subscription(&settings).map_err(AtomError::bad_request)?;
            if mode == PutMode::Update {
                let old = management
                    .subscription(topic, name)
                    .ok_or_else(|| missing_for_update(&format!("{topic}/Subscriptions/{name}")))?;
                validate::unchanged(
                    "RequiresSession",
                    "Subscription",
                    old.settings.requires_session,
                    settings.requires_session,
                )
                .map_err(AtomError::bad_request)?;
            }
            let own_path = format!("{topic}/Subscriptions/{name}");
            settings.forward_to = forward(management, &own_path, settings.forward_to.as_deref())?;
            settings.forward_dead_lettered_messages_to = forward(
                management,
                &own_path,
                settings.forward_dead_lettered_messages_to.as_deref(),
            )?;
            Stored::Subscription(Box::new(
                management.put_subscription(topic, name, settings, mode)?,
            ))
        }
        (Target::Subscription { .. }, _) => return Err(wrong_kind("SubscriptionDescription")),
        (
            Target::Rule {
                topic,
                subscription,
                name,
            },
            Description::Rule(rule),
        ) => {
            validate::child_name("rule", name).map_err(AtomError::bad_request)?;
            Stored::Rule(Box::new(management.put_rule(
                topic,
                subscription,
                name,
                rule,
                mode,
            )?))
        }
        (Target::Rule { .. }, _) => return Err(wrong_kind("RuleDescription")),
        _ => {
            return Err(AtomError {
                status: StatusCode::METHOD_NOT_ALLOWED,
                detail: format!("SubCode=40500. PUT is not allowed on '{path}'."),
            });
        }
    };
    Ok(stored)
}

fn missing_for_update(name: &str) -> AtomError {
    AtomError::not_found(format!(
        "The Operation doesn't exist: there is no entity '{name}' to update."
    ))
}

/// The entity a forwarding setting names, which must exist and not be the entity itself.
fn forward(
    management: &dyn Management,
    own_path: &str,
    value: Option<&str>,
) -> Result<Option<String>, AtomError> {
    let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    let target = validate::forward_target(value);
    if target.eq_ignore_ascii_case(own_path) {
        return Err(AtomError::bad_request(format!(
            "The entity '{own_path}' can't forward to itself."
        )));
    }
    if let Some(queue) = management.queue(&target) {
        return Ok(Some(queue.name));
    }
    if let Some(topic) = management.topic(&target) {
        return Ok(Some(topic.name));
    }
    Err(AtomError::bad_request(format!(
        "The forwarding destination '{value}' does not exist."
    )))
}

/// Checks the `Authorization` header (a SAS token, maybe after `Bearer `): reads need
/// Listen or Manage, changes Manage. The token's scope is matched against the request path
/// as decoded and, for clients that sign the URL as they sent it, as sent.
fn authorize(
    admin: &dyn Admin,
    headers: &HeaderMap,
    method: &Method,
    path: &str,
) -> Result<(), AtomError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            let trimmed = value.trim();
            trimmed
                .get(..7)
                .filter(|prefix| prefix.eq_ignore_ascii_case("Bearer "))
                .map_or(trimmed, |_| trimmed[7..].trim_start())
        });
    let access = if *method == Method::GET || *method == Method::HEAD {
        Access::Read
    } else {
        Access::Write
    };
    let raw = path.trim_matches('/');
    let decoded = raw
        .split('/')
        .map(|segment| percent_decode_str(segment).decode_utf8_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/");
    admin
        .authorize(token, &decoded, access)
        .or_else(|error| {
            if decoded == raw {
                Err(error)
            } else {
                admin.authorize(token, &raw.to_ascii_lowercase(), access)
            }
        })
        .map_err(AtomError::unauthorized)
}

fn host(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .filter(|host| !host.is_empty())
        .unwrap_or("localhost")
        .to_owned()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn in_url(name: &str) -> String {
    utf8_percent_encode(name, NAME_IN_URL).to_string()
}

/// A collection's path without its trailing slash, as the client spelled it.
fn collection_path(path: &str) -> &str {
    path.trim_end_matches('/')
}

fn queue_entry(context: &Context, path: &str, queue: &super::model::QueueView) -> Entry {
    Entry {
        path: path.to_owned(),
        title: queue.name.clone(),
        published_ms: queue.runtime.created_at_ms,
        updated_ms: queue.runtime.updated_at_ms,
        content: write::queue_description(context, queue),
    }
}

fn topic_entry(path: &str, topic: &super::model::TopicView) -> Entry {
    Entry {
        path: path.to_owned(),
        title: topic.name.clone(),
        published_ms: topic.runtime.created_at_ms,
        updated_ms: topic.runtime.updated_at_ms,
        content: write::topic_description(topic),
    }
}

fn subscription_entry(
    context: &Context,
    path: &str,
    subscription: &super::model::SubscriptionView,
) -> Entry {
    Entry {
        path: path.to_owned(),
        title: subscription.name.clone(),
        published_ms: subscription.runtime.created_at_ms,
        updated_ms: subscription.runtime.updated_at_ms,
        content: write::subscription_description(context, subscription),
    }
}

fn rule_entry(path: &str, rule: &super::model::RuleView) -> Entry {
    Entry {
        path: path.to_owned(),
        title: rule.name.clone(),
        published_ms: rule.created_at_ms,
        updated_ms: rule.created_at_ms,
        content: write::rule_description(rule),
    }
}

fn entry_response(status: StatusCode, request: &Request, entry: Entry) -> Response {
    xml_response(
        status,
        ENTRY_CONTENT_TYPE,
        write::entry_document(&request.context, &entry),
    )
}

/// The page `$skip`/`$top` ask for, with a next link (carrying both, and the client's
/// `api-version`) only when entries remain after it.
fn feed_response(request: &Request, title: &str, entries: Vec<Entry>) -> Response {
    let mut skip = 0usize;
    let mut top = DEFAULT_PAGE_SIZE;
    let mut api_version = String::new();
    for (name, value) in query_pairs(&request.query) {
        match name.as_str() {
            "$skip" => skip = value.parse().unwrap_or(0),
            "$top" => top = value.parse().unwrap_or(DEFAULT_PAGE_SIZE).max(1),
            "api-version" => api_version = value,
            _ => {}
        }
    }
    let total = entries.len();
    let page: Vec<Entry> = entries.into_iter().skip(skip).take(top).collect();
    let next = (skip.saturating_add(top) < total).then(|| {
        format!(
            "{}?$skip={}&$top={top}&api-version={}",
            request.path,
            skip + top,
            utf8_percent_encode(&api_version, NAME_IN_URL)
        )
    });
    let self_path = if request.query.is_empty() {
        request.path.clone()
    } else {
        format!("{}?{}", request.path, request.query)
    };
    xml_response(
        StatusCode::OK,
        FEED_CONTENT_TYPE,
        write::feed(&request.context, title, &self_path, next.as_deref(), &page),
    )
}

/// What the service answers a GET of something that doesn't exist.
fn missing(request: &Request) -> Response {
    xml_response(
        StatusCode::OK,
        FEED_CONTENT_TYPE,
        write::empty_feed(&request.context, &request.path),
    )
}

fn deleted() -> Response {
    xml_response(StatusCode::OK, ERROR_CONTENT_TYPE, String::new())
}
