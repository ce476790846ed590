//! The `busbar` binary: reads flags, environment and an optional configuration file into a
//! `BrokerConfig`, sets up logging and signal handling, and hands over to the broker runtime.
//!
//! It holds no broker logic of its own; everything past configuration lives in `busbar-server`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use busbar_server::config::{BrokerConfig, ConfigError, Durability};
use busbar_servicebus::sas::DEFAULT_KEY_NAME;
use busbar_store::StoreError;
use busbar_store::log::repair;
use clap::{Args, Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

mod entity_cmd;
mod http_client;
mod limit_args;
mod queues_cmd;

/// Exit status for an unusable configuration (bad file, flag or environment value), matching
/// the status clap uses for usage errors.
const EXIT_BAD_CONFIG: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "busbar",
    version,
    about = "A self-hosted message broker that speaks Azure Service Bus's AMQP 1.0 dialect",
    long_about = "A self-hosted message broker that speaks Azure Service Bus's AMQP 1.0 dialect, \
so the official Service Bus SDKs work against it unchanged.\n\n\
Point a client at it with the emulator-style connection string:\n  \
Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker until SIGTERM or Ctrl-C.
    ///
    /// Settings come from, in increasing priority: built-in defaults, the configuration file,
    /// environment variables, command-line flags.
    Serve(Box<ServeArgs>),
    /// Print the message counts of a running broker's queues (active, scheduled, deferred,
    /// dead-letter, transfer, locked), read from its HTTP API.
    Queues(QueuesArgs),
    /// Print the message counts of a running broker's subscriptions, topic by topic (one
    /// row per subscription, named `<topic>/Subscriptions/<name>`), read from its HTTP API.
    Topics(QueuesArgs),
    /// Create, show, update, delete or list queues through the administration API.
    Queue(EntityArgs),
    /// Create, show, update, delete or list topics through the administration API.
    Topic(EntityArgs),
    /// Create, show, update, delete or list a topic's subscriptions.
    Subscription(EntityArgs),
    /// Create, show, update, delete or list a subscription's rules.
    Rule(EntityArgs),
    /// Salvage a damaged data directory (the broker must be stopped).
    ///
    /// Every record that still checks out is kept; each damaged log segment is rewritten
    /// from its valid records and its original kept beside it as `<segment>.damaged`.
    /// Prints what was lost: each damaged range and the messages recognisable in it.
    Repair(RepairArgs),
    /// Print the development CA certificate (PEM) that signs the broker's TLS certificate
    /// when no --tls-cert is given, creating it in the data directory if absent. Trust it
    /// in clients: Python `connection_verify=<file>`, Node `NODE_EXTRA_CA_CERTS=<file>`, or
    /// a system trust store.
    DevCert(DevCertArgs),
}

#[derive(Debug, Clone, Args)]
struct DevCertArgs {
    /// The broker's data directory [default: ./busbar-data].
    #[arg(long, env = "BUSBAR_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
struct RepairArgs {
    /// The broker's data directory.
    #[arg(long, env = "BUSBAR_DATA_DIR", value_name = "DIR")]
    data_dir: PathBuf,
    /// Only report what is damaged; change nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Clone, Args)]
struct QueuesArgs {
    /// Only this queue.
    name: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, Clone, Args)]
struct EntityArgs {
    #[command(subcommand)]
    action: entity_cmd::Action,
    #[command(flatten)]
    api: ApiArgs,
}

/// A shared access key: the broker's root key for `serve`, the signer of requests for the
/// client commands.
#[derive(Debug, Clone, Args)]
struct SasKeyArgs {
    /// Name of the shared access key [default: RootManageSharedAccessKey].
    #[arg(long, env = "BUSBAR_SAS_KEY_NAME", value_name = "NAME")]
    sas_key_name: Option<String>,

    /// Secret of the shared access key. For `serve`, the root key (all rights): without it
    /// and without policies in the config file, the emulator's well-known key SAS_KEY_VALUE
    /// is accepted, and only while every listener is on a loopback address.
    #[arg(
        long,
        env = "BUSBAR_SAS_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    sas_key: Option<String>,
}

/// How a CLI command reaches the broker's HTTP API.
#[derive(Debug, Clone, Args)]
struct ApiArgs {
    /// The broker's HTTP listener (or its AMQP port: both serve HTTP and HTTPS).
    #[arg(
        long,
        global = true,
        env = "BUSBAR_HTTP_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:5300"
    )]
    http: SocketAddr,
    /// Speak HTTPS, trusting the CA certificates in this PEM file (`busbar dev-cert` prints
    /// the development CA); without it, plain HTTP, which the broker serves on loopback only.
    #[arg(long, global = true, env = "BUSBAR_TLS_CA", value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// A key with Listen rights (Manage for changes) signs the request; none is needed on a
    /// loopback broker running the development key.
    #[command(flatten)]
    key: SasKeyArgs,
}

impl ApiArgs {
    /// The broker's HTTP API, with requests signed by the key if one is given.
    fn api(&self) -> anyhow::Result<http_client::Api> {
        let name = self.key.sas_key_name.as_deref().unwrap_or(DEFAULT_KEY_NAME);
        let api = http_client::Api::new(self.http, name, self.key.sas_key.as_deref());
        match &self.tls_ca {
            Some(ca) => api.trusting(ca),
            None => Ok(api),
        }
    }
}

#[derive(Debug, Clone, Args)]
struct ServeArgs {
    /// Configuration file: Microsoft's Service Bus emulator Config.json, read as it is
    /// (UserConfig.Namespaces[0] queues, topics, subscriptions and rules), optionally with a
    /// "Busbar" section: {"Policies": [{"Name", "Key", "Rights": ["Manage", "Send", "Listen"]}],
    /// "MaxMessageSize", "Durability", "AmqpListen", "AmqpsListen", "HttpListen", "TlsCert",
    /// "TlsKey", "AllowPlaintext", "DataDir", "OtlpEndpoint"}.
    #[arg(long, env = "BUSBAR_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Directory for the broker's journal and catalog [default: ./busbar-data].
    #[arg(long, env = "BUSBAR_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Address for AMQP 1.0 connections [default: 127.0.0.1:5672]; TLS (AMQP or HTTPS
    /// inside) and HTTP are recognised and served there too. Use 0.0.0.0:5672 to accept
    /// connections from other hosts (then a SAS key or policies are required, and only TLS
    /// is served unless --allow-plaintext).
    #[arg(long, env = "BUSBAR_AMQP_LISTEN", value_name = "ADDR")]
    amqp_listen: Option<SocketAddr>,

    /// Address for TLS only (AMQP or HTTPS inside), as clients dialling 5671 expect
    /// [default: 127.0.0.1:5671].
    #[arg(long, env = "BUSBAR_AMQPS_LISTEN", value_name = "ADDR")]
    amqps_listen: Option<SocketAddr>,

    /// Address for HTTP and HTTPS (health, API, metrics) [default: 127.0.0.1:5300].
    #[arg(long, env = "BUSBAR_HTTP_LISTEN", value_name = "ADDR")]
    http_listen: Option<SocketAddr>,

    /// The server's TLS certificate chain (PEM), reloaded on SIGHUP. Without it the broker
    /// uses a development CA made in the data directory (see `busbar dev-cert`).
    #[arg(
        long,
        env = "BUSBAR_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM), reloaded with it on SIGHUP.
    #[arg(
        long,
        env = "BUSBAR_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,

    /// Serve unencrypted AMQP and HTTP on non-loopback addresses too (by default only TLS
    /// is served there: SAS tokens are bearer secrets).
    #[arg(long, env = "BUSBAR_ALLOW_PLAINTEXT")]
    allow_plaintext: bool,

    /// Largest message or batch accepted, in bytes [default: 262144].
    #[arg(
        long,
        env = "BUSBAR_MAX_MESSAGE_SIZE",
        value_name = "BYTES",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    max_message_size: Option<u64>,

    #[command(flatten)]
    key: SasKeyArgs,

    /// When a send is acknowledged: "sync" after the write is fsynced, "buffered" once handed
    /// to the OS (faster; a machine crash can lose the last acknowledged messages)
    /// [default: sync].
    #[arg(long, env = "BUSBAR_DURABILITY", value_enum, value_name = "MODE")]
    durability: Option<DurabilityArg>,

    /// Size at which the log starts a new segment file, in MiB; a segment's disk space is
    /// given back once none of its messages is left [default: 64].
    #[arg(
        long,
        env = "BUSBAR_SEGMENT_MIB",
        value_name = "MIB",
        value_parser = clap::value_parser!(u32).range(1..=4096)
    )]
    segment_mib: Option<u32>,

    /// Log filter: a level (error, warn, info, debug, trace) or tracing directives such as
    /// "info,busbar_server=debug". Falls back to RUST_LOG, then "info".
    #[arg(long, env = "BUSBAR_LOG", value_name = "LEVEL")]
    log: Option<String>,

    /// Export traces to this OpenTelemetry collector over OTLP/HTTP (JSON to
    /// <URL>/v1/traces, e.g. http://127.0.0.1:4318): the enqueue, deliver and settle spans
    /// of messages whose application properties carry `traceparent` or `Diagnostic-Id`
    /// [default: off].
    #[arg(long, env = "BUSBAR_OTLP_ENDPOINT", value_name = "URL")]
    otlp_endpoint: Option<String>,

    #[command(flatten)]
    limits: limit_args::LimitArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DurabilityArg {
    Sync,
    Buffered,
}

impl From<DurabilityArg> for Durability {
    fn from(arg: DurabilityArg) -> Self {
        match arg {
            DurabilityArg::Sync => Durability::Sync,
            DurabilityArg::Buffered => Durability::Buffered,
        }
    }
}

/// Builds the broker configuration: the file (if any) on top of defaults, then flags and
/// environment on top, then checks that the resulting SAS setup is safe.
fn build_config(args: &ServeArgs) -> Result<BrokerConfig, ConfigError> {
    let mut config = match &args.config {
        Some(path) => busbar_server::emulator_config::load_file(path)?,
        None => BrokerConfig::default(),
    };
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(address) = args.amqp_listen {
        config.amqp_listen = address;
    }
    if let Some(address) = args.amqps_listen {
        config.amqps_listen = address;
    }
    if let Some(address) = args.http_listen {
        config.http_listen = address;
    }
    if args.tls_cert.is_some() {
        config.tls_cert.clone_from(&args.tls_cert);
        config.tls_key.clone_from(&args.tls_key);
    }
    config.allow_plaintext |= args.allow_plaintext;
    if let Some(size) = args.max_message_size {
        config.max_message_size = size;
    }
    if let Some(durability) = args.durability {
        config.durability = durability.into();
    }
    if let Some(mib) = args.segment_mib {
        config.segment_mib = mib;
    }
    if let Some(endpoint) = &args.otlp_endpoint {
        config.otlp_endpoint = Some(endpoint.clone());
    }
    if let Some(name) = &args.key.sas_key_name {
        config.root_key_name = Some(name.clone());
    }
    if let Some(key) = &args.key.sas_key {
        config.root_key = Some(key.clone());
    }
    args.limits.apply(&mut config.limits);
    // Fail now, with the instructions, rather than after the listeners are up.
    config.effective_policies()?;
    Ok(config)
}

fn init_tracing(directive: Option<&str>) -> anyhow::Result<()> {
    let filter = match directive {
        Some(directive) => EnvFilter::try_new(directive)
            .with_context(|| format!("invalid --log/BUSBAR_LOG filter '{directive}'"))?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    Ok(())
}

/// Completes on Ctrl-C (SIGINT) or, on Unix, SIGTERM.
async fn shutdown_signal() {
    match busbar_server::stop_signal().await {
        busbar_server::StopSignal::CtrlC => tracing::info!("Ctrl-C received, shutting down"),
        busbar_server::StopSignal::Terminate => {
            tracing::info!("SIGTERM received, shutting down")
        }
    }
}

fn log_config(config: &BrokerConfig) {
    let policy_names: Vec<String> = config
        .effective_policies()
        .map(|policies| policies.into_iter().map(|policy| policy.name).collect())
        .unwrap_or_default();
    tracing::info!(
        amqp_listen = %config.amqp_listen,
        amqps_listen = %config.amqps_listen,
        http_listen = %config.http_listen,
        data_dir = %config.data_dir.display(),
        max_message_size = config.max_message_size,
        durability = %config.durability,
        otlp_endpoint = config.otlp_endpoint.as_deref().unwrap_or("off"),
        queues = config.queues.len(),
        topics = config.topics.len(),
        policies = ?policy_names,
        "configuration resolved"
    );
    if let Some(logging) = &config.emulator_logging {
        tracing::info!(
            setting = %logging,
            "UserConfig.Logging is ignored: busbar logs to stderr"
        );
    }
}

/// Runs the broker until `shutdown` completes.
//
/// Binds the listeners and runs the broker until `shutdown`.
async fn run_broker(
    config: BrokerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listeners = busbar_server::Listeners::bind(&config).await?;
    busbar_server::run(config, listeners, shutdown).await?;
    Ok(())
}

async fn entity(kind: entity_cmd::Kind, args: &EntityArgs) -> ExitCode {
    let run = async {
        let api = args.api.api()?;
        entity_cmd::run(&api, kind, &args.action).await
    };
    exit_code(run.await)
}

fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("busbar: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Command::Serve(args) => *args,
        Command::Queues(args) => {
            let run =
                async { queues_cmd::run(&args.api.api()?, args.name.as_deref(), args.json).await };
            return exit_code(run.await);
        }
        Command::Topics(args) => {
            return exit_code(
                async {
                    queues_cmd::run_topics(&args.api.api()?, args.name.as_deref(), args.json).await
                }
                .await,
            );
        }
        Command::Queue(args) => return entity(entity_cmd::Kind::Queue, &args).await,
        Command::Topic(args) => return entity(entity_cmd::Kind::Topic, &args).await,
        Command::Subscription(args) => {
            return entity(entity_cmd::Kind::Subscription, &args).await;
        }
        Command::Rule(args) => return entity(entity_cmd::Kind::Rule, &args).await,
        Command::Repair(args) => return exit_code(repair(&args)),
        Command::DevCert(args) => return exit_code(dev_cert(&args)),
    };

    if let Err(error) = init_tracing(args.log.as_deref()) {
        eprintln!("busbar: {error:#}");
        return ExitCode::from(EXIT_BAD_CONFIG);
    }
    let config = match build_config(&args) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("busbar: configuration error:\n{error}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    log_config(&config);

    match run_broker(config, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Straight to stderr: the log filter may hide errors, this must always show.
            eprintln!("busbar: {error:#}");
            if let Some(busbar_server::RunError::Store(StoreError::Corrupt { .. })) =
                error.downcast_ref()
            {
                eprintln!(
                    "busbar: the data directory is damaged; `busbar repair --data-dir DIR --dry-run` \
                     shows what `busbar repair --data-dir DIR` would salvage and lose"
                );
            }
            ExitCode::FAILURE
        }
    }
}

fn dev_cert(args: &DevCertArgs) -> anyhow::Result<()> {
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(busbar_server::config::DEFAULT_DATA_DIR));
    let certificates = busbar_server::listener::dev_ca::ensure(&data_dir)?;
    let pem = std::fs::read_to_string(&certificates.ca)
        .with_context(|| format!("reading {}", certificates.ca.display()))?;
    print!("{pem}");
    Ok(())
}

fn repair(args: &RepairArgs) -> anyhow::Result<()> {
    let apply = if args.dry_run {
        repair::Apply::No
    } else {
        repair::Apply::Yes
    };
    let report = repair::repair(&args.data_dir, apply)
        .with_context(|| format!("repairing {}", args.data_dir.display()))?;
    print!("{report}");
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn serve_args(argv: &[&str]) -> ServeArgs {
        let mut full = vec!["busbar", "serve"];
        full.extend_from_slice(argv);
        match Cli::try_parse_from(full).unwrap().command {
            Command::Serve(args) => *args,
            other => panic!("parsed as another command: {other:?}"),
        }
    }

    #[test]
    fn queues_command_defaults_to_the_local_http_listener() {
        match Cli::try_parse_from(["busbar", "queues", "orders"])
            .unwrap()
            .command
        {
            Command::Queues(args) => {
                assert_eq!(args.name.as_deref(), Some("orders"));
                assert_eq!(
                    args.api.http,
                    "127.0.0.1:5300".parse::<SocketAddr>().unwrap()
                );
                assert!(!args.json);
            }
            other => panic!("parsed as another command: {other:?}"),
        }
        match Cli::try_parse_from(["busbar", "topics", "--json"])
            .unwrap()
            .command
        {
            Command::Topics(args) => {
                assert_eq!(args.name, None);
                assert!(args.json);
            }
            other => panic!("parsed as another command: {other:?}"),
        }
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_parse() {
        let args = serve_args(&[
            "--data-dir",
            "/tmp/x",
            "--amqp-listen",
            "0.0.0.0:5673",
            "--http-listen",
            "127.0.0.1:8080",
            "--max-message-size",
            "1024",
            "--sas-key-name",
            "admin",
            "--sas-key",
            "secret",
            "--durability",
            "buffered",
            "--log",
            "debug",
        ]);
        let config = build_config(&args).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(config.amqp_listen.to_string(), "0.0.0.0:5673");
        assert_eq!(config.http_listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.max_message_size, 1024);
        assert_eq!(config.durability, Durability::Buffered);
        let policies = config.effective_policies().unwrap();
        assert_eq!(policies.len(), 1);
        assert_eq!(policies[0].name, "admin");
        assert_eq!(policies[0].key, "secret");
        assert_eq!(args.log.as_deref(), Some("debug"));
    }

    #[test]
    fn bad_flag_values_are_usage_errors() {
        for argv in [
            &["--max-message-size", "0"][..],
            &["--amqp-listen", "localhost"],
            &["--durability", "eventually"],
        ] {
            let mut full = vec!["busbar", "serve"];
            full.extend_from_slice(argv);
            assert!(Cli::try_parse_from(full).is_err(), "{argv:?}");
        }
    }

    #[test]
    fn flags_override_the_file() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        write!(
            file,
            r#"{{"UserConfig": {{"Namespaces": [{{"Queues": [{{"Name": "q1"}}]}}]}},
                "Busbar": {{"MaxMessageSize": 4096, "Durability": "Buffered", "DataDir": "/from/file"}}}}"#
        )
        .unwrap();
        let path = file.path().to_str().unwrap();

        let from_file = build_config(&serve_args(&["--config", path])).unwrap();
        assert_eq!(from_file.max_message_size, 4096);
        assert_eq!(from_file.durability, Durability::Buffered);
        assert_eq!(from_file.data_dir, PathBuf::from("/from/file"));
        assert_eq!(from_file.queues.len(), 1);

        let overridden = build_config(&serve_args(&[
            "--config",
            path,
            "--max-message-size",
            "100",
            "--durability",
            "sync",
        ]))
        .unwrap();
        assert_eq!(overridden.max_message_size, 100);
        assert_eq!(overridden.durability, Durability::Sync);
        assert_eq!(overridden.data_dir, PathBuf::from("/from/file"));
    }

    #[test]
    fn exposed_listener_without_key_is_a_config_error() {
        let err = build_config(&serve_args(&["--amqp-listen", "0.0.0.0:5672"])).unwrap_err();
        assert!(matches!(err, ConfigError::InsecureDefaultKey(_)));
        assert!(
            build_config(&serve_args(&[
                "--amqp-listen",
                "0.0.0.0:5672",
                "--sas-key",
                "s3cret"
            ]))
            .is_ok()
        );
    }
}
