//! Heap bytes per queued message, measured with a counting global allocator.
//!
//! Bodies are not resident (budget 0) and the journal keeps nothing, so what is measured
//! is the queue's own per-message bookkeeping. `BUSBAR_MEMORY_MESSAGES` sets the size
//! (e.g. 1000000 in release mode); the result is printed and checked against a ceiling,
//! as is the heap of a thousand small queues (the per-queue part of many entities).

// A `#[global_allocator]` needs `unsafe impl GlobalAlloc`; this binary only wraps the
// system allocator to count live bytes, which is the only way to measure heap use from
// inside the process.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use busbar_core::{
    ConsumerId, Delivery, Journal, NewMessage, Queue, QueueConfig, ReceiveMode, SubQueueKind,
};
use busbar_store::{BodyRef, MessageMeta, Record, StoreError};
use bytes::Bytes;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from `System` with `layout`; the caller upholds the rest.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        new
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live_bytes() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Hands out body refs and keeps nothing, like a store whose bodies all live on disk.
#[derive(Default)]
struct ForgetfulJournal {
    next_offset: u64,
}

impl Journal for ForgetfulJournal {
    fn append(&mut self, records: Vec<Record>) -> Result<Vec<BodyRef>, StoreError> {
        let mut refs = Vec::new();
        for record in &records {
            if let Record::Enqueue { body, .. } = record {
                refs.push(BodyRef {
                    segment: (self.next_offset >> 30) as u32,
                    offset: self.next_offset,
                    len: body.len() as u32,
                });
                self.next_offset += body.len() as u64;
            }
        }
        Ok(refs)
    }

    fn read_body(&mut self, body: BodyRef) -> Result<Bytes, StoreError> {
        Ok(Bytes::from(vec![0u8; body.len as usize]))
    }

    fn dead_letter_body(
        &mut self,
        original: &Bytes,
        _reason: Option<&str>,
        _description: Option<&str>,
    ) -> Bytes {
        original.clone()
    }

    fn stand_in_body(&mut self, _meta: &MessageMeta, _reason: &str, _description: &str) -> Bytes {
        Bytes::new()
    }
}

fn messages() -> u64 {
    std::env::var("BUSBAR_MEMORY_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}

/// Enqueues `total` messages (each with a GUID-sized message id, as clients send) in
/// batches of 100; returns heap bytes per message held by the queue afterwards.
fn bytes_per_message(config: QueueConfig, total: u64) -> (Queue, ForgetfulJournal, f64) {
    let body = Bytes::from_static(&[7u8; 1024]);
    let before = live_bytes();
    let mut queue = Queue::new("mem", config, 1, 2);
    let mut journal = ForgetfulJournal::default();
    for batch in 0..total / 100 {
        let messages = (0..100).map(|i| NewMessage {
            body: body.clone(),
            message_id: Some(format!("{:032x}", batch * 100 + i).into()),
            ..NewMessage::default()
        });
        queue
            .enqueue(messages, batch as i64, &mut journal)
            .expect("enqueue");
    }
    let held = live_bytes() - before;
    assert_eq!(queue.counts().active, total);
    let per_message = held as f64 / total as f64;
    (queue, journal, per_message)
}

fn config(default_ttl_ms: Option<i64>) -> QueueConfig {
    QueueConfig {
        resident_body_budget_bytes: 0,
        default_ttl_ms,
        ..QueueConfig::default()
    }
}

// One test per binary run at a time keeps the counter meaningful: both cases run in one
// test function, in sequence.
#[test]
fn queued_messages_cost_little_heap() {
    let total = messages();
    let (queue, mut journal, plain) = bytes_per_message(config(None), total);
    eprintln!("{total} messages, no ttl: {plain:.1} heap bytes/message");

    // Receiving the head of a deep queue and settling it does not grow memory per message.
    let before = live_bytes();
    let mut queue = queue;
    for expected in 1..=1000 {
        let delivery = peek_lock(&mut queue, &mut journal);
        assert_eq!(delivery.seq, expected);
        let token = delivery.lock.expect("locked").token;
        queue
            .complete(SubQueueKind::Main, token, 0, &mut journal)
            .expect("complete");
    }
    assert!(
        live_bytes() <= before,
        "receiving and settling grew the heap"
    );
    drop(queue);

    let (queue, _journal, with_ttl) = bytes_per_message(config(Some(3_600_000)), total);
    eprintln!("{total} messages, with ttl: {with_ttl:.1} heap bytes/message");
    drop(queue);

    assert!(plain <= 100.0, "{plain:.1} bytes/message without ttl");
    assert!(with_ttl <= 100.0, "{with_ttl:.1} bytes/message with ttl");

    // Messages spread thin: many queues of 100 each, as a broker of many entities holds.
    let (empty, per_empty) = bytes_per_small_queue(1000, 0, config(None));
    eprintln!("1000 empty queues: {per_empty:.0} heap bytes/queue");
    drop(empty);
    let (queues, per_queue) = bytes_per_small_queue(1000, 100, config(None));
    eprintln!("1000 queues of 100 messages: {per_queue:.0} heap bytes/queue");
    drop(queues);
    assert!(per_queue <= 11.0 * 1024.0, "{per_queue:.0} bytes/queue");

    // Once a receiver has held all of a queue's messages (and their bodies) and completed
    // them, the queue costs about what an empty one does (its emptied B-trees keep a node).
    let before = live_bytes();
    let resident = QueueConfig::default();
    let (mut queues, _) = bytes_per_small_queue(1000, 100, resident);
    let mut journal = ForgetfulJournal::default();
    for queue in &mut queues {
        let tokens: Vec<_> = (0..100)
            .map(|_| peek_lock(queue, &mut journal).lock.expect("locked").token)
            .collect();
        for token in tokens {
            queue
                .complete(SubQueueKind::Main, token, 0, &mut journal)
                .expect("complete");
        }
    }
    let per_drained = (live_bytes() - before) as f64 / 1000.0;
    eprintln!("1000 queues drained: {per_drained:.0} heap bytes/queue");
    drop(queues);
    assert!(
        per_drained <= per_empty + 1024.0,
        "{per_drained:.0} bytes/queue drained, {per_empty:.0} empty"
    );
}

fn peek_lock(queue: &mut Queue, journal: &mut ForgetfulJournal) -> Delivery {
    queue
        .next_for_delivery(
            SubQueueKind::Main,
            ReceiveMode::PeekLock,
            ConsumerId(1),
            0,
            journal,
        )
        .expect("receive")
        .expect("message")
}

/// Heap bytes per queue of `count` queues holding `each` messages.
fn bytes_per_small_queue(count: u32, each: u64, config: QueueConfig) -> (Vec<Queue>, f64) {
    let before = live_bytes();
    let mut journal = ForgetfulJournal::default();
    let queues: Vec<Queue> = (0..count)
        .map(|i| {
            let mut queue = Queue::new(format!("q{i}"), config.clone(), 10 + 3 * i, 11 + 3 * i);
            let messages = (0..each).map(|_| NewMessage {
                body: Bytes::from_static(&[7u8; 1024]),
                ..NewMessage::default()
            });
            queue.enqueue(messages, 0, &mut journal).expect("enqueue");
            queue
        })
        .collect();
    let per_queue = (live_bytes() - before) as f64 / f64::from(count);
    (queues, per_queue)
}
