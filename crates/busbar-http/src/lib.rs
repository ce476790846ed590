//! The broker's HTTP side: `GET /health` today, the admin API and metrics later.
//!
//! It only reports on and (later) administers the broker through state handed to it; it must
//! not touch the AMQP listener or the store directly.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
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
