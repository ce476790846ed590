//! The orders service: the main store of orders (create, update, delete, list, view;
//! prices, totals, status). Every change is committed together with an outbox row
//! ([`store`]), and the [`publisher`] sends the outbox to the `order-changes` queue and the
//! `order-events` topic — step 1 of the article's flow, without losing a change while the
//! broker is down.

pub mod api;
pub mod publisher;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::common::bus::{self, Entity};
use crate::common::config::ServiceArgs;
use crate::common::contracts::{ORDER_CHANGES_QUEUE, ORDER_EVENTS_TOPIC};
use crate::common::database::Db;
use crate::common::guard::InternalSecret;
use crate::common::http::{serve, shutdown_signal};
use crate::common::relay::RelayHandle;
use crate::common::time::parse_duration;

#[derive(Debug, Clone, Args)]
pub struct OrdersArgs {
    #[command(flatten)]
    pub service: ServiceArgs,
    /// How long a published change stays in the outbox (`1d`, `10m`, `0s`), for looking
    /// into; then it is deleted.
    #[arg(long, value_parser = parse_duration, default_value = "1d")]
    pub outbox_retention: Duration,
}

pub async fn run(
    OrdersArgs {
        service: args,
        outbox_retention,
    }: OrdersArgs,
) -> anyhow::Result<()> {
    let db = Db::open(&args.data_dir, "orders", args.database_url.as_deref()).await?;
    store::create_schema(&db).await?;
    bus::check_entities(
        &args.broker,
        &[
            Entity::Queue(ORDER_CHANGES_QUEUE),
            Entity::Topic(ORDER_EVENTS_TOPIC),
        ],
    )
    .await?;
    let client = bus::connect(&args.broker)?;
    let relay = RelayHandle::spawn(
        publisher::OrdersOutbox::new(db.clone(), &client),
        outbox_retention,
    );
    let state = api::OrdersState {
        db,
        outbox_changed: Arc::clone(&relay.changed),
        relay_stats: Arc::clone(&relay.stats),
    };
    let served = serve(
        args.listen,
        InternalSecret::new(&args.internal_secret),
        api::router(state),
        shutdown_signal(),
    )
    .await;
    relay.stop().await;
    client.close().await;
    served
}
