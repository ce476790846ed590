//! Broker-wide state shared by every connection: the entities (each queue and
//! subscription behind its own lock, with the connections waiting for its messages; each
//! topic behind its own, with its subscriptions' compiled rules), the store, the clock
//! and the security settings.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use busbar_core::namespace::split_subscription_path;
use busbar_core::{
    Clock, ConsumerId, Delivery, EntityStatus, Journal, Namespace, NewMessage, Queue, QueueConfig,
    ReceiveMode, ResidentBudget, SubQueueKind,
};
use busbar_servicebus::authorization::{self, Action, Denied};
use busbar_servicebus::sas::{self, Claims, Policy};
use busbar_store::{BodyRef, MessageMeta, Record, Recovered, Store, StoreError};
use bytes::Bytes;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::config::{BrokerConfig, QueueProperties};
use crate::limits::{Limits, Usage};

mod descriptions;
mod lifecycle;
mod metrics;
mod recovered;
mod stats;
mod topics;
mod validation;
pub use descriptions::{
    QueueDescription, RuntimeCounts, SubscriptionDescription, TopicDescription, runtime_counts,
};
pub use lifecycle::EntityError;
use recovered::RecoveredByEntity;
pub use stats::{EntityStats, NamespaceStats, Settled, Traffic};
pub use topics::{
    REASON_FILTER_EXCEPTION, REASON_SESSION_ID_NULL, RuleChangeError, SubscriptionEntry,
    TopicEntity, TopicState, subscription_config,
};
use topics::{define_topic, topic_entity};
pub use validation::entity_name_of;

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
    /// To a topic: copied to the subscriptions whose rules take it.
    Publish(Arc<TopicEntity>),
    /// Forwarding failed at this queue: store in its transfer dead-letter queue.
    TransferFailed(Arc<Entity>, String),
}

/// Clock skew tolerated on token expiry.
pub const TOKEN_GRACE_SECS: u64 = 10;

/// Expiry tolerated on HTTP API tokens: the Python administration client renews its
/// hour-long token only a minute after it expired, and sends the stale one until then.
pub const HTTP_TOKEN_GRACE_SECS: u64 = 120;

/// What the broker enforces on every connection.
#[derive(Debug, Clone)]
pub struct Settings {
    pub max_message_size: u64,
    pub policies: Vec<Policy>,
    /// The HTTP API answers without a token: only when the broker runs on its loopback-only
    /// development key, which every emulator connection string already carries.
    pub open_http: bool,
    pub limits: Limits,
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
    /// Messages need a session id, and receivers a session (RequiresSession; can't change).
    pub requires_session: bool,
    /// Counters for the metrics, since start.
    pub stats: EntityStats,
    /// Where messages go instead; changed by an update.
    forwarding: RwLock<Forwarding>,
    /// An [`EntityStatus`] as `u8`, read on every send and delivery.
    status: AtomicU8,
    /// Set once the entity is deleted: links on it are detached, sends refused.
    deleted: AtomicBool,
    state: Mutex<EntityState>,
}

/// Where a queue's messages go instead of staying, lower case.
#[derive(Debug, Clone, Default)]
struct Forwarding {
    /// ForwardTo: messages sent here.
    to: Option<Arc<str>>,
    /// ForwardDeadLetteredMessagesTo: this queue's dead-lettered messages.
    dead_lettered_to: Option<Arc<str>>,
}

impl Forwarding {
    fn of(config: &QueueConfig) -> Self {
        let lower = |name: &Option<String>| name.as_deref().map(|n| n.to_ascii_lowercase().into());
        Forwarding {
            to: lower(&config.forward_to),
            dead_lettered_to: lower(&config.forward_dead_lettered_to),
        }
    }
}

impl Entity {
    /// The entity holding `queue`, as `definition` describes it.
    fn new(definition: &busbar_core::QueueDefinition, queue: Queue) -> Self {
        Entity {
            name: definition.name.clone(),
            requires_session: definition.config.requires_session,
            stats: EntityStats::new(queue.sub(SubQueueKind::DeadLetter).last_seq()),
            forwarding: RwLock::new(Forwarding::of(&definition.config)),
            status: AtomicU8::new(definition.config.status.to_u8()),
            deleted: AtomicBool::new(false),
            state: Mutex::new(EntityState {
                queue,
                waiters: Vec::new(),
            }),
        }
    }

    /// Locks the entity. A poisoned lock (a panic while it was held) is taken over: queue
    /// operations change state only after journaling, so the state is still consistent.
    pub fn lock(&self) -> MutexGuard<'_, EntityState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn forwarding(&self) -> Forwarding {
        self.forwarding
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Where messages sent here go instead (ForwardTo), lower case.
    pub fn forward_to(&self) -> Option<Arc<str>> {
        self.forwarding().to
    }

    /// Where this queue's dead-lettered messages go (ForwardDeadLetteredMessagesTo).
    pub fn forward_dead_lettered_to(&self) -> Option<Arc<str>> {
        self.forwarding().dead_lettered_to
    }

    pub fn status(&self) -> EntityStatus {
        EntityStatus::from_u8(self.status.load(Ordering::Relaxed))
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Takes a changed config: the queue's, the forwarding and the status.
    fn reconfigure(&self, config: QueueConfig) {
        *self
            .forwarding
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Forwarding::of(&config);
        self.status.store(config.status.to_u8(), Ordering::Relaxed);
        self.lock().queue.set_config(config);
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
    topics: RwLock<HashMap<String, Arc<TopicEntity>>>,
    /// The catalog as last saved; changed (and saved) when rules are added or removed.
    namespace: Mutex<Namespace>,
    /// Message bodies kept in memory, over every queue (`Limits::max_resident_body_bytes`).
    pub resident: ResidentBudget,
    /// What all connections hold together, against [`Settings::limits`].
    pub usage: Usage,
    /// Connections, server errors and throttled requests since start, for the metrics.
    pub stats: NamespaceStats,
    /// Where traced messages' spans go; off unless an OTLP endpoint is configured.
    pub tracer: crate::otlp::Tracer,
    /// Why connections are being closed, once the broker stops serving.
    stop_reason: std::sync::OnceLock<String>,
    /// Counts entity changes at run time (created, updated, deleted), so connections look
    /// again at the links they hold.
    changes: tokio::sync::watch::Sender<u64>,
}

/// What connections are told when the broker stops for an ordinary shutdown.
const SHUTTING_DOWN: &str = "The broker is shutting down.";

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
        let now = clock.now_ms();
        namespace.stamp_created(now);
        for queue in &config.queues {
            define_queue(&mut namespace, queue, now)
                .map_err(|e| OpenError::Catalog(e.to_string()))?;
        }
        for topic in &config.topics {
            define_topic(&mut namespace, topic, now)
                .map_err(|e| OpenError::Catalog(e.to_string()))?;
        }
        store.save_catalog(&namespace.to_json())?;
        let recovered = if recovered.catalog.is_some() {
            remove_orphans(&*store, &namespace, recovered)?
        } else {
            // Without a catalog nothing says which entities were deleted.
            recovered
        };

        let resident = ResidentBudget::new(config.limits.max_resident_body_bytes);
        let by_entity = RecoveredByEntity::new(recovered.messages);
        let mut entities = HashMap::new();
        for definition in namespace.queues() {
            let owned = [
                definition.main_entity,
                definition.dead_letter_entity,
                definition.transfer_dead_letter_entity,
                busbar_core::entity_id::marker_entity(definition.main_entity),
                busbar_core::entity_id::session_state_entity(definition.main_entity),
            ];
            let queue = Queue::restore_within(
                definition.name.clone(),
                definition.config.clone(),
                definition.main_entity,
                definition.dead_letter_entity,
                &recovered.last_seq,
                by_entity.of(&owned),
                &resident,
            );
            entities.insert(
                definition.name.to_ascii_lowercase(),
                Arc::new(Entity::new(definition, queue)),
            );
        }
        let mut topics = HashMap::new();
        for definition in namespace.topics() {
            let markers = [busbar_core::entity_id::marker_entity(definition.entity)];
            let scheduled = [definition.entity];
            let topic = topic_entity(
                definition,
                &entities,
                &recovered.last_seq,
                by_entity.of(&markers),
                by_entity.of(&scheduled),
                &resident,
            )?;
            topics.insert(definition.name.to_ascii_lowercase(), Arc::new(topic));
        }
        Ok(Broker {
            store,
            clock,
            settings: Settings {
                max_message_size: config.max_message_size,
                policies,
                open_http: config.uses_development_key(),
                limits: config.limits.clone(),
            },
            usage: Usage::default(),
            stats: NamespaceStats::default(),
            tracer: crate::otlp::Tracer::default(),
            entities: RwLock::new(entities),
            topics: RwLock::new(topics),
            namespace: Mutex::new(namespace),
            resident,
            stop_reason: std::sync::OnceLock::new(),
            changes: tokio::sync::watch::Sender::new(0),
        })
    }

    /// Changes whenever an entity is created, updated or deleted at run time: a connection
    /// then detaches the links whose entity is gone or no longer allows what they do.
    pub fn entity_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Says why the broker stops serving, before connections are told to close; the first
    /// reason given stays.
    pub fn set_stop_reason(&self, reason: String) {
        let _ = self.stop_reason.set(reason);
    }

    /// The description connections close with when the broker stops serving.
    pub fn stop_reason(&self) -> &str {
        self.stop_reason.get().map_or(SHUTTING_DOWN, String::as_str)
    }

    /// Case-insensitive queue (or subscription) lookup.
    pub fn entity(&self, name: &str) -> Option<Arc<Entity>> {
        lookup(&self.entities, name)
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
            let Some(next) = current.forward_to() else {
                return Route::Deliver(current);
            };
            let next = &*next;
            match self.entity(next) {
                Some(next) => current = next,
                None if let Some(topic) = self.topic(next) => return Route::Publish(topic),
                None => {
                    let description = format!("The forwarding target '{next}' does not exist.");
                    return Route::TransferFailed(current, description);
                }
            }
        }
        if current.forward_to().is_some() {
            let description = format!(
                "The message was forwarded more than {MAX_FORWARD_HOPS} times from '{}'.",
                entity.name
            );
            return Route::TransferFailed(current, description);
        }
        Route::Deliver(current)
    }

    /// Why `batch` can't go where `route` says, if it can't: a queue that requires sessions
    /// takes only messages with a session id.
    pub fn refuse_without_session(route: &Route, batch: &[NewMessage]) -> Option<String> {
        match route {
            Route::Deliver(entity)
                if entity.requires_session && batch.iter().any(|m| m.session_id.is_none()) =>
            {
                Some(format!(
                    "'{}' requires sessions: every message sent to it needs a session id.",
                    entity.name
                ))
            }
            _ => None,
        }
    }

    /// Stores `batch` where `route` says: the destination queue, the subscriptions of a
    /// topic, or the transfer dead-letter queue where forwarding failed. Wakes the waiters
    /// of the queues that got messages. Returns the sequence numbers given by the queue, or
    /// for a topic those of the messages it keeps until they are due (each subscription
    /// numbers its own copies).
    pub fn store_routed(
        &self,
        route: &Route,
        batch: Vec<NewMessage>,
        now_ms: i64,
        journal: &mut StoreJournal<'_, S>,
    ) -> Result<std::ops::Range<busbar_store::Seq>, busbar_core::CoreError> {
        self.store_routed_within(route, batch, now_ms, journal, &mut Vec::new())
    }

    /// [`Self::store_routed`], with the topics already being published to on this path:
    /// a subscription forwarding back into one of them is a cycle.
    fn store_routed_within(
        &self,
        route: &Route,
        batch: Vec<NewMessage>,
        now_ms: i64,
        journal: &mut StoreJournal<'_, S>,
        publishing: &mut Vec<Arc<TopicEntity>>,
    ) -> Result<std::ops::Range<busbar_store::Seq>, busbar_core::CoreError> {
        let (entity, failure) = match route {
            Route::Deliver(entity) => (entity, None),
            Route::TransferFailed(entity, description) => (entity, Some(description)),
            Route::Publish(topic) => {
                return self.publish(topic, batch, now_ms, journal, publishing);
            }
        };
        let (result, waiters) = {
            let mut state = entity.lock();
            let result = match failure {
                None => {
                    let bytes_before = state.queue.sub(SubQueueKind::Main).stored_bytes();
                    let stored = state.queue.enqueue(batch, now_ms, journal);
                    if let Ok(seqs) = &stored {
                        let bytes = state.queue.sub(SubQueueKind::Main).stored_bytes();
                        entity.stats.add_incoming(
                            seqs.end - seqs.start,
                            bytes.saturating_sub(bytes_before),
                            now_ms,
                        );
                    }
                    stored
                }
                Some(description) => {
                    tracing::warn!(entity = %entity.name, %description, "forwarding failed");
                    state.queue.dead_letter_new(
                        SubQueueKind::TransferDeadLetter,
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
            let Some(target_name) = source.forward_dead_lettered_to() else {
                continue;
            };
            let target_name = &*target_name;
            let target = match self.entity(target_name) {
                Some(queue) => self.route(&queue),
                None => match self.topic(target_name) {
                    Some(topic) => Route::Publish(topic),
                    None => continue,
                },
            };
            match &target {
                Route::Deliver(queue) if Arc::ptr_eq(&source, queue) => continue,
                Route::Deliver(_) | Route::Publish(_) => {}
                Route::TransferFailed(..) => continue,
            }
            moved += self.move_dead_letters(&source, &target);
        }
        moved
    }

    fn move_dead_letters(&self, source: &Arc<Entity>, target: &Route) -> usize {
        let now = self.now_ms();
        let mut journal = self.journal();
        let taken = take_for_moving(
            &source.name,
            &mut source.lock().queue,
            SubQueueKind::DeadLetter,
            now,
            &mut journal,
        );
        if taken.is_empty() {
            return 0;
        }
        let (batch, tokens) = self.taken_messages(&source.name, &taken);
        let count = batch.len();
        let enqueued = self.store_routed(target, batch, now, &mut journal);
        let mut state = source.lock();
        match enqueued {
            Ok(_) => {
                complete_moved(
                    &source.name,
                    &mut state.queue,
                    SubQueueKind::DeadLetter,
                    &tokens,
                    now,
                    &mut journal,
                );
                count
            }
            Err(error) => {
                // A full target is a normal state, retried on every sweep until it drains.
                if matches!(error, busbar_core::CoreError::QuotaExceeded { .. }) {
                    tracing::debug!(entity = %source.name, %error, "dead-letter forwarding: the target is full");
                } else {
                    tracing::error!(entity = %source.name, %error, "dead-letter forwarding: storing at the target failed");
                }
                state.queue.release_all(FORWARDER);
                0
            }
        }
    }

    /// The messages of deliveries taken for moving, bodies read back where not resident,
    /// with the lock tokens to complete once they are stored elsewhere.
    fn taken_messages(&self, source: &str, taken: &[Delivery]) -> (Vec<NewMessage>, Vec<Uuid>) {
        let mut batch = Vec::with_capacity(taken.len());
        let mut tokens = Vec::with_capacity(taken.len());
        for delivery in taken {
            let body = match &delivery.body {
                Some(body) => body.clone(),
                None => match self.store.read_body(delivery.body_ref) {
                    Ok(body) => body,
                    Err(error) => {
                        tracing::error!(entity = %source, %error, "body unreadable; message left in place");
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
        (batch, tokens)
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
            relaxed: false,
        }
    }

    /// A journal for changes nobody waits to see durable (a completion the client settled
    /// itself): synced with the next group that needs it or shortly after, not on its own.
    pub fn relaxed_journal(&self) -> StoreJournal<'_, S> {
        StoreJournal {
            store: &self.store,
            commit: None,
            relaxed: true,
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
    /// Whether `claims` allow `action` on `path` now (see the dialect's one table of rights).
    pub fn authorize(
        &self,
        claims: &[Claims],
        path: &str,
        action: Action<'_>,
    ) -> Result<(), Denied> {
        authorization::authorize(claims, path, action, self.now_unix_secs(), TOKEN_GRACE_SECS)
    }

    /// Whether an HTTP request with this `Authorization` header value may do `action` on
    /// `path`: a SAS token (after `Bearer `, as some clients send it) whose claims allow
    /// it; no token at all is enough when the HTTP API is open (loopback, development key).
    /// The error is said to the client.
    pub fn authorize_http(
        &self,
        authorization: Option<&str>,
        path: &str,
        action: Action<'_>,
    ) -> Result<(), String> {
        // On the loopback development key a request may come without a token; one that
        // comes with a token is judged, so a wrong key is still told it is wrong.
        if self.settings.open_http && authorization.is_none() {
            return Ok(());
        }
        let token = authorization.ok_or_else(|| {
            "Send a SharedAccessSignature token in the Authorization header.".to_owned()
        })?;
        let token = token.trim();
        let token = match token.get(..7) {
            Some(scheme) if scheme.eq_ignore_ascii_case("Bearer ") => &token[7..],
            _ => token,
        };
        let now = self.now_unix_secs();
        let claims = sas::validate(token, &self.settings.policies, now, HTTP_TOKEN_GRACE_SECS)
            .map_err(|error| error.to_string())?;
        authorization::authorize(&[claims], path, action, now, HTTP_TOKEN_GRACE_SECS)
            .map_err(|denied| denied.to_string())
    }
}

/// Takes up to a batch of available messages of `kind` under the forwarder's lock, to be
/// stored elsewhere and then completed with [`complete_moved`].
fn take_for_moving(
    name: &str,
    queue: &mut Queue,
    kind: SubQueueKind,
    now_ms: i64,
    journal: &mut impl Journal,
) -> Vec<Delivery> {
    let mut taken = Vec::new();
    while taken.len() < FORWARD_BATCH {
        match queue.next_for_delivery(kind, ReceiveMode::PeekLock, FORWARDER, now_ms, journal) {
            Ok(Some(delivery)) => taken.push(delivery),
            Ok(None) => break,
            Err(error) => {
                tracing::error!(entity = %name, %error, "taking messages to move failed");
                break;
            }
        }
    }
    taken
}

fn complete_moved(
    name: &str,
    queue: &mut Queue,
    kind: SubQueueKind,
    tokens: &[Uuid],
    now_ms: i64,
    journal: &mut impl Journal,
) {
    for token in tokens {
        if let Err(error) = queue.complete(kind, *token, now_ms, journal) {
            tracing::error!(entity = %name, %error, "completing a moved message failed");
        }
    }
}

fn lookup<T>(map: &RwLock<HashMap<String, Arc<T>>>, name: &str) -> Option<Arc<T>> {
    let map = map
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    map.get(&name.to_ascii_lowercase()).cloned()
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
    relaxed: bool,
}

impl<S: Store> StoreJournal<'_, S> {
    /// The commit to await before acknowledging what was journaled, if anything was.
    pub fn into_commit(self) -> Option<S::Commit> {
        self.commit
    }
}

impl<S: Store> Journal for StoreJournal<'_, S> {
    fn append(&mut self, records: Vec<Record>) -> Result<Vec<BodyRef>, StoreError> {
        let (refs, commit) = if self.relaxed {
            self.store.append_relaxed(records)?
        } else {
            self.store.append(records)?
        };
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

    fn stand_in_body(&mut self, meta: &MessageMeta, reason: &str, description: &str) -> Bytes {
        busbar_servicebus::message::stand_in_body(
            meta.message_id.as_deref(),
            meta.session_id.as_deref(),
            reason,
            description,
        )
    }
}

/// Creates or updates a queue of the configuration file in the catalog. An existing queue
/// takes the file's settings and keeps those the file can't express (user metadata, ...).
fn define_queue(
    namespace: &mut Namespace,
    queue: &crate::config::QueueDefinition,
    now_ms: i64,
) -> Result<(), busbar_core::NamespaceError> {
    match namespace.queue_mut(&queue.name) {
        Some(definition) => {
            let config = queue_config(&queue.properties, &definition.config);
            if config != definition.config {
                definition.config = config;
                definition.times.updated_at_ms = now_ms;
            }
        }
        None => {
            let config = queue_config(&queue.properties, &QueueConfig::default());
            namespace.create_queue(&queue.name, config)?;
            if let Some(definition) = namespace.queue_mut(&queue.name) {
                definition.times = busbar_core::namespace::EntityTimes::new(now_ms);
            }
        }
    }
    Ok(())
}

/// Removes the records of entities the catalog no longer has (deleted while their
/// messages' removal was not yet durable) and returns what is left.
fn remove_orphans<S: Store>(
    store: &S,
    namespace: &Namespace,
    mut recovered: Recovered,
) -> Result<Recovered, StoreError> {
    let owned = namespace.owned_entity_ids();
    // In place: the recovered messages may be most of the broker's memory at this point.
    let mut removals = Vec::new();
    recovered.messages.retain(|message| {
        let keep = owned.contains(&message.entity);
        if !keep {
            removals.push(Record::Remove {
                entity: message.entity,
                seq: message.seq,
                body: message.body,
            });
        }
        keep
    });
    if !removals.is_empty() {
        tracing::info!(
            messages = removals.len(),
            "removing the messages of deleted entities"
        );
        // Durable with the next group commit; if not, the next start does this again.
        drop(store.append(removals)?);
    }
    Ok(recovered)
}

/// The core's queue settings for configured properties, over `base` for what the file
/// does not set.
pub fn queue_config(properties: &QueueProperties, base: &QueueConfig) -> QueueConfig {
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
        max_size_bytes: properties.max_size_bytes,
        status: properties.status,
        ..base.clone()
    }
}

impl<S: Store> busbar_http::Admin for Broker<S> {
    fn authorize(
        &self,
        authorization: Option<&str>,
        path: &str,
        access: busbar_http::Access,
    ) -> Result<(), String> {
        let action = match access {
            busbar_http::Access::Read => Action::AdminRead,
            busbar_http::Access::Write => Action::AdminWrite,
        };
        self.authorize_http(authorization, path, action)
    }

    fn queues(&self) -> Vec<busbar_http::QueueInfo> {
        self.entities()
            .iter()
            .filter(|e| split_subscription_path(&e.name).is_none())
            .map(|e| queue_info(e))
            .collect()
    }

    fn queue(&self, name: &str) -> Option<busbar_http::QueueInfo> {
        self.entity(name)
            .filter(|e| split_subscription_path(&e.name).is_none())
            .map(|e| queue_info(&e))
    }

    fn topics(&self) -> Vec<busbar_http::TopicInfo> {
        let mut topics: Vec<_> = self.topics().iter().map(|t| self.topic_info(t)).collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        topics
    }

    fn topic(&self, name: &str) -> Option<busbar_http::TopicInfo> {
        Broker::topic(self, name).map(|t| self.topic_info(&t))
    }

    fn metrics(&self) -> busbar_http::metrics::Metrics {
        Broker::metrics(self)
    }
}

fn queue_info(entity: &Entity) -> busbar_http::QueueInfo {
    let state = entity.lock();
    let counts = runtime_counts(&state.queue);
    let config = state.queue.config();
    busbar_http::QueueInfo {
        name: entity.name.clone(),
        active_message_count: counts.active,
        scheduled_message_count: counts.scheduled,
        deferred_message_count: counts.deferred,
        locked_message_count: counts.locked,
        dead_letter_message_count: counts.dead_letter,
        transfer_message_count: counts.transfer,
        transfer_dead_letter_message_count: counts.transfer_dead_letter,
        total_message_count: counts.total(),
        lock_duration_ms: config.lock_duration_ms,
        max_delivery_count: config.max_delivery_count,
        default_message_time_to_live_ms: config.default_ttl_ms,
        dead_lettering_on_message_expiration: config.dead_lettering_on_expiration,
        requires_duplicate_detection: config.requires_duplicate_detection,
        requires_session: config.requires_session,
        forward_to: config.forward_to.clone(),
        forward_dead_lettered_messages_to: config.forward_dead_lettered_to.clone(),
        enqueued_total: entity.stats.incoming.messages(),
        delivered_total: entity.stats.outgoing.messages(),
    }
}
