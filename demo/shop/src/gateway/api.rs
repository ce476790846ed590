//! The public JSON API (issue #11), routed to the services:
//! `/api/auth/*` → authorization (no session needed but for logout, which authorization
//! checks itself); `/api/orders*` → orders; `/api/analytics` and `/api/dead-letters*` →
//! analytics; `/api/mailbox` → email. Every route but the `/api/auth` ones first asks
//! authorization whose session the bearer token is.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};

use super::upstream::{Forward, Service, Upstreams};
use crate::common::error::ApiError;

pub fn router(upstreams: Arc<Upstreams>) -> Router {
    Router::new()
        .route("/api/auth/register", post(open))
        .route("/api/auth/login", post(open))
        .route("/api/auth/recover", post(open))
        .route("/api/auth/reset", post(open))
        .route("/api/auth/logout", post(open))
        .route("/api/orders", any(signed_in))
        .route("/api/orders/{*rest}", any(signed_in))
        .route("/api/analytics", any(signed_in))
        .route("/api/dead-letters", any(signed_in))
        .route("/api/dead-letters/{*rest}", any(signed_in))
        .route("/api/mailbox", any(signed_in))
        .route("/api/{*rest}", any(unknown))
        .with_state(upstreams)
}

/// The service behind a public path, and the path to ask it for.
fn route(uri: &Uri) -> Option<(Service, String)> {
    let path = uri.path();
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    if let Some(rest) = path.strip_prefix("/api/auth") {
        return Some((Service::Auth, format!("{rest}{query}")));
    }
    let rest = path.strip_prefix("/api")?;
    let service = match rest.split('/').nth(1)? {
        "orders" => Service::Orders,
        "analytics" | "dead-letters" => Service::Analytics,
        "mailbox" => Service::Email,
        _ => return None,
    };
    Some((service, format!("{rest}{query}")))
}

/// Register, login, recovery, reset and logout: straight to authorization.
async fn open(
    State(upstreams): State<Arc<Upstreams>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    forward(&upstreams, method, &uri, &headers, None, body).await
}

/// Everything else: only with a valid session, forwarded with the user's address.
async fn signed_in(
    State(upstreams): State<Arc<Upstreams>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match upstreams.signed_in(&headers).await {
        Ok(user) => forward(&upstreams, method, &uri, &headers, Some(&user), body).await,
        Err(refusal) => refusal,
    }
}

async fn forward(
    upstreams: &Upstreams,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    user: Option<&str>,
    body: Bytes,
) -> Response {
    let Some((service, path)) = route(uri) else {
        return not_found(uri);
    };
    let forward = Forward {
        method,
        path: &path,
        // Only authorization reads the token; the others get the user.
        authorization: if service == Service::Auth {
            headers.get(axum::http::header::AUTHORIZATION)
        } else {
            None
        },
        user,
        body,
    };
    upstreams.forward(service, forward).await
}

async fn unknown(uri: Uri) -> Response {
    not_found(&uri)
}

fn not_found(uri: &Uri) -> Response {
    ApiError::not_found(format!("no API at {}", uri.path())).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routed(path: &str) -> Option<(Service, String)> {
        route(&path.parse().ok()?)
    }

    #[test]
    fn public_paths_map_to_the_owning_service() {
        assert_eq!(
            routed("/api/auth/login"),
            Some((Service::Auth, "/login".into()))
        );
        assert_eq!(
            routed("/api/orders"),
            Some((Service::Orders, "/orders".into()))
        );
        assert_eq!(
            routed("/api/orders/42?x=1"),
            Some((Service::Orders, "/orders/42?x=1".into()))
        );
        assert_eq!(
            routed("/api/dead-letters/order-events%2FSubscriptions%2Fall/7/resubmit"),
            Some((
                Service::Analytics,
                "/dead-letters/order-events%2FSubscriptions%2Fall/7/resubmit".into()
            ))
        );
        assert_eq!(
            routed("/api/mailbox"),
            Some((Service::Email, "/mailbox".into()))
        );
        assert_eq!(routed("/api/nothing"), None);
    }
}
