//! Reading entities back: their descriptions (settings as kept in the catalog, created and
//! updated times, last access) and runtime counts, one entity or all of a kind, sorted by
//! name. [`runtime_counts`] is the one place counts are computed, for the administration
//! API and the `/api` JSON alike.

use std::sync::Arc;

use busbar_core::namespace::{EntityTimes, RuleDescription, subscription_path};
use busbar_core::topic::TopicConfig;
use busbar_core::{Queue, QueueConfig};
use busbar_store::Store;

use super::lifecycle::EntityError;
use super::topics::{TopicEntity, topic_size};
use super::{Broker, Entity};

/// Exact message counts of a queue, subscription or topic, and the bytes it holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuntimeCounts {
    /// Available in the main stream, locked ones included (not deferred, not scheduled).
    pub active: u64,
    pub dead_letter: u64,
    pub scheduled: u64,
    /// Waiting to be forwarded: always 0, forwarding happens as a message is sent.
    pub transfer: u64,
    pub transfer_dead_letter: u64,
    pub deferred: u64,
    /// Locked messages of the main stream (part of `active`).
    pub locked: u64,
    /// Stored body bytes of every message held (what MaxSizeInMegabytes caps).
    pub size_bytes: u64,
}

impl RuntimeCounts {
    /// Every message held: Service Bus's `MessageCount`.
    pub fn total(&self) -> u64 {
        self.active + self.scheduled + self.deferred + self.dead_letter + self.transfer_dead_letter
    }
}

/// The counts of `queue`.
pub fn runtime_counts(queue: &Queue) -> RuntimeCounts {
    let counts = queue.counts();
    RuntimeCounts {
        active: counts.active,
        dead_letter: counts.dead_letter,
        scheduled: counts.scheduled,
        transfer: 0,
        transfer_dead_letter: counts.transfer_dead_letter,
        deferred: counts.deferred,
        locked: counts.locked,
        size_bytes: queue.size_bytes(),
    }
}

/// A queue as the administration API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueDescription {
    pub name: String,
    pub config: QueueConfig,
    pub times: EntityTimes,
    /// Last send or receive since the broker started.
    pub accessed_at_ms: Option<i64>,
    pub counts: RuntimeCounts,
}

/// A topic as the administration API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicDescription {
    pub name: String,
    pub config: TopicConfig,
    pub times: EntityTimes,
    pub accessed_at_ms: Option<i64>,
    /// Scheduled messages kept by the topic and `size_bytes` of everything it and its
    /// subscriptions hold; the other counts are 0 (messages live in the subscriptions).
    pub counts: RuntimeCounts,
    pub subscription_count: usize,
}

/// A subscription as the administration API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionDescription {
    pub topic: String,
    pub name: String,
    pub config: QueueConfig,
    pub times: EntityTimes,
    pub accessed_at_ms: Option<i64>,
    pub counts: RuntimeCounts,
}

impl<S: Store> Broker<S> {
    /// When the namespace (the data directory's catalog) was first opened, ms since the
    /// Unix epoch: `get_namespace_properties`' created time.
    pub fn namespace_created_at_ms(&self) -> i64 {
        self.catalog().created_at_ms()
    }

    pub fn get_queue(&self, name: &str) -> Result<QueueDescription, EntityError> {
        let entity = self
            .plain_queue(name)
            .ok_or_else(|| EntityError::NotFound(name.to_owned()))?;
        self.queue_description(&entity)
            .ok_or_else(|| EntityError::NotFound(name.to_owned()))
    }

    /// Every queue (not the subscriptions' queues), sorted by name.
    pub fn list_queues(&self) -> Vec<QueueDescription> {
        self.entities()
            .iter()
            .filter(|entity| self.plain_queue(&entity.name).is_some())
            .filter_map(|entity| self.queue_description(entity))
            .collect()
    }

    fn queue_description(&self, entity: &Entity) -> Option<QueueDescription> {
        let times = self.catalog().queue(&entity.name)?.times;
        let (config, counts) = {
            let state = entity.lock();
            (state.queue.config().clone(), runtime_counts(&state.queue))
        };
        Some(QueueDescription {
            name: entity.name.clone(),
            config,
            times,
            accessed_at_ms: entity.stats.accessed_at_ms(),
            counts,
        })
    }

    pub fn get_topic(&self, name: &str) -> Result<TopicDescription, EntityError> {
        let topic = self
            .topic(name)
            .ok_or_else(|| EntityError::NotFound(name.to_owned()))?;
        self.topic_description(&topic)
            .ok_or_else(|| EntityError::NotFound(name.to_owned()))
    }

    /// Every topic, sorted by name.
    pub fn list_topics(&self) -> Vec<TopicDescription> {
        let mut topics: Vec<_> = self
            .topics()
            .iter()
            .filter_map(|topic| self.topic_description(topic))
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        topics
    }

    fn topic_description(&self, topic: &TopicEntity) -> Option<TopicDescription> {
        let times = self.catalog().topic(&topic.name)?.times;
        let state = topic.lock();
        Some(TopicDescription {
            name: topic.name.clone(),
            config: state.topic.config().clone(),
            times,
            accessed_at_ms: topic.accessed_at_ms(),
            counts: RuntimeCounts {
                scheduled: state.scheduled.counts().scheduled,
                size_bytes: topic_size(&state),
                ..RuntimeCounts::default()
            },
            subscription_count: state.subscriptions.len(),
        })
    }

    pub fn get_subscription(
        &self,
        topic: &str,
        name: &str,
    ) -> Result<SubscriptionDescription, EntityError> {
        let (topic, entity) = self.subscription(topic, name)?;
        self.subscription_description(&topic.name, &entity)
            .ok_or_else(|| EntityError::NotFound(subscription_path(&topic.name, name)))
    }

    /// The subscriptions of `topic`, sorted by name.
    pub fn list_subscriptions(
        &self,
        topic: &str,
    ) -> Result<Vec<SubscriptionDescription>, EntityError> {
        let topic = self
            .topic(topic)
            .ok_or_else(|| EntityError::NotFound(topic.to_owned()))?;
        let entities: Vec<Arc<Entity>> = topic
            .lock()
            .subscriptions
            .iter()
            .map(|s| Arc::clone(&s.entity))
            .collect();
        let mut list: Vec<_> = entities
            .iter()
            .filter_map(|entity| self.subscription_description(&topic.name, entity))
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(list)
    }

    fn subscription_description(
        &self,
        topic: &str,
        entity: &Entity,
    ) -> Option<SubscriptionDescription> {
        let queue = self.queue_description(entity)?;
        let name = busbar_core::namespace::split_subscription_path(&entity.name)
            .map_or(entity.name.as_str(), |(_, name)| name)
            .to_owned();
        Some(SubscriptionDescription {
            topic: topic.to_owned(),
            name,
            config: queue.config,
            times: queue.times,
            accessed_at_ms: queue.accessed_at_ms,
            counts: queue.counts,
        })
    }

    /// The rules of subscription `subscription` of `topic`, in the order they were added.
    pub fn list_rules(
        &self,
        topic: &str,
        subscription: &str,
    ) -> Result<Vec<RuleDescription>, EntityError> {
        let (_, entity) = self.subscription(topic, subscription)?;
        Ok(self.subscription_rules(&entity)?)
    }

    pub fn get_rule(
        &self,
        topic: &str,
        subscription: &str,
        name: &str,
    ) -> Result<RuleDescription, EntityError> {
        let (_, entity) = self.subscription(topic, subscription)?;
        self.subscription_rules(&entity)?
            .into_iter()
            .find(|rule| rule.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| EntityError::NotFound(format!("{}/Rules/{name}", entity.name)))
    }
}
