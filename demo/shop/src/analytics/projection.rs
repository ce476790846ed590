//! Analytics' own copy of the orders (step 3 of the article's flow: "updating entities
//! regarding the new order model") and the figures recalculated from it (step 4).
//!
//! Applying a change is idempotent and order-independent: a change id is applied at most
//! once (`applied_changes`), and an order's row only moves to a higher version, so a
//! redelivered, duplicated or late message changes nothing. A deletion leaves a tombstone
//! with its version, so an older update arriving after it cannot bring the order back.
//!
//! The figures are kept up to date incrementally, so a message costs the same however many
//! orders there are: applying a change moves the order's count and total from its old
//! status and day to its new ones (`tallies`, in the same transaction, and only when the
//! projection moved), and recalculating reads the tallies and one aggregate over the open
//! orders (indexed), which the time-dependent figures need. The tallies are rebuilt from
//! the projection at start ([`rebuild_tallies`]).

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
        "CREATE INDEX IF NOT EXISTS projection_open
            ON order_projection (status, deleted, created_at)",
        // Running counts and totals: kind `status` (key: the status), `day` (key: the UTC
        // day of creation), `changes` (key '': the distinct changes applied, in `orders`).
        "CREATE TABLE IF NOT EXISTS tallies (
            kind TEXT NOT NULL,
            key TEXT NOT NULL,
            orders BIGINT NOT NULL,
            total_cents BIGINT NOT NULL,
            PRIMARY KEY (kind, key)
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

/// An order as the projection holds it: what it counts for in the tallies.
struct Counted {
    status: String,
    total_cents: i64,
    created_at: i64,
}

/// Adds `orders` and `total_cents` (negative to take away) to a tally, inside `tx`.
async fn add_to_tally(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    kind: &str,
    key: &str,
    orders: i64,
    total_cents: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO tallies (kind, key, orders, total_cents) VALUES ($1, $2, $3, $4)
         ON CONFLICT (kind, key) DO UPDATE SET
            orders = tallies.orders + excluded.orders,
            total_cents = tallies.total_cents + excluded.total_cents",
    )
    .bind(kind)
    .bind(key)
    .bind(orders)
    .bind(total_cents)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Adds (`sign` 1) or takes away (`sign` -1) an order's part of the status and day tallies.
async fn count(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    order: &Counted,
    sign: i64,
) -> Result<(), sqlx::Error> {
    let total = order.total_cents.saturating_mul(sign);
    add_to_tally(tx, "status", &order.status, sign, total).await?;
    add_to_tally(tx, "day", &utc_day(order.created_at), sign, total).await
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
    // First, as it locks the counter's row until commit: on PostgreSQL two transactions
    // applying at once then take turns, so each reads the order as the other left it.
    add_to_tally(&mut tx, "changes", "", 1, 0).await?;
    let current = sqlx::query(
        "SELECT version, deleted, status, total_cents, created_at
         FROM order_projection WHERE order_id = $1",
    )
    .bind(change.order_id.to_string())
    .fetch_optional(&mut *tx)
    .await?;
    let mut was_counted = None;
    if let Some(row) = current {
        let version: i64 = row.try_get("version")?;
        if version >= change.version {
            tx.commit().await?;
            return Ok(Applied::Stale);
        }
        if row.try_get::<i64, _>("deleted")? == 0 {
            was_counted = Some(Counted {
                status: row.try_get("status")?,
                total_cents: row.try_get("total_cents")?,
                created_at: row.try_get("created_at")?,
            });
        }
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
    sqlx::query(
        "INSERT INTO order_projection
            (order_id, version, deleted, customer, status, total_cents, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (order_id) DO UPDATE SET
            version = excluded.version, deleted = excluded.deleted,
            customer = excluded.customer, status = excluded.status,
            total_cents = excluded.total_cents, created_at = excluded.created_at,
            updated_at = excluded.updated_at",
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
    .await?;
    if let Some(old) = &was_counted {
        count(&mut tx, old, -1).await?;
    }
    if deleted == 0 {
        let new = Counted {
            status: status.to_owned(),
            total_cents: total,
            created_at,
        };
        count(&mut tx, &new, 1).await?;
    }
    tx.commit().await?;
    Ok(Applied::Applied)
}

/// Recomputes the tallies from the projection and the applied changes, in one
/// transaction: at start, so they also exist for a projection kept before there were any.
pub async fn rebuild_tallies(db: &Db) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    sqlx::query("DELETE FROM tallies").execute(&mut *tx).await?;
    let rows = sqlx::query(
        "SELECT status, total_cents, created_at FROM order_projection WHERE deleted = 0",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut tallies: BTreeMap<(&str, String), Tally> = BTreeMap::new();
    for row in &rows {
        let total: i64 = row.try_get("total_cents")?;
        let created_at: i64 = row.try_get("created_at")?;
        tallies
            .entry(("status", row.try_get("status")?))
            .or_default()
            .add(total);
        tallies
            .entry(("day", utc_day(created_at)))
            .or_default()
            .add(total);
    }
    let changes: i64 = sqlx::query("SELECT COUNT(*) AS n FROM applied_changes")
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
    tallies.insert(
        ("changes", String::new()),
        Tally {
            orders: changes,
            total_cents: 0,
        },
    );
    for ((kind, key), tally) in &tallies {
        add_to_tally(&mut tx, kind, key, tally.orders, tally.total_cents).await?;
    }
    tx.commit().await
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

/// Step 4: recalculates the figures from the tallies and the open orders, and stores them.
pub async fn recalculate(db: &Db) -> Result<Figures, sqlx::Error> {
    let now = now_ms();
    let mut figures = Figures {
        calculated_at: now,
        ..Figures::default()
    };
    for status in OrderStatus::ALL {
        figures.orders_by_status.insert(status.as_str().into(), 0);
        figures
            .totals_by_status
            .insert(status.as_str().into(), Tally::default());
    }
    let tallies = sqlx::query("SELECT kind, key, orders, total_cents FROM tallies")
        .fetch_all(&db.pool)
        .await?;
    for row in &tallies {
        let kind: String = row.try_get("kind")?;
        let key: String = row.try_get("key")?;
        let tally = Tally {
            orders: row.try_get("orders")?,
            total_cents: row.try_get("total_cents")?,
        };
        match kind.as_str() {
            "changes" => figures.changes_applied = tally.orders,
            "status" => {
                figures.total_orders += tally.orders;
                figures.total_cents = figures.total_cents.saturating_add(tally.total_cents);
                figures.orders_by_status.insert(key.clone(), tally.orders);
                figures.totals_by_status.insert(key, tally);
            }
            // A day whose orders were all deleted is not shown.
            "day" if tally.orders > 0 => {
                figures.totals_by_day.insert(key, tally);
            }
            _ => {}
        }
    }
    // How long the open orders have been open: one pass over them, in the database.
    let [(_, hour), (_, day), (_, week), _] = OPEN_TIME_BUCKETS;
    let open = sqlx::query(
        "SELECT COUNT(*) AS open_orders,
            CAST(COALESCE(SUM(CASE WHEN created_at < $1 THEN $1 - created_at ELSE 0 END), 0)
                AS BIGINT) AS open_ms,
            COALESCE(SUM(CASE WHEN $1 - created_at < $2 THEN 1 ELSE 0 END), 0) AS under_hour,
            COALESCE(SUM(CASE WHEN $1 - created_at < $3 THEN 1 ELSE 0 END), 0) AS under_day,
            COALESCE(SUM(CASE WHEN $1 - created_at < $4 THEN 1 ELSE 0 END), 0) AS under_week
         FROM order_projection WHERE status = $5 AND deleted = 0",
    )
    .bind(now)
    .bind(hour)
    .bind(day)
    .bind(week)
    .bind(OrderStatus::Open.as_str())
    .fetch_one(&db.pool)
    .await?;
    figures.open_orders = open.try_get("open_orders")?;
    let open_ms: i64 = open.try_get("open_ms")?;
    let under_hour: i64 = open.try_get("under_hour")?;
    let under_day: i64 = open.try_get("under_day")?;
    let under_week: i64 = open.try_get("under_week")?;
    let counts = [
        under_hour,
        under_day - under_hour,
        under_week - under_day,
        figures.open_orders - under_week,
    ];
    for ((bucket, _), count) in OPEN_TIME_BUCKETS.iter().zip(counts) {
        figures
            .open_time_distribution
            .insert((*bucket).into(), count);
    }
    if figures.open_orders > 0 {
        figures.average_open_seconds = open_ms as f64 / figures.open_orders as f64 / 1000.0;
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
    use uuid::Uuid;

    use super::*;
    use crate::common::contracts::{ChangeKind, OrderSnapshot};

    const DAY_MS: i64 = 86_400_000;

    fn change(
        order_id: Uuid,
        version: i64,
        order: Option<(OrderStatus, i64, i64)>,
    ) -> OrderChanged {
        OrderChanged {
            change_id: Uuid::new_v4(),
            order_id,
            version,
            kind: match (version, &order) {
                (_, None) => ChangeKind::Deleted,
                (1, _) => ChangeKind::Created,
                _ => ChangeKind::Updated,
            },
            order: order.map(|(status, total_cents, created_at)| OrderSnapshot {
                owner: "ann@example.com".into(),
                customer: "Ann".into(),
                status,
                items: vec![],
                total_cents,
                created_at,
                updated_at: created_at + version,
            }),
            at: now_ms(),
        }
    }

    /// The figures but the ones that move with the clock.
    fn settled(figures: &Figures) -> Figures {
        Figures {
            calculated_at: 0,
            average_open_seconds: 0.0,
            ..figures.clone()
        }
    }

    #[tokio::test]
    async fn the_tallies_follow_late_duplicated_and_deleted_changes_as_a_recount_would() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let db = Db::open(dir.path(), "analytics", None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        create_schema(&db).await.unwrap_or_else(|e| panic!("{e}"));
        let (paid, deleted, open) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let two_hours_ago = now_ms() - 2 * 3_600_000;
        let paid_v1 = change(paid, 1, Some((OrderStatus::Open, 500, DAY_MS)));
        let paid_v2 = change(paid, 2, Some((OrderStatus::Paid, 700, DAY_MS)));
        let deleted_v1 = change(deleted, 1, Some((OrderStatus::Open, 300, 3 * DAY_MS)));
        let deleted_v2 = change(deleted, 2, None);
        let open_v1 = change(open, 1, Some((OrderStatus::Open, 100, two_hours_ago)));
        let open_v2 = change(open, 2, Some((OrderStatus::Open, 150, two_hours_ago)));
        let expected = [
            (&paid_v2, Applied::Applied),
            (&paid_v1, Applied::Stale),
            (&paid_v1, Applied::Duplicate),
            (&deleted_v2, Applied::Applied),
            (&deleted_v1, Applied::Stale),
            (&open_v1, Applied::Applied),
            (&open_v2, Applied::Applied),
            (&open_v2, Applied::Duplicate),
        ];
        for (change, outcome) in expected {
            let applied = apply(&db, change).await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                applied, outcome,
                "version {} of {}",
                change.version, change.order_id
            );
        }

        let figures = recalculate(&db).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(figures.changes_applied, 6);
        assert_eq!((figures.total_orders, figures.total_cents), (2, 850));
        assert_eq!(figures.orders_by_status["paid"], 1);
        assert_eq!(figures.totals_by_status["paid"].total_cents, 700);
        assert_eq!(figures.totals_by_status["open"].total_cents, 150);
        assert_eq!(figures.open_orders, 1);
        assert_eq!(figures.open_time_distribution["under_1d"], 1);
        assert_eq!(figures.open_time_distribution["under_1h"], 0);
        assert!(figures.average_open_seconds >= 7_200.0);
        let days: Vec<&str> = figures.totals_by_day.keys().map(String::as_str).collect();
        assert_eq!(days, ["1970-01-02", utc_day(two_hours_ago).as_str()]);

        // Rebuilt from the projection, as at start, the tallies come out the same.
        rebuild_tallies(&db).await.unwrap_or_else(|e| panic!("{e}"));
        let rebuilt = recalculate(&db).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(settled(&rebuilt), settled(&figures));
    }

    #[test]
    fn days_in_utc() {
        assert_eq!(utc_day(0), "1970-01-01");
        assert_eq!(utc_day(951_782_400_000), "2000-02-29");
        assert_eq!(utc_day(1_798_761_599_999), "2026-12-31");
    }
}
