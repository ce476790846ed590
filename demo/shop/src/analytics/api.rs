//! The analytics service's internal HTTP API: `GET /analytics` (the figures as last
//! recalculated, with the open-orders history), `GET /dead-letters`,
//! `POST /dead-letters/{entity}/{sequence}/resubmit`.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use busbar_client::ServiceBusClient;
use serde::Serialize;

use super::dead_letters::{self, DeadLetter, ResubmitError};
use super::projection::{self, Figures};
use crate::common::database::Db;
use crate::common::error::{ApiError, ApiResult};

#[derive(Clone)]
pub struct AnalyticsState {
    pub db: Db,
    pub client: ServiceBusClient,
}

pub fn router(state: AnalyticsState) -> Router {
    Router::new()
        .route("/analytics", get(figures))
        .route("/dead-letters", get(list_dead_letters))
        .route("/dead-letters/{entity}/{sequence}/resubmit", post(resubmit))
        .with_state(state)
}

#[derive(Debug, Serialize)]
struct FiguresView {
    #[serde(flatten)]
    figures: Figures,
    /// `[at, open_orders]`, oldest first.
    open_orders_history: Vec<(i64, i64)>,
}

async fn figures(State(state): State<AnalyticsState>) -> ApiResult<Json<FiguresView>> {
    let (figures, open_orders_history) = projection::latest(&state.db).await?;
    Ok(Json(FiguresView {
        figures,
        open_orders_history,
    }))
}

async fn list_dead_letters(
    State(state): State<AnalyticsState>,
) -> ApiResult<Json<Vec<DeadLetter>>> {
    dead_letters::list(&state.client)
        .await
        .map(Json)
        .map_err(|e| ApiError::unavailable(format!("cannot read the dead-letter queues: {e}")))
}

#[derive(Debug, Serialize)]
struct Resubmitted {
    entity: String,
    sequence: i64,
    message_id: String,
}

async fn resubmit(
    State(state): State<AnalyticsState>,
    Path((entity, sequence)): Path<(String, String)>,
) -> ApiResult<Json<Resubmitted>> {
    let sequence: i64 = sequence
        .parse()
        .map_err(|_| ApiError::bad_request(format!("'{sequence}' is not a sequence number")))?;
    match dead_letters::resubmit(&state.client, &entity, sequence).await {
        Ok(message_id) => Ok(Json(Resubmitted {
            entity,
            sequence,
            message_id,
        })),
        Err(error @ (ResubmitError::UnknownEntity(_) | ResubmitError::NotFound(..))) => {
            Err(ApiError::not_found(error.to_string()))
        }
        Err(ResubmitError::Bus(error)) => Err(ApiError::unavailable(format!(
            "the broker refused the resubmission: {error}"
        ))),
    }
}
