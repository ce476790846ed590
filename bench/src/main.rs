//! Load generator for AMQP 1.0 brokers (Busbar, RabbitMQ's AMQP 1.0 plugin, anything that
//! speaks the protocol), built on `busbar-client`.
//!
//! Each run prints one JSON line on stdout with the throughput, latency percentiles and,
//! given `--broker-pid`, the broker's CPU per message and RSS. It only generates load and
//! measures; it never starts, configures or inspects brokers beyond `/proc/<pid>`.

mod connections;
mod entities;
mod fanout;
mod independent;
mod inflight;
mod processor;
mod stats;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::{Args, Parser, Subcommand, ValueEnum};
use hdrhistogram::Histogram;
use serde_json::{Value as Json, json};

use busbar_client::{
    ConnectOptions, Connection, MessageOptions, Outcome, Receiver, ReceiverOptions, Sasl,
    SendFuture, Sender, SettleMode, Transport, encode_message_with, sas_token_for,
};

use inflight::Inflight;
use stats::Snapshot;

#[derive(Parser, Debug)]
#[command(name = "busbar-bench", about = "Load generator for AMQP 1.0 brokers")]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// Broker address, host:port.
    #[arg(long, global = true, default_value = "127.0.0.1:5672")]
    url: String,
    /// Node address to send to and receive from (e.g. `bench`, `/amq/queue/bench`).
    #[arg(long, global = true, default_value = "bench")]
    queue: String,
    #[arg(long, global = true, value_enum, default_value = "anonymous")]
    sasl: SaslArg,
    #[arg(long, global = true, default_value = "guest")]
    user: String,
    #[arg(long, global = true, default_value = "guest")]
    pass: String,
    /// Service Bus SAS policy name; with --sas-key, a put-token precedes every attach.
    #[arg(long, global = true)]
    sas_key_name: Option<String>,
    #[arg(long, global = true)]
    sas_key: Option<String>,
    /// Label for the `broker` field of the result.
    #[arg(long, global = true, default_value = "unknown")]
    broker: String,
    /// Broker process to sample (CPU from /proc/PID/stat, RSS from /proc/PID/status).
    #[arg(long, global = true)]
    broker_pid: Option<u32>,
    /// Message body size in bytes (at least 16: send time and sequence number).
    #[arg(long, global = true, default_value_t = 1024)]
    size: usize,
    /// Send non-persistent messages (no header with durable=true).
    #[arg(long, global = true)]
    transient: bool,
    /// Give up when nothing progresses for this many seconds.
    #[arg(long, global = true, default_value_t = 60)]
    stall_secs: u64,
    /// Connect with TLS, trusting the CA certificates in this PEM file (for Busbar, its
    /// development CA: `busbar dev-cert > ca.pem`). The certificate must be valid for the
    /// host of --url.
    #[arg(long, global = true, value_name = "FILE")]
    tls_ca: Option<std::path::PathBuf>,
    /// Speak AMQP over a WebSocket at this path of --url (Busbar: `/$servicebus/websocket`
    /// on its HTTP listener).
    #[arg(long, global = true)]
    websocket_path: Option<String>,
    /// Which AMQP client drives `send` and `receive`: `busbar` (busbar-client: many frames
    /// per write, settlements in ranges) or `independent` (fe2o3-amqp: one transfer per
    /// write, one disposition per settlement, like the SDKs).
    #[arg(long, global = true, value_enum, default_value = "busbar")]
    client: ClientArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ClientArg {
    Busbar,
    Independent,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SaslArg {
    None,
    Anonymous,
    Plain,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// Unsettled sends with up to WINDOW awaiting their disposition.
    Send {
        #[command(flatten)]
        amount: Amount,
        #[arg(long, default_value_t = 1000)]
        window: usize,
    },
    /// Peek-lock receive with CREDIT, accepting each delivery.
    Receive {
        #[command(flatten)]
        amount: Amount,
        #[arg(long, default_value_t = 1000)]
        credit: u32,
        /// Send this many messages first (not timed).
        #[arg(long, default_value_t = 0)]
        prefill: u64,
        /// Without --count: stop once nothing arrived for this long.
        #[arg(long, default_value_t = 2000)]
        idle_ms: u64,
    },
    /// Producer and consumer together; end-to-end latency from the body's timestamp.
    Mixed {
        /// Seconds of producing.
        #[arg(long, default_value_t = 30.0)]
        duration: f64,
        #[arg(long, default_value_t = 1000)]
        window: usize,
        #[arg(long, default_value_t = 1000)]
        credit: u32,
        /// Messages per second; 0 = as fast as possible.
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
    },
    /// Idle round trip: send one, receive it, accept, repeat.
    Rtt {
        #[arg(long, default_value_t = 1000)]
        count: u64,
        #[arg(long, default_value_t = 10)]
        credit: u32,
    },
    /// Sends COUNT messages with a progress line on stderr.
    Fill {
        #[arg(long, default_value_t = 100_000)]
        count: u64,
        #[arg(long, default_value_t = 1000)]
        window: usize,
    },
    /// The SDK's ServiceBusProcessor (peek-lock, each message completed) over COUNT
    /// messages already in the queue (see `fill`); needs --sas-key-name/--sas-key.
    Processor {
        #[arg(long, default_value_t = 100_000)]
        count: u64,
        /// max_concurrent_calls.
        #[arg(long, default_value_t = 1)]
        concurrency: u32,
        /// prefetch_count.
        #[arg(long, default_value_t = 1000)]
        prefetch: u32,
    },
    /// One publisher on --queue (a topic or exchange), one consumer connection per
    /// subscription; every message reaches every subscription. `msgs` counts deliveries.
    Fanout {
        /// Messages published.
        #[arg(long, default_value_t = 10_000)]
        count: u64,
        /// Number of subscriptions (consumers).
        #[arg(long, default_value_t = 1)]
        subscriptions: u32,
        /// Address of subscription i, `{i}` replaced by 0..N (Busbar:
        /// `topic/Subscriptions/s{i}`, RabbitMQ 3.x: `/amq/queue/q{i}`).
        #[arg(long)]
        subscription_template: String,
        #[arg(long, default_value_t = 1000)]
        window: usize,
        #[arg(long, default_value_t = 1000)]
        credit: u32,
    },
    /// Messages spread over many queues on one connection: for each queue in turn, attach,
    /// send (or receive and accept) PER_QUEUE messages, detach.
    Spread {
        #[arg(long, default_value_t = 10_000)]
        queues: u32,
        #[arg(long, default_value_t = 100)]
        per_queue: u32,
        /// Address of queue i, `{i}` replaced by 0..N (Busbar: `q{i}`, RabbitMQ 3.x:
        /// `/amq/queue/q{i}`).
        #[arg(long, default_value = "q{i}")]
        queue_template: String,
        #[arg(long, value_enum)]
        phase: entities::Phase,
    },
    /// A busy client's round trip (`rtt`) on the idle broker, then with CONNECTIONS idle
    /// connections open, each with its token and a receiver link without credit.
    Connections {
        #[arg(long, default_value_t = 10_000)]
        connections: u32,
        /// Round trips in each of the two measurements.
        #[arg(long, default_value_t = 1000)]
        rtt_count: u64,
    },
    /// Receives and accepts until the queue stays empty for IDLE_MS.
    Drain {
        #[arg(long, default_value_t = 1000)]
        credit: u32,
        #[arg(long, default_value_t = 1000)]
        idle_ms: u64,
    },
}

#[derive(Args, Debug, Clone, Copy)]
struct Amount {
    /// Number of messages.
    #[arg(long)]
    count: Option<u64>,
    /// Seconds to run (when no --count).
    #[arg(long)]
    duration: Option<f64>,
}

impl Amount {
    fn resolve(self, default_count: u64) -> (Option<u64>, Option<Duration>) {
        match (self.count, self.duration) {
            (None, None) => (Some(default_count), None),
            (c, d) => (c, d.map(Duration::from_secs_f64)),
        }
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if cli.common.size < 16 {
        bail!("--size must be at least 16");
    }
    // One OS thread, so the client's cost stays visible and bounded next to the broker's.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(run(cli))?;
    println!("{result}");
    Ok(())
}

async fn run(cli: Cli) -> Result<Json> {
    let c = &cli.common;
    let independent = c.client == ClientArg::Independent;
    if independent
        && !matches!(
            cli.scenario,
            Scenario::Send { .. } | Scenario::Receive { .. }
        )
    {
        bail!("--client independent drives the send and receive scenarios only");
    }
    match cli.scenario {
        Scenario::Send { amount, window } if independent => {
            let (count, duration) = amount.resolve(100_000);
            let mut link = independent::Link::open(c).await?;
            let before = Snapshot::take(c.broker_pid);
            let r = independent::send_loop(c, &mut link, count, duration, window).await?;
            let after = Snapshot::take(c.broker_pid);
            link.close().await;
            let mut out = report(c, "send", r.msgs, r.secs, &r.latency, &before, &after);
            out["window"] = json!(window);
            out["not_accepted"] = json!(r.not_accepted);
            out["latency"] = json!("publish->disposition");
            Ok(out)
        }
        Scenario::Send { amount, window } => {
            let (count, duration) = amount.resolve(100_000);
            let conn = connect(c).await?;
            let sender = open_sender(c, &conn).await?;
            let before = Snapshot::take(c.broker_pid);
            let r = send_loop(c, &sender, count, duration, window, false).await?;
            let after = Snapshot::take(c.broker_pid);
            let _ = conn.close().await;
            let mut out = report(c, "send", r.msgs, r.secs, &r.latency, &before, &after);
            out["window"] = json!(window);
            out["not_accepted"] = json!(r.not_accepted);
            out["latency"] = json!("publish->disposition");
            Ok(out)
        }
        Scenario::Fill { count, window } => {
            let conn = connect(c).await?;
            let sender = open_sender(c, &conn).await?;
            let before = Snapshot::take(c.broker_pid);
            let r = send_loop(c, &sender, Some(count), None, window, true).await?;
            let after = Snapshot::take(c.broker_pid);
            let _ = conn.close().await;
            let mut out = report(c, "fill", r.msgs, r.secs, &r.latency, &before, &after);
            out["window"] = json!(window);
            out["not_accepted"] = json!(r.not_accepted);
            Ok(out)
        }
        Scenario::Receive {
            amount,
            credit,
            prefill,
            idle_ms,
        } => {
            let (count, duration) = match (amount.count, amount.duration) {
                (None, None) => (None, None),
                (cnt, d) => (cnt, d.map(Duration::from_secs_f64)),
            };
            if prefill > 0 {
                let conn = connect(c).await?;
                let sender = open_sender(c, &conn).await?;
                send_loop(c, &sender, Some(prefill), None, 1000, true).await?;
                let _ = conn.close().await;
            }
            let idle = Duration::from_millis(idle_ms);
            let (r, before, after) = if independent {
                let mut link = independent::Link::open(c).await?;
                let before = Snapshot::take(c.broker_pid);
                let r =
                    independent::receive_loop(c, &mut link, count, duration, idle, credit).await?;
                let after = Snapshot::take(c.broker_pid);
                link.close().await;
                (r, before, after)
            } else {
                let conn = connect(c).await?;
                let mut receiver = open_receiver(c, &conn, credit).await?;
                let before = Snapshot::take(c.broker_pid);
                let r = receive_loop(c, &mut receiver, count, duration, idle, None).await?;
                let after = Snapshot::take(c.broker_pid);
                let _ = conn.close().await;
                (r, before, after)
            };
            let mut out = report(c, "receive", r.msgs, r.secs, &r.latency, &before, &after);
            out["credit"] = json!(credit);
            out["latency"] = json!("send->receive (meaningful only when sent during the run)");
            Ok(out)
        }
        Scenario::Drain { credit, idle_ms } => {
            let conn = connect(c).await?;
            let mut receiver = open_receiver(c, &conn, credit).await?;
            let before = Snapshot::take(c.broker_pid);
            let r = receive_loop(
                c,
                &mut receiver,
                None,
                None,
                Duration::from_millis(idle_ms),
                None,
            )
            .await?;
            let after = Snapshot::take(c.broker_pid);
            let _ = conn.close().await;
            Ok(report(
                c, "drain", r.msgs, r.secs, &r.latency, &before, &after,
            ))
        }
        Scenario::Mixed {
            duration,
            window,
            credit,
            rate,
        } => mixed(c, Duration::from_secs_f64(duration), window, credit, rate).await,
        Scenario::Rtt { count, credit } => rtt(c, count, credit).await,
        Scenario::Processor {
            count,
            concurrency,
            prefetch,
        } => processor::run(c, count, concurrency, prefetch).await,
        Scenario::Connections {
            connections,
            rtt_count,
        } => connections::run(c, connections, rtt_count).await,
        Scenario::Spread {
            queues,
            per_queue,
            queue_template,
            phase,
        } => entities::run(c, queues, per_queue, &queue_template, phase).await,
        Scenario::Fanout {
            count,
            subscriptions,
            subscription_template,
            window,
            credit,
        } => {
            fanout::run(
                c,
                count,
                subscriptions,
                &subscription_template,
                window,
                credit,
            )
            .await
        }
    }
}

// ---------------------------------------------------------------------------------------
// Connections and messages
// ---------------------------------------------------------------------------------------

async fn connect(c: &Common) -> Result<Connection> {
    let sasl = match c.sasl {
        SaslArg::None => Sasl::None,
        SaslArg::Anonymous => Sasl::Anonymous,
        SaslArg::Plain => Sasl::Plain {
            user: c.user.clone(),
            pass: c.pass.clone(),
        },
    };
    let tls = match &c.tls_ca {
        Some(ca) => Some(busbar_client::tls_config_trusting(ca).context("--tls-ca")?),
        None => None,
    };
    let opts = ConnectOptions {
        sasl,
        max_frame_size: 65_536,
        tls,
        transport: c
            .websocket_path
            .clone()
            .map_or(Transport::Tcp, |path| Transport::WebSocket { path }),
        ..ConnectOptions::default()
    };
    let conn = Connection::connect(&c.url, opts)
        .await
        .with_context(|| format!("connecting to {}", c.url))?;
    if let (Some(name), Some(key)) = (&c.sas_key_name, &c.sas_key) {
        let host = c.url.rsplit_once(':').map_or(c.url.as_str(), |(h, _)| h);
        let audience = format!("sb://{host}/{}", c.queue.trim_start_matches('/'));
        let token = sas_token_for(&audience, name, key, Duration::from_secs(3600));
        conn.put_token(&audience, &token)
            .await
            .context("$cbs put-token")?;
    }
    Ok(conn)
}

async fn open_sender(c: &Common, conn: &Connection) -> Result<Sender> {
    let session = conn.session().await?;
    session
        .sender(&c.queue)
        .await
        .with_context(|| format!("attaching a sender to {}", c.queue))
}

async fn open_receiver(c: &Common, conn: &Connection, credit: u32) -> Result<Receiver> {
    let session = conn.session().await?;
    session
        .receiver(
            &c.queue,
            ReceiverOptions {
                settle_mode: SettleMode::PeekLock,
                credit,
            },
        )
        .await
        .with_context(|| format!("attaching a receiver to {}", c.queue))
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Body: send time (ns since the epoch) in bytes 0..8, sequence number in 8..16, then
/// padding up to the configured size.
fn make_message(c: &Common, seq: u64, template: &mut [u8]) -> Bytes {
    template[0..8].copy_from_slice(&now_ns().to_be_bytes());
    template[8..16].copy_from_slice(&seq.to_be_bytes());
    encode_message_with(
        template,
        &MessageOptions {
            durable: !c.transient,
            message_id: Some(seq.to_string()),
        },
    )
}

/// Whether the broker accepted a send of busbar-client.
async fn accepted(send: SendFuture<Outcome>) -> Result<bool> {
    Ok(send.await?.is_accepted())
}

fn body_timestamp(body: &[u8]) -> Option<u64> {
    let ts: [u8; 8] = body.get(0..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(ts))
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 1 hour at 3 significant digits; creating it with fixed bounds cannot fail.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap_or_else(|_| {
        Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant figures is valid"))
    })
}

fn record(h: &mut Histogram<u64>, us: u64) {
    h.saturating_record(us.max(1));
}

// ---------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------

struct LoopResult {
    msgs: u64,
    secs: f64,
    latency: Histogram<u64>,
    not_accepted: u64,
}

async fn send_loop(
    c: &Common,
    sender: &Sender,
    count: Option<u64>,
    duration: Option<Duration>,
    window: usize,
    progress: bool,
) -> Result<LoopResult> {
    let mut inflight = Inflight::new(window, Duration::from_secs(c.stall_secs));
    let mut template = vec![0xabu8; c.size];
    let start = Instant::now();
    let mut last_progress = start;
    let mut seq = 0u64;
    loop {
        if count.is_some_and(|n| seq >= n) || duration.is_some_and(|d| start.elapsed() >= d) {
            break;
        }
        inflight.make_room().await?;
        let msg = make_message(c, seq, &mut template);
        inflight.push(Instant::now(), accepted(sender.send(msg)));
        seq += 1;
        if progress && last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            let secs = start.elapsed().as_secs_f64();
            eprint!(
                "\rfill: {seq}/{} sent, {:.0} msgs/s   ",
                count.unwrap_or(0),
                seq as f64 / secs
            );
        }
    }
    inflight.finish().await?;
    if progress {
        eprintln!();
    }
    Ok(LoopResult {
        msgs: seq,
        secs: start.elapsed().as_secs_f64(),
        latency: inflight.latency,
        not_accepted: inflight.not_accepted,
    })
}

/// Receives and accepts until `count` messages, `stop_after` messages (a known backlog),
/// `duration` since the first delivery, or — when no count is set — `idle` without one.
async fn receive_loop(
    c: &Common,
    receiver: &mut Receiver,
    count: Option<u64>,
    duration: Option<Duration>,
    idle: Duration,
    stop_after: Option<u64>,
) -> Result<LoopResult> {
    let stall = Duration::from_secs(c.stall_secs);
    let mut latency = histogram();
    let mut msgs = 0u64;
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    loop {
        if count.is_some_and(|n| msgs >= n) || stop_after.is_some_and(|n| msgs >= n) {
            break;
        }
        if let (Some(f), Some(d)) = (first, duration)
            && f.elapsed() >= d
        {
            break;
        }
        let wait = if count.is_some() { stall } else { idle };
        let d = match tokio::time::timeout(wait, receiver.recv()).await {
            Ok(d) => d?,
            Err(_) if count.is_none() => break,
            Err(_) => bail!("no delivery for {wait:?} after {msgs} messages"),
        };
        let now = Instant::now();
        first.get_or_insert(now);
        last = now;
        if let Some(ts) = d.body().ok().as_deref().and_then(body_timestamp) {
            record(&mut latency, now_ns().saturating_sub(ts) / 1000);
        }
        receiver.accept(&d)?;
        msgs += 1;
    }
    let secs = first.map_or(0.0, |f| last.duration_since(f).as_secs_f64());
    Ok(LoopResult {
        msgs,
        secs,
        latency,
        not_accepted: 0,
    })
}

async fn mixed(
    c: &Common,
    duration: Duration,
    window: usize,
    credit: u32,
    rate: f64,
) -> Result<Json> {
    let stall = Duration::from_secs(c.stall_secs);
    let prod_conn = connect(c).await?;
    let sender = open_sender(c, &prod_conn).await?;
    let cons_conn = connect(c).await?;
    let mut receiver = open_receiver(c, &cons_conn, credit).await?;
    let before = Snapshot::take(c.broker_pid);
    let start = Instant::now();

    let common = c.clone();
    let producer = tokio::spawn(async move {
        let c = &common;
        let mut template = vec![0xabu8; c.size];
        let mut inflight = Inflight::new(window, stall);
        let mut seq = 0u64;
        let pace = (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate));
        while start.elapsed() < duration {
            inflight.make_room().await?;
            if let Some(p) = pace {
                tokio::time::sleep_until((start + p.mul_f64(seq as f64)).into()).await;
            }
            let msg = make_message(c, seq, &mut template);
            inflight.push(Instant::now(), accepted(sender.send(msg)));
            seq += 1;
        }
        let sent_secs = start.elapsed().as_secs_f64();
        inflight.finish().await?;
        let not_accepted = inflight.not_accepted;
        anyhow::Ok((seq, sent_secs, not_accepted, sender))
    });

    // Consume for the producing period, then stop counting; the backlog is drained after.
    let mut latency = histogram();
    let mut consumed = 0u64;
    loop {
        let left = duration.saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        let d = match tokio::time::timeout(left, receiver.recv()).await {
            Ok(d) => d?,
            Err(_) => break,
        };
        if let Some(ts) = d.body().ok().as_deref().and_then(body_timestamp) {
            record(&mut latency, now_ns().saturating_sub(ts) / 1000);
        }
        receiver.accept(&d)?;
        consumed += 1;
    }
    let consumed_secs = start.elapsed().as_secs_f64();
    let after = Snapshot::take(c.broker_pid);
    let (sent, sent_secs, not_accepted, _sender) = producer.await??;
    // Drain what is left so the next run starts from an empty queue (not timed).
    let backlog = sent.saturating_sub(consumed);
    let drained = receive_loop(
        c,
        &mut receiver,
        None,
        None,
        Duration::from_millis(1000),
        Some(backlog),
    )
    .await?;
    let _ = prod_conn.close().await;
    let _ = cons_conn.close().await;

    let mut out = report(
        c,
        "mixed",
        consumed,
        consumed_secs,
        &latency,
        &before,
        &after,
    );
    out["latency"] = json!("end-to-end send->receive");
    out["sent"] = json!(sent);
    out["sent_per_sec"] = json!(round1(sent as f64 / sent_secs));
    out["rate_target"] = json!(rate);
    out["window"] = json!(window);
    out["credit"] = json!(credit);
    out["not_accepted"] = json!(not_accepted);
    out["drained_after"] = json!(drained.msgs);
    Ok(out)
}

async fn rtt(c: &Common, count: u64, credit: u32) -> Result<Json> {
    let stall = Duration::from_secs(c.stall_secs);
    let prod_conn = connect(c).await?;
    let sender = open_sender(c, &prod_conn).await?;
    let cons_conn = connect(c).await?;
    let mut receiver = open_receiver(c, &cons_conn, credit).await?;
    let mut template = vec![0xabu8; c.size];
    let mut round_trip = histogram();
    let mut confirm = histogram();
    let mut not_accepted = 0u64;
    let before = Snapshot::take(c.broker_pid);
    let start = Instant::now();
    for seq in 0..count {
        let msg = make_message(c, seq, &mut template);
        let t0 = Instant::now();
        let send = async {
            let o = sender.send(msg).await;
            (o, t0.elapsed())
        };
        let recv = async {
            let d = receiver.recv().await;
            (d, t0.elapsed())
        };
        let ((outcome, confirm_t), (delivery, rtt_t)) =
            tokio::time::timeout(stall, async { tokio::join!(send, recv) })
                .await
                .context("round trip stalled")?;
        if !outcome?.is_accepted() {
            not_accepted += 1;
        }
        let d = delivery?;
        receiver.accept(&d)?;
        record(&mut round_trip, rtt_t.as_micros() as u64);
        record(&mut confirm, confirm_t.as_micros() as u64);
    }
    let secs = start.elapsed().as_secs_f64();
    let after = Snapshot::take(c.broker_pid);
    let _ = prod_conn.close().await;
    let _ = cons_conn.close().await;
    let mut out = report(c, "rtt", count, secs, &round_trip, &before, &after);
    out["latency"] = json!("send->receive round trip");
    out["confirm_p50_us"] = json!(confirm.value_at_quantile(0.5));
    out["confirm_p99_us"] = json!(confirm.value_at_quantile(0.99));
    out["not_accepted"] = json!(not_accepted);
    out["credit"] = json!(credit);
    Ok(out)
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn report(
    c: &Common,
    scenario: &str,
    msgs: u64,
    secs: f64,
    latency: &Histogram<u64>,
    before: &Snapshot,
    after: &Snapshot,
) -> Json {
    let pct = |q: f64| (!latency.is_empty()).then(|| latency.value_at_quantile(q));
    let d = stats::Delta::between(before, after);
    let per_msg = |us: Option<f64>| us.and_then(|u| (msgs > 0).then(|| round1(u / msgs as f64)));
    json!({
        "scenario": scenario,
        "broker": c.broker,
        "queue": c.queue,
        "size": c.size,
        "msgs": msgs,
        "secs": (secs * 1000.0).round() / 1000.0,
        "msgs_per_sec": if secs > 0.0 { round1(msgs as f64 / secs) } else { 0.0 },
        "mb_per_sec": if secs > 0.0 { round1(msgs as f64 * c.size as f64 / secs / 1e6) } else { 0.0 },
        "p50_us": pct(0.5),
        "p90_us": pct(0.9),
        "p99_us": pct(0.99),
        "max_us": (!latency.is_empty()).then(|| latency.max()),
        "broker_cpu_us_per_msg": per_msg(d.broker_cpu_us),
        "broker_rss_mib": after.broker_rss_kib.map(|k| round1(k as f64 / 1024.0)),
        "client_cpu_us_per_msg": per_msg(d.client_cpu_us),
        "other_cores": d.other_cores.map(|x| (x * 100.0).round() / 100.0),
        "steal_cores": d.steal_cores.map(|x| (x * 100.0).round() / 100.0),
        "client": match c.client {
            ClientArg::Busbar => "busbar",
            ClientArg::Independent => "independent",
        },
    })
}
