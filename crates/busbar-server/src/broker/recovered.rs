//! The messages the store recovered, handed out entity by entity as the broker rebuilds
//! its queues.
//!
//! They stay in the one vector the store recovered them into, sorted by entity, and each
//! queue reads its entities' runs from it: copying them into a vector per entity first
//! made as many short-lived allocations as there are entities, which the allocator could
//! not give back once the queues' own allocations sat between them (with 10,000 queues,
//! hundreds of MiB of resident memory after a restart).

use std::collections::HashMap;
use std::ops::Range;

use busbar_store::{EntityId, RecoveredMessage};

pub(super) struct RecoveredByEntity {
    messages: Vec<RecoveredMessage>,
    runs: HashMap<EntityId, Range<usize>>,
}

impl RecoveredByEntity {
    pub(super) fn new(mut messages: Vec<RecoveredMessage>) -> Self {
        // The store recovers them sorted; a store that did not would otherwise split an
        // entity into several runs, the last of which would win.
        if !messages.is_sorted_by_key(|message| message.entity) {
            messages.sort_by_key(|message| (message.entity, message.seq));
        }
        let mut runs: HashMap<EntityId, Range<usize>> = HashMap::new();
        for (index, message) in messages.iter().enumerate() {
            runs.entry(message.entity)
                .and_modify(|run| run.end = index + 1)
                .or_insert(index..index + 1);
        }
        RecoveredByEntity { messages, runs }
    }

    /// The messages of `entities`, entity after entity, each in sequence order.
    pub(super) fn of<'a>(
        &'a self,
        entities: &'a [EntityId],
    ) -> impl Iterator<Item = RecoveredMessage> + 'a {
        entities.iter().flat_map(|entity| {
            let run = self.runs.get(entity).cloned().unwrap_or_default();
            self.messages.get(run).unwrap_or_default().iter().cloned()
        })
    }
}

#[cfg(test)]
mod tests {
    use busbar_store::{BodyRef, MessageMeta, MessageState};

    use super::*;

    fn message(entity: EntityId, seq: u64) -> RecoveredMessage {
        RecoveredMessage {
            entity,
            seq,
            meta: MessageMeta {
                enqueued_at_ms: 0,
                expires_at_ms: None,
                scheduled_at_ms: None,
                delivery_count: 0,
                state: MessageState::Active,
                session_id: None,
                message_id: None,
            },
            body: BodyRef {
                segment: 0,
                offset: seq,
                len: 1,
            },
        }
    }

    fn keys(messages: impl Iterator<Item = RecoveredMessage>) -> Vec<(EntityId, u64)> {
        messages.map(|m| (m.entity, m.seq)).collect()
    }

    #[test]
    fn hands_out_each_entity_in_order_sorted_or_not() {
        let sorted = RecoveredByEntity::new(vec![message(1, 1), message(1, 2), message(3, 1)]);
        assert_eq!(keys(sorted.of(&[3, 2, 1])), [(3, 1), (1, 1), (1, 2)]);
        let unsorted = RecoveredByEntity::new(vec![message(3, 1), message(1, 2), message(1, 1)]);
        assert_eq!(keys(unsorted.of(&[1])), [(1, 1), (1, 2)]);
        assert_eq!(keys(unsorted.of(&[7])), []);
    }
}
