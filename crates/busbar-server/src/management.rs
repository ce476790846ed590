//! The `$management` node of a queue or subscription (or of its dead-letter queue): lock
//! renewal, peek, scheduling, deferred receive and settlement by lock token; and of a
//! topic: scheduling and cancelling. Responses use the camelCase status properties and
//! always name an `errorCondition` on failure.

use std::collections::HashMap;
use std::sync::Arc;

use busbar_amqp::value::{Timestamp, Value};
use busbar_core::{ConsumerId, CoreError, Disposition, ReceiveMode, SubQueueKind};
use busbar_servicebus::conditions;
use busbar_servicebus::message::{Stamp, inbound, properties_to_modify, stamped_delivery};
use busbar_servicebus::request::{Request, management_response};
use busbar_servicebus::rules::{rule_entry, rule_from_request};
use busbar_store::Store;
use bytes::Bytes;
use uuid::Uuid;

use crate::broker::{
    Broker, Entity, NamespaceStats, Route, RuleChangeError, Settled, TopicEntity, wake,
};

/// Locks taken through `receive-by-sequence-number` belong to no link: they are settled
/// by lock token and simply run out if forgotten.
const MANAGEMENT_CONSUMER: ConsumerId = ConsumerId(0);

/// Bytes of messages one peek answers at most (at least one message): a page of a thousand
/// large messages would otherwise be one response of hundreds of megabytes.
const PEEK_RESPONSE_BYTES: usize = 1 << 20;

pub struct Context<'a, S: Store> {
    pub broker: &'a Arc<Broker<S>>,
    pub entity: &'a Arc<Entity>,
    pub kind: SubQueueKind,
    /// The message sessions the requesting connection's receivers hold on this entity,
    /// with the receiver holding each: session operations are for their holder only.
    pub caller_message_sessions: &'a [(Box<str>, ConsumerId)],
}

/// A failed request: status code, condition, description.
struct Failure(i32, &'static str, String);

impl Failure {
    fn bad_request(description: impl Into<String>) -> Self {
        Failure(400, conditions::ARGUMENT_ERROR, description.into())
    }

    fn from_core(error: &CoreError) -> Self {
        match error {
            CoreError::LockLost => Failure(
                410,
                conditions::MESSAGE_LOCK_LOST,
                "The lock supplied is invalid. Either the lock expired, or the message has \
                 already been removed from the queue."
                    .to_owned(),
            ),
            CoreError::MessageNotFound(seq) => Failure(
                404,
                conditions::MESSAGE_NOT_FOUND,
                format!("The message with sequence number {seq} was not found."),
            ),
            CoreError::NotAllowed(why) => Failure(400, conditions::NOT_ALLOWED, why.to_string()),
            CoreError::SessionLockLost => Failure(
                410,
                conditions::SESSION_LOCK_LOST,
                "The session lock has expired or is not held; accept the session again.".to_owned(),
            ),
            CoreError::SessionCannotBeLocked(id) => Failure(
                409,
                conditions::SESSION_CANNOT_BE_LOCKED,
                format!("The session '{id}' is locked by another receiver."),
            ),
            CoreError::QuotaExceeded { .. } => {
                Failure(403, conditions::RESOURCE_LIMIT_EXCEEDED, error.to_string())
            }
            CoreError::Store(store) if store.is_retryable() => {
                Failure(503, conditions::SERVER_BUSY, store.to_string())
            }
            other => Failure(500, conditions::INTERNAL_ERROR, other.to_string()),
        }
    }
}

/// What a request produced: the response body (or none), and the commit to await before
/// answering when the request changed durable state.
type Outcome<S> = Result<(Option<Value>, Option<<S as Store>::Commit>), Failure>;

/// Handles one request; returns the encoded response and the commit it waits for.
pub fn handle<S: Store>(context: &Context<'_, S>, request: &Request) -> (Bytes, Option<S::Commit>) {
    let operation = request.operation.as_deref().unwrap_or("");
    // A session receiver's message operations name its session: only its holder may
    // run them (lock tokens alone are capabilities; a session id is not).
    if field(request, "session-id")
        .and_then(Value::as_str)
        .is_some()
        && operation != "com.microsoft:get-message-sessions"
        && let Err(failure) = held_session(context, request)
    {
        return respond::<S>(&context.broker.stats, request, Err(failure));
    }
    let outcome: Outcome<S> = match operation {
        "com.microsoft:renew-lock" => renew_lock(context, request),
        "com.microsoft:peek-message" => peek(context, request),
        "com.microsoft:receive-by-sequence-number" => receive_deferred(context, request),
        "com.microsoft:update-disposition" => update_disposition(context, request),
        "com.microsoft:schedule-message" => schedule(context, request),
        "com.microsoft:cancel-scheduled-message" => cancel_scheduled(context, request),
        "com.microsoft:renew-session-lock" => renew_session_lock(context, request),
        "com.microsoft:get-session-state" => get_session_state(context, request),
        "com.microsoft:set-session-state" => set_session_state(context, request),
        "com.microsoft:get-message-sessions" => message_sessions(context, request),
        "com.microsoft:add-rule" => add_rule(context, request),
        "com.microsoft:remove-rule" => remove_rule(context, request),
        "com.microsoft:enumerate-rules" => enumerate_rules(context, request),
        other => Err(Failure(
            501,
            conditions::NOT_IMPLEMENTED,
            format!("The operation '{other}' is not supported."),
        )),
    };
    respond::<S>(&context.broker.stats, request, outcome)
}

/// Handles one request to a topic's `$management` node.
pub fn handle_topic<S: Store>(
    broker: &Arc<Broker<S>>,
    topic: &Arc<TopicEntity>,
    request: &Request,
) -> (Bytes, Option<S::Commit>) {
    let operation = request.operation.as_deref().unwrap_or("");
    let outcome: Outcome<S> = match operation {
        "com.microsoft:schedule-message" => send_allowed(&topic.name, topic.status())
            .and_then(|()| schedule_on(broker, &Route::Publish(Arc::clone(topic)), request)),
        "com.microsoft:cancel-scheduled-message" => sequence_numbers(request).and_then(|seqs| {
            let mut journal = broker.journal();
            topic
                .lock()
                .scheduled
                .cancel_scheduled_all(&seqs, &mut journal)
                .map_err(|e| Failure::from_core(&e))?;
            Ok((None, journal.into_commit()))
        }),
        other => Err(Failure(
            400,
            conditions::NOT_ALLOWED,
            format!(
                "The operation '{other}' is not available on topic '{}'; use one of its subscriptions.",
                topic.name
            ),
        )),
    };
    respond::<S>(&broker.stats, request, outcome)
}

fn respond<S: Store>(
    stats: &NamespaceStats,
    request: &Request,
    outcome: Outcome<S>,
) -> (Bytes, Option<S::Commit>) {
    let id = request.message_id.as_ref();
    match outcome {
        Ok((Some(Value::Null), commit)) => (
            management_response(id, 204, "No Content", None, None),
            commit,
        ),
        Ok((body, commit)) => (management_response(id, 200, "OK", None, body), commit),
        Err(Failure(status, condition, description)) => {
            stats.count_refusal(condition);
            (
                management_response(id, status, &description, Some(condition), None),
                None,
            )
        }
    }
}

fn field<'r>(request: &'r Request, key: &str) -> Option<&'r Value> {
    request.body.map_get(key)
}

/// Lock tokens arrive as an array (or list) of AMQP uuids in RFC byte order.
fn lock_tokens(request: &Request) -> Result<Vec<Uuid>, Failure> {
    let items = match field(request, "lock-tokens") {
        Some(Value::Array(items) | Value::List(items)) => items,
        _ => {
            return Err(Failure::bad_request(
                "'lock-tokens' must be an array of uuids.",
            ));
        }
    };
    items
        .iter()
        .map(|item| match item {
            Value::Uuid(bytes) => Ok(Uuid::from_bytes(*bytes)),
            _ => Err(Failure::bad_request(
                "'lock-tokens' must be an array of uuids.",
            )),
        })
        .collect()
}

fn sequence_numbers(request: &Request) -> Result<Vec<u64>, Failure> {
    let items = match field(request, "sequence-numbers") {
        Some(Value::Array(items) | Value::List(items)) => items,
        _ => {
            return Err(Failure::bad_request(
                "'sequence-numbers' must be an array of longs.",
            ));
        }
    };
    items
        .iter()
        .map(|item| {
            item.as_i64()
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| {
                    Failure::bad_request("'sequence-numbers' must be an array of longs.")
                })
        })
        .collect()
}

fn renew_lock<S: Store>(context: &Context<'_, S>, request: &Request) -> Outcome<S> {
    let tokens = lock_tokens(request)?;
    let now = context.broker.now_ms();
    let expirations = context
        .entity
        .lock()
        .queue
        .renew_locks(context.kind, &tokens, now)
        .map_err(|e| Failure::from_core(&e))?
        .into_iter()
        .map(|until| Value::Timestamp(Timestamp(until)))
        .collect();
    Ok((
        Some(Value::Map(vec![(
            Value::String("expirations".into()),
            Value::Array(expirations),
        )])),
        None,
    ))
}

/// Encodes a stored message as a peek or deferred receive returns it.
fn encoded<S: Store>(
    context: &Context<'_, S>,
    seq: u64,
    meta: &busbar_store::MessageMeta,
    body: Bytes,
    locked_until_ms: Option<i64>,
) -> Result<Bytes, Failure> {
    let stamp = Stamp {
        sequence_number: i64::try_from(seq).unwrap_or(i64::MAX),
        enqueued_at_ms: meta.enqueued_at_ms,
        delivery_count: meta.delivery_count,
        locked_until_ms,
        lock_token: None,
        state: meta.state as i32,
        expires_at_ms: meta.expires_at_ms,
    };
    let stamped = stamped_delivery(&body, &stamp).map_err(|e| {
        Failure(
            500,
            conditions::INTERNAL_ERROR,
            format!("stored message unreadable: {e}"),
        )
    })?;
    let _ = context;
    Ok(stamped)
}

fn peek<S: Store>(context: &Context<'_, S>, request: &Request) -> Outcome<S> {
    let from = field(request, "from-sequence-number")
        .and_then(Value::as_i64)
        .unwrap_or(1)
        .max(1);
    let count = field(request, "message-count")
        .and_then(Value::as_i64)
        .unwrap_or(1)
        .clamp(1, 1000);
    let from = u64::try_from(from).unwrap_or(1);
    let count = usize::try_from(count).unwrap_or(1);
    // A session receiver peeks its own session only.
    let session = field(request, "session-id").and_then(Value::as_str);
    // Copy what is needed under the lock; read bodies and encode after it.
    let views: Vec<_> = {
        let state = context.entity.lock();
        state
            .queue
            .sub(context.kind)
            .peek(from)
            .filter(|v| session.is_none_or(|id| v.meta.session_id.as_deref() == Some(id)))
            .take(count)
            .map(|v| (v.seq, v.meta.clone(), v.body_ref, v.body.cloned()))
            .collect()
    };
    if views.is_empty() {
        return Ok((Some(Value::Null), None));
    }
    let mut messages = Vec::with_capacity(views.len());
    let mut bytes = 0usize;
    for (seq, meta, body_ref, body) in views {
        // A page holds what fits one response; the client peeks on from the next number.
        if bytes >= PEEK_RESPONSE_BYTES {
            break;
        }
        let body = match body.map_or_else(|| read_stored(context, seq, body_ref), Ok) {
            Ok(body) => body,
            // The messages before it are answered; a peek from it gets the error.
            Err(_) if !messages.is_empty() => break,
            Err(failure) => return Err(failure),
        };
        let message = encoded(context, seq, &meta, body, None)?;
        bytes += message.len();
        messages.push(Value::Map(vec![(
            Value::String("message".into()),
            Value::Binary(message),
        )]));
    }
    Ok((
        Some(Value::Map(vec![(
            Value::String("messages".into()),
            Value::List(messages),
        )])),
        None,
    ))
}

/// Reads a stored body back; one that can't be read (damaged on disk) is an error naming
/// the message, never bytes other than those stored.
fn read_stored<S: Store>(
    context: &Context<'_, S>,
    seq: u64,
    body: busbar_store::BodyRef,
) -> Result<Bytes, Failure> {
    context.broker.store.read_body(body).map_err(|e| {
        Failure(
            500,
            conditions::INTERNAL_ERROR,
            format!("Message {seq} can't be read back: {e}"),
        )
    })
}

fn receive_deferred<S: Store>(context: &Context<'_, S>, request: &Request) -> Outcome<S> {
    let seqs = sequence_numbers(request)?;
    let mode = match field(request, "receiver-settle-mode").and_then(Value::as_i64) {
        Some(0) => ReceiveMode::ReceiveAndDelete,
        _ => ReceiveMode::PeekLock,
    };
    // On a session entity only the session's holder receives its deferred messages, and
    // only that session's.
    let session = if context.kind == SubQueueKind::Main && context.entity.requires_session {
        Some(held_session(context, request)?.0)
    } else {
        None
    };
    let now = context.broker.now_ms();
    let mut journal = context.broker.journal();
    let (mut bodies, deliveries) = {
        let mut state = context.entity.lock();
        // Every body is read before anything changes: one that can't be read fails the
        // request and leaves the messages as they were (in receive-and-delete mode they
        // would otherwise be gone).
        let mut bodies = HashMap::with_capacity(seqs.len());
        for &seq in &seqs {
            let view = state.queue.sub(context.kind).peek(seq).next();
            if let Some(view) = view.filter(|view| view.seq == seq) {
                if session.is_some_and(|id| view.meta.session_id.as_deref() != Some(id)) {
                    return Err(Failure::from_core(&CoreError::MessageNotFound(seq)));
                }
                let body = match view.body {
                    Some(body) => body.clone(),
                    None => read_stored(context, seq, view.body_ref)?,
                };
                bodies.insert(seq, body);
            }
        }
        let deliveries = state
            .queue
            .receive_deferred_all(
                context.kind,
                &seqs,
                mode,
                MANAGEMENT_CONSUMER,
                now,
                &mut journal,
            )
            .map_err(|e| Failure::from_core(&e))?;
        (bodies, deliveries)
    };
    let mut messages = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        let body = match (delivery.body, bodies.remove(&delivery.seq)) {
            (Some(body), _) | (None, Some(body)) => body,
            (None, None) => read_stored(context, delivery.seq, delivery.body_ref)?,
        };
        let locked_until = delivery.lock.map(|l| l.locked_until_ms);
        let message = encoded(context, delivery.seq, &delivery.meta, body, locked_until)?;
        let mut entry = Vec::with_capacity(2);
        if let Some(lock) = delivery.lock {
            entry.push((
                Value::String("lock-token".into()),
                Value::Uuid(*lock.token.as_bytes()),
            ));
        }
        entry.push((Value::String("message".into()), Value::Binary(message)));
        messages.push(Value::Map(entry));
    }
    Ok((
        Some(Value::Map(vec![(
            Value::String("messages".into()),
            Value::List(messages),
        )])),
        journal.into_commit(),
    ))
}

fn update_disposition<S: Store>(context: &Context<'_, S>, request: &Request) -> Outcome<S> {
    let tokens = lock_tokens(request)?;
    let status = field(request, "disposition-status")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_lowercase();
    let properties = properties_to_modify(field(request, "properties-to-modify"));
    let edit_fn = |body: &Bytes| {
        busbar_servicebus::message::with_application_properties(body, &properties)
            .unwrap_or_else(|_| body.clone())
    };
    let edit: Option<busbar_core::BodyEdit<'_>> = (!properties.is_empty()).then_some(&edit_fn as _);
    let text = |key: &str| {
        field(request, key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let disposition = match status.as_str() {
        "completed" => Disposition::Complete,
        "abandoned" => Disposition::Abandon { edit },
        "defered" | "deferred" => Disposition::Defer { edit },
        "suspended" => Disposition::DeadLetter {
            reason: text("deadletter-reason"),
            description: text("deadletter-description"),
            edit,
        },
        other => {
            return Err(Failure::bad_request(format!(
                "Unknown disposition-status '{other}'."
            )));
        }
    };
    let now = context.broker.now_ms();
    let mut journal = context.broker.journal();
    let waiters = {
        let mut state = context.entity.lock();
        state
            .queue
            .settle_all(context.kind, &tokens, disposition, now, &mut journal)
            .map_err(|e| Failure::from_core(&e))?;
        let settled = match disposition {
            Disposition::Complete => Some(Settled::Completed),
            Disposition::Abandon { .. } => Some(Settled::Abandoned),
            Disposition::Defer { .. } | Disposition::DeadLetter { .. } => None,
        };
        if let Some(settled) = settled {
            context
                .entity
                .stats
                .count_settled(settled, tokens.len() as u64);
        }
        if matches!(disposition, Disposition::Abandon { .. }) {
            state.take_waiters()
        } else {
            Vec::new()
        }
    };
    wake(waiters);
    Ok((None, journal.into_commit()))
}

fn schedule<S: Store>(context: &Context<'_, S>, request: &Request) -> Outcome<S> {
    if context.kind != SubQueueKind::Main {
        return Err(Failure(
            400,
            conditions::NOT_ALLOWED,
            "Messages can't be scheduled on a dead-letter queue.".to_owned(),
        ));
    }
    send_allowed(&context.entity.name, context.entity.status())?;
    schedule_on(
        context.broker,
        &context.broker.route(context.entity),
        request,
    )
}

/// Scheduling is sending: refused while the entity's status refuses sends.
fn send_allowed(entity: &str, status: busbar_core::EntityStatus) -> Result<(), Failure> {
    if status.allows_send() {
        return Ok(());
    }
    Err(Failure(
        conditions::management_status(conditions::ENTITY_DISABLED),
        conditions::ENTITY_DISABLED,
        conditions::entity_disabled_description(entity, status.as_str()),
    ))
}

/// Stores the request's messages where `route` says; answers their sequence numbers.
fn schedule_on<S: Store>(broker: &Arc<Broker<S>>, route: &Route, request: &Request) -> Outcome<S> {
    let items = match field(request, "messages") {
        Some(Value::List(items) | Value::Array(items)) => items,
        _ => return Err(Failure::bad_request("'messages' must be a list of maps.")),
    };
    let mut batch = Vec::with_capacity(items.len());
    for item in items {
        let Some(Value::Binary(encoded)) = item.map_get("message") else {
            return Err(Failure::bad_request(
                "each scheduled message needs a 'message' binary.",
            ));
        };
        let parsed = inbound(encoded)
            .map_err(|e| Failure::bad_request(format!("a scheduled message can't be read: {e}")))?;
        batch.push(parsed.into());
    }
    let now = broker.now_ms();
    let mut journal = broker.journal();
    let range = broker
        .store_routed(route, batch, now, &mut journal)
        .map_err(|e| Failure::from_core(&e))?;
    let seqs = range
        .map(|seq| Value::Long(i64::try_from(seq).unwrap_or(i64::MAX)))
        .collect();
    Ok((
        Some(Value::Map(vec![(
            Value::String("sequence-numbers".into()),
            Value::Array(seqs),
        )])),
        journal.into_commit(),
    ))
}

fn cancel_scheduled<S: Store>(context: &Context<'_, S>, request: &Request) -> Outcome<S> {
    let seqs = sequence_numbers(request)?;
    let mut journal = context.broker.journal();
    context
        .entity
        .lock()
        .queue
        .cancel_scheduled_all(&seqs, &mut journal)
        .map_err(|e| Failure::from_core(&e))?;
    Ok((None, journal.into_commit()))
}

impl From<RuleChangeError> for Failure {
    fn from(error: RuleChangeError) -> Self {
        let description = error.to_string();
        match error {
            RuleChangeError::NotASubscription(_) => {
                Failure(400, conditions::NOT_ALLOWED, description)
            }
            RuleChangeError::AlreadyExists(_) => {
                Failure(409, conditions::ENTITY_ALREADY_EXISTS, description)
            }
            RuleChangeError::NotFound(_) => Failure(404, conditions::NOT_FOUND, description),
            RuleChangeError::Invalid(_) => Failure::bad_request(description),
            RuleChangeError::Store(_) => Failure(500, conditions::INTERNAL_ERROR, description),
        }
    }
}

fn add_rule<S: Store>(context: &Context<'_, S>, request: &Request) -> Outcome<S> {
    let rule = rule_from_request(&request.body).map_err(Failure::bad_request)?;
    context.broker.add_rule(context.entity, rule)?;
    Ok((None, None))
}

fn remove_rule<S: Store>(context: &Context<'_, S>, request: &Request) -> Outcome<S> {
    let name = field(request, "rule-name")
        .and_then(Value::as_str)
        .ok_or_else(|| Failure::bad_request("'rule-name' must be a string."))?;
    context.broker.remove_rule(context.entity, name)?;
    Ok((None, None))
}

/// A page of the subscription's rules (`skip`, `top`); an empty page is 204, which is how
/// paging clients learn they are done.
fn enumerate_rules<S: Store>(context: &Context<'_, S>, request: &Request) -> Outcome<S> {
    let count = |key: &str, default: usize| -> Result<usize, Failure> {
        match field(request, key) {
            None | Some(Value::Null) => Ok(default),
            Some(value) => value
                .as_i64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    Failure::bad_request(format!("'{key}' must be a non-negative int."))
                }),
        }
    };
    let skip = count("skip", 0)?;
    let top = count("top", usize::MAX)?;
    let rules = context.broker.subscription_rules(context.entity)?;
    let page: Vec<Value> = rules.iter().skip(skip).take(top).map(rule_entry).collect();
    if page.is_empty() {
        return Ok((Some(Value::Null), None));
    }
    Ok((
        Some(Value::Map(vec![(
            Value::String("rules".into()),
            Value::List(page),
        )])),
        None,
    ))
}

fn session_id(request: &Request) -> Result<&str, Failure> {
    field(request, "session-id")
        .and_then(Value::as_str)
        .ok_or_else(|| Failure::bad_request("'session-id' must be a string."))
}

fn renew_session_lock<S: Store>(context: &Context<'_, S>, request: &Request) -> Outcome<S> {
    let (id, holder) = held_session(context, request)?;
    let until = context
        .entity
        .lock()
        .queue
        .renew_session_lock(id, holder, context.broker.now_ms())
        .map_err(|e| Failure::from_core(&e))?;
    Ok((
        Some(Value::Map(vec![(
            Value::String("expiration".into()),
            Value::Timestamp(Timestamp(until)),
        )])),
        None,
    ))
}

/// The session the request names, and the caller's receiver holding its lock: session
/// operations are for the lock holder only, never for whoever else knows the id.
fn held_session<'r, S: Store>(
    context: &Context<'_, S>,
    request: &'r Request,
) -> Result<(&'r str, ConsumerId), Failure> {
    let id = session_id(request)?;
    let now = context.broker.now_ms();
    let queue = &context.entity.lock().queue;
    context
        .caller_message_sessions
        .iter()
        .find(|(held, consumer)| **held == *id && queue.holds_session(id, *consumer, now))
        .map(|(_, consumer)| (id, *consumer))
        .ok_or_else(|| Failure::from_core(&CoreError::SessionLockLost))
}

fn get_session_state<S: Store>(context: &Context<'_, S>, request: &Request) -> Outcome<S> {
    let (id, _) = held_session(context, request)?;
    let mut journal = context.broker.journal();
    let state = context
        .entity
        .lock()
        .queue
        .session_state(id, &mut journal)
        .map_err(|e| Failure::from_core(&e))?;
    Ok((
        Some(Value::Map(vec![(
            Value::String("session-state".into()),
            state.map_or(Value::Null, Value::Binary),
        )])),
        None,
    ))
}

fn set_session_state<S: Store>(context: &Context<'_, S>, request: &Request) -> Outcome<S> {
    let (id, _) = held_session(context, request)?;
    let state = match field(request, "session-state") {
        None | Some(Value::Null) => None,
        Some(Value::Binary(bytes)) => Some(bytes.clone()),
        Some(_) => {
            return Err(Failure::bad_request(
                "'session-state' must be binary or null.",
            ));
        }
    };
    let mut journal = context.broker.journal();
    context
        .entity
        .lock()
        .queue
        .set_session_state(id, state, context.broker.now_ms(), &mut journal)
        .map_err(|e| Failure::from_core(&e))?;
    Ok((None, journal.into_commit()))
}

/// Sessions with messages or state, paged by `skip` and `top`; an empty page is 204.
fn message_sessions<S: Store>(context: &Context<'_, S>, request: &Request) -> Outcome<S> {
    let skip = non_negative(request, "skip", 0)?;
    let top = non_negative(request, "top", usize::MAX)?;
    let ids = context.entity.lock().queue.session_ids();
    let page: Vec<Value> = ids
        .into_iter()
        .skip(skip)
        .take(top)
        .map(Value::String)
        .collect();
    if page.is_empty() {
        return Ok((Some(Value::Null), None));
    }
    Ok((
        Some(Value::Map(vec![
            (
                Value::String("skip".into()),
                Value::Int(i32::try_from(skip).unwrap_or(i32::MAX)),
            ),
            (Value::String("sessions-ids".into()), Value::Array(page)),
        ])),
        None,
    ))
}

fn non_negative(request: &Request, key: &str, default: usize) -> Result<usize, Failure> {
    match field(request, key) {
        None | Some(Value::Null) => Ok(default),
        Some(value) => value
            .as_i64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| Failure::bad_request(format!("'{key}' must be a non-negative int."))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use busbar_store::StoreError;

    #[test]
    fn a_store_out_of_space_is_server_busy_and_a_broken_one_an_internal_error() {
        let busy = Failure::from_core(&CoreError::Store(StoreError::NoSpace("full".into())));
        assert_eq!((busy.0, busy.1), (503, conditions::SERVER_BUSY));
        let broken = Failure::from_core(&CoreError::Store(StoreError::Poisoned("eio".into())));
        assert_eq!((broken.0, broken.1), (500, conditions::INTERNAL_ERROR));
    }
}
