//! The analytics service: its own projection of the orders, kept from the `order-changes`
//! queue ([`consumer`], [`projection`]), the figures the article names, and the dead-letter
//! monitor ([`dead_letters`]).

pub mod api;
pub mod consumer;
pub mod dead_letters;
pub mod projection;

use std::time::Duration;

use clap::Args;

use crate::common::bus::{self, Entity};
use crate::common::config::ServiceArgs;
use crate::common::contracts::{
    ALL_EVENTS_SUBSCRIPTION, EMAIL_CLOSED_SUBSCRIPTION, EMAIL_CREATED_SUBSCRIPTION, EMAILS_QUEUE,
    ORDER_CHANGES_QUEUE, ORDER_EVENTS_TOPIC,
};
use crate::common::database::Db;
use crate::common::guard::InternalSecret;
use crate::common::http::{serve, shutdown_signal};
use crate::common::time::parse_duration;

#[derive(Debug, Clone, Args)]
pub struct AnalyticsArgs {
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Instead of listening all the time, wake this often (`1h`, `30m`, `10s`), drain the
    /// queue, recalculate once and sleep, as the article suggests.
    #[arg(long, value_parser = parse_duration)]
    pub drain_every: Option<Duration>,
    /// Who is mailed when new dead letters appear.
    #[arg(long, default_value = "operations@shop.example")]
    pub alert_email: String,
    /// How often the dead-letter queues are looked at for new messages.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub dead_letter_check_every: Duration,
}

pub async fn run(args: AnalyticsArgs) -> anyhow::Result<()> {
    let service = &args.service;
    let db = Db::open(
        &service.data_dir,
        "analytics",
        service.database_url.as_deref(),
    )
    .await?;
    projection::create_schema(&db).await?;
    projection::rebuild_tallies(&db).await?;
    dead_letters::create_schema(&db).await?;
    bus::check_entities(
        &service.broker,
        &[
            Entity::Queue(ORDER_CHANGES_QUEUE),
            Entity::Queue(EMAILS_QUEUE),
            Entity::Subscription(ORDER_EVENTS_TOPIC, EMAIL_CREATED_SUBSCRIPTION),
            Entity::Subscription(ORDER_EVENTS_TOPIC, EMAIL_CLOSED_SUBSCRIPTION),
            Entity::Subscription(ORDER_EVENTS_TOPIC, ALL_EVENTS_SUBSCRIPTION),
        ],
    )
    .await?;
    let client = bus::connect(&service.broker)?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let processor = match args.drain_every {
        Some(interval) => {
            tasks.spawn(consumer::drain_every(
                client.clone(),
                db.clone(),
                interval,
                stopped.clone(),
            ));
            None
        }
        None => Some(consumer::start_processor(&client, db.clone()).await?),
    };
    tasks.spawn(dead_letters::alert_every(
        client.clone(),
        db.clone(),
        args.alert_email.clone(),
        args.dead_letter_check_every,
        stopped,
    ));
    let state = api::AnalyticsState {
        db,
        client: client.clone(),
    };
    let served = serve(
        service.listen,
        InternalSecret::new(&service.internal_secret),
        api::router(state),
        shutdown_signal(),
    )
    .await;
    let _ = stop.send(true);
    if let Some(processor) = processor {
        processor.stop().await;
    }
    while tasks.join_next().await.is_some() {}
    client.close().await;
    served
}
