//! The broker behind the administration (Atom) API: its entities described in the API's
//! terms, and the changes the API asks for made through the broker's entity lifecycle.

use std::time::Duration;

use busbar_atom::parameters::inline_parameters;
use busbar_core::filter::{CorrelationFilter as CoreCorrelation, FilterValue};
use busbar_core::namespace::{FilterDescription, RuleDescription};
use busbar_core::topic::TopicConfig;
use busbar_core::{EntityStatus as CoreStatus, QueueConfig};
use busbar_http::atom::{
    CorrelationFilter, EntityStatus, Management, ManagementError, MessageCounts, NamespaceView,
    Pending, PutMode, QueueSettings, QueueView, Rule, RuleAction, RuleFilter, RuleView, Runtime,
    SubscriptionSettings, SubscriptionView, TopicSettings, TopicView, TypedValue,
};
use busbar_store::Store;

use crate::broker::{
    Broker, EntityError, QueueDescription, RuntimeCounts, SubscriptionDescription, TopicDescription,
};

const MIB: u64 = 1024 * 1024;

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn span(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn megabytes(bytes: Option<u64>) -> u64 {
    bytes.map_or(1024, |b| b / MIB)
}

fn status(status: CoreStatus) -> EntityStatus {
    match status {
        CoreStatus::Active => EntityStatus::Active,
        CoreStatus::Disabled => EntityStatus::Disabled,
        CoreStatus::SendDisabled => EntityStatus::SendDisabled,
        CoreStatus::ReceiveDisabled => EntityStatus::ReceiveDisabled,
    }
}

fn core_status(status: EntityStatus) -> CoreStatus {
    match status {
        EntityStatus::Active => CoreStatus::Active,
        EntityStatus::Disabled => CoreStatus::Disabled,
        EntityStatus::SendDisabled => CoreStatus::SendDisabled,
        EntityStatus::ReceiveDisabled => CoreStatus::ReceiveDisabled,
    }
}

fn runtime(
    counts: &RuntimeCounts,
    times: busbar_core::namespace::EntityTimes,
    accessed_at_ms: Option<i64>,
) -> Runtime {
    Runtime {
        counts: MessageCounts {
            // Deferred messages are active ones set aside: the API has no count of its own
            // for them, and its counts add up to the total.
            active: counts.active + counts.deferred,
            dead_letter: counts.dead_letter,
            scheduled: counts.scheduled,
            transfer: counts.transfer,
            transfer_dead_letter: counts.transfer_dead_letter,
        },
        size_in_bytes: counts.size_bytes,
        created_at_ms: times.created_at_ms,
        updated_at_ms: times.updated_at_ms,
        accessed_at_ms,
    }
}

fn queue_settings(config: &QueueConfig) -> QueueSettings {
    QueueSettings {
        lock_duration: span(config.lock_duration_ms),
        max_size_in_megabytes: megabytes(config.max_size_bytes),
        requires_duplicate_detection: config.requires_duplicate_detection,
        requires_session: config.requires_session,
        default_message_time_to_live: config.default_ttl_ms.map(span),
        dead_lettering_on_message_expiration: config.dead_lettering_on_expiration,
        duplicate_detection_history_time_window: span(config.duplicate_detection_window_ms),
        max_delivery_count: config.max_delivery_count,
        enable_batched_operations: config.enable_batched_operations,
        status: status(config.status),
        auto_delete_on_idle: config.auto_delete_on_idle_ms.map(span),
        enable_partitioning: config.enable_partitioning,
        enable_express: config.enable_express,
        forward_to: config.forward_to.clone(),
        forward_dead_lettered_messages_to: config.forward_dead_lettered_to.clone(),
        user_metadata: config.user_metadata.clone(),
        max_message_size_in_kilobytes: config.max_message_size_kb,
    }
}

/// `base` (the entity's present config, or the defaults) with what the API sets.
fn queue_config(base: QueueConfig, s: QueueSettings) -> QueueConfig {
    QueueConfig {
        lock_duration_ms: millis(s.lock_duration),
        max_size_bytes: Some(s.max_size_in_megabytes.saturating_mul(MIB)),
        requires_duplicate_detection: s.requires_duplicate_detection,
        requires_session: s.requires_session,
        default_ttl_ms: s.default_message_time_to_live.map(millis),
        dead_lettering_on_expiration: s.dead_lettering_on_message_expiration,
        duplicate_detection_window_ms: millis(s.duplicate_detection_history_time_window),
        max_delivery_count: s.max_delivery_count,
        enable_batched_operations: s.enable_batched_operations,
        status: core_status(s.status),
        auto_delete_on_idle_ms: s.auto_delete_on_idle.map(millis),
        enable_partitioning: s.enable_partitioning,
        enable_express: s.enable_express,
        forward_to: s.forward_to,
        forward_dead_lettered_to: s.forward_dead_lettered_messages_to,
        user_metadata: s.user_metadata,
        max_message_size_kb: s.max_message_size_in_kilobytes,
        ..base
    }
}

fn topic_config(s: TopicSettings) -> TopicConfig {
    TopicConfig {
        default_ttl_ms: s.default_message_time_to_live.map(millis),
        requires_duplicate_detection: s.requires_duplicate_detection,
        duplicate_detection_window_ms: millis(s.duplicate_detection_history_time_window),
        max_size_bytes: Some(s.max_size_in_megabytes.saturating_mul(MIB)),
        status: core_status(s.status),
        user_metadata: s.user_metadata,
        auto_delete_on_idle_ms: s.auto_delete_on_idle.map(millis),
        enable_batched_operations: s.enable_batched_operations,
        enable_partitioning: s.enable_partitioning,
        support_ordering: s.support_ordering,
        enable_express: s.enable_express,
        filtering_messages_before_publishing: s.filtering_messages_before_publishing,
        max_message_size_kb: s.max_message_size_in_kilobytes,
    }
}

/// A subscription's settings as a queue's (its queue has the same properties but size).
fn subscription_queue_settings(s: &SubscriptionSettings) -> QueueSettings {
    QueueSettings {
        lock_duration: s.lock_duration,
        requires_session: s.requires_session,
        default_message_time_to_live: s.default_message_time_to_live,
        dead_lettering_on_message_expiration: s.dead_lettering_on_message_expiration,
        max_delivery_count: s.max_delivery_count,
        enable_batched_operations: s.enable_batched_operations,
        status: s.status,
        forward_to: s.forward_to.clone(),
        forward_dead_lettered_messages_to: s.forward_dead_lettered_messages_to.clone(),
        auto_delete_on_idle: s.auto_delete_on_idle,
        user_metadata: s.user_metadata.clone(),
        ..QueueSettings::default()
    }
}

fn subscription_config(base: QueueConfig, s: SubscriptionSettings) -> QueueConfig {
    let dead_letter_on_filter_error = s.dead_lettering_on_filter_evaluation_exceptions;
    QueueConfig {
        dead_lettering_on_filter_evaluation_exceptions: dead_letter_on_filter_error,
        max_size_bytes: base.max_size_bytes,
        ..queue_config(base, subscription_queue_settings(&s))
    }
}

fn queue_view(d: QueueDescription) -> QueueView {
    QueueView {
        settings: queue_settings(&d.config),
        runtime: runtime(&d.counts, d.times, d.accessed_at_ms),
        name: d.name,
    }
}

fn topic_view(d: TopicDescription) -> TopicView {
    let c = &d.config;
    TopicView {
        settings: TopicSettings {
            default_message_time_to_live: c.default_ttl_ms.map(span),
            max_size_in_megabytes: megabytes(c.max_size_bytes),
            requires_duplicate_detection: c.requires_duplicate_detection,
            duplicate_detection_history_time_window: span(c.duplicate_detection_window_ms),
            enable_batched_operations: c.enable_batched_operations,
            filtering_messages_before_publishing: c.filtering_messages_before_publishing,
            status: status(c.status),
            support_ordering: c.support_ordering,
            auto_delete_on_idle: c.auto_delete_on_idle_ms.map(span),
            enable_partitioning: c.enable_partitioning,
            enable_subscription_partitioning: false,
            enable_express: c.enable_express,
            user_metadata: c.user_metadata.clone(),
            max_message_size_in_kilobytes: c.max_message_size_kb,
        },
        runtime: runtime(&d.counts, d.times, d.accessed_at_ms),
        subscription_count: d.subscription_count as u64,
        name: d.name,
    }
}

fn subscription_view(d: SubscriptionDescription) -> SubscriptionView {
    let q = queue_settings(&d.config);
    SubscriptionView {
        settings: SubscriptionSettings {
            lock_duration: q.lock_duration,
            requires_session: q.requires_session,
            default_message_time_to_live: q.default_message_time_to_live,
            dead_lettering_on_message_expiration: q.dead_lettering_on_message_expiration,
            dead_lettering_on_filter_evaluation_exceptions: d
                .config
                .dead_lettering_on_filter_evaluation_exceptions,
            max_delivery_count: q.max_delivery_count,
            enable_batched_operations: q.enable_batched_operations,
            status: q.status,
            forward_to: q.forward_to,
            forward_dead_lettered_messages_to: q.forward_dead_lettered_messages_to,
            auto_delete_on_idle: q.auto_delete_on_idle,
            user_metadata: q.user_metadata,
            default_rule: None,
        },
        runtime: runtime(&d.counts, d.times, d.accessed_at_ms),
        topic: d.topic,
        name: d.name,
    }
}

fn entity_error(error: EntityError) -> ManagementError {
    match error {
        EntityError::AlreadyExists(_) => ManagementError::Conflict(error.to_string()),
        EntityError::NotFound(_) => ManagementError::NotFound(error.to_string()),
        EntityError::Invalid(_) | EntityError::Immutable { .. } => {
            ManagementError::BadRequest(error.to_string())
        }
        EntityError::Store(_) => ManagementError::Unavailable(error.to_string()),
    }
}

fn typed(value: &FilterValue) -> TypedValue {
    match value {
        FilterValue::Null => TypedValue::String(String::new()),
        FilterValue::Bool(b) => TypedValue::Boolean(*b),
        FilterValue::Long(n) => i32::try_from(*n).map_or(TypedValue::Long(*n), TypedValue::Int),
        FilterValue::Double(x) => TypedValue::Double(*x),
        FilterValue::String(s) => TypedValue::String(s.clone()),
    }
}

fn filter_value(value: &TypedValue) -> FilterValue {
    match value {
        TypedValue::String(s) | TypedValue::DateTime(s) | TypedValue::Duration(s) => {
            FilterValue::String(s.clone())
        }
        TypedValue::Int(n) => FilterValue::Long(i64::from(*n)),
        TypedValue::Long(n) => FilterValue::Long(*n),
        TypedValue::Double(x) => FilterValue::Double(*x),
        TypedValue::Boolean(b) => FilterValue::Bool(*b),
    }
}

/// A rule as the API shows it. Rules keep no times of their own: `created_at_ms` is their
/// subscription's.
fn rule_view(description: RuleDescription, created_at_ms: i64) -> RuleView {
    let filter = match description.filter {
        FilterDescription::True => RuleFilter::True,
        FilterDescription::False => RuleFilter::False,
        FilterDescription::Sql(expression) => RuleFilter::Sql {
            expression,
            parameters: Vec::new(),
        },
        FilterDescription::Correlation(c) => RuleFilter::Correlation(CorrelationFilter {
            properties: c
                .properties
                .iter()
                .map(|(k, v)| (k.clone(), typed(v)))
                .collect(),
            correlation_id: c.correlation_id,
            message_id: c.message_id,
            to: c.to,
            reply_to: c.reply_to,
            label: c.subject,
            session_id: c.session_id,
            reply_to_session_id: c.reply_to_session_id,
            content_type: c.content_type,
        }),
    };
    let action = match description.action {
        Some(expression) => RuleAction::Sql {
            expression,
            parameters: Vec::new(),
        },
        None => RuleAction::Empty,
    };
    RuleView {
        name: description.name,
        rule: Rule { filter, action },
        created_at_ms,
    }
}

/// The rule as the broker keeps it. Parameters are written into their expression: the
/// rule works as asked, and is shown afterwards with the values in place.
fn rule_description(name: &str, rule: Rule) -> Result<RuleDescription, ManagementError> {
    let inline = |expression: String, parameters: &[(String, TypedValue)]| {
        inline_parameters(&expression, parameters).map_err(ManagementError::BadRequest)
    };
    let filter = match rule.filter {
        RuleFilter::True => FilterDescription::True,
        RuleFilter::False => FilterDescription::False,
        RuleFilter::Sql {
            expression,
            parameters,
        } => FilterDescription::Sql(inline(expression, &parameters)?),
        RuleFilter::Correlation(c) => FilterDescription::Correlation(CoreCorrelation {
            properties: c
                .properties
                .iter()
                .map(|(k, v)| (k.clone(), filter_value(v)))
                .collect(),
            correlation_id: c.correlation_id,
            message_id: c.message_id,
            to: c.to,
            reply_to: c.reply_to,
            subject: c.label,
            session_id: c.session_id,
            reply_to_session_id: c.reply_to_session_id,
            content_type: c.content_type,
        }),
    };
    let action = match rule.action {
        RuleAction::Empty => None,
        RuleAction::Sql {
            expression,
            parameters,
        } => Some(inline(expression, &parameters)?),
    };
    Ok(RuleDescription {
        name: name.to_owned(),
        filter,
        action,
    })
}

/// The namespace's name as the API reports it (the entry title the SDKs read it from).
const NAMESPACE_NAME: &str = "busbar";

/// The namespace first opened at `created_at_ms` (0 while no broker is serving).
fn namespace_view(created_at_ms: i64) -> NamespaceView {
    NamespaceView {
        name: NAMESPACE_NAME.to_owned(),
        created_at_ms,
        modified_at_ms: created_at_ms,
    }
}

impl<S: Store> Broker<S> {
    /// When the subscription's rules were made, as far as the broker knows: when it was.
    fn rules_created_at(&self, topic: &str, subscription: &str) -> i64 {
        self.get_subscription(topic, subscription)
            .map_or(0, |s| s.times.created_at_ms)
    }
}

impl<S: Store> Management for Broker<S> {
    fn namespace(&self) -> NamespaceView {
        namespace_view(self.namespace_created_at_ms())
    }

    fn queue(&self, name: &str) -> Option<QueueView> {
        self.get_queue(name).ok().map(queue_view)
    }

    fn queues(&self) -> Vec<QueueView> {
        self.list_queues().into_iter().map(queue_view).collect()
    }

    fn put_queue(
        &self,
        name: &str,
        settings: QueueSettings,
        mode: PutMode,
    ) -> Result<QueueView, ManagementError> {
        match mode {
            PutMode::Create => {
                self.create_queue(name, queue_config(QueueConfig::default(), settings))
            }
            PutMode::Update => {
                let base = self.get_queue(name).map_err(entity_error)?.config;
                self.update_queue(name, queue_config(base, settings))
            }
        }
        .map_err(entity_error)?;
        self.get_queue(name).map(queue_view).map_err(entity_error)
    }

    fn delete_queue<'a>(&'a self, name: &'a str) -> Pending<'a, ()> {
        Box::pin(async move { Broker::delete_queue(self, name).await.map_err(entity_error) })
    }

    fn topic(&self, name: &str) -> Option<TopicView> {
        self.get_topic(name).ok().map(topic_view)
    }

    fn topics(&self) -> Vec<TopicView> {
        self.list_topics().into_iter().map(topic_view).collect()
    }

    fn put_topic(
        &self,
        name: &str,
        settings: TopicSettings,
        mode: PutMode,
    ) -> Result<TopicView, ManagementError> {
        let config = topic_config(settings);
        match mode {
            PutMode::Create => self.create_topic(name, config),
            PutMode::Update => self.update_topic(name, config),
        }
        .map_err(entity_error)?;
        self.get_topic(name).map(topic_view).map_err(entity_error)
    }

    fn delete_topic<'a>(&'a self, name: &'a str) -> Pending<'a, ()> {
        Box::pin(async move { Broker::delete_topic(self, name).await.map_err(entity_error) })
    }

    fn subscription(&self, topic: &str, name: &str) -> Option<SubscriptionView> {
        self.get_subscription(topic, name)
            .ok()
            .map(subscription_view)
    }

    fn subscriptions(&self, topic: &str) -> Result<Vec<SubscriptionView>, ManagementError> {
        let list = self.list_subscriptions(topic).map_err(entity_error)?;
        Ok(list.into_iter().map(subscription_view).collect())
    }

    fn put_subscription(
        &self,
        topic: &str,
        name: &str,
        mut settings: SubscriptionSettings,
        mode: PutMode,
    ) -> Result<SubscriptionView, ManagementError> {
        match mode {
            PutMode::Create => {
                let first = settings.default_rule.take().unwrap_or_default();
                let first = rule_description(busbar_http::atom::DEFAULT_RULE_NAME, first)?;
                let config = subscription_config(QueueConfig::default(), settings);
                self.create_subscription(topic, name, config, Some(first))
            }
            PutMode::Update => {
                let base = self
                    .get_subscription(topic, name)
                    .map_err(entity_error)?
                    .config;
                self.update_subscription(topic, name, subscription_config(base, settings))
            }
        }
        .map_err(entity_error)?;
        self.get_subscription(topic, name)
            .map(subscription_view)
            .map_err(entity_error)
    }

    fn delete_subscription<'a>(&'a self, topic: &'a str, name: &'a str) -> Pending<'a, ()> {
        Box::pin(async move {
            Broker::delete_subscription(self, topic, name)
                .await
                .map_err(entity_error)
        })
    }

    fn rule(&self, topic: &str, subscription: &str, name: &str) -> Option<RuleView> {
        let created = self.rules_created_at(topic, subscription);
        let rule = self.get_rule(topic, subscription, name).ok()?;
        Some(rule_view(rule, created))
    }

    fn rules(&self, topic: &str, subscription: &str) -> Result<Vec<RuleView>, ManagementError> {
        let created = self.rules_created_at(topic, subscription);
        let rules = self.list_rules(topic, subscription).map_err(entity_error)?;
        Ok(rules.into_iter().map(|r| rule_view(r, created)).collect())
    }

    fn put_rule(
        &self,
        topic: &str,
        subscription: &str,
        name: &str,
        rule: Rule,
        mode: PutMode,
    ) -> Result<RuleView, ManagementError> {
        let description = rule_description(name, rule)?;
        match mode {
            PutMode::Create => self.create_rule(topic, subscription, description),
            PutMode::Update => self.update_rule(topic, subscription, description),
        }
        .map_err(entity_error)?;
        let created = self.rules_created_at(topic, subscription);
        self.get_rule(topic, subscription, name)
            .map(|r| rule_view(r, created))
            .map_err(entity_error)
    }

    fn delete_rule(
        &self,
        topic: &str,
        subscription: &str,
        name: &str,
    ) -> Result<(), ManagementError> {
        Broker::delete_rule(self, topic, subscription, name).map_err(entity_error)
    }
}

/// What the API is told while no broker is serving (the store is being reopened).
const REOPENING: &str = "The broker is reopening its store.";

impl crate::Current {
    fn broker_for_change(&self) -> Result<std::sync::Arc<crate::ServedBroker>, ManagementError> {
        self.broker()
            .ok_or_else(|| ManagementError::Unavailable(REOPENING.to_owned()))
    }
}

/// Every call goes to the broker serving now; while none is, reads find nothing and
/// changes are refused as unavailable.
impl busbar_http::atom::Management for crate::Current {
    fn namespace(&self) -> NamespaceView {
        match self.broker() {
            Some(b) => Management::namespace(&*b),
            None => namespace_view(0),
        }
    }
    fn queue(&self, name: &str) -> Option<QueueView> {
        Management::queue(&*self.broker()?, name)
    }
    fn queues(&self) -> Vec<QueueView> {
        self.broker()
            .map(|b| Management::queues(&*b))
            .unwrap_or_default()
    }
    fn put_queue(
        &self,
        name: &str,
        settings: QueueSettings,
        mode: PutMode,
    ) -> Result<QueueView, ManagementError> {
        Management::put_queue(&*self.broker_for_change()?, name, settings, mode)
    }
    fn delete_queue<'a>(&'a self, name: &'a str) -> Pending<'a, ()> {
        Box::pin(async move { Management::delete_queue(&*self.broker_for_change()?, name).await })
    }
    fn topic(&self, name: &str) -> Option<TopicView> {
        Management::topic(&*self.broker()?, name)
    }
    fn topics(&self) -> Vec<TopicView> {
        self.broker()
            .map(|b| Management::topics(&*b))
            .unwrap_or_default()
    }
    fn put_topic(
        &self,
        name: &str,
        settings: TopicSettings,
        mode: PutMode,
    ) -> Result<TopicView, ManagementError> {
        Management::put_topic(&*self.broker_for_change()?, name, settings, mode)
    }
    fn delete_topic<'a>(&'a self, name: &'a str) -> Pending<'a, ()> {
        Box::pin(async move { Management::delete_topic(&*self.broker_for_change()?, name).await })
    }
    fn subscription(&self, topic: &str, name: &str) -> Option<SubscriptionView> {
        Management::subscription(&*self.broker()?, topic, name)
    }
    fn subscriptions(&self, topic: &str) -> Result<Vec<SubscriptionView>, ManagementError> {
        Management::subscriptions(&*self.broker_for_change()?, topic)
    }
    fn put_subscription(
        &self,
        topic: &str,
        name: &str,
        settings: SubscriptionSettings,
        mode: PutMode,
    ) -> Result<SubscriptionView, ManagementError> {
        Management::put_subscription(&*self.broker_for_change()?, topic, name, settings, mode)
    }
    fn delete_subscription<'a>(&'a self, topic: &'a str, name: &'a str) -> Pending<'a, ()> {
        Box::pin(async move {
            Management::delete_subscription(&*self.broker_for_change()?, topic, name).await
        })
    }
    fn rule(&self, topic: &str, subscription: &str, name: &str) -> Option<RuleView> {
        Management::rule(&*self.broker()?, topic, subscription, name)
    }
    fn rules(&self, topic: &str, subscription: &str) -> Result<Vec<RuleView>, ManagementError> {
        Management::rules(&*self.broker_for_change()?, topic, subscription)
    }
    fn put_rule(
        &self,
        topic: &str,
        subscription: &str,
        name: &str,
        rule: Rule,
        mode: PutMode,
    ) -> Result<RuleView, ManagementError> {
        Management::put_rule(
            &*self.broker_for_change()?,
            topic,
            subscription,
            name,
            rule,
            mode,
        )
    }
    fn delete_rule(
        &self,
        topic: &str,
        subscription: &str,
        name: &str,
    ) -> Result<(), ManagementError> {
        Management::delete_rule(&*self.broker_for_change()?, topic, subscription, name)
    }
}
