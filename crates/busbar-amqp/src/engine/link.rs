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
    Joined(BytesMut),
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
            PartialBody::Joined(b) => b.capacity(),
            PartialBody::Discarding => 0,
        }
    }

    /// Adds a continuation frame; returns false (and starts discarding) when the delivery
    /// would exceed `limit`.
    pub fn append(&mut self, chunk: &Bytes, limit: u64) -> bool {
        let so_far = match &self.body {
            PartialBody::First(b) => b.len(),
            PartialBody::Joined(b) => b.len(),
            PartialBody::Discarding => return false,
        };
        if (so_far as u64).saturating_add(chunk.len() as u64) > limit {
            self.body = PartialBody::Discarding;
            return false;
        }
        match &mut self.body {
            PartialBody::First(first) => {
                // Grow geometrically from what has arrived, never from a declared size.
                let mut joined = BytesMut::with_capacity((so_far + chunk.len()) * 2);
                joined.extend_from_slice(first);
                joined.extend_from_slice(chunk);
                self.body = PartialBody::Joined(joined);
            }
            PartialBody::Joined(joined) => joined.extend_from_slice(chunk),
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
            PartialBody::Joined(b) => Some(b.freeze()),
            PartialBody::Discarding => None,
        }
    }
}
