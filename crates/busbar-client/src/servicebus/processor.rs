//! [`ServiceBusProcessor`]: consume a queue or subscription with a registered handler.
//!
//! The processor receives messages, runs the handler on up to `max_concurrent_calls` of them
//! at once, keeps their locks alive while the handler works, completes a message when the
//! handler returns `Ok` and abandons it when the handler fails (so the broker delivers it
//! again, and dead-letters it after the entity's max delivery count). When the connection
//! drops or the broker restarts it gets a new receiver by itself, pausing with exponential
//! back-off and jitter between attempts; every error on the way reaches the error handler,
//! tagged with its [`ErrorSource`]. This is the model of .NET's `ServiceBusProcessor` and of
//! the JavaScript SDK's `subscribe()`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use busbar_amqp::Value;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use super::backoff::Backoff;
use super::client::ServiceBusClient;
use super::error::ServiceBusError;
use super::message::ServiceBusReceivedMessage;
use super::message_pump::{
    BoxFuture, Dispatch, ErrorReporter, HandlerError, Pump, PumpEnd, PumpReceiver, PumpSettings,
    Settlement, pause_unless_stopped, wait_for_all,
};
use super::receiver::{
    DeadLetterOptions, ServiceBusReceiveMode, ServiceBusReceiver, ServiceBusReceiverOptions,
    SubQueue,
};

/// Settlements the processor lets run on after their handler calls returned, awaiting the
/// broker's confirmation while the next calls go ahead.
const MAX_PENDING_SETTLEMENTS: u32 = 1024;

/// How a [`ServiceBusProcessor`] receives and settles.
#[derive(Debug, Clone)]
pub struct ServiceBusProcessorOptions {
    /// Handler calls in flight at once (at least 1). Default 1. A call's slot is free for
    /// the next message as soon as its handler returns: the completion (or abandon) the
    /// processor then sends goes on alongside the next calls until the broker confirms it
    /// (and [`ServiceBusProcessor::stop`] waits for it).
    pub max_concurrent_calls: u32,
    /// Complete each message whose handler returned `Ok` and did not settle it. With
    /// `false` the handler settles through its [`ProcessMessageContext`]. Either way a
    /// message whose handler failed, and which it left unsettled, is abandoned. Default
    /// `true`.
    pub auto_complete_messages: bool,
    /// Renew each message's lock while its handler runs, for up to this long after the
    /// message arrived; zero turns renewal off. Default 5 minutes.
    pub max_auto_lock_renew_duration: Duration,
    /// Messages the link fetches ahead of the handler (0: only as many as there are free
    /// calls). Prefetched messages are locked while they wait. Default 0.
    pub prefetch_count: u32,
    /// Peek-lock (settled by the processor or the handler) or receive-and-delete (gone from
    /// the broker when received; nothing to settle). Default peek-lock.
    pub receive_mode: ServiceBusReceiveMode,
    /// The entity itself, or its dead-letter or transfer dead-letter queue.
    pub sub_queue: SubQueue,
}

impl Default for ServiceBusProcessorOptions {
    fn default() -> Self {
        Self {
            max_concurrent_calls: 1,
            auto_complete_messages: true,
            max_auto_lock_renew_duration: Duration::from_secs(5 * 60),
            prefetch_count: 0,
            receive_mode: ServiceBusReceiveMode::PeekLock,
            sub_queue: SubQueue::None,
        }
    }
}

/// Where an error reported to the error handler arose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorSource {
    /// Getting a receiver or receiving messages.
    Receive,
    /// Completing a message after its handler returned `Ok`.
    Complete,
    /// Abandoning a message after its handler failed.
    Abandon,
    /// Renewing a message's or a session's lock.
    RenewLock,
    /// Accepting the next session (session processor).
    AcceptSession,
    /// Closing a session's receiver once the processor is done with it.
    CloseSession,
    /// The handler itself failed (returned `Err` or panicked).
    ProcessMessageCallback,
}

/// What the error handler is given.
#[derive(Debug)]
pub struct ProcessErrorContext {
    /// What went wrong.
    pub error: ServiceBusError,
    /// Which step of the processor it happened in.
    pub source: ErrorSource,
    /// The queue, or `topic/Subscriptions/name`, the processor consumes.
    pub entity_path: String,
    /// The session the error concerns (session processor).
    pub session_id: Option<String>,
}

/// What the handler is given: the message, and the operations that settle it.
///
/// A message the handler settles itself is left alone by the processor.
#[derive(Clone)]
pub struct ProcessMessageContext {
    pub(crate) settlement: Arc<Settlement>,
    pub(crate) entity_path: Arc<str>,
}

impl ProcessMessageContext {
    /// The message being handled.
    pub fn message(&self) -> &ServiceBusReceivedMessage {
        &self.settlement.message
    }

    /// The queue, or `topic/Subscriptions/name`, the message came from.
    pub fn entity_path(&self) -> &str {
        &self.entity_path
    }

    /// Completes the message now (with auto-complete off, or before the handler returns).
    pub async fn complete_message(&self) -> Result<(), ServiceBusError> {
        let s = &self.settlement;
        s.settle(s.receiver.complete(&s.message)).await
    }

    /// Gives the message back for another delivery, changing these properties.
    pub async fn abandon_message(
        &self,
        properties_to_modify: Option<BTreeMap<String, Value>>,
    ) -> Result<(), ServiceBusError> {
        let s = &self.settlement;
        s.settle(s.receiver.abandon(&s.message, properties_to_modify))
            .await
    }

    /// Moves the message to the dead-letter queue with a reason and description.
    pub async fn dead_letter_message(
        &self,
        options: DeadLetterOptions,
    ) -> Result<(), ServiceBusError> {
        let s = &self.settlement;
        s.settle(s.receiver.dead_letter(&s.message, options)).await
    }

    /// Defers the message: it stays, to be received later by its sequence number.
    pub async fn defer_message(
        &self,
        properties_to_modify: Option<BTreeMap<String, Value>>,
    ) -> Result<(), ServiceBusError> {
        let s = &self.settlement;
        s.settle(s.receiver.defer(&s.message, properties_to_modify))
            .await
    }

    /// Renews the message's lock now (the processor also does it by itself, see
    /// [`ServiceBusProcessorOptions::max_auto_lock_renew_duration`]); answers the new expiry.
    pub async fn renew_message_lock(&self) -> Result<std::time::SystemTime, ServiceBusError> {
        let s = &self.settlement;
        s.receiver.renew_lock(&s.message).await
    }
}

/// What the processor consumes.
#[derive(Debug, Clone)]
pub(crate) enum ProcessorEntity {
    Queue(String),
    Subscription { topic: String, subscription: String },
}

impl ProcessorEntity {
    pub(crate) fn new(queue_or_topic: &str, subscription: Option<&str>) -> Self {
        match subscription {
            None => Self::Queue(queue_or_topic.to_owned()),
            Some(subscription) => Self::Subscription {
                topic: queue_or_topic.to_owned(),
                subscription: subscription.to_owned(),
            },
        }
    }

    pub(crate) fn path(&self) -> String {
        match self {
            Self::Queue(queue) => queue.clone(),
            Self::Subscription {
                topic,
                subscription,
            } => format!("{topic}/Subscriptions/{subscription}"),
        }
    }
}

/// What both processors hold besides their options.
pub(crate) struct ProcessorTarget {
    pub(crate) client: ServiceBusClient,
    pub(crate) entity: ProcessorEntity,
    pub(crate) entity_path: Arc<str>,
    pub(crate) state: RunState,
}

impl ProcessorTarget {
    pub(crate) fn new(
        client: &ServiceBusClient,
        queue_or_topic: &str,
        subscription: Option<&str>,
    ) -> Self {
        let entity = ProcessorEntity::new(queue_or_topic, subscription);
        Self {
            client: client.clone(),
            entity_path: entity.path().into(),
            entity,
            state: RunState::default(),
        }
    }
}

/// A started processor: how to tell it to stop, and the task to wait for.
pub(crate) struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    pub(crate) fn spawn(run: impl FnOnce(watch::Receiver<bool>) -> BoxFuture<()>) -> Self {
        let (stop, stopped) = watch::channel(false);
        Self {
            stop,
            task: tokio::spawn(run(stopped)),
        }
    }

    pub(crate) async fn stop(self) {
        // Sending fails only once the task is gone, which is what stopping wants anyway.
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "processor task failed");
        }
    }
}

/// The processor's run state, shared by `start` and `stop`.
#[derive(Default)]
pub(crate) struct RunState(Mutex<Option<Running>>);

impl RunState {
    pub(crate) fn start(
        &self,
        run: impl FnOnce(watch::Receiver<bool>) -> BoxFuture<()>,
    ) -> Result<(), ServiceBusError> {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if state.is_some() {
            return Err(ServiceBusError::invalid("the processor is already running"));
        }
        *state = Some(Running::spawn(run));
        Ok(())
    }

    pub(crate) fn is_running(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    pub(crate) async fn stop(&self) {
        let running = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(running) = running {
            running.stop().await;
        }
    }
}

/// Wraps the application's handler for the pump: `context` makes its context type from the
/// settlement (or says why it cannot).
pub(crate) fn dispatch<C: 'static, H, HF, E>(
    handler: H,
    entity_path: Arc<str>,
    context: fn(Arc<Settlement>, Arc<str>) -> Result<C, HandlerError>,
) -> Dispatch
where
    H: Fn(C) -> HF + Send + Sync + 'static,
    HF: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<HandlerError>,
{
    Arc::new(
        move |settlement| match context(settlement, entity_path.clone()) {
            Ok(context) => {
                let call = handler(context);
                Box::pin(async move { call.await.map_err(Into::into) })
            }
            Err(error) => Box::pin(async move { Err(error) }),
        },
    )
}

/// Wraps the application's error handler for the pump.
pub(crate) fn error_reporter<EH, EF>(error_handler: EH, entity_path: Arc<str>) -> ErrorReporter
where
    EH: Fn(ProcessErrorContext) -> EF + Send + Sync + 'static,
    EF: Future<Output = ()> + Send + 'static,
{
    ErrorReporter::new(
        Arc::new(move |context| Box::pin(error_handler(context)) as BoxFuture<()>),
        entity_path,
    )
}

/// Consumes a queue or subscription with a handler; see the [module docs](self).
///
/// ```no_run
/// use busbar_client::servicebus::{
///     ProcessErrorContext, ProcessMessageContext, ServiceBusClient, ServiceBusClientOptions,
///     ServiceBusProcessorOptions,
/// };
///
/// # async fn run() -> Result<(), busbar_client::servicebus::ServiceBusError> {
/// let client = ServiceBusClient::from_connection_string(
///     "Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;\
///      SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true",
///     ServiceBusClientOptions::default(),
/// )?;
/// let options = ServiceBusProcessorOptions {
///     max_concurrent_calls: 8,
///     ..Default::default()
/// };
/// let processor = client.create_processor("orders", None, options);
/// processor
///     .start(
///         |context: ProcessMessageContext| async move {
///             let order = std::str::from_utf8(&context.message().body)?;
///             println!("order update: {order}");
///             Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
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
pub struct ServiceBusProcessor {
    target: ProcessorTarget,
    options: ServiceBusProcessorOptions,
}

impl ServiceBusProcessor {
    /// The queue, or `topic/Subscriptions/name`, this processor consumes.
    pub fn entity_path(&self) -> &str {
        &self.target.entity_path
    }

    /// The options the processor was made with.
    pub fn options(&self) -> &ServiceBusProcessorOptions {
        &self.options
    }

    /// Whether the processor is receiving (started and not yet stopped).
    pub fn is_running(&self) -> bool {
        self.target.state.is_running()
    }

    /// Starts receiving in the background: `handler` runs for each message, `error_handler`
    /// for each error (see [`ErrorSource`]). Fails if the processor is already running.
    /// Returns at once; connection trouble is reported to `error_handler` and recovered from.
    pub async fn start<H, HF, E, EH, EF>(
        &self,
        handler: H,
        error_handler: EH,
    ) -> Result<(), ServiceBusError>
    where
        H: Fn(ProcessMessageContext) -> HF + Send + Sync + 'static,
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
                Ok(ProcessMessageContext {
                    settlement,
                    entity_path,
                })
            },
        );
        let errors = error_reporter(error_handler, target.entity_path.clone());
        let run = ProcessorRun {
            client: target.client.clone(),
            entity: target.entity.clone(),
            options: self.options.clone(),
            dispatch,
            errors,
        };
        target.state.start(|stop| Box::pin(run.run(stop)))
    }

    /// Stops receiving, lets the handler calls in flight finish and settles their messages,
    /// then closes the receiver. Messages fetched ahead but not handled go back to the
    /// entity. Does nothing if the processor is not running.
    pub async fn stop(&self) {
        self.target.state.stop().await;
    }

    /// [`stop`](Self::stop)s and drops the processor.
    pub async fn close(self) {
        self.stop().await;
    }
}

/// The background task of a started processor.
struct ProcessorRun {
    client: ServiceBusClient,
    entity: ProcessorEntity,
    options: ServiceBusProcessorOptions,
    dispatch: Dispatch,
    errors: ErrorReporter,
}

impl ProcessorRun {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        let max_calls = self.options.max_concurrent_calls.max(1);
        let calls = Arc::new(Semaphore::new(max_calls as usize));
        let settlements = Arc::new(Semaphore::new(MAX_PENDING_SETTLEMENTS as usize));
        let settings = PumpSettings {
            receive_mode: self.options.receive_mode,
            auto_complete: self.options.auto_complete_messages,
            max_auto_lock_renew_duration: self.options.max_auto_lock_renew_duration,
            idle_timeout: None,
            settlements: Some(settlements.clone()),
            // A quarter of the prefetch at a time (the link's credit comes back by
            // quarters too): the broker goes on sending while these are handled, in
            // bursts small enough that few messages wait locked between the two sides,
            // instead of both sides taking turns over the whole prefetch.
            receive_ahead: (self.options.prefetch_count / 4) as usize,
        };
        let mut backoff = Backoff::new(self.client.retry().clone());
        loop {
            // The link attaches on the first receive; failing to is a failed receive.
            let receiver = Arc::new(PumpReceiver::Entity(Box::new(self.create_receiver())));
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
            if end == PumpEnd::Stopped {
                wait_for_all(&calls, max_calls).await;
                wait_for_all(&settlements, MAX_PENDING_SETTLEMENTS).await;
                if let Err(error) = receiver.close().await {
                    tracing::debug!(%error, "closing the processor's receiver");
                }
                return;
            }
            // The link is broken; calls still running on it settle (or fail to) by themselves.
            if pause_unless_stopped(&mut stop, backoff.next_delay()).await {
                break;
            }
        }
        wait_for_all(&calls, max_calls).await;
        wait_for_all(&settlements, MAX_PENDING_SETTLEMENTS).await;
    }

    fn create_receiver(&self) -> ServiceBusReceiver {
        let options = ServiceBusReceiverOptions {
            receive_mode: self.options.receive_mode,
            sub_queue: self.options.sub_queue,
            prefetch_count: self.options.prefetch_count,
        };
        match &self.entity {
            ProcessorEntity::Queue(queue) => self.client.create_receiver(queue, options),
            ProcessorEntity::Subscription {
                topic,
                subscription,
            } => self
                .client
                .create_receiver_for_subscription(topic, subscription, options),
        }
    }
}

impl ServiceBusClient {
    /// A processor of `queue_or_topic` (of its `subscription` when given); nothing is
    /// received before [`ServiceBusProcessor::start`].
    pub fn create_processor(
        &self,
        queue_or_topic: &str,
        subscription: Option<&str>,
        options: ServiceBusProcessorOptions,
    ) -> ServiceBusProcessor {
        ServiceBusProcessor {
            target: ProcessorTarget::new(self, queue_or_topic, subscription),
            options,
        }
    }
}
