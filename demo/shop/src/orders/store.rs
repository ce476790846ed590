//! The orders database: the orders themselves and the outbox. Each change of an order and
//! the [`OrderChanged`] describing it are written in one transaction, so a committed change
//! is always published and nothing is published that was not committed.

use sqlx::Row as _;
use uuid::Uuid;

use crate::common::contracts::{ChangeKind, OrderChanged, OrderItem, OrderSnapshot, OrderStatus};
use crate::common::database::{Db, DbError};
use crate::common::time::now_ms;

pub async fn create_schema(db: &Db) -> Result<(), DbError> {
    db.schema(&[
        "CREATE TABLE IF NOT EXISTS orders (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            customer TEXT NOT NULL,
            status TEXT NOT NULL,
            items TEXT NOT NULL,
            total_cents BIGINT NOT NULL,
            version BIGINT NOT NULL,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL
        )",
        "CREATE INDEX IF NOT EXISTS orders_by_owner ON orders (owner, created_at)",
        // One row per committed change; the flags say which destinations acknowledged it.
        "CREATE TABLE IF NOT EXISTS outbox (
            position {serial},
            change_id TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            event_subject TEXT NOT NULL,
            body TEXT NOT NULL,
            queue_sent BIGINT NOT NULL DEFAULT 0,
            topic_sent BIGINT NOT NULL DEFAULT 0,
            created_at BIGINT NOT NULL
        )",
        "CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (queue_sent, topic_sent, position)",
    ])
    .await
}

/// An order as the service keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Order {
    pub id: Uuid,
    pub owner: String,
    pub customer: String,
    pub status: OrderStatus,
    pub items: Vec<OrderItem>,
    /// Cents.
    pub total: i64,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Order {
    fn snapshot(&self) -> OrderSnapshot {
        OrderSnapshot {
            owner: self.owner.clone(),
            customer: self.customer.clone(),
            status: self.status,
            items: self.items.clone(),
            total_cents: self.total,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// Why a change was not made.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no such order")]
    NotFound,
    #[error("the order is at version {current}, not {expected}")]
    VersionConflict { current: i64, expected: i64 },
    #[error("the database failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("a stored order is unreadable: {0}")]
    Corrupt(String),
}

/// What an update changes; `None` keeps the current value.
#[derive(Debug, Default)]
pub struct OrderUpdate {
    pub customer: Option<String>,
    pub status: Option<OrderStatus>,
    pub items: Option<(Vec<OrderItem>, i64)>,
    /// Refuse the update unless the order is at this version.
    pub expected_version: Option<i64>,
}

const ORDER_COLUMNS: &str =
    "id, owner, customer, status, items, total_cents, version, created_at, updated_at";

fn order_from_row(row: &sqlx::any::AnyRow) -> Result<Order, StoreError> {
    let id: String = row.try_get("id")?;
    let status: String = row.try_get("status")?;
    let items: String = row.try_get("items")?;
    Ok(Order {
        id: Uuid::parse_str(&id).map_err(|e| StoreError::Corrupt(format!("id {id}: {e}")))?,
        owner: row.try_get("owner")?,
        customer: row.try_get("customer")?,
        status: OrderStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("status {status}")))?,
        items: serde_json::from_str(&items)
            .map_err(|e| StoreError::Corrupt(format!("items of {id}: {e}")))?,
        total: row.try_get("total_cents")?,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn items_json(items: &[OrderItem]) -> Result<String, StoreError> {
    serde_json::to_string(items).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Writes the outbox row of `change` inside `tx`.
async fn append_outbox(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    change: &OrderChanged,
) -> Result<(), StoreError> {
    let body = serde_json::to_string(change).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query(
        "INSERT INTO outbox (change_id, kind, event_subject, body, created_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(change.change_id.to_string())
    .bind(change.kind.as_str())
    .bind(change.event_subject())
    .bind(body)
    .bind(change.at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn change_of(order: &Order, kind: ChangeKind, version: i64) -> OrderChanged {
    OrderChanged {
        change_id: Uuid::new_v4(),
        order_id: order.id,
        version,
        kind,
        order: (kind != ChangeKind::Deleted).then(|| order.snapshot()),
        at: order.updated_at,
    }
}

/// Creates an order of `owner` at version 1, with its `created` change.
pub async fn create(
    db: &Db,
    owner: &str,
    customer: String,
    items: Vec<OrderItem>,
    total: i64,
) -> Result<Order, StoreError> {
    let now = now_ms();
    let order = Order {
        id: Uuid::new_v4(),
        owner: owner.to_owned(),
        customer,
        status: OrderStatus::Open,
        items,
        total,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let mut tx = db.begin_write().await?;
    sqlx::query(&format!(
        "INSERT INTO orders ({ORDER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    ))
    .bind(order.id.to_string())
    .bind(&order.owner)
    .bind(&order.customer)
    .bind(order.status.as_str())
    .bind(items_json(&order.items)?)
    .bind(order.total)
    .bind(order.version)
    .bind(order.created_at)
    .bind(order.updated_at)
    .execute(&mut *tx)
    .await?;
    append_outbox(&mut tx, &change_of(&order, ChangeKind::Created, 1)).await?;
    tx.commit().await?;
    Ok(order)
}

/// The orders of `owner`, newest first.
pub async fn list(db: &Db, owner: &str) -> Result<Vec<Order>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE owner = $1 ORDER BY created_at DESC, id"
    ))
    .bind(owner)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(order_from_row).collect()
}

/// The order `id` of `owner`.
pub async fn get(db: &Db, owner: &str, id: Uuid) -> Result<Order, StoreError> {
    get_in(&db.pool, owner, id).await
}

async fn get_in<'e, E>(executor: E, owner: &str, id: Uuid) -> Result<Order, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1 AND owner = $2"
    ))
    .bind(id.to_string())
    .bind(owner)
    .fetch_optional(executor)
    .await?
    .ok_or(StoreError::NotFound)?;
    order_from_row(&row)
}

/// Applies `update` to the order `id` of `owner`, one version up, with its `updated` change.
pub async fn update(
    db: &Db,
    owner: &str,
    id: Uuid,
    update: OrderUpdate,
) -> Result<Order, StoreError> {
    let mut tx = db.begin_write().await?;
    let mut order = get_in(&mut *tx, owner, id).await?;
    if let Some(expected) = update.expected_version
        && expected != order.version
    {
        return Err(StoreError::VersionConflict {
            current: order.version,
            expected,
        });
    }
    let previous_version = order.version;
    if let Some(customer) = update.customer {
        order.customer = customer;
    }
    if let Some(status) = update.status {
        order.status = status;
    }
    if let Some((items, total)) = update.items {
        order.items = items;
        order.total = total;
    }
    order.version += 1;
    order.updated_at = now_ms().max(order.updated_at);
    // The version in the WHERE makes a concurrent update of the same order lose cleanly.
    let updated = sqlx::query(
        "UPDATE orders SET customer = $1, status = $2, items = $3, total_cents = $4,
             version = $5, updated_at = $6
         WHERE id = $7 AND version = $8",
    )
    .bind(&order.customer)
    .bind(order.status.as_str())
    .bind(items_json(&order.items)?)
    .bind(order.total)
    .bind(order.version)
    .bind(order.updated_at)
    .bind(order.id.to_string())
    .bind(previous_version)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() != 1 {
        return Err(StoreError::VersionConflict {
            current: previous_version + 1,
            expected: previous_version,
        });
    }
    append_outbox(
        &mut tx,
        &change_of(&order, ChangeKind::Updated, order.version),
    )
    .await?;
    tx.commit().await?;
    Ok(order)
}

/// Deletes the order `id` of `owner`, with its `deleted` change (one version up).
pub async fn delete(db: &Db, owner: &str, id: Uuid) -> Result<(), StoreError> {
    let mut tx = db.begin_write().await?;
    let mut order = get_in(&mut *tx, owner, id).await?;
    let deleted = sqlx::query("DELETE FROM orders WHERE id = $1 AND version = $2")
        .bind(order.id.to_string())
        .bind(order.version)
        .execute(&mut *tx)
        .await?;
    if deleted.rows_affected() != 1 {
        return Err(StoreError::NotFound);
    }
    order.updated_at = now_ms().max(order.updated_at);
    append_outbox(
        &mut tx,
        &change_of(&order, ChangeKind::Deleted, order.version + 1),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// An outbox row still to be acknowledged by one destination or both.
#[derive(Debug, Clone)]
pub struct Pending {
    pub position: i64,
    pub change_id: String,
    pub kind: String,
    pub event_subject: String,
    pub body: String,
    pub queue_sent: bool,
    pub topic_sent: bool,
}

/// Up to `limit` unacknowledged outbox rows, oldest first.
pub async fn pending(db: &Db, limit: i64) -> Result<Vec<Pending>, StoreError> {
    let rows = sqlx::query(
        "SELECT position, change_id, kind, event_subject, body, queue_sent, topic_sent
         FROM outbox WHERE queue_sent = 0 OR topic_sent = 0 ORDER BY position LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Pending {
                position: row.try_get("position")?,
                change_id: row.try_get("change_id")?,
                kind: row.try_get("kind")?,
                event_subject: row.try_get("event_subject")?,
                body: row.try_get("body")?,
                queue_sent: row.try_get::<i64, _>("queue_sent")? != 0,
                topic_sent: row.try_get::<i64, _>("topic_sent")? != 0,
            })
        })
        .collect()
}

/// How many outbox rows wait for an acknowledgement.
pub async fn pending_count(db: &Db) -> Result<i64, StoreError> {
    Ok(
        sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE queue_sent = 0 OR topic_sent = 0")
            .fetch_one(&db.pool)
            .await?
            .try_get("n")?,
    )
}

/// How many outbox rows are kept (published or not).
pub async fn stored_count(db: &Db) -> Result<i64, StoreError> {
    Ok(sqlx::query("SELECT COUNT(*) AS n FROM outbox")
        .fetch_one(&db.pool)
        .await?
        .try_get("n")?)
}

/// Deletes the rows both destinations acknowledged that were written before `before_ms`;
/// how many.
pub async fn prune_published(db: &Db, before_ms: i64) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "DELETE FROM outbox WHERE queue_sent = 1 AND topic_sent = 1 AND created_at <= $1",
    )
    .bind(before_ms)
    .execute(&db.pool)
    .await?
    .rows_affected())
}

/// Which destination acknowledged.
#[derive(Debug, Clone, Copy)]
pub enum Destination {
    Queue,
    Topic,
}

/// Records that `destination` acknowledged the rows at `positions`.
pub async fn mark_sent(
    db: &Db,
    destination: Destination,
    positions: &[i64],
) -> Result<(), StoreError> {
    let statement = match destination {
        Destination::Queue => "UPDATE outbox SET queue_sent = 1 WHERE position = $1",
        Destination::Topic => "UPDATE outbox SET topic_sent = 1 WHERE position = $1",
    };
    let mut tx = db.begin_write().await?;
    for position in positions {
        sqlx::query(statement)
            .bind(*position)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}
