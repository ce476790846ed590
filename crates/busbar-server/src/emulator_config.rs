//! Reading Microsoft's Service Bus emulator `Config.json` as it is, plus Busbar's own `Busbar`
//! section, with validation that names the offending field.
//!
//! The file is JSON with `//` and `/* */` comments and trailing commas allowed
//! ([`crate::relaxed_json`]). Accepted shape (keys match case-insensitively, `null` counts as absent). Unknown keys are
//! refused inside `Busbar`; elsewhere they are accepted, as the emulator does, and each is
//! reported as a warning naming the key and its entity (a misspelt property would otherwise
//! leave its default in force without a word):
//!
//! * `UserConfig.Namespaces[0]`: `Name`, `Queues[]`, `Topics[]` (at most one namespace).
//! * `Queues[]`: `Name`, `Properties{DeadLetteringOnMessageExpiration, DefaultMessageTimeToLive,
//!   DuplicateDetectionHistoryTimeWindow, ForwardDeadLetteredMessagesTo, ForwardTo, LockDuration,
//!   MaxDeliveryCount, MaxSizeInMegabytes, RequiresDuplicateDetection, RequiresSession, Status}`
//!   (`Status`: Active, Disabled, SendDisabled or ReceiveDisabled, as the admin API takes it).
//! * `Topics[]`: `Name`, `Properties{DefaultMessageTimeToLive, DuplicateDetectionHistoryTimeWindow,
//!   MaxSizeInMegabytes, RequiresDuplicateDetection, Status}`, `Subscriptions[]`: `Name`, `Properties{` the queue properties
//!   without duplicate detection and size (subscriptions count toward their topic's), plus `DeadLetteringOnFilterEvaluationExceptions}`, `Rules[]`:
//!   `Name`, `Properties{FilterType: Sql|Correlation, SqlFilter{SqlExpression},
//!   CorrelationFilter{ContentType, CorrelationId, Label, MessageId, ReplyTo, ReplyToSessionId,
//!   SessionId, To, Properties{...}}, Action{SqlExpression}}`.
//! * `UserConfig.Logging.Type`: kept, not acted on.
//! * `Busbar`: `Policies[]{Name, Key, Rights[Manage|Send|Listen]}`, `MaxMessageSize`,
//!   `Durability` (Sync|Buffered), `AmqpListen`, `AmqpsListen`, `HttpListen`, `TlsCert` and
//!   `TlsKey` (together), `AllowPlaintext`, `DataDir`, `OtlpEndpoint`.
//!
//! Durations are ISO 8601 (`PT1M`, `P14D`, `PT0.5S`). Unlike the emulator there is no cap on
//! the number of entities, on TTL or on MaxDeliveryCount; the Service Bus ranges that matter
//! for correctness (LockDuration 5 s – 5 min, MaxDeliveryCount ≥ 1) are enforced.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::config::{
    BrokerConfig, ConfigError, CorrelationFilter, Durability, FieldProblem, FilterDescription,
    FilterValue, Policy, QueueDefinition, QueueProperties, Rights, RuleDescription,
    SubscriptionDefinition, SubscriptionProperties, TopicConfig, TopicDefinition,
};
use crate::relaxed_json::blank_comments_and_trailing_commas;

/// Shortest lock Service Bus (and the emulator since 1.1.2) accepts.
pub const MIN_LOCK_DURATION: Duration = Duration::from_secs(5);
/// Longest lock Service Bus accepts.
pub const MAX_LOCK_DURATION: Duration = Duration::from_secs(5 * 60);
/// Longest queue or topic name.
pub const MAX_ENTITY_NAME_LEN: usize = 260;
/// Longest subscription or rule name.
pub const MAX_SUBSCRIPTION_NAME_LEN: usize = 50;

/// What a configuration file contains, validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigFile {
    pub namespace: Option<String>,
    pub queues: Vec<QueueDefinition>,
    pub topics: Vec<TopicDefinition>,
    pub logging_type: Option<String>,
    pub native: NativeSection,
    /// Keys the reader does not know, which it ignored; logged by [`load_str`].
    pub ignored_keys: Vec<FieldProblem>,
}

/// The `Busbar` section.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NativeSection {
    pub policies: Vec<Policy>,
    pub max_message_size: Option<u64>,
    pub durability: Option<Durability>,
    pub amqp_listen: Option<SocketAddr>,
    pub amqps_listen: Option<SocketAddr>,
    pub http_listen: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub allow_plaintext: Option<bool>,
    pub data_dir: Option<PathBuf>,
    pub otlp_endpoint: Option<String>,
}

/// Reads a configuration file (emulator `Config.json`, optionally with a `Busbar` section)
/// on top of the defaults.
pub fn load_file(path: &Path) -> Result<BrokerConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    load_str(&text)
}

/// Parses and validates configuration text on top of the defaults.
pub fn load_str(text: &str) -> Result<BrokerConfig, ConfigError> {
    let file = parse(text)?;
    for ignored in &file.ignored_keys {
        tracing::warn!(field = %ignored.field, "config file: {}", ignored.message);
    }
    let mut config = BrokerConfig {
        namespace: file.namespace,
        queues: file.queues,
        topics: file.topics,
        emulator_logging: file.logging_type,
        policies: file.native.policies,
        ..BrokerConfig::default()
    };
    if let Some(size) = file.native.max_message_size {
        config.max_message_size = size;
    }
    if let Some(durability) = file.native.durability {
        config.durability = durability;
    }
    if let Some(address) = file.native.amqp_listen {
        config.amqp_listen = address;
    }
    if let Some(address) = file.native.amqps_listen {
        config.amqps_listen = address;
    }
    if let Some(address) = file.native.http_listen {
        config.http_listen = address;
    }
    config.tls_cert = file.native.tls_cert;
    config.tls_key = file.native.tls_key;
    if let Some(allowed) = file.native.allow_plaintext {
        config.allow_plaintext = allowed;
    }
    if let Some(dir) = file.native.data_dir {
        config.data_dir = dir;
    }
    config.otlp_endpoint = file.native.otlp_endpoint;
    Ok(config)
}

/// Parses and validates configuration text. All field problems are reported together.
/// Comments and trailing commas are accepted, as the emulator accepts them.
pub fn parse(text: &str) -> Result<ConfigFile, ConfigError> {
    let root: Value = serde_json::from_str(&blank_comments_and_trailing_commas(text)?)?;
    let mut reader = Reader::default();
    let mut file = reader.root(&root);
    file.ignored_keys = reader.ignored_keys;
    if reader.problems.is_empty() {
        Ok(file)
    } else {
        Err(ConfigError::Invalid(reader.problems))
    }
}

/// Walks the JSON tree, collecting problems instead of stopping at the first one.
#[derive(Default)]
struct Reader {
    problems: Vec<FieldProblem>,
    ignored_keys: Vec<FieldProblem>,
    /// The keys read from each object (by address: every object lives as long as the parse),
    /// as the reader spells them; any other key of the object is unknown.
    keys_read: HashMap<usize, Vec<String>>,
}

/// Finds `key` in `object` ignoring ASCII case; `null` counts as absent.
fn lookup<'v>(object: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    object
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(key))
        .map(|(_, value)| value)
        .filter(|value| !value.is_null())
}

/// What an unknown key belongs to, for the warning: `queue "orders"`, or where it is when the
/// entity has no valid name.
fn owner(kind: &str, name: Option<&str>, path: &str) -> String {
    match name {
        Some(name) => format!("{kind} \"{name}\""),
        None => format!("{kind} {path}"),
    }
}

fn object_id(object: &Map<String, Value>) -> usize {
    std::ptr::from_ref(object).addr()
}

/// The known key `key` most likely misspells: at most two edits away, ignoring case.
fn closest<'k>(key: &str, known: &'k [String]) -> Option<&'k str> {
    known
        .iter()
        .map(|name| {
            (
                edit_distance(&key.to_ascii_lowercase(), &name.to_ascii_lowercase()),
                name,
            )
        })
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name.as_str())
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, a_char) in a.chars().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, b_char) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(a_char != *b_char);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

fn describe(value: &Value) -> String {
    match value {
        Value::String(text) => format!("\"{text}\""),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
        other => other.to_string(),
    }
}

impl Reader {
    /// [`lookup`], remembering that `key` is one the reader knows for `object`.
    fn field<'v>(&mut self, object: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
        let known = self.keys_read.entry(object_id(object)).or_default();
        if !known.iter().any(|name| name == key) {
            known.push(key.to_owned());
        }
        lookup(object, key)
    }

    /// Reports the keys of `object` nothing has read, for `owner` (e.g. `queue "orders"`).
    /// Call once the object and everything under it has been read.
    fn report_unknown_keys(&mut self, object: &Map<String, Value>, path: &str, owner: &str) {
        let known = self
            .keys_read
            .get(&object_id(object))
            .map_or(&[][..], Vec::as_slice);
        for key in object.keys() {
            if known.iter().any(|name| name.eq_ignore_ascii_case(key)) {
                continue;
            }
            let hint = match closest(key, known) {
                Some(name) => format!("did you mean \"{name}\"?"),
                None if known.is_empty() => "it takes no keys".to_owned(),
                None => format!("known keys: {}", known.join(", ")),
            };
            let message = format!("unknown property \"{key}\" of {owner} is ignored ({hint})");
            self.ignored_keys.push(FieldProblem {
                field: join(path, key),
                message,
            });
        }
    }

    fn problem(&mut self, field: &str, message: impl Into<String>) {
        self.problems.push(FieldProblem {
            field: field.to_owned(),
            message: message.into(),
        });
    }

    fn object<'v>(
        &mut self,
        parent: &'v Map<String, Value>,
        path: &str,
        key: &str,
    ) -> Option<&'v Map<String, Value>> {
        match self.field(parent, key)? {
            Value::Object(object) => Some(object),
            other => {
                self.problem(
                    &join(path, key),
                    format!("expected an object, found {}", describe(other)),
                );
                None
            }
        }
    }

    fn array<'v>(&mut self, parent: &'v Map<String, Value>, path: &str, key: &str) -> &'v [Value] {
        match self.field(parent, key) {
            None => &[],
            Some(Value::Array(items)) => items,
            Some(other) => {
                self.problem(
                    &join(path, key),
                    format!("expected an array, found {}", describe(other)),
                );
                &[]
            }
        }
    }

    fn string(&mut self, parent: &Map<String, Value>, path: &str, key: &str) -> Option<String> {
        match self.field(parent, key)? {
            Value::String(text) => Some(text.clone()),
            other => {
                self.problem(
                    &join(path, key),
                    format!("expected a string, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// A string where `""` means "not set" (the emulator sample writes `"ForwardTo": ""`).
    fn optional_name(
        &mut self,
        parent: &Map<String, Value>,
        path: &str,
        key: &str,
    ) -> Option<String> {
        self.string(parent, path, key)
            .map(|text| text.trim().to_owned())
            .filter(|text| !text.is_empty())
    }

    /// Booleans, also written as `"true"`/`"false"` (the emulator binds text too).
    fn bool(&mut self, parent: &Map<String, Value>, path: &str, key: &str) -> Option<bool> {
        match self.field(parent, key)? {
            Value::Bool(flag) => Some(*flag),
            Value::String(text) if text.eq_ignore_ascii_case("true") => Some(true),
            Value::String(text) if text.eq_ignore_ascii_case("false") => Some(false),
            other => {
                self.problem(
                    &join(path, key),
                    format!("expected true or false, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// Non-negative integers, also written as strings of digits.
    fn unsigned(&mut self, parent: &Map<String, Value>, path: &str, key: &str) -> Option<u64> {
        let value = self.field(parent, key)?;
        let parsed = match value {
            Value::Number(number) => number.as_u64(),
            Value::String(text) => text.trim().parse().ok(),
            _ => None,
        };
        if parsed.is_none() {
            self.problem(
                &join(path, key),
                format!("expected a non-negative integer, found {}", describe(value)),
            );
        }
        parsed
    }

    fn duration(&mut self, parent: &Map<String, Value>, path: &str, key: &str) -> Option<Duration> {
        let text = self.string(parent, path, key)?;
        match parse_iso8601_duration(&text) {
            Ok(duration) => Some(duration),
            Err(reason) => {
                self.problem(
                    &join(path, key),
                    format!("\"{text}\" is not an ISO 8601 duration ({reason})"),
                );
                None
            }
        }
    }

    /// A duration that must be longer than zero, in whole milliseconds.
    fn positive_millis(
        &mut self,
        parent: &Map<String, Value>,
        path: &str,
        key: &str,
    ) -> Option<i64> {
        let duration = self.duration(parent, path, key)?;
        let millis = duration_millis(duration);
        if millis <= 0 {
            self.problem(
                &join(path, key),
                "must be at least one millisecond".to_owned(),
            );
            return None;
        }
        Some(millis)
    }

    /// A size in megabytes (at least 1), in bytes.
    /// `Status`: Active, Disabled, SendDisabled or ReceiveDisabled (any case).
    fn status(
        &mut self,
        parent: &Map<String, Value>,
        path: &str,
        key: &str,
    ) -> Option<crate::config::EntityStatus> {
        let text = self.string(parent, path, key)?;
        let status = crate::config::EntityStatus::parse(&text);
        if status.is_none() {
            self.problem(
                &join(path, key),
                format!(
                    "\"{text}\" is not a status: use Active, Disabled, SendDisabled or ReceiveDisabled"
                ),
            );
        }
        status
    }

    fn max_size(&mut self, parent: &Map<String, Value>, path: &str, key: &str) -> Option<u64> {
        let megabytes = self.unsigned(parent, path, key)?;
        let bytes = megabytes
            .checked_mul(1024 * 1024)
            .filter(|_| megabytes >= 1);
        if bytes.is_none() {
            self.problem(
                &join(path, key),
                format!("{megabytes} is not a size in megabytes of at least 1"),
            );
        }
        bytes
    }

    fn lock_duration(&mut self, parent: &Map<String, Value>, path: &str, key: &str) -> Option<i64> {
        let duration = self.duration(parent, path, key)?;
        if !(MIN_LOCK_DURATION..=MAX_LOCK_DURATION).contains(&duration) {
            self.problem(
                &join(path, key),
                format!(
                    "{} is outside the allowed range of 5 seconds to 5 minutes",
                    lookup(parent, key).map(describe).unwrap_or_default()
                ),
            );
            return None;
        }
        Some(duration_millis(duration))
    }

    fn max_delivery_count(
        &mut self,
        parent: &Map<String, Value>,
        path: &str,
        key: &str,
    ) -> Option<u32> {
        let count = self.unsigned(parent, path, key)?;
        match u32::try_from(count) {
            Ok(count) if count >= 1 => Some(count),
            Ok(_) => {
                self.problem(&join(path, key), "must be at least 1");
                None
            }
            Err(_) => {
                self.problem(&join(path, key), format!("{count} is too large"));
                None
            }
        }
    }

    fn root(&mut self, root: &Value) -> ConfigFile {
        let mut file = ConfigFile::default();
        let Value::Object(root) = root else {
            self.problem("(root)", "expected a JSON object");
            return file;
        };
        if let Some(native) = self.object(root, "", "Busbar") {
            file.native = self.native(native);
        }
        let user = self.object(root, "", "UserConfig");
        // An editor's JSON schema reference, not a setting.
        self.field(root, "$schema");
        self.report_unknown_keys(root, "", "the file");
        let Some(user) = user else {
            return file;
        };
        if let Some(logging) = self.object(user, "UserConfig", "Logging") {
            file.logging_type = self.string(logging, "UserConfig.Logging", "Type");
            self.report_unknown_keys(logging, "UserConfig.Logging", "UserConfig.Logging");
        }
        let namespaces = self.array(user, "UserConfig", "Namespaces");
        if namespaces.len() > 1 {
            self.problem(
                "UserConfig.Namespaces",
                format!(
                    "{} namespaces are declared; Busbar serves one, so merge their entities into Namespaces[0]",
                    namespaces.len()
                ),
            );
        }
        self.report_unknown_keys(user, "UserConfig", "UserConfig");
        if let Some(namespace) = namespaces.first() {
            self.namespace(namespace, "UserConfig.Namespaces[0]", &mut file);
        }
        file
    }

    fn namespace(&mut self, namespace: &Value, path: &str, file: &mut ConfigFile) {
        let Value::Object(namespace) = namespace else {
            self.problem(path, "expected an object");
            return;
        };
        file.namespace = self.string(namespace, path, "Name");

        // Queues and topics share one name space, so one set catches clashes across both.
        let mut entity_names = HashSet::new();
        let mut forwards = Vec::new();

        for (index, queue) in self.array(namespace, path, "Queues").iter().enumerate() {
            let queue_path = format!("{path}.Queues[{index}]");
            if let Some(queue) = self.queue(queue, &queue_path, &mut entity_names) {
                forwards.push(ForwardCheck::new(
                    &queue_path,
                    &queue.name,
                    queue.properties.forward_to.as_deref(),
                    queue.properties.forward_dead_lettered_to.as_deref(),
                ));
                file.queues.push(queue);
            }
        }
        for (index, topic) in self.array(namespace, path, "Topics").iter().enumerate() {
            let topic_path = format!("{path}.Topics[{index}]");
            if let Some(topic) = self.topic(topic, &topic_path, &mut entity_names, &mut forwards) {
                file.topics.push(topic);
            }
        }
        for check in forwards {
            self.check_forward(&check, &entity_names);
        }
        let owner = owner("namespace", file.namespace.as_deref(), path);
        self.report_unknown_keys(namespace, path, &owner);
    }

    fn check_forward(&mut self, check: &ForwardCheck, entity_names: &HashSet<String>) {
        let targets = [
            ("ForwardTo", check.forward_to.as_deref()),
            (
                "ForwardDeadLetteredMessagesTo",
                check.forward_dead_lettered_to.as_deref(),
            ),
        ];
        for (key, target) in targets {
            let Some(target) = target else { continue };
            let field = format!("{}.Properties.{key}", check.path);
            if key == "ForwardTo" && target.eq_ignore_ascii_case(&check.source) {
                self.problem(&field, format!("\"{target}\" forwards to itself"));
            } else if !entity_names.contains(&target.to_ascii_lowercase()) {
                self.problem(
                    &field,
                    format!("\"{target}\" is not a queue or topic declared in this namespace"),
                );
            }
        }
    }

    fn queue(
        &mut self,
        queue: &Value,
        path: &str,
        entity_names: &mut HashSet<String>,
    ) -> Option<QueueDefinition> {
        let Value::Object(queue) = queue else {
            self.problem(path, "expected an object");
            return None;
        };
        let name = self.entity_name(queue, path, entity_names)?;
        let owner = owner("queue", Some(&name), path);
        let mut properties = QueueProperties::default();
        if let Some(props) = self.object(queue, path, "Properties") {
            let path = &join(path, "Properties");
            if let Some(value) = self.lock_duration(props, path, "LockDuration") {
                properties.lock_duration_ms = value;
            }
            if let Some(value) = self.max_delivery_count(props, path, "MaxDeliveryCount") {
                properties.max_delivery_count = value;
            }
            if let Some(value) = self.positive_millis(props, path, "DefaultMessageTimeToLive") {
                properties.default_ttl_ms = Some(value);
            }
            if let Some(value) = self.bool(props, path, "DeadLetteringOnMessageExpiration") {
                properties.dead_lettering_on_expiration = value;
            }
            if let Some(value) = self.bool(props, path, "RequiresDuplicateDetection") {
                properties.requires_duplicate_detection = value;
            }
            if let Some(value) =
                self.positive_millis(props, path, "DuplicateDetectionHistoryTimeWindow")
            {
                properties.duplicate_detection_window_ms = value;
            }
            if let Some(value) = self.bool(props, path, "RequiresSession") {
                properties.requires_session = value;
            }
            properties.forward_to = self.optional_name(props, path, "ForwardTo");
            properties.forward_dead_lettered_to =
                self.optional_name(props, path, "ForwardDeadLetteredMessagesTo");
            properties.max_size_bytes = self.max_size(props, path, "MaxSizeInMegabytes");
            if let Some(status) = self.status(props, path, "Status") {
                properties.status = status;
            }
            self.report_unknown_keys(props, path, &owner);
        }
        self.report_unknown_keys(queue, path, &owner);
        Some(QueueDefinition { name, properties })
    }

    fn topic(
        &mut self,
        topic: &Value,
        path: &str,
        entity_names: &mut HashSet<String>,
        forwards: &mut Vec<ForwardCheck>,
    ) -> Option<TopicDefinition> {
        let Value::Object(topic) = topic else {
            self.problem(path, "expected an object");
            return None;
        };
        let name = self.entity_name(topic, path, entity_names)?;
        let owner = owner("topic", Some(&name), path);
        let mut properties = TopicConfig::default();
        if let Some(props) = self.object(topic, path, "Properties") {
            let path = &join(path, "Properties");
            if let Some(value) = self.positive_millis(props, path, "DefaultMessageTimeToLive") {
                properties.default_ttl_ms = Some(value);
            }
            if let Some(value) = self.bool(props, path, "RequiresDuplicateDetection") {
                properties.requires_duplicate_detection = value;
            }
            if let Some(value) =
                self.positive_millis(props, path, "DuplicateDetectionHistoryTimeWindow")
            {
                properties.duplicate_detection_window_ms = value;
            }
            properties.max_size_bytes = self.max_size(props, path, "MaxSizeInMegabytes");
            if let Some(status) = self.status(props, path, "Status") {
                properties.status = status;
            }
            self.report_unknown_keys(props, path, &owner);
        }

        let mut subscription_names = HashSet::new();
        let mut subscriptions = Vec::new();
        for (index, subscription) in self.array(topic, path, "Subscriptions").iter().enumerate() {
            let sub_path = format!("{path}.Subscriptions[{index}]");
            if let Some(subscription) =
                self.subscription(subscription, &sub_path, &name, &mut subscription_names)
            {
                forwards.push(ForwardCheck::new(
                    &sub_path,
                    &format!("{name}/Subscriptions/{}", subscription.name),
                    subscription.properties.forward_to.as_deref(),
                    subscription.properties.forward_dead_lettered_to.as_deref(),
                ));
                subscriptions.push(subscription);
            }
        }
        self.report_unknown_keys(topic, path, &owner);
        Some(TopicDefinition {
            name,
            properties,
            subscriptions,
        })
    }

    fn subscription(
        &mut self,
        subscription: &Value,
        path: &str,
        topic: &str,
        names: &mut HashSet<String>,
    ) -> Option<SubscriptionDefinition> {
        let Value::Object(subscription) = subscription else {
            self.problem(path, "expected an object");
            return None;
        };
        let name = self.simple_name(subscription, path, names, false)?;
        let owner = owner(
            "subscription",
            Some(&format!("{topic}/Subscriptions/{name}")),
            path,
        );
        let mut properties = SubscriptionProperties::default();
        if let Some(props) = self.object(subscription, path, "Properties") {
            let path = &join(path, "Properties");
            if let Some(value) = self.lock_duration(props, path, "LockDuration") {
                properties.lock_duration_ms = value;
            }
            if let Some(value) = self.max_delivery_count(props, path, "MaxDeliveryCount") {
                properties.max_delivery_count = value;
            }
            if let Some(value) = self.positive_millis(props, path, "DefaultMessageTimeToLive") {
                properties.default_ttl_ms = Some(value);
            }
            if let Some(value) = self.bool(props, path, "DeadLetteringOnMessageExpiration") {
                properties.dead_lettering_on_expiration = value;
            }
            if let Some(value) = self.bool(props, path, "DeadLetteringOnFilterEvaluationExceptions")
            {
                properties.dead_lettering_on_filter_evaluation_exceptions = value;
            }
            if let Some(value) = self.bool(props, path, "RequiresSession") {
                properties.requires_session = value;
            }
            properties.forward_to = self.optional_name(props, path, "ForwardTo");
            properties.forward_dead_lettered_to =
                self.optional_name(props, path, "ForwardDeadLetteredMessagesTo");
            if let Some(status) = self.status(props, path, "Status") {
                properties.status = status;
            }
            self.report_unknown_keys(props, path, &owner);
        }

        let mut rule_names = HashSet::new();
        let mut rules = Vec::new();
        for (index, rule) in self.array(subscription, path, "Rules").iter().enumerate() {
            let rule_path = format!("{path}.Rules[{index}]");
            if let Some(rule) = self.rule(rule, &rule_path, &owner, &mut rule_names) {
                rules.push(rule);
            }
        }
        self.report_unknown_keys(subscription, path, &owner);
        Some(SubscriptionDefinition {
            name,
            properties,
            rules,
        })
    }

    fn rule(
        &mut self,
        rule: &Value,
        path: &str,
        subscription: &str,
        names: &mut HashSet<String>,
    ) -> Option<RuleDescription> {
        let Value::Object(rule) = rule else {
            self.problem(path, "expected an object");
            return None;
        };
        let name = self.simple_name(rule, path, names, true);
        let props_path = join(path, "Properties");
        let Some(props) = self.object(rule, path, "Properties") else {
            if lookup(rule, "Properties").is_none() {
                self.problem(
                    &props_path,
                    "is required (it holds FilterType and the filter)",
                );
            }
            return None;
        };
        let owner = format!("{} of {subscription}", owner("rule", name.as_deref(), path));
        let action_path = join(&props_path, "Action");
        let action_object = self.object(props, &props_path, "Action");
        let action = action_object
            .and_then(|action| self.string(action, &action_path, "SqlExpression"))
            .filter(|expression| !expression.trim().is_empty());
        if let Some(action_object) = action_object {
            self.report_unknown_keys(action_object, &action_path, &owner);
        }
        if let Some(expression) = &action
            && let Err(error) = busbar_core::filter::SqlRuleAction::parse(expression)
        {
            self.problem(&join(&action_path, "SqlExpression"), error.to_string());
            return None;
        }

        let filter_type_path = join(&props_path, "FilterType");
        let filter = match self.string(props, &props_path, "FilterType") {
            None => {
                if lookup(props, "FilterType").is_none() {
                    self.problem(&filter_type_path, "is required: \"Sql\" or \"Correlation\"");
                }
                None
            }
            Some(kind) if kind.eq_ignore_ascii_case("Sql") => {
                self.sql_filter(props, &props_path, &owner)
            }
            Some(kind) if kind.eq_ignore_ascii_case("Correlation") => {
                self.correlation_filter(props, &props_path, &owner)
            }
            Some(kind) => {
                self.problem(
                    &filter_type_path,
                    format!("\"{kind}\" is not a filter type; expected \"Sql\" or \"Correlation\""),
                );
                None
            }
        };
        // Both filter keys are the rule's own; FilterType picks the one that applies.
        self.field(props, "SqlFilter");
        self.field(props, "CorrelationFilter");
        self.report_unknown_keys(props, &props_path, &owner);
        self.report_unknown_keys(rule, path, &owner);
        Some(RuleDescription {
            name: name?,
            filter: filter?,
            action,
        })
    }

    fn sql_filter(
        &mut self,
        props: &Map<String, Value>,
        path: &str,
        owner: &str,
    ) -> Option<FilterDescription> {
        let filter_path = join(path, "SqlFilter");
        let Some(filter) = self.object(props, path, "SqlFilter") else {
            if lookup(props, "SqlFilter").is_none() {
                self.problem(&filter_path, "is required when FilterType is \"Sql\"");
            }
            return None;
        };
        let expression_path = join(&filter_path, "SqlExpression");
        let expression = self.string(filter, &filter_path, "SqlExpression");
        self.report_unknown_keys(filter, &filter_path, owner);
        match expression {
            Some(expression) if !expression.trim().is_empty() => {
                match busbar_core::filter::SqlFilter::parse(&expression) {
                    Ok(_) => Some(FilterDescription::Sql(expression)),
                    Err(error) => {
                        self.problem(&expression_path, error.to_string());
                        None
                    }
                }
            }
            Some(_) => {
                self.problem(&expression_path, "must not be empty");
                None
            }
            None => {
                if lookup(filter, "SqlExpression").is_none() {
                    self.problem(&expression_path, "is required");
                }
                None
            }
        }
    }

    fn correlation_filter(
        &mut self,
        props: &Map<String, Value>,
        path: &str,
        owner: &str,
    ) -> Option<FilterDescription> {
        let Some(object) = self.object(props, path, "CorrelationFilter") else {
            let path = join(path, "CorrelationFilter");
            if lookup(props, "CorrelationFilter").is_none() {
                self.problem(&path, "is required when FilterType is \"Correlation\"");
            }
            return None;
        };
        let path = &join(path, "CorrelationFilter");
        let problems_before = self.problems.len();
        let mut filter = CorrelationFilter {
            content_type: self.string(object, path, "ContentType"),
            correlation_id: self.string(object, path, "CorrelationId"),
            subject: self.string(object, path, "Label"),
            message_id: self.string(object, path, "MessageId"),
            reply_to: self.string(object, path, "ReplyTo"),
            reply_to_session_id: self.string(object, path, "ReplyToSessionId"),
            session_id: self.string(object, path, "SessionId"),
            to: self.string(object, path, "To"),
            properties: Vec::new(),
        };
        if let Some(subject) = self.string(object, path, "Subject") {
            if filter.subject.is_some() {
                self.problem(
                    &join(path, "Subject"),
                    "Label and Subject are the same field; set only one",
                );
            }
            filter.subject = Some(subject);
        }
        if let Some(properties) = self.object(object, path, "Properties") {
            let properties_path = join(path, "Properties");
            for (key, value) in properties {
                let value = match value {
                    Value::String(text) => FilterValue::String(text.clone()),
                    Value::Bool(flag) => FilterValue::Bool(*flag),
                    Value::Number(number) => match number.as_i64() {
                        Some(int) => FilterValue::Long(int),
                        None => FilterValue::Double(number.as_f64().unwrap_or(f64::NAN)),
                    },
                    other => {
                        self.problem(
                            &join(&properties_path, key),
                            format!(
                                "expected a string, number or boolean, found {}",
                                if other.is_null() {
                                    "null".to_owned()
                                } else {
                                    describe(other)
                                }
                            ),
                        );
                        continue;
                    }
                };
                filter.properties.push((key.clone(), value));
            }
        }
        // Its Properties are the application properties to match, any name goes.
        self.report_unknown_keys(object, path, owner);
        // Sort explicitly: the map's iteration order depends on serde_json's features.
        filter.properties.sort_by(|a, b| a.0.cmp(&b.0));
        if self.problems.len() > problems_before {
            return None;
        }
        if filter == CorrelationFilter::default() {
            self.problem(
                path,
                "sets no field; a correlation filter needs at least one property to match",
            );
            return None;
        }
        Some(FilterDescription::Correlation(filter))
    }

    /// A queue or topic name: required, valid, and unique across queues and topics.
    fn entity_name(
        &mut self,
        entity: &Map<String, Value>,
        path: &str,
        names: &mut HashSet<String>,
    ) -> Option<String> {
        let field = join(path, "Name");
        let Some(name) = self.string(entity, path, "Name") else {
            if lookup(entity, "Name").is_none() {
                self.problem(&field, "is required");
            }
            return None;
        };
        if let Err(reason) = check_entity_name(&name) {
            self.problem(&field, format!("\"{name}\" {reason}"));
            return None;
        }
        if !names.insert(name.to_ascii_lowercase()) {
            self.problem(
                &field,
                format!(
                    "\"{name}\" is already used by another queue or topic (names are case-insensitive)"
                ),
            );
            return None;
        }
        Some(name)
    }

    /// A subscription or rule name: required, valid, and unique among its siblings.
    fn simple_name(
        &mut self,
        object: &Map<String, Value>,
        path: &str,
        names: &mut HashSet<String>,
        is_rule: bool,
    ) -> Option<String> {
        let field = join(path, "Name");
        let Some(name) = self.string(object, path, "Name") else {
            if lookup(object, "Name").is_none() {
                self.problem(&field, "is required");
            }
            return None;
        };
        let allowed_default = is_rule && name.eq_ignore_ascii_case("$Default");
        if !allowed_default && let Err(reason) = check_simple_name(&name) {
            self.problem(&field, format!("\"{name}\" {reason}"));
            return None;
        }
        if !names.insert(name.to_ascii_lowercase()) {
            let sibling = if is_rule {
                "another rule of this subscription"
            } else {
                "another subscription of this topic"
            };
            self.problem(
                &field,
                format!("\"{name}\" is already used by {sibling} (names are case-insensitive)"),
            );
            return None;
        }
        Some(name)
    }

    fn native(&mut self, native: &Map<String, Value>) -> NativeSection {
        const PATH: &str = "Busbar";
        const KNOWN: [&str; 11] = [
            "Policies",
            "MaxMessageSize",
            "Durability",
            "AmqpListen",
            "AmqpsListen",
            "HttpListen",
            "TlsCert",
            "TlsKey",
            "AllowPlaintext",
            "DataDir",
            "OtlpEndpoint",
        ];
        for key in native.keys() {
            if !KNOWN.iter().any(|known| known.eq_ignore_ascii_case(key)) {
                self.problem(
                    &join(PATH, key),
                    format!("unknown setting; expected one of {}", KNOWN.join(", ")),
                );
            }
        }
        let mut section = NativeSection::default();
        if let Some(size) = self.unsigned(native, PATH, "MaxMessageSize") {
            if size == 0 {
                self.problem(&join(PATH, "MaxMessageSize"), "must be at least 1 byte");
            } else {
                section.max_message_size = Some(size);
            }
        }
        if let Some(text) = self.string(native, PATH, "Durability") {
            match text.parse() {
                Ok(durability) => section.durability = Some(durability),
                Err(_) => self.problem(
                    &join(PATH, "Durability"),
                    format!("\"{text}\" is not \"Sync\" or \"Buffered\""),
                ),
            }
        }
        section.amqp_listen = self.socket_address(native, PATH, "AmqpListen");
        section.amqps_listen = self.socket_address(native, PATH, "AmqpsListen");
        section.http_listen = self.socket_address(native, PATH, "HttpListen");
        section.tls_cert = self
            .optional_name(native, PATH, "TlsCert")
            .map(PathBuf::from);
        section.tls_key = self
            .optional_name(native, PATH, "TlsKey")
            .map(PathBuf::from);
        if section.tls_cert.is_some() != section.tls_key.is_some() {
            let missing = if section.tls_cert.is_some() {
                "TlsKey"
            } else {
                "TlsCert"
            };
            self.problem(
                &join(PATH, missing),
                "missing: TlsCert and TlsKey go together (the certificate chain and its key)",
            );
        }
        section.allow_plaintext = self.bool(native, PATH, "AllowPlaintext");
        section.data_dir = self
            .optional_name(native, PATH, "DataDir")
            .map(PathBuf::from);
        section.otlp_endpoint = self.optional_name(native, PATH, "OtlpEndpoint");

        let mut names = HashSet::new();
        for (index, policy) in self.array(native, PATH, "Policies").iter().enumerate() {
            let path = format!("{PATH}.Policies[{index}]");
            if let Some(policy) = self.policy(policy, &path, &mut names) {
                section.policies.push(policy);
            }
        }
        section
    }

    fn socket_address(
        &mut self,
        parent: &Map<String, Value>,
        path: &str,
        key: &str,
    ) -> Option<SocketAddr> {
        let text = self.string(parent, path, key)?;
        match text.trim().parse() {
            Ok(address) => Some(address),
            Err(_) => {
                self.problem(
                    &join(path, key),
                    format!("\"{text}\" is not an IP address and port (e.g. \"0.0.0.0:5672\")"),
                );
                None
            }
        }
    }

    fn policy(
        &mut self,
        policy: &Value,
        path: &str,
        names: &mut HashSet<String>,
    ) -> Option<Policy> {
        let Value::Object(policy) = policy else {
            self.problem(path, "expected an object");
            return None;
        };
        let name = match self.string(policy, path, "Name") {
            Some(name) if name.trim().is_empty() || name.chars().any(char::is_control) => {
                self.problem(&join(path, "Name"), "must be non-empty printable text");
                None
            }
            Some(name) if !names.insert(name.clone()) => {
                self.problem(&join(path, "Name"), format!("\"{name}\" is declared twice"));
                None
            }
            Some(name) => Some(name),
            None => {
                if lookup(policy, "Name").is_none() {
                    self.problem(&join(path, "Name"), "is required");
                }
                None
            }
        };
        let key = match self.string(policy, path, "Key") {
            Some(key) if key.is_empty() => {
                self.problem(&join(path, "Key"), "must not be empty");
                None
            }
            Some(key) => Some(key),
            None => {
                if lookup(policy, "Key").is_none() {
                    self.problem(&join(path, "Key"), "is required");
                }
                None
            }
        };
        let rights = self.rights(policy, path);
        let owner = owner("policy", name.as_deref(), path);
        self.report_unknown_keys(policy, path, &owner);
        Some(Policy {
            name: name?,
            key: key?,
            rights: rights?,
        })
    }

    fn rights(&mut self, policy: &Map<String, Value>, path: &str) -> Option<Rights> {
        let field = join(path, "Rights");
        let Some(value) = self.field(policy, "Rights") else {
            self.problem(
                &field,
                "is required: a list of \"Manage\", \"Send\", \"Listen\"",
            );
            return None;
        };
        let Value::Array(items) = value else {
            self.problem(
                &field,
                format!("expected an array, found {}", describe(value)),
            );
            return None;
        };
        let mut rights = Rights::default();
        let mut valid = true;
        for (index, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(right) if right.eq_ignore_ascii_case("Manage") => rights.manage = true,
                Some(right) if right.eq_ignore_ascii_case("Send") => rights.send = true,
                Some(right) if right.eq_ignore_ascii_case("Listen") => rights.listen = true,
                _ => {
                    self.problem(
                        &format!("{field}[{index}]"),
                        format!(
                            "{} is not a right; expected \"Manage\", \"Send\" or \"Listen\"",
                            describe(item)
                        ),
                    );
                    valid = false;
                }
            }
        }
        if valid && rights == Rights::default() {
            self.problem(&field, "must list at least one right");
            return None;
        }
        valid.then_some(rights)
    }
}

/// A forwarding reference to check once every entity is known.
struct ForwardCheck {
    path: String,
    source: String,
    forward_to: Option<String>,
    forward_dead_lettered_to: Option<String>,
}

impl ForwardCheck {
    fn new(
        path: &str,
        source: &str,
        forward_to: Option<&str>,
        forward_dead_lettered_to: Option<&str>,
    ) -> Self {
        ForwardCheck {
            path: path.to_owned(),
            source: source.to_owned(),
            forward_to: forward_to.map(str::to_owned),
            forward_dead_lettered_to: forward_dead_lettered_to.map(str::to_owned),
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn duration_millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')
}

/// Queue and topic names: letters, digits, `.`, `-`, `_`, and `/` between path segments;
/// starting and ending with a letter or digit; at most 260 characters.
pub fn check_entity_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".to_owned());
    }
    if name.len() > MAX_ENTITY_NAME_LEN {
        return Err(format!("is longer than {MAX_ENTITY_NAME_LEN} characters"));
    }
    if let Some(bad) = name.chars().find(|&c| !is_name_char(c) && c != '/') {
        return Err(format!(
            "contains '{bad}'; names may use letters, digits, '.', '-', '_' and '/'"
        ));
    }
    if !starts_and_ends_alphanumeric(name) {
        return Err("must start and end with a letter or digit".to_owned());
    }
    for segment in name.split('/') {
        if segment.is_empty() {
            return Err("has an empty path segment ('//')".to_owned());
        }
        if segment.eq_ignore_ascii_case("Subscriptions") {
            return Err("uses the reserved path segment 'Subscriptions'".to_owned());
        }
    }
    Ok(())
}

/// Subscription and rule names: letters, digits, `.`, `-`, `_`; starting and ending with a
/// letter or digit; at most 50 characters.
pub fn check_simple_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".to_owned());
    }
    if name.len() > MAX_SUBSCRIPTION_NAME_LEN {
        return Err(format!(
            "is longer than {MAX_SUBSCRIPTION_NAME_LEN} characters"
        ));
    }
    if let Some(bad) = name.chars().find(|&c| !is_name_char(c)) {
        return Err(format!(
            "contains '{bad}'; names may use letters, digits, '.', '-' and '_'"
        ));
    }
    if !starts_and_ends_alphanumeric(name) {
        return Err("must start and end with a letter or digit".to_owned());
    }
    Ok(())
}

fn starts_and_ends_alphanumeric(name: &str) -> bool {
    let first = name.chars().next();
    let last = name.chars().next_back();
    first.is_some_and(|c| c.is_ascii_alphanumeric())
        && last.is_some_and(|c| c.is_ascii_alphanumeric())
}

/// ISO 8601 durations are read as the administration API reads them (one parser).
pub use busbar_atom::duration::parse_exact as parse_iso8601_duration;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn secs(seconds: u64) -> Duration {
        Duration::from_secs(seconds)
    }

    #[test]
    fn status_is_read_for_every_entity_kind_and_checked() {
        let text = r#"{"UserConfig": {"Namespaces": [{"Name": "sbemulatorns",
            "Queues": [{"Name": "q", "Properties": {"Status": "SendDisabled"}}],
            "Topics": [{"Name": "t", "Properties": {"Status": "disabled"},
                "Subscriptions": [{"Name": "s", "Properties": {"Status": "ReceiveDisabled"}}]}]}]}}"#;
        let config = load_str(text).expect("valid");
        use crate::config::EntityStatus;
        assert_eq!(
            config.queues[0].properties.status,
            EntityStatus::SendDisabled
        );
        assert_eq!(config.topics[0].properties.status, EntityStatus::Disabled);
        assert_eq!(
            config.topics[0].subscriptions[0].properties.status,
            EntityStatus::ReceiveDisabled
        );
        let bad = text.replace("SendDisabled", "Paused");
        let error = load_str(&bad).expect_err("refused").to_string();
        assert!(
            error.contains("Status") && error.contains("Paused"),
            "{error}"
        );
    }

    #[test]
    fn durations_in_the_forms_people_write() {
        assert_eq!(parse_iso8601_duration("PT1M"), Ok(secs(60)));
        assert_eq!(parse_iso8601_duration("PT30S"), Ok(secs(30)));
        assert_eq!(parse_iso8601_duration("P14D"), Ok(secs(14 * 86_400)));
        assert_eq!(parse_iso8601_duration("PT1H30M"), Ok(secs(5_400)));
        assert_eq!(parse_iso8601_duration("P1DT2H"), Ok(secs(93_600)));
        assert_eq!(parse_iso8601_duration("P1W"), Ok(secs(7 * 86_400)));
        assert_eq!(parse_iso8601_duration("P1Y2M"), Ok(secs(425 * 86_400)));
        assert_eq!(parse_iso8601_duration("PT0S"), Ok(secs(0)));
        assert_eq!(parse_iso8601_duration(" pt5m "), Ok(secs(300)));
    }

    #[test]
    fn fractional_components() {
        assert_eq!(
            parse_iso8601_duration("PT0.5S"),
            Ok(Duration::from_millis(500))
        );
        assert_eq!(
            parse_iso8601_duration("PT1,25S"),
            Ok(Duration::from_millis(1_250))
        );
        assert_eq!(parse_iso8601_duration("PT1.5M"), Ok(secs(90)));
        assert_eq!(
            parse_iso8601_duration("PT.5S"),
            Ok(Duration::from_millis(500))
        );
        assert_eq!(
            parse_iso8601_duration("PT0.000000001S"),
            Ok(Duration::from_nanos(1))
        );
        assert_eq!(
            parse_iso8601_duration("PT1.1234567890123456789S"),
            Ok(Duration::new(1, 123_456_789))
        );
    }

    #[test]
    fn timespan_max_value_fits() {
        // .NET's TimeSpan.MaxValue, which Service Bus reports as "no TTL".
        let duration = parse_iso8601_duration("P10675199DT2H48M5.4775807S").unwrap();
        assert_eq!(
            duration.as_secs(),
            10_675_199 * 86_400 + 2 * 3_600 + 48 * 60 + 5
        );
        assert_eq!(duration.subsec_nanos(), 477_580_700);
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for text in [
            "",
            "P",
            "PT",
            "1M",
            "PT10X",
            "P1H",
            "PT1D",
            "PT1M1H",
            "P1D1D",
            "PTT1M",
            "PT1.5M1S",
            "PT1.S",
            "PT-1S",
            "-PT1S",
            "PTS",
            "P1",
            "00:05:00",
            "P99999999999999999999999Y",
        ] {
            assert!(parse_iso8601_duration(text).is_err(), "{text:?}");
        }
        assert_eq!(
            parse_iso8601_duration("PT10X"),
            Err("unknown unit designator 'X'".to_owned())
        );
    }

    #[test]
    fn entity_names() {
        assert!(check_entity_name("queue.1").is_ok());
        assert!(check_entity_name("site1/my-queue_2").is_ok());
        assert!(check_entity_name("").is_err());
        assert!(check_entity_name("my queue").is_err());
        assert!(check_entity_name("-q").is_err());
        assert!(check_entity_name("q.").is_err());
        assert!(check_entity_name("a//b").is_err());
        assert!(check_entity_name("t/Subscriptions/s").is_err());
        assert!(check_entity_name(&"q".repeat(261)).is_err());
        assert!(check_entity_name(&"q".repeat(260)).is_ok());
        assert!(check_simple_name("sub.1").is_ok());
        assert!(check_simple_name("a/b").is_err());
        assert!(check_simple_name(&"s".repeat(51)).is_err());
    }
}
