//! The authorization service's own database: accounts, sessions and password-reset tokens.
//! Tokens are kept as digests (see [`super::passwords::token_digest`]); a session is valid
//! until logout (or a password reset) revokes it, a reset token until it expires or is used.
//! The mails an account change asks for are written to `mail_outbox` in the change's own
//! transaction ([`super::mail_outbox`] sends them), so none is lost while the broker is down.

use sqlx::{AnyPool, Row};
use uuid::Uuid;

use crate::common::contracts::EmailRequest;
use crate::common::database::{Db, DbError};
use crate::common::time::now_ms;

/// The tables, created if missing (portable SQL: SQLite and PostgreSQL).
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS users (
        email TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        created_at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS sessions (
        token_digest TEXT PRIMARY KEY,
        email TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        revoked_at BIGINT)",
    "CREATE TABLE IF NOT EXISTS reset_tokens (
        token_digest TEXT PRIMARY KEY,
        email TEXT NOT NULL,
        expires_at BIGINT NOT NULL,
        used_at BIGINT)",
    // Mails to put on the `emails` queue; a row is deleted once the broker has it (a reset
    // mail carries its token in clear, which should not outlive the sending).
    "CREATE TABLE IF NOT EXISTS mail_outbox (
        position {serial},
        message_id TEXT NOT NULL UNIQUE,
        body TEXT NOT NULL,
        created_at BIGINT NOT NULL)",
];

pub async fn migrate(db: &Db) -> Result<(), DbError> {
    db.schema(SCHEMA).await
}

/// Writes `mail` to the outbox inside `tx`; its message id is the row's own.
async fn queue_mail(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    mail: &EmailRequest,
) -> Result<(), sqlx::Error> {
    let body = serde_json::to_string(mail).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query("INSERT INTO mail_outbox (message_id, body, created_at) VALUES ($1, $2, $3)")
        .bind(Uuid::new_v4().to_string())
        .bind(body)
        .bind(now_ms())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Adds an account and queues its `welcome` mail, in one transaction; `false` (and
/// nothing done) when the address is taken.
pub async fn insert_user(
    db: &Db,
    email: &str,
    password_hash: &str,
    welcome: &EmailRequest,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let inserted = sqlx::query(
        "INSERT INTO users (email, password_hash, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (email) DO NOTHING",
    )
    .bind(email)
    .bind(password_hash)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    queue_mail(&mut tx, welcome).await?;
    tx.commit().await?;
    Ok(true)
}

/// The stored password hash of an account.
pub async fn password_hash(pool: &AnyPool, email: &str) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query("SELECT password_hash FROM users WHERE email = $1")
        .bind(email)
        .fetch_optional(pool)
        .await?;
    row.map(|row| row.try_get(0)).transpose()
}

pub async fn insert_session(
    pool: &AnyPool,
    token_digest: &str,
    email: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO sessions (token_digest, email, created_at) VALUES ($1, $2, $3)")
        .bind(token_digest)
        .bind(email)
        .bind(now_ms())
        .execute(pool)
        .await?;
    Ok(())
}

/// The account of a session that has not been revoked.
pub async fn session_email(
    pool: &AnyPool,
    token_digest: &str,
) -> Result<Option<String>, sqlx::Error> {
    let row =
        sqlx::query("SELECT email FROM sessions WHERE token_digest = $1 AND revoked_at IS NULL")
            .bind(token_digest)
            .fetch_optional(pool)
            .await?;
    row.map(|row| row.try_get(0)).transpose()
}

/// Revokes one session; `false` if it was unknown or already revoked.
pub async fn revoke_session(pool: &AnyPool, token_digest: &str) -> Result<bool, sqlx::Error> {
    let revoked = sqlx::query(
        "UPDATE sessions SET revoked_at = $1 WHERE token_digest = $2 AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(token_digest)
    .execute(pool)
    .await?;
    Ok(revoked.rows_affected() == 1)
}

/// Keeps a reset token and queues the `mail` that carries it, in one transaction.
pub async fn insert_reset_token(
    db: &Db,
    token_digest: &str,
    email: &str,
    expires_at: i64,
    mail: &EmailRequest,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    sqlx::query("INSERT INTO reset_tokens (token_digest, email, expires_at) VALUES ($1, $2, $3)")
        .bind(token_digest)
        .bind(email)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
    queue_mail(&mut tx, mail).await?;
    tx.commit().await?;
    Ok(())
}

/// Sets a new password with a reset token, in one transaction: the token is used up, the
/// password replaced and every session of the account revoked. `None` when the token is
/// unknown, used or expired; otherwise the account's address.
pub async fn reset_password(
    pool: &AnyPool,
    token_digest: &str,
    new_password_hash: &str,
) -> Result<Option<String>, sqlx::Error> {
    let now = now_ms();
    let mut transaction = pool.begin().await?;
    let row = sqlx::query(
        "UPDATE reset_tokens SET used_at = $1
         WHERE token_digest = $2 AND used_at IS NULL AND expires_at > $1
         RETURNING email",
    )
    .bind(now)
    .bind(token_digest)
    .fetch_optional(&mut *transaction)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let email: String = row.try_get(0)?;
    sqlx::query("UPDATE users SET password_hash = $1 WHERE email = $2")
        .bind(new_password_hash)
        .bind(&email)
        .execute(&mut *transaction)
        .await?;
    sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE email = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(&email)
        .execute(&mut *transaction)
        .await?;
    transaction.commit().await?;
    Ok(Some(email))
}
