//! The broker behind the administration (Atom) API: its entities described in the API's
//! terms, and the changes the API asks for applied to the broker.

use std::time::Duration;

use busbar_core::QueueConfig;
use busbar_core::filter::{CorrelationFilter as CoreCorrelation, FilterValue, inline_parameters};
use busbar_core::namespace::{FilterDescription, RuleDescription, split_subscription_path};
use busbar_core::rules::Rule as CompiledRule;
use busbar_http::atom::{
    CorrelationFilter, Management, ManagementError, MessageCounts, NamespaceView, Pending, PutMode,
    QueueSettings, QueueView, Rule, RuleAction, RuleFilter, RuleView, Runtime,
    SubscriptionSettings, SubscriptionView, TopicSettings, TopicView, TypedValue,
};
use busbar_store::Store;

use crate::broker::{Broker, Entity, RuleChangeError, TopicEntity};

/// What runtime changes of queues, topics and subscriptions answer until the broker can
/// make them.
const NOT_YET: &str = "Creating, changing and deleting queues, topics and subscriptions at run time is not available yet; define them in Config.json.";

fn not_yet<'a>() -> Pending<'a, ()> {
    Box::pin(std::future::ready(Err(ManagementError::BadRequest(
        NOT_YET.to_owned(),
    ))))
}

fn span_ms(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn counts(entity: &Entity) -> (MessageCounts, u64) {
    let state = entity.lock();
    let counts = state.queue.counts();
    (
        MessageCounts {
            // Deferred messages are active ones set aside; the API has no count of its own
            // for them, and its total must add up.
            active: counts.active + counts.deferred,
            dead_letter: counts.dead_letter,
            scheduled: counts.scheduled,
            transfer: 0,
            transfer_dead_letter: counts.transfer_dead_letter,
        },
        state.queue.size_bytes(),
    )
}

fn runtime(counts: MessageCounts, size_in_bytes: u64, now_ms: i64) -> Runtime {
    Runtime {
        counts,
        size_in_bytes,
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
        accessed_at_ms: None,
    }
}

fn megabytes(bytes: Option<u64>) -> u64 {
    bytes.map_or(1024, |b| b / (1024 * 1024))
}

fn queue_settings(config: &QueueConfig) -> QueueSettings {
    QueueSettings {
        lock_duration: span_ms(config.lock_duration_ms),
        max_size_in_megabytes: megabytes(config.max_size_bytes),
        requires_duplicate_detection: config.requires_duplicate_detection,
        requires_session: config.requires_session,
        default_message_time_to_live: config.default_ttl_ms.map(span_ms),
        dead_lettering_on_message_expiration: config.dead_lettering_on_expiration,
        duplicate_detection_history_time_window: span_ms(config.duplicate_detection_window_ms),
        max_delivery_count: config.max_delivery_count,
        forward_to: config.forward_to.clone(),
        forward_dead_lettered_messages_to: config.forward_dead_lettered_to.clone(),
        ..QueueSettings::default()
    }
}

impl<S: Store> Broker<S> {
    fn queue_view(&self, entity: &Entity) -> QueueView {
        let (counts, size) = counts(entity);
        let config = entity.lock().queue.config().clone();
        QueueView {
            name: entity.name.clone(),
            settings: queue_settings(&config),
            runtime: runtime(counts, size, self.now_ms()),
        }
    }

    fn topic_view(&self, topic: &TopicEntity) -> TopicView {
        let state = topic.lock();
        let config = state.topic.config();
        let scheduled = state.scheduled.counts().scheduled;
        TopicView {
            name: topic.name.clone(),
            settings: TopicSettings {
                default_message_time_to_live: config.default_ttl_ms.map(span_ms),
                max_size_in_megabytes: megabytes(config.max_size_bytes),
                requires_duplicate_detection: config.requires_duplicate_detection,
                duplicate_detection_history_time_window: span_ms(
                    config.duplicate_detection_window_ms,
                ),
                ..TopicSettings::default()
            },
            runtime: runtime(
                MessageCounts {
                    scheduled,
                    ..MessageCounts::default()
                },
                state.scheduled.size_bytes(),
                self.now_ms(),
            ),
            subscription_count: state.subscriptions.len() as u64,
        }
    }

    fn subscription_view(&self, topic: &str, entity: &Entity) -> SubscriptionView {
        let (counts, size) = counts(entity);
        let config = entity.lock().queue.config().clone();
        let queue = queue_settings(&config);
        let name = split_subscription_path(&entity.name).map_or(entity.name.as_str(), |(_, n)| n);
        SubscriptionView {
            topic: topic.to_owned(),
            name: name.to_owned(),
            settings: SubscriptionSettings {
                lock_duration: queue.lock_duration,
                requires_session: queue.requires_session,
                default_message_time_to_live: queue.default_message_time_to_live,
                dead_lettering_on_message_expiration: queue.dead_lettering_on_message_expiration,
                dead_lettering_on_filter_evaluation_exceptions: config
                    .dead_lettering_on_filter_evaluation_exceptions,
                max_delivery_count: queue.max_delivery_count,
                forward_to: queue.forward_to,
                forward_dead_lettered_messages_to: queue.forward_dead_lettered_messages_to,
                ..SubscriptionSettings::default()
            },
            runtime: runtime(counts, size, self.now_ms()),
        }
    }

    /// The queue of the subscription `topic`/`name`.
    fn subscription_entity(&self, topic: &str, name: &str) -> Option<std::sync::Arc<Entity>> {
        let topic = self.topic(topic)?;
        let state = topic.lock();
        state
            .subscriptions
            .iter()
            .find(|s| {
                split_subscription_path(&s.entity.name)
                    .is_some_and(|(_, n)| n.eq_ignore_ascii_case(name))
            })
            .map(|s| std::sync::Arc::clone(&s.entity))
    }

    fn subscription_entity_or_404(
        &self,
        topic: &str,
        name: &str,
    ) -> Result<std::sync::Arc<Entity>, ManagementError> {
        self.subscription_entity(topic, name).ok_or_else(|| {
            ManagementError::NotFound(format!(
                "The messaging entity '{topic}/Subscriptions/{name}' could not be found."
            ))
        })
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

fn rule_view(description: &RuleDescription) -> RuleView {
    let filter = match &description.filter {
        FilterDescription::True => RuleFilter::True,
        FilterDescription::False => RuleFilter::False,
        FilterDescription::Sql(expression) => RuleFilter::Sql {
            expression: expression.clone(),
            parameters: Vec::new(),
        },
        FilterDescription::Correlation(c) => RuleFilter::Correlation(CorrelationFilter {
            correlation_id: c.correlation_id.clone(),
            message_id: c.message_id.clone(),
            to: c.to.clone(),
            reply_to: c.reply_to.clone(),
            label: c.subject.clone(),
            session_id: c.session_id.clone(),
            reply_to_session_id: c.reply_to_session_id.clone(),
            content_type: c.content_type.clone(),
            properties: c
                .properties
                .iter()
                .map(|(k, v)| (k.clone(), typed(v)))
                .collect(),
        }),
    };
    let action = match &description.action {
        Some(expression) => RuleAction::Sql {
            expression: expression.clone(),
            parameters: Vec::new(),
        },
        None => RuleAction::Empty,
    };
    RuleView {
        name: description.name.clone(),
        rule: Rule { filter, action },
        created_at_ms: 0,
    }
}

/// The rule as the broker keeps it. Parameters are written into their expression: the
/// rule works as asked, and is shown afterwards with the values in place.
fn rule_description(name: &str, rule: Rule) -> Result<RuleDescription, ManagementError> {
    let inline = |expression: String, parameters: &[(String, TypedValue)]| {
        let values: Vec<(String, FilterValue)> = parameters
            .iter()
            .map(|(key, value)| (key.clone(), filter_value(value)))
            .collect();
        inline_parameters(&expression, &values).map_err(ManagementError::BadRequest)
    };
    let filter = match rule.filter {
        RuleFilter::True => FilterDescription::True,
        RuleFilter::False => FilterDescription::False,
        RuleFilter::Sql {
            expression,
            parameters,
        } => FilterDescription::Sql(inline(expression, &parameters)?),
        RuleFilter::Correlation(c) => FilterDescription::Correlation(CoreCorrelation {
            correlation_id: c.correlation_id,
            message_id: c.message_id,
            to: c.to,
            reply_to: c.reply_to,
            subject: c.label,
            session_id: c.session_id,
            reply_to_session_id: c.reply_to_session_id,
            content_type: c.content_type,
            properties: c
                .properties
                .iter()
                .map(|(k, v)| (k.clone(), filter_value(v)))
                .collect(),
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

fn namespace_view() -> NamespaceView {
    NamespaceView {
        name: "busbar".to_owned(),
        created_at_ms: 0,
        modified_at_ms: 0,
    }
}

fn rule_error(error: RuleChangeError) -> ManagementError {
    match error {
        RuleChangeError::NotASubscription(detail) | RuleChangeError::NotFound(detail) => {
            ManagementError::NotFound(detail)
        }
        RuleChangeError::AlreadyExists(detail) => ManagementError::Conflict(detail),
        RuleChangeError::Invalid(detail) => ManagementError::BadRequest(detail),
        RuleChangeError::Store(error) => ManagementError::Unavailable(error.to_string()),
    }
}

impl<S: Store> busbar_http::atom::Management for Broker<S> {
    fn namespace(&self) -> NamespaceView {
        namespace_view()
    }

    fn queue(&self, name: &str) -> Option<QueueView> {
        self.entity(name)
            .filter(|e| split_subscription_path(&e.name).is_none())
            .map(|e| self.queue_view(&e))
    }

    fn queues(&self) -> Vec<QueueView> {
        self.entities()
            .iter()
            .filter(|e| split_subscription_path(&e.name).is_none())
            .map(|e| self.queue_view(e))
            .collect()
    }

    fn put_queue(
        &self,
        _: &str,
        _: QueueSettings,
        _: PutMode,
    ) -> Result<QueueView, ManagementError> {
        Err(ManagementError::BadRequest(NOT_YET.to_owned()))
    }

    fn delete_queue<'a>(&'a self, _: &'a str) -> Pending<'a, ()> {
        not_yet()
    }

    fn topic(&self, name: &str) -> Option<TopicView> {
        Broker::topic(self, name).map(|t| self.topic_view(&t))
    }

    fn topics(&self) -> Vec<TopicView> {
        let mut topics: Vec<TopicView> = Broker::topics(self)
            .iter()
            .map(|t| self.topic_view(t))
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        topics
    }

    fn put_topic(
        &self,
        _: &str,
        _: TopicSettings,
        _: PutMode,
    ) -> Result<TopicView, ManagementError> {
        Err(ManagementError::BadRequest(NOT_YET.to_owned()))
    }

    fn delete_topic<'a>(&'a self, _: &'a str) -> Pending<'a, ()> {
        not_yet()
    }

    fn subscription(&self, topic: &str, name: &str) -> Option<SubscriptionView> {
        let entity = self.subscription_entity(topic, name)?;
        Some(self.subscription_view(topic, &entity))
    }

    fn subscriptions(&self, topic: &str) -> Result<Vec<SubscriptionView>, ManagementError> {
        let found = Broker::topic(self, topic).ok_or_else(|| {
            ManagementError::NotFound(format!(
                "The messaging entity '{topic}' could not be found."
            ))
        })?;
        let entities: Vec<_> = found
            .lock()
            .subscriptions
            .iter()
            .map(|s| std::sync::Arc::clone(&s.entity))
            .collect();
        let mut views: Vec<SubscriptionView> = entities
            .iter()
            .map(|e| self.subscription_view(&found.name, e))
            .collect();
        views.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(views)
    }

    fn put_subscription(
        &self,
        _: &str,
        _: &str,
        _: SubscriptionSettings,
        _: PutMode,
    ) -> Result<SubscriptionView, ManagementError> {
        Err(ManagementError::BadRequest(NOT_YET.to_owned()))
    }

    fn delete_subscription<'a>(&'a self, _: &'a str, _: &'a str) -> Pending<'a, ()> {
        not_yet()
    }

    fn rule(&self, topic: &str, subscription: &str, name: &str) -> Option<RuleView> {
        let entity = self.subscription_entity(topic, subscription)?;
        self.subscription_rules(&entity)
            .ok()?
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(name))
            .map(rule_view)
    }

    fn rules(&self, topic: &str, subscription: &str) -> Result<Vec<RuleView>, ManagementError> {
        let entity = self.subscription_entity_or_404(topic, subscription)?;
        let rules = self.subscription_rules(&entity).map_err(rule_error)?;
        Ok(rules.iter().map(rule_view).collect())
    }

    fn put_rule(
        &self,
        topic: &str,
        subscription: &str,
        name: &str,
        rule: Rule,
        mode: PutMode,
    ) -> Result<RuleView, ManagementError> {
        let entity = self.subscription_entity_or_404(topic, subscription)?;
        let description = rule_description(name, rule)?;
        CompiledRule::compile(&description)
            .map_err(|e| ManagementError::BadRequest(format!("invalid rule: {e}")))?;
        if mode == PutMode::Update {
            // Replacing a rule is removing it and adding its new form, both saved.
            self.remove_rule(&entity, name).map_err(rule_error)?;
        }
        self.add_rule(&entity, description.clone())
            .map_err(rule_error)?;
        Ok(rule_view(&description))
    }

    fn delete_rule(
        &self,
        topic: &str,
        subscription: &str,
        name: &str,
    ) -> Result<(), ManagementError> {
        let entity = self.subscription_entity_or_404(topic, subscription)?;
        self.remove_rule(&entity, name).map_err(rule_error)
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
            None => namespace_view(),
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
