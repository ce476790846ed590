//! The orders service's internal HTTP API (reached through the gateway, which names the
//! signed-in user in `x-shop-user`): `GET/POST /orders`, `GET/PUT/DELETE /orders/{id}`,
//! and `GET /outbox` (changes not yet acknowledged by the broker, changes kept, failed
//! publishing rounds).
//! Prices and totals are in cents.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use tokio::sync::Notify;
use uuid::Uuid;

use super::store::{self, Order, OrderUpdate, StoreError};
use crate::common::contracts::{OrderItem, OrderStatus};
use crate::common::database::Db;
use crate::common::error::{ApiError, ApiResult};
use crate::common::guard::USER_HEADER;
use crate::common::relay::RelayStats;

#[derive(Clone)]
pub struct OrdersState {
    pub db: Db,
    /// Woken after each commit, so the publisher sends at once.
    pub outbox_changed: Arc<Notify>,
    pub relay_stats: Arc<RelayStats>,
}

pub fn router(state: OrdersState) -> Router {
    Router::new()
        .route("/orders", get(list).post(create))
        .route("/orders/{id}", get(view).put(update).delete(delete))
        .route("/outbox", get(outbox))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrder {
    customer: String,
    items: Vec<OrderItem>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderChange {
    customer: Option<String>,
    status: Option<String>,
    items: Option<Vec<OrderItem>>,
    /// Refuse (409) unless the order is still at this version.
    version: Option<i64>,
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => ApiError::not_found("no such order"),
            conflict @ StoreError::VersionConflict { .. } => {
                ApiError::conflict(conflict.to_string())
            }
            StoreError::Database(error) => error.into(),
            StoreError::Corrupt(detail) => {
                tracing::error!(%detail, "unreadable order");
                ApiError::internal("a stored order is unreadable")
            }
        }
    }
}

fn user(headers: &HeaderMap) -> ApiResult<String> {
    headers
        .get(USER_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|user| !user.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| ApiError::unauthorized(format!("no signed-in user ({USER_HEADER})")))
}

fn order_id(text: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(text).map_err(|_| ApiError::not_found("no such order"))
}

fn customer(text: String) -> ApiResult<String> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.len() > 200 {
        return Err(ApiError::bad_request(
            "customer must be 1 to 200 characters",
        ));
    }
    Ok(trimmed.to_owned())
}

/// Checks the items and prices them: the total in cents.
fn priced(items: &[OrderItem]) -> ApiResult<i64> {
    if items.is_empty() || items.len() > 100 {
        return Err(ApiError::bad_request("an order has 1 to 100 items"));
    }
    items.iter().try_fold(0i64, |total, item| {
        if item.sku.trim().is_empty() {
            return Err(ApiError::bad_request("every item needs a sku"));
        }
        if item.quantity < 1 || item.quantity > 1_000_000 {
            return Err(ApiError::bad_request(format!(
                "quantity of {} must be 1 to 1000000",
                item.sku
            )));
        }
        if item.unit_price < 0 {
            return Err(ApiError::bad_request(format!(
                "unit_price of {} must not be negative",
                item.sku
            )));
        }
        item.quantity
            .checked_mul(item.unit_price)
            .and_then(|line| total.checked_add(line))
            .ok_or_else(|| ApiError::bad_request("the total is too large"))
    })
}

async fn list(State(state): State<OrdersState>, headers: HeaderMap) -> ApiResult<Json<Vec<Order>>> {
    let user = user(&headers)?;
    Ok(Json(store::list(&state.db, &user).await?))
}

async fn create(
    State(state): State<OrdersState>,
    headers: HeaderMap,
    body: Result<Json<NewOrder>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<Order>)> {
    let user = user(&headers)?;
    let Json(new) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let total = priced(&new.items)?;
    let order = store::create(&state.db, &user, customer(new.customer)?, new.items, total).await?;
    state.outbox_changed.notify_one();
    Ok((StatusCode::CREATED, Json(order)))
}

async fn view(
    State(state): State<OrdersState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Order>> {
    let user = user(&headers)?;
    Ok(Json(store::get(&state.db, &user, order_id(&id)?).await?))
}

async fn update(
    State(state): State<OrdersState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<OrderChange>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<Order>> {
    let user = user(&headers)?;
    let id = order_id(&id)?;
    let Json(change) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let status = change
        .status
        .map(|status| {
            OrderStatus::parse(&status).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "status '{status}' is not one of open, paid, shipped, closed"
                ))
            })
        })
        .transpose()?;
    let items = match change.items {
        Some(items) => {
            let total = priced(&items)?;
            Some((items, total))
        }
        None => None,
    };
    let update = OrderUpdate {
        customer: change.customer.map(customer).transpose()?,
        status,
        items,
        expected_version: change.version,
    };
    let order = store::update(&state.db, &user, id, update).await?;
    state.outbox_changed.notify_one();
    Ok(Json(order))
}

async fn delete(
    State(state): State<OrdersState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let user = user(&headers)?;
    store::delete(&state.db, &user, order_id(&id)?).await?;
    state.outbox_changed.notify_one();
    Ok(StatusCode::NO_CONTENT)
}

async fn outbox(State(state): State<OrdersState>) -> ApiResult<Json<serde_json::Value>> {
    let pending = store::pending_count(&state.db).await?;
    let stored = store::stored_count(&state.db).await?;
    let failed_attempts = state.relay_stats.failed_attempts.load(Ordering::Relaxed);
    Ok(Json(serde_json::json!({
        "pending": pending,
        "stored": stored,
        "failed_attempts": failed_attempts,
    })))
}
