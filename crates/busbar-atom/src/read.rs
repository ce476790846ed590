//! Reads the entity description out of a PUT body (`<entry><content><QueueDescription>…`):
//! elements in any order, prefixes resolved by namespace, read-only elements the SDKs echo
//! back on update ignored, unknown elements refused. What a client leaves out takes the
//! service's default: a PUT replaces the whole description.

use std::time::Duration;

use crate::model::{
    CorrelationFilter, EntityStatus, MessageCounts, NamespaceView, QueueSettings, Rule, RuleAction,
    RuleFilter, Runtime, SubscriptionSettings, TopicSettings, TypedValue,
};
use crate::xml_tree::{self, ATOM_NS, Element};
use crate::{duration, timestamp};

/// The description a PUT carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Description {
    /// A queue's settings.
    Queue(QueueSettings),
    /// A topic's settings.
    Topic(TopicSettings),
    /// A subscription's settings.
    Subscription(SubscriptionSettings),
    /// A rule; its `Name` element, if any, is ignored for the name in the path.
    Rule(Rule),
}

impl Description {
    /// The element name, for "wrong description for this path" errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Description::Queue(_) => "QueueDescription",
            Description::Topic(_) => "TopicDescription",
            Description::Subscription(_) => "SubscriptionDescription",
            Description::Rule(_) => "RuleDescription",
        }
    }
}

/// Parses a PUT body.
pub fn description(body: &str) -> Result<Description, String> {
    let entry = xml_tree::parse(body)?;
    if entry.name != "entry" || entry.namespace != ATOM_NS {
        return Err(format!(
            "The request body must be an Atom entry, not <{}>.",
            entry.name
        ));
    }
    described(content(&entry)?)
}

/// The description an entry's `<content>` holds.
fn content(entry: &Element) -> Result<&Element, String> {
    entry
        .children
        .iter()
        .find(|c| c.name == "content" && c.namespace == ATOM_NS)
        .ok_or("The Atom entry has no <content>.")?
        .children
        .first()
        .ok_or_else(|| "The Atom entry's <content> holds no description.".to_owned())
}

fn described(described: &Element) -> Result<Description, String> {
    match described.name.as_str() {
        "QueueDescription" => queue(described).map(Description::Queue),
        "TopicDescription" => topic(described).map(Description::Topic),
        "SubscriptionDescription" => subscription(described).map(Description::Subscription),
        "RuleDescription" => rule(described).map(Description::Rule),
        other => Err(format!("<{other}> is not an entity description.")),
    }
}

/// Elements the service reports and the SDKs send back on update; they are not settings.
const READ_ONLY: &[&str] = &[
    "SizeInBytes",
    "MessageCount",
    "IsAnonymousAccessible",
    "AuthorizationRules",
    "CreatedAt",
    "UpdatedAt",
    "AccessedAt",
    "CountDetails",
    "MessageCountDetails",
    "SubscriptionCount",
    "SqlFilterCount",
    "CorrelationFilterCount",
    "EntityAvailabilityStatus",
    "IsClientAffine",
    "ClientAffineProperties",
];

fn text(element: &Element) -> &str {
    element.text.trim()
}

fn boolean(element: &Element) -> Result<bool, String> {
    match text(element) {
        t if t.eq_ignore_ascii_case("true") || t == "1" => Ok(true),
        t if t.eq_ignore_ascii_case("false") || t == "0" => Ok(false),
        t => Err(format!(
            "<{}> must be true or false, not '{t}'.",
            element.name
        )),
    }
}

fn number<T: std::str::FromStr>(element: &Element) -> Result<T, String> {
    text(element).parse().map_err(|_| {
        format!(
            "<{}> must be a whole number, not '{}'.",
            element.name,
            text(element)
        )
    })
}

fn span(element: &Element) -> Result<Option<Duration>, String> {
    duration::parse(text(element)).map_err(|e| format!("<{}>: {e}.", element.name))
}

/// A duration that can't be "never" in practice: the maximum stands for itself.
fn finite_span(element: &Element) -> Result<Duration, String> {
    Ok(span(element)?.unwrap_or(Duration::MAX))
}

fn status(element: &Element) -> Result<EntityStatus, String> {
    EntityStatus::parse(text(element)).ok_or_else(|| {
        format!(
            "<Status> must be Active, Disabled, SendDisabled or ReceiveDisabled, not '{}'.",
            text(element)
        )
    })
}

fn optional_text(element: &Element) -> Option<String> {
    Some(element.text.clone()).filter(|t| !t.is_empty())
}

fn unknown(parent: &str, element: &Element) -> String {
    format!("<{}> is not a known element of <{parent}>.", element.name)
}

fn queue(described: &Element) -> Result<QueueSettings, String> {
    let mut q = QueueSettings::default();
    for e in &described.children {
        match e.name.as_str() {
            "LockDuration" => q.lock_duration = finite_span(e)?,
            "MaxSizeInMegabytes" => q.max_size_in_megabytes = number(e)?,
            "RequiresDuplicateDetection" => q.requires_duplicate_detection = boolean(e)?,
            "RequiresSession" => q.requires_session = boolean(e)?,
            "DefaultMessageTimeToLive" => q.default_message_time_to_live = span(e)?,
            "DeadLetteringOnMessageExpiration" => {
                q.dead_lettering_on_message_expiration = boolean(e)?
            }
            "DuplicateDetectionHistoryTimeWindow" => {
                q.duplicate_detection_history_time_window = finite_span(e)?
            }
            "MaxDeliveryCount" => q.max_delivery_count = number(e)?,
            "EnableBatchedOperations" => q.enable_batched_operations = boolean(e)?,
            "Status" => q.status = status(e)?,
            "AutoDeleteOnIdle" => q.auto_delete_on_idle = span(e)?,
            "EnablePartitioning" => q.enable_partitioning = boolean(e)?,
            "EnableExpress" => q.enable_express = boolean(e)?,
            "ForwardTo" => q.forward_to = optional_text(e),
            "ForwardDeadLetteredMessagesTo" => {
                q.forward_dead_lettered_messages_to = optional_text(e)
            }
            "UserMetadata" => q.user_metadata = optional_text(e),
            "MaxMessageSizeInKilobytes" => q.max_message_size_in_kilobytes = number(e)?,
            "SupportOrdering" => {}
            name if READ_ONLY.contains(&name) => {}
            _ => return Err(unknown("QueueDescription", e)),
        }
    }
    Ok(q)
}

fn topic(described: &Element) -> Result<TopicSettings, String> {
    let mut t = TopicSettings::default();
    for e in &described.children {
        match e.name.as_str() {
            "DefaultMessageTimeToLive" => t.default_message_time_to_live = span(e)?,
            "MaxSizeInMegabytes" => t.max_size_in_megabytes = number(e)?,
            "RequiresDuplicateDetection" => t.requires_duplicate_detection = boolean(e)?,
            "DuplicateDetectionHistoryTimeWindow" => {
                t.duplicate_detection_history_time_window = finite_span(e)?
            }
            "EnableBatchedOperations" => t.enable_batched_operations = boolean(e)?,
            "FilteringMessagesBeforePublishing" => {
                t.filtering_messages_before_publishing = boolean(e)?
            }
            "Status" => t.status = status(e)?,
            "SupportOrdering" => t.support_ordering = boolean(e)?,
            "AutoDeleteOnIdle" => t.auto_delete_on_idle = span(e)?,
            "EnablePartitioning" => t.enable_partitioning = boolean(e)?,
            "EnableSubscriptionPartitioning" => t.enable_subscription_partitioning = boolean(e)?,
            "EnableExpress" => t.enable_express = boolean(e)?,
            "UserMetadata" => t.user_metadata = optional_text(e),
            "MaxMessageSizeInKilobytes" => t.max_message_size_in_kilobytes = number(e)?,
            name if READ_ONLY.contains(&name) => {}
            _ => return Err(unknown("TopicDescription", e)),
        }
    }
    Ok(t)
}

fn subscription(described: &Element) -> Result<SubscriptionSettings, String> {
    let mut s = SubscriptionSettings::default();
    for e in &described.children {
        match e.name.as_str() {
            "LockDuration" => s.lock_duration = finite_span(e)?,
            "RequiresSession" => s.requires_session = boolean(e)?,
            "DefaultMessageTimeToLive" => s.default_message_time_to_live = span(e)?,
            "DeadLetteringOnMessageExpiration" => {
                s.dead_lettering_on_message_expiration = boolean(e)?
            }
            "DeadLetteringOnFilterEvaluationExceptions" => {
                s.dead_lettering_on_filter_evaluation_exceptions = boolean(e)?
            }
            "DefaultRuleDescription" => {
                s.default_rule = if e.is_empty() { None } else { Some(rule(e)?) }
            }
            "MaxDeliveryCount" => s.max_delivery_count = number(e)?,
            "EnableBatchedOperations" => s.enable_batched_operations = boolean(e)?,
            "Status" => s.status = status(e)?,
            "ForwardTo" => s.forward_to = optional_text(e),
            "ForwardDeadLetteredMessagesTo" => {
                s.forward_dead_lettered_messages_to = optional_text(e)
            }
            "AutoDeleteOnIdle" => s.auto_delete_on_idle = span(e)?,
            "UserMetadata" => s.user_metadata = optional_text(e),
            name if READ_ONLY.contains(&name) => {}
            _ => return Err(unknown("SubscriptionDescription", e)),
        }
    }
    Ok(s)
}

/// A rule description (also the body of a subscription's `DefaultRuleDescription`).
fn rule(described: &Element) -> Result<Rule, String> {
    let mut rule = Rule::default();
    for e in &described.children {
        match e.name.as_str() {
            "Filter" => rule.filter = filter(e)?,
            "Action" => rule.action = action(e)?,
            "Name" | "CreatedAt" => {}
            _ => return Err(unknown("RuleDescription", e)),
        }
    }
    Ok(rule)
}

/// A SQL filter's or action's expression and parameters.
fn sql_parts(e: &Element) -> Result<(String, Vec<(String, TypedValue)>), String> {
    let mut expression = None;
    let mut parameters = Vec::new();
    for child in &e.children {
        match child.name.as_str() {
            "SqlExpression" => expression = Some(child.text.clone()),
            "Parameters" => parameters = key_values(child)?,
            "CompatibilityLevel" | "RequiresPreprocessing" => {}
            _ => return Err(unknown(&e.name, child)),
        }
    }
    let expression = expression
        .filter(|x| !x.trim().is_empty())
        .ok_or_else(|| format!("The {} needs a <SqlExpression>.", e.name))?;
    Ok((expression, parameters))
}

fn filter(e: &Element) -> Result<RuleFilter, String> {
    let kind = e
        .xsi_type()
        .ok_or("A <Filter> needs an i:type attribute (SqlFilter, TrueFilter, FalseFilter or CorrelationFilter).")?;
    match kind {
        "TrueFilter" => Ok(RuleFilter::True),
        "FalseFilter" => Ok(RuleFilter::False),
        "SqlFilter" => {
            let (expression, parameters) = sql_parts(e)?;
            Ok(RuleFilter::Sql {
                expression,
                parameters,
            })
        }
        "CorrelationFilter" => correlation(e).map(RuleFilter::Correlation),
        other => Err(format!("'{other}' is not a filter type.")),
    }
}

fn correlation(e: &Element) -> Result<CorrelationFilter, String> {
    let mut c = CorrelationFilter::default();
    for child in &e.children {
        let value = optional_text(child);
        match child.name.as_str() {
            "CorrelationId" => c.correlation_id = value,
            "MessageId" => c.message_id = value,
            "To" => c.to = value,
            "ReplyTo" => c.reply_to = value,
            "Label" => c.label = value,
            "SessionId" => c.session_id = value,
            "ReplyToSessionId" => c.reply_to_session_id = value,
            "ContentType" => c.content_type = value,
            "Properties" => c.properties = key_values(child)?,
            _ => return Err(unknown("Filter", child)),
        }
    }
    Ok(c)
}

fn action(e: &Element) -> Result<RuleAction, String> {
    match e.xsi_type() {
        None | Some("EmptyRuleAction") => Ok(RuleAction::Empty),
        Some("SqlRuleAction") => {
            let (expression, parameters) = sql_parts(e)?;
            Ok(RuleAction::Sql {
                expression,
                parameters,
            })
        }
        Some(other) => Err(format!("'{other}' is not a rule action type.")),
    }
}

/// `<KeyValueOfstringanyType><Key>k</Key><Value i:type="d6p1:int">7</Value>…` items.
fn key_values(list: &Element) -> Result<Vec<(String, TypedValue)>, String> {
    list.children
        .iter()
        .map(|item| {
            let key = item
                .child("Key")
                .map(|k| k.text.clone())
                .ok_or("A parameter or property has no <Key>.")?;
            let value = item
                .child("Value")
                .ok_or_else(|| format!("The parameter or property '{key}' has no <Value>."))?;
            Ok((key, typed_value(value)?))
        })
        .collect()
}

fn typed_value(value: &Element) -> Result<TypedValue, String> {
    let raw = value.text.clone();
    let bad = |kind: &str| format!("'{raw}' is not a valid {kind}.");
    Ok(match value.xsi_type().unwrap_or("string") {
        "string" => TypedValue::String(raw),
        "int" | "short" | "byte" | "unsignedShort" | "unsignedByte" => {
            TypedValue::Int(raw.trim().parse().map_err(|_| bad("int"))?)
        }
        "long" | "unsignedInt" => TypedValue::Long(raw.trim().parse().map_err(|_| bad("long"))?),
        "double" | "float" | "decimal" => {
            TypedValue::Double(raw.trim().parse().map_err(|_| bad("double"))?)
        }
        "boolean" => TypedValue::Boolean(match raw.trim() {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => return Err(bad("boolean")),
        }),
        "dateTime" => TypedValue::DateTime(raw.trim().to_owned()),
        "duration" => {
            duration::parse(&raw).map_err(|_| bad("duration"))?;
            TypedValue::Duration(raw.trim().to_owned())
        }
        other => return Err(format!("'{other}' is not a supported parameter type.")),
    })
}

/// One entry of an answer, flattened for display and for editing a description: the
/// entry's title, its description's element name, and each leaf element's local name and
/// text in document order (nested ones such as `CountDetails`' counts included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFields {
    /// The entry's title: the entity's name.
    pub title: String,
    /// The description's element name (`QueueDescription`, ...).
    pub kind: String,
    /// Every leaf element's local name and text, in document order.
    pub fields: Vec<(String, String)>,
    /// The description's own leaf elements, without read-only ones: what a PUT that
    /// changes nothing would send back.
    pub settings: Vec<(String, String)>,
}

impl EntryFields {
    /// The text of the first leaf element with this name.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The entries of an entry document or a feed (none for the empty feed the API answers
/// for something missing).
pub fn entries(body: &str) -> Result<Vec<EntryFields>, String> {
    let root = xml_tree::parse(body)?;
    let entries: Vec<&Element> = match root.name.as_str() {
        "entry" => vec![&root],
        "feed" => root.children.iter().filter(|c| c.name == "entry").collect(),
        other => return Err(format!("<{other}> is neither an Atom entry nor a feed.")),
    };
    Ok(entries
        .into_iter()
        .map(|entry| {
            let title = entry
                .child("title")
                .map(|t| t.text.clone())
                .unwrap_or_default();
            let described = entry.child("content").and_then(|c| c.children.first());
            let mut fields = Vec::new();
            if let Some(described) = described {
                flatten(described, &mut fields);
            }
            let settings = described
                .map(|d| {
                    d.children
                        .iter()
                        .filter(|c| c.children.is_empty() && !READ_ONLY.contains(&c.name.as_str()))
                        .map(|c| (c.name.clone(), c.text.clone()))
                        .collect()
                })
                .unwrap_or_default();
            EntryFields {
                title,
                kind: described.map(|d| d.name.clone()).unwrap_or_default(),
                fields,
                settings,
            }
        })
        .collect())
}

fn flatten(element: &Element, out: &mut Vec<(String, String)>) {
    for child in &element.children {
        if child.children.is_empty() {
            out.push((child.name.clone(), child.text.clone()));
        } else {
            flatten(child, out);
        }
    }
}

/// An entity as an answer describes it: what a client reads back from a GET, a PUT or a
/// list.
#[derive(Debug, Clone, PartialEq)]
pub struct AnsweredEntity {
    /// The entry's title: the entity's name.
    pub title: String,
    /// The entity's settings.
    pub description: Description,
    /// Counts, size and times; a rule has only its creation time, a description without
    /// them (a create answer) zeros.
    pub runtime: Runtime,
    /// A topic's `SubscriptionCount`.
    pub subscription_count: u64,
}

/// A GET, PUT or list answer read into the model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Answer {
    /// None for the empty feed the API answers a GET of something missing with.
    pub entities: Vec<AnsweredEntity>,
    /// The `href` of the feed's `rel="next"` link: the following page, when there is one.
    pub next: Option<String>,
}

/// Reads an entry document or a feed of entities.
pub fn answer(body: &str) -> Result<Answer, String> {
    let root = xml_tree::parse(body)?;
    let (entries, next) = match root.name.as_str() {
        "entry" => (vec![&root], None),
        "feed" => (
            root.children.iter().filter(|c| c.name == "entry").collect(),
            root.children
                .iter()
                .find(|c| c.name == "link" && c.attribute("rel") == Some("next"))
                .and_then(|link| link.attribute("href"))
                .map(str::to_owned),
        ),
        other => return Err(format!("<{other}> is neither an Atom entry nor a feed.")),
    };
    let entities = entries
        .into_iter()
        .map(|entry| {
            let content = content(entry)?;
            Ok(AnsweredEntity {
                title: entry
                    .child("title")
                    .map(|t| t.text.clone())
                    .unwrap_or_default(),
                description: described(content)?,
                runtime: runtime(content)?,
                subscription_count: content
                    .child("SubscriptionCount")
                    .map(number)
                    .transpose()?
                    .unwrap_or(0),
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(Answer { entities, next })
}

/// The read-only elements of a description.
fn runtime(described: &Element) -> Result<Runtime, String> {
    let time = |name: &str| -> Result<Option<i64>, String> {
        match described.child(name) {
            Some(e) => timestamp::parse_utc(text(e)).map_err(|e| format!("<{name}>: {e}.")),
            None => Ok(None),
        }
    };
    let mut counts = MessageCounts::default();
    if let Some(details) = described.child("CountDetails") {
        for e in &details.children {
            let count = number(e)?;
            match e.name.as_str() {
                "ActiveMessageCount" => counts.active = count,
                "DeadLetterMessageCount" => counts.dead_letter = count,
                "ScheduledMessageCount" => counts.scheduled = count,
                "TransferMessageCount" => counts.transfer = count,
                "TransferDeadLetterMessageCount" => counts.transfer_dead_letter = count,
                _ => {}
            }
        }
    }
    Ok(Runtime {
        counts,
        size_in_bytes: described
            .child("SizeInBytes")
            .map(number)
            .transpose()?
            .unwrap_or(0),
        created_at_ms: time("CreatedAt")?.unwrap_or(0),
        updated_at_ms: time("UpdatedAt")?.unwrap_or(0),
        accessed_at_ms: time("AccessedAt")?,
    })
}

/// Reads the answer of `GET /$namespaceinfo`.
pub fn namespace(body: &str) -> Result<NamespaceView, String> {
    let entry = xml_tree::parse(body)?;
    let info = content(&entry)?;
    if info.name != "NamespaceInfo" {
        return Err(format!("<{}> is not a namespace description.", info.name));
    }
    let time = |name: &str| -> Result<i64, String> {
        info.child(name)
            .map(|e| timestamp::parse_utc(text(e)))
            .transpose()
            .map(|t| t.flatten().unwrap_or(0))
            .map_err(|e| format!("<{name}>: {e}."))
    };
    Ok(NamespaceView {
        name: info
            .child("Name")
            .map(|e| e.text.clone())
            .or_else(|| entry.child("title").map(|t| t.text.clone()))
            .unwrap_or_default(),
        created_at_ms: time("CreatedTime")?,
        modified_at_ms: time("ModifiedTime")?,
    })
}

/// The `<Detail>` of an error answer (`<Error><Code>…</Code><Detail>…</Detail></Error>`).
pub fn error_detail(body: &str) -> Option<String> {
    let root = xml_tree::parse(body).ok()?;
    (root.name == "Error")
        .then(|| root.child("Detail").map(|d| d.text.clone()))
        .flatten()
}
