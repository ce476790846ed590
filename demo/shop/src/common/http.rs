//! Serving a service's HTTP API: `GET /ready` open to the supervisor, everything else
//! behind the internal-request guard, until Ctrl-C or SIGTERM.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;

use super::guard::{InternalSecret, require_internal};

/// Binds `listen` and serves `api` (guarded) plus `/ready` until `shutdown`.
pub async fn serve(
    listen: SocketAddr,
    secret: InternalSecret,
    api: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = api
        .layer(axum::middleware::from_fn_with_state(
            secret,
            require_internal,
        ))
        .route("/ready", get(|| async { "ready" }));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    tracing::info!(%listen, "serving");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// The environment variable in which `shop up` gives its children its process id.
pub const SUPERVISOR_PID_ENV: &str = "SHOP_SUPERVISOR_PID";

/// Completes when the `shop up` that started this process is gone (killed with SIGKILL, say),
/// so no broker or service outlives it holding its port; never when not started by `up`.
async fn supervisor_gone() {
    #[cfg(unix)]
    if let Some(supervisor) = std::env::var(SUPERVISOR_PID_ENV)
        .ok()
        .and_then(|pid| pid.parse::<u32>().ok())
    {
        loop {
            // Orphans are adopted by another process: the parent changes.
            if std::os::unix::process::parent_id() != supervisor {
                tracing::warn!(supervisor, "shop up is gone; stopping");
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
    std::future::pending::<()>().await;
}

/// Completes on Ctrl-C (SIGINT), SIGTERM, or when the supervising `shop up` is gone.
pub async fn shutdown_signal() {
    tokio::select! {
        _ = busbar_server::stop_signal() => {}
        () = supervisor_gone() => {}
    }
}
