//! The engine both processors run on one receiver: keeps up to N handler calls in flight,
//! renews each message's lock while its handler runs, settles what the handler left
//! unsettled, and ends when asked to stop, when the receiver fails, or (for a session) when
//! nothing more arrives.

use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use busbar_amqp::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc, watch};
use tracing::Instrument;

use super::backoff::Backoff;
use super::call_workers::{Call, CallWorkers};
use super::completions::{Completion, spawn_completer};
use super::error::{ErrorKind, ServiceBusError};
use super::lock_renewal::keep_renewed;
use super::message::ServiceBusReceivedMessage;
use super::processor::{ErrorSource, ProcessErrorContext};
use super::receiver::{DeadLetterOptions, ReceiverCore, ServiceBusReceiveMode, ServiceBusReceiver};
use super::session::ServiceBusSessionReceiver;

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
/// What an application handler may fail with.
pub(crate) type HandlerError = Box<dyn std::error::Error + Send + Sync>;
/// The application's handler, behind the processor's context type.
pub(crate) type Dispatch =
    Arc<dyn Fn(Arc<Settlement>) -> BoxFuture<Result<(), HandlerError>> + Send + Sync>;

/// How long one receive call waits for messages: also how long `stop` may wait for the
/// pump to notice it (a receive is not abandoned half-way, so no message it took off the
/// link is dropped on the floor).
const RECEIVE_WAIT: Duration = Duration::from_secs(1);

/// The link a pump drains: a queue or subscription receiver, or one session's.
pub(crate) enum PumpReceiver {
    Entity(Box<ServiceBusReceiver>),
    Session(Arc<ServiceBusSessionReceiver>),
}

impl PumpReceiver {
    /// Up to `max` messages, each already in the settlement its call shares.
    async fn receive(
        self: &Arc<Self>,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Arc<Settlement>>, ServiceBusError> {
        let settlement = |message| {
            Arc::new(Settlement {
                receiver: self.clone(),
                message,
                settled: AtomicBool::new(false),
            })
        };
        self.core().receive_into(max, Some(wait), settlement).await
    }

    pub(crate) async fn complete(
        &self,
        m: &ServiceBusReceivedMessage,
    ) -> Result<(), ServiceBusError> {
        match self {
            Self::Entity(r) => r.complete_message(m).await,
            Self::Session(r) => r.complete_message(m).await,
        }
    }

    pub(crate) async fn abandon(
        &self,
        m: &ServiceBusReceivedMessage,
        properties: Option<BTreeMap<String, Value>>,
    ) -> Result<(), ServiceBusError> {
        match self {
            Self::Entity(r) => r.abandon_message(m, properties).await,
            Self::Session(r) => r.abandon_message(m, properties).await,
        }
    }

    pub(crate) async fn dead_letter(
        &self,
        m: &ServiceBusReceivedMessage,
        options: DeadLetterOptions,
    ) -> Result<(), ServiceBusError> {
        match self {
            Self::Entity(r) => r.dead_letter_message(m, options).await,
            Self::Session(r) => r.dead_letter_message(m, options).await,
        }
    }

    pub(crate) async fn defer(
        &self,
        m: &ServiceBusReceivedMessage,
        properties: Option<BTreeMap<String, Value>>,
    ) -> Result<(), ServiceBusError> {
        match self {
            Self::Entity(r) => r.defer_message(m, properties).await,
            Self::Session(r) => r.defer_message(m, properties).await,
        }
    }

    pub(crate) async fn renew_lock(
        &self,
        m: &ServiceBusReceivedMessage,
    ) -> Result<SystemTime, ServiceBusError> {
        match self {
            Self::Entity(r) => r.renew_message_lock(m).await,
            Self::Session(r) => r.renew_message_lock(m).await,
        }
    }

    pub(crate) fn core(&self) -> &ReceiverCore {
        match self {
            Self::Entity(r) => r.core(),
            Self::Session(r) => r.core(),
        }
    }

    pub(crate) fn session(&self) -> Option<&Arc<ServiceBusSessionReceiver>> {
        match self {
            Self::Entity(_) => None,
            Self::Session(r) => Some(r),
        }
    }

    pub(crate) async fn close(&self) -> Result<(), ServiceBusError> {
        match self {
            Self::Entity(r) => r.close().await,
            Self::Session(r) => r.close().await,
        }
    }
}

/// One received message and the link that settles it, shared by the handler's context and
/// the pump (which settles what the handler did not).
pub(crate) struct Settlement {
    pub(crate) receiver: Arc<PumpReceiver>,
    pub(crate) message: ServiceBusReceivedMessage,
    settled: AtomicBool,
}

impl Settlement {
    pub(crate) fn is_settled(&self) -> bool {
        self.settled.load(Ordering::Acquire)
    }

    /// Runs one settlement and remembers that it took effect.
    pub(crate) async fn settle(
        &self,
        outcome: impl Future<Output = Result<(), ServiceBusError>>,
    ) -> Result<(), ServiceBusError> {
        outcome.await?;
        self.mark_settled();
        Ok(())
    }

    /// Remembers that a settlement took effect.
    pub(crate) fn mark_settled(&self) {
        self.settled.store(true, Ordering::Release);
    }
}

/// Sends every error to the application's error handler, tagged with where it arose.
#[derive(Clone)]
pub(crate) struct ErrorReporter {
    handler: Arc<dyn Fn(ProcessErrorContext) -> BoxFuture<()> + Send + Sync>,
    entity_path: Arc<str>,
}

impl ErrorReporter {
    pub(crate) fn new(
        handler: Arc<dyn Fn(ProcessErrorContext) -> BoxFuture<()> + Send + Sync>,
        entity_path: Arc<str>,
    ) -> Self {
        Self {
            handler,
            entity_path,
        }
    }

    pub(crate) async fn report(
        &self,
        error: ServiceBusError,
        source: ErrorSource,
        session_id: Option<&str>,
    ) {
        tracing::debug!(entity = %self.entity_path, ?source, session_id, %error, "processor error");
        let context = ProcessErrorContext {
            error,
            source,
            entity_path: self.entity_path.to_string(),
            session_id: session_id.map(str::to_owned),
        };
        (self.handler)(context).await;
    }
}

/// How a pump treats its messages.
#[derive(Clone)]
pub(crate) struct PumpSettings {
    pub(crate) receive_mode: ServiceBusReceiveMode,
    pub(crate) auto_complete: bool,
    pub(crate) max_auto_lock_renew_duration: Duration,
    /// End the pump once nothing has arrived for this long (sessions).
    pub(crate) idle_timeout: Option<Duration>,
    /// When given, the settlement that follows a handler call no longer holds the call's
    /// slot (the next message's handler runs while the broker confirms it); these permits
    /// bound such settlements. `None` keeps the slot until the message is settled, which a
    /// session's order depends on.
    pub(crate) settlements: Option<Arc<Semaphore>>,
    /// Messages one receive call may take beyond the free calls (the prefetch: they are
    /// locked and waiting on the link anyway).
    pub(crate) receive_ahead: usize,
}

/// Why a pump returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PumpEnd {
    Stopped,
    Idle,
    /// Receiving failed (already reported): the caller gets a new receiver.
    Failed,
}

/// Everything a pump needs besides its receiver.
pub(crate) struct Pump<'a> {
    pub(crate) settings: &'a PumpSettings,
    pub(crate) dispatch: &'a Dispatch,
    pub(crate) errors: &'a ErrorReporter,
    /// Handler calls allowed in flight; a call holds a permit until its message is settled
    /// or its settlement is handed over (a shift keeps it from call to call).
    pub(crate) calls: &'a Arc<Semaphore>,
    pub(crate) stop: &'a mut watch::Receiver<bool>,
    pub(crate) backoff: &'a mut Backoff,
}

impl Pump<'_> {
    pub(crate) async fn run(&mut self, receiver: &Arc<PumpReceiver>) -> PumpEnd {
        let mut last_message = Instant::now();
        // Messages taken off the link ahead of free calls (up to the prefetch), so that a
        // processor with few calls does not make a receive call per message. They are as
        // locked as they were on the link, and go back the same way when the link closes:
        // the queue is closed, and emptied, when the pump returns.
        let queue = Arc::new(Queue::default());
        let _close = CloseOnDrop(&queue);
        let settings = self.settings;
        // Completions that do not hold their call's slot are awaited together, off the
        // calls' tasks.
        let completer = (settings.auto_complete
            && settings.receive_mode == ServiceBusReceiveMode::PeekLock
            && settings.settlements.is_some())
        .then(|| spawn_completer(self.errors.clone()));
        // What every call of this pump shares, cloned into each shift as one reference.
        let shared = Arc::new(CallShared {
            settings: settings.clone(),
            dispatch: self.dispatch.clone(),
            errors: self.errors.clone(),
            completer,
            queue: queue.clone(),
            stop: self.stop.clone(),
        });
        // Shifts still running when the pump returns finish their call on their tasks.
        let workers = CallWorkers::new();
        // One wait for the stop signal for the whole run, not one per wait for a call.
        let mut stop = self.stop.clone();
        let mut stopped = std::pin::pin!(stop.wait_for(|stop| *stop));
        loop {
            if *self.stop.borrow() {
                return PumpEnd::Stopped;
            }
            // A free call slot: at the start, or once a shift found nothing more to take
            // (with a full queue the shifts keep their slots and the pump waits here).
            let mut permits = match self.calls.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(TryAcquireError::Closed) => return PumpEnd::Stopped,
                Err(TryAcquireError::NoPermits) => tokio::select! {
                    // The permit first: woken by a shift that ended, the pump takes it
                    // without polling the stop signal again (or drawing a random order).
                    biased;
                    permit = self.calls.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => return PumpEnd::Stopped,
                    },
                    _ = &mut stopped => return PumpEnd::Stopped,
                },
            };
            let free = self.calls.available_permits();
            if let Ok(free @ 1..) = u32::try_from(free)
                && let Ok(more) = self.calls.clone().try_acquire_many_owned(free)
            {
                permits.merge(more);
            }
            let mut waiting = queue.len();
            if waiting == 0 {
                let mut wait = RECEIVE_WAIT;
                if let Some(idle) = self.settings.idle_timeout {
                    match idle.checked_sub(last_message.elapsed()) {
                        Some(left) if !left.is_zero() => wait = wait.min(left),
                        _ => return PumpEnd::Idle,
                    }
                }
                let max = permits.num_permits().max(self.settings.receive_ahead);
                match receiver.receive(max, wait).await {
                    Ok(messages) => waiting = queue.extend(messages),
                    Err(error) => {
                        let session = receiver.session().map(|s| s.session_id().to_owned());
                        self.errors
                            .report(error, ErrorSource::Receive, session.as_deref())
                            .await;
                        return PumpEnd::Failed;
                    }
                }
                self.backoff.reset();
                if waiting > 0 {
                    last_message = Instant::now();
                }
            }
            // A shift per free slot, as far as there are messages: each starts with one
            // and then takes the next until none is left, alongside the running ones.
            // The slots left over go back, and are taken again to receive more.
            for _ in 0..waiting {
                let Some(permit) = permits.split(1) else {
                    break;
                };
                let Some(first) = queue.pop() else {
                    break;
                };
                workers.run(Shift {
                    first,
                    shared: shared.clone(),
                    permit,
                });
            }
        }
    }
}

/// The messages a pump received and its calls have not taken yet.
#[derive(Default)]
struct Queue {
    messages: Mutex<VecDeque<Arc<Settlement>>>,
    /// Set when the pump returned: what is left is not to be handled.
    closed: AtomicBool,
}

impl Queue {
    fn len(&self) -> usize {
        self.lock().len()
    }

    /// Adds `messages`; answers how many wait now.
    fn extend(&self, messages: Vec<Arc<Settlement>>) -> usize {
        let mut queue = self.lock();
        queue.extend(messages);
        queue.len()
    }

    fn pop(&self) -> Option<Arc<Settlement>> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        self.lock().pop_front()
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Arc<Settlement>>> {
        self.messages.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Closes and empties the queue when the pump returns.
struct CloseOnDrop<'a>(&'a Queue);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::Release);
        let left = std::mem::take(&mut *self.0.lock());
        drop(left);
    }
}

/// A call slot's turn: it takes the next message off the queue, runs its call, and goes on
/// while messages wait (the slot freed by a call is taken again at once, without a wake-up
/// of the pump or of another task per message). It ends, giving the slot back to the pump,
/// when nothing waits, when the processor stops, or when a call's settlement goes on on
/// this task (its slot is then already free).
struct Shift {
    first: Arc<Settlement>,
    shared: Arc<CallShared>,
    permit: OwnedSemaphorePermit,
}

impl Call for Shift {
    async fn run(self) {
        let Shift {
            first,
            shared,
            mut permit,
        } = self;
        let mut settlement = first;
        loop {
            let call = HandlerCall {
                settlement,
                shared: shared.clone(),
            };
            match call.run(permit).await {
                Some(slot) => permit = slot,
                None => return,
            }
            // Other tasks (the completer, the connection) get their turn now and then.
            tokio::task::coop::consume_budget().await;
            if *shared.stop.borrow() {
                return;
            }
            match shared.queue.pop() {
                Some(next) => settlement = next,
                None => return,
            }
        }
    }
}

/// What the calls of one pump share.
struct CallShared {
    settings: PumpSettings,
    dispatch: Dispatch,
    errors: ErrorReporter,
    /// Takes the auto-completions (see `completions`) when they do not hold the call's slot.
    completer: Option<mpsc::UnboundedSender<Completion>>,
    queue: Arc<Queue>,
    stop: watch::Receiver<bool>,
}

/// One message through the handler, then settled.
struct HandlerCall {
    settlement: Arc<Settlement>,
    shared: Arc<CallShared>,
}

impl HandlerCall {
    /// Runs the call in the slot `permit`; answers the slot when it is free again for the
    /// shift's next call, `None` when it was given up to a settlement going on here.
    async fn run(self, permit: OwnedSemaphorePermit) -> Option<OwnedSemaphorePermit> {
        let message = &self.settlement.message;
        let peek_lock = self.shared.settings.receive_mode == ServiceBusReceiveMode::PeekLock;
        let session_id = message.session_id.clone();
        let span = tracing::info_span!(
            "servicebus.process_message",
            entity = %self.shared.errors.entity_path,
            message_id = message.message_id.as_deref(),
            sequence_number = message.sequence_number,
            delivery_count = message.delivery_count,
            session_id = session_id.as_deref(),
        );
        // A panicking handler is a failed call, not a lost permit with its message left
        // locked.
        let call = CatchPanic((self.shared.dispatch)(self.settlement.clone())).instrument(span);
        // The renewal and settlement futures are inline: the call runs on a task that is
        // kept from call to call (see `call_workers`), so its size costs once, not per
        // message.
        let outcome = if peek_lock {
            self.with_lock_renewed(call).await
        } else {
            call.await
        };
        let failure = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(handler_failure(error)),
            Err(panic) => Some(ServiceBusError::new(
                ErrorKind::Other,
                format!("the message handler panicked: {panic}"),
            )),
        };
        if !peek_lock || self.settlement.is_settled() {
            if let Some(error) = failure {
                self.report(error, ErrorSource::ProcessMessageCallback, &session_id)
                    .await;
            }
            return Some(permit);
        }
        if failure.is_none() && !self.shared.settings.auto_complete {
            // Left to the handler, which did not settle it: the lock runs its course.
            return Some(permit);
        }
        // With pending settlements bounded apart from the calls, the settlement takes a
        // permit of its own and the call's slot (`call_slot`) is free for the next message
        // as soon as the settlement is handed over or goes on here; else the slot is the
        // settlement's until it is done (a session's order depends on it).
        let (mut slot, call_slot) = match &self.shared.settings.settlements {
            Some(settlements) => match settlements.clone().try_acquire_owned() {
                Ok(settling) => (settling, Some(permit)),
                Err(_) => match settlements.clone().acquire_owned().await {
                    Ok(settling) => (settling, Some(permit)),
                    Err(_) => (permit, None),
                },
            },
            None => (permit, None),
        };
        if failure.is_none()
            && call_slot.is_some()
            && let Some(completer) = &self.shared.completer
        {
            let completion = Completion {
                settlement: self.settlement.clone(),
                slot,
            };
            match completer.send(completion) {
                Ok(()) => return call_slot,
                // The completer is gone (it panicked): completed here, then.
                Err(mpsc::error::SendError(completion)) => slot = completion.slot,
            }
        }
        // The settlement goes on on this task; a call's slot apart from it is free meanwhile,
        // and this shift ends with it.
        let shift_ends = call_slot.is_some();
        drop(call_slot);
        let receiver = &self.settlement.receiver;
        match failure {
            None => {
                if let Err(error) = self.settlement.settle(receiver.complete(message)).await {
                    self.report(error, ErrorSource::Complete, &session_id).await;
                }
            }
            Some(error) => {
                let lock_lost = matches!(
                    error.kind,
                    ErrorKind::MessageLockLost | ErrorKind::SessionLockLost
                );
                self.report(error, ErrorSource::ProcessMessageCallback, &session_id)
                    .await;
                // Nothing to give back once the lock is gone (as in .NET's processor). Else
                // the message goes back at once instead of when its lock runs out; the
                // broker dead-letters it once it has failed max-delivery-count times.
                if !lock_lost
                    && let Err(error) = self
                        .settlement
                        .settle(receiver.abandon(message, None))
                        .await
                {
                    self.report(error, ErrorSource::Abandon, &session_id).await;
                }
            }
        }
        (!shift_ends).then_some(slot)
    }

    /// Runs `call` while renewing the message's lock (for up to the maximum duration).
    async fn with_lock_renewed<T>(&self, call: impl Future<Output = T>) -> T {
        let max = self.shared.settings.max_auto_lock_renew_duration;
        let Some(locked_until) = self.settlement.message.locked_until else {
            return call.await;
        };
        if max.is_zero() {
            return call.await;
        }
        let mut call = std::pin::pin!(call);
        // A call done at its first poll (a quick handler) needs no renewal: none is set up.
        let first = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx)));
        if let Poll::Ready(outcome) = first.await {
            return outcome;
        }
        let settlement = &self.settlement;
        let session_id = settlement.message.session_id.as_deref();
        // The renewal and its error report are `$management` and handler futures of
        // several KiB: boxed when they happen, they are not part of every message's call.
        let renewal = keep_renewed(
            locked_until,
            max,
            || Box::pin(settlement.receiver.renew_lock(&settlement.message)),
            |error| {
                Box::pin(
                    self.shared
                        .errors
                        .report(error, ErrorSource::RenewLock, session_id),
                )
            },
        );
        tokio::select! {
            // The call first: one done at this poll never sets the renewal's timer.
            biased;
            outcome = &mut call => outcome,
            () = renewal => call.await,
        }
    }

    async fn report(
        &self,
        error: ServiceBusError,
        source: ErrorSource,
        session_id: &Option<String>,
    ) {
        Box::pin(
            self.shared
                .errors
                .report(error, source, session_id.as_deref()),
        )
        .await;
    }
}

/// Waits until every task holding a permit of `permits` (of `total`) has finished.
pub(crate) async fn wait_for_all(permits: &Semaphore, total: u32) {
    // Closing is the only way acquire fails, and nothing closes these semaphores.
    let _all = permits.acquire_many(total).await;
}

/// Sleeps `delay`, or less if the processor is asked to stop; answers whether it stopped.
pub(crate) async fn pause_unless_stopped(
    stop: &mut watch::Receiver<bool>,
    delay: Duration,
) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(delay) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

/// A handler's error, in the error handler's terms: itself when it is a Service Bus error
/// (a settlement the handler tried), else described under [`ErrorKind::Other`].
fn handler_failure(error: HandlerError) -> ServiceBusError {
    match error.downcast::<ServiceBusError>() {
        Ok(error) => *error,
        Err(error) => ServiceBusError::new(
            ErrorKind::Other,
            format!("the message handler failed: {error}"),
        ),
    }
}

/// Runs a handler's future, turning a panic into an error with the panic's message.
struct CatchPanic(BoxFuture<Result<(), HandlerError>>);

impl Future for CatchPanic {
    type Output = Result<Result<(), HandlerError>, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let future = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| future.poll(cx))) {
            Ok(poll) => poll.map(Ok),
            Err(panic) => Poll::Ready(Err(panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned()))),
        }
    }
}
