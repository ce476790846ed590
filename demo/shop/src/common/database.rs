//! Each service's own database: a SQLite file in the data directory by default, PostgreSQL
//! when a URL is given. One code path for both through sqlx's `Any` driver; the SQL the
//! services write is the common subset (`$1` placeholders, `BIGINT`, `TEXT`,
//! `ON CONFLICT ... DO UPDATE`, `RETURNING`), and the one DDL difference, an auto-numbered
//! key, is [`Db::schema`]'s `{serial}`.

use std::path::Path;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A service's connection pool.
#[derive(Debug, Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot create the data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error("cannot open the database {0}: {1}")]
    Open(String, sqlx::Error),
    #[error("cannot create the tables: {0}")]
    Schema(sqlx::Error),
    #[error("unsupported database URL '{0}': give postgres://... (or nothing, for SQLite)")]
    Unsupported(String),
}

impl Db {
    /// Opens `url` if given, else `<data_dir>/<service>.db` (created if missing).
    pub async fn open(data_dir: &Path, service: &str, url: Option<&str>) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let (url, backend) = match url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                (url.to_owned(), Backend::Postgres)
            }
            Some(url) if url.starts_with("sqlite:") => (url.to_owned(), Backend::Sqlite),
            Some(url) => return Err(DbError::Unsupported(url.to_owned())),
            None => {
                std::fs::create_dir_all(data_dir)
                    .map_err(|e| DbError::DataDir(data_dir.display().to_string(), e))?;
                let file = data_dir.join(format!("{service}.db"));
                (
                    format!("sqlite://{}?mode=rwc", file.display()),
                    Backend::Sqlite,
                )
            }
        };
        let pool = AnyPoolOptions::new()
            // SQLite serialises writers anyway; a few readers beside the writer suffice.
            .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(30))
            .connect(&url)
            .await
            .map_err(|e| DbError::Open(url.clone(), e))?;
        if backend == Backend::Sqlite {
            // Readers do not wait for the writer; the setting stays with the file.
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await
                .map_err(|e| DbError::Open(url.clone(), e))?;
        }
        Ok(Db { pool, backend })
    }

    /// A transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`): a transaction that first reads and then writes while another
    /// connection committed would otherwise fail with "database is locked" instead of
    /// waiting its turn.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// Runs `CREATE TABLE IF NOT EXISTS ...` statements; `{serial}` becomes the backend's
    /// auto-numbered primary key.
    pub async fn schema(&self, statements: &[&str]) -> Result<(), DbError> {
        let serial = match self.backend {
            Backend::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
            Backend::Postgres => "BIGSERIAL PRIMARY KEY",
        };
        for statement in statements {
            sqlx::query(&statement.replace("{serial}", serial))
                .execute(&self.pool)
                .await
                .map_err(DbError::Schema)?;
        }
        Ok(())
    }
}
