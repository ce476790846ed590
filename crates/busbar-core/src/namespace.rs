//! Entity definitions and addressing: which queues, topics and subscriptions exist, their
//! settings, rules and entity ids (the catalog, saved as JSON through the store), and how
//! a link address names a queue and one of its subqueues. A subscription is stored as a
//! queue whose name is its path, `<topic>/Subscriptions/<name>`, so everything a queue does
//! a subscription does too; its topic keeps its rules. Queue state itself lives in
//! [`crate::queue::Queue`] objects, which the caller keeps, each behind its own lock.

use busbar_store::EntityId;
use serde::{Deserialize, Serialize};

use crate::config::QueueConfig;
use crate::entity_id::{
    ALLOCATED_IDS_END, ALLOCATED_PER_QUEUE, dead_letter_entity, marker_entity,
    session_state_entity, transfer_dead_letter_entity,
};
use crate::filter::CorrelationFilter;
use crate::subqueue::SubQueueKind;
use crate::topic::TopicConfig;

/// Longest queue name Service Bus allows.
const MAX_NAME_LEN: usize = 260;

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("an entity named {0:?} already exists")]
    AlreadyExists(String),
    #[error("no entity named {0:?}")]
    NotFound(String),
    #[error("invalid entity name {0:?}: {1}")]
    InvalidName(String, &'static str),
    #[error("entity ids exhausted")]
    IdsExhausted,
    #[error("catalog is not valid: {0}")]
    Catalog(#[from] serde_json::Error),
}

/// The name of the rule every new subscription starts with, matching every message.
pub const DEFAULT_RULE_NAME: &str = "$Default";

/// The topic and subscription names of a subscription path, `<topic>/Subscriptions/<name>`.
pub fn split_subscription_path(path: &str) -> Option<(&str, &str)> {
    let (head, name) = path.rsplit_once('/')?;
    let (topic, keyword) = head.rsplit_once('/')?;
    (keyword.eq_ignore_ascii_case("Subscriptions") && !topic.is_empty() && !name.is_empty())
        .then_some((topic, name))
}

/// The queue path of subscription `subscription` of `topic`.
pub fn subscription_path(topic: &str, subscription: &str) -> String {
    format!("{topic}/Subscriptions/{subscription}")
}

/// A topic's durable definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicDefinition {
    /// As created (case preserved); lookups ignore case.
    pub name: String,
    pub config: TopicConfig,
    /// Its duplicate-detection markers live under this entity's marker entity.
    pub entity: EntityId,
    pub subscriptions: Vec<SubscriptionDefinition>,
    #[serde(default)]
    pub times: EntityTimes,
}

/// When an entity was created and last changed (milliseconds since the Unix epoch; 0 in
/// catalogs written before they were kept).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityTimes {
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl EntityTimes {
    pub fn new(now_ms: i64) -> Self {
        EntityTimes {
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        }
    }
}

/// A subscription's rules; its queue is the [`QueueDefinition`] named by
/// [`subscription_path`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionDefinition {
    pub name: String,
    pub rules: Vec<RuleDescription>,
}

/// A subscription rule as defined: what it selects and how it annotates what it selects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleDescription {
    pub name: String,
    pub filter: FilterDescription,
    /// A SQL rule action (`SET ...`, `REMOVE ...`).
    pub action: Option<String>,
}

impl RuleDescription {
    /// The rule a subscription gets when none is given: everything, unchanged.
    pub fn default_rule() -> Self {
        RuleDescription {
            name: DEFAULT_RULE_NAME.to_owned(),
            filter: FilterDescription::True,
            action: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FilterDescription {
    True,
    False,
    Sql(String),
    Correlation(CorrelationFilter),
}

/// A queue's durable definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDefinition {
    /// As created (case preserved); lookups ignore case.
    pub name: String,
    pub config: QueueConfig,
    pub main_entity: EntityId,
    pub dead_letter_entity: EntityId,
    pub transfer_dead_letter_entity: EntityId,
    #[serde(default)]
    pub times: EntityTimes,
}

impl QueueDefinition {
    /// Every entity id the queue's records live under.
    pub fn entity_ids(&self) -> [EntityId; 5] {
        [
            self.main_entity,
            self.dead_letter_entity,
            self.transfer_dead_letter_entity,
            marker_entity(self.main_entity),
            session_state_entity(self.main_entity),
        ]
    }
}

impl TopicDefinition {
    /// Every entity id the topic's own records (scheduled messages, duplicate markers) live
    /// under; its subscriptions are queues with their own.
    pub fn entity_ids(&self) -> [EntityId; 5] {
        let dead_letter = dead_letter_entity(self.entity);
        [
            self.entity,
            dead_letter,
            transfer_dead_letter_entity(dead_letter),
            marker_entity(self.entity),
            session_state_entity(self.entity),
        ]
    }
}

/// The set of entity definitions, serialisable as the store's catalog blob.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Namespace {
    queues: Vec<QueueDefinition>,
    #[serde(default)]
    topics: Vec<TopicDefinition>,
    /// Next unallocated entity id; ids are never reused, even after a delete, so old
    /// log records can't be mistaken for a new entity's.
    next_entity_id: EntityId,
    /// When the namespace was first opened (ms since the Unix epoch; 0 until then, and in
    /// catalogs written before it was kept).
    #[serde(default)]
    created_at_ms: i64,
}

impl Namespace {
    pub fn new() -> Self {
        Namespace {
            queues: Vec::new(),
            topics: Vec::new(),
            next_entity_id: 1,
            created_at_ms: 0,
        }
    }

    pub fn created_at_ms(&self) -> i64 {
        self.created_at_ms
    }

    /// Records `now_ms` as the creation time unless one is kept already.
    pub fn stamp_created(&mut self, now_ms: i64) {
        if self.created_at_ms == 0 {
            self.created_at_ms = now_ms;
        }
    }

    pub fn from_json(json: &[u8]) -> Result<Self, NamespaceError> {
        Ok(serde_json::from_slice(json)?)
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain strings, numbers and options cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    pub fn queues(&self) -> &[QueueDefinition] {
        &self.queues
    }

    /// Case-insensitive lookup.
    pub fn queue(&self, name: &str) -> Option<&QueueDefinition> {
        self.queues
            .iter()
            .find(|q| q.name.eq_ignore_ascii_case(name))
    }

    /// Defines a queue and allocates its entity ids.
    pub fn create_queue(
        &mut self,
        name: &str,
        config: QueueConfig,
    ) -> Result<&QueueDefinition, NamespaceError> {
        validate_name(name)?;
        if self.queue(name).is_some() || self.topic(name).is_some() {
            return Err(NamespaceError::AlreadyExists(name.to_owned()));
        }
        self.push_queue(name, config)
    }

    fn allocate_ids(&mut self) -> Result<EntityId, NamespaceError> {
        let first = self.next_entity_id.max(1);
        self.next_entity_id = first
            .checked_add(ALLOCATED_PER_QUEUE)
            .filter(|&next| next <= ALLOCATED_IDS_END)
            .ok_or(NamespaceError::IdsExhausted)?;
        Ok(first)
    }

    fn push_queue(
        &mut self,
        name: &str,
        config: QueueConfig,
    ) -> Result<&QueueDefinition, NamespaceError> {
        let first = self.allocate_ids()?;
        self.queues.push(QueueDefinition {
            name: name.to_owned(),
            config,
            main_entity: first,
            dead_letter_entity: dead_letter_entity(first),
            transfer_dead_letter_entity: transfer_dead_letter_entity(dead_letter_entity(first)),
            times: EntityTimes::default(),
        });
        self.queues
            .last()
            .ok_or(NamespaceError::NotFound(name.to_owned()))
    }

    pub fn update_queue(
        &mut self,
        name: &str,
        config: QueueConfig,
    ) -> Result<&QueueDefinition, NamespaceError> {
        let queue = self
            .queues
            .iter_mut()
            .find(|q| q.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| NamespaceError::NotFound(name.to_owned()))?;
        queue.config = config;
        Ok(queue)
    }

    pub fn topics(&self) -> &[TopicDefinition] {
        &self.topics
    }

    /// Case-insensitive lookup.
    pub fn topic(&self, name: &str) -> Option<&TopicDefinition> {
        self.topics
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
    }

    /// Case-insensitive lookup, for changing what the catalog keeps beside the config
    /// (times).
    pub fn queue_mut(&mut self, name: &str) -> Option<&mut QueueDefinition> {
        self.queues
            .iter_mut()
            .find(|q| q.name.eq_ignore_ascii_case(name))
    }

    /// Every entity id some queue or topic of the catalog owns: records of any other id
    /// belong to deleted entities.
    pub fn owned_entity_ids(&self) -> std::collections::HashSet<EntityId> {
        self.queues
            .iter()
            .flat_map(QueueDefinition::entity_ids)
            .chain(self.topics.iter().flat_map(TopicDefinition::entity_ids))
            .collect()
    }

    /// Removes topic `name`, its subscriptions and their queues; returns the topic and the
    /// subscriptions' queues.
    pub fn delete_topic(
        &mut self,
        name: &str,
    ) -> Result<(TopicDefinition, Vec<QueueDefinition>), NamespaceError> {
        let index = self
            .topics
            .iter()
            .position(|t| t.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| NamespaceError::NotFound(name.to_owned()))?;
        let topic = self.topics.remove(index);
        let mut queues = Vec::with_capacity(topic.subscriptions.len());
        for subscription in &topic.subscriptions {
            if let Ok(queue) =
                self.delete_queue(&subscription_path(&topic.name, &subscription.name))
            {
                queues.push(queue);
            }
        }
        Ok((topic, queues))
    }

    /// Removes subscription `name` of `topic` (its rules with it) and returns its queue.
    pub fn delete_subscription(
        &mut self,
        topic: &str,
        name: &str,
    ) -> Result<QueueDefinition, NamespaceError> {
        let definition = self.topic_mut(topic)?;
        let index = definition
            .subscriptions
            .iter()
            .position(|s| s.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| NamespaceError::NotFound(subscription_path(topic, name)))?;
        let subscription = definition.subscriptions.remove(index);
        let path = subscription_path(&definition.name, &subscription.name);
        self.delete_queue(&path)
    }

    pub fn topic_mut(&mut self, name: &str) -> Result<&mut TopicDefinition, NamespaceError> {
        self.topics
            .iter_mut()
            .find(|t| t.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| NamespaceError::NotFound(name.to_owned()))
    }

    /// Defines a topic (without subscriptions) and allocates its entity ids.
    pub fn create_topic(
        &mut self,
        name: &str,
        config: TopicConfig,
    ) -> Result<&TopicDefinition, NamespaceError> {
        validate_name(name)?;
        if self.queue(name).is_some() || self.topic(name).is_some() {
            return Err(NamespaceError::AlreadyExists(name.to_owned()));
        }
        let entity = self.allocate_ids()?;
        self.topics.push(TopicDefinition {
            name: name.to_owned(),
            config,
            entity,
            subscriptions: Vec::new(),
            times: EntityTimes::default(),
        });
        self.topics
            .last()
            .ok_or(NamespaceError::NotFound(name.to_owned()))
    }

    pub fn update_topic(
        &mut self,
        name: &str,
        config: TopicConfig,
    ) -> Result<&TopicDefinition, NamespaceError> {
        let topic = self.topic_mut(name)?;
        topic.config = config;
        Ok(topic)
    }

    /// Defines subscription `name` of `topic` with `rules` (none: the default rule that
    /// selects everything), and the queue that holds its messages.
    pub fn create_subscription(
        &mut self,
        topic: &str,
        name: &str,
        config: QueueConfig,
        rules: Vec<RuleDescription>,
    ) -> Result<&QueueDefinition, NamespaceError> {
        validate_subscription_name(name)?;
        let topic_name = self.topic_mut(topic)?.name.clone();
        let path = subscription_path(&topic_name, name);
        validate_name(&path)?;
        if self.queue(&path).is_some() {
            return Err(NamespaceError::AlreadyExists(path));
        }
        self.topic_mut(topic)?
            .subscriptions
            .push(SubscriptionDefinition {
                name: name.to_owned(),
                rules: rules_or_default(rules),
            });
        self.push_queue(&path, config)
    }

    /// The rules of subscription `name` of `topic`.
    pub fn subscription_rules(&self, topic: &str, name: &str) -> Option<&[RuleDescription]> {
        self.topic(topic)?
            .subscriptions
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
            .map(|s| s.rules.as_slice())
    }

    /// Replaces the rules of subscription `name` of `topic` (none: it takes nothing).
    pub fn set_subscription_rules(
        &mut self,
        topic: &str,
        name: &str,
        rules: Vec<RuleDescription>,
    ) -> Result<(), NamespaceError> {
        let subscription = self
            .topic_mut(topic)?
            .subscriptions
            .iter_mut()
            .find(|s| s.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| NamespaceError::NotFound(subscription_path(topic, name)))?;
        subscription.rules = rules;
        Ok(())
    }

    pub fn delete_queue(&mut self, name: &str) -> Result<QueueDefinition, NamespaceError> {
        let index = self
            .queues
            .iter()
            .position(|q| q.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| NamespaceError::NotFound(name.to_owned()))?;
        Ok(self.queues.remove(index))
    }
}

fn validate_name(name: &str) -> Result<(), NamespaceError> {
    let invalid = |why| Err(NamespaceError::InvalidName(name.to_owned(), why));
    if name.is_empty() {
        return invalid("empty");
    }
    if name.len() > MAX_NAME_LEN {
        return invalid("longer than 260 characters");
    }
    if name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return invalid("leading, trailing or doubled '/'");
    }
    if name.contains('$') {
        return invalid("'$' is reserved for system entities");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '/'))
    {
        return invalid("only letters, digits, '-', '.', '_' and '/' are allowed");
    }
    Ok(())
}

fn rules_or_default(rules: Vec<RuleDescription>) -> Vec<RuleDescription> {
    if rules.is_empty() {
        vec![RuleDescription::default_rule()]
    } else {
        rules
    }
}

/// Subscription names are one path segment.
fn validate_subscription_name(name: &str) -> Result<(), NamespaceError> {
    let invalid = |why| Err(NamespaceError::InvalidName(name.to_owned(), why));
    if name.is_empty() {
        return invalid("empty");
    }
    if name.len() > 50 {
        return invalid("longer than 50 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return invalid("only letters, digits, '-', '.' and '_' are allowed");
    }
    Ok(())
}

/// A link address split into the entity it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address<'a> {
    /// The queue name as written (compare case-insensitively).
    pub entity: &'a str,
    pub subqueue: SubQueueKind,
    /// The address ends in `/$management`.
    pub management: bool,
}

/// Parses `q1`, `q1/$DeadLetterQueue`, `q1/$management`,
/// `q1/$DeadLetterQueue/$management` (suffixes in any case), also behind an
/// `amqps://host:port/` prefix. Returns `None` for an empty entity name.
pub fn parse_address(address: &str) -> Option<Address<'_>> {
    let mut path = address;
    if let Some(scheme_end) = path.find("://") {
        let rest = path.get(scheme_end + 3..)?;
        path = rest.find('/').and_then(|slash| rest.get(slash + 1..))?;
    }
    let path = path.trim_matches('/');
    let (path, management) = strip_suffix_ignore_case(path, "/$management");
    let (path, dead_letter) = strip_suffix_ignore_case(path, "/$deadletterqueue");
    if path.is_empty() || path.starts_with('$') {
        return None;
    }
    Some(Address {
        entity: path,
        subqueue: if dead_letter {
            SubQueueKind::DeadLetter
        } else {
            SubQueueKind::Main
        },
        management,
    })
}

fn strip_suffix_ignore_case<'a>(path: &'a str, suffix: &str) -> (&'a str, bool) {
    let Some(split) = path.len().checked_sub(suffix.len()) else {
        return (path, false);
    };
    match (path.get(..split), path.get(split..)) {
        (Some(head), Some(tail)) if tail.eq_ignore_ascii_case(suffix) => (head, true),
        _ => (path, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses_in_any_case() {
        let a = parse_address("q1").expect("valid");
        assert_eq!(
            (a.entity, a.subqueue, a.management),
            ("q1", SubQueueKind::Main, false)
        );
        let a = parse_address("Q1/$deadletterqueue").expect("valid");
        assert_eq!((a.entity, a.subqueue), ("Q1", SubQueueKind::DeadLetter));
        let a =
            parse_address("amqps://localhost:5672/q1/$DeadLetterQueue/$Management").expect("valid");
        assert_eq!(
            (a.entity, a.subqueue, a.management),
            ("q1", SubQueueKind::DeadLetter, true)
        );
        let a = parse_address("orders/$management").expect("valid");
        assert_eq!(
            (a.entity, a.subqueue, a.management),
            ("orders", SubQueueKind::Main, true)
        );
        assert!(parse_address("").is_none());
        assert!(parse_address("$cbs").is_none());
        assert!(parse_address("amqps://host").is_none());
    }

    #[test]
    fn lookups_ignore_case_and_ids_are_unique() {
        let mut ns = Namespace::new();
        let a = ns
            .create_queue("Orders", QueueConfig::default())
            .expect("created")
            .clone();
        let b = ns
            .create_queue("emails", QueueConfig::default())
            .expect("created")
            .clone();
        assert!(matches!(
            ns.create_queue("ORDERS", QueueConfig::default()),
            Err(NamespaceError::AlreadyExists(_))
        ));
        assert_eq!(
            ns.queue("orders").map(|q| q.main_entity),
            Some(a.main_entity)
        );
        let ids = [
            a.main_entity,
            a.dead_letter_entity,
            a.transfer_dead_letter_entity,
            b.main_entity,
            b.dead_letter_entity,
            b.transfer_dead_letter_entity,
        ];
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        assert!(ids.iter().all(|id| *id > 0));
    }

    #[test]
    fn deleted_ids_are_not_reused_and_catalog_round_trips() {
        let mut ns = Namespace::new();
        let first = ns
            .create_queue("a", QueueConfig::default())
            .expect("created")
            .main_entity;
        ns.delete_queue("A").expect("deleted");
        let second = ns
            .create_queue("a", QueueConfig::default())
            .expect("created")
            .main_entity;
        assert_ne!(first, second);
        let config = QueueConfig {
            max_delivery_count: 2,
            ..QueueConfig::default()
        };
        ns.update_queue("a", config.clone()).expect("updated");
        let back = Namespace::from_json(&ns.to_json()).expect("parses");
        assert_eq!(back, ns);
        assert_eq!(back.queue("a").map(|q| &q.config), Some(&config));
    }

    #[test]
    fn rejects_bad_names() {
        let mut ns = Namespace::new();
        for bad in ["", "a$b", "/a", "a/", "a//b", "a b"] {
            assert!(
                matches!(
                    ns.create_queue(bad, QueueConfig::default()),
                    Err(NamespaceError::InvalidName(..))
                ),
                "{bad:?} accepted"
            );
        }
        assert!(ns.queues().is_empty());
    }

    #[test]
    fn topics_and_subscriptions_round_trip_and_share_names_with_queues() {
        let mut ns = Namespace::new();
        ns.create_queue("q", QueueConfig::default())
            .expect("created");
        assert!(matches!(
            ns.create_topic("Q", TopicConfig::default()),
            Err(NamespaceError::AlreadyExists(_))
        ));
        let topic = ns
            .create_topic("orders", TopicConfig::default())
            .expect("created")
            .entity;
        assert!(matches!(
            ns.create_queue("ORDERS", QueueConfig::default()),
            Err(NamespaceError::AlreadyExists(_))
        ));
        let sub = ns
            .create_subscription("Orders", "all", QueueConfig::default(), Vec::new())
            .expect("created")
            .clone();
        assert_eq!(sub.name, "orders/Subscriptions/all");
        assert_eq!(split_subscription_path(&sub.name), Some(("orders", "all")));
        assert_eq!(split_subscription_path("orders"), None);
        assert_eq!(split_subscription_path("a/b/c"), None);
        assert_ne!(sub.main_entity, topic);
        assert!(matches!(
            ns.create_subscription("orders", "a/b", QueueConfig::default(), Vec::new()),
            Err(NamespaceError::InvalidName(..))
        ));
        assert!(matches!(
            ns.create_subscription("missing", "s", QueueConfig::default(), Vec::new()),
            Err(NamespaceError::NotFound(_))
        ));
        let rules = &ns.topic("orders").expect("exists").subscriptions[0].rules;
        assert_eq!(rules, &vec![RuleDescription::default_rule()]);
        let sql = RuleDescription {
            name: "big".into(),
            filter: FilterDescription::Sql("amount > 10".into()),
            action: Some("SET big = TRUE".into()),
        };
        ns.set_subscription_rules("orders", "ALL", vec![sql.clone()])
            .expect("set");
        let back = Namespace::from_json(&ns.to_json()).expect("parses");
        assert_eq!(back, ns);
        assert_eq!(
            back.topic("orders").expect("exists").subscriptions[0].rules,
            vec![sql]
        );
    }

    #[test]
    fn ids_run_out_before_they_reach_the_derived_range() {
        let last_free = ALLOCATED_IDS_END - ALLOCATED_PER_QUEUE;
        let json = format!(r#"{{"queues": [], "next_entity_id": {last_free}}}"#);
        let mut ns = Namespace::from_json(json.as_bytes()).expect("parses");
        let last = ns
            .create_queue("last", QueueConfig::default())
            .expect("the last ids below the derived range are free");
        assert!(last.transfer_dead_letter_entity < ALLOCATED_IDS_END);
        assert!(matches!(
            ns.create_queue("one-too-many", QueueConfig::default()),
            Err(NamespaceError::IdsExhausted)
        ));
    }

    #[test]
    fn catalogs_written_before_status_and_times_still_open() {
        let json = br#"{"queues": [{"name": "q", "config": {"max_delivery_count": 3},
            "main_entity": 1, "dead_letter_entity": 2, "transfer_dead_letter_entity": 3}],
            "topics": [{"name": "t", "config": {}, "entity": 4, "subscriptions": []}],
            "next_entity_id": 7}"#;
        let ns = Namespace::from_json(json).expect("parses");
        let queue = ns.queue("q").expect("kept");
        assert_eq!(queue.config.status, crate::EntityStatus::Active);
        assert_eq!(queue.config.max_delivery_count, 3);
        assert_eq!(queue.times, EntityTimes::default());
        assert!(ns.topic("t").expect("kept").config.support_ordering);
    }

    #[test]
    fn deleting_a_topic_deletes_its_subscriptions() {
        let mut ns = Namespace::new();
        ns.create_topic("t", TopicConfig::default())
            .expect("created");
        ns.create_subscription("t", "a", QueueConfig::default(), Vec::new())
            .expect("created");
        ns.create_subscription("t", "b", QueueConfig::default(), Vec::new())
            .expect("created");
        let removed = ns.delete_subscription("T", "A").expect("deleted");
        assert_eq!(removed.name, "t/Subscriptions/a");
        assert!(ns.subscription_rules("t", "a").is_none());
        let (topic, queues) = ns.delete_topic("t").expect("deleted");
        assert_eq!(topic.subscriptions.len(), 1);
        assert_eq!(queues.len(), 1);
        assert!(ns.queues().is_empty() && ns.topics().is_empty());
        assert!(ns.owned_entity_ids().is_empty());
    }

    #[test]
    fn catalogs_without_topics_still_open() {
        let json = br#"{"queues": [], "next_entity_id": 4}"#;
        let ns = Namespace::from_json(json).expect("parses");
        assert!(ns.topics().is_empty());
    }
}
