//! The REST runtime API on the broker: [`busbar_http::rest::Messaging`] over the same send
//! path and queue operations the AMQP connections use.
//!
//! A send is routed like an AMQP transfer (forwarding, topics and their rules, duplicate
//! detection, size quotas) and answered once its records are durable. A receive takes the
//! next message under [`HTTP_CONSUMER`]'s lock, waiting on the entity's waiters up to the
//! request's timeout (at most [`Limits::max_waiting_http_receives`](crate::limits::Limits)
//! such receives at once); a receive-and-delete completes it as the AMQP path does. Locks
//! taken here are settled by lock token and run out like any other if forgotten.

use std::sync::Arc;
use std::time::Duration;

use busbar_core::namespace::split_subscription_path;
use busbar_core::{
    ConsumerId, CoreError, Delivery, Disposition, EntityStatus, REASON_UNREADABLE, SubQueueKind,
};
use busbar_http::rest::{
    Failure, Messaging, Outgoing, ReceiveMode, Received, Reply, Right, Settle,
};
use busbar_servicebus::address::{self, Address, SubQueue};
use busbar_servicebus::authorization::Action;
use busbar_servicebus::conditions;
use busbar_servicebus::message::{Stamp, inbound};
use busbar_servicebus::rest_message::{
    BATCH_CONTENT_TYPE, batch_from_http, from_http, renewed_lock, to_http,
};
use busbar_store::{Store, StoreHealth};
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use crate::broker::{Broker, Entity, Route, Settled, wake};
use crate::{Current, ServedBroker};

/// The holder of every lock taken through the REST API: such locks belong to no link.
pub const HTTP_CONSUMER: ConsumerId = ConsumerId(u64::MAX - 1);

const REOPENING: &str = "The broker is reopening its store; try again shortly.";

/// The REST runtime API over whichever broker is serving.
pub(crate) struct HttpMessaging {
    current: Arc<Current>,
    /// Turns true when the HTTP listener stops: waiting receives answer 204 at once, so
    /// they don't hold up the shutdown.
    stopping: watch::Receiver<bool>,
}

impl HttpMessaging {
    pub(crate) fn new(current: Arc<Current>, stopping: watch::Receiver<bool>) -> Self {
        HttpMessaging { current, stopping }
    }

    fn broker(&self) -> Option<Arc<ServedBroker>> {
        self.current.broker()
    }
}

impl Messaging for HttpMessaging {
    fn authorize(
        &self,
        authorization: Option<&str>,
        entity: &str,
        right: Right,
    ) -> Result<(), String> {
        let broker = self.broker().ok_or_else(|| REOPENING.to_owned())?;
        let action = match right {
            Right::Send => Action::HttpSend,
            Right::Listen => Action::HttpReceive,
        };
        broker.authorize_http(authorization, entity, action)
    }

    fn max_body_bytes(&self) -> usize {
        self.broker().map_or(0, |broker| {
            usize::try_from(broker.settings.max_message_size).unwrap_or(usize::MAX)
        })
    }

    fn send(&self, entity: &str, message: Outgoing) -> Reply<()> {
        let broker = self.broker();
        let entity = entity.to_owned();
        Box::pin(async move {
            let broker = serving(broker)?;
            counted(&broker, send(&broker, &entity, message).await)
        })
    }

    fn receive(&self, entity: &str, mode: ReceiveMode, wait: Duration) -> Reply<Option<Received>> {
        let broker = self.broker();
        let entity = entity.to_owned();
        let stopping = self.stopping.clone();
        Box::pin(async move {
            let broker = serving(broker)?;
            counted(
                &broker,
                receive(&broker, &entity, mode, wait, stopping).await,
            )
        })
    }

    fn settle(
        &self,
        entity: &str,
        _message: &str,
        lock_token: &str,
        settle: Settle,
    ) -> Reply<Option<String>> {
        // The lock token alone names the locked message; the id or sequence number before
        // it in the URI is not needed to find it.
        let broker = self.broker();
        let entity = entity.to_owned();
        let lock_token = lock_token.to_owned();
        Box::pin(async move {
            let broker = serving(broker)?;
            counted(
                &broker,
                settle_locked(&broker, &entity, &lock_token, settle).await,
            )
        })
    }
}

/// `result`, with a failure that is the broker's doing counted for the metrics, as the
/// AMQP condition it stands for.
fn counted<T, S: Store>(broker: &Broker<S>, result: Result<T, Failure>) -> Result<T, Failure> {
    let condition = match &result {
        Err(Failure::Busy(_)) => conditions::SERVER_BUSY,
        Err(Failure::Internal(_)) => conditions::INTERNAL_ERROR,
        _ => return result,
    };
    broker.stats.count_refusal(condition);
    result
}

fn serving(broker: Option<Arc<ServedBroker>>) -> Result<Arc<ServedBroker>, Failure> {
    broker.ok_or_else(|| Failure::Busy(REOPENING.to_owned()))
}

/// 403 for an entity whose status refuses the operation.
fn disabled(entity: &str, status: EntityStatus) -> Failure {
    Failure::Forbidden(format!(
        "The messaging entity '{entity}' is {}: it refuses this operation.",
        status.as_str()
    ))
}

fn gone(entity: &str) -> Failure {
    Failure::EntityNotFound(format!(
        "The messaging entity '{entity}' could not be found."
    ))
}

/// The queue, topic or subscription (or a dead-letter queue) the request path names.
fn parse_entity(entity: &str) -> Result<(String, SubQueue), Failure> {
    match address::parse(entity) {
        Ok(Address::Entity { path, sub }) => Ok((path, sub)),
        _ => Err(gone(entity)),
    }
}

async fn send<S: Store>(
    broker: &Broker<S>,
    entity: &str,
    message: Outgoing,
) -> Result<(), Failure> {
    let is_batch = message.content_type.as_deref().is_some_and(|t| {
        t.trim()
            .to_ascii_lowercase()
            .starts_with(BATCH_CONTENT_TYPE)
    });
    let encoded = if is_batch {
        batch_from_http(&message.body)
    } else {
        from_http(
            message.body,
            message.content_type.as_deref(),
            message.broker_properties.as_deref(),
            &message.custom_properties,
        )
        .map(|one| vec![one])
    }
    .map_err(|error| Failure::BadRequest(error.to_string()))?;
    send_encoded(broker, entity, encoded).await.map(drop)
}

/// Sends AMQP messages to a queue or topic the way a REST send does (routing, status,
/// sessions, back-pressure) and answers once they are durable, with the sequence numbers
/// the queue gave them (for a topic, those it keeps scheduled).
pub(crate) async fn send_encoded<S: Store>(
    broker: &Broker<S>,
    entity: &str,
    encoded: Vec<bytes::Bytes>,
) -> Result<std::ops::Range<busbar_store::Seq>, Failure> {
    let (path, sub) = parse_entity(entity)?;
    if sub != SubQueue::Main {
        return Err(Failure::BadRequest(format!(
            "'{entity}' is a dead-letter queue: messages can't be sent to it."
        )));
    }
    let (route, status) = match broker.topic(&path) {
        Some(topic) => {
            let status = topic.status();
            (Route::Publish(topic), status)
        }
        None => match broker.entity(&path) {
            Some(queue) if split_subscription_path(&queue.name).is_none() => {
                (broker.route(&queue), queue.status())
            }
            _ => return Err(gone(entity)),
        },
    };
    if !status.allows_send() {
        return Err(disabled(entity, status));
    }
    let batch = encoded
        .iter()
        .map(|amqp| inbound(amqp).map(Into::into))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| Failure::Internal(format!("The message could not be encoded: {error}")))?;
    if let Some(why) = Broker::<S>::refuse_without_session(&route, &batch) {
        return Err(Failure::BadRequest(why));
    }
    // Sends not yet durable count with the AMQP connections' against the broker's limit:
    // over it, a REST send is told to come back rather than pile up.
    let limit = broker.settings.limits.max_uncommitted_bytes;
    let held = broker.usage.uncommitted_bytes();
    if held > limit {
        return Err(Failure::Busy(format!(
            "The broker holds {held} bytes of sends not yet durable, over its limit of {limit}; try again shortly."
        )));
    }
    let _uncommitted = Uncommitted::count(broker, encoded.iter().map(|m| m.len() as u64).sum());
    let now = broker.now_ms();
    let mut journal = broker.journal();
    let seqs = broker
        .store_routed(&route, batch, now, &mut journal)
        .map_err(|error| core_failure(&error))?;
    durable(broker, journal.into_commit()).await?;
    Ok(seqs)
}

/// Bytes of one REST send counted as not yet durable, until dropped (answered, or the
/// client went away).
struct Uncommitted<'b> {
    usage: &'b crate::limits::Usage,
    bytes: u64,
}

impl<'b> Uncommitted<'b> {
    fn count<S: Store>(broker: &'b Broker<S>, bytes: u64) -> Self {
        broker.usage.set_uncommitted(0, bytes);
        Uncommitted {
            usage: &broker.usage,
            bytes,
        }
    }
}

impl Drop for Uncommitted<'_> {
    fn drop(&mut self) {
        self.usage.set_uncommitted(self.bytes, 0);
    }
}

/// Waits until `commit` is durable, or answers 503 when the store holds the write longer
/// than the limits allow (a full disk).
pub(crate) async fn durable<S: Store>(
    broker: &Broker<S>,
    commit: Option<S::Commit>,
) -> Result<(), Failure> {
    let Some(commit) = commit else {
        return Ok(());
    };
    match tokio::time::timeout(broker.settings.limits.held_write_timeout, commit).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) if error.is_retryable() => Err(Failure::Busy(error.to_string())),
        Ok(Err(error)) => Err(Failure::Internal(error.to_string())),
        Err(_) => Err(Failure::Busy(
            "The store could not write in time (is the disk full?); try again later.".to_owned(),
        )),
    }
}

pub(crate) fn core_failure(error: &CoreError) -> Failure {
    match error {
        CoreError::QuotaExceeded { .. } => Failure::Forbidden(error.to_string()),
        CoreError::LockLost => Failure::LockNotFound(
            "The lock supplied is invalid: it expired, or the message was already removed."
                .to_owned(),
        ),
        CoreError::NotAllowed(why) => Failure::BadRequest((*why).to_owned()),
        CoreError::Store(store) if store.is_retryable() => Failure::Busy(store.to_string()),
        other => {
            tracing::error!(error = %other, "REST request failed");
            Failure::Internal(other.to_string())
        }
    }
}

/// The queue or subscription (and which of its queues) a receive or settlement names.
fn receivable<S: Store>(
    broker: &Broker<S>,
    entity: &str,
) -> Result<(Arc<Entity>, SubQueueKind), Failure> {
    let (path, sub) = parse_entity(entity)?;
    let queue = broker.entity(&path).ok_or_else(|| gone(entity))?;
    let kind = match sub {
        SubQueue::Main => SubQueueKind::Main,
        SubQueue::DeadLetter => SubQueueKind::DeadLetter,
        SubQueue::TransferDeadLetter => SubQueueKind::TransferDeadLetter,
    };
    if !queue.status().allows_receive() {
        return Err(disabled(entity, queue.status()));
    }
    if queue.requires_session && kind == SubQueueKind::Main {
        return Err(Failure::BadRequest(format!(
            "'{entity}' requires sessions, and the REST API has no session receivers."
        )));
    }
    Ok((queue, kind))
}

async fn receive<S: Store>(
    broker: &Broker<S>,
    entity: &str,
    mode: ReceiveMode,
    wait: Duration,
    mut stopping: watch::Receiver<bool>,
) -> Result<Option<Received>, Failure> {
    let (queue, kind) = receivable(broker, entity)?;
    let deadline = tokio::time::Instant::now() + wait;
    let notify = Arc::new(Notify::new());
    let mut permit = None;
    loop {
        // The entity may be deleted or disabled while the receive waits.
        if queue.is_deleted() {
            return Err(gone(entity));
        }
        if !queue.status().allows_receive() {
            return Err(disabled(entity, queue.status()));
        }
        // A receive-and-delete message leaves by a write once taken: not while the store
        // can't write.
        let can_take =
            mode == ReceiveMode::PeekLock || matches!(broker.store.health(), StoreHealth::Ok);
        if can_take && let Some(delivery) = take_next(broker, &queue, kind, &notify)? {
            return deliver(broker, &queue, kind, mode, delivery).map(Some);
        }
        if permit.is_none() {
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            let limits = &broker.settings.limits;
            permit = Some(
                broker
                    .usage
                    .wait_http_receive(limits)
                    .map_err(|exceeded| Failure::Busy(exceeded.to_string()))?,
            );
        }
        let pause = if can_take {
            deadline
        } else {
            // Nothing wakes a receive when the disk recovers: look again shortly.
            deadline.min(tokio::time::Instant::now() + Duration::from_millis(100))
        };
        tokio::select! {
            () = notify.notified() => {}
            () = tokio::time::sleep_until(pause) => {
                if tokio::time::Instant::now() >= deadline {
                    return Ok(None);
                }
            }
            _ = stopping.wait_for(|stopped| *stopped) => return Ok(None),
        }
    }
}

/// Locks the next available message for [`HTTP_CONSUMER`], or registers `notify` to be
/// woken when one may have arrived.
fn take_next<S: Store>(
    broker: &Broker<S>,
    queue: &Entity,
    kind: SubQueueKind,
    notify: &Arc<Notify>,
) -> Result<Option<Delivery>, Failure> {
    let now = broker.now_ms();
    let mut journal = broker.journal();
    let next = {
        let mut state = queue.lock();
        let next = state.queue.next_for_delivery(
            kind,
            busbar_core::ReceiveMode::PeekLock,
            HTTP_CONSUMER,
            now,
            &mut journal,
        );
        if matches!(next, Ok(None)) {
            state.wait(notify);
        }
        next
    };
    // Expiries met on the way are not waited for: nothing acknowledges them.
    drop(journal.into_commit());
    next.map_err(|error| core_failure(&error))
}

/// The locked `delivery` as a response; a receive-and-delete completes it first. A
/// message whose stored form can't be read is dead-lettered (set aside in a dead-letter
/// queue), as an AMQP delivery would do.
fn deliver<S: Store>(
    broker: &Broker<S>,
    queue: &Entity,
    kind: SubQueueKind,
    mode: ReceiveMode,
    delivery: Delivery,
) -> Result<Received, Failure> {
    let Some(lock) = delivery.lock else {
        return Err(Failure::Internal(
            "a message was taken without a lock".to_owned(),
        ));
    };
    let now = broker.now_ms();
    queue
        .stats
        .add_outgoing(1, u64::from(delivery.body_ref.len), now);
    let peek_lock = mode == ReceiveMode::PeekLock;
    let stamp = Stamp::of(&delivery, peek_lock.then_some(lock.locked_until_ms));
    let read = match delivery.body {
        Some(body) => Ok(body),
        None => broker
            .store
            .read_body(delivery.body_ref)
            .map_err(|error| error.to_string()),
    }
    .and_then(|body| {
        to_http(&body, &stamp, peek_lock.then_some(lock.token)).map_err(|e| e.to_string())
    });
    // Nothing acknowledges these changes, so nothing waits for their sync: a crash before
    // it delivers the message again (at least once), as over AMQP.
    let mut journal = broker.relaxed_journal();
    let message = match read {
        Ok(message) => message,
        Err(why) => {
            tracing::error!(entity = %queue.name, seq = delivery.seq, %why, "message unreadable");
            let disposition = match kind {
                SubQueueKind::Main => Disposition::DeadLetter {
                    reason: Some(REASON_UNREADABLE),
                    description: Some(&why),
                    edit: None,
                },
                _ => Disposition::Defer { edit: None },
            };
            let set_aside =
                queue
                    .lock()
                    .queue
                    .settle_all(kind, &[lock.token], disposition, now, &mut journal);
            if let Err(error) = set_aside {
                tracing::error!(entity = %queue.name, %error, "setting an unreadable message aside failed");
            }
            drop(journal.into_commit());
            return Err(Failure::Internal(format!(
                "Message {} can't be read: {why}",
                delivery.seq
            )));
        }
    };
    if !peek_lock {
        queue
            .lock()
            .queue
            .complete(kind, lock.token, now, &mut journal)
            .map_err(|error| core_failure(&error))?;
        drop(journal.into_commit());
    }
    Ok(Received {
        body: message.body,
        content_type: message.content_type,
        broker_properties: message.broker_properties,
        custom_properties: message.custom_properties,
        lock_path: peek_lock.then(|| format!("{}/{}", delivery.seq, lock.token.hyphenated())),
    })
}

async fn settle_locked<S: Store>(
    broker: &Broker<S>,
    entity: &str,
    lock_token: &str,
    settle: Settle,
) -> Result<Option<String>, Failure> {
    let (queue, kind) = receivable(broker, entity)?;
    let token = Uuid::parse_str(lock_token)
        .map_err(|_| Failure::LockNotFound(format!("'{lock_token}' is not a lock token.")))?;
    let now = broker.now_ms();
    if settle == Settle::RenewLock {
        let until = queue
            .lock()
            .queue
            .renew_lock(kind, token, now)
            .map_err(|error| core_failure(&error))?;
        return Ok(Some(renewed_lock(token, until)));
    }
    let disposition = match settle {
        Settle::Unlock => Disposition::Abandon { edit: None },
        _ => Disposition::Complete,
    };
    let mut journal = broker.journal();
    let waiters = {
        let mut state = queue.lock();
        state
            .queue
            .settle_all(kind, &[token], disposition, now, &mut journal)
            .map_err(|error| core_failure(&error))?;
        if settle == Settle::Unlock {
            state.take_waiters()
        } else {
            Vec::new()
        }
    };
    wake(waiters);
    durable(broker, journal.into_commit()).await?;
    let settled = match settle {
        Settle::Unlock => Settled::Abandoned,
        _ => Settled::Completed,
    };
    queue.stats.count_settled(settled, 1);
    Ok(None)
}
