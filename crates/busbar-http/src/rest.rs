//! Service Bus's REST runtime API, the HTTP side: requests whose path has a `messages`
//! segment, at the same root paths as the entities themselves.
//!
//! - `POST /{queue|topic}/messages`: send one message (or a batch, by its content type) → 201
//! - `POST /{queue}/messages/head?timeout=N`, `/{topic}/subscriptions/{sub}/messages/head`:
//!   peek-lock, waiting up to N seconds → 201 with the message, 204 when none came
//! - `DELETE .../messages/head?timeout=N`: receive and delete → 200, or 204
//! - `PUT .../messages/{messageId|sequenceNumber}/{lockToken}`: unlock → 200
//! - `DELETE` the same: complete → 200; `POST` the same: renew the lock → 200
//!
//! Entity names may hold `/`: the last `messages` segment with a known tail splits the path.
//! This module reads paths, query, headers and body and writes status codes and headers; the
//! broker, through [`Messaging`], judges the token and does the work. Every other request
//! goes on to the router this layer wraps (see [`with_messaging`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

/// The header holding a message's broker properties (JSON).
pub const BROKER_PROPERTIES: &str = "brokerproperties";
/// How long a receive waits when the request names no `timeout`, and at most.
pub const DEFAULT_RECEIVE_WAIT: Duration = Duration::from_secs(60);
pub const MAX_RECEIVE_WAIT: Duration = Duration::from_secs(300);

/// Request headers that are HTTP's own, not custom message properties.
const NOT_PROPERTIES: &[&str] = &[
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "authorization",
    BROKER_PROPERTIES,
    "cache-control",
    "connection",
    "content-encoding",
    "content-length",
    "content-type",
    "cookie",
    "date",
    "expect",
    "host",
    "keep-alive",
    "origin",
    "pragma",
    "referer",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "via",
];
/// Prefixes of infrastructure headers (`x-ms-retrypolicy`, proxies' `x-forwarded-*`, ...).
const NOT_PROPERTY_PREFIXES: &[&str] = &["x-ms-", "x-forwarded-", "proxy-", "sec-"];

/// The right a request needs on its entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    Send,
    Listen,
}

/// A message as a send request carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub body: Bytes,
    /// The request's `Content-Type`; a batch has Service Bus's JSON type.
    pub content_type: Option<String>,
    /// The raw `BrokerProperties` header.
    pub broker_properties: Option<String>,
    /// Every other header that is not HTTP's own: name (lower case) and raw value.
    pub custom_properties: Vec<(String, String)>,
}

/// How a receive takes the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiveMode {
    PeekLock,
    ReceiveAndDelete,
}

/// A received message, ready to be written as a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub body: Bytes,
    pub content_type: Option<String>,
    /// JSON.
    pub broker_properties: String,
    /// Header name and value.
    pub custom_properties: Vec<(String, String)>,
    /// For a locked message: how its URI names it (`{sequenceNumber}/{lockToken}`).
    pub lock_path: Option<String>,
}

/// What to do with a locked message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Give it back, counting a delivery.
    Unlock,
    /// Done: delete it.
    Complete,
    /// Keep it locked for longer.
    RenewLock,
}

/// Why a request failed, in the REST API's status codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// 400
    #[error("{0}")]
    BadRequest(String),
    /// 401
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the entity is full or disabled, or the message too large.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no message holds that lock.
    #[error("{0}")]
    LockNotFound(String),
    /// 410: no such queue, topic or subscription.
    #[error("{0}")]
    EntityNotFound(String),
    /// 503: try again later.
    #[error("{0}")]
    Busy(String),
    /// 500
    #[error("{0}")]
    Internal(String),
}

impl Failure {
    fn status(&self) -> StatusCode {
        match self {
            Failure::BadRequest(_) => StatusCode::BAD_REQUEST,
            Failure::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Failure::Forbidden(_) => StatusCode::FORBIDDEN,
            Failure::LockNotFound(_) => StatusCode::NOT_FOUND,
            Failure::EntityNotFound(_) => StatusCode::GONE,
            Failure::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Failure::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for Failure {
    /// Service Bus's error body: `<Error><Code>…</Code><Detail>…</Detail></Error>`.
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = xml_escape(&self.to_string());
        let body = format!(
            "<Error><Code>{}</Code><Detail>{detail}</Detail></Error>",
            status.as_u16()
        );
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
            body,
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("SharedAccessSignature"),
            );
        }
        response
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A future answered by the broker.
pub type Reply<T> = Pin<Box<dyn Future<Output = Result<T, Failure>> + Send>>;

/// What the REST runtime API asks of the broker. `entity` is the path as the request named
/// it (`orders`, `a/b`, `events/subscriptions/audit`), percent-decoded.
pub trait Messaging: Send + Sync + 'static {
    /// Whether a request with this `Authorization` header value may use `right` on
    /// `entity`. The error is said to the client.
    fn authorize(
        &self,
        authorization: Option<&str>,
        entity: &str,
        right: Right,
    ) -> Result<(), String>;
    /// The largest request body taken (the broker's maximum message size).
    fn max_body_bytes(&self) -> usize;
    /// Stores the message (or the batch); answers once it is durable.
    fn send(&self, entity: &str, message: Outgoing) -> Reply<()>;
    /// The next message, waiting up to `wait` for one; `None` when none came.
    fn receive(&self, entity: &str, mode: ReceiveMode, wait: Duration) -> Reply<Option<Received>>;
    /// Settles the message locked by `lock_token`; a renewal answers the message's new
    /// broker properties (JSON).
    fn settle(
        &self,
        entity: &str,
        message: &str,
        lock_token: &str,
        settle: Settle,
    ) -> Reply<Option<String>>;
}

/// `router` with the REST runtime API in front of it: requests it recognises are served
/// over `messaging`, the rest go on to `router`.
pub fn with_messaging(router: Router, messaging: Arc<dyn Messaging>) -> Router {
    router.layer(axum::middleware::from_fn_with_state(messaging, dispatch))
}

/// A request of the REST runtime API.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Operation {
    Send,
    Receive(ReceiveMode),
    Settle {
        message: String,
        lock_token: String,
        settle: Settle,
    },
}

/// The entity and operation `method` and `path` name, if this API serves them.
fn recognise(method: &Method, path: &str) -> Option<(String, Operation)> {
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(|raw| percent_decode_str(raw).decode_utf8_lossy().into_owned())
        .collect();
    let candidates = segments
        .iter()
        .enumerate()
        .rev()
        .filter(|(at, segment)| *at > 0 && segment.eq_ignore_ascii_case("messages"));
    for (at, _) in candidates {
        let entity = &segments[..at];
        if entity.iter().any(String::is_empty) {
            continue;
        }
        let operation = match (&segments[at + 1..], method) {
            ([], &Method::POST) => Operation::Send,
            ([head], &Method::POST) if head.eq_ignore_ascii_case("head") => {
                Operation::Receive(ReceiveMode::PeekLock)
            }
            ([head], &Method::DELETE) if head.eq_ignore_ascii_case("head") => {
                Operation::Receive(ReceiveMode::ReceiveAndDelete)
            }
            ([message, lock_token], method) if !message.is_empty() && !lock_token.is_empty() => {
                let settle = match *method {
                    Method::PUT => Settle::Unlock,
                    Method::DELETE => Settle::Complete,
                    Method::POST => Settle::RenewLock,
                    _ => continue,
                };
                Operation::Settle {
                    message: message.clone(),
                    lock_token: lock_token.clone(),
                    settle,
                }
            }
            _ => continue,
        };
        return Some((entity.join("/"), operation));
    }
    None
}

async fn dispatch(
    State(messaging): State<Arc<dyn Messaging>>,
    request: Request,
    next: Next,
) -> Response {
    let Some((entity, operation)) = recognise(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    match serve(&*messaging, &entity, operation, request).await {
        Ok(response) => response,
        Err(failure) => {
            tracing::debug!(%entity, %failure, "REST request refused");
            failure.into_response()
        }
    }
}

async fn serve(
    messaging: &dyn Messaging,
    entity: &str,
    operation: Operation,
    request: Request,
) -> Result<Response, Failure> {
    let right = match operation {
        Operation::Send => Right::Send,
        _ => Right::Listen,
    };
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    messaging
        .authorize(authorization, entity, right)
        .map_err(Failure::Unauthorized)?;
    match operation {
        Operation::Send => {
            let message = outgoing(messaging.max_body_bytes(), request).await?;
            messaging.send(entity, message).await?;
            Ok(StatusCode::CREATED.into_response())
        }
        Operation::Receive(mode) => {
            let wait = receive_wait(request.uri().query())?;
            let over_tls = request.extensions().get::<crate::OverTls>().is_some();
            let location_base = location_base(request.headers(), request.uri().path(), over_tls);
            let received = messaging.receive(entity, mode, wait).await?;
            Ok(match received {
                None => StatusCode::NO_CONTENT.into_response(),
                Some(message) => {
                    let status = match mode {
                        ReceiveMode::PeekLock => StatusCode::CREATED,
                        ReceiveMode::ReceiveAndDelete => StatusCode::OK,
                    };
                    received_response(status, message, location_base.as_deref())
                }
            })
        }
        Operation::Settle {
            message,
            lock_token,
            settle,
        } => {
            let renewed = messaging
                .settle(entity, &message, &lock_token, settle)
                .await?;
            let mut response = StatusCode::OK.into_response();
            if let Some(properties) = renewed
                && let Ok(value) = HeaderValue::from_str(&properties)
            {
                response
                    .headers_mut()
                    .insert(HeaderName::from_static(BROKER_PROPERTIES), value);
            }
            Ok(response)
        }
    }
}

/// The message a send request carries; a body over `max_body_bytes` is refused with 403,
/// as Service Bus refuses a message too large.
async fn outgoing(max_body_bytes: usize, request: Request) -> Result<Outgoing, Failure> {
    let (parts, body) = request.into_parts();
    let text = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let declared = text(header::CONTENT_LENGTH.as_str()).and_then(|n| n.parse::<usize>().ok());
    let too_large = || {
        Failure::Forbidden(format!(
            "The message is larger than the {max_body_bytes} bytes a message may have."
        ))
    };
    if declared.is_some_and(|n| n > max_body_bytes) {
        return Err(too_large());
    }
    let body = axum::body::to_bytes(body, max_body_bytes)
        .await
        .map_err(|_| too_large())?;
    let custom_properties = parts
        .headers
        .iter()
        .filter(|(name, _)| is_custom_property(name.as_str()))
        .filter_map(|(name, value)| {
            let value = String::from_utf8(value.as_bytes().to_vec()).ok()?;
            Some((name.as_str().to_owned(), value))
        })
        .collect();
    Ok(Outgoing {
        body,
        content_type: text(header::CONTENT_TYPE.as_str()),
        broker_properties: text(BROKER_PROPERTIES),
        custom_properties,
    })
}

fn is_custom_property(name: &str) -> bool {
    !NOT_PROPERTIES.contains(&name)
        && !NOT_PROPERTY_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
}

/// The `timeout` query parameter (seconds), bounded by [`MAX_RECEIVE_WAIT`].
fn receive_wait(query: Option<&str>) -> Result<Duration, Failure> {
    let value = query
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| name.eq_ignore_ascii_case("timeout"))
        .map(|(_, value)| value);
    let Some(value) = value else {
        return Ok(DEFAULT_RECEIVE_WAIT);
    };
    let secs: u64 = value.trim().parse().map_err(|_| {
        Failure::BadRequest(format!(
            "The timeout '{value}' is not a whole number of seconds."
        ))
    })?;
    Ok(Duration::from_secs(secs).min(MAX_RECEIVE_WAIT))
}

/// The URI of the entity's `messages` collection as the client reached it, from its
/// `Host` and the request path (`…/messages/head`); https when the request came over TLS,
/// or a TLS front marked it with `X-Forwarded-Proto: https`.
fn location_base(headers: &HeaderMap, path: &str, over_tls: bool) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
    {
        _ if over_tls => "https",
        Some(proto) if proto.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    let collection = path.get(..path.len().checked_sub("/head".len())?)?;
    Some(format!("{scheme}://{host}{collection}"))
}

/// Characters escaped in a `Location` path segment.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'?');

fn received_response(
    status: StatusCode,
    message: Received,
    location_base: Option<&str>,
) -> Response {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&message.broker_properties) {
        headers.insert(HeaderName::from_static(BROKER_PROPERTIES), value);
    }
    if let Some(value) = message
        .content_type
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
    {
        headers.insert(header::CONTENT_TYPE, value);
    }
    if let (Some(base), Some(lock_path)) = (location_base, &message.lock_path) {
        let encoded: Vec<String> = lock_path
            .split('/')
            .map(|segment| utf8_percent_encode(segment, SEGMENT).to_string())
            .collect();
        if let Ok(value) = HeaderValue::from_str(&format!("{base}/{}", encoded.join("/"))) {
            headers.insert(header::LOCATION, value);
        }
    }
    for (name, value) in &message.custom_properties {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) else {
            continue;
        };
        // A property can't stand in for the headers this response sets itself.
        if is_custom_property(name.as_str()) && name != header::LOCATION {
            headers.append(name, value);
        }
    }
    (status, headers, Body::from(message.body)).into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn settle(message: &str, token: &str, settle: Settle) -> Operation {
        Operation::Settle {
            message: message.to_owned(),
            lock_token: token.to_owned(),
            settle,
        }
    }

    #[test]
    fn paths_with_a_messages_segment_name_the_entity_before_it() {
        let cases = [
            (Method::POST, "/orders/messages", "orders", Operation::Send),
            (Method::POST, "/a/b/messages", "a/b", Operation::Send),
            (
                Method::POST,
                "/orders/messages/head",
                "orders",
                Operation::Receive(ReceiveMode::PeekLock),
            ),
            (
                Method::DELETE,
                "/t/subscriptions/s/messages/head",
                "t/subscriptions/s",
                Operation::Receive(ReceiveMode::ReceiveAndDelete),
            ),
            (
                Method::PUT,
                "/q%20x/messages/7/abc",
                "q x",
                settle("7", "abc", Settle::Unlock),
            ),
            (
                Method::DELETE,
                "/q/messages/id/tok",
                "q",
                settle("id", "tok", Settle::Complete),
            ),
            (
                Method::POST,
                "/q/messages/id/tok",
                "q",
                settle("id", "tok", Settle::RenewLock),
            ),
            (
                Method::POST,
                "/messages/messages",
                "messages",
                Operation::Send,
            ),
        ];
        for (method, path, entity, operation) in cases {
            assert_eq!(
                recognise(&method, path),
                Some((entity.to_owned(), operation)),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn other_requests_are_left_to_the_router_behind() {
        for (method, path) in [
            (Method::GET, "/orders/messages/head"),
            (Method::PUT, "/orders"),
            (Method::GET, "/api/queues/messages"),
            (Method::POST, "/messages"),
            (Method::PUT, "/orders/messages/head"),
            (Method::POST, "/orders/messages/a/b/c"),
            (Method::GET, "/health"),
        ] {
            assert_eq!(recognise(&method, path), None, "{method} {path}");
        }
    }

    #[test]
    fn the_timeout_is_whole_seconds_and_bounded() {
        assert_eq!(receive_wait(None).unwrap(), DEFAULT_RECEIVE_WAIT);
        assert_eq!(
            receive_wait(Some("api-version=1&timeout=5")).unwrap(),
            Duration::from_secs(5)
        );
        assert_eq!(
            receive_wait(Some("timeout=100000")).unwrap(),
            MAX_RECEIVE_WAIT
        );
        assert!(matches!(
            receive_wait(Some("timeout=soon")),
            Err(Failure::BadRequest(_))
        ));
    }

    #[test]
    fn infrastructure_headers_are_not_custom_properties() {
        for name in [
            "authorization",
            "brokerproperties",
            "x-ms-retrypolicy",
            "host",
        ] {
            assert!(!is_custom_property(name), "{name}");
        }
        assert!(is_custom_property("priority"));
    }
}
