//! AMQP over WebSockets, as Service Bus serves it: `GET /$servicebus/websocket` upgraded
//! with the subprotocol `AMQPWSB10`, binary messages carrying the AMQP bytes. The upgraded
//! socket, seen as a byte stream ([`WebSocketBytes`]), goes to an [`AmqpEndpoint`] (the
//! broker), which serves it like a TCP connection: same limits, same SASL and `$cbs`
//! authorization, so the upgrade itself asks for no token.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub use crate::websocket_stream::WebSocketBytes;

/// Where Service Bus serves AMQP over WebSockets.
pub const AMQP_WEBSOCKET_PATH: &str = "/$servicebus/websocket";
/// The WebSocket subprotocol of AMQP 1.0 (OASIS AMQP WebSocket Binding).
pub const AMQP_WEBSOCKET_PROTOCOL: &str = busbar_websocket::AMQP_SUBPROTOCOL;
/// The largest WebSocket message (and frame) accepted: an AMQP frame of the broker's
/// 1 MiB limit with room for the WebSocket's framing, so one message can't make the
/// broker buffer without bound.
pub const MAX_WEBSOCKET_MESSAGE: usize = 1024 * 1024 + 64 * 1024;

/// Whoever serves the AMQP connections that arrive inside WebSockets.
pub trait AmqpEndpoint: Send + Sync + 'static {
    /// Serves `stream` as an AMQP connection (or hands it to what does); `peer` names the
    /// client in logs.
    fn serve(
        &self,
        stream: WebSocketBytes,
        peer: String,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The route `/$servicebus/websocket`, handing each upgraded socket to `amqp`.
pub fn amqp_websocket_router(amqp: Arc<dyn AmqpEndpoint>) -> Router {
    Router::new()
        .route(AMQP_WEBSOCKET_PATH, get(upgrade))
        .with_state(amqp)
}

async fn upgrade(
    State(amqp): State<Arc<dyn AmqpEndpoint>>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
    request: Request,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            return (
                rejection.status(),
                format!(
                    "{AMQP_WEBSOCKET_PATH} serves AMQP over WebSockets (subprotocol {AMQP_WEBSOCKET_PROTOCOL}): {}",
                    rejection.body_text()
                ),
            )
                .into_response();
        }
    };
    let upgrade = upgrade.protocols([AMQP_WEBSOCKET_PROTOCOL]);
    if upgrade.selected_protocol().is_none() {
        return (
            StatusCode::BAD_REQUEST,
            format!(
                "{AMQP_WEBSOCKET_PATH} speaks only the WebSocket subprotocol {AMQP_WEBSOCKET_PROTOCOL} (AMQP 1.0); ask for it in Sec-WebSocket-Protocol"
            ),
        )
            .into_response();
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| format!("{address} (WebSocket)"))
        .unwrap_or_else(|| "WebSocket".to_owned());
    upgrade
        .max_message_size(MAX_WEBSOCKET_MESSAGE)
        .max_frame_size(MAX_WEBSOCKET_MESSAGE)
        .on_failed_upgrade(|error| tracing::debug!(%error, "WebSocket upgrade failed"))
        .on_upgrade(move |socket| async move {
            amqp.serve(WebSocketBytes::new(socket), peer).await;
        })
}
