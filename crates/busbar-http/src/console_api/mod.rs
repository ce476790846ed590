//! The web console's JSON API (`/api/console/*`): tokens for the page, paged message
//! browsing, the repair actions (send, resubmit, delete, purge, cancel scheduled) and the
//! rule tester, over a [`Console`] the broker implements; entities and rules are created,
//! changed and deleted through the administration API's lifecycle (`entities.rs`). The
//! shapes are in [`model`].
//!
//! Every call but the token requests carries `Authorization: SharedAccessSignature ...`,
//! judged by [`Console::authorize`] on the entity it names: reads need Listen, changes
//! Manage; otherwise 401 `{error}`. Errors are `{error}` with 400, 401, 404, 409 or 503.

mod entities;
pub mod model;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::Serialize;

use crate::Access;
pub use model::*;

/// Why the broker refused a console request; each maps to its status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsoleError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// The state changed under the request (a message locked, no longer there).
    #[error("{0}")]
    Conflict(String),
    /// The broker can't do it right now (store reopening, disk full).
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl ConsoleError {
    fn status(&self) -> StatusCode {
        match self {
            ConsoleError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ConsoleError::NotFound(_) => StatusCode::NOT_FOUND,
            ConsoleError::Conflict(_) => StatusCode::CONFLICT,
            ConsoleError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ConsoleError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A change the broker answers once it is durable.
pub type Pending<T> = Pin<Box<dyn Future<Output = Result<T, ConsoleError>> + Send + 'static>>;

/// What the console reads from and does to the broker. Entity paths are a queue's name or
/// `<topic>/Subscriptions/<name>`, looked up case-insensitively.
pub trait Console: Send + Sync + 'static {
    /// Whether a request with this `Authorization` header value may have `access` to the
    /// entity at `path` (`""`: the namespace). The error is said to the client.
    fn authorize(
        &self,
        authorization: Option<&str>,
        path: &str,
        access: Access,
    ) -> Result<(), String>;
    /// Why the console can't answer right now (the broker is reopening its store), if so:
    /// requests then get 503 with this reason.
    fn unavailable(&self) -> Option<String> {
        None
    }
    /// A namespace token signed with `key` when it is the key of the policy `key_name`.
    fn mint_token(&self, key_name: &str, key: &str) -> Result<Token, String>;
    /// A namespace token when the broker runs on the development key; `None` otherwise.
    fn development_token(&self) -> Option<Token>;
    /// One page of messages; changes nothing.
    fn messages(&self, query: &BrowseQuery) -> Result<MessagePage, ConsoleError>;
    fn send(&self, request: SendRequest) -> Pending<SendOutcome>;
    fn resubmit(&self, request: ResubmitRequest) -> Pending<ResubmitOutcome>;
    fn delete(&self, request: DeleteRequest) -> Pending<DeleteOutcome>;
    /// Starts removing everything (or the dead-letter queue) in the background.
    fn purge(&self, request: PurgeRequest) -> Result<JobStarted, ConsoleError>;
    fn job(&self, id: &str) -> Option<JobStatus>;
    fn cancel_scheduled(&self, request: CancelRequest) -> Pending<CancelOutcome>;
    /// The sampled counts of the last hour.
    fn history(&self) -> History;
    /// The entities' lifecycle, shared with the administration API.
    fn management(&self) -> Arc<dyn crate::atom::Management>;
    /// Evaluates a topic's subscriptions' rules against a message; sends nothing.
    fn rule_test(&self, request: RuleTestRequest) -> Result<RuleTestOutcome, ConsoleError>;
}

#[derive(Debug, Serialize)]
struct ErrorBody {
    error: String,
}

fn error(status: StatusCode, error: String) -> Response {
    (status, Json(ErrorBody { error })).into_response()
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        error(self.status(), self.to_string())
    }
}

fn unauthorized(reason: String) -> Response {
    Refusal {
        status: StatusCode::UNAUTHORIZED,
        error: reason,
    }
    .into_response()
}

/// A request refused before the broker is asked: no right, or a body that can't be read.
struct Refusal {
    status: StatusCode,
    error: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = Json(ErrorBody { error: self.error });
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge = [(
                axum::http::header::WWW_AUTHENTICATE,
                "SharedAccessSignature",
            )];
            (self.status, challenge, body).into_response()
        } else {
            (self.status, body).into_response()
        }
    }
}

type Shared = Arc<dyn Console>;

/// The console API's routes over `console`, to merge into the broker's router.
pub fn router(console: Arc<dyn Console>) -> Router {
    Router::new()
        .route(
            "/api/console/token",
            get(development_token).post(mint_token),
        )
        .route("/api/console/messages", get(messages))
        .route("/api/console/history", get(history))
        .route("/api/console/send", post(change::<SendRequest>))
        .route("/api/console/resubmit", post(change::<ResubmitRequest>))
        .route("/api/console/delete", post(change::<DeleteRequest>))
        .route("/api/console/purge", post(change::<PurgeRequest>))
        .route("/api/console/jobs/{job}", get(job))
        .route("/api/console/rule-test", post(change::<RuleTestRequest>))
        .route(
            "/api/console/cancel-scheduled",
            post(change::<CancelRequest>),
        )
        .merge(entities::routes())
        .with_state(console)
}

/// Refuses, with 401, a request whose token does not allow `access` to `path` (503 while
/// the broker can't answer at all).
fn check(console: &Shared, headers: &HeaderMap, path: &str, access: Access) -> Result<(), Refusal> {
    if let Some(error) = console.unavailable() {
        return Err(Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error,
        });
    }
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    console
        .authorize(authorization, path, access)
        .map_err(|error| Refusal {
            status: StatusCode::UNAUTHORIZED,
            error,
        })
}

/// The request body as JSON, or 400 saying what is wrong with it.
fn body<T: serde::de::DeserializeOwned>(raw: &[u8]) -> Result<T, Refusal> {
    serde_json::from_slice(raw).map_err(|e| Refusal {
        status: StatusCode::BAD_REQUEST,
        error: format!("The request body is not what this call takes: {e}"),
    })
}

async fn development_token(
    State(console): State<Shared>,
    request: axum::extract::Request,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    if !peer.is_some_and(|peer| peer.ip().is_loopback()) {
        return unauthorized(
            "A token is handed out without a key only to loopback clients.".to_owned(),
        );
    }
    match console.development_token() {
        Some(token) => Json(token).into_response(),
        None => unauthorized(
            "The broker does not use the development key: sign in with a key.".to_owned(),
        ),
    }
}

async fn mint_token(State(console): State<Shared>, raw: axum::body::Bytes) -> Response {
    let request: TokenRequest = match body(&raw) {
        Ok(request) => request,
        Err(refusal) => return refusal.into_response(),
    };
    match console.mint_token(&request.key_name, &request.key) {
        Ok(token) => Json(token).into_response(),
        Err(reason) => unauthorized(reason),
    }
}

async fn messages(
    State(console): State<Shared>,
    headers: HeaderMap,
    query: Result<Query<BrowseQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(query) = match query {
        Ok(query) => query,
        Err(rejection) => return error(StatusCode::BAD_REQUEST, rejection.body_text()),
    };
    if let Err(refusal) = check(&console, &headers, &query.entity, Access::Read) {
        return refusal.into_response();
    }
    if query.limit == 0 || query.limit > MAX_PAGE {
        return error(
            StatusCode::BAD_REQUEST,
            format!("limit must be between 1 and {MAX_PAGE}."),
        );
    }
    match console.messages(&query) {
        Ok(page) => Json(page).into_response(),
        Err(failure) => failure.into_response(),
    }
}

/// A request that changes something: the entity it changes (Manage is needed on it) and
/// what the console does with it.
trait Change: serde::de::DeserializeOwned + Send + 'static {
    type Outcome: Serialize;
    /// The status of a success.
    const DONE: StatusCode = StatusCode::OK;
    /// The right it needs on its entity: Manage, unless it only reads.
    const ACCESS: Access = Access::Write;
    fn entity(&self) -> &str;
    fn apply(self, console: &Shared) -> Pending<Self::Outcome>;
}

impl Change for SendRequest {
    type Outcome = SendOutcome;
    fn entity(&self) -> &str {
        &self.entity
    }
    fn apply(self, console: &Shared) -> Pending<SendOutcome> {
        console.send(self)
    }
}

impl Change for ResubmitRequest {
    type Outcome = ResubmitOutcome;
    fn entity(&self) -> &str {
        &self.entity
    }
    fn apply(self, console: &Shared) -> Pending<ResubmitOutcome> {
        console.resubmit(self)
    }
}

impl Change for DeleteRequest {
    type Outcome = DeleteOutcome;
    fn entity(&self) -> &str {
        &self.entity
    }
    fn apply(self, console: &Shared) -> Pending<DeleteOutcome> {
        console.delete(self)
    }
}

impl Change for CancelRequest {
    type Outcome = CancelOutcome;
    fn entity(&self) -> &str {
        &self.entity
    }
    fn apply(self, console: &Shared) -> Pending<CancelOutcome> {
        console.cancel_scheduled(self)
    }
}

impl Change for PurgeRequest {
    type Outcome = JobStarted;
    /// The purge goes on after the answer.
    const DONE: StatusCode = StatusCode::ACCEPTED;
    fn entity(&self) -> &str {
        &self.entity
    }
    fn apply(self, console: &Shared) -> Pending<JobStarted> {
        Box::pin(std::future::ready(console.purge(self)))
    }
}

impl Change for RuleTestRequest {
    type Outcome = RuleTestOutcome;
    /// Nothing is sent: reading the topic is enough.
    const ACCESS: Access = Access::Read;
    fn entity(&self) -> &str {
        &self.topic
    }
    fn apply(self, console: &Shared) -> Pending<RuleTestOutcome> {
        Box::pin(std::future::ready(console.rule_test(self)))
    }
}

/// Reads a change request, checks Manage on the entity it names, and answers what the
/// console does with it.
async fn change<T: Change>(
    State(console): State<Shared>,
    headers: HeaderMap,
    raw: axum::body::Bytes,
) -> Response {
    let request: T = match body(&raw) {
        Ok(request) => request,
        Err(refusal) => return refusal.into_response(),
    };
    if let Err(refusal) = check(&console, &headers, request.entity(), T::ACCESS) {
        return refusal.into_response();
    }
    match request.apply(&console).await {
        Ok(outcome) => (T::DONE, Json(outcome)).into_response(),
        Err(failure) => failure.into_response(),
    }
}

async fn history(
    State(console): State<Shared>,
    headers: HeaderMap,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(query) = match query {
        Ok(query) => query,
        Err(rejection) => return error(StatusCode::BAD_REQUEST, rejection.body_text()),
    };
    if let Err(refusal) = check(&console, &headers, "", Access::Read) {
        return refusal.into_response();
    }
    let mut history = console.history();
    if let Some(since) = query.since {
        for points in history.entities.values_mut() {
            points.retain(|point| point.t_ms > since);
        }
    }
    Json(history).into_response()
}

async fn job(
    State(console): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    // Judged on the entity purged; an unknown job tells nothing to whoever may not read.
    let status = console.job(&id);
    let entity = status.as_ref().map_or("", |s| s.entity.as_str());
    if let Err(refusal) = check(&console, &headers, entity, Access::Read) {
        return refusal.into_response();
    }
    match status {
        Some(status) => Json(status).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no job '{id}'")),
    }
}
