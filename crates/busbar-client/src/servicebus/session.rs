//! [`ServiceBusSessionReceiver`]: a receiver locked to one session of a session-enabled
//! queue or subscription (a named one, or the next the service has available), with the
//! session's state and lock.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::Stream;
use tokio::time::Instant;

use busbar_amqp::Value;

use super::client::{ServiceBusClient, subscription_path};
use super::error::{ErrorKind, ServiceBusError, ServiceBusResult};
use super::management::body;
use super::message::{ServiceBusReceivedMessage, from_millis, system_time};
use super::receiver::{
    DeadLetterOptions, ReceiverCore, ServiceBusReceiveMode, ServiceBusReceiverOptions, SubQueue,
    receiver_operations,
};

/// The source filter naming the session (a plain string; null for "any").
pub(crate) const SESSION_FILTER: &str = "com.microsoft:session-filter";
/// The attach property with the session lock's expiry, in .NET ticks.
const LOCKED_UNTIL_UTC: &str = "com.microsoft:locked-until-utc";
/// The attach property bounding the wait for a next available session (ms).
const TIMEOUT: &str = "com.microsoft:timeout";
/// The service's own wait for a next available session.
const DEFAULT_NEXT_SESSION_WAIT: Duration = Duration::from_secs(60);
/// .NET ticks (100 ns since year 1) at the Unix epoch.
const TICKS_AT_UNIX_EPOCH: i64 = 621_355_968_000_000_000;

/// Options of a session receiver.
#[derive(Debug, Clone, Default)]
pub struct ServiceBusSessionReceiverOptions {
    /// Peek-lock (the default) or receive-and-delete.
    pub receive_mode: ServiceBusReceiveMode,
    /// See [`ServiceBusReceiverOptions::prefetch_count`].
    pub prefetch_count: u32,
    /// Next available session: how long the service may wait for one before answering
    /// with [`ErrorKind::ServiceTimeout`], which is not retried (a minute, the service's
    /// default, when `None`). Retries after a failed connection fit within it.
    pub max_wait: Option<Duration>,
}

impl ServiceBusClient {
    /// A receiver locked to session `session_id` of `queue`; fails with
    /// [`ErrorKind::SessionCannotBeLocked`] while another receiver holds it.
    ///
    /// ```no_run
    /// # use busbar_client::{ServiceBusClient, ServiceBusSessionReceiverOptions};
    /// # async fn run(client: ServiceBusClient) -> Result<(), busbar_client::ServiceBusError> {
    /// let receiver = client
    ///     .accept_session("carts", "cart-42", ServiceBusSessionReceiverOptions::default())
    ///     .await?;
    /// let state = receiver.get_session_state().await?;
    /// for message in receiver.receive_messages(10, Some(std::time::Duration::from_secs(1))).await? {
    ///     receiver.complete_message(&message).await?;
    /// }
    /// receiver.set_session_state(Some(b"checked out".to_vec().into())).await?;
    /// # let _ = state; Ok(()) }
    /// ```
    pub async fn accept_session(
        &self,
        queue: &str,
        session_id: &str,
        options: ServiceBusSessionReceiverOptions,
    ) -> ServiceBusResult<ServiceBusSessionReceiver> {
        ServiceBusSessionReceiver::accept(self, queue.to_owned(), Some(session_id), options).await
    }

    /// A receiver locked to the next session of `queue` that has messages and no
    /// receiver; fails with [`ErrorKind::ServiceTimeout`] when none comes within
    /// [`ServiceBusSessionReceiverOptions::max_wait`].
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use busbar_client::{ErrorKind, ServiceBusClient, ServiceBusSessionReceiverOptions};
    /// # async fn run(client: ServiceBusClient) -> Result<(), busbar_client::ServiceBusError> {
    /// let options = ServiceBusSessionReceiverOptions {
    ///     max_wait: Some(Duration::from_secs(5)),
    ///     ..Default::default()
    /// };
    /// match client.accept_next_session("carts", options).await {
    ///     Ok(receiver) => println!("locked session {}", receiver.session_id()),
    ///     Err(e) if e.kind == ErrorKind::ServiceTimeout => println!("no session waiting"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn accept_next_session(
        &self,
        queue: &str,
        options: ServiceBusSessionReceiverOptions,
    ) -> ServiceBusResult<ServiceBusSessionReceiver> {
        ServiceBusSessionReceiver::accept(self, queue.to_owned(), None, options).await
    }

    /// [`ServiceBusClient::accept_session`] on a subscription.
    pub async fn accept_session_for_subscription(
        &self,
        topic: &str,
        subscription: &str,
        session_id: &str,
        options: ServiceBusSessionReceiverOptions,
    ) -> ServiceBusResult<ServiceBusSessionReceiver> {
        let path = subscription_path(topic, subscription);
        ServiceBusSessionReceiver::accept(self, path, Some(session_id), options).await
    }

    /// [`ServiceBusClient::accept_next_session`] on a subscription.
    pub async fn accept_next_session_for_subscription(
        &self,
        topic: &str,
        subscription: &str,
        options: ServiceBusSessionReceiverOptions,
    ) -> ServiceBusResult<ServiceBusSessionReceiver> {
        let path = subscription_path(topic, subscription);
        ServiceBusSessionReceiver::accept(self, path, None, options).await
    }
}

/// Receives and settles the messages of one session, and keeps its state and lock.
pub struct ServiceBusSessionReceiver {
    core: ReceiverCore,
    session_id: String,
    locked_until: std::sync::Mutex<Option<SystemTime>>,
}

impl ServiceBusSessionReceiver {
    async fn accept(
        client: &ServiceBusClient,
        path: String,
        session_id: Option<&str>,
        options: ServiceBusSessionReceiverOptions,
    ) -> ServiceBusResult<Self> {
        let receiver_options = ServiceBusReceiverOptions {
            receive_mode: options.receive_mode,
            sub_queue: SubQueue::None,
            prefetch_count: options.prefetch_count,
        };
        let filter = Value::Map(vec![(
            Value::sym(SESSION_FILTER),
            session_id.map_or(Value::Null, Value::from),
        )]);
        let span =
            tracing::info_span!("servicebus.accept_session", entity = %path, session = session_id);
        let _entered = span.enter();
        // A named session is granted or refused at once. For the next available one the
        // service waits up to the timeout we send and then answers "none", which is final;
        // a retry after a dropped connection asks only for what is left of the wait.
        let (try_timeout, deadline) = match session_id {
            Some(_) => (Some(client.retry().try_timeout), None),
            None => (
                None,
                Some(Instant::now() + options.max_wait.unwrap_or(DEFAULT_NEXT_SESSION_WAIT)),
            ),
        };
        let link = client
            .retry()
            .run_with("accept_session", try_timeout, deadline, || {
                let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                let (path, receiver_options, filter) = (&path, &receiver_options, filter.clone());
                async move {
                    let properties = match left.map(|l| u32::try_from(l.as_millis())) {
                        None => None,
                        Some(Ok(0)) => {
                            return Err(ServiceBusError::new(
                                ErrorKind::ServiceTimeout,
                                "no session became available within max_wait",
                            ));
                        }
                        Some(ms) => Some(Value::Map(vec![(
                            Value::sym(TIMEOUT),
                            Value::Uint(ms.unwrap_or(u32::MAX)),
                        )])),
                    };
                    ReceiverCore::attach(client, path, receiver_options, Some(filter), properties)
                        .await
                }
            })
            .await?;
        let accepted = ReceiverCore::remote_source_filter(&link)
            .and_then(|f| f.map_get(SESSION_FILTER))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let session_id = match (accepted, session_id) {
            (Some(accepted), Some(asked)) if accepted != asked => {
                return Err(ServiceBusError::new(
                    ErrorKind::SessionCannotBeLocked,
                    format!("asked for session {asked:?}, the service locked {accepted:?}"),
                ));
            }
            (Some(accepted), _) => accepted,
            (None, Some(asked)) => asked.to_owned(),
            (None, None) => {
                return Err(ServiceBusError::new(
                    ErrorKind::ServiceCommunication,
                    "the service accepted a session without naming it",
                ));
            }
        };
        let locked_until = ReceiverCore::remote_properties(&link)
            .and_then(|p| p.map_get(LOCKED_UNTIL_UTC))
            .and_then(Value::as_i64)
            .and_then(|ticks| ticks.checked_sub(TICKS_AT_UNIX_EPOCH))
            .and_then(|since_epoch| from_millis(since_epoch / 10_000));
        Ok(ServiceBusSessionReceiver {
            core: ReceiverCore::new(
                client.clone(),
                path,
                receiver_options,
                Some(session_id.clone()),
                Some(link),
            ),
            session_id,
            locked_until: std::sync::Mutex::new(locked_until),
        })
    }

    /// The session this receiver is locked to.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// When the session lock ends unless renewed.
    pub fn session_locked_until(&self) -> Option<SystemTime> {
        self.locked_until.lock().ok().and_then(|t| *t)
    }

    /// The queue or subscription path.
    pub fn entity_path(&self) -> &str {
        self.core.path()
    }

    pub(crate) fn core(&self) -> &ReceiverCore {
        &self.core
    }

    /// The session's state (`None` when none is stored).
    pub async fn get_session_state(&self) -> ServiceBusResult<Option<Bytes>> {
        let response = self
            .core
            .management()
            .request(
                "com.microsoft:get-session-state",
                body(vec![("session-id", Value::from(self.session_id.as_str()))]),
                &[],
            )
            .await?;
        Ok(match response.get("session-state") {
            Some(Value::Binary(state)) => Some(state.clone()),
            _ => None,
        })
    }

    /// Stores `state` with the session (`None` clears it).
    pub async fn set_session_state(&self, state: Option<Bytes>) -> ServiceBusResult<()> {
        self.core
            .management()
            .request(
                "com.microsoft:set-session-state",
                body(vec![
                    ("session-id", Value::from(self.session_id.as_str())),
                    ("session-state", state.map_or(Value::Null, Value::Binary)),
                ]),
                &[],
            )
            .await
            .map(|_| ())
    }

    /// Extends the session lock; the new expiry.
    pub async fn renew_session_lock(&self) -> ServiceBusResult<SystemTime> {
        let response = self
            .core
            .management()
            .request(
                "com.microsoft:renew-session-lock",
                body(vec![("session-id", Value::from(self.session_id.as_str()))]),
                &[],
            )
            .await?;
        let until = response
            .get("expiration")
            .and_then(system_time)
            .ok_or_else(|| {
                ServiceBusError::new(
                    ErrorKind::ServiceCommunication,
                    "renew-session-lock answered without expiration",
                )
            })?;
        if let Ok(mut locked_until) = self.locked_until.lock() {
            *locked_until = Some(until);
        }
        Ok(until)
    }

    receiver_operations!();

    /// Detaches, which releases the session lock.
    pub async fn close(&self) -> ServiceBusResult<()> {
        self.core.close().await
    }

    /// The client this receiver was made from.
    pub fn client(&self) -> &ServiceBusClient {
        self.core.client()
    }
}

impl std::fmt::Debug for ServiceBusSessionReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceBusSessionReceiver")
            .field("entity_path", &self.core.path())
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}
