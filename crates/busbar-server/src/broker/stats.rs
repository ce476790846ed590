//! What the broker counts for its metrics since it started: per queue or subscription
//! ([`EntityStats`], kept with the entity), per topic ([`Traffic`]) and for the namespace
//! ([`NamespaceStats`]).
//!
//! Counting sits on the message path, so it is a relaxed atomic add on a counter the
//! entity already holds: no lock, no lookup, no allocation. Nothing here is durable; a
//! restart (or a store reopened after a failed sync) starts again from zero, which
//! Prometheus reads as a counter reset.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use busbar_servicebus::conditions;
use busbar_store::Seq;

/// Messages and bytes through an entity.
#[derive(Debug, Default)]
pub struct Traffic {
    messages: AtomicU64,
    bytes: AtomicU64,
}

impl Traffic {
    pub fn add(&self, messages: u64, bytes: u64) {
        self.messages.fetch_add(messages, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn messages(&self) -> u64 {
        self.messages.load(Ordering::Relaxed)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// How a client settled a message it had locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Completed,
    Abandoned,
}

/// What a queue (or subscription) did since the broker started.
#[derive(Debug, Default)]
pub struct EntityStats {
    /// Messages stored here (sent, forwarded or published to it; duplicates dropped at the
    /// door are not), with their stored sizes.
    pub incoming: Traffic,
    /// Deliveries to receivers (redeliveries count again), with the stored sizes of the
    /// messages delivered.
    pub outgoing: Traffic,
    completed: AtomicU64,
    abandoned: AtomicU64,
    /// The dead-letter queue's last sequence number when the entity was loaded: each
    /// message dead-lettered since takes the next one, so the difference counts them
    /// without anything on the dead-lettering paths.
    dead_letter_seq_at_start: Seq,
    /// Last send or receive (ms since the Unix epoch; 0: none since start). Not durable.
    accessed_at_ms: AtomicI64,
}

impl EntityStats {
    /// Counters for an entity whose dead-letter queue has handed out sequence numbers up
    /// to `dead_letter_seq`.
    pub fn new(dead_letter_seq: Seq) -> Self {
        EntityStats {
            dead_letter_seq_at_start: dead_letter_seq,
            ..EntityStats::default()
        }
    }

    pub fn add_incoming(&self, messages: u64, bytes: u64, now_ms: i64) {
        self.incoming.add(messages, bytes);
        self.touch(now_ms);
    }

    pub fn add_outgoing(&self, messages: u64, bytes: u64, now_ms: i64) {
        self.outgoing.add(messages, bytes);
        self.touch(now_ms);
    }

    /// Counts `messages` settled alike by a client.
    pub fn count_settled(&self, settled: Settled, messages: u64) {
        let counter = match settled {
            Settled::Completed => &self.completed,
            Settled::Abandoned => &self.abandoned,
        };
        counter.fetch_add(messages, Ordering::Relaxed);
    }

    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    pub fn abandoned(&self) -> u64 {
        self.abandoned.load(Ordering::Relaxed)
    }

    /// Messages dead-lettered since start, by clients or by the broker (max delivery
    /// count, expiry, a subscription's filter failing), given the dead-letter queue's
    /// last sequence number now.
    pub fn dead_lettered(&self, dead_letter_seq: Seq) -> u64 {
        dead_letter_seq.saturating_sub(self.dead_letter_seq_at_start)
    }

    /// Records an access (a send or a receive) at `now_ms`.
    pub fn touch(&self, now_ms: i64) {
        self.accessed_at_ms.fetch_max(now_ms, Ordering::Relaxed);
    }

    /// The last send or receive since start, if any.
    pub fn accessed_at_ms(&self) -> Option<i64> {
        Some(self.accessed_at_ms.load(Ordering::Relaxed)).filter(|&at| at > 0)
    }
}

/// What the namespace as a whole did since the broker started.
#[derive(Debug, Default)]
pub struct NamespaceStats {
    connections_opened: AtomicU64,
    connections_closed: AtomicU64,
    server_errors: AtomicU64,
    throttled: AtomicU64,
}

impl NamespaceStats {
    /// An AMQP connection got past its handshake and is served.
    pub fn connection_opened(&self) {
        self.connections_opened.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection counted by [`Self::connection_opened`] ended.
    pub fn connection_closed(&self) {
        self.connections_closed.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request refused with `condition`, if the condition is the broker's doing:
    /// `amqp:internal-error` is a server error; `amqp:resource-limit-exceeded` (a limit of
    /// the broker, or an entity's size cap) and `com.microsoft:server-busy` (the store
    /// can't take writes now) are throttling. Anything else is the client's mistake.
    pub fn count_refusal(&self, condition: &str) {
        let counter = match condition {
            conditions::INTERNAL_ERROR => &self.server_errors,
            conditions::RESOURCE_LIMIT_EXCEEDED | conditions::SERVER_BUSY => &self.throttled,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connections_opened(&self) -> u64 {
        self.connections_opened.load(Ordering::Relaxed)
    }

    pub fn connections_closed(&self) -> u64 {
        self.connections_closed.load(Ordering::Relaxed)
    }

    pub fn server_errors(&self) -> u64 {
        self.server_errors.load(Ordering::Relaxed)
    }

    pub fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_count_by_whose_doing_they_are() {
        let stats = NamespaceStats::default();
        stats.count_refusal(conditions::INTERNAL_ERROR);
        stats.count_refusal(conditions::RESOURCE_LIMIT_EXCEEDED);
        stats.count_refusal(conditions::SERVER_BUSY);
        stats.count_refusal(conditions::MESSAGE_LOCK_LOST);
        stats.count_refusal(conditions::NOT_FOUND);
        assert_eq!((stats.server_errors(), stats.throttled()), (1, 2));
    }

    #[test]
    fn dead_lettered_counts_sequence_numbers_handed_out_since_start() {
        let stats = EntityStats::new(40);
        assert_eq!(stats.dead_lettered(40), 0);
        assert_eq!(stats.dead_lettered(43), 3);
    }
}
