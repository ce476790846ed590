//! Message sections kept as raw slices so the bare message is never re-encoded.
//!
//! A message is a sequence of described sections. The broker stores what the client sent
//! and, on delivery, rebuilds only the header and message annotations (and, when asked,
//! patches a few properties or adds application properties) while every other section is
//! copied byte for byte. Sections are accepted in any order (Python puts
//! delivery-annotations last) and skipped by their size prefix rather than decoded.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::{
    CompoundWriter, FieldReader, FieldWriter, MapReader, decode_value, descriptor_code,
    encode_descriptor, encode_value, encode_variable, fc, read_descriptor, skip_value, take_binary,
    take_compound, take_u8,
};
use crate::error::CodecError;
use crate::value::{Descriptor, Symbol, Timestamp, Value};

/// Section descriptor codes.
pub mod section {
    pub const HEADER: u64 = 0x70;
    pub const DELIVERY_ANNOTATIONS: u64 = 0x71;
    pub const MESSAGE_ANNOTATIONS: u64 = 0x72;
    pub const PROPERTIES: u64 = 0x73;
    pub const APPLICATION_PROPERTIES: u64 = 0x74;
    pub const DATA: u64 = 0x75;
    pub const AMQP_SEQUENCE: u64 = 0x76;
    pub const AMQP_VALUE: u64 = 0x77;
    pub const FOOTER: u64 = 0x78;
}

/// Message-format of a Service Bus batch envelope whose data sections are whole messages.
pub const BATCH_MESSAGE_FORMAT: u32 = 0x8001_3700;

/// Which kind of body a message has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Data,
    AmqpSequence,
    AmqpValue,
}

/// Byte ranges of each section within the encoded message (descriptor included).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageSections {
    pub header: Option<Range<usize>>,
    pub delivery_annotations: Option<Range<usize>>,
    pub message_annotations: Option<Range<usize>>,
    pub properties: Option<Range<usize>>,
    pub application_properties: Option<Range<usize>>,
    /// From the first body section's start to the last one's end; body sections must be
    /// adjacent to each other.
    pub body: Option<Range<usize>>,
    pub body_kind: Option<BodyKind>,
    /// Number of body sections (several `data` sections are allowed).
    pub body_sections: usize,
    pub footer: Option<Range<usize>>,
}

/// An encoded message with its sections located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedMessage {
    pub raw: Bytes,
    pub sections: MessageSections,
}

/// Locates every section of `msg` without decoding any of them.
pub fn scan_sections(msg: &Bytes) -> Result<ScannedMessage, CodecError> {
    let mut sections = MessageSections::default();
    let total = msg.len();
    let mut buf = msg.clone();
    while !buf.is_empty() {
        let start = total - buf.len();
        let d = read_descriptor(&mut buf)?;
        skip_value(&mut buf)?;
        let range = start..total - buf.len();
        let slot = match descriptor_code(&d) {
            Some(section::HEADER) => &mut sections.header,
            Some(section::DELIVERY_ANNOTATIONS) => &mut sections.delivery_annotations,
            Some(section::MESSAGE_ANNOTATIONS) => &mut sections.message_annotations,
            Some(section::PROPERTIES) => &mut sections.properties,
            Some(section::APPLICATION_PROPERTIES) => &mut sections.application_properties,
            Some(section::FOOTER) => &mut sections.footer,
            Some(code @ (section::DATA | section::AMQP_SEQUENCE | section::AMQP_VALUE)) => {
                let kind = match code {
                    section::DATA => BodyKind::Data,
                    section::AMQP_SEQUENCE => BodyKind::AmqpSequence,
                    _ => BodyKind::AmqpValue,
                };
                match &mut sections.body {
                    None => {
                        sections.body = Some(range);
                        sections.body_kind = Some(kind);
                    }
                    Some(body) if body.end == range.start && sections.body_kind == Some(kind) => {
                        body.end = range.end;
                    }
                    Some(_) => {
                        return Err(CodecError::Other(
                            "body sections must be adjacent and of one kind",
                        ));
                    }
                }
                sections.body_sections += 1;
                continue;
            }
            _ => {
                return Err(CodecError::UnexpectedDescriptor(format!(
                    "{d:?} as a section"
                )));
            }
        };
        if slot.is_some() {
            return Err(CodecError::Other("duplicate message section"));
        }
        *slot = Some(range);
    }
    Ok(ScannedMessage {
        raw: msg.clone(),
        sections,
    })
}

/// The message header (0x70).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub durable: bool,
    pub priority: u8,
    /// Milliseconds.
    pub ttl: Option<u32>,
    pub first_acquirer: bool,
    /// Number of previous failed delivery attempts.
    pub delivery_count: u32,
}

impl Default for Header {
    fn default() -> Self {
        Header {
            durable: false,
            priority: 4,
            ttl: None,
            first_acquirer: false,
            delivery_count: 0,
        }
    }
}

impl Header {
    /// Decodes a header section (descriptor included).
    pub fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        let mut f = open_section(buf, section::HEADER, "header")?;
        Ok(Header {
            durable: f.boolean("durable")?.unwrap_or(false),
            priority: f.ubyte("priority")?.unwrap_or(4),
            ttl: f.uint("ttl")?,
            first_acquirer: f.boolean("first-acquirer")?.unwrap_or(false),
            delivery_count: f.uint("delivery-count")?.unwrap_or(0),
        })
    }

    /// Writes the header section, leaving default-valued fields out (but delivery-count).
    pub fn encode(&self, out: &mut BytesMut) {
        let mut w = FieldWriter::begin(out, section::HEADER);
        w.flag(self.durable);
        if self.priority == 4 {
            w.null();
        } else {
            w.ubyte(self.priority);
        }
        w.opt_uint(self.ttl);
        w.flag(self.first_acquirer);
        // Always explicit: the Python SDK reports a missing delivery-count as None, not 0.
        w.uint(self.delivery_count);
        w.finish();
    }
}

/// The immutable properties (0x73).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Properties {
    /// string, uuid, ulong or binary.
    pub message_id: Option<Value>,
    pub user_id: Option<Bytes>,
    pub to: Option<String>,
    pub subject: Option<String>,
    pub reply_to: Option<String>,
    pub correlation_id: Option<Value>,
    pub content_type: Option<Symbol>,
    pub content_encoding: Option<Symbol>,
    pub absolute_expiry_time: Option<Timestamp>,
    pub creation_time: Option<Timestamp>,
    /// Service Bus session id.
    pub group_id: Option<String>,
    pub group_sequence: Option<u32>,
    /// Service Bus reply-to session id.
    pub reply_to_group_id: Option<String>,
}

impl Properties {
    /// Decodes a properties section (descriptor included).
    pub fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        let mut f = open_section(buf, section::PROPERTIES, "properties")?;
        Ok(Properties {
            message_id: f.value()?,
            user_id: f.binary("user-id")?,
            to: f.string("to")?,
            subject: f.string("subject")?,
            reply_to: f.string("reply-to")?,
            correlation_id: f.value()?,
            content_type: f.symbol("content-type")?,
            content_encoding: f.symbol("content-encoding")?,
            absolute_expiry_time: f.timestamp("absolute-expiry-time")?,
            creation_time: f.timestamp("creation-time")?,
            group_id: f.string("group-id")?,
            group_sequence: f.uint("group-sequence")?,
            reply_to_group_id: f.string("reply-to-group-id")?,
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        let mut w = FieldWriter::begin(out, section::PROPERTIES);
        w.opt_value(self.message_id.as_ref());
        w.opt_binary(self.user_id.as_deref());
        w.opt_string(self.to.as_deref());
        w.opt_string(self.subject.as_deref());
        w.opt_string(self.reply_to.as_deref());
        w.opt_value(self.correlation_id.as_ref());
        w.opt_symbol(self.content_type.as_ref());
        w.opt_symbol(self.content_encoding.as_ref());
        w.opt_timestamp(self.absolute_expiry_time);
        w.opt_timestamp(self.creation_time);
        w.opt_string(self.group_id.as_deref());
        w.opt_uint(self.group_sequence);
        w.opt_string(self.reply_to_group_id.as_deref());
        w.finish();
    }
}

fn open_section(buf: &mut Bytes, code: u64, name: &'static str) -> Result<FieldReader, CodecError> {
    let d = read_descriptor(buf)?;
    if descriptor_code(&d) != Some(code) {
        return Err(CodecError::UnexpectedDescriptor(format!(
            "{d:?} where {name} was expected"
        )));
    }
    FieldReader::open(buf, name)
}

/// Decodes the value of a section (after its descriptor).
fn section_value(raw: &Bytes, range: &Option<Range<usize>>) -> Result<Option<Value>, CodecError> {
    let Some(range) = range else { return Ok(None) };
    let mut buf = raw.slice(range.clone());
    read_descriptor(&mut buf)?;
    match decode_value(&mut buf)? {
        Value::Null => Ok(None),
        v => Ok(Some(v)),
    }
}

impl ScannedMessage {
    /// The bytes of a section (descriptor included).
    pub fn section_bytes(&self, range: &Option<Range<usize>>) -> Option<Bytes> {
        range.as_ref().map(|r| self.raw.slice(r.clone()))
    }

    pub fn header(&self) -> Result<Option<Header>, CodecError> {
        match self.section_bytes(&self.sections.header) {
            Some(mut b) => Header::decode(&mut b).map(Some),
            None => Ok(None),
        }
    }

    pub fn properties(&self) -> Result<Option<Properties>, CodecError> {
        match self.section_bytes(&self.sections.properties) {
            Some(mut b) => Properties::decode(&mut b).map(Some),
            None => Ok(None),
        }
    }

    /// The message-id alone, without decoding the other properties.
    pub fn message_id(&self) -> Result<Option<Value>, CodecError> {
        match self.section_bytes(&self.sections.properties) {
            Some(mut b) => open_section(&mut b, section::PROPERTIES, "properties")?.value(),
            None => Ok(None),
        }
    }

    /// Message annotations as a `Value::Map` (symbol keys).
    pub fn message_annotations(&self) -> Result<Option<Value>, CodecError> {
        section_value(&self.raw, &self.sections.message_annotations)
    }

    /// Message annotations entry by entry, without building the map (no entries when the
    /// section is absent).
    pub fn message_annotation_entries(&self) -> Result<MapReader, CodecError> {
        match self.section_bytes(&self.sections.message_annotations) {
            Some(mut buf) => {
                read_descriptor(&mut buf)?;
                let entries = MapReader::open(&mut buf)?;
                if !buf.is_empty() {
                    return Err(CodecError::Other(
                        "trailing bytes after message annotations",
                    ));
                }
                Ok(entries)
            }
            None => Ok(MapReader::default()),
        }
    }

    pub fn delivery_annotations(&self) -> Result<Option<Value>, CodecError> {
        section_value(&self.raw, &self.sections.delivery_annotations)
    }

    /// Application properties as a `Value::Map` (string keys).
    pub fn application_properties(&self) -> Result<Option<Value>, CodecError> {
        section_value(&self.raw, &self.sections.application_properties)
    }

    /// The raw bytes of all body sections.
    pub fn body_bytes(&self) -> Bytes {
        self.section_bytes(&self.sections.body).unwrap_or_default()
    }

    /// The binaries of the `data` body sections, as zero-copy slices.
    pub fn data_sections(&self) -> Result<Vec<Bytes>, CodecError> {
        if self.sections.body_kind != Some(BodyKind::Data) {
            return Ok(Vec::new());
        }
        let mut buf = self.body_bytes();
        let mut out = Vec::with_capacity(self.sections.body_sections);
        while !buf.is_empty() {
            out.push(take_data_section(&mut buf)?);
        }
        Ok(out)
    }

    /// The binaries of the `data` body sections joined: a zero-copy slice when there is one
    /// section (the usual case), empty when the body is not made of `data` sections.
    pub fn data_body(&self) -> Result<Bytes, CodecError> {
        if self.sections.body_kind != Some(BodyKind::Data) {
            return Ok(Bytes::new());
        }
        if self.sections.body_sections == 1 {
            let mut buf = self.body_bytes();
            return take_data_section(&mut buf);
        }
        Ok(self.data_sections()?.concat().into())
    }
}

/// Reads one `data` section (descriptor included) and returns its binary.
fn take_data_section(buf: &mut Bytes) -> Result<Bytes, CodecError> {
    read_descriptor(buf)?;
    match take_binary(buf)? {
        Some(b) => Ok(b),
        None => Err(CodecError::InvalidField {
            composite: "data",
            field: "(value)",
            reason: "data section is not a binary",
        }),
    }
}

/// Splits a batch envelope (message-format 0x80013700): each `data` section holds one
/// complete encoded message, returned as a zero-copy slice.
pub fn split_batch(envelope: &Bytes) -> Result<Vec<Bytes>, CodecError> {
    scan_sections(envelope)?.data_sections()
}

/// What to change when writing a stored message out for delivery.
#[derive(Debug, Clone, Copy, Default)]
pub struct RewriteOptions<'a> {
    /// The header to send; `None` keeps the stored header section as it was.
    pub header: Option<&'a Header>,
    /// Delivery annotations for this hop (the stored ones are never sent on).
    pub delivery_annotations: &'a [(Symbol, Value)],
    /// Message annotations to add, replacing stored entries with the same key.
    pub annotations: &'a [(Symbol, Value)],
    /// Application properties to add, replacing stored entries with the same key (e.g.
    /// `DeadLetterReason`). Empty keeps the stored section byte for byte.
    pub application_properties: &'a [(String, Value)],
    /// Application properties to drop from the stored section.
    pub removed_application_properties: &'a [String],
    /// Set as `properties.message-id` only if the message has none.
    pub message_id_if_missing: Option<&'a Value>,
    /// Replaces `properties.absolute-expiry-time`.
    pub absolute_expiry_time: Option<Timestamp>,
    /// Replaces the whole properties section (a rule action that set system properties);
    /// `message_id_if_missing` and `absolute_expiry_time` are then not consulted.
    pub properties: Option<&'a Properties>,
}

/// Writes the message for delivery: header, merged message annotations, properties
/// (patched only if asked), application properties (merged only if asked), then body and
/// footer byte for byte. Stored delivery annotations are dropped: they belong to one hop.
/// On error `out` is left as it was.
pub fn write_delivery(
    out: &mut BytesMut,
    scanned: &ScannedMessage,
    options: &RewriteOptions<'_>,
) -> Result<(), CodecError> {
    let mark = out.len();
    let result = write_delivery_inner(out, scanned, options);
    if result.is_err() {
        out.truncate(mark);
    }
    result
}

/// [`write_delivery`] into a new buffer.
pub fn rewrite(
    scanned: &ScannedMessage,
    options: &RewriteOptions<'_>,
) -> Result<Bytes, CodecError> {
    let mut out = BytesMut::with_capacity(scanned.raw.len() + 128);
    write_delivery(&mut out, scanned, options)?;
    Ok(out.freeze())
}

fn write_delivery_inner(
    out: &mut BytesMut,
    scanned: &ScannedMessage,
    options: &RewriteOptions<'_>,
) -> Result<(), CodecError> {
    let s = &scanned.sections;
    let raw = |r: &Option<Range<usize>>| scanned.section_bytes(r);
    match options.header {
        Some(h) => h.encode(out),
        None => put_opt(out, raw(&s.header)),
    }
    write_merged_map(
        out,
        section::DELIVERY_ANNOTATIONS,
        None,
        options.delivery_annotations,
        &[],
    )?;
    write_merged_map(
        out,
        section::MESSAGE_ANNOTATIONS,
        raw(&s.message_annotations),
        options.annotations,
        &[],
    )?;
    let patch_properties = options.absolute_expiry_time.is_some()
        || (options.message_id_if_missing.is_some() && scanned.message_id()?.is_none());
    if let Some(properties) = options.properties {
        properties.encode(out);
    } else if patch_properties {
        write_patched_properties(out, raw(&s.properties), options)?;
    } else {
        put_opt(out, raw(&s.properties));
    }
    write_merged_map(
        out,
        section::APPLICATION_PROPERTIES,
        raw(&s.application_properties),
        options.application_properties,
        options.removed_application_properties,
    )?;
    put_opt(out, raw(&s.body));
    put_opt(out, raw(&s.footer));
    Ok(())
}

fn put_opt(out: &mut BytesMut, bytes: Option<Bytes>) {
    if let Some(b) = bytes {
        out.put_slice(&b);
    }
}

/// A key of a map section that entries can be merged by.
trait MapKey {
    fn text(&self) -> &[u8];
    fn encode(&self, out: &mut BytesMut);
}

impl MapKey for Symbol {
    fn text(&self) -> &[u8] {
        &self.0
    }
    fn encode(&self, out: &mut BytesMut) {
        encode_variable(fc::SYM8, &self.0, out);
    }
}

impl MapKey for String {
    fn text(&self) -> &[u8] {
        self.as_bytes()
    }
    fn encode(&self, out: &mut BytesMut) {
        encode_variable(fc::STR8, self.as_bytes(), out);
    }
}

/// The text of an encoded string or symbol key, read in place.
fn key_text(raw: &[u8]) -> Option<&[u8]> {
    let (&code, rest) = raw.split_first()?;
    match code {
        fc::STR8 | fc::SYM8 => rest.get(1..),
        fc::STR32 | fc::SYM32 => rest.get(4..),
        _ => None,
    }
}

/// Writes a map section made of the stored entries whose keys are neither in `extras`
/// nor in `removed`, followed by `extras`. Stored entries are copied as encoded.
fn write_merged_map<K: MapKey>(
    out: &mut BytesMut,
    code: u64,
    stored: Option<Bytes>,
    extras: &[(K, Value)],
    removed: &[String],
) -> Result<(), CodecError> {
    if extras.is_empty() && removed.is_empty() {
        put_opt(out, stored);
        return Ok(());
    }
    encode_descriptor(&Descriptor::Code(code), out);
    let map = CompoundWriter::begin(out, fc::MAP8);
    let mut entries = 0;
    if let Some(mut buf) = stored {
        read_descriptor(&mut buf)?;
        let map_code = take_u8(&mut buf)?;
        if map_code != fc::NULL {
            if map_code != fc::MAP8 && map_code != fc::MAP32 {
                return Err(CodecError::InvalidFormatCode(map_code));
            }
            let (mut body, _count) = take_compound(map_code, &mut buf)?;
            while !body.is_empty() {
                let entry_start = body.clone();
                let key_len = skip_value(&mut body)?;
                let value_len = skip_value(&mut body)?;
                let key = &entry_start[..key_len];
                let replaced = key_text(key).is_some_and(|t| {
                    extras.iter().any(|(k, _)| k.text() == t)
                        || removed.iter().any(|r| r.as_bytes() == t)
                });
                if !replaced {
                    out.put_slice(&entry_start[..key_len + value_len]);
                    entries += 1;
                }
            }
        }
    }
    for (k, v) in extras {
        k.encode(out);
        encode_value(v, out);
        entries += 1;
    }
    map.finish(out, entries * 2);
    Ok(())
}

/// Index of `absolute-expiry-time` in the properties list.
const ABSOLUTE_EXPIRY_TIME: usize = 8;

/// Copies the properties section field by field, setting message-id when it is missing
/// and absolute-expiry-time when asked.
fn write_patched_properties(
    out: &mut BytesMut,
    stored: Option<Bytes>,
    options: &RewriteOptions<'_>,
) -> Result<(), CodecError> {
    let mut fields = match stored {
        Some(mut buf) => Some(open_section(&mut buf, section::PROPERTIES, "properties")?),
        None => None,
    };
    let stored_count = fields.as_ref().map_or(0, FieldReader::remaining);
    let needed = if options.absolute_expiry_time.is_some() {
        ABSOLUTE_EXPIRY_TIME + 1
    } else {
        1
    };
    let mut w = FieldWriter::begin(out, section::PROPERTIES);
    for i in 0..stored_count.max(needed) {
        let field = match &mut fields {
            Some(f) => f.raw()?,
            None => None,
        };
        match (i, field) {
            (0, None) => w.opt_value(options.message_id_if_missing),
            (ABSOLUTE_EXPIRY_TIME, _) if options.absolute_expiry_time.is_some() => {
                w.opt_timestamp(options.absolute_expiry_time);
            }
            (_, Some(bytes)) => w.raw(&bytes),
            (_, None) => w.null(),
        }
    }
    w.finish();
    Ok(())
}
