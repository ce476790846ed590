//! [`ServiceBusSessionProcessor`]: consume a session-enabled queue or subscription with a
//! registered handler.
//!
//! Up to `max_concurrent_sessions` sessions are held at once, each accepted as the broker
//! offers the next free one. Within a session the handler sees the messages in order (with
//! the default one call per session, the next message is received only once the previous
//! one is settled); different sessions run in parallel. The session's lock is renewed while
//! the processor holds it, and a session is released once nothing has arrived on it for
//! `session_idle_timeout`, making room for the next. Message handling, settlement, lock
//! renewal and recovery are those of [`ServiceBusProcessor`](super::ServiceBusProcessor).

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};

use super::backoff::Backoff;
use super::client::ServiceBusClient;
use super::error::{ErrorKind, ServiceBusError};
use super::lock_renewal::{LockRenewal, spawn_renewal};
use super::message_pump::{
    Dispatch, ErrorReporter, HandlerError, Pump, PumpEnd, PumpReceiver, PumpSettings,
    pause_unless_stopped, wait_for_all,
};
use super::processor::{
    ErrorSource, ProcessErrorContext, ProcessMessageContext, ProcessorEntity, ProcessorTarget,
    dispatch, error_reporter,
};
use super::receiver::ServiceBusReceiveMode;
use super::session::{ServiceBusSessionReceiver, ServiceBusSessionReceiverOptions};

/// How long the broker may look for a free session before answering that there is none
/// (and the slot asks again).
const ACCEPT_WAIT: Duration = Duration::from_secs(10);

/// How a [`ServiceBusSessionProcessor`] receives and settles.
#[derive(Debug, Clone)]
pub struct ServiceBusSessionProcessorOptions {
    /// Sessions held at once. Default 8.
    pub max_concurrent_sessions: u32,
    /// Handler calls in flight within one session; 1 (the default) keeps the session's
    /// order.
    pub max_concurrent_calls_per_session: u32,
    /// A session nothing has arrived on for this long is released. Default 5 s.
    pub session_idle_timeout: Duration,
    /// See [`ServiceBusProcessorOptions::auto_complete_messages`](super::ServiceBusProcessorOptions::auto_complete_messages).
    pub auto_complete_messages: bool,
    /// Renew message locks, and the session's lock while it is held, for up to this long;
    /// zero turns renewal off. Default 5 minutes.
    pub max_auto_lock_renew_duration: Duration,
    /// Messages each session's link fetches ahead of the handler. Default 0.
    pub prefetch_count: u32,
    /// Peek-lock (settled by the processor or the handler) or receive-and-delete.
    pub receive_mode: ServiceBusReceiveMode,
}

impl Default for ServiceBusSessionProcessorOptions {
    fn default() -> Self {
        Self {
            max_concurrent_sessions: 8,
            max_concurrent_calls_per_session: 1,
            session_idle_timeout: Duration::from_secs(5),
            auto_complete_messages: true,
            max_auto_lock_renew_duration: Duration::from_secs(5 * 60),
            prefetch_count: 0,
            receive_mode: ServiceBusReceiveMode::PeekLock,
        }
    }
}

/// What the session processor's handler is given: everything of a
/// [`ProcessMessageContext`] (through `Deref`) and the session's own operations.
#[derive(Clone)]
pub struct ProcessSessionMessageContext {
    message: ProcessMessageContext,
    session: Arc<ServiceBusSessionReceiver>,
}

impl Deref for ProcessSessionMessageContext {
    type Target = ProcessMessageContext;

    fn deref(&self) -> &ProcessMessageContext {
        &self.message
    }
}

impl ProcessSessionMessageContext {
    /// The session the message belongs to.
    pub fn session_id(&self) -> &str {
        self.session.session_id()
    }

    /// The session's state, if any was set.
    pub async fn get_session_state(&self) -> Result<Option<bytes::Bytes>, ServiceBusError> {
        self.session.get_session_state().await
    }

    /// Replaces the session's state (`None` clears it).
    pub async fn set_session_state(
        &self,
        state: Option<bytes::Bytes>,
    ) -> Result<(), ServiceBusError> {
        self.session.set_session_state(state).await
    }

    /// Renews the session's lock now (the processor also does it by itself); answers the
    /// new expiry.
    pub async fn renew_session_lock(&self) -> Result<std::time::SystemTime, ServiceBusError> {
        self.session.renew_session_lock().await
    }
}

/// Consumes a session-enabled queue or subscription; see the [module docs](self).
///
/// ```no_run
/// use busbar_client::servicebus::{
///     ProcessErrorContext, ProcessSessionMessageContext, ServiceBusClient, ServiceBusClientOptions,
///     ServiceBusSessionProcessorOptions,
/// };
///
/// # async fn run() -> Result<(), busbar_client::servicebus::ServiceBusError> {
/// let client = ServiceBusClient::from_connection_string(
///     "Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;\
///      SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true",
///     ServiceBusClientOptions::default(),
/// )?;
/// let options = ServiceBusSessionProcessorOptions {
///     max_concurrent_sessions: 4,
///     ..Default::default()
/// };
/// let processor = client.create_session_processor("carts", None, options);
/// processor
///     .start(
///         |context: ProcessSessionMessageContext| async move {
///             println!("cart {}: {:?}", context.session_id(), context.message().body);
///             Ok::<(), std::convert::Infallible>(())
///         },
///         |error: ProcessErrorContext| async move {
///             eprintln!("{:?} failed: {}", error.source, error.error);
///         },
///     )
///     .await?;
/// tokio::signal::ctrl_c().await.ok();
/// processor.stop().await;
/// # Ok(())
/// # }
/// ```
pub struct ServiceBusSessionProcessor {
    target: ProcessorTarget,
    options: ServiceBusSessionProcessorOptions,
}

impl ServiceBusSessionProcessor {
    /// The queue or subscription the processor receives from.
    pub fn entity_path(&self) -> &str {
        &self.target.entity_path
    }

    /// The options the processor was made with.
    pub fn options(&self) -> &ServiceBusSessionProcessorOptions {
        &self.options
    }

    /// Whether the processor is receiving (started and not yet stopped).
    pub fn is_running(&self) -> bool {
        self.target.state.is_running()
    }

    /// Starts accepting sessions in the background; see
    /// [`ServiceBusProcessor::start`](super::ServiceBusProcessor::start).
    pub async fn start<H, HF, E, EH, EF>(
        &self,
        handler: H,
        error_handler: EH,
    ) -> Result<(), ServiceBusError>
    where
        H: Fn(ProcessSessionMessageContext) -> HF + Send + Sync + 'static,
        HF: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<HandlerError>,
        EH: Fn(ProcessErrorContext) -> EF + Send + Sync + 'static,
        EF: Future<Output = ()> + Send + 'static,
    {
        let target = &self.target;
        let dispatch = dispatch(
            handler,
            target.entity_path.clone(),
            |settlement, entity_path| {
                let session = settlement
                    .receiver
                    .session()
                    .cloned()
                    .ok_or("a session processor got a message off a session")?;
                Ok(ProcessSessionMessageContext {
                    message: ProcessMessageContext {
                        settlement,
                        entity_path,
                    },
                    session,
                })
            },
        );
        let run = Arc::new(SessionRun {
            client: target.client.clone(),
            entity: target.entity.clone(),
            options: self.options.clone(),
            dispatch,
            errors: error_reporter(error_handler, target.entity_path.clone()),
        });
        target.state.start(|stop| {
            Box::pin(async move {
                let slots = (0..run.options.max_concurrent_sessions.max(1))
                    .map(|_| tokio::spawn(run.clone().hold_sessions(stop.clone())))
                    .collect::<Vec<_>>();
                for slot in slots {
                    if let Err(error) = slot.await {
                        tracing::error!(%error, "session processor slot failed");
                    }
                }
            })
        })
    }

    /// Stops accepting sessions and receiving, lets the handler calls in flight finish and
    /// settles their messages, then releases the sessions.
    pub async fn stop(&self) {
        self.target.state.stop().await;
    }

    /// Stops the processor and closes what it holds.
    pub async fn close(self) {
        self.stop().await;
    }
}

/// The background work of a started session processor, shared by its session slots.
struct SessionRun {
    client: ServiceBusClient,
    entity: ProcessorEntity,
    options: ServiceBusSessionProcessorOptions,
    dispatch: Dispatch,
    errors: ErrorReporter,
}

impl SessionRun {
    /// One slot: accept a session, pump it until it goes idle, release it, repeat.
    async fn hold_sessions(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let max_calls = self.options.max_concurrent_calls_per_session.max(1);
        let settings = PumpSettings {
            receive_mode: self.options.receive_mode,
            auto_complete: self.options.auto_complete_messages,
            max_auto_lock_renew_duration: self.options.max_auto_lock_renew_duration,
            idle_timeout: Some(self.options.session_idle_timeout),
            settlements: None,
            receive_ahead: self.options.prefetch_count as usize,
        };
        let mut backoff = Backoff::new(self.client.retry().clone());
        while !*stop.borrow() {
            let accepted = tokio::select! {
                accepted = self.accept_next_session() => accepted,
                _ = stop.changed() => break,
            };
            let session = match accepted {
                Ok(session) => session,
                // No session was free for the broker's wait: ask again.
                Err(error) if error.kind == ErrorKind::ServiceTimeout => continue,
                Err(error) => {
                    self.errors
                        .report(error, ErrorSource::AcceptSession, None)
                        .await;
                    if pause_unless_stopped(&mut stop, backoff.next_delay()).await {
                        break;
                    }
                    continue;
                }
            };
            backoff.reset();
            let session = Arc::new(session);
            let session_id = session.session_id().to_owned();
            let _renewal = self.renew_session_lock(&session);
            let receiver = Arc::new(PumpReceiver::Session(session));
            let calls = Arc::new(Semaphore::new(max_calls as usize));
            let end = Pump {
                settings: &settings,
                dispatch: &self.dispatch,
                errors: &self.errors,
                calls: &calls,
                stop: &mut stop,
                backoff: &mut backoff,
            }
            .run(&receiver)
            .await;
            wait_for_all(&calls, max_calls).await;
            if let Err(error) = receiver.close().await {
                self.errors
                    .report(error, ErrorSource::CloseSession, Some(&session_id))
                    .await;
            }
            if end == PumpEnd::Failed && pause_unless_stopped(&mut stop, backoff.next_delay()).await
            {
                break;
            }
        }
    }

    async fn accept_next_session(&self) -> Result<ServiceBusSessionReceiver, ServiceBusError> {
        let options = ServiceBusSessionReceiverOptions {
            receive_mode: self.options.receive_mode,
            prefetch_count: self.options.prefetch_count,
            max_wait: Some(ACCEPT_WAIT),
        };
        match &self.entity {
            ProcessorEntity::Queue(queue) => self.client.accept_next_session(queue, options).await,
            ProcessorEntity::Subscription {
                topic,
                subscription,
            } => {
                self.client
                    .accept_next_session_for_subscription(topic, subscription, options)
                    .await
            }
        }
    }

    fn renew_session_lock(&self, session: &Arc<ServiceBusSessionReceiver>) -> Option<LockRenewal> {
        let max = self.options.max_auto_lock_renew_duration;
        let locked_until = session.session_locked_until()?;
        if max.is_zero() {
            return None;
        }
        let errors = self.errors.clone();
        let session_id = session.session_id().to_owned();
        let session = session.clone();
        Some(spawn_renewal(
            locked_until,
            max,
            move || {
                let session = session.clone();
                async move { session.renew_session_lock().await }
            },
            move |error: ServiceBusError| {
                let errors = errors.clone();
                let session_id = session_id.clone();
                async move {
                    errors
                        .report(error, ErrorSource::RenewLock, Some(&session_id))
                        .await;
                }
            },
        ))
    }
}

impl ServiceBusClient {
    /// A session processor of `queue_or_topic` (of its `subscription` when given); nothing
    /// is received before [`ServiceBusSessionProcessor::start`].
    pub fn create_session_processor(
        &self,
        queue_or_topic: &str,
        subscription: Option<&str>,
        options: ServiceBusSessionProcessorOptions,
    ) -> ServiceBusSessionProcessor {
        ServiceBusSessionProcessor {
            target: ProcessorTarget::new(self, queue_or_topic, subscription),
            options,
        }
    }
}
