//! Broker-wide state shared by every connection: the entities (each queue behind its own
//! lock, with the connections waiting for its messages), the store, the clock and the
//! security settings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use busbar_core::{
    Clock, ConsumerId, Journal, Namespace, NewMessage, Queue, QueueConfig, ReceiveMode,
    SubQueueKind,
};
use busbar_servicebus::sas::{Claims, Policy};
use busbar_store::{BodyRef, Record, Recovered, RecoveredMessage, Store, StoreError};
use bytes::Bytes;
use tokio::sync::Notify;

use crate::config::{BrokerConfig, QueueProperties};

/// ForwardTo hops followed before a message is kept where it is.
pub const MAX_FORWARD_HOPS: usize = 4;
/// Dead-lettered messages moved per queue per sweep.
const FORWARD_BATCH: usize = 256;
/// The consumer holding the locks of messages being forwarded.
const FORWARDER: ConsumerId = ConsumerId(u64::MAX);

/// Dead-letter reason of messages that could not be forwarded.
pub const REASON_TRANSFER_FAILED: &str = "TransferFailure";

/// Where an incoming message goes.
pub enum Route {
    Deliver(Arc<Entity>),
    /// Forwarding failed at this queue: store in its transfer dead-letter queue.
    TransferFailed(Arc<Entity>, String),
}

/// Clock skew tolerated on token expiry.
pub const TOKEN_GRACE_SECS: u64 = 10;

/// What the broker enforces on every connection.
#[derive(Debug, Clone)]
pub struct Settings {
    pub max_message_size: u64,
    pub policies: Vec<Policy>,
}

/// A queue and the connections waiting for it to have something to deliver.
#[derive(Debug)]
pub struct EntityState {
    pub queue: Queue,
    /// Connections with a receiver that found nothing to deliver; woken (and forgotten)
    /// when messages become available.
    waiters: Vec<Arc<Notify>>,
}

impl EntityState {
    /// Asks to be woken when messages may have become available. Call it with the lock
    /// held right after finding nothing, so no enqueue can slip in between.
    pub fn wait(&mut self, notify: &Arc<Notify>) {
        if !self.waiters.iter().any(|w| Arc::ptr_eq(w, notify)) {
            self.waiters.push(Arc::clone(notify));
        }
    }

    /// The waiters to wake; wake them after releasing the lock.
    pub fn take_waiters(&mut self) -> Vec<Arc<Notify>> {
        std::mem::take(&mut self.waiters)
    }
}

/// One queue entity.
#[derive(Debug)]
pub struct Entity {
    /// As defined (case preserved).
    pub name: String,
    /// Where messages sent here go instead (ForwardTo), lower case.
    pub forward_to: Option<String>,
    /// Where this queue's dead-lettered messages go (ForwardDeadLetteredMessagesTo).
    pub forward_dead_lettered_to: Option<String>,
    state: Mutex<EntityState>,
}

impl Entity {
    /// Locks the entity. A poisoned lock (a panic while it was held) is taken over: queue
    /// operations change state only after journaling, so the state is still consistent.
    pub fn lock(&self) -> MutexGuard<'_, EntityState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Wakes every waiter in `waiters`.
pub fn wake(waiters: Vec<Arc<Notify>>) {
    for waiter in waiters {
        waiter.notify_one();
    }
}

/// The broker's shared state.
pub struct Broker<S: Store> {
    pub store: Arc<S>,
    pub clock: Arc<dyn Clock>,
    pub settings: Settings,
    entities: RwLock<HashMap<String, Arc<Entity>>>,
}

impl<S: Store> Broker<S> {
    /// Builds the broker from what the store recovered, creating the configured queues
    /// that don't exist yet (existing ones keep their messages and take the configured
    /// properties) and saving the catalog.
    pub fn open(
        store: Arc<S>,
        recovered: Recovered,
        config: &BrokerConfig,
        policies: Vec<Policy>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, OpenError> {
        let mut namespace = match &recovered.catalog {
            Some(json) => {
                Namespace::from_json(json).map_err(|e| OpenError::Catalog(e.to_string()))?
            }
            None => Namespace::new(),
        };
        for queue in &config.queues {
            let queue_config = queue_config(&queue.properties);
            let result = if namespace.queue(&queue.name).is_some() {
                namespace
                    .update_queue(&queue.name, queue_config)
                    .map(|_| ())
            } else {
                namespace
                    .create_queue(&queue.name, queue_config)
                    .map(|_| ())
            };
            result.map_err(|e| OpenError::Catalog(e.to_string()))?;
        }
        store.save_catalog(&namespace.to_json())?;

        let mut by_entity: HashMap<u32, Vec<RecoveredMessage>> = HashMap::new();
        for message in recovered.messages {
            by_entity.entry(message.entity).or_default().push(message);
        }
        let mut entities = HashMap::new();
        for definition in namespace.queues() {
            let mut messages = by_entity
                .remove(&definition.main_entity)
                .unwrap_or_default();
            for entity in [
                definition.dead_letter_entity,
                definition.transfer_dead_letter_entity,
                busbar_core::dedup::marker_entity(definition.main_entity),
            ] {
                messages.extend(by_entity.remove(&entity).unwrap_or_default());
            }
            let queue = Queue::restore(
                definition.name.clone(),
                definition.config.clone(),
                definition.main_entity,
                definition.dead_letter_entity,
                &recovered.last_seq,
                messages,
            );
            entities.insert(
                definition.name.to_ascii_lowercase(),
                Arc::new(Entity {
                    name: definition.name.clone(),
                    forward_to: definition
                        .config
                        .forward_to
                        .as_ref()
                        .map(|t| t.to_ascii_lowercase()),
                    forward_dead_lettered_to: definition
                        .config
                        .forward_dead_lettered_to
                        .as_ref()
                        .map(|t| t.to_ascii_lowercase()),
                    state: Mutex::new(EntityState {
                        queue,
                        waiters: Vec::new(),
                    }),
                }),
            );
        }
        Ok(Broker {
            store,
            clock,
            settings: Settings {
                max_message_size: config.max_message_size,
                policies,
            },
            entities: RwLock::new(entities),
        })
    }

    /// Case-insensitive lookup.
    pub fn entity(&self, name: &str) -> Option<Arc<Entity>> {
        let entities = self
            .entities
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entities.get(&name.to_ascii_lowercase()).cloned()
    }

    pub fn entities(&self) -> Vec<Arc<Entity>> {
        let entities = self
            .entities
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut list: Vec<_> = entities.values().cloned().collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// Where a message sent to `entity` is stored: `entity` itself, or the end of its
    /// ForwardTo chain. A chain longer than [`MAX_FORWARD_HOPS`] (a cycle) or naming a
    /// missing queue fails: the message goes to the transfer dead-letter queue of the
    /// queue where forwarding stopped.
    pub fn route(&self, entity: &Arc<Entity>) -> Route {
        let mut current = Arc::clone(entity);
        for _ in 0..MAX_FORWARD_HOPS {
            let Some(next) = current.forward_to.as_deref() else {
                return Route::Deliver(current);
            };
            match self.entity(next) {
                Some(next) => current = next,
                None => {
                    let description = format!("The forwarding target '{next}' does not exist.");
                    return Route::TransferFailed(current, description);
                }
            }
        }
        if current.forward_to.is_some() {
            let description = format!(
                "The message was forwarded more than {MAX_FORWARD_HOPS} times from '{}'.",
                entity.name
            );
            return Route::TransferFailed(current, description);
        }
        Route::Deliver(current)
    }

    /// Stores `batch` where `route` says: the destination queue, or the transfer
    /// dead-letter queue where forwarding failed. Wakes the queue's waiters on success.
    pub fn store_routed(
        &self,
        route: &Route,
        batch: Vec<NewMessage>,
        now_ms: i64,
        journal: &mut StoreJournal<'_, S>,
    ) -> Result<std::ops::Range<busbar_store::Seq>, busbar_core::CoreError> {
        let (entity, failure) = match route {
            Route::Deliver(entity) => (entity, None),
            Route::TransferFailed(entity, description) => (entity, Some(description)),
        };
        let (result, waiters) = {
            let mut state = entity.lock();
            let result = match failure {
                None => state.queue.enqueue(batch, now_ms, journal),
                Some(description) => {
                    tracing::warn!(entity = %entity.name, %description, "forwarding failed");
                    state.queue.transfer_dead_letter(
                        batch,
                        now_ms,
                        REASON_TRANSFER_FAILED,
                        description,
                        journal,
                    )
                }
            };
            let waiters = if result.is_ok() {
                state.take_waiters()
            } else {
                Vec::new()
            };
            (result, waiters)
        };
        wake(waiters);
        result
    }

    /// Moves dead-lettered messages of queues with ForwardDeadLetteredMessagesTo to their
    /// target: enqueued there (journaled) before being completed here, so a crash in
    /// between duplicates rather than loses. Returns how many moved.
    pub fn forward_dead_letters(&self) -> usize {
        let mut moved = 0;
        for source in self.entities() {
            let Some(target_name) = source.forward_dead_lettered_to.as_deref() else {
                continue;
            };
            let Some(Route::Deliver(target)) = self.entity(target_name).map(|t| self.route(&t))
            else {
                continue;
            };
            if Arc::ptr_eq(&source, &target) {
                continue;
            }
            moved += self.move_dead_letters(&source, &target);
        }
        moved
    }

    fn move_dead_letters(&self, source: &Arc<Entity>, target: &Arc<Entity>) -> usize {
        let now = self.now_ms();
        let mut journal = self.journal();
        let mut taken = Vec::new();
        {
            let mut state = source.lock();
            while taken.len() < FORWARD_BATCH {
                match state.queue.next_for_delivery(
                    SubQueueKind::DeadLetter,
                    ReceiveMode::PeekLock,
                    FORWARDER,
                    now,
                    &mut journal,
                ) {
                    Ok(Some(delivery)) => taken.push(delivery),
                    Ok(None) => break,
                    Err(error) => {
                        tracing::error!(entity = %source.name, %error, "dead-letter forwarding failed");
                        break;
                    }
                }
            }
        }
        if taken.is_empty() {
            return 0;
        }
        let mut batch = Vec::with_capacity(taken.len());
        let mut tokens = Vec::with_capacity(taken.len());
        for delivery in &taken {
            let body = match &delivery.body {
                Some(body) => body.clone(),
                None => match self.store.read_body(delivery.body_ref) {
                    Ok(body) => body,
                    Err(error) => {
                        tracing::error!(entity = %source.name, %error, "dead-letter body unreadable");
                        continue;
                    }
                },
            };
            batch.push(NewMessage {
                body,
                message_id: delivery.meta.message_id.clone(),
                session_id: delivery.meta.session_id.clone(),
                ttl_ms: None,
                scheduled_at_ms: None,
            });
            if let Some(lock) = delivery.lock {
                tokens.push(lock.token);
            }
        }
        let count = batch.len();
        let enqueued = {
            let mut state = target.lock();
            let result = state.queue.enqueue(batch, now, &mut journal);
            let waiters = if result.is_ok() {
                state.take_waiters()
            } else {
                Vec::new()
            };
            drop(state);
            wake(waiters);
            result
        };
        let mut state = source.lock();
        match enqueued {
            Ok(_) => {
                for token in tokens {
                    if let Err(error) =
                        state
                            .queue
                            .complete(SubQueueKind::DeadLetter, token, now, &mut journal)
                    {
                        tracing::error!(entity = %source.name, %error, "dead-letter forwarding: completing the original failed");
                    }
                }
                count
            }
            Err(error) => {
                tracing::error!(entity = %target.name, %error, "dead-letter forwarding: enqueue failed");
                state.queue.release_all(FORWARDER);
                0
            }
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn now_unix_secs(&self) -> u64 {
        u64::try_from(self.now_ms() / 1000).unwrap_or(0)
    }

    /// A journal writing to this broker's store.
    pub fn journal(&self) -> StoreJournal<'_, S> {
        StoreJournal {
            store: &self.store,
            commit: None,
        }
    }

    /// Runs due lock expiries, message expiries (TTL) and scheduled activations on every
    /// entity; wakes the
    /// waiters of those that changed. Returns how many messages changed.
    pub fn sweep(&self) -> usize {
        let now = self.now_ms();
        let mut changed = 0;
        for entity in self.entities() {
            let mut journal = self.journal();
            let waiters = {
                let mut state = entity.lock();
                if state.queue.next_deadline().is_none_or(|at| at > now) {
                    continue;
                }
                let mut n = match state.queue.expire_locks(now, &mut journal) {
                    Ok(n) => n,
                    Err(error) => {
                        tracing::error!(entity = %entity.name, %error, "lock expiry failed");
                        0
                    }
                };
                n += match state.queue.expire_messages(now, &mut journal) {
                    Ok(n) => n,
                    Err(error) => {
                        tracing::error!(entity = %entity.name, %error, "message expiry failed");
                        0
                    }
                };
                n += match state.queue.activate_scheduled(now, &mut journal) {
                    Ok(n) => n,
                    Err(error) => {
                        tracing::error!(entity = %entity.name, %error, "scheduled activation failed");
                        0
                    }
                };
                changed += n;
                if n == 0 {
                    continue;
                }
                state.take_waiters()
            };
            wake(waiters);
        }
        changed
    }

    /// Whether `claims` let a link use `path` (checked at attach).
    pub fn authorized(
        &self,
        claims: &[Claims],
        path: &str,
        allows: impl Fn(&Claims) -> bool,
    ) -> bool {
        let now = self.now_unix_secs();
        claims
            .iter()
            .any(|c| c.covers(path) && !c.is_expired(now, TOKEN_GRACE_SECS) && allows(c))
    }
}

/// Why the broker could not start from its data directory.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("catalog: {0}")]
    Catalog(String),
}

/// The core's journal over the store. Keeps the commit future of the last append: the
/// store resolves it only once everything appended before it is durable too.
pub struct StoreJournal<'a, S: Store> {
    store: &'a S,
    commit: Option<S::Commit>,
}

impl<S: Store> StoreJournal<'_, S> {
    /// The commit to await before acknowledging what was journaled, if anything was.
    pub fn into_commit(self) -> Option<S::Commit> {
        self.commit
    }
}

impl<S: Store> Journal for StoreJournal<'_, S> {
    fn append(&mut self, records: Vec<Record>) -> Result<Vec<BodyRef>, StoreError> {
        let (refs, commit) = self.store.append(records)?;
        self.commit = Some(commit);
        Ok(refs)
    }

    fn read_body(&mut self, body: BodyRef) -> Result<Bytes, StoreError> {
        self.store.read_body(body)
    }

    fn dead_letter_body(
        &mut self,
        original: &Bytes,
        reason: Option<&str>,
        description: Option<&str>,
    ) -> Bytes {
        busbar_servicebus::message::dead_letter_body(original, reason, description)
    }
}

/// The core's queue settings for configured properties.
pub fn queue_config(properties: &QueueProperties) -> QueueConfig {
    QueueConfig {
        lock_duration_ms: properties.lock_duration_ms,
        max_delivery_count: properties.max_delivery_count,
        default_ttl_ms: properties.default_ttl_ms,
        dead_lettering_on_expiration: properties.dead_lettering_on_expiration,
        requires_duplicate_detection: properties.requires_duplicate_detection,
        duplicate_detection_window_ms: properties.duplicate_detection_window_ms,
        requires_session: properties.requires_session,
        forward_to: properties.forward_to.clone(),
        forward_dead_lettered_to: properties.forward_dead_lettered_to.clone(),
        ..QueueConfig::default()
    }
}

impl<S: Store> busbar_http::Admin for Broker<S> {
    fn queues(&self) -> Vec<busbar_http::QueueInfo> {
        self.entities().iter().map(|e| queue_info(e)).collect()
    }

    fn queue(&self, name: &str) -> Option<busbar_http::QueueInfo> {
        self.entity(name).map(|e| queue_info(&e))
    }
}

fn queue_info(entity: &Entity) -> busbar_http::QueueInfo {
    let state = entity.lock();
    let counts = state.queue.counts();
    let config = state.queue.config();
    busbar_http::QueueInfo {
        name: entity.name.clone(),
        active_message_count: counts.active,
        scheduled_message_count: counts.scheduled,
        deferred_message_count: counts.deferred,
        locked_message_count: counts.locked,
        dead_letter_message_count: counts.dead_letter,
        transfer_message_count: 0,
        transfer_dead_letter_message_count: 0,
        total_message_count: counts.active
            + counts.scheduled
            + counts.deferred
            + counts.dead_letter,
        lock_duration_ms: config.lock_duration_ms,
        max_delivery_count: config.max_delivery_count,
        default_message_time_to_live_ms: config.default_ttl_ms,
        dead_lettering_on_message_expiration: config.dead_lettering_on_expiration,
        requires_duplicate_detection: config.requires_duplicate_detection,
        requires_session: config.requires_session,
        forward_to: config.forward_to.clone(),
        forward_dead_lettered_messages_to: config.forward_dead_lettered_to.clone(),
    }
}
