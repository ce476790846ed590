//! The email service's own database: the outbox, a row per delivered mail (it is the
//! mailbox the gateway shows), and the pending order reminders with the sequence numbers of
//! their scheduled messages, so closing an order can cancel its reminder.

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
    "CREATE TABLE IF NOT EXISTS reminders (
        order_id TEXT PRIMARY KEY,
        recipient TEXT NOT NULL,
        sequence_number BIGINT NOT NULL,
        due_at BIGINT NOT NULL)",
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

/// The sequence number of an order's pending reminder.
pub async fn reminder(pool: &AnyPool, order_id: &str) -> Result<Option<i64>, sqlx::Error> {
    let row = sqlx::query("SELECT sequence_number FROM reminders WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(pool)
        .await?;
    row.map(|row| row.try_get(0)).transpose()
}

pub async fn insert_reminder(
    pool: &AnyPool,
    order_id: &str,
    recipient: &str,
    sequence_number: i64,
    due_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO reminders (order_id, recipient, sequence_number, due_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (order_id) DO UPDATE SET sequence_number = $3, due_at = $4",
    )
    .bind(order_id)
    .bind(recipient)
    .bind(sequence_number)
    .bind(due_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// Forgets an order's reminder (sent, or cancelled); `false` if there was none.
pub async fn remove_reminder(pool: &AnyPool, order_id: &str) -> Result<bool, sqlx::Error> {
    let removed = sqlx::query("DELETE FROM reminders WHERE order_id = $1")
        .bind(order_id)
        .execute(pool)
        .await?;
    Ok(removed.rows_affected() == 1)
}

/// Now, as a mail's `sent_at`.
pub fn sent_now() -> i64 {
    now_ms()
}
