//! The broker's HTTP side: `GET /health`, the queue API (`GET /api/queues`,
//! `GET /api/queues/{name}`) with each queue's exact message counts, and the topic API
//! (`GET /api/topics`, `GET /api/topics/{name}`) with each subscription's counts and rules.
//!
//! It only reports on and (later) administers the broker through state handed to it; it must
//! not touch the AMQP listener or the store directly.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use serde::Serialize;
use tokio::net::TcpListener;

/// Whether the broker is ready to serve clients. Cheap to clone; all clones share one flag.
#[derive(Debug, Clone, Default)]
pub struct HealthState {
    ready: Arc<AtomicBool>,
}

impl HealthState {
    /// A new flag, not ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the broker ready (after start-up and recovery) or not (while shutting down).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

#[derive(Debug, Serialize)]
struct HealthBody {
    status: &'static str,
}

/// The HTTP routes: `GET /health` answers 200 `{"status":"ready"}` when ready and 503
/// `{"status":"unavailable"}` otherwise, as Microsoft's emulator's health probe does.
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

/// What the queue and topic APIs read from the broker.
pub trait Admin: Send + Sync + 'static {
    /// Every queue (subscriptions are listed with their topics), sorted by name.
    fn queues(&self) -> Vec<QueueInfo>;
    /// One queue, looked up case-insensitively.
    fn queue(&self, name: &str) -> Option<QueueInfo>;
    /// Every topic, sorted by name.
    fn topics(&self) -> Vec<TopicInfo>;
    /// One topic, looked up case-insensitively.
    fn topic(&self, name: &str) -> Option<TopicInfo>;
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
        .with_state(admin);
    router(state).merge(api)
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

async fn health(State(state): State<HealthState>) -> impl IntoResponse {
    if state.is_ready() {
        (StatusCode::OK, Json(HealthBody { status: "ready" }))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(HealthBody {
                status: "unavailable",
            }),
        )
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and lets
/// in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "HTTP listener started");
    }
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
