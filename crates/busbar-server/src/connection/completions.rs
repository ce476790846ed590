//! Completions the client settled itself (settle-first receivers: generic AMQP clients and
//! the load generator; the Python and JS SDKs wait for the broker's answer), applied together: a client settling one delivery per disposition
//! frame sends many per read, and each applied alone cost a queue lock, a journal append
//! and a wake-up of the store's writer thread. Collected while a read's events are
//! processed, they are applied per entity with one append before any other event is, so
//! nothing else observes the queue between a completion and its application.

use std::sync::Arc;

use busbar_core::{CoreError, Disposition, SubQueueKind};
use busbar_store::Store;

use super::Conn;
use crate::broker::{Entity, Settled};

/// A settled-by-peer completion waiting to be applied.
pub(super) struct Completion {
    pub entity: Arc<Entity>,
    pub kind: SubQueueKind,
    pub lock: uuid::Uuid,
}

impl<S: Store> Conn<S> {
    /// Applies the collected completions: one settlement per run of the same entity and
    /// sub-queue, and one at a time for a run holding a lock that is gone.
    pub(super) fn apply_completions(&mut self) {
        if self.completions.is_empty() {
            return;
        }
        let mut completions = std::mem::take(&mut self.completions);
        let mut tokens = Vec::with_capacity(completions.len());
        let now = self.broker.now_ms();
        for run in
            completions.chunk_by(|a, b| Arc::ptr_eq(&a.entity, &b.entity) && a.kind == b.kind)
        {
            let (entity, kind) = (&run[0].entity, run[0].kind);
            tokens.clear();
            tokens.extend(run.iter().map(|c| c.lock));
            // A completion the client settled itself is acknowledged to no one: losing it
            // in a crash redelivers the message, so it needs no sync of its own.
            let mut journal = self.broker.relaxed_journal();
            let mut state = entity.lock();
            let together =
                state
                    .queue
                    .settle_all(kind, &tokens, Disposition::Complete, now, &mut journal);
            let results: Vec<Result<(), CoreError>> = match together {
                Ok(()) => Vec::new(),
                // All or nothing: one lost lock leaves the others to be applied alone.
                Err(CoreError::LockLost | CoreError::MessageNotFound(_)) => tokens
                    .iter()
                    .map(|&lock| state.queue.complete(kind, lock, now, &mut journal))
                    .collect(),
                Err(error) => vec![Err(error)],
            };
            drop(state);
            // Nothing waits for it; later commits of this round still cover it.
            drop(journal.into_commit());
            let applied = if results.is_empty() {
                tokens.len()
            } else {
                results.iter().filter(|result| result.is_ok()).count()
            };
            entity
                .stats
                .count_settled(Settled::Completed, applied as u64);
            for result in results {
                match result {
                    Ok(()) | Err(CoreError::LockLost | CoreError::MessageNotFound(_)) => {}
                    Err(error) => {
                        tracing::error!(entity = %entity.name, %error, "settlement failed");
                    }
                }
            }
        }
        completions.clear();
        // The allocation serves the next round.
        self.completions = completions;
    }
}
