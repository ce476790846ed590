//! The usual shape of a delivered message, read in one pass over its bytes: sections with
//! small descriptor codes, a header and properties in their usual constructors, broker
//! annotations with symbol keys and scalar values, one `data` body section. This is what
//! every message of a processor goes through, and the general reader (sections located
//! first, then each one cut out of the message and decoded by the codec's readers, every
//! step a `Bytes` clone and drop) costs several times as much.
//!
//! It only ever accepts: whatever it does not know, or finds wrong, it leaves to the general
//! reader ([`MessageParts::read`]) by answering `None`, so that what a message decodes to,
//! and whether it decodes at all, is the general reader's answer either way.

use std::ops::Range;

use bytes::Bytes;
use uuid::Uuid;

use busbar_amqp::codec::{decode_value, fc, value_len};

use super::message::{
    BrokerAnnotations, DEAD_LETTER_SOURCE, ENQUEUE_SEQUENCE_NUMBER, ENQUEUED_TIME, LOCKED_UNTIL,
    MESSAGE_STATE, MessageParts, PARTITION_KEY, SCHEDULED_ENQUEUE_TIME, SEQUENCE_NUMBER,
    application_properties, from_millis,
};

/// Section descriptor codes (`00 53 code`).
const HEADER: u8 = 0x70;
const MESSAGE_ANNOTATIONS: u8 = 0x72;
const PROPERTIES: u8 = 0x73;
const APPLICATION_PROPERTIES: u8 = 0x74;
const DATA: u8 = 0x75;
const FOOTER: u8 = 0x78;

/// Reads the parts of `raw` into `parts` (which starts as the default); `None` when the
/// general reader is to read it (`parts` is then partly filled).
pub(super) fn read(raw: &Bytes, parts: &mut MessageParts) -> Option<()> {
    let sections = Sections::find(raw)?;
    if let Some(header) = &sections.header {
        let mut fields = Fields::open(&raw[header.clone()])?;
        fields.boolean()?; // durable
        if let Some(priority) = fields.uint()? {
            u8::try_from(priority).ok()?;
        }
        parts.ttl = fields.uint()?;
        fields.boolean()?; // first-acquirer
        parts.delivery_count = fields.uint()?.unwrap_or(0);
    }
    if let Some(properties) = &sections.properties {
        let mut fields = Fields::open(&raw[properties.clone()])?;
        parts.message_id = fields.id()?;
        fields.binary()?; // user-id
        parts.to = fields.string()?;
        parts.subject = fields.string()?;
        parts.reply_to = fields.string()?;
        parts.correlation_id = fields.id()?;
        parts.content_type = fields
            .symbol()?
            .map(|s| std::str::from_utf8(s).unwrap_or_default().to_owned());
        fields.symbol()?; // content-encoding
        parts.absolute_expiry_time = fields.timestamp()?;
        fields.timestamp()?; // creation-time
        parts.session_id = fields.string()?;
        fields.uint()?; // group-sequence
        parts.reply_to_session_id = fields.string()?;
    }
    if let Some(annotations) = &sections.message_annotations {
        parts.annotations = broker_annotations(&raw[annotations.clone()])?;
    }
    if let Some(section) = &sections.application_properties {
        // Any map of any values: the codec's decoder, as the general reader does it.
        let value = match decode_value(&mut raw.slice(section.clone())).ok()? {
            busbar_amqp::Value::Null => None,
            value => Some(value),
        };
        parts.application_properties = application_properties(value);
    }
    if let Some(data) = &sections.data {
        let mut value = &raw[data.clone()];
        let code = take_u8(&mut value)?;
        if !matches!(code, fc::VBIN8 | fc::VBIN32) {
            return None;
        }
        let n = take_size(code, &mut value)?;
        parts.body = raw.slice(data.end - n..data.end);
    }
    Some(())
}

/// Where the sections this reader decodes are (their values, after the descriptor).
#[derive(Default)]
struct Sections {
    header: Option<Range<usize>>,
    message_annotations: Option<Range<usize>>,
    properties: Option<Range<usize>>,
    application_properties: Option<Range<usize>>,
    data: Option<Range<usize>>,
}

impl Sections {
    /// Every section measured as `scan_sections` measures it; `None` for a descriptor that
    /// is not a small code, a section twice, several body sections or another body kind.
    fn find(raw: &[u8]) -> Option<Self> {
        let mut sections = Sections::default();
        let mut seen = 0u16;
        let mut at = 0;
        while at < raw.len() {
            let [fc::DESCRIBED, fc::SMALLULONG, code, ..] = raw[at..] else {
                return None;
            };
            let start = at + 3;
            let end = start + value_len(&raw[start..]).ok()?;
            let bit = 1u16 << code.checked_sub(HEADER).filter(|&n| n <= FOOTER - HEADER)?;
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
            let slot = match code {
                HEADER => &mut sections.header,
                MESSAGE_ANNOTATIONS => &mut sections.message_annotations,
                PROPERTIES => &mut sections.properties,
                APPLICATION_PROPERTIES => &mut sections.application_properties,
                DATA => &mut sections.data,
                // Delivery annotations and the footer: measured, not read.
                0x71 | FOOTER => {
                    at = end;
                    continue;
                }
                // amqp-sequence and amqp-value bodies.
                _ => return None,
            };
            *slot = Some(start..end);
            at = end;
        }
        Some(sections)
    }
}

/// The fields of a composite's list, read as the codec's field reader reads them. Each
/// reader answers `None` (leave it to the general reader) or the field (`None` when null
/// or absent).
struct Fields<'a> {
    body: &'a [u8],
    remaining: usize,
}

impl<'a> Fields<'a> {
    /// The list that is the whole of `value`.
    fn open(mut value: &'a [u8]) -> Option<Self> {
        let code = take_u8(&mut value)?;
        let (body, count) = match code {
            fc::LIST0 => (&[][..], 0),
            fc::LIST8 | fc::LIST32 => {
                let size = take_size(code, &mut value)?;
                let mut body = take(&mut value, size)?;
                let count = take_size(code, &mut body)?;
                (body, count)
            }
            _ => return None,
        };
        (count <= body.len()).then_some(Fields {
            body,
            remaining: count,
        })
    }

    /// The next field's constructor, `None` inside when it is null or absent.
    #[inline]
    fn next_code(&mut self) -> Option<Option<u8>> {
        if self.remaining == 0 {
            return Some(None);
        }
        self.remaining -= 1;
        match take_u8(&mut self.body)? {
            fc::NULL => Some(None),
            code => Some(Some(code)),
        }
    }

    fn boolean(&mut self) -> Option<Option<bool>> {
        Some(match self.next_code()? {
            None => None,
            Some(fc::TRUE) => Some(true),
            Some(fc::FALSE) => Some(false),
            Some(fc::BOOL) => Some(take_u8(&mut self.body)? != 0),
            Some(_) => return None,
        })
    }

    fn uint(&mut self) -> Option<Option<u32>> {
        Some(match self.next_code()? {
            None => None,
            Some(fc::UINT0) => Some(0),
            Some(fc::SMALLUINT | fc::UBYTE) => Some(take_u8(&mut self.body)?.into()),
            Some(fc::UINT) => Some(u32::from_be_bytes(take_array(&mut self.body)?)),
            Some(_) => return None,
        })
    }

    fn timestamp(&mut self) -> Option<Option<i64>> {
        Some(match self.next_code()? {
            None => None,
            Some(fc::TIMESTAMP) => Some(i64::from_be_bytes(take_array(&mut self.body)?)),
            Some(_) => return None,
        })
    }

    fn string(&mut self) -> Option<Option<String>> {
        Some(match self.next_code()? {
            None => None,
            Some(code @ (fc::STR8 | fc::STR32)) => Some(take_str(code, &mut self.body)?.to_owned()),
            Some(_) => return None,
        })
    }

    /// A symbol's bytes (a symbol is not checked as UTF-8).
    fn symbol(&mut self) -> Option<Option<&'a [u8]>> {
        Some(match self.next_code()? {
            None => None,
            Some(code @ (fc::SYM8 | fc::SYM32)) => {
                let n = take_size(code, &mut self.body)?;
                Some(take(&mut self.body, n)?)
            }
            Some(_) => return None,
        })
    }

    /// Checked and dropped.
    fn binary(&mut self) -> Option<()> {
        match self.next_code()? {
            None => {}
            Some(code @ (fc::VBIN8 | fc::VBIN32)) => {
                let n = take_size(code, &mut self.body)?;
                take(&mut self.body, n)?;
            }
            Some(_) => return None,
        }
        Some(())
    }

    /// A message id or correlation id, as text (see `id_text`): a string or a UUID.
    fn id(&mut self) -> Option<Option<String>> {
        Some(match self.next_code()? {
            None => None,
            Some(code @ (fc::STR8 | fc::STR32)) => Some(take_str(code, &mut self.body)?.to_owned()),
            Some(fc::UUID) => Some(Uuid::from_bytes(take_array(&mut self.body)?).to_string()),
            Some(_) => return None,
        })
    }
}

/// The broker's annotations in a message annotations map (the whole of `value`), read as
/// `BrokerAnnotations::read` reads them; the values of other keys are checked as decoding
/// them would check them.
fn broker_annotations(mut value: &[u8]) -> Option<BrokerAnnotations> {
    let code = take_u8(&mut value)?;
    let (mut body, count) = match code {
        fc::NULL => (&[][..], 0),
        fc::MAP8 | fc::MAP32 => {
            let size = take_size(code, &mut value)?;
            let mut body = take(&mut value, size)?;
            let count = take_size(code, &mut body)?;
            (body, count)
        }
        _ => return None,
    };
    if count % 2 != 0 || count > body.len() {
        return None;
    }
    let mut read = BrokerAnnotations::default();
    for _ in 0..count / 2 {
        let code = take_u8(&mut body)?;
        let key = match code {
            fc::SYM8 | fc::SYM32 => {
                let n = take_size(code, &mut body)?;
                take(&mut body, n)?
            }
            fc::STR8 | fc::STR32 => take_str(code, &mut body)?.as_bytes(),
            _ => return None,
        };
        let body = &mut body;
        match key {
            k if k == SEQUENCE_NUMBER.as_bytes() => read.sequence_number = integer(body)?,
            k if k == ENQUEUED_TIME.as_bytes() => {
                read.enqueued_time = integer(body)?.and_then(from_millis);
            }
            k if k == LOCKED_UNTIL.as_bytes() => {
                read.locked_until = integer(body)?.and_then(from_millis);
            }
            k if k == MESSAGE_STATE.as_bytes() => read.message_state = integer(body)?,
            k if k == SCHEDULED_ENQUEUE_TIME.as_bytes() => {
                read.scheduled_enqueue_time = integer(body)?.and_then(from_millis);
            }
            k if k == PARTITION_KEY.as_bytes() => read.partition_key = text(body)?,
            k if k == DEAD_LETTER_SOURCE.as_bytes() => read.dead_letter_source = text(body)?,
            k if k == ENQUEUE_SEQUENCE_NUMBER.as_bytes() => {
                read.enqueue_sequence_number = integer(body)?;
            }
            _ => {
                let code = take_u8(body)?;
                skip_scalar(code, body)?;
            }
        }
    }
    body.is_empty().then_some(read)
}

/// An annotation's value as `MapReader::integer_value` reads it.
fn integer(body: &mut &[u8]) -> Option<Option<i64>> {
    Some(match take_u8(body)? {
        fc::LONG | fc::TIMESTAMP => Some(i64::from_be_bytes(take_array(body)?)),
        fc::INT => Some(i32::from_be_bytes(take_array(body)?).into()),
        fc::SMALLLONG | fc::SMALLINT => Some(i8::from_be_bytes(take_array(body)?).into()),
        fc::NULL => None,
        _ => return None,
    })
}

/// An annotation's value as text (a string's, or a symbol's if it is UTF-8), else none.
fn text(body: &mut &[u8]) -> Option<Option<String>> {
    Some(match take_u8(body)? {
        code @ (fc::STR8 | fc::STR32) => Some(take_str(code, body)?.to_owned()),
        code @ (fc::SYM8 | fc::SYM32) => {
            let n = take_size(code, body)?;
            std::str::from_utf8(take(body, n)?).ok().map(str::to_owned)
        }
        code => {
            skip_scalar(code, body)?;
            None
        }
    })
}

/// Moves past a scalar value whose constructor was `code`, checking it as decoding it
/// would; `None` for compound and described values (and invalid constructors).
fn skip_scalar(code: u8, body: &mut &[u8]) -> Option<()> {
    let n = match code {
        fc::NULL | fc::TRUE | fc::FALSE | fc::UINT0 | fc::ULONG0 | fc::LIST0 => 0,
        fc::UBYTE
        | fc::BYTE
        | fc::SMALLUINT
        | fc::SMALLULONG
        | fc::SMALLINT
        | fc::SMALLLONG
        | fc::BOOL => 1,
        fc::USHORT | fc::SHORT => 2,
        fc::UINT | fc::INT | fc::FLOAT | fc::DECIMAL32 => 4,
        fc::ULONG | fc::LONG | fc::DOUBLE | fc::TIMESTAMP | fc::DECIMAL64 => 8,
        fc::DECIMAL128 | fc::UUID => 16,
        fc::VBIN8 | fc::VBIN32 | fc::SYM8 | fc::SYM32 => take_size(code, body)?,
        fc::STR8 | fc::STR32 => return take_str(code, body).map(|_| ()),
        _ => return None,
    };
    take(body, n).map(|_| ())
}

#[inline]
fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (head, rest) = buf.split_at_checked(n)?;
    *buf = rest;
    Some(head)
}

#[inline]
fn take_u8(buf: &mut &[u8]) -> Option<u8> {
    let (&byte, rest) = buf.split_first()?;
    *buf = rest;
    Some(byte)
}

#[inline]
fn take_array<const N: usize>(buf: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = buf.split_first_chunk::<N>()?;
    *buf = rest;
    Some(*head)
}

/// The size prefix of a variable-width or compound value (one byte or four, by `code`).
#[inline]
fn take_size(code: u8, buf: &mut &[u8]) -> Option<usize> {
    if code & 0x10 == 0 {
        take_u8(buf).map(usize::from)
    } else {
        take_array::<4>(buf).and_then(|n| usize::try_from(u32::from_be_bytes(n)).ok())
    }
}

/// A string's text (checked as UTF-8) after its constructor `code`.
#[inline]
fn take_str<'a>(code: u8, buf: &mut &'a [u8]) -> Option<&'a str> {
    let n = take_size(code, buf)?;
    std::str::from_utf8(take(buf, n)?).ok()
}
