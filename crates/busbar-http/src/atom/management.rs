//! The [`Management`] trait the broker implements behind the administration API, and why
//! it refuses a change.

use busbar_atom::model::{
    NamespaceView, QueueSettings, QueueView, Rule, RuleView, SubscriptionSettings,
    SubscriptionView, TopicSettings, TopicView,
};

/// Whether a PUT creates an entity (there must be none of that name) or replaces the
/// settings of one (there must be one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    Create,
    Update,
}

/// Why the broker refused a change; each maps to the status code Service Bus answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManagementError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    BadRequest(String),
    /// A quota is exhausted (entity count, size).
    #[error("{0}")]
    QuotaExceeded(String),
    /// The broker can't change anything right now (its store refuses writes).
    #[error("{0}")]
    Unavailable(String),
}

/// A change the broker completes asynchronously (deleting waits for the store to drop the
/// entity's messages).
pub type Pending<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, ManagementError>> + Send + 'a>>;

/// The entities the administration API manages, as the broker keeps them. Names are looked
/// up case-insensitively. Settings arrive validated (ranges, immutable fields, forwarding
/// targets that exist), so an implementation checks only what needs its own state: a name
/// already used by the other kind of entity, a missing topic or subscription.
pub trait Management: Send + Sync + 'static {
    fn namespace(&self) -> NamespaceView;

    fn queue(&self, name: &str) -> Option<QueueView>;
    /// Sorted by name.
    fn queues(&self) -> Vec<QueueView>;
    fn put_queue(
        &self,
        name: &str,
        settings: QueueSettings,
        mode: PutMode,
    ) -> Result<QueueView, ManagementError>;
    /// Deletes the queue and its messages.
    fn delete_queue<'a>(&'a self, name: &'a str) -> Pending<'a, ()>;

    fn topic(&self, name: &str) -> Option<TopicView>;
    fn topics(&self) -> Vec<TopicView>;
    fn put_topic(
        &self,
        name: &str,
        settings: TopicSettings,
        mode: PutMode,
    ) -> Result<TopicView, ManagementError>;
    /// Deletes the topic with its subscriptions and their rules.
    fn delete_topic<'a>(&'a self, name: &'a str) -> Pending<'a, ()>;

    fn subscription(&self, topic: &str, name: &str) -> Option<SubscriptionView>;
    /// Sorted by name; `NotFound` if the topic is missing.
    fn subscriptions(&self, topic: &str) -> Result<Vec<SubscriptionView>, ManagementError>;
    /// A created subscription gets `settings.default_rule` (or `$Default`) as its first rule.
    fn put_subscription(
        &self,
        topic: &str,
        name: &str,
        settings: SubscriptionSettings,
        mode: PutMode,
    ) -> Result<SubscriptionView, ManagementError>;
    fn delete_subscription<'a>(&'a self, topic: &'a str, name: &'a str) -> Pending<'a, ()>;

    fn rule(&self, topic: &str, subscription: &str, name: &str) -> Option<RuleView>;
    /// In the subscription's order; `NotFound` if the subscription is missing.
    fn rules(&self, topic: &str, subscription: &str) -> Result<Vec<RuleView>, ManagementError>;
    fn put_rule(
        &self,
        topic: &str,
        subscription: &str,
        name: &str,
        rule: Rule,
        mode: PutMode,
    ) -> Result<RuleView, ManagementError>;
    fn delete_rule(
        &self,
        topic: &str,
        subscription: &str,
        name: &str,
    ) -> Result<(), ManagementError>;
}
