//! The broker's HTTP side: `GET /health`, the queue API (`GET /api/queues`,
//! `GET /api/queues/{name}`) with each queue's exact message counts, and the topic API
//! (`GET /api/topics`, `GET /api/topics/{name}`) with each subscription's counts and rules,
//! and Prometheus metrics (`GET /metrics`, [`metrics`]: per entity, namespace and store).
//!
//! Everything but `/health` needs a SAS token in the `Authorization` header, which the
//! broker judges through [`Admin::authorize`] (reads need Listen, changes Manage).
//!
//! `/$servicebus/websocket` upgrades to AMQP over WebSockets and hands the connection to
//! the broker ([`amqp_websocket`]; the socket seen as a byte stream by busbar-websocket,
//! `websocket_stream`).
//!
//! The web console's pages are served at `/` ([`console`]); they read and act through
//! the same authorized APIs.
//!
//! The Service Bus administration API (Atom/XML, for `ServiceBusAdministrationClient`) is
//! in [`atom`]; it answers every request that carries `api-version`.
//!
//! It only reports on and administers the broker through state handed to it; it must not
//! touch the AMQP listener or the store directly.

mod amqp_websocket;
pub mod atom;
pub mod console;
pub mod console_api;
pub mod metrics;
mod websocket_stream;

pub use amqp_websocket::{
    AMQP_WEBSOCKET_PATH, AMQP_WEBSOCKET_PROTOCOL, AmqpEndpoint, MAX_WEBSOCKET_MESSAGE,
    WebSocketBytes, amqp_websocket_router,
};
pub use websocket_stream::AxumMessages;
pub mod rest;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use serde::Serialize;
use tokio::net::TcpListener;

/// Reports why the broker cannot do its work right now (for example, the store is out of
/// disk space), or `None` when it can.
pub type HealthCheck = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// Whether the broker is ready to serve clients. Cheap to clone; all clones share one flag
/// and one check.
#[derive(Clone, Default)]
pub struct HealthState {
    ready: Arc<AtomicBool>,
    check: Option<HealthCheck>,
}

impl std::fmt::Debug for HealthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthState")
            .field("ready", &self.is_ready())
            .field("check", &self.check.is_some())
            .finish()
    }
}

impl HealthState {
    /// A new flag, not ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also asks `check` on every probe; a reason it gives makes the broker unavailable.
    pub fn with_check(mut self, check: HealthCheck) -> Self {
        self.check = Some(check);
        self
    }

    /// Marks the broker ready (after start-up and recovery) or not (while shutting down).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// `Ok` when ready and the check finds nothing; otherwise the reason, if one is known.
    fn problem(&self) -> Result<(), Option<String>> {
        if !self.is_ready() {
            return Err(None);
        }
        match self.check.as_ref().and_then(|check| check()) {
            Some(reason) => Err(Some(reason)),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Serialize)]
struct HealthBody {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// The HTTP routes: `GET /health` answers 200 `{"status":"ready"}` when ready and 503
/// `{"status":"unavailable"}` otherwise, as Microsoft's emulator's health probe does, with
/// a `reason` when the health check gave one.
pub fn router(state: HealthState) -> Router {
    Router::new()
        .route("/health", get(health))
        .with_state(state)
}

/// A queue as the API reports it. Counts are kept exactly by the broker, not recounted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueInfo {
    pub name: String,
    /// Active messages (including locked ones).
    pub active_message_count: u64,
    pub scheduled_message_count: u64,
    pub deferred_message_count: u64,
    pub locked_message_count: u64,
    pub dead_letter_message_count: u64,
    pub transfer_message_count: u64,
    pub transfer_dead_letter_message_count: u64,
    /// Everything stored for the queue: active, scheduled, deferred and dead-lettered.
    pub total_message_count: u64,
    pub lock_duration_ms: i64,
    pub max_delivery_count: u32,
    pub default_message_time_to_live_ms: Option<i64>,
    pub dead_lettering_on_message_expiration: bool,
    pub requires_duplicate_detection: bool,
    pub requires_session: bool,
    pub forward_to: Option<String>,
    pub forward_dead_lettered_messages_to: Option<String>,
    /// Messages stored in the queue since the broker started (duplicates dropped at the
    /// door are not counted).
    pub enqueued_total: u64,
    /// Deliveries to receiver links since the broker started (redeliveries count again).
    pub delivered_total: u64,
}

/// A subscription: its queue (named by its path, `<topic>/Subscriptions/<name>`) and the
/// names of its rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionInfo {
    pub subscription_name: String,
    pub rules: Vec<String>,
    #[serde(flatten)]
    pub queue: QueueInfo,
}

/// A topic with its subscriptions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicInfo {
    pub name: String,
    /// Messages scheduled on the topic itself, not yet published to its subscriptions.
    pub scheduled_message_count: u64,
    pub default_message_time_to_live_ms: Option<i64>,
    pub requires_duplicate_detection: bool,
    pub subscriptions: Vec<SubscriptionInfo>,
}

/// What a request to the HTTP API asks to do, for [`Admin::authorize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// What the queue and topic APIs read from the broker.
pub trait Admin: Send + Sync + 'static {
    /// Whether a request with this `Authorization` header value may have `access` to the
    /// entity at `path` (`""`: the whole namespace). The error is said to the client.
    fn authorize(
        &self,
        authorization: Option<&str>,
        path: &str,
        access: Access,
    ) -> Result<(), String>;
    /// Every queue (subscriptions are listed with their topics), sorted by name.
    fn queues(&self) -> Vec<QueueInfo>;
    /// One queue, looked up case-insensitively.
    fn queue(&self, name: &str) -> Option<QueueInfo>;
    /// Every topic, sorted by name.
    fn topics(&self) -> Vec<TopicInfo>;
    /// One topic, looked up case-insensitively.
    fn topic(&self, name: &str) -> Option<TopicInfo>;
    /// What `GET /metrics` reports; nothing by default.
    fn metrics(&self) -> metrics::Metrics {
        metrics::Metrics::default()
    }
    /// Why the API can't answer right now (the broker is reopening its store), if so:
    /// requests then get 503 with this reason.
    fn unavailable(&self) -> Option<String> {
        None
    }
}

#[derive(Debug, Serialize)]
struct ErrorBody {
    error: String,
}

/// [`router`] plus the queue API over `admin`.
pub fn router_with_admin(state: HealthState, admin: Arc<dyn Admin>) -> Router {
    let api = Router::new()
        .route("/api/queues", get(list_queues))
        .route("/api/queues/{name}", get(get_queue))
        .route("/api/topics", get(list_topics))
        .route("/api/topics/{name}", get(get_topic))
        .route("/metrics", get(get_metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&admin),
            require_token,
        ))
        .with_state(admin);
    router(state).merge(api).merge(console::router())
}

/// [`router_with_admin`] plus the administration (Atom) API over `management`; see [`atom`].
pub fn router_with_management(
    state: HealthState,
    admin: Arc<dyn Admin>,
    management: Arc<dyn atom::Management>,
) -> Router {
    atom::with_management(
        router_with_admin(state, Arc::clone(&admin)),
        admin,
        management,
    )
}

/// Refuses, with 401 and the reason, a request whose `Authorization` header does not grant
/// what it asks: reads of one entity need a token covering it, listings and metrics a token
/// for the namespace.
async fn require_token(
    State(admin): State<Arc<dyn Admin>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if let Some(error) = admin.unavailable() {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(ErrorBody { error })).into_response();
    }
    let uri_path = request.uri().path();
    // Judged on the name the handler will look up, not on its encoded form.
    let entity = ["/api/queues/", "/api/topics/"]
        .iter()
        .find_map(|prefix| uri_path.strip_prefix(prefix))
        .map(|raw| {
            percent_encoding::percent_decode_str(raw)
                .decode_utf8_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    let access = if request.method().is_safe() {
        Access::Read
    } else {
        Access::Write
    };
    let authorization = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    match admin.authorize(authorization, &entity, access) {
        Ok(()) => next.run(request).await,
        Err(error) => (
            StatusCode::UNAUTHORIZED,
            [(
                axum::http::header::WWW_AUTHENTICATE,
                "SharedAccessSignature",
            )],
            Json(ErrorBody { error }),
        )
            .into_response(),
    }
}

async fn list_queues(State(admin): State<Arc<dyn Admin>>) -> Json<Vec<QueueInfo>> {
    Json(admin.queues())
}

async fn get_queue(
    State(admin): State<Arc<dyn Admin>>,
    Path(name): Path<String>,
) -> axum::response::Response {
    found_or_404(admin.queue(&name), "queue", &name)
}

async fn list_topics(State(admin): State<Arc<dyn Admin>>) -> Json<Vec<TopicInfo>> {
    Json(admin.topics())
}

async fn get_topic(
    State(admin): State<Arc<dyn Admin>>,
    Path(name): Path<String>,
) -> axum::response::Response {
    found_or_404(admin.topic(&name), "topic", &name)
}

fn found_or_404<T: Serialize>(
    found: Option<T>,
    kind: &str,
    name: &str,
) -> axum::response::Response {
    match found {
        Some(info) => Json(info).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(ErrorBody {
                error: format!("no {kind} named '{name}'"),
            }),
        )
            .into_response(),
    }
}

async fn get_metrics(State(admin): State<Arc<dyn Admin>>) -> axum::response::Response {
    match metrics::render(admin.metrics()) {
        Ok(text) => (
            [(axum::http::header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
            text,
        )
            .into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(ErrorBody {
                error: "the metrics could not be encoded".to_owned(),
            }),
        )
            .into_response(),
    }
}

async fn health(State(state): State<HealthState>) -> impl IntoResponse {
    match state.problem() {
        Ok(()) => (
            StatusCode::OK,
            Json(HealthBody {
                status: "ready",
                reason: None,
            }),
        ),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(HealthBody {
                status: "unavailable",
                reason,
            }),
        ),
    }
}

/// How long a client has to send a request's headers, the first one or the next on a kept
/// connection: past it the connection is closed, so an idle one does not stay forever.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves HTTP/1.1 on one connection from `peer`, whatever carries it (TCP, TLS), until the
/// client is done or `stop` completes; then the request in flight finishes and the
/// connection closes. Upgrades (WebSockets) are enabled, so an upgraded connection lives on
/// past this call's HTTP part; handlers learn `peer` from `ConnectInfo<SocketAddr>`.
pub async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    router: Router,
    stop: impl Future<Output = ()>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let router = router.layer(axum::Extension(axum::extract::ConnectInfo(peer)));
    let service = hyper_util::service::TowerToHyperService::new(router);
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::pin!(stop);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        () = stop.as_mut() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = served {
        tracing::debug!(%error, "HTTP connection ended with an error");
    }
}

/// Marks the requests of a connection that came over TLS (a request extension the server
/// adds), so that URIs the API hands back say `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverTls;

/// `router` for a connection that came over TLS: its requests carry [`OverTls`].
pub fn over_tls(router: Router) -> Router {
    router.layer(axum::Extension(OverTls))
}

/// A router that answers every request with 403 and `message` as plain text, for
/// connections the broker refuses to serve (plain HTTP where only HTTPS is allowed).
pub fn refusal_router(message: String) -> Router {
    Router::new().fallback(move || {
        let message = message.clone();
        async move {
            (
                StatusCode::FORBIDDEN,
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; charset=utf-8",
                )],
                message,
            )
        }
    })
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and lets
/// in-flight requests finish. Connections may upgrade (WebSockets); handlers learn the
/// client's address from `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "HTTP listener started");
    }
    // Without Nagle's delay: an upgraded connection carries AMQP, whose small frames
    // (dispositions, flows) must go out at once.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
