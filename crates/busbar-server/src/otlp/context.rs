//! The trace context a message carries: W3C `traceparent`, or `Diagnostic-Id` (the name the
//! Service Bus SDKs used before, same format) in its application properties.

use busbar_amqp::message::scan_sections;
use busbar_amqp::value::Value;
use bytes::Bytes;

/// The application properties holding a message's trace context, in order of preference.
pub const TRACE_PROPERTIES: [&str; 2] = ["traceparent", "Diagnostic-Id"];

/// Where a message's trace stands: the trace and the span that sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub parent_span_id: [u8; 8],
}

impl TraceContext {
    /// The context of the encoded AMQP message `message`, if it carries a valid one. An
    /// unreadable message or a malformed header has none: tracing never refuses a message.
    pub fn of_message(message: &Bytes) -> Option<TraceContext> {
        let properties = scan_sections(message)
            .ok()?
            .application_properties()
            .ok()??;
        TRACE_PROPERTIES
            .iter()
            .find_map(|name| match properties.map_get(name) {
                Some(Value::String(header)) => TraceContext::parse(header),
                _ => None,
            })
    }

    /// Parses a `traceparent` header: `version-traceid-parentid-flags`, lowercase hex,
    /// with all-zero ids invalid (W3C Trace Context, level 1). Later versions may append
    /// fields after the flags; version `ff` is invalid.
    pub fn parse(header: &str) -> Option<TraceContext> {
        let mut fields = header.trim().split('-');
        let version = fields.next().filter(|v| v.len() == 2)?;
        let trace_id: [u8; 16] = hex_bytes(fields.next()?)?;
        let parent_span_id: [u8; 8] = hex_bytes(fields.next()?)?;
        let _flags: [u8; 1] = hex_bytes(fields.next()?)?;
        let version: [u8; 1] = hex_bytes(version)?;
        if version == [0xff]
            || (version == [0] && fields.next().is_some())
            || trace_id == [0; 16]
            || parent_span_id == [0; 8]
        {
            return None;
        }
        Some(TraceContext {
            trace_id,
            parent_span_id,
        })
    }
}

/// Exactly `2 * N` lowercase hex digits as bytes.
fn hex_bytes<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let mut bytes = [0; N];
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
    }
    Some(bytes)
}

fn hex_digit(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const HEADER: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn reads_the_ids_of_a_traceparent() {
        let context = TraceContext::parse(HEADER).unwrap();
        assert_eq!(context.trace_id[..2], [0x0a, 0xf7]);
        assert_eq!(context.trace_id[15], 0x9c);
        assert_eq!(
            context.parent_span_id,
            [0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31]
        );
    }

    #[test]
    fn refuses_malformed_and_zero_ids() {
        for header in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00-0af7651916cd43dd8448eb211c80319-cb7ad6b7169203331-01",
        ] {
            assert_eq!(TraceContext::parse(header), None, "{header}");
        }
    }

    #[test]
    fn a_later_version_may_append_fields() {
        let header = "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-next";
        assert!(TraceContext::parse(header).is_some());
    }
}
