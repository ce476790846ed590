//! Service Bus domain model: queues, messages, locks and settlement.
//!
//! Job: decide what every broker operation does to queue state (enqueue, peek-lock and
//! receive-and-delete delivery, complete/abandon/release/defer/dead-letter, lock expiry,
//! the max-delivery rule, dead-letter queues, scheduled and deferred messages, the size
//! cap) and say which [`busbar_store::Record`]s make each change durable.
//!
//! It must not do I/O: no sockets, files, threads, async or clocks of its own. Time comes
//! in as `now_ms` arguments; persistence and AMQP body rewriting go through the caller's
//! [`Journal`]. It does not parse AMQP.

pub mod clock;
pub mod config;
pub mod dedup;
pub mod entity_id;
pub mod error;
pub mod filter;
pub mod journal;
pub mod namespace;
pub mod queue;
pub mod quota;
pub mod resident;
pub mod rules;
pub mod subqueue;
pub mod topic;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{EntityStatus, QueueConfig};
pub use error::CoreError;
pub use journal::{BodyEdit, Journal};
pub use namespace::{Address, Namespace, NamespaceError, QueueDefinition, parse_address};
pub use queue::{
    Delivery, Disposition, LockGrant, MessageSessionGrant, MessageSessionPick, NewMessage, Queue,
    QueueCounts, REASON_MAX_DELIVERY, REASON_TTL_EXPIRED, REASON_UNREADABLE, ReceiveMode,
};
pub use resident::ResidentBudget;
pub use subqueue::{ConsumerId, MessageView, SubQueue, SubQueueCounts, SubQueueKind};
