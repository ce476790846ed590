//! The disposition nearly every settlement arrives as, read straight from its bytes.
//!
//! Clients that settle each delivery on its own (the Service Bus SDKs, rhea, Qpid Proton,
//! fe2o3-amqp) send one disposition per message, all of one shape: numeric descriptor,
//! list8, booleans and uints in their short forms, no state or an empty `accepted`. The
//! generic decode builds a [`crate::Value`] per field; this reads that shape directly and
//! leaves anything else (other encodings, other outcomes, malformed input) to the generic
//! decode, so both always agree (a property test holds them to it).

use bytes::{Buf, Bytes};

use super::{DeliveryState, Disposition, Role};

/// The disposition's descriptor (`00 53 15`) and a list8 constructor.
const HEADER: [u8; 4] = [0x00, 0x53, 0x15, 0xc0];
/// An `accepted` outcome with its list as list0, and as an empty list8.
const ACCEPTED_LIST0: [u8; 4] = [0x00, 0x53, 0x24, 0x45];
const ACCEPTED_LIST8: [u8; 6] = [0x00, 0x53, 0x24, 0xc0, 0x01, 0x00];

impl Disposition {
    /// The disposition at the front of `body` if it has the common shape, advancing `body`
    /// past it; `None`, with `body` untouched, for anything else.
    pub(super) fn decode_common(body: &mut Bytes) -> Option<Disposition> {
        let (header, rest) = body.split_first_chunk::<4>()?;
        if *header != HEADER {
            return None;
        }
        let (&[size, count], rest) = rest.split_first_chunk::<2>()?;
        let fields = rest.get(..usize::from(size).checked_sub(1)?)?;
        let mut reader = Fields {
            bytes: fields,
            remaining: count,
        };
        // Role and first are mandatory: without them the generic decode says so.
        let role = reader.boolean()??;
        let first = reader.uint()??;
        let last = reader.uint()?;
        let settled = reader.boolean()?.unwrap_or(false);
        let state = reader.accepted()?;
        let batchable = reader.boolean()?.unwrap_or(false);
        // More fields than the six, or bytes left over: the generic decode decides.
        if reader.remaining != 0 || !reader.bytes.is_empty() {
            return None;
        }
        body.advance(HEADER.len() + 2 + fields.len());
        Some(Disposition {
            role: if role { Role::Receiver } else { Role::Sender },
            first,
            last,
            settled,
            state,
            batchable,
        })
    }
}

/// The list's fields in order; a field past the count reads as absent. Each reader gives
/// `Some(None)` for null or absent, `Some(Some(_))` for a value in the short form, and
/// `None` for anything else.
struct Fields<'a> {
    bytes: &'a [u8],
    remaining: u8,
}

impl Fields<'_> {
    /// The next field's bytes, `None` when absent.
    fn next(&mut self) -> Option<&[u8]> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        Some(self.bytes)
    }

    fn take(&mut self, n: usize) {
        self.bytes = &self.bytes[n..];
    }

    fn boolean(&mut self) -> Option<Option<bool>> {
        let Some(bytes) = self.next() else {
            return Some(None);
        };
        let value = match bytes.first()? {
            0x40 => None,
            0x41 => Some(true),
            0x42 => Some(false),
            _ => return None,
        };
        self.take(1);
        Some(value)
    }

    fn uint(&mut self) -> Option<Option<u32>> {
        let Some(bytes) = self.next() else {
            return Some(None);
        };
        let (value, len) = match *bytes {
            [0x40, ..] => (None, 1),
            [0x43, ..] => (Some(0), 1),
            [0x52, v, ..] => (Some(u32::from(v)), 2),
            [0x70, a, b, c, d, ..] => (Some(u32::from_be_bytes([a, b, c, d])), 5),
            _ => return None,
        };
        self.take(len);
        Some(value)
    }

    /// No state, or `accepted`.
    fn accepted(&mut self) -> Option<Option<DeliveryState>> {
        let Some(bytes) = self.next() else {
            return Some(None);
        };
        let len = if bytes.first() == Some(&0x40) {
            self.take(1);
            return Some(None);
        } else if bytes.starts_with(&ACCEPTED_LIST0) {
            ACCEPTED_LIST0.len()
        } else if bytes.starts_with(&ACCEPTED_LIST8) {
            ACCEPTED_LIST8.len()
        } else {
            return None;
        };
        self.take(len);
        Some(Some(DeliveryState::Accepted))
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use proptest::prelude::*;

    use super::*;
    use crate::performative::Performative;

    /// The generic decode of the same bytes, with what it leaves of them.
    fn generic(bytes: &Bytes) -> (Result<Performative, crate::error::CodecError>, Bytes) {
        let mut body = bytes.clone();
        let decoded = Performative::decode_generic(&mut body);
        (decoded, body)
    }

    fn encoded(d: &Disposition) -> Bytes {
        let mut out = BytesMut::new();
        Performative::Disposition(d.clone()).encode(&mut out);
        out.freeze()
    }

    fn bytes_of(code: u8, value: &[u8]) -> Vec<u8> {
        let mut bytes = vec![code];
        bytes.extend_from_slice(value);
        bytes
    }

    /// Any field, in encodings the fast path reads and others it leaves alone.
    fn other_field() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(vec![0x56, 0x01]),
            Just(vec![0x56, 0x00]),
            any::<u8>().prop_map(|v| vec![0x50, v]),
            any::<u64>().prop_map(|v| bytes_of(0x80, &v.to_be_bytes())),
            any::<u8>().prop_map(|v| vec![0x53, v]),
            Just(vec![0x00, 0x53, 0x24, 0xc0, 0x02, 0x01, 0x40]),
            Just(vec![0x00, 0x53, 0x26, 0x45]),
            Just(vec![0x00, 0x53, 0x25, 0x45]),
            Just(vec![0x00, 0xa3, 0x03, b'a', b'b', b'c', 0x45]),
            prop::collection::vec(any::<u8>(), 0..4),
        ]
    }

    fn boolean_field() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            6 => prop_oneof![Just(vec![0x40]), Just(vec![0x41]), Just(vec![0x42])],
            1 => other_field(),
        ]
    }

    fn uint_field() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            6 => prop_oneof![
                Just(vec![0x40]),
                Just(vec![0x43]),
                any::<u8>().prop_map(|v| vec![0x52, v]),
                any::<u32>().prop_map(|v| bytes_of(0x70, &v.to_be_bytes())),
            ],
            1 => other_field(),
        ]
    }

    fn state_field() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            6 => prop_oneof![
                Just(vec![0x40]),
                Just(ACCEPTED_LIST0.to_vec()),
                Just(ACCEPTED_LIST8.to_vec()),
            ],
            1 => other_field(),
        ]
    }

    /// A disposition-like list: its fields mostly in the shapes of their position, the
    /// first `len` of seven kept, with a count and a size that may lie and bytes after it.
    fn list() -> impl Strategy<Value = Bytes> {
        (
            (
                boolean_field(),
                uint_field(),
                uint_field(),
                boolean_field(),
                state_field(),
                boolean_field(),
                other_field(),
            ),
            0usize..=7,
            prop_oneof![4 => Just(0i16), 1 => -2i16..3],
            prop_oneof![4 => Just(0i16), 1 => -2i16..3],
            prop::collection::vec(any::<u8>(), 0..3),
        )
            .prop_map(|(fields, len, count_skew, size_skew, tail)| {
                let (a, b, c, d, e, f, g) = fields;
                let fields = [a, b, c, d, e, f, g];
                let body: Vec<u8> = fields[..len].concat();
                let count = (len as i16 + count_skew).clamp(0, 255) as u8;
                let size = (body.len() as i16 + 1 + size_skew).clamp(0, 255) as u8;
                let mut bytes = HEADER.to_vec();
                bytes.extend([size, count]);
                bytes.extend(body);
                bytes.extend(tail);
                Bytes::from(bytes)
            })
    }

    fn disposition() -> impl Strategy<Value = Disposition> {
        (
            any::<bool>(),
            any::<u32>(),
            any::<Option<u32>>(),
            any::<bool>(),
            prop_oneof![
                Just(None),
                Just(Some(DeliveryState::Accepted)),
                Just(Some(DeliveryState::Released))
            ],
            any::<bool>(),
        )
            .prop_map(
                |(receiver, first, last, settled, state, batchable)| Disposition {
                    role: if receiver {
                        Role::Receiver
                    } else {
                        Role::Sender
                    },
                    first,
                    last,
                    settled,
                    state,
                    batchable,
                },
            )
    }

    fn agrees(bytes: Bytes) -> Result<(), TestCaseError> {
        let mut fast_body = bytes.clone();
        if let Some(fast) = Disposition::decode_common(&mut fast_body) {
            let (decoded, rest) = generic(&bytes);
            prop_assert_eq!(decoded.ok(), Some(Performative::Disposition(fast)));
            prop_assert_eq!(fast_body, rest);
        } else {
            prop_assert_eq!(fast_body, bytes);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn agrees_with_the_generic_decode_on_lists(bytes in list()) {
            agrees(bytes)?;
        }

        #[test]
        fn agrees_with_the_generic_decode_on_any_bytes(
            tail in prop::collection::vec(any::<u8>(), 0..40)
        ) {
            let mut bytes = HEADER.to_vec();
            bytes.extend(tail);
            agrees(Bytes::from(bytes))?;
        }

        #[test]
        fn reads_what_the_encoder_writes(d in disposition()) {
            let bytes = encoded(&d);
            agrees(bytes.clone())?;
            let mut body = bytes;
            let fast = Disposition::decode_common(&mut body);
            if d.state != Some(DeliveryState::Released) {
                prop_assert_eq!(fast, Some(d));
            }
        }
    }
}
