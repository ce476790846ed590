//! `shop up`: starts Busbar and every service as child processes of this binary on loopback
//! ports, waits until each is ready, prints the gateway's address, and stops them all on
//! Ctrl-C or SIGTERM (services first, the broker last). Everything lives under the data
//! directory, so starting again on it finds accounts, orders, figures and mails as they were.
//!
//! Ports: the gateway on `--port`, the broker on `--port + 1`, each service on `--port`
//! plus its [`ServiceSpec::port_offset`].

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use tokio::process::{Child, Command};

use crate::common::config::development_connection_string;
use crate::common::http::{SUPERVISOR_PID_ENV, shutdown_signal};

/// How long a process may take to become ready.
const READY_DEADLINE: Duration = Duration::from_secs(120);
/// How long a process may take to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(15);
/// The broker's port relative to `--port`.
const BROKER_PORT_OFFSET: u16 = 1;

#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// Where every service and the broker keep their data.
    #[arg(long, default_value = "./shop-data")]
    pub data_dir: PathBuf,
    /// The gateway's port; the broker and the services take the next few.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// The address the gateway listens on, the only one open beyond loopback when set (for
    /// example `0.0.0.0`); the broker and the other services always stay on 127.0.0.1.
    #[arg(long, default_value = "127.0.0.1")]
    pub public_address: std::net::IpAddr,
}

impl UpArgs {
    /// The address `service` listens on.
    fn listen_ip(&self, service: &ServiceSpec) -> std::net::IpAddr {
        if service.name == GATEWAY {
            self.public_address
        } else {
            std::net::IpAddr::from([127, 0, 0, 1])
        }
    }

    /// Where `service` is reached from this machine: its own address, or loopback when it
    /// listens on every address.
    fn reach(&self, service: &ServiceSpec) -> anyhow::Result<std::net::SocketAddr> {
        let ip = match self.listen_ip(service) {
            ip if ip.is_unspecified() => std::net::IpAddr::from([127, 0, 0, 1]),
            ip => ip,
        };
        Ok(std::net::SocketAddr::new(
            ip,
            offset_port(self.port, service.port_offset)?,
        ))
    }
}

/// The one service open to the public.
const GATEWAY: &str = "gateway";

/// A service `up` starts as `shop service <name> --data-dir <dir>/<name> --listen
/// 127.0.0.1:<port> --broker .. --peer ..` (plus `extra_args`).
#[derive(Debug, Clone, Copy)]
pub struct ServiceSpec {
    pub name: &'static str,
    pub port_offset: u16,
    pub extra_args: &'static [&'static str],
}

/// The services, in start order (a service's dependencies first). Each is told every
/// service's address with `--peer name=URL`.
pub const SERVICES: &[ServiceSpec] = &[
    ServiceSpec {
        name: "auth",
        port_offset: 2,
        extra_args: &[],
    },
    ServiceSpec {
        name: "email",
        port_offset: 3,
        extra_args: &[],
    },
    ServiceSpec {
        name: "orders",
        port_offset: 4,
        extra_args: &[],
    },
    ServiceSpec {
        name: "analytics",
        port_offset: 5,
        extra_args: &[],
    },
    // Last: the public door opens once everything behind it is ready.
    ServiceSpec {
        name: GATEWAY,
        port_offset: 0,
        extra_args: &[],
    },
];

/// A started child and what to call it in messages.
struct Running {
    name: String,
    child: Child,
}

pub async fn up(args: UpArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let secret = internal_secret(&args.data_dir)?;
    let broker_port = offset_port(args.port, BROKER_PORT_OFFSET)?;
    let connection_string = development_connection_string(broker_port);
    let exe = std::env::current_exe().context("finding the shop binary")?;

    let mut running = Vec::new();
    let started = start_all(
        &args,
        &exe,
        &secret,
        broker_port,
        &connection_string,
        &mut running,
    )
    .await;
    if let Err(error) = started {
        stop_all(&mut running).await;
        return Err(error);
    }
    let gateway = SERVICES
        .iter()
        .find(|service| service.name == GATEWAY)
        .context("no gateway among the services")?;
    println!("gateway: http://{}", args.reach(gateway)?);

    let outcome = tokio::select! {
        () = shutdown_signal() => Ok(()),
        (name, status) = first_exit(&mut running) => {
            Err(anyhow::anyhow!("{name} stopped unexpectedly ({status}); stopping the others"))
        }
    };
    stop_all(&mut running).await;
    outcome
}

async fn start_all(
    args: &UpArgs,
    exe: &Path,
    secret: &str,
    broker_port: u16,
    connection_string: &str,
    running: &mut Vec<Running>,
) -> anyhow::Result<()> {
    let mut broker = Command::new(exe);
    broker
        .arg("broker")
        .arg("--data-dir")
        .arg(args.data_dir.join("busbar"))
        .arg("--port")
        .arg(broker_port.to_string());
    running.push(spawn("broker", broker)?);
    wait_ready(
        running.last_mut(),
        &format!("http://127.0.0.1:{broker_port}/health"),
    )
    .await?;

    let peers = SERVICES
        .iter()
        .map(|service| Ok(format!("{}=http://{}", service.name, args.reach(service)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for service in SERVICES {
        let port = offset_port(args.port, service.port_offset)?;
        let listen = std::net::SocketAddr::new(args.listen_ip(service), port);
        let mut command = Command::new(exe);
        command
            .arg("service")
            .arg(service.name)
            .arg("--data-dir")
            .arg(args.data_dir.join(service.name))
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--broker")
            .arg(connection_string)
            .args(peers.iter().flat_map(|peer| ["--peer", peer.as_str()]))
            .args(service.extra_args)
            .env("SHOP_INTERNAL_SECRET", secret);
        running.push(spawn(service.name, command)?);
        wait_ready(
            running.last_mut(),
            &format!("http://{}/ready", args.reach(service)?),
        )
        .await?;
    }
    Ok(())
}

fn offset_port(base: u16, offset: u16) -> anyhow::Result<u16> {
    base.checked_add(offset)
        .with_context(|| format!("--port {base} leaves no room for the services' ports"))
}

fn spawn(name: &str, mut command: Command) -> anyhow::Result<Running> {
    command
        .stdin(Stdio::null())
        .env(SUPERVISOR_PID_ENV, std::process::id().to_string())
        .kill_on_drop(true);
    let child = command
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    Ok(Running {
        name: name.to_owned(),
        child,
    })
}

/// Polls `url` until it answers 200, failing if the process exits first or the deadline
/// passes.
async fn wait_ready(process: Option<&mut Running>, url: &str) -> anyhow::Result<()> {
    let process = process.context("nothing was started")?;
    let http = reqwest::Client::new();
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        if let Some(status) = process.child.try_wait()? {
            anyhow::bail!("{} exited during start ({status})", process.name);
        }
        let answer = http.get(url).timeout(Duration::from_secs(2)).send().await;
        if matches!(&answer, Ok(response) if response.status().is_success()) {
            tracing::info!(process = %process.name, "ready");
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "{} was not ready at {url} within {READY_DEADLINE:?}",
                process.name
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The first child to exit, and how.
async fn first_exit(running: &mut [Running]) -> (String, std::process::ExitStatus) {
    if running.is_empty() {
        return std::future::pending().await;
    }
    let waits = running.iter_mut().map(|process| {
        Box::pin(async move {
            let status = process.child.wait().await;
            (process.name.clone(), status)
        })
    });
    match futures_util::future::select_all(waits).await.0 {
        (name, Ok(status)) => (name, status),
        (name, Err(error)) => {
            tracing::error!(%error, process = %name, "cannot wait for the process");
            std::future::pending().await
        }
    }
}

/// Stops the services (newest first) and then the broker: SIGTERM, then SIGKILL after the
/// grace period.
async fn stop_all(running: &mut Vec<Running>) {
    while let Some(mut process) = running.pop() {
        terminate(&process.child);
        match tokio::time::timeout(STOP_GRACE, process.child.wait()).await {
            Ok(Ok(status)) => tracing::info!(process = %process.name, %status, "stopped"),
            Ok(Err(error)) => tracing::warn!(process = %process.name, %error, "cannot wait"),
            Err(_) => {
                tracing::warn!(process = %process.name, "did not stop in time; killing it");
                let _ = process.child.kill().await;
            }
        }
    }
}

#[cfg(unix)]
fn terminate(child: &Child) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        if let Err(error) = kill(Pid::from_raw(pid), Signal::SIGTERM) {
            tracing::warn!(%error, pid, "cannot send SIGTERM");
        }
    }
}

#[cfg(not(unix))]
fn terminate(_child: &Child) {}

/// The secret the gateway adds to internal requests: made once, kept in the data directory.
fn internal_secret(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("internal-secret");
    match std::fs::read_to_string(&path) {
        Ok(secret) if !secret.trim().is_empty() => Ok(secret.trim().to_owned()),
        _ => {
            let secret = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            std::fs::write(&path, &secret)
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(secret)
        }
    }
}
