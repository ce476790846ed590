//! What the administration client hands back: an entity's properties (its name and
//! settings, what an update sends back) and its runtime properties (counts, size, times).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use busbar_atom::read::{AnsweredEntity, Description};
use busbar_atom::{
    MessageCounts, NamespaceView, QueueSettings, RuleAction, RuleFilter, Runtime,
    SubscriptionSettings, TopicSettings,
};

use crate::servicebus::{ErrorKind, ServiceBusError, ServiceBusResult as Result};

/// A queue: its name and settings. Change the settings and pass it to
/// [`update_queue`](super::ServiceBusAdministrationClient::update_queue).
#[derive(Debug, Clone, PartialEq)]
pub struct QueueProperties {
    /// The entity's name.
    pub name: String,
    /// What the queue does; `QueueSettings::default()` is what the service gives a new one.
    pub settings: QueueSettings,
}

/// A topic: its name and settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicProperties {
    /// The entity's name.
    pub name: String,
    /// What the topic does.
    pub settings: TopicSettings,
}

/// A subscription: its topic, name and settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionProperties {
    /// The topic the subscription belongs to.
    pub topic_name: String,
    /// The entity's name.
    pub name: String,
    /// What the subscription does.
    pub settings: SubscriptionSettings,
}

/// A rule of a subscription: which messages it selects and what it changes in them.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleProperties {
    /// The entity's name.
    pub name: String,
    /// Which messages the rule selects.
    pub filter: RuleFilter,
    /// What the rule changes in the messages it selects.
    pub action: RuleAction,
    /// When the rule was made; `None` where the service doesn't say.
    pub created_at: Option<SystemTime>,
}

/// A queue's counts, size and times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRuntimeProperties {
    /// The entity's name.
    pub name: String,
    /// Active, dead-lettered, scheduled and transfer counts.
    pub counts: MessageCounts,
    /// Every message the queue holds, all counts together.
    pub total_message_count: u64,
    /// The bytes its messages take.
    pub size_in_bytes: u64,
    /// When it was made.
    pub created_at: SystemTime,
    /// When its settings last changed.
    pub updated_at: SystemTime,
    /// `None`: never sent to or received from.
    pub accessed_at: Option<SystemTime>,
}

/// A topic's counts, size and times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRuntimeProperties {
    /// The entity's name.
    pub name: String,
    /// Messages scheduled on the topic.
    pub scheduled_message_count: u64,
    /// How many subscriptions the topic has.
    pub subscription_count: u64,
    /// The bytes its messages take.
    pub size_in_bytes: u64,
    /// When it was made.
    pub created_at: SystemTime,
    /// When its settings last changed.
    pub updated_at: SystemTime,
    /// When a message was last sent or received; `None`: never.
    pub accessed_at: Option<SystemTime>,
}

/// A subscription's counts and times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRuntimeProperties {
    /// The topic the subscription belongs to.
    pub topic_name: String,
    /// The entity's name.
    pub name: String,
    /// Active, dead-lettered, scheduled and transfer counts.
    pub counts: MessageCounts,
    /// Every message it holds, all counts together.
    pub total_message_count: u64,
    /// When it was made.
    pub created_at: SystemTime,
    /// When its settings last changed.
    pub updated_at: SystemTime,
    /// When a message was last sent or received; `None`: never.
    pub accessed_at: Option<SystemTime>,
}

/// The namespace: its name and when it was made and last changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceProperties {
    /// The entity's name.
    pub name: String,
    /// When it was made.
    pub created_at: SystemTime,
    /// When the namespace last changed.
    pub modified_at: SystemTime,
}

/// A page of a list and where the next one starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The page's entities, in name order.
    pub items: Vec<T>,
    /// How many entities to skip for the next page; `None` on the last page.
    pub next_skip: Option<u32>,
}

/// Unix milliseconds as a time.
pub(crate) fn time(unix_ms: i64) -> SystemTime {
    match u64::try_from(unix_ms) {
        Ok(ms) => UNIX_EPOCH + Duration::from_millis(ms),
        Err(_) => UNIX_EPOCH - Duration::from_millis(unix_ms.unsigned_abs()),
    }
}

fn unexpected(kind: &str, description: &Description) -> ServiceBusError {
    ServiceBusError::new(
        ErrorKind::ServiceCommunication,
        format!(
            "expected a {kind} description, the answer holds a {}",
            description.kind()
        ),
    )
}

impl NamespaceProperties {
    pub(super) fn from_view(view: NamespaceView) -> Self {
        NamespaceProperties {
            name: view.name,
            created_at: time(view.created_at_ms),
            modified_at: time(view.modified_at_ms),
        }
    }
}

/// The times every runtime description carries.
struct Times {
    created_at: SystemTime,
    updated_at: SystemTime,
    accessed_at: Option<SystemTime>,
}

impl From<&Runtime> for Times {
    fn from(r: &Runtime) -> Self {
        Times {
            created_at: time(r.created_at_ms),
            updated_at: time(r.updated_at_ms),
            accessed_at: r.accessed_at_ms.map(time),
        }
    }
}

/// Reading an answered entity into one of the client's property types.
pub(super) trait FromAnswer: Sized {
    /// `topic` is the topic of the subscription answered, when it is one.
    fn from_answer(entity: AnsweredEntity, topic: &str) -> Result<Self>;
}

impl FromAnswer for QueueProperties {
    fn from_answer(entity: AnsweredEntity, _: &str) -> Result<Self> {
        match entity.description {
            Description::Queue(settings) => Ok(QueueProperties {
                name: entity.title,
                settings,
            }),
            other => Err(unexpected("queue", &other)),
        }
    }
}

impl FromAnswer for QueueRuntimeProperties {
    fn from_answer(entity: AnsweredEntity, _: &str) -> Result<Self> {
        if !matches!(entity.description, Description::Queue(_)) {
            return Err(unexpected("queue", &entity.description));
        }
        let r = entity.runtime;
        let times = Times::from(&r);
        Ok(QueueRuntimeProperties {
            name: entity.title,
            counts: r.counts,
            total_message_count: r.counts.total(),
            size_in_bytes: r.size_in_bytes,
            created_at: times.created_at,
            updated_at: times.updated_at,
            accessed_at: times.accessed_at,
        })
    }
}

impl FromAnswer for TopicProperties {
    fn from_answer(entity: AnsweredEntity, _: &str) -> Result<Self> {
        match entity.description {
            Description::Topic(settings) => Ok(TopicProperties {
                name: entity.title,
                settings,
            }),
            other => Err(unexpected("topic", &other)),
        }
    }
}

impl FromAnswer for TopicRuntimeProperties {
    fn from_answer(entity: AnsweredEntity, _: &str) -> Result<Self> {
        if !matches!(entity.description, Description::Topic(_)) {
            return Err(unexpected("topic", &entity.description));
        }
        let r = entity.runtime;
        let times = Times::from(&r);
        Ok(TopicRuntimeProperties {
            name: entity.title,
            scheduled_message_count: r.counts.scheduled,
            subscription_count: entity.subscription_count,
            size_in_bytes: r.size_in_bytes,
            created_at: times.created_at,
            updated_at: times.updated_at,
            accessed_at: times.accessed_at,
        })
    }
}

impl FromAnswer for SubscriptionProperties {
    fn from_answer(entity: AnsweredEntity, topic: &str) -> Result<Self> {
        match entity.description {
            Description::Subscription(settings) => Ok(SubscriptionProperties {
                topic_name: topic.to_owned(),
                name: entity.title,
                settings,
            }),
            other => Err(unexpected("subscription", &other)),
        }
    }
}

impl FromAnswer for SubscriptionRuntimeProperties {
    fn from_answer(entity: AnsweredEntity, topic: &str) -> Result<Self> {
        if !matches!(entity.description, Description::Subscription(_)) {
            return Err(unexpected("subscription", &entity.description));
        }
        let r = entity.runtime;
        let times = Times::from(&r);
        Ok(SubscriptionRuntimeProperties {
            topic_name: topic.to_owned(),
            name: entity.title,
            counts: r.counts,
            total_message_count: r.counts.total(),
            created_at: times.created_at,
            updated_at: times.updated_at,
            accessed_at: times.accessed_at,
        })
    }
}

impl FromAnswer for RuleProperties {
    fn from_answer(entity: AnsweredEntity, _: &str) -> Result<Self> {
        match entity.description {
            Description::Rule(rule) => Ok(RuleProperties {
                name: entity.title,
                filter: rule.filter,
                action: rule.action,
                created_at: (entity.runtime.created_at_ms != 0)
                    .then(|| time(entity.runtime.created_at_ms)),
            }),
            other => Err(unexpected("rule", &other)),
        }
    }
}
