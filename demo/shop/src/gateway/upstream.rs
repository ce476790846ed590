//! The services behind the gateway and the forwarding of one request to one of them.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::common::config::ServiceArgs;
use crate::common::error::ApiError;
use crate::common::guard::{INTERNAL_HEADER, USER_HEADER};

/// How long a service may take to answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// A service the gateway forwards to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Auth,
    Orders,
    Analytics,
    Email,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::Auth => "auth",
            Service::Orders => "orders",
            Service::Analytics => "analytics",
            Service::Email => "email",
        }
    }
}

/// The services' base URLs, the internal secret, and one HTTP client for all.
pub struct Upstreams {
    http: reqwest::Client,
    secret: String,
    auth: String,
    orders: String,
    analytics: String,
    email: String,
}

/// What to forward: the method, the service's path (with query), the caller's bearer
/// token or identity, and the body.
pub struct Forward<'a> {
    pub method: Method,
    pub path: &'a str,
    pub authorization: Option<&'a HeaderValue>,
    pub user: Option<&'a str>,
    pub body: Bytes,
}

impl Upstreams {
    pub fn new(args: &ServiceArgs) -> anyhow::Result<Self> {
        Ok(Upstreams {
            http: reqwest::Client::builder()
                .timeout(UPSTREAM_TIMEOUT)
                .build()?,
            secret: args.internal_secret.clone(),
            auth: args.peer(Service::Auth.name())?,
            orders: args.peer(Service::Orders.name())?,
            analytics: args.peer(Service::Analytics.name())?,
            email: args.peer(Service::Email.name())?,
        })
    }

    fn base(&self, service: Service) -> &str {
        match service {
            Service::Auth => &self.auth,
            Service::Orders => &self.orders,
            Service::Analytics => &self.analytics,
            Service::Email => &self.email,
        }
    }

    /// Sends the request and answers with the service's status and JSON body.
    pub async fn forward(&self, service: Service, request: Forward<'_>) -> Response {
        match self.send(service, request).await {
            Ok(response) => response,
            Err(error) => error.into_response(),
        }
    }

    async fn send(&self, service: Service, request: Forward<'_>) -> Result<Response, ApiError> {
        let url = format!("{}{}", self.base(service), request.path);
        let mut outgoing = self
            .http
            .request(request.method, &url)
            .header(INTERNAL_HEADER, &self.secret);
        if let Some(authorization) = request.authorization {
            outgoing = outgoing.header(header::AUTHORIZATION, authorization);
        }
        if let Some(user) = request.user {
            outgoing = outgoing.header(USER_HEADER, user);
        }
        if !request.body.is_empty() {
            outgoing = outgoing
                .header(header::CONTENT_TYPE, "application/json")
                .body(request.body);
        }
        let unavailable = |error: reqwest::Error| {
            tracing::warn!(service = service.name(), %error, "upstream");
            ApiError::unavailable(format!("the {} service is unavailable", service.name()))
        };
        let answer = outgoing.send().await.map_err(unavailable)?;
        let status = answer.status();
        let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
        let body = answer.bytes().await.map_err(unavailable)?;
        Ok(relay(status, content_type, body))
    }

    /// The account of the session `authorization` names, asked of the authorization
    /// service; its refusal (401) or failure is the caller's answer.
    pub async fn signed_in(&self, headers: &HeaderMap) -> Result<String, Response> {
        let Some(authorization) = headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::unauthorized(
                "sign in first: no session token (Authorization: Bearer)",
            )
            .into_response());
        };
        let session = self
            .send(
                Service::Auth,
                Forward {
                    method: Method::GET,
                    path: "/session",
                    authorization: Some(authorization),
                    user: None,
                    body: Bytes::new(),
                },
            )
            .await
            .map_err(IntoResponse::into_response)?;
        if !session.status().is_success() {
            return Err(session);
        }
        let body = axum::body::to_bytes(session.into_body(), 64 * 1024)
            .await
            .map_err(|_| {
                ApiError::unavailable("the auth service's answer was cut").into_response()
            })?;
        serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|session| session.get("email")?.as_str().map(str::to_owned))
            .ok_or_else(|| {
                ApiError::unavailable("the auth service answered without an email").into_response()
            })
    }
}

/// The service's answer as the public gets it: JSON passes through; an error that is not
/// `{error}` JSON (a framework's plain-text rejection) is wrapped as one, with bad input
/// reported as 400.
fn relay(status: StatusCode, content_type: Option<HeaderValue>, body: Bytes) -> Response {
    let is_json = content_type
        .as_ref()
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if body.is_empty() && status.is_success() {
        return status.into_response();
    }
    if status.is_success() || is_json {
        let mut response = (status, body).into_response();
        if let Some(content_type) = content_type {
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, content_type);
        }
        return response;
    }
    let status = match status {
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            StatusCode::BAD_REQUEST
        }
        other => other,
    };
    let text = String::from_utf8_lossy(&body);
    let message = if text.trim().is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned()
    } else {
        text.trim().to_owned()
    };
    ApiError::new(status, message).into_response()
}
