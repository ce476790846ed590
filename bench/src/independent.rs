//! `--client independent`: the `send` and `receive` scenarios driven by fe2o3-amqp, a public
//! AMQP 1.0 crate that behaves like the clients in the field (the Service Bus SDKs, rhea,
//! Qpid Proton): every transfer is its own write, and every accepted delivery its own
//! disposition frame. `busbar-client` batches both, so the broker sees far fewer frames per
//! message from it; this mode measures what an unbatched client costs the broker.
//!
//! Transfers go out with fe2o3's `send_batchable` (the only way it keeps several in flight);
//! the flag is a hint a broker may use to delay dispositions. Busbar ignores it, RabbitMQ
//! 3.x too.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use fe2o3_amqp::connection::ConnectionHandle;
use fe2o3_amqp::link::delivery::DeliveryFut;
use fe2o3_amqp::link::{SendError, receiver::CreditMode};
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::definitions::{ReceiverSettleMode, SenderSettleMode};
use fe2o3_amqp::types::messaging::{Data, Header, Message, Outcome, Properties};
use fe2o3_amqp::types::primitives::Binary;
use fe2o3_amqp::{Connection, Receiver, Sender, Session};
use fe2o3_amqp_cbs::client::CbsClient;
use fe2o3_amqp_cbs::token::CbsToken;

use crate::inflight::Inflight;
use crate::{Common, LoopResult, SaslArg, body_timestamp, histogram, now_ns, record};

/// One connection with one session, as the SDKs open them.
pub struct Link {
    connection: ConnectionHandle<()>,
    session: SessionHandle<()>,
}

impl Link {
    pub async fn open(c: &Common) -> Result<Self> {
        if c.tls_ca.is_some() || c.websocket_path.is_some() {
            bail!("--client independent speaks plain TCP only");
        }
        let stream = tokio::net::TcpStream::connect(&c.url)
            .await
            .with_context(|| format!("connecting to {}", c.url))?;
        stream.set_nodelay(true)?;
        let host = host_of(&c.url);
        let mut builder = Connection::builder()
            .container_id(format!("busbar-bench-independent-{}", std::process::id()))
            .hostname(host)
            .max_frame_size(65_536u32);
        builder = match c.sasl {
            SaslArg::None => builder,
            SaslArg::Anonymous => builder.sasl_profile(SaslProfile::Anonymous),
            SaslArg::Plain => builder.sasl_profile(SaslProfile::Plain {
                username: c.user.clone(),
                password: c.pass.clone(),
            }),
        };
        let mut connection = builder
            .open_with_stream(stream)
            .await
            .context("opening the AMQP connection")?;
        let mut session = Session::builder()
            .incoming_window(65_536)
            .outgoing_window(65_536)
            .begin(&mut connection)
            .await
            .context("beginning a session")?;
        if let (Some(name), Some(key)) = (&c.sas_key_name, &c.sas_key) {
            let audience = format!("sb://{host}/{}", c.queue.trim_start_matches('/'));
            let token =
                busbar_client::sas_token_for(&audience, name, key, Duration::from_secs(3600));
            let mut cbs = CbsClient::attach(&mut session)
                .await
                .context("attaching to $cbs")?;
            cbs.put_token(
                audience.as_str(),
                CbsToken::new(token, "servicebus.windows.net:sastoken", None),
            )
            .await
            .context("$cbs put-token")?;
            let _ = cbs.close().await;
        }
        Ok(Link {
            connection,
            session,
        })
    }

    pub async fn close(mut self) {
        let _ = self.session.end().await;
        let _ = self.connection.close().await;
    }
}

fn host_of(url: &str) -> &str {
    url.rsplit_once(':').map_or(url, |(h, _)| h)
}

/// Unsettled sends, at most `window` awaiting their disposition, one transfer per write.
pub async fn send_loop(
    c: &Common,
    link: &mut Link,
    count: Option<u64>,
    duration: Option<Duration>,
    window: usize,
) -> Result<LoopResult> {
    let mut inflight = Inflight::new(window, Duration::from_secs(c.stall_secs));
    let mut sender = Sender::builder()
        .name("busbar-bench-sender")
        .target(c.queue.as_str())
        .sender_settle_mode(SenderSettleMode::Unsettled)
        .attach(&mut link.session)
        .await
        .with_context(|| format!("attaching a sender to {}", c.queue))?;
    let mut body = vec![0xabu8; c.size];
    let start = Instant::now();
    let mut seq = 0u64;
    loop {
        if count.is_some_and(|n| seq >= n) || duration.is_some_and(|d| start.elapsed() >= d) {
            break;
        }
        inflight.make_room().await?;
        body[0..8].copy_from_slice(&now_ns().to_be_bytes());
        body[8..16].copy_from_slice(&seq.to_be_bytes());
        let message = Message::builder()
            .header(Header {
                durable: !c.transient,
                ..Header::default()
            })
            .properties(Properties::builder().message_id(seq.to_string()).build())
            .data(Binary::from(body.clone()))
            .build();
        let send = sender.send_batchable(message).await.context("sending")?;
        inflight.push(Instant::now(), accepted(send));
        seq += 1;
    }
    inflight.finish().await?;
    let secs = start.elapsed().as_secs_f64();
    let _ = sender.close().await;
    Ok(LoopResult {
        msgs: seq,
        secs,
        latency: inflight.latency,
        not_accepted: inflight.not_accepted,
    })
}

async fn accepted(send: DeliveryFut<Result<Outcome, SendError>>) -> Result<bool> {
    Ok(matches!(send.await, Ok(Outcome::Accepted(_))))
}

/// Peek-lock receive (settle-first), credit refilled by fe2o3 after half is used, each
/// delivery accepted with a disposition of its own. Stops like `crate::receive_loop`.
pub async fn receive_loop(
    c: &Common,
    link: &mut Link,
    count: Option<u64>,
    duration: Option<Duration>,
    idle: Duration,
    credit: u32,
) -> Result<LoopResult> {
    let stall = Duration::from_secs(c.stall_secs);
    let mut receiver = Receiver::builder()
        .name("busbar-bench-receiver")
        .source(c.queue.as_str())
        .sender_settle_mode(SenderSettleMode::Unsettled)
        .receiver_settle_mode(ReceiverSettleMode::First)
        .credit_mode(CreditMode::Auto(credit))
        .attach(&mut link.session)
        .await
        .with_context(|| format!("attaching a receiver to {}", c.queue))?;
    let mut latency = histogram();
    let mut msgs = 0u64;
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    loop {
        if count.is_some_and(|n| msgs >= n) {
            break;
        }
        if let (Some(f), Some(d)) = (first, duration)
            && f.elapsed() >= d
        {
            break;
        }
        let wait = if count.is_some() { stall } else { idle };
        let delivery = match tokio::time::timeout(wait, receiver.recv::<Data>()).await {
            Ok(d) => d.context("receiving")?,
            Err(_) if count.is_none() => break,
            Err(_) => bail!("no delivery for {wait:?} after {msgs} messages"),
        };
        let now = Instant::now();
        first.get_or_insert(now);
        last = now;
        if let Some(ts) = body_timestamp(&delivery.body().0) {
            record(&mut latency, now_ns().saturating_sub(ts) / 1000);
        }
        receiver.accept(&delivery).await.context("accepting")?;
        msgs += 1;
    }
    let secs = first.map_or(0.0, |f| last.duration_since(f).as_secs_f64());
    let _ = receiver.close().await;
    Ok(LoopResult {
        msgs,
        secs,
        latency,
        not_accepted: 0,
    })
}
