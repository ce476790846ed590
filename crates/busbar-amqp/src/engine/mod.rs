//! Sans-I/O AMQP 1.0 connection engine, broker side.
//!
//! One [`Connection`] per TCP connection, created once the transport has finished the
//! protocol headers and SASL (see [`sasl`] for the SASL server step). The server feeds it
//! decoded frames ([`Connection::handle_frame`], [`Connection::handle_heartbeat`]), drains
//! the frames it queues ([`Connection::poll_output`]) and the events it raises
//! ([`Connection::poll_event`]), and drives it with broker decisions: answering attaches,
//! sending and settling deliveries, granting credit, detaching, ending and closing.
//!
//! The engine owns the protocol bookkeeping a broker must not get wrong: channel and
//! handle mapping in both directions, per-session delivery-ids shared by all links,
//! session windows, link credit and drain, multi-frame reassembly and splitting, ranged
//! dispositions mapped back to the broker's own delivery tokens, and the closing
//! handshakes (including the quirks of the Service Bus SDKs: frames after `end`, the
//! client's detach that completes a refusal, heartbeats for peers with an idle timeout).
//!
//! It must not do I/O, read a clock (time arrives as `now_ms`), encode bytes (frames
//! leave as [`Frame`] values for the codec), or know about Service Bus entities.

mod connection;
mod link;
pub mod sasl;
mod session;

pub use connection::Connection;

use bytes::Bytes;

use crate::performative::{Attach, DeliveryState, ErrorCondition, Role, Source, TargetKind};
use crate::value::Value;

pub use crate::frame::Frame;

/// Conditions the engine uses when it has to close a connection or reject a delivery.
pub mod condition {
    pub const FRAMING_ERROR: &str = "amqp:connection:framing-error";
    pub const INVALID_FIELD: &str = "amqp:invalid-field";
    pub const NOT_ALLOWED: &str = "amqp:not-allowed";
    pub const INTERNAL_ERROR: &str = "amqp:internal-error";
    pub const RESOURCE_LIMIT_EXCEEDED: &str = "amqp:resource-limit-exceeded";
    pub const HANDLE_IN_USE: &str = "amqp:session:handle-in-use";
    pub const MESSAGE_SIZE_EXCEEDED: &str = "amqp:link:message-size-exceeded";
}

/// What the broker announces and enforces on a connection.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    pub container_id: String,
    /// Largest frame this side accepts (announced in `open`).
    pub max_frame_size: u32,
    /// Highest channel number the peer may use.
    pub channel_max: u16,
    /// Announced idle timeout; the peer is dropped after twice this long without a frame.
    /// `None` announces none and never times the peer out.
    pub idle_time_out_ms: Option<u32>,
    /// Highest link handle the peer may use on a session (bounds per-session tables).
    pub handle_max: u32,
    /// Session incoming window announced to the peer, refreshed when half used.
    pub incoming_window: u32,
    /// Session outgoing window announced to the peer.
    pub outgoing_window: u32,
    /// Largest message accepted on a receiving link when the attach reply names none; also
    /// the bound on reassembly buffers.
    pub max_message_size: u64,
    /// Credit granted to a client's sender when the attach reply names none.
    pub receiver_credit: u32,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            container_id: "busbar".to_owned(),
            max_frame_size: 1024 * 1024,
            channel_max: 4095,
            idle_time_out_ms: Some(120_000),
            handle_max: 255,
            incoming_window: 65_536,
            outgoing_window: u32::MAX,
            max_message_size: 1024 * 1024,
            receiver_credit: 1000,
        }
    }
}

/// A session as the broker sees it. Stays unique for the connection's life even when the
/// channel number is reused, so a stale reference never reaches a newer session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionRef {
    channel: u16,
    serial: u32,
}

impl SessionRef {
    /// The broker's (outgoing) channel number of the session.
    pub fn channel(self) -> u16 {
        self.channel
    }
}

/// A link as the broker sees it; unique for the connection's life, like [`SessionRef`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkRef {
    session: SessionRef,
    handle: u32,
    serial: u32,
    broker_is_sender: bool,
}

impl LinkRef {
    pub fn session(self) -> SessionRef {
        self.session
    }

    /// The broker's handle for the link.
    pub fn handle(self) -> u32 {
        self.handle
    }

    /// The broker's role on the link (the client's attach carries the opposite one).
    pub fn role(self) -> Role {
        if self.broker_is_sender {
            Role::Sender
        } else {
            Role::Receiver
        }
    }
}

/// The broker's answer to an [`Event::AttachRequested`]. `Default` echoes the client's
/// source and target and uses the configured limits.
#[derive(Debug, Clone, Default)]
pub struct AttachReply {
    /// `None` echoes the client's source exactly.
    pub source: Option<Source>,
    /// `None` echoes the client's target exactly.
    pub target: Option<TargetKind>,
    /// `None` (or 0) announces and enforces [`ConnectionConfig::max_message_size`].
    pub max_message_size: Option<u64>,
    pub properties: Option<Value>,
    pub offered_capabilities: Option<Value>,
    /// Broker-as-sender links only; `None` means 0.
    pub initial_delivery_count: Option<u32>,
    /// Broker-as-receiver links only: credit granted right after the attach (and kept
    /// topped up); `None` means [`ConnectionConfig::receiver_credit`], 0 grants none.
    pub credit: Option<u32>,
}

/// A complete message received on a broker-as-receiver link.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingMessage {
    pub link: LinkRef,
    pub delivery_id: u32,
    pub delivery_tag: Bytes,
    /// Settled by the client already: no disposition is expected.
    pub settled: bool,
    pub message_format: u32,
    /// The encoded message (all frames joined; a zero-copy slice for single frames).
    pub payload: Bytes,
}

/// What happened, for the broker to act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The client's `open` arrived; the engine has already answered it.
    Opened {
        container_id: String,
        hostname: Option<String>,
        max_frame_size: u32,
        idle_time_out_ms: Option<u32>,
        properties: Option<Value>,
    },
    /// The client began a session; the engine has already answered it.
    SessionBegun { session: SessionRef },
    /// The client wants a link. Answer with [`Connection::accept_attach`] or
    /// [`Connection::refuse_attach`]; until then credit and transfers are recorded.
    AttachRequested { link: LinkRef, attach: Box<Attach> },
    /// A complete message on a broker-as-receiver link. Unless `settled`, answer with
    /// [`Connection::settle`].
    Message(IncomingMessage),
    /// A delivery grew beyond the link's max message size. The engine has discarded it
    /// and, unless the client settled it, rejected it with
    /// `amqp:link:message-size-exceeded`.
    MessageTooLarge {
        link: LinkRef,
        delivery_id: u32,
        limit: u64,
    },
    /// The client changed the credit of a broker-as-sender link (or the session window
    /// reopened): [`Connection::send_capacity`] tells how many deliveries may go now.
    CreditChanged { link: LinkRef, credit: u32 },
    /// The client asked to drain a broker-as-sender link: send what is available up to
    /// the credit, then call [`Connection::drain_complete`].
    Drain { link: LinkRef, credit: u32 },
    /// The client's disposition reached a delivery the broker sent unsettled. With
    /// `settled_by_peer` false the client waits for [`Connection::settle`] to confirm.
    Settled {
        link: LinkRef,
        delivery_id: u32,
        token: u64,
        state: Option<DeliveryState>,
        settled_by_peer: bool,
    },
    /// A link is gone (client detach, session end, close or transport loss). Not raised
    /// for links the broker itself detached or refused.
    Detached {
        link: LinkRef,
        closed: bool,
        error: Option<ErrorCondition>,
    },
    /// A session is gone, whoever ended it; raised once per [`Event::SessionBegun`].
    SessionEnded {
        session: SessionRef,
        error: Option<ErrorCondition>,
    },
    /// The connection is finished; raised once. `error` is the peer's when `by_peer`,
    /// otherwise the broker's own.
    Closed {
        error: Option<ErrorCondition>,
        by_peer: bool,
    },
}

/// A protocol violation that ends the connection. The engine has already queued
/// `close(error)` and torn the sessions down; the server flushes the output and drops the
/// socket.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {}", .condition.condition.as_str(), .condition.description.as_deref().unwrap_or(""))]
pub struct ConnectionError {
    pub condition: ErrorCondition,
}

impl ConnectionError {
    pub fn new(condition: &str, description: impl Into<String>) -> Self {
        ConnectionError {
            condition: ErrorCondition::new(condition, description),
        }
    }
}

/// Why a broker action could not be carried out. None of these affect the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("the link is gone")]
    UnknownLink,
    #[error("the session is gone")]
    UnknownSession,
    #[error("the attach has already been answered")]
    AlreadyAnswered,
    #[error("the link has not been attached yet")]
    NotAttached,
    #[error("the broker is not the {0:?} on this link")]
    WrongRole(Role),
    #[error("the link has no credit")]
    NoCredit,
    #[error("the peer's session incoming window is closed")]
    SessionWindowClosed,
    #[error("a delivery tag is at most 32 bytes, got {0}")]
    TagTooLong(usize),
    #[error("the message ({size} bytes) exceeds the peer's max-message-size ({max})")]
    MessageTooLarge { size: u64, max: u64 },
    #[error("no unsettled delivery {0} on this session")]
    UnknownDelivery(u32),
    #[error("the connection is closing or closed")]
    ConnectionClosed,
}

/// What [`Connection::tick`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickAction {
    Nothing,
    /// An empty keep-alive frame was queued: flush the output.
    SendHeartbeat,
    /// The peer has been silent too long: `close(amqp:resource-limit-exceeded)` was
    /// queued; flush the output and drop the socket.
    IdleTimeout,
}
