//! The authorization service: accounts (argon2-hashed passwords), sessions that logout
//! revokes, and password recovery by a reset token sent by email and expiring. It sends the
//! "welcome" and "password reset" mails as [`EmailRequest`]s to the `emails` queue, so the
//! email service delivers them whether or not it is up at that moment; the request is
//! written to an outbox with the account or the reset token ([`mail_outbox`]), so it is not
//! lost if the broker is down either.
//!
//! Internal API (behind the gateway's secret): `POST /register`, `POST /login` →
//! `{token, email}`, `POST /logout`, `POST /recover`, `POST /reset`, `GET /session`
//! (`Authorization: Bearer` → `{email}` or 401).

mod handlers;
mod mail_outbox;
mod passwords;
mod store;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use clap::Args;
use tokio::sync::Notify;

use crate::common::bus::{Entity, check_entities, connect};
use crate::common::config::ServiceArgs;
use crate::common::contracts::EMAILS_QUEUE;
use crate::common::database::Db;
use crate::common::guard::InternalSecret;
use crate::common::http::{serve, shutdown_signal};
use crate::common::relay::RelayHandle;
use crate::common::time::parse_duration;

#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    #[command(flatten)]
    pub service: ServiceArgs,
    /// How long a password-reset token stays valid.
    #[arg(long, env = "SHOP_RESET_TOKEN_LIFETIME", default_value = "30m", value_parser = parse_duration)]
    pub reset_token_lifetime: Duration,
}

/// What the handlers share.
struct Auth {
    db: Db,
    /// Woken after a commit that queued a mail, so it goes out at once.
    mail_queued: Arc<Notify>,
    reset_token_lifetime: Duration,
}

pub async fn run(args: AuthArgs) -> anyhow::Result<()> {
    let service = &args.service;
    check_entities(&service.broker, &[Entity::Queue(EMAILS_QUEUE)]).await?;
    let db = Db::open(&service.data_dir, "auth", service.database_url.as_deref()).await?;
    store::migrate(&db).await?;
    let client = connect(&service.broker)?;
    // Rows are deleted once sent: nothing is kept to prune.
    let relay = RelayHandle::spawn(
        mail_outbox::MailOutbox::new(db.clone(), &client),
        Duration::ZERO,
    );
    let auth = Arc::new(Auth {
        db,
        mail_queued: Arc::clone(&relay.changed),
        reset_token_lifetime: args.reset_token_lifetime,
    });
    let api = Router::new()
        .route("/register", post(handlers::register))
        .route("/login", post(handlers::login))
        .route("/logout", post(handlers::logout))
        .route("/recover", post(handlers::recover))
        .route("/reset", post(handlers::reset))
        .route("/session", get(handlers::session))
        .with_state(auth);
    let secret = InternalSecret::new(&service.internal_secret);
    let served = serve(service.listen, secret, api, shutdown_signal()).await;
    relay.stop().await;
    // Bounded: with the broker already gone the connection cannot close cleanly.
    if tokio::time::timeout(Duration::from_secs(5), client.close())
        .await
        .is_err()
    {
        tracing::warn!("the Service Bus connection did not close in time; leaving anyway");
    }
    served
}
