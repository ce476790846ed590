//! The broker's resource limits, in one place: what one client, or all of them together,
//! may hold of the broker's memory and tables, and what happens at each limit.
//!
//! Every limit has a default that serves a busy production namespace and a `busbar serve`
//! flag. The decisions are plain functions of the current usage, so they are tested here
//! without sockets; the connection code only counts and asks.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// The limits, with their defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Open AMQP connections (`--max-connections`, 10,000). A connection beyond it is told
    /// so with `amqp:resource-limit-exceeded` and closed.
    pub max_connections: usize,
    /// AMQP sessions per connection (`--max-sessions-per-connection`, 256), announced as the
    /// connection's channel-max, so a client never gets to open more.
    pub max_sessions_per_connection: u16,
    /// Links per connection (`--max-links-per-connection`, 1,024). Attaches beyond it are
    /// refused with `amqp:resource-limit-exceeded`.
    pub max_links_per_connection: usize,
    /// Links a connection may have before it has presented any token
    /// (`--max-links-before-token`, 4: the `$cbs` pair, with room for a retry).
    pub max_links_before_token: usize,
    /// Bytes of deliveries a connection has started and not finished
    /// (`--max-unfinished-bytes-per-connection`, 16 MiB, at least twice the max message
    /// size). Over it the connection is closed with `amqp:resource-limit-exceeded`.
    pub max_unfinished_bytes_per_connection: u64,
    /// The same over all connections (`--max-unfinished-bytes`, 256 MiB): the connection
    /// that pushes the total over it is closed.
    pub max_unfinished_bytes: u64,
    /// Responses queued for a `$cbs` or `$management` response link that has no credit
    /// (`--max-pending-responses`, 64). Further requests get `amqp:resource-limit-exceeded`.
    pub max_pending_responses: usize,
    /// Bytes of messages a connection has sent that are not yet durable
    /// (`--max-uncommitted-bytes-per-connection`, 8 MiB). Over it the connection's senders
    /// get no more credit until the disk catches up.
    pub max_uncommitted_bytes_per_connection: u64,
    /// The same over all connections (`--max-uncommitted-bytes`, 128 MiB): over it, every
    /// connection's senders wait.
    pub max_uncommitted_bytes: u64,
    /// Deliveries a receiver link may hold unsettled (`--max-unsettled-per-link`, 10,000):
    /// past it the link gets no more until the client settles some.
    pub max_unsettled_per_link: usize,
    /// How long one write to a client may take (`--write-timeout-secs`, 30 s); a client that
    /// does not read is disconnected instead of holding the broker's buffers.
    pub write_timeout: Duration,
    /// How long a send or settlement waits for its write while the store can't write (a full
    /// disk) before the client is told to retry with `com.microsoft:server-busy`
    /// (`--held-write-timeout-secs`, 30 s: within the SDKs' 60 s operation timeout).
    pub held_write_timeout: Duration,
    /// REST runtime API receives waiting at once for a message to arrive
    /// (`--max-waiting-http-receives`, 1,024): each holds a request open for up to its
    /// timeout. One beyond it is answered 503 at once.
    pub max_waiting_http_receives: usize,
    /// Bytes of message bodies all queues together keep in memory
    /// (`--max-resident-body-bytes`, 64 MiB); beyond it, bodies stay only in the store and
    /// are read back when delivered. Bounds what queued messages cost in memory however many
    /// queues they are spread over.
    pub max_resident_body_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            max_sessions_per_connection: 256,
            max_links_per_connection: 1_024,
            max_links_before_token: 4,
            max_unfinished_bytes_per_connection: 16 << 20,
            max_unfinished_bytes: 256 << 20,
            max_pending_responses: 64,
            max_uncommitted_bytes_per_connection: 8 << 20,
            max_uncommitted_bytes: 128 << 20,
            max_unsettled_per_link: 10_000,
            write_timeout: Duration::from_secs(30),
            held_write_timeout: Duration::from_secs(30),
            max_waiting_http_receives: 1_024,
            max_resident_body_bytes: 64 << 20,
        }
    }
}

/// A limit reached, said in words a client can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    #[error("The broker has reached its limit of {0} connections; try again later.")]
    Connections(usize),
    #[error("This connection has reached its limit of {0} links; close some first.")]
    Links(usize),
    #[error(
        "This connection has {0} links and no token: send a token on $cbs (put-token) before attaching more."
    )]
    LinksBeforeToken(usize),
    #[error(
        "This connection holds {held} bytes of unfinished deliveries, over its limit of {limit}."
    )]
    UnfinishedOnConnection { held: u64, limit: u64 },
    #[error(
        "The broker holds {held} bytes of unfinished deliveries, over its limit of {limit}; this connection holds part of them."
    )]
    UnfinishedOnBroker { held: u64, limit: u64 },
    #[error("{0} responses are waiting for this client to take them; take those first.")]
    PendingResponses(usize),
    #[error("The broker has reached its limit of {0} waiting HTTP receives; try again later.")]
    WaitingHttpReceives(usize),
}

impl Limits {
    /// The channel-max to announce: the highest channel number, one below the count.
    pub fn channel_max(&self) -> u16 {
        self.max_sessions_per_connection.saturating_sub(1)
    }

    /// The per-connection cap on unfinished deliveries actually applied: never below two
    /// messages of the largest size, so a client can always finish one while starting
    /// the next.
    pub fn unfinished_per_connection(&self, max_message_size: u64) -> u64 {
        self.max_unfinished_bytes_per_connection
            .max(max_message_size.saturating_mul(2))
    }

    /// Whether a connection already over its link limit keeps attaching without detaching
    /// what was refused (a refused link stays until the client detaches it): then refusing
    /// is not enough, and the connection is closed.
    pub fn links_ignored(&self, links: usize, has_token: bool) -> bool {
        let limit = if has_token {
            self.max_links_per_connection
        } else {
            self.max_links_before_token
        };
        links >= limit.saturating_mul(2).max(limit.saturating_add(8))
    }

    /// Whether a connection holding `links` links may attach one more.
    pub fn admit_link(&self, links: usize, has_token: bool) -> Result<(), LimitExceeded> {
        if links >= self.max_links_per_connection {
            return Err(LimitExceeded::Links(self.max_links_per_connection));
        }
        if !has_token && links >= self.max_links_before_token {
            return Err(LimitExceeded::LinksBeforeToken(links));
        }
        Ok(())
    }

    /// Whether a connection holding `own` bytes of unfinished deliveries, while the broker
    /// holds `total` in all, may go on.
    pub fn check_unfinished(
        &self,
        own: u64,
        total: u64,
        max_message_size: u64,
    ) -> Result<(), LimitExceeded> {
        let limit = self.unfinished_per_connection(max_message_size);
        if own > limit {
            return Err(LimitExceeded::UnfinishedOnConnection { held: own, limit });
        }
        if own > 0 && total > self.max_unfinished_bytes {
            return Err(LimitExceeded::UnfinishedOnBroker {
                held: total,
                limit: self.max_unfinished_bytes,
            });
        }
        Ok(())
    }

    /// Whether a connection with `own` bytes sent and not yet durable, while the broker has
    /// `total` in all, must stop giving its senders credit.
    pub fn hold_credit(&self, own: u64, total: u64) -> bool {
        own > self.max_uncommitted_bytes_per_connection
            || (own > 0 && total > self.max_uncommitted_bytes)
    }

    /// Whether to go on reading from a connection with `own` bytes sent and not yet
    /// durable: a client that keeps sending without credit is not read from until the disk
    /// caught up, on its own account or everyone's.
    pub fn keep_reading(&self, own: u64, total: u64) -> bool {
        own <= self.max_uncommitted_bytes_per_connection.saturating_mul(2)
            && (own == 0 || total <= self.max_uncommitted_bytes.saturating_mul(2))
    }

    /// Whether a response link with `pending` queued responses may take one more.
    pub fn admit_response(&self, pending: usize) -> Result<(), LimitExceeded> {
        if pending >= self.max_pending_responses {
            return Err(LimitExceeded::PendingResponses(pending));
        }
        Ok(())
    }
}

/// What all connections hold together, counted as they go.
#[derive(Debug, Default)]
pub struct Usage {
    connections: AtomicUsize,
    waiting_http_receives: AtomicUsize,
    /// The last receiver id handed out: ids are unique across connections for the broker's
    /// life, so no connection can act on another's locks.
    consumers: AtomicU64,
    unfinished_bytes: AtomicU64,
    uncommitted_bytes: AtomicU64,
}

impl Usage {
    /// Counts a new connection if there is room; the permit gives it back when dropped.
    pub fn open_connection(&self, limits: &Limits) -> Result<Permit<'_>, LimitExceeded> {
        count_within(&self.connections, limits.max_connections)
            .ok_or(LimitExceeded::Connections(limits.max_connections))
    }

    /// Counts a REST receive that waits for a message, if there is room; the permit gives
    /// it back when dropped.
    pub fn wait_http_receive(&self, limits: &Limits) -> Result<Permit<'_>, LimitExceeded> {
        count_within(
            &self.waiting_http_receives,
            limits.max_waiting_http_receives,
        )
        .ok_or(LimitExceeded::WaitingHttpReceives(
            limits.max_waiting_http_receives,
        ))
    }

    /// A receiver id no other receiver has had (0 is the `$management` node's).
    pub fn next_consumer(&self) -> busbar_core::ConsumerId {
        busbar_core::ConsumerId(self.consumers.fetch_add(1, Ordering::Relaxed) + 1)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }

    pub fn unfinished_bytes(&self) -> u64 {
        self.unfinished_bytes.load(Ordering::Acquire)
    }

    pub fn uncommitted_bytes(&self) -> u64 {
        self.uncommitted_bytes.load(Ordering::Acquire)
    }

    /// Moves this connection's share of unfinished bytes from `before` to `after`.
    pub fn set_unfinished(&self, before: u64, after: u64) {
        adjust(&self.unfinished_bytes, before, after);
    }

    /// Moves this connection's share of uncommitted bytes from `before` to `after`.
    pub fn set_uncommitted(&self, before: u64, after: u64) {
        adjust(&self.uncommitted_bytes, before, after);
    }
}

fn adjust(counter: &AtomicU64, before: u64, after: u64) {
    if after >= before {
        counter.fetch_add(after - before, Ordering::AcqRel);
    } else {
        counter.fetch_sub(before - after, Ordering::AcqRel);
    }
}

/// Counts one more on `counter` if it stays within `limit`.
fn count_within(counter: &AtomicUsize, limit: usize) -> Option<Permit<'_>> {
    let previous = counter.fetch_add(1, Ordering::AcqRel);
    let permit = Permit(counter);
    (previous < limit).then_some(permit)
}

/// One counted connection or waiting receive, given back when dropped.
pub struct Permit<'u>(&'u AtomicUsize);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_http_receives_beyond_the_limit_are_refused_and_permits_come_back() {
        let limits = Limits {
            max_waiting_http_receives: 1,
            ..Limits::default()
        };
        let usage = Usage::default();
        let first = usage.wait_http_receive(&limits);
        assert!(first.is_ok());
        assert_eq!(
            usage.wait_http_receive(&limits).err(),
            Some(LimitExceeded::WaitingHttpReceives(1))
        );
        drop(first);
        assert!(usage.wait_http_receive(&limits).is_ok());
        assert!(
            usage.open_connection(&limits).is_ok(),
            "connections are counted apart"
        );
    }

    #[test]
    fn connections_beyond_the_limit_are_refused_and_permits_come_back() {
        let limits = Limits {
            max_connections: 2,
            ..Limits::default()
        };
        let usage = Usage::default();
        let first = usage.open_connection(&limits);
        let second = usage.open_connection(&limits);
        assert!(first.is_ok() && second.is_ok());
        assert_eq!(
            usage.open_connection(&limits).err(),
            Some(LimitExceeded::Connections(2))
        );
        assert_eq!(usage.connections(), 2, "a refusal gives its count back");
        drop(first);
        assert!(usage.open_connection(&limits).is_ok());
    }

    #[test]
    fn links_are_few_before_a_token_and_bounded_after() {
        let limits = Limits::default();
        assert!(limits.admit_link(3, false).is_ok());
        assert_eq!(
            limits.admit_link(4, false),
            Err(LimitExceeded::LinksBeforeToken(4))
        );
        assert!(limits.admit_link(4, true).is_ok());
        assert!(limits.admit_link(1_023, true).is_ok());
        assert_eq!(
            limits.admit_link(1_024, true),
            Err(LimitExceeded::Links(1_024))
        );
    }

    #[test]
    fn a_client_ignoring_link_refusals_is_closed() {
        let limits = Limits::default();
        assert!(!limits.links_ignored(4, false));
        assert!(!limits.links_ignored(11, false));
        assert!(limits.links_ignored(12, false));
        assert!(!limits.links_ignored(2_047, true));
        assert!(limits.links_ignored(2_048, true));
    }

    #[test]
    fn unfinished_deliveries_are_bounded_per_connection_and_in_total() {
        let limits = Limits::default();
        let max_message = 256 << 10;
        assert!(
            limits
                .check_unfinished(16 << 20, 16 << 20, max_message)
                .is_ok()
        );
        assert!(matches!(
            limits.check_unfinished((16 << 20) + 1, 16 << 20, max_message),
            Err(LimitExceeded::UnfinishedOnConnection { .. })
        ));
        // A connection holding nothing is never blamed for the others.
        assert!(limits.check_unfinished(0, 1 << 40, max_message).is_ok());
        assert!(matches!(
            limits.check_unfinished(1, (256 << 20) + 1, max_message),
            Err(LimitExceeded::UnfinishedOnBroker { .. })
        ));
        // Large messages raise the per-connection floor.
        assert!(
            limits
                .check_unfinished(30 << 20, 30 << 20, 16 << 20)
                .is_ok()
        );
    }

    #[test]
    fn credit_is_held_while_too_much_is_not_yet_durable() {
        let limits = Limits::default();
        assert!(!limits.hold_credit(8 << 20, 8 << 20));
        assert!(limits.hold_credit((8 << 20) + 1, 8 << 20));
        assert!(!limits.hold_credit(0, 1 << 40), "idle senders are not held");
        assert!(limits.hold_credit(1, (128 << 20) + 1));
    }

    #[test]
    fn a_client_sending_past_its_credit_is_not_read_from() {
        let limits = Limits::default();
        assert!(limits.keep_reading(16 << 20, 0));
        assert!(!limits.keep_reading((16 << 20) + 1, 0));
        assert!(
            limits.keep_reading(0, 1 << 40),
            "a connection with nothing pending reads"
        );
        assert!(!limits.keep_reading(1, (256 << 20) + 1));
    }

    #[test]
    fn responses_queue_up_to_the_limit() {
        let limits = Limits::default();
        assert!(limits.admit_response(63).is_ok());
        assert_eq!(
            limits.admit_response(64),
            Err(LimitExceeded::PendingResponses(64))
        );
    }

    #[test]
    fn usage_counters_follow_each_connections_share() {
        let usage = Usage::default();
        usage.set_unfinished(0, 100);
        usage.set_unfinished(0, 50);
        usage.set_unfinished(100, 20);
        assert_eq!(usage.unfinished_bytes(), 70);
        usage.set_uncommitted(0, 10);
        usage.set_uncommitted(10, 0);
        assert_eq!(usage.uncommitted_bytes(), 0);
    }

    #[test]
    fn the_channel_max_allows_exactly_the_session_limit() {
        let limits = Limits {
            max_sessions_per_connection: 8,
            ..Limits::default()
        };
        assert_eq!(limits.channel_max(), 7);
    }
}
