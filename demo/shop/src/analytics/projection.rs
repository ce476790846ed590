//! Analytics' own copy of the orders (step 3 of the article's flow: "updating entities
//! regarding the new order model") and the figures recalculated from it (step 4).
//!
//! Applying a change is idempotent and order-independent: a change id is applied at most
//! once (`applied_changes`), and an order's row only moves to a higher version, so a
//! redelivered, duplicated or late message changes nothing. A deletion leaves a tombstone
//! with its version, so an older update arriving after it cannot bring the order back.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Row as _;

use crate::common::contracts::{OrderChanged, OrderStatus};
use crate::common::database::{Db, DbError};
use crate::common::time::now_ms;

/// How many points of the open-orders history `GET /analytics` returns.
const HISTORY_POINTS: i64 = 200;

pub async fn create_schema(db: &Db) -> Result<(), DbError> {
    db.schema(&[
        "CREATE TABLE IF NOT EXISTS applied_changes (
            change_id TEXT PRIMARY KEY,
            order_id TEXT NOT NULL,
            version BIGINT NOT NULL,
            applied_at BIGINT NOT NULL
        )",
        "CREATE TABLE IF NOT EXISTS order_projection (
            order_id TEXT PRIMARY KEY,
            version BIGINT NOT NULL,
            deleted BIGINT NOT NULL,
            customer TEXT NOT NULL,
            status TEXT NOT NULL,
            total_cents BIGINT NOT NULL,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL
        )",
        "CREATE TABLE IF NOT EXISTS figures (
            id BIGINT PRIMARY KEY,
            calculated_at BIGINT NOT NULL,
            body TEXT NOT NULL
        )",
        "CREATE TABLE IF NOT EXISTS open_orders_history (
            position {serial},
            at BIGINT NOT NULL,
            open_orders BIGINT NOT NULL
        )",
    ])
    .await
}

/// What applying a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The projection moved to this change's version.
    Applied,
    /// Counted, but the projection already had a newer version of the order.
    Stale,
    /// This change id was applied before: nothing done.
    Duplicate,
}

/// Applies `change` in one transaction.
pub async fn apply(db: &Db, change: &OrderChanged) -> Result<Applied, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let first_time = sqlx::query(
        "INSERT INTO applied_changes (change_id, order_id, version, applied_at)
         VALUES ($1, $2, $3, $4) ON CONFLICT (change_id) DO NOTHING",
    )
    .bind(change.change_id.to_string())
    .bind(change.order_id.to_string())
    .bind(change.version)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !first_time {
        tx.rollback().await?;
        return Ok(Applied::Duplicate);
    }
    let (deleted, customer, status, total, created_at, updated_at) = match &change.order {
        Some(order) => (
            0i64,
            order.customer.clone(),
            order.status.as_str(),
            order.total_cents,
            order.created_at,
            order.updated_at,
        ),
        None => (
            1,
            String::new(),
            OrderStatus::Closed.as_str(),
            0,
            change.at,
            change.at,
        ),
    };
    let moved = sqlx::query(
        "INSERT INTO order_projection
            (order_id, version, deleted, customer, status, total_cents, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (order_id) DO UPDATE SET
            version = excluded.version, deleted = excluded.deleted,
            customer = excluded.customer, status = excluded.status,
            total_cents = excluded.total_cents, created_at = excluded.created_at,
            updated_at = excluded.updated_at
         WHERE order_projection.version < excluded.version",
    )
    .bind(change.order_id.to_string())
    .bind(change.version)
    .bind(deleted)
    .bind(customer)
    .bind(status)
    .bind(total)
    .bind(created_at)
    .bind(updated_at)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    tx.commit().await?;
    Ok(if moved {
        Applied::Applied
    } else {
        Applied::Stale
    })
}

/// Count and sum of a group of orders.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Tally {
    pub orders: i64,
    pub total_cents: i64,
}

impl Tally {
    fn add(&mut self, total_cents: i64) {
        self.orders += 1;
        self.total_cents = self.total_cents.saturating_add(total_cents);
    }
}

/// The statistics the article names, as of `calculated_at`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Figures {
    pub calculated_at: i64,
    pub open_orders: i64,
    /// Mean of how long the open orders have been open, in seconds.
    pub average_open_seconds: f64,
    /// How many open orders have been open under an hour, under a day, under a week, longer.
    pub open_time_distribution: BTreeMap<String, i64>,
    pub orders_by_status: BTreeMap<String, i64>,
    pub totals_by_status: BTreeMap<String, Tally>,
    /// Orders created per UTC day (`YYYY-MM-DD`).
    pub totals_by_day: BTreeMap<String, Tally>,
    pub total_orders: i64,
    pub total_cents: i64,
    /// Distinct changes applied so far (each counted once however often it arrived).
    pub changes_applied: i64,
}

/// Step 4: recalculates the figures from the projection and stores them.
pub async fn recalculate(db: &Db) -> Result<Figures, sqlx::Error> {
    let now = now_ms();
    let rows = sqlx::query(
        "SELECT status, total_cents, created_at FROM order_projection WHERE deleted = 0",
    )
    .fetch_all(&db.pool)
    .await?;
    let changes_applied: i64 = sqlx::query("SELECT COUNT(*) AS n FROM applied_changes")
        .fetch_one(&db.pool)
        .await?
        .try_get("n")?;
    let mut figures = Figures {
        calculated_at: now,
        changes_applied,
        ..Figures::default()
    };
    for status in OrderStatus::ALL {
        figures.orders_by_status.insert(status.as_str().into(), 0);
        figures
            .totals_by_status
            .insert(status.as_str().into(), Tally::default());
    }
    for bucket in OPEN_TIME_BUCKETS.iter().map(|(name, _)| name) {
        figures.open_time_distribution.insert((*bucket).into(), 0);
    }
    let mut open_ms_sum: i64 = 0;
    for row in &rows {
        let status: String = row.try_get("status")?;
        let total: i64 = row.try_get("total_cents")?;
        let created_at: i64 = row.try_get("created_at")?;
        *figures.orders_by_status.entry(status.clone()).or_default() += 1;
        figures
            .totals_by_status
            .entry(status.clone())
            .or_default()
            .add(total);
        figures
            .totals_by_day
            .entry(utc_day(created_at))
            .or_default()
            .add(total);
        figures.total_orders += 1;
        figures.total_cents = figures.total_cents.saturating_add(total);
        if status == OrderStatus::Open.as_str() {
            let open_ms = (now - created_at).max(0);
            figures.open_orders += 1;
            open_ms_sum = open_ms_sum.saturating_add(open_ms);
            let bucket = OPEN_TIME_BUCKETS
                .iter()
                .find(|(_, limit)| open_ms < *limit)
                .map_or("longer", |(name, _)| *name);
            *figures
                .open_time_distribution
                .entry(bucket.into())
                .or_default() += 1;
        }
    }
    if figures.open_orders > 0 {
        figures.average_open_seconds = open_ms_sum as f64 / figures.open_orders as f64 / 1000.0;
    }
    let body = serde_json::to_string(&figures).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO figures (id, calculated_at, body) VALUES (1, $1, $2)
         ON CONFLICT (id) DO UPDATE SET calculated_at = excluded.calculated_at, body = excluded.body",
    )
    .bind(now)
    .bind(body)
    .execute(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO open_orders_history (at, open_orders) VALUES ($1, $2)")
        .bind(now)
        .bind(figures.open_orders)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(figures)
}

/// Open-time buckets: name and upper bound in milliseconds.
const OPEN_TIME_BUCKETS: [(&str, i64); 4] = [
    ("under_1h", 3_600_000),
    ("under_1d", 86_400_000),
    ("under_7d", 7 * 86_400_000),
    ("longer", i64::MAX),
];

/// The figures as last recalculated (defaults before the first recalculation), and the
/// open-orders history, oldest first, as `[at, open_orders]` pairs.
pub async fn latest(db: &Db) -> Result<(Figures, Vec<(i64, i64)>), sqlx::Error> {
    let figures = match sqlx::query("SELECT body FROM figures WHERE id = 1")
        .fetch_optional(&db.pool)
        .await?
    {
        Some(row) => {
            let body: String = row.try_get("body")?;
            serde_json::from_str(&body).map_err(|e| sqlx::Error::Decode(Box::new(e)))?
        }
        None => Figures::default(),
    };
    let rows = sqlx::query(
        "SELECT at, open_orders FROM open_orders_history ORDER BY position DESC LIMIT $1",
    )
    .bind(HISTORY_POINTS)
    .fetch_all(&db.pool)
    .await?;
    let mut history = rows
        .iter()
        .map(|row| Ok((row.try_get("at")?, row.try_get("open_orders")?)))
        .collect::<Result<Vec<(i64, i64)>, sqlx::Error>>()?;
    history.reverse();
    Ok((figures, history))
}

/// `YYYY-MM-DD` of a Unix time in milliseconds (UTC).
fn utc_day(ms: i64) -> String {
    let mut day = busbar_atom::timestamp::format_utc(ms);
    day.truncate("YYYY-MM-DD".len());
    day
}

#[cfg(test)]
mod tests {
    use super::utc_day;

    #[test]
    fn days_in_utc() {
        assert_eq!(utc_day(0), "1970-01-01");
        assert_eq!(utc_day(951_782_400_000), "2000-02-29");
        assert_eq!(utc_day(1_798_761_599_999), "2026-12-31");
    }
}
