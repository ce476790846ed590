//! `shop`: the article's system — gateway, authorization, email, orders and analytics, each
//! its own process with its own database, keeping their data in step through Busbar.
//!
//! `shop up` starts the broker and every service (see `shop::supervisor`); the hidden
//! subcommands `shop broker` and `shop service <name>` are the processes it starts, one
//! OS process each, so a service can be stopped or killed on its own.

use clap::{Parser, Subcommand};
use shop::common::config::ServiceArgs;
use shop::{analytics, auth, broker, email, gateway, orders, supervisor};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "shop",
    version,
    about = "The article's five services on Busbar"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start Busbar and every service; print the gateway's address once all are ready.
    Up(supervisor::UpArgs),
    /// Run the broker with the shop's entities (started by `up`).
    #[command(hide = true)]
    Broker(broker::BrokerArgs),
    /// Run one service (started by `up`).
    #[command(hide = true, subcommand)]
    Service(ServiceCommand),
}

/// The services, each started as `shop service <name> ...`. Add a variant here and a line
/// to `shop::supervisor::SERVICES` for a new one.
#[derive(Debug, Subcommand)]
enum ServiceCommand {
    Orders(orders::OrdersArgs),
    Analytics(analytics::AnalyticsArgs),
    Gateway(ServiceArgs),
    Auth(auth::AuthArgs),
    Email(email::EmailArgs),
}

impl Command {
    fn process_name(&self) -> &'static str {
        match self {
            Command::Up(_) => "up",
            Command::Broker(_) => "broker",
            Command::Service(ServiceCommand::Orders(_)) => "orders",
            Command::Service(ServiceCommand::Analytics(_)) => "analytics",
            Command::Service(ServiceCommand::Gateway(_)) => "gateway",
            Command::Service(ServiceCommand::Auth(_)) => "auth",
            Command::Service(ServiceCommand::Email(_)) => "email",
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("SHOP_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // Every line a child writes says which process it came from.
    let span = tracing::info_span!("shop", process = cli.command.process_name());
    let _entered = span.enter();
    match cli.command {
        Command::Up(args) => supervisor::up(args).await,
        Command::Broker(args) => broker::run(args).await,
        Command::Service(ServiceCommand::Orders(args)) => orders::run(args).await,
        Command::Service(ServiceCommand::Analytics(args)) => analytics::run(args).await,
        Command::Service(ServiceCommand::Gateway(args)) => gateway::run(args).await,
        Command::Service(ServiceCommand::Auth(args)) => auth::run(args).await,
        Command::Service(ServiceCommand::Email(args)) => email::run(args).await,
    }
}
