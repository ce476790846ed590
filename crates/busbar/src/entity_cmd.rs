//! `busbar queue|topic|subscription|rule create|show|update|delete|list`: manage a running
//! broker's entities through its administration API, the Atom/XML API the SDKs'
//! `ServiceBusAdministrationClient` uses.

use anyhow::{bail, ensure};
use busbar_atom::read::{self, EntryFields};
use clap::{Args, Subcommand, ValueEnum};

use crate::http_client::{Api, send};

const API_VERSION: &str = "api-version=2021-05";
const ATOM_NS: &str = "http://www.w3.org/2005/Atom";
const CONNECT_NS: &str = "http://schemas.microsoft.com/netservices/2010/10/servicebus/connect";
const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Queue,
    Topic,
    Subscription,
    Rule,
}

impl Kind {
    /// The names that locate one entity of this kind, in path order.
    fn path_names(self) -> &'static [&'static str] {
        match self {
            Kind::Queue | Kind::Topic => &["NAME"],
            Kind::Subscription => &["TOPIC", "NAME"],
            Kind::Rule => &["TOPIC", "SUBSCRIPTION", "NAME"],
        }
    }

    fn description(self) -> &'static str {
        match self {
            Kind::Queue => "QueueDescription",
            Kind::Topic => "TopicDescription",
            Kind::Subscription => "SubscriptionDescription",
            Kind::Rule => "RuleDescription",
        }
    }

    fn word(self) -> &'static str {
        match self {
            Kind::Queue => "queue",
            Kind::Topic => "topic",
            Kind::Subscription => "subscription",
            Kind::Rule => "rule",
        }
    }

    /// The URL path of one entity (`names` complete) or of the list of them (`names` without
    /// the last).
    fn url_path(self, names: &[String], list: bool) -> String {
        let encoded: Vec<String> = names.iter().map(|n| encode(n)).collect();
        match (self, list, encoded.as_slice()) {
            (Kind::Queue, true, _) => "/$Resources/queues".to_owned(),
            (Kind::Topic, true, _) => "/$Resources/topics".to_owned(),
            (Kind::Subscription, true, [topic, ..]) => format!("/{topic}/Subscriptions"),
            (Kind::Rule, true, [topic, sub, ..]) => format!("/{topic}/Subscriptions/{sub}/Rules"),
            (Kind::Queue | Kind::Topic, false, [name]) => format!("/{name}"),
            (Kind::Subscription, false, [topic, name]) => {
                format!("/{topic}/Subscriptions/{name}")
            }
            (Kind::Rule, false, [topic, sub, name]) => {
                format!("/{topic}/Subscriptions/{sub}/Rules/{name}")
            }
            _ => String::new(),
        }
    }
}

fn encode(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[derive(Debug, Clone, Subcommand)]
pub enum Action {
    /// Create it; settings not given take Service Bus's defaults.
    Create {
        /// NAME (queue, topic), TOPIC NAME (subscription), TOPIC SUBSCRIPTION NAME (rule).
        #[arg(value_name = "PATH", num_args = 1..=3, required = true)]
        path: Vec<String>,
        #[command(flatten)]
        settings: Settings,
    },
    /// Print its settings and message counts.
    Show {
        #[arg(value_name = "PATH", num_args = 1..=3, required = true)]
        path: Vec<String>,
    },
    /// Change the settings given, keep the others (a rule is replaced by the one given).
    Update {
        #[arg(value_name = "PATH", num_args = 1..=3, required = true)]
        path: Vec<String>,
        #[command(flatten)]
        settings: Settings,
    },
    /// Delete it (a topic with its subscriptions, a queue with its messages).
    Delete {
        #[arg(value_name = "PATH", num_args = 1..=3, required = true)]
        path: Vec<String>,
    },
    /// List them: all queues or topics, a topic's subscriptions (TOPIC), a subscription's
    /// rules (TOPIC SUBSCRIPTION).
    List {
        #[arg(value_name = "PATH", num_args = 0..=2)]
        path: Vec<String>,
    },
}

/// Entity settings, each written as the description element it names. Durations are
/// ISO 8601 (`PT30S`, `PT5M`, `P1D`).
#[derive(Debug, Clone, Default, Args)]
pub struct Settings {
    /// How long a received message stays locked (queue, subscription).
    #[arg(long, value_name = "DURATION")]
    lock_duration: Option<String>,
    /// Deliveries before a message is dead-lettered (queue, subscription).
    #[arg(long, value_name = "N")]
    max_delivery_count: Option<u32>,
    /// Time to live of messages that set none.
    #[arg(long, value_name = "DURATION")]
    default_message_ttl: Option<String>,
    /// Receivers must use sessions (queue, subscription; only at creation).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    requires_session: Option<bool>,
    /// Drop messages whose id was seen within the window (queue, topic; only at creation).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    requires_duplicate_detection: Option<bool>,
    #[arg(long, value_name = "DURATION")]
    duplicate_detection_window: Option<String>,
    /// Expired messages go to the dead-letter queue.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    dead_letter_on_expiration: Option<bool>,
    /// Move every message to this queue or topic (queue, subscription).
    #[arg(long, value_name = "ENTITY")]
    forward_to: Option<String>,
    /// Move dead-lettered messages to this queue or topic (queue, subscription).
    #[arg(long, value_name = "ENTITY")]
    forward_dead_letters_to: Option<String>,
    #[arg(long, value_name = "MB")]
    max_size_mb: Option<u64>,
    #[arg(long, value_name = "DURATION")]
    auto_delete_on_idle: Option<String>,
    /// Active, Disabled, SendDisabled or ReceiveDisabled.
    #[arg(long, value_name = "STATUS")]
    status: Option<String>,
    #[arg(long, value_name = "TEXT")]
    user_metadata: Option<String>,
    /// The rule's SQL filter (rule; default: every message).
    #[arg(long, value_name = "EXPRESSION", conflicts_with = "correlation_id")]
    sql: Option<String>,
    /// The rule's SQL action, `SET ...`/`REMOVE ...` (rule).
    #[arg(long, value_name = "EXPRESSION")]
    action: Option<String>,
    /// A correlation filter on this correlation id (rule).
    #[arg(long, value_name = "ID")]
    correlation_id: Option<String>,
}

impl Settings {
    /// The description elements the flags set, as (element, text).
    fn elements(&self) -> Vec<(&'static str, String)> {
        let text = |value: &Option<String>| value.clone();
        let shown = |value: Option<u64>| value.map(|v| v.to_string());
        let flag = |value: Option<bool>| value.map(|v| v.to_string());
        [
            ("LockDuration", text(&self.lock_duration)),
            (
                "MaxDeliveryCount",
                shown(self.max_delivery_count.map(u64::from)),
            ),
            ("DefaultMessageTimeToLive", text(&self.default_message_ttl)),
            ("RequiresSession", flag(self.requires_session)),
            (
                "RequiresDuplicateDetection",
                flag(self.requires_duplicate_detection),
            ),
            (
                "DuplicateDetectionHistoryTimeWindow",
                text(&self.duplicate_detection_window),
            ),
            (
                "DeadLetteringOnMessageExpiration",
                flag(self.dead_letter_on_expiration),
            ),
            ("ForwardTo", text(&self.forward_to)),
            (
                "ForwardDeadLetteredMessagesTo",
                text(&self.forward_dead_letters_to),
            ),
            ("MaxSizeInMegabytes", shown(self.max_size_mb)),
            ("AutoDeleteOnIdle", text(&self.auto_delete_on_idle)),
            ("Status", text(&self.status)),
            ("UserMetadata", text(&self.user_metadata)),
        ]
        .into_iter()
        .filter_map(|(element, value)| value.map(|v| (element, v)))
        .collect()
    }

    fn rule_description(&self) -> String {
        let filter = match (&self.sql, &self.correlation_id) {
            (Some(sql), _) => format!(
                r#"<Filter i:type="SqlFilter"><SqlExpression>{}</SqlExpression></Filter>"#,
                escape(sql)
            ),
            (None, Some(id)) => format!(
                r#"<Filter i:type="CorrelationFilter"><CorrelationId>{}</CorrelationId></Filter>"#,
                escape(id)
            ),
            (None, None) => {
                r#"<Filter i:type="TrueFilter"><SqlExpression>1=1</SqlExpression></Filter>"#
                    .to_owned()
            }
        };
        let action = match &self.action {
            Some(sql) => format!(
                r#"<Action i:type="SqlRuleAction"><SqlExpression>{}</SqlExpression></Action>"#,
                escape(sql)
            ),
            None => r#"<Action i:type="EmptyRuleAction"/>"#.to_owned(),
        };
        format!("{filter}{action}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn entry(kind: Kind, inner: &str) -> String {
    let root = kind.description();
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><entry xmlns="{ATOM_NS}"><content type="application/xml"><{root} xmlns="{CONNECT_NS}" xmlns:i="{XSI_NS}">{inner}</{root}></content></entry>"#
    )
}

fn elements_xml(elements: &[(impl AsRef<str>, String)]) -> String {
    elements
        .iter()
        .map(|(name, value)| {
            let name = name.as_ref();
            format!("<{name}>{}</{name}>", escape(value))
        })
        .collect()
}

/// Runs one entity command against the broker behind `api`.
pub async fn run(api: &Api, kind: Kind, action: &Action) -> anyhow::Result<()> {
    match action {
        Action::Create { path, settings } => {
            let names = one_entity(kind, "create", path)?;
            let inner = match kind {
                Kind::Rule => settings.rule_description(),
                _ => elements_xml(&settings.elements()),
            };
            let (status, body) = put(api, kind, &names, &entry(kind, &inner), false).await?;
            expect(kind, &names, 201, status, &body)?;
            print_entity(&body)
        }
        Action::Show { path } => {
            let names = one_entity(kind, "show", path)?;
            let found = get_one(api, kind, &names).await?;
            print_fields(&found);
            Ok(())
        }
        Action::Update { path, settings } => {
            let names = one_entity(kind, "update", path)?;
            let inner = match kind {
                Kind::Rule => settings.rule_description(),
                _ => {
                    let mut merged = get_one(api, kind, &names).await?.settings;
                    for (element, value) in settings.elements() {
                        match merged.iter_mut().find(|(name, _)| name == element) {
                            Some(slot) => slot.1 = value,
                            None => merged.push((element.to_owned(), value)),
                        }
                    }
                    elements_xml(&merged)
                }
            };
            let (status, body) = put(api, kind, &names, &entry(kind, &inner), true).await?;
            expect(kind, &names, 200, status, &body)?;
            print_entity(&body)
        }
        Action::Delete { path } => {
            let names = one_entity(kind, "delete", path)?;
            if matches!(kind, Kind::Queue | Kind::Topic) {
                // `/{name}` names a queue or a topic: delete only the kind asked for.
                get_one(api, kind, &names).await?;
            }
            let url = format!("{}?{API_VERSION}", kind.url_path(&names, false));
            let (status, body) = send(api, "DELETE", &url, &[], "").await?;
            expect(kind, &names, 200, status, &body)?;
            println!("deleted {} {}", kind.word(), names.join("/"));
            Ok(())
        }
        Action::List { path } => {
            let needed = kind.path_names().len() - 1;
            ensure!(
                path.len() == needed,
                "usage: busbar {} list {}",
                kind.word(),
                kind.path_names()[..needed].join(" ")
            );
            list(api, kind, path).await
        }
    }
}

fn one_entity(kind: Kind, verb: &str, path: &[String]) -> anyhow::Result<Vec<String>> {
    ensure!(
        path.len() == kind.path_names().len(),
        "usage: busbar {} {verb} {}",
        kind.word(),
        kind.path_names().join(" ")
    );
    Ok(path.to_vec())
}

async fn put(
    api: &Api,
    kind: Kind,
    names: &[String],
    body: &str,
    update: bool,
) -> anyhow::Result<(u16, String)> {
    let url = format!("{}?{API_VERSION}", kind.url_path(names, false));
    let mut headers = vec![(
        "Content-Type",
        "application/atom+xml;type=entry;charset=utf-8",
    )];
    if update {
        headers.push(("If-Match", "*"));
    }
    send(api, "PUT", &url, &headers, body).await
}

async fn get_one(api: &Api, kind: Kind, names: &[String]) -> anyhow::Result<EntryFields> {
    let url = format!("{}?{API_VERSION}", kind.url_path(names, false));
    let (status, body) = send(api, "GET", &url, &[], "").await?;
    expect(kind, names, 200, status, &body)?;
    let found = read::entries(&body)
        .map_err(anyhow::Error::msg)?
        .into_iter()
        .find(|e| e.kind == kind.description());
    match found {
        Some(entry) => Ok(entry),
        None => bail!("no {} named '{}'", kind.word(), names.join("/")),
    }
}

/// Fails with the broker's own explanation unless it answered `wanted`.
fn expect(
    kind: Kind,
    names: &[String],
    wanted: u16,
    status: u16,
    body: &str,
) -> anyhow::Result<()> {
    if status == wanted {
        return Ok(());
    }
    let detail = body
        .split_once("<Detail>")
        .and_then(|(_, rest)| rest.split_once("</Detail>"))
        .map_or(body, |(detail, _)| detail);
    let what = format!("{} '{}'", kind.word(), names.join("/"));
    match status {
        401 => bail!(
            "the broker refused the request: {detail}. Give a key with Manage rights: \
             --sas-key-name NAME --sas-key KEY (environment BUSBAR_SAS_KEY_NAME, BUSBAR_SAS_KEY)"
        ),
        404 => bail!("no {what}"),
        409 => bail!("{what} already exists"),
        _ => bail!("the broker answered {status} for {what}: {detail}"),
    }
}

fn print_entity(body: &str) -> anyhow::Result<()> {
    for entry in read::entries(body).map_err(anyhow::Error::msg)? {
        print_fields(&entry);
    }
    Ok(())
}

fn print_fields(entry: &EntryFields) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) ends the listing, not the program.
    let _ = writeln!(out, "Name: {}", entry.title);
    for (name, value) in entry.fields.iter().filter(|(_, v)| !v.is_empty()) {
        let _ = writeln!(out, "{name}: {value}");
    }
}

async fn list(api: &Api, kind: Kind, names: &[String]) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    let mut skip = 0;
    const PAGE: usize = 100;
    loop {
        let url = format!(
            "{}?$skip={skip}&$top={PAGE}&{API_VERSION}",
            kind.url_path(names, true)
        );
        let (status, body) = send(api, "GET", &url, &[], "").await?;
        expect(kind, names, 200, status, &body)?;
        let page = read::entries(&body).map_err(anyhow::Error::msg)?;
        let full = page.len() == PAGE;
        rows.extend(page);
        if !full {
            break;
        }
        skip += PAGE;
    }
    let columns: &[(&str, &str)] = match kind {
        Kind::Rule => &[
            ("FILTER", "SqlExpression"),
            ("CORRELATION-ID", "CorrelationId"),
        ],
        Kind::Topic => &[
            ("STATUS", "Status"),
            ("SUBSCRIPTIONS", "SubscriptionCount"),
            ("SCHEDULED", "ScheduledMessageCount"),
        ],
        _ => &[
            ("STATUS", "Status"),
            ("ACTIVE", "ActiveMessageCount"),
            ("DEAD-LETTER", "DeadLetterMessageCount"),
            ("SCHEDULED", "ScheduledMessageCount"),
        ],
    };
    let width = rows.iter().map(|r| r.title.len()).max().unwrap_or(4).max(4);
    let mut header = format!("{:width$}", "NAME");
    for (title, _) in columns {
        header.push_str(&format!("  {title:>13}"));
    }
    println!("{}", header.trim_end());
    for row in &rows {
        let mut line = format!("{:width$}", row.title);
        for (_, field) in columns {
            line.push_str(&format!("  {:>13}", row.field(field).unwrap_or("")));
        }
        println!("{}", line.trim_end());
    }
    Ok(())
}
