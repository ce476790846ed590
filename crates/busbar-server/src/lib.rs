//! The broker runtime: wires protocol, domain and storage together on tokio.
//!
//! Job: [`run`] opens the store in the data directory, rebuilds the queues from it,
//! creates the configured ones, serves AMQP connections (one task each, see
//! [`connection`]) and the HTTP listener, runs the background sweep (lock expiry,
//! scheduled messages), and shuts down gracefully: stop accepting, finish in-flight
//! writes, close connections with a proper AMQP close, sync the store.
//!
//! It must not hold protocol or queue rules of its own: those live in `busbar-amqp`,
//! `busbar-servicebus` and `busbar-core`. It also parses the broker configuration,
//! including Microsoft's emulator `Config.json` ([`config`], [`emulator_config`]).

pub mod broker;
pub mod config;
pub mod connection;
pub mod emulator_config;
pub mod management;
pub mod sessions;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use busbar_core::SystemClock;
use busbar_store::log::{LogOptions, LogStore};
use busbar_store::{Store, StoreHealth};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::broker::{Broker, OpenError};
use crate::config::{BrokerConfig, ConfigError, Durability};

/// How often lock expiries and scheduled messages are checked.
const SWEEP_INTERVAL: Duration = Duration::from_millis(100);
/// How long shutdown waits for connections to finish their in-flight work.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The sockets the broker serves, bound by the caller (so tests can use port 0).
pub struct Listeners {
    pub amqp: TcpListener,
    pub http: TcpListener,
}

impl Listeners {
    /// Binds the addresses from `config`.
    pub async fn bind(config: &BrokerConfig) -> Result<Listeners, RunError> {
        let amqp = TcpListener::bind(config.amqp_listen)
            .await
            .map_err(|e| RunError::Bind(config.amqp_listen.to_string(), e))?;
        let http = TcpListener::bind(config.http_listen)
            .await
            .map_err(|e| RunError::Bind(config.http_listen.to_string(), e))?;
        Ok(Listeners { amqp, http })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {0}: {1}")]
    Bind(String, std::io::Error),
    #[error("cannot use the data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("store: {0}")]
    Store(#[from] busbar_store::StoreError),
}

/// Runs the broker until `shutdown` completes.
pub async fn run(
    config: BrokerConfig,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let policies = config.effective_policies()?;
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| RunError::DataDir(config.data_dir.display().to_string(), e))?;
    let options = LogOptions {
        durability: match config.durability {
            Durability::Sync => busbar_store::Durability::Sync,
            Durability::Buffered => busbar_store::Durability::Buffered,
        },
        segment_bytes: u64::from(config.segment_mib) << 20,
    };
    let started = Instant::now();
    let (store, recovered) = LogStore::open(&config.data_dir, options)?;
    let recovered_messages = recovered.messages.len();
    let store = Arc::new(store);
    let broker = Arc::new(Broker::open(
        Arc::clone(&store),
        recovered,
        &config,
        policies,
        Arc::new(SystemClock),
    )?);
    tracing::info!(
        queues = broker.entities().len(),
        messages = recovered_messages,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "store recovered"
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let health = busbar_http::HealthState::new().with_check({
        let store = Arc::clone(&store);
        Arc::new(move || match store.health() {
            StoreHealth::Ok => None,
            StoreHealth::NoSpace(reason) => Some(format!(
                "the store is out of disk space, sends are refused until space is freed: {reason}"
            )),
            StoreHealth::Poisoned(reason) => Some(format!(
                "the store stopped writing after a failed sync; restart the broker: {reason}"
            )),
        })
    });
    let http = {
        let mut stop = stop_rx.clone();
        let admin: Arc<dyn busbar_http::Admin> = Arc::clone(&broker) as _;
        let router = busbar_http::router_with_admin(health.clone(), admin);
        tokio::spawn(busbar_http::serve(listeners.http, router, async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        }))
    };
    let sweeper = {
        let broker = Arc::clone(&broker);
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(SWEEP_INTERVAL);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = interval.tick() => {
                        broker.sweep();
                        broker.publish_due();
                        broker.forward_dead_letters();
                    }
                    _ = stop.wait_for(|stopped| *stopped) => return,
                }
            }
        })
    };

    if let Ok(address) = listeners.amqp.local_addr() {
        tracing::info!(%address, "AMQP listener started");
    }
    health.set_ready(true);
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "broker ready"
    );

    let epoch = Instant::now();
    let mut connections = JoinSet::new();
    let mut next_connection: u64 = 1;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listeners.amqp.accept() => {
                match accepted {
                    Ok((stream, peer)) => {
                        tracing::debug!(%peer, "connection accepted");
                        let id = next_connection;
                        next_connection += 1;
                        connections.spawn(connection::serve(
                            Arc::clone(&broker),
                            stream,
                            id,
                            epoch,
                            stop_rx.clone(),
                        ));
                    }
                    Err(error) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut shutdown => break,
        }
    }

    tracing::info!("shutting down: no new connections; finishing in-flight work");
    health.set_ready(false);
    drop(listeners.amqp);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("connections still open after the grace period; closing them");
        connections.abort_all();
    }
    let _ = sweeper.await;
    let _ = http.await;
    store.close()?;
    tracing::info!("broker stopped");
    Ok(())
}
