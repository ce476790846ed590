//! Writes what the administration API answers: Atom entries and feeds wrapping entity
//! descriptions in the service's own element order, and error bodies. The details the SDKs
//! depend on: `CountDetails` declares exactly one namespace (JS), every filter, action and
//! typed value carries `i:type` (Python), typed values use the `d6p1:` prefix (JS reads
//! past its first five characters), and forward targets are `sb://host/name` URLs.

use std::fmt::Write as _;
use std::time::Duration;

use quick_xml::escape::{escape, partial_escape};

use crate::duration;
use crate::model::{
    CorrelationFilter, MessageCounts, NamespaceView, QueueSettings, QueueView, Rule, RuleAction,
    RuleFilter, RuleView, Runtime, SubscriptionSettings, SubscriptionView, TopicSettings,
    TopicView, TypedValue,
};
use crate::timestamp::{NEVER, format_utc};
use crate::xml_tree::{ATOM_NS, CONNECT_NS, XSI_NS};

const XML_DECLARATION: &str = r#"<?xml version="1.0" encoding="utf-8"?>"#;
const COUNTS_NS: &str = "http://schemas.microsoft.com/netservices/2011/06/servicebus";
const XSD_NS: &str = "http://www.w3.org/2001/XMLSchema";

/// What every entry and feed needs to know about the request it answers.
#[derive(Debug, Clone)]
pub struct Context {
    /// `host[:port]` as the client addressed the broker.
    pub host: String,
    /// The namespace's name, the author of every entry.
    pub namespace: String,
    /// The time of the answer (unix milliseconds).
    pub now_ms: i64,
}

impl Context {
    /// The absolute URL of a request path.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("https://{}{}", self.host, path_and_query)
    }

    /// A forwarding target as the `sb://` URL of the entity on this host; a target that
    /// already is a URL (a client sending back what it read) stays as it is.
    fn forward_url(&self, name: &str) -> String {
        if name.contains("://") {
            name.to_owned()
        } else {
            format!("sb://{}/{}", self.host, name)
        }
    }
}

/// One entity as a standalone Atom entry document.
pub fn entry_document(context: &Context, entry: &Entry) -> String {
    let mut out = String::from(XML_DECLARATION);
    write_entry(&mut out, context, entry);
    out
}

/// An entry of an entry document or a feed.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The entry's URL path (its `id` and self link).
    pub path: String,
    /// The entry's title: the entity's name.
    pub title: String,
    /// When the entity was made (unix milliseconds).
    pub published_ms: i64,
    /// When it last changed (unix milliseconds).
    pub updated_ms: i64,
    /// The description element, already written.
    pub content: String,
}

fn write_entry(out: &mut String, context: &Context, entry: &Entry) {
    let url = escape(context.url(&entry.path)).into_owned();
    let _ = write!(
        out,
        r#"<entry xmlns="{ATOM_NS}"><id>{url}</id><title type="text">{}</title><published>{}</published><updated>{}</updated><author><name>{}</name></author><link rel="self" href="{url}"/><content type="application/xml">{}</content></entry>"#,
        escape(entry.title.as_str()),
        format_utc(entry.published_ms),
        format_utc(entry.updated_ms),
        escape(context.namespace.as_str()),
        entry.content,
    );
}

/// A list page. `next` is the path and query of the following page, when there is one: it
/// must be the feed's second link (Python reads the next page by position).
pub fn feed(
    context: &Context,
    title: &str,
    self_path: &str,
    next: Option<&str>,
    entries: &[Entry],
) -> String {
    let self_url = escape(context.url(self_path)).into_owned();
    let mut out = String::from(XML_DECLARATION);
    let _ = write!(
        out,
        r#"<feed xmlns="{ATOM_NS}"><title type="text">{title}</title><id>{self_url}</id><updated>{}</updated><link rel="self" href="{self_url}"/>"#,
        format_utc(context.now_ms),
    );
    if let Some(next) = next {
        let _ = write!(
            out,
            r#"<link rel="next" href="{}"/>"#,
            escape(context.url(next))
        );
    }
    for entry in entries {
        write_entry(&mut out, context, entry);
    }
    out.push_str("</feed>");
    out
}

/// What the service answers a GET of an entity that doesn't exist: 200 and an empty feed.
pub fn empty_feed(context: &Context, path: &str) -> String {
    format!(
        r#"{XML_DECLARATION}<feed xmlns="{ATOM_NS}"><title type="text">Publicly Listed Services</title><id>{}</id><updated>{}</updated><generator>Service Bus 1.1</generator></feed>"#,
        escape(context.url(path)),
        format_utc(context.now_ms),
    )
}

/// `<Error><Code>…</Code><Detail>…</Detail></Error>`.
pub fn error(status: u16, detail: &str) -> String {
    format!(
        "<Error><Code>{status}</Code><Detail>{}</Detail></Error>",
        partial_escape(detail)
    )
}

/// Builds a description element: children in the order they are added. A request's
/// description (what a client PUTs) leaves out what only the service reports.
struct Description {
    out: String,
    root: &'static str,
    reports: bool,
}

impl Description {
    fn new(root: &'static str) -> Self {
        Description {
            out: format!(r#"<{root} xmlns="{CONNECT_NS}" xmlns:i="{XSI_NS}">"#),
            root,
            reports: true,
        }
    }

    /// A description without the service's reports, for a request.
    fn request(root: &'static str) -> Self {
        Description {
            reports: false,
            ..Description::new(root)
        }
    }

    /// An element only the service reports.
    fn report(&mut self, name: &str, value: impl std::fmt::Display) -> &mut Self {
        if self.reports {
            self.value(name, value);
        }
        self
    }

    fn report_raw(&mut self, xml: &str) -> &mut Self {
        if self.reports {
            self.raw(xml);
        }
        self
    }

    fn text(&mut self, name: &str, value: &str) -> &mut Self {
        let _ = write!(self.out, "<{name}>{}</{name}>", partial_escape(value));
        self
    }

    fn value(&mut self, name: &str, value: impl std::fmt::Display) -> &mut Self {
        let _ = write!(self.out, "<{name}>{value}</{name}>");
        self
    }

    fn span(&mut self, name: &str, value: Option<Duration>) -> &mut Self {
        self.value(name, duration::format(value))
    }

    fn time(&mut self, name: &str, unix_ms: Option<i64>) -> &mut Self {
        match unix_ms {
            Some(ms) => self.report(name, format_utc(ms)),
            None => self.report(name, NEVER),
        }
    }

    fn optional(&mut self, name: &str, value: Option<&str>) -> &mut Self {
        if let Some(value) = value {
            self.text(name, value);
        }
        self
    }

    /// A forwarding target, written as the `sb://` URL of the entity on this host.
    fn forward(&mut self, name: &str, context: &Context, target: Option<&str>) -> &mut Self {
        self.optional(name, target.map(|t| context.forward_url(t)).as_deref())
    }

    fn raw(&mut self, xml: &str) -> &mut Self {
        self.out.push_str(xml);
        self
    }

    fn finish(&mut self) -> String {
        let _ = write!(self.out, "</{}>", self.root);
        std::mem::take(&mut self.out)
    }
}

fn count_details(counts: &MessageCounts) -> String {
    let mut out = format!(r#"<CountDetails xmlns:d2p1="{COUNTS_NS}">"#);
    for (name, value) in [
        ("ActiveMessageCount", counts.active),
        ("DeadLetterMessageCount", counts.dead_letter),
        ("ScheduledMessageCount", counts.scheduled),
        ("TransferMessageCount", counts.transfer),
        (
            "TransferDeadLetterMessageCount",
            counts.transfer_dead_letter,
        ),
    ] {
        let _ = write!(out, "<d2p1:{name}>{value}</d2p1:{name}>");
    }
    out.push_str("</CountDetails>");
    out
}

fn timestamps(d: &mut Description, runtime: &Runtime) {
    d.time("CreatedAt", Some(runtime.created_at_ms))
        .time("UpdatedAt", Some(runtime.updated_at_ms))
        .time("AccessedAt", runtime.accessed_at_ms);
}

/// A queue's description as the service answers with it.
pub fn queue_description(context: &Context, queue: &QueueView) -> String {
    queue_element(
        context,
        &queue.settings,
        &queue.runtime,
        Description::new("QueueDescription"),
    )
}

/// The entry a client PUTs to create or update a queue.
pub fn queue_request(context: &Context, settings: &QueueSettings) -> String {
    request_entry(&queue_element(
        context,
        settings,
        &Runtime::default(),
        Description::request("QueueDescription"),
    ))
}

fn queue_element(context: &Context, s: &QueueSettings, r: &Runtime, mut d: Description) -> String {
    d.span("LockDuration", Some(s.lock_duration))
        .value("MaxSizeInMegabytes", s.max_size_in_megabytes)
        .value("RequiresDuplicateDetection", s.requires_duplicate_detection)
        .value("RequiresSession", s.requires_session)
        .span("DefaultMessageTimeToLive", s.default_message_time_to_live)
        .value(
            "DeadLetteringOnMessageExpiration",
            s.dead_lettering_on_message_expiration,
        )
        .span(
            "DuplicateDetectionHistoryTimeWindow",
            Some(s.duplicate_detection_history_time_window),
        )
        .value("MaxDeliveryCount", s.max_delivery_count)
        .value("EnableBatchedOperations", s.enable_batched_operations)
        .report("SizeInBytes", r.size_in_bytes)
        .report("MessageCount", r.counts.total())
        .report("IsAnonymousAccessible", false)
        .report_raw("<AuthorizationRules/>")
        .value("Status", s.status.as_str());
    timestamps(&mut d, r);
    d.report("SupportOrdering", !s.enable_partitioning)
        .report_raw(&count_details(&r.counts))
        .span("AutoDeleteOnIdle", s.auto_delete_on_idle)
        .value("EnablePartitioning", s.enable_partitioning)
        .report("EntityAvailabilityStatus", "Available")
        .value("EnableExpress", s.enable_express)
        .forward("ForwardTo", context, s.forward_to.as_deref())
        .forward(
            "ForwardDeadLetteredMessagesTo",
            context,
            s.forward_dead_lettered_messages_to.as_deref(),
        )
        .optional("UserMetadata", s.user_metadata.as_deref())
        .value("MaxMessageSizeInKilobytes", s.max_message_size_in_kilobytes)
        .finish()
}

/// A topic's description as the service answers with it.
pub fn topic_description(topic: &TopicView) -> String {
    topic_element(
        &topic.settings,
        &topic.runtime,
        topic.subscription_count,
        Description::new("TopicDescription"),
    )
}

/// The entry a client PUTs to create or update a topic.
pub fn topic_request(settings: &TopicSettings) -> String {
    request_entry(&topic_element(
        settings,
        &Runtime::default(),
        0,
        Description::request("TopicDescription"),
    ))
}

fn topic_element(
    s: &TopicSettings,
    r: &Runtime,
    subscription_count: u64,
    mut d: Description,
) -> String {
    d.span("DefaultMessageTimeToLive", s.default_message_time_to_live)
        .value("MaxSizeInMegabytes", s.max_size_in_megabytes)
        .value("RequiresDuplicateDetection", s.requires_duplicate_detection)
        .span(
            "DuplicateDetectionHistoryTimeWindow",
            Some(s.duplicate_detection_history_time_window),
        )
        .value("EnableBatchedOperations", s.enable_batched_operations)
        .report("SizeInBytes", r.size_in_bytes)
        .value(
            "FilteringMessagesBeforePublishing",
            s.filtering_messages_before_publishing,
        )
        .report("IsAnonymousAccessible", false)
        .report_raw("<AuthorizationRules/>")
        .value("Status", s.status.as_str());
    timestamps(&mut d, r);
    d.value("SupportOrdering", s.support_ordering)
        .report_raw(&count_details(&r.counts))
        .report("SubscriptionCount", subscription_count)
        .span("AutoDeleteOnIdle", s.auto_delete_on_idle)
        .value("EnablePartitioning", s.enable_partitioning)
        .report("EntityAvailabilityStatus", "Available")
        .value(
            "EnableSubscriptionPartitioning",
            s.enable_subscription_partitioning,
        )
        .value("EnableExpress", s.enable_express)
        .optional("UserMetadata", s.user_metadata.as_deref())
        .value("MaxMessageSizeInKilobytes", s.max_message_size_in_kilobytes)
        .finish()
}

/// A subscription's description as the service answers with it.
pub fn subscription_description(context: &Context, subscription: &SubscriptionView) -> String {
    subscription_element(
        context,
        &subscription.settings,
        &subscription.runtime,
        Description::new("SubscriptionDescription"),
    )
}

/// The entry a client PUTs to create or update a subscription; a `default_rule` is the
/// first rule a created subscription gets instead of "every message".
pub fn subscription_request(context: &Context, settings: &SubscriptionSettings) -> String {
    request_entry(&subscription_element(
        context,
        settings,
        &Runtime::default(),
        Description::request("SubscriptionDescription"),
    ))
}

fn subscription_element(
    context: &Context,
    s: &SubscriptionSettings,
    r: &Runtime,
    mut d: Description,
) -> String {
    d.span("LockDuration", Some(s.lock_duration))
        .value("RequiresSession", s.requires_session)
        .span("DefaultMessageTimeToLive", s.default_message_time_to_live)
        .value(
            "DeadLetteringOnMessageExpiration",
            s.dead_lettering_on_message_expiration,
        )
        .value(
            "DeadLetteringOnFilterEvaluationExceptions",
            s.dead_lettering_on_filter_evaluation_exceptions,
        );
    if !d.reports
        && let Some(rule) = &s.default_rule
    {
        d.raw(&default_rule(rule));
    }
    d.report("MessageCount", r.counts.total())
        .value("MaxDeliveryCount", s.max_delivery_count)
        .value("EnableBatchedOperations", s.enable_batched_operations)
        .value("Status", s.status.as_str())
        .forward("ForwardTo", context, s.forward_to.as_deref());
    timestamps(&mut d, r);
    d.report_raw(&count_details(&r.counts))
        .forward(
            "ForwardDeadLetteredMessagesTo",
            context,
            s.forward_dead_lettered_messages_to.as_deref(),
        )
        .span("AutoDeleteOnIdle", s.auto_delete_on_idle)
        .report("EntityAvailabilityStatus", "Available")
        .optional("UserMetadata", s.user_metadata.as_deref())
        .finish()
}

/// A subscription's first rule, `$Default`, as a request gives it.
fn default_rule(rule: &Rule) -> String {
    format!(
        "<DefaultRuleDescription>{}{}<Name>{}</Name></DefaultRuleDescription>",
        filter(&rule.filter),
        action(&rule.action),
        crate::DEFAULT_RULE_NAME
    )
}

/// The entry a client PUTs to create or update a rule.
pub fn rule_request(name: &str, rule: &Rule) -> String {
    request_entry(
        &Description::request("RuleDescription")
            .raw(&filter(&rule.filter))
            .raw(&action(&rule.action))
            .text("Name", name)
            .finish(),
    )
}

/// A request's Atom entry around a description.
fn request_entry(description: &str) -> String {
    format!(
        r#"{XML_DECLARATION}<entry xmlns="{ATOM_NS}"><content type="application/xml">{description}</content></entry>"#
    )
}

/// A rule's description as the service answers with it.
pub fn rule_description(rule: &RuleView) -> String {
    let mut d = Description::new("RuleDescription");
    d.raw(&filter(&rule.rule.filter))
        .raw(&action(&rule.rule.action))
        .value("CreatedAt", format_utc(rule.created_at_ms))
        .text("Name", &rule.name)
        .finish()
}

fn filter(filter: &RuleFilter) -> String {
    match filter {
        RuleFilter::True => sql_element("Filter", "TrueFilter", "1=1", &[], false),
        RuleFilter::False => sql_element("Filter", "FalseFilter", "1=0", &[], false),
        RuleFilter::Sql {
            expression,
            parameters,
        } => sql_element("Filter", "SqlFilter", expression, parameters, true),
        RuleFilter::Correlation(c) => correlation(c),
    }
}

fn action(action: &RuleAction) -> String {
    match action {
        RuleAction::Empty => r#"<Action i:type="EmptyRuleAction"/>"#.to_owned(),
        RuleAction::Sql {
            expression,
            parameters,
        } => sql_element("Action", "SqlRuleAction", expression, parameters, true),
    }
}

fn sql_element(
    element: &str,
    kind: &str,
    expression: &str,
    parameters: &[(String, TypedValue)],
    preprocessing: bool,
) -> String {
    let mut out = format!(
        r#"<{element} i:type="{kind}"><SqlExpression>{}</SqlExpression><CompatibilityLevel>20</CompatibilityLevel>"#,
        partial_escape(expression)
    );
    if !parameters.is_empty() {
        out.push_str(&key_values("Parameters", parameters));
    }
    if preprocessing {
        out.push_str("<RequiresPreprocessing>false</RequiresPreprocessing>");
    }
    let _ = write!(out, "</{element}>");
    out
}

fn correlation(c: &CorrelationFilter) -> String {
    let mut out = String::from(r#"<Filter i:type="CorrelationFilter">"#);
    for (name, value) in [
        ("CorrelationId", &c.correlation_id),
        ("MessageId", &c.message_id),
        ("To", &c.to),
        ("ReplyTo", &c.reply_to),
        ("Label", &c.label),
        ("SessionId", &c.session_id),
        ("ReplyToSessionId", &c.reply_to_session_id),
        ("ContentType", &c.content_type),
    ] {
        if let Some(value) = value {
            let _ = write!(out, "<{name}>{}</{name}>", partial_escape(value.as_str()));
        }
    }
    if !c.properties.is_empty() {
        out.push_str(&key_values("Properties", &c.properties));
    }
    out.push_str("</Filter>");
    out
}

fn key_values(list: &str, values: &[(String, TypedValue)]) -> String {
    let mut out = format!("<{list}>");
    for (key, value) in values {
        let _ = write!(
            out,
            r#"<KeyValueOfstringanyType><Key>{}</Key><Value i:type="d6p1:{}" xmlns:d6p1="{XSD_NS}">{}</Value></KeyValueOfstringanyType>"#,
            escape(key.as_str()),
            value.xsd_type(),
            escape(value.text()),
        );
    }
    let _ = write!(out, "</{list}>");
    out
}

/// The namespace's description as the service answers with it.
pub fn namespace_description(namespace: &NamespaceView) -> String {
    Description::new("NamespaceInfo")
        .value("CreatedTime", format_utc(namespace.created_at_ms))
        .value("MessagingSKU", "Standard")
        .value("ModifiedTime", format_utc(namespace.modified_at_ms))
        .text("Name", &namespace.name)
        .value("NamespaceType", "Messaging")
        .finish()
}
