//! Where a connection writes the deliveries it sends: one buffer that each delivery's tag
//! and stamped message are split off. A buffer per delivery cost three allocations and
//! three frees (the message, the shared count `bytes` adds when a buffer with spare room
//! is frozen, the tag), about a tenth of a received message's instructions.
//!
//! The slices live until their frames are written. When the buffer runs out, `bytes`
//! takes it back if they are all gone, or allocates a new one of the size it started
//! from. It is allocated on the first delivery, so a connection that only sends costs
//! nothing, and a large message gets a buffer of its own, so the connection does not keep
//! its size.

use busbar_amqp::CodecError;
use busbar_servicebus::message::{Stamp, stamped_delivery, write_delivery};
use bytes::{Bytes, BytesMut};

/// The allocation the buffer starts from, and so the size of each later one.
const DELIVERY_BUFFER_SIZE: usize = 32 * 1024;
/// Stored messages larger than this are written to a buffer of their own.
const LARGEST_SHARED: usize = DELIVERY_BUFFER_SIZE / 4;

/// A connection's buffer for outgoing deliveries.
#[derive(Default)]
pub(super) struct DeliveryBuffer {
    buf: BytesMut,
}

impl DeliveryBuffer {
    /// The delivery tag and the stored message stamped for delivery (see
    /// [`write_delivery`]).
    pub(super) fn stamp(
        &mut self,
        tag: &[u8],
        stored: &Bytes,
        stamp: &Stamp,
    ) -> Result<(Bytes, Bytes), CodecError> {
        if stored.len() > LARGEST_SHARED {
            return Ok((
                Bytes::copy_from_slice(tag),
                stamped_delivery(stored, stamp)?,
            ));
        }
        if self.buf.capacity() == 0 {
            self.buf = BytesMut::with_capacity(DELIVERY_BUFFER_SIZE);
        }
        self.buf.extend_from_slice(tag);
        let tag = self.buf.split().freeze();
        write_delivery(&mut self.buf, stored, stamp)?;
        Ok((tag, self.buf.split().freeze()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use busbar_amqp::codec::{encode_descriptor, encode_value};
    use busbar_amqp::message::scan_sections;
    use busbar_amqp::value::{Descriptor, Value};

    fn stored(body_len: usize) -> Bytes {
        let mut out = BytesMut::new();
        encode_descriptor(&Descriptor::Code(0x75), &mut out);
        encode_value(&Value::Binary(vec![7u8; body_len].into()), &mut out);
        out.freeze()
    }

    fn stamp(seq: i64) -> Stamp {
        Stamp {
            sequence_number: seq,
            enqueued_at_ms: 1_000,
            delivery_count: 0,
            locked_until_ms: Some(61_000),
            lock_token: Some(uuid::Uuid::from_u128(seq as u128)),
            state: 0,
            expires_at_ms: None,
        }
    }

    /// Deliveries written one after another, some kept (frames not yet written), some
    /// gone, small and large, each come out whole and unchanged by the ones after them.
    #[test]
    fn deliveries_split_off_one_buffer_stay_intact() {
        let mut buffer = DeliveryBuffer::default();
        let mut kept = Vec::new();
        for seq in 0..500i64 {
            let body_len = if seq % 97 == 0 { 20_000 } else { 1024 };
            let stored = stored(body_len);
            let tag = (seq as u128).to_le_bytes();
            let (tag_out, payload) = buffer.stamp(&tag, &stored, &stamp(seq)).unwrap();
            let expected = stamped_delivery(&stored, &stamp(seq)).unwrap();
            assert_eq!(payload, expected);
            if seq % 3 == 0 {
                kept.push((tag, tag_out, expected, payload));
            }
        }
        for (tag, tag_out, expected, payload) in kept {
            assert_eq!(&tag_out[..], &tag[..]);
            assert_eq!(payload, expected);
            assert!(scan_sections(&payload).is_ok());
        }
    }

    /// A stored message that can't be read leaves nothing behind for the next delivery.
    #[test]
    fn an_unreadable_message_does_not_spoil_the_next() {
        let mut buffer = DeliveryBuffer::default();
        let tag = [1u8; 16];
        assert!(
            buffer
                .stamp(&tag, &Bytes::from_static(b"\x00\x53"), &stamp(1))
                .is_err()
        );
        let stored = stored(100);
        let (tag_out, payload) = buffer.stamp(&tag, &stored, &stamp(2)).unwrap();
        assert_eq!(&tag_out[..], &tag[..]);
        assert_eq!(payload, stamped_delivery(&stored, &stamp(2)).unwrap());
    }
}
