//! The email service: a processor on the `emails` queue renders each [`EmailRequest`] and
//! delivers it (SMTP when `--smtp` names a server, always recorded in its outbox table, which
//! is the mailbox). A permanent failure dead-letters the message at once with the reason; a
//! transient one abandons it, so it is delivered again and, after the queue's max delivery
//! count, dead-lettered by the broker.
//!
//! A second processor on the `email-created` subscription of `order-events` mails "order
//! created" and schedules a "your order is still open" reminder on the `emails` queue (a
//! scheduled message), whose sequence number it keeps; a third, on `email-closed` (closed
//! and deleted orders), cancels it.
//!
//! Internal API: `GET /mailbox` (the caller in `x-shop-user`) → the caller's mails, newest
//! first.

mod delivery;
mod order_events;
mod outbox;
mod requests;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use busbar_client::{
    ProcessErrorContext, ServiceBusClient, ServiceBusProcessor, ServiceBusProcessorOptions,
    ServiceBusSender,
};
use clap::Args;
use lettre::message::Mailbox;

use crate::common::bus::{Entity, check_entities, connect};
use crate::common::config::ServiceArgs;
use crate::common::contracts::{EMAIL_CREATED_SUBSCRIPTION, EMAILS_QUEUE, ORDER_EVENTS_TOPIC};
use crate::common::database::Db;
use crate::common::error::{ApiError, ApiResult};
use crate::common::guard::{InternalSecret, USER_HEADER};
use crate::common::http::{serve, shutdown_signal};
use crate::common::time::parse_duration;

/// The subscription of `order-events` that sees closed and deleted orders.
pub use crate::common::contracts::EMAIL_CLOSED_SUBSCRIPTION;

/// How long the processors may take to stop at shutdown.
const STOP_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Args)]
pub struct EmailArgs {
    #[command(flatten)]
    pub service: ServiceArgs,
    /// An SMTP server (`HOST:PORT`, plain SMTP) to deliver through; without it mails go only
    /// to the outbox (the mailbox page).
    #[arg(long, env = "SHOP_SMTP")]
    pub smtp: Option<String>,
    /// The sender of every mail.
    #[arg(
        long,
        env = "SHOP_MAIL_FROM",
        default_value = "The shop <shop@localhost>"
    )]
    pub mail_from: String,
    /// How long after its creation an order still open gets a reminder mail.
    #[arg(long, env = "SHOP_ORDER_REMINDER_AFTER", default_value = "1d", value_parser = parse_duration)]
    pub order_reminder_after: Duration,
}

/// What both processors and the mailbox share.
struct Mailer {
    db: Db,
    transport: delivery::Transport,
    from: Mailbox,
    /// The `emails` queue: order mails and reminders are queued like any other request.
    emails: ServiceBusSender,
    order_reminder_after: Duration,
}

pub async fn run(args: EmailArgs) -> anyhow::Result<()> {
    let service = &args.service;
    check_entities(
        &service.broker,
        &[
            Entity::Queue(EMAILS_QUEUE),
            Entity::Subscription(ORDER_EVENTS_TOPIC, EMAIL_CREATED_SUBSCRIPTION),
            Entity::Subscription(ORDER_EVENTS_TOPIC, EMAIL_CLOSED_SUBSCRIPTION),
        ],
    )
    .await?;
    let db = Db::open(&service.data_dir, "email", service.database_url.as_deref()).await?;
    outbox::migrate(&db).await?;
    let from = Mailbox::from_str(&args.mail_from)
        .map_err(|e| anyhow::anyhow!("--mail-from '{}': {e}", args.mail_from))?;
    let transport = delivery::Transport::new(args.smtp.as_deref())?;
    tracing::info!(delivery = transport.describe(), "email service");
    let client = connect(&service.broker)?;
    let mailer = Arc::new(Mailer {
        db,
        transport,
        from,
        emails: client.create_sender(EMAILS_QUEUE),
        order_reminder_after: args.order_reminder_after,
    });

    let requests = processor(&client, EMAILS_QUEUE, None);
    let handler_mailer = mailer.clone();
    requests
        .start(
            move |context| requests::handle(handler_mailer.clone(), context),
            report,
        )
        .await?;
    let mut order_events = Vec::new();
    for subscription in [EMAIL_CREATED_SUBSCRIPTION, EMAIL_CLOSED_SUBSCRIPTION] {
        let events = processor(&client, ORDER_EVENTS_TOPIC, Some(subscription));
        let handler_mailer = mailer.clone();
        events
            .start(
                move |context| order_events::handle(handler_mailer.clone(), context),
                report,
            )
            .await?;
        order_events.push(events);
    }

    let api = Router::new()
        .route("/mailbox", get(mailbox))
        .with_state(mailer);
    let served = serve(
        service.listen,
        InternalSecret::new(&service.internal_secret),
        api,
        shutdown_signal(),
    )
    .await;
    // Bounded: with the broker already gone, the processors' receivers cannot close cleanly.
    let stopped = tokio::time::timeout(STOP_GRACE, async {
        requests.stop().await;
        for events in &order_events {
            events.stop().await;
        }
        client.close().await;
    })
    .await;
    if stopped.is_err() {
        tracing::warn!("the processors did not stop within {STOP_GRACE:?}; leaving anyway");
    }
    served
}

fn processor(
    client: &ServiceBusClient,
    entity: &str,
    subscription: Option<&str>,
) -> ServiceBusProcessor {
    let options = ServiceBusProcessorOptions {
        max_concurrent_calls: 2,
        ..ServiceBusProcessorOptions::default()
    };
    client.create_processor(entity, subscription, options)
}

async fn report(error: ProcessErrorContext) {
    tracing::warn!(entity = %error.entity_path, source = ?error.source, error = %error.error, "email processor");
}

async fn mailbox(
    State(mailer): State<Arc<Mailer>>,
    headers: HeaderMap,
) -> ApiResult<Json<Vec<outbox::Mail>>> {
    let user = headers
        .get(USER_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|user| !user.is_empty())
        .ok_or_else(|| ApiError::unauthorized(format!("no {USER_HEADER}: whose mailbox?")))?;
    Ok(Json(outbox::mailbox(&mailer.db.pool, user).await?))
}
