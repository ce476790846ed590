//! `shop broker`: Busbar itself, through its public library API, with the shop's entities
//! (demo/shop/Config.json, built in) on a loopback AMQP port. Its own process, so the
//! failure tests can kill it with SIGKILL and start it again on the same data.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use crate::common::http::shutdown_signal;

/// The shop's entities, as `up` gives them to the broker.
pub const SHOP_ENTITIES: &str = include_str!("../Config.json");

#[derive(Debug, Clone, Args)]
pub struct BrokerArgs {
    /// The broker's store.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The loopback port for AMQP (and HTTP, which Busbar serves on the same port).
    #[arg(long)]
    pub port: u16,
    /// An emulator Config.json to use instead of the shop's.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub async fn run(args: BrokerArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => busbar_server::emulator_config::load_file(path),
        None => busbar_server::emulator_config::load_str(SHOP_ENTITIES),
    }
    .context("reading the entities")?;
    let loopback = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    config.data_dir = args.data_dir;
    config.amqp_listen = loopback(args.port);
    // Clients here dial the AMQP port only; the other listeners take any free port.
    config.amqps_listen = loopback(0);
    config.http_listen = loopback(0);
    let listeners = busbar_server::Listeners::bind(&config).await?;
    busbar_server::run(config, listeners, shutdown_signal()).await?;
    Ok(())
}
