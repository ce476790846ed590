//! Per-link state: role, credit, and reassembly of multi-frame deliveries.

use bytes::{Bytes, BytesMut};

use crate::performative::{ReceiverSettleMode, Role, SenderSettleMode, Source, TargetKind};

/// Where a link is in its attach/detach handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkState {
    /// The client attached; the broker has not answered yet.
    Attaching,
    Attached,
    /// The broker sent its detach and waits for the client's, which completes the
    /// handshake and must not be answered.
    DetachSent,
}

/// A client flow that arrived before the broker answered the attach, replayed afterwards.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EarlyFlow {
    pub delivery_count: Option<u32>,
    pub link_credit: u32,
    pub drain: bool,
}

/// What a frame kept for joining holds besides its payload: its handle, and its header
/// and performative, which stay in the read buffer the payload is a slice of. Counted so
/// that a delivery sent in tiny frames can't pin more memory than it is charged for.
const HELD_PER_FRAME: usize = 64;

/// A delivery whose transfers carry `more=true`, being joined.
#[derive(Debug)]
pub(crate) struct Partial {
    pub delivery_id: u32,
    pub tag: Bytes,
    pub settled: bool,
    pub message_format: u32,
    pub body: PartialBody,
}

#[derive(Debug)]
pub(crate) enum PartialBody {
    /// Only the first frame so far: kept as the zero-copy slice it arrived as.
    First(Bytes),
    /// Several frames, each kept as it arrived, joined once the last is in: into one
    /// buffer of the delivery's size, so no byte is copied twice while a large message
    /// grows frame by frame.
    Frames { frames: Vec<Bytes>, len: usize },
    /// Over the size limit: the rest of the delivery is read and dropped.
    Discarding,
}

#[derive(Debug)]
pub(crate) struct Link {
    pub serial: u32,
    pub name: String,
    pub remote_handle: u32,
    /// The broker's role.
    pub role: Role,
    pub state: LinkState,
    pub snd_settle_mode: SenderSettleMode,
    pub rcv_settle_mode: ReceiverSettleMode,
    /// The client's source and target, kept for echoing until the attach is answered.
    pub requested_source: Option<Source>,
    pub requested_target: Option<TargetKind>,
    /// Sender links: deliveries sent; receiver links: deliveries received (both counted
    /// from the sender's initial-delivery-count).
    pub delivery_count: u32,
    /// Credit as the broker sees it now.
    pub credit: u32,
    /// Sender links: the client asked to drain.
    pub drain: bool,
    /// Receiver links: the credit level kept topped up (0 stops top-ups).
    pub credit_target: u32,
    /// Receiver links: largest message accepted.
    pub max_message_size: u64,
    /// Sender links: the client's max-message-size, 0 for none.
    pub peer_max_message_size: u64,
    pub early_flow: Option<EarlyFlow>,
    pub partial: Option<Partial>,
}

impl Link {
    pub fn is_sender(&self) -> bool {
        self.role == Role::Sender
    }
}

impl Partial {
    /// Memory the unfinished delivery holds.
    pub fn held_bytes(&self) -> usize {
        match &self.body {
            PartialBody::First(b) => b.len(),
            PartialBody::Frames { frames, len } => {
                len.saturating_add(frames.len().saturating_mul(HELD_PER_FRAME))
            }
            PartialBody::Discarding => 0,
        }
    }

    /// Adds a continuation frame; returns false (and starts discarding) when the delivery
    /// would exceed `limit`.
    pub fn append(&mut self, chunk: &Bytes, limit: u64) -> bool {
        let so_far = match &self.body {
            PartialBody::First(b) => b.len(),
            PartialBody::Frames { len, .. } => *len,
            PartialBody::Discarding => return false,
        };
        if (so_far as u64).saturating_add(chunk.len() as u64) > limit {
            self.body = PartialBody::Discarding;
            return false;
        }
        match &mut self.body {
            PartialBody::First(first) => {
                let first = std::mem::take(first);
                self.body = PartialBody::Frames {
                    frames: vec![first, chunk.clone()],
                    len: so_far + chunk.len(),
                };
            }
            PartialBody::Frames { frames, len } => {
                frames.push(chunk.clone());
                *len += chunk.len();
            }
            PartialBody::Discarding => {}
        }
        true
    }
}

impl PartialBody {
    /// The joined payload, or `None` when the delivery was discarded.
    pub fn into_payload(self) -> Option<Bytes> {
        match self {
            PartialBody::First(b) => Some(b),
            PartialBody::Frames { frames, len } => {
                let mut joined = BytesMut::with_capacity(len);
                for frame in &frames {
                    joined.extend_from_slice(frame);
                }
                Some(joined.freeze())
            }
            PartialBody::Discarding => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partial(first: &[u8]) -> Partial {
        Partial {
            delivery_id: 0,
            tag: Bytes::new(),
            settled: false,
            message_format: 0,
            body: PartialBody::First(Bytes::copy_from_slice(first)),
        }
    }

    /// Frames are joined in order once, and until then each one kept is charged for what
    /// it holds besides its payload, so tiny frames can't pin memory for free.
    #[test]
    fn frames_join_in_order_and_each_kept_frame_is_charged() {
        let mut delivery = partial(b"ab");
        for byte in 0..1000u32 {
            assert!(delivery.append(&Bytes::from(vec![byte as u8]), u64::MAX));
        }
        assert!(delivery.held_bytes() >= 1002 + 1000 * HELD_PER_FRAME);
        let joined = delivery.body.into_payload().unwrap_or_default();
        let expected: Vec<u8> = b"ab"
            .iter()
            .copied()
            .chain((0..1000u32).map(|b| b as u8))
            .collect();
        assert_eq!(joined, expected);
    }

    /// Past the limit the delivery is dropped, whatever arrives after.
    #[test]
    fn a_delivery_over_the_limit_is_discarded() {
        let mut delivery = partial(b"abc");
        assert!(delivery.append(&Bytes::from_static(b"de"), 5));
        assert!(!delivery.append(&Bytes::from_static(b"f"), 5));
        assert!(!delivery.append(&Bytes::from_static(b"g"), 100));
        assert_eq!(delivery.held_bytes(), 0);
        assert!(delivery.body.into_payload().is_none());
    }
}
