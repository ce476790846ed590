//! Entity definitions and addressing: which queues exist, their settings and entity ids
//! (the catalog, saved as JSON through the store), and how a link address names a queue
//! and one of its subqueues. Queue state itself lives in [`crate::queue::Queue`] objects,
//! which the caller keeps, each behind its own lock.

use busbar_store::EntityId;
use serde::{Deserialize, Serialize};

use crate::config::QueueConfig;
use crate::subqueue::SubQueueKind;

/// Longest queue name Service Bus allows.
const MAX_NAME_LEN: usize = 260;
/// Entity ids reserved per queue: main, dead-letter, and one kept for the transfer
/// dead-letter queue so adding it later needs no catalog migration.
const IDS_PER_QUEUE: EntityId = 3;

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("an entity named {0:?} already exists")]
    AlreadyExists(String),
    #[error("no entity named {0:?}")]
    NotFound(String),
    #[error("invalid entity name {0:?}: {1}")]
    InvalidName(String, &'static str),
    #[error("entity ids exhausted")]
    IdsExhausted,
    #[error("catalog is not valid: {0}")]
    Catalog(#[from] serde_json::Error),
}

/// The transfer dead-letter entity of a queue: the id after its dead-letter entity, as
/// [`Namespace::create_queue`] allocates them.
pub const fn transfer_dead_letter_entity(dead_letter_entity: EntityId) -> EntityId {
    dead_letter_entity + 1
}

/// A queue's durable definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDefinition {
    /// As created (case preserved); lookups ignore case.
    pub name: String,
    pub config: QueueConfig,
    pub main_entity: EntityId,
    pub dead_letter_entity: EntityId,
    pub transfer_dead_letter_entity: EntityId,
}

/// The set of entity definitions, serialisable as the store's catalog blob.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    queues: Vec<QueueDefinition>,
    /// Next unallocated entity id; ids are never reused, even after a delete, so old
    /// log records can't be mistaken for a new entity's.
    next_entity_id: EntityId,
}

impl Namespace {
    pub fn new() -> Self {
        Namespace {
            queues: Vec::new(),
            next_entity_id: 1,
        }
    }

    pub fn from_json(json: &[u8]) -> Result<Self, NamespaceError> {
        Ok(serde_json::from_slice(json)?)
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain strings, numbers and options cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    pub fn queues(&self) -> &[QueueDefinition] {
        &self.queues
    }

    /// Case-insensitive lookup.
    pub fn queue(&self, name: &str) -> Option<&QueueDefinition> {
        self.queues
            .iter()
            .find(|q| q.name.eq_ignore_ascii_case(name))
    }

    /// Defines a queue and allocates its entity ids.
    pub fn create_queue(
        &mut self,
        name: &str,
        config: QueueConfig,
    ) -> Result<&QueueDefinition, NamespaceError> {
        validate_name(name)?;
        if self.queue(name).is_some() {
            return Err(NamespaceError::AlreadyExists(name.to_owned()));
        }
        let first = self.next_entity_id.max(1);
        let next = first
            .checked_add(IDS_PER_QUEUE)
            .ok_or(NamespaceError::IdsExhausted)?;
        self.next_entity_id = next;
        self.queues.push(QueueDefinition {
            name: name.to_owned(),
            config,
            main_entity: first,
            dead_letter_entity: first + 1,
            transfer_dead_letter_entity: first + 2,
        });
        self.queues
            .last()
            .ok_or(NamespaceError::NotFound(name.to_owned()))
    }

    pub fn update_queue(
        &mut self,
        name: &str,
        config: QueueConfig,
    ) -> Result<&QueueDefinition, NamespaceError> {
        let queue = self
            .queues
            .iter_mut()
            .find(|q| q.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| NamespaceError::NotFound(name.to_owned()))?;
        queue.config = config;
        Ok(queue)
    }

    pub fn delete_queue(&mut self, name: &str) -> Result<QueueDefinition, NamespaceError> {
        let index = self
            .queues
            .iter()
            .position(|q| q.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| NamespaceError::NotFound(name.to_owned()))?;
        Ok(self.queues.remove(index))
    }
}

fn validate_name(name: &str) -> Result<(), NamespaceError> {
    let invalid = |why| Err(NamespaceError::InvalidName(name.to_owned(), why));
    if name.is_empty() {
        return invalid("empty");
    }
    if name.len() > MAX_NAME_LEN {
        return invalid("longer than 260 characters");
    }
    if name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return invalid("leading, trailing or doubled '/'");
    }
    if name.contains('$') {
        return invalid("'$' is reserved for system entities");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '/'))
    {
        return invalid("only letters, digits, '-', '.', '_' and '/' are allowed");
    }
    Ok(())
}

/// A link address split into the entity it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address<'a> {
    /// The queue name as written (compare case-insensitively).
    pub entity: &'a str,
    pub subqueue: SubQueueKind,
    /// The address ends in `/$management`.
    pub management: bool,
}

/// Parses `q1`, `q1/$DeadLetterQueue`, `q1/$management`,
/// `q1/$DeadLetterQueue/$management` (suffixes in any case), also behind an
/// `amqps://host:port/` prefix. Returns `None` for an empty entity name.
pub fn parse_address(address: &str) -> Option<Address<'_>> {
    let mut path = address;
    if let Some(scheme_end) = path.find("://") {
        let rest = path.get(scheme_end + 3..)?;
        path = rest.find('/').and_then(|slash| rest.get(slash + 1..))?;
    }
    let path = path.trim_matches('/');
    let (path, management) = strip_suffix_ignore_case(path, "/$management");
    let (path, dead_letter) = strip_suffix_ignore_case(path, "/$deadletterqueue");
    if path.is_empty() || path.starts_with('$') {
        return None;
    }
    Some(Address {
        entity: path,
        subqueue: if dead_letter {
            SubQueueKind::DeadLetter
        } else {
            SubQueueKind::Main
        },
        management,
    })
}

fn strip_suffix_ignore_case<'a>(path: &'a str, suffix: &str) -> (&'a str, bool) {
    let Some(split) = path.len().checked_sub(suffix.len()) else {
        return (path, false);
    };
    match (path.get(..split), path.get(split..)) {
        (Some(head), Some(tail)) if tail.eq_ignore_ascii_case(suffix) => (head, true),
        _ => (path, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses_in_any_case() {
        let a = parse_address("q1").expect("valid");
        assert_eq!(
            (a.entity, a.subqueue, a.management),
            ("q1", SubQueueKind::Main, false)
        );
        let a = parse_address("Q1/$deadletterqueue").expect("valid");
        assert_eq!((a.entity, a.subqueue), ("Q1", SubQueueKind::DeadLetter));
        let a =
            parse_address("amqps://localhost:5672/q1/$DeadLetterQueue/$Management").expect("valid");
        assert_eq!(
            (a.entity, a.subqueue, a.management),
            ("q1", SubQueueKind::DeadLetter, true)
        );
        let a = parse_address("orders/$management").expect("valid");
        assert_eq!(
            (a.entity, a.subqueue, a.management),
            ("orders", SubQueueKind::Main, true)
        );
        assert!(parse_address("").is_none());
        assert!(parse_address("$cbs").is_none());
        assert!(parse_address("amqps://host").is_none());
    }

    #[test]
    fn lookups_ignore_case_and_ids_are_unique() {
        let mut ns = Namespace::new();
        let a = ns
            .create_queue("Orders", QueueConfig::default())
            .expect("created")
            .clone();
        let b = ns
            .create_queue("emails", QueueConfig::default())
            .expect("created")
            .clone();
        assert!(matches!(
            ns.create_queue("ORDERS", QueueConfig::default()),
            Err(NamespaceError::AlreadyExists(_))
        ));
        assert_eq!(
            ns.queue("orders").map(|q| q.main_entity),
            Some(a.main_entity)
        );
        let ids = [
            a.main_entity,
            a.dead_letter_entity,
            a.transfer_dead_letter_entity,
            b.main_entity,
            b.dead_letter_entity,
            b.transfer_dead_letter_entity,
        ];
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        assert!(ids.iter().all(|id| *id > 0));
    }

    #[test]
    fn deleted_ids_are_not_reused_and_catalog_round_trips() {
        let mut ns = Namespace::new();
        let first = ns
            .create_queue("a", QueueConfig::default())
            .expect("created")
            .main_entity;
        ns.delete_queue("A").expect("deleted");
        let second = ns
            .create_queue("a", QueueConfig::default())
            .expect("created")
            .main_entity;
        assert_ne!(first, second);
        let config = QueueConfig {
            max_delivery_count: 2,
            ..QueueConfig::default()
        };
        ns.update_queue("a", config.clone()).expect("updated");
        let back = Namespace::from_json(&ns.to_json()).expect("parses");
        assert_eq!(back, ns);
        assert_eq!(back.queue("a").map(|q| &q.config), Some(&config));
    }

    #[test]
    fn rejects_bad_names() {
        let mut ns = Namespace::new();
        for bad in ["", "a$b", "/a", "a/", "a//b", "a b"] {
            assert!(
                matches!(
                    ns.create_queue(bad, QueueConfig::default()),
                    Err(NamespaceError::InvalidName(..))
                ),
                "{bad:?} accepted"
            );
        }
        assert!(ns.queues().is_empty());
    }
}
