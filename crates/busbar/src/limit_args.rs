//! `busbar serve`'s flags for the broker's resource limits (see `busbar_server::limits`).

use std::time::Duration;

use busbar_server::limits::Limits;
use clap::Args;

/// Resource limits; each defaults to the value documented on `Limits`.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Limits")]
pub struct LimitArgs {
    /// Open AMQP connections [default: 10000].
    #[arg(long, env = "BUSBAR_MAX_CONNECTIONS", value_name = "N")]
    max_connections: Option<usize>,
    /// AMQP sessions per connection [default: 256].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    max_sessions_per_connection: Option<u16>,
    /// Links per connection [default: 1024].
    #[arg(long, value_name = "N")]
    max_links_per_connection: Option<usize>,
    /// Links a connection may attach before it sends a token [default: 4].
    #[arg(long, value_name = "N")]
    max_links_before_token: Option<usize>,
    /// Bytes of unfinished deliveries one connection may hold [default: 16 MiB, at least
    /// twice the max message size].
    #[arg(long, value_name = "BYTES")]
    max_unfinished_bytes_per_connection: Option<u64>,
    /// Bytes of unfinished deliveries all connections may hold [default: 256 MiB].
    #[arg(long, value_name = "BYTES")]
    max_unfinished_bytes: Option<u64>,
    /// Responses a `$cbs` or `$management` response link may queue [default: 64].
    #[arg(long, value_name = "N")]
    max_pending_responses: Option<usize>,
    /// Bytes one connection may have sent that are not yet durable before its senders wait
    /// [default: 8 MiB].
    #[arg(long, value_name = "BYTES")]
    max_uncommitted_bytes_per_connection: Option<u64>,
    /// Bytes all connections may have sent that are not yet durable [default: 128 MiB].
    #[arg(long, value_name = "BYTES")]
    max_uncommitted_bytes: Option<u64>,
    /// Deliveries a receiver may hold unsettled before it gets no more [default: 10000].
    #[arg(long, value_name = "N")]
    max_unsettled_per_link: Option<usize>,
    /// Seconds one write to a client may take before it is disconnected [default: 30].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    write_timeout_secs: Option<u64>,
    /// Seconds a send waits for its write while the disk is full before the client is told
    /// to retry (server-busy) [default: 30].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    held_write_timeout_secs: Option<u64>,
    /// REST runtime API receives that may wait for a message at once [default: 1024].
    #[arg(long, value_name = "N")]
    max_waiting_http_receives: Option<usize>,
    /// Bytes of message bodies all queues together keep in memory; the rest are read back
    /// from the store when delivered [default: 64 MiB].
    #[arg(long, value_name = "BYTES")]
    max_resident_body_bytes: Option<u64>,
}

impl LimitArgs {
    /// Sets the limits given on the command line, keeping the others.
    pub fn apply(&self, limits: &mut Limits) {
        fn set<T: Copy>(flag: Option<T>, field: &mut T) {
            if let Some(value) = flag {
                *field = value;
            }
        }
        set(self.max_connections, &mut limits.max_connections);
        set(
            self.max_sessions_per_connection,
            &mut limits.max_sessions_per_connection,
        );
        set(
            self.max_links_per_connection,
            &mut limits.max_links_per_connection,
        );
        set(
            self.max_links_before_token,
            &mut limits.max_links_before_token,
        );
        set(
            self.max_unfinished_bytes_per_connection,
            &mut limits.max_unfinished_bytes_per_connection,
        );
        set(self.max_unfinished_bytes, &mut limits.max_unfinished_bytes);
        set(
            self.max_pending_responses,
            &mut limits.max_pending_responses,
        );
        set(
            self.max_unsettled_per_link,
            &mut limits.max_unsettled_per_link,
        );
        set(
            self.max_uncommitted_bytes_per_connection,
            &mut limits.max_uncommitted_bytes_per_connection,
        );
        set(
            self.max_uncommitted_bytes,
            &mut limits.max_uncommitted_bytes,
        );
        set(
            self.max_waiting_http_receives,
            &mut limits.max_waiting_http_receives,
        );
        set(
            self.max_resident_body_bytes,
            &mut limits.max_resident_body_bytes,
        );
        if let Some(secs) = self.write_timeout_secs {
            limits.write_timeout = Duration::from_secs(secs);
        }
        if let Some(secs) = self.held_write_timeout_secs {
            limits.held_write_timeout = Duration::from_secs(secs);
        }
    }
}
