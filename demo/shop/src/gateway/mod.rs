//! The gateway: the only service open to the public. It serves the pages and the public JSON
//! API, checks the session token with the authorization service on every request but
//! register, login, recovery and reset, and forwards to the service that owns the data with
//! the internal secret (`x-shop-internal`) and the signed-in user (`x-shop-user`) — the
//! article's "other microservices accept requests only from the gateway".

mod api;
mod pages;
mod upstream;

use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::routing::get;

use crate::common::config::ServiceArgs;
use crate::common::http::shutdown_signal;

pub use upstream::Upstreams;

pub async fn run(args: ServiceArgs) -> anyhow::Result<()> {
    let upstreams = Arc::new(Upstreams::new(&args)?);
    let app = Router::new()
        .merge(api::router(upstreams))
        .merge(pages::router())
        .route("/ready", get(|| async { "ready" }));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(listen = %args.listen, "gateway serving");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}
