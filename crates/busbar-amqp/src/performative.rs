//! Typed AMQP 1.0 performatives, SASL frames, termini, outcomes and errors.
//!
//! Encoding always uses small-ulong numeric descriptors (`00 53 xx`) and trims trailing
//! nulls from lists, which both Service Bus SDKs require or accept. Decoding accepts list0,
//! list8 and list32 bodies and numeric or symbolic descriptors.

use bytes::{Bytes, BytesMut};

use crate::codec::{
    FieldReader, FieldWriter, decode_value, descriptor_code, encode_value, read_descriptor,
};
use crate::error::CodecError;
use crate::value::{Descriptor, Symbol, Value};

mod common_disposition;

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
// Open and Attach, rare and several times larger than the rest, are boxed: every frame
// (each transfer among them) is moved by value from the decoder to its handler several
// times, and inline they made each of those moves copy Attach's 688 bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum Performative {
    Open(Box<Open>),
    Begin(Begin),
    Attach(Box<Attach>),
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

// ---------------------------------------------------------------------------------------
// Decoding and encoding
// ---------------------------------------------------------------------------------------

/// Reads a described composite's descriptor and checks it is `expected`.
fn expect_composite(
    buf: &mut Bytes,
    expected: u64,
    composite: &'static str,
) -> Result<FieldReader, CodecError> {
    let d = read_descriptor(buf)?;
    if descriptor_code(&d) != Some(expected) {
        return Err(CodecError::UnexpectedDescriptor(format!(
            "{d:?} where {composite} was expected"
        )));
    }
    FieldReader::open(buf, composite)
}

impl Role {
    fn from_wire(receiver: bool) -> Self {
        if receiver {
            Role::Receiver
        } else {
            Role::Sender
        }
    }

    /// The wire boolean: `true` for receiver.
    pub fn is_receiver(self) -> bool {
        self == Role::Receiver
    }
}

impl SenderSettleMode {
    fn from_wire(v: Option<u8>, f: &FieldReader) -> Result<Self, CodecError> {
        match v {
            None | Some(2) => Ok(SenderSettleMode::Mixed),
            Some(0) => Ok(SenderSettleMode::Unsettled),
            Some(1) => Ok(SenderSettleMode::Settled),
            Some(_) => Err(f.invalid("snd-settle-mode", "unknown sender settle mode")),
        }
    }
}

impl ReceiverSettleMode {
    fn from_wire(v: u8, f: &FieldReader) -> Result<Self, CodecError> {
        match v {
            0 => Ok(ReceiverSettleMode::First),
            1 => Ok(ReceiverSettleMode::Second),
            _ => Err(f.invalid("rcv-settle-mode", "unknown receiver settle mode")),
        }
    }
}

impl ErrorCondition {
    pub fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        let mut f = expect_composite(buf, code::ERROR, "error")?;
        Ok(ErrorCondition {
            condition: f
                .symbol("condition")?
                .ok_or_else(|| f.invalid("condition", "mandatory field missing"))?,
            description: f.string("description")?,
            info: f.value()?,
        })
    }

    /// Always the full three-element list: some clients index the fields directly.
    pub fn encode(&self, out: &mut BytesMut) {
        let mut w = FieldWriter::begin(out, code::ERROR);
        w.symbol(&self.condition);
        w.opt_string(self.description.as_deref());
        w.opt_value(self.info.as_ref());
        w.finish_untrimmed();
    }
}

impl Source {
    pub fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        let mut f = expect_composite(buf, code::SOURCE, "source")?;
        Ok(Source {
            address: f.string("address")?,
            durable: f.uint("durable")?,
            expiry_policy: f.symbol("expiry-policy")?,
            timeout: f.uint("timeout")?,
            dynamic: f.boolean("dynamic")?,
            dynamic_node_properties: f.value()?,
            distribution_mode: f.symbol("distribution-mode")?,
            filter: f.value()?,
            default_outcome: f.value()?,
            outcomes: f.value()?,
            capabilities: f.value()?,
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        let mut w = FieldWriter::begin(out, code::SOURCE);
        w.opt_string(self.address.as_deref());
        w.opt_uint(self.durable);
        w.opt_symbol(self.expiry_policy.as_ref());
        w.opt_uint(self.timeout);
        w.opt_bool(self.dynamic);
        w.opt_value(self.dynamic_node_properties.as_ref());
        w.opt_symbol(self.distribution_mode.as_ref());
        w.opt_value(self.filter.as_ref());
        w.opt_value(self.default_outcome.as_ref());
        w.opt_value(self.outcomes.as_ref());
        w.opt_value(self.capabilities.as_ref());
        w.finish();
    }
}

impl Target {
    pub fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        let mut f = expect_composite(buf, code::TARGET, "target")?;
        Ok(Target {
            address: f.string("address")?,
            durable: f.uint("durable")?,
            expiry_policy: f.symbol("expiry-policy")?,
            timeout: f.uint("timeout")?,
            dynamic: f.boolean("dynamic")?,
            dynamic_node_properties: f.value()?,
            capabilities: f.value()?,
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        let mut w = FieldWriter::begin(out, code::TARGET);
        w.opt_string(self.address.as_deref());
        w.opt_uint(self.durable);
        w.opt_symbol(self.expiry_policy.as_ref());
        w.opt_uint(self.timeout);
        w.opt_bool(self.dynamic);
        w.opt_value(self.dynamic_node_properties.as_ref());
        w.opt_value(self.capabilities.as_ref());
        w.finish();
    }
}

impl TargetKind {
    /// A `target` (0x29) decodes as [`TargetKind::Target`]; anything else (a coordinator,
    /// an unknown extension) is kept raw.
    pub fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        let mut probe = buf.clone();
        if let Ok(d) = read_descriptor(&mut probe)
            && descriptor_code(&d) == Some(code::TARGET)
        {
            return Target::decode(buf).map(TargetKind::Target);
        }
        decode_value(buf).map(TargetKind::Other)
    }

    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            TargetKind::Target(t) => t.encode(out),
            TargetKind::Other(v) => encode_value(v, out),
        }
    }
}

impl DeliveryState {
    pub fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        let mut probe = buf.clone();
        let known = read_descriptor(&mut probe)
            .ok()
            .and_then(|d| descriptor_code(&d))
            .filter(|c| (code::RECEIVED..=code::MODIFIED).contains(c));
        let Some(state_code) = known else {
            return decode_value(buf).map(DeliveryState::Other);
        };
        *buf = probe;
        Ok(match state_code {
            code::RECEIVED => {
                let mut f = FieldReader::open(buf, "received")?;
                DeliveryState::Received {
                    section_number: f.req_uint("section-number")?,
                    section_offset: f
                        .ulong("section-offset")?
                        .ok_or_else(|| f.invalid("section-offset", "mandatory field missing"))?,
                }
            }
            code::ACCEPTED => {
                FieldReader::open(buf, "accepted")?;
                DeliveryState::Accepted
            }
            code::REJECTED => {
                let mut f = FieldReader::open(buf, "rejected")?;
                DeliveryState::Rejected {
                    error: f.nested(ErrorCondition::decode)?,
                }
            }
            code::RELEASED => {
                FieldReader::open(buf, "released")?;
                DeliveryState::Released
            }
            _ => {
                let mut f = FieldReader::open(buf, "modified")?;
                DeliveryState::Modified {
                    delivery_failed: f.boolean("delivery-failed")?,
                    undeliverable_here: f.boolean("undeliverable-here")?,
                    message_annotations: f.value()?,
                }
            }
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            DeliveryState::Received {
                section_number,
                section_offset,
            } => {
                let mut w = FieldWriter::begin(out, code::RECEIVED);
                w.uint(*section_number);
                w.opt_ulong(Some(*section_offset));
                w.finish();
            }
            DeliveryState::Accepted => FieldWriter::begin(out, code::ACCEPTED).finish(),
            DeliveryState::Rejected { error } => {
                let mut w = FieldWriter::begin(out, code::REJECTED);
                w.opt_with(error.as_ref(), ErrorCondition::encode);
                w.finish();
            }
            DeliveryState::Released => FieldWriter::begin(out, code::RELEASED).finish(),
            DeliveryState::Modified {
                delivery_failed,
                undeliverable_here,
                message_annotations,
            } => {
                let mut w = FieldWriter::begin(out, code::MODIFIED);
                w.opt_bool(*delivery_failed);
                w.opt_bool(*undeliverable_here);
                w.opt_value(message_annotations.as_ref());
                w.finish();
            }
            DeliveryState::Other(v) => encode_value(v, out),
        }
    }
}

fn decode_error_only(f: &mut FieldReader) -> Result<Option<ErrorCondition>, CodecError> {
    f.nested(ErrorCondition::decode)
}

impl Open {
    fn decode_fields(f: &mut FieldReader) -> Result<Self, CodecError> {
        Ok(Open {
            container_id: f
                .string("container-id")?
                .ok_or_else(|| f.invalid("container-id", "mandatory field missing"))?,
            hostname: f.string("hostname")?,
            max_frame_size: f.uint("max-frame-size")?,
            channel_max: f.ushort("channel-max")?,
            idle_time_out: f.uint("idle-time-out")?,
            outgoing_locales: f.value()?,
            incoming_locales: f.value()?,
            offered_capabilities: f.value()?,
            desired_capabilities: f.value()?,
            properties: f.value()?,
        })
    }

    fn encode_fields(&self, out: &mut BytesMut) {
        let mut w = FieldWriter::begin(out, code::OPEN);
        w.string(&self.container_id);
        w.opt_string(self.hostname.as_deref());
        w.opt_uint(self.max_frame_size);
        w.opt_ushort(self.channel_max);
        w.opt_uint(self.idle_time_out);
        w.opt_value(self.outgoing_locales.as_ref());
        w.opt_value(self.incoming_locales.as_ref());
        w.opt_value(self.offered_capabilities.as_ref());
        w.opt_value(self.desired_capabilities.as_ref());
        w.opt_value(self.properties.as_ref());
        w.finish();
    }
}

impl Begin {
    fn decode_fields(f: &mut FieldReader) -> Result<Self, CodecError> {
        Ok(Begin {
            remote_channel: f.ushort("remote-channel")?,
            next_outgoing_id: f.req_uint("next-outgoing-id")?,
            incoming_window: f.req_uint("incoming-window")?,
            outgoing_window: f.req_uint("outgoing-window")?,
            handle_max: f.uint("handle-max")?,
            offered_capabilities: f.value()?,
            desired_capabilities: f.value()?,
            properties: f.value()?,
        })
    }

    fn encode_fields(&self, out: &mut BytesMut) {
        let mut w = FieldWriter::begin(out, code::BEGIN);
        w.opt_ushort(self.remote_channel);
        w.uint(self.next_outgoing_id);
        w.uint(self.incoming_window);
        w.uint(self.outgoing_window);
        w.opt_uint(self.handle_max);
        w.opt_value(self.offered_capabilities.as_ref());
        w.opt_value(self.desired_capabilities.as_ref());
        w.opt_value(self.properties.as_ref());
        w.finish();
    }
}

impl Attach {
    fn decode_fields(f: &mut FieldReader) -> Result<Self, CodecError> {
        let name = f
            .string("name")?
            .ok_or_else(|| f.invalid("name", "mandatory field missing"))?;
        let handle = f.req_uint("handle")?;
        let role = f
            .boolean("role")?
            .ok_or_else(|| f.invalid("role", "mandatory field missing"))?;
        let snd = f.ubyte("snd-settle-mode")?;
        let snd_settle_mode = SenderSettleMode::from_wire(snd, f)?;
        let rcv_settle_mode = match f.ubyte("rcv-settle-mode")? {
            None => ReceiverSettleMode::First,
            Some(v) => ReceiverSettleMode::from_wire(v, f)?,
        };
        Ok(Attach {
            name,
            handle,
            role: Role::from_wire(role),
            snd_settle_mode,
            rcv_settle_mode,
            source: f.nested(Source::decode)?,
            target: f.nested(TargetKind::decode)?,
            unsettled: f.value()?,
            incomplete_unsettled: f.boolean("incomplete-unsettled")?.unwrap_or(false),
            initial_delivery_count: f.uint("initial-delivery-count")?,
            max_message_size: f.ulong("max-message-size")?,
            offered_capabilities: f.value()?,
            desired_capabilities: f.value()?,
            properties: f.value()?,
        })
    }

    fn encode_fields(&self, out: &mut BytesMut) {
        let mut w = FieldWriter::begin(out, code::ATTACH);
        w.string(&self.name);
        w.uint(self.handle);
        w.boolean(self.role.is_receiver());
        w.ubyte(self.snd_settle_mode as u8);
        w.ubyte(self.rcv_settle_mode as u8);
        w.opt_with(self.source.as_ref(), Source::encode);
        w.opt_with(self.target.as_ref(), TargetKind::encode);
        w.opt_value(self.unsettled.as_ref());
        w.flag(self.incomplete_unsettled);
        w.opt_uint(self.initial_delivery_count);
        w.opt_ulong(self.max_message_size);
        w.opt_value(self.offered_capabilities.as_ref());
        w.opt_value(self.desired_capabilities.as_ref());
        w.opt_value(self.properties.as_ref());
        w.finish();
    }
}

impl Flow {
    fn decode_fields(f: &mut FieldReader) -> Result<Self, CodecError> {
        Ok(Flow {
            next_incoming_id: f.uint("next-incoming-id")?,
            incoming_window: f.req_uint("incoming-window")?,
            next_outgoing_id: f.req_uint("next-outgoing-id")?,
            outgoing_window: f.req_uint("outgoing-window")?,
            handle: f.uint("handle")?,
            delivery_count: f.uint("delivery-count")?,
            link_credit: f.uint("link-credit")?,
            available: f.uint("available")?,
            drain: f.boolean("drain")?.unwrap_or(false),
            echo: f.boolean("echo")?.unwrap_or(false),
            properties: f.value()?,
        })
    }

    fn encode_fields(&self, out: &mut BytesMut) {
        let mut w = FieldWriter::begin(out, code::FLOW);
        w.opt_uint(self.next_incoming_id);
        w.uint(self.incoming_window);
        w.uint(self.next_outgoing_id);
        w.uint(self.outgoing_window);
        w.opt_uint(self.handle);
        w.opt_uint(self.delivery_count);
        w.opt_uint(self.link_credit);
        w.opt_uint(self.available);
        w.flag(self.drain);
        w.flag(self.echo);
        w.opt_value(self.properties.as_ref());
        w.finish();
    }
}

impl Transfer {
    fn decode_fields(f: &mut FieldReader) -> Result<Self, CodecError> {
        Ok(Transfer {
            handle: f.req_uint("handle")?,
            delivery_id: f.uint("delivery-id")?,
            delivery_tag: f.binary("delivery-tag")?,
            message_format: f.uint("message-format")?,
            settled: f.boolean("settled")?,
            more: f.boolean("more")?.unwrap_or(false),
            rcv_settle_mode: match f.ubyte("rcv-settle-mode")? {
                None => None,
                Some(v) => Some(ReceiverSettleMode::from_wire(v, f)?),
            },
            state: f.nested(DeliveryState::decode)?,
            resume: f.boolean("resume")?.unwrap_or(false),
            aborted: f.boolean("aborted")?.unwrap_or(false),
            batchable: f.boolean("batchable")?.unwrap_or(false),
        })
    }

    /// Writes the transfer performative with `more` overridden (frame splitting).
    pub(crate) fn encode_with_more(&self, more: bool, out: &mut BytesMut) {
        let mut w = FieldWriter::begin(out, code::TRANSFER);
        w.uint(self.handle);
        w.opt_uint(self.delivery_id);
        w.opt_binary(self.delivery_tag.as_deref());
        w.opt_uint(self.message_format);
        w.opt_bool(self.settled);
        w.flag(more);
        match self.rcv_settle_mode {
            Some(m) => w.ubyte(m as u8),
            None => w.null(),
        }
        w.opt_with(self.state.as_ref(), DeliveryState::encode);
        w.flag(self.resume);
        w.flag(self.aborted);
        w.flag(self.batchable);
        w.finish();
    }
}

impl Disposition {
    fn decode_fields(f: &mut FieldReader) -> Result<Self, CodecError> {
        let role = f
            .boolean("role")?
            .ok_or_else(|| f.invalid("role", "mandatory field missing"))?;
        Ok(Disposition {
            role: Role::from_wire(role),
            first: f.req_uint("first")?,
            last: f.uint("last")?,
            settled: f.boolean("settled")?.unwrap_or(false),
            state: f.nested(DeliveryState::decode)?,
            batchable: f.boolean("batchable")?.unwrap_or(false),
        })
    }

    fn encode_fields(&self, out: &mut BytesMut) {
        let mut w = FieldWriter::begin(out, code::DISPOSITION);
        w.boolean(self.role.is_receiver());
        w.uint(self.first);
        w.opt_uint(self.last);
        w.boolean(self.settled);
        w.opt_with(self.state.as_ref(), DeliveryState::encode);
        w.flag(self.batchable);
        w.finish();
    }
}

impl Performative {
    /// Decodes a performative and advances `body` past it; for a transfer what remains is
    /// the payload.
    pub fn decode(body: &mut Bytes) -> Result<Self, CodecError> {
        // One per settled message from most clients: read without the generic decode.
        if let Some(disposition) = Disposition::decode_common(body) {
            return Ok(Performative::Disposition(disposition));
        }
        Self::decode_generic(body)
    }

    /// [`Performative::decode`] field by field, whatever the encoding.
    fn decode_generic(body: &mut Bytes) -> Result<Self, CodecError> {
        let d = read_descriptor(body)?;
        let Some(c) = descriptor_code(&d) else {
            return Err(CodecError::UnexpectedDescriptor(format!("{d:?}")));
        };
        let name = match c {
            code::OPEN => "open",
            code::BEGIN => "begin",
            code::ATTACH => "attach",
            code::FLOW => "flow",
            code::TRANSFER => "transfer",
            code::DISPOSITION => "disposition",
            code::DETACH => "detach",
            code::END => "end",
            code::CLOSE => "close",
            _ => return Err(CodecError::UnexpectedDescriptor(format!("{d:?}"))),
        };
        let mut f = FieldReader::open(body, name)?;
        Ok(match c {
            code::OPEN => Performative::Open(Box::new(Open::decode_fields(&mut f)?)),
            code::BEGIN => Performative::Begin(Begin::decode_fields(&mut f)?),
            code::ATTACH => Performative::Attach(Box::new(Attach::decode_fields(&mut f)?)),
            code::FLOW => Performative::Flow(Flow::decode_fields(&mut f)?),
            code::TRANSFER => Performative::Transfer(Transfer::decode_fields(&mut f)?),
            code::DISPOSITION => Performative::Disposition(Disposition::decode_fields(&mut f)?),
            code::DETACH => Performative::Detach(Detach {
                handle: f.req_uint("handle")?,
                closed: f.boolean("closed")?.unwrap_or(false),
                error: decode_error_only(&mut f)?,
            }),
            code::END => Performative::End(End {
                error: decode_error_only(&mut f)?,
            }),
            _ => Performative::Close(Close {
                error: decode_error_only(&mut f)?,
            }),
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Performative::Open(p) => p.encode_fields(out),
            Performative::Begin(p) => p.encode_fields(out),
            Performative::Attach(p) => p.encode_fields(out),
            Performative::Flow(p) => p.encode_fields(out),
            Performative::Transfer(p) => p.encode_with_more(p.more, out),
            Performative::Disposition(p) => p.encode_fields(out),
            Performative::Detach(p) => {
                let mut w = FieldWriter::begin(out, code::DETACH);
                w.uint(p.handle);
                w.flag(p.closed);
                w.opt_with(p.error.as_ref(), ErrorCondition::encode);
                w.finish();
            }
            Performative::End(p) => encode_error_only(code::END, p.error.as_ref(), out),
            Performative::Close(p) => encode_error_only(code::CLOSE, p.error.as_ref(), out),
        }
    }

    /// The performative's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Performative::Open(_) => "open",
            Performative::Begin(_) => "begin",
            Performative::Attach(_) => "attach",
            Performative::Flow(_) => "flow",
            Performative::Transfer(_) => "transfer",
            Performative::Disposition(_) => "disposition",
            Performative::Detach(_) => "detach",
            Performative::End(_) => "end",
            Performative::Close(_) => "close",
        }
    }
}

fn encode_error_only(code: u64, error: Option<&ErrorCondition>, out: &mut BytesMut) {
    let mut w = FieldWriter::begin(out, code);
    w.opt_with(error, ErrorCondition::encode);
    w.finish();
}

macro_rules! into_performative {
    ($($t:ident),*) => {$(
        impl From<$t> for Performative {
            fn from(p: $t) -> Self {
                Performative::$t(p.into())
            }
        }
    )*};
}
// `into` boxes Open and Attach.
into_performative!(
    Open,
    Begin,
    Attach,
    Flow,
    Transfer,
    Disposition,
    Detach,
    End,
    Close
);

impl SaslCode {
    fn from_wire(v: u8) -> Option<Self> {
        Some(match v {
            0 => SaslCode::Ok,
            1 => SaslCode::Auth,
            2 => SaslCode::Sys,
            3 => SaslCode::SysPerm,
            4 => SaslCode::SysTemp,
            _ => return None,
        })
    }
}

impl SaslFrame {
    pub fn decode(body: &mut Bytes) -> Result<Self, CodecError> {
        let d = read_descriptor(body)?;
        let c = descriptor_code(&d);
        let name = match c {
            Some(code::SASL_MECHANISMS) => "sasl-mechanisms",
            Some(code::SASL_INIT) => "sasl-init",
            Some(code::SASL_CHALLENGE) => "sasl-challenge",
            Some(code::SASL_RESPONSE) => "sasl-response",
            Some(code::SASL_OUTCOME) => "sasl-outcome",
            _ => return Err(CodecError::UnexpectedDescriptor(format!("{d:?}"))),
        };
        let mut f = FieldReader::open(body, name)?;
        let missing = |f: &FieldReader, field| f.invalid(field, "mandatory field missing");
        Ok(match c {
            Some(code::SASL_MECHANISMS) => {
                // A single symbol or an array of symbols (the field is `multiple`).
                let mechanisms = match f.value()? {
                    Some(Value::Symbol(s)) => vec![s],
                    Some(Value::Array(items)) => items
                        .into_iter()
                        .map(|v| match v {
                            Value::Symbol(s) => Ok(s),
                            _ => Err(f.invalid("sasl-server-mechanisms", "expected symbols")),
                        })
                        .collect::<Result<_, _>>()?,
                    Some(_) => return Err(f.invalid("sasl-server-mechanisms", "expected symbols")),
                    None => return Err(missing(&f, "sasl-server-mechanisms")),
                };
                SaslFrame::Mechanisms { mechanisms }
            }
            Some(code::SASL_INIT) => SaslFrame::Init {
                mechanism: f
                    .symbol("mechanism")?
                    .ok_or_else(|| missing(&f, "mechanism"))?,
                initial_response: f.binary("initial-response")?,
                hostname: f.string("hostname")?,
            },
            Some(code::SASL_CHALLENGE) => SaslFrame::Challenge {
                challenge: f
                    .binary("challenge")?
                    .ok_or_else(|| missing(&f, "challenge"))?,
            },
            Some(code::SASL_RESPONSE) => SaslFrame::Response {
                response: f
                    .binary("response")?
                    .ok_or_else(|| missing(&f, "response"))?,
            },
            _ => {
                let raw = f.ubyte("code")?.ok_or_else(|| missing(&f, "code"))?;
                SaslFrame::Outcome {
                    code: SaslCode::from_wire(raw)
                        .ok_or_else(|| f.invalid("code", "unknown sasl outcome code"))?,
                    additional_data: f.binary("additional-data")?,
                }
            }
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            SaslFrame::Mechanisms { mechanisms } => {
                let mut w = FieldWriter::begin(out, code::SASL_MECHANISMS);
                let list = Value::Array(mechanisms.iter().cloned().map(Value::Symbol).collect());
                w.value(&list);
                w.finish();
            }
            SaslFrame::Init {
                mechanism,
                initial_response,
                hostname,
            } => {
                let mut w = FieldWriter::begin(out, code::SASL_INIT);
                w.symbol(mechanism);
                w.opt_binary(initial_response.as_deref());
                w.opt_string(hostname.as_deref());
                w.finish();
            }
            SaslFrame::Challenge { challenge } => {
                let mut w = FieldWriter::begin(out, code::SASL_CHALLENGE);
                w.binary(challenge);
                w.finish();
            }
            SaslFrame::Response { response } => {
                let mut w = FieldWriter::begin(out, code::SASL_RESPONSE);
                w.binary(response);
                w.finish();
            }
            SaslFrame::Outcome {
                code: outcome,
                additional_data,
            } => {
                let mut w = FieldWriter::begin(out, code::SASL_OUTCOME);
                w.ubyte(*outcome as u8);
                w.opt_binary(additional_data.as_deref());
                w.finish();
            }
        }
    }
}

/// Keeps `Descriptor` in this module's vocabulary for callers building raw states.
pub fn described(code: u64, value: Value) -> Value {
    Value::Described(Box::new(Descriptor::Code(code)), Box::new(value))
}
