//! The email service's own database: the outbox, a row per delivered mail (it is the
//! mailbox the gateway shows), and a row per order with the sequence number of its scheduled
//! reminder and whether the reminder is still wanted (`finished_at` unset), so closing an
//! order can cancel it.

use serde::Serialize;
use sqlx::{AnyPool, Row};

use crate::common::database::{Db, DbError};
use crate::common::time::now_ms;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS outbox (
        id {serial},
        message_id TEXT NOT NULL UNIQUE,
        recipient TEXT NOT NULL,
        subject TEXT NOT NULL,
        body TEXT NOT NULL,
        kind TEXT NOT NULL,
        sent_at BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS outbox_by_recipient ON outbox (recipient, sent_at)",
    "CREATE TABLE IF NOT EXISTS order_reminders (
        order_id TEXT PRIMARY KEY,
        sequence_number BIGINT,
        finished_at BIGINT)",
];

pub async fn migrate(db: &Db) -> Result<(), DbError> {
    db.schema(SCHEMA).await
}

/// A delivered mail as the mailbox shows it.
#[derive(Debug, Serialize)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
    /// Milliseconds since the Unix epoch.
    pub sent_at: i64,
}

/// Whether the mail of this message was delivered already (a redelivered message).
pub async fn delivered(pool: &AnyPool, message_id: &str) -> Result<bool, sqlx::Error> {
    let row = sqlx::query("SELECT 1 FROM outbox WHERE message_id = $1")
        .bind(message_id)
        .fetch_optional(pool)
        .await?;
    Ok(row.is_some())
}

/// Records a delivered mail; a second record of the same message is ignored.
pub async fn record(
    pool: &AnyPool,
    message_id: &str,
    mail: &Mail,
    kind: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO outbox (message_id, recipient, subject, body, kind, sent_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (message_id) DO NOTHING",
    )
    .bind(message_id)
    .bind(&mail.to)
    .bind(&mail.subject)
    .bind(&mail.body)
    .bind(kind)
    .bind(mail.sent_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// The mails delivered to `recipient`, newest first.
pub async fn mailbox(pool: &AnyPool, recipient: &str) -> Result<Vec<Mail>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT recipient, subject, body, sent_at FROM outbox
         WHERE recipient = $1 ORDER BY sent_at DESC, id DESC LIMIT 200",
    )
    .bind(recipient)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Mail {
                to: row.try_get(0)?,
                subject: row.try_get(1)?,
                body: row.try_get(2)?,
                sent_at: row.try_get(3)?,
            })
        })
        .collect()
}

/// Whether the order has a row at all: its reminder was scheduled, or it is closed.
pub async fn reminder_known(pool: &AnyPool, order_id: &str) -> Result<bool, sqlx::Error> {
    let row = sqlx::query("SELECT 1 FROM order_reminders WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(pool)
        .await?;
    Ok(row.is_some())
}

/// Whether the order's reminder is still wanted (scheduled, not sent, order not closed).
pub async fn reminder_pending(pool: &AnyPool, order_id: &str) -> Result<bool, sqlx::Error> {
    let row =
        sqlx::query("SELECT 1 FROM order_reminders WHERE order_id = $1 AND finished_at IS NULL")
            .bind(order_id)
            .fetch_optional(pool)
            .await?;
    Ok(row.is_some())
}

/// Keeps the sequence number of a scheduled reminder; `false` when the order's row exists
/// already (it was closed meanwhile: the caller cancels what it scheduled).
pub async fn keep_reminder(
    pool: &AnyPool,
    order_id: &str,
    sequence_number: i64,
) -> Result<bool, sqlx::Error> {
    let kept = sqlx::query(
        "INSERT INTO order_reminders (order_id, sequence_number) VALUES ($1, $2)
         ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(order_id)
    .bind(sequence_number)
    .execute(pool)
    .await?;
    Ok(kept.rows_affected() == 1)
}

/// Marks the order's reminder as no longer wanted (order closed, or reminder sent), in one
/// statement whichever of created and closed came first; answers the sequence number of a
/// reminder that was still pending, to cancel.
pub async fn finish_reminder(pool: &AnyPool, order_id: &str) -> Result<Option<i64>, sqlx::Error> {
    let row = sqlx::query(
        "INSERT INTO order_reminders (order_id, finished_at) VALUES ($1, $2)
         ON CONFLICT (order_id) DO UPDATE SET finished_at = $2
         WHERE order_reminders.finished_at IS NULL
         RETURNING sequence_number",
    )
    .bind(order_id)
    .bind(now_ms())
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|row| row.try_get::<Option<i64>, _>(0).ok().flatten()))
}

/// Now, as a mail's `sent_at`.
pub fn sent_now() -> i64 {
    now_ms()
}
