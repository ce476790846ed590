//! The broker's configuration: listeners, storage, limits, SAS policies and the entities to
//! create at start-up.
//!
//! This module is the model only. A configuration file is Microsoft's Service Bus emulator
//! `Config.json`, read as it is by [`crate::emulator_config`] (which names the accepted schema),
//! optionally with a `Busbar` section for settings the emulator doesn't have:
//!
//! ```json
//! {
//!   "UserConfig": { "Namespaces": [ { "Name": "sbemulatorns", "Queues": [ ... ], "Topics": [ ... ] } ] },
//!   "Busbar": {
//!     "Policies": [ { "Name": "app", "Key": "a-long-random-secret", "Rights": ["Send", "Listen"] } ],
//!     "MaxMessageSize": 1048576,
//!     "Durability": "Sync",
//!     "AmqpListen": "0.0.0.0:5672",
//!     "AmqpsListen": "0.0.0.0:5671",
//!     "HttpListen": "0.0.0.0:5300",
//!     "TlsCert": "/etc/busbar/cert.pem",
//!     "TlsKey": "/etc/busbar/key.pem",
//!     "DataDir": "/var/lib/busbar"
//!   }
//! }
//! ```
//!
//! Every `Busbar` field is optional; command-line flags override the file.
//!
//! Secure by default: with no policy configured, the broker accepts the emulator's well-known
//! `RootManageSharedAccessKey`/`SAS_KEY_VALUE` pair only while every listener is on a loopback
//! address (see [`BrokerConfig::effective_policies`]).

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use crate::limits::Limits;

pub use busbar_core::EntityStatus;

pub use busbar_servicebus::sas::{DEFAULT_KEY_NAME, DEFAULT_KEY_VALUE, Policy, Rights};

/// Default AMQP listener: the emulator's plain-AMQP port, loopback only.
pub const DEFAULT_AMQP_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 5672);
/// Default TLS-only listener: Service Bus's AMQPS port, loopback only.
pub const DEFAULT_AMQPS_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 5671);
/// Default HTTP listener (health now, admin API later): the emulator's port, loopback only.
pub const DEFAULT_HTTP_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 5300);
/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "./busbar-data";
/// Default maximum message size: 256 KiB, the Service Bus Standard tier limit.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 256 * 1024;
/// Default size of a log segment: 64 MiB.
pub const DEFAULT_SEGMENT_MIB: u32 = 64;

/// Everything the broker needs to start.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    /// AMQP, and TLS or HTTP recognised by their first bytes.
    pub amqp_listen: SocketAddr,
    /// TLS only (AMQP or HTTP inside).
    pub amqps_listen: SocketAddr,
    pub http_listen: SocketAddr,
    /// The server certificate chain and key (PEM); `None`: the development CA's, made in
    /// the data directory.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Serve unencrypted AMQP and HTTP on non-loopback addresses too.
    pub allow_plaintext: bool,
    pub data_dir: PathBuf,
    /// Largest message (or batch) accepted on a sender link, in bytes.
    pub max_message_size: u64,
    pub durability: Durability,
    /// Size at which the log starts a new segment file, in MiB. A segment is deleted once
    /// no live message has its body in it, so smaller segments give disk space back sooner
    /// when a few messages stay behind, at the cost of more files.
    pub segment_mib: u32,
    /// Policies declared in the configuration file. Use [`Self::effective_policies`] for the
    /// set the broker should enforce.
    pub policies: Vec<Policy>,
    /// A root key given on the command line or in the environment: adds (or replaces) a policy
    /// with all rights named [`Self::root_key_name`] or `RootManageSharedAccessKey`.
    pub root_key: Option<String>,
    /// Name for the root key, whether it is [`Self::root_key`] or the loopback-only default.
    pub root_key_name: Option<String>,
    /// The namespace name from the emulator file (Microsoft's emulator insists on
    /// `sbemulatorns`); informational.
    pub namespace: Option<String>,
    pub queues: Vec<QueueDefinition>,
    pub topics: Vec<TopicDefinition>,
    /// `UserConfig.Logging.Type` from an emulator file. Busbar always logs to stderr; this is
    /// kept so the broker can say it ignored the setting.
    pub emulator_logging: Option<String>,
    /// What clients may hold of the broker's resources.
    pub limits: Limits,
    /// The OTLP/HTTP collector traced messages' spans are exported to (its base URL);
    /// `None`: no trace export (see [`crate::otlp`]).
    pub otlp_endpoint: Option<String>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            amqp_listen: DEFAULT_AMQP_LISTEN,
            amqps_listen: DEFAULT_AMQPS_LISTEN,
            http_listen: DEFAULT_HTTP_LISTEN,
            tls_cert: None,
            tls_key: None,
            allow_plaintext: false,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            durability: Durability::default(),
            segment_mib: DEFAULT_SEGMENT_MIB,
            policies: Vec::new(),
            root_key: None,
            root_key_name: None,
            namespace: None,
            queues: Vec::new(),
            topics: Vec::new(),
            emulator_logging: None,
            limits: Limits::default(),
            otlp_endpoint: None,
        }
    }
}

/// When an acknowledged write reaches the disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Durability {
    /// A send is acknowledged only after its journal record is fsynced.
    #[default]
    Sync,
    /// Writes are acknowledged once handed to the OS; a machine crash can lose the last few.
    Buffered,
}

impl FromStr for Durability {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.eq_ignore_ascii_case("sync") {
            Ok(Durability::Sync)
        } else if text.eq_ignore_ascii_case("buffered") {
            Ok(Durability::Buffered)
        } else {
            Err(ConfigError::InvalidDurability(text.to_owned()))
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Durability::Sync => "sync",
            Durability::Buffered => "buffered",
        })
    }
}

/// A queue to create at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDefinition {
    pub name: String,
    pub properties: QueueProperties,
}

/// Queue settings, in the units and with the defaults of `busbar-core`'s queue config.
/// Defaults are Service Bus's, not the emulator's (which caps TTL at one hour and
/// MaxDeliveryCount at 10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueProperties {
    pub lock_duration_ms: i64,
    pub max_delivery_count: u32,
    /// `None`: messages never expire unless they carry their own TTL.
    pub default_ttl_ms: Option<i64>,
    pub dead_lettering_on_expiration: bool,
    pub requires_duplicate_detection: bool,
    pub duplicate_detection_window_ms: i64,
    pub requires_session: bool,
    pub forward_to: Option<String>,
    pub forward_dead_lettered_to: Option<String>,
    /// `MaxSizeInMegabytes`, in bytes. `None` (the property left out): no cap, unlike
    /// Service Bus, whose default is 1024 MB.
    pub max_size_bytes: Option<u64>,
    pub status: EntityStatus,
}

/// Service Bus's default lock duration: one minute.
pub const DEFAULT_LOCK_DURATION_MS: i64 = 60_000;
/// Service Bus's default max delivery count.
pub const DEFAULT_MAX_DELIVERY_COUNT: u32 = 10;
/// Service Bus's default duplicate detection window: ten minutes.
pub const DEFAULT_DUPLICATE_DETECTION_WINDOW_MS: i64 = 600_000;

impl Default for QueueProperties {
    fn default() -> Self {
        QueueProperties {
            lock_duration_ms: DEFAULT_LOCK_DURATION_MS,
            max_delivery_count: DEFAULT_MAX_DELIVERY_COUNT,
            default_ttl_ms: None,
            dead_lettering_on_expiration: false,
            requires_duplicate_detection: false,
            duplicate_detection_window_ms: DEFAULT_DUPLICATE_DETECTION_WINDOW_MS,
            requires_session: false,
            forward_to: None,
            forward_dead_lettered_to: None,
            max_size_bytes: None,
            status: EntityStatus::Active,
        }
    }
}

/// A topic with its subscriptions.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicDefinition {
    pub name: String,
    pub properties: TopicConfig,
    pub subscriptions: Vec<SubscriptionDefinition>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionDefinition {
    pub name: String,
    pub properties: SubscriptionProperties,
    /// Empty means the implicit `$Default` rule that matches everything.
    pub rules: Vec<RuleDescription>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionProperties {
    pub lock_duration_ms: i64,
    pub max_delivery_count: u32,
    pub default_ttl_ms: Option<i64>,
    pub dead_lettering_on_expiration: bool,
    pub dead_lettering_on_filter_evaluation_exceptions: bool,
    pub requires_session: bool,
    pub forward_to: Option<String>,
    pub forward_dead_lettered_to: Option<String>,
    pub status: EntityStatus,
}

impl Default for SubscriptionProperties {
    fn default() -> Self {
        SubscriptionProperties {
            lock_duration_ms: DEFAULT_LOCK_DURATION_MS,
            max_delivery_count: DEFAULT_MAX_DELIVERY_COUNT,
            default_ttl_ms: None,
            dead_lettering_on_expiration: false,
            // Service Bus's default (the emulator file may turn it off).
            dead_lettering_on_filter_evaluation_exceptions: true,
            requires_session: false,
            forward_to: None,
            forward_dead_lettered_to: None,
            status: EntityStatus::Active,
        }
    }
}

pub use busbar_core::filter::{CorrelationFilter, FilterValue};
pub use busbar_core::namespace::{FilterDescription, RuleDescription};
pub use busbar_core::topic::TopicConfig;

/// Why a configuration can't be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("config file is not valid JSON: {0}")]
    UnclosedComment(#[from] crate::relaxed_json::UnclosedComment),
    /// One or more fields are wrong; each problem names its field path.
    #[error("{}", render_problems(.0))]
    Invalid(Vec<FieldProblem>),
    #[error("durability must be 'sync' or 'buffered', not '{0}'")]
    InvalidDurability(String),
    #[error(
        "no SAS policy is configured and the broker listens on a non-loopback address ({0}), \
         where the well-known emulator key would let anyone in. Set a root key with \
         --sas-key <KEY> (environment BUSBAR_SAS_KEY), or declare policies in the config file \
         under \"Busbar\": {{\"Policies\": [{{\"Name\": ..., \"Key\": ..., \"Rights\": [\"Manage\", \"Send\", \"Listen\"]}}]}}"
    )]
    InsecureDefaultKey(String),
    #[error(
        "--sas-key-name (BUSBAR_SAS_KEY_NAME) '{0}' was given without --sas-key (BUSBAR_SAS_KEY), \
         but the config file declares its own policies; give the key too, or drop the name"
    )]
    RootKeyNameWithoutKey(String),
    #[error(
        "the root key given with --sas-key (environment BUSBAR_SAS_KEY) is empty; anyone could \
         sign tokens with it. Give a real key, or unset it to use the development key on loopback"
    )]
    EmptyRootKey,
}

/// One invalid field: where it is and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// E.g. `UserConfig.Namespaces[0].Queues[2].Properties.LockDuration`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn render_problems(problems: &[FieldProblem]) -> String {
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

impl BrokerConfig {
    /// Whether the broker runs on the loopback-only development key: no policy configured
    /// and no root key given.
    pub fn uses_development_key(&self) -> bool {
        self.policies.is_empty() && self.root_key.is_none()
    }

    /// The policies the broker enforces:
    ///
    /// * the configured policies, plus the root key from [`Self::root_key`] (replacing a
    ///   configured policy of the same name) when one is given;
    /// * with neither, the emulator's `RootManageSharedAccessKey`/`SAS_KEY_VALUE` with all
    ///   rights (under [`Self::root_key_name`] if set), but only if every listener is on a
    ///   loopback address. Otherwise this fails, saying what to set.
    pub fn tls_files(&self) -> Option<crate::listener::certificates::CertificateFiles> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(crate::listener::certificates::CertificateFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        }
    }

    pub fn effective_policies(&self) -> Result<Vec<Policy>, ConfigError> {
        let root_name = self
            .root_key_name
            .clone()
            .unwrap_or_else(|| DEFAULT_KEY_NAME.to_owned());
        let mut policies = self.policies.clone();

        if let Some(key) = &self.root_key {
            if key.trim().is_empty() {
                return Err(ConfigError::EmptyRootKey);
            }
            policies.retain(|policy| policy.name != root_name);
            policies.push(Policy {
                name: root_name,
                key: key.clone(),
                rights: Rights::ALL,
            });
            return Ok(policies);
        }
        if !policies.is_empty() {
            if let Some(name) = &self.root_key_name {
                return Err(ConfigError::RootKeyNameWithoutKey(name.clone()));
            }
            return Ok(policies);
        }

        let exposed: Vec<String> = [
            ("AMQP", self.amqp_listen),
            ("AMQPS", self.amqps_listen),
            ("HTTP", self.http_listen),
        ]
        .into_iter()
        .filter(|(_, address)| !address.ip().is_loopback())
        .map(|(kind, address)| format!("{kind} {address}"))
        .collect();
        if !exposed.is_empty() {
            return Err(ConfigError::InsecureDefaultKey(exposed.join(", ")));
        }
        Ok(vec![Policy {
            name: root_name,
            key: DEFAULT_KEY_VALUE.to_owned(),
            rights: Rights::ALL,
        }])
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn policy(name: &str, key: &str) -> Policy {
        Policy {
            name: name.to_owned(),
            key: key.to_owned(),
            rights: Rights {
                send: true,
                ..Rights::default()
            },
        }
    }

    #[test]
    fn defaults() {
        let config = BrokerConfig::default();
        assert_eq!(config.amqp_listen.to_string(), "127.0.0.1:5672");
        assert_eq!(config.http_listen.to_string(), "127.0.0.1:5300");
        assert_eq!(config.data_dir, PathBuf::from("./busbar-data"));
        assert_eq!(config.max_message_size, 262_144);
        assert_eq!(config.durability, Durability::Sync);
    }

    #[test]
    fn loopback_only_gets_the_emulator_key() {
        let policies = BrokerConfig::default().effective_policies().unwrap();
        assert_eq!(policies.len(), 1);
        assert_eq!(policies[0].name, "RootManageSharedAccessKey");
        assert_eq!(policies[0].key, "SAS_KEY_VALUE");
        assert_eq!(policies[0].rights, Rights::ALL);

        let ipv6 = BrokerConfig {
            amqp_listen: "[::1]:5672".parse().unwrap(),
            root_key_name: Some("local".to_owned()),
            ..BrokerConfig::default()
        };
        let policies = ipv6.effective_policies().unwrap();
        assert_eq!(policies[0].name, "local");
        assert_eq!(policies[0].key, "SAS_KEY_VALUE");
    }

    #[test]
    fn exposed_listener_without_policy_is_refused_with_instructions() {
        let config = BrokerConfig {
            http_listen: "0.0.0.0:5300".parse().unwrap(),
            ..BrokerConfig::default()
        };
        let err = config.effective_policies().unwrap_err();
        let text = err.to_string();
        assert!(text.contains("HTTP 0.0.0.0:5300"), "{text}");
        assert!(!text.contains("AMQP 127.0.0.1"), "{text}");
        assert!(text.contains("--sas-key"), "{text}");
        assert!(text.contains("BUSBAR_SAS_KEY"), "{text}");
        assert!(text.contains("\"Policies\""), "{text}");
    }

    #[test]
    fn an_empty_root_key_is_refused_wherever_the_broker_listens() {
        for key in ["", "  "] {
            let config = BrokerConfig {
                root_key: Some(key.to_owned()),
                ..BrokerConfig::default()
            };
            assert!(matches!(
                config.effective_policies(),
                Err(ConfigError::EmptyRootKey)
            ));
        }
    }

    #[test]
    fn root_key_works_on_any_address_and_replaces_a_same_named_policy() {
        let config = BrokerConfig {
            amqp_listen: "0.0.0.0:5672".parse().unwrap(),
            policies: vec![
                policy("RootManageSharedAccessKey", "old"),
                policy("app", "k"),
            ],
            root_key: Some("new-secret".to_owned()),
            ..BrokerConfig::default()
        };
        let policies = config.effective_policies().unwrap();
        assert_eq!(policies.len(), 2);
        let root = policies
            .iter()
            .find(|p| p.name == "RootManageSharedAccessKey")
            .unwrap();
        assert_eq!(root.key, "new-secret");
        assert_eq!(root.rights, Rights::ALL);
    }

    #[test]
    fn configured_policies_are_used_as_they_are() {
        let config = BrokerConfig {
            amqp_listen: "0.0.0.0:5672".parse().unwrap(),
            policies: vec![policy("app", "k")],
            ..BrokerConfig::default()
        };
        assert_eq!(
            config.effective_policies().unwrap(),
            vec![policy("app", "k")]
        );

        let named = BrokerConfig {
            root_key_name: Some("admin".to_owned()),
            ..config
        };
        assert!(matches!(
            named.effective_policies(),
            Err(ConfigError::RootKeyNameWithoutKey(name)) if name == "admin"
        ));
    }

    #[test]
    fn durability_parses_case_insensitively() {
        assert_eq!("SYNC".parse::<Durability>().unwrap(), Durability::Sync);
        assert_eq!(
            "buffered".parse::<Durability>().unwrap(),
            Durability::Buffered
        );
        assert!("fast".parse::<Durability>().is_err());
        assert_eq!(Durability::Buffered.to_string(), "buffered");
    }
}
