//! The entity ids a queue's streams live under, all derived from the ids the catalog
//! allocates, so the catalog stores no more than three per queue (or topic):
//!
//! * allocated, consecutive: the main entity, its dead-letter entity, and its transfer
//!   dead-letter entity (reserved from the start, so adding it needed no migration);
//! * derived from the main entity by a high bit: the duplicate-detection markers
//!   (`1 << 31 | main`) and the session states (`1 << 30 | main`).
//!
//! Allocated ids stay below [`ALLOCATED_IDS_END`], so no derived id can equal an allocated
//! one and each derived id gives its main entity back.

use busbar_store::EntityId;

/// Entity ids the catalog allocates per queue or topic: main, dead-letter, transfer
/// dead-letter.
pub const ALLOCATED_PER_QUEUE: EntityId = 3;

/// The catalog allocates ids below this one; from here on they are derived.
pub const ALLOCATED_IDS_END: EntityId = SESSION_STATE_BIT;

/// Marks the entity of a queue's (or topic's) duplicate-detection markers.
pub const MARKER_ENTITY_BIT: EntityId = 1 << 31;

/// Marks the entity of a session-enabled queue's session states.
pub const SESSION_STATE_BIT: EntityId = 1 << 30;

/// The dead-letter entity of the queue whose main stream is `main_entity`, as the catalog
/// allocates it.
pub const fn dead_letter_entity(main_entity: EntityId) -> EntityId {
    main_entity + 1
}

/// The transfer dead-letter entity of a queue: the id after its dead-letter entity.
pub const fn transfer_dead_letter_entity(dead_letter_entity: EntityId) -> EntityId {
    dead_letter_entity + 1
}

/// The duplicate-detection marker entity of the queue or topic whose main stream is
/// `main_entity`.
pub const fn marker_entity(main_entity: EntityId) -> EntityId {
    MARKER_ENTITY_BIT | main_entity
}

/// The entity holding the session states of the queue whose main stream is `main_entity`.
pub const fn session_state_entity(main_entity: EntityId) -> EntityId {
    SESSION_STATE_BIT | main_entity
}

/// The main entity a derived id (marker or session state) was made from, or `None` for an
/// allocated id.
pub const fn derived_from(entity: EntityId) -> Option<EntityId> {
    if entity & (MARKER_ENTITY_BIT | SESSION_STATE_BIT) == 0 {
        None
    } else {
        Some(entity & !(MARKER_ENTITY_BIT | SESSION_STATE_BIT))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// Every id that belongs to the queue whose main entity is `main`.
    fn ids_of(main: EntityId) -> [EntityId; 5] {
        let dead_letter = dead_letter_entity(main);
        [
            main,
            dead_letter,
            transfer_dead_letter_entity(dead_letter),
            marker_entity(main),
            session_state_entity(main),
        ]
    }

    #[test]
    fn the_ids_of_neighbouring_queues_are_all_distinct() {
        let highest = ALLOCATED_IDS_END - ALLOCATED_PER_QUEUE;
        let mains = (0..200)
            .map(|n| 1 + n * ALLOCATED_PER_QUEUE)
            .chain((0..200).map(|n| highest - n * ALLOCATED_PER_QUEUE));
        let mut seen = HashSet::new();
        for main in mains {
            for id in ids_of(main) {
                assert!(
                    seen.insert(id),
                    "id {id:#x} of queue {main:#x} is taken twice"
                );
            }
        }
    }

    #[test]
    fn the_allocated_ids_are_consecutive() {
        let [main, dead_letter, transfer_dead_letter, ..] = ids_of(7);
        assert_eq!(
            [dead_letter, transfer_dead_letter],
            [main + 1, main + ALLOCATED_PER_QUEUE - 1]
        );
    }

    #[test]
    fn derived_ids_give_their_main_entity_back() {
        for main in [1, 4, 1_000, ALLOCATED_IDS_END - ALLOCATED_PER_QUEUE] {
            assert_eq!(derived_from(marker_entity(main)), Some(main));
            assert_eq!(derived_from(session_state_entity(main)), Some(main));
            assert_ne!(marker_entity(main), session_state_entity(main));
        }
    }

    #[test]
    fn allocated_ids_are_not_derived() {
        let main = ALLOCATED_IDS_END - ALLOCATED_PER_QUEUE;
        for id in &ids_of(main)[..3] {
            assert_eq!(derived_from(*id), None, "{id:#x}");
        }
    }
}
