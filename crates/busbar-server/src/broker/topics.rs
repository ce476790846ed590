//! Topics on the broker: publishing to a topic's subscriptions through their rules (now, or
//! when a message scheduled on the topic comes due), the rules kept in the catalog and
//! changed at run time, and building topics from the catalog at start.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use busbar_core::namespace::{
    EntityTimes, RuleDescription, TopicDefinition, split_subscription_path, subscription_path,
};
use busbar_core::rules::{Rule, select};
use busbar_core::topic::{Topic, TopicConfig};
use busbar_core::{
    EntityStatus, Namespace, NewMessage, Queue, QueueConfig, ResidentBudget, SubQueueKind,
};
use busbar_servicebus::filtering::{FilterView, apply_rule_action};
use busbar_servicebus::message::inbound;
use busbar_store::{RecoveredMessage, Store, StoreError};

use super::{
    Broker, Entity, FORWARDER, MAX_FORWARD_HOPS, OpenError, Route, StoreJournal, Traffic,
    complete_moved, lookup, queue_info, take_for_moving,
};
use crate::config::SubscriptionProperties;

/// One topic: its duplicate detection and its subscriptions with their rules.
#[derive(Debug)]
pub struct TopicEntity {
    /// As defined (case preserved).
    pub name: String,
    /// An [`EntityStatus`] as `u8`, read on every send.
    status: AtomicU8,
    /// Set once the topic is deleted: links on it are detached.
    deleted: AtomicBool,
    /// Last send (ms since the Unix epoch; 0: none since start). Not durable.
    accessed_at_ms: AtomicI64,
    /// Messages the topic took since start (duplicates dropped at the door are not
    /// counted), with their sizes, for the metrics.
    pub incoming: Traffic,
    state: Mutex<TopicState>,
}

#[derive(Debug)]
pub struct TopicState {
    pub topic: Topic,
    /// Messages scheduled on the topic, kept until due and then published (under the
    /// topic's own entity ids).
    pub scheduled: Queue,
    /// Shared so a publish can copy to the subscriptions without holding the topic's lock
    /// (subscriptions may forward to other topics).
    pub subscriptions: Arc<[SubscriptionEntry]>,
}

/// A subscription as its topic sees it.
#[derive(Debug, Clone)]
pub struct SubscriptionEntry {
    /// The queue holding the subscription's messages.
    pub entity: Arc<Entity>,
    pub rules: Vec<Rule>,
    /// A message a filter fails on is dead-lettered here (else just not taken).
    pub dead_letter_on_filter_error: bool,
}

impl TopicEntity {
    pub fn status(&self) -> EntityStatus {
        EntityStatus::from_u8(self.status.load(Ordering::Relaxed))
    }

    pub(super) fn set_status(&self, status: EntityStatus) {
        self.status.store(status.to_u8(), Ordering::Relaxed);
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    pub(super) fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
    }

    /// The last send since start, if any.
    pub fn accessed_at_ms(&self) -> Option<i64> {
        Some(self.accessed_at_ms.load(Ordering::Relaxed)).filter(|&at| at > 0)
    }

    /// Locks the topic; taken before any of its subscriptions' locks, never after.
    pub fn lock(&self) -> MutexGuard<'_, TopicState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Why a rule could not be added or removed.
#[derive(Debug, thiserror::Error)]
pub enum RuleChangeError {
    #[error("'{0}' is not a subscription; rules belong to subscriptions")]
    NotASubscription(String),
    #[error("a rule named '{0}' already exists")]
    AlreadyExists(String),
    /// Worded as the service words it; the JS SDK recognises a missing entity by it.
    #[error("The messaging entity '{0}' could not be found.")]
    NotFound(String),
    #[error("invalid rule: {0}")]
    Invalid(String),
    #[error("saving the catalog failed: {0}")]
    Store(#[from] StoreError),
}

impl<S: Store> Broker<S> {
    /// The rules of the subscription `entity` is.
    pub fn subscription_rules(
        &self,
        entity: &Entity,
    ) -> Result<Vec<RuleDescription>, RuleChangeError> {
        let (topic, name) = split_subscription_path(&entity.name)
            .ok_or_else(|| RuleChangeError::NotASubscription(entity.name.clone()))?;
        let namespace = self
            .namespace
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        namespace
            .subscription_rules(topic, name)
            .map(<[RuleDescription]>::to_vec)
            .ok_or_else(|| RuleChangeError::NotASubscription(entity.name.clone()))
    }

    /// Adds `rule` to the subscription `entity` is; saved before it takes effect.
    pub fn add_rule(&self, entity: &Entity, rule: RuleDescription) -> Result<(), RuleChangeError> {
        Rule::compile(&rule).map_err(|e| RuleChangeError::Invalid(e.to_string()))?;
        self.change_rules(entity, |rules| {
            if rules
                .iter()
                .any(|r| r.name.eq_ignore_ascii_case(&rule.name))
            {
                return Err(RuleChangeError::AlreadyExists(rule.name.clone()));
            }
            rules.push(rule);
            Ok(())
        })
    }

    /// Removes the rule named `name` from the subscription `entity` is.
    pub fn remove_rule(&self, entity: &Entity, name: &str) -> Result<(), RuleChangeError> {
        self.change_rules(entity, |rules| {
            let before = rules.len();
            rules.retain(|r| !r.name.eq_ignore_ascii_case(name));
            if rules.len() == before {
                return Err(RuleChangeError::NotFound(format!(
                    "{}/Rules/{name}",
                    entity.name
                )));
            }
            Ok(())
        })
    }

    /// Applies `change` to a subscription's rules: in a copy of the catalog, saved, then
    /// kept and compiled into the topic.
    pub(super) fn change_rules(
        &self,
        entity: &Entity,
        change: impl FnOnce(&mut Vec<RuleDescription>) -> Result<(), RuleChangeError>,
    ) -> Result<(), RuleChangeError> {
        let not_a_subscription = || RuleChangeError::NotASubscription(entity.name.clone());
        let (topic_name, name) =
            split_subscription_path(&entity.name).ok_or_else(not_a_subscription)?;
        let topic = self.topic(topic_name).ok_or_else(not_a_subscription)?;
        let mut namespace = self
            .namespace
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut rules = namespace
            .subscription_rules(topic_name, name)
            .ok_or_else(not_a_subscription)?
            .to_vec();
        change(&mut rules)?;
        let compiled = rules
            .iter()
            .map(Rule::compile)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| RuleChangeError::Invalid(e.to_string()))?;
        let mut changed = namespace.clone();
        changed
            .set_subscription_rules(topic_name, name, rules)
            .map_err(|_| not_a_subscription())?;
        self.store.save_catalog(&changed.to_json())?;
        *namespace = changed;
        let mut state = topic.lock();
        let subscriptions: Vec<SubscriptionEntry> = state
            .subscriptions
            .iter()
            .map(|s| SubscriptionEntry {
                entity: Arc::clone(&s.entity),
                rules: if std::ptr::eq(Arc::as_ptr(&s.entity), entity) {
                    compiled.clone()
                } else {
                    s.rules.clone()
                },
                dead_letter_on_filter_error: s.dead_letter_on_filter_error,
            })
            .collect();
        state.subscriptions = subscriptions.into();
        Ok(())
    }

    /// Case-insensitive topic lookup.
    pub fn topic(&self, name: &str) -> Option<Arc<TopicEntity>> {
        lookup(&self.topics, name)
    }

    /// Copies `batch` to every subscription of `topic` whose rules take it: once
    /// unchanged if a rule without action matches, once more per matching rule with an
    /// action (annotated by it and named in `RuleName`).
    pub(super) fn publish(
        &self,
        topic: &Arc<TopicEntity>,
        batch: Vec<NewMessage>,
        now_ms: i64,
        journal: &mut StoreJournal<'_, S>,
        publishing: &mut Vec<Arc<TopicEntity>>,
    ) -> Result<std::ops::Range<busbar_store::Seq>, busbar_core::CoreError> {
        topic.accessed_at_ms.fetch_max(now_ms, Ordering::Relaxed);
        let (now, scheduled, taken) = {
            let mut state = topic.lock();
            if state.topic.config().max_size_bytes.is_some() {
                state.topic.ensure_room(topic_size(&state), &batch)?;
            }
            let admitted = state.topic.admit(batch, now_ms, journal)?;
            let taken: (u64, u64) = (
                admitted.len() as u64,
                admitted.iter().map(|m| m.body.len() as u64).sum(),
            );
            let (later, now): (Vec<_>, Vec<_>) = admitted
                .into_iter()
                .partition(|m| m.scheduled_at_ms.is_some_and(|at| at > now_ms));
            let scheduled = if later.is_empty() {
                0..0
            } else {
                // Kept by the topic until due; see `publish_due` for the TTL.
                let later = later
                    .into_iter()
                    .map(|m| NewMessage { ttl_ms: None, ..m })
                    .collect::<Vec<_>>();
                state.scheduled.enqueue(later, now_ms, journal)?
            };
            (now, scheduled, taken)
        };
        topic.incoming.add(taken.0, taken.1);
        self.publish_admitted(topic, now, now_ms, journal, publishing)?;
        Ok(scheduled)
    }

    /// Copies messages the topic already admitted to its subscriptions.
    fn publish_admitted(
        &self,
        topic: &Arc<TopicEntity>,
        admitted: Vec<NewMessage>,
        now_ms: i64,
        journal: &mut StoreJournal<'_, S>,
        publishing: &mut Vec<Arc<TopicEntity>>,
    ) -> Result<(), busbar_core::CoreError> {
        let subscriptions = Arc::clone(&topic.lock().subscriptions);
        if admitted.is_empty() || subscriptions.is_empty() {
            return Ok(());
        }
        // Read once per message, not once per subscription. Messages were scanned on the
        // way in, so reading fails only on a broker bug; such a message has no properties.
        let views: Vec<FilterView> = admitted
            .iter()
            .map(|m| FilterView::read(&m.body).unwrap_or_default())
            .collect();
        publishing.push(Arc::clone(topic));
        let mut result = Ok(());
        for subscription in subscriptions.iter() {
            let (copies, refused) = subscription_copies(subscription, &admitted, &views);
            if !refused.is_empty() {
                let mut state = subscription.entity.lock();
                for copy in refused {
                    if let Err(error) = state.queue.dead_letter_new(
                        SubQueueKind::DeadLetter,
                        [copy.message],
                        now_ms,
                        copy.reason,
                        &copy.description,
                        journal,
                    ) {
                        result = Err(error);
                        break;
                    }
                }
                if result.is_err() {
                    break;
                }
            }
            if copies.is_empty() {
                continue;
            }
            let route = match self.route(&subscription.entity) {
                Route::Publish(next) if publishing.iter().any(|t| Arc::ptr_eq(t, &next)) => {
                    let description = format!(
                        "The message was forwarded from '{}' back to topic '{}'.",
                        subscription.entity.name, next.name
                    );
                    Route::TransferFailed(Arc::clone(&subscription.entity), description)
                }
                Route::Publish(_) if publishing.len() > MAX_FORWARD_HOPS => {
                    let description = format!(
                        "The message was forwarded through more than {MAX_FORWARD_HOPS} topics."
                    );
                    Route::TransferFailed(Arc::clone(&subscription.entity), description)
                }
                route => route,
            };
            if let Err(error) =
                self.store_routed_within(&route, copies, now_ms, journal, publishing)
            {
                result = Err(error);
                break;
            }
        }
        publishing.pop();
        result
    }

    /// Publishes the scheduled messages of topics that came due to their subscriptions
    /// (rules are evaluated now, as the message enters the topic). Published before being
    /// completed in the topic's schedule, so a crash in between duplicates rather than
    /// loses. Returns how many were published.
    pub fn publish_due(&self) -> usize {
        let now = self.now_ms();
        let mut published = 0;
        for topic in self.topics() {
            let mut journal = self.journal();
            let taken = {
                let mut state = topic.lock();
                if state.scheduled.next_deadline().is_none_or(|at| at > now) {
                    continue;
                }
                if let Err(error) = state.scheduled.activate_scheduled(now, &mut journal) {
                    tracing::error!(topic = %topic.name, %error, "scheduled activation failed");
                    continue;
                }
                take_for_moving(
                    &topic.name,
                    &mut state.scheduled,
                    SubQueueKind::Main,
                    now,
                    &mut journal,
                )
            };
            if taken.is_empty() {
                continue;
            }
            let (stored, tokens) = self.taken_messages(&topic.name, &taken);
            // The stored copy carries no TTL (it must not expire before it is due); the
            // message's own TTL is in its header and starts counting now.
            let batch: Vec<NewMessage> = stored
                .into_iter()
                .map(|message| {
                    let ttl_ms = inbound(&message.body).ok().and_then(|m| m.ttl_ms);
                    NewMessage { ttl_ms, ..message }
                })
                .collect();
            let count = batch.len();
            let result = self.publish_admitted(&topic, batch, now, &mut journal, &mut Vec::new());
            let mut state = topic.lock();
            match result {
                Ok(_) => {
                    complete_moved(
                        &topic.name,
                        &mut state.scheduled,
                        SubQueueKind::Main,
                        &tokens,
                        now,
                        &mut journal,
                    );
                    published += count;
                }
                Err(error) => {
                    tracing::error!(topic = %topic.name, %error, "publishing scheduled messages failed");
                    state.scheduled.release_all(FORWARDER);
                }
            }
        }
        published
    }

    pub fn topics(&self) -> Vec<Arc<TopicEntity>> {
        let topics = self
            .topics
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        topics.values().cloned().collect()
    }
}

/// The bytes a topic holds: its scheduled messages and its subscriptions' messages. Takes
/// each subscription's lock in turn (the topic's is held, as the lock order wants).
pub(super) fn topic_size(state: &TopicState) -> u64 {
    state.scheduled.size_bytes()
        + state
            .subscriptions
            .iter()
            .map(|subscription| subscription.entity.lock().queue.size_bytes())
            .sum::<u64>()
}

/// A message a subscription dead-letters on arrival, with reason and description.
struct RefusedCopy {
    message: NewMessage,
    reason: &'static str,
    description: String,
}

/// Dead-letter reason of a message a subscription's filter failed on.
pub const REASON_FILTER_EXCEPTION: &str = "FilterException";
/// Dead-letter reason of a message without session id reaching a session subscription.
pub const REASON_SESSION_ID_NULL: &str = "Session ID is null";

/// The copies of `messages` (read as `views`) that `subscription` takes, and those it
/// dead-letters (a filter failed on them and the subscription says so).
fn subscription_copies(
    subscription: &SubscriptionEntry,
    messages: &[NewMessage],
    views: &[FilterView],
) -> (Vec<NewMessage>, Vec<RefusedCopy>) {
    let mut copies = Vec::new();
    let mut refused = Vec::new();
    for (message, view) in messages.iter().zip(views) {
        let selection = select(&subscription.rules, view);
        if let Some((rule, error)) = &selection.error {
            if subscription.dead_letter_on_filter_error {
                refused.push(RefusedCopy {
                    message: message.clone(),
                    reason: REASON_FILTER_EXCEPTION,
                    description: format!("rule '{rule}': {error}"),
                });
                continue;
            }
            tracing::warn!(subscription = %subscription.entity.name, rule, %error, "filter evaluation failed; the rule does not take the message");
        }
        if selection.unchanged {
            copies.push(message.clone());
        }
        for rule in selection.annotated {
            let annotated = rule
                .action
                .as_ref()
                .map(|action| action.changes(view))
                .transpose()
                .map_err(|e| e.to_string())
                .and_then(|changes| {
                    apply_rule_action(&message.body, &rule.name, &changes.unwrap_or_default())
                        .map_err(|e| e.to_string())
                });
            match annotated {
                Ok(copy) => copies.push(NewMessage {
                    body: copy.body,
                    message_id: copy.message_id.map(Into::into),
                    session_id: copy.session_id.map(Into::into),
                    ..message.clone()
                }),
                Err(error) => {
                    tracing::warn!(subscription = %subscription.entity.name, rule = %rule.name, %error, "rule action failed; the rule does not take the message");
                }
            }
        }
    }
    if subscription.entity.requires_session {
        let (with_session, without): (Vec<_>, Vec<_>) =
            copies.into_iter().partition(|m| m.session_id.is_some());
        copies = with_session;
        refused.extend(without.into_iter().map(|message| RefusedCopy {
            message,
            reason: REASON_SESSION_ID_NULL,
            description: "Session enabled entity doesn't allow a message whose session identifier is null."
                .to_owned(),
        }));
    }
    (copies, refused)
}

/// Creates or updates `topic` and its subscriptions in `namespace` as configured. A new
/// subscription without rules gets the default rule; existing entities keep the settings
/// the file can't express.
pub(super) fn define_topic(
    namespace: &mut Namespace,
    topic: &crate::config::TopicDefinition,
    now_ms: i64,
) -> Result<(), busbar_core::NamespaceError> {
    let file = &topic.properties;
    if let Ok(definition) = namespace.topic_mut(&topic.name) {
        let config = TopicConfig {
            default_ttl_ms: file.default_ttl_ms,
            requires_duplicate_detection: file.requires_duplicate_detection,
            duplicate_detection_window_ms: file.duplicate_detection_window_ms,
            max_size_bytes: file.max_size_bytes,
            status: file.status,
            ..definition.config.clone()
        };
        if config != definition.config {
            definition.config = config;
            definition.times.updated_at_ms = now_ms;
        }
    } else {
        namespace.create_topic(&topic.name, file.clone())?;
        namespace.topic_mut(&topic.name)?.times = EntityTimes::new(now_ms);
    }
    for subscription in &topic.subscriptions {
        let path = subscription_path(&topic.name, &subscription.name);
        if let Some(definition) = namespace.queue_mut(&path) {
            let config = subscription_config(&subscription.properties, &definition.config);
            if config != definition.config {
                definition.config = config;
                definition.times.updated_at_ms = now_ms;
            }
            // Rules listed in the file replace the saved ones; a subscription listed without
            // rules keeps those added at run time.
            if !subscription.rules.is_empty() {
                namespace.set_subscription_rules(
                    &topic.name,
                    &subscription.name,
                    subscription.rules.clone(),
                )?;
            }
        } else {
            namespace.create_subscription(
                &topic.name,
                &subscription.name,
                subscription_config(&subscription.properties, &QueueConfig::default()),
                subscription.rules.clone(),
            )?;
            if let Some(definition) = namespace.queue_mut(&path) {
                definition.times = EntityTimes::new(now_ms);
            }
        }
    }
    Ok(())
}

/// A topic entity from its definition; its subscriptions' queues must be in `queues`.
pub(super) fn topic_entity(
    definition: &TopicDefinition,
    queues: &HashMap<String, Arc<Entity>>,
    last_seqs: &HashMap<u32, busbar_store::Seq>,
    markers: impl IntoIterator<Item = RecoveredMessage>,
    scheduled: impl IntoIterator<Item = RecoveredMessage>,
    resident: &ResidentBudget,
) -> Result<TopicEntity, OpenError> {
    let mut subscriptions = Vec::with_capacity(definition.subscriptions.len());
    for subscription in &definition.subscriptions {
        let path = subscription_path(&definition.name, &subscription.name);
        let entity = queues.get(&path.to_ascii_lowercase()).ok_or_else(|| {
            OpenError::Catalog(format!("subscription '{path}' has no queue in the catalog"))
        })?;
        let rules = subscription
            .rules
            .iter()
            .map(|rule| {
                Rule::compile(rule).map_err(|e| {
                    OpenError::Catalog(format!("rule '{}' of '{path}': {e}", rule.name))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let dead_letter_on_filter_error = entity
            .lock()
            .queue
            .config()
            .dead_lettering_on_filter_evaluation_exceptions;
        subscriptions.push(SubscriptionEntry {
            entity: Arc::clone(entity),
            rules,
            dead_letter_on_filter_error,
        });
    }
    Ok(TopicEntity {
        name: definition.name.clone(),
        status: AtomicU8::new(definition.config.status.to_u8()),
        deleted: AtomicBool::new(false),
        accessed_at_ms: AtomicI64::new(0),
        incoming: Traffic::default(),
        state: Mutex::new(TopicState {
            topic: Topic::restore(
                definition.name.clone(),
                definition.config.clone(),
                definition.entity,
                last_seqs,
                markers,
            ),
            scheduled: Queue::restore_within(
                format!("{}/$scheduled", definition.name),
                QueueConfig::default(),
                definition.entity,
                definition.entity + 1,
                last_seqs,
                scheduled,
                resident,
            ),
            subscriptions: subscriptions.into(),
        }),
    })
}

/// The core's settings for a configured subscription, over `base` for what the file does
/// not set.
pub fn subscription_config(properties: &SubscriptionProperties, base: &QueueConfig) -> QueueConfig {
    QueueConfig {
        lock_duration_ms: properties.lock_duration_ms,
        max_delivery_count: properties.max_delivery_count,
        default_ttl_ms: properties.default_ttl_ms,
        dead_lettering_on_expiration: properties.dead_lettering_on_expiration,
        requires_session: properties.requires_session,
        forward_to: properties.forward_to.clone(),
        forward_dead_lettered_to: properties.forward_dead_lettered_to.clone(),
        dead_lettering_on_filter_evaluation_exceptions: properties
            .dead_lettering_on_filter_evaluation_exceptions,
        status: properties.status,
        ..base.clone()
    }
}

impl<S: Store> Broker<S> {
    pub(super) fn topic_info(&self, topic: &TopicEntity) -> busbar_http::TopicInfo {
        let (scheduled, config, subscriptions) = {
            let state = topic.lock();
            (
                state.scheduled.counts().scheduled,
                state.topic.config().clone(),
                Arc::clone(&state.subscriptions),
            )
        };
        let subscriptions = subscriptions
            .iter()
            .map(|subscription| busbar_http::SubscriptionInfo {
                subscription_name: split_subscription_path(&subscription.entity.name).map_or_else(
                    || subscription.entity.name.clone(),
                    |(_, name)| name.to_owned(),
                ),
                rules: subscription.rules.iter().map(|r| r.name.clone()).collect(),
                queue: queue_info(&subscription.entity),
            })
            .collect();
        busbar_http::TopicInfo {
            name: topic.name.clone(),
            scheduled_message_count: scheduled,
            default_message_time_to_live_ms: config.default_ttl_ms,
            requires_duplicate_detection: config.requires_duplicate_detection,
            subscriptions,
        }
    }
}
