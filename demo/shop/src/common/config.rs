//! The configuration every service process takes on its command line (the supervisor
//! passes it; the internal secret comes through the environment so it is not in `ps`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

/// Busbar's development connection string for a broker on `127.0.0.1:port`.
pub fn development_connection_string(port: u16) -> String {
    format!(
        "Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=RootManageSharedAccessKey;\
         SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true"
    )
}

/// What every service is started with.
#[derive(Debug, Clone, Args)]
pub struct ServiceArgs {
    /// Where the service keeps its SQLite database (`<data-dir>/<service>.db`).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Loopback address to serve its HTTP API on.
    #[arg(long)]
    pub listen: SocketAddr,
    /// The Service Bus connection string.
    #[arg(long, env = "SHOP_BROKER")]
    pub broker: String,
    /// A PostgreSQL URL (`postgres://...`) to use instead of the SQLite file.
    #[arg(long, env = "SHOP_DATABASE_URL")]
    pub database_url: Option<String>,
    /// The secret the gateway adds to every request (`x-shop-internal`).
    #[arg(long, env = "SHOP_INTERNAL_SECRET", hide_env_values = true)]
    pub internal_secret: String,
    /// Another service's base URL, as `name=http://127.0.0.1:PORT` (repeatable).
    #[arg(long = "peer", value_parser = parse_peer)]
    pub peers: Vec<(String, String)>,
}

impl ServiceArgs {
    /// The base URLs of the other services by name.
    pub fn peer_map(&self) -> BTreeMap<String, String> {
        self.peers.iter().cloned().collect()
    }

    /// The base URL of the service `name`, or an error naming the missing `--peer`.
    pub fn peer(&self, name: &str) -> anyhow::Result<String> {
        self.peers
            .iter()
            .find(|(peer, _)| peer == name)
            .map(|(_, url)| url.clone())
            .ok_or_else(|| anyhow::anyhow!("no --peer {name}=URL given"))
    }
}

fn parse_peer(text: &str) -> Result<(String, String), String> {
    let (name, url) = text
        .split_once('=')
        .ok_or_else(|| format!("'{text}' is not name=URL"))?;
    if name.is_empty() || !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("'{text}' is not name=http://HOST:PORT"));
    }
    Ok((name.to_owned(), url.trim_end_matches('/').to_owned()))
}
