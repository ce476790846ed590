//! An in-memory journal and state checks shared by the integration tests.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};

use busbar_core::{Queue, SubQueueCounts, SubQueueKind};
use busbar_store::{
    BodyRef, EntityId, MessageMeta, MessageState, Record, RecoveredMessage, Seq, StoreError,
};
use bytes::Bytes;

/// Marks dead-letter copies so tests can see the rewrite happened.
pub const DEAD_LETTER_MARK: &[u8] = b"|DL|";
/// Starts the body of a stand-in for a message whose body could not be read.
pub const STAND_IN_MARK: &str = "STAND-IN|";

#[derive(Default)]
pub struct MemJournal {
    /// One entry per `append` call.
    pub appends: Vec<Vec<Record>>,
    /// The body refs handed out by each append, aligned with `appends`.
    pub append_refs: Vec<Vec<BodyRef>>,
    pub bodies: HashMap<BodyRef, Bytes>,
    pub reads: usize,
    next_offset: u64,
    /// Fail the next append with an I/O error.
    pub fail_next_append: bool,
}

impl MemJournal {
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.appends.iter().flatten()
    }

    pub fn last_append(&self) -> &[Record] {
        self.appends.last().map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn body(&self, body_ref: BodyRef) -> Bytes {
        self.bodies.get(&body_ref).cloned().expect("known body")
    }

    /// Replays every record from scratch, as the store would at start.
    pub fn replay(&self) -> (Vec<RecoveredMessage>, HashMap<EntityId, Seq>) {
        let mut live: BTreeMap<(EntityId, Seq), (MessageMeta, BodyRef)> = BTreeMap::new();
        let mut last: HashMap<EntityId, Seq> = HashMap::new();
        for (append, refs) in self.appends.iter().zip(&self.append_refs) {
            let mut refs = refs.iter().copied();
            for record in append {
                match record {
                    Record::Enqueue {
                        entity,
                        seq,
                        meta,
                        body,
                    } => {
                        let body_ref = refs.next().expect("one ref per enqueue");
                        assert_eq!(self.bodies.get(&body_ref), Some(body));
                        live.insert((*entity, *seq), (meta.clone(), body_ref));
                        let l = last.entry(*entity).or_default();
                        *l = (*l).max(*seq);
                    }
                    Record::Update {
                        entity,
                        seq,
                        delivery_count,
                        state,
                    } => {
                        let (meta, _) = live
                            .get_mut(&(*entity, *seq))
                            .expect("update of a live message");
                        meta.delivery_count = *delivery_count;
                        meta.state = *state;
                    }
                    Record::Remove { entity, seq, body } => {
                        let (_, stored) = live
                            .remove(&(*entity, *seq))
                            .expect("remove of a live message");
                        assert_eq!(stored, *body, "remove names the enqueued body");
                    }
                }
            }
        }
        let messages = live
            .into_iter()
            .map(|((entity, seq), (meta, body))| RecoveredMessage {
                entity,
                seq,
                meta,
                body,
            })
            .collect();
        (messages, last)
    }
}

impl busbar_core::Journal for MemJournal {
    fn append(&mut self, records: Vec<Record>) -> Result<Vec<BodyRef>, StoreError> {
        if std::mem::take(&mut self.fail_next_append) {
            return Err(StoreError::Io("disk on fire".into()));
        }
        let mut refs = Vec::new();
        for record in &records {
            if let Record::Enqueue { body, .. } = record {
                let body_ref = BodyRef {
                    segment: 0,
                    offset: self.next_offset,
                    len: body.len() as u32,
                };
                // Distinct offsets even for empty bodies.
                self.next_offset += body.len() as u64 + 1;
                self.bodies.insert(body_ref, body.clone());
                refs.push(body_ref);
            }
        }
        self.appends.push(records);
        self.append_refs.push(refs.clone());
        Ok(refs)
    }

    fn read_body(&mut self, body: BodyRef) -> Result<Bytes, StoreError> {
        self.reads += 1;
        self.bodies
            .get(&body)
            .cloned()
            .ok_or(StoreError::UnknownBody(body))
    }

    fn dead_letter_body(
        &mut self,
        original: &Bytes,
        reason: Option<&str>,
        description: Option<&str>,
    ) -> Bytes {
        let mut body = original.to_vec();
        body.extend_from_slice(DEAD_LETTER_MARK);
        body.extend_from_slice(reason.unwrap_or("-").as_bytes());
        body.push(b'|');
        body.extend_from_slice(description.unwrap_or("-").as_bytes());
        Bytes::from(body)
    }

    fn stand_in_body(&mut self, _meta: &MessageMeta, reason: &str, description: &str) -> Bytes {
        Bytes::from(format!("{STAND_IN_MARK}{reason}|{description}"))
    }
}

/// Counts recomputed by scanning, to compare with the maintained ones.
pub fn recount(queue: &Queue, kind: SubQueueKind) -> SubQueueCounts {
    let mut counts = SubQueueCounts::default();
    for message in queue.sub(kind).peek(0) {
        match message.meta.state {
            MessageState::Active => counts.active += 1,
            MessageState::Deferred => counts.deferred += 1,
            MessageState::Scheduled => counts.scheduled += 1,
        }
        if message.locked_until_ms.is_some() {
            counts.locked += 1;
        }
    }
    counts
}

/// Checks the maintained counts against a recount, for both subqueues and the queue.
pub fn assert_counts_exact(queue: &Queue) {
    for kind in SubQueueKind::ALL {
        assert_eq!(
            queue.sub(kind).counts(),
            recount(queue, kind),
            "{kind:?} counts"
        );
        assert_eq!(
            queue.sub(kind).counts().total(),
            queue.sub(kind).len() as u64
        );
    }
    let counts = queue.counts();
    let main = recount(queue, SubQueueKind::Main);
    assert_eq!(counts.active, main.active);
    assert_eq!(counts.deferred, main.deferred);
    assert_eq!(counts.scheduled, main.scheduled);
    assert_eq!(counts.locked, main.locked);
    assert_eq!(
        counts.dead_letter,
        recount(queue, SubQueueKind::DeadLetter).total()
    );
    assert_eq!(
        counts.transfer_dead_letter,
        recount(queue, SubQueueKind::TransferDeadLetter).total()
    );
}

/// The live messages of a subqueue as (seq, meta, body ref).
pub fn snapshot(queue: &Queue, kind: SubQueueKind) -> Vec<(Seq, MessageMeta, BodyRef)> {
    queue
        .sub(kind)
        .peek(0)
        .map(|m| (m.seq, m.meta.clone(), m.body_ref))
        .collect()
}

/// Rebuilds `queue` from the journal's records and checks it holds the same messages.
pub fn assert_replay_matches(queue: &Queue, journal: &MemJournal) -> Queue {
    let (messages, last) = journal.replay();
    let restored = Queue::restore(
        queue.name(),
        queue.config().clone(),
        queue.sub(SubQueueKind::Main).entity(),
        queue.sub(SubQueueKind::DeadLetter).entity(),
        &last,
        messages,
    );
    for kind in SubQueueKind::ALL {
        assert_eq!(
            snapshot(&restored, kind),
            snapshot(queue, kind),
            "{kind:?} after replay"
        );
        assert_eq!(
            restored.sub(kind).last_seq(),
            queue.sub(kind).last_seq(),
            "{kind:?} last seq"
        );
    }
    assert_counts_exact(&restored);
    restored
}
