//! [`ServiceBusClient`]: one AMQP connection shared by every sender and receiver made from
//! it, opened on first use and again after it drops, with a `$cbs` token per entity kept
//! fresh.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::{ConnectOptions, Connection, SERVICE_BUS_WEBSOCKET_PATH, Sasl, Transport};

use super::connection_string::{ConnectionString, split_endpoint};
use super::error::{ErrorKind, RetryOptions, ServiceBusError, ServiceBusResult};
use super::receiver::{ServiceBusReceiver, ServiceBusReceiverOptions};
use super::sender::ServiceBusSender;

/// How the AMQP bytes travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServiceBusTransport {
    /// AMQP over TCP: TLS on 5671 for Service Bus, plain for the emulator and Busbar.
    #[default]
    Amqp,
    /// AMQP over a WebSocket at `/$servicebus/websocket` (plain `ws://` only; Busbar serves
    /// it on its HTTP port, which [`ServiceBusClientOptions::custom_endpoint_address`] names).
    AmqpOverWebSocket,
}

/// Options of a [`ServiceBusClient`].
#[derive(Debug, Clone)]
pub struct ServiceBusClientOptions {
    /// How the AMQP bytes travel.
    pub transport: ServiceBusTransport,
    /// Trust exactly the CA certificates in this PEM file (a self-hosted broker's) instead
    /// of the public roots.
    pub tls_ca: Option<PathBuf>,
    /// A complete TLS configuration; takes precedence over `tls_ca`.
    pub tls_config: Option<Arc<rustls::ClientConfig>>,
    /// Applied to the operations that are safe to repeat.
    pub retry: RetryOptions,
    /// Connect here (`host:port`, or a URL) instead of the endpoint's host and port; tokens
    /// and TLS still name the endpoint's host.
    pub custom_endpoint_address: Option<String>,
    /// Lifetime of the tokens minted from a key; they are renewed when 90% of it has passed.
    pub token_lifetime: Duration,
    /// The AMQP container-id (a random one when `None`).
    pub identifier: Option<String>,
}

impl Default for ServiceBusClientOptions {
    fn default() -> Self {
        ServiceBusClientOptions {
            transport: ServiceBusTransport::Amqp,
            tls_ca: None,
            tls_config: None,
            retry: RetryOptions::default(),
            custom_endpoint_address: None,
            token_lifetime: Duration::from_secs(3600),
            identifier: None,
        }
    }
}

enum Credential {
    Key {
        name: String,
        key: String,
    },
    /// A token given whole: sent as it is, never renewed.
    Token(String),
}

/// A token put on the current connection.
struct Claim {
    /// Renew at this time; `None` for tokens we cannot renew.
    refresh_at: Option<Instant>,
}

#[derive(Default)]
struct ConnectionState {
    connection: Option<Connection>,
    generation: u64,
    claims: HashMap<String, Claim>,
}

pub(crate) struct ClientInner {
    pub(crate) connection_string: ConnectionString,
    pub(crate) options: ServiceBusClientOptions,
    address: String,
    connect_options: ConnectOptions,
    credential: Credential,
    state: Mutex<ConnectionState>,
}

/// The entry point: makes senders and receivers that share one connection.
///
/// ```no_run
/// use busbar_client::{ServiceBusClient, ServiceBusClientOptions, ServiceBusMessage};
///
/// # async fn run() -> Result<(), busbar_client::ServiceBusError> {
/// let client = ServiceBusClient::from_connection_string(
///     "Endpoint=sb://localhost:5672;SharedAccessKeyName=RootManageSharedAccessKey;\
///      SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true",
///     ServiceBusClientOptions::default(),
/// )?;
/// let sender = client.create_sender("orders");
/// sender.send_message(ServiceBusMessage::new("hello")).await?;
/// client.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ServiceBusClient {
    pub(crate) inner: Arc<ClientInner>,
}

impl std::fmt::Debug for ServiceBusClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceBusClient")
            .field("endpoint", &self.inner.connection_string.endpoint)
            .field("address", &self.inner.address)
            .finish_non_exhaustive()
    }
}

impl ServiceBusClient {
    /// A client for the namespace of `connection_string`. Nothing is connected until the
    /// first operation needs it.
    pub fn from_connection_string(
        connection_string: &str,
        options: ServiceBusClientOptions,
    ) -> ServiceBusResult<ServiceBusClient> {
        let cs = ConnectionString::parse(connection_string)?;
        let credential = match (
            &cs.shared_access_key_name,
            &cs.shared_access_key,
            &cs.shared_access_signature,
        ) {
            (_, _, Some(token)) => Credential::Token(token.clone()),
            (Some(name), Some(key), None) => Credential::Key {
                name: name.clone(),
                key: key.clone(),
            },
            _ => {
                return Err(ServiceBusError::invalid(
                    "the connection string has no credentials",
                ));
            }
        };
        let address = match &options.custom_endpoint_address {
            Some(custom) => {
                let (host, port) = split_endpoint(custom)?;
                let port = port.unwrap_or(cs.port());
                if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                }
            }
            None => cs.socket_address(),
        };
        let tls = if cs.use_development_emulator {
            None
        } else if let Some(config) = &options.tls_config {
            Some(config.clone())
        } else if let Some(ca) = &options.tls_ca {
            Some(crate::tls_config_trusting(ca)?)
        } else {
            Some(crate::tls::tls_config_public_roots()?)
        };
        let transport = match options.transport {
            ServiceBusTransport::Amqp => Transport::Tcp,
            ServiceBusTransport::AmqpOverWebSocket => Transport::WebSocket {
                path: SERVICE_BUS_WEBSOCKET_PATH.to_owned(),
            },
        };
        let connect_options = ConnectOptions {
            sasl: Sasl::Anonymous,
            hostname: Some(cs.host.clone()),
            container_id: options.identifier.clone(),
            // Service Bus drops connections silent for long; heartbeats keep ours alive.
            idle_timeout: Some(Duration::from_secs(120)),
            connect_timeout: options.retry.try_timeout,
            tls,
            transport,
            ..ConnectOptions::default()
        };
        Ok(ServiceBusClient {
            inner: Arc::new(ClientInner {
                connection_string: cs,
                options,
                address,
                connect_options,
                credential,
                state: Mutex::new(ConnectionState::default()),
            }),
        })
    }

    /// The `host[:port]` of the namespace.
    pub fn fully_qualified_namespace(&self) -> String {
        self.inner.connection_string.fully_qualified_namespace()
    }

    /// A sender to a queue or topic. The link is attached on the first send.
    pub fn create_sender(&self, queue_or_topic: &str) -> ServiceBusSender {
        ServiceBusSender::new(self.clone(), queue_or_topic.to_owned())
    }

    /// A receiver from a queue (or its dead-letter subqueue, see
    /// [`ServiceBusReceiverOptions::sub_queue`]). The link is attached on the first receive.
    pub fn create_receiver(
        &self,
        queue: &str,
        options: ServiceBusReceiverOptions,
    ) -> ServiceBusReceiver {
        ServiceBusReceiver::new(self.clone(), queue.to_owned(), options)
    }

    /// A receiver from a topic's subscription.
    pub fn create_receiver_for_subscription(
        &self,
        topic: &str,
        subscription: &str,
        options: ServiceBusReceiverOptions,
    ) -> ServiceBusReceiver {
        ServiceBusReceiver::new(
            self.clone(),
            subscription_path(topic, subscription),
            options,
        )
    }

    /// Closes the shared connection; senders and receivers reopen it if used again.
    pub async fn close(&self) {
        let connection = self.inner.state.lock().await.connection.take();
        if let Some(connection) = connection
            && let Err(error) = connection.close().await
        {
            tracing::debug!(%error, "closing the connection");
        }
    }

    pub(crate) fn retry(&self) -> &RetryOptions {
        &self.inner.options.retry
    }

    /// The open connection (opening it if needed) with a token for `entity` put on it,
    /// and the connection's generation (a new one after every reconnect).
    pub(crate) async fn connection_for(&self, entity: &str) -> ServiceBusResult<(Connection, u64)> {
        let mut state = self.inner.state.lock().await;
        let connection = match &state.connection {
            Some(c) if !c.is_closed() => c.clone(),
            _ => {
                let connection =
                    Connection::connect(&self.inner.address, self.inner.connect_options.clone())
                        .await?;
                state.generation += 1;
                state.claims.clear();
                state.connection = Some(connection.clone());
                tokio::spawn(refresh_tokens(
                    Arc::downgrade(&self.inner),
                    state.generation,
                ));
                tracing::debug!(address = %self.inner.address, generation = state.generation, "connected");
                connection
            }
        };
        let audience = self.inner.audience(entity);
        if let std::collections::hash_map::Entry::Vacant(slot) = state.claims.entry(audience) {
            let claim = self.inner.put_token(&connection, slot.key()).await?;
            slot.insert(claim);
        }
        Ok((connection, state.generation))
    }
}

impl ClientInner {
    fn audience(&self, entity: &str) -> String {
        format!(
            "sb://{}/{}",
            self.connection_string.fully_qualified_namespace(),
            entity
        )
    }

    async fn put_token(&self, connection: &Connection, audience: &str) -> ServiceBusResult<Claim> {
        let (token, refresh_at) = match &self.credential {
            Credential::Key { name, key } => {
                let lifetime = self.options.token_lifetime;
                let expiry = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs()
                    + lifetime.as_secs().max(1);
                let token = crate::sas_token(audience, name, key, expiry);
                (token, Some(Instant::now() + lifetime.mul_f64(0.9)))
            }
            Credential::Token(token) => (token.clone(), None),
        };
        connection
            .put_token(audience, &token)
            .await
            .map_err(|e| match e {
                crate::Error::PutToken {
                    status,
                    description,
                } => ServiceBusError::new(
                    if status == 404 {
                        ErrorKind::MessagingEntityNotFound
                    } else {
                        ErrorKind::Unauthorized
                    },
                    format!("the service refused the token for {audience}: {status} {description}"),
                ),
                other => other.into(),
            })?;
        Ok(Claim { refresh_at })
    }
}

/// Renews the tokens of one connection generation before they expire; ends with it.
async fn refresh_tokens(client: Weak<ClientInner>, generation: u64) {
    const IDLE_CHECK: Duration = Duration::from_secs(60);
    loop {
        let next = {
            let Some(inner) = client.upgrade() else {
                return;
            };
            let mut state = inner.state.lock().await;
            let Some(connection) = state.connection.clone() else {
                return;
            };
            if state.generation != generation || connection.is_closed() {
                return;
            }
            let now = Instant::now();
            let due: Vec<String> = state
                .claims
                .iter()
                .filter(|(_, c)| c.refresh_at.is_some_and(|at| at <= now))
                .map(|(audience, _)| audience.clone())
                .collect();
            for audience in due {
                match inner.put_token(&connection, &audience).await {
                    Ok(claim) => {
                        tracing::debug!(%audience, "token renewed");
                        state.claims.insert(audience, claim);
                    }
                    Err(error) => {
                        // Links of the entity will be dropped when the old token expires;
                        // their next use reconnects and tries again.
                        tracing::warn!(%audience, %error, "renewing the token failed");
                        state.claims.remove(&audience);
                    }
                }
            }
            state
                .claims
                .values()
                .filter_map(|c| c.refresh_at)
                .min()
                .unwrap_or(now + IDLE_CHECK)
                .min(now + IDLE_CHECK)
        };
        tokio::time::sleep_until(next).await;
    }
}

/// `topic/Subscriptions/subscription`.
pub(crate) fn subscription_path(topic: &str, subscription: &str) -> String {
    format!("{topic}/Subscriptions/{subscription}")
}
