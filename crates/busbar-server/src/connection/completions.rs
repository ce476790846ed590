//! Completions applied together: a client completing one delivery per disposition frame
//! sends many per read, and each applied alone cost a queue lock, a journal append and a
//! wake-up of the store's writer thread. Collected while a read's events are processed,
//! they are applied per entity with one append before any other event is, so nothing
//! else observes the queue between a completion and its application.
//!
//! Two kinds share the path. A completion the client settled itself (settle-first
//! receivers: generic AMQP clients, the load generator) is acknowledged to no one. One
//! the client waits to hear about (the Python and JS SDKs settle second) is answered
//! `accepted` only once its removal is durable, or with its own failure (a lost lock
//! fails that delivery alone, not its neighbours in the batch).

use std::sync::Arc;

use busbar_amqp::engine::LinkRef;
use busbar_amqp::performative::DeliveryState;
use busbar_core::{CoreError, Disposition, SubQueueKind};
use busbar_servicebus::conditions;
use busbar_servicebus::settlement::{lock_lost, rejected};
use busbar_store::Store;

use super::{AfterCommit, Conn};
use crate::broker::{Entity, Settled};

/// A completion waiting to be applied.
pub(super) struct Completion {
    pub entity: Arc<Entity>,
    pub kind: SubQueueKind,
    pub lock: uuid::Uuid,
    /// Where the broker's answer goes (link and delivery id); `None` when the client
    /// settled the delivery itself and waits for nothing.
    pub answer: Option<(LinkRef, u32)>,
}

impl<S: Store> Conn<S> {
    /// Applies the collected completions: one settlement per run of the same entity and
    /// sub-queue, and one at a time for a run holding a lock that is gone.
    pub(super) fn apply_completions(&mut self) {
        if self.completions.is_empty() {
            return;
        }
        let mut completions = std::mem::take(&mut self.completions);
        let mut tokens = std::mem::take(&mut self.completion_locks);
        let now = self.broker.now_ms();
        for run in
            completions.chunk_by(|a, b| Arc::ptr_eq(&a.entity, &b.entity) && a.kind == b.kind)
        {
            let (entity, kind) = (&run[0].entity, run[0].kind);
            tokens.clear();
            tokens.extend(run.iter().map(|c| c.lock));
            let owed = run.iter().any(|c| c.answer.is_some());
            // A completion nobody hears about may be lost in a crash (the message is
            // delivered again), so it needs no sync of its own; an answered one does.
            let mut journal = if owed {
                self.broker.journal()
            } else {
                self.broker.relaxed_journal()
            };
            let mut state = entity.lock();
            let together =
                state
                    .queue
                    .settle_all(kind, &tokens, Disposition::Complete, now, &mut journal);
            // Per completion when applied one at a time; empty when all went together.
            let (results, failed_together): (Vec<Result<(), CoreError>>, _) = match together {
                Ok(()) => (Vec::new(), None),
                // All or nothing: one lost lock leaves the others to be applied alone.
                Err(CoreError::LockLost | CoreError::MessageNotFound(_)) => (
                    tokens
                        .iter()
                        .map(|&lock| state.queue.complete(kind, lock, now, &mut journal))
                        .collect(),
                    None,
                ),
                Err(error) => (Vec::new(), Some(error)),
            };
            drop(state);
            let commit = journal.into_commit();
            let durable_later = commit.is_some();
            if owed {
                self.keep_commit(commit);
            } else {
                // Nothing waits for it; later commits of this round still cover it.
                drop(commit);
            }
            let applied = match &failed_together {
                Some(_) => 0,
                None if results.is_empty() => tokens.len(),
                None => results.iter().filter(|result| result.is_ok()).count(),
            };
            entity
                .stats
                .count_settled(Settled::Completed, applied as u64);
            let shared_failure = failed_together
                .as_ref()
                .map(|error| self.settlement_failure(entity, error));
            for (index, completion) in run.iter().enumerate() {
                let failure = match (&shared_failure, results.get(index)) {
                    (Some(failure), _) => Some(failure.clone()),
                    (None, Some(Err(error))) => Some(self.settlement_failure(entity, error)),
                    (None, _) => None,
                };
                let Some((link, delivery_id)) = completion.answer else {
                    continue;
                };
                match failure {
                    Some(failure) => {
                        let _ = self.engine.settle(link, delivery_id, failure);
                    }
                    None if durable_later => self.round_actions.push(AfterCommit::Settle {
                        link,
                        delivery_id,
                        state: DeliveryState::Accepted,
                    }),
                    None => {
                        let _ = self
                            .engine
                            .settle(link, delivery_id, DeliveryState::Accepted);
                    }
                }
            }
        }
        completions.clear();
        // The allocations serve the next round (a fresh list of locks per read cost more
        // than its completions: the allocator tidied up for each).
        self.completions = completions;
        self.completion_locks = tokens;
    }

    /// The answer to a settlement that failed with `error`: a lost lock as Service Bus
    /// says it, a store that can't write now as server-busy, anything else as an internal
    /// error (logged). Refusals are counted in the metrics.
    pub(super) fn settlement_failure(&self, entity: &Entity, error: &CoreError) -> DeliveryState {
        let condition = match error {
            CoreError::LockLost | CoreError::MessageNotFound(_) => return lock_lost(),
            CoreError::Store(store) if store.is_retryable() => conditions::SERVER_BUSY,
            _ => {
                tracing::error!(entity = %entity.name, %error, "settlement failed");
                conditions::INTERNAL_ERROR
            }
        };
        self.broker.stats.count_refusal(condition);
        rejected(condition, error.to_string())
    }
}
