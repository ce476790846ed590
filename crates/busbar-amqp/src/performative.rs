//! Typed AMQP 1.0 performatives, SASL frames, termini, outcomes and errors.
//!
//! Encoding always uses small-ulong numeric descriptors (`00 53 xx`) and trims trailing
//! nulls from lists, which both Service Bus SDKs require or accept. Decoding accepts list0,
//! list8 and list32 bodies and numeric or symbolic descriptors.

use bytes::Bytes;

use crate::value::{Symbol, Value};

/// Descriptor codes from the AMQP 1.0 specification.
pub mod code {
    pub const OPEN: u64 = 0x10;
    pub const BEGIN: u64 = 0x11;
    pub const ATTACH: u64 = 0x12;
    pub const FLOW: u64 = 0x13;
    pub const TRANSFER: u64 = 0x14;
    pub const DISPOSITION: u64 = 0x15;
    pub const DETACH: u64 = 0x16;
    pub const END: u64 = 0x17;
    pub const CLOSE: u64 = 0x18;
    pub const ERROR: u64 = 0x1d;
    pub const RECEIVED: u64 = 0x23;
    pub const ACCEPTED: u64 = 0x24;
    pub const REJECTED: u64 = 0x25;
    pub const RELEASED: u64 = 0x26;
    pub const MODIFIED: u64 = 0x27;
    pub const SOURCE: u64 = 0x28;
    pub const TARGET: u64 = 0x29;
    pub const COORDINATOR: u64 = 0x30;
    pub const SASL_MECHANISMS: u64 = 0x40;
    pub const SASL_INIT: u64 = 0x41;
    pub const SASL_CHALLENGE: u64 = 0x42;
    pub const SASL_RESPONSE: u64 = 0x43;
    pub const SASL_OUTCOME: u64 = 0x44;
}

/// Link role: the sender role is `false` on the wire, receiver `true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Sender,
    Receiver,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SenderSettleMode {
    Unsettled = 0,
    Settled = 1,
    #[default]
    Mixed = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReceiverSettleMode {
    #[default]
    First = 0,
    Second = 1,
}

/// AMQP `error` (0x1d). Always encoded as the full three-element list.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorCondition {
    pub condition: Symbol,
    pub description: Option<String>,
    /// `info` map (symbol keys), `Value::Map`, or `None`.
    pub info: Option<Value>,
}

impl ErrorCondition {
    pub fn new(condition: &str, description: impl Into<String>) -> Self {
        ErrorCondition {
            condition: Symbol::from(condition),
            description: Some(description.into()),
            info: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Open {
    pub container_id: String,
    pub hostname: Option<String>,
    pub max_frame_size: Option<u32>,
    pub channel_max: Option<u16>,
    /// Milliseconds.
    pub idle_time_out: Option<u32>,
    pub outgoing_locales: Option<Value>,
    pub incoming_locales: Option<Value>,
    pub offered_capabilities: Option<Value>,
    pub desired_capabilities: Option<Value>,
    pub properties: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Begin {
    pub remote_channel: Option<u16>,
    pub next_outgoing_id: u32,
    pub incoming_window: u32,
    pub outgoing_window: u32,
    pub handle_max: Option<u32>,
    pub offered_capabilities: Option<Value>,
    pub desired_capabilities: Option<Value>,
    pub properties: Option<Value>,
}

/// Source terminus (0x28). `filter` is a map (symbol keys); kept as a raw `Value` so it can
/// be echoed back exactly as received.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Source {
    pub address: Option<String>,
    pub durable: Option<u32>,
    pub expiry_policy: Option<Symbol>,
    pub timeout: Option<u32>,
    pub dynamic: Option<bool>,
    pub dynamic_node_properties: Option<Value>,
    pub distribution_mode: Option<Symbol>,
    pub filter: Option<Value>,
    pub default_outcome: Option<Value>,
    pub outcomes: Option<Value>,
    pub capabilities: Option<Value>,
}

/// Target terminus (0x29).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Target {
    pub address: Option<String>,
    pub durable: Option<u32>,
    pub expiry_policy: Option<Symbol>,
    pub timeout: Option<u32>,
    pub dynamic: Option<bool>,
    pub dynamic_node_properties: Option<Value>,
    pub capabilities: Option<Value>,
}

/// An attach's target may be a normal target or something else (e.g. a transaction
/// coordinator, 0x30), which the broker refuses.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetKind {
    Target(Target),
    /// Any other described value, kept raw.
    Other(Value),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attach {
    pub name: String,
    pub handle: u32,
    pub role: Role,
    pub snd_settle_mode: SenderSettleMode,
    pub rcv_settle_mode: ReceiverSettleMode,
    pub source: Option<Source>,
    pub target: Option<TargetKind>,
    pub unsettled: Option<Value>,
    pub incomplete_unsettled: bool,
    pub initial_delivery_count: Option<u32>,
    pub max_message_size: Option<u64>,
    pub offered_capabilities: Option<Value>,
    pub desired_capabilities: Option<Value>,
    /// Map with symbol keys.
    pub properties: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Flow {
    pub next_incoming_id: Option<u32>,
    pub incoming_window: u32,
    pub next_outgoing_id: u32,
    pub outgoing_window: u32,
    pub handle: Option<u32>,
    pub delivery_count: Option<u32>,
    pub link_credit: Option<u32>,
    pub available: Option<u32>,
    pub drain: bool,
    pub echo: bool,
    pub properties: Option<Value>,
}

/// Delivery state / outcome.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryState {
    Received {
        section_number: u32,
        section_offset: u64,
    },
    Accepted,
    Rejected {
        error: Option<ErrorCondition>,
    },
    Released,
    Modified {
        delivery_failed: Option<bool>,
        undeliverable_here: Option<bool>,
        /// Map with symbol keys.
        message_annotations: Option<Value>,
    },
    /// Any other described state (e.g. transactional), kept raw.
    Other(Value),
}

/// A transfer performative. The payload (message bytes) follows the performative in the
/// same frame and is carried in [`crate::frame::Frame::payload`], not here.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transfer {
    pub handle: u32,
    pub delivery_id: Option<u32>,
    pub delivery_tag: Option<Bytes>,
    pub message_format: Option<u32>,
    pub settled: Option<bool>,
    pub more: bool,
    pub rcv_settle_mode: Option<ReceiverSettleMode>,
    pub state: Option<DeliveryState>,
    pub resume: bool,
    pub aborted: bool,
    pub batchable: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Disposition {
    pub role: Role,
    pub first: u32,
    pub last: Option<u32>,
    pub settled: bool,
    pub state: Option<DeliveryState>,
    pub batchable: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Detach {
    pub handle: u32,
    pub closed: bool,
    pub error: Option<ErrorCondition>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct End {
    pub error: Option<ErrorCondition>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Close {
    pub error: Option<ErrorCondition>,
}

/// The nine AMQP performatives.
#[derive(Debug, Clone, PartialEq)]
pub enum Performative {
    Open(Open),
    Begin(Begin),
    Attach(Attach),
    Flow(Flow),
    Transfer(Transfer),
    Disposition(Disposition),
    Detach(Detach),
    End(End),
    Close(Close),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslCode {
    Ok = 0,
    Auth = 1,
    Sys = 2,
    SysPerm = 3,
    SysTemp = 4,
}

/// SASL frames (frame type 0x01).
#[derive(Debug, Clone, PartialEq)]
pub enum SaslFrame {
    Mechanisms {
        mechanisms: Vec<Symbol>,
    },
    Init {
        mechanism: Symbol,
        initial_response: Option<Bytes>,
        hostname: Option<String>,
    },
    Challenge {
        challenge: Bytes,
    },
    Response {
        response: Bytes,
    },
    Outcome {
        code: SaslCode,
        additional_data: Option<Bytes>,
    },
}
