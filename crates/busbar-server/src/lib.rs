//! The broker runtime: wires protocol, domain and storage together on tokio.
//!
//! Job: [`run`] opens the store in the data directory, rebuilds the queues from it,
//! creates the configured ones, serves AMQP connections (one task each, see
//! [`connection`]) and HTTP on the listeners, which find out what each connection speaks
//! (AMQP, HTTP, either inside TLS: see [`listener`]), runs the background sweep (lock expiry,
//! scheduled messages), and shuts down gracefully: stop accepting, finish in-flight
//! writes, close connections with a proper AMQP close, sync the store. After a failed
//! fsync it does the same, then reopens the store and serves again (see [`run`]).
//!
//! It must not hold protocol or queue rules of its own: those live in `busbar-amqp`,
//! `busbar-servicebus` and `busbar-core`. It also holds the broker configuration
//! ([`config`], the model) and reads Microsoft's emulator `Config.json` into it
//! ([`emulator_config`]).

mod admin_api;
pub mod broker;
pub mod config;
pub mod connection;
mod console;
pub mod emulator_config;
pub mod limits;
pub mod listener;
pub mod management;
pub mod otlp;
pub mod relaxed_json;
mod rest;
pub mod session_receivers;
mod websocket_handoff;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use busbar_core::SystemClock;
use busbar_store::log::{LogOptions, LogStore};
use busbar_store::{Store, StoreError, StoreHealth};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::broker::{Broker, OpenError};
use crate::config::{BrokerConfig, ConfigError, Durability};
use crate::connection::Handoff;
use crate::listener::{FrontDoor, Plaintext, Tls};

/// How often lock expiries and scheduled messages are checked.
const SWEEP_INTERVAL: Duration = Duration::from_millis(100);
/// Connections handed over from TLS or WebSockets that may wait to be served (while the
/// store reopens, say) before their hand-off waits too.
const HANDOFF_BACKLOG: usize = 128;
/// How long shutdown waits for connections to finish their in-flight work.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How often the accept loop looks whether the store was poisoned by a failed sync.
const STORE_CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// Pauses between attempts to reopen the store after a failure.
const REOPEN_RETRY_FIRST: Duration = Duration::from_millis(100);
const REOPEN_RETRY_MAX: Duration = Duration::from_secs(5);

/// The sockets the broker serves, bound by the caller (so tests can use port 0).
pub struct Listeners {
    /// AMQP, TLS (with AMQP or HTTP inside) and HTTP, told apart by their first bytes.
    pub amqp: TcpListener,
    /// TLS only (with AMQP or HTTP inside), for clients that dial 5671.
    pub amqps: TcpListener,
    /// HTTP and HTTPS.
    pub http: TcpListener,
}

impl Listeners {
    /// Binds the addresses from `config`.
    pub async fn bind(config: &BrokerConfig) -> Result<Listeners, RunError> {
        let bind = |address: std::net::SocketAddr| async move {
            TcpListener::bind(address)
                .await
                .map_err(|e| RunError::Bind(address.to_string(), e))
        };
        Ok(Listeners {
            amqp: bind(config.amqp_listen).await?,
            amqps: bind(config.amqps_listen).await?,
            http: bind(config.http_listen).await?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Tls(#[from] listener::TlsError),
    #[error("cannot listen on {0}: {1}")]
    Bind(String, std::io::Error),
    #[error("cannot use the data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("store: {0}")]
    Store(#[from] busbar_store::StoreError),
    #[error(transparent)]
    Otlp(#[from] otlp::EndpointError),
}

mod signals;
pub use signals::{StopSignal, stop_signal};
/// Runs the broker until `shutdown` completes.
///
/// A failed fsync poisons the store (its pages may already be gone, so the same file is
/// never synced again): the broker then stops serving, closes every connection with
/// `amqp:connection:forced`, drops its state and the store, reopens the log and replays
/// it as at start, and serves again on the same listeners. Meanwhile `/health` answers
/// 503 with the reason and new connections wait in the listener's backlog.
pub async fn run(
    config: BrokerConfig,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let policies = config.effective_policies()?;
    // Every AMQP connection arrives here, from the listeners (plain, or inside TLS) and
    // from whatever else carries AMQP (WebSockets).
    let (handoff, handoffs) = mpsc::channel::<Handoff>(HANDOFF_BACKLOG);
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| RunError::DataDir(config.data_dir.display().to_string(), e))?;
    let tls = Arc::new(Tls::open(config.tls_files(), &config.data_dir)?);
    let tracer = match &config.otlp_endpoint {
        Some(endpoint) => otlp::Tracer::start(endpoint)?,
        None => otlp::Tracer::default(),
    };
    let started = Instant::now();
    let mut broker = open_broker(&config, &policies, &tracer).await?;
    tracing::info!(
        queues = broker.entities().len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "store recovered"
    );

    let current = Arc::new(Current::serving(Arc::clone(&broker)));
    let health = busbar_http::HealthState::new().with_check({
        let current = Arc::clone(&current);
        Arc::new(move || current.problem())
    });
    let (doors_stop, doors_stopped) = watch::channel(false);
    tls.reload_on_hangup(doors_stopped.clone());
    let doors = {
        let admin: Arc<dyn busbar_http::Admin> = Arc::clone(&current) as _;
        let websocket = Arc::new(websocket_handoff::WebSocketHandoff(handoff.clone()));
        let management: Arc<dyn busbar_http::atom::Management> = Arc::clone(&current) as _;
        let router = busbar_http::router_with_admin(health.clone(), Arc::clone(&admin))
            .merge(busbar_http::amqp_websocket_router(websocket))
            .merge(busbar_http::console_api::router(Arc::new(
                console::BrokerConsole::new(Arc::clone(&current)),
            )));
        // Last: both must see every request, including those no route above matches. The
        // REST runtime API recognises its paths exactly (`.../messages...`), so it goes
        // first; the administration API takes whatever else carries `api-version`.
        let router = busbar_http::atom::with_management(router, admin, management);
        let messaging = rest::HttpMessaging::new(Arc::clone(&current), doors_stopped.clone());
        let router = busbar_http::rest::with_messaging(router, Arc::new(messaging));
        let front = FrontDoor::new(router, &tls, handoff, doors_stopped);
        let bound =
            |listener: &TcpListener, configured| listener.local_addr().unwrap_or(configured);
        let amqp_plaintext = Plaintext::on(
            bound(&listeners.amqp, config.amqp_listen),
            config.allow_plaintext,
        );
        let http_plaintext = Plaintext::on(
            bound(&listeners.http, config.http_listen),
            config.allow_plaintext,
        );
        let amqps_plaintext = Plaintext::tls_only(bound(&listeners.amqps, config.amqps_listen));
        [
            tokio::spawn(Arc::clone(&front).serve(listeners.amqp, "AMQP", amqp_plaintext)),
            tokio::spawn(Arc::clone(&front).serve(listeners.amqps, "AMQPS", amqps_plaintext)),
            tokio::spawn(front.serve(listeners.http, "HTTP", http_plaintext)),
        ]
    };
    health.set_ready(true);
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "broker ready"
    );

    let mut accepting = Accepting {
        handoffs,
        epoch: Instant::now(),
        next_connection: 1,
    };
    tokio::pin!(shutdown);
    loop {
        let stopped = accepting.serve(&broker, shutdown.as_mut(), &health).await;
        let store = Arc::clone(&broker.store);
        drop(broker);
        let reason = match stopped {
            Stopped::Shutdown => {
                store.close()?;
                break;
            }
            Stopped::StorePoisoned(reason) => reason,
        };
        current.recovering(format!(
            "reopening the store after a failed sync ({reason}); connections wait until it is replayed"
        ));
        if let Err(error) = store.close() {
            tracing::debug!(%error, "the poisoned store closed");
        }
        drop(store);
        let started = Instant::now();
        broker = match reopen(&config, &policies, &tracer, &current, shutdown.as_mut()).await? {
            Some(broker) => broker,
            None => break,
        };
        current.serve(Arc::clone(&broker));
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "store reopened and replayed after a failed sync; serving again"
        );
    }
    // Connections still waiting to be handed over are dropped now, not at the grace's end.
    drop(accepting);
    let _ = doors_stop.send(true);
    for door in doors {
        let _ = door.await;
    }
    tracing::info!("broker stopped");
    Ok(())
}

type ServedBroker = Broker<LogStore>;

/// Opens the store in the data directory, replays it and builds the broker on it, off the
/// async threads (replaying reads the whole log).
async fn open_broker(
    config: &BrokerConfig,
    policies: &[busbar_servicebus::sas::Policy],
    tracer: &otlp::Tracer,
) -> Result<Arc<ServedBroker>, RunError> {
    let config = config.clone();
    let tracer = tracer.clone();
    let policies = policies.to_vec();
    tokio::task::spawn_blocking(move || {
        let options = LogOptions {
            durability: match config.durability {
                Durability::Sync => busbar_store::Durability::Sync,
                Durability::Buffered => busbar_store::Durability::Buffered,
            },
            segment_bytes: u64::from(config.segment_mib) << 20,
        };
        let (store, recovered) = LogStore::open(&config.data_dir, options)?;
        let messages = recovered.messages.len();
        let mut broker = Broker::open(
            Arc::new(store),
            recovered,
            &config,
            policies,
            Arc::new(SystemClock),
        )?;
        broker.tracer = tracer;
        tracing::info!(messages, "log replayed");
        Ok(Arc::new(broker))
    })
    .await
    .map_err(|e| RunError::Store(StoreError::Io(format!("opening the store failed: {e}"))))?
}

/// Opens the store again after a failure, retrying while the disk refuses (it may still be
/// full, or failing); `None` if `shutdown` completes first. Damage in the log stops the
/// broker, as it would refuse to start.
async fn reopen(
    config: &BrokerConfig,
    policies: &[busbar_servicebus::sas::Policy],
    tracer: &otlp::Tracer,
    current: &Current,
    mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Result<Option<Arc<ServedBroker>>, RunError> {
    let mut pause = REOPEN_RETRY_FIRST;
    loop {
        let error = match open_broker(config, policies, tracer).await {
            Ok(broker) => return Ok(Some(broker)),
            Err(error) if error.is_transient() => error,
            Err(error) => return Err(error),
        };
        tracing::warn!(%error, retry_in_ms = pause.as_millis() as u64, "reopening the store failed");
        current.recovering(format!(
            "reopening the store after a failed sync; the last attempt failed, retrying: {error}"
        ));
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = shutdown.as_mut() => return Ok(None),
        }
        pause = (pause * 2).min(REOPEN_RETRY_MAX);
    }
}

impl RunError {
    /// Whether opening the store may succeed if simply tried again (the disk refused a
    /// read, write or sync), as opposed to damage or a bad catalog.
    fn is_transient(&self) -> bool {
        let store = match self {
            RunError::Store(error) | RunError::Open(OpenError::Store(error)) => error,
            _ => return false,
        };
        matches!(
            store,
            StoreError::Io(_) | StoreError::NoSpace(_) | StoreError::Poisoned(_)
        )
    }
}

/// Why a broker stopped serving.
enum Stopped {
    Shutdown,
    /// A failed sync poisoned its store.
    StorePoisoned(String),
}

/// The hand-offs of AMQP connections from the listeners (plain or inside TLS) and from
/// WebSockets, kept across store reopenings: while the store reopens, they wait.
struct Accepting {
    handoffs: mpsc::Receiver<Handoff>,
    epoch: Instant,
    next_connection: u64,
}

impl Accepting {
    fn next_id(&mut self) -> u64 {
        let id = self.next_connection;
        self.next_connection += 1;
        id
    }

    /// Serves connections and runs the sweep over `broker` until shutdown or until its
    /// store is poisoned; then closes every connection (after their in-flight writes) and
    /// stops the sweep.
    async fn serve(
        &mut self,
        broker: &Arc<ServedBroker>,
        mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
        health: &busbar_http::HealthState,
    ) -> Stopped {
        let (stop_tx, stop_rx) = watch::channel(false);
        let sweeper = {
            let broker = Arc::clone(broker);
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
        let mut store_check = tokio::time::interval(STORE_CHECK_INTERVAL);
        let mut connections = JoinSet::new();
        let stopped = loop {
            tokio::select! {
                Some(handoff) = self.handoffs.recv() => {
                    tracing::debug!(peer = %handoff.peer, "connection handed over");
                    let id = self.next_id();
                    connections.spawn(connection::serve(
                        Arc::clone(broker),
                        handoff.stream,
                        handoff.read_ahead,
                        handoff.peer,
                        id,
                        self.epoch,
                        stop_rx.clone(),
                    ));
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                _ = store_check.tick() => {
                    if let StoreHealth::Poisoned(reason) = broker.store.health() {
                        break Stopped::StorePoisoned(reason);
                    }
                }
                () = shutdown.as_mut() => break Stopped::Shutdown,
            }
        };

        match &stopped {
            Stopped::Shutdown => {
                tracing::info!("shutting down: no new connections; finishing in-flight work");
                health.set_ready(false);
            }
            Stopped::StorePoisoned(reason) => {
                tracing::error!(%reason, "a sync of the log failed: closing every connection to reopen the store");
                broker.set_stop_reason(
                    "The broker's store failed to sync and is being reopened; reconnect and retry what was not acknowledged."
                        .to_owned(),
                );
            }
        }
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("connections still open after the grace period; closing them");
            connections.abort_all();
            while connections.join_next().await.is_some() {}
        }
        let _ = sweeper.await;
        stopped
    }
}

/// The broker serving now, or why none is; what `/health` and the HTTP API look at.
struct Current(std::sync::Mutex<Serving>);

enum Serving {
    Broker(Arc<ServedBroker>),
    Recovering(String),
}

impl Current {
    fn serving(broker: Arc<ServedBroker>) -> Current {
        Current(std::sync::Mutex::new(Serving::Broker(broker)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Serving> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn serve(&self, broker: Arc<ServedBroker>) {
        *self.lock() = Serving::Broker(broker);
    }

    fn recovering(&self, reason: String) {
        *self.lock() = Serving::Recovering(reason);
    }

    fn broker(&self) -> Option<Arc<ServedBroker>> {
        match &*self.lock() {
            Serving::Broker(broker) => Some(Arc::clone(broker)),
            Serving::Recovering(_) => None,
        }
    }

    /// Why the broker can't do its work right now, for `/health`.
    fn problem(&self) -> Option<String> {
        let broker = match &*self.lock() {
            Serving::Broker(broker) => Arc::clone(broker),
            Serving::Recovering(reason) => return Some(reason.clone()),
        };
        match broker.store.health() {
            StoreHealth::Ok => None,
            StoreHealth::NoSpace(reason) => Some(format!(
                "the store is out of disk space, sends are refused until space is freed: {reason}"
            )),
            StoreHealth::Poisoned(reason) => Some(format!(
                "the store stopped writing after a failed sync and is being reopened: {reason}"
            )),
        }
    }
}

impl busbar_http::Admin for Current {
    fn authorize(
        &self,
        authorization: Option<&str>,
        path: &str,
        access: busbar_http::Access,
    ) -> Result<(), String> {
        match self.broker() {
            Some(broker) => busbar_http::Admin::authorize(&*broker, authorization, path, access),
            None => Err("The broker is reopening its store.".to_owned()),
        }
    }

    fn queues(&self) -> Vec<busbar_http::QueueInfo> {
        self.broker()
            .map(|b| busbar_http::Admin::queues(&*b))
            .unwrap_or_default()
    }

    fn queue(&self, name: &str) -> Option<busbar_http::QueueInfo> {
        self.broker()
            .and_then(|b| busbar_http::Admin::queue(&*b, name))
    }

    fn topics(&self) -> Vec<busbar_http::TopicInfo> {
        self.broker()
            .map(|b| busbar_http::Admin::topics(&*b))
            .unwrap_or_default()
    }

    fn topic(&self, name: &str) -> Option<busbar_http::TopicInfo> {
        self.broker()
            .and_then(|b| busbar_http::Admin::topic(&*b, name))
    }

    fn metrics(&self) -> busbar_http::metrics::Metrics {
        self.broker().map(|b| b.metrics()).unwrap_or_default()
    }

    fn unavailable(&self) -> Option<String> {
        match &*self.lock() {
            Serving::Broker(_) => None,
            Serving::Recovering(reason) => Some(reason.clone()),
        }
    }
}
