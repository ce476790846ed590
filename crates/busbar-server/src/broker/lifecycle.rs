//! Entities managed at run time: creating, updating and deleting queues, topics,
//! subscriptions and rules (what the administration API and the CLI call).
//!
//! Every change is durable before it returns: it is made in a copy of the catalog, the
//! copy is saved (`Store::save_catalog`: written to a temporary file, synced, renamed, the
//! directory synced), and only then does the broker take it. A crash at any point leaves
//! either the old catalog or the new one. Changes are serialised by the catalog's lock,
//! which is taken before any topic's or queue's.
//!
//! Deleting an entity deletes its messages: once the catalog no longer has it, Remove
//! records for everything it kept (main stream, both dead-letter queues, scheduled and
//! deferred messages, duplicate markers, session states; a topic's scheduled messages and
//! markers and all of its subscriptions') are appended and awaited, so the segments that
//! held them become reclaimable. If the broker dies in between, [`Broker::open`] finds the
//! records of entity ids the catalog no longer owns and removes them then. Open links on a
//! deleted entity are detached with `amqp:not-found` (the connections hear of every change
//! through [`Broker::entity_changes`]), and messages forwarded to it take the forwarding
//! failure path (its transfer dead-letter queue at the source).
//!
//! Entities from the configuration file and entities created here share the catalog: at
//! start the file's entities are created or updated, and nothing the file leaves out is
//! deleted.

use std::sync::{Arc, MutexGuard};

use busbar_core::namespace::{
    EntityTimes, RuleDescription, split_subscription_path, subscription_path,
};
use busbar_core::rules::Rule;
use busbar_core::topic::TopicConfig;
use busbar_core::{Namespace, NamespaceError, Queue, QueueConfig};
use busbar_store::{Record, Store, StoreError};

use super::topics::{RuleChangeError, SubscriptionEntry, TopicEntity, topic_entity};
use super::validation::{EntityKind, Fixed, check_queue_config, check_topic_config};
use super::{Broker, Entity};

/// Remove records appended per store call when deleting an entity's messages.
const REMOVALS_PER_APPEND: usize = 16 * 1024;

/// Why an administration operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum EntityError {
    /// A queue and a topic share one name space; subscriptions and rules are per parent.
    #[error("The messaging entity '{0}' already exists.")]
    AlreadyExists(String),
    /// Worded as the service words it; the JS SDK recognises a missing entity by it.
    #[error("The messaging entity '{0}' could not be found.")]
    NotFound(String),
    /// A bad name or an out-of-range value; the message is Service Bus's.
    #[error("{0}")]
    Invalid(String),
    #[error("The value for the {property} property of an existing {kind} cannot be changed.")]
    Immutable {
        property: &'static str,
        kind: &'static str,
    },
    /// The catalog could not be saved: nothing changed.
    #[error("saving the catalog failed: {0}")]
    Store(#[from] StoreError),
}

impl From<NamespaceError> for EntityError {
    fn from(error: NamespaceError) -> Self {
        match error {
            NamespaceError::AlreadyExists(name) => EntityError::AlreadyExists(name),
            NamespaceError::NotFound(name) => EntityError::NotFound(name),
            NamespaceError::InvalidName(name, why) => {
                EntityError::Invalid(format!("The entity name '{name}' is not valid: {why}."))
            }
            other => EntityError::Invalid(other.to_string()),
        }
    }
}

impl From<RuleChangeError> for EntityError {
    fn from(error: RuleChangeError) -> Self {
        match error {
            RuleChangeError::AlreadyExists(name) => EntityError::AlreadyExists(name),
            RuleChangeError::NotFound(name) | RuleChangeError::NotASubscription(name) => {
                EntityError::NotFound(name)
            }
            RuleChangeError::Invalid(why) => EntityError::Invalid(why),
            RuleChangeError::Store(error) => EntityError::Store(error),
        }
    }
}

impl<S: Store> Broker<S> {
    /// Applies `change` to a copy of the catalog and saves it; the broker's catalog becomes
    /// the copy only once saved. Returns the change's result with the catalog still locked,
    /// so the caller applies the change to the live entities before the next one starts.
    fn change_catalog<T>(
        &self,
        change: impl FnOnce(&mut Namespace) -> Result<T, EntityError>,
    ) -> Result<(T, MutexGuard<'_, Namespace>), EntityError> {
        let mut namespace = self.catalog();
        let mut changed = namespace.clone();
        let result = change(&mut changed)?;
        self.store.save_catalog(&changed.to_json())?;
        *namespace = changed;
        Ok((result, namespace))
    }

    pub(super) fn catalog(&self) -> MutexGuard<'_, Namespace> {
        self.namespace
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Tells every connection that entities changed (see [`Broker::entity_changes`]).
    fn announce_change(&self) {
        self.changes.send_modify(|generation| *generation += 1);
    }

    // ---- queues ---------------------------------------------------------------------

    /// Creates queue `name`; fails if a queue or topic of that name exists (any case).
    pub fn create_queue(&self, name: &str, config: QueueConfig) -> Result<(), EntityError> {
        let now = self.now_ms();
        let (definition, _catalog) = self.change_catalog(|namespace| {
            let config = check_queue_config(namespace, name, config)?;
            namespace.create_queue(name, config)?;
            let definition = namespace
                .queue_mut(name)
                .ok_or_else(|| EntityError::NotFound(name.to_owned()))?;
            definition.times = EntityTimes::new(now);
            Ok(definition.clone())
        })?;
        self.insert_entity(&definition);
        Ok(())
    }

    /// Replaces the settings of queue `name` (a full replace, as Service Bus's PUT is).
    /// RequiresSession, RequiresDuplicateDetection and EnablePartitioning can't change.
    pub fn update_queue(&self, name: &str, config: QueueConfig) -> Result<(), EntityError> {
        let entity = self
            .plain_queue(name)
            .ok_or_else(|| EntityError::NotFound(name.to_owned()))?;
        self.update_queue_entity(&entity, EntityKind::Queue, config)
    }

    /// Deletes queue `name` and its messages (see the module docs).
    pub async fn delete_queue(&self, name: &str) -> Result<(), EntityError> {
        let entity = self
            .plain_queue(name)
            .ok_or_else(|| EntityError::NotFound(name.to_owned()))?;
        let (_, catalog) = self.change_catalog(|namespace| {
            namespace.delete_queue(&entity.name)?;
            Ok(())
        })?;
        let removals = self.retire_entity(&entity);
        drop(catalog);
        self.announce_change();
        self.remove_records(removals).await
    }

    /// A queue that is not a subscription's.
    pub(super) fn plain_queue(&self, name: &str) -> Option<Arc<Entity>> {
        self.entity(name)
            .filter(|entity| !self.is_subscription_queue(&entity.name))
    }

    fn is_subscription_queue(&self, path: &str) -> bool {
        split_subscription_path(path)
            .is_some_and(|(topic, name)| self.catalog().subscription_rules(topic, name).is_some())
    }

    fn update_queue_entity(
        &self,
        entity: &Arc<Entity>,
        kind: EntityKind,
        config: QueueConfig,
    ) -> Result<(), EntityError> {
        let now = self.now_ms();
        let (config, _catalog) = self.change_catalog(|namespace| {
            let config = check_queue_config(namespace, &entity.name, config)?;
            let definition = namespace
                .queue_mut(&entity.name)
                .ok_or_else(|| EntityError::NotFound(entity.name.clone()))?;
            Fixed::of_queue(&definition.config).check_unchanged(kind, Fixed::of_queue(&config))?;
            definition.config = config.clone();
            definition.times.updated_at_ms = now;
            Ok(config)
        })?;
        entity.reconfigure(config);
        self.announce_change();
        Ok(())
    }

    /// Adds the live entity of a queue the catalog just defined.
    fn insert_entity(&self, definition: &busbar_core::QueueDefinition) -> Arc<Entity> {
        let queue = Queue::new_within(
            definition.name.clone(),
            definition.config.clone(),
            definition.main_entity,
            definition.dead_letter_entity,
            &self.resident,
        );
        let entity = Arc::new(Entity::new(definition, queue));
        self.entities
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(definition.name.to_ascii_lowercase(), Arc::clone(&entity));
        entity
    }

    /// Takes a deleted queue out of service: out of the lookup, marked deleted (links on
    /// it detach, sends are refused), its messages dropped from memory. Returns the Remove
    /// records that delete them from the store.
    fn retire_entity(&self, entity: &Entity) -> Vec<Record> {
        self.entities
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&entity.name.to_ascii_lowercase());
        let (removals, waiters) = {
            let mut state = entity.lock();
            entity
                .deleted
                .store(true, std::sync::atomic::Ordering::Release);
            let removals = state.queue.removal_records();
            let (main, dead_letter) = (
                state.queue.sub(busbar_core::SubQueueKind::Main).entity(),
                state
                    .queue
                    .sub(busbar_core::SubQueueKind::DeadLetter)
                    .entity(),
            );
            state.queue = Queue::new_within(
                entity.name.clone(),
                state.queue.config().clone(),
                main,
                dead_letter,
                &self.resident,
            );
            (removals, state.take_waiters())
        };
        super::wake(waiters);
        removals
    }

    /// Appends `removals` and waits until they are durable.
    async fn remove_records(&self, mut removals: Vec<Record>) -> Result<(), EntityError> {
        let mut last = None;
        while !removals.is_empty() {
            let rest = removals.split_off(removals.len().min(REMOVALS_PER_APPEND));
            let (_, commit) = self.store.append(removals)?;
            last = Some(commit);
            removals = rest;
        }
        if let Some(commit) = last {
            commit.await?;
        }
        Ok(())
    }

    // ---- topics ---------------------------------------------------------------------

    /// Creates topic `name` without subscriptions; fails if a queue or topic of that name
    /// exists (any case).
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<(), EntityError> {
        check_topic_config(&config)?;
        let now = self.now_ms();
        let (definition, _catalog) = self.change_catalog(|namespace| {
            namespace.create_topic(name, config)?;
            let definition = namespace.topic_mut(name)?;
            definition.times = EntityTimes::new(now);
            Ok(definition.clone())
        })?;
        let topic = topic_entity(
            &definition,
            &std::collections::HashMap::new(),
            &std::collections::HashMap::new(),
            Vec::new(),
            Vec::new(),
            &self.resident,
        )
        .map_err(|e| EntityError::Invalid(e.to_string()))?;
        self.topics
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_ascii_lowercase(), Arc::new(topic));
        Ok(())
    }

    /// Replaces the settings of topic `name`. RequiresDuplicateDetection and
    /// EnablePartitioning can't change.
    pub fn update_topic(&self, name: &str, config: TopicConfig) -> Result<(), EntityError> {
        check_topic_config(&config)?;
        let topic = self
            .topic(name)
            .ok_or_else(|| EntityError::NotFound(name.to_owned()))?;
        let now = self.now_ms();
        let (config, _catalog) = self.change_catalog(|namespace| {
            let definition = namespace.topic_mut(&topic.name)?;
            Fixed::of_topic(&definition.config)
                .check_unchanged(EntityKind::Topic, Fixed::of_topic(&config))?;
            definition.config = config.clone();
            definition.times.updated_at_ms = now;
            Ok(config)
        })?;
        topic.set_status(config.status);
        topic.lock().topic.set_config(config);
        self.announce_change();
        Ok(())
    }

    /// Deletes topic `name` with its subscriptions, their rules and all their messages.
    pub async fn delete_topic(&self, name: &str) -> Result<(), EntityError> {
        let topic = self
            .topic(name)
            .ok_or_else(|| EntityError::NotFound(name.to_owned()))?;
        let (_, catalog) = self.change_catalog(|namespace| {
            namespace.delete_topic(&topic.name)?;
            Ok(())
        })?;
        self.topics
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&topic.name.to_ascii_lowercase());
        topic.mark_deleted();
        let (mut removals, subscriptions) = {
            let mut state = topic.lock();
            let mut removals = state.topic.removal_records();
            removals.extend(state.scheduled.removal_records());
            let subscriptions = std::mem::replace(&mut state.subscriptions, Arc::from([]));
            (removals, subscriptions)
        };
        for subscription in subscriptions.iter() {
            removals.extend(self.retire_entity(&subscription.entity));
        }
        drop(catalog);
        self.announce_change();
        self.remove_records(removals).await
    }

    // ---- subscriptions --------------------------------------------------------------

    /// Creates subscription `name` of `topic` with `default_rule` as its only rule, or the
    /// `$Default` rule (TrueFilter) when none is given.
    pub fn create_subscription(
        &self,
        topic: &str,
        name: &str,
        config: QueueConfig,
        default_rule: Option<RuleDescription>,
    ) -> Result<(), EntityError> {
        let topic_entity = self
            .topic(topic)
            .ok_or_else(|| EntityError::NotFound(topic.to_owned()))?;
        let rules: Vec<RuleDescription> = default_rule.into_iter().collect();
        let compiled = compile_rules(&rules)?;
        let path = subscription_path(&topic_entity.name, name);
        let now = self.now_ms();
        let (definition, _catalog) = self.change_catalog(|namespace| {
            let config = check_queue_config(namespace, &path, config)?;
            namespace.create_subscription(&topic_entity.name, name, config, rules)?;
            let definition = namespace
                .queue_mut(&path)
                .ok_or_else(|| EntityError::NotFound(path.clone()))?;
            definition.times = EntityTimes::new(now);
            Ok(definition.clone())
        })?;
        let compiled = if compiled.is_empty() {
            compile_rules(&[RuleDescription::default_rule()])?
        } else {
            compiled
        };
        let entity = self.insert_entity(&definition);
        let entry = SubscriptionEntry {
            dead_letter_on_filter_error: definition
                .config
                .dead_lettering_on_filter_evaluation_exceptions,
            entity,
            rules: compiled,
        };
        let mut state = topic_entity.lock();
        let subscriptions: Vec<SubscriptionEntry> = state
            .subscriptions
            .iter()
            .map(SubscriptionEntry::clone)
            .chain(std::iter::once(entry))
            .collect();
        state.subscriptions = subscriptions.into();
        Ok(())
    }

    /// Replaces the settings of subscription `name` of `topic`; RequiresSession can't
    /// change.
    pub fn update_subscription(
        &self,
        topic: &str,
        name: &str,
        config: QueueConfig,
    ) -> Result<(), EntityError> {
        let (topic_entity, entity) = self.subscription(topic, name)?;
        let dead_letter_on_filter_error = config.dead_lettering_on_filter_evaluation_exceptions;
        self.update_queue_entity(&entity, EntityKind::Subscription, config)?;
        let mut state = topic_entity.lock();
        let subscriptions: Vec<SubscriptionEntry> = state
            .subscriptions
            .iter()
            .map(|s| {
                let mut entry = s.clone();
                if Arc::ptr_eq(&s.entity, &entity) {
                    entry.dead_letter_on_filter_error = dead_letter_on_filter_error;
                }
                entry
            })
            .collect();
        state.subscriptions = subscriptions.into();
        Ok(())
    }

    /// Deletes subscription `name` of `topic` with its rules and messages.
    pub async fn delete_subscription(&self, topic: &str, name: &str) -> Result<(), EntityError> {
        let (topic_entity, entity) = self.subscription(topic, name)?;
        let (_, catalog) = self.change_catalog(|namespace| {
            namespace.delete_subscription(&topic_entity.name, name)?;
            Ok(())
        })?;
        {
            let mut state = topic_entity.lock();
            let subscriptions: Vec<SubscriptionEntry> = state
                .subscriptions
                .iter()
                .filter(|s| !Arc::ptr_eq(&s.entity, &entity))
                .map(SubscriptionEntry::clone)
                .collect();
            state.subscriptions = subscriptions.into();
        }
        let removals = self.retire_entity(&entity);
        drop(catalog);
        self.announce_change();
        self.remove_records(removals).await
    }

    /// The topic and the queue of subscription `name` of `topic`.
    pub(super) fn subscription(
        &self,
        topic: &str,
        name: &str,
    ) -> Result<(Arc<TopicEntity>, Arc<Entity>), EntityError> {
        let topic_entity = self
            .topic(topic)
            .ok_or_else(|| EntityError::NotFound(topic.to_owned()))?;
        let path = subscription_path(&topic_entity.name, name);
        let entity = self
            .entity(&path)
            .filter(|_| self.is_subscription_queue(&path))
            .ok_or(EntityError::NotFound(path))?;
        Ok((topic_entity, entity))
    }

    // ---- rules ----------------------------------------------------------------------

    /// Adds `rule` to subscription `subscription` of `topic`.
    pub fn create_rule(
        &self,
        topic: &str,
        subscription: &str,
        rule: RuleDescription,
    ) -> Result<(), EntityError> {
        let (_, entity) = self.subscription(topic, subscription)?;
        Ok(self.add_rule(&entity, rule)?)
    }

    /// Replaces the rule of the same name.
    pub fn update_rule(
        &self,
        topic: &str,
        subscription: &str,
        rule: RuleDescription,
    ) -> Result<(), EntityError> {
        let (_, entity) = self.subscription(topic, subscription)?;
        Rule::compile(&rule).map_err(|e| EntityError::Invalid(e.to_string()))?;
        Ok(self.change_rules(&entity, |rules| {
            let existing = rules
                .iter_mut()
                .find(|r| r.name.eq_ignore_ascii_case(&rule.name))
                .ok_or_else(|| {
                    RuleChangeError::NotFound(format!("{}/Rules/{}", entity.name, rule.name))
                })?;
            *existing = rule;
            Ok(())
        })?)
    }

    pub fn delete_rule(
        &self,
        topic: &str,
        subscription: &str,
        name: &str,
    ) -> Result<(), EntityError> {
        let (_, entity) = self.subscription(topic, subscription)?;
        Ok(self.remove_rule(&entity, name)?)
    }
}

fn compile_rules(rules: &[RuleDescription]) -> Result<Vec<Rule>, EntityError> {
    rules
        .iter()
        .map(|rule| Rule::compile(rule).map_err(|e| EntityError::Invalid(e.to_string())))
        .collect()
}
