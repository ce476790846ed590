//! A lean async AMQP 1.0 client on tokio, for Busbar, Azure Service Bus and other AMQP 1.0
//! brokers, and on it a Service Bus SDK ([`ServiceBusClient`] and what it makes, in the
//! [`servicebus`] module, re-exported here).
//!
//! ```no_run
//! use std::time::Duration;
//! use busbar_client::{
//!     ServiceBusClient, ServiceBusClientOptions, ServiceBusMessage, ServiceBusReceiverOptions,
//! };
//!
//! # async fn run() -> Result<(), busbar_client::ServiceBusError> {
//! let client = ServiceBusClient::from_connection_string(
//!     "Endpoint=sb://localhost:5672;SharedAccessKeyName=RootManageSharedAccessKey;\
//!      SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true",
//!     ServiceBusClientOptions::default(),
//! )?;
//! client.create_sender("orders").send_message(ServiceBusMessage::new("hello")).await?;
//! let receiver = client.create_receiver("orders", ServiceBusReceiverOptions::default());
//! for message in receiver.receive_messages(10, Some(Duration::from_secs(5))).await? {
//!     receiver.complete_message(&message).await?;
//! }
//! # Ok(()) }
//! ```
//!
//! The low-level layer underneath:
//! [`Connection::connect`] does the SASL and `open` handshake and then spawns one task that
//! owns the socket; every handle ([`Session`], [`Sender`], [`Receiver`]) talks to that task
//! through a channel. Sends are pipelined: [`Sender::send`] queues the transfer at once and
//! returns a future for the peer's outcome, so many can be in flight, bounded by link credit
//! and the peer's session window. Receivers top their credit up as the application consumes.
//! Service Bus extras: [`Connection::put_token`] (the `$cbs` exchange) and [`sas_token`].
//! The bytes go over TCP or TLS ([`ConnectOptions::tls`]), directly or inside a WebSocket
//! ([`Transport::WebSocket`]).
//!
//! This crate uses `busbar-amqp` only for encoding and decoding; it must not use that crate's
//! broker-side engine, and it knows nothing of the broker's storage or configuration.

#![warn(missing_docs)]

mod driver;
mod error;
pub mod http;
mod message;
mod request_response;
mod sas;
pub mod servicebus;
mod tls;
mod websocket;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use busbar_amqp::frame::{Frame, FrameBody, FrameDecoder, ProtocolHeader, encode_frame};
use busbar_amqp::performative::{
    DeliveryState, ErrorCondition, Open, Performative, ReceiverSettleMode, Role, SaslCode,
    SaslFrame, SenderSettleMode,
};
use busbar_amqp::{Symbol, Value};

use driver::{Attached, Command, Driver, LinkSpec, Negotiated, Shared, TransferReply};
pub(crate) use driver::{Confirmation, ConfirmationSink};
use request_response::{RequestResponseLink, Unanswered};

pub use error::{Error, RemoteError, Result};
pub use message::{MessageOptions, encode_message, encode_message_with, message_body};
pub use sas::{sas_token, sas_token_for};
pub use servicebus::*;
pub use tls::{tls_config_public_roots, tls_config_trusting};

/// AMQP values, for application properties and the low-level layer.
pub use busbar_amqp::{Symbol as AmqpSymbol, Timestamp as AmqpTimestamp, Value as AmqpValue};

/// SASL mechanism used before the AMQP layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sasl {
    /// No SASL layer at all: straight to the AMQP header.
    None,
    /// SASL ANONYMOUS (Service Bus and Busbar then expect a `$cbs` token).
    Anonymous,
    /// SASL PLAIN with a user name (a policy name for Busbar) and password (its key).
    Plain {
        /// The authentication identity.
        user: String,
        /// The password.
        pass: String,
    },
}

/// How the AMQP bytes travel to the broker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Transport {
    /// AMQP straight on the connection (TCP, or TLS with [`ConnectOptions::tls`]).
    #[default]
    Tcp,
    /// AMQP inside a WebSocket (`ws://<address><path>`, or `wss://` with
    /// [`ConnectOptions::tls`]; subprotocol `AMQPWSB10`), for networks that pass only
    /// HTTP(S); Service Bus and Busbar serve it at [`SERVICE_BUS_WEBSOCKET_PATH`] (Busbar on
    /// every listener).
    WebSocket {
        /// The HTTP path of the upgrade request.
        path: String,
    },
}

/// Where Service Bus and Busbar serve AMQP over WebSockets.
pub const SERVICE_BUS_WEBSOCKET_PATH: &str = "/$servicebus/websocket";

/// Connection parameters. `Default` gives TCP, SASL ANONYMOUS, a random container-id,
/// 1 MiB frames, no idle timeout and a 30 s handshake limit.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The SASL mechanism to use.
    pub sasl: Sasl,
    /// `open.hostname` and `sasl-init.hostname`; the host part of the address when `None`.
    pub hostname: Option<String>,
    /// A random UUID when `None`.
    pub container_id: Option<String>,
    /// The largest frame we accept.
    pub max_frame_size: u32,
    /// Announced in `open`; the connection fails when the peer is silent for twice as long.
    pub idle_timeout: Option<Duration>,
    /// Limit for TCP connect (and WebSocket upgrade) plus the SASL and `open` exchange.
    pub connect_timeout: Duration,
    /// Speak TLS with this configuration (see [`tls_config_trusting`]); the server's
    /// certificate must be valid for `hostname` (or the address's host).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// TCP or WebSocket.
    pub transport: Transport,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            sasl: Sasl::Anonymous,
            hostname: None,
            container_id: None,
            max_frame_size: 1 << 20,
            idle_timeout: None,
            connect_timeout: Duration::from_secs(30),
            tls: None,
            transport: Transport::Tcp,
        }
    }
}

/// The outcome the peer gave an unsettled send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The peer took the message.
    Accepted,
    /// The peer refused the message, with its reason.
    Rejected(Option<RemoteError>),
    /// The peer gave the message up without processing it.
    Released,
    /// The peer gave the message back, possibly changed.
    Modified {
        /// Count the attempt as failed.
        delivery_failed: bool,
        /// Do not deliver it to this link again.
        undeliverable_here: bool,
    },
    /// A state this client does not interpret (e.g. transactional).
    Other,
}

impl Outcome {
    fn from_state(state: &DeliveryState) -> Self {
        match state {
            DeliveryState::Accepted => Outcome::Accepted,
            DeliveryState::Rejected { error } => {
                Outcome::Rejected(RemoteError::from_opt(error.as_ref()))
            }
            DeliveryState::Released => Outcome::Released,
            DeliveryState::Modified {
                delivery_failed,
                undeliverable_here,
                ..
            } => Outcome::Modified {
                delivery_failed: delivery_failed.unwrap_or(false),
                undeliverable_here: undeliverable_here.unwrap_or(false),
            },
            DeliveryState::Received { .. } | DeliveryState::Other(_) => Outcome::Other,
        }
    }

    /// Whether the peer accepted.
    pub fn is_accepted(&self) -> bool {
        *self == Outcome::Accepted
    }
}

/// A message received on a [`Receiver`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The encoded message (all sections), reassembled from every transfer frame.
    pub payload: Bytes,
    /// The tag the sender gave the delivery (Service Bus: the lock token).
    pub delivery_tag: Bytes,
    /// Session-scoped id used to settle it.
    pub delivery_id: u32,
    /// Sent pre-settled (receive-and-delete); settling it again is an error.
    pub settled: bool,
    /// The message-format of the first transfer (0 for a plain AMQP message).
    pub message_format: u32,
}

impl Delivery {
    /// The message body: its `data` sections joined, or an `amqp-value` binary/string.
    pub fn body(&self) -> Result<Bytes> {
        message_body(&self.payload)
    }
}

/// How a receiver settles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SettleMode {
    /// snd-settle-mode unsettled, rcv-settle-mode first: the application settles each
    /// delivery with accept/release/reject/modify.
    #[default]
    PeekLock,
    /// snd-settle-mode unsettled, rcv-settle-mode second: settle with
    /// [`Receiver::accept_confirmed`], which waits for the peer to settle, so the
    /// application learns whether (for Busbar: that durably) the outcome took effect.
    PeekLockConfirmed,
    /// snd-settle-mode settled: deliveries arrive settled and are gone from the broker.
    ReceiveAndDelete,
}

/// Link-level choices beyond the address: the link's name, the receiver's target
/// address, a source filter set and attach properties (maps with symbol keys).
#[derive(Debug, Clone, Default)]
pub struct LinkOptions {
    /// A random name when `None`.
    pub name: Option<String>,
    /// Receivers: the target address (the link name when `None`).
    pub target: Option<String>,
    /// The source's filter set (a map with symbol keys), e.g. a session filter.
    pub filter: Option<Value>,
    /// The attach's properties (a map with symbol keys).
    pub properties: Option<Value>,
}

#[derive(Debug, Clone)]
/// How a receiver link settles and how much credit it keeps outstanding.
pub struct ReceiverOptions {
    /// Peek-lock (optionally confirmed) or receive-and-delete.
    pub settle_mode: SettleMode,
    /// Link credit kept outstanding; topped up once half of it has been consumed. 0 means
    /// no automatic credit (use [`Receiver::add_credit`]).
    pub credit: u32,
}

impl Default for ReceiverOptions {
    fn default() -> Self {
        ReceiverOptions {
            settle_mode: SettleMode::PeekLock,
            credit: 100,
        }
    }
}

/// Channel to the connection task plus its terminal error.
#[derive(Clone)]
struct Handle {
    tx: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
}

impl Handle {
    fn send(&self, cmd: Command) -> Result<()> {
        self.tx.send(cmd).map_err(|_| self.shared.terminal())
    }

    /// Sends a command carrying `reply` and awaits the answer.
    async fn request<T>(&self, make: impl FnOnce(driver::Reply<T>) -> Command) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        self.send(make(reply))?;
        match rx.await {
            Ok(r) => r,
            Err(_) => Err(self.shared.terminal()),
        }
    }
}

struct ConnInner {
    handle: Handle,
    cbs: tokio::sync::Mutex<Option<Arc<RequestResponseLink>>>,
    remote_max_frame_size: u32,
}

/// An open AMQP connection. Cheap to clone; the connection closes when `close` is called
/// or every handle (connection, sessions, links) is dropped.
///
/// ```no_run
/// use busbar_client::{ConnectOptions, Connection, ReceiverOptions, encode_message, sas_token};
///
/// # async fn run() -> busbar_client::Result<()> {
/// let connection = Connection::connect("localhost:5672", ConnectOptions::default()).await?;
/// let expiry = 4_000_000_000; // seconds since 1970
/// let token = sas_token("sb://localhost/q", "RootManageSharedAccessKey", "SAS_KEY_VALUE", expiry);
/// connection.put_token("sb://localhost/q", &token).await?;
/// let session = connection.session().await?;
/// let sender = session.sender("q").await?;
/// assert!(sender.send(encode_message(b"hello")).await?.is_accepted());
/// let mut receiver = session.receiver("q", ReceiverOptions::default()).await?;
/// let delivery = receiver.recv().await?;
/// receiver.accept(&delivery)?;
/// connection.close().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Connection {
    inner: Arc<ConnInner>,
}

impl Connection {
    /// Connects to `addr` (`host:port`), runs SASL and the `open` exchange, and spawns the
    /// connection task on the current tokio runtime.
    pub async fn connect(addr: &str, opts: ConnectOptions) -> Result<Connection> {
        let limit = opts.connect_timeout;
        match tokio::time::timeout(limit, Self::handshake(addr, opts)).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout),
        }
    }

    async fn handshake(addr: &str, opts: ConnectOptions) -> Result<Connection> {
        match (&opts.transport, &opts.tls) {
            (Transport::Tcp, None) => {
                let mut stream = tcp(addr).await?;
                let (inbuf, neg) = Self::open_amqp(&mut stream, addr, &opts).await?;
                Ok(Self::start(stream.into_split(), inbuf, neg))
            }
            (Transport::Tcp, Some(tls)) => {
                let mut stream = tls_connect(addr, &opts, tls).await?;
                let (inbuf, neg) = Self::open_amqp(&mut stream, addr, &opts).await?;
                Ok(Self::start(tokio::io::split(stream), inbuf, neg))
            }
            (Transport::WebSocket { path }, None) => {
                let mut stream = websocket::upgrade(tcp(addr).await?, addr, path, false).await?;
                let (inbuf, neg) = Self::open_amqp(&mut stream, addr, &opts).await?;
                Ok(Self::start(tokio::io::split(stream), inbuf, neg))
            }
            (Transport::WebSocket { path }, Some(tls)) => {
                let stream = tls_connect(addr, &opts, tls).await?;
                let mut stream = websocket::upgrade(stream, addr, path, true).await?;
                let (inbuf, neg) = Self::open_amqp(&mut stream, addr, &opts).await?;
                Ok(Self::start(tokio::io::split(stream), inbuf, neg))
            }
        }
    }

    /// SASL and the `open` exchange on `stream`; the input already read past the peer's
    /// `open`, and what was negotiated.
    async fn open_amqp(
        stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
        addr: &str,
        opts: &ConnectOptions,
    ) -> Result<(BytesMut, Negotiated)> {
        let hostname = hostname_of(addr, opts);
        let mut inbuf = BytesMut::with_capacity(64 * 1024);
        let mut decoder = FrameDecoder::default();

        if opts.sasl != Sasl::None {
            send(stream, &ProtocolHeader::Sasl.bytes()).await?;
            expect_header(stream, &mut inbuf, ProtocolHeader::Sasl).await?;
            let init = loop {
                match read_frame(stream, &mut inbuf, &mut decoder).await?.body {
                    FrameBody::Sasl(SaslFrame::Mechanisms { mechanisms }) => {
                        break sasl_init(&opts.sasl, &mechanisms, &hostname)?;
                    }
                    FrameBody::Empty => continue,
                    _ => return Err(Error::Protocol("expected sasl-mechanisms".into())),
                }
            };
            let mut out = BytesMut::new();
            encode_frame(&Frame::sasl(init), &mut out);
            send(stream, &out).await?;
            match read_frame(stream, &mut inbuf, &mut decoder).await?.body {
                FrameBody::Sasl(SaslFrame::Outcome {
                    code: SaslCode::Ok, ..
                }) => {}
                FrameBody::Sasl(SaslFrame::Outcome { code, .. }) => return Err(Error::Sasl(code)),
                FrameBody::Sasl(SaslFrame::Challenge { .. }) => {
                    return Err(Error::Protocol("unexpected sasl-challenge".into()));
                }
                _ => return Err(Error::Protocol("expected sasl-outcome".into())),
            }
        }

        let open = Open {
            container_id: opts
                .container_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            hostname: Some(hostname),
            max_frame_size: Some(opts.max_frame_size),
            channel_max: Some(u16::MAX),
            idle_time_out: opts
                .idle_timeout
                .map(|d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX)),
            ..Open::default()
        };
        let mut out = BytesMut::new();
        out.extend_from_slice(&ProtocolHeader::Amqp.bytes());
        encode_frame(&Frame::amqp(0, open), &mut out);
        send(stream, &out).await?;
        expect_header(stream, &mut inbuf, ProtocolHeader::Amqp).await?;
        decoder.set_max_frame_size(opts.max_frame_size);
        let remote_open = loop {
            let frame = read_frame(stream, &mut inbuf, &mut decoder).await?;
            match frame.body {
                FrameBody::Empty => continue,
                FrameBody::Amqp {
                    performative: Performative::Open(o),
                    ..
                } => break o,
                FrameBody::Amqp {
                    performative: Performative::Close(c),
                    ..
                } => {
                    return Err(Error::ConnectionClosed(RemoteError::from_opt(
                        c.error.as_ref(),
                    )));
                }
                _ => return Err(Error::Protocol("expected open".into())),
            }
        };
        let remote_max_frame_size = remote_open.max_frame_size.unwrap_or(u32::MAX).max(512);
        let neg = Negotiated {
            remote_max_frame_size,
            remote_idle_timeout: remote_open
                .idle_time_out
                .filter(|&ms| ms > 0)
                .map(|ms| Duration::from_millis(ms.into())),
            local_idle_timeout: opts.idle_timeout.filter(|d| !d.is_zero()),
            local_max_frame_size: opts.max_frame_size,
            // Ours is u16::MAX: the peer's binds (a channel above it is a framing error).
            channel_max: remote_open.channel_max.unwrap_or(u16::MAX),
        };
        Ok((inbuf, neg))
    }

    /// Spawns the connection task on the halves of the opened stream.
    fn start<R, W>(halves: (R, W), inbuf: BytesMut, neg: Negotiated) -> Connection
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let remote_max_frame_size = neg.remote_max_frame_size;
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::default());
        tokio::spawn(Driver::new(halves, inbuf, rx, shared.clone(), neg).run());
        Connection {
            inner: Arc::new(ConnInner {
                handle: Handle { tx, shared },
                cbs: tokio::sync::Mutex::new(None),
                remote_max_frame_size,
            }),
        }
    }

    /// Whether the connection is over (closed, failed or dropped by the peer).
    pub fn is_closed(&self) -> bool {
        self.inner.handle.tx.is_closed()
    }

    /// The peer's max-frame-size (transfers larger than this are split).
    pub fn remote_max_frame_size(&self) -> u32 {
        self.inner.remote_max_frame_size
    }

    /// Begins a new session.
    pub async fn session(&self) -> Result<Session> {
        let handle = self.inner.handle.clone();
        let channel = handle.request(|reply| Command::Begin { reply }).await?;
        Ok(Session { handle, channel })
    }

    /// Performs the Service Bus `$cbs` put-token exchange for `audience` (e.g.
    /// `sb://localhost/q1`) and checks for status 200 or 202. The `$cbs` link pair is
    /// attached on first use, on a session of its own, and reused afterwards.
    pub async fn put_token(&self, audience: &str, token: &str) -> Result<()> {
        const LIMIT: Duration = Duration::from_secs(30);
        let cbs = {
            let mut guard = self.inner.cbs.lock().await;
            match guard.as_ref() {
                Some(link) if !link.is_closed() => link.clone(),
                _ => {
                    let link = Arc::new(
                        RequestResponseLink::open(self, "$cbs", Some("$cbs"), "cbs").await?,
                    );
                    *guard = Some(link.clone());
                    link
                }
            }
        };
        let (properties, body) = message::put_token_request(audience, token);
        match cbs.request(properties, &body, LIMIT).await {
            Ok(answer) => message::check_cbs_status(&answer),
            Err(Unanswered::Refused(outcome)) => Err(Error::PutToken {
                status: 0,
                description: match outcome {
                    Outcome::Rejected(Some(e)) => e.to_string(),
                    _ => String::new(),
                },
            }),
            Err(Unanswered::Failed(error)) => Err(error),
        }
    }

    /// Closes the connection and waits for the peer's close.
    pub async fn close(&self) -> Result<()> {
        self.inner
            .handle
            .request(|reply| Command::Close { reply })
            .await
    }
}

/// An AMQP session. Cloning shares it; it ends with [`Session::end`] or with the
/// connection.
#[derive(Clone)]
pub struct Session {
    handle: Handle,
    channel: u16,
}

impl Session {
    /// Attaches a sender link to `address` (unsettled sends, receiver settles first).
    pub async fn sender(&self, address: &str) -> Result<Sender> {
        self.sender_with(address, LinkOptions::default()).await
    }

    /// [`Session::sender`] with a chosen link name and attach properties.
    pub async fn sender_with(&self, address: &str, link: LinkOptions) -> Result<Sender> {
        let name = link
            .name
            .unwrap_or_else(|| format!("sender-{}", uuid::Uuid::new_v4()));
        let spec = LinkSpec {
            source: Some(name.clone()),
            name,
            role: Role::Sender,
            target: Some(address.to_owned()),
            snd_settle_mode: SenderSettleMode::Unsettled,
            rcv_settle_mode: ReceiverSettleMode::First,
            initial_credit: 0,
            filter: link.filter,
            properties: link.properties,
        };
        let attached = self
            .handle
            .request(|reply| Command::Attach {
                channel: self.channel,
                spec,
                deliveries: None,
                reply,
            })
            .await?;
        Ok(Sender {
            link: LinkHandle::new(self, &attached),
            attached,
        })
    }

    /// Attaches a receiver link from `address`.
    pub async fn receiver(&self, address: &str, opts: ReceiverOptions) -> Result<Receiver> {
        self.receiver_with(address, opts, LinkOptions::default())
            .await
    }

    /// [`Session::receiver`] with a chosen link name, a source filter and attach properties.
    pub async fn receiver_with(
        &self,
        address: &str,
        opts: ReceiverOptions,
        link: LinkOptions,
    ) -> Result<Receiver> {
        let name = link
            .name
            .unwrap_or_else(|| format!("receiver-{}", uuid::Uuid::new_v4()));
        let (snd_settle_mode, rcv_settle_mode) = match opts.settle_mode {
            SettleMode::PeekLock => (SenderSettleMode::Unsettled, ReceiverSettleMode::First),
            SettleMode::PeekLockConfirmed => {
                (SenderSettleMode::Unsettled, ReceiverSettleMode::Second)
            }
            SettleMode::ReceiveAndDelete => (SenderSettleMode::Settled, ReceiverSettleMode::First),
        };
        self.attach_receiver(LinkSpec {
            target: Some(link.target.unwrap_or_else(|| name.clone())),
            name,
            role: Role::Receiver,
            source: Some(address.to_owned()),
            snd_settle_mode,
            rcv_settle_mode,
            initial_credit: opts.credit,
            filter: link.filter,
            properties: link.properties,
        })
        .await
    }

    async fn attach_receiver(&self, spec: LinkSpec) -> Result<Receiver> {
        let (dtx, drx) = mpsc::unbounded_channel();
        let credit = spec.initial_credit;
        let attached = self
            .handle
            .request(|reply| Command::Attach {
                channel: self.channel,
                spec,
                deliveries: Some(dtx),
                reply,
            })
            .await?;
        Ok(Receiver {
            link: LinkHandle::new(self, &attached),
            attached,
            deliveries: drx,
            refill_at: (credit / 2).max(1),
            auto_credit: credit > 0,
            consumed: 0,
        })
    }

    /// Ends the session and waits for the peer's end.
    pub async fn end(self) -> Result<()> {
        let channel = self.channel;
        self.handle
            .request(|reply| Command::End { channel, reply })
            .await
    }
}

/// A session that ends when dropped: the Service Bus layer opens one per link, and a
/// long-lived client that makes many senders and receivers would otherwise keep every
/// session it ever began until the peer's session limit refuses the next.
pub(crate) struct OwnedSession(pub(crate) Session);

impl Drop for OwnedSession {
    fn drop(&mut self) {
        let (reply, _) = oneshot::channel();
        let _ = self.0.handle.send(Command::End {
            channel: self.0.channel,
            reply,
        });
    }
}

/// A link's address in the connection task; detaches when dropped.
struct LinkHandle {
    handle: Handle,
    channel: u16,
    link: u32,
    detached: bool,
}

impl LinkHandle {
    fn new(session: &Session, attached: &Attached) -> Self {
        LinkHandle {
            handle: session.handle.clone(),
            channel: session.channel,
            link: attached.handle,
            detached: false,
        }
    }

    async fn detach(&mut self) -> Result<()> {
        self.detached = true;
        let (channel, handle) = (self.channel, self.link);
        self.handle
            .request(|reply| Command::Detach {
                channel,
                handle,
                reply: Some(reply),
            })
            .await
    }
}

impl Drop for LinkHandle {
    fn drop(&mut self) {
        if !self.detached {
            let _ = self.handle.send(Command::Detach {
                channel: self.channel,
                handle: self.link,
                reply: None,
            });
        }
    }
}

/// A sender link.
pub struct Sender {
    link: LinkHandle,
    attached: Attached,
}

impl Sender {
    /// The largest message the peer accepts on this link, when it announced a limit.
    pub fn max_message_size(&self) -> Option<u64> {
        self.attached.max_message_size
    }

    /// Whether the link (or its connection) is gone: sends can only fail.
    pub fn is_closed(&self) -> bool {
        self.link.handle.tx.is_closed()
    }

    /// Queues `message` (an encoded AMQP message, see [`encode_message`]) as an unsettled
    /// transfer right away and returns a future for the peer's outcome. Transfers leave in
    /// call order as credit and the session window allow.
    pub fn send(&self, message: Bytes) -> SendFuture<Outcome> {
        self.send_with_format(message, 0)
    }

    /// [`Sender::send`] with a message-format other than 0, e.g. a Service Bus batch
    /// envelope's `0x80013700` (`busbar_amqp::message::BATCH_MESSAGE_FORMAT`).
    pub fn send_with_format(&self, message: Bytes, message_format: u32) -> SendFuture<Outcome> {
        let (reply, rx) = oneshot::channel();
        self.transfer(message, TransferReply::Outcome(reply), message_format);
        SendFuture {
            rx,
            shared: self.link.handle.shared.clone(),
        }
    }

    /// Queues `message` as a pre-settled transfer; the future resolves once it has been
    /// handed to the socket buffer (i.e. credit allowed it).
    pub fn send_settled(&self, message: Bytes) -> SendFuture<()> {
        let (reply, rx) = oneshot::channel();
        self.transfer(message, TransferReply::Written(reply), 0);
        SendFuture {
            rx,
            shared: self.link.handle.shared.clone(),
        }
    }

    fn transfer(&self, payload: Bytes, kind: TransferReply, message_format: u32) {
        // On failure the command, and with it the reply, is dropped; the future then
        // reports the connection's terminal error.
        let _ = self.link.handle.send(Command::Transfer {
            channel: self.link.channel,
            handle: self.link.link,
            payload,
            kind,
            message_format,
        });
    }

    /// Detaches (closed) and waits for the peer's detach.
    pub async fn close(mut self) -> Result<()> {
        self.link.detach().await
    }
}

/// The pending result of a send or of a confirmed settlement. Dropping it cancels neither.
pub struct SendFuture<T> {
    rx: oneshot::Receiver<Result<T>>,
    shared: Arc<Shared>,
}

impl<T> Future for SendFuture<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.rx).poll(cx) {
            Poll::Ready(Ok(r)) => Poll::Ready(r),
            Poll::Ready(Err(_)) => Poll::Ready(Err(self.shared.terminal())),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Settles deliveries of one receiver (see [`Receiver::settler`]).
#[derive(Clone)]
pub struct Settler {
    handle: Handle,
    channel: u16,
}

impl Settler {
    /// Settles the delivery `delivery_id` with `state` and resolves with the outcome the
    /// peer settles it with; `already_settled` deliveries (pre-settled ones) fail at once.
    pub fn settle_confirmed(
        &self,
        delivery_id: u32,
        already_settled: bool,
        state: DeliveryState,
    ) -> SendFuture<Outcome> {
        let (reply, rx) = oneshot::channel();
        let future = SendFuture {
            rx,
            shared: self.handle.shared.clone(),
        };
        if already_settled {
            let _ = reply.send(Err(Error::AlreadySettled));
            return future;
        }
        // On failure the command, and with it the reply, is dropped; the future then
        // reports the connection's terminal error.
        let _ = self.handle.send(Command::Disposition {
            channel: self.channel,
            delivery_id,
            state,
            confirm: Some(reply),
        });
        future
    }

    /// [`Settler::settle_confirmed`] for several deliveries in one command, without a
    /// future each: the outcomes the peer settles them with go to `sink`, tagged `tag`, in
    /// runs of consecutive delivery ids. Every delivery is answered there, a settlement the
    /// connection could not take (it is gone) or let go of as `None`.
    pub(crate) fn settle_confirmed_batch(
        &self,
        delivery_ids: Vec<u32>,
        state: DeliveryState,
        sink: &driver::ConfirmationSink,
        tag: u64,
    ) {
        // On failure the command is dropped, and with it the waiters: each says so.
        let _ = self.handle.send(Command::Dispositions {
            channel: self.channel,
            waiters: driver::BatchWaiters::new(sink.clone(), tag, delivery_ids),
            state,
        });
    }

    /// What a settlement whose answer the connection let go of failed with (as a
    /// [`SendFuture`] would say it).
    pub(crate) fn terminal_error(&self) -> Error {
        self.handle.shared.terminal()
    }
}

/// A receiver link.
pub struct Receiver {
    link: LinkHandle,
    attached: Attached,
    deliveries: mpsc::UnboundedReceiver<Result<Delivery>>,
    refill_at: u32,
    auto_credit: bool,
    consumed: u32,
}

impl Receiver {
    /// Whether the connection is gone: receives and settlements can only fail.
    pub fn is_closed(&self) -> bool {
        self.link.handle.tx.is_closed()
    }

    /// The properties of the peer's attach (a map with symbol keys), if it sent any.
    pub fn remote_properties(&self) -> Option<&Value> {
        self.attached.properties.as_ref()
    }

    /// The filter set of the source the peer attached with (a map with symbol keys).
    pub fn remote_source_filter(&self) -> Option<&Value> {
        self.attached.source_filter.as_ref()
    }

    /// The next delivery already received, without waiting.
    pub fn try_recv(&mut self) -> Option<Result<Delivery>> {
        match self.deliveries.try_recv() {
            Ok(d) => Some(d),
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => {
                Some(Err(self.link.handle.shared.terminal()))
            }
        }
    }

    /// Asks the peer to send what it can for the outstanding credit at once and give the
    /// rest back; resolves when the credit is 0, every delivery sent before then being
    /// ready for [`Receiver::try_recv`].
    pub async fn drain(&self) -> Result<()> {
        let (channel, handle) = (self.link.channel, self.link.link);
        self.link
            .handle
            .request(|reply| Command::Drain {
                channel,
                handle,
                reply,
            })
            .await
    }

    /// Settles `d` with `state` and resolves with the outcome the peer settles it with
    /// (see [`Receiver::accept_confirmed`]).
    pub fn settle_confirmed(&self, d: &Delivery, state: DeliveryState) -> SendFuture<Outcome> {
        self.settler()
            .settle_confirmed(d.delivery_id, d.settled, state)
    }

    /// A handle that settles this receiver's deliveries while another task waits in
    /// [`Receiver::recv`]. It does not keep the link attached.
    pub fn settler(&self) -> Settler {
        Settler {
            handle: self.link.handle.clone(),
            channel: self.link.channel,
        }
    }

    /// The next delivery. Credit is topped back up once half of it has been consumed.
    pub async fn recv(&mut self) -> Result<Delivery> {
        let d = match self.deliveries.recv().await {
            Some(d) => d?,
            None => return Err(self.link.handle.shared.terminal()),
        };
        if self.auto_credit {
            self.consumed += 1;
            if self.consumed >= self.refill_at {
                let add = std::mem::take(&mut self.consumed);
                self.add_credit(add)?;
            }
        }
        Ok(d)
    }

    /// Grants `n` more credit.
    pub fn add_credit(&self, n: u32) -> Result<()> {
        self.link.handle.send(Command::Credit {
            channel: self.link.channel,
            handle: self.link.link,
            add: n,
        })
    }

    /// Accepts `d` (Service Bus: completes it).
    pub fn accept(&self, d: &Delivery) -> Result<()> {
        self.settle(d, DeliveryState::Accepted)
    }

    /// Gives the message back to the broker without counting a failed attempt.
    pub fn release(&self, d: &Delivery) -> Result<()> {
        self.settle(d, DeliveryState::Released)
    }

    /// Rejects `d` with an error condition (Service Bus: dead-letters it).
    pub fn reject(&self, d: &Delivery, condition: &str, description: &str) -> Result<()> {
        self.settle(
            d,
            DeliveryState::Rejected {
                error: Some(ErrorCondition::new(condition, description)),
            },
        )
    }

    /// Settles `d` as modified (Service Bus: abandons it; with `undeliverable_here`, defers it).
    pub fn modify(
        &self,
        d: &Delivery,
        delivery_failed: bool,
        undeliverable_here: bool,
    ) -> Result<()> {
        self.settle(
            d,
            DeliveryState::Modified {
                delivery_failed: Some(delivery_failed),
                undeliverable_here: Some(undeliverable_here),
                message_annotations: None,
            },
        )
    }

    /// Accepts `d` without settling it and resolves with the outcome the peer settles it
    /// with: `Accepted` once the peer has applied the completion (Busbar answers only after
    /// the store made it durable), `Rejected` when it could not (e.g. the lock was lost).
    /// An error means the connection went away first: whether the completion took effect
    /// is unknown. Meant for [`SettleMode::PeekLockConfirmed`] links.
    pub fn accept_confirmed(&self, d: &Delivery) -> SendFuture<Outcome> {
        self.settle_confirmed(d, DeliveryState::Accepted)
    }

    fn settle(&self, d: &Delivery, state: DeliveryState) -> Result<()> {
        if d.settled {
            return Err(Error::AlreadySettled);
        }
        self.link.handle.send(Command::Disposition {
            channel: self.link.channel,
            delivery_id: d.delivery_id,
            state,
            confirm: None,
        })
    }

    /// Detaches (closed) and waits for the peer's detach.
    pub async fn close(mut self) -> Result<()> {
        self.link.detach().await
    }
}

fn host_of(addr: &str) -> &str {
    let host = match addr.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => addr,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

fn sasl_init(sasl: &Sasl, offered: &[Symbol], hostname: &str) -> Result<SaslFrame> {
    let (mechanism, response) = match sasl {
        Sasl::Plain { user, pass } => {
            let mut r = Vec::with_capacity(user.len() + pass.len() + 2);
            r.push(0);
            r.extend_from_slice(user.as_bytes());
            r.push(0);
            r.extend_from_slice(pass.as_bytes());
            ("PLAIN", Bytes::from(r))
        }
        Sasl::Anonymous | Sasl::None => ("ANONYMOUS", Bytes::new()),
    };
    if !offered.iter().any(|m| m.as_str() == mechanism) {
        return Err(Error::SaslMechanism(mechanism));
    }
    Ok(SaslFrame::Init {
        mechanism: Symbol::from(mechanism),
        initial_response: Some(response),
        hostname: Some(hostname.to_owned()),
    })
}

async fn tcp(addr: &str) -> Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A TLS connection to `addr`, the certificate checked against `opts`' hostname.
async fn tls_connect(
    addr: &str,
    opts: &ConnectOptions,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let stream = tcp(addr).await?;
    let hostname = hostname_of(addr, opts);
    let name = rustls::pki_types::ServerName::try_from(hostname.clone())
        .map_err(|e| Error::Tls(format!("{hostname}: {e}")))?;
    tokio_rustls::TlsConnector::from(Arc::clone(tls))
        .connect(name, stream)
        .await
        .map_err(|e| Error::Tls(e.to_string()))
}

/// `open.hostname`, `sasl-init.hostname` and the name a TLS certificate must be valid for.
fn hostname_of(addr: &str, opts: &ConnectOptions) -> String {
    opts.hostname
        .clone()
        .unwrap_or_else(|| host_of(addr).to_owned())
}

/// Writes `bytes` and flushes them: TLS may hold bytes back, and a WebSocket sends a
/// message per flush.
async fn send(stream: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await?;
    Ok(())
}

async fn fill(stream: &mut (impl AsyncRead + Unpin), buf: &mut BytesMut) -> Result<()> {
    buf.reserve(4096);
    if stream.read_buf(buf).await? == 0 {
        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
    }
    Ok(())
}

async fn expect_header(
    stream: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
    want: ProtocolHeader,
) -> Result<()> {
    while buf.len() < ProtocolHeader::LEN {
        fill(stream, buf).await?;
    }
    let got = buf.split_to(ProtocolHeader::LEN);
    let mut header = [0u8; ProtocolHeader::LEN];
    header.copy_from_slice(&got);
    match ProtocolHeader::parse(&header) {
        Some(h) if h == want => Ok(()),
        _ => Err(Error::Protocol(format!(
            "peer answered protocol header {header:?}, wanted {:?}",
            want.bytes()
        ))),
    }
}

async fn read_frame(
    stream: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
    decoder: &mut FrameDecoder,
) -> Result<Frame> {
    loop {
        if let Some(f) = decoder.decode(buf)? {
            return Ok(f);
        }
        fill(stream, buf).await?;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
