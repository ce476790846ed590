//! The duplicate-detection window of a queue: the message-ids seen within
//! `duplicate_detection_window_ms`, each kept durable as a marker record (an `Enqueue`
//! with an empty body under the queue's marker entity) so the window survives a restart.
//! A marker is removed once it falls out of the window.

use std::collections::{BTreeSet, HashMap};

use busbar_store::{BodyRef, EntityId, MessageMeta, Record, RecoveredMessage, Seq};
use bytes::Bytes;

#[derive(Debug, Clone, Copy)]
struct Marker {
    seen_at_ms: i64,
    seq: Seq,
    body_ref: BodyRef,
}

#[derive(Debug)]
pub(crate) struct DuplicateWindow {
    entity: EntityId,
    last_seq: Seq,
    ids: HashMap<Box<str>, Marker>,
    /// (seen at, marker seq) → id, oldest first.
    by_age: BTreeSet<(i64, Seq)>,
    by_seq: HashMap<Seq, Box<str>>,
}

impl DuplicateWindow {
    pub(crate) fn new(entity: EntityId, last_seq: Seq) -> Self {
        DuplicateWindow {
            entity,
            last_seq,
            ids: HashMap::new(),
            by_age: BTreeSet::new(),
            by_seq: HashMap::new(),
        }
    }

    pub(crate) fn entity(&self) -> EntityId {
        self.entity
    }

    pub(crate) fn restore(&mut self, message: RecoveredMessage) {
        self.last_seq = self.last_seq.max(message.seq);
        if let Some(id) = message.meta.message_id {
            self.remember(id, message.meta.enqueued_at_ms, message.seq, message.body);
        }
    }

    /// Whether `id` was seen within the window ending at `now_ms`.
    pub(crate) fn contains(&self, id: &str, now_ms: i64, window_ms: i64) -> bool {
        self.ids
            .get(id)
            .is_some_and(|m| m.seen_at_ms > now_ms.saturating_sub(window_ms))
    }

    /// The seq the next marker takes; markers of one batch take consecutive seqs.
    pub(crate) fn next_seq(&self) -> Seq {
        self.last_seq + 1
    }

    /// The marker record for a newly seen id.
    pub(crate) fn marker_record(&self, id: &str, now_ms: i64, seq: Seq) -> Record {
        Record::Enqueue {
            entity: self.entity,
            seq,
            meta: MessageMeta {
                enqueued_at_ms: now_ms,
                message_id: Some(id.into()),
                ..MessageMeta::default()
            },
            body: Bytes::new(),
        }
    }

    /// Remove records for markers that fell out of the window, and for the marker of an
    /// id about to be re-marked.
    pub(crate) fn expired_records(&self, now_ms: i64, window_ms: i64) -> Vec<(Seq, Record)> {
        let cutoff = now_ms.saturating_sub(window_ms);
        self.by_age
            .range(..=(cutoff, Seq::MAX))
            .filter_map(|(_, seq)| self.remove_record(*seq))
            .collect()
    }

    fn remove_record(&self, seq: Seq) -> Option<(Seq, Record)> {
        let id = self.by_seq.get(&seq)?;
        let marker = self.ids.get(id)?;
        Some((
            seq,
            Record::Remove {
                entity: self.entity,
                seq,
                body: marker.body_ref,
            },
        ))
    }

    pub(crate) fn remember(&mut self, id: Box<str>, seen_at_ms: i64, seq: Seq, body_ref: BodyRef) {
        self.last_seq = self.last_seq.max(seq);
        self.forget_id(&id);
        self.by_age.insert((seen_at_ms, seq));
        self.by_seq.insert(seq, id.clone());
        self.ids.insert(
            id,
            Marker {
                seen_at_ms,
                seq,
                body_ref,
            },
        );
    }

    pub(crate) fn forget_seq(&mut self, seq: Seq) {
        if let Some(id) = self.by_seq.get(&seq).cloned() {
            self.forget_id(&id);
        }
    }

    fn forget_id(&mut self, id: &str) {
        if let Some(marker) = self.ids.remove(id) {
            self.by_age.remove(&(marker.seen_at_ms, marker.seq));
            self.by_seq.remove(&marker.seq);
        }
    }

    /// Remove records for every marker, for deleting the entity.
    pub(crate) fn removal_records(&self) -> Vec<Record> {
        self.ids
            .values()
            .map(|marker| Record::Remove {
                entity: self.entity,
                seq: marker.seq,
                body: marker.body_ref,
            })
            .collect()
    }

    /// Number of ids in the window.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }
}
