//! The authorization service's own database: accounts, sessions and password-reset tokens.
//! Tokens are kept as digests (see [`super::passwords::token_digest`]); a session is valid
//! until logout (or a password reset) revokes it, a reset token until it expires or is used.

use sqlx::{AnyPool, Row};

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
];

pub async fn migrate(db: &Db) -> Result<(), DbError> {
    db.schema(SCHEMA).await
}

/// Adds an account; `false` when the address is taken.
pub async fn insert_user(
    pool: &AnyPool,
    email: &str,
    password_hash: &str,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO users (email, password_hash, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (email) DO NOTHING",
    )
    .bind(email)
    .bind(password_hash)
    .bind(now_ms())
    .execute(pool)
    .await?;
    Ok(inserted.rows_affected() == 1)
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

pub async fn insert_reset_token(
    pool: &AnyPool,
    token_digest: &str,
    email: &str,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO reset_tokens (token_digest, email, expires_at) VALUES ($1, $2, $3)")
        .bind(token_digest)
        .bind(email)
        .bind(expires_at)
        .execute(pool)
        .await?;
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
