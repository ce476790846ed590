//! One stream of messages with its own entity id and sequence numbers, and the indexes
//! that make delivery cheap. Only [`crate::queue::Queue`] mutates it, so that every change
//! is journaled first.
//!
//! Memory per queued message is what bounds a deep queue, so messages are kept compactly:
//! sequence numbers are dense, so messages live in chunks of consecutive seqs (a dense
//! slot array once a chunk is well filled, a sorted vector while it is sparse), and the
//! things only few messages have (a resident body, a lock, a scheduled time) live in side
//! maps keyed by seq. Message ids are not kept: duplicate detection has its own window
//! (`crate::dedup`), and nothing else needs the id of a queued message, so every
//! [`MessageMeta`] handed out here has `message_id: None`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use busbar_store::{BodyRef, EntityId, MessageMeta, MessageState, Seq};
use bytes::Bytes;
use uuid::Uuid;

use crate::resident::ResidentBudget;

/// Which stream of a queue an operation addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubQueueKind {
    /// The queue itself.
    Main,
    /// `<queue>/$DeadLetterQueue`.
    DeadLetter,
    /// `<queue>/$Transfer/$DeadLetterQueue`: messages that could not be forwarded.
    TransferDeadLetter,
}

impl SubQueueKind {
    pub const ALL: [SubQueueKind; 3] = [
        SubQueueKind::Main,
        SubQueueKind::DeadLetter,
        SubQueueKind::TransferDeadLetter,
    ];
}

/// Identifies whoever holds locks (a receiver link), so its locks can be dropped when it
/// goes away. The caller allocates these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConsumerId(pub u64);

/// The maps every message passes through, keyed by the broker's own sequence numbers and
/// lock tokens (never chosen by a client): SipHash's resistance to chosen keys buys nothing
/// there and cost about a tenth of a received message's instructions.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
/// A set of such keys.
pub(crate) type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;

/// A per-message map that empties keeps at most this much room...
const ROOM_KEPT_WHEN_EMPTY: usize = 32;

/// ...and gives the rest back: a queue drained after it held many messages (locked, or
/// with resident bodies) would otherwise keep their room, kilobytes per queue, for as long
/// as it stays idle. A queue whose in-flight count often falls to zero from a high
/// water mark pays a regrowth each time; one with few in flight pays nothing.
///
/// Removes `key` from `map` and, if that empties it, gives back its room beyond
/// [`ROOM_KEPT_WHEN_EMPTY`]. The last entry leaves through `drain`, which resets the
/// table: a plain `remove` leaves a tombstone wherever the probe group around the slot
/// had been full, and the room behind tombstones is missing from `capacity()`, so an
/// emptied table of 128 buckets could report a capacity under 32 and keep all of them.
/// Which slots turn into tombstones follows the hashes (random seeds, random lock
/// tokens), so a drained queue kept a few KiB more in some runs than in others.
fn remove_releasing_room<K: Eq + std::hash::Hash, V>(
    map: &mut FastMap<K, V>,
    key: &K,
) -> Option<V> {
    if map.len() != 1 {
        return map.remove(key);
    }
    if !map.contains_key(key) {
        return None;
    }
    let value = map.drain().next().map(|(_, value)| value);
    if map.capacity() > ROOM_KEPT_WHEN_EMPTY {
        map.shrink_to_fit();
    }
    value
}

/// Exact message counts of one subqueue, maintained on every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubQueueCounts {
    /// Messages in state Active, including locked ones (as Service Bus counts them).
    pub active: u64,
    pub deferred: u64,
    pub scheduled: u64,
    /// Messages currently locked (active or deferred).
    pub locked: u64,
}

impl SubQueueCounts {
    pub fn total(&self) -> u64 {
        self.active + self.deferred + self.scheduled
    }
}

#[derive(Debug, Clone)]
pub(crate) struct HeldLock {
    pub(crate) token: Uuid,
    pub(crate) until_ms: i64,
    pub(crate) owner: ConsumerId,
}

/// A read-only look at a stored message. `meta` is built on demand (its `message_id` is
/// always `None`, see the module docs).
#[derive(Debug, Clone)]
pub struct MessageView<'a> {
    pub seq: Seq,
    pub meta: MessageMeta,
    pub body_ref: BodyRef,
    /// The body when it is resident in memory; otherwise read it from the store.
    pub body: Option<&'a Bytes>,
    /// When the message is locked, until when.
    pub locked_until_ms: Option<i64>,
}

/// The states kept in [`SubQueue`]'s `parked` index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ParkedState {
    Scheduled,
    Deferred,
}

/// log2 of the number of consecutive seqs per chunk.
const CHUNK_BITS: u32 = 10;
const CHUNK_SLOTS: usize = 1 << CHUNK_BITS;
const WORDS: usize = CHUNK_SLOTS / 64;
/// A sparse chunk turns dense when it would grow beyond this many messages...
const SPARSE_MAX: usize = CHUNK_SLOTS / 4;
/// ...and a dense one turns sparse again at this many, so a chunk hovering around one
/// size does not flip back and forth, and messages left behind (deferred, locked) cost
/// at most a few hundred bytes each instead of pinning a whole slot array. Removing from a
/// sparse chunk moves at most this many entries.
const SPARSE_MIN: usize = CHUNK_SLOTS / 8;

/// The compact per-message record. Everything rare lives in the side maps of
/// [`SubQueue`]. `Option<Slot>` is no bigger than `Slot` (niche in `state`).
#[derive(Debug, Clone)]
struct Slot {
    enqueued_at_ms: i64,
    /// Meaningful only when `expires`.
    expires_at_ms: i64,
    body_ref: BodyRef,
    delivery_count: u32,
    state: MessageState,
    expires: bool,
    session_id: Option<Box<str>>,
}

/// The messages of one chunk: a sorted (offset, slot) vector while few, a slot array
/// indexed by offset once many.
#[derive(Debug)]
enum Slots {
    Sparse(Vec<(u16, Slot)>),
    Dense {
        slots: Box<[Option<Slot>]>,
        len: usize,
    },
}

impl Slots {
    fn len(&self) -> usize {
        match self {
            Slots::Sparse(slots) => slots.len(),
            Slots::Dense { len, .. } => *len,
        }
    }

    fn get(&self, offset: u16) -> Option<&Slot> {
        match self {
            Slots::Sparse(slots) => slots
                .binary_search_by_key(&offset, |(o, _)| *o)
                .ok()
                .map(|i| &slots[i].1),
            Slots::Dense { slots, .. } => slots.get(usize::from(offset))?.as_ref(),
        }
    }

    fn get_mut(&mut self, offset: u16) -> Option<&mut Slot> {
        match self {
            Slots::Sparse(slots) => slots
                .binary_search_by_key(&offset, |(o, _)| *o)
                .ok()
                .map(|i| &mut slots[i].1),
            Slots::Dense { slots, .. } => slots.get_mut(usize::from(offset))?.as_mut(),
        }
    }

    /// Stores `slot` at `offset`, which must be free.
    fn insert(&mut self, offset: u16, slot: Slot) {
        match self {
            Slots::Sparse(slots) => {
                // Appends are the common case: seqs arrive in order.
                let at = match slots.last() {
                    Some((last, _)) if *last < offset => slots.len(),
                    None => 0,
                    Some(_) => slots.partition_point(|(o, _)| *o < offset),
                };
                slots.insert(at, (offset, slot));
                if slots.len() > SPARSE_MAX {
                    let mut dense: Box<[Option<Slot>]> = (0..CHUNK_SLOTS).map(|_| None).collect();
                    let len = slots.len();
                    for (offset, slot) in slots.drain(..) {
                        if let Some(place) = dense.get_mut(usize::from(offset)) {
                            *place = Some(slot);
                        }
                    }
                    *self = Slots::Dense { slots: dense, len };
                }
            }
            Slots::Dense { slots, len } => {
                if let Some(place) = slots.get_mut(usize::from(offset))
                    && place.replace(slot).is_none()
                {
                    *len += 1;
                }
            }
        }
    }

    fn remove(&mut self, offset: u16) -> Option<Slot> {
        match self {
            Slots::Sparse(slots) => {
                let at = slots.binary_search_by_key(&offset, |(o, _)| *o).ok()?;
                let (_, slot) = slots.remove(at);
                if slots.capacity() > 4 * slots.len().max(4) {
                    slots.shrink_to(2 * slots.len());
                }
                Some(slot)
            }
            Slots::Dense { slots, len } => {
                let slot = slots.get_mut(usize::from(offset))?.take()?;
                *len -= 1;
                if *len <= SPARSE_MIN {
                    let sparse: Vec<(u16, Slot)> = slots
                        .iter_mut()
                        .enumerate()
                        .filter_map(|(o, s)| Some((o as u16, s.take()?)))
                        .collect();
                    *self = Slots::Sparse(sparse);
                }
                Some(slot)
            }
        }
    }

    /// Messages at `from` or later, in offset order.
    fn iter_from(&self, from: u16) -> SlotIter<'_> {
        match self {
            Slots::Sparse(slots) => {
                let start = slots.partition_point(|(o, _)| *o < from);
                SlotIter::Sparse(slots[start..].iter())
            }
            Slots::Dense { slots, .. } => {
                let start = usize::from(from).min(slots.len());
                SlotIter::Dense {
                    next: start as u16,
                    slots: slots[start..].iter(),
                }
            }
        }
    }
}

enum SlotIter<'a> {
    Sparse(std::slice::Iter<'a, (u16, Slot)>),
    Dense {
        next: u16,
        slots: std::slice::Iter<'a, Option<Slot>>,
    },
}

impl<'a> Iterator for SlotIter<'a> {
    type Item = (u16, &'a Slot);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            SlotIter::Sparse(slots) => slots.next().map(|(o, slot)| (*o, slot)),
            SlotIter::Dense { next, slots } => loop {
                let offset = *next;
                let slot = slots.next()?;
                *next = next.wrapping_add(1);
                if let Some(slot) = slot {
                    return Some((offset, slot));
                }
            },
        }
    }
}

/// The messages of `CHUNK_SLOTS` consecutive seqs, with one bit per seq saying whether
/// that message is available (Active and unlocked).
#[derive(Debug)]
struct Chunk {
    slots: Slots,
    available: [u64; WORDS],
    available_len: u32,
}

impl Chunk {
    fn new() -> Self {
        Chunk {
            slots: Slots::Sparse(Vec::new()),
            available: [0; WORDS],
            available_len: 0,
        }
    }

    /// Offsets whose available bit is set, ascending.
    fn available_offsets(&self) -> impl Iterator<Item = u16> + '_ {
        self.available
            .iter()
            .enumerate()
            .flat_map(|(word_index, &word)| {
                let mut rest = word;
                std::iter::from_fn(move || {
                    if rest == 0 {
                        return None;
                    }
                    let bit = rest.trailing_zeros() as usize;
                    rest &= rest - 1;
                    Some((word_index * 64 + bit) as u16)
                })
            })
    }
}

fn split(seq: Seq) -> (u64, u16) {
    (seq >> CHUNK_BITS, (seq & (CHUNK_SLOTS as u64 - 1)) as u16)
}

fn join(chunk: u64, offset: u16) -> Seq {
    (chunk << CHUNK_BITS) | u64::from(offset)
}

/// A stored message as the queue logic sees it; the rarely needed parts are looked up in
/// the side maps only when asked for.
#[derive(Clone, Copy)]
pub(crate) struct Entry<'a> {
    seq: Seq,
    slot: &'a Slot,
    sub: &'a SubQueue,
}

impl<'a> Entry<'a> {
    pub(crate) fn state(&self) -> MessageState {
        self.slot.state
    }

    pub(crate) fn delivery_count(&self) -> u32 {
        self.slot.delivery_count
    }

    pub(crate) fn expires_at_ms(&self) -> Option<i64> {
        self.slot.expires.then_some(self.slot.expires_at_ms)
    }

    pub(crate) fn body_ref(&self) -> BodyRef {
        self.slot.body_ref
    }

    /// The body, when resident.
    pub(crate) fn body(&self) -> Option<&'a Bytes> {
        self.sub.bodies.get(&self.seq)
    }

    pub(crate) fn session_id(&self) -> Option<&'a str> {
        self.slot.session_id.as_deref()
    }

    pub(crate) fn lock(&self) -> Option<&'a HeldLock> {
        self.sub.held.get(&self.seq)
    }

    pub(crate) fn meta(&self) -> MessageMeta {
        self.sub.meta(self.seq, self.slot)
    }
}

/// One stream of messages: a queue's main stream or its dead-letter queue.
///
/// Invariants, for every seq:
/// - it has a slot in `chunks` exactly when the message is held here, and a chunk is in
///   `chunks` only while it holds a message; `len` counts the slots;
/// - its available bit (in its chunk) is set exactly when the message is Active and
///   unlocked; a chunk is in `available_chunks` exactly when `available_len`, the number
///   of its set bits, is non-zero;
/// - it is in `scheduled` exactly when the message is Scheduled, keyed by its
///   `scheduled_at` entry (`i64::MIN` if it has none);
/// - it is in `parked` exactly when the message is Scheduled or Deferred, with that state;
/// - it is in `scheduled_at` exactly when the message has a scheduled time (in any state);
/// - it is in `expiries` exactly when the message has an expiry time;
/// - it is in `held`, `lock_deadlines` and (by token) `locks` exactly when locked;
/// - it is in `bodies` exactly when its body is resident; `resident_bytes` sums them and
///   is what this subqueue holds of `budget`;
/// - `stored_bytes` sums the stored body lengths (`body_ref.len`) of all its messages;
/// - `counts` are the exact counts by state and of locks.
#[derive(Debug)]
pub struct SubQueue {
    entity: EntityId,
    kind: SubQueueKind,
    last_seq: Seq,
    /// Chunk number (`seq >> CHUNK_BITS`) → its messages. Boxed: a map node has room
    /// for eleven entries, and a queue of a few messages has one chunk, which inline would
    /// cost eleven chunks' room (1.9 KiB) per queue.
    chunks: BTreeMap<u64, Box<Chunk>>,
    len: usize,
    available_chunks: BTreeSet<u64>,
    /// Available seqs of each session (messages with a session id), so a session
    /// receiver finds its next message without scanning other sessions'.
    session_available: HashMap<Box<str>, BTreeSet<Seq>>,
    /// Stored messages with a session id; while 0, availability changes skip the
    /// session index entirely.
    session_messages: usize,
    bodies: FastMap<Seq, Bytes>,
    held: FastMap<Seq, HeldLock>,
    scheduled_at: FastMap<Seq, i64>,
    scheduled: BTreeSet<(i64, Seq)>,
    /// Scheduled and deferred seqs in sequence order, for browsing a page of them without
    /// walking the active ones; active messages never enter it, so sends don't pay for it.
    parked: BTreeSet<(ParkedState, Seq)>,
    /// Messages with a time to live, by expiry time.
    expiries: BTreeSet<(i64, Seq)>,
    locks: FastMap<Uuid, Seq>,
    lock_deadlines: BTreeSet<(i64, Seq)>,
    counts: SubQueueCounts,
    resident_bytes: u64,
    budget: ResidentBudget,
    stored_bytes: u64,
}

impl Drop for SubQueue {
    fn drop(&mut self) {
        self.budget.give_back(self.resident_bytes);
    }
}

impl SubQueue {
    pub(crate) fn new(
        entity: EntityId,
        kind: SubQueueKind,
        last_seq: Seq,
        budget: ResidentBudget,
    ) -> Self {
        SubQueue {
            entity,
            kind,
            last_seq,
            chunks: BTreeMap::new(),
            len: 0,
            available_chunks: BTreeSet::new(),
            session_available: HashMap::new(),
            session_messages: 0,
            bodies: FastMap::default(),
            held: FastMap::default(),
            scheduled_at: FastMap::default(),
            scheduled: BTreeSet::new(),
            parked: BTreeSet::new(),
            expiries: BTreeSet::new(),
            locks: FastMap::default(),
            lock_deadlines: BTreeSet::new(),
            counts: SubQueueCounts::default(),
            resident_bytes: 0,
            budget,
            stored_bytes: 0,
        }
    }

    pub fn entity(&self) -> EntityId {
        self.entity
    }

    pub fn kind(&self) -> SubQueueKind {
        self.kind
    }

    /// Highest sequence number ever assigned here (0 before the first message).
    pub fn last_seq(&self) -> Seq {
        self.last_seq
    }

    pub fn counts(&self) -> SubQueueCounts {
        self.counts
    }

    /// Number of messages held, in any state.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of message bodies held in memory.
    pub fn resident_bytes(&self) -> u64 {
        self.resident_bytes
    }

    /// Bytes of the message bodies held, as stored (see [`crate::quota`]).
    pub fn stored_bytes(&self) -> u64 {
        self.stored_bytes
    }

    pub fn get(&self, seq: Seq) -> Option<MessageView<'_>> {
        self.slot(seq).map(|slot| self.view(seq, slot))
    }

    /// Messages in sequence order from `from_seq` (inclusive), in every state, without
    /// locking anything: what `peek-message` shows.
    pub fn peek(&self, from_seq: Seq) -> impl Iterator<Item = MessageView<'_>> {
        let (first_chunk, first_offset) = split(from_seq);
        self.chunks
            .range(first_chunk..)
            .flat_map(move |(&number, chunk)| {
                let from = if number == first_chunk {
                    first_offset
                } else {
                    0
                };
                chunk
                    .slots
                    .iter_from(from)
                    .map(move |(offset, slot)| self.view(join(number, offset), slot))
            })
    }

    /// Up to `limit` messages in `state` (any state: `None`) from `from_seq` (inclusive),
    /// in sequence order, without locking anything. The cost follows the page, not the
    /// stream: active messages come from the availability bits and the (few) locks,
    /// scheduled and deferred ones from their own index.
    pub fn page(
        &self,
        state: Option<MessageState>,
        from_seq: Seq,
        limit: usize,
    ) -> Vec<MessageView<'_>> {
        let seqs: Vec<Seq> = match state {
            None => return self.peek(from_seq).take(limit).collect(),
            Some(MessageState::Active) => {
                let mut locked: Vec<Seq> = self
                    .held
                    .keys()
                    .copied()
                    .filter(|&seq| {
                        seq >= from_seq
                            && self
                                .slot(seq)
                                .is_some_and(|slot| slot.state == MessageState::Active)
                    })
                    .collect();
                locked.sort_unstable();
                let mut merged = Vec::with_capacity(limit);
                let mut locked = locked.into_iter().peekable();
                let mut available = self.available_from(from_seq).peekable();
                while merged.len() < limit {
                    let next = match (available.peek(), locked.peek()) {
                        (Some(&a), Some(&l)) if l < a => locked.next(),
                        (Some(_), _) => available.next(),
                        (None, _) => locked.next(),
                    };
                    match next {
                        Some(seq) => merged.push(seq),
                        None => break,
                    }
                }
                merged
            }
            Some(parked) => {
                let tag = if parked == MessageState::Scheduled {
                    ParkedState::Scheduled
                } else {
                    ParkedState::Deferred
                };
                self.parked
                    .range((tag, from_seq)..=(tag, Seq::MAX))
                    .take(limit)
                    .map(|(_, seq)| *seq)
                    .collect()
            }
        };
        seqs.into_iter().filter_map(|seq| self.get(seq)).collect()
    }

    /// Available seqs from `from_seq` on, ascending.
    fn available_from(&self, from_seq: Seq) -> impl Iterator<Item = Seq> + '_ {
        let (first_chunk, _) = split(from_seq);
        self.available_chunks
            .range(first_chunk..)
            .flat_map(move |&number| {
                self.chunks.get(&number).into_iter().flat_map(move |chunk| {
                    chunk
                        .available_offsets()
                        .map(move |offset| join(number, offset))
                })
            })
            .filter(move |&seq| seq >= from_seq)
    }

    /// The earliest time a lock here runs out.
    pub fn next_lock_deadline(&self) -> Option<i64> {
        self.lock_deadlines.first().map(|(until, _)| *until)
    }

    /// The earliest expiry time of a message here.
    pub fn next_expiry(&self) -> Option<i64> {
        self.expiries.first().map(|(at, _)| *at)
    }

    /// The earliest time a scheduled message here becomes active.
    pub fn next_scheduled_at(&self) -> Option<i64> {
        self.scheduled.first().map(|(at, _)| *at)
    }

    // ---- crate-internal access and primitives; each keeps every index and count right.

    pub(crate) fn entry(&self, seq: Seq) -> Option<Entry<'_>> {
        self.slot(seq).map(|slot| Entry {
            seq,
            slot,
            sub: self,
        })
    }

    /// Available (Active, unlocked) seqs, ascending.
    pub(crate) fn available(&self) -> impl Iterator<Item = Seq> + '_ {
        self.available_chunks.iter().flat_map(move |&number| {
            self.chunks.get(&number).into_iter().flat_map(move |chunk| {
                chunk
                    .available_offsets()
                    .map(move |offset| join(number, offset))
            })
        })
    }

    pub(crate) fn locked_seq(&self, token: &Uuid) -> Option<Seq> {
        self.locks.get(token).copied()
    }

    /// Locked seqs whose lock ran out at or before `now_ms`.
    pub(crate) fn expired_locks(&self, now_ms: i64) -> impl Iterator<Item = Seq> + '_ {
        self.lock_deadlines
            .range(..=(now_ms, Seq::MAX))
            .map(|(_, seq)| *seq)
    }

    /// Seqs whose expiry time is at or before `now_ms`, in any state.
    pub(crate) fn expired(&self, now_ms: i64) -> impl Iterator<Item = Seq> + '_ {
        self.expiries
            .range(..=(now_ms, Seq::MAX))
            .map(|(_, seq)| *seq)
    }

    pub(crate) fn due_scheduled(&self, now_ms: i64) -> impl Iterator<Item = Seq> + '_ {
        self.scheduled
            .range(..=(now_ms, Seq::MAX))
            .map(|(_, seq)| *seq)
    }

    pub(crate) fn seqs_locked_by(&self, owner: ConsumerId) -> Vec<Seq> {
        self.held
            .iter()
            .filter(|(_, lock)| lock.owner == owner)
            .map(|(seq, _)| *seq)
            .collect()
    }

    /// Stores a message. Its `message_id` is dropped (see the module docs). `body` is kept
    /// resident if the shared budget has room for it.
    pub(crate) fn insert(
        &mut self,
        seq: Seq,
        meta: MessageMeta,
        body_ref: BodyRef,
        body: Option<Bytes>,
    ) {
        // Only replay can meet a seq twice; the newer record wins. A seq past the last one
        // is new, and a send need not look for it.
        if seq <= self.last_seq
            && let Some(old) = self.remove(seq)
        {
            tracing::debug!(entity = self.entity, seq, "replacing message {old:?}");
        }
        let MessageMeta {
            enqueued_at_ms,
            expires_at_ms,
            scheduled_at_ms,
            delivery_count,
            state,
            session_id,
            message_id: _,
        } = meta;
        self.last_seq = self.last_seq.max(seq);
        self.stored_bytes += u64::from(body_ref.len);
        if let Some(body) = body {
            self.keep_body(seq, body);
        }
        if let Some(at) = scheduled_at_ms {
            self.scheduled_at.insert(seq, at);
        }
        if let Some(at) = expires_at_ms {
            self.expiries.insert((at, seq));
        }
        if session_id.is_some() {
            self.session_messages += 1;
        }
        let (number, offset) = split(seq);
        self.chunks
            .entry(number)
            .or_insert_with(|| Box::new(Chunk::new()))
            .slots
            .insert(
                offset,
                Slot {
                    enqueued_at_ms,
                    expires_at_ms: expires_at_ms.unwrap_or(0),
                    body_ref,
                    delivery_count,
                    state,
                    expires: expires_at_ms.is_some(),
                    session_id,
                },
            );
        self.len += 1;
        self.index_state(seq, state, true);
    }

    /// Drops a message; returns where its body was.
    pub(crate) fn remove(&mut self, seq: Seq) -> Option<BodyRef> {
        // `drop_lock`, not `unlock`: the message goes, so it need not be made available
        // first. (A queue drained by completions once seemed to keep ~700 heap bytes more
        // this way; it was emptied lock and body maps keeping their room behind
        // tombstones, by chance of the hashes and with `unlock` too: see
        // `remove_releasing_room`.)
        self.drop_lock(seq);
        let state = self.slot(seq)?.state;
        self.index_state(seq, state, false);
        let (number, offset) = split(seq);
        let chunk = self.chunks.get_mut(&number)?;
        let slot = chunk.slots.remove(offset)?;
        if chunk.slots.len() == 0 {
            self.chunks.remove(&number);
        }
        self.len -= 1;
        self.stored_bytes -= u64::from(slot.body_ref.len);
        if slot.session_id.is_some() {
            self.session_messages -= 1;
        }
        if slot.expires {
            self.expiries.remove(&(slot.expires_at_ms, seq));
        }
        self.scheduled_at.remove(&seq);
        self.drop_body(seq);
        Some(slot.body_ref)
    }

    /// Changes the mutable part of a message; also drops its lock, since every settlement
    /// that changes state ends the lock.
    pub(crate) fn update(&mut self, seq: Seq, delivery_count: u32, state: MessageState) {
        self.drop_lock(seq);
        let Some(old) = self.slot(seq).map(|slot| slot.state) else {
            return;
        };
        self.index_state(seq, old, false);
        if let Some(slot) = self.slot_mut(seq) {
            slot.delivery_count = delivery_count;
            slot.state = state;
        }
        self.index_state(seq, state, true);
    }

    /// Swaps in a rewritten body (properties modified at settlement); `body` is kept
    /// resident as by [`Self::insert`].
    pub(crate) fn replace_body(&mut self, seq: Seq, body_ref: BodyRef, body: Option<Bytes>) {
        let Some(slot) = self.slot_mut(seq) else {
            return;
        };
        let old_len = std::mem::replace(&mut slot.body_ref, body_ref).len;
        self.stored_bytes = self.stored_bytes - u64::from(old_len) + u64::from(body_ref.len);
        self.drop_body(seq);
        if let Some(new) = body {
            self.keep_body(seq, new);
        }
    }

    /// Keeps `body` in memory if the shared budget has room; `seq` holds none yet.
    fn keep_body(&mut self, seq: Seq, body: Bytes) {
        let len = body.len() as u64;
        if self.budget.take(len) {
            self.resident_bytes += len;
            self.bodies.insert(seq, body);
        }
    }

    fn drop_body(&mut self, seq: Seq) {
        if let Some(body) = remove_releasing_room(&mut self.bodies, &seq) {
            let len = body.len() as u64;
            self.resident_bytes -= len;
            self.budget.give_back(len);
        }
    }

    pub(crate) fn lock(&mut self, seq: Seq, token: Uuid, until_ms: i64, owner: ConsumerId) {
        self.drop_lock(seq);
        let Some(state) = self.slot(seq).map(|slot| slot.state) else {
            return;
        };
        if state == MessageState::Active {
            self.set_available(seq, false);
        }
        self.held.insert(
            seq,
            HeldLock {
                token,
                until_ms,
                owner,
            },
        );
        self.locks.insert(token, seq);
        self.lock_deadlines.insert((until_ms, seq));
        self.counts.locked += 1;
    }

    pub(crate) fn renew(&mut self, seq: Seq, until_ms: i64) {
        let Some(lock) = self.held.get_mut(&seq) else {
            return;
        };
        self.lock_deadlines.remove(&(lock.until_ms, seq));
        lock.until_ms = until_ms;
        self.lock_deadlines.insert((until_ms, seq));
    }

    /// Drops the lock on `seq`, if any, making an active message available again.
    pub(crate) fn unlock(&mut self, seq: Seq) -> bool {
        if !self.drop_lock(seq) {
            return false;
        }
        if self
            .slot(seq)
            .is_some_and(|slot| slot.state == MessageState::Active)
        {
            self.set_available(seq, true);
        }
        true
    }

    /// Drops the lock on `seq`, if any, leaving the message's availability to the caller,
    /// which is about to remove it or set its state (making a completed message available
    /// only to take it away again cost a tenth of a completion).
    fn drop_lock(&mut self, seq: Seq) -> bool {
        let Some(lock) = remove_releasing_room(&mut self.held, &seq) else {
            return false;
        };
        remove_releasing_room(&mut self.locks, &lock.token);
        self.lock_deadlines.remove(&(lock.until_ms, seq));
        self.counts.locked -= 1;
        true
    }

    fn slot(&self, seq: Seq) -> Option<&Slot> {
        let (number, offset) = split(seq);
        self.chunks.get(&number)?.slots.get(offset)
    }

    fn slot_mut(&mut self, seq: Seq) -> Option<&mut Slot> {
        let (number, offset) = split(seq);
        self.chunks.get_mut(&number)?.slots.get_mut(offset)
    }

    fn meta(&self, seq: Seq, slot: &Slot) -> MessageMeta {
        MessageMeta {
            enqueued_at_ms: slot.enqueued_at_ms,
            expires_at_ms: slot.expires.then_some(slot.expires_at_ms),
            scheduled_at_ms: self.scheduled_at.get(&seq).copied(),
            delivery_count: slot.delivery_count,
            state: slot.state,
            session_id: slot.session_id.clone(),
            message_id: None,
        }
    }

    fn view<'a>(&'a self, seq: Seq, slot: &Slot) -> MessageView<'a> {
        MessageView {
            seq,
            meta: self.meta(seq, slot),
            body_ref: slot.body_ref,
            body: self.bodies.get(&seq),
            locked_until_ms: self.held.get(&seq).map(|lock| lock.until_ms),
        }
    }

    /// Sets or clears the available bit of `seq`, whose slot must exist.
    fn set_available(&mut self, seq: Seq, available: bool) {
        let (number, offset) = split(seq);
        let Some(chunk) = self.chunks.get_mut(&number) else {
            return;
        };
        let word = &mut chunk.available[usize::from(offset) / 64];
        let bit = 1u64 << (offset % 64);
        if (*word & bit != 0) == available {
            return;
        }
        if available {
            *word |= bit;
            chunk.available_len += 1;
            if chunk.available_len == 1 {
                self.available_chunks.insert(number);
            }
        } else {
            *word &= !bit;
            chunk.available_len -= 1;
            if chunk.available_len == 0 {
                self.available_chunks.remove(&number);
            }
        }
        if self.session_messages == 0 {
            return;
        }
        // Borrow the id from the slot; allocate only for a session's first available message.
        let Some(session) = chunk
            .slots
            .get(offset)
            .and_then(|slot| slot.session_id.as_deref())
        else {
            return;
        };
        let sessions = &mut self.session_available;
        if available {
            match sessions.get_mut(session) {
                Some(seqs) => {
                    seqs.insert(seq);
                }
                None => {
                    sessions.insert(session.into(), BTreeSet::from([seq]));
                }
            }
        } else if let Some(seqs) = sessions.get_mut(session) {
            seqs.remove(&seq);
            if seqs.is_empty() {
                sessions.remove(session);
            }
        }
    }

    /// Available seqs of session `id`, ascending.
    pub(crate) fn available_in_session<'s>(&'s self, id: &str) -> impl Iterator<Item = Seq> + 's {
        self.session_available
            .get(id)
            .into_iter()
            .flat_map(|seqs| seqs.iter().copied())
    }

    /// Sessions that have available messages, each with its lowest available seq.
    pub(crate) fn sessions_with_available(&self) -> impl Iterator<Item = (&str, Seq)> + '_ {
        self.session_available
            .iter()
            .filter_map(|(id, seqs)| seqs.first().map(|seq| (id.as_ref(), *seq)))
    }

    /// Adds (`present`) or removes an unlocked message's state from the counts and the
    /// state indexes. The slot must exist.
    fn index_state(&mut self, seq: Seq, state: MessageState, present: bool) {
        let count = match state {
            MessageState::Active => &mut self.counts.active,
            MessageState::Deferred => &mut self.counts.deferred,
            MessageState::Scheduled => &mut self.counts.scheduled,
        };
        if present {
            *count += 1;
        } else {
            *count -= 1;
        }
        match state {
            MessageState::Active => self.set_available(seq, present),
            MessageState::Scheduled => {
                let key = (
                    self.scheduled_at.get(&seq).copied().unwrap_or(i64::MIN),
                    seq,
                );
                if present {
                    self.scheduled.insert(key);
                    self.parked.insert((ParkedState::Scheduled, seq));
                } else {
                    self.scheduled.remove(&key);
                    self.parked.remove(&(ParkedState::Scheduled, seq));
                }
            }
            MessageState::Deferred => {
                if present {
                    self.parked.insert((ParkedState::Deferred, seq));
                } else {
                    self.parked.remove(&(ParkedState::Deferred, seq));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(state: MessageState) -> MessageMeta {
        MessageMeta {
            state,
            ..MessageMeta::default()
        }
    }

    fn body_ref(seq: Seq) -> BodyRef {
        BodyRef {
            segment: 0,
            offset: seq,
            len: 1,
        }
    }

    #[test]
    fn slots_stay_compact() {
        assert!(std::mem::size_of::<Option<Slot>>() <= 56);
        assert_eq!(std::mem::size_of::<BodyRef>(), 16);
    }

    /// Inserting and removing across chunk boundaries, through sparse and dense chunks,
    /// keeps peek order, availability and counts right.
    #[test]
    fn chunks_turn_dense_and_sparse_and_go_away() {
        let mut sub = SubQueue::new(1, SubQueueKind::Main, 0, ResidentBudget::unbounded());
        let total = 3 * CHUNK_SLOTS as Seq + 17;
        for seq in 1..=total {
            let state = if seq % 64 == 0 {
                MessageState::Deferred
            } else {
                MessageState::Active
            };
            sub.insert(seq, meta(state), body_ref(seq), None);
        }
        assert_eq!(sub.len(), total as usize);
        assert!(
            sub.chunks
                .values()
                .any(|chunk| matches!(chunk.slots, Slots::Dense { .. }))
        );
        let active: Vec<Seq> = (1..=total).filter(|seq| seq % 64 != 0).collect();
        assert_eq!(sub.available().collect::<Vec<_>>(), active);
        assert_eq!(sub.counts().active, active.len() as u64);

        // Drop everything but the deferred ones: dense chunks become sparse.
        for &seq in &active {
            assert_eq!(sub.remove(seq), Some(body_ref(seq)));
        }
        assert_eq!(sub.available().next(), None);
        assert!(sub.available_chunks.is_empty());
        assert!(
            sub.chunks
                .values()
                .all(|chunk| matches!(chunk.slots, Slots::Sparse(_)))
        );
        let deferred: Vec<Seq> = (1..=total).filter(|seq| seq % 64 == 0).collect();
        assert_eq!(sub.peek(0).map(|m| m.seq).collect::<Vec<_>>(), deferred);
        assert_eq!(
            sub.peek(CHUNK_SLOTS as Seq + 1).next().map(|m| m.seq),
            deferred
                .iter()
                .copied()
                .find(|seq| *seq > CHUNK_SLOTS as Seq)
        );
        for &seq in &deferred {
            assert!(sub.remove(seq).is_some());
        }
        assert!(sub.chunks.is_empty());
        assert_eq!(sub.len(), 0);
        assert_eq!(sub.counts(), SubQueueCounts::default());
    }

    /// Pages by state start at the asked seq, merge locked active messages in order, and
    /// find scheduled and deferred ones through their own index.
    #[test]
    fn pages_by_state_start_where_asked() {
        let mut sub = SubQueue::new(1, SubQueueKind::Main, 0, ResidentBudget::unbounded());
        let total = 3 * CHUNK_SLOTS as Seq;
        for seq in 1..=total {
            let state = match seq % 100 {
                0 => MessageState::Deferred,
                50 => MessageState::Scheduled,
                _ => MessageState::Active,
            };
            sub.insert(seq, meta(state), body_ref(seq), None);
        }
        sub.lock(1503, Uuid::new_v4(), 10, ConsumerId(1));
        fn seqs_of(sub: &SubQueue, state: Option<MessageState>, from: Seq, n: usize) -> Vec<Seq> {
            sub.page(state, from, n).iter().map(|m| m.seq).collect()
        }
        assert_eq!(
            seqs_of(&sub, Some(MessageState::Active), 1498, 5),
            vec![1498, 1499, 1501, 1502, 1503]
        );
        assert_eq!(
            sub.page(Some(MessageState::Active), 1503, 1)[0].locked_until_ms,
            Some(10)
        );
        assert_eq!(
            seqs_of(&sub, Some(MessageState::Deferred), 1001, 3),
            vec![1100, 1200, 1300]
        );
        assert_eq!(
            seqs_of(&sub, Some(MessageState::Scheduled), 3000, 10),
            vec![3050]
        );
        assert_eq!(seqs_of(&sub, None, 2999, 3), vec![2999, 3000, 3001]);
        sub.update(1200, 0, MessageState::Active);
        assert_eq!(
            seqs_of(&sub, Some(MessageState::Deferred), 1001, 2),
            vec![1100, 1300]
        );
        assert!(sub.remove(1100).is_some());
        assert_eq!(
            seqs_of(&sub, Some(MessageState::Deferred), 1001, 1),
            vec![1300]
        );
    }

    #[test]
    fn emptied_maps_give_back_their_room() {
        // Where removals leave tombstones follows the hashes, so try many tables.
        for _ in 0..1000 {
            let mut map: FastMap<Uuid, Seq> = FastMap::default();
            let keys: Vec<Uuid> = (0..100).map(|_| Uuid::new_v4()).collect();
            for (seq, key) in (1..).zip(&keys) {
                map.insert(*key, seq);
            }
            for key in &keys {
                assert!(remove_releasing_room(&mut map, key).is_some());
            }
            assert_eq!(map.capacity(), 0);
        }
        let mut map: FastMap<Seq, Seq> = FastMap::default();
        for seq in 0..3 {
            map.insert(seq, seq);
        }
        assert_eq!(remove_releasing_room(&mut map, &7), None);
        for seq in 0..3 {
            assert_eq!(remove_releasing_room(&mut map, &seq), Some(seq));
        }
        assert!(
            map.is_empty() && map.capacity() > 0,
            "few in flight keep their room"
        );
    }

    #[test]
    fn a_queue_drained_by_completions_keeps_no_lock_or_body_room() {
        let mut sub = SubQueue::new(1, SubQueueKind::Main, 0, ResidentBudget::unbounded());
        for seq in 1..=100 {
            let body = Some(Bytes::from_static(b"body"));
            sub.insert(seq, meta(MessageState::Active), body_ref(seq), body);
        }
        for seq in 1..=100 {
            sub.lock(seq, Uuid::new_v4(), 50, ConsumerId(9));
        }
        for seq in 1..=100 {
            assert_eq!(sub.remove(seq), Some(body_ref(seq)));
        }
        assert!(sub.is_empty() && sub.available_chunks.is_empty());
        assert_eq!(sub.counts(), SubQueueCounts::default());
        assert_eq!(sub.held.capacity(), 0);
        assert_eq!(sub.locks.capacity(), 0);
        assert_eq!(sub.bodies.capacity(), 0);
    }

    #[test]
    fn locks_and_bodies_live_beside_the_slots() {
        let mut sub = SubQueue::new(1, SubQueueKind::Main, 0, ResidentBudget::unbounded());
        for seq in 1..=3 {
            sub.insert(
                seq,
                MessageMeta {
                    scheduled_at_ms: (seq == 2).then_some(5),
                    expires_at_ms: Some(100 + seq as i64),
                    message_id: Some("id".into()),
                    ..meta(MessageState::Active)
                },
                body_ref(seq),
                Some(Bytes::from_static(b"body")),
            );
        }
        assert_eq!(sub.resident_bytes(), 12);
        let token = Uuid::new_v4();
        sub.lock(1, token, 50, ConsumerId(9));
        assert_eq!(sub.available().collect::<Vec<_>>(), vec![2, 3]);
        let view = sub.get(1).expect("held");
        assert_eq!(view.locked_until_ms, Some(50));
        assert_eq!(view.meta.expires_at_ms, Some(101));
        assert_eq!(view.meta.message_id, None);
        assert_eq!(sub.get(2).map(|m| m.meta.scheduled_at_ms), Some(Some(5)));
        assert_eq!(sub.seqs_locked_by(ConsumerId(9)), vec![1]);
        assert_eq!(sub.remove(1), Some(body_ref(1)));
        assert!(sub.locked_seq(&token).is_none());
        assert_eq!(sub.counts().locked, 0);
        assert_eq!(sub.resident_bytes(), 8);
        assert_eq!(sub.next_expiry(), Some(102));
    }
}
